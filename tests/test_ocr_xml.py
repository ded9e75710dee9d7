"""`fastnn ocr --format alto` (ALTO 4) and `--format page` (PAGE XML 2019-07-15), and `--review-below` (issue 23).

The documents are validated against the official schemas vendored in tests/data/xsd (its README says where they
come from), with lxml (skipped without it); their boxes, text and confidences are checked against the JSON
output's.  Made from a fabricated result (two pages, and an empty one), and end to end from a two-page TIFF of
the shared photographed pages (skipped when absent).
"""

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastnn
import fastnn.ocr.model
from fastnn import cli, ocr
from fastnn.ocr import formats
from fastnn.tasks import ocr as ocr_task

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAGES = sorted((SHARED / "ocr").glob("*.jpg")) if (SHARED / "ocr").is_dir() else []
needs_pages = pytest.mark.skipif(len(PAGES) < 2, reason=f"the photographed pages are not in {SHARED / 'ocr'}")
MODEL = str(fastnn.ocr.model.SHIPPED_MODEL)
XSD = Path(__file__).parent / "data" / "xsd"
A = "{" + formats.ALTO_NAMESPACE + "}"
P = "{" + formats.PAGE_NAMESPACE + "}"
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def schemas():
    """The official ALTO 4.3 and PAGE 2019-07-15 schemas, as lxml validators."""
    etree = pytest.importorskip("lxml.etree", reason="lxml (in the `test` extra) validates against the XSDs")
    return {name: etree.XMLSchema(etree.parse(str(XSD / file)))
            for name, file in (("alto", "alto-4-3.xsd"), ("page", "pagecontent.xsd"))}


def _valid(schemas, fmt, text):
    """Assert that ``text`` is a valid document of ``fmt``; its root (ElementTree)."""
    from lxml import etree

    schema = schemas[fmt]
    assert schema.validate(etree.fromstring(text.encode())), schema.error_log
    return ET.fromstring(text.encode())


def _result(words):
    """An OCRResult of one line per list of (text, [confidence per character]), characters 20 px apart."""
    boxes, chars, confs, lines, y = [], [], [], [], 10
    for line in words:
        x, members = 10, []
        for text, conf in line:
            word = []
            for ch, c in zip(text, conf):
                word.append(len(chars))
                boxes.append([y, x, y + 18, x + 15])
                chars.append(ch)
                confs.append(c)
                x += 20
            members.append(word)
            x += 30
        lines.append(members)
        y += 40
    text = "\n".join(" ".join(t for t, _ in line) for line in words)
    return ocr.OCRResult(text, np.array(boxes, np.int64).reshape(-1, 4), chars, np.array(confs, float), lines)


#: Two pages: page 1 holds a word less confident than 0.9 (NO) and one just at it (AT, 0.9).
# a word's confidence is the product of its characters': HELLO 0.9392, NO 0.4059, AT 0.9, 2 0.999, PAGES 0.9499
ONE = _result([[("HELLO", [0.999, 0.99, 0.98, 0.999, 0.97]), ("NO", [0.99, 0.41])], [("AT", [0.9, 1.0])]])
TWO = _result([[("2", [0.999]), ("PAGES", [0.99, 0.99, 0.999, 0.98, 0.99])]])
EMPTY = ocr.OCRResult("", np.zeros((0, 4), np.int64), [], np.zeros(0), [])


def _pages(*results, image='a "quoted" <&> name.tif'):
    return [formats.Page(r, image, k, 200 + k, 100 + k, k) for k, r in enumerate(results, 1)]


def _json_words(objects):
    return [w for obj in objects for line in obj["lines"] for w in line["words"]]


def _bbox(obj):
    return obj["left"], obj["top"], obj["width"], obj["height"]


def _alto_box(el):
    return tuple(int(el.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))


def _page_box(el):
    points = [tuple(map(int, p.split(","))) for p in el.find(P + "Coords").get("points").split()]
    (x0, y0), (x1, y1) = points[0], points[2]
    assert points == [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return x0, y0, x1 - x0, y1 - y0


# ------------------------------------------------------------------------------------------------ ALTO


@pytest.mark.parametrize("review", [None, 0.9])
def test_alto_is_valid_and_carries_the_json_boxes_text_and_confidences(schemas, review):
    pages = _pages(ONE, TWO, EMPTY)
    root = _valid(schemas, "alto", formats.alto_document(pages, review))
    objects = [formats.page_json(p.result, p.image, p.width, p.height, p.page, review) for p in pages]
    assert root.find(f"{A}Description/{A}MeasurementUnit").text == "pixel"
    assert root.find(f"{A}Description/{A}sourceImageInformation/{A}fileName").text == pages[0].image
    assert root.find(f".//{A}Processing/{A}processingSoftware/{A}softwareName").text == "fastnn"
    assert root.find(f".//{A}processingSoftware/{A}softwareVersion").text == fastnn.__version__
    page_els = root.findall(f"{A}Layout/{A}Page")
    assert [(p.get("PHYSICAL_IMG_NR"), p.get("WIDTH"), p.get("HEIGHT")) for p in page_els] == [
        (str(k), str(obj["width"]), str(obj["height"])) for k, obj in enumerate(objects, 1)]
    assert page_els[2].find(f"{A}PrintSpace").findall(f"{A}TextBlock") == []  # the empty page
    for page_el, obj in zip(page_els, objects):
        lines = page_el.findall(f".//{A}TextLine")
        assert [_alto_box(el) for el in lines] == [_bbox(line) for line in obj["lines"]]
        for line_el, line in zip(lines, obj["lines"]):
            strings = line_el.findall(f"{A}String")
            assert [el.tag for el in line_el][1::2] == [A + "SP"] * (len(strings) - 1)  # an SP between two words
            assert " ".join(s.get("CONTENT") for s in strings) == line["text"]
            for s, word in zip(strings, line["words"]):
                assert _alto_box(s) == _bbox(word) and s.get("CONTENT") == word["text"]
                assert s.get("WC") == json.dumps(word["confidence"])
                assert s.get("CC") == " ".join(str(round(9 * (1 - c["confidence"]))) for c in word["characters"])
                glyphs = s.findall(f"{A}Glyph")
                assert [(g.get("CONTENT"), _alto_box(g), g.get("GC")) for g in glyphs] == [
                    (c["text"], _bbox(c), json.dumps(c["confidence"])) for c in word["characters"]]
                assert (s.get("TAGREFS") == "REVIEW") == bool(word.get("review"))
        assert "\n".join(" ".join(s.get("CONTENT") for s in el.findall(f"{A}String")) for el in lines) == obj["text"]
    tags = root.findall(f"{A}Tags/{A}OtherTag")
    assert [(t.get("ID"), t.get("LABEL")) for t in tags] == ([] if review is None else [("REVIEW", "review")])


def test_cc_runs_from_0_sure_to_9_unsure():
    result = _result([[("ABCD", [1.0, 0.95, 0.5, 0.0])]])
    root = ET.fromstring(formats.alto_document(_pages(result)).encode())
    assert root.find(f".//{A}String").get("CC") == "0 0 4 9"


def test_alto_of_several_images_names_each(schemas):
    pages = [formats.Page(ONE, "first.png", 1, 200, 100), formats.Page(TWO, "second.png", 2, 300, 90)]
    root = _valid(schemas, "alto", formats.alto_document(pages))
    info = root.find(f"{A}Description/{A}sourceImageInformation")
    assert info.find(f"{A}fileName") is None
    assert [el.text for el in info.findall(f"{A}fileIdentifier")] == ["first.png", "second.png"]


# ------------------------------------------------------------------------------------------------ PAGE XML


@pytest.mark.parametrize("review", [None, 0.9])
def test_page_xml_is_valid_and_carries_the_json_boxes_text_and_confidences(schemas, review):
    for page in _pages(ONE, TWO, EMPTY):
        root = _valid(schemas, "page", formats.page_xml_document(page, review))
        obj = formats.page_json(page.result, page.image, page.width, page.height, page.page, review)
        meta = root.find(P + "Metadata")
        assert meta.find(P + "Creator").text == f"fastnn {fastnn.__version__}"
        assert meta.find(P + "Created").text == meta.find(P + "LastChange").text
        assert meta.find(P + "Created").text.endswith("Z")
        page_el = root.find(P + "Page")
        assert (page_el.get("imageFilename"), page_el.get("imageWidth"), page_el.get("imageHeight")) == (
            obj["image"], str(obj["width"]), str(obj["height"]))
        regions = page_el.findall(P + "TextRegion")
        assert len(regions) == (1 if obj["lines"] else 0)
        lines = page_el.findall(f".//{P}TextLine")
        assert [_page_box(el) for el in lines] == [_bbox(line) for line in obj["lines"]]
        for line_el, line in zip(lines, obj["lines"]):
            assert line_el.find(f"{P}TextEquiv/{P}Unicode").text == line["text"]
            words = line_el.findall(P + "Word")
            for word_el, word in zip(words, line["words"]):
                equiv = word_el.find(P + "TextEquiv")
                assert _page_box(word_el) == _bbox(word) and equiv.find(P + "Unicode").text == word["text"]
                assert equiv.get("conf") == json.dumps(word["confidence"])
                glyphs = word_el.findall(P + "Glyph")
                assert [(_page_box(g), g.find(f"{P}TextEquiv/{P}Unicode").text, g.find(P + "TextEquiv").get("conf"))
                        for g in glyphs] == [(_bbox(c), c["text"], json.dumps(c["confidence"]))
                                             for c in word["characters"]]
                labels = [el.get("value") for el in word_el.findall(f"{P}Labels/{P}Label")]
                assert labels == (["review"] if word.get("review") else [])
        if regions:
            assert regions[0].find(f"{P}TextEquiv/{P}Unicode").text == obj["text"]


def test_page_xml_of_several_pages_is_one_document_per_page():
    pages = _pages(ONE, TWO)
    joined = formats.document(pages, "page")
    documents = joined.split("\f")
    assert len(documents) == 2
    assert [ET.fromstring(d.encode()).find(P + "Page").get("imageWidth") for d in documents] == ["201", "202"]
    files = formats.output_files("scan", pages, "page")
    assert [name for name, _ in files] == ["scan.page.xml", "scan-p2.page.xml"]
    assert [text for _, text in files] == [d if d.endswith("\n") else d + "\n" for d in documents]
    assert [name for name, _ in formats.output_files("scan", pages, "alto")] == ["scan.alto.xml"]


# ------------------------------------------------------------------------------------------------ --review-below


def test_review_below_flags_the_same_words_in_every_format():
    """NO (0.4059) is flagged at 0.9, AT (exactly 0.9) is not; without the option every format is as before."""
    pages = _pages(ONE, TWO)
    expected = ["NO"]

    text = formats.document(pages, "text", 0.9)
    assert text == "HELLO [?NO]\nAT\n\f2 PAGES\n"
    assert formats.document(pages, "text") == "HELLO NO\nAT\n\f2 PAGES\n"

    objects = json.loads(formats.document(pages, "json", 0.9))
    assert [w["text"] for w in _json_words(objects) if w.get("review")] == expected
    assert all(w.get("review", True) is True for w in _json_words(objects))
    assert [(o["review_below"], o["review_words"]) for o in objects] == [(0.9, 1), (0.9, 0)]
    plain = json.loads(formats.document(pages, "json"))
    assert all("review" not in w for w in _json_words(plain)) and all("review_words" not in o for o in plain)

    hocr = ET.fromstring(formats.document(pages, "hocr", 0.9).encode())
    words = [e for e in hocr.iter() if e.get("class") == "ocrx_word"]
    assert ["".join(w.itertext()) for w in words if "x_review 1" in w.get("title")] == expected
    assert "x_review" not in formats.document(pages, "hocr")

    alto = ET.fromstring(formats.document(pages, "alto", 0.9).encode())
    assert [s.get("CONTENT") for s in alto.iter(A + "String") if s.get("TAGREFS") == "REVIEW"] == expected
    assert "REVIEW" not in formats.document(pages, "alto")

    flagged = []
    for doc in formats.document(pages, "page", 0.9).split("\f"):
        for word in ET.fromstring(doc.encode()).iter(P + "Word"):
            if word.find(f"{P}Labels/{P}Label[@value='review']") is not None:
                flagged.append(word.find(f"{P}TextEquiv/{P}Unicode").text)
    assert flagged == expected
    assert "Labels" not in formats.document(pages, "page")

    assert formats.document(pages, "tsv", 0.9) == formats.document(pages, "tsv")  # TSV's columns stay


def test_review_below_1_flags_every_word_not_fully_sure():
    objects = json.loads(formats.document(_pages(ONE), "json", 1))
    assert [w["text"] for w in _json_words([objects]) if w.get("review")] == ["HELLO", "NO", "AT"]


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan", "inf", "ninety", ""])
def test_a_bad_review_below_is_one_line_before_the_model_loads(value, tmp_path, capsys, no_model):
    image = tmp_path / "page.png"
    Image.new("L", (200, 100), 255).save(image)
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        cli.main(["ocr", str(image), "--review-below", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "--review-below" in lines[-1] and "0 < P <= 1" in lines[-1], err
    assert repr(value) in lines[-1]
    with pytest.raises(ValueError, match=r"--review-below: expected a confidence P with 0 < P <= 1"):
        ocr_task.read_pages([str(image)], review_below=value)


def test_review_below_with_tsv_says_it_marks_nothing(tmp_path, capsys, model_path):
    image = tmp_path / "page.png"
    Image.new("L", (200, 100), 255).save(image)
    assert cli.main(["ocr", str(image), "--model", model_path, "--format", "tsv", "--review-below", "0.5"]) == 0
    assert "--review-below marks nothing in TSV" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def tiff(tmp_path_factory):
    """A 2-page TIFF of the shared pages 01 and 02."""
    path = tmp_path_factory.mktemp("tiff") / "two pages.tif"
    first, second = (Image.open(p).convert("L") for p in PAGES[:2])
    first.save(path, save_all=True, append_images=[second], compression="tiff_adobe_deflate")
    return path


@needs_pages
def test_a_two_page_tiff_in_alto_and_page_agrees_with_json_and_hocr(schemas, tiff, capsys, tmp_path):
    args = ["ocr", str(tiff), "--model", MODEL, "--review-below", "0.9"]
    assert cli.main([*args, "--format", "json"]) == 0
    objects = json.loads(capsys.readouterr().out)
    assert len(objects) == 2 and all(o["lines"] for o in objects)
    words = _json_words(objects)
    assert 0 < sum(bool(w.get("review")) for w in words) < len(words)

    assert cli.main([*args, "--format", "alto"]) == 0
    alto = _valid(schemas, "alto", capsys.readouterr().out)
    assert len(alto.findall(f"{A}Layout/{A}Page")) == 2
    strings = list(alto.iter(A + "String"))
    assert [(s.get("CONTENT"), _alto_box(s), float(s.get("WC")), s.get("TAGREFS") == "REVIEW") for s in strings] == [
        (w["text"], _bbox(w), w["confidence"], bool(w.get("review"))) for w in words]

    assert cli.main([*args, "--format", "page"]) == 0
    documents = capsys.readouterr().out.rstrip("\n").split("\f")
    assert len(documents) == 2
    page_words = [w for d in documents for w in _valid(schemas, "page", d).iter(P + "Word")]
    assert [(w.find(f"{P}TextEquiv/{P}Unicode").text, _page_box(w), float(w.find(P + "TextEquiv").get("conf")),
             w.find(P + "Labels") is not None) for w in page_words] == [
        (w["text"], _bbox(w), w["confidence"], bool(w.get("review"))) for w in words]

    assert cli.main([*args, "--format", "hocr"]) == 0
    hocr = ET.fromstring(capsys.readouterr().out.encode())
    titles = [dict(part.strip().split(" ", 1) for part in e.get("title").split(";"))
              for e in hocr.iter(XHTML + "span") if e.get("class") == "ocrx_word"]
    assert len(titles) == len(words)
    for title, word in zip(titles, words):
        assert math.isclose(int(title["x_wconf"]), 100 * word["confidence"], abs_tol=0.5 + 1e-9)
        assert ("x_review" in title) == bool(word.get("review"))

    assert cli.main([*args, "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert text.replace("[?", "").replace("]", "") == "\n\f".join(o["text"] for o in objects) + "\n"
    assert text.count("[?") == sum(bool(w.get("review")) for w in words)

    out = tmp_path / "out"
    for fmt in ("alto", "page"):
        assert cli.main(["ocr", str(tiff), "--model", MODEL, "--format", fmt, "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["two pages-p2.page.xml", "two pages.alto.xml",
                                                     "two pages.page.xml"]
    _valid(schemas, "alto", (out / "two pages.alto.xml").read_text())
    for name in ("two pages.page.xml", "two pages-p2.page.xml"):
        _valid(schemas, "page", (out / name).read_text())

"""`fastnn ocr` in document work (issue 23, parts 1 and 2, first slice): `-` for standard input, multi-page TIFF
read page by page within the limits, and `--format hocr` (hOCR 1.2) carrying the same boxes and text as JSON.

The pages are the shared photographed pages (skipped when absent), read with the shipped model; the TIFFs are
made from them in tmp_path.
"""

import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _cli import one_error_line
import fastnn
import fastnn.ocr.model
from fastnn import cli, ocr
from fastnn.ocr import formats
from fastnn.tasks import ocr as ocr_task

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAGES = sorted((SHARED / "ocr").glob("*.jpg")) if (SHARED / "ocr").is_dir() else []
needs_pages = pytest.mark.skipif(len(PAGES) < 2, reason=f"the photographed pages are not in {SHARED / 'ocr'}")
MODEL = str(fastnn.ocr.model.SHIPPED_MODEL)
XHTML = "{http://www.w3.org/1999/xhtml}"


class _Stdin:
    """A piped standard input holding ``data``; records the sizes asked of its reads."""

    def __init__(self, data, tty=False):
        self.buffer = io.BytesIO(data)
        self.tty = tty
        reads = self.reads = []
        original = self.buffer.read

        def read(n=-1):
            reads.append(n)
            return original(n)

        self.buffer.read = read

    def isatty(self):
        return self.tty


class _Endless(_Stdin):
    """`fastnn ocr - < /dev/zero`: a stream that never ends."""

    def __init__(self):
        super().__init__(b"")
        self.buffer = self
        self.reads = []

    def read(self, n=-1):
        assert n >= 0, "an endless stream read to its end"
        self.reads.append(n)
        return b"\0" * n


@pytest.fixture(scope="module")
def tiff(tmp_path_factory):
    """A 3-page TIFF of the shared pages: 01, 02, 01 (grayscale, deflate)."""
    path = tmp_path_factory.mktemp("tiff") / "three pages.tif"
    first, second = (Image.open(p).convert("L") for p in PAGES[:2])
    first.save(path, save_all=True, append_images=[second, first], compression="tiff_adobe_deflate")
    return path



# ------------------------------------------------------------------------------------------------ standard input


@needs_pages
def test_dash_reads_the_image_on_standard_input(monkeypatch, capsys, texts, tmp_path):
    page = PAGES[0]
    stdin = _Stdin(page.read_bytes())
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(["ocr", "-", "--model", MODEL, "--no-progress"]) == 0
    assert capsys.readouterr().out == texts[page] + "\n"
    assert stdin.reads == [ocr_task.MAX_STDIN_BYTES + 1]  # one bounded read
    monkeypatch.setattr("sys.stdin", _Stdin(page.read_bytes()))
    assert cli.main(["ocr", "-", "--model", MODEL, "--out-dir", str(tmp_path / "out"), "--format", "json"]) == 0
    written = json.loads((tmp_path / "out" / "stdin.json").read_text())
    assert written["image"] == "-" and written["page"] == 1 and written["text"] == texts[page]
    monkeypatch.setattr("sys.stdin", _Stdin(page.read_bytes()))
    expected = page.with_suffix(".txt")
    assert cli.main(["ocr-eval", "-", str(expected), "--model", MODEL]) == 0
    out = capsys.readouterr().out
    assert out.startswith(texts[page] + "\n") and f"cer: {ocr.cer(texts[page], expected.read_text()):.4f}" in out


@pytest.mark.parametrize("case", ["empty", "text", "terminal", "endless", "twice"])
def test_bad_standard_input_is_one_line_before_the_model_loads(case, monkeypatch, capsys, no_model):
    args, words = ["ocr", "-"], ["standard input"]
    if case == "empty":
        stdin, words = _Stdin(b""), [*words, "empty"]
    elif case == "text":
        stdin, words = _Stdin(b"hello\n"), [*words, "holds text"]
    elif case == "terminal":
        stdin, words = _Stdin(b"", tty=True), [*words, "terminal"]
    elif case == "endless":
        monkeypatch.setattr(ocr_task, "MAX_STDIN_BYTES", 1000)
        stdin, words = _Endless(), [*words, "over 1,000 bytes", "MAX_STDIN_BYTES"]
    else:
        stdin, words, args = _Stdin(b"x"), [*words, "more than once"], ["ocr", "-", "-"]
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, *words)
    assert captured.out == ""
    if case == "endless":
        assert stdin.reads == [1001]


# ------------------------------------------------------------------------------------------------ multi-page TIFF


@needs_pages
def test_a_multi_page_tiff_is_read_page_by_page(tiff, texts, capsys, tmp_path):
    expected = [texts[PAGES[0]], texts[PAGES[1]], texts[PAGES[0]]]
    assert [p.shape[:2] for p in ocr.load_pages(tiff)] == [ocr.load_image(p).shape[:2] for p in
                                                             (PAGES[0], PAGES[1], PAGES[0])]
    assert cli.main(["ocr", str(tiff), "--model", MODEL]) == 0
    out = capsys.readouterr().out
    assert out.count("\f") == 2 and out.split("\n\f") == [t for t in expected[:2]] + [expected[2] + "\n"]

    assert cli.main(["ocr", str(tiff), str(PAGES[1]), "--model", MODEL, "--format", "json"]) == 0
    pages = json.loads(capsys.readouterr().out)
    assert [(p["image"], p["page"], p["text"]) for p in pages] == [
        (str(tiff), 1, expected[0]), (str(tiff), 2, expected[1]), (str(tiff), 3, expected[2]),
        (str(PAGES[1]), 1, texts[PAGES[1]])]

    assert cli.main(["ocr", str(tiff), str(PAGES[1]), "--model", MODEL, "--format", "tsv"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [r[1] for r in rows if r[0] == "1"] == ["1", "2", "3", "4"]  # page_num runs over the call's pages

    out_dir = tmp_path / "out"
    for fmt in ("text", "json"):
        assert cli.main(["ocr", str(tiff), "--model", MODEL, "--out-dir", str(out_dir), "--format", fmt]) == 0
    assert (out_dir / "three pages.txt").read_text().split("\f") == [t + "\n" for t in expected]
    assert [p["page"] for p in json.loads((out_dir / "three pages.json").read_text())] == [1, 2, 3]


@needs_pages
def test_too_many_pages_are_refused_in_one_line_before_the_model_loads(tiff, monkeypatch, capsys, no_model):
    monkeypatch.setenv("FASTNN_MAX_PAGES", "2")
    assert cli.main(["ocr", str(tiff)]) == 2
    one_error_line(capsys.readouterr().err, "three pages.tif", "more than 2 pages", "FASTNN_MAX_PAGES=2")
    with pytest.raises(ValueError, match="more than 2 pages"):
        next(ocr.load_pages(tiff))
    monkeypatch.setenv("FASTNN_MAX_PAGES", "3")
    assert ocr.check_image(tiff) == Image.open(PAGES[0]).size


def test_each_page_goes_through_the_pixel_limits(tmp_path, monkeypatch):
    """A small first page and a large second: the second is downscaled (loaded limit) or refused (image limit)."""
    path = tmp_path / "two.tif"
    Image.new("L", (100, 80), 255).save(path, save_all=True, append_images=[Image.new("L", (400, 300), 255)])
    monkeypatch.setenv("FASTNN_MAX_LOADED_PIXELS", "10000")
    assert [p.shape for p in ocr.load_pages(path)] == [(80, 100), (75, 100)]
    monkeypatch.setenv("FASTNN_MAX_IMAGE_PIXELS", "10000")
    with pytest.raises(ValueError, match=r"two.tif': page 2: it declares 400x300 pixels"):
        list(ocr.load_pages(path))
    assert ocr.load_image(path).shape == (80, 100)  # load_image reads the first page only, as before


# ------------------------------------------------------------------------------------------------ hOCR


def _title(element):
    return dict(part.strip().split(" ", 1) for part in element.get("title").split(";"))


def _spans(parent, cls):
    return [e for e in parent.iter() if e.get("class") == cls]


@needs_pages
def test_hocr_carries_the_json_boxes_and_the_text(tiff, texts, capsys, tmp_path):
    args = ["ocr", str(tiff), str(PAGES[1]), "--model", MODEL]
    assert cli.main([*args, "--format", "json"]) == 0
    pages = json.loads(capsys.readouterr().out)
    assert cli.main([*args, "--format", "tsv"]) == 0
    tsv = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert cli.main([*args, "--format", "hocr"]) == 0
    out = capsys.readouterr().out
    root = ET.fromstring(out.encode())  # well-formed XHTML
    assert root.tag == XHTML + "html"
    meta = {m.get("name"): m.get("content") for m in root.iter(XHTML + "meta") if m.get("name")}
    assert meta["ocr-system"] == f"fastnn {fastnn.__version__}" and meta["ocr-number-of-pages"] == "4"
    assert set(meta["ocr-capabilities"].split()) >= {"ocr_page", "ocr_line", "ocrx_word", "ocrx_cinfo"}
    divs = _spans(root, "ocr_page")
    assert len(divs) == len(pages) == 4

    def bbox(obj):
        return " ".join(map(str, (obj["left"], obj["top"], obj["left"] + obj["width"], obj["top"] + obj["height"])))

    conf_rows = iter(r for r in tsv if r[0] == "6")
    for k, (div, page) in enumerate(zip(divs, pages)):
        title = _title(div)
        assert title["ppageno"] == str(k) and title["bbox"] == f"0 0 {page['width']} {page['height']}"
        assert title["image"] == json.dumps(page["image"])
        lines = _spans(div, "ocr_line")
        assert len(lines) == len(page["lines"])
        text = []
        for line_el, line in zip(lines, page["lines"]):
            assert _title(line_el)["bbox"] == bbox(line)
            words = _spans(line_el, "ocrx_word")
            assert [w.tag for w in words] == [XHTML + "span"] * len(line["words"])
            for word_el, word in zip(words, line["words"]):
                t = _title(word_el)
                assert t["bbox"] == bbox(word) and t["x_wconf"] == str(round(100 * word["confidence"]))
                chars = _spans(word_el, "ocrx_cinfo")
                assert [c.text for c in chars] == [c["text"] for c in word["characters"]]
                for char_el, char in zip(chars, word["characters"]):
                    assert _title(char_el)["x_bboxes"] == bbox(char)
                    assert _title(char_el)["x_confs"] == next(conf_rows)[9]  # the TSV's percentage
            text.append(" ".join("".join(w.itertext()) for w in words))
        assert "\n".join(text) == page["text"]
    assert [page["text"] for page in pages] == [texts[PAGES[0]], texts[PAGES[1]], texts[PAGES[0]], texts[PAGES[1]]]

    assert cli.main(["ocr", str(PAGES[0]), "--model", MODEL, "--format", "hocr", "--out-dir", str(tmp_path)]) == 0
    written = ET.parse(tmp_path / (PAGES[0].stem + ".hocr")).getroot()
    assert ["".join(w.itertext()) for w in _spans(written, "ocrx_word")] == texts[PAGES[0]].split()


def test_hocr_escapes_the_image_name_and_an_empty_page(tmp_path):
    result = ocr.OCRResult(text="", boxes=np.zeros((0, 4), np.int64), chars=[], confidences=np.zeros(0), lines=[])
    name = 'a "quoted" <&> name.png'
    doc = formats.document([formats.Page(result, name, 1, 30, 20)], "hocr")
    div = _spans(ET.fromstring(doc.encode()), "ocr_page")[0]
    assert div.get("title") == 'image "a \\"quoted\\" <&> name.png"; bbox 0 0 30 20; ppageno 0'
    assert _spans(div, "ocr_line") == []



def test_a_page_that_fails_to_decode_fails_its_file_and_the_others_are_read(tmp_path, capsys):
    """A TIFF whose second page's pixels are cut off: reported in one line naming the file, the other read."""
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 255, (300, 400), dtype=np.uint8)) for _ in range(2)]
    whole = tmp_path / "whole.tif"
    noise[0].save(whole, save_all=True, append_images=[noise[1]])
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[:len(data) * 3 // 4])  # the second page's pixels are cut short
    good = tmp_path / "good.png"
    Image.new("L", (200, 100), 255).save(good)
    assert cli.main(["ocr", str(cut), str(good), "--model", MODEL, "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert "cut.tif': page 2: " in captured.err and "1 of 2 images could not be read" in captured.err, captured.err
    assert [p["image"] for p in json.loads(captured.out)] == [str(good)]


@needs_pages
def test_boxes_of_a_tiff_are_drawn_page_by_page(tiff, tmp_path):
    picture = tmp_path / "boxes.png"
    assert cli.main(["ocr", str(tiff), "--model", MODEL, "--boxes", str(picture)]) == 0
    assert sorted(p.name for p in tmp_path.glob("boxes*.png")) == ["boxes-p2.png", "boxes-p3.png", "boxes.png"]

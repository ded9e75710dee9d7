"""`fastnn ocr` and PDFs (issue 23): a PDF's pages read one by one (pypdfium2, the `pdf` extra) within the page
and pixel limits, `--format pdf` (a searchable PDF: each page's image under invisible text placed on the words,
checked with poppler's pdftotext), and fastnn as ocrmypdf's OCR engine (`ocrmypdf --plugin fastnn.ocrmypdf`).

The input PDFs are written here by hand (:func:`_pdf`: the shared photographed pages' JPEG files embedded as
they are, the way img2pdf does), so that they do not depend on fastnn's own writer.  Each test needing
pypdfium2, pdftotext, ocrmypdf or the shared pages skips, saying why, without it.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _cli import one_error_line
import fastnn
import fastnn.ocr.model
from fastnn import cli, ocr
from fastnn.ocr import pdf as ocr_pdf
from fastnn.tasks import ocr as ocr_task

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAGES = sorted((SHARED / "ocr").glob("*.jpg")) if (SHARED / "ocr").is_dir() else []
MODEL = str(fastnn.ocr.model.SHIPPED_MODEL)
ROOT = Path(fastnn.__file__).resolve().parents[1]  # the fastnn these tests import (installed, or a source tree)
README = Path(__file__).resolve().parents[1] / "README.md"

try:
    import pypdfium2
except ImportError:
    pypdfium2 = None

needs_pages = pytest.mark.skipif(len(PAGES) < 2, reason=f"the photographed pages are not in {SHARED / 'ocr'}")
needs_pdfium = pytest.mark.skipif(pypdfium2 is None, reason="pypdfium2 is not installed (pip install 'fastnn[pdf]')")
needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext is not installed (poppler-utils)")
SCAN_DPI = 200  # the resolution the test PDFs give the shared pages


# ------------------------------------------------------------------------------------------------ making PDFs


def _pdf(pages, *, trailer=b""):
    """A PDF of ``pages``, each (width_pt, height_pt, jpeg) -- jpeg: a JPEG file's bytes drawn over the whole
    page, or None for an empty page -- written by hand (the objects, then the cross-reference table)."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    kids = []
    number = 3
    empty = None
    for width, height, jpeg in pages:
        if jpeg is None:
            if empty is None:  # one empty content stream, shared
                empty, number = number, number + 1
                objects[empty] = b"<< /Length 0 >>\nstream\n\nendstream"
            contents, resources = empty, b""
        else:
            with Image.open(io.BytesIO(jpeg)) as img:
                (w, h), mode = img.size, img.mode
            space = b"/DeviceGray" if mode == "L" else b"/DeviceRGB"
            objects[number] = (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s "
                               b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream"
                               % (w, h, space, len(jpeg), jpeg))
            draw = b"q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q" % (width, height)
            objects[number + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw)
            resources = b"/Resources << /XObject << /Im0 %d 0 R >> >>" % number
            contents, number = number + 1, number + 2
        objects[number] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] %s /Contents %d 0 R >>"
                           % (width, height, resources, contents))
        kids.append(number)
        number += 1
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for k in sorted(objects):
        offsets[k] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (k, objects[k])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (number,)
    out += b"".join(b"%010d 00000 n \n" % offsets[k] for k in range(1, number))
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (number, trailer, xref)
    return bytes(out)


def _scan(paths, dpi=SCAN_DPI):
    """A PDF of photographs: each JPEG file as a page, its pixels at ``dpi``."""
    pages = []
    for path in paths:
        with Image.open(path) as img:
            w, h = img.size
        pages.append((w * 72 / dpi, h * 72 / dpi, Path(path).read_bytes()))
    return _pdf(pages)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 3-page PDF of the shared pages (01, 02, 01), their JPEG files embedded as they are, at 200 dpi."""
    path = tmp_path_factory.mktemp("pdf") / "three pages.pdf"
    path.write_bytes(_scan([PAGES[0], PAGES[1], PAGES[0]]))
    return path



# ------------------------------------------------------------------------------------------------ PDF input


@needs_pages
@needs_pdfium
def test_a_pdf_is_read_page_by_page_as_its_images_are(scan, texts, capsys, monkeypatch, tmp_path):
    expected = [texts[PAGES[0]], texts[PAGES[1]], texts[PAGES[0]]]
    pages = list(ocr.load_pages(scan, resolution=True))
    # each scanned page rendered at its image's own resolution, pixel for pixel: the image
    photos = [ocr.load_image(p) for p in (PAGES[0], PAGES[1], PAGES[0])]
    assert [(p.shape, p.dtype, round(dpi, 3)) for p, dpi in pages] == [(p.shape, np.uint8, SCAN_DPI) for p in photos]
    for (page, _), photo in zip(pages, photos):  # PDFium's JPEG decoding and Pillow's agree (exactly, here)
        assert np.abs(page.astype(np.int16) - photo).mean() < 0.5
    assert ocr.check_image(scan) == (round(Image.open(PAGES[0]).width * 300 / SCAN_DPI),
                                     round(Image.open(PAGES[0]).height * 300 / SCAN_DPI))  # at 300 dpi
    model = fastnn.ocr.model.load_ocr_model(MODEL)
    for (page, _), path in zip(pages, (PAGES[0], PAGES[1], PAGES[0])):  # the shared pages still read at 0% CER
        assert ocr.cer(ocr.read_text(page, model).text, path.with_suffix(".txt").read_text()) == 0

    assert cli.main(["ocr", str(scan), "--model", MODEL]) == 0
    out = capsys.readouterr().out
    assert out.count("\f") == 2 and out.split("\n\f") == expected[:2] + [expected[2] + "\n"]
    assert cli.main(["ocr", str(scan), str(PAGES[1]), "--model", MODEL, "--format", "json"]) == 0
    assert [(p["image"], p["page"], p["text"]) for p in json.loads(capsys.readouterr().out)] == [
        (str(scan), 1, expected[0]), (str(scan), 2, expected[1]), (str(scan), 3, expected[2]),
        (str(PAGES[1]), 1, texts[PAGES[1]])]

    monkeypatch.setattr("sys.stdin", _Stdin(scan.read_bytes()))  # `-`: the bytes are a PDF
    assert cli.main(["ocr", "-", "--model", MODEL, "--out-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "stdin.txt").read_text().split("\f") == [t + "\n" for t in expected]

    folder = tmp_path / "folder"  # a folder contributes its PDFs
    folder.mkdir()
    shutil.copy(scan, folder / "a.pdf")
    assert cli.main(["ocr", str(folder), "--model", MODEL]) == 0
    assert capsys.readouterr().out.count("\f") == 2


class _Stdin:
    def __init__(self, data):
        self.buffer = io.BytesIO(data)

    def isatty(self):
        return False


def test_without_pypdfium2_a_pdf_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys, no_model):
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf([(612, 792, None)]))
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # import pypdfium2 fails
    assert cli.main(["ocr", str(path)]) == 2
    one_error_line(capsys.readouterr().err, "scan.pdf", "pypdfium2", "fastnn[pdf]")
    with pytest.raises(ValueError, match=r"fastnn\[pdf\]"):
        next(ocr.load_pages(path))


def test_importing_fastnn_ocr_imports_no_pdf_package():
    script = ("import json, sys; import fastnn, fastnn.ocr, fastnn.tasks.ocr, fastnn.cli; "
              "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('pypdfium2', 'ocrmypdf'))))")
    with tempfile.TemporaryDirectory() as here:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=here,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                  str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@needs_pdfium
def test_too_many_pages_are_refused_before_anything_is_rendered(tmp_path, monkeypatch, capsys, no_model):
    path = tmp_path / "huge.pdf"
    path.write_bytes(_pdf([(612, 792, None)] * 10_000))
    rendered = []
    monkeypatch.setattr(pypdfium2.PdfPage, "render", lambda *a, **k: rendered.append(1))
    assert cli.main(["ocr", str(path)]) == 2
    one_error_line(capsys.readouterr().err, "cannot read PDF", "huge.pdf", "10000 pages", "FASTNN_MAX_PAGES=500")
    with pytest.raises(ValueError, match="10000 pages"):
        next(ocr.load_pages(path))
    monkeypatch.setenv("FASTNN_MAX_PAGES", "10000")
    assert ocr.check_image(path) == (2550, 3300)  # Letter at 300 dpi
    assert rendered == []


@needs_pdfium
def test_each_page_goes_through_the_pixel_limits(tmp_path, monkeypatch, capsys, no_model):
    """A Letter page, then a 200x200-inch one: 60000x60000 pixels at 300 dpi, refused from its size alone."""
    path = tmp_path / "poster.pdf"
    path.write_bytes(_pdf([(612, 792, None), (14400, 14400, None)]))
    assert cli.main(["ocr", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err, "poster.pdf", "page 2", "200x200 inches", "60000x60000 pixels",
                           "FASTNN_MAX_IMAGE_PIXELS=500000000", "nothing was rendered")
    assert line.startswith("fastnn ocr: error: cannot read PDF"), line
    with pytest.raises(ValueError, match="page 2: it is 200x200 inches"):
        list(ocr.load_pages(path))
    # over the loaded limit: rendered at 1/2, 1/3... of 300 dpi, as a large image is downscaled
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(_pdf([(612, 792, None)]))
    monkeypatch.setenv("FASTNN_MAX_LOADED_PIXELS", "1000000")
    [(image, dpi)] = ocr.load_pages(letter, resolution=True)
    assert image.shape == (1100, 850, 3) and dpi == 100  # 2550x3300 at 1/3
    monkeypatch.setenv("FASTNN_MAX_IMAGE_PIXELS", "5000000")  # now Letter at 300 dpi is too large too
    with pytest.raises(ValueError, match=r"page 1: it is 8\.5x11 inches \(612x792 points\), 2550x3300 pixels"):
        ocr.check_image(letter)


@needs_pdfium
@pytest.mark.parametrize("case", ["broken", "encrypted", "no pages"])
def test_a_broken_or_encrypted_pdf_is_one_line(case, tmp_path, capsys, no_model):
    path = tmp_path / f"{case}.pdf"
    if case == "broken":
        path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
        words = ["not a PDF pypdfium2 can open"]
    elif case == "encrypted":  # the standard security handler, with a user password (not the empty one)
        path.write_bytes(_pdf([(612, 792, None)], trailer=b"/Encrypt << /Filter /Standard /V 1 /R 2 /O <"
                              + b"ab" * 32 + b"> /U <" + b"cd" * 32 + b"> /P -4 >> /ID [<00112233445566778899aabb"
                              b"ccddeeff> <00112233445566778899aabbccddeeff>] "))
        words = ["encrypted", "password"]
    else:
        path.write_bytes(_pdf([]))
        words = ["no pages"]
    assert cli.main(["ocr", str(path)]) == 2
    one_error_line(capsys.readouterr().err, f"{case}.pdf", *words)


# ------------------------------------------------------------------------------------------------ --format pdf


def _pdftotext(path, *args):
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def _bbox_words(path):
    """``pdftotext -bbox``: per page, its size and its words (text, xMin, yMin, xMax, yMax) in points."""
    pages = []
    for part in _pdftotext(path, "-bbox").split("<page ")[1:]:
        size = tuple(float(v) for v in re.match(r'width="([\d.]+)" height="([\d.]+)"', part).groups())
        words = [(m[4], *map(float, m[:4])) for m in
                 re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
                            part)]
        pages.append((size, words))
    return pages


def _json_words(page):
    return [w for line in page["lines"] for w in line["words"]]


def _check_text_layer(pdf_path, json_pages, dpis, tolerance=2.0):
    """pdftotext gives back the words read, in order, each within ``tolerance`` pixels of its box."""
    raw = _pdftotext(pdf_path, "-raw").split("\f")
    assert [page.split() for page in raw[:len(json_pages)]] == [[w["text"] for w in _json_words(p)]
                                                                for p in json_pages]
    pages = _bbox_words(pdf_path)
    assert len(pages) == len(json_pages)
    for ((width, height), found), page, dpi in zip(pages, json_pages, dpis):
        scale = 72 / dpi
        assert (width, height) == pytest.approx((page["width"] * scale, page["height"] * scale), abs=0.01)
        words = _json_words(page)
        assert sorted(w[0] for w in found) == sorted(w["text"] for w in words)
        for text, x0, y0, x1, y1 in found:
            box = min((w for w in words if w["text"] == text), key=lambda w: abs(w["left"] * scale - x0)
                      + abs(w["top"] * scale - y0))
            want = (box["left"], box["top"], box["left"] + box["width"], box["top"] + box["height"])
            assert np.allclose(np.array([x0, y0, x1, y1]) / scale, want, atol=tolerance), (text, want)


@needs_pages
@needs_pdftotext
def test_format_pdf_is_searchable_with_each_word_on_its_box(texts, capsysbinary, tmp_path):
    args = [str(PAGES[0]), str(PAGES[1]), "--model", MODEL]
    assert cli.main(["ocr", *args, "--format", "json"]) == 0
    pages = json.loads(capsysbinary.readouterr().out)
    assert cli.main(["ocr", *args, "--format", "pdf"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"%PDF-1.4") and out.rstrip().endswith(b"%%EOF")
    one = tmp_path / "one.pdf"
    one.write_bytes(out)
    # a photo declaring 72 dpi (a phone's) is placed at 300 dpi: fastnn.ocr.pdf.IMAGE_DPI
    _check_text_layer(one, pages, [ocr_pdf.IMAGE_DPI] * 2)
    assert "fastnn" in subprocess.run(["pdfinfo", str(one)], capture_output=True, text=True).stdout

    out_dir = tmp_path / "out"  # one PDF per image, written atomically
    assert cli.main(["ocr", *args, "--format", "pdf", "--out-dir", str(out_dir)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [PAGES[0].stem + ".pdf", PAGES[1].stem + ".pdf"]
    for path, page in zip(PAGES, pages):
        _check_text_layer(out_dir / (path.stem + ".pdf"), [page], [ocr_pdf.IMAGE_DPI])


@needs_pages
@needs_pdfium
@needs_pdftotext
def test_format_pdf_of_a_pdf_keeps_its_page_size(scan, capsysbinary, tmp_path):
    assert cli.main(["ocr", str(scan), "--model", MODEL, "--format", "json"]) == 0
    pages = json.loads(capsysbinary.readouterr().out)
    out = tmp_path / "out.pdf"
    assert cli.main(["ocr", str(scan), "--model", MODEL, "--format", "pdf"]) == 0
    out.write_bytes(capsysbinary.readouterr().out)
    _check_text_layer(out, pages, [SCAN_DPI] * 3)  # each page the input's size in points
    # and pypdfium2 reads it back: the searchable PDF is itself a scan fastnn reads
    assert [p.shape for p in ocr.load_pages(out)] == [p.shape for p in ocr.load_pages(scan)]


@needs_pdftotext
def test_a_failed_image_is_left_out_of_the_pdf(tmp_path, capsysbinary):
    """A TIFF whose second page's pixels are cut off: its first page is taken back out of the stdout PDF."""
    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.tif"
    noise = [Image.fromarray(rng.integers(0, 255, (300, 400), dtype=np.uint8)) for _ in range(2)]
    noise[0].save(whole, save_all=True, append_images=[noise[1]])
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size * 3 // 4])
    good = tmp_path / "good.png"
    Image.new("L", (200, 100), 255).save(good)
    assert cli.main(["ocr", str(good), str(cut), str(good), "--model", MODEL, "--format", "pdf"]) == 2
    out = tmp_path / "out.pdf"
    out.write_bytes(capsysbinary.readouterr().out)
    assert [size for size, _ in _bbox_words(out)] == [(48.0, 24.0)] * 2  # 200x100 pixels at 300 dpi, twice
    assert cli.main(["ocr", str(cut), str(good), "--model", MODEL, "--format", "pdf", "--out-dir",
                     str(tmp_path / "dir")]) == 2
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["good.pdf"]  # no cut.pdf, no temporary


def test_format_pdf_is_refused_on_a_terminal_before_the_model_loads(tmp_path, monkeypatch, capsys, no_model):
    page = tmp_path / "page.png"
    Image.new("L", (200, 100), 255).save(page)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdout", Terminal())
    assert cli.main(["ocr", str(page), "--format", "pdf"]) == 2
    one_error_line(capsys.readouterr().err, "--format pdf", "terminal", "--out-dir")


def test_format_names_and_suffixes():
    from fastnn.ocr.formats import FORMATS

    assert FORMATS["pdf"] == ".pdf" and "pdf" in ocr_task.FORMAT_NAMES and ".pdf" in ocr_task.IMAGE_SUFFIXES


# ------------------------------------------------------------------------------------------------ the writer


@needs_pdftotext
def test_the_writer_puts_each_word_on_its_box_and_escapes_it(tmp_path):
    words = [("HELLO", 20, 50, 130, 30), ("(A)\\B", 180, 40, 60, 45), ("7", 300, 120, 12, 20)]
    out = io.BytesIO()
    writer = ocr_pdf.SearchablePdf(out)
    writer.add_page(np.full((200, 400), 255, np.uint8), words, dpi=150)
    mark = writer.mark()
    writer.add_page(np.zeros((50, 50, 4), np.float32), [("GONE", 1, 1, 20, 10)], dpi=150)  # RGBA float, taken out
    writer.rollback(mark)
    writer.add_page(None, [("TEXT", 10, 10, 80, 20)], dpi=72, width=300, height=100)  # text only
    writer.close()
    assert repr(writer).startswith("SearchablePdf(pages=2")
    path = tmp_path / "w.pdf"
    path.write_bytes(out.getvalue())
    (size1, found1), (size2, found2) = _bbox_words(path)
    assert size1 == (192.0, 96.0) and size2 == (300.0, 100.0)
    scale = 72 / 150
    for (text, x0, y0, x1, y1), (want, left, top, w, h) in zip(found1, words):
        assert text == want
        assert np.allclose([x0, y0, x1, y1], np.array([left, top, left + w, top + h]) * scale, atol=0.01)
    assert [w[0] for w in found2] == ["TEXT"] and np.allclose(found2[0][1:], [10, 10, 90, 30], atol=0.01)
    assert "GONE" not in _pdftotext(path)


def test_an_empty_writer_gives_a_valid_pdf_of_one_page():
    out = io.BytesIO()
    writer = ocr_pdf.SearchablePdf(out)
    writer.close()
    data = out.getvalue()
    assert data.startswith(b"%PDF-1.4") and b"/Count 1" in data
    if pypdfium2 is not None:
        assert len(pypdfium2.PdfDocument(data)) == 1
    with pytest.raises(ValueError, match="dpi"):
        ocr_pdf.SearchablePdf(io.BytesIO()).add_page(np.zeros((5, 5)), [], dpi=0)


# ------------------------------------------------------------------------------------------------ ocrmypdf


def _ocrmypdf_missing():
    try:
        import ocrmypdf  # noqa: F401
    except ImportError:
        return "ocrmypdf is not installed (pip install 'fastnn[ocrmypdf]')"
    return None


@needs_pages
@needs_pdftotext
@pytest.mark.skipif(_ocrmypdf_missing() is not None, reason=str(_ocrmypdf_missing()))
@pytest.mark.parametrize("renderer", ["auto", "sandwich"])
def test_ocrmypdf_reads_with_fastnn(renderer, tmp_path):
    """`ocrmypdf --plugin fastnn.ocrmypdf in.pdf out.pdf` (no Tesseract, no Ghostscript with --output-type pdf):
    the text ocrmypdf puts in is the pages' text, from fastnn."""
    source = tmp_path / "in.pdf"
    source.write_bytes(_scan(PAGES))
    out = tmp_path / "out.pdf"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "FASTNN_OCR_MODEL": MODEL}
    proc = subprocess.run([sys.executable, "-m", "ocrmypdf", "--plugin", "fastnn.ocrmypdf", "--output-type", "pdf",
                           "--pdf-renderer", renderer, "--jobs", "1", str(source), str(out)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    # (cwd: `python -m` puts the working directory first on sys.path, where a source tree would shadow the
    # installed fastnn)
    assert proc.returncode == 0, proc.stderr
    pages = _pdftotext(out, "-raw").split("\f")
    for page, path in zip(pages, PAGES):
        # ocrmypdf renders the pages itself (in colour), so a space may differ from fastnn's own rendering
        assert ocr.cer(page, path.with_suffix(".txt").read_text(), True) <= 0.01, page
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
    assert "fastnn" in info, info  # ocrmypdf's creator tag names the engine


def test_sweep_ocr_leaves_pdfs_to_fastnn_ocr(tmp_path, capsys):
    """`fastnn sweep ocr` reads one page per file on its workers: it refuses --format pdf and an explicit PDF,
    and a folder's PDFs are not among its pages (as before PDFs were read)."""
    from fastnn.sweep.ocr_pages import SWEEP_FORMATS, run_ocr

    assert "pdf" not in SWEEP_FORMATS
    page = tmp_path / "page.png"
    Image.new("L", (200, 100), 255).save(page)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(_pdf([(612, 792, None)]))
    with pytest.raises(ValueError, match="fastnn ocr --format pdf"):
        run_ocr([page], out_dir=tmp_path / "out", fmt="pdf")
    with pytest.raises(ValueError, match=r"scan\.pdf \(a PDF\) with fastnn ocr"):
        run_ocr([scan], out_dir=tmp_path / "out")
    assert ocr_task.image_paths([tmp_path], suffixes=(".png",)) == [page]
    assert ocr_task.image_paths([tmp_path]) == [page, scan]


@needs_pages
@needs_pdftotext
def test_the_readme_figures_of_format_pdf(capsysbinary, tmp_path):
    """The README's `fastnn ocr 01_list.jpg --format pdf` figures: its bytes, its page, `TO`'s box."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    said = re.search(r"`fastnn ocr 01_list.jpg --format pdf > 01_list.pdf` writes ([\d,]+) bytes, one ([\d.]+) x "
                     r"([\d.]+) pt page .*?`pdftotext -bbox` puts `TO` at `(xMin=.*?)`", text)
    assert said, "README.md no longer has the --format pdf example: reword the pattern here"
    assert cli.main(["ocr", str(PAGES[0]), "--model", MODEL, "--format", "pdf"]) == 0
    out = tmp_path / "01_list.pdf"
    out.write_bytes(capsysbinary.readouterr().out)
    assert int(said.group(1).replace(",", "")) == out.stat().st_size
    [((width, height), words)] = _bbox_words(out)
    assert (float(said.group(2)), float(said.group(3))) == (width, height)
    first = re.search(r'<word (xMin="[^>]*")>TO</word>', _pdftotext(out, "-bbox")).group(1)
    assert said.group(4) == first

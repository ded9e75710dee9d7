"""fastnn as an OCR engine of ocrmypdf: ``ocrmypdf --plugin fastnn.ocrmypdf in.pdf out.pdf``.

ocrmypdf (the ``fastnn[ocrmypdf]`` extra) does the PDF work -- rasterizing each page, grafting the text layer
onto the original page, PDF/A, optimisation -- and asks an OCR engine, through its ``get_ocr_engine`` hook, for
each page image's text.  This module is that plugin: :class:`FastnnOcrEngine` reads a page image with
``fastnn.ocr`` (the model ``fastnn ocr`` uses: ``$FASTNN_OCR_MODEL``, else the cached or shipped one, loaded
once per worker process) and gives ocrmypdf hOCR (:meth:`~FastnnOcrEngine.generate_hocr`, its default
renderer's input, ``fastnn ocr --format hocr``) or a text-only PDF (:meth:`~FastnnOcrEngine.generate_pdf`,
for ``--pdf-renderer sandwich``: :class:`fastnn.ocr.pdf.SearchablePdf` without the image).  Tesseract is not
needed; ocrmypdf still needs its own tools for what it does around the OCR (Ghostscript for PDF/A output:
give ``--output-type pdf`` to do without it).

The engine is used when ocrmypdf's ``--ocr-engine`` is ``auto`` (the default).  The plugin replaces
ocrmypdf's built-in Tesseract plugin (it blocks it: that plugin's option check fails without the
``tesseract`` program, whichever engine reads); Tesseract's options (``--tesseract-*``) are still accepted,
and do nothing.  ``-l``/``--language``: ``eng``, the only one (fastnn reads the Latin capitals A-Z and the
digits 0-9).  This module imports ocrmypdf: ocrmypdf imports it as its plugin (``import fastnn`` never does).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ocrmypdf import hookimpl
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence

from . import __version__

__all__ = ["FastnnOcrEngine", "get_ocr_engine", "LANGUAGES"]

#: ocrmypdf's built-in Tesseract plugin, which this one replaces (:func:`initialize`).
_TESSERACT_PLUGIN = "ocrmypdf.builtin_plugins.tesseract_ocr"
#: What ``-l`` may name: fastnn reads the Latin capitals and the digits, which ``eng`` covers.
LANGUAGES = frozenset({"eng"})


@functools.lru_cache(maxsize=1)
def _classifier():
    """The OCR classifier, loaded once per process (ocrmypdf runs pages in worker processes or threads)."""
    from .ocr.model import load_ocr_model

    return load_ocr_model(None, progress=False)


def _read(input_file):
    """Read a page image: (its pixels' width, height, resolution in dpi or None, its ``--format json`` object).

    The image is one ocrmypdf rasterized (a PNG or TIFF carrying its resolution).
    """
    from . import ocr
    from .ocr.formats import page_json

    image, dpi = next(iter(ocr.load_pages(input_file, resolution=True)))
    height, width = image.shape[:2]
    result = ocr.read_text(image, _classifier())
    return result, width, height, dpi, page_json(result, Path(input_file).name, width, height)


def _hocr(result, name, width, height) -> str:
    """The page's hOCR (``fastnn ocr --format hocr``) with its lines in one ``p.ocr_par``: ocrmypdf's hOCR
    parser takes a page's lines from its paragraphs (Tesseract's structure) and, without one, its words alone,
    which its renderer then leaves out."""
    from .ocr.formats import Page, hocr_document, page_hocr

    document = hocr_document([Page(result, name, 1, width, height)])
    page = page_hocr(result, name, width, height, 0)
    wrapped = [page[0], f'   <p class="ocr_par" id="par_1_1" title="bbox 0 0 {width} {height}">', *page[1:-1],
               "   </p>", page[-1]]
    return document.replace("\n".join(page), "\n".join(wrapped), 1)


class FastnnOcrEngine(OcrEngine):
    """ocrmypdf's OCR engine interface (``ocrmypdf.pluginspec.OcrEngine``) on ``fastnn.ocr``."""

    @staticmethod
    def version() -> str:
        """fastnn's version."""
        return __version__

    @staticmethod
    def creator_tag(options) -> str:
        """What the PDF's metadata says made its text: ``fastnn VERSION``."""
        return f"fastnn {__version__}"

    def __str__(self) -> str:
        return f"fastnn {__version__}"

    def __repr__(self) -> str:
        return f"FastnnOcrEngine(version={__version__!r})"

    @staticmethod
    def languages(options) -> set:
        """The ``-l`` values fastnn accepts: :data:`LANGUAGES`."""
        return set(LANGUAGES)

    @staticmethod
    def get_orientation(input_file, options) -> OrientationConfidence:
        """No rotation, with no confidence: fastnn does not detect a page's orientation."""
        return OrientationConfidence(angle=0, confidence=0.0)

    @staticmethod
    def get_deskew(input_file, options) -> float:
        """No deskewing: 0 degrees."""
        return 0.0

    @staticmethod
    def generate_hocr(input_file, output_hocr, output_text, options) -> None:
        """Read ``input_file`` (a page image); write its hOCR (``fastnn ocr --format hocr``) and its text."""
        result, width, height, _, _ = _read(input_file)
        Path(output_hocr).write_text(_hocr(result, Path(input_file).name, width, height), encoding="utf-8")
        Path(output_text).write_text(result.text + "\n" if result.text else "", encoding="utf-8")

    @staticmethod
    def generate_pdf(input_file, output_pdf, output_text, options) -> None:
        """Read ``input_file``; write a one-page PDF of its words' invisible text alone, the image's size at
        its resolution (ocrmypdf grafts it onto the page), and its text."""
        from .ocr.pdf import IMAGE_DPI, SearchablePdf

        from PIL import Image

        result, width, height, _, page = _read(input_file)
        with Image.open(input_file) as img:  # ocrmypdf's image declares the resolution it was rasterized at
            dpi = img.info.get("dpi", (IMAGE_DPI, IMAGE_DPI))[0] or IMAGE_DPI
            scale = width / img.size[0]  # 1 unless fastnn downscaled a huge image
        words = [(w["text"], w["left"], w["top"], w["width"], w["height"]) for line in page["lines"]
                 for w in line["words"]]
        with open(output_pdf, "wb") as fh:
            pdf = SearchablePdf(fh, creator=f"fastnn {__version__} (ocrmypdf plugin)")
            pdf.add_page(None, words, dpi=float(dpi) * scale, width=width, height=height)
            pdf.close()
        Path(output_text).write_text(result.text + "\n" if result.text else "", encoding="utf-8")


@hookimpl
def get_ocr_engine(options=None):
    """ocrmypdf's hook: the fastnn engine, unless ``--ocr-engine`` names another one (``tesseract``, ``none``)."""
    if options is not None and getattr(options, "ocr_engine", "auto") not in ("auto", "fastnn"):
        return None
    return FastnnOcrEngine()


@hookimpl
def initialize(plugin_manager):
    """ocrmypdf's hook: take ocrmypdf's Tesseract plugin out.  Its option check requires the ``tesseract``
    program whichever engine reads (ocrmypdf 17's ``--ocr-engine none`` too); its options, which ocrmypdf's
    own validation reads, stay (:func:`register_options`, :func:`add_options`)."""
    plugin_manager.set_blocked(_TESSERACT_PLUGIN)


@hookimpl
def register_options():
    """ocrmypdf's hook: the Tesseract plugin's option model (``options.tesseract``), which ocrmypdf reads."""
    from ocrmypdf.builtin_plugins import tesseract_ocr

    return tesseract_ocr.register_options()


@hookimpl
def add_options(parser):
    """ocrmypdf's hook: the Tesseract plugin's command-line options (accepted, and unused by fastnn)."""
    from ocrmypdf.builtin_plugins import tesseract_ocr

    tesseract_ocr.add_options(parser)

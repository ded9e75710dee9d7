"""The output formats of a read page (``fastnn ocr --format``, ``fastnn sweep ocr``): text, JSON, TSV and hOCR.

Each takes a page's :class:`~fastnn.ocr.OCRResult` (:func:`~fastnn.ocr.read_text`) and the size of the
image as loaded, and gives the text of one image:

A page is one image, or one page of a multi-page TIFF (``fastnn.ocr.load_pages``).

- ``text``: one line per text line, words separated by single spaces; a form feed (``\f``, as Tesseract
  writes) starts each page of a file after its first.
- ``json``: an object per page, ``{"image", "page", "width", "height", "text", "lines": [...]}`` (``page``:
  its number within its file, from 1), each line
  ``{"text", "left", "top", "width", "height", "confidence", "words": [...]}``, each word the same with
  ``"characters"``, each character ``{"text", "left", "top", "width", "height", "confidence"}``.  Boxes are
  in pixels of the image as loaded, from its top-left corner; a confidence is the classifier's probability
  (0-1) of the character read, a word's or line's that of its least confident character.  On stdout a
  list of these objects; in ``--out-dir`` one object per file (a list of them for a file of several
  pages).  Printed compactly: an object or list holding no other is written on one line.
- ``tsv``: Tesseract's TSV, with a ``char_num`` column and character rows added: a header row, then one
  row per page, line, word and character, columns :data:`TSV_COLUMNS`; ``level`` is 1 for the page, 4 for
  a line, 5 for a word (Tesseract's numbers) and 6 for a character; ``page_num`` is the page's position
  among the pages of the call (from 1; with single-page images, the image's position), the other numbers
  count from 1 within their parent (0: not at that level); ``conf`` is a percentage, -1 on page and line
  rows, whose ``text`` is empty.
- ``hocr``: hOCR 1.2 (https://kba.github.io/hocr-spec/1.2/), an XHTML document: a ``div.ocr_page`` per page
  (``title``: ``image "NAME"; bbox 0 0 WIDTH HEIGHT; ppageno N``, N the page's position in the document from
  0), holding a ``span.ocr_line`` per line, holding a ``span.ocrx_word`` per word (``bbox``, ``x_wconf``: the
  word's confidence as a whole percentage), holding a ``span.ocrx_cinfo`` per character (``x_bboxes``: its
  box, ``x_confs``: its confidence in percent, as in the TSV).  A ``bbox`` is ``x0 y0 x1 y1``, the JSON box's
  ``left top left+width top+height``.  On stdout one document for every page of the call; in ``--out-dir``
  one per file.
- ``pdf``: a searchable PDF, each page its image under an invisible text layer that puts each word on its box
  (:class:`fastnn.ocr.pdf.SearchablePdf`, which writes it: binary, so not made by :func:`document`).  On
  stdout one PDF for every page of the call; in ``--out-dir`` one per file.

:func:`document` gives a whole file of pages in a format (what ``--out-dir`` writes), :func:`page_content`
that of one page.
"""

from __future__ import annotations

import json
from typing import NamedTuple
from xml.sax.saxutils import escape

__all__ = ["FORMATS", "TSV_COLUMNS", "TSV_LEVELS", "HOCR_CAPABILITIES", "Page", "page_json", "page_tsv", "page_hocr",
           "page_content", "document", "hocr_document", "compact_json"]

#: ``--format`` values, and the suffix of the file each writes in ``--out-dir``.
FORMATS = {"text": ".txt", "json": ".json", "tsv": ".tsv", "hocr": ".hocr", "pdf": ".pdf"}
#: The hOCR elements (and properties) ``--format hocr`` writes: its ``ocr-capabilities``.
HOCR_CAPABILITIES = ("ocr_page", "ocr_line", "ocrx_word", "ocrx_cinfo", "ocrp_wconf")
#: The columns of ``--format tsv`` (Tesseract's, without block_num and par_num, with char_num).
TSV_COLUMNS = ("level", "page_num", "line_num", "word_num", "char_num", "left", "top", "width", "height", "conf",
               "text")
#: ``level`` of each kind of TSV row: Tesseract's numbers, and 6 for a character (Tesseract has no such row).
TSV_LEVELS = {"page": 1, "line": 4, "word": 5, "character": 6}


def _box(boxes):
    """left, top, width, height of the union of ``[y1, x1, y2, x2]`` boxes."""
    y1, x1 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    y2, x2 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    return {"left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}


class Page(NamedTuple):
    """One read page: its result, its image's name, its position in the call (``number``, from 1), the size
    it was read at, and its position within its file (``page``, from 1)."""

    result: object
    image: str
    number: int
    width: int
    height: int
    page: int = 1


def page_json(result, image, width, height, page=1) -> dict:
    """The ``--format json`` object of one page: its ``ocr.OCRResult`` as nested lines, words, characters.

    See the module docstring for the layout; ``width`` and ``height`` are those of the image as loaded,
    ``page`` the page's number within its file.
    """
    lines = []
    for line in result.lines:
        words = []
        for word in line:
            chars = [{"text": result.chars[i], **_box(result.boxes[[i]]),
                      "confidence": round(float(result.confidences[i]), 4)} for i in word]
            words.append({"text": "".join(c["text"] for c in chars), **_box(result.boxes[word]),
                          "confidence": min(c["confidence"] for c in chars), "characters": chars})
        members = [i for word in line for i in word]
        lines.append({"text": " ".join(w["text"] for w in words), **_box(result.boxes[members]),
                      "confidence": min(w["confidence"] for w in words), "words": words})
    return {"image": str(image), "page": int(page), "width": int(width), "height": int(height), "text": result.text,
            "lines": lines}


def page_tsv(result, page_num, width, height) -> list:
    """The ``--format tsv`` rows (without the header) of one page, as tab-separated strings."""

    def row(level, line, word, char, box, conf, text):
        values = (TSV_LEVELS[level], page_num, line, word, char, box["left"], box["top"], box["width"],
                  box["height"], conf, text)
        return "\t".join(map(str, values))

    rows = [row("page", 0, 0, 0, {"left": 0, "top": 0, "width": int(width), "height": int(height)}, -1, "")]
    for li, line in enumerate(result.lines, 1):
        rows.append(row("line", li, 0, 0, _box(result.boxes[[i for word in line for i in word]]), -1, ""))
        for wi, word in enumerate(line, 1):
            conf = min(float(result.confidences[i]) for i in word)
            rows.append(row("word", li, wi, 0, _box(result.boxes[word]), f"{100 * conf:.2f}",
                            "".join(result.chars[i] for i in word)))
            for ci, i in enumerate(word, 1):
                rows.append(row("character", li, wi, ci, _box(result.boxes[[i]]),
                                f"{100 * float(result.confidences[i]):.2f}", result.chars[i]))
    return rows


def _bbox(box) -> str:
    """A ``left, top, width, height`` box as hOCR's ``bbox x0 y0 x1 y1``."""
    return f"{box['left']} {box['top']} {box['left'] + box['width']} {box['top'] + box['height']}"


def _title(*properties) -> str:
    """An hOCR ``title`` attribute's value, escaped for a double-quoted XML attribute."""
    return escape("; ".join(properties), {'"': "&quot;"})


def _cinfo(result, i) -> str:
    """The ``title`` of character ``i``'s ``ocrx_cinfo``: its box and its confidence in percent."""
    return _title(f"x_bboxes {_bbox(_box(result.boxes[[i]]))}", f"x_confs {100 * float(result.confidences[i]):.2f}")


def page_hocr(result, image, width, height, ppageno=0) -> list:
    """The ``--format hocr`` lines of one page: its ``div.ocr_page`` (see the module docstring).

    ``ppageno`` is the page's position in the document, from 0 (it also numbers the elements' ids).
    """
    n = ppageno + 1
    page_box = {"left": 0, "top": 0, "width": int(width), "height": int(height)}
    name = '"' + str(image).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = [f'  <div class="ocr_page" id="page_{n}" '
           f'title="{_title(f"image {name}", f"bbox {_bbox(page_box)}", f"ppageno {ppageno}")}">']
    for li, line in enumerate(result.lines, 1):
        members = [i for word in line for i in word]
        out.append(f'   <span class="ocr_line" id="line_{n}_{li}" '
                   f'title="{_title(f"bbox {_bbox(_box(result.boxes[members]))}")}">')
        for wi, word in enumerate(line, 1):
            conf = min(float(result.confidences[i]) for i in word)
            chars = "".join(f'<span class="ocrx_cinfo" title="{_cinfo(result, i)}">{escape(result.chars[i])}</span>'
                            for i in word)
            title = _title(f"bbox {_bbox(_box(result.boxes[word]))}", f"x_wconf {round(100 * conf)}")
            out.append(f'    <span class="ocrx_word" id="word_{n}_{li}_{wi}" title="{title}">{chars}</span>')
        out.append("   </span>")
    out.append("  </div>")
    return out


def hocr_document(pages) -> str:
    """An hOCR 1.2 document (XHTML) of ``pages`` (:class:`Page`), numbered from 0 in the order given."""
    from .. import __version__

    head = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
            " <head>",
            "  <title></title>",
            '  <meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>',
            f'  <meta name="ocr-system" content="fastnn {__version__}"/>',
            f'  <meta name="ocr-capabilities" content="{" ".join(HOCR_CAPABILITIES)}"/>',
            f'  <meta name="ocr-number-of-pages" content="{len(pages)}"/>',
            " </head>",
            " <body>"]
    body = [line for k, p in enumerate(pages) for line in page_hocr(p.result, p.image, p.width, p.height, k)]
    return "\n".join([*head, *body, " </body>", "</html>"]) + "\n"


def document(pages, fmt) -> str:
    """The ``--out-dir`` file of a file's pages (:class:`Page`, in order) in format ``fmt``: its whole text.

    See the module docstring: text pages separated by form feeds, one JSON object (a list of them for several
    pages), a TSV header and every page's rows, one hOCR document.
    """
    if fmt == "json":
        objects = [page_json(p.result, p.image, p.width, p.height, p.page) for p in pages]
        return compact_json(objects[0] if len(objects) == 1 else objects) + "\n"
    if fmt == "tsv":
        rows = [row for p in pages for row in page_tsv(p.result, p.number, p.width, p.height)]
        return "\n".join(("\t".join(TSV_COLUMNS), *rows)) + "\n"
    if fmt == "hocr":
        return hocr_document(pages)
    return "\f".join(p.result.text + "\n" if p.result.text else "" for p in pages)


def page_content(result, image, page_num, width, height, fmt) -> str:
    """The ``--out-dir`` file of one page in format ``fmt`` (see the module docstring): its whole text."""
    return document([Page(result, image, page_num, width, height)], fmt)


def _is_leaf(value) -> bool:
    members = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return not any(isinstance(v, (dict, list)) for v in members)


def compact_json(value, indent: int = 0) -> str:
    """``value`` as JSON, every object or list that holds no other on one line (one line per character)."""
    if _is_leaf(value):
        return json.dumps(value)
    pad = ",\n" + " " * (indent + 1)
    if isinstance(value, list):
        return "[" + pad.join(compact_json(v, indent + 1) for v in value) + "]"
    flat = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items() if _is_leaf(v))
    nested = [f"{json.dumps(k)}: {compact_json(v, indent + 1)}" for k, v in value.items() if not _is_leaf(v)]
    return "{" + pad.join(([flat] if flat else []) + nested) + "}"

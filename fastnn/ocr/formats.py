"""The output formats of a read page (``fastnn ocr --format``, ``fastnn sweep ocr``): text, JSON and TSV.

Each takes a page's :class:`~fastnn.ocr.OCRResult` (:func:`~fastnn.ocr.read_text`) and the size of the
image as loaded, and gives the text of one image:

- ``text``: one line per text line, words separated by single spaces.
- ``json``: an object per image, ``{"image", "width", "height", "text", "lines": [...]}``, each line
  ``{"text", "left", "top", "width", "height", "confidence", "words": [...]}``, each word the same with
  ``"characters"``, each character ``{"text", "left", "top", "width", "height", "confidence"}``.  Boxes are
  in pixels of the image as loaded, from its top-left corner; a confidence is the classifier's probability
  (0-1) of the character read, a word's or line's that of its least confident character.  On stdout a
  list of these objects; in ``--out-dir`` one object per file.  Printed compactly: an object or list
  holding no other is written on one line.
- ``tsv``: Tesseract's TSV, with a ``char_num`` column and character rows added: a header row, then one
  row per page, line, word and character, columns :data:`TSV_COLUMNS`; ``level`` is 1 for the page, 4 for
  a line, 5 for a word (Tesseract's numbers) and 6 for a character; ``page_num`` is the image's position
  among the images of the call (from 1), the other numbers count from 1 within their parent (0: not at
  that level); ``conf`` is a percentage, -1 on page and line rows, whose ``text`` is empty.

:func:`page_content` gives the whole file of one page in a format (what ``--out-dir`` writes).
"""

from __future__ import annotations

import json

__all__ = ["FORMATS", "TSV_COLUMNS", "TSV_LEVELS", "page_json", "page_tsv", "page_content", "compact_json"]

#: ``--format`` values, and the suffix of the file each writes in ``--out-dir``.
FORMATS = {"text": ".txt", "json": ".json", "tsv": ".tsv"}
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


def page_json(result, image, width, height) -> dict:
    """The ``--format json`` object of one page: its ``ocr.OCRResult`` as nested lines, words, characters.

    See the module docstring for the layout; ``width`` and ``height`` are those of the image as loaded.
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
    return {"image": str(image), "width": int(width), "height": int(height), "text": result.text, "lines": lines}


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


def page_content(result, image, page_num, width, height, fmt) -> str:
    """The ``--out-dir`` file of one page in format ``fmt`` (see the module docstring): its whole text."""
    if fmt == "json":
        return compact_json(page_json(result, image, width, height)) + "\n"
    if fmt == "tsv":
        return "\n".join(("\t".join(TSV_COLUMNS), *page_tsv(result, page_num, width, height))) + "\n"
    return result.text + "\n" if result.text else ""


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

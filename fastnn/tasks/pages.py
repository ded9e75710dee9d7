"""Reading photographed pages from the command line: ``fastnn ocr`` and ``fastnn ocr-eval``.

The reading itself is ``fastnn.ocr``; the classifier is ``fastnn.ocr.model``'s, trained on first use
and cached.  Both are imported when a page is read, not when the command line starts, so that the other
tasks do not pay for scikit-image and SciPy's image modules.
"""

from __future__ import annotations

import json
from pathlib import Path

from .registry import Option, register

__all__ = ["MAX_EXPECTED_BYTES", "read_expected", "read_pages", "evaluate_page"]

#: The largest expected-text file `ocr-eval` reads (a page's text is a few kilobytes).
MAX_EXPECTED_BYTES = 1 << 20


def read_expected(path) -> str:
    """The expected text of ``ocr-eval``: UTF-8, at most MAX_EXPECTED_BYTES (so /dev/zero is refused)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_EXPECTED_BYTES + 1)
    if len(data) > MAX_EXPECTED_BYTES:
        raise ValueError(f"{path}: over {MAX_EXPECTED_BYTES // 1024} KB: not the expected text of a page")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None


def _numbered(template, image_path) -> str:
    """``--boxes OUT.png`` for one of several images: OUT-<image>.png."""
    t = Path(template)
    return str(t.with_name(f"{t.stem}-{Path(image_path).stem}{t.suffix or '.png'}"))


def read_pages(images, *, model=None, data=None, boxes=None, as_json=False, progress=None) -> dict:
    """Read each photographed page in ``images``; the ``fastnn ocr`` task.

    Parameters
    ----------
    images : sequence of paths
    model : path, optional
        A trained OCR classifier ``.npz``; default ``$FASTNN_OCR_MODEL``, else the cached model.
    data : path, optional
        The real data folder to train the model from when none is cached.
    boxes : path, optional
        Draw the character boxes over each binary image, coloured by line (several images:
        ``OUT-<image>.png``).
    as_json : bool
        Print boxes, characters and confidences as JSON instead of the text.
    progress : bool, optional

    Returns
    -------
    dict
        ``results`` (a list of (path, ``ocr.OCRResult``)), ``lines`` (what the command prints) and an
        empty ``headline``.
    """
    from .. import ocr
    from ..ocr.model import load_ocr_model

    classifier = load_ocr_model(model, data=data, progress=progress)
    results = []
    for path in images:
        res = ocr.read_text(ocr.load_image(path), classifier, keep_binary=bool(boxes))
        if boxes:
            ocr.draw_boxes(res.binary, res.boxes, res.lines, boxes if len(images) == 1 else _numbered(boxes, path))
        results.append((path, res))
    if as_json:
        lines = [json.dumps([{"image": str(p), "text": r.text, "lines": r.lines,
                              "characters": [{"char": c, "box": [int(v) for v in b], "confidence": round(float(q), 4)}
                                             for c, b, q in zip(r.chars, r.boxes, r.confidences)]}
                             for p, r in results], indent=2)]
    else:
        lines = []
        for i, (path, res) in enumerate(results):
            if len(results) > 1:
                lines.append(f"{'' if i == 0 else chr(10)}== {path}")
            lines.append(res.text)
    return {"headline": {}, "results": results, "lines": lines}


def evaluate_page(image, expected, *, model=None, data=None, progress=None) -> dict:
    """Read one page and score it against the expected text file; the ``fastnn ocr-eval`` task.

    Returns
    -------
    dict
        ``headline`` (``cer`` and ``cer_nospace``), ``text`` (the recognised text), ``lines``.
    """
    expected_text = read_expected(expected)  # before the model: a wrong file fails at once
    from .. import ocr
    from ..ocr.model import load_ocr_model

    classifier = load_ocr_model(model, data=data, progress=progress)
    res = ocr.read_text(ocr.load_image(image), classifier)
    headline = {"cer": ocr.cer(res.text, expected_text), "cer_nospace": ocr.cer(res.text, expected_text, True)}
    return {"headline": headline, "text": res.text, "lines": [res.text]}


_MODEL = Option("--model", help="a trained OCR classifier .npz (default: $FASTNN_OCR_MODEL, else the cached model, "
                                "trained on first use from --data / $FASTNN_DATA and cached in $FASTNN_CACHE or "
                                "~/.cache/fastnn)")
_DATA_HELP = {"data": "real data folder to train the model from if none is cached"}


def _printed(result) -> list:
    return result["lines"]


register("ocr", read_pages, help="read photographed pages of handwritten capitals and digits; print the text",
         description="Find the characters, group them into lines and words, classify them and print the text "
                     "of each IMAGE.",
         options=[Option("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, ...)"), _MODEL,
                  Option("--boxes", metavar="OUT.png", help="draw the boxes over the binary image, coloured by line "
                                                            "(several images: OUT-<image>.png)"),
                  Option("--json", param="as_json", action="store_true",
                         help="print boxes, characters and confidences as JSON")],
         common_help=_DATA_HELP, lines=_printed)
register("ocr-eval", evaluate_page,
         help="read one page and print its character error rate against the expected text",
         description="Print the recognised text, then `cer: ...` (Levenshtein distance / length of the expected "
                     "text, case folded, only A-Z, 0-9 and spaces kept) and `cer_nospace: ...`.",
         options=[Option("image", metavar="IMAGE"), Option("expected", metavar="EXPECTED.txt"), _MODEL],
         common_help=_DATA_HELP, lines=_printed)

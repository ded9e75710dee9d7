"""How well do ``fastnn ocr``'s confidences mean what they say?  Their expected calibration error (ECE) on
generated pages of unseen handwriting, before and after the calibration (``fastnn.ocr.confidence``), and the
calibration's coefficients fitted on them.

    python bench/unseen_pages.py make --split valid --kind words --pages 12 --out V1   # and --kind codes: V2
    python bench/unseen_pages.py make --split test --kind words --pages 12 --out T1    # and --kind codes: T2
    python bench/ocr_calibration.py --fit V1 V2 --check T1 T2 [--model PATH] [--json OUT]

Every page is read with ``fastnn.ocr.read_text`` (the default decoding).  The characters read are aligned
with the expected text by ``difflib`` over the whole page (spaces and line breaks left out); a character
counts where the alignment pairs it with one expected character (equal runs, and replaced runs of the same
length), and is right when the two are the same.  A word counts when all its characters do, and is right
when all are right.

``--fit`` pages choose the coefficients (``fastnn.ocr.confidence.fit_coefficients``: maximum likelihood of
each counted character's being right); ``--check`` pages only report.  The coefficients are printed as the
line of ``fastnn/ocr/confidence.py`` that holds them (``COEFFICIENTS``), which ships them.  Three
confidences are reported on every folder:

- ``raw``: the classifier's probability of the character chosen, a word's its least confident character's
  (what fastnn reported before the calibration);
- ``cal-min``: the calibration fitted here, a word's its least confident character's;
- ``cal-prod``: the calibration fitted here, a word's the product of its characters' (what fastnn reports).

ECE: confidences in 10 equal bins, the mean over bins of |accuracy - mean confidence| weighted by the bin's
share.  This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

import numpy as np

BINS = 10


def _pages(folder: Path):
    paths = sorted(folder.glob("page_*.jpg"))
    if not paths:
        raise SystemExit(f"ocr_calibration: no page_*.jpg in {folder}")
    return paths


def read_folder(folder: Path, model) -> list[dict]:
    """Per page: the classifier's P rows, the labels chosen, whether each is right (None: not aligned), the
    words as index lists, and the calibration's features of each character."""
    from fastnn import ocr
    from fastnn.data import CLASSES
    from fastnn.ocr.confidence import confidence_features

    out = []
    for path in _pages(folder):
        expected = "".join(path.with_suffix(".txt").read_text().split())
        res = ocr.read_text(ocr.load_image(path), model)
        read = "".join(res.chars)
        right = [None] * len(read)
        matcher = difflib.SequenceMatcher(None, read, expected, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag in ("equal", "replace") and i2 - i1 == j2 - j1:
                for k in range(i2 - i1):
                    right[i1 + k] = read[i1 + k] == expected[j1 + k]
        labels = np.array([CLASSES.index(c) for c in res.chars], dtype=np.int64)
        words = [word for line in res.lines for word in line]
        out.append({"P": res.probabilities, "labels": labels, "right": right, "words": words,
                    "features": confidence_features(res.probabilities, labels, words) if len(labels) else
                    np.zeros((0, 5)), "shipped": res.confidences})
    return out


def ece(conf, right) -> float:
    conf, right = np.asarray(conf, float), np.asarray(right, float)
    if conf.size == 0:
        return float("nan")
    bins = np.minimum((conf * BINS).astype(int), BINS - 1)
    total = 0.0
    for b in range(BINS):
        sel = bins == b
        if sel.any():
            total += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(total)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def character_confidences(page, how, coefficients):
    """The confidence of each character of ``page``: ``raw`` or calibrated with ``coefficients``."""
    from fastnn.ocr.confidence import FEATURES

    if how == "raw":
        return page["P"][np.arange(len(page["labels"])), page["labels"]]
    return _sigmoid(page["features"] @ np.array([coefficients[f] for f in FEATURES]))


def samples(pages, how, coefficients):
    """(character confidences, rights), (word confidences, rights) over the counted characters and words."""
    cc, cr, wc, wr = [], [], [], []
    for p in pages:
        conf = character_confidences(p, how, coefficients)
        for i, r in enumerate(p["right"]):
            if r is not None:
                cc.append(conf[i])
                cr.append(r)
        for word in p["words"]:
            rs = [p["right"][i] for i in word]
            if all(r is not None for r in rs):
                wc.append(float(np.prod(conf[word])) if how == "cal-prod" else float(conf[word].min()))
                wr.append(all(rs))
    return (np.array(cc), np.array(cr)), (np.array(wc), np.array(wr))


def fit(pages) -> dict:
    """The calibration's coefficients fitted on the counted characters of ``pages``."""
    from fastnn.ocr.confidence import fit_coefficients

    X = np.concatenate([p["features"][[i for i, r in enumerate(p["right"]) if r is not None]] for p in pages])
    y = np.array([r for p in pages for r in p["right"] if r is not None], dtype=bool)
    return fit_coefficients(X, y)


def report(name, pages, coefficients) -> dict:
    row = {}
    for how in ("raw", "cal-min", "cal-prod"):
        (c, r), (wc, wr) = samples(pages, how, coefficients)
        row[how] = {"chars": int(c.size), "char_accuracy": float(r.mean()), "char_mean_conf": float(c.mean()),
                    "char_ece": ece(c, r), "words": int(wc.size), "word_accuracy": float(wr.mean()),
                    "word_mean_conf": float(wc.mean()), "word_ece": ece(wc, wr)}
        x = row[how]
        print(f"{name:<24} {how:<8} chars {x['chars']:>5} acc {x['char_accuracy']:.4f} conf "
              f"{x['char_mean_conf']:.4f} ECE {x['char_ece']:.4f} | words {x['words']:>4} acc {x['word_accuracy']:.4f} "
              f"conf {x['word_mean_conf']:.4f} ECE {x['word_ece']:.4f}")
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fit", nargs="+", required=True, help="folders of generated pages that fit the calibration")
    p.add_argument("--check", nargs="*", default=[], help="folders of generated pages that only report")
    p.add_argument("--model", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from fastnn import ocr
    from fastnn.ocr.confidence import COEFFICIENTS

    model = ocr.load_ocr_model(args.model)
    fitted = {f: read_folder(Path(f), model) for f in args.fit}
    check = {f: read_folder(Path(f), model) for f in args.check}
    coefficients = fit([pg for pages in fitted.values() for pg in pages])
    print(f"fitted on {', '.join(args.fit)}:")
    print("COEFFICIENTS = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in coefficients.items()) + "}")
    shipped = all(abs(coefficients[k] - v) < 5e-4 for k, v in COEFFICIENTS.items())
    print(f"(the shipped COEFFICIENTS {'are these' if shipped else 'differ: ' + str(COEFFICIENTS)})")
    rows = {"coefficients": coefficients, "fit": {}, "check": {}}
    for kind, folders in (("fit", fitted), ("check", check)):
        pooled = [pg for pages in folders.values() for pg in pages]
        if len(folders) > 1:
            rows[kind]["pooled"] = report(f"{kind} (all)", pooled, coefficients)
        for f, pages in folders.items():
            rows[kind][f] = report(f"{kind} {Path(f).name}", pages, coefficients)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

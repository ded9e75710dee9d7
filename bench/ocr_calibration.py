"""How well do ``fastnn ocr``'s confidences mean what they say?  Their expected calibration error (ECE) on
generated pages of unseen handwriting, and the temperature that calibrates them.

    python bench/unseen_pages.py make --split valid --kind words --pages 12 --out V1   # and --kind codes: V2
    python bench/unseen_pages.py make --split test --kind words --pages 12 --out T1    # and --kind codes: T2
    python bench/ocr_calibration.py --fit V1 V2 --check T1 T2 [--model PATH] [--json OUT]

Every page is read with ``fastnn.ocr.read_text`` (the default decoding).  The characters read are aligned
with the expected text by ``difflib`` over the whole page (spaces and line breaks left out); a character
counts where the alignment pairs it with one expected character (equal runs, and replaced runs of the same
length), and is right when the two are the same.  A word counts when all its characters do, and is right
when all are right.

A character's confidence is the probability of the character chosen under ``softmax(log P / T)``, P the
classifier's probabilities; T = 1 is the classifier's own.  ``--fit`` pages choose T by the negative
log-likelihood of the characters chosen being right (a temperature only rescales how sure the classifier
is, so the choice of character is untouched); ``--check`` pages only report.  A word's confidence is its
least confident character's (what every output format reports).  ECE: confidences in 10 equal bins, the
mean over bins of |accuracy - mean confidence| weighted by the bin's share.  This is a measurement, not a
test.
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
    """Per page: the classifier's P rows, the labels chosen, whether each is right (None: not aligned), and the
    words as index lists."""
    from fastnn import ocr
    from fastnn.data import CLASSES

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
        out.append({"P": res.probabilities, "labels": labels, "right": right,
                    "words": [word for line in res.lines for word in line]})
    return out


def confidences(P, labels, T):
    """The probability of each chosen label under softmax(log P / T)."""
    logits = np.log(np.clip(P, 1e-12, None)) / T
    logits -= logits.max(axis=1, keepdims=True)
    Q = np.exp(logits)
    Q /= Q.sum(axis=1, keepdims=True)
    return Q[np.arange(len(labels)), labels]


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


def samples(pages, T):
    """(character confidences, rights), (word confidences, rights) over the aligned characters and words."""
    cc, cr, wc, wr = [], [], [], []
    for p in pages:
        conf = confidences(p["P"], p["labels"], T) if len(p["labels"]) else np.zeros(0)
        for i, r in enumerate(p["right"]):
            if r is not None:
                cc.append(conf[i])
                cr.append(r)
        for word in p["words"]:
            rs = [p["right"][i] for i in word]
            if all(r is not None for r in rs):
                wc.append(min(conf[i] for i in word))
                wr.append(all(rs))
    return (np.array(cc), np.array(cr)), (np.array(wc), np.array(wr))


def fit_temperature(pages) -> float:
    """T minimising the negative log-likelihood of each aligned character's being right (Bernoulli of its
    confidence), over a log grid refined around the best."""
    def nll(T):
        (c, r), _ = samples(pages, T)
        c = np.clip(c, 1e-9, 1 - 1e-9)
        return float(-np.mean(np.where(r, np.log(c), np.log(1 - c))))
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=nll)
    fine = np.exp(np.linspace(np.log(best) - 0.06, np.log(best) + 0.06, 25))
    return float(min(fine, key=nll))


def report(name, pages, T) -> dict:
    row = {}
    for label, t in (("raw", 1.0), ("calibrated", T)):
        (c, r), (wc, wr) = samples(pages, t)
        row[label] = {"chars": int(c.size), "char_accuracy": float(r.mean()), "char_mean_conf": float(c.mean()),
                      "char_ece": ece(c, r), "words": int(wc.size), "word_accuracy": float(wr.mean()),
                      "word_mean_conf": float(wc.mean()), "word_ece": ece(wc, wr)}
        x = row[label]
        print(f"{name:<28} {label:<10} T={t:<5.3g} chars {x['chars']:>5} acc {x['char_accuracy']:.4f} conf "
              f"{x['char_mean_conf']:.4f} ECE {x['char_ece']:.4f} | words {x['words']:>4} acc {x['word_accuracy']:.4f} "
              f"conf {x['word_mean_conf']:.4f} ECE {x['word_ece']:.4f}")
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fit", nargs="+", required=True, help="folders of generated pages that choose T")
    p.add_argument("--check", nargs="*", default=[], help="folders of generated pages that only report")
    p.add_argument("--model", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from fastnn import ocr

    model = ocr.load_ocr_model(args.model)
    fit = {f: read_folder(Path(f), model) for f in args.fit}
    check = {f: read_folder(Path(f), model) for f in args.check}
    T = fit_temperature([pg for pages in fit.values() for pg in pages])
    print(f"temperature: {T:.3f} (fitted on {', '.join(args.fit)})")
    rows = {"temperature": T, "fit": {}, "check": {}}
    for kind, folders in (("fit", fit), ("check", check)):
        for f, pages in folders.items():
            rows[kind][f] = report(f"{kind} {Path(f).name}", pages, T)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

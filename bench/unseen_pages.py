"""Photographed-looking pages of handwriting the OCR model has never seen, and their character error rate.

    python bench/unseen_pages.py make --split test --pages 12 --out DIR [--seed 0] [--kind words|codes]
    python bench/unseen_pages.py eval DIR [--model PATH] [--json OUT] [--baseline] [--no-language-model]

``make`` writes ``page_NN.jpg`` and ``page_NN.txt`` (the expected text, words separated by single spaces,
one line per text line) into DIR.  Each page is built from real handwriting of one hw36 split:

* letters: the split's rows of classes A-Z (hw36's letters are EMNIST-style, so upper- and lower-case
  forms of a letter appear under one label, as in the held-out pages the OCR will be judged on);
* digits: MNIST's ``t10k`` file (never its training file), minus any image that is also an hw36 row of
  another split (hw36 cut its digits from both MNIST files), halved between the splits: ``valid`` pages
  use t10k rows 0-4999, ``test`` pages rows 5000-9999;

laid out as lines of words at a character height of 60-150 px,
in blue or black ink, on plain or ruled paper, under a lighting gradient and sometimes a shadow, rotated
within +-5 degrees, blurred, with sensor noise, saved as JPEG (quality 55-90).  ``valid`` pages are for
choosing a recipe, ``test`` pages for reporting it: a recipe trained on a split must not be scored on
pages made from it.

``--kind words`` (the default) writes common English words and some numbers; ``--kind codes`` writes the
text of forms that is not words: codes of letters then digits (MX8677, CK3723), digits then letters (12B,
4XK), letters with a digit inside (VCN3, A4B), postcodes (AB12 3CD, W1 5DX), number plates (AB12CDE),
random letter strings, and numbers; a page of either kind comes from the same glyph banks and photograph.

``eval`` reads every page with ``fastnn.ocr.read_text`` and prints each page's CER (spaces counted and
ignored) and the means; ``--baseline`` also reads each page as ``read_text`` did before the per-character
decision and the dot rule (every box read, each word of two or more characters all letters or all digits)
and prints its means, from the same run.  This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fastnn.data import CLASSES
from fastnn.ocr.synth import photograph, tight_glyph

WORDS = """
THE AND FOR ARE BUT NOT YOU ALL ANY CAN HAD HER WAS ONE OUR OUT DAY GET HAS HIM HIS HOW MAN NEW NOW OLD
SEE TWO WAY WHO BOY DID ITS LET PUT SAY SHE TOO USE ABOUT AFTER AGAIN BLACK BREAD BRING CHAIR CLEAN
CLOCK DRINK EARLY EIGHT FIELD FIRST FRUIT GREEN HAPPY HEAVY HORSE HOUSE JUICE KNIFE LARGE LEMON LIGHT
MONEY MUSIC NIGHT OCEAN PAPER PARTY PEACH PHONE PIZZA PLANT QUEEN QUICK RADIO RIVER ROBOT SEVEN SHEEP
SMALL SOUND SPOON STONE SUGAR TABLE THREE TIGER TRAIN WATER WHEEL WHITE WORLD YELLOW ZEBRA BANANA
BOTTLE BUTTER CAMERA CANDLE CARROT CASTLE COFFEE COOKIE DINNER DOCTOR DRAGON FLOWER FOREST GARDEN
GUITAR HAMMER JACKET JUNGLE KETTLE LADDER LETTER MARKET MIRROR MONKEY NUMBER ORANGE PENCIL PEPPER
PILLOW POCKET POTATO RABBIT SCHOOL SILVER SPRING SUMMER TICKET TOMATO WINDOW WINTER YOGURT BICYCLE
CABBAGE KITCHEN LIBRARY MORNING PICTURE QUARTER SWEATER VILLAGE WEATHER JOURNEY MACHINE OXYGEN
FAMILY FRIEND BRIDGE PLANET SQUARE VOLUME WIZARD ZIPPER JAZZ QUIZ BOX FOX JOKE KING VERY HAVE WHAT
"""



def _glyph_bank(data_dir: Path, split: str):
    """{char: list of upright 32x32 float32 ink images (1 = ink)} from the split's letters and t10k digits."""
    from fastnn import data as D

    X, Y = D.load_hw36(data_dir, split)
    labels = Y.argmax(1)
    bank = {c: [] for c in CLASSES}
    for k in range(26):
        for row in X[labels == k]:
            bank[CLASSES[k]].append(1.0 - row.reshape(32, 32).T.astype(np.float32))
    # digits: MNIST t10k, minus rows that hw36's other splits hold (quantised to bytes, as they were cut)
    others = set()
    for name in D.HW36_SPLITS:
        if name == split:
            continue
        Xo, Yo = D.load_hw36(data_dir, name)
        digit_rows = Xo[Yo.argmax(1) >= 26]
        others.update(np.round(r * 255).astype(np.uint8).tobytes() for r in digit_rows)
    images, digit_labels = D.load_mnist(data_dir, "test")
    half = slice(0, 5000) if split != "test" else slice(5000, 10000)
    images, digit_labels = images[half], digit_labels[half]
    rows = D.mnist_to_nist36(images)
    for img, row, d in zip(images, rows, digit_labels):
        if np.round(row * 255).astype(np.uint8).tobytes() in others:
            continue
        bank[str(int(d))].append(img.astype(np.float32) / 255.0)
    return bank


def _text(rng, n_lines):
    words = WORDS.split()
    lines = []
    for _ in range(n_lines):
        line = []
        for _ in range(int(rng.integers(2, 5))):
            if rng.random() < 0.15:
                line.append(str(int(rng.integers(0, 10 ** int(rng.integers(1, 5))))))
            else:
                line.append(words[int(rng.integers(len(words)))])
        lines.append(line)
    return lines


_LETTERS = CLASSES[:26]
_DIGITS = CLASSES[26:]


def _code(rng):
    """One token (or two, for a postcode) of a form's non-word text, by a shape drawn at random."""
    def letters(n):
        return "".join(_LETTERS[int(k)] for k in rng.integers(0, 26, n))

    def digits(n):
        return "".join(_DIGITS[int(k)] for k in rng.integers(0, 10, n))

    shape = int(rng.integers(0, 9))
    if shape == 0:                                         # MX8677, CK3723, ABC123
        return [letters(int(rng.integers(2, 4))) + digits(int(rng.integers(3, 5)))]
    if shape == 1:                                         # 12B, 4XK, 2024AB
        return [digits(int(rng.integers(1, 5))) + letters(int(rng.integers(1, 3)))]
    if shape == 2:                                         # VCN3, A4B, X7
        n = int(rng.integers(2, 5))
        k = int(rng.integers(1, n + 1))
        return [letters(k) + digits(1) + letters(n - k)]
    if shape == 3:                                         # AB12 3CD, W1 5DX
        return [letters(int(rng.integers(1, 3))) + digits(int(rng.integers(1, 3))), digits(1) + letters(2)]
    if shape == 4:                                         # AB12CDE
        return [letters(2) + digits(2) + letters(3)]
    if shape in (5, 6):                                    # QXZT: letters that are no word
        return [letters(int(rng.integers(2, 7)))]
    return [digits(int(rng.integers(1, 7)))]               # 7, 4096, 310552


def _codes_text(rng, n_lines):
    lines = []
    for _ in range(n_lines):
        line = []
        for _ in range(int(rng.integers(2, 5))):
            line.extend(_code(rng))
        lines.append(line)
    return lines


def make_page(bank, rng, width=2400, kind="words"):
    """One page: (uint8 RGB image, expected text), photographed by ``fastnn.ocr.synth.photograph``."""
    from skimage.transform import rescale

    h = float(rng.uniform(60, 150))                       # the character height of this page, px
    lines = (_text if kind == "words" else _codes_text)(rng, int(rng.integers(4, 9)))
    margin = int(1.2 * h)
    pitch = h * float(rng.uniform(1.7, 2.2))
    height = int(2 * margin + pitch * len(lines) + h)
    ink_alpha = np.zeros((height, width), np.float32)
    kept_lines = []
    y_base = margin + h
    for words in lines:
        x = margin + float(rng.uniform(0, h))
        kept = []
        for word in words:
            glyphs = []
            for ch in word:
                g = tight_glyph(bank[ch][int(rng.integers(len(bank[ch])))])
                scale = h * float(rng.uniform(0.85, 1.1)) / 24.0  # hw36 and MNIST glyphs are ~20-24 px tall
                glyphs.append(np.clip(rescale(g, scale, order=1, anti_aliasing=True), 0, 1).astype(np.float32))
            word_w = sum(g.shape[1] for g in glyphs) + 0.25 * h * (len(glyphs) - 1)
            if x + word_w > width - margin:
                break
            for g in glyphs:
                gh, gw = g.shape
                top = int(y_base - gh + rng.normal(0, 0.04 * h))
                left = int(x)
                if top < 0 or top + gh > height:
                    continue
                np.maximum(ink_alpha[top:top + gh, left:left + gw], g, out=ink_alpha[top:top + gh, left:left + gw])
                x += gw + h * float(rng.uniform(0.15, 0.35))
            kept.append(word)
            x += h * float(rng.uniform(0.7, 1.1))
        if kept:
            kept_lines.append(kept)
        y_base += pitch
    text = "\n".join(" ".join(words) for words in kept_lines)

    return photograph(ink_alpha, rng, first_rule=margin + h + 0.12 * h, pitch=pitch), text


def cmd_make(args) -> int:
    import imageio.v3 as iio

    from fastnn.data import find_data_dir

    data_dir = find_data_dir(args.data)
    if data_dir is None:
        print("unseen_pages: needs the real data (--data DIR or $FASTNN_DATA)", file=sys.stderr)
        return 2
    bank = _glyph_bank(Path(data_dir), args.split)
    stream = [args.seed, {"valid": 1, "test": 2}.get(args.split, 3)]
    rng = np.random.default_rng(stream if args.kind == "words" else stream + [1])  # words: the pages of before
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.pages):
        image, text = make_page(bank, rng, kind=args.kind)
        iio.imwrite(out / f"page_{i:02d}.jpg", image, quality=int(rng.integers(55, 91)))
        (out / f"page_{i:02d}.txt").write_text(text + "\n")
        print(f"{out / f'page_{i:02d}.jpg'}: {image.shape[1]}x{image.shape[0]}, {len(text.split())} words")
    return 0


def _decode_as_before(P, lines):
    """Labels as ``read_text`` decoded them before the per-character decision (kept here as the baseline):
    each word of two or more characters all letters or all digits, whichever its probabilities favour as a
    whole; a single character leans to the kind of the other single characters of its line."""
    logp = np.log(np.clip(P, 1e-12, None))
    labels = P.argmax(axis=1)
    singles = []
    for line in lines:
        for word in line:
            if len(word) >= 2:
                letters = logp[word, :26].max(axis=1).sum()
                digits = logp[word, 26:].max(axis=1).sum()
                labels[word] = P[word, :26].argmax(axis=1) if letters >= digits else 26 + P[word, 26:].argmax(axis=1)
        singles.append([word[0] for word in line if len(word) == 1])
    for _ in range(3):
        for members in singles:
            for i in members:
                others = [m for m in members if m != i]
                prior = (np.sum(labels[others] < 26) + 1.0) / (len(others) + 2.0)
                letter_score = logp[i, :26].max() + np.log(prior)
                digit_score = logp[i, 26:].max() + np.log(1 - prior)
                labels[i] = P[i, :26].argmax() if letter_score >= digit_score else 26 + P[i, 26:].argmax()
    return labels


def _read_as_before(ocr, image, model):
    """The text ``read_text`` gave before the per-character decision and the dot rule (the baseline)."""
    res = ocr.read_text(image, model, word_context=False)   # every box, in the same lines
    if not res.chars:
        return res.text
    labels = _decode_as_before(res.probabilities, res.lines)
    return "\n".join(" ".join("".join(CLASSES[labels[i]] for i in word) for word in line) for line in res.lines)


def cmd_eval(args) -> int:
    from fastnn import ocr

    model = ocr.load_ocr_model(args.model, data=args.data)
    rows = []
    for path in sorted(Path(args.folder).glob("page_*.jpg")):
        expected = path.with_suffix(".txt").read_text()
        t0 = time.perf_counter()
        image = ocr.load_image(path)
        res = ocr.read_text(image, model, language_model=not args.no_language_model)
        dt = time.perf_counter() - t0
        row = {"page": path.name, "cer": ocr.cer(res.text, expected), "cer_nospace": ocr.cer(res.text, expected, True),
               "seconds": dt, "text": res.text, "expected": expected.strip()}
        if args.baseline:
            base = _read_as_before(ocr, image, model)
            row.update(baseline_cer=ocr.cer(base, expected), baseline_cer_nospace=ocr.cer(base, expected, True))
        rows.append(row)
        print(f"{path.name}: cer {row['cer']:.4f}  cer_nospace {row['cer_nospace']:.4f}  ({dt:.2f} s)"
              + (f"  baseline cer {row['baseline_cer']:.4f}" if args.baseline else ""))
        if args.verbose:
            print("  expected:", expected.strip().replace("\n", " | "))
            print("  read:    ", res.text.replace("\n", " | "))
    if not rows:
        print(f"unseen_pages: no page_*.jpg in {args.folder}", file=sys.stderr)
        return 2
    mean = statistics.mean(r["cer"] for r in rows)
    mean_ns = statistics.mean(r["cer_nospace"] for r in rows)
    print(f"mean_cer: {mean:.4f}\nmean_cer_nospace: {mean_ns:.4f}\nworst_cer: {max(r['cer'] for r in rows):.4f}")
    summary = {"mean_cer": mean, "mean_cer_nospace": mean_ns}
    if args.baseline:
        summary.update(baseline_mean_cer=statistics.mean(r["baseline_cer"] for r in rows),
                       baseline_mean_cer_nospace=statistics.mean(r["baseline_cer_nospace"] for r in rows))
        print(f"baseline_mean_cer: {summary['baseline_mean_cer']:.4f}\n"
              f"baseline_mean_cer_nospace: {summary['baseline_mean_cer_nospace']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pages": rows, **summary}, indent=1))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write generated pages and their expected text")
    m.add_argument("--split", choices=("valid", "test"), default="test")
    m.add_argument("--pages", type=int, default=12)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--kind", choices=("words", "codes"), default="words",
                   help="English words and some numbers (default), or codes, ids and letter strings")
    m.add_argument("--out", required=True)
    m.add_argument("--data", default=os.environ.get("FASTNN_DATA"))
    m.set_defaults(func=cmd_make)
    e = sub.add_parser("eval", help="read the pages and print their character error rates")
    e.add_argument("folder")
    e.add_argument("--model", default=None)
    e.add_argument("--data", default=os.environ.get("FASTNN_DATA"))
    e.add_argument("--json", default=None)
    e.add_argument("--baseline", action="store_true",
                   help="also read each page as read_text did before (every box; words all letters or all digits)")
    e.add_argument("--no-language-model", action="store_true", help="read without the letter-bigram prior")
    e.add_argument("-v", "--verbose", action="store_true")
    e.set_defaults(func=cmd_eval)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

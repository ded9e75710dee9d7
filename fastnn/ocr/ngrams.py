"""A soft English prior on the letters of a word: letter-bigram log-probabilities, shipped as package data.

``letter_bigrams.npz`` holds one (27, 27) float32 array ``log_p``: ``log_p[a, b]`` is log P(next = b |
previous = a) over the letters A-Z (0-25) and a word boundary (26): row 26 is the first letter of a word,
column 26 its end. It is counted from the 50,000 most frequent words of English Wikipedia, each word once,
with 0.5 added to every count, as listed by the ``wordninja`` package (MIT licence; not a dependency of
fastnn: only this build needs it). It is rebuilt by

    python -m pip install --target /tmp/wn wordninja
    PYTHONPATH=/tmp/wn python -m fastnn.ocr.ngrams --out fastnn/ocr/letter_bigrams.npz

and ``fastnn.ocr.read._decode`` weighs it against the classifier (see ``read_text(..., language_model=)``).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np

SHIPPED_BIGRAMS = Path(__file__).with_name("letter_bigrams.npz")
BOUNDARY = 26
N_WORDS = 50_000
SMOOTHING = 0.5


def count_letter_bigrams(words, *, smoothing=SMOOTHING):
    """Letter-bigram log-probabilities of ``words`` (each counted once; others than A-Z letters skipped).

    Parameters
    ----------
    words : iterable of str
        The words (any case); a word with a character outside A-Z is left out.
    smoothing : float, optional
        Added to every count, so that no bigram is impossible.

    Returns
    -------
    log_p : (27, 27) ndarray of float32
        ``log_p[a, b]`` = log P(b | a), index 26 the word boundary.

    Examples
    --------
    >>> lp = count_letter_bigrams(["TO", "TOO"])
    >>> bool(lp[19, 14] > lp[19, 0])   # O after T, not A
    True
    """
    counts = np.full((27, 27), float(smoothing))
    for word in words:
        word = word.strip().upper()
        if not word or not word.isascii() or not word.isalpha():
            continue
        codes = [BOUNDARY] + [ord(c) - 65 for c in word] + [BOUNDARY]
        np.add.at(counts, (codes[:-1], codes[1:]), 1.0)
    counts[BOUNDARY, BOUNDARY] = 0.0                       # an empty word is none
    probs = counts / counts.sum(axis=1, keepdims=True)
    return np.log(np.clip(probs, 1e-12, None)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_letter_bigrams(path=SHIPPED_BIGRAMS):
    """The shipped (27, 27) letter-bigram log-probabilities (see the module's docstring), as float64."""
    with np.load(path, allow_pickle=False) as f:
        log_p = np.asarray(f["log_p"], dtype=np.float64)
    if log_p.shape != (27, 27) or not np.isfinite(log_p).all():
        raise ValueError(f"{path}: log_p must be a finite (27, 27) array, got shape {log_p.shape}")
    return log_p


def _wordninja_words(n_words):
    import gzip

    import wordninja  # the build's only use of it

    path = Path(wordninja.__file__).parent / "wordninja" / "wordninja_words.txt.gz"
    words = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            w = line.strip()
            if len(w) >= 2 and w.isascii() and w.isalpha():
                words.append(w)
                if len(words) == n_words:
                    break
    return words


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Build fastnn/ocr/letter_bigrams.npz from wordninja's English list")
    p.add_argument("--out", default=str(SHIPPED_BIGRAMS))
    p.add_argument("--words", type=int, default=N_WORDS, help="how many of the most frequent words to count")
    args = p.parse_args(argv)
    log_p = count_letter_bigrams(_wordninja_words(args.words))
    tmp = f"{args.out}.tmp.npz"
    np.savez_compressed(tmp, log_p=log_p)
    os.replace(tmp, args.out)
    print(f"{args.out}: letter bigrams of the {args.words} most frequent words of wordninja's list")
    return 0


if __name__ == "__main__":
    sys.exit(main())

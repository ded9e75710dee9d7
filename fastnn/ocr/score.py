"""Scoring a transcription: edit distance and character error rate."""

from __future__ import annotations

import numpy as np

from ..data import CLASSES


def levenshtein(a, b):
    """Edit distance (insertions, deletions, substitutions all cost 1).

    Parameters
    ----------
    a, b : str or sequence

    Returns
    -------
    distance : int

    Examples
    --------
    >>> levenshtein("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a
    if len(b) == 0:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), np.uint32) if isinstance(b, str) else np.asarray(b)
    prev = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        # substitution/deletion in vector form; insertions need a scan
        sub = prev[:-1] + (bb != ord(ca) if isinstance(b, str) else bb != ca)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, sub)
        # insertion: cur[j] = min(cur[j], cur[j-1] + 1) -> running min of cur[j]-j
        j = np.arange(len(cur))
        cur = np.minimum.accumulate(cur - j) + j
        prev = cur
    return int(prev[-1])


def _normalise(text, ignore_spaces):
    text = text.upper().replace("\r", "\n")
    kept = "".join(c if (c in CLASSES or c.isspace()) else "" for c in text)
    lines = [" ".join(line.split()) for line in kept.split("\n")]
    joined = " ".join(line for line in lines if line)
    return joined.replace(" ", "") if ignore_spaces else joined


def cer(predicted, expected, ignore_spaces=False):
    """Character error rate: edit distance / length of the expected text.

    Both texts are normalised first: upper-cased, every character outside
    A-Z, 0-9 and white space dropped (so "1." scores as "1"), each line
    stripped and its runs of spaces collapsed to one, and the lines joined
    with one space (a line break counts as one space: a missed line break
    costs one error, like a missed space). With ``ignore_spaces`` all
    spaces are removed before comparing.

    Parameters
    ----------
    predicted, expected : str
        Texts, lines separated by newlines.
    ignore_spaces : bool, optional
        Compare without any spaces (word segmentation not scored).

    Returns
    -------
    rate : float
        ``levenshtein(p, e) / len(e)`` on the normalised texts. If the
        expected text is empty: 0.0 when the prediction is empty too, else
        the number of predicted characters (every one is an error).

    Examples
    --------
    >>> cer("HELL0 W0RLD", "hello world")
    0.18181818181818182
    >>> cer("HE LLO", "HELLO", ignore_spaces=True)
    0.0
    """
    p = _normalise(predicted, ignore_spaces)
    e = _normalise(expected, ignore_spaces)
    if not e:
        return 0.0 if not p else float(len(p))
    return levenshtein(p, e) / len(e)

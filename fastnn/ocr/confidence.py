"""Calibrated confidences: the probability that a character read is right, and that a word (or line) is.

The classifier's probability of the character chosen is not that: on generated pages of unseen handwriting
(``bench/unseen_pages.py``) characters read at a mean probability of 0.88 were right 95% of the time, and the
decoding in context (:func:`~fastnn.ocr.read_text`) may choose a character that is not the classifier's most
probable (the O of "TO" at 0.51, right). :func:`calibrate` maps each character to

    q = sigmoid(a * logit(p) + b + d * argmax + g * digit_word + e * bigrams)

- ``p``: the classifier's probability of the character chosen (clipped to [1e-6, 1 - 1e-6]);
- ``argmax``: 1 when that character is the classifier's most probable, 0 when the context chose another;
- ``digit_word``: 1 when the character's word holds a digit (a number or a code), else 0;
- ``bigrams``: for a word of letters only, the mean of the letter-bigram log-probabilities
  (:mod:`fastnn.ocr.ngrams`) along the word with its two ends (``^TO$``: three bigrams), how English the word
  read looks; 0 for a word holding a digit (so ``b + g`` is that word's intercept).

``a > 0``, so q rises with p, and a sigmoid lies in (0, 1). The choice of characters is untouched: only the
number reported changes (the classifier's own probabilities stay in ``OCRResult.probabilities``). A word's
confidence is the product of its characters' (:func:`product_confidence`): the probability that every
character is right if their errors are independent; a line's is the product over its characters too.

:data:`COEFFICIENTS` were fitted by maximum likelihood (:func:`fit_coefficients`, Newton's method: a logistic
regression on the five features) on the 24 validation pages, 12 of English words and 12 of codes (seed 0),
by

    python bench/unseen_pages.py make --split valid --kind words --pages 12 --out V1   # and --kind codes: V2
    python bench/ocr_calibration.py --fit V1 V2 --check T1 T2

which prints them (the test pages T1, T2 are only reported). The README's OCR section gives the measured
calibration errors before and after.
"""

from __future__ import annotations

import numpy as np

from .ngrams import BOUNDARY, load_letter_bigrams

__all__ = ["FEATURES", "COEFFICIENTS", "confidence_features", "calibrate", "fit_coefficients",
           "product_confidence"]

#: The features of :func:`confidence_features`, in column order; :data:`COEFFICIENTS` are keyed by them.
FEATURES = ("logit", "intercept", "argmax", "digit_word", "bigrams")
#: The calibration's coefficients (a, b, d, g, e above), fitted by ``bench/ocr_calibration.py --fit`` on the
#: validation pages (see the module docstring); tests/test_ocr_confidence.py checks them against the README.
COEFFICIENTS = {"logit": 0.6672, "intercept": 5.3732, "argmax": 0.6088, "digit_word": -3.6422, "bigrams": 1.1983}
_CLIP = 1e-6


def confidence_features(P, labels, words, log_bigrams=None):
    """The calibration's features of each character read, columns :data:`FEATURES`.

    Parameters
    ----------
    P : (n, 36) ndarray of float64
        The classifier's probabilities, columns in ``CLASSES`` order (A-Z then 0-9).
    labels : (n,) ndarray of int
        The class chosen for each character.
    words : list of list of int
        The words, as indices into ``labels``; every character belongs to exactly one.
    log_bigrams : (27, 27) ndarray, optional
        Letter-bigram log-probabilities (:func:`fastnn.ocr.ngrams.load_letter_bigrams`, the default).

    Returns
    -------
    features : (n, 5) ndarray of float64

    Raises
    ------
    ValueError
        If ``words`` does not cover every character exactly once.
    """
    P = np.asarray(P, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if log_bigrams is None:
        log_bigrams = load_letter_bigrams()
    log_bigrams = np.asarray(log_bigrams, dtype=np.float64)
    p = np.clip(P[np.arange(n), labels], _CLIP, 1 - _CLIP)
    features = np.zeros((n, len(FEATURES)))
    features[:, 0] = np.log(p) - np.log1p(-p)
    features[:, 1] = 1.0
    features[:, 2] = P.argmax(axis=1) == labels
    seen = np.zeros(n, np.int64)
    for word in words:
        seen[word] += 1
        kinds = labels[word]
        if (kinds >= 26).any():
            features[word, 3] = 1.0
        else:
            path = np.concatenate([[BOUNDARY], kinds, [BOUNDARY]])
            features[word, 4] = log_bigrams[path[:-1], path[1:]].mean()
    if n and not (seen == 1).all():
        raise ValueError(f"words: every character must be in exactly one word ({int((seen != 1).sum())} of {n} "
                         "are not)")
    return features


def calibrate(P, labels, words, *, log_bigrams=None, coefficients=None):
    """The calibrated confidence of each character read: the probability that it is right.

    Parameters
    ----------
    P, labels, words, log_bigrams
        As :func:`confidence_features` takes them.
    coefficients : dict, optional
        One number per name of :data:`FEATURES`; default :data:`COEFFICIENTS`.

    Returns
    -------
    confidences : (n,) ndarray of float64
        Each in (0, 1), rising with the classifier's probability of the character chosen.

    Examples
    --------
    >>> P = np.full((2, 36), 0.02 / 35); P[0, 0] = P[1, 1] = 0.98   # "AB", both sure
    >>> q = calibrate(P, np.array([0, 1]), [[0, 1]])
    >>> bool(((0 < q) & (q < 1)).all())
    True
    """
    coefficients = COEFFICIENTS if coefficients is None else coefficients
    w = np.array([coefficients[name] for name in FEATURES], dtype=np.float64)
    z = confidence_features(P, labels, words, log_bigrams) @ w
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # sigmoid(z), without overflow


def product_confidence(confidences) -> float:
    """A word's (or line's) confidence from its characters': their product."""
    return float(np.prod(np.asarray(confidences, dtype=np.float64)))


def fit_coefficients(features, right, *, iterations=100):
    """Coefficients of the logistic regression of ``right`` on ``features`` by maximum likelihood.

    Newton's method from a = 1 and the other coefficients 0 (the classifier's own probability when every
    feature is off), with a ridge of 1e-6 that keeps the Hessian invertible; deterministic.

    Parameters
    ----------
    features : (n, 5) ndarray of float64
        :func:`confidence_features` of the characters.
    right : (n,) array_like of bool
        Whether each character is right.

    Returns
    -------
    coefficients : dict
        One float per name of :data:`FEATURES`.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    w = np.zeros(X.shape[1])
    w[0] = 1.0
    for _ in range(iterations):
        q = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
        grad = X.T @ (q - y) + 1e-6 * w
        hess = (X * (q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return {name: float(v) for name, v in zip(FEATURES, w)}

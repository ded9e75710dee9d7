"""Calibrated confidences (fastnn.ocr.confidence, issue 23): a map of the classifier's probability that rises
with it, stays in (0, 1) and changes no character read; its coefficients are the README's and, with
FASTNN_TEST_FULL_CALIBRATION=1 and the data, those bench/ocr_calibration.py fits on the validation pages."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import ocr
from fastnn.data import CLASSES
from fastnn.ocr.confidence import (COEFFICIENTS, FEATURES, calibrate, confidence_features, fit_coefficients,
                                   product_confidence)
from fastnn.ocr.ngrams import load_letter_bigrams
from fastnn.ocr.read import _decode

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNN_DATA") or ROOT.parent / "shared" / "data")
#: FASTNN_TEST_FULL_CALIBRATION=1 makes the 24 validation pages and fits the calibration again (about a minute).
FULL = os.environ.get("FASTNN_TEST_FULL_CALIBRATION") == "1"


def _rows(chosen, p, rest=None):
    """(len(p), 36) probabilities: class ``chosen`` at ``p``, the rest spread evenly (or ``rest``: {class: q})."""
    P = np.zeros((len(p), 36))
    for k, v in enumerate(p):
        P[k, chosen] = v
        others = dict(rest or {})
        free = [c for c in range(36) if c != chosen and c not in others]
        P[k, free] = (1 - v - sum(others.values())) / len(free)
        for c, q in others.items():
            P[k, c] = q
    return P


@pytest.mark.parametrize("chosen", [0, 14, 30])     # A, O, 4
@pytest.mark.parametrize("argmax", [True, False])
def test_calibration_rises_with_the_classifiers_probability(chosen, argmax):
    p = np.linspace(0.03, 0.45, 43) if not argmax else np.linspace(0.05, 0.999, 96)
    P = _rows(chosen, p, None if argmax else {chosen - 1 if chosen else 1: 0.5})
    labels = np.full(len(p), chosen)
    assert (P.argmax(axis=1) == chosen).all() == argmax
    q = calibrate(P, labels, [[i] for i in range(len(p))])   # each a word of its own: the same other features
    assert (np.diff(q) > 0).all()


def test_calibration_maps_into_the_open_unit_interval():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.full(36, 0.05), size=400)
    P[:5] = np.eye(36)[[0, 7, 26, 35, 25]]                      # the classifier exactly sure: p = 1
    labels = rng.integers(0, 36, size=400)
    labels[5:10] = np.argmin(P[5:10], axis=1)                    # p = 0 (or nearly)
    words = [list(range(k, min(k + 7, 400))) for k in range(0, 400, 7)]
    q = calibrate(P, labels, words)
    assert q.shape == (400,) and np.isfinite(q).all() and ((0 < q) & (q < 1)).all()
    # the worst cases of the features: p clipped to 1e-6 and 1 - 1e-6, the least and most English letters
    lb = load_letter_bigrams().astype(np.float64)
    z = np.array([COEFFICIENTS[f] for f in FEATURES])
    logit = np.log(1e6 - 1)
    lo = -z[0] * logit + z[1] + min(z[3], z[4] * lb.min())
    hi = z[0] * logit + z[1] + z[2] + max(z[3], 0.0, z[4] * lb.max())
    assert 0 < 1 / (1 + np.exp(-lo)) and 1 / (1 + np.exp(-hi)) < 1
    assert z[0] > 0                                              # rises with p


def test_calibration_changes_no_character_read():
    """read_text's characters are the decoder's labels, and its confidences their calibration (the inputs
    left as they were)."""
    class Fixed:
        def predict_proba(self, X):
            P = np.full((len(X), 36), 0.3 / 34)
            P[:, 14] = 0.4      # O
            P[:, 26] = 0.3      # 0: the O of "TO" is no digit
            P[0, :] = 0.04 / 35
            P[0, 19] = 0.96     # T
            return P

    img = np.ones((200, 400))
    img[50:120, 60:100] = 0.0
    img[50:120, 115:155] = 0.0
    res = ocr.read_text(img, Fixed())
    labels = _decode(res.probabilities, res.lines, log_bigrams=load_letter_bigrams())
    assert res.chars == [CLASSES[k] for k in labels] == ["T", "O"]
    P_before = res.probabilities.copy()
    q = calibrate(res.probabilities, labels, [w for line in res.lines for w in line])
    np.testing.assert_array_equal(res.probabilities, P_before)
    np.testing.assert_allclose(res.confidences, q)
    raw = res.probabilities[np.arange(2), labels]
    assert not np.allclose(res.confidences, raw)                 # calibrated, not the classifier's own
    assert ocr.read_text(img, Fixed(), word_context=False).chars == ["T", "O"]


def test_features_of_a_word_of_letters_and_of_a_code():
    lb = load_letter_bigrams().astype(np.float64)
    P = _rows(0, [0.9, 0.9, 0.9])
    P[2] = _rows(27, [0.8])[0]
    labels = np.array([19, 14, 27])                              # "TO" and "1"
    f = confidence_features(P, labels, [[0, 1], [2]], lb)
    t, o, b = 19, 14, 26
    np.testing.assert_allclose(f[0, 4], (lb[b, t] + lb[t, o] + lb[o, b]) / 3)
    assert f[0, 4] == f[1, 4] and (f[:2, 3] == 0).all() and (f[2, 3:] == [1, 0]).all()
    assert (f[:, 1] == 1).all() and list(f[:, 2]) == [0.0, 0.0, 1.0]    # T and O are not P's most probable
    with pytest.raises(ValueError, match="words: every character"):
        confidence_features(P, labels, [[0, 1]], lb)


def test_a_words_confidence_is_the_product_of_its_characters():
    assert product_confidence([0.9, 0.5]) == pytest.approx(0.45)
    assert product_confidence([0.7]) == 0.7


def test_fit_recovers_the_coefficients_of_a_known_logistic_model():
    rng = np.random.default_rng(1)
    n = 200_000
    X = np.column_stack([rng.normal(2, 2, n), np.ones(n), rng.random(n) < 0.8, rng.random(n) < 0.3,
                         rng.uniform(-4, -2, n)])
    X[X[:, 3] == 1, 4] = 0.0
    w = np.array([0.7, 5.0, 0.6, -3.5, 1.2])
    y = rng.random(n) < 1 / (1 + np.exp(-X @ w))
    fitted = fit_coefficients(X, y)
    np.testing.assert_allclose([fitted[f] for f in FEATURES], w, atol=0.15)


def test_the_readme_states_the_shipped_coefficients():
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not beside the tests (an installed copy of the tests)")
    text = " ".join(readme.read_text(encoding="utf-8").split())
    num = r"(−?[\d.]+)"
    m = re.search(rf"q = sigmoid\({num} logit\(p\) \+ {num} \+ {num} argmax {num} digit_word \+ {num} bigrams\)",
                  text.replace("− ", "−"))
    assert m, "README's OCR section no longer states the calibration's coefficients"
    stated = [float(v.replace("−", "-")) for v in m.groups()]
    assert stated == [COEFFICIENTS[f] for f in FEATURES]


@pytest.mark.skipif(not FULL, reason="FASTNN_TEST_FULL_CALIBRATION=1 runs the calibration's recipe (about a minute)")
def test_the_recipe_fits_the_shipped_coefficients(tmp_path):
    if not ((SHARED / "hw36").is_dir() and (SHARED / "mnist").is_dir()):
        pytest.skip(f"hw36 and MNIST not found at {SHARED} (set FASTNN_DATA)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "FASTNN_DATA": str(SHARED), "FASTNN_OCR_MODEL": str(ROOT / "fastnn" / "ocr" / "ocr_model.npz")}
    folders = []
    for kind in ("words", "codes"):
        folders.append(str(tmp_path / kind))
        subprocess.run([sys.executable, str(ROOT / "bench" / "unseen_pages.py"), "make", "--split", "valid", "--kind",
                        kind, "--pages", "12", "--out", folders[-1]], check=True, env=env, capture_output=True)
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "ocr_calibration.py"), "--fit", *folders], check=True,
                         env=env, capture_output=True, text=True).stdout
    fitted = dict(re.findall(r'"(\w+)": (-?[\d.]+)', out.splitlines()[1]))
    # on another CPU the classifier's probabilities round otherwise: a few thousandths
    np.testing.assert_allclose([float(fitted[f]) for f in FEATURES], [COEFFICIENTS[f] for f in FEATURES], atol=0.01)

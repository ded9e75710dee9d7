"""fastnn.ocr.read._decode: each character of a word read as a letter or a digit in the context of its word.

Unit tests on hand-made probability matrices (one row per character, columns A-Z then 0-9), a brute-force
reference for the Viterbi, and generated pages of codes (bench/unseen_pages.py --kind codes; needs the real
data) that the all-or-nothing decision of before reads far worse.
"""

import importlib.util
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import ocr
from fastnn.data import CLASSES
from fastnn.ocr.read import _DIGIT_START, _TO_DIGIT, _TO_LETTER, _decode

WHOLE_WORDS = {"to_digit": np.inf, "to_letter": np.inf, "digit_start": 0.0}  # the decision of before


def _probs(spec):
    """One row per character: ``spec`` is a string of characters read clearly (0.99), or (char, p, other)
    tuples: ``char`` with probability ``p`` and ``other`` with most of the rest."""
    rows = []
    for item in spec:
        ch, p, other = (item, 0.99, None) if isinstance(item, str) else item
        row = np.full(36, 1e-4)
        row[CLASSES.index(ch)] = p
        if other is not None:
            row[CLASSES.index(other)] = 1.0 - p - 35e-4
        rows.append(row / row.sum())
    return np.array(rows)


def _read(spec, **costs):
    P = _probs(spec)
    labels = _decode(P, [[list(range(len(P)))]], **costs)
    return "".join(CLASSES[k] for k in labels)


def test_an_ambiguous_character_follows_its_word():
    assert _read(["T", ("0", 0.55, "O")]) == "TO"          # not T0
    assert _read(["2", ("O", 0.55, "0")]) == "20"          # not 2O
    assert _read(["A", ("1", 0.6, "L"), ("1", 0.6, "L")]) == "ALL"  # not A11
    assert _read(["1", ("O", 0.6, "0"), "1"]) == "101"
    assert _read([("5", 0.6, "S"), "T", "O", "P"]) == "STOP"


def test_a_code_switches_kind_where_the_evidence_is_clear():
    assert _read("MX8677") == "MX8677"
    assert _read("CK3723") == "CK3723"
    assert _read("KO5490") == "KO5490"
    assert _read("12B") == "12B"
    assert _read("AB12CDE") == "AB12CDE"                   # two switches
    assert _read("4096") == "4096"
    assert _read("QXZT") == "QXZT"


def test_a_clear_letter_amid_digits_and_a_clear_digit_amid_letters_are_kept():
    assert _read("40B7") == "40B7"
    assert _read("VCN3") == "VCN3"
    assert _read("A4B") == "A4B"


def test_the_costs_of_a_switch_decide_a_half_clear_character():
    # a letter 3 nats more probable than its digit, in a number: kept at no cost, read as the digit at the
    # shipped costs (switching in and out of letters costs more than 3 nats)
    P = np.full((3, 36), 1e-6)
    P[:, 26 + 4] = 0.9                                     # 4 4 4
    P[1, CLASSES.index("A")] = 0.9
    P[1, 26 + 4] = 0.9 * np.exp(-3.0)
    P /= P.sum(axis=1, keepdims=True)
    word = [[[0, 1, 2]]]
    assert "".join(CLASSES[k] for k in _decode(P, word, to_digit=0.0, to_letter=0.0, digit_start=0.0)) == "4A4"
    assert "".join(CLASSES[k] for k in _decode(P, word)) == "444"


def test_a_digit_that_ends_a_code_needs_only_the_switch_cost_in_evidence():
    # "N9" of the valid pages of codes: a 9 43 times as probable as its Q (3.77 nats) after a letter is a
    # digit: it pays the switch to digits (3.5 nats; at 4.0 it was read "NQ"), ...
    assert _read(["N", ("9", 0.974, "Q")]) == "N9"
    assert _read(["G", "O", ("5", 0.974, "S"), ("9", 0.974, "Q"), "P", "F", "Z"]) == "GO59PFZ"
    # ... but not a switch there and back as well (3.5 + 1.5 nats), so it follows the letters around it
    assert _read(["N", ("9", 0.974, "Q"), "X"]) == "NQX"


def test_infinite_costs_give_each_word_all_letters_or_all_digits():
    for code in ("MX8677", "12B", "AB12CDE"):
        read = _read(code, **WHOLE_WORDS)
        assert read != code and (read.isdigit() or read.isalpha()), read


def _brute_force(P, word, to_digit, to_letter, digit_start):
    """The best kinds of one word by trying every assignment (ties: the first in letters-first order)."""
    logp = np.log(np.clip(P, 1e-12, None))
    best, best_score = None, -np.inf
    for kinds in itertools.product((True, False), repeat=len(word)):
        score = 0.0 if kinds[0] else -digit_start
        for k, (i, is_letter) in enumerate(zip(word, kinds)):
            score += logp[i, :26].max() if is_letter else logp[i, 26:].max()
            if k and kinds[k - 1] != is_letter:
                score -= to_digit if kinds[k - 1] else to_letter
        if score > best_score + 1e-9:
            best, best_score = kinds, score
    return best, best_score


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(2, 7), min_size=1, max_size=4),
       st.sampled_from([(_TO_DIGIT, _TO_LETTER, _DIGIT_START), (0.5, 0.5, 0.0), (2.0, 6.0, 1.0)]))
def test_the_viterbi_finds_the_best_kinds_of_each_word(seed, lengths, costs):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(36, 0.3), size=sum(lengths))
    starts = np.cumsum([0] + lengths)
    words = [list(range(a, b)) for a, b in zip(starts[:-1], starts[1:])]
    labels = _decode(P, [words], to_digit=costs[0], to_letter=costs[1], digit_start=costs[2])
    logp = np.log(np.clip(P, 1e-12, None))
    for word in words:
        kinds, best_score = _brute_force(P, word, *costs)
        got = labels[word] < 26
        # the decoder's kinds score as well as the best (a tie may pick another assignment)
        score = (0.0 if got[0] else -costs[2]) + sum(
            logp[i, :26].max() if g else logp[i, 26:].max() for i, g in zip(word, got)) - sum(
            (costs[0] if a else costs[1]) for a, b in zip(got[:-1], got[1:]) if a != b)
        assert score == pytest.approx(best_score, abs=1e-9)
        # and each character is the most probable of its kind
        expect = [int(P[i, :26].argmax()) if g else 26 + int(P[i, 26:].argmax()) for i, g in zip(word, got)]
        assert list(labels[word]) == expect


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_infinite_costs_are_the_all_or_nothing_decision(seed, lengths):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(36, 0.3), size=sum(lengths))
    starts = np.cumsum([0] + lengths)
    words = [list(range(a, b)) for a, b in zip(starts[:-1], starts[1:])]
    labels = _decode(P, [words], **WHOLE_WORDS)
    logp = np.log(P)
    for word in words:
        if len(word) < 2:
            continue
        letters = logp[word, :26].max(axis=1).sum() >= logp[word, 26:].max(axis=1).sum()
        expect = P[word, :26].argmax(axis=1) if letters else 26 + P[word, 26:].argmax(axis=1)
        assert list(labels[word]) == list(expect)


def test_word_context_false_is_each_characters_most_probable_class():
    class Fixed:
        def predict_proba(self, X):
            P = np.full((len(X), 36), 0.01)
            P[:, 26 + 0] = 0.5                             # every character a clear 0 ...
            P[:, CLASSES.index("O")] = 0.4                 # ... or nearly an O
            return P / P.sum(axis=1, keepdims=True)

    img = np.ones((200, 400))
    img[50:120, 60:100] = 0.0
    img[50:120, 115:155] = 0.0
    assert ocr.read_text(img, Fixed(), word_context=False).text == "00"


# --- generated pages of codes (the real data: hw36 test letters, MNIST t10k digits) ---

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
BENCH = Path(__file__).resolve().parents[1] / "bench" / "unseen_pages.py"


@pytest.fixture(scope="module")
def codes_pages():
    if not BENCH.is_file():
        pytest.skip("bench/ is not beside the tests (an installed copy of the tests)")
    if not ((SHARED / "hw36").is_dir() and (SHARED / "mnist").is_dir()):
        pytest.skip(f"hw36 and MNIST not found at {SHARED} (set FASTNN_DATA)")
    spec = importlib.util.spec_from_file_location("unseen_pages", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bank = bench._glyph_bank(SHARED, "test")
    rng = np.random.default_rng(23)
    return [bench.make_page(bank, rng, width=1600, kind="codes") for _ in range(3)]


def test_generated_pages_of_codes_read_within_the_bound(codes_pages):
    from fastnn.ocr.model import SHIPPED_MODEL, OCRModel
    from fastnn.ocr.read import _decode as decode

    model = OCRModel.load(SHIPPED_MODEL)
    new, old = [], []
    for image, expected in codes_pages:
        res = ocr.read_text(image, model)
        new.append(ocr.cer(res.text, expected))
        labels = decode(res.probabilities, res.lines, **WHOLE_WORDS)
        old_text = "\n".join(" ".join("".join(CLASSES[labels[i]] for i in w) for w in line) for line in res.lines)
        old.append(ocr.cer(old_text, expected))
    assert np.mean(new) <= 0.10, (new, old)
    assert np.mean(old) > 0.10, (new, old)                 # the bound is one the decision of before misses


# --- the dot of an i: not a line of its own ---


def test_a_dot_above_a_character_is_no_line_of_its_own():
    class Dummy:
        def predict_proba(self, X):
            return np.eye(36)[np.zeros(len(X), int)]

    img = np.ones((300, 500))
    img[100:180, 60:70] = 0.0                              # the stem of an i
    img[50:86, 50:86] = 0.0                                # its dot (big enough not to be dropped as a speck)
    img[100:180, 120:170] = 0.0
    img[100:180, 220:270] = 0.0
    assert ocr.read_text(img, Dummy()).text == "AAA"
    assert ocr.read_text(img, Dummy(), word_context=False).text == "A\nAAA"   # every box, as before


def test_drop_dot_lines_keeps_small_characters_far_from_others():
    from fastnn.ocr.layout import drop_dot_lines

    boxes = [[0, 10, 6, 14], [10, 8, 40, 14], [10, 30, 40, 50], [100, 10, 110, 14]]
    lines = [[[0]], [[1, 2]], [[3]]]
    assert drop_dot_lines(boxes, lines) == [[[1, 2]], [[3]]]         # box 3: small, but alone
    assert drop_dot_lines(boxes, [[[1, 2]]]) == [[[1, 2]]]
    assert drop_dot_lines(np.zeros((0, 4)), []) == []


def test_the_readme_states_the_decoders_costs():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not beside the tests (an installed copy of the tests)")
    import re

    text = " ".join(readme.read_text(encoding="utf-8").split())
    m = re.search(r"a switch from letters to digits costs ([\d.]+) nats, one from digits to letters ([\d.]+), "
                  r"and a word that starts with a digit ([\d.]+) more", text)
    assert m, "README's Reading paragraph no longer states the decoder's costs"
    assert tuple(float(v) for v in m.groups()) == (_TO_DIGIT, _TO_LETTER, _DIGIT_START)


# --- the soft English prior on letters (fastnn.ocr.ngrams) ---


def _read_lm(spec, **kwargs):
    from fastnn.ocr.ngrams import load_letter_bigrams

    P = _probs(spec)
    labels = _decode(P, [[list(range(len(P)))]], log_bigrams=load_letter_bigrams(), **kwargs)
    return "".join(CLASSES[k] for k in labels)


def test_the_letter_prior_picks_among_close_readings_only():
    rlver = ["R", ("L", 0.5, "I"), "V", "E", "R"]
    assert _read(rlver) == "RLVER"                         # the classifier's best letter alone
    assert _read_lm(rlver) == "RIVER"
    assert _read_lm(rlver, lm_weight=0.0) == "RLVER"
    assert _read_lm(["B", "R", "E", ("K", 0.5, "A"), "D"]) == "BREAD"
    for clear in ("QXZT", "MX8677", "CK3723", "AB12CDE", "4096"):  # clear readings, however unlike English
        assert _read_lm(clear) == clear


def test_the_letter_prior_never_changes_a_letter_into_a_digit():
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.full(36, 0.3), size=40)
    lines = [[list(range(k, k + 5)) for k in range(0, 40, 5)]]
    from fastnn.ocr.ngrams import load_letter_bigrams

    plain = _decode(P, lines)
    prior = _decode(P, lines, log_bigrams=load_letter_bigrams())
    assert ((plain < 26) == (prior < 26)).all()
    assert (plain[plain >= 26] == prior[prior >= 26]).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 3), st.sampled_from([0.3, 1.0, 3.0]))
def test_the_letter_viterbi_finds_the_most_probable_letters(seed, length, weight):
    from fastnn.ocr.ngrams import load_letter_bigrams
    from fastnn.ocr.read import _best_letters

    rng = np.random.default_rng(seed)
    logp = np.log(rng.dirichlet(np.full(36, 0.3), size=length))
    B = load_letter_bigrams()
    letters, _, _ = _best_letters(logp, [list(range(length))], B, weight)

    def score(seq):
        codes = [26, *seq, 26]
        return sum(logp[k, c] for k, c in enumerate(seq)) + weight * sum(B[a, b] for a, b in zip(codes, codes[1:]))

    best = max(itertools.product(range(26), repeat=length), key=score)
    assert score(tuple(letters[0])) == pytest.approx(score(best), abs=1e-9)


def test_the_shipped_letter_bigrams_are_log_probabilities():
    from fastnn.ocr.ngrams import load_letter_bigrams

    B = load_letter_bigrams()
    assert B.shape == (27, 27) and np.isfinite(B).all()
    np.testing.assert_allclose(np.exp(B).sum(axis=1), 1.0, atol=1e-4)
    assert B[16, 20] > np.log(0.5)                         # U after Q


def test_the_shipped_letter_bigrams_are_what_the_build_script_gives(tmp_path):
    pytest.importorskip("wordninja", reason="wordninja (the word list the build counts) is not installed")
    from fastnn.ocr import ngrams

    assert ngrams.main(["--out", str(tmp_path / "b.npz")]) == 0
    with np.load(tmp_path / "b.npz") as f, np.load(ngrams.SHIPPED_BIGRAMS) as g:
        np.testing.assert_array_equal(f["log_p"], g["log_p"])


def test_no_language_model_reaches_read_text(tmp_path, monkeypatch):
    import imageio.v3 as iio

    from fastnn import cli

    img = np.full((200, 300), 255, np.uint8)
    img[50:120, 60:68] = 0
    iio.imwrite(tmp_path / "p.png", img)
    seen = []
    real = ocr.read_text

    def spy(*args, **kwargs):
        seen.append(kwargs.get("language_model", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(ocr, "read_text", spy)
    assert cli.main(["ocr", str(tmp_path / "p.png"), "--no-progress"]) == 0
    assert cli.main(["ocr", str(tmp_path / "p.png"), "--no-progress", "--no-language-model"]) == 0
    (tmp_path / "p.txt").write_text("I\n")
    assert cli.main(["ocr-eval", str(tmp_path / "p.png"), str(tmp_path / "p.txt"), "--no-language-model"]) == 0
    assert seen == [True, False, False]

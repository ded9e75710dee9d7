"""The optional word list of fastnn.ocr: how it reads, when it corrects a word and when it keeps it."""

import numpy as np
import pytest

from fastnn.data import CLASSES
from fastnn.ocr import Lexicon, read_text
from fastnn.ocr import lexicon as lexicon_module


def _logp(word, confidence=0.9, swaps=None):
    """Log-probabilities of a word read with `confidence` on each character; swaps: {i: (char, p)}."""
    P = np.full((len(word), 36), (1 - confidence) / 35)
    for i, c in enumerate(word):
        P[i, CLASSES.index(c)] = confidence
    for i, (c, p) in (swaps or {}).items():
        P[i] = (1 - p) / 34
        P[i, CLASSES.index(c)] = p
        P[i, CLASSES.index(word[i])] = (1 - p) / 2
    return np.log(P / P.sum(1, keepdims=True))


def _labels(word):
    return np.array([CLASSES.index(c) for c in word])


def test_words_are_normalised_and_grouped_by_length():
    lex = Lexicon(["Lemon", "don't", "e-mail", "  melon ", "caf\u00e9", "", "x" * 41])
    assert "LEMON" in lex and "melon" in lex and "DONT" in lex and "EMAIL" in lex and "CAF" in lex
    assert len(lex) == 5
    assert repr(lex) == "Lexicon(5 words, lengths 3-5, margin 8)"


def test_a_near_miss_is_corrected_and_a_far_one_kept():
    lex = Lexicon(["LEMON", "MELON"])
    # read LEMOM: the last character is M at 0.6, N at 0.2: LEMON is 1.1 nats less probable, within the margin
    logp = _logp("LEMON", swaps={4: ("M", 0.6)})
    read = _labels("LEMOM")
    assert "".join(CLASSES[k] for k in lex.correct(logp, read)) == "LEMON"
    # a confident reading that no entry comes near stays as read
    logp = _logp("QWXYZ", confidence=0.99)
    assert list(lex.correct(logp, _labels("QWXYZ"))) == list(_labels("QWXYZ"))
    # with a small margin the same near miss is kept
    strict = Lexicon(["LEMON"], margin=0.5)
    logp = _logp("LEMON", swaps={4: ("M", 0.6)})
    assert list(strict.correct(logp, read)) == list(read)


def test_entries_single_characters_and_other_lengths_are_kept():
    lex = Lexicon(["LEMON", "I"])
    logp = _logp("MELON")
    assert list(lex.correct(logp, _labels("MELON"))) == list(_labels("MELON"))  # no 5-letter entry near MELON?
    lex2 = Lexicon(["MELON", "LEMON"])
    logp = _logp("LEMON", swaps={0: ("M", 0.5)})  # MEMON: an entry of its own? no, but LEMON and MELON compete
    out = "".join(CLASSES[k] for k in lex2.correct(logp, _labels("MEMON")))
    assert out == "LEMON"
    assert list(lex.correct(_logp("A"), _labels("A"))) == list(_labels("A"))  # one character: never replaced
    assert list(lex.correct(_logp("AB"), _labels("AB"))) == list(_labels("AB"))  # no entry of length 2


def test_from_file_refuses_what_is_not_a_word_list(tmp_path, monkeypatch):
    good = tmp_path / "words.txt"
    good.write_text("apple\nbanana\n")
    assert len(Lexicon.from_file(good)) == 2
    binary = tmp_path / "model.npz"
    binary.write_bytes(b"PK\x03\x04\0\0binary")
    with pytest.raises(ValueError, match="binary file"):
        Lexicon.from_file(binary)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        Lexicon.from_file(latin)
    empty = tmp_path / "empty.txt"
    empty.write_text("...\n!!!\n")
    with pytest.raises(ValueError, match="no word"):
        Lexicon.from_file(empty)
    monkeypatch.setattr(lexicon_module, "MAX_LEXICON_BYTES", 8)
    with pytest.raises(ValueError, match="not a word list"):
        Lexicon.from_file(good)
    with pytest.raises(FileNotFoundError):
        Lexicon.from_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="margin"):
        Lexicon(["A"], margin=0)


class _Reader:
    """A classifier that reads each crop by its position: the characters of `text`, with one weak swap."""

    def __init__(self, text, weak):
        self.text, self.weak = text, weak

    def predict_proba(self, X):
        P = np.full((len(X), 36), 0.01 / 35)
        for i, c in enumerate(self.text):
            P[i, CLASSES.index(c)] = 0.99
        i, wrong = self.weak
        P[i] = 0.1 / 34
        P[i, CLASSES.index(wrong)] = 0.6
        P[i, CLASSES.index(self.text[i])] = 0.3
        return P


def test_read_text_uses_the_lexicon(tmp_path):
    img = np.ones((200, 600))
    for j in range(5):  # five bars, one word
        img[60:130, 60 + 40 * j:75 + 40 * j] = 0.0
    model = _Reader("LEMON", (4, "M"))
    assert read_text(img, model).text == "LEMOM"
    assert read_text(img, model, lexicon=["lemon"]).text == "LEMON"
    words = tmp_path / "w.txt"
    words.write_text("lemon\n")
    assert read_text(img, model, lexicon=words).text == "LEMON"
    assert read_text(img, model, lexicon=Lexicon(["lemon"], margin=0.1)).text == "LEMOM"

"""Stage 4b: an optional word list that corrects words read wrongly (Tesseract calls it user words).

A word the page reads as, say, ``LEMOM`` is compared with every lexicon entry of the same length under
the classifier's character probabilities.  The best entry replaces it when its log-probability is within
``margin`` nats of the reading itself, i.e. when the evidence against the entry is weak; a reading that is
already an entry, a single character, or a word no entry comes close to is kept as it was read.
"""

from __future__ import annotations

import os

import numpy as np

from ..data import CLASSES

__all__ = ["Lexicon", "MAX_LEXICON_BYTES", "DEFAULT_MARGIN"]

#: The largest word-list file read (a 500,000-word list is about 5 MB).
MAX_LEXICON_BYTES = 64 << 20
#: How many nats less probable than the reading an entry may be and still replace it (see the module).
DEFAULT_MARGIN = 8.0
#: Entries longer than this are dropped (no page word is this long).
MAX_WORD_LENGTH = 40

_INDEX = {c: k for k, c in enumerate(CLASSES)}


class Lexicon:
    """A word list, by length, as class indices.

    Parameters
    ----------
    words : iterable of str
        Words in any case; characters outside the 36 classes (apostrophes, hyphens, accents) are dropped,
        and words left empty or longer than ``MAX_WORD_LENGTH`` are skipped.
    margin : float
        See the module docstring (default :data:`DEFAULT_MARGIN`, > 0).

    Examples
    --------
    >>> lex = Lexicon(["lemon", "melon"])
    >>> lex
    Lexicon(2 words, lengths 5-5, margin 8)
    """

    def __init__(self, words, *, margin: float = DEFAULT_MARGIN):
        margin = float(margin)
        if not (np.isfinite(margin) and margin > 0):
            raise ValueError(f"margin: expected a positive number of nats, got {margin!r}")
        self.margin = margin
        by_length: dict[int, set] = {}
        for word in words:
            if not isinstance(word, str):
                raise TypeError(f"words: expected strings, got {type(word).__name__}")
            kept = "".join(c for c in word.strip().upper() if c in _INDEX)
            if 0 < len(kept) <= MAX_WORD_LENGTH:
                by_length.setdefault(len(kept), set()).add(kept)
        self._entries = {n: np.array([[_INDEX[c] for c in w] for w in sorted(ws)], dtype=np.int64)
                         for n, ws in by_length.items()}
        self._words = {n: set(ws) for n, ws in by_length.items()}

    @classmethod
    def from_file(cls, path, *, margin: float = DEFAULT_MARGIN) -> "Lexicon":
        """Read one word per line from a UTF-8 text file (at most :data:`MAX_LEXICON_BYTES`)."""
        path = os.fspath(path)
        with open(path, "rb") as fh:
            data = fh.read(MAX_LEXICON_BYTES + 1)
        if len(data) > MAX_LEXICON_BYTES:
            raise ValueError(f"{path}: over {MAX_LEXICON_BYTES >> 20} MB: not a word list (one word per line)")
        if b"\0" in data:
            raise ValueError(f"{path}: a binary file, not a word list (one word per line, UTF-8 text)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text: a word list is one word per line") from None
        lex = cls(text.split(), margin=margin)
        if not len(lex):
            raise ValueError(f"{path}: holds no word made of the letters A-Z and digits 0-9")
        return lex

    def __len__(self) -> int:
        return sum(len(e) for e in self._entries.values())

    def __contains__(self, word) -> bool:
        return isinstance(word, str) and word.upper() in self._words.get(len(word), ())

    def __repr__(self):
        lengths = sorted(self._entries)
        span = f"lengths {lengths[0]}-{lengths[-1]}" if lengths else "empty"
        return f"Lexicon({len(self)} words, {span}, margin {self.margin:g})"

    def best(self, logp):
        """The most probable entry for one word and its log-probability.

        Parameters
        ----------
        logp : (n, 36) ndarray
            Log-probabilities of the word's characters, in :data:`~fastnn.data.CLASSES` order.

        Returns
        -------
        labels : (n,) ndarray of int64, or None when no entry has n characters
        score : float
        """
        entries = self._entries.get(len(logp))
        if entries is None:
            return None, -np.inf
        scores = logp[np.arange(len(logp)), entries].sum(axis=1)
        k = int(scores.argmax())
        return entries[k], float(scores[k])

    def correct(self, logp, labels):
        """``labels`` of one word, replaced by the best entry when it is close enough (see the module)."""
        if len(labels) < 2:
            return labels
        if "".join(CLASSES[k] for k in labels) in self._words.get(len(labels), ()):
            return labels
        entry, score = self.best(logp)
        if entry is None:
            return labels
        reading = float(logp[np.arange(len(labels)), labels].sum())
        return entry.copy() if score >= reading - self.margin else labels

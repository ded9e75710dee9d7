"""Stage 4: the whole pipeline: classify the crops, decode them in context, and assemble the text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data import CLASSES
from . import model as ocr_model
from .confidence import calibrate
from .crops import crop_characters
from .image import as_image
from .layout import drop_dot_lines, group_lines
from .lexicon import Lexicon
from .ngrams import load_letter_bigrams
from .segment import find_letters


@dataclass(repr=False)
class OCRResult:
    """Text read from a page, with everything needed to inspect it.

    Attributes
    ----------
    text : str
        One line per text line, words separated by single spaces.
    boxes : (n, 4) ndarray of int64
        ``[y1, x1, y2, x2]`` per character, in reading order.
    chars : list of str
        The character read in each box.
    confidences : (n,) ndarray of float64
        The calibrated probability that each character read is right
        (:func:`fastnn.ocr.confidence.calibrate`: from the classifier's
        probability of the character, whether the context chose another,
        and how English its word looks), in (0, 1). A word's confidence,
        in every output format, is the product of its characters'.
    lines : list of list of list of int
        ``lines[i][j]`` is the indices (into ``boxes``/``chars``) of word
        ``j`` of line ``i``.
    probabilities : (n, 36) ndarray of float64
        The classifier's full output, columns in :data:`CLASSES` order
        (``probabilities[i, CLASSES.index(chars[i])]`` is its own, uncalibrated
        probability of character ``i``).
    binary : 2-D ndarray of bool or None
        The ink mask :func:`find_letters` made (for :func:`draw_boxes`), kept only when
        ``read_text(..., keep_binary=True)``.
    """

    text: str
    boxes: np.ndarray
    chars: list
    confidences: np.ndarray
    lines: list
    probabilities: np.ndarray = field(default=None)
    binary: np.ndarray = field(default=None, repr=False)

    def __repr__(self):
        n_words = sum(len(line) for line in self.lines)
        return (
            f"OCRResult({len(self.chars)} chars, {n_words} words, {len(self.lines)} lines, "
            f"mean confidence {float(np.mean(self.confidences)) if len(self.chars) else float('nan'):.2f}, "
            f"text={self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"
        )


_LINE_PRIOR_PASSES = 3
#: Costs (in nats of log-probability) of the kinds of a word's characters, chosen on the validation pages
#: of ``bench/unseen_pages.py`` (English words and codes together; see the README): a switch from letters to
#: digits inside a word, a switch from digits to letters, and a word that starts with a digit. (``_TO_DIGIT``
#: was 4.0; 3.5 reads 3 more codes of the valid pages right, N9 and GO59PFZ among them, with the letter prior
#: and without, and changes no word of the English pages.)
_TO_DIGIT = 3.5
_TO_LETTER = 1.5
_DIGIT_START = 1.5
#: The weight of the letter-bigram prior (``fastnn.ocr.ngrams``) against the classifier's log-probabilities,
#: chosen on the same pages (the best on the English valid pages that raises the codes' CER by under 0.5).
_LM_WEIGHT = 0.3


def _word_kinds(logp, words, to_digit, to_letter, digit_start):
    """Letter (True) or digit for each character of ``words`` (index lists), best over all the words' kinds.

    A Viterbi over two states per word: a character's score in a state is its best log-probability among the
    letters or among the digits, and a change of state costs ``to_digit`` or ``to_letter`` (infinite costs:
    each word all letters or all digits, ties to letters). All words are advanced together, one position at a
    time, so the Python loop runs over the longest word's length, not over the characters. Returns
    ``(kinds, index, lengths)``: ``kinds`` and ``index`` (n_words, longest) hold the decision and the
    character's index, valid where the position is under the word's length.
    """
    lengths = np.array([len(w) for w in words])
    index = np.zeros((len(words), int(lengths.max())), np.int64)
    for j, w in enumerate(words):
        index[j, :len(w)] = w
    letter_ev = logp[:, :26].max(axis=1)[index]
    digit_ev = logp[:, 26:].max(axis=1)[index]
    s_letter, s_digit = letter_ev[:, 0].copy(), digit_ev[:, 0] - digit_start
    came_from_digit = np.zeros(index.shape, bool)   # the letter state at k came from the digit state at k - 1
    came_from_letter = np.zeros(index.shape, bool)
    for k in range(1, index.shape[1]):
        active = k < lengths
        switch_l = s_digit - to_letter > s_letter
        switch_d = s_letter - to_digit > s_digit
        new_letter = np.where(switch_l, s_digit - to_letter, s_letter) + letter_ev[:, k]
        new_digit = np.where(switch_d, s_letter - to_digit, s_digit) + digit_ev[:, k]
        came_from_digit[:, k] = switch_l & active
        came_from_letter[:, k] = switch_d & active
        s_letter = np.where(active, new_letter, s_letter)
        s_digit = np.where(active, new_digit, s_digit)
    state = s_letter >= s_digit
    kinds = np.zeros(index.shape, bool)
    for k in range(index.shape[1] - 1, -1, -1):
        kinds[:, k] = state
        switched = np.where(state, came_from_digit[:, k], came_from_letter[:, k])
        state = np.where((k < lengths) & switched, ~state, state)
    return kinds, index, lengths


def _letter_runs(labels, words):
    """The runs of two or more letters inside ``words``, as index lists."""
    runs = []
    for word in words:
        run = []
        for i in word:
            if labels[i] < 26:
                run.append(i)
                continue
            if len(run) >= 2:
                runs.append(run)
            run = []
        if len(run) >= 2:
            runs.append(run)
    return runs


def _best_letters(logp, runs, log_bigrams, weight):
    """The most probable letters of each run under the classifier and ``weight`` x the letter-bigram prior.

    A Viterbi over the 26 letters, all runs advanced together (the Python loop is over the longest run's
    length). ``log_bigrams`` is (27, 27), index 26 the word boundary. Returns ``(letters, index, lengths)``.
    """
    lengths = np.array([len(r) for r in runs])
    index = np.zeros((len(runs), int(lengths.max())), np.int64)
    for j, r in enumerate(runs):
        index[j, :len(r)] = r
    evidence = logp[:, :26][index]                       # (runs, longest, 26)
    step = weight * log_bigrams[:26, :26]
    score = weight * log_bigrams[26, :26][None, :] + evidence[:, 0]
    back = np.zeros(evidence.shape, np.int64)
    for k in range(1, index.shape[1]):
        candidates = score[:, :, None] + step[None]
        back[:, k] = candidates.argmax(axis=1)
        score = np.where((k < lengths)[:, None], candidates.max(axis=1) + evidence[:, k], score)
    state = (score + weight * log_bigrams[:26, 26][None, :]).argmax(axis=1)
    letters = np.zeros(index.shape, np.int64)
    rows = np.arange(len(runs))
    for k in range(index.shape[1] - 1, -1, -1):
        active = k < lengths
        letters[:, k] = np.where(active, state, letters[:, k])
        if k:
            state = np.where(active, back[rows, k, state], state)
    return letters, index, lengths


def _decode(P, lines, *, to_digit=_TO_DIGIT, to_letter=_TO_LETTER, digit_start=_DIGIT_START, log_bigrams=None,
            lm_weight=_LM_WEIGHT):
    """Labels from the probabilities, read in context.

    In a word of two or more characters each character is read as a letter or a digit by a Viterbi over the
    word (``_word_kinds``): its best letter and its best digit score their log-probabilities, a switch from
    letters to digits costs ``to_digit`` nats, one from digits to letters ``to_letter``, and a word that
    starts with a digit ``digit_start``. So an ambiguous character follows its word ("TO" is not read "T0",
    nor "20" "2O"), while a code switches where the evidence is clear (MX8677, 12B, AB12CDE). Infinite
    costs give the decision of before: each word all letters or all digits, whichever the probabilities
    favour as a whole. Then, with ``log_bigrams`` (``fastnn.ocr.ngrams``), each run of two or more letters is
    read as its most probable letters under the classifier plus ``lm_weight`` times the letter-bigram prior
    (``_best_letters``): a soft English prior that picks between a character's close readings (RIVER over
    RLVER) and changes no letter/digit decision. A single-character word weighs its own evidence against the
    other single-character words of its line (a row of spaced-out characters such as "1 2 3 4 5"):
    with k letters among their n readings, (k + 1) / (n + 2) is its prior on being a letter, so an
    ambiguous O/0, S/5, G/6 or I/1 follows a row of its own kind, while a lone number before a line
    of words ("4 REWARD YOURSELF") keeps its own reading.
    """
    logp = np.log(np.clip(P, 1e-12, None))
    labels = P.argmax(axis=1)
    words = [word for line in lines for word in line if len(word) >= 2]
    if words:
        kinds, index, lengths = _word_kinds(logp, words, to_digit, to_letter, digit_start)
        inside = np.arange(index.shape[1])[None, :] < lengths[:, None]
        chars, is_letter = index[inside], kinds[inside]
        labels[chars] = np.where(is_letter, P[chars, :26].argmax(axis=1), 26 + P[chars, 26:].argmax(axis=1))
        runs = _letter_runs(labels, words) if log_bigrams is not None and lm_weight > 0 else []
        if runs:
            letters, index, lengths = _best_letters(logp, runs, log_bigrams, lm_weight)
            inside = np.arange(index.shape[1])[None, :] < lengths[:, None]
            labels[index[inside]] = letters[inside]
    singles = [[word[0] for word in line if len(word) == 1] for line in lines]
    for _ in range(_LINE_PRIOR_PASSES):
        for members in singles:
            for i in members:
                others = [m for m in members if m != i]
                prior = (np.sum(labels[others] < 26) + 1.0) / (len(others) + 2.0)
                letter_score = logp[i, :26].max() + np.log(prior)
                digit_score = logp[i, 26:].max() + np.log(1 - prior)
                labels[i] = P[i, :26].argmax() if letter_score >= digit_score else 26 + P[i, 26:].argmax()
    return labels


def _as_lexicon(lexicon):
    if lexicon is None or isinstance(lexicon, Lexicon):
        return lexicon
    if isinstance(lexicon, (str, bytes)) or hasattr(lexicon, "__fspath__"):
        return Lexicon.from_file(lexicon)
    return Lexicon(lexicon)


def read_text(image, model=None, *, word_context=True, keep_binary=False, lexicon=None, language_model=True):
    """Read a photographed page of handwritten block capitals and digits.

    Runs :func:`find_letters`, :func:`group_lines`, :func:`crop_characters`
    and the classifier, then assembles the text.

    Parameters
    ----------
    image : array_like or str
        The photo (see :func:`find_letters`) or a path to it.
    model : object with ``predict_proba``, optional
        Any classifier with ``predict_proba(X) -> P``, ``X`` a
        (n, 1024) float64 array in the hw36 layout and ``P`` (n, 36)
        probabilities in :data:`CLASSES` order (A-Z then 0-9), e.g. an
        :class:`~fastnn.ocr.model.OCRModel` or a ``fastnn.models.MLP``.
        Default: ``fastnn.ocr.load_ocr_model()``, the model the command line
        uses (``$FASTNN_OCR_MODEL``, else a model rebuilt into the cache,
        else the shipped one).
    word_context : bool, optional
        If True (default), each character of a word of two or more
        characters is read as a letter or a digit in the context of its
        word: switching kind inside a word costs log-probability (3.5 nats
        from letters to digits, 1.5 from digits to letters, and 1.5 more
        for a word that starts with a digit), so an ambiguous character
        follows its word ("TO" is not read "T0", nor "20" as "2O") while a
        code switches where the evidence is clear ("MX8677", "12B"). A
        single-character word leans towards the kind (letter or digit) of
        the other single characters of its line when its own evidence is
        ambiguous (see ``_decode``). A line that is only a small mark just
        above or below a character of another line (the dot of an i or a
        j) is not read (see :func:`~fastnn.ocr.layout.drop_dot_lines`). If
        False, every box is read and each character is its classifier's
        most probable class.
    keep_binary : bool, optional
        Keep :func:`find_letters`' ink mask in the result's ``.binary`` (for
        :func:`draw_boxes`), so that it is not computed twice.
    lexicon : Lexicon, str, path or iterable of str, optional
        A word list (a :class:`~fastnn.ocr.lexicon.Lexicon`, a file of one
        word per line, or the words): a word of two or more characters read
        as no entry is replaced by the most probable entry of its length when
        that entry is nearly as probable as the reading (see
        :mod:`fastnn.ocr.lexicon`). Default: none.
    language_model : bool, optional
        If True (default) and ``word_context``, the letters of each run of
        two or more letters in a word are chosen with a soft English
        letter-bigram prior (:mod:`fastnn.ocr.ngrams`, weighed 0.3 against
        the classifier's log-probabilities): it picks among a character's
        close readings (RIVER over RLVER) and never turns letters into
        digits or back. False: the classifier's best letter alone (the
        command line's ``--no-language-model``).

    Returns
    -------
    result : OCRResult
        ``.text``, ``.boxes``, ``.chars``, ``.confidences`` (calibrated:
        see :mod:`fastnn.ocr.confidence`), ``.lines`` and ``.probabilities``
        (the classifier's own). A blank page gives empty text.

    Raises
    ------
    ValueError
        If the image is not one (see :func:`load_image`), or the model's
        output has the wrong shape or holds NaN or infinite values (a broken
        model is refused, never decoded into characters).

    Examples
    --------
    >>> class Dummy:
    ...     def predict_proba(self, X):
    ...         return np.eye(36)[np.zeros(len(X), int)]
    >>> img = np.ones((200, 300)); img[50:120, 60:68] = 0.0
    >>> read_text(img, Dummy()).text
    'A'
    """
    lexicon = _as_lexicon(lexicon)
    if model is None:
        model = ocr_model.load_ocr_model()  # looked up at call time, like the command line's
    image = as_image(image)
    boxes, binary = find_letters(image)
    lines = group_lines(boxes)
    if word_context:
        lines = drop_dot_lines(boxes, lines)  # the dot of an i is no line of its own
    order = [i for line in lines for word in line for i in word]
    boxes = boxes[order]
    remap = {old: new for new, old in enumerate(order)}
    lines = [[[remap[i] for i in word] for word in line] for line in lines]
    kept = binary if keep_binary else None
    if len(boxes) == 0:
        return OCRResult("", boxes, [], np.zeros(0), [], np.zeros((0, 36)), kept)
    X = crop_characters(binary, boxes)
    del binary
    P = np.asarray(model.predict_proba(X), dtype=np.float64)
    if P.shape != (len(boxes), 36):
        raise ValueError(f"model.predict_proba returned shape {P.shape}, expected {(len(boxes), 36)}")
    bad = np.flatnonzero(~np.isfinite(P).all(axis=1))
    if bad.size:
        # a NaN row would otherwise be decoded as a character ('0': every comparison with NaN fails)
        raise ValueError(
            f"model.predict_proba returned non-finite values (NaN or infinity) for {bad.size} of {len(P)} "
            f"characters (the first in box {[int(v) for v in boxes[bad[0]]]}): the model is broken (its "
            "training diverged or its weights are corrupt), so nothing was read; retrain it or use another model"
        )
    if word_context:
        labels = _decode(P, lines, log_bigrams=load_letter_bigrams() if language_model else None)
    else:
        labels = P.argmax(axis=1)
    if lexicon is not None:
        logp = np.log(np.clip(P, 1e-12, None))
        for line in lines:
            for word in line:
                labels[word] = lexicon.correct(logp[word], labels[word])
    chars = [CLASSES[k] for k in labels]
    conf = calibrate(P, labels, [word for line in lines for word in line])
    text = "\n".join(" ".join("".join(chars[i] for i in word) for word in line) for line in lines)
    return OCRResult(text, boxes, chars, conf, lines, P, kept)

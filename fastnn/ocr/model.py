"""The character classifier behind ``fastnn.ocr``: a training recipe, its augmentation, and a cache.

Recipe (version 3): hw36 train + valid + extra letters and 1000 MNIST digits per class (converted to the
hw36 layout), minus every MNIST digit whose quantised image equals a hw36 row (the hw36 digits were cut from
MNIST: 74 of them are hw36 test rows, which version 1 trained on), about 29.5k rows, each re-cropped by
:func:`fastnn.ocr.crops.recrop_rows` so that it is framed exactly like a character cropped from a page. Every
epoch trains on those rows plus ``copies`` (1) copy distorted afresh that epoch (rotation, shear, scale,
aspect, shift, stroke thickness); a 1024-1024-256-36 ReLU/softmax MLP, 16 epochs of Adam in float32 by the
fused epoch kernel, the learning rate falling from 1e-3 along a cosine. The README gives its training time
and its scores.

Why re-crop: hw36's letters and digits come from different sources and are framed differently (the digits,
from MNIST, are exactly 20 pixels on their longer side and centred by their centre of mass; the letters vary
in size around 21 pixels, centred by their box, with fainter strokes). A page's crops are all framed one way,
and a model trained on the rows as they are reads page digits as letters (6 as G, 0 as O): version 2, the
same recipe without re-cropping, scores well on hw36 rows as stored and worse on the same rows re-cropped,
the form a page's characters take. Version 2's errors on a photographed page prompted the search for a
cause; the fix came from the framing statistics above and was confirmed on the held-out valid rows before it
was run on the pages, and it has no constant tuned to them (it reuses ``crop_characters``' own code).
Version 2's settings were selected only by accuracy on the held-out hw36 valid split. The README has the
figures of that study.

The network trains on ink = 1 - pixel (a blank background is then zero input, which ReLU layers learn much
better from), and the inversion is folded into the first layer afterwards (W -> -W, b -> b + sum(W)), so the
saved model takes hw36-layout rows like any other. The hw36 test split stays out for evaluation.

The model fastnn ships (:data:`SHIPPED_MODEL`, package data) is this recipe's, seed 0, in half precision
with its description in ``MLP.meta`` (``fastnn ocr-train``, :mod:`fastnn.ocr.build`); :func:`load_ocr_model`
takes it when no other model is named and the cache holds none. Without it, a trained model is cached as
``.npz`` (see :func:`default_model_path`) and reused. When that cache cannot be written (``$FASTNN_CACHE``
names a file, or a read-only directory), the minutes of training are not thrown away:
the model is saved to the first writable fallback instead, ``~/.cache/fastnn`` (``$XDG_CACHE_HOME/fastnn``) when
``$FASTNN_CACHE`` was the unwritable one, else a private ``fastnn-<uid>`` folder in the system's temporary
directory, with a warning naming the place; later runs look there while the cache stays unwritable. When nothing
is writable the model is kept in memory for the run, with a warning that the next run trains again. A cached
file that cannot be loaded is reported with its path and the advice to delete it (fastnn then trains it anew).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .. import data as _data
from ..data import augment
from .crops import recrop_rows
from ..models import MLP
from ..train import History, ProgressBar, Trainer

RECIPE_VERSION = 3
HIDDEN = (1024, 256)
EPOCHS = 16
COPIES = 1  # freshly distorted copies of the training rows per epoch
LR = 1e-3  # Adam's initial learning rate; cosine decay over the epochs
HELD_OUT = ("test",)  # hw36 splits kept out of training (and out of the MNIST digits, see training_set)
#: The model fastnn ships (package data), built by ``fastnn ocr-train --data DIR --out <this path>`` (seed 0):
#: the recipe's model in half precision, with its recipe version, data and scores in ``MLP.meta``.
SHIPPED_MODEL = Path(__file__).with_name("ocr_model.npz")


def default_model_path() -> Path:
    """Where the trained OCR model is cached: ``$FASTNN_CACHE``, else ``$XDG_CACHE_HOME/fastnn`` or
    ``~/.cache/fastnn``, else (a user with no home folder at all) ``<tempdir>/fastnn-<uid>``.

    The file name carries the recipe's version and settings, so a changed recipe never loads a stale model.
    """
    root = os.environ.get("FASTNN_CACHE")
    if not root:
        try:
            root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnn"
        except RuntimeError:  # "Could not determine home directory"
            uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
            root = Path(tempfile.gettempdir()) / f"fastnn-{uid}"
    hidden = "-".join(map(str, HIDDEN))
    return Path(root) / f"ocr-mlp-v{RECIPE_VERSION}-h{hidden}-e{EPOCHS}-c{COPIES}.npz"


def _quantised(X) -> list:
    """Each row as bytes after rounding to 8 bits: equal keys mean the same image."""
    return [row.tobytes() for row in np.round(np.asarray(X) * 255).astype(np.uint8)]


def training_set(data, *, seed: int = 0, mnist_per_digit: int = 1000, held_out=HELD_OUT, progress=False):
    """The recipe's undistorted training rows (hw36 layout) and one-hot labels, float32, from ``data``.

    Every row comes back re-cropped by :func:`fastnn.ocr.crops.recrop_rows`, framed exactly like a page's crops.

    hw36 train, valid and extra, minus the splits named in ``held_out``, and ``mnist_per_digit`` MNIST-train
    digits per class. The hw36 digits were cut from both MNIST files, so an MNIST row whose quantised image
    equals any hw36 row is dropped: for a held-out split it would leak evaluation data into training (74 hw36
    test rows among the 10000 digits of seed 0), for the others it is a duplicate. A training row equal to a
    held-out hw36 row is dropped too (the shared hw36 splits have none in common, but the check is cheap).
    The recipe holds out ``test``; the selection study held out ``("valid", "test")``. ``progress`` (True,
    False or None: on a terminal only) shows the loading and the re-cropping on stderr.
    """
    steps = _Steps(progress)
    data_dir = _data.find_data_dir(data)
    if data_dir is None:
        raise FileNotFoundError("training the OCR model needs the real hw36 (and MNIST) data: pass --data DIR "
                                "or set FASTNN_DATA, or give a trained model with --model PATH")
    unknown = set(held_out) - set(_data.HW36_SPLITS)
    if unknown:
        raise ValueError(f"held_out: expected names from {_data.HW36_SPLITS}, got {sorted(unknown)}")
    # the splits' order matters nowhere: the keys only fill sets, and the parts are stacked in the order below
    steps.say(f"loading hw36 ({', '.join(_data.HW36_SPLITS)}) from {data_dir}")
    splits = {name: _data.load_hw36(data_dir, name) for name in _data.HW36_SPLITS}
    keys = {name: _quantised(X) for name, (X, _) in splits.items()}
    evaluation = {key for name in held_out for key in keys[name]}
    hw36_rows = {key for split_keys in keys.values() for key in split_keys}
    parts = []
    for name in ("train", "valid", "extra"):
        if name in held_out:
            continue
        X, Y = splits[name]
        keep = np.array([key not in evaluation for key in keys[name]], dtype=bool)
        parts.append((X[keep], Y[keep]))
    steps.say(f"loading MNIST train digits ({mnist_per_digit} per class) from {data_dir}")
    try:
        images, labels = _data.load_mnist(data_dir, "train")
    except FileNotFoundError:
        steps.say("no MNIST train files there: the digits are hw36's own")
    else:
        X, y = _data.mnist_multiclass(images, labels, mnist_per_digit, seed=seed)
        digits = _data.mnist_to_nist36((X.reshape(-1, 28, 28) * 255).round().astype(np.uint8))
        keep = np.array([key not in hw36_rows for key in _quantised(digits)], dtype=bool)
        parts.append((digits[keep], np.hstack([np.zeros((int(keep.sum()), 26)), y[keep]])))
    # stacked as float32 to keep the peak memory down; every pixel is a multiple of 1/255, so the cast moves
    # none across recrop_rows' 0.5 ink threshold
    X = _recropped(np.vstack([p[0] for p in parts]).astype(np.float32), steps)
    Y = np.vstack([p[1] for p in parts]).astype(np.float32)
    return X, Y


def train_ocr_model(data=None, *, seed: int = 0, epochs: int = EPOCHS, progress=None, copies: int = COPIES,
                    held_out=HELD_OUT):
    """Train the recipe's classifier; returns (model, history). The model takes hw36-layout rows.

    Every epoch trains on the undistorted rows plus ``copies`` freshly distorted copies of them (new
    distortions each epoch), with Adam and a cosine learning rate from ``LR`` down towards zero. The epochs
    are separate ``Trainer.fit(..., 1)`` calls on one Trainer, which keeps Adam's moments and step count
    between calls; the learning rate and the shuffling seed are set before each call.
    """
    steps = _Steps(progress)
    X, Y = training_set(data, seed=seed, held_out=held_out, progress=steps.on)
    n = X.shape[0]
    rows = np.empty(((copies + 1) * n, X.shape[1]), np.float32)
    np.subtract(1.0, X, out=rows[:n])  # ink = 1 on a zero background
    T = np.vstack([Y] * (copies + 1))
    rng = np.random.default_rng(seed)
    model = MLP([1024, *HIDDEN, 36], ["relu"] * len(HIDDEN) + ["softmax"], dtype="float32", seed=seed)
    trainer = Trainer(model, optimizer="adam", lr=LR, batch_size=128, shuffle="epoch", seed=seed, progress=False)
    bar = steps.bar(epochs, "epoch")
    hist = History()
    for ep in range(epochs):
        for j in range(1, copies + 1):
            np.subtract(1.0, augment(X, rng, on_progress=steps.within(bar, ep, j - 1, copies + 1, "distorting")),
                        out=rows[j * n:(j + 1) * n])
        if bar is not None:  # the training of the epoch: its last share of the bar, redrawn within
            trainer.progress = steps.within(bar, ep, copies, copies + 1, "training")
        trainer.lr = float(LR * 0.5 * (1 + np.cos(np.pi * ep / epochs)))
        trainer.seed = seed * 100_003 + ep  # fit draws its batch order from the trainer's seed: a new one each epoch
        h = trainer.fit(rows, T, 1)
        for key in ("train_loss", "train_acc", "lr", "seconds"):
            getattr(hist, key).extend(getattr(h, key))
        if bar is not None:
            bar.update(ep + 1, f"loss {hist.train_loss[-1]:.4g} acc {hist.train_acc[-1]:.3f}")
    W, b = model.weights[0], model.biases[0]  # fold the inversion: (1 - x) W + b = x (-W) + (b + sum W)
    b += W.sum(axis=0)
    W *= -1
    return model, hist


# ---- progress reporting: display only, nothing below changes what is trained ----------------------------------

_REPORT_ROWS = 512  # rows between two progress reports of augment and of the re-cropping


def progress_steps(progress):
    """What OCR training shows on stderr (``say(text)``, ``bar(total, label)``): see :class:`_Steps`."""
    return _Steps(progress)


class _Steps:
    """What the training shows on stderr when ``progress`` is on (None: on a terminal only): a line per step,
    and one bar over the epochs, redrawn within each (the distorted copies, then the training)."""

    def __init__(self, progress):
        self.on = bool(progress if progress is not None else sys.stderr.isatty())

    def say(self, text):
        if self.on:
            print(f"ocr model: {text}", file=sys.stderr, flush=True)

    def bar(self, total, label):
        return ProgressBar(total, label) if self.on else None

    @staticmethod
    def within(bar, ep, part, parts, what):
        """A :class:`_Within` reporter on ``bar``, or None when no bar is drawn."""
        return None if bar is None else _Within(bar, ep, part, parts, what)


class _Within:
    """Part ``part`` of ``parts`` of epoch ``ep`` on the epoch ``bar``: called with the fraction done (by
    :func:`augment`), or updated with ``(done, info)`` by a one-epoch ``Trainer.fit`` (its ``progress``)."""

    def __init__(self, bar, ep, part, parts, what):
        self.bar, self.ep, self.part, self.parts, self.what = bar, ep, part, parts, what

    def __call__(self, fraction):
        self.update(fraction, f"{fraction:.0%}")

    def update(self, done, info=""):
        self.bar.update(self.ep + (self.part + min(done, 1.0)) / self.parts, f"{self.what} {info}".rstrip())


def _recropped(X, steps):
    """``recrop_rows(X)`` as float32, in slices of rows (each row is re-cropped alone: the same numbers)."""
    out = np.empty(X.shape, np.float32)
    bar = steps.bar(len(X), "re-cropping rows") if len(X) else None
    for start in range(0, len(X), 4 * _REPORT_ROWS):
        stop = min(start + 4 * _REPORT_ROWS, len(X))
        out[start:stop] = recrop_rows(X[start:stop])
        if bar is not None:
            bar.update(stop)
    return out


def load_ocr_model(model=None, *, data=None, progress=None) -> MLP:
    """The OCR classifier: ``model`` (a path) if given, else ``$FASTNN_OCR_MODEL``, else the cached one (a
    model the user rebuilt with ``fastnn ocr-train``), else the model fastnn ships (:data:`SHIPPED_MODEL`),
    else train it from ``data`` (or ``$FASTNN_DATA``) and cache it.

    A trained model is never lost to an unwritable cache: it goes to a fallback folder (see the module
    docstring), or stays in memory for this run, with a ``RuntimeWarning`` saying which. A cached file that
    cannot be loaded raises a ValueError naming it: delete it and the next call trains a new one.
    """
    source = "--model, the model argument" if model else "$FASTNN_OCR_MODEL"
    model = model or os.environ.get("FASTNN_OCR_MODEL")
    if model:
        if not Path(model).is_file():
            what = "is a directory" if Path(model).is_dir() else "does not exist"
            raise FileNotFoundError(f"OCR model {model} (from {source}) {what}: expected a .npz model file")
        return _checked(MLP.load(model), model, cached=False)
    path = default_model_path()
    if path.exists():
        return _load_cached(path)
    if not _writable_dir(path.parent):
        for alt in _fallback_paths(path):
            if alt.is_file():
                return _load_cached(alt)
    shipped = shipped_model()
    if shipped is not None:
        return shipped
    trained, _ = train_ocr_model(data, progress=progress)
    _save_somewhere(trained, path)
    return trained


def shipped_model():
    """The model shipped in the package, or None when it is absent or was built by another recipe version
    (then with a warning: the installation is inconsistent, and the cache or a training takes over)."""
    if not SHIPPED_MODEL.is_file():
        return None
    model = _checked(MLP.load(SHIPPED_MODEL), SHIPPED_MODEL, cached=False)
    version = model.meta.get("recipe_version")
    if version != RECIPE_VERSION:
        warnings.warn(f"{SHIPPED_MODEL} was built by OCR recipe version {version}, this fastnn's is {RECIPE_VERSION}: "
                      "it is not used (rebuild it with fastnn ocr-train)", RuntimeWarning, stacklevel=3)
        return None
    return model


def _checked(model, path, *, cached):
    """``model`` if it maps hw36 rows (1024 pixels) to the 36 classes, else a ValueError naming ``path``."""
    if model.sizes[0] != 1024 or model.sizes[-1] != 36:
        advice = "; delete it and fastnn will train a new one" if cached else ""
        raise ValueError(f"{path}: not an OCR model: it maps {model.sizes[0]} inputs to {model.sizes[-1]} outputs, "
                         f"the OCR pipeline needs 1024 (a 32x32 crop) to 36 (A-Z, 0-9){advice}")
    return model


def _load_cached(path):
    try:
        model = MLP.load(path)
    except (ValueError, OSError) as exc:
        detail = str(exc)
        detail = detail[len(f"{path}: "):] if detail.startswith(f"{path}: ") else detail
        raise ValueError(f"the cached OCR model {path} cannot be loaded ({detail}); delete that file and fastnn will "
                         f"train a new one on the next run (a few minutes)") from exc
    return _checked(model, path, cached=True)


def _writable_dir(folder: Path) -> bool:
    """Whether ``folder`` is, or can be made, a directory this process can write files into."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _private_temp_dir(create: bool):
    """``<tempdir>/fastnn-<uid>``, owned by this user and writable by nobody else; None if not so."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"fastnn-{uid if uid is not None else os.environ.get('USERNAME', 'user')}"
    try:
        if create:
            folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    shared = os.name == "posix" and (st.st_uid != uid or st.st_mode & 0o022)
    if not stat.S_ISDIR(st.st_mode) or shared:
        return None  # a symlink, or a folder someone else could have put a model into
    return folder


def _fallback_paths(path: Path, *, create: bool = False) -> list:
    """Where the model goes, in order, when ``path``'s folder cannot be written."""
    folders = []
    if os.environ.get("FASTNN_CACHE"):
        try:
            folders.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnn")
        except RuntimeError:  # no home directory
            pass
    tmp = _private_temp_dir(create)
    if tmp is not None:
        folders.append(tmp)
    out = []
    for folder in folders:
        alt = folder / path.name
        if alt != path and alt not in out:
            out.append(alt)
    return out


def _why_not(exc: OSError, folder: Path) -> str:
    """Why ``folder`` could not be written to, in words (a file in the way, or the OS's reason)."""
    probe = Path(folder)
    while probe.parent != probe and not probe.exists():
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a directory"
    return exc.strerror or str(exc) or type(exc).__name__


def _save_somewhere(model, path: Path):
    """Save ``model`` to the cache ``path``, else to a fallback, else warn that it stays in memory only."""
    try:
        return model.save(path)
    except OSError as exc:
        reason = _why_not(exc, path.parent)
    problems = [f"{path.parent}: {reason}"]
    for alt in _fallback_paths(path, create=True):
        try:
            saved = model.save(alt)
        except OSError as exc:
            problems.append(f"{alt.parent}: {_why_not(exc, alt.parent)}")
            continue
        warnings.warn(f"cannot write the OCR model cache {path} ({reason}); the trained model "
                      f"was saved to {saved} instead, where later runs find it while {path.parent} stays unwritable. "
                      "Set FASTNN_CACHE to a writable directory to choose the place.", RuntimeWarning, stacklevel=3)
        return saved
    warnings.warn(f"cannot save the trained OCR model anywhere ({'; '.join(problems)}): it is kept in memory for "
                  "this run only, and the next run will train it again. Set FASTNN_CACHE to a writable directory.",
                  RuntimeWarning, stacklevel=3)
    return None

"""The character classifier behind ``fastnn.ocr``: a training recipe, the model file, and a cache.

Recipe (version 4): hw36 train + valid + extra letters and 1000 MNIST digits per class (converted to the
hw36 layout), minus every MNIST digit whose quantised image equals a hw36 row (the hw36 digits were cut from
MNIST: 74 of them are hw36 test rows, which version 1 trained on), about 29.5k rows. Each row is drawn as a
character on a photographed-looking page and cut back out by the page pipeline itself
(:func:`fastnn.ocr.synth.page_crops`: :func:`find_letters`, then :func:`crop_characters`), so that it is
framed exactly like a character of a user's photo. Two networks train on those rows, each epoch with
``copies`` (1) copy distorted afresh that epoch (rotation, shear, scale, aspect, shift, stroke thickness),
Adam in float32 by the fused epoch kernels, the learning rate falling from 1e-3 along a cosine:

* a 1024-1024-256-36 ReLU/softmax MLP, 16 epochs;
* the convolutional network of :data:`fastnn.recipes.CNN_RECIPES` ``'wide'`` (two 5x5 conv + 2x2
  max-pool blocks of 32 and 64 channels, 256 ReLU units, softmax), 16 epochs.

The :class:`OCRModel` averages their probabilities. Versions 1-3 were the MLP alone; version 3 trained it
on rows re-cropped by :func:`fastnn.ocr.crops.recrop_rows` instead of cut from pages. The choice of each
part (the page crops, the CNN's width, the pair) was made on pages and page crops of the held-out hw36
valid split only (the README has the figures).

Why pages: hw36's letters and digits come from different sources and are framed differently (the digits,
from MNIST, are exactly 20 pixels on their longer side and centred by their centre of mass; the letters vary
in size around 21 pixels, centred by their box, with fainter strokes), and a page's crops are all framed
one way: a model trained on the rows as they are reads page digits as letters (6 as G, 0 as O). Version 3
re-framed each 32x32 row with the page code's cropping; a page crop, though, comes from a large, blurred,
JPEG-compressed character thresholded at the page's scale, and a re-cropped 32x32 row has blockier,
thinner-looking strokes. On the valid split, the same MLP recipe reads 83.6% of characters cut from pages
when trained on re-cropped rows and 85.3% when trained on page crops.

Both networks train on ink = 1 - pixel (a blank background is then zero input, which ReLU layers learn much
better from), and the inversion is folded into their first layer afterwards (W -> -W, b -> b + sum(W)), so
the model takes hw36-layout rows like any other. The hw36 test split stays out for evaluation.

The model fastnn ships (:data:`SHIPPED_MODEL`, package data) is this recipe's, seed 0, in half precision
with its description in ``OCRModel.meta`` (``fastnn ocr-train``, :mod:`fastnn.ocr.build`); :func:`load_ocr_model`
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
from ..models import CNN, MLP
from ..models.fileformat import (ArchiveView, ModelFileError, find_members, max_params_limit, meta_member,
                                 model_file_path, read_meta, read_model_file, read_small_member, write_model_file)
from ..models.layers import rows_to_images
from ..train import History, ProgressBar, Trainer
from .synth import page_crops

RECIPE_VERSION = 4
HIDDEN = (1024, 256)  # the MLP's hidden layers
EPOCHS = 16  # the MLP's epochs
COPIES = 1  # freshly distorted copies of the training rows per epoch (both networks)
LR = 1e-3  # the MLP's Adam initial learning rate; cosine decay over the epochs
CNN_RECIPE = "wide"  # the CNN's settings: fastnn.recipes.CNN_RECIPES[CNN_RECIPE]
MEMBERS = ("mlp", "cnn")  # the networks the recipe trains, whose probabilities the OCRModel averages
HELD_OUT = ("test",)  # hw36 splits kept out of training (and out of the MNIST digits, see training_set)
PER_PAGE = 80  # training characters drawn on each generated page
#: The model fastnn ships (package data), built by ``fastnn ocr-train --data DIR --out <this path>`` (seed 0):
#: the recipe's model in half precision, with its recipe version, data and scores in ``OCRModel.meta``.
SHIPPED_MODEL = Path(__file__).with_name("ocr_model.npz")

_FORMAT = "fastnn.OCRModel/1"
_HINT = ("pass a file written by OCRModel.save or fastnn ocr-train, or an MLP or CNN file that maps a 32x32 crop "
         "to the 36 classes")


class OCRModel:
    """The OCR classifier: one or more networks over the 36 classes whose probabilities are averaged.

    Takes rows in the hw36 layout, as :func:`fastnn.ocr.crop_characters` makes them; an
    :class:`~fastnn.models.MLP` member reads them as they are, a :class:`~fastnn.models.CNN` member as
    upright 32x32 images (:func:`fastnn.layers.rows_to_images`).

    Parameters
    ----------
    members : sequence of MLP or CNN
        Each maps a 32x32 crop (1024 inputs, or a (32, 32, 1) image) to 36 softmax outputs.
    meta : dict, optional
        Facts about the model (its recipe, data and scores), saved with it.

    Examples
    --------
    >>> model = OCRModel([MLP([1024, 36], ["softmax"], seed=0)])
    >>> model
    OCRModel(MLP(1024-36, softmax, loss='cross_entropy', float64, 36,900 parameters))
    >>> model.predict_proba(np.ones((2, 1024))).shape
    (2, 36)
    """

    def __init__(self, members, meta=None):
        members = list(members)
        if not members:
            raise ValueError("OCRModel: expected at least one network, got none")
        for i, m in enumerate(members):
            if isinstance(m, MLP):
                ok = m.sizes[0] == 1024 and m.sizes[-1] == 36 and m.activations[-1] == "softmax"
                shape = f"{m.sizes[0]} inputs to {m.sizes[-1]} {m.activations[-1]} outputs"
            elif isinstance(m, CNN):
                ok = tuple(m.input_shape) == (32, 32, 1) and m.n_outputs == 36 and m.layers[-1].activation == "softmax"
                shape = f"{tuple(m.input_shape)} images to {m.n_outputs} {m.layers[-1].activation} outputs"
            else:
                raise TypeError(f"OCRModel: member {i} is a {type(m).__name__}, expected a fastnn MLP or CNN")
            if not ok:
                raise ValueError(f"OCRModel: member {i} maps {shape}; the OCR pipeline needs 1024 inputs (a 32x32 "
                                 "crop) to 36 softmax outputs (A-Z, 0-9)")
        self.members = members
        self.meta = dict(meta or {})

    def __repr__(self):
        return f"OCRModel({', '.join(repr(m) for m in self.members)})"

    def predict_proba(self, X) -> np.ndarray:
        """The members' class probabilities averaged, (n, 36) float64, for rows ``X`` (n, 1024)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != 1024:
            raise ValueError(f"OCRModel: expected rows of 1024 pixels (n, 1024), got shape {X.shape}")
        P = np.zeros((X.shape[0], 36))
        for m in self.members:
            rows = X.astype(m.dtype, copy=False)
            P += m.predict_proba(rows_to_images(rows) if isinstance(m, CNN) else rows)
        return P / len(self.members)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, (n,) int64."""
        return self.predict_proba(X).argmax(axis=1)

    def accuracy(self, X, Y) -> float:
        """The share of rows ``X`` whose most probable class is their label (``Y`` one-hot or indices)."""
        Y = np.asarray(Y)
        labels = Y.argmax(axis=1) if Y.ndim == 2 else Y
        return float(np.mean(self.predict(X) == labels))

    def save(self, path, *, storage=None, meta=None, overwrite=False) -> Path:
        """Write the model to one ``.npz`` file atomically, as :meth:`fastnn.models.MLP.save` does; return its
        path. Each member is stored as its own save would store it, under ``m<i>/``; ``storage='float16'``
        stores the parameters in half precision; ``meta`` (default: ``self.meta``) describes the model. An
        existing ``path`` that is read-only (mode without the owner's write bit, e.g. 0o444) is kept and a
        ``PermissionError`` raised, unless ``overwrite=True``."""
        members = {"format": np.array(_FORMAT), "members": np.array([type(m).__name__ for m in self.members]),
                   **meta_member(self.meta if meta is None else meta)}
        for i, m in enumerate(self.members):
            members.update({f"m{i}/{name}": array for name, array in m.archive_members(storage=storage).items()})
        return write_model_file(path, members, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, max_params=None) -> "OCRModel":
        """Read an OCR model file (:meth:`save`), or an MLP or CNN file (then the model of that one network).

        Nothing is unpickled; each network gets the checks of its own ``load`` (``max_params`` bounds
        each). Raises FileNotFoundError, or a ``ModelFileError`` (a ValueError) naming the file and what
        is wrong with it."""
        limit = max_params_limit(max_params)
        return read_model_file(path, lambda p, zf: cls._read(p, zf, limit), _HINT)

    @classmethod
    def _read(cls, path, zf, limit):
        infos = find_members(zf, ("format", "members"))
        fmt = None
        if "format" in infos:
            value = read_small_member(path, zf, infos["format"], "format")
            if value.dtype.kind != "U" or value.ndim != 0:
                raise ModelFileError(f"{path}: 'format' must be a string, got a {value.dtype} array of shape "
                                     f"{value.shape}; {_HINT}")
            fmt = str(value)
        if fmt is not None and fmt.startswith("fastnn.MLP/"):
            one = MLP.from_archive(path, zf, limit)
        elif fmt is not None and fmt.startswith("fastnn.CNN/") or fmt is None and "members" not in infos:
            one = CNN.from_archive(path, zf, limit)  # (a CNN file may lack 'format': CNN.load reads it so)
        elif fmt == _FORMAT and "members" in infos:
            kinds = read_small_member(path, zf, infos["members"], "members")
            if kinds.dtype.kind != "U" or kinds.ndim != 1 or not 1 <= kinds.size <= 16:
                raise ModelFileError(f"{path}: 'members' must name 1 to 16 networks, got a {kinds.dtype} array of "
                                     f"shape {kinds.shape}")
            readers = {"MLP": MLP, "CNN": CNN}
            nets = []
            for i, kind in enumerate(map(str, kinds)):
                if kind not in readers:
                    raise ModelFileError(f"{path}: member {i} is a {kind!r}, expected 'MLP' or 'CNN'")
                nets.append(readers[kind].from_archive(path, ArchiveView(zf, f"m{i}/"), limit))
            return cls._checked(path, nets, read_meta(path, zf))
        else:
            raise ModelFileError(f"{path}: unknown model format {fmt!r}; {_HINT}")
        return cls._checked(path, [one], one.meta)

    @classmethod
    def _checked(cls, path, nets, meta):
        try:
            return cls(nets, meta)
        except ValueError as exc:
            raise ModelFileError(f"{path}: not an OCR model: {str(exc).removeprefix('OCRModel: ')}") from None


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
    return Path(root) / f"ocr-v{RECIPE_VERSION}-{'-'.join(MEMBERS)}-h{hidden}-e{EPOCHS}-c{COPIES}-{CNN_RECIPE}.npz"


def _quantised(X) -> list:
    """Each row as bytes after rounding to 8 bits: equal keys mean the same image."""
    return [row.tobytes() for row in np.round(np.asarray(X) * 255).astype(np.uint8)]


def training_set(data, *, seed: int = 0, mnist_per_digit: int = 1000, held_out=HELD_OUT, progress=False):
    """The recipe's undistorted training rows (hw36 layout) and one-hot labels, float32, from ``data``.

    Every row comes back as a page's crop of it (:func:`fastnn.ocr.synth.page_crops`, pages seeded by
    ``seed``): framed exactly like a character of a photographed page.

    hw36 train, valid and extra, minus the splits named in ``held_out``, and ``mnist_per_digit`` MNIST-train
    digits per class. The hw36 digits were cut from both MNIST files, so an MNIST row whose quantised image
    equals any hw36 row is dropped: for a held-out split it would leak evaluation data into training (74 hw36
    test rows among the 10000 digits of seed 0), for the others it is a duplicate. A training row equal to a
    held-out hw36 row is dropped too (the shared hw36 splits have none in common, but the check is cheap).
    The recipe holds out ``test``; the selection study held out ``("valid", "test")``. ``progress`` (True,
    False or None: on a terminal only) shows the loading and the pages on stderr.
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
    # stacked as float32 to keep the peak memory down
    X = np.vstack([p[0] for p in parts]).astype(np.float32)
    Y = np.vstack([p[1] for p in parts]).astype(np.float32)
    bar = steps.bar(len(X), f"cutting characters from pages ({PER_PAGE} a page)") if len(X) else None
    X, _ = page_crops(X, seed=seed, per_page=PER_PAGE,
                      on_progress=None if bar is None else lambda done: bar.update(round(done * len(X))))
    return X, Y


def train_ocr_model(data=None, *, seed: int = 0, epochs=None, progress=None, copies: int = COPIES,
                    held_out=HELD_OUT, members=MEMBERS, mnist_per_digit: int = 1000):
    """Train the recipe's classifier; returns (model, histories): an :class:`OCRModel` that takes
    hw36-layout rows, and ``{member: History}``.

    ``members`` names the networks to train, from :data:`MEMBERS` ('mlp' and 'cnn'); ``epochs`` (default:
    each network's own, :data:`EPOCHS` and the CNN recipe's) and ``copies`` apply to each. Every epoch trains
    on the undistorted rows plus ``copies`` freshly distorted copies of them (new distortions each epoch),
    with Adam and a cosine learning rate.  ``mnist_per_digit`` is :func:`training_set`'s (the recipe's 1000;
    fewer for a quick check of the recipe on a slice of the data).
    """
    unknown = [m for m in members if m not in MEMBERS]
    if unknown or not members:
        raise ValueError(f"members: expected names from {MEMBERS}, got {list(members)}")
    steps = _Steps(progress)
    X, Y = training_set(data, seed=seed, mnist_per_digit=mnist_per_digit, held_out=held_out, progress=steps.on)
    nets, histories = [], {}
    for name in members:
        steps.say(f"training the {name.upper()}")
        if name == "mlp":
            net, hist = _train_mlp(X, Y, seed=seed, epochs=EPOCHS if epochs is None else epochs, copies=copies,
                                   steps=steps)
        else:
            from ..recipes import train_cnn

            net, hist, _ = train_cnn({"train": (X, Y)}, recipe=CNN_RECIPE, seed=seed, epochs=epochs, copies=copies,
                                     progress=steps.on)
        nets.append(net)
        histories[name] = hist
    return OCRModel(nets), histories


def _train_mlp(X, Y, *, seed, epochs, copies, steps):
    """The recipe's MLP on rows ``X`` (labels ``Y``): (model, history).

    The epochs are separate ``Trainer.fit(..., 1)`` calls on one Trainer, which keeps Adam's moments and
    step count between calls; the learning rate and the shuffling seed are set before each call.
    """
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


def load_ocr_model(model=None, *, data=None, progress=None) -> OCRModel:
    """The OCR classifier: ``model`` (a path) if given, else ``$FASTNN_OCR_MODEL``, else the cached one (a
    model the user rebuilt with ``fastnn ocr-train``), else the model fastnn ships (:data:`SHIPPED_MODEL`),
    else train it from ``data`` (or ``$FASTNN_DATA``) and cache it.

    ``model`` and ``$FASTNN_OCR_MODEL`` may name an OCR model file (:meth:`OCRModel.save`) or a single MLP or
    CNN file that maps a 32x32 crop to the 36 classes. A trained model is never lost to an unwritable cache:
    it goes to a fallback folder (see the module docstring), or stays in memory for this run, with a
    ``RuntimeWarning`` saying which. A cached file that cannot be loaded raises a ValueError naming it:
    delete it and the next call trains a new one.
    """
    source = "--model, the model argument" if model else "$FASTNN_OCR_MODEL"
    model = model or os.environ.get("FASTNN_OCR_MODEL")
    if model:
        if not Path(model).exists() and model_file_path(model).is_file():
            model = model_file_path(model)  # the file a save to ``model`` wrote, as OCRModel.load reads it
        if not Path(model).is_file():
            what = "is a directory" if Path(model).is_dir() else "does not exist"
            raise FileNotFoundError(f"OCR model {model} (from {source}) {what}: expected a .npz model file")
        return OCRModel.load(model)
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
    model = OCRModel.load(SHIPPED_MODEL)
    version = model.meta.get("recipe_version")
    if version != RECIPE_VERSION:
        warnings.warn(f"{SHIPPED_MODEL} was built by OCR recipe version {version}, this fastnn's is {RECIPE_VERSION}: "
                      "it is not used (rebuild it with fastnn ocr-train)", RuntimeWarning, stacklevel=3)
        return None
    return model


def _load_cached(path):
    try:
        return OCRModel.load(path)
    except (ValueError, OSError) as exc:
        detail = str(exc)
        detail = detail[len(f"{path}: "):] if detail.startswith(f"{path}: ") else detail
        raise ValueError(f"the cached OCR model {path} cannot be loaded ({detail}); delete that file and fastnn will "
                         f"train a new one on the next run (about 11 minutes)") from exc


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

"""Data sets for fastnn: NIST36 ``.mat`` files, MNIST idx files and a generated set.

Three sources, all ending in the NIST36 layout used by the coursework:

* ``load_nist36`` / ``load_hw36`` / ``save_nist36`` read and write the
  ``<split>_data`` / ``<split>_labels`` ``.mat`` layout.
* ``read_idx`` / ``load_mnist`` read the MNIST idx files (raw or gzipped) and
  ``mnist_binary`` / ``mnist_multiclass`` / ``mnist_to_nist36`` shape them for
  the tasks.
* ``generate_nist36`` / ``generated_splits`` build a synthetic set from the
  fonts matplotlib ships, for when no real data is at hand.

``load_dataset`` picks the real hw36 set when ``find_data_dir`` finds one and
the generated set otherwise.

The NIST36 layout
-----------------
``X`` is float64 in [0, 1] with shape (N, 1024): each row is a 32x32 image of
dark ink (0) on white (1), stored transposed, so ``row.reshape(32, 32).T`` is
upright and an upright crop is stored with ``crop.T.reshape(-1)``. ``Y`` is
one-hot with shape (N, 36); columns 0-25 are A-Z and columns 26-35 are 0-9
(see ``CLASSES``).

Nothing here unpickles: ``.mat`` files go through ``scipy.io.loadmat`` and idx
files are parsed by hand.
"""

import gzip
import os
import re
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ._io import atomic_write

__all__ = [
    "CLASSES",
    "GENERATED_SIZES",
    "HW36_SPLITS",
    "IMAGE_SIDE",
    "N_CLASSES",
    "find_data_dir",
    "generate_nist36",
    "generated_splits",
    "labels_to_chars",
    "load_dataset",
    "load_hw36",
    "load_mnist",
    "load_nist36",
    "mnist_binary",
    "mnist_multiclass",
    "mnist_to_nist36",
    "onehot",
    "read_idx",
    "save_nist36",
]

CLASSES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
"""Character of each NIST36 label column: A-Z are 0-25, 0-9 are 26-35."""

N_CLASSES = len(CLASSES)
IMAGE_SIDE = 32
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE

HW36_SPLITS = ("train", "valid", "test", "extra")
GENERATED_SIZES = MappingProxyType({"train": 300, "valid": 100, "test": 50})
"""Default samples per class of ``generated_splits``: the hw36 split sizes."""

PIXEL_TOLERANCE = 1e-6
"""Pixels in [-PIXEL_TOLERANCE, 1 + PIXEL_TOLERANCE] are accepted and clipped to
[0, 1]; anything further out is an error (usually 0-255 data)."""

DATA_ENV_VAR = "FASTNN_DATA"

_MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


# ---------------------------------------------------------------- labels


def onehot(indices, n):
    """One-hot encode integer class indices.

    Parameters
    ----------
    indices : (N,) array_like of int
        Class indices in ``[0, n)``.
    n : int
        Number of classes.

    Returns
    -------
    Y : (N, n) ndarray of float64
        ``Y[i, indices[i]] == 1`` and every other entry is 0.

    Examples
    --------
    >>> onehot([2, 0], 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    n = int(n)
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"onehot: indices must be 1-D, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        rounded = idx.astype(np.int64) if np.all(np.isfinite(idx)) else None
        if rounded is None or np.any(rounded != idx):
            raise ValueError(f"onehot: indices must be integers, got dtype {idx.dtype}")
        idx = rounded
    if n < 1:
        raise ValueError(f"onehot: n must be >= 1, got {n}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(
            f"onehot: indices must lie in [0, {n}), got min {idx.min()} max {idx.max()}"
        )
    Y = np.zeros((idx.shape[0], n), dtype=np.float64)
    Y[np.arange(idx.shape[0]), idx.astype(np.intp)] = 1.0
    return Y


def labels_to_chars(Y):
    """Turn NIST36 labels into their characters.

    Parameters
    ----------
    Y : (N, 36) array_like one-hot or scores, or (N,) array_like of int
        One-hot labels or class scores (the argmax is taken), or class indices.

    Returns
    -------
    chars : str
        One character per sample, ``CLASSES[k]`` for class ``k``.

    Examples
    --------
    >>> labels_to_chars(onehot([0, 25, 26, 35], 36))
    'AZ09'
    """
    Y = np.asarray(Y)
    if Y.ndim == 2:
        if Y.shape[1] != N_CLASSES:
            raise ValueError(
                f"labels_to_chars: expected {N_CLASSES} columns, got shape {Y.shape}"
            )
        idx = np.argmax(Y, axis=1) if Y.shape[0] else np.zeros(0, dtype=np.intp)
    elif Y.ndim == 1:
        idx = Y.astype(np.intp)
        if np.any(idx != Y) or (idx.size and (idx.min() < 0 or idx.max() >= N_CLASSES)):
            raise ValueError(
                f"labels_to_chars: class indices must be integers in [0, {N_CLASSES})"
            )
    else:
        raise ValueError(f"labels_to_chars: expected 1-D or 2-D labels, got shape {Y.shape}")
    return "".join(CLASSES[k] for k in idx)


# ---------------------------------------------------------------- NIST36 .mat


def _check_nist36(X, Y, where):
    """Validate NIST36 arrays; return (X float64 clipped to [0, 1], Y float64 one-hot)."""
    X = np.asarray(X)
    Y = np.asarray(Y)
    for name, arr in (("data", X), ("labels", Y)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{where}: {name} is not a numeric array (dtype {arr.dtype})")
        if np.iscomplexobj(arr):
            raise ValueError(f"{where}: {name} is complex (dtype {arr.dtype})")
    if X.ndim != 2 or X.shape[1] != N_PIXELS:
        raise ValueError(
            f"{where}: data must have shape (N, {N_PIXELS}) (32x32 images, one per row), "
            f"got {X.shape}"
        )
    if Y.ndim != 2 or Y.shape[1] != N_CLASSES:
        raise ValueError(
            f"{where}: labels must be one-hot with shape (N, {N_CLASSES}), got {Y.shape}"
        )
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{where}: data has {X.shape[0]} rows but labels have {Y.shape[0]} rows"
        )
    X = X.astype(np.float64)  # always a fresh array: callers may keep theirs
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"{where}: data holds {np.count_nonzero(~np.isfinite(X))} NaN/inf pixels "
            f"(first at row {bad[0]}, column {bad[1]})"
        )
    if X.size:
        lo, hi = X.min(), X.max()
        if lo < -PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE:
            hint = "; it looks like 0-255 pixels: divide by 255" if 1 < hi <= 255 else ""
            raise ValueError(
                f"{where}: pixel values must lie in [0, 1], found min {lo:g} max {hi:g}{hint}"
            )
        np.clip(X, 0.0, 1.0, out=X)
    Yf = Y.astype(np.float64)
    if Yf.size:
        binary = (Yf == 0) | (Yf == 1)
        ones = np.count_nonzero(Yf == 1, axis=1)
        bad_rows = np.flatnonzero(~binary.all(axis=1) | (ones != 1))
        if bad_rows.size:
            r = bad_rows[0]
            raise ValueError(
                f"{where}: labels are not one-hot: {bad_rows.size} rows do not hold exactly "
                f"one 1 and zeros elsewhere (first is row {r}: {np.unique(Yf[r]).tolist()} "
                f"with {ones[r]} ones)"
            )
    return X, Yf


def _mat_keys(mat):
    return sorted(k for k in mat if not k.startswith("__"))


def load_nist36(path, split=None):
    """Load one split of a NIST36-layout ``.mat`` file.

    Reads the keys ``<split>_data`` and ``<split>_labels``, as in the shared
    ``hw36_<split>.mat`` files and the coursework's ``nist36_<split>.mat``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file (MATLAB v5 format, as written by ``scipy.io.savemat``).
    split : str, optional
        Key prefix, e.g. ``"train"``. If None, the file must hold exactly one
        ``*_data`` key and its prefix is used.

    Returns
    -------
    X : (N, 1024) ndarray of float64
        Images in [0, 1], dark ink on white, each 32x32 image stored transposed
        (``X[i].reshape(32, 32).T`` is upright). Values within ``PIXEL_TOLERANCE``
        of [0, 1] are clipped into it.
    Y : (N, 36) ndarray of float64
        One-hot labels, columns in ``CLASSES`` order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.mat`` file (garbage, truncated, v7.3
        HDF5), a key is missing (the message lists the keys found), the data is
        not (N, 1024), the row counts differ, the labels are not one-hot with 36
        columns, or pixels are NaN/inf or outside [0, 1]. The message starts with
        the file name.

    Examples
    --------
    >>> X, Y = load_nist36("hw36/hw36_valid.mat")  # doctest: +SKIP
    >>> X.shape, Y.shape  # doctest: +SKIP
    ((3600, 1024), (3600, 36))
    """
    from scipy.io import loadmat

    path = Path(path)
    with open(path, "rb") as fh:  # FileNotFoundError names the file itself
        try:
            mat = loadmat(fh)
        except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
            raise ValueError(f"{path}: unsupported .mat version ({exc})") from exc
        except Exception as exc:  # scipy raises ValueError/OSError/IndexError/... on garbage
            raise ValueError(
                f"{path}: not a readable .mat file, corrupt or truncated "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    keys = _mat_keys(mat)
    if split is None:
        data_keys = [k for k in keys if k.endswith("_data")]
        if len(data_keys) != 1:
            raise ValueError(
                f"{path}: expected exactly one '<split>_data' key, found keys {keys}"
                + ("" if keys else " (empty or truncated file?)")
                + "; pass split= to choose"
            )
        split = data_keys[0][: -len("_data")]
    data_key, labels_key = f"{split}_data", f"{split}_labels"
    missing = [k for k in (data_key, labels_key) if k not in mat]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing}; keys found: {keys}"
            + ("" if keys else " (empty or truncated file?)")
        )
    return _check_nist36(mat[data_key], mat[labels_key], str(path))


def save_nist36(path, split, X, Y):
    """Write one split in the NIST36 ``.mat`` layout, atomically.

    The file gets the keys ``<split>_data`` (float64) and ``<split>_labels``
    (one-hot uint8, as in the shared hw36 files). It is written to a temporary
    file in the same folder, flushed to disk and moved over ``path`` with
    ``os.replace``, so a reader never sees a half-written file, and the
    temporaries that killed saves of ``path`` left behind are removed (see
    ``fastnn._io.atomic_write``). A new file gets the mode the umask gives a
    new file (0o644 for the usual umask 0o022); an existing file keeps its mode.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, written exactly as named (no ``.mat`` is appended).
    split : str
        Key prefix, a MATLAB variable name such as ``"train"``.
    X : (N, 1024) array_like
        Images in [0, 1] in the NIST36 layout.
    Y : (N, 36) array_like
        One-hot labels.

    Raises
    ------
    ValueError
        If ``split`` is not a valid name or the arrays fail the checks of
        ``load_nist36``.

    Examples
    --------
    >>> X, Y = generate_nist36(2, seed=0)
    >>> save_nist36("/tmp/tiny.mat", "train", X, Y)  # doctest: +SKIP
    """
    from scipy.io import savemat

    path = Path(path)
    if not isinstance(split, str) or not _MATLAB_NAME.match(split):
        raise ValueError(
            f"{path}: split must be a MATLAB variable name such as 'train', got {split!r}"
        )
    X, Yf = _check_nist36(X, Y, f"{path} (save_nist36 input)")
    with atomic_write(path, "wb") as fh:
        savemat(fh, {f"{split}_data": X, f"{split}_labels": Yf.astype(np.uint8)})


def find_data_dir(data=None):
    """Locate the real-data folder.

    Parameters
    ----------
    data : str or os.PathLike, optional
        Explicit folder. Takes precedence over the environment.

    Returns
    -------
    data_dir : pathlib.Path or None
        ``data`` if given, else the folder named by the ``FASTNN_DATA``
        environment variable if set and non-empty, else None (the caller then
        falls back to the generated set).

    Raises
    ------
    FileNotFoundError
        If the explicit folder or the ``FASTNN_DATA`` folder does not exist: a
        configured location that is wrong is an error, not a silent fallback.

    Examples
    --------
    >>> find_data_dir("/nonexistent")  # doctest: +SKIP
    Traceback (most recent call last):
    FileNotFoundError: data folder /nonexistent (from the data argument) does not exist
    """
    if data is not None:
        origin, value = "the data argument", data
    elif os.environ.get(DATA_ENV_VAR):
        origin, value = f"${DATA_ENV_VAR}", os.environ[DATA_ENV_VAR]
    else:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} (from {origin}) does not exist")
    return path.resolve()


def _hw36_candidates(data_dir, split):
    data_dir = Path(data_dir)
    return [
        data_dir / "hw36" / f"hw36_{split}.mat",
        data_dir / f"hw36_{split}.mat",
        data_dir / f"nist36_{split}.mat",
    ]


def load_hw36(data_dir, split):
    """Load one split of the real handwritten hw36 set (or coursework NIST36 files).

    Looks for, in order, ``data_dir/hw36/hw36_<split>.mat``,
    ``data_dir/hw36_<split>.mat`` and ``data_dir/nist36_<split>.mat``, so
    ``data_dir`` may be the shared data folder, its ``hw36`` folder, or a folder
    of coursework ``nist36_*.mat`` files.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Folder as described above.
    split : {"train", "valid", "test", "extra"}
        The split. ``extra`` (letters only) exists in hw36, not in the coursework.

    Returns
    -------
    X : (N, 1024) ndarray of float64
    Y : (N, 36) ndarray of float64
        As returned by ``load_nist36``. hw36 holds 10800/3600/1800/5715 rows.

    Raises
    ------
    FileNotFoundError
        If none of the candidate files exists (the message lists them).
    ValueError
        If ``split`` is unknown, or as ``load_nist36``.

    Examples
    --------
    >>> X, Y = load_hw36(find_data_dir(), "valid")  # doctest: +SKIP
    """
    if split not in HW36_SPLITS:
        raise ValueError(f"load_hw36: split must be one of {HW36_SPLITS}, got {split!r}")
    candidates = _hw36_candidates(data_dir, split)
    for path in candidates:
        if path.is_file():
            return load_nist36(path, split=split)
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"no {split} file for hw36/NIST36 in {data_dir}; tried {tried}")


# ---------------------------------------------------------------- MNIST idx

# idx type code -> big-endian dtype (http://yann.lecun.com/exdb/mnist/)
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an idx file (the MNIST format), raw or gzipped.

    Gzip is detected from the content, not the file name.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    array : ndarray
        Shape from the header (e.g. (60000, 28, 28) for MNIST training images),
        dtype from the header in native byte order (uint8 for MNIST). Writable.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the gzip stream is corrupt or truncated, the magic number is wrong,
        the type code is unknown, or the payload size does not match the header.
        The message starts with the file name.

    Examples
    --------
    >>> labels = read_idx("mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path}: corrupt or truncated gzip data ({type(exc).__name__}: {exc})"
            ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an idx file: bad magic {raw[:4].hex() or 'empty file'} "
            "(expected 0000 then type code and ndim)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file: unknown type code 0x{code:02x} in magic")
    if ndim == 0:
        raise ValueError(f"{path}: idx header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes after"
        raise ValueError(
            f"{path}: {what} idx data: header dims {dims} of {dtype.name} need "
            f"{expected} bytes, file holds {got}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # copy: writable, native order


_MNIST_PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _find_mnist_file(data_dir, prefix, kind, ndim):
    tried = []
    for folder in (Path(data_dir), Path(data_dir) / "mnist"):
        for suffix in (".gz", ""):
            path = folder / f"{prefix}-{kind}-idx{ndim}-ubyte{suffix}"
            tried.append(str(path))
            if path.is_file():
                return path
    raise FileNotFoundError(f"no MNIST {kind} file in {data_dir}; tried {', '.join(tried)}")


def load_mnist(data_dir, split):
    """Load the MNIST images and labels of one split.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The folder holding the idx files, or its parent (with a ``mnist``
        subfolder). Files may be gzipped (``.gz``) or raw.
    split : {"train", "test"}
        ``"train"`` reads ``train-*`` (60000 images), ``"test"`` reads
        ``t10k-*`` (10000 images).

    Returns
    -------
    images : (N, 28, 28) ndarray of uint8
        White ink (255) on black (0), upright.
    labels : (N,) ndarray of uint8
        Digits 0-9.

    Raises
    ------
    FileNotFoundError
        If a file is missing (the message lists the names tried).
    ValueError
        If a file is malformed (see ``read_idx``), has the wrong shape or dtype,
        or the image and label counts differ.

    Examples
    --------
    >>> images, labels = load_mnist("shared/data", "test")  # doctest: +SKIP
    >>> images.shape, labels.shape  # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    if split not in _MNIST_PREFIX:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    prefix = _MNIST_PREFIX[split]
    images_path = _find_mnist_file(data_dir, prefix, "images", 3)
    labels_path = _find_mnist_file(data_dir, prefix, "labels", 1)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels but {images_path.name} holds "
            f"{images.shape[0]} images"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
    return images, labels


def _check_mnist_arrays(images, labels, where):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3:
        raise ValueError(f"{where}: images must have shape (N, H, W), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: labels must have shape ({images.shape[0]},), got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    return images, labels


def _images_to_unit(images, where):
    """(N, H, W) uint8 0-255 or float in [0, 1] -> float64 in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{where}: images must be uint8 (0-255) or float in [0, 1], got {images.dtype}"
        )
    x = images.astype(np.float64)
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"{where}: float images must be finite and in [0, 1]")
    return x


def _sample_per_class(labels, classes, n_per_class, seed, where):
    """Row indices, n_per_class per class drawn without replacement, grouped by class."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if n_per_class is None:
            picked.append(rows)
            continue
        if n_per_class > rows.size:
            raise ValueError(
                f"{where}: asked for {n_per_class} samples of class {c} but only "
                f"{rows.size} exist"
            )
        picked.append(np.sort(rng.choice(rows, size=n_per_class, replace=False)))
    return picked


def _check_n_per_class(n_per_class, where):
    if n_per_class is None:
        return None
    if int(n_per_class) != n_per_class or n_per_class < 0:
        raise ValueError(f"{where}: n_per_class must be a non-negative int or None")
    return int(n_per_class)


def mnist_binary(images, labels, pos=5, neg=8, n_per_class=1000, seed=0):
    """Two-class MNIST task (by default 5 against 8).

    Parameters
    ----------
    images : (N, 28, 28) ndarray of uint8
        As returned by ``load_mnist`` (float input in [0, 1] is also accepted).
    labels : (N,) ndarray of int
    pos, neg : int
        The digit labelled 1 and the digit labelled 0.
    n_per_class : int or None
        Samples drawn per digit, without replacement; None takes all.
    seed : int
        Seed of ``np.random.default_rng`` for the draw.

    Returns
    -------
    X : (M, 784) ndarray of float64
        Flattened images in [0, 1] (white ink on black, as MNIST).
    y : (M, 1) ndarray of float64
        1.0 for ``pos``, 0.0 for ``neg``. Rows come grouped: all ``neg`` rows
        (y = 0) first, then all ``pos`` rows, each group in the original order.
        Shuffle before minibatch training.

    Examples
    --------
    >>> X, y = mnist_binary(*load_mnist("shared/data", "train"))  # doctest: +SKIP
    >>> X.shape, y.shape, y.mean()  # doctest: +SKIP
    ((2000, 784), (2000, 1), 0.5)
    """
    where = "mnist_binary"
    images, labels = _check_mnist_arrays(images, labels, where)
    if pos == neg:
        raise ValueError(f"{where}: pos and neg must differ, both are {pos}")
    n_per_class = _check_n_per_class(n_per_class, where)
    neg_rows, pos_rows = _sample_per_class(labels, (neg, pos), n_per_class, seed, where)
    rows = np.concatenate([neg_rows, pos_rows])
    X = _images_to_unit(images[rows], where).reshape(rows.size, -1)
    y = np.zeros((rows.size, 1), dtype=np.float64)
    y[neg_rows.size :] = 1.0
    return X, y


def mnist_multiclass(images, labels, n_per_class=1000, seed=0):
    """Ten-class MNIST task with one-hot targets.

    Parameters
    ----------
    images : (N, 28, 28) ndarray of uint8
        As returned by ``load_mnist`` (float input in [0, 1] is also accepted).
    labels : (N,) ndarray of int
        Digits 0-9.
    n_per_class : int or None
        Samples drawn per digit, without replacement; None takes all.
    seed : int
        Seed of ``np.random.default_rng`` for the draw.

    Returns
    -------
    X : (M, 784) ndarray of float64
        Flattened images in [0, 1] (white ink on black, as MNIST).
    Y : (M, 10) ndarray of float64
        One-hot digits. Rows are sorted by digit, each digit in the original
        order. Shuffle before minibatch training.

    Examples
    --------
    >>> X, Y = mnist_multiclass(*load_mnist("shared/data", "test"), n_per_class=100)  # doctest: +SKIP
    >>> X.shape, Y.shape  # doctest: +SKIP
    ((1000, 784), (1000, 10))
    """
    where = "mnist_multiclass"
    images, labels = _check_mnist_arrays(images, labels, where)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{where}: labels must be digits 0-9")
    n_per_class = _check_n_per_class(n_per_class, where)
    groups = _sample_per_class(labels, range(10), n_per_class, seed, where)
    rows = np.concatenate(groups)
    X = _images_to_unit(images[rows], where).reshape(rows.size, -1)
    Y = onehot(np.asarray(labels[rows], dtype=np.intp), 10)
    return X, Y


def mnist_to_nist36(images):
    """Convert MNIST digits to the NIST36 image layout.

    Pads each 28x28 image with 2 black pixels per side to 32x32, inverts it to
    dark ink on white, and flattens it transposed. This is exactly how the
    digits of the shared hw36 set were made from MNIST, so the rows can augment
    a 36-class training set (labels: ``onehot(26 + digit, 36)``).

    Beware of leakage: the hw36 digits (all splits) were drawn from both MNIST
    files, so adding MNIST digits to hw36 training data puts some hw36
    validation and test images into the training set. Drop rows whose bytes
    equal a hw36 valid/test row first.

    Parameters
    ----------
    images : (N, 28, 28) ndarray of uint8 (0-255) or float in [0, 1]
        White ink on black, upright, as returned by ``load_mnist``.

    Returns
    -------
    X : (N, 1024) ndarray of float64
        In [0, 1], NIST36 layout: ``X[i].reshape(32, 32).T`` is upright.

    Examples
    --------
    >>> X = mnist_to_nist36(np.zeros((2, 28, 28), np.uint8))
    >>> X.shape, float(X.min())
    ((2, 1024), 1.0)
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"mnist_to_nist36: images must have shape (N, 28, 28), got {images.shape}")
    x = _images_to_unit(images, "mnist_to_nist36")
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.ascontiguousarray((1.0 - x).transpose(0, 2, 1)).reshape(x.shape[0], N_PIXELS)


# ---------------------------------------------------------------- generated set

# Fonts shipped in matplotlib's mpl-data/fonts/ttf; any that are missing are skipped.
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
)
_CANVAS = 96  # side of the cached glyph canvas, pixels
_GLYPH_PX = 64  # target size of the larger glyph side on the canvas, pixels

# Distortion ranges, in output pixels / radians. Moderate on purpose: the set must stay learnable.
_SIZE_RANGE = (17.0, 24.0)  # larger side of the glyph box (hw36 glyphs are ~19-21 px)
_LOG_ASPECT = 0.15  # x scale multiplied by exp(U(-a, a))
_ROTATION = np.deg2rad(12.0)  # U(-r, r)
_SHEAR = 0.3  # x += U(-s, s) * y
_SHIFT = 2.0  # centre moved by U(-t, t) per axis
_STROKE_RANGE = (-0.3, 0.6)  # erosion (<0) / dilation (>0) radius
_SOFT_RANGE = (0.7, 1.8)  # width of the edge ramp: blur
_INK_RANGE = (0.8, 1.0)  # darkness of full ink
_NOISE_RANGE = (0.0, 0.04)  # sd of Gaussian pixel noise


def _font_dir():
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _render_glyph(font, char):
    """Antialiased coverage in [0, 1] of one character, cropped to its ink."""
    font.clear()
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float64) / 255.0
    ink = img >= 0.5
    if not ink.any():
        raise RuntimeError(f"font {font.fname} has no glyph for {char!r}")
    r = np.flatnonzero(ink.any(axis=1))
    c = np.flatnonzero(ink.any(axis=0))
    return img[r[0] : r[-1] + 1, c[0] : c[-1] + 1]


@lru_cache(maxsize=1)
def _glyph_bank():
    """Signed distance fields of every class in every font, rendered once.

    Returns ``(sdf, n_fonts)``; ``sdf`` is (36 * n_fonts, _CANVAS, _CANVAS)
    float32, index ``class * n_fonts + font``, in canvas pixels (negative
    inside the ink), each glyph centred with its larger side ``_GLYPH_PX``.
    """
    from matplotlib import ft2font
    from scipy import ndimage

    font_dir = _font_dir()
    paths = [font_dir / name for name in _FONT_FILES if (font_dir / name).is_file()]
    if not paths:
        raise RuntimeError(f"no usable fonts found in {font_dir}; tried {_FONT_FILES}")
    sdf = np.empty((N_CLASSES, len(paths), _CANVAS, _CANVAS), dtype=np.float32)
    for f, path in enumerate(paths):
        font = ft2font.FT2Font(str(path))
        font.set_size(1.6 * _GLYPH_PX, 72)  # 1 pt == 1 px at 72 dpi; render big, shrink
        for k, char in enumerate(CLASSES):
            g = _render_glyph(font, char)
            # each glyph's larger side becomes _GLYPH_PX: hw36 characters fill their box
            g = ndimage.zoom(g, _GLYPH_PX / max(g.shape), order=1)
            ink = np.zeros((_CANVAS, _CANVAS), dtype=bool)
            h, w = g.shape
            top, left = (_CANVAS - h) // 2, (_CANVAS - w) // 2
            ink[top : top + h, left : left + w] = g >= 0.5
            outside = ndimage.distance_transform_edt(~ink) - 0.5
            inside = ndimage.distance_transform_edt(ink) - 0.5
            sdf[k, f] = np.where(ink, -inside, outside)
    sdf = sdf.reshape(N_CLASSES * len(paths), _CANVAS, _CANVAS)
    sdf.flags.writeable = False  # shared by every call through the cache
    return sdf, len(paths)


def _split_seed(seed, split):
    if isinstance(seed, (bool, np.bool_)) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    return [int(seed), zlib.crc32(split.encode())]


def _render_batch(sdf_flat, glyph, params, noise_rng, out):
    """Sample distorted glyphs into ``out`` (n, 1024) in NIST36 (transposed) pixel order."""
    # IN sdf_flat (G*C*C,), glyph (n,), params: 10 arrays (n,), noise_rng; OUT out (n, 1024)
    side = IMAGE_SIDE
    k = np.arange(N_PIXELS)
    row = (k % side).astype(np.float32)  # transposed flatten: pixel k is (k % 32, k // 32)
    col = (k // side).astype(np.float32)
    scale, aspect, theta, shear, dr, dc, stroke, soft, ink, noise = params
    # forward map source -> output about the centres:
    # A = R(theta) @ [[1, 0], [shear, 1]] @ diag(scale, scale * aspect), in (row, col)
    sy, sx = scale, scale * aspect
    cos, sin = np.cos(theta), np.sin(theta)
    a00 = cos * sy - sin * shear * sy
    a01 = -sin * sx
    a10 = sin * sy + cos * shear * sy
    a11 = cos * sx
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    qr = row[None, :] - ((side - 1) / 2 + dr)[:, None]
    qc = col[None, :] - ((side - 1) / 2 + dc)[:, None]
    centre = np.float32((_CANVAS - 1) / 2)
    sr = i00[:, None] * qr + i01[:, None] * qc + centre
    sc = i10[:, None] * qr + i11[:, None] * qc + centre
    np.clip(sr, 0, _CANVAS - 1.001, out=sr)  # beyond the canvas: background distance
    np.clip(sc, 0, _CANVAS - 1.001, out=sc)
    r0 = sr.astype(np.intp)
    c0 = sc.astype(np.intp)
    fr = sr - r0
    fc = sc - c0
    base = glyph[:, None] * (_CANVAS * _CANVAS) + r0 * _CANVAS + c0
    v00 = sdf_flat[base]
    v01 = sdf_flat[base + 1]
    v10 = sdf_flat[base + _CANVAS]
    v11 = sdf_flat[base + _CANVAS + 1]
    top = v00 + fc * (v01 - v00)
    bottom = v10 + fc * (v11 - v10)
    dist = top + fr * (bottom - top)  # canvas pixels, negative inside the ink
    dist *= np.sqrt(np.abs(det))[:, None]  # -> output pixels
    # moving the zero level is dilation (stroke > 0) or erosion by a disk; the ramp width blurs
    coverage = np.clip(0.5 - (dist - stroke[:, None]) / soft[:, None], 0.0, 1.0)
    out[:] = 1.0 - ink[:, None] * coverage
    out += noise[:, None] * noise_rng.standard_normal(out.shape)
    np.clip(out, 0.0, 1.0, out=out)


def generate_nist36(n_per_class, seed=0, split="train"):
    """Generate a synthetic 36-class character set in the NIST36 layout.

    **Synthetic, not handwriting.** Each sample is a glyph of one of the fonts
    matplotlib ships (DejaVu Sans, Sans Mono and Serif, STIX General; regular
    and bold), rendered once per font into a cache of signed distance fields
    and then distorted per sample: a random affine map (rotation +-12 deg,
    shear +-0.3, glyph size 17-24 px, aspect +-15 %, shift +-2 px), a random
    stroke width (erosion up to 0.3 px or dilation up to 0.6 px by a disk,
    done by moving the distance field's zero level), random edge blur, ink
    darkness 0.8-1 and Gaussian noise (sd up to 0.04). Useful when no real data
    is at hand and for small test fixtures; a model trained on it is not a
    handwriting model.

    Parameters
    ----------
    n_per_class : int
        Samples per class; the result has ``36 * n_per_class`` rows.
    seed : int
        Non-negative seed. Together with ``split`` it seeds
        ``np.random.default_rng``; equal arguments give identical bytes (with
        the same matplotlib/FreeType, which render the cached glyphs).
    split : str
        Name mixed into the seed, so ``"train"``, ``"valid"`` and ``"test"``
        drawn with one seed are different samples.

    Returns
    -------
    X : (36 * n_per_class, 1024) ndarray of float64
        Images in [0, 1], dark ink on white, stored transposed
        (``X[i].reshape(32, 32).T`` is upright).
    Y : (36 * n_per_class, 36) ndarray of float64
        One-hot labels. Rows are sorted by class like the real files:
        rows ``k * n_per_class`` to ``(k + 1) * n_per_class`` are class ``k``.

    Examples
    --------
    >>> X, Y = generate_nist36(2, seed=0)
    >>> X.shape, Y.shape, labels_to_chars(Y[::2])
    ((72, 1024), (72, 36), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')
    """
    if isinstance(n_per_class, (bool, np.bool_)) or int(n_per_class) != n_per_class:
        raise ValueError(f"generate_nist36: n_per_class must be an int, got {n_per_class!r}")
    n_per_class = int(n_per_class)
    if n_per_class < 0:
        raise ValueError(f"generate_nist36: n_per_class must be >= 0, got {n_per_class}")
    rng = np.random.default_rng(_split_seed(seed, split))
    sdf, n_fonts = _glyph_bank()
    sdf_flat = sdf.reshape(-1)
    n = N_CLASSES * n_per_class
    labels = np.repeat(np.arange(N_CLASSES), n_per_class)
    glyph = labels * n_fonts + rng.integers(0, n_fonts, size=n)
    size = rng.uniform(*_SIZE_RANGE, size=n)
    params = (
        (size / _GLYPH_PX).astype(np.float32),
        np.exp(rng.uniform(-_LOG_ASPECT, _LOG_ASPECT, size=n)).astype(np.float32),
        rng.uniform(-_ROTATION, _ROTATION, size=n).astype(np.float32),
        rng.uniform(-_SHEAR, _SHEAR, size=n).astype(np.float32),
        rng.uniform(-_SHIFT, _SHIFT, size=n).astype(np.float32),
        rng.uniform(-_SHIFT, _SHIFT, size=n).astype(np.float32),
        rng.uniform(*_STROKE_RANGE, size=n).astype(np.float32),
        rng.uniform(*_SOFT_RANGE, size=n).astype(np.float32),
        rng.uniform(*_INK_RANGE, size=n),
        rng.uniform(*_NOISE_RANGE, size=n),
    )
    X = np.empty((n, N_PIXELS), dtype=np.float64)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    chunk = 1024  # samples per batch: keeps the float32 temporaries near 4 MB each
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        _render_batch(sdf_flat, glyph[sl], [p[sl] for p in params], noise_rng, X[sl])
    return X, onehot(labels, N_CLASSES)


def generated_splits(seed=0, sizes=GENERATED_SIZES):
    """Generate train/valid/test splits of the synthetic set.

    Parameters
    ----------
    seed : int
        Non-negative seed; each split is ``generate_nist36(n, seed, split=name)``,
        so the splits differ from each other and the result is deterministic.
    sizes : mapping of str to int
        Samples per class of each split. The default, ``GENERATED_SIZES``, is
        300/100/50 for train/valid/test, the sizes of the hw36 set.

    Returns
    -------
    splits : dict of str to (X, Y)
        ``X`` (36 * n, 1024) float64 and ``Y`` (36 * n, 36) float64 one-hot, as
        from ``generate_nist36``.

    Examples
    --------
    >>> splits = generated_splits(sizes={"train": 3, "valid": 1})
    >>> {k: v[0].shape for k, v in splits.items()}
    {'train': (108, 1024), 'valid': (36, 1024)}
    """
    return {name: generate_nist36(n, seed=seed, split=name) for name, n in sizes.items()}


def load_dataset(data=None, seed=0):
    """Load the 36-class train/valid/test splits: real hw36 if found, else generated.

    Parameters
    ----------
    data : str or os.PathLike, optional
        Folder with the real data (see ``find_data_dir`` and ``load_hw36``). If
        None, ``$FASTNN_DATA`` is used; if that is unset too, the synthetic set
        of ``generated_splits(seed)`` is returned.
    seed : int
        Seed of the generated set; unused for real data.

    Returns
    -------
    dataset : dict
        ``"train"``, ``"valid"`` and ``"test"`` map to ``(X, Y)`` with ``X``
        (N, 1024) float64 and ``Y`` (N, 36) float64 one-hot; ``"source"`` is
        ``"hw36 at <dir>"`` or ``"generated (synthetic fonts)"``.

    Raises
    ------
    FileNotFoundError
        If a data folder was configured but it or its hw36 files are missing:
        a wrong configuration never silently falls back to the generated set.

    Examples
    --------
    >>> ds = load_dataset()  # doctest: +SKIP
    >>> ds["source"], ds["train"][0].shape  # doctest: +SKIP
    ('generated (synthetic fonts)', (10800, 1024))
    """
    data_dir = find_data_dir(data)
    if data_dir is None:
        dataset = generated_splits(seed=seed)
        dataset["source"] = "generated (synthetic fonts)"
        return dataset
    dataset = {split: load_hw36(data_dir, split) for split in ("train", "valid", "test")}
    dataset["source"] = f"hw36 at {data_dir}"
    return dataset

"""The NIST36 ``.mat`` format and the hw36 files: load, check, save, find.

A split is two keys of a MATLAB v5 file: ``<split>_data``, (N, 1024) images in
[0, 1] stored transposed (``row.reshape(32, 32).T`` is upright), and
``<split>_labels``, (N, 36) one-hot in ``CLASSES`` order.  The shared hw36
set has the splits ``HW36_SPLITS``; ``find_data_dir`` locates its folder.

Nothing here unpickles: ``.mat`` files go through ``scipy.io.loadmat``.
"""

import os
import re
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .labels import N_CLASSES

__all__ = [
    "DATA_ENV_VAR",
    "HW36_SPLITS",
    "IMAGE_SIDE",
    "N_PIXELS",
    "PIXEL_TOLERANCE",
    "find_data_dir",
    "load_hw36",
    "load_nist36",
    "save_nist36",
]

IMAGE_SIDE = 32
"""Side of a NIST36 image, pixels."""

N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
"""Pixels of a NIST36 image: the columns of ``X``."""

HW36_SPLITS = ("train", "valid", "test", "extra")
"""Names of the splits of the shared hw36 set, as ``load_hw36`` accepts them.

``train``, ``valid`` and ``test`` are the coursework's three (36 classes);
``extra`` holds more letters only.  This is the one definition of the names:
code elsewhere takes them from ``fastnn.data.HW36_SPLITS`` instead of
writing them again.
"""

PIXEL_TOLERANCE = 1e-6
"""Pixels in [-PIXEL_TOLERANCE, 1 + PIXEL_TOLERANCE] are accepted and clipped to
[0, 1]; anything further out is an error (usually 0-255 data)."""

DATA_ENV_VAR = "FASTNN_DATA"
"""Environment variable naming the real-data folder (see ``find_data_dir``)."""

_MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


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
    >>> from fastnn.data import generate_nist36
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


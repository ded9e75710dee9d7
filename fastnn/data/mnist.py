"""MNIST idx files and the MNIST tasks: read, load, sample, convert to NIST36.

Idx files (raw or gzipped) are parsed by hand; nothing here unpickles.
"""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .labels import onehot
from .nist36 import N_PIXELS

__all__ = ["load_mnist", "mnist_binary", "mnist_multiclass", "mnist_to_nist36", "read_idx"]

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


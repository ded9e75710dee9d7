"""Class labels of the NIST36 set: the class list, one-hot encoding and characters.

``CLASSES`` is the one definition of the 36 classes and their order: code
elsewhere (the tasks, the OCR) takes it from ``fastnn.data.CLASSES`` instead
of writing it again.
"""

import numpy as np

__all__ = ["CLASSES", "N_CLASSES", "labels_to_chars", "onehot"]

CLASSES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
"""Character of each NIST36 label column: A-Z are 0-25, 0-9 are 26-35."""

N_CLASSES = len(CLASSES)
"""Number of NIST36 classes (label columns)."""

_CHARS = np.array(list(CLASSES), dtype="<U1")  # CLASSES as an array, indexed by labels_to_chars


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
    """Turn NIST36 labels into their characters, one per label.

    Parameters
    ----------
    Y : (N, 36) array_like one-hot or scores, or (N,) array_like of int
        One-hot labels or class scores (the argmax is taken), or class indices.

    Returns
    -------
    chars : (N,) ndarray of str (dtype '<U1')
        ``CLASSES[k]`` for each sample of class ``k``. ``"".join(chars)`` is the one string.

    Examples
    --------
    >>> labels_to_chars(onehot([0, 25, 26, 35], 36))
    array(['A', 'Z', '0', '9'], dtype='<U1')
    >>> "".join(labels_to_chars([7, 30]))
    'H4'
    """
    Y = np.asarray(Y)
    if Y.ndim == 2:
        if Y.shape[1] != N_CLASSES:
            raise ValueError(
                f"labels_to_chars: expected {N_CLASSES} columns, got shape {Y.shape}"
            )
        idx = np.argmax(Y, axis=1) if Y.shape[0] else np.zeros(0, dtype=np.intp)
    elif Y.ndim == 1:
        numeric = Y.dtype.kind in "biuf" or Y.size == 0
        with np.errstate(invalid="ignore"):
            idx = Y.astype(np.intp) if numeric else None
        if idx is None or np.any(idx != Y) or (idx.size and (idx.min() < 0 or idx.max() >= N_CLASSES)):
            raise ValueError(
                f"labels_to_chars: class indices must be integers in [0, {N_CLASSES})"
            )
    else:
        raise ValueError(f"labels_to_chars: expected 1-D or 2-D labels, got shape {Y.shape}")
    return _CHARS[idx]

"""Inverted dropout whose masks are a hash of (seed, step, layer, index): reproducible, stored nowhere, the
same for any number of threads, and the same in the backward as in the forward."""

from __future__ import annotations

import numbers

import numpy as np

from .._kernels import _core
from ._checks import as_float, check_hyperparameter, check_out, float_dtype

__all__ = ["dropout"]

_U64 = (1 << 64) - 1


def _key_part(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"dropout: {name}: expected a non-negative integer, got {value!r}")
    return int(value) & _U64


def dropout(X, rate: float, *, seed: int = 0, step: int = 0, layer: int = 0, out=None) -> np.ndarray:
    """Inverted dropout: each value of ``X`` kept and scaled by ``1 / (1 - rate)``, or zeroed.

    Whether value ``i`` (in C order) is kept is decided by a hash of (``seed``, ``step``, ``layer``, ``i``):
    the training step and the layer's index give every mask of a run, and the same call on the gradient of the
    outputs is the backward (the same mask, the same scale).  ``rate`` 0 returns a copy of ``X``.

    Parameters
    ----------
    X : ndarray of float32 or float64
        A layer's outputs for a batch (any shape), or their gradient.
    rate : float
        The probability of zeroing a value, in [0, 1).
    seed, step, layer : int
        Non-negative: the run's seed, the training step (the trainer's batch count), the layer's index.
    out : ndarray, optional
        Written with the result (may be ``X`` itself).

    Returns
    -------
    ndarray, shaped like X

    Examples
    --------
    >>> Y = dropout(np.ones((2, 4)), 0.5, seed=0, step=1)
    >>> sorted(set(Y.ravel()))
    [0.0, 2.0]
    """
    given = X
    X = as_float(X, "X", float_dtype(X), np.ndim(X))
    rate = check_hyperparameter(rate, "dropout: rate", 0.0, 1.0, high_open=True)
    seed, step, layer = _key_part(seed, "seed"), _key_part(step, "step"), _key_part(layer, "layer")
    Y = check_out(out, "out", X.shape, X.dtype, [("X", X)], may_be=X if out is given else None)
    if Y is not X:
        Y[...] = X
    if rate > 0 and Y.size:
        _core.dropout(Y.reshape(-1), seed, step, layer, rate)
    return Y

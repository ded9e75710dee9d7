"""Batch normalisation: a batch's per-channel statistics, the normalisation, its backward, and the inference
form with running statistics.  Channels are the last axis: an (n, C) batch of a dense layer, or (N, H, W, C)
images (the statistics then over N*H*W pixels).  Statistics and reductions are float64."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._kernels import _core
from ._checks import as_float, check_hyperparameter, check_out, float_dtype

__all__ = ["BatchNormResult", "batch_norm_forward", "batch_norm_backward", "batch_norm_inference",
           "update_running_stats"]


class BatchNormResult(NamedTuple):
    """What :func:`batch_norm_forward` returns: the output and the batch's statistics (float64, (C,))."""

    Y: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    invstd: np.ndarray


def _rows(X, name):
    X = np.asarray(X)
    if X.ndim not in (2, 4):
        raise ValueError(f"{name}: expected an (n, C) batch or (N, H, W, C) images, got shape {X.shape}")
    X = as_float(X, name, float_dtype(X), X.ndim)
    return X, X.reshape(-1, X.shape[-1])


def _channel_vector(v, C, dtype, name):
    v = np.asarray(v)
    if v.shape != (C,):
        raise ValueError(f"{name}: expected shape ({C},), one value per channel, got shape {v.shape}")
    return as_float(v, name, dtype, 1)


def batch_norm_forward(X, gamma, beta, *, eps: float = 1e-5, out=None) -> BatchNormResult:
    """Normalise each channel of a batch by the batch's mean and biased variance, then scale and shift:
    ``Y = gamma * (X - mean) / sqrt(var + eps) + beta`` (``torch.nn.BatchNorm1d/2d`` in training).

    Parameters
    ----------
    X : (n, C) or (N, H, W, C) ndarray of float32 or float64
    gamma, beta : (C,) ndarray
    eps : float
        Added to the variance, > 0.
    out : ndarray shaped like X, optional (may be X)

    Returns
    -------
    BatchNormResult
        ``Y``, and the batch's ``mean``, biased ``var`` and ``invstd = 1 / sqrt(var + eps)``, float64 (C,).

    Examples
    --------
    >>> r = batch_norm_forward(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), eps=0.0)
    >>> r.Y.ravel(), r.mean, r.var
    (array([-1.,  1.]), array([2.]), array([1.]))
    """
    given = X
    X, rows = _rows(X, "X")
    C = X.shape[-1]
    gamma = _channel_vector(gamma, C, X.dtype, "gamma")
    beta = _channel_vector(beta, C, X.dtype, "beta")
    if not check_hyperparameter(eps, "eps", 0.0) > 0:
        raise ValueError(f"eps: expected a number > 0, got {eps!r}")
    if rows.shape[0] == 0:
        raise ValueError("X: batch normalisation needs at least one sample")
    mean, var = np.zeros(C), np.zeros(C)
    _core.batch_norm_stats(rows, mean, var)
    invstd = 1.0 / np.sqrt(var + eps)
    Y = check_out(out, "out", X.shape, X.dtype, [("X", X)], may_be=X if out is given else None)
    _core.batch_norm_apply(rows, gamma, beta, mean, invstd, Y.reshape(-1, C))
    return BatchNormResult(Y, mean, var, invstd)


def batch_norm_backward(grad_Y, X, gamma, mean, invstd, *, out=None):
    """The gradients of :func:`batch_norm_forward` (through the batch's statistics).

    Parameters
    ----------
    grad_Y, X : (n, C) or (N, H, W, C) ndarray
        The output's gradient and the forward's input.
    gamma : (C,) ndarray
    mean, invstd : (C,) ndarray of float64
        From the forward.
    out : ndarray shaped like X, optional (may be grad_Y)

    Returns
    -------
    grad_X : ndarray shaped like X
    grad_gamma, grad_beta : (C,) ndarray
    """
    given = grad_Y
    X, rows = _rows(X, "X")
    dY, drows = _rows(grad_Y, "grad_Y")
    if dY.shape != X.shape or dY.dtype != X.dtype:
        raise ValueError(f"grad_Y: expected the shape and dtype of X, {X.shape} {X.dtype}, got {dY.shape} {dY.dtype}")
    C = X.shape[-1]
    gamma = _channel_vector(gamma, C, X.dtype, "gamma")
    mean = _channel_vector(mean, C, np.dtype(np.float64), "mean")
    invstd = _channel_vector(invstd, C, np.dtype(np.float64), "invstd")
    dX = check_out(out, "out", X.shape, X.dtype, [("X", X), ("grad_Y", dY)], may_be=dY if out is given else None)
    dgamma, dbeta = np.empty(C, X.dtype), np.empty(C, X.dtype)
    _core.batch_norm_backward(drows, rows, gamma, mean, invstd, np.empty(2 * C), dX.reshape(-1, C), dgamma, dbeta)
    return dX, dgamma, dbeta


def batch_norm_inference(X, gamma, beta, running_mean, running_var, *, eps: float = 1e-5, out=None) -> np.ndarray:
    """``gamma * (X - running_mean) / sqrt(running_var + eps) + beta`` (a trained layer in inference)."""
    given = X
    X, rows = _rows(X, "X")
    C = X.shape[-1]
    gamma = _channel_vector(gamma, C, X.dtype, "gamma")
    beta = _channel_vector(beta, C, X.dtype, "beta")
    mean = _channel_vector(running_mean, C, np.dtype(np.float64), "running_mean")
    var = _channel_vector(running_var, C, np.dtype(np.float64), "running_var")
    Y = check_out(out, "out", X.shape, X.dtype, [("X", X)], may_be=X if out is given else None)
    if rows.shape[0]:
        _core.batch_norm_apply(rows, gamma, beta, mean, 1.0 / np.sqrt(var + eps), Y.reshape(-1, C))
    return Y


def update_running_stats(running_mean, running_var, mean, var, n: int, momentum: float) -> None:
    """PyTorch's update, in place: ``running = (1 - momentum) * running + momentum * batch``, with the batch's
    unbiased variance (``var * n / (n - 1)``; the biased one for n = 1)."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * (var * (n / (n - 1)) if n > 1 else var)

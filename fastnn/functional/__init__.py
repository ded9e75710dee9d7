"""Validated, stateless entry points to the compiled kernels.

Every function here checks its arguments (shapes, dtypes, ``out`` buffers),
applies the one dtype policy of the library, allocates the outputs that the
caller did not supply, and calls a private kernel.  Nothing is modified when a
call fails: all checks run before any kernel writes.

Dtype policy: float32 and float64 pass through; other real numeric input
(bool, integers, float16) becomes float64; anything else is a ``TypeError``.
Mixed float32/float64 arguments are computed in float64.
"""

from __future__ import annotations

import numbers
import threading
from typing import NamedTuple

import numpy as np

from .._config import ADAM_EPS, ONEHOT_ATOL
from .._kernels import _core
from ._checks import activation_code as _activation_code
from ._checks import as_float as _as_float
from ._checks import check_adam as _check_adam
from ._checks import check_array as _check_array
from ._checks import check_hyperparameter, check_training_options, float_dtype
from ._checks import check_out as _check_out
from ._checks import describe as _describe
from .conv import (PADDINGS, conv2d_backward, conv2d_forward, conv2d_output_shape, max_pool2d_backward,
                   max_pool2d_forward)
from ._parts import dense_steps as _dense_steps
from ._parts import dense_k_scratch as _dense_k_scratch
from ._parts import vector_step as _vector_step
from ._parts import with_threads as _with_threads
from .network import NetworkPlan, network_parameter_offsets, network_plan

__all__ = [
    "ACTIVATIONS",
    "float_dtype",
    "all_finite",
    "activation",
    "activation_deriv",
    "softmax",
    "dense_forward",
    "dense_backward",
    "LossResult",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "squared_error",
    "cross_entropy",
    "sgd_update",
    "momentum_update",
    "adam_update",
    "gather_rows",
    "get_num_threads",
    "set_num_threads",
    "MAX_THREADS",
    "core_info",
    "parameter_offsets",
    "EpochPlan",
    "epoch_plan",
    "EpochResult",
    "train_epoch",
    "LOSSES",
    "OPTIMIZERS",
    "check_hyperparameter",
    "check_layers",
    "PADDINGS",
    "conv2d_output_shape",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "NetworkPlan",
    "network_plan",
    "network_parameter_offsets",
]

#: Names of the activations the kernels implement.
ACTIVATIONS = tuple(_core.ACTIVATIONS)
#: Losses of :func:`epoch_plan` (and of ``fastnn.models.MLP``).
LOSSES = tuple(_core.LOSSES)
#: Optimizers of :func:`epoch_plan` (and of ``fastnn.train.Trainer``).
OPTIMIZERS = tuple(_core.OPTIMIZERS)
_SOFTMAX = _core.ACTIVATIONS["softmax"]


# --------------------------------------------------------------------------- checks


def all_finite(x, chunk_elements: int = 1 << 18) -> bool:
    """True when every value of ``x`` is finite, checked in row chunks of about 256k values."""
    x = np.asarray(x)
    if x.ndim == 0:
        return bool(np.isfinite(x))
    rows = max(1, chunk_elements // max(1, x[:1].size))
    return all(np.isfinite(x[s:s + rows]).all() for s in range(0, x.shape[0], rows))


def _check_batch(n: int, name: str) -> None:
    if n == 0:
        raise ValueError(f"{name}: empty batch (0 rows); pass at least one sample")


# ----------------------------------------------------------------------- activations

def activation(Z, name: str = "sigmoid", *, out=None) -> np.ndarray:
    """Apply an activation element-wise (softmax: row-wise).

    Parameters
    ----------
    Z : (n, m) ndarray of float32 or float64
        Pre-activations.
    name : {'linear', 'sigmoid', 'tanh', 'relu', 'softmax'}
    out : (n, m) ndarray, optional
        Buffer for the result (may be ``Z`` itself).

    Returns
    -------
    A : (n, m) ndarray
        ``name(Z)``; sigmoid gives exactly 0.0 and 1.0 at -1000 and 1000, without warnings.

    Examples
    --------
    >>> activation(np.array([[-1000.0, 0.0, 1000.0]]), "sigmoid")
    array([[0. , 0.5, 1. ]])
    """
    code = _activation_code(name)
    Z = np.asarray(Z)
    squeeze = Z.ndim == 1
    Z2 = _as_float(Z.reshape(1, -1) if squeeze else Z, "Z", float_dtype(Z), 2)
    if squeeze and out is not None:
        out = out.reshape(1, -1)
    out = _check_out(out, "out", Z2.shape, Z2.dtype, [("Z", Z2)], may_be=Z2)
    _core.activate(Z2, code, out)
    return out[0] if squeeze else out


def activation_deriv(A, name: str = "sigmoid", *, out=None) -> np.ndarray:
    """Derivative of an activation, written from the post-activation ``A`` (as the coursework does).

    Parameters
    ----------
    A : (n, m) ndarray of float32 or float64
        Post-activations.
    name : {'linear', 'sigmoid', 'tanh', 'relu'}
    out : (n, m) ndarray, optional

    Returns
    -------
    D : (n, m) ndarray
        ``A * (1 - A)`` for sigmoid, ``1 - A**2`` for tanh, ``A > 0`` for relu, ones for linear.
    """
    code = _activation_code(name, allow_softmax=False)
    A2 = _as_float(A, "A", float_dtype(A), 2)
    out = _check_out(out, "out", A2.shape, A2.dtype, [("A", A2)], may_be=A2)
    _core.activation_deriv(A2, code, out)
    return out


def softmax(Z, *, out=None) -> np.ndarray:
    """Row-wise softmax, stable for logits of any magnitude.

    Parameters
    ----------
    Z : (n, c) ndarray of float32 or float64

    Returns
    -------
    P : (n, c) ndarray
        Rows sum to 1.
    """
    return activation(Z, "softmax", out=out)


# ----------------------------------------------------------------------------- dense

def dense_forward(X, W, b, activation: str = "sigmoid", *, out=None):
    """Fused dense layer: ``pre = X @ W + b`` and ``post = activation(pre)``.

    Parameters
    ----------
    X : (n, k) ndarray of float32 or float64
    W : (k, m) ndarray
    b : (m,) ndarray
    activation : {'linear', 'sigmoid', 'tanh', 'relu', 'softmax'}
    out : tuple of two (n, m) ndarrays, optional
        Buffers for ``pre`` and ``post``.

    Returns
    -------
    pre, post : (n, m) ndarrays

    Examples
    --------
    >>> pre, post = dense_forward(np.ones((2, 3)), np.zeros((3, 4)), np.zeros(4), "sigmoid")
    >>> post[0]
    array([0.5, 0.5, 0.5, 0.5])
    """
    code = _activation_code(activation)
    dtype = float_dtype(X, W, b)
    X = _as_float(X, "X", dtype, 2, any_order=True)
    W = _as_float(W, "W", dtype, 2, any_order=True)
    b = _as_float(b, "b", dtype, 1)
    n, k = X.shape
    if W.shape[0] != k:
        raise ValueError(f"W: expected shape ({k}, m) to match X of shape {X.shape}, got shape {W.shape}")
    m = W.shape[1]
    if b.shape != (m,):
        raise ValueError(f"b: expected shape ({m},) to match W of shape {W.shape}, got shape {b.shape}")
    pre_out, post_out = (None, None) if out is None else out
    inputs = [("X", X), ("W", W), ("b", b)]
    pre = _check_out(pre_out, "out[0] (pre)", (n, m), dtype, inputs)
    post = _check_out(post_out, "out[1] (post)", (n, m), dtype, inputs + [("out[0] (pre)", pre)])
    if n and m:
        _core.dense_forward(X, W, b, code, pre, post)
    elif n and m == 0:
        pass
    else:
        pre[...] = 0
        post[...] = 0
    return pre, post


def dense_backward(delta, post, X, W, activation: str = "sigmoid", *, need_grad_X: bool = True, out=None):
    """Fused dense backward: gradients from ``delta = dJ/d(post)``.

    Parameters
    ----------
    delta : (n, m) ndarray
        Gradient of the loss with respect to the layer's post-activation.
    post : (n, m) ndarray
        The layer's cached post-activation (the derivative is written from it).
    X : (n, k) ndarray
        The layer's input.
    W : (k, m) ndarray
    activation : {'linear', 'sigmoid', 'tanh', 'relu'}
    need_grad_X : bool
        Skip the ``grad_X`` product (and return None) when False, e.g. for the first layer.
    out : tuple (grad_W, grad_b, grad_X) of buffers, optional

    Returns
    -------
    grad_W : (k, m) ndarray
        ``X.T @ (delta * act'(post))``
    grad_b : (m,) ndarray
        Column sums of ``delta * act'(post)``, accumulated in float64.
    grad_X : (n, k) ndarray or None
        ``(delta * act'(post)) @ W.T``
    """
    code = _activation_code(activation, allow_softmax=False)
    dtype = float_dtype(delta, post, X, W)
    delta = _as_float(delta, "delta", dtype, 2)
    post = _as_float(post, "post", dtype, 2)
    X = _as_float(X, "X", dtype, 2, any_order=True)
    W = _as_float(W, "W", dtype, 2, any_order=True)
    n, k = X.shape
    if W.shape[0] != k:
        raise ValueError(f"W: expected shape ({k}, m) to match X of shape {X.shape}, got shape {W.shape}")
    m = W.shape[1]
    for name, arr in (("delta", delta), ("post", post)):
        if arr.shape != (n, m):
            raise ValueError(f"{name}: expected shape ({n}, {m}) from X {X.shape} and W {W.shape}, "
                             f"got shape {arr.shape}")
    gW_out, gb_out, gX_out = (None, None, None) if out is None else out
    inputs = [("delta", delta), ("post", post), ("X", X), ("W", W)]
    gW = _check_out(gW_out, "out[0] (grad_W)", (k, m), dtype, inputs)
    inputs.append(("out[0] (grad_W)", gW))
    gb = _check_out(gb_out, "out[1] (grad_b)", (m,), dtype, inputs)
    inputs.append(("out[1] (grad_b)", gb))
    gX = _check_out(gX_out, "out[2] (grad_X)", (n, k), dtype, inputs) if need_grad_X else np.empty((0, 0), dtype)
    if n and m and k:
        dpre = np.empty((n, m), dtype)
        _core.dense_backward(delta, post, X, W, code, dpre, gW, gb, gX, need_grad_X)
    else:  # a zero-size edge: the sums are empty
        gW[...] = 0
        gb[...] = 0
        if need_grad_X:
            gX[...] = 0
    return gW, gb, (gX if need_grad_X else None)


# ---------------------------------------------------------------------------- losses

class LossResult(NamedTuple):
    """What a fused loss returns: the summed loss, the accuracy, dJ/d(logits) and the probabilities."""

    loss: float
    accuracy: float
    delta: np.ndarray
    probs: np.ndarray


def _labels(labels, n: int, c: int, dtype):
    """Return ('onehot', Y) or ('index', idx) after checking the labels against n rows and c classes."""
    y = np.asarray(labels)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"labels: expected {n} class indices (one per row of the logits), got shape {y.shape}")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"labels: 1-D labels must be integer class indices in [0, {c}), got dtype {y.dtype}")
        if n and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"labels: class indices must lie in [0, {c}), got values from {y.min()} to {y.max()}")
        return "index", np.ascontiguousarray(y, dtype=np.int64)
    if y.ndim == 2:
        if y.shape != (n, c):
            raise ValueError(f"labels: expected one-hot rows of shape ({n}, {c}) like the logits, got shape {y.shape}")
        float_dtype(y)
        Y = np.ascontiguousarray(y, dtype=dtype)
        if n and not (
            np.all(np.abs(Y.sum(axis=1) - 1) <= ONEHOT_ATOL) and Y.min() >= -ONEHOT_ATOL
        ):
            raise ValueError(
                f"labels: 2-D labels must be one-hot (or probability) rows: non-negative and summing to 1; "
                f"got row sums from {Y.sum(axis=1).min():.4g} to {Y.sum(axis=1).max():.4g}"
            )
        return "onehot", Y
    raise ValueError(f"labels: expected one-hot rows (n, c) or class indices (n,), got shape {y.shape}")


def softmax_cross_entropy(logits, labels, *, out=None) -> LossResult:
    """Fused softmax + cross-entropy: summed loss, accuracy and ``delta = softmax(logits) - y`` in one pass.

    Stable for logits of any magnitude (log-sum-exp; no overflow, no log(0)).

    Parameters
    ----------
    logits : (n, c) ndarray of float32 or float64
    labels : (n, c) one-hot ndarray or (n,) ndarray of int class indices
    out : tuple (delta, probs) of (n, c) buffers, optional

    Returns
    -------
    LossResult
        ``loss`` (float, summed over the batch), ``accuracy`` (float in [0, 1]),
        ``delta`` (n, c) gradient of the summed loss with respect to the logits,
        ``probs`` (n, c) softmax probabilities.

    Examples
    --------
    >>> r = softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    >>> round(r.loss, 6), r.delta
    (0.693147, array([[ 0.5, -0.5]]))
    """
    Z = _as_float(logits, "logits", float_dtype(logits), 2)
    n, c = Z.shape
    _check_batch(n, "logits")
    kind, y = _labels(labels, n, c, Z.dtype)
    d_out, p_out = (None, None) if out is None else out
    inputs = [("logits", Z), ("labels", y)]
    delta = _check_out(d_out, "out[0] (delta)", (n, c), Z.dtype, inputs)
    probs = _check_out(p_out, "out[1] (probs)", (n, c), Z.dtype, inputs + [("out[0] (delta)", delta)])
    if kind == "index":
        loss, correct = _core.softmax_cross_entropy_index(Z, y, probs, delta)
    else:
        loss, correct = _core.softmax_cross_entropy_onehot(Z, y, probs, delta)
    return LossResult(float(loss), correct / n, delta, probs)


def sigmoid_binary_cross_entropy(logits, y, *, out=None) -> LossResult:
    """Fused sigmoid + binary cross-entropy for single-output networks.

    Parameters
    ----------
    logits : (n, 1) ndarray of float32 or float64
    y : (n, 1) or (n,) ndarray of targets in {0, 1}
    out : tuple (delta, probs) of (n, 1) buffers, optional

    Returns
    -------
    LossResult
        Summed BCE, accuracy of ``p >= 0.5``, ``delta = sigmoid(logits) - y``, ``probs = sigmoid(logits)``.
    """
    Z = _as_float(logits, "logits", float_dtype(logits), 2)
    n, c = Z.shape
    _check_batch(n, "logits")
    if c != 1:
        raise ValueError(f"logits: binary cross-entropy takes one output column, got shape {Z.shape}")
    Y = np.asarray(y)
    if Y.shape not in ((n,), (n, 1)):
        raise ValueError(f"y: expected shape ({n}, 1) or ({n},), got shape {Y.shape}")
    float_dtype(Y)
    Y = np.ascontiguousarray(Y.reshape(n, 1), dtype=Z.dtype)
    if not np.all((Y == 0) | (Y == 1)):
        raise ValueError("y: binary targets must be 0 or 1")
    d_out, p_out = (None, None) if out is None else out
    inputs = [("logits", Z), ("y", Y)]
    delta = _check_out(d_out, "out[0] (delta)", (n, 1), Z.dtype, inputs)
    probs = _check_out(p_out, "out[1] (probs)", (n, 1), Z.dtype, inputs + [("out[0] (delta)", delta)])
    loss, correct = _core.sigmoid_binary_cross_entropy(Z, Y, probs, delta)
    return LossResult(float(loss), correct / n, delta, probs)


def squared_error(pred, target, *, out=None):
    """Total squared error ``sum((pred - target)**2)`` and its gradient ``2 (pred - target)``.

    Parameters
    ----------
    pred, target : (n, m) ndarrays of float32 or float64
    out : (n, m) buffer for the gradient, optional

    Returns
    -------
    loss : float
    delta : (n, m) ndarray
    """
    dtype = float_dtype(pred, target)
    P = _as_float(pred, "pred", dtype, 2)
    T = _as_float(target, "target", dtype, 2)
    if P.shape != T.shape:
        raise ValueError(f"target: expected shape {P.shape} like pred, got shape {T.shape}")
    _check_batch(P.shape[0], "pred")
    delta = _check_out(out, "out", P.shape, dtype, [("pred", P), ("target", T)])
    return float(_core.squared_error(P, T, delta)), delta


def cross_entropy(y, probs):
    """Summed cross-entropy ``-sum(y * log(probs))`` and accuracy, from probabilities.

    Parameters
    ----------
    y : (n, c) one-hot ndarray
    probs : (n, c) ndarray of probabilities

    Returns
    -------
    loss : float
    accuracy : float
    """
    P = _as_float(probs, "probs", float_dtype(probs), 2)
    n, c = P.shape
    _check_batch(n, "probs")
    kind, Y = _labels(y, n, c, P.dtype)
    if kind == "index":
        Y = np.eye(c, dtype=P.dtype)[Y]
    loss, correct = _core.cross_entropy_from_probs(Y, P)
    return float(loss), correct / n


# ------------------------------------------------------------------------- optimizers

def _flat_views(arrays, name: str, dtype=None, shapes=None):
    """1-D views of writeable contiguous arrays (checked, never copied: they are updated in place)."""
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    views = []
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}[{i}]: expected a float32 or float64 ndarray, got {_describe(a)}")
        if dtype is not None and a.dtype != dtype:
            raise TypeError(f"{name}[{i}]: expected dtype {dtype} like the parameters, got {a.dtype}")
        if shapes is not None and a.shape != shapes[i]:
            raise ValueError(f"{name}[{i}]: expected shape {shapes[i]} like the parameter, got shape {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}[{i}]: must be C-contiguous to be updated in place")
        if not a.flags.writeable and name != "grads":
            raise ValueError(f"{name}[{i}]: is read-only and cannot be updated in place")
        views.append(a.reshape(-1))
    return tuple(views)


def _check_update(params, grads, *states):
    if len(params) == 0:
        raise ValueError("params: nothing to update (empty list)")
    P = _flat_views(params, "params")
    dtype = P[0].dtype
    shapes = [np.shape(p) for p in (params if not isinstance(params, np.ndarray) else [params])]
    for i, p in enumerate(P):
        if p.dtype != dtype:
            raise TypeError(f"params[{i}]: all parameters must share one dtype ({dtype}), got {p.dtype}")
    if len(grads) != len(P):
        raise ValueError(f"grads: expected {len(P)} arrays (one per parameter), got {len(grads)}")
    G = []
    for i, g in enumerate(grads):
        g = np.asarray(g)
        if g.shape != shapes[i]:
            raise ValueError(f"grads[{i}]: expected shape {shapes[i]} like the parameter, got shape {g.shape}")
        if not all_finite(g):
            raise ValueError(f"grads[{i}]: contains NaN or inf; refusing to corrupt the parameters")
        G.append(np.ascontiguousarray(g, dtype=dtype).reshape(-1))
    S = []
    for name, st in states:
        if len(st) != len(P):
            raise ValueError(f"{name}: expected {len(P)} buffers (one per parameter), got {len(st)}")
        S.append(_flat_views(st, name, dtype, shapes))
    return P, tuple(G), S


def _check_lr(lr):
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr: expected a finite learning rate >= 0, got {lr!r}")


def sgd_update(params, grads, lr: float, *, weight_decay: float = 0.0) -> None:
    """One plain SGD step for every parameter at once: ``p -= lr * (g + weight_decay * p)``, in place.

    Parameters
    ----------
    params : list of ndarrays (float32 or float64, C-contiguous, writeable)
    grads : list of ndarrays, shapes like ``params``
    lr : float
    weight_decay : float
    """
    _check_lr(lr)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, _ = _check_update(params, grads)
    none = np.empty(0, P[0].dtype)
    for p, g in zip(P, G):
        _core.update(_core.OPTIMIZERS["sgd"], p, g, none, none, float(lr), 0.0, 0.0, 0.0, float(weight_decay), 0)


def momentum_update(params, grads, buffers, lr: float, *, mu: float = 0.9, nesterov: bool = False,
                    weight_decay: float = 0.0) -> None:
    """One momentum step for every parameter, exactly as the coursework writes it, in place.

    ``M = mu * M - lr * g``; ``p += M`` (Nesterov: ``p += mu * M - lr * g``).

    Parameters
    ----------
    params, grads : lists of ndarrays
    buffers : list of ndarrays
        The momentum buffers ``M``, shaped like ``params`` (start them at zero).
    lr, mu : float
    nesterov : bool
    weight_decay : float
    """
    _check_lr(lr)
    mu = check_hyperparameter(mu, "mu", 0.0, 1.0, high_open=True)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, (M,) = _check_update(params, grads, ("buffers", buffers))
    kind = _core.OPTIMIZERS["nesterov" if nesterov else "momentum"]
    none = np.empty(0, P[0].dtype)
    for p, g, buf in zip(P, G, M):
        _core.update(kind, p, g, buf, none, float(lr), float(mu), 0.0, 0.0, float(weight_decay), 0)


def adam_update(params, grads, m, v, step: int, lr: float = 1e-3, *, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = ADAM_EPS, weight_decay: float = 0.0) -> None:
    """One Adam step for every parameter, in place.

    Parameters
    ----------
    params, grads : lists of ndarrays
    m, v : lists of ndarrays
        First and second moment buffers, shaped like ``params`` (start at zero).
    step : int
        The number of this update, starting at 1 (bias correction).
    lr, beta1, beta2, eps, weight_decay : float
    """
    _check_lr(lr)
    _check_adam(beta1, beta2, eps)
    if int(step) < 1:
        raise ValueError(f"step: Adam counts updates from 1, got {step!r}")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, (M1, M2) = _check_update(params, grads, ("m", m), ("v", v))
    for p, g, a, b in zip(P, G, M1, M2):
        _core.update(_core.OPTIMIZERS["adam"], p, g, a, b, float(lr), float(beta1), float(beta2), float(eps),
                     float(weight_decay), int(step))


# ---------------------------------------------------------------------------- gather

def gather_rows(src, index, *, out=None) -> np.ndarray:
    """``src[index]`` along the first axis into a new (or the given) C-contiguous buffer.

    A compiled kernel copies whole rows with the GIL released; any dtype works.

    Parameters
    ----------
    src : (N, ...) ndarray
    index : (n,) ndarray of int, each in [0, N)
    out : (n, ...) ndarray, optional

    Returns
    -------
    (n, ...) ndarray
    """
    src = np.ascontiguousarray(src)
    if src.ndim == 0:
        raise ValueError(f"src: expected an array with at least one axis, got {_describe(src)}")
    idx = np.asarray(index)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"index: expected a 1-D array of integer row numbers, got {_describe(idx)}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    N = src.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= N):
        raise ValueError(f"index: row numbers must lie in [0, {N}), got values from {idx.min()} to {idx.max()}")
    out = _check_out(out, "out", (idx.shape[0],) + src.shape[1:], src.dtype, [("src", src)])
    if src.size and idx.size:
        _core.gather_rows(src.reshape(N, -1).view(np.uint8), idx, out.reshape(idx.shape[0], -1).view(np.uint8))
    return out


# --------------------------------------------------------------------------- threads

#: The largest thread team (threads, the caller included).
MAX_THREADS = _core.MAX_THREADS


def get_num_threads() -> int:
    """The size of fastnn's thread team in use: the threads a kernel's parts may run on, the caller included.

    At import it is ``FASTNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process may use
    (its CPU affinity and its cgroup's CPU quota, as a container sets them).  ``set_num_threads``,
    ``Trainer(threads=)`` and threadpoolctl's ``threadpool_limits`` change it.
    """
    return _core.get_num_threads()


def set_num_threads(n: int) -> int:
    """Set the size of fastnn's thread team for this process; return the previous setting.

    Work is cut into parts by the shapes alone, never by the thread count, so every setting gives the same
    numbers: more threads only take the parts side by side.  A step with fewer parts than threads keeps
    only as many busy (a plan's ``work_parts`` lists them).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"threads: expected an integer from 1 to {_core.MAX_THREADS}, got {n!r}")
    return _core.set_num_threads(int(n))


def core_info() -> dict:
    """Which copy of the compiled core runs, and on what: a dict.

    ``core`` is the x86-64 level it was compiled for ('x86-64-v2', 'x86-64-v3', 'x86-64-v4'; or the level
    of a FASTNN_MARCH build), ``module`` its module, ``cpu`` the running CPU's level, ``threads`` the
    team's size, ``cpus`` the CPUs the process may use, ``workers`` the team's threads started so far, and
    ``threadpoolctl`` whether the team is registered with threadpoolctl.

    Examples
    --------
    >>> sorted(core_info())
    ['core', 'cpu', 'cpus', 'module', 'threadpoolctl', 'threads', 'workers']
    """
    from .. import _kernels

    info = _core.team_info()
    return {"core": _kernels.CORE_LEVEL, "module": _kernels.CORE_MODULE, "cpu": _kernels.CPU_LEVEL,
            "threads": info["size"], "cpus": info["cpus"], "workers": info["workers"],
            "threadpoolctl": _kernels.THREADPOOLCTL}


# ------------------------------------------------------------------------------ epoch

#: A plan whose call had to send threads away starts its next calls with the threads that were left; every
#: RETRY_FULL_TEAM-th call starts with all of them again (the machine may have become quiet).
RETRY_FULL_TEAM = 4

def parameter_offsets(sizes) -> tuple[list[tuple[int, int]], int]:
    """Where each dense layer's weights and bias live in one flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output.

    Returns
    -------
    offsets : list of (w_off, b_off)
        Layer l's (sizes[l], sizes[l+1]) weight matrix starts at ``w_off`` (row-major), its bias at ``b_off``.
    total : int
        The number of parameters.

    Examples
    --------
    >>> parameter_offsets([3, 2, 1])
    ([(0, 6), (8, 10)], 11)
    """
    offsets, off = [], 0
    for k, m in zip(sizes[:-1], sizes[1:]):
        offsets.append((off, off + k * m))
        off += k * m + m
    return offsets, off


def check_layers(sizes, activations) -> tuple[list[int], list[str]]:
    """A stack of dense layers' description, checked: (sizes as ints, activations as a list).

    ``sizes`` are at least two positive integer widths, input to output; ``activations`` one name per layer
    from :data:`ACTIVATIONS`, softmax only last.  Raises ValueError naming the argument otherwise.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
        raise ValueError(f"sizes: expected at least two positive integer layer widths, got {sizes}")
    activations = list(activations)
    if len(activations) != len(sizes) - 1:
        raise ValueError(f"activations: expected {len(sizes) - 1} (one per layer), got {len(activations)}")
    for i, a in enumerate(activations):
        if a not in _core.ACTIVATIONS or (a == "softmax" and i != len(activations) - 1):
            raise ValueError(f"activations[{i}]: expected one of {ACTIVATIONS} (softmax only last), got {a!r}")
    return [int(s) for s in sizes], activations


class EpochPlan:
    """Everything the compiled epoch needs besides the data, the parameters and the learning rate.

    Built by :func:`epoch_plan`; holds the layer table (widths, parameter and workspace offsets,
    activation codes), one batch's workspace and the gradient buffer.  Its arrays are the kernel's
    scratch: reuse one plan for many epochs, and one plan per training run at a time.
    """

    def __init__(self, sizes, activations, loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay):
        self.sizes = tuple(sizes)
        self.activations = tuple(activations)
        self.loss = loss
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.dtype = dtype
        self.mu = betas[0] if optimizer == "adam" else momentum
        self.beta2 = betas[1] if optimizer == "adam" else 0.0
        self.eps = eps if optimizer == "adam" else 0.0
        self.weight_decay = weight_decay
        self.loss_code = _core.LOSSES[loss]
        self.optimizer_code = _core.OPTIMIZERS[optimizer]
        params, self.n_params = parameter_offsets(self.sizes)
        widths = self.sizes[1:]
        bs, d, c = batch_size, self.sizes[0], self.sizes[-1]
        #: The steps of a full batch that the thread team shares, each with its parts (see ``work_parts``).
        self.steps = _dense_steps(self.sizes, bs)
        if optimizer != "sgd":
            self.steps.append(_vector_step("optimizer", self.n_params))
        # Workspace blocks, each rounded up to 16 values (64 bytes) so that every block starts aligned; the
        # scratch holds the partial sums of the products cut along their inner dimension.
        blocks = {"xb0": bs * d, "xb1": bs * d, "tb0": bs * c, "tb1": bs * c, "da": bs * max(widths),
                  "db": bs * max(widths), "scratch": _dense_k_scratch(self.sizes, bs)}
        def aligned(n):
            return -(-n // 16) * 16

        off, offsets = 0, {}
        for name in _core.WORK_OFFSETS:
            offsets[name] = off
            off += aligned(blocks[name])
        self.layers = np.zeros((len(widths), len(_core.LAYER_COLUMNS)), dtype=np.int64)
        for l, ((w_off, b_off), m) in enumerate(zip(params, widths)):
            self.layers[l] = (self.sizes[l], m, w_off, b_off, off, off + aligned(bs * m),
                              _core.ACTIVATIONS[self.activations[l]])
            off += 2 * aligned(bs * m)
        self.offsets = np.array([offsets[name] for name in _core.WORK_OFFSETS], dtype=np.int64)
        self.work = np.zeros(off, dtype=dtype)
        #: Lengths of the two optimizer buffers: momentum or Adam's m, and Adam's v (0: unused).
        self.state_sizes = (0 if optimizer == "sgd" else self.n_params, self.n_params if optimizer == "adam" else 0)
        self.grad = np.zeros(self.state_sizes[0], dtype=dtype)
        #: Seconds, written by the kernel: [0] the best period per full batch seen with more than one thread
        #: (0: none yet); [1] how long the first thread waited for parts taken by the others in the last
        #: call, [2] that call's length (see ``train_epoch``).
        self.timing = np.zeros(3)
        self._threads_memory = (None, 0)  # see train_epoch

    def new_state(self):
        """Zeroed optimizer buffers (momentum, or Adam's m and v) for a training run: a pair of arrays."""
        return tuple(np.zeros(n, self.dtype) for n in self.state_sizes)

    @property
    def max_parts(self) -> int:
        """The most parts any step of a batch is cut into: more threads than this would only wait."""
        return max([s["parts"] for s in self.steps], default=1)

    def work_parts(self, threads: int | None = None) -> list[dict]:
        """How a full batch's work is shared by ``threads`` threads (default: the team's size).

        One dict per step of a batch, in the order they run: ``step`` (e.g. 'layer 0 forward', 'layer 0
        bias and activation', 'loss', 'layer 0 bias gradient', 'optimizer'), a product's ``shape`` (m, k, n)
        or the step's ``values`` (and ``rows``), ``cut`` ('rows', 'cols' or 'k' for a product cut along C's
        rows, its columns or the inner dimension; 'rows', 'cols' or 'values' for the other steps; 'none'
        when it runs whole, on the first thread), ``parts`` and the ``threads`` it keeps busy.  The parts
        depend on the shapes only: the same for every thread count.

        Examples
        --------
        >>> plan = epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=1024)
        >>> {s["step"]: s["parts"] for s in plan.work_parts(8)}["layer 0 forward"]
        16
        """
        return _with_threads(self.steps, get_num_threads() if threads is None else threads)

    def __repr__(self):
        return (f"EpochPlan({'-'.join(map(str, self.sizes))}, {'/'.join(self.activations)}, loss={self.loss!r}, "
                f"optimizer={self.optimizer!r}, batch_size={self.batch_size}, {self.dtype}, "
                f"workspace {self.work.nbytes + self.grad.nbytes:,} bytes)")


def epoch_plan(sizes, activations, loss, *, optimizer="sgd", batch_size=32, dtype="float64", momentum=0.9,
               betas=(0.9, 0.999), eps=ADAM_EPS, weight_decay=0.0) -> EpochPlan:
    """Plan the compiled training epoch of a dense network: check the description, lay out the workspace.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output (the parameters are laid out by :func:`parameter_offsets`).
    activations : sequence of str
        One per layer (softmax only last).
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}
    optimizer : {'sgd', 'momentum', 'nesterov', 'adam'}
    batch_size : int
    dtype : {'float32', 'float64'}
    momentum : float
        ``mu`` of momentum and Nesterov, in [0, 1).
    betas : (float, float)
        Adam's decay rates, each in [0, 1).
    eps : float
        Adam's epsilon, > 0.
    weight_decay : float
        >= 0.

    Returns
    -------
    EpochPlan

    Examples
    --------
    >>> plan = epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=32, dtype="float32")
    >>> plan.n_params, plan.work.dtype
    (67940, dtype('float32'))
    """
    sizes, activations = check_layers(sizes, activations)
    loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay = check_training_options(
        loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
    return EpochPlan(sizes, activations, loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)


class EpochResult(NamedTuple):
    """What :func:`train_epoch` returns: the summed loss, the correct predictions, the update count, the
    first batch that fewer threads ran because other work slowed the team down (-1: none), the threads
    the call started with, and the batches it did."""

    loss: float
    correct: int
    step: int
    reduced_from: int = -1
    threads: int = 1
    batches: int = 0


def train_epoch(plan: EpochPlan | NetworkPlan, X, T, order, theta, state, *, lr: float, step: int = 0,
                threads: int | None = None, start_loss: float = 0.0) -> EpochResult:
    """Train one epoch in one compiled call: every batch's gather, forward, fused loss, backward and update.

    Parameters
    ----------
    plan : EpochPlan or NetworkPlan
        From :func:`epoch_plan` (a dense network) or :func:`network_plan` (a convolutional one).
    X : (N, sizes[0]) C-contiguous ndarray of the plan's dtype
        Finite inputs (not checked here, for speed: ``Trainer.fit`` checks them once).  For a NetworkPlan,
        NHWC images (N, H, W, C) or their rows (N, H*W*C).
    T : (N, sizes[-1]) C-contiguous ndarray of the plan's dtype
        Targets: one-hot rows (cross-entropy), 0/1 (binary cross-entropy) or values (squared error).
    order : (n,) C-contiguous ndarray of int64
        The rows of X to train on, in order; batches are ``order[0:bs]``, ``order[bs:2bs]``, ... (the last
        may be short).  An epoch can be trained in several calls over consecutive slices of its order
        that start at multiples of the batch size (for progress reports): see ``start_loss``.
    theta : (n_params,) ndarray of the plan's dtype
        The flat parameters (see :func:`parameter_offsets`, :func:`network_parameter_offsets`), updated in
        place.
    state : pair of ndarrays
        The optimizer buffers from ``plan.new_state()``, updated in place.
    lr : float
        Learning rate (> 0) for the gradient of the loss summed over a batch.
    step : int
        Updates done before this epoch (Adam's bias correction counts from it).
    start_loss : float
        Added to the loss sum before the first batch: the previous calls' ``loss`` when an epoch is trained
        in several calls, so that its loss sums in the same order, to the same bits, as in one call.
    threads : int, optional
        Threads for this epoch (default :func:`get_num_threads`; no more than the plan's ``max_parts``, nor
        than the CPUs the process may use, are started).  When other work on the machine keeps slowing the
        team down (in 3 of 4 batches the first thread waits more than half the batch for parts taken by
        others, or the batch takes over twice the plan's best), half the threads leave for the rest of the
        call, down to one, and the plan's next calls start with those
        that were left (all of them again every RETRY_FULL_TEAM-th call): the numbers are the same either
        way.

    Returns
    -------
    EpochResult
        ``loss`` summed over the epoch, ``correct`` predictions, ``step`` after the epoch,
        ``reduced_from``, ``threads``, ``batches``.  When a batch's loss is not finite the epoch stops
        before that batch's update and ``loss`` is that value.  Called from the main thread, Ctrl-C stops
        the epoch after the batch under way (never inside one) and Python raises KeyboardInterrupt as the
        call returns; the parameters then hold the finished batches' updates.  When your own SIGINT handler
        does not raise, the call returns after that batch all the same: ``batches`` then counts fewer than
        the order's batches, and a call over the rest of the order (``start_loss`` the loss so far) finishes
        the epoch with the same numbers (``Trainer`` does that).
    """
    if isinstance(plan, EpochPlan):
        d, c, shape = plan.sizes[0], plan.sizes[-1], f"a 2-D array of shape (N, {plan.sizes[0]})"
    elif isinstance(plan, NetworkPlan):
        d, c = plan.input_size, plan.output_size
        shape = f"C-contiguous images of shape (N, {', '.join(map(str, plan.input_shape))}) or rows (N, {d})"
        if isinstance(X, np.ndarray) and X.ndim == 4 and X.shape[1:] == plan.input_shape and X.flags.c_contiguous:
            X = X.reshape(X.shape[0], d)
    else:
        raise TypeError(f"plan: expected an EpochPlan from fastnn.functional.epoch_plan or a NetworkPlan from "
                        f"network_plan, got {type(plan).__name__}")
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"X: expected {shape}, got "
                         f"{_describe(X) if isinstance(X, np.ndarray) else type(X).__name__}")
    N = X.shape[0]
    _check_array(X, "X", (N, d), plan.dtype)
    _check_array(T, "T", (N, c), plan.dtype)
    if not isinstance(order, np.ndarray) or order.ndim != 1:
        raise ValueError(f"order: expected a 1-D array of row numbers, got "
                         f"{_describe(order) if isinstance(order, np.ndarray) else type(order).__name__}")
    _check_array(order, "order", order.shape, np.int64)
    if order.size and (order.min() < 0 or order.max() >= N):
        raise ValueError(f"order: row numbers must lie in [0, {N}), got values from {order.min()} to {order.max()}")
    _check_array(theta, "theta", (plan.n_params,), plan.dtype, writeable=True)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError("state: expected the pair of optimizer buffers from plan.new_state()")
    for i, size in enumerate(plan.state_sizes):
        _check_array(state[i], f"state[{i}]", (size,), plan.dtype, writeable=True)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step: expected the number of updates done so far (>= 0), got {step!r}")
    if threads is None:
        threads = _core.get_num_threads()
    elif (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
          or not 1 <= threads <= _core.MAX_THREADS):
        raise ValueError(f"threads: expected an integer from 1 to {_core.MAX_THREADS}, got {threads!r}")
    if not np.isfinite(start_loss):
        raise ValueError(f"start_loss: expected the finite loss sum of the epoch's earlier calls, got {start_loss!r}")
    # No more threads than the plan's largest step has parts, nor than the CPUs the process may use: in the
    # epoch every step waits for the parts of the one before, and a thread beyond the CPUs only takes the CPU
    # from one that holds a part (measured: 8 threads on 2 CPUs ran the batch-1024 epoch 20% slower than 2).
    roles = max(1, min(int(threads), plan.max_parts, _core.get_cpus()))
    # A call that had to send threads away (a busy machine, or more threads than CPUs) makes the plan's next
    # calls start with the threads that were left; every RETRY_FULL_TEAM-th call tries the whole team again.
    hint, since = plan._threads_memory
    if hint is not None and hint < roles and since < RETRY_FULL_TEAM:
        start, plan._threads_memory = hint, (hint, since + 1)
    else:
        start, plan._threads_memory = roles, (None, 0)
    run = _core.network_epoch if isinstance(plan, NetworkPlan) else _core.mlp_epoch
    loss, correct, step, reduced, batches, left = run(plan, X, T, order, theta, state[0], state[1], float(lr),
                                                      int(step), start, float(start_loss),
                                                      threading.current_thread() is threading.main_thread())
    if reduced >= 0 or start < roles:
        plan._threads_memory = (int(left), plan._threads_memory[1])
    return EpochResult(float(loss), int(correct), int(step), int(reduced), start, int(batches))

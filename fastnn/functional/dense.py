"""Dense layers, activations and row gathers: validated entry points to the compiled kernels.

:func:`activation` (and :func:`activation_deriv`, :func:`softmax`) apply an activation, :func:`dense_forward`
and :func:`dense_backward` are a fused dense layer (``X @ W + b`` and its activation; the gradients from
``dJ/d(post)``), :func:`gather_rows` copies the rows of a batch.
"""

from __future__ import annotations

import numpy as np

from .._kernels import _core
from ._checks import activation_code, as_float, check_out, describe, float_dtype, is_user_code

__all__ = ["ACTIVATIONS", "activation", "activation_deriv", "softmax", "dense_forward", "dense_backward",
           "gather_rows"]

#: Names of the activations the kernels implement (more can be registered with ``fastnn.register_activation``).
ACTIVATIONS = tuple(_core.ACTIVATIONS)


def need_pre(func: str, name: str, pre):
    """The error when a registered activation's derivative is wanted without its pre-activation."""
    if pre is None:
        raise ValueError(f"{func}: {name!r} is a registered activation, whose derivative is a function of the "
                         "pre-activation: pass pre= (the layer's pre-activation, which the forward returns)")


# ----------------------------------------------------------------------- activations

def activation(Z, name: str = "sigmoid", *, out=None) -> np.ndarray:
    """Apply an activation element-wise (softmax: row-wise).

    Parameters
    ----------
    Z : (n, m) ndarray of float32 or float64
        Pre-activations.
    name : {'linear', 'sigmoid', 'tanh', 'relu', 'softmax'} or a registered name
        (``fastnn.register_activation``).
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
    code = activation_code(name)
    Z = np.asarray(Z)
    squeeze = Z.ndim == 1
    Z2 = as_float(Z.reshape(1, -1) if squeeze else Z, "Z", float_dtype(Z), 2)
    if squeeze and out is not None:
        out = out.reshape(1, -1)
    out = check_out(out, "out", Z2.shape, Z2.dtype, [("Z", Z2)], may_be=Z2)
    _core.activate(Z2, code, out)
    return out[0] if squeeze else out


def activation_deriv(A, name: str = "sigmoid", *, pre=None, out=None) -> np.ndarray:
    """Derivative of an activation, written from the post-activation ``A`` (as the coursework does); a
    registered activation's (``fastnn.register_activation``) from the pre-activation ``pre``.

    Parameters
    ----------
    A : (n, m) ndarray of float32 or float64, or None
        Post-activations (None: computed from ``pre``).
    name : {'linear', 'sigmoid', 'tanh', 'relu'} or a registered name
    pre : (n, m) ndarray, optional
        Pre-activations: required for a registered activation, whose derivative is a function of them
        (``A`` is then not read).
    out : (n, m) ndarray, optional

    Returns
    -------
    D : (n, m) ndarray
        ``A * (1 - A)`` for sigmoid, ``1 - A**2`` for tanh, ``A > 0`` for relu, ones for linear; a registered
        activation's ``derivative(pre)``.
    """
    code = activation_code(name, allow_softmax=False)
    if is_user_code(code):
        need_pre("activation_deriv", name, pre)
        A2 = as_float(pre, "pre", float_dtype(pre), 2)
        label = "pre"
    else:
        if A is None:
            if pre is None:
                raise ValueError("activation_deriv: expected the post-activation A (or pre=), got None")
            A = activation(pre, name)
        A2 = as_float(A, "A", float_dtype(A), 2)
        label = "A"
    out = check_out(out, "out", A2.shape, A2.dtype, [(label, A2)], may_be=A2)
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
    activation : {'linear', 'sigmoid', 'tanh', 'relu', 'softmax'} or a registered name
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
    code = activation_code(activation)
    dtype = float_dtype(X, W, b)
    X = as_float(X, "X", dtype, 2, any_order=True)
    W = as_float(W, "W", dtype, 2, any_order=True)
    b = as_float(b, "b", dtype, 1)
    n, k = X.shape
    if W.shape[0] != k:
        raise ValueError(f"W: expected shape ({k}, m) to match X of shape {X.shape}, got shape {W.shape}")
    m = W.shape[1]
    if b.shape != (m,):
        raise ValueError(f"b: expected shape ({m},) to match W of shape {W.shape}, got shape {b.shape}")
    pre_out, post_out = (None, None) if out is None else out
    inputs = [("X", X), ("W", W), ("b", b)]
    pre = check_out(pre_out, "out[0] (pre)", (n, m), dtype, inputs)
    post = check_out(post_out, "out[1] (post)", (n, m), dtype, inputs + [("out[0] (pre)", pre)])
    if n and m:
        _core.dense_forward(X, W, b, code, pre, post)
    elif n and m == 0:
        pass
    else:
        pre[...] = 0
        post[...] = 0
    return pre, post


def dense_backward(delta, post, X, W, activation: str = "sigmoid", *, pre=None, need_grad_X: bool = True, out=None):
    """Fused dense backward: gradients from ``delta = dJ/d(post)``.

    Parameters
    ----------
    delta : (n, m) ndarray
        Gradient of the loss with respect to the layer's post-activation.
    post : (n, m) ndarray
        The layer's cached post-activation (the derivative is written from it).  Not read (and may be None)
        for a registered activation.
    X : (n, k) ndarray
        The layer's input.
    W : (k, m) ndarray
    activation : {'linear', 'sigmoid', 'tanh', 'relu'} or a registered name
    pre : (n, m) ndarray, optional
        The layer's pre-activation: required for a registered activation (``fastnn.register_activation``),
        whose derivative is a function of it; ignored otherwise.
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
    code = activation_code(activation, allow_softmax=False)
    if is_user_code(code):  # the derivative reads the pre-activation, in post's place
        need_pre("dense_backward", activation, pre)
        post, label = pre, "pre"
    else:
        label = "post"
    dtype = float_dtype(delta, post, X, W)
    delta = as_float(delta, "delta", dtype, 2)
    post = as_float(post, label, dtype, 2)
    X = as_float(X, "X", dtype, 2, any_order=True)
    W = as_float(W, "W", dtype, 2, any_order=True)
    n, k = X.shape
    if W.shape[0] != k:
        raise ValueError(f"W: expected shape ({k}, m) to match X of shape {X.shape}, got shape {W.shape}")
    m = W.shape[1]
    for name, arr in (("delta", delta), (label, post)):
        if arr.shape != (n, m):
            raise ValueError(f"{name}: expected shape ({n}, {m}) from X {X.shape} and W {W.shape}, "
                             f"got shape {arr.shape}")
    gW_out, gb_out, gX_out = (None, None, None) if out is None else out
    inputs = [("delta", delta), (label, post), ("X", X), ("W", W)]
    gW = check_out(gW_out, "out[0] (grad_W)", (k, m), dtype, inputs)
    inputs.append(("out[0] (grad_W)", gW))
    gb = check_out(gb_out, "out[1] (grad_b)", (m,), dtype, inputs)
    inputs.append(("out[1] (grad_b)", gb))
    gX = check_out(gX_out, "out[2] (grad_X)", (n, k), dtype, inputs) if need_grad_X else np.empty((0, 0), dtype)
    if n and m and k:
        dpre = np.empty((n, m), dtype)
        _core.dense_backward(delta, post, X, W, code, dpre, gW, gb, gX, need_grad_X)
    else:  # a zero-size edge: the sums are empty
        gW[...] = 0
        gb[...] = 0
        if need_grad_X:
            gX[...] = 0
    return gW, gb, (gX if need_grad_X else None)

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
        raise ValueError(f"src: expected an array with at least one axis, got {describe(src)}")
    idx = np.asarray(index)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"index: expected a 1-D array of integer row numbers, got {describe(idx)}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    N = src.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= N):
        raise ValueError(f"index: row numbers must lie in [0, {N}), got values from {idx.min()} to {idx.max()}")
    out = check_out(out, "out", (idx.shape[0],) + src.shape[1:], src.dtype, [("src", src)])
    if src.size and idx.size:
        _core.gather_rows(src.reshape(N, -1).view(np.uint8), idx, out.reshape(idx.shape[0], -1).view(np.uint8))
    return out

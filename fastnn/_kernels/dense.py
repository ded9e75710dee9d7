"""Dense layer forward and backward with bias and activation fused (Numba + BLAS).

The matrix products go through ``blas.gemm`` (a private single-threaded
OpenBLAS, split over the cores); everything else (bias, activation, its derivative and
the bias-gradient reduction) is done in one pass over the small output.
"""

import numpy as np
from numba import njit

from .._config import CACHE, ERROR_MODEL, FASTMATH
from .activations import LINEAR, SOFTMAX, bias_activate, deriv_scalar, softmax_rows
from .blas import gemm


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def dense_forward(X, W, b, act, pre_out, post_out):
    # IN X (n, k), W (k, m), b (m,), act code; OUT pre_out (n, m), post_out (n, m)
    """pre_out = X @ W + b and post_out = act(pre_out); X and W each C- or F-contiguous."""
    gemm(X, W, pre_out, 1.0, 0.0)
    add_bias_activate(pre_out, b, act, post_out)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def add_bias_activate(pre, b, act, post_out):
    # IN/OUT pre (n, m) the product X @ W, b added in place; IN b (m,), act code; OUT post_out (n, m)
    """The part of ``dense_forward`` after its product: pre += b, post_out = act(pre)."""
    if act == SOFTMAX:
        bias_activate(pre, b, LINEAR, post_out)
        softmax_rows(pre, post_out)
    else:
        bias_activate(pre, b, act, post_out)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def delta_pre_activation(delta, A, act, dpre_out):
    # IN delta (n, m) = dJ/d(post), A (n, m) post-activation, act code; OUT dpre_out (n, m)
    """dpre_out = delta * act'(A): the gradient with respect to the pre-activation."""
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            dpre_out[i, j] = delta[i, j] * deriv_scalar(A[i, j], act)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, inline="always")
def _column_sums64(D):  # IN D (n, m)
    """The column sums of D as a float64 (m,) scratch array, whatever D's dtype."""
    n, m = D.shape
    acc = np.zeros(m, dtype=np.float64)
    for i in range(n):
        for j in range(m):
            acc[j] += D[i, j]
    return acc


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def column_sums(D, out):  # IN D (n, m); OUT out (m,)
    """out[j] = sum_i D[i, j], accumulated in float64 whatever D's dtype."""
    acc = _column_sums64(D)
    for j in range(acc.shape[0]):
        out[j] = acc[j]


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def dense_backward_from_pre(dpre, X, W, gW_out, gb_out, gX_out, need_gx):
    # IN dpre (n, m), X (n, k), W (k, m), need_gx bool; OUT gW_out (k, m), gb_out (m,), gX_out (n, k)
    """Weight, bias and (if need_gx) input gradients from the pre-activation gradient."""
    gemm(X.T, dpre, gW_out, 1.0, 0.0)
    column_sums(dpre, gb_out)
    if need_gx:
        gemm(dpre, W.T, gX_out, 1.0, 0.0)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def dense_backward(delta, A, X, W, act, dpre_out, gW_out, gb_out, gX_out, need_gx):
    # IN delta (n, m), A (n, m) post-activation, X (n, k), W (k, m), act, need_gx;
    # OUT dpre_out (n, m), gW_out (k, m), gb_out (m,), gX_out (n, k)
    """grad_W = X.T @ (delta * act'(A)), grad_b, grad_X = (delta * act'(A)) @ W.T, fused."""
    delta_pre_activation(delta, A, act, dpre_out)
    dense_backward_from_pre(dpre_out, X, W, gW_out, gb_out, gX_out, need_gx)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def dense_backward_sgd(dpre, X, W, b, lr, weight_decay, gX_out, need_gx):
    # IN dpre (n, m), X (n, k), lr, weight_decay, need_gx; IN/OUT W (k, m), b (m,); OUT gX_out (n, k)
    """Backward and plain SGD step fused: gX = dpre @ W.T (old W), then W -= lr (X.T @ dpre + wd W) in one gemm.

    The weight gradient is never stored: the product accumulates straight into W (alpha = -lr,
    beta = 1 - lr wd), and the bias takes its column sums (in float64) the same way.
    """
    if need_gx:
        gemm(dpre, W.T, gX_out, 1.0, 0.0)
    gemm(X.T, dpre, W, -lr, 1.0 - lr * weight_decay)
    acc = _column_sums64(dpre)
    for j in range(acc.shape[0]):
        b[j] -= lr * (acc[j] + weight_decay * b[j])

"""Element-wise activations and their derivatives (Numba).

Activations are named by small integer codes so that kernels can take them as
plain arguments.  The derivative of each activation is written in terms of the
*post*-activation value, as the coursework's ``*_deriv(post_act)`` functions are.
"""

import math

import numpy as np
from numba import njit

from .._config import CACHE, FASTMATH

LINEAR = 0
SIGMOID = 1
TANH = 2
RELU = 3
SOFTMAX = 4

#: name -> code, for the layers above.
CODES = {"linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "softmax": SOFTMAX}
NAMES = {v: k for k, v in CODES.items()}


@njit(cache=CACHE, fastmath=FASTMATH, inline="always")
def sigmoid_scalar(v):
    """1 / (1 + exp(-v)), the coursework's formula: exp overflows to inf for v < -709 and 1 / inf is
    exactly 0.0, so -1000 gives 0.0 and 1000 gives 1.0, with no branch and no warning."""
    return 1.0 / (1.0 + math.exp(-v))


@njit(cache=CACHE, fastmath=FASTMATH, inline="always")
def act_scalar(v, act):
    """act(v) for an element-wise activation code (softmax is handled row-wise)."""
    if act == SIGMOID:
        return sigmoid_scalar(v)
    if act == TANH:
        return math.tanh(v)
    if act == RELU:
        return v if v > 0 else v * 0
    return v


@njit(cache=CACHE, fastmath=FASTMATH, inline="always")
def deriv_scalar(a, act):
    """act'(pre) from the post-activation value a."""
    if act == SIGMOID:
        return a * (1 - a)
    if act == TANH:
        return 1 - a * a
    if act == RELU:
        return a * 0 + 1 if a > 0 else a * 0
    return a * 0 + 1


@njit(cache=CACHE, fastmath=FASTMATH)
def softmax_rows(Z, P_out):  # IN Z (n, c); OUT P_out (n, c), may alias Z
    """Row-wise softmax with max subtraction; the row sum accumulates in float64."""
    n, c = Z.shape
    for i in range(n):
        m = -np.inf
        for j in range(c):
            if Z[i, j] > m:
                m = Z[i, j]
        s = 0.0
        for j in range(c):
            e = math.exp(np.float64(Z[i, j]) - m)
            P_out[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(c):
            P_out[i, j] = P_out[i, j] * inv


@njit(cache=CACHE, fastmath=FASTMATH)
def activate(Z, act, A_out):  # IN Z (n, m), act code; OUT A_out (n, m), may alias Z
    """A_out = act(Z) for any activation code, softmax row-wise."""
    if act == SOFTMAX:
        softmax_rows(Z, A_out)
        return
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            A_out[i, j] = act_scalar(Z[i, j], act)


@njit(cache=CACHE, fastmath=FASTMATH)
def activation_deriv(A, act, D_out):  # IN A (n, m) post-activation, act code; OUT D_out (n, m)
    """D_out = act'(pre) written from the post-activation A (sigmoid: A(1-A), tanh: 1-A^2, relu: A>0)."""
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            D_out[i, j] = deriv_scalar(A[i, j], act)

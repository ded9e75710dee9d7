"""Element-wise activations and their derivatives (Numba).

Activations are named by small integer codes so that kernels can take them as
plain arguments.  The derivative of each activation is written in terms of the
*post*-activation value, as the coursework's ``*_deriv(post_act)`` functions are.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .._config import CACHE, ERROR_MODEL, FASTMATH, FASTMATH_EXACT_ORDER

LINEAR = 0
SIGMOID = 1
TANH = 2
RELU = 3
SOFTMAX = 4

#: name -> code, for the layers above.
CODES = {"linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "softmax": SOFTMAX}
NAMES = {v: k for k, v in CODES.items()}


# ------------------------------------------------------------------ exp

@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bit pattern is the integer ``bits`` (truncated to 32 bits)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(word, ir.FloatType())
    return types.float32(bits), codegen


_LOG2E = np.float32(1.44269504)
_LN2_HI = np.float32(0.693359375)     # ln 2 = _LN2_HI - _LN2_LO, the first part exact in few bits
_LN2_LO = np.float32(2.12194440e-4)
_EXP_HI = np.float32(88.72283)        # exp(x) overflows float32 above this
_EXP_LO = np.float32(-87.33654)       # exp(x) is below the smallest normal float32 under this: flushed to 0
_EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                           4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


@njit(cache=CACHE, fastmath=FASTMATH_EXACT_ORDER, error_model=ERROR_MODEL)
def exp32(x):
    """exp of a float32, branch-free so that loops over it vectorise (libm's ``expf`` does not).

    Range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln 2 in two parts), a degree-7 polynomial
    for exp(r), and 2^n built from its bits.  Relative error below 2e-7 (about 2 ulp); inf above
    88.72, 0 below -87.34 (where the true value is under the smallest normal float32), NaN stays NaN.
    """
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + np.float32(0.5))
    r = (xc - n * _LN2_HI) + n * _LN2_LO
    c0, c1, c2, c3, c4, c5 = _EXP_POLY
    p = (((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5) * (r * r) + r + np.float32(1)
    # 2^n as 2^h 2^(n-h): n runs from -126 to 128, and 2^128 alone would already be inf.
    k = np.int32(n)
    h = k >> 1
    y = p * _float32_from_bits((h + 127) << 23) * _float32_from_bits((k - h + 127) << 23)
    if x > _EXP_HI:
        y = np.float32(np.inf)
    if x < _EXP_LO:
        y = np.float32(0)
    if x != x:
        y = x
    return y


def sigmoid_scalar(v):
    """1 / (1 + exp(-v)), the coursework's formula: exp overflows to inf for v < -709 (float32: -88.7)
    and 1 / inf is exactly 0.0, so -1000 gives 0.0 and 1000 gives 1.0, with no branch and no warning.
    The result has v's precision: float32 stays float32 and uses ``exp32``, float64 uses libm's ``exp``
    (NumPy's values)."""
    return 1.0 / (1.0 + math.exp(-v))


@overload(sigmoid_scalar, inline="always", jit_options={"fastmath": FASTMATH, "error_model": ERROR_MODEL})
def _sigmoid_scalar(v):
    if v == types.float32:
        one = np.float32(1)
        return lambda v: one / (one + exp32(-v))
    return lambda v: 1.0 / (1.0 + math.exp(-v))


_TANH_POLY = tuple(np.float32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                            1.33314422036e-1, -3.33332819422e-1))
_TANH_SMALL = np.float32(0.625)


@njit(cache=CACHE, fastmath=FASTMATH_EXACT_ORDER, error_model=ERROR_MODEL)
def tanh32(x):
    """tanh of a float32, branch-free so that loops over it vectorise (libm's ``tanhf`` does not).

    An odd polynomial for |x| < 0.625 (where 1 - 2 / (exp(2|x|) + 1) would cancel), else that formula
    with ``exp32``; within 3e-7 relative of the exact value, exactly +-1 beyond |x| = 9.1, NaN stays NaN.
    """
    a = abs(x)
    z = x * x
    c0, c1, c2, c3, c4 = _TANH_POLY
    small = ((((c0 * z + c1) * z + c2) * z + c3) * z + c4) * z * x + x
    big = np.float32(1) - np.float32(2) / (exp32(a + a) + np.float32(1))
    if x < 0:
        big = -big
    return small if a < _TANH_SMALL else big


def tanh_scalar(v):
    """tanh(v) in v's precision: ``tanh32`` for float32, libm's ``tanh`` (NumPy's values) for float64."""
    return math.tanh(v)


@overload(tanh_scalar, inline="always", jit_options={"fastmath": FASTMATH, "error_model": ERROR_MODEL})
def _tanh_scalar(v):
    if v == types.float32:
        return lambda v: tanh32(v)
    return lambda v: math.tanh(v)


def exp_minus(z, m):
    """exp(z - m) for softmax rows (m: the row maximum, float64): a float32 z is computed in float32 with
    ``exp32`` (vectorised), anything else in float64 with libm's ``exp`` (NumPy's values)."""
    return math.exp(z - m)


@overload(exp_minus, inline="always", jit_options={"fastmath": FASTMATH, "error_model": ERROR_MODEL})
def _exp_minus(z, m):
    if z == types.float32:
        return lambda z, m: exp32(z - np.float32(m))
    return lambda z, m: math.exp(np.float64(z) - m)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, inline="always")
def deriv_scalar(a, act):
    """act'(pre) from the post-activation value a."""
    if act == SIGMOID:
        return a * (1 - a)
    if act == TANH:
        return 1 - a * a
    if act == RELU:
        return a * 0 + 1 if a > 0 else a * 0
    return a * 0 + 1


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def softmax_rows(Z, P_out):  # IN Z (n, c); OUT P_out (n, c), may alias Z
    """Row-wise softmax with max subtraction; the row sum accumulates in float64."""
    n, c = Z.shape
    for i in range(n):
        m = -np.inf
        for j in range(c):
            if Z[i, j] > m:
                m = np.float64(Z[i, j])
        s = 0.0
        for j in range(c):
            e = exp_minus(Z[i, j], m)
            P_out[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(c):
            P_out[i, j] = P_out[i, j] * inv


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, inline="always")
def _activate_row(Z, i, act, A_out):
    """A_out[i] = act(Z[i]) for an element-wise code: one loop per activation, so that the compiler
    vectorises each (a loop that tests ``act`` per element would not be)."""
    m = Z.shape[1]
    if act == SIGMOID:
        for j in range(m):
            A_out[i, j] = sigmoid_scalar(Z[i, j])
    elif act == RELU:
        for j in range(m):
            v = Z[i, j]
            A_out[i, j] = v if v > 0 else v * 0
    elif act == TANH:
        for j in range(m):
            A_out[i, j] = tanh_scalar(Z[i, j])
    else:
        for j in range(m):
            A_out[i, j] = Z[i, j]


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def bias_activate(Z, b, act, A_out):
    # IN/OUT Z (n, m); IN b (m,), act code (not softmax); OUT A_out (n, m), may alias Z
    """Z += b (row-wise), then A_out = act(Z)."""
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            Z[i, j] = Z[i, j] + b[j]
        _activate_row(Z, i, act, A_out)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def activate(Z, act, A_out):  # IN Z (n, m), act code; OUT A_out (n, m), may alias Z
    """A_out = act(Z) for any activation code, softmax row-wise."""
    if act == SOFTMAX:
        softmax_rows(Z, A_out)
        return
    for i in range(Z.shape[0]):
        _activate_row(Z, i, act, A_out)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def activation_deriv(A, act, D_out):  # IN A (n, m) post-activation, act code; OUT D_out (n, m)
    """D_out = act'(pre) written from the post-activation A (sigmoid: A(1-A), tanh: 1-A^2, relu: A>0)."""
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            D_out[i, j] = deriv_scalar(A[i, j], act)

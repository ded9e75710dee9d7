"""The core's own products (``_small.h`` through ``gemm_direct``): what BLAS would compute, for every block
shape the loop has (row blocks of 1 to 6 rows, wide and single column vectors, the last columns one at a
time), A transposed or not, alpha and beta (beta 0 ignoring NaN in C), blocks of larger arrays, read-only
inputs, both dtypes; and a row's numbers independent of the rows around it and of the thread count.  The
AVX-512 copy of the core uses these products; the tests force them on whichever copy runs here."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn.functional as F
from fastnn._config import PARTS
from fastnn._kernels import _core

import _reference as R

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def direct_products():
    old = _core._test_direct(1)
    yield
    _core._test_direct(old)


def _direct(m, k, n, dtype):
    """Whether ``gemm_serial`` takes the direct loop for this product (B not transposed): its B is small."""
    return k * n * np.dtype(dtype).itemsize <= PARTS["direct_bytes"]


def _operands(rng, m, k, n, dtype, a_trans, block):
    A = rng.normal(size=(m, k))
    B = rng.normal(size=(k, n))
    a = np.ascontiguousarray(A.T).T if a_trans else A  # a_trans: the transpose of a row-major (k, m) array
    if block:  # blocks of larger arrays: leading dimensions wider than the rows
        big_a = np.zeros((k + 5, m + 3)).T if a_trans else np.zeros((m + 3, k + 5))
        big_a[1:1 + m, 2:2 + k] = A
        a = big_a[1:1 + m, 2:2 + k]
        big_b = np.zeros((k + 2, n + 7))
        big_b[1:1 + k, 3:3 + n] = B
        B = big_b[1:1 + k, 3:3 + n]
    return a.astype(dtype, order="K"), B.astype(dtype, order="K")


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 14), k=st.integers(1, 70), n=st.integers(1, 140), a_trans=st.booleans(),
       block=st.booleans(), beta=st.sampled_from([0.0, 1.0, -0.5]), alpha=st.sampled_from([1.0, -0.01, 2.5]),
       dtype=st.sampled_from(DTYPES))
def test_direct_products_match_numpy(m, k, n, a_trans, block, beta, alpha, dtype):
    rng = np.random.default_rng([m, k, n])
    A, B = _operands(rng, m, k, n, dtype, a_trans, block)
    assert _direct(m, k, n, dtype)
    C0 = rng.normal(size=(m, n)).astype(dtype)
    if beta == 0:
        C0[0, 0] = np.nan  # beta 0 ignores C's old values, NaN included, as BLAS does
    C = C0.copy()
    A.flags.writeable = B.flags.writeable = False
    _core.gemm(A, B, C, alpha, beta)
    want = alpha * (A.astype(np.float64) @ B.astype(np.float64))
    if beta:
        want += beta * C0.astype(np.float64)
    tol = R.tol(dtype)
    np.testing.assert_allclose(C, want, rtol=tol["rtol"], atol=tol["atol"] * np.sqrt(k) * max(1, abs(alpha)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_rows_numbers_do_not_depend_on_the_rows_around_it(dtype, rng):
    """Each element is its own sum over k in order, whichever block (6 rows, fewer, one) it falls in: a row
    alone, or among 1 to 13 others, gives the same bits (a prediction of one row is the batch's row)."""
    k, n = 300, 100
    A = rng.normal(size=(14, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    assert _direct(14, k, n, dtype)
    full = np.empty((14, n), dtype)
    _core.gemm(A, B, full)
    for rows in range(1, 15):
        part = np.empty((rows, n), dtype)
        _core.gemm(A[14 - rows:], B, part)
        np.testing.assert_array_equal(part, full[14 - rows:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(32, 1024, 64), (1024, 32, 64), (256, 288, 32), (1, 1024, 100)])
def test_epoch_shaped_direct_products_are_the_same_on_any_thread_count(dtype, shape, rng):
    """The shapes an epoch repeats (layer 0's forward and weight gradient, a convolution's product, a
    prediction), cut into parts for the team: bitwise the same on 1 to 4 threads, and NumPy's to rounding."""
    m, k, n = shape
    A = rng.normal(size=(m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    assert _direct(m, k, n, dtype)
    got = []
    old = F.get_num_threads()
    try:
        for threads in (1, 2, 3, 4):
            F.set_num_threads(threads)
            C = np.empty((m, n), dtype)
            _core.gemm(A, B, C)
            got.append(C)
    finally:
        F.set_num_threads(old)
    for C in got[1:]:
        np.testing.assert_array_equal(C, got[0])
    tol = R.tol(dtype)
    np.testing.assert_allclose(got[0], A.astype(np.float64) @ B.astype(np.float64), rtol=tol["rtol"],
                               atol=tol["atol"] * np.sqrt(k))


def _fma(a, b, c):
    """a * b + c rounded once (float64), exactly as a fused multiply-add."""
    return float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


@pytest.mark.parametrize("a_trans", [False, True])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.01, 1.0), (-0.01, 0.999)])
def test_every_element_is_the_in_order_fused_sum(a_trans, alpha, beta, rng):
    """What makes the copies agree bitwise: each element of C is ``fma(alpha, s, beta * c)`` of the in-order
    sum ``s = fma(a_k, b_k, ... fma(a_0, b_0, 0))``, in a 6-row block, a smaller one, a vector or the last
    columns alike (float64, on copies with FMA; the SSE4 copy has none and rounds each step twice)."""
    if F.core_info()["core"] == "x86-64-v2":
        pytest.skip("the SSE4 copy has no FMA")
    m, k, n = 8, 9, 21  # a 6-row block and a 2-row one; vectors and the last columns in every copy
    A = rng.normal(size=(k, m)).T if a_trans else rng.normal(size=(m, k))
    B = rng.normal(size=(k, n))
    C0 = rng.normal(size=(m, n))
    C = C0.copy()
    _core.gemm(A, B, C, alpha, beta)
    want = np.empty_like(C)
    for r in range(m):
        for j in range(n):
            s = 0.0
            for i in range(k):
                s = _fma(A[r, i], B[i, j], s)
            want[r, j] = _fma(alpha, s, beta * C0[r, j]) if beta else alpha * s
    np.testing.assert_array_equal(C, want)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(64, 300), k=st.integers(1, 40), n=st.integers(1, 200), dtype=st.sampled_from(DTYPES),
       beta=st.sampled_from([0.0, 1.0]))
def test_a_transposed_b_is_copied_as_rows_and_multiplied_alike(m, k, n, dtype, beta):
    """An input gradient's ``D @ W.T`` (B transposed, small, many rows): B's rows copied out once, then the
    same loop: NumPy's numbers to rounding, and the same bits as with B given as rows."""
    rng = np.random.default_rng([m, k, n])
    D = rng.normal(size=(m, k)).astype(dtype)
    W = rng.normal(size=(n, k)).astype(dtype)
    C0 = rng.normal(size=(m, n)).astype(dtype)
    C, rows = C0.copy(), C0.copy()
    _core.gemm(D, W.T, C, 1.0, beta)
    _core.gemm(D, np.ascontiguousarray(W.T), rows, 1.0, beta)
    np.testing.assert_array_equal(C, rows)
    tol = R.tol(dtype)
    want = D.astype(np.float64) @ W.T.astype(np.float64) + beta * C0
    np.testing.assert_allclose(C, want, rtol=tol["rtol"], atol=tol["atol"] * np.sqrt(k))

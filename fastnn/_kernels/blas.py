"""Matrix products for the kernels: a private, single-threaded OpenBLAS, split over the cores by Numba.

Why not ``np.dot`` inside Numba (SciPy's BLAS)?  The products of small
networks (e.g. 32x1024 @ 1024x64) are too small for OpenBLAS's own threads:
on 2 cores its threaded ``sgemm`` took 2.3x longer than a single thread, and a
multi-threaded OpenBLAS serialises (or stalls) when two threads call it at
once.  So fastnn loads its own copy of OpenBLAS (the ``scipy-openblas32``
wheel) in single-threaded mode, leaves NumPy's and SciPy's copies alone, and
splits each large product in two halves that run on Numba's threads.

The library's ``cblas_?gemm`` entry points are registered as LLVM symbols at
import, so kernels that call them can still be cached on disk.
"""

import ctypes
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
from llvmlite import binding as _llvm
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE, ERROR_MODEL, FASTMATH, PARALLEL_GEMM_MIN_FLOPS

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _load_openblas():
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fastnn needs the 'scipy-openblas32' package (pip install scipy-openblas32)")
    libdir = Path(spec.submodule_search_locations[0]) / "lib"
    candidates = sorted(libdir.glob("libscipy_openblas*.so*")) + sorted(libdir.glob("libscipy_openblas*.dylib"))
    if not candidates:
        raise ImportError(f"fastnn: no OpenBLAS library found in {libdir}")
    # OpenBLAS reads its thread count once, when it is loaded: load it single-threaded, then restore the
    # environment so that nothing else in the process is affected.
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        lib = ctypes.CDLL(str(candidates[0]), mode=getattr(os, "RTLD_LOCAL", 0))
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    if lib.scipy_openblas_get_num_threads() != 1:  # someone loaded it before us, threaded
        lib.scipy_openblas_set_num_threads(1)
        warnings.warn("fastnn: scipy_openblas32 was already loaded multi-threaded; matrix products may be slower",
                      RuntimeWarning, stacklevel=3)
    return lib


_lib = _load_openblas()
for _name in ("sgemm", "dgemm"):
    _llvm.add_symbol(f"fastnn_cblas_{_name}", ctypes.cast(getattr(_lib, f"scipy_cblas_{_name}"), ctypes.c_void_p).value)

_i = types.intc
_p = types.voidptr
_sgemm = types.ExternalFunction(
    "fastnn_cblas_sgemm", types.void(_i, _i, _i, _i, _i, _i, types.float32, _p, _i, _p, _i, types.float32, _p, _i))
_dgemm = types.ExternalFunction(
    "fastnn_cblas_dgemm", types.void(_i, _i, _i, _i, _i, _i, types.float64, _p, _i, _p, _i, types.float64, _p, _i))


@intrinsic
def _data_ptr(typingctx, arr):
    """The address of an array's first element as a void pointer."""
    def codegen(context, builder, signature, args):
        ary = cgutils.create_struct_proxy(arr)(context, builder, value=args[0])
        return builder.bitcast(ary.data, context.get_value_type(types.voidptr))
    return types.voidptr(arr), codegen


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, inline="always")
def _operand(A):
    """(transpose flag, leading dimension) describing a 2-D array with one unit stride to row-major BLAS."""
    item = A.itemsize
    if A.shape[1] == 1 or A.strides[1] == item:
        return _NO_TRANS, max(A.strides[0] // item, A.shape[1], 1)
    return _TRANS, max(A.strides[1] // item, A.shape[0], 1)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def gemm_serial(A, B, C, alpha, beta):
    # IN A (m, k), B (k, n), alpha, beta; IN/OUT C (m, n) row-major
    """C = alpha * A @ B + beta * C on the calling thread; A and B may be C- or F-ordered views."""
    m, k = A.shape
    n = B.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                C[i, j] = beta * C[i, j]  # alpha * (empty sum) is 0
        return
    ta, lda = _operand(A)
    tb, ldb = _operand(B)
    ldc = max(C.strides[0] // C.itemsize, n, 1)
    if C.itemsize == 4:  # float32
        _sgemm(_ROW_MAJOR, ta, tb, m, n, k, np.float32(alpha), _data_ptr(A), lda, _data_ptr(B), ldb,
               np.float32(beta), _data_ptr(C), ldc)
    else:
        _dgemm(_ROW_MAJOR, ta, tb, m, n, k, np.float64(alpha), _data_ptr(A), lda, _data_ptr(B), ldb,
               np.float64(beta), _data_ptr(C), ldc)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, parallel=True)
def _gemm_split_cols(A, B, C, alpha, beta, parts):
    n = B.shape[1]
    for t in prange(parts):
        lo = n * t // parts
        hi = n * (t + 1) // parts
        gemm_serial(A, B[:, lo:hi], C[:, lo:hi], alpha, beta)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, parallel=True)
def _gemm_split_rows(A, B, C, alpha, beta, parts):
    m = A.shape[0]
    for t in prange(parts):
        lo = m * t // parts
        hi = m * (t + 1) // parts
        gemm_serial(A[lo:hi], B, C[lo:hi], alpha, beta)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, parallel=True)
def _gemm_split_k(A, B, C, alpha, beta, scratch):
    """Split along the inner dimension: thread 0 writes A[:, :k/2] @ B[:k/2] into C, thread 1 the other
    half into ``scratch``, then the halves are added.

    For a layer's forward product X (32, 1024) @ W (1024, 64) this makes each thread read the same half
    of W's rows that it updates in the backward pass (a row split of X.T @ delta), so W stays in that
    core's cache: the batch-32 float32 epoch went from 34.8 to 31.5 ms on 2 cores.
    """
    k = A.shape[1]
    for t in prange(2):
        lo = k * t // 2
        hi = k * (t + 1) // 2
        if t == 0:
            gemm_serial(A[:, lo:hi], B[lo:hi], C, alpha, beta)
        else:
            gemm_serial(A[:, lo:hi], B[lo:hi], scratch, alpha, 0.0)
    m, n = C.shape
    for i in range(m):
        for j in range(n):
            C[i, j] += scratch[i, j]


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def splits_over_threads(m, k, n):
    """True when ``gemm`` splits an (m, k) @ (k, n) product over the threads (it is large enough)."""
    return 2.0 * m * n * k >= PARALLEL_GEMM_MIN_FLOPS


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def gemm(A, B, C, alpha=1.0, beta=0.0):
    # IN A (m, k), B (k, n), alpha, beta; IN/OUT C (m, n) row-major
    """C = alpha * A @ B + beta * C; a large product is split in two over Numba's threads: along the inner
    dimension when it dominates (k >= 4 max(m, n)), else along C's longer side."""
    m, k = A.shape
    n = B.shape[1]
    if not splits_over_threads(m, k, n):
        gemm_serial(A, B, C, alpha, beta)
    elif k >= 4 * max(m, n):
        _gemm_split_k(A, B, C, alpha, beta, np.empty_like(C))
    elif m >= n:
        _gemm_split_rows(A, B, C, alpha, beta, 2)
    else:
        _gemm_split_cols(A, B, C, alpha, beta, 2)

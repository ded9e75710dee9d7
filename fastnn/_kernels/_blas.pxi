# Matrix products: a private single-threaded OpenBLAS (cblas_?gemm through function pointers that
# fastnn._kernels sets at import), and the rule that splits a large product into two parts.
#
# The split depends only on the shapes, never on the thread count: part 0 and part 1 are the same
# arithmetic whether one thread runs both or two threads run one each, so one thread and two give the
# same numbers bitwise.

ctypedef void (*sgemm_t)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* A, int lda,
                         const float* B, int ldb, float beta, float* C, int ldc) noexcept nogil
ctypedef void (*dgemm_t)(int order, int ta, int tb, int m, int n, int k, double alpha, const double* A, int lda,
                         const double* B, int ldb, double beta, double* C, int ldc) noexcept nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    SPLIT_NONE = 0
    SPLIT_ROWS = 1
    SPLIT_COLS = 2
    SPLIT_K = 3

#: Products of at least this many flops (2 m n k) are split in two parts; smaller ones run as one.
cdef double _split_min_flops = 1 << 19


ctypedef struct Mat:
    # A 2-D operand as row-major BLAS sees it: element (i, j) at data[i * ld + j] (trans == 0) or at
    # data[j * ld + i] (trans == 1, i.e. the transpose of a row-major array).
    char* data
    int rows
    int cols
    int ld
    int trans
    int itemsize


cdef inline Mat mat(void* data, int rows, int cols, int itemsize) noexcept nogil:
    """A C-contiguous (rows, cols) block."""
    cdef Mat M
    M.data = <char*>data
    M.rows = rows
    M.cols = cols
    M.ld = cols if cols > 0 else 1
    M.trans = 0
    M.itemsize = itemsize
    return M


cdef inline Mat transpose(Mat A) noexcept nogil:
    cdef Mat T = A
    T.rows = A.cols
    T.cols = A.rows
    T.trans = 1 - A.trans
    return T


cdef inline Mat sub(Mat A, int r0, int r1, int c0, int c1) noexcept nogil:
    """Rows r0:r1 and columns c0:c1 of A."""
    cdef Mat S = A
    cdef Py_ssize_t off = (<Py_ssize_t>c0 * A.ld + r0) if A.trans else (<Py_ssize_t>r0 * A.ld + c0)
    S.data = A.data + off * A.itemsize
    S.rows = r1 - r0
    S.cols = c1 - c0
    return S


cdef void gemm_serial(Mat A, Mat B, Mat C, double alpha, double beta) noexcept nogil:
    """C = alpha A @ B + beta C on the calling thread (C not transposed)."""
    cdef int m = A.rows, k = A.cols, n = B.cols, i, j
    if m == 0 or n == 0:
        return
    if k == 0:  # alpha * (an empty sum) is 0; beta 0 ignores C's old values, as BLAS does (NaN included)
        for i in range(m):
            for j in range(n):
                if C.itemsize == 4:
                    (<float*>C.data)[i * C.ld + j] = (<float>beta) * (<float*>C.data)[i * C.ld + j] if beta != 0 else 0
                else:
                    (<double*>C.data)[i * C.ld + j] = beta * (<double*>C.data)[i * C.ld + j] if beta != 0 else 0
        return
    if C.itemsize == 4:
        _sgemm(ROW_MAJOR, NO_TRANS + A.trans, NO_TRANS + B.trans, m, n, k, <float>alpha, <float*>A.data, A.ld,
               <float*>B.data, B.ld, <float>beta, <float*>C.data, C.ld)
    else:
        _dgemm(ROW_MAJOR, NO_TRANS + A.trans, NO_TRANS + B.trans, m, n, k, alpha, <double*>A.data, A.ld,
               <double*>B.data, B.ld, beta, <double*>C.data, C.ld)


cdef int split_kind(int m, int k, int n) noexcept nogil:
    """How an (m, k) @ (k, n) product is cut in two: not at all when small; along the inner dimension
    when it dominates (k >= 4 max(m, n)); else along C's longer side."""
    if 2.0 * m * n * k < _split_min_flops:
        return SPLIT_NONE
    if k >= 4 * max(m, n):
        return SPLIT_K
    return SPLIT_ROWS if m >= n else SPLIT_COLS


cdef void gemm_part(Mat A, Mat B, Mat C, double alpha, double beta, int kind, int part, Mat scratch) noexcept nogil:
    """Part ``part`` (0 or 1) of C = alpha A @ B + beta C cut as ``kind``; SPLIT_NONE has only part 0.
    SPLIT_K writes part 1's half-sum into ``scratch`` (C's shape); ``gemm_combine`` adds it afterwards."""
    cdef int m = A.rows, k = A.cols, n = B.cols, lo, hi
    if kind == SPLIT_NONE:
        if part == 0:
            gemm_serial(A, B, C, alpha, beta)
    elif kind == SPLIT_ROWS:
        lo = m * part // 2
        hi = m * (part + 1) // 2
        gemm_serial(sub(A, lo, hi, 0, k), B, sub(C, lo, hi, 0, n), alpha, beta)
    elif kind == SPLIT_COLS:
        lo = n * part // 2
        hi = n * (part + 1) // 2
        gemm_serial(A, sub(B, 0, k, lo, hi), sub(C, 0, m, lo, hi), alpha, beta)
    else:
        lo = k * part // 2
        hi = k * (part + 1) // 2
        if part == 0:
            gemm_serial(sub(A, 0, m, lo, hi), sub(B, lo, hi, 0, n), C, alpha, beta)
        else:
            gemm_serial(sub(A, 0, m, lo, hi), sub(B, lo, hi, 0, n), scratch, alpha, 0.0)


cdef void gemm_combine(Mat C, Mat scratch) noexcept nogil:
    """C += scratch: the second half-sum of a SPLIT_K product."""
    cdef Py_ssize_t i, j
    for i in range(C.rows):
        if C.itemsize == 4:
            for j in range(C.cols):
                (<float*>C.data)[i * C.ld + j] += (<float*>scratch.data)[i * scratch.ld + j]
        else:
            for j in range(C.cols):
                (<double*>C.data)[i * C.ld + j] += (<double*>scratch.data)[i * scratch.ld + j]


cdef void gemm_split(Mat A, Mat B, Mat C, double alpha, double beta, Mat scratch, int threads) noexcept nogil:
    """C = alpha A @ B + beta C, its two parts on two threads when ``threads`` > 1 and it is large enough.
    ``scratch`` must hold C's shape when the product splits along k (see ``split_kind``)."""
    cdef int kind = split_kind(A.rows, A.cols, B.cols), p
    if kind == SPLIT_NONE:
        gemm_serial(A, B, C, alpha, beta)
        return
    if threads > 1:
        for p in prange(2, num_threads=2, schedule="static", chunksize=1):
            gemm_part(A, B, C, alpha, beta, kind, p, scratch)
    else:
        gemm_part(A, B, C, alpha, beta, kind, 0, scratch)
        gemm_part(A, B, C, alpha, beta, kind, 1, scratch)
    if kind == SPLIT_K:
        gemm_combine(C, scratch)

# Matrix products: a private single-threaded OpenBLAS (cblas_?gemm through function pointers that
# fastnn._kernels sets at import), and the rule that cuts a large product into parts for the team.
#
# The cut depends only on the shapes, never on the thread count: part p is the same call whichever
# thread runs it, so 1, 2, 3 or 64 threads compute the same numbers bitwise.  A product is cut along C's
# rows or columns (each part computes a block of C), or along the inner dimension when that dominates
# (each part a partial sum; part 0's into C, the others' into scratch blocks that are added to C in part
# order afterwards, ``gemm_combine``).

ctypedef void (*sgemm_t)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* A, int lda,
                         const float* B, int ldb, float beta, float* C, int ldc) noexcept nogil
ctypedef void (*dgemm_t)(int order, int ta, int tb, int m, int n, int k, double alpha, const double* A, int lda,
                         const double* B, int ldb, double beta, double* C, int ldc) noexcept nogil

ctypedef int (*blas_get_threads_t)() noexcept nogil
ctypedef void (*blas_set_threads_t)(int n) noexcept nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL
cdef blas_get_threads_t _blas_get_threads = NULL
cdef blas_set_threads_t _blas_set_threads = NULL


cdef inline void blas_single() noexcept nogil:
    """Keep the private OpenBLAS on one thread: every part is one BLAS call on one of the team's threads, but
    threadpoolctl finds that OpenBLAS too, and ``threadpool_limits(n)`` sets it to n threads (a limit that one
    thread also keeps).  Called when a kernel starts; costs one function call when nothing changed."""
    if _blas_get_threads != NULL and _blas_get_threads() != 1:
        _blas_set_threads(1)

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    SPLIT_NONE = 0
    SPLIT_ROWS = 1
    SPLIT_COLS = 2
    SPLIT_K = 3
    #: Part boundaries along any dimension fall on multiples of this (whole SIMD vectors, BLAS panels).
    PART_ALIGN = 16

# How products are cut (fastnn/_config.py sets them through ``configure``): a product of fewer than
# _split_min_flops flops runs whole; a larger one is cut into about flops / _part_flops parts, at least
# two, at most _max_parts (_max_k_parts along the inner dimension, whose parts each need a scratch block
# of C's size), each part at least _part_min_rows rows / _part_min_cols columns / _part_min_k of the inner
# dimension, so that each BLAS call keeps its efficiency.
cdef double _split_min_flops = 1 << 19
cdef double _part_flops = 1 << 20
cdef int _max_parts = 64
cdef int _max_k_parts = 8
cdef int _part_min_rows = 64
cdef int _part_min_cols = 64
cdef int _part_min_k = 128
#: A product (or a part of one) whose B is not transposed and at most _direct_bytes large runs ``gemm_direct``
#: instead of BLAS (0: never): in the copy of the core where that is faster (AVX-512, FNN_SMALL_FAST), any
#: such product (_direct_mode DIRECT_ALL); in the others, those of at most DIRECT_FEW_ROWS rows (a single
#: prediction's, whose B BLAS would pack for one row: 5.1 against 11.6 us for the 1024x64 layer in the AVX2
#: copy, 7.1 against 11.9 in the SSE4 one, on a Zen 5), DIRECT_FEW.  The tests can force either.
cdef double _direct_bytes = 0
cdef enum:
    DIRECT_NONE = 0
    DIRECT_ALL = 1
    DIRECT_FEW = 2
    DIRECT_FEW_ROWS = 2
cdef int _direct_mode = DIRECT_FEW


ctypedef struct Split:
    int kind
    int parts


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


cdef extern from "_small.h" nogil:
    int FNN_SMALL_FAST
    void fnn_sgemm_small(int m, int n, int k, float alpha, const float* A, int lda, int a_trans, const float* B,
                         int ldb, float beta, float* C, int ldc)
    void fnn_dgemm_small(int m, int n, int k, double alpha, const double* A, int lda, int a_trans,
                         const double* B, int ldb, double beta, double* C, int ldc)


cdef enum:
    #: A transposed B of at most this many bytes (a convolution's W.T: 18 KB for 3x3x16 -> 32) is copied
    #: onto the stack as rows, for a product of at least DIRECT_COPY_MIN_ROWS rows (that read it again and
    #: again: a copy is what BLAS's packing costs, worth it only then).
    DIRECT_COPY_BYTES = 65536
    DIRECT_COPY_DOUBLES = 8192  # (DIRECT_COPY_BYTES of doubles)
    DIRECT_COPY_MIN_ROWS = 64


cdef void transpose_copy(Mat B, char* out) noexcept nogil:
    """B (transposed: element (i, j) at data[j * ld + i]) as a C-contiguous (rows, cols) block at out."""
    cdef Py_ssize_t i, j
    for j in range(B.cols):
        for i in range(B.rows):
            if B.itemsize == 4:
                (<float*>out)[i * B.cols + j] = (<const float*>B.data)[j * B.ld + i]
            else:
                (<double*>out)[i * B.cols + j] = (<const double*>B.data)[j * B.ld + i]


cdef inline void gemm_direct(Mat A, Mat B, Mat C, double alpha, double beta) noexcept nogil:
    """C = alpha A @ B + beta C (B not transposed) by ``_small.h``'s register-blocked loop, without BLAS's
    packing: for products too small for the packing to pay (a prediction's few rows, an epoch's batch)."""
    if C.itemsize == 4:
        fnn_sgemm_small(A.rows, B.cols, A.cols, <float>alpha, <const float*>A.data, A.ld, A.trans,
                        <const float*>B.data, B.ld, <float>beta, <float*>C.data, C.ld)
    else:
        fnn_dgemm_small(A.rows, B.cols, A.cols, alpha, <const double*>A.data, A.ld, A.trans,
                        <const double*>B.data, B.ld, beta, <double*>C.data, C.ld)


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
    cdef double copy[DIRECT_COPY_DOUBLES]  # (doubles: aligned for either type)
    cdef Py_ssize_t b_bytes = <Py_ssize_t>k * n * C.itemsize
    if _direct_mode and <double>b_bytes <= _direct_bytes and (_direct_mode == DIRECT_ALL or m <= DIRECT_FEW_ROWS):
        if not B.trans:
            gemm_direct(A, B, C, alpha, beta)
            return
        if _direct_mode == DIRECT_ALL and m >= DIRECT_COPY_MIN_ROWS and b_bytes <= DIRECT_COPY_BYTES:
            # B transposed (an input gradient's W.T): its rows copied out once, then the same loop
            transpose_copy(B, <char*>copy)
            gemm_direct(A, mat(copy, k, n, C.itemsize), C, alpha, beta)
            return
    if C.itemsize == 4:
        _sgemm(ROW_MAJOR, NO_TRANS + A.trans, NO_TRANS + B.trans, m, n, k, <float>alpha, <float*>A.data, A.ld,
               <float*>B.data, B.ld, <float>beta, <float*>C.data, C.ld)
    else:
        _dgemm(ROW_MAJOR, NO_TRANS + A.trans, NO_TRANS + B.trans, m, n, k, alpha, <double*>A.data, A.ld,
               <double*>B.data, B.ld, beta, <double*>C.data, C.ld)


cdef Split split_of(int m, int k, int n) noexcept nogil:
    """How an (m, k) @ (k, n) product is cut: not at all when small; along the inner dimension when it
    dominates (k >= 4 max(m, n)); else along C's longer side; into parts by its flops (see above)."""
    cdef Split s
    cdef double flops = 2.0 * m * n * k
    cdef int extent, least, cap
    s.kind = SPLIT_NONE
    s.parts = 1
    if flops < _split_min_flops:
        return s
    if k >= 4 * max(m, n):
        s.kind, extent, least, cap = SPLIT_K, k, _part_min_k, _max_k_parts
    elif m >= n:
        s.kind, extent, least, cap = SPLIT_ROWS, m, _part_min_rows, _max_parts
    else:
        s.kind, extent, least, cap = SPLIT_COLS, n, _part_min_cols, _max_parts
    s.parts = <int>min(<double>cap, max(2.0, flops / _part_flops), <double>(extent // max(least, 1)))
    if s.parts < 2:
        s.kind = SPLIT_NONE
        s.parts = 1
    return s


cdef inline int part_bound(int extent, int parts, int p) noexcept nogil:
    """Where part p of ``parts`` starts along a dimension of ``extent`` (p == parts: the end); interior
    bounds on multiples of PART_ALIGN (every part is non-empty: parts are at least 2 * PART_ALIGN long)."""
    if p >= parts:
        return extent
    return <int>((<long long>extent * p // parts) // PART_ALIGN * PART_ALIGN)


cdef inline Py_ssize_t k_scratch_size(Split s, Mat C) noexcept nogil:
    """Values of scratch a product cut as ``s`` needs (parts 1.. of an inner-dimension cut)."""
    return <Py_ssize_t>(s.parts - 1) * C.rows * C.cols if s.kind == SPLIT_K else 0


cdef void gemm_part(Mat A, Mat B, Mat C, double alpha, double beta, Split s, int p, char* scratch) noexcept nogil:
    """Part p of C = alpha A @ B + beta C cut as ``s``.  An inner-dimension part p > 0 writes its partial
    sum into scratch block p - 1 (C's shape, contiguous); ``gemm_combine`` adds them afterwards."""
    cdef int m = A.rows, k = A.cols, n = B.cols, lo, hi
    if s.kind == SPLIT_NONE:
        if p == 0:
            gemm_serial(A, B, C, alpha, beta)
        return
    if s.kind == SPLIT_ROWS:
        lo = part_bound(m, s.parts, p)
        hi = part_bound(m, s.parts, p + 1)
        gemm_serial(sub(A, lo, hi, 0, k), B, sub(C, lo, hi, 0, n), alpha, beta)
    elif s.kind == SPLIT_COLS:
        lo = part_bound(n, s.parts, p)
        hi = part_bound(n, s.parts, p + 1)
        gemm_serial(A, sub(B, 0, k, lo, hi), sub(C, 0, m, lo, hi), alpha, beta)
    else:
        lo = part_bound(k, s.parts, p)
        hi = part_bound(k, s.parts, p + 1)
        if p == 0:
            gemm_serial(sub(A, 0, m, lo, hi), sub(B, lo, hi, 0, n), C, alpha, beta)
        else:
            gemm_serial(sub(A, 0, m, lo, hi), sub(B, lo, hi, 0, n),
                        mat(scratch + <Py_ssize_t>(p - 1) * m * n * C.itemsize, m, n, C.itemsize), alpha, 0.0)


cdef void gemm_combine_rows(Mat C, Split s, const char* scratch, int r0, int r1) noexcept nogil:
    """Rows [r0, r1) of C += scratch blocks 0, 1, ... in that order (the inner-dimension parts 1, 2, ...)."""
    cdef Py_ssize_t i, j, q, block = <Py_ssize_t>C.rows * C.cols
    cdef float* cf
    cdef double* cd
    for q in range(s.parts - 1):
        for i in range(r0, r1):
            if C.itemsize == 4:
                cf = <float*>C.data + i * C.ld
                for j in range(C.cols):
                    cf[j] += (<const float*>scratch)[q * block + i * C.cols + j]
            else:
                cd = <double*>C.data + i * C.ld
                for j in range(C.cols):
                    cd[j] += (<const double*>scratch)[q * block + i * C.cols + j]


cdef inline void gemm_combine(Mat C, Split s, const char* scratch) noexcept nogil:
    if s.kind == SPLIT_K:
        gemm_combine_rows(C, s, scratch, 0, C.rows)


# ---------------------------------------------------------------------- a product on the team

ctypedef struct GemmJob:
    Mat A
    Mat B
    Mat C
    double alpha
    double beta
    Split s
    char* scratch


cdef void gemm_job_part(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef GemmJob* j = <GemmJob*>arg
    gemm_part(j.A, j.B, j.C, j.alpha, j.beta, j.s, <int>part, j.scratch)


cdef int gemm_team(Mat A, Mat B, Mat C, double alpha, double beta, int threads) noexcept nogil:
    """C = alpha A @ B + beta C, its parts on up to ``threads`` threads of the team; -1 when out of memory
    (for an inner-dimension cut's scratch)."""
    cdef GemmJob j
    j.A, j.B, j.C, j.alpha, j.beta = A, B, C, alpha, beta
    j.s = split_of(A.rows, A.cols, B.cols)
    j.scratch = NULL
    blas_single()
    if j.s.parts == 1:
        gemm_serial(A, B, C, alpha, beta)
        return 0
    if j.s.kind == SPLIT_K:
        j.scratch = <char*>malloc(<size_t>k_scratch_size(j.s, C) * C.itemsize)
        if j.scratch == NULL:
            return -1
    fnn_team_run(gemm_job_part, &j, j.s.parts, threads)
    gemm_combine(C, j.s, j.scratch)
    free(j.scratch)
    return 0

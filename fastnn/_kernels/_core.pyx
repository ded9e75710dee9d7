# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
# cython: nonecheck=False, embedsignature=True
"""fastnn's compiled core (Cython + OpenMP), built ahead of time when the package is installed.

Kernels never validate and never allocate arrays: they take inputs and ``*_out`` buffers and fill the
outputs (``fastnn.functional`` is the validated layer above).  The code is split by concern into the
``.pxi`` files beside this one, which are compiled into this one extension so that every kernel can
inline the scalar math:

* ``_math.pxi``: float32 exp/tanh, activations, derivatives, softmax, bias sums;
* ``_blas.pxi``: the matrix products and how a large one is cut in two for the threads;
* ``_losses.pxi``: the fused losses; ``_optim.pxi``: the optimizer updates;
* ``_epoch.pxi``: a whole training epoch in one parallel region;
* ``_conv.pxi``: convolution (im2col + one product) and max-pooling on NHWC images;
* ``_conv_epoch.pxi``: a convolutional network's epoch, in the same parallel region as the dense one.

All parallelism is OpenMP; the matrix products run on a private single-threaded OpenBLAS.
"""

cimport openmp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport exp, fabs, isfinite, log, log1p, pow, sqrt, tanh
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from posix.unistd cimport usleep

import numpy as np

cdef extern from "<math.h>" nogil:
    float sqrtf(float x)

include "_math.pxi"
include "_blas.pxi"
include "_losses.pxi"
include "_optim.pxi"
include "_epoch.pxi"
include "_conv.pxi"
include "_conv_epoch.pxi"

#: Activation codes (the kernels take them as plain integers), name -> code.
ACTIVATIONS = {"linear": ACT_LINEAR, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH, "relu": ACT_RELU,
               "softmax": ACT_SOFTMAX}
#: Optimizer codes, name -> code.
OPTIMIZERS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "nesterov": OPT_NESTEROV, "adam": OPT_ADAM}
#: Loss codes of the epoch kernel, name -> code.
LOSSES = {"cross_entropy": LOSS_SOFTMAX_CE, "binary_cross_entropy": LOSS_SIGMOID_BCE,
          "squared_error": LOSS_SQUARED_ERROR}
#: The epoch plan's layer table columns and workspace offsets, name -> index.
LAYER_COLUMNS = ("n_in", "n_out", "w_off", "b_off", "pre_off", "post_off", "act")
WORK_OFFSETS = ("xb0", "xb1", "tb0", "tb1", "da", "db", "scratch")
SPLITS = {SPLIT_NONE: "none", SPLIT_ROWS: "rows", SPLIT_COLS: "cols", SPLIT_K: "k"}
#: Entries of a convolution's and a max-pooling's geometry vectors, name -> index.
CONV_GEOMETRY = ("H", "W", "C", "KH", "KW", "F", "stride", "pad_top", "pad_left", "OH", "OW")
POOL_GEOMETRY = ("H", "W", "C", "size", "OH", "OW")
#: A network plan's stack table columns and its workspace offsets beyond WORK_OFFSETS.
STACK_COLUMNS = ("kind", "in_size", "out_size", "w_off", "b_off", "act", "out_off", "cols_off", "geom_off",
                 "gpart_off", "sums_off")
STACK_KINDS = {"conv": KIND_CONV, "pool": KIND_POOL}
NET_WORK_OFFSETS = WORK_OFFSETS + ("dtop", "ga", "gb")

cdef int _threads = max(1, openmp.omp_get_max_threads())
cdef long _barrier_spin = 2000


def _test_lag(unsigned int microseconds):
    """Tests only: make the epoch's second thread sleep after each batch (0: off), so that the first runs
    ahead into the next batch as a descheduled partner would let it; return the previous setting."""
    global _test_lag_us
    old = _test_lag_us
    _test_lag_us = microseconds
    return old


# ------------------------------------------------------------------------ configuration

def configure(size_t sgemm, size_t dgemm, double split_min_flops, long barrier_spin):
    """Point the products at cblas_sgemm / cblas_dgemm (addresses); set the split threshold and how many
    pauses a barrier spins before it yields the core."""
    global _sgemm, _dgemm, _split_min_flops, _barrier_spin
    _sgemm = <sgemm_t>sgemm
    _dgemm = <dgemm_t>dgemm
    _split_min_flops = split_min_flops
    _barrier_spin = barrier_spin


def get_num_threads():
    """Threads the kernels use (at most 2 do work: a product is cut in two parts)."""
    return _threads


def set_num_threads(int n):
    """Set the threads the kernels use; return the previous setting."""
    global _threads
    if n < 1:
        raise ValueError(f"threads: expected a positive integer, got {n}")
    old = _threads
    _threads = n
    return old


def _call_timing(best_seconds_per_flop=None):
    """(best seconds per flop, split calls left on one thread) of the per-call fallback; given a best, start
    the fallback afresh from it (tests)."""
    global _best_seconds_per_flop, _slow_calls, _solo_calls_left
    if best_seconds_per_flop is not None:
        _best_seconds_per_flop = best_seconds_per_flop
        _slow_calls = 0
        _solo_calls_left = 0
    return _best_seconds_per_flop, _solo_calls_left


def split_kind_of(int m, int k, int n):
    """How an (m, k) @ (k, n) product is cut for the threads: 'none', 'rows', 'cols' or 'k'."""
    return SPLITS[split_kind(m, k, n)]


# ----------------------------------------------------------------------------- helpers

cdef Mat mat_of(const floating[:, :] A):
    """A 2-D view with one unit stride (C- or F-ordered, or a block of a larger array) as a BLAS operand."""
    cdef Mat M
    cdef Py_ssize_t item = sizeof(floating)
    M.data = <char*>&A[0, 0] if A.shape[0] and A.shape[1] else NULL
    M.rows = <int>A.shape[0]
    M.cols = <int>A.shape[1]
    M.itemsize = <int>item
    if A.shape[1] == 1 or A.strides[1] == item:
        M.trans = 0
        M.ld = <int>max(A.strides[0] // item, A.shape[1], 1)
    else:
        M.trans = 1
        M.ld = <int>max(A.strides[1] // item, A.shape[0], 1)
    return M


# A product split over two threads outside the epoch is one fork and join of OpenMP's team per call; on a
# machine busy with other work the join can wait a whole time slice for a descheduled thread.  Each split
# call is timed: slow when it took over twice the best time per flop seen (plus 50 us); after 3 slow calls
# of the last 4, the next SOLO_CALLS split products run on one thread, then two are tried again.  The parts
# are the same either way, so are the numbers.  (Races between Python threads on these counters only
# change which thread count a call uses.)
cdef double _best_seconds_per_flop = 0.0
cdef unsigned int _slow_calls = 0
cdef long _solo_calls_left = 0
cdef long SOLO_CALLS = 256


cdef int gemm_threads(Mat A, Mat B, Mat C, double alpha, double beta, int threads) noexcept nogil:
    """``gemm_split`` with its scratch allocated here when needed; -1 when out of memory."""
    global _best_seconds_per_flop, _slow_calls, _solo_calls_left
    cdef void* buf = NULL
    cdef Mat scratch = C
    cdef int kind = split_kind(A.rows, A.cols, B.cols), n_slow = 0
    cdef double flops = 2.0 * A.rows * A.cols * B.cols, t0 = 0.0, per_flop
    cdef unsigned int v
    if kind == SPLIT_K:
        buf = malloc(<size_t>C.rows * C.cols * C.itemsize)
        if buf == NULL:
            return -1
        scratch = mat(buf, C.rows, C.cols, C.itemsize)
    if kind != SPLIT_NONE and threads > 1:
        if _solo_calls_left > 0:
            _solo_calls_left -= 1
            threads = 1
        else:
            t0 = openmp.omp_get_wtime()
    gemm_split(A, B, C, alpha, beta, scratch, threads)
    if t0 > 0:
        per_flop = (openmp.omp_get_wtime() - t0) / flops
        if _best_seconds_per_flop <= 0 or per_flop < _best_seconds_per_flop:
            _best_seconds_per_flop = per_flop
        _slow_calls = ((_slow_calls << 1) | (per_flop * flops > 2 * _best_seconds_per_flop * flops + 50e-6)) & 0xF
        v = _slow_calls
        while v:
            n_slow += v & 1
            v >>= 1
        if n_slow >= 3:
            _solo_calls_left = SOLO_CALLS
            _slow_calls = 0
    free(buf)
    return 0


# ------------------------------------------------------------------------------- kernels

def gemm(const floating[:, :] A, const floating[:, :] B, floating[:, ::1] C, double alpha=1.0,
         double beta=0.0):
    # IN A (m, k), B (k, n) with one unit stride each; IN/OUT C (m, n)
    """C = alpha A @ B + beta C; a large product is cut in two parts that run on two threads."""
    cdef Mat a = mat_of(A), b = mat_of(B), c = mat_of[floating](C)
    cdef int rc
    with nogil:
        rc = gemm_threads(a, b, c, alpha, beta, _threads)
    if rc:
        raise MemoryError("gemm: no memory for the split product's scratch")


def activate(const floating[:, ::1] Z, int act, floating[:, ::1] A_out):
    # IN Z (n, m), act code; OUT A_out (n, m), may alias Z
    """A_out = act(Z), softmax row-wise."""
    cdef Py_ssize_t n = Z.shape[0], m = Z.shape[1]
    if n == 0 or m == 0:
        return
    with nogil:
        if act == ACT_SOFTMAX:
            softmax_rows(&Z[0, 0], n, m, &A_out[0, 0])
        else:
            activate_flat(&Z[0, 0], n * m, act, &A_out[0, 0])


def activation_deriv(const floating[:, ::1] A, int act, floating[:, ::1] D_out):
    # IN A (n, m) post-activation, act code; OUT D_out (n, m)
    """D_out = act'(pre) from the post-activation (sigmoid A(1-A), tanh 1-A^2, relu A>0, linear 1)."""
    if A.shape[0] and A.shape[1]:
        with nogil:
            deriv_flat(&A[0, 0], A.shape[0] * A.shape[1], act, &D_out[0, 0])


def exp32(const float[::1] x, float[::1] out):
    """out = exp(x) by the vectorised float32 polynomial that float32 sigmoid and softmax use."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            out[i] = fnn_exp32(x[i])


def tanh32(const float[::1] x, float[::1] out):
    """out = tanh(x) by the vectorised float32 polynomial that float32 tanh uses."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            out[i] = fnn_tanh32(x[i])


def dense_forward(const floating[:, :] X, const floating[:, :] W, const floating[::1] b, int act,
                  floating[:, ::1] pre_out, floating[:, ::1] post_out):
    # IN X (n, k), W (k, m) each with one unit stride, b (m,), act code; OUT pre_out, post_out (n, m)
    """pre_out = X @ W + b and post_out = act(pre_out), fused."""
    cdef Mat x = mat_of(X), w = mat_of(W), p = mat_of[floating](pre_out)
    cdef int rc
    if pre_out.shape[0] == 0 or pre_out.shape[1] == 0:
        return
    with nogil:
        rc = gemm_threads(x, w, p, 1.0, 0.0, _threads)
        if rc == 0:
            bias_activate(&pre_out[0, 0], &b[0], pre_out.shape[0], pre_out.shape[1], act, &post_out[0, 0])
    if rc:
        raise MemoryError("dense_forward: no memory for the split product's scratch")


def dense_backward(const floating[:, ::1] delta, const floating[:, ::1] A, const floating[:, :] X,
                   const floating[:, :] W, int act, floating[:, ::1] dpre_out, floating[:, ::1] gW_out,
                   floating[::1] gb_out, floating[:, ::1] gX_out, bint need_gx):
    # IN delta (n, m) = dJ/d(post), A (n, m) post-activation, X (n, k), W (k, m), act, need_gx;
    # OUT dpre_out (n, m), gW_out (k, m), gb_out (m,), gX_out (n, k) when need_gx
    """grad_W = X.T @ (delta * act'(A)), grad_b (float64 sums), grad_X = (delta * act'(A)) @ W.T, fused."""
    cdef Py_ssize_t n = delta.shape[0], m = delta.shape[1]
    cdef Mat x = mat_of(X), w = mat_of(W), d = mat_of[floating](dpre_out), gw = mat_of[floating](gW_out)
    cdef Mat gx
    cdef int rc = 0
    if need_gx:
        gx = mat_of[floating](gX_out)
    with nogil:
        delta_pre_flat(&delta[0, 0], &A[0, 0], n * m, act, &dpre_out[0, 0])
        rc = gemm_threads(transpose(x), d, gw, 1.0, 0.0, _threads)
        column_sums_update(&dpre_out[0, 0], n, m, &gb_out[0], 0.0, 0.0, False)
        if need_gx and rc == 0:
            rc = gemm_threads(d, transpose(w), gx, 1.0, 0.0, _threads)
    if rc:
        raise MemoryError("dense_backward: no memory for the split product's scratch")


def softmax_cross_entropy_onehot(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P_out,
                                 floating[:, ::1] D_out):
    # IN Z (n, c) logits, Y (n, c) one-hot (or soft); OUT P_out (n, c) probs, D_out (n, c) = P - Y
    """Return (summed cross-entropy, rows whose argmax matches Y's argmax)."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    with nogil:
        loss = softmax_ce_onehot(&Z[0, 0], &Y[0, 0], Z.shape[0], Z.shape[1], &P_out[0, 0], &D_out[0, 0], &correct)
    return loss, correct


def softmax_cross_entropy_index(const floating[:, ::1] Z, const int64_t[::1] labels, floating[:, ::1] P_out,
                                floating[:, ::1] D_out):
    # IN Z (n, c) logits, labels (n,) class indices in [0, c); OUT P_out, D_out (n, c) = P - onehot
    """Return (summed cross-entropy, rows whose argmax equals the label)."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    with nogil:
        loss = softmax_ce_index(&Z[0, 0], &labels[0], Z.shape[0], Z.shape[1], &P_out[0, 0], &D_out[0, 0],
                                &correct)
    return loss, correct


def cross_entropy_from_probs(const floating[:, ::1] Y, const floating[:, ::1] P):
    # IN Y (n, c) one-hot, P (n, c) probabilities
    """Return (-sum(Y log P), rows where argmax(Y) == argmax(P))."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    with nogil:
        loss = ce_from_probs(&Y[0, 0], &P[0, 0], P.shape[0], P.shape[1], &correct)
    return loss, correct


def sigmoid_binary_cross_entropy(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P_out,
                                 floating[:, ::1] D_out):
    # IN Z (n, 1) logits, Y (n, 1) targets in {0, 1}; OUT P_out = sigmoid(Z), D_out = P - Y
    """Return (summed binary cross-entropy, rows with (P >= 0.5) == (Y >= 0.5))."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    with nogil:
        loss = sigmoid_bce(&Z[0, 0], &Y[0, 0], Z.shape[0] * Z.shape[1], &P_out[0, 0], &D_out[0, 0], &correct)
    return loss, correct


def squared_error(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] D_out):
    # IN P (n, m) predictions, Y (n, m) targets; OUT D_out (n, m) = 2 (P - Y)
    """Return the total squared error sum((P - Y)^2)."""
    cdef double loss
    with nogil:
        loss = squared_error_sum(&P[0, 0], &Y[0, 0], P.shape[0] * P.shape[1], &D_out[0, 0])
    return loss


def update(int kind, floating[::1] p, const floating[::1] g, floating[::1] s1, floating[::1] s2, double lr,
           double mu, double beta2, double eps, double weight_decay, long step):
    # IN kind (optimizer code), g (P,), lr, mu (momentum or beta1), beta2, eps, weight_decay, step (from 1);
    # IN/OUT p (P,), s1 (momentum buffer or Adam's m), s2 (Adam's v; unused otherwise)
    """One update of every value of p by the optimizer ``kind``."""
    cdef Hyper h
    cdef floating* a = &s1[0] if s1.shape[0] else NULL
    cdef floating* v = &s2[0] if s2.shape[0] else NULL
    h.lr, h.mu, h.beta2, h.eps, h.wd = lr, mu, beta2, eps, weight_decay
    if p.shape[0] == 0:
        return
    with nogil:
        optimizer_range(kind, &p[0], &g[0], a, v, 0, p.shape[0], h, step)


def gather_rows(const unsigned char[:, ::1] src, const int64_t[::1] index, unsigned char[:, ::1] out):
    # IN src (N, row_bytes), index (n,) each in [0, N); OUT out (n, row_bytes)
    """out[r] = src[index[r]] for every r (byte views: one kernel serves every dtype)."""
    cdef Py_ssize_t r, n = index.shape[0], width = src.shape[1]
    if width == 0 or n == 0:
        return
    with nogil:
        for r in range(n):
            memcpy(&out[r, 0], &src[index[r], 0], width)


def mlp_epoch(plan, const floating[:, ::1] X, const floating[:, ::1] T, const int64_t[::1] order,
              floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step, int threads,
              double start_loss=0.0):
    # IN plan (fastnn.functional.EpochPlan), X (N, d), T (N, c), order (n,) rows of X, lr, step (updates so
    # far), threads, start_loss (the loss sum so far); IN/OUT theta (P,), state1, state2 (optimizer buffers),
    # the plan's work, grad and timing
    """Train one epoch over ``order`` in batches of plan.batch_size; return (loss sum, correct, step,
    solo_from): solo_from is the first batch run on one thread because the team was slowed, or -1.

    Stops at the first batch whose loss is not finite (before its update) and returns that loss.
    """
    return run_epoch(plan, X, T, order, theta, state1, state2, lr, step, threads, start_loss, NULL)


def network_epoch(plan, const floating[:, ::1] X, const floating[:, ::1] T, const int64_t[::1] order,
                  floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step,
                  int threads, double start_loss=0.0):
    # IN plan (fastnn.functional.NetworkPlan), X (N, H*W*C) images, the rest as mlp_epoch's; IN/OUT as
    # mlp_epoch's, and the plan's iwork and dwork
    """mlp_epoch for a convolutional network: conv and pool layers, a flatten, dense layers."""
    cdef const int64_t[:, ::1] stack = plan.stack
    cdef const int64_t[::1] geom = plan.geometry
    cdef int32_t[::1] iwork = plan.iwork
    cdef double[::1] dwork = plan.dwork
    cdef Net net
    net.n_stack = <int>stack.shape[0]
    net.stack = &stack[0, 0] if stack.shape[0] else NULL
    net.geom = &geom[0] if geom.shape[0] else NULL
    net.iwork = &iwork[0] if iwork.shape[0] else NULL
    net.dwork = &dwork[0] if dwork.shape[0] else NULL
    net.part_stride = plan.part_stride
    net.conv_end = plan.conv_end
    net.block = max(1, plan.block)
    net.keep_cols = bool(plan.keep_cols)
    return run_epoch(plan, X, T, order, theta, state1, state2, lr, step, threads, start_loss, &net)


cdef object run_epoch(plan, const floating[:, ::1] X, const floating[:, ::1] T, const int64_t[::1] order,
                      floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step,
                      int threads, double start_loss, Net* net):
    cdef const int64_t[:, ::1] layers = plan.layers
    cdef const int64_t[::1] offsets = plan.offsets
    cdef floating[::1] work = plan.work
    cdef floating[::1] grad = plan.grad
    cdef double[::1] timing = plan.timing
    cdef Epoch e
    cdef Team t
    e.layers = &layers[0, 0]
    e.offsets = &offsets[0]
    e.n_layers = <int>layers.shape[0]
    e.batch = plan.batch_size
    e.loss = plan.loss_code
    e.opt = plan.optimizer_code
    e.hyper.lr = lr
    e.hyper.mu = plan.mu
    e.hyper.beta2 = plan.beta2
    e.hyper.eps = plan.eps
    e.hyper.wd = plan.weight_decay
    e.work = <char*>&work[0]
    e.theta = <char*>&theta[0]
    e.grad = <char*>&grad[0] if grad.shape[0] else NULL
    e.s1 = <char*>&state1[0] if state1.shape[0] else NULL
    e.s2 = <char*>&state2[0] if state2.shape[0] else NULL
    e.n_params = theta.shape[0]
    e.X = <const char*>&X[0, 0] if X.shape[0] else NULL
    e.T = <const char*>&T[0, 0] if T.shape[0] else NULL
    e.order = &order[0] if order.shape[0] else NULL
    e.N = order.shape[0]
    e.d = X.shape[1]
    e.c = T.shape[1]
    e.step = step
    e.bar.count = 0
    e.bar.gen = 0
    e.spin = _barrier_spin
    e.timing = &timing[0]
    e.solo_from = order.shape[0] + 1
    e.total = start_loss
    e.correct = 0
    e.bad_loss = 0.0
    e.stop = 0
    e.stopped_at = -1
    e.net = net
    threads = min(threads, 2)  # two parts per product: a third thread would only wait at the barriers
    with nogil:
        if threads > 1:
            with parallel(num_threads=threads):
                team_start(&e, &theta[0])
        else:
            t.tid = 0
            t.nth = 1
            t.pending = 0
            team_epoch(&t, &e, &theta[0])
    solo = e.solo_from if e.solo_from <= order.shape[0] else -1
    return (e.bad_loss if e.stop else e.total), e.correct, e.step, solo


# ------------------------------------------------------------------------ convolution
#
# The batch is processed in chunks of images (the im2col workspace holds one chunk), each chunk cut in two
# parts by images (``part_range``) that run on two threads, or one after the other on one: the same parts
# either way, so one thread and two give the same numbers.

cdef inline int part_threads(double flops) noexcept nogil:
    return 2 if _threads > 1 and flops >= _split_min_flops else 1


cdef void conv_forward_piece(const floating* X, Py_ssize_t c0, Py_ssize_t cn, int p, const ConvGeom* g,
                             const floating* W, const floating* b, int act, floating* cols, floating* pre,
                             floating* post) noexcept nogil:
    cdef Py_ssize_t lo, n, rows0
    part_range(c0, cn, p, &lo, &n)
    rows0 = lo * g.out_pixels
    conv_forward_part(X + lo * g.in_size, n, g, W, b, act,
                      cols + (lo - c0) * g.out_pixels * g.K if cols != NULL else NULL,
                      pre + rows0 * g.F, post + rows0 * g.F)


def conv2d_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b, int act,
                   const int64_t[::1] geom, floating[:, ::1] cols, floating[:, ::1] pre_out,
                   floating[:, ::1] post_out):
    # IN X (N, H*W*C), W (K, F), b (F,), act (not softmax), geom (N_GEOM,); OUT cols: workspace of
    # (chunk*OH*OW, K) rows (its row count sets the chunk; 0 rows for a pointwise conv), pre_out and
    # post_out (N*OH*OW, F)
    """pre = im2col(X) @ W + b, post = act(pre), chunk by chunk, each chunk's images in two parts."""
    cdef ConvGeom g = conv_geom(&geom[0])
    cdef Py_ssize_t N = X.shape[0], chunk, c0 = 0, cn
    cdef floating* cw = &cols[0, 0] if cols.shape[0] and cols.shape[1] else NULL
    cdef int p, nth
    if N == 0 or g.out_pixels == 0 or g.F == 0:
        return
    chunk = N if cw == NULL else max(1, cols.shape[0] // g.out_pixels)
    with nogil:
        while c0 < N:
            cn = min(chunk, N - c0)
            nth = part_threads(2.0 * cn * g.out_pixels * g.K * g.F)
            if nth > 1:
                for p in prange(2, num_threads=2, schedule="static", chunksize=1):
                    conv_forward_piece(&X[0, 0], c0, cn, p, &g, &W[0, 0], &b[0], act, cw, &pre_out[0, 0],
                                       &post_out[0, 0])
            else:
                for p in range(2):
                    conv_forward_piece(&X[0, 0], c0, cn, p, &g, &W[0, 0], &b[0], act, cw, &pre_out[0, 0],
                                       &post_out[0, 0])
            c0 += cn


cdef void conv_backward_piece(const floating* delta, const floating* post, const floating* X, Py_ssize_t c0,
                              Py_ssize_t cn, int p, const ConvGeom* g, const floating* W, int act,
                              floating* cols, floating* dpre, floating* gW, floating* gW_part, double* sums,
                              floating* gX) noexcept nogil:
    cdef Py_ssize_t lo, n, rows0
    cdef floating* c
    part_range(c0, cn, p, &lo, &n)
    rows0 = lo * g.out_pixels
    if conv_is_pointwise(g):
        c = <floating*>(X + lo * g.in_size)  # read only: a pointwise conv writes gX directly
    else:
        c = cols + (lo - c0) * g.out_pixels * g.K
        im2col(X + lo * g.in_size, n, g, c)
    conv_backward_part(delta + rows0 * g.F, post + rows0 * g.F, c, n, g, W, act,
                       dpre + (lo - c0) * g.out_pixels * g.F, gW if p == 0 else gW_part, 1.0,
                       1.0 if p == 0 and c0 > 0 else 0.0, sums + p * g.F, False,
                       gX + lo * g.in_size if gX != NULL else NULL)


def conv2d_backward(const floating[:, ::1] delta, const floating[:, ::1] post, const floating[:, ::1] X,
                    const floating[:, ::1] W, int act, const int64_t[::1] geom, floating[:, ::1] cols,
                    floating[:, ::1] dpre, floating[:, ::1] gW_part, double[::1] sums, floating[:, ::1] gW_out,
                    floating[::1] gb_out, floating[:, ::1] gX_out, bint need_gx):
    # IN delta, post (N*OH*OW, F), X (N, H*W*C), W (K, F), act, geom, need_gx; workspaces: cols
    # (chunk*OH*OW, K) (0 rows for a pointwise conv), dpre (chunk*OH*OW, F), gW_part (K, F), sums (3F,)
    # float64; OUT gW_out (K, F), gb_out (F,), gX_out (N, H*W*C) when need_gx
    """A convolution's weight, bias and (optionally) input gradients, chunk by chunk in two parts each;
    part 1's weight gradient is added to part 0's after each chunk, the bias sums in float64."""
    cdef ConvGeom g = conv_geom(&geom[0])
    cdef Py_ssize_t N = X.shape[0], chunk, c0 = 0, cn, j, i
    cdef Py_ssize_t KF = g.K * g.F
    cdef floating* cw = &cols[0, 0] if cols.shape[0] and cols.shape[1] else NULL
    cdef floating* gx = &gX_out[0, 0] if need_gx and gX_out.shape[0] and gX_out.shape[1] else NULL
    cdef floating* gw = &gW_out[0, 0]
    cdef floating* gp = &gW_part[0, 0]
    cdef double* acc = &sums[2 * g.F]
    cdef int p, nth
    chunk = max(1, dpre.shape[0] // g.out_pixels)
    with nogil:
        for j in range(g.F):
            acc[j] = 0.0
        while c0 < N:
            cn = min(chunk, N - c0)
            nth = part_threads(2.0 * cn * g.out_pixels * g.K * g.F * (2 if gx != NULL else 1))
            if nth > 1:
                for p in prange(2, num_threads=2, schedule="static", chunksize=1):
                    conv_backward_piece(&delta[0, 0], &post[0, 0], &X[0, 0], c0, cn, p, &g, &W[0, 0], act, cw,
                                        &dpre[0, 0], gw, gp, &sums[0], gx)
            else:
                for p in range(2):
                    conv_backward_piece(&delta[0, 0], &post[0, 0], &X[0, 0], c0, cn, p, &g, &W[0, 0], act, cw,
                                        &dpre[0, 0], gw, gp, &sums[0], gx)
            for i in range(KF):
                gw[i] = gw[i] + gp[i]
            for j in range(g.F):
                acc[j] = acc[j] + sums[j] + sums[g.F + j]
            c0 += cn
        for j in range(g.F):
            gb_out[j] = <floating>acc[j]


cdef void pool_forward_piece(const floating* X, Py_ssize_t N, int p, const int64_t* pg, floating* Y,
                             int32_t* arg) noexcept nogil:
    cdef Py_ssize_t lo, n, out_size = pg[P_OH] * pg[P_OW] * pg[P_C]
    part_range(0, N, p, &lo, &n)
    maxpool_forward_part(X + lo * pg[P_H] * pg[P_W] * pg[P_C], n, pg, Y + lo * out_size, arg + lo * out_size)


def max_pool2d_forward(const floating[:, ::1] X, const int64_t[::1] pgeom, floating[:, ::1] Y_out,
                       int32_t[:, ::1] arg_out):
    # IN X (N, H*W*C), pgeom (N_PGEOM,); OUT Y_out (N, OH*OW*C), arg_out (N, OH*OW*C)
    """Max-pooling over non-overlapping windows, keeping each maximum's index inside its image."""
    cdef Py_ssize_t N = X.shape[0]
    cdef int p
    if N == 0 or Y_out.shape[1] == 0:
        return
    with nogil:
        if part_threads(4.0 * X.shape[0] * X.shape[1]) > 1:
            for p in prange(2, num_threads=2, schedule="static", chunksize=1):
                pool_forward_piece(&X[0, 0], N, p, &pgeom[0], &Y_out[0, 0], &arg_out[0, 0])
        else:
            for p in range(2):
                pool_forward_piece(&X[0, 0], N, p, &pgeom[0], &Y_out[0, 0], &arg_out[0, 0])


def max_pool2d_backward(const floating[:, ::1] dY, const int32_t[:, ::1] arg, const int64_t[::1] pgeom,
                        floating[:, ::1] dX_out):
    # IN dY (N, OH*OW*C), arg (N, OH*OW*C) from the forward, pgeom; OUT dX_out (N, H*W*C)
    """Each output's gradient routed to the input that was its maximum, zero elsewhere."""
    cdef Py_ssize_t N = dX_out.shape[0]
    if N == 0 or dX_out.shape[1] == 0:
        return
    with nogil:
        maxpool_backward_part(&dY[0, 0] if dY.shape[1] else NULL, &arg[0, 0] if dY.shape[1] else NULL, N,
                              &pgeom[0], &dX_out[0, 0])

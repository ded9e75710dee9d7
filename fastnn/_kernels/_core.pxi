# fastnn's compiled core (Cython, with its own thread team), built ahead of time when the package is
# installed, once for each x86-64 level (the ``_fastnn_core_*.pyx`` files beside this one each include this
# file; fastnn._kernels loads the one the CPU runs best).
#
# Kernels never validate and never allocate arrays: they take inputs and ``*_out`` buffers and fill the
# outputs (``fastnn.functional`` is the validated layer above).  The code is split by concern into the
# ``.pxi`` files beside this one, which are compiled into one extension so that every kernel can inline
# the scalar math:
#
# * ``_team.h``: the thread team (pthreads), fork-safe, and the Ctrl-C flag;
# * ``_math.pxi``: float32 exp/tanh, activations, derivatives, softmax, bias sums;
# * ``_blas.pxi`` and ``_small.h``: the matrix products and how a large one is cut into parts for the team;
# * ``_losses.pxi``: the fused losses; ``_optim.pxi``: the optimizer updates;
# * ``_epoch.pxi``: a whole training epoch as one job of the team;
# * ``_conv.pxi``: convolution (im2col + one product) and max-pooling on NHWC images;
# * ``_conv_epoch.pxi``: a convolutional network's epoch, in the same job as the dense one.
#
# All parallelism is the team's; the matrix products run on a private single-threaded OpenBLAS, or, when
# small (``_small.h``), on the core's own loop.

from cython cimport floating
from libc.math cimport exp, fabs, isfinite, log, log1p, pow, sqrt, tanh
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cpython.exc cimport PyErr_CheckSignals
from posix.unistd cimport usleep

import numpy as np

cdef extern from "<math.h>" nogil:
    float sqrtf(float x)

cdef extern from "_team.h" nogil:
    ctypedef struct fnn_event_t:
        uint32_t value
        int32_t sleepers
    ctypedef void (*fnn_part_fn)(void* arg, uint32_t part, int slot) noexcept nogil
    ctypedef struct fnn_team_state "struct fnn_team_s":
        int n_workers
        int size
        int cpus
        long spin
        long spin_oversubscribed
        double yield_s
        double pauses_per_us
        unsigned long jobs
    fnn_team_state fnn_team
    int FNN_MAX_THREADS
    double fnn_now()
    uint32_t fnn_event_get(fnn_event_t* e)
    void fnn_event_add(fnn_event_t* e, uint32_t n)
    void fnn_event_set(fnn_event_t* e, uint32_t v)
    double fnn_event_wait(fnn_event_t* e, uint32_t target, long spin, double yield_s, int timed)
    int fnn_claim(uint32_t* counter, uint32_t limit, uint32_t* index)
    int fnn_reached(uint32_t value, uint32_t target)
    int fnn_load_int(int* p)
    void fnn_store_int(int* p, int v)
    void fnn_team_run(fnn_part_fn fn, void* arg, uint32_t parts, int threads)
    void fnn_team_init(double spin_us, double yield_us, double spin_oversubscribed_us)
    int fnn_get_num_threads()
    int fnn_set_num_threads(int n)
    int fnn_team_grow(int n)
    int fnn_watch_sigint()
    void fnn_unwatch_sigint()
    void fnn_set_interrupted(int v)
    int fnn_get_interrupted()
    int fnn_interrupted
    const char* FNN_LEVEL

include "_math.pxi"
include "_blas.pxi"
include "_losses.pxi"
include "_optim.pxi"
include "_dropout.pxi"
include "_norm.pxi"
include "_epoch.pxi"
include "_conv.pxi"
include "_conv_epoch.pxi"

#: Activation codes (the kernels take them as plain integers), name -> code.
ACTIVATIONS = {"linear": ACT_LINEAR, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH, "relu": ACT_RELU,
               "softmax": ACT_SOFTMAX}
#: Optimizer codes, name -> code.
OPTIMIZERS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "nesterov": OPT_NESTEROV, "adam": OPT_ADAM,
              "adamw": OPT_ADAMW}
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
#: Entries of an average-pooling's geometry vector (a global one's window is the whole image).
AVGPOOL_GEOMETRY = ("H", "W", "C", "KH", "KW", "OH", "OW")
#: A network plan's stack table columns and its workspace offsets beyond WORK_OFFSETS.
STACK_COLUMNS = ("kind", "in_size", "out_size", "w_off", "b_off", "act", "out_off", "cols_off", "geom_off",
                 "gpart_off", "sums_off", "pre_off")
STACK_KINDS = {"conv": KIND_CONV, "pool": KIND_POOL, "avgpool": KIND_AVGPOOL, "dropout": KIND_DROPOUT,
               "batchnorm": KIND_BNORM}
#: Columns of a network plan's table of the BatchNorm after each dense layer (``dense_bnorm``).
DENSE_BNORM_COLUMNS = ("out_off", "gamma_off", "beta_off", "stats_off", "running_off")
#: Registered activations (fastnn.register_activation) have the codes USER_ACTIVATION_BASE + slot, slot in
#: [0, MAX_USER_ACTIVATIONS); a derivative kernel takes their pre-activation where it takes a built-in's
#: post-activation.
USER_ACTIVATION_BASE = ACT_USER
MAX_USER_ACTIVATIONS = MAX_USER_ACTS
NET_WORK_OFFSETS = WORK_OFFSETS + ("dtop", "ga", "gb")

#: The x86-64 level this copy of the core was compiled for ('x86-64-v2', 'x86-64-v3', 'x86-64-v4', or
#: 'x86-64' / 'generic' for a build with other flags).
LEVEL = FNN_LEVEL.decode()
#: The largest team (threads, the caller included).
MAX_THREADS = FNN_MAX_THREADS

# Elements of an element-wise step (an optimizer update) per part; set by ``configure``.
cdef Py_ssize_t _vector_part = 16384
# At most this many parts of a chunk of images outside the epoch (each needs a weight-gradient block).
cdef int _max_image_parts = 16


def _test_lag(unsigned int microseconds, unsigned int in_parts=0):
    """Tests only: make the epoch's roles other than 0 sleep after each batch (0: off), so that role 0 runs
    ahead into the next batch as a descheduled partner would let it, and ``in_parts`` microseconds inside
    each product part they take, as a partner descheduled while it holds a part would (role 0 then takes no
    product part while other roles work, so that it waits however the machine schedules them); return the
    previous settings."""
    global _test_lag_us, _test_part_lag_us
    old = (_test_lag_us, _test_part_lag_us)
    _test_lag_us = microseconds
    _test_part_lag_us = in_parts
    return old


def direct_products():
    """Which small products this copy of the core runs with its own loop (``_small.h``) rather than BLAS,
    among those whose B holds at most ``fastnn._config.PARTS["direct_bytes"]``: 'all' (the AVX-512 copy),
    'few rows' (a prediction's one or two rows; the other copies) or 'none' (``direct_bytes`` 0)."""
    if _direct_bytes <= 0 or _direct_mode == DIRECT_NONE:
        return "none"
    return "all" if _direct_mode == DIRECT_ALL else "few rows"


def _test_direct(int mode):
    """Tests only: run small products with the core's own loop (1: all, 2: of few rows) or BLAS (0), or as
    this copy chooses (-1); return the previous mode."""
    global _direct_mode
    old = _direct_mode
    _direct_mode = (DIRECT_ALL if FNN_SMALL_FAST else DIRECT_FEW) if mode < 0 else mode
    return old


def _test_interrupt(int flag):
    """Tests only: set the Ctrl-C flag that a watched SIGINT sets (the epoch reads it between batches)."""
    fnn_set_interrupted(flag)


# ------------------------------------------------------------------------ configuration

def configure(size_t sgemm, size_t dgemm, size_t get_threads, size_t set_threads, dict parts, double spin_us,
              double yield_us, double spin_oversubscribed_us):
    """Point the products at cblas_sgemm / cblas_dgemm and the BLAS's get / set thread count functions
    (addresses; the BLAS is kept on one thread); set how work is cut into parts
    (``parts``: split_min_flops, part_flops, max_parts, max_k_parts, min_rows, min_cols, min_k, vector_part,
    max_image_parts, direct_bytes)
    and how long a waiting thread spins, then yields, before it sleeps (microseconds; and its spin when a
    job has more threads than the CPUs the process may use)."""
    global _sgemm, _dgemm, _split_min_flops, _part_flops, _max_parts, _max_k_parts, _part_min_rows, _part_min_cols, _part_min_k
    global _vector_part, _max_image_parts, _direct_bytes, _direct_mode
    global _blas_get_threads, _blas_set_threads
    _sgemm = <sgemm_t>sgemm
    _dgemm = <dgemm_t>dgemm
    _blas_get_threads = <blas_get_threads_t>get_threads
    _blas_set_threads = <blas_set_threads_t>set_threads
    _split_min_flops = float(parts["split_min_flops"])
    _part_flops = float(parts["part_flops"])
    _max_parts = int(parts["max_parts"])
    _max_k_parts = int(parts["max_k_parts"])
    _part_min_rows = int(parts["min_rows"])
    _part_min_cols = int(parts["min_cols"])
    _part_min_k = int(parts["min_k"])
    _vector_part = int(parts["vector_part"])
    _max_image_parts = int(parts["max_image_parts"])
    _direct_bytes = float(parts["direct_bytes"])
    _direct_mode = DIRECT_ALL if FNN_SMALL_FAST else DIRECT_FEW
    fnn_team_init(spin_us, yield_us, spin_oversubscribed_us)


def set_user_activation(int slot, size_t f32, size_t d32, size_t f64, size_t d64):
    """Point the registered activation ``USER_ACTIVATION_BASE + slot`` at compiled scalar functions: the
    addresses of C functions float(float) and double(double) (the activation and its derivative, both of the
    pre-activation), which the kernels call from any thread with the GIL released.  Called under the GIL,
    before any kernel is given the code; the functions must stay alive for the life of the process."""
    if slot < 0 or slot >= MAX_USER_ACTS:
        raise ValueError(f"slot: expected 0 to {MAX_USER_ACTS - 1}, got {slot}")
    if not (f32 and d32 and f64 and d64):
        raise ValueError("set_user_activation: every address must be a compiled function (not 0)")
    _user_f32[slot] = <user_fn32>f32
    _user_d32[slot] = <user_fn32>d32
    _user_f64[slot] = <user_fn64>f64
    _user_d64[slot] = <user_fn64>d64


def get_num_threads():
    """The team size in use: threads a kernel's parts may run on, the calling thread included."""
    return fnn_get_num_threads()


def set_num_threads(int n):
    """Set the team size (1 to MAX_THREADS); return the previous setting."""
    if n < 1 or n > FNN_MAX_THREADS:
        raise ValueError(f"threads: expected an integer from 1 to {FNN_MAX_THREADS}, got {n}")
    return fnn_set_num_threads(n)


def set_cpus(int n):
    """Tell the team how many CPUs the process may use (waits spin only briefly in a larger team, and an epoch
    starts no more threads); return the previous value."""
    old = fnn_team.cpus
    fnn_team.cpus = max(1, n)
    return old


def get_cpus():
    """The CPUs the process may use, as the team was told (fastnn._kernels.CPUS at import)."""
    return fnn_team.cpus


def team_info():
    """The team's state: workers started in this process, jobs run with helpers, the team size, the CPUs,
    and the spins (pauses) of a wait."""
    return {"workers": fnn_team.n_workers, "jobs": fnn_team.jobs, "size": fnn_team.size, "cpus": fnn_team.cpus,
            "spin": fnn_team.spin, "spin_oversubscribed": fnn_team.spin_oversubscribed, "yield_s": fnn_team.yield_s,
            "pauses_per_us": fnn_team.pauses_per_us}


def split_of_product(int m, int k, int n):
    """How an (m, k) @ (k, n) product is cut for the team: ('none' | 'rows' | 'cols' | 'k', parts)."""
    cdef Split s = split_of(m, k, n)
    return SPLITS[s.kind], s.parts


def split_kind_of(int m, int k, int n):
    """How an (m, k) @ (k, n) product is cut for the team: 'none', 'rows', 'cols' or 'k'."""
    return SPLITS[split_of(m, k, n).kind]


def vector_parts_of(Py_ssize_t n):
    """Parts of an element-wise step over n values (an optimizer update, a sum of weight gradients)."""
    return vector_parts(n)


def rows_parts_of(Py_ssize_t n, Py_ssize_t m):
    """Parts of a row-wise step of the epoch over n rows of m values (bias and activation, the loss, which has
    at most MAX_LOSS_PARTS)."""
    return rows_parts(n, m)


def column_parts_of(Py_ssize_t n, Py_ssize_t m):
    """Parts of the epoch's column sums (a bias gradient) over n rows of m columns."""
    return column_parts(n, m)


def loss_parts_of(Py_ssize_t n, Py_ssize_t m):
    """Parts of the epoch's fused loss over n rows of m outputs."""
    return <int>min(<Py_ssize_t>rows_parts(n, m), <Py_ssize_t>MAX_LOSS_PARTS)


def conv_parts_of(Py_ssize_t images, double flops):
    """Parts of a chunk of ``images`` images whose convolution costs ``flops`` in all, outside the epoch."""
    return conv_parts(images, flops)


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


# ------------------------------------------------------------------------------- kernels

def gemm(const floating[:, :] A, const floating[:, :] B, floating[:, ::1] C, double alpha=1.0,
         double beta=0.0):
    # IN A (m, k), B (k, n) with one unit stride each; IN/OUT C (m, n)
    """C = alpha A @ B + beta C; a large product is cut into parts that the team shares."""
    cdef Mat a = mat_of(A), b = mat_of(B), c = mat_of[floating](C)
    cdef int rc, threads = fnn_get_num_threads()
    with nogil:
        rc = gemm_team(a, b, c, alpha, beta, threads)
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
    # IN A (n, m) post-activation (a registered activation: the pre-activation), act code; OUT D_out (n, m)
    """D_out = act'(pre) from the post-activation (sigmoid A(1-A), tanh 1-A^2, relu A>0, linear 1); a
    registered activation's derivative from the pre-activation."""
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
    cdef int rc, threads = fnn_get_num_threads()
    if pre_out.shape[0] == 0 or pre_out.shape[1] == 0:
        return
    with nogil:
        rc = gemm_team(x, w, p, 1.0, 0.0, threads)
        if rc == 0:
            bias_activate(&pre_out[0, 0], &b[0], pre_out.shape[0], pre_out.shape[1], act, &post_out[0, 0])
    if rc:
        raise MemoryError("dense_forward: no memory for the split product's scratch")


def dense_stack_forward(const floating[:, ::1] X, const floating[::1] theta, const int64_t[:, ::1] table,
                        floating[::1] work, floating[:, ::1] out, bint logits=False, bint check_finite=False):
    # IN X (n, table[0, 0]), theta (P,), table (L, 5): per layer n_in, n_out, w_off, b_off, act code;
    # scratch work (at least 2 * n * the widest hidden layer); OUT out (n, table[L - 1, 1])
    """A dense network's forward in one call: each layer's product (cut into parts for the thread team when
    large), bias and activation; ``out`` gets the last layer's output, or its pre-activation with ``logits``.
    The same kernels as ``dense_forward`` layer by layer, so the same numbers.  With ``check_finite``, X is
    checked first (a prediction's one pass over its input, instead of NumPy's): False, and nothing computed,
    when it holds NaN or inf; True otherwise."""
    cdef Py_ssize_t n = X.shape[0], L = table.shape[0], l, k, m, width = 0
    cdef int rc = 0, act, threads = fnn_get_num_threads(), isz = sizeof(floating)
    cdef bint finite
    cdef Mat inp
    cdef floating* dst
    if L == 0 or table.shape[1] != 5 or X.shape[1] != table[0, 0] or out.shape[0] != n \
            or out.shape[1] != table[L - 1, 1]:
        raise ValueError("dense_stack_forward: X, table and out do not agree")
    for l in range(L):
        if (l and table[l, 0] != table[l - 1, 1]) or table[l, 2] < 0 or table[l, 3] < 0 or \
                table[l, 2] + table[l, 0] * table[l, 1] > theta.shape[0] or table[l, 3] + table[l, 1] > theta.shape[0]:
            raise ValueError(f"dense_stack_forward: table row {l} does not fit theta or the layer before")
        if l < L - 1:
            width = max(width, table[l, 1])
    if work.shape[0] < 2 * n * width:
        raise ValueError("dense_stack_forward: work is smaller than 2 * n * the widest hidden layer")
    if n == 0:
        return True
    if check_finite:
        with nogil:
            finite = all_finite_values(&X[0, 0], n * X.shape[1])
        if not finite:
            return False
    with nogil:
        inp = mat(<void*>&X[0, 0], <int>n, <int>X.shape[1], isz)
        for l in range(L):
            k = table[l, 0]
            m = table[l, 1]
            dst = &out[0, 0] if l == L - 1 else &work[0] + (l % 2) * n * width
            rc = gemm_team(inp, mat(<void*>(&theta[0] + table[l, 2]), <int>k, <int>m, isz),
                            mat(dst, <int>n, <int>m, isz), 1.0, 0.0, threads)
            if rc:
                break
            act = <int>table[l, 4]
            if l == L - 1 and logits:
                act = ACT_LINEAR
            bias_activate(dst, &theta[0] + table[l, 3], n, m, act, dst)
            inp = mat(dst, <int>n, <int>m, isz)
    if rc:
        raise MemoryError("dense_stack_forward: no memory for the split product's scratch")
    return True


def dense_backward(const floating[:, ::1] delta, const floating[:, ::1] A, const floating[:, :] X,
                   const floating[:, :] W, int act, floating[:, ::1] dpre_out, floating[:, ::1] gW_out,
                   floating[::1] gb_out, floating[:, ::1] gX_out, bint need_gx):
    # IN delta (n, m) = dJ/d(post), A (n, m) post-activation (a registered activation: the pre-activation),
    # X (n, k), W (k, m), act, need_gx;
    # OUT dpre_out (n, m), gW_out (k, m), gb_out (m,), gX_out (n, k) when need_gx
    """grad_W = X.T @ (delta * act'(A)), grad_b (float64 sums), grad_X = (delta * act'(A)) @ W.T, fused."""
    cdef Py_ssize_t n = delta.shape[0], m = delta.shape[1]
    cdef Mat x = mat_of(X), w = mat_of(W), d = mat_of[floating](dpre_out), gw = mat_of[floating](gW_out)
    cdef Mat gx
    cdef int rc = 0, threads = fnn_get_num_threads()
    if need_gx:
        gx = mat_of[floating](gX_out)
    with nogil:
        delta_pre_flat(&delta[0, 0], &A[0, 0], n * m, act, &dpre_out[0, 0])
        rc = gemm_team(transpose(x), d, gw, 1.0, 0.0, threads)
        column_sums_update(&dpre_out[0, 0], n, m, &gb_out[0], 0.0, 0.0, False)
        if need_gx and rc == 0:
            rc = gemm_team(d, transpose(w), gx, 1.0, 0.0, threads)
    if rc:
        raise MemoryError("dense_backward: no memory for the split product's scratch")


cdef inline const double* weights_of(const double[::1] w) noexcept:
    """The row weights' address, or NULL for None (every row 1)."""
    return &w[0] if w is not None and w.shape[0] else NULL


def softmax_cross_entropy_onehot(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P_out,
                                 floating[:, ::1] D_out, const double[::1] weights=None, double scale=1.0):
    # IN Z (n, c) logits, Y (n, c) one-hot (or soft), weights (n,) row weights or None, scale; OUT P_out (n, c)
    # probs, D_out (n, c) = (P - Y) weights scale
    """Return (summed (weighted) cross-entropy, rows whose argmax matches Y's argmax)."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    cdef const double* w = weights_of(weights)
    with nogil:
        loss = softmax_ce_onehot(&Z[0, 0], &Y[0, 0], Z.shape[0], Z.shape[1], &P_out[0, 0], &D_out[0, 0], &correct,
                                 w, scale)
    return loss, correct


def softmax_cross_entropy_index(const floating[:, ::1] Z, const int64_t[::1] labels, floating[:, ::1] P_out,
                                floating[:, ::1] D_out, const double[::1] weights=None, double scale=1.0):
    # IN Z (n, c) logits, labels (n,) class indices in [0, c), weights (n,) or None, scale; OUT P_out,
    # D_out (n, c) = (P - onehot) weights scale
    """Return (summed (weighted) cross-entropy, rows whose argmax equals the label)."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    cdef const double* w = weights_of(weights)
    with nogil:
        loss = softmax_ce_index(&Z[0, 0], &labels[0], Z.shape[0], Z.shape[1], &P_out[0, 0], &D_out[0, 0],
                                &correct, w, scale)
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
                                 floating[:, ::1] D_out, const double[::1] weights=None, double scale=1.0):
    # IN Z (n, 1) logits, Y (n, 1) targets in {0, 1}, weights (n,) or None, scale; OUT P_out = sigmoid(Z),
    # D_out = (P - Y) weights scale
    """Return (summed (weighted) binary cross-entropy, rows with (P >= 0.5) == (Y >= 0.5))."""
    cdef Py_ssize_t correct = 0
    cdef double loss
    cdef const double* w = weights_of(weights)
    with nogil:
        loss = sigmoid_bce(&Z[0, 0], &Y[0, 0], Z.shape[0], Z.shape[1], &P_out[0, 0], &D_out[0, 0], &correct, w,
                           scale)
    return loss, correct


def squared_error(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] D_out,
                  const double[::1] weights=None, double scale=1.0):
    # IN P (n, m) predictions, Y (n, m) targets, weights (n,) row weights or None, scale; OUT D_out (n, m) =
    # 2 (P - Y) weights scale
    """Return the total (weighted) squared error sum(weights (P - Y)^2)."""
    cdef double loss
    cdef const double* w = weights_of(weights)
    with nogil:
        loss = squared_error_sum(&P[0, 0], &Y[0, 0], P.shape[0], P.shape[1], &D_out[0, 0], w, scale)
    return loss


ctypedef struct UpdateJob:
    int kind
    long step
    Py_ssize_t n
    int parts
    int itemsize
    Hyper h
    char* p
    char* g
    char* s1
    char* s2


cdef void update_part(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef UpdateJob* j = <UpdateJob*>arg
    cdef Py_ssize_t lo = vector_bound(j.n, j.parts, <int>part), hi = vector_bound(j.n, j.parts, <int>part + 1)
    if j.itemsize == 4:
        optimizer_range(j.kind, <float*>j.p, <float*>j.g, <float*>j.s1, <float*>j.s2, lo, hi, j.h, j.step)
    else:
        optimizer_range(j.kind, <double*>j.p, <double*>j.g, <double*>j.s1, <double*>j.s2, lo, hi, j.h, j.step)


def update(int kind, floating[::1] p, const floating[::1] g, floating[::1] s1, floating[::1] s2, double lr,
           double mu, double beta2, double eps, double weight_decay, long step):
    # IN kind (optimizer code), g (P,), lr, mu (momentum or beta1), beta2, eps, weight_decay, step (from 1);
    # IN/OUT p (P,), s1 (momentum buffer or Adam's m), s2 (Adam's v; unused otherwise)
    """One update of every value of p by the optimizer ``kind``, in parts of p that the team shares."""
    cdef UpdateJob j
    cdef int threads = fnn_get_num_threads()
    if p.shape[0] == 0:
        return
    j.kind, j.step, j.n, j.itemsize = kind, step, p.shape[0], sizeof(floating)
    j.h.lr, j.h.mu, j.h.beta2, j.h.eps, j.h.wd = lr, mu, beta2, eps, weight_decay
    j.p, j.g = <char*>&p[0], <char*>&g[0]
    j.s1 = <char*>&s1[0] if s1.shape[0] else NULL
    j.s2 = <char*>&s2[0] if s2.shape[0] else NULL
    j.parts = vector_parts(j.n)
    with nogil:
        fnn_team_run(update_part, &j, j.parts, threads)


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
              floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step, int roles,
              double start_loss=0.0, bint watch_interrupt=False, const double[::1] weights=None,
              double[::1] weight_work=None, const double[::1] lrs=None, bint mean=False, uint64_t seed=0):
    # IN plan (fastnn.functional.EpochPlan), X (N, d), T (N, c), order (n,) rows of X, lr, step (updates so
    # far), roles (threads), start_loss (the loss sum so far), watch_interrupt (Python's main thread: stop
    # after the batch during which SIGINT arrives), weights (N,) row weights of X or None, lrs (at least one
    # rate per batch of order) or None: lr for every batch, mean (divide each batch's gradient by its rows);
    # IN/OUT theta (P,), state1, state2 (optimizer buffers), the plan's work, grad and timing, weight_work
    # (2 * batch_size,) with weights
    """Train one epoch over ``order`` in batches of plan.batch_size; return (loss sum, correct, step,
    reduced_from, batches, roles): reduced_from is the first batch run by fewer threads because the team was
    slowed (-1: none), batches the batches done, roles the threads at work at the end.

    Stops at the first batch whose loss is not finite (before its update) and returns that loss; with
    ``watch_interrupt``, stops after the batch during which Ctrl-C was pressed (Python then raises
    KeyboardInterrupt as soon as the call returns).
    """
    cdef double[::1] no_running = None
    return run_epoch(plan, X, T, order, theta, state1, state2, lr, step, roles, start_loss, watch_interrupt, NULL,
                     weights, weight_work, lrs, mean, seed, no_running)


def network_epoch(plan, const floating[:, ::1] X, const floating[:, ::1] T, const int64_t[::1] order,
                  floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step,
                  int roles, double start_loss=0.0, bint watch_interrupt=False, const double[::1] weights=None,
                  double[::1] weight_work=None, const double[::1] lrs=None, bint mean=False, uint64_t seed=0,
                  double[::1] running=None):
    # IN plan (fastnn.functional.NetworkPlan), X (N, H*W*C) images, seed (of the Dropout masks), the rest as
    # mlp_epoch's; IN/OUT as mlp_epoch's, the plan's iwork, dwork and rwork (room for ``roles`` roles'
    # im2col blocks), and running (plan.running_size,): the BatchNorm layers' running statistics
    """mlp_epoch for a network: conv, pool, BatchNorm and Dropout layers, a flatten, dense layers."""
    cdef const int64_t[:, ::1] stack = plan.stack
    cdef const int64_t[::1] geom = plan.geometry
    cdef int32_t[::1] iwork = plan.iwork
    cdef double[::1] dwork = plan.dwork
    cdef floating[::1] rwork = plan.role_work(roles)
    cdef const double[:, ::1] rates = plan.stack_rates
    cdef Net net
    net.n_stack = <int>stack.shape[0]
    net.stack = &stack[0, 0] if stack.shape[0] else NULL
    net.geom = &geom[0] if geom.shape[0] else NULL
    net.iwork = &iwork[0] if iwork.shape[0] else NULL
    net.dwork = &dwork[0] if dwork.shape[0] else NULL
    net.rwork = <char*>&rwork[0] if rwork.shape[0] else NULL
    net.role_stride = plan.role_stride
    net.part_stride = plan.part_stride
    net.conv_end = plan.conv_end
    net.block = max(1, plan.block)
    net.part_images = max(1, plan.part_images)
    net.keep_cols = bool(plan.keep_cols)
    net.rates = &rates[0, 0] if rates.shape[0] else NULL
    net.max_parts = max(1, plan.image_parts)
    if plan.running_size and (running is None or running.shape[0] != plan.running_size):
        raise ValueError(f"network_epoch: running must hold the plan's {plan.running_size} running statistics")
    if dwork.shape[0] < plan.dwork_size:
        raise ValueError("network_epoch: the plan's dwork is smaller than its layers need")
    if not net.keep_cols and rwork.shape[0] < roles * net.role_stride:
        raise ValueError("network_epoch: the plan's role_work is smaller than the roles need")
    return run_epoch(plan, X, T, order, theta, state1, state2, lr, step, roles, start_loss, watch_interrupt, &net,
                     weights, weight_work, lrs, mean, seed, running)


cdef object run_epoch(plan, const floating[:, ::1] X, const floating[:, ::1] T, const int64_t[::1] order,
                      floating[::1] theta, floating[::1] state1, floating[::1] state2, double lr, long step,
                      int roles, double start_loss, bint watch_interrupt, Net* net, const double[::1] weights,
                      double[::1] weight_work, const double[::1] lrs, bint mean, uint64_t seed,
                      double[::1] running):
    cdef const int64_t[:, ::1] layers = plan.layers
    cdef const int64_t[::1] offsets = plan.offsets
    cdef floating[::1] work = plan.work
    cdef floating[::1] grad = plan.grad
    cdef double[::1] timing = plan.timing
    cdef const int64_t[:, ::1] drops = getattr(plan, "dense_dropout", None)
    cdef const double[::1] drop_rates = getattr(plan, "dense_dropout_rates", None)
    cdef const int64_t[:, ::1] bn = getattr(plan, "dense_bnorm", None)
    cdef const double[:, ::1] bn_hyper = getattr(plan, "dense_bnorm_hyper", None)
    cdef double[::1] dwork = getattr(plan, "dwork", None)
    cdef Epoch e
    cdef EpochJob job
    cdef bint watched = False
    memset(&e, 0, sizeof(Epoch))
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
    e.roles = max(1, min(roles, FNN_MAX_THREADS))
    e.roles_start = e.roles
    e.cpus = fnn_team.cpus
    e.spin = fnn_team.spin_oversubscribed if e.roles > e.cpus else fnn_team.spin
    e.yield_s = 0.0 if e.roles > e.cpus else -1.0  # oversubscribed: sleep; else yield until the step can go on
    e.timing = &timing[0]
    e.reduced_from = -1
    e.total = start_loss
    e.leave_after = -1
    e.net = net
    if weights is not None:
        if weights.shape[0] != X.shape[0] or weight_work is None or weight_work.shape[0] < 2 * e.batch:
            raise ValueError("epoch: weights must have X's rows and weight_work 2 * batch_size values")
        e.W = &weights[0] if weights.shape[0] else NULL
        e.wbuf = &weight_work[0]
    if lrs is not None:
        if lrs.shape[0] < (e.N + e.batch - 1) // e.batch:
            raise ValueError("epoch: lrs must hold a rate for every batch of the order")
        e.lrs = &lrs[0] if lrs.shape[0] else NULL
    e.mean = mean
    e.seed = seed
    if drops is not None:  # (2, n_layers): each dense layer's Dropout buffer offset (or -1) and layer index
        if drops.shape[0] != 2 or drops.shape[1] != e.n_layers or drop_rates is None or \
                drop_rates.shape[0] != e.n_layers:
            raise ValueError("epoch: the plan's dense_dropout tables must have a row per dense layer")
        e.drop_off = &drops[0, 0]
        e.drop_key = &drops[1, 0]
        e.drop_rate = &drop_rates[0]
    if running is not None and running.shape[0]:
        e.running = &running[0]
    if bn is not None:  # (n_layers, N_BNCOLS): the BatchNorm after each dense layer, if any
        if bn.shape[0] != e.n_layers or bn.shape[1] != N_BNCOLS or bn_hyper is None or \
                bn_hyper.shape[0] != e.n_layers or bn_hyper.shape[1] != 2 or dwork is None or e.running == NULL:
            raise ValueError("epoch: the plan's dense_bnorm tables must have a row per dense layer")
        e.bn = &bn[0, 0]
        e.bn_hyper = &bn_hyper[0, 0]
        e.bnwork = &dwork[0]
    job.e = &e
    job.theta = <char*>&theta[0]
    job.itemsize = sizeof(floating)
    if watch_interrupt:
        # Watch first, then let Python handle a SIGINT that came before the watch: none is lost between
        # Python's last check and the first batch.
        watched = fnn_watch_sigint()
        e.watch_interrupt = watched
        try:
            PyErr_CheckSignals()
        except BaseException:
            if watched:
                fnn_unwatch_sigint()
            raise
    with nogil:
        blas_single()
        if e.N > 0:  # the first batch's rows, before the team starts
            gather_batch(&e, 0, min(<Py_ssize_t>e.batch, e.N), &work[0] + offsets[OFF_XB0],
                         &work[0] + offsets[OFF_TB0], batch_weights(&e, 0))
        e.gather_claim = 1
        e.gathered.value = 1
        fnn_team_run(epoch_role, &job, <uint32_t>e.roles, e.roles)
        if watched:
            fnn_unwatch_sigint()
    batches = (e.leave_after + 1) if e.leave_after >= 0 else (e.N + e.batch - 1) // e.batch
    return (e.bad_loss if e.stop else e.total), e.correct, e.step, e.reduced_from, batches, e.roles


# ------------------------------------------------------------------------ convolution
#
# The batch is processed in chunks of images (the im2col workspace holds one chunk), each chunk cut into
# parts by images (``part_range``; ``conv_parts`` of them, by the chunk's size and flops) that the team
# shares: the same parts whatever the thread count, so the same numbers.

cdef inline int conv_parts(Py_ssize_t images, double flops) noexcept nogil:
    """Parts of a chunk of ``images`` images whose convolution costs ``flops``: about flops / part_flops,
    at most one per image and _max_image_parts."""
    cdef double p = flops / _part_flops
    if p < 2 or images < 2:
        return 1
    return <int>min(p, <double>min(images, <Py_ssize_t>_max_image_parts))


ctypedef struct ConvJob:
    const char* X
    const char* W
    const char* b
    const char* delta
    const char* post
    int act
    ConvGeom g
    char* cols
    char* pre
    char* out
    char* dpre
    char* gW
    char* gW_part
    double* sums
    char* gX
    Py_ssize_t c0
    Py_ssize_t cn
    int parts
    int itemsize


cdef void conv_forward_piece(ConvJob* j, int p, floating* dummy) noexcept nogil:
    cdef Py_ssize_t lo, n, rows0
    cdef const ConvGeom* g = &j.g
    cdef floating* cols = <floating*>j.cols
    part_range(j.c0, j.cn, p, j.parts, &lo, &n)
    rows0 = lo * g.out_pixels
    conv_forward_part(<const floating*>j.X + lo * g.in_size, n, g, <const floating*>j.W, <const floating*>j.b,
                      j.act, cols + (lo - j.c0) * g.out_pixels * g.K if cols != NULL else NULL,
                      <floating*>j.pre + rows0 * g.F, <floating*>j.out + rows0 * g.F)


cdef void conv_forward_job(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef ConvJob* j = <ConvJob*>arg
    if j.itemsize == 4:
        conv_forward_piece[float](j, <int>part, NULL)
    else:
        conv_forward_piece[double](j, <int>part, NULL)


def conv2d_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b, int act,
                   const int64_t[::1] geom, floating[:, ::1] cols, floating[:, ::1] pre_out,
                   floating[:, ::1] post_out):
    # IN X (N, H*W*C), W (K, F), b (F,), act (not softmax), geom (N_GEOM,); OUT cols: workspace of
    # (chunk*OH*OW, K) rows (its row count sets the chunk; 0 rows for a pointwise conv), pre_out and
    # post_out (N*OH*OW, F)
    """pre = im2col(X) @ W + b, post = act(pre), chunk by chunk, each chunk's images in parts."""
    cdef ConvJob j
    cdef Py_ssize_t N = X.shape[0], chunk
    cdef int threads = fnn_get_num_threads()
    if N == 0 or conv_geom(&geom[0]).out_pixels == 0 or W.shape[1] == 0:
        return
    memset(&j, 0, sizeof(ConvJob))
    j.g = conv_geom(&geom[0])
    j.X, j.W, j.b, j.act = <const char*>&X[0, 0], <const char*>&W[0, 0], <const char*>&b[0], act
    j.cols = <char*>&cols[0, 0] if cols.shape[0] and cols.shape[1] else NULL
    j.pre, j.out, j.itemsize = <char*>&pre_out[0, 0], <char*>&post_out[0, 0], sizeof(floating)
    chunk = N if j.cols == NULL else max(1, cols.shape[0] // j.g.out_pixels)
    with nogil:
        blas_single()
        while j.c0 < N:
            j.cn = min(chunk, N - j.c0)
            j.parts = conv_parts(j.cn, 2.0 * j.cn * j.g.out_pixels * j.g.K * j.g.F)
            fnn_team_run(conv_forward_job, &j, <uint32_t>j.parts, threads)
            j.c0 += j.cn


cdef void conv_backward_piece(ConvJob* j, int p, floating* dummy) noexcept nogil:
    cdef Py_ssize_t lo, n, rows0
    cdef const ConvGeom* g = &j.g
    cdef floating* c
    cdef floating* gw
    part_range(j.c0, j.cn, p, j.parts, &lo, &n)
    rows0 = lo * g.out_pixels
    if conv_is_pointwise(g):
        c = <floating*>(<const floating*>j.X + lo * g.in_size)  # read only: a pointwise conv writes gX directly
    else:
        c = <floating*>j.cols + (lo - j.c0) * g.out_pixels * g.K
        im2col(<const floating*>j.X + lo * g.in_size, n, g, c)
    gw = <floating*>j.gW if p == 0 else <floating*>j.gW_part + (p - 1) * g.K * g.F
    conv_backward_part(<const floating*>j.delta + rows0 * g.F, <const floating*>j.post + rows0 * g.F, c, n, g,
                       <const floating*>j.W, j.act, <floating*>j.dpre + (lo - j.c0) * g.out_pixels * g.F, gw, 1.0,
                       1.0 if p == 0 and j.c0 > 0 else 0.0, j.sums + p * g.F, False,
                       <floating*>j.gX + lo * g.in_size if j.gX != NULL else NULL)


cdef void conv_backward_job(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef ConvJob* j = <ConvJob*>arg
    if j.itemsize == 4:
        conv_backward_piece[float](j, <int>part, NULL)
    else:
        conv_backward_piece[double](j, <int>part, NULL)


def conv2d_backward(const floating[:, ::1] delta, const floating[:, ::1] post, const floating[:, ::1] X,
                    const floating[:, ::1] W, int act, const int64_t[::1] geom, floating[:, ::1] cols,
                    floating[:, ::1] dpre, floating[:, ::1] gW_part, double[::1] sums, floating[:, ::1] gW_out,
                    floating[::1] gb_out, floating[:, ::1] gX_out, bint need_gx):
    # IN delta, post (N*OH*OW, F), X (N, H*W*C), W (K, F), act, geom, need_gx; workspaces: cols
    # (chunk*OH*OW, K) (0 rows for a pointwise conv), dpre (chunk*OH*OW, F), gW_part ((P - 1)*K, F) and sums
    # ((P + 1)*F,) float64 for P = conv_parts_of(chunk, its flops) (the most parts of a chunk);
    # OUT gW_out (K, F), gb_out (F,), gX_out (N, H*W*C) when need_gx
    """A convolution's weight, bias and (optionally) input gradients, chunk by chunk in parts of images;
    after each chunk the parts' weight gradients are added to part 0's in part order, the bias sums in
    float64."""
    cdef ConvJob j
    cdef Py_ssize_t N = X.shape[0], chunk, jj, i, KF
    cdef int q, threads = fnn_get_num_threads(), max_parts
    cdef floating* gw
    cdef floating* gp
    cdef double* acc
    memset(&j, 0, sizeof(ConvJob))
    j.g = conv_geom(&geom[0])
    KF = j.g.K * j.g.F
    chunk = max(1, dpre.shape[0] // j.g.out_pixels)
    max_parts = <int>(sums.shape[0] // max(<Py_ssize_t>1, j.g.F)) - 1
    if max_parts < 1 or max_parts < conv_parts(chunk, 2.0 * chunk * j.g.out_pixels * KF * (2 if need_gx else 1)) \
            or (max_parts > 1 and gW_part.shape[0] * gW_part.shape[1] < (max_parts - 1) * KF):
        raise ValueError("conv2d_backward: the workspaces gW_part and sums are too small for the chunk's parts")
    j.X, j.W, j.delta, j.post, j.act = (<const char*>&X[0, 0], <const char*>&W[0, 0], <const char*>&delta[0, 0],
                                        <const char*>&post[0, 0], act)
    j.cols = <char*>&cols[0, 0] if cols.shape[0] and cols.shape[1] else NULL
    j.dpre, j.gW, j.sums, j.itemsize = <char*>&dpre[0, 0], <char*>&gW_out[0, 0], &sums[0], sizeof(floating)
    j.gW_part = <char*>&gW_part[0, 0] if gW_part.shape[0] and gW_part.shape[1] else NULL
    j.gX = <char*>&gX_out[0, 0] if need_gx and gX_out.shape[0] and gX_out.shape[1] else NULL
    gw = &gW_out[0, 0]
    gp = <floating*>j.gW_part
    acc = &sums[max_parts * j.g.F]
    with nogil:
        blas_single()
        for jj in range(j.g.F):
            acc[jj] = 0.0
        while j.c0 < N:
            j.cn = min(chunk, N - j.c0)
            j.parts = conv_parts(j.cn, 2.0 * j.cn * j.g.out_pixels * KF * (2 if j.gX != NULL else 1))
            fnn_team_run(conv_backward_job, &j, <uint32_t>j.parts, threads)
            for q in range(j.parts - 1):
                for i in range(KF):
                    gw[i] = gw[i] + gp[q * KF + i]
            for jj in range(j.g.F):
                for q in range(j.parts):
                    acc[jj] = acc[jj] + j.sums[q * j.g.F + jj]
            j.c0 += j.cn
        for jj in range(j.g.F):
            gb_out[jj] = <floating>acc[jj]


ctypedef struct PoolJob:
    const char* X
    const int64_t* pg
    char* Y
    int32_t* arg
    Py_ssize_t N
    int parts
    int itemsize


cdef void pool_forward_job(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef PoolJob* j = <PoolJob*>arg
    cdef Py_ssize_t lo, n, out_size = j.pg[P_OH] * j.pg[P_OW] * j.pg[P_C], in_size = j.pg[P_H] * j.pg[P_W] * j.pg[P_C]
    part_range(0, j.N, <int>part, j.parts, &lo, &n)
    if j.itemsize == 4:
        maxpool_forward_part(<const float*>j.X + lo * in_size, n, j.pg, <float*>j.Y + lo * out_size,
                             j.arg + lo * out_size)
    else:
        maxpool_forward_part(<const double*>j.X + lo * in_size, n, j.pg, <double*>j.Y + lo * out_size,
                             j.arg + lo * out_size)


def max_pool2d_forward(const floating[:, ::1] X, const int64_t[::1] pgeom, floating[:, ::1] Y_out,
                       int32_t[:, ::1] arg_out):
    # IN X (N, H*W*C), pgeom (N_PGEOM,); OUT Y_out (N, OH*OW*C), arg_out (N, OH*OW*C)
    """Max-pooling over non-overlapping windows, keeping each maximum's index inside its image."""
    cdef PoolJob j
    cdef int threads = fnn_get_num_threads()
    if X.shape[0] == 0 or Y_out.shape[1] == 0:
        return
    j.X, j.pg, j.Y, j.arg = <const char*>&X[0, 0], &pgeom[0], <char*>&Y_out[0, 0], &arg_out[0, 0]
    j.N, j.itemsize = X.shape[0], sizeof(floating)
    j.parts = conv_parts(X.shape[0], 4.0 * X.shape[0] * X.shape[1])
    with nogil:
        fnn_team_run(pool_forward_job, &j, <uint32_t>j.parts, threads)


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


ctypedef struct AvgPoolJob:
    const char* X
    const int64_t* ag
    char* Y
    Py_ssize_t N
    int parts
    int itemsize
    bint backward


cdef void avgpool_job(void* arg, uint32_t part, int slot) noexcept nogil:
    cdef AvgPoolJob* j = <AvgPoolJob*>arg
    cdef Py_ssize_t lo, n, out_size = j.ag[A_OH] * j.ag[A_OW] * j.ag[A_C], in_size = j.ag[A_H] * j.ag[A_W] * j.ag[A_C]
    part_range(0, j.N, <int>part, j.parts, &lo, &n)
    if j.backward:  # X is dY, Y is dX
        if j.itemsize == 4:
            avgpool_backward_part(<const float*>j.X + lo * out_size, n, j.ag, <float*>j.Y + lo * in_size)
        else:
            avgpool_backward_part(<const double*>j.X + lo * out_size, n, j.ag, <double*>j.Y + lo * in_size)
    elif j.itemsize == 4:
        avgpool_forward_part(<const float*>j.X + lo * in_size, n, j.ag, <float*>j.Y + lo * out_size)
    else:
        avgpool_forward_part(<const double*>j.X + lo * in_size, n, j.ag, <double*>j.Y + lo * out_size)


def avg_pool2d(const floating[:, ::1] X, const int64_t[::1] ageom, floating[:, ::1] Y_out, bint backward):
    # IN X (N, H*W*C) (backward: dY (N, OH*OW*C)), ageom (N_AGEOM,); OUT Y_out (N, OH*OW*C) (backward: dX)
    """Average pooling over non-overlapping windows, forward, or its backward (dY to dX), in parts of images."""
    cdef AvgPoolJob j
    cdef int threads = fnn_get_num_threads()
    if Y_out.shape[0] == 0 or Y_out.shape[1] == 0:
        return
    j.X, j.ag, j.Y = <const char*>&X[0, 0] if X.shape[1] else NULL, &ageom[0], <char*>&Y_out[0, 0]
    j.N, j.itemsize, j.backward = Y_out.shape[0], sizeof(floating), backward
    j.parts = conv_parts(Y_out.shape[0], 4.0 * Y_out.shape[0] * max(X.shape[1], Y_out.shape[1]))
    with nogil:
        fnn_team_run(avgpool_job, &j, <uint32_t>j.parts, threads)


def dropout(floating[::1] X, uint64_t seed, uint64_t step, uint64_t layer, double rate):
    # IN/OUT X (n,): a layer's batch output (or its gradient), flat
    """Inverted dropout in place: each value kept (times 1 / (1 - rate)) or zeroed by the hash of (seed, step,
    layer, its index); the same call on the gradient applies the same mask."""
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef uint64_t key = dropout_key(seed, step, layer)
    if X.shape[0] == 0:
        return
    with nogil:
        dropout_range(&X[0], 0, X.shape[0], key, rate, scale)


def batch_norm_stats(const floating[:, ::1] X, double[::1] mean_out, double[::1] var_out):
    # IN X (n, C); OUT mean_out, var_out (C,)
    """Per-column mean and biased variance of a batch, in float64."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        return
    with nogil:
        bn_stats(&X[0, 0], X.shape[0], X.shape[1], &mean_out[0], &var_out[0])


def batch_norm_apply(const floating[:, ::1] X, const floating[::1] gamma, const floating[::1] beta,
                     const double[::1] mean, const double[::1] invstd, floating[:, ::1] Y_out):
    # IN X (n, C), gamma, beta, mean, invstd (C,); OUT Y_out (n, C)
    """Y = gamma * (X - mean) * invstd + beta (the batch's statistics in training, the running ones after)."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        return
    with nogil:
        bn_apply(&X[0, 0], X.shape[0], X.shape[1], &gamma[0], &beta[0], &mean[0], &invstd[0], &Y_out[0, 0])


def batch_norm_backward(const floating[:, ::1] dY, const floating[:, ::1] X, const floating[::1] gamma,
                        const double[::1] mean, const double[::1] invstd, double[::1] sums,
                        floating[:, ::1] dX_out, floating[::1] dgamma_out, floating[::1] dbeta_out):
    # IN dY, X (n, C), gamma, mean, invstd (C,); scratch sums (2 C,); OUT dX_out (n, C), dgamma_out, dbeta_out
    """The backward of batch_norm_apply with the batch's own statistics."""
    cdef Py_ssize_t C = X.shape[1]
    if C == 0:
        return
    if X.shape[0] == 0:
        dgamma_out[:] = 0
        dbeta_out[:] = 0
        return
    with nogil:
        bn_backward(&dY[0, 0], &X[0, 0], X.shape[0], C, &gamma[0], &mean[0], &invstd[0], &sums[0], &dX_out[0, 0],
                    &dgamma_out[0], &dbeta_out[0])

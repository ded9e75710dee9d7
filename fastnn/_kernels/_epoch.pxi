# One whole training epoch of a dense MLP: one OpenMP parallel region for the epoch, with barriers
# between the phases of a batch instead of a fork and join per phase.
#
# Every thread walks the same sequence of steps (so all meet the same barriers):
#   * a large product is cut in two parts (``split_kind``); thread t runs the parts t, t + nth, ...;
#     a barrier comes before it when serial work is pending and after it;
#   * everything else (small products, bias and activation, the loss, bias sums, SGD bias steps) is
#     serial work that thread 0 runs;
#   * right after layer 0's forward product, the last thread gathers the next batch's rows into the
#     second input buffer, while thread 0 runs the middle of the batch;
#   * the optimizer step (other than SGD, which is fused into the weight products) is cut in two halves.
# The parts and their order are the same for one thread and for two, so both give the same numbers.
#
# On a machine busy with other work a barrier can wait a whole time slice for a descheduled partner, and a
# team of two then runs many times slower than one thread.  Thread 0 times every batch: a batch is slow
# when its period is more than twice the best this plan has seen (plus 50 us), or when thread 0 spent more
# than half of it waiting for its partner at barriers (quiet, it waits 5-25%).  When 3 of the last 4
# batches were slow, the epoch goes on with thread 0 alone from the next batch (``solo_from``).  The
# numbers stay the same.

cdef unsigned int _test_lag_us = 0  # tests (_core._test_lag): thread 1 sleeps this long after each batch


cdef enum:
    LOSS_SOFTMAX_CE = 0
    LOSS_SIGMOID_BCE = 1
    LOSS_SQUARED_ERROR = 2

# Columns of the plan's layer table, one row per layer (fastnn.functional.EpochPlan builds it).
cdef enum:
    COL_IN = 0
    COL_OUT = 1
    COL_W = 2
    COL_B = 3
    COL_PRE = 4
    COL_POST = 5
    COL_ACT = 6
    N_COLS = 7

# Entries of the plan's workspace offset vector.
cdef enum:
    OFF_XB0 = 0
    OFF_XB1 = 1
    OFF_TB0 = 2
    OFF_TB1 = 3
    OFF_DA = 4
    OFF_DB = 5
    OFF_SCRATCH = 6
    N_OFFSETS = 7


ctypedef struct Epoch:
    const int64_t* layers    # (n_layers, N_COLS)
    const int64_t* offsets   # (N_OFFSETS,) into work
    int n_layers
    int batch
    int loss
    int opt
    Hyper hyper
    char* work
    char* theta
    char* grad
    char* s1
    char* s2
    Py_ssize_t n_params
    const char* X            # (N, d)
    const char* T            # (N, c)
    const int64_t* order     # (N,)
    Py_ssize_t N
    Py_ssize_t d
    Py_ssize_t c
    fnn_barrier_t bar        # the team's barrier
    long spin                # pauses a barrier spins before it yields the core
    double* timing           # IN/OUT the plan's timing (seconds): [0] the best period per full batch seen with
                             # two threads (0: none yet); OUT [1] thread 0's barrier waits, [2] the epoch
    Py_ssize_t solo_from     # the first batch that thread 0 runs alone (set by thread 0, read at batch starts)
    long step                # IN updates done so far; OUT after the epoch
    double total             # OUT written by thread 0
    Py_ssize_t correct
    double bad_loss
    int stop                 # set by thread 0 when a batch's loss is not finite; read after barriers
    Py_ssize_t stopped_at    # the batch whose loss was not finite (-1: none), set with ``stop``
    void* net                # a convolutional network's stack (a Net, _conv_epoch.pxi), or NULL


ctypedef struct Team:
    int tid
    int nth
    int pending              # serial work since the last barrier (the same on every thread)
    double last              # thread 0: time of the previous batch's loss step (0: none)
    unsigned int slow        # thread 0: which of the last 4 batch periods were slow (one bit each)
    int periods              # thread 0: batch periods timed in this epoch
    double waited            # thread 0: seconds spent waiting at barriers in this epoch
    double waited_mark       # thread 0: ``waited`` at the previous batch's loss step


cdef inline bint serial(Team* t, Epoch* e) noexcept nogil:
    """True on the thread that runs the next piece of serial work (thread 0, until the loss fails)."""
    t.pending = 1
    return t.tid == 0 and not e.stop


cdef inline void sync(Team* t, Epoch* e) noexcept nogil:
    cdef double t0
    if t.nth > 1 and t.pending:
        if t.tid == 0:
            t0 = openmp.omp_get_wtime()
            fnn_barrier_wait(&e.bar, t.nth, e.spin)
            t.waited += openmp.omp_get_wtime() - t0
        else:
            fnn_barrier_wait(&e.bar, t.nth, e.spin)
    t.pending = 0


cdef void watch_team(Team* t, Epoch* e, Py_ssize_t b, bint full) noexcept nogil:
    """Thread 0, once per batch while the team is two: time the batch period and decide whether the rest
    of the epoch runs on thread 0 alone (from batch b + 1; thread 1 reads ``solo_from`` only after the
    barrier that follows this serial step)."""
    cdef double now = openmp.omp_get_wtime(), period, best
    cdef unsigned int v
    cdef int slow_count = 0
    cdef bint slow
    if t.last > 0:
        period = now - t.last
        best = e.timing[0]
        if full and (best <= 0 or period < best):
            e.timing[0] = period
            best = period
        slow = period > 2 * best + 50e-6 or t.waited - t.waited_mark > 0.5 * period
        t.slow = ((t.slow << 1) | slow) & 0xF
        t.periods += 1
        v = t.slow
        while v:
            slow_count += v & 1
            v >>= 1
        if slow_count >= 3:
            e.solo_from = b + 1
    t.last = now
    t.waited_mark = t.waited


cdef void team_product(Team* t, Epoch* e, Mat A, Mat B, Mat C, double alpha, double beta) noexcept nogil:
    """C = alpha A @ B + beta C: serial work when small, else its two parts shared by the team."""
    cdef int kind = split_kind(A.rows, A.cols, B.cols), p
    cdef Mat scratch = mat(e.work + e.offsets[OFF_SCRATCH] * C.itemsize, C.rows, C.cols, C.itemsize)
    if kind == SPLIT_NONE:
        if serial(t, e):
            gemm_serial(A, B, C, alpha, beta)
        return
    sync(t, e)
    if not e.stop:
        p = t.tid
        while p < 2:
            gemm_part(A, B, C, alpha, beta, kind, p, scratch)
            p += t.nth
    t.pending = 1
    sync(t, e)
    if kind == SPLIT_K and serial(t, e):
        gemm_combine(C, scratch)


cdef void team_optimizer(Team* t, Epoch* e, floating* theta, long step, Py_ssize_t P) noexcept nogil:
    """The optimizer step of parameters [0, P) from ``grad``, its two halves shared by the team."""
    cdef int p
    sync(t, e)
    if not e.stop:
        p = t.tid
        while p < 2:
            optimizer_range(e.opt, theta, <floating*>e.grad, <floating*>e.s1, <floating*>e.s2, P * p // 2,
                            P * (p + 1) // 2, e.hyper, step)
            p += t.nth
    t.pending = 1
    sync(t, e)


cdef void team_layer_update(Team* t, Epoch* e, int l, Mat X, Mat dpre, floating* theta) noexcept nogil:
    """Layer l's weight and bias step from its input X (n, k) and dJ/d(pre) (n, m): fused into the product
    for SGD (W = (1 - lr wd) W - lr X.T @ dpre), else the gradients into ``grad``."""
    cdef const int64_t* r = e.layers + N_COLS * l
    cdef int k = X.cols, m = dpre.cols
    cdef floating* grad = <floating*>e.grad
    cdef double lr = e.hyper.lr, wd = e.hyper.wd
    if e.opt == OPT_SGD:
        if serial(t, e):
            column_sums_update(<floating*>dpre.data, X.rows, m, theta + r[COL_B], lr, wd, True)
        team_product(t, e, transpose(X), dpre, mat(theta + r[COL_W], k, m, sizeof(floating)), -lr, 1.0 - lr * wd)
    else:
        if serial(t, e):
            column_sums_update(<floating*>dpre.data, X.rows, m, grad + r[COL_B], 0.0, 0.0, False)
        team_product(t, e, transpose(X), dpre, mat(grad + r[COL_W], k, m, sizeof(floating)), 1.0, 0.0)


cdef void gather_batch(Epoch* e, Py_ssize_t lo, Py_ssize_t hi, floating* xout, floating* tout) noexcept nogil:
    """Rows order[lo:hi] of X and T into the batch buffers."""
    cdef Py_ssize_t r, i
    cdef const floating* X = <const floating*>e.X
    cdef const floating* T = <const floating*>e.T
    for r in range(hi - lo):
        i = e.order[lo + r]
        memcpy(xout + r * e.d, X + i * e.d, e.d * sizeof(floating))
        memcpy(tout + r * e.c, T + i * e.c, e.c * sizeof(floating))


cdef void team_dense_forward(Team* t, Epoch* e, floating* theta, Mat inp, int n, Py_ssize_t gather_lo,
                             Py_ssize_t gather_hi, int buf) noexcept nogil:
    """The dense layers' forward from ``inp`` (n, layers[0].n_in); right after layer 0's product the last
    thread gathers rows order[gather_lo:gather_hi] into the batch buffers ``1 - buf``."""
    cdef int L = e.n_layers, l, m, act, isz = sizeof(floating)
    cdef floating* work = <floating*>e.work
    cdef const int64_t* r
    cdef Mat pre
    for l in range(L):
        r = e.layers + N_COLS * l
        m = <int>r[COL_OUT]
        pre = mat(work + r[COL_PRE], n, m, isz)
        team_product(t, e, inp, mat(theta + r[COL_W], <int>r[COL_IN], m, isz), pre, 1.0, 0.0)
        if l == 0 and gather_hi > gather_lo:  # the next batch, into the other buffers, beside the middle of this one
            t.pending = 1
            if t.tid == t.nth - 1:
                gather_batch(e, gather_lo, gather_hi, work + e.offsets[OFF_XB0 if buf else OFF_XB1],
                             work + e.offsets[OFF_TB0 if buf else OFF_TB1])
        act = <int>r[COL_ACT]
        if l == L - 1 and e.loss != LOSS_SQUARED_ERROR:
            act = ACT_LINEAR  # the fused loss applies softmax / sigmoid to the logits
        if serial(t, e):
            bias_activate(<floating*>pre.data, theta + r[COL_B], n, m, act, work + r[COL_POST])
        inp = mat(work + r[COL_POST], n, m, isz)


cdef void team_loss(Team* t, Epoch* e, floating* tb, int n, Py_ssize_t b) noexcept nogil:
    """The fused loss of the last layer against the targets tb (serial): dA = dJ/d(its pre-activation)."""
    cdef floating* work = <floating*>e.work
    cdef floating* dA = work + e.offsets[OFF_DA]
    cdef floating* dB = work + e.offsets[OFF_DB]
    cdef const int64_t* r = e.layers + N_COLS * (e.n_layers - 1)
    cdef int m = <int>r[COL_OUT]
    cdef Py_ssize_t ok = 0
    cdef double loss
    if serial(t, e):
        if e.loss == LOSS_SOFTMAX_CE:
            loss = softmax_ce_onehot(<floating*>work + r[COL_PRE], <floating*>tb, n, m, work + r[COL_POST], dA, &ok)
        elif e.loss == LOSS_SIGMOID_BCE:
            loss = sigmoid_bce(<floating*>work + r[COL_PRE], <floating*>tb, n * m, work + r[COL_POST], dA, &ok)
        else:
            loss = squared_error_sum(<floating*>work + r[COL_POST], <floating*>tb, n * m, dB)
            delta_pre_flat(<floating*>dB, <floating*>work + r[COL_POST], n * m, <int>r[COL_ACT], dA)
        if isfinite(loss):
            e.total += loss
            e.correct += ok
        else:
            e.bad_loss = loss
            e.stopped_at = b
            e.stop = 1  # nothing is updated from here on; every thread sees it at the next barrier
        if t.nth > 1:
            watch_team(t, e, b, n == e.batch)


cdef void team_dense_backward(Team* t, Epoch* e, floating* theta, Mat inp, int n, floating* gX0) noexcept nogil:
    """The dense layers' backward and weight steps from dA = dJ/d(last pre-activation); ``inp`` is layer 0's
    input.  With gX0 (not NULL), also layer 0's input gradient dA @ W0.T into gX0, before its step."""
    cdef int L = e.n_layers, l, k, m, isz = sizeof(floating)
    cdef floating* work = <floating*>e.work
    cdef floating* dA = work + e.offsets[OFF_DA]
    cdef floating* dB = work + e.offsets[OFF_DB]
    cdef const int64_t* r
    cdef const int64_t* below
    for l in range(L - 1, 0, -1):
        r = e.layers + N_COLS * l
        below = e.layers + N_COLS * (l - 1)
        k = <int>r[COL_IN]
        m = <int>r[COL_OUT]
        team_product(t, e, mat(dA, n, m, isz), transpose(mat(theta + r[COL_W], k, m, isz)), mat(dB, n, k, isz),
                     1.0, 0.0)
        team_layer_update(t, e, l, mat(work + below[COL_POST], n, k, isz), mat(dA, n, m, isz), theta)
        if serial(t, e):
            delta_pre_flat(<floating*>dB, <floating*>work + below[COL_POST], n * k, <int>below[COL_ACT], dA)
    k = <int>e.layers[COL_IN]
    m = <int>e.layers[COL_OUT]
    if gX0 != NULL:
        team_product(t, e, mat(dA, n, m, isz), transpose(mat(theta + e.layers[COL_W], k, m, isz)),
                     mat(gX0, n, k, isz), 1.0, 0.0)
    team_layer_update(t, e, 0, inp, mat(dA, n, m, isz), theta)


cdef void team_batch(Team* t, Epoch* e, floating* theta, Py_ssize_t b, Py_ssize_t start, int buf,
                     long step) noexcept nogil:
    """One batch: forward, fused loss, backward and update (see the top of this file)."""
    cdef Py_ssize_t stop = min(start + e.batch, e.N), nstop = min(stop + e.batch, e.N)
    cdef int n = <int>(stop - start)
    cdef floating* work = <floating*>e.work
    cdef floating* xb = work + e.offsets[OFF_XB1 if buf else OFF_XB0]
    cdef floating* tb = work + e.offsets[OFF_TB1 if buf else OFF_TB0]
    cdef Mat inp = mat(xb, n, <int>e.d, sizeof(floating))
    team_dense_forward(t, e, theta, inp, n, stop, nstop, buf)
    team_loss(t, e, tb, n, b)
    team_dense_backward(t, e, theta, inp, n, NULL)
    if e.opt != OPT_SGD:
        team_optimizer(t, e, theta, step, e.n_params)
    sync(t, e)  # the batch buffers are reused from here on


cdef void team_epoch(Team* t, Epoch* e, floating* theta) noexcept nogil:
    """Every batch of the epoch, on one thread of the team."""
    cdef Py_ssize_t start = 0, b = 0
    cdef int buf = 0
    cdef long step = e.step
    cdef floating* work = <floating*>e.work
    if t.tid == 0 and e.N > 0:
        gather_batch(e, 0, min(<Py_ssize_t>e.batch, e.N), work + e.offsets[OFF_XB0], work + e.offsets[OFF_TB0])
    t.pending = 1
    while start < e.N:
        if t.nth > 1 and b >= e.solo_from:  # the team was slowed by other work: thread 0 goes on alone
            if t.tid != 0:
                return
            t.nth = 1
        step += 1
        if e.net != NULL:
            team_net_batch(t, e, <Net*>e.net, theta, b, start, buf, step)
        else:
            team_batch(t, e, theta, b, start, buf, step)
        if t.tid == 1 and _test_lag_us:
            usleep(_test_lag_us)
        # Read after the batch's last barrier, and by batch number: with no barrier before the loss of the
        # next batch (a network of small products only), thread 0 can reach that loss, and find it not
        # finite, before thread 1 has looked.  Thread 1 then still runs batch b + 1 and both leave after it.
        if e.stopped_at == b:
            step -= 1
            break
        buf = 1 - buf
        start += e.batch
        b += 1
    if t.tid == 0:
        e.step = step


cdef void team_start(Epoch* e, floating* theta) noexcept nogil:
    """The body of the epoch's parallel region: this thread's place in the team, then its epoch."""
    cdef Team t
    t.tid = openmp.omp_get_thread_num()
    t.nth = openmp.omp_get_num_threads()
    t.pending = 0
    t.last = 0
    t.slow = 0
    t.periods = 0
    t.waited = 0
    t.waited_mark = 0
    cdef double t0 = openmp.omp_get_wtime()
    team_epoch(&t, e, theta)
    if t.tid == 0:
        e.timing[1] = t.waited
        e.timing[2] = openmp.omp_get_wtime() - t0

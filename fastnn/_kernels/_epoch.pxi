# One whole training epoch of a dense MLP as one job of the team (_team.h): its parts are the team's
# roles, which walk the same sequence of steps, batch by batch.
#
#   * a large product is cut into parts by its shapes (``split_of``); every role takes parts from one
#     counter shared by the epoch until none is left (so a role that runs late finds its work done by the
#     others and catches up at once); the optimizer step is cut into parts of the parameter vector;
#   * everything else (small products, bias and activation, the loss, bias sums, SGD bias steps) is
#     serial work that role 0 runs;
#   * right after layer 0's forward product, another role gathers the next batch's rows into the second
#     input buffer, while role 0 runs the middle of the batch (role 0 does it itself when no one has).
#
# There is no barrier at which the roles wait for each other.  Role 0 publishes how many serial steps it
# has done, and every finished part adds one to a count of done parts; before a step that reads what
# earlier steps wrote, a role waits until those counts reach the steps and parts issued so far (``sync``).
# So a role that the scheduler leaves out holds nobody up, unless it holds a part it has taken.
#
# The parts and their order are fixed by the shapes, so any number of roles gives the same numbers.
#
# On a machine busy with other work, a role that has taken a part can be descheduled for a whole time
# slice while role 0 waits for that part.  Role 0 times every batch: a batch is slow when role 0 spent more
# than half of it waiting for parts taken by others (quiet, it waits 5-25%).  When 3 of the last 4 batches
# were slow, the roles from half the team up leave from the next batch on (down to role 0 alone).  The
# numbers stay the same.  (A batch that is merely slow is no sign: on a shared virtual machine a noisy
# neighbour slows every thread alike, and one thread is then slower still.)
#
# Within an epoch a waiting role never sleeps while the team fits the CPUs: it pauses briefly, then yields
# the CPU until its step can go on.  Waking a sleeping thread costs an interrupt to its CPU, which in a
# virtual machine goes through the hypervisor; in a noisy phase of this project's machine, epochs whose
# threads slept between steps ran 1.3x slower than epochs whose threads yielded.

cdef unsigned int _test_lag_us = 0  # tests (_core._test_lag): roles other than 0 sleep this long after each batch
cdef unsigned int _test_part_lag_us = 0  # tests (_core._test_lag): ... and in each product part they take


cdef enum:
    LOSS_SOFTMAX_CE = 0
    LOSS_SIGMOID_BCE = 1
    LOSS_SQUARED_ERROR = 2
    #: At most this many parts of rows in a batch's loss.
    MAX_LOSS_PARTS = 64

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

# Columns of a network plan's table of the BatchNorm after each dense layer (Epoch.bn).
cdef enum:
    BN_OUT = 0       # work offset of its output (-1: no BatchNorm after this layer)
    BN_GAMMA = 1     # theta offsets of gamma and beta
    BN_BETA = 2
    BN_STATS = 3     # bnwork offset of the batch's mean, variance, invstd, sum(dY), sum(dY * xhat) (m each)
    BN_RUN = 4       # offset of its running mean and variance in Epoch.running
    N_BNCOLS = 5


ctypedef struct Epoch:
    fnn_event_t serial_done  # serial steps role 0 has published
    fnn_event_t parts_done   # parts finished, over the whole call
    fnn_event_t gathered     # batches whose rows are in their buffers (batch b's when it reaches b + 1)
    uint32_t claim           # the next part to take, over the whole call
    char pad0[60]
    uint32_t gather_claim    # gathers taken (batch b's is taken when it moves from b to b + 1)
    char pad1[60]
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
    int roles                # roles at work: role 0 lowers it when the team is slowed; others leave when above
    int roles_start
    int cpus                 # CPUs the process may use
    long spin                # pauses a wait spins before it yields
    double yield_s           # then seconds it yields before it sleeps (< 0: until it can go on)
    double* timing           # IN/OUT the plan's timing (seconds): [0] the best period per full batch seen with
                             # more than one role (0: none yet); OUT [1] role 0's waits for others' parts,
                             # [2] the epoch
    Py_ssize_t reduced_from  # the first batch run by fewer roles (set by role 0)
    long step                # IN updates done so far; OUT after the epoch
    double bad_loss
    int stop                 # set by role 0 when a batch's loss is not finite; read after waiting for that step
    Py_ssize_t leave_after   # the last batch of this call (-1: none yet): not finite, or interrupted after it
    int watch_interrupt      # check fnn_interrupted between batches
    int interrupted          # OUT the call stopped after a batch because of Ctrl-C
    void* net                # a convolutional network's stack (a Net, _conv_epoch.pxi), or NULL
    const double* W          # (N,) row weights of X (sample and class weights), or NULL: every row 1
    double* wbuf             # (2 * batch,) the batch buffers' gathered row weights (used with W)
    const double* lrs        # the learning rate of each batch of the call (a schedule), or NULL: hyper.lr
    int mean                 # the batch's loss is its mean: its gradient is divided by its rows
    uint64_t seed            # the run's seed, for dropout's masks (with the step and the layer)
    const int64_t* drop_off  # (n_layers,) work offset of dense layer l's output after its Dropout, or -1;
    #                          NULL: no Dropout after any dense layer
    const int64_t* drop_key  # (n_layers,) the Dropout's layer index in the model (its masks' key)
    const double* drop_rate  # (n_layers,) its rate
    double* running          # the model's BatchNorm running means and variances, or NULL: no BatchNorm
    double* bnwork           # the dense BatchNorms' batch statistics and sums (the plan's dwork)
    const int64_t* bn        # (n_layers, N_BNCOLS) the BatchNorm after each dense layer, or NULL: none
    const double* bn_hyper   # (n_layers, 2) its eps and momentum
    char pad2[64]            # what role 0 writes every batch, away from what the others read every batch
    double total             # OUT written by role 0
    Py_ssize_t correct
    double loss_parts[MAX_LOSS_PARTS]       # a batch's loss, part by part (added in part order by role 0)
    Py_ssize_t correct_parts[MAX_LOSS_PARTS]


ctypedef struct Team:
    int tid                  # the role
    uint32_t serial_seen     # serial steps passed (every role counts them; role 0 runs them)
    uint32_t published       # role 0: serial steps published
    uint32_t parts_base      # parts of the steps passed
    double last              # role 0: time of the previous batch's loss step (0: none)
    unsigned int slow        # role 0: which of the last 4 batch periods were slow (one bit each)
    double waited            # role 0: seconds spent waiting for others' parts in this call
    double waited_mark       # role 0: ``waited`` at the previous batch's loss step


cdef inline bint serial(Team* t, Epoch* e) noexcept nogil:
    """Count one serial step; True on the role that runs it (role 0, until the loss fails)."""
    t.serial_seen += 1
    return t.tid == 0 and not e.stop


cdef inline void sync(Team* t, Epoch* e) noexcept nogil:
    """Wait until every serial step and every part issued so far is done (role 0 first publishes its steps)."""
    if t.tid == 0:
        if t.published != t.serial_seen:
            t.published = t.serial_seen
            fnn_event_set(&e.serial_done, t.serial_seen)
    else:
        fnn_event_wait(&e.serial_done, t.serial_seen, e.spin, e.yield_s, 0)
    if e.stop:  # no part is taken after the failed loss, and all before it were done
        return
    if t.tid == 0:
        t.waited += fnn_event_wait(&e.parts_done, t.parts_base, e.spin, e.yield_s, 1)
    else:
        fnn_event_wait(&e.parts_done, t.parts_base, e.spin, e.yield_s, 0)


cdef inline uint32_t begin_parts(Team* t, Epoch* e, int parts) noexcept nogil:
    """Wait for the steps before, and count ``parts`` parts; return the first part's number on the counter."""
    cdef uint32_t base
    sync(t, e)
    base = t.parts_base
    t.parts_base += <uint32_t>parts
    return base


cdef inline bint take_part(Epoch* e, uint32_t base, int parts, int* p) noexcept nogil:
    """Take the next part of the step whose parts start at ``base``; False when none is left."""
    cdef uint32_t i
    if e.stop or not fnn_claim(&e.claim, base + <uint32_t>parts, &i):
        return False
    p[0] = <int>(i - base)
    return True


cdef inline void part_done(Epoch* e) noexcept nogil:
    fnn_event_add(&e.parts_done, 1)


cdef void watch_team(Team* t, Epoch* e, Py_ssize_t b, bint full) noexcept nogil:
    """Role 0, once per batch while more than one role works: time the batch period and decide whether the
    roles from half the team up leave from batch b + 1 on."""
    cdef double now = fnn_now(), period, best
    cdef unsigned int v
    cdef int slow_count = 0
    cdef bint slow
    if t.last > 0:
        period = now - t.last
        best = e.timing[0]
        if full and (best <= 0 or period < best):
            e.timing[0] = period
        slow = t.waited - t.waited_mark > 0.5 * period
        t.slow = ((t.slow << 1) | slow) & 0xF
        v = t.slow
        while v:
            slow_count += v & 1
            v >>= 1
        if slow_count >= 3:
            if e.reduced_from < 0:
                e.reduced_from = b + 1
            fnn_store_int(&e.roles, max(1, e.roles // 2))
            if e.roles <= e.cpus:
                e.spin = fnn_team.spin
                e.yield_s = -1.0
            t.slow = 0
    t.last = now
    t.waited_mark = t.waited


cdef void team_product(Team* t, Epoch* e, Mat A, Mat B, Mat C, double alpha, double beta) noexcept nogil:
    """C = alpha A @ B + beta C: serial work when small, else its parts shared by the roles."""
    cdef Split s = split_of(A.rows, A.cols, B.cols)
    cdef char* scratch = e.work + e.offsets[OFF_SCRATCH] * C.itemsize
    cdef uint32_t base
    cdef int p
    if s.parts == 1:
        if serial(t, e):
            gemm_serial(A, B, C, alpha, beta)
        return
    base = begin_parts(t, e, s.parts)
    # Tests (_test_lag's in_parts): role 0 leaves the parts to the lagging roles while there are any, as if
    # they had taken them first, so that it waits for them whether or not they got a CPU before it.
    while not (t.tid == 0 and _test_part_lag_us and fnn_load_int(&e.roles) > 1) and take_part(e, base, s.parts, &p):
        gemm_part(A, B, C, alpha, beta, s, p, scratch)
        if t.tid != 0 and _test_part_lag_us:
            usleep(_test_part_lag_us)
        part_done(e)
    sync(t, e)
    if s.kind == SPLIT_K and serial(t, e):
        gemm_combine(C, s, scratch)


cdef inline int vector_parts(Py_ssize_t n) noexcept nogil:
    """Parts of an element-wise step over n values (the optimizer's): fixed by n."""
    return <int>max(<Py_ssize_t>1, min(<Py_ssize_t>_max_parts, n // _vector_part))


cdef inline Py_ssize_t vector_bound(Py_ssize_t n, int parts, int p) noexcept nogil:
    if p >= parts:
        return n
    return (n * p // parts) // PART_ALIGN * PART_ALIGN


cdef inline int rows_parts(Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """Parts of a row-wise step over n rows of m values (bias and activation, the loss): by its values, at
    most one per row; fixed by the shape."""
    return <int>min(<Py_ssize_t>vector_parts(n * m), max(n, <Py_ssize_t>1))


cdef inline int column_parts(Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """Parts of the column sums over n rows of m columns: by its values, at least PART_ALIGN columns each."""
    return <int>min(<Py_ssize_t>vector_parts(n * m), max(<Py_ssize_t>1, m // PART_ALIGN))


cdef void team_bias_activate(Team* t, Epoch* e, floating* Z, const floating* b, int n, int m, int act,
                             floating* A) noexcept nogil:
    """Z += b row-wise, then A = act(Z): serial work when small, else parts of rows shared by the roles (the
    same values whatever the cut: each row is its own)."""
    cdef int parts = rows_parts(n, m), p
    cdef Py_ssize_t r0, r1
    cdef uint32_t base
    if parts == 1:
        if serial(t, e):
            bias_activate(Z, b, n, m, act, A)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        r0 = <Py_ssize_t>n * p // parts
        r1 = <Py_ssize_t>n * (p + 1) // parts
        bias_activate(Z + r0 * m, b, r1 - r0, m, act, A + r0 * m)
        part_done(e)
    sync(t, e)


cdef void team_delta_pre(Team* t, Epoch* e, const floating* delta, const floating* A, Py_ssize_t size, int act,
                         floating* dpre) noexcept nogil:
    """dpre = delta * act'(A), element-wise: serial work when small, else parts shared by the roles."""
    cdef int parts = vector_parts(size), p
    cdef Py_ssize_t lo
    cdef uint32_t base
    if parts == 1:
        if serial(t, e):
            delta_pre_flat(delta, A, size, act, dpre)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        lo = vector_bound(size, parts, p)
        delta_pre_flat(delta + lo, A + lo, vector_bound(size, parts, p + 1) - lo, act, dpre + lo)
        part_done(e)
    sync(t, e)


cdef void team_column_sums(Team* t, Epoch* e, const floating* D, int n, int m, floating* out, double lr, double wd,
                           bint sgd) noexcept nogil:
    """``column_sums_update`` (a bias gradient or SGD's bias step): serial work when small, else parts of the
    columns shared by the roles (each column's sum over the rows in order: the same bits whatever the cut)."""
    cdef int parts = column_parts(n, m), p
    cdef Py_ssize_t c0, c1
    cdef uint32_t base
    if parts == 1:
        if serial(t, e):
            column_sums_update(D, n, m, out, lr, wd, sgd)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        c0 = vector_bound(m, parts, p)
        c1 = vector_bound(m, parts, p + 1)
        column_sums_update(D + c0, n, c1 - c0, out + c0, lr, wd, sgd, m)
        part_done(e)
    sync(t, e)


cdef void team_optimizer(Team* t, Epoch* e, floating* theta, long step, Py_ssize_t P, double lr) noexcept nogil:
    """The optimizer step of parameters [0, P) from ``grad`` at the rate ``lr``, in parts shared by the roles."""
    cdef int parts = vector_parts(P), p
    cdef uint32_t base
    cdef Hyper h = e.hyper
    h.lr = lr
    if parts == 1:
        if serial(t, e):
            optimizer_range(e.opt, theta, <floating*>e.grad, <floating*>e.s1, <floating*>e.s2, 0, P, h, step)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        optimizer_range(e.opt, theta, <floating*>e.grad, <floating*>e.s1, <floating*>e.s2,
                        vector_bound(P, parts, p), vector_bound(P, parts, p + 1), h, step)
        part_done(e)
    sync(t, e)


cdef void team_layer_update(Team* t, Epoch* e, int l, Mat X, Mat dpre, floating* theta, double lr) noexcept nogil:
    """Layer l's weight and bias step from its input X (n, k) and dJ/d(pre) (n, m): fused into the product
    for SGD (W = (1 - lr wd) W - lr X.T @ dpre), else the gradients into ``grad``."""
    cdef const int64_t* r = e.layers + N_COLS * l
    cdef int k = X.cols, m = dpre.cols
    cdef floating* grad = <floating*>e.grad
    cdef double wd = e.hyper.wd
    if e.opt == OPT_SGD:
        team_column_sums(t, e, <floating*>dpre.data, X.rows, m, theta + r[COL_B], lr, wd, True)
        team_product(t, e, transpose(X), dpre, mat(theta + r[COL_W], k, m, sizeof(floating)), -lr, 1.0 - lr * wd)
    else:
        team_column_sums(t, e, <floating*>dpre.data, X.rows, m, grad + r[COL_B], 0.0, 0.0, False)
        team_product(t, e, transpose(X), dpre, mat(grad + r[COL_W], k, m, sizeof(floating)), 1.0, 0.0)


cdef void gather_batch(Epoch* e, Py_ssize_t lo, Py_ssize_t hi, floating* xout, floating* tout,
                       double* wout) noexcept nogil:
    """Rows order[lo:hi] of X and T into the batch buffers (and of W into wout, when weighted)."""
    cdef Py_ssize_t r, i
    cdef const floating* X = <const floating*>e.X
    cdef const floating* T = <const floating*>e.T
    for r in range(hi - lo):
        i = e.order[lo + r]
        memcpy(xout + r * e.d, X + i * e.d, e.d * sizeof(floating))
        memcpy(tout + r * e.c, T + i * e.c, e.c * sizeof(floating))
    if e.W != NULL:
        for r in range(hi - lo):
            wout[r] = e.W[e.order[lo + r]]


cdef inline double* batch_weights(Epoch* e, int buf) noexcept nogil:
    """The gathered row weights of the batch buffers ``buf``, or NULL when unweighted."""
    return e.wbuf + (e.batch if buf else 0) if e.W != NULL else NULL


cdef inline double batch_lr(Epoch* e, Py_ssize_t b) noexcept nogil:
    """The learning rate of the call's batch b."""
    return e.lrs[b] if e.lrs != NULL else e.hyper.lr


cdef void try_gather(Epoch* e, floating* work, Py_ssize_t b, Py_ssize_t lo, Py_ssize_t hi, int buf) noexcept nogil:
    """Gather batch b's rows order[lo:hi] into the buffers ``buf`` of ``work``, unless another role has taken it."""
    cdef uint32_t i
    if hi > lo and fnn_claim(&e.gather_claim, <uint32_t>(b + 1), &i):
        gather_batch(e, lo, hi, work + e.offsets[OFF_XB1 if buf else OFF_XB0],
                     work + e.offsets[OFF_TB1 if buf else OFF_TB0], batch_weights(e, buf))
        fnn_event_add(&e.gathered, 1)


cdef void team_dropout(Team* t, Epoch* e, const floating* src, floating* dst, Py_ssize_t size, int l,
                       long step) noexcept nogil:
    """Dense layer l's Dropout, element-wise from src into dst (may be src): the mask of (seed, step - 1,
    the Dropout's layer index), step counting from 1 as the optimizer does; serial when small, else parts."""
    cdef int parts = vector_parts(size), p
    cdef Py_ssize_t lo
    cdef uint32_t base
    cdef double rate = e.drop_rate[l]
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef uint64_t key = dropout_key(e.seed, <uint64_t>(step - 1), <uint64_t>e.drop_key[l])
    if parts == 1:
        if serial(t, e):
            dropout_copy(src, dst, size, 0, key, rate, scale)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        lo = vector_bound(size, parts, p)
        dropout_copy(src + lo, dst + lo, vector_bound(size, parts, p + 1) - lo, <uint64_t>lo, key, rate, scale)
        part_done(e)
    sync(t, e)


cdef inline bint has_bnorm(Epoch* e, int l) noexcept nogil:
    """Whether a BatchNorm follows dense layer l."""
    return e.bn != NULL and e.bn[N_BNCOLS * l + BN_OUT] >= 0


cdef inline floating* bnorm_input(Epoch* e, floating* work, const int64_t* r, int l) noexcept nogil:
    """What the Dropout after dense layer l (its table row r) reads: l's output, or its BatchNorm's."""
    if has_bnorm(e, l):
        return work + e.bn[N_BNCOLS * l + BN_OUT]
    return work + r[COL_POST]


cdef inline floating* dense_input(Epoch* e, floating* work, const int64_t* r, int l) noexcept nogil:
    """Where the layer after dense layer l (its table row r) reads its input: l's output, its BatchNorm's or
    its Dropout's."""
    if e.drop_off != NULL and e.drop_off[l] >= 0:
        return work + e.drop_off[l]
    return bnorm_input(e, work, r, l)


cdef void dense_bn_forward_cols(Epoch* e, floating* theta, const floating* X, int n, int m, int l, Py_ssize_t c0,
                                Py_ssize_t c1) noexcept nogil:
    """Columns [c0, c1) of the BatchNorm after dense layer l over its output X (n, m): the batch's mean,
    variance and invstd of each column over the rows in order, then the normalised output."""
    cdef const int64_t* r = e.bn + N_BNCOLS * l
    cdef double* mean = e.bnwork + r[BN_STATS]
    cdef double* var = mean + m
    cdef double* invstd = mean + 2 * m
    cdef Py_ssize_t c
    bn_stats(X + c0, n, c1 - c0, mean + c0, var + c0, m)
    for c in range(c0, c1):
        invstd[c] = 1.0 / sqrt(var[c] + e.bn_hyper[2 * l])
    bn_apply(X + c0, n, c1 - c0, theta + r[BN_GAMMA] + c0, theta + r[BN_BETA] + c0, mean + c0, invstd + c0,
             <floating*>e.work + r[BN_OUT] + c0, m)


cdef void dense_bn_backward_cols(Epoch* e, floating* theta, floating* dY, const floating* X, int n, int m, int l,
                                 Py_ssize_t c0, Py_ssize_t c1, double lr, long step) noexcept nogil:
    """Columns [c0, c1) of the backward of the BatchNorm after dense layer l: dY (n, m) = dJ/d(its output)
    becomes dJ/d(its input X) in place; gamma's and beta's gradients into grad (and SGD's step of them)."""
    cdef const int64_t* r = e.bn + N_BNCOLS * l
    cdef double* mean = e.bnwork + r[BN_STATS]
    cdef double* invstd = mean + 2 * m
    cdef double* sdy = mean + 3 * m
    cdef double* sdyx = mean + 4 * m
    cdef floating* grad = <floating*>e.grad
    cdef Py_ssize_t c
    cdef Hyper h = e.hyper
    bn_backward_sums(dY + c0, X + c0, n, c1 - c0, m, mean + c0, invstd + c0, sdy + c0, sdyx + c0)
    for c in range(c0, c1):
        grad[r[BN_GAMMA] + c] = <floating>sdyx[c]
        grad[r[BN_BETA] + c] = <floating>sdy[c]
    bn_backward_dx(dY + c0, X + c0, n, c1 - c0, m, theta + r[BN_GAMMA] + c0, mean + c0, invstd + c0, sdy + c0,
                   sdyx + c0, <double>n, dY + c0)
    if e.opt == OPT_SGD:  # (the other optimizers step every parameter after the batch)
        h.lr = lr
        sgd_range(theta, grad, r[BN_GAMMA] + c0, r[BN_GAMMA] + c1, h.lr, h.wd)
        sgd_range(theta, grad, r[BN_BETA] + c0, r[BN_BETA] + c1, h.lr, h.wd)


cdef void team_dense_bn(Team* t, Epoch* e, floating* theta, floating* dY, const floating* X, int n, int m, int l,
                        double lr, long step, bint forward) noexcept nogil:
    """The forward (``dense_bn_forward_cols``) or backward (``dense_bn_backward_cols``) of the BatchNorm after
    dense layer l: serial work when small, else parts of the columns shared by the roles (each column's sums
    over the rows in order: the same bits whatever the cut)."""
    cdef int parts = column_parts(n, m), p
    cdef Py_ssize_t c0, c1
    cdef uint32_t base
    if parts == 1:
        if serial(t, e):
            if forward:
                dense_bn_forward_cols(e, theta, X, n, m, l, 0, m)
            else:
                dense_bn_backward_cols(e, theta, dY, X, n, m, l, 0, m, lr, step)
        return
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        c0 = vector_bound(m, parts, p)
        c1 = vector_bound(m, parts, p + 1)
        if forward:
            dense_bn_forward_cols(e, theta, X, n, m, l, c0, c1)
        else:
            dense_bn_backward_cols(e, theta, dY, X, n, m, l, c0, c1, lr, step)
        part_done(e)
    sync(t, e)


cdef void dense_bn_running(Epoch* e, int n) noexcept nogil:
    """The running mean and variance of every BatchNorm after a dense layer, from the batch's (n rows)."""
    cdef int l
    cdef Py_ssize_t m
    cdef const int64_t* r
    if e.bn == NULL:
        return
    for l in range(e.n_layers):
        r = e.bn + N_BNCOLS * l
        if r[BN_OUT] >= 0:
            m = e.layers[N_COLS * l + COL_OUT]
            bn_update_running(e.running + r[BN_RUN], e.bnwork + r[BN_STATS], e.bnwork + r[BN_STATS] + m, m, n,
                              e.bn_hyper[2 * l + 1])


cdef void team_dense_forward(Team* t, Epoch* e, floating* theta, Mat inp, int n, Py_ssize_t b,
                             Py_ssize_t gather_lo, Py_ssize_t gather_hi, int buf, long step) noexcept nogil:
    """The dense layers' forward from ``inp`` (n, layers[0].n_in); right after layer 0's product a role
    other than 0 gathers batch b + 1's rows order[gather_lo:gather_hi] into the batch buffers ``1 - buf``.
    A layer with a BatchNorm and/or a Dropout after it writes their outputs, the next layer reads the last."""
    cdef int L = e.n_layers, l, m, act, isz = sizeof(floating)
    cdef floating* work = <floating*>e.work
    cdef const int64_t* r
    cdef Mat pre
    for l in range(L):
        r = e.layers + N_COLS * l
        m = <int>r[COL_OUT]
        pre = mat(work + r[COL_PRE], n, m, isz)
        team_product(t, e, inp, mat(theta + r[COL_W], <int>r[COL_IN], m, isz), pre, 1.0, 0.0)
        if l == 0 and t.tid != 0 and not e.stop:  # the next batch, beside the middle of this one
            try_gather(e, work, b + 1, gather_lo, gather_hi, 1 - buf)
        act = <int>r[COL_ACT]
        if l == L - 1 and e.loss != LOSS_SQUARED_ERROR:
            act = ACT_LINEAR  # the fused loss applies softmax / sigmoid to the logits
        team_bias_activate(t, e, <floating*>pre.data, theta + r[COL_B], n, m, act, work + r[COL_POST])
        if has_bnorm(e, l):
            team_dense_bn(t, e, theta, NULL, work + r[COL_POST], n, m, l, 0.0, step, True)
        if e.drop_off != NULL and e.drop_off[l] >= 0:
            team_dropout(t, e, bnorm_input(e, work, r, l), work + e.drop_off[l], <Py_ssize_t>n * m, l, step)
        inp = mat(dense_input(e, work, r, l), n, m, isz)


cdef double loss_rows(Epoch* e, floating* tb, const double* wb, double scale, Py_ssize_t r0, Py_ssize_t r1, int m,
                      Py_ssize_t* ok) noexcept nogil:
    """The fused loss of rows [r0, r1) of the last layer against the targets tb (row weights wb, or NULL; the
    gradient times ``scale``): their summed loss and correct predictions, dA = dJ/d(the pre-activation) of
    those rows."""
    cdef floating* work = <floating*>e.work
    cdef floating* dA = work + e.offsets[OFF_DA] + r0 * m
    cdef floating* dB = work + e.offsets[OFF_DB] + r0 * m
    cdef const int64_t* r = e.layers + N_COLS * (e.n_layers - 1)
    cdef floating* pre = work + r[COL_PRE] + r0 * m
    cdef floating* post = work + r[COL_POST] + r0 * m
    cdef Py_ssize_t rows = r1 - r0
    cdef const double* w = wb + r0 if wb != NULL else NULL
    cdef double loss
    ok[0] = 0
    if e.loss == LOSS_SOFTMAX_CE:
        return softmax_ce_onehot(pre, tb + r0 * m, rows, m, post, dA, ok, w, scale)
    if e.loss == LOSS_SIGMOID_BCE:
        return sigmoid_bce(pre, tb + r0 * m, rows, m, post, dA, ok, w, scale)
    loss = squared_error_sum(post, tb + r0 * m, rows, m, dB, w, scale)
    # a registered activation's derivative is a function of the pre-activation (kept in its own buffer)
    delta_pre_flat(dB, pre if r[COL_ACT] >= ACT_USER else post, rows * m, <int>r[COL_ACT], dA)
    return loss


cdef void team_loss(Team* t, Epoch* e, floating* tb, const double* wb, int n, Py_ssize_t b) noexcept nogil:
    """The fused loss of the last layer against the targets tb (row weights wb, or NULL): dA = dJ/d(its
    pre-activation), divided by the n rows for the mean loss.  Serial work when small; else parts of rows
    shared by the roles, their float64 sums added in part order by role 0."""
    cdef const int64_t* r = e.layers + N_COLS * (e.n_layers - 1)
    cdef int m = <int>r[COL_OUT], parts = <int>min(<Py_ssize_t>rows_parts(n, m), <Py_ssize_t>MAX_LOSS_PARTS), p, q
    cdef Py_ssize_t ok = 0
    cdef double loss = 0.0, scale = 1.0 / n if e.mean and n > 0 else 1.0
    cdef uint32_t base
    if parts > 1:
        base = begin_parts(t, e, parts)
        while take_part(e, base, parts, &p):
            e.loss_parts[p] = loss_rows(e, tb, wb, scale, <Py_ssize_t>n * p // parts,
                                        <Py_ssize_t>n * (p + 1) // parts, m, &e.correct_parts[p])
            part_done(e)
        sync(t, e)
    if serial(t, e):
        if parts == 1:
            loss = loss_rows(e, tb, wb, scale, 0, n, m, &ok)
        else:
            for q in range(parts):
                loss += e.loss_parts[q]
                ok += e.correct_parts[q]
        if isfinite(loss):
            e.total += loss
            e.correct += ok
        else:
            e.bad_loss = loss
            e.leave_after = b
            e.stop = 1  # nothing is updated from here on; every role sees it when it waits for this step
        if e.roles > 1:
            watch_team(t, e, b, n == e.batch)


cdef void team_dense_backward(Team* t, Epoch* e, floating* theta, Mat inp, int n, floating* gX0,
                              double lr, long step) noexcept nogil:
    """The dense layers' backward and weight steps (SGD's at the rate ``lr``) from dA = dJ/d(last
    pre-activation); ``inp`` is layer 0's input.  With gX0 (not NULL), also layer 0's input gradient
    dA @ W0.T into gX0, before its step."""
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
        team_layer_update(t, e, l, mat(dense_input(e, work, below, l - 1), n, k, isz), mat(dA, n, m, isz), theta, lr)
        if e.drop_off != NULL and e.drop_off[l - 1] >= 0:  # through layer l - 1's Dropout: the same mask
            team_dropout(t, e, dB, dB, <Py_ssize_t>n * k, l - 1, step)
        if has_bnorm(e, l - 1):  # through its BatchNorm, whose input is the layer's output
            team_dense_bn(t, e, theta, dB, work + below[COL_POST], n, k, l - 1, lr, step, False)
        # (a registered activation's derivative is a function of the pre-activation, which the layer keeps)
        team_delta_pre(t, e, <floating*>dB, <floating*>work + (below[COL_PRE] if below[COL_ACT] >= ACT_USER
                                                                 else below[COL_POST]),
                       <Py_ssize_t>n * k, <int>below[COL_ACT], dA)
    k = <int>e.layers[COL_IN]
    m = <int>e.layers[COL_OUT]
    if gX0 != NULL:
        team_product(t, e, mat(dA, n, m, isz), transpose(mat(theta + e.layers[COL_W], k, m, isz)),
                     mat(gX0, n, k, isz), 1.0, 0.0)
    team_layer_update(t, e, 0, inp, mat(dA, n, m, isz), theta, lr)


cdef inline void end_batch(Team* t, Epoch* e, Py_ssize_t b) noexcept nogil:
    """The last step of batch b: role 0 looks for Ctrl-C, then everything of the batch is waited for (the
    batch buffers are reused from here on)."""
    if serial(t, e) and e.watch_interrupt and fnn_interrupted:
        e.interrupted = 1
        e.leave_after = b
    sync(t, e)


cdef void team_batch(Team* t, Epoch* e, floating* theta, Py_ssize_t b, Py_ssize_t start, int buf,
                     long step) noexcept nogil:
    """One batch: forward, fused loss, backward and update (see the top of this file)."""
    cdef Py_ssize_t stop = min(start + e.batch, e.N), nstop = min(stop + e.batch, e.N)
    cdef int n = <int>(stop - start)
    cdef floating* work = <floating*>e.work
    cdef floating* xb = work + e.offsets[OFF_XB1 if buf else OFF_XB0]
    cdef floating* tb = work + e.offsets[OFF_TB1 if buf else OFF_TB0]
    cdef Mat inp = mat(xb, n, <int>e.d, sizeof(floating))
    cdef double lr = batch_lr(e, b)
    team_dense_forward(t, e, theta, inp, n, b, stop, nstop, buf, step)
    team_loss(t, e, tb, batch_weights(e, buf), n, b)
    team_dense_backward(t, e, theta, inp, n, NULL, lr, step)
    if e.opt != OPT_SGD:
        team_optimizer(t, e, theta, step, e.n_params, lr)
    end_batch(t, e, b)


cdef void team_epoch(Team* t, Epoch* e, floating* theta) noexcept nogil:
    """Every batch of the epoch, in one role."""
    cdef Py_ssize_t start = 0, b = 0
    cdef int buf = 0
    cdef long step = e.step
    while start < e.N:
        if t.tid != 0 and t.tid >= fnn_load_int(&e.roles):
            return  # the team was slowed by other work: this role leaves
        if b > 0 and not fnn_reached(fnn_event_get(&e.gathered), <uint32_t>(b + 1)):
            # batch b's rows: gathered by another role during batch b - 1, else by this one now
            try_gather(e, <floating*>e.work, b, start, min(start + e.batch, e.N), buf)
        fnn_event_wait(&e.gathered, <uint32_t>(b + 1), e.spin, e.yield_s, 0)
        step += 1
        if e.net != NULL:
            team_net_batch(t, e, <Net*>e.net, theta, b, start, buf, step)
        else:
            team_batch(t, e, theta, b, start, buf, step)
        if t.tid != 0 and _test_lag_us:
            usleep(_test_lag_us)
        # Read after the batch's last step, and by batch number: role 0 may already have decided about a
        # later batch when a slow role looks.
        if e.leave_after == b:
            if e.stop:
                step -= 1
            break
        buf = 1 - buf
        start += e.batch
        b += 1
    if t.tid == 0:
        e.step = step


ctypedef struct EpochJob:
    Epoch* e
    char* theta
    int itemsize


cdef void epoch_role(void* arg, uint32_t role, int slot) noexcept nogil:
    """A part of the epoch's job: one role of the team."""
    cdef EpochJob* j = <EpochJob*>arg
    cdef Team t
    cdef double t0 = fnn_now()
    memset(&t, 0, sizeof(Team))
    t.tid = <int>role
    if j.itemsize == 4:
        team_epoch[float](&t, j.e, <float*>j.theta)
    else:
        team_epoch[double](&t, j.e, <double*>j.theta)
    if role == 0:
        j.e.timing[1] = t.waited
        j.e.timing[2] = fnn_now() - t0

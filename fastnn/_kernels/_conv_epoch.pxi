# One whole training epoch of a convolutional network: a stack of conv, max- and average-pool layers, a flatten
# (free in NHWC), then dense layers and a fused loss, in the same job, roles and steps as the dense epoch
# (_epoch.pxi).
#
# Per batch:
#   * the stack's forward runs in parts of the batch's images (the plan's ``part_images`` each, the last
#     part shorter), which the roles take as they take a product's parts; a part goes through every conv
#     and pool layer with no wait in between (an image needs nothing from another image), a block of a few
#     images at a time (the plan's ``block``: about 1 MiB of their activations and im2col rows, so that
#     every layer reads its input from the cache);
#   * the dense layers, the loss and the dense backward are the dense epoch's (``team_dense_forward``,
#     ``team_loss``, ``team_dense_backward``), which also gives dJ/d(stack output);
#   * the stack's backward again in the same parts of images, block by block, with each convolution's
#     im2col rows from the forward when the plan keeps the whole batch's (``keep_cols``: when they are
#     small), else computed again from the layer's input (kept for the whole batch) into the role's own
#     block (``rwork``): at batch 256 the issue's network's rows take 47 MB, far beyond the caches, and
#     keeping them made batch 256 slower than batch 32.  Part 0 writes its weight gradient into ``grad``,
#     part p > 0 into scratch block p - 1, each part its float64 bias sums; then the parts' weight
#     gradients are added to part 0's in part order (that sum itself cut into parts of the weights), and the
#     optimizer steps (SGD steps the dense layers inside their products, as the dense epoch does, and the
#     stack's parameters after the batch).
# The parts are fixed by the batch size, so any number of roles gives the same numbers bitwise.

cdef enum:
    KIND_CONV = 0
    KIND_POOL = 1
    KIND_AVGPOOL = 2
    KIND_DROPOUT = 3   # SC_W: its layer index in the model (its masks' key); its rate in Net.rates

# Columns of the plan's stack table (the conv and pool layers before the flatten), one row per layer.
cdef enum:
    SC_KIND = 0
    SC_IN = 1        # values per image in
    SC_OUT = 2       # values per image out
    SC_W = 3         # conv: theta offsets of W and b
    SC_B = 4
    SC_ACT = 5
    SC_OUTBUF = 6    # work offset of the layer's output (conv: post, which pre shares)
    SC_COLS = 7      # conv: offset of its im2col rows, in work (the batch's, ``keep_cols``) or in a role's block
    #                  of rwork; -1 when pointwise; pool: iwork offset of argmax
    SC_GEOM = 8      # offset of its geometry in the plan's geometry vector
    SC_GPART = 9     # conv: work offset of parts 1, 2, ...'s weight gradients (K*F values each)
    SC_SUMS = 10     # conv: dwork offset of the parts' float64 bias sums (F values each)
    SC_PRE = 11      # conv with a registered activation: work offset of its pre-activation (whose function its
    #                  derivative is), kept beside the output; -1 otherwise (pre shares the output)
    N_SCOLS = 12

# Workspace offsets of a network plan beyond the dense epoch's N_OFFSETS.
cdef enum:
    OFF_DTOP = 7     # dJ/d(the stack's output), from the first dense layer
    OFF_GA = 8       # the stack backward's two gradient buffers
    OFF_GB = 9
    N_NET_OFFSETS = 10


ctypedef struct Net:
    const int64_t* stack     # (n_stack, N_SCOLS)
    int n_stack
    const int64_t* geom      # the geometry vectors of the stack's layers
    int32_t* iwork           # pool argmax
    double* dwork            # conv bias sums
    char* rwork              # the roles' im2col blocks (not ``keep_cols``): role r's at r * role_stride values
    Py_ssize_t role_stride
    Py_ssize_t part_stride   # values per image in the gradient buffers GA and GB
    Py_ssize_t conv_end      # theta[0:conv_end] are the stack's parameters
    Py_ssize_t block         # images a part takes through the stack at a time (fixed by the plan)
    Py_ssize_t part_images   # images per part (fixed by the plan)
    bint keep_cols           # the whole batch's im2col rows kept for the backward, else one block's per role
    const double* rates      # (n_stack,) a Dropout row's rate


cdef inline int image_parts(Net* net, Py_ssize_t n) noexcept nogil:
    """Parts of a batch of n images."""
    return <int>((n + net.part_images - 1) // net.part_images) if n > 0 else 1


cdef inline floating* block_cols(Net* net, floating* work, const int64_t* r, const ConvGeom* g, Py_ssize_t lo,
                                 int role) noexcept nogil:
    """Where a (not pointwise) convolution's im2col rows of images [lo, ...) go: in the whole batch's rows
    (``keep_cols``), else in the block of the role that runs them (room for ``net.block`` images)."""
    if net.keep_cols:
        return work + r[SC_COLS] + lo * g.out_pixels * g.K
    return <floating*>net.rwork + role * net.role_stride + r[SC_COLS]


cdef inline uint64_t stack_drop_key(Epoch* e, const int64_t* r, long step) noexcept nogil:
    """A stack Dropout's mask key in the batch of optimizer step ``step`` (counted from 1)."""
    return dropout_key(e.seed, <uint64_t>(step - 1), <uint64_t>r[SC_W])


cdef void stack_forward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                              Py_ssize_t cnt, int role, long step) noexcept nogil:
    """Images [lo, lo + cnt) of the batch (rows of xb, at most ``net.block``) through every layer of the
    stack, in role ``role``."""
    cdef int l
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef floating* out
    cdef const floating* inp = xb + lo * e.d
    cdef ConvGeom g
    for l in range(net.n_stack):
        r = net.stack + N_SCOLS * l
        out = work + r[SC_OUTBUF] + lo * r[SC_OUT]
        if r[SC_KIND] == KIND_CONV:
            g = conv_geom(net.geom + r[SC_GEOM])
            conv_forward_part(inp, cnt, &g, theta + r[SC_W], theta + r[SC_B], <int>r[SC_ACT],
                              block_cols(net, work, r, &g, lo, role) if r[SC_COLS] >= 0 else NULL,
                              work + r[SC_PRE] + lo * r[SC_OUT] if r[SC_PRE] >= 0 else out, out)
        elif r[SC_KIND] == KIND_POOL:
            maxpool_forward_part(inp, cnt, net.geom + r[SC_GEOM], out, net.iwork + r[SC_COLS] + lo * r[SC_OUT])
        elif r[SC_KIND] == KIND_AVGPOOL:
            avgpool_forward_part(inp, cnt, net.geom + r[SC_GEOM], out)
        else:  # Dropout: values lo * size ... of the batch's (its index in the masks' hash)
            dropout_copy(inp, out, cnt * r[SC_OUT], <uint64_t>(lo * r[SC_OUT]), stack_drop_key(e, r, step),
                         net.rates[l], <floating>(1.0 / (1.0 - net.rates[l])))
        inp = out


cdef void stack_forward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n, int p,
                             int role, long step) noexcept nogil:
    """Part p of the batch's images (n rows of xb) through the stack, ``net.block`` images at a time so
    that each layer reads its input from the cache."""
    cdef Py_ssize_t lo = p * net.part_images, hi = min(<Py_ssize_t>n, lo + net.part_images), i0, m
    i0 = lo
    while i0 < hi:
        m = min(net.block, hi - i0)
        stack_forward_block(net, e, theta, xb, i0, m, role, step)
        i0 += m


cdef void stack_backward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                               Py_ssize_t cnt, int p, int role, bint first, long step) noexcept nogil:
    """Images [lo, lo + cnt) of part p back through the stack from dJ/d(stack output) in DTOP: weight
    gradients (part 0 into grad, part p > 0 into GPART block p - 1; set by the part's first block, added
    to by the others) and float64 bias sums."""
    cdef int l, which = 0
    cdef const int64_t* r
    cdef const int64_t* below
    cdef floating* work = <floating*>e.work
    cdef floating* grad = <floating*>e.grad
    cdef floating* src
    cdef floating* dst
    cdef floating* cols
    cdef const floating* inp
    cdef floating* bufs[2]
    cdef ConvGeom g
    src = work + e.offsets[OFF_DTOP] + lo * net.stack[N_SCOLS * (net.n_stack - 1) + SC_OUT]
    bufs[0] = work + e.offsets[OFF_GA] + lo * net.part_stride
    bufs[1] = work + e.offsets[OFF_GB] + lo * net.part_stride
    for l in range(net.n_stack - 1, -1, -1):
        r = net.stack + N_SCOLS * l
        dst = bufs[which] if l > 0 else NULL
        if r[SC_KIND] == KIND_POOL:
            if l == 0:
                break
            maxpool_backward_part(src, net.iwork + r[SC_COLS] + lo * r[SC_OUT], cnt, net.geom + r[SC_GEOM], dst)
        elif r[SC_KIND] == KIND_AVGPOOL:
            if l == 0:
                break
            avgpool_backward_part(src, cnt, net.geom + r[SC_GEOM], dst)
        elif r[SC_KIND] == KIND_DROPOUT:  # the forward's mask on the gradient
            if l == 0:
                break
            dropout_copy(src, dst, cnt * r[SC_OUT], <uint64_t>(lo * r[SC_OUT]), stack_drop_key(e, r, step),
                         net.rates[l], <floating>(1.0 / (1.0 - net.rates[l])))
        else:
            g = conv_geom(net.geom + r[SC_GEOM])
            if l > 0:
                below = net.stack + N_SCOLS * (l - 1)
                inp = work + below[SC_OUTBUF] + lo * below[SC_OUT]
            else:
                inp = xb + lo * e.d
            if r[SC_COLS] >= 0:
                cols = block_cols(net, work, r, &g, lo, role)
                if not net.keep_cols:  # the rows again, from the layer's input (the forward's were overwritten)
                    im2col(inp, cnt, &g, cols)
            else:  # pointwise: the layer's input is its im2col
                cols = <floating*>inp
            # (a registered activation's derivative reads the pre-activation, the others the output)
            conv_backward_part(src, work + (r[SC_PRE] if r[SC_PRE] >= 0 else r[SC_OUTBUF]) + lo * r[SC_OUT],
                               cols, cnt, &g, theta + r[SC_W],
                               <int>r[SC_ACT], src, grad + r[SC_W] if p == 0 else work + r[SC_GPART] + (p - 1) * g.K * g.F, 1.0,
                               0.0 if first else 1.0, net.dwork + r[SC_SUMS] + p * g.F, not first, dst)
        src = dst
        which = 1 - which


cdef void stack_backward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n, int p,
                              int role, long step) noexcept nogil:
    """Part p of the batch's images back through the stack, ``net.block`` images at a time (an empty part,
    of an empty batch, still sets its gradients to zero)."""
    cdef Py_ssize_t lo = p * net.part_images, hi = min(<Py_ssize_t>n, lo + net.part_images), i0, m
    i0 = lo
    while True:
        m = min(net.block, hi - i0)
        stack_backward_block(net, e, theta, xb, i0, m, p, role, i0 == lo, step)
        i0 += m
        if i0 >= hi:
            break


cdef void combine_range(floating* gw, const floating* gparts, int parts, Py_ssize_t KF, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil:
    """gw[lo:hi] += the weight gradients of parts 1, 2, ... (blocks of KF values in gparts), in part order."""
    cdef Py_ssize_t i
    cdef int q
    for q in range(parts - 1):
        for i in range(lo, hi):
            gw[i] = gw[i] + gparts[q * KF + i]


cdef void team_stack_combine(Team* t, Epoch* e, Net* net, int n, floating* grad) noexcept nogil:
    """The stack's gradients of the batch in ``grad``: every conv layer's part weight gradients added to part
    0's in part order (cut into parts of the weights), and its bias gradient from the parts' float64 sums."""
    cdef int l, parts = image_parts(net, n), cp, p, q
    cdef Py_ssize_t i, KF, F
    cdef uint32_t base
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef const double* s
    cdef double acc
    for l in range(net.n_stack):
        r = net.stack + N_SCOLS * l
        if r[SC_KIND] != KIND_CONV:
            continue
        F = net.geom[r[SC_GEOM] + G_F]
        KF = r[SC_B] - r[SC_W]
        if parts > 1:
            cp = vector_parts(KF * (parts - 1))
            if cp == 1:
                if serial(t, e):
                    combine_range(grad + r[SC_W], work + r[SC_GPART], parts, KF, 0, KF)
            else:
                base = begin_parts(t, e, cp)
                while take_part(e, base, cp, &p):
                    combine_range(grad + r[SC_W], work + r[SC_GPART], parts, KF, vector_bound(KF, cp, p),
                                  vector_bound(KF, cp, p + 1))
                    part_done(e)
                sync(t, e)
        if serial(t, e):
            s = net.dwork + r[SC_SUMS]
            for i in range(F):
                acc = s[i]
                for q in range(1, parts):
                    acc = acc + s[q * F + i]
                grad[r[SC_B] + i] = <floating>acc


cdef void team_net_batch(Team* t, Epoch* e, Net* net, floating* theta, Py_ssize_t b, Py_ssize_t start, int buf,
                         long step) noexcept nogil:
    """One batch of a convolutional network (see the top of this file)."""
    cdef Py_ssize_t stop = min(start + e.batch, e.N), nstop = min(stop + e.batch, e.N)
    cdef int n = <int>(stop - start), p, parts = image_parts(net, stop - start)
    cdef uint32_t base
    cdef floating* work = <floating*>e.work
    cdef floating* xb = work + e.offsets[OFF_XB1 if buf else OFF_XB0]
    cdef floating* tb = work + e.offsets[OFF_TB1 if buf else OFF_TB0]
    cdef floating* top = xb
    cdef Mat inp
    cdef double lr = batch_lr(e, b)
    if net.n_stack > 0:
        top = work + net.stack[N_SCOLS * (net.n_stack - 1) + SC_OUTBUF]
        base = begin_parts(t, e, parts)
        while take_part(e, base, parts, &p):
            stack_forward_part(net, e, theta, xb, n, p, t.tid, step)
            part_done(e)
        sync(t, e)
    inp = mat(top, n, <int>e.layers[COL_IN], sizeof(floating))
    team_dense_forward(t, e, theta, inp, n, b, stop, nstop, buf, step)
    team_loss(t, e, tb, batch_weights(e, buf), n, b)
    team_dense_backward(t, e, theta, inp, n, work + e.offsets[OFF_DTOP] if net.n_stack > 0 else NULL, lr, step)
    if net.n_stack > 0:
        base = begin_parts(t, e, parts)
        while take_part(e, base, parts, &p):
            stack_backward_part(net, e, theta, xb, n, p, t.tid, step)
            part_done(e)
        sync(t, e)
        team_stack_combine(t, e, net, n, <floating*>e.grad)
    if e.opt != OPT_SGD:
        team_optimizer(t, e, theta, step, e.n_params, lr)
    elif net.conv_end > 0:
        team_optimizer(t, e, theta, step, net.conv_end, lr)
    end_batch(t, e, b)

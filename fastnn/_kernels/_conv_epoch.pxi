# One whole training epoch of a convolutional network: a stack of conv and max-pool layers, a flatten
# (free in NHWC), then dense layers and a fused loss, in the same parallel region, team and barriers as the
# dense epoch (_epoch.pxi).
#
# Per batch:
#   * the stack's forward runs in two parts of the batch's images (``part_range``): thread t runs parts
#     t, t + nth, ..., each through every conv and pool layer with no barrier in between (an image needs
#     nothing from another image), a block of a few images at a time (the plan's ``block``: about 1 MiB
#     of their activations and im2col rows, so that every layer reads its input from the cache), then one
#     barrier;
#   * the dense layers, the loss and the dense backward are the dense epoch's (``team_dense_forward``,
#     ``team_loss``, ``team_dense_backward``), which also gives dJ/d(stack output);
#   * the stack's backward again in the two parts of images, block by block, with each convolution's
#     im2col rows from the forward when the plan keeps the whole batch's (``keep_cols``: when they are
#     small), else computed again from the layer's input (kept for the whole batch): at batch 256 the
#     issue's network's rows take 47 MB, far beyond the caches, and keeping them made batch 256 slower
#     than batch 32.  Part 0 writes its weight gradient into
#     ``grad``, part 1 into a scratch block, each its float64 bias sums; after a barrier thread 0 adds
#     part 1's to part 0's, and the optimizer steps (SGD steps the dense layers inside their products, as
#     the dense epoch does, and the stack's parameters after the batch).
# The parts are fixed by the batch size, so one thread and two give the same numbers bitwise.

cdef enum:
    KIND_CONV = 0
    KIND_POOL = 1

# Columns of the plan's stack table (the conv and pool layers before the flatten), one row per layer.
cdef enum:
    SC_KIND = 0
    SC_IN = 1        # values per image in
    SC_OUT = 2       # values per image out
    SC_W = 3         # conv: theta offsets of W and b
    SC_B = 4
    SC_ACT = 5
    SC_OUTBUF = 6    # work offset of the layer's output (conv: post, which pre shares)
    SC_COLS = 7      # conv: work offset of its im2col rows (the batch's, or a block per part; -1 when pointwise);
    #                  pool: iwork offset of argmax
    SC_GEOM = 8      # offset of its geometry in the plan's geometry vector
    SC_GPART = 9     # conv: work offset of part 1's weight gradient (K*F values)
    SC_SUMS = 10     # conv: dwork offset of the two parts' float64 bias sums (2F values)
    N_SCOLS = 11

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
    Py_ssize_t part_stride   # values per image in the gradient buffers GA and GB
    Py_ssize_t conv_end      # theta[0:conv_end] are the stack's parameters
    Py_ssize_t block         # images a part takes through the stack at a time (fixed by the plan)
    bint keep_cols           # the whole batch's im2col rows kept for the backward, else one block's per part


cdef inline floating* block_cols(Net* net, floating* work, const int64_t* r, const ConvGeom* g, Py_ssize_t lo,
                                 int p) noexcept nogil:
    """Where a (not pointwise) convolution's im2col rows of images [lo, ...) of part p go: in the whole
    batch's rows (``keep_cols``), else in part p's block (room for ``net.block`` images)."""
    if net.keep_cols:
        return work + r[SC_COLS] + lo * g.out_pixels * g.K
    return work + r[SC_COLS] + p * net.block * g.out_pixels * g.K


cdef void stack_forward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                              Py_ssize_t cnt, int p) noexcept nogil:
    """Images [lo, lo + cnt) of the batch (rows of xb, at most ``net.block``) of part p through every layer
    of the stack."""
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
                              block_cols(net, work, r, &g, lo, p) if r[SC_COLS] >= 0 else NULL, out, out)
        else:
            maxpool_forward_part(inp, cnt, net.geom + r[SC_GEOM], out, net.iwork + r[SC_COLS] + lo * r[SC_OUT])
        inp = out


cdef void stack_forward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n,
                             int p) noexcept nogil:
    """Part p of the batch's images (n rows of xb) through the stack, ``net.block`` images at a time so
    that each layer reads its input from the cache."""
    cdef Py_ssize_t lo, cnt, i0, m
    part_range(0, n, p, &lo, &cnt)
    i0 = lo
    while i0 < lo + cnt:
        m = min(net.block, lo + cnt - i0)
        stack_forward_block(net, e, theta, xb, i0, m, p)
        i0 += m


cdef void stack_backward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                               Py_ssize_t cnt, int p, bint first) noexcept nogil:
    """Images [lo, lo + cnt) of part p back through the stack from dJ/d(stack output) in DTOP: weight
    gradients (part 0 into grad, part 1 into the GPART blocks; set by the part's first block, added to
    by the others) and float64 bias sums."""
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
        else:
            g = conv_geom(net.geom + r[SC_GEOM])
            if l > 0:
                below = net.stack + N_SCOLS * (l - 1)
                inp = work + below[SC_OUTBUF] + lo * below[SC_OUT]
            else:
                inp = xb + lo * e.d
            if r[SC_COLS] >= 0:
                cols = block_cols(net, work, r, &g, lo, p)
                if not net.keep_cols:  # the rows again, from the layer's input (the forward's were overwritten)
                    im2col(inp, cnt, &g, cols)
            else:  # pointwise: the layer's input is its im2col
                cols = <floating*>inp
            conv_backward_part(src, work + r[SC_OUTBUF] + lo * r[SC_OUT], cols, cnt, &g, theta + r[SC_W],
                               <int>r[SC_ACT], src, grad + r[SC_W] if p == 0 else work + r[SC_GPART], 1.0,
                               0.0 if first else 1.0, net.dwork + r[SC_SUMS] + p * g.F, not first, dst)
        src = dst
        which = 1 - which


cdef void stack_backward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n,
                              int p) noexcept nogil:
    """Part p of the batch's images back through the stack, ``net.block`` images at a time (an empty part
    still sets its gradients to zero)."""
    cdef Py_ssize_t lo, cnt, i0, m
    part_range(0, n, p, &lo, &cnt)
    i0 = lo
    while True:
        m = min(net.block, lo + cnt - i0)
        stack_backward_block(net, e, theta, xb, i0, m, p, i0 == lo)
        i0 += m
        if i0 >= lo + cnt:
            break


cdef void stack_combine(Net* net, Epoch* e, floating* grad) noexcept nogil:
    # IN/OUT grad (e.grad): the stack's weight gradients of part 0 in, of the batch out; OUT its bias gradients
    """grad of the stack: part 1's weight gradients added to part 0's; the bias sums of the two parts."""
    cdef int l
    cdef Py_ssize_t i, KF, F
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef floating* gw
    cdef const floating* gp
    cdef const double* s
    for l in range(net.n_stack):
        r = net.stack + N_SCOLS * l
        if r[SC_KIND] != KIND_CONV:
            continue
        F = net.geom[r[SC_GEOM] + G_F]
        KF = r[SC_B] - r[SC_W]
        gw = grad + r[SC_W]
        gp = work + r[SC_GPART]
        for i in range(KF):
            gw[i] = gw[i] + gp[i]
        s = net.dwork + r[SC_SUMS]
        for i in range(F):
            grad[r[SC_B] + i] = <floating>(s[i] + s[F + i])


cdef void team_net_batch(Team* t, Epoch* e, Net* net, floating* theta, Py_ssize_t b, Py_ssize_t start, int buf,
                         long step) noexcept nogil:
    """One batch of a convolutional network (see the top of this file)."""
    cdef Py_ssize_t stop = min(start + e.batch, e.N), nstop = min(stop + e.batch, e.N)
    cdef int n = <int>(stop - start), p
    cdef floating* work = <floating*>e.work
    cdef floating* xb = work + e.offsets[OFF_XB1 if buf else OFF_XB0]
    cdef floating* tb = work + e.offsets[OFF_TB1 if buf else OFF_TB0]
    cdef floating* top = xb
    cdef Mat inp
    if net.n_stack > 0:
        top = work + net.stack[N_SCOLS * (net.n_stack - 1) + SC_OUTBUF]
        sync(t, e)  # the batch's images are gathered
        p = t.tid
        while p < 2:
            stack_forward_part(net, e, theta, xb, n, p)
            p += t.nth
        t.pending = 1
        sync(t, e)
    inp = mat(top, n, <int>e.layers[COL_IN], sizeof(floating))
    team_dense_forward(t, e, theta, inp, n, stop, nstop, buf)
    team_loss(t, e, tb, n, b)
    team_dense_backward(t, e, theta, inp, n, work + e.offsets[OFF_DTOP] if net.n_stack > 0 else NULL)
    if net.n_stack > 0:
        sync(t, e)
        if not e.stop:
            p = t.tid
            while p < 2:
                stack_backward_part(net, e, theta, xb, n, p)
                p += t.nth
        t.pending = 1
        sync(t, e)
        if serial(t, e):
            stack_combine(net, e, <floating*>e.grad)
    if e.opt != OPT_SGD:
        team_optimizer(t, e, theta, step, e.n_params)
    elif net.conv_end > 0:
        team_optimizer(t, e, theta, step, net.conv_end)
    sync(t, e)  # the batch buffers are reused from here on

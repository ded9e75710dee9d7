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
# A BatchNorm row needs its batch's statistics before any image goes through it, and its batch sums before
# any image's gradient goes back through it: the stack runs in segments that start at its BatchNorm rows.
# Before a segment's forward, the parts' float64 sums of the BatchNorm's input per channel, added in part
# order, give the mean, then the same for the squared deviations the variance (two steps with a wait after
# each); in the backward, the parts' sums of dY and dY * xhat give gamma's and beta's gradients first.  A
# BatchNorm after a dense layer runs in parts of its columns instead (each column over every row, as the
# bias sums do); the running statistics are updated after the batch's loss, when it is finite.
# The parts are fixed by the batch size, so any number of roles gives the same numbers bitwise.

cdef enum:
    KIND_CONV = 0
    KIND_POOL = 1
    KIND_AVGPOOL = 2
    KIND_DROPOUT = 3   # SC_W: its layer index in the model (its masks' key); its rate in Net.rates
    KIND_BNORM = 4     # BatchNorm: SC_W, SC_B gamma and beta in theta; SC_COLS its running statistics' offset
    #                    in Epoch.running; SC_SUMS its statistics in dwork (``bn_stack_stats``); geometry (C,
    #                    pixels per image); its eps and momentum in Net.rates

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
    const double* rates      # (n_stack, 2) a Dropout row's rate, a BatchNorm row's eps and momentum
    int max_parts            # image parts of a full batch (the room for parts' sums in dwork)


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


cdef inline double* bn_stack_stats(Net* net, const int64_t* r) noexcept nogil:
    """A stack BatchNorm row's block of dwork: the parts' sums (``max_parts`` blocks of 2 C values), then
    the batch's mean, variance, invstd, sum(dY) and sum(dY * xhat) (C values each)."""
    return net.dwork + r[SC_SUMS] + 2 * net.max_parts * net.geom[r[SC_GEOM]]


cdef inline const floating* stack_input(Net* net, floating* work, const floating* xb, int l, Py_ssize_t lo,
                                        Py_ssize_t d) noexcept nogil:
    """Where stack row l reads image lo's input: the row below's output, or the batch's rows for row 0."""
    cdef const int64_t* below
    if l == 0:
        return xb + lo * d
    below = net.stack + N_SCOLS * (l - 1)
    return work + below[SC_OUTBUF] + lo * below[SC_OUT]


cdef inline floating* stack_out_grad(Net* net, Epoch* e, floating* work, int l, Py_ssize_t lo) noexcept nogil:
    """Where the backward keeps dJ/d(row l's output) of the block of images that starts at image lo: DTOP
    for the top row (every image in turn), else the gradient buffer GA or GB that row l + 1 writes (blocks
    ``part_stride`` values per image apart); ``work`` is e.work."""
    if l == net.n_stack - 1:
        return work + e.offsets[OFF_DTOP] + lo * net.stack[N_SCOLS * l + SC_OUT]
    return work + e.offsets[OFF_GA if (net.n_stack - 2 - l) % 2 == 0 else OFF_GB] + lo * net.part_stride


cdef inline int next_bnorm(Net* net, int l) noexcept nogil:
    """The first BatchNorm row after row l (n_stack when none): where the stack's next segment starts."""
    l += 1
    while l < net.n_stack and net.stack[N_SCOLS * l + SC_KIND] != KIND_BNORM:
        l += 1
    return l


cdef inline double parts_sum(const double* s, Py_ssize_t stride, int parts) noexcept nogil:
    """s[0] + s[stride] + ... + s[(parts - 1) * stride], in part order (the parts' float64 sums of one value)."""
    cdef double acc = s[0]
    cdef int q
    for q in range(1, parts):
        acc = acc + s[q * stride]
    return acc


cdef void team_stack_bn_stats(Team* t, Epoch* e, Net* net, int l, const floating* xb, int n) noexcept nogil:
    """Stack BatchNorm row l's batch statistics over its input (every image's pixels): each part's float64
    sums per channel, added in part order (the mean); then the same for the squared deviations (the
    biased variance, invstd)."""
    cdef const int64_t* r = net.stack + N_SCOLS * l
    cdef Py_ssize_t C = net.geom[r[SC_GEOM]], pix = net.geom[r[SC_GEOM] + 1], lo, hi, c, size = r[SC_IN]
    cdef int parts = image_parts(net, n), p
    cdef double* partial = net.dwork + r[SC_SUMS]
    cdef double* mean = bn_stack_stats(net, r)
    cdef double* var = mean + C
    cdef double* invstd = mean + 2 * C
    cdef double count = <double>n * pix
    cdef const floating* inp = stack_input(net, <floating*>e.work, xb, l, 0, e.d)
    cdef uint32_t base
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        lo = p * net.part_images
        hi = min(<Py_ssize_t>n, lo + net.part_images)
        bn_sums(inp + lo * size, (hi - lo) * pix, C, C, partial + p * C)
        part_done(e)
    sync(t, e)
    if serial(t, e):
        for c in range(C):
            mean[c] = parts_sum(partial + c, C, parts) / count
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        lo = p * net.part_images
        hi = min(<Py_ssize_t>n, lo + net.part_images)
        bn_squares(inp + lo * size, (hi - lo) * pix, C, C, mean, partial + p * C)
        part_done(e)
    sync(t, e)
    if serial(t, e):
        for c in range(C):
            var[c] = parts_sum(partial + c, C, parts) / count
            invstd[c] = 1.0 / sqrt(var[c] + net.rates[2 * l])


cdef void stack_bn_part_sums(Net* net, Epoch* e, const floating* xb, int l, int n, int p) noexcept nogil:
    """Part p's sum(dY) and sum(dY * xhat) of stack BatchNorm row l, block by block as the backward keeps
    dY (see stack_out_grad), into its parts' sums in dwork."""
    cdef const int64_t* r = net.stack + N_SCOLS * l
    cdef Py_ssize_t C = net.geom[r[SC_GEOM]], pix = net.geom[r[SC_GEOM] + 1]
    cdef Py_ssize_t lo = p * net.part_images, hi = min(<Py_ssize_t>n, lo + net.part_images), i0, m
    cdef double* mean = bn_stack_stats(net, r)
    cdef double* partial = net.dwork + r[SC_SUMS] + p * 2 * C
    cdef floating* work = <floating*>e.work
    i0 = lo
    while i0 < hi:
        m = min(net.block, hi - i0)
        bn_backward_sums(stack_out_grad(net, e, work, l, i0), stack_input(net, work, xb, l, i0, e.d), m * pix, C, C,
                         mean, mean + 2 * C, partial, partial + C, i0 > lo)
        i0 += m


cdef void team_stack_bn_grads(Team* t, Epoch* e, Net* net, int l, const floating* xb, int n) noexcept nogil:
    """Stack BatchNorm row l's sum(dY) and sum(dY * xhat) over the batch (the parts' float64 sums added in
    part order), which are its beta's and gamma's gradients and what its input's gradient needs."""
    cdef const int64_t* r = net.stack + N_SCOLS * l
    cdef Py_ssize_t C = net.geom[r[SC_GEOM]], c
    cdef int parts = image_parts(net, n), p
    cdef double* partial = net.dwork + r[SC_SUMS]
    cdef double* sdy = bn_stack_stats(net, r) + 3 * C
    cdef double* sdyx = sdy + C
    cdef floating* grad = <floating*>e.grad
    cdef uint32_t base
    base = begin_parts(t, e, parts)
    while take_part(e, base, parts, &p):
        stack_bn_part_sums(net, e, xb, l, n, p)
        part_done(e)
    sync(t, e)
    if serial(t, e):
        for c in range(C):
            sdy[c] = parts_sum(partial + c, 2 * C, parts)
            sdyx[c] = parts_sum(partial + C + c, 2 * C, parts)
            grad[r[SC_B] + c] = <floating>sdy[c]
            grad[r[SC_W] + c] = <floating>sdyx[c]


cdef void stack_bn_running(Net* net, Epoch* e, int n) noexcept nogil:
    """Every stack BatchNorm row's running mean and variance, from the batch's (n images)."""
    cdef int l
    cdef const int64_t* r
    cdef double* stats
    for l in range(net.n_stack):
        r = net.stack + N_SCOLS * l
        if r[SC_KIND] == KIND_BNORM:
            stats = bn_stack_stats(net, r)
            bn_update_running(e.running + r[SC_COLS], stats, stats + net.geom[r[SC_GEOM]], net.geom[r[SC_GEOM]],
                              <double>n * net.geom[r[SC_GEOM] + 1], net.rates[2 * l + 1])


cdef void stack_forward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                              Py_ssize_t cnt, int role, long step, int l0, int l1) noexcept nogil:
    """Images [lo, lo + cnt) of the batch (rows of xb, at most ``net.block``) through rows [l0, l1) of the
    stack, in role ``role``."""
    cdef int l
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef floating* out
    cdef const floating* inp = stack_input(net, work, xb, l0, lo, e.d)
    cdef double* stats
    cdef ConvGeom g
    for l in range(l0, l1):
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
        elif r[SC_KIND] == KIND_BNORM:  # with the batch's statistics (team_stack_bn_stats)
            stats = bn_stack_stats(net, r)
            bn_apply(inp, cnt * net.geom[r[SC_GEOM] + 1], net.geom[r[SC_GEOM]], theta + r[SC_W], theta + r[SC_B],
                     stats, stats + 2 * net.geom[r[SC_GEOM]], out)
        else:  # Dropout: values lo * size ... of the batch's (its index in the masks' hash)
            dropout_copy(inp, out, cnt * r[SC_OUT], <uint64_t>(lo * r[SC_OUT]), stack_drop_key(e, r, step),
                         net.rates[2 * l], <floating>(1.0 / (1.0 - net.rates[2 * l])))
        inp = out


cdef void stack_forward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n, int p,
                             int role, long step, int l0, int l1) noexcept nogil:
    """Part p of the batch's images (n rows of xb) through rows [l0, l1) of the stack, ``net.block`` images
    at a time so that each layer reads its input from the cache."""
    cdef Py_ssize_t lo = p * net.part_images, hi = min(<Py_ssize_t>n, lo + net.part_images), i0, m
    i0 = lo
    while i0 < hi:
        m = min(net.block, hi - i0)
        stack_forward_block(net, e, theta, xb, i0, m, role, step, l0, l1)
        i0 += m


cdef void stack_backward_block(Net* net, Epoch* e, floating* theta, const floating* xb, Py_ssize_t lo,
                               Py_ssize_t cnt, int p, int role, bint first, long step, int n, int top,
                               int bottom) noexcept nogil:
    """Images [lo, lo + cnt) of part p back through rows top, top - 1, ..., bottom of the stack from
    dJ/d(row top's output) (``stack_out_grad``): weight gradients (part 0 into grad, part p > 0 into GPART
    block p - 1; set by the part's first block, added to by the others), float64 bias sums, and a
    BatchNorm row's input gradient from its batch sums (team_stack_bn_grads; n images in the batch)."""
    cdef int l
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef floating* grad = <floating*>e.grad
    cdef floating* src = stack_out_grad(net, e, work, top, lo)
    cdef floating* dst
    cdef floating* cols
    cdef const floating* inp
    cdef double* stats
    cdef Py_ssize_t C
    cdef ConvGeom g
    for l in range(top, bottom - 1, -1):
        r = net.stack + N_SCOLS * l
        dst = stack_out_grad(net, e, work, l - 1, lo) if l > 0 else NULL
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
                         net.rates[2 * l], <floating>(1.0 / (1.0 - net.rates[2 * l])))
        elif r[SC_KIND] == KIND_BNORM:  # gamma's and beta's gradients are the batch sums, already in grad
            if l == 0:
                break
            stats = bn_stack_stats(net, r)
            C = net.geom[r[SC_GEOM]]
            bn_backward_dx(src, stack_input(net, work, xb, l, lo, e.d), cnt * net.geom[r[SC_GEOM] + 1], C, C,
                           theta + r[SC_W], stats, stats + 2 * C, stats + 3 * C, stats + 4 * C,
                           <double>n * net.geom[r[SC_GEOM] + 1], dst)
        else:
            g = conv_geom(net.geom + r[SC_GEOM])
            inp = stack_input(net, work, xb, l, lo, e.d)
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


cdef void stack_backward_part(Net* net, Epoch* e, floating* theta, const floating* xb, int n, int p,
                              int role, long step, int top, int bottom) noexcept nogil:
    """Part p of the batch's images back through rows top ... bottom of the stack, ``net.block`` images at a
    time (an empty part, of an empty batch, still sets its gradients to zero)."""
    cdef Py_ssize_t lo = p * net.part_images, hi = min(<Py_ssize_t>n, lo + net.part_images), i0, m
    i0 = lo
    while True:
        m = min(net.block, hi - i0)
        stack_backward_block(net, e, theta, xb, i0, m, p, role, i0 == lo, step, n, top, bottom)
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
    cdef int l, parts = image_parts(net, n), cp, p
    cdef Py_ssize_t i, KF, F
    cdef uint32_t base
    cdef const int64_t* r
    cdef floating* work = <floating*>e.work
    cdef const double* s
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
                grad[r[SC_B] + i] = <floating>parts_sum(s + i, F, parts)


cdef void team_stack_forward(Team* t, Epoch* e, Net* net, floating* theta, const floating* xb, int n,
                             long step) noexcept nogil:
    """The stack's forward of a batch of n images, in segments that start at its BatchNorm rows: the parts
    run each segment through with no wait inside it, after its BatchNorm's batch statistics."""
    cdef int parts = image_parts(net, n), p, l0 = 0, l1
    cdef uint32_t base
    while l0 < net.n_stack:
        l1 = next_bnorm(net, l0)
        if net.stack[N_SCOLS * l0 + SC_KIND] == KIND_BNORM:
            team_stack_bn_stats(t, e, net, l0, xb, n)
        base = begin_parts(t, e, parts)
        while take_part(e, base, parts, &p):
            stack_forward_part(net, e, theta, xb, n, p, t.tid, step, l0, l1)
            part_done(e)
        sync(t, e)
        l0 = l1


cdef void team_stack_backward(Team* t, Epoch* e, Net* net, floating* theta, const floating* xb, int n,
                              long step) noexcept nogil:
    """The stack's backward of a batch of n images, in segments from the top, each from a row down to the row
    above the next BatchNorm row below it: when the segment's top row is a BatchNorm, first its batch sums
    (its gamma's and beta's gradients, and what its input's gradient needs); then the parts run the segment
    down with no wait inside it."""
    cdef int parts = image_parts(net, n), p, top = net.n_stack - 1, bottom
    cdef bint bnorm
    cdef uint32_t base
    while top >= 0:
        bnorm = net.stack[N_SCOLS * top + SC_KIND] == KIND_BNORM
        if bnorm:
            team_stack_bn_grads(t, e, net, top, xb, n)
        bottom = top
        while bottom > 0 and net.stack[N_SCOLS * (bottom - 1) + SC_KIND] != KIND_BNORM:
            bottom -= 1
        if not (bnorm and top == 0):  # (row 0's BatchNorm needs no input gradient)
            base = begin_parts(t, e, parts)
            while take_part(e, base, parts, &p):
                stack_backward_part(net, e, theta, xb, n, p, t.tid, step, top, bottom)
                part_done(e)
            sync(t, e)
        top = bottom - 1


cdef void team_net_batch(Team* t, Epoch* e, Net* net, floating* theta, Py_ssize_t b, Py_ssize_t start, int buf,
                         long step) noexcept nogil:
    """One batch of a convolutional network (see the top of this file)."""
    cdef Py_ssize_t stop = min(start + e.batch, e.N), nstop = min(stop + e.batch, e.N)
    cdef int n = <int>(stop - start)
    cdef floating* work = <floating*>e.work
    cdef floating* xb = work + e.offsets[OFF_XB1 if buf else OFF_XB0]
    cdef floating* tb = work + e.offsets[OFF_TB1 if buf else OFF_TB0]
    cdef floating* top = xb
    cdef Mat inp
    cdef double lr = batch_lr(e, b)
    if net.n_stack > 0:
        top = work + net.stack[N_SCOLS * (net.n_stack - 1) + SC_OUTBUF]
        team_stack_forward(t, e, net, theta, xb, n, step)
    inp = mat(top, n, <int>e.layers[COL_IN], sizeof(floating))
    team_dense_forward(t, e, theta, inp, n, b, stop, nstop, buf, step)
    team_loss(t, e, tb, batch_weights(e, buf), n, b)
    if e.running != NULL and serial(t, e):  # after the loss: not from a batch whose loss is not finite
        stack_bn_running(net, e, n)
        dense_bn_running(e, n)
    team_dense_backward(t, e, theta, inp, n, work + e.offsets[OFF_DTOP] if net.n_stack > 0 else NULL, lr, step)
    if net.n_stack > 0:
        team_stack_backward(t, e, net, theta, xb, n, step)
        team_stack_combine(t, e, net, n, <floating*>e.grad)
    if e.opt != OPT_SGD:
        team_optimizer(t, e, theta, step, e.n_params, lr)
    elif net.conv_end > 0:
        team_optimizer(t, e, theta, step, net.conv_end, lr)
    end_batch(t, e, b)

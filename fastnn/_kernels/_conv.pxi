# Convolution and max-pooling on NHWC images (channels last), over a range of images.
#
# Layout: images (n, H, W, C) C-contiguous; conv weights (KH, KW, C, F), i.e. one (KH*KW*C, F) matrix.
# im2col turns each output pixel into one row of KH*KW*C values (for a fixed kernel row kh the KW*C values
# are one contiguous run of the image row), so the convolution of n images is one product
#   cols (n*OH*OW, KH*KW*C) @ W (KH*KW*C, F) -> (n*OH*OW, F),
# which IS the NHWC output: no transpose, and the bias and activation fuse over its rows exactly as for a
# dense layer.  Pooling and the activations run over contiguous channels; flattening NHWC is free.
#
# Every function here works on one range of images (pointers at the range's first image, a count), so
# that a batch's images can be cut into parts for the team: the parts are fixed by the shapes, so any
# number of threads gives the same numbers.

# Entries of a convolution's geometry vector (fastnn.functional builds it; the epoch plan's table too).
cdef enum:
    G_H = 0
    G_W = 1
    G_C = 2
    G_KH = 3
    G_KW = 4
    G_F = 5
    G_STRIDE = 6
    G_PAD_TOP = 7
    G_PAD_LEFT = 8
    G_OH = 9
    G_OW = 10
    N_GEOM = 11

#: Bytes of input-gradient columns (dpre @ W.T) computed and scattered back at a time: about half of a
#: core's L2 cache, so that col2im reads them from the cache.
cdef Py_ssize_t DCOLS_BLOCK_BYTES = 256 * 1024

ctypedef struct ConvGeom:
    Py_ssize_t H, W, C          # input image
    Py_ssize_t KH, KW, F        # kernel and output channels
    Py_ssize_t stride, pad_top, pad_left
    Py_ssize_t OH, OW           # output image
    Py_ssize_t K                # KH * KW * C, a row of cols
    Py_ssize_t in_size, out_pixels  # H * W * C, OH * OW


cdef inline ConvGeom conv_geom(const int64_t* v) noexcept nogil:
    cdef ConvGeom g
    g.H, g.W, g.C = v[G_H], v[G_W], v[G_C]
    g.KH, g.KW, g.F = v[G_KH], v[G_KW], v[G_F]
    g.stride, g.pad_top, g.pad_left = v[G_STRIDE], v[G_PAD_TOP], v[G_PAD_LEFT]
    g.OH, g.OW = v[G_OH], v[G_OW]
    g.K = g.KH * g.KW * g.C
    g.in_size = g.H * g.W * g.C
    g.out_pixels = g.OH * g.OW
    return g


cdef inline void part_range(Py_ssize_t c0, Py_ssize_t cn, int p, int parts, Py_ssize_t* lo,
                            Py_ssize_t* n) noexcept nogil:
    """Images [lo, lo + n) of part p of ``parts`` of the chunk [c0, c0 + cn)."""
    lo[0] = c0 + cn * p // parts
    n[0] = c0 + cn * (p + 1) // parts - lo[0]


cdef inline bint conv_is_pointwise(const ConvGeom* g) noexcept nogil:
    """A 1x1 kernel, stride 1, no padding: the images themselves are the im2col rows."""
    return g.KH == 1 and g.KW == 1 and g.stride == 1 and g.pad_top == 0 and g.pad_left == 0


cdef inline void im2col_pixel(const floating* img, const ConvGeom* g, Py_ssize_t oh, Py_ssize_t ow,
                              floating* dst) noexcept nogil:
    """One output pixel's im2col row, with zeros where its window covers the padding."""
    cdef Py_ssize_t kh, ih, j, C = g.C, KWC = g.KW * g.C, lo, hi
    cdef Py_ssize_t iw0 = ow * g.stride - g.pad_left
    cdef Py_ssize_t kw0 = max(<Py_ssize_t>0, -iw0), kw1 = min(g.KW, g.W - iw0)
    cdef const floating* src
    lo = kw0 * C
    hi = kw1 * C if kw1 > kw0 else lo
    for kh in range(g.KH):
        ih = oh * g.stride - g.pad_top + kh
        if ih < 0 or ih >= g.H or hi == lo:
            for j in range(KWC):
                dst[j] = 0
        else:
            src = img + (ih * g.W + iw0) * C  # may point before the row: only [lo, hi) is read
            for j in range(lo):
                dst[j] = 0
            for j in range(lo, hi):
                dst[j] = src[j]
            for j in range(hi, KWC):
                dst[j] = 0
        dst += KWC


cdef inline void interior_range(Py_ssize_t size, Py_ssize_t k, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t out,
                                Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """The outputs [lo, hi) whose windows lie inside the image along one axis (no padding covered)."""
    lo[0] = min((pad + stride - 1) // stride, out)
    hi[0] = (size - k + pad) // stride + 1 if size - k + pad >= 0 else 0
    hi[0] = max(lo[0], min(hi[0], out))


cdef void im2col(const floating* X, Py_ssize_t n, const ConvGeom* g, floating* cols) noexcept nogil:
    # IN X (n, H, W, C); OUT cols (n*OH*OW, KH*KW*C), zeros where the window covers the padding
    """Each output pixel's receptive field as one row, (kh, kw, c) order like W's rows.  Windows inside the
    image copy KH runs of KW*C values (a short run, KW*C < 16, as a K-entry gather from offsets computed
    once); the border pixels go through ``im2col_pixel``."""
    cdef Py_ssize_t i, oh, ow, kh, kw, c, j, k, KWC = g.KW * g.C, oh0, oh1, ow0, ow1, step = g.stride * g.C
    cdef floating* dst
    cdef const floating* img
    cdef const floating* src
    cdef int32_t offs[64]
    cdef bint gather = KWC < 16 and g.K <= 64
    interior_range(g.H, g.KH, g.stride, g.pad_top, g.OH, &oh0, &oh1)
    interior_range(g.W, g.KW, g.stride, g.pad_left, g.OW, &ow0, &ow1)
    if gather:
        k = 0
        for kh in range(g.KH):
            for kw in range(g.KW):
                for c in range(g.C):
                    offs[k] = <int32_t>((kh * g.W + kw) * g.C + c)
                    k += 1
    for i in range(n):
        img = X + i * g.in_size
        for oh in range(g.OH):
            dst = cols + (i * g.OH + oh) * g.OW * g.K
            if oh < oh0 or oh >= oh1:
                for ow in range(g.OW):
                    im2col_pixel(img, g, oh, ow, dst + ow * g.K)
                continue
            for ow in range(ow0):
                im2col_pixel(img, g, oh, ow, dst + ow * g.K)
            src = img + ((oh * g.stride - g.pad_top) * g.W + ow0 * g.stride - g.pad_left) * g.C
            if gather:
                for ow in range(ow0, ow1):
                    for k in range(g.K):
                        dst[ow * g.K + k] = src[offs[k]]
                    src += step
            else:
                for ow in range(ow0, ow1):
                    for kh in range(g.KH):
                        for j in range(KWC):
                            dst[ow * g.K + kh * KWC + j] = src[kh * g.W * g.C + j]
                    src += step
            for ow in range(ow1, g.OW):
                im2col_pixel(img, g, oh, ow, dst + ow * g.K)


cdef void col2im(const floating* dcols, Py_ssize_t n, const ConvGeom* g, floating* dX) noexcept nogil:
    # IN dcols (n*OH*OW, KH*KW*C); OUT dX (n, H, W, C)
    """The adjoint of im2col: dX = 0, then every row's values added back where im2col took them from."""
    cdef Py_ssize_t i, oh, ow, kh, ih, iw0, kw0, kw1, j, C = g.C, KWC = g.KW * g.C, lo, hi
    cdef const floating* src
    cdef floating* img
    cdef floating* dst
    if n * g.in_size > 0:
        memset(dX, 0, n * g.in_size * sizeof(floating))
    for i in range(n):
        img = dX + i * g.in_size
        for oh in range(g.OH):
            for ow in range(g.OW):
                src = dcols + ((i * g.OH + oh) * g.OW + ow) * g.K
                iw0 = ow * g.stride - g.pad_left
                kw0 = max(<Py_ssize_t>0, -iw0)
                kw1 = min(g.KW, g.W - iw0)
                lo = kw0 * C
                hi = kw1 * C if kw1 > kw0 else lo
                for kh in range(g.KH):
                    ih = oh * g.stride - g.pad_top + kh
                    if ih >= 0 and ih < g.H and hi > lo:
                        dst = img + (ih * g.W + iw0) * C
                        for j in range(lo, hi):
                            dst[j] = dst[j] + src[j]
                    src += KWC


cdef void conv_forward_part(const floating* X, Py_ssize_t n, const ConvGeom* g, const floating* W,
                            const floating* b, int act, floating* cols, floating* pre,
                            floating* post) noexcept nogil:
    # IN X (n, H, W, C), W (K, F), b (F,), act code (not softmax); OUT cols (n*OH*OW, K) (unused for a
    # pointwise conv), pre (n*OH*OW, F), post (n*OH*OW, F) (may alias pre)
    """pre = im2col(X) @ W + b and post = act(pre) for n images, on the calling thread."""
    cdef Py_ssize_t rows = n * g.out_pixels
    cdef const floating* A = X
    if rows == 0 or g.F == 0:
        return
    cdef Py_ssize_t done = 1, c
    if not conv_is_pointwise(g):
        im2col(X, n, g, cols)
        A = cols
    # pre = the bias in every row (the product then adds to it: one pass less than adding it after), filled
    # by doubling the rows already written: a few large copies instead of one small copy per row
    memcpy(pre, b, g.F * sizeof(floating))
    while done < rows:
        c = min(done, rows - done)
        memcpy(pre + done * g.F, pre, c * g.F * sizeof(floating))
        done += c
    gemm_serial(mat(<void*>A, <int>rows, <int>g.K, sizeof(floating)), mat(<void*>W, <int>g.K, <int>g.F, sizeof(floating)),
                mat(pre, <int>rows, <int>g.F, sizeof(floating)), 1.0, 1.0)
    activate_flat(pre, rows * g.F, act, post)


cdef void column_sums_double(const floating* D, Py_ssize_t n, Py_ssize_t m, double* out, bint add) noexcept nogil:
    # IN D (n, m), add; OUT (IN/OUT with add) out (m,) float64
    """out[j] = sum_i D[i, j] in float64 (with ``add``: out[j] += it), four rows at a time ((r0 + r1) +
    (r2 + r3) added to the sum)."""
    cdef Py_ssize_t i, j, n4 = n - n % 4
    if not add:
        for j in range(m):
            out[j] = 0.0
    for i in range(0, n4, 4):
        for j in range(m):
            out[j] += ((<double>D[i * m + j] + <double>D[(i + 1) * m + j])
                       + (<double>D[(i + 2) * m + j] + <double>D[(i + 3) * m + j]))
    for i in range(n4, n):
        for j in range(m):
            out[j] += D[i * m + j]


cdef void conv_backward_part(const floating* delta, const floating* post, floating* cols, Py_ssize_t n,
                             const ConvGeom* g, const floating* W, int act, floating* dpre, floating* gW,
                             double alpha, double beta, double* gb, bint gb_add, floating* dX) noexcept nogil:
    # IN delta (n*OH*OW, F) = dJ/d(post), post (n*OH*OW, F) (a registered activation: the pre-activation), cols: im2col of the n input images (for a
    # pointwise conv: the images themselves), W (K, F), act, alpha, beta;
    # OUT dpre (n*OH*OW, F) = dJ/d(pre) (may alias delta), gW (K, F) = alpha cols.T @ dpre + beta gW,
    # gb (F,) float64 column sums of dpre (added to gb with gb_add); with dX (not NULL): dX (n, H, W, C) = col2im(dpre @ W.T), which
    # overwrites cols (a pointwise conv writes dX directly)
    """A convolution's gradients over n images from the gradient of its post-activation."""
    cdef Py_ssize_t rows = n * g.out_pixels, per, i0, m
    cdef int isz = sizeof(floating)
    cdef Mat A = mat(cols, <int>rows, <int>g.K, isz), D = mat(dpre, <int>rows, <int>g.F, isz)
    delta_pre_flat(delta, post, rows * g.F, act, dpre)
    gemm_serial(transpose(A), D, mat(gW, <int>g.K, <int>g.F, isz), alpha, beta)
    column_sums_double(dpre, rows, g.F, gb, gb_add)
    if dX == NULL:
        return
    if conv_is_pointwise(g):
        gemm_serial(D, transpose(mat(<void*>W, <int>g.K, <int>g.F, isz)), mat(dX, <int>rows, <int>g.K, isz), 1.0, 0.0)
        return
    # dcols = dpre @ W.T a few images at a time, each block written over the start of cols (dead after the
    # weight gradient) and scattered back at once, while it is still in the cache
    per = max(<Py_ssize_t>1, DCOLS_BLOCK_BYTES // max(<Py_ssize_t>1, g.out_pixels * g.K * isz))
    i0 = 0
    while i0 < n:
        m = min(per, n - i0)
        gemm_serial(sub(D, <int>(i0 * g.out_pixels), <int>((i0 + m) * g.out_pixels), 0, <int>g.F),
                    transpose(mat(<void*>W, <int>g.K, <int>g.F, isz)),
                    mat(cols, <int>(m * g.out_pixels), <int>g.K, isz), 1.0, 0.0)
        col2im(cols, m, g, dX + i0 * g.in_size)
        i0 += m


# ------------------------------------------------------------------------------ pooling

# Entries of a max-pooling's geometry vector: input (H, W, C), window size (also the stride), output.
cdef enum:
    P_H = 0
    P_W = 1
    P_C = 2
    P_SIZE = 3
    P_OH = 4
    P_OW = 5
    N_PGEOM = 6


cdef void maxpool_forward_part(const floating* X, Py_ssize_t n, const int64_t* pg, floating* Y,
                               int32_t* arg) noexcept nogil:
    # IN X (n, H, W, C), pg (N_PGEOM,); OUT Y (n, OH, OW, C), arg (n, OH, OW, C): each maximum's flat index
    # (h*W + w)*C + c inside its own image
    """Max over non-overlapping size x size windows (trailing rows and columns dropped); the first maximum
    in row-major window order wins a tie, a NaN in the window wins (as torch.nn.MaxPool2d)."""
    cdef Py_ssize_t H = pg[P_H], Wd = pg[P_W], C = pg[P_C], s = pg[P_SIZE], OH = pg[P_OH], OW = pg[P_OW]
    cdef Py_ssize_t i, oh, ow, kh, kw, c
    cdef const floating* img
    cdef floating* y
    cdef int32_t* a
    cdef floating v
    cdef int32_t o
    cdef bint take
    for i in range(n):
        img = X + i * H * Wd * C
        for oh in range(OH):
            for ow in range(OW):
                y = Y + ((i * OH + oh) * OW + ow) * C
                a = arg + ((i * OH + oh) * OW + ow) * C
                o = <int32_t>((oh * s * Wd + ow * s) * C)
                for c in range(C):
                    y[c] = img[o + c]
                    a[c] = o + <int32_t>c
                for kh in range(s):
                    for kw in range(s):
                        if kh == 0 and kw == 0:
                            continue
                        o = <int32_t>(((oh * s + kh) * Wd + ow * s + kw) * C)
                        for c in range(C):  # branch-free, so that it vectorises over the channels
                            v = img[o + c]
                            take = (v > y[c]) | (v != v)
                            y[c] = v if take else y[c]
                            a[c] = o + <int32_t>c if take else a[c]


cdef void maxpool_backward_part(const floating* dY, const int32_t* arg, Py_ssize_t n, const int64_t* pg,
                                floating* dX) noexcept nogil:
    # IN dY (n, OH, OW, C), arg (n, OH, OW, C) from the forward, pg; OUT dX (n, H, W, C)
    """Each output's gradient routed to its maximum; zero elsewhere.  Every input value is written once:
    a window's values compare their own index with the window's argmax (branch-free, vectorised over the
    channels); the rows and columns that no window covers are zeroed."""
    cdef Py_ssize_t H = pg[P_H], Wd = pg[P_W], C = pg[P_C], s = pg[P_SIZE], OH = pg[P_OH], OW = pg[P_OW]
    cdef Py_ssize_t i, oh, ow, kh, kw, c, h, in_size = H * Wd * C
    cdef floating* img
    cdef floating* x
    cdef const floating* dy
    cdef const int32_t* a
    cdef int32_t o
    for i in range(n):
        img = dX + i * in_size
        for oh in range(OH):
            dy = dY + (i * OH + oh) * OW * C
            a = arg + (i * OH + oh) * OW * C
            for kh in range(s):
                h = oh * s + kh
                for ow in range(OW):
                    for kw in range(s):
                        o = <int32_t>((h * Wd + ow * s + kw) * C)
                        x = img + o
                        for c in range(C):
                            x[c] = dy[ow * C + c] if a[ow * C + c] == o + <int32_t>c else 0
                if OW * s < Wd:  # the columns no window covers
                    memset(img + (h * Wd + OW * s) * C, 0, (Wd - OW * s) * C * sizeof(floating))
        if OH * s < H:  # the rows no window covers
            memset(img + OH * s * Wd * C, 0, (H - OH * s) * Wd * C * sizeof(floating))


# ------------------------------------------------------------------------------ average pooling

# Entries of an average-pooling's geometry vector: input (H, W, C), window (KH, KW; also the stride), output.
# A global average pooling is the window (H, W): one output pixel.
cdef enum:
    A_H = 0
    A_W = 1
    A_C = 2
    A_KH = 3
    A_KW = 4
    A_OH = 5
    A_OW = 6
    N_AGEOM = 7


cdef void avgpool_forward_part(const floating* X, Py_ssize_t n, const int64_t* ag, floating* Y) noexcept nogil:
    # IN X (n, H, W, C), ag (N_AGEOM,); OUT Y (n, OH, OW, C)
    """Mean over non-overlapping KH x KW windows (trailing rows and columns dropped, as
    torch.nn.AvgPool2d), each window summed in float64 in row-major order."""
    cdef Py_ssize_t H = ag[A_H], Wd = ag[A_W], C = ag[A_C], KH = ag[A_KH], KW = ag[A_KW]
    cdef Py_ssize_t OH = ag[A_OH], OW = ag[A_OW]
    cdef Py_ssize_t i, oh, ow, kh, kw, c
    cdef const floating* img
    cdef const floating* row
    cdef floating* y
    cdef double s, inv = 1.0 / <double>(KH * KW)
    for i in range(n):
        img = X + i * H * Wd * C
        for oh in range(OH):
            for ow in range(OW):
                y = Y + ((i * OH + oh) * OW + ow) * C
                for c in range(C):
                    s = 0.0
                    for kh in range(KH):
                        row = img + ((oh * KH + kh) * Wd + ow * KW) * C + c
                        for kw in range(KW):
                            s += row[kw * C]
                    y[c] = <floating>(s * inv)


cdef void avgpool_backward_part(const floating* dY, Py_ssize_t n, const int64_t* ag, floating* dX) noexcept nogil:
    # IN dY (n, OH, OW, C), ag; OUT dX (n, H, W, C)
    """Each output's gradient spread evenly over its window (times 1 / (KH * KW)); zero on the rows and
    columns no window covers.  Every input value is written once."""
    cdef Py_ssize_t H = ag[A_H], Wd = ag[A_W], C = ag[A_C], KH = ag[A_KH], KW = ag[A_KW]
    cdef Py_ssize_t OH = ag[A_OH], OW = ag[A_OW]
    cdef Py_ssize_t i, oh, ow, kh, kw, c, h, in_size = H * Wd * C
    cdef floating* img
    cdef floating* x
    cdef const floating* dy
    cdef floating inv = <floating>(1.0 / <double>(KH * KW))
    for i in range(n):
        img = dX + i * in_size
        for oh in range(OH):
            dy = dY + (i * OH + oh) * OW * C
            for kh in range(KH):
                h = oh * KH + kh
                for ow in range(OW):
                    for kw in range(KW):
                        x = img + (h * Wd + ow * KW + kw) * C
                        for c in range(C):
                            x[c] = dy[ow * C + c] * inv
                if OW * KW < Wd:  # the columns no window covers
                    memset(img + (h * Wd + OW * KW) * C, 0, (Wd - OW * KW) * C * sizeof(floating))
        if OH * KH < H:  # the rows no window covers
            memset(img + OH * KH * Wd * C, 0, (H - OH * KH) * Wd * C * sizeof(floating))

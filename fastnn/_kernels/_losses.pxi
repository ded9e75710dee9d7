# Fused losses on C-contiguous (n, c) blocks: loss, accuracy and the gradient in one pass.
# Every loss is the sum over the batch (the coursework's convention); totals accumulate in float64.
#
# Row weights: ``w`` (n,) float64 (NULL: every row 1) multiplies each row's loss, and ``w[i] * scale``
# each row's gradient (``scale`` is 1 for the summed loss, 1 / rows for the batch mean).  With w NULL and
# scale 1 the gradient is not touched, and a weight multiplies the loss's first factor (exact for 1), so
# that rows of weight 1 give the unweighted numbers to the bit.


cdef inline void scale_row(floating* D, Py_ssize_t c, double f) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(c):
        D[j] = <floating>(D[j] * f)


cdef double softmax_ce_onehot(const floating* Z, const floating* Y, Py_ssize_t n, Py_ssize_t c, floating* P,
                              floating* D, Py_ssize_t* correct, const double* w, double scale) noexcept nogil:
    # IN Z (n, c) logits, Y (n, c) one-hot (or soft) targets, w (n,) row weights or NULL, scale;
    # OUT P (n, c) probs, D (n, c) = (P - Y) w scale
    """Summed (weighted) cross-entropy; ``correct`` gets the rows whose argmax matches Y's argmax."""
    cdef Py_ssize_t i, j, best, ybest, ok = 0
    cdef double loss = 0.0, lse, wi = 1.0
    cdef bint weighted = w != NULL or scale != 1.0
    cdef floating y, ymax
    for i in range(n):
        lse = softmax_row(Z + i * c, c, P + i * c, &best)
        for j in range(c):
            D[i * c + j] = P[i * c + j] - Y[i * c + j]
        if weighted:
            wi = w[i] if w != NULL else 1.0
            scale_row(D + i * c, c, wi * scale)
        ybest = 0
        ymax = Y[i * c]
        for j in range(c):
            y = Y[i * c + j]
            if y != 0 and wi != 0:  # zero targets (and rows of weight 0) add nothing, even at a -inf logit
                loss -= (wi * y) * ((<double>Z[i * c + j]) - lse)
            if y > ymax:
                ymax = y
                ybest = j
        if ybest == best:
            ok += 1
    correct[0] = ok
    return loss


cdef double softmax_ce_index(const floating* Z, const int64_t* labels, Py_ssize_t n, Py_ssize_t c, floating* P,
                             floating* D, Py_ssize_t* correct, const double* w, double scale) noexcept nogil:
    # IN Z (n, c) logits, labels (n,) class indices, w (n,) or NULL, scale; OUT P (n, c), D (n, c) =
    # (P - onehot) w scale
    cdef Py_ssize_t i, j, best, k, ok = 0
    cdef double loss = 0.0, lse, wi = 1.0
    cdef bint weighted = w != NULL or scale != 1.0
    for i in range(n):
        lse = softmax_row(Z + i * c, c, P + i * c, &best)
        k = labels[i]
        if weighted:
            wi = w[i] if w != NULL else 1.0
        if wi != 0:
            loss -= wi * ((<double>Z[i * c + k]) - lse)
        for j in range(c):
            D[i * c + j] = P[i * c + j]
        D[i * c + k] = P[i * c + k] - 1
        if weighted:
            scale_row(D + i * c, c, wi * scale)
        if k == best:
            ok += 1
    correct[0] = ok
    return loss


cdef double sigmoid_bce(const floating* Z, const floating* Y, Py_ssize_t n, Py_ssize_t c, floating* P, floating* D,
                        Py_ssize_t* correct, const double* w, double scale) noexcept nogil:
    # IN Z (n, c) logits, Y targets in {0, 1}, w (n,) row weights or NULL, scale; OUT P = sigmoid(Z),
    # D = (P - Y) w scale
    """Summed (weighted) binary cross-entropy, stable for any |Z|; ``correct``: values with (P >= .5) == (Y >= .5)."""
    cdef Py_ssize_t i, j, k, ok = 0
    cdef double loss = 0.0, z, y, p, e, wi = 1.0, f = 1.0
    cdef bint weighted = w != NULL or scale != 1.0
    for i in range(n):
        if weighted:
            wi = w[i] if w != NULL else 1.0
            f = wi * scale
        for j in range(c):
            k = i * c + j
            z = Z[k]
            y = Y[k]
            loss += wi * (max(z, 0.0) - z * y + log1p(exp(-fabs(z))))  # log(1 + exp(z)) - y z without overflow
            if z >= 0:
                p = 1.0 / (1.0 + exp(-z))
            else:
                e = exp(z)
                p = e / (1.0 + e)
            P[k] = <floating>p
            if weighted:
                D[k] = <floating>((p - y) * f)
            else:
                D[k] = <floating>(p - y)
            if (p >= 0.5) == (y >= 0.5):
                ok += 1
    correct[0] = ok
    return loss


cdef double squared_error_sum(const floating* P, const floating* Y, Py_ssize_t n, Py_ssize_t c, floating* D,
                              const double* w, double scale) noexcept nogil:
    # IN P (n, c) predictions, Y targets, w (n,) row weights or NULL, scale; OUT D = 2 (P - Y) w scale
    """Total (weighted) squared error sum(w (P - Y)^2)."""
    cdef Py_ssize_t i, j, k
    cdef double loss = 0.0, d, wi = 1.0, f = 1.0
    cdef bint weighted = w != NULL or scale != 1.0
    for i in range(n):
        if weighted:
            wi = w[i] if w != NULL else 1.0
            f = wi * scale
        for j in range(c):
            k = i * c + j
            d = (<double>P[k]) - (<double>Y[k])
            loss += (wi * d) * d
            if weighted:
                D[k] = <floating>((2 * d) * f)
            else:
                D[k] = <floating>(2 * d)
    return loss


cdef double ce_from_probs(const floating* Y, const floating* P, Py_ssize_t n, Py_ssize_t c,
                          Py_ssize_t* correct) noexcept nogil:
    # IN Y (n, c) one-hot, P (n, c) probabilities
    """-sum(Y log P) (zero targets add nothing) and the rows where argmax(Y) == argmax(P)."""
    cdef Py_ssize_t i, j, pbest, ybest, ok = 0
    cdef double loss = 0.0
    cdef floating y
    for i in range(n):
        pbest = 0
        ybest = 0
        for j in range(c):
            y = Y[i * c + j]
            if y != 0:
                loss -= (<double>y) * log(<double>P[i * c + j])
            if P[i * c + j] > P[i * c + pbest]:
                pbest = j
            if y > Y[i * c + ybest]:
                ybest = j
        if pbest == ybest:
            ok += 1
    correct[0] = ok
    return loss

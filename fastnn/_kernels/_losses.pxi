# Fused losses on C-contiguous (n, c) blocks: loss, accuracy and the gradient in one pass.
# Every loss is the sum over the batch (the coursework's convention); totals accumulate in float64.

cdef double softmax_ce_onehot(const floating* Z, const floating* Y, Py_ssize_t n, Py_ssize_t c, floating* P,
                              floating* D, Py_ssize_t* correct) noexcept nogil:
    # IN Z (n, c) logits, Y (n, c) one-hot (or soft) targets; OUT P (n, c) probs, D (n, c) = P - Y
    """Summed cross-entropy; ``correct`` gets the rows whose argmax matches Y's argmax."""
    cdef Py_ssize_t i, j, best, ybest, ok = 0
    cdef double loss = 0.0, lse
    cdef floating y, ymax
    for i in range(n):
        lse = softmax_row(Z + i * c, c, P + i * c, &best)
        for j in range(c):
            D[i * c + j] = P[i * c + j] - Y[i * c + j]
        ybest = 0
        ymax = Y[i * c]
        for j in range(c):
            y = Y[i * c + j]
            if y != 0:  # zero targets add nothing (even where the logit is -inf)
                loss -= (<double>y) * ((<double>Z[i * c + j]) - lse)
            if y > ymax:
                ymax = y
                ybest = j
        if ybest == best:
            ok += 1
    correct[0] = ok
    return loss


cdef double softmax_ce_index(const floating* Z, const int64_t* labels, Py_ssize_t n, Py_ssize_t c, floating* P,
                             floating* D, Py_ssize_t* correct) noexcept nogil:
    # IN Z (n, c) logits, labels (n,) class indices; OUT P (n, c), D (n, c) = P - onehot
    cdef Py_ssize_t i, j, best, k, ok = 0
    cdef double loss = 0.0, lse
    for i in range(n):
        lse = softmax_row(Z + i * c, c, P + i * c, &best)
        k = labels[i]
        loss -= (<double>Z[i * c + k]) - lse
        for j in range(c):
            D[i * c + j] = P[i * c + j]
        D[i * c + k] = P[i * c + k] - 1
        if k == best:
            ok += 1
    correct[0] = ok
    return loss


cdef double sigmoid_bce(const floating* Z, const floating* Y, Py_ssize_t size, floating* P, floating* D,
                        Py_ssize_t* correct) noexcept nogil:
    # IN Z logits, Y targets in {0, 1}; OUT P = sigmoid(Z), D = P - Y (all of ``size`` values)
    """Summed binary cross-entropy, stable for any |Z|; ``correct``: values with (P >= .5) == (Y >= .5)."""
    cdef Py_ssize_t i, ok = 0
    cdef double loss = 0.0, z, y, p, e
    for i in range(size):
        z = Z[i]
        y = Y[i]
        loss += max(z, 0.0) - z * y + log1p(exp(-fabs(z)))  # log(1 + exp(z)) - y z without overflow
        if z >= 0:
            p = 1.0 / (1.0 + exp(-z))
        else:
            e = exp(z)
            p = e / (1.0 + e)
        P[i] = <floating>p
        D[i] = <floating>(p - y)
        if (p >= 0.5) == (y >= 0.5):
            ok += 1
    correct[0] = ok
    return loss


cdef double squared_error_sum(const floating* P, const floating* Y, Py_ssize_t size, floating* D) noexcept nogil:
    # IN P predictions, Y targets; OUT D = 2 (P - Y)
    """Total squared error sum((P - Y)^2)."""
    cdef Py_ssize_t i
    cdef double loss = 0.0, d
    for i in range(size):
        d = (<double>P[i]) - (<double>Y[i])
        loss += d * d
        D[i] = <floating>(2 * d)
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

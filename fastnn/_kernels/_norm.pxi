# Batch normalisation over the rows of an (n, C) matrix (a dense layer's batch, or a convolution's N*H*W
# pixels of C channels): statistics, sums and the backward's reductions in float64, row order fixed.

cdef void bn_stats(const floating* X, Py_ssize_t n, Py_ssize_t C, double* mean, double* var) noexcept nogil:
    # IN X (n, C); OUT mean, var (C,): the biased variance
    """Per-column mean and biased variance, two passes in float64 (mean first, then squared deviations)."""
    cdef Py_ssize_t i, c
    cdef const floating* row
    cdef double d
    for c in range(C):
        mean[c] = 0.0
        var[c] = 0.0
    for i in range(n):
        row = X + i * C
        for c in range(C):
            mean[c] += row[c]
    for c in range(C):
        mean[c] /= n
    for i in range(n):
        row = X + i * C
        for c in range(C):
            d = row[c] - mean[c]
            var[c] += d * d
    for c in range(C):
        var[c] /= n


cdef void bn_apply(const floating* X, Py_ssize_t n, Py_ssize_t C, const floating* gamma, const floating* beta,
                   const double* mean, const double* invstd, floating* Y) noexcept nogil:
    # IN X (n, C), gamma, beta (C,), mean, invstd (C,); OUT Y (n, C), may alias X
    """Y = gamma * (X - mean) * invstd + beta."""
    cdef Py_ssize_t i, c
    for i in range(n):
        for c in range(C):
            Y[i * C + c] = <floating>(gamma[c] * ((X[i * C + c] - mean[c]) * invstd[c]) + beta[c])


cdef void bn_backward(const floating* dY, const floating* X, Py_ssize_t n, Py_ssize_t C, const floating* gamma,
                      const double* mean, const double* invstd, double* sums, floating* dX, floating* dgamma,
                      floating* dbeta) noexcept nogil:
    # IN dY, X (n, C), gamma (C,), mean, invstd (C,) of the forward; scratch sums (2 C,);
    # OUT dX (n, C) (may alias dY), dgamma, dbeta (C,)
    """The gradient through the batch's statistics:
    dX = gamma * invstd / n * (n * dY - sum(dY) - xhat * sum(dY * xhat)), dgamma = sum(dY * xhat), dbeta = sum(dY)."""
    cdef Py_ssize_t i, c
    cdef double xhat, k
    for c in range(2 * C):
        sums[c] = 0.0
    for i in range(n):
        for c in range(C):
            xhat = (X[i * C + c] - mean[c]) * invstd[c]
            sums[c] += dY[i * C + c]
            sums[C + c] += dY[i * C + c] * xhat
    for c in range(C):
        dbeta[c] = <floating>sums[c]
        dgamma[c] = <floating>sums[C + c]
    for i in range(n):
        for c in range(C):
            xhat = (X[i * C + c] - mean[c]) * invstd[c]
            k = gamma[c] * invstd[c] / n
            dX[i * C + c] = <floating>(k * (n * <double>dY[i * C + c] - sums[c] - xhat * sums[C + c]))

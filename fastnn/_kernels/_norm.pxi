# Batch normalisation over the rows of an (n, C) matrix (a dense layer's batch, or a convolution's N*H*W
# pixels of C channels), rows ``ld`` values apart (default C: a dense layer's column part passes its
# columns with the layer's width): statistics, sums and the backward's reductions in float64, each
# column's over its rows in order.  The compiled epoch (_conv_epoch.pxi, _epoch.pxi) runs the same
# kernels over parts of a batch and adds the parts' float64 sums in part order.

cdef void bn_sums(const floating* X, Py_ssize_t n, Py_ssize_t C, Py_ssize_t ld, double* s) noexcept nogil:
    # IN X (n, C) rows ld apart; OUT s (C,)
    """s[c] = sum of column c over the rows, in row order."""
    cdef Py_ssize_t i, c
    cdef const floating* row
    for c in range(C):
        s[c] = 0.0
    for i in range(n):
        row = X + i * ld
        for c in range(C):
            s[c] += row[c]


cdef void bn_squares(const floating* X, Py_ssize_t n, Py_ssize_t C, Py_ssize_t ld, const double* mean,
                     double* s) noexcept nogil:
    # IN X (n, C) rows ld apart, mean (C,); OUT s (C,)
    """s[c] = sum of (X[i, c] - mean[c])**2 over the rows, in row order."""
    cdef Py_ssize_t i, c
    cdef const floating* row
    cdef double d
    for c in range(C):
        s[c] = 0.0
    for i in range(n):
        row = X + i * ld
        for c in range(C):
            d = row[c] - mean[c]
            s[c] += d * d


cdef void bn_stats(const floating* X, Py_ssize_t n, Py_ssize_t C, double* mean, double* var,
                   Py_ssize_t ld=-1) noexcept nogil:
    # IN X (n, C) rows ld apart (default C); OUT mean, var (C,): the biased variance
    """Per-column mean and biased variance, two passes in float64 (mean first, then squared deviations)."""
    cdef Py_ssize_t c
    if ld < 0:
        ld = C
    bn_sums(X, n, C, ld, mean)
    for c in range(C):
        mean[c] /= n
    bn_squares(X, n, C, ld, mean, var)
    for c in range(C):
        var[c] /= n


cdef void bn_apply(const floating* X, Py_ssize_t n, Py_ssize_t C, const floating* gamma, const floating* beta,
                   const double* mean, const double* invstd, floating* Y, Py_ssize_t ld=-1) noexcept nogil:
    # IN X (n, C), gamma, beta (C,), mean, invstd (C,); OUT Y (n, C), may alias X; X and Y rows ld apart
    """Y = gamma * (X - mean) * invstd + beta."""
    cdef Py_ssize_t i, c
    if ld < 0:
        ld = C
    for i in range(n):
        for c in range(C):
            Y[i * ld + c] = <floating>(gamma[c] * ((X[i * ld + c] - mean[c]) * invstd[c]) + beta[c])


cdef void bn_backward_sums(const floating* dY, const floating* X, Py_ssize_t n, Py_ssize_t C, Py_ssize_t ld,
                           const double* mean, const double* invstd, double* sdy, double* sdyx,
                           bint add=False) noexcept nogil:
    # IN dY, X (n, C) rows ld apart, mean, invstd (C,); OUT sdy = sum(dY), sdyx = sum(dY * xhat) (C,) each,
    # set, or added to with ``add``
    """The backward's two reductions over the rows, in row order."""
    cdef Py_ssize_t i, c
    cdef double xhat
    if not add:
        for c in range(C):
            sdy[c] = 0.0
            sdyx[c] = 0.0
    for i in range(n):
        for c in range(C):
            xhat = (X[i * ld + c] - mean[c]) * invstd[c]
            sdy[c] += dY[i * ld + c]
            sdyx[c] += dY[i * ld + c] * xhat


cdef void bn_backward_dx(const floating* dY, const floating* X, Py_ssize_t n, Py_ssize_t C, Py_ssize_t ld,
                         const floating* gamma, const double* mean, const double* invstd, const double* sdy,
                         const double* sdyx, double count, floating* dX) noexcept nogil:
    # IN dY, X (n, C) rows ld apart, gamma, mean, invstd (C,), sdy, sdyx (C,): bn_backward_sums over the whole
    # batch of ``count`` rows; OUT dX (n, C) rows ld apart, may alias dY
    """dX = gamma * invstd / count * (count * dY - sum(dY) - xhat * sum(dY * xhat))."""
    cdef Py_ssize_t i, c
    cdef double xhat, k
    for i in range(n):
        for c in range(C):
            xhat = (X[i * ld + c] - mean[c]) * invstd[c]
            k = gamma[c] * invstd[c] / count
            dX[i * ld + c] = <floating>(k * (count * <double>dY[i * ld + c] - sdy[c] - xhat * sdyx[c]))


cdef void bn_backward(const floating* dY, const floating* X, Py_ssize_t n, Py_ssize_t C, const floating* gamma,
                      const double* mean, const double* invstd, double* sums, floating* dX, floating* dgamma,
                      floating* dbeta) noexcept nogil:
    # IN dY, X (n, C), gamma (C,), mean, invstd (C,) of the forward; scratch sums (2 C,);
    # OUT dX (n, C) (may alias dY), dgamma, dbeta (C,)
    """The gradient through the batch's statistics:
    dX = gamma * invstd / n * (n * dY - sum(dY) - xhat * sum(dY * xhat)), dgamma = sum(dY * xhat), dbeta = sum(dY)."""
    cdef Py_ssize_t c
    bn_backward_sums(dY, X, n, C, C, mean, invstd, sums, sums + C)
    for c in range(C):
        dbeta[c] = <floating>sums[c]
        dgamma[c] = <floating>sums[C + c]
    bn_backward_dx(dY, X, n, C, C, gamma, mean, invstd, sums, sums + C, <double>n, dX)


cdef void bn_update_running(double* run, const double* mean, const double* var, Py_ssize_t C, double count,
                            double momentum) noexcept nogil:
    # IN mean, var (C,) the batch's (biased variance) over ``count`` rows; IN/OUT run (2 C,): C means, C variances
    """PyTorch's running-statistic update (fastnn.functional.update_running_stats):
    ``run = (1 - momentum) run + momentum batch``, with the batch's unbiased variance (biased for one row)."""
    cdef Py_ssize_t c
    for c in range(C):
        run[c] = run[c] * (1 - momentum) + momentum * mean[c]
        run[C + c] = run[C + c] * (1 - momentum) + momentum * (var[c] * (count / (count - 1)) if count > 1 else var[c])

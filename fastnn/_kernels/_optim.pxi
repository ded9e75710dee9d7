# Optimizer updates over a range [lo, hi) of flat parameter vectors, so that the epoch can give each
# thread its half. Gradients are those of the summed loss; weight decay adds wd * param to each (AdamW's
# instead shrinks the parameters by lr * wd before its Adam step: decoupled, as torch.optim.AdamW).

cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAM = 3
    OPT_ADAMW = 4

ctypedef struct Hyper:
    double lr
    double mu        # momentum, or Adam's beta1
    double beta2
    double eps
    double wd


cdef void sgd_range(floating* p, const floating* g, Py_ssize_t lo, Py_ssize_t hi, double lr,
                    double wd) noexcept nogil:
    """p -= lr (g + wd p)."""
    cdef Py_ssize_t i
    for i in range(lo, hi):
        p[i] = <floating>(p[i] - lr * (g[i] + wd * p[i]))


cdef void momentum_range(floating* p, const floating* g, floating* M, Py_ssize_t lo, Py_ssize_t hi, double lr,
                         double mu, double wd, bint nesterov) noexcept nogil:
    """The coursework's momentum: M = mu M - lr g; p += M.  Nesterov: p += mu M_new - lr g."""
    cdef Py_ssize_t i
    cdef double gi, mi
    for i in range(lo, hi):
        gi = g[i] + wd * p[i]
        mi = mu * M[i] - lr * gi
        M[i] = <floating>mi
        if nesterov:
            p[i] = <floating>(p[i] + (mu * mi - lr * gi))
        else:
            p[i] = <floating>(p[i] + mi)


cdef void adam_range(floating* p, const floating* g, floating* m1, floating* m2, Py_ssize_t lo, Py_ssize_t hi,
                     Hyper h, long step) noexcept nogil:
    """Adam (Kingma & Ba) with bias correction for update number ``step`` (from 1), in p's dtype."""
    cdef double c1 = 1.0 - pow(h.mu, <double>step), c2 = 1.0 - pow(h.beta2, <double>step)
    cdef floating b1 = <floating>h.mu, b2 = <floating>h.beta2, wd = <floating>h.wd, e = <floating>h.eps
    cdef floating step_size = <floating>(h.lr / c1), inv_c2 = <floating>(1.0 / c2), one = 1, gi
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = g[i] + wd * p[i]
        m1[i] = b1 * m1[i] + (one - b1) * gi
        m2[i] = b2 * m2[i] + (one - b2) * gi * gi
        if floating is float:
            p[i] -= step_size * m1[i] / (sqrtf(m2[i] * inv_c2) + e)
        else:
            p[i] -= step_size * m1[i] / (sqrt(m2[i] * inv_c2) + e)


cdef void adamw_range(floating* p, const floating* g, floating* m1, floating* m2, Py_ssize_t lo, Py_ssize_t hi,
                      Hyper h, long step) noexcept nogil:
    """AdamW (Loshchilov & Hutter; torch.optim.AdamW): p *= 1 - lr wd, then Adam's step of ``step`` from g
    alone (no wd in the gradient), in p's dtype."""
    cdef double c1 = 1.0 - pow(h.mu, <double>step), c2 = 1.0 - pow(h.beta2, <double>step)
    cdef floating b1 = <floating>h.mu, b2 = <floating>h.beta2, e = <floating>h.eps
    cdef floating keep = <floating>(1.0 - h.lr * h.wd)
    cdef floating step_size = <floating>(h.lr / c1), inv_c2 = <floating>(1.0 / c2), one = 1, gi
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = g[i]
        m1[i] = b1 * m1[i] + (one - b1) * gi
        m2[i] = b2 * m2[i] + (one - b2) * gi * gi
        p[i] = p[i] * keep
        if floating is float:
            p[i] -= step_size * m1[i] / (sqrtf(m2[i] * inv_c2) + e)
        else:
            p[i] -= step_size * m1[i] / (sqrt(m2[i] * inv_c2) + e)


cdef void optimizer_range(int kind, floating* p, const floating* g, floating* s1, floating* s2, Py_ssize_t lo,
                          Py_ssize_t hi, Hyper h, long step) noexcept nogil:
    """One update of p[lo:hi] by the optimizer ``kind`` (s1: momentum buffer or Adam's m; s2: Adam's v)."""
    if kind == OPT_SGD:
        sgd_range(p, g, lo, hi, h.lr, h.wd)
    elif kind == OPT_ADAM:
        adam_range(p, g, s1, s2, lo, hi, h, step)
    elif kind == OPT_ADAMW:
        adamw_range(p, g, s1, s2, lo, hi, h, step)
    else:
        momentum_range(p, g, s1, lo, hi, h.lr, h.mu, h.wd, kind == OPT_NESTEROV)

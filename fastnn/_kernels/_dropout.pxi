# Inverted dropout with masks that need no storage and no generator state: whether value i of a layer's
# output is kept in a training step is a hash of (seed, step, layer, i), so the backward recomputes the
# forward's mask, any thread computes any part of it, and any number of threads gives the same bits.

cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finaliser: a bijection of 64-bit words whose outputs pass as independent uniform bits."""
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)


cdef inline uint64_t dropout_key(uint64_t seed, uint64_t step, uint64_t layer) noexcept nogil:
    """The key of one layer's mask in one training step."""
    return mix64(mix64(seed * <uint64_t>0x9e3779b97f4a7c15ULL + step) ^ ((layer + 1) * <uint64_t>0x9e3779b97f4a7c15ULL))


cdef void dropout_copy(const floating* src, floating* dst, Py_ssize_t n, uint64_t first, uint64_t key, double rate,
                       floating scale) noexcept nogil:
    # IN src[0:n], the values first .. first + n - 1 of a layer's batch output (or its gradient); OUT dst[0:n]
    # (may be src)
    """dst[i] = src[i] * scale where value first + i is kept (the hash's top 53 bits as a fraction in [0, 1) is
    >= rate), else 0: the forward on the outputs, and the same mask on their gradient in the backward."""
    cdef Py_ssize_t i
    cdef double u
    for i in range(n):
        u = <double>(mix64(key + <uint64_t>(first + i) * <uint64_t>0x9e3779b97f4a7c15ULL) >> 11) * (
            1.0 / 9007199254740992.0)
        dst[i] = src[i] * scale if u >= rate else 0


cdef inline void dropout_range(floating* X, Py_ssize_t lo, Py_ssize_t hi, uint64_t key, double rate,
                               floating scale) noexcept nogil:
    # IN/OUT X[lo:hi]
    """:func:`dropout_copy` in place on values lo .. hi - 1."""
    dropout_copy(X + lo, X + lo, hi - lo, <uint64_t>lo, key, rate, scale)

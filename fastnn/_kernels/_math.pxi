# Scalar math shared by every kernel: float32 exp/tanh polynomials, activations and their derivatives.
#
# float64 uses libm's exp/tanh (NumPy's values, so the drop-in API matches NumPy in float64); float32 uses
# branch-free polynomials that GCC vectorises (libm's expf/tanhf do not vectorise).

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    static inline float fnn_from_bits(int32_t b) { float f; memcpy(&f, &b, sizeof f); return f; }

    /* exp of a float32, branch-free: x = n ln2 + r with |r| <= ln2/2 (ln 2 in two parts, Cody-Waite),
       a degree-7 polynomial for exp(r), 2^n built from its bits in two factors (2^128 alone is inf).
       Within 2e-7 relative; inf above 88.72283, 0 below -87.33654, NaN stays NaN. */
    static inline float fnn_exp32(float x) {
        const float lo = -87.33654f, hi = 88.72283f;
        const float shifter = 12582912.0f;   /* 1.5 * 2^23: adding it rounds to the nearest integer */
        float xc = x < lo ? lo : x;
        xc = xc > hi ? hi : xc;
        xc = xc == xc ? xc : 0.0f;            /* NaN: any finite value, the result is replaced below */
        float n = (xc * 1.44269504f + shifter) - shifter;
        float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
        float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                     + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * (r * r) + r + 1.0f;
        int32_t k = (int32_t)n;
        int32_t h = k >> 1;
        float y = p * fnn_from_bits((h + 127) << 23) * fnn_from_bits((k - h + 127) << 23);
        y = x > hi ? INFINITY : y;
        y = x < lo ? 0.0f : y;
        return x == x ? y : x;
    }

    /* tanh of a float32, branch-free: an odd polynomial for |x| < 0.625 (where the exp formula would
       cancel), else 1 - 2 / (exp(2|x|) + 1). Within 3e-7 relative, exactly +-1 beyond |x| = 9.1. */
    static inline float fnn_tanh32(float x) {
        float a = fabsf(x);
        float z = x * x;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                        + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
        float big = 1.0f - 2.0f / (fnn_exp32(a + a) + 1.0f);
        big = x < 0.0f ? -big : big;
        return a < 0.625f ? small : big;
    }

    /* A barrier for the epoch's team of threads: the last to arrive bumps the generation (release), the
       others wait for it (acquire), so every write before the barrier is seen after it by every thread.
       Waiting spins for ``spin`` pauses (tens of microseconds: a batch's serial middle), then yields the
       core, so that a thread whose partner was descheduled by another process does not burn the time
       slice the partner needs. */
    #include <sched.h>
    typedef struct { int count; int gen; } fnn_barrier_t;

    static inline void fnn_barrier_wait(fnn_barrier_t* b, int nth, long spin) {
        int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
        if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == nth) {
            __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
            return;
        }
        for (long i = 0; __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen; i++) {
            if (i < spin) {
    #if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
    #endif
            } else {
                sched_yield();
            }
        }
    }
    """
    float fnn_exp32(float x) noexcept nogil
    float fnn_tanh32(float x) noexcept nogil
    ctypedef struct fnn_barrier_t:
        int count
        int gen
    void fnn_barrier_wait(fnn_barrier_t* b, int nth, long spin) noexcept nogil


cdef enum:
    ACT_LINEAR = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_SOFTMAX = 4
    #: Codes from ACT_USER up are registered activations (fastnn.register_activation): slot code - ACT_USER of
    #: the tables below, compiled scalar functions of the pre-activation z called through a pointer.  For
    #: them, the array a derivative kernel takes in place of the post-activation is the pre-activation z.
    ACT_USER = 16
    MAX_USER_ACTS = 64


ctypedef float (*user_fn32)(float) noexcept nogil
ctypedef double (*user_fn64)(double) noexcept nogil

# The registered activations' functions and derivatives (addresses of Numba cfuncs, set under the GIL by
# ``set_user_activation`` before any kernel is given the code; NULL for a free slot).
cdef user_fn32 _user_f32[MAX_USER_ACTS]
cdef user_fn32 _user_d32[MAX_USER_ACTS]
cdef user_fn64 _user_f64[MAX_USER_ACTS]
cdef user_fn64 _user_d64[MAX_USER_ACTS]


cdef void user_map(const floating* Z, Py_ssize_t size, int act, bint deriv, floating* Y) noexcept nogil:
    # IN Z (size,) pre-activations, act >= ACT_USER, deriv; OUT Y (size,), may alias Z
    """Y = f(Z) (or f'(Z) with ``deriv``) of the registered activation ``act``, one call per value."""
    cdef Py_ssize_t i
    cdef user_fn32 f32
    cdef user_fn64 f64
    if floating is float:
        f32 = _user_d32[act - ACT_USER] if deriv else _user_f32[act - ACT_USER]
        for i in range(size):
            Y[i] = f32(Z[i])
    else:
        f64 = _user_d64[act - ACT_USER] if deriv else _user_f64[act - ACT_USER]
        for i in range(size):
            Y[i] = f64(Z[i])


cdef void user_delta_pre(const floating* delta, const floating* Z, Py_ssize_t size, int act,
                         floating* dpre) noexcept nogil:
    # IN delta (size,), Z (size,) pre-activations, act >= ACT_USER; OUT dpre (size,), may alias delta
    """dpre = delta * f'(Z) of the registered activation ``act``."""
    cdef Py_ssize_t i
    cdef user_fn32 f32
    cdef user_fn64 f64
    if floating is float:
        f32 = _user_d32[act - ACT_USER]
        for i in range(size):
            dpre[i] = delta[i] * f32(Z[i])
    else:
        f64 = _user_d64[act - ACT_USER]
        for i in range(size):
            dpre[i] = delta[i] * f64(Z[i])


cdef inline floating sigmoid_s(floating v) noexcept nogil:
    """1 / (1 + exp(-v)): exp overflows to inf far below 0 and 1 / inf is 0, so no branch, no warning."""
    if floating is float:
        return (<float>1) / ((<float>1) + fnn_exp32(-v))
    else:
        return 1.0 / (1.0 + exp(-v))


cdef inline floating tanh_s(floating v) noexcept nogil:
    if floating is float:
        return fnn_tanh32(v)
    else:
        return tanh(v)


cdef inline floating relu_s(floating v) noexcept nogil:
    cdef floating zero = 0  # typed, so that float32 stays float32 (a literal 0 is a C double)
    return v if v > zero else v * zero


cdef inline floating deriv_s(floating a, int act) noexcept nogil:
    """act'(pre) written from the post-activation a (the coursework's *_deriv(post_act))."""
    if act == ACT_SIGMOID:
        return a * (1 - a)
    if act == ACT_TANH:
        return 1 - a * a
    cdef floating zero = 0, one = 1
    if act == ACT_RELU:
        return a * zero + one if a > zero else a * zero
    return a * zero + one


cdef inline floating exp_minus(floating z, floating m) noexcept nogil:
    """exp(z - m) for softmax rows (m: the row maximum): float32 with exp32, float64 with libm."""
    if floating is float:
        return fnn_exp32(z - m)
    else:
        return exp(z - m)


cdef void activate_flat(const floating* Z, Py_ssize_t size, int act, floating* A) noexcept nogil:
    """A = act(Z) element-wise over ``size`` contiguous values (not softmax); A may alias Z.
    One loop per activation, so that each vectorises; a registered activation (act >= ACT_USER) calls its
    compiled function."""
    cdef Py_ssize_t i
    if act >= ACT_USER:
        user_map(Z, size, act, False, A)
    elif A == Z:  # in place: one pointer, so that the compiler needs no overlap check (which would fail)
        if act == ACT_SIGMOID:
            for i in range(size):
                A[i] = sigmoid_s(A[i])
        elif act == ACT_RELU:
            for i in range(size):
                A[i] = relu_s(A[i])
        elif act == ACT_TANH:
            for i in range(size):
                A[i] = tanh_s(A[i])
    elif act == ACT_SIGMOID:
        for i in range(size):
            A[i] = sigmoid_s(Z[i])
    elif act == ACT_RELU:
        for i in range(size):
            A[i] = relu_s(Z[i])
    elif act == ACT_TANH:
        for i in range(size):
            A[i] = tanh_s(Z[i])
    else:
        for i in range(size):
            A[i] = Z[i]


cdef void deriv_flat(const floating* A, Py_ssize_t size, int act, floating* D) noexcept nogil:
    """D = act'(pre) from the post-activation A, element-wise (a registered activation: from the
    pre-activation, passed as A)."""
    cdef Py_ssize_t i
    if act >= ACT_USER:
        user_map(A, size, act, True, D)
    elif act == ACT_SIGMOID:
        for i in range(size):
            D[i] = A[i] * (1 - A[i])
    elif act == ACT_TANH:
        for i in range(size):
            D[i] = 1 - A[i] * A[i]
    else:
        for i in range(size):
            D[i] = deriv_s(A[i], act)


cdef void delta_pre_flat(const floating* delta, const floating* A, Py_ssize_t size, int act,
                         floating* dpre) noexcept nogil:
    """dpre = delta * act'(A): the gradient with respect to the pre-activation; dpre may alias delta.  For a
    registered activation (act >= ACT_USER) A is the pre-activation."""
    cdef Py_ssize_t i
    if act >= ACT_USER:
        user_delta_pre(delta, A, size, act, dpre)
    elif act == ACT_SIGMOID:
        for i in range(size):
            dpre[i] = delta[i] * (A[i] * (1 - A[i]))
    elif act == ACT_TANH:
        for i in range(size):
            dpre[i] = delta[i] * (1 - A[i] * A[i])
    elif act == ACT_RELU and dpre == delta:  # in place, one pointer (see activate_flat), deriv_s's factor
        for i in range(size):
            dpre[i] = dpre[i] * deriv_s(A[i], ACT_RELU)
    elif act == ACT_RELU:
        for i in range(size):
            dpre[i] = delta[i] * deriv_s(A[i], ACT_RELU)
    else:
        for i in range(size):
            dpre[i] = delta[i] * deriv_s(A[i], act)


cdef double softmax_row(const floating* z, Py_ssize_t c, floating* p, Py_ssize_t* best) noexcept nogil:
    """p = softmax(z) with max subtraction; return log of the normaliser (float64) and, when ``best`` is
    not NULL, the first argmax in it.

    Each pass is a loop of its own so that the exps and the scaling vectorise, and the max and the
    float64 sum run on four accumulators instead of one dependency chain.  The max is exact in any order;
    a NaN anywhere in z makes its exp, the sum and so the loss NaN."""
    cdef Py_ssize_t j, c4 = c - c % 4
    cdef floating m0 = z[0], m1 = z[0], m2 = z[0], m3 = z[0], mx
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s, inv
    for j in range(0, c4, 4):
        m0 = z[j] if z[j] > m0 else m0
        m1 = z[j + 1] if z[j + 1] > m1 else m1
        m2 = z[j + 2] if z[j + 2] > m2 else m2
        m3 = z[j + 3] if z[j + 3] > m3 else m3
    for j in range(c4, c):
        m0 = z[j] if z[j] > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    mx = m2 if m2 > m0 else m0
    if best != NULL:
        best[0] = 0
        for j in range(c):
            if z[j] == mx:
                best[0] = j
                break
    for j in range(c):
        p[j] = exp_minus(z[j], mx)
    for j in range(0, c4, 4):
        s0 += p[j]
        s1 += p[j + 1]
        s2 += p[j + 2]
        s3 += p[j + 3]
    for j in range(c4, c):
        s0 += p[j]
    s = (s0 + s1) + (s2 + s3)
    inv = 1.0 / s
    for j in range(c):
        p[j] = <floating>(p[j] * inv)
    return mx + log(s)


cdef void softmax_rows(const floating* Z, Py_ssize_t n, Py_ssize_t c, floating* P) noexcept nogil:
    """Row-wise softmax of a C-contiguous (n, c) block; P may alias Z."""
    cdef Py_ssize_t i
    for i in range(n):
        softmax_row(Z + i * c, c, P + i * c, NULL)


cdef void bias_activate(floating* Z, const floating* b, Py_ssize_t n, Py_ssize_t m, int act,
                        floating* A) noexcept nogil:
    """Z += b row-wise, then A = act(Z) (softmax row-wise); A may alias Z."""
    cdef Py_ssize_t i, j
    cdef floating* row
    for i in range(n):
        row = Z + i * m
        for j in range(m):
            row[j] = row[j] + b[j]
        if act != ACT_SOFTMAX:
            activate_flat(row, m, act, A + i * m)
    if act == ACT_SOFTMAX:
        softmax_rows(Z, n, m, A)


cdef void column_sums_update(const floating* D, Py_ssize_t n, Py_ssize_t m, floating* out, double lr,
                             double wd, bint sgd, Py_ssize_t ld=-1) noexcept nogil:
    """out[j] = sum_i D[i, j] (a bias gradient), or with ``sgd`` the bias step
    out[j] -= lr (sum_i D[i, j] + wd out[j]), for the m columns of D's n rows (ld values apart; default m).
    The sums accumulate in float64 whatever D's dtype, each column's over its rows in order, in column
    chunks held on the stack: any cut of the columns gives the same bits."""
    cdef double acc[256]
    cdef Py_ssize_t i, j, j0, w
    if ld < 0:
        ld = m
    for j0 in range(0, m, 256):
        w = min(256, m - j0)
        for j in range(w):
            acc[j] = 0.0
        for i in range(n):
            for j in range(w):
                acc[j] += D[i * ld + j0 + j]
        if sgd:
            for j in range(w):
                out[j0 + j] = <floating>(out[j0 + j] - lr * (acc[j] + wd * out[j0 + j]))
        else:
            for j in range(w):
                out[j0 + j] = <floating>acc[j]


cdef bint all_finite_values(const floating* x, Py_ssize_t size) noexcept nogil:
    """Whether every value is finite: the largest exponent field seen (an integer max, which vectorises)
    must not be the all-ones field of inf and NaN."""
    cdef Py_ssize_t i
    cdef uint32_t e32 = 0
    cdef uint64_t e64 = 0
    if floating is float:
        for i in range(size):
            e32 = max(e32, (<const uint32_t*>x)[i] & 0x7f800000u)
        return e32 != 0x7f800000u
    else:
        for i in range(size):
            e64 = max(e64, (<const uint64_t*>x)[i] & 0x7ff0000000000000u)
        return e64 != 0x7ff0000000000000u

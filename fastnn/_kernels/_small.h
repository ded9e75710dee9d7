/* Small matrix products without packing: C = alpha A @ B + beta C, B row-major and not transposed.
 *
 * BLAS packs B (and A) into panels before every call, which costs as much as the product itself when
 * it is a prediction's (one row) or an epoch's batch (32 rows against a 1024 x 64 weight matrix, a
 * call repeated hundreds of times an epoch).  Here a block of RB rows of C times NV vectors of columns
 * is kept in registers while k runs: each step reads NV vectors of B's row k (contiguous) and RB
 * values of A, and does RB * NV fused multiply-adds.  The vectors are GCC's generic vector types at
 * the width the compiled copy of the core has (64 bytes with AVX-512, 32 with AVX, 16 otherwise), so
 * the same source is each copy's kernel.
 *
 * Every element of C is the sum over k in order, each term added as a*b to the running sum (fused where
 * the CPU has FMA), whatever the block it falls in (the tails included), so that a row's numbers do not
 * depend on how many rows the call has, on how the columns are cut between threads, or on the vector
 * width of the copy (the AVX2 and AVX-512 copies give the same bits).
 */
#ifndef FNN_SMALL_H
#define FNN_SMALL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define FNN_VBYTES 64
#elif defined(__AVX__)
#define FNN_VBYTES 32
#else
#define FNN_VBYTES 16
#endif

/* Whether this copy uses these products wherever they fit: with AVX-512 they measured 1.5x faster than
 * OpenBLAS's over an MLP epoch (Zen 5); the AVX2 copy's (8-wide, 16 registers) 0.77-0.88x, so copies
 * without AVX-512 keep BLAS except for a prediction's few rows (_blas.pxi; fastnn._kernels._core.
 * direct_products() reports the choice, and the tests can force it). */
#if FNN_VBYTES == 64
#define FNN_SMALL_FAST 1
#else
#define FNN_SMALL_FAST 0
#endif

/* Rows and column vectors of the register block: RB * NV accumulators plus NV vectors of B must fit the
 * register file (32 vector registers with AVX-512, 16 otherwise). */
#define FNN_RB 6
#if FNN_VBYTES == 64
#define FNN_NV 4
#else
#define FNN_NV 2
#endif

/* Keep a value in a register: without it the compiler folds B's loads into every multiply-add that
 * reads them (RB loads of each vector per step instead of one), which makes the loop wait on loads. */
#if defined(__x86_64__) || defined(__i386__)
#define FNN_IN_REGISTER(x) __asm__("" : "+x"(x))
#else
#define FNN_IN_REGISTER(x) ((void)0)   /* ("x" names x86's vector registers; elsewhere the compiler decides) */
#endif

/* The last columns' scalar sums fuse each multiply-add as the vectors' do (GCC contracts those), so that an
 * element's bits do not depend on whether it falls in a vector, whatever the vector width: explicitly, as
 * the compiler left a scalar loop of the AVX2 copy uncontracted.  Without FMA (the SSE4 copy) neither fuses. */
#if defined(__FMA__)
#define FNN_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#define FNN_FMA(a, b, c) __builtin_fma((a), (b), (c))
#else
#define FNN_FMAF(a, b, c) ((c) + (a) * (b))
#define FNN_FMA(a, b, c) ((c) + (a) * (b))
#endif
/* The same for whole vectors (the stores of C): the CPU's vector FMA, named, since the compiler may fuse
 * either product of alpha acc + beta C into the sum. */
#if FNN_VBYTES == 64
#include <immintrin.h>
#define FNN_VFMAF(a, b, c) ((__typeof__(a))_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define FNN_VFMA(a, b, c) ((__typeof__(a))_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#elif FNN_VBYTES == 32 && defined(__FMA__)
#include <immintrin.h>
#define FNN_VFMAF(a, b, c) ((__typeof__(a))_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define FNN_VFMA(a, b, c) ((__typeof__(a))_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#else
#define FNN_VFMAF(a, b, c) ((c) + (a) * (b))
#define FNN_VFMA(a, b, c) ((c) + (a) * (b))
#endif

/* A (m, k): element (r, i) at A[r * lda + i], or at A[i * lda + r] when a_trans (the transpose of a
 * row-major (k, m) array).  B (k, n): element (i, j) at B[i * ldb + j].  C (m, n): C[r * ldc + j].
 * beta == 0 ignores C's old values (NaN included), as BLAS does. */
#define FNN_SMALL_GEMM(NAME, T, VLEN, FMA, VFMA)                                                                         \
typedef T NAME##_vec __attribute__((vector_size(FNN_VBYTES)));                                                \
/* The same vector at any address of a T (loads and stores of rows of B and C). */                           \
typedef T NAME##_uvec __attribute__((vector_size(FNN_VBYTES), aligned(sizeof(T)), may_alias));               \
                                                                                                              \
static inline T NAME##_a(const T* A, ptrdiff_t lda, int a_trans, ptrdiff_t r, ptrdiff_t i) {                  \
    return a_trans ? A[i * lda + r] : A[r * lda + i];                                                         \
}                                                                                                             \
                                                                                                              \
static inline void NAME##_store(T* c, NAME##_vec acc, T alpha, T beta, int nc) {                              \
    /* C = alpha acc fused onto beta C, lane by lane exactly as the last columns' scalar FMA: a whole vector  \
     * through the CPU's vector FMA, the first nc lanes of a partial one through a copy of them */            \
    NAME##_vec va = (NAME##_vec){0} + alpha, vb = (NAME##_vec){0} + beta, old;                                \
    T part[VLEN];                                                                                             \
    int l;                                                                                                    \
    if (nc == VLEN) {                                                                                         \
        *(NAME##_uvec*)c = beta != 0 ? VFMA(va, acc, vb * *(NAME##_uvec*)c) : va * acc;                       \
        return;                                                                                               \
    }                                                                                                         \
    for (l = 0; l < VLEN; l++)                                                                                \
        part[l] = l < nc ? c[l] : 0;                                                                          \
    memcpy(&old, part, sizeof old);                                                                           \
    old = beta != 0 ? VFMA(va, acc, vb * old) : va * acc;                                                     \
    memcpy(part, &old, sizeof old);                                                                           \
    for (l = 0; l < nc; l++)                                                                                  \
        c[l] = part[l];                                                                                       \
}                                                                                                             \
                                                                                                              \
/* Rows r0 .. r0 + RB - 1 (RB of 1 to FNN_RB) by NV (1 or FNN_NV) vectors of B's columns from j0, into C's    \
 * columns from cj0; of the last vector only the first nc columns are stored. */                              \
static inline __attribute__((always_inline)) void NAME##_block(int RB, int NV, int k, T alpha, const T* A,   \
                                ptrdiff_t lda, int a_trans, const T* B, ptrdiff_t ldb, T beta, T* C,          \
                                ptrdiff_t ldc, ptrdiff_t r0, ptrdiff_t j0, ptrdiff_t cj0, int nc) {           \
    NAME##_vec acc[FNN_RB][FNN_NV], b[FNN_NV];                                                                \
    int r, v;                                                                                                 \
    ptrdiff_t i;                                                                                              \
    for (r = 0; r < RB; r++)                                                                                  \
        for (v = 0; v < NV; v++)                                                                              \
            acc[r][v] = (NAME##_vec){0};                                                                      \
    for (i = 0; i < k; i++) {                                                                                 \
        const T* brow = B + i * ldb + j0;                                                                     \
        for (v = 0; v < NV; v++)                                                                              \
        {                                                                                                     \
            b[v] = *(const NAME##_uvec*)(brow + (ptrdiff_t)v * VLEN);                                         \
            FNN_IN_REGISTER(b[v]);                                                                            \
        }                                                                                                     \
        for (r = 0; r < RB; r++) {                                                                            \
            T a = NAME##_a(A, lda, a_trans, r0 + r, i);                                                       \
            for (v = 0; v < NV; v++)                                                                          \
                acc[r][v] += a * b[v];                                                                        \
        }                                                                                                     \
    }                                                                                                         \
    for (r = 0; r < RB; r++)                                                                                  \
        for (v = 0; v < NV; v++)                                                                              \
            NAME##_store(C + (r0 + r) * ldc + cj0 + (ptrdiff_t)v * VLEN, acc[r][v], alpha, beta,              \
                         v == NV - 1 ? nc : VLEN);                                                            \
}                                                                                                             \
                                                                                                              \
/* Rows r0 .. r0 + rb - 1 (rb <= FNN_RB) by FNN_NV vectors of columns (wide) or one: each case is its own \
 * loop with constant sizes, so that the compiler keeps acc and b in registers. */                            \
static void NAME##_rows(int rb, int wide, int k, T alpha, const T* A, ptrdiff_t lda, int a_trans, const T* B, \
                        ptrdiff_t ldb, T beta, T* C, ptrdiff_t ldc, ptrdiff_t r0, ptrdiff_t j0, ptrdiff_t cj0, \
                        int nc) {                                                                             \
    switch (rb * 2 + (wide != 0)) {                                                                           \
    FNN_ROWS_CASES(NAME)                                                                                      \
    }                                                                                                         \
}                                                                                                             \
                                                                                                              \
static void NAME(int m, int n, int k, T alpha, const T* A, int lda, int a_trans, const T* B, int ldb,         \
                 T beta, T* C, int ldc) {                                                                     \
    const int wide = FNN_NV * VLEN;                                                                           \
    ptrdiff_t r, j = 0, i;                                                                                    \
    int nc, c;                                                                                                \
    T* pad;                                                                                                   \
    for (; j + wide <= n; j += wide)                                                                          \
        for (r = 0; r < m; r += FNN_RB)                                                                       \
            NAME##_rows(m - r < FNN_RB ? (int)(m - r) : FNN_RB, 1, k, alpha, A, lda, a_trans, B, ldb, beta, C,  \
                        ldc, r, j, j, VLEN);                                                                  \
    for (; j + VLEN <= n; j += VLEN)                                                                          \
        for (r = 0; r < m; r += FNN_RB)                                                                       \
            NAME##_rows(m - r < FNN_RB ? (int)(m - r) : FNN_RB, 0, k, alpha, A, lda, a_trans, B, ldb, beta, C,  \
                        ldc, r, j, j, VLEN);                                                                  \
    if (j == n)                                                                                               \
        return;                                                                                               \
    /* The last nc < VLEN columns (36 classes: 4): B's copied out into zero-padded vectors once, then the     \
     * same blocks, storing nc columns: the same in-order sums as a scalar loop, but 6 rows at a time. */     \
    nc = (int)(n - j);                                                                                        \
    pad = (T*)malloc(sizeof(T) * (size_t)k * VLEN);                                                           \
    if (pad != NULL) {                                                                                        \
        for (i = 0; i < k; i++)                                                                               \
            for (c = 0; c < VLEN; c++)                                                                        \
                pad[i * VLEN + c] = c < nc ? B[i * ldb + j + c] : 0;                                          \
        for (r = 0; r < m; r += FNN_RB)                                                                       \
            NAME##_rows(m - r < FNN_RB ? (int)(m - r) : FNN_RB, 0, k, alpha, A, lda, a_trans, pad, VLEN, beta,  \
                        C, ldc, r, 0, j, nc);                                                                 \
        free(pad);                                                                                            \
        return;                                                                                               \
    }                                                                                                         \
    for (; j < n; j++) {                       /* (no memory for the copy: one column at a time) */           \
        for (r = 0; r < m; r++) {                                                                             \
            T acc = 0;                                                                                        \
            for (i = 0; i < k; i++)                                                                           \
                acc = FMA(NAME##_a(A, lda, a_trans, r, i), B[i * ldb + j], acc);                              \
            C[r * ldc + j] = beta != 0 ? FMA(alpha, acc, beta * C[r * ldc + j]) : alpha * acc;                \
        }                                                                                                     \
    }                                                                                                         \
}

#define FNN_ROW_CASE(NAME, RB)                                                                                \
    case 2 * RB + 1:                                                                                          \
        NAME##_block(RB, FNN_NV, k, alpha, A, lda, a_trans, B, ldb, beta, C, ldc, r0, j0, cj0, nc); break;    \
    case 2 * RB: NAME##_block(RB, 1, k, alpha, A, lda, a_trans, B, ldb, beta, C, ldc, r0, j0, cj0, nc); break;
#define FNN_ROWS_CASES(NAME) FNN_ROW_CASE(NAME, 1) FNN_ROW_CASE(NAME, 2) FNN_ROW_CASE(NAME, 3)                 \
    FNN_ROW_CASE(NAME, 4) FNN_ROW_CASE(NAME, 5) FNN_ROW_CASE(NAME, 6)

FNN_SMALL_GEMM(fnn_sgemm_small, float, (FNN_VBYTES / 4), FNN_FMAF, FNN_VFMAF)
FNN_SMALL_GEMM(fnn_dgemm_small, double, (FNN_VBYTES / 8), FNN_FMA, FNN_VFMA)

#endif

// gemm.c: row-major single-precision matrix multiply on the CPU.
// Large products go to CBLAS sgemm when CMake found one (CG_HAVE_CBLAS); small ones, and every
// product in a build without CBLAS, to the engine's own loops below. For the matrices of a
// small MLP (32 x 20 x 50) the call overhead of a BLAS library costs more than the arithmetic.
// Also: the once-per-process warning about OpenBLAS running a generic core.
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CG_HAVE_CBLAS
#include <cblas.h>
#endif

// Products with fewer multiply-adds than this use the loops below even when CBLAS is there.
#define CG_SMALL_GEMM_WORK (128 * 128 * 128)
#define CG_BLOCK_K 256
#define CG_BLOCK_N 512

// C(M,N) += alpha * A(M,K) B(K,N), or A^T when trans_a: i-k-j order, the inner loop runs along
// contiguous rows of B and C (vectorised), blocked over k and j to stay in cache.
static void gemm_xn(bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float *A, const float *B,
                    float *C) {
#pragma omp parallel for if (M * N * K > 4 * CG_OMP_MIN_WORK * 64)
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * N;
        for (int64_t k0 = 0; k0 < K; k0 += CG_BLOCK_K) {
            int64_t k1 = k0 + CG_BLOCK_K < K ? k0 + CG_BLOCK_K : K;
            for (int64_t j0 = 0; j0 < N; j0 += CG_BLOCK_N) {
                int64_t j1 = j0 + CG_BLOCK_N < N ? j0 + CG_BLOCK_N : N;
                for (int64_t k = k0; k < k1; k++) {
                    float a = alpha * (trans_a ? A[k * M + i] : A[i * K + k]);
                    const float *b = B + k * N;
                    for (int64_t j = j0; j < j1; j++) c[j] += a * b[j];
                }
            }
        }
    }
}

// C(M,N) += alpha * A(M,K) B^T with B stored (N,K): each element is a dot product of two
// contiguous rows.
static void gemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, const float *B, float *C) {
#pragma omp parallel for if (M * N * K > 4 * CG_OMP_MIN_WORK * 64)
    for (int64_t i = 0; i < M; i++) {
        const float *a = A + i * K;
        for (int64_t j = 0; j < N; j++) {
            const float *b = B + j * K;
            float dot = 0.0f;
            for (int64_t k = 0; k < K; k++) dot += a[k] * b[k];
            C[i * N + j] += alpha * dot;
        }
    }
}

// Both transposed (rare): element by element.
static void gemm_tt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, const float *B, float *C) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float dot = 0.0f;
            for (int64_t k = 0; k < K; k++) dot += A[k * M + i] * B[j * K + k];
            C[i * N + j] += alpha * dot;
        }
}

#ifdef CG_HAVE_OPENBLAS
char *openblas_get_corename(void);
// Debian's OpenBLAS 0.3.21 does not recognise some recent CPUs and falls back to its generic
// "Prescott" core, about 5x slower. Tell the user once how to choose the right one.
static void warn_generic_openblas_core(void) {
    static int checked = 0;
    if (checked) return;
    checked = 1;
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2");
    bool avx512 = __builtin_cpu_supports("avx512f");
    if (core && (avx2 || avx512) && (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 ||
                                     strcmp(core, "Nehalem") == 0 || strcmp(core, "Atom") == 0 ||
                                     strcmp(core, "Barcelona") == 0)) {
        fprintf(stderr,
                "cgrad: warning: OpenBLAS is running its generic '%s' core on a CPU with %s; matrix products "
                "will be several times slower. Set OPENBLAS_CORETYPE=%s before running.\n",
                core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
    }
}
#endif

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C) {
#ifdef CG_HAVE_CBLAS
    if (M * N * K >= CG_SMALL_GEMM_WORK) {
#ifdef CG_HAVE_OPENBLAS
        warn_generic_openblas_core();
#endif
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                    (int)N, (int)K, alpha, A, trans_a ? (int)M : (int)K, B, trans_b ? (int)K : (int)N, beta, C,
                    (int)N);
        return;
    }
#endif
    if (beta == 0.0f)
        memset(C, 0, (size_t)(M * N) * sizeof(float)); // not C *= 0: C may hold NaN garbage
    else if (beta != 1.0f)
        for (int64_t i = 0; i < M * N; i++) C[i] *= beta;
    if (!trans_b)
        gemm_xn(trans_a, M, N, K, alpha, A, B, C);
    else if (!trans_a)
        gemm_nt(M, N, K, alpha, A, B, C);
    else
        gemm_tt(M, N, K, alpha, A, B, C);
}

// int8_gemm.c: C (M, N) i32 = A (M, K) i8 B (N, K)^T i8 on the CPU, plus requantisation to int8
// and dequantisation to float. Plain C that GCC vectorises (-O3 -march=native); no intrinsics,
// no assembly, no packing of B. Formulas and conventions in int8_gemm.h.
//
// How it reaches AVX-512 VNNI: x86 has no signed x signed byte dot product before AVX-VNNI-INT8;
// VNNI's vpdpbusd multiplies UNSIGNED bytes by SIGNED bytes, four at a time, and adds the four
// products to one int32 lane. GCC emits it for the loop sum += (int32_t)u8[k] * (int32_t)s8[k]
// (its "usdot_prod" pattern; GCC 12 does). So A is shifted to unsigned, a + 128 (flip the top
// bit), and 128 * sum_k B[j][k] is taken off afterwards: sum (a + 128) b - 128 sum b = sum a b.
// (oneDNN and FBGEMM use the same compensation.) With a signed x signed loop GCC sign-extends to
// 16 bits and uses vpdpwssd, two products per lane: about half the speed.
#include "kernels/cpu/int8_gemm.h"

#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "kernels/cpu/cpu.h"

// The register tile: MR rows of A by NR rows of B, MR * NR int32 sums, each one vector of 16
// lanes while K runs: 16 zmm accumulators of the 32.
#define MR 4
#define NR 4
// Columns of C per pass over A: NC rows of B (NC * K bytes) stay in the L2 cache while every
// row block of A goes by.
#define NC 256

// The full tile: C[0..MR)[0..NR) = Au[0..MR) . B[0..NR) - comp[0..NR).
static void tile_4x4(int32_t *c, int64_t ldc, const uint8_t *a, const int8_t *b, const int32_t *comp, int64_t K) {
    const uint8_t *a0 = a, *a1 = a + K, *a2 = a + 2 * K, *a3 = a + 3 * K;
    const int8_t *b0 = b, *b1 = b + K, *b2 = b + 2 * K, *b3 = b + 3 * K;
    int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    int32_t s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
    for (int64_t k = 0; k < K; k++) {
        int32_t x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        int32_t y0 = b0[k], y1 = b1[k], y2 = b2[k], y3 = b3[k];
        s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
        s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
        s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
        s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
    }
    int32_t *c0 = c, *c1 = c + ldc, *c2 = c + 2 * ldc, *c3 = c + 3 * ldc;
    c0[0] = s00 - comp[0], c0[1] = s01 - comp[1], c0[2] = s02 - comp[2], c0[3] = s03 - comp[3];
    c1[0] = s10 - comp[0], c1[1] = s11 - comp[1], c1[2] = s12 - comp[2], c1[3] = s13 - comp[3];
    c2[0] = s20 - comp[0], c2[1] = s21 - comp[1], c2[2] = s22 - comp[2], c2[3] = s23 - comp[3];
    c3[0] = s30 - comp[0], c3[1] = s31 - comp[1], c3[2] = s32 - comp[2], c3[3] = s33 - comp[3];
}

// The edges (fewer than MR rows or NR columns left): one dot product at a time.
static void tile_edge(int32_t *c, int64_t ldc, const uint8_t *a, const int8_t *b, const int32_t *comp, int64_t mr,
                      int64_t nr, int64_t K) {
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) {
            const uint8_t *ai = a + i * K;
            const int8_t *bj = b + j * K;
            int32_t s = 0;
            for (int64_t k = 0; k < K; k++) s += (int32_t)ai[k] * (int32_t)bj[k];
            c[i * ldc + j] = s - comp[j];
        }
}

// Rows i0 .. i0 + MR (or fewer) of C, columns j_begin .. j_end.
static void row_block(int32_t *C, const uint8_t *Au, const int8_t *B, const int32_t *comp, int64_t i0, int64_t M,
                      int64_t N, int64_t K, int64_t j_begin, int64_t j_end) {
    int64_t mr = M - i0 < MR ? M - i0 : MR;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += NR) {
        int64_t nr = j_end - j0 < NR ? j_end - j0 : NR;
        int32_t *c = C + i0 * N + j0;
        if (mr == MR && nr == NR)
            tile_4x4(c, N, Au + i0 * K, B + j0 * K, comp + j0, K);
        else
            tile_edge(c, N, Au + i0 * K, B + j0 * K, comp + j0, mr, nr, K);
    }
}

void int8_gemm_cpu(int32_t *C, const int8_t *A, const int8_t *B, int64_t M, int64_t N, int64_t K) {
    CG_CHECK(M >= 0 && N >= 0 && K >= 0 && K <= CG_INT8_GEMM_MAX_K,
             "int8 GEMM (%lld, %lld) x (%lld, %lld)^T: K must be in [0, %d]", (long long)M, (long long)K,
             (long long)N, (long long)K, CG_INT8_GEMM_MAX_K);
    if (M == 0 || N == 0) return;
    uint8_t *Au = cg_xmalloc((size_t)(M * K) + 1);
    int32_t *comp = cg_xmalloc((size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < M * K; i++) Au[i] = (uint8_t)((uint8_t)A[i] ^ 0x80u); // a + 128
    for (int64_t j = 0; j < N; j++) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += B[j * K + k];
        comp[j] = 128 * s;
    }
    bool parallel = M * N * K >= 64 * CG_OMP_MIN_WORK && M > MR;
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t jc_end = jc + NC < N ? jc + NC : N;
        if (parallel) {
#pragma omp parallel for schedule(static)
            for (int64_t i0 = 0; i0 < M; i0 += MR) row_block(C, Au, B, comp, i0, M, N, K, jc, jc_end);
        } else {
            for (int64_t i0 = 0; i0 < M; i0 += MR) row_block(C, Au, B, comp, i0, M, N, K, jc, jc_end);
        }
    }
    free(Au);
    free(comp);
}

void int8_gemm_offsets_cpu(int32_t *offset, const int8_t *B, const int32_t *bias, int32_t a_zero_point, int64_t N,
                           int64_t K) {
    for (int64_t j = 0; j < N; j++) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += B[j * K + k];
        offset[j] = (bias ? bias[j] : 0) - a_zero_point * s;
    }
}

void int8_requantize_cpu(int8_t *y, const int32_t *acc, const int32_t *offset, const float *multiplier,
                         int32_t y_zero_point, bool relu, int64_t M, int64_t N) {
    const float lo = relu ? (float)y_zero_point : -128.0f, hi = 127.0f;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int32_t a = acc[i * N + j] + (offset ? offset[j] : 0);
            float v = rintf((float)a * multiplier[j]) + (float)y_zero_point;
            v = v < lo ? lo : v > hi ? hi : v;
            y[i * N + j] = (int8_t)(int32_t)v;
        }
}

void int8_dequantize_cpu(float *y, const int32_t *acc, const int32_t *offset, const float *scale, bool relu,
                         int64_t M, int64_t N) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float v = (float)(acc[i * N + j] + (offset ? offset[j] : 0)) * scale[j];
            y[i * N + j] = relu && v < 0.0f ? 0.0f : v;
        }
}

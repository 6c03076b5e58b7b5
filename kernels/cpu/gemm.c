// gemm.c: row-major single-precision matrix multiply on the CPU.
// Large products go to OpenBLAS's sgemm (blas.c, loaded on first use); small ones, and every
// product when OpenBLAS is missing, to the engine's own loops below. For the matrices of a
// small MLP (32 x 20 x 50) the call overhead of a BLAS library costs more than the arithmetic.
#include "kernels/cpu/amp.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/blas.h"

// Products with fewer multiply-adds than this use the loops below even when OpenBLAS is there.
// SimpleNN's largest (32 x 50 x 20 = 32 Ki) stays here, and OpenBLAS is never loaded for it; from
// 64 x 64 x 32 up OpenBLAS is as fast or faster on one core (the tutorial CNN's first
// convolution, 32 x 3136 x 9: 20 us against 28 us; its weight gradient 32 x 9 x 3136: 22 against 55).
#define CG_SMALL_GEMM_WORK (64 * 64 * 32)

// The register tile: MR rows by NV x NR columns of C are summed in local variables over the
// whole of K and added to C once. 8 x 32 floats are 16 AVX-512 registers: per step of k, two
// loads of B and 8 broadcasts of A feed 16 independent FMAs, enough to keep both FMA units busy
// (each FMA takes 4 cycles, so 8 must be in flight) with loads to spare. (With 8 x 16, one
// vector per row, a load came with every FMA and the loads set the pace.)
#define MR 8
#define NR 16
#define NV 2

// A row of NR floats as one value (the GCC / Clang vector extension): one AVX-512 register, or
// two AVX2 ones. Arithmetic on it is elementwise; a float times a vector broadcasts the float.
typedef float row16 __attribute__((vector_size(NR * sizeof(float))));

// B is copied into rows of N rounded up to NR floats, zeros in the padding, so that every tile
// is a full MR x NR tile with constant loop bounds: that is what lets the compiler keep it in
// registers. The copy costs K x N floats against M x N x K multiply-adds. A is read in place.
// One buffer per thread, kept between calls.
static const float *pack_b(bool trans_b, const float *B, int64_t N, int64_t K, int64_t ldb) {
    static _Thread_local float *buffer = NULL;
    static _Thread_local int64_t capacity = 0;
    if (capacity < K * ldb) {
        free(buffer);
        buffer = cg_xmalloc((size_t)(K * ldb) * sizeof(float));
        capacity = K * ldb;
    }
    for (int64_t k = 0; k < K; k++) {
        float *row = buffer + k * ldb;
        if (trans_b)
            for (int64_t j = 0; j < N; j++) row[j] = B[j * K + k];
        else
            memcpy(row, B + k * N, (size_t)N * sizeof(float));
        for (int64_t j = N; j < ldb; j++) row[j] = 0.0f;
    }
    return buffer;
}

// tile[r][0 .. nv NR) = sum over k of a(r, k) * b[k][0 .. nv NR), where a(r, k) = A[r * rs + k * ks]
// (rs, ks: the strides of op(A)). Only rows r < mr exist; the others repeat the last row and
// are discarded by the caller, so that the loop bounds stay constant. nv (1 or 2) is a constant
// at each call site, so that the compiler keeps the sums in registers.
static inline __attribute__((always_inline)) void micro_kernel(int64_t K, const float *A, int64_t rs, int64_t ks,
                                                               int mr, const float *b, int64_t ldb,
                                                               float tile[MR][NV * NR], const int nv) {
    const float *rows[MR];
    for (int r = 0; r < MR; r++) rows[r] = A + (r < mr ? r : mr - 1) * rs;
    row16 acc[MR][NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = (row16){0};
    for (int64_t k = 0; k < K; k++) {
        row16 brow[NV];
        for (int v = 0; v < nv; v++) memcpy(&brow[v], b + k * ldb + v * NR, sizeof brow[v]); // unaligned loads
        for (int r = 0; r < MR; r++) {
            float a = rows[r][k * ks];
            for (int v = 0; v < nv; v++) acc[r][v] += a * brow[v];
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < nv; v++) memcpy(&tile[r][v * NR], &acc[r][v], sizeof acc[r][v]);
}

// Rows i0 .. i0 + MR - 1 of C += alpha * op(A) (packed B), or C = alpha * op(A) (packed B) when
// overwrite (beta 0: C is not read, so need not be zeroed first). B's rows hold ldb floats, a
// multiple of NR: tiles of two vectors, and one at the end when ldb is an odd number of vectors.
static void gemm_panel(int64_t i0, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       const float *bp, int64_t ldb, float *C, bool overwrite) {
    int64_t rs = trans_a ? 1 : K, ks = trans_a ? M : 1;
    int mr = (int)(M - i0 < MR ? M - i0 : MR);
    float tile[MR][NV * NR];
    for (int64_t j0 = 0; j0 < N; j0 += NV * NR) {
        if (ldb - j0 >= NV * NR)
            micro_kernel(K, A + i0 * rs, rs, ks, mr, bp + j0, ldb, tile, NV);
        else
            micro_kernel(K, A + i0 * rs, rs, ks, mr, bp + j0, ldb, tile, 1);
        int nr = (int)(N - j0 < NV * NR ? N - j0 : NV * NR);
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < nr; c++)
                C[(i0 + r) * N + j0 + c] = (overwrite ? 0.0f : C[(i0 + r) * N + j0 + c]) + alpha * tile[r][c];
    }
}

// Matrix-vector products (N == 1 or M == 1) gain nothing from tiles, which would pad the
// single row or column to a whole tile. Every layout of a vector is contiguous.
// sum of a[k] * b[k], NR products at a time in a vector (a plain loop would be summed in order,
// one product at a time, since float addition is not associative).
static float dot(const float *a, const float *b, int64_t n) {
    row16 acc = {0};
    int64_t k = 0;
    for (; k + NR <= n; k += NR) {
        row16 va, vb;
        memcpy(&va, a + k, sizeof va);
        memcpy(&vb, b + k, sizeof vb);
        acc += va * vb;
    }
    float sum = 0.0f;
    for (int c = 0; c < NR; c++) sum += acc[c];
    for (; k < n; k++) sum += a[k] * b[k];
    return sum;
}

// C(M,1) += alpha * op(A) b: one dot product per row (rows of A contiguous unless trans_a).
static void gemv_column(bool trans_a, int64_t M, int64_t K, float alpha, const float *A, const float *b, float *C) {
    if (!trans_a) {
        for (int64_t i = 0; i < M; i++) C[i] += alpha * dot(A + i * K, b, K);
    } else {
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < M; i++) C[i] += alpha * b[k] * A[k * M + i];
    }
}

// C(1,N) += alpha * a op(B): rows of B scaled and added (B stored (K,N)), or dot products
// with the rows of B (stored (N,K)).
static void gemv_row(bool trans_b, int64_t N, int64_t K, float alpha, const float *a, const float *B, float *C) {
    if (!trans_b) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) C[j] += alpha * a[k] * B[k * N + j];
    } else {
        for (int64_t j = 0; j < N; j++) C[j] += alpha * dot(a, B + j * K, K);
    }
}

// C(M,N) += alpha * op(A) op(B) (= when overwrite); for large products threads share out the row
// panels (OpenMP only then: see elementwise.c). B is read in place when its rows are already
// whole tiles (not transposed, N a multiple of NR), packed otherwise.
static void gemm_tiled(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       const float *B, float *C, bool overwrite) {
    int64_t ldb = (N + NR - 1) / NR * NR;
    const float *bp = !trans_b && N % NR == 0 ? B : pack_b(trans_b, B, N, K, ldb);
    if (M * N * K < 64 * CG_OMP_MIN_WORK) {
        for (int64_t i0 = 0; i0 < M; i0 += MR) gemm_panel(i0, trans_a, M, N, K, alpha, A, bp, ldb, C, overwrite);
        return;
    }
#pragma omp parallel for
    for (int64_t i0 = 0; i0 < M; i0 += MR) gemm_panel(i0, trans_a, M, N, K, alpha, A, bp, ldb, C, overwrite);
}

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C) {
    if (M * N * K >= CG_SMALL_GEMM_WORK && cg_blas_sgemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)) return;
    gemm_engine_cpu(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}

void gemm_engine_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     const float *B, float beta, float *C) {
    bool vector = N == 1 || M == 1;
    if (beta == 0.0f && vector)
        memset(C, 0, (size_t)(M * N) * sizeof(float)); // not C *= 0: C may hold NaN garbage
    else if (beta != 0.0f && beta != 1.0f)
        for (int64_t i = 0; i < M * N; i++) C[i] *= beta;
    if (N == 1)
        gemv_column(trans_a, M, K, alpha, A, B, C);
    else if (M == 1)
        gemv_row(trans_b, N, K, alpha, A, B, C);
    else
        gemm_tiled(trans_a, trans_b, M, N, K, alpha, A, B, C, beta == 0.0f); // beta 0: tiles overwrite C
}

static void linear_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                               int64_t K) {
    gemm_cpu(false, true, M, N, K, 1.0f, x, w, 0.0f, y); // y = x W^T
    if (bias) add_bias_forward_cpu(y, y, bias, M, N);
}

void gemm_h_cpu(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const void *A, const void *B, float beta, void *C) {
    if (dtype == CG_BF16 && cg_bf16_gemm_hw(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)) return; // bf16_ops.c
    float *a = half_widen_cpu(0, A, dtype, M * K), *b = half_widen_cpu(1, B, dtype, K * N);
    float *c = beta != 0.0f ? half_widen_cpu(2, C, dtype, M * N) : half_scratch_cpu(2, M * N);
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, a, b, beta, c);
    half_store_cpu(C, dtype, c, M * N);
}

static void linear_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                                 int64_t N, int64_t K) {
    if (dtype == CG_BF16 && cg_bf16_linear_forward_hw(y, x, w, bias, M, N, K)) return; // bf16_ops.c
    float *xf = half_widen_cpu(0, x, dtype, M * K), *wf = half_widen_cpu(1, w, dtype, N * K), *bf = half_widen_cpu(2, bias, dtype, N);
    float *yf = half_scratch_cpu(3, M * N);
    linear_forward_cpu(yf, xf, wf, bf, M, N, K);
    half_store_cpu(y, dtype, yf, M * N);
}


// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void gemm_register_cpu(cg_kernels *k) {
    k->gemm = gemm_cpu;
    k->linear_forward = linear_forward_cpu;
    k->gemm_h = gemm_h_cpu;
    k->linear_forward_h = linear_forward_h_cpu;
}

// bf16_products.c: the op table's bf16 products (gemm_h, linear_forward_h with dtype bf16) on the
// CPU's bf16 hardware, AMX tiles or AVX512-BF16 (bf16_gemm.c), called by gemm.c when cg_cpu_bf16()
// is not the emulated path. bf16 values multiplied exactly, sums in fp32, each stored result
// rounded to bf16 once (the emulated kernels' policy; the sums run in another order).
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"

static uint16_t *scratch16(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 2); }
static float *scratch32(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 4); }
static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// ---- products --------------------------------------------------------------------------------

// C = Ap Bp on the OpenMP threads when the product is large (column blocks shared out in pairs,
// the AMX kernels' unit), else on this thread.
static void gemm_packed_threads(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M, int64_t N,
                                int64_t K, cg_cpu_bf16_path path) {
    int64_t pairs = (N + 31) / 32, step = ((K + 31) / 32) * CG_BF16_BLOCK * 2; // B elements per pair of blocks
    if (pairs < 2 || M * N * K < 64 * CG_OMP_MIN_WORK) {
        cg_bf16_gemm_packed(C, ldc, Ap, Bp, M, N, K, path);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        int64_t n0 = p * 32, n = N - n0 < 32 ? N - n0 : 32;
        cg_bf16_gemm_packed(C + n0, ldc, Ap, Bp + p * step, M, n, K, path);
    }
}

bool cg_bf16_gemm_hw(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                     const uint16_t *B, float beta, uint16_t *C) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    if (M == 0 || N == 0) return true;
    uint16_t *Ap = scratch16(0, cg_bf16_packed_size(M, K)), *Bp = scratch16(1, cg_bf16_packed_size(N, K));
    cg_bf16_pack_a(Ap, A, trans_a ? 1 : K, trans_a ? M : 1, M, K);
    cg_bf16_pack_b(Bp, B, trans_b ? 1 : N, trans_b ? K : 1, K, N);
    int64_t ldc = round16(N);
    float *acc = scratch32(2, round16(M) * ldc);
    gemm_packed_threads(acc, ldc, Ap, Bp, M, N, K, path);
    for (int64_t i = 0; i < M; i++) { // C = alpha A B + beta C, as gemm_cpu; C is not read when beta is 0
        uint16_t *c = C + i * N;
        const float *a = acc + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < N; j++) c[j] = cg_bf16_round(alpha * a[j]);
        else
            for (int64_t j = 0; j < N; j++) c[j] = cg_bf16_round(alpha * a[j] + beta * cg_bf16_widen(c[j]));
    }
    return true;
}

bool cg_bf16_linear_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t M,
                               int64_t N, int64_t K) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    if (M == 0 || N == 0) return true;
    uint16_t *Ap = scratch16(0, cg_bf16_packed_size(M, K)), *Bp = scratch16(1, cg_bf16_packed_size(N, K));
    cg_bf16_pack_a(Ap, x, K, 1, M, K);
    cg_bf16_pack_b(Bp, w, 1, K, K, N); // B (K, N) = W^T: column n is row n of W
    int64_t ldc = round16(N);
    float *acc = scratch32(2, round16(M) * ldc);
    gemm_packed_threads(acc, ldc, Ap, Bp, M, N, K, path);
    for (int64_t i = 0; i < M; i++) // y = x W^T, then + b (linear_forward_cpu's order)
        for (int64_t j = 0; j < N; j++)
            y[i * N + j] = cg_bf16_round(acc[i * ldc + j] + (bias ? cg_bf16_widen(bias[j]) : 0.0f));
    return true;
}


// bf16_products.c: the op table's bf16 products (gemm_h, linear_forward_h with dtype bf16) on the
// CPU's bf16 hardware, AMX tiles or AVX512-BF16 (bf16_gemm.c), called by gemm.c when cg_cpu_bf16()
// is not the emulated path. bf16 values multiplied exactly, sums in fp32, each stored result
// rounded to bf16 once (the emulated kernels' policy; the sums run in another order).
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

static uint16_t *scratch16(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 2); }
static float *scratch32(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 4); }
// ---- products --------------------------------------------------------------------------------

// The whole product on the OpenMP threads when it is large, in one parallel region: both
// operands packed (A's 16-row blocks and B's 16-column blocks shared out: each block of the
// packed layouts depends on its own rows or columns only, so a range of them is packed by
// packing that slice of the matrix), then Ap Bp (column blocks shared out in pairs, the AMX
// kernels' unit), each pair's columns of C rounded to bf16 as soon as they are summed
// (pair_product). The linear layers' products (128 x 128 x 3136 in the tutorial CNN, and its
// two gradients) used to pack and round on this thread alone while the other slept. Every
// value is computed as before, by the same code, only on another thread: the same bits
// (tests/test_bf16_cpu.c compares 1 and 2 threads).
// Epilogue: linear (bias, possibly NULL: y = acc + b, linear_forward_cpu's order), else
// C = alpha acc + beta C (C not read when beta is 0), as gemm_cpu.
typedef struct {
    bool linear;
    const uint16_t *bias;
    float alpha, beta;
} epilogue;

// Columns n0 .. n0 + n - 1 of one row of C from the matching floats of the product, a[0 .. n-1].
static void store_row(uint16_t *c, const float *a, int64_t n0, int64_t n, const epilogue *e) {
    c += n0;
    if (e->linear)
        for (int64_t j = 0; j < n; j++)
            c[j] = cg_bf16_round(a[j] + (e->bias ? cg_bf16_widen(e->bias[n0 + j]) : 0.0f));
    else if (e->beta == 0.0f)
        for (int64_t j = 0; j < n; j++) c[j] = cg_bf16_round(e->alpha * a[j]);
    else
        for (int64_t j = 0; j < n; j++) c[j] = cg_bf16_round(e->alpha * a[j] + e->beta * cg_bf16_widen(c[j]));
}

#ifdef CG_CPU_MATRIX_KERNELS
// store_row for the M rows of a pair (acc: 32 floats a row), 32 columns a step in AVX-512. The
// compiler's vector loop of store_row spent about 28 cycles a row (its constants set up again
// for every row, the tails of a loop of unknown length), a sixth of fc1's backward products.
// The same operations: a + b (a + 0 without bias), alpha a, or alpha a + (beta c) as one FMA,
// which is how -ffp-contract=fast compiles store_row's expression (gcc 12: the product beta c
// rounded, then alpha a added to it in one FMA); then round16_avx512, cg_bf16_round's steps.
static VEC_TARGET void store_rows_avx512(uint16_t *C, const float *acc, int64_t M, int64_t N, int64_t n0, int64_t n,
                                         const epilogue *e) {
    __mmask16 m[2] = {(__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1), (__mmask16)(n > 16 ? (1u << (n - 16)) - 1 : 0)};
    __m512 alpha = _mm512_set1_ps(e->alpha), beta = _mm512_set1_ps(e->beta), bias[2];
    int kind = e->linear ? 0 : e->beta == 0.0f ? 1 : 2; // read once: the stores below may alias *e
    int halves = n > 16 ? 2 : 1; // (no pointer past the row's end is formed)
    for (int h = 0; h < halves; h++)
        bias[h] = e->linear && e->bias ? widen16_avx512(_mm256_maskz_loadu_epi16(m[h], e->bias + n0 + 16 * h))
                                       : _mm512_setzero_ps();
    for (int64_t i = 0; i < M; i++) {
        uint16_t *c = C + i * N + n0;
        for (int h = 0; h < halves; h++) {
            __m512 a = _mm512_loadu_ps(acc + i * 32 + 16 * h), r;
            if (kind == 0)
                r = _mm512_add_ps(a, bias[h]);
            else if (kind == 1)
                r = _mm512_mul_ps(alpha, a);
            else
                r = _mm512_fmadd_ps(alpha, a, _mm512_mul_ps(beta, widen16_avx512(_mm256_maskz_loadu_epi16(m[h], c + 16 * h))));
            _mm256_mask_storeu_epi16(c + 16 * h, m[h], _mm512_cvtepi32_epi16(round16_avx512(r)));
        }
    }
}
#endif

// One pair of B's column blocks (columns n0 .. n0 + n - 1, n <= 32) of C: Ap times the pair's
// packed blocks into `acc` (the calling thread's M x 32 floats, 16 KB for the tutorial's 128
// rows: they stay in the L1 cache), then rounded into C at once. The rounding used to be a loop
// of its own over a shared M x N f32 product after the multiplications (1.6 MB for the tutorial
// CNN's 128 x 3136 gradients): written out to the L2 cache and read back, half of it from the
// other core's cache (the products shared out by columns, the rounding by rows), and one more
// barrier. Each element's value is the same (the kernel's sums do not depend on N).
static void pair_product(uint16_t *C, float *acc, const uint16_t *Ap, const uint16_t *Bp_pair, int64_t M, int64_t N,
                         int64_t n0, int64_t n, int64_t K, const epilogue *e, cg_cpu_bf16_path path) {
    cg_bf16_gemm_packed(acc, 32, Ap, Bp_pair, M, n, K, path);
#ifdef CG_CPU_MATRIX_KERNELS
    store_rows_avx512(C, acc, M, N, n0, n, e); // (this file runs only on the AVX-512 bf16 paths)
    return;
#endif
    for (int64_t i = 0; i < M; i++) store_row(C + i * N, acc + i * 32, n0, n, e);
}

// C (M, N, row-major) = epilogue(A B), A(i, k) = A[i ars + k aks], B(k, n) = B[k bks + n bns]
// (cg_bf16_pack_a's and cg_bf16_pack_b's strides).
static void product(uint16_t *C, const uint16_t *A, int64_t ars, int64_t aks, const uint16_t *B, int64_t bks,
                    int64_t bns, int64_t M, int64_t N, int64_t K, const epilogue *e, cg_cpu_bf16_path path) {
    // The host thread's scratch, shared with the others (cg_bf16_scratch's buffers are per thread).
    uint16_t *Ap = scratch16(0, cg_bf16_packed_size(M, K)), *Bp = scratch16(1, cg_bf16_packed_size(N, K));
    int64_t KC = (K + 31) / 32, MB = (M + 15) / 16, NB = (N + 15) / 16;
    int64_t pairs = (N + 31) / 32, step = KC * CG_BF16_BLOCK * 2; // B elements per pair of blocks
    const int64_t chunk = 4; // B's column blocks per piece of packing: 64 columns, 128 bytes of a row
    // Small, or one thread: all on this thread, each operand packed whole (a region with a false
    // `if` still costs a system call in libgomp).
    if (pairs < 2 || M * N * K < 64 * CG_OMP_MIN_WORK || cg_get_num_threads() < 2) {
        cg_bf16_pack_a(Ap, A, ars, aks, M, K);
        cg_bf16_pack_b(Bp, B, bks, bns, K, N);
        float *acc = scratch32(2, cg_whole16(M) * 32);
        for (int64_t p = 0; p < pairs; p++) {
            int64_t n0 = p * 32, n = N - n0 < 32 ? N - n0 : 32;
            pair_product(C, acc, Ap, Bp + p * step, M, N, n0, n, K, e, path);
        }
        return;
    }
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait // no barrier: B's blocks are packed meanwhile
        for (int64_t mb = 0; mb < MB; mb++) {
            int64_t m0 = mb * 16, rows = M - m0 < 16 ? M - m0 : 16;
            cg_bf16_pack_a(Ap + mb * KC * CG_BF16_BLOCK, A + m0 * ars, ars, aks, rows, K);
        }
#pragma omp for schedule(static)
        for (int64_t nb = 0; nb < NB; nb += chunk) {
            int64_t n0 = nb * 16, cols = N - n0 < chunk * 16 ? N - n0 : chunk * 16;
            cg_bf16_pack_b(Bp + nb * KC * CG_BF16_BLOCK, B + n0 * bns, bks, bns, K, cols);
        } // the barrier here: every block packed before any product reads it
        float *acc = scratch32(2, cg_whole16(M) * 32); // this thread's
#pragma omp for schedule(static)
        for (int64_t p = 0; p < pairs; p++) {
            int64_t n0 = p * 32, n = N - n0 < 32 ? N - n0 : 32;
            pair_product(C, acc, Ap, Bp + p * step, M, N, n0, n, K, e, path);
        }
    }
}

bool cg_bf16_gemm_hw(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                     const uint16_t *B, float beta, uint16_t *C) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    if (M == 0 || N == 0) return true;
    epilogue e = {.linear = false, .bias = NULL, .alpha = alpha, .beta = beta};
    product(C, A, trans_a ? 1 : K, trans_a ? M : 1, B, trans_b ? 1 : N, trans_b ? K : 1, M, N, K, &e, path);
    return true;
}

bool cg_bf16_linear_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t M,
                               int64_t N, int64_t K) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    if (M == 0 || N == 0) return true;
    epilogue e = {.linear = true, .bias = bias, .alpha = 1.0f, .beta = 0.0f};
    product(y, x, K, 1, w, 1, K, M, N, K, &e, path); // y = x W^T (+ b): B (K, N) = W^T, column n is row n of W
    return true;
}

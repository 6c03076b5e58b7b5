#define _POSIX_C_SOURCE 200809L // setenv, unsetenv
// test_bf16_cpu.c: the CPU's bf16 products and convolutions on bf16 hardware (AMX-BF16 tiles,
// AVX512-BF16) against the emulated path (f32 arithmetic on widened copies, each result rounded to
// bf16), through the op table's kernels: gemm_h (every transpose, alpha, beta), linear_forward_h,
// conv2d_forward_h and conv2d_backward_h (accumulating into old gradients), on odd sizes and the
// tutorial CNN's and ResNet-18's shapes, with CGRAD_CPU_WINOGRAD=0 (the dense tiles: Winograd's, on
// AVX512-BF16, are test_bf16_winograd.c's; the fused block and the threads below run them). Also
// the branch-free rounding of bf16_gemm.h, and bf16_vec.h's by the AVX512-BF16 instruction, against
// core/half.c's, and the fused conv + ReLU + pooling block in 16 bits against the three ops it
// replaces (bit for bit, on every path, fp16 and bf16), and the large products on one thread and on
// two (bit for bit). Skipped (77) on a CPU with neither feature, after the checks that need none.
//
// Tolerance: both paths multiply the same bf16 values exactly and sum in fp32; only the order of
// the sums differs (and the hardware flushes subnormals, which these inputs never produce). Two
// fp32 sums that differ in their last bits can round to neighbouring bf16 values: one bf16 step,
// at most 2^-7 of the value, plus what the reordering itself can move, K * 2^-23 * max |a| max |b|
// per product (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), where cancellation
// leaves a small result.
#include "core/half.h"
#include "core/kernels.h"
#include "core/rng.h"
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/bf16_same.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/threads.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static int threads_at_start = 1; // OpenMP's count as main starts, restored after changing it
#include "tests/bf16_values.h"

static void compare(const char *what, const uint16_t *hw, const uint16_t *ref, int64_t n, int64_t terms) {
    double worst = 0.0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        double a = cg_bf16_to_f32(hw[i]), b = cg_bf16_to_f32(ref[i]);
        double tol = ldexp(fabs(b), -7) + (double)terms * ldexp(1.0, -23) * 4.0;
        double excess = fabs(a - b) - tol;
        if (!(excess <= 0.0) && (at < 0 || excess > worst)) worst = excess, at = i;
    }
    if (at >= 0)
        fail(what, "element %lld: %g on the hardware, %g emulated (beyond the tolerance by %g)", (long long)at,
             cg_bf16_to_f32(hw[at]), cg_bf16_to_f32(ref[at]), worst);
}

static void test_rounding(void) {
    static const uint32_t low[] = {0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234, 0xc000};
    int64_t bad = 0;
    for (uint32_t high = 0; high < 65536; high++)
        for (size_t j = 0; j < sizeof low / sizeof low[0]; j++) {
            uint32_t u = high << 16 | low[j];
            float x;
            memcpy(&x, &u, 4);
            if (cg_bf16_round(x) != cg_f32_to_bf16(x) && bad++ < 5)
                fail("cg_bf16_round", "pattern 0x%08x: 0x%04x, core/half.c says 0x%04x", u, cg_bf16_round(x),
                     cg_f32_to_bf16(x));
        }
}

#ifdef CG_CPU_MATRIX_KERNELS
// bf16_vec.h's round16_bf16_avx512 (vcvtneps2bf16; a vector holding a denormal by the integer
// steps) against core/half.c's rounding, on test_rounding's patterns: 16 to a vector (the
// denormals among them send their vector to the integer steps), then each alone in a vector
// (the instruction's own result for every pattern but the denormals). Only with AVX512-BF16.
static VEC_BF16_TARGET void test_rounding_hw(void) {
    static const uint32_t low[] = {0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234, 0xc000};
    int64_t bad = 0;
    for (uint32_t high = 0; high < 65536; high += 2) {
        uint32_t in[16], together[16], alone[16];
        for (int j = 0; j < 16; j++) in[j] = (high + (uint32_t)(j / 8)) << 16 | low[j % 8];
        _mm512_storeu_si512(together, round16_bf16_avx512(_mm512_loadu_ps(in)));
        for (int j = 0; j < 16; j++) {
            float x;
            memcpy(&x, &in[j], 4);
            _mm512_storeu_si512(alone, round16_bf16_avx512(_mm512_set1_ps(x)));
            uint16_t want = cg_f32_to_bf16(x);
            if (((uint16_t)together[j] != want || (uint16_t)alone[0] != want) && bad++ < 5)
                fail("round16_bf16_avx512", "pattern 0x%08x: 0x%04x in a vector, 0x%04x alone, core/half.c says 0x%04x",
                     in[j], (uint16_t)together[j], (uint16_t)alone[0], want);
        }
    }
}
#endif

static void test_gemm(cg_cpu_bf16_path path) {
    const int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 128, 300}, {130, 70, 33}, {128, 3136, 128}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int ab = 0; ab < 2; ab++) {
                int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                bool ta = t & 1, tb = t >> 1;
                float alpha = ab ? 0.5f : 1.0f, beta = ab ? 1.0f : 0.0f;
                uint16_t *A = random_bf16(M * K), *B = random_bf16(K * N), *C0 = random_bf16(M * N);
                if (beta == 0.0f) // not read: NaNs (0x7fc0), as a gradient written fresh finds in the arena
                    for (int64_t i = 0; i < M * N; i++) C0[i] = 0x7fc0;
                uint16_t *ref = copy16(C0, M * N), *hw = copy16(C0, M * N);
                cg_cpu_bf16_set(CG_BF16_EMULATED);
                cg_cpu_kernels()->gemm_h(CG_BF16, ta, tb, M, N, K, alpha, A, B, beta, ref);
                cg_cpu_bf16_set(path);
                cg_cpu_kernels()->gemm_h(CG_BF16, ta, tb, M, N, K, alpha, A, B, beta, hw);
                char what[128];
                snprintf(what, sizeof what, "%s gemm_h %lldx%lldx%lld ta %d tb %d alpha %g beta %g",
                         cg_cpu_bf16_name(path), (long long)M, (long long)N, (long long)K, ta, tb, alpha, beta);
                compare(what, hw, ref, M * N, K + 1);
                free(A), free(B), free(C0), free(ref), free(hw);
            }
}

static void test_linear(cg_cpu_bf16_path path) {
    const int64_t sizes[][3] = {{1, 1, 1}, {5, 10, 3}, {128, 128, 3136}, {128, 10, 128}, {33, 17, 49}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            uint16_t *x = random_bf16(M * K), *w = random_bf16(N * K), *b = with_bias ? random_bf16(N) : NULL;
            uint16_t *ref = random_bf16(M * N), *hw = random_bf16(M * N); // garbage: must be overwritten
            cg_cpu_bf16_set(CG_BF16_EMULATED);
            cg_cpu_kernels()->linear_forward_h(CG_BF16, ref, x, w, b, M, N, K);
            cg_cpu_bf16_set(path);
            cg_cpu_kernels()->linear_forward_h(CG_BF16, hw, x, w, b, M, N, K);
            char what[128];
            snprintf(what, sizeof what, "%s linear_forward_h %lldx%lldx%lld bias %d", cg_cpu_bf16_name(path),
                     (long long)M, (long long)N, (long long)K, with_bias);
            compare(what, hw, ref, M * N, K + 1);
            free(x), free(w), free(b), free(ref), free(hw);
        }
}

// The large products run packing, product and rounding on the threads (bf16_products.c), the
// small ones and one thread on one: the same bits either way, on sizes with partial blocks.
static void test_product_threads(cg_cpu_bf16_path path) {
    const int64_t sizes[][3] = {{128, 3136, 128}, {130, 2001, 70}, {131, 97, 1500}};
    cg_cpu_bf16_set(path);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 5; t++) { // t < 4: gemm_h with transposes t & 1, t >> 1; 4: linear_forward_h
            int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            uint16_t *A = random_bf16(M * K), *B = random_bf16(K * N), *C0 = random_bf16(M * N), *bias = random_bf16(N);
            uint16_t *one = copy16(C0, M * N), *two = copy16(C0, M * N);
            for (int threads = 1; threads <= 2; threads++) {
                cg_set_num_threads(threads);
                uint16_t *C = threads == 1 ? one : two;
                if (t < 4)
                    cg_cpu_kernels()->gemm_h(CG_BF16, t & 1, t >> 1, M, N, K, 0.5f, A, B, 1.0f, C);
                else
                    cg_cpu_kernels()->linear_forward_h(CG_BF16, C, A, B, bias, M, N, K); // B as W (N, K)
            }
            if (memcmp(one, two, (size_t)(M * N) * 2) != 0)
                fail("product threads", "%s %lldx%lldx%lld case %d: 1 and 2 threads differ", cg_cpu_bf16_name(path),
                     (long long)M, (long long)N, (long long)K, t);
            free(A), free(B), free(C0), free(bias), free(one), free(two);
        }
    cg_set_num_threads(threads_at_start);
}

typedef struct {
    int64_t N, C, H, W, K, R, S, stride, pad;
    const char *name;
} conv_shape;

static void test_conv(cg_cpu_bf16_path path) {
    const conv_shape shapes[] = {
        {5, 3, 9, 9, 7, 3, 3, 1, 1, "odd sizes"},
        {2, 4, 11, 10, 16, 3, 3, 2, 0, "stride 2, no padding"},
        {3, 1, 28, 28, 32, 3, 3, 1, 1, "tutorial conv1"},
        {6, 32, 14, 14, 64, 3, 3, 1, 1, "tutorial conv2"},
        {2, 8, 8, 8, 5, 1, 1, 1, 0, "1x1"},
        {2, 3, 32, 32, 64, 7, 7, 2, 3, "ResNet-18 conv1 (32x32)"},
        {2, 64, 8, 8, 128, 3, 3, 2, 1, "ResNet-18 layer2 downsampling"},
        {2, 32, 16, 16, 64, 3, 3, 2, 1, "stride 2, 16x16 -> 8x8 (im2col through the phases)"},
        {2, 32, 32, 20, 48, 1, 1, 2, 0, "1x1 stride 2, 32x20 -> 16x10 (one phase)"},
        {2, 16, 12, 68, 32, 3, 3, 2, 1, "stride 2, rows of 34 outputs (phases: two registers a row)"},
        {1, 128, 7, 7, 128, 3, 3, 1, 1, "ResNet-18 layer 3x3, 7x7"},
        {2, 3, 20, 20, 8, 5, 5, 1, 2, "same 5x5 (shifts past 32 positions)"},
        {1, 2, 40, 40, 4, 5, 5, 1, 2, "same 5x5, 40x40 (shifts past a bitset word)"},
        {2, 4, 13, 37, 16, 3, 3, 1, 1, "same 3x3, 13x37 (planes not of whole vectors)"},
        {3, 1, 9, 13, 7, 3, 3, 1, 1, "one channel 9x13, 7 kernels (direct sums, bf16_direct.c)"},
        // small planes with many weights: dW and dx by parts of the input channels (bf16_small.c)
        {40, 128, 8, 8, 128, 3, 3, 1, 1, "8x8, 128 -> 128 (bf16_small.c: 2 spans, 7 groups)"},
        {4, 256, 8, 8, 128, 3, 3, 2, 1, "stride 2 to 4x4, 256 -> 128 (bf16_small.c)"},
        {2, 200, 5, 5, 96, 3, 3, 1, 1, "5x5, 200 -> 96 (bf16_small.c: a last part of 8 channels)"},
        {3, 256, 8, 8, 512, 1, 1, 2, 0, "1x1 stride 2, 256 -> 512 (bf16_small.c: parts of 144 and 112)"},
        {2, 64, 6, 6, 96, 5, 5, 1, 2, "same 5x5 on 6x6, 64 -> 96 (bf16_small.c: parts of 125 rows)"},
    };
    setenv("CGRAD_CPU_WINOGRAD", "0", 1); // the dense tiles here; Winograd's: test_bf16_winograd.c
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const conv_shape *c = &shapes[s];
        int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->S) / c->stride + 1;
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->S, ny = c->N * c->K * P * Q;
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *b = random_bf16(c->K), *dy = random_bf16(ny);
        uint16_t *y_ref = random_bf16(ny), *y_hw = random_bf16(ny);
        cg_cpu_bf16_set(CG_BF16_EMULATED);
        cg_cpu_kernels()->conv2d_forward_h(CG_BF16, y_ref, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride,
                                        c->pad, P, Q);
        cg_cpu_bf16_set(path);
        cg_cpu_kernels()->conv2d_forward_h(CG_BF16, y_hw, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride,
                                        c->pad, P, Q);
        char what[160];
        snprintf(what, sizeof what, "%s conv2d_forward_h %s", cg_cpu_bf16_name(path), c->name);
        compare(what, y_hw, y_ref, ny, c->C * c->R * c->S + 1);

        // Backward, into gradients that already hold values (they accumulate), then without dx.
        for (int with_dx = 1; with_dx >= 0; with_dx--) {
            uint16_t *dx0 = random_bf16(nx), *dw0 = random_bf16(nw), *db0 = random_bf16(c->K);
            uint16_t *dx_ref = copy16(dx0, nx), *dw_ref = copy16(dw0, nw), *db_ref = copy16(db0, c->K);
            uint16_t *dx_hw = copy16(dx0, nx), *dw_hw = copy16(dw0, nw), *db_hw = copy16(db0, c->K);
            cg_cpu_bf16_set(CG_BF16_EMULATED);
            cg_cpu_kernels()->conv2d_backward_h(CG_BF16, with_dx ? dx_ref : NULL, dw_ref, db_ref, dy, x, w, c->N, c->C,
                                             c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, P, Q);
            cg_cpu_bf16_set(path);
            cg_cpu_kernels()->conv2d_backward_h(CG_BF16, with_dx ? dx_hw : NULL, dw_hw, db_hw, dy, x, w, c->N, c->C,
                                             c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, P, Q);
            snprintf(what, sizeof what, "%s conv2d_backward_h %s dw%s", cg_cpu_bf16_name(path), c->name,
                     with_dx ? "" : " (no dx)");
            compare(what, dw_hw, dw_ref, nw, c->N * P * Q + 1);
            snprintf(what, sizeof what, "%s conv2d_backward_h %s dbias", cg_cpu_bf16_name(path), c->name);
            compare(what, db_hw, db_ref, c->K, 1); // the same sums in the same order: equal
            if (with_dx) {
                snprintf(what, sizeof what, "%s conv2d_backward_h %s dx", cg_cpu_bf16_name(path), c->name);
                compare(what, dx_hw, dx_ref, nx, c->K * c->R * c->S + 1);
            }
            free(dx0), free(dw0), free(db0), free(dx_ref), free(dw_ref), free(db_ref);
            free(dx_hw), free(dw_hw), free(db_hw);
        }
        free(x), free(w), free(b), free(dy), free(y_ref), free(y_hw);
    }
    unsetenv("CGRAD_CPU_WINOGRAD");
}

// "Same" convolutions with stride 1 pack their columns straight from the image (bf16_same.c's
// cg_bf16_pack_b_same and cg_bf16_pack_a_same); any other goes through im2col_bf16 and the packing functions. The
// same convolution written the other way, the image padded by hand and no padding asked, then
// has the same columns in the same order: y and dW must agree to the bit. One-channel 3 x 3 ones
// are summed by bf16_direct.c's FMAs, in the order Intel's pseudo-code gives the instruction, one
// rounding per product added: their y is held to the tolerance of `compare` instead of the bit,
// because the AMX tiles of a Xeon (2026-12-06) gave one sum in 100,352 one bf16 step away from
// those FMAs: a probe there found about 3 % of tdpbf16ps's f32 sums different from every simple
// model (either order of a pair's products, a pair summed exactly, the whole sum rounded once),
// so no FMA sequence is known to reproduce the tiles' bits.
static void test_same_packing(cg_cpu_bf16_path path) {
    setenv("CGRAD_CPU_WINOGRAD", "0", 1); // the packing's bits: the tutorial's conv2 stays on the tiles
    const conv_shape shapes[] = {
        {5, 3, 9, 9, 7, 3, 3, 1, 1, "odd 9x9"},
        {3, 2, 7, 7, 5, 5, 5, 1, 2, "5x5 kernel on 7x7 (a block row over three images)"},
        {4, 1, 28, 28, 32, 3, 3, 1, 1, "tutorial conv1"},
        {6, 32, 14, 14, 64, 3, 3, 1, 1, "tutorial conv2"},
        {2, 8, 8, 8, 5, 1, 1, 1, 0, "1x1"},
        {3, 1, 9, 13, 7, 3, 3, 1, 1, "one channel 9x13, 7 kernels"},
        {2, 1, 5, 32, 5, 3, 3, 1, 1, "one channel 5x32, 5 kernels"},
    };
    const cg_kernels *k = cg_cpu_kernels();
    cg_cpu_bf16_set(path);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const conv_shape *c = &shapes[s];
        int64_t H = c->H, W = c->W, Hp = H + 2 * c->pad, Wp = W + 2 * c->pad;
        int64_t nx = c->N * c->C * H * W, nxp = c->N * c->C * Hp * Wp, nw = c->K * c->C * c->R * c->S;
        int64_t ny = c->N * c->K * H * W;
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *b = random_bf16(c->K), *dy = random_bf16(ny);
        uint16_t *xp = calloc((size_t)nxp, 2); // x with its zero border
        for (int64_t plane = 0; plane < c->N * c->C; plane++)
            for (int64_t h = 0; h < H; h++)
                memcpy(xp + (plane * Hp + h + c->pad) * Wp + c->pad, x + (plane * H + h) * W, (size_t)W * 2);
        uint16_t *y_same = malloc((size_t)ny * 2), *y_valid = malloc((size_t)ny * 2);
        k->conv2d_forward_h(CG_BF16, y_same, x, w, b, c->N, c->C, H, W, c->K, c->R, c->S, 1, c->pad, H, W);
        k->conv2d_forward_h(CG_BF16, y_valid, xp, w, b, c->N, c->C, Hp, Wp, c->K, c->R, c->S, 1, 0, H, W);
        uint16_t *dw_same = random_bf16(nw), *dw_valid = copy16(dw_same, nw);
        k->conv2d_backward_h(CG_BF16, NULL, dw_same, NULL, dy, x, w, c->N, c->C, H, W, c->K, c->R, c->S, 1, c->pad, H,
                             W);
        k->conv2d_backward_h(CG_BF16, NULL, dw_valid, NULL, dy, xp, w, c->N, c->C, Hp, Wp, c->K, c->R, c->S, 1, 0, H,
                             W);
        char what[160];
        snprintf(what, sizeof what, "%s same-convolution packing %s y", cg_cpu_bf16_name(path), c->name);
        if (cg_bf16_direct_fits(c->C, H, W, c->R, c->S, 1, c->pad, H, W)) // bf16_direct.c's FMAs (above)
            compare(what, y_same, y_valid, ny, c->C * c->R * c->S + 1);
        else
            for (int64_t i = 0; i < ny; i++)
                if (y_same[i] != y_valid[i]) {
                    fail(what, "element %lld: 0x%04x packed from the image, 0x%04x through im2col", (long long)i,
                         y_same[i], y_valid[i]);
                    break;
                }
        snprintf(what, sizeof what, "%s same-convolution packing %s dw", cg_cpu_bf16_name(path), c->name);
        for (int64_t i = 0; i < nw; i++)
            if (dw_same[i] != dw_valid[i]) {
                fail(what, "element %lld: 0x%04x packed from the image, 0x%04x through im2col", (long long)i,
                     dw_same[i], dw_valid[i]);
                break;
            }
        free(x), free(w), free(b), free(dy), free(xp), free(y_same), free(y_valid), free(dw_same), free(dw_valid);
    }
    unsetenv("CGRAD_CPU_WINOGRAD");
}

static void compare_bits(const char *what, const uint16_t *a, const uint16_t *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            fail(what, "element %lld: 0x%04x fused, 0x%04x from the three ops", (long long)i, a[i], b[i]);
            return;
        }
}

// bf16_direct.c's fast rounding reads subnormal sums as 0, and must leave them to bf16_ops.c's
// path: this case's x and w are all 2^-66 and it has no bias, so that every sum of the forward is
// subnormal (with the flush to zero off).
static const char subnormal_case[] = "tutorial conv1, subnormal sums";

// The fused block (conv2d_relu_pool_forward_h / backward_h) against conv2d_forward_h,
// relu_forward_h, max_pool2d_forward_h and their backwards in a row, in the path set now: the
// same bits for y, dx and dw (dw within tolerance where it comes from the pooling windows, below);
// dbias up to the order of its sum (one bf16 step). The backward again
// without dx: the same dw, and dbias as with dx.
static void test_fused(cg_dtype dt, const char *path_name) {
    const conv_shape shapes[] = {
        {5, 3, 9, 9, 7, 3, 3, 1, 1, "odd 9x9 output"},
        {2, 4, 11, 10, 16, 3, 3, 2, 0, "stride 2"},
        {4, 1, 28, 28, 32, 3, 3, 1, 1, "tutorial conv1"},
        {6, 32, 14, 14, 64, 3, 3, 1, 1, "tutorial conv2"},
        {3, 1, 9, 13, 7, 3, 3, 1, 1, "one channel 9x13, 7 kernels"},
        // bf16_direct_dw.c over 3 groups, the last of one image (the product's k padded), K = 48
        // (a pass of 32 channels and one of 16); bf16_direct.c's forward with 30 windows a plane
        {9, 1, 12, 10, 48, 3, 3, 1, 1, "one channel 12x10, 48 kernels, 9 images"},
        // AVX512-BF16's dW by pairs of windows over two chunks of 32 input channels, 5 pooled
        // windows a row (a lone last window in each pair of rows); y and dx on Winograd's tiles
        {3, 64, 10, 10, 16, 3, 3, 1, 1, "64 -> 16 channels, 10x10"},
        // Winograd's pooled bf16 finish on rows of more than 8 tiles (10: a vector's segments of 8
        // and 2 tiles; the tutorial CNN on 64 x 64 images has rows of 16)
        {2, 32, 8, 20, 16, 3, 3, 1, 1, "32 -> 16 channels, 8x20"},
        {4, 1, 28, 28, 32, 3, 3, 1, 1, subnormal_case},
    };
    const cg_kernels *k = cg_cpu_kernels();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const conv_shape *c = &shapes[s];
        int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->S) / c->stride + 1;
        int64_t P2 = P / 2, Q2 = Q / 2;
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->S, ny = c->N * c->K * P * Q;
        int64_t np = c->N * c->K * P2 * Q2;
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *b = random_bf16(c->K), *dy = random_bf16(np);
        bool subnormal = c->name == subnormal_case;
#if defined(__x86_64__) || defined(__i386__)
        unsigned int csr = _mm_getcsr(); // cgrad flushes subnormals (kernels/cpu/table.c): not here
        if (subnormal) {
            cg_set_num_threads(1); // (the other threads keep their own setting)
            _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_OFF);
            _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_OFF);
        }
#endif
        if (subnormal) {
            for (int64_t i = 0; i < nx; i++) x[i] = cg_f32_to_bf16(ldexpf(1.0f, -66));
            for (int64_t i = 0; i < nw; i++) w[i] = cg_f32_to_bf16(ldexpf(1.0f, -66));
            for (int64_t i = 0; i < c->K; i++) b[i] = 0;
        }
        if (dt == CG_F16) { // the same values as fp16 patterns (all of them fit)
            uint16_t *all[] = {x, w, b, dy};
            int64_t sizes[] = {nx, nw, c->K, np};
            for (int a = 0; a < 4; a++)
                for (int64_t i = 0; i < sizes[a]; i++) all[a][i] = cg_f32_to_f16(cg_bf16_to_f32(all[a][i]));
        }
        uint16_t *dx0 = random_bf16(nx), *dw0 = random_bf16(nw), *db0 = random_bf16(c->K);
        if (dt == CG_F16) {
            for (int64_t i = 0; i < nx; i++) dx0[i] = cg_f32_to_f16(cg_bf16_to_f32(dx0[i]));
            for (int64_t i = 0; i < nw; i++) dw0[i] = cg_f32_to_f16(cg_bf16_to_f32(dw0[i]));
            for (int64_t i = 0; i < c->K; i++) db0[i] = cg_f32_to_f16(cg_bf16_to_f32(db0[i]));
        }
        // The three ops.
        uint16_t *conv = malloc((size_t)ny * 2), *r = malloc((size_t)ny * 2), *y3 = malloc((size_t)np * 2);
        int32_t *argmax = malloc((size_t)np * 4);
        k->conv2d_forward_h(dt, conv, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, P, Q);
        k->relu_forward_h(dt, r, conv, ny);
        k->max_pool2d_forward_h(dt, y3, argmax, r, c->N, c->K, P, Q, 2, 2, P2, Q2, false);
        // dr and dconv start as NaN (all bits set): pooling and ReLU write them (accumulate false,
        // the tape's fresh gradients), so not one of those NaNs may be read.
        uint16_t *dr = malloc((size_t)ny * 2), *dconv = malloc((size_t)ny * 2);
        memset(dr, 0xff, (size_t)ny * 2), memset(dconv, 0xff, (size_t)ny * 2);
        uint16_t *dx3 = copy16(dx0, nx), *dw3 = copy16(dw0, nw), *db3 = copy16(db0, c->K);
        k->max_pool2d_backward_h(dt, dr, dy, argmax, c->N, c->K, P, Q, 2, 2, P2, Q2, false, false);
        k->relu_backward_h(dt, dconv, dr, r, ny, false);
        k->conv2d_backward_h(dt, dx3, dw3, db3, dconv, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride,
                             c->pad, P, Q);
        // The fused block.
        uint16_t *yf = malloc((size_t)np * 2);
        uint8_t *where = malloc((size_t)np);
        uint16_t *dxf = copy16(dx0, nx), *dwf = copy16(dw0, nw), *dbf = copy16(db0, c->K);
        k->conv2d_relu_pool_forward_h(dt, yf, where, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride,
                                      c->pad, P, Q);
        k->conv2d_relu_pool_backward_h(dt, dxf, dwf, dbf, dy, yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R,
                                       c->S, c->stride, c->pad, P, Q, true);
        // dx written, not added to (accumulate false, the tape's fresh gradients): into NaNs, the
        // bits of adding to zeros
        uint16_t *dxz = calloc((size_t)nx, 2), *dxw = malloc((size_t)nx * 2);
        for (int64_t i = 0; i < nx; i++) dxw[i] = 0x7fc1; // a quiet NaN in both formats
        uint16_t *dws = copy16(dw0, nw), *dbs = copy16(db0, c->K);
        k->conv2d_relu_pool_backward_h(dt, dxz, dws, dbs, dy, yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R,
                                       c->S, c->stride, c->pad, P, Q, true);
        k->conv2d_relu_pool_backward_h(dt, dxw, dws, dbs, dy, yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R,
                                       c->S, c->stride, c->pad, P, Q, false);
        {
            char what[160];
            snprintf(what, sizeof what, "%s fused %s %s dx written (accumulate false) against added to zeros",
                     path_name, dt == CG_BF16 ? "bf16" : "fp16", c->name);
            compare_bits(what, dxw, dxz, nx);
        }
        free(dxz), free(dxw), free(dws), free(dbs);
        if (subnormal && dt == CG_BF16 && (y3[0] == 0 || y3[0] >= 0x0080))
            fail("fused subnormal", "the reference's first value 0x%04x is not a subnormal", y3[0]);
        // where: the pooling op's first maximum (argmax, a flat index into its input), window by
        // window, the windows of zeros too (their gradient is masked, so only this sees them)
        for (int64_t i = 0; i < np; i++) {
            int64_t plane = i / (P2 * Q2), p = i % (P2 * Q2) / Q2, q = i % Q2;
            int64_t at = plane * P * Q + (2 * p + where[i] / 2) * Q + 2 * q + where[i] % 2;
            if (at != argmax[i]) {
                char what[160];
                snprintf(what, sizeof what, "%s fused %s %s where", path_name, dt == CG_BF16 ? "bf16" : "fp16",
                         c->name);
                fail(what, "window %lld: position %d (input %lld), the pooling op chose input %d", (long long)i,
                     where[i], (long long)at, argmax[i]);
                break;
            }
        }
        // Without dx (the first layer's backward): dw as the three ops', dbias as the fused block's
        // with dx. Where the block's dW comes from the pooling windows' FMAs (conv_direct_dw.c: with
        // one input channel on AMX or AVX512-BF16, with whole vectors of them on AVX512-BF16), its
        // f32 sums of the same exact products are taken in another order than the product's: within
        // the tolerance of `compare` (one term per window), not the bit.
        bool windows = dt == CG_BF16 &&
                       conv2d_relu_pool_dw_windows_takes(c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, P, Q) &&
                       (((cg_cpu_bf16() == CG_BF16_AMX || cg_cpu_bf16() == CG_BF16_AVX512) && c->C == 1) ||
                        (cg_cpu_bf16() == CG_BF16_AVX512 && c->C > 1 && c->C % 16 == 0));
        uint16_t *dwn = copy16(dw0, nw), *dbn = copy16(db0, c->K);
        k->conv2d_relu_pool_backward_h(dt, NULL, dwn, dbn, dy, yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R,
                                       c->S, c->stride, c->pad, P, Q, true);
        char what[160];
        const char *tn = dt == CG_F16 ? "fp16" : "bf16";
        snprintf(what, sizeof what, "%s fused %s %s dw without dx", path_name, tn, c->name);
        if (windows)
            compare(what, dwn, dw3, nw, c->N * P2 * Q2);
        else
            compare_bits(what, dwn, dw3, nw);
        snprintf(what, sizeof what, "%s fused %s %s dbias without dx", path_name, tn, c->name);
        compare_bits(what, dbn, dbf, c->K);
#ifdef CG_CPU_MATRIX_KERNELS
        // bf16_direct_dw.c, AVX512-BF16's first block where the window kernel is not built: the three
        // ops' dw and the fused block's dbias, to the bit (called here since the fused block now
        // takes the windows where both exist).
        if (dt == CG_BF16 && cg_cpu_bf16() == CG_BF16_AVX512 &&
            cg_bf16_direct_dw_fits(c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad, P, Q)) {
            uint16_t *dwd = copy16(dw0, nw), *dbd = copy16(db0, c->K);
            cg_bf16_direct_dw(dwd, dbd, dy, yf, where, x, c->N, c->H, c->W, c->K, 4);
            snprintf(what, sizeof what, "%s bf16_direct_dw %s dw", path_name, c->name);
            compare_bits(what, dwd, dw3, nw);
            snprintf(what, sizeof what, "%s bf16_direct_dw %s dbias", path_name, c->name);
            compare_bits(what, dbd, dbf, c->K);
            free(dwd), free(dbd);
        }
#endif
        free(dwn), free(dbn);
        snprintf(what, sizeof what, "%s fused %s %s y", path_name, tn, c->name);
        compare_bits(what, yf, y3, np);
        snprintf(what, sizeof what, "%s fused %s %s dx", path_name, tn, c->name);
        compare_bits(what, dxf, dx3, nx);
        snprintf(what, sizeof what, "%s fused %s %s dw", path_name, tn, c->name);
        if (windows && c->C > 1) // with dx too (one input channel with dx keeps the product)
            compare(what, dwf, dw3, nw, c->N * P2 * Q2);
        else
            compare_bits(what, dwf, dw3, nw);
        if (dt == CG_BF16) {
            snprintf(what, sizeof what, "%s fused %s %s dbias", path_name, tn, c->name);
            compare(what, dbf, db3, c->K, 1);
        }
#if defined(__x86_64__) || defined(__i386__)
        _mm_setcsr(csr);
#endif
        cg_set_num_threads(threads_at_start);
        free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0), free(conv), free(r), free(y3);
        free(argmax), free(dr), free(dconv), free(dx3), free(dw3), free(db3), free(yf), free(where), free(dxf);
        free(dwf), free(dbf);
    }
}

// The convolutions' images are shared out to the threads, each computed alone: conv2d_forward_h
// and the fused block (forward, and backward without dx) give the same bits on 1 and 2 threads
// (the tutorial's first layer, summed by bf16_direct.c, and its second, by the tile product), on
// a batch large enough for both; and the backward of small planes (bf16_small.c), dx and dW.
static void test_conv_threads(cg_cpu_bf16_path path) {
    const conv_shape shapes[] = {
        {32, 1, 28, 28, 32, 3, 3, 1, 1, "tutorial conv1"},
        {16, 32, 14, 14, 64, 3, 3, 1, 1, "tutorial conv2"},
    };
    const cg_kernels *k = cg_cpu_kernels();
    cg_cpu_bf16_set(path);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const conv_shape *c = &shapes[s];
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * 9, ny = c->N * c->K * c->H * c->W, np = ny / 4;
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *b = random_bf16(c->K), *dy = random_bf16(np);
        uint16_t *y[2], *yp[2], *dw[2], *db[2];
        uint8_t *where[2];
        for (int t = 0; t < 2; t++) {
            cg_set_num_threads(t + 1);
            y[t] = malloc((size_t)ny * 2), yp[t] = malloc((size_t)np * 2), where[t] = malloc((size_t)np);
            dw[t] = calloc((size_t)nw, 2), db[t] = calloc((size_t)c->K, 2);
            k->conv2d_forward_h(CG_BF16, y[t], x, w, b, c->N, c->C, c->H, c->W, c->K, 3, 3, 1, 1, c->H, c->W);
            k->conv2d_relu_pool_forward_h(CG_BF16, yp[t], where[t], x, w, b, c->N, c->C, c->H, c->W, c->K, 3, 3, 1,
                                          1, c->H, c->W);
            // The backward without dx (the first layer's; bf16_direct_dw.c on AVX512-BF16)
            k->conv2d_relu_pool_backward_h(CG_BF16, NULL, dw[t], db[t], dy, yp[0], where[0], x, w, c->N, c->C, c->H,
                                           c->W, c->K, 3, 3, 1, 1, c->H, c->W, true);
        }
        cg_set_num_threads(threads_at_start);
        if (memcmp(y[0], y[1], (size_t)ny * 2) != 0 || memcmp(yp[0], yp[1], (size_t)np * 2) != 0 ||
            memcmp(where[0], where[1], (size_t)np) != 0 || memcmp(dw[0], dw[1], (size_t)nw * 2) != 0 ||
            memcmp(db[0], db[1], (size_t)c->K * 2) != 0)
            fail("convolution threads", "%s %s: 1 and 2 threads differ", cg_cpu_bf16_name(path), c->name);
        free(x), free(w), free(b), free(dy);
        for (int t = 0; t < 2; t++) free(y[t]), free(yp[t]), free(where[t]), free(dw[t]), free(db[t]);
    }
    // The backward of small planes with many weights (bf16_small.c): the threads split the input
    // channels, each part summed alone, so dW and dx must not depend on their number.
    const conv_shape small[] = {
        {40, 128, 8, 8, 128, 3, 3, 1, 1, "8x8, 128 -> 128"},
        {6, 256, 8, 8, 128, 3, 3, 2, 1, "stride 2 to 4x4, 256 -> 128"},
    };
    for (size_t s = 0; s < sizeof small / sizeof small[0]; s++) {
        const conv_shape *c = &small[s];
        int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->S) / c->stride + 1;
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->S, ny = c->N * c->K * P * Q;
        if (!cg_bf16_small_takes(c->C, c->K, c->R, c->S, P, Q)) {
            fail("convolution threads", "%s: not a small-planes shape (bf16_small.c)", c->name);
            continue;
        }
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *dy = random_bf16(ny), *dx0 = random_bf16(nx);
        uint16_t *dw0 = random_bf16(nw), *dx[2], *dw[2];
        for (int t = 0; t < 2; t++) {
            cg_set_num_threads(t + 1);
            dx[t] = copy16(dx0, nx), dw[t] = copy16(dw0, nw);
            k->conv2d_backward_h(CG_BF16, dx[t], dw[t], NULL, dy, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->S,
                                 c->stride, c->pad, P, Q);
        }
        cg_set_num_threads(threads_at_start);
        if (memcmp(dx[0], dx[1], (size_t)nx * 2) != 0 || memcmp(dw[0], dw[1], (size_t)nw * 2) != 0)
            fail("convolution threads", "%s %s: 1 and 2 threads differ", cg_cpu_bf16_name(path), c->name);
        free(x), free(w), free(dy), free(dx0), free(dw0);
        for (int t = 0; t < 2; t++) free(dx[t]), free(dw[t]);
    }
}

#ifdef CG_CPU_MATRIX_KERNELS
// bf16_direct.c's fused forward in both sum orders, the AMX one included (its vdpbf16ps pairs run
// on any CPU with AVX512-BF16, AMX or not): against its plane of sums (cg_bf16_direct_sums, FMAs
// in the same order) followed by the plain epilogue, bias, rounding, then cg_bf16_relu_pool_plane.
// So the instruction's own order is checked here too, on the CPU the test runs on.
static void test_direct_orders(void) {
    const conv_shape shapes[] = {
        {2, 1, 28, 28, 32, 3, 3, 1, 1, "tutorial conv1"},
        {2, 1, 9, 13, 6, 3, 3, 1, 1, "one channel 9x13, 6 kernels"},
        {1, 1, 32, 32, 5, 3, 3, 1, 1, "one channel 32x32, 5 kernels"},
    };
    const cg_cpu_bf16_path paths[2] = {CG_BF16_AMX, CG_BF16_AVX512};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int p = 0; p < 2; p++) {
            const conv_shape *c = &shapes[s];
            int64_t H = c->H, W = c->W, K = c->K, P2 = H / 2, Q2 = W / 2, pooled = P2 * Q2;
            uint16_t *x = random_bf16(H * W), *w = random_bf16(K * 9), *b = random_bf16(K);
            float *wf = malloc((size_t)(K * 9) * sizeof *wf), *sums = malloc((size_t)(K * H * W) * sizeof *sums);
            float *col_max = malloc((size_t)(pooled * 2) * sizeof *col_max);
            int32_t *won = malloc((size_t)(pooled * 2) * sizeof *won);
            uint16_t *plane = malloc((size_t)(H * W) * 2), *y1 = malloc((size_t)(K * pooled) * 2);
            uint16_t *y2 = malloc((size_t)(K * pooled) * 2);
            uint8_t *at1 = malloc((size_t)(K * pooled)), *at2 = malloc((size_t)(K * pooled));
            uint32_t *wp = malloc((size_t)(K * 5) * sizeof *wp);
            cg_bf16_direct_weights(wf, w, K, paths[p]);
            cg_bf16_direct_pair_weights(wp, wf, K);
            char what[160];
            snprintf(what, sizeof what, "bf16_direct.c fused forward, %s order, %s", cg_cpu_bf16_name(paths[p]),
                     c->name);
            if (!cg_bf16_direct_pool_ready(wf, b, K) || !cg_bf16_direct_relu_pool(y1, at1, x, wp, b, K, H, W, paths[p]))
                fail(what, "refused these inputs");
            cg_bf16_direct_sums(sums, H * W, x, wf, K, H, W, paths[p]);
            for (int64_t k = 0; k < K; k++) {
                for (int64_t i = 0; i < H * W; i++)
                    plane[i] = cg_bf16_round(sums[k * H * W + i] + cg_bf16_widen(b[k]));
                cg_bf16_relu_pool_plane(y2 + k * pooled, at2 + k * pooled, plane, H, W, col_max, won);
            }
            compare_bits(what, y1, y2, K * pooled);
            if (memcmp(at1, at2, (size_t)(K * pooled)) != 0) fail(what, "the positions differ");
            free(x), free(w), free(b), free(wf), free(wp), free(sums), free(col_max), free(won), free(plane);
            free(y1), free(y2), free(at1), free(at2);
        }
}
#endif

int main(void) {
    threads_at_start = cg_get_num_threads();
    test_rounding();
    cg_cpu_bf16_set(CG_BF16_EMULATED);
    test_fused(CG_F16, "emulated");
    test_fused(CG_BF16, "emulated");
    cg_cpu_bf16_path paths[2];
    int count = 0;
    if (cg_cpu_has_amx_bf16()) paths[count++] = CG_BF16_AMX;
    if (cg_cpu_has_avx512_bf16()) paths[count++] = CG_BF16_AVX512;
#ifdef CG_CPU_MATRIX_KERNELS
    if (cg_cpu_has_avx512_bf16()) test_rounding_hw();
#endif
    if (count == 0) {
        printf("test_bf16_cpu: skipped: this CPU (or system) has neither AMX-BF16 nor AVX512-BF16; the rounding "
               "was checked (%s)\n", failures ? "FAILED" : "passed");
        return failures ? 1 : 77;
    }
    for (int p = 0; p < count; p++) {
        if (!cg_cpu_bf16_set(paths[p])) fail("cg_cpu_bf16_set", "refused %s", cg_cpu_bf16_name(paths[p]));
        test_gemm(paths[p]);
        test_linear(paths[p]);
        test_product_threads(paths[p]);
        test_conv(paths[p]);
        test_same_packing(paths[p]);
        test_conv_threads(paths[p]);
        test_fused(CG_BF16, cg_cpu_bf16_name(paths[p]));
#ifdef CG_CPU_MATRIX_KERNELS
        if (paths[p] == CG_BF16_AVX512) test_direct_orders();
#endif
        printf("%s against the emulated path: %s\n", cg_cpu_bf16_name(paths[p]), failures ? "differences" : "ok");
    }
    return failures ? 1 : 0;
}

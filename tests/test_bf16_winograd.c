// test_bf16_winograd.c: bf16 convolutions on Winograd's tiles (kernels/cpu/conv_winograd_bf16.c,
// the AVX512-BF16 path), through the op table's conv2d_forward_h and conv2d_backward_h (dx added to
// old gradients): each y and dx against the convolution in double, held to the bound of the
// tiles' extra rounding (below); and the product that reads their patches as rows of pairs
// (cg_bf16_gemm_pair_rows) against the packed one, bit for bit. The dense tiles are
// test_bf16_cpu.c's, with the fused block and the threads on these tiles. Skipped (77) where the
// CPU lacks AVX512-BF16 or the build the tiles.
#include "core/half.h"
#include "core/kernels.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"
#include "tests/bf16_values.h"
#include "tests/check.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- Winograd's tiles in bf16 (kernels/cpu/conv_winograd_bf16.c) ---------------------------------
// On AVX512-BF16, y and dx of 3 x 3 "same" convolutions with at least 16 channels in and out come
// from Winograd's F(2 x 2, 3 x 3): the transformed filters U = G g G^T and patches V = B^T d B are
// rounded to bf16 before their products, each product then within 2^-7 (two roundings of 2^-8)
// of U V. So each output is held, against the convolution in double, to
//     2^-7 sum over the input channels and the 16 positions xi of |A_e(xi)| |U_xi| |V_xi|
// (U and V exact, in double; A_e the output transform's weights for output e of the tile), plus one
// bf16 step of the result (its own rounding) and the f32 sums' reordering. A wrong transform or a
// misplaced tile is off by the terms themselves, tens of times this.

// The exact transforms (the file's matrices, in double).
static void exact_filter(const uint16_t *f, bool turned, double u[16]) {
    double g[9], t[4][3];
    for (int i = 0; i < 9; i++) g[i] = cg_bf16_to_f32(f[turned ? 8 - i : i]);
    for (int s = 0; s < 3; s++)
        t[0][s] = g[s], t[1][s] = 0.5 * (g[s] + g[3 + s] + g[6 + s]), t[2][s] = 0.5 * (g[s] - g[3 + s] + g[6 + s]),
        t[3][s] = g[6 + s];
    for (int i = 0; i < 4; i++)
        u[4 * i] = t[i][0], u[4 * i + 1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]),
                u[4 * i + 2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]), u[4 * i + 3] = t[i][2];
}

// got (N, Cout, H, W): y = bias + the convolution of in = x with w (Cout, Cin, 3, 3); or, `dx`,
// dx = old + the convolution of in = dy with w (Cin, Cout, 3, 3) turned, channels swapped.
static void winograd_check(const char *what, const uint16_t *got, const uint16_t *in, const uint16_t *w,
                           const uint16_t *bias, const uint16_t *old, int64_t N, int64_t Cin, int64_t Cout, int64_t H,
                           int64_t W, bool dx) {
    static const double at[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}}; // A^T, magnitudes used
    double *u = malloc((size_t)(Cout * Cin * 16) * sizeof(double)), *v = malloc((size_t)(Cin * 16) * sizeof(double));
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t i = 0; i < Cin; i++)
            exact_filter(w + (dx ? i * Cout + o : o * Cin + i) * 9, dx, u + (o * Cin + i) * 16);
    int64_t bad = 0, first = -1;
    double worst = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t ty = 0; ty < H / 2; ty++)
            for (int64_t tx = 0; tx < W / 2; tx++) {
                double d[4][4];
                for (int64_t i = 0; i < Cin; i++) { // V of every input channel, exactly
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            int64_t h = 2 * ty - 1 + a, x = 2 * tx - 1 + b;
                            bool inside = h >= 0 && h < H && x >= 0 && x < W;
                            d[a][b] = inside ? cg_bf16_to_f32(in[((n * Cin + i) * H + h) * W + x]) : 0.0;
                        }
                    for (int a = 0; a < 4; a++) {
                        double r[4] = {d[0][a] - d[2][a], d[1][a] + d[2][a], d[2][a] - d[1][a], d[1][a] - d[3][a]};
                        for (int row = 0; row < 4; row++) d[row][a] = r[row]; // B^T d, column a
                    }
                    for (int a = 0; a < 4; a++) {
                        double *vi = v + i * 16 + 4 * a;
                        vi[0] = d[a][0] - d[a][2], vi[1] = d[a][1] + d[a][2], vi[2] = d[a][2] - d[a][1],
                        vi[3] = d[a][1] - d[a][3];
                    }
                }
                for (int64_t o = 0; o < Cout; o++)
                    for (int e = 0; e < 4; e++) {
                        int64_t h = 2 * ty + e / 2, x = 2 * tx + e % 2, idx = ((n * Cout + o) * H + h) * W + x;
                        double exact = dx ? cg_bf16_to_f32(old[idx]) : cg_bf16_to_f32(bias[o]);
                        double bound = 0.0, size = fabs(exact);
                        for (int64_t i = 0; i < Cin; i++) {
                            const double *ui = u + (o * Cin + i) * 16, *vi = v + i * 16;
                            for (int xi = 0; xi < 16; xi++) {
                                double a = at[e / 2][xi / 4] * at[e % 2][xi % 4];
                                exact += a * ui[xi] * vi[xi];
                                bound += fabs(a * ui[xi] * vi[xi]);
                            }
                            for (int r = 0; r < 3; r++) // the terms' size, for the f32 sums' reordering
                                for (int s2 = 0; s2 < 3; s2++) {
                                    int64_t hh = dx ? h + 1 - r : h - 1 + r, xx = dx ? x + 1 - s2 : x - 1 + s2;
                                    if (hh < 0 || hh >= H || xx < 0 || xx >= W) continue;
                                    int64_t filter = dx ? i * Cout + o : o * Cin + i;
                                    size += fabs((double)cg_bf16_to_f32(w[(filter * 3 + r) * 3 + s2]) *
                                                 cg_bf16_to_f32(in[((n * Cin + i) * H + hh) * W + xx]));
                                }
                        }
                        double tol = ldexp(bound, -7) * 1.01 + ldexp(fabs(exact), -7) + ldexp(size, -20);
                        double err = fabs(cg_bf16_to_f32(got[idx]) - exact);
                        if (err > tol) {
                            if (first < 0) first = idx;
                            bad++;
                        }
                        worst = err / tol > worst ? err / tol : worst;
                    }
            }
    if (bad)
        fail(what, "%lld of %lld outputs beyond Winograd's bound (the first at %lld: %g; worst error %.3g of it)",
             (long long)bad, (long long)(N * Cout * H * W), (long long)first, cg_bf16_to_f32(got[first]), worst);
    free(u), free(v);
}

// Shapes with odd channel counts (a channel paired with zeros, padded channel pairs and output
// rows), rows of 6 tiles that cross blocks of 16 and a block of 90 tiles (its last 6 padding), and
// 56 x 56 (rows of 28 tiles, four blocks an image), besides the tutorial's second layer.
static void test_winograd(void) {
    const struct {
        int64_t N, C, H, W, K;
        const char *name;
    } shapes[] = {
        {6, 32, 14, 14, 64, "tutorial conv2"},
        {3, 17, 10, 12, 20, "17 -> 20 channels, 10x12"},
        {2, 16, 56, 56, 16, "16 -> 16 channels, 56x56"},
    };
    const cg_kernels *k = cg_cpu_kernels();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t N = shapes[s].N, C = shapes[s].C, H = shapes[s].H, W = shapes[s].W, K = shapes[s].K;
        if (!conv2d_winograd_bf16_takes(CG_BF16_AVX512, C, H, W, K, 3, 3, 1, 1, H, W)) {
            fail("conv2d_winograd_bf16_takes", "%s: not on the tiles", shapes[s].name);
            continue;
        }
        int64_t nx = N * C * H * W, nw = K * C * 9, ny = N * K * H * W;
        uint16_t *x = random_bf16(nx), *w = random_bf16(nw), *b = random_bf16(K), *dy = random_bf16(ny);
        uint16_t *y = random_bf16(ny), *dx0 = random_bf16(nx), *dx = copy16(dx0, nx), *dw = random_bf16(nw);
        k->conv2d_forward_h(CG_BF16, y, x, w, b, N, C, H, W, K, 3, 3, 1, 1, H, W);
        k->conv2d_backward_h(CG_BF16, dx, dw, NULL, dy, x, w, N, C, H, W, K, 3, 3, 1, 1, H, W);
        char what[160];
        snprintf(what, sizeof what, "conv2d_forward_h %s y", shapes[s].name);
        winograd_check(what, y, x, w, b, NULL, N, C, K, H, W, false);
        snprintf(what, sizeof what, "conv2d_backward_h %s dx", shapes[s].name);
        winograd_check(what, dx, dy, w, NULL, dx0, N, K, C, H, W, true);
        free(x), free(w), free(b), free(dy), free(y), free(dx0), free(dx), free(dw);
    }
}

// cg_bf16_gemm_pair_rows (Winograd's products on AVX512-BF16) reads B as rows of pairs where
// cg_bf16_gemm_packed reads blocks: the same pairs in the same order, so the same bits, on odd
// sizes (padding past N and K) and Winograd's (K = 32 and 64 channels, 112 and 90 tiles).
static void test_pair_rows(void) {
    const int64_t sizes[][3] = {{17, 33, 65}, {64, 112, 32}, {32, 90, 64}, {20, 5, 17}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int64_t M = sizes[t][0], N = sizes[t][1], K = sizes[t][2];
        int64_t ldb = (N + 15) / 16 * 16, rows = (K + 31) / 32 * 16, ldc = ldb;
        uint16_t *A = random_bf16(M * K), *B = random_bf16(K * N);
        uint16_t *Ap = calloc((size_t)cg_bf16_packed_size(M, K), 2), *Bp = calloc((size_t)cg_bf16_packed_size(N, K), 2);
        uint16_t *B2 = calloc((size_t)(2 * rows * ldb), 2);
        cg_bf16_pack_a(Ap, A, K, 1, M, K);
        cg_bf16_pack_b(Bp, B, N, 1, K, N);
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) B2[(k / 2) * 2 * ldb + 2 * n + k % 2] = B[k * N + n];
        int64_t crows = (M + 15) / 16 * 16;
        float *C1 = calloc((size_t)(crows * ldc), sizeof(float)), *C2 = calloc((size_t)(crows * ldc), sizeof(float));
        cg_bf16_gemm_packed(C1, ldc, Ap, Bp, M, N, K, CG_BF16_AVX512);
        cg_bf16_gemm_pair_rows(C2, ldc, Ap, B2, ldb, M, N, K);
        for (int64_t i = 0; i < M * N; i++) {
            int64_t m = i / N, n = i % N;
            if (memcmp(&C1[m * ldc + n], &C2[m * ldc + n], sizeof(float)) != 0) {
                fail("cg_bf16_gemm_pair_rows", "%lld x %lld x %lld: C[%lld][%lld] %g, the packed blocks gave %g",
                     (long long)M, (long long)N, (long long)K, (long long)m, (long long)n, C2[m * ldc + n],
                     C1[m * ldc + n]);
                break;
            }
        }
        free(A), free(B), free(Ap), free(Bp), free(B2), free(C1), free(C2);
    }
}

int main(void) {
    if (!cg_cpu_has_avx512_bf16() || !conv2d_winograd_bf16_takes(CG_BF16_AVX512, 32, 14, 14, 64, 3, 3, 1, 1, 14, 14)) {
        printf("test_bf16_winograd: skipped: %s\n", cg_cpu_has_avx512_bf16() ? "this build has no bf16 tiles"
                                                                            : "this CPU has no AVX512-BF16");
        return 77;
    }
    if (!cg_cpu_bf16_set(CG_BF16_AVX512)) fail("cg_cpu_bf16_set", "refused AVX512-BF16");
    test_winograd();
    test_pair_rows();
    printf("test_bf16_winograd: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}

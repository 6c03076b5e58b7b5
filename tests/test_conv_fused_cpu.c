// test_conv_fused_cpu.c: the CPU's fused conv + ReLU + 2 x 2 max pooling block
// (conv2d_relu_pool_forward / _backward: a direct convolution pooled in registers for a one-channel
// 3 x 3 image, kernels/cpu/conv_direct.c; Winograd's tiles or im2col and the GEMM otherwise)
// against conv2d_forward, relu_forward and max_pool2d_forward and their backwards in a row, and
// every result on one thread against two. The kernels promise both (core/kernels.h: "y, dx and dw
// identical to the three ops"; lesson 03: the same bits whatever the thread count), so any
// difference, even in the last bit, fails; dx written (accumulate false) must have the bits of dx
// added to zeros. One exception: the fused block's dW of a 3 x 3 "same" convolution with whole
// vectors of output channels, which kernels/cpu/conv_direct_dw.c sums one term per pooling window,
// is checked bit for bit against sums written in its order, and those against the sums in double;
// and the same kernel's bf16 entry (bf16_ops.c: the first block where the CPU lacks AVX512-BF16,
// blocks of 16 input channels) against its f32 entry on the widened values, bit for bit, its db
// sums exact; its pairs' entry (the first block where the CPU has AVX512-BF16, AMX's included:
// two windows a vdpbf16ps) against sums written in its order, where the CPU has the instruction. The
// shapes take every path: the direct one (the tutorial's first layer, an odd size, one output
// channel), im2col with stride 2 and padding 0, a 5 x 5 kernel, the tutorial's second layer, and
// ResNet-18's stride-2 stem on a larger image; and three with x = 0, whose windows all tie.
// conv2d_forward and conv2d_backward alone, against sums in each path's order: test_conv_cpu.c.
#include "core/half.h"
#include "core/kernels.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/threads.h"
#include "tests/check.h"
#include "tests/conv_check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The results of one shape: the three ops' and the fused block's y, dx, dw (db: the fused block
// sums it in another order, so it is left out, as core/kernels.h says); and the fused backward
// without dx, as the first layer calls it (dwn, dbn: for a one-channel 3 x 3 image and whole
// vectors of channels, conv_direct_dw.c's kernel), with the fused db of the call with dx (dbf)
// to compare it with.
typedef struct {
    float *y3, *dx3, *dw3, *yf, *dxf, *dwf, *dwn, *dbf, *dbn;
    float *dxz, *dxw; // the fused dx added to zeros, and written into NaNs (accumulate false)
    float *dwr;   // where conv_direct_dw.c takes the backward without dx: dW summed here in its order
    double *dwd;  // and in double, with each element's sum of its terms' magnitudes in dwd[nw + i]
    int64_t ny, nx, nw;
} results;

static void reference_window_dw(const shape *c, const float *x, const float *dy, const float *y, const uint8_t *where,
                                const float *dw0, float *dw, double *dwd);
static bool window_dw_path(const shape *c) {
    return conv2d_relu_pool_dw_windows_takes(c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad,
                                             c->H + 2 * c->pad - c->R + 1, c->W + 2 * c->pad - c->R + 1);
}

// dx0, dw0: the gradients' old values (both paths add to them).
static results run(const shape *c, const float *x, const float *w, const float *b, const float *dy, const float *dx0,
                   const float *dw0, const float *db0) {
    const cg_kernels *k = cg_cpu_kernels();
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t P2 = P / 2, Q2 = Q / 2, conv_n = c->N * c->K * P * Q;
    results r = {.ny = c->N * c->K * P2 * Q2, .nx = c->N * c->C * c->H * c->W, .nw = c->K * c->C * c->R * c->R};
    // The three ops, and their backwards into gradients that start from the same old values.
    float *conv = malloc((size_t)conv_n * sizeof(float)), *relu = malloc((size_t)conv_n * sizeof(float));
    int32_t *argmax = malloc((size_t)r.ny * sizeof(int32_t));
    r.y3 = malloc((size_t)r.ny * sizeof(float));
    k->conv2d_forward(conv, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P, Q);
    k->relu_forward(relu, conv, conv_n);
    k->max_pool2d_forward(r.y3, argmax, relu, c->N, c->K, P, Q, 2, 2, P2, Q2);
    float *drelu = calloc((size_t)conv_n, sizeof(float)), *dconv = calloc((size_t)conv_n, sizeof(float));
    k->max_pool2d_backward(drelu, dy, argmax, r.ny);
    k->relu_backward(dconv, drelu, relu, conv_n);
    r.dx3 = copy_floats(dx0, r.nx), r.dw3 = copy_floats(dw0, r.nw);
    r.dxf = copy_floats(r.dx3, r.nx), r.dwf = copy_floats(r.dw3, r.nw);
    k->conv2d_backward(r.dx3, r.dw3, NULL, dconv, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad,
                       P, Q, true);
    // The fused block.
    r.yf = malloc((size_t)r.ny * sizeof(float));
    uint8_t *where = malloc((size_t)r.ny);
    k->conv2d_relu_pool_forward(r.yf, where, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P,
                                Q);
    r.dbf = copy_floats(db0, c->K);
    k->conv2d_relu_pool_backward(r.dxf, r.dwf, r.dbf, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q, true);
    // dx written, not added to (accumulate false: the tape's fresh gradients), into NaNs: r.dxw,
    // to hold to the backward that adds to zeros (r.dxz)
    r.dxz = calloc((size_t)r.nx, sizeof(float)), r.dxw = malloc((size_t)r.nx * sizeof(float));
    for (int64_t i = 0; i < r.nx; i++) r.dxw[i] = NAN;
    float *dws = copy_floats(dw0, r.nw), *dbs = copy_floats(db0, c->K);
    k->conv2d_relu_pool_backward(r.dxz, dws, dbs, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q, true);
    k->conv2d_relu_pool_backward(r.dxw, dws, dbs, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q, false);
    free(dws), free(dbs);
    r.dwn = copy_floats(dw0, r.nw), r.dbn = copy_floats(db0, c->K);
    k->conv2d_relu_pool_backward(NULL, r.dwn, r.dbn, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q, true);
    r.dwr = NULL, r.dwd = NULL;
    if (window_dw_path(c)) {
        r.dwr = malloc((size_t)r.nw * sizeof(float)), r.dwd = malloc((size_t)(2 * r.nw) * sizeof(double));
        reference_window_dw(c, x, dy, r.yf, where, dw0, r.dwr, r.dwd);
    }
    free(conv), free(relu), free(argmax), free(drelu), free(dconv), free(where);
    return r;
}

static void free_results(results *r) {
    free(r->y3), free(r->dx3), free(r->dw3), free(r->yf), free(r->dxf), free(r->dwf), free(r->dwn), free(r->dbf),
        free(r->dbn), free(r->dwr), free(r->dwd), free(r->dxz), free(r->dxw);
}

// ---- The first block's dW without dx, one term per window (kernels/cpu/conv_direct_dw.c) ----------
// Each window of channel k sends its gradient (dy where y > 0, else 0) to the position of its
// maximum (where: 0 top left, 1 top right, 2 bottom left, 3 bottom right), so dW[k][r][s] adds
// g x xpad[2 p + a + r][2 q + b + s] once per window. The kernel's order: from zero, by fused
// multiply-adds, window after window (row by row), image after image through a group of 4 images;
// the groups' sums added to dW in order. With one input channel the kernel has 16 windows in its
// vector lanes: lane l sums the windows i = l mod 16 (in order, image after image), and the 16
// lane sums are added in lane order from zero. Also the same sums in double, and each one's terms'
// magnitudes (|dW's old value| + the sum of |term|) to measure the float sums against.
static void reference_window_dw(const shape *c, const float *x, const float *dy, const float *y, const uint8_t *where,
                                const float *dw0, float *dw, double *dwd) {
    int64_t P2 = c->H / 2, Q2 = c->W / 2, pooled = P2 * Q2, K = c->K, C = c->C, nw = K * C * 9;
    for (int64_t i = 0; i < nw; i++) dw[i] = dw0[i], dwd[i] = dw0[i], dwd[nw + i] = fabs(dw0[i]);
    for (int64_t n0 = 0; n0 < c->N; n0 += 4)
        for (int64_t k = 0; k < K; k++)
            for (int64_t e = 0; e < C * 9; e++) { // input channel e / 9, tap e % 9
                int64_t ch = e / 9, t = e % 9;
                int lanes = C == 1 ? 16 : 1;
                float lane_sum[16] = {0};
                for (int l = 0; l < lanes; l++)
                for (int64_t n = n0; n < n0 + 4 && n < c->N; n++)
                    for (int64_t i = l; i < pooled; i += lanes) {
                        int64_t at = (n * K + k) * pooled + i;
                        float g = y[at] > 0.0f ? dy[at] : 0.0f;
                        int64_t h = 2 * (i / Q2) + where[at] / 2 + t / 3 - 1, wc = 2 * (i % Q2) + where[at] % 2 + t % 3 - 1;
                        float xv = h < 0 || h >= c->H || wc < 0 || wc >= c->W ? 0.0f
                                                                              : x[((n * C + ch) * c->H + h) * c->W + wc];
                        lane_sum[l] = fmaf(g, xv, lane_sum[l]);
                        dwd[k * C * 9 + e] += (double)g * xv, dwd[nw + k * C * 9 + e] += fabs((double)g * xv);
                    }
                float sum = lane_sum[0];
                if (lanes > 1) { // from zero, in lane order
                    sum = 0.0f;
                    for (int l = 0; l < lanes; l++) sum += lane_sum[l];
                }
                dw[k * C * 9 + e] += sum;
            }
}

// ---- The same kernel on bf16 values (bf16_ops.c: the bf16 paths' first and second blocks) ----
// conv2d_relu_pool_dw_windows_bf16_cpu reads bf16 dy, y and x and widens them, which is exact:
// its dW must have the bits of the f32 entry given the widened values, and, with one input
// channel, its db sums, in double over bf16 values, must be exact (with whole vectors of input
// channels it takes no db, as the f32 entry then). The kernel needs AVX-512, not the bf16
// hardware, so this runs wherever the f32 window path does (and says so where it does not).
static float bf16_value(float v) { return cg_bf16_to_f32(cg_f32_to_bf16(v)); }

// The pairs' entry's order (conv_direct_dw_one_channel.c, one input channel): in each group of 4
// images, lane l of tap t sums, image after image, the windows 32 j + 2 l + 1 then 32 j + 2 l for j
// = 0, 1 .. (each term one rounding, as vdpbf16ps adds a pair: the second product, then the first;
// windows past the last add 0 x 0), from zero; the group's sum is the 16 lanes added in order from
// zero, and the groups' sums are added to dW in order. g = dy where y > 0, else 0.
static void reference_window_pairs_dw(const shape *c, const float *x, const float *dy, const float *y,
                                      const uint8_t *where, const float *dw0, float *dw) {
    int64_t Q2 = c->W / 2, pooled = (c->H / 2) * Q2, K = c->K, blocks = (pooled + 31) / 32;
    for (int64_t i = 0; i < K * 9; i++) dw[i] = dw0[i];
    for (int64_t n0 = 0; n0 < c->N; n0 += 4)
        for (int64_t k = 0; k < K; k++)
            for (int t = 0; t < 9; t++) {
                float lane[16] = {0};
                for (int64_t n = n0; n < n0 + 4 && n < c->N; n++)
                    for (int64_t j = 0; j < blocks; j++)
                        for (int l = 0; l < 16; l++)
                            for (int e = 1; e >= 0; e--) {
                                int64_t i = 32 * j + 2 * l + e;
                                float g = 0.0f, xv = 0.0f;
                                if (i < pooled) {
                                    int64_t at = (n * K + k) * pooled + i;
                                    g = y[at] > 0.0f ? dy[at] : 0.0f;
                                    int64_t h = 2 * (i / Q2) + where[at] / 2 + t / 3 - 1;
                                    int64_t wc = 2 * (i % Q2) + where[at] % 2 + t % 3 - 1;
                                    if (h >= 0 && h < c->H && wc >= 0 && wc < c->W) xv = x[(n * c->H + h) * c->W + wc];
                                }
                                lane[l] = fmaf(xv, g, lane[l]);
                            }
                float sum = 0.0f;
                for (int l = 0; l < 16; l++) sum += lane[l];
                dw[k * 9 + t] += sum;
            }
}

static void check_bf16_windows(void) {
    const shape shapes[] = {
        {8, 1, 28, 28, 32, 3, 1, 1, "tutorial conv1"},
        {6, 1, 13, 9, 48, 3, 1, 1, "one channel, odd 13x9, 48 channels"},
        {5, 1, 14, 14, 16, 3, 1, 1, "one channel, 14x14, 16 channels"},
        {6, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2 (input channels in the lanes)"},
        {3, 16, 10, 6, 32, 3, 1, 1, "16 -> 32 channels, 10x6"},
    };
    const cg_kernels *k = cg_cpu_kernels();
    int threads_at_start = cg_get_num_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *c = &shapes[s];
        int64_t C = c->C, H = c->H, W = c->W, K = c->K, np = c->N * K * (H / 2) * (W / 2), nx = c->N * C * H * W;
        int64_t nw = K * C * 9;
        if (!conv2d_relu_pool_dw_windows_takes(C, H, W, K, 3, 3, 1, 1, H, W)) { // (one input channel: AVX-512 only)
            printf("%-58s bf16 windows: skipped (no window kernel for this shape in this build)\n", c->name);
            continue;
        }
        // bf16 values in f32 (x, w, b, dy, dw0), y and `where` from the f32 forward, y made a bf16 value too
        float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(K), *dy = random_floats(np);
        float *dw0 = random_floats(nw), *y = malloc((size_t)np * sizeof(float));
        uint8_t *where = malloc((size_t)np);
        float *all[] = {x, w, b, dy, dw0};
        int64_t sizes[] = {nx, nw, K, np, nw};
        for (int a = 0; a < 5; a++)
            for (int64_t i = 0; i < sizes[a]; i++) all[a][i] = bf16_value(all[a][i]);
        k->conv2d_relu_pool_forward(y, where, x, w, b, c->N, C, H, W, K, 3, 3, 1, 1, H, W);
        for (int64_t i = 0; i < np; i++) y[i] = bf16_value(y[i]);
        uint16_t *xh = malloc((size_t)nx * 2), *dyh = malloc((size_t)np * 2), *yh = malloc((size_t)np * 2);
        cg_f32_to_bf16_array(xh, x, nx), cg_f32_to_bf16_array(dyh, dy, np), cg_f32_to_bf16_array(yh, y, np);
        double *exact = calloc((size_t)K, sizeof(double)), *sums = malloc((size_t)K * sizeof(double));
        for (int64_t i = 0; i < np; i++) exact[i / (np / c->N / K) % K] += y[i] > 0.0f ? (double)dy[i] : 0.0;
        bool with_db = C == 1;
        for (int t = 1; t <= 2; t++) {
            cg_set_num_threads(t);
            float *dwf = copy_floats(dw0, nw), *dwh = copy_floats(dw0, nw), *db = calloc((size_t)K, sizeof(float));
            conv2d_relu_pool_dw_windows_cpu(dwf, with_db ? db : NULL, dy, y, where, x, c->N, C, H, W, K, 3, 3, 1, 1, H,
                                            W, 4);
            char what[160];
            snprintf(what, sizeof what, "%s, %d thread(s): bf16 windows' dw against the f32 entry", c->name, t);
            if (!conv2d_relu_pool_dw_windows_bf16_cpu(dwh, with_db ? sums : NULL, dyh, yh, where, xh, c->N, C, H, W, K,
                                                      3, 3, 1, 1, H, W, 4))
                fail(what, "refused a shape its f32 entry takes");
            same_bits(what, dwh, dwf, nw);
            for (int64_t j = 0; with_db && j < K; j++)
                if (sums[j] != exact[j]) {
                    fail(what, "db's sum %lld: %.17g, exactly %.17g", (long long)j, sums[j], exact[j]);
                    break;
                }
            if (C == 1 && cg_cpu_has_avx512_bf16()) { // the pairs' entry, in its own order
                float *dwp = copy_floats(dw0, nw), *want = malloc((size_t)nw * sizeof(float));
                snprintf(what, sizeof what, "%s, %d thread(s): bf16 window pairs' dw in their order", c->name, t);
                if (!conv2d_relu_pool_dw_windows_pairs_bf16_cpu(dwp, sums, dyh, yh, where, xh, c->N, C, H, W, K, 3, 3,
                                                                1, 1, H, W, 4))
                    fail(what, "refused a one-channel shape");
                reference_window_pairs_dw(c, x, dy, y, where, dw0, want);
                same_bits(what, dwp, want, nw);
                for (int64_t j = 0; j < K; j++)
                    if (sums[j] != exact[j]) {
                        fail(what, "db's sum %lld: %.17g, exactly %.17g", (long long)j, sums[j], exact[j]);
                        break;
                    }
                free(dwp), free(want);
            }
            free(dwf), free(dwh), free(db);
        }
        cg_set_num_threads(threads_at_start);
        printf("%-58s bf16 windows: dw = the f32 entry's%s, 1 and 2 threads\n", c->name, with_db ? ", db exact" : "");
        if (C == 1)
            printf("%-58s bf16 window pairs: %s\n", c->name,
                   cg_cpu_has_avx512_bf16() ? "dw = the sums in their order, db exact, 1 and 2 threads"
                                            : "skipped (no AVX512-BF16 on this CPU)");
        free(x), free(w), free(b), free(dy), free(dw0), free(y), free(where), free(xh), free(dyh), free(yh);
        free(exact), free(sums);
    }
}

// dW (within 2e-6 of its terms' magnitudes of the sums in double: a sum in float over a few
// thousand terms; a wrong position or tap is off by the terms themselves).
static void window_dw_accuracy(const char *what, const float *got, const double *want, int64_t nw) {
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < nw; i++) {
        double err = fabs(got[i] - want[i]) / want[nw + i];
        worst = err > worst ? err : worst;
        bad += err > 2e-6;
    }
    if (bad) fail(what, "%lld of %lld weights off the sums in double by more than 2e-6 of their terms' size (worst %g)",
                  (long long)bad, (long long)nw, worst);
}

int main(void) {
    check_bf16_windows();
    const shape shapes[] = {
        {8, 1, 28, 28, 32, 3, 1, 1, "tutorial conv1 (direct)"},
        {3, 1, 13, 9, 5, 3, 1, 1, "one channel, odd 13x9, 5 channels (direct)"},
        {2, 1, 30, 32, 1, 3, 1, 1, "one channel, 32 wide, one output channel (direct)"},
        {6, 1, 13, 9, 48, 3, 1, 1, "one channel, odd 13x9, 48 channels (direct, dW 32 + 16)"},
        {5, 1, 14, 14, 16, 3, 1, 1, "one channel, 14x14, 16 channels (direct)"},
        {3, 1, 30, 32, 32, 3, 1, 1, "one channel, 30x32, 32 channels (direct)"},
        {2, 1, 28, 33, 32, 3, 1, 1, "one channel, 33 wide (im2col)"},
        {6, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2 (Winograd)"},
        {3, 16, 26, 18, 24, 3, 1, 1, "26x18, 16 -> 24 channels (Winograd, rows of 9 tiles)"},
        {3, 5, 13, 9, 48, 3, 1, 1, "odd 13x9, 5 -> 48 channels (dW by windows, 32 + 16)"},
        {5, 3, 32, 32, 32, 3, 1, 1, "CIFAR's first block, 3 -> 32 channels (dW by windows)"},
        {4, 3, 11, 10, 7, 3, 2, 0, "stride 2, padding 0"},
        {2, 4, 12, 12, 6, 5, 1, 2, "5x5"},
        {2, 3, 64, 64, 64, 7, 2, 3, "ResNet-18 stem 7x7 stride 2"},
        // With x = 0 every output is its bias: each window's 4 values tie, and the fused block must
        // take the first (top left), as max_pool2d does (random values almost never tie)
        {2, 1, 28, 28, 32, 3, 1, 1, "tutorial conv1, x = 0: ties (direct)"},
        {2, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2, x = 0: ties (Winograd, two rows a vector)"},
        {2, 16, 26, 18, 24, 3, 1, 1, "26x18, x = 0: ties (Winograd, rows of 9 tiles)"},
    };
    const size_t ties_from = sizeof shapes / sizeof shapes[0] - 3; // the x = 0 shapes
    int threads_at_start = cg_get_num_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *c = &shapes[s];
        int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->R, ny = c->N * c->K * (P / 2) * (Q / 2);
        float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(c->K), *dy = random_floats(ny);
        float *dx0 = random_floats(nx), *dw0 = random_floats(nw), *db0 = random_floats(c->K);
        if (s >= ties_from) memset(x, 0, (size_t)nx * sizeof *x);
        results by_threads[2];
        for (int t = 0; t < 2; t++) {
            cg_set_num_threads(t + 1);
            by_threads[t] = run(c, x, w, b, dy, dx0, dw0, db0);
        }
        cg_set_num_threads(threads_at_start);
        char what[160];
        const char *names[3] = {"y", "dx", "dw"};
        for (int t = 0; t < 2; t++) {
            results *r = &by_threads[t];
            const float *fused[3] = {r->yf, r->dxf, r->dwf}, *three[3] = {r->y3, r->dx3, r->dw3};
            int64_t n[3] = {r->ny, r->nx, r->nw};
            for (int j = 0; j < 3; j++) {
                if (j == 2 && r->dwr) { // dW one term per window (conv_direct_dw.c): its own order
                    snprintf(what, sizeof what, "%s, %d thread(s): fused dw against its order", c->name, t + 1);
                    same_bits(what, r->dwf, r->dwr, r->nw);
                    continue;
                }
                snprintf(what, sizeof what, "%s, %d thread(s): fused %s against the three ops", c->name, t + 1, names[j]);
                same_bits(what, fused[j], three[j], n[j]);
            }
            if (r->dwr) { // one term per window: its own order, then close to the dense sums
                snprintf(what, sizeof what, "%s, %d thread(s): fused dw without dx against its order", c->name, t + 1);
                same_bits(what, r->dwn, r->dwr, r->nw);
                snprintf(what, sizeof what, "%s, %d thread(s): fused dw without dx against double", c->name, t + 1);
                window_dw_accuracy(what, r->dwn, r->dwd, r->nw);
                snprintf(what, sizeof what, "%s, %d thread(s): the three ops' dw against double", c->name, t + 1);
                window_dw_accuracy(what, r->dw3, r->dwd, r->nw);
            } else {
                snprintf(what, sizeof what, "%s, %d thread(s): fused dw without dx against the three ops", c->name,
                         t + 1);
                same_bits(what, r->dwn, r->dw3, r->nw);
            }
            snprintf(what, sizeof what, "%s, %d thread(s): fused db without dx against with dx", c->name, t + 1);
            same_bits(what, r->dbn, r->dbf, c->K);
            snprintf(what, sizeof what, "%s, %d thread(s): fused dx written against added to zeros", c->name, t + 1);
            same_bits(what, r->dxw, r->dxz, r->nx);
        }
        const float *one[3] = {by_threads[0].yf, by_threads[0].dxf, by_threads[0].dwf};
        const float *two[3] = {by_threads[1].yf, by_threads[1].dxf, by_threads[1].dwf};
        int64_t n[3] = {by_threads[0].ny, by_threads[0].nx, by_threads[0].nw};
        for (int j = 0; j < 3; j++) {
            snprintf(what, sizeof what, "%s: fused %s on 2 threads against 1", c->name, names[j]);
            same_bits(what, two[j], one[j], n[j]);
        }
        snprintf(what, sizeof what, "%s: fused dw, db without dx on 2 threads against 1", c->name);
        same_bits(what, by_threads[1].dwn, by_threads[0].dwn, n[2]);
        same_bits(what, by_threads[1].dbn, by_threads[0].dbn, c->K);
        printf("%-58s %s, 2 threads = 1\n", c->name,
               by_threads[0].dwr ? "y, dx (and db without dx): fused = three ops; dw (with and without dx): its order, "
                                   "within 2e-6 of double; dx written = added to zeros"
                                 : "y, dx, dw (and dw, db without dx): fused = three ops; dx written = added to zeros");
        free_results(&by_threads[0]), free_results(&by_threads[1]);
        free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0);
    }
    return check_summary("test_conv_fused_cpu");
}

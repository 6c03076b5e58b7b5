// test_cuda_amp.c: every kernel of mixed precision (the _h rows of core/kernels.h, cast, the
// loss scaler's two, add_scalar_unless, the optimizers' skip) on the GPU against its CPU twin
// on the same 16-bit inputs; then a few fp16 and bf16 training steps of a small CNN on both
// devices, whose losses must agree. Results are compared in f32: exactly where both devices
// round the same f32 value (casts, ReLU, pooling), within one or two 16-bit steps where the f32
// sums are taken in another order (products, convolutions). The convolutions, pooling and batch
// norm run on channels-last tensors too (core/tensor.h), and the training steps with either
// memory format for the 16-bit convolutions' outputs (CGRAD_CONV16_LAYOUT). Without a GPU:
// skipped (77).
#define _POSIX_C_SOURCE 200809L // setenv
#include "cgrad.h"
#include "tests/twin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H(t) ((t).host)
#define D(t) ((t).dev)
#define F(t) ((float *)(t).host) // f32 twins (statistics, parameters) as the CPU kernels take them

// One 16-bit step (and a little): the sums differ in order between the devices.
static double step_of(cg_dtype t) { return t == CG_F16 ? 2.0 / 1024 : 2.0 / 128; }

static void test_cast(cg_rng *r) {
    const int64_t n = 100003;
    cg_dtype types[3] = {CG_F32, CG_F16, CG_BF16};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            twin x = twin_uniform(r, n, types[a], -70000.0f, 70000.0f); // fp16 overflows at the ends
            twin y = twin_uniform(r, n, types[b], -3.0f, 3.0f);
            char what[48];
            snprintf(what, sizeof what, "cast from %s", cg_dtype_name(types[a]));
            K_CPU->cast(H(y), types[b], H(x), types[a], n, false), K_GPU->cast(D(y), types[b], D(x), types[a], n, false);
            expect_close(what, &y, 0, 0);
            snprintf(what, sizeof what, "cast-add from %s", cg_dtype_name(types[a]));
            K_CPU->cast(H(y), types[b], H(x), types[a], n, true), K_GPU->cast(D(y), types[b], D(x), types[a], n, true);
            expect_close(what, &y, 0, 0);
            twin_free(&x), twin_free(&y);
        }
}

static void test_low_kernels(cg_rng *r, cg_dtype dt) {
    double step = step_of(dt);
    // ReLU
    {
        const int64_t n = 50021;
        twin x = twin_uniform(r, n, dt, -2, 2), y = twin_new(n, dt), dy = twin_uniform(r, n, dt, -1, 1);
        twin dx = twin_uniform(r, n, dt, -1, 1);
        K_CPU->relu_forward_h(dt, H(y), H(x), n), K_GPU->relu_forward_h(dt, D(y), D(x), n);
        expect_close("relu_forward_h", &y, 0, 0);
        K_CPU->relu_backward_h(dt, H(dx), H(dy), H(y), n, true), K_GPU->relu_backward_h(dt, D(dx), D(dy), D(y), n, true);
        expect_close("relu_backward_h", &dx, 0, 0);
        twin_poison(&dx); // written, not added to: the tape's fresh gradients
        K_CPU->relu_backward_h(dt, H(dx), H(dy), H(y), n, false), K_GPU->relu_backward_h(dt, D(dx), D(dy), D(y), n, false);
        expect_close("relu_backward_h, written", &dx, 0, 0);
        twin_free(&x), twin_free(&y), twin_free(&dy), twin_free(&dx);
    }
    // products, small (the engine's kernel) and large (cuBLAS), all four transpositions
    int64_t sizes[2][3] = {{32, 50, 20}, {128, 256, 192}};
    for (int s = 0; s < 2; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                twin A = twin_uniform(r, M * K, dt, -1, 1), B = twin_uniform(r, K * N, dt, -1, 1);
                twin C = twin_uniform(r, M * N, dt, -1, 1);
                K_CPU->gemm_h(dt, ta, tb, M, N, K, 0.5f, H(A), H(B), 1.0f, H(C));
                K_GPU->gemm_h(dt, ta, tb, M, N, K, 0.5f, D(A), D(B), 1.0f, D(C));
                char what[48];
                snprintf(what, sizeof what, "gemm_h %s %c%c", s ? "large" : "small", ta ? 'T' : 'N', tb ? 'T' : 'N');
                expect_close(what, &C, 1e-3 * sqrt((double)K), step);
                // beta = 0 writes C without reading it (a first gradient): NaNs there must not
                // come through (0 x NaN is NaN, so a kernel that scaled C by beta would fail), and
                // here a NaN on both devices is a failure, not an agreement.
                twin_poison(&C);
                K_CPU->gemm_h(dt, ta, tb, M, N, K, 1.0f, H(A), H(B), 0.0f, H(C));
                K_GPU->gemm_h(dt, ta, tb, M, N, K, 1.0f, D(A), D(B), 0.0f, D(C));
                snprintf(what, sizeof what, "gemm_h %s %c%c beta=0 over NaN", s ? "large" : "small", ta ? 'T' : 'N',
                         tb ? 'T' : 'N');
                twin_nonfinite_agree = false;
                expect_close(what, &C, 1e-3 * sqrt((double)K), step);
                twin_nonfinite_agree = true;
                twin_free(&A), twin_free(&B), twin_free(&C);
            }
    // linear (small and large) and the bias gradient
    for (int s = 0; s < 2; s++) {
        int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
        twin x = twin_uniform(r, M * K, dt, -1, 1), w = twin_uniform(r, N * K, dt, -1, 1), b = twin_uniform(r, N, dt, -1, 1);
        twin y = twin_new(M * N, dt), db = twin_uniform(r, N, dt, -1, 1);
        K_CPU->linear_forward_h(dt, H(y), H(x), H(w), H(b), M, N, K);
        K_GPU->linear_forward_h(dt, D(y), D(x), D(w), D(b), M, N, K);
        expect_close(s ? "linear_forward_h large" : "linear_forward_h small", &y, 1e-3 * sqrt((double)K), step);
        // The bias gradient of the same dy on both devices (the two products above differ in the
        // last bits, and a sum of M of them would carry M such differences).
        twin_upload(&y);
        K_CPU->add_bias_backward_h(dt, H(db), H(y), M, N), K_GPU->add_bias_backward_h(dt, D(db), D(y), M, N);
        expect_close("add_bias_backward_h", &db, 1e-3 * M, step);
        twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y), twin_free(&db);
    }
}

// Global average pooling in 16 bits, both layouts (ResNet's head: 512 channels of 4 x 4 under
// autocast; and a plane of 49 values): the same f32 sums in the same order and one rounding on
// both devices, so the same bits; the backward added to dx and written over a poisoned dx.
static void test_global_avg_pool_h(cg_rng *r, cg_dtype dt) {
    // N, C, HW; channels-last with C a multiple of 8 takes 8 channels a thread in the backward, C = 20 one
    static const int64_t shapes[3][3] = {{6, 512, 16}, {5, 24, 49}, {3, 20, 9}};
    for (int s = 0; s < 3; s++)
        for (int cl = 0; cl < 2; cl++) {
            int64_t N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2];
            twin x = twin_uniform(r, N * C * HW, dt, -2, 2), y = twin_new(N * C, dt);
            twin dy = twin_uniform(r, N * C, dt, -1, 1), dx = twin_uniform(r, N * C * HW, dt, -1, 1);
            char what[80];
            snprintf(what, sizeof what, "global_avg_pool_forward_h %lld x %lld%s", (long long)C, (long long)HW,
                     cl ? " channels-last" : "");
            K_CPU->global_avg_pool_forward_h(dt, H(y), H(x), N, C, HW, cl);
            K_GPU->global_avg_pool_forward_h(dt, D(y), D(x), N, C, HW, cl);
            expect_close(what, &y, 0, 0);
            snprintf(what, sizeof what, "global_avg_pool_backward_h %lld x %lld%s", (long long)C, (long long)HW,
                     cl ? " channels-last" : "");
            K_CPU->global_avg_pool_backward_h(dt, H(dx), H(dy), N, C, HW, cl, true);
            K_GPU->global_avg_pool_backward_h(dt, D(dx), D(dy), N, C, HW, cl, true);
            expect_close(what, &dx, 0, 0);
            twin_poison(&dx);
            K_CPU->global_avg_pool_backward_h(dt, H(dx), H(dy), N, C, HW, cl, false);
            K_GPU->global_avg_pool_backward_h(dt, D(dx), D(dy), N, C, HW, cl, false);
            strncat(what, ", written", sizeof what - strlen(what) - 1);
            expect_close(what, &dx, 0, 0);
            twin_free(&x), twin_free(&y), twin_free(&dy), twin_free(&dx);
        }
}

// x (N, C, HW) in NCHW on both devices -> a new twin of it stored channels-last, by each device's
// memory_format_copy (the two copies must be the same bits).
static twin channels_last_twin(const twin *x, cg_dtype dt, int64_t N, int64_t C, int64_t HW) {
    twin y = twin_new(N * C * HW, dt);
    K_CPU->memory_format_copy(dt, H(y), H(*x), N, C, HW, true, false);
    K_GPU->memory_format_copy(dt, D(y), D(*x), N, C, HW, true, false);
    expect_close("memory_format_copy to channels-last", &y, 0, 0);
    return y;
}

// Convolutions with channels-last tensors (x, y or both; an operand with a channel count that is
// not a multiple of 8 stays NCHW), against the CPU, whose results are the NCHW ones transposed.
// NCHW inputs of at most 4 channels into channels-last outputs take a direct kernel on the GPU
// (conv_direct.cu: conv_few_channels_kernel), with its 2 x 2 and 3 x 3 forms unrolled and any other
// size in a loop, and so do their weight gradients (wgrad_lanes_kernel from channels-last dy in 16
// bits for 3 x 3 kernels, wgrad_partial_kernel otherwise), but for 64 or more 3 x 3 filters (ResNet's
// stem), which go to cuDNN on copies padded to 8 channels: each against the CPU, with strides and
// padding that put taps outside the image. Then again with CGRAD_FIRST_LAYER=direct, every shape in
// the direct kernels (ResNet's stem as they ran it before cuDNN took it).
static void test_conv_few_channels_way(cg_rng *r, cg_dtype dt, const char *way) {
    if (way) setenv("CGRAD_FIRST_LAYER", way, 1);
    static const int64_t cases[][8] = {
        // N, C, H, W, K, kernel, stride, pad
        {3, 3, 31, 31, 24, 2, 1, 0},    // the fast network's whitening layer (on a 32 x 32 image: 31 x 31)
        {2, 3, 10, 12, 64, 3, 1, 1},    // ResNet-18's CIFAR stem (64 3 x 3 filters: cuDNN, the input padded to 8 channels)
        {2, 1, 9, 9, 32, 3, 2, 1},      // one colour plane, stride 2
        {2, 4, 8, 7, 16, 5, 1, 2},      // a size with no unrolled form (16 channels: one group of 8 a thread)
        {2, 3, 6, 5, 48, 3, 1, 1},      // 48 channels: two passes of 24 a thread
        {40, 1, 28, 28, 32, 3, 1, 1},   // the tutorial CNN's first layer: 31,360 pixels, many blocks in the weight gradient
        {600, 3, 5, 5, 16, 3, 1, 1},    // more images than the weight gradient's 512 blocks: some blocks take two
        {3, 2, 7, 9, 8, 3, 1, 0},       // 8 channels (a warp's lanes: 32 pixels), no padding
        {2, 4, 6, 6, 64, 3, 1, 1},      // 4 -> 64: cuDNN, as the stem
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t *c = cases[i];
        int64_t N = c[0], C = c[1], Hh = c[2], W = c[3], K = c[4], R = c[5], stride = c[6], pad = c[7];
        int64_t P = (Hh + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - R) / stride + 1;
        twin x = twin_uniform(r, N * C * Hh * W, dt, -1, 1), w = twin_uniform(r, K * C * R * R, dt, -0.3f, 0.3f);
        twin b = twin_uniform(r, K, dt, -0.1f, 0.1f), y = twin_new(N * K * P * Q, dt);
        K_CPU->conv2d_forward_cl(dt, H(y), true, H(x), false, H(w), false, NULL, H(b), N, C, Hh, W, K, R, R, stride, pad, P, Q);
        K_GPU->conv2d_forward_cl(dt, D(y), true, D(x), false, D(w), false, NULL, D(b), N, C, Hh, W, K, R, R, stride, pad, P, Q);
        char what[96];
        snprintf(what, sizeof what, "conv2d_forward_cl %lld -> %lld, %lldx%lld stride %lld pad %lld%s", (long long)C,
                 (long long)K, (long long)R, (long long)R, (long long)stride, (long long)pad, way ? ", direct" : "");
        expect_close(what, &y, 1e-3 * sqrt(C * R * R * 1.0), step_of(dt));
        // The weight gradient, added to dw, from dy stored channels-last and NCHW: a sum over the N P Q
        // pixels. The direct kernels: an f32 sum in another order, then one rounding. cuDNN (64 or more
        // 3 x 3 filters, conv_direct.cu's cudnn_wins) adds into a channels-last copy of dw, and some of
        // its engines round the gradient to 16 bits before adding it: the tolerance of the other
        // cuDNN convolutions' dw (test_conv_cl). In the direct way, the 64-filter shapes with dy NCHW
        // may still go to cuDNN (4 -> 64 is more work than wgrad_partial_kernel's block takes).
        for (int dy_cl = 1; dy_cl >= 0; dy_cl--) {
            bool cudnn = K >= 64 && R * R >= 9 && (!way || !dy_cl);
            twin dy = twin_uniform(r, N * K * P * Q, dt, -1, 1), dw = twin_uniform(r, K * C * R * R, dt, -1, 1);
            K_CPU->conv2d_backward_cl(dt, NULL, H(dw), NULL, H(dy), dy_cl, H(x), false, H(w), false, NULL, N, C, Hh, W, K, R, R,
                                      stride, pad, P, Q, true);
            K_GPU->conv2d_backward_cl(dt, NULL, D(dw), NULL, D(dy), dy_cl, D(x), false, D(w), false, NULL, N, C, Hh, W, K, R, R,
                                      stride, pad, P, Q, true);
            snprintf(what, sizeof what, "conv2d_backward_cl dw %lld -> %lld, %lldx%lld, dy %s%s", (long long)C,
                     (long long)K, (long long)R, (long long)R, dy_cl ? "channels-last" : "NCHW", way ? ", direct" : "");
            expect_close(what, &dw, (cudnn ? 2e-3 : 1e-4) * sqrt((double)(N * P * Q)), step_of(dt));
            twin_free(&dy), twin_free(&dw);
        }
        twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y);
    }
    if (way) unsetenv("CGRAD_FIRST_LAYER");
}

static void test_conv_few_channels(cg_rng *r, cg_dtype dt) {
    cg_rng again = *r; // the same inputs for the second way, and the tests after these draw as before it
    test_conv_few_channels_way(r, dt, NULL);          // conv_direct.cu's rule
    test_conv_few_channels_way(&again, dt, "direct"); // every shape in the direct kernels
}

static void test_conv_cl(cg_rng *r, cg_dtype dt, int64_t N, int64_t C, int64_t Hh, int64_t W, int64_t K) {
    double step = step_of(dt);
    int64_t HW = Hh * W;
    twin x = twin_uniform(r, N * C * HW, dt, -1, 1), w = twin_uniform(r, K * C * 9, dt, -0.3f, 0.3f);
    twin b = twin_uniform(r, K, dt, -0.1f, 0.1f), xl = channels_last_twin(&x, dt, N, C, HW);
    // Where the GPU's forward leaves its NHWC copy of the weights for the backward (w_nhwc).
    twin wk = twin_new((K + 7) / 8 * 8 * 9 * ((C + 7) / 8 * 8), dt);
    for (int x_cl = 0; x_cl < 2; x_cl++)
        for (int y_cl = 0; y_cl < 2; y_cl++) {
            if ((!x_cl && !y_cl) || (x_cl && C % 8) || (y_cl && K % 8)) continue;
            twin *xin = x_cl ? &xl : &x, y = twin_new(N * K * HW, dt);
            char what[96];
            snprintf(what, sizeof what, "conv2d_forward_cl %lld -> %lld, x %s, y %s", (long long)C, (long long)K,
                     x_cl ? "NHWC" : "NCHW", y_cl ? "NHWC" : "NCHW");
            twin_poison(&wk); // every value of it written by the forward, padding included
            K_CPU->conv2d_forward_cl(dt, H(y), y_cl, H(*xin), x_cl, H(w), false, NULL, H(b), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
            K_GPU->conv2d_forward_cl(dt, D(y), y_cl, D(*xin), x_cl, D(w), false, D(wk), D(b), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
            expect_close(what, &y, 1e-3 * sqrt(C * 9.0), step);
            twin dy = twin_uniform(r, N * K * HW, dt, -1, 1), dx = twin_uniform(r, N * C * HW, dt, -1, 1);
            twin dw = twin_uniform(r, K * C * 9, dt, -1, 1), db = twin_uniform(r, K, dt, -1, 1);
            K_CPU->conv2d_backward_cl(dt, H(dx), H(dw), H(db), H(dy), y_cl, H(*xin), x_cl, H(w), false, NULL, N, C, Hh, W, K, 3,
                                      3, 1, 1, Hh, W, true);
            K_GPU->conv2d_backward_cl(dt, D(dx), D(dw), D(db), D(dy), y_cl, D(*xin), x_cl, D(w), false, NULL, N, C, Hh, W, K, 3,
                                      3, 1, 1, Hh, W, true);
            snprintf(what, sizeof what, "conv2d_backward_cl dx, x %s, dy %s", x_cl ? "NHWC" : "NCHW", y_cl ? "NHWC" : "NCHW");
            expect_close(what, &dx, 1e-3 * sqrt(K * 9.0), step);
            twin_poison(&dx); // dx written (cuDNN's beta 0), the weight gradient not asked for
            K_CPU->conv2d_backward_cl(dt, H(dx), NULL, NULL, H(dy), y_cl, H(*xin), x_cl, H(w), false, NULL, N, C, Hh, W, K, 3, 3,
                                      1, 1, Hh, W, false);
            K_GPU->conv2d_backward_cl(dt, D(dx), NULL, NULL, D(dy), y_cl, D(*xin), x_cl, D(w), false, NULL, N, C, Hh, W, K, 3, 3,
                                      1, 1, Hh, W, false);
            snprintf(what, sizeof what, "conv2d_backward_cl dx written, x %s, dy %s", x_cl ? "NHWC" : "NCHW",
                     y_cl ? "NHWC" : "NCHW");
            expect_close(what, &dx, 1e-3 * sqrt(K * 9.0), step);
            // The same dx, bit for bit, from the weights the forward left in w_nhwc.
            twin dxk = twin_new(N * C * HW, dt);
            twin_poison(&dxk);
            K_GPU->conv2d_backward_cl(dt, D(dxk), NULL, NULL, D(dy), y_cl, D(*xin), x_cl, D(w), false, D(wk), N, C, Hh, W, K, 3,
                                      3, 1, 1, Hh, W, false);
            cg_device_copy(cg_cpu(), H(dxk), gpu, D(dx), (size_t)dxk.n * cg_dtype_size(dt)); // want: the dx above
            snprintf(what, sizeof what, "conv2d_backward_cl dx from w_nhwc, x %s, dy %s", x_cl ? "NHWC" : "NCHW",
                     y_cl ? "NHWC" : "NCHW");
            expect_close(what, &dxk, 0, 0);
            twin_free(&dxk);
            expect_close("conv2d_backward_cl dw", &dw, 2e-3 * sqrt((double)N * HW), step);
            expect_close("conv2d_backward_cl dbias", &db, 2e-3 * sqrt((double)N * HW), step);
            twin_free(&y), twin_free(&dy), twin_free(&dx), twin_free(&dw), twin_free(&db);
        }
    // 2x2 max pooling of a channels-last tensor: the same maxima, arg-max indices into x as stored
    if (C % 8 == 0) {
        int64_t P = Hh / 2, Q = W / 2;
        twin p = twin_new(N * C * P * Q, dt), am = twin_new(N * C * P * Q, CG_I32), dxl = twin_uniform(r, N * C * HW, dt, -1, 1);
        twin dp = twin_uniform(r, N * C * P * Q, dt, -1, 1);
        K_CPU->max_pool2d_forward_h(dt, H(p), H(am), H(xl), N, C, Hh, W, 2, 2, P, Q, true);
        K_GPU->max_pool2d_forward_h(dt, D(p), D(am), D(xl), N, C, Hh, W, 2, 2, P, Q, true);
        expect_close("max_pool2d_forward_h channels-last", &p, 0, 0);
        expect_close("max_pool2d_forward_h channels-last arg-max", &am, 0, 0);
        for (int acc = 1; acc >= 0; acc--) {
            if (!acc) twin_poison(&dxl);
            K_CPU->max_pool2d_backward_h(dt, H(dxl), H(dp), H(am), N, C, Hh, W, 2, 2, P, Q, true, acc);
            K_GPU->max_pool2d_backward_h(dt, D(dxl), D(dp), D(am), N, C, Hh, W, 2, 2, P, Q, true, acc);
            expect_close(acc ? "max_pool2d_backward_h channels-last" : "max_pool2d_backward_h channels-last, written",
                         &dxl, 0, 0);
        }
        twin_free(&p), twin_free(&am), twin_free(&dxl), twin_free(&dp);
    }
    // Weights stored channels-last, (K, R, S, C), as mixed precision keeps its 16-bit copies on a
    // GPU (core/train/amp.h), dw stored as w: cuDNN reads w and adds to dw in place. On the CPU
    // (copies around the NCHW kernels) the same bits as with the (K, C, R, S) weights; the GPU
    // against it.
    if (C % 8 == 0 && K % 8 == 0) {
        twin wl = channels_last_twin(&w, dt, K, C, 9);
        for (int x_cl = 0; x_cl < 2; x_cl++) {
            twin *xin = x_cl ? &xl : &x, y = twin_new(N * K * HW, dt), y_ref = twin_new(N * K * HW, dt);
            char what[96];
            snprintf(what, sizeof what, "conv2d_forward_cl, w channels-last, x %s", x_cl ? "NHWC" : "NCHW");
            K_CPU->conv2d_forward_cl(dt, H(y_ref), true, H(*xin), x_cl, H(w), false, NULL, H(b), N, C, Hh, W, K, 3, 3, 1,
                                     1, Hh, W);
            K_CPU->conv2d_forward_cl(dt, H(y), true, H(*xin), x_cl, H(wl), true, NULL, H(b), N, C, Hh, W, K, 3, 3, 1, 1,
                                     Hh, W);
            K_GPU->conv2d_forward_cl(dt, D(y), true, D(*xin), x_cl, D(wl), true, NULL, D(b), N, C, Hh, W, K, 3, 3, 1, 1,
                                     Hh, W);
            if (memcmp(H(y), H(y_ref), (size_t)y.n * cg_dtype_size(dt)) != 0)
                fail(what, "the CPU's y differs from the one with (K, C, R, S) weights");
            expect_close(what, &y, 1e-3 * sqrt(C * 9.0), step);
            twin dy = twin_uniform(r, N * K * HW, dt, -1, 1), dx = twin_uniform(r, N * C * HW, dt, -1, 1);
            twin dw = twin_uniform(r, K * C * 9, dt, -1, 1), dwl = channels_last_twin(&dw, dt, K, C, 9);
            twin dx_ref = twin_new(N * C * HW, dt), dw_back = twin_new(K * C * 9, dt);
            memcpy(H(dx_ref), H(dx), (size_t)dx.n * cg_dtype_size(dt));
            K_CPU->conv2d_backward_cl(dt, H(dx_ref), H(dw), NULL, H(dy), true, H(*xin), x_cl, H(w), false, NULL, N, C, Hh,
                                      W, K, 3, 3, 1, 1, Hh, W, true);
            K_CPU->conv2d_backward_cl(dt, H(dx), H(dwl), NULL, H(dy), true, H(*xin), x_cl, H(wl), true, NULL, N, C, Hh, W,
                                      K, 3, 3, 1, 1, Hh, W, true);
            K_GPU->conv2d_backward_cl(dt, D(dx), D(dwl), NULL, D(dy), true, D(*xin), x_cl, D(wl), true, NULL, N, C, Hh, W,
                                      K, 3, 3, 1, 1, Hh, W, true);
            K_CPU->memory_format_copy(dt, H(dw_back), H(dwl), K, C, 9, false, false);
            if (memcmp(H(dx), H(dx_ref), (size_t)dx.n * cg_dtype_size(dt)) != 0 ||
                memcmp(H(dw_back), H(dw), (size_t)dw.n * cg_dtype_size(dt)) != 0)
                fail(what, "the CPU's dx or dw differs from the ones with (K, C, R, S) weights");
            snprintf(what, sizeof what, "conv2d_backward_cl dx, w channels-last, x %s", x_cl ? "NHWC" : "NCHW");
            expect_close(what, &dx, 1e-3 * sqrt(K * 9.0), step);
            snprintf(what, sizeof what, "conv2d_backward_cl dw channels-last, x %s", x_cl ? "NHWC" : "NCHW");
            expect_close(what, &dwl, 2e-3 * sqrt((double)N * HW), step);
            twin_free(&y), twin_free(&y_ref), twin_free(&dy), twin_free(&dx), twin_free(&dw), twin_free(&dwl);
            twin_free(&dx_ref), twin_free(&dw_back);
        }
        twin_free(&wl);
    }
    // and back to NCHW, added (the backward of the copy)
    twin back = twin_uniform(r, N * C * HW, dt, -1, 1);
    K_CPU->memory_format_copy(dt, H(back), H(xl), N, C, HW, false, true);
    K_GPU->memory_format_copy(dt, D(back), D(xl), N, C, HW, false, true);
    expect_close("memory_format_copy to NCHW, added", &back, 0, 0);
    twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&xl), twin_free(&back), twin_free(&wk);
}

// A 1 x 1 convolution with stride 2 (a ResNet's shortcut), 16 -> 24 channels, x and y stored
// channels-last: its (K, C, 1, 1) weights are already (K, 1, 1, C), which the GPU reads and whose
// gradient it adds to in place, with no copy.
static void test_conv_1x1_cl(cg_rng *r, cg_dtype dt) {
    int64_t N = 3, C = 16, Hh = 9, W = 7, K = 24, P = 5, Q = 4;
    twin x = twin_uniform(r, N * C * Hh * W, dt, -1, 1), w = twin_uniform(r, K * C, dt, -0.3f, 0.3f);
    twin xl = channels_last_twin(&x, dt, N, C, Hh * W), y = twin_new(N * K * P * Q, dt);
    K_CPU->conv2d_forward_cl(dt, H(y), true, H(xl), true, H(w), false, NULL, NULL, N, C, Hh, W, K, 1, 1, 2, 0, P, Q);
    K_GPU->conv2d_forward_cl(dt, D(y), true, D(xl), true, D(w), false, NULL, NULL, N, C, Hh, W, K, 1, 1, 2, 0, P, Q);
    expect_close("conv2d_forward_cl 1x1 stride 2", &y, 1e-3 * sqrt((double)C), step_of(dt));
    twin dy = twin_uniform(r, N * K * P * Q, dt, -1, 1), dx = twin_uniform(r, N * C * Hh * W, dt, -1, 1);
    twin dw = twin_uniform(r, K * C, dt, -1, 1);
    K_CPU->conv2d_backward_cl(dt, H(dx), H(dw), NULL, H(dy), true, H(xl), true, H(w), false, NULL, N, C, Hh, W, K, 1, 1,
                              2, 0, P, Q, true);
    K_GPU->conv2d_backward_cl(dt, D(dx), D(dw), NULL, D(dy), true, D(xl), true, D(w), false, NULL, N, C, Hh, W, K, 1, 1,
                              2, 0, P, Q, true);
    expect_close("conv2d_backward_cl 1x1 stride 2 dx", &dx, 1e-3 * sqrt((double)K), step_of(dt));
    expect_close("conv2d_backward_cl 1x1 stride 2 dw", &dw, 2e-3 * sqrt((double)(N * P * Q)), step_of(dt));
    twin_free(&x), twin_free(&w), twin_free(&xl), twin_free(&y), twin_free(&dy), twin_free(&dx), twin_free(&dw);
}

// Convolutions (the tutorial CNN's two shapes, small batch, and one with channel counts that are
// not multiples of 8) and 2x2 max pooling, NCHW; then with channels-last tensors.
static void test_conv_h(cg_rng *r, cg_dtype dt) {
    double step = step_of(dt);
    int64_t shapes[3][5] = {{4, 1, 28, 28, 32}, {4, 32, 14, 14, 64}, {3, 5, 10, 10, 12}}; // N C H W K, 3x3, pad 1
    for (int s = 0; s < 3; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], Hh = shapes[s][2], W = shapes[s][3], K = shapes[s][4];
        twin x = twin_uniform(r, N * C * Hh * W, dt, -1, 1), w = twin_uniform(r, K * C * 9, dt, -0.3f, 0.3f);
        twin b = twin_uniform(r, K, dt, -0.1f, 0.1f), y = twin_new(N * K * Hh * W, dt);
        K_CPU->conv2d_forward_h(dt, H(y), H(x), H(w), H(b), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
        K_GPU->conv2d_forward_h(dt, D(y), D(x), D(w), D(b), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
        expect_close("conv2d_forward_h", &y, 1e-3 * sqrt(C * 9.0), step);
        twin dy = twin_uniform(r, N * K * Hh * W, dt, -1, 1), dx = twin_uniform(r, N * C * Hh * W, dt, -1, 1);
        twin dw = twin_uniform(r, K * C * 9, dt, -1, 1), db = twin_uniform(r, K, dt, -1, 1);
        K_CPU->conv2d_backward_h(dt, H(dx), H(dw), H(db), H(dy), H(x), H(w), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
        K_GPU->conv2d_backward_h(dt, D(dx), D(dw), D(db), D(dy), D(x), D(w), N, C, Hh, W, K, 3, 3, 1, 1, Hh, W);
        expect_close("conv2d_backward_h dx", &dx, 1e-3 * sqrt(K * 9.0), step);
        expect_close("conv2d_backward_h dw", &dw, 2e-3 * sqrt((double)N * Hh * W), step);
        expect_close("conv2d_backward_h dbias", &db, 2e-3 * sqrt((double)N * Hh * W), step);
        // pooling of the convolution's output
        int64_t P = Hh / 2, Q = W / 2;
        twin p = twin_new(N * K * P * Q, dt), am = twin_new(N * K * P * Q, CG_I32), dp = twin_uniform(r, N * K * P * Q, dt, -1, 1);
        twin dyy = twin_uniform(r, N * K * Hh * W, dt, -1, 1);
        K_CPU->max_pool2d_forward_h(dt, H(p), H(am), H(y), N, K, Hh, W, 2, 2, P, Q, false);
        K_GPU->max_pool2d_forward_h(dt, D(p), D(am), D(y), N, K, Hh, W, 2, 2, P, Q, false);
        // The GPU's y may differ from the CPU's by a rounding: pool the CPU's y on both.
        cg_device_copy(gpu, D(y), cg_cpu(), H(y), (size_t)y.n * cg_dtype_size(dt));
        K_GPU->max_pool2d_forward_h(dt, D(p), D(am), D(y), N, K, Hh, W, 2, 2, P, Q, false);
        expect_close("max_pool2d_forward_h", &p, 0, 0);
        for (int acc = 1; acc >= 0; acc--) {
            if (!acc) twin_poison(&dyy);
            K_CPU->max_pool2d_backward_h(dt, H(dyy), H(dp), H(am), N, K, Hh, W, 2, 2, P, Q, false, acc);
            K_GPU->max_pool2d_backward_h(dt, D(dyy), D(dp), D(am), N, K, Hh, W, 2, 2, P, Q, false, acc);
            expect_close(acc ? "max_pool2d_backward_h" : "max_pool2d_backward_h, written", &dyy, 0, 0);
        }
        // 3x3 windows, stride 2: they overlap (the GPU's atomic path); and 1x1 windows, stride 2,
        // which skip inputs (no window's maximum: zero when written)
        for (int kernel = 3; kernel >= 1; kernel -= 2) {
            int64_t P3 = (Hh - kernel) / 2 + 1, Q3 = (W - kernel) / 2 + 1;
            twin p3 = twin_new(N * K * P3 * Q3, dt), am3 = twin_new(N * K * P3 * Q3, CG_I32);
            twin dp3 = twin_uniform(r, N * K * P3 * Q3, dt, -1, 1);
            K_CPU->max_pool2d_forward_h(dt, H(p3), H(am3), H(y), N, K, Hh, W, kernel, 2, P3, Q3, false);
            K_GPU->max_pool2d_forward_h(dt, D(p3), D(am3), D(y), N, K, Hh, W, kernel, 2, P3, Q3, false);
            expect_close(kernel == 3 ? "max_pool2d_forward_h 3x3 stride 2" : "max_pool2d_forward_h 1x1 stride 2", &am3, 0, 0);
            twin_upload(&dyy); // the same starting gradient on both (the atomic sums may differ by a rounding)
            for (int acc = 1; acc >= 0; acc--) {
                if (!acc) twin_poison(&dyy);
                K_CPU->max_pool2d_backward_h(dt, H(dyy), H(dp3), H(am3), N, K, Hh, W, kernel, 2, P3, Q3, false, acc);
                K_GPU->max_pool2d_backward_h(dt, D(dyy), D(dp3), D(am3), N, K, Hh, W, kernel, 2, P3, Q3, false, acc);
                char what[80];
                snprintf(what, sizeof what, "max_pool2d_backward_h %dx%d stride 2%s", kernel, kernel, acc ? "" : ", written");
                expect_close(what, &dyy, kernel == 3 ? step : 0, kernel == 3 ? step : 0); // atomics: any order
            }
            twin_free(&p3), twin_free(&am3), twin_free(&dp3);
        }
        twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y), twin_free(&dy), twin_free(&dx), twin_free(&dw);
        twin_free(&db), twin_free(&p), twin_free(&am), twin_free(&dp), twin_free(&dyy);
        test_conv_cl(r, dt, N, C, Hh, W, K);
    }
    test_conv_cl(r, dt, 4, 3, 12, 12, 24); // the fast network's first layer: 3 channels padded to 8
    test_conv_few_channels(r, dt);
}

// Batch norm and GELU on 16-bit activations: the f32 arithmetic agrees to rounding, so each
// stored value within a step of its CPU twin (a value that lands on a rounding boundary may go
// either way); statistics and dgamma / dbeta (f32) as the f32 rows of test_cuda.
static void test_norm_gelu_h(cg_rng *r, cg_dtype dt) {
    double step = step_of(dt);
    // Channels-last, C = 3 takes the 32-channel kernels, the others 8 channels per thread: one
    // group of channels per block (16, 40), or two with the second's threads mostly idle (264).
    static const int64_t shapes[][3] = {{5, 3, 37}, {256, 16, 49}, {64, 40, 9}, {6, 264, 7}};
    enum { SHAPES = sizeof shapes / sizeof shapes[0] };
    for (int v = 0; v < 2 * SHAPES; v++)
        for (int training = 1; training >= 0; training--) {
            bool cl = v >= SHAPES; // the same shapes stored channels-last
            const int64_t N = shapes[v % SHAPES][0], C = shapes[v % SHAPES][1], HW = shapes[v % SHAPES][2], n = N * C * HW;
            twin x = twin_uniform(r, n, dt, -2, 3), y = twin_new(n, dt), stats = twin_new(2 * C, CG_F32);
            twin gamma = twin_uniform(r, C, CG_F32, 0.5f, 1.5f), beta = twin_uniform(r, C, CG_F32, -1, 1);
            twin rm = twin_uniform(r, C, CG_F32, -0.5f, 0.5f), rv = twin_uniform(r, C, CG_F32, 0.5f, 2.0f);
            K_CPU->batch_norm_forward_h(dt, H(y), F(stats), F(rm), F(rv), H(x), F(gamma), F(beta), N, C, HW, 1e-5f,
                                        0.1f, training, cl);
            K_GPU->batch_norm_forward_h(dt, D(y), (float *)D(stats), (float *)D(rm), (float *)D(rv), D(x), (float *)D(gamma), (float *)D(beta), N, C, HW, 1e-5f,
                                        0.1f, training, cl);
            char what[64];
            snprintf(what, sizeof what, "batch_norm_forward_h %s%s", training ? "train" : "eval", cl ? " channels-last" : "");
            expect_close(what, &y, step, step);
            expect_close("batch_norm_forward_h stats", &stats, 1e-5, 1e-5);
            expect_close("batch_norm_forward_h running_var", &rv, 1e-5, 1e-5);
            twin dy = twin_uniform(r, n, dt, -1, 1), dx = twin_uniform(r, n, dt, -1, 1);
            twin dg = twin_uniform(r, C, CG_F32, -1, 1), db = twin_uniform(r, C, CG_F32, -1, 1);
            K_CPU->batch_norm_backward_h(dt, H(dx), F(dg), F(db), H(dy), H(x), F(gamma), F(stats), N, C, HW, training, cl,
                                         true);
            K_GPU->batch_norm_backward_h(dt, D(dx), (float *)D(dg), (float *)D(db), D(dy), D(x), (float *)D(gamma),
                                         (float *)D(stats), N, C, HW, training, cl, true);
            snprintf(what, sizeof what, "batch_norm_backward_h dx %s%s", training ? "train" : "eval", cl ? " channels-last" : "");
            expect_close(what, &dx, step, step);
            twin_poison(&dx); // written: nothing of the NaNs may be read
            K_CPU->batch_norm_backward_h(dt, H(dx), NULL, NULL, H(dy), H(x), F(gamma), F(stats), N, C, HW, training, cl,
                                         false);
            K_GPU->batch_norm_backward_h(dt, D(dx), NULL, NULL, D(dy), D(x), (float *)D(gamma), (float *)D(stats), N, C,
                                         HW, training, cl, false);
            snprintf(what, sizeof what, "batch_norm_backward_h dx written %s%s", training ? "train" : "eval",
                     cl ? " channels-last" : "");
            expect_close(what, &dx, step, step);
            expect_close("batch_norm_backward_h dgamma", &dg, 1e-3, 1e-4);
            expect_close("batch_norm_backward_h dbeta", &db, 1e-3, 1e-4);
            // batch norm and an activation in one op: the same inputs, the activation's output and gradient
            for (cg_activation act = CG_ACT_GELU; act <= CG_ACT_RELU; act++) {
                const char *name = act == CG_ACT_GELU ? "gelu" : "relu";
                K_CPU->batch_norm_act_forward(dt, act, H(y), F(stats), F(rm), F(rv), H(x), F(gamma), F(beta), N, C, HW,
                                              1e-5f, 0.1f, training, cl);
                K_GPU->batch_norm_act_forward(dt, act, D(y), (float *)D(stats), (float *)D(rm), (float *)D(rv), D(x),
                                              (float *)D(gamma), (float *)D(beta), N, C, HW, 1e-5f, 0.1f, training, cl);
                snprintf(what, sizeof what, "batch_norm_%s_forward %s%s", name, training ? "train" : "eval",
                         cl ? " channels-last" : "");
                expect_close(what, &y, step, step);
                expect_close("batch_norm_act_forward stats", &stats, 1e-5, 1e-5);
                bool acc = act == CG_ACT_GELU; // GELU adds to dx, ReLU writes it
                if (!acc) twin_poison(&dx);
                K_CPU->batch_norm_act_backward(dt, act, H(dx), F(dg), F(db), H(dy), H(x), F(gamma), F(beta), F(stats), N,
                                               C, HW, training, cl, acc);
                K_GPU->batch_norm_act_backward(dt, act, D(dx), (float *)D(dg), (float *)D(db), D(dy), D(x),
                                               (float *)D(gamma), (float *)D(beta), (float *)D(stats), N, C, HW, training,
                                               cl, acc);
                snprintf(what, sizeof what, "batch_norm_%s_backward dx %s%s", name, training ? "train" : "eval",
                         cl ? " channels-last" : "");
                expect_close(what, &dx, step, step);
                expect_close("batch_norm_act_backward dgamma", &dg, 1e-3, 1e-4);
                expect_close("batch_norm_act_backward dbeta", &db, 1e-3, 1e-4);
            }
            // batch norm, a residual add and ReLU in one op (the end of a basic block)
            twin z = twin_uniform(r, n, dt, -1, 1);
            K_CPU->batch_norm_add_relu_forward(dt, H(y), F(stats), F(rm), F(rv), H(x), H(z), F(gamma), F(beta), N, C,
                                               HW, 1e-5f, 0.1f, training, cl);
            K_GPU->batch_norm_add_relu_forward(dt, D(y), (float *)D(stats), (float *)D(rm), (float *)D(rv), D(x), D(z),
                                               (float *)D(gamma), (float *)D(beta), N, C, HW, 1e-5f, 0.1f, training,
                                               cl);
            snprintf(what, sizeof what, "batch_norm_add_relu_forward %s%s", training ? "train" : "eval",
                     cl ? " channels-last" : "");
            expect_close(what, &y, step, step);
            expect_close("batch_norm_add_relu_forward stats", &stats, 1e-5, 1e-5);
            // Its backward in one row on the GPU (ReLU's gradient g made in the pass that sums it):
            // the CPU's two rows it replaces (relu_backward_h, then batch_norm_backward_h from g)
            // within a step, and the GPU's own two rows to the bit. Both sides from the same y and
            // statistics (the CPU's); g and dx written: poisoned first.
            twin_upload(&y), twin_upload(&stats);
            size_t bytes = (size_t)n * cg_dtype_size(dt);
            twin g = twin_new(n, dt), g2 = twin_new(n, dt), dx2 = twin_new(n, dt);
            twin_poison(&g), twin_poison(&dx), twin_poison(&g2), twin_poison(&dx2);
            K_CPU->relu_backward_h(dt, H(g), H(dy), H(y), n, false);
            K_CPU->batch_norm_backward_h(dt, H(dx), F(dg), F(db), H(g), H(x), F(gamma), F(stats), N, C, HW, training,
                                         cl, false);
            K_GPU->batch_norm_add_relu_backward(dt, D(dx), D(g), (float *)D(dg), (float *)D(db), D(dy), D(y), D(x),
                                                (float *)D(gamma), (float *)D(stats), N, C, HW, training, cl, false);
            snprintf(what, sizeof what, "batch_norm_add_relu_backward %s%s", training ? "train" : "eval",
                     cl ? " channels-last" : "");
            expect_close(what, &g, 0, 0); // ReLU's gradient: dy or +0
            expect_close("batch_norm_add_relu_backward dx", &dx, step, step);
            expect_close("batch_norm_add_relu_backward dgamma", &dg, 1e-3, 1e-4);
            expect_close("batch_norm_add_relu_backward dbeta", &db, 1e-3, 1e-4);
            K_GPU->relu_backward_h(dt, D(g2), D(dy), D(y), n, false);
            K_GPU->batch_norm_backward_h(dt, D(dx2), NULL, NULL, D(g2), D(x), (float *)D(gamma), (float *)D(stats), N,
                                         C, HW, training, cl, false);
            cg_device_copy(cg_cpu(), g.host, gpu, g2.dev, bytes);
            cg_device_copy(cg_cpu(), dx.host, gpu, dx2.dev, bytes);
            expect_close("batch_norm_add_relu_backward g, as the GPU's two rows", &g, 0, 0);
            expect_close("batch_norm_add_relu_backward dx, as the GPU's two rows", &dx, 0, 0);
            twin_free(&g), twin_free(&g2), twin_free(&dx2);
            twin_free(&z);
            twin *all[] = {&x, &y, &stats, &gamma, &beta, &rm, &rv, &dy, &dx, &dg, &db};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
        }
    {
        const int64_t n = 50021;
        twin a = twin_uniform(r, n, dt, -4, 4), b = twin_uniform(r, n, dt, -4, 4), y = twin_new(n, dt);
        K_CPU->add_forward_h(dt, H(y), H(a), H(b), n), K_GPU->add_forward_h(dt, D(y), D(a), D(b), n);
        expect_close("add_forward_h", &y, 0, 0); // the same f32 sum rounded once on both
        twin_free(&a), twin_free(&b), twin_free(&y);
    }
    for (int v = 0; v < 4; v++) { // erf and tanh forms; 50,024 values: 8 per thread on the GPU
        int tanh_approx = v % 2;
        const int64_t n = v < 2 ? 50021 : 50024;
        twin x = twin_uniform(r, n, dt, -4, 4), y = twin_new(n, dt), dy = twin_uniform(r, n, dt, -1, 1);
        twin dx = twin_uniform(r, n, dt, -1, 1);
        K_CPU->gelu_forward_h(dt, H(y), H(x), n, tanh_approx), K_GPU->gelu_forward_h(dt, D(y), D(x), n, tanh_approx);
        expect_close(tanh_approx ? "gelu_forward_h tanh" : "gelu_forward_h", &y, step * 0.01, step);
        K_CPU->gelu_backward_h(dt, H(dx), H(dy), H(x), n, tanh_approx, true);
        K_GPU->gelu_backward_h(dt, D(dx), D(dy), D(x), n, tanh_approx, true);
        expect_close(tanh_approx ? "gelu_backward_h tanh" : "gelu_backward_h", &dx, step * 0.01, step);
        twin_poison(&dx);
        K_CPU->gelu_backward_h(dt, H(dx), H(dy), H(x), n, tanh_approx, false);
        K_GPU->gelu_backward_h(dt, D(dx), D(dy), D(x), n, tanh_approx, false);
        expect_close(tanh_approx ? "gelu_backward_h tanh, written" : "gelu_backward_h, written", &dx, step * 0.01, step);
        twin_free(&x), twin_free(&y), twin_free(&dy), twin_free(&dx);
    }
}

static void test_scaler_kernels(cg_rng *r) {
    const int64_t n = 300007;
    for (int bad = 0; bad < 2; bad++) {
        twin g = twin_uniform(r, n, CG_F32, -1000, 1000), h = twin_uniform(r, n, CG_F16, -1000, 1000);
        if (bad) ((uint16_t *)H(h))[n / 2] = 0x7c00; // +inf in fp16
        twin_upload(&h);
        float state[CG_AMP_STATE] = {1024.0f, 0, 5, 2, 7};
        twin amp = twin_new(CG_AMP_STATE, CG_F32);
        memcpy(H(amp), state, sizeof state);
        twin_upload(&amp);
        K_CPU->amp_unscale_check(H(g), H(h), CG_F16, H(amp), n, NULL, 0);
        K_GPU->amp_unscale_check(D(g), D(h), CG_F16, D(amp), n, NULL, 0);
        if (!bad) expect_close("amp_unscale_check g", &g, 0, 1e-6);
        expect_close(bad ? "amp_unscale_check inf" : "amp_unscale_check clean", &amp, 0, 0);
        K_CPU->amp_update_scale(H(amp), 2.0f, 0.5f, 6), K_GPU->amp_update_scale(D(amp), 2.0f, 0.5f, 6);
        expect_close(bad ? "amp_update_scale back-off" : "amp_update_scale growth", &amp, 0, 0);
        // The optimizer skips on the flag, and its step count with it.
        twin p = twin_uniform(r, n, CG_F32, -1, 1), m = twin_new(n, CG_F32), v = twin_new(n, CG_F32);
        twin count = twin_new(1, CG_F32);
        float *flag_h = (float *)H(amp) + CG_AMP_FOUND_INF, *flag_d = (float *)D(amp) + CG_AMP_FOUND_INF;
        K_CPU->add_scalar_unless(H(count), 1.0f, flag_h), K_GPU->add_scalar_unless(D(count), 1.0f, flag_d);
        expect_close("add_scalar_unless", &count, 0, 0);
        twin lr = twin_new(1, CG_F32);
        *(float *)H(lr) = 1e-2f;
        twin_upload(&lr);
        K_CPU->adam_step(H(p), H(g), H(m), H(v), H(count), n, H(lr), 0.9f, 0.999f, 1e-8f, 0.0f, false, NULL, flag_h);
        K_GPU->adam_step(D(p), D(g), D(m), D(v), D(count), n, D(lr), 0.9f, 0.999f, 1e-8f, 0.0f, false, NULL, flag_d);
        expect_close(bad ? "adam_step skipped" : "adam_step applied", &p, 1e-6, 1e-5);
        *(float *)H(lr) = 0.1f;
        twin_upload(&lr);
        K_CPU->sgd_step(H(p), H(g), NULL, H(count), n, H(lr), 0.0f, 0.0f, 0.0f, false, false, NULL, flag_h);
        K_GPU->sgd_step(D(p), D(g), NULL, D(count), n, D(lr), 0.0f, 0.0f, 0.0f, false, false, NULL, flag_d);
        twin_free(&lr);
        expect_close(bad ? "sgd_step skipped" : "sgd_step applied", &p, 1e-5, 1e-5);
        twin_free(&g), twin_free(&h), twin_free(&amp), twin_free(&p), twin_free(&m), twin_free(&v), twin_free(&count);
    }
}

// The 16-bit copy of a parameter block with three weights stored channels-last (core/kernels.h:
// cg_amp_cl_slice; the first at offset 0, the last ending the block, 8 values between the first
// two) and the unscale pass reading its gradients through them: the GPU's binary search against
// the CPU's copies, to the bit; 8 values a thread, then one (5 values more after the last slice).
static void test_cl_slices(cg_rng *r) {
    const cg_amp_cl_slice slices[3] = {{0, 16, 8, 9}, {1160, 8, 32, 4}, {2184, 24, 16, 25}};
    cg_amp_cl_slice *dev = cg_device_alloc(gpu, sizeof slices);
    cg_device_copy(gpu, dev, cg_cpu(), slices, sizeof slices);
    for (int by_one = 0; by_one < 2; by_one++)
        for (int d = 0; d < 2; d++) {
            cg_dtype dt = d ? CG_BF16 : CG_F16;
            int64_t n = 2184 + 24 * 16 * 25 + (by_one ? 5 : 0);
            twin values = twin_uniform(r, n, CG_F32, -100, 100), low = twin_new(n, dt);
            twin_poison(&low);
            K_CPU->amp_refresh(H(low), dt, F(values), n, slices, 3);
            K_GPU->amp_refresh(D(low), dt, (const float *)D(values), n, dev, 3);
            expect_close(by_one ? "amp_refresh, 3 channels-last slices, by 1" : "amp_refresh, 3 channels-last slices",
                         &low, 0, 0);
            twin g = twin_uniform(r, n, CG_F32, -1000, 1000), h = twin_uniform(r, n, dt, -1000, 1000);
            twin amp = twin_new(CG_AMP_STATE, CG_F32);
            ((float *)H(amp))[CG_AMP_SCALE] = 8.0f;
            twin_upload(&amp);
            K_CPU->amp_unscale_check(F(g), H(h), dt, F(amp), n, slices, 3);
            K_GPU->amp_unscale_check((float *)D(g), D(h), dt, (float *)D(amp), n, dev, 3);
            expect_close(by_one ? "amp_unscale_check, 3 channels-last slices, by 1"
                                : "amp_unscale_check, 3 channels-last slices",
                         &g, 0, 0);
            twin_free(&values), twin_free(&low), twin_free(&g), twin_free(&h), twin_free(&amp);
        }
    cg_device_free(gpu, dev);
}

// A small CNN (conv, ReLU, pool, conv, ReLU, flatten, linear) on random images: 8 steps of Adam under
// mixed precision on each device, from the same weights and batch; losses within 2 %.
static void test_training(cg_precision precision) {
    double losses[2][8];
    cg_device devs[2] = {cg_cpu(), gpu};
    for (int d = 0; d < 2; d++) {
        cg_params *params = cg_params_new(devs[d]);
        cg_rng init = cg_rng_new(11, CG_STREAM_INIT);
        cg_module *m = cg_sequential_new();
        cg_sequential_add(m, cg_conv2d_new(params, "c1", 1, 8, 3, 1, 1, true, &init));
        cg_sequential_add(m, cg_relu_new());
        cg_sequential_add(m, cg_max_pool2d_new(2, 2));
        cg_sequential_add(m, cg_conv2d_new(params, "c2", 8, 16, 3, 1, 1, true, &init)); // 16-bit copy channels-last
        cg_sequential_add(m, cg_relu_new());                                             // where the layout is
        cg_sequential_add(m, cg_flatten_new());
        cg_sequential_add(m, cg_linear_new(params, "f1", 16 * 8 * 8, 10, true, &init));
        cg_optimizer *opt = cg_optimizer_new(params, cg_adam_config(1e-3f));
        cg_amp *amp = cg_amp_new(params, precision, cg_loss_scale_default(precision));
        cg_tape *t = cg_tape_new(devs[d], 1 << 22);
        cg_amp_attach(amp, t);
        float xv[32 * 256];
        int32_t lv[32];
        cg_rng data = cg_rng_new(12, CG_STREAM_DATA);
        cg_rng_normal(&data, xv, 32 * 256, 0.0f, 1.0f);
        for (int i = 0; i < 32; i++) lv[i] = i % 10;
        cg_tensor *x = cg_tensor_new(devs[d], CG_F32, 4, (int64_t[]){32, 1, 16, 16});
        cg_tensor *labels = cg_tensor_new(devs[d], CG_I32, 1, (int64_t[]){32});
        cg_tensor_copy_from_host(x, xv, 32 * 256);
        cg_tensor_copy_from_host(labels, lv, 32);
        for (int s = 0; s < 8; s++) {
            cg_tensor *logits = cg_autocast_f32(t, cg_module_forward(m, t, x));
            cg_tensor *loss = cg_cross_entropy(t, logits, labels);
            cg_optimizer_zero_grad(opt);
            cg_amp_backward(amp, t, loss);
            cg_amp_step(amp, opt);
            losses[d][s] = cg_tensor_item(loss);
            cg_tape_clear(t);
        }
        cg_tensor_free(x), cg_tensor_free(labels);
        cg_tape_free(t);
        cg_amp_free(amp);
        cg_optimizer_free(opt);
        cg_module_free(m);
        cg_params_free(params);
    }
    double worst = 0;
    for (int s = 0; s < 8; s++) worst = fmax(worst, fabs(losses[0][s] - losses[1][s]) / losses[0][s]);
    if (!(worst < 0.02)) {
        fail("training", "%s: losses cpu %.5f .. %.5f, cuda %.5f .. %.5f (%.3g apart)", cg_precision_name(precision),
             losses[0][0], losses[0][7], losses[1][0], losses[1][7], worst);
    } else {
        printf("ok   training %s, 8 steps: loss %.4f -> %.4f on the CPU, %.4f -> %.4f on the GPU (worst %.2g)\n",
               cg_precision_name(precision), losses[0][0], losses[0][7], losses[1][0], losses[1][7], worst);
    }
}

int main(void) {
    if (!twin_setup()) return 77;
    twin_nonfinite_agree = true; // the casts overflow fp16 to inf on purpose
    cg_rng r = cg_rng_new(43, 0);
    test_cast(&r);
    test_low_kernels(&r, CG_F16);
    test_low_kernels(&r, CG_BF16);
    test_norm_gelu_h(&r, CG_F16);
    test_norm_gelu_h(&r, CG_BF16);
    test_global_avg_pool_h(&r, CG_F16);
    test_global_avg_pool_h(&r, CG_BF16);
    const char *layouts[2] = {"nchw", "nhwc"};
    for (int l = 0; l < 2; l++) {
        setenv("CGRAD_CONV16_LAYOUT", layouts[l], 1);
        printf("16-bit convolutions' outputs stored %s:\n", layouts[l]);
        test_conv_h(&r, CG_F16);
        test_conv_h(&r, CG_BF16);
        test_conv_1x1_cl(&r, CG_F16);
        test_conv_1x1_cl(&r, CG_BF16);
        test_training(CG_PRECISION_FP16);
        test_training(CG_PRECISION_BF16);
    }
    unsetenv("CGRAD_CONV16_LAYOUT");
    test_scaler_kernels(&r);
    test_cl_slices(&r);
    return check_summary("test_cuda_amp");
}

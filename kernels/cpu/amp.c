// amp.c: the CPU's mixed-precision kernels: the 16-bit kernels (the _h rows of core/kernels.h),
// the cast kernel, and the loss scaler's fused inf / NaN check and unscale (kernels/cpu/amp.h).
// The CPU has no fp16 / bf16 arithmetic that cgrad uses, so each kernel emulates the GPU's
// policy: it widens its 16-bit inputs to f32, runs the f32 kernel of the same name, and rounds
// what it stores back to 16 bits (core/half.h, round to nearest even). Slower than f32, exact
// in what it keeps: every stored value is what a 16-bit tensor can hold.
#include "core/half.h"
#include "kernels/cpu/amp.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// y (f32) += x widened, in chunks over the threads, x widened a piece at a time into a buffer on
// the stack (in the L1 cache): one pass, where widening x and y into scratch, adding and copying
// y back took four (three of them copies of y: an f32 "widened" is a memcpy), each its own
// parallel loop with a wake-up of the other thread. The same sums, y[i] + x[i], the same bits.
static void accumulate_f32(float *y, const void *x, cg_dtype xtype, int64_t n) {
    enum { PIECE = 1024 }; // values widened at a time: 4 KiB of f32
    const int64_t chunk = 16 * PIECE;
    size_t size = cg_dtype_size(xtype);
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t b = 0; b < n; b += chunk) {
        float v[PIECE];
        int64_t end = b + chunk < n ? b + chunk : n;
        for (int64_t p = b; p < end; p += PIECE) {
            int64_t len = end - p < PIECE ? end - p : PIECE;
            half_widen_into_cpu(v, (const char *)x + (size_t)p * size, xtype, len); // small: on this thread
            for (int64_t i = 0; i < len; i++) y[p + i] += v[i];
        }
    }
}

static void cast_cpu(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
    if (!accumulate && ytype == CG_F32) {
        half_widen_into_cpu((float *)y, x, xtype, n);
        return;
    }
    if (!accumulate && xtype == CG_F32) { // f32 master weights to 16 bits: rounded straight from x
        half_store_cpu(y, ytype, (const float *)x, n);
        return;
    }
    if (ytype == CG_F32) { // accumulate: a 16-bit gradient into an f32 one
        accumulate_f32((float *)y, x, xtype, n);
        return;
    }
    // A 16-bit y from a 16-bit x: reshape's copy of its 16-bit input (core/ops_conv.c: the
    // tutorial CNN's flatten, 401,408 values) and, accumulating, its gradient. y = round(x) or
    // round(y + x), both widened: piece by piece through two stack buffers, in one loop over
    // the threads, where whole-array passes took two loops (copy) and four (accumulate), each a
    // wake-up of the other thread. The same widening, sum and rounding: the same bits.
    enum { PIECE = 1024 };
    const int64_t chunk = 16 * PIECE;
    size_t xs = cg_dtype_size(xtype), ys = cg_dtype_size(ytype);
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK) schedule(dynamic) // as adam_step_cpu (cpu.h)
    for (int64_t b = 0; b < n; b += chunk) {
        float v[PIECE], acc[PIECE];
        int64_t end = b + chunk < n ? b + chunk : n;
        for (int64_t p = b; p < end; p += PIECE) {
            int64_t len = end - p < PIECE ? end - p : PIECE;
            char *home = (char *)y + (size_t)p * ys;
            half_widen_into_cpu(v, (const char *)x + (size_t)p * xs, xtype, len); // small: on this thread
            if (accumulate) {
                half_widen_into_cpu(acc, home, ytype, len);
                for (int64_t i = 0; i < len; i++) acc[i] += v[i];
                half_store_cpu(home, ytype, acc, len);
            } else {
                half_store_cpu(home, ytype, v, len);
            }
        }
    }
}

// ---- memory formats ------------------------------------------------------------------------------
// The CPU's kernels are NCHW: a channels-last tensor is copied to NCHW, the NCHW kernel runs, and
// what it writes is copied back. Its results are then those of the same tensors in NCHW, bit for
// bit, which lets the tests compare the two formats exactly on the CPU (and the GPU against it).

// y = x (N, C, HW) moved between NCHW and (N, HW, C); elements of `size` bytes (2 or 4).
static void transpose_cpu(void *y, const void *x, size_t size, int64_t N, int64_t C, int64_t HW, bool to_channels_last) {
#pragma omp parallel for if (N * C * HW >= CG_OMP_MIN_WORK)
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) {
                int64_t nchw = (n * C + c) * HW + p, nhwc = (n * HW + p) * C + c;
                int64_t to = to_channels_last ? nhwc : nchw, from = to_channels_last ? nchw : nhwc;
                memcpy((char *)y + to * size, (const char *)x + from * size, size);
            }
}

static void memory_format_copy_cpu(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                                   bool to_channels_last, bool accumulate) {
    int64_t n = N * C * HW;
    size_t size = cg_dtype_size(dtype);
    if (!accumulate) {
        transpose_cpu(y, x, size, N, C, HW, to_channels_last);
        return;
    }
    float *moved = half_scratch_cpu(8, n), *acc = half_widen_cpu(9, y, dtype, n);
    transpose_cpu(moved, half_widen_cpu(10, x, dtype, n), sizeof(float), N, C, HW, to_channels_last);
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) acc[i] += moved[i];
    half_store_cpu(y, dtype, acc, n);
}

// An f32 copy of x in NCHW, x stored channels-last when cl (scratch `slot` and slot + 8).
static float *widen_nchw(int slot, const void *x, cg_dtype dtype, int64_t N, int64_t C, int64_t HW, bool cl) {
    float *v = half_widen_cpu(slot, x, dtype, N * C * HW);
    if (!cl || v == NULL) return v;
    float *t = half_scratch_cpu(slot + 8, N * C * HW);
    transpose_cpu(t, v, sizeof(float), N, C, HW, false);
    return t;
}

// A gradient's f32 starting values (NCHW) in scratch `slot`: its old values when the kernel adds
// to it, zeros when it writes it (accumulate false: its contents are not to be read); NULL when
// dx is. Adding to zeros gives the bits that writing gives.
static float *gradient_start(int slot, const void *dx, cg_dtype dtype, int64_t N, int64_t C, int64_t HW, bool cl,
                             bool accumulate) {
    if (dx == NULL || accumulate) return widen_nchw(slot, dx, dtype, N, C, HW, cl);
    float *z = half_scratch_cpu(slot, N * C * HW);
    memset(z, 0, (size_t)(N * C * HW) * sizeof *z);
    return z;
}

// v (NCHW f32) rounded into home, stored channels-last when cl (scratch `slot`).
static void store_from_nchw(int slot, void *home, cg_dtype dtype, float *v, int64_t N, int64_t C, int64_t HW, bool cl) {
    if (home == NULL) return;
    if (cl) {
        float *t = half_scratch_cpu(slot, N * C * HW);
        transpose_cpu(t, v, sizeof(float), N, C, HW, true);
        v = t;
    }
    half_store_cpu(home, dtype, v, N * C * HW);
}

// A 16-bit NCHW copy (malloc'd) of x stored channels-last, or x itself.
static void *copy16_nchw(const void *x, int64_t N, int64_t C, int64_t HW, bool cl) {
    if (!cl || x == NULL) return (void *)x;
    void *t = cg_xmalloc((size_t)(N * C * HW) * 2);
    transpose_cpu(t, x, 2, N, C, HW, false);
    return t;
}

// ---- products and convolutions -----------------------------------------------------------------

static void add_bias_backward_h_cpu(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols) {
    float *dyf = half_widen_cpu(0, dy, dtype, rows * cols), *db = half_widen_cpu(1, dbias, dtype, cols);
    add_bias_backward_cpu(db, dyf, rows, cols);
    half_store_cpu(dbias, dtype, db, cols);
}

void conv2d_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                 int64_t P, int64_t Q) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_forward_hw(y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    float *xf = half_widen_cpu(0, x, dtype, N * C * H * W), *wf = half_widen_cpu(1, w, dtype, K * C * R * S), *bf = half_widen_cpu(2, bias, dtype, K);
    float *yf = half_scratch_cpu(3, N * K * P * Q);
    conv2d_forward_cpu(yf, xf, wf, bf, N, C, H, W, K, R, S, stride, pad, P, Q);
    half_store_cpu(y, dtype, yf, N * K * P * Q);
}

void conv2d_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                                  const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                  int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_backward_hw(dx, dw, dbias, dy, x, w, N, C, H, W, K, R, S, stride, pad, P, Q))
        return; // bf16_ops.c: on AMX or AVX512-BF16
    float *dyf = half_widen_cpu(0, dy, dtype, N * K * P * Q), *xf = half_widen_cpu(1, x, dtype, N * C * H * W);
    float *wf = half_widen_cpu(2, w, dtype, K * C * R * S);
    float *dxf = half_widen_cpu(3, dx, dtype, N * C * H * W), *dwf = half_widen_cpu(4, dw, dtype, K * C * R * S);
    float *dbf = half_widen_cpu(5, dbias, dtype, K);
    conv2d_backward_cpu(dxf, dwf, dbf, dyf, xf, wf, N, C, H, W, K, R, S, stride, pad, P, Q, true);
    half_store_cpu(dx, dtype, dxf, N * C * H * W);
    half_store_cpu(dw, dtype, dwf, K * C * R * S);
    half_store_cpu(dbias, dtype, dbf, K);
}

// Through 16-bit NCHW copies of what is stored channels-last (see "memory formats" above); the
// weights too when w_cl: (K, R, S, C) is the channels-last form of a (K, C, RS) tensor.
static void conv2d_forward_cl_cpu(cg_dtype dtype, void *y, bool y_cl, const void *x, bool x_cl, const void *w,
                                  bool w_cl, void *w_nhwc, const void *bias, int64_t N, int64_t C, int64_t H,
                                  int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                                  int64_t Q) {
    (void)w_nhwc; // the NCHW kernels read w as it is
    void *xn = copy16_nchw(x, N, C, H * W, x_cl), *yn = y_cl ? cg_xmalloc((size_t)(N * K * P * Q) * 2) : y;
    void *wn = copy16_nchw(w, K, C, R * S, w_cl);
    conv2d_forward_h_cpu(dtype, yn, xn, wn, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
    if (y_cl) transpose_cpu(y, yn, 2, N, K, P * Q, true), free(yn);
    if (xn != x) free(xn);
    if (wn != w) free(wn);
}

static void conv2d_backward_cl_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, bool dy_cl,
                                   const void *x, bool x_cl, const void *w, bool w_cl, const void *w_nhwc, int64_t N,
                                   int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                   int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    (void)w_nhwc;
    if (dx && !accumulate) memset(dx, 0, (size_t)(N * C * H * W) * 2); // then added to, as the NCHW row does
    void *dyn = copy16_nchw(dy, N, K, P * Q, dy_cl), *xn = copy16_nchw(x, N, C, H * W, x_cl);
    void *dxn = copy16_nchw(dx, N, C, H * W, x_cl); // dx is stored as x, dw as w
    void *wn = copy16_nchw(w, K, C, R * S, w_cl), *dwn = copy16_nchw(dw, K, C, R * S, w_cl);
    conv2d_backward_h_cpu(dtype, dxn, dwn, dbias, dyn, xn, wn, N, C, H, W, K, R, S, stride, pad, P, Q);
    if (dxn != dx) transpose_cpu(dx, dxn, 2, N, C, H * W, true), free(dxn);
    if (dwn != dw) transpose_cpu(dw, dwn, 2, K, C, R * S, true), free(dwn);
    if (dyn != dy) free(dyn);
    if (xn != x) free(xn);
    if (wn != w) free(wn);
}

// ---- pooling and ReLU --------------------------------------------------------------------------

static void max_pool2d_forward_h_cpu(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                                     int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q,
                                     bool channels_last) {
    float *xf = half_widen_cpu(0, x, dtype, N * C * H * W), *yf = half_scratch_cpu(1, N * C * P * Q);
    if (!channels_last) {
        max_pool2d_forward_cpu(yf, argmax, xf, N, C, H, W, kernel, stride, P, Q);
    } else { // the same windows in the same scan order, indices into x as stored (N, H, W, C)
#pragma omp parallel for if (N * C * P * Q >= CG_OMP_MIN_WORK)
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++)
                for (int64_t q = 0; q < Q; q++)
                    for (int64_t c = 0; c < C; c++) {
                        int64_t best = ((n * H + p * stride) * W + q * stride) * C + c;
                        for (int64_t r = 0; r < kernel; r++)
                            for (int64_t s = 0; s < kernel; s++) {
                                int64_t j = ((n * H + p * stride + r) * W + q * stride + s) * C + c;
                                if (xf[j] > xf[best]) best = j;
                            }
                        int64_t i = ((n * P + p) * Q + q) * C + c;
                        yf[i] = xf[best];
                        argmax[i] = (int32_t)best;
                    }
    }
    half_store_cpu(y, dtype, yf, N * C * P * Q); // a maximum of 16-bit values is one of them: exact
}

// dx[argmax[i]] += dy[i] for 16-bit dx: each sum rounded once, as the GPU's 16-bit atomics do.
// One thread, in order: the same for windows that overlap or not, in either layout (argmax
// indexes x as stored).
static void max_pool2d_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t N,
                                      int64_t C, int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P,
                                      int64_t Q, bool channels_last, bool accumulate) {
    (void)kernel, (void)stride, (void)channels_last;
    if (!accumulate) memset(dx, 0, (size_t)(N * C * H * W) * 2);
    int64_t n = N * C * P * Q;
    uint16_t *d = (uint16_t *)dx;
    const uint16_t *g = (const uint16_t *)dy;
    for (int64_t i = 0; i < n; i++) {
        float sum = dtype == CG_F16 ? cg_f16_to_f32(d[argmax[i]]) + cg_f16_to_f32(g[i])
                                    : cg_bf16_to_f32(d[argmax[i]]) + cg_bf16_to_f32(g[i]);
        d[argmax[i]] = dtype == CG_F16 ? cg_f32_to_f16(sum) : cg_f32_to_bf16(sum);
    }
}

// Global average pooling in 16 bits: the f32 kernels on widened NCHW copies (kernels/cpu/pool.c),
// each stored value rounded once. The gradient starts from dx's old values (or zeros), so that the
// f32 kernel's dx += dy / HW and the rounding give round(dx + dy / HW), as the GPU's kernel.
static void global_avg_pool_forward_h_cpu(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                                          bool channels_last) {
    float *xf = widen_nchw(0, x, dtype, N, C, HW, channels_last), *yf = half_scratch_cpu(1, N * C);
    global_avg_pool_forward_cpu(yf, xf, N * C, HW);
    half_store_cpu(y, dtype, yf, N * C);
}

static void global_avg_pool_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, int64_t N, int64_t C, int64_t HW,
                                           bool channels_last, bool accumulate) {
    float *dyf = half_widen_cpu(0, dy, dtype, N * C), *dxf = gradient_start(1, dx, dtype, N, C, HW, channels_last, accumulate);
    global_avg_pool_backward_cpu(dxf, dyf, N * C, HW);
    store_from_nchw(2, dx, dtype, dxf, N, C, HW, channels_last);
}

// ReLU on 16-bit values needs no widening: a value is kept or replaced by +0, and its sign is
// its top bit in both formats (negative values and -0 become +0).
static void relu_forward_h_cpu(cg_dtype dtype, void *y, const void *x, int64_t n) {
    (void)dtype; // fp16 and bf16 both keep the sign in bit 15
    const uint16_t *in = (const uint16_t *)x;
    uint16_t *out = (uint16_t *)y;
    for (int64_t i = 0; i < n; i++) out[i] = (in[i] & 0x8000u) ? 0 : in[i];
}

static void relu_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n, bool accumulate) {
    float *dxf = gradient_start(0, dx, dtype, 1, 1, n, false, accumulate), *dyf = half_widen_cpu(1, dy, dtype, n), *yf = half_widen_cpu(2, y, dtype, n);
    relu_backward_cpu(dxf, dyf, yf, n);
    half_store_cpu(dx, dtype, dxf, n);
}

// ---- batch norm and GELU -------------------------------------------------------------------------
// The f32 kernels on widened copies; a gradient is widened with its old value, so that the f32
// kernel's dx += ... and the rounding make dx = round(dx + gradient), as the GPU's kernels do.
// Batch norm on bf16 NCHW tensors (with ReLU, and the block's end) goes to norm.c's kernels
// instead, which widen as they read and round as they store: the same bits in two passes each way.

static void batch_norm_forward_h_cpu(cg_dtype dtype, void *y, float *stats, float *running_mean, float *running_var,
                                     const void *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                                     int64_t HW, float eps, float momentum, bool training, bool channels_last) {
    if (dtype == CG_BF16 && !channels_last) { // without the copies (norm.c), the same bits
        batch_norm_forward_bf16_cpu(y, stats, running_mean, running_var, x, NULL, gamma, beta, N, C, HW, eps, momentum,
                                    training, false);
        return;
    }
    float *xf = widen_nchw(0, x, dtype, N, C, HW, channels_last), *yf = half_scratch_cpu(1, N * C * HW);
    batch_norm_forward_cpu(yf, stats, running_mean, running_var, xf, gamma, beta, N, C, HW, eps, momentum, training);
    store_from_nchw(9, y, dtype, yf, N, C, HW, channels_last);
}

static void batch_norm_backward_h_cpu(cg_dtype dtype, void *dx, float *dgamma, float *dbeta, const void *dy,
                                      const void *x, const float *gamma, const float *stats, int64_t N, int64_t C,
                                      int64_t HW, bool training, bool channels_last, bool accumulate) {
    if (dtype == CG_BF16 && !channels_last) {
        batch_norm_backward_bf16_cpu(dx, NULL, dgamma, dbeta, dy, NULL, x, gamma, NULL, stats, N, C, HW, training, 0,
                                     accumulate);
        return;
    }
    float *dyf = widen_nchw(0, dy, dtype, N, C, HW, channels_last), *xf = widen_nchw(1, x, dtype, N, C, HW, channels_last);
    float *dxf = gradient_start(2, dx, dtype, N, C, HW, channels_last, accumulate);
    batch_norm_backward_cpu(dxf, dgamma, dbeta, dyf, xf, gamma, stats, N, C, HW, training);
    store_from_nchw(3, dx, dtype, dxf, N, C, HW, channels_last);
}

// Batch norm then GELU or ReLU: the f32 kernels on copies, the batch norm's output kept in f32
// between them; the backward computes it again from x with the forward's formula (kernels/cpu/norm.c).
// z: a residual added to the batch norm's output before the activation (NULL: none), in f32 too.
static void batch_norm_act_forward_z(cg_dtype dtype, cg_activation act, void *y, float *stats, float *running_mean,
                                     float *running_var, const void *x, const void *z, const float *gamma,
                                     const float *beta, int64_t N, int64_t C, int64_t HW, float eps, float momentum,
                                     bool training, bool channels_last) {
    int64_t n = N * C * HW;
    if (dtype == CG_BF16 && !channels_last && act == CG_ACT_RELU) { // without the copies (norm.c), the same bits
        batch_norm_forward_bf16_cpu(y, stats, running_mean, running_var, x, z, gamma, beta, N, C, HW, eps, momentum,
                                    training, true);
        return;
    }
    bool direct = dtype == CG_F32 && !channels_last; // f32 NCHW: the tensors themselves, no copies
    const float *xf = direct ? (const float *)x : widen_nchw(0, x, dtype, N, C, HW, channels_last);
    float *bn = half_scratch_cpu(1, n), *yf = direct ? (float *)y : half_scratch_cpu(2, n);
    batch_norm_forward_cpu(bn, stats, running_mean, running_var, xf, gamma, beta, N, C, HW, eps, momentum, training);
    if (z != NULL) {
        const float *zf = direct ? (const float *)z : widen_nchw(3, z, dtype, N, C, HW, channels_last);
        for (int64_t i = 0; i < n; i++) bn[i] += zf[i];
    }
    if (act == CG_ACT_GELU)
        gelu_forward_cpu(yf, bn, n, false);
    else
        relu_forward_cpu(yf, bn, n);
    if (!direct) store_from_nchw(9, y, dtype, yf, N, C, HW, channels_last);
}

static void batch_norm_act_forward_cpu(cg_dtype dtype, cg_activation act, void *y, float *stats, float *running_mean,
                                       float *running_var, const void *x, const float *gamma, const float *beta,
                                       int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training,
                                       bool channels_last) {
    batch_norm_act_forward_z(dtype, act, y, stats, running_mean, running_var, x, NULL, gamma, beta, N, C, HW, eps,
                             momentum, training, channels_last);
}

static void batch_norm_add_relu_forward_cpu(cg_dtype dtype, void *y, float *stats, float *running_mean,
                                            float *running_var, const void *x, const void *z, const float *gamma,
                                            const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                            float momentum, bool training, bool channels_last) {
    batch_norm_act_forward_z(dtype, CG_ACT_RELU, y, stats, running_mean, running_var, x, z, gamma, beta, N, C, HW, eps,
                             momentum, training, channels_last);
}

static void batch_norm_act_backward_cpu(cg_dtype dtype, cg_activation act, void *dx, float *dgamma, float *dbeta,
                                        const void *dy, const void *x, const float *gamma, const float *beta,
                                        const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                        bool channels_last, bool accumulate) {
    int64_t n = N * C * HW;
    if (dtype == CG_BF16 && !channels_last && act == CG_ACT_RELU) {
        batch_norm_backward_bf16_cpu(dx, NULL, dgamma, dbeta, dy, NULL, x, gamma, beta, stats, N, C, HW, training, 1,
                                     accumulate);
        return;
    }
    bool direct = dtype == CG_F32 && !channels_last;
    const float *dyf = direct ? (const float *)dy : widen_nchw(0, dy, dtype, N, C, HW, channels_last);
    const float *xf = direct ? (const float *)x : widen_nchw(1, x, dtype, N, C, HW, channels_last);
    if (direct && dx && !accumulate) memset(dx, 0, (size_t)n * sizeof(float));
    float *dxf = direct ? (float *)dx : gradient_start(2, dx, dtype, N, C, HW, channels_last, accumulate);
    float *bn = half_scratch_cpu(3, n), *dbn = half_scratch_cpu(4, n);
    batch_norm_forward_from_stats_cpu(bn, xf, gamma, beta, stats, N, C, HW); // the batch norm's output again
    memset(dbn, 0, (size_t)n * sizeof *dbn);
    if (act == CG_ACT_GELU) // the batch norm's output gradient
        gelu_backward_cpu(dbn, dyf, bn, n, false);
    else
        relu_backward_cpu(dbn, dyf, bn, n); // (bn > 0 where relu(bn) > 0)
    batch_norm_backward_cpu(dxf, dgamma, dbeta, dbn, xf, gamma, stats, N, C, HW, training);
    if (!direct) store_from_nchw(5, dx, dtype, dxf, N, C, HW, channels_last);
}

// The block's end backward (core/kernels.h): bf16 NCHW in two passes without copies (norm.c);
// otherwise ReLU's row then batch norm's, as the tape runs them where this row is missing.
static void batch_norm_add_relu_backward_cpu(cg_dtype dtype, void *dx, void *g, float *dgamma, float *dbeta,
                                             const void *dy, const void *y, const void *x, const float *gamma,
                                             const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                             bool channels_last, bool accumulate) {
    if (dtype == CG_BF16 && !channels_last) {
        batch_norm_backward_bf16_cpu(dx, g, dgamma, dbeta, dy, y, x, gamma, NULL, stats, N, C, HW, training, 2,
                                     accumulate);
        return;
    }
    relu_backward_h_cpu(dtype, g, dy, y, N * C * HW, false);
    batch_norm_backward_h_cpu(dtype, dx, dgamma, dbeta, g, x, gamma, stats, N, C, HW, training, channels_last,
                              accumulate);
}

static void gelu_forward_h_cpu(cg_dtype dtype, void *y, const void *x, int64_t n, bool tanh_approx) {
    float *xf = half_widen_cpu(0, x, dtype, n), *yf = half_scratch_cpu(1, n);
    gelu_forward_cpu(yf, xf, n, tanh_approx);
    half_store_cpu(y, dtype, yf, n);
}

static void gelu_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const void *x, int64_t n, bool tanh_approx,
                                bool accumulate) {
    float *dyf = half_widen_cpu(0, dy, dtype, n), *xf = half_widen_cpu(1, x, dtype, n);
    float *dxf = gradient_start(2, dx, dtype, 1, 1, n, false, accumulate);
    gelu_backward_cpu(dxf, dyf, xf, n, tanh_approx);
    half_store_cpu(dx, dtype, dxf, n);
}

static void add_forward_h_cpu(cg_dtype dtype, void *y, const void *a, const void *b, int64_t n) {
    float *af = half_widen_cpu(0, a, dtype, n), *bf = half_widen_cpu(1, b, dtype, n);
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) af[i] += bf[i];
    half_store_cpu(y, dtype, af, n);
}

// ---- the loss scaler ---------------------------------------------------------------------------
// One pass over memory instead of two: the check rides along with the multiplication.

// Returns 1 if any of g[begin, end) was inf or NaN; multiplies them by inv_scale.
static int unscale_check_range(float *g, float inv_scale, int64_t begin, int64_t end) {
    int bad = 0;
    for (int64_t i = begin; i < end; i++) {
        float v = g[i];
        bad |= !isfinite(v); // inf, -inf or NaN: exponent bits all ones
        g[i] = v * inv_scale;
    }
    return bad;
}

void unscale_check_cpu(float *g, float *found_inf, const float *inv_scale, int64_t n) {
    float scale_by = *inv_scale;
    int bad = 0;
    if (scale_by == 1.0f) {
        // Nothing to unscale (a scale of 1, as bf16 runs use): only look.
        for (int64_t i = 0; i < n; i++)
            bad |= !isfinite(g[i]);
    } else if (n < CG_OMP_MIN_WORK) {
        bad = unscale_check_range(g, scale_by, 0, n);
    } else {
#pragma omp parallel for reduction(| : bad)
        for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK)
            bad |= unscale_check_range(g, scale_by, b, b + CG_OMP_MIN_WORK < n ? b + CG_OMP_MIN_WORK : n);
    }
    if (bad)
        *found_inf = 1.0f;
}


// g += h (widened; h is NULL when the gradients are all f32), the check, and the unscale, in one
// pass over memory shared out to the threads, a piece at a time: h widened into a buffer on the
// stack (in the L1 cache), added, looked at, multiplied. The per-step call covers the whole flat
// gradient (the tutorial CNN's 421,642 values), which three loops, two on one thread, went over
// one after the other. Each value goes through the same operations in the same order: the same
// bits, and the same verdict (an OR over the pieces).
// The slices of the 16-bit block at `block` (values of `size` bytes) moved between channels-last
// and (K, C, RS), in place (through a copy of each slice).
static void transpose_slices(void *block, size_t size, const cg_amp_cl_slice *slices, int count, bool to_cl) {
    for (int i = 0; i < count; i++) {
        const cg_amp_cl_slice *s = &slices[i];
        size_t bytes = (size_t)(s->K * s->C * s->RS) * size;
        void *at = (char *)block + (size_t)s->offset * size, *copy = cg_xmalloc(bytes);
        memcpy(copy, at, bytes);
        transpose_cpu(at, copy, size, s->K, s->C, s->RS, to_cl);
        free(copy);
    }
}

static void amp_refresh_cpu(void *low, cg_dtype dtype, const float *values, int64_t n, const cg_amp_cl_slice *slices,
                            int count) {
    cast_cpu(low, dtype, values, CG_F32, n, false);
    transpose_slices(low, cg_dtype_size(dtype), slices, count, true);
}

static void amp_unscale_check_cpu(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n,
                                  const cg_amp_cl_slice *slices, int count) {
    void *h_nchw = NULL; // h with its channels-last slices put back in (K, C, RS) order
    if (h && count > 0) {
        h_nchw = cg_xmalloc((size_t)n * cg_dtype_size(dtype));
        memcpy(h_nchw, h, (size_t)n * cg_dtype_size(dtype));
        transpose_slices(h_nchw, cg_dtype_size(dtype), slices, count, false);
        h = h_nchw;
    }
    enum { PIECE = 1024 }; // values widened at a time: 4 KiB of f32
    const int64_t chunk = 16 * PIECE;
    float inv_scale = 1.0f / amp[CG_AMP_SCALE];
    bool unscale = inv_scale != 1.0f; // a scale of 1 (bf16 runs): only look
    size_t size = h ? cg_dtype_size(dtype) : 0;
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n >= CG_OMP_MIN_WORK) schedule(dynamic) // as adam_step_cpu
    for (int64_t b = 0; b < n; b += chunk) {
        float hf[PIECE];
        int64_t end = b + chunk < n ? b + chunk : n;
        for (int64_t p = b; p < end; p += PIECE) {
            int64_t len = end - p < PIECE ? end - p : PIECE;
            float *v = g + p;
            if (h) { // a piece this small is widened on this thread (half_widen_into_cpu)
                half_widen_into_cpu(hf, (const char *)h + (size_t)p * size, dtype, len);
                for (int64_t i = 0; i < len; i++) v[i] += hf[i];
            }
            if (unscale)
                bad |= unscale_check_range(v, inv_scale, 0, len);
            else
                for (int64_t i = 0; i < len; i++) bad |= !isfinite(v[i]);
        }
    }
    if (bad) amp[CG_AMP_FOUND_INF] = 1.0f;
    free(h_nchw);
}

static void amp_update_scale_cpu(float *amp, float growth_factor, float backoff_factor, int growth_interval) {
    amp[CG_AMP_STEPS] += 1.0f;
    if (amp[CG_AMP_FOUND_INF] != 0.0f) {
        amp[CG_AMP_SCALE] *= backoff_factor;
        amp[CG_AMP_GROWTH] = 0.0f;
        amp[CG_AMP_SKIPPED] += 1.0f;
        return;
    }
    amp[CG_AMP_GROWTH] += 1.0f;
    if (amp[CG_AMP_GROWTH] >= (float)growth_interval) {
        float grown = amp[CG_AMP_SCALE] * growth_factor;
        if (isfinite(grown)) amp[CG_AMP_SCALE] = grown; // only while it stays finite, as PyTorch
        amp[CG_AMP_GROWTH] = 0.0f;
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void amp_register_cpu(cg_kernels *k) {
    k->cast = cast_cpu;
    k->add_bias_backward_h = add_bias_backward_h_cpu;
    k->conv2d_forward_h = conv2d_forward_h_cpu;
    k->conv2d_backward_h = conv2d_backward_h_cpu;
    k->conv2d_forward_cl = conv2d_forward_cl_cpu;
    k->conv2d_backward_cl = conv2d_backward_cl_cpu;
    k->memory_format_copy = memory_format_copy_cpu;
    k->max_pool2d_forward_h = max_pool2d_forward_h_cpu;
    k->max_pool2d_backward_h = max_pool2d_backward_h_cpu;
    k->global_avg_pool_forward_h = global_avg_pool_forward_h_cpu;
    k->global_avg_pool_backward_h = global_avg_pool_backward_h_cpu;
    k->relu_forward_h = relu_forward_h_cpu;
    k->relu_backward_h = relu_backward_h_cpu;
    k->batch_norm_forward_h = batch_norm_forward_h_cpu;
    k->batch_norm_backward_h = batch_norm_backward_h_cpu;
    k->batch_norm_act_forward = batch_norm_act_forward_cpu;
    k->batch_norm_act_backward = batch_norm_act_backward_cpu;
    k->batch_norm_add_relu_forward = batch_norm_add_relu_forward_cpu;
    k->batch_norm_add_relu_backward = batch_norm_add_relu_backward_cpu;
    k->gelu_forward_h = gelu_forward_h_cpu;
    k->gelu_backward_h = gelu_backward_h_cpu;
    k->add_forward_h = add_forward_h_cpu;
    k->amp_unscale_check = amp_unscale_check_cpu;
    k->amp_refresh = amp_refresh_cpu;
    k->amp_update_scale = amp_update_scale_cpu;
}

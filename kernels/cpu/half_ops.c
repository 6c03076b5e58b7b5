// half_ops.c: the CPU's 16-bit kernels (the _h rows of core/kernels.h) and the cast kernel.
// The CPU has no fp16 / bf16 arithmetic that cgrad uses, so each kernel emulates the GPU's
// policy: it widens its 16-bit inputs to f32, runs the f32 kernel of the same name, and rounds
// what it stores back to 16 bits (core/half.h, round to nearest even). Slower than f32, exact
// in what it keeps: every stored value is what a 16-bit tensor can hold.
#include "../../core/half.h"
#include "amp.h"
#include "bf16_gemm.h"
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- widening and rounding --------------------------------------------------------------------
// Large arrays are converted in blocks over the OpenMP threads; the f32 copies come from a few
// scratch buffers kept between calls (a fresh allocation of megabytes each call would spend
// more time in page faults than in the conversion). The host calls kernels one at a time, so
// one set of buffers serves every kernel.

// fp16 through the compiler's _Float16 where it has one (GCC 12 on x86-64: with F16C, one
// instruction per 8 values): the same IEEE rounding to nearest even as core/half.c's bit-by-bit
// version, which tests/test_half.c checks against _Float16 on every pattern, several times
// faster. Without _Float16, core/half.c.
#if defined(__FLT16_MAX__)
static void f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        _Float16 h;
        memcpy(&h, &src[i], 2);
        dst[i] = (float)h;
    }
}
static void f32_to_f16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        _Float16 h = (_Float16)src[i];
        memcpy(&dst[i], &h, 2);
    }
}
#else
#define f16_to_f32 cg_f16_to_f32_array
#define f32_to_f16 cg_f32_to_f16_array
#endif

static void widen_serial(float *dst, const void *src, cg_dtype t, int64_t n) {
    if (t == CG_F16)
        f16_to_f32(dst, (const uint16_t *)src, n);
    else if (t == CG_BF16)
        cg_bf16_to_f32_array(dst, (const uint16_t *)src, n);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

static void widen(float *dst, const void *src, cg_dtype t, int64_t n) {
    size_t size = cg_dtype_size(t);
    if (n < CG_OMP_MIN_WORK) {
        widen_serial(dst, src, t, n);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK / 4)
        widen_serial(dst + b, (const char *)src + (size_t)b * size, t, b + CG_OMP_MIN_WORK / 4 < n ? CG_OMP_MIN_WORK / 4 : n - b);
}

static void narrow_serial(void *dst, cg_dtype t, const float *src, int64_t n) {
    if (t == CG_F16)
        f32_to_f16((uint16_t *)dst, src, n);
    else if (t == CG_BF16)
        cg_f32_to_bf16_array((uint16_t *)dst, src, n);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

static void narrow(void *dst, cg_dtype t, const float *src, int64_t n) {
    size_t size = cg_dtype_size(t);
    if (n < CG_OMP_MIN_WORK) {
        narrow_serial(dst, t, src, n);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK / 4)
        narrow_serial((char *)dst + (size_t)b * size, t, src + b, b + CG_OMP_MIN_WORK / 4 < n ? CG_OMP_MIN_WORK / 4 : n - b);
}

// Scratch buffer `slot` (0 .. SLOTS-1) with room for n floats; its contents are undefined.
#define SLOTS 8
static float *scratch(int slot, int64_t n) {
    static float *buffers[SLOTS];
    static int64_t sizes[SLOTS];
    if (n > sizes[slot]) {
        free(buffers[slot]);
        buffers[slot] = cg_xmalloc((size_t)n * sizeof(float));
        sizes[slot] = n;
    }
    return buffers[slot];
}

// An f32 copy of n values of x in scratch buffer `slot` (NULL when x is NULL).
static float *wide(int slot, const void *x, cg_dtype t, int64_t n) {
    if (x == NULL) return NULL;
    float *w = scratch(slot, n > 0 ? n : 1);
    widen(w, x, t, n);
    return w;
}

// Round an f32 result into its 16-bit home (nothing when home is NULL).
static void store(void *home, cg_dtype t, const float *result, int64_t n) {
    if (home) narrow(home, t, result, n);
}

void cast_cpu(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
    if (!accumulate && ytype == CG_F32) {
        widen((float *)y, x, xtype, n);
        return;
    }
    float *v = wide(0, x, xtype, n);
    if (accumulate) {
        float *acc = wide(1, y, ytype, n);
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
        for (int64_t i = 0; i < n; i++) acc[i] += v[i];
        v = acc;
    }
    store(y, ytype, v, n);
}

// ---- products and convolutions -----------------------------------------------------------------

void gemm_h_cpu(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const void *A, const void *B, float beta, void *C) {
    if (dtype == CG_BF16 && cg_bf16_gemm_hw(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)) return; // bf16_ops.c
    float *a = wide(0, A, dtype, M * K), *b = wide(1, B, dtype, K * N);
    float *c = beta != 0.0f ? wide(2, C, dtype, M * N) : scratch(2, M * N);
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, a, b, beta, c);
    store(C, dtype, c, M * N);
}

void linear_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                          int64_t N, int64_t K) {
    if (dtype == CG_BF16 && cg_bf16_linear_forward_hw(y, x, w, bias, M, N, K)) return; // bf16_ops.c
    float *xf = wide(0, x, dtype, M * K), *wf = wide(1, w, dtype, N * K), *bf = wide(2, bias, dtype, N);
    float *yf = scratch(3, M * N);
    linear_forward_cpu(yf, xf, wf, bf, M, N, K);
    store(y, dtype, yf, M * N);
}

void add_bias_backward_h_cpu(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols) {
    float *dyf = wide(0, dy, dtype, rows * cols), *db = wide(1, dbias, dtype, cols);
    add_bias_backward_cpu(db, dyf, rows, cols);
    store(dbias, dtype, db, cols);
}

void conv2d_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_forward_hw(y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    float *xf = wide(0, x, dtype, N * C * H * W), *wf = wide(1, w, dtype, K * C * R * S), *bf = wide(2, bias, dtype, K);
    float *yf = scratch(3, N * K * P * Q);
    conv2d_forward_cpu(yf, xf, wf, bf, N, C, H, W, K, R, S, stride, pad, P, Q);
    store(y, dtype, yf, N * K * P * Q);
}

void conv2d_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                           const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_backward_hw(dx, dw, dbias, dy, x, w, N, C, H, W, K, R, S, stride, pad, P, Q))
        return; // bf16_ops.c: on AMX or AVX512-BF16
    float *dyf = wide(0, dy, dtype, N * K * P * Q), *xf = wide(1, x, dtype, N * C * H * W);
    float *wf = wide(2, w, dtype, K * C * R * S);
    float *dxf = wide(3, dx, dtype, N * C * H * W), *dwf = wide(4, dw, dtype, K * C * R * S);
    float *dbf = wide(5, dbias, dtype, K);
    conv2d_backward_cpu(dxf, dwf, dbf, dyf, xf, wf, N, C, H, W, K, R, S, stride, pad, P, Q);
    store(dx, dtype, dxf, N * C * H * W);
    store(dw, dtype, dwf, K * C * R * S);
    store(dbias, dtype, dbf, K);
}

// ---- pooling and ReLU --------------------------------------------------------------------------

void max_pool2d_forward_h_cpu(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    float *xf = wide(0, x, dtype, N * C * H * W), *yf = scratch(1, N * C * P * Q);
    max_pool2d_forward_cpu(yf, argmax, xf, N, C, H, W, kernel, stride, P, Q);
    store(y, dtype, yf, N * C * P * Q); // a maximum of 16-bit values is one of them: exact
}

// dx[argmax[i]] += dy[i] for 16-bit dx: each sum rounded once, as the GPU's 16-bit atomics do.
void max_pool2d_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t n) {
    uint16_t *d = (uint16_t *)dx;
    const uint16_t *g = (const uint16_t *)dy;
    for (int64_t i = 0; i < n; i++) {
        float sum = dtype == CG_F16 ? cg_f16_to_f32(d[argmax[i]]) + cg_f16_to_f32(g[i])
                                    : cg_bf16_to_f32(d[argmax[i]]) + cg_bf16_to_f32(g[i]);
        d[argmax[i]] = dtype == CG_F16 ? cg_f32_to_f16(sum) : cg_f32_to_bf16(sum);
    }
}

// ReLU on 16-bit values needs no widening: a value is kept or replaced by +0, and its sign is
// its top bit in both formats (negative values and -0 become +0).
void relu_forward_h_cpu(cg_dtype dtype, void *y, const void *x, int64_t n) {
    (void)dtype; // fp16 and bf16 both keep the sign in bit 15
    const uint16_t *in = (const uint16_t *)x;
    uint16_t *out = (uint16_t *)y;
    for (int64_t i = 0; i < n; i++) out[i] = (in[i] & 0x8000u) ? 0 : in[i];
}

void relu_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n) {
    float *dxf = wide(0, dx, dtype, n), *dyf = wide(1, dy, dtype, n), *yf = wide(2, y, dtype, n);
    relu_backward_cpu(dxf, dyf, yf, n);
    store(dx, dtype, dxf, n);
}

// ---- the loss scaler ---------------------------------------------------------------------------

void amp_unscale_check_h_cpu(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n) {
    if (h) {
        float *hf = wide(0, h, dtype, n);
        for (int64_t i = 0; i < n; i++) g[i] += hf[i];
    }
    float inv_scale = 1.0f / amp[CG_AMP_SCALE];
    amp_unscale_check_cpu(g, &amp[CG_AMP_FOUND_INF], &inv_scale, n);
}

void amp_update_scale_cpu(float *amp, float growth_factor, float backoff_factor, int growth_interval) {
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

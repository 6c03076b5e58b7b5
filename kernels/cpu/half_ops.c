// half_ops.c: the CPU's 16-bit kernels (the _h rows of core/kernels.h) and the cast kernel.
// The CPU has no fp16 / bf16 arithmetic that cgrad uses, so each kernel emulates the GPU's
// policy: it widens its 16-bit inputs to f32, runs the f32 kernel of the same name, and rounds
// what it stores back to 16 bits (core/half.h, round to nearest even). Slower than f32, exact
// in what it keeps: every stored value is what a 16-bit tensor can hold.
#include "../../core/half.h"
#include "amp.h"
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- widening and rounding --------------------------------------------------------------------

static void widen(float *dst, const void *src, cg_dtype t, int64_t n) {
    if (t == CG_F16)
        cg_f16_to_f32_array(dst, (const uint16_t *)src, n);
    else if (t == CG_BF16)
        cg_bf16_to_f32_array(dst, (const uint16_t *)src, n);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

static void narrow(void *dst, cg_dtype t, const float *src, int64_t n) {
    if (t == CG_F16)
        cg_f32_to_f16_array((uint16_t *)dst, src, n);
    else if (t == CG_BF16)
        cg_f32_to_bf16_array((uint16_t *)dst, src, n);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

// A new f32 copy of n values of x (NULL when x is NULL). Free with free().
static float *wide(const void *x, cg_dtype t, int64_t n) {
    if (x == NULL) return NULL;
    float *w = cg_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    widen(w, x, t, n);
    return w;
}

// Round an f32 result into its 16-bit home and free it (nothing when home is NULL).
static void store(void *home, cg_dtype t, float *result, int64_t n) {
    if (home) narrow(home, t, result, n);
    free(result);
}

void cast_cpu(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
    if (!accumulate && ytype == CG_F32) {
        widen((float *)y, x, xtype, n);
        return;
    }
    float *v = wide(x, xtype, n);
    if (accumulate) {
        float *acc = wide(y, ytype, n);
        for (int64_t i = 0; i < n; i++) acc[i] += v[i];
        free(v);
        v = acc;
    }
    store(y, ytype, v, n);
}

// ---- products and convolutions -----------------------------------------------------------------

void gemm_h_cpu(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const void *A, const void *B, float beta, void *C) {
    float *a = wide(A, dtype, M * K), *b = wide(B, dtype, K * N);
    float *c = beta != 0.0f ? wide(C, dtype, M * N) : cg_xcalloc((size_t)(M * N), sizeof(float));
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, a, b, beta, c);
    free(a), free(b);
    store(C, dtype, c, M * N);
}

void linear_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                          int64_t N, int64_t K) {
    float *xf = wide(x, dtype, M * K), *wf = wide(w, dtype, N * K), *bf = wide(bias, dtype, N);
    float *yf = cg_xmalloc((size_t)(M * N) * sizeof(float));
    linear_forward_cpu(yf, xf, wf, bf, M, N, K);
    free(xf), free(wf), free(bf);
    store(y, dtype, yf, M * N);
}

void add_bias_backward_h_cpu(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols) {
    float *dyf = wide(dy, dtype, rows * cols), *db = wide(dbias, dtype, cols);
    add_bias_backward_cpu(db, dyf, rows, cols);
    free(dyf);
    store(dbias, dtype, db, cols);
}

void conv2d_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q) {
    float *xf = wide(x, dtype, N * C * H * W), *wf = wide(w, dtype, K * C * R * S), *bf = wide(bias, dtype, K);
    float *yf = cg_xmalloc((size_t)(N * K * P * Q) * sizeof(float));
    conv2d_forward_cpu(yf, xf, wf, bf, N, C, H, W, K, R, S, stride, pad, P, Q);
    free(xf), free(wf), free(bf);
    store(y, dtype, yf, N * K * P * Q);
}

void conv2d_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                           const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    float *dyf = wide(dy, dtype, N * K * P * Q), *xf = wide(x, dtype, N * C * H * W);
    float *wf = wide(w, dtype, K * C * R * S);
    float *dxf = wide(dx, dtype, N * C * H * W), *dwf = wide(dw, dtype, K * C * R * S), *dbf = wide(dbias, dtype, K);
    conv2d_backward_cpu(dxf, dwf, dbf, dyf, xf, wf, N, C, H, W, K, R, S, stride, pad, P, Q);
    free(dyf), free(xf), free(wf);
    store(dx, dtype, dxf, N * C * H * W);
    store(dw, dtype, dwf, K * C * R * S);
    store(dbias, dtype, dbf, K);
}

// ---- pooling and ReLU --------------------------------------------------------------------------

void max_pool2d_forward_h_cpu(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    float *xf = wide(x, dtype, N * C * H * W), *yf = cg_xmalloc((size_t)(N * C * P * Q) * sizeof(float));
    max_pool2d_forward_cpu(yf, argmax, xf, N, C, H, W, kernel, stride, P, Q);
    free(xf);
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
    float *dxf = wide(dx, dtype, n), *dyf = wide(dy, dtype, n), *yf = wide(y, dtype, n);
    relu_backward_cpu(dxf, dyf, yf, n);
    free(dyf), free(yf);
    store(dx, dtype, dxf, n);
}

// ---- the loss scaler ---------------------------------------------------------------------------

void amp_unscale_check_h_cpu(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n) {
    if (h) {
        float *hf = wide(h, dtype, n);
        for (int64_t i = 0; i < n; i++) g[i] += hf[i];
        free(hf);
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

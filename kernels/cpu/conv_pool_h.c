// conv_pool_h.c: the tutorial CNN's block, conv2d + bias + ReLU + 2x2 max pooling, in 16 bits
// (fp16 or bf16 under autocast) on the CPU, as one op: the convolution through conv2d_forward_h
// (bf16 hardware or the emulated path, amp.c), then ReLU and pooling in one pass over its
// 16-bit output, with no widened copies; the backward builds the convolution's output gradient
// from the pooled one in one pass and hands it to conv2d_backward_h. The values and gradients
// are those of conv2d_forward_h, relu_forward_h, max_pool2d_forward_h in a row, bit for bit.
// It does not keep the convolution's output in the cache as the f32 kernel of conv.c does.
#include "core/half.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

// 16-bit pattern <-> f32 for fp16 and bf16 (core/half.h's rounding, faster forms where they exist).
static inline float widen16(cg_dtype t, uint16_t v) {
#if defined(__FLT16_MAX__)
    if (t == CG_F16) {
        _Float16 h;
        memcpy(&h, &v, 2);
        return (float)h;
    }
#else
    if (t == CG_F16) return cg_f16_to_f32(v);
#endif
    return cg_bf16_widen(v);
}

static inline uint16_t round16(cg_dtype t, float x) {
#if defined(__FLT16_MAX__)
    if (t == CG_F16) {
        _Float16 h = (_Float16)x;
        uint16_t v;
        memcpy(&v, &h, 2);
        return v;
    }
#else
    if (t == CG_F16) return cg_f32_to_f16(x);
#endif
    return cg_bf16_round(x);
}

// The host's buffer for the convolution's 16-bit output (or its gradient), kept between calls.
static uint16_t *conv_buffer(int64_t n) {
    static uint16_t *buffer;
    static int64_t size;
    if (size < n) {
        free(buffer);
        buffer = cg_xmalloc((size_t)n * sizeof *buffer);
        size = n;
    }
    return buffer;
}

// One plane: relu_forward_h (a negative value or -0 becomes +0: the sign bit), then the 2x2
// window's first maximum in scan order (max_pool2d_forward_h's widened comparison).
static void relu_pool_plane(cg_dtype t, uint16_t *y, uint8_t *where, const uint16_t *plane, int64_t P, int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    for (int64_t p = 0; p < P2; p++)
        for (int64_t q = 0; q < Q2; q++) {
            const uint16_t *top = plane + 2 * p * Q + 2 * q, *bottom = top + Q;
            uint16_t v[4] = {top[0], top[1], bottom[0], bottom[1]};
            uint16_t best = v[0] & 0x8000u ? 0 : v[0];
            int at = 0;
            float m = widen16(t, best);
            for (int j = 1; j < 4; j++) {
                uint16_t r = v[j] & 0x8000u ? 0 : v[j];
                float f = widen16(t, r);
                if (f > m) m = f, best = r, at = j;
            }
            y[p * Q2 + q] = best;
            where[p * Q2 + q] = (uint8_t)at;
        }
}

static void conv2d_relu_pool_forward_h_cpu(cg_dtype dtype, void *y, uint8_t *where, const void *x, const void *w,
                                    const void *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                    int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_relu_pool_forward_hw(y, where, x, w, bias, N, C, H, W, K, R, S, stride,
                                                                 pad, P, Q))
        return; // bf16_ops.c: on AMX or AVX512-BF16, pooled while in the cache
    int64_t pq = P * Q, pooled = (P / 2) * (Q / 2);
    uint16_t *conv = conv_buffer(N * K * pq);
    conv2d_forward_h_cpu(dtype, conv, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
#pragma omp parallel for if (N * K * pq >= CG_OMP_MIN_WORK)
    for (int64_t plane = 0; plane < N * K; plane++) {
        uint16_t *yp = (uint16_t *)y + plane * pooled;
        if (dtype == CG_BF16) { // the same results, in vector loops (bf16_ops.c)
            float col_max[2 * 64 * 64];
            int32_t won[2 * 64 * 64];
            if (pooled <= 64 * 64) {
                cg_bf16_relu_pool_plane(yp, where + plane * pooled, conv + plane * pq, P, Q, col_max, won);
                continue;
            }
        }
        relu_pool_plane(dtype, yp, where + plane * pooled, conv + plane * pq, P, Q);
    }
}

// The convolution's output gradient: at each window's maximum, where the ReLU let it through
// (y > 0), relu_backward_h's round(0 + dy); zero elsewhere (max_pool2d_backward_h adds dy to a
// zeroed gradient, relu_backward_h keeps it where y > 0). accumulate false: dx written (here
// zeroed, then added to).
static void conv2d_relu_pool_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *y,
                                     const uint8_t *where, const void *x, const void *w, int64_t N, int64_t C,
                                     int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                     int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    if (dtype == CG_BF16 && cg_bf16_conv2d_relu_pool_backward_hw(dx, dw, dbias, dy, y, where, x, w, N, C, H, W, K, R,
                                                                  S, stride, pad, P, Q, accumulate))
        return; // bf16_ops.c
    if (dx && !accumulate) memset(dx, 0, (size_t)(N * C * H * W) * sizeof(uint16_t));
    int64_t pq = P * Q, Q2 = Q / 2, pooled = (P / 2) * Q2;
    uint16_t *dconv = conv_buffer(N * K * pq);
    const uint16_t *g = (const uint16_t *)dy, *yv = (const uint16_t *)y;
#pragma omp parallel for if (N * K * pq >= CG_OMP_MIN_WORK)
    for (int64_t plane = 0; plane < N * K; plane++) {
        uint16_t *out = dconv + plane * pq;
        memset(out, 0, (size_t)pq * sizeof *out);
        for (int64_t i = 0; i < pooled; i++) {
            int64_t at = plane * pooled + i, p = i / Q2, q = i % Q2;
            if (!(widen16(dtype, yv[at]) > 0.0f)) continue;
            out[(2 * p + (where[at] >> 1)) * Q + 2 * q + (where[at] & 1)] = round16(dtype, 0.0f + widen16(dtype, g[at]));
        }
    }
    conv2d_backward_h_cpu(dtype, dx, dw, dbias, dconv, x, w, N, C, H, W, K, R, S, stride, pad, P, Q);
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void conv_pool_h_register_cpu(cg_kernels *k) {
    k->conv2d_relu_pool_forward_h = conv2d_relu_pool_forward_h_cpu;
    k->conv2d_relu_pool_backward_h = conv2d_relu_pool_backward_h_cpu;
}

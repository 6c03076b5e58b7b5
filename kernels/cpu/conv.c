// conv.c: the CPU kernels of convolution (im2col, col2im, layout moves, bias gradient) and of
// max pooling. The GEMM between im2col and the output is gemm.c's. OpenMP over channels or
// images, serial when small (see elementwise.c for why).
#include "cpu.h"

// Rows (c, r, s) of the columns for channels c0 .. c1 - 1.
static void im2col_channels(float *col, const float *x, int64_t c0, int64_t c1, int64_t N, int64_t C, int64_t H,
                            int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t npq = N * P * Q;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                float *row = col + ((c * R + r) * S + s) * npq;
                for (int64_t n = 0; n < N; n++) {
                    const float *plane = x + (n * C + c) * H * W;
                    for (int64_t p = 0; p < P; p++) {
                        int64_t h = p * stride - pad + r;
                        float *out = row + (n * P + p) * Q;
                        if (h < 0 || h >= H) {
                            for (int64_t q = 0; q < Q; q++) out[q] = 0.0f;
                            continue;
                        }
                        for (int64_t q = 0; q < Q; q++) {
                            int64_t w = q * stride - pad + s;
                            out[q] = (w >= 0 && w < W) ? plane[h * W + w] : 0.0f;
                        }
                    }
                }
            }
}

void im2col_cpu(float *col, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (C * R * S * N * P * Q < CG_OMP_MIN_WORK || C == 1) {
        im2col_channels(col, x, 0, C, N, C, H, W, R, S, stride, pad, P, Q);
        return;
    }
#pragma omp parallel for
    for (int64_t c = 0; c < C; c++) im2col_channels(col, x, c, c + 1, N, C, H, W, R, S, stride, pad, P, Q);
}

// The adjoint for channels c0 .. c1 - 1: different channels touch different pixels, so
// channels can run on different threads.
static void col2im_channels(float *dx, const float *col, int64_t c0, int64_t c1, int64_t N, int64_t C, int64_t H,
                            int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t npq = N * P * Q;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                const float *row = col + ((c * R + r) * S + s) * npq;
                for (int64_t n = 0; n < N; n++) {
                    float *plane = dx + (n * C + c) * H * W;
                    for (int64_t p = 0; p < P; p++) {
                        int64_t h = p * stride - pad + r;
                        if (h < 0 || h >= H) continue;
                        const float *in = row + (n * P + p) * Q;
                        for (int64_t q = 0; q < Q; q++) {
                            int64_t w = q * stride - pad + s;
                            if (w >= 0 && w < W) plane[h * W + w] += in[q];
                        }
                    }
                }
            }
}

void col2im_cpu(float *dx, const float *col, int64_t N, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (C * R * S * N * P * Q < CG_OMP_MIN_WORK || C == 1) {
        col2im_channels(dx, col, 0, C, N, C, H, W, R, S, stride, pad, P, Q);
        return;
    }
#pragma omp parallel for
    for (int64_t c = 0; c < C; c++) col2im_channels(dx, col, c, c + 1, N, C, H, W, R, S, stride, pad, P, Q);
}

static void from_gemm_image(float *y, const float *yk, const float *bias, int64_t n, int64_t N, int64_t K,
                            int64_t PQ) {
    for (int64_t k = 0; k < K; k++) {
        const float *src = yk + (k * N + n) * PQ;
        float *dst = y + (n * K + k) * PQ;
        float b = bias ? bias[k] : 0.0f;
        for (int64_t i = 0; i < PQ; i++) dst[i] = src[i] + b;
    }
}

void conv_output_from_gemm_cpu(float *y, const float *yk, const float *bias, int64_t N, int64_t K, int64_t PQ) {
    if (N * K * PQ < CG_OMP_MIN_WORK) {
        for (int64_t n = 0; n < N; n++) from_gemm_image(y, yk, bias, n, N, K, PQ);
        return;
    }
#pragma omp parallel for
    for (int64_t n = 0; n < N; n++) from_gemm_image(y, yk, bias, n, N, K, PQ);
}

static void to_gemm_image(float *dyk, const float *dy, int64_t n, int64_t N, int64_t K, int64_t PQ) {
    for (int64_t k = 0; k < K; k++) {
        const float *src = dy + (n * K + k) * PQ;
        float *dst = dyk + (k * N + n) * PQ;
        for (int64_t i = 0; i < PQ; i++) dst[i] = src[i];
    }
}

void conv_output_to_gemm_cpu(float *dyk, const float *dy, int64_t N, int64_t K, int64_t PQ) {
    if (N * K * PQ < CG_OMP_MIN_WORK) {
        for (int64_t n = 0; n < N; n++) to_gemm_image(dyk, dy, n, N, K, PQ);
        return;
    }
#pragma omp parallel for
    for (int64_t n = 0; n < N; n++) to_gemm_image(dyk, dy, n, N, K, PQ);
}

void conv_bias_backward_cpu(float *dbias, const float *dy, int64_t N, int64_t K, int64_t PQ) {
    for (int64_t k = 0; k < K; k++) {
        double sum = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *src = dy + (n * K + k) * PQ;
            float part = 0.0f;
            for (int64_t i = 0; i < PQ; i++) part += src[i];
            sum += part;
        }
        dbias[k] += (float)sum;
    }
}

static void max_pool_plane(float *y, int32_t *argmax, const float *x, int64_t plane, int64_t H, int64_t W,
                           int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    const float *in = x + plane * H * W;
    for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < Q; q++) {
            int64_t best = (p * stride) * W + q * stride;
            for (int64_t r = 0; r < kernel; r++)
                for (int64_t s = 0; s < kernel; s++) {
                    int64_t i = (p * stride + r) * W + q * stride + s;
                    if (in[i] > in[best]) best = i; // strict: the first maximum wins, as PyTorch
                }
            y[(plane * P + p) * Q + q] = in[best];
            argmax[(plane * P + p) * Q + q] = (int32_t)(plane * H * W + best);
        }
}

void max_pool2d_forward_cpu(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    if (N * C * H * W < CG_OMP_MIN_WORK) {
        for (int64_t plane = 0; plane < N * C; plane++) max_pool_plane(y, argmax, x, plane, H, W, kernel, stride, P, Q);
        return;
    }
#pragma omp parallel for
    for (int64_t plane = 0; plane < N * C; plane++) max_pool_plane(y, argmax, x, plane, H, W, kernel, stride, P, Q);
}

void max_pool2d_backward_cpu(float *dx, const float *dy, const int32_t *argmax, int64_t n) {
    // Serial: with overlapping windows two outputs may add to the same input.
    for (int64_t i = 0; i < n; i++) dx[argmax[i]] += dy[i];
}

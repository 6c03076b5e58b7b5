// pool.c: the pooling ops on the CPU: max pooling (with the arg-max its backward needs), average
// pooling and global average pooling, forward and backward, one plane per OpenMP iteration. The
// fused conv + ReLU + max pooling block is conv.c's, not here.
#include "kernels/cpu/cpu.h"

#include <stdint.h>

static void max_pool_plane(float *y, int32_t *argmax, const float *x, int64_t plane, int64_t H, int64_t W,
                           int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    const float *in = x + plane * H * W;
    if (kernel == 2 && stride == 2) { // the common case, written out: two rows, two columns
        for (int64_t p = 0; p < P; p++) {
            const float *top = in + 2 * p * W, *bottom = top + W;
            float *out = y + (plane * P + p) * Q;
            int32_t *arg = argmax + (plane * P + p) * Q;
            int32_t row = (int32_t)(plane * H * W + 2 * p * W), below = row + (int32_t)W; // flat indices
            for (int32_t q = 0; q < (int32_t)Q; q++) {
                // The four values in PyTorch's scan order; a later one wins only if larger. No
                // branch: on real data which value wins is a coin toss, and a mispredicted
                // branch costs more than the whole window. `take` is all ones when the new
                // value wins, and picks its index with bit operations.
                float candidates[4] = {top[2 * q], top[2 * q + 1], bottom[2 * q], bottom[2 * q + 1]};
                int32_t indices[4] = {row + 2 * q, row + 2 * q + 1, below + 2 * q, below + 2 * q + 1};
                float v = candidates[0];
                int32_t best = indices[0];
                for (int j = 1; j < 4; j++) {
                    int32_t take = -(int32_t)(candidates[j] > v);
                    best = (best & ~take) | (indices[j] & take);
                    v = candidates[j] > v ? candidates[j] : v;
                }
                out[q] = v;
                arg[q] = best;
            }
        }
        return;
    }
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

static void max_pool2d_backward_cpu(float *dx, const float *dy, const int32_t *argmax, int64_t n) {
    // Serial: with overlapping windows two outputs may add to the same input.
    for (int64_t i = 0; i < n; i++) dx[argmax[i]] += dy[i];
}

// Average pooling (core/kernels.h). Backward gathers, for each input element, the windows that
// cover it: rows p with p stride <= h < p stride + kernel, likewise columns.
static void avg_pool2d_forward_cpu(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    float inv = 1.0f / (float)(kernel * kernel);
#pragma omp parallel for if (N * C * H * W >= CG_OMP_MIN_WORK)
    for (int64_t plane = 0; plane < N * C; plane++) {
        const float *xp = x + plane * H * W;
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                float sum = 0.0f;
                for (int64_t i = 0; i < kernel; i++)
                    for (int64_t j = 0; j < kernel; j++) sum += xp[(p * stride + i) * W + q * stride + j];
                y[(plane * P + p) * Q + q] = sum * inv;
            }
    }
}

// The windows along one axis that cover position h: [first, last], empty when first > last.
static void covering(int64_t h, int64_t kernel, int64_t stride, int64_t P, int64_t *first, int64_t *last) {
    int64_t lo = h - kernel + 1;
    *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    *last = h / stride < P - 1 ? h / stride : P - 1;
}

static void avg_pool2d_backward_cpu(float *dx, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W,
                                    int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    float inv = 1.0f / (float)(kernel * kernel);
#pragma omp parallel for if (N * C * H * W >= CG_OMP_MIN_WORK)
    for (int64_t plane = 0; plane < N * C; plane++) {
        const float *dyp = dy + plane * P * Q;
        for (int64_t h = 0; h < H; h++) {
            int64_t p0, p1;
            covering(h, kernel, stride, P, &p0, &p1);
            for (int64_t w = 0; w < W; w++) {
                int64_t q0, q1;
                covering(w, kernel, stride, Q, &q0, &q1);
                float sum = 0.0f;
                for (int64_t p = p0; p <= p1; p++)
                    for (int64_t q = q0; q <= q1; q++) sum += dyp[p * Q + q];
                dx[(plane * H + h) * W + w] += sum * inv;
            }
        }
    }
}

void global_avg_pool_forward_cpu(float *y, const float *x, int64_t planes, int64_t HW) {
#pragma omp parallel for if (planes * HW >= CG_OMP_MIN_WORK)
    for (int64_t p = 0; p < planes; p++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < HW; i++) sum += x[p * HW + i];
        y[p] = sum / (float)HW;
    }
}

void global_avg_pool_backward_cpu(float *dx, const float *dy, int64_t planes, int64_t HW) {
#pragma omp parallel for if (planes * HW >= CG_OMP_MIN_WORK)
    for (int64_t p = 0; p < planes; p++) {
        float g = dy[p] / (float)HW;
        for (int64_t i = 0; i < HW; i++) dx[p * HW + i] += g;
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void pool_register_cpu(cg_kernels *k) {
    k->max_pool2d_forward = max_pool2d_forward_cpu;
    k->max_pool2d_backward = max_pool2d_backward_cpu;
    k->avg_pool2d_forward = avg_pool2d_forward_cpu;
    k->avg_pool2d_backward = avg_pool2d_backward_cpu;
    k->global_avg_pool_forward = global_avg_pool_forward_cpu;
    k->global_avg_pool_backward = global_avg_pool_backward_cpu;
}

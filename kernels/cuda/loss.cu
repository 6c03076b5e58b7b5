// loss.cu: binary and softmax cross-entropy, sum / mean, and the accuracy counters on the GPU.
// Results that are one number come from a single block (block_sum in cuda.h): deterministic,
// and fast enough for the batch-sized inputs they see. CPU twins: kernels/cpu/loss.c.
#include "kernels/cuda/cuda.h"

static __device__ float clamped_log(float x) {
    float l = logf(x);
    return l < -100.0f ? -100.0f : l; // as torch.nn.BCELoss
}

static __global__ void bce_kernel(float *loss, const float *p, const float *t, int64_t n) {
    float part = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        part += t[i] * clamped_log(p[i]) + (1.0f - t[i]) * clamped_log(1.0f - p[i]);
    float total = block_sum(part);
    if (threadIdx.x == 0) loss[0] = -total / (float)n;
}

static __global__ void bce_backward_kernel(float *dp, const float *dloss, const float *p, const float *t, int64_t n) {
    float g = dloss[0] / (float)n;
    GRID_STRIDE(i, n) {
        float denom = fmaxf(p[i] * (1.0f - p[i]), 1e-12f);
        dp[i] += g * (p[i] - t[i]) / denom;
    }
}

static __global__ void cross_entropy_kernel(float *loss, const float *logits, const int32_t *labels, int64_t N,
                                            int64_t K, float e) {
    float part = 0.0f;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
        const float *row = logits + r * K;
        float max = row[0];
        for (int64_t c = 1; c < K; c++) max = fmaxf(max, row[c]);
        float sum = 0.0f, total = 0.0f;
        for (int64_t c = 0; c < K; c++) sum += expf(row[c] - max), total += row[c];
        float target = e == 0.0f ? row[labels[r]] : (1.0f - e) * row[labels[r]] + e * total / (float)K;
        part += logf(sum) + max - target;
    }
    float total = block_sum(part);
    if (threadIdx.x == 0) loss[0] = total / (float)N;
}

static __global__ void cross_entropy_backward_kernel(float *dlogits, const float *dloss, const float *logits,
                                                     const int32_t *labels, int64_t N, int64_t K, float e) {
    float g = dloss[0] / (float)N, hit = 1.0f - e, spread = e / (float)K;
    GRID_STRIDE(r, N) {
        const float *row = logits + r * K;
        float max = row[0];
        for (int64_t c = 1; c < K; c++) max = fmaxf(max, row[c]);
        float sum = 0.0f;
        for (int64_t c = 0; c < K; c++) sum += expf(row[c] - max);
        for (int64_t c = 0; c < K; c++)
            dlogits[r * K + c] += g * (expf(row[c] - max) / sum - (c == labels[r] ? hit : 0.0f) - spread);
    }
}

static __global__ void sum_kernel(float *y, const float *x, float scale, int64_t n) {
    float part = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part += x[i];
    float total = block_sum(part);
    if (threadIdx.x == 0) y[0] = scale * total;
}

// Large sums in two passes, still in a fixed order: block b adds up its stripe of x into
// partial[b], then one block adds the partials (sum_kernel above).
#define SUM_BLOCKS 1024
static __global__ void sum_partial_kernel(float *partial, const float *x, int64_t n) {
    float part = 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        part += x[i];
    float total = block_sum(part);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

static __global__ void sum_backward_kernel(float *dx, const float *dy, float scale, int64_t n) {
    float g = scale * dy[0];
    GRID_STRIDE(i, n) dx[i] += g;
}

static __global__ void count_binary_kernel(float *acc, const float *p, const float *t, float threshold, int64_t n) {
    float part = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part += (p[i] > threshold) == (t[i] > 0.5f);
    float total = block_sum(part);
    if (threadIdx.x == 0) acc[0] += total;
}

static __global__ void count_argmax_kernel(float *acc, const float *logits, const int32_t *labels, int64_t N,
                                           int64_t K) {
    float part = 0.0f;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
        const float *row = logits + r * K;
        int64_t best = 0;
        for (int64_t c = 1; c < K; c++)
            if (row[c] > row[best]) best = c;
        part += best == labels[r];
    }
    float total = block_sum(part);
    if (threadIdx.x == 0) acc[0] += total;
}

static __global__ void count_topk_kernel(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                         int64_t k) {
    float part = 0.0f;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
        const float *row = logits + r * K;
        int64_t label = labels[r], rank = 0;
        float v = row[label];
        for (int64_t c = 0; c < K; c++) rank += row[c] > v || (row[c] == v && c < label);
        part += rank < k;
    }
    float total = block_sum(part);
    if (threadIdx.x == 0) acc[0] += total;
}

// One thread per row; the counts are whole numbers, so the atomic adds give the same floats in
// any order.
static __global__ void confusion_kernel(float *counts, const float *logits, const int32_t *labels, int64_t N,
                                        int64_t K) {
    GRID_STRIDE(r, N) {
        const float *row = logits + r * K;
        int64_t best = 0;
        for (int64_t c = 1; c < K; c++)
            if (row[c] > row[best]) best = c;
        atomicAdd(&counts[labels[r] * K + best], 1.0f);
    }
}

extern "C" {
static void bce_forward_cuda(float *loss, const float *p, const float *t, int64_t n) {
    LAUNCH_ONE_BLOCK(bce_kernel, loss, p, t, n);
}
static void bce_backward_cuda(float *dp, const float *dloss, const float *p, const float *t, int64_t n) {
    LAUNCH(bce_backward_kernel, n, dp, dloss, p, t, n);
}
static void cross_entropy_forward_cuda(float *loss, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                       float e) {
    LAUNCH_ONE_BLOCK(cross_entropy_kernel, loss, logits, labels, N, K, e);
}
static void cross_entropy_backward_cuda(float *dlogits, const float *dloss, const float *logits, const int32_t *labels,
                                        int64_t N, int64_t K, float e) {
    LAUNCH(cross_entropy_backward_kernel, N, dlogits, dloss, logits, labels, N, K, e);
}
static void sum_forward_cuda(float *y, const float *x, float scale, int64_t n) {
    if (n <= 64 * CG_THREADS) { // a batch's worth: one block is enough
        LAUNCH_ONE_BLOCK(sum_kernel, y, x, scale, n);
        return;
    }
    float *partial = (float *)cg_cuda_alloc(SUM_BLOCKS * sizeof(float));
    sum_partial_kernel<<<SUM_BLOCKS, CG_THREADS, 0, cg_cuda_stream()>>>(partial, x, n);
    CG_LAUNCH_CHECK();
    LAUNCH_ONE_BLOCK(sum_kernel, y, partial, scale, SUM_BLOCKS);
    cg_cuda_free(partial);
}
static void sum_backward_cuda(float *dx, const float *dy, float scale, int64_t n) {
    LAUNCH(sum_backward_kernel, n, dx, dy, scale, n);
}
static void count_binary_correct_cuda(float *acc, const float *p, const float *t, float threshold, int64_t n) {
    LAUNCH_ONE_BLOCK(count_binary_kernel, acc, p, t, threshold, n);
}
static void count_argmax_correct_cuda(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K) {
    LAUNCH_ONE_BLOCK(count_argmax_kernel, acc, logits, labels, N, K);
}
static void count_topk_correct_cuda(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                    int64_t k) {
    LAUNCH_ONE_BLOCK(count_topk_kernel, acc, logits, labels, N, K, k);
}
static void confusion_add_cuda(float *counts, const float *logits, const int32_t *labels, int64_t N, int64_t K) {
    LAUNCH(confusion_kernel, N, counts, logits, labels, N, K);
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void loss_register_cuda(cg_kernels *k) {
    k->bce_forward = bce_forward_cuda;
    k->bce_backward = bce_backward_cuda;
    k->cross_entropy_forward = cross_entropy_forward_cuda;
    k->cross_entropy_backward = cross_entropy_backward_cuda;
    k->sum_forward = sum_forward_cuda;
    k->sum_backward = sum_backward_cuda;
    k->count_binary_correct = count_binary_correct_cuda;
    k->count_argmax_correct = count_argmax_correct_cuda;
    k->count_topk_correct = count_topk_correct_cuda;
    k->confusion_add = confusion_add_cuda;
}

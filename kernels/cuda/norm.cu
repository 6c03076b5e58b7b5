// norm.cu: batch normalisation on the GPU, one block per channel (its statistics are a block
// reduction over the batch and the positions), and the steps of the synchronised form (core/dist
// sums their per-channel sums over the ranks in between). CPU twin: kernels/cpu/norm.c.
#include "kernels/cuda/cuda.h"

static __global__ void bn_forward_kernel(float *y, float *stats, float *running_mean, float *running_var,
                                         const float *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                                         int64_t HW, float eps, float momentum, bool training) {
    int64_t c = blockIdx.x;
    __shared__ float mean_and_inv_std[2];
    if (training) {
        float sum = 0.0f, sum_sq = 0.0f;
        for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
            float v = x[(j / HW * C + c) * HW + j % HW];
            sum += v;
            sum_sq += v * v;
        }
        float total = block_sum(sum);
        __syncthreads(); // block_sum's shared array is used again just below
        float total_sq = block_sum(sum_sq);
        if (threadIdx.x == 0) {
            float m = (float)(N * HW), mu = total / m, var = fmaxf(total_sq / m - mu * mu, 0.0f);
            mean_and_inv_std[0] = mu;
            mean_and_inv_std[1] = rsqrtf(var + eps);
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mu;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * var * m / (m - 1.0f);
        }
    } else if (threadIdx.x == 0) {
        mean_and_inv_std[0] = running_mean[c];
        mean_and_inv_std[1] = rsqrtf(running_var[c] + eps);
    }
    __syncthreads();
    float mean = mean_and_inv_std[0], inv_std = mean_and_inv_std[1];
    if (threadIdx.x == 0) {
        stats[c] = mean;
        stats[C + c] = inv_std;
    }
    float scale = gamma[c] * inv_std, shift = beta[c] - mean * scale;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        y[i] = x[i] * scale + shift;
    }
}

static __global__ void bn_backward_kernel(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                          const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW,
                                          bool training) {
    int64_t c = blockIdx.x;
    float mean = stats[c], inv_std = stats[C + c];
    float part_dy = 0.0f, part_dy_xhat = 0.0f;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        part_dy += dy[i];
        part_dy_xhat += dy[i] * (x[i] - mean) * inv_std;
    }
    __shared__ float sums[2];
    float total_dy = block_sum(part_dy);
    __syncthreads();
    float total_dy_xhat = block_sum(part_dy_xhat);
    if (threadIdx.x == 0) {
        sums[0] = total_dy;
        sums[1] = total_dy_xhat;
        if (dgamma) dgamma[c] += total_dy_xhat;
        if (dbeta) dbeta[c] += total_dy;
    }
    __syncthreads();
    if (dx == NULL) return;
    float m = (float)(N * HW), g = gamma[c] * inv_std;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        if (training)
            dx[i] += g * (dy[i] - sums[0] / m - (x[i] - mean) * inv_std * sums[1] / m);
        else
            dx[i] += g * dy[i];
    }
}

// ---- synchronised batch norm: the same sums, reduced over the ranks between the steps --------------

static __global__ void bn_sums_kernel(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    int64_t c = blockIdx.x;
    float sum = 0.0f, sum_sq = 0.0f;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        float v = x[(j / HW * C + c) * HW + j % HW];
        sum += v;
        sum_sq += v * v;
    }
    float total = block_sum(sum);
    __syncthreads();
    float total_sq = block_sum(sum_sq);
    if (threadIdx.x == 0) {
        sums[c] = total;
        sums[C + c] = total_sq;
        if (c == 0) sums[2 * C] = (double)(N * HW);
    }
}

static __global__ void bn_stats_from_sums_kernel(float *stats, float *running_mean, float *running_var,
                                                 const double *sums, int64_t C, float eps, float momentum) {
    double m = sums[2 * C];
    GRID_STRIDE(c, C) {
        double mu = sums[c] / m, var = fmax(sums[C + c] / m - mu * mu, 0.0);
        stats[c] = (float)mu;
        stats[C + c] = (float)(1.0 / sqrt(var + eps));
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)(var * m / (m - 1.0));
        if (c == 0) stats[2 * C] = (float)m;
    }
}

static __global__ void bn_forward_from_stats_kernel(float *y, const float *x, const float *gamma, const float *beta,
                                                    const float *stats, int64_t N, int64_t C, int64_t HW) {
    int64_t c = blockIdx.x;
    float scale = gamma[c] * stats[C + c], shift = beta[c] - stats[c] * scale;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        y[i] = x[i] * scale + shift;
    }
}

static __global__ void bn_backward_sums_kernel(double *sums, const float *dy, const float *x, const float *stats,
                                               int64_t N, int64_t C, int64_t HW) {
    int64_t c = blockIdx.x;
    float mean = stats[c], inv_std = stats[C + c];
    float part_dy = 0.0f, part_dy_xhat = 0.0f;
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        part_dy += dy[i];
        part_dy_xhat += dy[i] * (x[i] - mean) * inv_std;
    }
    float total_dy = block_sum(part_dy);
    __syncthreads();
    float total_dy_xhat = block_sum(part_dy_xhat);
    if (threadIdx.x == 0) {
        sums[c] = sums[2 * C + c] = total_dy;
        sums[C + c] = sums[3 * C + c] = total_dy_xhat;
    }
}

static __global__ void bn_backward_from_sums_kernel(float *dx, float *dgamma, float *dbeta, const float *dy,
                                                    const float *x, const float *gamma, const float *stats,
                                                    const double *sums, int64_t N, int64_t C, int64_t HW) {
    int64_t c = blockIdx.x;
    if (threadIdx.x == 0) {
        if (dgamma) dgamma[c] += (float)sums[C + c];
        if (dbeta) dbeta[c] += (float)sums[c];
    }
    if (dx == NULL) return;
    float m = stats[2 * C], mean = stats[c], inv_std = stats[C + c], g = gamma[c] * inv_std;
    float sum_dy = (float)sums[2 * C + c], sum_dy_xhat = (float)sums[3 * C + c];
    for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        int64_t i = (j / HW * C + c) * HW + j % HW;
        dx[i] += g * (dy[i] - sum_dy / m - (x[i] - mean) * inv_std * sum_dy_xhat / m);
    }
}

extern "C" {
static void batch_norm_forward_cuda(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                    float momentum, bool training) {
    bn_forward_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(y, stats, running_mean, running_var, x, gamma,
                                                                        beta, N, C, HW, eps, momentum, training);
    CG_LAUNCH_CHECK();
}
static void batch_norm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                     const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training) {
    bn_backward_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(dx, dgamma, dbeta, dy, x, gamma, stats, N, C,
                                                                         HW, training);
    CG_LAUNCH_CHECK();
}
static void batch_norm_sums_cuda(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    bn_sums_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(sums, x, N, C, HW);
    CG_LAUNCH_CHECK();
}
static void batch_norm_stats_from_sums_cuda(float *stats, float *running_mean, float *running_var, const double *sums,
                                            int64_t C, float eps, float momentum) {
    LAUNCH(bn_stats_from_sums_kernel, C, stats, running_mean, running_var, sums, C, eps, momentum);
}
static void batch_norm_forward_from_stats_cuda(float *y, const float *x, const float *gamma, const float *beta,
                                               const float *stats, int64_t N, int64_t C, int64_t HW) {
    bn_forward_from_stats_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(y, x, gamma, beta, stats, N, C, HW);
    CG_LAUNCH_CHECK();
}
static void batch_norm_backward_sums_cuda(double *sums, const float *dy, const float *x, const float *stats, int64_t N,
                                          int64_t C, int64_t HW) {
    bn_backward_sums_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(sums, dy, x, stats, N, C, HW);
    CG_LAUNCH_CHECK();
}
static void batch_norm_backward_from_sums_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                               const float *gamma, const float *stats, const double *sums, int64_t N,
                                               int64_t C, int64_t HW) {
    bn_backward_from_sums_kernel<<<(unsigned)C, CG_THREADS, 0, cg_cuda_stream()>>>(dx, dgamma, dbeta, dy, x, gamma,
                                                                                   stats, sums, N, C, HW);
    CG_LAUNCH_CHECK();
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void norm_register_cuda(cg_kernels *k) {
    k->batch_norm_forward = batch_norm_forward_cuda;
    k->batch_norm_backward = batch_norm_backward_cuda;
    k->batch_norm_sums = batch_norm_sums_cuda;
    k->batch_norm_stats_from_sums = batch_norm_stats_from_sums_cuda;
    k->batch_norm_forward_from_stats = batch_norm_forward_from_stats_cuda;
    k->batch_norm_backward_sums = batch_norm_backward_sums_cuda;
    k->batch_norm_backward_from_sums = batch_norm_backward_from_sums_cuda;
}

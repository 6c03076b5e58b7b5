// norm.c: batch normalisation and dropout on the CPU (formulas in core/ops.h; the batch-norm
// backward is the usual closed form, e.g. Ioffe and Szegedy 2015, section 3), and the steps of
// the synchronised form, whose sums core/dist adds up over the ranks in between. Per-channel
// sums in double, channels spread over OpenMP threads when large.
#include "kernels/cpu/cpu.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>

static void bn_forward_channel(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                               const float *gamma, const float *beta, int64_t c, int64_t N, int64_t C, int64_t HW,
                               float eps, float momentum, bool training) {
    float mean, inv_std;
    if (training) {
        double sum = 0.0, sum_sq = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                double v = x[(n * C + c) * HW + i];
                sum += v;
                sum_sq += v * v;
            }
        double m = (double)(N * HW), mu = sum / m, var = fmax(sum_sq / m - mu * mu, 0.0);
        mean = (float)mu;
        inv_std = (float)(1.0 / sqrt(var + eps));
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)(var * m / (m - 1.0));
    } else {
        mean = running_mean[c];
        inv_std = 1.0f / sqrtf(running_var[c] + eps);
    }
    stats[c] = mean;
    stats[C + c] = inv_std;
    float scale = gamma[c] * inv_std, shift = beta[c] - mean * scale;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) y[(n * C + c) * HW + i] = x[(n * C + c) * HW + i] * scale + shift;
}

void batch_norm_forward_cpu(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                                   const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                   float momentum, bool training) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++)
        bn_forward_channel(y, stats, running_mean, running_var, x, gamma, beta, c, N, C, HW, eps, momentum, training);
}

static void bn_backward_channel(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *gamma, const float *stats, int64_t c, int64_t N, int64_t C, int64_t HW,
                                bool training) {
    float mean = stats[c], inv_std = stats[C + c];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
            int64_t j = (n * C + c) * HW + i;
            sum_dy += dy[j];
            sum_dy_xhat += dy[j] * (x[j] - mean) * inv_std;
        }
    if (dgamma) dgamma[c] += (float)sum_dy_xhat;
    if (dbeta) dbeta[c] += (float)sum_dy;
    if (dx == NULL) return;
    float m = (float)(N * HW), g = gamma[c] * inv_std;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < HW; i++) {
            int64_t j = (n * C + c) * HW + i;
            if (training) { // dx = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat))
                float xhat = (x[j] - mean) * inv_std;
                dx[j] += g * (dy[j] - (float)sum_dy / m - xhat * (float)sum_dy_xhat / m);
            } else {
                dx[j] += g * dy[j]; // the statistics are constants in evaluation
            }
        }
}

void batch_norm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                    const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++)
        bn_backward_channel(dx, dgamma, dbeta, dy, x, gamma, stats, c, N, C, HW, training);
}

// ---- synchronised batch norm: the same sums, reduced over the ranks between the steps --------------

static void batch_norm_sums_cpu(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++) {
        double sum = 0.0, sum_sq = 0.0; // in the order of bn_forward_channel
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                double v = x[(n * C + c) * HW + i];
                sum += v;
                sum_sq += v * v;
            }
        sums[c] = sum;
        sums[C + c] = sum_sq;
    }
    sums[2 * C] = (double)(N * HW);
}

static void batch_norm_stats_from_sums_cpu(float *stats, float *running_mean, float *running_var, const double *sums,
                                           int64_t C, float eps, float momentum) {
    double m = sums[2 * C];
    for (int64_t c = 0; c < C; c++) { // as bn_forward_channel in training
        double mu = sums[c] / m, var = fmax(sums[C + c] / m - mu * mu, 0.0);
        stats[c] = (float)mu;
        stats[C + c] = (float)(1.0 / sqrt(var + eps));
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)(var * m / (m - 1.0));
    }
    stats[2 * C] = (float)m;
}

void batch_norm_forward_from_stats_cpu(float *y, const float *x, const float *gamma, const float *beta,
                                       const float *stats, int64_t N, int64_t C, int64_t HW) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++) {
        float scale = gamma[c] * stats[C + c], shift = beta[c] - stats[c] * scale; // as bn_forward_channel
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) y[(n * C + c) * HW + i] = x[(n * C + c) * HW + i] * scale + shift;
    }
}

static void batch_norm_backward_sums_cpu(double *sums, const float *dy, const float *x, const float *stats, int64_t N,
                                         int64_t C, int64_t HW) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++) {
        float mean = stats[c], inv_std = stats[C + c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0; // in the order of bn_backward_channel
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                int64_t j = (n * C + c) * HW + i;
                sum_dy += dy[j];
                sum_dy_xhat += dy[j] * (x[j] - mean) * inv_std;
            }
        sums[c] = sums[2 * C + c] = sum_dy;
        sums[C + c] = sums[3 * C + c] = sum_dy_xhat;
    }
}

static void batch_norm_backward_from_sums_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                              const float *gamma, const float *stats, const double *sums, int64_t N,
                                              int64_t C, int64_t HW) {
    float m = stats[2 * C];
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t c = 0; c < C; c++) {
        if (dgamma) dgamma[c] += (float)sums[C + c];
        if (dbeta) dbeta[c] += (float)sums[c];
        if (dx == NULL) continue;
        float mean = stats[c], inv_std = stats[C + c], g = gamma[c] * inv_std;
        float sum_dy = (float)sums[2 * C + c], sum_dy_xhat = (float)sums[3 * C + c];
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) { // as bn_backward_channel (the same roundings)
                int64_t j = (n * C + c) * HW + i;
                float xhat = (x[j] - mean) * inv_std;
                dx[j] += g * (dy[j] - sum_dy / m - xhat * sum_dy_xhat / m);
            }
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void norm_register_cpu(cg_kernels *k) {
    k->batch_norm_forward = batch_norm_forward_cpu;
    k->batch_norm_backward = batch_norm_backward_cpu;
    k->batch_norm_sums = batch_norm_sums_cpu;
    k->batch_norm_stats_from_sums = batch_norm_stats_from_sums_cpu;
    k->batch_norm_forward_from_stats = batch_norm_forward_from_stats_cpu;
    k->batch_norm_backward_sums = batch_norm_backward_sums_cpu;
    k->batch_norm_backward_from_sums = batch_norm_backward_from_sums_cpu;
}

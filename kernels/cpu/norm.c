// norm.c: batch normalisation and dropout on the CPU (formulas in core/ops.h; the batch-norm
// backward is the usual closed form, e.g. Ioffe and Szegedy 2015, section 3), and the steps of
// the synchronised form, whose sums core/dist adds up over the ranks in between. Per-channel
// sums in double, channels spread over OpenMP threads when large.
#include "kernels/cpu/cpu.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>

// Channels whose sums run side by side. Each channel's terms are added in double one after the
// other, in (n, i) order, and a lone chain of additions waits for the adder's latency (4 cycles)
// at every term: ResNet-18's batch norms (CIFAR, bf16, one thread) took 20 % of its step so.
// With SUM_LANES chains in flight, one per channel, the adders stay busy, and each chain still
// adds the same terms in the same order: the same bits as one channel at a time. With AVX-512 the
// chains are the lanes of a vector of doubles: 8 values of each of the 8 planes are loaded, an
// 8 x 8 transpose turns them into 8 vectors of one position each, added in order. (A square
// v * v of a float is exact in double, so whether the compiler fuses it into the addition
// changes no bit; the backward's products are taken in f32, as written, before they are widened.)
#define SUM_LANES 8

#if defined(__AVX512F__)
#include <immintrin.h>
#define SUM_VECTORS 1
// r[j][k] -> r[k][j] for 8 vectors of 8 floats (unpack, shuffle, then swap the 128-bit halves).
static inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int j = 0; j < 8; j += 2) t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]), t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
    for (int j = 0; j < 8; j += 4) {
        u[j] = _mm256_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}
#endif

// Training statistics' sums of `lanes` channels from c0: sum[j] and sum_sq[j] of channel c0 + j.
static inline __attribute__((always_inline)) void stat_sums_lanes(double *sum, double *sum_sq, const float *x,
                                                                  int64_t c0, const int lanes, int64_t N, int64_t C,
                                                                  int64_t HW) {
    double s[SUM_LANES] = {0}, q[SUM_LANES] = {0};
    for (int64_t n = 0; n < N; n++) {
        const float *plane = x + (n * C + c0) * HW; // channel c0 + j at plane[j * HW]
        int64_t i = 0;
#ifdef SUM_VECTORS
        if (lanes == SUM_LANES && HW >= 8) {
            __m512d vs = _mm512_loadu_pd(s), vq = _mm512_loadu_pd(q);
            for (; i + 8 <= HW; i += 8) {
                __m256 r[8];
                for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(plane + j * HW + i);
                transpose8(r); // r[k]: position i + k of the 8 channels
                for (int k = 0; k < 8; k++) {
                    __m512d v = _mm512_cvtps_pd(r[k]);
                    vs = _mm512_add_pd(vs, v);
                    vq = _mm512_add_pd(vq, _mm512_mul_pd(v, v));
                }
            }
            _mm512_storeu_pd(s, vs), _mm512_storeu_pd(q, vq);
        }
#endif
        for (; i < HW; i++)
            for (int j = 0; j < lanes; j++) {
                double v = plane[j * HW + i];
                s[j] += v;
                q[j] += v * v;
            }
    }
    for (int j = 0; j < lanes; j++) sum[j] = s[j], sum_sq[j] = q[j];
}

// The same for channels c0 .. c0 + lanes - 1, lanes <= SUM_LANES (fewer: the last block of C).
static void stat_sums(double *sum, double *sum_sq, const float *x, int64_t c0, int lanes, int64_t N, int64_t C,
                      int64_t HW) {
    if (lanes == SUM_LANES)
        stat_sums_lanes(sum, sum_sq, x, c0, SUM_LANES, N, C, HW);
    else
        for (int j = 0; j < lanes; j++) stat_sums_lanes(sum + j, sum_sq + j, x, c0 + j, 1, N, C, HW);
}

// The backward's sums of `lanes` channels from c0: sum_dy[j] and sum_dy_xhat[j] (xhat = (x - mean)
// inv_std, each product in f32 as written, then added in double).
static inline __attribute__((always_inline)) void grad_sums_lanes(double *sum_dy, double *sum_dy_xhat,
                                                                  const float *dy, const float *x, const float *stats,
                                                                  int64_t c0, const int lanes, int64_t N, int64_t C,
                                                                  int64_t HW) {
    double s[SUM_LANES] = {0}, t[SUM_LANES] = {0};
    float mean[SUM_LANES] = {0}, inv_std[SUM_LANES] = {0};
    for (int j = 0; j < lanes; j++) mean[j] = stats[c0 + j], inv_std[j] = stats[C + c0 + j];
    for (int64_t n = 0; n < N; n++) {
        const float *gp = dy + (n * C + c0) * HW, *xp = x + (n * C + c0) * HW;
        int64_t i = 0;
#ifdef SUM_VECTORS
        if (lanes == SUM_LANES && HW >= 8) {
            __m512d vs = _mm512_loadu_pd(s), vt = _mm512_loadu_pd(t);
            __m256 vmean = _mm256_loadu_ps(mean), vinv = _mm256_loadu_ps(inv_std);
            for (; i + 8 <= HW; i += 8) {
                __m256 g[8], xv[8];
                for (int j = 0; j < 8; j++) g[j] = _mm256_loadu_ps(gp + j * HW + i), xv[j] = _mm256_loadu_ps(xp + j * HW + i);
                transpose8(g), transpose8(xv);
                for (int k = 0; k < 8; k++) {
                    __m256 prod = _mm256_mul_ps(_mm256_mul_ps(g[k], _mm256_sub_ps(xv[k], vmean)), vinv);
                    vs = _mm512_add_pd(vs, _mm512_cvtps_pd(g[k]));
                    vt = _mm512_add_pd(vt, _mm512_cvtps_pd(prod));
                }
            }
            _mm512_storeu_pd(s, vs), _mm512_storeu_pd(t, vt);
        }
#endif
        for (; i < HW; i++)
            for (int j = 0; j < lanes; j++) {
                float g = gp[j * HW + i];
                s[j] += g;
                t[j] += g * (xp[j * HW + i] - mean[j]) * inv_std[j];
            }
    }
    for (int j = 0; j < lanes; j++) sum_dy[j] = s[j], sum_dy_xhat[j] = t[j];
}

static void grad_sums(double *sum_dy, double *sum_dy_xhat, const float *dy, const float *x, const float *stats,
                      int64_t c0, int lanes, int64_t N, int64_t C, int64_t HW) {
    if (lanes == SUM_LANES)
        grad_sums_lanes(sum_dy, sum_dy_xhat, dy, x, stats, c0, SUM_LANES, N, C, HW);
    else
        for (int j = 0; j < lanes; j++) grad_sums_lanes(sum_dy + j, sum_dy_xhat + j, dy, x, stats, c0 + j, 1, N, C, HW);
}

// Blocks of SUM_LANES channels (the last one shorter), shared out to the threads.
static int64_t lane_blocks(int64_t C) { return (C + SUM_LANES - 1) / SUM_LANES; }
static int block_lanes(int64_t b, int64_t C) { return C - b * SUM_LANES < SUM_LANES ? (int)(C - b * SUM_LANES) : SUM_LANES; }

static void bn_forward_channel(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                               const float *gamma, const float *beta, int64_t c, int64_t N, int64_t C, int64_t HW,
                               float eps, float momentum, bool training, double sum, double sum_sq) {
    float mean, inv_std;
    if (training) {
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
    for (int64_t b = 0; b < lane_blocks(C); b++) {
        int64_t c0 = b * SUM_LANES;
        int lanes = block_lanes(b, C);
        double sum[SUM_LANES] = {0}, sum_sq[SUM_LANES] = {0};
        if (training) stat_sums(sum, sum_sq, x, c0, lanes, N, C, HW);
        for (int j = 0; j < lanes; j++)
            bn_forward_channel(y, stats, running_mean, running_var, x, gamma, beta, c0 + j, N, C, HW, eps, momentum,
                               training, sum[j], sum_sq[j]);
    }
}

static void bn_backward_channel(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *gamma, const float *stats, int64_t c, int64_t N, int64_t C, int64_t HW,
                                bool training, double sum_dy, double sum_dy_xhat) {
    float mean = stats[c], inv_std = stats[C + c];
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
    for (int64_t b = 0; b < lane_blocks(C); b++) {
        int64_t c0 = b * SUM_LANES;
        int lanes = block_lanes(b, C);
        double sum_dy[SUM_LANES], sum_dy_xhat[SUM_LANES];
        grad_sums(sum_dy, sum_dy_xhat, dy, x, stats, c0, lanes, N, C, HW);
        for (int j = 0; j < lanes; j++)
            bn_backward_channel(dx, dgamma, dbeta, dy, x, gamma, stats, c0 + j, N, C, HW, training, sum_dy[j],
                                sum_dy_xhat[j]);
    }
}

// ---- synchronised batch norm: the same sums, reduced over the ranks between the steps --------------

static void batch_norm_sums_cpu(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++) // the sums of batch_norm_forward_cpu
        stat_sums(sums + b * SUM_LANES, sums + C + b * SUM_LANES, x, b * SUM_LANES, block_lanes(b, C), N, C, HW);
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
    for (int64_t b = 0; b < lane_blocks(C); b++) { // the sums of batch_norm_backward_cpu
        int64_t c0 = b * SUM_LANES;
        int lanes = block_lanes(b, C);
        grad_sums(sums + c0, sums + C + c0, dy, x, stats, c0, lanes, N, C, HW);
        for (int j = 0; j < lanes; j++) sums[2 * C + c0 + j] = sums[c0 + j], sums[3 * C + c0 + j] = sums[C + c0 + j];
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

// norm.c: batch normalisation and dropout on the CPU (formulas in core/ops.h; the batch-norm
// backward is the usual closed form, e.g. Ioffe and Szegedy 2015, section 3), and the steps of
// the synchronised form, whose sums core/dist adds up over the ranks in between. Per-channel
// sums in double, 8 channels side by side, blocks of channels spread over OpenMP threads when
// large; and batch norm on bf16 tensors without f32 copies, for amp.c's 16-bit rows.
#include "kernels/cpu/cpu.h"
#include "core/rng.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/threads.h"

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
// The same loops read bf16 tensors (`bf16` true: uint16_t values, widened as they are loaded,
// which is exact): the sums, and so the bits, of the f32 kernels on widened copies.
#define SUM_LANES 8

static inline __attribute__((always_inline)) float value_at(const void *p, int64_t i, const int bf16) {
    return bf16 ? cg_bf16_widen(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static inline __attribute__((always_inline)) const void *plane_at(const void *x, int64_t plane, int64_t HW,
                                                                  const int bf16) {
    return (const char *)x + plane * HW * (bf16 ? 2 : 4);
}

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

// 8 values from p[i], as floats.
static inline __attribute__((always_inline)) __m256 load8(const void *p, int64_t i, const int bf16) {
    if (!bf16) return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The 8 x 8 values of 8 planes (plane j at p + j HW) from position i, one vector per position.
static inline __attribute__((always_inline)) void load_block(__m256 r[8], const void *p, int64_t HW, int64_t i,
                                                             const int bf16) {
    for (int j = 0; j < 8; j++) r[j] = load8(plane_at(p, j, HW, bf16), i, bf16);
    transpose8(r);
}
#endif

// Training statistics' sums of `lanes` channels from c0: sum[j] and sum_sq[j] of channel c0 + j.
static inline __attribute__((always_inline)) void stat_sums_lanes(double *sum, double *sum_sq, const void *x,
                                                                  const int bf16, int64_t c0, const int lanes,
                                                                  int64_t N, int64_t C, int64_t HW) {
    double s[SUM_LANES] = {0}, q[SUM_LANES] = {0};
    for (int64_t n = 0; n < N; n++) {
        const void *plane = plane_at(x, n * C + c0, HW, bf16); // channel c0 + j at plane j from there
        int64_t i = 0;
#ifdef SUM_VECTORS
        if (lanes == SUM_LANES && HW >= 8) {
            __m512d vs = _mm512_loadu_pd(s), vq = _mm512_loadu_pd(q);
            for (; i + 8 <= HW; i += 8) {
                __m256 r[8];
                load_block(r, plane, HW, i, bf16); // r[k]: position i + k of the 8 channels
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
                double v = value_at(plane_at(plane, j, HW, bf16), i, bf16);
                s[j] += v;
                q[j] += v * v;
            }
    }
    for (int j = 0; j < lanes; j++) sum[j] = s[j], sum_sq[j] = q[j];
}

// The same for channels c0 .. c0 + lanes - 1, lanes <= SUM_LANES (fewer: the last block of C,
// one channel at a time). bf16 is a constant where this is inlined: one loop per dtype.
static inline __attribute__((always_inline)) void stat_sums(double *sum, double *sum_sq, const void *x,
                                                            const int bf16, int64_t c0, int lanes, int64_t N,
                                                            int64_t C, int64_t HW) {
    if (lanes == SUM_LANES)
        stat_sums_lanes(sum, sum_sq, x, bf16, c0, SUM_LANES, N, C, HW);
    else
        for (int j = 0; j < lanes; j++) stat_sums_lanes(sum + j, sum_sq + j, x, bf16, c0 + j, 1, N, C, HW);
}

// The backward's gradient of the batch norm's output, g, from dy: dy itself (GRAD_DY); where the
// batch norm's output, computed again from x (x scale + shift, as batch_norm_forward_from_stats_cpu),
// is positive (GRAD_RELU_BN: a ReLU after it); where y, the block's output, is positive
// (GRAD_RELU_Y: a residual add and ReLU after it). 0 + (...), as relu_backward_cpu adds it to a
// zeroed gradient (so a -0 gradient becomes +0, as there).
enum { GRAD_DY, GRAD_RELU_BN, GRAD_RELU_Y };

static inline __attribute__((always_inline)) float grad_at(const void *dy, const void *x, const void *y, int64_t i,
                                                           float scale, float shift, const int bf16, const int mode) {
    float d = value_at(dy, i, bf16);
    if (mode == GRAD_DY) return d;
    float on = mode == GRAD_RELU_BN ? value_at(x, i, bf16) * scale + shift : value_at(y, i, bf16);
    return 0.0f + (on > 0.0f ? d : 0.0f);
}

// The backward's sums of `lanes` channels from c0: sum_dy[j] and sum_dy_xhat[j] of g (above; xhat
// = (x - mean) inv_std, each product in f32 as written, then added in double).
static inline __attribute__((always_inline)) void grad_sums_lanes(double *sum_dy, double *sum_dy_xhat,
                                                                  const void *dy, const void *x, const void *y,
                                                                  const float *stats, const float *scale,
                                                                  const float *shift, const int bf16, const int mode,
                                                                  int64_t c0, const int lanes, int64_t N, int64_t C,
                                                                  int64_t HW) {
    double s[SUM_LANES] = {0}, t[SUM_LANES] = {0};
    float mean[SUM_LANES] = {0}, inv_std[SUM_LANES] = {0};
    for (int j = 0; j < lanes; j++) mean[j] = stats[c0 + j], inv_std[j] = stats[C + c0 + j];
    for (int64_t n = 0; n < N; n++) {
        const void *gp = plane_at(dy, n * C + c0, HW, bf16), *xp = plane_at(x, n * C + c0, HW, bf16);
        const void *yp = mode == GRAD_RELU_Y ? plane_at(y, n * C + c0, HW, bf16) : NULL;
        int64_t i = 0;
#ifdef SUM_VECTORS
        if (lanes == SUM_LANES && HW >= 8) {
            __m512d vs = _mm512_loadu_pd(s), vt = _mm512_loadu_pd(t);
            __m256 vmean = _mm256_loadu_ps(mean), vinv = _mm256_loadu_ps(inv_std), zero = _mm256_setzero_ps();
            __m256 vscale = mode == GRAD_RELU_BN ? _mm256_loadu_ps(scale) : zero;
            __m256 vshift = mode == GRAD_RELU_BN ? _mm256_loadu_ps(shift) : zero;
            for (; i + 8 <= HW; i += 8) {
                __m256 g[8], xv[8], on[8];
                load_block(g, gp, HW, i, bf16), load_block(xv, xp, HW, i, bf16);
                if (mode == GRAD_RELU_Y) load_block(on, yp, HW, i, bf16);
                for (int k = 0; k < 8; k++) {
                    if (mode == GRAD_RELU_BN) on[k] = _mm256_fmadd_ps(xv[k], vscale, vshift);
                    if (mode != GRAD_DY)
                        g[k] = _mm256_add_ps(zero, _mm256_and_ps(_mm256_cmp_ps(on[k], zero, _CMP_GT_OQ), g[k]));
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
                const void *gj = plane_at(gp, j, HW, bf16), *xj = plane_at(xp, j, HW, bf16);
                const void *yj = yp ? plane_at(yp, j, HW, bf16) : NULL;
                float g = grad_at(gj, xj, yj, i, mode == GRAD_RELU_BN ? scale[j] : 0.0f,
                                  mode == GRAD_RELU_BN ? shift[j] : 0.0f, bf16, mode);
                s[j] += g;
                t[j] += g * (value_at(xj, i, bf16) - mean[j]) * inv_std[j];
            }
    }
    for (int j = 0; j < lanes; j++) sum_dy[j] = s[j], sum_dy_xhat[j] = t[j];
}

// The same for channels c0 .. c0 + lanes - 1 (scale and shift: those of channels c0 .., for
// GRAD_RELU_BN; the last block of C one channel at a time). bf16 and mode are constants where
// this is inlined: one loop per dtype and mode that is used.
static inline __attribute__((always_inline)) void grad_sums(double *sum_dy, double *sum_dy_xhat, const void *dy,
                                                            const void *x, const void *y, const float *stats,
                                                            const float *scale, const float *shift, const int bf16,
                                                            const int mode, int64_t c0, int lanes, int64_t N,
                                                            int64_t C, int64_t HW) {
    if (lanes == SUM_LANES) {
        grad_sums_lanes(sum_dy, sum_dy_xhat, dy, x, y, stats, scale, shift, bf16, mode, c0, SUM_LANES, N, C, HW);
        return;
    }
    for (int j = 0; j < lanes; j++)
        grad_sums_lanes(sum_dy + j, sum_dy_xhat + j, dy, x, y, stats, scale ? scale + j : NULL,
                        shift ? shift + j : NULL, bf16, mode, c0 + j, 1, N, C, HW);
}

// Blocks of SUM_LANES channels (the last one shorter), shared out to the threads.
static int64_t lane_blocks(int64_t C) { return (C + SUM_LANES - 1) / SUM_LANES; }
static int block_lanes(int64_t b, int64_t C) { return C - b * SUM_LANES < SUM_LANES ? (int)(C - b * SUM_LANES) : SUM_LANES; }

// Channel c's statistics (stats[c] = mean, stats[C + c] = 1 / sqrt(var + eps)) from its sums in
// training (and the running ones updated), from the running ones in evaluation; and the
// normalisation's y = x scale + shift.
static void bn_channel_stats(float *stats, float *running_mean, float *running_var, const float *gamma,
                             const float *beta, int64_t c, int64_t N, int64_t C, int64_t HW, float eps, float momentum,
                             bool training, double sum, double sum_sq, float *scale, float *shift) {
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
    *scale = gamma[c] * inv_std;
    *shift = beta[c] - mean * *scale;
}

// One block of channels' forward (block b of lane_blocks): their sums in training, their
// statistics, then y = x scale + shift, in f32 (bf16 0: z NULL, relu false) or on bf16 values
// (bf16 1: + z when not NULL, then ReLU when relu, rounded as stored).
static inline __attribute__((always_inline)) void forward_block(void *y, float *stats, float *running_mean,
                                                                float *running_var, const void *x, const void *z,
                                                                const float *gamma, const float *beta, int64_t b,
                                                                int64_t N, int64_t C, int64_t HW, float eps,
                                                                float momentum, bool training, const int bf16,
                                                                bool relu) {
    int64_t c0 = b * SUM_LANES;
    int lanes = block_lanes(b, C);
    double sum[SUM_LANES] = {0}, sum_sq[SUM_LANES] = {0};
    if (training) stat_sums(sum, sum_sq, x, bf16, c0, lanes, N, C, HW);
    for (int j = 0; j < lanes; j++) {
        int64_t c = c0 + j;
        float scale, shift;
        bn_channel_stats(stats, running_mean, running_var, gamma, beta, c, N, C, HW, eps, momentum, training, sum[j],
                         sum_sq[j], &scale, &shift);
        for (int64_t n = 0; n < N; n++) {
            int64_t at = (n * C + c) * HW;
            if (!bf16) {
                float *yf = (float *)y + at;
                const float *xf = (const float *)x + at;
                for (int64_t i = 0; i < HW; i++) yf[i] = xf[i] * scale + shift;
                continue;
            }
            uint16_t *yh = (uint16_t *)y + at;
            const uint16_t *xh = (const uint16_t *)x + at, *zh = z ? (const uint16_t *)z + at : NULL;
            for (int64_t i = 0; i < HW; i++) {
                float v = value_at(xh, i, 1) * scale + shift;
                if (zh) v += value_at(zh, i, 1);
                if (relu) v = v > 0.0f ? v : 0.0f;
                yh[i] = cg_bf16_round(v);
            }
        }
    }
}

void batch_norm_forward_cpu(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                                   const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                   float momentum, bool training) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++)
        forward_block(y, stats, running_mean, running_var, x, NULL, gamma, beta, b, N, C, HW, eps, momentum, training,
                      0, false);
}

// A thread's buffer of n floats, kept between calls (threads.h).
static float *row_buffer(int64_t n) {
    static _Thread_local cg_thread_buffer buffer;
    return cg_thread_floats_aligned(&buffer, n > 0 ? n : 1);
}

// One block of channels' backward (block b of lane_blocks): the sums of g (grad_sums' modes),
// dgamma and dbeta added to, g written to g_out when not NULL, then dx = its old value (or 0 when
// !accumulate) + gamma inv_std (g - mean(g) - xhat mean(g xhat)) in training, + gamma inv_std g in
// evaluation (the statistics are constants there). f32 (bf16 0: mode GRAD_DY, dx added to) or bf16
// (bf16 1: each value widened as read, dx rounded as stored). One plane's g in f32 at a time in a
// row buffer, then its dx: plain loops, which the compiler vectorises.
static inline __attribute__((always_inline)) void backward_block(void *dx, uint16_t *g_out, float *dgamma,
                                                                 float *dbeta, const void *dy, const void *y,
                                                                 const void *x, const float *gamma, const float *beta,
                                                                 const float *stats, int64_t b, int64_t N, int64_t C,
                                                                 int64_t HW, bool training, const int bf16,
                                                                 const int mode, bool accumulate) {
    int64_t c0 = b * SUM_LANES;
    int lanes = block_lanes(b, C);
    double sum_dy[SUM_LANES], sum_dy_xhat[SUM_LANES];
    float scale[SUM_LANES] = {0}, shift[SUM_LANES] = {0};
    for (int j = 0; mode == GRAD_RELU_BN && j < lanes; j++) { // as batch_norm_forward_from_stats_cpu
        scale[j] = gamma[c0 + j] * stats[C + c0 + j];
        shift[j] = beta[c0 + j] - stats[c0 + j] * scale[j];
    }
    grad_sums(sum_dy, sum_dy_xhat, dy, x, y, stats, scale, shift, bf16, mode, c0, lanes, N, C, HW);
    for (int j = 0; j < lanes; j++) {
        int64_t c = c0 + j;
        float mean = stats[c], inv_std = stats[C + c];
        if (dgamma) dgamma[c] += (float)sum_dy_xhat[j];
        if (dbeta) dbeta[c] += (float)sum_dy[j];
        if (dx == NULL && g_out == NULL) continue;
        float m = (float)(N * HW), gs = gamma[c] * inv_std;
        float *row = bf16 ? row_buffer(HW) : NULL;
        for (int64_t n = 0; n < N; n++) {
            int64_t at = (n * C + c) * HW;
            const float *g = bf16 ? row : (const float *)dy + at;
            if (bf16) {
                const uint16_t *dyh = (const uint16_t *)dy + at, *xh = (const uint16_t *)x + at;
                if (mode == GRAD_DY)
                    for (int64_t i = 0; i < HW; i++) row[i] = grad_at(dyh, xh, NULL, i, 0.0f, 0.0f, 1, GRAD_DY);
                else if (mode == GRAD_RELU_Y)
                    for (int64_t i = 0; i < HW; i++)
                        row[i] = grad_at(dyh, xh, (const uint16_t *)y + at, i, 0.0f, 0.0f, 1, GRAD_RELU_Y);
                else
                    for (int64_t i = 0; i < HW; i++) row[i] = grad_at(dyh, xh, NULL, i, scale[j], shift[j], 1, GRAD_RELU_BN);
            }
            if (g_out)
                for (int64_t i = 0; i < HW; i++) g_out[at + i] = cg_bf16_round(g[i]);
            if (dx == NULL) continue;
            const void *xp = (const char *)x + at * (bf16 ? 2 : 4);
            void *dp = (char *)dx + at * (bf16 ? 2 : 4);
            if (training) { // dx = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat))
                float sd = (float)sum_dy[j], sdx = (float)sum_dy_xhat[j];
                for (int64_t i = 0; i < HW; i++) {
                    float d = !bf16 ? ((float *)dp)[i] : accumulate ? value_at(dp, i, 1) : 0.0f;
                    float xhat = (value_at(xp, i, bf16) - mean) * inv_std;
                    d += gs * (g[i] - sd / m - xhat * sdx / m);
                    if (bf16)
                        ((uint16_t *)dp)[i] = cg_bf16_round(d);
                    else
                        ((float *)dp)[i] = d;
                }
            } else {
                for (int64_t i = 0; i < HW; i++) {
                    float d = !bf16 ? ((float *)dp)[i] : accumulate ? value_at(dp, i, 1) : 0.0f;
                    d += gs * g[i];
                    if (bf16)
                        ((uint16_t *)dp)[i] = cg_bf16_round(d);
                    else
                        ((float *)dp)[i] = d;
                }
            }
        }
    }
}

void batch_norm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                    const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++)
        backward_block(dx, NULL, dgamma, dbeta, dy, NULL, x, gamma, NULL, stats, b, N, C, HW, training, 0, GRAD_DY,
                       true);
}

// ---- bf16, without f32 copies ------------------------------------------------------------------
// The f32 kernels on widened copies (kernels/cpu/amp.c's emulated path) made a pass to widen each
// input, one to round each output, and for ReLU and the residual add passes of their own. Here
// each value is widened as it is read (exact) and rounded as it is stored, the arithmetic the same
// expressions in the same order as those kernels: the same bits (tests/test_bf16_norm.c compares
// them). Two passes forward (the sums; the normalisation, with the add and ReLU), two backward
// (the sums; dx).

void batch_norm_forward_bf16_cpu(uint16_t *y, float *stats, float *running_mean, float *running_var,
                                 const uint16_t *x, const uint16_t *z, const float *gamma, const float *beta,
                                 int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training, bool relu) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++)
        forward_block(y, stats, running_mean, running_var, x, z, gamma, beta, b, N, C, HW, eps, momentum, training, 1,
                      relu);
}

void batch_norm_backward_bf16_cpu(uint16_t *dx, uint16_t *g_out, float *dgamma, float *dbeta, const uint16_t *dy,
                                  const uint16_t *y, const uint16_t *x, const float *gamma, const float *beta,
                                  const float *stats, int64_t N, int64_t C, int64_t HW, bool training, int act,
                                  bool accumulate) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++) {
        if (act == 1)
            backward_block(dx, g_out, dgamma, dbeta, dy, y, x, gamma, beta, stats, b, N, C, HW, training, 1,
                           GRAD_RELU_BN, accumulate);
        else if (act == 2)
            backward_block(dx, g_out, dgamma, dbeta, dy, y, x, gamma, beta, stats, b, N, C, HW, training, 1,
                           GRAD_RELU_Y, accumulate);
        else
            backward_block(dx, g_out, dgamma, dbeta, dy, y, x, gamma, beta, stats, b, N, C, HW, training, 1, GRAD_DY,
                           accumulate);
    }
}

// ---- synchronised batch norm: the same sums, reduced over the ranks between the steps --------------

static void batch_norm_sums_cpu(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    bool threads = N * C * HW >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads)
    for (int64_t b = 0; b < lane_blocks(C); b++) // the sums of batch_norm_forward_cpu
        stat_sums(sums + b * SUM_LANES, sums + C + b * SUM_LANES, x, 0, b * SUM_LANES, block_lanes(b, C), N, C,
                  HW);
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
        grad_sums(sums + c0, sums + C + c0, dy, x, NULL, stats, NULL, NULL, 0, GRAD_DY, c0, lanes, N, C, HW);
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

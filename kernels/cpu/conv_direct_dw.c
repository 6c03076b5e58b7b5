// conv_direct_dw.c: the weight and bias gradients of the tutorial CNN's first block (conv 3 x 3
// of a one-channel image, stride 1, padding 1, bias, ReLU, 2 x 2 max pooling) straight from the
// pooled gradient, with the output channels in the vector lanes. No dx (the image needs none):
// with dx wanted, conv.c's path runs. False (nothing done) for other shapes or without AVX-512.
//
// conv.c's path builds, per group of 4 images, the convolution's dense output gradient dy_g
// (32 x 3136 floats, zero except at each window's maximum), transposes it, writes the columns
// (im2col, 9 x 3136) and hands them to the GEMM as a product with M = 9 rows: 18.5 % of the
// peak, most of it spent moving dy_g and the columns through memory. Here each output position
// broadcasts its 9 padded-input values, and each feeds one FMA per vector of 16 channels into 9 x 2
// accumulators that stay in registers (18 independent chains: enough to cover the FMA's latency
// on both units). The position's gradient vector, 32 channels, is the pooled dy transposed to
// window-major (dyT, 196 x 32 per image), loaded under a mask: a channel's lane is live only
// where the window's maximum sat at this position (`where`); y > 0 was applied when dyT was made.
//
// The sums are the GEMM's, bit for bit (gemm.c's micro_kernel on col (9, 4 PQ) and dy_g^T): each
// dW^T element of a group is summed over the group's positions in order (image, row, column), a
// block of CG_GEMM_KC positions at a time, each block's chain of FMAs starting from zero and added
// to the group's sum (the first one stored); the groups' slices are added to dW in group order.
// The terms are the same, zeros included (x * 0 where the lane is masked off), in the same order.
// The work done is the dense convolution's: 9 FMAs per position and channel, zeros and all.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

// The padded image: row h + 1, column w + 1 hold x[h][w], zeros around (as conv_direct.c). The
// taps of position (h, w) are xp[(h + r) PADDED_W + w + s].
#define PADDED_W 48
#define MAX_H 64
#define MAX_W 32
// Channels per call of the position loop: 2 vectors, 18 accumulators (64 channels would need 36
// of the 32 registers).
#define LANES 16

// A buffer of at least `bytes` for this thread, kept between calls.
static void *scratch(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[3];
    return cg_thread_floats_aligned(&buffers[which], (bytes + 3) / 4);
}

// r[i][j] <-> r[j][i], 16 x 16 floats in registers (im2col.c's transpose_16x16, without the
// loads and stores).
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
            t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
}

// The sum of one pooled plane's gradient where the ReLU let it through: the very loop of
// conv.c's unpool_plane (`omp simd` lets the compiler choose its order), so that db has the same
// bits as on that path. n is a constant at the call sites of the tutorial's sizes, as there.
static inline __attribute__((always_inline)) float plane_sum(const float *dy, const float *y, int64_t n) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) sum += y[i] > 0.0f ? dy[i] : 0.0f;
    return sum;
}

// Image n's inputs to the position loop: its padded image xp, dyT (windows rounded up to 16,
// x K floats: dyT[i K + k] = dy[k][i] where y[k][i] > 0, else 0), and masks (pq x K/16: the
// channels of vector v whose window maximum sits at position i, masks[i K/16 + v]), plus each
// channel's plane sum into sums[k] (db). Both transposes go 16 channels x 16 windows at a time
// through registers; `where` widened to 32 bits on the way, each window's row of it compared
// with the 4 positions of the window.
static void prepare_image(float *xp, float *dyT, uint16_t *masks, double *sums, const float *x, const float *dy,
                          const float *y, const uint8_t *where, int64_t n, int64_t H, int64_t W, int64_t K, int64_t P,
                          int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2, kv = K / LANES;
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float));
    for (int64_t h = 0; h < H; h++) memcpy(xp + (h + 1) * PADDED_W + 1, x + (n * H + h) * W, (size_t)W * sizeof(float));
    if (P % 2 || Q % 2) memset(masks, 0, (size_t)(P * Q * kv) * sizeof(uint16_t)); // outside every window: no term
    for (int64_t v = 0; v < kv; v++)
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : (1u << (pooled - i0)) - 1);
            __m512 g[16], at[16];
            for (int c = 0; c < 16; c++) {
                int64_t plane = (n * K + v * LANES + c) * pooled + i0;
                __m512 yv = _mm512_maskz_loadu_ps(valid, y + plane);
                g[c] = _mm512_maskz_loadu_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), dy + plane);
                at[c] = _mm512_castsi512_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(valid, where + plane)));
            }
            transpose16(g);
            transpose16(at);
            for (int j = 0; j < 16; j++) _mm512_storeu_ps(dyT + (i0 + j) * K + v * LANES, g[j]);
            for (int j = 0; j < 16 && i0 + j < pooled; j++) {
                int64_t p = (i0 + j) / Q2, q = (i0 + j) % Q2;
                for (int c = 0; c < 4; c++) {
                    int64_t pos = (2 * p + (c >> 1)) * Q + 2 * q + (c & 1);
                    masks[pos * kv + v] = _mm512_cmpeq_epi32_mask(_mm512_castps_si512(at[j]), _mm512_set1_epi32(c));
                }
            }
        }
    for (int64_t k = 0; k < K; k++) {
        const float *g = dy + (n * K + k) * pooled, *yk = y + (n * K + k) * pooled;
        if (P == 28 && Q == 28) // the constants of conv.c's calls
            sums[k] = plane_sum(g, yk, 196);
        else if (P == 14 && Q == 14)
            sums[k] = plane_sum(g, yk, 49);
        else
            sums[k] = plane_sum(g, yk, pooled);
    }
}

// The position loop of one group (count images, prepared one after the other: xp every
// xp_floats, dyT every dyt_floats, masks every pq * K/16) for channels k0 .. k0 + 16 nv - 1:
// slice[t K + k] (t = r 3 + s: dW^T's layout, as the GEMM leaves it) = the sums of the file's
// comment. pos_x[i]: position i's offset in xp; pos_g[i]: its window's offset in dyT.
static inline __attribute__((always_inline)) void group_positions(float *slice, const float *xp, int64_t xp_floats,
                                                                  const float *dyT, int64_t dyt_floats,
                                                                  const uint16_t *masks, const int32_t *pos_x,
                                                                  const int32_t *pos_g, int64_t count, int64_t pq,
                                                                  int64_t K, int64_t k0, const int nv) {
    int64_t kv = K / LANES, total = count * pq;
    for (int64_t f0 = 0; f0 < total; f0 += CG_GEMM_KC) { // the GEMM's blocks of K
        int64_t f1 = f0 + CG_GEMM_KC < total ? f0 + CG_GEMM_KC : total;
        __m512 acc[9][2];
        for (int t = 0; t < 9; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        for (int64_t f = f0; f < f1;) { // the block's positions in image j (a block may span two)
            int64_t j = f / pq, i0 = f - j * pq, i1 = i0 + (f1 - f) < pq ? i0 + (f1 - f) : pq;
            const float *xj = xp + j * xp_floats, *gj = dyT + j * dyt_floats + k0;
            const uint16_t *mj = masks + j * pq * kv + k0 / LANES;
            for (int64_t i = i0; i < i1; i++) {
                const float *xq = xj + pos_x[i], *g = gj + pos_g[i];
                __m512 g0 = _mm512_maskz_loadu_ps(mj[i * kv], g), g1 = g0;
                if (nv > 1) g1 = _mm512_maskz_loadu_ps(mj[i * kv + 1], g + LANES);
                for (int r = 0; r < 3; r++)
                    for (int s = 0; s < 3; s++) {
                        __m512 xv = _mm512_set1_ps(xq[r * PADDED_W + s]);
                        acc[r * 3 + s][0] = _mm512_fmadd_ps(xv, g0, acc[r * 3 + s][0]);
                        if (nv > 1) acc[r * 3 + s][1] = _mm512_fmadd_ps(xv, g1, acc[r * 3 + s][1]);
                    }
            }
            f += i1 - i0;
        }
        for (int t = 0; t < 9; t++)
            for (int v = 0; v < nv; v++) {
                float *dst = slice + t * K + k0 + v * LANES;
                _mm512_storeu_ps(dst, f0 == 0 ? acc[t][v] : _mm512_add_ps(_mm512_loadu_ps(dst), acc[t][v]));
            }
    }
}

bool conv1_relu_pool_dw_direct_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                   const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                   int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    if (C != 1 || R != 3 || S != 3 || stride != 1 || pad != 1 || P != H || Q != W || W > MAX_W || H > MAX_H ||
        P < 2 || Q < 2 || K % LANES != 0 || K == 0 || N < 1)
        return false;
    if (dw == NULL && dbias == NULL) return true;
    int64_t pq = P * Q, Q2 = Q / 2, pooled = (P / 2) * Q2, groups = (N + group - 1) / group;
    int64_t xp_floats = (H + 2) * PADDED_W, dyt_floats = (pooled + 15) / 16 * 16 * K, kv = K / LANES;
    int32_t pos_x[MAX_H * MAX_W], pos_g[MAX_H * MAX_W];
    for (int64_t i = 0; i < pq; i++) {
        int64_t h = i / Q, w = i % Q, inside = h < 2 * (P / 2) && w < 2 * Q2;
        pos_x[i] = (int32_t)(h * PADDED_W + w);
        pos_g[i] = inside ? (int32_t)(((h / 2) * Q2 + w / 2) * K) : 0; // outside: masked off whole
    }
    float *slices = cg_xmalloc((size_t)(groups * 9 * K) * sizeof(float)); // (groups, 9, K): dW^T per group
    double *sums = cg_xmalloc((size_t)(groups * K) * sizeof(double));    // (groups, K): db per group
    bool threads = N > 1 && N * K * pq * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * group, count = N - n0 < group ? N - n0 : group;
        float *xp = scratch(0, count * xp_floats * (int64_t)sizeof(float));
        float *dyT = scratch(1, count * dyt_floats * (int64_t)sizeof(float));
        uint16_t *masks = scratch(2, count * pq * kv * (int64_t)sizeof(uint16_t));
        double image_sums[K];
        for (int64_t k = 0; k < K; k++) sums[g * K + k] = 0.0;
        for (int64_t j = 0; j < count; j++) {
            prepare_image(xp + j * xp_floats, dyT + j * dyt_floats, masks + j * pq * kv, image_sums, x, dy, y, where,
                          n0 + j, H, W, K, P, Q);
            for (int64_t k = 0; k < K; k++) sums[g * K + k] += image_sums[k];
        }
        if (dw == NULL) continue;
        float *slice = slices + g * 9 * K;
        for (int64_t k0 = 0; k0 < K; k0 += 2 * LANES)
            if (K - k0 >= 2 * LANES)
                group_positions(slice, xp, xp_floats, dyT, dyt_floats, masks, pos_x, pos_g, count, pq, K, k0, 2);
            else
                group_positions(slice, xp, xp_floats, dyT, dyt_floats, masks, pos_x, pos_g, count, pq, K, k0, 1);
    }
    // The slices into dW (K, 9) in group order, and db: conv.c's additions in conv.c's order.
    if (dw)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t t = 0; t < 9; t++) dw[k * 9 + t] += slices[(g * 9 + t) * K + k];
    if (dbias)
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) sum += sums[g * K + k];
            dbias[k] += (float)sum;
        }
    free(slices), free(sums);
    return true;
}
#else
bool conv1_relu_pool_dw_direct_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                   const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                   int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    return false; // without AVX-512: conv.c's path
}
#endif

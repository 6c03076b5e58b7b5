// bf16_direct_dw.c: the weight and bias gradients of the tutorial CNN's first block in bf16 (a
// one-channel 3 x 3 convolution, stride 1, padding 1, with bias, ReLU and 2 x 2 max pooling) on
// the AVX512-BF16 path, straight from the pooled gradient, with vdpbf16ps. No dx (the image needs
// none): with dx wanted, or another shape, or on AMX, bf16_ops.c's conv_backward runs as before.
//
// bf16_ops.c's path builds, per group of 4 images, the convolution's dense output gradient dy_g
// (unpooled: 32 x 3136 bf16, zero except at each window's maximum), the columns of the images
// (im2col, 9 x 3136), packs both and multiplies them with vdpbf16ps: dW^T (9, K) = col dy_g^T.
// The product's tiles have 8 rows, so the 9 rows of col take two tiles of which the second
// computes 7 rows of zeros, and the packing costs as much again. Here each pair of neighbouring
// positions (h, 2 q) and (h, 2 q + 1), one row of a pooling window, is one vdpbf16ps per tap and
// per 16 channels, exactly the product's: the accumulator of tap t holds the channels in its
// lanes, the first operand is the pair of image values that tap t reads at those positions (one
// 32-bit broadcast from the padded image), the second the pair of output gradients of each
// channel, dy_g's two values at those positions (zero, or the window's gradient in one half).
// The product's sums are one chain per element of dW^T, over the group's positions in order, a
// pair per step, starting from +0; here too, pair after pair in the same order, zero pairs
// included, and the padding pairs the product adds after the last position. So the same
// instructions on the same values in the same order: dW has the product's bits by construction
// (tests/test_bf16_cpu.c's fused test compares them with the three separate ops).
//
// The pairs of dy_g are made per pooled row, 16 channels at a time: in the pooled planes, 16
// windows of a channel in a vector (its value, as bf16_unpool.c's unpool_plane_avx512 computes it:
// round(0 + dy) where y > 0, 0 elsewhere; and its position), then a 16 x 16 transpose puts the
// 16 channels of a window in a vector, from which the window's two rows of pairs follow. The
// bias gradient is taken on the way, as unpool_plane_avx512 takes it: the same double lanes (the
// window's column) in the same order, the same bits. (Tutorial block, batch 128, one core of an
// AMD EPYC, Zen 4: 55 -> 88 GFLOP/s, where the fp32 backward, conv_direct_dw.c, then ran at 68;
// besides the products, its time goes mostly to making the pairs: the planes' loads, the
// transposes and the bias lanes, by perf. The fp32 backward now adds one term per window, not
// the product's pairs of positions, at 118 GFLOP/s counted as here; this one keeps the pairs, so
// that dW keeps the product's bits.)
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include "core/common.h"

#include <stdlib.h>
#include <string.h>

#ifdef CG_CPU_MATRIX_KERNELS
#include "kernels/cpu/transpose16.h"

// The padded image in bf16: row h + 1, column w + 1 hold x[h][w], zeros around; a tap's pair of
// position (h, w) is the 32-bit word at row h + r, column w + s.
#define PADDED_W 48
#define MAX_H 64
#define MAX_W 32

bool cg_bf16_direct_dw_fits(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                            int64_t pad, int64_t P, int64_t Q) {
    // Even sizes: every pair of positions is a row of one window (and no position lies outside
    // every window); channels in whole vectors of 16.
    return C == 1 && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && H >= 2 && W >= 2 &&
           H % 2 == 0 && W % 2 == 0 && H <= MAX_H && W <= MAX_W && K >= 16 && K % 16 == 0;
}

// The pairs of dy_g of pooled row p for 16 channels (pooled planes from `plane`, `pooled` values
// apart): pairs[a][q] for row 2 p + a of window q (q < Q2), each channel's pair in its lane. Each
// channel's windows first, in the lanes: value v (unpool_plane_avx512's), added to the channel's
// bias lanes sums[c] when sums is not NULL, and the position, in the high half of the word.
static inline __attribute__((always_inline)) VEC_BF16_TARGET void row_pairs(__m512i pairs[2][MAX_W / 2], __m512d *sums,
                                                                      const uint16_t *dy, const uint16_t *y,
                                                                      const uint8_t *where, int64_t plane,
                                                                      int64_t pooled, int64_t Q2) {
    __mmask16 m = (__mmask16)((1u << Q2) - 1);
    __m512 r[16];
    for (int c = 0; c < 16; c++) {
        int64_t at = plane + c * pooled;
        __m512 gf = widen16_avx512(_mm256_maskz_loadu_epi16(m, dy + at));
        __m512 yf = widen16_avx512(_mm256_maskz_loadu_epi16(m, y + at));
        __mmask16 open = _mm512_cmp_ps_mask(yf, _mm512_setzero_ps(), _CMP_GT_OQ); // the ReLU let it through
        // unpool_plane_avx512's round(0 + dy) is the high half of 0 + dy: dy is a bf16 value, and
        // so is 0 + dy (dy, +0 for -0, a NaN made quiet, 0 for a subnormal where the flush is on),
        // which its rounding leaves as it is. vf: the value as f32.
        __m512 vf = _mm512_maskz_mov_ps(open, _mm512_add_ps(_mm512_setzero_ps(), gf));
        __m512i v = _mm512_srli_epi32(_mm512_castps_si512(vf), 16);
        if (sums) {
            sums[2 * c] = _mm512_add_pd(sums[2 * c], _mm512_cvtps_pd(_mm512_castps512_ps256(vf)));
            __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(vf), 1)); // lanes 8 .. 15
            sums[2 * c + 1] = _mm512_add_pd(sums[2 * c + 1], _mm512_cvtps_pd(upper));
        }
        __m512i pos = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, where + at));
        r[c] = _mm512_castsi512_ps(_mm512_or_si512(v, _mm512_slli_epi32(pos, 16)));
    }
    cg_transpose16(r); // r[q]: window q, channel c in lane c
    const __m512i value = _mm512_set1_epi32(0xffff), right = _mm512_set1_epi32(1 << 16);
    const __m512i bottom = _mm512_set1_epi32(2 << 16);
    for (int64_t q = 0; q < Q2; q++) {
        __m512i word = _mm512_castps_si512(r[q]), v = _mm512_and_si512(word, value);
        // The pair (left, right) of the maximum's row: v in the low half (left) or the high one
        v = _mm512_mask_slli_epi32(v, _mm512_test_epi32_mask(word, right), v, 16);
        __mmask16 low = _mm512_test_epi32_mask(word, bottom); // the maximum in the bottom row
        pairs[0][q] = _mm512_maskz_mov_epi32((__mmask16)~low, v);
        pairs[1][q] = _mm512_maskz_mov_epi32(low, v);
    }
}

// The next image's gradient, output and positions of channels k0 .. k0 + nch - 1, asked for into
// the second-level cache a few lines at each pooled row of this image (as conv_direct_dw.c's
// ask_ahead): its 16 planes of each are read a row at a time, 48 streams that the hardware
// prefetchers follow badly, and reading them from the third-level cache took a third of the time.
static inline __attribute__((always_inline)) void ask_ahead(const char *at[3], const char *end[3], int lines) {
    for (int r = 0; r < 3 && lines > 0; r++)
        for (; at[r] < end[r] && lines > 0; at[r] += 64, lines--) _mm_prefetch(at[r], _MM_HINT_T1);
}

// One group of images (n0 ..  n0 + count - 1): its dW^T slice (9, K) f32, the product's sums,
// when slice is not NULL; each channel's 16 bias lanes in lanes[k] (2 vectors of 8 doubles)
// when lanes is not NULL.
static VEC_BF16_TARGET void group_dw(float *slice, __m512d *lanes, const uint16_t *dy, const uint16_t *y,
                                 const uint8_t *where, const uint16_t *x, int64_t N, int64_t n0, int64_t count,
                                 int64_t H, int64_t W, int64_t K) {
    int64_t P2 = H / 2, Q2 = W / 2, pooled = P2 * Q2;
    uint16_t xp[(MAX_H + 2) * PADDED_W];
    __m512i pairs[2][2][2][MAX_W / 2]; // [pooled row p % 2][vector][row a][window q]
    for (int64_t k = 0; lanes && k < K; k++) lanes[2 * k] = lanes[2 * k + 1] = _mm512_setzero_pd();
    for (int64_t k0 = 0; k0 < K; k0 += 32) { // 32 channels per pass: 18 accumulators
        int nv = K - k0 >= 32 ? 2 : 1;
        __m512 acc[9][2];
        for (int t = 0; t < 9; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        for (int64_t j = 0; j < count; j++) {
            int64_t n = n0 + j, first = ((n + 1) * K + k0) * pooled, size = 16 * nv * pooled; // the next image's
            const char *ahead[3] = {NULL, NULL, NULL}, *end[3] = {NULL, NULL, NULL}; // none after the last
            if (n + 1 < N) {
                ahead[0] = (const char *)(dy + first), ahead[1] = (const char *)(y + first);
                ahead[2] = (const char *)(where + first);
                end[0] = ahead[0] + size * 2, end[1] = ahead[1] + size * 2, end[2] = ahead[2] + size;
            }
            int per_row = (int)((5 * size + 63) / 64 / P2 + 1); // its lines (2 + 2 + 1 bytes a value), a share per row
            memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof *xp);
            for (int64_t h = 0; h < H; h++) memcpy(xp + (h + 1) * PADDED_W + 1, x + (n * H + h) * W, (size_t)W * 2);
            // Row p's pairs are made while row p - 1's products run: in program order between
            // them (its first vector before the top row's products, its second before the
            // bottom row's), where the processor overlaps the two. Made just before their own
            // products, the products waited on them.
            for (int v = 0; v < nv; v++)
                row_pairs(pairs[0][v], lanes ? lanes + 2 * (k0 + 16 * v) : NULL, dy, y, where,
                          (n * K + k0 + 16 * v) * pooled, pooled, Q2);
            for (int64_t p = 0; p < P2; p++) {
                __m512i(*cur)[2][MAX_W / 2] = pairs[p % 2], (*next)[2][MAX_W / 2] = pairs[(p + 1) % 2];
                ask_ahead(ahead, end, per_row);
                for (int a = 0; a < 2; a++) { // position row h = 2 p + a, pairs (h, 2 q), (h, 2 q + 1)
                    int v = a; // the next row's vector v made here
                    if (p + 1 < P2 && v < nv)
                        row_pairs(next[v], lanes ? lanes + 2 * (k0 + 16 * v) : NULL, dy, y, where,
                                  (n * K + k0 + 16 * v) * pooled + (p + 1) * Q2, pooled, Q2);
                    if (!slice) continue;
                    const uint16_t *xr = xp + (2 * p + a) * PADDED_W;
                    for (int64_t q = 0; q < Q2; q++)
                        for (int t = 0; t < 9; t++) {
                            int32_t pair;
                            memcpy(&pair, xr + (t / 3) * PADDED_W + 2 * q + t % 3, sizeof pair);
                            __m512bh xv = (__m512bh)_mm512_set1_epi32(pair);
                            acc[t][0] = _mm512_dpbf16_ps(acc[t][0], xv, (__m512bh)cur[0][a][q]);
                            if (nv > 1) acc[t][1] = _mm512_dpbf16_ps(acc[t][1], xv, (__m512bh)cur[1][a][q]);
                        }
                }
            }
        }
        if (!slice) continue;
        // The product's padding: its k runs to a whole number of 32 (zero pairs), which leave the
        // sums as they are but for a -0 (made +0), added all the same.
        int64_t L = count * H * W, padding = ((L + 31) / 32 * 32 - L) / 2;
        for (int64_t e = 0; e < padding; e++)
            for (int t = 0; t < 9; t++)
                for (int v = 0; v < nv; v++)
                    acc[t][v] = _mm512_dpbf16_ps(acc[t][v], (__m512bh)_mm512_setzero_si512(),
                                                 (__m512bh)_mm512_setzero_si512());
        for (int t = 0; t < 9; t++)
            for (int v = 0; v < nv; v++) _mm512_storeu_ps(slice + t * K + k0 + 16 * v, acc[t][v]);
    }
}

VEC_BF16_TARGET void cg_bf16_direct_dw(uint16_t *dw, uint16_t *dbias, const uint16_t *dy, const uint16_t *y,
                                   const uint8_t *where, const uint16_t *x, int64_t N, int64_t H, int64_t W, int64_t K,
                                   int64_t group) {
    if (dw == NULL && dbias == NULL) return;
    int64_t groups = (N + group - 1) / group;
    float *slices = dw ? cg_xmalloc((size_t)(groups * 9 * K) * sizeof(float)) : NULL; // (groups, 9, K)
    __m512d *lanes = NULL; // (groups, K, 16), on a 64-byte boundary as vectors want
    if (dbias) {
        lanes = aligned_alloc(64, (size_t)(groups * K * 2) * sizeof(__m512d));
        CG_CHECK(lanes != NULL, "out of memory (%lld bytes)", (long long)(groups * K * 2 * 64));
    }
    bool threads = N > 1 && N * K * H * W * 9 >= CG_OMP_MIN_WORK; // as conv_backward
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * group, count = N - n0 < group ? N - n0 : group;
        group_dw(slices ? slices + g * 9 * K : NULL, lanes ? lanes + g * K * 2 : NULL, dy, y, where, x, N, n0, count,
                 H, W, K);
    }
    if (dbias) { // as conv_backward: each group's 16 lanes added in order, the groups in order
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) {
                double l[16], total = 0.0;
                _mm512_storeu_pd(l, lanes[(g * K + k) * 2]);
                _mm512_storeu_pd(l + 8, lanes[(g * K + k) * 2 + 1]);
                for (int i = 0; i < 16; i++) total += l[i];
                sum += total;
            }
            dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)sum);
        }
        free(lanes);
    }
    if (dw) { // as conv_backward: dw (K, 9) += slice 0, slice 1, ... in f32, rounded once
        for (int64_t k = 0; k < K; k++)
            for (int t = 0; t < 9; t++) {
                float sum = cg_bf16_widen(dw[k * 9 + t]);
                for (int64_t g = 0; g < groups; g++) sum += slices[(g * 9 + t) * K + k];
                dw[k * 9 + t] = cg_bf16_round(sum);
            }
        free(slices);
    }
}
#endif

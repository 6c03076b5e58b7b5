// conv_direct.c: the tutorial CNN's first block, a 3 x 3 convolution of a one-channel image
// (stride 1, padding 1) with bias, ReLU and 2 x 2 max pooling, as a direct convolution whose
// pooling is done in registers. Through im2col and the GEMM (conv.c), each output is a product of
// only 9 steps: the GEMM's tiles spend as long storing their sums as computing them, and the
// pooling pass then reads the whole convolution output back (with it, 22 % of the peak).
// The sums are those of conv.c's path bit for bit: each output starts from zero and adds
// w[r][s] * x (a fused multiply-add, as the GEMM's tile) in the same order, r then s, with zeros
// for the padding; then the bias, and the same window maximum, position and ReLU as
// pool_relu_plane.
//
// The vector lanes are 16 pooling windows, in the pooled plane's order (row by row, so a vector
// may hold the end of one pooled row and the start of the next). The 4 outputs of a window and
// their 9 taps read the padded image at rows 2 p + i and columns 2 q + c, i and c in 0 .. 3: for
// each (i, c) the values of all windows form a plane of the pooled plane's shape, a "sub-plane"
// (i = 2, 3 are i = 0, 1 one pooled row further on: 8 sub-planes, made once per image by
// de-interleaving the padded rows). One load of a sub-plane serves the 4 outputs that use it,
// for two channels (weights in registers), and the window's 4 outputs are 4 vectors: the pooling
// is plain lane-by-lane comparisons and blends. The previous kernel had 32 output columns in the
// lanes (two rows): its pooling paired neighbouring lanes with 4 cross-lane permutations per
// channel, and it held 40 % of the peak; its 14-window rows also left 2 lanes of 16 idle, where
// the flat order leaves 12 of 208 (the last vector of a 196-window plane); that last vector now
// holds 4 channels' last 4 windows side by side (tail_windows).
#include "kernels/cpu/cpu.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#define MAX_H 64
#define MAX_W 32
// A sub-plane: (P2 + 1) pooled rows of Q2 windows, and a vector's reach past the last one.
#define SUB_FLOATS ((MAX_H / 2 + 1) * (MAX_W / 2) + 16)

// The 8 sub-planes of image xn (H x W): sub[(i c)][p Q2 + q] = xpad[2 p + i][2 q + c] for i in
// 0, 1 and c in 0 .. 3, p in 0 .. P2 (one row more: i = 2, 3 read it Q2 further on), xpad the
// image with a border of zeros. Each padded row gives its even and odd columns by two
// permutations of two vectors, read from column c - 1 of the image row for c = 0 and 2 (the
// masked loads put the border's zeros in, and read nothing outside the row): 4 per row, against
// 9 x 4 multiply-adds per channel and window. Through a padded copy of the image first (memset,
// a memcpy per row), this took a tenth of the block's time.
static void make_subplanes(float *sub, const float *xn, int64_t H, int64_t W, int64_t P2, int64_t Q2) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __mmask16 row = (__mmask16)((1u << Q2) - 1);
    uint64_t cols = ((uint64_t)1 << W) - 1; // the image's columns
    // Lanes of the two reads from column c - 1 that fall inside the row: c = 0 (column -1 ..) and c = 2 (1 ..)
    __mmask16 lo[2] = {(__mmask16)(cols << 1), (__mmask16)(cols >> 1)};
    __mmask16 hi[2] = {(__mmask16)(cols >> 15), (__mmask16)(cols >> 17)};
    for (int64_t h = 0; h < 2 * P2 + 2; h++) {
        float *out = sub + (h % 2) * 4 * SUB_FLOATS + h / 2 * Q2;
        bool inside = h >= 1 && h <= H;
        const float *in = xn + (h - 1) * W;
        for (int e = 0; e < 2; e++) {
            int c = 2 * e;
            __m512 a = _mm512_setzero_ps(), b = a;
            if (inside) a = _mm512_maskz_loadu_ps(lo[e], in + c - 1), b = _mm512_maskz_loadu_ps(hi[e], in + c + 15);
            _mm512_mask_storeu_ps(out + c * SUB_FLOATS, row, _mm512_permutex2var_ps(a, even, b));
            _mm512_mask_storeu_ps(out + (c + 1) * SUB_FLOATS, row, _mm512_permutex2var_ps(a, odd, b));
        }
    }
}

// 16 windows' outputs (top left tl, top right tr, bottom left bl, bottom right br; the bias not
// yet added) to the pooled values and their positions (pool_max), stored to y and where in the
// `valid` lanes (pool_windows). pool_relu_plane's comparisons, lane by lane:
// each column's larger value of the two rows (the top one on a tie), then the right one wins if
// larger, or equal and first in scan order (position 1 before 2: the right from the top and the
// left from the bottom). max(m, 0) is m > 0 ? m : 0, pool_relu_plane's ReLU (vmaxps returns its
// second operand on a tie or a NaN).
static inline __attribute__((always_inline)) void pool_max(__m512 tl, __m512 tr, __m512 bl, __m512 br, __m512 bias,
                                                           __m512 *y, __m128i *where) {
    tl = _mm512_add_ps(tl, bias), tr = _mm512_add_ps(tr, bias), bl = _mm512_add_ps(bl, bias);
    br = _mm512_add_ps(br, bias);
    __mmask16 won_left = _mm512_cmp_ps_mask(bl, tl, _CMP_GT_OQ), won_right = _mm512_cmp_ps_mask(br, tr, _CMP_GT_OQ);
    __m512 left = _mm512_mask_blend_ps(won_left, tl, bl), right = _mm512_mask_blend_ps(won_right, tr, br);
    __mmask16 first = _kandn_mask16(won_right, won_left); // right from the top, left from the bottom
    __mmask16 take_right = _kor_mask16(_mm512_cmp_ps_mask(right, left, _CMP_GT_OQ),
                                       _mm512_mask_cmp_ps_mask(first, right, left, _CMP_EQ_OQ));
    __m512 m = _mm512_mask_blend_ps(take_right, left, right);
    *y = _mm512_max_ps(m, _mm512_setzero_ps());
    const __m128i one = _mm_set1_epi8(1);
    __m128i left_at = _mm_maskz_mov_epi8(won_left, _mm_set1_epi8(2));    // 0 top left, 2 bottom left
    __m128i right_at = _mm_mask_mov_epi8(one, won_right, _mm_set1_epi8(3)); // 1 top right, 3 bottom right
    *where = _mm_mask_mov_epi8(left_at, take_right, right_at);
}

static inline __attribute__((always_inline)) void pool_windows(float *y, uint8_t *where, __m512 tl, __m512 tr,
                                                               __m512 bl, __m512 br, __m512 bias, __mmask16 valid) {
    __m512 m;
    __m128i at;
    pool_max(tl, tr, bl, br, bias, &m, &at);
    _mm512_mask_storeu_ps(y, valid, m);
    _mm_mask_storeu_epi8(where, valid, at);
}

// nvec vectors of 16 windows (from window v: the second one's `valid` lanes, the first whole
// when there are two) of nch channels (weights w[ch][t], biases bias[ch]): the 16 loads of each
// vector (rows i = 0 .. 3, columns c = 0 .. 3 of its windows) each feed the outputs that use
// them: output (a, b) of the window takes tap (r, s) = (i - a, c - b), in r-then-s order as i and
// c go up. 8 nvec nch chains of multiply-adds, 18 weights.
static inline __attribute__((always_inline)) void windows_block(float *y, uint8_t *where, int64_t pooled,
                                                                const float *sub, const __m512 w[2][9],
                                                                const __m512 bias[2], int64_t Q2, int64_t v,
                                                                __mmask16 valid, const int nch, const int nvec) {
    // Each sum's first term is a product (vmulps) where conv.c's path adds it to zero by an FMA:
    // the same value, except -0 for +0 when the product is -0, which every later step treats
    // alike (added to a nonzero term or to +0, compared, max(m, 0): +0 either way), so y and
    // `where` keep their bits. From zero, GCC copied a weight into each accumulator first (a
    // vmovaps per chain): 54 to 57 % of the peak, 58 to 59 % without.
    __m512 acc[2][2][2][2]; // [channel][vector][a][b]: a and b the window's row and column
    // Unrolled whole (GCC left these loops rolled: the accumulators then lived in memory)
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
#pragma GCC unroll 2
            for (int u = 0; u < nvec; u++) {
                __m512 xv = _mm512_loadu_ps(sub + ((i % 2) * 4 + c) * SUB_FLOATS + (i / 2) * Q2 + v + 16 * u);
                // in a register through an empty asm statement (no instruction), loaded once for the
                // 8 FMAs that use it: GCC otherwise made some of them load it again as their memory
                // operand, besides the spilled weights; Zen 5, with two 512-bit FMA units, then ran
                // out of loads (66 -> 71 % of the peak, bench_cpu_peak, 2026-12-06; the same bits)
                __asm__("" : "+v"(xv));
#pragma GCC unroll 2
                for (int a = 0; a < 2; a++)
#pragma GCC unroll 2
                    for (int b = 0; b < 2; b++) {
                        int r = i - a, s = c - b;
                        if (r < 0 || r > 2 || s < 0 || s > 2) continue;
#pragma GCC unroll 2
                        for (int ch = 0; ch < nch; ch++)
                            acc[ch][u][a][b] = r == 0 && s == 0 ? _mm512_mul_ps(w[ch][0], xv) // the first term
                                                                : _mm512_fmadd_ps(w[ch][r * 3 + s], xv, acc[ch][u][a][b]);
                    }
            }
    for (int ch = 0; ch < nch; ch++)
        for (int u = 0; u < nvec; u++)
            pool_windows(y + ch * pooled + v + 16 * u, where + ch * pooled + v + 16 * u, acc[ch][u][0][0],
                         acc[ch][u][0][1], acc[ch][u][1][0], acc[ch][u][1][1], bias[ch],
                         u + 1 < nvec ? (__mmask16)0xffff : valid);
}

// Channels k and k + 1 (nch = 2) or k alone (weights wk, 9 each) of one image from its
// sub-planes, two vectors of windows at a time: 16 chains of multiply-adds where one vector gave
// 8, just the FMA's latency times its two units (the same speed, measured, but with no margin;
// the second channel's weights are then read from memory, spilled by GCC: 16 accumulators and
// 18 weights do not fit the 32 registers; the loads have ports to spare).
static inline __attribute__((always_inline)) void channels(float *y, uint8_t *where, int64_t pooled, const float *sub,
                                                           const float *wk, const float *bias, int64_t Q2,
                                                           int64_t end, const int nch) {
    __m512 w[2][9], b[2];
    for (int ch = 0; ch < 2; ch++) {
        for (int t = 0; t < 9; t++) w[ch][t] = _mm512_set1_ps(wk[(ch < nch ? ch : 0) * 9 + t]);
        b[ch] = _mm512_set1_ps(bias && ch < nch ? bias[ch] : 0.0f);
    }
    for (int64_t v = 0; v < end; v += 32) {
        int64_t left = end - v - 16; // windows for the second vector
        if (left > 0) {
            __mmask16 valid = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            windows_block(y, where, pooled, sub, w, b, Q2, v, valid, nch, 2);
        } else {
            __mmask16 valid = (__mmask16)((1u << (end - v)) - 1); // end - v <= 16
            if (end - v == 16) valid = 0xffff;
            windows_block(y, where, pooled, sub, w, b, Q2, v, valid, nch, 1);
        }
    }
}

// The weights and biases of tail_windows' vectors, made once per call: for the vector of channels
// k0 = 16 / span x v .., lanes[v][t][l] = w[k0 + l / span][t] (t = 9: the bias), 0 past K.
static float (*tail_lanes(const float *w, const float *bias, int64_t K, int span))[10][16] {
    int per = 16 / span;
    int64_t vecs = (K + per - 1) / per;
    float(*lanes)[10][16] = cg_xmalloc((size_t)vecs * sizeof *lanes);
    for (int64_t v = 0; v < vecs; v++)
        for (int l = 0; l < 16; l++) {
            int64_t k = v * per + l / span;
            for (int t = 0; t < 9; t++) lanes[v][t][l] = k < K ? w[k * 9 + t] : 0.0f;
            lanes[v][9][l] = bias && k < K ? bias[k] : 0.0f;
        }
    return lanes;
}

// The last rem windows of each plane (from window v0 = pooled - rem; rem <= 8) when they would
// fill a vector of 16 lanes only partly (the tutorial's 196 windows: 12 whole vectors and one of
// 4): 16 / span channels share a vector, span lanes each (span = 4 or 8), channel k0 + j in lanes
// j span .. j span + rem - 1. Each lane computes what it would in its own vector: the same
// products, sums and comparisons, the same bits. The sub-plane loads read span floats and repeat
// them across the vector (broadcasts: no work for the vector pipes), the weights and biases differ
// from lane group to lane group, and the stores go channel by channel. Two such vectors at a time
// (ng = 2), as windows_block's two vectors, for chains enough to cover the FMA's latency. The
// tap loop is windows_block's, written out again: as one helper for both, GCC issued the FMAs
// channel by channel instead of alternating them, and the forward fell from 77 to 66 % of the
// peak (AMD EPYC VM, 4 alternated pairs).
static inline __attribute__((always_inline)) void tail_windows(float *y, uint8_t *where, int64_t pooled,
                                                               const float *sub, const float (*lanes)[10][16],
                                                               int64_t Q2, int64_t K, int64_t k0, int64_t rem,
                                                               const int span, const int ng) {
    const int per = 16 / span; // channels per vector
    int64_t v0 = pooled - rem;
    __m512 wv[2][9], bv[2], acc[2][2][2];
    for (int u = 0; u < ng; u++) {
        for (int t = 0; t < 9; t++) wv[u][t] = _mm512_loadu_ps(lanes[k0 / per + u][t]);
        bv[u] = _mm512_loadu_ps(lanes[k0 / per + u][9]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const float *at = sub + ((i % 2) * 4 + c) * SUB_FLOATS + (i / 2) * Q2 + v0;
            __m512 xv = span == 4 ? _mm512_broadcast_f32x4(_mm_loadu_ps(at))
                                  : _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)at)));
#pragma GCC unroll 2
            for (int a = 0; a < 2; a++)
#pragma GCC unroll 2
                for (int b = 0; b < 2; b++) {
                    int r = i - a, s = c - b;
                    if (r < 0 || r > 2 || s < 0 || s > 2) continue;
#pragma GCC unroll 2
                    for (int u = 0; u < ng; u++)
                        acc[u][a][b] = r == 0 && s == 0 ? _mm512_mul_ps(wv[u][0], xv)
                                                        : _mm512_fmadd_ps(wv[u][r * 3 + s], xv, acc[u][a][b]);
                }
        }
    for (int u = 0; u < ng; u++) {
        __m512 m;
        __m128i pos;
        pool_max(acc[u][0][0], acc[u][0][1], acc[u][1][0], acc[u][1][1], bv[u], &m, &pos);
        for (int j = 0; j < per; j++) {
            int64_t k = k0 + u * per + j;
            if (k >= K) break;
            // Lanes j span .. j span + rem - 1 to windows v0 .. v0 + rem - 1 of plane k: the
            // vector stored from j span elements before them, the other lanes masked off
            __mmask16 keep = (__mmask16)(((1u << rem) - 1) << (j * span));
            _mm512_mask_storeu_ps(y + k * pooled + v0 - j * span, keep, m);
            _mm_mask_storeu_epi8(where + k * pooled + v0 - j * span, keep, pos);
        }
    }
}

bool conv1_relu_pool_direct_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                int64_t pad, int64_t P, int64_t Q) {
    if (C != 1 || R != 3 || S != 3 || stride != 1 || pad != 1 || P != H || Q != W || W > MAX_W || H > MAX_H || P < 2 ||
        Q < 2)
        return false;
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    // A last vector of at most 8 windows goes to tail_windows (4 or 8 lanes a channel)
    int64_t rem = pooled % 16, end = pooled > 16 && rem > 0 && rem <= 8 ? pooled - rem : pooled;
    int span = rem <= 4 ? 4 : 8;
    float(*lanes)[10][16] = end < pooled ? tail_lanes(w, bias, K, span) : NULL;
    bool threads = N > 1 && N * K * P * Q * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t n = 0; n < N; n++) {
        // The sub-planes, and 16 zeros past each one's (P2 + 1) Q2 values (read by the last vector's idle lanes)
        float sub[8 * SUB_FLOATS] __attribute__((aligned(64)));
        for (int t = 0; t < 8; t++) _mm512_storeu_ps(sub + t * SUB_FLOATS + (P2 + 1) * Q2, _mm512_setzero_ps());
        make_subplanes(sub, x + n * H * W, H, W, P2, Q2);
        for (int64_t k = 0; k < K; k += 2) { // two channels at a time (one at the end of an odd K)
            int64_t plane = n * K + k;
            const float *bk = bias ? bias + k : NULL;
            if (k + 1 < K)
                channels(y + plane * pooled, where + plane * pooled, pooled, sub, w + k * 9, bk, Q2, end, 2);
            else
                channels(y + plane * pooled, where + plane * pooled, pooled, sub, w + k * 9, bk, Q2, end, 1);
        }
        float *yn = y + n * K * pooled;
        uint8_t *wn = where + n * K * pooled;
        for (int64_t k = 0; end < pooled && k < K; k += 2 * 16 / span) // the tails, 2 vectors of channels at a time
            if (span == 4)
                tail_windows(yn, wn, pooled, sub, lanes, Q2, K, k, pooled - end, 4, k + 16 / span < K ? 2 : 1);
            else
                tail_windows(yn, wn, pooled, sub, lanes, Q2, K, k, pooled - end, 8, k + 16 / span < K ? 2 : 1);
    }
    free(lanes);
    return true;
}
#else
bool conv1_relu_pool_direct_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                int64_t pad, int64_t P, int64_t Q) {
    (void)y, (void)where, (void)x, (void)w, (void)bias, (void)N, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S;
    (void)stride, (void)pad, (void)P, (void)Q;
    return false; // without AVX-512: conv.c's path
}
#endif

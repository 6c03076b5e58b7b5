// conv_direct_dw_one_channel.c: the fused block's window dW (conv_direct_dw.c says what it
// computes and in which order) with one input channel, the tutorial's first block, its windows in
// the lanes; and its db.
#include "kernels/cpu/conv_direct_dw.h"
#include "kernels/cpu/cpu.h"

#include <string.h>

#ifdef CG_DW_WINDOWS
// ---- One input channel (the tutorial's first block): the windows in the lanes -------------------
// With one input channel the patches' preparation (the transposes of dy and `where`, the patches)
// is shared by nothing: it cost as much as the window loop. So a vector here holds 16 windows of
// one output channel, in the pooled plane's order, and dy, y and `where` are read as they lie.
// Tap (r, s) of a window whose maximum is at (a, b) reads xpad[2 p + a + r][2 q + b + s]: for
// each (u, v) = (a + r, b + s) in 0 .. 3, the values of all windows form a "sub-plane" (as
// conv_direct.c's forward), and the tap's vector is one of four sub-planes lane by lane. Two
// blends choose it: first the column, cur[s] = b ? sub(u, s + 1) : sub(u, s) for each row u,
// then the row, a ? cur(r + 1) : cur(r). 12 + 9 blends and 9 FMAs per 16 windows and output
// channel, no permutation and no transpose, where the patches took 9 permutations and 9 FMAs per
// window and 16 output channels but twice that in preparation. (bench_cpu_peak, the tutorial's
// first block, one thread: 117 -> 121 GFLOP/s on the AMD EPYC, 99 -> 105 on the Xeon; of its
// 3.85 us an image on the AMD EPYC, db's sums in conv.c's order take 0.2.)

// Image xn's 16 sub-planes, 16 windows a block: blocks[(blk 16 + u 4 + v) 16 + l] =
// xpad[2 p + u][2 q + v] for window p Q2 + q = 16 blk + l (xp: a padded copy; the lanes past the
// last window stay as the caller set them, zero). A pooled row's Q2 <= 16 windows land in one or
// two blocks: each (u, v) row is gathered from a padded row's even columns (one two-source
// permutation), rotated to its lanes (one more), and stored under two masks.
static void window_subplanes(float *blocks, float *xp, const void *xn, bool half, int64_t H, int64_t W, int64_t P2,
                             int64_t Q2) {
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float));
    for (int64_t h = 0; h < H; h++) {
        float *row = xp + (h + 1) * PADDED_W + 1;
        if (!half) {
            memcpy(row, (const float *)xn + h * W, (size_t)W * sizeof(float));
            continue;
        }
        for (int64_t w0 = 0; w0 < W; w0 += 16) { // bf16 widened (exactly), 16 values at a time
            __mmask16 m = (__mmask16)(W - w0 >= 16 ? 0xffff : (1u << (W - w0)) - 1);
            _mm512_mask_storeu_ps(row + w0, m, load16(m, (const uint16_t *)xn + h * W + w0, true));
        }
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t p = 0; p < P2; p++) {
        int64_t i0 = p * Q2, blk = i0 / 16, l0 = i0 % 16;
        // lane l takes window q = l - l0 (mod 16) of the row: block blk from lane l0, then block blk + 1
        __m512i rot = _mm512_and_si512(_mm512_sub_epi32(lane, _mm512_set1_epi32((int)l0)), _mm512_set1_epi32(15));
        uint32_t span = (((uint32_t)1 << Q2) - 1) << l0;
        __mmask16 first = (__mmask16)span, second = (__mmask16)(span >> 16);
        for (int u = 0; u < 4; u++)
            for (int v = 0; v < 4; v++) {
                const float *in = xp + (2 * p + u) * PADDED_W + v; // columns v, v + 2, ..
                __m512 row = _mm512_permutex2var_ps(_mm512_loadu_ps(in), even, _mm512_loadu_ps(in + 16));
                row = _mm512_permutexvar_ps(rot, row);
                _mm512_mask_storeu_ps(blocks + (blk * 16 + u * 4 + v) * 16, first, row);
                if (second) _mm512_mask_storeu_ps(blocks + ((blk + 1) * 16 + u * 4 + v) * 16, second, row);
            }
    }
}

// How far ahead (floats) channel_windows asks for the planes it reads: y, dy and `where` run on
// into the next channels' planes and the next image's, which the hardware's prefetchers, on the AMD
// EPYC, brought in late (its loads of y and dy held a fifth of the loop's samples without this).
#define PREFETCH 512
// Output channel k of one image: its 16-lane sums acc (tap t's lane l: the terms of the windows
// i = l mod 16, in order, added to what the group's earlier images left) when dw is wanted, and
// its plane sum for db in conv.c's order (unpool_plane: lane j of 8 sums the windows j mod 8
// before the last pooled mod 8, which go one after the other into lane 0; then the lanes in order).
// With bf16 inputs (half) the plane sum is in double instead, every term a bf16 value: exact, so
// any order gives bf16_ops.c's bits (bf16_unpool.c's double lanes).
static inline __attribute__((always_inline)) double channel_windows(__m512 acc[9], const float *blocks,
                                                                    const void *dyk, const void *yk,
                                                                    const uint8_t *wk, int64_t pooled, const bool dw,
                                                                    const bool half) {
    int64_t n8 = pooled / 8 * 8, size = half ? 2 : 4; // bytes a value
    const char *dyb = dyk, *yb = yk;
    __m256 lanes = _mm256_setzero_ps();
    __m512d exact[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    float lane0_tail[16];
    int64_t tail_from = -1; // the last vector's windows past n8 (from its lane tail_from), added in order below
    for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
        _mm_prefetch(yb + (i0 + PREFETCH) * size, _MM_HINT_T0);
        _mm_prefetch(dyb + (i0 + PREFETCH) * size, _MM_HINT_T0);
        _mm_prefetch((const char *)(wk + i0 + PREFETCH), _MM_HINT_T0);
        __mmask16 valid = pooled - i0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (pooled - i0)) - 1);
        __mmask16 live = _mm512_cmp_ps_mask(load16(valid, yb + i0 * size, half), _mm512_setzero_ps(), _CMP_GT_OQ);
        __m512 g = load16(live, dyb + i0 * size, half);
        __m256 low = _mm512_castps512_ps256(g), high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1));
        if (half) {
            exact[0] = _mm512_add_pd(exact[0], _mm512_cvtps_pd(low));
            exact[1] = _mm512_add_pd(exact[1], _mm512_cvtps_pd(high));
        } else if (i0 + 16 <= n8) { // windows i0 + j, then i0 + 8 + j into lane j
            lanes = _mm256_add_ps(lanes, low);
            lanes = _mm256_add_ps(lanes, high);
        } else {
            if (n8 - i0 >= 8) lanes = _mm256_add_ps(lanes, low);
            tail_from = n8 - i0;
            _mm512_storeu_ps(lane0_tail, g);
        }
        if (!dw) continue;
        __m128i at = _mm_maskz_loadu_epi8(valid, wk + i0);
        __mmask16 right = _mm_test_epi8_mask(at, _mm_set1_epi8(1)), down = _mm_test_epi8_mask(at, _mm_set1_epi8(2));
        const float *b = blocks + i0 * 16; // this vector's 16 sub-planes
        __m512 above[3];
        for (int u = 0; u < 4; u++) {
            const float *row = b + u * 4 * 16;
            __m512 s0 = _mm512_loadu_ps(row), s1 = _mm512_loadu_ps(row + 16);
            __m512 s2 = _mm512_loadu_ps(row + 32), s3 = _mm512_loadu_ps(row + 48);
            // s1 and s2 serve two blends each: kept in registers, loaded once (GCC otherwise loaded
            // them again as the blends' memory operands, and the AMD EPYC, one 64-byte load a cycle,
            // ran a quarter slower)
            __asm__("" : "+v"(s1), "+v"(s2));
            __m512 cur[3] = {_mm512_mask_blend_ps(right, s0, s1), _mm512_mask_blend_ps(right, s1, s2),
                             _mm512_mask_blend_ps(right, s2, s3)};
            if (u > 0) // taps (u - 1, s): row u - 1, or row u where the maximum is in the bottom row
                for (int c = 0; c < 3; c++)
                    acc[(u - 1) * 3 + c] =
                        _mm512_fmadd_ps(g, _mm512_mask_blend_ps(down, above[c], cur[c]), acc[(u - 1) * 3 + c]);
            for (int c = 0; c < 3; c++) above[c] = cur[c];
        }
    }
    if (half) {
        double d[16], sum = 0.0;
        _mm512_storeu_pd(d, exact[0]), _mm512_storeu_pd(d + 8, exact[1]);
        for (int j = 0; j < 16; j++) sum += d[j];
        return sum;
    }
    float l[8];
    _mm256_storeu_ps(l, lanes);
    if (tail_from >= 0)
        for (int64_t j = tail_from; j < pooled % 16; j++) l[0] += lane0_tail[j];
    float sum = 0.0f;
    for (int j = 0; j < 8; j++) sum += l[j];
    return sum;
}

// One group's images (n0 .. n0 + count - 1): dW^T's slice (9 x K: slice[t K + k]) and each output
// channel's db sum (sums[k], in double, image after image). The 16 lane sums of each (k, t) go
// through the group's images and are then added in lane order, from zero.
void conv_dw_group_by_window_lanes(float *slice, double *sums, const void *dy, const void *y, const uint8_t *where,
                                   const void *x, bool half, int64_t n0, int64_t count, int64_t H, int64_t W, int64_t K,
                                   bool dw) {
    int64_t size = half ? 2 : 4; // bytes a value
    int64_t P2 = H / 2, Q2 = W / 2, pooled = P2 * Q2, vectors = (pooled + 15) / 16;
    float *xp = conv_dw_scratch(0, (H + 2) * PADDED_W * (int64_t)sizeof(float));
    float *blocks = conv_dw_scratch(2, vectors * 256 * (int64_t)sizeof(float));
    float *lane_sums = conv_dw_scratch(1, K * 9 * 16 * (int64_t)sizeof(float));
    memset(blocks, 0, (size_t)(vectors * 256) * sizeof(float)); // the lanes past the last window stay zero
    memset(lane_sums, 0, (size_t)(K * 9 * 16) * sizeof(float));
    for (int64_t n = n0; n < n0 + count; n++) {
        if (dw) window_subplanes(blocks, xp, (const char *)x + n * H * W * size, half, H, W, P2, Q2);
        for (int64_t k = 0; k < K; k++) {
            __m512 acc[9];
            float *at = lane_sums + k * 9 * 16;
            for (int t = 0; t < 9; t++) acc[t] = _mm512_loadu_ps(at + 16 * t);
            int64_t plane = (n * K + k) * pooled;
            const char *dyk = (const char *)dy + plane * size, *yk = (const char *)y + plane * size;
            if (half)
                sums[k] += dw ? channel_windows(acc, blocks, dyk, yk, where + plane, pooled, true, true)
                              : channel_windows(acc, blocks, dyk, yk, where + plane, pooled, false, true);
            else
                sums[k] += dw ? channel_windows(acc, blocks, dyk, yk, where + plane, pooled, true, false)
                              : channel_windows(acc, blocks, dyk, yk, where + plane, pooled, false, false);
            for (int t = 0; t < 9; t++) _mm512_storeu_ps(at + 16 * t, acc[t]);
        }
    }
    if (dw)
        for (int64_t k = 0; k < K; k++)
            for (int t = 0; t < 9; t++) {
                float sum = 0.0f;
                for (int l = 0; l < 16; l++) sum += lane_sums[(k * 9 + t) * 16 + l];
                slice[t * K + k] = sum;
            }
}
#endif

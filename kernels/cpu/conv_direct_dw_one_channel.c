// conv_direct_dw_one_channel.c: the fused block's window dW (conv_direct_dw.c says what it
// computes and in which order) with one input channel, the tutorial's first block, its windows in
// the lanes; and its db.
#include "kernels/cpu/bf16_direct.h"
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

// The group's sums: each (k, t)'s 16 lane sums added in lane order from zero, into slice[t K + k].
static void lanes_into_slice(float *slice, const float *lane_sums, int64_t K) {
    for (int64_t k = 0; k < K; k++)
        for (int t = 0; t < 9; t++) {
            float sum = 0.0f;
            for (int l = 0; l < 16; l++) sum += lane_sums[(k * 9 + t) * 16 + l];
            slice[t * K + k] = sum;
        }
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
    if (dw) lanes_into_slice(slice, lane_sums, K);
}

// ---- bf16 on AVX512-BF16: 32 windows a vector, two a vdpbf16ps ---------------------------------
// The same blends on bf16 values in 16-bit lanes: a vector holds 32 windows in the pooled plane's
// order, so 32-bit lane l holds windows 2 l and 2 l + 1, side by side as they lie in dy and in the
// sub-planes (cg_bf16_window_subplanes: no interleaving to do), and `where`'s 32 bytes give the
// blends' 32-bit masks. One vdpbf16ps a tap then adds, to lane l, window 2 l + 1's term and then
// window 2 l's (each product exact, each addition rounded): 9 of them and 21 blends per 32 windows
// where the f32 kernel takes 18 FMAs and 42 blends; db adds the 32 gradients of a vector in
// double, exact, as the f32 kernel does for bf16 inputs. Lane l sums windows 32 j + 2 l + 1, 32 j + 2 l for j = 0, 1 ..
// in order, image after image; the group's sum is its 16 lanes added in order from zero, as the f32
// kernel's. Not its bits, then (a pair at a time, in another order): test_conv_fused_cpu checks
// these against sums written in this order, and against the sums in double.
#define PAIRS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// Output channel k of one image (dyk, yk, wk: its planes), as channel_windows: the 9 taps' lane
// sums acc when dw is wanted, and its gradient's plane sum, returned (double, exact).
static inline __attribute__((always_inline)) PAIRS_TARGET double channel_window_pairs(__m512 acc[9],
                                                                                    const uint16_t *sub,
                                                                                    int64_t stride,
                                                                                    const uint16_t *dyk,
                                                                                    const uint16_t *yk,
                                                                                    const uint8_t *wk, int64_t pooled,
                                                                                    const bool dw) {
    __m512d exact[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    for (int64_t i0 = 0; i0 < pooled; i0 += 32) {
        _mm_prefetch((const char *)(yk + i0 + PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char *)(dyk + i0 + PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char *)(wk + i0 + PREFETCH), _MM_HINT_T0);
        __mmask32 valid = pooled - i0 >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << (pooled - i0)) - 1);
        // y > 0 as bf16 patterns: 0x0001 (the smallest positive) to 0x7f80 (+infinity), so y - 1 below
        // 0x7f80 unsigned: not +-0, a negative, or a NaN (the f32 kernel's ordered comparison)
        __m512i yv = _mm512_maskz_loadu_epi16(valid, yk + i0);
        __mmask32 live = _mm512_cmplt_epu16_mask(_mm512_sub_epi16(yv, _mm512_set1_epi16(1)), _mm512_set1_epi16(0x7f80));
        __m512i g = _mm512_maskz_loadu_epi16(live, dyk + i0);
        __m512 g0 = widen16_avx512(_mm512_castsi512_si256(g)), g1 = widen16_avx512(_mm512_extracti64x4_epi64(g, 1));
        exact[0] = _mm512_add_pd(exact[0], _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(g0)),
                                                         _mm512_cvtps_pd(_mm512_extractf32x8_ps(g0, 1))));
        exact[1] = _mm512_add_pd(exact[1], _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(g1)),
                                                         _mm512_cvtps_pd(_mm512_extractf32x8_ps(g1, 1))));
        if (!dw) continue;
        __m256i at = _mm256_maskz_loadu_epi8(valid, wk + i0);
        __mmask32 right = _mm256_test_epi8_mask(at, _mm256_set1_epi8(1));
        __mmask32 down = _mm256_test_epi8_mask(at, _mm256_set1_epi8(2));
        const uint16_t *b = sub + i0;
        __m512i above[3];
        for (int u = 0; u < 4; u++) {
            const uint16_t *row = b + u * 4 * stride;
            __m512i s0 = _mm512_loadu_si512(row), s1 = _mm512_loadu_si512(row + stride);
            __m512i s2 = _mm512_loadu_si512(row + 2 * stride), s3 = _mm512_loadu_si512(row + 3 * stride);
            __asm__("" : "+v"(s1), "+v"(s2)); // loaded once for their two blends each (as channel_windows)
            __m512i cur[3] = {_mm512_mask_blend_epi16(right, s0, s1), _mm512_mask_blend_epi16(right, s1, s2),
                              _mm512_mask_blend_epi16(right, s2, s3)};
            if (u > 0) // taps (u - 1, s): row u - 1, or row u where the maximum is in the bottom row
                for (int c = 0; c < 3; c++)
                    acc[(u - 1) * 3 + c] = _mm512_dpbf16_ps(acc[(u - 1) * 3 + c],
                                                            (__m512bh)_mm512_mask_blend_epi16(down, above[c], cur[c]),
                                                            (__m512bh)g);
            for (int c = 0; c < 3; c++) above[c] = cur[c];
        }
    }
    double d[8], sum = 0.0;
    _mm512_storeu_pd(d, _mm512_add_pd(exact[0], exact[1]));
    for (int j = 0; j < 8; j++) sum += d[j];
    return sum;
}

PAIRS_TARGET void conv_dw_group_by_window_pairs(float *slice, double *sums, const uint16_t *dy, const uint16_t *y,
                                                const uint8_t *where, const uint16_t *x, int64_t n0, int64_t count,
                                                int64_t H, int64_t W, int64_t K, bool dw) {
    int64_t pooled = (H / 2) * (W / 2), stride = (pooled + 31) / 32 * 32;
    uint16_t *sub = conv_dw_scratch(2, 16 * stride * (int64_t)sizeof(uint16_t));
    float *lane_sums = conv_dw_scratch(1, K * 9 * 16 * (int64_t)sizeof(float));
    // the sub-planes' lanes past the last window: zeros, times the zero gradients there
    for (int t = 0; t < 16; t++) memset(sub + t * stride + pooled, 0, (size_t)(stride - pooled) * sizeof(uint16_t));
    memset(lane_sums, 0, (size_t)(K * 9 * 16) * sizeof(float));
    for (int64_t n = n0; n < n0 + count; n++) {
        if (dw) cg_bf16_window_subplanes(sub, stride, x + n * H * W, H, W);
        for (int64_t k = 0; k < K; k++) {
            __m512 acc[9];
            float *at = lane_sums + k * 9 * 16;
            for (int t = 0; t < 9; t++) acc[t] = _mm512_loadu_ps(at + 16 * t);
            int64_t plane = (n * K + k) * pooled;
            sums[k] += dw ? channel_window_pairs(acc, sub, stride, dy + plane, y + plane, where + plane, pooled, true)
                          : channel_window_pairs(acc, sub, stride, dy + plane, y + plane, where + plane, pooled, false);
            for (int t = 0; t < 9; t++) _mm512_storeu_ps(at + 16 * t, acc[t]);
        }
    }
    if (dw) lanes_into_slice(slice, lane_sums, K);
}
#endif

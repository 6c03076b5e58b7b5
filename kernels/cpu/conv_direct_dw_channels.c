// conv_direct_dw_channels.c: the fused block's window dW (conv_direct_dw.c says what it computes
// and in which order) with whole vectors of input channels in the lanes: the tutorial's second
// block, 32 -> 64 channels, in f32 by FMAs and, on AVX512-BF16, in bf16 two windows a vdpbf16ps.
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/conv_direct_dw.h"
#include "kernels/cpu/cpu.h"

#include <string.h>

#ifdef CG_DW_WINDOWS
#include "kernels/cpu/transpose16.h"

// With whole vectors of input channels (C a multiple of 16) and no db to take, the input channels
// go in the lanes instead: for output channel k of window i, its maximum's position is one number,
// and its 9 taps x C input channels are 9 rows of C floats of the image transposed (xT below): 9
// loads and 9 FMAs per 16 input channels, g[k] broadcast, no permutation. Each dW element gets the
// same fused multiply-adds in the same order (window after window), so the same bits. bf16 inputs
// (half) are widened as they are loaded, which is exact: the bits of the f32 path on those values.
//
// Image n's input, padded and position-major: xT[((h + 1) (W + 2) + w + 1) C + c] = x[n][c][h][w],
// zeros around, by 16 x 16 transposes.
static void transpose_image(float *xT, const void *xn, bool half, int64_t C, int64_t H, int64_t W) {
    int64_t Wp = W + 2, hw = H * W;
    memset(xT, 0, (size_t)(Wp * C) * sizeof(float)); // the top and bottom rows of padding
    memset(xT + (H + 1) * Wp * C, 0, (size_t)(Wp * C) * sizeof(float));
    for (int64_t h = 1; h <= H; h++) { // the left and right columns
        memset(xT + h * Wp * C, 0, (size_t)C * sizeof(float));
        memset(xT + (h * Wp + W + 1) * C, 0, (size_t)C * sizeof(float));
    }
    for (int64_t c0 = 0; c0 < C; c0 += LANES)
        for (int64_t i0 = 0; i0 < hw; i0 += 16) {
            int64_t n = hw - i0 < 16 ? hw - i0 : 16;
            __mmask16 valid = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
            __m512 r[16];
            for (int c = 0; c < 16; c++) {
                int64_t at = (c0 + c) * hw + i0;
                r[c] = load16(valid, half ? (const void *)((const uint16_t *)xn + at) : (const float *)xn + at, half);
            }
            cg_transpose16(r);
            for (int64_t j = 0; j < n; j++) {
                int64_t h = (i0 + j) / W, w = (i0 + j) % W;
                _mm512_storeu_ps(xT + ((h + 1) * Wp + w + 1) * C + c0, r[j]);
            }
        }
}

// How many windows a block of image_by_input_channels takes: whole pooled rows, an even number of
// them (so that the bf16 kernel's pairs are (0, 1), (2, 3) ... of the whole image, whatever the
// block), as many as keep the padded rows they read (2 per pooled row, and 2 more; of each, the
// 32 channels a call takes, `padded_row_bytes`) within DW_ROWS_BYTES: the first-level cache holds
// them while every output channel's 18 sums pass over them, and each channel's sums are loaded
// and stored once a block. 24 KB fit the 32 KB cache of Zen 4 and the 48 KB of Zen 5 and of
// Intel's Sapphire Rapids; the tutorial's second block then takes 4 pooled rows (28 windows) in
// f32 and its whole image (49) in bf16, against 2 rows before: the dW kernel's cycles -18 % in f32
// and -26 % in bf16 (perf, one Zen 5 thread).
#define DW_ROWS_BYTES (24 * 1024)
static int64_t block_windows(int64_t padded_row_bytes, int64_t Q2) {
    int64_t rows = (DW_ROWS_BYTES / padded_row_bytes - 2) / 2 / 2 * 2;
    return (rows < 2 ? 2 : rows) * Q2;
}

// Where a window's maximum is in xT from the window's top left input, by its position in the
// window (0 top left, 1 top right, 2 bottom left, 3 bottom right: `where`), for C channels a position.
static void maximum_offsets(int64_t at_pos[4], int64_t W, int64_t C) {
    for (int pos = 0; pos < 4; pos++) at_pos[pos] = ((pos >> 1) * (W + 2) + (pos & 1)) * C;
}

// Image n's terms for input channels c0 .. c0 + 16 nv - 1 of every output channel, added to the
// group's sums sliceT[(k 9 + t) C + c] (corner[i]: window i's top left input in xT; gm: the
// gradients, dy where y > 0, else 0, (K, pooled)). A block of windows at a time (block_windows)
// for all output channels, the 18 sums of a channel loaded and stored around each: the rows of xT
// they read stay in the first-level cache, where a channel over the whole image read all of xT
// (32 KB for the tutorial) again from the second-level cache for each output channel. Each sum
// still takes its windows in order: the same bits.
static inline __attribute__((always_inline)) void image_by_input_channels(float *sliceT, const float *xT,
                                                                          const float *gm, const uint8_t *where,
                                                                          const int32_t *corner, int64_t n, int64_t C,
                                                                          int64_t W, int64_t K, int64_t pooled,
                                                                          int64_t Q2, int64_t c0, const int nv,
                                                                          ahead *pf, int per_k) {
    int64_t Wp = W + 2, at_pos[4], block = block_windows(Wp * 2 * LANES * (int64_t)sizeof(float), Q2);
    maximum_offsets(at_pos, W, C);
    for (int64_t i0 = 0; i0 < pooled; i0 += block) {
        int64_t i1 = i0 + block < pooled ? i0 + block : pooled;
        for (int64_t k = 0; k < K; k++) {
            __m512 acc[9][2];
            float *at = sliceT + k * 9 * C + c0;
            load_sums(acc, at, C, nv);
            const float *gk = gm + k * pooled;
            const uint8_t *wk = where + (n * K + k) * pooled;
            for (int64_t i = i0; i < i1; i++) {
                __m512 g = _mm512_set1_ps(gk[i]);
                // The 3 rows of taps, each from a pointer of its own: a tap's column is then a
                // constant offset (s C + 16 v floats) when C is (one offset per tap, 18, did not fit
                // the general registers: GCC kept them in vector registers and moved one over per load)
                const float *row[3];
                row[0] = xT + corner[i] + at_pos[wk[i] & 3] + c0, row[1] = row[0] + Wp * C, row[2] = row[1] + Wp * C;
                for (int t = 0; t < 9; t++) {
                    const float *src = row[t / 3] + (t % 3) * C;
                    acc[t][0] = _mm512_fmadd_ps(g, _mm512_loadu_ps(src), acc[t][0]);
                    if (nv > 1) acc[t][1] = _mm512_fmadd_ps(g, _mm512_loadu_ps(src + LANES), acc[t][1]);
                }
            }
            store_sums(at, acc, C, nv);
            ask_ahead(pf, per_k);
        }
    }
}

// ---- bf16 on AVX512-BF16: two windows a vdpbf16ps ---------------------------------------------
// image_by_input_channels with vdpbf16ps: lane c of acc += x_a[c] g_a + x_b[c] g_b for two windows
// a, b at once, their two gradients a pair broadcast to every lane and their two rows of taps
// interleaved word by word, 32 input channels of each (unpacklo / unpackhi of two 512-bit loads):
// 9 of the instruction per two windows and 32 input channels, where the FMAs took 36. The products
// of bf16 values are exact; the sums are not the FMAs' (a pair is added at once), so not the f32
// kernel's bits: test_bf16_cpu holds them to its tolerance. unpacklo / unpackhi work inside each
// 128-bit lane, so xT16 stores each 32 channels in the order that makes their results channels
// 0 .. 15 and 16 .. 31 (pairs_order). A lone last window pairs with a zero gradient.
#define PAIRS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// xT16 (bf16, the positions of xT, 32 channels a chunk reordered): word q 8 + j of a chunk holds
// channel 4 q + j, word q 8 + 4 + j channel 16 + 4 q + j (q = 0 .. 3, j = 0 .. 3): the 64-bit
// pieces of channels 0 .. 15 and 16 .. 31 alternated. From xT (f32 holding bf16 values: exact).
static PAIRS_TARGET void pairs_order(uint16_t *xT16, const float *xT, int64_t positions, int64_t C) {
    const __m512i alternate = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    for (int64_t p = 0; p < positions; p++)
        for (int64_t c0 = 0; c0 < C; c0 += 32) {
            const float *src = xT + p * C + c0;
            __m256i lo = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(_mm512_loadu_ps(src)), 16));
            __m256i hi = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(_mm512_loadu_ps(src + 16)), 16));
            _mm512_storeu_si512(xT16 + p * C + c0, _mm512_permutex2var_epi64(_mm512_castsi256_si512(lo), alternate,
                                                                             _mm512_castsi256_si512(hi)));
        }
}

static PAIRS_TARGET void image_by_input_channels_pairs(float *sliceT, const uint16_t *xT16, const uint16_t *gm16,
                                                       const int32_t *offs, int64_t C, int64_t W, int64_t K,
                                                       int64_t pooled, int64_t pooled2, int64_t Q2, int64_t c0,
                                                       ahead *pf, int per_k) {
    int64_t Wp = W + 2, block = block_windows(Wp * 32 * (int64_t)sizeof(uint16_t), Q2);
    for (int64_t i0 = 0; i0 < pooled; i0 += block) {
        int64_t i1 = i0 + block < pooled ? i0 + block : pooled;
        for (int64_t k = 0; k < K; k++) {
            __m512 acc[9][2];
            float *at = sliceT + k * 9 * C + c0;
            load_sums(acc, at, C, 2);
            const uint16_t *gk = gm16 + k * pooled2;
            const int32_t *ak = offs + k * pooled2;
            for (int64_t i = i0; i < i1; i += 2) { // (a lone last window: its pair's gradient is 0, its input its own)
                uint32_t pair;
                memcpy(&pair, gk + i, sizeof pair); // windows i and i + 1, an even i: one aligned load
                __m512bh g = (__m512bh)_mm512_set1_epi32((int32_t)pair);
                const uint16_t *a = xT16 + ak[i] + c0, *b = xT16 + ak[i + 1] + c0;
                for (int t = 0; t < 9; t++) {
                    int64_t off = (t / 3) * Wp * C + (t % 3) * C;
                    __m512i va = _mm512_loadu_si512(a + off), vb = _mm512_loadu_si512(b + off);
                    __asm__("" : "+v"(va), "+v"(vb)); // loaded once for both unpacks (see above)
                    acc[t][0] = _mm512_dpbf16_ps(acc[t][0], (__m512bh)_mm512_unpacklo_epi16(va, vb), g);
                    acc[t][1] = _mm512_dpbf16_ps(acc[t][1], (__m512bh)_mm512_unpackhi_epi16(va, vb), g);
                }
            }
            store_sums(at, acc, C, 2);
            ask_ahead(pf, per_k);
        }
    }
}

// Image n's gradients as the FMAs take them: gm[k pooled + i] = dy[n][k][i] where y > 0, else 0
// (chosen window by window it was a branch on the data, mispredicted about as often as not).
static void masked_gradients(float *gm, const void *dy, const void *y, bool half, int64_t n, int64_t K,
                             int64_t pooled) {
    size_t size = half ? 2 : 4; // bytes a value
    for (int64_t k = 0; k < K; k++) {
        const char *dyk = (const char *)dy + (n * K + k) * pooled * size;
        const char *yk = (const char *)y + (n * K + k) * pooled * size;
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : (1u << (pooled - i0)) - 1);
            __mmask16 live = _mm512_cmp_ps_mask(load16(valid, yk + i0 * size, half), _mm512_setzero_ps(), _CMP_GT_OQ);
            _mm512_mask_storeu_ps(gm + k * pooled + i0, valid, load16(live, dyk + i0 * size, half));
        }
    }
}

// The pairs' inputs for image n, each output channel's row of pooled2 (pooled rounded up to even)
// values: gm16 the gradients as masked_gradients's, in bf16 (dy where y > 0, else 0: y > 0 as bf16
// patterns, 0x0001 to +infinity 0x7f80, so y - 1 below 0x7f80 unsigned); offs the offset in xT16 of
// each window's maximum, corner[i] + at_pos[where]. A last lone window's partner: gradient 0, the
// lone window's offset (as the loop took it before: `b = a`). Vector by vector, where a scalar
// rounding and three loads a window took an eighth of this kernel's samples.
static PAIRS_TARGET void pair_inputs(uint16_t *gm16, int32_t *offs, const uint16_t *dy, const uint16_t *y,
                                     const uint8_t *where, const int32_t *corner, const int64_t at_pos[4], int64_t n,
                                     int64_t K, int64_t pooled, int64_t pooled2) {
    const __m512i offsets = _mm512_setr_epi32((int)at_pos[0], (int)at_pos[1], (int)at_pos[2], (int)at_pos[3], 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t k = 0; k < K; k++) {
        int64_t plane = (n * K + k) * pooled;
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : (1u << (pooled - i0)) - 1);
            __m256i yv = _mm256_maskz_loadu_epi16(valid, y + plane + i0);
            __mmask16 live = _mm256_cmplt_epu16_mask(_mm256_sub_epi16(yv, _mm256_set1_epi16(1)),
                                                     _mm256_set1_epi16(0x7f80));
            _mm256_mask_storeu_epi16(gm16 + k * pooled2 + i0, valid, _mm256_maskz_loadu_epi16(live, dy + plane + i0));
            __m512i w = _mm512_and_si512(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(valid, where + plane + i0)),
                                         _mm512_set1_epi32(3));
            __m512i o =
                _mm512_add_epi32(_mm512_maskz_loadu_epi32(valid, corner + i0), _mm512_permutexvar_epi32(w, offsets));
            _mm512_mask_storeu_epi32(offs + k * pooled2 + i0, valid, o);
        }
        if (pooled2 > pooled) { // a lone last window's partner: its offset from the inputs (read back
            // from offs, just written by a masked vector store, it waited for that store: 3 % of this
            // kernel's samples, on that one line)
            gm16[k * pooled2 + pooled] = 0;
            offs[k * pooled2 + pooled] = corner[pooled - 1] + (int32_t)at_pos[where[plane + pooled - 1] & 3];
        }
    }
}

void conv_dw_group_by_input_channels(float *slice, const void *dy, const void *y, const uint8_t *where, const void *x,
                                     bool half, bool pairs, int64_t n0, int64_t count, int64_t C, int64_t H, int64_t W,
                                     int64_t K) {
    int64_t Q2 = W / 2, pooled = (H / 2) * Q2;
    int32_t corner[MAX_H * MAX_W / 4];
    for (int64_t i = 0; i < pooled; i++) corner[i] = (int32_t)((2 * (i / Q2) * (W + 2) + 2 * (i % Q2)) * C);
    float *xT = conv_dw_scratch(2, ((H + 2) * (W + 2) * C) * (int64_t)sizeof(float));
    // the f32 gradients (K x pooled), or on the pairs' path the maxima's offsets (K x pooled rounded up to even)
    float *gm = conv_dw_scratch(1, K * ((pooled + 1) / 2 * 2) * (int64_t)sizeof(float));
    size_t size = half ? 2 : 4; // bytes a value of x, dy and y
    for (int64_t n = n0; n < n0 + count; n++) {
        int64_t image = n * C * H * W;
        const void *xn = half ? (const void *)((const uint16_t *)x + image) : (const void *)((const float *)x + image);
        transpose_image(xT, xn, half, C, H, W);
        if (!pairs) masked_gradients(gm, dy, y, half, n, K, pooled);
        // The group's next image's x, dy, y and where (ahead, conv_direct_dw.h), a share after each
        // output channel's window loop: its transpose read x's 32 planes from the third-level cache
        // (an eighth of this kernel's samples in bf16, on those loads), as conv_direct_dw.c's did.
        ahead pf = {{NULL}, {NULL}};
        int per_k = 0;
        if (n + 1 < n0 + count) {
            const char *xs = (const char *)x + (n + 1) * C * H * W * size;
            const char *dys = (const char *)dy + (n + 1) * K * pooled * size;
            const char *ys = (const char *)y + (n + 1) * K * pooled * size;
            const char *ws = (const char *)(where + (n + 1) * K * pooled);
            pf = (ahead){{xs, dys, ys, ws},
                         {xs + C * H * W * size, dys + K * pooled * size, ys + K * pooled * size, ws + K * pooled}};
            // at least K shares an image (one per output channel, more with several blocks or slices
            // of 32 input channels: then the last ones find nothing left to ask for)
            int64_t lines = (C * H * W * (int64_t)size + 2 * K * pooled * (int64_t)size + K * pooled) / 64 + 4;
            per_k = (int)(lines / K + 1);
        }
        if (pairs) { // the same inputs in bf16, for two windows a vdpbf16ps
            int64_t pooled2 = (pooled + 1) / 2 * 2, at_pos[4];
            uint16_t *xT16 = conv_dw_scratch(3, ((H + 2) * (W + 2) * C) * (int64_t)sizeof(uint16_t));
            uint16_t *gm16 = conv_dw_scratch(0, K * pooled2 * (int64_t)sizeof(uint16_t));
            int32_t *offs = (int32_t *)gm; // gm's room: the f32 gradients are not made on this path
            maximum_offsets(at_pos, W, C);
            pairs_order(xT16, xT, (H + 2) * (W + 2), C);
            pair_inputs(gm16, offs, dy, y, where, corner, at_pos, n, K, pooled, pooled2);
            for (int64_t c0 = 0; c0 < C; c0 += 32)
                image_by_input_channels_pairs(slice, xT16, gm16, offs, C, W, K, pooled, pooled2, Q2, c0, &pf, per_k);
            continue;
        }
        for (int64_t c0 = 0; c0 < C; c0 += 2 * LANES) {
            if (C == 32) // the tutorial's second block: the tap offsets become constants
                image_by_input_channels(slice, xT, gm, where, corner, n, 32, W, K, pooled, Q2, 0, 2, &pf, per_k);
            else if (C - c0 >= 2 * LANES)
                image_by_input_channels(slice, xT, gm, where, corner, n, C, W, K, pooled, Q2, c0, 2, &pf, per_k);
            else
                image_by_input_channels(slice, xT, gm, where, corner, n, C, W, K, pooled, Q2, c0, 1, &pf, per_k);
        }
    }
}
#endif

// conv_direct_dw.c: the weight gradient of a fused conv 3 x 3 (stride 1, padding 1) + bias + ReLU
// + 2 x 2 max pooling block (the tutorial CNN's two blocks; CIFAR's first), straight from the
// pooled gradient, with output channels, input channels or windows in the vector lanes (below);
// and its bias gradient, asked for
// where no dx is wanted (a first layer). dx, when wanted, comes from conv.c's path (which then
// skips dW's columns and product). False (nothing done) for other shapes or without AVX-512.
//
// The convolution's output gradient is zero except at each window's maximum (and there only where
// the ReLU let it through, y > 0): of a window's 4 positions, one takes the window's gradient g,
// the others nothing. So dW[k][c][r][s] = sum over the windows of g[k] x xpad[c][2 p + a_k + r]
// [2 q + b_k + s], (a_k, b_k) the position of output channel k's maximum in window (p, q): 9
// multiply-adds per window, input and output channel, where the dense product (the unpooled
// gradient, im2col and a GEMM) does 36, three of four of them times zero. For the tutorial's
// second block (32 -> 64 channels) that product was half of the block's backward.
//
// The 4 x 4 padded pixels of input channel c that a window's 4 positions and 9 taps read are its
// "patch", 16 floats in a row (made once per image, shared by all output channels). Output
// channel k's tap (r, s) is patch element base_k + 4 r + s, base_k = 4 a_k + b_k (0, 1, 4 or 5).
// A vector of 16 output channels loads the patch from element 4 r + s (16 floats, the patch and
// what follows it) and picks lane base_k for lane k with one permutation (vpermps, its index
// vector the 16 bases): then one FMA per tap and vector. The bases are `where` transposed to
// window-major (where_bases), the gradients the pooled dy, masked by y > 0 and transposed (dyT),
// as the FMAs need them channel by channel in the lanes. For each input channel and 32 output
// channels, 18 sums stay in registers over an image's windows. With whole vectors of input
// channels (the second block's 32), they go in the lanes instead (image_by_input_channels): an
// output channel's maximum is then one position for all of them, its taps rows of the image
// transposed, and no permutation is needed. With one input channel (the tutorial's first block)
// the patches' preparation is shared by nothing, and the windows go in the lanes instead
// (group_by_window_lanes, below): 16 windows of one output channel a vector, their taps chosen
// from 16 "sub-planes" of the image by two blends.
//
// The order of the sums: each dW element adds its windows' terms by fused multiply-adds,
// window after window (row by row) and image after image through a group of `group` images,
// starting from zero; the groups' sums are added to dW in group order. Not conv.c's order (the
// GEMM sums positions in blocks of 256): the results differ from that path's in the last bits,
// the same on 1 thread or many. With the windows in the lanes, lane l sums the windows i = l mod 16
// (in order, image after image) and the group's sum is its 16 lanes added in order. tests/
// test_conv_cpu.c checks them bit for bit against sums written in these orders, and against the
// sums in double. db is conv.c's, bit for bit (sum_lanes, channel_windows).
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
// (CG_CPU_MATRIX_KERNELS, a compiler that knows the bf16 instructions: for bf16_vec.h's widening)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(CG_CPU_MATRIX_KERNELS)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"

// The padded image, from which the patches are cut: row h + 1, column w + 1 hold x[h][w], zeros
// around (as conv_direct.c).
#define PADDED_W 48
#define MAX_H 64
#define MAX_W 32
// Channels per call of the window loop: 2 vectors, 18 accumulators (64 channels would need 36
// of the 32 registers).
#define LANES 16
// At most this many output channels (image_sums) and input channels.
#define MAX_K 256
#define MAX_C 256

// A buffer of at least `bytes` for this thread, kept between calls.
static void *scratch(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[4];
    return cg_thread_floats_aligned(&buffers[which], (bytes + 3) / 4);
}

// The 8 lanes of conv.c's plane sum (unpool_plane: lane l sums the windows i = l mod 8 in order,
// the last n mod 8 windows go one after the other into lane 0, then the lanes are added in order
// to 0): the sums of 16 channels side by side,
// from the transposed gradient (16 windows of 16 channels, window i0 + j in g[j]). The same
// additions of the same values (0 where y <= 0) in the same order: db has the same bits as on
// that path (test_conv_cpu compares them). Summed apart, one plane at a time, the lanes' chain
// waited on the adder at each step and took a sixth of the backward.
static inline __attribute__((always_inline)) void sum_lanes(__m512 lanes[8], const __m512 g[16], int64_t i0,
                                                           int64_t n) {
    int64_t n8 = n / 8 * 8;
    if (i0 + 16 <= n8) { // a whole block: constant lanes, kept in registers
        for (int j = 0; j < 16; j++) lanes[j % 8] = _mm512_add_ps(lanes[j % 8], g[j]);
        return;
    }
    for (int j = 0; j < 16 && i0 + j < n; j++) {
        int l = i0 + j < n8 ? j % 8 : 0;
        lanes[l] = _mm512_add_ps(lanes[l], g[j]);
    }
}

// 64 windows (i0 ..) of `where` for up to 32 channels (planes `plane` bytes apart from row; rows
// past nch: 0xff bytes, never read) transposed to window-major: bases[win 32 + k] = the offset of
// channel k's maximum in the window's 4 x 4 patch (top left 0, top right 1, bottom left 4, bottom
// right 5: where + (where & 2)). Three rounds of unpacks inside the 128-bit lanes turn 8 channels x
// 16 windows into 8-byte rows (one window's 8 channels), two more gather the 4 groups of 8
// channels: each window's 32 bytes, one 32-byte store. 3.5 shuffles a window.
static void where_bases(uint8_t *bases, const uint8_t *row, int64_t plane, int64_t nch, int64_t i0, int64_t valid) {
    __mmask64 vm = valid >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << valid) - 1;
    __m512i v[4][8]; // v[group][m], 128-bit lane L: windows 16 L + 2 m and + 1, 8 channels each
    const __m512i two = _mm512_set1_epi8(2);
    for (int grp = 0; grp < 4; grp++) {
        __m512i z[8], p[8], q[8];
        for (int a = 0; a < 8; a++) {
            int64_t k = grp * 8 + a;
            z[a] = k < nch ? _mm512_maskz_loadu_epi8(vm, row + k * plane + i0) : _mm512_set1_epi8(-1);
            z[a] = _mm512_add_epi8(z[a], _mm512_and_si512(z[a], two)); // 0 1 2 3 -> 0 1 4 5
        }
        for (int a = 0; a < 8; a += 2) { // channel pairs: windows 0..7 (p[a]) and 8..15 (p[a + 1]) of each lane
            p[a] = _mm512_unpacklo_epi8(z[a], z[a + 1]);
            p[a + 1] = _mm512_unpackhi_epi8(z[a], z[a + 1]);
        }
        for (int h = 0; h < 2; h++) // channels 4 h .. 4 h + 3: windows 0-3, 4-7, 8-11, 12-15
            for (int e = 0; e < 2; e++) {
                q[4 * h + 2 * e] = _mm512_unpacklo_epi16(p[4 * h + e], p[4 * h + 2 + e]);
                q[4 * h + 2 * e + 1] = _mm512_unpackhi_epi16(p[4 * h + e], p[4 * h + 2 + e]);
            }
        for (int s = 0; s < 4; s++) { // 8 channels: windows 4 s, 4 s + 1 (m = 2 s) and 4 s + 2, 4 s + 3
            v[grp][2 * s] = _mm512_unpacklo_epi32(q[s], q[4 + s]);
            v[grp][2 * s + 1] = _mm512_unpackhi_epi32(q[s], q[4 + s]);
        }
    }
    const __m512i lanes01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i lanes23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int m = 0; m < 8; m++)
        for (int e = 0; e < 2; e++) { // window 2 m + e of each lane
            __m512i lo = e ? _mm512_unpackhi_epi64(v[0][m], v[1][m]) : _mm512_unpacklo_epi64(v[0][m], v[1][m]);
            __m512i hi = e ? _mm512_unpackhi_epi64(v[2][m], v[3][m]) : _mm512_unpacklo_epi64(v[2][m], v[3][m]);
            __m512i pair[2] = {_mm512_permutex2var_epi64(lo, lanes01, hi),  // windows r, r + 16
                               _mm512_permutex2var_epi64(lo, lanes23, hi)}; // r + 32, r + 48
            for (int t = 0; t < 4; t++) {
                int64_t win = 16 * t + 2 * m + e;
                if (win >= valid) continue;
                __m256i w32 = t % 2 ? _mm512_extracti64x4_epi64(pair[t / 2], 1) : _mm512_castsi512_si256(pair[t / 2]);
                _mm256_storeu_si256((__m256i *)(bases + (i0 + win) * 32), w32);
            }
        }
}

// Image n's inputs to the window loops: its patches, channel by channel (C x pooled x 16 floats:
// patches[(c pooled + i) 16 + 4 a + b] = xpad[c][2 p + a][2 q + b], window i = p Q2 + q, xpad the
// image with a border of zeros, xp a channel's scratch); dyT (pooled x K floats: dyT[i K + k] =
// dy[k][i] where y[k][i] > 0, else 0), transposed 16 channels x 16 windows at a time in
// registers; for each group of 32 output channels, the bases (where_bases); and each output
// channel's plane sum into sums[k] (db).
static void prepare_image(float *patches, float *xp, float *dyT, uint8_t *bases, int64_t wins, double *sums,
                          const float *x, const float *dy, const float *y, const uint8_t *where, int64_t n, int64_t C,
                          int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float)); // the border stays zero
    for (int64_t c = 0; c < C; c++) {
        for (int64_t h = 0; h < H; h++)
            memcpy(xp + (h + 1) * PADDED_W + 1, x + ((n * C + c) * H + h) * W, (size_t)W * sizeof(float));
        float *pc = patches + c * pooled * 16;
        for (int64_t p = 0; p < P2; p++)
            for (int64_t q = 0; q < Q2; q++)
                for (int a = 0; a < 4; a++)
                    _mm_storeu_ps(pc + (p * Q2 + q) * 16 + 4 * a, _mm_loadu_ps(xp + (2 * p + a) * PADDED_W + 2 * q));
    }
    for (int64_t v = 0; v < K / LANES; v++) {
        __m512 lanes[8];
        for (int l = 0; l < 8; l++) lanes[l] = _mm512_setzero_ps();
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : (1u << (pooled - i0)) - 1);
            __m512 g[16];
            for (int c = 0; c < 16; c++) {
                int64_t plane = (n * K + v * LANES + c) * pooled + i0;
                __m512 yv = _mm512_maskz_loadu_ps(valid, y + plane);
                g[c] = _mm512_maskz_loadu_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), dy + plane);
            }
            cg_transpose16(g);
            for (int j = 0; j < 16; j++) _mm512_storeu_ps(dyT + (i0 + j) * K + v * LANES, g[j]);
            sum_lanes(lanes, g, i0, pooled);
        }
        __m512 sum = _mm512_add_ps(_mm512_setzero_ps(), lanes[0]);
        for (int l = 1; l < 8; l++) sum = _mm512_add_ps(sum, lanes[l]);
        float s16[LANES];
        _mm512_storeu_ps(s16, sum);
        for (int c = 0; c < LANES; c++) sums[v * LANES + c] = s16[c];
    }
    for (int64_t k0 = 0; k0 < K; k0 += 32) {
        uint8_t *b = bases + k0 / 32 * wins * 32;
        const uint8_t *row = where + (n * K + k0) * pooled;
        int64_t nch = K - k0 < 32 ? K - k0 : 32;
        for (int64_t i0 = 0; i0 < pooled; i0 += 64) {
            if (pooled - i0 >= 16) {
                where_bases(b, row, pooled, nch, i0, pooled - i0 < 64 ? pooled - i0 : 64);
                continue;
            }
            // A short tail (the tutorial's last 4 windows of 196) byte by byte: where_bases
            // transposes a whole block of 64 for them.
            for (int64_t i = i0; i < pooled; i++)
                for (int64_t k = 0; k < nch; k++) {
                    uint8_t at = row[k * pooled + i];
                    b[i * 32 + k] = (uint8_t)(at + (at & 2));
                }
        }
    }
}

// The next image's inputs (y, dy: K x pooled floats each, `where`: K x pooled bytes), asked for
// into the second-level cache a few lines at a time while the window loop of this image runs
// (its loads leave room for them). Without it, prepare_image read its 56 KB from the third-level
// cache with 32 planes interleaved, which the hardware prefetchers follow badly: that reading, not
// the transposes, was the largest part of its time (with the transposes taken out, the backward
// ran no faster; with dyT not made at all, 38 -> 66 % of the peak).
typedef struct {
    const char *at[3], *end[3]; // the three regions still to ask for, each from at to end
} ahead;

// Up to `lines` more cache lines of the regions, in order.
static inline __attribute__((always_inline)) void ask_ahead(ahead *a, int lines) {
    for (int r = 0; r < 3 && lines > 0; r++)
        for (; a->at[r] < a->end[r] && lines > 0; a->at[r] += 64, lines--) _mm_prefetch(a->at[r], _MM_HINT_T1);
}

// The windows of one image for channels k0 .. k0 + 16 nv - 1 (their group of 32's bases), added to
// acc: per window, the gradient vectors, the bases widened to 32-bit indices, and per tap one load
// of the patch from element 4 r + s, one permutation and one FMA per vector. 18 independent chains
// (9 taps x 2 vectors) cover the FMA's latency.
static inline __attribute__((always_inline)) void image_windows(__m512 acc[9][2], const float *patches,
                                                                const float *dyT, const uint8_t *bases,
                                                                int64_t pooled, int64_t Q2, int64_t K, int64_t k0,
                                                                const int nv, ahead *pf, int per_row) {
    for (int64_t i = 0; i < pooled; i++) {
        const float *pt = patches + i * 16, *g = dyT + i * K + k0;
        const uint8_t *b = bases + i * 32;
        __m512 g0 = _mm512_loadu_ps(g), g1 = nv > 1 ? _mm512_loadu_ps(g + LANES) : g0;
        __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b));
        __m512i b1 = nv > 1 ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + LANES))) : b0;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++) {
                __m512 xq = _mm512_loadu_ps(pt + 4 * r + s);
                acc[r * 3 + s][0] = _mm512_fmadd_ps(g0, _mm512_permutexvar_ps(b0, xq), acc[r * 3 + s][0]);
                if (nv > 1)
                    acc[r * 3 + s][1] = _mm512_fmadd_ps(g1, _mm512_permutexvar_ps(b1, xq), acc[r * 3 + s][1]);
            }
        if ((i + 1) % Q2 == 0) ask_ahead(pf, per_row); // a pooled row's share of the next image's inputs
    }
}

// A window loop's 9 x nv sums from the group's slice (tap t's 16 nv values at at + t stride) and back:
// stored and loaded as they are, so that each stays one chain of FMAs from image to image.
static inline __attribute__((always_inline)) void load_sums(__m512 acc[9][2], const float *at, int64_t stride,
                                                            const int nv) {
    for (int t = 0; t < 9; t++) {
        acc[t][0] = _mm512_loadu_ps(at + t * stride);
        acc[t][1] = nv > 1 ? _mm512_loadu_ps(at + t * stride + LANES) : acc[t][0];
    }
}

static inline __attribute__((always_inline)) void store_sums(float *at, __m512 acc[9][2], int64_t stride,
                                                             const int nv) {
    for (int t = 0; t < 9; t++) {
        _mm512_storeu_ps(at + t * stride, acc[t][0]);
        if (nv > 1) _mm512_storeu_ps(at + t * stride + LANES, acc[t][1]);
    }
}

// 16 values from `at` (f32, or bf16 when half: widened, which is exact) in the lanes of m, zeros
// elsewhere.
static inline __attribute__((always_inline)) __m512 load16(__mmask16 m, const void *at, const bool half) {
    return half ? widen16_avx512(_mm256_maskz_loadu_epi16(m, at)) : _mm512_maskz_loadu_ps(m, at);
}

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

// Image n's terms for input channels c0 .. c0 + 16 nv - 1 of every output channel, added to the
// group's sums sliceT[(k 9 + t) C + c] (corner[i]: window i's top left input in xT; gm: the
// gradients, dy where y > 0, else 0, (K, pooled)). Two pooled rows of windows at a time for all
// output channels, the 18 sums of a channel loaded and stored around each: the rows of xT they
// read (6 x (W + 2) x C floats, 12 KB for the tutorial) stay in the first-level cache, where a
// channel over the whole image read all of xT (32 KB) again from the second-level cache for
// each output channel. Each sum still takes its windows in order: the same bits.
static inline __attribute__((always_inline)) void image_by_input_channels(float *sliceT, const float *xT,
                                                                          const float *gm, const uint8_t *where,
                                                                          const int32_t *corner, int64_t n, int64_t C,
                                                                          int64_t W, int64_t K, int64_t pooled,
                                                                          int64_t Q2, int64_t c0, const int nv) {
    int64_t Wp = W + 2, at_pos[4], block = 2 * Q2;
    for (int pos = 0; pos < 4; pos++) at_pos[pos] = ((pos >> 1) * Wp + (pos & 1)) * C;
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
                                                       const uint8_t *where, const int32_t *corner, int64_t n,
                                                       int64_t C, int64_t W, int64_t K, int64_t pooled, int64_t Q2,
                                                       int64_t c0) {
    int64_t Wp = W + 2, at_pos[4], block = 2 * Q2;
    for (int pos = 0; pos < 4; pos++) at_pos[pos] = ((pos >> 1) * Wp + (pos & 1)) * C;
    for (int64_t i0 = 0; i0 < pooled; i0 += block) {
        int64_t i1 = i0 + block < pooled ? i0 + block : pooled;
        for (int64_t k = 0; k < K; k++) {
            __m512 acc[9][2];
            float *at = sliceT + k * 9 * C + c0;
            load_sums(acc, at, C, 2);
            const uint16_t *gk = gm16 + k * pooled;
            const uint8_t *wk = where + (n * K + k) * pooled;
            for (int64_t i = i0; i < i1; i += 2) {
                bool two = i + 1 < i1;
                uint32_t pair = (uint32_t)gk[i] | (two ? (uint32_t)gk[i + 1] << 16 : 0u);
                __m512bh g = (__m512bh)_mm512_set1_epi32((int32_t)pair);
                const uint16_t *a = xT16 + corner[i] + at_pos[wk[i] & 3] + c0;
                const uint16_t *b = two ? xT16 + corner[i + 1] + at_pos[wk[i + 1] & 3] + c0 : a;
                for (int t = 0; t < 9; t++) {
                    int64_t off = (t / 3) * Wp * C + (t % 3) * C;
                    __m512i va = _mm512_loadu_si512(a + off), vb = _mm512_loadu_si512(b + off);
                    acc[t][0] = _mm512_dpbf16_ps(acc[t][0], (__m512bh)_mm512_unpacklo_epi16(va, vb), g);
                    acc[t][1] = _mm512_dpbf16_ps(acc[t][1], (__m512bh)_mm512_unpackhi_epi16(va, vb), g);
                }
            }
            store_sums(at, acc, C, 2);
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
static void group_by_window_lanes(float *slice, double *sums, const void *dy, const void *y, const uint8_t *where,
                                  const void *x, bool half, int64_t n0, int64_t count, int64_t H, int64_t W, int64_t K,
                                  bool dw) {
    int64_t size = half ? 2 : 4; // bytes a value
    int64_t P2 = H / 2, Q2 = W / 2, pooled = P2 * Q2, vectors = (pooled + 15) / 16;
    float *xp = scratch(0, (H + 2) * PADDED_W * (int64_t)sizeof(float));
    float *blocks = scratch(2, vectors * 256 * (int64_t)sizeof(float));
    float *lane_sums = scratch(1, K * 9 * 16 * (int64_t)sizeof(float));
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

bool conv2d_relu_pool_dw_windows_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                       int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    return C >= 1 && C <= MAX_C && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && W <= MAX_W &&
           H <= MAX_H && P >= 2 && Q >= 2 && K % LANES == 0 && K > 0 && K <= MAX_K;
}

// The two entries below: dW added to dw (f32) in group order; db either added to dbias in f32
// (conv.c's) or, with bf16 inputs (half: one input channel, or whole vectors of them without db),
// its exact sums in double returned in db_sums (bf16_ops.c rounds them as its own).
static bool windows_dw(float *dw, float *dbias, double *db_sums, const void *dy_, const void *y_,
                       const uint8_t *where, const void *x_, bool half, bool pairs, int64_t N, int64_t C, int64_t H,
                       int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                       int64_t group) {
    if (!conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q) || N < 1)
        return false;
    // bf16 inputs: one input channel (its windows in the lanes, db's sums too), or whole vectors of
    // input channels without db (the input channels in the lanes)
    if (half && C != 1 && (C % LANES != 0 || db_sums != NULL)) return false;
    if (pairs && (!half || C % 32 != 0 || db_sums != NULL)) return false; // vdpbf16ps's pairs: 32 channels a step
    if (dw == NULL && dbias == NULL && db_sums == NULL) return true;
    const float *dy = dy_, *y = y_, *x = x_; // f32 unless half: then only load16 reads dy_, y_, x_
    int64_t Q2 = Q / 2, P2 = P / 2, pooled = P2 * Q2, groups = (N + group - 1) / group, c9 = C * 9;
    int64_t wins = (pooled + 63) / 64 * 64, kg = (K + 31) / 32; // windows rounded up to where_bases' blocks
    int64_t xp_floats = (H + 2) * PADDED_W, dyt_floats = wins * K;
    // Input channels in the lanes (image_by_input_channels): the slices (groups, K, 9, C); else (groups, C 9, K)
    bool by_input = C % LANES == 0 && dbias == NULL;
    float *slices = cg_xmalloc((size_t)(groups * c9 * K) * sizeof(float)); // dW^T per group
    double *sums = cg_xmalloc((size_t)(groups * K) * sizeof(double));     // (groups, K): db per group
    bool threads = N > 1 && N * K * P * Q * c9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * group, count = N - n0 < group ? N - n0 : group;
        // The group's sums, dW^T: slice[(c 9 + t) K + k], carried from image to image (each element
        // one chain of FMAs: stored and loaded back as it is)
        float *slice = slices + g * c9 * K;
        memset(slice, 0, (size_t)(c9 * K) * sizeof(float));
        for (int64_t k = 0; k < K; k++) sums[g * K + k] = 0.0;
        if (C == 1) { // the windows in the lanes (above)
            group_by_window_lanes(slice, sums + g * K, dy_, y_, where, x_, half, n0, count, H, W, K, dw != NULL);
            continue;
        }
        if (by_input) {
            int32_t corner[MAX_H * MAX_W / 4];
            for (int64_t i = 0; i < pooled; i++) corner[i] = (int32_t)((2 * (i / Q2) * (W + 2) + 2 * (i % Q2)) * C);
            float *xT = scratch(2, ((H + 2) * (W + 2) * C) * (int64_t)sizeof(float));
            float *gm = scratch(1, K * pooled * (int64_t)sizeof(float));
            for (int64_t j = 0; j < count; j++) {
                int64_t n = n0 + j;
                int64_t image = n * C * H * W;
                transpose_image(xT, half ? (const void *)((const uint16_t *)x_ + image) : x + image, half, C, H, W);
                masked_gradients(gm, dy_, y_, half, n, K, pooled);
                if (pairs) { // the same inputs back in bf16 (exact), for two windows a vdpbf16ps
                    uint16_t *xT16 = scratch(3, ((H + 2) * (W + 2) * C) * (int64_t)sizeof(uint16_t));
                    uint16_t *gm16 = scratch(0, K * pooled * (int64_t)sizeof(uint16_t));
                    pairs_order(xT16, xT, (H + 2) * (W + 2), C);
                    for (int64_t i = 0; i < K * pooled; i++) gm16[i] = cg_bf16_round(gm[i]);
                    for (int64_t c0 = 0; c0 < C; c0 += 32)
                        image_by_input_channels_pairs(slice, xT16, gm16, where, corner, n, C, W, K, pooled, Q2, c0);
                    continue;
                }
                for (int64_t c0 = 0; c0 < C; c0 += 2 * LANES) {
                    if (C == 32) // the tutorial's second block: the tap offsets become constants
                        image_by_input_channels(slice, xT, gm, where, corner, n, 32, W, K, pooled, Q2, 0, 2);
                    else if (C - c0 >= 2 * LANES)
                        image_by_input_channels(slice, xT, gm, where, corner, n, C, W, K, pooled, Q2, c0, 2);
                    else
                        image_by_input_channels(slice, xT, gm, where, corner, n, C, W, K, pooled, Q2, c0, 1);
                }
            }
            continue;
        }
        // The patches: one image at a time, prepared and then summed while its inputs are in the
        // first- or second-level cache (CIFAR's first block: 32 KB of dyT, 48 KB of patches, 8 KB of
        // bases).
        float *xp = scratch(0, xp_floats * (int64_t)sizeof(float));
        float *dyT = scratch(1, dyt_floats * (int64_t)sizeof(float));
        // + 16 floats: the last window's loads from element 4 r + s reach 10 past its patch
        float *patches = scratch(2, (C * pooled * 16 + 16) * (int64_t)sizeof(float));
        uint8_t *bases = scratch(3, kg * wins * 32);
        double image_sums[MAX_K];
        for (int64_t j = 0; j < count; j++) {
            prepare_image(patches, xp, dyT, bases, wins, image_sums, x, dy, y, where, n0 + j, C, H, W, K, P, Q);
            for (int64_t k = 0; k < K; k++) sums[g * K + k] += image_sums[k];
            if (dw == NULL) continue;
            // The next image's inputs (y, dy, where), asked for a share at each pooled row of this
            // image's window loops (kg C of them: one per group of 32 output channels and input
            // channel), rounded up.
            int64_t next = n0 + j + 1, floats = K * pooled, bytes = 2 * floats * (int64_t)sizeof(float) + floats;
            ahead pf = {{NULL, NULL, NULL}, {NULL, NULL, NULL}}; // nothing to ask for after the last image
            if (next < N) {
                const char *ys = (const char *)(y + next * floats), *dys = (const char *)(dy + next * floats);
                const char *ws = (const char *)(where + next * floats);
                pf = (ahead){{ys, dys, ws}, {ys + floats * sizeof(float), dys + floats * sizeof(float), ws + floats}};
            }
            int per_row = (int)((bytes + 63) / 64 / (P2 * kg * C) + 1);
            for (int64_t k0 = 0; k0 < K; k0 += 2 * LANES) {
                const uint8_t *b = bases + k0 / 32 * wins * 32;
                int nv = K - k0 >= 2 * LANES ? 2 : 1;
                for (int64_t c = 0; c < C; c++) {
                    __m512 acc[9][2];
                    float *at = slice + c * 9 * K + k0;
                    load_sums(acc, at, K, nv);
                    const float *pc = patches + c * pooled * 16;
                    if (nv > 1)
                        image_windows(acc, pc, dyT, b, pooled, Q2, K, k0, 2, &pf, per_row);
                    else
                        image_windows(acc, pc, dyT, b, pooled, Q2, K, k0, 1, &pf, per_row);
                    store_sums(at, acc, K, nv);
                }
            }
        }
    }
    // The slices into dW (K, C, 3, 3) in group order, and db: conv.c's additions in conv.c's order.
    if (dw && by_input)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t c = 0; c < C; c++)
                    for (int t = 0; t < 9; t++) dw[k * c9 + c * 9 + t] += slices[g * c9 * K + (k * 9 + t) * C + c];
    else if (dw)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t e = 0; e < c9; e++) dw[k * c9 + e] += slices[(g * c9 + e) * K + k];
    for (int64_t k = 0; (dbias || db_sums) && k < K; k++) {
        double sum = 0.0;
        for (int64_t g = 0; g < groups; g++) sum += sums[g * K + k];
        if (dbias) dbias[k] += (float)sum;
        if (db_sums) db_sums[k] = sum;
    }
    free(slices), free(sums);
    return true;
}

bool conv2d_relu_pool_dw_windows_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                     const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                     int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    return windows_dw(dw, dbias, NULL, dy, y, where, x, false, false, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}

bool conv2d_relu_pool_dw_windows_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                          const uint8_t *where, const uint16_t *x, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                          int64_t P, int64_t Q, int64_t group) {
    return windows_dw(dw, NULL, db_sums, dy, y, where, x, true, false, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}

bool conv2d_relu_pool_dw_windows_pairs_bf16_cpu(float *dw, const uint16_t *dy, const uint16_t *y, const uint8_t *where,
                                                const uint16_t *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                                int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                                                int64_t Q, int64_t group) {
    return windows_dw(dw, NULL, NULL, dy, y, where, x, true, true, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}
#else
bool conv2d_relu_pool_dw_windows_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                       int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q;
    return false; // without AVX-512: conv.c's path
}

bool conv2d_relu_pool_dw_windows_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                     const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                     int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    (void)dw, (void)dbias, (void)dy, (void)y, (void)where, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K;
    (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q, (void)group;
    return false; // without AVX-512: conv.c's path
}

bool conv2d_relu_pool_dw_windows_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                          const uint8_t *where, const uint16_t *x, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                          int64_t P, int64_t Q, int64_t group) {
    (void)dw, (void)db_sums, (void)dy, (void)y, (void)where, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K;
    (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q, (void)group;
    return false; // without AVX-512: bf16_ops.c's tile product
}

bool conv2d_relu_pool_dw_windows_pairs_bf16_cpu(float *dw, const uint16_t *dy, const uint16_t *y, const uint8_t *where,
                                                const uint16_t *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                                int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                                                int64_t Q, int64_t group) {
    (void)dw, (void)dy, (void)y, (void)where, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K;
    (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q, (void)group;
    return false; // without AVX-512: the FMAs' kernel or bf16_ops.c's tile product
}
#endif

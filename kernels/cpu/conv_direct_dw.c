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
// window-major (dyT, 196 x 32 per image), and each FMA is masked: a channel's lane is live only
// where the window's maximum sat at this position (`where`); y > 0 was applied when dyT was made.
//
// The sums are the GEMM's, bit for bit (gemm.c's micro_kernel on col (9, 4 PQ) and dy_g^T): each
// dW^T element of a group is summed over the group's positions in order (image, row, column), a
// block of CG_GEMM_KC positions at a time, each block's chain of FMAs starting from zero and added
// to the group's sum (the first one stored); the groups' slices are added to dW in group order.
// The terms are the same in the same order; the GEMM's zero terms (x * 0) are skipped by the
// masks, which leaves each sum as it is (position()).
// The work done is the dense convolution's: 9 FMAs per position and channel, zeros and all.
// Where the time goes (tutorial block, batch 128, one core): the position loop alone runs at
// about 75 % of the FMA peak; making dyT and the masks (transposes: shuffles, which only port 5
// runs) takes about half of the backward (0.26 of 0.62 ms: dyT 0.15, masks 0.09 with the inputs
// in cache; waiting on them, 0.12 more). Made in steps between the loop's rows, they were slower.
// Taking the transposes out altogether (wrong sums, for the timing) left the backward as slow:
// the wait was reading y and dy from the third-level cache. The position loop now asks for the
// next image's inputs while it runs (ask_ahead): 38 -> 43 % of the peak.
// On the AMD EPYC (Zen 4, one 512-bit FMA per cycle), the same parts: the position loop alone 79 %
// of the peak, the whole backward 58 %; the dyT blocks cost about twice what the masks do. The
// loop's broadcasts were instructions for the vector pipes there (fma_broadcast): 58.4 -> 59.7 %
// (58.1 -> 58.7 % in a noisier hour).
// What did not pay there: making the next image's inputs in steps between the loop's rows (two
// sets of buffers; as fast at best, slower when other work crowded the third-level cache), and
// prefetch hints other than T1.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"

// The padded image: row h + 1, column w + 1 hold x[h][w], zeros around (as conv_direct.c). The
// taps of position (h, w) are xp[(h + r) PADDED_W + w + s].
#define PADDED_W 48
#define MAX_H 64
#define MAX_W 32
// Channels per call of the position loop: 2 vectors, 18 accumulators (64 channels would need 36
// of the 32 registers).
#define LANES 16
// At most this many channels (the carried partial sums of a block that spans two images).
#define MAX_K 256

// A buffer of at least `bytes` for this thread, kept between calls.
static void *scratch(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[3];
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

// Two positions' masks (two 32-bit words side by side) stored as one 64-bit mask (kmovq m64, k).
// The words are 4-byte aligned only: _store_mask64 through a __mmask64 pointer would be an
// 8-byte-aligned store in C's eyes (undefined behaviour, which the sanitizer build reports);
// the instruction itself takes any address.
static inline __attribute__((always_inline)) void store_mask64(uint32_t *at, __mmask64 k) {
    __asm__("kmovq %1, %0" : "=m"(*(uint64_t(*)[1])at) : "k"(k));
}

// 64 windows (i0 ..) of `where` for 32 channels (planes `plane` bytes apart from row; rows past
// nch: none, 0xff bytes that match no position) transposed to window-major, then compared with
// the window's positions: masks[i] (32 bits, one per channel) for each position i of the window
// (corner[win]: the top left one). Three rounds of unpacks inside the 128-bit lanes turn 8
// channels x 16 windows into 8-byte rows (one window's 8 channels), two more gather the 4 groups
// of 8 channels, and each window's 32 bytes, doubled, are compared with positions 0 and 1 (then
// 2 and 3) at once: one 64-bit store for two neighbouring positions. 3.5 shuffles and 2
// comparisons per window, where widening `where` to 32 bits and 16 x 16 transposes took 18 (a
// quarter of the backward).
static void where_masks(uint32_t *masks, const int32_t *corner, int64_t Q, const uint8_t *row, int64_t plane,
                        int64_t nch, int64_t i0, int64_t valid) {
    __mmask64 vm = valid >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << valid) - 1;
    __m512i v[4][8]; // v[group][m], 128-bit lane L: windows 16 L + 2 m and + 1, 8 channels each
    for (int grp = 0; grp < 4; grp++) {
        __m512i z[8], p[8], q[8];
        for (int a = 0; a < 8; a++) {
            int64_t k = grp * 8 + a;
            z[a] = k < nch ? _mm512_maskz_loadu_epi8(vm, row + k * plane + i0) : _mm512_set1_epi8(-1);
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
    const __m512i top = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi8(1), 1); // positions 0 | 1
    const __m512i bottom = _mm512_add_epi8(top, _mm512_set1_epi8(2));                      // 2 | 3
    for (int m = 0; m < 8; m++)
        for (int e = 0; e < 2; e++) { // window 2 m + e of each lane
            __m512i lo = e ? _mm512_unpackhi_epi64(v[0][m], v[1][m]) : _mm512_unpacklo_epi64(v[0][m], v[1][m]);
            __m512i hi = e ? _mm512_unpackhi_epi64(v[2][m], v[3][m]) : _mm512_unpacklo_epi64(v[2][m], v[3][m]);
            __m512i pair[2] = {_mm512_permutex2var_epi64(lo, lanes01, hi),  // windows r, r + 16
                               _mm512_permutex2var_epi64(lo, lanes23, hi)}; // r + 32, r + 48
            for (int t = 0; t < 4; t++) {
                int64_t win = 16 * t + 2 * m + e;
                if (win >= valid) continue;
                __m512i both = t % 2 ? _mm512_shuffle_i64x2(pair[t / 2], pair[t / 2], 0xee)
                                     : _mm512_shuffle_i64x2(pair[t / 2], pair[t / 2], 0x44);
                uint32_t *at = masks + corner[i0 + win];
                store_mask64(at, _mm512_cmpeq_epi8_mask(both, top));
                store_mask64(at + Q, _mm512_cmpeq_epi8_mask(both, bottom));
            }
        }
}

// Image n's inputs to the position loop: its padded image xp; dyT (pooled x K floats: dyT[i K + k]
// = dy[k][i] where y[k][i] > 0, else 0), transposed 16 channels x 16 windows at a time in
// registers; for each group of 32 channels, `where` as masks (where_masks: PQ words, 0 at the
// positions outside every window); and each channel's plane sum into sums[k] (db).
static void prepare_image(float *xp, float *dyT, uint32_t *masks, const int32_t *corner, double *sums, const float *x,
                          const float *dy, const float *y, const uint8_t *where, int64_t n, int64_t H, int64_t W,
                          int64_t K, int64_t P, int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float));
    for (int64_t h = 0; h < H; h++) memcpy(xp + (h + 1) * PADDED_W + 1, x + (n * H + h) * W, (size_t)W * sizeof(float));
    for (int64_t v = 0; v < K / LANES; v++) {
        __m512 lanes[8];
        for (int l = 0; l < 8; l++) lanes[l] = _mm512_setzero_ps();
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) { // to the last window (not dyT's rounded-up rows: 3 of 16 blocks for nothing)
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : pooled > i0 ? (1u << (pooled - i0)) - 1 : 0);
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
        uint32_t *m = masks + k0 / 32 * P * Q;
        if (P % 2 || Q % 2) memset(m, 0, (size_t)(P * Q) * sizeof(uint32_t));
        const uint8_t *row = where + (n * K + k0) * pooled;
        int64_t nch = K - k0 < 32 ? K - k0 : 32;
        for (int64_t i0 = 0; i0 < pooled; i0 += 64) {
            if (pooled - i0 >= 16) {
                where_masks(m, corner, Q, row, pooled, nch, i0, pooled - i0 < 64 ? pooled - i0 : 64);
                continue;
            }
            // A short tail (the tutorial's last 4 windows of 196) bit by bit: where_masks
            // transposes a whole block of 64 for them (a quarter of its time, for 2 %).
            for (int64_t i = i0; i < pooled; i++) {
                uint32_t bits[4] = {0, 0, 0, 0};
                for (int64_t k = 0; k < nch; k++) bits[row[k * pooled + i] & 3] |= (uint32_t)1 << k;
                for (int pos = 0; pos < 4; pos++) m[corner[i] + pos / 2 * Q + pos % 2] = bits[pos];
            }
        }
    }
}

// The next image's inputs (y, dy: K x pooled floats each, `where`: K x pooled bytes), asked for
// into the second-level cache a few lines at a time while the position loop of this image runs
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

// A 16-bit mask read from memory straight into a mask register (kmovw k, m16: a load). Through
// _load_mask16 GCC reads it into a general register and moves it over (kmovw k, r32), an
// instruction for port 5, which the position loop needs for its FMAs.
static inline __attribute__((always_inline)) __mmask16 load_mask(const uint16_t *m) {
    __mmask16 k;
    __asm__("kmovw %1, %0" : "=k"(k) : "m"(*m));
    return k;
}

// acc + *x * g in the lanes of m (the others left as they are): one masked FMA whose third
// operand is *x read from memory and broadcast to the 16 lanes by the FMA itself ({1to16}).
// Through _mm512_set1_ps GCC broadcasts *x into a register first (vbroadcastss), once for both
// vectors of channels: on this AMD CPU (Zen 4) that is an instruction for the vector pipes, which
// the FMAs need every cycle. The same product and sum, rounded once: the same bits.
static inline __attribute__((always_inline)) __m512 fma_broadcast(__m512 acc, __m512 g, const float *x, __mmask16 m) {
    __asm__("vfmadd231ps %2%{1to16%}, %1, %0%{%3%}" : "+v"(acc) : "v"(g), "m"(*x), "Yk"(m));
    return acc;
}

// Positions e0 .. e1 - 1 of a window's two in a row (xq: the row's padded input at the window's
// left column, g its gradient, mr the two positions' masks): 9 FMAs per vector of 16 channels,
// each masked by the position's mask. A masked FMA (the accumulator left as it is in the lanes
// off) is one instruction; masking the gradient's load instead added one for port 5 per vector
// and position (12 % of the loop). The sums are the same: x * 0 added to a sum leaves it as it is
// (a sum that starts from +0 is never -0).
static inline __attribute__((always_inline)) void position(__m512 acc[9][2], const float *xq, const float *g,
                                                           const uint16_t *mr, const int e0, const int e1,
                                                           const int nv) {
    __m512 g0 = _mm512_loadu_ps(g), g1 = nv > 1 ? _mm512_loadu_ps(g + LANES) : g0;
    for (int e = e0; e < e1; e++) {
        __mmask16 m0 = load_mask(mr + 2 * e), m1 = nv > 1 ? load_mask(mr + 2 * e + 1) : 0;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++) {
                const float *xv = xq + r * PADDED_W + s + e;
                acc[r * 3 + s][0] = fma_broadcast(acc[r * 3 + s][0], g0, xv, m0);
                if (nv > 1) acc[r * 3 + s][1] = fma_broadcast(acc[r * 3 + s][1], g1, xv, m1);
            }
    }
}

// The position loop over positions fa .. fb - 1 of a group (one image, prepared: xp, dyT, masks)
// for channels k0 .. k0 + 16 nv - 1 (masks: those of their group of 32): slice[t K + k] (t = r 3
// + s: dW^T's layout, as the GEMM leaves it) = the sums of the file's comment. A row of positions
// at a time: position (h, w) reads xp from row h, column w, its mask at h Q + w, its window's
// gradient at (h / 2, w / 2). A GEMM block that goes on into the next image leaves its partial
// sums in `carry` (stored and read back as they are: the same chain).
static inline __attribute__((always_inline)) void group_positions(float *slice, __m512 carry[9][2], const float *xp,
                                                                  const float *dyT, const uint32_t *masks, int64_t fa,
                                                                  int64_t fb, int64_t total, int64_t P, int64_t Q,
                                                                  int64_t K, int64_t k0, const int nv, ahead *pf,
                                                                  int per_row) {
    int64_t pq = P * Q, Q2 = Q / 2, last = P / 2 - 1;
    for (int64_t f0 = fa / CG_GEMM_KC * CG_GEMM_KC; f0 < fb; f0 += CG_GEMM_KC) { // the GEMM's blocks of K
        int64_t f1 = f0 + CG_GEMM_KC < total ? f0 + CG_GEMM_KC : total;
        int64_t fs = f0 > fa ? f0 : fa, fe = f1 < fb ? f1 : fb;
        __m512 acc[9][2];
        for (int t = 0; t < 9; t++)
            for (int v = 0; v < 2; v++) acc[t][v] = fs == f0 ? _mm512_setzero_ps() : carry[t][v];
        for (int64_t f = fs; f < fe;) { // the block's positions in row h (a block may span rows and images)
            int64_t i = f % pq, h = i / Q, w0 = i - h * Q, w1 = w0 + (fe - f) < Q ? w0 + (fe - f) : Q;
            int64_t p = h / 2 < last ? h / 2 : last; // rows outside every window: masked off whole
            const float *xr = xp + h * PADDED_W, *gr = dyT + p * Q2 * K + k0;
            const uint16_t *mr = (const uint16_t *)(masks + h * Q); // two halves per word
            int64_t w = w0;
            if (w & 1) position(acc, xr + w - 1, gr + (w >> 1) * K, mr + 2 * w - 2, 1, 1, nv), w++;
            for (; w + 1 < w1; w += 2) position(acc, xr + w, gr + (w >> 1) * K, mr + 2 * w, 0, 2, nv);
            if (w < w1) position(acc, xr + w, gr + (w >> 1) * K, mr + 2 * w, 0, 1, nv);
            f += w1 - w0;
            ask_ahead(pf, per_row); // a row's share of the next image's inputs
        }
        if (fe < f1) {
            for (int t = 0; t < 9; t++)
                for (int v = 0; v < 2; v++) carry[t][v] = acc[t][v];
            continue;
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
        P < 2 || Q < 2 || K % LANES != 0 || K == 0 || K > MAX_K || N < 1)
        return false;
    if (dw == NULL && dbias == NULL) return true;
    int64_t pq = P * Q, Q2 = Q / 2, pooled = (P / 2) * Q2, groups = (N + group - 1) / group;
    int64_t wins = (pooled + 63) / 64 * 64, kg = (K + 31) / 32; // windows rounded up to where_masks' blocks
    int64_t xp_floats = (H + 2) * PADDED_W, dyt_floats = wins * K, mask_words = kg * pq;
    int32_t corner[MAX_H * MAX_W / 4]; // each window's top left position
    for (int64_t i = 0; i < pooled; i++) corner[i] = (int32_t)(i / Q2 * 2 * Q + i % Q2 * 2);
    float *slices = cg_xmalloc((size_t)(groups * 9 * K) * sizeof(float)); // (groups, 9, K): dW^T per group
    double *sums = cg_xmalloc((size_t)(groups * K) * sizeof(double));    // (groups, K): db per group
    bool threads = N > 1 && N * K * pq * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * group, count = N - n0 < group ? N - n0 : group;
        // One image at a time, prepared and then summed while its dyT (25 KB), masks and xp are
        // in the first-level cache: prepared for the group's 4 images first (128 KB), dyT was
        // written to and read back from the second-level cache, and making it took twice as long.
        float *xp = scratch(0, xp_floats * (int64_t)sizeof(float));
        // + K: position()'s load past the last window (odd Q), masked off
        float *dyT = scratch(1, (dyt_floats + K) * (int64_t)sizeof(float));
        uint32_t *masks = scratch(2, mask_words * (int64_t)sizeof(uint32_t));
        double image_sums[MAX_K];
        float *slice = slices + g * 9 * K;
        __m512 carry[(MAX_K + 31) / 32][9][2];
        for (int64_t k = 0; k < K; k++) sums[g * K + k] = 0.0;
        for (int64_t j = 0; j < count; j++) {
            prepare_image(xp, dyT, masks, corner, image_sums, x, dy, y, where, n0 + j, H, W, K, P, Q);
            for (int64_t k = 0; k < K; k++) sums[g * K + k] += image_sums[k];
            if (dw == NULL) continue;
            // The next image's inputs (y, dy, where), asked for a share at each row of this image's
            // position loops (kg of them: one per group of 32 channels), rounded up.
            int64_t next = n0 + j + 1, floats = K * pooled, bytes = 2 * floats * (int64_t)sizeof(float) + floats;
            ahead pf = {{NULL, NULL, NULL}, {NULL, NULL, NULL}}; // nothing to ask for after the last image
            if (next < N) {
                const char *ys = (const char *)(y + next * floats), *dys = (const char *)(dy + next * floats);
                const char *ws = (const char *)(where + next * floats);
                pf = (ahead){{ys, dys, ws}, {ys + floats * sizeof(float), dys + floats * sizeof(float), ws + floats}};
            }
            int per_row = (int)((bytes + 63) / 64 / (P * kg) + 1);
            for (int64_t k0 = 0; k0 < K; k0 += 2 * LANES) {
                const uint32_t *m = masks + k0 / 32 * pq;
                int64_t fa = j * pq, fb = fa + pq;
                if (K - k0 >= 2 * LANES)
                    group_positions(slice, carry[k0 / 32], xp, dyT, m, fa, fb, count * pq, P, Q, K, k0, 2, &pf,
                                    per_row);
                else
                    group_positions(slice, carry[k0 / 32], xp, dyT, m, fa, fb, count * pq, P, Q, K, k0, 1, &pf,
                                    per_row);
            }
        }
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
    (void)dw, (void)dbias, (void)dy, (void)y, (void)where, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K;
    (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q, (void)group;
    return false; // without AVX-512: conv.c's path
}
#endif

// bf16_direct.c: the f32 sums of a one-channel 3 x 3 "same" convolution (stride 1, padding 1:
// the tutorial CNN's first layer) on the bf16 hardware paths, computed directly with AVX-512
// FMAs instead of the tile product (bf16_ops.c's conv_forward; declared in bf16_same.h), and the
// same with bias, ReLU and 2 x 2 max pooling in registers (the fused block's forward, below, whose
// sums are the same additions done two at a time by vdpbf16ps; declared in bf16_direct.h). Not
// the backward (bf16_direct_dw.c, conv_direct_dw_one_channel.c).
// With one input channel each output is a sum of 9 products: the tile product pads that
// reduction to 32 (a 16 x 32 tile row of bf16 pairs) and the packing and the f32 rows it writes
// cost more than the multiplications themselves. Here the image is widened to f32 once (a bf16
// value widened is exact), and each output row of every channel is 9 FMAs per 16 positions on
// those values: bf16 x bf16 products are exact in f32 (8 + 8 significant bits), so each FMA
// rounds only the sum, as the hardware's fp32 accumulation does, and the terms are added in the
// order the path's product adds them by Intel's pseudo-code (tap_order), each sum starting from
// +0. vdpbf16ps matched that order on every sum probed (320,000, a Xeon, 2026-12-06); AMX tiles
// did not (about 3 % of 1,024,000 f32 sums differ from every simple model of tdpbf16ps), so on AMX
// these sums are within one bf16 step of the tiles', not always their bits (the same-packing test
// of tests/test_bf16_cpu.c). The rows land where the tile product put them (channel k's
// P x Q plane at out + k ld), and bf16_planes.c's epilogue (bias, rounding, ReLU, pooling) reads
// them unchanged.
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/bf16_same.h"

#include <string.h>

#ifdef CG_CPU_MATRIX_KERNELS
// The padded image as f32: row h + 1, column w + 1 hold x[h][w], zeros around (the padding).
// PADDED_W columns: the image's W <= 32, one on each side, and the second vector's 16-float reads
// (columns 16 .. 31, shifted by s up to 2) stay inside a row.
#define PADDED_W 48
#define MAX_H 64
// Channels summed at a time: 4 channels x 2 vectors = 8 independent FMA chains, enough to keep
// two FMA units busy through the 4-cycle latency (one channel's 2 chains would wait on it).
#define KB 4

// The order in which the path's product adds the 9 terms (c, r, s) = r * 3 + s of a sum, each
// added with one rounding. tdpbf16ps adds each bf16 pair's first product, then its second; vdpbf16ps
// the second, then the first (Intel's pseudo-code for both). Its last pair is (8, a padding
// row of zeros): + 0 first leaves the sum as it is (it is never -0: an exact cancellation
// gives +0), then term 8.
// Row 0: AMX, row 1: AVX512-BF16 (the fused kernel below pairs the terms in this order: term 2 m
// and term 2 m + 1 in pair m).
static const int tap_orders[2][9] = {{0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 0, 3, 2, 5, 4, 7, 6, 8}};

static const int *tap_order(cg_cpu_bf16_path path) { return tap_orders[path == CG_BF16_AVX512]; }

void cg_bf16_direct_weights(float *wf, const uint16_t *w, int64_t K, cg_cpu_bf16_path path) {
    const int *order = tap_order(path);
    for (int64_t k = 0; k < K; k++)
        for (int t = 0; t < 9; t++) wf[k * 9 + t] = cg_bf16_widen(w[k * 9 + order[t]]);
}

// The padded image xp ((H + 2) x PADDED_W f32) from image x (H x W bf16).
static VEC_TARGET void pad_image(float *xp, const uint16_t *x, int64_t H, int64_t W) {
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof *xp);
    for (int64_t h = 0; h < H; h++) // widened 16 values at a time (masked: W may be under 16 or 32)
        for (int64_t w0 = 0; w0 < W; w0 += 16) {
            int64_t n = W - w0 < 16 ? W - w0 : 16;
            __mmask16 m = (__mmask16)((1u << n) - 1);
            __m512 v = widen16_avx512(_mm256_maskz_loadu_epi16(m, x + h * W + w0));
            _mm512_mask_storeu_ps(xp + (h + 1) * PADDED_W + 1 + w0, m, v);
        }
}

bool cg_bf16_direct_fits(int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q) {
    return C == 1 && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && W <= 32 && H <= MAX_H &&
           H >= 1 && W >= 1;
}

// Output row h of channels k .. k + n - 1 (n <= KB, a constant after inlining): the 18 shifted
// image vectors xv (term t of the sums, vector v: columns 16 v ..) are shared by the n channels;
// the weights wf (n x 9 f32, in the same order) are broadcast from memory by the FMAs. Stored with masks: the rows are
// Q floats apart in the plane and the two vectors hold 32 lanes, of which Q are outputs.
static inline __attribute__((always_inline)) VEC_TARGET void row_channels(float *out, int64_t ld, const __m512 xv[9][2],
                                                                        const float *wf, __mmask16 m0, __mmask16 m1,
                                                                        const int n) {
    __m512 acc[KB][2];
    for (int j = 0; j < n; j++) acc[j][0] = acc[j][1] = _mm512_setzero_ps(); // +0, as the tile's zeroed sums
    for (int t = 0; t < 9; t++) // the path's order (tap_order)
        for (int j = 0; j < n; j++) {
            __m512 w = _mm512_set1_ps(wf[j * 9 + t]);
            acc[j][0] = _mm512_fmadd_ps(w, xv[t][0], acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(w, xv[t][1], acc[j][1]);
        }
    for (int j = 0; j < n; j++) {
        _mm512_mask_storeu_ps(out + j * ld, m0, acc[j][0]);
        _mm512_mask_storeu_ps(out + j * ld + 16, m1, acc[j][1]);
    }
}

VEC_TARGET void cg_bf16_direct_sums(float *out, int64_t ld, const uint16_t *x, const float *wf, int64_t K, int64_t H,
                                    int64_t W, cg_cpu_bf16_path path) {
    const int *order = tap_order(path);
    float xp[(MAX_H + 2) * PADDED_W];
    pad_image(xp, x, H, W);
    // Output columns 0 .. 15 and 16 .. W - 1.
    __mmask16 m0 = (__mmask16)(W >= 16 ? 0xffff : (1u << W) - 1);
    __mmask16 m1 = (__mmask16)(W > 16 ? (1u << (W - 16)) - 1 : 0);
    for (int64_t h = 0; h < H; h++) {
        // Output (h, q) reads padded (h + r, q + s): tap (r, s) is row h + r shifted by s.
        __m512 xv[9][2];
        for (int t = 0; t < 9; t++) {
            const float *src = xp + (h + order[t] / 3) * PADDED_W + order[t] % 3;
            xv[t][0] = _mm512_loadu_ps(src);
            xv[t][1] = _mm512_loadu_ps(src + 16);
        }
        float *row = out + h * W;
        int64_t k = 0;
        for (; k + KB <= K; k += KB) row_channels(row + k * ld, ld, xv, wf + k * 9, m0, m1, KB);
        for (; k < K; k++) row_channels(row + k * ld, ld, xv, wf + k * 9, m0, m1, 1); // K not a multiple of KB
    }
}

// ---- the fused block: sums, bias, rounding, ReLU and pooling in registers ------------------------
// cg_bf16_direct_sums writes each channel's P x Q plane of f32 sums, and bf16_planes.c's epilogue
// reads it back to add the bias, round, ReLU and pool: the block ran at half the fp32 block's
// speed, the epilogue (the plane's trip through the cache, the rounding in integer steps on 16
// lanes, cross-lane permutations to pair neighbouring columns) taking twice as long as the sums.
// Here, as in conv_direct.c (the fp32 block), the vector lanes are 16 pooling windows in the
// pooled plane's order, and a window's 4 outputs are 4 vectors: the epilogue is lane-by-lane
// work on the sums while they are in registers, 32 windows at a time in 16-bit lanes, and the
// pooled bf16 values are the only thing stored. (Tutorial block, batch 128, one core of an AMD
// EPYC, Zen 4: 46 -> 91 GFLOP/s, where the fp32 block, conv_direct.c, runs at 88.)
//
// The sums are cg_bf16_direct_sums's: the same products added in the same order (tap_orders),
// each sum starting from +0. The epilogue rounds with vcvtne2ps2bf16 (AVX512-BF16: two vectors of
// f32 to one of 32 bf16, round to nearest even), which gives cg_bf16_round's bits for every
// finite value except the subnormals (it reads them as 0), and compares the rounded values as
// 16-bit integers, which order non-negative bf16 values as floats do except NaNs. So it runs only
// where neither can occur, which the inputs' sizes guarantee (tame below): every nonzero |x|,
// |w|, |bias| in [2^-56, 2^60). Each is then a multiple of 2^-63 (8 significant bits), each product
// a multiple of 2^-126, and so is each rounded partial sum (exact while under 2^24 of these units,
// 2^-102; above, rounded to a multiple of its ulp, at least 2^-125): 0 or at least 2^-126, the
// smallest normal; and every |term| < 2^120, so no sum reaches 2^125 (no infinity, so no NaN).
// The weights and the bias are checked once per call (cg_bf16_direct_pool_ready, with
// AVX512-BF16), each image by cg_bf16_direct_relu_pool; otherwise bf16_ops.c's path runs. (cgrad
// flushes subnormal results to zero anyway, kernels/cpu/table.c, but a program may turn that off.)
//
// The windows' inputs: output (a, b) of window (p, q) (a, b in 0, 1) takes tap (r, s) from the
// padded image at row 2 p + a + r, column 2 q + b + s, that is at (2 p + i, 2 q + c) with i = a + r
// and c = b + s in 0 .. 3. For each (i, c) the values of all windows form a plane of the pooled
// plane's shape, a sub-plane (16 of them, bf16), made once per image.
//
// The sums by vdpbf16ps, two terms an instruction: lane l of acc += x_hi w_hi, then += x_lo w_lo,
// each product exact in f32 and each addition rounded (Intel's pseudo-code; an AMD EPYC, Zen 5,
// gave the same bits as those two FMAs on 3,200,000 sums, 2026-12-07). So the 9 terms in the
// path's order (tap_orders) go in 5 pairs: pair m's high word is term 2 m, its low word term 2 m + 1,
// and the last pair is term 8 with a zero: the FMAs' order, pair by pair, for either path. For
// each output o = (a, b) and pair m, a pair plane holds each window's two inputs side by side
// (32 bits a window): one vector load gives a pair of terms for 16 windows, where the FMAs took
// two loads and two instructions. 5 instructions a sum instead of 9: the block's forward 147-156
// -> 194-198 GFLOP/s (bench_cpu_peak, one Zen 5 core, 2026-12-07; fp32's block: 181-190), the
// epilogue now as long as the sums.
#define MAX_W 32
// A plane of windows: every pooled value, then the last vector's reach past its end.
#define PLANE_MAX ((MAX_H / 2) * (MAX_W / 2) + 16)
#define PAIRS 5

// Whether each of n values (bf16 patterns, or f32 when bf16 is false) is 0 or of magnitude in
// [2^-56, 2^60): with the exponent's bias, 127, the f32 patterns from 71 << 23 up to 187 << 23,
// the bf16 ones (the high half) from 71 << 7 up to 187 << 7. The value minus the lower end, as
// an unsigned number, is below the span only inside.
static VEC_TARGET bool tame(const void *v, int64_t n, bool bf16) {
    if (bf16) { // 32 at a time
        __mmask32 wild = 0;
        for (int64_t i = 0; i < n; i += 32) {
            __mmask32 m = n - i >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << (n - i)) - 1);
            __m512i u = _mm512_maskz_loadu_epi16(m, (const uint16_t *)v + i);
            u = _mm512_and_si512(u, _mm512_set1_epi16(0x7fff));
            __mmask32 outside = _mm512_cmpge_epu16_mask(_mm512_sub_epi16(u, _mm512_set1_epi16(71 << 7)),
                                                        _mm512_set1_epi16((187 - 71) << 7));
            wild |= _mm512_mask_test_epi16_mask(outside, u, u); // (and not 0)
        }
        return wild == 0;
    }
    __mmask16 wild = 0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
        __m512i u = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, (const float *)v + i), _mm512_set1_epi32(0x7fffffff));
        __mmask16 outside = _mm512_cmpge_epu32_mask(_mm512_sub_epi32(u, _mm512_set1_epi32(71 << 23)),
                                                    _mm512_set1_epi32((187 - 71) << 23));
        wild |= _mm512_mask_test_epi32_mask(outside, u, u);
    }
    return wild == 0;
}

// Padded row h is row i = h - 2 p of pooled rows p = (h - i) / 2, i in 0 .. 3: each is stored
// twice (i and i + 2), from one load of the image row and, for each c, one permutation picking
// columns 2 q + c - 1 (zero where they fall outside the row: pick[c] the lanes that do not).
VEC_TARGET void cg_bf16_window_subplanes(uint16_t *sub, int64_t stride, const uint16_t *x, int64_t H, int64_t W) {
    int64_t P2 = H / 2, Q2 = W / 2;
    __m512i column[4];
    __mmask32 pick[4];
    for (int c = 0; c < 4; c++) {
        column[c] = _mm512_add_epi16(_mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30, 28, 26, 24,
                                                      22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0),
                                     _mm512_set1_epi16((short)(c - 1)));
        pick[c] = 0;
        for (int64_t q = 0; q < Q2; q++)
            if (2 * q + c - 1 >= 0 && 2 * q + c - 1 < W) pick[c] |= (__mmask32)(1u << q);
    }
    __mmask16 row = (__mmask16)((1u << Q2) - 1);
    __mmask32 cols = W == 32 ? ~(__mmask32)0 : (__mmask32)((1u << W) - 1);
    for (int64_t h = 0; h < 2 * P2 + 2; h++) {
        __m512i v = _mm512_setzero_si512(); // the border's zeros, unless image row h - 1
        if (h >= 1 && h <= H) v = _mm512_maskz_loadu_epi16(cols, x + (h - 1) * W);
        for (int i = (int)(h % 2); i < 4; i += 2) {
            int64_t p = (h - i) / 2;
            if (h < i || p >= P2) continue;
            for (int c = 0; c < 4; c++)
                _mm256_mask_storeu_epi16(sub + (i * 4 + c) * stride + p * Q2, row,
                                         _mm512_castsi512_si256(_mm512_maskz_permutexvar_epi16(pick[c], column[c], v)));
        }
    }
}

// The 20 pair planes from the sub-planes: for output o = (a, b) and pair m, the high 16 bits the
// input of term order[2 m], the low ones that of term order[2 m + 1] (none for m = 4: zero), each
// (r, s) read from sub-plane (a + r, b + s). Stored by vectors of 16 windows, the 20 planes' vectors
// of windows 16 j .. 16 j + 15 side by side: window 16 j + l of plane (o, m) at pairs[((j 4 + o)
// PAIRS + m) 16 + l]. A block's loads are then one pointer and constant offsets (with a plane
// after another, the 20 planes' pointers did not fit the registers: each load waited on one from
// the stack).
static VEC_TARGET void make_pair_planes(uint32_t *pairs, const uint16_t *sub, int64_t sub_stride, int64_t pooled,
                                        const int order[9]) {
    for (int o = 0; o < 4; o++)
        for (int m = 0; m < PAIRS; m++) {
            int t_hi = order[2 * m], t_lo = m < 4 ? order[2 * m + 1] : -1;
            const uint16_t *hi = sub + ((o / 2 + t_hi / 3) * 4 + o % 2 + t_hi % 3) * sub_stride;
            const uint16_t *lo = t_lo < 0 ? NULL : sub + ((o / 2 + t_lo / 3) * 4 + o % 2 + t_lo % 3) * sub_stride;
            uint32_t *out = pairs + (o * PAIRS + m) * 16;
            for (int64_t v = 0; v < pooled; v += 16) {
                __m512i h = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(hi + v))), 16);
                if (lo) h = _mm512_or_si512(h, _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(lo + v))));
                _mm512_storeu_si512(out + v * 4 * PAIRS, h);
            }
        }
}

void cg_bf16_direct_pair_weights(uint32_t *wp, const float *wf, int64_t K) {
    for (int64_t k = 0; k < K; k++)
        for (int m = 0; m < PAIRS; m++) {
            uint32_t hi = cg_bf16_round(wf[k * 9 + 2 * m]), lo = m < 4 ? cg_bf16_round(wf[k * 9 + 2 * m + 1]) : 0;
            wp[k * PAIRS + m] = hi << 16 | lo; // (wf holds bf16 values: the rounding is exact)
        }
}

// 32 windows' 4 sums (lo[o]: windows 0 .. 15, hi[o]: 16 .. 31; o = 2 a + b: top left, top right,
// bottom left, bottom right) to the pooled values y and positions where, the `valid` windows. As
// bias_relu_pool_avx512 (bf16_planes.c): the bias added in f32, the sum rounded to bf16, ReLU on the
// sign bit (a bf16 with the sign bit set is a negative 16-bit integer: max with 0 makes it +0),
// then the first maximum in scan order: a later value wins only if larger.
static inline __attribute__((always_inline)) VEC_BF16_TARGET void pool_windows(uint16_t *y, uint8_t *where,
                                                                         const __m512 lo[4], const __m512 hi[4],
                                                                         __m512 bias, __mmask32 valid) {
    __m512i v[4];
    for (int o = 0; o < 4; o++) {
        __m512bh r = _mm512_cvtne2ps_pbh(_mm512_add_ps(hi[o], bias), _mm512_add_ps(lo[o], bias));
        v[o] = _mm512_max_epi16((__m512i)r, _mm512_setzero_si512());
    }
    __m512i m = v[0];
    __m256i at = _mm256_setzero_si256();
    for (int o = 1; o < 4; o++) {
        __mmask32 larger = _mm512_cmpgt_epu16_mask(v[o], m);
        m = _mm512_mask_mov_epi16(m, larger, v[o]);
        at = _mm256_mask_mov_epi8(at, larger, _mm256_set1_epi8((char)o));
    }
    _mm512_mask_storeu_epi16(y, valid, m);
    _mm256_mask_storeu_epi8(where, valid, at);
}

// A block whose sums wait in image_channels's buffer for their epilogue: its outputs (from y
// and where, channel planes `pooled` apart), biases, windows and channels (0: none).
typedef struct {
    uint16_t *y;
    uint8_t *where;
    __m512 bias[2];
    __mmask32 valid;
    int nch;
} held_block;

// The epilogue of block b, from its sums in held (pool_windows).
static inline __attribute__((always_inline)) VEC_BF16_TARGET void held_epilogue(const float *held, const held_block *b,
                                                                          int64_t pooled) {
    for (int ch = 0; ch < b->nch; ch++) {
        __m512 lo[4], hi[4];
        for (int o = 0; o < 4; o++) lo[o] = _mm512_load_ps(held + (ch * 8 + o) * 16);
        for (int o = 0; o < 4; o++) hi[o] = _mm512_load_ps(held + (ch * 8 + 4 + o) * 16);
        pool_windows(b->y + ch * pooled, b->where + ch * pooled, lo, hi, b->bias[ch], b->valid);
    }
}

// Windows v .. v + 16 nvec - 1 of nch channels (1 or 2; weight pairs wk, PAIRS each, biases
// bias[ch]), `valid` of them in the image. For each pair m and each of the 4 outputs (a, b), one
// load per vector feeds both channels: 4 nch nvec chains of vdpbf16ps, 16 with two channels and
// two vectors, enough to cover its latency. Each chain starts from +0, as the product's sums.
static inline __attribute__((always_inline)) VEC_BF16_TARGET void windows_block(uint16_t *y, uint8_t *where,
                                                                          int64_t pooled, const uint32_t *pairs,
                                                                          const uint32_t *wk,
                                                                          const __m512 bias[2], int64_t v,
                                                                          __mmask32 valid, const int nch,
                                                                          const int nvec, float *held,
                                                                          held_block *last) {
    __m512 acc[2][2][4]; // [channel][vector][output]
    for (int ch = 0; ch < 2; ch++)
        for (int u = 0; u < 2; u++)
            for (int o = 0; o < 4; o++) acc[ch][u][o] = _mm512_setzero_ps();
#pragma GCC unroll 5
    for (int m = 0; m < PAIRS; m++) {
        __m512bh w[2];
        for (int ch = 0; ch < nch; ch++) w[ch] = (__m512bh)_mm512_set1_epi32((int)wk[ch * PAIRS + m]);
#pragma GCC unroll 4
        for (int o = 0; o < 4; o++)
#pragma GCC unroll 2
            for (int u = 0; u < nvec; u++) {
                __m512bh xv = (__m512bh)_mm512_load_si512(pairs + ((v / 16 + u) * 4 + o) * PAIRS * 16 + m * 16);
#pragma GCC unroll 2
                for (int ch = 0; ch < nch; ch++) acc[ch][u][o] = _mm512_dpbf16_ps(acc[ch][u][o], xv, w[ch]);
            }
    }
    // The previous block's epilogue, from its sums in `held`, then this block's sums put there
    // (see image_channels).
    held_epilogue(held, last, pooled);
    for (int ch = 0; ch < nch; ch++)
        for (int u = 0; u < nvec; u++)
            for (int o = 0; o < 4; o++) _mm512_store_ps(held + (ch * 8 + u * 4 + o) * 16, acc[ch][u][o]);
    *last = (held_block){y + v, where + v, {bias[0], bias[1]}, valid, nch};
}

// The planes of y and where that channels k and k + 1 (those below K) will write, asked for with
// the intent to write (prefetchw), a pair of channels ahead. In training these planes are
// usually in no cache (the step has been through megabytes since), and each block's two masked
// stores then waited there: the stores that followed (held's) stalled behind them, and in `perf`
// the block took twice its time in bench_cpu_peak, which writes the same buffer again and again.
// One Zen 5 thread, 2026-12-07: this kernel 8.1 -> 4.0 % of the bf16 step's samples; the step's
// median +1.2 % over 10 alternated pairs (inside their spread); bench_cpu_peak's row 2 % slower.
static inline __attribute__((always_inline)) void prefetch_outputs(const uint16_t *y, const uint8_t *where,
                                                                   int64_t pooled, int64_t k, int64_t K) {
    int64_t nch = K - k < 2 ? K - k : 2;
    if (nch <= 0) return;
    const char *yk = (const char *)(y + k * pooled), *wk = (const char *)(where + k * pooled);
    for (int64_t b = 0; b < nch * pooled * 2; b += 64) _mm_prefetch(yk + b, _MM_HINT_ET0);
    for (int64_t b = 0; b < nch * pooled; b += 64) _mm_prefetch(wk + b, _MM_HINT_ET0);
}

// One image, every channel (planes of `pooled` values in y and where), two at a time.
static VEC_BF16_TARGET void image_channels(uint16_t *y, uint8_t *where, const uint32_t *pairs, const uint32_t *wp,
                                           const uint16_t *bias, int64_t K, int64_t pooled) {
    // Each block's epilogue runs after the next block's sums, from its sums stored in `held`
    // (16 vectors: [channel][vector][output]), so that it never waits on the sums' latency: in
    // program order right after its own sums, its first steps waited on their last FMAs and held
    // up the next block's (83 -> 91 GFLOP/s). A block of one vector leaves the second half's
    // sums as they were (zeros at first), which its epilogue rounds but does not store.
    float held[2 * 8 * 16] __attribute__((aligned(64))) = {0};
    held_block last = {NULL, NULL, {_mm512_setzero_ps(), _mm512_setzero_ps()}, 0, 0}; // none yet
    prefetch_outputs(y, where, pooled, 0, K);
    for (int64_t k = 0; k < K; k += 2) {
        prefetch_outputs(y, where, pooled, k + 2, K);
        int nch = K - k >= 2 ? 2 : 1;
        __m512 b[2];
        for (int ch = 0; ch < 2; ch++) b[ch] = _mm512_set1_ps(bias && ch < nch ? cg_bf16_widen(bias[k + ch]) : 0.0f);
        uint16_t *yk = y + k * pooled;
        uint8_t *wk = where + k * pooled;
        const uint32_t *wpk = wp + k * PAIRS;
        for (int64_t v = 0; v < pooled; v += 32) {
            int64_t n = pooled - v < 32 ? pooled - v : 32; // windows in this block
            __mmask32 valid = n == 32 ? ~(__mmask32)0 : (__mmask32)((1u << n) - 1);
            if (n > 16 && nch == 2)
                windows_block(yk, wk, pooled, pairs, wpk, b, v, valid, 2, 2, held, &last);
            else if (n > 16)
                windows_block(yk, wk, pooled, pairs, wpk, b, v, valid, 1, 2, held, &last);
            else if (nch == 2)
                windows_block(yk, wk, pooled, pairs, wpk, b, v, valid, 2, 1, held, &last);
            else
                windows_block(yk, wk, pooled, pairs, wpk, b, v, valid, 1, 1, held, &last);
        }
    }
    held_epilogue(held, &last, pooled); // the last block's
}

bool cg_bf16_direct_pool_fits(int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad,
                              int64_t P, int64_t Q) {
    return cg_bf16_direct_fits(C, H, W, R, S, stride, pad, P, Q) && P >= 2 && Q >= 2;
}

bool cg_bf16_direct_pool_ready(const float *wf, const uint16_t *bias, int64_t K) {
    return cg_cpu_has_avx512_bf16() && tame(wf, K * 9, false) && (bias == NULL || tame(bias, K, true));
}

VEC_BF16_TARGET bool cg_bf16_direct_relu_pool(uint16_t *y, uint8_t *where, const uint16_t *x, const uint32_t *wp,
                                              const uint16_t *bias, int64_t K, int64_t H, int64_t W,
                                              cg_cpu_bf16_path path) {
    if (!tame(x, H * W, true)) return false;
    int64_t pooled = (H / 2) * (W / 2), stride = (pooled + 15) / 16 * 16;
    // The 16 sub-planes, `stride` values apart, and the 20 pair planes: whole vectors, the last
    // one's lanes past `pooled` zeros (in the sub-planes, which the pair planes copy).
    uint16_t sub[16 * PLANE_MAX] __attribute__((aligned(64)));
    uint32_t pairs[4 * PAIRS * PLANE_MAX] __attribute__((aligned(64)));
    for (int t = 0; t < 16; t++)
        _mm256_storeu_si256((__m256i *)(sub + t * stride + stride - 16), _mm256_setzero_si256());
    cg_bf16_window_subplanes(sub, stride, x, H, W);
    make_pair_planes(pairs, sub, stride, pooled, tap_order(path));
    image_channels(y, where, pairs, wp, bias, K, pooled);
    return true;
}
#endif

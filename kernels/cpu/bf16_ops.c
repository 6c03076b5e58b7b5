// bf16_ops.c: the op table's bf16 convolutions (conv2d_forward_h, conv2d_backward_h with dtype
// bf16, and the fused conv + ReLU + pooling block of conv_pool_h.c) on the CPU's bf16 hardware,
// AMX tiles or AVX512-BF16 (bf16_gemm.c), called by amp.c and conv_pool_h.c when cg_cpu_bf16() is
// not the emulated path. The products (gemm_h, linear_forward_h) are bf16_products.c; "same"
// convolutions pack their operands and sum col2im without im2col in bf16_same.c; small planes
// with many weights (ResNet-18's layer3 and layer4) go to bf16_small.c first; one-channel 3 x 3
// convolutions (the tutorial's first layer) take their forward sums from bf16_direct.c's FMAs instead,
// the fused block's whole forward too. The fused block's dW comes from each pooling window's
// maximum where conv_direct_dw.c's window kernel is built (AVX-512 at compile time): one input
// channel on AMX and AVX512-BF16, whole vectors of them on AVX512-BF16; else, on AVX512-BF16, a
// first layer's from bf16_direct_dw.c. The fused block's unpooling in the other backwards is
// bf16_unpool.c.
// The same policy as the emulated kernels: bf16 values multiplied exactly, sums in fp32, each
// stored result rounded to bf16 once; the sums run in another order (tests/test_bf16_cpu.c).
// One exception, on AVX512-BF16: y and dx of 3 x 3 "same" convolutions with 16 or more channels
// in and out (at most 256 together) come from Winograd's tiles (conv_winograd.c), 2.25 times
// fewer products of transformed filters and patches, which are sums rounded to bf16 once more
// (each product within 2^-7 of the exact one: test_bf16_winograd's bound; CGRAD_CPU_WINOGRAD=0 turns
// them off). There the fused block's dW takes two pooling windows a vdpbf16ps (conv_direct_dw_channels.c).
// The convolutions read and write bf16 directly: im2col in bf16, no widened copies of x or W.
// fp16 stays emulated (amp.c): these CPUs have no fp16 product with fp32 sums.
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_same.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdlib.h>
#include <string.h>

// Per-thread scratch (bf16_gemm.h: cg_bf16_scratch), slot `which`, at least n elements.
static uint16_t *scratch16(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 2); }
static float *scratch32(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 4); }

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// ---- convolutions -------------------------------------------------------------------------------
// As conv.c: a few images at a time (GROUP), groups shared out to the threads. Forward, one image
// at a time: out (K, PQ) = W (K, CRS) col (CRS, PQ). Backward: the group's columns side by side,
// (CRS, L) with L = count * PQ, and its output gradient dy_g as (K, L): dW^T (CRS, K) = col dy_g^T
// over the whole group, then dcol (CRS, PQ) = W^T dy_g one image at a time (each product's f32
// output then stays in the cache until its epilogue or col2im has read it).
#define GROUP 4

// The columns of one image in bf16 (bf16_gemm.h), as conv.c's im2col_image: row (c, r, s),
// column (p, q) = x[c][p*stride - pad + r][q*stride - pad + s], 0 outside the image; rows `ld`
// values apart.
// "Same" convolutions with stride 1 (P == H, Q == W) take conv.c's shortcut: row (c, r, s) is
// plane c shifted by (r - pad) W + (s - pad) values, one long copy, then the columns that the
// flat shift wrapped around to the neighbouring row are zeroed. Stride 2 with H = 2P, W = 2Q
// (ResNet-18's downsampling convolutions) takes it too, through the plane's four phases (im2col.c
// says how): each channel split once into phase (a, b) = x[c][2i + a][2j + b], P x Q values, then
// row (c, r, s) is phase ((r - pad) mod 2, (s - pad) mod 2) shifted by dr Q + ds. Value by value,
// every other value of a row, CIFAR's layer2.0 took 52 us an image (its product about 125 us);
// through the phases 17 us, layer3.0 32 -> 20 us, the 1 x 1 shortcut 5.3 -> 3.6 us. The same values.

// row (P x Q values) = plane (P x Q) shifted by dr rows and ds columns, zeros where the source
// falls outside it.
static void shifted_copy(uint16_t *row, const uint16_t *plane, int64_t P, int64_t Q, int64_t dr, int64_t ds) {
    int64_t shift = dr * Q + ds, a = shift < 0 ? -shift : 0, b = shift > 0 ? P * Q - shift : P * Q;
    b = b > a ? b : a;
    memset(row, 0, (size_t)a * sizeof *row);
    memcpy(row + a, plane + a + shift, (size_t)(b - a) * sizeof *row);
    memset(row + b, 0, (size_t)(P * Q - b) * sizeof *row);
    int64_t q0 = -ds > 0 ? -ds : 0, q1 = Q - ds < Q ? Q - ds : Q; // the columns whose source is in the plane
    q1 = q1 > q0 ? q1 : q0;
    if (q0 == 0 && q1 == Q) return;
    for (int64_t p = 0; p < P; p++) { // the wrapped-around columns
        for (int64_t q = 0; q < q0; q++) row[p * Q + q] = 0;
        for (int64_t q = q1; q < Q; q++) row[p * Q + q] = 0;
    }
}

// The phases of a plane (H x W, both even) that `wanted` names (bit 2a + b) into out (phase (a, b)
// at out + (2a + b) P Q): each input row's even and odd values picked by one permutation of two
// registers, 32 of each at a time (value by value, the split cost more than the copies it saves).
#ifdef CG_CPU_MATRIX_KERNELS
static inline __mmask32 first_values(int64_t n) { // the lanes 0 .. n-1 of 32 (none when n <= 0)
    return n <= 0 ? 0 : n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1);
}

static VEC_TARGET void split_phases16(uint16_t *out, const uint16_t *plane, int64_t H, int64_t W, unsigned wanted) {
    uint16_t even_at[32], odd_at[32];
    for (int i = 0; i < 32; i++) even_at[i] = (uint16_t)(2 * i), odd_at[i] = (uint16_t)(2 * i + 1);
    const __m512i even = _mm512_loadu_si512(even_at), odd = _mm512_loadu_si512(odd_at);
    int64_t Q = W / 2, PQ = H / 2 * Q;
    for (int64_t h = 0; h < H; h++) {
        unsigned a = (unsigned)(h & 1), e_wanted = wanted >> (2 * a) & 1, o_wanted = wanted >> (2 * a + 1) & 1;
        if (!e_wanted && !o_wanted) continue;
        const uint16_t *row = plane + h * W;
        uint16_t *e = out + 2 * a * PQ + (h >> 1) * Q, *o = e + PQ;
        for (int64_t j = 0; j < Q; j += 32) {
            // the 2 (Q - j) values left of the row, at most 64: the second load may read none
            __m512i lo = _mm512_maskz_loadu_epi16(first_values(2 * (Q - j)), row + 2 * j);
            __m512i hi = _mm512_maskz_loadu_epi16(first_values(2 * (Q - j) - 32),
                                                  (const void *)((uintptr_t)(row + 2 * j) + 64));
            __mmask32 n = first_values(Q - j);
            if (e_wanted) _mm512_mask_storeu_epi16(e + j, n, _mm512_permutex2var_epi16(lo, even, hi));
            if (o_wanted) _mm512_mask_storeu_epi16(o + j, n, _mm512_permutex2var_epi16(lo, odd, hi));
        }
    }
}
#endif

void cg_bf16_im2col(uint16_t *col, int64_t ld, const uint16_t *x, int64_t C, int64_t H, int64_t W, int64_t R,
                    int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    // (phases from rows of 8 outputs up: on 4 x 4 outputs, CIFAR's layer4.0, the copies' calls cost
    // more than the loop below, 28 against 27 us an image)
    bool same = stride == 1 && P == H && Q == W, phases = stride == 2 && H == 2 * P && W == 2 * Q && Q >= 8;
    static _Thread_local cg_thread_buffer phase_buffer;
    uint16_t *split = phases ? cg_thread_buffer_get(&phase_buffer, H * W * (int64_t)sizeof(uint16_t)) : NULL;
    unsigned wanted = 0; // the phases the rows (r, s) read
    for (int64_t r = 0; r < R; r++)
        for (int64_t s = 0; s < S; s++) wanted |= 1u << (2 * ((r - pad) & 1) + ((s - pad) & 1));
    for (int64_t c = 0; c < C; c++) {
        const uint16_t *plane = x + c * H * W;
        if (phases) { // phase (a, b) at split + (2a + b) P Q
#ifdef CG_CPU_MATRIX_KERNELS
            split_phases16(split, plane, H, W, wanted); // (the bf16 hardware paths, AVX-512 BW granted)
#else
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    split[(2 * (h & 1) + (w & 1)) * P * Q + (h >> 1) * Q + (w >> 1)] = plane[h * W + w];
#endif
        }
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                uint16_t *row = col + ((c * R + r) * S + s) * ld;
                if (same) {
                    shifted_copy(row, plane, P, Q, r - pad, s - pad);
                    continue;
                }
                if (phases) {
                    int64_t a = (r - pad) & 1, b = (s - pad) & 1;
                    shifted_copy(row, split + (2 * a + b) * P * Q, P, Q, (r - pad - a) / 2, (s - pad - b) / 2);
                    continue;
                }
                // The output columns whose input column q*stride - pad + s lies in 0 .. W-1.
                int64_t q0 = pad - s > 0 ? (pad - s + stride - 1) / stride : 0;
                int64_t q1 = W - 1 + pad - s >= 0 ? (W - 1 + pad - s) / stride + 1 : 0;
                q0 = q0 < Q ? q0 : Q;
                q1 = q1 < Q ? q1 : Q;
                q1 = q1 > q0 ? q1 : q0;
                for (int64_t p = 0; p < P; p++) {
                    int64_t h = p * stride - pad + r;
                    uint16_t *out = row + p * Q;
                    if (h < 0 || h >= H) {
                        memset(out, 0, (size_t)Q * sizeof *out);
                        continue;
                    }
                    const uint16_t *in = x + (c * H + h) * W - pad + s; // in[q * stride] is x[c][h][w]
                    for (int64_t q = 0; q < q0; q++) out[q] = 0;
                    for (int64_t q = q0; q < q1; q++) out[q] = in[q * stride];
                    for (int64_t q = q1; q < Q; q++) out[q] = 0;
                }
            }
    }
}


// ReLU and 2x2 max pooling of one plane of bf16 values (see bf16_gemm.h), in two passes the
// compiler vectorises (conv.c's pool_relu_plane does the same in f32): first the larger of each
// column's two values in each pair of rows (the top one on a tie), then the larger of each pair
// of columns, the right one on a tie only if it comes first in scan order (top right before
// bottom left). ReLU first, on the sign bit, as relu_forward_h: the maximum is then never negative.
static inline __attribute__((always_inline)) void relu_pool_plane(uint16_t *y, uint8_t *where, const uint16_t *plane,
                                                                  int64_t P, int64_t Q, float *col_max,
                                                                  int32_t *bottom_won) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    for (int64_t p = 0; p < P2; p++) {
        const uint16_t *top = plane + 2 * p * Q, *bottom = top + Q;
        float *m = col_max + p * 2 * Q2;
        int32_t *won = bottom_won + p * 2 * Q2;
        for (int64_t q = 0; q < 2 * Q2; q++) {
            float a = cg_bf16_widen(top[q] & 0x8000u ? 0 : top[q]);
            float b = cg_bf16_widen(bottom[q] & 0x8000u ? 0 : bottom[q]);
            won[q] = b > a;
            m[q] = b > a ? b : a;
        }
    }
    for (int64_t i = 0; i < P2 * Q2; i++) {
        float left = col_max[2 * i], right = col_max[2 * i + 1];
        int32_t left_at = 2 * bottom_won[2 * i], right_at = 1 + 2 * bottom_won[2 * i + 1];
        int32_t take_right = (right > left) | ((right == left) & (right_at < left_at));
        float m = take_right ? right : left;
        uint32_t bits;
        memcpy(&bits, &m, sizeof bits);
        where[i] = (uint8_t)(take_right ? right_at : left_at);
        y[i] = (uint16_t)(bits >> 16); // m is one of the bf16 values: its low 16 bits are zero
    }
}

// The tutorial's two sizes as constants (as conv.c does): loops of known lengths, laid out as
// whole vectors without scalar tails. The same function, the same results.
void cg_bf16_relu_pool_plane(uint16_t *y, uint8_t *where, const uint16_t *plane, int64_t P, int64_t Q,
                             float *col_max, int32_t *bottom_won) {
    if (P == 28 && Q == 28)
        relu_pool_plane(y, where, plane, 28, 28, col_max, bottom_won);
    else if (P == 14 && Q == 14)
        relu_pool_plane(y, where, plane, 14, 14, col_max, bottom_won);
    else
        relu_pool_plane(y, where, plane, P, Q, col_max, bottom_won);
}

#ifdef CG_CPU_MATRIX_KERNELS
// The fused block's epilogue for one output plane in AVX-512, from the product's f32 rows (P x Q,
// `ld` floats apart) straight to the pooled bf16 plane: bias added and rounded to bf16 (the
// values conv2d_forward_h stores), ReLU on the sign bit, then each 2x2 window's first maximum in
// scan order, 16 windows per step. The same bits as the round loop followed by
// cg_bf16_relu_pool_plane (tests/test_bf16_cpu.c's fused tests compare them with the three ops),
// without the 16-bit plane in between nor the two passes over f32 copies of it. `round` is
// round16_avx512 or, where the CPU has AVX512-BF16, round16_bf16_avx512 (bf16_vec.h): the same
// bits; a constant after inlining, called directly.
typedef __m512i (*round16_fn)(__m512);

static inline __attribute__((always_inline)) VEC_TARGET void bias_relu_pool_avx512(uint16_t *y, uint8_t *where,
                                                                                 const float *rows, int64_t ld,
                                                                                 float bias, int64_t P, int64_t Q,
                                                                                 round16_fn round) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 b = _mm512_set1_ps(bias);
    for (int64_t p = 0; p < P2; p++)
        for (int64_t q0 = 0; q0 < Q2; q0 += 16) {
            int64_t n = Q2 - q0 < 16 ? Q2 - q0 : 16, i = p * Q2 + q0;
            // The window's four values as floats (a bf16 pattern in the high half), ReLU'd:
            // a pattern with the sign bit set is a negative 32-bit integer, and max with 0 makes
            // it +0, as relu_forward_h does (a -0 or a negative NaN included).
            __m512i v[4];
            for (int row = 0; row < 2; row++) {
                const float *r = rows + (2 * p + row) * ld + 2 * q0;
                __mmask16 lo = (__mmask16)(n >= 8 ? 0xffff : (1u << (2 * n)) - 1);
                __mmask16 hi = (__mmask16)(n > 8 ? (1u << (2 * (n - 8))) - 1 : 0);
                __m512i a = round(_mm512_add_ps(_mm512_maskz_loadu_ps(lo, r), b));
                __m512i c = round(_mm512_add_ps(_mm512_maskz_loadu_ps(hi, r + 16), b));
                a = _mm512_max_epi32(_mm512_slli_epi32(a, 16), _mm512_setzero_si512());
                c = _mm512_max_epi32(_mm512_slli_epi32(c, 16), _mm512_setzero_si512());
                v[2 * row] = _mm512_permutex2var_epi32(a, even, c);    // left column of each window
                v[2 * row + 1] = _mm512_permutex2var_epi32(a, odd, c); // right column
            }
            // Scan order: top left, top right, bottom left, bottom right; a later value wins only
            // if larger (a NaN never does, and a NaN first stays).
            __m512 m = _mm512_castsi512_ps(v[0]);
            __m512i at = _mm512_setzero_si512();
            for (int c = 1; c < 4; c++) {
                __mmask16 larger = _mm512_cmp_ps_mask(_mm512_castsi512_ps(v[c]), m, _CMP_GT_OQ);
                m = _mm512_mask_mov_ps(m, larger, _mm512_castsi512_ps(v[c]));
                at = _mm512_mask_mov_epi32(at, larger, _mm512_set1_epi32(c));
            }
            __mmask16 keep = (__mmask16)((1u << n) - 1);
            _mm256_mask_storeu_epi16(y + i, keep, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(m), 16)));
            _mm_mask_storeu_epi8(where + i, keep, _mm512_cvtepi32_epi8(at));
        }
}

// bias_relu_pool_avx512 for planes of at most 16 columns (the tutorial's second block: 14 x 14,
// 7 windows to a pair of rows), for the K planes of one image (plane k: rows out + k ldo, bias
// bias[k] or 0), the constants set up once. A step takes two pairs of rows: each of the four
// rows is one vector (one rounding), the windows of pair p fill lanes 0 .. Q2-1, those of pair
// p + 1 lanes Q2 .. 2 Q2 - 1, which is where they lie in the pooled plane (p Q2 + q): one store
// of 2 Q2 values. (One pair of rows per step left 9 of 16 lanes empty and rounded a second
// vector of each row that held nothing.) The same values in the same comparisons: the same bits.
static inline __attribute__((always_inline)) VEC_TARGET __m512i bias_relu_row(const float *r, __mmask16 mask, __m512 b,
                                                                             round16_fn round) {
    __m512i a = round(_mm512_add_ps(_mm512_maskz_loadu_ps(mask, r), b));
    return _mm512_max_epi32(_mm512_slli_epi32(a, 16), _mm512_setzero_si512()); // ReLU, as above
}

static inline __attribute__((always_inline)) VEC_TARGET void bias_relu_pool_narrow(uint16_t *y, uint8_t *where,
                                                                                  const float *out, int64_t ldo,
                                                                                  const uint16_t *bias, int64_t K,
                                                                                  int64_t P, int64_t Q,
                                                                                  round16_fn round) {
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    // Lane l takes column 2 l of the first pair's row (lanes 0 .. 15 of the permutation's first
    // source) for l < Q2, column 2 (l - Q2) of the second pair's (lanes 16 ..) from there on.
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __mmask16 second = _mm512_cmpge_epi32_mask(lane, _mm512_set1_epi32((int)Q2));
    __m512i twice = _mm512_add_epi32(lane, lane);
    const __m512i even = _mm512_mask_sub_epi32(twice, second, twice, _mm512_set1_epi32((int)(2 * Q2 - 16)));
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __mmask16 row_mask = (__mmask16)((1u << (2 * Q2)) - 1);
    for (int64_t k = 0; k < K; k++) {
        const float *rows = out + k * ldo;
        const __m512 b = _mm512_set1_ps(bias ? cg_bf16_widen(bias[k]) : 0.0f);
        for (int64_t p = 0; p < P2; p += 2) {
            bool two = p + 1 < P2; // pairs p and p + 1, or p alone (the second's lanes zeros)
            __m512i top0 = bias_relu_row(rows + 2 * p * Q, row_mask, b, round);
            __m512i bottom0 = bias_relu_row(rows + (2 * p + 1) * Q, row_mask, b, round);
            __m512i top1 = two ? bias_relu_row(rows + (2 * p + 2) * Q, row_mask, b, round) : _mm512_setzero_si512();
            __m512i bottom1 = two ? bias_relu_row(rows + (2 * p + 3) * Q, row_mask, b, round) : _mm512_setzero_si512();
            __m512i v[4] = {_mm512_permutex2var_epi32(top0, even, top1), _mm512_permutex2var_epi32(top0, odd, top1),
                            _mm512_permutex2var_epi32(bottom0, even, bottom1),
                            _mm512_permutex2var_epi32(bottom0, odd, bottom1)}; // the window's 4 values
            __m512 m = _mm512_castsi512_ps(v[0]);
            __m512i at = _mm512_setzero_si512();
            for (int c = 1; c < 4; c++) { // scan order, as above
                __mmask16 larger = _mm512_cmp_ps_mask(_mm512_castsi512_ps(v[c]), m, _CMP_GT_OQ);
                m = _mm512_mask_mov_ps(m, larger, _mm512_castsi512_ps(v[c]));
                at = _mm512_mask_mov_epi32(at, larger, _mm512_set1_epi32(c));
            }
            __mmask16 keep = (__mmask16)((1u << ((two ? 2 : 1) * Q2)) - 1);
            int64_t i = k * pooled + p * Q2;
            _mm256_mask_storeu_epi16(y + i, keep, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(m), 16)));
            _mm_mask_storeu_epi8(where + i, keep, _mm512_cvtepi32_epi8(at));
        }
    }
}

// The K planes of one image: y and where the image's K pooled planes, plane k's f32 rows at
// out + k ldo. The tutorial's sizes as constants (loops of known lengths), as
// cg_bf16_relu_pool_plane.
static inline __attribute__((always_inline)) VEC_TARGET void bias_relu_pool_any(uint16_t *y, uint8_t *where,
                                                                               const float *out, int64_t ldo,
                                                                               const uint16_t *bias, int64_t K,
                                                                               int64_t P, int64_t Q, round16_fn round) {
    int64_t pooled = (P / 2) * (Q / 2);
    if (P == 14 && Q == 14) {
        bias_relu_pool_narrow(y, where, out, ldo, bias, K, 14, 14, round);
        return;
    }
    if (Q <= 16) {
        bias_relu_pool_narrow(y, where, out, ldo, bias, K, P, Q, round);
        return;
    }
    for (int64_t k = 0; k < K; k++) {
        float b = bias ? cg_bf16_widen(bias[k]) : 0.0f;
        if (P == 28 && Q == 28)
            bias_relu_pool_avx512(y + k * pooled, where + k * pooled, out + k * ldo, 28, b, 28, 28, round);
        else
            bias_relu_pool_avx512(y + k * pooled, where + k * pooled, out + k * ldo, Q, b, P, Q, round);
    }
}

static VEC_TARGET void bias_relu_pool(uint16_t *y, uint8_t *where, const float *out, int64_t ldo,
                                      const uint16_t *bias, int64_t K, int64_t P, int64_t Q) {
    bias_relu_pool_any(y, where, out, ldo, bias, K, P, Q, round16_avx512);
}

// The same on the AVX512-BF16 path, with its rounding instruction (about a fifth faster). (The
// AMX path keeps round16_avx512: those CPUs need not have AVX512-BF16, and the test of every
// path then runs both forms.)
static VEC_BF16_TARGET void bias_relu_pool_bf16(uint16_t *y, uint8_t *where, const float *out, int64_t ldo,
                                                const uint16_t *bias, int64_t K, int64_t P, int64_t Q) {
    bias_relu_pool_any(y, where, out, ldo, bias, K, P, Q, round16_bf16_avx512);
}
#endif


// Forward, optionally with ReLU and pooling (where != NULL: y is the pooled output).
static void conv_forward(cg_cpu_bf16_path path, uint16_t *y, uint8_t *where, const uint16_t *x, const uint16_t *w,
                         const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                         int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, pooled = (P / 2) * (Q / 2), groups = (N + GROUP - 1) / GROUP;
    uint16_t *Wp = scratch16(0, cg_bf16_packed_size(K, crs)); // the host thread's: read by all
    bool threads = groups > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    uint64_t *valid = NULL; // the "same" convolutions' bitsets (cg_bf16_pack_b_same), shared by the threads
    float *wf = NULL; // one-channel 3 x 3 (bf16_direct.c): the weights widened once, shared by the threads
    const uint16_t *wu = NULL; // Winograd's transformed filters (conv_winograd.c), shared by the threads
#ifdef CG_CPU_MATRIX_KERNELS
    bool hw_round = path == CG_BF16_AVX512; // the epilogue's rounding by AVX512-BF16's instruction
    if (conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q)) {
        wu = conv2d_winograd_bf16_weights(w, K, C, false);
    } else if (cg_bf16_direct_fits(C, H, W, R, S, stride, pad, P, Q)) {
        wf = cg_xmalloc((size_t)(K * 9) * sizeof *wf);
        cg_bf16_direct_weights(wf, w, K, path);
    } else if (stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
    }
#endif
    if (!wf && !wu) cg_bf16_pack_a(Wp, w, crs, 1, K, crs); // the tile product's weights (the others read wf, wu)
#ifdef CG_CPU_MATRIX_KERNELS
    bool pooled_direct = wf && where && cg_bf16_direct_pool_fits(C, H, W, R, S, stride, pad, P, Q) &&
                         cg_bf16_direct_pool_ready(wf, bias, K); // the fused block in registers (bf16_direct.h)
#endif
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ldo = round16(pq);
        uint16_t *col = wu ? NULL : scratch16(1, crs * pq);
        uint16_t *colp = wu ? NULL : scratch16(2, cg_bf16_packed_size(pq, crs));
        // Winograd's sums of the whole group at once, image j's K planes at outg + j K PQ (no
        // padding between rows: ldo = PQ); else one image's product at a time, rows ldo apart
        float *outg = wu ? scratch32(3, count * K * pq) : NULL, *out = wu ? NULL : scratch32(3, round16(K) * ldo);
#ifdef CG_CPU_MATRIX_KERNELS
        if (wu) {
            conv2d_winograd_bf16_images(outg, x + n0 * C * H * W, C * H * W, H * W, wu, count, C, K, H, W);
            ldo = pq;
        }
#endif
        uint16_t *plane16 = where ? scratch16(5, pq) : NULL;
        float *col_max = where ? scratch32(6, pooled * 2) : NULL;
        int32_t *won = where ? (int32_t *)scratch32(7, pooled * 2) : NULL;
        // One image per product: its output (K, PQ) in f32 stays in the cache for the epilogue.
        for (int64_t j = 0; j < count; j++) {
            if (wu) out = outg + j * K * pq;
#ifdef CG_CPU_MATRIX_KERNELS
            if (pooled_direct && cg_bf16_direct_relu_pool(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled,
                                                          x + (n0 + j) * H * W, wf, bias, K, H, W, path))
                continue; // bf16_direct.h: sums, epilogue and pooling in registers
            if (wu)
                ; // the group's sums are in outg already
            else if (wf) // the same f32 rows, summed by FMAs: no packing, no 9-term reduction padded to 32
                cg_bf16_direct_sums(out, ldo, x + (n0 + j) * H * W, wf, K, H, W, path);
            else if (valid)
                cg_bf16_pack_b_same(colp, x + (n0 + j) * C * H * W, valid, C, H, W, R, S, pad);
            else
#endif
            {
                cg_bf16_im2col(col, pq, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_b(colp, col, pq, 1, crs, pq);
            }
            if (!wf && !wu) // (the direct sums and Winograd's have written `out` already)
                cg_bf16_gemm_packed(out, ldo, Wp, colp, K, pq, crs, path);
#ifdef CG_CPU_MATRIX_KERNELS
            if (where) { // always AVX-512 on the paths that reach this file
                if (hw_round)
                    bias_relu_pool_bf16(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled, out, ldo, bias, K, P,
                                        Q);
                else
                    bias_relu_pool(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled, out, ldo, bias, K, P, Q);
                continue;
            }
#endif
            for (int64_t k = 0; k < K; k++) { // to NCHW, adding the bias, rounded to bf16 (then pooled)
                float b = bias ? cg_bf16_widen(bias[k]) : 0.0f;
                const float *src = out + k * ldo;
                int64_t plane = (n0 + j) * K + k;
                uint16_t *dst = where ? plane16 : y + plane * pq;
                for (int64_t i = 0; i < pq; i++) dst[i] = cg_bf16_round(src[i] + b);
                if (where)
                    cg_bf16_relu_pool_plane(y + plane * pooled, where + plane * pooled, plane16, P, Q, col_max, won);
            }
        }
    }
    free(valid);
    free(wf);
}

bool cg_bf16_conv2d_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t N,
                               int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                               int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    // Small planes with many weights (ResNet-18's layer3 and layer4): groups of images a product
    // (bf16_small.c), unless Winograd's tiles take them
    if (!conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q) &&
        cg_bf16_small_forward(path, y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q))
        return true;
    conv_forward(path, y, NULL, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

bool cg_bf16_conv2d_relu_pool_forward_hw(uint16_t *y, uint8_t *where, const uint16_t *x, const uint16_t *w,
                                         const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                         int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_forward(path, y, where, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

// f32 scratch of the host thread for the backward's accumulators (dx, the dW slices), kept
// between calls: slot 0 .. 2, from a 64-byte boundary (threads.h: cg_thread_buffer).
static float *host_f32(int which, int64_t n) {
    static cg_thread_buffer buffers[3];
    return cg_thread_floats_aligned(&buffers[which], n > 0 ? n : 1);
}

static void widen_array(float *dst, const uint16_t *src, int64_t n) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_widen(src[i]);
}

static void round_array(uint16_t *dst, const float *src, int64_t n) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_round(src[i]);
}

// Backward; y != NULL: the fused block's (dy pooled, y the pooled output, where its positions).
// accumulate false: dx written, its old contents never read (the sums start from 0 where they
// started from dx's old values: the same bits as adding to zeros).
static void conv_backward(cg_cpu_bf16_path path, uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q, bool accumulate) {
#ifdef CG_CPU_MATRIX_KERNELS
    // A one-channel first layer's dW by FMAs from each pooling window's maximum (conv_direct_dw_one_channel.c,
    // its windows in the lanes): the products of bf16 values are exact in f32, the sums f32, in
    // another order than the tiles' (whose bits no FMA sequence is known to give: bf16_direct.c)
    // or the pairs'; db's double sums are exact: the other paths' bits. On AMX the tile product
    // pads its 9 rows to a tile's 16 and multiplies every position, three in four of them by zero;
    // on AVX512-BF16, bf16_direct_dw.c's pairs ran this block's backward at 88 GFLOP/s where the
    // windows run it at 105 (bench_cpu_peak, AMD EPYC). Where the window kernel is not built (no
    // AVX-512 at compile time), AVX512-BF16 keeps bf16_direct_dw.c (next), the three ops' bits.
    if (y && !dx && (path == CG_BF16_AMX || path == CG_BF16_AVX512) && C == 1 &&
        conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q)) {
        float *dwf = dw ? host_f32(2, K * 9) : NULL;
        double *db_sums = dbias ? cg_xmalloc((size_t)K * sizeof(double)) : NULL;
        if (dwf) widen_array(dwf, dw, K * 9);
        if (conv2d_relu_pool_dw_windows_bf16_cpu(dwf, db_sums, dy, y, where, x, N, C, H, W, K, R, S, stride, pad, P,
                                                 Q, GROUP)) {
            if (dwf) round_array(dw, dwf, K * 9);
            for (int64_t k = 0; dbias && k < K; k++)
                dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)db_sums[k]);
            free(db_sums);
            return;
        }
        free(db_sums);
    }
    if (y && !dx && path == CG_BF16_AVX512 && cg_bf16_direct_dw_fits(C, H, W, K, R, S, stride, pad, P, Q)) {
        cg_bf16_direct_dw(dw, dbias, dy, y, where, x, N, H, W, K, GROUP); // bf16_direct.h: the same bits
        return;
    }
    // On AVX512-BF16, a fused block's dW with whole vectors of input channels (the tutorial's
    // second block, 32 -> 64) from each pooling window's maximum, as the f32 path takes it
    // (conv_direct_dw_channels.c, the input channels in the lanes): 9 multiply-adds per window, input and
    // output channel, where the dense product below does 36, three of four of them times zero.
    // Products of bf16 values are exact in f32; the sums are f32, window after window, so not the
    // dense product's bits (test_bf16_cpu holds them to its tolerance). dx and db then come from
    // the path below, without dW.
    if (y && dw && path == CG_BF16_AVX512 && C > 1 && C % 16 == 0 &&
        conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q)) {
        int64_t nw = K * C * R * S;
        float *dwf = host_f32(2, nw);
        widen_array(dwf, dw, nw);
        if ((C % 32 == 0 && conv2d_relu_pool_dw_windows_pairs_bf16_cpu(dwf, dy, y, where, x, N, C, H, W, K, R, S,
                                                                      stride, pad, P, Q, GROUP)) ||
            conv2d_relu_pool_dw_windows_bf16_cpu(dwf, NULL, dy, y, where, x, N, C, H, W, K, R, S, stride, pad, P, Q,
                                                 GROUP)) {
            round_array(dw, dwf, nw);
            dw = NULL;
        }
    }
#endif
    // Small planes with many weights (ResNet-18's layer3 and layer4): dW over the whole batch and
    // dx over groups of images, a part of the input channels at a time (bf16_small.c)
    if (!y && dw && cg_bf16_small_dw(path, dw, dy, x, N, C, H, W, K, R, S, stride, pad, P, Q)) dw = NULL;
    if (!y && dx && cg_bf16_small_dx(path, dx, dy, w, N, C, H, W, K, R, S, stride, pad, P, Q, accumulate)) dx = NULL;
    int64_t crs = C * R * S, pq = P * Q, groups = (N + GROUP - 1) / GROUP;
    bool threads = N > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    if (dbias && !y) { // as conv2d_backward_cpu: each channel's sum in double, added to dbias in f32
#pragma omp parallel for if (threads)
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < pq; i++) sum += cg_bf16_widen(dy[(n * K + k) * pq + i]);
            dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)sum);
        }
    }
    // Fused: the bias gradient is the sum of dy_g, taken per group while it is built (groups x K).
    double *bias_sums = dbias && y ? cg_xmalloc((size_t)(groups * K) * sizeof(double)) : NULL;
    if (dx == NULL && dw == NULL && bias_sums == NULL) return;
    // Each group's dW^T goes to a slice of its own, added in group order (the same sums on any
    // thread count). On one thread the groups come in order: each is added at once to the
    // running sums dwt (dW^T, widened first), the same additions in the same order, without
    // the slices (2.4 MB for the tutorial's second convolution) written out and read back.
    bool in_order = !threads || cg_get_num_threads() < 2;
    float *slices = dw && !in_order ? host_f32(1, groups * crs * K) : NULL;
    float *dwt = dw ? host_f32(2, K * crs) : NULL;
    if (dw && in_order)
        for (int64_t i = 0; i < crs; i++)
            for (int64_t k = 0; k < K; k++) dwt[i * K + k] = cg_bf16_widen(dw[k * crs + i]);
    // dx of a 3 x 3 "same" convolution by Winograd's tiles on AVX512-BF16, as the forward
    // (conv_winograd.c): the turned filters transformed once, read by every thread
    const uint16_t *wdx = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if (dx && conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q))
        wdx = conv2d_winograd_bf16_weights(w, K, C, true);
#endif
    uint16_t *Wtp = NULL;
    if (dx && !wdx) { // W^T (CRS, K) packed once, read by every thread
        Wtp = scratch16(0, cg_bf16_packed_size(crs, K));
        cg_bf16_pack_a(Wtp, w, 1, crs, crs, K);
    }
    uint64_t *valid = NULL; // as in the forward: cg_bf16_pack_a_same's bitsets
    uint16_t *c2i_masks = NULL; // cg_bf16_col2im_same's masks and shifts
    int64_t *c2i_shifts = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if ((dw || (dx && !wdx)) && stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
        if (dx && !wdx) {
            c2i_masks = cg_xmalloc((size_t)(R * S * ((H * W + 15) / 16) * 2) * sizeof *c2i_masks);
            c2i_shifts = cg_xmalloc((size_t)(R * S) * sizeof *c2i_shifts);
            cg_bf16_col2im_masks(c2i_masks, c2i_shifts, valid, H, W, R, S, pad);
        }
    }
#endif
    // dx accumulates in f32 (its old value widened) and is rounded once at the end: in dxf,
    // whole, around the loop; or, with cg_bf16_col2im_same, in its registers, one image's 16 positions
    // at a time (each image's dx receives one col2im): no f32 copy of dx, no pass over it
    // before and after the loop (each another parallel loop, another wake-up of the thread).
    float *dxf = dx && !c2i_masks && !wdx ? host_f32(0, N * C * H * W) : NULL;
    if (dxf && accumulate) widen_array(dxf, dx, N * C * H * W);
    else if (dxf) memset(dxf, 0, (size_t)(N * C * H * W) * sizeof *dxf);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, L = count * pq;
        if (c2i_masks && !accumulate) // cg_bf16_col2im_same adds to dx: its images zeroed first
            memset(dx + n0 * C * H * W, 0, (size_t)(count * C * H * W) * sizeof *dx);
        uint16_t *dyg = scratch16(1, K * L);
        cg_bf16_fill_dyg(dyg, dy, y, where, bias_sums ? bias_sums + g * K : NULL, n0, count, K, P, Q);
        if (dw) {
            int64_t ldc = round16(K);
            float *acc = scratch32(4, round16(crs) * ldc);
#ifdef CG_CPU_MATRIX_KERNELS
            if (valid) { // A packed 16 rows at a time into a block row that stays in the L1 cache
                // (bf16_same.c), each multiplied at once: the same products, row block by row block
                uint16_t *dyp = scratch16(2, cg_bf16_packed_size(K, L));
                cg_bf16_pack_b(dyp, dyg, 1, L, L, K); // B (L, K) = dy_g^T
                uint64_t *work = (uint64_t *)scratch32(5, 2 * cg_bf16_pack_a_same_work(count, H, W, R, S));
                cg_bf16_pack_a_same_plan(work, count, valid, C, H, W, R, S);
                uint16_t *rows = scratch16(3, cg_bf16_packed_size(16, L));
                for (int64_t m0 = 0; m0 < crs; m0 += 16) {
                    cg_bf16_pack_a_same(rows, x + n0 * C * H * W, work, m0, m0 + 16, count, C, H, W, R, S, pad);
                    cg_bf16_gemm_packed(acc + m0 * ldc, ldc, rows, dyp, crs - m0 < 16 ? crs - m0 : 16, K, L, path);
                }
            } else
#endif
            {
                uint16_t *colp = scratch16(3, cg_bf16_packed_size(crs, L));
                uint16_t *col = scratch16(2, crs * L);
                for (int64_t j = 0; j < count; j++)
                    cg_bf16_im2col(col + j * pq, L, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_a(colp, col, L, 1, crs, L);
                uint16_t *dyp = scratch16(2, cg_bf16_packed_size(K, L)); // col is packed: its buffer is free
                cg_bf16_pack_b(dyp, dyg, 1, L, L, K);                      // B (L, K) = dy_g^T
                cg_bf16_gemm_packed(acc, ldc, colp, dyp, crs, K, L, path);
            }
            if (in_order)
                for (int64_t i = 0; i < crs; i++)
                    for (int64_t k = 0; k < K; k++) dwt[i * K + k] += acc[i * ldc + k];
            else
                for (int64_t i = 0; i < crs; i++)
                    memcpy(slices + g * crs * K + i * K, acc + i * ldc, (size_t)K * sizeof(float));
        }
#ifdef CG_CPU_MATRIX_KERNELS
        if (wdx) { // the group's dx sums in f32 from dy_g (image j's channel k at dyg + k L + j PQ), each
            // added to its old value and rounded once, as col2im's
            float *sums = scratch32(4, count * C * H * W);
            conv2d_winograd_bf16_images(sums, dyg, pq, L, wdx, count, K, C, H, W);
            uint16_t *dxg = dx + n0 * C * H * W;
            for (int64_t i = 0; i < count * C * H * W; i++)
                dxg[i] = cg_bf16_round((accumulate ? cg_bf16_widen(dxg[i]) : 0.0f) + sums[i]);
            continue;
        }
#endif
        // dx one image at a time: dcol (CRS, PQ) in f32 is the largest thing written, and it
        // should stay in the cache until col2im has read it.
        for (int64_t j = 0; dx && j < count; j++) {
            int64_t ldc = round16(pq);
            uint16_t *dyp = scratch16(2, cg_bf16_packed_size(pq, K));
            cg_bf16_pack_b(dyp, dyg + j * pq, L, 1, K, pq); // B (K, PQ) = image j's columns of dy_g
            float *dcol = scratch32(4, round16(crs) * ldc);
            cg_bf16_gemm_packed(dcol, ldc, Wtp, dyp, crs, pq, K, path);
#ifdef CG_CPU_MATRIX_KERNELS
            if (c2i_masks) {
                cg_bf16_col2im_same(dx + (n0 + j) * C * H * W, dcol, ldc, c2i_masks, c2i_shifts, C, H, W, R, S);
                continue;
            }
#endif
            conv_col2im_image_cpu(dxf + (n0 + j) * C * H * W, dcol, ldc, C, H, W, R, S, stride, pad, P, Q);
        }
    }
    free(valid);
    free(c2i_masks);
    free(c2i_shifts);
    if (bias_sums) {
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) sum += bias_sums[g * K + k];
            dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)sum);
        }
        free(bias_sums);
    }
    if (dxf) round_array(dx, dxf, N * C * H * W);
    if (dw && in_order) // the sums are whole: rounded once
        for (int64_t i = 0; i < crs; i++)
            for (int64_t k = 0; k < K; k++) dw[k * crs + i] = cg_bf16_round(dwt[i * K + k]);
    if (dw && !in_order) { // dw (K, CRS) += slice 0, slice 1, ... (each (CRS, K)), in f32, rounded once
        // In the slices' layout, dW^T, one row i of CRS at a time: each slice's row is then read
        // in order (not K floats apart), the rows shared out to the threads; every element still
        // receives its terms in group order, the same sums on any number of threads.
        // On the threads only when there is enough to add: the first convolution's (9 x 32 per
        // group in the tutorial CNN) takes less time than waking the sleeping thread.
#pragma omp parallel for if (threads && groups * crs * K >= CG_OMP_MIN_WORK)
        for (int64_t i = 0; i < crs; i++) {
            float *row = dwt + i * K;
            for (int64_t k = 0; k < K; k++) row[k] = cg_bf16_widen(dw[k * crs + i]);
            for (int64_t g = 0; g < groups; g++) {
                const float *slice = slices + g * K * crs + i * K;
                for (int64_t k = 0; k < K; k++) row[k] += slice[k];
            }
            for (int64_t k = 0; k < K; k++) dw[k * crs + i] = cg_bf16_round(row[k]);
        }
    }
}

bool cg_bf16_conv2d_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy, const uint16_t *x,
                                const uint16_t *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_backward(path, dx, dw, dbias, dy, NULL, NULL, x, w, N, C, H, W, K, R, S, stride, pad, P, Q, true);
    return true;
}

bool cg_bf16_conv2d_relu_pool_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w,
                                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                          int64_t stride, int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_backward(path, dx, dw, dbias, dy, y, where, x, w, N, C, H, W, K, R, S, stride, pad, P, Q, accumulate);
    return true;
}

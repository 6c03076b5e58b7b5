// bf16_planes.c: what the bf16 convolutions (bf16_ops.c, bf16_small.c) and the fused block do to
// one image's planes, apart from the products: the columns (im2col in bf16, "same" convolutions
// and stride 2 as shifts of a plane or of its phases), and the fused conv + ReLU + 2x2 max pooling
// block's pooling, plain (cg_bf16_relu_pool_plane, for the emulated path too) and as the product's
// AVX-512 epilogue from f32 rows straight to the pooled bf16 plane. Declared in bf16_gemm.h.
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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

// Tiny planes (at most 64 input values and 32 output positions: ResNet-18's layer4 on CIFAR, 8 x 8
// or 4 x 4 inputs, 4 x 4 outputs): the whole input plane in two registers, and each row (r, s) of
// the columns one permutation of them: lane i = position (p, q) picks input (p stride - pad + r,
// q stride - pad + s), or zero (its mask bit clear) outside the image. The indices and masks
// depend on (r, s), not on the channel: worked out once per call. Value by value (the loop
// below), layer4.0's columns took a third of its product's time in bf16.
#define TINY_RS_MAX 49 // rows (r, s) at most: a 7 x 7 kernel
static bool tiny_planes(int64_t H, int64_t W, int64_t R, int64_t S, int64_t P, int64_t Q) {
    return H * W <= 64 && P * Q <= 32 && R * S <= TINY_RS_MAX;
}

static VEC_TARGET void tiny_im2col(uint16_t *col, int64_t ld, const uint16_t *x, int64_t C, int64_t H, int64_t W,
                                   int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    __m512i index[TINY_RS_MAX];
    __mmask32 valid[TINY_RS_MAX];
    for (int64_t rs = 0; rs < R * S; rs++) {
        uint16_t at[32] = {0};
        uint32_t m = 0;
        for (int64_t i = 0; i < P * Q; i++) {
            int64_t h = i / Q * stride - pad + rs / S, w = i % Q * stride - pad + rs % S;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            at[i] = (uint16_t)(h * W + w), m |= 1u << i;
        }
        index[rs] = _mm512_loadu_si512(at), valid[rs] = (__mmask32)m;
    }
    int64_t HW = H * W;
    __mmask32 out = first_values(P * Q), lo_n = first_values(HW), hi_n = first_values(HW - 32);
    for (int64_t c = 0; c < C; c++) {
        const uint16_t *plane = x + c * HW;
        __m512i lo = _mm512_maskz_loadu_epi16(lo_n, plane);
        __m512i hi = _mm512_maskz_loadu_epi16(hi_n, (const void *)((uintptr_t)plane + 64)); // (none if HW <= 32)
        for (int64_t rs = 0; rs < R * S; rs++)
            _mm512_mask_storeu_epi16(col + (c * R * S + rs) * ld, out,
                                     _mm512_maskz_permutex2var_epi16(valid[rs], lo, index[rs], hi));
    }
}
#endif

void cg_bf16_im2col(uint16_t *col, int64_t ld, const uint16_t *x, int64_t C, int64_t H, int64_t W, int64_t R,
                    int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
#ifdef CG_CPU_MATRIX_KERNELS
    if (tiny_planes(H, W, R, S, P, Q)) {
        tiny_im2col(col, ld, x, C, H, W, R, S, stride, pad, P, Q);
        return;
    }
#endif
    // (phases from rows of 8 outputs up: on 4 x 4 outputs, CIFAR's layer4.0, the copies' calls cost
    // more than the loop below, 28 against 27 us an image; such planes take tiny_im2col, above)
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

VEC_TARGET void cg_bf16_bias_relu_pool(uint16_t *y, uint8_t *where, const float *out, int64_t ldo,
                                             const uint16_t *bias, int64_t K, int64_t P, int64_t Q) {
    bias_relu_pool_any(y, where, out, ldo, bias, K, P, Q, round16_avx512);
}

// The same on the AVX512-BF16 path, with its rounding instruction (about a fifth faster). (The
// AMX path keeps round16_avx512: those CPUs need not have AVX512-BF16, and the test of every
// path then runs both forms.)
VEC_BF16_TARGET void cg_bf16_bias_relu_pool_bf16(uint16_t *y, uint8_t *where, const float *out, int64_t ldo,
                                                       const uint16_t *bias, int64_t K, int64_t P, int64_t Q) {
    bias_relu_pool_any(y, where, out, ldo, bias, K, P, Q, round16_bf16_avx512);
}
#endif

// bf16_unpool.c: the backward of the fused block's ReLU and 2x2 max pooling for bf16_ops.c's
// convolution backward (cg_bf16_fill_dyg): each pooled gradient back to its window's maximum,
// the rest zeros, and each channel's sum (the bias gradient). Kept apart from bf16_ops.c for its
// length; it does no product.
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"

#include <stdbool.h>
#include <string.h>

// One plane of the convolution's output gradient (P x Q) from the pooled gradient g, the pooled
// output yp and the window positions at (P/2 x Q/2 each): at each window's maximum where the ReLU
// let it through (y > 0), round(0 + dy) as conv_pool_h.c's backward; zero elsewhere. As conv.c's
// unpool_plane: zeroed first (memset, in cache), then one store per window, plain scalar code (a
// store of 0 where the ReLU stopped it: no branch). Returns the plane's sum, in double.
// (The builds with the AVX-512 kernels use unpool_plane_avx512 below instead.)
static inline __attribute__((always_inline)) double unpool_plane(uint16_t *out, const uint16_t *g,
                                                                 const uint16_t *yp, const uint8_t *at, int64_t P,
                                                                 int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    memset(out, 0, (size_t)(P * Q) * sizeof *out);
    double sum = 0.0;
    for (int64_t p = 0; p < P2; p++)
        for (int64_t q = 0; q < Q2; q++) {
            int64_t i = p * Q2 + q;
            uint16_t v = cg_bf16_widen(yp[i]) > 0.0f ? cg_bf16_round(0.0f + cg_bf16_widen(g[i])) : 0;
            out[(2 * p + (at[i] >> 1)) * Q + 2 * q + (at[i] & 1)] = v;
            sum += cg_bf16_widen(v);
        }
    return sum;
}

#ifdef CG_CPU_MATRIX_KERNELS
// unpool_plane with every element of the plane written once, two rows at a time, 16 windows per
// step (the same idea as conv.c's f32 version, in 16-bit lanes): each window's value and
// position spread to its two columns (a permutation), compared with the column's place in the
// window. No zeroing first and no scattered stores, where the scalar loop spent a tenth of the
// bf16 tutorial CNN's step. The values are the scalar loop's, bit for bit. Their sum goes to 16
// double lanes (sum[0..1], the window's place in its chunk of 16 deciding the lane) instead of
// one chain of dependent additions; each term is a bf16 value (8 significant bits), so the
// double sums are exact unless one plane's gradients span more than about 2^30, where the order
// could move the last bit of the double.
static inline __attribute__((always_inline)) VEC_TARGET void unpool_plane_avx512(uint16_t *out, const uint16_t *g,
                                                                               const uint16_t *yp,
                                                                               const uint8_t *at, int64_t P,
                                                                               int64_t Q, __m512d sum[2]) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    const __m512i spread = _mm512_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 6, 6,
                                            5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0); // lane 2c and 2c+1: window c
    const __m512i in_top = _mm512_set_epi16(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,
                                            1, 0, 1, 0, 1, 0, 1, 0); // the column's place in the top row: 0, 1
    const __m512i in_bottom = _mm512_add_epi16(in_top, _mm512_set1_epi16(2)); // in the bottom row: 2, 3
    for (int64_t p = 0; p < P2; p++) {
        uint16_t *top = out + 2 * p * Q, *bottom = top + Q;
        for (int64_t q0 = 0; q0 < Q2; q0 += 16) {
            int64_t i = p * Q2 + q0, n = Q2 - q0 < 16 ? Q2 - q0 : 16;
            __mmask16 m16 = (__mmask16)((1u << n) - 1);
            __mmask32 m32 = (__mmask32)((1ull << (2 * n)) - 1);
            __m512 gf = widen16_avx512(_mm256_maskz_loadu_epi16(m16, g + i));
            __m512 yf = widen16_avx512(_mm256_maskz_loadu_epi16(m16, yp + i));
            __mmask16 open = _mm512_cmp_ps_mask(yf, _mm512_setzero_ps(), _CMP_GT_OQ); // the ReLU let it through
            __m512i v = _mm512_maskz_mov_epi32(open, round16_avx512(_mm512_add_ps(_mm512_setzero_ps(), gf)));
            __m512 vf = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            sum[0] = _mm512_add_pd(sum[0], _mm512_cvtps_pd(_mm512_castps512_ps256(vf)));
            __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(vf), 1)); // lanes 8 .. 15
            sum[1] = _mm512_add_pd(sum[1], _mm512_cvtps_pd(upper));
            __m512i v2 = _mm512_permutexvar_epi16(spread, _mm512_castsi256_si512(_mm512_cvtepi32_epi16(v)));
            __m512i at2 = _mm512_permutexvar_epi16(
                spread, _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(m16, at + i))));
            _mm512_mask_storeu_epi16(top + 2 * q0, m32,
                                     _mm512_maskz_mov_epi16(_mm512_cmpeq_epi16_mask(at2, in_top), v2));
            _mm512_mask_storeu_epi16(bottom + 2 * q0, m32,
                                     _mm512_maskz_mov_epi16(_mm512_cmpeq_epi16_mask(at2, in_bottom), v2));
        }
        for (int64_t c = 2 * Q2; c < Q; c++) top[c] = bottom[c] = 0; // odd Q: outside every window
    }
    for (int64_t i = 2 * P2 * Q; i < P * Q; i++) out[i] = 0; // odd P: the last row
}

// unpool_plane_avx512 for planes of at most 16 columns (the tutorial's second block: 14 x 14),
// where each step held one pair of rows, 7 windows of 16 lanes. Here a step takes the windows
// of two pairs of rows (lanes 0 .. Q2-1 and Q2 .. 2 Q2 - 1, as they lie in the pooled plane),
// and each pair's two rows, 2 Q contiguous values, are one permutation and one store: lane l
// takes window spread[t][l] of the step's vector and is kept where its place in the window,
// place[l] (top left 0 .. bottom right 3; 255 in a last odd column, outside every window),
// is the window's maximum's. The sums keep their lanes: window q of every pair of rows goes to
// lane q of sum[0], in the pairs' order, and sum[1] receives nothing (there it received zeros):
// the same double sums. Lanes 2 Q2 .. 15 of a step are zeros that no store keeps.
typedef struct {
    __m512i spread[2], place; // 32 16-bit lanes each
    __m512i next;             // 16 32-bit lanes: lane l takes lane l + Q2 (pair p + 1's windows)
} narrow_unpool;

static VEC_TARGET void narrow_unpool_init(narrow_unpool *u, int64_t Q) {
    int64_t Q2 = Q / 2;
    uint16_t spread[2][32], place[32];
    int32_t next[16];
    for (int l = 0; l < 32; l++) {
        int row = l < Q ? 0 : 1, c = l < Q ? l : l - (int)Q; // lane l of a pair's two rows
        bool inside = l < 2 * Q && c < 2 * Q2;
        spread[0][l] = (uint16_t)(inside ? c / 2 : 0);
        spread[1][l] = (uint16_t)(inside ? Q2 + c / 2 : 0);
        place[l] = (uint16_t)(inside ? 2 * row + c % 2 : 255);
    }
    for (int l = 0; l < 16; l++) next[l] = (int32_t)((l + Q2) % 16);
    u->spread[0] = _mm512_loadu_si512(spread[0]);
    u->spread[1] = _mm512_loadu_si512(spread[1]);
    u->place = _mm512_loadu_si512(place);
    u->next = _mm512_loadu_si512(next);
}

static inline __attribute__((always_inline)) VEC_TARGET void unpool_plane_narrow(uint16_t *out, const uint16_t *g,
                                                                               const uint16_t *yp,
                                                                               const uint8_t *at, int64_t P,
                                                                               int64_t Q, const narrow_unpool *u,
                                                                               __m512d sum[2]) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    __mmask16 first = (__mmask16)((1u << Q2) - 1);          // lanes of pair p's windows
    __mmask32 rows2 = (__mmask32)((1ull << (2 * Q)) - 1); // a pair of rows
    for (int64_t p = 0; p < P2; p += 2) {
        int pairs = P2 - p < 2 ? 1 : 2;
        int64_t i = p * Q2;
        __mmask16 m16 = (__mmask16)((1u << (pairs * Q2)) - 1);
        __m512 gf = widen16_avx512(_mm256_maskz_loadu_epi16(m16, g + i));
        __m512 yf = widen16_avx512(_mm256_maskz_loadu_epi16(m16, yp + i));
        __mmask16 open = _mm512_cmp_ps_mask(yf, _mm512_setzero_ps(), _CMP_GT_OQ); // the ReLU let it through
        __m512i v = _mm512_maskz_mov_epi32(open, round16_avx512(_mm512_add_ps(_mm512_setzero_ps(), gf)));
        __m512 vf = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        sum[0] = _mm512_add_pd(sum[0], _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_mov_ps(first, vf))));
        if (pairs == 2) {
            __m512 later = _mm512_maskz_permutexvar_ps(first, u->next, vf); // pair p + 1's windows to lanes 0 ..
            sum[0] = _mm512_add_pd(sum[0], _mm512_cvtps_pd(_mm512_castps512_ps256(later)));
        }
        __m512i v16 = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(v));
        __m512i at16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(m16, at + i)));
        for (int t = 0; t < pairs; t++) {
            __m512i values = _mm512_permutexvar_epi16(u->spread[t], v16);
            __m512i places = _mm512_permutexvar_epi16(u->spread[t], at16);
            _mm512_mask_storeu_epi16(out + 2 * (p + t) * Q, rows2,
                                     _mm512_maskz_mov_epi16(_mm512_cmpeq_epi16_mask(places, u->place), values));
        }
    }
    for (int64_t i = 2 * P2 * Q; i < P * Q; i++) out[i] = 0; // odd P: the last row
}

// The 16 lanes of a sum, added in lane order.
static VEC_TARGET double lanes_sum(const __m512d sum[2]) {
    double lanes[16], total = 0.0;
    _mm512_storeu_pd(lanes, sum[0]);
    _mm512_storeu_pd(lanes + 8, sum[1]);
    for (int i = 0; i < 16; i++) total += lanes[i];
    return total;
}

// fill_dyg's pooled case (below) with unpool_plane_avx512 or unpool_plane_narrow.
static VEC_TARGET void unpool_group_avx512(uint16_t *dyg, const uint16_t *dy, const uint16_t *y, const uint8_t *where,
                                           double *sums, int64_t n0, int64_t count, int64_t K, int64_t P, int64_t Q) {
    int64_t pq = P * Q, L = count * pq, pooled = (P / 2) * (Q / 2);
    narrow_unpool u;
    memset(&u, 0, sizeof u); // (read only when Q <= 16)
    if (Q <= 16) narrow_unpool_init(&u, Q);
    for (int64_t k = 0; k < K; k++) {
        __m512d sum[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
        for (int64_t j = 0; j < count; j++) {
            int64_t plane = (n0 + j) * K + k;
            uint16_t *out = dyg + k * L + j * pq;
            const uint16_t *g = dy + plane * pooled, *yp = y + plane * pooled;
            const uint8_t *at = where + plane * pooled;
            if (P == 28 && Q == 28) // the tutorial's sizes as constants, as in the forward
                unpool_plane_avx512(out, g, yp, at, 28, 28, sum);
            else if (P == 14 && Q == 14)
                unpool_plane_narrow(out, g, yp, at, 14, 14, &u, sum);
            else if (Q <= 16)
                unpool_plane_narrow(out, g, yp, at, P, Q, &u, sum);
            else
                unpool_plane_avx512(out, g, yp, at, P, Q, sum);
        }
        if (sums) sums[k] = lanes_sum(sum);
    }
}
#endif

// The group's output gradient dy_g (bf16_gemm.h), from unpool_plane or its AVX-512 forms.
void cg_bf16_fill_dyg(uint16_t *dyg, const uint16_t *dy, const uint16_t *y, const uint8_t *where, double *sums,
                      int64_t n0, int64_t count, int64_t K, int64_t P, int64_t Q) {
    int64_t pq = P * Q, L = count * pq, pooled = (P / 2) * (Q / 2);
#ifdef CG_CPU_MATRIX_KERNELS
    if (y) { // always, on the paths that reach this file (bf16_ops.c)
        unpool_group_avx512(dyg, dy, y, where, sums, n0, count, K, P, Q);
        return;
    }
#endif
    for (int64_t k = 0; k < K; k++) {
        double sum = 0.0;
        for (int64_t j = 0; j < count; j++) {
            uint16_t *out = dyg + k * L + j * pq;
            int64_t plane = (n0 + j) * K + k;
            if (!y) {
                memcpy(out, dy + plane * pq, (size_t)pq * sizeof *out);
                continue;
            }
            const uint16_t *g = dy + plane * pooled, *yp = y + plane * pooled;
            const uint8_t *at = where + plane * pooled;
            if (P == 28 && Q == 28) // the tutorial's sizes as constants, as in the forward
                sum += unpool_plane(out, g, yp, at, 28, 28);
            else if (P == 14 && Q == 14)
                sum += unpool_plane(out, g, yp, at, 14, 14);
            else
                sum += unpool_plane(out, g, yp, at, P, Q);
        }
        if (sums) sums[k] = sum;
    }
}

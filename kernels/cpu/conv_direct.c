// conv_direct.c: the tutorial CNN's first block, a 3 x 3 convolution of a one-channel image
// (stride 1, padding 1) with bias, ReLU and 2 x 2 max pooling, as a direct convolution whose
// pooling is done in registers. Through im2col and the GEMM (conv.c), each output is a product of
// only 9 steps: the GEMM's tiles spend as long storing their sums as computing them, and the
// pooling pass then reads the whole convolution output back (with it, 22 % of the peak). Here
// two output rows are summed in registers and pooled before anything is stored.
// The sums are those of conv.c's path bit for bit: each output starts from zero and adds
// w[r][s] * x (a fused multiply-add, as the GEMM's tile) in the same order, r then s, with zeros
// for the padding; then the bias, and the same window maximum, position and ReLU as
// pool_relu_plane.
#include "kernels/cpu/cpu.h"

#include <stdbool.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

// The padded image: row h + 1, column w + 1 hold x[h][w], zeros around. PADDED_W columns: the
// image's W <= 32, one on each side, and the 16-float reads of the second vector (columns 16 ..
// 31 and two more for s) inside it.
#define PADDED_W 48
#define MAX_H 64

// The pooled row of output rows h and h + 1 (top t0, t1 and bottom b0, b1: columns 0 .. 15 and 16
// .. 31, the bias not yet added): y and where, Q2 windows.
static inline void pool_pair(float *y, uint8_t *where, __m512 t0, __m512 t1, __m512 b0, __m512 b1, float bias,
                             int64_t Q2) {
    // Each column's larger value of the two rows (the top one on a tie), and whether the bottom won.
    const __m512 bv = _mm512_set1_ps(bias);
    __m512 a0 = _mm512_add_ps(t0, bv), a1 = _mm512_add_ps(t1, bv), c0 = _mm512_add_ps(b0, bv),
           c1 = _mm512_add_ps(b1, bv);
    __mmask16 won0 = _mm512_cmp_ps_mask(c0, a0, _CMP_GT_OQ), won1 = _mm512_cmp_ps_mask(c1, a1, _CMP_GT_OQ);
    __m512 m0 = _mm512_mask_blend_ps(won0, a0, c0), m1 = _mm512_mask_blend_ps(won1, a1, c1);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i w0 = _mm512_maskz_mov_epi32(won0, one), w1 = _mm512_maskz_mov_epi32(won1, one);
    // The windows' left and right columns, 32 columns to 16 windows by two permutations.
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, one);
    __m512 left = _mm512_permutex2var_ps(m0, even, m1), right = _mm512_permutex2var_ps(m0, odd, m1);
    __m512i left_at = _mm512_permutex2var_epi32(w0, even, w1), right_at = _mm512_permutex2var_epi32(w0, odd, w1);
    left_at = _mm512_add_epi32(left_at, left_at);                           // 0 top left, 2 bottom left
    right_at = _mm512_add_epi32(_mm512_add_epi32(right_at, right_at), one); // 1 top right, 3 bottom right
    // The right one wins if larger, or equal and first in scan order (pool_relu_plane's rule).
    __mmask16 take_right = _mm512_cmp_ps_mask(right, left, _CMP_GT_OQ) |
                           (_mm512_cmp_ps_mask(right, left, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(right_at, left_at));
    __m512 m = _mm512_mask_blend_ps(take_right, left, right);
    __m512i at = _mm512_mask_blend_epi32(take_right, left_at, right_at);
    __mmask16 valid = (__mmask16)((1u << Q2) - 1);
    _mm512_mask_storeu_ps(y, valid, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), m));
    _mm_mask_storeu_epi8(where, valid, _mm512_cvtepi32_epi8(at));
}

// Output rows h and h + 1, columns 0 .. 31, of channels k and k + 1 (weights wk, 9 each) when
// `two`, of k alone otherwise, then their pooled rows (y and where of channel k; the next
// channel's a plane further, `pooled` apart). Two channels share each row read from the image:
// one channel's sums took as many loads as multiply-adds, and the loads set the pace.
static inline void row_pair(float *y, uint8_t *where, int64_t pooled, const float *xp, int64_t h, const float *wk,
                            const float *bias, int64_t Q2, const bool two) {
    __m512 t0 = _mm512_setzero_ps(), t1 = t0, b0 = t0, b1 = t0; // channel k: top and bottom rows, two vectors each
    __m512 u0 = t0, u1 = t0, d0 = t0, d1 = t0;                   // channel k + 1
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++) {
            const float *top = xp + (h + r) * PADDED_W + s, *bottom = top + PADDED_W;
            __m512 x0 = _mm512_loadu_ps(top), x1 = _mm512_loadu_ps(top + 16);
            __m512 x2 = _mm512_loadu_ps(bottom), x3 = _mm512_loadu_ps(bottom + 16);
            __m512 wv = _mm512_set1_ps(wk[r * 3 + s]);
            t0 = _mm512_fmadd_ps(wv, x0, t0);
            t1 = _mm512_fmadd_ps(wv, x1, t1);
            b0 = _mm512_fmadd_ps(wv, x2, b0);
            b1 = _mm512_fmadd_ps(wv, x3, b1);
            if (two) {
                __m512 wv2 = _mm512_set1_ps(wk[9 + r * 3 + s]);
                u0 = _mm512_fmadd_ps(wv2, x0, u0);
                u1 = _mm512_fmadd_ps(wv2, x1, u1);
                d0 = _mm512_fmadd_ps(wv2, x2, d0);
                d1 = _mm512_fmadd_ps(wv2, x3, d1);
            }
        }
    pool_pair(y, where, t0, t1, b0, b1, bias ? bias[0] : 0.0f, Q2);
    if (two) pool_pair(y + pooled, where + pooled, u0, u1, d0, d1, bias ? bias[1] : 0.0f, Q2);
}

bool conv1_relu_pool_direct_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                int64_t pad, int64_t P, int64_t Q) {
    if (C != 1 || R != 3 || S != 3 || stride != 1 || pad != 1 || P != H || Q != W || W > 32 || H > MAX_H || P < 2 ||
        Q < 2)
        return false;
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    bool threads = N > 1 && N * K * P * Q * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t n = 0; n < N; n++) {
        float xp[(MAX_H + 2) * PADDED_W];
        memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float));
        for (int64_t h = 0; h < H; h++) memcpy(xp + (h + 1) * PADDED_W + 1, x + (n * H + h) * W, (size_t)W * sizeof(float));
        for (int64_t k = 0; k < K; k += 2) { // two channels at a time (one at the end of an odd K)
            int64_t plane = n * K + k;
            const float *bk = bias ? bias + k : NULL;
            for (int64_t p = 0; p < P2; p++) {
                float *yp = y + plane * pooled + p * Q2;
                uint8_t *at = where + plane * pooled + p * Q2;
                if (k + 1 < K)
                    row_pair(yp, at, pooled, xp, 2 * p, w + k * 9, bk, Q2, true);
                else
                    row_pair(yp, at, pooled, xp, 2 * p, w + k * 9, bk, Q2, false);
            }
        }
    }
    return true;
}
#else
bool conv1_relu_pool_direct_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                int64_t pad, int64_t P, int64_t Q) {
    return false; // without AVX-512: conv.c's path
}
#endif

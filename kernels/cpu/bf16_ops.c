// bf16_ops.c: the op table's bf16 convolutions (conv2d_forward_h, conv2d_backward_h with dtype
// bf16, and the fused conv + ReLU + pooling block of conv_pool_h.c) on the CPU's bf16 hardware,
// AMX tiles or AVX512-BF16 (bf16_gemm.c), called by amp.c and conv_pool_h.c when cg_cpu_bf16() is
// not the emulated path. The products (gemm_h, linear_forward_h) are bf16_products.c; "same"
// convolutions pack their operands and sum col2im without im2col in bf16_same.c; one-channel 3 x 3
// ones (the tutorial's first layer) take their forward sums from bf16_direct.c's FMAs instead,
// the fused block's whole forward too, and its backward without dx from bf16_direct_dw.c.
// The same policy as the emulated kernels: bf16 values multiplied exactly, sums in fp32, each
// stored result rounded to bf16 once; the sums run in another order (tests/test_bf16_cpu.c).
// The convolutions read and write bf16 directly: im2col in bf16, no widened copies of x or W.
// fp16 stays emulated (amp.c): these CPUs have no fp16 product with fp32 sums.
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_same.h"
#include "kernels/cpu/bf16_vec.h"
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

// The columns of one image in bf16, as conv.c's im2col_image: row (c, r, s), column (p, q) =
// x[c][p*stride - pad + r][q*stride - pad + s], 0 outside the image; rows `ld` values apart.
// "Same" convolutions with stride 1 (P == H, Q == W) take conv.c's shortcut: row (c, r, s) is
// plane c shifted by (r - pad) W + (s - pad) values, one long copy, then the columns that the
// flat shift wrapped around to the neighbouring row are zeroed.
static void im2col_bf16(uint16_t *col, int64_t ld, const uint16_t *x, int64_t C, int64_t H, int64_t W, int64_t R,
                        int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    bool same = stride == 1 && P == H && Q == W;
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                uint16_t *row = col + ((c * R + r) * S + s) * ld;
                // The output columns whose input column q*stride - pad + s lies in 0 .. W-1.
                int64_t q0 = pad - s > 0 ? (pad - s + stride - 1) / stride : 0;
                int64_t q1 = W - 1 + pad - s >= 0 ? (W - 1 + pad - s) / stride + 1 : 0;
                q0 = q0 < Q ? q0 : Q;
                q1 = q1 < Q ? q1 : Q;
                q1 = q1 > q0 ? q1 : q0;
                if (same) {
                    int64_t shift = (r - pad) * W + (s - pad), a = shift < 0 ? -shift : 0;
                    int64_t b = shift > 0 ? H * W - shift : H * W;
                    b = b > a ? b : a;
                    memset(row, 0, (size_t)a * sizeof *row);
                    memcpy(row + a, x + c * H * W + a + shift, (size_t)(b - a) * sizeof *row);
                    memset(row + b, 0, (size_t)(P * Q - b) * sizeof *row);
                    for (int64_t p = 0; p < P; p++) { // the wrapped-around columns
                        for (int64_t q = 0; q < q0; q++) row[p * Q + q] = 0;
                        for (int64_t q = q1; q < Q; q++) row[p * Q + q] = 0;
                    }
                    continue;
                }
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
// without the 16-bit plane in between nor the two passes over f32 copies of it.
static inline __attribute__((always_inline)) VEC_TARGET void bias_relu_pool_avx512(uint16_t *y, uint8_t *where,
                                                                                 const float *rows, int64_t ld,
                                                                                 float bias, int64_t P, int64_t Q) {
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
                __m512i a = round16_avx512(_mm512_add_ps(_mm512_maskz_loadu_ps(lo, r), b));
                __m512i c = round16_avx512(_mm512_add_ps(_mm512_maskz_loadu_ps(hi, r + 16), b));
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

// The tutorial's sizes as constants (loops of known lengths), as cg_bf16_relu_pool_plane.
static VEC_TARGET void bias_relu_pool(uint16_t *y, uint8_t *where, const float *rows, int64_t ld, float bias,
                                      int64_t P, int64_t Q) {
    if (P == 28 && Q == 28)
        bias_relu_pool_avx512(y, where, rows, ld, bias, 28, 28);
    else if (P == 14 && Q == 14)
        bias_relu_pool_avx512(y, where, rows, ld, bias, 14, 14);
    else
        bias_relu_pool_avx512(y, where, rows, ld, bias, P, Q);
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
#ifdef CG_CPU_MATRIX_KERNELS
    if (cg_bf16_direct_fits(C, H, W, R, S, stride, pad, P, Q)) {
        wf = cg_xmalloc((size_t)(K * 9) * sizeof *wf);
        cg_bf16_direct_weights(wf, w, K, path);
    } else if (stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
    }
#endif
    if (!wf) cg_bf16_pack_a(Wp, w, crs, 1, K, crs); // the tile product's weights (the direct sums read wf)
#ifdef CG_CPU_MATRIX_KERNELS
    bool pooled_direct = wf && where && cg_bf16_direct_pool_fits(C, H, W, R, S, stride, pad, P, Q) &&
                         cg_bf16_direct_pool_ready(wf, bias, K); // the fused block in registers (bf16_direct.h)
#endif
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ldo = round16(pq);
        uint16_t *col = scratch16(1, crs * pq), *colp = scratch16(2, cg_bf16_packed_size(pq, crs));
        float *out = scratch32(3, round16(K) * ldo);
        uint16_t *plane16 = where ? scratch16(5, pq) : NULL;
        float *col_max = where ? scratch32(6, pooled * 2) : NULL;
        int32_t *won = where ? (int32_t *)scratch32(7, pooled * 2) : NULL;
        // One image per product: its output (K, PQ) in f32 stays in the cache for the epilogue.
        for (int64_t j = 0; j < count; j++) {
#ifdef CG_CPU_MATRIX_KERNELS
            if (pooled_direct && cg_bf16_direct_relu_pool(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled,
                                                          x + (n0 + j) * H * W, wf, bias, K, H, W, path))
                continue; // bf16_direct.h: sums, epilogue and pooling in registers
            if (wf) // the same f32 rows, summed by FMAs: no packing, no 9-term reduction padded to 32
                cg_bf16_direct_sums(out, ldo, x + (n0 + j) * H * W, wf, K, H, W, path);
            else if (valid)
                cg_bf16_pack_b_same(colp, x + (n0 + j) * C * H * W, valid, C, H, W, R, S, pad);
            else
#endif
            {
                im2col_bf16(col, pq, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_b(colp, col, pq, 1, crs, pq);
            }
            if (!wf) // (the direct sums have written `out` already)
                cg_bf16_gemm_packed(out, ldo, Wp, colp, K, pq, crs, path);
            for (int64_t k = 0; k < K; k++) { // to NCHW, adding the bias, rounded to bf16 (then pooled)
                float b = bias ? cg_bf16_widen(bias[k]) : 0.0f;
                const float *src = out + k * ldo;
                int64_t plane = (n0 + j) * K + k;
#ifdef CG_CPU_MATRIX_KERNELS
                if (where) { // always AVX-512 on the paths that reach this file
                    bias_relu_pool(y + plane * pooled, where + plane * pooled, src, Q, b, P, Q);
                    continue;
                }
#endif
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

// The 16 lanes of a sum, added in lane order.
static VEC_TARGET double lanes_sum(const __m512d sum[2]) {
    double lanes[16], total = 0.0;
    _mm512_storeu_pd(lanes, sum[0]);
    _mm512_storeu_pd(lanes + 8, sum[1]);
    for (int i = 0; i < 16; i++) total += lanes[i];
    return total;
}

// fill_dyg's pooled case (below) with unpool_plane_avx512.
static VEC_TARGET void unpool_group_avx512(uint16_t *dyg, const uint16_t *dy, const uint16_t *y, const uint8_t *where,
                                           double *sums, int64_t n0, int64_t count, int64_t K, int64_t P, int64_t Q) {
    int64_t pq = P * Q, L = count * pq, pooled = (P / 2) * (Q / 2);
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
                unpool_plane_avx512(out, g, yp, at, 14, 14, sum);
            else
                unpool_plane_avx512(out, g, yp, at, P, Q, sum);
        }
        if (sums) sums[k] = lanes_sum(sum);
    }
}
#endif

// The group's output gradient dy_g (K, L): copied from dy (N, K, P, Q), or (pooled: y != NULL)
// built from the pooled gradient by unpool_plane, each channel's sum put in sums[k] when sums
// is not NULL.
static void fill_dyg(uint16_t *dyg, const uint16_t *dy, const uint16_t *y, const uint8_t *where, double *sums,
                     int64_t n0, int64_t count, int64_t K, int64_t P, int64_t Q) {
    int64_t pq = P * Q, L = count * pq, pooled = (P / 2) * (Q / 2);
#ifdef CG_CPU_MATRIX_KERNELS
    if (y) { // always, on the paths that reach this file
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

// Backward; y != NULL: the fused block's (dy pooled, y the pooled output, where its positions).
static void conv_backward(cg_cpu_bf16_path path, uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q) {
#ifdef CG_CPU_MATRIX_KERNELS
    if (y && !dx && path == CG_BF16_AVX512 && cg_bf16_direct_dw_fits(C, H, W, K, R, S, stride, pad, P, Q)) {
        cg_bf16_direct_dw(dw, dbias, dy, y, where, x, N, H, W, K, GROUP); // bf16_direct.h: the same bits
        return;
    }
#endif
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
    // thread count).
    float *slices = dw ? host_f32(1, groups * crs * K) : NULL;
    uint16_t *Wtp = NULL;
    if (dx) { // W^T (CRS, K) packed once, read by every thread
        Wtp = scratch16(0, cg_bf16_packed_size(crs, K));
        cg_bf16_pack_a(Wtp, w, 1, crs, crs, K);
    }
    uint64_t *valid = NULL; // as in the forward: cg_bf16_pack_a_same's bitsets
    uint16_t *c2i_masks = NULL; // cg_bf16_col2im_same's masks and shifts
    int64_t *c2i_shifts = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if ((dw || dx) && stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
        if (dx) {
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
    float *dxf = dx && !c2i_masks ? host_f32(0, N * C * H * W) : NULL;
    if (dxf) widen_array(dxf, dx, N * C * H * W);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, L = count * pq;
        uint16_t *dyg = scratch16(1, K * L);
        fill_dyg(dyg, dy, y, where, bias_sums ? bias_sums + g * K : NULL, n0, count, K, P, Q);
        if (dw) {
            uint16_t *colp = scratch16(3, cg_bf16_packed_size(crs, L));
#ifdef CG_CPU_MATRIX_KERNELS
            if (valid)
                cg_bf16_pack_a_same(colp, x + n0 * C * H * W, count, valid, C, H, W, R, S, pad,
                            (uint64_t *)scratch32(5, 2 * cg_bf16_pack_a_same_work(count, H, W, R, S)));
            else
#endif
            {
                uint16_t *col = scratch16(2, crs * L);
                for (int64_t j = 0; j < count; j++)
                    im2col_bf16(col + j * pq, L, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_a(colp, col, L, 1, crs, L);
            }
            uint16_t *dyp = scratch16(2, cg_bf16_packed_size(K, L)); // col is packed: its buffer is free
            cg_bf16_pack_b(dyp, dyg, 1, L, L, K);                      // B (L, K) = dy_g^T
            int64_t ldc = round16(K);
            float *acc = scratch32(4, round16(crs) * ldc);
            cg_bf16_gemm_packed(acc, ldc, colp, dyp, crs, K, L, path);
            float *slice = slices + g * crs * K;
            for (int64_t i = 0; i < crs; i++) memcpy(slice + i * K, acc + i * ldc, (size_t)K * sizeof(float));
        }
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
    if (dw) { // dw (K, CRS) += slice 0, slice 1, ... (each (CRS, K)), in f32, rounded once
        // In the slices' layout, dW^T, one row i of CRS at a time: each slice's row is then read
        // in order (not K floats apart), the rows shared out to the threads; every element still
        // receives its terms in group order, the same sums on any number of threads.
        // On the threads only when there is enough to add: the first convolution's (9 x 32 per
        // group in the tutorial CNN) takes less time than waking the sleeping thread.
        float *dwt = host_f32(2, K * crs);
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
    conv_backward(path, dx, dw, dbias, dy, NULL, NULL, x, w, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

bool cg_bf16_conv2d_relu_pool_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w,
                                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                          int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_backward(path, dx, dw, dbias, dy, y, where, x, w, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

// conv_winograd_bf16.c: Winograd's F(2 x 2, 3 x 3) tiles (conv_winograd.c says what they compute)
// for bf16 convolutions (bf16_ops.c) on the AVX512-BF16 path. The transforms run in f32 on the
// widened bf16 values, as conv_winograd.c's; the transformed filters U and patches V are then
// rounded to bf16 and multiplied by the bf16 product (bf16_gemm.c: vdpbf16ps, sums in f32); the
// output transform is conv_winograd.c's (winograd_output_block), which rounds each result to bf16
// once as it finishes it. Products of bf16 values are exact in f32, but U and V are sums (B^T d B
// adds up to four values, G g G^T halves and adds), and rounding them to bf16 costs up to 2^-8 of
// each: every product of the 16 is within 2^-7 of the exact product of the transformed values.
// tests/test_bf16_winograd.c holds each output to that bound, summed over its terms.
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef CG_WINOGRAD_BF16
// chunk_transform for two channels at once, a and b, in pairs: lane 2t + e of each vector channel
// e's value (a: e = 0, b: e = 1), so that each V_xi leaves in the pair rows of the bf16 product
// (tile t's pair at 32-bit position t) as it is rounded, with no permutation. The rows come in two
// vectors, p and q, whose lanes hold the padded columns in unpack's order: vpunpcklwd and
// vpunpckhwd interleave a's and b's 16-bit values within each 128-bit half, so that after widening
// lane 2k + e of p holds column k (k = 0 .. 3) and lane 8 + 2k + e column 8 + k, and q the same for
// columns 4 + k and 12 + k. The same sums lane by lane as chunk_transform (conv_winograd.c); each permutation
// gathers its even or odd columns from p and q (indices 16 and up: q's lanes).
#define PAIR_LANE(col, e) ((col) < 4 ? 2 * (col) + (e) : (col) < 8 ? 16 + 2 * ((col) - 4) + (e) \
                          : (col) < 12 ? 8 + 2 * ((col) - 8) + (e) : 24 + 2 * ((col) - 12) + (e))
#define PAIR_INDEX(first) /* lanes 2t + e = column 2t + first of channel e; t = 7 (lanes 14, 15) unused */ \
    _mm512_setr_epi32(PAIR_LANE(first, 0), PAIR_LANE(first, 1), PAIR_LANE(2 + first, 0), PAIR_LANE(2 + first, 1), \
                      PAIR_LANE(4 + first, 0), PAIR_LANE(4 + first, 1), PAIR_LANE(6 + first, 0), PAIR_LANE(6 + first, 1), \
                      PAIR_LANE(8 + first, 0), PAIR_LANE(8 + first, 1), PAIR_LANE(10 + first, 0), PAIR_LANE(10 + first, 1), \
                      PAIR_LANE(12 + first, 0), PAIR_LANE(12 + first, 1), 0, 0)
static inline __attribute__((always_inline)) void chunk_transform_pairs(const __m512 p[4], const __m512 q[4],
                                                                        __m512 v[16]) {
    const __m512i even = PAIR_INDEX(0), odd = PAIR_INDEX(1), even1 = PAIR_INDEX(2), odd1 = PAIR_INDEX(3);
    __m512 rp[4] = {_mm512_sub_ps(p[0], p[2]), _mm512_add_ps(p[1], p[2]), _mm512_sub_ps(p[2], p[1]),
                    _mm512_sub_ps(p[1], p[3])};
    __m512 rq[4] = {_mm512_sub_ps(q[0], q[2]), _mm512_add_ps(q[1], q[2]), _mm512_sub_ps(q[2], q[1]),
                    _mm512_sub_ps(q[1], q[3])};
    for (int i = 0; i < 4; i++) {
        __m512 e = _mm512_permutex2var_ps(rp[i], even, rq[i]), o = _mm512_permutex2var_ps(rp[i], odd, rq[i]);
        __m512 e1 = _mm512_permutex2var_ps(rp[i], even1, rq[i]), o1 = _mm512_permutex2var_ps(rp[i], odd1, rq[i]);
        v[4 * i + 0] = _mm512_sub_ps(e, e1);
        v[4 * i + 1] = _mm512_add_ps(o, e1);
        v[4 * i + 2] = _mm512_sub_ps(e1, o);
        v[4 * i + 3] = _mm512_sub_ps(o, o1);
    }
}
#undef PAIR_INDEX
#undef PAIR_LANE

// The filters of bf16 weights w (K, C, 3, 3) transformed in f32 as transform_weights does (tap by
// tap, widened, filters_transform's sums), rounded to bf16 and each U_xi packed as the product's A
// operand (cg_bf16_pack_a): forward (K x C) or dx (C x K, turned), 16 packed matrices of
// cg_bf16_packed_size(rows, cols) each. On the calling thread, read by all.
static const uint16_t *transform_weights_bf16(const uint16_t *w, int64_t K, int64_t C, bool for_dx) {
    static _Thread_local cg_thread_buffer buffers[3];
    int64_t n = K * C, rows = for_dx ? C : K, cols = for_dx ? K : C, per = cg_bf16_packed_size(rows, cols);
    float *g = cg_thread_floats_aligned(&buffers[2], 9 * n);
    for (int64_t j = 0; j < n; j++)
        for (int i = 0; i < 9; i++) g[(for_dx ? 8 - i : i) * n + j] = cg_bf16_widen(w[j * 9 + i]); // turned for dx
    uint16_t *u = cg_thread_buffer_get(&buffers[for_dx], 2 * 16 * (n + per)), *up = u + 16 * n;
    for (int64_t j = 0; j < n; j += 16) { // u[xi][k C + c] = round((G g G^T)[xi]), the f32 sums of filters_transform
        __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
        __m512 v[16];
        filters_transform(g, n, j, m, v);
        for (int xi = 0; xi < 16; xi++) // cg_bf16_round's bits (bf16_vec.h)
            _mm256_mask_storeu_epi16(u + xi * n + j, m, _mm512_cvtepi32_epi16(round16_avx512(v[xi])));
    }
    // forward: A (K x C) = u[xi] row by row; dx: A (C x K), A(c, k) = u[xi][k C + c]
    for (int xi = 0; xi < 16; xi++)
        cg_bf16_pack_a(up + xi * per, u + xi * n, for_dx ? 1 : C, for_dx ? C : 1, rows, cols);
    return up;
}

// One V_xi as the product's B operand in rows of pairs (bf16_gemm.h: cg_bf16_gemm_pair_rows):
// pair row p holds channels 2p and 2p + 1, tile j's pair at 32-bit position j of the row, rows
// ld pairs apart; 16 KC rows (the channel pairs padded to a multiple of 16).

// input_transform for bf16 planes, into V_xi at V + xi * v_stride: two channels at a time, their
// rows interleaved value by value as they are loaded (vpunpcklwd, vpunpckhwd) and widened, so that
// the transform (chunk_transform_pairs) leaves each V_xi's 7 tiles already in pairs: one
// vcvtneps2bf16 a vector (round to nearest even; it reads a denormal as zero, an error below
// 2^-126) and a masked store, the chunks of a pair row one after the other (16 streams written
// from start to end, as input_transform's). A last odd channel is paired with zeros. Run only on
// the AVX512-BF16 path: its target.
static __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void input_transform_bf16(
    uint16_t *V, int64_t v_stride, int64_t ld, const uint16_t *in, int64_t image_stride, int64_t channel_stride,
    int64_t C, int64_t H, int64_t W, int64_t r0, int64_t r1) {
    int64_t H2 = H / 2, Q2 = W / 2;
    for (int64_t c = 0; c < C; c += 2)
        for (int64_t r = r0, n = r0 / H2, ty = r0 % H2; r < r1; r++, next_row(&n, &ty, H2)) {
            int64_t j0 = (r - r0) * Q2; // tile row r: row ty of image n, counted along (input_transform)
            const uint16_t *plane = in + n * image_stride + c * channel_stride;
            for (int64_t e = 2; e < 4 && c + e < C; e++) // the next pair's rows (prefetch_rows)
                prefetch_rows(plane + e * channel_stride + 2 * ty * W, 2 * W * (int64_t)sizeof(uint16_t));
            for (int64_t tx0 = 0; tx0 < Q2; tx0 += 7) {
                int64_t tiles = Q2 - tx0 < 7 ? Q2 - tx0 : 7;
                __mmask16 cols = columns_mask(2 * tx0, W, tiles);
                __mmask8 store = (__mmask8)((1u << tiles) - 1);
                __m512 p[4], q[4];
                for (int i = 0; i < 4; i++) {
                    int64_t h = 2 * ty - 1 + i;
                    if (h < 0 || h >= H) {
                        p[i] = q[i] = _mm512_setzero_ps();
                        continue;
                    }
                    // as input_transform: lane 0 of the first chunk (column -1) masked off
                    const uint16_t *row = plane + h * W + 2 * tx0 - 1;
                    __m256i a = _mm256_maskz_loadu_epi16(cols, row);
                    __m256i b = c + 1 < C ? _mm256_maskz_loadu_epi16(cols, row + channel_stride) : _mm256_setzero_si256();
                    // bf16 to f32: the 16 bits above 16 zeros
                    p[i] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_unpacklo_epi16(a, b)), 16));
                    q[i] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_unpackhi_epi16(a, b)), 16));
                }
                __m512 v[16];
                chunk_transform_pairs(p, q, v);
                for (int xi = 0; xi < 16; xi++)
                    _mm256_mask_storeu_epi32((uint32_t *)(V + xi * v_stride + c * ld) + j0 + tx0, store,
                                             (__m256i)_mm512_cvtneps_pbh(v[xi]));
            }
        }
}

// The pair rows' padding, zero (a NaN or a denormal there would spoil or slow the product): the
// pairs past the block's tiles in each row (one masked store a row, ld - tiles < 16 pairs: a call
// to memset each, 768 of them a block for dx of the tutorial's second layer, took 2 % of a
// training step), and the rows past the channels.
static void zero_padding_bf16(uint16_t *V, int64_t v_stride, int64_t ld, int64_t C, int64_t tiles) {
    int64_t rows = (C + 31) / 32 * 16, pairs = (C + 1) / 2;
    __mmask16 end = (__mmask16)((1u << (ld - tiles)) - 1);
    for (int xi = 0; xi < 16; xi++)
        for (int64_t p = 0; p < rows; p++) {
            uint32_t *row = (uint32_t *)(V + xi * v_stride + 2 * p * ld);
            if (p < pairs)
                _mm512_mask_storeu_epi32(row + tiles, end, _mm512_setzero_si512());
            else
                memset(row, 0, (size_t)ld * 4);
        }
}

// block() for bf16 input planes: the outputs of tile rows r0 .. r1-1 finished as `how` (a _BF16
// mode) into the bf16 planes at `out`.
static void block_bf16(uint16_t *out, uint8_t *where, int64_t out_image, const uint16_t *in, int64_t in_image,
                       int64_t in_channel, const uint16_t *u, const float *bias, finish how, int64_t Cin, int64_t Cout,
                       int64_t H, int64_t W, int64_t r0, int64_t r1) {
    static _Thread_local cg_thread_buffer buffers[2];
    int64_t tiles = (r1 - r0) * (W / 2), ld = (tiles + 15) / 16 * 16;
    // the 16 V_xi a cache line more than their size apart (matrix_floats), as the 16 O_xi
    int64_t v_stride = 2 * ld * ((Cin + 31) / 32 * 16) + 32, o_stride = matrix_floats((Cout + 15) / 16 * 16, ld);
    uint16_t *V = cg_thread_buffer_get(&buffers[0], 2 * 16 * v_stride);
    float *O = cg_thread_floats_aligned(&buffers[1], 16 * o_stride);
    zero_padding_bf16(V, v_stride, ld, Cin, tiles);
    input_transform_bf16(V, v_stride, ld, in, in_image, in_channel, Cin, H, W, r0, r1);
    int64_t per = cg_bf16_packed_size(Cout, Cin);
    for (int xi = 0; xi < 16; xi++)
        cg_bf16_gemm_pair_rows(O + xi * o_stride, ld, u + xi * per, V + xi * v_stride, ld, Cout, tiles, Cin);
    winograd_output_block(out, where, out_image, O, ld, o_stride, bias, how, Cout, H, W, r0, r1);
}
#endif

bool conv2d_winograd_bf16_takes(cg_cpu_bf16_path path, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    // Up to 256 channels in and out together: ResNet-18's layer3 (256 + 256) ran slower on the tiles
    // than on the dense product (bench_cpu_peak, AMD EPYC: 195 against 216 GFLOP/s forward), its
    // 16 transformed filters (2 MB) and O past the second-level cache.
#ifdef CG_WINOGRAD_BF16
    return path == CG_BF16_AVX512 && C + K <= 256 && conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q);
#else
    (void)path, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q;
    return false;
#endif
}

const uint16_t *conv2d_winograd_bf16_weights(const uint16_t *w, int64_t K, int64_t C, bool for_dx) {
#ifdef CG_WINOGRAD_BF16
    return transform_weights_bf16(w, K, C, for_dx);
#else
    (void)w, (void)K, (void)C, (void)for_dx;
    return NULL;
#endif
}

void conv2d_winograd_bf16_images(uint16_t *y, uint8_t *where, const uint16_t *bias, bool accumulate,
                                 const uint16_t *in, int64_t image_stride, int64_t channel_stride, const uint16_t *u,
                                 int64_t count, int64_t Cin, int64_t Cout, int64_t H, int64_t W) {
#ifdef CG_WINOGRAD_BF16
    // The bias widened once (bf16 values are exact in f32), for output_block's f32 sums.
    static _Thread_local cg_thread_buffer bias_buffer;
    float *b = bias ? cg_thread_floats_aligned(&bias_buffer, Cout) : NULL;
    for (int64_t k = 0; b && k < Cout; k++) b[k] = cg_bf16_widen(bias[k]);
    finish how = where ? RELU_POOL_BF16 : accumulate ? ADD_BF16 : STORE_BF16;
    // Blocks of twice the f32 path's tiles (V in bf16 is half the size): bench_cpu_peak, AMD EPYC,
    // forward 244 -> 250 GFLOP/s on the tutorial's second layer, 278 -> 309 on ResNet-18's layer1
    // (three and four times: no better)
    int64_t rows = 2 * winograd_block_rows(Cin, Cout, W), total = count * (H / 2);
    for (int64_t r0 = 0; r0 < total; r0 += rows)
        block_bf16(y, where, Cout * H * W, in, image_stride, channel_stride, u, b, how, Cin, Cout, H, W, r0,
                   r0 + rows < total ? r0 + rows : total);
#else
    (void)y, (void)where, (void)bias, (void)accumulate, (void)in, (void)image_stride, (void)channel_stride, (void)u,
        (void)count, (void)Cin, (void)Cout, (void)H, (void)W;
#endif
}

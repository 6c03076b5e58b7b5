// conv_winograd.c: 3 x 3 convolutions of stride 1 and padding 1 ("same") by Winograd's minimal
// filtering F(2 x 2, 3 x 3) (S. Winograd, "Arithmetic Complexity of Computations", 1980; for
// convolutional networks A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016). The output is cut into tiles of 2 x 2; a tile reads a 4 x 4 patch d of
// each input channel, and with g one 3 x 3 filter,
//
//     Y (2 x 2) = A^T [ (G g G^T) (.) (B^T d B) ] A        (.) : element by element
//
//     B^T = | 1  0 -1  0 |      G = | 1    0    0   |      A^T = | 1  1  1  0 |
//           | 0  1  1  0 |          | 1/2  1/2  1/2 |            | 0  1 -1 -1 |
//           | 0 -1  1  0 |          | 1/2 -1/2  1/2 |
//           | 0  1  0 -1 |          | 0    0    1   |
//
// 16 multiplications for 4 outputs, where the direct convolution takes 4 x 9 = 36: 2.25 times
// fewer. The transforms only add and subtract (G halves). Summed over the C input channels, the
// 16 element-by-element products of a tile become 16 matrix products, one per position xi of the
// 4 x 4 transformed patch:
//
//     O_xi (K x T) = U_xi (K x C) V_xi (C x T),   U = G g G^T per filter, V = B^T d B per patch
//
// over T tiles at a time, and these run on the engine's GEMM (gemm.c), from whose point of view
// they are ordinary products: the same code that runs the im2col convolution. So a convolution
// here is: the weights transformed once per call (K x C x 16 values), then for each block of
// tiles the input transform (into V), the 16 products (into O) and the output transform (O back
// to 2 x 2 outputs, with the bias, or pooled: the tutorial's conv + ReLU + 2 x 2 max pooling,
// whose pooling windows are exactly the tiles).
//
// The results are not those of the im2col path to the bit (the sums are taken on transformed
// values: errors of a few units in the last place, as cuDNN's and oneDNN's Winograd kernels),
// but each output is computed the same way whatever the block, the group of images or the number
// of threads: the same bits on any number of threads, and the fused block and the three ops
// (conv2d, relu, max_pool2d) agree to the bit, since both come from the same tiles.
// With AVX-512 the transforms are written with its masked loads and stores (here); on other CPUs
// with the compiler's vectors of 8 floats (conv_winograd_portable.c). Other shapes keep the
// im2col path (the functions then return false having done nothing).
// The same tiles serve bf16 convolutions on AVX512-BF16 (conv_winograd_bf16.c), their
// transformed values rounded to bf16 for vdpbf16ps; what the two files share is conv_winograd.h.
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Whether a convolution is one this file computes: 3 x 3, stride 1, padding 1, even sides (whole
// tiles: the tutorial's 14 x 14, ResNet-18's 56, 28 and 14), at least 4 x 4 tiles an image, and
// enough channels on both sides for the 16 products to be real matrix products (the one-channel
// first layer has its direct kernels, conv_direct.c). Planes of 4 x 4 (ResNet-18's CIFAR layer4:
// 4 tiles an image, 512 channels) ran slower on the tiles than on the dense product: 103 / 118
// against 154 / 156 GFLOP/s forward / backward (bench_cpu_peak, one thread, AMD EPYC Zen 5); at
// 8 x 8 (its layer3) the tiles win, 289 / 231 against 199 / 200.
// CGRAD_CPU_WINOGRAD=0 in the environment turns it off (the im2col path's bits, to compare; read
// at each call, a few nanoseconds beside a convolution's milliseconds).
bool conv2d_winograd_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                           int64_t pad, int64_t P, int64_t Q) {
    const char *off = getenv("CGRAD_CPU_WINOGRAD");
    if (off && strcmp(off, "0") == 0) return false;
    return R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && H % 2 == 0 && W % 2 == 0 && H >= 8 &&
           W >= 8 && C >= 16 && K >= 16;
}

// A block's tiles: whole rows of tiles (W/2 tiles each), about 10752 / (C + K) of them (32 to
// 112), so that the block's V (16 x C x T floats) and O (16 x K x T) stay in the core's second-
// level cache (1 MB on the AMD EPYC, 2 MB on the Xeon): 112 tiles for the tutorial's second layer
// (32 + 64 channels), 16 rows of 7, 688 KB. Fewer for more channels, at least one row.
// Of the counts of rows from half to one and a half times that, the nearest whose tiles are whole
// panels of the product's 32 columns, where there is one: CIFAR's layer2 (16 x 16 planes, 8 tiles
// a row, 128 channels in and out) took 5 rows, 40 tiles, a panel and a half, the half one at half
// the FMAs per load; 4 rows, 32 tiles: its forward 307-341 -> 409-414 GFLOP/s on one Zen 5 core
// (two alternated rounds). The tiles' sums do not depend on the block's width: the same bits.
int64_t winograd_block_rows(int64_t C, int64_t K, int64_t W) {
    int64_t tiles = 10752 / (C + K), per_row = W / 2;
    tiles = tiles < 32 ? 32 : tiles > 112 ? 112 : tiles;
    int64_t rows = tiles / per_row;
    rows = rows < 1 ? 1 : rows;
    for (int64_t d = 0; d <= rows / 2; d++) {
        if (rows - d >= 1 && (rows - d) * per_row % 32 == 0) return rows - d;
        if ((rows + d) * per_row % 32 == 0) return rows + d;
    }
    return rows;
}

// The filters transformed, U_xi = (G g G^T)[xi], laid out for the products: for the forward
// u[xi][k][c] (K x C, g = w[k][c]); for dx, which convolves dy with the filters turned by 180
// degrees (g[r][s] = f[2 - r][2 - s]) and input and output channels swapped, u[xi][c][k] (C x K,
// g = w[k][c] turned). The K C filters are first laid out tap by tap, so that the transform runs
// over whole vectors of filters (a filter at a time, with its 16 scattered stores, took 1.5 % of
// an fp32 training step on one Zen 5 core, and on two threads ran on the first one alone).
// Then each U_xi packed for the GEMM (gemm_pack_a_cpu) after the 16 matrices, in the same
// buffer; on the calling thread, before the threads start: they all read it.
static const float *transform_weights(int which, const float *w, int64_t K, int64_t C, bool for_dx) {
    static _Thread_local cg_thread_buffer buffers[2], scratch[2];
    int64_t n = K * C, rows = for_dx ? C : K, cols = for_dx ? K : C, per = gemm_packed_a_floats(rows, cols);
    float *u = cg_thread_floats_aligned(&buffers[which], 16 * (n + per)), *up = u + 16 * n;
    float *g = cg_thread_floats_aligned(&scratch[0], 9 * n);
    for (int64_t j = 0; j < n; j++)
        for (int i = 0; i < 9; i++) g[(for_dx ? 8 - i : i) * n + j] = w[j * 9 + i]; // turned for dx
    // u[xi][k C + c], or for dx first in a scratch buffer, then u[xi][c K + k]
    float *f = for_dx ? cg_thread_floats_aligned(&scratch[1], 16 * n) : u;
#ifdef CG_WINOGRAD
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
        __m512 v[16];
        filters_transform(g, n, j, m, v);
        for (int xi = 0; xi < 16; xi++) _mm512_mask_storeu_ps(f + xi * n + j, m, v[xi]);
    }
#else // filters_transform's sums, a filter at a time (once per call: K C filters against the step's tiles)
    for (int64_t j = 0; j < n; j++) {
        float t[4][3];
        for (int s = 0; s < 3; s++) { // t = G g, column s
            float g0 = g[s * n + j], g1 = g[(3 + s) * n + j], g2 = g[(6 + s) * n + j];
            t[0][s] = g0, t[3][s] = g2;
            t[1][s] = 0.5f * ((g0 + g1) + g2);
            t[2][s] = 0.5f * ((g0 - g1) + g2);
        }
        for (int i = 0; i < 4; i++) { // U = t G^T, row i
            f[(4 * i + 0) * n + j] = t[i][0];
            f[(4 * i + 1) * n + j] = 0.5f * ((t[i][0] + t[i][1]) + t[i][2]);
            f[(4 * i + 2) * n + j] = 0.5f * ((t[i][0] - t[i][1]) + t[i][2]);
            f[(4 * i + 3) * n + j] = t[i][2];
        }
    }
#endif
    if (for_dx)
        for (int xi = 0; xi < 16; xi++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t c = 0; c < C; c++) u[xi * n + c * K + k] = f[xi * n + k * C + c];
    for (int xi = 0; xi < 16; xi++) gemm_pack_a_cpu(up + xi * per, false, rows, cols, u + xi * n);
    return u;
}

#ifdef CG_WINOGRAD

// B^T d B for a chunk of up to 7 tiles of a row: d holds its 4 rows of 16 padded columns (lane l:
// column 2 tx0 - 1 + l), v[xi] lane t tile t's value xi. The rows combined first (B^T d), then
// the columns: tile t's 4 columns are lanes 2t .. 2t+3, gathered by permutations into even and
// odd columns (e = column 2t, o = 2t+1, e1 = 2t+2, o1 = 2t+3) so that the 7 tiles' column
// transforms run side by side in the lanes: (d B)[.][0..3] = e - e1, o + e1, e1 - o, o - o1.
static inline __attribute__((always_inline)) void chunk_transform(const __m512 d[4], __m256 v[16]) {
    // lanes of (low half, high half) = columns 0 .. 15: vpermt2ps's indices (8 + l: the high half's lane l)
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15);
    const __m256i even1 = _mm256_setr_epi32(2, 4, 6, 8, 10, 12, 14, 14), odd1 = _mm256_setr_epi32(3, 5, 7, 9, 11, 13, 15, 15);
    __m512 rows[4] = {_mm512_sub_ps(d[0], d[2]), _mm512_add_ps(d[1], d[2]), _mm512_sub_ps(d[2], d[1]),
                      _mm512_sub_ps(d[1], d[3])};
    for (int i = 0; i < 4; i++) { // the columns in 8 lanes: half the work of 16 on AMD's 256-bit units
        __m256 lo = _mm512_castps512_ps256(rows[i]), hi = _mm512_extractf32x8_ps(rows[i], 1);
        __m256 e = _mm256_permutex2var_ps(lo, even, hi), o = _mm256_permutex2var_ps(lo, odd, hi);
        __m256 e1 = _mm256_permutex2var_ps(lo, even1, hi), o1 = _mm256_permutex2var_ps(lo, odd1, hi);
        v[4 * i + 0] = _mm256_sub_ps(e, e1);
        v[4 * i + 1] = _mm256_add_ps(o, e1);
        v[4 * i + 2] = _mm256_sub_ps(e1, o);
        v[4 * i + 3] = _mm256_sub_ps(o, o1);
    }
}


// V[xi][c][j] = (B^T d B)[xi] for the block's tiles j (tile rows r0 .. r1-1, the batch's rows of
// tiles one after the other: image n = r / (H/2), its tile row ty = r % (H/2), both counted along
// as r goes, not divided), channel c of the input plane at in + n * image_stride + c *
// channel_stride (H x W), a chunk of 7 tiles at a time.
void winograd_input_transform(float *V, int64_t ld, const float *in, int64_t image_stride, int64_t channel_stride,
                              int64_t C, int64_t H, int64_t W, int64_t r0, int64_t r1) {
    int64_t H2 = H / 2, Q2 = W / 2;
    // Channel by channel, and in each the block's tiles in order: each of the 16 rows of V that
    // the channel fills is then written from start to end, 16 streams that stay in the first-
    // level cache (row by row, every channel's 16 rows were written a piece at a time, 64 KB of
    // partly written lines for 64 channels, and each store missed: twice the time).
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = r0, n = r0 / H2, ty = r0 % H2; r < r1; r++, next_row(&n, &ty, H2)) {
            int64_t j0 = (r - r0) * Q2;
            const float *plane = in + n * image_stride + c * channel_stride;
            if (c + 1 < C) prefetch_rows(plane + channel_stride + 2 * ty * W, 2 * W * (int64_t)sizeof(float));
            for (int64_t tx0 = 0; tx0 < Q2; tx0 += 7) {
                int64_t tiles = Q2 - tx0 < 7 ? Q2 - tx0 : 7;
                __mmask16 cols = columns_mask(2 * tx0, W, tiles);
                __mmask8 store = (__mmask8)((1u << tiles) - 1);
                __m512 d[4];
                for (int i = 0; i < 4; i++) {
                    int64_t h = 2 * ty - 1 + i;
                    // lane l holds column 2 tx0 - 1 + l; lane 0 of the first chunk (column -1)
                    // is masked off, so the address one float before the row is never read
                    d[i] = h < 0 || h >= H ? _mm512_setzero_ps()
                                           : _mm512_maskz_loadu_ps(cols, plane + h * W + 2 * tx0 - 1);
                }
                __m256 v[16];
                chunk_transform(d, v);
                for (int xi = 0; xi < 16; xi++)
                    _mm256_mask_storeu_ps(V + xi * matrix_floats(C, ld) + c * ld + j0 + tx0, store, v[xi]);
            }
        }
}

#endif // CG_WINOGRAD

// The 16 products of a block: O_xi (M x ld) = U_xi (M x Kc) V_xi (Kc x ld), u from transform_weights.
static void products(float *O, const float *V, const float *u, int64_t M, int64_t Kc, int64_t ld) {
    int64_t per = gemm_packed_a_floats(M, Kc);
    const float *up = u + 16 * M * Kc;
    for (int xi = 0; xi < 16; xi++)
        gemm_prepacked_cpu(false, u + xi * M * Kc, up + xi * per, false, M, ld, Kc, 1.0f, V + xi * matrix_floats(Kc, ld),
                           0.0f, O + xi * matrix_floats(M, ld));
}

#ifdef CG_WINOGRAD

// The output transform of 16 tiles side by side (lanes; `m` masks the vector's tiles): Y = A^T O A
// from O_xi at o + xi * stride, the rows combined first (A^T O), then the columns, each sum in
// this order.
typedef struct {
    __m512 y00, y01, y10, y11;
} tile_out;
static inline __attribute__((always_inline)) tile_out output_transform(const float *o, int64_t stride, __mmask16 m) {
    __m512 v[16];
    for (int xi = 0; xi < 16; xi++) v[xi] = _mm512_maskz_loadu_ps(m, o + xi * stride);
    __m512 s0[4], s1[4];
    for (int b = 0; b < 4; b++) {
        s0[b] = _mm512_add_ps(_mm512_add_ps(v[b], v[4 + b]), v[8 + b]);
        s1[b] = _mm512_sub_ps(_mm512_sub_ps(v[4 + b], v[8 + b]), v[12 + b]);
    }
    tile_out t;
    t.y00 = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
    t.y01 = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
    t.y10 = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
    t.y11 = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
    return t;
}

// A run of at most 8 tiles of one tile row in a vector: tiles tx0 .. tx0 + count - 1 of tile row ty
// of image n, in lanes lane0 .. lane0 + count - 1.
typedef struct {
    int64_t n, ty, tx0;
    int count, lane0;
} segment;

#ifdef CG_WINOGRAD_BF16 // (the _BF16 modes: the bf16 paths only)
// bf16's ReLU of round(x + b) (bf16_planes.c's bias_relu_row): the rounded pattern in the high
// half of each lane, read as a float; a pattern with the sign bit set is a negative integer, and
// the maximum with 0 makes it +0 (a -0 or a negative NaN included).
static inline __attribute__((always_inline)) __m512 relu_round(__m512 x, __m512 b) {
    __m512i r = _mm512_slli_epi32(round16_avx512(_mm512_add_ps(x, b)), 16);
    return _mm512_castsi512_ps(_mm512_max_epi32(r, _mm512_setzero_si512()));
}
#endif

// The finish of one vector of tiles (t, with bias b) for each of its segments: output_block's
// modes, lane by lane. STORE and ADD put a segment's outputs together from its own lanes (one
// permutation for the top outputs, one for the bottom); RELU_POOL's pooled outputs are one per lane,
// so a segment's go out under a mask of its lanes, from the address that puts lane lane0 at its
// first window (never before the plane's array: lane0 > 0 only past a segment of count >= lane0
// tiles that precedes it in the same output array). out: floats, or bf16 values for the _BF16
// modes (image_stride and the indices count elements either way).
static inline __attribute__((always_inline)) void finish_vector(void *out, uint8_t *where, int64_t image_stride,
                                                                tile_out t, __m512 b, const segment *sg, int nseg,
                                                                finish how, int64_t k, int64_t M, int64_t H,
                                                                int64_t W) {
    int64_t H2 = H / 2, Q2 = W / 2;
    if (how == RELU_POOL || how == RELU_POOL_BF16) {
        __m512 best; // the pooled outputs, one a lane (in bf16: the pattern in each lane's high half)
        __m128i at;  // their positions in the window
#ifdef CG_WINOGRAD_BF16
        if (how == RELU_POOL_BF16) { // bf16_planes.c's bias_relu_pool_narrow: the same values, the same comparisons
            __m512 v[4] = {relu_round(t.y00, b), relu_round(t.y01, b), relu_round(t.y10, b), relu_round(t.y11, b)};
            __m512i c_at = _mm512_setzero_si512(); // scan order: top left, top right, bottom left, bottom right;
            best = v[0];                           // a later one wins if larger
            for (int c = 1; c < 4; c++) {
                __mmask16 larger = _mm512_cmp_ps_mask(v[c], best, _CMP_GT_OQ);
                best = _mm512_mask_mov_ps(best, larger, v[c]);
                c_at = _mm512_mask_mov_epi32(c_at, larger, _mm512_set1_epi32(c));
            }
            at = _mm512_cvtepi32_epi8(c_at);
        } else
#endif
        { // pool_relu_plane's choice (conv.c), the same comparisons
            __m512 tl = _mm512_add_ps(t.y00, b), tr = _mm512_add_ps(t.y01, b);
            __m512 bl = _mm512_add_ps(t.y10, b), br = _mm512_add_ps(t.y11, b);
            __mmask16 left_bottom = _mm512_cmp_ps_mask(bl, tl, _CMP_GT_OQ);
            __mmask16 right_bottom = _mm512_cmp_ps_mask(br, tr, _CMP_GT_OQ);
            __m512 left = _mm512_mask_mov_ps(tl, left_bottom, bl);
            __m512 right = _mm512_mask_mov_ps(tr, right_bottom, br);
            __m512i left_at = _mm512_maskz_set1_epi32(left_bottom, 2);
            __m512i right_at = _mm512_add_epi32(_mm512_set1_epi32(1), _mm512_maskz_set1_epi32(right_bottom, 2));
            __mmask16 take_right = _mm512_cmp_ps_mask(right, left, _CMP_GT_OQ) |
                                   (_mm512_cmp_ps_mask(right, left, _CMP_EQ_OQ) &
                                    _mm512_cmplt_epi32_mask(right_at, left_at));
            best = _mm512_mask_mov_ps(left, take_right, right);
            at = _mm512_cvtepi32_epi8(_mm512_mask_mov_epi32(left_at, take_right, right_at));
            best = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ), best);
        }
        for (int e = 0; e < nseg; e++) {
            int64_t i = (sg[e].n * M + k) * H2 * Q2 + sg[e].ty * Q2 + sg[e].tx0 - sg[e].lane0;
            __mmask16 lanes = (__mmask16)(((1u << sg[e].count) - 1) << sg[e].lane0);
            if (how == RELU_POOL_BF16)
                _mm256_mask_storeu_epi16((uint16_t *)out + i, lanes,
                                         _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(best), 16)));
            else
                _mm512_mask_storeu_ps((float *)out + i, lanes, best);
            _mm_mask_storeu_epi8(where + i, lanes, at);
        }
        return;
    }
    // output 2 j of a segment from lane lane0 + j of the left outputs, 2 j + 1 from the right's (16 +)
    const __m512i order = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    for (int e = 0; e < nseg; e++) {
        int64_t at = sg[e].n * image_stride + k * H * W + 2 * sg[e].ty * W + 2 * sg[e].tx0; // its top left output
        __mmask16 row = (__mmask16)((1u << (2 * sg[e].count)) - 1);
        __m512i pick = _mm512_add_epi32(order, _mm512_set1_epi32(sg[e].lane0));
        __m512 upper = _mm512_permutex2var_ps(t.y00, pick, t.y01);
        __m512 lower = _mm512_permutex2var_ps(t.y10, pick, t.y11);
#ifdef CG_WINOGRAD_BF16
        if (how == STORE_BF16 || how == ADD_BF16) {
            uint16_t *top = (uint16_t *)out + at, *bottom = top + W;
            upper = _mm512_add_ps(upper, b); // b = 0 for ADD_BF16: the f32 sums' +0 (-0 becomes +0)
            lower = _mm512_add_ps(lower, b);
            if (how == ADD_BF16) {
                upper = _mm512_add_ps(widen16_avx512(_mm256_maskz_loadu_epi16(row, top)), upper);
                lower = _mm512_add_ps(widen16_avx512(_mm256_maskz_loadu_epi16(row, bottom)), lower);
            }
            _mm256_mask_storeu_epi16(top, row, _mm512_cvtepi32_epi16(round16_avx512(upper)));
            _mm256_mask_storeu_epi16(bottom, row, _mm512_cvtepi32_epi16(round16_avx512(lower)));
            continue;
        }
#endif
        float *top = (float *)out + at, *bottom = top + W;
        if (how == ADD) {
            upper = _mm512_add_ps(_mm512_maskz_loadu_ps(row, top), upper);
            lower = _mm512_add_ps(_mm512_maskz_loadu_ps(row, bottom), lower);
        } else {
            upper = _mm512_add_ps(upper, b);
            lower = _mm512_add_ps(lower, b);
        }
        _mm512_mask_storeu_ps(top, row, upper);
        _mm512_mask_storeu_ps(bottom, row, lower);
    }
}

// The block's outputs (tile rows r0 .. r1-1, M channels) from O (O_xi at O + xi * o_stride, rows
// ld floats apart), to the output planes at out + n * image_stride + k * plane (plane: H x W
// floats, or H/2 x W/2 pooled). The block's tiles lie row after row in O, 16 to a vector: where a
// row has at most 8 tiles (W <= 16: the tutorial's 14 x 14 planes, CIFAR's 16 x 16), two rows
// share one (rows r and r + 1 are 2 Q2 <= 16 consecutive tiles); a longer row is taken 16 tiles
// at a time, as two segments of 8. (Taken a row of 8 tiles at a time in 256-bit vectors, Zen 4's
// width, the tutorial's rows of 7 tiles left 9 of 16 lanes idle: twice the loads and arithmetic
// instructions.) Each lane's sums and finish are the same whatever the vector: the same bits.
void winograd_output_block(void *out, uint8_t *where, int64_t image_stride, const float *O, int64_t ld,
                           int64_t o_stride, const float *bias, finish how, int64_t M, int64_t H, int64_t W, int64_t r0,
                           int64_t r1) {
    int64_t H2 = H / 2, Q2 = W / 2;
    for (int64_t k = 0; k < M; k++) {
        __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        const float *o = O + k * ld;
        // tile row r is row ty of image n, counted along (the 64-bit division per vector that found
        // them stood among the transform's busiest instructions under perf annotate)
        int64_t n = r0 / H2, ty = r0 % H2;
        if (Q2 <= 8)
            for (int64_t r = r0; r < r1; r += 2) {
                int rows = r + 1 < r1 ? 2 : 1;
                segment sg[2];
                sg[0] = (segment){n, ty, 0, (int)Q2, 0};
                next_row(&n, &ty, H2);
                sg[1] = (segment){n, ty, 0, (int)Q2, (int)Q2};
                next_row(&n, &ty, H2);
                tile_out t = output_transform(o + (r - r0) * Q2, o_stride, (__mmask16)((1u << (rows * Q2)) - 1));
                finish_vector(out, where, image_stride, t, b, sg, rows, how, k, M, H, W);
            }
        else
            for (int64_t r = r0; r < r1; r++) {
                for (int64_t tx0 = 0; tx0 < Q2; tx0 += 16) {
                    int count = Q2 - tx0 < 16 ? (int)(Q2 - tx0) : 16;
                    segment sg[2] = {{n, ty, tx0, count < 8 ? count : 8, 0}, {n, ty, tx0 + 8, count - 8, 8}};
                    tile_out t = output_transform(o + (r - r0) * Q2 + tx0, o_stride, (__mmask16)((1u << count) - 1));
                    finish_vector(out, where, image_stride, t, b, sg, count > 8 ? 2 : 1, how, k, M, H, W);
                }
                next_row(&n, &ty, H2);
            }
    }
}

#endif // CG_WINOGRAD

// A block of tile rows r0 .. r1-1 (of the planes at `in`, Cin channels) through the three steps,
// into the Cout planes at `out`. Each output comes from its tile's values alone, whatever the
// block: the same bits with any blocks and any number of threads.
static void block(float *out, uint8_t *where, int64_t out_image, const float *in, int64_t in_image, int64_t in_channel,
                  const float *u, const float *bias, finish how, int64_t Cin, int64_t Cout, int64_t H, int64_t W,
                  int64_t r0, int64_t r1) {
    static _Thread_local cg_thread_buffer buffers[2];
    int64_t tiles = (r1 - r0) * (W / 2), ld = (tiles + 15) / 16 * 16; // whole vectors: the GEMM reads V in place
    float *V = cg_thread_floats_aligned(&buffers[0], 16 * matrix_floats(Cin, ld));
    float *O = cg_thread_floats_aligned(&buffers[1], 16 * matrix_floats(Cout, ld));
    if (ld > tiles) // the last columns: zeros, not whatever the buffer held (a NaN or a denormal would slow the product)
        for (int xi = 0; xi < 16; xi++)
            for (int64_t c = 0; c < Cin; c++)
                memset(V + xi * matrix_floats(Cin, ld) + c * ld + tiles, 0, (size_t)(ld - tiles) * sizeof(float));
    winograd_input_transform(V, ld, in, in_image, in_channel, Cin, H, W, r0, r1);
    products(O, V, u, Cout, Cin, ld);
    winograd_output_block(out, where, out_image, O, ld, matrix_floats(Cout, ld), bias, how, Cout, H, W, r0, r1);
}

bool conv2d_winograd_forward_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                 int64_t pad, int64_t P, int64_t Q) {
    if (!conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q)) return false;
    const float *u = transform_weights(0, w, K, C, false);
    int64_t rows = winograd_block_rows(C, K, W), total = N * (H / 2), blocks = (total + rows - 1) / rows;
    bool threads = blocks > 1 && N * K * H * W * C * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t r0 = b * rows, r1 = r0 + rows < total ? r0 + rows : total;
        block(y, where, K * H * W, x, C * H * W, H * W, u, bias, where ? RELU_POOL : STORE, C, K, H, W, r0, r1);
    }
    return true;
}

const float *conv2d_winograd_dx_weights_cpu(const float *w, int64_t K, int64_t C) {
    return transform_weights(1, w, K, C, true);
}

void conv2d_winograd_dx_images_cpu(float *dx, const float *dy, int64_t image_stride, int64_t channel_stride,
                                   const float *u, int64_t count, int64_t C, int64_t H, int64_t W, int64_t K,
                                   bool accumulate, bool threads) {
    int64_t rows = winograd_block_rows(K, C, W), total = count * (H / 2), blocks = (total + rows - 1) / rows;
    // STORE writes each value + 0 (no bias): IEEE addition commutes, so the bits of ADD onto zeros
    // (-0 included: either way +0), without reading dx
    finish how = accumulate ? ADD : STORE;
#pragma omp parallel for if (threads && blocks > 1) schedule(dynamic)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t r0 = b * rows, r1 = r0 + rows < total ? r0 + rows : total;
        block(dx, NULL, C * H * W, dy, image_stride, channel_stride, u, NULL, how, K, C, H, W, r0, r1);
    }
}

bool conv2d_winograd_dx_cpu(float *dx, const float *dy, const float *w, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                            bool accumulate) {
    if (!conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q)) return false;
    conv2d_winograd_dx_images_cpu(dx, dy, K * H * W, H * W, conv2d_winograd_dx_weights_cpu(w, K, C), N, C, H, W, K,
                                  accumulate, N * K * H * W * C * 9 >= CG_OMP_MIN_WORK);
    return true;
}

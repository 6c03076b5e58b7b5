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
// AVX-512 only (the transforms are written with its masked loads and stores); other CPUs, and
// other shapes, keep the im2col path (the functions then return false having done nothing).
// The same tiles serve bf16 convolutions on AVX512-BF16 (the section "bf16" below), their
// transformed values rounded to bf16 for vdpbf16ps.
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define CG_WINOGRAD 1
#endif
#if defined(CG_WINOGRAD) && defined(CG_CPU_MATRIX_KERNELS)
#define CG_WINOGRAD_BF16 1 // the bf16 tiles need the compiler's AVX512-BF16 intrinsics too (cpu_features.h)
#endif

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
#ifdef CG_WINOGRAD
    const char *off = getenv("CGRAD_CPU_WINOGRAD");
    if (off && strcmp(off, "0") == 0) return false;
    return R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && H % 2 == 0 && W % 2 == 0 && H >= 8 &&
           W >= 8 && C >= 16 && K >= 16;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q;
    return false;
#endif
}

#ifdef CG_WINOGRAD

// A block's tiles: whole rows of tiles (W/2 tiles each), about 10752 / (C + K) of them (32 to
// 112), so that the block's V (16 x C x T floats) and O (16 x K x T) stay in the core's second-
// level cache (1 MB on the AMD EPYC, 2 MB on the Xeon): 112 tiles for the tutorial's second layer
// (32 + 64 channels), 16 rows of 7, 688 KB. Fewer for more channels, at least one row.
// Of the counts of rows from half to one and a half times that, the nearest whose tiles are whole
// panels of the product's 32 columns, where there is one: CIFAR's layer2 (16 x 16 planes, 8 tiles
// a row, 128 channels in and out) took 5 rows, 40 tiles, a panel and a half, the half one at half
// the FMAs per load; 4 rows, 32 tiles: its forward 307-341 -> 409-414 GFLOP/s on one Zen 5 core
// (two alternated rounds). The tiles' sums do not depend on the block's width: the same bits.
static int64_t block_rows(int64_t C, int64_t K, int64_t W) {
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

// Filters j .. j + 15 transformed, U = G g G^T (4 x 4, row by row), from the filters laid out tap
// by tap (g[tap n + j]; m masks the filters that exist): v[xi] lane l = U[xi] of filter j + l.
// t = G g (4 x 3), then U = t G^T, each sum in this order.
static inline __attribute__((always_inline)) void filters_transform(const float *g, int64_t n, int64_t j,
                                                                    __mmask16 m, __m512 v[16]) {
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 t[4][3];
    for (int s = 0; s < 3; s++) { // t = G g, column s
        __m512 g0 = _mm512_maskz_loadu_ps(m, g + s * n + j), g1 = _mm512_maskz_loadu_ps(m, g + (3 + s) * n + j);
        __m512 g2 = _mm512_maskz_loadu_ps(m, g + (6 + s) * n + j);
        t[0][s] = g0, t[3][s] = g2;
        t[1][s] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g0, g1), g2));
        t[2][s] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g0, g1), g2));
    }
    for (int i = 0; i < 4; i++) { // U = t G^T, row i
        v[4 * i + 0] = t[i][0];
        v[4 * i + 1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]));
        v[4 * i + 2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]));
        v[4 * i + 3] = t[i][2];
    }
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
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
        __m512 v[16];
        filters_transform(g, n, j, m, v);
        for (int xi = 0; xi < 16; xi++) _mm512_mask_storeu_ps(f + xi * n + j, m, v[xi]);
    }
    if (for_dx)
        for (int xi = 0; xi < 16; xi++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t c = 0; c < C; c++) u[xi * n + c * K + k] = f[xi * n + k * C + c];
    for (int xi = 0; xi < 16; xi++) gemm_pack_a_cpu(up + xi * per, false, rows, cols, u + xi * n);
    return u;
}

// A block's 16 matrices V_xi (rows x ld), and the 16 O_xi, follow each other this many floats
// apart: their rows, and one cache line more. Without it the 16 matrices of 64 x 112 floats are
// 7 x 4 KB apart, the 16 places that the transforms write (or read) at once fall in the same
// sets of the first-level cache (which picks a set from an address's bits 6 to 11), 8 ways
// hold 8 of them, and the output transform and dx's input transform took 2.2 times as long.
static int64_t matrix_floats(int64_t rows, int64_t ld) { return rows * ld + 16; }

// The lanes of a vector of 16 columns of the padded image (col0 - 1 .. col0 + 14) that hold a
// column of the image (0 .. W-1) and belong to the chunk's tiles (2 per tile, and the 2 after).
// Lane l holds column col0 - 1 + l: lanes lo .. hi-1, lo = 1 where lane 0 is column -1, hi the
// chunk's 2 tiles + 2 lanes or the image's last column, whichever comes first.
static inline __mmask16 columns_mask(int64_t col0, int64_t W, int64_t tiles) {
    int64_t lo = col0 == 0, hi = 2 * tiles + 2 < W - col0 + 1 ? 2 * tiles + 2 : W - col0 + 1;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

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

// chunk_transform for two channels at once, a and b, in pairs: lane 2t + e of each vector channel
// e's value (a: e = 0, b: e = 1), so that each V_xi leaves in the pair rows of the bf16 product
// (tile t's pair at 32-bit position t) as it is rounded, with no permutation. The rows come in two
// vectors, p and q, whose lanes hold the padded columns in unpack's order: vpunpcklwd and
// vpunpckhwd interleave a's and b's 16-bit values within each 128-bit half, so that after widening
// lane 2k + e of p holds column k (k = 0 .. 3) and lane 8 + 2k + e column 8 + k, and q the same for
// columns 4 + k and 12 + k. The same sums lane by lane as chunk_transform; each permutation
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

// The lines of `bytes` bytes from p into the first-level cache, ahead of their use. The input
// transforms read a block's tile rows channel by channel; the batch's planes, written by the layer
// before for every image, are then mostly in the third-level cache, and the loads of each chunk
// waited on it: in a bf16 training step on Zen 5, half the input transform's time (perf) was on
// the instructions right after its loads. Each tile row prefetches its two rows of the next
// channel (of the next pair, in bf16): a channel's pass over the block ahead of its use.
static inline void prefetch_rows(const void *p, int64_t bytes) {
    for (int64_t at = 0; at < bytes + 63; at += 64)
        _mm_prefetch((const char *)p + (at < bytes ? at : bytes - 1), _MM_HINT_T0);
}

// The tile row after row ty of image n (the batch's rows of tiles one after the other, H2 an image).
static inline void next_row(int64_t *n, int64_t *ty, int64_t H2) {
    if (++*ty == H2) *ty = 0, ++*n;
}

// V[xi][c][j] = (B^T d B)[xi] for the block's tiles j (tile rows r0 .. r1-1, the batch's rows of
// tiles one after the other: image n = r / (H/2), its tile row ty = r % (H/2), both counted along
// as r goes, not divided), channel c of the input plane at in + n * image_stride + c *
// channel_stride (H x W), a chunk of 7 tiles at a time.
static void input_transform(float *V, int64_t ld, const float *in, int64_t image_stride, int64_t channel_stride,
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

// The 16 products of a block: O_xi (M x ld) = U_xi (M x Kc) V_xi (Kc x ld), u from transform_weights.
static void products(float *O, const float *V, const float *u, int64_t M, int64_t Kc, int64_t ld) {
    int64_t per = gemm_packed_a_floats(M, Kc);
    const float *up = u + 16 * M * Kc;
    for (int xi = 0; xi < 16; xi++)
        gemm_prepacked_cpu(false, u + xi * M * Kc, up + xi * per, false, M, ld, Kc, 1.0f, V + xi * matrix_floats(Kc, ld),
                           0.0f, O + xi * matrix_floats(M, ld));
}

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

// What the output transform does with a block's outputs.
typedef enum {
    STORE,     // y (N, K, H, W) = the outputs + bias
    ADD,       // y += the outputs (dx)
    RELU_POOL, // y (N, K, H/2, W/2) = max(0, the 2 x 2 window's first maximum + bias), where = its position
    // y in bf16 (uint16_t), for the bf16 convolutions: each value rounded once (cg_bf16_round)
    STORE_BF16,     // y = round(output + bias)
    ADD_BF16,       // y = round(y + (output + 0)) (dx onto an older gradient)
    RELU_POOL_BF16, // y (N, K, H/2, W/2) = the window's first maximum of max(0, round(output + bias))
} finish;

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
static void output_block(void *out, uint8_t *where, int64_t image_stride, const float *O, int64_t ld, int64_t o_stride,
                         const float *bias, finish how, int64_t M, int64_t H, int64_t W, int64_t r0, int64_t r1) {
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
    input_transform(V, ld, in, in_image, in_channel, Cin, H, W, r0, r1);
    products(O, V, u, Cout, Cin, ld);
    output_block(out, where, out_image, O, ld, matrix_floats(Cout, ld), bias, how, Cout, H, W, r0, r1);
}

#ifdef CG_WINOGRAD_BF16
// ---- bf16: the same tiles on AVX512-BF16 ---------------------------------------------------------
// For bf16 convolutions (bf16_ops.c) on the AVX512-BF16 path: the transforms in f32 on the
// widened bf16 values, as above; the transformed filters U and patches V then rounded to bf16
// and multiplied by the bf16 product (bf16_gemm.c: vdpbf16ps, sums in f32); the output transform
// in f32 as above. Products of bf16 values are exact in f32, but U and V are sums (B^T d B adds
// up to four values, G g G^T halves and adds), and rounding them to bf16 costs up to 2^-8 of
// each: every product of the 16 is within 2^-7 of the exact product of the transformed values.
// tests/test_bf16_winograd.c holds each output to that bound, summed over its terms.

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
    output_block(out, where, out_image, O, ld, o_stride, bias, how, Cout, H, W, r0, r1);
}
#endif

#endif

bool conv2d_winograd_forward_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                 int64_t pad, int64_t P, int64_t Q) {
    if (!conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q)) return false;
#ifdef CG_WINOGRAD
    const float *u = transform_weights(0, w, K, C, false);
    int64_t rows = block_rows(C, K, W), total = N * (H / 2), blocks = (total + rows - 1) / rows;
    bool threads = blocks > 1 && N * K * H * W * C * 9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t r0 = b * rows, r1 = r0 + rows < total ? r0 + rows : total;
        block(y, where, K * H * W, x, C * H * W, H * W, u, bias, where ? RELU_POOL : STORE, C, K, H, W, r0, r1);
    }
#endif
    return true;
}

const float *conv2d_winograd_dx_weights_cpu(const float *w, int64_t K, int64_t C) {
#ifdef CG_WINOGRAD
    return transform_weights(1, w, K, C, true);
#else
    (void)w, (void)K, (void)C;
    return NULL;
#endif
}

void conv2d_winograd_dx_images_cpu(float *dx, const float *dy, int64_t image_stride, int64_t channel_stride,
                                   const float *u, int64_t count, int64_t C, int64_t H, int64_t W, int64_t K,
                                   bool accumulate, bool threads) {
#ifdef CG_WINOGRAD
    int64_t rows = block_rows(K, C, W), total = count * (H / 2), blocks = (total + rows - 1) / rows;
    // STORE writes each value + 0 (no bias): IEEE addition commutes, so the bits of ADD onto zeros
    // (-0 included: either way +0), without reading dx
    finish how = accumulate ? ADD : STORE;
#pragma omp parallel for if (threads && blocks > 1) schedule(dynamic)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t r0 = b * rows, r1 = r0 + rows < total ? r0 + rows : total;
        block(dx, NULL, C * H * W, dy, image_stride, channel_stride, u, NULL, how, K, C, H, W, r0, r1);
    }
#else
    (void)dx, (void)dy, (void)image_stride, (void)channel_stride, (void)u, (void)count, (void)C, (void)H, (void)W,
        (void)K, (void)accumulate, (void)threads;
#endif
}

bool conv2d_winograd_dx_cpu(float *dx, const float *dy, const float *w, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                            bool accumulate) {
    if (!conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q)) return false;
    conv2d_winograd_dx_images_cpu(dx, dy, K * H * W, H * W, conv2d_winograd_dx_weights_cpu(w, K, C), N, C, H, W, K,
                                  accumulate, N * K * H * W * C * 9 >= CG_OMP_MIN_WORK);
    return true;
}

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
    int64_t rows = 2 * block_rows(Cin, Cout, W), total = count * (H / 2);
    for (int64_t r0 = 0; r0 < total; r0 += rows)
        block_bf16(y, where, Cout * H * W, in, image_stride, channel_stride, u, b, how, Cin, Cout, H, W, r0,
                   r0 + rows < total ? r0 + rows : total);
#else
    (void)y, (void)where, (void)bias, (void)accumulate, (void)in, (void)image_stride, (void)channel_stride, (void)u,
        (void)count, (void)Cin, (void)Cout, (void)H, (void)W;
#endif
}

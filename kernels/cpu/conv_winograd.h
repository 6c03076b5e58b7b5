// conv_winograd.h: what Winograd's tiles in f32 (conv_winograd.c: the algorithm, its transforms
// and finishes, the fp32 convolutions) share with the same tiles in bf16 (conv_winograd_bf16.c, on
// AVX512-BF16): the build's guards, the filter transform, the layout of a block's matrices, the
// input transform's column masks and prefetches, the walk over tile rows, and the output
// transform with what it can do with the outputs. Internal to those two files; the callers'
// functions are conv_parts.h's.
#ifndef CG_KERNELS_CPU_CONV_WINOGRAD_H
#define CG_KERNELS_CPU_CONV_WINOGRAD_H

#include "kernels/cpu/cpu_features.h"

#include <stdbool.h>
#include <stdint.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define CG_WINOGRAD 1
#endif
#if defined(CG_WINOGRAD) && defined(CG_CPU_MATRIX_KERNELS)
#define CG_WINOGRAD_BF16 1 // the bf16 tiles need the compiler's AVX512-BF16 intrinsics too (cpu_features.h)
#endif

#ifdef CG_WINOGRAD

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

// The lanes of a vector of 16 columns of the padded image (col0 - 1 .. col0 + 14) that hold a
// column of the image (0 .. W-1) and belong to the chunk's tiles (2 per tile, and the 2 after).
// Lane l holds column col0 - 1 + l: lanes lo .. hi-1, lo = 1 where lane 0 is column -1, hi the
// chunk's 2 tiles + 2 lanes or the image's last column, whichever comes first.
static inline __mmask16 columns_mask(int64_t col0, int64_t W, int64_t tiles) {
    int64_t lo = col0 == 0, hi = 2 * tiles + 2 < W - col0 + 1 ? 2 * tiles + 2 : W - col0 + 1;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

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

#endif // CG_WINOGRAD

// What follows serves the tiles on any CPU: with AVX-512 the transforms are written in its
// intrinsics, elsewhere in the compiler's vectors of 8 floats (conv_winograd.c).

// A block's 16 matrices V_xi (rows x ld), and the 16 O_xi, follow each other this many floats
// apart: their rows, and one cache line more. Without it the 16 matrices of 64 x 112 floats are
// 7 x 4 KB apart, the 16 places that the transforms write (or read) at once fall in the same
// sets of the first-level cache (which picks a set from an address's bits 6 to 11), 8 ways
// hold 8 of them, and the output transform and dx's input transform took 2.2 times as long.
static inline int64_t matrix_floats(int64_t rows, int64_t ld) { return rows * ld + 16; }

// The tile row after row ty of image n (the batch's rows of tiles one after the other, H2 an image).
static inline void next_row(int64_t *n, int64_t *ty, int64_t H2) {
    if (++*ty == H2) *ty = 0, ++*n;
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

// V_xi for a block's tiles (tile rows r0 .. r1-1: the batch's rows of tiles one after the other),
// V[xi][c][j] = (B^T d B)[xi] of tile j's 4 x 4 patch of input channel c (C channels, planes H x W
// at in + n * image_stride + c * channel_stride), rows ld floats apart, the 16 matrices
// matrix_floats(C, ld) apart. conv_winograd.c (AVX-512) or conv_winograd_portable.c.
void winograd_input_transform(float *V, int64_t ld, const float *in, int64_t image_stride, int64_t channel_stride,
                              int64_t C, int64_t H, int64_t W, int64_t r0, int64_t r1);

// A block's count of tile rows for C input and K output channels of planes W wide (the
// definition, conv_winograd.c, says how it is chosen).
int64_t winograd_block_rows(int64_t C, int64_t K, int64_t W);

// The output transform of a block's tiles (tile rows r0 .. r1-1, M channels) from its 16 products
// O_xi at O + xi * o_stride (rows ld floats apart), finished as `how` into the planes at out + n *
// image_stride (floats, or bf16 values for the _BF16 modes; `where` for the pooled ones; bias:
// M floats, or NULL). conv_winograd.c (AVX-512) or conv_winograd_portable.c (STORE, ADD, RELU_POOL).
void winograd_output_block(void *out, uint8_t *where, int64_t image_stride, const float *O, int64_t ld,
                           int64_t o_stride, const float *bias, finish how, int64_t M, int64_t H, int64_t W, int64_t r0,
                           int64_t r1);

#endif

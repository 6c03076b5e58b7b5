// conv_direct_dw.h: what the three files of the fused block's window dW share (private to
// kernels/cpu): conv_direct_dw.c (the entries, the patches with the output channels in the lanes),
// conv_direct_dw_channels.c (the input channels in the lanes, f32 FMAs and bf16 pairs) and
// conv_direct_dw_one_channel.c (one input channel, the windows in the lanes). Everything here
// exists only where CG_DW_WINDOWS is defined: AVX-512 at compile time and a compiler that knows
// the bf16 instructions (CG_CPU_MATRIX_KERNELS, for bf16_vec.h's widening).
#ifndef CG_KERNELS_CPU_CONV_DIRECT_DW_H
#define CG_KERNELS_CPU_CONV_DIRECT_DW_H

#include "kernels/cpu/bf16_vec.h"

#include <stdbool.h>
#include <stdint.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(CG_CPU_MATRIX_KERNELS)
#define CG_DW_WINDOWS 1
#include <immintrin.h>

// The padded image, from which the patches are cut: row h + 1, column w + 1 hold x[h][w], zeros
// around (as conv_direct.c).
#define PADDED_W 48
#define MAX_H 64
#define MAX_W 32
// Channels per call of the window loop: 2 vectors, 18 accumulators (64 channels would need 36
// of the 32 registers).
#define LANES 16
// At most this many output channels (image_sums) and input channels.
#define MAX_K 256
#define MAX_C 256


// The next image's inputs, asked for into the second-level cache a few lines at a time while the
// window loops of this image run (their loads leave room for them): up to 4 regions, each from
// at to end (NULL: none). The planes an image's loops read are 32 or 64 interleaved streams,
// which the hardware prefetchers follow badly.
typedef struct {
    const char *at[4], *end[4];
} ahead;

// Up to `lines` more cache lines of the regions, in order.
static inline __attribute__((always_inline)) void ask_ahead(ahead *a, int lines) {
    for (int r = 0; r < 4 && lines > 0; r++)
        for (; a->at[r] < a->end[r] && lines > 0; a->at[r] += 64, lines--) _mm_prefetch(a->at[r], _MM_HINT_T1);
}

// A buffer of at least `bytes` for this thread, slot `which` (0 .. 3), kept between calls
// (conv_direct_dw.c); the three files' loops each use the slots for their own buffers.
void *conv_dw_scratch(int which, int64_t bytes);

// A window loop's 9 x nv sums from the group's slice (tap t's 16 nv values at at + t stride) and back:
// stored and loaded as they are, so that each stays one chain of FMAs from image to image.
static inline __attribute__((always_inline)) void load_sums(__m512 acc[9][2], const float *at, int64_t stride,
                                                            const int nv) {
    for (int t = 0; t < 9; t++) {
        acc[t][0] = _mm512_loadu_ps(at + t * stride);
        acc[t][1] = nv > 1 ? _mm512_loadu_ps(at + t * stride + LANES) : acc[t][0];
    }
}

static inline __attribute__((always_inline)) void store_sums(float *at, __m512 acc[9][2], int64_t stride,
                                                             const int nv) {
    for (int t = 0; t < 9; t++) {
        _mm512_storeu_ps(at + t * stride, acc[t][0]);
        if (nv > 1) _mm512_storeu_ps(at + t * stride + LANES, acc[t][1]);
    }
}

// 16 values from `at` (f32, or bf16 when half: widened, which is exact) in the lanes of m, zeros
// elsewhere.
static inline __attribute__((always_inline)) __m512 load16(__mmask16 m, const void *at, const bool half) {
    return half ? widen16_avx512(_mm256_maskz_loadu_epi16(m, at)) : _mm512_maskz_loadu_ps(m, at);
}

// One group's images (n0 .. n0 + count - 1), their terms added to the group's slice of dW^T,
// starting from what it holds:
// - with whole vectors of input channels (C a multiple of 16; conv_direct_dw_channels.c): slice
//   (K, 9, C); bf16 inputs (half) widened, or, with pairs (C a multiple of 32, AVX512-BF16 at
//   run time), two windows a vdpbf16ps;
void conv_dw_group_by_input_channels(float *slice, const void *dy, const void *y, const uint8_t *where, const void *x,
                                     bool half, bool pairs, int64_t n0, int64_t count, int64_t C, int64_t H, int64_t W,
                                     int64_t K);
// - with one input channel (conv_direct_dw_one_channel.c): slice (9, K), and each output
//   channel's db sum added to sums[k] (double, image after image).
void conv_dw_group_by_window_lanes(float *slice, double *sums, const void *dy, const void *y, const uint8_t *where,
                                   const void *x, bool half, int64_t n0, int64_t count, int64_t H, int64_t W, int64_t K,
                                   bool dw);
//   and with bf16 inputs on AVX512-BF16 (run time), 32 windows a vector, two a vdpbf16ps.
void conv_dw_group_by_window_pairs(float *slice, double *sums, const uint16_t *dy, const uint16_t *y,
                                   const uint8_t *where, const uint16_t *x, int64_t n0, int64_t count, int64_t H,
                                   int64_t W, int64_t K, bool dw);
#endif

#endif

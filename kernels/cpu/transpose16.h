// transpose16.h: a 16 x 16 transpose of 32-bit words held in 16 AVX-512 registers, shared by
// transpose.c, the direct dW kernels (f32 values, or pairs of bf16 values) and others. Only the function:
// each file includes it under its own AVX-512 guard and decides when it runs.
#ifndef CG_KERNELS_CPU_TRANSPOSE16_H
#define CG_KERNELS_CPU_TRANSPOSE16_H

#include <immintrin.h>

// r[i][j] <-> r[j][i] (transpose.c's transpose_16x16 is this between its loads and stores), in four rounds
// of shuffles: pairs of 32-bit words, then of 64-bit words, then 128-bit quarters twice. The target
// attribute lets a file built for any -march inline it into its AVX-512 functions.
static inline __attribute__((always_inline, target("avx512f"))) void cg_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
            t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
}

#endif

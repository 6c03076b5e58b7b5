// bf16_vec.h: what the bf16 paths' AVX-512 loops share (bf16_gemm.c, bf16_ops.c, bf16_same.c,
// bf16_direct.c, ...): the target attributes, with and without AVX512-BF16, and bf16 <-> f32 on
// 16 values at a time, the same bits as cg_bf16_widen and cg_bf16_round (bf16_gemm.h).
#ifndef CG_KERNELS_CPU_BF16_VEC_H
#define CG_KERNELS_CPU_BF16_VEC_H

#include "kernels/cpu/cpu_features.h"

#ifdef CG_CPU_MATRIX_KERNELS
#include <immintrin.h>

// The bf16 paths' AVX-512 loops run only where cpu_features.c grants AMX or AVX512-BF16, which it
// does only with AVX-512 F, BW and VL; target attributes, as in bf16_gemm.c, so that they are
// built whatever the build's -march.
#define VEC_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 bf16 values (16-bit lanes) -> 16 floats: the pattern in the high half of each 32-bit lane.
static inline __attribute__((always_inline)) VEC_TARGET __m512 widen16_avx512(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// cg_bf16_round on 16 floats, the results in the low half of each 32-bit lane: the same
// integer steps (round to nearest even, a NaN kept as a quiet NaN).
static inline __attribute__((always_inline)) VEC_TARGET __m512i round16_avx512(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

// round16_avx512 by AVX512-BF16's own conversion, vcvtneps2bf16 (round to nearest even, a NaN
// made quiet: cg_bf16_round's rule), for loops that run only where cg_cpu_has_avx512_bf16(): one
// instruction and a widening instead of the eight integer steps. The instruction flushes
// denormal inputs to zero, which cg_bf16_round does not: a vector holding one takes
// round16_avx512 instead. The same bits for every input (tests/test_bf16_cpu.c's rounding test).
#define VEC_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static inline __attribute__((always_inline)) VEC_BF16_TARGET __m512i round16_bf16_avx512(__m512 x) {
    __m512i magnitude = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    // Denormal: 0 < magnitude < 0x00800000, that is magnitude - 1 < 0x007fffff unsigned.
    __mmask16 denormal = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(magnitude, _mm512_set1_epi32(1)),
                                                 _mm512_set1_epi32(0x007fffff));
    if (denormal) return round16_avx512(x);
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}
#endif

#endif

// vec8.h: vectors of 8 floats and of 8 int32 in the compiler's vector extension (GCC and Clang:
// one AVX2 register, or two of SSE's), for the kernels that have no AVX-512 code of their own or
// must not leave a select to the compiler. Arithmetic and comparisons are lane by lane; a
// comparison gives an i8 of all ones (true) or zeros per lane. Loads and stores go through memcpy.
// With them, CG_UNROLL (short loops over arrays of vectors) and SHUFFLE8 (lanes picked from two).
#ifndef CG_KERNELS_CPU_VEC8_H
#define CG_KERNELS_CPU_VEC8_H

#include <stdint.h>

typedef float f8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t i8 __attribute__((vector_size(8 * sizeof(int32_t))));

// Before a loop of a few steps known at compile time (a tile's rows, a transform's 4 rows): unroll
// it where the compiler first looks. Small arrays of vectors indexed by such loops (a tile's sums,
// a patch's columns) then become one variable per element, held in registers; unrolled later,
// as GCC does by itself, they stayed arrays in memory, stored and loaded around their loops (a
// 6 x 16 GEMM tile of 32 steps, lesson 03's exercise 16: 180 ns against 165 on a Zen 1 core).
#define CG_UNROLL _Pragma("GCC unroll 16")

// The lanes of a and b (0 .. 7 and 8 .. 15) picked by 8 constant indices, one vector of 8.
#ifdef __clang__
#define SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (i8){__VA_ARGS__})
#endif

// Lane by lane, a where m is all ones, b where it is zero.
static inline f8 select8(i8 m, f8 a, f8 b) { return (f8)((m & (i8)a) | (~m & (i8)b)); }

#endif

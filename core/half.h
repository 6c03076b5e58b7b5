// half.h: conversions between float (IEEE 754 binary32) and the two 16-bit formats of mixed
// precision, written out bit by bit for teaching (core/half.c explains every step).
// It does not do arithmetic in 16 bits, casts of tensors or anything on the GPU: only the host's
// conversions of single values and of arrays, which those will be built on (issue 5).
//
// The formats (IEEE 754-2008, section 3.6, and Google's bfloat16), from the most significant bit:
//   binary32 (float): 1 sign | 8 exponent (bias 127) | 23 fraction bits
//   binary16 (fp16):  1 sign | 5 exponent (bias 15)  | 10 fraction bits
//   bfloat16 (bf16):  1 sign | 8 exponent (bias 127) | 7 fraction bits (the top half of a float)
// A 16-bit value is held as its bit pattern in a uint16_t.
#ifndef CG_HALF_H
#define CG_HALF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// float -> fp16, rounding to nearest, ties to even (the IEEE default). Magnitudes from
// 65520 up become infinity; magnitudes below 2^-14 become subnormals (steps of 2^-24), and at or
// below 2^-25 zero (2^-25 itself is a tie, rounded to the even zero); the sign of zero is kept;
// a NaN stays a NaN, made quiet (fraction bit 9 set), with the top 9 bits of its payload.
uint16_t cg_f32_to_f16(float x);
// fp16 -> float: exact (every fp16 value, subnormals included, is a float); inf stays inf, a NaN
// stays a NaN with its payload.
float cg_f16_to_f32(uint16_t h);

// float -> bf16, rounding to nearest, ties to even. bf16 has float's exponent range, so only
// the floats at the very top overflow: magnitudes from (2 - 2^-8) * 2^127 (half a bf16 step
// above bf16's largest, (2 - 2^-7) * 2^127) up, FLT_MAX included, become infinity. Float
// subnormals round to bf16 subnormals. A NaN stays a NaN, made quiet (fraction bit 6 set).
uint16_t cg_f32_to_bf16(float x);
// bf16 -> float: exact (the 16 bits become the top half of the float).
float cg_bf16_to_f32(uint16_t b);

// The same on arrays of n values (n >= 0); dst and src must not overlap.
void cg_f32_to_f16_array(uint16_t *dst, const float *src, int64_t n);
void cg_f16_to_f32_array(float *dst, const uint16_t *src, int64_t n);
void cg_f32_to_bf16_array(uint16_t *dst, const float *src, int64_t n);
void cg_bf16_to_f32_array(float *dst, const uint16_t *src, int64_t n);

#ifdef __cplusplus
}
#endif

#endif

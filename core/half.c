// half.c: float <-> fp16 and float <-> bf16, one bit-level step at a time, for reading.
// Integer operations only: no float arithmetic, so the result does not depend on the CPU's
// rounding mode, on F16C instructions or on compiler flags. Not tuned for speed.
//
// A reminder of what the bits of a float mean (IEEE 754-2008, 3.4): with sign s, biased exponent
// E (8 bits) and fraction F (23 bits),
//   E = 255:        infinity (F = 0) or NaN (F != 0)
//   1 <= E <= 254:  (-1)^s * (1 + F / 2^23) * 2^(E - 127)      (normal: a hidden leading 1)
//   E = 0:          (-1)^s * (F / 2^23) * 2^-126               (subnormal, and zero when F = 0)
// fp16 is the same with 5 exponent bits (bias 15, E = 31 for inf / NaN) and 10 fraction bits;
// bf16 the same with 8 exponent bits (bias 127) and 7 fraction bits.
#include "core/half.h"

#include <string.h>

// The bits of a float and back. memcpy is the portable way to reinterpret them (a pointer
// cast would break C's aliasing rules); compilers turn it into a plain register move.
static uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// Round-to-nearest-even of `value >> shift` (shift from 1 to 31): `kept` is the part that stays,
// `rest` the bits shifted out, `half` the weight of half a unit of the last kept bit. Above half
// rounds up, below half rounds down, exactly half (a tie) rounds to the even neighbour, the one
// whose last bit is 0. A carry out of the fraction (0x3FF + 1) lands in the exponent field,
// which is then the next binade's exponent: the encoding was designed for this.
static uint32_t round_shift_right_even(uint32_t value, int shift) {
    uint32_t kept = value >> shift;
    uint32_t rest = value & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u)))
        kept += 1u;
    return kept;
}

uint16_t cg_f32_to_f16(float x) {
    uint32_t f = float_bits(x);
    // 1. Take the float apart: the sign moves from bit 31 to bit 15.
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    int32_t exponent = (int32_t)((f >> 23) & 0xFFu); // biased by 127
    uint32_t fraction = f & 0x7FFFFFu;               // 23 bits

    // 2. Infinity and NaN (exponent all ones) keep their class. A NaN keeps the top 10 bits of
    //    its fraction (its "payload") and gets the quiet bit (the fraction's top bit, 0x200),
    //    which also guarantees a non-zero fraction: a NaN whose payload sat only in the 13
    //    dropped bits would otherwise turn into infinity.
    if (exponent == 0xFF) {
        if (fraction == 0)
            return sign | 0x7C00u;
        return (uint16_t)(sign | 0x7C00u | 0x0200u | (fraction >> 13));
    }

    // 3. Re-bias the exponent: the value's power of two is exponent - 127; fp16 stores it + 15.
    int32_t half_exponent = exponent - 127 + 15;

    // 4. Too large even before rounding: 2^16 and above is past fp16's largest, 65504.
    if (half_exponent >= 31)
        return sign | 0x7C00u;

    // 5. A normal fp16: keep the top 10 of the 23 fraction bits, rounding on the 13 dropped.
    //    Exponent and fraction are rounded together as one integer, so a fraction that rounds up
    //    from 0x3FF carries into the exponent (1.1111111111b * 2^e -> 1.0 * 2^(e+1)), and from
    //    exponent 30 into 31 with fraction 0: infinity. That is exactly IEEE's overflow rule:
    //    65520 (the midpoint between 65504 and 2^16) and above become infinity.
    if (half_exponent >= 1) {
        uint32_t exponent_and_fraction = ((uint32_t)half_exponent << 23) | fraction;
        return (uint16_t)(sign | round_shift_right_even(exponent_and_fraction, 13));
    }

    // 6. Below 2^-14, fp16's smallest normal: a subnormal, fraction * 2^-24 with no hidden 1.
    //    Half a subnormal step is 2^-25; anything below that rounds to zero (float subnormals
    //    included, whose exponent field is 0).
    if (half_exponent < -10)
        return sign; // +0 or -0
    //    Put the hidden 1 back in front of the fraction: the value is then m * 2^(exponent-150)
    //    with m = 1.fraction as a 24-bit integer. As a count of 2^-24 steps it is
    //    m * 2^(exponent - 126) = m >> (14 - half_exponent): 14 bits dropped at half_exponent 0,
    //    up to 24 at half_exponent -10 (2^-25 <= |x| < 2^-24). A round-up from 0x3FF gives 0x400,
    //    which is the smallest normal, 2^-14: again the encoding carries correctly.
    uint32_t m = fraction | 0x800000u;
    return (uint16_t)(sign | round_shift_right_even(m, 14 - half_exponent));
}

float cg_f16_to_f32(uint16_t h) {
    // 1. Take the fp16 apart.
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu; // biased by 15
    uint32_t fraction = h & 0x3FFu;        // 10 bits

    // 2. Infinity and NaN: float's all-ones exponent, the fraction moved to the top of float's
    //    23 bits (so a NaN keeps its payload and its quiet bit).
    if (exponent == 0x1F)
        return bits_float(sign | 0x7F800000u | (fraction << 13));

    // 3. Zero keeps its sign.
    if (exponent == 0 && fraction == 0)
        return bits_float(sign);

    // 4. Subnormal: fraction * 2^-24. Floats have more exponent range, so it becomes a normal
    //    float: shift the fraction left until its leading 1 reaches bit 10 (the hidden-bit
    //    position), lowering the exponent by one per shift, then drop that 1.
    if (exponent == 0) {
        int32_t e = -14; // a subnormal with its leading 1 at bit 10 would be 1.x * 2^-14
        while ((fraction & 0x400u) == 0) {
            fraction <<= 1;
            e -= 1;
        }
        fraction &= 0x3FFu;
        return bits_float(sign | ((uint32_t)(e + 127) << 23) | (fraction << 13));
    }

    // 5. Normal: re-bias the exponent (-15 + 127 = +112) and widen the fraction from 10 to 23
    //    bits with zeros. Nothing is lost in this direction.
    return bits_float(sign | ((exponent + 112u) << 23) | (fraction << 13));
}

uint16_t cg_f32_to_bf16(float x) {
    uint32_t f = float_bits(x);
    // bf16 is the top 16 bits of a float: same sign, same 8-bit exponent, the top 7 of the 23
    // fraction bits. Converting is dropping the low 16 bits, with rounding.

    // 1. NaN: keep the top bits and set the quiet bit (bit 6 of the bf16), so that a NaN whose
    //    payload sat only in the low 16 bits stays a NaN rather than becoming infinity.
    if ((f & 0x7F800000u) == 0x7F800000u && (f & 0x7FFFFFu) != 0)
        return (uint16_t)((f >> 16) | 0x0040u);

    // 2. Everything else, infinity and subnormals included: round the 32-bit pattern to its top
    //    16 bits, to nearest, ties to even. As for fp16, a carry out of the fraction moves into
    //    the exponent, and from the largest finite exponent into infinity (0x7F80): FLT_MAX,
    //    0x7F7FFFFF, is more than half a bf16 step above bf16's largest, 0x7F7F, so it becomes
    //    infinity. Infinity itself has zero low bits and stays as it is.
    return (uint16_t)round_shift_right_even(f, 16);
}

float cg_bf16_to_f32(uint16_t b) {
    // The 16 bits become the top half of a float; the 16 low fraction bits are zero. Exact.
    return bits_float((uint32_t)b << 16);
}

void cg_f32_to_f16_array(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = cg_f32_to_f16(src[i]);
}

void cg_f16_to_f32_array(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = cg_f16_to_f32(src[i]);
}

void cg_f32_to_bf16_array(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = cg_f32_to_bf16(src[i]);
}

void cg_bf16_to_f32_array(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = cg_bf16_to_f32(src[i]);
}

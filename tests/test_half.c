// test_half.c: the fp16 and bf16 conversions of core/half.c against expectations computed
// another way: values of 16-bit patterns from their definition with ldexp, rounding by searching
// a sorted table of every finite value for the nearest (ties to the even pattern), GCC's _Float16
// type where the compiler has it, and hand-computed cases. Nothing here calls the code under
// test to make an expected value.
#include "core/half.h"
#include "tests/check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// ---- values of 16-bit patterns, from the definitions (IEEE 754-2008 3.4) with ldexp ----------

// fp16: sign, 5 exponent bits (bias 15), 10 fraction bits. NaN for a NaN pattern.
static double f16_value(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, f = h & 1023;
    double v;
    if (e == 31)
        v = f ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(f, -24);              // subnormal: f * 2^-14 / 2^10
    else
        v = ldexp(1024 + f, e - 15 - 10); // (1 + f / 2^10) * 2^(e - 15)
    return sign ? -v : v;
}

// bf16: sign, 8 exponent bits (bias 127), 7 fraction bits.
static double bf16_value(uint16_t b) {
    int sign = b >> 15, e = (b >> 7) & 255, f = b & 127;
    double v;
    if (e == 255)
        v = f ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(f, -126 - 7);
    else
        v = ldexp(128 + f, e - 127 - 7);
    return sign ? -v : v;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }
static int bf16_is_nan(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0; }

// ---- reference rounding: the nearest entry of a table of every non-negative finite value -------

typedef struct {
    double *values;    // values[i] = value of pattern i, increasing with i
    int count;         // patterns 0 .. count - 1 are the finite non-negative ones
    double overflow_at; // magnitudes from here up round to infinity (IEEE 754-2008 7.4)
    uint16_t inf;      // the pattern of +infinity
    uint16_t qnan;     // a quiet NaN's pattern
} format_table;

// The pattern nearest to x, ties to the even pattern (its last bit 0), by binary search. The
// differences below are exact in double: both values are close, with fewer than 53 bits between
// their leading bit and x's last.
static uint16_t reference_round(const format_table *t, float x) {
    if (isnan(x))
        return t->qnan;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a >= t->overflow_at)
        return sign | t->inf;
    int lo = 0, hi = t->count - 1; // the largest i with values[i] <= a
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (t->values[mid] <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (t->values[lo] == a || lo == t->count - 1)
        return sign | (uint16_t)lo;
    double below = a - t->values[lo], above = t->values[lo + 1] - a;
    int pick = below < above ? lo : above < below ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
    return sign | (uint16_t)pick;
}

static format_table f16_table, bf16_table;

static void make_tables(void) {
    // fp16: 0x0000 .. 0x7BFF (65504); overflow from 65520 = 65504 + half of its step 32.
    f16_table.count = 0x7C00;
    f16_table.values = malloc(sizeof(double) * f16_table.count);
    for (int i = 0; i < f16_table.count; i++)
        f16_table.values[i] = f16_value((uint16_t)i);
    f16_table.overflow_at = 65520.0;
    f16_table.inf = 0x7C00;
    f16_table.qnan = 0x7E00;
    // bf16: 0x0000 .. 0x7F7F ((2 - 2^-7) * 2^127); overflow from half a step above it.
    bf16_table.count = 0x7F80;
    bf16_table.values = malloc(sizeof(double) * bf16_table.count);
    for (int i = 0; i < bf16_table.count; i++)
        bf16_table.values[i] = bf16_value((uint16_t)i);
    bf16_table.overflow_at = ldexp(2.0 - ldexp(1, -8), 127);
    bf16_table.inf = 0x7F80;
    bf16_table.qnan = 0x7FC0;
}

// Same pattern, or both NaN (any NaN pattern: payloads are not compared here).
static int same_f16(uint16_t a, uint16_t b) { return a == b || (f16_is_nan(a) && f16_is_nan(b)); }
static int same_bf16(uint16_t a, uint16_t b) { return a == b || (bf16_is_nan(a) && bf16_is_nan(b)); }

// GCC's own conversion: (_Float16)x rounds to nearest even (F16C's vcvtps2ph, or libgcc).
#if defined(__FLT16_MANT_DIG__)
#define HAVE_FLOAT16 1
static uint16_t gcc_f32_to_f16(float x) {
    _Float16 h = (_Float16)x;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static float gcc_f16_to_f32(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}
#else
#define HAVE_FLOAT16 0
#endif

static long checked_f16 = 0, checked_bf16 = 0;

// float -> fp16 and float -> bf16 of one input against every reference.
static void check_float(float x) {
    uint16_t got = cg_f32_to_f16(x), want = reference_round(&f16_table, x);
    if (!same_f16(got, want))
        fail("rounding", "f32_to_f16(%.9g = 0x%08X) = 0x%04X, the table says 0x%04X", (double)x, bits_of(x), got, want);
#if HAVE_FLOAT16
    uint16_t gcc = gcc_f32_to_f16(x);
    if (!same_f16(got, gcc))
        fail("rounding", "f32_to_f16(%.9g = 0x%08X) = 0x%04X, _Float16 says 0x%04X", (double)x, bits_of(x), got, gcc);
#endif
    checked_f16++;
    uint16_t got_b = cg_f32_to_bf16(x), want_b = reference_round(&bf16_table, x);
    if (!same_bf16(got_b, want_b))
        fail("rounding", "f32_to_bf16(%.9g = 0x%08X) = 0x%04X, the table says 0x%04X", (double)x, bits_of(x), got_b, want_b);
    checked_bf16++;
}

// ---- 1. every 16-bit pattern to float and back -------------------------------------------------

static void test_all_f16_patterns(void) {
    for (int i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = cg_f16_to_f32(h);
        double v = f16_value(h);
        if (f16_is_nan(h)) {
            if (!isnan(f))
                fail("fp16 patterns", "f16_to_f32(0x%04X) = %g, want a NaN", h, (double)f);
            // the payload comes back, with the quiet bit set
            uint16_t back = cg_f32_to_f16(f);
            if (back != (h | 0x0200))
                fail("fp16 patterns", "NaN 0x%04X -> float -> 0x%04X, want 0x%04X", h, back, h | 0x0200);
            continue;
        }
        if ((double)f != v || !signbit(f) != !signbit(v))
            fail("fp16 patterns", "f16_to_f32(0x%04X) = %.10g, want %.10g", h, (double)f, v);
#if HAVE_FLOAT16
        float g = gcc_f16_to_f32(h);
        if (bits_of(f) != bits_of(g))
            fail("fp16 patterns", "f16_to_f32(0x%04X) = 0x%08X, _Float16 says 0x%08X", h, bits_of(f), bits_of(g));
#endif
        uint16_t back = cg_f32_to_f16(f);
        if (back != h)
            fail("fp16 patterns", "fp16 0x%04X -> %.10g -> 0x%04X: not the same pattern", h, (double)f, back);
    }
}

static void test_all_bf16_patterns(void) {
    for (int i = 0; i < 65536; i++) {
        uint16_t b = (uint16_t)i;
        float f = cg_bf16_to_f32(b);
        double v = bf16_value(b);
        if (bf16_is_nan(b)) {
            if (!isnan(f))
                fail("bf16 patterns", "bf16_to_f32(0x%04X) = %g, want a NaN", b, (double)f);
            uint16_t back = cg_f32_to_bf16(f);
            if (back != (b | 0x0040))
                fail("bf16 patterns", "NaN 0x%04X -> float -> 0x%04X, want 0x%04X", b, back, b | 0x0040);
            continue;
        }
        if ((double)f != v || !signbit(f) != !signbit(v))
            fail("bf16 patterns", "bf16_to_f32(0x%04X) = %.10g, want %.10g", b, (double)f, v);
        uint16_t back = cg_f32_to_bf16(f);
        if (back != b)
            fail("bf16 patterns", "bf16 0x%04X -> %.10g -> 0x%04X: not the same pattern", b, (double)f, back);
    }
}

// ---- 2. float -> 16 bits on many floats against the references ---------------------------------

static void test_rounding_sweeps(void) {
    // Every top half of a float (every sign, exponent and top 7 fraction bits) with low halves
    // chosen at the rounding boundaries of both formats: bf16 drops 16 bits (half = 0x8000),
    // fp16 drops 13 or more (half = 0x1000 for normals).
    static const uint32_t lows[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x2000, 0x3000,
                                    0x7FFF, 0x8000, 0x8001, 0x9000, 0xF000, 0xFFFF};
    for (uint32_t top = 0; top < 65536; top++)
        for (size_t k = 0; k < sizeof lows / sizeof lows[0]; k++)
            check_float(float_of(top << 16 | lows[k]));
    // Every midpoint between neighbouring fp16 values, and the floats just either side of it:
    // all the ties, subnormals included. Each midpoint needs 12 significant bits: a float.
    for (int i = 0; i + 1 < f16_table.count; i++) {
        float mid = (float)((f16_table.values[i] + f16_table.values[i + 1]) / 2);
        float xs[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++) {
            check_float(xs[k]);
            check_float(-xs[k]);
        }
    }
    // Pseudo-random bit patterns (a 64-bit LCG, Knuth's MMIX constants).
    uint64_t state = 12345;
    for (int i = 0; i < 2000000; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        check_float(float_of((uint32_t)(state >> 32)));
    }
}

// ---- 3. hand-computed cases ----------------------------------------------------------------------

static void expect_f16(const char *what, float x, uint16_t want) {
    uint16_t got = cg_f32_to_f16(x);
    if (!same_f16(got, want))
        fail(what, "f32_to_f16(%.9g) = 0x%04X, want 0x%04X", (double)x, got, want);
}

static void expect_bf16(const char *what, uint32_t x_bits, uint16_t want) {
    uint16_t got = cg_f32_to_bf16(float_of(x_bits));
    if (!same_bf16(got, want))
        fail(what, "f32_to_bf16(0x%08X) = 0x%04X, want 0x%04X", x_bits, got, want);
}

static void test_f16_by_hand(void) {
    expect_f16("one", 1.0f, 0x3C00);          // exponent 15 (bias 15 + 0), fraction 0
    expect_f16("minus two", -2.0f, 0xC000);   // sign, exponent 16
    expect_f16("a half", 0.5f, 0x3800);
    expect_f16("0.1", 0.1f, 0x2E66);          // 0.0999755859375 (1638 / 16384)
    expect_f16("a third", 1.0f / 3.0f, 0x3555); // 0.333251953125
    // Halfway cases: the step above 1 is 2^-10; 1 + 2^-11 is the tie between 0x3C00 (even) and
    // 0x3C01, 1 + 3 * 2^-11 the tie between 0x3C01 and 0x3C02 (even).
    expect_f16("1 + 2^-11, tie to even below", 1.0f + 0x1p-11f, 0x3C00);
    expect_f16("1 + 3 * 2^-11, tie to even above", 1.0f + 3 * 0x1p-11f, 0x3C02);
    expect_f16("just above the tie", 1.0f + 0x1p-11f + 0x1p-23f, 0x3C01);
    expect_f16("just below the tie", 1.0f + 3 * 0x1p-11f - 0x1p-23f, 0x3C01);
    // From 2048 to 4096 the step is 2: 2049 is a tie (2048 even), 2051 too (2052 even).
    expect_f16("2049", 2049.0f, 0x6800);
    expect_f16("2051", 2051.0f, 0x6802);
    // The top: 65504 = (2 - 2^-10) * 2^15 is the largest; 65520 is the tie between 65504
    // (fraction 0x3FF, odd) and 2^16 (not representable): it rounds to infinity.
    expect_f16("largest finite", 65504.0f, 0x7BFF);
    expect_f16("just below 65520", nextafterf(65520.0f, 0.0f), 0x7BFF);
    expect_f16("65520 overflows", 65520.0f, 0x7C00);
    expect_f16("-65520 overflows", -65520.0f, 0xFC00);
    expect_f16("1e6", 1e6f, 0x7C00);
    expect_f16("FLT_MAX", FLT_MAX, 0x7C00);
    expect_f16("infinity", INFINITY, 0x7C00);
    expect_f16("-infinity", -INFINITY, 0xFC00);
    // The bottom: 2^-14 is the smallest normal, 2^-24 the smallest subnormal (fraction 1).
    expect_f16("smallest normal", 0x1p-14f, 0x0400);
    expect_f16("largest subnormal", 0x1p-14f - 0x1p-24f, 0x03FF);
    expect_f16("tie between 0x03FF and 0x0400", 0x1p-14f - 0x1p-25f, 0x0400);
    expect_f16("smallest subnormal", 0x1p-24f, 0x0001);
    expect_f16("2^-25 is a tie: to zero (even)", 0x1p-25f, 0x0000);
    expect_f16("just above 2^-25", nextafterf(0x1p-25f, 1.0f), 0x0001);
    expect_f16("0.75 of a step", 3 * 0x1p-26f, 0x0001);
    expect_f16("1.5 steps: tie to 2", 3 * 0x1p-25f, 0x0002);
    expect_f16("2.5 steps: tie to 2", 5 * 0x1p-25f, 0x0002);
    expect_f16("1e-8 vanishes", 1e-8f, 0x0000); // the gradient that loss scaling rescues
    expect_f16("1e-8 * 65536 survives", 1e-8f * 65536.0f, 0x115E); // 6.5517e-4 (normal)
    expect_f16("1e-10", 1e-10f, 0x0000);
    expect_f16("-1e-10 keeps its sign", -1e-10f, 0x8000);
    expect_f16("negative zero", -0.0f, 0x8000);
    expect_f16("a float subnormal", float_of(0x00000001), 0x0000);
    // NaN stays NaN, even one whose payload is only in the low 13 bits (which fp16 drops).
    expect_f16("quiet NaN", NAN, 0x7E00);
    uint16_t snan = cg_f32_to_f16(float_of(0x7F800001));
    if (snan != 0x7E00)
        fail("fp16 by hand", "signalling NaN 0x7F800001 -> 0x%04X, want the quiet NaN 0x7E00", snan);
    uint16_t neg_nan = cg_f32_to_f16(float_of(0xFFC00000));
    if (neg_nan != 0xFE00)
        fail("fp16 by hand", "negative NaN 0xFFC00000 -> 0x%04X, want 0xFE00", neg_nan);

    // fp16 -> float, by hand.
    struct { uint16_t h; double v; } exact[] = {
        {0x0001, 5.9604644775390625e-08}, // 2^-24
        {0x03FF, 6.097555160522461e-05},  // 1023 * 2^-24
        {0x0400, 6.103515625e-05},        // 2^-14
        {0x3C00, 1.0},  {0x3C01, 1.0009765625}, {0x3555, 0.333251953125},
        {0x7BFF, 65504.0}, {0xC000, -2.0}, {0x7C00, INFINITY}, {0xFC00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        float f = cg_f16_to_f32(exact[i].h);
        if ((double)f != exact[i].v)
            fail("fp16 by hand", "f16_to_f32(0x%04X) = %.17g, want %.17g", exact[i].h, (double)f, exact[i].v);
    }
    float nz = cg_f16_to_f32(0x8000);
    if (nz != 0.0f || !signbit(nz))
        fail("fp16 by hand", "f16_to_f32(0x8000) = %g, want -0", (double)nz);
}

static void test_bf16_by_hand(void) {
    expect_bf16("one", 0x3F800000, 0x3F80);
    // bf16 keeps the top 7 of float's 23 fraction bits: the step above 1 is 2^-7.
    expect_bf16("1 + 2^-8, tie to even below", 0x3F808000, 0x3F80);
    expect_bf16("1 + 3 * 2^-8, tie to even above", 0x3F818000, 0x3F82);
    expect_bf16("just above the tie", 0x3F808001, 0x3F81);
    expect_bf16("just below the tie", 0x3F807FFF, 0x3F80);
    expect_bf16("carry into the exponent", 0x3FFFFFFF, 0x4000); // 2 - 2^-23 -> 2
    expect_bf16("0.1", 0x3DCCCCCD, 0x3DCD);                     // 0.10009765625
    expect_bf16("pi", 0x40490FDB, 0x4049);                       // 3.140625
    // The top: bf16's largest is 0x7F7F; 0x7F7F8000 is the tie above it (odd: to infinity).
    expect_bf16("below the top tie", 0x7F7F7FFF, 0x7F7F);
    expect_bf16("the top tie overflows", 0x7F7F8000, 0x7F80);
    expect_bf16("FLT_MAX overflows", 0x7F7FFFFF, 0x7F80);
    expect_bf16("-FLT_MAX overflows", 0xFF7FFFFF, 0xFF80);
    expect_bf16("infinity", 0x7F800000, 0x7F80);
    expect_bf16("-infinity", 0xFF800000, 0xFF80);
    expect_bf16("1e-8 survives (float's range)", bits_of(1e-8f), 0x322C); // 1.0012e-8
    // NaNs, subnormals, zero.
    expect_bf16("quiet NaN", 0x7FC00000, 0x7FC0);
    uint16_t snan = cg_f32_to_bf16(float_of(0x7F800001));
    if (snan != 0x7FC0)
        fail("bf16 by hand", "signalling NaN 0x7F800001 -> 0x%04X, want the quiet NaN 0x7FC0", snan);
    uint16_t neg_snan = cg_f32_to_bf16(float_of(0xFF800001));
    if (neg_snan != 0xFFC0)
        fail("bf16 by hand", "negative NaN 0xFF800001 -> 0x%04X, want 0xFFC0", neg_snan);
    expect_bf16("negative zero", 0x80000000, 0x8000);
    expect_bf16("smallest float subnormal", 0x00000001, 0x0000);
    expect_bf16("subnormal tie to zero", 0x00008000, 0x0000);
    expect_bf16("subnormal above the tie", 0x00008001, 0x0001);
    expect_bf16("subnormal tie to even", 0x00018000, 0x0002);
    expect_bf16("largest subnormal to smallest normal", 0x007FFFFF, 0x0080);
    float one = cg_bf16_to_f32(0x3F80), tenth = cg_bf16_to_f32(0x3DCD);
    if (one != 1.0f || (double)tenth != 0.10009765625)
        fail("bf16 by hand", "bf16_to_f32: 0x3F80 -> %g (want 1), 0x3DCD -> %.17g (want 0.10009765625)", (double)one,
             (double)tenth);
}

// ---- 4. the array versions give the scalar results ----------------------------------------------

static void test_arrays(void) {
    enum { N = 1000 };
    float x[N], back[N];
    uint16_t h[N], b[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)(i - N / 2) * 0.37f + (i % 7 == 0 ? 1e-6f : 0.0f);
    cg_f32_to_f16_array(h, x, N);
    cg_f32_to_bf16_array(b, x, N);
    for (int i = 0; i < N; i++) {
        if (h[i] != cg_f32_to_f16(x[i]) || b[i] != cg_f32_to_bf16(x[i]))
            fail("arrays", "array conversion of x[%d] = %g differs from the scalar one", i, (double)x[i]);
    }
    cg_f16_to_f32_array(back, h, N);
    for (int i = 0; i < N; i++)
        if (bits_of(back[i]) != bits_of(cg_f16_to_f32(h[i])))
            fail("arrays", "f16_to_f32_array[%d] differs from the scalar one", i);
    cg_bf16_to_f32_array(back, b, N);
    for (int i = 0; i < N; i++)
        if (bits_of(back[i]) != bits_of(cg_bf16_to_f32(b[i])))
            fail("arrays", "bf16_to_f32_array[%d] differs from the scalar one", i);
    cg_f32_to_f16_array(h, x, 0); // n = 0 does nothing
}

int main(void) {
    fail_print_max = 30; // the first 30 differences are enough to see what is wrong
#if defined(__x86_64__) || defined(__i386__)
    // cgrad's CPU kernels flush denormal floats to zero (kernels/cpu/table.c); this test checks every
    // bit pattern's conversion, the denormal ones included, so it compares them with the flush off.
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_OFF);
#endif
    make_tables();
    test_all_f16_patterns();
    test_all_bf16_patterns();
    test_f16_by_hand();
    test_bf16_by_hand();
    test_rounding_sweeps();
    test_arrays();
    printf("test_half: 65,536 fp16 and 65,536 bf16 patterns round-tripped; %ld floats rounded to fp16 "
           "and bf16 against a table of every finite value%s; hand-computed cases\n",
           checked_f16, HAVE_FLOAT16 ? " and against GCC's _Float16" : " (no _Float16 in this compiler)");
    free(f16_table.values);
    free(bf16_table.values);
    return check_summary("test_half");
}

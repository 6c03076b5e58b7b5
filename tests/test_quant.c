// test_quant.c: int8 quantization (core/quant.c) and the CPU int8 GEMM (kernels/cpu/int8_gemm.c):
// the course's worked example, round trips within half a step, saturation, round half to even,
// per-channel parameters, the min-max and percentile observers, the int8 GEMM bit-exact against a
// naive triple loop, requantisation and dequantisation against a double-precision reference.
// Not tested here: quantized modules, the GPU (issue 6's later steps).
#include "core/quant/quant.h"
#include "core/rng.h"
#include "kernels/cpu/int8_gemm.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_q(const char *what, const int8_t *got, const int *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail(what, "element %d is %d, expected %d", i, got[i], want[i]);
}

// ---- the course's worked example (chapter 1, INT8) -----------------------------------------------

static void test_course_example(void) {
    const float w[4] = {0.8342f, -1.234f, 0.0023f, 2.567f};
    int8_t q[4];

    // The course's own formula, scale = (max - min) / 255, q = round((w - min) / scale) - 128.
    float scale = (2.567f - -1.234f) / 255.0f;
    int8_t course[4];
    for (int i = 0; i < 4; i++) course[i] = (int8_t)(rintf((w[i] - -1.234f) / scale) - 128.0f);
    const int formula[4] = {11, -128, -45, 127};
    expect_q("course formula", course, formula, 4);

    // The engine's affine min/max parameters: the same scale, zero point -45, the same integers.
    cg_qparams p = cg_qparams_from_data(w, 4, false);
    if (fabsf(p.scale - scale) > 1e-9f || p.zero_point != -45)
        fail("course affine params", "scale %.9g zero_point %d, expected %.9g and -45", p.scale, p.zero_point, scale);
    cg_quantize(q, w, 4, p);
    expect_q("course affine", q, formula, 4);

    // The course PRINTS [56, -128, -111, 127]. No min/max scale reaches it: 0.8342 and 0.0023 are
    // 167 steps apart there, at most 56 under any scale >= (max - min) / 255.
    int max_steps = (int)ceilf((0.8342f - 0.0023f) / scale);
    if (max_steps != 56) fail("course printed", "at most %d steps between 0.8342 and 0.0023, expected 56", max_steps);
    // They are what scale 0.005 (1/200) with zero point -111 gives, clipping both ends.
    const int printed[4] = {56, -128, -111, 127};
    cg_qparams p200 = {0.005f, -111};
    cg_quantize(q, w, 4, p200);
    expect_q("course printed with scale 1/200, zero point -111", q, printed, 4);
}

// ---- quantize / dequantize -------------------------------------------------------------------------

static void test_round_trip(void) {
    cg_rng rng = cg_rng_new(6, 0);
    enum { n = 10000 };
    static float x[n], back[n];
    static int8_t q[n];
    cg_rng_normal(&rng, x, n, 0.3f, 2.0f);
    for (int symmetric = 0; symmetric <= 1; symmetric++) {
        cg_qparams p = cg_qparams_from_data(x, n, symmetric);
        cg_quantize(q, x, n, p);
        cg_dequantize(back, q, n, p);
        for (int i = 0; i < n; i++)
            if (fabsf(back[i] - x[i]) > 0.5f * p.scale * (1.0f + 1e-5f)) {
                fail("round trip", "%s: x %g -> %d -> %g, more than half a step (%g)",
                     symmetric ? "symmetric" : "affine", x[i], q[i], back[i], 0.5f * p.scale);
                break;
            }
        if (symmetric && p.zero_point != 0) fail("symmetric", "zero point %d", p.zero_point);
    }
    // Zero is exact with the affine parameters, even when the data does not contain it.
    const float pos[3] = {0.5f, 1.0f, 3.0f};
    cg_qparams p = cg_qparams_from_data(pos, 3, false);
    float zero_back;
    int8_t zq = cg_quantize_one(0.0f, p);
    cg_dequantize(&zero_back, &zq, 1, p);
    if (zero_back != 0.0f || p.zero_point != -128) fail("affine zero", "0 -> %d -> %g (zero point %d)", zq, zero_back, p.zero_point);
}

static void test_saturation_and_rounding(void) {
    cg_qparams p = {0.1f, 10};
    const float x[6] = {1000.0f, -1000.0f, INFINITY, -INFINITY, 11.7f, -13.8f};
    const int want[6] = {127, -128, 127, -128, 127, -128};
    int8_t q[6];
    cg_quantize(q, x, 6, p);
    expect_q("saturation", q, want, 6);

    // Round half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -2.5 -> -2 (scale 1
    // makes the ties exact). Half away from zero would give 1, 2, 3, -1, -2, -3.
    cg_qparams one = {1.0f, 0};
    const float ties[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f};
    const int even[6] = {0, 2, 2, 0, -2, -2};
    cg_quantize(q, ties, 6, one);
    expect_q("round half to even", q, even, 6);
}

static void test_per_channel(void) {
    // Three output channels of very different sizes: each gets its own scale.
    enum { C = 3, K = 5 };
    const float w[C * K] = {0.011f, -0.02f, 0.005f, 0.0f, 0.015f, //
                            1.0f,  -3.0f,  2.0f,   0.5f, -0.25f, //
                            100.f, 50.0f,  -25.0f, 10.f, -127.f};
    cg_qparams p[C];
    cg_qparams_per_channel(p, w, C, K, true);
    const float want_scale[C] = {0.02f / 127, 3.0f / 127, 127.0f / 127};
    for (int c = 0; c < C; c++)
        if (fabsf(p[c].scale - want_scale[c]) > 1e-6f * want_scale[c] || p[c].zero_point != 0)
            fail("per-channel params", "channel %d: scale %g zero point %d, expected %g and 0", c, p[c].scale,
                 p[c].zero_point, want_scale[c]);
    int8_t q[C * K];
    float back[C * K];
    cg_quantize_per_channel(q, w, C, K, p);
    cg_dequantize_per_channel(back, q, C, K, p);
    const int want_q[C * K] = {70, -127, 32, 0, 95, 42, -127, 85, 21, -11, 100, 50, -25, 10, -127};
    expect_q("per-channel quantize", q, want_q, C * K);
    for (int i = 0; i < C * K; i++)
        if (fabsf(back[i] - w[i]) > 0.5f * p[i / K].scale * (1.0f + 1e-5f))
            fail("per-channel round trip", "element %d: %g -> %g", i, w[i], back[i]);
    // Per tensor, the small channel would have collapsed to 0 or +-1.
    cg_qparams t = cg_qparams_from_data(w, C * K, true);
    if (cg_quantize_one(0.01f, t) != 0) fail("per-tensor contrast", "0.01 -> %d", cg_quantize_one(0.01f, t));
}

// ---- observers -----------------------------------------------------------------------------------

static void test_observers(void) {
    // min-max over several batches: exactly the extremes.
    cg_observer mm;
    cg_observer_init(&mm, CG_OBSERVER_MINMAX, 0);
    const float b1[3] = {0.5f, -0.25f, 2.0f}, b2[2] = {-3.5f, 1.0f}, b3[2] = {7.25f, 0.0f};
    cg_observer_update(&mm, b1, 3);
    cg_observer_update(&mm, b2, 2);
    cg_observer_update(&mm, b3, 2);
    float lo, hi;
    cg_observer_range(&mm, &lo, &hi);
    if (lo != -3.5f || hi != 7.25f || mm.count != 7) fail("min-max observer", "[%g, %g] over %lld", lo, hi, (long long)mm.count);
    cg_qparams p = cg_observer_qparams(&mm, false), want = cg_qparams_affine(-3.5f, 7.25f);
    if (p.scale != want.scale || p.zero_point != want.zero_point) fail("min-max qparams", "scale %g zp %d", p.scale, p.zero_point);
    cg_observer_free(&mm);

    // Percentile 99.99 % on a known distribution: 999,950 values evenly spread over [0, 1) and
    // 50 outliers at 8 (0.005 %), in 10 batches, the outliers in the last one (so the histogram
    // doubles its range). The 99.99 % quantile is at rank 999,900 of the even values, 0.99995;
    // the 0.01 % quantile at rank 100, 0.0001. Allowed error: one bin, range / 1024.
    enum { n_even = 999950, n_out = 50, batches = 10 };
    float *x = malloc(sizeof(float) * (n_even + n_out));
    for (int i = 0; i < n_even; i++) x[i] = (float)((double)((int64_t)i * 7919 % n_even) / n_even); // shuffled
    for (int i = 0; i < n_out; i++) x[n_even + i] = 8.0f;
    cg_observer pc;
    cg_observer_init(&pc, CG_OBSERVER_PERCENTILE, 99.99);
    int64_t per = n_even / batches;
    for (int b = 0; b < batches; b++) {
        int64_t begin = b * per, end = b == batches - 1 ? n_even + n_out : begin + per;
        cg_observer_update(&pc, x + begin, end - begin);
    }
    cg_observer_range(&pc, &lo, &hi);
    float tol = pc.range / 1024.0f;
    if (fabsf(hi - 0.99995f) > tol || fabsf(lo - 0.0001f) > tol || pc.count != n_even + n_out)
        fail("percentile observer", "[%g, %g], expected [0.0001, 0.99995] within %g (range %g)", lo, hi, tol, pc.range);
    if (pc.max != 8.0f) fail("percentile observer", "max %g, expected 8", pc.max);
    printf("percentile 99.99%%: [%.6f, %.6f] (exact [0.0001, 0.99995], bin %.6f); min-max would give [0, 8]\n", lo, hi,
           tol);
    cg_observer_free(&pc);

    // The standard normal, 2^20 values: the 99.99 % quantile is 3.7190 (the 0.01 %: -3.7190).
    // Sampling error of the quantile of 2^20 values: about 0.025; allowed 0.1.
    cg_rng rng = cg_rng_new(7, 1);
    cg_observer_init(&pc, CG_OBSERVER_PERCENTILE, 0);
    for (int b = 0; b < 16; b++) {
        cg_rng_normal(&rng, x, 1 << 16, 0.0f, 1.0f);
        cg_observer_update(&pc, x, 1 << 16);
    }
    cg_observer_range(&pc, &lo, &hi);
    if (fabsf(hi - 3.7190f) > 0.1f || fabsf(lo + 3.7190f) > 0.1f)
        fail("percentile normal", "[%g, %g], expected +-3.719 within 0.1", lo, hi);
    printf("percentile 99.99%% of N(0, 1): [%.4f, %.4f] (exact +-3.7190); min-max [%.4f, %.4f]\n", lo, hi, pc.min,
           pc.max);
    cg_observer_free(&pc);
    free(x);
}

// Entropy (KL) calibration. On the standard normal it keeps the bulk and trims the far tail
// (3 < T < the largest |x|). On a half-normal (a ReLU-like activation) with 0.005 % of outliers at
// 30 it drops the outliers (T < 8), where min-max would take [0, 30]. (On flat data KL cannot see
// resolution: merging equal bins loses nothing, so there it keeps the whole range.)
static void test_entropy_observer(void) {
    cg_rng rng = cg_rng_new(7, 2);
    enum { n = 1 << 16 };
    static float x[n];
    cg_observer obs;
    cg_observer_init(&obs, CG_OBSERVER_ENTROPY, 0);
    for (int b = 0; b < 16; b++) {
        cg_rng_normal(&rng, x, n, 0.0f, 1.0f);
        cg_observer_update(&obs, x, n);
    }
    float lo, hi;
    cg_observer_range(&obs, &lo, &hi);
    float absmax = fmaxf(-obs.min, obs.max);
    if (!(hi > 3.0f && hi < absmax && lo == -hi))
        fail("entropy normal", "[%g, %g] (max |x| %g), expected +-T with 3 < T < max |x|", lo, hi, absmax);
    printf("entropy threshold of N(0, 1): [%.4f, %.4f]; min-max [%.4f, %.4f]\n", lo, hi, obs.min, obs.max);
    cg_observer_free(&obs);

    cg_observer_init(&obs, CG_OBSERVER_ENTROPY, 0);
    for (int b = 0; b < 16; b++) {
        cg_rng_normal(&rng, x, n, 0.0f, 1.0f);
        for (int i = 0; i < n; i++) x[i] = fabsf(x[i]);
        if (b == 15)
            for (int i = 0; i < 50; i++) x[i] = 30.0f;
        cg_observer_update(&obs, x, n);
    }
    cg_observer_range(&obs, &lo, &hi);
    if (!(hi > 2.0f && hi < 8.0f) || lo != obs.min || obs.max != 30.0f)
        fail("entropy outliers", "[%g, %g], expected [%g, T] with 2 < T < 8 (max %g)", lo, hi, obs.min, obs.max);
    printf("entropy threshold of |N(0, 1)| with outliers at 30: [%.4f, %.4f]\n", lo, hi);
    cg_observer_free(&obs);
}

// ---- int8 GEMM -----------------------------------------------------------------------------------

static void random_i8(cg_rng *rng, int8_t *x, int64_t n) {
    uint32_t u;
    for (int64_t i = 0; i < n; i++) {
        cg_rng_u32(rng, &u, 1);
        x[i] = (int8_t)((int32_t)(u & 0xff) - 128); // any byte: -128 .. 127
    }
}

static void test_int8_gemm(void) {
    cg_rng rng = cg_rng_new(8, 2);
    // Odd sizes, K not a multiple of 4 (nor of the 64 bytes of a vector), the tile edges, one
    // product large enough for OpenMP, and the extremes (all -128: 128 * 128 * K each).
    const int64_t sizes[][3] = {{1, 1, 1},   {1, 7, 3},    {5, 3, 13},   {4, 4, 64},   {7, 9, 65},
                                {13, 17, 1}, {33, 31, 127}, {64, 48, 200}, {3, 300, 67}, {257, 261, 259},
                                {2, 2, 4099}};
    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        int64_t M = sizes[t][0], N = sizes[t][1], K = sizes[t][2];
        int8_t *A = malloc(M * K), *B = malloc(N * K);
        int32_t *C = malloc(sizeof(int32_t) * M * N);
        random_i8(&rng, A, M * K);
        random_i8(&rng, B, N * K);
        if (t == sizeof(sizes) / sizeof(sizes[0]) - 1) {
            memset(A, 0x80, M * K); // -128
            memset(B, 0x80, N * K);
            B[0] = 127;
        }
        int8_gemm_cpu(C, A, B, M, N, K);
        int64_t bad = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                int64_t s = 0;
                for (int64_t k = 0; k < K; k++) s += (int64_t)A[i * K + k] * B[j * K + k];
                if (s != C[i * N + j] && bad++ < 3)
                    fail("int8 gemm", "(%lld x %lld x %lld) C[%lld][%lld] = %d, expected %lld", (long long)M,
                         (long long)N, (long long)K, (long long)i, (long long)j, C[i * N + j], (long long)s);
            }
        free(A);
        free(B);
        free(C);
    }
}

// A quantized Linear layer against the same layer in double precision: requantisation and
// dequantisation, ReLU fused or not.
static void test_requantize(void) {
    enum { M = 37, N = 19, K = 45 };
    cg_rng rng = cg_rng_new(9, 3);
    static float x[M * K], w[N * K], b[N];
    cg_rng_normal(&rng, x, M * K, 0.5f, 1.0f);
    cg_rng_normal(&rng, w, N * K, 0.0f, 0.2f);
    cg_rng_normal(&rng, b, N, 0.0f, 0.5f);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) w[j * K + k] *= (float)(j + 1) / N; // channels of different sizes

    cg_qparams px = cg_qparams_from_data(x, M * K, false), pw[N];
    cg_qparams_per_channel(pw, w, N, K, true);
    static int8_t qx[M * K], qw[N * K], qy[M * N];
    cg_quantize(qx, x, M * K, px);
    cg_quantize_per_channel(qw, w, N, K, pw);
    int32_t bias_q[N], offset[N], acc[M * N];
    float scale[N], mult[N];
    for (int j = 0; j < N; j++) {
        scale[j] = px.scale * pw[j].scale;
        bias_q[j] = (int32_t)rintf(b[j] / scale[j]);
    }
    int8_gemm_cpu(acc, qx, qw, M, N, K);
    int8_gemm_offsets_cpu(offset, qw, bias_q, px.zero_point, N, K);

    // The real-valued layer the integers stand for, in double: y = sx sw (sum (qx - zx) qw + bias_q).
    static double y[M * N];
    double ymin = 0, ymax = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)(qx[i * K + k] - px.zero_point) * qw[j * K + k];
            y[i * N + j] = (double)scale[j] * (s + bias_q[j]);
            ymin = fmin(ymin, y[i * N + j]);
            ymax = fmax(ymax, y[i * N + j]);
        }

    for (int relu = 0; relu <= 1; relu++) {
        // Dequantisation: the same values to float precision.
        static float yf[M * N];
        int8_dequantize_cpu(yf, acc, offset, scale, relu, M, N);
        for (int i = 0; i < M * N; i++) {
            double want = relu && y[i] < 0 ? 0 : y[i];
            if (fabs(yf[i] - want) > 1e-5 * (1 + fabs(want))) {
                fail("dequantize", "relu %d element %d: %g, expected %g", relu, i, yf[i], want);
                break;
            }
        }
        // Requantisation to the output's own affine parameters: within one step of the exact
        // rounding (the float multiplier differs from the double one in the last bit, which can
        // move a value across a rounding boundary), and exact for nearly all.
        cg_qparams py = cg_qparams_affine(relu ? 0.0f : (float)ymin, (float)ymax);
        for (int j = 0; j < N; j++) mult[j] = scale[j] / py.scale;
        int8_requantize_cpu(qy, acc, offset, mult, py.zero_point, relu, M, N);
        int off_by_one = 0;
        for (int i = 0; i < M * N; i++) {
            double v = (relu && y[i] < 0 ? 0 : y[i]) / py.scale;
            double r = nearbyint(v) + py.zero_point;
            r = fmax(relu ? py.zero_point : -128, fmin(127, r));
            int d = abs((int)r - qy[i]);
            if (d > 1) {
                fail("requantize", "relu %d element %d: %d, expected %g", relu, i, qy[i], r);
                break;
            }
            off_by_one += d;
        }
        if (off_by_one > M * N / 100)
            fail("requantize", "relu %d: %d of %d values one step off", relu, off_by_one, M * N);
        if (relu)
            for (int i = 0; i < M * N; i++)
                if (qy[i] < py.zero_point) fail("requantize relu", "element %d: %d below the zero point %d", i, qy[i], py.zero_point);
    }
}

int main(void) {
    test_course_example();
    test_round_trip();
    test_saturation_and_rounding();
    test_per_channel();
    test_observers();
    test_entropy_observer();
    test_int8_gemm();
    test_requantize();
    return check_summary("test_quant");
}

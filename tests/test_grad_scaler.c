// test_grad_scaler.c: the loss-scale state machine (core/grad_scaler.h) step by step against
// PyTorch's GradScaler rule worked out by hand (growth after exactly 2000 good steps, back-off and
// skip on inf / NaN, the good-step count starting again, no growth to infinity, static mode),
// and the CPU kernels that check gradients for inf / NaN and unscale them (kernels/cpu/amp.h, and
// the op table's amp_unscale_check, which adds the 16-bit gradients first).
#include "core/half.h"
#include "core/kernels.h"
#include "core/train/grad_scaler.h"
#include "kernels/cpu/amp.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_scale(const char *what, const cg_grad_scaler *s, double want) {
    if ((double)cg_grad_scaler_scale(s) != want)
        fail(what, "scale %g, want %g", (double)cg_grad_scaler_scale(s), want);
}

// n good steps; each must be applied.
static void good_steps(cg_grad_scaler *s, int n) {
    for (int i = 0; i < n; i++)
        if (!cg_grad_scaler_update(s, false))
            fail("good steps", "a step without inf / NaN was skipped (step %lld)", (long long)s->steps);
}

static void test_defaults(void) {
    cg_grad_scaler_config c = cg_grad_scaler_default_config();
    if (c.init_scale != 65536.0f || c.growth_factor != 2.0f || c.backoff_factor != 0.5f ||
        c.growth_interval != 2000 || !c.dynamic)
        fail("defaults", "default config is not PyTorch's (65536, 2, 0.5, 2000, dynamic)");
}

static void test_growth(void) {
    cg_grad_scaler *s = cg_grad_scaler_new(cg_grad_scaler_default_config());
    expect_scale("initial", s, 65536.0);
    if (cg_grad_scaler_inv_scale(s) != 1.0f / 65536.0f)
        fail("growth", "inv_scale %g, want 2^-16", (double)cg_grad_scaler_inv_scale(s));
    good_steps(s, 1999);
    expect_scale("after 1999 good steps: not yet", s, 65536.0);
    good_steps(s, 1);
    expect_scale("after exactly 2000 good steps: doubled", s, 131072.0);
    if (s->growths != 1 || s->growth_tracker != 0)
        fail("growth", "after the growth: growths %lld (want 1), tracker %d (want 0)", (long long)s->growths,
             s->growth_tracker);
    good_steps(s, 1999);
    expect_scale("1999 more: not yet", s, 131072.0);
    good_steps(s, 1);
    expect_scale("4000 good steps: doubled twice", s, 262144.0);
    if (s->steps != 4000 || s->skipped_steps != 0)
        fail("growth", "steps %lld skipped %lld, want 4000 and 0", (long long)s->steps, (long long)s->skipped_steps);
    cg_grad_scaler_free(s);
}

static void test_backoff_and_reset(void) {
    cg_grad_scaler *s = cg_grad_scaler_new(cg_grad_scaler_default_config());
    good_steps(s, 1500);
    // An overflow: the step is skipped, the scale halved, the good-step count starts again.
    if (cg_grad_scaler_update(s, true))
        fail("backoff", "a step with inf / NaN was applied");
    expect_scale("after an overflow", s, 32768.0);
    if (s->growth_tracker != 0 || cg_grad_scaler_skipped(s) != 1 || s->backoffs != 1)
        fail("backoff", "after an overflow: tracker %d (want 0), skipped %lld (want 1), backoffs %lld (want 1)",
             s->growth_tracker, (long long)cg_grad_scaler_skipped(s), (long long)s->backoffs);
    // The 1500 good steps before it no longer count: 1999 after it are not enough, 2000 are.
    good_steps(s, 1999);
    expect_scale("1999 good steps after the overflow", s, 32768.0);
    good_steps(s, 1);
    expect_scale("2000 good steps after the overflow", s, 65536.0);
    // Overflows in a row halve each time, and each is skipped.
    for (int i = 0; i < 3; i++)
        if (cg_grad_scaler_update(s, true))
            fail("backoff", "overflow %d in a row was applied", i + 1);
    expect_scale("three overflows in a row", s, 8192.0);
    if (cg_grad_scaler_skipped(s) != 4 || s->steps != 1500 + 1 + 2000 + 3)
        fail("backoff", "skipped %lld (want 4), steps %lld (want 3504)", (long long)cg_grad_scaler_skipped(s),
             (long long)s->steps);
    if (cg_grad_scaler_inv_scale(s) != 1.0f / 8192.0f)
        fail("backoff", "inv_scale %g, want 2^-13", (double)cg_grad_scaler_inv_scale(s));
    cg_grad_scaler_free(s);
}

static void test_no_growth_to_infinity(void) {
    // 2^127 * 2 is past float's range: PyTorch keeps the scale, and so must we.
    cg_grad_scaler_config c = cg_grad_scaler_default_config();
    c.init_scale = 0x1p127f;
    c.growth_interval = 3;
    cg_grad_scaler *s = cg_grad_scaler_new(c);
    good_steps(s, 3);
    expect_scale("growth that would overflow float", s, 0x1p127);
    if (s->growths != 0 || s->growth_tracker != 0)
        fail("no growth to infinity", "no growth expected: growths %lld, tracker %d", (long long)s->growths, s->growth_tracker);
    cg_grad_scaler_free(s);
    // A smaller interval and other factors follow the same rule.
    c = cg_grad_scaler_default_config();
    c.init_scale = 1000.0f;
    c.growth_factor = 4.0f;
    c.backoff_factor = 0.25f;
    c.growth_interval = 2;
    s = cg_grad_scaler_new(c);
    good_steps(s, 2);
    expect_scale("x4 after 2", s, 4000.0);
    cg_grad_scaler_update(s, true);
    expect_scale("x0.25 on overflow", s, 1000.0);
    cg_grad_scaler_free(s);
}

static void test_static_mode(void) {
    cg_grad_scaler *s = cg_grad_scaler_new(cg_grad_scaler_static_config(128.0f));
    good_steps(s, 5000);
    expect_scale("static after 5000 good steps", s, 128.0);
    if (cg_grad_scaler_update(s, true))
        fail("static mode", "a step with inf / NaN was applied");
    expect_scale("static after an overflow", s, 128.0);
    if (cg_grad_scaler_skipped(s) != 1 || s->growths != 0 || s->backoffs != 0)
        fail("static mode", "skipped %lld (want 1), growths %lld, backoffs %lld (want 0)",
             (long long)cg_grad_scaler_skipped(s), (long long)s->growths, (long long)s->backoffs);
    cg_grad_scaler_free(s);
    // Scale 1: no scaling (bf16), still skipping on inf / NaN.
    s = cg_grad_scaler_new(cg_grad_scaler_static_config(1.0f));
    if (cg_grad_scaler_inv_scale(s) != 1.0f || !cg_grad_scaler_update(s, false))
        fail("static mode", "static scale 1: inv_scale %g (want 1), a good step must be applied",
             (double)cg_grad_scaler_inv_scale(s));
    cg_grad_scaler_free(s);
}

// ---- the inf / NaN check and unscale kernel ---------------------------------------------------

static void test_unscale_kernel(void) {
    // Small: exact products by a power of two, and the flag left alone when all are finite.
    float g[6] = {65536.0f, -32768.0f, 3.0f, 0.0f, -0.0f, 1e-3f};
    float found = 0.0f, inv = 1.0f / 65536.0f;
    unscale_check_cpu(g, &found, &inv, 6);
    const float want[6] = {1.0f, -0.5f, 3.0f / 65536.0f, 0.0f, -0.0f, 1e-3f / 65536.0f};
    for (int i = 0; i < 6; i++)
        if (g[i] != want[i])
            fail("unscale kernel", "unscale g[%d] = %g, want %g", i, (double)g[i], (double)want[i]);
    if (found != 0.0f)
        fail("unscale kernel", "finite gradients set found_inf to %g", (double)found);

    // One inf, or one NaN, anywhere sets the flag; the others are still unscaled.
    const float bad_values[3] = {INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 3; k++) {
        float h[5] = {2.0f, 4.0f, 8.0f, 16.0f, 32.0f};
        h[3] = bad_values[k];
        found = 0.0f;
        float half = 0.5f;
        unscale_check_cpu(h, &found, &half, 5);
        if (found != 1.0f)
            fail("unscale kernel", "%g in the gradients: found_inf %g, want 1", (double)bad_values[k], (double)found);
        if (h[0] != 1.0f || h[4] != 16.0f)
            fail("unscale kernel", "with %g present the finite values were not unscaled (%g, %g)", (double)bad_values[k],
                 (double)h[0], (double)h[4]);
    }

    // The flag is only ever set: a later clean buffer does not clear it (one flag, many buffers).
    float clean[2] = {1.0f, 2.0f};
    found = 1.0f;
    unscale_check_cpu(clean, &found, &inv, 2);
    if (found != 1.0f)
        fail("unscale kernel", "a clean buffer cleared found_inf");

    // inv_scale 1: values untouched (bitwise), NaN still found.
    float same[3] = {1.5f, -0.0f, NAN};
    float one = 1.0f;
    found = 0.0f;
    unscale_check_cpu(same, &found, &one, 3);
    if (same[0] != 1.5f || !signbit(same[1]) || found != 1.0f)
        fail("unscale kernel", "inv_scale 1: values changed or NaN missed");

    // Large (the OpenMP path, several chunks), with the inf in the last element of the last
    // chunk, then a clean run of the same size; n = 0 does nothing.
    int64_t n = 3 * (1 << 18) + 777;
    float *big = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        big[i] = (float)(i % 1000) * 4.0f;
    found = 0.0f;
    float quarter = 0.25f;
    unscale_check_cpu(big, &found, &quarter, n);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++)
        wrong += big[i] != (float)(i % 1000);
    if (wrong || found != 0.0f)
        fail("unscale kernel", "large clean buffer: %d values wrong, found_inf %g", wrong, (double)found);
    big[n - 1] = INFINITY;
    unscale_check_cpu(big, &found, &quarter, n);
    if (found != 1.0f)
        fail("unscale kernel", "large buffer: the inf in the last element was missed");
    found = 0.0f;
    unscale_check_cpu(big, &found, &quarter, 0);
    if (found != 0.0f)
        fail("unscale kernel", "n = 0 set found_inf");
    free(big);
}

// Where element e of a (K, C, RS) weight block lies when its slices are stored channels-last
// (core/kernels.h: cg_amp_cl_slice): a plain scan, apart from the kernels' binary search.
static int64_t stored_at(const cg_amp_cl_slice *slices, int count, int64_t e) {
    for (int i = 0; i < count; i++) {
        const cg_amp_cl_slice *s = &slices[i];
        int64_t local = e - s->offset;
        if (local < 0 || local >= s->K * s->C * s->RS) continue;
        int64_t k = local / (s->C * s->RS), c = local / s->RS % s->C, rs = local % s->RS;
        return s->offset + (k * s->RS + rs) * s->C + c;
    }
    return e;
}

// Two weights stored channels-last in a block of n values (and a parameter between them).
static const cg_amp_cl_slice test_slices[2] = {{104, 16, 8, 9}, {5000, 8, 24, 4}};

// The op table's amp_unscale_check (g += the 16-bit gradients h, then the check and the unscale,
// in one pass over pieces shared out to the threads): on a large buffer, each value against the
// sum worked out here, for bf16 and fp16, a scale of 1 (only a look) and of 4, clean and with an
// inf in the last value; and with h's two slices stored channels-last.
static void test_amp_unscale_check(void) {
    int64_t n = 3 * (1 << 18) + 777;
    float *g = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    for (int cl = 0; cl < 2; cl++)
        for (int dt = 0; dt < 2; dt++)
            for (int scaled = 0; scaled < 2; scaled++)
                for (int with_inf = 0; with_inf < 2; with_inf++) {
                    cg_dtype dtype = dt ? CG_F16 : CG_BF16;
                    float amp[CG_AMP_STATE] = {0}, inv = scaled ? 0.25f : 1.0f;
                    amp[CG_AMP_SCALE] = scaled ? 4.0f : 1.0f;
                    int count = cl ? 2 : 0;
                    for (int64_t i = 0; i < n; i++) {
                        g[i] = (float)(i % 1000) * 0.5f;
                        float v = (float)(i % 37) - 18.0f; // exact in both 16-bit formats
                        h[stored_at(test_slices, count, i)] = dt ? cg_f32_to_f16(v) : cg_f32_to_bf16(v);
                        want[i] = (g[i] + v) * inv;
                    }
                    if (with_inf) h[n - 1] = dt ? 0x7c00 : 0x7f80; // +inf in either format
                    cg_cpu_kernels()->amp_unscale_check(g, h, dtype, amp, n, cl ? test_slices : NULL, count);
                    int64_t wrong = 0;
                    for (int64_t i = 0; i < n - 1; i++) wrong += g[i] != want[i];
                    if (wrong || amp[CG_AMP_FOUND_INF] != (with_inf ? 1.0f : 0.0f))
                        fail("amp_unscale_check", "%s%s, scale %g, inf %d: %lld values wrong, found_inf %g",
                             dt ? "fp16" : "bf16", cl ? " channels-last slices" : "", (double)amp[CG_AMP_SCALE],
                             with_inf, (long long)wrong, (double)amp[CG_AMP_FOUND_INF]);
                }
    free(g), free(want), free(h);
}

// The op table's amp_refresh: the 16-bit copy of a block, each value rounded once, the slices'
// stored channels-last, the rest in place.
static void test_amp_refresh(void) {
    int64_t n = 7001;
    float *values = malloc(sizeof(float) * (size_t)n);
    uint16_t *low = malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) values[i] = (float)i * 1.001f - 3000.0f;
    for (int dt = 0; dt < 2; dt++)
        for (int cl = 0; cl < 2; cl++) {
            cg_dtype dtype = dt ? CG_F16 : CG_BF16;
            int count = cl ? 2 : 0;
            memset(low, 0xff, sizeof(uint16_t) * (size_t)n);
            cg_cpu_kernels()->amp_refresh(low, dtype, values, n, cl ? test_slices : NULL, count);
            int64_t wrong = 0;
            for (int64_t i = 0; i < n; i++)
                wrong += low[stored_at(test_slices, count, i)] !=
                         (dt ? cg_f32_to_f16(values[i]) : cg_f32_to_bf16(values[i]));
            if (wrong)
                fail("amp_refresh", "%s%s: %lld of %lld values wrong", dt ? "fp16" : "bf16",
                     cl ? " channels-last slices" : "", (long long)wrong, (long long)n);
        }
    free(values), free(low);
}

// The pieces together, as a training step will use them: gradients of a scaled loss, unscaled and
// checked, then the scaler's verdict.
static void test_together(void) {
    cg_grad_scaler *s = cg_grad_scaler_new(cg_grad_scaler_default_config());
    float grads[3] = {1e-8f, 2e-8f, -3e-8f};
    float scaled[3];
    for (int i = 0; i < 3; i++)
        scaled[i] = grads[i] * cg_grad_scaler_scale(s);
    float found = 0.0f, inv = cg_grad_scaler_inv_scale(s);
    unscale_check_cpu(scaled, &found, &inv, 3);
    if (!cg_grad_scaler_update(s, found != 0.0f))
        fail("together", "a clean step was skipped");
    for (int i = 0; i < 3; i++) // times 2^16 and back by 2^-16: exact
        if (scaled[i] != grads[i])
            fail("together", "gradient %d: %g after scale and unscale, want %g", i, (double)scaled[i], (double)grads[i]);
    scaled[1] = INFINITY;
    found = 0.0f;
    unscale_check_cpu(scaled, &found, &inv, 3);
    if (cg_grad_scaler_update(s, found != 0.0f))
        fail("together", "a step with an inf gradient was applied");
    expect_scale("after the inf step", s, 32768.0);
    cg_grad_scaler_free(s);
}

int main(void) {
    test_defaults();
    test_growth();
    test_backoff_and_reset();
    test_no_growth_to_infinity();
    test_static_mode();
    test_unscale_kernel();
    test_amp_unscale_check();
    test_amp_refresh();
    test_together();
    return check_summary("test_grad_scaler");
}

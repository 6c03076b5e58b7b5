// twin.h: buffers that exist on both devices, for the tests that run a CUDA kernel and its CPU twin
// on the same inputs and compare the results (tests/test_cuda.c, tests/test_cuda_amp.c): the GPU
// and both kernel tables, twins of f32, f16, bf16 or i32 values, and the comparison in f32.
// Header-only (static, one copy per test); failures are counted by check.h. It holds no test.
//
// Use: `if (!twin_setup()) return 77;` first (no usable GPU: the test reports itself skipped), then
// twin_uniform / twin_new, the kernels on H(t) / D(t) of each table, expect_close, twin_free.
#ifndef CG_TESTS_TWIN_H
#define CG_TESTS_TWIN_H

#include "cgrad.h"
#include "core/half.h"
#include "core/kernels.h"
#include "tests/check.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cg_device gpu;
static const cg_kernels *K_CPU, *K_GPU;

// Where expect_close takes an inf or a NaN on both devices for agreement (the 16-bit tests, whose
// casts overflow to inf on purpose); false: any value that is not finite is a failure.
static bool twin_nonfinite_agree = false;

// cuda:0 and the two kernel tables. False, after a "skipped: ..." line on stdout, without a usable GPU.
static bool twin_setup(void) {
    if (cg_device_parse("cuda", &gpu).code != CG_OK) {
        printf("skipped: no usable GPU (%s)\n", cg_cuda_built() ? "no GPU found" : "built without CUDA");
        return false;
    }
    K_CPU = cg_kernels_for(cg_cpu());
    K_GPU = cg_kernels_for(gpu);
    return true;
}

// A buffer of n values of dtype on both devices: the CPU kernels work on host, the CUDA ones on dev.
typedef struct {
    int64_t n;
    cg_dtype dtype;
    void *host, *dev;
} twin;

// n zeros of dtype on both devices.
static twin twin_new(int64_t n, cg_dtype dtype) {
    size_t bytes = (size_t)n * cg_dtype_size(dtype);
    twin t = {n, dtype, cg_xcalloc((size_t)n, cg_dtype_size(dtype)), cg_device_alloc(gpu, bytes)};
    cg_device_zero(gpu, t.dev, bytes);
    return t;
}

// Copies host to dev (after the test has written host).
static void twin_upload(twin *t) {
    cg_device_copy(gpu, t->dev, cg_cpu(), t->host, (size_t)t->n * cg_dtype_size(t->dtype));
}

// Every bit set on both devices (NaN in f32, f16 and bf16): a gradient that a kernel must write
// without reading (accumulate false); one NaN read shows in its result.
static __attribute__((unused)) void twin_poison(twin *t) {
    memset(t->host, 0xff, (size_t)t->n * cg_dtype_size(t->dtype));
    twin_upload(t);
}

static void twin_free(twin *t) {
    free(t->host);
    cg_device_free(gpu, t->dev);
}

// n floats to a float dtype (f32, f16 or bf16), and back.
static void to_dtype(void *dst, cg_dtype t, const float *src, int64_t n) {
    if (t == CG_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (t == CG_F16) cg_f32_to_f16_array(dst, src, n);
    else cg_f32_to_bf16_array(dst, src, n);
}
static void to_f32(float *dst, cg_dtype t, const void *src, int64_t n) {
    if (t == CG_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (t == CG_F16) cg_f16_to_f32_array(dst, src, n);
    else cg_bf16_to_f32_array(dst, src, n);
}

// n values uniform in [lo, hi), rounded to dtype (f32, f16 or bf16), on both devices.
static twin twin_uniform(cg_rng *r, int64_t n, cg_dtype dtype, float lo, float hi) {
    twin t = twin_new(n, dtype);
    float *v = cg_xmalloc((size_t)n * sizeof(float));
    cg_rng_uniform(r, v, n, lo, hi);
    to_dtype(t.host, dtype, v, n);
    free(v);
    twin_upload(&t);
    return t;
}

// n int32 labels in 0..classes-1 on both devices.
static __attribute__((unused)) twin twin_labels(cg_rng *r, int64_t n, int classes) {
    twin t = twin_new(n, CG_I32);
    uint32_t *w = cg_xmalloc((size_t)n * sizeof(uint32_t));
    cg_rng_u32(r, w, n);
    for (int64_t i = 0; i < n; i++) ((int32_t *)t.host)[i] = (int32_t)(w[i] % (uint32_t)classes);
    free(w);
    twin_upload(&t);
    return t;
}

// The GPU's result (dev) against the CPU's (host) of a float twin, compared in f32: every value
// must have |gpu - cpu| <= atol + rtol |cpu| (see twin_nonfinite_agree for inf and NaN). Prints an
// "ok" line with the largest difference, or fail()s naming the first value out of tolerance.
static void expect_close(const char *kernel, twin *t, double atol, double rtol) {
    char name[64];
    snprintf(name, sizeof name, "%s %s", kernel, cg_dtype_name(t->dtype));
    void *raw = cg_xmalloc((size_t)t->n * cg_dtype_size(t->dtype));
    cg_device_copy(cg_cpu(), raw, gpu, t->dev, (size_t)t->n * cg_dtype_size(t->dtype));
    float *got = cg_xmalloc((size_t)t->n * sizeof(float)), *want = cg_xmalloc((size_t)t->n * sizeof(float));
    to_f32(got, t->dtype, raw, t->n);
    to_f32(want, t->dtype, t->host, t->n);
    double worst = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < t->n; i++) {
        if (twin_nonfinite_agree && (got[i] == want[i] || (isnan(got[i]) && isnan(want[i])))) continue;
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])) && bad < 0) bad = i;
        if (err > worst) worst = err;
    }
    if (bad >= 0)
        fail(name, "element %lld of %lld: cpu %.9g, cuda %.9g", (long long)bad, (long long)t->n, (double)want[bad],
             (double)got[bad]);
    else
        printf("ok   %-28s %8lld values, max |cuda - cpu| %.3g\n", name, (long long)t->n, worst);
    free(raw), free(got), free(want);
}

#endif

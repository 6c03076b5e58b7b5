// test_bf16_norm.c: batch norm on bf16 NCHW tensors without f32 copies (kernels/cpu/norm.c:
// batch_norm_forward_bf16_cpu, batch_norm_backward_bf16_cpu, which the CPU's 16-bit rows call for
// bf16) against what those rows computed before them, the f32 kernels on widened copies with each
// result rounded to bf16 once: bit for bit. Forward plain, with ReLU, with a residual and ReLU;
// backward of each (from dy; through ReLU from the batch norm's output computed again; through the
// block's ReLU from y, with g, the batch norm's output gradient, written); training and evaluation;
// dx added to or written, or not asked for; planes of 64 positions (whole vectors of 8), of 49 and
// 5 (tails), channel counts that are not multiples of 8; on 1 and 2 threads. No bf16 hardware
// needed: these kernels widen and round with integer operations.
#include "core/half.h"
#include "core/kernels.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"
#include "tests/bf16_values.h"
#include "tests/check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *widened(const uint16_t *v, int64_t n) {
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = cg_bf16_to_f32(v[i]);
    return f;
}

static void round_into(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = cg_f32_to_bf16(src[i]);
}

static void same_bits16(const char *what, const uint16_t *got, const uint16_t *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fail(what, "element %lld of %lld: 0x%04x without copies, 0x%04x on widened copies", (long long)i,
                 (long long)n, got[i], want[i]);
            return;
        }
}

static void same_bits32(const char *what, const float *got, const float *want, int64_t n) {
    if (memcmp(got, want, (size_t)n * sizeof(float)) != 0) fail(what, "the f32 values differ");
}

static float *random_f32(int64_t n, float lo, float hi) {
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * (uniform() + 1.0f) / 2.0f;
    return v;
}

typedef struct {
    int64_t N, C, H, W;
} shape;

// act: 0 the batch norm alone, 1 then ReLU, 2 then + z and ReLU (the block's end)
static void check(const shape *s, int act, bool training, int threads) {
    const cg_kernels *k = cg_cpu_kernels();
    int64_t N = s->N, C = s->C, HW = s->H * s->W, n = N * C * HW;
    char what[160], name[96];
    snprintf(name, sizeof name, "%lldx%lldx%lldx%lld, %s, %s, %d thread(s)", (long long)N, (long long)C,
             (long long)s->H, (long long)s->W, act == 0 ? "batch norm" : act == 1 ? "+ ReLU" : "+ z, ReLU",
             training ? "training" : "evaluation", threads);
    cg_set_num_threads(threads);
    uint16_t *x = random_bf16(n), *z = random_bf16(n), *dy = random_bf16(n), *dx0 = random_bf16(n);
    for (int64_t i = 0; i < n; i += 7) dy[i] = 0x8000; // -0: a ReLU's gradient turns it into +0
    float *gamma = random_f32(C, 0.5f, 1.5f), *beta = random_f32(C, -0.5f, 0.5f);
    float *rm0 = random_f32(C, -0.1f, 0.1f), *rv0 = random_f32(C, 0.5f, 1.5f);
    // forward, both ways
    uint16_t *y = malloc((size_t)n * 2), *y_ref = malloc((size_t)n * 2);
    float *stats = malloc((size_t)(2 * C + 1) * sizeof(float)), *stats_ref = malloc((size_t)(2 * C + 1) * sizeof(float));
    float *rm = malloc((size_t)C * sizeof(float)), *rv = malloc((size_t)C * sizeof(float));
    float *rm_ref = malloc((size_t)C * sizeof(float)), *rv_ref = malloc((size_t)C * sizeof(float));
    memcpy(rm, rm0, (size_t)C * 4), memcpy(rv, rv0, (size_t)C * 4), memcpy(rm_ref, rm0, (size_t)C * 4);
    memcpy(rv_ref, rv0, (size_t)C * 4);
    batch_norm_forward_bf16_cpu(y, stats, rm, rv, x, act == 2 ? z : NULL, gamma, beta, N, C, HW, 1e-5f, 0.1f, training,
                                act > 0);
    float *xf = widened(x, n), *zf = widened(z, n), *bn = malloc((size_t)n * sizeof(float));
    float *yf = malloc((size_t)n * sizeof(float));
    k->batch_norm_forward(bn, stats_ref, rm_ref, rv_ref, xf, gamma, beta, N, C, HW, 1e-5f, 0.1f, training);
    if (act == 2)
        for (int64_t i = 0; i < n; i++) bn[i] += zf[i];
    if (act > 0)
        k->relu_forward(yf, bn, n);
    else
        memcpy(yf, bn, (size_t)n * sizeof(float));
    round_into(y_ref, yf, n);
    snprintf(what, sizeof what, "%s: y", name);
    same_bits16(what, y, y_ref, n);
    snprintf(what, sizeof what, "%s: statistics", name);
    same_bits32(what, stats, stats_ref, 2 * C);
    snprintf(what, sizeof what, "%s: running statistics", name);
    same_bits32(what, rm, rm_ref, C), same_bits32(what, rv, rv_ref, C);

    // backward, dx added to, written, and not asked for; from the same y
    for (int mode = 0; mode < 3; mode++) {
        bool accumulate = mode == 0, with_dx = mode < 2;
        uint16_t *dx = with_dx ? copy16(dx0, n) : NULL, *dx_ref = copy16(dx0, n);
        uint16_t *g = act == 2 ? malloc((size_t)n * 2) : NULL, *g_ref = malloc((size_t)n * 2);
        float *dgamma = calloc((size_t)C, sizeof(float)), *dbeta = calloc((size_t)C, sizeof(float));
        float *dgamma_ref = calloc((size_t)C, sizeof(float)), *dbeta_ref = calloc((size_t)C, sizeof(float));
        batch_norm_backward_bf16_cpu(dx, g, dgamma, dbeta, dy, act == 2 ? y : NULL, x, gamma, beta, stats, N, C, HW,
                                     training, act, accumulate);
        // the reference: g = dy, or 0 + (dy where ReLU let it through), in f32; then the f32 backward
        float *dyf = widened(dy, n), *gf = calloc((size_t)n, sizeof(float));
        float *dxf = accumulate ? widened(dx0, n) : calloc((size_t)n, sizeof(float));
        if (act == 0)
            memcpy(gf, dyf, (size_t)n * sizeof(float));
        else if (act == 1) {
            k->batch_norm_forward_from_stats(bn, xf, gamma, beta, stats, N, C, HW);
            k->relu_backward(gf, dyf, bn, n);
        } else {
            float *yw = widened(y, n);
            k->relu_backward(gf, dyf, yw, n);
            free(yw);
        }
        k->batch_norm_backward(with_dx ? dxf : NULL, dgamma_ref, dbeta_ref, gf, xf, gamma, stats, N, C, HW, training);
        round_into(dx_ref, dxf, n);
        round_into(g_ref, gf, n);
        const char *how = mode == 0 ? "dx added to" : mode == 1 ? "dx written" : "no dx";
        if (with_dx) {
            snprintf(what, sizeof what, "%s, %s: dx", name, how);
            same_bits16(what, dx, dx_ref, n);
        }
        if (g) {
            snprintf(what, sizeof what, "%s, %s: g", name, how);
            same_bits16(what, g, g_ref, n);
        }
        snprintf(what, sizeof what, "%s, %s: dgamma, dbeta", name, how);
        same_bits32(what, dgamma, dgamma_ref, C), same_bits32(what, dbeta, dbeta_ref, C);
        free(dx), free(dx_ref), free(g), free(g_ref), free(dgamma), free(dbeta), free(dgamma_ref), free(dbeta_ref);
        free(dyf), free(gf), free(dxf);
    }
    free(x), free(z), free(dy), free(dx0), free(gamma), free(beta), free(rm0), free(rv0), free(y), free(y_ref);
    free(stats), free(stats_ref), free(rm), free(rv), free(rm_ref), free(rv_ref), free(xf), free(zf), free(bn), free(yf);
}

int main(void) {
    int threads_at_start = cg_get_num_threads();
    const shape shapes[] = {
        {4, 16, 8, 8},  // whole blocks of 8 channels and of 8 positions
        {3, 13, 7, 7},  // 8 channels and 5 alone; 49 positions: 6 vectors and a tail of 1
        {2, 9, 1, 5},   // 5 positions: the scalar loop only
        {64, 24, 4, 4}, // CIFAR ResNet-18's layer4 planes (4 x 4), many images
        {32, 64, 16, 16}, // enough values for the threads (CG_OMP_MIN_WORK)
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int act = 0; act < 3; act++)
            for (int training = 1; training >= 0; training--)
                for (int threads = 1; threads <= 2; threads++) check(&shapes[s], act, training, threads);
    cg_set_num_threads(threads_at_start);
    return check_summary("test_bf16_norm");
}

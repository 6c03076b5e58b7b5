// op_cases.h: one row per test case of an op of core/ops.h, shared by test_grad (the backward
// against central finite differences) and test_cuda (the op on the GPU against the CPU): the
// inputs (shapes and how they are drawn), the op under test, the finite-difference step and
// tolerances. Every op of the enum has at least one row (check_coverage): adding an op adds
// its rows here, and both tests run them. Header-only, included by those two tests.
#ifndef CG_TESTS_OP_CASES_H
#define CG_TESTS_OP_CASES_H

#include "core/ops.h"
#include "core/rng.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 4

// How an input is drawn. Values are kept away from kinks (ReLU at 0) and from the ends of
// BCE's domain (p near 0 or 1), where a finite difference is not a derivative.
typedef enum {
    NORMAL,        // N(0, 1)
    AWAY_FROM_0,   // sign * U(0.2, 1.5): never within the step of ReLU's kink
    SIGMOID_RANGE, // U(-3, 3)
    PROBABILITY,   // U(0.05, 0.95)
    TARGETS01,     // 0 or 1 (f32), no gradient
    LABELS,        // i32 class indices in [0, shape[1] of input 0), no gradient
    SPREAD,        // distinct values 0.1 apart, shuffled: a max-pool window has one clear maximum
    DYADIC,        // k / 32 in [-2, 2]: exact in fp16 and bf16, and so is x +- 1/32 (cast's step)
} input_kind;

typedef struct {
    int ndim;
    int64_t shape[4];
    input_kind kind;
    bool requires_grad;
} input_spec;

typedef struct {
    cg_op op;         // the op under test (tests/op_cases.h: every op has at least one row)
    const char *name;
    int n_in;
    input_spec in[MAX_INPUTS];
    cg_tensor *(*unary)(cg_tape *t, cg_tensor *x);   // an op of one input, called as it is (cg_relu),
    cg_tensor *(*build)(cg_tape *t, cg_tensor **in); // or a function that calls the op under test
    float step;                                      // finite-difference step h
    double atol, rtol;                               // |analytic - numeric| <= atol + rtol |numeric|
} op_case;

// ---- the op under test, one function per row --------------------------------------------------

static cg_tensor *build_matmul_nn(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], false, false); }
static cg_tensor *build_matmul_nt(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], false, true); }
static cg_tensor *build_matmul_tn(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], true, false); }
static cg_tensor *build_matmul_tt(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], true, true); }
static cg_tensor *build_add(cg_tape *t, cg_tensor **in) { return cg_add(t, in[0], in[1]); }
static cg_tensor *build_bce(cg_tape *t, cg_tensor **in) { return cg_bce(t, in[0], in[1]); }
static cg_tensor *build_cross_entropy(cg_tape *t, cg_tensor **in) { return cg_cross_entropy(t, in[0], in[1]); }
static cg_tensor *build_sum(cg_tape *t, cg_tensor **in) { return cg_sum(t, in[0]); }
static cg_tensor *build_mean(cg_tape *t, cg_tensor **in) { return cg_mean(t, in[0]); }
static cg_tensor *build_scale(cg_tape *t, cg_tensor **in) { return cg_scale(t, in[0], -0.7f); }
// The fused layer op: x (N, in), W (out, in), b (out,).
static cg_tensor *build_linear(cg_tape *t, cg_tensor **in) { return cg_linear(t, in[0], in[1], in[2]); }
static cg_tensor *build_linear_no_bias(cg_tape *t, cg_tensor **in) { return cg_linear(t, in[0], in[1], NULL); }
// Image ops, flattened to (N, features) for the weighted loss (which tests reshape as well).
static cg_tensor *build_conv(cg_tape *t, cg_tensor **in) { return cg_flatten(t, cg_conv2d(t, in[0], in[1], in[2], 1, 1)); }
static cg_tensor *build_conv_stride2(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_conv2d(t, in[0], in[1], in[2], 2, 0));
}
static cg_tensor *build_conv_no_bias(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_conv2d(t, in[0], in[1], NULL, 1, 2));
}
static cg_tensor *build_avg_pool(cg_tape *t, cg_tensor **in) { return cg_flatten(t, cg_avg_pool2d(t, in[0], 2, 2)); }
static cg_tensor *build_avg_pool_overlap(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_avg_pool2d(t, in[0], 3, 2));
}
static cg_tensor *build_global_avg_pool(cg_tape *t, cg_tensor **in) { return cg_global_avg_pool2d(t, in[0]); }
// To channels-last, then flatten, which takes NCHW only: the op layer copies it back first.
static cg_tensor *build_channels_last(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_to_memory_format(t, in[0], true));
}
// The same with a ReLU between, which keeps the channels-last format (its output is stored so).
static cg_tensor *build_channels_last_relu(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_relu(t, cg_to_memory_format(t, in[0], true)));
}
static cg_tensor *build_cross_entropy_smoothed(cg_tape *t, cg_tensor **in) {
    return cg_cross_entropy_smoothed(t, in[0], in[1], 0.1f);
}
static cg_tensor *build_max_pool(cg_tape *t, cg_tensor **in) { return cg_flatten(t, cg_max_pool2d(t, in[0], 2, 2)); }
// The fused block, 7 x 5 output: the last row and column fall outside every 2 x 2 window.
static cg_tensor *build_conv_relu_pool(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_conv2d_relu_max_pool2d(t, in[0], in[1], in[2], 1, 1));
}
static cg_tensor *build_max_pool_overlap(cg_tape *t, cg_tensor **in) {
    return cg_flatten(t, cg_max_pool2d(t, in[0], 3, 1));
}
// Batch norm in training mode: gamma (C,) and beta (C,) are inputs; the running statistics are
// fixed tensors of this file (updated by every evaluation, which does not change the output).
static cg_tensor *running_mean[2], *running_var[2]; // one pair per device type, 3 channels
static int running_stats(cg_tape *t) {
    int d = t->device.type == CG_CPU ? 0 : 1;
    if (running_mean[d] == NULL) {
        running_mean[d] = cg_tensor_new(t->device, CG_F32, 1, (int64_t[]){3});
        running_var[d] = cg_tensor_new(t->device, CG_F32, 1, (int64_t[]){3});
        cg_tensor_fill(running_mean[d], 0.0f);
        cg_tensor_fill(running_var[d], 1.0f);
    }
    return d;
}
static cg_tensor *build_batch_norm(cg_tape *t, cg_tensor **in) {
    int d = running_stats(t);
    return cg_flatten(t, cg_batch_norm2d(t, in[0], in[1], in[2], running_mean[d], running_var[d], true, 0.1f, 1e-5f));
}
// The same followed by GELU or ReLU, in one op.
static cg_tensor *batch_norm_act_case(cg_tape *t, cg_tensor **in, bool gelu) {
    int d = running_stats(t);
    cg_tensor *y = (gelu ? cg_batch_norm2d_gelu : cg_batch_norm2d_relu)(t, in[0], in[1], in[2], running_mean[d],
                                                                        running_var[d], true, 0.1f, 1e-5f);
    CG_CHECK(t->count == 0 || t->nodes[t->count - 1].op == CG_OP_BATCH_NORM_ACT, "batch_norm2d_act: ran as two ops");
    return cg_flatten(t, y);
}
static cg_tensor *build_batch_norm_gelu(cg_tape *t, cg_tensor **in) { return batch_norm_act_case(t, in, true); }
static cg_tensor *build_batch_norm_relu(cg_tape *t, cg_tensor **in) { return batch_norm_act_case(t, in, false); }
// relu(batch norm of x + z), in one op (the end of a ResNet basic block).
static cg_tensor *build_batch_norm_add_relu(cg_tape *t, cg_tensor **in) {
    int d = running_stats(t);
    cg_tensor *y = cg_batch_norm2d_add_relu(t, in[0], in[1], in[2], running_mean[d], running_var[d], in[3], true, 0.1f,
                                            1e-5f);
    CG_CHECK(t->count == 0 || t->nodes[t->count - 1].op == CG_OP_BATCH_NORM_ADD_RELU,
             "batch_norm2d_add_relu: ran as three ops");
    return cg_flatten(t, y);
}
// Synchronised batch norm (the steps of --sync-bn) over one rank: the sum over the ranks is the
// rank's own, so the hook does nothing and the backward finds none (it is removed after the forward).
static void sum_over_one_rank(void *ctx, double *buf, int64_t n) { (void)ctx, (void)buf, (void)n; }
static cg_tensor *build_batch_norm_synced(cg_tape *t, cg_tensor **in) {
    t->batch_norm_sum = sum_over_one_rank;
    cg_tensor *y = build_batch_norm(t, in);
    t->batch_norm_sum = NULL;
    return y;
}
// Dropout with a generator made afresh for each evaluation: the same mask every time.
static cg_tensor *build_dropout(cg_tape *t, cg_tensor **in) {
    cg_rng rng = cg_rng_new(7, CG_STREAM_DROPOUT);
    return cg_dropout(t, in[0], 0.3f, &rng);
}
static cg_tensor *build_reshape(cg_tape *t, cg_tensor **in) { return cg_reshape(t, in[0], 2, (int64_t[]){6, 2}); }
// f32 -> 16 bits -> f32 (two cast nodes); on DYADIC inputs with h = 1/32 the rounding is exact,
// so the numeric derivative is the loss weight itself. The analytic one went through the 16-bit
// tensor's gradient, which is 16 bits: rtol half a step, 2^-11 for fp16, 2^-8 for bf16 (+ margin).
static cg_tensor *build_cast_f16(cg_tape *t, cg_tensor **in) { return cg_cast(t, cg_cast(t, in[0], CG_F16), CG_F32); }
static cg_tensor *build_cast_bf16(cg_tape *t, cg_tensor **in) { return cg_cast(t, cg_cast(t, in[0], CG_BF16), CG_F32); }
// An input used twice: gradients from both uses must add up (backward accumulates).
static cg_tensor *build_add_self(cg_tape *t, cg_tensor **in) { return cg_add(t, in[0], in[0]); }
// Two ops in a row, as a layer uses them: relu(x W^T + b).
static cg_tensor *build_linear_relu(cg_tape *t, cg_tensor **in) {
    return cg_relu(t, cg_add(t, cg_matmul(t, in[0], in[1], false, true), in[2]));
}

// An input: IN2(rows, cols, kind, requires_grad) or IN1(n, kind, requires_grad).
// clang-format off
#define IN2(r, c, kind, grad) {2, {r, c}, kind, grad}
#define IN1(n, kind, grad) {1, {n, 1}, kind, grad}
#define IN4(a, b, c, d, kind, grad) {4, {a, b, c, d}, kind, grad}

// Finite-difference step h, then atol and rtol: SMOOTH for ops whose third derivative is small.
#define SMOOTH 1e-2f, 1e-3, 1e-2
static const op_case cases[] = {
    // matmul: a stored (M, K), or (K, M) when trans_a; b stored (K, N), or (N, K) when trans_b; M 3, K 4, N 5
    {CG_OP_MATMUL, "matmul",                 2, {IN2(3, 4, NORMAL, true), IN2(4, 5, NORMAL, true)},  NULL, build_matmul_nn, SMOOTH},
    {CG_OP_MATMUL, "matmul trans_b",         2, {IN2(3, 4, NORMAL, true), IN2(5, 4, NORMAL, true)},  NULL, build_matmul_nt, SMOOTH},
    {CG_OP_MATMUL, "matmul trans_a",         2, {IN2(4, 3, NORMAL, true), IN2(4, 5, NORMAL, true)},  NULL, build_matmul_tn, SMOOTH},
    {CG_OP_MATMUL, "matmul trans_a trans_b", 2, {IN2(4, 3, NORMAL, true), IN2(5, 4, NORMAL, true)},  NULL, build_matmul_tt, SMOOTH},
    {CG_OP_MATMUL, "matmul (b only)",        2, {IN2(3, 4, NORMAL, false), IN2(5, 4, NORMAL, true)}, NULL, build_matmul_nt, SMOOTH},
    {CG_OP_MATMUL, "matmul (a only)",        2, {IN2(4, 3, NORMAL, true), IN2(4, 5, NORMAL, false)}, NULL, build_matmul_tn, SMOOTH},
    {CG_OP_LINEAR, "linear",                 3, {IN2(5, 4, NORMAL, true), IN2(3, 4, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_linear,    SMOOTH},
    {CG_OP_LINEAR, "linear (no bias, W only)", 2, {IN2(5, 4, NORMAL, false), IN2(3, 4, NORMAL, true)},
                                  NULL, build_linear_no_bias, SMOOTH},
    {CG_OP_ADD, "add",                    2, {IN2(3, 4, NORMAL, true), IN2(3, 4, NORMAL, true)},  NULL, build_add,       SMOOTH},
    {CG_OP_ADD, "add bias",               2, {IN2(6, 4, NORMAL, true), IN1(4, NORMAL, true)},     NULL, build_add,       SMOOTH},
    {CG_OP_ADD, "add bias (bias only)",   2, {IN2(6, 4, NORMAL, false), IN1(4, NORMAL, true)},    NULL, build_add,       SMOOTH},
    {CG_OP_ADD, "add same input twice",   1, {IN2(3, 4, NORMAL, true)},                           NULL, build_add_self,  SMOOTH},
    {CG_OP_RELU, "relu",                   1, {IN2(4, 5, AWAY_FROM_0, true)},                      cg_relu, NULL,   SMOOTH},
    {CG_OP_SIGMOID, "sigmoid",                1, {IN2(4, 5, SIGMOID_RANGE, true)},                    cg_sigmoid, NULL, SMOOTH},
    {CG_OP_GELU, "gelu",                      1, {IN2(4, 5, SIGMOID_RANGE, true)},                    cg_gelu, NULL,    SMOOTH},
    {CG_OP_AVG_POOL2D, "avg_pool2d",          1, {IN4(2, 3, 4, 6, NORMAL, true)},                     NULL, build_avg_pool, SMOOTH},
    {CG_OP_AVG_POOL2D, "avg_pool2d 3x3 stride 2", 1, {IN4(1, 2, 7, 5, NORMAL, true)},                 NULL, build_avg_pool_overlap, SMOOTH},
    {CG_OP_GLOBAL_AVG_POOL, "global_avg_pool2d", 1, {IN4(3, 4, 3, 5, NORMAL, true)},                 NULL, build_global_avg_pool, SMOOTH},
    {CG_OP_MEMORY_FORMAT, "to_memory_format and back", 1, {IN4(2, 3, 4, 5, NORMAL, true)},            NULL, build_channels_last, SMOOTH},
    {CG_OP_MEMORY_FORMAT, "to_memory_format, relu, back", 1, {IN4(2, 3, 4, 5, AWAY_FROM_0, true)},    NULL, build_channels_last_relu, SMOOTH},
    {CG_OP_CROSS_ENTROPY, "cross_entropy label smoothing", 2, {IN2(4, 5, NORMAL, true), IN1(4, LABELS, false)},
                                  NULL, build_cross_entropy_smoothed, SMOOTH},
    {CG_OP_GELU, "gelu tanh",                 1, {IN2(4, 5, SIGMOID_RANGE, true)},                    cg_gelu_tanh, NULL, SMOOTH},
    {CG_OP_BCE, "bce",                    2, {IN2(8, 1, PROBABILITY, true), IN1(8, TARGETS01, false)},
                                  NULL, build_bce, 1e-3f, 1e-3, 2e-2},
    {CG_OP_CROSS_ENTROPY, "cross_entropy",          2, {IN2(4, 5, NORMAL, true), IN1(4, LABELS, false)},
                                  NULL, build_cross_entropy, SMOOTH},
    {CG_OP_SUM, "sum",                    1, {IN2(3, 4, NORMAL, true)},                           NULL, build_sum,       SMOOTH},
    {CG_OP_SUM, "mean",                   1, {IN2(3, 4, NORMAL, true)},                           NULL, build_mean,      SMOOTH},
    {CG_OP_SCALE, "scale",                  1, {IN2(3, 4, NORMAL, true)},                           NULL, build_scale,     SMOOTH},
    {CG_OP_CONV2D, "conv2d",                 3, {IN4(2, 3, 5, 4, NORMAL, true), IN4(4, 3, 3, 3, NORMAL, true), IN1(4, NORMAL, true)},
                                  NULL, build_conv,      SMOOTH},
    {CG_OP_CONV2D, "conv2d stride 2 pad 0",  3, {IN4(2, 2, 7, 6, NORMAL, true), IN4(3, 2, 3, 2, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_conv_stride2, SMOOTH},
    {CG_OP_CONV2D, "conv2d no bias pad 2",   2, {IN4(1, 2, 4, 4, NORMAL, true), IN4(2, 2, 3, 3, NORMAL, true)},
                                  NULL, build_conv_no_bias, SMOOTH},
    {CG_OP_MAX_POOL2D, "max_pool2d",             1, {IN4(2, 3, 4, 6, SPREAD, true)},                     NULL, build_max_pool,  SMOOTH},
    {CG_OP_MAX_POOL2D, "max_pool2d 3x3 stride 1", 1, {IN4(1, 2, 5, 5, SPREAD, true)},                    NULL, build_max_pool_overlap, SMOOTH},
    {CG_OP_CONV2D_RELU_POOL, "conv2d_relu_max_pool2d", 3, {IN4(2, 2, 7, 5, NORMAL, true), IN4(3, 2, 3, 3, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_conv_relu_pool, SMOOTH},
    {CG_OP_BATCH_NORM2D, "batch_norm2d",           3, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_batch_norm, 1e-2f, 2e-3, 2e-2},
    {CG_OP_BATCH_NORM_ACT, "batch_norm2d_gelu",   3, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_batch_norm_gelu, 1e-2f, 2e-3, 2e-2},
    {CG_OP_BATCH_NORM_ACT, "batch_norm2d_relu",   3, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_batch_norm_relu, 1e-2f, 2e-3, 2e-2},
    {CG_OP_BATCH_NORM_ADD_RELU, "batch_norm2d_add_relu", 4, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true), IN4(4, 3, 2, 3, NORMAL, true)},
                                  NULL, build_batch_norm_add_relu, 1e-2f, 2e-3, 2e-2},
    {CG_OP_BATCH_NORM2D, "batch_norm2d synchronised", 3, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_batch_norm_synced, 1e-2f, 2e-3, 2e-2},
    {CG_OP_DROPOUT, "dropout",                1, {IN2(6, 5, NORMAL, true)},                           NULL, build_dropout,   SMOOTH},
    {CG_OP_RESHAPE, "reshape",                1, {IN2(3, 4, NORMAL, true)},                           NULL, build_reshape,   SMOOTH},
    {CG_OP_CAST, "cast",                   1, {IN2(3, 4, DYADIC, true)},                           NULL, build_cast_f16,  1.0f / 32, 1e-4, 6e-4},
    {CG_OP_CAST, "cast bf16",              1, {IN2(3, 4, DYADIC, true)},                           NULL, build_cast_bf16, 1.0f / 32, 1e-4, 4.5e-3},
    {CG_OP_LINEAR, "linear + relu",          3, {IN2(5, 4, NORMAL, true), IN2(3, 4, NORMAL, true), IN1(3, NORMAL, true)},
                                  NULL, build_linear_relu, 1e-3f, 2e-3, 2e-2},
};
// clang-format on

// ---- drawing the inputs and weighting the output -----------------------------------------------

typedef struct {
    cg_tensor *in[MAX_INPUTS];
    void *host[MAX_INPUTS]; // the inputs' values on the host (f32 or i32)
    cg_tensor *u, *w;       // the weights of a non-scalar output: loss = u^T out w
} case_state;

// Draw input i of case c on the host (s->host[i]) and give it to a new tensor on `device`.
static void draw_input(const op_case *c, int i, cg_rng *rng, case_state *s, cg_device device) {
    const input_spec *spec = &c->in[i];
    bool labels = spec->kind == LABELS;
    cg_tensor *x = cg_tensor_new(device, labels ? CG_I32 : CG_F32, spec->ndim, spec->shape);
    int64_t n = x->numel;
    float *u = cg_xmalloc((size_t)n * sizeof(float));
    cg_rng_uniform(rng, u, n, 0.0f, 1.0f);
    if (labels) {
        int64_t classes = c->in[0].shape[1];
        int32_t *v = cg_xmalloc((size_t)n * sizeof(int32_t));
        for (int64_t j = 0; j < n; j++)
            v[j] = (int32_t)(u[j] * (float)classes);
        s->host[i] = v;
    } else {
        float *v = cg_xmalloc((size_t)n * sizeof(float));
        if (spec->kind == NORMAL)
            cg_rng_normal(rng, v, n, 0.0f, 1.0f);
        if (spec->kind == SPREAD) {
            int32_t *rank = cg_xmalloc((size_t)n * sizeof(int32_t));
            cg_rng_permutation(rng, rank, n);
            for (int64_t j = 0; j < n; j++) v[j] = 0.1f * (float)(rank[j] - n / 2);
            free(rank);
        }
        for (int64_t j = 0; j < n; j++) {
            if (spec->kind == AWAY_FROM_0)
                v[j] = (j % 2 ? -1.0f : 1.0f) * (0.2f + 1.3f * u[j]);
            if (spec->kind == SIGMOID_RANGE)
                v[j] = -3.0f + 6.0f * u[j];
            if (spec->kind == PROBABILITY)
                v[j] = 0.05f + 0.9f * u[j];
            if (spec->kind == TARGETS01)
                v[j] = u[j] < 0.5f ? 0.0f : 1.0f;
            if (spec->kind == DYADIC)
                v[j] = (float)((int)(u[j] * 129.0f) - 64) / 32.0f;
        }
        s->host[i] = v;
    }
    free(u);
    cg_tensor_copy_from_host(x, s->host[i], n);
    x->requires_grad = spec->requires_grad;
    s->in[i] = x;
}

// The scalar loss of a case: out itself times 1.7 when it is a scalar, else u^T out w with u, w
// fixed random vectors, so that element (r, c) of the output has its own weight u[r] w[c].
static cg_tensor *case_loss(cg_tape *t, const op_case *c, case_state *s, cg_rng *rng) {
    cg_tensor *out = c->unary ? c->unary(t, s->in[0]) : c->build(t, s->in);
    if (out->numel == 1)
        return cg_scale(t, out, 1.7f);
    CG_CHECK(out->ndim == 2, "case %s gives a %d-D output; weight it here", c->name, out->ndim);
    if (s->u == NULL) { // drawn once per case, the same for every evaluation
        s->u = cg_tensor_new(t->device, CG_F32, 2, (int64_t[]){out->shape[0], 1});
        s->w = cg_tensor_new(t->device, CG_F32, 2, (int64_t[]){out->shape[1], 1});
        float host[256];
        CG_CHECK(out->shape[0] <= 256 && out->shape[1] <= 256, "case %s: output too large", c->name);
        cg_rng_uniform(rng, host, out->shape[0], 0.5f, 1.5f);
        cg_tensor_copy_from_host(s->u, host, out->shape[0]);
        cg_rng_normal(rng, host, out->shape[1], 0.0f, 1.0f);
        cg_tensor_copy_from_host(s->w, host, out->shape[1]);
    }
    cg_tensor *ow = cg_matmul(t, out, s->w, false, false); // (M, 1)
    return cg_matmul(t, s->u, ow, true, false);            // (1, M) @ (M, 1) -> (1, 1)
}

// The random stream of a case, from its name (FNV-1a): a case draws the same inputs whatever rows
// are added before it.
static uint32_t case_stream(const op_case *c) {
    uint32_t h = 2166136261u;
    for (const char *p = c->name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

// Every op of the enum has a row in the op table and at least one case here: a new op without
// its test rows fails both test_grad and test_cuda: one fail() per op without one.
static void check_coverage(const char *test) {
    for (int op = 0; op < CG_NUM_OPS; op++) {
        bool found = false;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) found |= (int)cases[c].op == op;
        if (!found) fail(test, "coverage: op %s (%d) has no row in tests/op_cases.h", cg_op_name(op), op);
    }
}

#endif

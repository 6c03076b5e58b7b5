// test_grad.c: every op of core/ops.h, backward against central finite differences on small random
// inputs, one row per op in the table below (a new op adds a row). Outputs are weighted down to a
// scalar loss so every element's gradient counts. CPU only; CPU-vs-CUDA is another test.
#include "core/ops.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 3

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
    const char *name;
    int n_in;
    input_spec in[MAX_INPUTS];
    cg_tensor *(*build)(cg_tape *t, cg_tensor **in); // the op under test
    float step;                                      // finite-difference step h
    double atol, rtol;                               // |analytic - numeric| <= atol + rtol |numeric|
} grad_case;

// ---- the op under test, one function per row --------------------------------------------------

static cg_tensor *build_matmul_nn(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], false, false); }
static cg_tensor *build_matmul_nt(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], false, true); }
static cg_tensor *build_matmul_tn(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], true, false); }
static cg_tensor *build_matmul_tt(cg_tape *t, cg_tensor **in) { return cg_matmul(t, in[0], in[1], true, true); }
static cg_tensor *build_add(cg_tape *t, cg_tensor **in) { return cg_add(t, in[0], in[1]); }
static cg_tensor *build_relu(cg_tape *t, cg_tensor **in) { return cg_relu(t, in[0]); }
static cg_tensor *build_sigmoid(cg_tape *t, cg_tensor **in) { return cg_sigmoid(t, in[0]); }
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
static cg_tensor *build_batch_norm(cg_tape *t, cg_tensor **in) {
    static cg_tensor *running_mean, *running_var;
    if (running_mean == NULL) {
        running_mean = cg_tensor_new(cg_cpu(), CG_F32, 1, (int64_t[]){3});
        running_var = cg_tensor_new(cg_cpu(), CG_F32, 1, (int64_t[]){3});
        cg_tensor_fill(running_mean, 0.0f);
        cg_tensor_fill(running_var, 1.0f);
    }
    return cg_flatten(t, cg_batch_norm2d(t, in[0], in[1], in[2], running_mean, running_var, true, 0.1f, 1e-5f));
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
static const grad_case cases[] = {
    // matmul: a stored (M, K), or (K, M) when trans_a; b stored (K, N), or (N, K) when trans_b; M 3, K 4, N 5
    {"matmul",                 2, {IN2(3, 4, NORMAL, true), IN2(4, 5, NORMAL, true)},  build_matmul_nn, SMOOTH},
    {"matmul trans_b",         2, {IN2(3, 4, NORMAL, true), IN2(5, 4, NORMAL, true)},  build_matmul_nt, SMOOTH},
    {"matmul trans_a",         2, {IN2(4, 3, NORMAL, true), IN2(4, 5, NORMAL, true)},  build_matmul_tn, SMOOTH},
    {"matmul trans_a trans_b", 2, {IN2(4, 3, NORMAL, true), IN2(5, 4, NORMAL, true)},  build_matmul_tt, SMOOTH},
    {"matmul (b only)",        2, {IN2(3, 4, NORMAL, false), IN2(5, 4, NORMAL, true)}, build_matmul_nt, SMOOTH},
    {"matmul (a only)",        2, {IN2(4, 3, NORMAL, true), IN2(4, 5, NORMAL, false)}, build_matmul_tn, SMOOTH},
    {"linear",                 3, {IN2(5, 4, NORMAL, true), IN2(3, 4, NORMAL, true), IN1(3, NORMAL, true)},
                                  build_linear,    SMOOTH},
    {"linear (no bias, W only)", 2, {IN2(5, 4, NORMAL, false), IN2(3, 4, NORMAL, true)},
                                  build_linear_no_bias, SMOOTH},
    {"add",                    2, {IN2(3, 4, NORMAL, true), IN2(3, 4, NORMAL, true)},  build_add,       SMOOTH},
    {"add bias",               2, {IN2(6, 4, NORMAL, true), IN1(4, NORMAL, true)},     build_add,       SMOOTH},
    {"add bias (bias only)",   2, {IN2(6, 4, NORMAL, false), IN1(4, NORMAL, true)},    build_add,       SMOOTH},
    {"add same input twice",   1, {IN2(3, 4, NORMAL, true)},                           build_add_self,  SMOOTH},
    {"relu",                   1, {IN2(4, 5, AWAY_FROM_0, true)},                      build_relu,      SMOOTH},
    {"sigmoid",                1, {IN2(4, 5, SIGMOID_RANGE, true)},                    build_sigmoid,   SMOOTH},
    {"bce",                    2, {IN2(8, 1, PROBABILITY, true), IN1(8, TARGETS01, false)},
                                  build_bce, 1e-3f, 1e-3, 2e-2},
    {"cross_entropy",          2, {IN2(4, 5, NORMAL, true), IN1(4, LABELS, false)},
                                  build_cross_entropy, SMOOTH},
    {"sum",                    1, {IN2(3, 4, NORMAL, true)},                           build_sum,       SMOOTH},
    {"mean",                   1, {IN2(3, 4, NORMAL, true)},                           build_mean,      SMOOTH},
    {"scale",                  1, {IN2(3, 4, NORMAL, true)},                           build_scale,     SMOOTH},
    {"conv2d",                 3, {IN4(2, 3, 5, 4, NORMAL, true), IN4(4, 3, 3, 3, NORMAL, true), IN1(4, NORMAL, true)},
                                  build_conv,      SMOOTH},
    {"conv2d stride 2 pad 0",  3, {IN4(2, 2, 7, 6, NORMAL, true), IN4(3, 2, 3, 2, NORMAL, true), IN1(3, NORMAL, true)},
                                  build_conv_stride2, SMOOTH},
    {"conv2d no bias pad 2",   2, {IN4(1, 2, 4, 4, NORMAL, true), IN4(2, 2, 3, 3, NORMAL, true)},
                                  build_conv_no_bias, SMOOTH},
    {"max_pool2d",             1, {IN4(2, 3, 4, 6, SPREAD, true)},                     build_max_pool,  SMOOTH},
    {"max_pool2d 3x3 stride 1", 1, {IN4(1, 2, 5, 5, SPREAD, true)},                    build_max_pool_overlap, SMOOTH},
    {"conv2d_relu_max_pool2d", 3, {IN4(2, 2, 7, 5, NORMAL, true), IN4(3, 2, 3, 3, NORMAL, true), IN1(3, NORMAL, true)},
                                  build_conv_relu_pool, SMOOTH},
    {"batch_norm2d",           3, {IN4(4, 3, 2, 3, NORMAL, true), IN1(3, NORMAL, true), IN1(3, NORMAL, true)},
                                  build_batch_norm, 1e-2f, 2e-3, 2e-2},
    {"dropout",                1, {IN2(6, 5, NORMAL, true)},                           build_dropout,   SMOOTH},
    {"reshape",                1, {IN2(3, 4, NORMAL, true)},                           build_reshape,   SMOOTH},
    {"cast",                   1, {IN2(3, 4, DYADIC, true)},                           build_cast_f16,  1.0f / 32, 1e-4, 6e-4},
    {"cast bf16",              1, {IN2(3, 4, DYADIC, true)},                           build_cast_bf16, 1.0f / 32, 1e-4, 4.5e-3},
    {"linear + relu",          3, {IN2(5, 4, NORMAL, true), IN2(3, 4, NORMAL, true), IN1(3, NORMAL, true)},
                                  build_linear_relu, 1e-3f, 2e-3, 2e-2},
};
// clang-format on

// ---- the harness -------------------------------------------------------------------------------

typedef struct {
    cg_tensor *in[MAX_INPUTS];
    void *host[MAX_INPUTS]; // the inputs' values on the host (f32 or i32)
    cg_tensor *u, *w;       // the weights of a non-scalar output: loss = u^T out w
} case_state;

static void draw_input(const grad_case *c, int i, cg_rng *rng, case_state *s) {
    const input_spec *spec = &c->in[i];
    bool labels = spec->kind == LABELS;
    cg_tensor *x = cg_tensor_new(cg_cpu(), labels ? CG_I32 : CG_F32, spec->ndim, spec->shape);
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
static cg_tensor *case_loss(cg_tape *t, const grad_case *c, case_state *s, cg_rng *rng) {
    cg_tensor *out = c->build(t, s->in);
    if (out->numel == 1)
        return cg_scale(t, out, 1.7f);
    CG_CHECK(out->ndim == 2, "test_grad: case %s gives a %d-D output; weight it here", c->name, out->ndim);
    if (s->u == NULL) { // drawn once per case, the same for every evaluation
        s->u = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){out->shape[0], 1});
        s->w = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){out->shape[1], 1});
        float host[256];
        CG_CHECK(out->shape[0] <= 256 && out->shape[1] <= 256, "test_grad: output too large");
        cg_rng_uniform(rng, host, out->shape[0], 0.5f, 1.5f);
        cg_tensor_copy_from_host(s->u, host, out->shape[0]);
        cg_rng_normal(rng, host, out->shape[1], 0.0f, 1.0f);
        cg_tensor_copy_from_host(s->w, host, out->shape[1]);
    }
    cg_tensor *ow = cg_matmul(t, out, s->w, false, false); // (M, 1)
    return cg_matmul(t, s->u, ow, true, false);            // (1, M) @ (M, 1) -> (1, 1)
}

// Run one row: analytic gradients from the tape, then a central difference for every element of
// every input that requires a gradient. Returns the number of elements that differ.
static int run_case(const grad_case *c, cg_tape *t, uint32_t stream) {
    cg_rng rng = cg_rng_new(2024, stream);
    case_state s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < c->n_in; i++)
        draw_input(c, i, &rng, &s);

    // Analytic: the loss built twice on one tape and added, then one backward. Each input then
    // receives its gradient from two nodes, so a backward that overwrites (=) instead of
    // accumulating (+=) shows as half the gradient; the sum is halved before the comparison.
    t->grad_enabled = true;
    cg_tensor *loss = cg_add(t, case_loss(t, c, &s, &rng), case_loss(t, c, &s, &rng));
    cg_tape_backward(t, loss);
    float *analytic[MAX_INPUTS] = {NULL};
    int bad = 0;
    for (int i = 0; i < c->n_in; i++) {
        cg_tensor *x = s.in[i];
        if (!c->in[i].requires_grad) {
            if (x->grad != NULL) {
                fprintf(stderr, "FAIL %s: input %d does not require a gradient but got one\n", c->name, i);
                bad++;
            }
            continue;
        }
        if (x->grad == NULL) {
            fprintf(stderr, "FAIL %s: input %d requires a gradient but backward gave none\n", c->name, i);
            bad++;
            continue;
        }
        analytic[i] = cg_xmalloc((size_t)x->numel * sizeof(float));
        cg_tensor_copy_to_host(analytic[i], x->grad, x->numel);
        for (int64_t j = 0; j < x->numel; j++)
            analytic[i][j] *= 0.5f;
    }
    cg_tape_clear(t);
    for (int i = 0; i < c->n_in; i++)
        s.in[i]->grad = NULL; // it lived in the tape's arena

    // Numeric: (loss(x + h) - loss(x - h)) / 2h, one element at a time, recording nothing.
    t->grad_enabled = false;
    double max_abs = 0.0, max_rel = 0.0;
    int checked = 0;
    for (int i = 0; i < c->n_in; i++) {
        if (analytic[i] == NULL)
            continue;
        cg_tensor *x = s.in[i];
        float *v = s.host[i];
        for (int64_t j = 0; j < x->numel; j++) {
            float saved = v[j];
            double plus, minus;
            v[j] = saved + c->step;
            cg_tensor_copy_from_host(x, v, x->numel);
            plus = cg_tensor_item(case_loss(t, c, &s, &rng));
            cg_tape_clear(t);
            v[j] = saved - c->step;
            cg_tensor_copy_from_host(x, v, x->numel);
            minus = cg_tensor_item(case_loss(t, c, &s, &rng));
            cg_tape_clear(t);
            v[j] = saved;
            cg_tensor_copy_from_host(x, v, x->numel);

            double numeric = (plus - minus) / (2.0 * (double)c->step);
            double got = analytic[i][j];
            double err = fabs(got - numeric);
            double rel = err / fmax(fabs(numeric), 1e-6);
            max_abs = fmax(max_abs, err);
            if (fabs(numeric) > 1e-3)
                max_rel = fmax(max_rel, rel);
            checked++;
            if (err > c->atol + c->rtol * fabs(numeric)) {
                fprintf(stderr, "FAIL %s: input %d index %lld: numeric %.6g, analytic %.6g (error %.3g)\n", c->name, i,
                        (long long)j, numeric, got, err);
                bad++;
            }
        }
    }
    printf("%-24s %3d elements  max abs error %.2e  max rel error %.2e  %s\n", c->name, checked, max_abs, max_rel,
           bad ? "FAILED" : "ok");
    if (checked == 0 && bad == 0) {
        fprintf(stderr, "FAIL %s: no element was checked\n", c->name);
        bad++;
    }

    for (int i = 0; i < c->n_in; i++) {
        free(analytic[i]);
        free(s.host[i]);
        cg_tensor_free(s.in[i]);
    }
    cg_tensor_free(s.u);
    cg_tensor_free(s.w);
    return bad;
}

// Every op of the enum has at least one row (a new op without a row fails here).
static int check_coverage(void) {
    static const struct {
        cg_op op;
        const char *row;
    } rows[] = {{CG_OP_MATMUL, "matmul"},   {CG_OP_LINEAR, "linear"}, {CG_OP_ADD, "add"},    {CG_OP_RELU, "relu"},
                {CG_OP_SIGMOID, "sigmoid"}, {CG_OP_BCE, "bce"},    {CG_OP_CROSS_ENTROPY, "cross_entropy"},
                {CG_OP_SUM, "sum"},         {CG_OP_SCALE, "scale"}, {CG_OP_CONV2D, "conv2d"},
                {CG_OP_MAX_POOL2D, "max_pool2d"}, {CG_OP_RESHAPE, "reshape"},
                {CG_OP_BATCH_NORM2D, "batch_norm2d"}, {CG_OP_DROPOUT, "dropout"}, {CG_OP_CAST, "cast"},
                {CG_OP_CONV2D_RELU_POOL, "conv2d_relu_max_pool2d"}};
    int n_rows = (int)(sizeof rows / sizeof rows[0]);
    if (n_rows != CG_NUM_OPS) {
        fprintf(stderr, "FAIL coverage: ops.h has %d ops, this test knows %d; add a row for the new op\n", CG_NUM_OPS,
                n_rows);
        return 1;
    }
    int bad = 0;
    for (int r = 0; r < n_rows; r++) {
        bool found = false;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            found |= strcmp(cases[c].name, rows[r].row) == 0;
        if (!found || strcmp(cg_op_name(rows[r].op), rows[r].row) != 0) {
            fprintf(stderr, "FAIL coverage: op %s (%d) has no row\n", cg_op_name(rows[r].op), rows[r].op);
            bad++;
        }
    }
    return bad;
}

// The fused block against conv2d, relu, max_pool2d in a row: the same output and the same
// gradients of x and the weights, to the last bit (the fused kernel does the same arithmetic in
// the same order); the bias gradient, a sum taken in another order, to 1e-6 relative.
static int check_fused_block(cg_tape *t) {
    cg_rng rng = cg_rng_new(7, 0);
    int64_t xs[4] = {5, 3, 9, 8}, ws[4] = {6, 3, 3, 3}, bs[1] = {6};
    cg_tensor *in[3] = {cg_tensor_new(cg_cpu(), CG_F32, 4, xs), cg_tensor_new(cg_cpu(), CG_F32, 4, ws),
                        cg_tensor_new(cg_cpu(), CG_F32, 1, bs)};
    cg_tensor *weights = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){6 * 4 * 4, 1});
    float host[5 * 3 * 9 * 8];
    for (int i = 0; i < 3; i++) {
        cg_rng_normal(&rng, host, in[i]->numel, 0.0f, 1.0f);
        cg_tensor_copy_from_host(in[i], host, in[i]->numel);
        in[i]->requires_grad = true;
    }
    cg_rng_normal(&rng, host, weights->numel, 0.0f, 1.0f);
    cg_tensor_copy_from_host(weights, host, weights->numel);
    float *result[2][4]; // [fused][output, dx, dw, db]
    int64_t sizes[4] = {5 * 6 * 4 * 4, in[0]->numel, in[1]->numel, in[2]->numel};
    for (int fused = 0; fused < 2; fused++) {
        t->grad_enabled = true;
        cg_tensor *y = fused ? cg_conv2d_relu_max_pool2d(t, in[0], in[1], in[2], 1, 1)
                             : cg_max_pool2d(t, cg_relu(t, cg_conv2d(t, in[0], in[1], in[2], 1, 1)), 2, 2);
        cg_tensor *flat = cg_reshape(t, y, 2, (int64_t[]){5, 6 * 4 * 4});
        cg_tape_backward(t, cg_sum(t, cg_matmul(t, flat, weights, false, false)));
        const cg_tensor *from[4] = {y, in[0]->grad, in[1]->grad, in[2]->grad};
        for (int i = 0; i < 4; i++) {
            result[fused][i] = cg_xmalloc((size_t)sizes[i] * sizeof(float));
            cg_tensor_copy_to_host(result[fused][i], from[i], sizes[i]);
        }
        cg_tape_clear(t);
        for (int i = 0; i < 3; i++) in[i]->grad = NULL;
    }
    static const char *what[4] = {"output", "dx", "dw", "dbias"};
    int bad = 0, positive = 0;
    for (int64_t j = 0; j < sizes[0]; j++) positive += result[0][0][j] > 0.0f;
    if (positive == 0 || positive == sizes[0]) {
        fprintf(stderr, "FAIL fused block: %d of %lld outputs positive; the ReLU is not exercised\n", positive,
                (long long)sizes[0]);
        bad++;
    }
    for (int i = 0; i < 4; i++) {
        bool same = i == 3 || memcmp(result[0][i], result[1][i], (size_t)sizes[i] * sizeof(float)) == 0;
        for (int64_t j = 0; i == 3 && j < sizes[i]; j++) // dbias
            same &= fabsf(result[0][i][j] - result[1][i][j]) <= 1e-6f * fabsf(result[0][i][j]) + 1e-7f;
        if (!same) {
            fprintf(stderr, "FAIL fused block: %s differs from conv2d, relu, max_pool2d in a row\n", what[i]);
            bad++;
        }
        free(result[0][i]);
        free(result[1][i]);
    }
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
    cg_tensor_free(weights);
    if (!bad) printf("fused block               output and gradients as the three ops\n");
    return bad;
}

int main(void) {
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);
    int bad = check_coverage();
    bad += check_fused_block(t);
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        bad += run_case(&cases[i], t, (uint32_t)(100 + i));
    cg_tape_free(t);
    if (bad) {
        fprintf(stderr, "test_grad: %d failure(s)\n", bad);
        return 1;
    }
    printf("test_grad: %d cases passed\n", n);
    return 0;
}

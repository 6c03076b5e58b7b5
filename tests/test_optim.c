// test_optim.c: SGD (momentum, dampening, Nesterov, weight decay L2 or decoupled) and Adam / AdamW
// over 3 steps, against PyTorch's formulas written out here in double, with a constant learning
// rate and with one changed before every step (a schedule); plus numbers derived by hand: the
// weight decay spared to parameters of one dimension, and a kernel call recorded once and
// replayed (as a CUDA Graph replays it) reading the learning rate written between replays; and
// frozen parameters (requires_grad false) that never move.
// Expected values never come from the engine's kernels; gradients are set by hand, not by backward.
#include "core/kernels.h"
#include "core/train/optim.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 3

// ---- the parameter block: two parameters of 5 and 3 floats (each padded to 16) -----------------

enum { N_W = 5, N_B = 3, N_ALL = N_W + N_B };

static const double initial_values[N_ALL] = {0.5, -1.25, 2.0, 0.0, -0.3, 0.75, -2.5, 1.0};

// The gradient of element i at step t (1-based): mixed signs and magnitudes that change every
// step, so that the first-step special cases (momentum buffer, bias correction) show.
static double gradient_at(int i, int t) {
    static const double base[N_ALL] = {0.1, -0.4, 1.5, -0.02, 0.7, -1.1, 0.3, 2.0};
    return base[i] * (1.0 + 0.5 * t) + 0.05 * (t % 2 ? 1.0 : -1.0) * (i + 1);
}

typedef struct {
    cg_params *params;
    cg_tensor *w, *b;
} block;

static block make_block(void) {
    block k;
    k.params = cg_params_new(cg_cpu());
    k.w = cg_params_add(k.params, "w", 1, (int64_t[]){N_W});
    k.b = cg_params_add(k.params, "b", 1, (int64_t[]){N_B});
    float values[N_ALL];
    for (int i = 0; i < N_ALL; i++)
        values[i] = (float)initial_values[i];
    cg_tensor_copy_from_host(k.w, values, N_W);
    cg_tensor_copy_from_host(k.b, values + N_W, N_B);
    return k;
}

static void set_gradients(block *k, int t) {
    float g[N_ALL];
    for (int i = 0; i < N_ALL; i++)
        g[i] = (float)gradient_at(i, t);
    cg_tensor_copy_from_host(k->w->grad, g, N_W);
    cg_tensor_copy_from_host(k->b->grad, g + N_W, N_B);
}

static void read_values(const block *k, float *out) {
    cg_tensor_copy_to_host(out, k->w, N_W);
    cg_tensor_copy_to_host(out + N_W, k->b, N_B);
}

// ---- the reference: PyTorch's formulas, one element at a time, in double ----------------------

typedef struct {
    double p[N_ALL];
    double buf[N_ALL]; // SGD momentum buffer, or Adam's m
    double v[N_ALL];   // Adam's v
    int t;
} reference_state;

// torch.optim.SGD, one step at learning rate lr:
//   g = grad + wd p;  if momentum: b = g (t = 1) else momentum b + (1 - dampening) g;
//   g = g + momentum b (nesterov) or b;  p = p - lr g
// Decoupled weight decay (bench/torch_train.py's, AdamW's rule given to SGD): p = p (1 - lr wd)
// first, and g = grad.
static void reference_sgd(reference_state *s, const cg_optim_config *c, double lr) {
    s->t++;
    double mu = c->momentum, damp = c->dampening, wd = c->weight_decay;
    for (int i = 0; i < N_ALL; i++) {
        double g = gradient_at(i, s->t);
        if (c->decoupled_weight_decay)
            s->p[i] *= 1.0 - lr * wd;
        else
            g += wd * s->p[i];
        if (mu != 0.0) {
            s->buf[i] = s->t == 1 ? g : mu * s->buf[i] + (1.0 - damp) * g;
            g = c->nesterov ? g + mu * s->buf[i] : s->buf[i];
        }
        s->p[i] -= lr * g;
    }
}

// torch.optim.Adam / AdamW, one step:
//   Adam: g = grad + wd p;  AdamW: p = p (1 - lr wd);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
static void reference_adam(reference_state *s, const cg_optim_config *c, double lr) {
    s->t++;
    double b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    double bc1 = 1.0 - pow(b1, s->t), bc2 = 1.0 - pow(b2, s->t);
    for (int i = 0; i < N_ALL; i++) {
        double g = gradient_at(i, s->t);
        if (c->kind == CG_OPTIM_ADAMW || c->decoupled_weight_decay)
            s->p[i] *= 1.0 - lr * wd;
        else
            g += wd * s->p[i];
        s->buf[i] = b1 * s->buf[i] + (1.0 - b1) * g;
        s->v[i] = b2 * s->v[i] + (1.0 - b2) * g * g;
        s->p[i] -= lr / bc1 * s->buf[i] / (sqrt(s->v[i]) / sqrt(bc2) + eps);
    }
}

// ---- the cases ----------------------------------------------------------------------------------

typedef struct {
    const char *name;
    cg_optim_config config;
    float lr_by_step[STEPS]; // each step's learning rate (cg_optimizer_set_lr before it); 0: config.lr
} optim_case;

static cg_optim_config sgd(float lr, float momentum, float dampening, float weight_decay, bool nesterov) {
    cg_optim_config c = cg_sgd_config(lr);
    c.momentum = momentum;
    c.dampening = dampening;
    c.weight_decay = weight_decay;
    c.nesterov = nesterov;
    return c;
}

static cg_optim_config adam(cg_optim_config c, float beta1, float beta2, float weight_decay) {
    c.beta1 = beta1;
    c.beta2 = beta2;
    c.weight_decay = weight_decay;
    return c;
}

// Run one case for STEPS steps and compare every parameter after every step.
static void run_case(const optim_case *oc) {
    block k = make_block();
    cg_optimizer *o = cg_optimizer_new(k.params, oc->config);
    reference_state ref;
    memset(&ref, 0, sizeof ref);
    for (int i = 0; i < N_ALL; i++)
        ref.p[i] = initial_values[i];
    double max_err = 0.0;
    for (int t = 1; t <= STEPS; t++) {
        set_gradients(&k, t);
        float lr = oc->lr_by_step[t - 1] > 0 ? oc->lr_by_step[t - 1] : oc->config.lr;
        if (oc->lr_by_step[t - 1] > 0) cg_optimizer_set_lr(o, lr);
        cg_optimizer_step(o);
        if (oc->config.kind == CG_OPTIM_SGD)
            reference_sgd(&ref, &oc->config, lr);
        else
            reference_adam(&ref, &oc->config, lr);
        float got[N_ALL];
        read_values(&k, got);
        for (int i = 0; i < N_ALL; i++) {
            double err = fabs((double)got[i] - ref.p[i]);
            max_err = err > max_err ? err : max_err;
            // float arithmetic on values of order 1: a few ulps per step
            if (err > 2e-6 + 2e-6 * fabs(ref.p[i]))
                fail(oc->name, "step %d, parameter %d: expected %.9f, got %.9f (error %.3g)", t, i, ref.p[i],
                     (double)got[i], err);
        }
    }
    float steps = 0.0f; // the step count lives on the device
    cg_device_copy(cg_cpu(), &steps, k.params->device, o->counter, sizeof steps);
    if (steps != (float)STEPS) fail(oc->name, "steps: expected %d, got %g", STEPS, (double)steps);
    // The padding between and after the parameters is not touched (zero values, zero gradients).
    for (int64_t i = 0; i < k.params->numel; i++) {
        bool in_w = i >= k.params->offsets[0] && i < k.params->offsets[0] + N_W;
        bool in_b = i >= k.params->offsets[1] && i < k.params->offsets[1] + N_B;
        if (!in_w && !in_b && k.params->values[i] != 0.0f)
            fail(oc->name, "padding float %lld changed to %g", (long long)i, (double)k.params->values[i]);
    }
    printf("%-28s %d steps, max abs error %.3g\n", oc->name, STEPS, max_err);
    cg_optimizer_free(o);
    cg_params_free(k.params);
}

// ---- numbers derived by hand ---------------------------------------------------------------------

static void expect_close(const char *what, double expected, double got, double tol) {
    if (!(fabs(expected - got) <= tol))
        fail(what, "expected %.9f, got %.9f (tolerance %.1g)", expected, got, tol);
}

static void hand_derived(void) {
    // Adam, first step: m1 = (1 - b1) g and v1 = (1 - b2) g^2, so after bias correction
    // m1 / (1 - b1) = g and sqrt(v1 / (1 - b2)) = |g|: the step is lr * g / (|g| + eps), that is
    // lr * sign(g) up to eps / |g|, whatever the size of g. With lr 0.1, p = 1 and g = 0.5 or
    // g = -3e-4: p = 0.9 and p = 1.1.
    {
        cg_params *params = cg_params_new(cg_cpu());
        cg_tensor *p = cg_params_add(params, "p", 1, (int64_t[]){2});
        cg_tensor_copy_from_host(p, (float[]){1.0f, 1.0f}, 2);
        cg_tensor_copy_from_host(p->grad, (float[]){0.5f, -3e-4f}, 2);
        cg_optimizer *o = cg_optimizer_new(params, cg_adam_config(0.1f));
        cg_optimizer_step(o);
        float got[2];
        cg_tensor_copy_to_host(got, p, 2);
        expect_close("adam first step, g = 0.5", 0.9, got[0], 1e-6);
        expect_close("adam first step, g = -3e-4", 1.1, got[1], 1e-5);
        cg_optimizer_free(o);
        cg_params_free(params);
    }
    // SGD, momentum 0.9, lr 0.1, constant gradient 1, p0 = 0:
    //   step 1: b = 1,                 p = -0.1
    //   step 2: b = 0.9 * 1 + 1 = 1.9,   p = -0.1 - 0.19 = -0.29
    //   step 3: b = 0.9 * 1.9 + 1 = 2.71, p = -0.29 - 0.271 = -0.561
    // With Nesterov the step uses g + 0.9 b: 1.9, 2.71, 3.439, so p = -0.19, -0.461, -0.8049.
    for (int nesterov = 0; nesterov <= 1; nesterov++) {
        static const double expected[2][3] = {{-0.1, -0.29, -0.561}, {-0.19, -0.461, -0.8049}};
        cg_params *params = cg_params_new(cg_cpu());
        cg_tensor *p = cg_params_add(params, "p", 1, (int64_t[]){1});
        cg_optimizer *o = cg_optimizer_new(params, sgd(0.1f, 0.9f, 0.0f, 0.0f, nesterov));
        for (int t = 0; t < 3; t++) {
            cg_tensor_fill(p->grad, 1.0f);
            cg_optimizer_step(o);
            char what[64];
            snprintf(what, sizeof what, "sgd momentum%s by hand, step %d", nesterov ? " nesterov" : "", t + 1);
            expect_close(what, expected[nesterov][t], cg_tensor_item(p), 1e-6);
        }
        cg_optimizer_free(o);
        cg_params_free(params);
    }
    // AdamW with a zero gradient only decays: p = 2 (1 - lr wd) per step; lr 0.1, wd 0.5:
    // 2 * 0.95 = 1.9, then 1.805 (m = v = 0, so the Adam part adds 0 / (0 + eps) = 0).
    {
        cg_params *params = cg_params_new(cg_cpu());
        cg_tensor *p = cg_params_add(params, "p", 1, (int64_t[]){1});
        cg_tensor_fill(p, 2.0f);
        cg_optim_config c = cg_adamw_config(0.1f);
        c.weight_decay = 0.5f;
        cg_optimizer *o = cg_optimizer_new(params, c);
        cg_optimizer_step(o);
        expect_close("adamw zero gradient, step 1", 1.9, cg_tensor_item(p), 1e-6);
        cg_optimizer_step(o);
        expect_close("adamw zero gradient, step 2", 1.805, cg_tensor_item(p), 1e-6);
        cg_optimizer_free(o);
        cg_params_free(params);
    }
    printf("hand-derived: adam first step = lr sign(g); sgd momentum and nesterov; adamw decay\n");
}

// PyTorch's defaults (optim.h).
static void defaults(void) {
    cg_optim_config s = cg_sgd_config(0.5f), a = cg_adam_config(1e-3f), w = cg_adamw_config(1e-3f);
    if (s.kind != CG_OPTIM_SGD || s.lr != 0.5f || s.momentum != 0 || s.dampening != 0 || s.weight_decay != 0 ||
        s.nesterov)
        fail("defaults", "sgd: lr %g momentum %g dampening %g weight_decay %g nesterov %d", (double)s.lr,
             (double)s.momentum, (double)s.dampening, (double)s.weight_decay, s.nesterov);
    if (a.kind != CG_OPTIM_ADAM || a.beta1 != 0.9f || a.beta2 != 0.999f || a.eps != 1e-8f || a.weight_decay != 0)
        fail("defaults", "adam: betas (%g, %g) eps %g weight_decay %g", (double)a.beta1, (double)a.beta2, (double)a.eps,
             (double)a.weight_decay);
    if (w.kind != CG_OPTIM_ADAMW || w.beta1 != 0.9f || w.beta2 != 0.999f || w.eps != 1e-8f || w.weight_decay != 1e-2f)
        fail("defaults", "adamw: betas (%g, %g) eps %g weight_decay %g", (double)w.beta1, (double)w.beta2,
             (double)w.eps, (double)w.weight_decay);
}

// zero_grad clears every gradient of the block.
static void zero_grad(void) {
    block k = make_block();
    set_gradients(&k, 1);
    cg_optimizer *o = cg_optimizer_new(k.params, cg_sgd_config(0.1f));
    cg_optimizer_zero_grad(o);
    for (int64_t i = 0; i < k.params->numel; i++)
        if (k.params->grads[i] != 0.0f)
            fail("zero_grad", "gradient float %lld is %g", (long long)i, (double)k.params->grads[i]);
    cg_optimizer_free(o);
    cg_params_free(k.params);
}

// Frozen parameters (requires_grad false) never move, whatever their gradient, weight decay and
// momentum, as PyTorch skips a parameter whose .grad is None; no_decay_bn_bias leaves parameters of
// one dimension undecayed and decays the others (PyTorch's two parameter groups).
static void frozen_and_exempt(void) {
    cg_params *p = cg_params_new(cg_cpu());
    cg_tensor *m = cg_params_add(p, "m", 2, (int64_t[]){2, 2});  // a matrix: decayed
    cg_tensor *v = cg_params_add(p, "v", 1, (int64_t[]){3});     // a vector (bias, BatchNorm): not decayed
    cg_tensor *f = cg_params_add(p, "f", 1, (int64_t[]){2});     // frozen
    cg_tensor *g = cg_params_add(p, "g", 2, (int64_t[]){1, 2});  // a matrix after the frozen one: decayed
    cg_tensor *all[4] = {m, v, f, g};
    for (int i = 0; i < 4; i++) {
        float ones[4] = {1, 1, 1, 1};
        cg_tensor_copy_from_host(all[i], ones, all[i]->numel);
    }
    f->requires_grad = false;
    cg_optim_config c = sgd(0.5f, 0.9f, 0.0f, 0.1f, true);
    c.no_decay_bn_bias = true;
    cg_optimizer *o = cg_optimizer_new(p, c);
    for (int step = 0; step < 3; step++) { // zero gradients: only weight decay can move a parameter
        cg_optimizer_zero_grad(o);
        for (int64_t i = 0; i < f->numel; i++) ((float *)f->grad->data)[i] = 5.0f; // ignored: frozen
        cg_optimizer_step(o);
    }
    float got[4];
    // m and g: each step g = 0.1 p, b = 0.9 b + g, p -= 0.5 (g + 0.9 b): they shrink; v and f stay 1.
    const char *names[4] = {"m (decayed)", "v (1-dim, exempt)", "f (frozen)", "g (decayed)"};
    for (int i = 0; i < 4; i++) {
        cg_tensor_copy_to_host(got, all[i], all[i]->numel);
        bool moved = got[0] != 1.0f;
        if (moved != (i == 0 || i == 3)) fail(names[i], "is %g after 3 steps", (double)got[0]);
    }
    cg_optimizer_free(o);
    cg_params_free(p);
    printf("frozen and exempt parameters: the frozen one and the 1-dim one stay at 1, the matrices decay\n");
}

static cg_optim_config decoupled(cg_optim_config c) {
    c.decoupled_weight_decay = true;
    return c;
}

// Weight decay spared to parameters of one dimension (no_decay_bn_bias): a (2, 2) weight decays,
// a (2,) bias does not. lr 0.1, wd 0.5, every value 2, gradient 0 (so only the decay moves them):
//   SGD L2 and SGD / AdamW decoupled: w = 2 - 0.1 (0.5 x 2) = 2 (1 - 0.1 x 0.5) = 1.9; b = 2.
//   Adam L2: w's gradient is 0.5 x 2 = 1, and Adam's first step is lr sign(g): w = 1.9; b = 2.
static void decay_exemption(void) {
    const char *names[] = {"sgd L2", "sgd decoupled", "adam L2", "adamw"};
    for (int v = 0; v < 4; v++) {
        cg_params *params = cg_params_new(cg_cpu());
        cg_tensor *w = cg_params_add(params, "conv.weight", 2, (int64_t[]){2, 2});
        cg_tensor *b = cg_params_add(params, "bn.bias", 1, (int64_t[]){2});
        cg_tensor_fill(w, 2.0f), cg_tensor_fill(b, 2.0f);
        cg_optim_config c = v < 2 ? cg_sgd_config(0.1f) : v == 2 ? cg_adam_config(0.1f) : cg_adamw_config(0.1f);
        c.weight_decay = 0.5f;
        c.decoupled_weight_decay = v == 1;
        c.no_decay_bn_bias = true;
        cg_optimizer *o = cg_optimizer_new(params, c);
        cg_optimizer_step(o);
        float wv[4], bv[2];
        cg_tensor_copy_to_host(wv, w, 4), cg_tensor_copy_to_host(bv, b, 2);
        char what[64];
        snprintf(what, sizeof what, "%s, BatchNorm and biases spared: weight", names[v]);
        for (int i = 0; i < 4; i++) expect_close(what, 1.9, wv[i], 1e-6);
        snprintf(what, sizeof what, "%s, BatchNorm and biases spared: bias", names[v]);
        for (int i = 0; i < 2; i++) expect_close(what, 2.0, bv[i], 0);
        for (int64_t i = 0; i < params->numel; i++) { // the padding stays zero
            bool in_w = i >= params->offsets[0] && i < params->offsets[0] + 4;
            bool in_b = i >= params->offsets[1] && i < params->offsets[1] + 2;
            if (!in_w && !in_b && params->values[i] != 0.0f) fail(what, "padding float %lld changed", (long long)i);
        }
        cg_optimizer_free(o);
        cg_params_free(params);
    }
    printf("weight decay spared to parameters of one dimension: sgd L2 and decoupled, adam, adamw\n");
}

// A CUDA Graph replays the kernels it captured with the arguments they were launched with: the
// learning rate's ADDRESS, never its value. Here one sgd_step call is recorded (its arguments
// kept) and replayed three times on the CPU, the value at that address changed between replays,
// as cg_optimizer_set_lr changes it between steps: each replay must use the value written last.
// p0 = 1, gradient 1, no momentum: p = 1 - 0.5 = 0.5, then - 0.25 = 0.25, then - 0.125 = 0.125.
typedef struct {
    float *p;
    const float *g;
    float *state;
    int64_t n;
    const float *lr; // the address the recorded launch reads
} recorded_sgd;

static void replay(const cg_kernels *k, const recorded_sgd *r) {
    k->sgd_step(r->p, r->g, NULL, r->state, r->n, r->lr, 0.0f, 0.0f, 0.0f, false, false, NULL, NULL);
}

static void replay_reads_lr(void) {
    float p = 1.0f, g = 1.0f, state = 1.0f, lr = 0.5f;
    recorded_sgd call = {&p, &g, &state, 1, &lr};
    const cg_kernels *k = cg_kernels_for(cg_cpu());
    const double expected[3] = {0.5, 0.25, 0.125};
    for (int t = 0; t < 3; t++) {
        replay(k, &call);
        char what[64];
        snprintf(what, sizeof what, "replay %d reads the new lr", t + 1);
        expect_close(what, expected[t], p, 0);
        lr *= 0.5f; // the host writes the next step's rate; the recorded call is not touched
    }
    // Through the optimizer: cg_optimizer_set_lr writes the rate the next step reads.
    cg_params *params = cg_params_new(cg_cpu());
    cg_tensor *x = cg_params_add(params, "x", 1, (int64_t[]){1});
    cg_optimizer *o = cg_optimizer_new(params, cg_sgd_config(0.1f));
    float stored = 0.0f;
    cg_device_copy(cg_cpu(), &stored, cg_cpu(), o->lr, sizeof stored);
    if (stored != 0.1f) fail("optimizer lr", "made with 0.1, device holds %g", (double)stored);
    cg_tensor_fill(x->grad, 1.0f);
    cg_optimizer_step(o); // x = -0.1
    cg_optimizer_set_lr(o, 0.01f);
    cg_optimizer_step(o); // x = -0.11
    expect_close("cg_optimizer_set_lr", -0.11, cg_tensor_item(x), 1e-7);
    cg_optimizer_free(o);
    cg_params_free(params);
    printf("a recorded sgd_step replayed reads each new learning rate; cg_optimizer_set_lr\n");
}

int main(void) {
    const optim_case cases[] = {
        {"sgd", sgd(0.1f, 0.0f, 0.0f, 0.0f, false), {0}},
        {"sgd momentum", sgd(0.1f, 0.9f, 0.0f, 0.0f, false), {0}},
        {"sgd momentum dampening", sgd(0.05f, 0.8f, 0.3f, 0.0f, false), {0}},
        {"sgd nesterov", sgd(0.1f, 0.9f, 0.0f, 0.0f, true), {0}},
        {"sgd weight decay", sgd(0.1f, 0.0f, 0.0f, 0.1f, false), {0}},
        {"sgd momentum weight decay", sgd(0.1f, 0.9f, 0.0f, 0.1f, false), {0}},
        {"sgd nesterov weight decay", sgd(0.1f, 0.5f, 0.0f, 0.2f, true), {0}},
        {"adam", adam(cg_adam_config(0.01f), 0.9f, 0.999f, 0.0f), {0}},
        {"adam betas (0.8, 0.99)", adam(cg_adam_config(0.05f), 0.8f, 0.99f, 0.0f), {0}},
        {"adam weight decay (L2)", adam(cg_adam_config(0.01f), 0.9f, 0.999f, 0.1f), {0}},
        {"adamw", cg_adamw_config(0.01f), {0}},
        {"adamw weight decay 0.3", adam(cg_adamw_config(0.05f), 0.9f, 0.999f, 0.3f), {0}},
        {"sgd decoupled weight decay", decoupled(sgd(0.1f, 0.0f, 0.0f, 0.2f, false)), {0}},
        {"sgd nesterov decoupled", decoupled(sgd(0.1f, 0.9f, 0.0f, 0.2f, true)), {0}},
        {"adam decoupled weight decay", decoupled(adam(cg_adam_config(0.01f), 0.9f, 0.999f, 0.1f)), {0}},
        {"sgd momentum, lr per step", sgd(0.1f, 0.9f, 0.0f, 0.1f, false), {0.02f, 0.1f, 0.05f}},
        {"adamw, lr per step", adam(cg_adamw_config(0.01f), 0.9f, 0.999f, 0.3f), {0.002f, 0.01f, 0.004f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    hand_derived();
    decay_exemption();
    replay_reads_lr();
    defaults();
    zero_grad();
    frozen_and_exempt();
    return check_summary("test_optim");
}

// optim.c: the optimizer objects: their state and learning rate on the device, the weight-decay
// mask. The arithmetic is the sgd_step and adam_step kernels.
#include "core/train/optim.h"
#include "core/kernels.h"

#include <stdlib.h>
#include <string.h>

cg_optim_config cg_sgd_config(float lr) {
    cg_optim_config c = {0};
    c.kind = CG_OPTIM_SGD;
    c.lr = lr;
    return c;
}

cg_optim_config cg_adam_config(float lr) {
    cg_optim_config c = {0};
    c.kind = CG_OPTIM_ADAM;
    c.lr = lr;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    return c;
}

cg_optim_config cg_adamw_config(float lr) {
    cg_optim_config c = cg_adam_config(lr);
    c.kind = CG_OPTIM_ADAMW;
    c.weight_decay = 1e-2f;
    return c;
}

static float *zeroed(cg_device d, int64_t n) {
    float *p = cg_device_alloc_for(d, (size_t)n * sizeof(float), "the optimizer's state");
    cg_device_zero(d, p, (size_t)n * sizeof(float));
    return p;
}

// The runs of the block: consecutive trained parameters with the same weight decay, frozen ones
// (requires_grad false) left out. With nothing frozen or exempt, one run over the whole block.
static void make_runs(cg_optimizer *o) {
    const cg_params *p = o->params;
    o->run_begin = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_begin);
    o->run_end = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_end);
    o->run_decay = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_decay);
    o->runs = 0;
    for (int i = 0; i < p->count; i++) {
        const cg_tensor *t = p->tensors[i];
        if (!t->requires_grad) continue;
        float decay = o->config.no_decay_bn_bias && t->ndim <= 1 ? 0.0f : o->config.weight_decay;
        int64_t begin = p->offsets[i], end = i + 1 < p->count ? p->offsets[i + 1] : p->numel; // with its padding
        if (o->runs > 0 && o->run_end[o->runs - 1] == begin && o->run_decay[o->runs - 1] == decay) {
            o->run_end[o->runs - 1] = end;
        } else {
            o->run_begin[o->runs] = begin;
            o->run_end[o->runs] = end;
            o->run_decay[o->runs] = decay;
            o->runs++;
        }
    }
}

cg_optimizer *cg_optimizer_new(cg_params *params, cg_optim_config config) {
    if (config.kind == CG_OPTIM_SGD && config.nesterov)
        CG_CHECK(config.momentum > 0 && config.dampening == 0, "nesterov needs momentum > 0 and dampening 0");
    cg_optimizer *o = cg_xcalloc(1, sizeof *o);
    o->config = config;
    o->params = params;
    o->numel = params->numel;
    if (config.kind != CG_OPTIM_SGD || config.momentum != 0) o->state1 = zeroed(params->device, o->numel);
    if (config.kind != CG_OPTIM_SGD) o->state2 = zeroed(params->device, o->numel);
    o->counter = zeroed(params->device, 1);
    o->lr = cg_device_alloc_for(params->device, sizeof(float), "the learning rate");
    cg_optimizer_set_lr(o, config.lr);
    make_runs(o); // frozen parameters left out, and no_decay_bn_bias's exemption, run by run
    return o;
}

void cg_optimizer_free(cg_optimizer *o) {
    if (o == NULL) return;
    cg_device_free(o->params->device, o->state1);
    cg_device_free(o->params->device, o->state2);
    cg_device_free(o->params->device, o->counter);
    free(o->run_begin);
    free(o->run_end);
    free(o->run_decay);
    cg_device_free(o->params->device, o->lr);
    free(o);
}

void cg_optimizer_step(cg_optimizer *o) {
    cg_params *p = o->params;
    CG_CHECK(p->numel == o->numel, "parameters were added after the optimizer was made");
    const cg_kernels *k = cg_kernels_for(p->device);
    const cg_optim_config *c = &o->config;
    if (o->found_inf)
        k->add_scalar_unless(o->counter, 1.0f, o->found_inf);
    else
        k->add_scalar(o->counter, 1.0f);
    // One kernel call per run (core/train/optim.h); the decay mask of the kernels is not needed
    // here, since a run has one weight decay.
    for (int r = 0; r < o->runs; r++) {
        int64_t at = o->run_begin[r], n = o->run_end[r] - at;
        float *state1 = o->state1 ? o->state1 + at : NULL, *state2 = o->state2 ? o->state2 + at : NULL;
        if (c->kind == CG_OPTIM_SGD)
            k->sgd_step(p->values + at, p->grads + at, state1, o->counter, n, o->lr, c->momentum, c->dampening,
                        o->run_decay[r], c->nesterov, c->decoupled_weight_decay, NULL, o->found_inf);
        else
            k->adam_step(p->values + at, p->grads + at, state1, state2, o->counter, n, o->lr, c->beta1, c->beta2,
                         c->eps, o->run_decay[r], c->kind == CG_OPTIM_ADAMW || c->decoupled_weight_decay, NULL,
                         o->found_inf);
    }
}

void cg_optimizer_zero_grad(cg_optimizer *o) { cg_params_zero_grad(o->params); }

void cg_optimizer_set_lr(cg_optimizer *o, float lr) {
    o->lr_host = lr;
    cg_device_copy(o->params->device, o->lr, cg_cpu(), &lr, sizeof lr);
}

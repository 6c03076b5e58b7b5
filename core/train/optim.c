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

#define MAX_GROUPS 16

// The runs of the block: consecutive trained parameters of one group with the same weight decay,
// frozen ones (requires_grad false) left out. With nothing frozen, exempt or grouped, one run over
// the whole block.
static void make_runs(cg_optimizer *o) {
    const cg_params *p = o->params;
    if (o->run_begin == NULL) {
        o->run_begin = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_begin);
        o->run_end = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_end);
        o->run_decay = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_decay);
        o->run_group = cg_xmalloc((size_t)(p->count + 1) * sizeof *o->run_group);
    }
    o->runs = 0;
    for (int i = 0; i < p->count; i++) {
        const cg_tensor *t = p->tensors[i];
        if (!t->requires_grad) continue;
        int g = o->param_group[i];
        float decay = g > 0 ? o->group_decay[g] : o->config.no_decay_bn_bias && t->ndim <= 1 ? 0.0f : o->config.weight_decay;
        int64_t begin = p->offsets[i], end = i + 1 < p->count ? p->offsets[i + 1] : p->numel; // with its padding
        int last = o->runs - 1;
        if (o->runs > 0 && o->run_end[last] == begin && o->run_decay[last] == decay && o->run_group[last] == g) {
            o->run_end[last] = end;
        } else {
            o->run_begin[o->runs] = begin;
            o->run_end[o->runs] = end;
            o->run_decay[o->runs] = decay;
            o->run_group[o->runs] = g;
            o->runs++;
        }
    }
}

// Every group's rate, lr_host x its factor, into the device floats (one copy).
static void write_rates(cg_optimizer *o) {
    float rates[MAX_GROUPS];
    for (int g = 0; g < o->groups; g++) rates[g] = g == 0 ? o->lr_host : o->lr_host * o->group_lr_scale[g];
    cg_device_copy(o->params->device, o->lr, cg_cpu(), rates, (size_t)o->groups * sizeof(float));
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
    o->lr = cg_device_alloc_for(params->device, MAX_GROUPS * sizeof(float), "the learning rates");
    o->groups = 1;
    o->group_lr_scale = cg_xcalloc(MAX_GROUPS, sizeof *o->group_lr_scale);
    o->group_decay = cg_xcalloc(MAX_GROUPS, sizeof *o->group_decay);
    o->group_lr_scale[0] = 1.0f;
    o->group_decay[0] = config.weight_decay;
    o->param_group = cg_xcalloc((size_t)params->count + 1, sizeof *o->param_group);
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
    free(o->run_group);
    free(o->group_lr_scale);
    free(o->group_decay);
    free(o->param_group);
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
            k->sgd_step(p->values + at, p->grads + at, state1, o->counter, n, o->lr + o->run_group[r], c->momentum, c->dampening,
                        o->run_decay[r], c->nesterov, c->decoupled_weight_decay, NULL, o->found_inf);
        else
            k->adam_step(p->values + at, p->grads + at, state1, state2, o->counter, n, o->lr + o->run_group[r], c->beta1, c->beta2,
                         c->eps, o->run_decay[r], c->kind == CG_OPTIM_ADAMW || c->decoupled_weight_decay, NULL,
                         o->found_inf);
    }
}

void cg_optimizer_zero_grad(cg_optimizer *o) { cg_params_zero_grad(o->params); }

void cg_optimizer_set_lr(cg_optimizer *o, float lr) {
    o->lr_host = lr;
    write_rates(o);
}

int cg_optimizer_add_group(cg_optimizer *o, float lr_scale, float weight_decay) {
    CG_CHECK(o->groups < MAX_GROUPS, "at most %d parameter groups", MAX_GROUPS);
    int g = o->groups++;
    o->group_lr_scale[g] = lr_scale;
    o->group_decay[g] = weight_decay;
    write_rates(o);
    return g;
}

void cg_optimizer_set_group(cg_optimizer *o, const cg_tensor *param, int group) {
    CG_CHECK(group >= 0 && group < o->groups, "parameter group %d does not exist (%d groups)", group, o->groups);
    int i = 0;
    while (i < o->params->count && o->params->tensors[i] != param) i++;
    CG_CHECK(i < o->params->count, "cg_optimizer_set_group: the tensor is not one of the optimizer's parameters");
    o->param_group[i] = group;
    make_runs(o);
}

void cg_optimizer_set_group_lr_scale(cg_optimizer *o, int group, float lr_scale) {
    CG_CHECK(group > 0 && group < o->groups, "parameter group %d: not an added group (%d groups)", group, o->groups);
    if (o->group_lr_scale[group] == lr_scale) return;
    o->group_lr_scale[group] = lr_scale;
    write_rates(o);
}

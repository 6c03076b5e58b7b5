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
    if (config.no_decay_bn_bias && config.weight_decay != 0.0f) {
        // 1 for every float of a parameter of two or more dimensions, 0 elsewhere (padding too)
        uint8_t *mask = cg_xcalloc((size_t)o->numel, 1);
        for (int i = 0; i < params->count; i++)
            if (params->tensors[i]->ndim >= 2)
                memset(mask + params->offsets[i], 1, (size_t)params->tensors[i]->numel);
        o->decay_mask = cg_device_alloc_for(params->device, (size_t)o->numel, "the weight-decay mask");
        cg_device_copy(params->device, o->decay_mask, cg_cpu(), mask, (size_t)o->numel);
        free(mask);
    }
    return o;
}

void cg_optimizer_free(cg_optimizer *o) {
    if (o == NULL) return;
    cg_device_free(o->params->device, o->state1);
    cg_device_free(o->params->device, o->state2);
    cg_device_free(o->params->device, o->counter);
    cg_device_free(o->params->device, o->lr);
    cg_device_free(o->params->device, o->decay_mask);
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
    if (c->kind == CG_OPTIM_SGD)
        k->sgd_step(p->values, p->grads, o->state1, o->counter, p->numel, o->lr, c->momentum, c->dampening,
                    c->weight_decay, c->nesterov, c->decoupled_weight_decay, o->decay_mask, o->found_inf);
    else
        k->adam_step(p->values, p->grads, o->state1, o->state2, o->counter, p->numel, o->lr, c->beta1, c->beta2,
                     c->eps, c->weight_decay, c->kind == CG_OPTIM_ADAMW || c->decoupled_weight_decay, o->decay_mask,
                     o->found_inf);
}

void cg_optimizer_zero_grad(cg_optimizer *o) { cg_params_zero_grad(o->params); }

void cg_optimizer_set_lr(cg_optimizer *o, float lr) {
    o->lr_host = lr;
    cg_device_copy(o->params->device, o->lr, cg_cpu(), &lr, sizeof lr);
}

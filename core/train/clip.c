// clip.c: gradient clipping by the global norm: two kernels over the gradient block (clip.h).
#include "core/train/clip.h"
#include "core/kernels.h"

#include <math.h>
#include <stdlib.h>

cg_grad_clipper *cg_grad_clipper_new(cg_params *params, float max_norm) {
    CG_CHECK(max_norm > 0.0f && isfinite(max_norm), "clip: max_norm %g must be positive and finite", (double)max_norm);
    cg_grad_clipper *c = cg_xcalloc(1, sizeof *c);
    c->params = params;
    c->max_norm = max_norm;
    c->sum_sq = cg_device_alloc_for(params->device, sizeof(float), "the gradient norm");
    c->partials = cg_device_alloc_for(params->device, CG_NORM_PARTIALS * sizeof(float), "the gradient norm");
    cg_device_zero(params->device, c->sum_sq, sizeof(float));
    return c;
}

void cg_grad_clipper_free(cg_grad_clipper *c) {
    if (c == NULL) return;
    cg_device_free(c->params->device, c->sum_sq);
    cg_device_free(c->params->device, c->partials);
    free(c);
}

void cg_grad_clip(cg_grad_clipper *c) {
    const cg_kernels *k = cg_kernels_for(c->params->device);
    k->grad_sq_sum(c->sum_sq, c->partials, c->params->grads, c->params->numel); // padding is zero: adds nothing
    k->clip_by_norm(c->params->grads, c->sum_sq, c->max_norm, c->params->numel);
}

double cg_grad_clipper_last_norm(const cg_grad_clipper *c) {
    float s;
    cg_device_copy(cg_cpu(), &s, c->params->device, c->sum_sq, sizeof s);
    return sqrt((double)s);
}

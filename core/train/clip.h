// clip.h: gradient clipping by the global L2 norm over the whole gradient block, as
// torch.nn.utils.clip_grad_norm_(parameters, max_norm): norm = sqrt(sum of every g^2), then every
// g *= min(1, max_norm / (norm + 1e-6)). Both passes run on the device (the grad_sq_sum and
// clip_by_norm kernels) and nothing is read back, so a step that clips can be captured into a
// CUDA Graph. Not per-parameter clipping, not clipping by value, not other norms than L2.
#ifndef CG_CLIP_H
#define CG_CLIP_H

#include "core/params.h"

typedef struct {
    cg_params *params;
    float max_norm;
    float *sum_sq;   // one float on the device: this step's sum of squares (norm^2 before clipping)
    float *partials; // CG_NORM_PARTIALS floats of scratch on the device
} cg_grad_clipper;

// max_norm > 0 (CG_CHECK). The gradients are those of params at each cg_grad_clip call.
cg_grad_clipper *cg_grad_clipper_new(cg_params *params, float max_norm);
void cg_grad_clipper_free(cg_grad_clipper *c);
// Clip the gradient block now (queued on the device). Call after the backward (and, with mixed
// precision, after the gradients are unscaled: cg_amp_backward does both) and before the step.
void cg_grad_clip(cg_grad_clipper *c);
// The norm of the gradients before the last cg_grad_clip (reads the device: waits for it).
double cg_grad_clipper_last_norm(const cg_grad_clipper *c);

#endif

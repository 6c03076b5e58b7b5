// grad_scaler.h: the loss scale of mixed-precision training, PyTorch's GradScaler state machine
// kept on the host. It does not scale the loss or touch gradients itself: the training step
// multiplies the loss by cg_grad_scaler_scale(), unscales the gradients and looks for inf / NaN
// (kernels/cpu/amp.h: unscale_check_cpu), then asks cg_grad_scaler_update whether the
// optimizer may step. Not wired into the examples, the CSV log or the GPU yet (issue 5).
//
// Why: fp16's smallest subnormal is 2^-24 (about 6e-8), and many gradients are smaller; they
// would round to zero. Multiplying the loss by S multiplies every gradient by S (the chain rule
// is linear), which lifts them into fp16's range; the gradients are divided by S again, in
// fp32, before the optimizer uses them. Too large an S overflows to inf, so S is adjusted.
//
// The rule (torch.amp.GradScaler / torch.cuda.amp.GradScaler, PyTorch 2.x docs, and the kernel
// that applies it, _amp_update_scale_ in aten/src/ATen/native/cuda/AmpKernels.cu), after each step:
//   found inf or NaN in the gradients: skip the optimizer step; S = S * backoff_factor;
//                                      growth_tracker = 0
//   otherwise:                         growth_tracker += 1; if growth_tracker == growth_interval:
//                                      S = S * growth_factor (only if that is finite);
//                                      growth_tracker = 0
// with PyTorch's defaults init_scale 2^16 = 65536, growth_factor 2, backoff_factor 0.5,
// growth_interval 2000.
//
// Static mode (not in PyTorch's GradScaler; NVIDIA's "constant loss scaling" in its mixed
// precision training guide): S never changes; a step with inf / NaN is still skipped and counted.
#ifndef CG_GRAD_SCALER_H
#define CG_GRAD_SCALER_H

#include "core/common.h"

typedef struct {
    float init_scale;     // the first S (> 0, finite)
    float growth_factor;  // > 1 (dynamic mode)
    float backoff_factor; // in (0, 1) (dynamic mode)
    int growth_interval;  // consecutive good steps before a growth, >= 1 (dynamic mode)
    bool dynamic;         // false: static mode, S stays init_scale
} cg_grad_scaler_config;

// PyTorch's defaults: dynamic, 65536, x2 after 2000 good steps, x0.5 on inf / NaN.
cg_grad_scaler_config cg_grad_scaler_default_config(void);
// Static mode with the given scale (> 0, finite; 1 means no scaling, as for bf16).
cg_grad_scaler_config cg_grad_scaler_static_config(float scale);

typedef struct {
    cg_grad_scaler_config config;
    float scale;           // S, the current loss scale
    int growth_tracker;    // good steps since the last change of S or the last overflow
    int64_t steps;         // updates so far (applied and skipped)
    int64_t skipped_steps; // updates that found inf / NaN: the optimizer step was skipped
    int64_t growths;       // times S was multiplied by growth_factor
    int64_t backoffs;      // times S was multiplied by backoff_factor
} cg_grad_scaler;

// Errors (CG_CHECK): a config outside the ranges above (PyTorch refuses growth_factor <= 1 and
// backoff_factor >= 1 the same way). Free with cg_grad_scaler_free.
cg_grad_scaler *cg_grad_scaler_new(cg_grad_scaler_config config);
void cg_grad_scaler_free(cg_grad_scaler *s);

// One step's verdict: found_inf says whether any gradient was inf or NaN. Updates S by the rule
// above and returns true when the optimizer step may be applied (no inf / NaN), false when it
// must be skipped.
bool cg_grad_scaler_update(cg_grad_scaler *s, bool found_inf);

// The current loss scale S, and 1 / S (what the gradients are multiplied by to unscale them;
// exact while S is a power of two, as it stays with the default factors).
float cg_grad_scaler_scale(const cg_grad_scaler *s);
float cg_grad_scaler_inv_scale(const cg_grad_scaler *s);
// Steps skipped so far because of inf / NaN.
int64_t cg_grad_scaler_skipped(const cg_grad_scaler *s);

#endif

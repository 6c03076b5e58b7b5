// amp.h: mixed-precision training (Micikevicius et al., "Mixed Precision Training", ICLR 2018;
// torch.autocast and torch.amp.GradScaler): FP32 master weights in the parameter block, a 16-bit
// copy of the whole block refreshed by one cast after each step, the tape's autocast policy
// (core/ops.h), and the loss scale kept ON THE DEVICE so that a training step reads nothing
// back and can be captured as a CUDA Graph. It does not choose per-layer precisions, and it
// does not keep 16-bit optimizer state: the optimizer runs in f32 on the master weights.
//
// A step, with amp made from the model's parameters and attached to the tape:
//   loss = ...forward...;  cg_optimizer_zero_grad(o);
//   cg_amp_backward(amp, tape, loss);  // backward from dloss = S, then one fused pass over the
//                                      // gradient block: f32 += 16-bit, inf / NaN check, * 1/S
//   cg_amp_step(amp, o);               // optimizer step unless inf / NaN; S updated by the rule
//                                      // of core/grad_scaler.h; 16-bit weights refreshed
// The scale and the skipped steps are read back with cg_amp_read (once an epoch).
//
// Where the 16-bit convolutions run channels-last (a GPU: core/ops.h, cg_channels_last_wanted_on),
// the copy of each (K, C, R, S) weight with K and C multiples of 8 and R S > 1 is stored
// (K, R, S, C), the layout cuDNN's Tensor Core kernels read, and so is its gradient in the
// 16-bit gradient block (core/kernels.h: cg_amp_cl_slice). The refresh writes it so and the
// unscale pass reads it so, while the master weights and their f32 gradients stay (K, C, R, S):
// the convolutions then read and write their weights without a copy of their own each step.
#ifndef CG_AMP_H
#define CG_AMP_H

#include "core/kernels.h"
#include "core/train/grad_scaler.h"
#include "core/train/optim.h"
#include "core/tape.h"

typedef enum { CG_PRECISION_FP32 = 0, CG_PRECISION_FP16, CG_PRECISION_BF16 } cg_precision;

// "fp32", "fp16" or "bf16" -> *out; otherwise CG_ERR_ARG naming the text.
cg_status cg_precision_parse(const char *text, cg_precision *out);
const char *cg_precision_name(cg_precision p);
// CG_F32, CG_F16 or CG_BF16.
cg_dtype cg_precision_dtype(cg_precision p);
// A loss-scale setting: "dynamic" (PyTorch's GradScaler defaults: 2^16, x2 after 2000 good
// steps, x0.5 on overflow), "static:S" (S > 0, finite, e.g. static:1024) or "none" (static 1).
// Errors: CG_ERR_ARG naming the text.
cg_status cg_loss_scale_parse(const char *text, cg_grad_scaler_config *out);
// The default of a precision: dynamic for fp16, none (static 1) for bf16 and fp32.
cg_grad_scaler_config cg_loss_scale_default(cg_precision p);

typedef struct cg_amp {
    cg_precision precision;
    cg_dtype dtype;               // CG_F16 or CG_BF16 (CG_F32: mixed precision off)
    cg_params *params;            // the FP32 master weights and their gradients
    cg_grad_scaler_config scaler; // how S moves (static: it stays)
    void *low_values;             // device: the 16-bit copy of the whole parameter block
    void *low_grads;              // device: the gradients of the 16-bit copies
    cg_tensor **low;              // one header per parameter (params->tensors[i]->low)
    cg_amp_cl_slice *cl_slices;   // device: the weights whose copies are stored channels-last, by offset
    int cl_count;                 // how many (0: none; cl_slices NULL)
    float *state;                 // device: CG_AMP_STATE floats (core/kernels.h: scale, found_inf, ...)
    cg_tensor *seed;              // () f32 header over state[CG_AMP_SCALE]: the backward's dloss
} cg_amp;

// Mixed precision for every parameter of `params` (add them all first; the 16-bit copies are
// made now, from the current master weights). fp32: an object that changes nothing (plain
// backward and step, scale 1). Free with cg_amp_free (it clears each parameter's ->low).
cg_amp *cg_amp_new(cg_params *params, cg_precision precision, cg_grad_scaler_config scaler);
void cg_amp_free(cg_amp *a);
// Set the tape's autocast dtype to the precision's (training and evaluation tapes alike).
void cg_amp_attach(const cg_amp *a, cg_tape *t);
// Backward from dloss = S with the 16-bit gradients gathered into the f32 gradient block,
// checked and unscaled (see the top of this file). The f32 gradient block must have been zeroed
// since the last step (cg_optimizer_zero_grad), as every example does.
void cg_amp_backward(cg_amp *a, cg_tape *t, cg_tensor *loss);
// The optimizer step, skipped on the device when this step's gradients held inf or NaN; then
// the scale update and the refresh of the 16-bit weights (one cast over the block).
void cg_amp_step(cg_amp *a, cg_optimizer *o);
// Copy the master weights into the 16-bit block again (after changing them by hand or loading).
void cg_amp_refresh(cg_amp *a);

typedef struct {
    float scale;     // S now
    int64_t skipped; // optimizer steps skipped for inf / NaN so far
    int64_t steps;   // steps so far, applied and skipped
} cg_amp_stats;
// Read the scaler's state back (waits for the device). fp32: scale 1, nothing skipped.
cg_amp_stats cg_amp_read(const cg_amp *a);

#endif

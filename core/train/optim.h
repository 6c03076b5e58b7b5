// optim.h: SGD (momentum, Nesterov, weight decay) and Adam / AdamW over the flat parameter
// block, with PyTorch's formulas and defaults (torch.optim.SGD, Adam, AdamW, PyTorch 2.x docs):
//   SGD:   g = grad + wd * p;  b = g on the first step, else b = momentum * b + (1 - dampening) * g;
//          g = g + momentum * b if nesterov, else g = b (when momentum != 0);  p -= lr * g
//   Adam:  g = grad + wd * p (Adam) or p *= 1 - lr * wd (AdamW);  m = b1 m + (1 - b1) g;
//          v = b2 v + (1 - b2) g^2;  p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Weight decay is L2 (added to the gradient, as torch.optim.SGD and Adam do) or decoupled (p *=
// 1 - lr * wd before the update, as AdamW; decoupled_weight_decay asks it of SGD and Adam too),
// and may spare the parameters of one dimension (BatchNorm weights and biases, every bias).
// One kernel call per step over every parameter; the state (momentum or m, v) is allocated on
// the parameters' device when the optimizer is made. The learning rate lives on the device too:
// cg_optimizer_set_lr writes it between steps (a schedule, core/train/schedule.h), and a step
// captured into a CUDA Graph reads the new value at each replay.
// Two exceptions make it one call per run of parameters instead (each run a slice of the block):
// a parameter with requires_grad false is frozen and never touched (as PyTorch skips a parameter
// whose .grad is None: no weight decay, no momentum), and no_decay_bn_bias gives weight decay 0
// to every parameter of at most one dimension (BatchNorm's weights and biases, every bias), as the
// usual two parameter groups of PyTorch training scripts ([decay: dim > 1], [no decay: dim <= 1]).
#ifndef CG_OPTIM_H
#define CG_OPTIM_H

#include "core/params.h"

typedef enum { CG_OPTIM_SGD, CG_OPTIM_ADAM, CG_OPTIM_ADAMW } cg_optim_kind;

typedef struct {
    cg_optim_kind kind;
    float lr;
    float weight_decay;
    bool no_decay_bn_bias; // weight decay 0 for parameters of <= 1 dims: BatchNorm weights and biases,
                           // every bias (bench/torch_train.py --no-decay-bn-bias)
    // SGD
    float momentum, dampening;
    bool nesterov;
    // Adam, AdamW
    float beta1, beta2, eps;
    // weight decay as p *= 1 - lr * wd instead of L2 (always for AdamW)
    bool decoupled_weight_decay;
} cg_optim_config;

// PyTorch's defaults: SGD(lr, momentum 0, dampening 0, weight_decay 0, nesterov false);
// Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0); AdamW the same with weight_decay 1e-2.
cg_optim_config cg_sgd_config(float lr);
cg_optim_config cg_adam_config(float lr);
cg_optim_config cg_adamw_config(float lr);

typedef struct {
    cg_optim_config config;
    cg_params *params;
    int64_t numel;   // floats of the block the state was made for
    float *state1;   // SGD momentum buffer, or Adam's m
    float *state2;   // Adam's v (NULL for SGD)
    float *counter;  // one float on the device: the step count (exact up to 2^24 steps)
    float *lr;       // one float on the device: the learning rate the next step uses
    float lr_host;   // the value last written there
    const float *found_inf; // NULL, or a flag on the device: when not 0, the step is skipped
                            // (set by mixed precision, core/amp.h, to skip overflowed steps)
    int runs;               // slices of the block updated by one kernel call each (1 when nothing
    int64_t *run_begin;     // is frozen or exempt): float offsets [run_begin, run_end) and the
    int64_t *run_end;       // weight decay of each
    float *run_decay;
} cg_optimizer;

// Errors (CG_CHECK): nesterov without momentum or with dampening, as PyTorch refuses them.
cg_optimizer *cg_optimizer_new(cg_params *params, cg_optim_config config);
void cg_optimizer_free(cg_optimizer *o);
// One update of every parameter from its gradient; none, and the step count stays, when
// found_inf is set and the flag it points to is not 0 (read on the device: no host sync).
void cg_optimizer_step(cg_optimizer *o);
// Set every gradient to zero.
void cg_optimizer_zero_grad(cg_optimizer *o);
// The learning rate of the next steps (written to device memory now, in order with the queued
// work). Not during a CUDA Graph capture: between steps, before the replay that should read it.
void cg_optimizer_set_lr(cg_optimizer *o, float lr);

#endif

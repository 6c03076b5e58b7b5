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
// Parameter groups, as torch.optim's param_groups: group 0 holds every parameter at first (the rate
// and weight decay above); cg_optimizer_add_group makes another with its own learning-rate factor
// and weight decay, cg_optimizer_set_group moves a parameter into it (runs never span two groups).
// Each group's rate (lr x its factor) is its own float on the device, so a factor changed between
// steps (0 freezes the group: its parameters keep their values, as a parameter PyTorch skips) is
// read by a captured CUDA Graph's replay too.
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
    float *lr;       // on the device, one float per group: lr x the group's factor (lr[0]: group 0's)
    float lr_host;   // the learning rate last set (group 0's)
    int groups;             // parameter groups (1 + those added)
    float *group_lr_scale;  // host, per group: the factor of the learning rate (group 0: 1)
    float *group_decay;     // host, per group: its weight decay (group 0: config.weight_decay)
    int *param_group;       // host, per parameter of params: its group
    const float *found_inf; // NULL, or a flag on the device: when not 0, the step is skipped
                            // (set by mixed precision, core/amp.h, to skip overflowed steps)
    int runs;               // slices of the block updated by one kernel call each (1 when nothing
    int64_t *run_begin;     // is frozen or exempt): float offsets [run_begin, run_end) and the
    int64_t *run_end;       // weight decay of each
    float *run_decay;
    int *run_group;
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

// A new parameter group with learning rate lr x lr_scale and its own weight decay (not subject to
// no_decay_bn_bias), empty; returns its index. Errors (CG_CHECK): more than 16 groups.
int cg_optimizer_add_group(cg_optimizer *o, float lr_scale, float weight_decay);
// Moves parameter `param` (one of params' tensors) into group `group`. Before the first step that
// a CUDA Graph captures (the runs, one kernel call each, are made again). Errors (CG_CHECK): a
// tensor that is not a parameter of the block, a group that does not exist.
void cg_optimizer_set_group(cg_optimizer *o, const cg_tensor *param, int group);
// The learning-rate factor of a group from the next step on (written to the device now, in order
// with the queued work; not during a capture). 0 freezes the group's parameters (no weight decay,
// no change); their momentum goes on being computed but is never applied.
void cg_optimizer_set_group_lr_scale(cg_optimizer *o, int group, float lr_scale);

#endif

// lookahead.h: airbench's Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1
// step back", in airbench94's form): a running average of the weights and of the BatchNorm running
// statistics that, every few steps, the model is set back to: ema = decay ema + (1 - decay) w, then
// w = ema (torch's ema.lerp_(w, 1 - decay); w.copy_(ema)). decay 1 makes the model the average.
// The average starts as the values when the object is made. Not the optimizer's momentum, not
// num_batches_tracked (airbench averages float tensors only; cgrad keeps that count as a float, so
// it is left out by name). Device kernels (scale, axpy, copy) queued between steps: a captured
// CUDA Graph of the step is untouched, and the update needs no host sync.
#ifndef CG_LOOKAHEAD_H
#define CG_LOOKAHEAD_H

#include "core/params.h"

typedef struct {
    cg_params *blocks[2]; // the parameters, and the buffers (or NULL)
    float *ema[2];        // device copies of each block's values
    int runs[2];          // slices of each block averaged (the buffers without num_batches_tracked)
    int64_t *run_begin[2], *run_end[2];
} cg_lookahead;

// The average of params' values and buffers' (NULL: none), starting at their values now.
cg_lookahead *cg_lookahead_new(cg_params *params, cg_params *buffers);
void cg_lookahead_free(cg_lookahead *l);
// The average of one tensor of the parameters or buffers set to host values (numel floats), e.g.
// to start it from the values before a data-dependent init, as airbench does. Errors (CG_CHECK):
// a tensor of neither block, one left out (num_batches_tracked).
void cg_lookahead_set_average(cg_lookahead *l, const cg_tensor *t, const float *host_values);
// ema = decay ema + (1 - decay) values, then values = ema, over both blocks. decay in [0, 1].
// Not during a CUDA Graph capture (the decay is passed by value).
void cg_lookahead_update(cg_lookahead *l, float decay);

#endif

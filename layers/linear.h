// linear.h: the fully connected layer y = x W^T + b, as torch.nn.Linear.
#ifndef CG_LINEAR_H
#define CG_LINEAR_H

#include "layers/module.h"

typedef struct {
    cg_module base;
    int64_t in_features, out_features;
    cg_tensor *weight; // (out_features, in_features), in the parameter block
    cg_tensor *bias;   // (out_features,), or NULL without bias
} cg_linear_layer;

// The kind of a Linear module (layers/module.h).
extern const cg_module_type cg_linear_type;

// Adds "NAME.weight" and "NAME.bias" to params and initialises them as PyTorch's
// nn.Linear.reset_parameters does: weight ~ kaiming_uniform(a = sqrt(5)), which works out to
// U(-1/sqrt(in), 1/sqrt(in)); bias ~ U(-1/sqrt(in), 1/sqrt(in)) (torch/nn/modules/linear.py;
// He et al. 2015, "Delving deep into rectifiers"). Values are drawn weight first, then bias,
// from rng, on the parameters' device (the same numbers on the CPU and a GPU).
// forward: x (N, in_features) f32 -> (N, out_features) f32.
cg_module *cg_linear_new(cg_params *params, const char *name, int64_t in_features, int64_t out_features,
                         bool bias, cg_rng *rng);

// Fill a parameter with U(-bound, bound) from rng, on its device. Shared by
// every layer that uses PyTorch's uniform initialisations.
void cg_init_uniform(cg_tensor *param, float bound, cg_rng *rng);

#endif

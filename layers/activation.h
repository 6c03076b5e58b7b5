// activation.h: the elementwise modules, for use in a Sequential: ReLU, Sigmoid, GELU, and Scale
// (multiply by a constant, as the fast CIFAR network's last step). No parameters.
#ifndef CG_ACTIVATION_H
#define CG_ACTIVATION_H

#include "layers/module.h"

// The kinds (layers/module.h).
extern const cg_module_type cg_relu_type, cg_sigmoid_type, cg_gelu_type, cg_scale_type;

// forward: any shape f32 -> same shape, max(x, 0).
cg_module *cg_relu_new(void);
// forward: any shape f32 -> same shape, 1 / (1 + exp(-x)).
cg_module *cg_sigmoid_new(void);
// forward: any shape f32 -> same shape, x Phi(x) (the exact GELU, as torch.nn.GELU(); cg_gelu).
cg_module *cg_gelu_new(void);
// forward: any shape f32 -> same shape, factor * x (cg_scale). PyTorch writes it `x * factor`
// in a forward; there is no nn class for it.
cg_module *cg_scale_new(float factor);
// The factor of a Scale module.
float cg_scale_factor(const cg_module *m);

#endif

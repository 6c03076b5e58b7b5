// activation.h: ReLU and Sigmoid as modules, for use in a Sequential. No parameters.
#ifndef CG_ACTIVATION_H
#define CG_ACTIVATION_H

#include "layers/module.h"

// The two kinds (layers/module.h).
extern const cg_module_type cg_relu_type, cg_sigmoid_type;

// forward: any shape f32 -> same shape, max(x, 0).
cg_module *cg_relu_new(void);
// forward: any shape f32 -> same shape, 1 / (1 + exp(-x)).
cg_module *cg_sigmoid_new(void);

#endif

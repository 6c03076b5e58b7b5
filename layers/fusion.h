// fusion.h: the fusion pass of a Sequential: which runs of its children one op computes at once,
// and that op. Two patterns: Conv2d, ReLU, MaxPool2d(2, stride 2), run as
// cg_conv2d_relu_max_pool2d (core/ops.h), which gives the same values and gradients as the three
// ops without storing the full-size convolution and ReLU outputs; and BatchNorm2d then GELU or
// ReLU, run as cg_batch_norm2d_gelu / _relu (one pass over memory fewer each way; under autocast
// one rounding fewer).
#ifndef CG_FUSION_H
#define CG_FUSION_H

#include "layers/module.h"

// When children m[0 .. count) start with a pattern, runs it as one op on x, sets *used to the
// number of children it covered and returns the output; otherwise returns NULL and runs nothing.
cg_tensor *cg_fusion_forward(cg_module *const *m, int count, cg_tape *t, cg_tensor *x, int *used);

#endif

// models.h: the image models the examples share by name (the data sets are datasets/catalog.h): the
// course's tutorial CNN and a one-hidden-layer MLP, built with PyTorch's parameter names so that
// checkpoints written by `cnn --save` load into `quantize`. Not a model zoo.
#ifndef CG_EXAMPLES_MODELS_H
#define CG_EXAMPLES_MODELS_H

#include "cgrad.h"

// "tutorial": conv3x3(C,32,pad 1), ReLU, maxpool 2, conv3x3(32,64,pad 1), ReLU, maxpool 2, flatten,
//   Linear(64 H/4 W/4, 128), ReLU, Linear(128, classes); parameters c1, c2, f1, f2.
// "mlp": flatten, Linear(C H W, 128), ReLU, Linear(128, classes); parameters fc1, fc2.
// Images (C, H, W); weights drawn from rng as PyTorch initialises them.
// Errors: CG_ERR_ARG for another name, or images smaller than 4x4 for the tutorial CNN.
cg_status cg_model_new(const char *name, cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                       cg_module **out);

#endif

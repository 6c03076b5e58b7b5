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
// Errors: CG_ERR_ARG for another name, or images smaller than 4x4 for the tutorial CNN;
// CG_ERR_FORMAT for a model above CG_MODEL_MAX_PARAMS (cg_model_check_size with batch 0).
cg_status cg_model_new(const char *name, cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                       cg_module **out);

// The most a model built from a data set's image size may ask for, so that a file declaring huge
// images is refused before anything is allocated: parameters (1 GiB of f32 weights; 4 GiB with
// their gradients and Adam's two moments) and the activations of one training step (estimated as
// three f32 copies of every layer's output: forward, gradient, what the backward keeps).
#define CG_MODEL_MAX_PARAMS (INT64_C(1) << 28)
#define CG_MODEL_MAX_STEP_BYTES (INT64_C(32) << 30)

// Checks model `name` for images (C, H, W) and `classes` classes against the limits above, batch
// images a step (0: parameters only). source names where the sizes came from (the data folder or
// file) in the message. Errors: CG_ERR_FORMAT naming source, the size and the limit; CG_ERR_ARG
// for an unknown name or images too small for the model.
cg_status cg_model_check_size(const char *name, int64_t C, int64_t H, int64_t W, int classes, int64_t batch,
                              const char *source);

#endif

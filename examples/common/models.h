// models.h: the image models the examples share by name (the data sets are datasets/catalog.h): the
// course's tutorial CNN (also with BatchNorm), a one-hidden-layer MLP, ResNet-18 and a small fast
// CIFAR network, built with PyTorch's parameter names so that checkpoints written by `cnn --save`
// load into bench/torch_models.py's twins (and, the tutorial CNN's and the MLP's, into `quantize`).
// Not a model zoo.
#ifndef CG_EXAMPLES_MODELS_H
#define CG_EXAMPLES_MODELS_H

#include "cgrad.h"

// "tutorial": conv3x3(C,32,pad 1), ReLU, maxpool 2, conv3x3(32,64,pad 1), ReLU, maxpool 2, flatten,
//   Linear(64 H/4 W/4, 128), ReLU, Linear(128, classes); parameters c1, c2, f1, f2.
// "tutorial-bn": the same with BatchNorm2d after each convolution, whose bias it drops (BatchNorm's
//   mean subtraction would cancel it): c1 = conv3x3(C,32,pad 1,no bias), bn1, ReLU, maxpool 2,
//   c2 = conv3x3(32,64,pad 1,no bias), bn2, ReLU, maxpool 2, flatten, f1, ReLU, f2. BatchNorm with
//   PyTorch's defaults (eps 1e-5, momentum 0.1, weight 1, bias 0); bench/torch_models.py's TutorialBN.
// "mlp": flatten, Linear(C H W, 128), ReLU, Linear(128, classes); parameters fc1, fc2.
// "resnet18": He et al. 2016's ResNet-18 in its CIFAR form, as bench/torch_models.py's ResNet18: a
//   3x3 stem convolution (64 channels, stride `stem_stride`, padding 1, no bias), BatchNorm, ReLU, no
//   max pooling; layer1..layer4 of two basic blocks each (layers/residual.h), widths 64, 128, 256, 512,
//   the first block of layers 2 to 4 with stride 2 and a projection shortcut; global average pooling;
//   fc = Linear(512, classes). torchvision's names (conv1, bn1, layer1.0.conv1, ...,
//   layer2.0.downsample.0, fc) and initialisation: convolutions kaiming_normal(mode fan_out, ReLU
//   gain), i.e. N(0, 2 / (out_channels k k)); BatchNorm weight 1, bias 0; fc PyTorch's default.
//   At 64 x 64 (TinyImageNet) the stem keeps stride 1 by default, as the twin: the stages run at
//   64, 32, 16 and 8 pixels, four times the work of 32 x 32; stem_stride 2 brings them back to
//   CIFAR's sizes.
// "fast": the small fast CIFAR network of bench/torch_models.py's FastNet, after airbench94's published
//   design (Keller Jordan 2024): whiten = Conv2d(C, 8 C, 2, no padding, bias) whose weight is set from
//   the data (cg_model_init_from_data) and frozen, GELU; block1..block3 of [conv1 3x3 'same' no bias,
//   MaxPool2d(2), norm1, GELU, conv2 3x3, norm2, GELU] with widths 64, 256, 256; MaxPool2d(3);
//   flatten; head = Linear(256, classes, no bias); times 1/9. BatchNorm eps 1e-12, momentum 0.4,
//   weight frozen at 1 (requires_grad false: the optimizer never moves it; only the bias learns).
//   Convolutions PyTorch's default init, then their first in_channels filters the identity (dirac).
//   Images whose last map before MaxPool2d(3) is 3x3 to 5x5 (25 to 48 pixels a side; made for 32x32).
// Images (C, H, W); weights drawn from rng as PyTorch initialises them; BatchNorm's running
// statistics go to buffers (a block saved with the parameters, not given to the optimizer).
// Errors: CG_ERR_ARG for another name, or images too small for the model;
// CG_ERR_FORMAT for a model above CG_MODEL_MAX_PARAMS (cg_model_check_size with batch 0).
cg_status cg_model_new(const char *name, cg_params *params, cg_params *buffers, int64_t C, int64_t H, int64_t W,
                       int classes, cg_rng *rng, cg_module **out);

// The names cg_model_new knows, for messages and --help; whether name is one of them.
#define CG_MODEL_NAMES "tutorial, tutorial-bn, mlp, resnet18, fast"
bool cg_model_exists(const char *name);

// Options of cg_model_new_options; zero means the default.
typedef struct {
    int stem_stride; // resnet18's first convolution: 1 (default) or 2
} cg_model_options;
cg_status cg_model_new_options(const char *name, const cg_model_options *options, cg_params *params,
                               cg_params *buffers, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                               cg_module **out);

// What a model needs from the training data before training: for "fast", its whitening layer set
// from the patch covariance of the first min(5000, count) training images (u8 images normalised as
// the loader does, (pixel / 255 - mean[c]) / std[c]; f32 samples as they are), as the twin does;
// nothing for the other models. Call it after cg_model_new and before training, not after --load
// (the weight is in the checkpoint). Errors: CG_ERR_ARG when the solver fails (cg_whitening_set).
cg_status cg_model_init_from_data(const char *name, cg_params *params, const cg_dataset *train, const float *mean,
                                  const float *std);

// Prints the model's summary for images (C, H, W) to stdout (layers/summary.h): each layer with
// weights, its output shape, parameters and FLOPs per image, and the totals.
void cg_model_print_summary(cg_module *model, int64_t C, int64_t H, int64_t W);

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

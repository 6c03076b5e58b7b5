// residual.h: He et al.'s basic block ("Deep Residual Learning for Image Recognition", CVPR 2016,
// section 3 and figure 2), the unit of ResNet-18 and ResNet-34, as torchvision's BasicBlock and
// bench/torch_models.py's: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). Not the
// bottleneck block of ResNet-50 and deeper.
#ifndef CG_RESIDUAL_H
#define CG_RESIDUAL_H

#include "layers/module.h"

// The kind (layers/module.h).
extern const cg_module_type cg_basic_block_type;

typedef struct {
    cg_module base;
    cg_module *conv1, *bn1; // 3x3 stride `stride` padding 1, no bias; BatchNorm2d
    cg_module *conv2, *bn2; // 3x3 stride 1 padding 1, no bias; BatchNorm2d
    cg_module *downsample;  // Sequential(1x1 conv stride `stride` no bias, BatchNorm2d), or NULL: the identity
    bool fuse;              // bn1 and its ReLU as one op (cg_batch_norm2d_relu); cg_module_set_fusion
} cg_basic_block;

// A basic block from in_channels to out_channels. The shortcut is the identity when stride is 1
// and the channel counts are equal, else the projection `downsample` (option B of the paper).
// Names (PyTorch's state_dict keys): PREFIX.conv1.weight, PREFIX.bn1.weight / .bias,
// PREFIX.conv2.weight, PREFIX.bn2.*, PREFIX.downsample.0.weight, PREFIX.downsample.1.*; the
// BatchNorm statistics (running_mean, running_var, num_batches_tracked) go to buffers
// (layers/norm.h). Convolutions initialised as nn.Conv2d's default, drawn from rng in that order
// (a ResNet re-initialises them: examples/common/models.c).
// forward: x (N, in_channels, H, W) f32 -> (N, out_channels, (H - 1) / stride + 1, same for W) f32.
cg_module *cg_basic_block_new(cg_params *params, cg_params *buffers, const char *prefix, int64_t in_channels,
                              int64_t out_channels, int stride, cg_rng *rng);

#endif

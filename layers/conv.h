// conv.h: the image layers: Conv2d (as torch.nn.Conv2d), MaxPool2d and Flatten.
#ifndef CG_CONV_H
#define CG_CONV_H

#include "layers/module.h"

// The three kinds (layers/module.h).
extern const cg_module_type cg_conv2d_type, cg_max_pool2d_type, cg_flatten_type;

typedef struct {
    cg_module base;
    int64_t in_channels, out_channels, kernel_size;
    int stride, padding;
    cg_tensor *weight; // (out_channels, in_channels, kernel_size, kernel_size), in the parameter block
    cg_tensor *bias;   // (out_channels,), or NULL
} cg_conv2d_layer;

// Adds "NAME.weight" and "NAME.bias" to params, initialised as PyTorch's
// nn.Conv2d.reset_parameters: weight ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) with fan_in = in_channels * kernel_size^2, bias ~ U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) (torch/nn/modules/conv.py). Drawn weight first, then bias, from rng.
// forward: x (N, in_channels, H, W) f32 -> (N, out_channels, P, Q) f32, see cg_conv2d.
cg_module *cg_conv2d_new(cg_params *params, const char *name, int64_t in_channels, int64_t out_channels,
                         int64_t kernel_size, int stride, int padding, bool bias, cg_rng *rng);
// forward: (N, C, H, W) -> (N, C, (H - kernel) / stride + 1, (W - kernel) / stride + 1).
cg_module *cg_max_pool2d_new(int kernel, int stride);
// The window and stride of a MaxPool2d module (for the int8 conversion, layers/quantize.c).
void cg_max_pool2d_config(const cg_module *m, int *kernel, int *stride);
// forward: (N, d1, ...) -> (N, d1 * ...).
cg_module *cg_flatten_new(void);


#endif

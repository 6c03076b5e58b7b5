// pool.h: the averaging layers: AvgPool2d (as torch.nn.AvgPool2d without padding) and global
// average pooling with the flatten that always follows it (torch.nn.AdaptiveAvgPool2d(1) then
// torch.flatten(x, 1), a ResNet's head). MaxPool2d is in layers/conv.h, with the tutorial CNN.
#ifndef CG_POOL_H
#define CG_POOL_H

#include "layers/module.h"

// The two kinds (layers/module.h).
extern const cg_module_type cg_avg_pool2d_type, cg_global_avg_pool2d_type;

// forward: (N, C, H, W) -> (N, C, (H - kernel) / stride + 1, (W - kernel) / stride + 1), each
// output the mean of its window (cg_avg_pool2d).
cg_module *cg_avg_pool2d_new(int kernel, int stride);
// The window and stride of an AvgPool2d module.
void cg_avg_pool2d_config(const cg_module *m, int *kernel, int *stride);
// forward: (N, C, H, W) -> (N, C), the mean of each channel's plane (cg_global_avg_pool2d).
cg_module *cg_global_avg_pool2d_new(void);

#endif

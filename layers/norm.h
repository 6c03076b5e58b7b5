// norm.h: BatchNorm2d and Dropout, the layers that behave differently in training and in
// evaluation (cg_module_set_training switches them), as torch.nn.BatchNorm2d and nn.Dropout.
#ifndef CG_NORM_H
#define CG_NORM_H

#include "layers/module.h"

// The two kinds (layers/module.h).
extern const cg_module_type cg_batch_norm2d_type, cg_dropout_type;

typedef struct {
    cg_module base;
    int64_t channels;
    float momentum, eps;       // PyTorch's defaults: 0.1 and 1e-5
    cg_tensor *weight, *bias;  // gamma and beta (C,), in the parameter block (init 1 and 0)
    cg_tensor *running_mean;   // (C,), in the buffer block (init 0)
    cg_tensor *running_var;    // (C,), in the buffer block (init 1)
    cg_tensor *num_batches_tracked; // (), in the buffer block: the training-mode forwards so far, counted
                                    // on the device (an f32, exact up to 2^24; checkpoints write it as
                                    // PyTorch's int64, core/train/checkpoint.h)
} cg_batch_norm2d_layer;

// Adds "NAME.weight" and "NAME.bias" to params and "NAME.running_mean", "NAME.running_var",
// "NAME.num_batches_tracked" to buffers: a second block, saved in checkpoints but not given to the
// optimizer (an optimizer with weight decay would otherwise shrink the statistics). PyTorch's
// defaults (momentum 0.1, eps 1e-5) can be changed in the returned layer before training.
// forward: x (N, channels, H, W) f32 -> same shape; see cg_batch_norm2d.
cg_module *cg_batch_norm2d_new(cg_params *params, cg_params *buffers, const char *name, int64_t channels);

// The forward of BatchNorm2d m followed by GELU (gelu) or ReLU, as one op (cg_batch_norm2d_gelu /
// _relu), with the layer's bookkeeping: for the fusion pass (layers/fusion.c) and the basic block.
cg_tensor *cg_batch_norm2d_forward_activated(cg_module *m, cg_tape *t, cg_tensor *x, bool gelu);
// relu(BatchNorm2d m (x) + z) as one op (cg_batch_norm2d_add_relu), with the layer's bookkeeping:
// the end of the basic block (layers/residual.c), z its shortcut.
cg_tensor *cg_batch_norm2d_forward_add_relu(cg_module *m, cg_tape *t, cg_tensor *x, cg_tensor *z);
// forward in training: each element zeroed with probability p, the others scaled by 1 / (1 - p);
// in evaluation: the input unchanged. The masks come from Philox stream CG_STREAM_DROPOUT of seed.
cg_module *cg_dropout_new(float p, uint64_t seed);

#endif

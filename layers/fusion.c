// fusion.c: the fusion pass of a Sequential (layers/fusion.h): a pattern of module kinds, matched
// by their types, and the fused op that runs it. The modules stay as the course writes them;
// only Sequential's forward asks here first.
#include "layers/fusion.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/norm.h"

#include <stddef.h>

// Conv2d, ReLU, MaxPool2d(2, stride 2): the tutorial CNN's block.
static cg_tensor *conv_relu_pool(cg_module *const *m, int count, cg_tape *t, cg_tensor *x) {
    if (count < 3 || !cg_module_is(m[0], &cg_conv2d_type) || !cg_module_is(m[1], &cg_relu_type) ||
        !cg_module_is(m[2], &cg_max_pool2d_type))
        return NULL;
    int kernel, stride;
    cg_max_pool2d_config(m[2], &kernel, &stride);
    if (kernel != 2 || stride != 2) return NULL;
    const cg_conv2d_layer *c = (const cg_conv2d_layer *)m[0];
    return cg_conv2d_relu_max_pool2d(t, x, c->weight, c->bias, c->stride, c->padding);
}

// BatchNorm2d, then GELU (the fast network's) or ReLU (ResNet's stem).
static cg_tensor *norm_activation(cg_module *const *m, int count, cg_tape *t, cg_tensor *x) {
    if (count < 2 || !cg_module_is(m[0], &cg_batch_norm2d_type)) return NULL;
    bool gelu = cg_module_is(m[1], &cg_gelu_type), relu = cg_module_is(m[1], &cg_relu_type);
    return gelu || relu ? cg_batch_norm2d_forward_activated(m[0], t, x, gelu) : NULL;
}

cg_tensor *cg_fusion_forward(cg_module *const *m, int count, cg_tape *t, cg_tensor *x, int *used) {
    cg_tensor *y = conv_relu_pool(m, count, t, x);
    *used = y ? 3 : 0;
    if (y == NULL && (y = norm_activation(m, count, t, x)) != NULL) *used = 2;
    return y;
}

// residual.c: the basic block as a module holding its five (or four) children, over the conv2d,
// batch_norm2d, relu and add ops. The shortcut's add is the same-shape residual add of cg_add;
// with fusion on (the default), bn1 + ReLU and bn2 + the add + ReLU each run as one op.
#include "layers/residual.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/norm.h"
#include "layers/sequential.h"

#include <stdio.h>
#include <stdlib.h>

static cg_tensor *basic_block_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_basic_block *b = (cg_basic_block *)m;
    cg_tensor *out = cg_module_forward(b->conv1, t, x);
    out = b->fuse ? cg_batch_norm2d_forward_activated(b->bn1, t, out, false) // relu(bn1(out)) as one op
                  : cg_relu(t, cg_module_forward(b->bn1, t, out));
    out = cg_module_forward(b->conv2, t, out);
    cg_tensor *shortcut = b->downsample ? cg_module_forward(b->downsample, t, x) : x;
    if (b->fuse) return cg_batch_norm2d_forward_add_relu(b->bn2, t, out, shortcut); // relu(bn2(out) + shortcut)
    return cg_relu(t, cg_add(t, cg_module_forward(b->bn2, t, out), shortcut));
}

static void basic_block_set_children_training(cg_module *m, bool training) {
    cg_basic_block *b = (cg_basic_block *)m;
    cg_module *children[] = {b->conv1, b->bn1, b->conv2, b->bn2, b->downsample};
    for (int i = 0; i < 5; i++)
        if (children[i]) cg_module_set_training(children[i], training);
}

static void basic_block_set_fusion(cg_module *m, bool fuse) {
    cg_basic_block *b = (cg_basic_block *)m;
    b->fuse = fuse;
    if (b->downsample) cg_module_set_fusion(b->downsample, fuse);
}

static void basic_block_free(cg_module *m) {
    cg_basic_block *b = (cg_basic_block *)m;
    cg_module_free(b->conv1);
    cg_module_free(b->bn1);
    cg_module_free(b->conv2);
    cg_module_free(b->bn2);
    cg_module_free(b->downsample);
    free(b);
}

const cg_module_type cg_basic_block_type = {.name = "BasicBlock", .forward = basic_block_forward,
                                            .set_children_training = basic_block_set_children_training,
                                            .set_fusion = basic_block_set_fusion, .free = basic_block_free};

cg_module *cg_basic_block_new(cg_params *params, cg_params *buffers, const char *prefix, int64_t in_channels,
                              int64_t out_channels, int stride, cg_rng *rng) {
    CG_CHECK(stride >= 1, "BasicBlock %s: stride %d", prefix, stride);
    cg_basic_block *b = cg_xcalloc(1, sizeof *b);
    b->base = cg_module_base(&cg_basic_block_type);
    b->fuse = true;
    char name[160];
    snprintf(name, sizeof name, "%s.conv1", prefix);
    b->conv1 = cg_conv2d_new(params, name, in_channels, out_channels, 3, stride, 1, false, rng);
    snprintf(name, sizeof name, "%s.bn1", prefix);
    b->bn1 = cg_batch_norm2d_new(params, buffers, name, out_channels);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    b->conv2 = cg_conv2d_new(params, name, out_channels, out_channels, 3, 1, 1, false, rng);
    snprintf(name, sizeof name, "%s.bn2", prefix);
    b->bn2 = cg_batch_norm2d_new(params, buffers, name, out_channels);
    if (stride != 1 || in_channels != out_channels) {
        b->downsample = cg_sequential_new();
        snprintf(name, sizeof name, "%s.downsample.0", prefix);
        cg_sequential_add(b->downsample, cg_conv2d_new(params, name, in_channels, out_channels, 1, stride, 0, false, rng));
        snprintf(name, sizeof name, "%s.downsample.1", prefix);
        cg_sequential_add(b->downsample, cg_batch_norm2d_new(params, buffers, name, out_channels));
    }
    return &b->base;
}

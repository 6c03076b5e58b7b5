// conv.c: Conv2d, MaxPool2d and Flatten modules over the conv2d, max_pool2d and reshape ops.
// (Their fusion with ReLU in a Sequential is layers/fusion.c.)
#include "layers/conv.h"
#include "layers/linear.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static cg_tensor *conv2d_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_conv2d_layer *c = (cg_conv2d_layer *)m;
    return cg_conv2d(t, x, c->weight, c->bias, c->stride, c->padding);
}

static void module_free(cg_module *m) { free(m); }

const cg_module_type cg_conv2d_type = {.name = "Conv2d", .forward = conv2d_module_forward, .free = module_free};

cg_module *cg_conv2d_new(cg_params *params, const char *name, int64_t in_channels, int64_t out_channels,
                         int64_t kernel_size, int stride, int padding, bool bias, cg_rng *rng) {
    cg_conv2d_layer *c = cg_xcalloc(1, sizeof *c);
    c->base = cg_module_base(&cg_conv2d_type);
    c->in_channels = in_channels;
    c->out_channels = out_channels;
    c->kernel_size = kernel_size;
    c->stride = stride;
    c->padding = padding;
    char key[128];
    snprintf(key, sizeof key, "%s.weight", name);
    c->weight = cg_params_add(params, key, 4, (int64_t[]){out_channels, in_channels, kernel_size, kernel_size});
    float bound = 1.0f / sqrtf((float)(in_channels * kernel_size * kernel_size)); // see linear.c
    cg_init_uniform(c->weight, bound, rng);
    if (bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        c->bias = cg_params_add(params, key, 1, (int64_t[]){out_channels});
        cg_init_uniform(c->bias, bound, rng);
    }
    return &c->base;
}

typedef struct {
    cg_module base;
    int kernel, stride;
} max_pool_layer;

static cg_tensor *max_pool2d_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    max_pool_layer *p = (max_pool_layer *)m;
    return cg_max_pool2d(t, x, p->kernel, p->stride);
}

const cg_module_type cg_max_pool2d_type = {.name = "MaxPool2d", .forward = max_pool2d_module_forward,
                                           .free = module_free};

cg_module *cg_max_pool2d_new(int kernel, int stride) {
    max_pool_layer *p = cg_xcalloc(1, sizeof *p);
    p->base = cg_module_base(&cg_max_pool2d_type);
    p->kernel = kernel;
    p->stride = stride;
    return &p->base;
}

void cg_max_pool2d_config(const cg_module *m, int *kernel, int *stride) {
    const max_pool_layer *p = (const max_pool_layer *)m;
    *kernel = p->kernel;
    *stride = p->stride;
}

static cg_tensor *flatten_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_flatten(t, x);
}

const cg_module_type cg_flatten_type = {.name = "Flatten", .forward = flatten_module_forward, .free = module_free};

cg_module *cg_flatten_new(void) {
    cg_module *m = cg_xcalloc(1, sizeof *m);
    *m = cg_module_base(&cg_flatten_type);
    return m;
}

// pool.c: AvgPool2d and global average pooling modules over the avg_pool2d and
// global_avg_pool2d ops.
#include "layers/pool.h"

#include <stdlib.h>

typedef struct {
    cg_module base;
    int kernel, stride;
} avg_pool_layer;

static cg_tensor *avg_pool2d_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    avg_pool_layer *p = (avg_pool_layer *)m;
    return cg_avg_pool2d(t, x, p->kernel, p->stride);
}

static cg_tensor *global_avg_pool2d_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_global_avg_pool2d(t, x);
}

static void module_free(cg_module *m) { free(m); }

const cg_module_type cg_avg_pool2d_type = {.name = "AvgPool2d", .forward = avg_pool2d_module_forward,
                                           .free = module_free};
// Not a PyTorch class: AdaptiveAvgPool2d(1) and the flatten after it, as one module.
const cg_module_type cg_global_avg_pool2d_type = {.name = "GlobalAvgPool2d",
                                                  .forward = global_avg_pool2d_module_forward, .free = module_free};

cg_module *cg_avg_pool2d_new(int kernel, int stride) {
    CG_CHECK(kernel >= 1 && stride >= 1, "AvgPool2d: kernel %d and stride %d must be >= 1", kernel, stride);
    avg_pool_layer *p = cg_xcalloc(1, sizeof *p);
    p->base = cg_module_base(&cg_avg_pool2d_type);
    p->kernel = kernel;
    p->stride = stride;
    return &p->base;
}

void cg_avg_pool2d_config(const cg_module *m, int *kernel, int *stride) {
    CG_CHECK(cg_module_is(m, &cg_avg_pool2d_type), "cg_avg_pool2d_config: a %s module", m->type->name);
    const avg_pool_layer *p = (const avg_pool_layer *)m;
    *kernel = p->kernel;
    *stride = p->stride;
}

cg_module *cg_global_avg_pool2d_new(void) {
    cg_module *m = cg_xcalloc(1, sizeof *m);
    *m = cg_module_base(&cg_global_avg_pool2d_type);
    return m;
}

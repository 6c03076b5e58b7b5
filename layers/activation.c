// activation.c: ReLU, Sigmoid, GELU and Scale modules over the relu, sigmoid, gelu and scale ops.
#include "layers/activation.h"

#include <stdlib.h>

static cg_tensor *relu_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_relu(t, x);
}

static cg_tensor *sigmoid_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_sigmoid(t, x);
}

static cg_tensor *gelu_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_gelu(t, x);
}

static void activation_free(cg_module *m) { free(m); }

const cg_module_type cg_relu_type = {.name = "ReLU", .forward = relu_module_forward, .free = activation_free};
const cg_module_type cg_sigmoid_type = {.name = "Sigmoid", .forward = sigmoid_module_forward, .free = activation_free};
const cg_module_type cg_gelu_type = {.name = "GELU", .forward = gelu_module_forward, .free = activation_free};

static cg_module *activation_new(const cg_module_type *type) {
    cg_module *m = cg_xcalloc(1, sizeof *m);
    *m = cg_module_base(type);
    return m;
}

cg_module *cg_relu_new(void) { return activation_new(&cg_relu_type); }
cg_module *cg_sigmoid_new(void) { return activation_new(&cg_sigmoid_type); }
cg_module *cg_gelu_new(void) { return activation_new(&cg_gelu_type); }

typedef struct {
    cg_module base;
    float factor;
} scale_layer;

static cg_tensor *scale_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    return cg_scale(t, x, ((scale_layer *)m)->factor);
}

const cg_module_type cg_scale_type = {.name = "Scale", .forward = scale_module_forward, .free = activation_free};

cg_module *cg_scale_new(float factor) {
    scale_layer *s = cg_xcalloc(1, sizeof *s);
    s->base = cg_module_base(&cg_scale_type);
    s->factor = factor;
    return &s->base;
}

float cg_scale_factor(const cg_module *m) {
    CG_CHECK(cg_module_is(m, &cg_scale_type), "cg_scale_factor: a %s module, not a Scale", m->type->name);
    return ((const scale_layer *)m)->factor;
}

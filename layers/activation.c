// activation.c: ReLU and Sigmoid modules over the relu and sigmoid ops.
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

static void activation_free(cg_module *m) { free(m); }

const cg_module_type cg_relu_type = {.name = "ReLU", .forward = relu_module_forward, .free = activation_free};
const cg_module_type cg_sigmoid_type = {.name = "Sigmoid", .forward = sigmoid_module_forward, .free = activation_free};

static cg_module *activation_new(const cg_module_type *type) {
    cg_module *m = cg_xcalloc(1, sizeof *m);
    *m = cg_module_base(type);
    return m;
}

cg_module *cg_relu_new(void) { return activation_new(&cg_relu_type); }
cg_module *cg_sigmoid_new(void) { return activation_new(&cg_sigmoid_type); }

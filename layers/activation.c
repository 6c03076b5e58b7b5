// activation.c: ReLU and Sigmoid modules over the relu and sigmoid ops.
#include "layers/activation.h"

#include <stdlib.h>

static cg_tensor *relu_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_relu(t, x);
}

static cg_tensor *sigmoid_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    (void)m;
    return cg_sigmoid(t, x);
}

static void activation_free(cg_module *m) { free(m); }

static cg_module *activation_new(const char *kind, cg_tensor *(*forward)(cg_module *, cg_tape *, cg_tensor *)) {
    cg_module *m = cg_xcalloc(1, sizeof *m);
    *m = (cg_module){.kind = kind, .forward = forward, .free = activation_free, .training = true};
    return m;
}

cg_module *cg_relu_new(void) { return activation_new("ReLU", relu_forward); }
cg_module *cg_sigmoid_new(void) { return activation_new("Sigmoid", sigmoid_forward); }

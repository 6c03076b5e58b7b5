// linear.c: nn.Linear: two parameters, a matmul and a bias add.
#include "layers/linear.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void cg_init_uniform(cg_tensor *param, float bound, cg_rng *rng) { cg_rng_fill_uniform(rng, param, -bound, bound); }

static cg_tensor *linear_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_linear_layer *l = (cg_linear_layer *)m;
    return cg_linear(t, x, l->weight, l->bias); // x (N, in) W^T (in, out) + b
}

static void linear_free(cg_module *m) { free(m); }

const cg_module_type cg_linear_type = {.name = "Linear", .forward = linear_module_forward, .free = linear_free};

cg_module *cg_linear_new(cg_params *params, const char *name, int64_t in_features, int64_t out_features,
                         bool bias, cg_rng *rng) {
    cg_linear_layer *l = cg_xcalloc(1, sizeof *l);
    l->base = cg_module_base(&cg_linear_type);
    l->in_features = in_features;
    l->out_features = out_features;
    char key[128];
    snprintf(key, sizeof key, "%s.weight", name);
    l->weight = cg_params_add(params, key, 2, (int64_t[]){out_features, in_features});
    // kaiming_uniform(a = sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain *
    // sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    float bound = 1.0f / sqrtf((float)in_features);
    cg_init_uniform(l->weight, bound, rng);
    if (bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        l->bias = cg_params_add(params, key, 1, (int64_t[]){out_features});
        cg_init_uniform(l->bias, bound, rng);
    }
    return &l->base;
}

// models.c: the tutorial CNN and the MLP by name, and the data sets of the quantize example.
#include "examples/common/models.h"

#include <string.h>

static cg_module *tutorial(cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng) {
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", C, 32, 3, 1, 1, true, rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_conv2d_new(params, "c2", 32, 64, 3, 1, 1, true, rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "f1", 64 * (H / 4) * (W / 4), 128, true, rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(params, "f2", 128, classes, true, rng));
    return m;
}

static cg_module *mlp(cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng) {
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "fc1", C * H * W, 128, true, rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(params, "fc2", 128, classes, true, rng));
    return m;
}

cg_status cg_model_new(const char *name, cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                       cg_module **out) {
    *out = NULL;
    if (strcmp(name, "tutorial") == 0) {
        if (H < 4 || W < 4)
            return cg_error(CG_ERR_ARG, "images of %lldx%lld are too small for the tutorial CNN (two 2x2 poolings "
                            "need at least 4x4)", (long long)H, (long long)W);
        *out = tutorial(params, C, H, W, classes, rng);
    } else if (strcmp(name, "mlp") == 0) {
        *out = mlp(params, C, H, W, classes, rng);
    } else {
        return cg_error(CG_ERR_ARG, "--model: '%s' is not a model (tutorial, mlp)", name);
    }
    return cg_ok();
}

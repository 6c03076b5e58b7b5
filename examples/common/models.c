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

static const cg_model_dataset datasets[] = {
    {"fashion-mnist", "/usr/share/datasets/fashion-mnist", {0.2860f}, {0.3530f}},
    {"mnist", "data/mnist", {0.1307f}, {0.3081f}},
    {"cifar10", "data/cifar-10-batches-bin", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
};

const cg_model_dataset *cg_model_dataset_find(const char *name) {
    for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++)
        if (strcmp(datasets[i].name, name) == 0) return &datasets[i];
    return NULL;
}

cg_status cg_model_dataset_load(const cg_model_dataset *d, const char *dir, bool train, cg_dataset **out) {
    if (strcmp(d->name, "fashion-mnist") == 0) return cg_idx_load(dir, train, CG_IDX_FASHION_MNIST, out);
    if (strcmp(d->name, "mnist") == 0) return cg_idx_load(dir, train, CG_IDX_MNIST, out);
    return cg_cifar10_load(dir, train, out);
}

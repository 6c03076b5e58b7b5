// models.c: the tutorial CNN and the MLP by name, and the data sets of the quantize example.
#include "examples/common/models.h"

#include <math.h>
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

// Parameters and f32 outputs per image of each model, in doubles (no overflow whatever the sizes).
static bool model_sizes(const char *name, double C, double H, double W, double K, double *params, double *outputs) {
    if (strcmp(name, "tutorial") == 0) {
        double h4 = floor(H / 4), w4 = floor(W / 4);
        *params = (32 * C * 9 + 32) + (64 * 32 * 9 + 64) + (64 * h4 * w4 * 128 + 128) + (128 * K + K);
        *outputs = 2 * 32 * H * W + 32 * (H / 2) * (W / 2) * 3 + 64 * h4 * w4 * 2 + 2 * 128 + K;
        return true;
    }
    if (strcmp(name, "mlp") == 0) {
        *params = (C * H * W * 128 + 128) + (128 * K + K);
        *outputs = C * H * W + 2 * 128 + K;
        return true;
    }
    return false;
}

cg_status cg_model_check_size(const char *name, int64_t C, int64_t H, int64_t W, int classes, int64_t batch,
                              const char *source) {
    double params = 0, outputs = 0;
    if (!model_sizes(name, (double)C, (double)H, (double)W, (double)classes, &params, &outputs))
        return cg_error(CG_ERR_ARG, "--model: '%s' is not a model (tutorial, mlp)", name);
    if (params > (double)CG_MODEL_MAX_PARAMS)
        return cg_error(CG_ERR_FORMAT, "%s: images of %lld x %lld x %lld and %d classes give the %s model %.0f "
                        "parameters (%.1f GiB of f32), more than the %lld (1 GiB) cgrad accepts: use smaller images",
                        source, (long long)C, (long long)H, (long long)W, classes, name, params,
                        params * 4 / 1073741824.0, (long long)CG_MODEL_MAX_PARAMS);
    double step = 3.0 * 4.0 * outputs * (double)batch;
    if (step > (double)CG_MODEL_MAX_STEP_BYTES)
        return cg_error(CG_ERR_FORMAT, "%s: a step of %lld images of %lld x %lld x %lld needs about %.1f GiB for "
                        "the %s model's activations, more than the %lld GiB cgrad accepts: use a smaller --batch-size "
                        "or smaller images", source, (long long)batch, (long long)C, (long long)H, (long long)W,
                        step / 1073741824.0, name, (long long)(CG_MODEL_MAX_STEP_BYTES >> 30));
    return cg_ok();
}

cg_status cg_model_new(const char *name, cg_params *params, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                       cg_module **out) {
    *out = NULL;
    if (strcmp(name, "tutorial") == 0 || strcmp(name, "mlp") == 0) {
        cg_status s = cg_model_check_size(name, C, H, W, classes, 0, "the data set");
        if (s.code != CG_OK) return s;
    }
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

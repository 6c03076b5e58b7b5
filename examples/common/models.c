// models.c: the tutorial CNN (with or without BatchNorm), the MLP, ResNet-18 and the fast CIFAR
// network by name, their size limits, the fast network's data-dependent initialisation and the
// summary cnn prints.
#include "examples/common/models.h"
#include "examples/common/whitening.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

// The tutorial CNN with BatchNorm2d after each convolution (whose bias BatchNorm's would cancel, so
// none), as a PyTorch user adds it: conv, bn, ReLU, pool; the classifier unchanged.
static cg_module *tutorial_bn(cg_params *params, cg_params *buffers, int64_t C, int64_t H, int64_t W, int classes,
                              cg_rng *rng) {
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", C, 32, 3, 1, 1, false, rng));
    cg_sequential_add(m, cg_batch_norm2d_new(params, buffers, "bn1", 32));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_conv2d_new(params, "c2", 32, 64, 3, 1, 1, false, rng));
    cg_sequential_add(m, cg_batch_norm2d_new(params, buffers, "bn2", 64));
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

// ---- ResNet-18 ------------------------------------------------------------------------------------

static const int64_t resnet_widths[4] = {64, 128, 256, 512};

static cg_module *resnet18(cg_params *params, cg_params *buffers, int64_t C, int classes, int stem_stride,
                           cg_rng *rng) {
    int first = params->count; // the model's parameters start here
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "conv1", C, 64, 3, stem_stride, 1, false, rng));
    cg_sequential_add(m, cg_batch_norm2d_new(params, buffers, "bn1", 64));
    cg_sequential_add(m, cg_relu_new());
    int64_t cin = 64;
    for (int stage = 0; stage < 4; stage++) { // layerN = Sequential(BasicBlock, BasicBlock), flattened here
        for (int block = 0; block < 2; block++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, block);
            int stride = stage > 0 && block == 0 ? 2 : 1;
            cg_sequential_add(m, cg_basic_block_new(params, buffers, prefix, cin, resnet_widths[stage], stride, rng));
            cin = resnet_widths[stage];
        }
    }
    cg_sequential_add(m, cg_global_avg_pool2d_new());
    cg_sequential_add(m, cg_linear_new(params, "fc", 512, classes, true, rng));
    // torchvision's ResNet.__init__: every Conv2d re-initialised kaiming_normal_(mode="fan_out",
    // nonlinearity="relu"): N(0, std^2), std = sqrt(2) / sqrt(out_channels k k). The 4-dim
    // parameters are exactly the convolutions' weights, taken in module order.
    for (int i = first; i < params->count; i++) {
        cg_tensor *w = params->tensors[i];
        if (w->ndim != 4) continue;
        double fan_out = (double)(w->shape[0] * w->shape[2] * w->shape[3]);
        cg_rng_fill_normal(rng, w, 0.0f, (float)sqrt(2.0 / fan_out));
    }
    return m;
}

// ---- the fast CIFAR network (after airbench94) ------------------------------------------------

static const int64_t fast_widths[3] = {64, 256, 256};
#define FAST_BN_EPS 1e-12f
#define FAST_BN_MOMENTUM 0.4f // PyTorch's convention (weight of the new batch); airbench writes 0.6
#define FAST_SCALE (1.0f / 9.0f)
#define FAST_WHITEN_SAMPLES 5000
#define FAST_WHITEN_EPS 5e-4f

// A 3x3 'same' convolution without bias, PyTorch's default init, then its first in_channels
// filters the identity (torch.nn.init.dirac_ on weight[:in_channels]): filter i is 1 at
// (channel i, centre) and 0 elsewhere.
static cg_module *fast_conv(cg_params *params, const char *name, int64_t cin, int64_t cout, cg_rng *rng) {
    cg_module *m = cg_conv2d_new(params, name, cin, cout, 3, 1, 1, false, rng);
    cg_tensor *w = ((cg_conv2d_layer *)m)->weight;
    float *host = cg_xmalloc((size_t)w->numel * sizeof *host);
    cg_tensor_copy_to_host(host, w, w->numel);
    int64_t identities = cin < cout ? cin : cout;
    for (int64_t o = 0; o < identities; o++) {
        memset(host + o * cin * 9, 0, (size_t)(cin * 9) * sizeof *host);
        host[(o * cin + o) * 9 + 4] = 1.0f;
    }
    cg_tensor_copy_from_host(w, host, w->numel);
    free(host);
    return m;
}

static cg_module *fast_norm(cg_params *params, cg_params *buffers, const char *name, int64_t channels) {
    cg_module *m = cg_batch_norm2d_new(params, buffers, name, channels);
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)m;
    b->eps = FAST_BN_EPS;
    b->momentum = FAST_BN_MOMENTUM;
    b->weight->requires_grad = false; // stays 1: only the bias learns
    return m;
}

// The side of the map before the last MaxPool2d(3): side - 1 (the 2x2 whitening), then three 2x2 poolings.
static int64_t fast_last_side(int64_t side) { return side < 2 ? 0 : (side - 1) / 2 / 2 / 2; }

static cg_module *fast(cg_params *params, cg_params *buffers, int64_t C, int classes, cg_rng *rng) {
    cg_module *m = cg_sequential_new();
    int64_t whiten_width = 2 * C * 2 * 2; // each whitening filter and its negative
    cg_module *whiten = cg_conv2d_new(params, "whiten", C, whiten_width, 2, 1, 0, true, rng);
    ((cg_conv2d_layer *)whiten)->weight->requires_grad = false; // set from the data, never trained
    cg_sequential_add(m, whiten);
    cg_sequential_add(m, cg_gelu_new());
    int64_t cin = whiten_width;
    for (int g = 0; g < 3; g++) { // airbench94's ConvGroup, flattened here
        char name[32];
        snprintf(name, sizeof name, "block%d.conv1", g + 1);
        cg_sequential_add(m, fast_conv(params, name, cin, fast_widths[g], rng));
        cg_sequential_add(m, cg_max_pool2d_new(2, 2));
        snprintf(name, sizeof name, "block%d.norm1", g + 1);
        cg_sequential_add(m, fast_norm(params, buffers, name, fast_widths[g]));
        cg_sequential_add(m, cg_gelu_new());
        snprintf(name, sizeof name, "block%d.conv2", g + 1);
        cg_sequential_add(m, fast_conv(params, name, fast_widths[g], fast_widths[g], rng));
        snprintf(name, sizeof name, "block%d.norm2", g + 1);
        cg_sequential_add(m, fast_norm(params, buffers, name, fast_widths[g]));
        cg_sequential_add(m, cg_gelu_new());
        cin = fast_widths[g];
    }
    cg_sequential_add(m, cg_max_pool2d_new(3, 3));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "head", fast_widths[2], classes, false, rng));
    cg_sequential_add(m, cg_scale_new(FAST_SCALE));
    return m;
}

// ---- sizes --------------------------------------------------------------------------------------

// Parameters and f32 outputs per image of each model, in doubles (no overflow whatever the sizes).
// For the two networks with BatchNorm the outputs are an estimate (every op's output counted once).
static bool model_sizes(const char *name, double C, double H, double W, double K, double *params, double *outputs) {
    if (strcmp(name, "tutorial") == 0) {
        double h4 = floor(H / 4), w4 = floor(W / 4);
        *params = (32 * C * 9 + 32) + (64 * 32 * 9 + 64) + (64 * h4 * w4 * 128 + 128) + (128 * K + K);
        *outputs = 2 * 32 * H * W + 32 * (H / 2) * (W / 2) * 3 + 64 * h4 * w4 * 2 + 2 * 128 + K;
        return true;
    }
    if (strcmp(name, "tutorial-bn") == 0) { // the tutorial's, less the two conv biases, plus 2 x 96 for BatchNorm
        double h4 = floor(H / 4), w4 = floor(W / 4);
        *params = 32 * C * 9 + 2 * 32 + 64 * 32 * 9 + 2 * 64 + (64 * h4 * w4 * 128 + 128) + (128 * K + K);
        *outputs = 3 * 32 * H * W + 32 * (H / 2) * (W / 2) * 4 + 64 * h4 * w4 * 2 + 2 * 128 + K;
        return true;
    }
    if (strcmp(name, "mlp") == 0) {
        *params = (C * H * W * 128 + 128) + (128 * K + K);
        *outputs = C * H * W + 2 * 128 + K;
        return true;
    }
    if (strcmp(name, "resnet18") == 0) { // with the stride-1 stem (the larger)
        double cin = 64, h = H, w = W;
        *params = 64 * C * 9 + 2 * 64;
        *outputs = 3 * 64 * h * w; // conv, bn, relu
        for (int stage = 0; stage < 4; stage++)
            for (int block = 0; block < 2; block++) {
                double cout = (double)resnet_widths[stage];
                bool down = stage > 0 && block == 0;
                if (down) h = floor((h - 1) / 2) + 1, w = floor((w - 1) / 2) + 1;
                *params += cout * cin * 9 + 2 * cout + cout * cout * 9 + 2 * cout + (down ? cout * cin + 2 * cout : 0);
                *outputs += (7 + (down ? 2 : 0)) * cout * h * w; // conv, bn, relu, conv, bn, add, relu (+ shortcut)
                cin = cout;
            }
        *params += 512 * K + K;
        *outputs += 512 + K;
        return true;
    }
    if (strcmp(name, "fast") == 0) {
        double d = 8 * C, h = fmax(H - 1, 1), w = fmax(W - 1, 1), cin = d;
        *params = d * C * 4 + d;
        *outputs = 2 * d * h * w;
        for (int g = 0; g < 3; g++) {
            double cout = (double)fast_widths[g];
            *params += cout * cin * 9 + 2 * cout + cout * cout * 9 + 2 * cout;
            *outputs += cout * h * w;
            h = floor(h / 2), w = floor(w / 2);
            *outputs += 6 * cout * h * w; // pool, bn, gelu, conv, bn, gelu
            cin = cout;
        }
        *params += 256 * K;
        *outputs += 2 * 256 + 2 * K;
        return true;
    }
    return false;
}

cg_status cg_model_check_size(const char *name, int64_t C, int64_t H, int64_t W, int classes, int64_t batch,
                              const char *source) {
    double params = 0, outputs = 0;
    if (!model_sizes(name, (double)C, (double)H, (double)W, (double)classes, &params, &outputs))
        return cg_error(CG_ERR_ARG, "--model: '%s' is not a model (" CG_MODEL_NAMES ")", name);
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

bool cg_model_exists(const char *name) {
    double params, outputs;
    return model_sizes(name, 1, 32, 32, 10, &params, &outputs);
}

cg_status cg_model_new(const char *name, cg_params *params, cg_params *buffers, int64_t C, int64_t H, int64_t W,
                       int classes, cg_rng *rng, cg_module **out) {
    return cg_model_new_options(name, NULL, params, buffers, C, H, W, classes, rng, out);
}

cg_status cg_model_new_options(const char *name, const cg_model_options *options, cg_params *params,
                               cg_params *buffers, int64_t C, int64_t H, int64_t W, int classes, cg_rng *rng,
                               cg_module **out) {
    *out = NULL;
    cg_model_options o = options ? *options : (cg_model_options){0};
    if (o.stem_stride == 0) o.stem_stride = 1;
    if (o.stem_stride != 1 && o.stem_stride != 2)
        return cg_error(CG_ERR_ARG, "--stem-stride: %d is not 1 or 2", o.stem_stride);
    cg_status s = cg_model_check_size(name, C, H, W, classes, 0, "the data set");
    if (s.code != CG_OK) return s;
    if (strcmp(name, "tutorial") == 0) {
        if (H < 4 || W < 4)
            return cg_error(CG_ERR_ARG, "images of %lldx%lld are too small for the tutorial CNN (two 2x2 poolings "
                            "need at least 4x4)", (long long)H, (long long)W);
        *out = tutorial(params, C, H, W, classes, rng);
    } else if (strcmp(name, "tutorial-bn") == 0) {
        if (H < 4 || W < 4)
            return cg_error(CG_ERR_ARG, "images of %lldx%lld are too small for the tutorial-bn CNN (two 2x2 poolings "
                            "need at least 4x4)", (long long)H, (long long)W);
        *out = tutorial_bn(params, buffers, C, H, W, classes, rng);
    } else if (strcmp(name, "mlp") == 0) {
        *out = mlp(params, C, H, W, classes, rng);
    } else if (strcmp(name, "resnet18") == 0) {
        *out = resnet18(params, buffers, C, classes, o.stem_stride, rng);
    } else if (strcmp(name, "fast") == 0) {
        int64_t h = fast_last_side(H), w = fast_last_side(W);
        if (h < 3 || h > 5 || w < 3 || w > 5)
            return cg_error(CG_ERR_ARG, "images of %lldx%lld do not fit the fast network: its last map would be "
                            "%lldx%lld before the 3x3 max pooling, which needs 3x3 to 5x5 (images of 25 to 48 pixels "
                            "a side; it is made for 32x32)", (long long)H, (long long)W, (long long)h, (long long)w);
        if (C > 16)
            return cg_error(CG_ERR_ARG, "images of %lld channels: the fast network's whitening takes at most 16",
                            (long long)C);
        *out = fast(params, buffers, C, classes, rng);
    } else {
        return cg_error(CG_ERR_ARG, "--model: '%s' is not a model (" CG_MODEL_NAMES ")", name);
    }
    return cg_ok();
}

cg_status cg_model_init_from_data(const char *name, cg_params *params, const cg_dataset *train, const float *mean,
                                  const float *std) {
    if (strcmp(name, "fast") != 0) return cg_ok();
    cg_tensor *weight = cg_params_find(params, "whiten.weight");
    CG_CHECK(weight != NULL && train->sample_ndim == 3, "the fast network has no whitening layer");
    int64_t C = train->sample_shape[0], H = train->sample_shape[1], W = train->sample_shape[2];
    int64_t D = C * 4, n = train->count < FAST_WHITEN_SAMPLES ? train->count : FAST_WHITEN_SAMPLES;
    double *sum = cg_xcalloc((size_t)(D * D), sizeof *sum);
    float *images = train->x;
    if (train->dtype == CG_U8) { // the first n images, normalised as the loader does
        images = cg_xmalloc((size_t)(n * train->sample_numel) * sizeof *images);
        const uint8_t *pixels = train->pixels;
#pragma omp parallel for
        for (int64_t m = 0; m < n * C; m++) { // plane m: channel m % C of image m / C
            const float mc = mean[m % C], sc = std[m % C];
            for (int64_t k = 0; k < H * W; k++) images[m * H * W + k] = ((float)pixels[m * H * W + k] / 255.0f - mc) / sc;
        }
    }
    int64_t patches = 0;
    cg_patch_covariance_add(images, n, C, H, W, 2, sum, &patches);
    cg_status s = cg_whitening_set(weight, sum, patches, FAST_WHITEN_EPS);
    if (images != train->x) free(images);
    free(sum);
    return s;
}

void cg_model_print_summary(cg_module *model, int64_t C, int64_t H, int64_t W) {
    cg_summary_row rows[128];
    int n = cg_summary(model, 3, (int64_t[]){C, H, W}, rows, 128, NULL, NULL);
    cg_summary_print(stdout, rows, n < 128 ? n : 128, NULL, NULL);
}

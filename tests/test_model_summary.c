// test_model_summary.c: the models of examples/common/models.c against their PyTorch twins'
// summaries (bench/torch_models.py, `/usr/bin/python3 bench/torch_models.py` with torch 1.13): the
// total parameters and FLOPs per image, the number of layers with weights and the output shape of
// the whole model, for tutorial, tutorial-bn at 28 x 28, resnet18 at 32 x 32 and 64 x 64 (with 200
// classes; and with --stem-stride 2) and fast; the parameter names of tutorial-bn, resnet18 and fast
// are the twins' state_dict keys (first and last of each block); the fast network's frozen weights
// are marked so.
#include "examples/common/models.h"
#include "tests/check.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *model;
    int64_t C, H, W;
    int classes, stem_stride;
    int64_t params, flops; // the twin's totals
    int rows;              // the twin's rows (layers with weights)
    int64_t buffers;       // BatchNorm's running statistics and counts (tensors in the buffer block)
} expected_summary;

static const expected_summary cases[] = {
    {"tutorial", 3, 32, 32, 10, 1, 545098, 12257792, 4, 0},
    {"tutorial-bn", 1, 28, 28, 10, 1, 421738, 8482304, 6, 6},
    {"resnet18", 3, 32, 32, 10, 1, 11173962, 1110845440, 41, 60},
    {"resnet18", 3, 64, 64, 200, 1, 11271432, 4443545600, 41, 60},
    // The twin with stem_stride=2 at 64 x 64: the stem's FLOPs at 32 x 32 and the rest CIFAR's.
    {"resnet18", 3, 64, 64, 200, 2, 11271432, 1111040000, 41, 60},
    {"fast", 3, 32, 32, 10, 1, 1972792, 236294720, 14, 18},
};

static void check_case(const expected_summary *e) {
    char what[96];
    snprintf(what, sizeof what, "%s %lldx%lldx%lld, %d classes, stem stride %d", e->model, (long long)e->C,
             (long long)e->H, (long long)e->W, e->classes, e->stem_stride);
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT);
    cg_module *model = NULL;
    cg_model_options options = {.stem_stride = e->stem_stride};
    cg_status s = cg_model_new_options(e->model, &options, params, buffers, e->C, e->H, e->W, e->classes, &rng, &model);
    if (s.code != CG_OK) {
        fail(what, "%s", s.message);
        cg_params_free(params);
        cg_params_free(buffers);
        return;
    }
    cg_summary_row rows[128];
    int out_ndim = 0;
    int64_t out_shape[3] = {0};
    int n = cg_summary(model, 3, (int64_t[]){e->C, e->H, e->W}, rows, 128, &out_ndim, out_shape);
    int64_t params_total = 0, flops_total = 0;
    for (int i = 0; i < n && i < 128; i++) params_total += rows[i].params, flops_total += rows[i].flops;
    if (params_total != e->params || flops_total != e->flops || n != e->rows)
        fail(what, "%d rows, %lld parameters, %lld FLOPs per image; the twin: %d, %lld, %lld", n,
             (long long)params_total, (long long)flops_total, e->rows, (long long)e->params, (long long)e->flops);
    if (cg_params_count(params) != e->params)
        fail(what, "the parameter block holds %lld values, the summary counts %lld", (long long)cg_params_count(params),
             (long long)e->params);
    if (buffers->count != e->buffers) fail(what, "%d buffers, expected %lld", buffers->count, (long long)e->buffers);
    if (out_ndim != 1 || out_shape[0] != e->classes)
        fail(what, "the output is %d-dim of %lld, expected (%d)", out_ndim, (long long)out_shape[0], e->classes);
    printf("  %-48s %2d layers, %11lld parameters, %13lld FLOPs/image\n", what, n, (long long)params_total,
           (long long)flops_total);
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);
}

// A few names (the twins' state_dict keys) and which parameters are frozen.
static void check_names(void) {
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT);
    cg_module *model = NULL;
    // tutorial-bn: TutorialBN's state_dict, in its order; the convolutions without bias.
    cg_status s = cg_model_new("tutorial-bn", params, buffers, 1, 28, 28, 10, &rng, &model);
    if (s.code != CG_OK) {
        fail("tutorial-bn", "%s", s.message);
        return;
    }
    const char *bn_names[] = {"c1.weight", "bn1.weight", "bn1.bias", "c2.weight", "bn2.weight", "bn2.bias",
                              "f1.weight", "f1.bias", "f2.weight", "f2.bias"};
    const char *bn_buffers[] = {"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                                "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked"};
    if (params->count != 10 || buffers->count != 6)
        fail("tutorial-bn names", "%d parameters and %d buffers, expected 10 and 6", params->count, buffers->count);
    for (int i = 0; i < params->count && i < 10; i++)
        if (strcmp(params->tensors[i]->name, bn_names[i]) != 0)
            fail("tutorial-bn names", "parameter %d is %s, the twin's %s", i, params->tensors[i]->name, bn_names[i]);
    for (int i = 0; i < buffers->count && i < 6; i++)
        if (strcmp(buffers->tensors[i]->name, bn_buffers[i]) != 0)
            fail("tutorial-bn names", "buffer %d is %s, the twin's %s", i, buffers->tensors[i]->name, bn_buffers[i]);
    cg_module_free(model);
    s = cg_model_new("tutorial-bn", params, buffers, 1, 3, 3, 10, &rng, &model);
    if (s.code != CG_ERR_ARG || strstr(s.message, "3x3") == NULL)
        fail("tutorial-bn at 3x3", "not refused: %s", s.message);
    cg_params_free(params);
    cg_params_free(buffers);

    params = cg_params_new(cg_cpu()), buffers = cg_params_new(cg_cpu());
    s = cg_model_new("resnet18", params, buffers, 3, 32, 32, 10, &rng, &model);
    if (s.code != CG_OK) {
        fail("resnet18", "%s", s.message);
        return;
    }
    const char *names[] = {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cg_params_find(params, names[i]) == NULL) fail("resnet18 names", "no parameter %s", names[i]);
    const char *buffer_names[] = {"bn1.running_mean", "layer3.0.downsample.1.running_var",
                                  "layer4.1.bn2.num_batches_tracked"};
    for (size_t i = 0; i < sizeof buffer_names / sizeof buffer_names[0]; i++)
        if (cg_params_find(buffers, buffer_names[i]) == NULL) fail("resnet18 names", "no buffer %s", buffer_names[i]);
    if (cg_params_find(params, "layer1.0.downsample.0.weight") != NULL)
        fail("resnet18", "layer1.0 has a projection shortcut; torchvision's has the identity");
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);

    params = cg_params_new(cg_cpu()), buffers = cg_params_new(cg_cpu());
    s = cg_model_new("fast", params, buffers, 3, 32, 32, 10, &rng, &model);
    if (s.code != CG_OK) {
        fail("fast", "%s", s.message);
        return;
    }
    int frozen = 0;
    for (int i = 0; i < params->count; i++) {
        const cg_tensor *t = params->tensors[i];
        bool should = strcmp(t->name, "whiten.weight") == 0 || (strstr(t->name, ".weight") && strstr(t->name, "norm"));
        if (!t->requires_grad != should) fail("fast", "%s %s trained", t->name, should ? "is" : "is not");
        frozen += !t->requires_grad;
    }
    if (frozen != 7) fail("fast", "%d frozen parameters, expected 7 (whiten.weight and 6 BatchNorm weights)", frozen);
    // Dirac: block2.conv2's filter 5 is 1 at (channel 5, centre) and 0 elsewhere.
    const cg_tensor *w = cg_params_find(params, "block2.conv2.weight");
    const float *v = (const float *)w->data + 5 * 256 * 9;
    float total = 0;
    for (int k = 0; k < 256 * 9; k++) total += v[k] * v[k];
    if (v[5 * 9 + 4] != 1.0f || total != 1.0f) fail("fast", "block2.conv2's filter 5 is not the identity");
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);

    // Images the fast network cannot take, a stem stride it does not know.
    params = cg_params_new(cg_cpu()), buffers = cg_params_new(cg_cpu());
    s = cg_model_new("fast", params, buffers, 3, 64, 64, 10, &rng, &model);
    if (s.code != CG_ERR_ARG || strstr(s.message, "64x64") == NULL) fail("fast at 64x64", "not refused: %s", s.message);
    cg_model_options bad = {.stem_stride = 3};
    s = cg_model_new_options("resnet18", &bad, params, buffers, 3, 32, 32, 10, &rng, &model);
    if (s.code != CG_ERR_ARG || strstr(s.message, "--stem-stride") == NULL)
        fail("stem stride 3", "not refused: %s", s.message);
    cg_params_free(params);
    cg_params_free(buffers);
}

int main(void) {
    printf("model summaries against bench/torch_models.py's:\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    check_names();
    return check_summary("test_model_summary");
}

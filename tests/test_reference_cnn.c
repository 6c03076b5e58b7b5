// test_reference_cnn.c: checks cgrad's tutorial CNN against PyTorch: the logits, cross-entropy loss
// and the eight parameter gradients of one batch, then three steps each of Adam and of SGD with
// momentum (per-step losses, final weights), all read from tests/reference/cnn.bin.
// It does not make the fixture: tests/reference/make_cnn_fixture.py does (see tests/reference/README.md).
// It does not test the fixture reader against broken files: test_reference does, on simple_nn.bin.
//
// The model, as TutorialCNN in the script (C = 1, H = W = 8, K = 10, batch 6):
//   c1 Conv2d(1, 32, 3, pad 1), ReLU, MaxPool2d(2), c2 Conv2d(32, 64, 3, pad 1), ReLU, MaxPool2d(2),
//   Flatten, f1 Linear(256, 128), ReLU, f2 Linear(128, 10).
//
// A value passes when |got - expected| <= tol * max(1, |expected|) (tests/reference_fixture.h).
// Exit 0 when all pass, 1 otherwise (a missing or corrupt fixture included). Runs on the CPU, and on
// the GPU too when cg_device_parse("cuda") accepts it.
#include "tests/reference_fixture.h" // ref_load, ref_find, compare, compare_tensor; fail, failures of check.h

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_PATH "tests/reference/cnn.bin"
#define STEPS 3
#define BATCH 6
#define CHANNELS 1
#define SIZE 8     // H = W
#define CLASSES 10
#define NUM_PARAMS 8

static const char *const param_names[NUM_PARAMS] = {"c1.weight", "c1.bias", "c2.weight", "c2.bias",
                                                    "f1.weight", "f1.bias", "f2.weight", "f2.bias"};

// The tolerance, relative to max(1, |expected|). The longest sums are 288 products in the forward
// (c2: 32 channels x 3 x 3) and 384 in the backward (grad of c1.weight: 6 images x 8 x 8 positions);
// the values are O(1) at most, so float32 rounding in another summation order stays well under
// 1e-6 and the MLP's 1e-5 holds for every array, Adam's steps included. Measured: at most 3.0e-7
// on the CPU and 2.4e-7 on an H200 (tests/reference/README.md); each run prints its own.
static const double tol = 1e-5;

// ---------------------------------------------------------------------------------------------
// The model

typedef struct {
    cg_params *params;
    cg_module *model;
    cg_tensor *x;      // (BATCH, CHANNELS, SIZE, SIZE) f32, on the device
    cg_tensor *labels; // (BATCH,) i32, on the device
    cg_tape *tape;
} tutorial_cnn;

// The largest error seen in each group of checks, for the summary line.
typedef struct {
    double forward, gradients, adam, sgd;
} max_errors;

// Build the CNN on dev with the fixture's batch (the weights come from cnn_reset).
// False, after printing why, if the fixture lacks the batch or its labels are not class indices.
static bool cnn_build(tutorial_cnn *s, cg_device dev, const ref_file *f) {
    s->params = cg_params_new(dev);
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT); // overwritten by PyTorch's initial weights in cnn_reset
    s->model = cg_sequential_new();
    cg_sequential_add(s->model, cg_conv2d_new(s->params, "c1", CHANNELS, 32, 3, 1, 1, true, &rng));
    cg_sequential_add(s->model, cg_relu_new());
    cg_sequential_add(s->model, cg_max_pool2d_new(2, 2));
    cg_sequential_add(s->model, cg_conv2d_new(s->params, "c2", 32, 64, 3, 1, 1, true, &rng));
    cg_sequential_add(s->model, cg_relu_new());
    cg_sequential_add(s->model, cg_max_pool2d_new(2, 2));
    cg_sequential_add(s->model, cg_flatten_new());
    cg_sequential_add(s->model, cg_linear_new(s->params, "f1", 64 * (SIZE / 4) * (SIZE / 4), 128, true, &rng));
    cg_sequential_add(s->model, cg_relu_new());
    cg_sequential_add(s->model, cg_linear_new(s->params, "f2", 128, CLASSES, true, &rng));
    s->x = cg_tensor_new(dev, CG_F32, 4, (int64_t[]){BATCH, CHANNELS, SIZE, SIZE});
    s->labels = cg_tensor_new(dev, CG_I32, 1, (int64_t[]){BATCH});
    s->tape = cg_tape_new(dev, 4 << 20);

    const ref_array *x = ref_find(f, "x", s->x->numel), *labels = ref_find(f, "labels", BATCH);
    if (x == NULL || labels == NULL || !ref_same_shape(x, s->x)) return false;
    cg_tensor_copy_from_host(s->x, x->data, x->numel);
    // The format holds only float32: the labels are whole numbers stored as floats.
    int32_t classes[BATCH];
    for (int i = 0; i < BATCH; i++) {
        float v = labels->data[i];
        if (!(v >= 0.0f && v < (float)CLASSES && v == (float)(int32_t)v)) {
            fprintf(stderr, "FAIL fixture's labels[%d] is %.9g, not a class index in [0, %d)\n", i, v, CLASSES);
            return false;
        }
        classes[i] = (int32_t)v;
    }
    cg_tensor_copy_from_host(s->labels, classes, BATCH);
    return true;
}

// Overwrite every parameter with the fixture's initial value and zero the gradients.
static bool cnn_reset(tutorial_cnn *s, const ref_file *f) {
    return ref_set_params(s->params, "the CNN", param_names, NUM_PARAMS, f);
}

static void cnn_free(tutorial_cnn *s) {
    cg_tape_free(s->tape);
    cg_tensor_free(s->x);
    cg_tensor_free(s->labels);
    cg_module_free(s->model);
    cg_params_free(s->params);
}

// compare_tensor for an array whose fixture name is also its label.
static double check_tensor(const char *name, const cg_tensor *t, const ref_file *f) {
    return compare_tensor(name, t, f, name, tol);
}

// Forward, cross-entropy and backward of the initial model against PyTorch's.
static void check_forward_backward(tutorial_cnn *s, const ref_file *f, max_errors *m) {
    printf(" forward and backward of one batch:\n");
    cg_tensor *logits = cg_module_forward(s->model, s->tape, s->x);
    cg_tensor *loss = cg_cross_entropy(s->tape, logits, s->labels);
    cg_tape_backward(s->tape, loss);
    m->forward = fmax(m->forward, check_tensor("logits", logits, f));
    m->forward = fmax(m->forward, check_tensor("loss", loss, f));
    for (int i = 0; i < NUM_PARAMS; i++) {
        char name[64];
        snprintf(name, sizeof name, "grad.%s", param_names[i]);
        m->gradients = fmax(m->gradients, check_tensor(name, cg_params_find(s->params, param_names[i])->grad, f));
    }
    cg_tape_clear(s->tape);
}

// STEPS steps of `config` from the initial weights; per-step losses and final weights against
// the fixture's arrays "LABEL.losses" and "LABEL.c1.weight" etc. Returns the max error.
static double check_optimizer(tutorial_cnn *s, const ref_file *f, const char *label, cg_optim_config config) {
    printf(" %d steps of %s:\n", STEPS, label);
    if (!cnn_reset(s, f)) {
        failures++;
        return 0.0;
    }
    double max_err = ref_train_steps(label, f, s->model, s->params, s->tape, s->x, cg_cross_entropy, s->labels, config,
                                     STEPS, tol);
    char name[64];
    for (int i = 0; i < NUM_PARAMS; i++) {
        snprintf(name, sizeof name, "%s.%s", label, param_names[i]);
        max_err = fmax(max_err, check_tensor(name, cg_params_find(s->params, param_names[i]), f));
    }
    return max_err;
}

static void check_device(cg_device dev, const ref_file *f) {
    char buf[16];
    const char *device = cg_device_str(dev, buf, sizeof buf);
    printf("tutorial CNN on %s against PyTorch (tolerance %.0e relative):\n", device, tol);
    tutorial_cnn s;
    if (!cnn_build(&s, dev, f) || !cnn_reset(&s, f)) {
        failures++;
        cnn_free(&s);
        return;
    }
    max_errors m = {0};
    check_forward_backward(&s, f, &m);

    m.adam = check_optimizer(&s, f, "adam", cg_adam_config(1e-3f));

    cg_optim_config momentum = cg_sgd_config(0.01f);
    momentum.momentum = 0.9f;
    m.sgd = check_optimizer(&s, f, "sgd_momentum", momentum);

    printf(" max errors on %s: logits and loss %.3g, gradients %.3g, adam %.3g, sgd_momentum %.3g\n", device,
           m.forward, m.gradients, m.adam, m.sgd);
    cnn_free(&s);
}

int main(void) { return ref_run_on_devices(FIXTURE_PATH, "test_reference_cnn", check_device); }

// test_reference.c: checks cgrad's SimpleNN against PyTorch: the outputs, BCE loss and the four
// parameter gradients of one batch, then five steps each of SGD, SGD with Nesterov momentum and
// weight decay, and Adam (per-step losses, final weights), all read from tests/reference/simple_nn.bin.
// It does not make the fixture: tests/reference/make_simple_nn_fixture.py does (see its README).
//
// Fixture format: see tests/reference_fixture.h, which reads it (the script's docstring is the
// reference). Every length is checked against the bytes left in the file before anything is
// allocated from it; check_corrupt_fixtures below makes sure of that.
//
// A value passes when |got - expected| <= tol * max(1, |expected|). Exit 0 when all pass, 1 otherwise
// (a missing or corrupt fixture included). Runs on the CPU, and on cuda:0 too when a GPU is usable.
#include "tests/reference_fixture.h" // ref_load, ref_find, compare, compare_tensor; fail, failures of check.h

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_PATH "tests/reference/simple_nn.bin"
#define STEPS 5

static const char *const param_names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};

// ---------------------------------------------------------------------------------------------
// The model

typedef struct {
    cg_params *params;
    cg_module *model;
    cg_tensor *x, *y; // the batch, on the device
    cg_tape *tape;
} simple_nn;

// Build SimpleNN on dev with the fixture's initial weights and batch. False if the fixture lacks them.
static bool simple_nn_build(simple_nn *s, cg_device dev, const ref_file *f) {
    s->params = cg_params_new(dev);
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT); // overwritten below by PyTorch's initial weights
    s->model = cg_sequential_new();
    cg_sequential_add(s->model, cg_linear_new(s->params, "fc1", 20, 50, true, &rng));
    cg_sequential_add(s->model, cg_relu_new());
    cg_sequential_add(s->model, cg_linear_new(s->params, "fc2", 50, 1, true, &rng));
    cg_sequential_add(s->model, cg_sigmoid_new());
    s->x = cg_tensor_new(dev, CG_F32, 2, (int64_t[]){32, 20});
    s->y = cg_tensor_new(dev, CG_F32, 1, (int64_t[]){32});
    s->tape = cg_tape_new(dev, 1 << 20);
    const ref_array *x = ref_find(f, "X", s->x->numel), *y = ref_find(f, "y", s->y->numel);
    if (x == NULL || y == NULL) return false;
    cg_tensor_copy_from_host(s->x, x->data, x->numel);
    cg_tensor_copy_from_host(s->y, y->data, y->numel);
    return true;
}

// Overwrite every parameter with the fixture's initial value and zero the gradients.
static bool simple_nn_reset(simple_nn *s, const ref_file *f) {
    return ref_set_params(s->params, "SimpleNN", param_names, 4, f);
}

static void simple_nn_free(simple_nn *s) {
    cg_tape_free(s->tape);
    cg_tensor_free(s->x);
    cg_tensor_free(s->y);
    cg_module_free(s->model);
    cg_params_free(s->params);
}

// Forward, BCE and backward of the initial model against PyTorch's.
static void check_forward_backward(simple_nn *s, const ref_file *f, double tol) {
    printf(" forward and backward of one batch:\n");
    cg_tensor *probs = cg_module_forward(s->model, s->tape, s->x);
    cg_tensor *loss = cg_bce(s->tape, probs, s->y);
    cg_tape_backward(s->tape, loss);
    compare_tensor("outputs", probs, f, "outputs", tol);
    compare_tensor("loss", loss, f, "loss", tol);
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "grad.%s", param_names[i]);
        compare_tensor(name, cg_params_find(s->params, param_names[i])->grad, f, name, tol);
    }
    cg_tape_clear(s->tape);
}

// STEPS steps of `config` from the initial weights; per-step losses and final weights against
// the fixture's arrays "LABEL.losses" and "LABEL.fc1.weight" etc.
static void check_optimizer(simple_nn *s, const ref_file *f, const char *label, cg_optim_config config,
                            double tol) {
    printf(" %d steps of %s:\n", STEPS, label);
    if (!simple_nn_reset(s, f)) {
        failures++;
        return;
    }
    ref_train_steps(label, f, s->model, s->params, s->tape, s->x, cg_bce, s->y, config, STEPS, tol);
    char name[64];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", label, param_names[i]);
        compare_tensor(name, cg_params_find(s->params, param_names[i]), f, name, tol);
    }
}

static void check_device(cg_device dev, const ref_file *f, double tol) {
    char buf[16];
    printf("SimpleNN on %s against PyTorch (tolerance %.0e relative):\n", cg_device_str(dev, buf, sizeof buf), tol);
    simple_nn s;
    if (!simple_nn_build(&s, dev, f) || !simple_nn_reset(&s, f)) {
        failures++;
        simple_nn_free(&s);
        return;
    }
    check_forward_backward(&s, f, tol);

    check_optimizer(&s, f, "sgd", cg_sgd_config(0.01f), tol);

    cg_optim_config nesterov = cg_sgd_config(0.01f);
    nesterov.momentum = 0.9f;
    nesterov.nesterov = true;
    nesterov.weight_decay = 1e-3f;
    check_optimizer(&s, f, "sgd_nesterov", nesterov, tol);

    check_optimizer(&s, f, "adam", cg_adam_config(1e-3f), tol);
    simple_nn_free(&s);
}

// ---------------------------------------------------------------------------------------------
// The reader must refuse broken fixtures with a message, never crash or over-allocate.

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void expect_refused(const unsigned char *bytes, size_t size, const char *what) {
    ref_file f;
    cg_status s = ref_parse(bytes, size, "corrupt.bin", &f);
    if (s.code == CG_OK) {
        fail("corrupt fixture", "a fixture with %s was accepted", what);
        ref_free(&f);
    }
}

static void check_corrupt_fixtures(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return; // already reported by ref_load
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *good = cg_xmalloc((size_t)size + 8);
    if (fread(good, 1, (size_t)size, file) != (size_t)size) {
        fclose(file);
        free(good);
        fail(path, "cannot reread it");
        return;
    }
    fclose(file);
    int before = failures;
    unsigned char *bad = cg_xmalloc((size_t)size + 8);

    for (long n = 0; n < size; n++) expect_refused(good, (size_t)n, "a truncated file"); // every prefix
    memcpy(bad, good, (size_t)size);
    bad[0] = 'X';
    expect_refused(bad, (size_t)size, "a wrong magic");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 8, 2);
    expect_refused(bad, (size_t)size, "version 2");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 12, 0xffffffffu);
    expect_refused(bad, (size_t)size, "a huge array count");
    // The first array is "X" (name length 1): its ndim sits at 16 + 4 + 1, its first dim at 25.
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 21, 5);
    expect_refused(bad, (size_t)size, "ndim 5");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 25, 0x7fffffffu);
    put_u32(bad + 29, 0x7fffffffu);
    expect_refused(bad, (size_t)size, "a huge dimension");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 25, 0);
    expect_refused(bad, (size_t)size, "a zero dimension");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 16, 100000);
    expect_refused(bad, (size_t)size, "a huge name length");
    memcpy(bad, good, (size_t)size);
    memset(bad + size, 0, 8);
    expect_refused(bad, (size_t)size + 8, "trailing bytes");

    printf("reader: %ld truncations and 8 corruptions of %s refused%s\n", size, path,
           failures == before ? "" : " (NOT ALL)");
    free(bad);
    free(good);
}

int main(void) {
    ref_file f;
    cg_status s = ref_load(FIXTURE_PATH, &f);
    if (s.code != CG_OK) {
        fprintf(stderr, "test_reference: %s\n", s.message);
        return 1;
    }
    printf("fixture %s: %d arrays\n", FIXTURE_PATH, f.count);
    check_corrupt_fixtures(FIXTURE_PATH);

    const double tol = 1e-5;
    check_device(cg_cpu(), &f, tol);
    if (cg_cuda_device_count() > 0) {
        cg_device gpu;
        if (cg_device_parse("cuda:0", &gpu).code == CG_OK) check_device(gpu, &f, tol);
    }
    ref_free(&f);

    return check_summary("test_reference");
}

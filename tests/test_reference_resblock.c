// test_reference_resblock.c: checks cgrad's residual blocks with BatchNorm in training mode against
// PyTorch: two basic blocks (layers/residual.h; the first with stride 2 and a projection shortcut,
// the second with the identity), global average pooling and a Linear layer, with the
// label-smoothed cross-entropy and SGD (Nesterov momentum, weight decay exempting BatchNorm and
// biases). Read from tests/reference/resblock.bin: the logits, both losses, the gradient of the
// input and of all 17 parameters, the whole state (parameters, running statistics,
// num_batches_tracked) after one and after three steps, the per-step losses and the
// evaluation-mode logits after them. It does not make the fixture: tests/reference/
// make_resblock_fixture.py does (tests/reference/README.md).
//
// A value passes when |got - expected| <= tol * max(1, |expected|) (tests/reference_fixture.h).
// Exit 0 when all pass, 1 otherwise (a missing or corrupt fixture included). Runs on the CPU, and on
// the GPU too when cg_device_parse("cuda") accepts it.
#include "tests/reference_fixture.h" // ref_load, ref_find, compare, compare_tensor; fail, failures of check.h

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_PATH "tests/reference/resblock.bin"
#define BATCH 6
#define C_IN 4
#define SIDE 8
#define WIDTH 8
#define CLASSES 5
#define STEPS 3
#define LABEL_SMOOTHING 0.1f

// The tolerance, relative to max(1, |expected|). BatchNorm over 6 x 4 x 4 = 96 values per channel
// (the first block) divides by a batch standard deviation, and its backward subtracts two means
// of the same size from the incoming gradient, so float32 rounding in another summation order
// reaches a few 1e-7 in the gradients; three optimizer steps on top stay below 1e-5. Each run
// prints its largest errors (tests/reference/README.md has the measured ones).
static const double tol = 1e-5;

typedef struct {
    cg_params *params, *buffers;
    cg_module *model;
    cg_tensor *x;      // (BATCH, C_IN, SIDE, SIDE) f32, on the device
    cg_tensor *labels; // (BATCH,) i32, on the device
    cg_tape *tape;
} two_blocks;

// fc(b2(b1(x)).mean((2, 3))) as the script's TwoBlocks, on dev, with the fixture's batch.
static bool build(two_blocks *s, cg_device dev, const ref_file *f) {
    s->params = cg_params_new(dev);
    s->buffers = cg_params_new(dev);
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT); // overwritten by the fixture's initial state
    s->model = cg_sequential_new();
    cg_sequential_add(s->model, cg_basic_block_new(s->params, s->buffers, "b1", C_IN, WIDTH, 2, &rng));
    cg_sequential_add(s->model, cg_basic_block_new(s->params, s->buffers, "b2", WIDTH, WIDTH, 1, &rng));
    cg_sequential_add(s->model, cg_global_avg_pool2d_new());
    cg_sequential_add(s->model, cg_linear_new(s->params, "fc", WIDTH, CLASSES, true, &rng));
    s->x = cg_tensor_new(dev, CG_F32, 4, (int64_t[]){BATCH, C_IN, SIDE, SIDE});
    s->labels = cg_tensor_new(dev, CG_I32, 1, (int64_t[]){BATCH});
    s->tape = cg_tape_new(dev, 4 << 20);

    const ref_array *x = ref_find(f, "x", s->x->numel), *labels = ref_find(f, "labels", BATCH);
    if (x == NULL || labels == NULL || !ref_same_shape(x, s->x)) return false;
    cg_tensor_copy_from_host(s->x, x->data, x->numel);
    int32_t classes[BATCH];
    for (int i = 0; i < BATCH; i++) {
        float v = labels->data[i];
        if (!(v >= 0 && v < CLASSES && v == (float)(int)v)) {
            fprintf(stderr, "FAIL fixture label %d is %g, not a class index\n", i, v);
            return false;
        }
        classes[i] = (int32_t)v;
    }
    cg_device_copy(dev, s->labels->data, cg_cpu(), classes, sizeof classes);
    // The model has the script's 17 parameters and 15 buffers: its 32 state_dict entries.
    if (s->params->count != 17 || s->buffers->count != 15) {
        fail("model", "%d parameters and %d buffers, expected 17 and 15", s->params->count, s->buffers->count);
        return false;
    }
    return true;
}

static void release(two_blocks *s) {
    cg_tape_free(s->tape);
    cg_tensor_free(s->x);
    cg_tensor_free(s->labels);
    cg_module_free(s->model);
    cg_params_free(s->params);
    cg_params_free(s->buffers);
}

// Every tensor of both blocks from the fixture's arrays "PREFIX" + name (the initial state: prefix "").
static bool set_state(two_blocks *s, const ref_file *f) {
    cg_params *blocks[2] = {s->params, s->buffers};
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < blocks[b]->count; i++) {
            cg_tensor *t = blocks[b]->tensors[i];
            const ref_array *a = ref_find(f, t->name, t->numel);
            if (a == NULL) return false;
            cg_tensor_copy_from_host(t, a->data, a->numel);
        }
    cg_params_zero_grad(s->params);
    return true;
}

// Every tensor of both blocks against the fixture's "PREFIX.name". Returns the max error.
static double check_state(two_blocks *s, const ref_file *f, const char *prefix) {
    cg_params *blocks[2] = {s->params, s->buffers};
    double max_err = 0.0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < blocks[b]->count; i++) {
            const cg_tensor *t = blocks[b]->tensors[i];
            char name[160];
            snprintf(name, sizeof name, "%s.%s", prefix, t->name);
            max_err = fmax(max_err, compare_tensor(name, t, f, name, tol));
        }
    return max_err;
}

// SGD(lr 0.1, momentum 0.9, Nesterov), weight decay 5e-4 on the weights of the convolutions and fc,
// none on BatchNorm's parameters and fc.bias (make_resblock_fixture.py's two parameter groups).
static cg_optim_config fixture_sgd(void) {
    cg_optim_config c = cg_sgd_config(0.1f);
    c.momentum = 0.9f;
    c.nesterov = true;
    c.weight_decay = 5e-4f;
    c.no_decay_bn_bias = true;
    return c;
}

static cg_tensor *smoothed_loss(cg_tape *t, cg_tensor *logits, cg_tensor *labels) {
    return cg_cross_entropy_smoothed(t, logits, labels, LABEL_SMOOTHING);
}

static void check_device(cg_device dev, const ref_file *f) {
    char buf[16];
    const char *device = cg_device_str(dev, buf, sizeof buf);
    printf("two residual blocks on %s against PyTorch (tolerance %.0e relative):\n", device, tol);
    two_blocks s;
    if (!build(&s, dev, f) || !set_state(&s, f)) {
        failures++;
        release(&s);
        return;
    }
    double forward = 0, gradients = 0, step1 = 0, step3 = 0;

    // Step 1 by hand: forward in training mode, both losses, backward (d/dx too), one SGD step.
    cg_optimizer *opt = cg_optimizer_new(s.params, fixture_sgd());
    s.x->requires_grad = true; // for d loss / d x
    cg_tensor *logits = cg_module_forward(s.model, s.tape, s.x);
    cg_tensor *loss = cg_cross_entropy_smoothed(s.tape, logits, s.labels, LABEL_SMOOTHING);
    cg_tensor *plain = cg_cross_entropy(s.tape, logits, s.labels);
    cg_optimizer_zero_grad(opt);
    cg_tape_backward(s.tape, loss);
    forward = fmax(forward, compare_tensor("logits", logits, f, "logits", tol));
    forward = fmax(forward, compare_tensor("loss", loss, f, "loss", tol));
    forward = fmax(forward, compare_tensor("loss_plain", plain, f, "loss_plain", tol));
    gradients = fmax(gradients, compare_tensor("grad.x", s.x->grad, f, "grad.x", tol));
    for (int i = 0; i < s.params->count; i++) {
        char name[160];
        snprintf(name, sizeof name, "grad.%s", s.params->tensors[i]->name);
        gradients = fmax(gradients, compare_tensor(name, s.params->tensors[i]->grad, f, name, tol));
    }
    cg_optimizer_step(opt);
    float losses[STEPS];
    losses[0] = cg_tensor_item(loss);
    cg_tape_clear(s.tape);
    s.x->requires_grad = false;
    s.x->grad = NULL; // it pointed into the arena just cleared
    step1 = check_state(&s, f, "step1");

    // Steps 2 and 3 on the same batch, then the evaluation-mode forward.
    for (int step = 1; step < STEPS; step++) {
        cg_optimizer_zero_grad(opt);
        loss = smoothed_loss(s.tape, cg_module_forward(s.model, s.tape, s.x), s.labels);
        cg_tape_backward(s.tape, loss);
        cg_optimizer_step(opt);
        losses[step] = cg_tensor_item(loss);
        cg_tape_clear(s.tape);
    }
    const ref_array *expected = ref_find(f, "steps.losses", STEPS);
    if (expected == NULL)
        failures++;
    else
        step3 = compare("steps.losses", losses, expected, tol);
    step3 = fmax(step3, check_state(&s, f, "step3"));
    cg_module_set_training(s.model, false);
    s.tape->grad_enabled = false;
    step3 = fmax(step3, compare_tensor("eval_logits", cg_module_forward(s.model, s.tape, s.x), f, "eval_logits", tol));
    cg_tape_clear(s.tape);
    cg_optimizer_free(opt);
    printf(" max errors on %s: logits and losses %.3g, gradients %.3g, state after 1 step %.3g, after 3 steps and "
           "eval logits %.3g\n", device, forward, gradients, step1, step3);
    release(&s);
}

int main(void) { return ref_run_on_devices(FIXTURE_PATH, "test_reference_resblock", check_device); }

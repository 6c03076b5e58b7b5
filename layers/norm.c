// norm.c: BatchNorm2d and Dropout modules over the batch_norm2d and dropout ops.
#include "layers/norm.h"
#include "core/kernels.h"

#include <stdio.h>
#include <stdlib.h>

// What a training-mode forward does besides the op: num_batches_tracked += 1, on the device (a
// kernel a CUDA Graph replays).
static void track(cg_module *m) {
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)m;
    if (m->training) cg_kernels_for(b->num_batches_tracked->device)->add_scalar(b->num_batches_tracked->data, 1.0f);
}

static cg_tensor *batch_norm_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)m;
    track(m);
    return cg_batch_norm2d(t, x, b->weight, b->bias, b->running_mean, b->running_var, m->training, b->momentum,
                           b->eps);
}

cg_tensor *cg_batch_norm2d_forward_activated(cg_module *m, cg_tape *t, cg_tensor *x, bool gelu) {
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)m;
    track(m);
    return (gelu ? cg_batch_norm2d_gelu : cg_batch_norm2d_relu)(t, x, b->weight, b->bias, b->running_mean,
                                                               b->running_var, m->training, b->momentum, b->eps);
}

cg_tensor *cg_batch_norm2d_forward_add_relu(cg_module *m, cg_tape *t, cg_tensor *x, cg_tensor *z) {
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)m;
    track(m);
    return cg_batch_norm2d_add_relu(t, x, b->weight, b->bias, b->running_mean, b->running_var, z, m->training,
                                    b->momentum, b->eps);
}

static void module_free(cg_module *m) { free(m); }

const cg_module_type cg_batch_norm2d_type = {.name = "BatchNorm2d", .forward = batch_norm_module_forward,
                                             .free = module_free};

// A tensor of n values (n = 0: a scalar, shape ()) called NAME.SUFFIX in block, set to value.
static cg_tensor *add_filled(cg_params *block, const char *name, const char *suffix, int64_t n, float value) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", name, suffix);
    cg_tensor *t = cg_params_add(block, key, n > 0 ? 1 : 0, &n);
    cg_tensor_fill(t, value);
    return t;
}

cg_module *cg_batch_norm2d_new(cg_params *params, cg_params *buffers, const char *name, int64_t channels) {
    cg_batch_norm2d_layer *b = cg_xcalloc(1, sizeof *b);
    b->base = cg_module_base(&cg_batch_norm2d_type);
    b->channels = channels;
    b->momentum = 0.1f;
    b->eps = 1e-5f;
    b->weight = add_filled(params, name, "weight", channels, 1.0f);
    b->bias = add_filled(params, name, "bias", channels, 0.0f);
    b->running_mean = add_filled(buffers, name, "running_mean", channels, 0.0f);
    b->running_var = add_filled(buffers, name, "running_var", channels, 1.0f);
    b->num_batches_tracked = add_filled(buffers, name, "num_batches_tracked", 0, 0.0f);
    b->running_mean->requires_grad = false; // statistics, not trained
    b->running_var->requires_grad = false;
    b->num_batches_tracked->requires_grad = false;
    return &b->base;
}

typedef struct {
    cg_module base;
    float p;
    cg_rng rng;
} dropout_layer;

static cg_tensor *dropout_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    dropout_layer *d = (dropout_layer *)m;
    return m->training && d->p > 0.0f ? cg_dropout(t, x, d->p, &d->rng) : x;
}

const cg_module_type cg_dropout_type = {.name = "Dropout", .forward = dropout_module_forward, .free = module_free};

cg_module *cg_dropout_new(float p, uint64_t seed) {
    CG_CHECK(p >= 0.0f && p < 1.0f, "Dropout: probability %g outside [0, 1)", (double)p);
    dropout_layer *d = cg_xcalloc(1, sizeof *d);
    d->base = cg_module_base(&cg_dropout_type);
    d->p = p;
    d->rng = cg_rng_new(seed, CG_STREAM_DROPOUT);
    return &d->base;
}

// params.c: the parameter and gradient blocks, grown by doubling while a model is built.
#define _POSIX_C_SOURCE 200809L
#include "core/params.h"

#include <stdlib.h>
#include <string.h>

cg_params *cg_params_new(cg_device device) {
    cg_params *p = cg_xcalloc(1, sizeof *p);
    p->device = device;
    return p;
}

void cg_params_free(cg_params *p) {
    if (p == NULL) return;
    for (int i = 0; i < p->count; i++) {
        free((char *)p->tensors[i]->name);
        free(p->tensors[i]->grad);
        free(p->tensors[i]);
    }
    free(p->tensors);
    free(p->offsets);
    cg_device_free(p->device, p->values);
    cg_device_free(p->device, p->grads);
    free(p);
}

// Point every parameter and gradient header at its slice of the current blocks.
static void repoint(cg_params *p) {
    for (int i = 0; i < p->count; i++) {
        p->tensors[i]->data = p->values + p->offsets[i];
        p->tensors[i]->grad->data = p->grads + p->offsets[i];
    }
}

static void grow_block(cg_params *p, int64_t need) {
    int64_t floats = p->block_floats ? p->block_floats : 1024;
    while (floats < need) floats *= 2;
    float *values = cg_device_alloc_for(p->device, (size_t)floats * sizeof(float), "the model's parameters");
    float *grads = cg_device_alloc_for(p->device, (size_t)floats * sizeof(float), "the parameters' gradients");
    cg_device_zero(p->device, values, (size_t)floats * sizeof(float));
    cg_device_zero(p->device, grads, (size_t)floats * sizeof(float));
    if (p->values) {
        cg_device_copy(p->device, values, p->device, p->values, (size_t)p->numel * sizeof(float));
        cg_device_copy(p->device, grads, p->device, p->grads, (size_t)p->numel * sizeof(float));
        cg_device_free(p->device, p->values);
        cg_device_free(p->device, p->grads);
    }
    p->values = values;
    p->grads = grads;
    p->block_floats = floats;
    repoint(p);
}

cg_tensor *cg_params_add(cg_params *p, const char *name, int ndim, const int64_t *shape) {
    CG_CHECK(cg_params_find(p, name) == NULL, "parameter '%s' added twice", name);
    if (p->count == p->capacity) {
        p->capacity = p->capacity ? 2 * p->capacity : 16;
        p->tensors = realloc(p->tensors, (size_t)p->capacity * sizeof *p->tensors);
        p->offsets = realloc(p->offsets, (size_t)p->capacity * sizeof *p->offsets);
        CG_CHECK(p->tensors && p->offsets, "out of host memory");
    }
    cg_tensor *t = cg_xcalloc(1, sizeof *t);
    cg_tensor_set_shape(t, ndim, shape);
    t->dtype = CG_F32;
    t->device = p->device;
    t->requires_grad = true;
    t->name = strdup(name);
    t->grad = cg_xcalloc(1, sizeof *t->grad);
    cg_tensor_set_shape(t->grad, ndim, shape);
    t->grad->dtype = CG_F32;
    t->grad->device = p->device;

    int64_t offset = p->numel;
    int64_t end = offset + (t->numel + CG_PARAM_ALIGN - 1) / CG_PARAM_ALIGN * CG_PARAM_ALIGN;
    p->tensors[p->count] = t;
    p->offsets[p->count] = offset;
    p->count++;
    if (end > p->block_floats)
        grow_block(p, end); // repoints every parameter, this one included
    p->numel = end;
    repoint(p);
    return t;
}

void cg_params_zero_grad(cg_params *p) {
    cg_device_zero(p->device, p->grads, (size_t)p->numel * sizeof(float));
}

int64_t cg_params_count(const cg_params *p) {
    int64_t n = 0;
    for (int i = 0; i < p->count; i++) n += p->tensors[i]->numel;
    return n;
}

cg_tensor *cg_params_find(const cg_params *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->tensors[i]->name, name) == 0) return p->tensors[i];
    return NULL;
}

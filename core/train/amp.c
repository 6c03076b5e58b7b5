// amp.c: the master weights' 16-bit copy, the device-side loss scale, and the backward and step
// of mixed-precision training (core/amp.h). The arithmetic is in the cast and amp_ kernels.
#define _POSIX_C_SOURCE 200809L
#include "core/train/amp.h"
#include "core/kernels.h"
#include "core/ops.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cg_status cg_precision_parse(const char *text, cg_precision *out) {
    if (strcmp(text, "fp32") == 0) *out = CG_PRECISION_FP32;
    else if (strcmp(text, "fp16") == 0) *out = CG_PRECISION_FP16;
    else if (strcmp(text, "bf16") == 0) *out = CG_PRECISION_BF16;
    else return cg_error(CG_ERR_ARG, "--precision: '%s' is not fp32, fp16 or bf16", text);
    return cg_ok();
}

const char *cg_precision_name(cg_precision p) {
    static const char *names[] = {"fp32", "fp16", "bf16"};
    CG_CHECK(p >= CG_PRECISION_FP32 && p <= CG_PRECISION_BF16, "unknown precision %d", (int)p);
    return names[p];
}

cg_dtype cg_precision_dtype(cg_precision p) {
    return p == CG_PRECISION_FP16 ? CG_F16 : p == CG_PRECISION_BF16 ? CG_BF16 : CG_F32;
}

cg_status cg_loss_scale_parse(const char *text, cg_grad_scaler_config *out) {
    if (strcmp(text, "dynamic") == 0) {
        *out = cg_grad_scaler_default_config();
        return cg_ok();
    }
    if (strcmp(text, "none") == 0) {
        *out = cg_grad_scaler_static_config(1.0f);
        return cg_ok();
    }
    if (strncmp(text, "static:", 7) == 0) {
        char *end = NULL;
        double s = strtod(text + 7, &end);
        if (end != text + 7 && *end == '\0' && isfinite(s) && s > 0 && s <= 3.0e38) {
            *out = cg_grad_scaler_static_config((float)s);
            return cg_ok();
        }
    }
    return cg_error(CG_ERR_ARG, "--loss-scale: '%s' is not dynamic, none or static:S with S > 0", text);
}

cg_grad_scaler_config cg_loss_scale_default(cg_precision p) {
    return p == CG_PRECISION_FP16 ? cg_grad_scaler_default_config() : cg_grad_scaler_static_config(1.0f);
}

// Which 16-bit weights are stored channels-last (amp.h), their headers marked so, and their
// slices in a table on the device for the refresh and the unscale pass. In the block's order:
// the offsets grow with the index (core/params.c), as the kernels' binary search needs.
static void keep_weights_channels_last(cg_amp *a) {
    cg_params *params = a->params;
    if (!cg_channels_last_wanted_on(params->device)) return;
    cg_amp_cl_slice *slices = cg_xcalloc((size_t)(params->count ? params->count : 1), sizeof *slices);
    for (int i = 0; i < params->count; i++) {
        cg_tensor *l = a->low[i];
        if (l->ndim != 4 || l->shape[0] % 8 != 0 || l->shape[1] % 8 != 0 || l->shape[2] * l->shape[3] < 2 ||
            l->numel > INT32_MAX)
            continue;
        CG_CHECK(params->offsets[i] % 8 == 0 && (a->cl_count == 0 || params->offsets[i] > slices[a->cl_count - 1].offset),
                 "mixed precision: parameter %s out of order or alignment in the block", l->name ? l->name : "?");
        slices[a->cl_count++] =
            (cg_amp_cl_slice){params->offsets[i], l->shape[0], l->shape[1], l->shape[2] * l->shape[3]};
        l->channels_last = l->grad->channels_last = true;
    }
    if (a->cl_count > 0) {
        size_t bytes = (size_t)a->cl_count * sizeof *slices;
        a->cl_slices = cg_device_alloc(params->device, bytes);
        cg_device_copy(params->device, a->cl_slices, cg_cpu(), slices, bytes);
    }
    free(slices);
}

cg_amp *cg_amp_new(cg_params *params, cg_precision precision, cg_grad_scaler_config scaler) {
    cg_amp *a = cg_xcalloc(1, sizeof *a);
    a->precision = precision;
    a->dtype = cg_precision_dtype(precision);
    a->params = params;
    a->scaler = scaler;
    cg_device d = params->device;
    float host_state[CG_AMP_STATE] = {0};
    host_state[CG_AMP_SCALE] = precision == CG_PRECISION_FP32 ? 1.0f : scaler.init_scale;
    a->state = cg_device_alloc(d, sizeof host_state);
    cg_device_copy(d, a->state, cg_cpu(), host_state, sizeof host_state);
    a->seed = cg_xcalloc(1, sizeof *a->seed);
    cg_tensor_set_shape(a->seed, 0, NULL);
    a->seed->dtype = CG_F32;
    a->seed->device = d;
    a->seed->data = a->state + CG_AMP_SCALE;
    if (precision == CG_PRECISION_FP32) return a;

    // The 16-bit block mirrors the f32 one: same offsets, so one cast covers every parameter.
    size_t bytes = (size_t)params->numel * cg_dtype_size(a->dtype);
    a->low_values = cg_device_alloc(d, bytes ? bytes : 2);
    a->low_grads = cg_device_alloc(d, bytes ? bytes : 2);
    cg_device_zero(d, a->low_grads, bytes);
    a->low = cg_xcalloc((size_t)(params->count ? params->count : 1), sizeof *a->low);
    for (int i = 0; i < params->count; i++) {
        cg_tensor *p = params->tensors[i];
        size_t offset = (size_t)params->offsets[i] * cg_dtype_size(a->dtype);
        cg_tensor *l = cg_xcalloc(1, sizeof *l);
        cg_tensor_set_shape(l, p->ndim, p->shape);
        l->dtype = a->dtype;
        l->device = d;
        l->data = (char *)a->low_values + offset;
        l->requires_grad = true;
        l->name = p->name;
        l->grad = cg_xcalloc(1, sizeof *l->grad);
        cg_tensor_set_shape(l->grad, p->ndim, p->shape);
        l->grad->dtype = a->dtype;
        l->grad->device = d;
        l->grad->data = (char *)a->low_grads + offset;
        a->low[i] = l;
        p->low = l;
    }
    keep_weights_channels_last(a);
    cg_amp_refresh(a);
    return a;
}

void cg_amp_free(cg_amp *a) {
    if (a == NULL) return;
    cg_device d = a->params->device;
    if (a->low) {
        for (int i = 0; i < a->params->count; i++) {
            a->params->tensors[i]->low = NULL;
            free(a->low[i]->grad);
            free(a->low[i]);
        }
        free(a->low);
    }
    cg_device_free(d, a->low_values);
    cg_device_free(d, a->low_grads);
    if (a->cl_slices) cg_device_free(d, a->cl_slices);
    cg_device_free(d, a->state);
    free(a->seed);
    free(a);
}

void cg_amp_attach(const cg_amp *a, cg_tape *t) { t->autocast = a->dtype; }

void cg_amp_refresh(cg_amp *a) {
    if (a->dtype == CG_F32) return;
    const cg_kernels *k = cg_kernels_for(a->params->device);
    k->amp_refresh(a->low_values, a->dtype, a->params->values, a->params->numel, a->cl_slices, a->cl_count);
}

void cg_amp_backward(cg_amp *a, cg_tape *t, cg_tensor *loss) {
    if (a->dtype == CG_F32) {
        cg_tape_backward(t, loss);
        return;
    }
    cg_params *p = a->params;
    const cg_kernels *k = cg_kernels_for(p->device);
    cg_device_zero(p->device, a->low_grads, (size_t)p->numel * cg_dtype_size(a->dtype));
    k->fill(a->state + CG_AMP_FOUND_INF, 0.0f, 1);
    cg_tape_backward_seeded(t, loss, a->seed); // every gradient comes out multiplied by S
    // One pass over the whole block: the 16-bit copies' gradients join the f32 ones (a parameter
    // used in an f32 op, e.g. batch norm's, has its gradient there already), inf / NaN is looked
    // for, and everything is divided by S.
    k->amp_unscale_check(p->grads, a->low_grads, a->dtype, a->state, p->numel, a->cl_slices, a->cl_count);
}

void cg_amp_step(cg_amp *a, cg_optimizer *o) {
    CG_CHECK(o->params == a->params, "cg_amp_step: the optimizer is for another parameter block");
    if (a->dtype == CG_F32) {
        cg_optimizer_step(o);
        return;
    }
    const cg_kernels *k = cg_kernels_for(a->params->device);
    o->found_inf = a->state + CG_AMP_FOUND_INF; // the optimizer skips on the device
    cg_optimizer_step(o);
    const cg_grad_scaler_config *c = &a->scaler;
    if (c->dynamic)
        k->amp_update_scale(a->state, c->growth_factor, c->backoff_factor, c->growth_interval);
    else // static: S stays; skipped steps are still counted
        k->amp_update_scale(a->state, 1.0f, 1.0f, INT_MAX);
    cg_amp_refresh(a);
}

cg_amp_stats cg_amp_read(const cg_amp *a) {
    float s[CG_AMP_STATE];
    cg_device_copy(cg_cpu(), s, a->params->device, a->state, sizeof s);
    return (cg_amp_stats){.scale = s[CG_AMP_SCALE], .skipped = (int64_t)s[CG_AMP_SKIPPED],
                          .steps = (int64_t)s[CG_AMP_STEPS]};
}

// quantize.c: how a trained fp32 Sequential becomes the int8 model of core/quant/quantized.h: each
// layer kind's int8 counterpart (Conv2d and Linear with their weights, a ReLU fused into the layer
// before it, MaxPool2d, Flatten; Dropout dropped), and the fp32 layers run one by one to calibrate
// the int8 model and to measure its error. The int8 arithmetic itself is core/quant's.
#include "layers/quantize.h"

#include <stdio.h>
#include <string.h>

#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/activation.h"
#include "layers/norm.h"
#include "layers/sequential.h"

// "c1" from the weight's parameter name "c1.weight".
static void layer_name(char *dst, size_t size, const cg_tensor *weight, const char *fallback) {
    snprintf(dst, size, "%s", weight->name ? weight->name : fallback);
    char *dot = strrchr(dst, '.');
    if (dot) *dot = '\0';
}

cg_status cg_qmodel_new(cg_qmodel **out, cg_module *fp32, int64_t C, int64_t H, int64_t W, cg_observer_kind kind,
                        double percentile, cg_device device) {
    *out = NULL;
    if (!cg_module_is(fp32, &cg_sequential_type)) return cg_error(CG_ERR_ARG, "quantise: the model is a %s, not a Sequential", fp32->type->name);
    const cg_sequential *seq = (const cg_sequential *)fp32;
    cg_qmodel *m = cg_qmodel_alloc(C, H, W, kind, percentile, device);
    m->fp32 = fp32;
    int64_t c = C, h = H, w = W;          // the current activation, per image
    bool flat = false;                    // after Flatten: (c h w, 1, 1)
    int64_t fc = 0, fh = 0, fw = 0;       // the shape that was flattened
    cg_status s = cg_ok();
    for (int i = 0; i < seq->count && s.code == CG_OK; i++) {
        cg_module *child = seq->children[i];
        cg_qlayer *L = &m->layers[m->count];
        memset(L, 0, sizeof *L);
        L->src_index = i;
        L->in_c = c, L->in_h = h, L->in_w = w;
        if (cg_module_is(child, &cg_conv2d_type)) {
            const cg_conv2d_layer *cv = (const cg_conv2d_layer *)child;
            if (flat || cv->in_channels != c)
                s = cg_error(CG_ERR_ARG, "quantise: layer %d (Conv2d) takes %lld channels, its input has %lld", i,
                             (long long)cv->in_channels, (long long)(flat ? c * h * w : c));
            L->kind = CG_QLAYER_CONV;
            L->kernel = cv->kernel_size, L->stride = cv->stride, L->pad = cv->padding;
            L->out_c = cv->out_channels;
            L->out_h = (h + 2 * L->pad - L->kernel) / L->stride + 1;
            L->out_w = (w + 2 * L->pad - L->kernel) / L->stride + 1;
            L->k_real = c * L->kernel * L->kernel;
            L->weight = cv->weight, L->bias = cv->bias;
            layer_name(L->name, sizeof L->name, cv->weight, "conv");
        } else if (cg_module_is(child, &cg_linear_type)) {
            const cg_linear_layer *ln = (const cg_linear_layer *)child;
            if (ln->in_features != c * h * w || (!flat && (h != 1 || w != 1)))
                s = cg_error(CG_ERR_ARG, "quantise: layer %d (Linear) takes %lld features, its input is %lldx%lldx%lld "
                             "(a Flatten missing?)", i, (long long)ln->in_features, (long long)c, (long long)h,
                             (long long)w);
            L->kind = CG_QLAYER_LINEAR;
            L->flattened_input = flat;
            L->flat_c = fc, L->flat_h = fh, L->flat_w = fw;
            L->in_c = c * h * w, L->in_h = 1, L->in_w = 1;
            L->out_c = ln->out_features, L->out_h = 1, L->out_w = 1;
            L->k_real = ln->in_features;
            L->weight = ln->weight, L->bias = ln->bias;
            layer_name(L->name, sizeof L->name, ln->weight, "linear");
            flat = false;
        } else if (cg_module_is(child, &cg_max_pool2d_type)) {
            int kernel, stride;
            cg_max_pool2d_config(child, &kernel, &stride);
            if (flat || h < kernel || w < kernel)
                s = cg_error(CG_ERR_ARG, "quantise: layer %d (MaxPool2d %d) on a %lldx%lld input", i, kernel,
                             (long long)h, (long long)w);
            L->kind = CG_QLAYER_MAX_POOL;
            L->kernel = kernel, L->stride = stride;
            L->out_c = c, L->out_h = (h - kernel) / stride + 1, L->out_w = (w - kernel) / stride + 1;
            snprintf(L->name, sizeof L->name, "MaxPool2d");
        } else if (cg_module_is(child, &cg_flatten_type)) {
            L->kind = CG_QLAYER_FLATTEN;
            if (!flat) fc = c, fh = h, fw = w;
            flat = true;
            L->out_c = c * h * w, L->out_h = 1, L->out_w = 1;
            snprintf(L->name, sizeof L->name, "Flatten");
        } else if (cg_module_is(child, &cg_relu_type)) {
            cg_qlayer *prev = m->count > 0 ? &m->layers[m->count - 1] : NULL;
            if (prev == NULL || (prev->kind != CG_QLAYER_CONV && prev->kind != CG_QLAYER_LINEAR) || prev->relu ||
                prev->src_index != i - 1)
                s = cg_error(CG_ERR_ARG, "quantise: layer %d (ReLU) does not follow a Conv2d or Linear, so it "
                             "cannot be fused", i);
            else
                prev->relu = true, prev->src_index = i;
            continue;
        } else if (cg_module_is(child, &cg_dropout_type)) {
            continue; // the identity at inference
        } else {
            s = cg_error(CG_ERR_ARG, "quantise: layer %d is a %s, which has no int8 version (Conv2d, Linear, "
                         "ReLU after them, MaxPool2d, Flatten, Dropout)", i, child->type->name);
            break;
        }
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR) cg_observer_init(&L->observer, kind, percentile);
        c = L->out_c, h = L->out_h, w = L->out_w;
        m->count++;
    }
    int last = m->count - 1;
    if (s.code == CG_OK && (last < 0 || (m->layers[last].kind != CG_QLAYER_CONV && m->layers[last].kind != CG_QLAYER_LINEAR)))
        s = cg_error(CG_ERR_ARG, "quantise: the model must end with a Conv2d or Linear layer (its logits are "
                     "dequantised to f32)");
    if (s.code != CG_OK) {
        cg_qmodel_free(m);
        return s;
    }
    m->layers[last].to_float = true;
    *out = m;
    return cg_ok();
}

// ---- running the fp32 model layer by layer -----------------------------------------------------

// The output of every fp32 child for x (no recording); outs[i] lives in t's arena until cleared.
static void run_fp32(cg_qmodel *m, cg_tape *t, cg_tensor *x, cg_tensor **outs) {
    const cg_sequential *seq = (const cg_sequential *)m->fp32;
    bool was_training = m->fp32->training, grad = t->grad_enabled;
    cg_module_set_training(m->fp32, false);
    t->grad_enabled = false;
    for (int i = 0; i < seq->count; i++) outs[i] = x = cg_module_forward(seq->children[i], t, x);
    t->grad_enabled = grad;
    cg_module_set_training(m->fp32, was_training);
}

void cg_qmodel_calibrate(cg_qmodel *m, cg_tape *t, cg_tensor *x) {
    CG_CHECK(!m->converted, "calibrate after convert");
    cg_tensor *outs[CG_SEQUENTIAL_MAX];
    cg_qmodel_observe(m, -1, x);
    run_fp32(m, t, x, outs);
    for (int i = 0; i < m->count; i++) {
        const cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR) cg_qmodel_observe(m, i, outs[L->src_index]);
    }
    cg_tape_clear(t);
}

void cg_qmodel_measure_error(cg_qmodel *m, cg_tape *t, cg_tensor *x) {
    cg_tensor *outs[CG_SEQUENTIAL_MAX];
    cg_qmodel_forward(m, x);
    run_fp32(m, t, x, outs);
    for (int i = 0; i < m->count; i++) {
        const cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR) cg_qmodel_compare(m, i, outs[L->src_index]);
    }
    cg_tape_clear(t);
}

// quantized.c: the int8 model (quantized.h): its layers' buffers, the ranges its observers see,
// quantising the weights, the int8 forward through the device's int8 kernels (core/quant/qkernels.h)
// and the error per layer. It knows no fp32 module: layers/quantize.c plans the model from a
// trained Sequential and runs the fp32 layers. Formulas in quantized.h and qkernels.h.
#include "core/quant/quantized.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/qkernels.h"

cg_qmodel *cg_qmodel_alloc(int64_t C, int64_t H, int64_t W, cg_observer_kind kind, double percentile,
                           cg_device device) {
    cg_qmodel *m = cg_xcalloc(1, sizeof *m);
    m->device = device;
    m->in_c = C, m->in_h = H, m->in_w = W;
    cg_observer_init(&m->input_observer, kind, percentile);
    return m;
}

static void free_buffers(cg_qmodel *m) {
    if (m->input) cg_device_free(m->device, m->input);
    m->input = NULL;
    for (int i = 0; i < m->count; i++) {
        cg_qlayer *L = &m->layers[i];
        if (L->out && L->kind != CG_QLAYER_FLATTEN) cg_device_free(m->device, L->out);
        L->out = NULL;
    }
    cg_tensor_free(m->logits_view);
    cg_tensor_free(m->logits);
    m->logits = m->logits_view = NULL;
    m->capacity = 0;
}

void cg_qmodel_free(cg_qmodel *m) {
    if (m == NULL) return;
    free_buffers(m);
    cg_observer_free(&m->input_observer);
    for (int i = 0; i < m->count; i++) {
        cg_qlayer *L = &m->layers[i];
        cg_observer_free(&L->observer);
        if (L->w) cg_device_free(m->device, L->w);
        if (L->offset) cg_device_free(m->device, L->offset);
        if (L->multiplier) cg_device_free(m->device, L->multiplier);
    }
    free(m);
}

// ---- what the fp32 model's activations show -------------------------------------------------------

// A tensor's values on the host (a new array the caller frees).
static float *to_host(const cg_tensor *x) {
    float *h = cg_xmalloc(sizeof(float) * (size_t)x->numel);
    cg_tensor_copy_to_host(h, x, x->numel);
    return h;
}

void cg_qmodel_observe(cg_qmodel *m, int i, const cg_tensor *x) {
    CG_CHECK(!m->converted, "calibrate after convert");
    CG_CHECK(i >= -1 && i < m->count, "observe: no layer %d", i);
    cg_observer *o = i < 0 ? &m->input_observer : &m->layers[i].observer;
    float *h = to_host(x);
    cg_observer_update(o, h, x->numel);
    free(h);
}

// ---- conversion ---------------------------------------------------------------------------------

// Upload n bytes from the host to a new buffer on the model's device.
static void *upload(cg_device d, const void *host, size_t bytes) {
    void *p = cg_device_alloc(d, bytes);
    cg_device_copy(d, p, cg_cpu(), host, bytes);
    return p;
}

// The fp32 weight as (out_c, k_real) rows in the int8 kernels' column order: Conv2d (K, C, R, S)
// -> (K, R, S, C); a Linear after Flatten of (C, H, W): columns (c, h, w) -> (h, w, c).
static float *weight_rows(const cg_qlayer *L, const float *w) {
    float *rows = cg_xmalloc(sizeof(float) * (size_t)(L->out_c * L->k_real));
    for (int64_t j = 0; j < L->out_c; j++) {
        const float *src = w + j * L->k_real;
        float *dst = rows + j * L->k_real;
        if (L->kind == CG_QLAYER_CONV) {
            int64_t C = L->in_c, R = L->kernel;
            for (int64_t c = 0; c < C; c++)
                for (int64_t r = 0; r < R; r++)
                    for (int64_t s = 0; s < R; s++) dst[(r * R + s) * C + c] = src[(c * R + r) * R + s];
        } else if (L->flattened_input) {
            int64_t C = L->flat_c, H = L->flat_h, W = L->flat_w;
            for (int64_t c = 0; c < C; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t x = 0; x < W; x++) dst[(y * W + x) * C + c] = src[(c * H + y) * W + x];
        } else {
            memcpy(dst, src, sizeof(float) * (size_t)L->k_real);
        }
    }
    return rows;
}

static void convert_layer(cg_qmodel *m, cg_qlayer *L, cg_qparams in_q) {
    const cg_tensor *weight = L->weight, *bias = L->bias;
    const int64_t N = L->out_c, K = L->k_real, Kp = CG_QK_PAD(K);
    float *w = to_host(weight), *rows = weight_rows(L, w);
    float *b = bias ? to_host(bias) : cg_xcalloc((size_t)N, sizeof(float));
    cg_qparams *pw = cg_xmalloc(sizeof(cg_qparams) * (size_t)N);
    cg_qparams_per_channel(pw, rows, N, K, true);
    int8_t *q = cg_xcalloc((size_t)(N * Kp), 1);
    int32_t *offset = cg_xmalloc(sizeof(int32_t) * (size_t)N);
    float *mult = cg_xmalloc(sizeof(float) * (size_t)N);
    double signal = 0, noise = 0;
    if (L->to_float) {
        L->out_q = (cg_qparams){1.0f, 0};
    } else {
        float lo, hi;
        cg_observer_range(&L->observer, &lo, &hi);
        L->out_q = cg_qparams_affine(L->relu ? 0.0f : lo, hi);
    }
    for (int64_t j = 0; j < N; j++) {
        cg_quantize(q + j * Kp, rows + j * K, K, pw[j]);
        int64_t sum = 0;
        for (int64_t k = 0; k < K; k++) {
            sum += q[j * Kp + k];
            double back = (double)pw[j].scale * q[j * Kp + k], v = rows[j * K + k];
            signal += v * v;
            noise += (v - back) * (v - back);
        }
        double s = (double)in_q.scale * pw[j].scale; // one integer step of the sum, in real units
        double bq = nearbyint(b[j] / s);
        bq = bq > 1e9 ? 1e9 : bq < -1e9 ? -1e9 : bq;
        offset[j] = (int32_t)bq - in_q.zero_point * (int32_t)sum;
        mult[j] = (float)(L->to_float ? s : s / L->out_q.scale);
    }
    L->weight_sqnr_db = noise > 0 ? 10.0 * log10(signal / noise) : INFINITY;
    L->w = upload(m->device, q, (size_t)(N * Kp));
    L->offset = upload(m->device, offset, sizeof(int32_t) * (size_t)N);
    L->multiplier = upload(m->device, mult, sizeof(float) * (size_t)N);
    free(w), free(rows), free(b), free(pw), free(q), free(offset), free(mult);
}

void cg_qmodel_convert(cg_qmodel *m) {
    CG_CHECK(!m->converted && m->input_observer.count > 0, "convert needs at least one calibration batch");
    float lo, hi;
    cg_observer_range(&m->input_observer, &lo, &hi);
    m->input_q = cg_qparams_affine(lo, hi);
    cg_qparams q = m->input_q;
    for (int i = 0; i < m->count; i++) {
        cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR)
            convert_layer(m, L, q);
        else
            L->out_q = q;
        q = L->out_q;
    }
    m->converted = true;
}

// ---- the int8 forward --------------------------------------------------------------------------

static void ensure_capacity(cg_qmodel *m, int64_t N) {
    if (N <= m->capacity) return;
    free_buffers(m);
    m->capacity = N;
    m->input = cg_device_alloc(m->device, (size_t)(N * m->in_c * m->in_h * m->in_w));
    for (int i = 0; i < m->count; i++) {
        cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_FLATTEN) continue; // shares its input's buffer
        size_t bytes = (size_t)(N * L->out_c * L->out_h * L->out_w) * (L->to_float ? sizeof(float) : 1);
        L->out = cg_device_alloc(m->device, bytes);
    }
    cg_qlayer *last = &m->layers[m->count - 1];
    m->logits = cg_xcalloc(1, sizeof *m->logits); // a header over the last layer's buffer
    cg_tensor_set_shape(m->logits, 2, (int64_t[]){N, last->out_c * last->out_h * last->out_w});
    m->logits->dtype = CG_F32;
    m->logits->device = m->device;
    m->logits->data = last->out;
}

cg_tensor *cg_qmodel_forward(cg_qmodel *m, const cg_tensor *x) {
    CG_CHECK(m->converted, "forward before convert");
    CG_CHECK(x->dtype == CG_F32 && x->ndim == 4 && x->shape[1] == m->in_c && x->shape[2] == m->in_h &&
                 x->shape[3] == m->in_w && cg_device_equal(x->device, m->device),
             "int8 model: input must be (N, %lld, %lld, %lld) f32 on the model's device", (long long)m->in_c,
             (long long)m->in_h, (long long)m->in_w);
    const int64_t N = x->shape[0];
    const cg_qkernels *k = cg_qkernels_for(m->device);
    ensure_capacity(m, N);
    k->quantize_nchw(m->input, x->data, N, m->in_c, m->in_h * m->in_w, m->input_q.scale, m->input_q.zero_point);
    const int8_t *in = m->input;
    cg_qparams in_q = m->input_q;
    for (int i = 0; i < m->count; i++) {
        cg_qlayer *L = &m->layers[i];
        cg_qoutput stage = {L->offset, L->multiplier, L->out_q.zero_point, L->relu, L->to_float};
        switch (L->kind) {
        case CG_QLAYER_CONV:
            k->conv2d(L->out, in, L->w, &stage, in_q.zero_point, N, L->in_h, L->in_w, L->in_c, L->out_c, L->kernel,
                      L->kernel, L->stride, L->pad, L->out_h, L->out_w);
            break;
        case CG_QLAYER_LINEAR: k->linear(L->out, in, L->w, &stage, N, L->out_c, L->in_c); break;
        case CG_QLAYER_MAX_POOL:
            k->max_pool2d(L->out, in, N, L->in_h, L->in_w, L->in_c, L->kernel, L->stride, L->out_h, L->out_w);
            break;
        case CG_QLAYER_FLATTEN: L->out = (void *)in; break;
        }
        in = L->out;
        in_q = L->out_q;
    }
    cg_tensor_free(m->logits_view);
    m->logits_view = cg_tensor_first_rows(m->logits, N);
    return m->logits_view;
}

void cg_qmodel_layer_output(const cg_qmodel *m, int i, int64_t N, float *host) {
    const cg_qlayer *L = &m->layers[i];
    CG_CHECK(L->out != NULL && N <= m->capacity, "layer %d has no output of %lld images", i, (long long)N);
    const int64_t C = L->out_c, HW = L->out_h * L->out_w, n_all = N * C * HW;
    if (L->to_float) { // (N, P, Q, K) f32
        float *f = cg_xmalloc(sizeof(float) * (size_t)n_all);
        cg_device_copy(cg_cpu(), f, m->device, L->out, sizeof(float) * (size_t)n_all);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < C; c++) host[(n * C + c) * HW + p] = f[(n * HW + p) * C + c];
        free(f);
        return;
    }
    int8_t *q = cg_xmalloc((size_t)n_all);
    cg_device_copy(cg_cpu(), q, m->device, L->out, (size_t)n_all);
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < HW; p++)
            for (int64_t c = 0; c < C; c++)
                host[(n * C + c) * HW + p] = L->out_q.scale * (float)((int32_t)q[(n * HW + p) * C + c] - L->out_q.zero_point);
    free(q);
}

void cg_qmodel_compare(cg_qmodel *m, int i, const cg_tensor *ref) {
    cg_qlayer *L = &m->layers[i];
    const int64_t N = ref->shape[0];
    float *want = to_host(ref), *got = cg_xmalloc(sizeof(float) * (size_t)ref->numel);
    cg_qmodel_layer_output(m, i, N, got);
    for (int64_t j = 0; j < ref->numel; j++) {
        double d = (double)want[j] - got[j];
        L->signal += (double)want[j] * want[j];
        L->noise += d * d;
    }
    free(want);
    free(got);
}

int64_t cg_qmodel_bytes(const cg_qmodel *m) {
    int64_t bytes = 8; // the input's scale and zero point
    for (int i = 0; i < m->count; i++) {
        const cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR)
            bytes += L->out_c * L->k_real + L->out_c * (4 + 4) + 8; // weights, bias + scale, output's params
    }
    return bytes;
}

int64_t cg_qmodel_fp32_bytes(const cg_qmodel *m) {
    int64_t bytes = 0;
    for (int i = 0; i < m->count; i++) {
        const cg_qlayer *L = &m->layers[i];
        if (L->kind == CG_QLAYER_CONV || L->kind == CG_QLAYER_LINEAR) bytes += 4 * (L->out_c * L->k_real + L->out_c);
    }
    return bytes;
}

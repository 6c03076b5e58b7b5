// summary.c: the summary's walk over the module tree. Each kind says what it does to the shape of
// one image; the layers with weights add a row. It computes nothing on a device.
#include "layers/summary.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/pool.h"
#include "layers/residual.h"
#include "layers/sequential.h"

#include <string.h>

typedef struct {
    cg_summary_row *rows;
    int max, count;
} row_list;

typedef struct {
    int ndim;
    int64_t s[3];
} image_shape;

static void add_row(row_list *l, const cg_module *m, const cg_tensor *weight, const cg_tensor *bias,
                    image_shape out, int64_t flops) {
    if (l->count < l->max) {
        cg_summary_row *r = &l->rows[l->count];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", weight->name ? weight->name : "?");
        size_t n = strlen(r->name);
        if (n > 7 && strcmp(r->name + n - 7, ".weight") == 0) r->name[n - 7] = '\0';
        r->kind = m->type->name;
        r->ndim = out.ndim;
        memcpy(r->shape, out.s, sizeof r->shape);
        r->params = weight->numel + (bias ? bias->numel : 0);
        r->flops = flops;
    }
    l->count++;
}

static image_shape walk(cg_module *m, image_shape in, row_list *l);

// (C, H, W) -> (C, (H - k) / s + 1, (W - k) / s + 1), as the pooling ops.
static image_shape pooled(const char *kind, image_shape in, int kernel, int stride) {
    CG_CHECK(in.ndim == 3 && in.s[1] >= kernel && in.s[2] >= kernel, "summary: %s %d on an input of %d dims "
             "(%lld x %lld)", kind, kernel, in.ndim, (long long)in.s[1], (long long)in.s[2]);
    return (image_shape){3, {in.s[0], (in.s[1] - kernel) / stride + 1, (in.s[2] - kernel) / stride + 1}};
}

static image_shape walk(cg_module *m, image_shape in, row_list *l) {
    if (cg_module_is(m, &cg_conv2d_type)) {
        const cg_conv2d_layer *c = (const cg_conv2d_layer *)m;
        CG_CHECK(in.ndim == 3 && in.s[0] == c->in_channels, "summary: Conv2d %s takes %lld channels",
                 c->weight->name, (long long)c->in_channels);
        int64_t k = c->kernel_size;
        image_shape out = {3, {c->out_channels, (in.s[1] + 2 * c->padding - k) / c->stride + 1,
                               (in.s[2] + 2 * c->padding - k) / c->stride + 1}};
        add_row(l, m, c->weight, c->bias, out, 2 * c->in_channels * k * k * out.s[0] * out.s[1] * out.s[2]);
        return out;
    }
    if (cg_module_is(m, &cg_batch_norm2d_type)) {
        const cg_batch_norm2d_layer *b = (const cg_batch_norm2d_layer *)m;
        add_row(l, m, b->weight, b->bias, in, 0);
        return in;
    }
    if (cg_module_is(m, &cg_linear_type)) {
        const cg_linear_layer *f = (const cg_linear_layer *)m;
        CG_CHECK(in.ndim == 1 && in.s[0] == f->in_features, "summary: Linear %s takes %lld features",
                 f->weight->name, (long long)f->in_features);
        image_shape out = {1, {f->out_features, 1, 1}};
        add_row(l, m, f->weight, f->bias, out, 2 * f->in_features * f->out_features);
        return out;
    }
    if (cg_module_is(m, &cg_max_pool2d_type)) {
        int kernel, stride;
        cg_max_pool2d_config(m, &kernel, &stride);
        return pooled("MaxPool2d", in, kernel, stride);
    }
    if (cg_module_is(m, &cg_avg_pool2d_type)) {
        int kernel, stride;
        cg_avg_pool2d_config(m, &kernel, &stride);
        return pooled("AvgPool2d", in, kernel, stride);
    }
    if (cg_module_is(m, &cg_global_avg_pool2d_type)) return (image_shape){1, {in.s[0], 1, 1}};
    if (cg_module_is(m, &cg_flatten_type)) return (image_shape){1, {in.s[0] * in.s[1] * in.s[2], 1, 1}};
    if (cg_module_is(m, &cg_sequential_type)) {
        cg_sequential *s = (cg_sequential *)m;
        for (int i = 0; i < s->count; i++) in = walk(s->children[i], in, l);
        return in;
    }
    if (cg_module_is(m, &cg_basic_block_type)) {
        cg_basic_block *b = (cg_basic_block *)m;
        image_shape out = walk(b->bn2, walk(b->conv2, walk(b->bn1, walk(b->conv1, in, l), l), l), l);
        if (b->downsample) walk(b->downsample, in, l);
        return out;
    }
    if (cg_module_is(m, &cg_relu_type) || cg_module_is(m, &cg_sigmoid_type) || cg_module_is(m, &cg_gelu_type) ||
        cg_module_is(m, &cg_scale_type) || cg_module_is(m, &cg_dropout_type))
        return in;
    CG_CHECK(false, "summary: module kind %s is not known to layers/summary.c", m->type->name);
    return in;
}

int cg_summary(cg_module *model, int ndim, const int64_t *shape, cg_summary_row *rows, int max_rows, int *out_ndim,
               int64_t *out_shape) {
    CG_CHECK(ndim == 1 || ndim == 3, "summary: an image has 1 or 3 dims, not %d", ndim);
    image_shape in = {ndim, {1, 1, 1}};
    for (int d = 0; d < ndim; d++) in.s[d] = shape[d];
    if (ndim == 1) in = (image_shape){1, {shape[0], 1, 1}};
    row_list l = {rows, max_rows, 0};
    image_shape out = walk(model, in, &l);
    if (out_ndim) *out_ndim = out.ndim;
    if (out_shape) memcpy(out_shape, out.s, (size_t)out.ndim * sizeof *out_shape);
    return l.count;
}

// v with a comma every three digits into buf.
static const char *with_commas(int64_t v, char *buf, size_t size) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(digits), at = 0;
    if (v < 0 && at + 1 < size) buf[at++] = '-';
    for (size_t i = 0; i < n && at + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = '\0';
    return buf;
}

void cg_summary_print(FILE *f, const cg_summary_row *rows, int n, int64_t *total_params, int64_t *total_flops) {
    int64_t params = 0, flops = 0;
    char a[32], b[32], shape[48];
    fprintf(f, "%-28s %-12s %-18s %12s %16s\n", "layer", "kind", "output", "parameters", "FLOPs/image");
    for (int i = 0; i < n; i++) {
        const cg_summary_row *r = &rows[i];
        if (r->ndim == 1)
            snprintf(shape, sizeof shape, "%lld", (long long)r->shape[0]);
        else
            snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)r->shape[0], (long long)r->shape[1],
                     (long long)r->shape[2]);
        fprintf(f, "%-28s %-12s %-18s %12s %16s\n", r->name, r->kind, shape, with_commas(r->params, a, sizeof a),
                with_commas(r->flops, b, sizeof b));
        params += r->params;
        flops += r->flops;
    }
    fprintf(f, "%-28s %-12s %-18s %12s %16s\n", "total", "", "", with_commas(params, a, sizeof a),
            with_commas(flops, b, sizeof b));
    if (total_params) *total_params = params;
    if (total_flops) *total_flops = flops;
}

// tensor.c: creating, filling, copying, reshaping and printing tensors.
// Arithmetic on tensors lives in ops.c; this file only moves bytes.
#include "core/tensor.h"
#include "core/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_tensor_set_shape(cg_tensor *t, int ndim, const int64_t *shape) {
    CG_CHECK(ndim >= 0 && ndim <= CG_MAX_DIMS, "ndim %d outside 0..%d", ndim, CG_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < CG_MAX_DIMS; i++) t->shape[i] = 1;
    for (int i = 0; i < ndim; i++) {
        CG_CHECK(shape[i] >= 1, "dimension %d is %lld; every dimension must be >= 1", i, (long long)shape[i]);
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
}

size_t cg_tensor_bytes(const cg_tensor *t) { return (size_t)t->numel * cg_dtype_size(t->dtype); }

const char *cg_shape_str(const cg_tensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

bool cg_same_shape(const cg_tensor *a, const cg_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

cg_tensor *cg_tensor_new(cg_device device, cg_dtype dtype, int ndim, const int64_t *shape) {
    cg_tensor *t = cg_xcalloc(1, sizeof *t);
    cg_tensor_set_shape(t, ndim, shape);
    t->dtype = dtype;
    t->device = device;
    t->data = cg_device_alloc(device, cg_tensor_bytes(t));
    t->owns_data = true;
    return t;
}

void cg_tensor_free(cg_tensor *t) {
    if (t == NULL) return;
    if (t->owns_data) cg_device_free(t->device, t->data);
    free(t);
}

void cg_tensor_fill(cg_tensor *t, float value) {
    if (t->dtype == CG_F32) {
        cg_kernels_for(t->device)->fill((float *)t->data, value, t->numel);
    } else if (t->dtype == CG_I32) {
        // Rare (tests, labels): build on the host and copy.
        int32_t *host = cg_xmalloc(cg_tensor_bytes(t));
        for (int64_t i = 0; i < t->numel; i++) host[i] = (int32_t)value;
        cg_tensor_copy_from_host(t, host, t->numel);
        free(host);
    } else {
        CG_CHECK(0, "cg_tensor_fill: dtype %s not supported yet", cg_dtype_name(t->dtype));
    }
}

void cg_tensor_copy(cg_tensor *dst, const cg_tensor *src) {
    CG_CHECK(dst->numel == src->numel && dst->dtype == src->dtype, "copy %lld %s into %lld %s",
             (long long)src->numel, cg_dtype_name(src->dtype), (long long)dst->numel, cg_dtype_name(dst->dtype));
    cg_device_copy(dst->device, dst->data, src->device, src->data, cg_tensor_bytes(src));
}

void cg_tensor_copy_from_host(cg_tensor *t, const void *host, int64_t count) {
    CG_CHECK(count >= 0 && count <= t->numel, "copy of %lld elements into a tensor of %lld", (long long)count,
             (long long)t->numel);
    cg_device_copy(t->device, t->data, cg_cpu(), host, (size_t)count * cg_dtype_size(t->dtype));
}

void cg_tensor_copy_to_host(void *host, const cg_tensor *t, int64_t count) {
    CG_CHECK(count >= 0 && count <= t->numel, "copy of %lld elements out of a tensor of %lld", (long long)count,
             (long long)t->numel);
    cg_device_copy(cg_cpu(), host, t->device, t->data, (size_t)count * cg_dtype_size(t->dtype));
}

cg_tensor *cg_tensor_reshape(cg_tensor *t, int ndim, const int64_t *shape) {
    cg_tensor *r = cg_xcalloc(1, sizeof *r);
    cg_tensor_set_shape(r, ndim, shape);
    char a[64], b[64];
    CG_CHECK(r->numel == t->numel, "reshape %s to %s changes the element count", cg_shape_str(t, a, sizeof a),
             cg_shape_str(r, b, sizeof b));
    r->dtype = t->dtype;
    r->device = t->device;
    r->data = t->data;
    r->owns_data = false;
    return r;
}

cg_tensor *cg_tensor_first_rows(cg_tensor *t, int64_t rows) {
    CG_CHECK(t->ndim >= 1 && rows >= 1 && rows <= t->shape[0], "first %lld rows of a tensor of %lld",
             (long long)rows, (long long)t->shape[0]);
    int64_t shape[CG_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    shape[0] = rows;
    cg_tensor *r = cg_xcalloc(1, sizeof *r);
    cg_tensor_set_shape(r, t->ndim, shape);
    r->dtype = t->dtype;
    r->device = t->device;
    r->data = t->data;
    r->owns_data = false;
    return r;
}

float cg_tensor_item(const cg_tensor *t) {
    CG_CHECK(t->dtype == CG_F32 && t->numel >= 1, "cg_tensor_item needs an f32 tensor");
    float v = 0.0f;
    cg_device_copy(cg_cpu(), &v, t->device, t->data, sizeof v);
    return v;
}

void cg_tensor_print(const cg_tensor *t, const char *label, int max_values) {
    char shape[64], dev[16];
    printf("%s %s %s %s", label ? label : "tensor", cg_shape_str(t, shape, sizeof shape), cg_dtype_name(t->dtype),
           cg_device_str(t->device, dev, sizeof dev));
    int64_t n = t->numel < max_values ? t->numel : max_values;
    if (n <= 0 || (t->dtype != CG_F32 && t->dtype != CG_I32)) {
        printf("\n");
        return;
    }
    void *host = cg_xmalloc((size_t)n * 4);
    cg_tensor_copy_to_host(host, t, n);
    printf(" [");
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == CG_F32)
            printf(i ? ", %.6g" : "%.6g", (double)((float *)host)[i]);
        else
            printf(i ? ", %d" : "%d", ((int32_t *)host)[i]);
    }
    printf(n < t->numel ? ", ...]\n" : "]\n");
    free(host);
}

// loader.c: shuffling on the host, gathering batches on the device.
#include "loader.h"
#include "../core/kernels.h"

#include <stdlib.h>
#include <string.h>

static void batch_shape(const cg_dataset *d, int64_t batch, int64_t *shape) {
    shape[0] = batch;
    for (int i = 0; i < d->sample_ndim; i++) shape[1 + i] = d->sample_shape[i];
}

cg_loader *cg_loader_new(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
                         cg_device device) {
    CG_CHECK(batch_size >= 1 && d->count >= 1, "loader: batch size %lld over %lld samples", (long long)batch_size,
             (long long)d->count);
    cg_loader *l = cg_xcalloc(1, sizeof *l);
    l->data = d;
    l->device = device;
    l->batch_size = batch_size < d->count ? batch_size : d->count;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    l->rng = cg_rng_new(seed, CG_STREAM_SHUFFLE);
    l->order = cg_xmalloc((size_t)d->count * sizeof(int32_t));
    for (int64_t i = 0; i < d->count; i++) l->order[i] = (int32_t)i;
    l->position = d->count; // no epoch started yet

    size_t x_bytes = (size_t)(d->count * d->sample_numel) * sizeof(float);
    size_t index_bytes = (size_t)d->count * sizeof(int32_t);
    if (device.type == CG_CPU) {
        l->x_device = d->x; // already in the CPU's memory
        l->labels_device = d->labels;
        l->order_device = l->order;
    } else {
        l->x_device = cg_device_alloc(device, x_bytes);
        l->labels_device = cg_device_alloc(device, index_bytes);
        l->order_device = cg_device_alloc(device, index_bytes);
        cg_device_copy(device, l->x_device, cg_cpu(), d->x, x_bytes);
        cg_device_copy(device, l->labels_device, cg_cpu(), d->labels, index_bytes);
    }

    int64_t B = l->batch_size, shape[4];
    batch_shape(d, B, shape);
    l->x_full = cg_tensor_new(device, CG_F32, 1 + d->sample_ndim, shape);
    l->labels_full = cg_tensor_new(device, CG_I32, 1, &B);
    l->targets_full = cg_tensor_new(device, CG_F32, 1, &B);
    int64_t tail = d->count % B;
    if (tail) {
        l->x_tail = cg_tensor_first_rows(l->x_full, tail);
        l->labels_tail = cg_tensor_first_rows(l->labels_full, tail);
        l->targets_tail = cg_tensor_first_rows(l->targets_full, tail);
    }
    return l;
}

void cg_loader_free(cg_loader *l) {
    if (l == NULL) return;
    if (l->device.type != CG_CPU) {
        cg_device_free(l->device, l->x_device);
        cg_device_free(l->device, l->labels_device);
        cg_device_free(l->device, l->order_device);
    }
    free(l->order);
    cg_tensor_free(l->x_full);
    cg_tensor_free(l->labels_full);
    cg_tensor_free(l->targets_full);
    cg_tensor_free(l->x_tail);
    cg_tensor_free(l->labels_tail);
    cg_tensor_free(l->targets_tail);
    free(l);
}

int64_t cg_loader_num_batches(const cg_loader *l) {
    int64_t n = l->data->count, B = l->batch_size;
    return l->drop_last ? n / B : (n + B - 1) / B;
}

void cg_loader_start_epoch(cg_loader *l) {
    if (l->shuffle) cg_rng_permutation(&l->rng, l->order, l->data->count);
    if (l->order_device != l->order)
        cg_device_copy(l->device, l->order_device, cg_cpu(), l->order, (size_t)l->data->count * sizeof(int32_t));
    l->position = 0;
}

bool cg_loader_next(cg_loader *l, cg_batch *out) {
    const cg_dataset *d = l->data;
    int64_t left = d->count - l->position;
    if (left <= 0 || (l->drop_last && left < l->batch_size)) return false;
    int64_t B = left < l->batch_size ? left : l->batch_size;
    bool full = B == l->batch_size;
    out->x = full ? l->x_full : l->x_tail;
    out->labels = full ? l->labels_full : l->labels_tail;
    out->targets = full ? l->targets_full : l->targets_tail;
    out->size = B;
    cg_kernels_for(l->device)->gather_batch(out->x->data, out->labels->data, out->targets->data, l->x_device,
                                            l->labels_device, l->order_device + l->position, B, d->sample_numel);
    l->position += B;
    return true;
}

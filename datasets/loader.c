// loader.c: shuffling, gathering a batch on the host, and copying it to the device.
#include "loader.h"

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

    int64_t B = l->batch_size, shape[4];
    l->host_x = cg_xmalloc((size_t)(B * d->sample_numel) * sizeof(float));
    l->host_labels = cg_xmalloc((size_t)B * sizeof(int32_t));
    l->host_targets = cg_xmalloc((size_t)B * sizeof(float));
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
    free(l->order);
    free(l->host_x);
    free(l->host_labels);
    free(l->host_targets);
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
    l->position = 0;
}

bool cg_loader_next(cg_loader *l, cg_batch *out) {
    const cg_dataset *d = l->data;
    int64_t left = d->count - l->position;
    if (left <= 0 || (l->drop_last && left < l->batch_size)) return false;
    int64_t B = left < l->batch_size ? left : l->batch_size;
    for (int64_t i = 0; i < B; i++) {
        int64_t s = l->order[l->position + i];
        memcpy(l->host_x + i * d->sample_numel, d->x + s * d->sample_numel, (size_t)d->sample_numel * sizeof(float));
        l->host_labels[i] = d->labels[s];
        l->host_targets[i] = (float)d->labels[s];
    }
    l->position += B;
    bool full = B == l->batch_size;
    out->x = full ? l->x_full : l->x_tail;
    out->labels = full ? l->labels_full : l->labels_tail;
    out->targets = full ? l->targets_full : l->targets_tail;
    out->size = B;
    cg_tensor_copy_from_host(out->x, l->host_x, B * d->sample_numel);
    cg_tensor_copy_from_host(out->labels, l->host_labels, B);
    cg_tensor_copy_from_host(out->targets, l->host_targets, B);
    return true;
}

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

    CG_CHECK(d->dtype == CG_F32 || (d->dtype == CG_U8 && d->sample_ndim == 3),
             "loader: samples must be f32, or u8 images (C, H, W)");
    bool images = d->dtype == CG_U8;
    size_t x_bytes = (size_t)(d->count * d->sample_numel) * (images ? 1 : sizeof(float));
    size_t index_bytes = (size_t)d->count * sizeof(int32_t);
    if (device.type == CG_CPU) { // already in the CPU's memory
        l->x_device = d->x;
        l->pixels_device = d->pixels;
        l->labels_device = d->labels;
        l->order_device = l->order;
    } else {
        void *samples = cg_device_alloc(device, x_bytes);
        cg_device_copy(device, samples, cg_cpu(), images ? (void *)d->pixels : (void *)d->x, x_bytes);
        if (images)
            l->pixels_device = samples;
        else
            l->x_device = samples;
        l->labels_device = cg_device_alloc(device, index_bytes);
        l->order_device = cg_device_alloc(device, index_bytes);
        cg_device_copy(device, l->labels_device, cg_cpu(), d->labels, index_bytes);
    }
    if (images) {
        int64_t C = d->sample_shape[0];
        l->mean_device = cg_device_alloc(device, (size_t)C * sizeof(float));
        l->inv_std_device = cg_device_alloc(device, (size_t)C * sizeof(float));
        float zeros[4] = {0, 0, 0, 0}, ones[4] = {1, 1, 1, 1};
        CG_CHECK(C <= 4, "loader: images of %lld channels (at most 4)", (long long)C);
        cg_loader_set_normalization(l, zeros, ones);
        l->augment_rng = cg_rng_new(seed, CG_STREAM_AUGMENT);
        l->augment_host = cg_xmalloc((size_t)l->batch_size * 3 * sizeof(int32_t));
        l->augment_device = cg_device_alloc(device, (size_t)l->batch_size * 3 * sizeof(int32_t));
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
        cg_device_free(l->device, l->pixels_device);
        cg_device_free(l->device, l->labels_device);
        cg_device_free(l->device, l->order_device);
    }
    cg_device_free(l->device, l->mean_device);
    cg_device_free(l->device, l->inv_std_device);
    cg_device_free(l->device, l->augment_device);
    free(l->augment_host);
    free(l->order);
    cg_tensor_free(l->x_full);
    cg_tensor_free(l->labels_full);
    cg_tensor_free(l->targets_full);
    cg_tensor_free(l->x_tail);
    cg_tensor_free(l->labels_tail);
    cg_tensor_free(l->targets_tail);
    free(l);
}

void cg_loader_set_normalization(cg_loader *l, const float *mean, const float *std) {
    CG_CHECK(l->data->dtype == CG_U8, "normalisation is for u8 image data sets");
    int64_t C = l->data->sample_shape[0];
    float inv_std[4];
    for (int64_t c = 0; c < C; c++) {
        CG_CHECK(std[c] > 0.0f, "normalisation: std[%lld] = %g must be > 0", (long long)c, (double)std[c]);
        inv_std[c] = 1.0f / std[c];
    }
    cg_device_copy(l->device, l->mean_device, cg_cpu(), mean, (size_t)C * sizeof(float));
    cg_device_copy(l->device, l->inv_std_device, cg_cpu(), inv_std, (size_t)C * sizeof(float));
}

void cg_loader_set_augmentation(cg_loader *l, int crop_padding, bool flip) {
    CG_CHECK(l->data->dtype == CG_U8 && crop_padding >= 0, "augmentation is for u8 image data sets");
    l->crop_padding = crop_padding;
    l->flip = flip;
}

// Crop offsets and flips for the next batch, drawn on the host and copied to the device.
static const int32_t *draw_augmentation(cg_loader *l, int64_t batch) {
    if (l->crop_padding == 0 && !l->flip) return NULL;
    // The raw words land in augment_host and are turned into offsets in place (same size).
    uint32_t *words = (uint32_t *)l->augment_host;
    cg_rng_u32(&l->augment_rng, words, batch * 3);
    uint32_t span = 2 * (uint32_t)l->crop_padding + 1;
    for (int64_t i = 0; i < batch; i++) {
        l->augment_host[3 * i] = (int32_t)(words[3 * i] % span);
        l->augment_host[3 * i + 1] = (int32_t)(words[3 * i + 1] % span);
        l->augment_host[3 * i + 2] = l->flip ? (int32_t)(words[3 * i + 2] >> 31) : 0;
    }
    if (l->device.type == CG_CPU) return l->augment_host;
    cg_device_copy(l->device, l->augment_device, cg_cpu(), l->augment_host, (size_t)batch * 3 * sizeof(int32_t));
    return l->augment_device;
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
    const cg_kernels *k = cg_kernels_for(l->device);
    if (d->dtype == CG_U8)
        k->gather_images(out->x->data, out->labels->data, l->pixels_device, l->labels_device,
                         l->order_device + l->position, draw_augmentation(l, B), B, d->sample_shape[0],
                         d->sample_shape[1], d->sample_shape[2], l->crop_padding, l->mean_device, l->inv_std_device);
    else
        k->gather_batch(out->x->data, out->labels->data, out->targets->data, l->x_device, l->labels_device,
                        l->order_device + l->position, B, d->sample_numel);
    l->position += B;
    return true;
}

// loader.c: shuffling on the host, gathering batches on the device; or, streaming, gathering them
// on the host on a background thread into pinned buffers that are copied to the device.
#include "datasets/loader.h"
#include "core/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---- streaming: a background thread fills two pinned buffers in turn ---------------------------
// Slot b % 2 holds batch b. The thread waits until the slot is free (its previous batch taken, and
// the device done copying it: the event recorded after the copy), gathers the batch into it with
// the CPU kernel, and marks it ready; cg_loader_next waits until it is ready, queues the copy to
// the device, records the event and hands the slot back. While the device trains on batch b, the
// thread prepares batch b + 1.

typedef enum { SLOT_FREE, SLOT_READY, SLOT_COPYING } slot_state;

typedef struct {
    float *x;         // pinned host memory, (batch_size, C, H, W)
    int32_t *labels;  // pinned, (batch_size,)
    int64_t size;     // samples in it
    slot_state state; // guarded by the lock
    void *copied;     // the event recorded after its copy to the device was queued
} slot;

struct cg_prefetch {
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t changed; // a slot changed state, or stop was set
    bool stop;              // guarded by the lock: end the epoch early
    slot slots[2];
    int32_t *augment;       // the thread's augmentation draws, (batch_size, CG_AUGMENT_FIELDS)
    int64_t batches;        // batches of the running epoch
};

static void batch_shape(const cg_dataset *d, int64_t batch, int64_t *shape) {
    shape[0] = batch;
    for (int i = 0; i < d->sample_ndim; i++) shape[1 + i] = d->sample_shape[i];
}

static void prefetch_init(cg_loader *l);

static cg_loader *loader_new(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
                             cg_device device, bool streaming) {
    CG_CHECK(batch_size >= 1 && d->count >= 1, "loader: batch size %lld over %lld samples", (long long)batch_size,
             (long long)d->count);
    // Sample indices are 32-bit (the gather kernels read them so); the loaders refuse larger sets.
    CG_CHECK(d->count <= CG_DATASET_MAX_COUNT, "loader: %lld samples, more than the %d its 32-bit indices hold",
             (long long)d->count, CG_DATASET_MAX_COUNT);
    cg_loader *l = cg_xcalloc(1, sizeof *l);
    l->data = d;
    l->device = device;
    l->batch_size = batch_size < d->count ? batch_size : d->count;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    l->count = d->count;
    l->shard_world = 1;
    l->rng = cg_rng_new(seed, CG_STREAM_SHUFFLE);
    l->order = cg_xmalloc((size_t)d->count * sizeof(int32_t));
    for (int64_t i = 0; i < d->count; i++) l->order[i] = (int32_t)i;
    l->position = d->count; // no epoch started yet

    CG_CHECK(d->dtype == CG_F32 || (d->dtype == CG_U8 && d->sample_ndim == 3),
             "loader: samples must be f32, or u8 images (C, H, W)");
    bool images = d->dtype == CG_U8;
    size_t x_bytes = (size_t)(d->count * d->sample_numel) * (images ? 1 : sizeof(float));
    size_t index_bytes = (size_t)d->count * sizeof(int32_t);
    CG_CHECK(!streaming || images, "loader: only u8 image data sets stream (this one is f32)");
    if (device.type == CG_CPU || streaming) { // already in the CPU's memory, or left there
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
        l->augment_host = cg_xmalloc((size_t)l->batch_size * CG_AUGMENT_FIELDS * sizeof(int32_t));
        l->augment_words = cg_xmalloc((size_t)l->batch_size * 5 * sizeof(uint32_t));
        if (!streaming)
            l->augment_device = cg_device_alloc(device, (size_t)l->batch_size * CG_AUGMENT_FIELDS * sizeof(int32_t));
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
    if (streaming) prefetch_init(l);
    return l;
}

cg_loader *cg_loader_new(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
                         cg_device device) {
    return loader_new(d, batch_size, shuffle, drop_last, seed, device, false);
}

cg_loader *cg_loader_new_streaming(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last,
                                   uint64_t seed, cg_device device) {
    return loader_new(d, batch_size, shuffle, drop_last, seed, device, true);
}

bool cg_loader_should_stream(cg_device d, size_t bytes) {
    if (d.type == CG_CPU) return false;
    cg_device_info info;
    if (cg_device_get_info(d, &info).code != CG_OK) return false;
    return bytes > info.memory_free / 2;
}

static void prefetch_free(cg_loader *l);

void cg_loader_free(cg_loader *l) {
    if (l == NULL) return;
    if (l->prefetch) prefetch_free(l);
    if (l->device.type != CG_CPU && l->prefetch == NULL) {
        cg_device_free(l->device, l->x_device);
        cg_device_free(l->device, l->pixels_device);
        cg_device_free(l->device, l->labels_device);
        cg_device_free(l->device, l->order_device);
    }
    cg_device_free(l->device, l->mean_device);
    cg_device_free(l->device, l->inv_std_device);
    cg_device_free(l->device, l->augment_device);
    free(l->augment_host);
    free(l->augment_words);
    free(l->flip_base);
    free(l->order);
    free(l->prefetch);
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
        l->mean_host[c] = mean[c];
        l->inv_std_host[c] = inv_std[c];
    }
    cg_device_copy(l->device, l->mean_device, cg_cpu(), mean, (size_t)C * sizeof(float));
    cg_device_copy(l->device, l->inv_std_device, cg_cpu(), inv_std, (size_t)C * sizeof(float));
}

void cg_loader_set_augmentation(cg_loader *l, int crop_padding, bool flip) {
    cg_augmentation a = {.crop_padding = crop_padding, .flip = flip ? CG_FLIP_RANDOM : CG_FLIP_OFF};
    cg_loader_set_augmentation_full(l, &a);
}

void cg_loader_set_augmentation_full(cg_loader *l, const cg_augmentation *a) {
    const cg_dataset *d = l->data;
    CG_CHECK(d->dtype == CG_U8 && a->crop_padding >= 0 && a->cutout >= 0, "augmentation is for u8 image data sets");
    CG_CHECK(!a->reflect || (a->crop_padding < d->sample_shape[1] && a->crop_padding < d->sample_shape[2]),
             "augmentation: reflection padding of %d needs images larger than that (%lldx%lld)", a->crop_padding,
             (long long)d->sample_shape[1], (long long)d->sample_shape[2]);
    l->aug = *a;
    l->crop_padding = a->crop_padding;
    l->flip = a->flip != CG_FLIP_OFF;
    free(l->flip_base);
    l->flip_base = NULL;
    if (a->flip == CG_FLIP_ALTERNATE) { // each image's half, drawn once, before any batch
        uint32_t *words = cg_xmalloc((size_t)d->count * sizeof(uint32_t));
        cg_rng_u32(&l->augment_rng, words, d->count);
        l->flip_base = cg_xmalloc((size_t)d->count);
        for (int64_t i = 0; i < d->count; i++) l->flip_base[i] = (uint8_t)(words[i] >> 31);
        free(words);
    }
}

// `per_sample` random words for each of the batch's `samples` samples, sample after sample; with
// --distributed, this rank's samples' words among the whole step's (datasets/shard.h), so that N
// ranks augment every image exactly as one process would.
static void draw_words(cg_loader *l, uint32_t *words, int64_t per_sample, int64_t samples) {
    if (l->shard_world > 1)
        cg_shard_draw_u32(&l->augment_rng, words, per_sample, samples, l->shard_rank, l->shard_world);
    else
        cg_rng_u32(&l->augment_rng, words, samples * per_sample);
}

// The augmentation of the `batch` samples order[0..batch) into out (batch, CG_AUGMENT_FIELDS),
// drawn on the host from the random words in `words` (batch * 5 of room); NULL when the loader
// does not augment. Crop offsets and flips take 3 words per sample, as they always have (the same
// draws as before cutout existed); cutout centres 2 more, drawn after them.
static const int32_t *draw_augmentation_into(cg_loader *l, int32_t *out, uint32_t *words, const int32_t *order,
                                             int64_t batch) {
    const cg_augmentation *a = &l->aug;
    if (a->crop_padding == 0 && a->flip == CG_FLIP_OFF && a->cutout == 0) return NULL;
    draw_words(l, words, 3, batch);
    if (a->cutout > 0) draw_words(l, words + batch * 3, 2, batch);
    uint32_t span = 2 * (uint32_t)a->crop_padding + 1;
    uint32_t H = (uint32_t)l->data->sample_shape[1], W = (uint32_t)l->data->sample_shape[2];
    int32_t parity = (int32_t)((l->epochs_started - 1) & 1); // 0 in the first epoch
    for (int64_t i = 0; i < batch; i++) {
        int32_t *o = out + CG_AUGMENT_FIELDS * i;
        o[0] = (int32_t)(words[3 * i] % span);
        o[1] = (int32_t)(words[3 * i + 1] % span);
        o[2] = a->flip == CG_FLIP_RANDOM      ? (int32_t)(words[3 * i + 2] >> 31)
               : a->flip == CG_FLIP_ALTERNATE ? (int32_t)l->flip_base[order[i]] ^ parity
                                              : 0;
        o[3] = a->cutout > 0 ? (int32_t)(words[3 * batch + 2 * i] % H) : 0;
        o[4] = a->cutout > 0 ? (int32_t)(words[3 * batch + 2 * i + 1] % W) : 0;
    }
    return out;
}

// The same, copied to the device (for the device-side gather).
static const int32_t *draw_augmentation(cg_loader *l, const int32_t *order, int64_t batch) {
    if (draw_augmentation_into(l, l->augment_host, l->augment_words, order, batch) == NULL) return NULL;
    if (l->device.type == CG_CPU) return l->augment_host;
    cg_device_copy(l->device, l->augment_device, cg_cpu(), l->augment_host,
                   (size_t)batch * CG_AUGMENT_FIELDS * sizeof(int32_t));
    return l->augment_device;
}

// The thread: every batch of the epoch, in order, into slot b % 2 (see the top of the file).
static void *prefetch_main(void *arg) {
    cg_loader *l = arg;
    struct cg_prefetch *f = l->prefetch;
    const cg_dataset *d = l->data;
    for (int64_t b = 0; b < f->batches; b++) {
        slot *s = &f->slots[b % 2];
        pthread_mutex_lock(&f->lock);
        while (s->state == SLOT_READY && !f->stop) pthread_cond_wait(&f->changed, &f->lock);
        bool stop = f->stop, copying = s->state == SLOT_COPYING;
        pthread_mutex_unlock(&f->lock);
        if (stop) break;
        if (copying) cg_event_wait(l->device, s->copied); // the device has read this buffer
        int64_t first = b * l->batch_size, n = l->count - first < l->batch_size ? l->count - first : l->batch_size;
        cg_cpu_kernels()->gather_images(s->x, s->labels, d->pixels, d->labels, l->order + first,
                                        draw_augmentation_into(l, f->augment, l->augment_words, l->order + first, n),
                                        n, d->sample_shape[0], d->sample_shape[1], d->sample_shape[2],
                                        l->crop_padding, l->aug.reflect, l->aug.cutout, l->mean_host,
                                        l->inv_std_host);
        pthread_mutex_lock(&f->lock);
        s->size = n;
        s->state = SLOT_READY;
        pthread_cond_broadcast(&f->changed);
        pthread_mutex_unlock(&f->lock);
    }
    return NULL;
}

static void prefetch_init(cg_loader *l) {
    struct cg_prefetch *f = cg_xcalloc(1, sizeof *f);
    l->prefetch = f;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->changed, NULL);
    for (int i = 0; i < 2; i++) {
        f->slots[i].x = cg_host_alloc(l->device, (size_t)(l->batch_size * l->data->sample_numel) * sizeof(float));
        f->slots[i].labels = cg_host_alloc(l->device, (size_t)l->batch_size * sizeof(int32_t));
        f->slots[i].copied = cg_event_new(l->device);
    }
    f->augment = cg_xmalloc((size_t)l->batch_size * CG_AUGMENT_FIELDS * sizeof(int32_t));
}

// Ends the running epoch's thread (at once if it is waiting for a free slot). Batches it had
// prepared but that were never taken are dropped; a slot still being copied stays so, and the
// next thread waits for its copy before reusing it.
static void prefetch_stop(cg_loader *l) {
    struct cg_prefetch *f = l->prefetch;
    if (!f->running) return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->running = false;
    f->stop = false;
    for (int i = 0; i < 2; i++)
        if (f->slots[i].state == SLOT_READY) f->slots[i].state = SLOT_FREE;
}

static void prefetch_start(cg_loader *l) {
    struct cg_prefetch *f = l->prefetch;
    f->batches = cg_loader_num_batches(l);
    CG_CHECK(pthread_create(&f->thread, NULL, prefetch_main, l) == 0, "loader: cannot start the prefetch thread");
    f->running = true;
}

static void prefetch_free(cg_loader *l) {
    struct cg_prefetch *f = l->prefetch;
    prefetch_stop(l);
    for (int i = 0; i < 2; i++) {
        if (f->slots[i].state == SLOT_COPYING) cg_event_wait(l->device, f->slots[i].copied);
        cg_host_free(l->device, f->slots[i].x);
        cg_host_free(l->device, f->slots[i].labels);
        cg_event_free(l->device, f->slots[i].copied);
    }
    free(f->augment);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->changed);
}

// The streaming cg_loader_next: wait for batch `b`'s slot, queue its copy into the batch tensors.
static void prefetch_take(cg_loader *l, int64_t b, cg_batch *out) {
    struct cg_prefetch *f = l->prefetch;
    slot *s = &f->slots[b % 2];
    pthread_mutex_lock(&f->lock);
    while (s->state != SLOT_READY) pthread_cond_wait(&f->changed, &f->lock);
    pthread_mutex_unlock(&f->lock);
    CG_CHECK(s->size == out->size, "loader: prefetched batch of %lld, expected %lld", (long long)s->size,
             (long long)out->size);
    cg_device_copy(l->device, out->x->data, cg_cpu(), s->x, (size_t)(s->size * l->data->sample_numel) * sizeof(float));
    cg_device_copy(l->device, out->labels->data, cg_cpu(), s->labels, (size_t)s->size * sizeof(int32_t));
    cg_event_record(l->device, s->copied);
    pthread_mutex_lock(&f->lock);
    s->state = SLOT_COPYING;
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
}

int64_t cg_loader_num_batches(const cg_loader *l) {
    int64_t n = l->count, B = l->batch_size;
    return l->drop_last ? n / B : (n + B - 1) / B;
}

void cg_loader_set_epoch(cg_loader *l, int64_t epoch) {
    CG_CHECK(epoch >= 1, "loader: epoch %lld (they count from 1)", (long long)epoch);
    l->epochs_started = epoch - 1;
}

// After the epoch's order is drawn: keeps this rank's share of it.
static void shard_epoch(cg_loader *l) {
    if (!l->shuffle) // the order is the data set's own: start again from it (the last epoch kept a share)
        for (int64_t i = 0; i < l->data->count; i++) l->order[i] = (int32_t)i;
    cg_shard_indices(l->order, l->data->count, l->shard_rank, l->shard_world, (cg_shard_mode)l->shard_mode);
}

void cg_loader_start_epoch(cg_loader *l) {
    if (l->prefetch) prefetch_stop(l); // the previous epoch's thread, if it was left before its end
    l->epochs_started++;
    if (l->shuffle) cg_rng_permutation(&l->rng, l->order, l->data->count);
    if (l->shard_world > 1) shard_epoch(l); // this rank's share of the order (datasets/shard.h)
    if (l->order_device != l->order)
        cg_device_copy(l->device, l->order_device, cg_cpu(), l->order, (size_t)l->count * sizeof(int32_t));
    l->position = 0;
    if (l->prefetch) prefetch_start(l);
}

bool cg_loader_next(cg_loader *l, cg_batch *out) {
    const cg_dataset *d = l->data;
    int64_t left = l->count - l->position;
    if (left <= 0 || (l->drop_last && left < l->batch_size)) {
        if (l->prefetch) prefetch_stop(l); // done: every batch was taken
        return false;
    }
    int64_t B = left < l->batch_size ? left : l->batch_size;
    bool full = B == l->batch_size;
    out->x = full ? l->x_full : l->x_tail;
    out->labels = full ? l->labels_full : l->labels_tail;
    out->targets = full ? l->targets_full : l->targets_tail;
    out->size = B;
    if (l->prefetch) {
        prefetch_take(l, l->position / l->batch_size, out);
        l->position += B;
        return true;
    }
    const cg_kernels *k = cg_kernels_for(l->device);
    if (d->dtype == CG_U8)
        k->gather_images(out->x->data, out->labels->data, l->pixels_device, l->labels_device,
                         l->order_device + l->position, draw_augmentation(l, l->order + l->position, B), B,
                         d->sample_shape[0], d->sample_shape[1], d->sample_shape[2], l->crop_padding, l->aug.reflect,
                         l->aug.cutout, l->mean_device, l->inv_std_device);
    else
        k->gather_batch(out->x->data, out->labels->data, out->targets->data, l->x_device, l->labels_device,
                        l->order_device + l->position, B, d->sample_numel);
    l->position += B;
    return true;
}

// ---- a rank's share (data-parallel training; the arithmetic is datasets/shard.c's) ----------------

cg_status cg_loader_shard(cg_loader *l, cg_dist *d, cg_shard_mode mode) {
    if (d == NULL) return cg_ok();
    cg_status s = cg_dist_agree(d, "the number of samples in the data set", l->data->count);
    if (s.code == CG_OK) cg_loader_set_shard(l, cg_dist_rank(d), cg_dist_world(d), mode);
    return s;
}

void cg_loader_set_shard(cg_loader *l, int rank, int world, cg_shard_mode mode) {
    l->shard_rank = rank;
    l->shard_world = world;
    l->shard_mode = (int)mode;
    l->count = cg_shard_count(l->data->count, rank, world, mode);
    // The last batch's tensors (headers over the full batch's first rows) for the new count.
    cg_tensor_free(l->x_tail);
    cg_tensor_free(l->labels_tail);
    cg_tensor_free(l->targets_tail);
    l->x_tail = l->labels_tail = l->targets_tail = NULL;
    int64_t tail = l->count % l->batch_size;
    if (tail) {
        l->x_tail = cg_tensor_first_rows(l->x_full, tail);
        l->labels_tail = cg_tensor_first_rows(l->labels_full, tail);
        l->targets_tail = cg_tensor_first_rows(l->targets_full, tail);
    }
}


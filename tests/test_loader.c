// test_loader.c: cg_synthetic_binary (balance, determinism) and the loader: 1000 samples in
// batches of 32 give 31 of 32 and one of 8 (31 with drop_last), each sample once per epoch, a new
// order each epoch, 0..999 unshuffled; the CPU's gather_images without augmentation against its
// augmenting loop. CPU only; file formats are tested elsewhere.
#include "core/kernels.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "tests/check.h"

#include <math.h>
#include "datasets/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { COUNT = 1000, FEATURES = 20, BATCH = 32 };

// ---- synthetic data ----------------------------------------------------------------------------

static void test_synthetic(void) {
    cg_dataset *d = cg_synthetic_binary(COUNT, FEATURES, 0);
    if (d->count != COUNT || d->sample_ndim != 1 || d->sample_shape[0] != FEATURES || d->sample_numel != FEATURES ||
        d->num_classes != 2)
        fail("synthetic shape", "count %lld, ndim %d, shape[0] %lld, numel %lld, classes %d", (long long)d->count,
             d->sample_ndim, (long long)d->sample_shape[0], (long long)d->sample_numel, d->num_classes);
    int64_t ones = 0;
    for (int64_t i = 0; i < d->count; i++) {
        if (d->labels[i] != 0 && d->labels[i] != 1) {
            fail("synthetic labels", "label %lld is %d, not 0 or 1", (long long)i, d->labels[i]);
            break;
        }
        ones += d->labels[i];
    }
    // Labels are (randn > 0): Binomial(1000, 0.5), standard deviation 15.8; 440..560 is 3.8 of them.
    if (ones < 440 || ones > 560)
        fail("synthetic balance", "%lld of %d labels are 1; expected about 500", (long long)ones, COUNT);
    double sum = 0.0, sum_sq = 0.0;
    for (int64_t i = 0; i < COUNT * FEATURES; i++) {
        sum += d->x[i];
        sum_sq += (double)d->x[i] * d->x[i];
    }
    double mean = sum / (COUNT * FEATURES), std = sqrt(sum_sq / (COUNT * FEATURES) - mean * mean);
    if (fabs(mean) > 0.03 || fabs(std - 1.0) > 0.03)
        fail("synthetic features", "mean %.4f, std %.4f; expected randn: 0 and 1 (+- 0.03)", mean, std);

    cg_dataset *again = cg_synthetic_binary(COUNT, FEATURES, 0);
    if (memcmp(d->x, again->x, sizeof(float) * COUNT * FEATURES) != 0 ||
        memcmp(d->labels, again->labels, sizeof(int32_t) * COUNT) != 0)
        fail("synthetic determinism", "seed 0 twice gave different data");
    cg_dataset *other = cg_synthetic_binary(COUNT, FEATURES, 1);
    int same_x = 0, same_labels = 0;
    for (int64_t i = 0; i < COUNT * FEATURES; i++)
        same_x += d->x[i] == other->x[i];
    for (int64_t i = 0; i < COUNT; i++)
        same_labels += d->labels[i] == other->labels[i];
    if (same_x > 10)
        fail("synthetic seeds", "seeds 0 and 1 share %d of %d features", same_x, COUNT * FEATURES);
    if (same_labels > 600)
        fail("synthetic seeds", "seeds 0 and 1 agree on %d of %d labels", same_labels, COUNT);
    printf("synthetic: %lld of %d labels are 1, features mean %.4f std %.4f, deterministic per seed\n", (long long)ones,
           COUNT, mean, std);
    cg_dataset_free(d);
    cg_dataset_free(again);
    cg_dataset_free(other);
}

// ---- the loader --------------------------------------------------------------------------------

// One epoch: the sample index of every row served (found by the index written into feature 0),
// checking each batch's shape, features, labels and targets against the data set.
// Returns the number of samples served; order receives them in order.
static int64_t run_epoch(cg_loader *l, const cg_dataset *d, const char *what, int32_t *order, int64_t *batches,
                         int64_t *last_size) {
    cg_batch b;
    int64_t served = 0;
    *batches = 0;
    int64_t B = l->batch_size;
    float *x = cg_xmalloc(sizeof(float) * (size_t)(B * FEATURES));
    int32_t *labels = cg_xmalloc(sizeof(int32_t) * (size_t)B);
    float *targets = cg_xmalloc(sizeof(float) * (size_t)B);
    cg_loader_start_epoch(l);
    while (cg_loader_next(l, &b)) {
        (*batches)++;
        *last_size = b.size;
        if (b.x->ndim != 2 || b.x->shape[0] != b.size || b.x->shape[1] != FEATURES || b.labels->numel != b.size ||
            b.targets->numel != b.size || b.labels->dtype != CG_I32 || b.targets->dtype != CG_F32)
            fail(what, "batch %lld of size %lld: x (%lld, %lld), %lld labels, %lld targets", (long long)*batches,
                 (long long)b.size, (long long)b.x->shape[0], (long long)b.x->shape[1], (long long)b.labels->numel,
                 (long long)b.targets->numel);
        if (b.size > B || served + b.size > d->count) {
            fail(what, "batch %lld has %lld samples after %lld served", (long long)*batches, (long long)b.size,
                 (long long)served);
            break;
        }
        cg_tensor_copy_to_host(x, b.x, b.size * FEATURES);
        cg_tensor_copy_to_host(labels, b.labels, b.size);
        cg_tensor_copy_to_host(targets, b.targets, b.size);
        for (int64_t r = 0; r < b.size; r++) {
            int64_t s = (int64_t)x[r * FEATURES];
            if (s < 0 || s >= d->count || (float)s != x[r * FEATURES]) {
                fail(what, "batch %lld row %lld: feature 0 is %g, not a sample index", (long long)*batches,
                     (long long)r, (double)x[r * FEATURES]);
                continue;
            }
            order[served + r] = (int32_t)s;
            if (memcmp(x + r * FEATURES, d->x + s * FEATURES, sizeof(float) * FEATURES) != 0)
                fail(what, "batch %lld row %lld: features differ from sample %lld", (long long)*batches, (long long)r,
                     (long long)s);
            if (labels[r] != d->labels[s] || targets[r] != (float)d->labels[s])
                fail(what, "batch %lld row %lld (sample %lld): label %d, target %g; expected %d", (long long)*batches,
                     (long long)r, (long long)s, labels[r], (double)targets[r], d->labels[s]);
        }
        served += b.size;
    }
    if (cg_loader_next(l, &b))
        fail(what, "a batch after the end of the epoch");
    free(x);
    free(labels);
    free(targets);
    return served;
}

// Every sample index appears exactly once in order[0..n).
static void expect_each_once(const char *what, const int32_t *order, int64_t n, int64_t count) {
    int *seen = calloc((size_t)count, sizeof(int));
    for (int64_t i = 0; i < n; i++)
        if (order[i] >= 0 && order[i] < count)
            seen[order[i]]++;
    int64_t missing = 0, repeated = 0;
    for (int64_t s = 0; s < count; s++) {
        missing += seen[s] == 0;
        repeated += seen[s] > 1;
    }
    if (n == count && (missing || repeated))
        fail(what, "%lld samples never served, %lld served more than once", (long long)missing, (long long)repeated);
    if (n < count && repeated)
        fail(what, "%lld samples served more than once", (long long)repeated);
    free(seen);
}

static void test_loader(void) {
    cg_dataset *d = cg_synthetic_binary(COUNT, FEATURES, 3);
    for (int64_t i = 0; i < COUNT; i++)
        d->x[i * FEATURES] = (float)i; // feature 0 names the sample

    int32_t *epoch1 = cg_xmalloc(sizeof(int32_t) * COUNT), *epoch2 = cg_xmalloc(sizeof(int32_t) * COUNT);
    int64_t batches = 0, last = 0;

    // Shuffled, keeping the last partial batch.
    cg_loader *l = cg_loader_new(d, BATCH, true, false, 42, cg_cpu());
    cg_batch b;
    if (cg_loader_next(l, &b))
        fail("loader", "a batch before the first epoch started");
    if (cg_loader_num_batches(l) != 32)
        fail("loader", "num_batches: expected 32, got %lld", (long long)cg_loader_num_batches(l));
    void *x_at = l->x_full->data;
    int64_t served = run_epoch(l, d, "loader epoch 1", epoch1, &batches, &last);
    if (served != COUNT || batches != 32 || last != 8)
        fail("loader epoch 1", "%lld samples in %lld batches, last of %lld; expected 1000 in 32, last of 8",
             (long long)served, (long long)batches, (long long)last);
    expect_each_once("loader epoch 1", epoch1, served, COUNT);
    served = run_epoch(l, d, "loader epoch 2", epoch2, &batches, &last);
    expect_each_once("loader epoch 2", epoch2, served, COUNT);
    int64_t same_place = 0, in_order = 0;
    for (int64_t i = 0; i < COUNT; i++) {
        same_place += epoch1[i] == epoch2[i];
        in_order += epoch1[i] == i;
    }
    if (same_place > 20)
        fail("loader shuffle", "epochs 1 and 2 put %lld of %d samples at the same place", (long long)same_place, COUNT);
    if (in_order > 20)
        fail("loader shuffle", "epoch 1 left %lld of %d samples in place", (long long)in_order, COUNT);
    if (l->x_full->data != x_at)
        fail("loader", "the batch tensor moved between epochs");
    cg_loader_free(l);

    // The same seed gives the same order.
    cg_loader *again = cg_loader_new(d, BATCH, true, false, 42, cg_cpu());
    int32_t *replay = cg_xmalloc(sizeof(int32_t) * COUNT);
    served = run_epoch(again, d, "loader same seed", replay, &batches, &last);
    if (served != COUNT || memcmp(replay, epoch1, sizeof(int32_t) * COUNT) != 0)
        fail("loader same seed", "seed 42 gave another first-epoch order");
    cg_loader_free(again);

    // Without shuffling: 0..999, every epoch.
    cg_loader *plain = cg_loader_new(d, BATCH, false, false, 42, cg_cpu());
    for (int epoch = 1; epoch <= 2; epoch++) {
        served = run_epoch(plain, d, "loader no shuffle", epoch1, &batches, &last);
        if (served != COUNT || batches != 32 || last != 8)
            fail("loader no shuffle", "%lld samples in %lld batches, last of %lld", (long long)served,
                 (long long)batches, (long long)last);
        for (int64_t i = 0; i < served; i++)
            if (epoch1[i] != i) {
                fail("loader no shuffle", "epoch %d position %lld: sample %d, expected %lld", epoch, (long long)i,
                     epoch1[i], (long long)i);
                break;
            }
    }
    cg_loader_free(plain);

    // drop_last: 31 full batches, 992 distinct samples.
    cg_loader *dropping = cg_loader_new(d, BATCH, true, true, 7, cg_cpu());
    if (cg_loader_num_batches(dropping) != 31)
        fail("loader drop_last", "num_batches: expected 31, got %lld", (long long)cg_loader_num_batches(dropping));
    served = run_epoch(dropping, d, "loader drop_last", epoch1, &batches, &last);
    if (served != 992 || batches != 31 || last != BATCH)
        fail("loader drop_last", "%lld samples in %lld batches, last of %lld; expected 992 in 31, last of 32",
             (long long)served, (long long)batches, (long long)last);
    expect_each_once("loader drop_last", epoch1, served, COUNT);
    cg_loader_free(dropping);

    // A batch size that divides the data: no partial batch, the same count either way.
    cg_loader *even = cg_loader_new(d, 40, true, false, 1, cg_cpu());
    served = run_epoch(even, d, "loader batch 40", epoch1, &batches, &last);
    if (served != COUNT || batches != 25 || last != 40 || cg_loader_num_batches(even) != 25)
        fail("loader batch 40", "%lld samples in %lld batches, last of %lld", (long long)served, (long long)batches,
             (long long)last);
    cg_loader_free(even);

    printf("loader: 1000 samples in batches of 32 give 31 x 32 + 8, each sample once per epoch; "
           "shuffled orders differ between epochs; drop_last gives 31\n");
    free(epoch1);
    free(epoch2);
    free(replay);
    cg_dataset_free(d);
}

// Batches of a streaming loader (background thread, two buffers) against the resident loader's,
// on the same images: every batch's values and labels equal, over epochs with a short last batch,
// with normalisation and augmentation (whole epochs: the thread draws its augmentation ahead),
// and, without augmentation, after an epoch left half way.
static void test_streaming(void) {
    const int64_t count = 37, C = 3, H = 5, W = 6, batch = 8;
    cg_dataset *d = cg_dataset_new_images(count, C, H, W, 4);
    cg_rng r = cg_rng_new(5, 0);
    uint32_t words[37 * 90];
    cg_rng_u32(&r, words, count * C * H * W);
    for (int64_t i = 0; i < count * C * H * W; i++) d->pixels[i] = (uint8_t)words[i];
    for (int64_t i = 0; i < count; i++) d->labels[i] = (int32_t)(i % 4);
    const float mean[3] = {0.4f, 0.5f, 0.6f}, std[3] = {0.2f, 0.25f, 0.3f};
    for (int augment = 1; augment >= 0; augment--) {
        cg_loader *resident = cg_loader_new(d, batch, true, false, 9, cg_cpu());
        cg_loader *streaming = cg_loader_new_streaming(d, batch, true, false, 9, cg_cpu());
        cg_loader *both[2] = {resident, streaming};
        for (int i = 0; i < 2; i++) {
            cg_loader_set_normalization(both[i], mean, std);
            if (augment) cg_loader_set_augmentation(both[i], 2, true);
        }
        int64_t compared = 0;
        for (int epoch = 0; epoch < 4; epoch++) {
            bool half = !augment && epoch == 1; // leave this epoch after 2 batches
            cg_loader_start_epoch(resident), cg_loader_start_epoch(streaming);
            cg_batch a, b;
            for (int taken = 0; !(half && taken == 2); taken++) {
                bool more_a = cg_loader_next(resident, &a), more_b = cg_loader_next(streaming, &b);
                if (more_a != more_b) {
                    fail("streaming", "epoch %d: one loader ended before the other", epoch);
                    break;
                }
                if (!more_a) break;
                if (a.size != b.size || memcmp(a.x->data, b.x->data, (size_t)(a.size * C * H * W) * sizeof(float)) ||
                    memcmp(a.labels->data, b.labels->data, (size_t)a.size * sizeof(int32_t)))
                    fail("streaming", "augment %d, epoch %d, batch %d: not the resident loader's batch", augment,
                         epoch, taken);
                compared++;
            }
        }
        if (compared != (augment ? 4 * 5 : 3 * 5 + 2))
            fail("streaming", "augment %d: %lld batches compared", augment, (long long)compared);
        cg_loader_free(resident);
        cg_loader_free(streaming);
    }
    cg_dataset_free(d);
}

// The CPU's gather_images without augmentation (its vectorised loop) against the same batch
// through the augmenting loop with every image left in place (shift pad, no flip, no cutout):
// the same values, bit for bit, for 1 and 3 channels and a padding.
static void test_gather_plain(void) {
    const cg_kernels *k = cg_cpu_kernels();
    enum { IMAGES = 10, BATCH_OF = 6, H = 7, W = 9 };
    for (int C = 1; C <= 3; C += 2) {
        int64_t numel = (int64_t)C * H * W;
        uint8_t *pixels = malloc((size_t)(IMAGES * numel));
        for (int64_t i = 0; i < IMAGES * numel; i++) pixels[i] = (uint8_t)(i * 37 % 256);
        int32_t labels[IMAGES], order[BATCH_OF] = {3, 0, 9, 3, 5, 1}, augment[BATCH_OF * CG_AUGMENT_FIELDS];
        for (int i = 0; i < IMAGES; i++) labels[i] = i % 4;
        float mean[3] = {0.5f, 0.25f, 0.125f}, inv_std[3] = {3.0f, 2.5f, 1.0f / 0.3f};
        int64_t pad = 2;
        for (int i = 0; i < BATCH_OF; i++) {
            int32_t *a = augment + i * CG_AUGMENT_FIELDS;
            a[0] = a[1] = (int32_t)pad, a[2] = a[3] = a[4] = 0; // in place, no flip, no cutout
        }
        float *plain = malloc(sizeof(float) * (size_t)(BATCH_OF * numel));
        float *general = malloc(sizeof(float) * (size_t)(BATCH_OF * numel));
        int32_t lp[BATCH_OF], lg[BATCH_OF];
        k->gather_images(plain, lp, pixels, labels, order, NULL, BATCH_OF, C, H, W, pad, false, 0, mean, inv_std);
        k->gather_images(general, lg, pixels, labels, order, augment, BATCH_OF, C, H, W, pad, false, 0, mean, inv_std);
        if (memcmp(plain, general, sizeof(float) * (size_t)(BATCH_OF * numel)) != 0 || memcmp(lp, lg, sizeof lp) != 0)
            fail("gather_images", "%d channel(s): without augmentation, not the in-place augmented values", C);
        free(pixels), free(plain), free(general);
    }
}

int main(void) {
    test_synthetic();
    test_gather_plain();
    test_loader();
    test_streaming();
    return check_summary("test_loader");
}

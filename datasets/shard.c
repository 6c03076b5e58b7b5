// shard.c: DistributedSampler's index arithmetic, and a loader that visits only its rank's share.
// Not the permutation (the loader draws it, the same on every rank) nor any communication.
#include "datasets/shard.h"

#include <stdlib.h>

int64_t cg_shard_count(int64_t n, int rank, int world, cg_shard_mode mode) {
    CG_CHECK(world >= 1 && rank >= 0 && rank < world && n >= 0, "shard: rank %d of %d over %lld samples", rank,
             world, (long long)n);
    if (mode == CG_SHARD_PAD) return (n + world - 1) / world;
    if (mode == CG_SHARD_DROP) return n / world;
    return n > rank ? (n - rank + world - 1) / world : 0;
}

void cg_shard_indices(int32_t *order, int64_t n, int rank, int world, cg_shard_mode mode) {
    int64_t count = cg_shard_count(n, rank, world, mode);
    if (world == 1 || n == 0) return;
    // Padding repeats the order from its start (position j >= n is position j mod n); those first
    // positions are overwritten below, so they are kept aside first.
    int64_t kept = n < world ? n : world;
    int32_t *first = malloc((size_t)kept * sizeof *first);
    CG_CHECK(first != NULL, "out of host memory");
    for (int64_t i = 0; i < kept; i++) first[i] = order[i];
    // Position i of the share is position rank + i * world of the epoch, never before i: in place.
    for (int64_t i = 0; i < count; i++) {
        int64_t j = rank + i * world;
        order[i] = j < n ? order[j] : first[(j % n) % kept];
    }
    free(first);
}

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

void cg_loader_shard_epoch(cg_loader *l) {
    if (!l->shuffle) // the order is the data set's own: start again from it (the last epoch kept a share)
        for (int64_t i = 0; i < l->data->count; i++) l->order[i] = (int32_t)i;
    cg_shard_indices(l->order, l->data->count, l->shard_rank, l->shard_world, (cg_shard_mode)l->shard_mode);
}

void cg_shard_draw_u32(cg_rng *r, uint32_t *out, int64_t per_sample, int64_t samples, int rank, int world) {
    int64_t total = samples * world * per_sample;
    uint32_t *all = cg_xmalloc((size_t)(total ? total : 1) * sizeof *all);
    cg_rng_u32(r, all, total); // the same words, in the same order, as one process's step
    for (int64_t i = 0; i < samples; i++)
        for (int64_t k = 0; k < per_sample; k++) out[i * per_sample + k] = all[(rank + world * i) * per_sample + k];
    free(all);
}

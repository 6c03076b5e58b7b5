// shard.c: DistributedSampler's index arithmetic: a rank's share of an epoch's order and of a step's
// random draws. Not the permutation (the loader draws it, the same on every rank), not the loader's
// state (datasets/loader.c keeps its rank's share), nor any communication.
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

void cg_shard_draw_u32(cg_rng *r, uint32_t *out, int64_t per_sample, int64_t samples, int rank, int world) {
    int64_t total = samples * world * per_sample;
    uint32_t *all = cg_xmalloc((size_t)(total ? total : 1) * sizeof *all);
    cg_rng_u32(r, all, total); // the same words, in the same order, as one process's step
    for (int64_t i = 0; i < samples; i++)
        for (int64_t k = 0; k < per_sample; k++) out[i * per_sample + k] = all[(rank + world * i) * per_sample + k];
    free(all);
}

// test_shard.c: DistributedSampler's arithmetic (datasets/shard.c) without MPI: the shares of W
// ranks are disjoint and cover the epoch (padded with its first positions, cut, or uneven), the
// in-place rewrite equals the definition, and with B per rank the W batches of each step are
// exactly the positions of one batch of W * B in a single process's epoch. Then a loader with a
// share visits those samples, epoch after epoch, shuffled or not.
#include "datasets/loader.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

// Rank r's share by the definition: positions r, r + W, ... of the epoch padded (or cut) to a
// multiple of W.
static int64_t naive_share(const int32_t *order, int64_t n, int r, int W, cg_shard_mode mode, int32_t *out) {
    int64_t total = mode == CG_SHARD_PAD ? (n + W - 1) / W * W : mode == CG_SHARD_DROP ? n / W * W : n;
    int64_t k = 0;
    for (int64_t j = r; j < total; j += W) out[k++] = order[j % n];
    return k;
}

static void check_shares(int64_t n, int W, cg_shard_mode mode, int64_t batch) {
    char what[96];
    snprintf(what, sizeof what, "n %lld, %d ranks, mode %d", (long long)n, W, (int)mode);
    int32_t *order = malloc((size_t)n * sizeof *order), *share = malloc((size_t)n * sizeof *share);
    int32_t *expected = malloc((size_t)(n + W) * sizeof *expected);
    int32_t **shares = calloc((size_t)W, sizeof *shares);
    int64_t *counts = calloc((size_t)W, sizeof *counts);
    int *seen = calloc((size_t)n, sizeof *seen);
    for (int64_t i = 0; i < n; i++) order[i] = (int32_t)((i * 7919 + 13) % n); // a permutation when gcd(7919, n) = 1
    for (int r = 0; r < W; r++) {
        memcpy(share, order, (size_t)n * sizeof *share);
        cg_shard_indices(share, n, r, W, mode);
        counts[r] = cg_shard_count(n, r, W, mode);
        int64_t k = naive_share(order, n, r, W, mode, expected);
        if (k != counts[r]) fail(what, "rank %d: count %lld, by definition %lld", r, (long long)counts[r], (long long)k);
        for (int64_t i = 0; i < k && i < counts[r]; i++)
            if (share[i] != expected[i]) {
                fail(what, "rank %d: position %lld holds %d, expected %d", r, (long long)i, share[i], expected[i]);
                break;
            }
        shares[r] = malloc((size_t)(counts[r] ? counts[r] : 1) * sizeof **shares);
        memcpy(shares[r], share, (size_t)counts[r] * sizeof *share);
        for (int64_t i = 0; i < counts[r]; i++) seen[share[i]]++;
    }
    // Every sample once (uneven), at least once (pad), at most once (drop); equal counts unless uneven.
    for (int64_t i = 0; i < n; i++) {
        bool ok = mode == CG_SHARD_UNEVEN ? seen[i] == 1 : mode == CG_SHARD_PAD ? seen[i] >= 1 : seen[i] <= 1;
        if (!ok) {
            fail(what, "sample %lld visited %d times", (long long)i, seen[i]);
            break;
        }
    }
    for (int r = 1; r < W && mode != CG_SHARD_UNEVEN; r++)
        if (counts[r] != counts[0]) fail(what, "rank %d has %lld samples, rank 0 %lld", r, (long long)counts[r], (long long)counts[0]);
    // Step s of every rank (batch B each) = positions [s W B, (s + 1) W B) of the single epoch.
    if (mode == CG_SHARD_UNEVEN || n % W == 0) {
        for (int64_t s = 0; s * batch < counts[0]; s++)
            for (int r = 0; r < W; r++)
                for (int64_t i = s * batch; i < (s + 1) * batch && i < counts[r]; i++) {
                    int64_t position = s * batch * W + (i - s * batch) * W + r;
                    if (shares[r][i] != order[position]) {
                        fail(what, "step %lld, rank %d, sample %lld is not the single run's position %lld", (long long)s,
                             r, (long long)i, (long long)position);
                        s = counts[0], r = W;
                        break;
                    }
                }
    }
    for (int r = 0; r < W; r++) free(shares[r]);
    free(shares), free(counts), free(seen), free(order), free(share), free(expected);
}

// A loader over a tiny f32 data set whose samples hold their own index: the loader with a share
// visits exactly cg_shard_indices' samples.
static void check_loader(bool shuffle) {
    const int64_t n = 23;
    cg_dataset d = {.count = n, .sample_ndim = 1, .sample_shape = {1}, .sample_numel = 1, .dtype = CG_F32,
                    .num_classes = 2};
    float x[23];
    int32_t labels[23] = {0};
    for (int64_t i = 0; i < n; i++) x[i] = (float)i;
    d.x = x, d.labels = labels;
    for (int r = 0; r < 3; r++) {
        cg_loader *single = cg_loader_new(&d, 4, shuffle, false, 5, cg_cpu());
        cg_loader *l = cg_loader_new(&d, 4, shuffle, false, 5, cg_cpu());
        cg_loader_set_shard(l, r, 3, CG_SHARD_PAD); // shares of 8 (one padded): batches of 4, 4
        for (int epoch = 0; epoch < 2; epoch++) {
            cg_loader_start_epoch(single); // the same permutation as l's (same seed)
            int32_t expected[23];
            memcpy(expected, single->order, sizeof expected);
            cg_shard_indices(expected, n, r, 3, CG_SHARD_PAD);
            cg_loader_start_epoch(l);
            cg_batch b;
            int64_t k = 0;
            while (cg_loader_next(l, &b))
                for (int64_t i = 0; i < b.size; i++, k++)
                    if (((float *)b.x->data)[i] != (float)expected[k])
                        fail(shuffle ? "loader, shuffled" : "loader", "rank %d epoch %d sample %lld: %g, expected %d", r,
                             epoch, (long long)k, (double)((float *)b.x->data)[i], expected[k]);
            if (k != 8) fail("loader", "rank %d epoch %d visited %lld samples, expected 8", r, epoch, (long long)k);
        }
        cg_loader_free(l);
        cg_loader_free(single);
    }
}

int main(void) {
    int64_t sizes[] = {1, 2, 5, 64, 100, 1000, 1003};
    int worlds[] = {1, 2, 3, 4, 7, 8};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t w = 0; w < sizeof worlds / sizeof worlds[0]; w++)
            for (int mode = 0; mode < 3; mode++) check_shares(sizes[i], worlds[w], (cg_shard_mode)mode, 16);
    check_loader(true);
    check_loader(false);
    if (failures == 0) printf("test_shard: shares of 1..8 ranks (pad, drop, uneven), in place, batches and loaders: ok\n");
    return failures ? 1 : 0;
}

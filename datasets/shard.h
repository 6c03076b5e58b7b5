// shard.h: each rank's share of an epoch in data-parallel training, as PyTorch's
// DistributedSampler (torch/utils/data/distributed.py): every rank draws the same permutation of the
// whole data set (same seed), and rank r of W takes positions r, r + W, r + 2W, ... of it. With a
// batch of B per rank, the W batches of one step are then exactly the positions of one batch of
// W * B in a single process's epoch: W ranks at batch 64 see what one process at batch 64 W sees.
// The last, partial step is the same size on every rank: padded with the first positions again
// (CG_SHARD_PAD, the sampler's default), or cut (CG_SHARD_DROP, its drop_last). Evaluation may
// instead split unevenly (CG_SHARD_UNEVEN: no sample counted twice; the ranks' counts differ by one
// at most), since it runs no collective per batch. Augmentation's random draws are shared out the
// same way. Not here: the loader's share (cg_loader_shard, datasets/loader.h) and the collectives
// (core/dist/).
#ifndef CG_SHARD_H
#define CG_SHARD_H

#include "core/rng.h"

typedef enum { CG_SHARD_PAD = 0, CG_SHARD_DROP, CG_SHARD_UNEVEN } cg_shard_mode;

// Samples rank `rank` of `world` visits in an epoch of n samples.
int64_t cg_shard_count(int64_t n, int rank, int world, cg_shard_mode mode);
// Rewrite order[0 .. n) (an epoch's order of n samples) into this rank's share, in
// order[0 .. cg_shard_count(...)). In place.
void cg_shard_indices(int32_t *order, int64_t n, int rank, int world, cg_shard_mode mode);

// Random draws for a step of `samples` images on this rank (per_sample words each, e.g. the crop
// and flip of augmentation): the draws of the whole step (samples x world images, in the order of
// one process's batch) are made, and this rank's images' words kept, so that N ranks augment
// every image exactly as one process at N times the batch would. out: samples x per_sample words.
void cg_shard_draw_u32(cg_rng *r, uint32_t *out, int64_t per_sample, int64_t samples, int rank, int world);

#endif

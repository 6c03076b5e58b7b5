// rng.h: the one random number generator of cgrad, Philox4x32-10 (Salmon, Moraes, Dror, Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011). It is counter-based: block i of a
// stream is philox(counter = {i_lo, i_hi, stream, 0}, key = {seed_lo, seed_hi}), a pure function,
// so the CPU and a GPU compute the same numbers without sharing any state. A generator is keyed
// by (seed, stream); each use draws whole 4-word blocks and moves its offset on.
#ifndef CG_RNG_H
#define CG_RNG_H

#include "core/tensor.h"

// The streams cgrad uses, so that drawing more of one never shifts another.
enum { CG_STREAM_INIT = 0, CG_STREAM_DATA = 1, CG_STREAM_SHUFFLE = 2, CG_STREAM_DROPOUT = 3, CG_STREAM_AUGMENT = 4 };

typedef struct {
    uint64_t seed;
    uint32_t stream;
    uint64_t offset; // next 128-bit block to use
} cg_rng;

// One Philox4x32 block with 10 rounds: out = philox(ctr, key).
void cg_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

cg_rng cg_rng_new(uint64_t seed, uint32_t stream);
// n floats uniform in [lo, hi): 24 random bits per value, (x >> 8) * 2^-24 scaled.
void cg_rng_uniform(cg_rng *r, float *out, int64_t n, float lo, float hi);
// n floats from N(mean, std^2), Box-Muller on pairs of words, computed in double.
void cg_rng_normal(cg_rng *r, float *out, int64_t n, float mean, float std);
// A random permutation of 0..n-1 (Fisher-Yates; index j = (word * (i + 1)) >> 32).
void cg_rng_permutation(cg_rng *r, int32_t *out, int64_t n);
// The same draws written straight into an f32 tensor on any device (a kernel on the GPU gives
// the very numbers the host would); r moves on as if the host had drawn them.
void cg_rng_fill_uniform(cg_rng *r, cg_tensor *t, float lo, float hi);
void cg_rng_fill_normal(cg_rng *r, cg_tensor *t, float mean, float std);
// n raw 32-bit words.
void cg_rng_u32(cg_rng *r, uint32_t *out, int64_t n);

#endif

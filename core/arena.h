// arena.h: the per-step memory of a training loop. Activations and their gradients are carved
// out of large device blocks by bumping an offset; cg_arena_reset hands everything back at once.
// No per-tensor free, no leaks, and after the first step the same addresses every step, which is
// what lets a whole step be captured once as a CUDA Graph. Not for anything that must outlive
// a step: parameters live in params.h.
#ifndef CG_ARENA_H
#define CG_ARENA_H

#include "core/tensor.h"

typedef struct cg_arena cg_arena;

// An arena on `device` starting with one block of initial_bytes (grows as needed).
cg_arena *cg_arena_new(cg_device device, size_t initial_bytes);
void cg_arena_free(cg_arena *a);

// bytes of device memory, 256-byte aligned (what cuBLAS and cuDNN like), valid until reset.
void *cg_arena_alloc(cg_arena *a, size_t bytes);
// A tensor whose header and data both come from the arena; requires_grad false, grad NULL.
cg_tensor *cg_arena_tensor(cg_arena *a, cg_dtype dtype, int ndim, const int64_t *shape);
// Its header alone, data NULL: for a buffer placed later with cg_arena_alloc (the tape's
// unzeroed gradients go after the zeroed ones).
cg_tensor *cg_arena_tensor_header(cg_arena *a, cg_dtype dtype, int ndim, const int64_t *shape);

// A position in the arena, and a way to zero everything allocated since one: how the tape
// clears all of a step's gradient buffers with one memset per block (usually one in all).
typedef struct {
    int block;
    size_t offset;
} cg_arena_mark;
cg_arena_mark cg_arena_get_mark(const cg_arena *a);
void cg_arena_zero_since(cg_arena *a, cg_arena_mark mark);

// Forget everything allocated since the last reset. If the step needed more than one block,
// the blocks are replaced by a single block big enough for the whole step, so that from the
// next step on every allocation lands at the same address.
void cg_arena_reset(cg_arena *a);

// Bytes handed out since the last reset; the most ever handed out in one step (the high-water
// mark); device bytes held.
size_t cg_arena_used(const cg_arena *a);
size_t cg_arena_high_water(const cg_arena *a);
size_t cg_arena_capacity(const cg_arena *a);
int cg_arena_block_count(const cg_arena *a);

#endif

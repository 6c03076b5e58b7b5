// arena.c: bump allocation from a list of device blocks, plus a host-side pool of tensor headers.
// Tensor headers are host memory even for GPU tensors: only the data lives on the device.
#include "core/arena.h"

#include <stdlib.h>

#define CG_ARENA_ALIGN 256
#define CG_HEADERS_PER_SLAB 256
#define CG_MAX_BLOCKS 64

typedef struct {
    void *raw;   // what cg_device_alloc returned (only 64-byte aligned on the CPU)
    char *base;  // raw rounded up to CG_ARENA_ALIGN
    size_t size; // usable bytes from base
} cg_block;

typedef struct cg_header_slab {
    cg_tensor headers[CG_HEADERS_PER_SLAB];
    struct cg_header_slab *next;
} cg_header_slab;

struct cg_arena {
    cg_device device;
    cg_block blocks[CG_MAX_BLOCKS];
    int block_count;
    int current;          // block being bumped
    size_t offset;        // bump offset inside blocks[current]
    size_t used;          // bytes handed out since reset (with alignment padding)
    size_t high_water;
    cg_header_slab *slabs; // headers, reused after each reset
    cg_header_slab *slab;  // slab being filled
    int slab_used;
};

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// A block of `size` usable bytes whose base is CG_ARENA_ALIGN-aligned: the device allocator
// promises less (64 bytes on the CPU), so ask for one alignment more and round the base up.
static cg_block block_new(cg_device device, size_t size) {
    cg_block b;
    b.raw = cg_device_alloc_for(device, size + CG_ARENA_ALIGN,
                                "a step's activations (the tape's arena); try a smaller --batch-size");
    b.base = (char *)b.raw + (CG_ARENA_ALIGN - (uintptr_t)b.raw % CG_ARENA_ALIGN) % CG_ARENA_ALIGN;
    b.size = size;
    return b;
}

cg_arena *cg_arena_new(cg_device device, size_t initial_bytes) {
    cg_arena *a = cg_xcalloc(1, sizeof *a);
    a->device = device;
    size_t size = align_up(initial_bytes < 4096 ? 4096 : initial_bytes, CG_ARENA_ALIGN);
    a->blocks[0] = block_new(device, size);
    a->block_count = 1;
    a->slabs = cg_xcalloc(1, sizeof *a->slabs);
    a->slab = a->slabs;
    return a;
}

void cg_arena_free(cg_arena *a) {
    if (a == NULL) return;
    for (int i = 0; i < a->block_count; i++) cg_device_free(a->device, a->blocks[i].raw);
    cg_header_slab *s = a->slabs;
    while (s) {
        cg_header_slab *next = s->next;
        free(s);
        s = next;
    }
    free(a);
}

void *cg_arena_alloc(cg_arena *a, size_t bytes) {
    size_t need = align_up(bytes ? bytes : 1, CG_ARENA_ALIGN);
    while (a->offset + need > a->blocks[a->current].size) {
        // Move on to the next block, making one when none is left that is big enough.
        if (a->current + 1 < a->block_count) {
            a->used += a->blocks[a->current].size - a->offset; // the tail we skip counts as used
            a->current++;
            a->offset = 0;
            continue;
        }
        CG_CHECK(a->block_count < CG_MAX_BLOCKS, "arena: more than %d blocks in one step", CG_MAX_BLOCKS);
        size_t size = a->blocks[a->current].size * 2;
        if (size < need) size = need;
        a->used += a->blocks[a->current].size - a->offset;
        a->blocks[a->block_count] = block_new(a->device, size);
        a->block_count++;
        a->current++;
        a->offset = 0;
    }
    void *p = a->blocks[a->current].base + a->offset;
    a->offset += need;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

cg_tensor *cg_arena_tensor_header(cg_arena *a, cg_dtype dtype, int ndim, const int64_t *shape) {
    if (a->slab_used == CG_HEADERS_PER_SLAB) {
        if (a->slab->next == NULL) a->slab->next = cg_xcalloc(1, sizeof *a->slab->next);
        a->slab = a->slab->next;
        a->slab_used = 0;
    }
    cg_tensor *t = &a->slab->headers[a->slab_used++];
    *t = (cg_tensor){0};
    cg_tensor_set_shape(t, ndim, shape);
    t->dtype = dtype;
    t->device = a->device;
    return t;
}

cg_tensor *cg_arena_tensor(cg_arena *a, cg_dtype dtype, int ndim, const int64_t *shape) {
    cg_tensor *t = cg_arena_tensor_header(a, dtype, ndim, shape);
    t->data = cg_arena_alloc(a, cg_tensor_bytes(t));
    return t;
}

void cg_arena_reset(cg_arena *a) {
    if (a->block_count > 1) {
        // Coalesce: one block that holds a whole step, so addresses repeat from now on.
        size_t total = 0;
        for (int i = 0; i < a->block_count; i++) total += a->blocks[i].size;
        for (int i = 0; i < a->block_count; i++) cg_device_free(a->device, a->blocks[i].raw);
        a->blocks[0] = block_new(a->device, total);
        a->block_count = 1;
    }
    a->current = 0;
    a->offset = 0;
    a->used = 0;
    a->slab = a->slabs;
    a->slab_used = 0;
}

size_t cg_arena_used(const cg_arena *a) { return a->used; }
size_t cg_arena_high_water(const cg_arena *a) { return a->high_water; }
int cg_arena_block_count(const cg_arena *a) { return a->block_count; }

size_t cg_arena_capacity(const cg_arena *a) {
    size_t total = 0;
    for (int i = 0; i < a->block_count; i++) total += a->blocks[i].size;
    return total;
}

cg_arena_mark cg_arena_get_mark(const cg_arena *a) {
    cg_arena_mark m = {a->current, a->offset};
    return m;
}

void cg_arena_zero_since(cg_arena *a, cg_arena_mark mark) {
    for (int b = mark.block; b <= a->current; b++) {
        size_t from = b == mark.block ? mark.offset : 0;
        size_t to = b == a->current ? a->offset : a->blocks[b].size;
        if (to > from) cg_device_zero(a->device, a->blocks[b].base + from, to - from);
    }
}

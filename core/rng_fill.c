// rng_fill.c: a tensor filled with random numbers on its own device, through the device's rng
// kernels (core/kernels.h), which draw exactly what core/rng.c draws on the host.
#include "core/kernels.h"
#include "core/rng.h"

void cg_rng_fill_uniform(cg_rng *r, cg_tensor *t, float lo, float hi) {
    CG_CHECK(t->dtype == CG_F32, "random fill of a %s tensor", cg_dtype_name(t->dtype));
    cg_kernels_for(t->device)->rng_uniform(t->data, t->numel, r->seed, r->stream, r->offset, lo, hi);
    r->offset += (uint64_t)(t->numel + 3) / 4;
}

void cg_rng_fill_normal(cg_rng *r, cg_tensor *t, float mean, float std) {
    CG_CHECK(t->dtype == CG_F32, "random fill of a %s tensor", cg_dtype_name(t->dtype));
    cg_kernels_for(t->device)->rng_normal(t->data, t->numel, r->seed, r->stream, r->offset, mean, std);
    r->offset += (uint64_t)(t->numel + 3) / 4;
}

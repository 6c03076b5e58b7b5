// rng.c: the CPU's random-fill kernels, the host generator of core/rng.c started at a given
// block (the CUDA twin, kernels/cuda/rng.cu, computes each block on its own thread).
#include "kernels/cpu/cpu.h"
#include "core/rng.h"

static void rng_uniform_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi) {
    cg_rng r = {seed, stream, offset};
    cg_rng_uniform(&r, out, n, lo, hi);
}

static void rng_normal_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean, float std) {
    cg_rng r = {seed, stream, offset};
    cg_rng_normal(&r, out, n, mean, std);
}

static void dropout_forward_cpu(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed, uint32_t stream,
                                uint64_t offset) {
    cg_rng r = {seed, stream, offset};
    cg_rng_uniform(&r, mask, n, 0.0f, 1.0f); // the mask's draws, then kept or dropped
    float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        mask[i] = mask[i] >= p ? keep : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void rng_register_cpu(cg_kernels *k) {
    k->dropout_forward = dropout_forward_cpu;
    k->rng_uniform = rng_uniform_cpu;
    k->rng_normal = rng_normal_cpu;
}

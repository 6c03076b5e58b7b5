// rng.c: the CPU's random-fill kernels, the host generator of core/rng.c started at a given
// block (the CUDA twin, kernels/cuda/rng.cu, computes each block on its own thread).
#include "cpu.h"
#include "../../core/rng.h"

void rng_uniform_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi) {
    cg_rng r = {seed, stream, offset};
    cg_rng_uniform(&r, out, n, lo, hi);
}

void rng_normal_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean, float std) {
    cg_rng r = {seed, stream, offset};
    cg_rng_normal(&r, out, n, mean, std);
}

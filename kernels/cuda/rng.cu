// rng.cu: Philox4x32-10 on the GPU, one thread per 4-value block, bit for bit the generator of
// core/rng.c (same rounds, constants, counter layout and conversions; normals in double).
#include "kernels/cuda/cuda.h"

static __device__ void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

static __device__ void block_words(uint32_t out[4], uint64_t seed, uint32_t stream, uint64_t block) {
    out[0] = (uint32_t)block;
    out[1] = (uint32_t)(block >> 32);
    out[2] = stream;
    out[3] = 0;
    philox4x32_10(out, (uint32_t)seed, (uint32_t)(seed >> 32));
}

static __global__ void uniform_kernel(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset,
                                      float lo, float hi) {
    GRID_STRIDE(b, (n + 3) / 4) {
        uint32_t w[4];
        block_words(w, seed, stream, offset + (uint64_t)b);
        for (int j = 0; j < 4 && 4 * b + j < n; j++) {
            float u = (float)(w[j] >> 8) * (1.0f / 16777216.0f);
            out[4 * b + j] = lo + (hi - lo) * u;
        }
    }
}

static __global__ void normal_kernel(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset,
                                     float mean, float std) {
    const double two_pi = 6.283185307179586476925;
    GRID_STRIDE(b, (n + 3) / 4) {
        uint32_t w[4];
        block_words(w, seed, stream, offset + (uint64_t)b);
        for (int pair = 0; pair < 2; pair++) {
            double u1 = ((double)w[2 * pair] + 1.0) / 4294967296.0;
            double u2 = (double)w[2 * pair + 1] / 4294967296.0;
            double radius = sqrt(-2.0 * log(u1));
            int64_t i = 4 * b + 2 * pair;
            if (i < n) out[i] = (float)(mean + std * (radius * cos(two_pi * u2)));
            if (i + 1 < n) out[i + 1] = (float)(mean + std * (radius * sin(two_pi * u2)));
        }
    }
}

extern "C" {
void rng_uniform_cuda(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi) {
    LAUNCH(uniform_kernel, (n + 3) / 4, out, n, seed, stream, offset, lo, hi);
}
static void rng_normal_cuda(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean, float std) {
    LAUNCH(normal_kernel, (n + 3) / 4, out, n, seed, stream, offset, mean, std);
}
}

// Dropout's mask from the same uniform draws as uniform_kernel (lo 0, hi 1).
static __global__ void dropout_kernel(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                                      uint32_t stream, uint64_t offset) {
    float keep = 1.0f / (1.0f - p);
    GRID_STRIDE(b, (n + 3) / 4) {
        uint32_t w[4];
        block_words(w, seed, stream, offset + (uint64_t)b);
        for (int j = 0; j < 4 && 4 * b + j < n; j++) {
            float u = (float)(w[j] >> 8) * (1.0f / 16777216.0f);
            float m = u >= p ? keep : 0.0f;
            mask[4 * b + j] = m;
            y[4 * b + j] = x[4 * b + j] * m;
        }
    }
}

static void dropout_forward_cuda(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                                     uint32_t stream, uint64_t offset) {
    LAUNCH(dropout_kernel, (n + 3) / 4, y, mask, x, n, p, seed, stream, offset);
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void rng_register_cuda(cg_kernels *k) {
    k->dropout_forward = dropout_forward_cuda;
    k->rng_uniform = rng_uniform_cuda;
    k->rng_normal = rng_normal_cuda;
}

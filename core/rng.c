// rng.c: Philox4x32-10 and the distributions built on it, on the host. The constants are those of
// the paper and of the Random123 library's reference implementation. Filling a tensor on its
// device is rng_fill.c (the device's rng kernels compute these same numbers).
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u // golden ratio
#define PHILOX_W1 0xBB67AE85u // sqrt(3) - 1

void cg_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0; // the key schedule ("bump") between rounds
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

cg_rng cg_rng_new(uint64_t seed, uint32_t stream) {
    cg_rng r = {seed, stream, 0};
    return r;
}

static void next_block(cg_rng *r, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)r->offset, (uint32_t)(r->offset >> 32), r->stream, 0};
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    cg_philox4x32_10(ctr, key, out);
    r->offset++;
}

void cg_rng_u32(cg_rng *r, uint32_t *out, int64_t n) {
    uint32_t block[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, block);
        for (int j = 0; j < 4 && i + j < n; j++) out[i + j] = block[j];
    }
}

void cg_rng_uniform(cg_rng *r, float *out, int64_t n, float lo, float hi) {
    uint32_t block[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, block);
        for (int j = 0; j < 4 && i + j < n; j++) {
            float u = (float)(block[j] >> 8) * (1.0f / 16777216.0f); // [0, 1)
            out[i + j] = lo + (hi - lo) * u;
        }
    }
}

void cg_rng_normal(cg_rng *r, float *out, int64_t n, float mean, float std) {
    const double two_pi = 6.283185307179586476925;
    uint32_t block[4];
    for (int64_t i = 0; i < n; i += 4) {
        next_block(r, block);
        for (int pair = 0; pair < 2; pair++) {
            // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1).
            double u1 = ((double)block[2 * pair] + 1.0) / 4294967296.0;
            double u2 = (double)block[2 * pair + 1] / 4294967296.0;
            double radius = sqrt(-2.0 * log(u1));
            double z0 = radius * cos(two_pi * u2);
            double z1 = radius * sin(two_pi * u2);
            if (i + 2 * pair < n) out[i + 2 * pair] = (float)(mean + std * z0);
            if (i + 2 * pair + 1 < n) out[i + 2 * pair + 1] = (float)(mean + std * z1);
        }
    }
}

void cg_rng_permutation(cg_rng *r, int32_t *out, int64_t n) {
    CG_CHECK(n >= 0 && n <= INT32_MAX, "permutation of %lld elements", (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)i;
    uint32_t block[4];
    int used = 4;
    for (int64_t i = n - 1; i > 0; i--) {
        if (used == 4) {
            next_block(r, block);
            used = 0;
        }
        int64_t j = (int64_t)(((uint64_t)block[used++] * (uint64_t)(i + 1)) >> 32);
        int32_t tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
}

// fast_divide.h: division by a divisor fixed for a whole kernel launch as a multiply-high and
// a shift instead of the long instruction sequence of an integer division (GPUs have no divide
// instruction). The host computes the magic number once per launch; the kernels divide flat
// element indices by plane and channel sizes with it. Method: Granlund and Montgomery, "Division
// by invariant integers using multiplication", PLDI 1994: with l = ceil(log2 d) and
// m = ceil(2^(31 + l) / d), n / d = (n m) >> (31 + l) for every 0 <= n < 2^31.
// Plain C (tests/test_fast_divide.c checks the host twin of the formula on the CPU).
#ifndef CG_FAST_DIVIDE_H
#define CG_FAST_DIVIDE_H

#include <stdint.h>

typedef struct {
    uint32_t divisor;    // d >= 1
    uint32_t multiplier; // m, below 2^32 (0 for d = 1: n / 1 = n)
    uint32_t shift;      // l - 1: the shift after the high 32 bits of n m
} cg_fast_divisor;

static inline cg_fast_divisor cg_fast_divisor_make(uint32_t d) {
    cg_fast_divisor f = {d, 0, 0};
    if (d > 1) {
        uint32_t l = 0;
        while ((1ull << l) < d) l++;
        f.multiplier = (uint32_t)(((1ull << (31 + l)) + d - 1) / d);
        f.shift = l - 1;
    }
    return f;
}

// The host twin of the device quotient below (the same arithmetic, for the test).
static inline uint32_t cg_fast_divide_host(uint32_t n, cg_fast_divisor f) {
    return f.divisor == 1 ? n : (uint32_t)(((uint64_t)n * f.multiplier) >> 32) >> f.shift;
}

#ifdef __CUDACC__
// n / d for 0 <= n < 2^31.
static __device__ __forceinline__ uint32_t cg_fast_divide(uint32_t n, cg_fast_divisor f) {
    return f.divisor == 1 ? n : __umulhi(n, f.multiplier) >> f.shift;
}
#endif

#endif

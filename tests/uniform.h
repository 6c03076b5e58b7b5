// uniform.h: uniform floats in [-1, 1) for the kernel tests (conv_check.h, test_products_cpu.c,
// bf16_values.h), from a xorshift64* (Marsaglia's xorshift, then a multiply by Vigna's constant):
// the tests need no particular generator, only the same values every run. Each test has its own
// state; one that wants another sequence defines UNIFORM_SEED before including this file.
#ifndef CG_TESTS_UNIFORM_H
#define CG_TESTS_UNIFORM_H

#include <stdint.h>

#ifndef UNIFORM_SEED
#define UNIFORM_SEED 0x9e3779b97f4a7c15u
#endif

static uint64_t uniform_state = UNIFORM_SEED;
static float uniform(void) {
    uniform_state ^= uniform_state >> 12, uniform_state ^= uniform_state << 25, uniform_state ^= uniform_state >> 27;
    return (float)((uniform_state * 2685821657736338717ull) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

#endif

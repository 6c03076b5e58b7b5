// bf16_values.h: random bf16 values for the bf16 tests (test_bf16_cpu.c, test_bf16_winograd.c):
// uniform in [-1, 1) (tests/uniform.h).
#ifndef CG_TESTS_BF16_VALUES_H
#define CG_TESTS_BF16_VALUES_H

#include "core/half.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UNIFORM_SEED 0x12345678u
#include "tests/uniform.h"

static uint16_t *random_bf16(int64_t n) {
    uint16_t *v = malloc((size_t)(n > 0 ? n : 1) * 2);
    for (int64_t i = 0; i < n; i++) v[i] = cg_f32_to_bf16(uniform());
    return v;
}

static uint16_t *copy16(const uint16_t *v, int64_t n) {
    uint16_t *c = malloc((size_t)(n > 0 ? n : 1) * 2);
    memcpy(c, v, (size_t)n * 2);
    return c;
}

// Compares n bf16 values; terms: the length of the sums (their inputs lie in [-1, 1]).

#endif

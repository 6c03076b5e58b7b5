// conv_check.h: what tests/test_conv_cpu.c and tests/test_conv_fused_cpu.c share: a convolution's
// shape, random and copied buffers of floats, and the bit-for-bit comparison both make.
// Header-only (static, one copy per test), as check.h.
#ifndef CG_TESTS_CONV_CHECK_H
#define CG_TESTS_CONV_CHECK_H

#include "tests/check.h"
#include "tests/uniform.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t N, C, H, W, K, R, stride, pad;
    const char *name;
} shape;

__attribute__((unused)) static float *random_floats(int64_t n) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = uniform();
    return v;
}
__attribute__((unused)) static float *copy_floats(const float *v, int64_t n) {
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(c, v, (size_t)n * sizeof(float));
    return c;
}
__attribute__((unused)) static void same_bits(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            fail(what, "element %lld of %lld: %.9g, expected %.9g", (long long)i, (long long)n, (double)got[i],
                 (double)want[i]);
            return;
        }
}

#endif

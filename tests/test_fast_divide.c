// test_fast_divide.c: the GPU kernels' division by multiply-high (kernels/cuda/fast_divide.h),
// through its host twin, against the C division operator: every divisor up to 4,096 and the
// powers of two with their neighbours, each on the dividends where rounding is closest (the
// multiples of d and the values just below them, up to 2^31 - 1) and on random ones. A wrong
// multiplier or shift gives a wrong quotient here long before a kernel reads a wrong channel.
#include "kernels/cuda/fast_divide.h"
#include "tests/check.h"

#include <stdint.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint32_t next_random(void) { // splitmix64's output, high half: any fixed sequence will do
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void check_divisor(uint32_t d) {
    cg_fast_divisor f = cg_fast_divisor_make(d);
    const uint32_t top = 0x7fffffffu; // the largest dividend the formula promises
    uint32_t tries[64];
    int count = 0;
    tries[count++] = 0, tries[count++] = 1, tries[count++] = top, tries[count++] = top - 1;
    uint32_t last_multiple = top / d * d; // the multiples of d near the top, where the error is largest
    for (uint32_t k = 0; k < 8 && last_multiple >= k * d; k++) {
        uint32_t m = last_multiple - k * d;
        tries[count++] = m;
        if (m > 0) tries[count++] = m - 1;
    }
    while (count < 64) tries[count++] = next_random() & top;
    for (int i = 0; i < count; i++) {
        uint32_t n = tries[i], got = cg_fast_divide_host(n, f);
        if (got != n / d) {
            fail("fast divide", "%u / %u: %u, expected %u (multiplier %u, shift %u)", n, d, got, n / d, f.multiplier,
                 f.shift);
            return;
        }
    }
}

int main(void) {
    fail_print_max = 20;
    for (uint32_t d = 1; d <= 4096; d++) check_divisor(d);
    for (int b = 12; b <= 31; b++) {
        uint32_t p = 1u << b;
        check_divisor(p - 1), check_divisor(p), check_divisor(p + 1);
    }
    for (int i = 0; i < 20000; i++) check_divisor(1 + (next_random() & 0x7fffffffu));
    return check_summary("test_fast_divide");
}

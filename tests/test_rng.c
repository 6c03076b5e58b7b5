// test_rng.c: Philox4x32-10 against Random123's known-answer vectors (tests/kat_vectors), then the
// distributions on top: uniform, normal, permutation, reproducibility per (seed, stream).
// Not a statistical test suite (no TestU01): only checks that a wrong formula would fail.
#include "core/rng.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- known answers ----------------------------------------------------------------------------
// Lines "philox4x32 10 CTR[4] KEY[2] EXPECTED[4]" of Random123's tests/kat_vectors.

typedef struct {
    uint32_t ctr[4];
    uint32_t key[2];
    uint32_t expected[4];
} kat_vector;

static const kat_vector kat_vectors[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_known_answers(void) {
    int n = (int)(sizeof kat_vectors / sizeof kat_vectors[0]);
    for (int v = 0; v < n; v++) {
        const kat_vector *k = &kat_vectors[v];
        uint32_t out[4];
        cg_philox4x32_10(k->ctr, k->key, out);
        for (int i = 0; i < 4; i++)
            if (out[i] != k->expected[i])
                fail("philox kat",
                     "vector %d (ctr %08x %08x %08x %08x, key %08x %08x) word %d: expected %08x, got %08x", v,
                     k->ctr[0], k->ctr[1], k->ctr[2], k->ctr[3], k->key[0], k->key[1], i, k->expected[i], out[i]);
    }
    printf("philox4x32-10: %d known-answer vectors checked\n", n);
}

// The generator's stream layout (rng.h): block i of (seed, stream) is
// philox({i_lo, i_hi, stream, 0}, {seed_lo, seed_hi}).
static void test_stream_layout(void) {
    uint64_t seed = 0x0123456789abcdefULL;
    cg_rng r = cg_rng_new(seed, 7);
    uint32_t words[12];
    cg_rng_u32(&r, words, 12);
    for (uint32_t block = 0; block < 3; block++) {
        uint32_t ctr[4] = {block, 0, 7, 0}, key[2] = {0x89abcdef, 0x01234567}, out[4];
        cg_philox4x32_10(ctr, key, out);
        for (int i = 0; i < 4; i++)
            if (words[4 * block + i] != out[i])
                fail("stream layout", "block %u word %d: expected %08x, got %08x", block, i, out[i],
                     words[4 * block + i]);
    }
    if (r.offset != 3)
        fail("stream layout", "offset after 12 words: expected 3, got %llu", (unsigned long long)r.offset);
}

// ---- distributions ----------------------------------------------------------------------------

static void test_uniform(void) {
    const int64_t n = 1000000;
    float *x = cg_xmalloc((size_t)n * sizeof(float));
    cg_rng r = cg_rng_new(42, CG_STREAM_DATA);
    cg_rng_uniform(&r, x, n, 0.0f, 1.0f);
    double sum = 0.0, sum_sq = 0.0;
    float lo = 1.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!(x[i] >= 0.0f && x[i] < 1.0f)) {
            fail("uniform", "index %lld: %.9g outside [0, 1)", (long long)i, (double)x[i]);
            break;
        }
        sum += x[i];
        sum_sq += (double)x[i] * x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    double mean = sum / n, var = sum_sq / n - mean * mean;
    // Standard error of the mean: sqrt(1/12 / 1e6) = 2.9e-4; allow about 7 of them.
    if (fabs(mean - 0.5) > 2e-3)
        fail("uniform", "mean: expected 0.5 +- 2e-3, got %.6f", mean);
    if (fabs(var - 1.0 / 12.0) > 1e-3)
        fail("uniform", "variance: expected %.6f +- 1e-3, got %.6f", 1.0 / 12.0, var);
    if (lo > 1e-4f || hi < 1.0f - 1e-4f)
        fail("uniform", "range not covered: min %.6g, max %.6g", (double)lo, (double)hi);

    // A shifted, scaled range [lo, hi).
    cg_rng_uniform(&r, x, n, -3.0f, 5.0f);
    sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!(x[i] >= -3.0f && x[i] < 5.0f)) {
            fail("uniform", "index %lld: %.9g outside [-3, 5)", (long long)i, (double)x[i]);
            break;
        }
        sum += x[i];
    }
    if (fabs(sum / n - 1.0) > 1.5e-2)
        fail("uniform", "mean of U(-3, 5): expected 1 +- 1.5e-2, got %.6f", sum / n);
    printf("uniform: mean %.5f variance %.5f (expected 0.5, %.5f)\n", mean, var, 1.0 / 12.0);
    free(x);
}

static void test_normal(void) {
    const int64_t n = 1000000;
    float *x = cg_xmalloc((size_t)n * sizeof(float));
    cg_rng r = cg_rng_new(7, CG_STREAM_INIT);
    cg_rng_normal(&r, x, n, 0.0f, 1.0f);
    double sum = 0.0, sum_sq = 0.0;
    int64_t beyond_two = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            fail("normal", "index %lld is not finite: %g", (long long)i, (double)x[i]);
            break;
        }
        sum += x[i];
        sum_sq += (double)x[i] * x[i];
        beyond_two += fabsf(x[i]) > 2.0f;
    }
    double mean = sum / n, std = sqrt(sum_sq / n - mean * mean);
    double tail = (double)beyond_two / n; // P(|z| > 2) = 0.0455
    // Standard errors: mean 1e-3, std 7e-4, tail 2e-4.
    if (fabs(mean) > 5e-3)
        fail("normal", "mean: expected 0 +- 5e-3, got %.6f", mean);
    if (fabs(std - 1.0) > 5e-3)
        fail("normal", "std: expected 1 +- 5e-3, got %.6f", std);
    if (fabs(tail - 0.0455) > 2e-3)
        fail("normal", "P(|z| > 2): expected 0.0455 +- 2e-3, got %.5f", tail);

    // mean and std arguments
    cg_rng_normal(&r, x, n, 3.0f, 0.5f);
    sum = 0.0;
    sum_sq = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        sum_sq += (double)x[i] * x[i];
    }
    double mean2 = sum / n, std2 = sqrt(sum_sq / n - mean2 * mean2);
    if (fabs(mean2 - 3.0) > 5e-3 || fabs(std2 - 0.5) > 5e-3)
        fail("normal", "N(3, 0.5^2): expected mean 3, std 0.5 (+- 5e-3), got %.6f, %.6f", mean2, std2);

    // An odd count fills every element (the last pair is half used).
    float odd[7];
    for (int i = 0; i < 7; i++)
        odd[i] = NAN;
    cg_rng_normal(&r, odd, 7, 0.0f, 1.0f);
    for (int i = 0; i < 7; i++)
        if (!isfinite(odd[i]))
            fail("normal", "7 values: index %d left unset", i);
    printf("normal: mean %.5f std %.5f P(|z|>2) %.5f (expected 0, 1, 0.0455)\n", mean, std, tail);
    free(x);
}

static void test_permutation(void) {
    const int64_t sizes[] = {1, 2, 3, 10, 1000, 4097};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        int32_t *p = cg_xmalloc((size_t)n * sizeof(int32_t));
        char *seen = calloc((size_t)n, 1);
        cg_rng r = cg_rng_new(11, CG_STREAM_SHUFFLE);
        cg_rng_permutation(&r, p, n);
        int64_t fixed = 0;
        for (int64_t i = 0; i < n; i++) {
            if (p[i] < 0 || p[i] >= n) {
                fail("permutation", "n %lld index %lld: value %d outside 0..%lld", (long long)n, (long long)i, p[i],
                     (long long)(n - 1));
                break;
            }
            if (seen[p[i]]) {
                fail("permutation", "n %lld: value %d appears twice", (long long)n, p[i]);
                break;
            }
            seen[p[i]] = 1;
            fixed += p[i] == i;
        }
        // A shuffle of 1000 leaves about one element in place; 20 means it barely moved anything.
        if (n == 1000 && fixed > 20)
            fail("permutation", "n 1000: %lld fixed points, not shuffled", (long long)fixed);
        free(p);
        free(seen);
    }

    // Every position is reached: over many permutations of 5, each value lands at each place
    // about 1/5 of the time (Fisher-Yates is uniform).
    int counts[5][5] = {{0}};
    cg_rng r = cg_rng_new(3, CG_STREAM_SHUFFLE);
    const int trials = 50000;
    for (int t = 0; t < trials; t++) {
        int32_t p[5];
        cg_rng_permutation(&r, p, 5);
        for (int i = 0; i < 5; i++)
            counts[i][p[i]]++;
    }
    for (int i = 0; i < 5; i++)
        for (int v = 0; v < 5; v++)
            if (abs(counts[i][v] - trials / 5) > 600) // standard deviation ~ 89
                fail("permutation", "value %d at position %d: %d times of %d, expected about %d", v, i, counts[i][v],
                     trials, trials / 5);
    printf("permutation: sizes 1..4097 are permutations; positions uniform over %d shuffles of 5\n", trials);
}

static void test_reproducibility(void) {
    enum { N = 4099 }; // not a multiple of 4: partial last block
    static float a[N], b[N], c[N], d[N];
    cg_rng r1 = cg_rng_new(1234, CG_STREAM_INIT), r2 = cg_rng_new(1234, CG_STREAM_INIT);
    cg_rng_normal(&r1, a, N, 0.0f, 1.0f);
    cg_rng_normal(&r2, b, N, 0.0f, 1.0f);
    if (memcmp(a, b, sizeof a) != 0)
        fail("reproducibility", "same (seed, stream) gave different normals");

    // A second draw continues the sequence and differs from the first.
    cg_rng_normal(&r1, c, N, 0.0f, 1.0f);
    if (memcmp(a, c, sizeof a) == 0)
        fail("reproducibility", "a second draw repeated the first");

    // Different streams and different seeds give different numbers.
    cg_rng other_stream = cg_rng_new(1234, CG_STREAM_DATA);
    cg_rng_normal(&other_stream, d, N, 0.0f, 1.0f);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == d[i];
    if (same > 5)
        fail("reproducibility", "streams INIT and DATA share %d of %d values", same, N);
    cg_rng other_seed = cg_rng_new(1235, CG_STREAM_INIT);
    cg_rng_normal(&other_seed, d, N, 0.0f, 1.0f);
    same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == d[i];
    if (same > 5)
        fail("reproducibility", "seeds 1234 and 1235 share %d of %d values", same, N);

    // Seeds that differ only in their high 32 bits differ too (the key uses both halves).
    uint32_t w1[8], w2[8];
    cg_rng h1 = cg_rng_new(5, 0), h2 = cg_rng_new(5 + (1ULL << 32), 0);
    cg_rng_u32(&h1, w1, 8);
    cg_rng_u32(&h2, w2, 8);
    if (memcmp(w1, w2, sizeof w1) == 0)
        fail("reproducibility", "seeds 5 and 5 + 2^32 gave the same words");

    // Drawing in pieces of whole blocks gives the same numbers as drawing at once.
    uint32_t whole[16], pieces[16];
    cg_rng p1 = cg_rng_new(99, 2), p2 = cg_rng_new(99, 2);
    cg_rng_u32(&p1, whole, 16);
    cg_rng_u32(&p2, pieces, 8);
    cg_rng_u32(&p2, pieces + 8, 8);
    if (memcmp(whole, pieces, sizeof whole) != 0)
        fail("reproducibility", "16 words at once != 8 + 8 words");
    printf("reproducibility: same (seed, stream) repeats; other streams and seeds differ\n");
}

int main(void) {
    test_known_answers();
    test_stream_layout();
    test_uniform();
    test_normal();
    test_permutation();
    test_reproducibility();
    return check_summary("test_rng");
}

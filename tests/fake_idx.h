// fake_idx.h: a small Fashion-MNIST-shaped data set written as plain IDX files, for tests that run
// an example on real files without needing Debian's dataset-fashion-mnist: 28 x 28 images whose
// class (i mod 10) sets which band of rows is bright, plus noise. Header-only; fail() from check.h.
#ifndef CG_TESTS_FAKE_IDX_H
#define CG_TESTS_FAKE_IDX_H

#include "tests/check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

// One IDX file: the magic (0, 0, 8 = u8, ndim), the sizes big-endian, then the bytes.
static void write_idx(const char *path, int ndim, const uint32_t *sizes, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fail(path, "cannot write");
        return;
    }
    uint8_t head[4 + 4 * 3] = {0, 0, 8, (uint8_t)ndim};
    for (int i = 0; i < ndim; i++) {
        uint32_t v = sizes[i];
        uint8_t *p = head + 4 + 4 * i;
        p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
    }
    if (fwrite(head, 1, 4 + 4 * (size_t)ndim, f) != 4 + 4 * (size_t)ndim || fwrite(data, 1, n, f) != n)
        fail(path, "short write");
    fclose(f);
}

// count 28 x 28 images (dir/images, dir/labels) whose class (i mod 10) sets which band of rows is bright, plus noise.
static void write_split(const char *dir, const char *images, const char *labels, uint32_t count) {
    uint8_t *pixels = malloc((size_t)count * 784), *classes = malloc(count);
    uint32_t state = 12345u + count;
    for (uint32_t i = 0; i < count; i++) {
        classes[i] = (uint8_t)(i % 10);
        for (int p = 0; p < 784; p++) {
            state = state * 1664525u + 1013904223u; // a linear congruential generator: any noise will do
            int band = (p / 28) / 3 == classes[i];
            pixels[(size_t)i * 784 + p] = (uint8_t)((band ? 160 : 0) + (state >> 26));
        }
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, images);
    write_idx(path, 3, (uint32_t[]){count, 28, 28}, pixels, (size_t)count * 784);
    snprintf(path, sizeof path, "%s/%s", dir, labels);
    write_idx(path, 1, (uint32_t[]){count}, classes, count);
    free(pixels);
    free(classes);
}

// dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte with train_count and test_count images.
__attribute__((unused)) static void write_fake_fashion_mnist(const char *dir, uint32_t train_count, uint32_t test_count) {
    write_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", train_count);
    write_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", test_count);
}

// Removes what write_fake_fashion_mnist wrote.
__attribute__((unused)) static void remove_fake_fashion_mnist(const char *dir) {
    static const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

#endif

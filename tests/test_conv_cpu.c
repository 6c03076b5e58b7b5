// test_conv_cpu.c: the CPU's f32 convolution paths against each other, bit for bit. The fused
// block (conv2d_relu_pool_forward / _backward: a direct convolution pooled in registers for a
// one-channel 3 x 3 image, kernels/cpu/conv_direct.c; im2col and the GEMM otherwise) against
// conv2d_forward, relu_forward and max_pool2d_forward and their backwards in a row; and every
// result on one thread against two. The kernels promise both (core/kernels.h: "y, dx and dw
// identical to the three ops"; lesson 03: the same bits whatever the thread count), so any
// difference, even in the last bit, fails. The shapes take every path: the direct one (the
// tutorial's first layer, an odd size, one output channel), im2col with stride 2 and padding 0,
// a 5 x 5 kernel, the tutorial's second layer, and ResNet-18's stride-2 stem on a larger image.
#include "core/kernels.h"
#include "kernels/cpu/threads.h"
#include "tests/check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t N, C, H, W, K, R, stride, pad;
    const char *name;
} shape;

static uint64_t state = 0x9e3779b97f4a7c15u;
static float uniform(void) { // [-1, 1), xorshift64*: the test needs no particular generator
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return (float)((state * 2685821657736338717ull) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}
static float *random_floats(int64_t n) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = uniform();
    return v;
}
static float *copy_floats(const float *v, int64_t n) {
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(c, v, (size_t)n * sizeof(float));
    return c;
}
static void same_bits(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            fail(what, "element %lld of %lld: %.9g, expected %.9g", (long long)i, (long long)n, (double)got[i],
                 (double)want[i]);
            return;
        }
}

// The results of one shape: the three ops' and the fused block's y, dx, dw (db: the fused block
// sums it in another order, so it is left out, as core/kernels.h says); and the fused backward
// without dx, as the first layer calls it (dwn, dbn: for a one-channel 3 x 3 image and whole
// vectors of channels, conv_direct_dw.c's kernel), with the fused db of the call with dx (dbf)
// to compare it with.
typedef struct {
    float *y3, *dx3, *dw3, *yf, *dxf, *dwf, *dwn, *dbf, *dbn;
    int64_t ny, nx, nw;
} results;

// dx0, dw0: the gradients' old values (both paths add to them).
static results run(const shape *c, const float *x, const float *w, const float *b, const float *dy, const float *dx0,
                   const float *dw0, const float *db0) {
    const cg_kernels *k = cg_cpu_kernels();
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t P2 = P / 2, Q2 = Q / 2, conv_n = c->N * c->K * P * Q;
    results r = {.ny = c->N * c->K * P2 * Q2, .nx = c->N * c->C * c->H * c->W, .nw = c->K * c->C * c->R * c->R};
    // The three ops, and their backwards into gradients that start from the same old values.
    float *conv = malloc((size_t)conv_n * sizeof(float)), *relu = malloc((size_t)conv_n * sizeof(float));
    int32_t *argmax = malloc((size_t)r.ny * sizeof(int32_t));
    r.y3 = malloc((size_t)r.ny * sizeof(float));
    k->conv2d_forward(conv, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P, Q);
    k->relu_forward(relu, conv, conv_n);
    k->max_pool2d_forward(r.y3, argmax, relu, c->N, c->K, P, Q, 2, 2, P2, Q2);
    float *drelu = calloc((size_t)conv_n, sizeof(float)), *dconv = calloc((size_t)conv_n, sizeof(float));
    k->max_pool2d_backward(drelu, dy, argmax, r.ny);
    k->relu_backward(dconv, drelu, relu, conv_n);
    r.dx3 = copy_floats(dx0, r.nx), r.dw3 = copy_floats(dw0, r.nw);
    r.dxf = copy_floats(r.dx3, r.nx), r.dwf = copy_floats(r.dw3, r.nw);
    k->conv2d_backward(r.dx3, r.dw3, NULL, dconv, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad,
                       P, Q);
    // The fused block.
    r.yf = malloc((size_t)r.ny * sizeof(float));
    uint8_t *where = malloc((size_t)r.ny);
    k->conv2d_relu_pool_forward(r.yf, where, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P,
                                Q);
    r.dbf = copy_floats(db0, c->K);
    k->conv2d_relu_pool_backward(r.dxf, r.dwf, r.dbf, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q);
    r.dwn = copy_floats(dw0, r.nw), r.dbn = copy_floats(db0, c->K);
    k->conv2d_relu_pool_backward(NULL, r.dwn, r.dbn, dy, r.yf, where, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                                 c->stride, c->pad, P, Q);
    free(conv), free(relu), free(argmax), free(drelu), free(dconv), free(where);
    return r;
}

static void free_results(results *r) {
    free(r->y3), free(r->dx3), free(r->dw3), free(r->yf), free(r->dxf), free(r->dwf), free(r->dwn), free(r->dbf),
        free(r->dbn);
}

int main(void) {
    const shape shapes[] = {
        {8, 1, 28, 28, 32, 3, 1, 1, "tutorial conv1 (direct)"},
        {3, 1, 13, 9, 5, 3, 1, 1, "one channel, odd 13x9, 5 channels (direct)"},
        {2, 1, 30, 32, 1, 3, 1, 1, "one channel, 32 wide, one output channel (direct)"},
        {6, 1, 13, 9, 48, 3, 1, 1, "one channel, odd 13x9, 48 channels (direct, dW 32 + 16)"},
        {5, 1, 14, 14, 16, 3, 1, 1, "one channel, 14x14, 16 channels (direct)"},
        {3, 1, 30, 32, 32, 3, 1, 1, "one channel, 30x32, 32 channels (direct)"},
        {2, 1, 28, 33, 32, 3, 1, 1, "one channel, 33 wide (im2col)"},
        {6, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2"},
        {4, 3, 11, 10, 7, 3, 2, 0, "stride 2, padding 0"},
        {2, 4, 12, 12, 6, 5, 1, 2, "5x5"},
        {2, 3, 64, 64, 64, 7, 2, 3, "ResNet-18 stem 7x7 stride 2"},
    };
    int threads_at_start = cg_get_num_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *c = &shapes[s];
        int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
        int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->R, ny = c->N * c->K * (P / 2) * (Q / 2);
        float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(c->K), *dy = random_floats(ny);
        float *dx0 = random_floats(nx), *dw0 = random_floats(nw), *db0 = random_floats(c->K);
        results by_threads[2];
        for (int t = 0; t < 2; t++) {
            cg_set_num_threads(t + 1);
            by_threads[t] = run(c, x, w, b, dy, dx0, dw0, db0);
        }
        cg_set_num_threads(threads_at_start);
        char what[160];
        const char *names[3] = {"y", "dx", "dw"};
        for (int t = 0; t < 2; t++) {
            results *r = &by_threads[t];
            const float *fused[3] = {r->yf, r->dxf, r->dwf}, *three[3] = {r->y3, r->dx3, r->dw3};
            int64_t n[3] = {r->ny, r->nx, r->nw};
            for (int j = 0; j < 3; j++) {
                snprintf(what, sizeof what, "%s, %d thread(s): fused %s against the three ops", c->name, t + 1, names[j]);
                same_bits(what, fused[j], three[j], n[j]);
            }
            snprintf(what, sizeof what, "%s, %d thread(s): fused dw without dx against the three ops", c->name, t + 1);
            same_bits(what, r->dwn, r->dw3, r->nw);
            snprintf(what, sizeof what, "%s, %d thread(s): fused db without dx against with dx", c->name, t + 1);
            same_bits(what, r->dbn, r->dbf, c->K);
        }
        const float *one[3] = {by_threads[0].yf, by_threads[0].dxf, by_threads[0].dwf};
        const float *two[3] = {by_threads[1].yf, by_threads[1].dxf, by_threads[1].dwf};
        int64_t n[3] = {by_threads[0].ny, by_threads[0].nx, by_threads[0].nw};
        for (int j = 0; j < 3; j++) {
            snprintf(what, sizeof what, "%s: fused %s on 2 threads against 1", c->name, names[j]);
            same_bits(what, two[j], one[j], n[j]);
        }
        snprintf(what, sizeof what, "%s: fused dw, db without dx on 2 threads against 1", c->name);
        same_bits(what, by_threads[1].dwn, by_threads[0].dwn, n[2]);
        same_bits(what, by_threads[1].dbn, by_threads[0].dbn, c->K);
        printf("%-58s y, dx, dw (and dw, db without dx): fused = three ops, 2 threads = 1\n", c->name);
        free_results(&by_threads[0]), free_results(&by_threads[1]);
        free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0);
    }
    return check_summary("test_conv_cpu");
}

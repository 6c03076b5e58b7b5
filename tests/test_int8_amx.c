// test_int8_amx.c: the int8 layers (core/qkernels.h, CPU) on AMX-INT8 tiles against the same
// layers on the VNNI (or plain) loops: the int8 and f32 outputs must be identical bit for bit
// (integer sums are exact on both, and the output stage is shared). Fully connected and
// convolution layers, ReLU or not, requantised or dequantised, on sizes that leave edges (rows not
// a multiple of 16, columns not of 32, K not of 64) and on the tutorial CNN's shapes. Skipped (77)
// where the CPU or the system has no AMX-INT8.
#include "core/quant/qkernels.h"
#include "kernels/cpu/cpu_features.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9e3779b97f4a7c15u;
static uint32_t next(void) {
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return (uint32_t)((state * 2685821657736338717ull) >> 32);
}

static int8_t *random_i8(int64_t n) {
    int8_t *v = malloc((size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = (int8_t)(next() & 0xff);
    return v;
}

// The output stage's parameters for Nout channels, from the mode's bits (1: ReLU, 2: to float).
static cg_qoutput stage(int64_t Nout, int mode, int32_t **offset, float **mult) {
    *offset = malloc((size_t)Nout * sizeof **offset);
    *mult = malloc((size_t)Nout * sizeof **mult);
    for (int64_t j = 0; j < Nout; j++) {
        (*offset)[j] = (int32_t)(next() % 20001) - 10000;
        (*mult)[j] = (float)(next() % 1000 + 1) * 1e-6f;
    }
    return (cg_qoutput){*offset, *mult, (int32_t)(next() % 256) - 128, mode & 1, (mode & 2) != 0};
}

// Runs `layer` on the loops and on AMX and compares the bytes of the outputs.
static void compare_paths(const char *what, int64_t bytes, void (*layer)(void *y, const void *ctx), const void *ctx) {
    unsigned char *loops = malloc((size_t)bytes), *amx = malloc((size_t)bytes);
    memset(loops, 0xAB, (size_t)bytes);
    memset(amx, 0xCD, (size_t)bytes);
    cg_cpu_int8_set(CG_INT8_LOOPS);
    layer(loops, ctx);
    cg_cpu_int8_set(CG_INT8_AMX);
    layer(amx, ctx);
    for (int64_t i = 0; i < bytes; i++)
        if (loops[i] != amx[i]) {
            fail(what, "byte %lld: 0x%02x on AMX, 0x%02x on the loops", (long long)i, amx[i], loops[i]);
            break;
        }
    free(loops), free(amx);
}

typedef struct {
    const int8_t *x, *w;
    const cg_qoutput *o;
    int64_t M, N, K;                                   // linear
    int64_t n, H, W, C, Kout, R, stride, pad, P, Q;    // conv2d
} layer_ctx;

static void run_linear(void *y, const void *p) {
    const layer_ctx *c = p;
    cg_cpu_qkernels.linear(y, c->x, c->w, c->o, c->M, c->N, c->K);
}

static void run_conv(void *y, const void *p) {
    const layer_ctx *c = p;
    cg_cpu_qkernels.conv2d(y, c->x, c->w, c->o, 7, c->n, c->H, c->W, c->C, c->Kout, c->R, c->R, c->stride, c->pad,
                           c->P, c->Q);
}

int main(void) {
    if (!cg_cpu_has_amx_int8()) {
        printf("test_int8_amx: skipped: this CPU (or system) has no AMX-INT8\n");
        return 77;
    }
    const int64_t linear_shapes[][3] = {{16, 16, 64}, {17, 33, 65}, {100, 10, 128}, {128, 128, 3136},
                                        {37, 70, 200}, {4096, 128, 784}, {1, 5, 300}};
    for (size_t s = 0; s < sizeof linear_shapes / sizeof linear_shapes[0]; s++)
        for (int mode = 0; mode < 4; mode++) {
            int64_t M = linear_shapes[s][0], N = linear_shapes[s][1], K = linear_shapes[s][2];
            int64_t Kp = CG_QK_PAD(K);
            int8_t *x = random_i8(M * K), *w = random_i8(N * Kp);
            for (int64_t j = 0; j < N; j++) memset(w + j * Kp + K, 0, (size_t)(Kp - K)); // zero padding columns
            int32_t *offset;
            float *mult;
            cg_qoutput o = stage(N, mode, &offset, &mult);
            layer_ctx c = {.x = x, .w = w, .o = &o, .M = M, .N = N, .K = K};
            char what[96];
            snprintf(what, sizeof what, "linear %lldx%lldx%lld relu %d float %d", (long long)M, (long long)N,
                     (long long)K, mode & 1, (mode & 2) != 0);
            compare_paths(what, M * N * (o.to_float ? 4 : 1), run_linear, &c);
            free(x), free(w), free(offset), free(mult);
        }
    typedef struct {
        int64_t n, H, W, C, Kout, R, stride, pad;
    } conv_shape;
    const conv_shape conv_shapes[] = {{128, 28, 28, 1, 32, 3, 1, 1},  {128, 14, 14, 32, 64, 3, 1, 1},
                                      {3, 11, 9, 20, 17, 3, 2, 0},    {2, 16, 16, 64, 128, 3, 2, 1},
                                      {5, 8, 8, 48, 40, 1, 1, 0}};
    for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++)
        for (int mode = 0; mode < 4; mode++) {
            const conv_shape *v = &conv_shapes[s];
            int64_t P = (v->H + 2 * v->pad - v->R) / v->stride + 1, Q = (v->W + 2 * v->pad - v->R) / v->stride + 1;
            int64_t K = v->R * v->R * v->C, Kp = CG_QK_PAD(K);
            int8_t *x = random_i8(v->n * v->H * v->W * v->C), *w = random_i8(v->Kout * Kp);
            for (int64_t j = 0; j < v->Kout; j++) memset(w + j * Kp + K, 0, (size_t)(Kp - K));
            int32_t *offset;
            float *mult;
            cg_qoutput o = stage(v->Kout, mode, &offset, &mult);
            layer_ctx c = {.x = x, .w = w, .o = &o, .n = v->n, .H = v->H, .W = v->W, .C = v->C, .Kout = v->Kout,
                           .R = v->R, .stride = v->stride, .pad = v->pad, .P = P, .Q = Q};
            char what[128];
            snprintf(what, sizeof what, "conv2d %lld images %lldx%lldx%lld -> %lld, %lldx%lld/%lld relu %d float %d",
                     (long long)v->n, (long long)v->H, (long long)v->W, (long long)v->C, (long long)v->Kout,
                     (long long)v->R, (long long)v->R, (long long)v->stride, mode & 1, (mode & 2) != 0);
            compare_paths(what, v->n * P * Q * v->Kout * (o.to_float ? 4 : 1), run_conv, &c);
            free(x), free(w), free(offset), free(mult);
        }
    printf("AMX-INT8 against %s: %s\n", cg_cpu_int8_name(CG_INT8_LOOPS), failures ? "differences" : "identical");
    return failures ? 1 : 0;
}

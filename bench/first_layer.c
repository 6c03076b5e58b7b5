#define _POSIX_C_SOURCE 200809L
// first_layer.c: a network's first layer in 16 bits on the GPU, cgrad's direct kernels against
// cuDNN. An image has 1 or 3 channels; cuDNN's Tensor Core kernels read channels in eights, so
// cgrad either computes such a layer itself (kernels/cuda/conv_direct.cu) or copies the image NHWC
// with its channels padded to 8 and hands it to cuDNN (kernels/cuda/conv16.cu). Which is faster
// depends on the layer (lesson 08, turn 17); conv_direct.cu's `cudnn_wins` holds the answer, and
// CGRAD_FIRST_LAYER=direct or =cudnn overrides it, which is how this program times both ways.
//
// For each first layer of the course's networks (bf16, batch as they train), the forward and the
// weight gradient, microseconds a call (host clock around REPS calls after 3 untimed ones, which
// also let cgrad time cuDNN's engines):
//   direct     cgrad's kernels, x NCHW with its C channels
//   cuDNN      cuDNN on an input already stored NHWC with 8 channels (the copy not counted)
//   +copies    the whole cuDNN path from the NCHW image: the copy to 8 channels, the weights'
//              copy, and for the weight gradient the copy of dw and the way back
// Figures to read, not a test: build/bench_first_layer [--reps N] (a CUDA build with cuDNN).
#include "core/common.h"
#include "core/device.h"
#include "core/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int64_t N, C, H, K, R, pad;
} layer;

static const cg_kernels *gpu_kernels;
static cg_device gpu;

// One call of the forward (wgrad false) or the weight gradient, x stored NCHW with C channels, or
// NHWC with 8 (nhwc8: the weights then (K, R, S, 8) too).
static void call(const layer *l, bool wgrad, bool nhwc8, void *y, void *x, void *w, void *dw, void *dy) {
    int64_t C = nhwc8 ? 8 : l->C, P = l->H + 2 * l->pad - l->R + 1;
    if (!wgrad)
        gpu_kernels->conv2d_forward_cl(CG_BF16, y, true, x, nhwc8, w, nhwc8, NULL, NULL, l->N, C, l->H, l->H, l->K,
                                       l->R, l->R, 1, l->pad, P, P);
    else
        gpu_kernels->conv2d_backward_cl(CG_BF16, NULL, dw, NULL, dy, true, x, nhwc8, w, nhwc8, NULL, l->N, C, l->H,
                                        l->H, l->K, l->R, l->R, 1, l->pad, P, P, false);
}

static double microseconds(const layer *l, bool wgrad, bool nhwc8, int reps, void *y, void *x, void *w, void *dw,
                           void *dy) {
    for (int i = 0; i < 3; i++) call(l, wgrad, nhwc8, y, x, w, dw, dy);
    struct timespec a, b;
    cg_device_synchronize(gpu);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < reps; i++) call(l, wgrad, nhwc8, y, x, w, dw, dy);
    cg_device_synchronize(gpu);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / reps;
}

int main(int argc, char **argv) {
    static const char usage[] =
        "usage: bench_first_layer [--reps N]\n"
        "  The first layers of the course's networks in bf16 on the GPU (ResNet-18's stem, the fast network's\n"
        "  whitening layer, the tutorial CNN's first layer): forward and weight gradient by cgrad's direct\n"
        "  kernels and by cuDNN on an 8-channel NHWC copy, without and with the copies (microseconds a call).\n"
        "  --reps N   timed calls per figure (default 50)\n";
    long reps = 50;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_first_layer: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (reps < 1 || reps > 100000) {
        fprintf(stderr, "bench_first_layer: --reps %ld outside 1 .. 100000\n", reps);
        return 2;
    }
    if (cg_device_parse("cuda", &gpu).code != CG_OK) {
        fprintf(stderr, "bench_first_layer: no usable GPU\n");
        return 1;
    }
    gpu_kernels = cg_kernels_for(gpu);
    static const layer layers[] = {
        {"ResNet-18's stem, 3 -> 64, 3x3, batch 512", 512, 3, 32, 64, 3, 1},
        {"the same with 4 input channels", 512, 4, 32, 64, 3, 1},
        {"fast network's whitening, 3 -> 24, 2x2, batch 1024", 1024, 3, 32, 24, 2, 0},
        {"tutorial CNN's, 1 -> 32, 3x3, batch 128", 128, 1, 28, 32, 3, 1},
    };
    // Buffers for the largest of them, filled with 0.0078125 (bf16 0x3C00 twice a float): values
    // of the order of a real layer's, never inf or NaN.
    size_t big = (size_t)1024 * 32 * 32 * 64 * 2, image = (size_t)1024 * 32 * 32 * 8 * 2, weights = 64 * 8 * 9 * 2;
    void *bufs[5];
    size_t sizes[5] = {big, big, image, weights, weights};
    for (int i = 0; i < 5; i++) {
        bufs[i] = cg_device_alloc(gpu, sizes[i]);
        gpu_kernels->fill((float *)bufs[i], 0.0078268051f, (int64_t)(sizes[i] / 4));
    }
    void *y = bufs[0], *dy = bufs[1], *x = bufs[2], *w = bufs[3], *dw = bufs[4];
    printf("bf16, microseconds a call (%ld calls each); cuDNN: input already NHWC with 8 channels, +copies: from the "
           "NCHW image\n",
           reps);
    printf("%-52s %9s %9s %9s   %9s %9s %9s\n", "first layer", "fwd dir", "cuDNN", "+copies", "dW dir", "cuDNN",
           "+copies");
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const layer *l = &layers[i];
        double t[2][3];
        for (int wgrad = 0; wgrad < 2; wgrad++) {
            setenv("CGRAD_FIRST_LAYER", "direct", 1);
            t[wgrad][0] = microseconds(l, wgrad, false, (int)reps, y, x, w, dw, dy);
            t[wgrad][1] = microseconds(l, wgrad, true, (int)reps, y, x, w, dw, dy);
            setenv("CGRAD_FIRST_LAYER", "cudnn", 1);
            t[wgrad][2] = microseconds(l, wgrad, false, (int)reps, y, x, w, dw, dy);
        }
        printf("%-52s %9.1f %9.1f %9.1f   %9.1f %9.1f %9.1f\n", l->name, t[0][0], t[0][1], t[0][2], t[1][0], t[1][1],
               t[1][2]);
    }
    unsetenv("CGRAD_FIRST_LAYER");
    for (int i = 0; i < 5; i++) cg_device_free(gpu, bufs[i]);
    printf("cgrad's rule (conv_direct.cu, cudnn_wins): cuDNN for 64 or more filters of 3 x 3 or larger, else direct\n");
    return 0;
}

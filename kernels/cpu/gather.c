// gather.c: copying a shuffled batch out of a data set held in memory (the loader's kernel).
#include "kernels/cpu/cpu.h"

#include <string.h>

static void gather_batch_cpu(float *x_out, int32_t *labels_out, float *targets_out, const float *x, const int32_t *labels,
                             const int32_t *order, int64_t batch, int64_t sample_numel) {
    for (int64_t i = 0; i < batch; i++) {
        int64_t s = order[i];
        memcpy(x_out + i * sample_numel, x + s * sample_numel, (size_t)sample_numel * sizeof(float));
        labels_out[i] = labels[s];
        targets_out[i] = (float)labels[s];
    }
}

static void gather_images_cpu(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                              const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H, int64_t W,
                              int64_t pad, const float *mean, const float *inv_std) {
    int64_t numel = C * H * W;
#pragma omp parallel for if (batch * numel > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < batch; i++) {
        const uint8_t *src = pixels + (int64_t)order[i] * numel;
        int64_t dy = augment ? augment[3 * i] : pad, dx = augment ? augment[3 * i + 1] : pad;
        bool flip = augment && augment[3 * i + 2];
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    int64_t sh = h + dy - pad, sw = w + dx - pad; // in the unpadded image
                    if (flip) sw = W - 1 - sw;
                    float v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? src[(c * H + sh) * W + sw] / 255.0f : 0.0f;
                    x_out[((i * C + c) * H + h) * W + w] = (v - mean[c]) * inv_std[c];
                }
        labels_out[i] = labels[order[i]];
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void gather_register_cpu(cg_kernels *k) {
    k->gather_batch = gather_batch_cpu;
    k->gather_images = gather_images_cpu;
}

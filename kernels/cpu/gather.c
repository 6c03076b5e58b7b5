// gather.c: copying a shuffled batch out of a data set held in memory (the loader's kernels), with
// the training augmentation of images; and the mirror image of a batch (test-time augmentation).
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

// A coordinate of the padded image (-pad <= i < n + pad) back into [0, n): mirrored about the
// first and last pixels without repeating them (torch.nn.functional.pad, mode "reflect"; pad < n).
static inline int64_t reflect_index(int64_t i, int64_t n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return i;
}

static void gather_images_cpu(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                              const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H, int64_t W,
                              int64_t pad, bool reflect, int64_t cutout, const float *mean, const float *inv_std) {
    int64_t numel = C * H * W;
#pragma omp parallel for if (batch * numel > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < batch; i++) {
        const uint8_t *src = pixels + (int64_t)order[i] * numel;
        const int32_t *a = augment ? augment + CG_AUGMENT_FIELDS * i : NULL;
        int64_t dy = a ? a[0] : pad, dx = a ? a[1] : pad;
        bool flip = a && a[2];
        // the cutout square's rows [y0, y0 + cutout) and columns [x0, x0 + cutout), output coordinates
        int64_t y0 = a && cutout > 0 ? a[3] - cutout / 2 : 0, x0 = a && cutout > 0 ? a[4] - cutout / 2 : 0;
        bool cut = a && cutout > 0;
        labels_out[i] = labels[order[i]];
        if (!a) { // no augmentation (Fashion-MNIST, MNIST): pixel (h, w) is source pixel (h, w), inside
            // the image, so the loop below reduces to this one, which the compiler vectorises
            // (the branches per pixel kept it scalar; a batch of 128 images is below the
            // threads' threshold, so it runs on one thread while the other waits). The same
            // expression per pixel: the same values.
            for (int64_t c = 0; c < C; c++) {
                const uint8_t *plane = src + c * H * W;
                float *out = x_out + (i * C + c) * H * W;
                for (int64_t j = 0; j < H * W; j++) out[j] = (plane[j] / 255.0f - mean[c]) * inv_std[c];
            }
            continue;
        }
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    int64_t sh = h + dy - pad, sw = w + dx - pad; // in the unpadded image
                    if (reflect) sh = reflect_index(sh, H), sw = reflect_index(sw, W);
                    if (flip) sw = W - 1 - sw;
                    float v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? src[(c * H + sh) * W + sw] / 255.0f : 0.0f;
                    float out = (v - mean[c]) * inv_std[c];
                    if (cut && h >= y0 && h < y0 + cutout && w >= x0 && w < x0 + cutout) out = 0.0f;
                    x_out[((i * C + c) * H + h) * W + w] = out;
                }
    }
}

static void flip_images_cpu(float *y, const float *x, int64_t planes, int64_t H, int64_t W) {
#pragma omp parallel for if (planes * H * W > CG_OMP_MIN_WORK)
    for (int64_t r = 0; r < planes * H; r++)
        for (int64_t w = 0; w < W; w++) y[r * W + w] = x[r * W + W - 1 - w];
}

static void shift_images_cpu(float *y, const float *x, int64_t planes, int64_t H, int64_t W, int64_t dy, int64_t dx) {
#pragma omp parallel for if (planes * H * W > CG_OMP_MIN_WORK)
    for (int64_t r = 0; r < planes * H; r++) {
        int64_t p = r / H, h = r % H, sh = reflect_index(h - dy, H);
        for (int64_t w = 0; w < W; w++) y[r * W + w] = x[(p * H + sh) * W + reflect_index(w - dx, W)];
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void gather_register_cpu(cg_kernels *k) {
    k->gather_batch = gather_batch_cpu;
    k->gather_images = gather_images_cpu;
    k->flip_images = flip_images_cpu;
    k->shift_images = shift_images_cpu;
}

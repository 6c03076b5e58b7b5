// gather.cu: copying a shuffled batch out of a data set held in GPU memory, one thread per
// float of the batch, with the training augmentation of images; and the mirror image of a batch
// (test-time augmentation). CPU twin: kernels/cpu/gather.c.
#include "kernels/cuda/cuda.h"

static __global__ void gather_kernel(float *x_out, int32_t *labels_out, float *targets_out, const float *x,
                                     const int32_t *labels, const int32_t *order, int64_t batch,
                                     int64_t sample_numel) {
    GRID_STRIDE(i, batch * sample_numel) {
        int64_t row = i / sample_numel, col = i % sample_numel;
        int64_t s = order[row];
        x_out[i] = x[s * sample_numel + col];
        if (col == 0) {
            labels_out[row] = labels[s];
            targets_out[row] = (float)labels[s];
        }
    }
}

static void gather_batch_cuda(float *x_out, int32_t *labels_out, float *targets_out, const float *x,
                                  const int32_t *labels, const int32_t *order, int64_t batch, int64_t sample_numel) {
    LAUNCH(gather_kernel, batch * sample_numel, x_out, labels_out, targets_out, x, labels, order, batch,
           sample_numel);
}

// A coordinate of the padded image back into [0, n), mirrored without repeating the edge
// (torch.nn.functional.pad, mode "reflect"; pad < n).
static __device__ int64_t reflect_index(int64_t i, int64_t n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return i;
}

static __global__ void gather_images_kernel(float *x_out, int32_t *labels_out, const uint8_t *pixels,
                                            const int32_t *labels, const int32_t *order, const int32_t *augment,
                                            int64_t batch, int64_t C, int64_t H, int64_t W, int64_t pad, bool reflect,
                                            int64_t cutout, const float *mean, const float *inv_std) {
    int64_t numel = C * H * W;
    GRID_STRIDE(j, batch * numel) {
        int64_t i = j / numel, c = j / (H * W) % C, h = j / W % H, w = j % W;
        const uint8_t *src = pixels + (int64_t)order[i] * numel;
        const int32_t *a = augment ? augment + CG_AUGMENT_FIELDS * i : NULL;
        int64_t dy = a ? a[0] : pad, dx = a ? a[1] : pad;
        int64_t sh = h + dy - pad, sw = w + dx - pad;
        if (reflect) sh = reflect_index(sh, H), sw = reflect_index(sw, W);
        if (a && a[2]) sw = W - 1 - sw;
        float v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? src[(c * H + sh) * W + sw] / 255.0f : 0.0f;
        float out = (v - mean[c]) * inv_std[c];
        if (a && cutout > 0) {
            int64_t y0 = a[3] - cutout / 2, x0 = a[4] - cutout / 2;
            if (h >= y0 && h < y0 + cutout && w >= x0 && w < x0 + cutout) out = 0.0f;
        }
        x_out[j] = out;
        if (j % numel == 0) labels_out[i] = labels[order[i]];
    }
}

static void gather_images_cuda(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                               const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H,
                               int64_t W, int64_t pad, bool reflect, int64_t cutout, const float *mean,
                               const float *inv_std) {
    LAUNCH(gather_images_kernel, batch * C * H * W, x_out, labels_out, pixels, labels, order, augment, batch, C, H, W,
           pad, reflect, cutout, mean, inv_std);
}

static __global__ void flip_images_kernel(float *y, const float *x, int64_t planes, int64_t H, int64_t W) {
    GRID_STRIDE(j, planes * H * W) {
        int64_t w = j % W;
        y[j] = x[j - w + W - 1 - w];
    }
}

static void flip_images_cuda(float *y, const float *x, int64_t planes, int64_t H, int64_t W) {
    LAUNCH(flip_images_kernel, planes * H * W, y, x, planes, H, W);
}

static __global__ void shift_images_kernel(float *y, const float *x, int64_t planes, int64_t H, int64_t W, int64_t dy,
                                           int64_t dx) {
    GRID_STRIDE(j, planes * H * W) {
        int64_t w = j % W, h = (j / W) % H, p = j / (W * H);
        y[j] = x[(p * H + reflect_index(h - dy, H)) * W + reflect_index(w - dx, W)];
    }
}

static void shift_images_cuda(float *y, const float *x, int64_t planes, int64_t H, int64_t W, int64_t dy, int64_t dx) {
    LAUNCH(shift_images_kernel, planes * H * W, y, x, planes, H, W, dy, dx);
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void gather_register_cuda(cg_kernels *k) {
    k->gather_batch = gather_batch_cuda;
    k->gather_images = gather_images_cuda;
    k->flip_images = flip_images_cuda;
    k->shift_images = shift_images_cuda;
}

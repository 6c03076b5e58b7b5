// gather.cu: copying a shuffled batch out of a data set held in GPU memory, one thread per
// float of the batch (CPU twin: kernels/cpu/gather.c).
#include "cuda.h"

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

extern "C" void gather_batch_cuda(float *x_out, int32_t *labels_out, float *targets_out, const float *x,
                                  const int32_t *labels, const int32_t *order, int64_t batch, int64_t sample_numel) {
    LAUNCH(gather_kernel, batch * sample_numel, x_out, labels_out, targets_out, x, labels, order, batch,
           sample_numel);
}

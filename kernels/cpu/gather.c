// gather.c: copying a shuffled batch out of a data set held in memory (the loader's kernel).
#include "cpu.h"

#include <string.h>

void gather_batch_cpu(float *x_out, int32_t *labels_out, float *targets_out, const float *x, const int32_t *labels,
                      const int32_t *order, int64_t batch, int64_t sample_numel) {
    for (int64_t i = 0; i < batch; i++) {
        int64_t s = order[i];
        memcpy(x_out + i * sample_numel, x + s * sample_numel, (size_t)sample_numel * sizeof(float));
        labels_out[i] = labels[s];
        targets_out[i] = (float)labels[s];
    }
}

// dataset.h: a labelled data set held in host memory: samples as f32, labels as i32.
// Loaders of files (IDX, CIFAR, image folders) and the synthetic generator all produce this.
#ifndef CG_DATASET_H
#define CG_DATASET_H

#include "../core/common.h"

typedef struct {
    int64_t count;           // samples
    int sample_ndim;         // 1 for feature vectors, 3 for (C, H, W) images
    int64_t sample_shape[3];
    int64_t sample_numel;    // floats per sample
    float *x;                // count * sample_numel floats, sample after sample
    int32_t *labels;         // count labels in [0, num_classes)
    int num_classes;
} cg_dataset;

void cg_dataset_free(cg_dataset *d);

#endif

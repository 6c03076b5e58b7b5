// dataset.h: a labelled data set held in host memory. Samples are either f32 features (the
// synthetic data) or raw u8 pixels (image files, NCHW per sample, 0..255), which the loader
// scales and normalises on the device as it gathers each batch. Labels are i32 class indices.
// Loaders of files (idx.h, cifar.h, image_folder.h) and the synthetic generator produce this.
#ifndef CG_DATASET_H
#define CG_DATASET_H

#include "core/common.h"
#include "core/dtype.h"

// Limits on what a file may declare, checked by the loaders before anything is allocated from
// it, each refusal naming the file and the size: samples (the loader's sample indices are 32-bit,
// as its gather kernels read them), image width or height, classes. The decoded pixels of an
// image folder must also fit in the machine's physical memory.
#define CG_DATASET_MAX_COUNT INT32_MAX
#define CG_DATASET_MAX_SIDE 8192
#define CG_DATASET_MAX_CLASSES 65536

typedef struct {
    int64_t count;           // samples
    int sample_ndim;         // 1 for feature vectors, 3 for (C, H, W) images
    int64_t sample_shape[3];
    int64_t sample_numel;    // values per sample
    cg_dtype dtype;          // CG_F32: `x` holds the samples; CG_U8: `pixels` does
    float *x;                // count * sample_numel floats, sample after sample (CG_F32)
    uint8_t *pixels;         // count * sample_numel bytes, sample after sample, NCHW (CG_U8)
    int32_t *labels;         // count labels in [0, num_classes)
    int num_classes;
    char **class_names;      // num_classes names ("T-shirt/top", "airplane", "n01443537 goldfish"), or NULL
} cg_dataset;

// Frees the arrays, the names and d itself. NULL is allowed.
void cg_dataset_free(cg_dataset *d);

// Keeps a class-balanced subset of n samples of d, in place (what cnn --limit N trains on): the
// classes take turns, each giving its next sample in data-set order, so every class keeps
// floor(n / K) or one more (the lower labels take the extra ones), and a class with fewer samples
// than its share gives all it has while the others make up the rest. The kept samples are the
// first ones of each class (no random choice: every seed sees the same subset), stored in the
// order taken: label 0, 1, ..., K-1, 0, 1, ... Nothing changes when n >= d->count.
// Errors: CG_ERR_ARG for n < 1; CG_ERR_OOM (d unchanged).
cg_status cg_dataset_keep_balanced(cg_dataset *d, int64_t n);

#endif

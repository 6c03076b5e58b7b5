// summary.h: a model's summary, as bench/torch_models.py's summary() prints it: one row per layer
// that holds weights (Conv2d, BatchNorm2d, Linear) with its output shape for one image, its
// parameters and its FLOPs per image, then the totals. The shapes are worked out from the module
// kinds, without running the model. FLOPs: 2 x the multiply-adds of convolutions and linear layers,
// the usual count (BatchNorm, activations, pooling and adds are left out, as the twin leaves them).
#ifndef CG_SUMMARY_H
#define CG_SUMMARY_H

#include "layers/module.h"

#include <stdio.h>

typedef struct {
    char name[128];   // the layer's name: its weight's name without ".weight" ("layer1.0.conv1")
    const char *kind; // its module type's name ("Conv2d")
    int ndim;         // of the output shape, for one image
    int64_t shape[3]; // (C, H, W) or (features,)
    int64_t params;   // weights and biases, trained or not (BatchNorm's running statistics are buffers)
    int64_t flops;    // per image
} cg_summary_row;

// Rows of model for images of `ndim` dims `shape` (one image: (C, H, W)), in forward order, at most
// max_rows of them into rows; returns how many there are (more than max_rows: only the first
// max_rows are written). out_ndim, out_shape: the model's output for one image (NULL: not wanted).
// Every module kind of layers/ is known; another is a programmer error (CG_CHECK), as is a shape
// the model cannot take.
int cg_summary(cg_module *model, int ndim, const int64_t *shape, cg_summary_row *rows, int max_rows, int *out_ndim,
               int64_t *out_shape);
// The table of n rows and a "total" row to f, in the twin's layout (thousands separated by commas).
// total_params, total_flops: the sums, returned (NULL: not wanted).
void cg_summary_print(FILE *f, const cg_summary_row *rows, int n, int64_t *total_params, int64_t *total_flops);

#endif

// cudnn_conv.h: convolutions through cuDNN (kernels/cuda/cudnn_conv.c), used by conv.cu when
// cgrad was built with cuDNN (CG_HAVE_CUDNN). d: N C H W K R S stride pad P Q. Tensors are
// NCHW f32 on the current GPU; the backward ones ADD to dx / dw.
#ifndef CG_CUDNN_CONV_H
#define CG_CUDNN_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

void cg_cudnn_conv2d_forward(float *y, const float *x, const float *w, const int64_t d[11]);
void cg_cudnn_conv2d_backward_data(float *dx, const float *w, const float *dy, const int64_t d[11]);
void cg_cudnn_conv2d_backward_filter(float *dw, const float *x, const float *dy, const int64_t d[11]);
int cg_cudnn_version(void);

// Mixed precision: one convolution of F16 or BF16 data with f32 accumulation, Tensor Cores
// allowed, NCHW or NHWC (as cg_cudnn_conv_tune below); direction and x, w, y as
// cg_cudnn_conv_run (the backward ones add, except BACKWARD_DATA_WRITE below). The plan is tuned on first use and cached per
// (direction, dtype, layout, shape). Returns false, running nothing, when cuDNN has no engine
// for it (the caller then computes another way).
bool cg_cudnn_conv2d_run16(int direction, cg_dtype dtype, bool nhwc, void *x, void *w, void *y, const int64_t d[11]);

// For the benchmark (kernels/cuda/bench.cu): a plan for one convolution of F32, F16 or BF16
// data, NCHW or NHWC (nhwc: x (N, H, W, C), w (K, R, S, C), y (N, P, Q, K)), d as above with C
// the stored channel count. The engine is the fastest of the candidates cuDNN's heuristics list,
// each timed on x, w, y (which the timing runs overwrite, or add to for the backward ones), as
// PyTorch's cudnn.benchmark = True does. allow_reduced: FP32 data may use TF32 Tensor Cores
// (tf32); no format may convert its inputs down. Returns NULL when no engine runs it; about gets
// the chosen engine and its time, or why none.
// BACKWARD_DATA_WRITE: backward data that writes x (cuDNN's beta 0) instead of adding to it.
enum { CG_CUDNN_FORWARD = 0, CG_CUDNN_BACKWARD_DATA = 1, CG_CUDNN_BACKWARD_FILTER = 2, CG_CUDNN_BACKWARD_DATA_WRITE = 3 };
typedef struct cg_cudnn_tuned cg_cudnn_tuned;
cg_cudnn_tuned *cg_cudnn_conv_tune(int direction, cg_dtype dtype, bool nhwc, bool allow_reduced, const int64_t d[11],
                                   void *x, void *w, void *y, char *about, size_t about_size);
// Queue the convolution on the GPU's stream: forward y = conv(x, w); backward data x += ...
// (x holds dx, y holds dy); backward filter w += ... (w holds dw).
void cg_cudnn_conv_run(cg_cudnn_tuned *t, void *x, void *w, void *y);
void cg_cudnn_conv_free(cg_cudnn_tuned *t);

#ifdef __cplusplus
}
#endif

#endif

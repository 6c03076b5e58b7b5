// cudnn_conv.h: convolutions through cuDNN (kernels/cuda/cudnn_conv.c), used by conv.cu when
// cgrad was built with cuDNN (CG_HAVE_CUDNN). d: N C H W K R S stride pad P Q. Tensors are
// NCHW f32 on the current GPU; the backward ones ADD to dx / dw.
#ifndef CG_CUDNN_CONV_H
#define CG_CUDNN_CONV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void cg_cudnn_conv2d_forward(float *y, const float *x, const float *w, const int64_t d[11]);
void cg_cudnn_conv2d_backward_data(float *dx, const float *w, const float *dy, const int64_t d[11]);
void cg_cudnn_conv2d_backward_filter(float *dw, const float *x, const float *dy, const int64_t d[11]);
int cg_cudnn_version(void);

#ifdef __cplusplus
}
#endif

#endif

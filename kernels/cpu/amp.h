// amp.h: the fused inf / NaN check and unscale of gradients that the loss scaler needs
// (core/train/grad_scaler.h, core/train/amp.h). The kernel table's amp_unscale_check
// (kernels/cpu/amp.c, beside its CUDA twin kernels/cuda/amp.cu) is built on it.
#ifndef CG_KERNELS_CPU_AMP_H
#define CG_KERNELS_CPU_AMP_H

#include "core/dtype.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// g: (n) f32 gradients, scaled by the loss scale S. In one pass: sets *found_inf to 1.0f if any
// g[i] is inf or NaN (and otherwise leaves it as it is, so that several calls, one per gradient
// buffer, can share one flag cleared to 0 before the first), and multiplies every g[i] by
// *inv_scale (1 / S). PyTorch's _amp_foreach_non_finite_check_and_unscale_ (AmpKernels.cu): the
// check looks at the value before unscaling, and when *inv_scale is 1 the values are left as
// they are. found_inf and inv_scale are pointers, as the kernel table's scalars are, so that a
// captured CUDA Graph will read their current values.
// The emulation's scratch: f32 buffer `slot` (0..15; 8..15 for channels-last copies) with room for n floats, its contents undefined;
// an f32 copy of n values of x (F16 or BF16; F32 copied) in buffer `slot`, NULL when x is NULL;
// and an f32 result rounded into its 16-bit home (nothing when home is NULL). The 16-bit
// kernels of amp.c and gemm.c share them (kernels/cpu/half_scratch.c).
float *half_scratch_cpu(int slot, int64_t n);
// dst[i] = src[i] (n values of t: F16, BF16 or F32) as f32, over the OpenMP threads when large.
void half_widen_into_cpu(float *dst, const void *src, cg_dtype t, int64_t n);
float *half_widen_cpu(int slot, const void *x, cg_dtype t, int64_t n);
void half_store_cpu(void *home, cg_dtype t, const float *result, int64_t n);

void unscale_check_cpu(float *g, float *found_inf, const float *inv_scale, int64_t n);

#ifdef __cplusplus
}
#endif

#endif

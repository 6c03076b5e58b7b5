// amp.h: the fused inf / NaN check and unscale of gradients that the loss scaler needs
// (core/grad_scaler.h, core/amp.h). The kernel table's amp_unscale_check (kernels/cpu/half_ops.c)
// is built on it; its CUDA twin is kernels/cuda/amp.cu.
#ifndef CG_KERNELS_CPU_AMP_H
#define CG_KERNELS_CPU_AMP_H

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
void amp_unscale_check_cpu(float *g, float *found_inf, const float *inv_scale, int64_t n);

#ifdef __cplusplus
}
#endif

#endif

// int8_gemm.h: the CPU int8 matrix product with int32 sums, and what turns those sums back into
// int8 (requantisation) or float (dequantisation). Raw pointers, row-major, no tensors; the
// quantization parameters and their conventions are in core/quant.h. Not in the op table yet.
//
// A quantized Linear layer y = x W^T + b with x ~= sx (qx - zx) (affine, per tensor) and
// W[j] ~= sw[j] qw[j] (symmetric, per output channel) computes
//   acc[i][j] = sum_k qx[i][k] qw[j][k]                               int8_gemm_cpu
//   offset[j] = round(b[j] / (sx sw[j])) - zx sum_k qw[j][k]           int8_gemm_offsets_cpu
//   y[i][j]  ~= sx sw[j] (acc[i][j] + offset[j])                      int8_dequantize_cpu
//   qy[i][j]  = clamp(round((acc + offset) sx sw[j] / sy) + zy)         int8_requantize_cpu
// (Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
// Only Inference", CVPR 2018, eq. 7; gemmlowp's "output pipeline").
#ifndef CG_KERNELS_CPU_INT8_GEMM_H
#define CG_KERNELS_CPU_INT8_GEMM_H

#include <stdbool.h>
#include <stdint.h>

// The largest K: the kernel sums (a + 128) * b in int32, at most 255 * 128 * K < 2^31.
#define CG_INT8_GEMM_MAX_K 65536

// A: (M, K) i8, B: (N, K) i8 (weights as rows) -> C: (M, N) i32, C = A B^T, exact (no saturation).
// K <= CG_INT8_GEMM_MAX_K (CG_CHECK). OpenMP over rows of C when M N K >= 2^24.
void int8_gemm_cpu(int32_t *C, const int8_t *A, const int8_t *B, int64_t M, int64_t N, int64_t K);

// offset: (N,) i32 = bias[j] - a_zero_point * sum_k B[j][k]; bias: (N,) i32 already in units of
// sx sw[j], or NULL for none.
void int8_gemm_offsets_cpu(int32_t *offset, const int8_t *B, const int32_t *bias, int32_t a_zero_point, int64_t N,
                           int64_t K);

// acc: (M, N) i32 -> y: (M, N) i8,
//   y[i][j] = clamp(rint((float)(acc[i][j] + offset[j]) * multiplier[j]) + y_zero_point, lo, 127)
// with lo = y_zero_point when relu (ReLU fused: real 0 is y_zero_point), else -128; rint rounds
// half to even. multiplier[j] = sx sw[j] / sy: (N,) f32 (fill N copies for per-tensor weights);
// offset may be NULL. Float32 multiply then rint, so a GPU kernel doing __fmul_rn then
// __float2int_rn gives the same integers.
void int8_requantize_cpu(int8_t *y, const int32_t *acc, const int32_t *offset, const float *multiplier,
                         int32_t y_zero_point, bool relu, int64_t M, int64_t N);

// acc: (M, N) i32 -> y: (M, N) f32, y[i][j] = (float)(acc[i][j] + offset[j]) * scale[j], then
// max(y, 0) when relu. scale[j] = sx sw[j]: (N,) f32; offset may be NULL.
void int8_dequantize_cpu(float *y, const int32_t *acc, const int32_t *offset, const float *scale, bool relu,
                         int64_t M, int64_t N);

#endif

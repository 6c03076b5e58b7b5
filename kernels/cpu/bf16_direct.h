// bf16_direct.h: the tutorial CNN's first block (a one-channel 3 x 3 convolution, stride 1,
// padding 1, with bias, ReLU and 2 x 2 max pooling) on the bf16 hardware paths, without the
// tile product: the forward in registers (bf16_direct.c) and the weight and bias gradients
// straight from the pooled gradient (bf16_direct_dw.c: AVX512-BF16's, in builds without
// conv_direct_dw.c's window kernel). Called by bf16_ops.c; only with CG_CPU_MATRIX_KERNELS, and
// run only on the AMX and AVX512-BF16 paths.
#ifndef CG_KERNELS_CPU_BF16_DIRECT_H
#define CG_KERNELS_CPU_BF16_DIRECT_H

#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"

#ifdef CG_CPU_MATRIX_KERNELS
// Whether the fused forward below takes this shape: cg_bf16_direct_fits's (bf16_same.h), with at
// least one pooling window.
bool cg_bf16_direct_pool_fits(int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad,
                              int64_t P, int64_t Q);
// One image x (H x W bf16) -> y (K, H/2, W/2) bf16 and where (K, H/2, W/2) bytes (each window's
// first maximum, 0 .. 3 in scan order), with wp the weights in pairs (K x 5 bf16 pairs, from
// cg_bf16_direct_pair_weights) and bias (K bf16, or NULL): the same bits as cg_bf16_direct_sums
// followed by bf16_planes.c's epilogue, with the same `path`. Only where
// cg_bf16_direct_pool_ready(wf, bias, K) said yes (AVX512-BF16, and the weights and bias in the
// range that makes its rounding exact: bf16_direct.c), once per call; returns false, having done
// nothing, when the image is not (the caller then takes the other path).
bool cg_bf16_direct_pool_ready(const float *wf, const uint16_t *bias, int64_t K);
// wp (K x 5) from wf (K x 9, cg_bf16_direct_weights's, in the path's order): pair m holds term 2 m
// in its high 16 bits and term 2 m + 1 in its low ones (term 8 and a zero for m = 4).
void cg_bf16_direct_pair_weights(uint32_t *wp, const float *wf, int64_t K);
bool cg_bf16_direct_relu_pool(uint16_t *y, uint8_t *where, const uint16_t *x, const uint32_t *wp, const uint16_t *bias,
                              int64_t K, int64_t H, int64_t W, cg_cpu_bf16_path path);
// The 16 sub-planes of image x (H x W bf16, W <= 32, H <= 64), the inputs of the 2 x 2 pooling
// windows (p, q) by position: sub[(i 4 + c) stride + p (W/2) + q] = xpad[2 p + i][2 q + c] for i, c
// in 0 .. 3, xpad the image with a border of zeros (so x[2 p + i - 1][2 q + c - 1]); the fused
// forward's and conv_direct_dw_one_channel.c's. Only the (H/2)(W/2) windows are written.
VEC_TARGET void cg_bf16_window_subplanes(uint16_t *sub, int64_t stride, const uint16_t *x, int64_t H, int64_t W);
// Whether cg_bf16_direct_dw takes this shape (K output channels): a one-channel 3 x 3
// convolution, stride 1, padding 1, even H and W up to 64 x 32, K a multiple of 16.
bool cg_bf16_direct_dw_fits(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                            int64_t pad, int64_t P, int64_t Q);
// The fused block's backward without dx on the AVX512-BF16 path: dw (K, 9) and dbias (K) bf16
// (either may be NULL) += the gradients from the pooled gradient dy, the pooled output y (both
// (N, K, H/2, W/2) bf16), the positions `where` and the images x (N, H, W) bf16; images in groups
// of `group`, as bf16_ops.c's conv_backward: its bits (bf16_direct_dw.c says why).
void cg_bf16_direct_dw(uint16_t *dw, uint16_t *dbias, const uint16_t *dy, const uint16_t *y, const uint8_t *where,
                       const uint16_t *x, int64_t N, int64_t H, int64_t W, int64_t K, int64_t group);
#endif

#endif

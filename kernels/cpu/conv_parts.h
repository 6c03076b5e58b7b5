// conv_parts.h: the f32 convolution's special paths that conv.c calls before its general one
// (im2col + GEMM); private to kernels/cpu. Each returns false, having done nothing, for the shapes
// it does not take.
#ifndef CG_KERNELS_CPU_CONV_PARTS_H
#define CG_KERNELS_CPU_CONV_PARTS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/cpu/cpu_features.h"

// conv_dw.c: dw (K, C*R*S) += the weight gradient, dy (N, K, P, Q) and x (N, C, H, W), split by
// input channels among the threads. For layers whose dW has at least 512 Ki floats (ResNet-18's
// layer3 and layer4); the same bits as conv.c's slices, on any number of threads.
bool conv2d_dw_by_channels_cpu(float *dw, const float *dy, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);

// conv_dx.c: dx (N, C, H, W) += the input gradient, dy (N, K, P, Q) and w (K, C, R, S), split by
// input channels among the threads (write: dx =, its old values never read). For planes of fewer
// than 512 positions whose dcol for a group of 4 images would not fit the cache (ResNet-18's
// layer3 and layer4); the same bits as conv.c's groups, on any number of threads.
bool conv2d_dx_by_channels_cpu(float *dx, const float *dy, const float *w, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                               bool write);

// conv_stem.c: a first convolution (at most 4 input channels, 64 output channels, C*R*S <= 160:
// ResNet-18's 7 x 7 stride-2 stem) as a direct convolution, with AVX-512 only: y (N, K, P, Q) =
// the convolution + bias; dw += its weight gradient, and db (when not NULL) += the bias gradient.
// y and dw: the same bits as conv.c's general path; db: a sum per group of 4 images in double,
// the groups' added in order (conv.c's sums each channel in one chain: the float may differ
// in the last bit, rarely), the same on any number of threads.
bool conv2d_stem_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                             int64_t P, int64_t Q);
bool conv2d_stem_dw_cpu(float *dw, float *db, const float *dy, const float *x, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);

// conv_stem_rows.c: conv2d_stem_forward_cpu's forward for output rows of 16 positions or more (at
// most an eighth of the last vector's lanes empty), the positions in the vector lanes; AVX-512
// only. The same bits as conv_stem.c's.
bool conv2d_stem_rows_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                  int64_t P, int64_t Q);

// conv_shortcut.c: the backward of ResNet's downsampling shortcut (1 x 1, stride 2, no padding,
// H = 2P, W = 2Q, Q dividing 16, P Q a multiple of 32, C a multiple of 16, K at most one block of
// the GEMM's K: CIFAR's layer2 and layer3 shortcuts), for conv.c's groups of images; AVX-512
// only (conv2d_shortcut_takes: false elsewhere). The same bits as conv.c's general path.
bool conv2d_shortcut_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                           int64_t pad, int64_t P, int64_t Q);
// slice (K, C) = the weight gradient of images n0 .. n0+count-1 (the transpose of conv.c's slices).
void conv2d_shortcut_dw_group(float *slice, const float *x, const float *dy, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q);
// w (K, C) packed for the dx tiles (a buffer of the calling thread, read by all), then dx of images
// n0 .. n0+count-1 += the input gradient (write: dx =, its old values never read).
const float *conv2d_shortcut_dx_weights(const float *w, int64_t K, int64_t C);
void conv2d_shortcut_dx_group(float *dx, const float *dy, const float *wt, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q, bool write);

// conv_small.c: out (K, ld) = W (K, C*R*S) times the columns of images n0 .. n0+count-1 (count*P*Q
// positions, zeros up to ld), wp: W packed (gemm_pack_a_cpu); col: scratch of CG_GEMM_KC x ld
// floats. For C*R*S over one block of the GEMM's K; the same bits as im2col_image and one
// gemm_prepacked_cpu over all of K.
bool conv2d_small_product_cpu(float *out, float *col, const float *x, const float *w, const float *wp, int64_t n0,
                              int64_t count, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                              int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);

// conv_winograd.c: 3 x 3 convolutions of stride 1 and padding 1 with even sides and at least 16
// channels in and out (the tutorial's second layer; ResNet-18's 56, 28 and 14), by Winograd's
// F(2 x 2, 3 x 3): 2.25 times fewer multiplications, on the engine's GEMM (the transforms in
// AVX-512, or in the compiler's 8-float vectors without it). Not
// the im2col path's bits (a few units in the last place), but the same on any number of threads
// and between the fused block and the three ops. conv2d_winograd_takes: whether a shape is one.
bool conv2d_winograd_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                           int64_t pad, int64_t P, int64_t Q);
// y (N, K, H, W) = the convolution + bias; or, where `where` is not NULL, the fused block's
// y (N, K, H/2, W/2) = max(0, the 2 x 2 window's first maximum) and where = its position (conv.c).
bool conv2d_winograd_forward_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                 int64_t pad, int64_t P, int64_t Q);
// dx (N, C, H, W) += the input gradient from dy (N, K, H, W) and w (K, C, 3, 3) (accumulate
// false: dx =, its old values never read).
bool conv2d_winograd_dx_cpu(float *dx, const float *dy, const float *w, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                            bool accumulate);
// The same in two steps, for conv.c's groups of images: the filters transformed (a buffer of
// the calling thread, read by all), then dx of `count` images += the input gradient from dy,
// channel k of image j at dy + j * image_stride + k * channel_stride (accumulate false: dx = the
// gradient, its old contents not read; the same bits as adding to zeros); `threads`: an OpenMP
// loop (false inside one).
const float *conv2d_winograd_dx_weights_cpu(const float *w, int64_t K, int64_t C);
void conv2d_winograd_dx_images_cpu(float *dx, const float *dy, int64_t image_stride, int64_t channel_stride,
                                   const float *u, int64_t count, int64_t C, int64_t H, int64_t W, int64_t K,
                                   bool accumulate, bool threads);

// The same tiles for bf16 convolutions on the AVX512-BF16 path (conv_winograd_bf16.c, called by
// bf16_ops.c): the transforms in f32 on the widened values, U and V rounded to bf16, the 16
// products by vdpbf16ps with f32 sums (bf16_gemm.c), each product of transformed values within 2^-7
// of the exact one (U and V are sums, rounded once more). conv2d_winograd_bf16_takes: the shape is
// one and the path is AVX512-BF16 (the AMX path keeps its dense tiles). _weights: the transformed
// filters of w (K, C, 3, 3) bf16, packed (the forward's, or dx's turned ones), in a buffer of the
// calling thread, read by all. _images: the convolution of `count` images of Cin bf16 planes (plane
// c of image j at in + j * image_stride + c * channel_stride), finished in the output transform,
// each value rounded to bf16 once: with `where`, y (count, Cout, H/2, W/2) = the 2 x 2 windows'
// first maxima of max(0, round(sum + bias)) and where their positions (0 top left .. 3 bottom
// right), as bf16_planes.c's cg_bf16_bias_relu_pool; else y (count, Cout, H, W) = round(sum +
// bias), or round(y + sum) when accumulate (bias NULL: none); one thread (called inside the
// callers' loops over groups of images).
bool conv2d_winograd_bf16_takes(cg_cpu_bf16_path path, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
const uint16_t *conv2d_winograd_bf16_weights(const uint16_t *w, int64_t K, int64_t C, bool for_dx);
void conv2d_winograd_bf16_images(uint16_t *y, uint8_t *where, const uint16_t *bias, bool accumulate,
                                 const uint16_t *in, int64_t image_stride, int64_t channel_stride, const uint16_t *u,
                                 int64_t count, int64_t Cin, int64_t Cout, int64_t H, int64_t W);

#endif

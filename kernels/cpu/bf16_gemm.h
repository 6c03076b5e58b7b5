// bf16_gemm.h: the CPU's bf16 matrix product on bf16 hardware (private to kernels/cpu): operands
// packed into 16 x 32 blocks, products on AMX tiles or with AVX512-BF16, sums in fp32. The bf16
// kernels of the op table (bf16_ops.c) are built on it. bf16 values are uint16_t bit patterns
// (core/half.h). Nothing here runs without the hardware: callers ask cg_cpu_bf16() first.
#ifndef CG_KERNELS_CPU_BF16_GEMM_H
#define CG_KERNELS_CPU_BF16_GEMM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/cpu_features.h"

// The packed layouts, for a product C (M, N) = A (M, K) B (K, N):
//   A: blocks of 16 rows x 32 k, each 16 rows of 32 bf16 (1 KiB), block (mb, kc) at
//      (mb * KC + kc) * 512 elements, KC = ceil(K / 32): an AMX A tile, loaded with stride 64 bytes.
//   B: blocks of 32 k x 16 columns, each 16 rows of pairs, row r = (B[2r][n], B[2r+1][n]) for the
//      16 columns n (1 KiB): the "VNNI" layout of an AMX B tile and of vdpbf16ps's second operand.
//      Block (nb, kc) at (nb * KC + kc) * 512 elements.
// Zeros fill rows, columns and k past M, N, K, so every block is whole.
#define CG_BF16_BLOCK 512 // bf16 values in a packed block

// Elements (uint16_t) of a packed operand with `rows` rows (A: M; B: N) and K.
static inline int64_t cg_bf16_packed_size(int64_t rows, int64_t K) {
    return (rows + 15) / 16 * ((K + 31) / 32) * CG_BF16_BLOCK;
}

// A(i, k) = A[i * rs + k * ks] (row-major: rs = lda, ks = 1; transposed: rs = 1, ks = lda).
void cg_bf16_pack_a(uint16_t *Ap, const uint16_t *A, int64_t rs, int64_t ks, int64_t M, int64_t K);
// B(k, n) = B[k * ks + n * ns] (row-major: ks = ldb, ns = 1; transposed: ks = 1, ns = ldb).
void cg_bf16_pack_b(uint16_t *Bp, const uint16_t *B, int64_t ks, int64_t ns, int64_t K, int64_t N);

// C = Ap Bp in fp32: C has ceil(M/16)*16 rows of ceil(N/16)*16 floats, ldc floats apart (every
// tile is stored whole, padding included, except that AVX512-BF16 leaves columns 8 .. 15 of a
// last block of at most 8 columns unwritten). path: CG_BF16_AMX or CG_BF16_AVX512. One thread.
void cg_bf16_gemm_packed(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M, int64_t N,
                         int64_t K, cg_cpu_bf16_path path);

// The same product on the AVX512-BF16 path with B given as rows of pairs instead of blocks: pair
// row p (k = 2p, 2p + 1) at B + 2 p ldb, its N pairs side by side (B[2p][n], B[2p+1][n]), ldb >= N
// pairs (a multiple of 16 padded with zeros past N, as are the pair rows past K up to a multiple
// of 16). For a B written a row of pairs at a time (conv_winograd_bf16.c's patches). One thread.
void cg_bf16_gemm_pair_rows(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *B, int64_t ldb, int64_t M,
                            int64_t N, int64_t K);

// ---- the op table's bf16 kernels on bf16 hardware (bf16_ops.c) --------------------------------
// Each returns false, having done nothing, when cg_cpu_bf16() is the emulated path; otherwise it
// has done, for dtype bf16, what the kernel of the same name in core/kernels.h does (gemm_h,
// linear_forward_h, conv2d_forward_h, conv2d_backward_h), with the same shapes and rounding rule.
bool cg_bf16_gemm_hw(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                     const uint16_t *B, float beta, uint16_t *C);
bool cg_bf16_linear_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t M,
                               int64_t N, int64_t K);
bool cg_bf16_conv2d_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t N,
                               int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                               int64_t pad, int64_t P, int64_t Q);
bool cg_bf16_conv2d_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy, const uint16_t *x,
                                const uint16_t *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);

// The fused block conv2d + bias + ReLU + 2x2 max pooling (conv_pool_h.c's kernels, bf16): the
// convolution's output of a group of images is rounded, ReLU'd and pooled while in the cache.
// The backward's accumulate: core/kernels.h's (false: dx written, not added to).
bool cg_bf16_conv2d_relu_pool_forward_hw(uint16_t *y, uint8_t *where, const uint16_t *x, const uint16_t *w,
                                         const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                         int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
bool cg_bf16_conv2d_relu_pool_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w,
                                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                          int64_t stride, int64_t pad, int64_t P, int64_t Q, bool accumulate);

// ReLU (on the sign bit) then 2x2 max pooling with stride 2 of one bf16 plane (P x Q) -> y
// (P/2 x Q/2) and where (the position of each window's first maximum in scan order, 0 .. 3), as
// relu_forward_h then max_pool2d_forward_h. Scratch: col_max and bottom_won, P/2 * 2 (Q/2) each.
// Plain C: used by the emulated path too.
void cg_bf16_relu_pool_plane(uint16_t *y, uint8_t *where, const uint16_t *plane, int64_t P, int64_t Q,
                             float *col_max, int32_t *bottom_won);
// The fused block's epilogue (AVX-512 builds only, CG_CPU_MATRIX_KERNELS; bf16_planes.c): out, the
// product's f32 rows of K planes (P x Q, `ldo` floats apart), to y (K, P/2, Q/2) and where: bias
// added and rounded to bf16, ReLU, each 2x2 window's first maximum; the bits of the rounding
// followed by cg_bf16_relu_pool_plane. _bf16: the same with AVX512-BF16's rounding instruction.
void cg_bf16_bias_relu_pool(uint16_t *y, uint8_t *where, const float *out, int64_t ldo, const uint16_t *bias,
                            int64_t K, int64_t P, int64_t Q);
void cg_bf16_bias_relu_pool_bf16(uint16_t *y, uint8_t *where, const float *out, int64_t ldo, const uint16_t *bias,
                                 int64_t K, int64_t P, int64_t Q);

// The fused block's backward, for images n0 .. n0 + count - 1: dy_g (K, L = count P Q, the
// images side by side) from dy (N, K, P/2, Q/2) pooled, y the pooled output and where its
// window positions (bf16_unpool.c): each pooled gradient at its window's maximum where the ReLU
// let it through (y > 0), round(0 + dy) as conv_pool_h.c's backward, zeros elsewhere; sums[k]
// (when not NULL) the sum of channel k's values, in double. y == NULL: dy (N, K, P, Q) copied.
void cg_bf16_fill_dyg(uint16_t *dyg, const uint16_t *dy, const uint16_t *y, const uint8_t *where, double *sums,
                      int64_t n0, int64_t count, int64_t K, int64_t P, int64_t Q);

// The columns of one image in bf16: row (c, r, s), column (p, q) = x[c][p stride - pad + r]
// [q stride - pad + s], 0 outside the image; rows `ld` values apart (bf16_planes.c).
void cg_bf16_im2col(uint16_t *col, int64_t ld, const uint16_t *x, int64_t C, int64_t H, int64_t W, int64_t R,
                    int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);

// Convolutions on small planes with many weights (bf16_small.c: ResNet-18's layer3 and layer4).
// The forward of strided ones, y (N, K, P, Q) = W x + bias, groups of images per product: the bits
// of conv2d_forward_h's other paths. The backward, a part of the input channels per thread: dW
// (K, C*R*S) += dy x over the whole batch; dx (N, C, H, W) = its old value if `accumulate` (else 0)
// + the input gradient. Each rounds once and returns false, having done nothing, where
// cg_bf16_small_takes says no (dx: also where Winograd's tiles take it) or on the emulated path.
// Threads: OpenMP, the same sums on any number.
bool cg_bf16_small_takes(int64_t C, int64_t K, int64_t R, int64_t S, int64_t P, int64_t Q);
bool cg_bf16_small_forward(cg_cpu_bf16_path path, uint16_t *y, const uint16_t *x, const uint16_t *w,
                           const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                           int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
bool cg_bf16_small_dw(cg_cpu_bf16_path path, uint16_t *dw, const uint16_t *dy, const uint16_t *x, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                      int64_t P, int64_t Q);
bool cg_bf16_small_dx(cg_cpu_bf16_path path, uint16_t *dx, const uint16_t *dy, const uint16_t *w, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                      int64_t P, int64_t Q, bool accumulate);

// conv.c's col2im for one image (f32): dx[c][h][w] += every entry of col (C*R*S rows, `ld` floats
// apart, P*Q columns) that im2col read from there.
void conv_col2im_image_cpu(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q);

// f32 -> bf16, round to nearest even, NaN kept as a quiet NaN: bit for bit core/half.c's
// cg_f32_to_bf16, written without branches so that loops over it vectorise.
static inline uint16_t cg_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
}

static inline float cg_bf16_widen(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// Per-thread scratch buffers for the bf16 kernels (bf16_products.c, bf16_ops.c), kept between
// calls: slot which (0..7), at least `bytes` bytes; contents undefined.
void *cg_bf16_scratch(int which, int64_t bytes);
// n rounded up to a whole number of 16s: the products' row and column counts as the tiles and the
// packed layouts take them.
static inline int64_t cg_whole16(int64_t n) { return (n + 15) / 16 * 16; }

#endif

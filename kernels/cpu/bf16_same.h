// bf16_same.h: "same" convolutions (stride 1, P = H, Q = W) on the bf16 hardware paths without
// im2col (bf16_same.c, called by bf16_ops.c).
// Im2col straight into the packed operands (bf16_gemm.h's layouts) for "same" convolutions with
// stride 1, the tutorial's: the columns are never written out, then read again and copied block
// by block (im2col_bf16, then cg_bf16_pack_b or cg_bf16_pack_a: a quarter of the bf16 step's
// time, with a library call per row and per 32 values). Row (c, r, s) of the columns is plane c
// shifted by (r - pad) W + (s - pad) values, with zeros at the positions whose source lies
// outside the image; which positions those are depends on (r, s) only, so it is worked out once
// per call, as a bitset per (r, s), and each run of values is then one masked load (the lanes
// outside the mask are not read, and are zero).
// x is one image (pack_b_same) or `count` images (pack_a_same) in NCHW bf16; R x S kernels,
// padding pad. Only with CG_CPU_MATRIX_KERNELS, and run only on the AMX and AVX512-BF16 paths.
#ifndef CG_KERNELS_CPU_BF16_SAME_H
#define CG_KERNELS_CPU_BF16_SAME_H

#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"

#ifdef CG_CPU_MATRIX_KERNELS
// 64-bit words of one (r, s) bitset of valid positions over H x W.
int64_t cg_bf16_same_valid_words(int64_t H, int64_t W);
// bits (R S bitsets of cg_bf16_same_valid_words each): bit pos of (r, s) set when column row
// (r, s) at position pos reads inside the image.
void cg_bf16_same_valid_positions(uint64_t *bits, int64_t H, int64_t W, int64_t R, int64_t S, int64_t pad);
// The forward's B operand (C R S, H W), packed as cg_bf16_pack_b packs it, from one image.
VEC_TARGET void cg_bf16_pack_b_same(uint16_t *Bp, const uint16_t *x, const uint64_t *valid, int64_t C, int64_t H,
                                    int64_t W, int64_t R, int64_t S, int64_t pad);
// The weight gradient's A operand (C R S, count H W), packed as cg_bf16_pack_a packs it, in two
// steps: the plan, in `work` (cg_bf16_pack_a_same_work(...) 64-bit words), once per group of
// images; then rows m0 .. m1 - 1 (m0 a multiple of 16; Ap: where block row m0 / 16 goes), as
// many times as wanted.
VEC_TARGET void cg_bf16_pack_a_same_plan(uint64_t *work, int64_t count, const uint64_t *valid, int64_t C, int64_t H,
                                         int64_t W, int64_t R, int64_t S);
VEC_TARGET void cg_bf16_pack_a_same(uint16_t *Ap, const uint16_t *x, const uint64_t *work, int64_t m0, int64_t m1,
                                    int64_t count, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t pad);
int64_t cg_bf16_pack_a_same_work(int64_t count, int64_t H, int64_t W, int64_t R, int64_t S);
// col2im's masks (R S x ceil(H W / 16) pairs) and each row's shift (R S), once per backward call;
// then dx (one image, bf16) = round(dx + the column gradients col (C R S, H W), rows ld apart).
VEC_TARGET void cg_bf16_col2im_masks(uint16_t *masks, int64_t *shifts, const uint64_t *valid, int64_t H, int64_t W,
                                     int64_t R, int64_t S, int64_t pad);
VEC_TARGET void cg_bf16_col2im_same(uint16_t *dx, const float *col, int64_t ld, const uint16_t *masks,
                                    const int64_t *shifts, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S);
// One-channel 3 x 3 convolutions, stride 1, padding 1, W <= 32 (the tutorial's first layer),
// summed directly with FMAs (bf16_direct.c) instead of the tile product: cg_bf16_direct_fits
// says whether the shape is one; cg_bf16_direct_weights widens the K x 9 bf16 weights to f32 in
// the order the path sums them (wf, once per call); then out (K rows ld floats apart, each a
// P x Q plane) = the f32 sums of image x (H x W bf16), the same bits as the path's product.
bool cg_bf16_direct_fits(int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q);
void cg_bf16_direct_weights(float *wf, const uint16_t *w, int64_t K, cg_cpu_bf16_path path);
VEC_TARGET void cg_bf16_direct_sums(float *out, int64_t ld, const uint16_t *x, const float *wf, int64_t K, int64_t H,
                                    int64_t W, cg_cpu_bf16_path path);
#endif

#endif

// int8_packed.h: the CPU int8 GEMM of the quantised layers (private to kernels/cpu): weights
// packed for AVX-512 VNNI once per call, activations given as unsigned bytes (int8 + 128), the
// output stage of core/qkernels.h fused, so that no int32 matrix is ever written to memory.
// The AVX2 (no VNNI) and plain C loops compute the same integers.
#ifndef CG_KERNELS_CPU_INT8_PACKED_H
#define CG_KERNELS_CPU_INT8_PACKED_H

#include "core/quant/qkernels.h"

// Weights packed for the kernel: w (Nout, Kp) i8 -> (Kp / 4, Np, 4) with Np = Nout rounded up
// to 16, so that one 64-byte load holds 4 consecutive k of 16 output channels (the operand
// layout of vpdpbusd). offset_u[j] = out->offset[j] - 128 sum_k w[j][k]: the correction for
// activations shifted to unsigned, sum (x + 128) w - 128 sum w = sum x w (oneDNN and FBGEMM use
// the same compensation).
typedef struct {
    int8_t *b;          // (Kp / 4, Np, 4)
    int16_t *b16;       // (Np / 16, Kp / 2, 16, 2): the AVX2 loops' copy (int8_packed.c); NULL elsewhere
    int32_t *offset_u;  // (Np,)
    float *multiplier;  // (Np,), zero past Nout
    int64_t Nout, Np, Kp;
    bool amx;           // whole blocks run on AMX-INT8 (cg_cpu_int8(), asked once here; kernels/cpu/int8.c)
} cg_int8_packed;

void cg_int8_pack(cg_int8_packed *p, const int8_t *w, const cg_qoutput *out, int64_t Nout, int64_t Kp);
void cg_int8_packed_free(cg_int8_packed *p);

// rows of a (rows, Kp) u8 (int8 activations + 128) times the packed weights, through the output
// stage, into y: (rows, Nout) i8 or f32 (out->to_float) with row stride ldy elements.
// Single-threaded: the callers share out rows with OpenMP. On the VNNI (or plain) loops; the int8
// layers (kernels/cpu/int8.c) first give whole blocks of 16 rows to cg_int8_gemm_rows_amx when
// p->amx, then the rest to these loops.
void cg_int8_gemm_rows_loops(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                             const cg_qoutput *out);

// int8_amx.c: as cg_int8_gemm_rows_loops for the first rows / 16 * 16 rows on AMX-INT8 tiles; returns
// how many rows it did (0 when Kp < 64 or rows < 16). `a` must have 64 readable bytes past its
// last row. Only where cg_cpu_int8() is CG_INT8_AMX.
int64_t cg_int8_gemm_rows_amx(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                              const cg_qoutput *out);

// The output stage of rows row0 .. row0 + rows - 1, columns j0 .. j0 + ncols - 1 (a multiple of 16;
// columns from Nout on are not stored) from their int32 sums acc (rows x ncols, ldacc apart,
// without offset_u): the same operations as cg_int8_gemm_rows_loops applies to its own sums.
void cg_int8_stage_block(void *y, int64_t ldy, int64_t row0, int64_t j0, const int32_t *acc, int64_t ldacc,
                         int64_t rows, int64_t ncols, const cg_int8_packed *p, const cg_qoutput *out);

#if defined(__AVX2__) && !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__))
// Builds with AVX2 and no VNNI (int8_packed.c's AVX2 loops): 16-bit numbers, exact int32 sums.
#define CG_INT8_AVX2 1
// c (rows, Np) i32, rows ldc apart = a16 (rows, K2) i16 times b16 (Np / 16, K2 / 2, 16, 2) i16 (16
// columns a panel, pairs of k), K2 even, Np a multiple of 16: the AVX2 loops' register tiles
// without the output stage (int8_winograd.c's 16 products).
void cg_int8_gemm_i16(int32_t *c, int64_t ldc, const int16_t *a16, int64_t rows, int64_t K2, const int16_t *b16,
                      int64_t Np);
#endif

// int8_winograd.c: a 3 x 3 convolution, stride 1, padding 1, by Winograd's F(2 x 2, 3 x 3) in
// integers, the same bytes as im2col and the GEMM. false (nothing written) where it does not run:
// builds without CG_INT8_AVX2, fewer than 8 or more than 404 input channels. Arguments as
// cg_qkernels.conv2d's (core/qkernels.h), P = H and Q = W.
bool cg_int8_conv3x3_winograd(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out,
                              int32_t x_zero_point, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Kout);

#endif

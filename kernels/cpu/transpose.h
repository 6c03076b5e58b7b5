// transpose.h: dy transposed or laid out in panels for the convolutions' products, and the
// transposition of a block of floats (kernels/cpu/transpose.c), private to kernels/cpu.
#ifndef CG_KERNELS_CPU_TRANSPOSE_H
#define CG_KERNELS_CPU_TRANSPOSE_H

#include <stdint.h>

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols.
void transpose_block(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols);
// out[(i - i0) K + k] = dy_n[k][i] for the flat positions i0 .. i1-1 of one image's dy (K planes of pq).
void transpose_dy(float *out, const float *dy_n, int64_t K, int64_t pq, int64_t i0, int64_t i1);
// ... into the column panels of gemm_panels_b_cpu's B (K a multiple of CG_GEMM_PANEL, ld rows in
// all): out_panels[k0 ld + (row0 + i - i0) CG_GEMM_PANEL + k - k0] = dy_n[k][i], k0 = k's panel.
void transpose_dy_panels(float *out_panels, int64_t ld, int64_t row0, const float *dy_n, int64_t K, int64_t pq,
                         int64_t i0, int64_t i1);
// dy's rows (not transposed) into those panels: out[j0 K + k width + f - j0] = dy at flat position
// n0 PQ + i0 + f of channel k, for f < used, zeros up to ld (a multiple of 16; width 32, or 16 for
// a last half panel).
void dy_rows_panels(float *out, const float *dy, int64_t n0, int64_t i0, int64_t used, int64_t ld, int64_t K,
                    int64_t pq);

#endif

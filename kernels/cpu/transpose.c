// transpose.c: the transpositions and layouts of dy that the convolutions' products read (the
// weight gradient's B, dy transposed; dx's, dy's rows in the GEMM's column panels), and the
// transposition of any block of floats they are made of: 16 x 16 tiles in AVX-512 registers
// (transpose16.h's shuffles), 8 x 8 in vectors of 8 elsewhere (vec8.h), the edges float by float.
#include "kernels/cpu/transpose.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec8.h"

#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include "kernels/cpu/transpose16.h"
#endif

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: 16 x 16 tiles in registers (AVX-512:
// four rounds of shuffles, 64 for 256 floats), the edges float by float. Float by float, a
// transposition costs about a cycle a float: as much as the tutorial's first convolution's
// weight-gradient product itself.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
static void transpose_16x16(float *dst, int64_t ldd, const float *src, int64_t lds) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    cg_transpose16(r);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}
#else
// Without AVX-512, 8 x 8 in vectors of 8 (vec8.h), the same three rounds: pairs of rows
// interleaved float by float, then two floats at a time, then halves. One float at a time, the
// first block's dy transposed for its dW took 4 % of a training step on a Zen 1 core.
static void transpose_8x8(float *dst, int64_t ldd, const float *src, int64_t lds) {
    f8 r[8], t[8];
    CG_UNROLL for (int i = 0; i < 8; i++) memcpy(&r[i], src + i * lds, sizeof r[i]);
    CG_UNROLL for (int i = 0; i < 8; i += 2) {
        t[i] = SHUFFLE8(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = SHUFFLE8(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    CG_UNROLL for (int i = 0; i < 8; i += 4) {
        r[i] = SHUFFLE8(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        r[i + 1] = SHUFFLE8(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        r[i + 2] = SHUFFLE8(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        r[i + 3] = SHUFFLE8(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    // column i: the first halves of r[i] (rows 0-3) and r[i + 4] (rows 4-7); column i + 4: their second halves
    CG_UNROLL for (int i = 0; i < 4; i++) {
        t[i] = SHUFFLE8(r[i], r[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        t[i + 4] = SHUFFLE8(r[i], r[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
    CG_UNROLL for (int i = 0; i < 8; i++) memcpy(dst + i * ldd, &t[i], sizeof t[i]);
}
#endif

void transpose_block(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    int64_t r0 = 0, c0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    r0 = rows / 16 * 16, c0 = cols / 16 * 16;
    for (int64_t i = 0; i < r0; i += 16)
        for (int64_t j = 0; j < c0; j += 16) transpose_16x16(dst + j * ldd + i, ldd, src + i * lds + j, lds);
#else
    r0 = rows / 8 * 8, c0 = cols / 8 * 8;
    for (int64_t i = 0; i < r0; i += 8)
        for (int64_t j = 0; j < c0; j += 8) transpose_8x8(dst + j * ldd + i, ldd, src + i * lds + j, lds);
#endif
    for (int64_t i = 0; i < rows; i++) // the edges: rows past r0, and columns past c0 of the others
        for (int64_t j = i < r0 ? c0 : 0; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
}

// dy of flat positions i0 .. i1-1 of one image (dy_n: K planes of PQ) transposed: out[(i - i0) K + k]
// = dy_n[k][i], the layout the weight gradient's product reads in place.
void transpose_dy(float *out, const float *dy_n, int64_t K, int64_t pq, int64_t i0, int64_t i1) {
    transpose_block(out, K, dy_n + i0, pq, K, i1 - i0);
}

// The same values laid out as gemm_panels_b_cpu reads its B (K a multiple of CG_GEMM_PANEL): the
// panel of channels k0 .. k0+31 at out_panels + k0 * ld (ld: the rows of the whole B, the span's
// positions), position i's 32 values at row i - i0 + row0 of it.
void transpose_dy_panels(float *out_panels, int64_t ld, int64_t row0, const float *dy_n, int64_t K, int64_t pq,
                         int64_t i0, int64_t i1) {
    for (int64_t k0 = 0; k0 < K; k0 += CG_GEMM_PANEL)
        transpose_block(out_panels + k0 * ld + row0 * CG_GEMM_PANEL, CG_GEMM_PANEL, dy_n + k0 * pq + i0, pq,
                        CG_GEMM_PANEL, i1 - i0);
}

// dy's rows, not transposed, as gemm_panels_b_cpu reads its B (K, ld): column f is flat position
// n0 PQ + i0 + f of dy (image n0 + (i0 + f) / PQ, so a panel may cross from one image to the next:
// its row is then copied in pieces, one per image) for f < used, zeros from used to ld. Panels of
// 32 columns (the last 16 wide when ld is an odd number of 16s): panel j0's row k at out + j0 K +
// k width. dx's products read them in place, where the GEMM would copy B into panels itself.
void dy_rows_panels(float *out, const float *dy, int64_t n0, int64_t i0, int64_t used, int64_t ld, int64_t K,
                    int64_t pq) {
    for (int64_t j0 = 0; j0 < ld; j0 += CG_GEMM_PANEL) {
        int64_t width = ld - j0 < CG_GEMM_PANEL ? ld - j0 : CG_GEMM_PANEL, i = (i0 + j0) % pq;
        if (width == CG_GEMM_PANEL && j0 + width <= used && i + width <= pq) { // a whole panel in one image:
            const float *src = dy + (n0 + (i0 + j0) / pq) * K * pq + i;       // copies of constant size
            for (int64_t k = 0; k < K; k++)
                memcpy(out + j0 * K + k * width, src + k * pq, CG_GEMM_PANEL * sizeof(float));
            continue;
        }
        for (int64_t k = 0; k < K; k++) {
            float *row = out + j0 * K + k * width;
            int64_t f = j0;
            while (f < j0 + width && f < used) { // the pieces of the row that lie in one image each
                int64_t n = n0 + (i0 + f) / pq, at = (i0 + f) % pq, end = j0 + width < used ? j0 + width : used;
                int64_t count = pq - at < end - f ? pq - at : end - f;
                memcpy(row + (f - j0), dy + (n * K + k) * pq + at, (size_t)count * sizeof(float));
                f += count;
            }
            if (f < j0 + width) memset(row + (f - j0), 0, (size_t)(j0 + width - f) * sizeof(float));
        }
    }
}

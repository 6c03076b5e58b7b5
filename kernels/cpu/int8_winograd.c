// int8_winograd.c: the int8 3 x 3 convolution (stride 1, padding 1) by Winograd's minimal
// filtering F(2 x 2, 3 x 3) in integers, for CPUs with AVX2 and no VNNI, where int8_packed.c's
// loops multiply 16-bit numbers and a 16-bit number has room for Winograd's transformed values.
// The same bytes as im2col and the GEMM (int8.c), with 16 products per 2 x 2 outputs instead of 36.
//
// Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), eq. 7: for a 4 x 4
// input patch d and a 3 x 3 filter g, the 2 x 2 outputs are
//     Y = A^T [ (G g G^T) (.) (B^T d B) ] A,        (.) elementwise, summed over input channels
//     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//     A^T = [1 1 1 0; 0 1 -1 -1].
// G has halves; 2 G has integers, so U = (2 G) g (2 G)^T = 4 G g G^T is an integer matrix and the
// same formula gives 4 Y. Everything is then exact integer arithmetic:
//   |B^T d B| <= 4 x 128 = 512 (each entry is 4 inputs with signs), |U| <= 3 x 3 x 128 = 1152
//   (rows of 2 G add at most 3 filter values): both fit int16, so vpmaddwd's products are exact;
//   over C channels and A^T's 9 terms the int32 sums stay below 9 x 1152 x 512 x C, under 2^31 for
//   C <= 404; and 4 Y divided by 4 (a shift) is Y exactly: the sum of the inputs (padding = the
//   input's zero point) times the weights, the integer im2col's GEMM gets.
// The other paths shift the inputs to unsigned bytes (x + 128) and correct with offset_u; here the
// inputs stay signed, so 128 sum w is added back before the same output stage (stage_8).
//
// Per block of TB tiles (on one thread, blocks shared out by OpenMP): the input transform into
// V (16 positions, TB tiles, C2 channels), 16 products M[pos] = V[pos] U[pos] on the AVX2 register
// tiles (cg_int8_gemm_i16), the output transform and the output stage, 4 output pixels a tile.
#include "kernels/cpu/int8_packed.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/cpu/cpu.h"

#ifdef CG_INT8_AVX2

#define TB 24     // tiles per block: V 16 TB C2 int16 and M 16 TB Np int32 stay in the L2 cache
#define MAX_C 404 // 9 x 1152 x 512 x C < 2^31 (above)

// U = (2 G) g (2 G)^T of one filter channel: g 3 x 3 (row-major), u 4 x 4.
static void filter_transform(int16_t u[16], const int32_t g[9]) {
    int32_t t[4][3]; // (2 G) g
    for (int s = 0; s < 3; s++) {
        int32_t g0 = g[s], g1 = g[3 + s], g2 = g[6 + s];
        t[0][s] = 2 * g0, t[1][s] = g0 + g1 + g2, t[2][s] = g0 - g1 + g2, t[3][s] = 2 * g2;
    }
    for (int i = 0; i < 4; i++) {
        int32_t t0 = t[i][0], t1 = t[i][1], t2 = t[i][2];
        u[i * 4 + 0] = (int16_t)(2 * t0), u[i * 4 + 1] = (int16_t)(t0 + t1 + t2);
        u[i * 4 + 2] = (int16_t)(t0 - t1 + t2), u[i * 4 + 3] = (int16_t)(2 * t2);
    }
}

// V = B^T d B of tile `t`, all channels, 16 at a time (C2 is a multiple of 16): d is the 4 x 4
// patch, 16 rows of C2 int16 (pixel-major), v[pos * TB * C2 + t * C2 + c].
static void input_transform(int16_t *v, int64_t t, const int16_t *d, int64_t C2) {
    for (int64_t c = 0; c < C2; c += 16) {
        __m256i e[4][4];
        for (int s = 0; s < 4; s++) { // B^T d: rows
            __m256i d0 = _mm256_loadu_si256((const __m256i *)(d + (0 * 4 + s) * C2 + c));
            __m256i d1 = _mm256_loadu_si256((const __m256i *)(d + (1 * 4 + s) * C2 + c));
            __m256i d2 = _mm256_loadu_si256((const __m256i *)(d + (2 * 4 + s) * C2 + c));
            __m256i d3 = _mm256_loadu_si256((const __m256i *)(d + (3 * 4 + s) * C2 + c));
            e[0][s] = _mm256_sub_epi16(d0, d2), e[1][s] = _mm256_add_epi16(d1, d2);
            e[2][s] = _mm256_sub_epi16(d2, d1), e[3][s] = _mm256_sub_epi16(d1, d3);
        }
        for (int r = 0; r < 4; r++) { // (B^T d) B: columns
            int16_t *row = v + ((r * 4) * TB + t) * C2 + c; // positions r * 4 .. r * 4 + 3
            _mm256_storeu_si256((__m256i *)(row + 0 * TB * C2), _mm256_sub_epi16(e[r][0], e[r][2]));
            _mm256_storeu_si256((__m256i *)(row + 1 * TB * C2), _mm256_add_epi16(e[r][1], e[r][2]));
            _mm256_storeu_si256((__m256i *)(row + 2 * TB * C2), _mm256_sub_epi16(e[r][2], e[r][1]));
            _mm256_storeu_si256((__m256i *)(row + 3 * TB * C2), _mm256_sub_epi16(e[r][1], e[r][3]));
        }
    }
}

// The 4 x 4 patch of tile (n, tp, tq) as int16, channels past C zero, outside the image the
// input's zero point (the value im2col pads with).
static void gather_patch(int16_t *d, const int8_t *x, int32_t zero_point, int64_t n, int64_t tp, int64_t tq,
                         int64_t H, int64_t W, int64_t C, int64_t C2) {
    for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++) {
            int16_t *dst = d + (r * 4 + s) * C2;
            int64_t ih = 2 * tp - 1 + r, iw = 2 * tq - 1 + s;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                for (int64_t c = 0; c < C; c++) dst[c] = (int16_t)zero_point;
            } else {
                const int8_t *src = x + ((n * H + ih) * W + iw) * C;
                for (int64_t c = 0; c < C; c++) dst[c] = src[c];
            }
            for (int64_t c = C; c < C2; c++) dst[c] = 0;
        }
}

// Y = A^T M A / 4 of tile `t` for all Np output channels, 8 at a time, plus comp: acc (4, Np), the
// 2 x 2 output pixels row-major. m[pos * TB * Np + t * Np + j].
static void output_transform(int32_t *acc, const int32_t *m, int64_t t, int64_t Np, const int32_t *comp) {
    for (int64_t j = 0; j < Np; j += 8) {
        __m256i h[2][4];
        for (int s = 0; s < 4; s++) { // A^T M: rows
            const int32_t *col = m + (s * TB + t) * Np + j; // position (0, s); (r, s) is 4 r TB Np further
            __m256i q0 = _mm256_loadu_si256((const __m256i *)col);
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(col + 4 * TB * Np));
            __m256i q2 = _mm256_loadu_si256((const __m256i *)(col + 8 * TB * Np));
            __m256i q3 = _mm256_loadu_si256((const __m256i *)(col + 12 * TB * Np));
            h[0][s] = _mm256_add_epi32(_mm256_add_epi32(q0, q1), q2);
            h[1][s] = _mm256_sub_epi32(_mm256_sub_epi32(q1, q2), q3);
        }
        __m256i cj = _mm256_loadu_si256((const __m256i *)(comp + j));
        for (int r = 0; r < 2; r++) { // (A^T M) A: columns; 4 Y -> Y (exact: a multiple of 4)
            __m256i y0 = _mm256_add_epi32(_mm256_add_epi32(h[r][0], h[r][1]), h[r][2]);
            __m256i y1 = _mm256_sub_epi32(_mm256_sub_epi32(h[r][1], h[r][2]), h[r][3]);
            y0 = _mm256_add_epi32(_mm256_srai_epi32(y0, 2), cj);
            y1 = _mm256_add_epi32(_mm256_srai_epi32(y1, 2), cj);
            _mm256_storeu_si256((__m256i *)(acc + (r * 2 + 0) * Np + j), y0);
            _mm256_storeu_si256((__m256i *)(acc + (r * 2 + 1) * Np + j), y1);
        }
    }
}

bool cg_int8_conv3x3_winograd(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out,
                              int32_t x_zero_point, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Kout) {
    if (C < 8 || C > MAX_C) return false;
    const int64_t Kp = CG_QK_PAD(9 * C), C2 = (C + 15) / 16 * 16; // whole vectors of 16 channels
    cg_int8_packed pk; // offset_u, multiplier and Np for the output stage
    cg_int8_pack(&pk, w, out, Kout, Kp);
    const int64_t Np = pk.Np;
    // U for the 16 positions, each as the panels cg_int8_gemm_i16 reads: (Np / 16, C2 / 2, 16, 2).
    int16_t *u = cg_xcalloc((size_t)(16 * Np * C2), sizeof(int16_t));
    int32_t *comp = cg_xcalloc((size_t)Np, sizeof(int32_t)); // 128 sum_k w[j][k] = offset - offset_u
    for (int64_t j = 0; j < Kout; j++) {
        comp[j] = out->offset[j] - pk.offset_u[j];
        for (int64_t c = 0; c < C; c++) {
            int32_t g[9];
            int16_t f[16];
            for (int k = 0; k < 9; k++) g[k] = w[j * Kp + k * C + c]; // (r, s, c) order
            filter_transform(f, g);
            for (int pos = 0; pos < 16; pos++)
                u[pos * Np * C2 + (j / 16) * C2 * 16 + (c / 2) * 32 + (j % 16) * 2 + c % 2] = f[pos];
        }
    }
    const int64_t TP = (H + 1) / 2, TQ = (W + 1) / 2, tiles = N * TP * TQ, blocks = (tiles + TB - 1) / TB;
#pragma omp parallel if (tiles * C * Kout >= 4 * CG_OMP_MIN_WORK)
    {
        int16_t *d = cg_xmalloc((size_t)(16 * C2) * sizeof(int16_t));
        int16_t *v = cg_xmalloc((size_t)(16 * TB * C2) * sizeof(int16_t));
        int32_t *m = cg_xmalloc((size_t)(16 * TB * Np) * sizeof(int32_t));
        int32_t *acc = cg_xmalloc((size_t)(4 * Np) * sizeof(int32_t));
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t t0 = b * TB, nt = tiles - t0 < TB ? tiles - t0 : TB;
            for (int64_t t = 0; t < nt; t++) {
                int64_t i = t0 + t, n = i / (TP * TQ), tp = i / TQ % TP, tq = i % TQ;
                gather_patch(d, x, x_zero_point, n, tp, tq, H, W, C, C2);
                input_transform(v, t, d, C2);
            }
            for (int pos = 0; pos < 16; pos++)
                cg_int8_gemm_i16(m + pos * TB * Np, Np, v + pos * TB * C2, nt, C2, u + pos * Np * C2, Np);
            for (int64_t t = 0; t < nt; t++) {
                int64_t i = t0 + t, n = i / (TP * TQ), tp = i / TQ % TP, tq = i % TQ;
                output_transform(acc, m, t, Np, comp);
                for (int k = 0; k < 4; k++) { // the tile's pixels inside the output (odd H or W: not all)
                    int64_t p = 2 * tp + k / 2, q = 2 * tq + k % 2;
                    if (p < H && q < W)
                        cg_int8_stage_block(y, Kout, (n * H + p) * W + q, 0, acc + k * Np, Np, 1, Np, &pk, out);
                }
            }
        }
        free(d), free(v), free(m), free(acc);
    }
    free(u), free(comp);
    cg_int8_packed_free(&pk);
    return true;
}

#else

bool cg_int8_conv3x3_winograd(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out,
                              int32_t x_zero_point, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Kout) {
    (void)y, (void)x, (void)w, (void)out, (void)x_zero_point, (void)N, (void)H, (void)W, (void)C, (void)Kout;
    return false;
}

#endif

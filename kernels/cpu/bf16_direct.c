// bf16_direct.c: the f32 sums of a one-channel 3 x 3 "same" convolution (stride 1, padding 1:
// the tutorial CNN's first layer) on the bf16 hardware paths, computed directly with AVX-512
// FMAs instead of the tile product (bf16_ops.c's conv_forward; declared in bf16_same.h).
// With one input channel each output is a sum of 9 products: the tile product pads that
// reduction to 32 (a 16 x 32 tile row of bf16 pairs) and the packing and the f32 rows it writes
// cost more than the multiplications themselves. Here the image is widened to f32 once (a bf16
// value widened is exact), and each output row of every channel is 9 FMAs per 16 positions on
// those values: bf16 x bf16 products are exact in f32 (8 + 8 significant bits), so each FMA
// rounds only the sum, as the hardware's fp32 accumulation does, and the terms are added in the
// order the path's product adds them (tap_order), each sum starting from +0: the same bits as the
// product would give (tests/test_bf16_cpu.c's same-packing test compares them). The rows land where the tile product put them (channel k's
// P x Q plane at out + k ld), and bf16_ops.c's epilogue (bias, rounding, ReLU, pooling) reads
// them unchanged.
#include "kernels/cpu/bf16_same.h"

#include <string.h>

#ifdef CG_CPU_MATRIX_KERNELS
// The padded image as f32: row h + 1, column w + 1 hold x[h][w], zeros around (the padding).
// PADDED_W columns: the image's W <= 32, one on each side, and the second vector's 16-float reads
// (columns 16 .. 31, shifted by s up to 2) stay inside a row.
#define PADDED_W 48
#define MAX_H 64
// Channels summed at a time: 4 channels x 2 vectors = 8 independent FMA chains, enough to keep
// two FMA units busy through the 4-cycle latency (one channel's 2 chains would wait on it).
#define KB 4

// The order in which the path's product adds the 9 terms (c, r, s) = r * 3 + s of a sum, each
// added with one rounding. tdpbf16ps adds each bf16 pair's first product, then its second; vdpbf16ps
// the second, then the first (Intel's pseudo-code for both). Its last pair is (8, a padding
// row of zeros): + 0 first leaves the sum as it is (it is never -0: an exact cancellation
// gives +0), then term 8.
static const int *tap_order(cg_cpu_bf16_path path) {
    static const int amx[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, avx512[9] = {1, 0, 3, 2, 5, 4, 7, 6, 8};
    return path == CG_BF16_AVX512 ? avx512 : amx;
}

void cg_bf16_direct_weights(float *wf, const uint16_t *w, int64_t K, cg_cpu_bf16_path path) {
    const int *order = tap_order(path);
    for (int64_t k = 0; k < K; k++)
        for (int t = 0; t < 9; t++) wf[k * 9 + t] = cg_bf16_widen(w[k * 9 + order[t]]);
}

bool cg_bf16_direct_fits(int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q) {
    return C == 1 && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && W <= 32 && H <= MAX_H &&
           H >= 1 && W >= 1;
}

// Output row h of channels k .. k + n - 1 (n <= KB, a constant after inlining): the 18 shifted
// image vectors xv (term t of the sums, vector v: columns 16 v ..) are shared by the n channels;
// the weights wf (n x 9 f32, in the same order) are broadcast from memory by the FMAs. Stored with masks: the rows are
// Q floats apart in the plane and the two vectors hold 32 lanes, of which Q are outputs.
static inline __attribute__((always_inline)) VEC_TARGET void row_channels(float *out, int64_t ld, const __m512 xv[9][2],
                                                                        const float *wf, __mmask16 m0, __mmask16 m1,
                                                                        const int n) {
    __m512 acc[KB][2];
    for (int j = 0; j < n; j++) acc[j][0] = acc[j][1] = _mm512_setzero_ps(); // +0, as the tile's zeroed sums
    for (int t = 0; t < 9; t++) // the path's order (tap_order)
        for (int j = 0; j < n; j++) {
            __m512 w = _mm512_set1_ps(wf[j * 9 + t]);
            acc[j][0] = _mm512_fmadd_ps(w, xv[t][0], acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(w, xv[t][1], acc[j][1]);
        }
    for (int j = 0; j < n; j++) {
        _mm512_mask_storeu_ps(out + j * ld, m0, acc[j][0]);
        _mm512_mask_storeu_ps(out + j * ld + 16, m1, acc[j][1]);
    }
}

VEC_TARGET void cg_bf16_direct_sums(float *out, int64_t ld, const uint16_t *x, const float *wf, int64_t K, int64_t H,
                                    int64_t W, cg_cpu_bf16_path path) {
    const int *order = tap_order(path);
    float xp[(MAX_H + 2) * PADDED_W];
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof *xp);
    for (int64_t h = 0; h < H; h++) // widened 16 values at a time (masked: W may be under 16 or 32)
        for (int64_t w0 = 0; w0 < W; w0 += 16) {
            int64_t n = W - w0 < 16 ? W - w0 : 16;
            __mmask16 m = (__mmask16)((1u << n) - 1);
            __m512 v = widen16_avx512(_mm256_maskz_loadu_epi16(m, x + h * W + w0));
            _mm512_mask_storeu_ps(xp + (h + 1) * PADDED_W + 1 + w0, m, v);
        }
    // Output columns 0 .. 15 and 16 .. W - 1.
    __mmask16 m0 = (__mmask16)(W >= 16 ? 0xffff : (1u << W) - 1);
    __mmask16 m1 = (__mmask16)(W > 16 ? (1u << (W - 16)) - 1 : 0);
    for (int64_t h = 0; h < H; h++) {
        // Output (h, q) reads padded (h + r, q + s): tap (r, s) is row h + r shifted by s.
        __m512 xv[9][2];
        for (int t = 0; t < 9; t++) {
            const float *src = xp + (h + order[t] / 3) * PADDED_W + order[t] % 3;
            xv[t][0] = _mm512_loadu_ps(src);
            xv[t][1] = _mm512_loadu_ps(src + 16);
        }
        float *row = out + h * W;
        int64_t k = 0;
        for (; k + KB <= K; k += KB) row_channels(row + k * ld, ld, xv, wf + k * 9, m0, m1, KB);
        for (; k < K; k++) row_channels(row + k * ld, ld, xv, wf + k * 9, m0, m1, 1); // K not a multiple of KB
    }
}
#endif

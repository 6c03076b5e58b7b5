// conv_small.c: the forward product of conv.c's groups of small planes (ResNet-18's layer3 and
// layer4), its columns made one block of the GEMM's K at a time.
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"

#include <string.h>

// A group's columns, whole, are C*R*S x ld floats: 7.4 MB for layer4's 8 images (4608 x 400),
// more than the 2 MB second-level cache, so im2col wrote them to memory and the product read them
// back. Here rows k0 .. k0+kc-1 of them (one block of the GEMM's K, CG_GEMM_KC rows: 400 KB) are
// made into col and multiplied at once, while they are still in the cache, and the block's
// partial product added to out (one core, medians of 5: layer3's forward 151 -> 168 GFLOP/s, 63
// -> 70 % of the peak; layer4's 146 -> 152, its timings noisier). That is what the GEMM does
// inside one call: block after block of K in order, the first written (beta 0), each later one
// added (beta 1), every tile's sums taken the same way; and the packed weights of block k0 lie at
// wp + padded_M * k0 (gemm_pack_a_cpu): the same bits as one product over all of K.
bool conv2d_small_product_cpu(float *out, float *col, const float *x, const float *w, const float *wp, int64_t n0,
                              int64_t count, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                              int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, used = count * pq;
    if (crs <= CG_GEMM_KC || ld <= 1 || K <= 1) return false; // one block, or a matrix-vector product
    for (int64_t k0 = 0; k0 < crs; k0 += CG_GEMM_KC) {
        int64_t kc = crs - k0 < CG_GEMM_KC ? crs - k0 : CG_GEMM_KC;
        for (int64_t j = 0; j < count; j++)
            im2col_span_rows(col + j * pq, ld, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q, 0, pq,
                             k0, k0 + kc);
        if (ld > used)
            for (int64_t i = 0; i < kc; i++) memset(col + i * ld + used, 0, (size_t)(ld - used) * sizeof(float));
        gemm_prepacked_cpu(false, w + k0, wp + gemm_packed_a_floats(K, k0), false, K, ld, kc, 1.0f, col,
                           k0 == 0 ? 0.0f : 1.0f, out);
    }
    return true;
}

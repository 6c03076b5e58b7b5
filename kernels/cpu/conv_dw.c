// conv_dw.c: the f32 convolution's weight gradient for layers with many weights (ResNet-18's
// layer3 and layer4), computed a few input channels at a time, each thread on its own part of
// dW. It does not compute dx or db (conv2d_backward_cpu, conv.c, does, and calls this first).
//
// Why: conv2d_backward_cpu's general path gives each group of images its own slice of dW (K x
// CRS floats) and adds the slices in group order at the end. For ResNet-18's layer4 (K = 512,
// CRS = 4608) a slice is 9.4 MB: every group wrote one through memory, and adding them read them
// all back (13 % of that layer's backward), for only 196 multiply-adds per element and group.
// Here the threads split dW by input channels (disjoint columns of dW: no slices, and the result
// does not depend on the number of threads); a part of dW (K x 288 floats, 590 KB) stays in the
// core's second-level cache while every group's product is added to it.
//
// The same bits as the slices: each group's product is the same sum (the same products, in the
// same order, in the same blocks of the GEMM's K: CG_GEMM_KC positions), added to dW group after
// group. Here dW (K, CRS) is the product's C, dy (K, positions) its A (packed once per group, for
// every part) and the columns transposed (positions, CRS part) its B: the general path's
// dW^T = col dy^T with the roles of A and B exchanged, which multiplies the same two numbers.
#include "kernels/cpu/conv_parts.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/transpose.h"
#include "kernels/cpu/threads.h"

#include <string.h>

// Images per group, as conv.c's GROUP: the blocks of each group's sum are those of the slices.
#define DW_GROUP 4
// Columns of dW per part: about this many (32 input channels of a 3 x 3 kernel: 288, 9 of the
// GEMM's panels of 32). With K = 512 the part, its columns and dy packed take about 1.4 MB.
#define PART_COLUMNS 288
// The path is taken when dW has at least this many floats (2 MB: a slice no longer fits the
// second-level cache): ResNet-18's layer3 (2.4 MB) and layer4 (9.4 MB). Smaller layers keep the
// slices, whose cost is small there, and whose groups give the threads more pieces.
#define DW_FLOATS_MIN (512 * 1024)

static float *scratch(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[4];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// Each group's dy as the GEMM's A, (K, count*PQ) packed by gemm_pack_a_cpu: made by the calling
// thread's team before the parts start, read by all of them. One buffer, kept between calls.
static float *packed_dy(int64_t floats) {
    static _Thread_local cg_thread_buffer buffer;
    return cg_thread_floats_aligned(&buffer, floats);
}

// Input channels c0 .. c1-1, columns c0*R*S .. c1*R*S-1 of dW (`rows` of them): part = dW's
// columns (K, rows), then for each group in order its product added, then back into dW.
static void dw_part(float *dw, const float *packed, int64_t group_floats, const float *x, int64_t c0, int64_t c1,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                    int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, rows = (c1 - c0) * R * S, first = c0 * R * S;
    int64_t padded_k = gemm_packed_a_floats(K, 1); // the packed A's rows: K rounded up to its panels
    float *part = scratch(0, K * rows), *sum = scratch(1, K * rows);
    float *col = scratch(2, rows * CG_GEMM_KC), *colt = scratch(3, CG_GEMM_KC * rows);
    for (int64_t k = 0; k < K; k++) memcpy(part + k * rows, dw + k * crs + first, (size_t)rows * sizeof(float));
    for (int64_t g = 0; g * DW_GROUP < N; g++) {
        int64_t n0 = g * DW_GROUP, count = N - n0 < DW_GROUP ? N - n0 : DW_GROUP, ld = count * pq;
        // A group of one block of K is added to the part by the product itself (beta 1: C + the
        // block's sum, as dW + the slice); a longer one is summed first, then added (the slice's
        // blocks were summed from zero).
        bool one_block = ld <= CG_GEMM_KC;
        for (int64_t f0 = 0; f0 < ld; f0 += CG_GEMM_KC) {
            int64_t f1 = f0 + CG_GEMM_KC < ld ? f0 + CG_GEMM_KC : ld, n = f1 - f0;
            for (int64_t f = f0; f < f1;) { // the part of the span in image n0 + f / pq
                int64_t j = f / pq, i0 = f % pq, i1 = i0 + (f1 - f) < pq ? i0 + (f1 - f) : pq;
                im2col_span(col + (f - f0), n, x + ((n0 + j) * C + c0) * H * W, c1 - c0, H, W, R, S, stride, pad, P,
                            Q, i0, i1);
                f += i1 - i0;
            }
            transpose_block(colt, rows, col, n, rows, n); // (n positions, rows): the product's B
            const float *a = packed + g * group_floats + padded_k * f0; // the span's block of dy, packed
            gemm_prepacked_cpu(false, NULL, a, false, K, rows, n, 1.0f, colt, one_block || f0 > 0 ? 1.0f : 0.0f,
                               one_block ? part : sum);
        }
        if (!one_block)
            for (int64_t i = 0; i < K * rows; i++) part[i] += sum[i];
    }
    for (int64_t k = 0; k < K; k++) memcpy(dw + k * crs + first, part + k * rows, (size_t)rows * sizeof(float));
}

bool conv2d_dw_by_channels_cpu(float *dw, const float *dy, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, rs = R * S;
    // K >= 16 and parts of at least 16 columns: never a matrix-vector product (those are not
    // summed in blocks of K, and would read A itself, which is not kept here).
    if (K * crs < DW_FLOATS_MIN || K < 16 || rs > PART_COLUMNS) return false;
    int64_t channels = PART_COLUMNS / rs, parts = (C + channels - 1) / channels;
    if (channels * rs < 16) return false;
    int64_t groups = (N + DW_GROUP - 1) / DW_GROUP, group_floats = gemm_packed_a_floats(K, DW_GROUP * pq);
    float *packed = packed_dy(groups * group_floats);
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel if (threads)
    {
#pragma omp for schedule(dynamic)
        for (int64_t g = 0; g < groups; g++) {
            int64_t n0 = g * DW_GROUP, count = N - n0 < DW_GROUP ? N - n0 : DW_GROUP, ld = count * pq;
            float *dyg = scratch(0, K * ld);
            for (int64_t j = 0; j < count; j++)
                for (int64_t k = 0; k < K; k++)
                    memcpy(dyg + k * ld + j * pq, dy + ((n0 + j) * K + k) * pq, (size_t)pq * sizeof(float));
            gemm_pack_a_cpu(packed + g * group_floats, false, K, ld, dyg);
        }
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < parts; p++) {
            int64_t c0 = p * channels, c1 = c0 + channels < C ? c0 + channels : C;
            dw_part(dw, packed, group_floats, x, c0, c1, N, C, H, W, K, R, S, stride, pad, P, Q);
        }
    }
    return true;
}

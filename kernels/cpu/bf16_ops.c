// bf16_ops.c: the op table's bf16 convolutions (conv2d_forward_h, conv2d_backward_h with dtype
// bf16, and the fused conv + ReLU + pooling block of conv_pool_h.c) on the CPU's bf16 hardware,
// AMX tiles or AVX512-BF16 (bf16_gemm.c), called by amp.c and conv_pool_h.c when cg_cpu_bf16() is
// not the emulated path. The products (gemm_h, linear_forward_h) are bf16_products.c; "same"
// convolutions pack their operands and sum col2im without im2col in bf16_same.c; small planes
// with many weights (ResNet-18's layer3 and layer4) go to bf16_small.c first; one-channel 3 x 3
// convolutions (the tutorial's first layer) take their forward sums from bf16_direct.c's FMAs instead,
// the fused block's whole forward too. The fused block's dW comes from each pooling window's
// maximum where conv_direct_dw.c's window kernel is built (AVX-512 at compile time): one input
// channel on AMX and AVX512-BF16, whole vectors of them on AVX512-BF16; else, on AVX512-BF16, a
// first layer's from bf16_direct_dw.c. The fused block's unpooling in the other backwards is
// bf16_unpool.c; the columns (im2col) and the pooling epilogues, bf16_planes.c.
// The same policy as the emulated kernels: bf16 values multiplied exactly, sums in fp32, each
// stored result rounded to bf16 once; the sums run in another order (tests/test_bf16_cpu.c).
// One exception, on AVX512-BF16: y and dx of 3 x 3 "same" convolutions with 16 or more channels
// in and out (at most 256 together) come from Winograd's tiles (conv_winograd_bf16.c), 2.25 times
// fewer products of transformed filters and patches, which are sums rounded to bf16 once more
// (each product within 2^-7 of the exact one: test_bf16_winograd's bound; CGRAD_CPU_WINOGRAD=0 turns
// them off). There the fused block's dW takes two pooling windows a vdpbf16ps (conv_direct_dw_channels.c).
// The convolutions read and write bf16 directly: im2col in bf16, no widened copies of x or W.
// fp16 stays emulated (amp.c): these CPUs have no fp16 product with fp32 sums.
#include "kernels/cpu/bf16_direct.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_same.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdlib.h>
#include <string.h>

// Per-thread scratch (bf16_gemm.h: cg_bf16_scratch), slot `which`, at least n elements.
static uint16_t *scratch16(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 2); }
static float *scratch32(int which, int64_t n) { return cg_bf16_scratch(which, (n > 0 ? n : 1) * 4); }

// ---- convolutions -------------------------------------------------------------------------------
// As conv.c: a few images at a time (GROUP), groups shared out to the threads. Forward, one image
// at a time: out (K, PQ) = W (K, CRS) col (CRS, PQ). Backward: the group's columns side by side,
// (CRS, L) with L = count * PQ, and its output gradient dy_g as (K, L): dW^T (CRS, K) = col dy_g^T
// over the whole group, then dcol (CRS, PQ) = W^T dy_g one image at a time (each product's f32
// output then stays in the cache until its epilogue or col2im has read it).
#define GROUP 4



// Forward, optionally with ReLU and pooling (where != NULL: y is the pooled output).
static void conv_forward(cg_cpu_bf16_path path, uint16_t *y, uint8_t *where, const uint16_t *x, const uint16_t *w,
                         const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                         int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, pooled = (P / 2) * (Q / 2), groups = (N + GROUP - 1) / GROUP;
    uint16_t *Wp = scratch16(0, cg_bf16_packed_size(K, crs)); // the host thread's: read by all
    bool threads = groups > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    uint64_t *valid = NULL; // the "same" convolutions' bitsets (cg_bf16_pack_b_same), shared by the threads
    float *wf = NULL; // one-channel 3 x 3 (bf16_direct.c): the weights widened once, shared by the threads
    uint32_t *wp = NULL; // and in pairs, for the fused block
    const uint16_t *wu = NULL; // Winograd's transformed filters (conv_winograd_bf16.c), shared by the threads
#ifdef CG_CPU_MATRIX_KERNELS
    bool hw_round = path == CG_BF16_AVX512; // the epilogue's rounding by AVX512-BF16's instruction
    if (conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q)) {
        wu = conv2d_winograd_bf16_weights(w, K, C, false);
    } else if (cg_bf16_direct_fits(C, H, W, R, S, stride, pad, P, Q)) {
        wf = cg_xmalloc((size_t)(K * 9) * sizeof *wf);
        cg_bf16_direct_weights(wf, w, K, path);
    } else if (stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
    }
#endif
    if (!wf && !wu) cg_bf16_pack_a(Wp, w, crs, 1, K, crs); // the tile product's weights (the others read wf, wu)
#ifdef CG_CPU_MATRIX_KERNELS
    bool pooled_direct = wf && where && cg_bf16_direct_pool_fits(C, H, W, R, S, stride, pad, P, Q) &&
                         cg_bf16_direct_pool_ready(wf, bias, K); // the fused block in registers (bf16_direct.h)
    if (pooled_direct) { // its weights in pairs, for vdpbf16ps
        wp = cg_xmalloc((size_t)(K * 5) * sizeof *wp);
        cg_bf16_direct_pair_weights(wp, wf, K);
    }
#endif
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ldo = cg_whole16(pq);
#ifdef CG_CPU_MATRIX_KERNELS
        if (wu) { // the whole group at once, bias, rounding, ReLU and pooling in Winograd's output transform
            conv2d_winograd_bf16_images(y + n0 * K * (where ? pooled : pq), where ? where + n0 * K * pooled : NULL,
                                        bias, false, x + n0 * C * H * W, C * H * W, H * W, wu, count, C, K, H, W);
            continue;
        }
#endif
        uint16_t *col = scratch16(1, crs * pq), *colp = scratch16(2, cg_bf16_packed_size(pq, crs));
        float *out = scratch32(3, cg_whole16(K) * ldo); // one image's product at a time, rows ldo apart
        uint16_t *plane16 = where ? scratch16(5, pq) : NULL;
        float *col_max = where ? scratch32(6, pooled * 2) : NULL;
        int32_t *won = where ? (int32_t *)scratch32(7, pooled * 2) : NULL;
        // One image per product: its output (K, PQ) in f32 stays in the cache for the epilogue.
        for (int64_t j = 0; j < count; j++) {
#ifdef CG_CPU_MATRIX_KERNELS
            if (pooled_direct && cg_bf16_direct_relu_pool(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled,
                                                          x + (n0 + j) * H * W, wp, bias, K, H, W, path))
                continue; // bf16_direct.h: sums, epilogue and pooling in registers
            if (wf) // the same f32 rows, summed by FMAs: no packing, no 9-term reduction padded to 32
                cg_bf16_direct_sums(out, ldo, x + (n0 + j) * H * W, wf, K, H, W, path);
            else if (valid)
                cg_bf16_pack_b_same(colp, x + (n0 + j) * C * H * W, valid, C, H, W, R, S, pad);
            else
#endif
            {
                cg_bf16_im2col(col, pq, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_b(colp, col, pq, 1, crs, pq);
            }
            if (!wf) // (the direct sums have written `out` already)
                cg_bf16_gemm_packed(out, ldo, Wp, colp, K, pq, crs, path);
#ifdef CG_CPU_MATRIX_KERNELS
            if (where) { // always AVX-512 on the paths that reach this file
                if (hw_round)
                    cg_bf16_bias_relu_pool_bf16(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled, out, ldo, bias, K, P,
                                        Q);
                else
                    cg_bf16_bias_relu_pool(y + (n0 + j) * K * pooled, where + (n0 + j) * K * pooled, out, ldo, bias, K, P, Q);
                continue;
            }
#endif
            for (int64_t k = 0; k < K; k++) { // to NCHW, adding the bias, rounded to bf16 (then pooled)
                float b = bias ? cg_bf16_widen(bias[k]) : 0.0f;
                const float *src = out + k * ldo;
                int64_t plane = (n0 + j) * K + k;
                uint16_t *dst = where ? plane16 : y + plane * pq;
                for (int64_t i = 0; i < pq; i++) dst[i] = cg_bf16_round(src[i] + b);
                if (where)
                    cg_bf16_relu_pool_plane(y + plane * pooled, where + plane * pooled, plane16, P, Q, col_max, won);
            }
        }
    }
    free(valid);
    free(wf);
    free(wp);
}

bool cg_bf16_conv2d_forward_hw(uint16_t *y, const uint16_t *x, const uint16_t *w, const uint16_t *bias, int64_t N,
                               int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                               int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    // Small planes with many weights (ResNet-18's layer3 and layer4): groups of images a product
    // (bf16_small.c), unless Winograd's tiles take them
    if (!conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q) &&
        cg_bf16_small_forward(path, y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q))
        return true;
    conv_forward(path, y, NULL, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

bool cg_bf16_conv2d_relu_pool_forward_hw(uint16_t *y, uint8_t *where, const uint16_t *x, const uint16_t *w,
                                         const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                         int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_forward(path, y, where, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
    return true;
}

// f32 scratch of the host thread for the backward's accumulators (dx, the dW slices), kept
// between calls: slot 0 .. 2, from a 64-byte boundary (threads.h: cg_thread_buffer).
static float *host_f32(int which, int64_t n) {
    static cg_thread_buffer buffers[3];
    return cg_thread_floats_aligned(&buffers[which], n > 0 ? n : 1);
}

static void widen_array(float *dst, const uint16_t *src, int64_t n) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_widen(src[i]);
}

static void round_array(uint16_t *dst, const float *src, int64_t n) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_round(src[i]);
}

// Backward; y != NULL: the fused block's (dy pooled, y the pooled output, where its positions).
// accumulate false: dx written, its old contents never read (the sums start from 0 where they
// started from dx's old values: the same bits as adding to zeros).
static void conv_backward(cg_cpu_bf16_path path, uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q, bool accumulate) {
#ifdef CG_CPU_MATRIX_KERNELS
    // A one-channel first layer's dW by FMAs from each pooling window's maximum (conv_direct_dw_one_channel.c,
    // its windows in the lanes): the products of bf16 values are exact in f32, the sums f32, in
    // another order than the tiles' (whose bits no FMA sequence is known to give: bf16_direct.c)
    // or the pairs'; db's double sums are exact: the other paths' bits. On AMX the tile product
    // pads its 9 rows to a tile's 16 and multiplies every position, three in four of them by zero;
    // on AVX512-BF16, bf16_direct_dw.c's pairs ran this block's backward at 88 GFLOP/s where the
    // windows run it at 105 (bench_cpu_peak, AMD EPYC). Where the window kernel is not built (no
    // AVX-512 at compile time), AVX512-BF16 keeps bf16_direct_dw.c (next), the three ops' bits.
    // Where the CPU has AVX512-BF16 (every CPU with AMX has it too) the windows go two a vdpbf16ps
    // (the pairs' entry): the block's backward 192 -> 275-282 GFLOP/s (bench_cpu_peak, one Zen 5
    // core), where the f32 FMAs ran it slower than fp32's (223-233).
    if (y && !dx && (path == CG_BF16_AMX || path == CG_BF16_AVX512) && C == 1 &&
        conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q)) {
        float *dwf = dw ? host_f32(2, K * 9) : NULL;
        double *db_sums = dbias ? cg_xmalloc((size_t)K * sizeof(double)) : NULL;
        if (dwf) widen_array(dwf, dw, K * 9);
        if (cg_cpu_has_avx512_bf16() ? conv2d_relu_pool_dw_windows_pairs_bf16_cpu(dwf, db_sums, dy, y, where, x, N, C,
                                                                                  H, W, K, R, S, stride, pad, P, Q,
                                                                                  GROUP)
                                     : conv2d_relu_pool_dw_windows_bf16_cpu(dwf, db_sums, dy, y, where, x, N, C, H, W,
                                                                            K, R, S, stride, pad, P, Q, GROUP)) {
            if (dwf) round_array(dw, dwf, K * 9);
            for (int64_t k = 0; dbias && k < K; k++)
                dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)db_sums[k]);
            free(db_sums);
            return;
        }
        free(db_sums);
    }
    if (y && !dx && path == CG_BF16_AVX512 && cg_bf16_direct_dw_fits(C, H, W, K, R, S, stride, pad, P, Q)) {
        cg_bf16_direct_dw(dw, dbias, dy, y, where, x, N, H, W, K, GROUP); // bf16_direct.h: the same bits
        return;
    }
    // On AVX512-BF16, a fused block's dW with whole vectors of input channels (the tutorial's
    // second block, 32 -> 64) from each pooling window's maximum, as the f32 path takes it
    // (conv_direct_dw_channels.c, the input channels in the lanes): 9 multiply-adds per window, input and
    // output channel, where the dense product below does 36, three of four of them times zero.
    // Products of bf16 values are exact in f32; the sums are f32, window after window, so not the
    // dense product's bits (test_bf16_cpu holds them to its tolerance). dx and db then come from
    // the path below, without dW.
    if (y && dw && path == CG_BF16_AVX512 && C > 1 && C % 16 == 0 &&
        conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q)) {
        int64_t nw = K * C * R * S;
        float *dwf = host_f32(2, nw);
        widen_array(dwf, dw, nw);
        if ((C % 32 == 0 && conv2d_relu_pool_dw_windows_pairs_bf16_cpu(dwf, NULL, dy, y, where, x, N, C, H, W, K, R,
                                                                      S, stride, pad, P, Q, GROUP)) ||
            conv2d_relu_pool_dw_windows_bf16_cpu(dwf, NULL, dy, y, where, x, N, C, H, W, K, R, S, stride, pad, P, Q,
                                                 GROUP)) {
            round_array(dw, dwf, nw);
            dw = NULL;
        }
    }
#endif
    // Small planes with many weights (ResNet-18's layer3 and layer4): dW over the whole batch and
    // dx over groups of images, a part of the input channels at a time (bf16_small.c)
    if (!y && dw && cg_bf16_small_dw(path, dw, dy, x, N, C, H, W, K, R, S, stride, pad, P, Q)) dw = NULL;
    if (!y && dx && cg_bf16_small_dx(path, dx, dy, w, N, C, H, W, K, R, S, stride, pad, P, Q, accumulate)) dx = NULL;
    int64_t crs = C * R * S, pq = P * Q, groups = (N + GROUP - 1) / GROUP;
    bool threads = N > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    if (dbias && !y) { // as conv2d_backward_cpu: each channel's sum in double, in 16 lanes (position
                       // i in lane i % 16, the lanes then added in order), added to dbias in f32.
                       // One chain of dependent additions per channel took most of the CIFAR
                       // stem's bf16 backward (2 M values a batch of 32, about a value a cycle).
#pragma omp parallel for if (threads)
        for (int64_t k = 0; k < K; k++) {
            double lane[16] = {0};
            for (int64_t n = 0; n < N; n++) {
                const uint16_t *plane = dy + (n * K + k) * pq;
                int64_t i = 0;
                for (; i + 16 <= pq; i += 16)
                    for (int l = 0; l < 16; l++) lane[l] += cg_bf16_widen(plane[i + l]);
                for (int l = 0; i < pq; i++, l++) lane[l] += cg_bf16_widen(plane[i]);
            }
            double sum = 0.0;
            for (int l = 0; l < 16; l++) sum += lane[l];
            dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)sum);
        }
    }
    // Fused: the bias gradient is the sum of dy_g, taken per group while it is built (groups x K).
    double *bias_sums = dbias && y ? cg_xmalloc((size_t)(groups * K) * sizeof(double)) : NULL;
    if (dx == NULL && dw == NULL && bias_sums == NULL) return;
    // Each group's dW^T goes to a slice of its own, added in group order (the same sums on any
    // thread count). On one thread the groups come in order: each is added at once to the
    // running sums dwt (dW^T, widened first), the same additions in the same order, without
    // the slices (2.4 MB for the tutorial's second convolution) written out and read back.
    bool in_order = !threads || cg_get_num_threads() < 2;
    float *slices = dw && !in_order ? host_f32(1, groups * crs * K) : NULL;
    float *dwt = dw ? host_f32(2, K * crs) : NULL;
    if (dw && in_order)
        for (int64_t i = 0; i < crs; i++)
            for (int64_t k = 0; k < K; k++) dwt[i * K + k] = cg_bf16_widen(dw[k * crs + i]);
    // dx of a 3 x 3 "same" convolution by Winograd's tiles on AVX512-BF16, as the forward
    // (conv_winograd_bf16.c): the turned filters transformed once, read by every thread
    const uint16_t *wdx = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if (dx && conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q))
        wdx = conv2d_winograd_bf16_weights(w, K, C, true);
#endif
    uint16_t *Wtp = NULL;
    if (dx && !wdx) { // W^T (CRS, K) packed once, read by every thread
        Wtp = scratch16(0, cg_bf16_packed_size(crs, K));
        cg_bf16_pack_a(Wtp, w, 1, crs, crs, K);
    }
    uint64_t *valid = NULL; // as in the forward: cg_bf16_pack_a_same's bitsets
    uint16_t *c2i_masks = NULL; // cg_bf16_col2im_same's masks and shifts
    int64_t *c2i_shifts = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if ((dw || (dx && !wdx)) && stride == 1 && P == H && Q == W) {
        valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
        cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
        if (dx && !wdx) {
            c2i_masks = cg_xmalloc((size_t)(R * S * ((H * W + 15) / 16) * 2) * sizeof *c2i_masks);
            c2i_shifts = cg_xmalloc((size_t)(R * S) * sizeof *c2i_shifts);
            cg_bf16_col2im_masks(c2i_masks, c2i_shifts, valid, H, W, R, S, pad);
        }
    }
#endif
    // dx accumulates in f32 (its old value widened) and is rounded once at the end: in dxf,
    // whole, around the loop; or, with cg_bf16_col2im_same, in its registers, one image's 16 positions
    // at a time (each image's dx receives one col2im): no f32 copy of dx, no pass over it
    // before and after the loop (each another parallel loop, another wake-up of the thread).
    float *dxf = dx && !c2i_masks && !wdx ? host_f32(0, N * C * H * W) : NULL;
    if (dxf && accumulate) widen_array(dxf, dx, N * C * H * W);
    else if (dxf) memset(dxf, 0, (size_t)(N * C * H * W) * sizeof *dxf);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, L = count * pq;
        if (c2i_masks && !accumulate) // cg_bf16_col2im_same adds to dx: its images zeroed first
            memset(dx + n0 * C * H * W, 0, (size_t)(count * C * H * W) * sizeof *dx);
        uint16_t *dyg = scratch16(1, K * L);
        cg_bf16_fill_dyg(dyg, dy, y, where, bias_sums ? bias_sums + g * K : NULL, n0, count, K, P, Q);
        if (dw) {
            int64_t ldc = cg_whole16(K);
            float *acc = scratch32(4, cg_whole16(crs) * ldc);
#ifdef CG_CPU_MATRIX_KERNELS
            if (valid) { // A packed 16 rows at a time into a block row that stays in the L1 cache
                // (bf16_same.c), each multiplied at once: the same products, row block by row block
                uint16_t *dyp = scratch16(2, cg_bf16_packed_size(K, L));
                cg_bf16_pack_b(dyp, dyg, 1, L, L, K); // B (L, K) = dy_g^T
                uint64_t *work = (uint64_t *)scratch32(5, 2 * cg_bf16_pack_a_same_work(count, H, W, R, S));
                cg_bf16_pack_a_same_plan(work, count, valid, C, H, W, R, S);
                uint16_t *rows = scratch16(3, cg_bf16_packed_size(16, L));
                for (int64_t m0 = 0; m0 < crs; m0 += 16) {
                    cg_bf16_pack_a_same(rows, x + n0 * C * H * W, work, m0, m0 + 16, count, C, H, W, R, S, pad);
                    cg_bf16_gemm_packed(acc + m0 * ldc, ldc, rows, dyp, crs - m0 < 16 ? crs - m0 : 16, K, L, path);
                }
            } else
#endif
            {
                uint16_t *colp = scratch16(3, cg_bf16_packed_size(crs, L));
                uint16_t *col = scratch16(2, crs * L);
                for (int64_t j = 0; j < count; j++)
                    cg_bf16_im2col(col + j * pq, L, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
                cg_bf16_pack_a(colp, col, L, 1, crs, L);
                uint16_t *dyp = scratch16(2, cg_bf16_packed_size(K, L)); // col is packed: its buffer is free
                cg_bf16_pack_b(dyp, dyg, 1, L, L, K);                      // B (L, K) = dy_g^T
                cg_bf16_gemm_packed(acc, ldc, colp, dyp, crs, K, L, path);
            }
            if (in_order)
                for (int64_t i = 0; i < crs; i++)
                    for (int64_t k = 0; k < K; k++) dwt[i * K + k] += acc[i * ldc + k];
            else
                for (int64_t i = 0; i < crs; i++)
                    memcpy(slices + g * crs * K + i * K, acc + i * ldc, (size_t)K * sizeof(float));
        }
#ifdef CG_CPU_MATRIX_KERNELS
        if (wdx) { // the group's dx from dy_g (image j's channel k at dyg + k L + j PQ), each sum
            // added to its old value and rounded once in the output transform, as col2im's
            conv2d_winograd_bf16_images(dx + n0 * C * H * W, NULL, NULL, accumulate, dyg, pq, L, wdx, count, K, C, H,
                                        W);
            continue;
        }
#endif
        // dx one image at a time: dcol (CRS, PQ) in f32 is the largest thing written, and it
        // should stay in the cache until col2im has read it.
        for (int64_t j = 0; dx && j < count; j++) {
            int64_t ldc = cg_whole16(pq);
            uint16_t *dyp = scratch16(2, cg_bf16_packed_size(pq, K));
            cg_bf16_pack_b(dyp, dyg + j * pq, L, 1, K, pq); // B (K, PQ) = image j's columns of dy_g
            float *dcol = scratch32(4, cg_whole16(crs) * ldc);
            cg_bf16_gemm_packed(dcol, ldc, Wtp, dyp, crs, pq, K, path);
#ifdef CG_CPU_MATRIX_KERNELS
            if (c2i_masks) {
                cg_bf16_col2im_same(dx + (n0 + j) * C * H * W, dcol, ldc, c2i_masks, c2i_shifts, C, H, W, R, S);
                continue;
            }
#endif
            conv_col2im_image_cpu(dxf + (n0 + j) * C * H * W, dcol, ldc, C, H, W, R, S, stride, pad, P, Q);
        }
    }
    free(valid);
    free(c2i_masks);
    free(c2i_shifts);
    if (bias_sums) {
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) sum += bias_sums[g * K + k];
            dbias[k] = cg_bf16_round(cg_bf16_widen(dbias[k]) + (float)sum);
        }
        free(bias_sums);
    }
    if (dxf) round_array(dx, dxf, N * C * H * W);
    if (dw && in_order) // the sums are whole: rounded once
        for (int64_t i = 0; i < crs; i++)
            for (int64_t k = 0; k < K; k++) dw[k * crs + i] = cg_bf16_round(dwt[i * K + k]);
    if (dw && !in_order) { // dw (K, CRS) += slice 0, slice 1, ... (each (CRS, K)), in f32, rounded once
        // In the slices' layout, dW^T, one row i of CRS at a time: each slice's row is then read
        // in order (not K floats apart), the rows shared out to the threads; every element still
        // receives its terms in group order, the same sums on any number of threads.
        // On the threads only when there is enough to add: the first convolution's (9 x 32 per
        // group in the tutorial CNN) takes less time than waking the sleeping thread.
#pragma omp parallel for if (threads && groups * crs * K >= CG_OMP_MIN_WORK)
        for (int64_t i = 0; i < crs; i++) {
            float *row = dwt + i * K;
            for (int64_t k = 0; k < K; k++) row[k] = cg_bf16_widen(dw[k * crs + i]);
            for (int64_t g = 0; g < groups; g++) {
                const float *slice = slices + g * K * crs + i * K;
                for (int64_t k = 0; k < K; k++) row[k] += slice[k];
            }
            for (int64_t k = 0; k < K; k++) dw[k * crs + i] = cg_bf16_round(row[k]);
        }
    }
}

bool cg_bf16_conv2d_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy, const uint16_t *x,
                                const uint16_t *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_backward(path, dx, dw, dbias, dy, NULL, NULL, x, w, N, C, H, W, K, R, S, stride, pad, P, Q, true);
    return true;
}

bool cg_bf16_conv2d_relu_pool_backward_hw(uint16_t *dx, uint16_t *dw, uint16_t *dbias, const uint16_t *dy,
                                          const uint16_t *y, const uint8_t *where, const uint16_t *x, const uint16_t *w,
                                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                          int64_t stride, int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    cg_cpu_bf16_path path = cg_cpu_bf16();
    if (path == CG_BF16_EMULATED) return false;
    conv_backward(path, dx, dw, dbias, dy, y, where, x, w, N, C, H, W, K, R, S, stride, pad, P, Q, accumulate);
    return true;
}

// bf16_small.c: bf16 convolutions on small planes with many weights (ResNet-18's layer3 and
// layer4: 8 x 8 and 4 x 4 on CIFAR's images, 7 x 7 on ImageNet's), on the CPU's bf16 hardware
// (bf16_gemm.c). bf16_ops.c's forward and backward call it before their groups of images.
//
// Why: those general paths take the batch 4 images at a time, and their products one image at a
// time where they can, which keeps a large plane's f32 output in the cache. On small planes that
// makes narrow products: the forward multiplied W (K, C*R*S) by one image's 16 columns on CIFAR's
// layer4, streaming the packed W (4.7 MB) from memory once per image. For dW, each group's product
// dW^T (C*R*S, K) = col dy^T sums over the group's 4 P Q positions only (64 on CIFAR's layer4)
// and writes the whole of dW^T in f32 (9.4 MB for layer4), which is then added to the running
// sums: per group, 64 multiply-adds an element against 16 bytes through memory. For dx it
// multiplies W^T (C*R*S, K) by one image's dy at a time (16 columns on CIFAR's layer4), streaming
// the packed W^T (4.7 MB) from memory once per image. So CIFAR's layer4 backward ran at 134
// GFLOP/s, a quarter of vdpbf16ps's peak (bench_cpu_peak, one thread, AMD EPYC Zen 5).
//
// The forward here takes groups of images side by side, about GROUP_COLUMNS positions, one
// product each ("same" convolutions pack each image's columns straight from the image: see
// cg_bf16_small_forward): the same sums, so the same bits, as one image at a time (a column's sum
// does not depend on the columns beside it). For the backward, as the f32 path's conv_dw.c and
// conv_dx.c do, the threads split the input channels: each part is disjoint rows of dW^T and
// planes of dx, so no slices, and the same sums on any number of threads.
// - dW: a part's columns (its rows of col) over a span of images, SPAN_POSITIONS positions at
//   most, times the span's dy^T (packed once, read by every part); the spans' products added in
//   order in f32, then to dW's old value, rounded once.
// - dx: a part's rows of W^T (packed by its thread, kept in the cache) times each group's dy
//   (packed once, about GROUP_COLUMNS positions), folded into the part's planes of dx (col2im;
//   in registers for "same" convolutions, bf16_same.c) from dx's old value (or 0: `accumulate`),
//   rounded once.
// Products of bf16 values are exact in f32 and the sums are f32 (autocast's rule); they run in
// another order than the general path's, so not its bits (tests/test_bf16_cpu.c holds both to
// its tolerance and checks these against themselves on 1 and 2 threads).
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_same.h"

#include "core/common.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <string.h>

// Positions per span of dW's products (whole images): dy^T's part of a span for 48 output
// channels (the product's register tile: bf16_gemm.c) is 48 x 2048 x 2 bytes, 192 KB, and stays
// in the second-level cache while the part's rows go by.
#define SPAN_POSITIONS 2048
// Rows of col (dW) or of W^T (dx) per part: about this many (16 input channels of a 3 x 3
// kernel), whole input channels.
#define PART_ROWS 144
// The forward's and dx's groups of images: about this many positions (the product's columns), as
// conv_dx.c.
#define GROUP_COLUMNS 384
// Planes of at most this many positions, and convolutions with at least this many weights (a
// group's f32 dW^T of 512 KB): CIFAR ResNet-18's layer3 and layer4 and their first, strided,
// convolutions, and layer4's shortcut.
#define SMALL_POSITIONS 256
#define SMALL_WEIGHTS (128 * 1024)

// This file's buffers, one set per thread (threads.h: each kernel file keeps its own).
static void *buffer(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[6];
    return cg_thread_buffer_get(&buffers[which], bytes > 0 ? bytes : 1);
}

bool cg_bf16_small_takes(int64_t C, int64_t K, int64_t R, int64_t S, int64_t P, int64_t Q) {
    return P * Q <= SMALL_POSITIONS && K >= 16 && K * C * R * S >= SMALL_WEIGHTS && R * S <= PART_ROWS;
}

// Input channels per part: about PART_ROWS rows, at least one channel.
static int64_t part_channels(int64_t R, int64_t S) { return PART_ROWS / (R * S) > 1 ? PART_ROWS / (R * S) : 1; }

#ifdef CG_CPU_MATRIX_KERNELS
// The "same" convolution's bitsets of valid positions (bf16_same.h), malloc'd.
static uint64_t *same_valid(int64_t H, int64_t W, int64_t R, int64_t S, int64_t pad) {
    uint64_t *valid = cg_xmalloc((size_t)(R * S * cg_bf16_same_valid_words(H, W)) * sizeof *valid);
    cg_bf16_same_valid_positions(valid, H, W, R, S, pad);
    return valid;
}
#endif

// Inside a parallel region, shared out to its threads: for each group of `per` images (the last
// one shorter), their dy side by side, (K, L), packed as a product's B at dst + g size, dy^T
// (B (L, K): dW's) when transposed, else dy itself (B (K, L): dx's).
static void pack_dy_groups(uint16_t *dst, int64_t size, const uint16_t *dy, int64_t per, int64_t N, int64_t K,
                           int64_t P, int64_t Q, bool transposed) {
    int64_t groups = (N + per - 1) / per;
#pragma omp for schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * per, count = N - n0 < per ? N - n0 : per, L = count * P * Q;
        uint16_t *dyg = buffer(1, K * L * (int64_t)sizeof(uint16_t));
        cg_bf16_fill_dyg(dyg, dy, NULL, NULL, NULL, n0, count, K, P, Q);
        if (transposed)
            cg_bf16_pack_b(dst + g * size, dyg, 1, L, L, K);
        else
            cg_bf16_pack_b(dst + g * size, dyg, L, 1, K, L);
    }
}

bool cg_bf16_small_forward(cg_cpu_bf16_path path, uint16_t *y, const uint16_t *x, const uint16_t *w,
                           const uint16_t *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                           int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q;
    // "Same" convolutions of stride 1 pack each image's columns straight from the image
    // (bf16_same.c), an image whose positions are whole blocks of 16 columns being a run of whole
    // blocks of the group's packed B. Through im2col and a packing of the whole group instead,
    // the wider product lost more than it gained (bench_cpu_peak, one thread, AMD EPYC Zen 5:
    // CIFAR's layer4 forward 291 -> 239 GFLOP/s, layer3 403 -> 351); packed from the images,
    // 422 and 456.
    bool same = stride == 1 && P == H && Q == W;
    if (path == CG_BF16_EMULATED || !cg_bf16_small_takes(C, K, R, S, P, Q)) return false;
#ifdef CG_CPU_MATRIX_KERNELS
    uint64_t *valid = NULL;
    if (same && pq % 16 == 0)
        valid = same_valid(H, W, R, S, pad);
    else if (same)
        return false;
#else
    if (same) return false;
#endif
    int64_t per_group = GROUP_COLUMNS / pq > 1 ? GROUP_COLUMNS / pq : 1;
    int64_t threads_n = cg_get_num_threads(), per_thread = (N + threads_n - 1) / threads_n;
    per_group = per_group < per_thread ? per_group : per_thread; // a group for each thread at least
    per_group = cg_even_group(N, per_group);                     // of even sizes (cpu.h)
    int64_t groups = (N + per_group - 1) / per_group, ldo = cg_whole16(per_group * pq);
    uint16_t *wp = buffer(0, cg_bf16_packed_size(K, crs) * (int64_t)sizeof(uint16_t)); // read by every group
    cg_bf16_pack_a(wp, w, crs, 1, K, crs);
    bool threads = groups > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * per_group, count = N - n0 < per_group ? N - n0 : per_group, L = count * pq;
        uint16_t *colp = buffer(2, cg_bf16_packed_size(L, crs) * (int64_t)sizeof(uint16_t));
        float *out = buffer(3, cg_whole16(K) * ldo * (int64_t)sizeof(float));
#ifdef CG_CPU_MATRIX_KERNELS
        if (valid) // each image's blocks of columns, packed from the image
            for (int64_t j = 0; j < count; j++)
                cg_bf16_pack_b_same(colp + j * cg_bf16_packed_size(pq, crs), x + (n0 + j) * C * H * W, valid, C, H,
                                    W, R, S, pad);
        else
#endif
        {
            uint16_t *col = buffer(1, crs * L * (int64_t)sizeof(uint16_t));
            for (int64_t j = 0; j < count; j++) // the group's columns side by side, (C R S, L)
                cg_bf16_im2col(col + j * pq, L, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
            cg_bf16_pack_b(colp, col, L, 1, crs, L);
        }
        cg_bf16_gemm_packed(out, ldo, wp, colp, K, L, crs, path); // out (K, L) = W col
        for (int64_t j = 0; j < count; j++) // to NCHW, adding the bias, rounded to bf16
            for (int64_t k = 0; k < K; k++) {
                float b = bias ? cg_bf16_widen(bias[k]) : 0.0f;
                const float *src = out + k * ldo + j * pq;
                uint16_t *dst = y + ((n0 + j) * K + k) * pq;
                for (int64_t i = 0; i < pq; i++) dst[i] = cg_bf16_round(src[i] + b);
            }
    }
#ifdef CG_CPU_MATRIX_KERNELS
    free(valid);
#endif
    return true;
}

bool cg_bf16_small_dw(cg_cpu_bf16_path path, uint16_t *dw, const uint16_t *dy, const uint16_t *x, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                      int64_t P, int64_t Q) {
    int64_t crs = C * R * S, rs = R * S, pq = P * Q;
    if (path == CG_BF16_EMULATED || !cg_bf16_small_takes(C, K, R, S, P, Q)) return false;
    int64_t per_span = SPAN_POSITIONS / pq > 1 ? SPAN_POSITIONS / pq : 1;
    per_span = per_span < N ? per_span : N;
    int64_t spans = (N + per_span - 1) / per_span, span_size = cg_bf16_packed_size(K, per_span * pq);
    int64_t channels = part_channels(R, S), parts = (C + channels - 1) / channels, ldc = cg_whole16(K);
    // Every span's dy^T (positions, K) packed as the product's B, one after the other: made by the
    // threads before the parts start, read by all of them (the calling thread's buffer).
    uint16_t *dyt = buffer(0, spans * span_size * (int64_t)sizeof(uint16_t));
    // "Same" convolutions of stride 1: a part's columns packed straight from the images
    // (bf16_same.c's cg_bf16_pack_a_same), without im2col's copy in between, where every part
    // starts on a block of 16 rows, as that packing asks (3 x 3 and 1 x 1 kernels: parts of 144
    // rows; a 5 x 5 kernel's parts of 125 rows take im2col).
    uint64_t *valid = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if (stride == 1 && P == H && Q == W && channels * rs % 16 == 0) valid = same_valid(H, W, R, S, pad);
#endif
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel if (threads)
    {
        pack_dy_groups(dyt, span_size, dy, per_span, N, K, P, Q, true);
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < parts; p++) {
            int64_t c0 = p * channels, c1 = c0 + channels < C ? c0 + channels : C, rows = (c1 - c0) * rs;
            float *sum = buffer(2, cg_whole16(rows) * ldc * (int64_t)sizeof(float));
            float *span_sum = buffer(3, cg_whole16(rows) * ldc * (int64_t)sizeof(float));
            uint16_t *colp = buffer(5, cg_bf16_packed_size(rows, per_span * pq) * (int64_t)sizeof(uint16_t));
            for (int64_t s = 0; s < spans; s++) {
                int64_t n0 = s * per_span, count = N - n0 < per_span ? N - n0 : per_span, L = count * pq;
#ifdef CG_CPU_MATRIX_KERNELS
                if (valid) { // rows c0 R S .. of the span's columns (the rows past `rows` in the last block unused)
                    uint64_t *work = buffer(4, cg_bf16_pack_a_same_work(count, H, W, R, S) * (int64_t)sizeof(uint64_t));
                    cg_bf16_pack_a_same_plan(work, count, valid, C, H, W, R, S);
                    cg_bf16_pack_a_same(colp, x + n0 * C * H * W, work, c0 * rs, c0 * rs + rows, count, C, H, W, R, S,
                                        pad);
                } else
#endif
                {
                    uint16_t *col = buffer(4, rows * L * (int64_t)sizeof(uint16_t));
                    for (int64_t j = 0; j < count; j++) // the part's rows of the span's columns, (rows, L)
                        cg_bf16_im2col(col + j * pq, L, x + ((n0 + j) * C + c0) * H * W, c1 - c0, H, W, R, S, stride,
                                       pad, P, Q);
                    cg_bf16_pack_a(colp, col, L, 1, rows, L);
                }
                // the first span's product into sum, each later one into span_sum, then added
                cg_bf16_gemm_packed(s == 0 ? sum : span_sum, ldc, colp, dyt + s * span_size, rows, K, L, path);
                if (s > 0)
                    for (int64_t i = 0; i < rows; i++)
                        for (int64_t k = 0; k < K; k++) sum[i * ldc + k] += span_sum[i * ldc + k];
            }
            for (int64_t k = 0; k < K; k++) { // dW (K, CRS): its columns c0 R S .. c1 R S - 1, rounded once
                uint16_t *row = dw + k * crs + c0 * rs;
                for (int64_t i = 0; i < rows; i++) row[i] = cg_bf16_round(cg_bf16_widen(row[i]) + sum[i * ldc + k]);
            }
        }
    }
    free(valid);
    return true;
}

bool cg_bf16_small_dx(cg_cpu_bf16_path path, uint16_t *dx, const uint16_t *dy, const uint16_t *w, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                      int64_t P, int64_t Q, bool accumulate) {
    int64_t crs = C * R * S, rs = R * S, pq = P * Q, hw = H * W;
    if (path == CG_BF16_EMULATED || !cg_bf16_small_takes(C, K, R, S, P, Q) ||
        conv2d_winograd_bf16_takes(path, C, H, W, K, R, S, stride, pad, P, Q))
        return false;
    int64_t per_group = cg_even_group(N, GROUP_COLUMNS / pq);
    int64_t groups = (N + per_group - 1) / per_group, group_size = cg_bf16_packed_size(per_group * pq, K);
    int64_t channels = part_channels(R, S), parts = (C + channels - 1) / channels, ldc = cg_whole16(per_group * pq);
    // Every group's dy (K, L) packed as the product's B, one after the other (read by every part).
    uint16_t *dyp = buffer(0, groups * group_size * (int64_t)sizeof(uint16_t));
    // "Same" convolutions of stride 1 fold their columns back in registers (bf16_same.c's
    // cg_bf16_col2im_same: from dx's old value, rounded once), without the f32 planes below.
    uint16_t *masks = NULL;
    int64_t *shifts = NULL;
#ifdef CG_CPU_MATRIX_KERNELS
    if (stride == 1 && P == H && Q == W) {
        uint64_t *valid = same_valid(H, W, R, S, pad);
        masks = cg_xmalloc((size_t)(R * S * ((hw + 15) / 16) * 2) * sizeof *masks);
        shifts = cg_xmalloc((size_t)(R * S) * sizeof *shifts);
        cg_bf16_col2im_masks(masks, shifts, valid, H, W, R, S, pad);
        free(valid);
    }
#endif
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel if (threads)
    {
        pack_dy_groups(dyp, group_size, dy, per_group, N, K, P, Q, false);
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < parts; p++) {
            int64_t c0 = p * channels, c1 = c0 + channels < C ? c0 + channels : C, rows = (c1 - c0) * rs;
            // the part's rows of W^T: A (i, k) = w[k][c0 R S + i]
            uint16_t *wtp = buffer(2, cg_bf16_packed_size(rows, K) * (int64_t)sizeof(uint16_t));
            cg_bf16_pack_a(wtp, w + c0 * rs, 1, crs, rows, K);
            float *dcol = buffer(3, cg_whole16(rows) * ldc * (int64_t)sizeof(float));
            float *planes = buffer(4, (c1 - c0) * hw * (int64_t)sizeof(float)); // one image's part of dx, in f32
            for (int64_t g = 0; g < groups; g++) {
                int64_t n0 = g * per_group, count = N - n0 < per_group ? N - n0 : per_group, L = count * pq;
                cg_bf16_gemm_packed(dcol, ldc, wtp, dyp + g * group_size, rows, L, K, path); // dcol = W^T dy_g
                for (int64_t j = 0; j < count; j++) {
                    uint16_t *dxn = dx + ((n0 + j) * C + c0) * hw;
#ifdef CG_CPU_MATRIX_KERNELS
                    if (masks) {
                        if (!accumulate) memset(dxn, 0, (size_t)((c1 - c0) * hw) * sizeof *dxn);
                        cg_bf16_col2im_same(dxn, dcol + j * pq, ldc, masks, shifts, c1 - c0, H, W, R, S);
                        continue;
                    }
#endif
                    for (int64_t i = 0; i < (c1 - c0) * hw; i++) planes[i] = accumulate ? cg_bf16_widen(dxn[i]) : 0.0f;
                    conv_col2im_image_cpu(planes, dcol + j * pq, ldc, c1 - c0, H, W, R, S, stride, pad, P, Q);
                    for (int64_t i = 0; i < (c1 - c0) * hw; i++) dxn[i] = cg_bf16_round(planes[i]);
                }
            }
        }
    }
    free(masks);
    free(shifts);
    return true;
}

// conv.c: convolution (im2col + GEMM, a few images at a time) and the fused conv + ReLU + 2x2 max
// pooling block on the CPU (the pooling ops alone are pool.c's). The GEMM is gemm.c's own
// (gemm_engine_cpu, or gemm_prepacked_cpu with the weights packed once per call). Some shapes
// leave it for their own kernels (conv_parts.h): a first layer on the image (conv_stem.c), a
// large dW (conv_dw.c), the y and dx of 3 x 3 "same" convolutions of even sides (Winograd's
// algorithm, conv_winograd.c); and, in the fused block, the first layer's forward
// (conv_direct.c) and the dW of 3 x 3 "same" convolutions from the pooling windows' maxima
// (conv_direct_dw.c, cpu.h).
// OpenMP over groups of images or over planes, serial when small (see elementwise.c for why).
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/transpose.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vec8.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

// A buffer of at least `floats` floats for this thread, kept between calls.
static float *scratch(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[4];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// The weights packed once per call for the GEMM (gemm_pack_a_cpu): W for the forward, W^T for
// the backward's dx, which every group of images and every block of rows then reads as they are.
// Packed by the calling thread before its threads start, read by all of them.
static const float *pack_weights(int which, bool trans, int64_t M, int64_t K, const float *w) {
    static _Thread_local cg_thread_buffer packed[2];
    float *wp = cg_thread_floats_aligned(&packed[which], gemm_packed_a_floats(M, K));
    gemm_pack_a_cpu(wp, trans, M, K, w);
    return wp;
}

// A few images at a time (GROUP): their columns sit side by side, (C*R*S, GROUP*P*Q), so that
// one GEMM covers the group. For the tutorial CNN's second layer that is 288 x 784 floats
// (0.9 MB), which stays in the core's cache between im2col and the GEMM, where a whole batch's
// columns would stream through memory, and the GEMM is large enough to run near the core's
// peak. Groups are handed out to the OpenMP threads as they free up; inside the parallel region
// each GEMM runs on its thread alone.
#define GROUP 4

// Per group: the columns of images n0 .. n0+count-1 into col, then out (K, count*PQ) = W col.
static void group_forward(float *out, float *col, const float *x, const float *w, const float *wp, int64_t n0,
                          int64_t count,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                          int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, ld = count * pq;
    for (int64_t j = 0; j < count; j++)
        im2col_image(col + j * pq, ld, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
    // out (K, count*PQ) = W (K, CRS) col (the engine's GEMM: see group_backward; wp: W packed)
    gemm_prepacked_cpu(false, w, wp, false, K, ld, crs, 1.0f, col, 0.0f, out);
}

// An image whose columns take more than this many floats (512 KB: ResNet-18's 3 x 3 layers on
// 32 x 32 images and up) and that has at least 2 x ROWS_POSITIONS output positions is convolved
// a few output rows at a time instead (forward_rows): its whole columns (9.4 MB for a 64-channel
// layer at 56 x 56) would go through memory between im2col and the GEMM, which then ran at 20 to
// 30 % of the peak (45 % in blocks of rows). Smaller planes (14 x 14 and less) stay in groups of
// images: one image's few positions would make the GEMM too narrow.
#define COLUMNS_IN_CACHE (128 * 1024)
// The forward's groups of small planes: about this many columns (positions) per product.
#define FORWARD_COLUMNS 400
// Output positions per block of rows: at least this many (the GEMM's columns: 8 of its panels).
#define ROWS_POSITIONS 256
// The weight gradient's spans of positions (group_dw_spans): their columns at most this many
// floats (512 KB) where a whole block of the GEMM's K allows.
#define DW_SPAN_FLOATS (128 * 1024)

// Output rows per block: at least ROWS_POSITIONS positions, and if a few more rows make it so,
// a multiple of 16 positions (whole vectors): the GEMM then reads the columns where im2col wrote
// them, where it would otherwise copy them into rows of whole vectors first (ResNet-18's layer1,
// 56 positions a row: 5 rows are 280 positions, 6 rows 336; the copy took 15 % of its forward).
static int64_t block_rows(int64_t P, int64_t Q) {
    int64_t rows = Q >= ROWS_POSITIONS ? 1 : (ROWS_POSITIONS + Q - 1) / Q;
    for (int64_t r = rows; r < 2 * rows && r <= P; r++)
        if (r * Q % 16 == 0) return r;
    return rows;
}

// Rows p0 .. p1-1 of image n's output: their columns, out (K, (p1-p0)*Q) = W col, then to NCHW
// with the bias. The same sums as the whole image's: each output is the same dot product.
static void forward_rows(float *y, const float *x, const float *w, const float *wp, const float *bias, int64_t n,
                         int64_t p0,
                         int64_t p1, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                         int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, ld = (p1 - p0) * Q;
    float *col = scratch(0, crs * ld), *out = scratch(1, K * ld);
    im2col_rows(col, ld, x + n * C * H * W, C, H, W, R, S, stride, pad, P, Q, p0, p1);
    gemm_prepacked_cpu(false, w, wp, false, K, ld, crs, 1.0f, col, 0.0f, out);
    for (int64_t k = 0; k < K; k++) {
        float b = bias ? bias[k] : 0.0f, *dst = y + (n * K + k) * P * Q + p0 * Q;
        const float *src = out + k * ld;
        for (int64_t i = 0; i < ld; i++) dst[i] = src[i] + b;
    }
}

void conv2d_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                        int64_t Q) {
    // A first layer (3 channels in, 64 out: ResNet-18's stem) directly, its image read in place (conv_stem.c)
    if (conv2d_stem_forward_cpu(y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    // A 3 x 3 "same" convolution of even sides: Winograd's F(2 x 2, 3 x 3) (conv_winograd.c)
    if (conv2d_winograd_forward_cpu(y, NULL, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    int64_t crs = C * R * S, pq = P * Q, groups = (N + GROUP - 1) / GROUP;
    const float *wp = pack_weights(0, false, K, crs, w);
    if (crs * pq > COLUMNS_IN_CACHE && pq >= 2 * ROWS_POSITIONS) { // large images: blocks of rows (COLUMNS_IN_CACHE)
        int64_t rows = block_rows(P, Q), blocks = (P + rows - 1) / rows;
        bool threads = N * blocks > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
        for (int64_t t = 0; t < N * blocks; t++) {
            int64_t n = t / blocks, p0 = t % blocks * rows, p1 = p0 + rows < P ? p0 + rows : P;
            forward_rows(y, x, w, wp, bias, n, p0, p1, C, H, W, K, R, S, stride, pad, P, Q);
        }
        return;
    }
    // Small planes: as many images per product as make about FORWARD_COLUMNS columns (all 8 of
    // ResNet-18's layer4 batch, 392 positions), but at least GROUP, and enough groups for the
    // threads. The packed weights (9.4 MB for layer4) then stream from memory once per call
    // instead of once per group of 4, and the last, partly used column panel of 32 is a smaller
    // part of the product (layer4: 57 % of the peak with groups of 4, 59 % of 8). Each output is
    // the same dot product whatever the group (a product of one column, a matrix-vector product
    // summed in another order, only arises with one position: those keep GROUP): the same bits.
    int64_t per_thread = (N + cg_get_num_threads() - 1) / cg_get_num_threads(), fgroup = FORWARD_COLUMNS / pq;
    fgroup = fgroup < per_thread ? fgroup : per_thread;
    fgroup = fgroup > GROUP && pq > 1 ? cg_even_group(N, fgroup) : GROUP; // (groups of even sizes: cpu.h)
    // An image of whole column panels, ROWS_POSITIONS or more (CIFAR's 16 x 16 planes: 8 panels of
    // 32), is a product of its own, written straight into y, where a group's product went to a
    // buffer and was copied to NCHW after: the copy took 10 % of the layer2 shortcut's forward (1 x 1:
    // 64 multiply-adds an output). The same dot products: the same bits.
    bool straight = pq % CG_GEMM_PANEL == 0 && pq >= ROWS_POSITIONS;
    if (straight) fgroup = 1;
    groups = (N + fgroup - 1) / fgroup;
    bool threads = groups > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        // The columns' rows rounded up to whole vectors (zeros past the positions: 392 to 400),
        // which the product then reads in place (ResNet-18's layer4 copied them first: 5 % of its
        // forward); out has as many columns, the last few unused.
        int64_t n0 = g * fgroup, count = N - n0 < fgroup ? N - n0 : fgroup, used = count * pq;
        int64_t ld = used > 1 ? (used + 15) / 16 * 16 : 1; // (one column: the matrix-vector product, as before)
        float *out = straight ? y + n0 * K * pq : scratch(1, K * ld);
        // the columns a block of the GEMM's K at a time, kept in the cache (conv_small.c)
        if (!conv2d_small_product_cpu(out, scratch(0, CG_GEMM_KC * ld), x, w, wp, n0, count, ld, C, H, W, K, R, S,
                                      stride, pad, P, Q)) {
            float *col = scratch(0, crs * ld);
            for (int64_t j = 0; j < count; j++)
                im2col_image(col + j * pq, ld, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
            if (ld > used)
                for (int64_t i = 0; i < crs; i++) memset(col + i * ld + used, 0, (size_t)(ld - used) * sizeof(float));
            gemm_prepacked_cpu(false, w, wp, false, K, ld, crs, 1.0f, col, 0.0f, out);
        }
        if (straight) { // already in y: the bias added in place, from the cache
            for (int64_t k = 0; bias && k < K; k++)
                for (int64_t i = 0; i < pq; i++) out[k * pq + i] += bias[k];
            continue;
        }
        for (int64_t j = 0; j < count; j++) // to NCHW, adding the bias
            for (int64_t k = 0; k < K; k++) {
                float b = bias ? bias[k] : 0.0f;
                const float *src = out + k * ld + j * pq;
                float *dst = y + ((n0 + j) * K + k) * pq;
                for (int64_t i = 0; i < pq; i++) dst[i] = src[i] + b;
            }
    }
}

// Per group, from its output gradient dyg (K, count*PQ): dw_group = (dy_g col_g^T)^T = col_g dy_g^T,
// (CRS, K), and dx += col2im(W^T dy_g). col is scratch of CRS x count*PQ floats. The columns are
// computed again rather than kept from the forward: cheaper than storing a batch of them. The
// three products run on the engine's own GEMM, which reads the columns where im2col wrote them
// (OpenBLAS would copy them into its own layout first); dW is computed transposed for that reason,
// with the columns as the left operand (read in place) and dy_g, the smaller, as the one copied.
// dygt, when not NULL, is dy_g already transposed, (count*PQ, K): the product for dW then reads it
// in place instead of transposing dy_g first; in the GEMM's column panels where DY_PANELS (M = crs
// > 1: no matrix-vector product), gemm_panels_b_cpu's same sums without its copy of them (pack_b).
#define DY_PANELS(K, crs) ((K) % CG_GEMM_PANEL == 0 && (crs) > 1)
static void group_backward(float *dx, float *dw_group, float *col, const float *dyg, const float *dygt,
                           const float *x, const float *w, const float *wtp, int64_t n0, int64_t count, int64_t C, int64_t H,
                           int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                           int64_t Q, bool write) {
    int64_t crs = C * R * S, pq = P * Q, ld = count * pq;
    if (dw_group) {
        for (int64_t j = 0; j < count; j++)
            im2col_image(col + j * pq, ld, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q);
        if (dygt && DY_PANELS(K, crs))
            gemm_panels_b_cpu(false, col, NULL, crs, K, ld, 1.0f, dygt, 0.0f, dw_group); // dW_g^T = col dy_g^T
        else if (dygt)
            gemm_engine_cpu(false, false, crs, K, ld, 1.0f, col, dygt, 0.0f, dw_group);
        else
            gemm_engine_cpu(false, true, crs, K, ld, 1.0f, col, dyg, 0.0f, dw_group); // dW_g^T (CRS, K) = col dy_g^T
    }
    if (dx) {
        // dcol (CRS, count*PQ) = W^T dy_g (wtp: W^T packed)
        gemm_prepacked_cpu(true, w, wtp, false, crs, ld, K, 1.0f, dyg, 0.0f, col);
        for (int64_t j = 0; j < count; j++)
            col2im_image(dx + (n0 + j) * C * H * W, col + j * pq, ld, C, H, W, R, S, stride, pad, P, Q, write);
    }
}

// The weight gradient of each group goes to its own slice of a buffer (groups x K*CRS floats,
// kept by the calling thread between calls), and the slices are added to dW in group order at
// the end: the same sums on any number of threads, and a thread that the system pauses (another
// program on the core) does not hold the others up, since the groups are handed out
// dynamically. NULL when dW is not wanted.
static float *dw_slices(const float *dw, int64_t groups, int64_t size) {
    static _Thread_local cg_thread_buffer slices;
    return dw ? cg_thread_floats_aligned(&slices, groups * size) : NULL;
}

// dw (K, CRS) += slice 0, then slice 1, ... (each (CRS, K), transposed), a block of CRS at a time:
// the block of dw transposed into t (32 KB for K <= 512), each slice's block added to it in group
// order (contiguous vector additions), t transposed back: the same additions in the same order.
// Gathered 4 floats at a time, in 32 x 32 tiles, the slices took 2 % of the tutorial's second
// convolution's backward (32 groups); element by element, ResNet-18 layer4's 35 of 79 ms.
static void add_dw_slices(float *dw, const float *slices, int64_t groups, int64_t K, int64_t crs) {
    static _Thread_local cg_thread_buffer buffer;
    int64_t rows = 8192 / K / 16 * 16 > 16 ? 8192 / K / 16 * 16 : 16; // CRS per block, whole 16 x 16 tiles
    float *t = cg_thread_floats_aligned(&buffer, rows * K);
    for (int64_t i0 = 0; i0 < crs; i0 += rows) {
        int64_t n = crs - i0 < rows ? crs - i0 : rows;
        transpose_block(t, K, dw + i0, crs, K, n); // t[i][k] = dw[k][i0 + i]
        for (int64_t g = 0; g < groups; g++) {
            const float *slice = slices + g * K * crs + i0 * K;
            for (int64_t e = 0; e < n * K; e++) t[e] += slice[e];
        }
        transpose_block(dw + i0, crs, t, K, n, K);
    }
}

// dx's blocks of rows: as block_rows, but a multiple of 32 positions (whole column panels of the
// GEMM) where fewer than twice the rows make it so: ResNet-18's layer1, 6 rows of 56 are 336
// positions, 10 panels and a half one (tile_1_vector, 12 x 16 at half the FMAs per load); 8 rows
// are 448, 14 whole panels. The block size changes no sum (backward_dx_rows says why).
static int64_t dx_rows(int64_t P, int64_t Q) {
    int64_t rows = block_rows(P, Q);
    for (int64_t r = rows; r < 2 * rows && r <= P; r++)
        if (r * Q % 32 == 0) return r;
    return rows;
}

// dx of image n from output rows p0 .. p1-1: their columns' gradient, dcol (CRS, (p1-p0)*Q) = W^T
// dy (wtp: W^T packed), then col2im of those rows. For large images (forward_rows' test): the
// whole group's dcol (CRS x 4 images' positions: 29 MB for ResNet-18's layer1) went through
// memory between the product and col2im, and held the product at 40 % of the peak; a block's
// stays in the second-level cache. Each column of dcol is the same dot products as the whole
// group's, and taking the blocks from the last rows up adds the same terms into each dx
// element in the same order as col2im over the whole image: the same bits.
static void backward_dx_rows(float *dx, const float *dy, const float *w, const float *wtp, int64_t n, int64_t p0,
                             int64_t p1, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                             int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t crs = C * R * S, ld = (p1 - p0) * Q;
    float *dcol = scratch(2, crs * ld), *dyr = scratch(3, K * ld);
    const float *dyn = dy + n * K * P * Q + p0 * Q; // channel k's rows at dyn[k * P * Q]
    if (ld % CG_GEMM_PANEL == 0 && K > 1) { // the block's dy straight into the GEMM's column panels
        dy_rows_panels(dyr, dy, n, p0 * Q, ld, ld, K, P * Q);
        gemm_panels_b_cpu(true, w, wtp, crs, ld, K, 1.0f, dyr, 0.0f, dcol);
    } else {
        for (int64_t k = 0; k < K; k++) // the block's dy, (K, (p1-p0)*Q)
            memcpy(dyr + k * ld, dyn + k * P * Q, (size_t)ld * sizeof(float));
        gemm_prepacked_cpu(true, w, wtp, false, crs, ld, K, 1.0f, dyr, 0.0f, dcol);
    }
    col2im_rows(dx + n * C * H * W, dcol, ld, C, H, W, R, S, stride, pad, P, Q, p0, p1);
}

// A group's weight gradient, dW_g^T (CRS, K) = col_g dy_g^T, a span of DW_SPAN positions at a
// time (the group's positions in order, a span may cross from one image to the next): the span's
// columns and its dy transposed, then the product over the span added to the sums so far. The
// group's whole columns (29 MB for ResNet-18's layer1, 4 x 3136 positions) went through memory
// between im2col and the product; a span's stay in the second-level cache. The spans are whole
// blocks of the GEMM's K (CG_GEMM_KC): the product then adds the same blocks in the same order
// as over the whole group, the same bits.
static int64_t dw_span(int64_t crs) {
    int64_t span = (DW_SPAN_FLOATS / crs) / CG_GEMM_KC * CG_GEMM_KC;
    return span > CG_GEMM_KC ? span : CG_GEMM_KC;
}

static void group_dw_spans(float *dw_group, const float *x, const float *dy, int64_t n0, int64_t count, int64_t C,
                           int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                           int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, ld = count * pq, span = dw_span(crs);
    float *col = scratch(0, crs * span), *dyt = scratch(1, span * K);
    // dy transposed straight into the GEMM's column panels where the output channels are whole
    // panels (ResNet-18: 64 to 512), where the GEMM copied the transposed dy into them again
    // (pack_b: under 1 % of layer1's dW, measured; most of the copying there is im2col's, whose
    // columns are too large for the first-level cache: made and multiplied 12 rows at a time,
    // each tile then read its 32 KB of dy from the second-level cache, and dW ran 7 % slower).
    // Same sums, same bits.
    bool panels = K % CG_GEMM_PANEL == 0;
    for (int64_t f0 = 0; f0 < ld; f0 += span) {
        int64_t f1 = f0 + span < ld ? f0 + span : ld, n = f1 - f0;
        for (int64_t f = f0; f < f1;) { // the part of the span in image n0 + f / pq
            int64_t j = f / pq, i0 = f % pq, i1 = i0 + (f1 - f) < pq ? i0 + (f1 - f) : pq;
            im2col_span(col + (f - f0), n, x + (n0 + j) * C * H * W, C, H, W, R, S, stride, pad, P, Q, i0, i1);
            if (panels)
                transpose_dy_panels(dyt, n, f - f0, dy + (n0 + j) * K * pq, K, pq, i0, i1);
            else
                transpose_dy(dyt + (f - f0) * K, dy + (n0 + j) * K * pq, K, pq, i0, i1);
            f += i1 - i0;
        }
        if (panels)
            gemm_panels_b_cpu(false, col, NULL, crs, K, n, 1.0f, dyt, f0 == 0 ? 0.0f : 1.0f, dw_group);
        else
            gemm_engine_cpu(false, false, crs, K, n, 1.0f, col, dyt, f0 == 0 ? 0.0f : 1.0f, dw_group);
    }
}

// db[k] += the sum of channel k of dy over the batch, in double (a 224 x 224 plane is 50176
// terms): each channel's terms in BIAS_LANES lanes (lane l adds positions i with i % BIAS_LANES
// == l, image after image), the lanes then added in order. One sum per channel taken a term at a
// time (a chain of dependent additions, eight channels side by side) ran at about a term a cycle:
// 0.24 ms of CIFAR's layer2 shortcut backward (batch 32, a tenth of it); in lanes the compiler's
// vector additions take 16 terms at a time: 0.06 ms. Another order of the same terms, but a
// double holds 29 more significant bits than a float: sums of floats of like sizes are exact in
// it, so the order seldom reaches db's float (test_conv_cpu: the same bits as the ordered sum).
#define BIAS_LANES 16

static void bias_sums(float *dbias, const float *dy, int64_t N, int64_t K, int64_t pq, bool threads) {
#pragma omp parallel for if (threads)
    for (int64_t k = 0; k < K; k++) {
        double lane[BIAS_LANES] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *plane = dy + (n * K + k) * pq;
            int64_t i = 0;
            for (; i + BIAS_LANES <= pq; i += BIAS_LANES)
                for (int l = 0; l < BIAS_LANES; l++) lane[l] += plane[i + l];
            for (int l = 0; i < pq; i++, l++) lane[l] += plane[i];
        }
        double sum = 0.0;
        for (int l = 0; l < BIAS_LANES; l++) sum += lane[l];
        dbias[k] += (float)sum;
    }
}

// Per group: dy_g, the group's output gradient laid out as (K, count*PQ), then group_backward.
void conv2d_backward_cpu(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                         int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    int64_t crs = C * R * S, pq = P * Q, groups = (N + GROUP - 1) / GROUP;
    bool threads = N > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    // A first layer's dW directly (conv_stem.c), as its forward, and db from the same reads of dy.
    if (dw && conv2d_stem_dw_cpu(dw, dbias, dy, x, N, C, H, W, K, R, S, stride, pad, P, Q)) dw = NULL, dbias = NULL;
    if (dbias) bias_sums(dbias, dy, N, K, pq, threads);
    // Layers with many weights (layer3 and layer4 of ResNet-18): dW split among the threads by
    // input channels instead of a slice per group (conv_dw.c says why), then dx alone below.
    if (dw && conv2d_dw_by_channels_cpu(dw, dy, x, N, C, H, W, K, R, S, stride, pad, P, Q)) dw = NULL;
    // dx of a 3 x 3 "same" convolution of even sides by Winograd's F(2 x 2, 3 x 3), as its forward
    if (dx && conv2d_winograd_dx_cpu(dx, dy, w, N, C, H, W, K, R, S, stride, pad, P, Q, accumulate)) dx = NULL;
    bool by_rows = crs * pq > COLUMNS_IN_CACHE && pq >= 2 * ROWS_POSITIONS; // as the forward
    // Small planes with many weights (layer3 and layer4): dx by input channels (conv_dx.c)
    if (dx && !by_rows && conv2d_dx_by_channels_cpu(dx, dy, w, N, C, H, W, K, R, S, stride, pad, P, Q, !accumulate))
        dx = NULL;
    if (dx == NULL && dw == NULL) return;
    // ResNet's downsampling shortcut (1 x 1, stride 2) on its own kernels (conv_shortcut.c), its
    // slices of dW (K, CRS) instead of (CRS, K)
    bool shortcut = !by_rows && conv2d_shortcut_takes(C, H, W, K, R, S, stride, pad, P, Q);
    float *slices = dw_slices(dw, groups, K * crs);
    const float *wtp = !dx ? NULL : shortcut ? conv2d_shortcut_dx_weights(w, K, C) : pack_weights(1, true, crs, K, w);
    int64_t rows = dx_rows(P, Q);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ld = count * pq;
        float *dw_group = slices ? slices + g * K * crs : NULL;
        if (shortcut) {
            if (dw_group) conv2d_shortcut_dw_group(dw_group, x, dy, n0, count, C, H, W, K, P, Q);
            if (dx) conv2d_shortcut_dx_group(dx, dy, wtp, n0, count, C, H, W, K, P, Q, !accumulate);
            continue;
        }
        // dW by spans of positions, unless a product over them would be a matrix-vector product,
        // whose sums are not taken in blocks of K (one output channel or one input element)
        bool spans = dw_group && K > 1 && crs > 1;
        if (spans) group_dw_spans(dw_group, x, dy, n0, count, C, H, W, K, R, S, stride, pad, P, Q);
        if (dx && !by_rows && !(dw_group && !spans) && ld % CG_GEMM_PANEL == 0 && K > 1) {
            // dx alone: the group's dy straight into the GEMM's column panels, as backward_dx_rows
            float *dcol = scratch(0, crs * ld), *dyp = scratch(1, K * ld);
            dy_rows_panels(dyp, dy, n0, 0, ld, ld, K, pq);
            gemm_panels_b_cpu(true, w, wtp, crs, ld, K, 1.0f, dyp, 0.0f, dcol);
            for (int64_t j = 0; j < count; j++)
                col2im_image(dx + (n0 + j) * C * H * W, dcol + j * pq, ld, C, H, W, R, S, stride, pad, P, Q,
                             !accumulate);
        } else if ((dw_group && !spans) || (dx && !by_rows)) {
            float *col = scratch(0, crs * ld), *dyg = scratch(1, K * ld);
            for (int64_t j = 0; j < count; j++)
                for (int64_t k = 0; k < K; k++) {
                    const float *src = dy + ((n0 + j) * K + k) * pq;
                    float *dst = dyg + k * ld + j * pq;
                    for (int64_t i = 0; i < pq; i++) dst[i] = src[i];
                }
            group_backward(by_rows ? NULL : dx, spans ? NULL : dw_group, col, dyg, NULL, x, w, wtp, n0, count, C, H, W,
                           K, R, S, stride, pad, P, Q, !accumulate);
        }
        if (by_rows && dx) // large images: dx a block of rows at a time, from the last block up
            for (int64_t n = n0; n < n0 + count; n++) {
                if (!accumulate) memset(dx + n * C * H * W, 0, (size_t)(C * H * W) * sizeof(float)); // (blocks add)
                for (int64_t p1 = P; p1 > 0; p1 -= p1 % rows ? p1 % rows : rows) {
                    int64_t p0 = p1 % rows ? p1 - p1 % rows : p1 - rows;
                    backward_dx_rows(dx, dy, w, wtp, n, p0, p1, C, H, W, K, R, S, stride, pad, P, Q);
                }
            }
    }
    if (dw && shortcut) // dw += slice 0, then slice 1, ... (each (K, CRS), as dw)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t i = 0; i < K * crs; i++) dw[i] += slices[g * K * crs + i];
    else if (dw)
        add_dw_slices(dw, slices, groups, K, crs);
}

// ---- conv2d + bias + ReLU + 2x2 max pooling, fused ------------------------------------------------
// The tutorial CNN's block. Unfused, the convolution's output, the ReLU's output and their two
// gradients each make a trip through memory (12.8 MB apiece for the first block at batch 128);
// fused, the convolution's output of a group of four images is pooled while it is still in the
// cache, and only the pooled output and a window position per output are stored. The
// arithmetic is that of conv2d, relu, max_pool2d in a row, in the same order, so the output and
// the gradients of x and w are identical (the bias gradient is a sum taken in another order):
// the bias is added before the maximum, the first maximum wins, and max(relu(a)) =
// relu(max(a)), so the ReLU is applied to the maximum alone.

// One plane of a group's convolution output (P x Q, the bias not yet added) to its pooled plane
// (P/2 x Q/2): y = max(0, the window's first maximum + bias) and where = its position in the
// window (0 top left, 1 top right, 2 bottom left, 3 bottom right). Two passes, each a plain
// loop the compiler vectorises (no branch: which value wins is a coin toss on real data).
// First the larger of each column's two values in each pair of rows (top wins ties), into
// col_max and bottom_won, (P/2) x (2 (Q/2)) each, scratch. Then the larger of each pair of
// columns, over the whole plane at once (its rows follow each other, so the pairs do too): on
// a tie the window's first maximum in scan order wins, the left one unless it came from the
// bottom row and the right one from the top (position 1 comes before position 2).
static inline __attribute__((always_inline)) void pool_relu_plane(float *y, uint8_t *where, const float *plane,
                                                                  float bias, int64_t P, int64_t Q,
                            float *col_max, int32_t *bottom_won) {
    int64_t P2 = P / 2, Q2 = Q / 2;
    for (int64_t p = 0; p < P2; p++) {
        const float *top = plane + 2 * p * Q, *bottom = top + Q;
        float *m = col_max + p * 2 * Q2;
        int32_t *won = bottom_won + p * 2 * Q2;
        for (int64_t q = 0; q < 2 * Q2; q++) {
            float a = top[q] + bias, b = bottom[q] + bias;
            won[q] = b > a;
            m[q] = b > a ? b : a;
        }
    }
    for (int64_t i = 0; i < P2 * Q2; i++) {
        float left = col_max[2 * i], right = col_max[2 * i + 1];
        int32_t left_at = 2 * bottom_won[2 * i], right_at = 1 + 2 * bottom_won[2 * i + 1];
        int32_t take_right = (right > left) | ((right == left) & (right_at < left_at));
        float m = take_right ? right : left;
        where[i] = (uint8_t)(take_right ? right_at : left_at);
        y[i] = m > 0.0f ? m : 0.0f;
    }
}

static void conv2d_relu_pool_forward_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias,
                                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                         int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (conv1_relu_pool_direct_cpu(y, where, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    // The tutorial's second layer: Winograd's F(2 x 2, 3 x 3), each tile pooled (conv_winograd.c)
    if (conv2d_winograd_forward_cpu(y, where, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return;
    int64_t crs = C * R * S, pq = P * Q, pooled = (P / 2) * (Q / 2), groups = (N + GROUP - 1) / GROUP;
    bool threads = groups > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    const float *wp = pack_weights(0, false, K, crs, w);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ld = count * pq;
        float *col = scratch(0, crs * ld), *out = scratch(1, K * ld), *col_max = scratch(2, 2 * pooled * 2);
        group_forward(out, col, x, w, wp, n0, count, C, H, W, K, R, S, stride, pad, P, Q);
        for (int64_t j = 0; j < count; j++)
            for (int64_t k = 0; k < K; k++) {
                int64_t plane = (n0 + j) * K + k;
                float *yp = y + plane * pooled, *in = out + k * ld + j * pq, b = bias ? bias[k] : 0.0f;
                uint8_t *at = where + plane * pooled;
                int32_t *won = (int32_t *)(col_max + 2 * pooled);
                // The tutorial's two sizes as constants: the loops then have known lengths (28,
                // 14, 7), which the compiler lays out as whole vectors instead of a vector loop
                // and a scalar tail. The same function, the same results.
                if (P == 28 && Q == 28)
                    pool_relu_plane(yp, at, in, b, 28, 28, col_max, won);
                else if (P == 14 && Q == 14)
                    pool_relu_plane(yp, at, in, b, 14, 14, col_max, won);
                else
                    pool_relu_plane(yp, at, in, b, P, Q, col_max, won);
            }
    }
}

// One plane of the convolution's output gradient (P x Q) from the pooled gradient dy (P/2 x Q/2):
// dy where the window's maximum was and the ReLU let it through (y > 0), zero everywhere else.
// With AVX-512, every element is written, two rows at a time, 8 windows per step: each window's
// value and position spread to its two columns (a permutation), compared with the column's place
// in the window; no zeroing first and no scattered stores. Otherwise the plane is zeroed first
// (memset, in cache), then one store per window: plain scalar code. (Written as plain loops over
// the rows, the compiler vectorised neither the gather per element nor the comparisons.)
// Returns the plane's sum.
static inline __attribute__((always_inline)) float unpool_plane(float *out, const float *dy, const float *y,
                                                                const uint8_t *where, int64_t P, int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    const __m512i spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i in_top = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i in_bottom = _mm512_add_epi32(in_top, _mm512_set1_epi32(2));
    for (int64_t p = 0; p < P2; p++) {
        float *top = out + 2 * p * Q, *bottom = top + Q;
        for (int64_t q0 = 0; q0 < Q2; q0 += 8) {
            int64_t i = p * Q2 + q0, n = Q2 - q0 < 8 ? Q2 - q0 : 8;
            __mmask8 m8 = (__mmask8)((1u << n) - 1);
            __mmask16 m16 = (__mmask16)((1u << (2 * n)) - 1);
            __m256 g = _mm256_maskz_loadu_ps(m8, dy + i), yv = _mm256_maskz_loadu_ps(m8, y + i);
            g = _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(yv, _mm256_setzero_ps(), _CMP_GT_OQ), g);
            __m256i at = _mm256_cvtepu8_epi32(_mm_maskz_loadu_epi8(m8, where + i));
            __m512 g2 = _mm512_permutexvar_ps(spread, _mm512_castps256_ps512(g));
            __m512i at2 = _mm512_permutexvar_epi32(spread, _mm512_castsi256_si512(at));
            _mm512_mask_storeu_ps(top + 2 * q0, m16, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at2, in_top), g2));
            _mm512_mask_storeu_ps(bottom + 2 * q0, m16,
                                  _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at2, in_bottom), g2));
        }
        for (int64_t c = 2 * Q2; c < Q; c++) top[c] = bottom[c] = 0.0f; // odd Q: outside every window
    }
    for (int64_t i = 2 * P2 * Q; i < P * Q; i++) out[i] = 0.0f; // odd P: the last row
#else
    memset(out, 0, (size_t)(P * Q) * sizeof(float));
    for (int64_t p = 0; p < P2; p++)
        for (int64_t q = 0; q < Q2; q++) {
            int64_t i = p * Q2 + q, at = (2 * p + (where[i] >> 1)) * Q + 2 * q + (where[i] & 1);
            out[at] = y[i] > 0.0f ? dy[i] : 0.0f; // a store of 0 where the ReLU stopped it: no branch
        }
#endif
    // The plane's sum in 8 lanes (one chain of dependent additions would cost more than the stores
    // above): lane l adds windows l, l + 8, ... in order, the last n mod 8 windows go into lane 0,
    // then the lanes are added in order. Written out rather than left to `omp simd reduction`
    // (which GCC lays out this way, another compiler perhaps not), because conv_direct_dw.c's
    // sum_lanes takes the same additions and test_conv_fused_cpu checks db bit for bit across the two.
    // The 8 lanes are one vector of the compiler's (vec8.h) and dy's entries are kept by a bit
    // mask where y > 0 (its zeros are +0.0f, as `: 0.0f` gives): written as `lanes[l] +=
    // y[i + l] > 0.0f ? dy[i + l] : 0.0f`, GCC 12 tuned for Zen 1 (-march=native there) read dy
    // with two masked loads of 4 floats and gave the second the first's mask: wrong sums
    // (test_grad's fused block caught it).
    int64_t n = P2 * Q2, n8 = n / 8 * 8;
    f8 acc = {0};
    for (int64_t i = 0; i < n8; i += 8) {
        f8 yv, gv;
        memcpy(&yv, y + i, sizeof yv);
        memcpy(&gv, dy + i, sizeof gv);
        acc += (f8)((i8)gv & (yv > 0.0f));
    }
    float lanes[8];
    memcpy(lanes, &acc, sizeof lanes);
    for (int64_t i = n8; i < n; i++) lanes[0] += y[i] > 0.0f ? dy[i] : 0.0f;
    float sum = 0.0f;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum;
}

// The gradient reaches the convolution's output only at each window's maximum, and only where
// the ReLU let it through (y > 0): dy_g is zero elsewhere. dbias is the sum of those entries,
// in double, per group then over the groups in order: the same result on any number of threads
// (it may differ from conv2d_backward's sum, taken in another order, in the last bit).
// accumulate false: dx written (Winograd's tiles store it; col2im adds into the group's images
// zeroed first), never read.
static void conv2d_relu_pool_backward_cpu(float *dx, float *dw, float *dbias, const float *dy, const float *y,
                                          const uint8_t *where, const float *x, const float *w, int64_t N, int64_t C,
                                          int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                          int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    int64_t crs = C * R * S, pq = P * Q, Q2 = Q / 2, pooled = (P / 2) * Q2, groups = (N + GROUP - 1) / GROUP;
    bool threads = N > 1 && N * K * pq * crs >= CG_OMP_MIN_WORK;
    if (dx == NULL && dw == NULL && dbias == NULL) return;
    // dW of a 3 x 3 "same" convolution, one term per pooling window (conv_direct_dw.c; with AVX-512
    // and whole vectors of output channels), and db there too when no dx is wanted (a first layer);
    // else db and dx below, without dW's columns and product
    if (dw && conv2d_relu_pool_dw_windows_cpu(dw, dx ? NULL : dbias, dy, y, where, x, N, C, H, W, K, R, S, stride, pad,
                                              P, Q, GROUP)) {
        if (dx == NULL) return;
        dw = NULL;
    }
    double *bias_sums = dbias ? cg_xmalloc((size_t)(groups * K) * sizeof(double)) : NULL; // (groups, K)
    float *slices = dw_slices(dw, groups, K * crs);
    // dx by Winograd's F(2 x 2, 3 x 3) from each group's dy_g where the forward used it (as
    // conv2d_backward does: the same bits), else by the GEMM and col2im in group_backward
    const float *wu = dx && conv2d_winograd_takes(C, H, W, K, R, S, stride, pad, P, Q)
                          ? conv2d_winograd_dx_weights_cpu(w, K, C)
                          : NULL;
    const float *wtp = dx && !wu ? pack_weights(1, true, crs, K, w) : NULL;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ld = count * pq;
        float *col = scratch(0, crs * ld), *dyg = scratch(1, K * ld);
        // dy_g transposed too, (count*PQ, K), for dW when K is whole vectors (the GEMM reads it
        // in place): dy_g written whole by unpool_plane's vector path, then transposed by 16 x 16
        // tiles, costs less than zeroing dy_g^T and a scattered store per window into it (which
        // took half of the tutorial's first block's backward).
        float *dygt = dw && K % 16 == 0 ? scratch(3, K * ld) : NULL;
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t j = 0; j < count; j++) {
                int64_t plane = (n0 + j) * K + k;
                float *o = dyg + k * ld + j * pq;
                const float *g_in = dy + plane * pooled, *y_in = y + plane * pooled;
                const uint8_t *at = where + plane * pooled;
                if (P == 28 && Q == 28) // the tutorial's sizes as constants, as in the forward
                    sum += unpool_plane(o, g_in, y_in, at, 28, 28);
                else if (P == 14 && Q == 14)
                    sum += unpool_plane(o, g_in, y_in, at, 14, 14);
                else
                    sum += unpool_plane(o, g_in, y_in, at, P, Q);
            }
            if (bias_sums) bias_sums[g * K + k] = sum;
        }
        if (dygt && DY_PANELS(K, crs))
            transpose_dy_panels(dygt, ld, 0, dyg, K, ld, 0, ld); // the group as one plane of ld positions
        else if (dygt)
            transpose_block(dygt, K, dyg, ld, K, ld);
        if ((dx && !wu) || dw)
            group_backward(wu ? NULL : dx, slices ? slices + g * K * crs : NULL, col, dyg, dygt, x, w, wtp, n0, count,
                           C, H, W, K, R, S, stride, pad, P, Q, !accumulate);
        if (wu) conv2d_winograd_dx_images_cpu(dx + n0 * C * H * W, dyg, pq, ld, wu, count, C, H, W, K, accumulate, false);
    }
    if (dw) add_dw_slices(dw, slices, groups, K, crs);
    if (dbias) {
        for (int64_t k = 0; k < K; k++) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; g++) sum += bias_sums[g * K + k];
            dbias[k] += (float)sum;
        }
        free(bias_sums);
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void conv_register_cpu(cg_kernels *k) {
    k->conv2d_forward = conv2d_forward_cpu;
    k->conv2d_backward = conv2d_backward_cpu;
    k->conv2d_relu_pool_forward = conv2d_relu_pool_forward_cpu;
    k->conv2d_relu_pool_backward = conv2d_relu_pool_backward_cpu;
}

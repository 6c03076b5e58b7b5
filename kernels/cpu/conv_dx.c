// conv_dx.c: the f32 convolution's input gradient for small planes (ResNet-18's layer3 and layer4:
// 14 x 14 and 7 x 7), a part of the input channels at a time, each thread on its own parts of dx.
// It computes dx alone (conv2d_backward_cpu, conv.c, calls it and does dW and db itself).
//
// Why: conv.c's general path multiplies W^T (C*R*S, K) by a group of 4 images' dy, dcol = W^T dy_g
// (C*R*S, 4 P Q), then folds dcol back into dx (col2im). For layer4 (C*R*S = 4608, K = 512) that
// dcol is 3.6 MB and the packed W^T 9.4 MB: per group, both went out of the core's second-level
// cache and came back (the product wrote dcol, col2im read it; every group streamed the whole
// W^T), and W^T was first packed whole into a buffer out of that cache too. Here a part of W^T's
// rows (PART_ROWS: 16 input channels of a 3 x 3 kernel, 144 x 512 floats, 295 KB) is packed by
// the thread that uses it and multiplied by every group's dy while it is in the cache; the part's
// dcol (144 rows x about 400 positions, 230 KB) is folded into dx while it is in the cache too.
// Layer4's dx alone, one core: 13.2-13.7 -> 10.8-11.2 ms (with gemm.c's packing of W^T a few
// rows of k at a time, which took 15 % of it before); parts of 288 rows measured the same.
//
// The same bits as the general path: each column of dcol is the same dot products (the same
// terms, in the same blocks of the GEMM's K, in the same order) whatever the rows and columns
// around it, and col2im adds into each dx element only the rows of its own input channel, in the
// same (r, s) order, so a part of the channels gives what the whole gave. No sum depends on the
// number of threads.
#include "kernels/cpu/conv_parts.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/transpose.h"
#include "kernels/cpu/threads.h"

#include <string.h>

// Rows of W^T per part: about this many (16 input channels of a 3 x 3 kernel, 12 of the GEMM's
// panels of 12 rows).
#define PART_ROWS 144
// Positions per product: about this many (all 8 of layer4's images, 392 positions; 2 of layer3's),
// as the forward's small planes (conv.c): enough columns that the GEMM runs near its best.
#define GROUP_COLUMNS 400
// The path is taken when a group of 4 images' dcol (the general path's) has more than this many
// floats (512 KB, as conv.c's COLUMNS_IN_CACHE), and the planes are too small for conv.c's blocks
// of rows.
#define DCOL_FLOATS_MIN (128 * 1024)
#define GENERAL_GROUP 4

static float *scratch(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[2];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// Every group's dy as the GEMM's B in its column panels (gemm_panels_b_cpu): made before the parts
// start, read by all of them. One buffer, kept between calls.
static float *panels_buffer(int64_t floats) {
    static _Thread_local cg_thread_buffer buffer;
    return cg_thread_floats_aligned(&buffer, floats);
}

bool conv2d_dx_by_channels_cpu(float *dx, const float *dy, const float *w, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                               bool write) {
    int64_t crs = C * R * S, pq = P * Q, rs = R * S;
    int64_t general_ld = (N < GENERAL_GROUP ? N : GENERAL_GROUP) * pq;
    // One position a plane would make the general path's product a matrix-vector product, whose
    // sums are not taken in blocks of K: those keep it, as do products that fit the cache.
    if (pq < 2 || crs < 2 || crs * general_ld <= DCOL_FLOATS_MIN) return false;
    int64_t per_group = cg_even_group(N, GROUP_COLUMNS / pq);
    int64_t groups = (N + per_group - 1) / per_group;
    int64_t ld = (per_group * pq + 15) / 16 * 16; // columns rounded up to whole vectors (zeros past the positions)
    int64_t channels = PART_ROWS / rs > 1 ? PART_ROWS / rs : 1, parts = (C + channels - 1) / channels;
    if (C % channels * rs == 1) return false; // a last part of one row: a matrix-vector product
    float *panels = panels_buffer(groups * K * ld);
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
#pragma omp parallel if (threads)
    {
#pragma omp for schedule(dynamic)
        for (int64_t g = 0; g < groups; g++) {
            int64_t n0 = g * per_group, count = N - n0 < per_group ? N - n0 : per_group;
            dy_rows_panels(panels + g * K * ld, dy, n0, 0, count * pq, ld, K, pq);
        }
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < parts; p++) {
            int64_t c0 = p * channels, c1 = c0 + channels < C ? c0 + channels : C, rows = (c1 - c0) * rs;
            // the part's rows of W^T (w is (K, C*R*S): op(A) = w^T), packed here, kept in the cache
            float *wtp = scratch(0, gemm_packed_a_floats(rows, K)), *dcol = scratch(1, rows * ld);
            gemm_pack_a_rows_cpu(wtp, true, crs, K, w, c0 * rs, c1 * rs);
            for (int64_t g = 0; g < groups; g++) {
                int64_t n0 = g * per_group, count = N - n0 < per_group ? N - n0 : per_group;
                // dcol (rows, ld) = the part's W^T times the group's dy (the columns past the
                // positions are zeros times the weights, never read)
                gemm_panels_b_cpu(true, NULL, wtp, rows, ld, K, 1.0f, panels + g * K * ld, 0.0f, dcol);
                for (int64_t j = 0; j < count; j++)
                    col2im_image(dx + ((n0 + j) * C + c0) * H * W, dcol + j * pq, ld, c1 - c0, H, W, R, S, stride,
                                 pad, P, Q, write); // (each plane of dx from one part: written whole)
            }
        }
    }
    return true;
}

// conv_winograd_portable.c: Winograd's F(2 x 2, 3 x 3) tiles (conv_winograd.c: what they compute,
// the blocks, the filters and the products) on CPUs without AVX-512: the input transform and the
// output transform with its finishes, in the compiler's vectors of 8 floats. With AVX-512 this
// file compiles to nothing (conv_winograd.c has the same two functions in its intrinsics).
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vec8.h"
#include "core/common.h"

#include <stdint.h>
#include <string.h>

#ifndef CG_WINOGRAD

// The vectors (vec8.h): 8 tiles of a tile row side by side, each sum taken in the order of
// conv_winograd.c's AVX-512 code (test_conv_cpu's reference tiles, written in that order, give
// the same bits on both). Each output is computed the same way whatever the block, the group of
// images or the number of threads, and the fused block and the three ops agree. On one Zen 1 core
// (AVX2), the tutorial's second convolution in im2col and the GEMM ran at 31 GFLOP/s, about the
// core's peak; with these tiles it does 2.25 times fewer multiply-adds.
#define EVEN8(a, b) SHUFFLE8(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define ODD8(a, b) SHUFFLE8(a, b, 1, 3, 5, 7, 9, 11, 13, 15)

// Row h of a plane (W floats at p, `readable` floats readable from p on: the rest of the plane) as
// a padded row's even and odd columns: e[k] = column 2k - 1, o[k] = column 2k, k = 0, 1, ...,
// zero outside the image. 16 columns at a time: two loads and two shuffles, the lanes past column
// W - 1 set to zero (they read the next row); where 16 floats would read past the plane, one by one.
// e[0] is never written here, and the places past the row only with zeros: they stay the zeros
// the caller starts them as.
static void split_row(float *e, float *o, const float *p, int64_t W, int64_t readable) {
    for (int64_t x0 = 0; x0 < W; x0 += 16) {
        if (x0 + 16 > readable) {
            for (int64_t x = x0; x < W; x++) (x % 2 ? e : o)[(x + 1) / 2] = p[x];
            return;
        }
        f8 a, b;
        memcpy(&a, p + x0, sizeof a), memcpy(&b, p + x0 + 8, sizeof b);
        f8 even = EVEN8(a, b), odd = ODD8(a, b); // columns x0 + 2l, x0 + 2l + 1
        if (x0 + 16 > W) {
            i8 column = 2 * (i8){0, 1, 2, 3, 4, 5, 6, 7} + (int32_t)x0;
            even = select8(column < (int32_t)W, even, (f8){0}), odd = select8(column + 1 < (int32_t)W, odd, (f8){0});
        }
        memcpy(o + x0 / 2, &even, sizeof even), memcpy(e + x0 / 2 + 1, &odd, sizeof odd);
    }
}

// As conv_winograd.c's AVX-512 winograd_input_transform: V[xi][c][j] = (B^T d B)[xi], 8 tiles of a tile row at a time.
// Channel by channel, each input row that the block's tile rows read is first split once into its
// padded even and odd columns (split_row; rows outside the image stay zeros), in slots: a tile row
// reads 4 slots, and the next tile row of the same image its last 2 and 2 more. Columns 2t - 1,
// 2t, 2t + 1 and 2t + 2 of a chunk's tiles t are then 4 plain loads of 8 per row, e[t], o[t],
// e[t + 1] and o[t + 1]. (Before, each tile row copied its 4 rows into a padded buffer, float by
// float, and took the columns out by 16 shuffles: on a Zen 1 core, a seventh of a training step;
// the tutorial's second convolution's transform, 25 us an image, its dx's 56, now 17 and 36.)
// Each value goes out as a whole vector where the block's
// tiles go on past the chunk's (the lanes past its tiles land on the next chunk's, written after),
// else lane by lane: copies of a count known only at run time (memcpy) were calls.
void winograd_input_transform(float *V, int64_t ld, const float *in, int64_t image_stride, int64_t channel_stride,
                              int64_t C, int64_t H, int64_t W, int64_t r0, int64_t r1) {
    static _Thread_local cg_thread_buffer buffer;
    int64_t H2 = H / 2, Q2 = W / 2, block_tiles = (r1 - r0) * Q2;
    int64_t half = Q2 + 16, slots = 4 * (r1 - r0); // a slot: e, then o, half floats each
    float *split = cg_thread_floats_aligned(&buffer, slots * 2 * half);
    memset(split, 0, (size_t)(slots * 2 * half) * sizeof(float)); // the rows outside the image, the padding
    for (int64_t c = 0; c < C; c++) {
        for (int64_t r = r0, n = r0 / H2, ty = r0 % H2, s = 0; r < r1; r++, next_row(&n, &ty, H2)) {
            const float *plane = in + n * image_stride + c * channel_stride;
            for (int i = r > r0 && ty > 0 ? 2 : 0; i < 4; i++) { // rows the tile row before did not split
                int64_t h = 2 * ty - 1 + i;
                if (h >= 0 && h < H) split_row(split + (s + i) * 2 * half, split + (s + i) * 2 * half + half,
                                               plane + h * W, W, (H - h) * W);
            }
            s += ty + 1 < H2 ? 2 : 4; // the next tile row's first slot: its image's, or a new one's
        }
        for (int64_t r = r0, ty = r0 % H2, s = 0; r < r1; r++, ty = ty + 1 < H2 ? ty + 1 : 0) {
            int64_t j0 = (r - r0) * Q2;
            for (int64_t tx0 = 0; tx0 < Q2; tx0 += 8) {
                int64_t tiles = Q2 - tx0 < 8 ? Q2 - tx0 : 8;
                f8 col[4][4]; // col[i][j] lane t: row i, column j of tile tx0 + t's patch
                CG_UNROLL for (int i = 0; i < 4; i++) {
                    const float *e = split + (s + i) * 2 * half + tx0, *o = e + half;
                    memcpy(&col[i][0], e, sizeof col[i][0]), memcpy(&col[i][1], o, sizeof col[i][1]);
                    memcpy(&col[i][2], e + 1, sizeof col[i][2]), memcpy(&col[i][3], o + 1, sizeof col[i][3]);
                }
                CG_UNROLL for (int i = 0; i < 4; i++) {
                    f8 row[4]; // row i of B^T d, column by column
                    CG_UNROLL for (int j = 0; j < 4; j++)
                        row[j] = i == 0 ? col[0][j] - col[2][j]
                               : i == 1 ? col[1][j] + col[2][j]
                               : i == 2 ? col[2][j] - col[1][j]
                                        : col[1][j] - col[3][j];
                    f8 v[4] = {row[0] - row[2], row[1] + row[2], row[2] - row[1], row[1] - row[3]};
                    CG_UNROLL for (int j = 0; j < 4; j++) {
                        float *to = V + (4 * i + j) * matrix_floats(C, ld) + c * ld + j0 + tx0;
                        if (j0 + tx0 + 8 <= block_tiles) {
                            memcpy(to, &v[j], sizeof v[j]);
                        } else { // through a copy: v read at run-time lanes would keep all of v in memory
                            float lanes[8];
                            memcpy(lanes, &v[j], sizeof lanes);
                            for (int t = 0; t < tiles; t++) to[t] = lanes[t];
                        }
                    }
                }
            }
            s += ty + 1 < H2 ? 2 : 4;
        }
    }
}

// As conv_winograd.c's AVX-512 winograd_output_block, for STORE, ADD and RELU_POOL (the bf16 modes need
// AVX512-BF16), 8 tiles of a tile row at a time: Y = A^T O A, then the finish, with the same
// comparisons for the pooled maximum.
void winograd_output_block(void *out, uint8_t *where, int64_t image_stride, const float *O, int64_t ld,
                           int64_t o_stride, const float *bias, finish how, int64_t M, int64_t H, int64_t W, int64_t r0,
                           int64_t r1) {
    CG_CHECK(how == STORE || how == ADD || how == RELU_POOL, "winograd_output_block: finish %d needs AVX512-BF16",
             (int)how);
    int64_t H2 = H / 2, Q2 = W / 2;
    float *y = out;
    for (int64_t k = 0; k < M; k++) {
        float bk = bias ? bias[k] : 0.0f;
        f8 b = (f8){0} + bk;
        const float *o = O + k * ld;
        for (int64_t r = r0, n = r0 / H2, ty = r0 % H2; r < r1; r++, next_row(&n, &ty, H2))
            for (int64_t tx0 = 0; tx0 < Q2; tx0 += 8) {
                int tiles = Q2 - tx0 < 8 ? (int)(Q2 - tx0) : 8;
                f8 v[16], s0[4], s1[4];
                // whole vectors: the lanes past the chunk's tiles read the next tiles, or the row's
                // padding (ld, then matrix_floats' 16 floats), and are not used
                for (int xi = 0; xi < 16; xi++) memcpy(&v[xi], o + xi * o_stride + (r - r0) * Q2 + tx0, sizeof v[xi]);
                for (int c = 0; c < 4; c++) {
                    s0[c] = (v[c] + v[4 + c]) + v[8 + c];
                    s1[c] = (v[4 + c] - v[8 + c]) - v[12 + c];
                }
                f8 y00 = (s0[0] + s0[1]) + s0[2], y01 = (s0[1] - s0[2]) - s0[3];
                f8 y10 = (s1[0] + s1[1]) + s1[2], y11 = (s1[1] - s1[2]) - s1[3];
                if (how == RELU_POOL) { // pool_relu_plane's choice (conv.c), the same comparisons
                    f8 tl = y00 + b, tr = y01 + b, bl = y10 + b, br = y11 + b;
                    i8 left_bottom = bl > tl, right_bottom = br > tr;
                    f8 left = select8(left_bottom, bl, tl), right = select8(right_bottom, br, tr);
                    i8 left_at = left_bottom & 2, right_at = 1 + (right_bottom & 2);
                    i8 take_right = (right > left) | ((right == left) & (right_at < left_at));
                    f8 best = select8(take_right, right, left);
                    i8 at = (take_right & right_at) | (~take_right & left_at);
                    best = (f8)((i8)best & (best > 0.0f)); // +0 where not above 0 (NaN included)
                    int64_t i = (n * M + k) * H2 * Q2 + ty * Q2 + tx0;
                    for (int t = 0; t < tiles; t++) y[i + t] = best[t], where[i + t] = (uint8_t)at[t];
                    continue;
                }
                float *top = y + n * image_stride + k * H * W + 2 * ty * W + 2 * tx0, *bottom = top + W;
                for (int t = 0; t < tiles; t++) {
                    if (how == ADD) {
                        top[2 * t] += y00[t], top[2 * t + 1] += y01[t];
                        bottom[2 * t] += y10[t], bottom[2 * t + 1] += y11[t];
                    } else {
                        top[2 * t] = y00[t] + bk, top[2 * t + 1] = y01[t] + bk;
                        bottom[2 * t] = y10[t] + bk, bottom[2 * t + 1] = y11[t] + bk;
                    }
                }
            }
    }
}

#endif // CG_WINOGRAD

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
#ifdef __clang__
#define EVEN8(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define ODD8(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#else
#define EVEN8(a, b) __builtin_shuffle(a, b, (i8){0, 2, 4, 6, 8, 10, 12, 14})
#define ODD8(a, b) __builtin_shuffle(a, b, (i8){1, 3, 5, 7, 9, 11, 13, 15})
#endif

// As conv_winograd.c's AVX-512 winograd_input_transform: V[xi][c][j] = (B^T d B)[xi], 8 tiles of a tile row at a time.
// Channel by channel, the 4 patch rows of each of the block's tile rows are first copied into a
// padded buffer (a zero before column 0, zeros from column W on, rows outside the image all
// zeros), so that a chunk's patch rows are plain loads: columns 2t + j of its 8 tiles (t = 0 .. 7)
// come out of two loads of 8 by two shuffles each. (Copied chunk by chunk right before its loads,
// each load waited for the stores of the copy: a load across several smaller stores is not
// forwarded from them.) Each value goes out as a whole vector where the block's tiles go on past
// the chunk's (the lanes past its tiles land on the next chunk's, written after), else lane by
// lane: copies of a count known only at run time (memcpy) were calls, a fifth of a training
// step's time on a Zen 1 core.
void winograd_input_transform(float *V, int64_t ld, const float *in, int64_t image_stride, int64_t channel_stride,
                              int64_t C, int64_t H, int64_t W, int64_t r0, int64_t r1) {
    static _Thread_local cg_thread_buffer buffer;
    int64_t H2 = H / 2, Q2 = W / 2, block_tiles = (r1 - r0) * Q2, wp = W + 18; // a padded row: 18 floats from any chunk
    float *padded = cg_thread_floats_aligned(&buffer, 4 * (r1 - r0) * wp);
    // zeros once: each channel then writes the same places (the image's columns of the rows
    // inside it), and the others stay zero
    memset(padded, 0, (size_t)(4 * (r1 - r0) * wp) * sizeof(float));
    for (int64_t c = 0; c < C; c++) {
        for (int64_t r = r0, n = r0 / H2, ty = r0 % H2; r < r1; r++, next_row(&n, &ty, H2)) {
            const float *plane = in + n * image_stride + c * channel_stride;
            for (int i = 0; i < 4; i++) {
                int64_t h = 2 * ty - 1 + i;
                float *row = padded + (4 * (r - r0) + i) * wp; // row[1 + x]: column x
                if (h >= 0 && h < H)
                    for (int64_t x = 0; x < W; x++) row[1 + x] = plane[h * W + x];
            }
        }
        for (int64_t r = r0; r < r1; r++) {
            int64_t j0 = (r - r0) * Q2;
            for (int64_t tx0 = 0; tx0 < Q2; tx0 += 8) {
                int64_t tiles = Q2 - tx0 < 8 ? Q2 - tx0 : 8;
                f8 col[4][4]; // col[i][j] lane t: row i, column j of tile tx0 + t's patch
                for (int i = 0; i < 4; i++) {
                    const float *d = padded + (4 * (r - r0) + i) * wp + 2 * tx0; // column 2 tx0 - 1 on
                    f8 a, b, a2, b2;
                    memcpy(&a, d, sizeof a), memcpy(&b, d + 8, sizeof b);
                    memcpy(&a2, d + 2, sizeof a2), memcpy(&b2, d + 10, sizeof b2);
                    col[i][0] = EVEN8(a, b), col[i][1] = ODD8(a, b), col[i][2] = EVEN8(a2, b2), col[i][3] = ODD8(a2, b2);
                }
                for (int i = 0; i < 4; i++) {
                    f8 row[4]; // row i of B^T d, column by column
                    for (int j = 0; j < 4; j++)
                        row[j] = i == 0 ? col[0][j] - col[2][j]
                               : i == 1 ? col[1][j] + col[2][j]
                               : i == 2 ? col[2][j] - col[1][j]
                                        : col[1][j] - col[3][j];
                    f8 v[4] = {row[0] - row[2], row[1] + row[2], row[2] - row[1], row[1] - row[3]};
                    for (int j = 0; j < 4; j++) {
                        float *to = V + (4 * i + j) * matrix_floats(C, ld) + c * ld + j0 + tx0;
                        if (j0 + tx0 + 8 <= block_tiles)
                            memcpy(to, &v[j], sizeof v[j]);
                        else
                            for (int t = 0; t < tiles; t++) to[t] = v[j][t];
                    }
                }
            }
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

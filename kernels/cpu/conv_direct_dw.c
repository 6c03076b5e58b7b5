// conv_direct_dw.c: the weight gradient of a fused conv 3 x 3 (stride 1, padding 1) + bias + ReLU
// + 2 x 2 max pooling block (the tutorial CNN's two blocks; CIFAR's first), straight from the
// pooled gradient, with output channels (here), input channels or windows in the vector lanes;
// and its bias gradient, asked for
// where no dx is wanted (a first layer). dx, when wanted, comes from conv.c's path (which then
// skips dW's columns and product). False (nothing done) for other shapes; without AVX-512, only
// whole vectors of 8 input channels, in the compiler's vectors (at the end of this file).
//
// The convolution's output gradient is zero except at each window's maximum (and there only where
// the ReLU let it through, y > 0): of a window's 4 positions, one takes the window's gradient g,
// the others nothing. So dW[k][c][r][s] = sum over the windows of g[k] x xpad[c][2 p + a_k + r]
// [2 q + b_k + s], (a_k, b_k) the position of output channel k's maximum in window (p, q): 9
// multiply-adds per window, input and output channel, where the dense product (the unpooled
// gradient, im2col and a GEMM) does 36, three of four of them times zero. For the tutorial's
// second block (32 -> 64 channels) that product was half of the block's backward.
//
// The 4 x 4 padded pixels of input channel c that a window's 4 positions and 9 taps read are its
// "patch", 16 floats in a row (made once per image, shared by all output channels). Output
// channel k's tap (r, s) is patch element base_k + 4 r + s, base_k = 4 a_k + b_k (0, 1, 4 or 5).
// A vector of 16 output channels loads the patch from element 4 r + s (16 floats, the patch and
// what follows it) and picks lane base_k for lane k with one permutation (vpermps, its index
// vector the 16 bases): then one FMA per tap and vector. The bases are `where` transposed to
// window-major (where_bases), the gradients the pooled dy, masked by y > 0 and transposed (dyT),
// as the FMAs need them channel by channel in the lanes. For each input channel and 32 output
// channels, 18 sums stay in registers over an image's windows. With whole vectors of input
// channels (the second block's 32), they go in the lanes instead (conv_direct_dw_channels.c): an
// output channel's maximum is then one position for all of them, its taps rows of the image
// transposed, and no permutation is needed. With one input channel (the tutorial's first block)
// the patches' preparation is shared by nothing, and the windows go in the lanes instead
// (conv_direct_dw_one_channel.c): 16 windows of one output channel a vector, their taps chosen
// from 16 "sub-planes" of the image by two blends.
//
// The order of the sums: each dW element adds its windows' terms by fused multiply-adds,
// window after window (row by row) and image after image through a group of `group` images,
// starting from zero; the groups' sums are added to dW in group order. Not conv.c's order (the
// GEMM sums positions in blocks of 256): the results differ from that path's in the last bits,
// the same on 1 thread or many. With the windows in the lanes, lane l sums the windows i = l mod 16
// (in order, image after image) and the group's sum is its 16 lanes added in order. tests/
// test_conv_fused_cpu.c checks them bit for bit against sums written in these orders, and against the
// sums in double. db is conv.c's, bit for bit (sum_lanes, channel_windows).
#include "core/half.h"
#include "kernels/cpu/conv_direct_dw.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vec8.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#ifdef CG_DW_WINDOWS
#include "kernels/cpu/transpose16.h"

void *conv_dw_scratch(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[4];
    return cg_thread_floats_aligned(&buffers[which], (bytes + 3) / 4);
}

// The 8 lanes of conv.c's plane sum (unpool_plane: lane l sums the windows i = l mod 8 in order,
// the last n mod 8 windows go one after the other into lane 0, then the lanes are added in order
// to 0): the sums of 16 channels side by side,
// from the transposed gradient (16 windows of 16 channels, window i0 + j in g[j]). The same
// additions of the same values (0 where y <= 0) in the same order: db has the same bits as on
// that path (test_conv_fused_cpu compares them). Summed apart, one plane at a time, the lanes' chain
// waited on the adder at each step and took a sixth of the backward.
static inline __attribute__((always_inline)) void sum_lanes(__m512 lanes[8], const __m512 g[16], int64_t i0,
                                                           int64_t n) {
    int64_t n8 = n / 8 * 8;
    if (i0 + 16 <= n8) { // a whole block: constant lanes, kept in registers
        for (int j = 0; j < 16; j++) lanes[j % 8] = _mm512_add_ps(lanes[j % 8], g[j]);
        return;
    }
    for (int j = 0; j < 16 && i0 + j < n; j++) {
        int l = i0 + j < n8 ? j % 8 : 0;
        lanes[l] = _mm512_add_ps(lanes[l], g[j]);
    }
}

// 64 windows (i0 ..) of `where` for up to 32 channels (planes `plane` bytes apart from row; rows
// past nch: 0xff bytes, never read) transposed to window-major: bases[win 32 + k] = the offset of
// channel k's maximum in the window's 4 x 4 patch (top left 0, top right 1, bottom left 4, bottom
// right 5: where + (where & 2)). Three rounds of unpacks inside the 128-bit lanes turn 8 channels x
// 16 windows into 8-byte rows (one window's 8 channels), two more gather the 4 groups of 8
// channels: each window's 32 bytes, one 32-byte store. 3.5 shuffles a window.
static void where_bases(uint8_t *bases, const uint8_t *row, int64_t plane, int64_t nch, int64_t i0, int64_t valid) {
    __mmask64 vm = valid >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << valid) - 1;
    __m512i v[4][8]; // v[group][m], 128-bit lane L: windows 16 L + 2 m and + 1, 8 channels each
    const __m512i two = _mm512_set1_epi8(2);
    for (int grp = 0; grp < 4; grp++) {
        __m512i z[8], p[8], q[8];
        for (int a = 0; a < 8; a++) {
            int64_t k = grp * 8 + a;
            z[a] = k < nch ? _mm512_maskz_loadu_epi8(vm, row + k * plane + i0) : _mm512_set1_epi8(-1);
            z[a] = _mm512_add_epi8(z[a], _mm512_and_si512(z[a], two)); // 0 1 2 3 -> 0 1 4 5
        }
        for (int a = 0; a < 8; a += 2) { // channel pairs: windows 0..7 (p[a]) and 8..15 (p[a + 1]) of each lane
            p[a] = _mm512_unpacklo_epi8(z[a], z[a + 1]);
            p[a + 1] = _mm512_unpackhi_epi8(z[a], z[a + 1]);
        }
        for (int h = 0; h < 2; h++) // channels 4 h .. 4 h + 3: windows 0-3, 4-7, 8-11, 12-15
            for (int e = 0; e < 2; e++) {
                q[4 * h + 2 * e] = _mm512_unpacklo_epi16(p[4 * h + e], p[4 * h + 2 + e]);
                q[4 * h + 2 * e + 1] = _mm512_unpackhi_epi16(p[4 * h + e], p[4 * h + 2 + e]);
            }
        for (int s = 0; s < 4; s++) { // 8 channels: windows 4 s, 4 s + 1 (m = 2 s) and 4 s + 2, 4 s + 3
            v[grp][2 * s] = _mm512_unpacklo_epi32(q[s], q[4 + s]);
            v[grp][2 * s + 1] = _mm512_unpackhi_epi32(q[s], q[4 + s]);
        }
    }
    const __m512i lanes01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i lanes23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int m = 0; m < 8; m++)
        for (int e = 0; e < 2; e++) { // window 2 m + e of each lane
            __m512i lo = e ? _mm512_unpackhi_epi64(v[0][m], v[1][m]) : _mm512_unpacklo_epi64(v[0][m], v[1][m]);
            __m512i hi = e ? _mm512_unpackhi_epi64(v[2][m], v[3][m]) : _mm512_unpacklo_epi64(v[2][m], v[3][m]);
            __m512i pair[2] = {_mm512_permutex2var_epi64(lo, lanes01, hi),  // windows r, r + 16
                               _mm512_permutex2var_epi64(lo, lanes23, hi)}; // r + 32, r + 48
            for (int t = 0; t < 4; t++) {
                int64_t win = 16 * t + 2 * m + e;
                if (win >= valid) continue;
                __m256i w32 = t % 2 ? _mm512_extracti64x4_epi64(pair[t / 2], 1) : _mm512_castsi512_si256(pair[t / 2]);
                _mm256_storeu_si256((__m256i *)(bases + (i0 + win) * 32), w32);
            }
        }
}

// Image n's inputs to the window loops: its patches, channel by channel (C x pooled x 16 floats:
// patches[(c pooled + i) 16 + 4 a + b] = xpad[c][2 p + a][2 q + b], window i = p Q2 + q, xpad the
// image with a border of zeros, xp a channel's scratch); dyT (pooled x K floats: dyT[i K + k] =
// dy[k][i] where y[k][i] > 0, else 0), transposed 16 channels x 16 windows at a time in
// registers; for each group of 32 output channels, the bases (where_bases); and each output
// channel's plane sum into sums[k] (db).
static void prepare_image(float *patches, float *xp, float *dyT, uint8_t *bases, int64_t wins, double *sums,
                          const float *x, const float *dy, const float *y, const uint8_t *where, int64_t n, int64_t C,
                          int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q) {
    int64_t P2 = P / 2, Q2 = Q / 2, pooled = P2 * Q2;
    memset(xp, 0, (size_t)((H + 2) * PADDED_W) * sizeof(float)); // the border stays zero
    for (int64_t c = 0; c < C; c++) {
        for (int64_t h = 0; h < H; h++)
            memcpy(xp + (h + 1) * PADDED_W + 1, x + ((n * C + c) * H + h) * W, (size_t)W * sizeof(float));
        float *pc = patches + c * pooled * 16;
        for (int64_t p = 0; p < P2; p++)
            for (int64_t q = 0; q < Q2; q++)
                for (int a = 0; a < 4; a++)
                    _mm_storeu_ps(pc + (p * Q2 + q) * 16 + 4 * a, _mm_loadu_ps(xp + (2 * p + a) * PADDED_W + 2 * q));
    }
    for (int64_t v = 0; v < K / LANES; v++) {
        __m512 lanes[8];
        for (int l = 0; l < 8; l++) lanes[l] = _mm512_setzero_ps();
        for (int64_t i0 = 0; i0 < pooled; i0 += 16) {
            __mmask16 valid = (__mmask16)(pooled - i0 >= 16 ? 0xffff : (1u << (pooled - i0)) - 1);
            __m512 g[16];
            for (int c = 0; c < 16; c++) {
                int64_t plane = (n * K + v * LANES + c) * pooled + i0;
                __m512 yv = _mm512_maskz_loadu_ps(valid, y + plane);
                g[c] = _mm512_maskz_loadu_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), dy + plane);
            }
            cg_transpose16(g);
            for (int j = 0; j < 16; j++) _mm512_storeu_ps(dyT + (i0 + j) * K + v * LANES, g[j]);
            sum_lanes(lanes, g, i0, pooled);
        }
        __m512 sum = _mm512_add_ps(_mm512_setzero_ps(), lanes[0]);
        for (int l = 1; l < 8; l++) sum = _mm512_add_ps(sum, lanes[l]);
        float s16[LANES];
        _mm512_storeu_ps(s16, sum);
        for (int c = 0; c < LANES; c++) sums[v * LANES + c] = s16[c];
    }
    for (int64_t k0 = 0; k0 < K; k0 += 32) {
        uint8_t *b = bases + k0 / 32 * wins * 32;
        const uint8_t *row = where + (n * K + k0) * pooled;
        int64_t nch = K - k0 < 32 ? K - k0 : 32;
        for (int64_t i0 = 0; i0 < pooled; i0 += 64) {
            if (pooled - i0 >= 16) {
                where_bases(b, row, pooled, nch, i0, pooled - i0 < 64 ? pooled - i0 : 64);
                continue;
            }
            // A short tail (the tutorial's last 4 windows of 196) byte by byte: where_bases
            // transposes a whole block of 64 for them.
            for (int64_t i = i0; i < pooled; i++)
                for (int64_t k = 0; k < nch; k++) {
                    uint8_t at = row[k * pooled + i];
                    b[i * 32 + k] = (uint8_t)(at + (at & 2));
                }
        }
    }
}

// The next image's inputs (y, dy: K x pooled floats each, `where`: K x pooled bytes), asked for
// into the second-level cache a few lines at a time while the window loop of this image runs
// (ahead, conv_direct_dw.h). Without it, prepare_image read its 56 KB from the third-level
// cache with 32 planes interleaved, which the hardware prefetchers follow badly: that reading, not
// the transposes, was the largest part of its time (with the transposes taken out, the backward
// ran no faster; with dyT not made at all, 38 -> 66 % of the peak).

// The windows of one image for channels k0 .. k0 + 16 nv - 1 (their group of 32's bases), added to
// acc: per window, the gradient vectors, the bases widened to 32-bit indices, and per tap one load
// of the patch from element 4 r + s, one permutation and one FMA per vector. 18 independent chains
// (9 taps x 2 vectors) cover the FMA's latency.
static inline __attribute__((always_inline)) void image_windows(__m512 acc[9][2], const float *patches,
                                                                const float *dyT, const uint8_t *bases,
                                                                int64_t pooled, int64_t Q2, int64_t K, int64_t k0,
                                                                const int nv, ahead *pf, int per_row) {
    for (int64_t i = 0; i < pooled; i++) {
        const float *pt = patches + i * 16, *g = dyT + i * K + k0;
        const uint8_t *b = bases + i * 32;
        __m512 g0 = _mm512_loadu_ps(g), g1 = nv > 1 ? _mm512_loadu_ps(g + LANES) : g0;
        __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b));
        __m512i b1 = nv > 1 ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + LANES))) : b0;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++) {
                __m512 xq = _mm512_loadu_ps(pt + 4 * r + s);
                acc[r * 3 + s][0] = _mm512_fmadd_ps(g0, _mm512_permutexvar_ps(b0, xq), acc[r * 3 + s][0]);
                if (nv > 1)
                    acc[r * 3 + s][1] = _mm512_fmadd_ps(g1, _mm512_permutexvar_ps(b1, xq), acc[r * 3 + s][1]);
            }
        if ((i + 1) % Q2 == 0) ask_ahead(pf, per_row); // a pooled row's share of the next image's inputs
    }
}

bool conv2d_relu_pool_dw_windows_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                       int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    return C >= 1 && C <= MAX_C && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W && W <= MAX_W &&
           H <= MAX_H && P >= 2 && Q >= 2 && K % LANES == 0 && K > 0 && K <= MAX_K;
}

// The two entries below: dW added to dw (f32) in group order; db either added to dbias in f32
// (conv.c's) or, with bf16 inputs (half: one input channel, or whole vectors of them without db),
// its exact sums in double returned in db_sums (bf16_ops.c rounds them as its own).
static bool windows_dw(float *dw, float *dbias, double *db_sums, const void *dy_, const void *y_,
                       const uint8_t *where, const void *x_, bool half, bool pairs, int64_t N, int64_t C, int64_t H,
                       int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                       int64_t group) {
    if (!conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q) || N < 1)
        return false;
    // bf16 inputs: one input channel (its windows in the lanes, db's sums too), or whole vectors of
    // input channels without db (the input channels in the lanes)
    if (half && C != 1 && (C % LANES != 0 || db_sums != NULL)) return false;
    // vdpbf16ps's pairs: 32 windows a step with one input channel, else 32 input channels (no db)
    if (pairs && (!half || (C != 1 && (C % 32 != 0 || db_sums != NULL)))) return false;
    if (dw == NULL && dbias == NULL && db_sums == NULL) return true;
    const float *dy = dy_, *y = y_, *x = x_; // f32 unless half: then only load16 reads dy_, y_, x_
    int64_t Q2 = Q / 2, P2 = P / 2, pooled = P2 * Q2, groups = (N + group - 1) / group, c9 = C * 9;
    int64_t wins = (pooled + 63) / 64 * 64, kg = (K + 31) / 32; // windows rounded up to where_bases' blocks
    int64_t xp_floats = (H + 2) * PADDED_W, dyt_floats = wins * K;
    // Input channels in the lanes (image_by_input_channels): the slices (groups, K, 9, C); else (groups, C 9, K)
    bool by_input = C % LANES == 0 && dbias == NULL;
    // dW^T per group, in a buffer the calling thread keeps from call to call: allocated at each
    // call (2.4 MB for the tutorial's second block at batch 128), its pages were mapped and zeroed
    // by the kernel at each training step (page faults on the first thread alone, under perf)
    static _Thread_local cg_thread_buffer slices_buffer;
    float *slices = cg_thread_floats_aligned(&slices_buffer, groups * c9 * K);
    double *sums = cg_xmalloc((size_t)(groups * K) * sizeof(double));     // (groups, K): db per group
    bool threads = N > 1 && N * K * P * Q * c9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * group, count = N - n0 < group ? N - n0 : group;
        // The group's sums, dW^T: slice[(c 9 + t) K + k], carried from image to image (each element
        // one chain of FMAs: stored and loaded back as it is)
        float *slice = slices + g * c9 * K;
        memset(slice, 0, (size_t)(c9 * K) * sizeof(float));
        for (int64_t k = 0; k < K; k++) sums[g * K + k] = 0.0;
        if (C == 1 && pairs) { // the windows in the lanes, two a vdpbf16ps (conv_direct_dw_one_channel.c)
            conv_dw_group_by_window_pairs(slice, sums + g * K, dy_, y_, where, x_, n0, count, H, W, K, dw != NULL);
            continue;
        }
        if (C == 1) { // the windows in the lanes (conv_direct_dw_one_channel.c)
            conv_dw_group_by_window_lanes(slice, sums + g * K, dy_, y_, where, x_, half, n0, count, H, W, K,
                                          dw != NULL);
            continue;
        }
        if (by_input) { // the input channels in the lanes (conv_direct_dw_channels.c)
            conv_dw_group_by_input_channels(slice, dy_, y_, where, x_, half, pairs, n0, count, C, H, W, K);
            continue;
        }
        // The patches: one image at a time, prepared and then summed while its inputs are in the
        // first- or second-level cache (CIFAR's first block: 32 KB of dyT, 48 KB of patches, 8 KB of
        // bases).
        float *xp = conv_dw_scratch(0, xp_floats * (int64_t)sizeof(float));
        float *dyT = conv_dw_scratch(1, dyt_floats * (int64_t)sizeof(float));
        // + 16 floats: the last window's loads from element 4 r + s reach 10 past its patch
        float *patches = conv_dw_scratch(2, (C * pooled * 16 + 16) * (int64_t)sizeof(float));
        uint8_t *bases = conv_dw_scratch(3, kg * wins * 32);
        double image_sums[MAX_K];
        for (int64_t j = 0; j < count; j++) {
            prepare_image(patches, xp, dyT, bases, wins, image_sums, x, dy, y, where, n0 + j, C, H, W, K, P, Q);
            for (int64_t k = 0; k < K; k++) sums[g * K + k] += image_sums[k];
            if (dw == NULL) continue;
            // The next image's inputs (y, dy, where), asked for a share at each pooled row of this
            // image's window loops (kg C of them: one per group of 32 output channels and input
            // channel), rounded up.
            int64_t next = n0 + j + 1, floats = K * pooled, bytes = 2 * floats * (int64_t)sizeof(float) + floats;
            ahead pf = {{NULL}, {NULL}}; // nothing to ask for after the last image
            if (next < N) {
                const char *ys = (const char *)(y + next * floats), *dys = (const char *)(dy + next * floats);
                const char *ws = (const char *)(where + next * floats);
                pf = (ahead){{ys, dys, ws}, {ys + floats * sizeof(float), dys + floats * sizeof(float), ws + floats}};
            }
            int per_row = (int)((bytes + 63) / 64 / (P2 * kg * C) + 1);
            for (int64_t k0 = 0; k0 < K; k0 += 2 * LANES) {
                const uint8_t *b = bases + k0 / 32 * wins * 32;
                int nv = K - k0 >= 2 * LANES ? 2 : 1;
                for (int64_t c = 0; c < C; c++) {
                    __m512 acc[9][2];
                    float *at = slice + c * 9 * K + k0;
                    load_sums(acc, at, K, nv);
                    const float *pc = patches + c * pooled * 16;
                    if (nv > 1)
                        image_windows(acc, pc, dyT, b, pooled, Q2, K, k0, 2, &pf, per_row);
                    else
                        image_windows(acc, pc, dyT, b, pooled, Q2, K, k0, 1, &pf, per_row);
                    store_sums(at, acc, K, nv);
                }
            }
        }
    }
    // The slices into dW (K, C, 3, 3) in group order, and db: conv.c's additions in conv.c's order.
    // With the input channels in the lanes the slices are (K, 9, C): each output channel's part of
    // dW is turned into that layout, the groups added to it as whole rows (vectors), and turned
    // back, the output channels shared out to the threads; each element gets the same additions in
    // the same order as when they went into dW one strided element at a time (a scalar loop on one
    // thread that took 3 % of a bf16 training step on Zen 5, 2 % of an fp32 one).
    if (dw && by_input) {
        float *dwt = cg_xmalloc((size_t)(c9 * K) * sizeof(float)); // dW as (K, 9, C)
#pragma omp parallel for if (threads)
        for (int64_t k = 0; k < K; k++) {
            float *row = dwt + k * c9; // output channel k's 9 C sums, tap by tap
            for (int t = 0; t < 9; t++)
                for (int64_t c = 0; c < C; c++) row[t * C + c] = dw[k * c9 + c * 9 + t];
            for (int64_t g = 0; g < groups; g++)
                for (int64_t i = 0; i < c9; i++) row[i] += slices[(g * K + k) * c9 + i];
            for (int t = 0; t < 9; t++)
                for (int64_t c = 0; c < C; c++) dw[k * c9 + c * 9 + t] = row[t * C + c];
        }
        free(dwt);
    } else if (dw)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t e = 0; e < c9; e++) dw[k * c9 + e] += slices[(g * c9 + e) * K + k];
    for (int64_t k = 0; (dbias || db_sums) && k < K; k++) {
        double sum = 0.0;
        for (int64_t g = 0; g < groups; g++) sum += sums[g * K + k];
        if (dbias) dbias[k] += (float)sum;
        if (db_sums) db_sums[k] = sum;
    }
    free(sums);
    return true;
}

bool conv2d_relu_pool_dw_windows_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                     const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                     int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    return windows_dw(dw, dbias, NULL, dy, y, where, x, false, false, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}

bool conv2d_relu_pool_dw_windows_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                          const uint8_t *where, const uint16_t *x, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                          int64_t P, int64_t Q, int64_t group) {
    return windows_dw(dw, NULL, db_sums, dy, y, where, x, true, false, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}

bool conv2d_relu_pool_dw_windows_pairs_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                                const uint8_t *where, const uint16_t *x, int64_t N, int64_t C,
                                                int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                                int64_t pad, int64_t P, int64_t Q, int64_t group) {
    return windows_dw(dw, NULL, db_sums, dy, y, where, x, true, true, N, C, H, W, K, R, S, stride, pad, P, Q, group);
}
#else // CG_DW_WINDOWS: no AVX-512

// The same dW, one term per window, in the compiler's vectors of 8 floats (vec8.h), for whole vectors of input channels (C a multiple of 8, the
// tutorial's second block): the input channels in the lanes, as conv_direct_dw_channels.c has
// them. Each image is laid out padded and channels-last (xp[(h + 1) (W + 2) + w + 1][c], zeros
// around), so that an output channel's tap (r, s) at a window is C consecutive floats. For each
// output channel and row of taps, 3 taps x up to 4 vectors of channels are 12 sums in registers
// over the group's windows (images in order, windows row by row): each sum one chain of FMAs from
// zero, the order written at the top of this file, so the same bits as there. bf16 stays on its
// tile product (no AVX512-BF16 here). On one Zen 1 core the dense product this replaces ran at 31
// GFLOP/s, about the core's peak; here a quarter of its multiply-adds.

bool conv2d_relu_pool_dw_windows_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                       int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    return C >= 8 && C % 8 == 0 && R == 3 && S == 3 && stride == 1 && pad == 1 && P == H && Q == W &&
           P >= 2 && Q >= 2 && K >= 1;
}

// Output channel k's taps (r, 0 .. 2) over an image's windows for channels c0 .. c0 + 8 nv - 1:
// slice[(9 k + 3 r + s) C + c] (K, 9, C) += the terms, from what it holds. Window i's tap (0, 0)
// at its maximum is xp + offset[i], worked out once per window and output channel.
static inline __attribute__((always_inline)) void tap_row(float *slice, const float *xp, const float *g,
                                                          const int64_t *offset, int64_t terms, int64_t C, int64_t k,
                                                          int r, int64_t wp, int64_t c0, const int nv) {
    f8 acc[3][4];
    float *out = slice + (9 * k + 3 * r) * C + c0;
    CG_UNROLL for (int s = 0; s < 3; s++)
        CG_UNROLL for (int v = 0; v < nv; v++) memcpy(&acc[s][v], out + s * C + 8 * v, sizeof acc[s][v]);
    for (int64_t i = 0; i < terms; i++) {
        const float *at = xp + offset[i] + r * wp * C + c0;
        f8 gv = (f8){0} + g[i];
        CG_UNROLL for (int s = 0; s < 3; s++)
            CG_UNROLL for (int v = 0; v < nv; v++) {
                f8 xv;
                memcpy(&xv, at + s * C + 8 * v, sizeof xv);
                acc[s][v] += gv * xv;
            }
    }
    CG_UNROLL for (int s = 0; s < 3; s++)
        CG_UNROLL for (int v = 0; v < nv; v++) memcpy(out + s * C + 8 * v, &acc[s][v], sizeof acc[s][v]);
}

bool conv2d_relu_pool_dw_windows_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                     const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                     int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group) {
    if (!conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q) || N < 1) return false;
    if (dw == NULL && dbias == NULL) return true;
    int64_t Q2 = Q / 2, P2 = P / 2, pooled = P2 * Q2, groups = (N + group - 1) / group, c9 = C * 9, wp = W + 2;
    int64_t image_floats = (H + 2) * wp * C;
    static _Thread_local cg_thread_buffer slices_buffer;
    float *slices = cg_thread_floats_aligned(&slices_buffer, groups * c9 * K); // (groups, K, 9, C)
    double *sums = cg_xmalloc((size_t)(groups * K) * sizeof(double));           // (groups, K): db per group
    bool threads = N > 1 && N * K * P * Q * c9 >= CG_OMP_MIN_WORK;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t gi = 0; gi < groups; gi++) {
        static _Thread_local cg_thread_buffer buffers[3];
        int64_t n0 = gi * group, count = N - n0 < group ? N - n0 : group;
        float *slice = slices + gi * c9 * K, *xp = cg_thread_floats_aligned(&buffers[0], image_floats);
        float *g = cg_thread_floats_aligned(&buffers[1], pooled);
        int64_t *offset = (int64_t *)cg_thread_floats_aligned(&buffers[2], 2 * pooled);
        memset(slice, 0, (size_t)(c9 * K) * sizeof(float));
        memset(xp, 0, (size_t)image_floats * sizeof(float)); // the padding stays zero from image to image
        for (int64_t k = 0; k < K; k++) sums[gi * K + k] = 0.0;
        // Image after image (each sum goes on from where the last image left it in the slice: the
        // same order): one image's channels-last copy (32 KB for the second block) stays in the
        // first-level cache while every output channel reads it. (The group's 4 images at once, 128
        // KB, were read from the second-level cache; image after image, with the offsets below
        // worked out once, this loop's share of a training step went from 15.6 to 13.8 %.)
        for (int64_t j = 0; j < count; j++) {
            for (int64_t c = 0; c < C; c++) // channels last, padded
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < W; w++)
                        xp[((h + 1) * wp + w + 1) * C + c] = x[(((n0 + j) * C + c) * H + h) * W + w];
            for (int64_t k = 0; k < K; k++) {
                // the image's windows: gradient (0 where the ReLU stopped it) and the padded
                // position of tap (0, 0) at its maximum; db as conv.c's unpool_plane adds it (8
                // lanes, then in order, then the images in double)
                // (row and column by two loops: i / Q2 and i % Q2 were a 64-bit division per
                // window, tens of cycles on a Zen 1 core; with the sums unrolled into registers,
                // this function's share of a training step there went from 15.4 to 13.7 %)
                float lanes[8] = {0};
                for (int64_t p = 0, i = 0; p < P2; p++)
                    for (int64_t q = 0; q < Q2; q++, i++) {
                        int64_t at = ((n0 + j) * K + k) * pooled + i;
                        float dyv = dy[at], gv = y[at] > 0.0f ? dyv : 0.0f;
                        g[i] = gv;
                        offset[i] = ((2 * p + where[at] / 2) * wp + 2 * q + where[at] % 2) * C;
                        if (dbias) lanes[i < pooled / 8 * 8 ? i % 8 : 0] += gv;
                    }
                float plane = 0.0f;
                for (int l = 0; l < 8; l++) plane += lanes[l];
                sums[gi * K + k] += plane;
                if (dw == NULL) continue;
                for (int r = 0; r < 3; r++)
                    for (int64_t c0 = 0; c0 < C; c0 += 32) {
                        int nv = C - c0 >= 32 ? 4 : (int)(C - c0) / 8;
                        if (nv == 4)
                            tap_row(slice, xp, g, offset, pooled, C, k, r, wp, c0, 4);
                        else if (nv == 3)
                            tap_row(slice, xp, g, offset, pooled, C, k, r, wp, c0, 3);
                        else if (nv == 2)
                            tap_row(slice, xp, g, offset, pooled, C, k, r, wp, c0, 2);
                        else
                            tap_row(slice, xp, g, offset, pooled, C, k, r, wp, c0, 1);
                    }
            }
        }
    }
    // the slices into dW (K, C, 3, 3) in group order, and db over the groups (conv.c's order)
    for (int64_t gi = 0; dw && gi < groups; gi++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < C; c++)
                for (int t = 0; t < 9; t++) dw[(k * C + c) * 9 + t] += slices[((gi * K + k) * 9 + t) * C + c];
    for (int64_t k = 0; dbias && k < K; k++) {
        double sum = 0.0;
        for (int64_t gi = 0; gi < groups; gi++) sum += sums[gi * K + k];
        dbias[k] += (float)sum;
    }
    free(sums);
    return true;
}

bool conv2d_relu_pool_dw_windows_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                          const uint8_t *where, const uint16_t *x, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                          int64_t P, int64_t Q, int64_t group) {
    // As the AVX-512 entry for input channels without db: the values widened (exact), then the
    // f32 entry's sums, so its bits.
    if (!conv2d_relu_pool_dw_windows_takes(C, H, W, K, R, S, stride, pad, P, Q) || N < 1 || db_sums) return false;
    int64_t pooled = N * K * (P / 2) * (Q / 2), nx = N * C * H * W;
    float *f = cg_xmalloc((size_t)(2 * pooled + nx) * sizeof(float)), *fy = f + pooled, *fx = fy + pooled;
    cg_bf16_to_f32_array(f, dy, pooled), cg_bf16_to_f32_array(fy, y, pooled), cg_bf16_to_f32_array(fx, x, nx);
    if (dw) conv2d_relu_pool_dw_windows_cpu(dw, NULL, f, fy, where, fx, N, C, H, W, K, R, S, stride, pad, P, Q, group);
    free(f);
    return true;
}

bool conv2d_relu_pool_dw_windows_pairs_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                                const uint8_t *where, const uint16_t *x, int64_t N, int64_t C,
                                                int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                                int64_t pad, int64_t P, int64_t Q, int64_t group) {
    (void)dw, (void)db_sums, (void)dy, (void)y, (void)where, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K;
    (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q, (void)group;
    return false; // without AVX-512: the FMAs' kernel or bf16_ops.c's tile product
}
#endif

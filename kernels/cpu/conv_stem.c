// conv_stem.c: a network's first convolution (a 3-channel image, 64 output channels: ResNet-18's
// 7 x 7 stride-2 stem) as a direct convolution with the output channels in the vector lanes: its
// forward and its weight gradient. Not dx (the image needs none), nor other shapes (false: conv.c's
// im2col + GEMM then runs). Its forward here is for rows of fewer than 16 outputs: wider ones go
// to conv_stem_rows.c (the positions in the lanes, no transposition; ResNet-18's stem 125 -> 152
// GFLOP/s on one core).
//
// Why: through im2col and the GEMM each output is a product of only C*R*S = 147 steps, and the
// columns (147 rows, every input value copied 12 times with a stride-2 gather) cost a third of
// the GEMM's time: the stem ran at 50 % of the peak, forward and backward. Here the image is read
// where it is, padded once: for the forward, the 64 output channels of 6 positions are 24 vectors
// of sums, and each step (c, r, s) adds a broadcast input value times the 4 vectors of that
// step's 64 weights (9 KB of weights per 16 steps, read from the first-level cache); for dW, the
// 64 channels of 6 steps are 24 vectors, and each position adds its dy (64 channels, dy
// transposed a block at a time) times 6 broadcast input values.
//
// The same bits as the GEMM: each sum is the same fused multiply-adds in the same order (the
// forward over c, r, s from zero, one block of the GEMM's K, then the bias; dW over the positions
// in blocks of CG_GEMM_KC, each block's sum added to the group's, the groups' to dW in order, as
// conv.c's slices), and the padding's zeros add nothing (x + 0 * w = x for any x the sums reach).
#include "kernels/cpu/conv_parts.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/transpose.h"
#include "kernels/cpu/threads.h"

#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#define STEM_K 64         // output channels: 4 vectors of 16
#define STEM_CRS_MAX 160  // steps (c, r, s): the transposed weights (40 KB) fit the first-level cache
#define STEM_C_MAX 4      // input channels: an image (more channels: the GEMM's products are long enough)
#define POSITIONS 6       // forward: positions per tile (6 x 4 vectors of sums, 4 of weights: 28 registers)
#define STEPS 6           // dW: steps per tile (6 x 4 vectors of sums, 4 of dy)
#define BLOCK 384         // forward: positions per block, transposed to NCHW together (64 tiles; 96 KB: 96
                          // positions ran at 64 % of the peak, 384 at 69 %: longer runs of each plane written)
#define GROUP 4           // dW: images per group, as conv.c's slices

static bool stem_shape(int64_t C, int64_t K, int64_t R, int64_t S) {
    return K == STEM_K && C <= STEM_C_MAX && C * R * S <= STEM_CRS_MAX && C * R * S <= CG_GEMM_KC;
}

static float *scratch(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[4];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// The padded images of the whole batch, made by the calling thread's team and read by all:
// image n at n * C*Hp*Wp, xp[c][h][w] = x[c][h - pad][w - pad], zero outside. Hp x Wp is what the
// output positions reach: (P-1) stride + R rows, (Q-1) stride + S columns.
static float *padded_batch(int64_t floats) {
    static _Thread_local cg_thread_buffer buffer;
    return cg_thread_floats_aligned(&buffer, floats);
}

static void pad_batch(float *xp, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t Hp,
                      int64_t Wp, bool threads) {
#pragma omp parallel for if (threads)
    for (int64_t plane = 0; plane < N * C; plane++)
        for (int64_t h = 0; h < Hp; h++) {
            float *row = xp + (plane * Hp + h) * Wp;
            int64_t hs = h - pad, left = pad < Wp ? pad : Wp, n = W < Wp - left ? W : Wp - left;
            if (hs < 0 || hs >= H || n <= 0) {
                memset(row, 0, (size_t)Wp * sizeof(float));
                continue;
            }
            memset(row, 0, (size_t)left * sizeof(float));
            memcpy(row + left, x + (plane * H + hs) * W, (size_t)n * sizeof(float));
            memset(row + left + n, 0, (size_t)(Wp - left - n) * sizeof(float));
        }
}

// Where step e = (c, r, s) reads, from a position's top-left corner in the padded image.
static void step_offsets(int64_t *off, int64_t C, int64_t R, int64_t S, int64_t Hp, int64_t Wp) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) off[(c * R + r) * S + s] = (c * Hp + r) * Wp + s;
}

// Positions i0 .. i1-1 of one image's output (yn: its K planes), xp its padded image, wt the
// weights transposed (crs, 64). A tile of positions past i1 repeats its first one (not stored).
static void forward_block(float *yn, const float *xp, const float *wt, const int64_t *off, const float *bias,
                          int64_t crs, int64_t Wp, int64_t stride, int64_t Q, int64_t pq, int64_t i0, int64_t i1,
                          float *buf) {
    __m512 b[4];
    for (int v = 0; v < 4; v++) b[v] = bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();
    for (int64_t t0 = i0; t0 < i1; t0 += POSITIONS) {
        const float *px[POSITIONS];
        for (int t = 0; t < POSITIONS; t++) {
            int64_t i = t0 + t < i1 ? t0 + t : t0;
            px[t] = xp + i / Q * stride * Wp + i % Q * stride;
        }
        __m512 acc[POSITIONS][4];
        for (int t = 0; t < POSITIONS; t++)
            for (int v = 0; v < 4; v++) acc[t][v] = _mm512_setzero_ps();
        for (int64_t e = 0; e < crs; e++) {
            __m512 w0 = _mm512_loadu_ps(wt + e * 64), w1 = _mm512_loadu_ps(wt + e * 64 + 16);
            __m512 w2 = _mm512_loadu_ps(wt + e * 64 + 32), w3 = _mm512_loadu_ps(wt + e * 64 + 48);
            int64_t o = off[e];
            for (int t = 0; t < POSITIONS; t++) {
                __m512 xv = _mm512_set1_ps(px[t][o]);
                acc[t][0] = _mm512_fmadd_ps(xv, w0, acc[t][0]);
                acc[t][1] = _mm512_fmadd_ps(xv, w1, acc[t][1]);
                acc[t][2] = _mm512_fmadd_ps(xv, w2, acc[t][2]);
                acc[t][3] = _mm512_fmadd_ps(xv, w3, acc[t][3]);
            }
        }
        for (int t = 0; t < POSITIONS && t0 + t < i1; t++)
            for (int v = 0; v < 4; v++) _mm512_storeu_ps(buf + (t0 + t - i0) * 64 + 16 * v, _mm512_add_ps(acc[t][v], b[v]));
    }
    transpose_block(yn + i0, pq, buf, 64, i1 - i0, 64); // (positions, 64) to the 64 planes
}

bool conv2d_stem_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                             int64_t P, int64_t Q) {
    if (!stem_shape(C, K, R, S)) return false;
    // Rows of at least 16 outputs: the positions in the lanes (conv_stem_rows.c), no transposition.
    if (conv2d_stem_rows_forward_cpu(y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) return true;
    int64_t crs = C * R * S, pq = P * Q, Hp = (P - 1) * stride + R, Wp = (Q - 1) * stride + S;
    int64_t blocks = (pq + BLOCK - 1) / BLOCK;
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
    float *xp = padded_batch(N * C * Hp * Wp), *wt = scratch(0, crs * 64);
    int64_t off[STEM_CRS_MAX];
    step_offsets(off, C, R, S, Hp, Wp);
    transpose_block(wt, 64, w, crs, 64, crs); // wt[e][k] = w[k][e]
    pad_batch(xp, x, N, C, H, W, pad, Hp, Wp, threads);
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t t = 0; t < N * blocks; t++) {
        int64_t n = t / blocks, i0 = t % blocks * BLOCK, i1 = i0 + BLOCK < pq ? i0 + BLOCK : pq;
        forward_block(y + n * K * pq, xp + n * C * Hp * Wp, wt, off, bias, crs, Wp, stride, Q, pq, i0, i1,
                      scratch(1, BLOCK * 64));
    }
    return true;
}

// sum (crs, 64) += the product over one block of n positions: dyt (n, 64) their dy, at[f] where
// position f's top-left corner is in the padded batch. A tile is 6 steps (e0 .. e0+5) by all 64
// channels, 24 vectors of sums: each position's dy (4 vectors) is loaded once for the 6 steps and
// each input value (a broadcast) once for the 4 vectors, 10 loads for 24 FMAs. It replaces tiles
// of 7 steps (one kernel row) by 32 channels, 9 loads for 14 FMAs, which read dy twice and ran at
// 69 % of the peak. The steps' inputs are read through 6 pointers (xs[e] + at[f]), one address
// mode each, so a tile may cross kernel rows. A tile past crs repeats its last step (not stored).
//
// The caller hands a block's positions over SUB at a time (dyt: those of one part), first and
// last telling which part it is: the whole block's dy (256 positions, 64 KB) does not fit the
// first-level cache (48 KB) and was read from the second level by every tile; a part's dy (32
// KB), just transposed, is read from the first level by all 25 tiles. Between two parts a tile's
// 24 sums wait in part (crs, 64), as they are (a float stored and loaded back is the same float):
// each sum is still the same FMAs, from zero, over the block's positions in order, and only then
// added to sum. (Parts of 32 positions ran slower, 64 faster, 128 faster still.) And while a part
// is summed, the next part's dy is asked of the memory (next, next_n floats in each of the 64
// channel rows, pq apart): its transposition had waited for it, 11 % of the stem's backward.
#define SUB 128

// One tile of dw_block: steps (6, or 3 for a last short one; a constant once inlined, so that
// the sums stay in registers) by 64 channels, over n positions; left: the steps that exist.
static inline __attribute__((always_inline)) void dw_tile(const int steps, float *sum, float *pt,
                                                          const float *const *xs, const float *dyt,
                                                          const int64_t *at, int64_t n, bool first, bool last,
                                                          int64_t left) {
    __m512 acc[STEPS][4];
    for (int e = 0; e < steps; e++) // from zero, or from where the part before left them
        for (int v = 0; v < 4; v++) acc[e][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(pt + e * 64 + 16 * v);
    for (int64_t f = 0; f < n; f++) {
        int64_t a = at[f];
        __m512 d[4];
        for (int v = 0; v < 4; v++) d[v] = _mm512_loadu_ps(dyt + f * 64 + 16 * v);
        for (int e = 0; e < steps; e++) {
            __m512 xv = _mm512_set1_ps(xs[e][a]);
            for (int v = 0; v < 4; v++) acc[e][v] = _mm512_fmadd_ps(xv, d[v], acc[e][v]);
        }
    }
    if (!last) // more positions to come: keep the sums (pt: STEPS x 64, a tile past crs too)
        for (int e = 0; e < steps; e++)
            for (int v = 0; v < 4; v++) _mm512_store_ps(pt + e * 64 + 16 * v, acc[e][v]);
    else // the block's last part: its sums to sum
        for (int e = 0; e < steps && e < left; e++)
            for (int v = 0; v < 4; v++) {
                float *s = sum + e * 64 + 16 * v;
                _mm512_storeu_ps(s, _mm512_add_ps(_mm512_loadu_ps(s), acc[e][v]));
            }
}

static void dw_block(float *sum, float *part, const float *xp, const float *dyt, const int64_t *at,
                     const int64_t *off, int64_t crs, int64_t n, bool first, bool last, const float *next,
                     int64_t next_n, int64_t pq) {
    int64_t tiles = (crs + STEPS - 1) / STEPS, lines = (next_n + 15) / 16; // (lines per channel row)
    for (int64_t e0 = 0; e0 < crs; e0 += STEPS) {
        // The next part's dy, a few channel rows per tile (spread over the part's work, not all at
        // once), into the second-level cache: the transposition that follows reads it from there.
        int64_t t = e0 / STEPS;
        if (next)
            for (int64_t k = t * 64 / tiles; k < (t + 1) * 64 / tiles; k++)
                for (int64_t l = 0; l < lines; l++) _mm_prefetch((const char *)(next + k * pq + 16 * l), _MM_HINT_T1);
        const float *xs[STEPS];
        for (int e = 0; e < STEPS; e++) xs[e] = xp + off[e0 + e < crs ? e0 + e : crs - 1];
        // The last tile of 3 steps or fewer as a tile of 3: ResNet-18's 147 steps are 24 tiles
        // of 6 and one of 3, whose 3 repeated steps were FMAs for nothing (2 % of them).
        if (crs - e0 <= 3)
            dw_tile(3, sum + e0 * 64, part + e0 * 64, xs, dyt, at, n, first, last, crs - e0);
        else
            dw_tile(STEPS, sum + e0 * 64, part + e0 * 64, xs, dyt, at, n, first, last, crs - e0);
    }
}

// bias (64 doubles) += dyt's n rows (n positions' dy, 64 channels), one after the other: each
// channel's sum in double, in the positions' order. The rows are in the first-level cache, just
// transposed: a separate pass over dy (conv2d_backward_cpu's sum) read all of it from memory
// once more, 25.7 MB for ResNet-18's stem at batch 8, and took 7 % of the stem's backward.
static void bias_block(double *bias, const float *dyt, int64_t n) {
    __m512d acc[8];
    for (int v = 0; v < 8; v++) acc[v] = _mm512_loadu_pd(bias + 8 * v);
    for (int64_t f = 0; f < n; f++)
        for (int v = 0; v < 4; v++) {
            __m512 d = _mm512_loadu_ps(dyt + f * 64 + 16 * v);
            acc[2 * v] = _mm512_add_pd(acc[2 * v], _mm512_cvtps_pd(_mm512_castps512_ps256(d)));
            acc[2 * v + 1] = _mm512_add_pd(acc[2 * v + 1], _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1)));
        }
    for (int v = 0; v < 8; v++) _mm512_storeu_pd(bias + 8 * v, acc[v]);
}

// ---- dW of a stride-1 stem with the positions in the lanes (CIFAR's 3 x 3 on 32 x 32) ----------------
// With stride 1 a row of 16 outputs reads 16 consecutive inputs for every step (c, r, s), and dy's
// planes hold 16 consecutive positions of a channel: dW[k][e] is then a sum over vectors of dy
// (channel k, 16 positions) times vectors of x (step e, the same 16 positions shifted), each lane
// summing its own positions, both read where they lie. The path above needs dy transposed
// (positions by channels) and each input value broadcast: CIFAR's stem has 27 steps, so each
// transposed block of dy served 5 tiles where ImageNet's 147 steps give it 25, and the
// transposition was about a fifth of the backward (56 % of the peak). A tile here is 4 channels
// by 6 steps, 24 vectors of sums, 4 loads of dy and 6 of x for 24 FMAs, image by image: a tile's
// 4 planes of dy (16 KB) and the padded image (14 KB) stay in the first-level cache while the 5
// tiles of steps read them. The sums (16 lanes for each channel and step, 110 KB) wait in `lanes`
// from one image to the next. The order of the sums: lane l of dW[k][e] adds the positions whose
// column q has q % 16 == l, image after image and row after row, by fused multiply-adds from
// zero; the 16 lanes are then added in order (lane 0 first) into the group's sum, and the groups'
// sums to dW in group order, as above (test_conv_cpu rebuilds that order). db: each channel's dy
// in 16 lanes of doubles, added in order per group.
#define LANE_K 4 // output channels per tile

static inline __attribute__((always_inline)) void lanes_tile(const int steps, float *sums, const float *xn,
                                                             const float *dyn, const int64_t *off, int64_t e0,
                                                             int64_t crs, int64_t P, int64_t Q, int64_t Wp,
                                                             bool first) {
    __m512 acc[LANE_K][STEPS];
    for (int k = 0; k < LANE_K; k++) // sums: (k, e) at sums + (k crs + e) 16
        for (int e = 0; e < steps; e++)
            acc[k][e] = first ? _mm512_setzero_ps() : _mm512_load_ps(sums + ((k * crs) + e0 + e) * 16);
    const float *xs[STEPS];
    for (int e = 0; e < steps; e++) xs[e] = xn + off[e0 + e];
    for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < Q; q += 16) {
            __m512 d[LANE_K];
            for (int k = 0; k < LANE_K; k++) d[k] = _mm512_loadu_ps(dyn + k * P * Q + p * Q + q);
            for (int e = 0; e < steps; e++) {
                __m512 xv = _mm512_loadu_ps(xs[e] + p * Wp + q);
                // in a register, loaded once for the 4 channels (the compiler otherwise folded the
                // load into each FMA: 24 loads of x where 6 do, and the loads, not the FMAs, set the pace)
                __asm__("" : "+v"(xv));
                for (int k = 0; k < LANE_K; k++) acc[k][e] = _mm512_fmadd_ps(xv, d[k], acc[k][e]);
            }
        }
    for (int k = 0; k < LANE_K; k++)
        for (int e = 0; e < steps; e++) _mm512_store_ps(sums + ((k * crs) + e0 + e) * 16, acc[k][e]);
}

static void dw_lanes(float *sums, double *bias, const float *dy, const float *xp, int64_t n0, int64_t count,
                     int64_t C, int64_t K, int64_t crs, const int64_t *off, int64_t P, int64_t Q, int64_t Hp,
                     int64_t Wp) {
    static _Thread_local cg_thread_buffer lane_buffer;
    float *lanes = cg_thread_floats_aligned(&lane_buffer, K * crs * 16);
    __m512d db[STEM_K][2];
    for (int64_t k = 0; k < K; k++) db[k][0] = db[k][1] = _mm512_setzero_pd();
    for (int64_t n = n0; n < n0 + count; n++) {
        const float *xn = xp + n * C * Hp * Wp;
        for (int64_t k0 = 0; k0 < K; k0 += LANE_K) {
            const float *dyn = dy + (n * K + k0) * P * Q;
            float *at = lanes + k0 * crs * 16;
            for (int64_t e0 = 0; e0 < crs; e0 += STEPS) {
                if (crs - e0 >= STEPS)
                    lanes_tile(STEPS, at, xn, dyn, off, e0, crs, P, Q, Wp, n == n0);
                else if (crs - e0 == 3)
                    lanes_tile(3, at, xn, dyn, off, e0, crs, P, Q, Wp, n == n0);
                else
                    for (int64_t e = e0; e < crs; e++) lanes_tile(1, at, xn, dyn, off, e, crs, P, Q, Wp, n == n0);
            }
            if (bias) // these 4 planes of dy, just read from the first-level cache (8 chains of sums side by side)
                for (int64_t i = 0; i < P * Q; i += 16)
                    for (int k = 0; k < LANE_K; k++) {
                        __m512 d = _mm512_loadu_ps(dyn + k * P * Q + i);
                        db[k0 + k][0] = _mm512_add_pd(db[k0 + k][0], _mm512_cvtps_pd(_mm512_castps512_ps256(d)));
                        db[k0 + k][1] = _mm512_add_pd(db[k0 + k][1], _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1)));
                    }
        }
    }
    for (int64_t k = 0; k < K; k++) // the group's sums, (crs, 64) as dw_block leaves them
        for (int64_t e = 0; e < crs; e++) {
            const float *l = lanes + (k * crs + e) * 16;
            float total = l[0];
            for (int j = 1; j < 16; j++) total += l[j];
            sums[e * 64 + k] = total;
        }
    if (bias)
        for (int64_t k = 0; k < K; k++) {
            double l[16], total = 0.0;
            _mm512_storeu_pd(l, db[k][0]), _mm512_storeu_pd(l + 8, db[k][1]);
            for (int j = 0; j < 16; j++) total += l[j];
            bias[k] = total;
        }
}

bool conv2d_stem_dw_cpu(float *dw, float *db, const float *dy, const float *x, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (!stem_shape(C, K, R, S) || C * R * S < 2) return false; // (one step: conv.c's matrix-vector product)
    int64_t crs = C * R * S, pq = P * Q, Hp = (P - 1) * stride + R, Wp = (Q - 1) * stride + S;
    int64_t groups = (N + GROUP - 1) / GROUP;
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
    float *xp = padded_batch(N * C * Hp * Wp), *sums = scratch(0, groups * crs * 64); // a (crs, 64) sum per group
    static _Thread_local cg_thread_buffer bias_buffer; // a sum of 64 doubles per group (db)
    double *bias = db ? cg_thread_buffer_get(&bias_buffer, groups * 64 * (int64_t)sizeof(double)) : NULL;
    int64_t off[STEM_CRS_MAX];
    step_offsets(off, C, R, S, Hp, Wp);
    pad_batch(xp, x, N, C, H, W, pad, Hp, Wp, threads);
#pragma omp parallel for if (threads && groups > 1) schedule(dynamic)
    for (int64_t g = 0; g < groups; g++) {
        int64_t n0 = g * GROUP, count = N - n0 < GROUP ? N - n0 : GROUP, ld = count * pq;
        float *sum = sums + g * crs * 64, *dyt = scratch(1, SUB * 64);
        float *part = scratch(2, (crs + STEPS) * 64); // dw_block's sums between its parts
        if (stride == 1 && Q % 16 == 0) { // the positions in the lanes (dw_lanes)
            dw_lanes(sum, bias ? bias + g * 64 : NULL, dy, xp, n0, count, C, K, crs, off, P, Q, Hp, Wp);
            continue;
        }
        int64_t at[SUB];
        memset(sum, 0, (size_t)(crs * 64) * sizeof(float));
        if (bias) memset(bias + g * 64, 0, 64 * sizeof(double));
        for (int64_t f0 = 0; f0 < ld; f0 += CG_GEMM_KC) { // the GEMM's blocks of K over the group's positions
            int64_t f1 = f0 + CG_GEMM_KC < ld ? f0 + CG_GEMM_KC : ld;
            for (int64_t h0 = f0; h0 < f1; h0 += SUB) { // the block's parts
                int64_t h1 = h0 + SUB < f1 ? h0 + SUB : f1;
                for (int64_t f = h0; f < h1;) { // the part of the part in image n0 + f / pq
                    int64_t j = f / pq, i0 = f % pq, i1 = i0 + (h1 - f) < pq ? i0 + (h1 - f) : pq;
                    transpose_dy(dyt + (f - h0) * 64, dy + (n0 + j) * K * pq, K, pq, i0, i1);
                    // each position's corner, its row and column stepped along (a division per
                    // position, i / Q and i % Q, took about 5 % of CIFAR's stem backward)
                    int64_t *to = at + (f - h0), image = (n0 + j) * C * Hp * Wp, p = i0 / Q, q = i0 % Q;
                    for (int64_t i = i0; i < i1; i++) {
                        *to++ = image + p * stride * Wp + q * stride;
                        if (++q == Q) q = 0, p++;
                    }
                    f += i1 - i0;
                }
                const float *next = NULL; // where the next part starts in dy, and its floats in that image
                int64_t next_n = 0;
                if (h1 < ld) {
                    int64_t i = h1 % pq;
                    next = dy + (n0 + h1 / pq) * K * pq + i, next_n = pq - i < SUB ? pq - i : SUB;
                }
                dw_block(sum, part, xp, dyt, at, off, crs, h1 - h0, h0 == f0, h1 == f1, next, next_n, pq);
                if (bias) bias_block(bias + g * 64, dyt, h1 - h0); // the same additions, part after part
            }
        }
    }
    if (bias) // db += the groups' sums, added in group order
        for (int64_t k = 0; k < K; k++) {
            double total = 0.0;
            for (int64_t g = 0; g < groups; g++) total += bias[g * 64 + k];
            db[k] += (float)total;
        }
    for (int64_t g = 0; g < groups; g++) // dW (K, crs) += each group's sum, in group order
        for (int64_t k = 0; k < K; k++)
            for (int64_t e = 0; e < crs; e++) dw[k * crs + e] += sums[(g * crs + e) * 64 + k];
    return true;
}

#else // without AVX-512: conv.c's im2col + GEMM

bool conv2d_stem_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                             int64_t P, int64_t Q) {
    (void)y, (void)x, (void)w, (void)bias, (void)N, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S;
    (void)stride, (void)pad, (void)P, (void)Q;
    return false;
}

bool conv2d_stem_dw_cpu(float *dw, float *db, const float *dy, const float *x, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    (void)dw, (void)db, (void)dy, (void)x, (void)N, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S;
    (void)stride, (void)pad, (void)P, (void)Q;
    return false;
}
#endif

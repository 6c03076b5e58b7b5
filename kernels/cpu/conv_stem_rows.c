// conv_stem_rows.c: the forward of conv_stem.c's first convolutions (at most 4 input channels, 64
// output channels, C*R*S <= 160: ResNet-18's 7 x 7 stride-2 stem) with the output positions in
// the vector lanes: 16 neighbours of one output row per vector, written straight into y's planes.
//
// Why: conv_stem.c's forward puts the 64 channels in the lanes, so its sums come out as (position,
// channel) and a transposition writes them to y's 64 planes: on ResNet-18's stem (224 x 224, batch
// 8) the transposition took a third of the time, the FMAs running at 84 % of the peak in the
// rest. Here a tile is 6 vectors of positions by 4 channels (24 vectors of sums, 4 broadcast
// weights and 6 loaded inputs a step: 10 loads for 24 FMAs, as conv_stem.c's), and each sum goes
// to y as it is, 16 neighbouring outputs of one plane at once.
//
// The 16 inputs a lane-vector needs for step (c, r, s) are x's row at columns q*stride + s - pad,
// q = q0 .. q0+15: stride apart. The padded image is therefore split once, row by row, into its
// stride phases (columns j*stride + phase: with stride 2, the even columns and the odd ones), and
// the 16 inputs are then 16 neighbours of phase s % stride, from column q0 + s / stride: one load.
//
// The same bits as conv_stem.c's forward (hence as the GEMM): each output's sum is the same fused
// multiply-adds, over c, r, s in order from zero, then the bias added (0 when there is none), the
// padding's zeros included. Only the lanes hold positions instead of channels.
#include "kernels/cpu/conv_parts.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#define STEM_CRS_MAX 160 // as conv_stem.c: the steps' offsets on the stack
#define VECS 6           // vectors of positions per tile (6 x 4 vectors of sums, 4 of weights, 1 input: 29 registers)
#define KB 4             // output channels per tile
#define KG 8             // channels per group: a tile's inputs (about 19 KB for the stem) are read from the
                         // first-level cache for the 2 tiles of the group, with 2 x 2.3 KB of weights
#define CHUNK 384        // vectors of positions per task, about: 8 planes x 384 x 64 bytes written in long runs

// A per-thread scratch buffer (one for each use).
static float *scratch(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[3];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// The batch, padded and split into phases: xd[plane][h][phase][j] = x[plane][h - pad][j * stride
// + phase - pad] (0 outside x), plane = n * C + c, for the Hp padded rows the outputs reach, each
// phase Wd floats long (zeros past what the outputs read). Made by the team, read by all.
static void split_batch(float *xd, const float *x, int64_t planes, int64_t H, int64_t W, int64_t pad, int64_t Hp,
                        int64_t stride, int64_t Wd, bool threads) {
    int64_t width = stride * Wd; // a padded row, all phases
#pragma omp parallel for if (threads)
    for (int64_t plane = 0; plane < planes; plane++) {
        float *row = scratch(2, width); // the padded row, before the split
        for (int64_t h = 0; h < Hp; h++) {
            float *out = xd + (plane * Hp + h) * width;
            int64_t hs = h - pad, left = pad < width ? pad : width, n = W < width - left ? W : width - left;
            float *padded = stride == 1 ? out : row; // stride 1: one phase, the padded row itself
            memset(padded, 0, (size_t)width * sizeof(float));
            if (hs >= 0 && hs < H && n > 0) memcpy(padded + left, x + (plane * H + hs) * W, (size_t)n * sizeof(float));
            if (stride == 2) { // the even and odd columns, 16 of each from 32 floats (Wd: a multiple of 16)
                const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
                for (int64_t j = 0; j < Wd; j += 16) {
                    __m512 a = _mm512_loadu_ps(row + 2 * j), b = _mm512_loadu_ps(row + 2 * j + 16);
                    _mm512_storeu_ps(out + j, _mm512_permutex2var_ps(a, even, b));
                    _mm512_storeu_ps(out + Wd + j, _mm512_permutex2var_ps(a, odd, b));
                }
            } else if (stride > 2)
                for (int64_t ph = 0; ph < stride; ph++)
                    for (int64_t j = 0; j < Wd; j++) out[ph * Wd + j] = row[j * stride + ph];
        }
    }
}

// Vectors v0 .. v1-1 of one image's output (vector v: row v / Qv, columns (v % Qv) * 16 on, the
// last of a row masked to Q), all K channels; yn the image's K planes, xn its split padded planes,
// wt the weights as (K / KB, crs, KB), off[e] where step e reads from a vector's first input.
// A tile with vectors past v1 repeats its first one (not stored).
static void tiles(float *yn, const float *xn, const float *wt, const int64_t *off, const float *bias, int64_t crs,
                  int64_t K, int64_t row_step, int64_t Q, int64_t Qv, int64_t pq, int64_t v0, int64_t v1) {
    for (int64_t g0 = 0; g0 < K; g0 += KG) // the tiles of the chunk, KG channels at a time
        for (int64_t t0 = v0; t0 < v1; t0 += VECS) {
            const float *px[VECS]; // where each vector's first input is (output row p: padded row p * stride)
            int64_t at[VECS];      // and its first output in a plane
            __mmask16 keep[VECS];  // its lanes inside the row
            for (int t = 0; t < VECS; t++) {
                int64_t v = t0 + t < v1 ? t0 + t : t0, p = v / Qv, q0 = v % Qv * 16;
                px[t] = xn + p * row_step + q0;
                at[t] = p * Q + q0;
                keep[t] = Q - q0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (Q - q0)) - 1);
            }
            for (int64_t k0 = g0; k0 < g0 + KG && k0 < K; k0 += KB) {
                const float *wk = wt + k0 * crs; // (crs, KB): the 4 channels' weights, step after step
                __m512 acc[VECS][KB];
                for (int t = 0; t < VECS; t++)
                    for (int j = 0; j < KB; j++) acc[t][j] = _mm512_setzero_ps();
                for (int64_t e = 0; e < crs; e++) {
                    int64_t o = off[e];
                    __m512 wv[KB];
                    for (int j = 0; j < KB; j++) wv[j] = _mm512_set1_ps(wk[e * KB + j]);
                    for (int t = 0; t < VECS; t++) { // each input vector loaded once for the 4 channels
                        __m512 xv = _mm512_loadu_ps(px[t] + o);
                        // in a register through an empty asm statement (no instruction): GCC
                        // otherwise loaded it again as each of the 4 FMAs' memory operand, 25 loads
                        // a step for 24 FMAs, and Zen 5 (two 512-bit FMA units, two 512-bit loads a
                        // cycle, most of these crossing a cache line) ran the stem at 48 % of its
                        // peak; loaded once, 85 % (bench_cpu_peak, 2026-12-06; the same bits)
                        __asm__("" : "+v"(xv));
                        for (int j = 0; j < KB; j++) acc[t][j] = _mm512_fmadd_ps(xv, wv[j], acc[t][j]);
                    }
                }
                for (int j = 0; j < KB; j++) {
                    __m512 b = _mm512_set1_ps(bias ? bias[k0 + j] : 0.0f); // + 0 as conv_stem.c (-0 becomes +0)
                    for (int t = 0; t < VECS && t0 + t < v1; t++)
                        _mm512_mask_storeu_ps(yn + (k0 + j) * pq + at[t], keep[t], _mm512_add_ps(acc[t][j], b));
                }
            }
        }
}

bool conv2d_stem_rows_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                  int64_t P, int64_t Q) {
    int64_t crs = C * R * S, pq = P * Q, Qv = (Q + 15) / 16;
    // Rows of fewer than 16 outputs, or whose last vector leaves more than an eighth of the lanes
    // empty (Q = 12: a quarter), waste the FMAs' lanes: conv_stem.c's tiles then run faster.
    if (K % KB != 0 || crs > STEM_CRS_MAX || Q < 16 || (Qv * 16 - Q) * 8 > Qv * 16) return false;
    int64_t Hp = (P - 1) * stride + R;                       // padded rows read
    int64_t Wd = (Qv * 16 + (S - 1) / stride + 15) / 16 * 16; // a phase's floats: what a row's vectors read
    bool threads = N * K * pq * crs >= CG_OMP_MIN_WORK;
    float *xd = scratch(0, N * C * Hp * stride * Wd), *wt = scratch(1, crs * K);
    int64_t off[STEM_CRS_MAX];
    for (int64_t c = 0; c < C; c++) // step (c, r, s): padded row r of plane c, phase s % stride, column s / stride
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) off[(c * R + r) * S + s] = ((c * Hp + r) * stride + s % stride) * Wd + s / stride;
    for (int64_t k = 0; k < K; k++) // wt[k / KB][e][k % KB] = w[k][e]
        for (int64_t e = 0; e < crs; e++) wt[(k / KB * crs + e) * KB + k % KB] = w[k * crs + e];
    split_batch(xd, x, N * C, H, W, pad, Hp, stride, Wd, threads);
    int64_t vectors = P * Qv, chunks = (vectors + CHUNK - 1) / CHUNK; // per image
    int64_t chunk = ((vectors + chunks - 1) / chunks + VECS - 1) / VECS * VECS;
#pragma omp parallel for if (threads) schedule(dynamic)
    for (int64_t t = 0; t < N * chunks; t++) {
        int64_t n = t / chunks, v0 = t % chunks * chunk, v1 = v0 + chunk < vectors ? v0 + chunk : vectors;
        if (v0 < v1)
            tiles(y + n * K * pq, xd + n * C * Hp * stride * Wd, wt, off, bias, crs, K, stride * stride * Wd, Q, Qv,
                  pq, v0, v1);
    }
    return true;
}

#else // without AVX-512: conv_stem.c's path (itself the GEMM's then)

bool conv2d_stem_rows_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                  int64_t P, int64_t Q) {
    (void)y, (void)x, (void)w, (void)bias, (void)N, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S;
    (void)stride, (void)pad, (void)P, (void)Q;
    return false;
}
#endif

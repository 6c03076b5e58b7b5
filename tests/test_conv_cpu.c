#define _POSIX_C_SOURCE 200809L // setenv, unsetenv
// test_conv_cpu.c: the CPU's f32 convolution, conv2d_forward's y and conv2d_backward's dW, on 1
// and 2 threads, against sums written out here in the order the im2col + GEMM path takes them,
// bit for bit: this covers the paths that replace it for some shapes (kernels/cpu/conv_stem.c: a
// first layer with at most 4 input and 64 output channels, its dW with the positions in the lanes
// for stride 1 and rows of whole vectors, in that path's order; conv_dw.c: dW of at least 512 Ki
// floats; conv.c: small planes' forward in groups of about 400 positions, or an image of whole
// panels alone, their columns a block of K at a time where C*R*S is over one block:
// kernels/cpu/conv_small.c; the stem's forward with the positions in the lanes for rows of 16
// outputs or more: conv_stem_rows.c), on both sides of each one's test; conv2d_backward's dx
// against sums in its order (kernels/cpu/im2col.c: col2im of "same" and stride-2 convolutions in
// registers, whole images or blocks of rows; the general col2im otherwise; kernels/cpu/conv_dx.c:
// small planes' dx a part of the input channels at a time), and dx written (accumulate false, over
// NaNs that must never be read) against added to zeros; db against sums in double in the order of
// its path (the stem's: by groups of 4 images). Where Winograd's F(2 x 2, 3 x 3) replaces im2col
// (kernels/cpu/conv_winograd.c: 3 x 3 "same", even sides, 16 channels or more in and out,
// AVX-512), y and dx against sums in its order, and those against the convolution in double. And
// gemm_panels_b_cpu against gemm_engine_cpu. The fused conv + ReLU + pooling block:
// test_conv_fused_cpu.c.
#include "core/half.h"
#include "core/kernels.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"
#include "tests/check.h"
#include "tests/conv_check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- y and dW against sums in the GEMM's order ------------------------------------------------------
// The order (kernels/cpu/gemm.c, conv.c): an output is its dot product over (c, r, s) in blocks of
// CG_GEMM_KC = 256 steps, each block's fused multiply-adds summed from zero and added to the sum of
// the blocks before; then the bias. dW takes the positions of a group of 4 images (image after
// image, p, q) in blocks of 256 the same way, and adds the groups' sums to dW in order. Valid where
// the products are not matrix-vector ones (more than one output channel, position and step).
#define REF_KC 256
#define REF_GROUP 4

static bool stem_path(const shape *c) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    return c->K == 64 && c->C <= 4 && c->C * c->R * c->R <= 160 && c->C * c->R * c->R > 1;
#else
    (void)c;
    return false;
#endif
}

// ... and its weight gradient with the positions in the lanes: stride 1, rows of whole vectors.
static bool stem_lanes_path(const shape *c) {
    int64_t Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    return stem_path(c) && c->stride == 1 && Q % 16 == 0;
}

static float input_at(const shape *c, const float *x, int64_t n, int64_t e, int64_t pos, int64_t Q) {
    int64_t ch = e / (c->R * c->R), r = e / c->R % c->R, s = e % c->R;
    int64_t h = pos / Q * c->stride - c->pad + r, w = pos % Q * c->stride - c->pad + s;
    return h < 0 || h >= c->H || w < 0 || w >= c->W ? 0.0f : x[((n * c->C + ch) * c->H + h) * c->W + w];
}

static void reference(const shape *c, const float *x, const float *w, const float *b, const float *dy, float *y,
                      float *dw) {
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t crs = c->C * c->R * c->R, pq = P * Q;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t k = 0; k < c->K; k++)
            for (int64_t i = 0; i < pq; i++) {
                float out = 0.0f;
                for (int64_t e0 = 0; e0 < crs; e0 += REF_KC) {
                    float acc = 0.0f;
                    for (int64_t e = e0; e < crs && e < e0 + REF_KC; e++)
                        acc = fmaf(w[k * crs + e], input_at(c, x, n, e, i, Q), acc);
                    out += acc;
                }
                y[(n * c->K + k) * pq + i] = out + b[k];
            }
    float *slice = malloc((size_t)crs * sizeof(float));
    if (stem_lanes_path(c)) { // the stride-1 stem's order: 16 lanes (column q % 16), then the lanes in order
        for (int64_t k = 0; k < c->K; k++)
            for (int64_t n0 = 0; n0 < c->N; n0 += REF_GROUP) {
                for (int64_t e = 0; e < crs; e++) {
                    float lane[16] = {0};
                    for (int64_t n = n0; n < c->N && n < n0 + REF_GROUP; n++)
                        for (int64_t i = 0; i < pq; i++) {
                            int64_t l = i % Q % 16; // the lane of column q = i % Q
                            lane[l] = fmaf(input_at(c, x, n, e, i, Q), dy[(n * c->K + k) * pq + i], lane[l]);
                        }
                    float sum = lane[0];
                    for (int l = 1; l < 16; l++) sum += lane[l];
                    slice[e] = sum;
                }
                for (int64_t e = 0; e < crs; e++) dw[k * crs + e] += slice[e];
            }
        free(slice);
        return;
    }
    for (int64_t k = 0; k < c->K; k++)
        for (int64_t n0 = 0; n0 < c->N; n0 += REF_GROUP) {
            int64_t ld = (c->N - n0 < REF_GROUP ? c->N - n0 : REF_GROUP) * pq;
            for (int64_t e = 0; e < crs; e++) {
                float sum = 0.0f;
                for (int64_t f0 = 0; f0 < ld; f0 += REF_KC) {
                    float acc = 0.0f;
                    for (int64_t f = f0; f < ld && f < f0 + REF_KC; f++) {
                        int64_t n = n0 + f / pq, i = f % pq;
                        acc = fmaf(input_at(c, x, n, e, i, Q), dy[(n * c->K + k) * pq + i], acc);
                    }
                    sum += acc;
                }
                slice[e] = sum;
            }
            for (int64_t e = 0; e < crs; e++) dw[k * crs + e] += slice[e];
        }
    free(slice);
}

// dx (given its old values) in the order of conv2d_backward: each column's gradient dcol(c, r, s;
// p, q) is its dot product over the output channels k in blocks of 256 (as y's), and each dx
// element receives the columns that read it in (r, s) order (col2im; blocks of output rows taken
// from the last one up give that order too). The wrapped columns that the "same" shortcut adds
// as 0.0 change nothing here: the old values are never -0.0.
static void reference_dx(const shape *c, const float *w, const float *dy, float *dx) {
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t crs = c->C * c->R * c->R, pq = P * Q;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ch = 0; ch < c->C; ch++)
            for (int64_t h = 0; h < c->H; h++)
                for (int64_t x = 0; x < c->W; x++) {
                    float *out = &dx[((n * c->C + ch) * c->H + h) * c->W + x];
                    for (int64_t r = 0; r < c->R; r++)
                        for (int64_t s = 0; s < c->R; s++) {
                            int64_t ph = h + c->pad - r, qw = x + c->pad - s, e = (ch * c->R + r) * c->R + s;
                            if (ph < 0 || qw < 0 || ph % c->stride || qw % c->stride) continue;
                            int64_t p = ph / c->stride, q = qw / c->stride;
                            if (p >= P || q >= Q) continue;
                            float term = 0.0f;
                            for (int64_t k0 = 0; k0 < c->K; k0 += REF_KC) {
                                float acc = 0.0f;
                                for (int64_t k = k0; k < c->K && k < k0 + REF_KC; k++)
                                    acc = fmaf(w[k * crs + e], dy[(n * c->K + k) * pq + p * Q + q], acc);
                                term += acc;
                            }
                            *out += term;
                        }
                }
}

// db (given its old values): each channel's sum in double over the images, then the positions,
// in order, added to the float. ResNet-18's stem (kernels/cpu/conv_stem.c, with AVX-512: a first
// layer of at most 4 input channels, 64 output channels, C*R*S <= 160) sums each group of 4
// images from zero and adds the groups' sums in order instead (`grouped`).
static void reference_db(const shape *c, const float *dy, float *db, bool grouped) {
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t pq = P * Q, group = grouped ? REF_GROUP : c->N;
    for (int64_t k = 0; k < c->K; k++) {
        double total = 0.0;
        for (int64_t n0 = 0; n0 < c->N; n0 += group) {
            double sum = 0.0;
            for (int64_t n = n0; n < c->N && n < n0 + group; n++)
                for (int64_t i = 0; i < pq; i++) sum += dy[(n * c->K + k) * pq + i];
            total += sum;
        }
        db[k] += (float)total;
    }
}


// ---- y and dx by Winograd's F(2 x 2, 3 x 3) (kernels/cpu/conv_winograd.c) -------------------------
// For 3 x 3 "same" convolutions of even sides with at least 16 channels in and out, with AVX-512,
// conv2d_forward's y and conv2d_backward's dx come from Winograd's tiles: sums in that path's
// order, written out here as the file's comments give them (the filter's transform G g G^T, the
// patch's B^T d B rows first, the 16 sums over the input channels as the GEMM takes them, the
// tile's A^T O A rows first). The file's matrices themselves are checked apart, against the
// convolution in double (winograd_accuracy).

static void winograd_filter(const float *f, bool turned, float u[16]) {
    float g[9], t[4][3];
    for (int i = 0; i < 9; i++) g[i] = turned ? f[8 - i] : f[i];
    for (int s = 0; s < 3; s++) {
        t[0][s] = g[s];
        t[1][s] = 0.5f * (g[s] + g[3 + s] + g[6 + s]);
        t[2][s] = 0.5f * (g[s] - g[3 + s] + g[6 + s]);
        t[3][s] = g[6 + s];
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i] = t[i][0];
        u[4 * i + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[4 * i + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[4 * i + 3] = t[i][2];
    }
}

// out (N, Cout, H, W) = the convolution of in (N, Cin, H, W) + bias, or out += it (`add`); the
// filters: w (Cout, Cin, 3, 3) for the forward, or for dx w (Cin, Cout, 3, 3) turned by 180
// degrees with its two channel axes swapped (`dx`).
static void reference_winograd(const float *in, const float *w, const float *bias, float *out, int64_t N, int64_t Cin,
                               int64_t Cout, int64_t H, int64_t W, bool dx) {
    float *u = malloc((size_t)(Cout * Cin * 16) * sizeof(float)), *v = malloc((size_t)(Cin * 16) * sizeof(float));
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t i = 0; i < Cin; i++)
            winograd_filter(w + (dx ? i * Cout + o : o * Cin + i) * 9, dx, u + (o * Cin + i) * 16);
    for (int64_t n = 0; n < N; n++)
        for (int64_t ty = 0; ty < H / 2; ty++)
            for (int64_t tx = 0; tx < W / 2; tx++) {
                for (int64_t i = 0; i < Cin; i++) {
                    float d[4][4], r[4][4];
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            int64_t h = 2 * ty - 1 + a, x = 2 * tx - 1 + b;
                            d[a][b] = h < 0 || h >= H || x < 0 || x >= W ? 0.0f : in[((n * Cin + i) * H + h) * W + x];
                        }
                    for (int b = 0; b < 4; b++) { // B^T d: the rows
                        r[0][b] = d[0][b] - d[2][b], r[1][b] = d[1][b] + d[2][b];
                        r[2][b] = d[2][b] - d[1][b], r[3][b] = d[1][b] - d[3][b];
                    }
                    float *vi = v + i * 16;
                    for (int a = 0; a < 4; a++) { // (B^T d) B: the columns
                        vi[4 * a] = r[a][0] - r[a][2], vi[4 * a + 1] = r[a][1] + r[a][2];
                        vi[4 * a + 2] = r[a][2] - r[a][1], vi[4 * a + 3] = r[a][1] - r[a][3];
                    }
                }
                for (int64_t o = 0; o < Cout; o++) {
                    float m[16], s0[4], s1[4];
                    for (int xi = 0; xi < 16; xi++) {
                        float sum = 0.0f;
                        for (int64_t i0 = 0; i0 < Cin; i0 += REF_KC) {
                            float acc = 0.0f;
                            for (int64_t i = i0; i < Cin && i < i0 + REF_KC; i++)
                                acc = fmaf(u[(o * Cin + i) * 16 + xi], v[i * 16 + xi], acc);
                            sum += acc;
                        }
                        m[xi] = sum;
                    }
                    for (int b = 0; b < 4; b++) {
                        s0[b] = m[b] + m[4 + b] + m[8 + b];
                        s1[b] = m[4 + b] - m[8 + b] - m[12 + b];
                    }
                    float y[4] = {s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2],
                                  s1[1] - s1[2] - s1[3]};
                    for (int e = 0; e < 4; e++) {
                        float *at = &out[((n * Cout + o) * H + 2 * ty + e / 2) * W + 2 * tx + e % 2];
                        *at = dx ? *at + y[e] : y[e] + bias[o];
                    }
                }
            }
    free(u), free(v);
}

// y (or dx, given its old values) against the convolution in double: within 2e-5 of the sum of
// its terms' magnitudes (Winograd's transforms add a few roundings; a wrong matrix is off by
// the terms themselves).
static void winograd_accuracy(const char *what, const float *got, const float *in, const float *w, const float *base,
                              int64_t N, int64_t Cin, int64_t Cout, int64_t H, int64_t W, bool dx) {
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < Cout; o++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++) {
                    int64_t at = ((n * Cout + o) * H + h) * W + x;
                    double sum = dx ? base[at] : base[o], size = fabs(sum);
                    for (int64_t i = 0; i < Cin; i++)
                        for (int r = 0; r < 3; r++)
                            for (int s = 0; s < 3; s++) {
                                // forward: y(h, x) += w[o][i][r][s] in(h - 1 + r, x - 1 + s); dx:
                                // dx(h, x) += w[i][o][r][s] dy(h + 1 - r, x + 1 - s)
                                int64_t hh = dx ? h + 1 - r : h - 1 + r, xx = dx ? x + 1 - s : x - 1 + s;
                                if (hh < 0 || hh >= H || xx < 0 || xx >= W) continue;
                                double term = (double)w[((dx ? i * Cout + o : o * Cin + i) * 3 + r) * 3 + s] *
                                              in[((n * Cin + i) * H + hh) * W + xx];
                                sum += term, size += fabs(term);
                            }
                    double err = fabs(got[at] - sum) / size;
                    worst = err > worst ? err : worst;
                    bad += err > 2e-5;
                }
    if (bad) fail(what, "%lld of %lld outputs off the double convolution by more than 2e-5 of their terms' size (worst %g)",
                  (long long)bad, (long long)(N * Cout * H * W), worst);
}

static bool winograd_path(const shape *c) {
    return conv2d_winograd_takes(c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, c->H + 2 * c->pad - c->R + 1,
                                 c->W + 2 * c->pad - c->R + 1);
}

static void check_order(const shape *c) {
    const cg_kernels *k = cg_cpu_kernels();
    int64_t P = (c->H + 2 * c->pad - c->R) / c->stride + 1, Q = (c->W + 2 * c->pad - c->R) / c->stride + 1;
    int64_t nx = c->N * c->C * c->H * c->W, nw = c->K * c->C * c->R * c->R, ny = c->N * c->K * P * Q;
    float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(c->K), *dy = random_floats(ny);
    float *dw0 = random_floats(nw), *y_ref = malloc((size_t)ny * sizeof(float)), *dw_ref = copy_floats(dw0, nw);
    float *dx0 = random_floats(nx), *dx_ref = copy_floats(dx0, nx), *db0 = random_floats(c->K);
    float *db_ref = copy_floats(db0, c->K);
    reference(c, x, w, b, dy, y_ref, dw_ref);
    reference_db(c, dy, db_ref, stem_path(c));
    bool winograd = winograd_path(c);
    if (winograd) {
        reference_winograd(x, w, b, y_ref, c->N, c->C, c->K, c->H, c->W, false);
        reference_winograd(dy, w, NULL, dx_ref, c->N, c->K, c->C, c->H, c->W, true);
    } else if (c->C > 3)
        reference_dx(c, w, dy, dx_ref);
    // dx written (accumulate false, a first gradient): the bits of adding to zeros, over old values
    // that must never be read (NaN)
    float *dx_zero = calloc((size_t)nx, sizeof(float));
    if (winograd)
        reference_winograd(dy, w, NULL, dx_zero, c->N, c->K, c->C, c->H, c->W, true);
    else if (c->C > 3)
        reference_dx(c, w, dy, dx_zero);
    int threads_at_start = cg_get_num_threads();
    char what[200];
    for (int t = 1; t <= 2; t++) {
        cg_set_num_threads(t);
        float *y = malloc((size_t)ny * sizeof(float)), *dw = copy_floats(dw0, nw), *dx = copy_floats(dx0, nx);
        float *db = copy_floats(db0, c->K);
        k->conv2d_forward(y, x, w, b, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P, Q);
        k->conv2d_backward(c->C > 3 ? dx : NULL, dw, db, dy, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R,
                           c->stride, c->pad, P, Q, true);
        snprintf(what, sizeof what, "%s, %d thread(s): y against %s order", c->name, t,
                 winograd ? "Winograd's" : "the GEMM's");
        same_bits(what, y, y_ref, ny);
        if (winograd && t == 1) {
            snprintf(what, sizeof what, "%s: Winograd's y against the convolution in double", c->name);
            winograd_accuracy(what, y, x, w, b, c->N, c->C, c->K, c->H, c->W, false);
            snprintf(what, sizeof what, "%s: Winograd's dx against the convolution in double", c->name);
            winograd_accuracy(what, dx_ref, dy, w, dx0, c->N, c->K, c->C, c->H, c->W, true);
        }
        snprintf(what, sizeof what, "%s, %d thread(s): dw against the GEMM's order", c->name, t);
        same_bits(what, dw, dw_ref, nw);
        if (c->C > 3) {
            snprintf(what, sizeof what, "%s, %d thread(s): dx against %s order", c->name, t,
                     winograd ? "Winograd's" : "the GEMM's and col2im's");
            same_bits(what, dx, dx_ref, nx);
            for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
            k->conv2d_backward(dx, NULL, NULL, dy, x, w, c->N, c->C, c->H, c->W, c->K, c->R, c->R, c->stride, c->pad, P,
                               Q, false);
            snprintf(what, sizeof what, "%s, %d thread(s): dx written (accumulate false) against added to zeros",
                     c->name, t);
            same_bits(what, dx, dx_zero, nx);
        }
        snprintf(what, sizeof what, "%s, %d thread(s): db against sums in double in the path's order", c->name, t);
        same_bits(what, db, db_ref, c->K);
        free(y), free(dw), free(dx), free(db);
    }
    cg_set_num_threads(threads_at_start);
    printf("%-52s y, %sdw, db: the path's order%s, 1 and 2 threads\n", c->name, c->C > 3 ? "dx (added, written), " : "",
           winograd ? " (y, dx: Winograd's, and within 2e-5 of double)" : "");
    free(x), free(w), free(b), free(dy), free(dw0), free(y_ref), free(dw_ref), free(dx0), free(dx_ref), free(db0),
        free(db_ref), free(dx_zero);
}

// gemm_panels_b_cpu (B handed over in the GEMM's column panels, as the weight gradient's
// transposed dy is written) against gemm_engine_cpu on the same B laid out by rows: the same bits,
// over K = 300 (two blocks of the GEMM's K), beta 0 then 1, 96 columns (3 panels).
static void check_panels_b(void) {
    const int64_t M = 37, N = 96, K = 300;
    float *a = random_floats(M * K), *b = random_floats(K * N), *panels = malloc((size_t)(K * N) * sizeof(float));
    float *c = random_floats(M * N), *c_ref = copy_floats(c, M * N);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            panels[j / CG_GEMM_PANEL * CG_GEMM_PANEL * K + k * CG_GEMM_PANEL + j % CG_GEMM_PANEL] = b[k * N + j];
    for (int pass = 0; pass < 2; pass++) {
        gemm_engine_cpu(false, false, M, N, K, 0.5f, a, b, (float)pass, c_ref);
        gemm_panels_b_cpu(false, a, NULL, M, N, K, 0.5f, panels, (float)pass, c);
        same_bits(pass ? "gemm_panels_b_cpu, beta 1" : "gemm_panels_b_cpu, beta 0", c, c_ref, M * N);
    }
    printf("%-52s same bits as gemm_engine_cpu, beta 0 and 1\n", "B in the GEMM's panels");
    free(a), free(b), free(panels), free(c), free(c_ref);
}

int main(void) {
    check_panels_b();
    const shape ordered[] = {
        {2, 3, 40, 38, 64, 7, 2, 3, "stem 7x7/2, 64 channels (direct)"},
        {2, 3, 36, 62, 64, 7, 2, 3, "stem 7x7/2, rows of 31 (positions in lanes, masked)"},
        {3, 3, 32, 32, 64, 3, 1, 1, "CIFAR stem 3x3, 32x32 (positions in lanes)"},
        {5, 3, 16, 32, 64, 3, 1, 1, "stem 3x3, 16x32, 5 images (dW in lanes)"},
        {2, 1, 16, 16, 64, 5, 1, 2, "1 channel 5x5: 25 steps, dW lane tiles 6 + 1"},
        {3, 4, 8, 16, 64, 3, 1, 1, "4 channels 3x3: 36 steps (dW in lanes)"},
        {3, 4, 9, 15, 64, 2, 1, 1, "4 channels 2x2: 16 steps, dW lane tiles 6 + 6 + 4 x 1"},
        {2, 1, 8, 15, 64, 2, 1, 1, "1 channel 2x2: 4 steps, dW lanes one step at a time"},
        {2, 4, 9, 30, 64, 3, 1, 1, "4 channels, rows of 30 (positions in lanes, masked)"},
        {2, 1, 11, 94, 64, 5, 3, 2, "1 channel, 5x5/3, rows of 32 (positions in lanes)"},
        {5, 3, 17, 23, 64, 7, 2, 3, "stem, odd 17x23, 5 images (direct)"},
        {3, 4, 15, 13, 64, 6, 1, 2, "4 channels, 6x6: 144 steps (direct)"},
        {2, 1, 20, 18, 64, 5, 1, 2, "one channel, 5x5: 25 steps, dW tiles of 6 + 1 (direct)"},
        {3, 2, 12, 11, 64, 3, 1, 1, "2 channels, 3x3: 18 steps, 3 dW tiles (direct)"},
        {2, 4, 15, 13, 64, 7, 2, 3, "4 channels, 7x7: 196 steps (GEMM)"},
        {2, 5, 16, 16, 64, 3, 2, 1, "5 channels (GEMM)"},
        {2, 3, 20, 20, 48, 7, 2, 3, "48 output channels (GEMM)"},
        {5, 3700, 7, 10, 16, 3, 1, 1, "dW of 533 Ki floats, groups of 280 (by channels)"},
        {3, 913, 6, 5, 64, 3, 1, 1, "dW of 526 Ki floats, partial last part (by channels)"},
        {3, 907, 6, 5, 64, 3, 1, 1, "dW of 522 Ki floats (by channels)"},
        {3, 900, 6, 5, 64, 3, 1, 1, "dW of 518 Ki floats, 900 channels (by channels)"},
        {3, 880, 6, 5, 64, 3, 1, 1, "dW of 507 Ki floats (slices)"},
        {9, 40, 7, 7, 40, 3, 1, 1, "7x7 planes, 9 images: forward groups of 8 and 1"},
        {6, 20, 3, 5, 33, 3, 2, 1, "2x3 planes, 6 images, 33 channels"},
        {8, 60, 7, 7, 20, 3, 1, 1, "7x7, 540 steps: forward by K blocks 256+256+28"},
        {5, 40, 9, 9, 20, 3, 2, 1, "stride 2, 360 steps: forward by blocks of K"},
        {4, 300, 5, 5, 16, 1, 1, 0, "1x1, 300 steps: forward by blocks of K"},
        {6, 32, 14, 14, 12, 3, 1, 1, "14x14, 12 channels out (col2im in registers, whole image)"},
        {2, 24, 26, 26, 12, 3, 1, 1, "26x26, 3x3: dx by blocks of 16 and 10 rows"},
        {6, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2 (Winograd: blocks of 16, 16, 10 rows)"},
        {3, 20, 26, 10, 24, 3, 1, 1, "26x10, 20 -> 24 channels (Winograd)"},
        {2, 16, 6, 30, 16, 3, 1, 1, "6x30: rows of 15 tiles (Winograd, chunks of 7, 7, 1)"},
        {2, 64, 56, 56, 64, 3, 1, 1, "ResNet-18 layer1 56x56 (Winograd)"},
        {2, 12, 27, 25, 16, 5, 1, 2, "27x25, 5x5: dx by blocks of rows"},
        {2, 6, 9, 11, 8, 3, 1, 2, "3x3, padding 2 (not same: col2im by rows)"},
        {9, 100, 7, 7, 300, 3, 1, 1, "7x7, 9 images, K 300: dx by channels, 8 + 1"},
        {5, 700, 14, 14, 20, 1, 2, 0, "1x1 stride 2, 700 channels: dx by channels"},
        {5, 40, 10, 10, 20, 3, 2, 1, "stride 2, 10x10, 360 steps: phases, forward by blocks of K"},
        {3, 8, 12, 40, 16, 3, 2, 1, "stride 2, 12x40: phases of 6x20 (two vectors a row)"},
        {6, 16, 8, 8, 24, 1, 2, 0, "1x1 stride 2, 8x8 (dx: even lanes)"},
        {3, 20, 9, 11, 16, 1, 2, 0, "1x1 stride 2, odd 9x11 (dx: even lanes)"},
        {1, 64, 64, 64, 16, 3, 2, 1, "stride 2, 64x64: phases by blocks of rows"},
        {3, 8, 32, 32, 16, 1, 2, 0, "1x1 stride 2, 32x32: each image's product into y"},
        {3, 40, 32, 32, 12, 3, 2, 1, "stride 2, 32x32, 360 steps: blocks of K, into y"},
        {4, 512, 20, 20, 16, 1, 2, 0, "1x1 stride 2, 512 channels: dW spans inside rows"},
        {5, 64, 32, 32, 128, 1, 2, 0, "CIFAR layer2 shortcut, 5 images (its own kernels: dy in place)"},
        {6, 48, 16, 16, 20, 1, 2, 0, "1x1 stride 2, 16x16 -> 8x8, 48 channels (shortcut: dy side by side)"},
        {3, 16, 64, 16, 24, 1, 2, 0, "1x1 stride 2, 64x16 -> 32x8, 16 channels (shortcut: tiles of 8 + 8)"},
        {2, 80, 32, 4, 12, 1, 2, 0, "1x1 stride 2, 32x4 -> 16x2, 80 channels (shortcut: tiles 12 x 6 + 8)"},
        {4, 128, 16, 16, 256, 3, 2, 1, "CIFAR layer3.0, 128 -> 256, 16x16 stride 2 (phases)"},
        {3, 200, 5, 6, 70, 3, 1, 1, "5x6, 200 channels: dx by channels, last part 8"},
        {2, 40, 21, 21, 16, 3, 1, 1, "21x21 (441 positions): dx by channels, 1 image"},
    };
    for (size_t s = 0; s < sizeof ordered / sizeof ordered[0]; s++) check_order(&ordered[s]);
    // CGRAD_CPU_WINOGRAD=0: the same shapes back on im2col and the GEMM, their order to the bit
    setenv("CGRAD_CPU_WINOGRAD", "0", 1);
    const shape off[] = {
        {6, 32, 14, 14, 64, 3, 1, 1, "tutorial conv2, CGRAD_CPU_WINOGRAD=0 (im2col)"},
        {2, 64, 56, 56, 64, 3, 1, 1, "ResNet-18 layer1, CGRAD_CPU_WINOGRAD=0 (im2col)"},
    };
    for (size_t s = 0; s < sizeof off / sizeof off[0]; s++) {
        if (winograd_path(&off[s])) fail(off[s].name, "still on Winograd's path");
        check_order(&off[s]);
    }
    unsetenv("CGRAD_CPU_WINOGRAD");
    return check_summary("test_conv_cpu");
}

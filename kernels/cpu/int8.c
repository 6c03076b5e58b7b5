// int8.c: the CPU's int8 inference kernels (core/qkernels.h): quantising a float batch
// into NHWC int8, the fully connected and convolution layers over the packed int8 GEMM of
// int8_packed.c, and int8 max pooling. OpenMP over blocks of rows; each thread builds its
// block's im2col rows (or shifted input rows) in a buffer that stays in its L2 cache, so no
// whole-batch column matrix and no int32 matrix is ever written.
#include "core/quant/qkernels.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/int8_packed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// rows of `a` times the packed weights through the output stage (kernels/cpu/int8_packed.h): whole
// blocks of 16 rows on the AMX-INT8 tiles where the weights were packed for them (the same bytes),
// the rest on the VNNI loops. `a` needs 64 bytes of slack past its last row (AMX reads whole
// 64-byte chunks).
static void gemm_rows(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                      const cg_qoutput *out) {
    if (p->amx) {
        int64_t done = cg_int8_gemm_rows_amx(y, ldy, a, rows, p, out);
        y = (char *)y + done * ldy * (out->to_float ? sizeof(float) : 1);
        a += done * p->Kp, rows -= done;
    }
    cg_int8_gemm_rows_loops(y, ldy, a, rows, p, out);
}

static void quantize_nchw_cpu(int8_t *q, const float *x, int64_t N, int64_t C, int64_t HW, float scale,
                              int32_t zero_point) {
#pragma omp parallel for schedule(dynamic, 16) if (N * C * HW >= CG_OMP_MIN_WORK)
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *xc = x + (n * C + c) * HW;
            int8_t *qn = q + n * HW * C + c;
            for (int64_t i = 0; i < HW; i++) {
                float v = xc[i] / scale;
                v = v < -32768.0f ? -32768.0f : v > 32767.0f ? 32767.0f : v;
                int32_t r = (int32_t)rintf(v) + zero_point;
                qn[i * C] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
            }
        }
}

// Rows per block of the GEMM: about 128 KiB of im2col rows (an L2 cache holds them beside the
// packed weights), a multiple of 96 (the 6-row register tile, the 32-row block of AMX tiles),
// between 96 and 4032 rows.
static int64_t block_rows(int64_t Kp) {
    int64_t rows = (128 << 10) / Kp;
    rows = rows < 96 ? 96 : rows > 4096 ? 4096 : rows;
    return rows / 96 * 96;
}

static void linear_int8_cpu(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int64_t M,
                            int64_t Nout, int64_t K) {
    const int64_t Kp = CG_QK_PAD(K);
    cg_int8_packed pk;
    cg_int8_pack(&pk, w, out, Nout, Kp);
    const int64_t rows = block_rows(Kp), blocks = (M + rows - 1) / rows;
    const size_t out_size = out->to_float ? sizeof(float) : 1;
#pragma omp parallel if (M * Nout * K >= 16 * CG_OMP_MIN_WORK)
    {
        uint8_t *a = cg_xcalloc((size_t)(rows * Kp) + 64, 1); // padding columns stay 0; 64: int8_packed.h
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t r0 = b * rows, r1 = r0 + rows < M ? r0 + rows : M;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t k = 0; k < K; k++) a[(r - r0) * Kp + k] = (uint8_t)x[r * K + k] ^ 0x80u; // x + 128
            gemm_rows((char *)y + r0 * Nout * out_size, Nout, a, r1 - r0, &pk, out);
        }
        free(a);
    }
    cg_int8_packed_free(&pk);
}

// im2col of output pixels r0 .. r1 (flat over n, p, q) of an NHWC image batch, as unsigned
// bytes (x + 128), columns in (r, s, c) order; outside the image the input's zero point.
static void im2col_rows_u8(uint8_t *cols, int64_t Kp, const int8_t *x, uint8_t pad_value, int64_t r0, int64_t r1,
                           int64_t H, int64_t W, int64_t C, int64_t R, int64_t S, int64_t stride, int64_t pad,
                           int64_t P, int64_t Q) {
    int64_t n = r0 / (P * Q), p = r0 / Q % P, q = r0 % Q; // the output pixel of row r0, then counted on
    for (int64_t row = r0; row < r1; row++) {
        uint8_t *dst = cols + (row - r0) * Kp;
        int64_t iw0 = q * stride - pad;
        for (int64_t r = 0; r < R; r++, dst += S * C) {
            int64_t ih = p * stride - pad + r;
            if (ih < 0 || ih >= H) {
                memset(dst, pad_value, (size_t)(S * C));
                continue;
            }
            const int8_t *line = x + (n * H + ih) * W * C; // input row ih of image n
            if (iw0 >= 0 && iw0 + S <= W) {                 // the whole window row is inside: S C bytes
                for (int64_t k = 0; k < S * C; k++) dst[k] = (uint8_t)line[iw0 * C + k] ^ 0x80u;
                continue;
            }
            for (int64_t s = 0; s < S; s++) {
                int64_t iw = iw0 + s;
                for (int64_t c = 0; c < C; c++)
                    dst[s * C + c] = iw < 0 || iw >= W ? pad_value : (uint8_t)line[iw * C + c] ^ 0x80u;
            }
        }
        if (++q == Q) { // the next output pixel (no division per row)
            q = 0;
            if (++p == P) {
                p = 0;
                n++;
            }
        }
    }
}

// im2col_rows_u8 for narrow window rows (S C <= 16 bytes: the first layer of an MNIST or CIFAR
// model, where the general loop spends its time on 3- or 9-byte copies): for each output row p
// the R input rows it reads are laid out once as unsigned bytes with the padding around them
// (`line`, (W + 2 pad) C bytes each, and 16 of slack), then each output pixel takes 16-byte
// copies, one per window row, each overwritten past S C bytes by the next. What lands past R S C
// in a row is left as it is: those columns meet weights that are zero. `lines` has room for
// R * ((W + 2 pad) C + 16) bytes; cols has 64 bytes of slack past its last row.
static void im2col_rows_narrow(uint8_t *cols, int64_t Kp, const int8_t *x, uint8_t pad_value, int64_t r0, int64_t r1,
                               int64_t H, int64_t W, int64_t C, int64_t R, int64_t S, int64_t stride, int64_t pad,
                               int64_t P, int64_t Q, uint8_t *lines) {
    const int64_t width = (W + 2 * pad) * C + 16, sc = S * C;
    int64_t n = r0 / (P * Q), p = r0 / Q % P, q = r0 % Q;
    bool fresh = true; // the lines are for (n, p)
    for (int64_t row = r0; row < r1; row++) {
        if (fresh) {
            for (int64_t r = 0; r < R; r++) {
                uint8_t *line = lines + r * width;
                int64_t ih = p * stride - pad + r;
                memset(line, pad_value, (size_t)width);
                if (ih < 0 || ih >= H) continue;
                const int8_t *src = x + (n * H + ih) * W * C;
                for (int64_t i = 0; i < W * C; i++) line[pad * C + i] = (uint8_t)src[i] ^ 0x80u;
            }
            fresh = false;
        }
        uint8_t *dst = cols + (row - r0) * Kp;
        for (int64_t r = 0; r < R; r++) memcpy(dst + r * sc, lines + r * width + q * stride * C, 16);
        if (++q == Q) {
            q = 0, fresh = true;
            if (++p == P) p = 0, n++;
        }
    }
}

static void conv2d_int8_cpu(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int32_t x_zero_point,
                            int64_t N, int64_t H, int64_t W, int64_t C, int64_t Kout, int64_t R, int64_t S,
                            int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    // 3 x 3, stride 1, padding 1 on AVX2 without VNNI: Winograd's tiles in integers, the same bytes
    // (int8_winograd.c; it declines the shapes and CPUs it does not serve).
    if (R == 3 && S == 3 && stride == 1 && pad == 1 &&
        cg_int8_conv3x3_winograd(y, x, w, out, x_zero_point, N, H, W, C, Kout))
        return;
    const int64_t K = R * S * C, Kp = CG_QK_PAD(K), M = N * P * Q;
    cg_int8_packed pk;
    cg_int8_pack(&pk, w, out, Kout, Kp);
    const int64_t rows = block_rows(Kp), blocks = (M + rows - 1) / rows;
    const size_t out_size = out->to_float ? sizeof(float) : 1;
    const uint8_t pad_value = (uint8_t)(x_zero_point + 128);
#pragma omp parallel if (M * Kout * K >= 16 * CG_OMP_MIN_WORK)
    {
        uint8_t *cols = cg_xcalloc((size_t)(rows * Kp) + 64, 1); // padding columns stay 0; 64: int8_packed.h
        bool narrow = S * C <= 16;
        uint8_t *lines = narrow ? cg_xmalloc((size_t)(R * ((W + 2 * pad) * C + 16))) : NULL;
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t r0 = b * rows, r1 = r0 + rows < M ? r0 + rows : M;
            if (narrow)
                im2col_rows_narrow(cols, Kp, x, pad_value, r0, r1, H, W, C, R, S, stride, pad, P, Q, lines);
            else
                im2col_rows_u8(cols, Kp, x, pad_value, r0, r1, H, W, C, R, S, stride, pad, P, Q);
            gemm_rows((char *)y + r0 * Kout * out_size, Kout, cols, r1 - r0, &pk, out);
        }
        free(cols);
        free(lines);
    }
    cg_int8_packed_free(&pk);
}

static void max_pool2d_int8_cpu(int8_t *y, const int8_t *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
#pragma omp parallel for schedule(dynamic, 16) if (N * P * Q * C >= CG_OMP_MIN_WORK)
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                int8_t *dst = y + ((n * P + p) * Q + q) * C;
                const int8_t *top = x + ((n * H + p * stride) * W + q * stride) * C;
                if (kernel == 2) { // the common 2x2 window: four rows of C bytes, one pass (vpmaxsb)
                    const int8_t *a = top, *b = top + C, *c = top + W * C, *d = top + W * C + C;
                    for (int64_t k = 0; k < C; k++) {
                        int8_t m0 = a[k] > b[k] ? a[k] : b[k], m1 = c[k] > d[k] ? c[k] : d[k];
                        dst[k] = m0 > m1 ? m0 : m1;
                    }
                    continue;
                }
                for (int64_t k = 0; k < C; k++) dst[k] = -128;
                for (int64_t i = 0; i < kernel; i++)
                    for (int64_t j = 0; j < kernel; j++) {
                        const int8_t *src = top + (i * W + j) * C;
                        for (int64_t k = 0; k < C; k++) dst[k] = src[k] > dst[k] ? src[k] : dst[k];
                    }
            }
}

const cg_qkernels cg_cpu_qkernels = {
    .device_name = "cpu",
    .quantize_nchw = quantize_nchw_cpu,
    .linear = linear_int8_cpu,
    .conv2d = conv2d_int8_cpu,
    .max_pool2d = max_pool2d_int8_cpu,
};

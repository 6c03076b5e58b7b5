// bench.c: the benchmark's building blocks (bench.h) for any device: names of the number formats,
// the peak table, the timer, random fills, products and their check, one convolution layer. The
// CPU half runs the CPU kernel table; the GPU half goes through the plugin's bench group
// (bench_backend.h), so no CUDA header is needed here. Nothing here decides what to measure or
// prints anything: that is examples/gpu_benchmark.
#include "core/measure/hw_bench.h"
#include "core/measure/hw_bench_backend.h"
#include "core/device_backend.h"
#include "core/kernels.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- number formats --------------------------------------------------------------------------

static const char *const precision_names[CG_BENCH_NUM_PRECISIONS] = {"fp32", "tf32", "fp16", "bf16", "int8"};

const char *cg_bench_precision_name(cg_bench_precision p) {
    CG_CHECK(p >= 0 && p < CG_BENCH_NUM_PRECISIONS, "bad precision %d", (int)p);
    return precision_names[p];
}

cg_status cg_bench_precision_parse(const char *text, cg_bench_precision *out) {
    for (int p = 0; p < CG_BENCH_NUM_PRECISIONS; p++)
        if (strcmp(text, precision_names[p]) == 0) {
            *out = (cg_bench_precision)p;
            return cg_ok();
        }
    return cg_error(CG_ERR_ARG, "'%s' is not a number format (fp32, tf32, fp16, bf16 or int8)", text);
}

cg_dtype cg_bench_input_dtype(cg_bench_precision p) {
    static const cg_dtype types[CG_BENCH_NUM_PRECISIONS] = {CG_F32, CG_F32, CG_F16, CG_BF16, CG_I8};
    CG_CHECK(p >= 0 && p < CG_BENCH_NUM_PRECISIONS, "bad precision %d", (int)p);
    return types[p];
}

cg_dtype cg_bench_output_dtype(cg_bench_precision p) { return p == CG_BENCH_INT8 ? CG_I32 : cg_bench_input_dtype(p); }

// ---- theoretical peaks -----------------------------------------------------------------------
// Dense Tensor Core operations per SM per clock (an FMA counts 2), worked out from the datasheet
// figure of each whitepaper divided by its SM count and the clock it was computed at:
//   NVIDIA Tesla V100 GPU Architecture (2017): 125 TFLOPS FP16 = 80 SMs x 1.53 GHz x 1024.
//   NVIDIA Turing GPU Architecture (2018), Tesla T4: 65 TFLOPS FP16, 130 TOPS INT8 = 40 SMs x
//     1.59 GHz x 1024 / 2048. GeForce Turing cards run FP16 with FP32 accumulation at half this.
//   NVIDIA A100 Tensor Core GPU Architecture (2020), table 1: 156 TF32, 312 FP16 / BF16, 624 INT8
//     = 108 SMs x 1.41 GHz x 1024 / 2048 / 4096.
//   NVIDIA H100 Tensor Core GPU Architecture (2022), table 2, H100 SXM5: 495 TF32, 989 FP16 / BF16,
//     1979 INT8 = 132 SMs x 1.83 GHz x 2048 / 4096 / 8192. The H200 has the same SMs (132) and
//     rates. NVIDIA computes these at 1.83 GHz; cudaDevAttrClockRate reports the maximum boost,
//     1.98 GHz on the H100 SXM5 and the H200, so the peak printed here is 8 % above the datasheet.
// Ampere GA10x (8.6), Ada (8.9) and Blackwell are left out: their GeForce and data-center cards
// differ in FP16-with-FP32-accumulation rate, and the compute capability cannot tell them apart.
typedef struct {
    int major, minor;
    int tf32, fp16, bf16, int8; // operations per SM per clock; 0: no such Tensor Core format
    const char *basis;
} tensor_core_rates;

static const tensor_core_rates tensor_cores[] = {
    {7, 0, 0, 1024, 0, 0, "V100 whitepaper: 1024 FP16 ops/SM/clock"},
    {7, 5, 0, 1024, 0, 2048, "Turing whitepaper (T4): 1024 FP16, 2048 INT8 ops/SM/clock; GeForce: half for FP16"},
    {8, 0, 1024, 2048, 2048, 4096, "A100 whitepaper: 1024 TF32, 2048 FP16/BF16, 4096 INT8 ops/SM/clock"},
    {9, 0, 2048, 4096, 4096, 8192, "H100 whitepaper: 2048 TF32, 4096 FP16/BF16, 8192 INT8 ops/SM/clock"},
};

double cg_bench_peak_tflops(const cg_device_info *info, cg_bench_precision p, const char **basis) {
    const char *unused;
    if (basis == NULL) basis = &unused;
    if (info->compute_major == 0) { // the CPU: cg_device_info has no FLOP figure for it
        *basis = "no peak figure for the CPU";
        return 0.0;
    }
    if (p == CG_BENCH_FP32) {
        *basis = "FP32 cores x boost clock x 2";
        return info->peak_fp32_tflops;
    }
    for (size_t i = 0; i < sizeof tensor_cores / sizeof tensor_cores[0]; i++) {
        const tensor_core_rates *t = &tensor_cores[i];
        if (t->major != info->compute_major || t->minor != info->compute_minor) continue;
        int rate = p == CG_BENCH_TF32 ? t->tf32 : p == CG_BENCH_FP16 ? t->fp16 : p == CG_BENCH_BF16 ? t->bf16 : t->int8;
        if (rate == 0 && p == CG_BENCH_TF32) { // no TF32 before Ampere: cuBLAS runs it in FP32
            *basis = "no TF32 Tensor Cores: runs as FP32";
            return info->peak_fp32_tflops;
        }
        *basis = rate ? t->basis : "no Tensor Cores for this format";
        return (double)info->multiprocessors * info->clock_ghz * rate / 1000.0;
    }
    if (info->compute_major == 6) { // Pascal: no Tensor Cores
        if (p == CG_BENCH_TF32 || p == CG_BENCH_FP16) {
            *basis = "no Tensor Cores: FP32 units (cuBLAS computes in FP32)";
            return info->peak_fp32_tflops;
        }
        if (p == CG_BENCH_INT8 && info->compute_minor == 1) {
            *basis = "dp4a: 4 int8 multiply-adds per FP32 core per clock";
            return 4.0 * info->peak_fp32_tflops;
        }
    }
    *basis = "not in the Tensor Core table (core/bench.c)";
    return 0.0;
}

// ---- timer -----------------------------------------------------------------------------------

struct cg_timer {
    cg_device device;
    double start; // CPU: cg_seconds() at start
    void *gpu;    // GPU: the plugin's pair of events
};

static const cg_cuda_bench *gpu_bench(void) { return cg_cuda_backend_loaded()->bench(); }

cg_timer *cg_timer_new(cg_device d) {
    cg_timer *t = cg_xcalloc(1, sizeof *t);
    t->device = d;
    if (d.type == CG_CUDA) t->gpu = gpu_bench()->timer_new(d.index);
    return t;
}

void cg_timer_start(cg_timer *t) {
    if (t->gpu)
        gpu_bench()->timer_start(t->gpu);
    else
        t->start = cg_seconds();
}

double cg_timer_stop(cg_timer *t) { return t->gpu ? gpu_bench()->timer_stop(t->gpu) : cg_seconds() - t->start; }

void cg_timer_free(cg_timer *t) {
    if (t == NULL) return;
    if (t->gpu) gpu_bench()->timer_free(t->gpu);
    free(t);
}

// ---- random matrices and products ------------------------------------------------------------

#define FILL_CHUNK ((int64_t)1 << 24) // f32 values drawn per conversion on a GPU (64 MiB)

cg_status cg_bench_fill_uniform(cg_device d, void *x, cg_dtype dtype, int64_t n, uint64_t seed) {
    const cg_kernels *k = cg_kernels_for(d);
    if (dtype == CG_F32) {
        k->rng_uniform(x, n, seed, CG_STREAM_DATA, 0, -1.0f, 1.0f);
        return cg_ok();
    }
    if (d.type != CG_CUDA || (dtype != CG_F16 && dtype != CG_BF16 && dtype != CG_I8))
        return cg_error(CG_ERR_DEVICE, "random %s values on %s: not available (the CPU benchmark is f32 only)",
                        cg_dtype_name(dtype), d.type == CG_CUDA ? "a GPU" : "the CPU");
    // Draw in f32 chunks of FILL_CHUNK values (a multiple of 4: Philox block offset start / 4
    // continues exactly where the previous chunk stopped) and convert each on the device.
    int64_t chunk = n < FILL_CHUNK ? n : FILL_CHUNK;
    float *scratch = cg_device_alloc(d, (size_t)chunk * sizeof(float));
    size_t size = cg_dtype_size(dtype);
    for (int64_t start = 0; start < n; start += chunk) {
        int64_t count = n - start < chunk ? n - start : chunk;
        k->rng_uniform(scratch, count, seed, CG_STREAM_DATA, (uint64_t)(start / 4), -1.0f, 1.0f);
        gpu_bench()->convert_from_f32(d.index, (char *)x + (size_t)start * size, dtype, scratch, count);
    }
    cg_device_free(d, scratch); // back to the cache; later work on the stream runs after the conversions
    return cg_ok();
}

cg_status cg_bench_gemm(cg_device d, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K,
                        const void *A, const void *B, void *C) {
    if (d.type == CG_CUDA) return gpu_bench()->gemm(d.index, p, trans_b, M, N, K, A, B, C);
    if (p != CG_BENCH_FP32)
        return cg_error(CG_ERR_DEVICE, "%s products on the CPU: not available (fp32 only)", cg_bench_precision_name(p));
    cg_cpu_kernels()->gemm(false, trans_b, M, N, K, 1.0f, A, B, 0.0f, C);
    return cg_ok();
}

// IEEE binary16 bits -> float (normals, subnormals, infinities, NaN).
static float half_to_float(uint16_t h) {
    int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
    float v;
    if (exponent == 0)
        v = ldexpf((float)mantissa, -24); // subnormal: mantissa x 2^-24
    else if (exponent == 31)
        v = mantissa ? NAN : INFINITY;
    else
        v = ldexpf((float)(mantissa | 1024), exponent - 25); // (1.m) x 2^(e - 15), m of 10 bits
    return sign ? -v : v;
}

// bfloat16 bits are the top half of a float's.
static float bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

// Element i of an array of dtype on the host, as a double.
static double element(const void *p, cg_dtype t, int64_t i) {
    switch (t) {
    case CG_F32: return ((const float *)p)[i];
    case CG_F16: return half_to_float(((const uint16_t *)p)[i]);
    case CG_BF16: return bf16_to_float(((const uint16_t *)p)[i]);
    case CG_I8: return ((const int8_t *)p)[i];
    case CG_I32: return ((const int32_t *)p)[i];
    default: CG_CHECK(0, "no element reader for %s", cg_dtype_name(t));
    }
}

// |got - exact| relative to the size of a sum whose terms' squares add up to `squares`: the
// larger of |exact| (a sum of terms of one sign) and sqrt(squares) (a sum of random signs).
static double relative_error(double got, double exact, double squares) {
    double scale = fmax(fabs(exact), sqrt(squares));
    return fabs(got - exact) / (scale > 0.0 ? scale : 1.0);
}

double cg_bench_gemm_check(cg_device d, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K,
                           const void *A, const void *B, const void *C, int samples, uint64_t seed) {
    cg_dtype in = cg_bench_input_dtype(p), out = cg_bench_output_dtype(p);
    size_t in_size = cg_dtype_size(in), out_size = cg_dtype_size(out);
    void *b = cg_xmalloc((size_t)(K * N) * in_size);
    void *a_row = cg_xmalloc((size_t)K * in_size);
    cg_device_copy(cg_cpu(), b, d, B, (size_t)(K * N) * in_size);
    cg_rng rng = cg_rng_new(seed, CG_STREAM_SHUFFLE);
    double worst = 0.0;
    for (int s = 0; s < samples; s++) {
        uint32_t u[2];
        cg_rng_u32(&rng, u, 2);
        int64_t i = (int64_t)(u[0] % (uint32_t)M), j = (int64_t)(u[1] % (uint32_t)N);
        unsigned char c[8];
        cg_device_copy(cg_cpu(), a_row, d, (const char *)A + (size_t)(i * K) * in_size, (size_t)K * in_size);
        cg_device_copy(cg_cpu(), c, d, (const char *)C + (size_t)(i * N + j) * out_size, out_size);
        double exact = 0.0, squares = 0.0;
        for (int64_t k = 0; k < K; k++) {
            double term = element(a_row, in, k) * element(b, in, trans_b ? j * K + k : k * N + j);
            exact += term;
            squares += term * term;
        }
        double error = relative_error(element(c, out, 0), exact, squares);
        if (!(error <= worst)) worst = error; // a NaN result stays NaN
    }
    free(a_row);
    free(b);
    return worst;
}

// ---- one convolution layer -------------------------------------------------------------------

struct cg_bench_conv {
    cg_device device;
    cg_bench_conv_shape s;
    int64_t P, Q;
    void *gpu; // tuned: the plugin's layer; otherwise the buffers below, f32 NCHW
    float *x, *w, *bias, *y, *dy, *dw, *dbias, *loss;
    char about[512];
};

cg_status cg_bench_conv_new(cg_device d, cg_bench_precision p, bool tuned, cg_bench_conv_shape s, uint64_t seed,
                            cg_bench_conv **out) {
    *out = NULL;
    CG_CHECK(s.N > 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 && s.pad >= 0,
             "conv shape (%lld, %lld, %lld, %lld) -> %lld, %lldx%lld, stride %lld, pad %lld", (long long)s.N,
             (long long)s.C, (long long)s.H, (long long)s.W, (long long)s.K, (long long)s.R, (long long)s.S,
             (long long)s.stride, (long long)s.pad);
    if (p == CG_BENCH_INT8) return cg_error(CG_ERR_DEVICE, "int8 convolutions are not measured");
    cg_bench_conv *c = cg_xcalloc(1, sizeof *c);
    c->device = d;
    c->s = s;
    c->P = (s.H + 2 * s.pad - s.R) / s.stride + 1;
    c->Q = (s.W + 2 * s.pad - s.S) / s.stride + 1;
    if (tuned) {
        if (d.type != CG_CUDA) {
            free(c);
            return cg_error(CG_ERR_DEVICE, "a tuned (cuDNN) convolution needs a GPU");
        }
        cg_status st = gpu_bench()->conv_new(d.index, p, &s, seed, &c->gpu, c->about, sizeof c->about);
        if (st.code != CG_OK) {
            free(c);
            return st;
        }
        *out = c;
        return cg_ok();
    }
    if (p != CG_BENCH_FP32) {
        free(c);
        return cg_error(CG_ERR_DEVICE, "the engine's conv2d kernels are fp32 only (%s asked)", cg_bench_precision_name(p));
    }
    const cg_kernels *k = cg_kernels_for(d);
    int64_t nx = s.N * s.C * s.H * s.W, nw = s.K * s.C * s.R * s.S, ny = s.N * s.K * c->P * c->Q;
    c->x = cg_device_alloc(d, (size_t)nx * sizeof(float));
    c->w = cg_device_alloc(d, (size_t)nw * sizeof(float));
    c->dw = cg_device_alloc(d, (size_t)nw * sizeof(float));
    c->bias = cg_device_alloc(d, (size_t)s.K * sizeof(float));
    c->dbias = cg_device_alloc(d, (size_t)s.K * sizeof(float));
    c->y = cg_device_alloc(d, (size_t)ny * sizeof(float));
    c->dy = cg_device_alloc(d, (size_t)ny * sizeof(float));
    c->loss = cg_device_alloc(d, sizeof(float));
    float bound = 1.0f / sqrtf((float)(s.C * s.R * s.S));
    k->rng_uniform(c->x, nx, seed, CG_STREAM_DATA, 0, -1.0f, 1.0f);
    k->rng_uniform(c->w, nw, seed, CG_STREAM_INIT, 0, -bound, bound);
    k->rng_uniform(c->bias, s.K, seed, CG_STREAM_INIT, (uint64_t)((nw + 3) / 4), -bound, bound);
    cg_device_zero(d, c->dw, (size_t)nw * sizeof(float));
    cg_device_zero(d, c->dbias, (size_t)s.K * sizeof(float));
#ifdef __AVX512F__
    const char *cpu_method = "a first layer's direct kernels"; // 3 -> 64 channels: kernels/cpu/conv_stem.c
#else
    const char *cpu_method = "im2col + GEMM";
#endif
    snprintf(c->about, sizeof c->about, "NCHW fp32, the engine's conv2d kernels (%s)",
             d.type == CG_CUDA ? "what the cnn example trains with" : cpu_method);
    *out = c;
    return cg_ok();
}

void cg_bench_conv_forward(cg_bench_conv *c) {
    if (c->gpu) {
        gpu_bench()->conv_forward(c->gpu);
        return;
    }
    const cg_bench_conv_shape *s = &c->s;
    cg_kernels_for(c->device)->conv2d_forward(c->y, c->x, c->w, c->bias, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                                              s->stride, s->pad, c->P, c->Q);
}

void cg_bench_conv_train_step(cg_bench_conv *c) {
    if (c->gpu) {
        gpu_bench()->conv_train_step(c->gpu);
        return;
    }
    const cg_bench_conv_shape *s = &c->s;
    const cg_kernels *k = cg_kernels_for(c->device);
    int64_t ny = s->N * s->K * c->P * c->Q;
    cg_bench_conv_forward(c);
    k->sum_forward(c->loss, c->y, 1.0f / (float)ny, ny); // loss = mean(y)
    k->fill(c->dy, 1.0f / (float)ny, ny);                // d mean / dy
    k->conv2d_backward(NULL, c->dw, c->dbias, c->dy, c->x, c->w, s->N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride,
                       s->pad, c->P, c->Q, true);
}

// The stored element at flat index i of a device array of dtype t, as a double.
static double device_element(cg_device d, const void *p, cg_dtype t, int64_t i) {
    unsigned char buf[8];
    size_t size = cg_dtype_size(t);
    cg_device_copy(cg_cpu(), buf, d, (const char *)p + (size_t)i * size, size);
    return element(buf, t, 0);
}

double cg_bench_conv_check(cg_bench_conv *c, int samples, uint64_t seed) {
    const cg_bench_conv_shape *s = &c->s;
    int64_t N = s->N, C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, P = c->P, Q = c->Q;
    cg_bench_conv_buffers b;
    if (c->gpu)
        gpu_bench()->conv_buffers(c->gpu, &b);
    else
        b = (cg_bench_conv_buffers){c->x, c->w, c->bias, c->y, c->dy, c->dw, c->dbias, CG_F32, false, C};
    int64_t Cs = b.stored_channels;
    size_t es = cg_dtype_size(b.dtype);
    int64_t nx = N * Cs * H * W, nw = K * Cs * R * S;
    void *x = cg_xmalloc((size_t)nx * es), *w = cg_xmalloc((size_t)nw * es), *bias = cg_xmalloc((size_t)K * es);
    cg_device_copy(cg_cpu(), x, c->device, b.x, (size_t)nx * es);
    cg_device_copy(cg_cpu(), w, c->device, b.w, (size_t)nw * es);
    cg_device_copy(cg_cpu(), bias, c->device, b.bias, (size_t)K * es);
// Flat indices of the stored layouts.
#define X_AT(n, ch, h, ww) (b.nhwc ? (((n) * H + (h)) * W + (ww)) * Cs + (ch) : (((n) * Cs + (ch)) * H + (h)) * W + (ww))
#define W_AT(k, ch, r, ss) (b.nhwc ? (((k) * R + (r)) * S + (ss)) * Cs + (ch) : (((k) * Cs + (ch)) * R + (r)) * S + (ss))
#define Y_AT(n, k, p, q) (b.nhwc ? (((n) * P + (p)) * Q + (q)) * K + (k) : (((n) * K + (k)) * P + (p)) * Q + (q))
    cg_rng rng = cg_rng_new(seed, CG_STREAM_SHUFFLE);
    double worst = 0.0;

    // Forward: y(n, k, p, q) = bias(k) + sum over c, r, s of x(n, c, p stride - pad + r, ...) w(k, c, r, s).
    cg_bench_conv_forward(c);
    for (int i = 0; i < samples; i++) {
        uint32_t u[4];
        cg_rng_u32(&rng, u, 4);
        int64_t n = u[0] % (uint32_t)N, k = u[1] % (uint32_t)K, p = u[2] % (uint32_t)P, q = u[3] % (uint32_t)Q;
        double bk = element(bias, b.dtype, k), exact = bk, squares = bk * bk;
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t t = 0; t < S; t++) {
                    int64_t h = p * s->stride - s->pad + r, ww = q * s->stride - s->pad + t;
                    if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                    double term = element(x, b.dtype, X_AT(n, ch, h, ww)) * element(w, b.dtype, W_AT(k, ch, r, t));
                    exact += term;
                    squares += term * term;
                }
        double e = relative_error(device_element(c->device, b.y, b.dtype, Y_AT(n, k, p, q)), exact, squares);
        if (!(e <= worst)) worst = e;
    }

    // One training step from zero gradients: dw(k, c, r, s) = dy x the sum over n, p, q of the
    // input under the weight; dbias(k) = dy x N P Q (dy is one value everywhere).
    cg_device_zero(c->device, b.dw, (size_t)nw * es);
    cg_device_zero(c->device, b.dbias, (size_t)K * es);
    cg_bench_conv_train_step(c);
    double dy = device_element(c->device, b.dy, b.dtype, 0);
    for (int i = 0; i < samples; i++) {
        uint32_t u[4];
        cg_rng_u32(&rng, u, 4);
        int64_t k = u[0] % (uint32_t)K, ch = u[1] % (uint32_t)C, r = u[2] % (uint32_t)R, t = u[3] % (uint32_t)S;
        double exact = 0.0, squares = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++) {
                int64_t h = p * s->stride - s->pad + r;
                if (h < 0 || h >= H) continue;
                for (int64_t q = 0; q < Q; q++) {
                    int64_t ww = q * s->stride - s->pad + t;
                    if (ww < 0 || ww >= W) continue;
                    double term = dy * element(x, b.dtype, X_AT(n, ch, h, ww));
                    exact += term;
                    squares += term * term;
                }
            }
        double e = relative_error(device_element(c->device, b.dw, b.dtype, W_AT(k, ch, r, t)), exact, squares);
        if (!(e <= worst)) worst = e;
    }
    double npq = (double)(N * P * Q);
    for (int64_t k = 0; k < K; k++) {
        double e = relative_error(device_element(c->device, b.dbias, b.dtype, k), dy * npq, dy * dy * npq);
        if (!(e <= worst)) worst = e;
    }
#undef X_AT
#undef W_AT
#undef Y_AT
    free(x);
    free(w);
    free(bias);
    return worst;
}

const char *cg_bench_conv_about(const cg_bench_conv *c) { return c->about; }

void cg_bench_conv_free(cg_bench_conv *c) {
    if (c == NULL) return;
    if (c->gpu) {
        gpu_bench()->conv_free(c->gpu);
    } else {
        float *buffers[] = {c->x, c->w, c->bias, c->y, c->dy, c->dw, c->dbias, c->loss};
        for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) cg_device_free(c->device, buffers[i]);
    }
    free(c);
}

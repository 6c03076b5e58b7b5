#define _POSIX_C_SOURCE 200809L // clock_gettime
// cpu_peak.c: how close the CPU kernels come to the processor's peak. It measures the clock (a
// chain of dependent integer additions, one per cycle) and the FMA units (independent AVX-512
// FMAs per cycle, or AVX2's without AVX-512), prints the fp32 peak it assumes, cores x FMA units x
// 16 lanes (8 with AVX2) x 2 x clock,
// and the bf16 peaks of AVX512-BF16 and AMX where the CPU has them (measured the same way), then
// times the tutorial CNN's convolutions and first linear layer and ResNet-18's convolutions
// (forward, backward) in fp32 and in bf16 and prints GFLOP/s and the fraction of the peak
// (for the convolutions that run Winograd's F(2 x 2, 3 x 3), marked fp32W and bf16W, and the fused
// blocks' backward, marked P, whose dW sums only the pooling windows' maxima, an effective rate:
// the dense direct convolution's FLOPs over the time).
// Figures to read, not a test; built on request: cmake --build build --target bench_cpu_peak,
// then build/bench_cpu_peak [--threads N] [--quick] [--rows TEXT] (only the rows whose name
// contains TEXT, e.g. --rows CIFAR; --help says more). Each time is the best of repeated runs (at
// least 3, and at least 0.3 s of them).
// x86-64 only for the peak measurements (elsewhere the kernels are timed, without fractions).
#include "core/common.h"
#include "core/device.h"
#include "core/half.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv_parts.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/threads.h"
#include "examples/common/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef CG_CPU_MATRIX_KERNELS
#include <immintrin.h>
#endif

// The clock the times are read on: this process's CPU time when it runs one thread (time slices
// that other programs take from the core are then not counted: the machine may be shared), the
// wall clock with more threads (their CPU times add up).
static bool use_cpu_time = true;
static double now(void) {
    if (!use_cpu_time) return cg_seconds();
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---- the processor ------------------------------------------------------------------------------

// Cycles per second: 8 dependent additions per loop iteration take 8 cycles (the loop counter
// runs beside them); the best of 20 runs of 20 M iterations (another program on the core, or the
// hypervisor, makes a run slower, never faster). Register operands: recent Intel cores fold
// chains of additions of small constants at renaming, faster than one per cycle.
static double measure_clock(void) {
#ifdef CG_CPU_MATRIX_KERNELS
    double best = 1e30;
    const long n = 20000000;
    for (int r = 0; r < 20; r++) {
        long x = 0, i = n, one = 1;
        double t0 = now();
        __asm__ volatile("1:\n\t"
                         "add %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\t"
                         "add %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\t"
                         "dec %1\n\tjnz 1b"
                         : "+r"(x), "+r"(i)
                         : "r"(one));
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return 8.0 * (double)n / best;
#else
    return 0.0;
#endif
}

#ifdef CG_CPU_MATRIX_KERNELS
// The throughput tests are written in assembly so that the compiler can neither keep the
// accumulators in memory nor fold the loop: 24 independent accumulators (zmm0-23), enough to
// cover a 4-cycle latency on two units. Each returns FLOP per second of one core.
#define ACC24(op)                                                                                              \
    op " %%zmm30, %%zmm31, %%zmm0\n\t" op " %%zmm30, %%zmm31, %%zmm1\n\t" op " %%zmm30, %%zmm31, %%zmm2\n\t"   \
    op " %%zmm30, %%zmm31, %%zmm3\n\t" op " %%zmm30, %%zmm31, %%zmm4\n\t" op " %%zmm30, %%zmm31, %%zmm5\n\t"   \
    op " %%zmm30, %%zmm31, %%zmm6\n\t" op " %%zmm30, %%zmm31, %%zmm7\n\t" op " %%zmm30, %%zmm31, %%zmm8\n\t"   \
    op " %%zmm30, %%zmm31, %%zmm9\n\t" op " %%zmm30, %%zmm31, %%zmm10\n\t" op " %%zmm30, %%zmm31, %%zmm11\n\t" \
    op " %%zmm30, %%zmm31, %%zmm12\n\t" op " %%zmm30, %%zmm31, %%zmm13\n\t" op " %%zmm30, %%zmm31, %%zmm14\n\t" \
    op " %%zmm30, %%zmm31, %%zmm15\n\t" op " %%zmm30, %%zmm31, %%zmm16\n\t" op " %%zmm30, %%zmm31, %%zmm17\n\t" \
    op " %%zmm30, %%zmm31, %%zmm18\n\t" op " %%zmm30, %%zmm31, %%zmm19\n\t" op " %%zmm30, %%zmm31, %%zmm20\n\t" \
    op " %%zmm30, %%zmm31, %%zmm21\n\t" op " %%zmm30, %%zmm31, %%zmm22\n\t" op " %%zmm30, %%zmm31, %%zmm23\n\t"
#define ZMM_CLOBBERS                                                                                         \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
        "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",    \
        "xmm30", "xmm31"

__attribute__((target("avx512f"))) static double fma_flops(void) {
    long n = 10000000;
    double t0 = now();
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                     "1:\n\t" ACC24("vfmadd231ps") "dec %0\n\tjnz 1b"
                     : "+r"(n)
                     :
                     : ZMM_CLOBBERS);
    double t = now() - t0;
    return 10000000.0 * 24 * 32 / t; // 16 lanes x 2 FLOP
}

// Without AVX-512: 12 independent AVX2 FMAs (ymm0-11; AVX2 has 16 registers), enough for a
// 5-cycle latency on one 256-bit unit or a 4-cycle one on two.
#define ACC12(op)                                                                                            \
    op " %%ymm14, %%ymm15, %%ymm0\n\t" op " %%ymm14, %%ymm15, %%ymm1\n\t" op " %%ymm14, %%ymm15, %%ymm2\n\t"   \
    op " %%ymm14, %%ymm15, %%ymm3\n\t" op " %%ymm14, %%ymm15, %%ymm4\n\t" op " %%ymm14, %%ymm15, %%ymm5\n\t"   \
    op " %%ymm14, %%ymm15, %%ymm6\n\t" op " %%ymm14, %%ymm15, %%ymm7\n\t" op " %%ymm14, %%ymm15, %%ymm8\n\t"   \
    op " %%ymm14, %%ymm15, %%ymm9\n\t" op " %%ymm14, %%ymm15, %%ymm10\n\t" op " %%ymm14, %%ymm15, %%ymm11\n\t"

__attribute__((target("avx2,fma"))) static double fma_flops_avx2(void) {
    long n = 10000000;
    double t0 = now();
    __asm__ volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15\n\t"
                     "1:\n\t" ACC12("vfmadd231ps") "dec %0\n\tjnz 1b\n\tvzeroupper"
                     : "+r"(n)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm14", "xmm15");
    double t = now() - t0;
    return 10000000.0 * 12 * 16 / t; // 8 lanes x 2 FLOP
}

__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_flops(void) {
    long n = 10000000;
    double t0 = now();
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                     "1:\n\t" ACC24("vdpbf16ps") "dec %0\n\tjnz 1b"
                     : "+r"(n)
                     :
                     : ZMM_CLOBBERS);
    double t = now() - t0;
    return 10000000.0 * 24 * 64 / t; // 16 lanes x 2 products x 2 FLOP
}

// bf16 FLOP per second of tdpbf16ps: four independent 16 x 16 accumulators, 16 x 16 x 32 x 2 FLOP
// each. AMX needs Linux's permission, which cg_cpu_has_amx_bf16() asked for.
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

__attribute__((target("amx-tile,amx-bf16"))) static double amx_flops(void) {
    static uint16_t a[512], b[512];
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    _tile_loadd(4, a, 64);
    _tile_loadd(6, b, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const long n = 1000000;
    double t0 = now();
    for (long k = 0; k < n; k++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 6);
        _tile_dpbf16ps(2, 4, 6);
        _tile_dpbf16ps(3, 4, 6);
    }
    double t = now() - t0;
    _tile_release();
    return (double)n * 4 * 16384 / t;
}
#endif

// ---- timing -------------------------------------------------------------------------------------

typedef void (*run_fn)(void *ctx);

static double best_seconds(run_fn run, void *ctx) {
    double best = 1e30, total = 0;
    for (int r = 0; r < 3 || total < 0.3; r++) {
        double t0 = now();
        run(ctx);
        double t = now() - t0;
        total += t;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct {
    const char *name;
    int64_t N, C, H, W, K, R, S, stride, pad;
    bool fused; // conv + ReLU + 2x2 max pooling, the tutorial's block
    bool bias;  // a bias, added forward and summed backward (db): the tutorial's layers have one;
                // ResNet's convolutions have none (batch norm follows each), so their rows, as
                // training, neither add one nor sum db (until 2026-12-07 they did both)
} conv_shape;

typedef struct {
    const conv_shape *s;
    int64_t P, Q;
    bool bf16;
    void *x, *w, *b, *y, *dy, *dx, *dw, *db;
    uint8_t *where;
} conv_ctx;

static void conv_forward(void *p) {
    conv_ctx *c = p;
    const conv_shape *s = c->s;
    void *b = s->bias ? c->b : NULL;
    if (c->bf16 && s->fused)
        cg_cpu_kernels()->conv2d_relu_pool_forward_h(CG_BF16, c->y, c->where, c->x, c->w, b, s->N, s->C, s->H, s->W, s->K, s->R,
                                       s->S, s->stride, s->pad, c->P, c->Q);
    else if (c->bf16)
        conv2d_forward_h_cpu(CG_BF16, c->y, c->x, c->w, b, s->N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride,
                             s->pad, c->P, c->Q);
    else if (s->fused)
        cg_cpu_kernels()->conv2d_relu_pool_forward(c->y, c->where, c->x, c->w, b, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                                     s->stride, s->pad, c->P, c->Q);
    else
        conv2d_forward_cpu(c->y, c->x, c->w, b, s->N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, c->P,
                           c->Q);
}

// The backward of a network's layer: dW, db where it has a bias, and dx unless the input is the
// image (C <= 3). The fp32 rows write dx, as in training where dx is x's first gradient
// (core/tape.h: most activations have one consumer); the bf16 rows without the fused block add to it.
static void conv_backward(void *p) {
    conv_ctx *c = p;
    const conv_shape *s = c->s;
    void *dx = s->C > 3 ? c->dx : NULL, *db = s->bias ? c->db : NULL;
    if (c->bf16 && s->fused)
        cg_cpu_kernels()->conv2d_relu_pool_backward_h(CG_BF16, dx, c->dw, db, c->dy, c->y, c->where, c->x, c->w, s->N, s->C,
                                        s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, c->P, c->Q, false);
    else if (c->bf16)
        conv2d_backward_h_cpu(CG_BF16, dx, c->dw, db, c->dy, c->x, c->w, s->N, s->C, s->H, s->W, s->K, s->R, s->S,
                              s->stride, s->pad, c->P, c->Q);
    else if (s->fused)
        cg_cpu_kernels()->conv2d_relu_pool_backward(dx, c->dw, db, c->dy, c->y, c->where, c->x, c->w, s->N, s->C, s->H, s->W,
                                      s->K, s->R, s->S, s->stride, s->pad, c->P, c->Q, false);
    else
        conv2d_backward_cpu(dx, c->dw, db, c->dy, c->x, c->w, s->N, s->C, s->H, s->W, s->K, s->R, s->S, s->stride,
                            s->pad, c->P, c->Q, false);
}

// Buffers start on a cache line (64 bytes), as training's tensors do (the tape's arena aligns them
// to 256): malloc's large blocks start 16 bytes into a page, so that every row a kernel stores
// straddled two lines, and the 1 x 1 shortcut's backward ran 2 to 4 % slower than in training.
static void *aligned_buffer(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    CG_CHECK(p != NULL, "out of host memory asking for %zu bytes", bytes);
    return p;
}

static void *random_values(int64_t n, bool bf16) {
    float *f = aligned_buffer((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    if (!bf16) return f;
    uint16_t *h = aligned_buffer((size_t)n * 2);
    cg_f32_to_bf16_array(h, f, n);
    free(f);
    return h;
}

// --rows TEXT: only the rows whose name contains TEXT (NULL: every row).
static const char *only_rows = NULL;
static bool row_wanted(const char *name) { return only_rows == NULL || strstr(name, only_rows) != NULL; }

// One row per direction: GFLOP/s and the fraction of `peak` (GFLOP/s; 0: not known).
static void time_conv(const conv_shape *s, bool bf16, double peak) {
    if (!row_wanted(s->name)) return;
    conv_ctx c = {.s = s, .bf16 = bf16};
    c.P = (s->H + 2 * s->pad - s->R) / s->stride + 1;
    c.Q = (s->W + 2 * s->pad - s->S) / s->stride + 1;
    int64_t nx = s->N * s->C * s->H * s->W, nw = s->K * s->C * s->R * s->S, ny = s->N * s->K * c.P * c.Q;
    int64_t nyo = s->fused ? ny / 4 : ny;
    c.x = random_values(nx, bf16), c.w = random_values(nw, bf16), c.b = random_values(s->K, bf16);
    c.y = random_values(ny, bf16), c.dy = random_values(nyo, bf16);
    c.dx = random_values(nx, bf16), c.dw = random_values(nw, bf16), c.db = random_values(s->K, bf16);
    c.where = cg_xcalloc((size_t)nyo, 1);
    double flop = 2.0 * (double)ny * (double)(s->C * s->R * s->S);
    double tf = best_seconds(conv_forward, &c), tb = best_seconds(conv_backward, &c);
    double fb = s->C > 3 ? 2 * flop : flop;
    char frac_f[32] = "", frac_b[32] = "";
    if (peak > 0) {
        snprintf(frac_f, sizeof frac_f, "%5.1f %%", 100.0 * flop / tf / 1e9 / peak);
        snprintf(frac_b, sizeof frac_b, "%5.1f %%", 100.0 * fb / tb / 1e9 / peak);
    }
    // dW from the pooling windows (kernels/cpu/bf16_ops.c says where bf16 takes them)
    cg_cpu_bf16_path path = cg_cpu_bf16();
    bool winograd = bf16 ? conv2d_winograd_bf16_takes(path, s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, c.P, c.Q)
                         : conv2d_winograd_takes(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, c.P, c.Q);
    bool windows = s->fused &&
                   conv2d_relu_pool_dw_windows_takes(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, c.P, c.Q) &&
                   (!bf16 || (path == CG_BF16_AVX512 && s->C > 1 && s->C % 16 == 0) ||
                    ((path == CG_BF16_AMX || path == CG_BF16_AVX512) && s->C == 1));
    printf("  %-34s %-5s forward %8.1f GFLOP/s %s   backward %8.1f GFLOP/s %s%s\n", s->name,
           bf16 ? (winograd ? "bf16W" : "bf16") : winograd ? "fp32W" : "fp32", flop / tf / 1e9, frac_f, fb / tb / 1e9, frac_b,
           windows ? " P" : "");
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.dy), free(c.dx), free(c.dw), free(c.db), free(c.where);
}

// A linear layer's products, as the tape runs them (core/ops.c): forward y (M, N) = x (M, K) W^T
// (W: N x K), backward dx (M, K) += dy W and dW (N, K) += dy^T x, in fp32 (gemm_cpu) or in bf16
// (the op table's gemm_h, the bf16 hardware's products where the CPU has them).
typedef struct {
    int64_t M, N, K;
    bool bf16;
    void *x, *w, *y, *dy, *dx, *dw;
} linear_ctx;

static void linear_forward(void *p) {
    linear_ctx *g = p;
    if (g->bf16)
        cg_cpu_kernels()->gemm_h(CG_BF16, false, true, g->M, g->N, g->K, 1.0f, g->x, g->w, 0.0f, g->y);
    else
        gemm_cpu(false, true, g->M, g->N, g->K, 1.0f, g->x, g->w, 0.0f, g->y);
}

static void linear_backward(void *p) {
    linear_ctx *g = p;
    if (g->bf16) {
        cg_cpu_kernels()->gemm_h(CG_BF16, false, false, g->M, g->K, g->N, 1.0f, g->dy, g->w, 1.0f, g->dx);
        cg_cpu_kernels()->gemm_h(CG_BF16, true, false, g->N, g->K, g->M, 1.0f, g->dy, g->x, 1.0f, g->dw);
    } else {
        gemm_cpu(false, false, g->M, g->K, g->N, 1.0f, g->dy, g->w, 1.0f, g->dx);
        gemm_cpu(true, false, g->N, g->K, g->M, 1.0f, g->dy, g->x, 1.0f, g->dw);
    }
}

// One row, as time_conv's: forward and backward GFLOP/s, and the fraction of `peak` (0: not known).
static void time_linear(const char *name, int64_t M, int64_t N, int64_t K, bool bf16, double peak) {
    if (!row_wanted(name)) return;
    linear_ctx g = {.M = M, .N = N, .K = K, .bf16 = bf16};
    g.x = random_values(M * K, bf16), g.w = random_values(N * K, bf16), g.y = random_values(M * N, bf16);
    g.dy = random_values(M * N, bf16), g.dx = random_values(M * K, bf16), g.dw = random_values(N * K, bf16);
    double flop = 2.0 * (double)M * (double)N * (double)K;
    double tf = best_seconds(linear_forward, &g), tb = best_seconds(linear_backward, &g);
    char frac_f[32] = "", frac_b[32] = "";
    if (peak > 0) {
        snprintf(frac_f, sizeof frac_f, "%5.1f %%", 100.0 * flop / tf / 1e9 / peak);
        snprintf(frac_b, sizeof frac_b, "%5.1f %%", 100.0 * 2 * flop / tb / 1e9 / peak);
    }
    printf("  %-34s %-5s forward %8.1f GFLOP/s %s   backward %8.1f GFLOP/s %s\n", name, bf16 ? "bf16" : "fp32",
           flop / tf / 1e9, frac_f, 2 * flop / tb / 1e9, frac_b);
    free(g.x), free(g.w), free(g.y), free(g.dy), free(g.dx), free(g.dw);
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_cpu_peak [options]\n"
               "Measure this CPU's clock, FMA units and fp32 peak (cores x FMA units x 16 lanes, 8 with AVX2, x 2 x clock)\n"
               "and its AVX512-BF16 and AMX rates, then time the tutorial CNN's and ResNet-18's convolutions\n"
               "and first linear layer, forward and backward, in fp32 and bf16: GFLOP/s and the fraction of\n"
               "the peak (each time the best of at least 3 runs). Figures to read, not a test.\n"
               "  --threads N   threads for the kernels (default: OpenMP's; the peak is per core)\n"
               "  --quick       the tutorial CNN's rows only\n"
               "  --rows TEXT   only the rows whose name contains TEXT (e.g. CIFAR, layer3)\n"
               "  --help        this text\n");
}

int main(int argc, char **argv) {
    long threads = 0;
    bool quick = false;
    static const struct option longopts[] = {{"threads", required_argument, 0, 't'},
                                             {"quick", no_argument, 0, 'q'},
                                             {"rows", required_argument, 0, 'r'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &threads); break;
        case 'q': quick = true; break;
        case 'r': only_rows = optarg; break;
        case 'h': usage(stdout); return 0;
        default: s = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code != CG_OK) return cg_cli_fail("bench_cpu_peak", s);
    if (threads > 0) cg_set_num_threads((int)threads);
    int cores = cg_get_num_threads();
    // The processor's rates are measured on one thread (CPU time); the kernels on `cores` threads.

    // The clock of the dependent additions is the core's clock running scalar code; AVX-512 and
    // AMX code may run slower (Intel lowers the clock for heavy vector work), so the peak uses
    // the clock seen by the FMAs: their measured rate divided by the FLOP per cycle of the units.
    double clock = measure_clock(), fma = 0, dpbf16 = 0, amx = 0; // per second, one core
    bool avx512 = false, avx2 = false;
#ifdef CG_CPU_MATRIX_KERNELS
    __builtin_cpu_init();
    avx512 = __builtin_cpu_supports("avx512f");
    avx2 = !avx512 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (int r = 0; r < 10; r++) { // the best of 10: another program may take the core for a while
        double f;
        if (avx512 && (f = fma_flops()) > fma) fma = f;
        if (avx2 && (f = fma_flops_avx2()) > fma) fma = f;
        if (cg_cpu_has_avx512_bf16() && (f = dpbf16_flops()) > dpbf16) dpbf16 = f;
        if (cg_cpu_has_amx_bf16() && (f = amx_flops()) > amx) amx = f;
    }
#endif
    // Two FMA units do 64 FLOP per cycle; more than 1.4 x 32 per scalar cycle cannot be one unit.
    // The lanes of an FMA: 16 with AVX-512, 8 with AVX2 (whose units count 256-bit FMAs a cycle:
    // a Zen 1 core's two 128-bit units make one).
    int lanes = avx512 ? 16 : 8;
    int fma_units = clock > 0 && fma / clock > 1.4 * 2 * lanes ? 2 : 1;
    double clock_vec = fma / (fma_units * 2.0 * lanes);
    double peak32 = cores * fma_units * lanes * 2 * clock_vec / 1e9;
    printf("threads %d; scalar clock %.2f GHz (dependent additions, one per cycle, best of 20)\n", cores,
           clock / 1e9);
    if (avx512) {
        printf("AVX-512 FMAs: %.0f GFLOP/s per core measured -> %d FMA unit(s) at %.2f GHz\n", fma / 1e9, fma_units,
               clock_vec / 1e9);
        printf("fp32 peak assumed: %d cores x %d FMA units x 16 lanes x 2 FLOP x %.2f GHz = %.0f GFLOP/s\n", cores,
               fma_units, clock_vec / 1e9, peak32);
    } else if (avx2) {
        printf("no AVX-512; AVX2 FMAs: %.0f GFLOP/s per core measured -> %d FMA unit(s) of 256 bits at %.2f GHz\n",
               fma / 1e9, fma_units, clock_vec / 1e9);
        printf("fp32 peak assumed: %d cores x %d FMA units x 8 lanes x 2 FLOP x %.2f GHz = %.0f GFLOP/s\n", cores,
               fma_units, clock_vec / 1e9, peak32);
    } else {
        printf("neither AVX-512 nor AVX2: the fp32 fractions below are left out\n");
        peak32 = 0;
    }
    if (amx > 0)
        printf("bf16 AMX (tdpbf16ps): %.0f GFLOP/s per core measured (%.0f FLOP per cycle at %.2f GHz) -> peak %.0f "
               "GFLOP/s on %d cores\n", amx / 1e9, amx / clock_vec, clock_vec / 1e9, cores * amx / 1e9, cores);
    if (dpbf16 > 0)
        printf("bf16 AVX512-BF16 (vdpbf16ps): %.0f GFLOP/s per core measured (%.0f FLOP per cycle) -> peak %.0f "
               "GFLOP/s on %d cores\n", dpbf16 / 1e9, dpbf16 / clock_vec, cores * dpbf16 / 1e9, cores);
    // The linear layers' fp32 products: the engine's with AVX-512 (kernels/cpu/gemm.c says why), else
    // OpenBLAS's, whose kernels depend on the CPU it finds (or OPENBLAS_CORETYPE).
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (gemm_cpu_uses_openblas())
        printf("linear layers' fp32 products: OpenBLAS, %s kernels%s%s%s\n", cg_blas_core(),
               forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "");
    else
        printf("linear layers' fp32 products: the engine's GEMM\n");
    cg_cpu_bf16_path path = cg_cpu_bf16();
    use_cpu_time = cores == 1;
    printf("kernel times: %s\n", use_cpu_time ? "process CPU time (one thread)" : "wall clock");
    double peak_bf16 = cores * (path == CG_BF16_AMX ? amx : path == CG_BF16_AVX512 ? dpbf16 : 0) / 1e9;
    printf("fractions: fp32 rows of the fp32 peak, bf16 rows of the peak of the bf16 path in use (%s)\n",
           cg_cpu_bf16_name(path));
    printf("fp32W, bf16W: Winograd's F(2x2, 3x3) for y and dx (dW: im2col and the GEMM, or P); their GFLOP/s count\n"
           "the direct convolution's FLOPs (an effective rate: its products do 2.25x fewer, so it can pass the peak)\n"
           "P: the fused block's dW from each pooling window's maximum only, one term in four (the others\n"
           "are zero); the backward's GFLOP/s count the dense product's FLOPs (an effective rate, as fp32W)\n\n");

    const conv_shape tutorial[] = {
        {"tutorial conv1+relu+pool 1->32 28x28", 128, 1, 28, 28, 32, 3, 3, 1, 1, true, true},
        {"tutorial conv2+relu+pool 32->64 14x14", 128, 32, 14, 14, 64, 3, 3, 1, 1, true, true},
    };
    const conv_shape resnet[] = {
        {"ResNet-18 conv1 3->64 7x7/2 224", 8, 3, 224, 224, 64, 7, 7, 2, 3, false, false},
        {"ResNet-18 layer1 64->64 3x3 56", 8, 64, 56, 56, 64, 3, 3, 1, 1, false, false},
        {"ResNet-18 layer2 128->128 3x3 28", 8, 128, 28, 28, 128, 3, 3, 1, 1, false, false},
        {"ResNet-18 layer3 256->256 3x3 14", 8, 256, 14, 14, 256, 3, 3, 1, 1, false, false},
        {"ResNet-18 layer4 512->512 3x3 7", 8, 512, 7, 7, 512, 3, 3, 1, 1, false, false},
    };
    // The CIFAR form that lessons 07 and 08 train (3 x 3 stem of stride 1, 32 x 32 images): each
    // stage's 3 x 3 convolution, the stride-2 one that opens it and its 1 x 1 shortcut.
    const conv_shape resnet_cifar[] = {
        {"CIFAR stem 3->64 3x3 32", 32, 3, 32, 32, 64, 3, 3, 1, 1, false, false},
        {"CIFAR layer1 64->64 3x3 32", 32, 64, 32, 32, 64, 3, 3, 1, 1, false, false},
        {"CIFAR layer2.0 64->128 3x3/2 32", 32, 64, 32, 32, 128, 3, 3, 2, 1, false, false},
        {"CIFAR layer2 shortcut 64->128 1x1/2", 32, 64, 32, 32, 128, 1, 1, 2, 0, false, false},
        {"CIFAR layer2 128->128 3x3 16", 32, 128, 16, 16, 128, 3, 3, 1, 1, false, false},
        {"CIFAR layer3.0 128->256 3x3/2 16", 32, 128, 16, 16, 256, 3, 3, 2, 1, false, false},
        {"CIFAR layer3 256->256 3x3 8", 32, 256, 8, 8, 256, 3, 3, 1, 1, false, false},
        {"CIFAR layer4.0 256->512 3x3/2 8", 32, 256, 8, 8, 512, 3, 3, 2, 1, false, false},
        {"CIFAR layer4 512->512 3x3 4", 32, 512, 4, 4, 512, 3, 3, 1, 1, false, false},
    };
    printf("tutorial CNN, batch 128 (the convolutions with ReLU and pooling fused, as cnn runs them):\n");
    for (size_t i = 0; i < sizeof tutorial / sizeof tutorial[0]; i++) {
        time_conv(&tutorial[i], false, peak32);
        if (path != CG_BF16_EMULATED) time_conv(&tutorial[i], true, peak_bf16);
    }
    time_linear("tutorial fc1 128x3136 -> 128", 128, 128, 3136, false, peak32); // (gemm_cpu, as training)
    if (path != CG_BF16_EMULATED) time_linear("tutorial fc1 128x3136 -> 128", 128, 128, 3136, true, peak_bf16);
    if (!quick) {
        printf("ResNet-18 convolutions, batch 8, 224 x 224 images, no bias (backward: dx and dW; conv1: dW):\n");
        for (size_t i = 0; i < sizeof resnet / sizeof resnet[0]; i++) {
            time_conv(&resnet[i], false, peak32);
            if (path != CG_BF16_EMULATED) time_conv(&resnet[i], true, peak_bf16);
        }
        printf("ResNet-18's CIFAR form (lessons 07 and 08), batch 32, 32 x 32 images, no bias (backward: dx and dW):\n");
        for (size_t i = 0; i < sizeof resnet_cifar / sizeof resnet_cifar[0]; i++) {
            time_conv(&resnet_cifar[i], false, peak32);
            if (path != CG_BF16_EMULATED) time_conv(&resnet_cifar[i], true, peak_bf16);
        }
    }
    return 0;
}

// int8_gemm.c: times the CPU int8 GEMM (kernels/cpu/int8_gemm.c, int8 x int8 -> int32) against the
// engine's fp32 GEMM (kernels/cpu/gemm.c gemm_cpu: its own loops on a CPU with AVX-512, else
// OpenBLAS's sgemm for large products when found) on the same C = A B^T shapes, and the int8
// fully connected layer of the quantised models (core/qkernels.h: weights packed for VNNI, output
// stage fused, int8 out), on VNNI and on AMX-INT8 tiles where present. Figures to read, not a
// test; built only on request: cmake --build build --target bench_int8_gemm, then
// build/bench_int8_gemm [--threads N] (--help says more). Each time is the best of repeated runs
// (at least 5, and at least 0.2 s of them), on the process's CPU time with one thread (other
// programs on the core then do not count), else on the wall clock. Where the CPU has AMX-INT8,
// the layer is timed on the VNNI loops and on the tiles (kernels/cpu/int8_amx.c).
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/int8_gemm.h"
#include "core/common.h"
#include "core/quant/qkernels.h"
#include "core/rng.h"

#include "examples/common/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int64_t M, N, K;
    const char *what;
} shape;

static bool one_thread = true;
static double now(void) {
    if (!one_thread) return cg_seconds();
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double best_seconds_int8(int32_t *C, const int8_t *A, const int8_t *B, int64_t M, int64_t N, int64_t K) {
    double best = 1e30, total = 0;
    for (int r = 0; r < 5 || total < 0.2; r++) {
        double t0 = now();
        int8_gemm_cpu(C, A, B, M, N, K);
        double t = now() - t0;
        total += t;
        best = t < best ? t : best;
    }
    return best;
}

// The int8 layer: the same product, requantised to int8 with ReLU (the packing of the weights,
// the shift of the activations and the output stage included).
static double best_seconds_layer(int8_t *Y, const int8_t *A, const int8_t *B, const cg_qoutput *o, int64_t M,
                                 int64_t N, int64_t K) {
    double best = 1e30, total = 0;
    for (int r = 0; r < 5 || total < 0.2; r++) {
        double t0 = now();
        cg_cpu_qkernels.linear(Y, A, B, o, M, N, K);
        double t = now() - t0;
        total += t;
        best = t < best ? t : best;
    }
    return best;
}

// The int8 3 x 3 convolution layer (padding 1) as the quantised models run it: im2col and the
// packed GEMM, or Winograd's tiles on AVX2 builds without VNNI (kernels/cpu/int8_winograd.c).
static double best_seconds_conv(int8_t *Y, const int8_t *X, const int8_t *Wt, const cg_qoutput *o, int64_t N,
                                int64_t H, int64_t W, int64_t C, int64_t Kout) {
    double best = 1e30, total = 0;
    for (int r = 0; r < 5 || total < 0.2; r++) {
        double t0 = now();
        cg_cpu_qkernels.conv2d(Y, X, Wt, o, 0, N, H, W, C, Kout, 3, 3, 1, 1, H, W);
        double t = now() - t0;
        total += t;
        best = t < best ? t : best;
    }
    return best;
}

static double best_seconds_f32(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K) {
    double best = 1e30, total = 0;
    for (int r = 0; r < 5 || total < 0.2; r++) {
        double t0 = now();
        gemm_cpu(false, true, M, N, K, 1.0f, A, B, 0.0f, C); // C = A B^T, as a Linear layer
        double t = now() - t0;
        total += t;
        best = t < best ? t : best;
    }
    return best;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_int8_gemm [--threads N]\n"
               "Time the CPU's int8 GEMM (int32 sums) against the fp32 GEMM on the same shapes, and the\n"
               "quantised fully connected layer (VNNI or AVX2 loops, and AMX-INT8 tiles where the CPU has\n"
               "them): ms, GOP/s and the ratios, each the best of at least 5 runs; then the int8 3 x 3\n"
               "convolution layer of the conv row's shape (Winograd's tiles on AVX2 without VNNI). Figures\n"
               "to read, not a test.\n"
               "  --threads N   threads (default: OpenMP's)\n"
               "  --help        this text\n");
}

int main(int argc, char **argv) {
    long want_threads = 0;
    static const struct option longopts[] = {{"threads", required_argument, 0, 't'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    cg_status st = cg_ok();
    int c;
    opterr = 0;
    while (st.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 't': st = cg_cli_int("--threads", optarg, 1, 1024, &want_threads); break;
        case 'h': usage(stdout); return 0;
        default: st = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (st.code == CG_OK) st = cg_cli_no_operands(argc, argv);
    if (st.code != CG_OK) return cg_cli_fail("bench_int8_gemm", st);
#ifdef _OPENMP
    if (want_threads > 0) omp_set_num_threads((int)want_threads);
#endif
    const shape shapes[] = {
        {128, 128, 128, "square"},
        {512, 512, 512, "square"},
        {1024, 1024, 1024, "square"},
        {2048, 2048, 2048, "square"},
        {4096, 128, 784, "MLP layer 784 -> 128, batch 4096"},
        {4096, 10, 128, "MLP layer 128 -> 10, batch 4096"},
        {25088, 64, 288, "conv 32 -> 64, 3x3, as im2col, 32 images of 28x28"},
        {4096, 128, 3136, "tutorial CNN fc1 3136 -> 128, batch 4096"},
    };
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    one_thread = threads == 1;
    bool amx = cg_cpu_has_amx_int8();
    printf("int8 GEMM (int32 sums) against fp32 GEMM, C (M, N) = A (M, K) B (N, K)^T, %d thread(s), %s time\n",
           threads, one_thread ? "CPU" : "wall");
    printf("%6s %6s %6s  %10s %10s  %10s %10s  %6s  %10s %6s", "M", "N", "K", "f32 ms", "GFLOP/s", "int8 ms",
           "GOP/s", "ratio", "layer ms", "ratio");
    if (amx) printf("  %10s %6s", "AMX ms", "ratio");
    printf("  %s\n", "shape");
    cg_rng rng = cg_rng_new(1, 0);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        float *Af = cg_xmalloc(sizeof(float) * M * K), *Bf = cg_xmalloc(sizeof(float) * N * K);
        float *Cf = cg_xmalloc(sizeof(float) * M * N);
        int8_t *A = cg_xmalloc(M * K), *B = cg_xmalloc(N * K);
        int32_t *C = cg_xmalloc(sizeof(int32_t) * M * N);
        cg_rng_uniform(&rng, Af, M * K, -1.0f, 1.0f);
        cg_rng_uniform(&rng, Bf, N * K, -1.0f, 1.0f);
        for (int64_t i = 0; i < M * K; i++) A[i] = (int8_t)(int32_t)(Af[i] * 127.0f);
        for (int64_t i = 0; i < N * K; i++) B[i] = (int8_t)(int32_t)(Bf[i] * 127.0f);
        double tf = best_seconds_f32(Cf, Af, Bf, M, N, K);
        double ti = best_seconds_int8(C, A, B, M, N, K);
        int8_t *Y = cg_xmalloc((size_t)(M * N));
        int32_t *offset = cg_xcalloc((size_t)N, sizeof(int32_t));
        float *mult = cg_xmalloc(sizeof(float) * (size_t)N);
        for (int64_t j = 0; j < N; j++) mult[j] = 1.0f / (128.0f * 64.0f);
        cg_qoutput o = {offset, mult, -128, true, false};
        cg_cpu_int8_set(CG_INT8_LOOPS);
        double tl = best_seconds_layer(Y, A, B, &o, M, N, K); // K is a multiple of 4 in every shape here
        double ops = 2.0 * M * N * K;
        printf("%6lld %6lld %6lld  %10.3f %10.1f  %10.3f %10.1f  %5.2fx  %10.3f %5.2fx", (long long)M, (long long)N,
               (long long)K, tf * 1e3, ops / tf * 1e-9, ti * 1e3, ops / ti * 1e-9, tf / ti, tl * 1e3, tf / tl);
        if (amx) { // the same layer on AMX-INT8 tiles
            cg_cpu_int8_set(CG_INT8_AMX);
            double ta = best_seconds_layer(Y, A, B, &o, M, N, K);
            printf("  %10.3f %5.2fx", ta * 1e3, tf / ta);
        }
        printf("  %s\n", shapes[s].what);
        free(Y);
        free(offset);
        free(mult);
        free(Af);
        free(Bf);
        free(Cf);
        free(A);
        free(B);
        free(C);
    }
    { // the convolution whose im2col product is the "conv 32 -> 64" row, as a whole int8 layer
        const int64_t N = 32, H = 28, W = 28, C = 32, Kout = 64, Kp = 9 * C; // 288: a multiple of 4
        int8_t *X = cg_xmalloc((size_t)(N * H * W * C)), *Wt = cg_xmalloc((size_t)(Kout * Kp));
        int8_t *Y = cg_xmalloc((size_t)(N * H * W * Kout));
        float *u = cg_xmalloc(sizeof(float) * (size_t)(N * H * W * C));
        cg_rng_uniform(&rng, u, N * H * W * C, -1.0f, 1.0f);
        for (int64_t i = 0; i < N * H * W * C; i++) X[i] = (int8_t)(int32_t)(u[i] * 127.0f);
        for (int64_t i = 0; i < Kout * Kp; i++) Wt[i] = (int8_t)(int32_t)(u[i] * 127.0f);
        int32_t *offset = cg_xcalloc((size_t)Kout, sizeof(int32_t));
        float *mult = cg_xmalloc(sizeof(float) * (size_t)Kout);
        for (int64_t j = 0; j < Kout; j++) mult[j] = 1.0f / (128.0f * 64.0f);
        cg_qoutput o = {offset, mult, -128, true, false};
        cg_cpu_int8_set(CG_INT8_LOOPS);
        double t = best_seconds_conv(Y, X, Wt, &o, N, H, W, C, Kout);
        printf("int8 conv layer 32 x 28 x 28 x 32 -> 64, 3 x 3, padding 1, through the output stage: %.3f ms, "
               "%.1f GOP/s counted as im2col's product (%s)\n", t * 1e3, 2.0 * N * H * W * Kout * Kp / t * 1e-9,
               cg_cpu_int8_name(CG_INT8_LOOPS));
        free(X), free(Wt), free(Y), free(u), free(offset), free(mult);
    }
    return 0;
}

// gpu_benchmark: the course's GPU benchmark (chapter 0) in C. Test 1 times an N x N matrix
// product on the CPU (fp32) and the GPU in fp32, tf32, fp16, bf16 and int8, with the achieved
// TFLOPS, the fraction of the device's theoretical peak and the GPU/CPU speedup; test 2 times a
// convolution layer (3 -> 64 channels, 3x3, padding 1, batch 128 of 3 x 224 x 224), forward and
// forward + backward, in iterations per second; test 3 reports memory: the device's total and
// free, and the engine's caching allocator (allocated, reserved, peak). A readable table, or one
// JSON object per measurement with --json. Without a GPU (or with --device cpu) it runs the CPU
// side and says why the GPU part was skipped. Everything device-specific is in core/bench.h.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "core/measure/hw_bench.h"
#include "examples/common/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: gpu_benchmark [options]\n"
            "The course's GPU benchmark (chapter 0): matrix product, convolution, memory, on the CPU and a GPU.\n"
            "\n"
            "  --device DEV        cuda (default), cuda:N or cpu; without a GPU the CPU side runs alone\n"
            "  --n N               matrix size of test 1 (default 10000)\n"
            "  --reps N            GPU products timed per format, after one warm-up (default 10); the CPU\n"
            "                      times one product, or repeats it for 0.5 s when one takes under 0.25 s\n"
            "  --dtypes LIST       formats of test 1 (default fp32,tf32,fp16,bf16,int8); the CPU runs fp32\n"
            "  --batch N           images per convolution (default 128)\n"
            "  --iters N           convolution iterations timed on the GPU, after 3 warm-ups (default 100)\n"
            "  --cpu-iters N       convolution iterations on the CPU, at most --iters (default 3)\n"
            "  --conv-dtypes LIST  formats of test 2 (default fp32,fp16; also tf32, bf16); the CPU runs fp32\n"
            "  --tests LIST        which tests: matmul,conv,memory (default all three)\n"
            "  --no-cpu            skip the CPU side (no GPU/CPU speedup then)\n"
            "  --threads N         CPU threads (default: OpenMP's choice)\n"
            "  --seed N            seed of the random inputs (default 0)\n"
            "  --json              one JSON object per measurement on stdout instead of the table\n"
            "  --help              this text\n"
            "\n"
            "TFLOPS = 2 N^3 / seconds / 1e12 (N^3 multiply-adds, 2 operations each; int8: TOPS). The peak is\n"
            "FP32 cores x boost clock x 2 for fp32, and the Tensor Core rate per SM per clock of NVIDIA's\n"
            "architecture whitepapers for the other formats (core/bench.c). Memory figures are in GiB\n"
            "(2^30 bytes: the course's and PyTorch's \"GB\").\n");
}

enum { TEST_MATMUL = 1, TEST_CONV = 2, TEST_MEMORY = 4 };

typedef struct {
    const char *device;
    long n, reps, batch, iters, cpu_iters, threads, seed;
    bool json, no_cpu;
    int tests;
    int n_dtypes, n_conv_dtypes;
    cg_bench_precision dtypes[CG_BENCH_NUM_PRECISIONS], conv_dtypes[CG_BENCH_NUM_PRECISIONS];
} options;

// A comma-separated list of formats into out[]; each at most once.
static cg_status parse_formats(const char *flag, const char *text, bool conv, cg_bench_precision *out, int *count) {
    char buf[256];
    if (strlen(text) >= sizeof buf) return cg_error(CG_ERR_ARG, "%s: list too long", flag);
    snprintf(buf, sizeof buf, "%s", text);
    *count = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        cg_bench_precision p;
        cg_status s = cg_bench_precision_parse(item, &p);
        if (s.code != CG_OK) return cg_error(CG_ERR_ARG, "%s: %s", flag, s.message);
        if (conv && p == CG_BENCH_INT8) return cg_error(CG_ERR_ARG, "%s: int8 convolutions are not measured", flag);
        for (int i = 0; i < *count; i++)
            if (out[i] == p) return cg_error(CG_ERR_ARG, "%s: '%s' given twice", flag, item);
        out[(*count)++] = p;
    }
    if (*count == 0) return cg_error(CG_ERR_ARG, "%s: empty list", flag);
    return cg_ok();
}

static cg_status parse_tests(const char *text, int *tests) {
    char buf[128];
    if (strlen(text) >= sizeof buf) return cg_error(CG_ERR_ARG, "--tests: list too long");
    snprintf(buf, sizeof buf, "%s", text);
    *tests = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (strcmp(item, "matmul") == 0) *tests |= TEST_MATMUL;
        else if (strcmp(item, "conv") == 0) *tests |= TEST_CONV;
        else if (strcmp(item, "memory") == 0) *tests |= TEST_MEMORY;
        else return cg_error(CG_ERR_ARG, "--tests: '%s' is not matmul, conv or memory", item);
    }
    if (*tests == 0) return cg_error(CG_ERR_ARG, "--tests: empty list");
    return cg_ok();
}

// Fills *o from argv. Returns -1 to go on, or the exit status to stop with.
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.device = "cuda", .n = 10000, .reps = 10, .batch = 128, .iters = 100, .cpu_iters = 3,
                   .tests = TEST_MATMUL | TEST_CONV | TEST_MEMORY};
    cg_status s = parse_formats("--dtypes", "fp32,tf32,fp16,bf16,int8", false, o->dtypes, &o->n_dtypes);
    if (s.code == CG_OK) s = parse_formats("--conv-dtypes", "fp32,fp16", true, o->conv_dtypes, &o->n_conv_dtypes);
    static const struct option longopts[] = {
        {"device", required_argument, 0, 'd'},      {"n", required_argument, 0, 'n'},
        {"reps", required_argument, 0, 'r'},        {"dtypes", required_argument, 0, 'D'},
        {"batch", required_argument, 0, 'b'},       {"iters", required_argument, 0, 'i'},
        {"cpu-iters", required_argument, 0, 'c'},   {"conv-dtypes", required_argument, 0, 'C'},
        {"tests", required_argument, 0, 'T'},       {"no-cpu", no_argument, 0, 'X'},
        {"threads", required_argument, 0, 't'},     {"seed", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},              {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->device = optarg; break;
        case 'n': s = cg_cli_int("--n", optarg, 1, 46340, &o->n); break; // N^2 < 2^31 for cuBLAS's int sizes
        case 'r': s = cg_cli_int("--reps", optarg, 1, 100000, &o->reps); break;
        case 'D': s = parse_formats("--dtypes", optarg, false, o->dtypes, &o->n_dtypes); break;
        case 'b': s = cg_cli_int("--batch", optarg, 1, 4096, &o->batch); break;
        case 'i': s = cg_cli_int("--iters", optarg, 1, 1000000, &o->iters); break;
        case 'c': s = cg_cli_int("--cpu-iters", optarg, 1, 1000000, &o->cpu_iters); break;
        case 'C': s = parse_formats("--conv-dtypes", optarg, true, o->conv_dtypes, &o->n_conv_dtypes); break;
        case 'T': s = parse_tests(optarg, &o->tests); break;
        case 'X': o->no_cpu = true; break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &o->threads); break;
        case 's': s = cg_cli_int("--seed", optarg, 0, 0x7fffffffL, &o->seed); break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); return 0;
        default: s = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code != CG_OK) return cg_cli_fail("gpu_benchmark", s);
    if (o->cpu_iters > o->iters) o->cpu_iters = o->iters;
    return -1;
}

// ---- output: a table for people, JSON lines for scripts ------------------------------------

static options opt;
static const char *gpu_name = ""; // the GPU's name, in every JSON object of a GPU measurement

// A JSON string value: quotes and backslashes escaped, control characters dropped.
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

// Begins a JSON object with the fields every measurement has; the caller adds its own with
// json_num / json_str and ends it with json_end.
static void json_begin(const char *workload, cg_device d) {
    char name[16];
    printf("{\"workload\":");
    json_string(workload);
    printf(",\"device\":");
    json_string(cg_device_str(d, name, sizeof name));
    if (d.type == CG_CUDA) {
        printf(",\"gpu\":");
        json_string(gpu_name);
    }
}
// A number: whole ones (counts, bytes) in full, others to 6 significant digits; NaN as null.
static void json_num(const char *key, double v) {
    if (!isfinite(v))
        printf(",\"%s\":null", key);
    else if (v == floor(v) && fabs(v) < 1e15)
        printf(",\"%s\":%.0f", key, v);
    else
        printf(",\"%s\":%.6g", key, v);
}
static void json_str(const char *key, const char *v) {
    printf(",\"%s\":", key);
    json_string(v);
}
static void json_end(void) {
    printf(",\"engine\":\"cgrad\"}\n");
    fflush(stdout);
}

// ---- test 1: matrix product -----------------------------------------------------------------

typedef struct {
    double seconds; // per product
    int reps;       // products timed
} timing;

// Runs a product once (warm-up: cuBLAS's handle, the kernels' first load) and times `reps` more;
// on the CPU the first product is the measurement unless it is short. Returns the first error.
static cg_status time_products(cg_device d, cg_bench_precision p, bool trans_b, int64_t n, const void *A,
                               const void *B, void *C, int reps, timing *out) {
    cg_timer *t = cg_timer_new(d);
    cg_timer_start(t);
    cg_status s = cg_bench_gemm(d, p, trans_b, n, n, n, A, B, C);
    double first = cg_timer_stop(t);
    if (s.code == CG_OK) {
        if (d.type == CG_CPU && first >= 0.25) {
            *out = (timing){first, 1};
        } else {
            if (d.type == CG_CPU) reps = (int)fmin(100.0, ceil(0.5 / fmax(first, 1e-6)));
            cg_timer_start(t);
            for (int r = 0; r < reps && s.code == CG_OK; r++) s = cg_bench_gemm(d, p, trans_b, n, n, n, A, B, C);
            *out = (timing){cg_timer_stop(t) / reps, reps};
        }
    }
    cg_timer_free(t);
    return s;
}

// One row of test 1: fill, time, check, print. cpu_seconds: the CPU's time per product for the
// speedup column (0 when the CPU was not measured). Returns the seconds per product (0 if skipped).
static double matmul_row(cg_device d, const cg_device_info *info, cg_bench_precision p, double cpu_seconds) {
    int64_t n = opt.n;
    bool trans_b = p == CG_BENCH_INT8; // int8 Tensor Core kernels take B transposed ("TN")
    cg_dtype in = cg_bench_input_dtype(p), out = cg_bench_output_dtype(p);
    char dev_name[16];
    cg_device_str(d, dev_name, sizeof dev_name);
    void *A = cg_device_alloc(d, (size_t)(n * n) * cg_dtype_size(in));
    void *B = cg_device_alloc(d, (size_t)(n * n) * cg_dtype_size(in));
    void *C = cg_device_alloc(d, (size_t)(n * n) * cg_dtype_size(out));
    cg_status s = cg_bench_fill_uniform(d, A, in, n * n, (uint64_t)opt.seed);
    if (s.code == CG_OK) s = cg_bench_fill_uniform(d, B, in, n * n, (uint64_t)opt.seed + 1);
    timing tm = {0, 0};
    if (s.code == CG_OK) s = time_products(d, p, trans_b, n, A, B, C, (int)opt.reps, &tm);
    double error = s.code == CG_OK ? cg_bench_gemm_check(d, p, trans_b, n, n, n, A, B, C, 16, (uint64_t)opt.seed) : 0;
    cg_device_free(d, A);
    cg_device_free(d, B);
    cg_device_free(d, C);

    const char *basis = NULL;
    double peak = cg_bench_peak_tflops(info, p, &basis);
    if (s.code != CG_OK) {
        if (opt.json) {
            json_begin("matmul", d);
            json_num("n", (double)n);
            json_str("dtype", cg_bench_precision_name(p));
            json_str("skipped", s.message);
            json_end();
        } else {
            printf("  %-7s %-5s  skipped: %s\n", dev_name, cg_bench_precision_name(p), s.message);
        }
        return 0.0;
    }
    double tflops = 2.0 * (double)n * (double)n * (double)n / tm.seconds / 1e12;
    double speedup = cpu_seconds > 0 ? cpu_seconds / tm.seconds : NAN;
    if (opt.json) {
        json_begin("matmul", d);
        json_num("n", (double)n);
        json_str("dtype", cg_bench_precision_name(p));
        json_num("seconds", tm.seconds);
        json_num("reps", tm.reps);
        json_num("tflops", tflops);
        json_num("peak_tflops", peak > 0 ? peak : NAN);
        json_num("fraction_of_peak", peak > 0 ? tflops / peak : NAN);
        json_str("peak_basis", basis);
        json_num("speedup_vs_cpu", speedup);
        json_num("max_error", error);
        json_end();
    } else {
        char peak_text[16] = "n/a", fraction[16] = "n/a", speed[16] = "n/a";
        if (peak > 0) snprintf(peak_text, sizeof peak_text, "%.1f", peak);
        if (peak > 0) snprintf(fraction, sizeof fraction, "%.0f %%", 100.0 * tflops / peak);
        if (isfinite(speedup)) snprintf(speed, sizeof speed, "%.1fx", speedup);
        printf("  %-7s %-5s %10.4f %4d %9.2f %8s %7s %9s %9.1e\n", dev_name, cg_bench_precision_name(p), tm.seconds,
               tm.reps, tflops, peak_text, fraction, speed, error);
    }
    fflush(stdout);
    return tm.seconds;
}

static void test_matmul(const cg_device *cpu, const cg_device *gpu, const cg_device_info *gpu_info) {
    if (!opt.json) {
        printf("\nTest 1: matrix product, %ld x %ld (2 N^3 = %.3g TFLOP per product)\n", opt.n, opt.n,
               2.0 * pow((double)opt.n, 3) / 1e12);
        printf("  %-7s %-5s %10s %4s %9s %8s %7s %9s %9s\n", "device", "dtype", "seconds", "reps", "TFLOPS", "peak",
               "of peak", "vs CPU", "error");
    }
    double cpu_seconds = 0.0;
    if (cpu) {
        cg_device_info info;
        cg_device_get_info(*cpu, &info);
        cpu_seconds = matmul_row(*cpu, &info, CG_BENCH_FP32, 0.0);
    }
    if (gpu)
        for (int i = 0; i < opt.n_dtypes; i++) matmul_row(*gpu, gpu_info, opt.dtypes[i], cpu_seconds);
    if (!opt.json) {
        printf("  error: the largest |C - exact| of 16 sampled entries over the root of the sum of their squared\n"
               "  terms (the size of an entry); fp16 and bf16 store C in 16 bits, int8 is exact.\n");
        if (gpu) {
            printf("  peak:");
            for (int i = 0; i < opt.n_dtypes; i++) {
                const char *basis;
                cg_bench_peak_tflops(gpu_info, opt.dtypes[i], &basis);
                printf("%s %s: %s", i ? ";\n       " : "", cg_bench_precision_name(opt.dtypes[i]), basis);
            }
            printf(".\n  clock: %.3f GHz, the maximum boost the driver reports; NVIDIA's datasheets compute some\n"
                   "  Tensor Core peaks at a lower clock (H100 / H200: 1.83 GHz, 989 TFLOPS fp16).\n",
                   gpu_info->clock_ghz);
        }
    }
}

// ---- test 2: convolution --------------------------------------------------------------------

typedef struct {
    cg_memory_stats stats;
    size_t device_free, device_total;
    char what[96];
    bool taken;
} memory_snapshot;

static memory_snapshot held; // the GPU's memory while its largest convolution layer was allocated

static void conv_row(cg_device d, cg_bench_precision p, bool tuned, long iters) {
    cg_bench_conv_shape shape = {opt.batch, 3, 224, 224, 64, 3, 3, 1, 1};
    char dev_name[16];
    cg_device_str(d, dev_name, sizeof dev_name);
    const char *method = tuned ? "cudnn-tuned" : "kernels";
    cg_bench_conv *conv = NULL;
    cg_status s = cg_bench_conv_new(d, p, tuned, shape, (uint64_t)opt.seed, &conv);
    if (s.code != CG_OK) {
        if (opt.json) {
            json_begin("conv", d);
            json_str("dtype", cg_bench_precision_name(p));
            json_str("method", method);
            json_str("skipped", s.message);
            json_end();
        } else {
            printf("  %-7s %-5s %-12s skipped: %s\n", dev_name, cg_bench_precision_name(p), method, s.message);
        }
        return;
    }
    int warmups = d.type == CG_CUDA ? 3 : 1; // torch_workloads.py runs 3; one CPU iteration is long
    double per_s[2];
    cg_timer *t = cg_timer_new(d);
    for (int mode = 0; mode < 2; mode++) {
        void (*step)(cg_bench_conv *) = mode == 0 ? cg_bench_conv_forward : cg_bench_conv_train_step;
        for (int i = 0; i < (d.type == CG_CUDA || mode == 0 ? warmups : 0); i++) step(conv);
        cg_timer_start(t);
        for (long i = 0; i < iters; i++) step(conv);
        double seconds = cg_timer_stop(t);
        per_s[mode] = (double)iters / seconds;
        if (opt.json) {
            json_begin("conv", d);
            json_str("dtype", cg_bench_precision_name(p));
            json_str("method", method);
            json_str("mode", mode == 0 ? "forward" : "train");
            json_num("iters", (double)iters);
            json_num("batch", (double)opt.batch);
            json_num("seconds", seconds);
            json_num("it_per_s", per_s[mode]);
            json_num("images_per_s", per_s[mode] * (double)opt.batch);
            json_str("about", cg_bench_conv_about(conv));
            json_end();
        }
    }
    cg_timer_free(t);
    // Then the layer's numbers against a direct convolution in double (forward, dw, dbias).
    double error = cg_bench_conv_check(conv, 8, (uint64_t)opt.seed);
    if (opt.json) {
        json_begin("conv", d);
        json_str("dtype", cg_bench_precision_name(p));
        json_str("method", method);
        json_str("mode", "check");
        json_num("max_error", error);
        json_end();
    } else {
        printf("  %-7s %-5s %-12s %6ld %12.2f %12.2f %14.0f %9.1e\n", dev_name, cg_bench_precision_name(p), method,
               iters, per_s[0], per_s[1], per_s[0] * (double)opt.batch, error);
        printf("      %s\n", cg_bench_conv_about(conv));
    }
    if (d.type == CG_CUDA) {
        cg_memory_stats m = cg_device_memory_stats(d);
        if (!held.taken || m.allocated > held.stats.allocated) {
            cg_device_info info;
            cg_device_get_info(d, &info);
            held = (memory_snapshot){m, info.memory_free, info.memory_total, "", true};
            snprintf(held.what, sizeof held.what, "with the %s %s convolution allocated", cg_bench_precision_name(p),
                     method);
        }
    }
    cg_bench_conv_free(conv);
    fflush(stdout);
}

static void test_conv(const cg_device *cpu, const cg_device *gpu) {
    if (!opt.json) {
        printf("\nTest 2: conv2d 3 -> 64 channels, 3x3, padding 1, batch %ld of 3 x 224 x 224, with bias\n", opt.batch);
        printf("  forward: y = conv(x) + b; train: forward, loss = mean(y), backward to the weights and bias\n");
        printf("  %-7s %-5s %-12s %6s %12s %12s %14s %9s\n", "device", "dtype", "method", "iters", "forward it/s",
               "train it/s", "forward img/s", "error");
    }
    bool fp32 = false;
    for (int i = 0; i < opt.n_conv_dtypes; i++) fp32 |= opt.conv_dtypes[i] == CG_BENCH_FP32;
    if (cpu && fp32) conv_row(*cpu, CG_BENCH_FP32, false, opt.cpu_iters);
    if (gpu)
        for (int i = 0; i < opt.n_conv_dtypes; i++) {
            if (opt.conv_dtypes[i] == CG_BENCH_FP32) conv_row(*gpu, CG_BENCH_FP32, false, opt.iters); // as cnn trains
            conv_row(*gpu, opt.conv_dtypes[i], true, opt.iters);
        }
    if (!opt.json)
        printf("  error: 8 outputs, 8 weight gradients and every bias gradient against a direct convolution in\n"
               "  double from the stored inputs, relative to the size of each sum (fp16 / bf16 store y in 16 bits)\n");
}

// ---- test 3: memory ---------------------------------------------------------------------------

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

static void memory_row(cg_device d, const char *phase, const cg_memory_stats *m, size_t device_free,
                       size_t device_total) {
    if (opt.json) {
        json_begin("memory", d);
        json_str("phase", phase);
        json_num("total_bytes", (double)device_total);
        json_num("free_bytes", (double)device_free);
        json_num("allocated_bytes", (double)m->allocated);
        json_num("reserved_bytes", (double)m->reserved);
        json_num("peak_bytes", (double)m->peak_allocated);
        json_end();
    } else {
        printf("  %-48s %7.2f %7.2f %9.2f %8.2f %7.2f\n", phase, gib(device_total), gib(device_free), gib(m->allocated),
               gib(m->reserved), gib(m->peak_allocated));
    }
}

static void test_memory(const cg_device *gpu) {
    if (!opt.json) {
        printf("\nTest 3: memory, GiB\n");
        if (gpu)
            printf("  %-48s %7s %7s %9s %8s %7s\n", "", "total", "free", "allocated", "reserved", "peak");
    }
    if (gpu) {
        cg_device_info info;
        if (held.taken) memory_row(*gpu, held.what, &held.stats, held.device_free, held.device_total);
        cg_device_get_info(*gpu, &info);
        cg_memory_stats m = cg_device_memory_stats(*gpu);
        memory_row(*gpu, "after the tests, buffers freed (cached)", &m, info.memory_free, info.memory_total);
        cg_device_empty_cache(*gpu);
        cg_device_get_info(*gpu, &info);
        m = cg_device_memory_stats(*gpu);
        memory_row(*gpu, "after empty_cache", &m, info.memory_free, info.memory_total);
        if (!opt.json)
            printf("  total, free: the device (cudaMemGetInfo); allocated: cgrad's buffers in use; reserved:\n"
                   "  allocated + the allocator's cache, held from the driver; peak: the most ever allocated.\n");
    }
    // The host: RAM and this process's peak resident size (the CPU side allocates plain memory).
    long pages = sysconf(_SC_PHYS_PAGES), available = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double total = pages > 0 ? gib((size_t)pages * (size_t)page) : NAN;
    double free_ram = available > 0 ? gib((size_t)available * (size_t)page) : NAN;
    double peak_rss = gib((size_t)usage.ru_maxrss * 1024); // Linux: kilobytes
    if (opt.json) {
        json_begin("memory", cg_cpu());
        json_str("phase", "host");
        json_num("total_bytes", total * 1073741824.0);
        json_num("free_bytes", free_ram * 1073741824.0);
        json_num("peak_rss_bytes", peak_rss * 1073741824.0);
        json_end();
    } else {
        printf("  host RAM: %.2f total, %.2f free; this process's peak resident size %.2f\n", total, free_ram, peak_rss);
    }
}

int main(int argc, char **argv) {
    int stop = parse_options(argc, argv, &opt);
    if (stop >= 0) return stop;
    if (opt.threads > 0) cg_set_num_threads((int)opt.threads);

    cg_device parsed, cpu = cg_cpu();
    cg_status s = cg_device_parse(opt.device, &parsed);
    if (s.code == CG_ERR_ARG) return cg_cli_fail("gpu_benchmark", s);
    bool have_gpu = s.code == CG_OK && parsed.type == CG_CUDA;
    char skipped[600] = "";
    if (!have_gpu) snprintf(skipped, sizeof skipped, "%s", s.code == CG_OK ? "--device cpu" : s.message);
    if (!have_gpu && opt.no_cpu)
        return cg_cli_fail("gpu_benchmark", cg_error(CG_ERR_ARG, "--no-cpu and no GPU (%s): nothing to measure",
                                                     skipped));

    static cg_device_info cpu_info, gpu_info; // static: gpu_name keeps pointing into it
    cg_device_get_info(cpu, &cpu_info);
    if (have_gpu && (s = cg_device_get_info(parsed, &gpu_info)).code != CG_OK) return cg_cli_fail("gpu_benchmark", s);
    if (have_gpu) gpu_name = gpu_info.name;
    if (opt.json) {
        if (!have_gpu) {
            json_begin("gpu_skipped", cpu);
            json_str("reason", skipped);
            json_end();
            fprintf(stderr, "gpu_benchmark: GPU part skipped: %s\n", skipped);
        }
    } else {
        printf("cgrad GPU benchmark (course chapter 0)\n");
        printf("CPU: %s, %d threads%s\n", cpu_info.name, cpu_info.multiprocessors, opt.no_cpu ? " (not measured: --no-cpu)" : "");
        if (have_gpu)
            printf("GPU: %s (cuda:%d), compute capability %d.%d, %d SMs x %d FP32 cores at %.3f GHz: FP32 peak "
                   "%.1f TFLOPS; %.1f GiB; CUDA runtime %d.%d, cuBLAS %d\n",
                   gpu_info.name, parsed.index, gpu_info.compute_major, gpu_info.compute_minor, gpu_info.multiprocessors,
                   gpu_info.cores_per_multiprocessor, gpu_info.clock_ghz, gpu_info.peak_fp32_tflops,
                   gib(gpu_info.memory_total), gpu_info.runtime_version / 1000, gpu_info.runtime_version % 1000 / 10,
                   gpu_info.cublas_version);
        else
            printf("GPU part skipped: %s\n", skipped);
    }

    const cg_device *cpu_side = opt.no_cpu ? NULL : &cpu;
    const cg_device *gpu_side = have_gpu ? &parsed : NULL;
    if (opt.tests & TEST_MATMUL) test_matmul(cpu_side, gpu_side, have_gpu ? &gpu_info : NULL);
    if (opt.tests & TEST_CONV) test_conv(cpu_side, gpu_side);
    if (opt.tests & TEST_MEMORY) test_memory(gpu_side);
    return 0;
}

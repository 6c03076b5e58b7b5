// test_gpu_benchmark.c: runs the built gpu_benchmark (CGRAD_BIN_DIR/gpu_benchmark).
//   test_gpu_benchmark        the CPU path: --device cpu --n 256 --iters 2 --batch 2 as a table and
//                             as JSON (every line an object; a matmul, two conv and the memory
//                             measurements with sane values; the product checked against double
//                             precision), the "GPU part skipped" line, --help, refused flags.
//   test_gpu_benchmark cuda   the GPU path on small sizes: every matmul format and every
//                             convolution measured (or skipped with a reason where the GPU or
//                             build cannot), errors within each format's precision; then
//                             CGRAD_CUDNN_CACHE: engines timed and written, read back without
//                             timing, a bad file ignored and replaced. Exit 77 (skipped) without
//                             a GPU.
// Figures are not judged: a slow machine passes. Only exit statuses, output shape and accuracy.
#define _POSIX_C_SOURCE 200809L
#include "core/device.h"

#include "tests/run_program.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- the JSON lines ------------------------------------------------------------------------------

#define MAX_LINES 64
static cJSON *lines[MAX_LINES];
static int n_lines;

static void parse_lines(const char *what, char *out) {
    for (int i = 0; i < n_lines; i++) cJSON_Delete(lines[i]);
    n_lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (j == NULL || !cJSON_IsObject(j)) {
            fail(what, "not a JSON object: \"%s\"", line);
            cJSON_Delete(j);
            continue;
        }
        if (n_lines == MAX_LINES) {
            fail(what, "more than %d lines", MAX_LINES);
            cJSON_Delete(j);
            break;
        }
        lines[n_lines++] = j;
    }
}

static const char *str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

// The line whose fields equal the given key/value pairs (NULL-terminated), or NULL.
static const cJSON *find(const char *key, ...) {
    for (int i = 0; i < n_lines; i++) {
        va_list ap;
        va_start(ap, key);
        bool match = true;
        for (const char *k = key; k && match; k = va_arg(ap, const char *)) match = strcmp(str(lines[i], k), va_arg(ap, const char *)) == 0;
        va_end(ap);
        if (match) return lines[i];
    }
    return NULL;
}

// ---- the CPU path ----------------------------------------------------------------------------------

static const char *cpu_args = "--device cpu --n 256 --iters 2 --batch 2";

static void test_cpu_table(void) {
    const run_result *r = run(cpu_args);
    if (r->exit_code != 0) fail(cpu_args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
    const char *needles[] = {"GPU part skipped: --device cpu", "Test 1: matrix product, 256 x 256", "Test 2: conv2d",
                             "Test 3: memory", "  cpu     fp32", "host RAM"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strstr(r->out, needles[i]) == NULL) fail(cpu_args, "no \"%s\" in the output:\n%s", needles[i], r->out);
    int skip_lines = 0;
    for (const char *p = r->out; (p = strstr(p, "GPU part skipped")) != NULL; p++) skip_lines++;
    if (skip_lines != 1) fail(cpu_args, "%d lines say the GPU part was skipped, expected 1", skip_lines);
    printf("%s: exit 0, the three tests and one 'GPU part skipped' line\n", cpu_args);
}

static void test_cpu_json(void) {
    char args[256];
    snprintf(args, sizeof args, "%s --json", cpu_args);
    const run_result *r = run(args);
    if (r->exit_code != 0) fail(args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
    if (strstr(r->err, "GPU part skipped: --device cpu") == NULL)
        fail(args, "stderr does not say the GPU part was skipped: \"%s\"", r->err);
    parse_lines(args, run_output.out);
    const cJSON *skip = find("workload", "gpu_skipped", NULL);
    if (skip == NULL || strcmp(str(skip, "reason"), "--device cpu") != 0) fail(args, "no gpu_skipped line with its reason");
    const cJSON *mm = find("workload", "matmul", "device", "cpu", "dtype", "fp32", NULL);
    if (mm == NULL) {
        fail(args, "no CPU fp32 matmul line");
    } else {
        if (num(mm, "n") != 256) fail(args, "matmul n %g", num(mm, "n"));
        if (!(num(mm, "seconds") > 0 && num(mm, "tflops") > 0)) fail(args, "matmul seconds or tflops not positive");
        double tflops = 2.0 * 256 * 256 * 256 / num(mm, "seconds") / 1e12;
        if (!(tflops > num(mm, "tflops") * 0.999 && tflops < num(mm, "tflops") * 1.001))
            fail(args, "tflops %g is not 2 N^3 / seconds (%g)", num(mm, "tflops"), tflops);
        if (!(num(mm, "max_error") >= 0 && num(mm, "max_error") < 1e-5))
            fail(args, "fp32 product off: max_error %g", num(mm, "max_error"));
    }
    for (int mode = 0; mode < 2; mode++) {
        const char *m = mode ? "train" : "forward";
        const cJSON *c = find("workload", "conv", "device", "cpu", "mode", m, NULL);
        if (c == NULL) {
            fail(args, "no CPU conv %s line", m);
            continue;
        }
        if (num(c, "iters") != 2 || num(c, "batch") != 2) fail(args, "conv %s: iters %g, batch %g", m, num(c, "iters"), num(c, "batch"));
        if (!(num(c, "it_per_s") > 0)) fail(args, "conv %s: it_per_s %g", m, num(c, "it_per_s"));
        if (strcmp(str(c, "dtype"), "fp32") != 0 || strcmp(str(c, "method"), "kernels") != 0)
            fail(args, "conv %s: dtype %s, method %s", m, str(c, "dtype"), str(c, "method"));
    }
    // The CPU's bias gradient sums each 224 x 224 plane of equal values in f32: 5e-4 (bench.h).
    const cJSON *check = find("workload", "conv", "device", "cpu", "mode", "check", NULL);
    if (check == NULL || !(num(check, "max_error") >= 0 && num(check, "max_error") < 2e-3))
        fail(args, "CPU conv check: max_error %g", check ? num(check, "max_error") : -1.0);
    const cJSON *host = find("workload", "memory", "phase", "host", NULL);
    if (host == NULL || !(num(host, "total_bytes") > 0 && num(host, "peak_rss_bytes") > 0))
        fail(args, "no host memory line with total and peak resident bytes");
    printf("%s: %d JSON lines: gpu_skipped, matmul (error %.1e), conv forward, train and check (error %.1e), "
           "memory\n", args, n_lines, mm ? num(mm, "max_error") : -1.0, check ? num(check, "max_error") : -1.0);
}

static void test_flags(void) {
    expect_refused("--n 0", "--n");
    expect_refused("--iters abc", "--iters");
    expect_refused("--dtypes fp32,fp64", "fp64");
    expect_refused("--dtypes fp32,fp32", "twice");
    expect_refused("--conv-dtypes int8", "int8");
    expect_refused("--tests matmul,speed", "speed");
    expect_refused("--device tpu", "tpu");
    expect_refused("--device cpu --no-cpu", "nothing to measure");
    expect_refused("stray", "stray");
    const run_result *r = run("--help");
    if (r->exit_code != 0 || strstr(r->out, "usage: gpu_benchmark") == NULL || r->err[0] != '\0')
        fail("--help", "exit %d, stdout \"%.100s\", stderr \"%s\"", r->exit_code, r->out, r->err);
    printf("bad flags refused with exit 2 and one line; --help exits 0\n");
}

// On a machine without a usable GPU, the default --device cuda runs the CPU side and says why.
static void test_no_gpu_default(void) {
    const char *args = "--n 128 --iters 1 --batch 1 --tests matmul";
    const run_result *r = run(args);
    if (r->exit_code != 0) fail(args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
    const char *line = strstr(r->out, "GPU part skipped: device 'cuda'");
    if (line == NULL) fail(args, "no 'GPU part skipped' line naming the device:\n%s", r->out);
    else printf("without a GPU: %.*s\n", (int)strcspn(line, "\n"), line);
}

// ---- the GPU path ------------------------------------------------------------------------------------

static void test_gpu(void) {
    const char *args = "--device cuda --no-cpu --n 512 --reps 2 --iters 3 --batch 4 --conv-dtypes fp32,tf32,fp16,bf16 --json";
    const run_result *r = run(args);
    if (r->exit_code != 0) fail(args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
    parse_lines(args, run_output.out);
    // The largest error each format may have (bench.h: the last of its mantissa bits, with room).
    static const struct {
        const char *dtype;
        double max_error;
        bool may_skip; // formats a GPU or cuBLAS may not offer
    } formats[] = {{"fp32", 1e-5, false}, {"tf32", 5e-3, false}, {"fp16", 5e-3, false}, {"bf16", 3e-2, true},
                   {"int8", 0.0, true}};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        const cJSON *m = find("workload", "matmul", "dtype", formats[i].dtype, NULL);
        if (m == NULL) {
            fail(args, "no %s matmul line", formats[i].dtype);
        } else if (str(m, "skipped")[0]) {
            if (!formats[i].may_skip) fail(args, "%s matmul skipped: %s", formats[i].dtype, str(m, "skipped"));
            printf("  %s matmul skipped: %s\n", formats[i].dtype, str(m, "skipped"));
        } else {
            if (!(num(m, "tflops") > 0)) fail(args, "%s matmul: tflops %g", formats[i].dtype, num(m, "tflops"));
            if (!(num(m, "max_error") >= 0 && num(m, "max_error") <= formats[i].max_error))
                fail(args, "%s matmul: max_error %g above %g", formats[i].dtype, num(m, "max_error"), formats[i].max_error);
            printf("  %s matmul: %.2f TFLOPS, error %.1e\n", formats[i].dtype, num(m, "tflops"), num(m, "max_error"));
        }
    }
    // Each convolution and the largest error its check may show (bench.h: cg_bench_conv_check).
    static const struct {
        const char *dtype, *method;
        double max_error;
    } conv_rows[] = {{"fp32", "kernels", 1e-4}, {"fp32", "cudnn-tuned", 1e-4}, {"tf32", "cudnn-tuned", 5e-3},
                     {"fp16", "cudnn-tuned", 1e-2}, {"bf16", "cudnn-tuned", 5e-2}};
    for (size_t i = 0; i < sizeof conv_rows / sizeof conv_rows[0]; i++) {
        const char *dtype = conv_rows[i].dtype, *method = conv_rows[i].method;
        const cJSON *skipped = find("workload", "conv", "dtype", dtype, "method", method, NULL);
        if (skipped && str(skipped, "skipped")[0]) {
            // Allowed only where the build has no cuDNN, or the GPU no bf16.
            if (strstr(str(skipped, "skipped"), "no cuDNN") == NULL && strcmp(dtype, "bf16") != 0)
                fail(args, "%s %s conv skipped: %s", dtype, method, str(skipped, "skipped"));
            printf("  %s %s conv skipped: %s\n", dtype, method, str(skipped, "skipped"));
            continue;
        }
        for (int mode = 0; mode < 2; mode++) {
            const char *m = mode ? "train" : "forward";
            const cJSON *c = find("workload", "conv", "dtype", dtype, "method", method, "mode", m, NULL);
            if (c == NULL || !(num(c, "it_per_s") > 0)) fail(args, "no %s %s conv %s line with it_per_s", dtype, method, m);
            else printf("  %s %s conv %s: %.1f it/s (%s)\n", dtype, method, m, num(c, "it_per_s"), str(c, "about"));
        }
        const cJSON *check = find("workload", "conv", "dtype", dtype, "method", method, "mode", "check", NULL);
        double error = check ? num(check, "max_error") : -1.0;
        if (!(error >= 0 && error <= conv_rows[i].max_error))
            fail(args, "%s %s conv check: max_error %g, at most %g expected", dtype, method, error, conv_rows[i].max_error);
        else
            printf("  %s %s conv check: error %.1e\n", dtype, method, error);
    }
    const cJSON *end = find("workload", "memory", "phase", "after empty_cache", NULL);
    // After empty_cache the allocator holds only what is still in use (the cuBLAS workspaces,
    // made once per handle): reserved equals allocated, below the peak of the tests.
    if (end == NULL || !(num(end, "total_bytes") > 0 && num(end, "peak_bytes") > 0) ||
        num(end, "reserved_bytes") != num(end, "allocated_bytes") ||
        !(num(end, "allocated_bytes") < num(end, "peak_bytes")))
        fail(args, "no 'after empty_cache' memory line with a total, a peak, and nothing cached beyond what is in use");
}

// CGRAD_CUDNN_CACHE (kernels/cuda/cudnn_conv.c): a first run times cuDNN's engines and writes its
// choices to the file; a second run of the same problems times none and takes every engine from
// it, with results as accurate; a file that does not parse is ignored (the engines are timed
// again) and replaced by one that does. CGRAD_CUDNN_LOG=1 shows which happened, on stderr.
static void test_cudnn_cache(void) {
    const char *args = "--device cuda --no-cpu --n 256 --reps 1 --iters 2 --batch 2 --conv-dtypes fp16 --json";
    char cache[512], text[8192];
    snprintf(cache, sizeof cache, "%s/cudnn_engines.txt", run_dir);
    setenv("CGRAD_CUDNN_CACHE", cache, 1);
    setenv("CGRAD_CUDNN_LOG", "1", 1);
    for (int pass = 0; pass < 3; pass++) {
        // pass 0: no file; 1: the file pass 0 wrote; 2: a file that does not parse
        if (pass == 0) remove(cache);
        if (pass == 2) {
            FILE *f = fopen(cache, "w");
            if (f) fputs("not a problem\nnor\tthis one\n\t12 x\n", f), fclose(f);
        }
        const run_result *r = run(args);
        const char *name = pass == 0 ? "CGRAD_CUDNN_CACHE, no file yet" : pass == 1 ? "CGRAD_CUDNN_CACHE, the file written"
                                                                                   : "CGRAD_CUDNN_CACHE, a file that does not parse";
        if (r->exit_code != 0) {
            fail(name, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
            continue;
        }
        bool timed = strstr(r->err, " us\n") != NULL, cached = strstr(r->err, "(CGRAD_CUDNN_CACHE)") != NULL;
        if (pass == 1 && (timed || !cached))
            fail(name, "engines timed again (%s) or none taken from the file (%s):\n%s", timed ? "yes" : "no",
                 cached ? "some" : "none", r->err);
        if (pass != 1 && !timed) fail(name, "no engine timed, with no file to take them from:\n%s", r->err);
        parse_lines(name, run_output.out);
        const cJSON *check = find("workload", "conv", "dtype", "fp16", "method", "cudnn-tuned", "mode", "check", NULL);
        double error = check ? num(check, "max_error") : -1.0;
        if (!(error >= 0 && error <= 1e-2)) fail(name, "fp16 conv check: max_error %g, at most 1e-2 expected", error);
        read_text(cache, text, sizeof text);
        int lines = 0;
        for (const char *s = text; (s = strchr(s, '\t')) != NULL; s++) lines++;
        if (lines < 2 || strstr(text, "not a problem") != NULL)
            fail(name, "the file holds %d problems, or still its bad lines:\n%s", lines, text);
        printf("  %s: %s, %d problems in the file, conv error %.1e\n", name,
               timed ? "engines timed" : "every engine from the file", lines, error);
    }
    unsetenv("CGRAD_CUDNN_CACHE");
    unsetenv("CGRAD_CUDNN_LOG");
}

int main(int argc, char **argv) {
    bool gpu = argc > 1 && strcmp(argv[1], "cuda") == 0;
    const char *dir = getenv("CGRAD_BIN_DIR");
#ifdef CGRAD_BIN_DIR
    if (dir == NULL) dir = CGRAD_BIN_DIR;
#endif
    if (dir == NULL) dir = "build";
    char program[1024];
    snprintf(program, sizeof program, "%s/gpu_benchmark", dir);
    if (access(program, X_OK) != 0) {
        fprintf(stderr, "FAIL: no executable %s (build it first)\n", program);
        return 1;
    }
    if (gpu && cg_cuda_device_count() == 0) {
        printf("skipped: no GPU here\n");
        return 77;
    }
    refusal_exit_code = 2;   // bad usage
    refusal_stdout_lacks = ""; // and nothing on stdout
    if (!run_begin(program, "/tmp/test_gpu_benchmark.XXXXXX")) {
        perror("mkdtemp");
        return 1;
    }
    if (gpu) {
        test_gpu();
        test_cudnn_cache();
    } else {
        test_cpu_table();
        test_cpu_json();
        test_flags();
        if (cg_cuda_device_count() == 0) test_no_gpu_default();
    }
    for (int i = 0; i < n_lines; i++) cJSON_Delete(lines[i]);
    run_end();
    return check_summary("test_gpu_benchmark");
}

// test_cli.c: runs the built simple_nn (CGRAD_BIN_DIR/simple_nn, or argv[1]): bad flags and paths
// exit non-zero with one stderr line naming them and leave no CSV behind; --help exits 0;
// --epochs 3 --log writes a header and 3 rows of 5 columns; with --precision 3 more columns (the
// precision, the loss scale, the skipped steps). Training results are not checked.
#define _POSIX_C_SOURCE 200809L
#include "core/device.h"

#include "tests/run_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_bad_flags(void) {
    expect_refused("--bogus", "--bogus");
    expect_refused("--epochs abc", "--epochs", "abc");
    expect_refused("--epochs -3", "--epochs", "-3");
    expect_refused("--epochs", "--epochs"); // no value
    expect_refused("--batch-size 0", "--batch-size");
    expect_refused("--lr x", "--lr");
    expect_refused("--optimizer foo", "--optimizer", "foo");
    expect_refused("--epochs 2 stray", "stray");
    expect_refused("--device tpu", "device", "tpu");
    if (!cg_cuda_built())
        expect_refused("--device cuda", "device", "cuda", "without CUDA");
    else if (cg_cuda_device_count() == 0)
        expect_refused("--device cuda", "device", "cuda", "no GPU");
    else
        printf("skipped: --device cuda works here (a GPU is present)\n");
    expect_refused("--log /nonexistent-dir/x.csv --epochs 1", "/nonexistent-dir/x.csv");
    expect_refused("--precision fp8", "--precision", "fp8");
    expect_refused("--precision", "--precision");
    expect_refused("--loss-scale static:-2", "--loss-scale", "static:-2");
    expect_refused("--loss-scale often", "--loss-scale", "often");
}

static void test_no_log_left_behind(void) {
    static const char *bad[] = {"--epochs abc",   "--lr x",       "--optimizer foo", "--bogus",
                                "--batch-size 0", "--device tpu", "--device cuda"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (strcmp(bad[i], "--device cuda") == 0 && cg_cuda_device_count() > 0)
            continue; // it works here
        char path[512], args[1024];
        snprintf(path, sizeof path, "%s/bad%zu.csv", run_dir, i);
        for (int order = 0; order < 2; order++) { // the bad flag before and after --log
            if (order == 0)
                snprintf(args, sizeof args, "%s --log '%s' --epochs 1", bad[i], path);
            else
                snprintf(args, sizeof args, "--log '%s' --epochs 1 %s", path, bad[i]);
            const run_result *r = run(args);
            if (r->exit_code == 0)
                fail(args, "exit status 0");
            if (exists(path)) {
                fail(args, "left %s behind", path);
                unlink(path);
            }
        }
    }
    printf("no CSV is created when a flag is refused\n");
}

// Split one CSV line into at most max fields (in place); returns the count.
static int split_csv(char *line, char **fields, int max) {
    int n = 0;
    char *save = NULL;
    for (char *f = strtok_r(line, ",", &save); f && n < max; f = strtok_r(NULL, ",", &save))
        fields[n++] = f;
    return n;
}

static void test_log(void) {
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/run.csv", run_dir);
    snprintf(args, sizeof args, "--epochs 3 --log '%s' --quiet", path);
    const run_result *r = run(args);
    if (r->exit_code != 0)
        fail(args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
    if (strstr(r->out, "Accuracy") == NULL)
        fail(args, "no final accuracy on stdout: \"%s\"", r->out);
    char text[8192];
    read_text(path, text, sizeof text);
    char *save = NULL;
    int lines = 0;
    double last_seconds = -1.0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
        if (lines == 0) {
            if (strcmp(line, "epoch,loss,accuracy,seconds,device") != 0)
                fail("log header", "got \"%s\"", line);
            continue;
        }
        char copy[512];
        snprintf(copy, sizeof copy, "%s", line);
        char *f[8];
        int n = split_csv(copy, f, 8);
        if (n != 5) {
            fail("log row", "line %d has %d columns: \"%s\"", lines + 1, n, line);
            continue;
        }
        double loss = atof(f[1]), accuracy = atof(f[2]), seconds = atof(f[3]);
        if (atoi(f[0]) != lines)
            fail("log row", "line %d: epoch %s, expected %d", lines + 1, f[0], lines);
        if (!(loss > 0.0 && loss < 10.0))
            fail("log row", "line %d: loss %s", lines + 1, f[1]);
        if (!(accuracy >= 0.0 && accuracy <= 1.0))
            fail("log row", "line %d: accuracy %s outside [0, 1]", lines + 1, f[2]);
        if (!(seconds >= last_seconds))
            fail("log row", "line %d: seconds %s before %g", lines + 1, f[3], last_seconds);
        if (strcmp(f[4], "cpu") != 0)
            fail("log row", "line %d: device \"%s\", expected cpu", lines + 1, f[4]);
        last_seconds = seconds;
    }
    if (lines != 4)
        fail("log", "%d lines (header and rows); expected a header and exactly 3 rows", lines);
    unlink(path);
    printf("--epochs 3 --log: header and %d rows of 5 columns\n", lines - 1);
}

// --precision adds precision,loss_scale,skipped_steps to each row: fp16 starts at PyTorch's 65536,
// bf16 runs unscaled, static:S stays S.
static void test_precision_log(void) {
    const char *cases[][3] = {{"--precision fp16", "fp16", "65536"}, {"--precision bf16", "bf16", "1"},
                              {"--precision fp16 --loss-scale static:1024", "fp16", "1024"}};
    for (int k = 0; k < 3; k++) {
        char path[512], args[1024];
        snprintf(path, sizeof path, "%s/amp.csv", run_dir);
        snprintf(args, sizeof args, "%s --epochs 2 --log '%s' --quiet", cases[k][0], path);
        const run_result *r = run(args);
        if (r->exit_code != 0) fail(args, "exit status %d, stderr \"%s\"", r->exit_code, r->err);
        char text[8192];
        read_text(path, text, sizeof text);
        char *save = NULL;
        int lines = 0;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
            if (lines == 0) {
                if (strcmp(line, "epoch,loss,accuracy,seconds,device,precision,loss_scale,skipped_steps") != 0)
                    fail(args, "log header \"%s\"", line);
                continue;
            }
            char *f[10];
            int n = split_csv(line, f, 10);
            if (n != 8 || strcmp(f[5], cases[k][1]) != 0 || strcmp(f[6], cases[k][2]) != 0 || strcmp(f[7], "0") != 0)
                fail(args, "row %d: expected %s, scale %s, 0 skipped in 8 columns", lines, cases[k][1], cases[k][2]);
        }
        if (lines != 3) fail(args, "%d lines, expected a header and 2 rows", lines);
        unlink(path);
        printf("%s: precision, loss scale %s and skipped steps in the log\n", cases[k][0], cases[k][2]);
    }
}

// A bad flag together with --log to a writable path: refused, and no file is created.
static void test_help(void) {
    const run_result *r = run("--help");
    if (r->exit_code != 0)
        fail("--help", "exit status %d", r->exit_code);
    if (strstr(r->out, "usage") == NULL || strstr(r->out, "--epochs") == NULL)
        fail("--help", "stdout lacks the usage text: \"%s\"", r->out);
    if (r->err[0] != '\0')
        fail("--help", "wrote to stderr: \"%s\"", r->err);
    printf("--help: exit 0 with the usage text\n");
}

int main(int argc, char **argv) {
    refusal_stdout_lacks = "Epoch"; // a refused command line trains nothing
    if (!run_begin_program("test_cli", "simple_nn", argc, argv)) return 1;
    test_help();
    test_bad_flags();
    test_no_log_left_behind();
    test_log();
    test_precision_log();
    run_end();
    return check_summary("test_cli");
}

// test_cnn_cli.c: runs the built cnn (CGRAD_BIN_DIR/cnn, or argv[1]) on a small Fashion-MNIST-shaped
// data set the test writes (plain IDX files): bad flags and a missing data folder exit non-zero
// with one stderr line naming them; --help lists --no-fusion; one epoch with the fused
// Conv2d-ReLU-MaxPool2d op and one with --no-fusion log the same losses and accuracies (to 1e-4);
// one and two threads (--thread-tuning off) log the same digits; the mlp on two threads, tuned and
// not, saves the weights of a one-thread run; the tutorial in fp32 and bf16 saves the same weights
// with and without CGRAD_FRESH_GRADIENTS=0 (first gradients written, or zeroed then added);
// --summary prints the model alone; --limit-test keeps N test images; --untimed-step changes no digit
// of the log; the OpenMP wait policy cnn
// sets (a short spin where the thread tuner runs, passive without it).
#define _POSIX_C_SOURCE 200809L
#include "kernels/cpu/threads.h"
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The log's rows without the seconds and images/s columns (which differ from run to run).
static void log_without_timing(const char *path, char *out, size_t size) {
    char text[8192], *save = NULL;
    read_text(path, text, sizeof text);
    out[0] = '\0';
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *fields[16], *inner = NULL;
        int n = 0;
        for (char *f = strtok_r(line, ",", &inner); f && n < 16; f = strtok_r(NULL, ",", &inner)) fields[n++] = f;
        for (int i = 0; i < n && i < 5; i++) { // epoch, train loss and accuracy, test loss and accuracy
            strncat(out, fields[i], size - strlen(out) - 1);
            strncat(out, ",", size - strlen(out) - 1);
        }
        strncat(out, "\n", size - strlen(out) - 1);
    }
}

// The same text with every number equal to 1e-4: the bias gradient is the one sum the fused op
// takes in another order, so the last printed digits may differ after a few steps.
static bool same_numbers(const char *a, const char *b) {
    while (*a && *b) {
        char *end_a, *end_b;
        double x = strtod(a, &end_a), y = strtod(b, &end_b);
        if (end_a != a && end_b != b) {
            if (x - y > 1e-4 || y - x > 1e-4) return false;
            a = end_a, b = end_b;
        } else if (*a++ != *b++) {
            return false;
        }
    }
    return *a == *b;
}

int main(int argc, char **argv) {
    if (!run_begin_program("test_cnn_cli", "cnn", argc, argv)) return 1;
    write_fake_fashion_mnist(run_dir, 320, 100);

    const run_result *r = run("--help");
    if (r->exit_code != 0 || strstr(r->out, "--no-fusion") == NULL)
        fail("--help", "exit %d, --no-fusion listed: %s", r->exit_code, strstr(r->out, "--no-fusion") ? "yes" : "no");

    char args[2048];
    expect_refused("--model resnet", "resnet");
    expect_refused("--epochs 0", "--epochs");
    expect_refused("--no-fusion=yes", "--no-fusion");
    expect_refused("--thread-tuning maybe", "--thread-tuning", "maybe");
    expect_refused("--data /nonexistent-cgrad-dir", "/nonexistent-cgrad-dir");

    // The fused block and the three ops: the same arithmetic, so the same losses and accuracies.
    char fused[4096], separate[4096], log_path[1100];
    snprintf(log_path, sizeof log_path, "%s/run.csv", run_dir);
    snprintf(args, sizeof args, "--data '%s' --epochs 2 --batch-size 32 --threads 1 --quiet --log '%s'", run_dir,
             log_path);
    r = run(args);
    if (r->exit_code != 0) fail("cnn (fused)", "exit %d: %s", r->exit_code, r->err);
    log_without_timing(log_path, fused, sizeof fused);
    strncat(args, " --no-fusion", sizeof args - strlen(args) - 1);
    r = run(args);
    if (r->exit_code != 0) fail("cnn --no-fusion", "exit %d: %s", r->exit_code, r->err);
    log_without_timing(log_path, separate, sizeof separate);
    int rows = 0;
    for (const char *c = fused; *c; c++) rows += *c == '\n';
    if (rows != 3) // the header and 2 epochs
        fail("cnn --log", "%d lines in the log, expected 3:\n%s", rows, fused);
    else if (!same_numbers(fused, separate))
        fail("cnn --no-fusion", "the logs differ:\nfused:\n%sseparate:\n%s", fused, separate);
    else
        printf("fused and --no-fusion logs agree:\n%s", fused);

    // The same run on two threads: the same numbers to the last printed digit (every sum is taken
    // in an order that does not depend on the thread count). Tuning off: two threads at every step,
    // whatever the machine's load (the tuner would otherwise take some steps with one).
    char two_threads[4096];
    snprintf(args, sizeof args,
             "--data '%s' --epochs 2 --batch-size 32 --threads 2 --thread-tuning off --quiet --log '%s'", run_dir,
             log_path);
    r = run(args);
    if (r->exit_code != 0) fail("cnn --threads 2", "exit %d: %s", r->exit_code, r->err);
    log_without_timing(log_path, two_threads, sizeof two_threads);
    if (strcmp(fused, two_threads) != 0)
        fail("cnn --threads 2", "the log differs from one thread's:\n1 thread:\n%s2 threads:\n%s", fused, two_threads);
    else
        printf("--threads 1 and --threads 2 logs identical\n");

    // --untimed-step: a throwaway copy of the model takes one step first; the run trained is untouched, so
    // its log is the one-thread log above to the last digit.
    char warmed[4096];
    snprintf(args, sizeof args, "--data '%s' --epochs 2 --batch-size 32 --threads 1 --quiet --untimed-step --log '%s'",
             run_dir, log_path);
    r = run(args);
    if (r->exit_code != 0) fail("cnn --untimed-step", "exit %d: %s", r->exit_code, r->err);
    log_without_timing(log_path, warmed, sizeof warmed);
    if (strcmp(fused, warmed) != 0)
        fail("cnn --untimed-step", "the log differs from the run without it:\nwithout:\n%swith:\n%s", fused, warmed);
    else
        printf("--untimed-step: the log of the run without it, identical\n");

    // Two threads, untuned and tuned (the default on 2 threads: 2 threads or 1 step by step): the
    // weights of a one-thread run, byte for byte, even the mlp's first layer (K = 784), whose
    // product OpenBLAS's threaded driver summed in another order: OpenBLAS runs on one thread and
    // cgrad's threads share the product's pieces, cut by its shape alone (kernels/cpu/blas.h).
    char one_path[1100], other_path[1100];
    snprintf(one_path, sizeof one_path, "%s/one.safetensors", run_dir);
    snprintf(other_path, sizeof other_path, "%s/other.safetensors", run_dir);
    snprintf(args, sizeof args, "--data '%s' --model mlp --epochs 2 --threads 1 --thread-tuning off --quiet --save '%s'",
             run_dir, one_path);
    r = run(args);
    if (r->exit_code != 0) fail("cnn --model mlp --threads 1", "exit %d: %s", r->exit_code, r->err);
    const char *two_ways[] = {"--thread-tuning off", "(tuned)"};
    for (int way = 0; way < 2; way++) {
        snprintf(args, sizeof args, "--data '%s' --model mlp --epochs 2 --threads 2 %s --quiet --save '%s'", run_dir,
                 way == 0 ? two_ways[0] : "", other_path);
        char what[96];
        snprintf(what, sizeof what, "cnn --model mlp --threads 2 %s", two_ways[way]);
        r = run(args);
        if (r->exit_code != 0) fail(what, "exit %d: %s", r->exit_code, r->err);
        if (!same_bytes(one_path, other_path))
            fail(what, "the saved weights differ from a one-thread run's");
        else
            printf("--model mlp: 2 threads %s, the weights of one thread, byte for byte\n", two_ways[way]);
        remove_checkpoint(other_path);
    }
    remove_checkpoint(one_path);

    // The tutorial's fused blocks and linear layers write their input's first gradient instead of
    // adding it to zeros (core/tape.h's fresh gradients): the weights of a run where the tape zeroes every gradient
    // and every backward adds (CGRAD_FRESH_GRADIENTS=0), byte for byte, in f32 and in bf16.
    const char *precisions[] = {"fp32", "bf16"};
    for (int p = 0; p < 2; p++) {
        char what[96];
        snprintf(what, sizeof what, "cnn --precision %s, CGRAD_FRESH_GRADIENTS=0 and not", precisions[p]);
        for (int fresh = 1; fresh >= 0; fresh--) {
            if (fresh == 0) setenv("CGRAD_FRESH_GRADIENTS", "0", 1);
            snprintf(args, sizeof args,
                     "--data '%s' --precision %s --epochs 1 --batch-size 32 --threads 1 --thread-tuning off --quiet "
                     "--save '%s'",
                     run_dir, precisions[p], fresh ? one_path : other_path);
            r = run(args);
            unsetenv("CGRAD_FRESH_GRADIENTS");
            if (r->exit_code != 0) fail(what, "exit %d: %s", r->exit_code, r->err);
        }
        if (!same_bytes(one_path, other_path))
            fail(what, "the saved weights differ");
        else
            printf("--precision %s: gradients written first or added to zeros, the same weights, byte for byte\n",
                   precisions[p]);
        remove_checkpoint(one_path), remove_checkpoint(other_path);
    }

    // --summary: the model's table and exit, nothing trained; --limit-test: N test images, class-balanced.
    snprintf(args, sizeof args, "--data '%s' --summary", run_dir);
    r = run(args);
    if (r->exit_code != 0 || strstr(r->out, "421642 parameters") == NULL || strstr(r->out, "f2 ") == NULL ||
        strstr(r->out, "epoch") != NULL)
        fail("cnn --summary", "exit %d, expected the summary alone:\n%s", r->exit_code, r->out);
    snprintf(args, sizeof args, "--data '%s' --limit-test 30 --limit 64 --epochs 1 --threads 1", run_dir);
    r = run(args);
    if (r->exit_code != 0 || strstr(r->out, "64 training and 30 test images") == NULL)
        fail("cnn --limit-test 30", "exit %d, expected 64 training and 30 test images:\n%s", r->exit_code, r->out);
    expect_refused("--limit-test 0", "--limit-test");

    // The OpenMP wait policy cnn sets (kernels/cpu/threads.c) when the environment sets none:
    // passive for every run, and a short spin before sleeping where the thread tuner runs.
    if (getenv("OMP_WAIT_POLICY") == NULL && getenv("GOMP_SPINCOUNT") == NULL) {
        const char *ways[][2] = {
            {"", "waiting OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=" CG_TUNED_SPINCOUNT " (set by cgrad)"},
            {"--thread-tuning off", "waiting OMP_WAIT_POLICY=passive (set by cgrad)"}};
        for (int way = 0; way < 2; way++) {
            snprintf(args, sizeof args, "--data '%s' --limit-test 30 --limit 64 --epochs 1 --threads 2 %s", run_dir,
                     ways[way][0]);
            r = run(args);
            if (r->exit_code != 0 || strstr(r->out, ways[way][1]) == NULL)
                fail("cnn's wait policy", "exit %d, expected '%s' with '%s':\n%s", r->exit_code, ways[way][1],
                     ways[way][0], r->out);
            else
                printf("wait policy%s%s: %s\n", *ways[way][0] ? " with " : "", ways[way][0], ways[way][1]);
        }
    } else {
        printf("wait policy: not checked (OMP_WAIT_POLICY or GOMP_SPINCOUNT set in the environment)\n");
    }

    remove_fake_fashion_mnist(run_dir);
    unlink(log_path);
    run_end();
    return check_summary("test_cnn_cli");
}

// test_dist_cli.c: cnn --distributed as a user runs it, on a small Fashion-MNIST-shaped data set the
// test writes (fake_idx.h), through mpiexec (the one CMake found; --oversubscribe with Open MPI):
//  - without a launcher: one line naming --distributed and mpirun; CGRAD_DIST_WORLD (processes started
//    without MPI) on the CPU: one line saying GPUs only; tools/launch_local.sh ends the other ranks
//    when one fails (all three also in a build without MPI, after which the test reports itself
//    skipped, 77);
//  - 2 ranks at batch 64 save the weights of one process at batch 128 (within summation order), log
//    the same losses and accuracies, and only rank 0 prints and writes; the same with augmentation;
//  - --sync-bn (the fast network, BatchNorm2d after every convolution): 2 ranks at batch 64 save the
//    weights and running statistics of one process at batch 128 (within 1e-3: summation order, which
//    the synthetic images amplify); without
//    it the running statistics differ (each rank's own batch); --sync-bn alone: one line;
//  - 3 ranks over a data set they do not divide (padded shares) train and log;
//  - refusals, each a line naming the rank at fault: another build on rank 1 (a copy of cnn with a
//    byte appended), another model, another data set size;
//  - a rank that dies (CGRAD_DIST_FAULT=1:2:kill) and one that hangs (1:2:hang, CGRAD_DIST_TIMEOUT=2):
//    the job ends within a minute, the message names rank 1, and the checkpoint saved before is
//    untouched.
#define _POSIX_C_SOURCE 200809L
#include "core/common.h"
#include "core/dist/dist.h"
#include "core/train/safetensors_file.h"
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char cnn[1024];

#ifndef CGRAD_MPIEXEC // configured without MPI: the runs under mpiexec are skipped
#define CGRAD_MPIEXEC ""
#define CGRAD_MPIEXEC_FLAGS ""
#endif

// mpiexec `ranks` ranks of cnn with `args`; `ranks` 0: args hold the whole MPMD line.
static const run_result *run_mpi(int ranks, const char *args) {
    char line[6000];
    if (ranks > 0)
        snprintf(line, sizeof line, "-n %d %s '%s' %s", ranks, CGRAD_MPIEXEC_FLAGS, cnn, args);
    else
        snprintf(line, sizeof line, "%s %s", CGRAD_MPIEXEC_FLAGS, args);
    snprintf(run_path, sizeof run_path, "%s", CGRAD_MPIEXEC);
    const run_result *r = run(line);
    snprintf(run_path, sizeof run_path, "%s", cnn);
    return r;
}

// The whole of a binary file; *size its length (NULL and 0 when it cannot be read).
static unsigned char *read_file(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(data, 1, (size_t)n, f) == (size_t)n) *size = (size_t)n;
    fclose(f);
    return data;
}

// The log's epoch, losses and accuracies (not the timing columns).
static void log_numbers(const char *path, char *out, size_t size) {
    char text[8192], *save = NULL;
    read_text(path, text, sizeof text);
    out[0] = '\0';
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *inner = NULL;
        int n = 0;
        for (char *f = strtok_r(line, ",", &inner); f && n < 5; f = strtok_r(NULL, ",", &inner), n++) {
            strncat(out, f, size - strlen(out) - 1);
            strncat(out, ",", size - strlen(out) - 1);
        }
        strncat(out, "\n", size - strlen(out) - 1);
    }
}

static bool same_numbers(const char *a, const char *b, double tolerance) {
    while (*a && *b) {
        char *end_a, *end_b;
        double x = strtod(a, &end_a), y = strtod(b, &end_b);
        if (end_a != a && end_b != b) {
            if (x - y > tolerance || y - x > tolerance) return false;
            a = end_a, b = end_b;
        } else if (*a++ != *b++) {
            return false;
        }
    }
    return *a == *b;
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// Two safetensors files written by the same model: the same header, and every float within tolerance.
static double weight_difference(const char *a_path, const char *b_path) {
    size_t na, nb;
    unsigned char *a = read_file(a_path, &na), *b = read_file(b_path, &nb);
    double worst = -1.0; // -1: not comparable
    uint64_t header = 0;
    if (na > 8) memcpy(&header, a, 8);
    if (na == nb && na > 8 + header && memcmp(a, b, 8 + header) == 0) {
        worst = 0.0;
        for (size_t i = 8 + header; i + 4 <= na; i += 4) {
            float x, y;
            memcpy(&x, a + i, 4), memcpy(&y, b + i, 4);
            double d = x > y ? (double)x - y : (double)y - x;
            if (d > worst) worst = d;
        }
    }
    free(a), free(b);
    return worst;
}

// Two safetensors files of the same model, over their F32 tensors that are running statistics
// (names with "running_") or over the others: the largest absolute difference, and the same
// relative to the largest magnitude in the first file's tensors (max |a - b| / max |a|, a norm-wise
// relative difference: near-zero values such as young biases do not blow it up). -1: not comparable.
typedef struct {
    double abs, rel;
} difference;

static difference tensor_difference(const char *a_path, const char *b_path, bool running) {
    difference worst = {-1.0, -1.0};
    st_file a, b;
    cg_status sa = st_open(&a, a_path), sb = st_open(&b, b_path);
    if (sa.code == CG_OK && sb.code == CG_OK && a.count == b.count) {
        worst.abs = worst.rel = 0.0;
        double scale = 0.0;
        for (int i = 0; i < a.count; i++) {
            const st_entry *ea = &a.entries[i], *eb = st_find(&b, ea->name);
            if (eb == NULL || eb->end - eb->begin != ea->end - ea->begin || strcmp(ea->dtype, eb->dtype) != 0) {
                worst.abs = worst.rel = -1.0;
                break;
            }
            if (strcmp(ea->dtype, "F32") != 0 || (strstr(ea->name, "running_") != NULL) != running) continue;
            size_t n = (size_t)(ea->end - ea->begin) / 4;
            float *x = malloc(n * 4 + 4), *y = malloc(n * 4 + 4);
            if (read_at(&a, a.data_start + ea->begin, x, n * 4, ea->name).code == CG_OK &&
                read_at(&b, b.data_start + eb->begin, y, n * 4, eb->name).code == CG_OK) {
                for (size_t j = 0; j < n; j++) {
                    double e = fabs((double)x[j] - (double)y[j]);
                    worst.abs = e > worst.abs ? e : worst.abs;
                    scale = fabs((double)x[j]) > scale ? fabs((double)x[j]) : scale;
                }
            }
            free(x), free(y);
        }
        if (worst.abs >= 0) worst.rel = scale > 0 ? worst.abs / scale : (worst.abs > 0 ? 1.0 : 0.0);
    }
    st_close(&a), st_close(&b);
    return worst;
}

// --sync-bn: the fast network trained by 2 ranks at batch 64 with and without it, against one
// process at batch 128, for one epoch (steps of 128, 128 and 64 images): within 1e-3 relative,
// where each rank's own statistics put them 4e-2 apart. The runs differ only by rounding (the
// classifier's weight gradient summed over 128 images, or over 64 on each rank and then added),
// but the test's synthetic images amplify it over the 3 steps: the weights 3e-9 apart when
// OpenBLAS ran the classifier's products, 1.5e-4 with the engine's (one process against another
// with the other library's products: 1.5e-4 too); on 320 Fashion-MNIST images, within 2e-6.
static void check_sync_bn(void) {
    char single[1100], synced[1100], per_rank[1100], args[4096];
    snprintf(single, sizeof single, "%s/bn_single.safetensors", run_dir);
    snprintf(synced, sizeof synced, "%s/bn_synced.safetensors", run_dir);
    snprintf(per_rank, sizeof per_rank, "%s/bn_per_rank.safetensors", run_dir);
    // SGD, not the default Adam: Adam's first steps move every weight by about lr whatever the size of
    // its gradient, so a gradient that is zero but for rounding takes a step of either sign.
    const char *common = "--model fast --optimizer sgd --lr 0.05 --momentum 0.9 --epochs 1 --threads 1 --quiet";
    snprintf(args, sizeof args, "%s --data '%s' --batch-size 128 --save '%s'", common, run_dir, single);
    const run_result *r = run(args);
    if (r->exit_code != 0) fail("--model fast, one process", "exit %d: %s", r->exit_code, r->err);
    snprintf(args, sizeof args, "--distributed --sync-bn %s --data '%s' --batch-size 64 --save '%s'", common, run_dir,
             synced);
    r = run_mpi(2, args);
    if (r->exit_code != 0) fail("--sync-bn, 2 ranks", "exit %d: %s", r->exit_code, r->err);
    snprintf(args, sizeof args, "--distributed %s --data '%s' --batch-size 64 --save '%s'", common, run_dir, per_rank);
    r = run_mpi(2, args);
    if (r->exit_code != 0) fail("--model fast, 2 ranks without --sync-bn", "exit %d: %s", r->exit_code, r->err);
    difference weights = tensor_difference(single, synced, false), stats = tensor_difference(single, synced, true);
    difference unsynced = tensor_difference(single, per_rank, true);
    if (weights.rel < 0 || weights.rel > 1e-3 || stats.rel < 0 || stats.rel > 1e-3)
        fail("--sync-bn: 2 ranks at batch 64 against one at 128", "weights %.3g apart (relative %.3g), running "
             "statistics %.3g (relative %.3g); tolerance 1e-3 relative", weights.abs, weights.rel, stats.abs,
             stats.rel);
    else
        printf("--sync-bn, 2 ranks at batch 64 against one process at batch 128 (fast network, 1 epoch): weights "
               "within %.3g (relative %.3g), running statistics within %.3g (relative %.3g)\n", weights.abs,
               weights.rel, stats.abs, stats.rel);
    if (unsynced.rel < 1e-2)
        fail("2 ranks without --sync-bn", "running statistics %.3g (relative %.3g) from one process: each rank's "
             "own batch should make them differ", unsynced.abs, unsynced.rel);
    else
        printf("without --sync-bn: running statistics %.3g apart (relative %.3g): each rank's own batch\n",
               unsynced.abs, unsynced.rel);
    unlink(single), unlink(synced), unlink(per_rank);
}

int main(int argc, char **argv) {
#ifdef CGRAD_BIN_DIR
    snprintf(cnn, sizeof cnn, "%s/cnn", CGRAD_BIN_DIR);
#else
    snprintf(cnn, sizeof cnn, "./build/cnn");
#endif
    if (argc > 1) snprintf(cnn, sizeof cnn, "%s", argv[1]);
    if (access(cnn, X_OK) != 0) {
        fprintf(stderr, "FAIL test_dist_cli: no executable at %s (build the cnn target first)\n", cnn);
        return 1;
    }
    if (!run_begin(cnn, "/tmp/cgrad_test_dist_cli_XXXXXX")) {
        fprintf(stderr, "FAIL test_dist_cli: cannot make a temporary directory\n");
        return 1;
    }
    const run_result *r = run("--distributed --epochs 1");
    if (r->exit_code != 2 || count_of(r->err, "\n") != 1 || !strstr(r->err, "--distributed") || !strstr(r->err, "mpirun"))
        fail("--distributed without a launcher", "exit %d, stderr \"%s\"", r->exit_code, r->err);
    else
        printf("without a launcher (exit %d): %s", r->exit_code, r->err);
    r = run("--sync-bn --epochs 1");
    if (r->exit_code != 2 || count_of(r->err, "\n") != 1 || !strstr(r->err, "--sync-bn: only with --distributed"))
        fail("--sync-bn without --distributed", "exit %d, stderr \"%s\"", r->exit_code, r->err);
    // Processes started without MPI meet through NCCL: GPUs only.
    setenv("CGRAD_DIST_WORLD", "2", 1);
    setenv("CGRAD_DIST_RANK", "0", 1);
    r = run("--distributed --epochs 1");
    unsetenv("CGRAD_DIST_WORLD");
    unsetenv("CGRAD_DIST_RANK");
    if (r->exit_code != 2 || count_of(r->err, "\n") != 1 || !strstr(r->err, "GPUs only"))
        fail("CGRAD_DIST_WORLD on the CPU", "exit %d, stderr \"%s\"", r->exit_code, r->err);
    // tools/launch_local.sh ends the other ranks when one fails, and exits with its status.
    char command[2048];
    snprintf(command, sizeof command, "'%s/tools/launch_local.sh' 3 sh -c 'if [ \"$CGRAD_DIST_RANK\" = 1 ]; then "
             "exit 3; fi; sleep 60' 2>/dev/null", CGRAD_SOURCE_DIR);
    double start = cg_seconds();
    int status = system(command);
    double seconds = cg_seconds() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3 || seconds > 30)
        fail("launch_local.sh", "exit %d after %.1f s; expected 3 at once", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
             seconds);
    else
        printf("launch_local.sh: rank 1 failed, the others were ended (exit 3 after %.1f s)\n", seconds);
    if (!cg_dist_has_mpi() || CGRAD_MPIEXEC[0] == '\0') {
        run_end();
        printf("test_dist_cli: skipped the rest: this build has no MPI or no mpiexec (libopenmpi-dev, "
               "openmpi-bin, -DCGRAD_DIST=ON)\n");
        return failures ? 1 : 77;
    }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0); // CI runs as root
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    write_fake_fashion_mnist(run_dir, 320, 100); // 320 = 2 steps of 128 and one of 64
    char single_ck[1100], ddp_ck[1100], single_log[1100], ddp_log[1100], args[4096];
    snprintf(single_ck, sizeof single_ck, "%s/single.safetensors", run_dir);
    snprintf(ddp_ck, sizeof ddp_ck, "%s/ddp.safetensors", run_dir);
    snprintf(single_log, sizeof single_log, "%s/single.csv", run_dir);
    snprintf(ddp_log, sizeof ddp_log, "%s/ddp.csv", run_dir);

    // One process at batch 128 against 2 ranks at batch 64.
    snprintf(args, sizeof args, "--data '%s' --epochs 2 --threads 1 --batch-size 128 --save '%s' --log '%s'", run_dir,
             single_ck, single_log);
    r = run(args);
    if (r->exit_code != 0) fail("cnn, one process", "exit %d: %s", r->exit_code, r->err);
    snprintf(args, sizeof args, "--distributed --data '%s' --epochs 2 --threads 1 --batch-size 64 --save '%s' --log '%s'",
             run_dir, ddp_ck, ddp_log);
    r = run_mpi(2, args);
    if (r->exit_code != 0) fail("cnn --distributed, 2 ranks", "exit %d: %s", r->exit_code, r->err);
    if (count_of(r->out, "Test accuracy") != 1 || count_of(r->out, "distributed: 2 ranks") != 1)
        fail("cnn --distributed, 2 ranks", "rank 0 alone should print; stdout:\n%s", r->out);
    double diff = weight_difference(single_ck, ddp_ck);
    if (diff < 0 || diff > 1e-4)
        fail("2 ranks at batch 64 against one at 128", "weights %s (%g)", diff < 0 ? "not comparable" : "differ", diff);
    else
        printf("2 ranks at batch 64, one process at batch 128: weights within %.3g after 2 epochs\n", diff);
    char single_numbers[4096], ddp_numbers[4096];
    log_numbers(single_log, single_numbers, sizeof single_numbers);
    log_numbers(ddp_log, ddp_numbers, sizeof ddp_numbers);
    if (count_of(ddp_numbers, "\n") != 3 || !same_numbers(single_numbers, ddp_numbers, 1e-4))
        fail("the logs", "one process:\n%s2 ranks:\n%s", single_numbers, ddp_numbers);
    else
        printf("the same log (epoch, losses, accuracies), written once:\n%s", ddp_numbers);

    // The same with augmentation (random crops and flips): each rank takes its images' draws.
    snprintf(args, sizeof args, "--data '%s' --epochs 1 --threads 1 --batch-size 128 --augment on --save '%s'",
             run_dir, single_ck);
    int single_exit = run(args)->exit_code;
    snprintf(args, sizeof args, "--distributed --data '%s' --epochs 1 --threads 1 --batch-size 64 --augment on "
             "--save '%s'", run_dir, ddp_ck);
    r = run_mpi(2, args);
    diff = weight_difference(single_ck, ddp_ck);
    if (single_exit != 0 || r->exit_code != 0 || diff < 0 || diff > 1e-4)
        fail("--augment on, 2 ranks against one", "exits %d and %d, weights %g apart: %s", single_exit, r->exit_code,
             diff, r->err);
    else
        printf("with --augment on: weights within %.3g\n", diff);

    check_sync_bn();

    // 3 ranks over 301 images: shares of 101 (two padded) and uneven shares of the test set.
    snprintf(args, sizeof args, "--distributed --data '%s' --limit 301 --epochs 2 --threads 1 --batch-size 32 --log '%s'",
             run_dir, ddp_log);
    r = run_mpi(3, args);
    log_numbers(ddp_log, ddp_numbers, sizeof ddp_numbers);
    if (r->exit_code != 0 || count_of(ddp_numbers, "\n") != 3)
        fail("cnn --distributed, 3 ranks", "exit %d, log:\n%s\nstderr: %s", r->exit_code, ddp_numbers, r->err);

    // Refusals: a line naming the rank at fault.
    char other[1100], cmd[4096];
    snprintf(other, sizeof other, "%s/cnn_other", run_dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && printf x >> '%s'", cnn, other, other);
    if (system(cmd) != 0) fail("copying cnn", "%s", cmd);
    const char *common = "--distributed --epochs 1 --threads 1 --quiet";
    struct {
        const char *what, *rank1_args, *rank1_program, *needle;
    } refusals[] = {
        {"another build", "", other, "rank 1 runs another build"},
        {"another model", "--model mlp", cnn, "rank 1 has 101770"},
        {"another data set size", "--limit 200", cnn, "the number of samples in the data set: rank 1 has 200"},
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        snprintf(args, sizeof args, "-n 1 '%s' %s --data '%s' : -n 1 '%s' %s --data '%s' %s", cnn, common, run_dir,
                 refusals[i].rank1_program, common, run_dir, refusals[i].rank1_args);
        r = run_mpi(0, args);
        if (r->exit_code == 0 || !strstr(r->err, refusals[i].needle) || count_of(r->err, "cnn: ") != 1)
            fail(refusals[i].what, "exit %d, stderr: %s", r->exit_code, r->err);
        else
            printf("%s: refused: %.*s\n", refusals[i].what, (int)strcspn(strstr(r->err, "cnn: "), "\n"),
                   strstr(r->err, "cnn: "));
    }
    unlink(other);

    // A rank that dies, and one that hangs: the job ends, and the checkpoint saved above stays.
    size_t saved_size, now_size;
    unsigned char *saved = read_file(ddp_ck, &saved_size);
    struct {
        const char *fault, *needle;
    } faults[] = {{"1:2:kill", "rank 1"}, {"1:2:hang", "waited 2 s for rank 1, which did not answer"}};
    for (size_t i = 0; i < 2; i++) {
        setenv("CGRAD_DIST_FAULT", faults[i].fault, 1);
        setenv("CGRAD_DIST_TIMEOUT", "2", 1);
        snprintf(args, sizeof args, "%s --data '%s' --save '%s'", common, run_dir, ddp_ck);
        double start = cg_seconds();
        r = run_mpi(2, args);
        double seconds = cg_seconds() - start;
        unsetenv("CGRAD_DIST_FAULT");
        unsetenv("CGRAD_DIST_TIMEOUT");
        unsigned char *now = read_file(ddp_ck, &now_size);
        if (r->exit_code == 0 || seconds > 60 || !strstr(r->err, faults[i].needle))
            fail(faults[i].fault, "exit %d after %.1f s, stderr: %s", r->exit_code, seconds, r->err);
        else
            printf("CGRAD_DIST_FAULT=%s: the job ended (exit %d) after %.1f s, naming rank 1\n", faults[i].fault,
                   r->exit_code, seconds);
        if (saved == NULL || now == NULL || now_size != saved_size || memcmp(saved, now, saved_size) != 0)
            fail(faults[i].fault, "the checkpoint saved before changed");
        free(now);
    }
    free(saved);

    unlink(single_ck), unlink(ddp_ck), unlink(single_log), unlink(ddp_log);
    remove_fake_fashion_mnist(run_dir);
    run_end();
    if (failures) {
        fprintf(stderr, "test_dist_cli: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_dist_cli: all passed\n");
    return 0;
}

// run_program.h: runs a built program (an example) the way a user would, through the shell, and
// captures its exit status, stdout and stderr; checks that a bad command line is refused. Shared
// by tests/test_cli.c, test_cnn_cli.c, test_quantize_cli.c and test_gpu_benchmark.c. Header-only
// (static, one copy per test); the failure counter and fail() come from check.h.
//
// Use: run_begin_program("test_NAME", "PROGRAM", argc, argv) or run_begin(path, "/tmp/NAME.XXXXXX")
// once (false when the program or the scratch folder is missing), then run("args") and expect_refused("args", "needle", ...) as often as needed, then run_end()
// (removes the scratch folder).
#ifndef CG_TESTS_RUN_PROGRAM_H
#define CG_TESTS_RUN_PROGRAM_H

#include "tests/check.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char run_path[1024]; // the program run() runs
static char run_dir[256];   // this run's scratch folder: the captured stdout and stderr, and the test's files

typedef struct {
    int exit_code; // -1 when killed by a signal
    char out[65536], err[8192];
} run_result;

static run_result run_output; // the last run's; large, so kept out of the stack

// The whole of a small file into buf ("" when it cannot be read).
static void read_text(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

// Remembers the program and makes run_dir from dir_template (mkdtemp's "...XXXXXX").
static bool run_begin(const char *program, const char *dir_template) {
    snprintf(run_path, sizeof run_path, "%s", program);
    snprintf(run_dir, sizeof run_dir, "%s", dir_template);
    return mkdtemp(run_dir) != NULL;
}

// For a test that runs one example: the program is argv[1] when given, else CGRAD_BIN_DIR/PROGRAM
// ("./build/PROGRAM" without that definition), and the scratch folder /tmp/cgrad_TEST_XXXXXX.
// False, after a "FAIL test: ..." line on stderr, when the program is not an executable or the
// folder cannot be made; the test then exits 1.
static __attribute__((unused)) bool run_begin_program(const char *test, const char *program, int argc, char **argv) {
    char path[1024], dir_template[256];
#ifdef CGRAD_BIN_DIR
    snprintf(path, sizeof path, "%s/%s", CGRAD_BIN_DIR, program);
#else
    snprintf(path, sizeof path, "./build/%s", program);
#endif
    if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
    if (access(path, X_OK) != 0) {
        fprintf(stderr, "FAIL %s: no executable at %s (build the %s target first)\n", test, path, program);
        return false;
    }
    snprintf(dir_template, sizeof dir_template, "/tmp/cgrad_%s_XXXXXX", test);
    if (!run_begin(path, dir_template)) {
        fprintf(stderr, "FAIL %s: cannot make a temporary directory\n", test);
        return false;
    }
    return true;
}

// Run `program args` with stdout and stderr in files; args are trusted text written by the test.
// The result stays valid until the next run().
static run_result *run(const char *args) {
    char out_path[300], err_path[300], command[4096];
    snprintf(out_path, sizeof out_path, "%s/stdout", run_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", run_dir);
    snprintf(command, sizeof command, "'%s' %s >'%s' 2>'%s' </dev/null", run_path, args, out_path, err_path);
    int status = system(command);
    run_output.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    read_text(out_path, run_output.out, sizeof run_output.out);
    read_text(err_path, run_output.err, sizeof run_output.err);
    return &run_output;
}

// What a refusal must look like beyond the rule of expect_refused; a test sets them once, before.
static int refusal_exit_code = 0;           // the exit status it must have; 0: any clean non-zero one
static const char *refusal_stdout_lacks = NULL; // text stdout must not hold; "": stdout must be empty;
                                                // NULL: stdout is not checked

// A bad invocation `program args`: a clean non-zero exit (not a crash; exactly refusal_exit_code
// when set), exactly one line on stderr that contains each of the needles (NULL-terminated; the
// macro below adds the NULL), and stdout as refusal_stdout_lacks says. Each broken rule is a fail().
__attribute__((unused)) static void expect_refused_list(const char *args, ...) {
    const run_result *r = run(args);
    if (refusal_exit_code != 0 && r->exit_code != refusal_exit_code)
        fail(args, "exit status %d, expected %d", r->exit_code, refusal_exit_code);
    else if (r->exit_code == 0 || r->exit_code == -1 || r->exit_code >= 128)
        fail(args, "exit status %d; expected a clean non-zero exit", r->exit_code);
    size_t len = strlen(r->err);
    const char *newline = strchr(r->err, '\n');
    if (len == 0 || newline == NULL || newline != r->err + len - 1)
        fail(args, "stderr is not exactly one line: \"%s\"", r->err);
    va_list ap;
    va_start(ap, args);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        if (strstr(r->err, needle) == NULL) fail(args, "stderr does not name \"%s\": \"%s\"", needle, r->err);
    va_end(ap);
    if (refusal_stdout_lacks != NULL &&
        (refusal_stdout_lacks[0] == '\0' ? r->out[0] != '\0' : strstr(r->out, refusal_stdout_lacks) != NULL))
        fail(args, "printed on stdout: \"%.200s\"", r->out);
    printf("refused (exit %d): %-44s %s", r->exit_code, args, len ? r->err : "\n");
}
#define expect_refused(...) expect_refused_list(__VA_ARGS__, (const char *)NULL)

// Whether two files hold the same bytes (false when either cannot be read): saved weights of two
// runs that should agree to the bit.
__attribute__((unused)) static bool same_bytes(const char *path_a, const char *path_b) {
    FILE *a = fopen(path_a, "rb"), *b = fopen(path_b, "rb");
    bool same = a != NULL && b != NULL;
    int ca = 0;
    while (same && ca != EOF) { // byte by byte, to the end of both
        ca = fgetc(a);
        same = ca == fgetc(b);
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

// Removes a checkpoint cnn wrote with --save: the weights at path and the training state beside
// them (path.state).
__attribute__((unused)) static void remove_checkpoint(const char *path) {
    char state[1200];
    snprintf(state, sizeof state, "%s.state", path);
    unlink(path);
    unlink(state);
}

// Removes run_dir (the test has removed its own files from it).
static void run_end(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/stdout", run_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/stderr", run_dir);
    unlink(path);
    rmdir(run_dir);
}

#endif

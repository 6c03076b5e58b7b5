// run_program.h: runs a built program (an example) the way a user would, through the shell, and
// captures its exit status, stdout and stderr. Shared by tests/test_cli.c (simple_nn) and
// tests/test_gpu_benchmark.c (gpu_benchmark). Header-only (static, one copy per test); the
// failure counter and fail() come from check.h.
//
// Use: run_begin(path, "/tmp/NAME.XXXXXX") once (false when the scratch folder cannot be made),
// then run("args") as often as needed, then run_end() (removes the scratch folder).
#ifndef CG_TESTS_RUN_PROGRAM_H
#define CG_TESTS_RUN_PROGRAM_H

#include "tests/check.h"

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

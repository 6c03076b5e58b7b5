// dataset_files.h: what the data set loader tests share (tests/test_idx_cifar.c and
// tests/test_image_folder.c): counting failures, expecting success or an error that names the
// file, and making the small files they load in a temporary folder of their own. Header-only
// (static functions, one copy per test); it holds no test.
//
// Use: dataset_test_begin("test_NAME") first (it makes tmp_root, under $TMPDIR or /tmp), then
// the checks, then `return dataset_test_end();` (it removes tmp_root and prints the verdict).
// Each failed check is a fail() of check.h: "FAIL what: message", counted; the test goes on.
// A file the test cannot write or read is not a failure of the loader: the test exits 1 there.
#ifndef CG_TESTS_DATASET_FILES_H
#define CG_TESTS_DATASET_FILES_H

#include "datasets/dataset.h"
#include "tests/check.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_root[256];              // this run's temporary folder, made by dataset_test_begin
static const char *test_program = "";   // the test's name, for its own messages

// ---- checks ---------------------------------------------------------------------------------------

// True when s is OK; otherwise a failure naming the error.
static bool expect_ok(cg_status s, const char *what) {
    if (s.code != CG_OK) {
        fail(what, "expected success, got error %d: %s", s.code, s.message);
        return false;
    }
    return true;
}

// The load must fail, and its message must contain `file` and `reason` (either may be NULL).
static void expect_error(cg_status s, cg_dataset *d, const char *what, const char *file, const char *reason) {
    if (s.code == CG_OK) {
        fail(what, "expected an error, the load succeeded");
        cg_dataset_free(d);
        return;
    }
    if (d != NULL) fail(what, "an error, but *out is not NULL");
    if (file != NULL && strstr(s.message, file) == NULL)
        fail(what, "the message does not name %s: %s", file, s.message);
    if (reason != NULL && strstr(s.message, reason) == NULL)
        fail(what, "the message does not say '%s': %s", reason, s.message);
    if (strchr(s.message, '\n') != NULL) fail(what, "the message is not one line: %s", s.message);
    printf("  ok (error as expected) %-34s %s\n", what, s.message);
}

// ---- files ----------------------------------------------------------------------------------------

// "a/b", malloc'd.
static char *path_of(const char *a, const char *b) {
    char *p = malloc(strlen(a) + strlen(b) + 2);
    sprintf(p, "%s/%s", a, b);
    return p;
}

// mkdir -p of dir (relative to nothing: a full path).
static void make_dirs(const char *dir) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

// path holds exactly the n bytes of data.
static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", test_program, path);
        exit(1);
    }
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

// The whole file, malloc'd (one spare byte at the end), its length in *n.
static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot read %s\n", test_program, path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// rm -r of path (links are removed, not followed).
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dp = opendir(path);
        struct dirent *de;
        while (dp != NULL && (de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char *child = path_of(path, de->d_name);
            remove_tree(child);
            free(child);
        }
        if (dp) closedir(dp);
        rmdir(path);
    } else {
        unlink(path);
    }
}

// A new empty folder tmp_root/name.
static char *fresh_dir(const char *name) {
    char *dir = path_of(tmp_root, name);
    remove_tree(dir);
    make_dirs(dir);
    return dir;
}

// v big-endian at p (the IDX headers' byte order).
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// ---- the run --------------------------------------------------------------------------------------

// Names the test (program) and makes tmp_root; exits 1 when it cannot.
static void dataset_test_begin(const char *program) {
    test_program = program;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/cgrad-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", program);
    if (mkdtemp(tmp_root) == NULL) {
        fprintf(stderr, "%s: cannot create a temporary folder %s\n", program, tmp_root);
        exit(1);
    }
}

// Removes tmp_root, prints the verdict and returns the exit status (1 when any check failed).
static int dataset_test_end(void) {
    remove_tree(tmp_root);
    return check_summary(test_program);
}

#endif

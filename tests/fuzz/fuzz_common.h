// fuzz_common.h: what the fuzz targets share: a scratch folder of their own (in /dev/shm when it
// exists: the parsers take paths, and a file in memory is fast to rewrite on every input), files
// written into it, and an input cut into parts by 2-byte lengths. Header-only (static).
//
// Each target defines LLVMFuzzerTestOneInput(data, size) as libFuzzer expects; the same source
// is built with libFuzzer (tools/fuzz.sh, CMake -DCGRAD_FUZZ=ON, clang) to fuzz, and with
// replay_main.c (any compiler) to run the saved corpus as a ctest.
#ifndef CG_FUZZ_COMMON_H
#define CG_FUZZ_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[256];

// rm -r of path (links removed, never followed).
static inline void fuzz_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dp = opendir(path);
        struct dirent *de;
        while (dp && (de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            size_t len = strlen(path) + strlen(de->d_name) + 2;
            char *child = malloc(len);
            snprintf(child, len, "%s/%s", path, de->d_name);
            fuzz_remove_tree(child);
            free(child);
        }
        if (dp) closedir(dp);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void fuzz_cleanup(void) {
    if (fuzz_dir[0]) fuzz_remove_tree(fuzz_dir);
}

// The scratch folder, made on first use and removed at exit.
static inline const char *fuzz_scratch(void) {
    if (fuzz_dir[0] == '\0') {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cgrad-fuzz-XXXXXX", base);
        if (mkdtemp(fuzz_dir) == NULL) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

// scratch/name, in a static buffer (one of four, so that a few can be held at once).
static inline const char *fuzz_path(const char *name) {
    static char paths[4][512];
    static int next = 0;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", fuzz_scratch(), name);
    return p;
}

static inline void fuzz_mkdir(const char *name) { mkdir(fuzz_path(name), 0755); }

// Writes data[0..n) to scratch/name (replacing it).
static inline void fuzz_write(const char *name, const uint8_t *data, size_t n) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

// Cuts the next part off an input: a 2-byte little-endian length, then that many bytes (fewer
// at the end of the input). Returns the part's length; *data and *size move past it.
static inline size_t fuzz_take(const uint8_t **data, size_t *size, const uint8_t **part) {
    size_t len = 0;
    if (*size >= 2) {
        len = (size_t)(*data)[0] | (size_t)(*data)[1] << 8;
        *data += 2;
        *size -= 2;
    } else {
        *data += *size;
        *size = 0;
    }
    if (len > *size) len = *size;
    *part = *data;
    *data += len;
    *size -= len;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif

// files.c: the file helpers of files.h (paths, sizes, bounded whole-file reads, text lines, an
// image data set allocated without aborting). No format knowledge lives here.
#define _POSIX_C_SOURCE 200809L
#include "datasets/files.h"
#include "core/safe_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cg_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    char *p = cg_xmalloc(a + slash + b + 1);
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

bool cg_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool cg_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

cg_status cg_file_size(const char *path, int64_t *bytes) {
    struct stat st;
    if (stat(path, &st) != 0) return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return cg_error(CG_ERR_IO, "%s: not a regular file", path);
    *bytes = (int64_t)st.st_size;
    return cg_ok();
}

cg_status cg_file_read(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    // Checked to be a regular file before anything is read: a named pipe would block forever.
    const char *why = NULL;
    int64_t bytes = 0;
    int fd = cg_open_regular(path, &bytes, &why);
    if (fd < 0) return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, why);
    if ((uint64_t)bytes > max_bytes) {
        close(fd);
        return cg_error(CG_ERR_FORMAT, "%s: %lld bytes, more than the %zu expected at most for this file", path,
                        (long long)bytes, max_bytes);
    }
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        close(fd);
        return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t n = (size_t)bytes;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        fclose(f);
        return cg_error(CG_ERR_OOM, "%s: out of host memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || got != n) {
        free(buf);
        return cg_error(CG_ERR_IO, "%s: read %zu of its %zu bytes%s", path, got, n,
                        failed ? " (read error)" : " (the file shrank while being read)");
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return cg_ok();
}

cg_status cg_read_lines(const char *path, size_t max_bytes, char ***lines, int *count) {
    *lines = NULL;
    *count = 0;
    char *text;
    size_t len;
    cg_status st = cg_file_read(path, max_bytes, &text, &len);
    if (st.code != CG_OK) return st;
    if (memchr(text, '\0', len) != NULL) {
        size_t at = (size_t)((char *)memchr(text, '\0', len) - text);
        free(text);
        return cg_error(CG_ERR_FORMAT, "%s: expected a text file, found a zero byte at byte offset %zu", path, at);
    }
    int cap = 16, n = 0;
    char **out = cg_xmalloc((size_t)cap * sizeof *out);
    char *line = text;
    while (line < text + len) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (end == NULL) end = text + len;
        char *next = end + 1;
        while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) end--;
        if (end > line) {
            if (n == cap) {
                cap *= 2;
                char **grown = realloc(out, (size_t)cap * sizeof *out);
                CG_CHECK(grown != NULL, "out of host memory reading the lines of %s", path);
                out = grown;
            }
            size_t l = (size_t)(end - line);
            out[n] = cg_xmalloc(l + 1);
            memcpy(out[n], line, l);
            out[n][l] = '\0';
            n++;
        }
        line = next;
    }
    free(text);
    *lines = out;
    *count = n;
    return cg_ok();
}

void cg_lines_free(char **lines, int count) {
    if (lines == NULL) return;
    for (int i = 0; i < count; i++) free(lines[i]);
    free(lines);
}

cg_dataset *cg_dataset_new_images(int64_t count, int64_t channels, int64_t height, int64_t width, int num_classes) {
    cg_dataset *d = calloc(1, sizeof *d);
    if (d == NULL) return NULL;
    d->count = count;
    d->sample_ndim = 3;
    d->sample_shape[0] = channels;
    d->sample_shape[1] = height;
    d->sample_shape[2] = width;
    d->sample_numel = channels * height * width;
    d->dtype = CG_U8;
    d->num_classes = num_classes;
    d->pixels = malloc((size_t)count * (size_t)d->sample_numel + 1);
    d->labels = malloc((size_t)count * sizeof(int32_t) + 1);
    if (d->pixels == NULL || d->labels == NULL) {
        cg_dataset_free(d);
        return NULL;
    }
    return d;
}

bool cg_mul_u64(uint64_t a, uint64_t b, uint64_t *product) {
    if (a != 0 && b > UINT64_MAX / a) return false;
    *product = a * b;
    return true;
}

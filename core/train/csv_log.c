// csv_log.c: whole-row writes to a CSV file with POSIX open/write.
#define _POSIX_C_SOURCE 200809L
#include "core/train/csv_log.h"
#include "core/safe_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cg_csv_log {
    int fd;
    char path[4096];
};

static cg_status write_all(cg_csv_log *log, const char *text, size_t n) {
    while (n > 0) {
        ssize_t w = write(log->fd, text, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return cg_error(CG_ERR_IO, "cannot write log '%s': %s", log->path, strerror(errno));
        text += w;
        n -= (size_t)w;
    }
    return cg_ok();
}

cg_status cg_csv_log_open(cg_csv_log **out, const char *path, const char *header) {
    *out = NULL;
    // As a checkpoint is saved: a new file beside path (never through an existing name or link),
    // renamed over path once the header is in. A link at path is replaced, never written through.
    cg_remove_stale_temps(path);
    char tmp[4200];
    int fd = cg_temp_create(path, tmp, sizeof tmp);
    if (fd < 0) return cg_error(CG_ERR_IO, "cannot write log '%s': %s", path, strerror(errno));
    cg_csv_log *log = cg_xcalloc(1, sizeof *log);
    log->fd = fd;
    snprintf(log->path, sizeof log->path, "%s", path);
    char line[1024];
    int n = snprintf(line, sizeof line, "%s\n", header);
    cg_status s = write_all(log, line, (size_t)n);
    if (s.code == CG_OK && rename(tmp, path) != 0)
        s = cg_error(CG_ERR_IO, "cannot write log '%s': %s", path, strerror(errno));
    if (s.code != CG_OK) {
        cg_csv_log_close(log);
        unlink(tmp);
        return s;
    }
    *out = log;
    return cg_ok();
}

cg_status cg_csv_log_row(cg_csv_log *log, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    CG_CHECK(n >= 0 && (size_t)n < sizeof line - 1, "log row longer than %zu bytes", sizeof line);
    line[n++] = '\n';
    return write_all(log, line, (size_t)n);
}

void cg_csv_log_close(cg_csv_log *log) {
    if (log == NULL) return;
    close(log->fd);
    free(log);
}

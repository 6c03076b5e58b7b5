// common.c: CG_CHECK's report, cg_status builders, checked host allocation, the clock.
#define _POSIX_C_SOURCE 199309L
#include "core/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cg_check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

cg_status cg_ok(void) {
    cg_status s;
    s.code = CG_OK;
    s.message[0] = '\0';
    return s;
}

cg_status cg_error(cg_status_code code, const char *fmt, ...) {
    cg_status s;
    s.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s.message, sizeof s.message, fmt, ap);
    va_end(ap);
    return s;
}

void *cg_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    CG_CHECK(p != NULL, "out of host memory asking for %zu bytes", bytes);
    return p;
}

void *cg_xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    CG_CHECK(p != NULL, "out of host memory asking for %zu x %zu bytes", count, size);
    return p;
}

double cg_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

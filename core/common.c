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
    char raw[sizeof s.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    cg_escape(raw, s.message, sizeof s.message);
    return s;
}

// The length of the valid UTF-8 sequence at s (2 to 4 bytes) and its code point, or 0 when s
// does not start one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
static int utf8_sequence(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    int extra;
    if (c >= 0xC2 && c <= 0xDF) extra = 1, *cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2, *cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3, *cp = c & 0x07;
    else return 0;
    for (int k = 1; k <= extra; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0; // also stops at the terminating 0
        *cp = (*cp << 6) | (s[k] & 0x3F);
    }
    if ((extra == 2 && *cp < 0x800) || (extra == 3 && *cp < 0x10000) || *cp > 0x10FFFF ||
        (*cp >= 0xD800 && *cp <= 0xDFFF))
        return 0;
    return extra + 1;
}

char *cg_escape(const char *s, char *out, size_t size) {
    if (size == 0) return out;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p != 0) {
        uint32_t cp = 0;
        int len = *p >= 0x80 ? utf8_sequence(p, &cp) : 1;
        bool control = *p < 0x20 || *p == 0x7F;
        bool unsafe = len == 0 || control || (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
                      (cp >= 0x2066 && cp <= 0x2069);
        if (unsafe) {
            int bytes = len == 0 ? 1 : len;
            if (n + 4 * (size_t)bytes >= size) break;
            for (int k = 0; k < bytes; k++) n += (size_t)snprintf(out + n, size - n, "\\x%02X", p[k]);
            p += bytes;
        } else {
            if (n + (size_t)len >= size) break;
            memcpy(out + n, p, (size_t)len);
            n += (size_t)len;
            p += len;
        }
    }
    out[n] = '\0';
    return out;
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

// cli.c: number parsing for flags and the progress line.
#define _POSIX_C_SOURCE 200809L
#include "examples/common/cli.h"
#include "core/dist/dist.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

cg_status cg_cli_int(const char *flag, const char *text, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
        return cg_error(CG_ERR_ARG, "%s: '%s' is not a whole number", flag, text);
    if (v < min || v > max) return cg_error(CG_ERR_ARG, "%s: %ld is outside %ld..%ld", flag, v, min, max);
    *out = v;
    return cg_ok();
}

cg_status cg_cli_float(const char *flag, const char *text, double min, double max, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        return cg_error(CG_ERR_ARG, "%s: '%s' is not a number", flag, text);
    if (v < min || v > max) return cg_error(CG_ERR_ARG, "%s: %g is outside %g..%g", flag, v, min, max);
    *out = v;
    return cg_ok();
}

cg_status cg_cli_path(const char *flag, const char *text, const char **out) {
    if (text[0] == '\0') return cg_error(CG_ERR_ARG, "%s: the name is empty", flag);
    if (text[0] == '-' && text[1] == '-')
        return cg_error(CG_ERR_ARG, "%s: '%s' looks like a flag, not a file name (write ./%s for a file of that name)",
                        flag, text, text);
    *out = text;
    return cg_ok();
}

cg_status cg_cli_option_error(int c, char **argv) {
    if (c == ':') return cg_error(CG_ERR_ARG, "%s needs a value", argv[optind - 1]);
    return cg_error(CG_ERR_ARG, "unknown option '%s' (see --help)", argv[optind - 1]);
}

cg_status cg_cli_no_operands(int argc, char **argv) {
    if (optind < argc) return cg_error(CG_ERR_ARG, "unexpected argument '%s' (see --help)", argv[optind]);
    return cg_ok();
}

int cg_cli_fail(const char *program, cg_status s) {
    fprintf(stderr, "%s: %s%s\n", program, cg_dist_tag(), s.message); // "rank R: " when distributed
    return s.code == CG_ERR_ARG ? 2 : 1;
}

void cg_progress_init(cg_progress *p, bool quiet) {
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->last_draw = 0.0;
}

void cg_progress_draw(cg_progress *p, const char *fmt, ...) {
    if (!p->enabled) return;
    double now = cg_seconds();
    if (now - p->last_draw < 0.1) return;
    p->last_draw = now;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

bool cg_progress_due(const cg_progress *p) { return p->enabled && cg_seconds() - p->last_draw >= 0.1; }

void cg_progress_done(cg_progress *p) {
    if (!p->enabled) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

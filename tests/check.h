// check.h: the failure counter of a test that reports every difference before it exits.
// fail("what", "printf format", ...) prints "FAIL what: message" on stderr and adds one to
// `failures`; the test goes on, and its main returns 1 when `failures` is not 0. Header-only
// (static, one copy per test); included by dataset_files.h and run_program.h.
#ifndef CG_TESTS_CHECK_H
#define CG_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failures = 0;

// Print "FAIL what: message" and count it; the test goes on to report every difference.
static void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failures++;
}

#endif

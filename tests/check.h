// check.h: the one failure counter of every test, which reports every difference before it exits.
// fail("what", "printf format", ...) prints "FAIL what: message" on stderr and adds one to
// `failures`; the test goes on, and its main ends with `return check_summary("test_NAME");`
// (exit status 1 when `failures` is not 0). Header-only (static, one copy per test); included by
// dataset_files.h, op_cases.h, reference_fixture.h, run_program.h and twin.h. It holds no test.
#ifndef CG_TESTS_CHECK_H
#define CG_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failures = 0;    // checks failed so far
static int fail_print_max = 0; // > 0: fail() prints only the first fail_print_max failures (it counts all)

// Print "FAIL what: message" and count it; the test goes on to report every difference.
static void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *what, const char *fmt, ...) {
    if (fail_print_max <= 0 || failures < fail_print_max) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL %s: ", what);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    failures++;
}

// The verdict line and the exit status: "NAME: N failure(s)" on stderr and 1 when a check failed,
// else "NAME: all passed" on stdout and 0. Called once, at the end of main.
__attribute__((unused)) static int check_summary(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, failures);
        return 1;
    }
    printf("%s: all passed\n", name);
    return 0;
}

#endif

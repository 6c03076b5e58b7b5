// common.h: the error conventions every file of cgrad shares.
// Programmer errors (wrong shapes, dtypes, devices) abort through CG_CHECK with file:line.
// Input errors (files, flags, data) are returned as a cg_status with a message, never aborted.
#ifndef CG_COMMON_H
#define CG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" { // these headers are also read by the CUDA (C++) files
#endif

// CG_CHECK(cond, fmt, ...): if cond is false, print "file:line: check failed: cond: message"
// to stderr and abort. For bugs in the calling program, not for bad input files.
#define CG_CHECK(cond, ...)                                                     \
    do {                                                                        \
        if (!(cond)) cg_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);   \
    } while (0)

void cg_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

// The result of anything that reads input: CG_OK, or an error with a one-line message that
// names the file, flag or value at fault and what was expected.
typedef enum { CG_OK = 0, CG_ERR_IO, CG_ERR_FORMAT, CG_ERR_ARG, CG_ERR_DEVICE, CG_ERR_OOM } cg_status_code;

typedef struct {
    cg_status_code code;
    char message[512];
} cg_status;

// Build a status: cg_ok(), or cg_error(code, printf-style message). cg_error passes the
// formatted message through cg_escape, so that a name read from a file (a tensor name, a dtype,
// a class name) can never put a control character on the user's terminal or break the line.
cg_status cg_ok(void);
cg_status cg_error(cg_status_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Copies the text s into out (size bytes, always terminated, cut short if need be) with every
// byte a terminal could act on written as \xNN: ASCII control characters (0x00-0x1F, 0x7F),
// bytes that are not valid UTF-8, the C1 controls (U+0080-U+009F) and the bidirectional
// overrides (U+202A-U+202E, U+2066-U+2069). Printable ASCII and other valid UTF-8 pass as they
// are. Returns out. For any string that came from a file or a flag before it is printed.
char *cg_escape(const char *s, char *out, size_t size);

// Allocation that aborts with the size on failure (host memory only).
void *cg_xmalloc(size_t bytes);
void *cg_xcalloc(size_t count, size_t size);

// Seconds from a monotonic clock, for timing and logs.
double cg_seconds(void);

#ifdef __cplusplus
}
#endif

#endif

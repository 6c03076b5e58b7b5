// cli.h: what every example shares on its command line: strict number parsing that names the
// flag at fault, and the one-line progress display. Not a flag parser: that is getopt_long.
#ifndef CG_CLI_H
#define CG_CLI_H

#include "core/common.h"

// Parse a whole decimal integer in [min, max]; "--epochs: 'abc' is not a whole number" otherwise.
cg_status cg_cli_int(const char *flag, const char *text, long min, long max, long *out);
// Parse a whole finite number in [min, max].
cg_status cg_cli_float(const char *flag, const char *text, double min, double max, double *out);

// A file or folder name given to flag: *out = text, unless it is empty or starts with "--" (a
// flag taken as the value: `--save --quiet` would write a file named --quiet), CG_ERR_ARG then.
cg_status cg_cli_path(const char *flag, const char *text, const char **out);

// getopt_long's own errors, for a loop run with opterr = 0 and an optstring starting with ':':
// c ':' is an option that needs a value and was given none, anything else an option this program
// does not have; argv[optind - 1] names it ("--epochs needs a value", "unknown option '--fast'").
cg_status cg_cli_option_error(int c, char **argv);
// After the options: the first word left, if any, as an error (the programs take no operands).
cg_status cg_cli_no_operands(int argc, char **argv);

// Print "program: message" on stderr and return the exit status 2 (bad usage) or 1 (other).
int cg_cli_fail(const char *program, cg_status s);

// The progress line: redrawn in place on stderr when it is a terminal, at most 10 times a
// second; nothing otherwise. cg_progress_done clears it.
typedef struct {
    bool enabled;
    double last_draw;
} cg_progress;

void cg_progress_init(cg_progress *p, bool quiet);
void cg_progress_draw(cg_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_progress_done(cg_progress *p);
// Whether a draw now would show (enabled, and a tenth of a second since the last): so that what
// costs something to compute for the line (a loss read back from the GPU) is computed only then.
bool cg_progress_due(const cg_progress *p);

#endif

// plugin_clock.h: the two clock helpers the MPI and NCCL plugins poll with. Header-only (static
// inline) because the plugins may call no cg_ function (they are loaded into programs that export
// none); the rest of cgrad uses cg_seconds.
#ifndef CG_PLUGIN_CLOCK_H
#define CG_PLUGIN_CLOCK_H

#include <time.h>

// Seconds from a monotonic clock.
static inline double plugin_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Sleep for `seconds` (less than one).
static inline void plugin_nap(double seconds) {
    struct timespec t = {0, (long)(seconds * 1e9)};
    nanosleep(&t, NULL);
}

#endif

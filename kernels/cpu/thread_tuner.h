// thread_tuner.h: how many threads the next CPU training step uses, N (the count asked for) or
// N - 1, whichever ran faster the last time both were timed while another program was using the
// CPU (kernels/cpu/thread_tuner.c says why and how). It only decides: the caller sets the count.
// It does not look for the best count on idle cores (that is what --threads is for).
#ifndef CG_KERNELS_CPU_THREAD_TUNER_H
#define CG_KERNELS_CPU_THREAD_TUNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The settings, in training steps (exposed for tests/test_thread_tuner.c).
enum {
    CG_TUNER_WARMUP = 3,       // first steps, never timed: they size the arena and fill the caches
    CG_TUNER_WINDOW = 2,       // consecutive steps timed together, one count: a window
    CG_TUNER_PAIRS = 3,        // a probe: windows of the count kept and of the other, taking turns, 3 each
    CG_TUNER_CHECK = 32,       // steps between two looks at the load of the other programs
    CG_TUNER_PERIOD_MIN = 32,  // steps from a probe to the next one, doubled each time the probe keeps
    CG_TUNER_PERIOD_MAX = 1024 // the count, back to the minimum when it changes or the load does
};
#define CG_TUNER_BUSY_CORES 0.25 // other programs using this many cores or more: the CPU is shared
#define CG_TUNER_EARLY 0.05      // after 2 pairs, every other window slower by 5 %: keep, stop early
#define CG_TUNER_SWITCH 0.02     // after 3 pairs, the other count's median faster by 2 %: switch

// Where the CPU time of the other programs comes from: /proc/stat, less this process's own time.
typedef struct {
    double busy_seconds, own_seconds, wall_seconds; // at the last reading
    bool have;                                      // a reading was made
} cg_cpu_load;
// Cores that other programs (and the hypervisor, as steal time) kept busy since the last call,
// averaged over the wall time between the calls, e.g. 1.0 for one program spinning on a core;
// -1 on the first call or where /proc/stat cannot be read.
double cg_cpu_load_others(cg_cpu_load *l);

typedef struct {
    bool active;         // N >= 2 and tuning asked for; otherwise every step runs with N
    int counts[2];       // [0]: N, [1]: N - 1
    int chosen;          // 0 or 1: the count kept between probes
    int trying;          // 0 or 1: the count of the next step
    int64_t batch;       // images in a timed step: the first step's (a smaller last batch is not timed)
    int64_t steps;       // steps reported
    int64_t next_check;  // the step at which the load is looked at next
    int64_t probe_end;   // the step at which the last probe ended
    int64_t period;      // steps from one probe to the next now
    bool busy;           // other programs were using the CPU at the last look
    int window;          // the probe's window in progress, 0 to 2 x CG_TUNER_PAIRS - 1; -1: no probe
    int window_steps;    // timed steps in it so far
    double window_seconds;
    double seconds[2][CG_TUNER_PAIRS]; // seconds per step of each window of the probe, by count
    double last_ms[2];   // milliseconds per step of each count at the last probe (0: none yet)
    int probes, switches;
    double (*others_load)(void *ctx); // cg_cpu_load_others by default; tests give their own
    void *load_ctx;
    cg_cpu_load load;
} cg_thread_tuner;

// threads: N (>= 1); on: false keeps N for every step. N - 1 is never below 1: with N = 1 there
// is nothing to tune.
void cg_thread_tuner_init(cg_thread_tuner *t, int threads, bool on);
// The thread count for the next step.
int cg_thread_tuner_next(const cg_thread_tuner *t);
// The count kept between probes (the one to evaluate with).
int cg_thread_tuner_chosen(const cg_thread_tuner *t);
// The step just run with cg_thread_tuner_next's count took `seconds` (CLOCK_MONOTONIC) on
// `images` images. Probes, and decides, at step boundaries.
void cg_thread_tuner_report(cg_thread_tuner *t, double seconds, int64_t images);
// e.g. "1 thread, 21.5 ms a step against 24.4 with 2 (3 probes, 1 change)", or "2 threads (CPU not
// shared: no probe)".
void cg_thread_tuner_describe(const cg_thread_tuner *t, char *text, size_t size);

#endif

// thread_tuner.c: the thread count of each CPU training step, N or N - 1, chosen by timing both
// while other programs use the CPU. It sets no thread count itself and pins no thread.
//
// Why: a step is a chain of parallel loops, and each loop ends when its slowest thread does.
// When another program holds one of the cores, the thread that shares that core runs at about
// half speed and every loop waits for it; with passive waiting (threads.c) the other threads
// sleep meanwhile, so N threads do about the work of N - 1, plus the wait. Where a step is many
// short loops (bf16), the waits make it slower than N - 1 threads. Measured on the 2-core AMD
// EPYC VM with `taskset -c 1 yes` on core 1: fp32 1 thread 3,002 images/s, 2 threads 3,001;
// bf16 5,943 against 5,239, 12 % slower with 2 (idle, 2 threads are 1.5x to 1.8x faster).
// Tuned (bench/thread_tuning.sh --reps 6 --epochs 2, medians, images/s): idle as 2 threads (fp32
// 6,011 against 5,544, bf16 10,669 against 10,334); busy within 2 % of 1 thread (fp32 3,254
// against 3,306 and 3,255 with 2; bf16 6,106 against 6,188 and 5,940): lesson 03.
//
// How: every CG_TUNER_CHECK steps it looks at how much CPU time the other programs used
// (/proc/stat). On a CPU they leave alone, N - 1 threads can only lose (1.5x to 1.8x slower a
// step above), so with N kept it does not probe: idle runs pay nothing. When they use a quarter
// of a core or more, a probe times windows of CG_TUNER_WINDOW steps, one count then the other,
// CG_TUNER_PAIRS each, and keeps the count with the smaller median time per step: one slow
// window (a page fault, a burst of the other program) does not decide. It stops after two
// pairs when every window of the other count was slower than every window of the kept one. It
// probes again after a period that doubles while the choice holds, and sooner when the load
// appears or goes. Switching changes no result: every CPU kernel gives the same bits with any
// thread count. The products large enough for OpenBLAS did not at first (its one-thread and
// threaded drivers cut K into blocks differently for some sizes: `--model mlp`'s first layer,
// K = 784), so tuned runs kept OpenBLAS on one thread, which cost 7 % on idle cores (Zen 5 VM,
// fp32: 17,132 images/s against 18,451). Now OpenBLAS always runs on one thread and cgrad's
// threads share a product's pieces, which depend on its shape alone (blas.h): lesson 03.
#define _POSIX_C_SOURCE 200809L // clock_gettime
#include "kernels/cpu/thread_tuner.h"
#include "core/common.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The first line of /proc/stat: the time all CPUs spent in each state since boot, in clock ticks
// (proc(5)): user nice system idle iowait irq softirq steal (guest time is inside user and nice).
static bool read_busy_seconds(double *seconds) {
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) return false;
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq,
                   &softirq, &steal);
    fclose(f);
    long ticks = sysconf(_SC_CLK_TCK);
    if (n != 8 || ticks <= 0) return false;
    *seconds = (double)(user + nice + system + irq + softirq + steal) / (double)ticks;
    return true;
}

double cg_cpu_load_others(cg_cpu_load *l) {
    double busy, own = clock_seconds(CLOCK_PROCESS_CPUTIME_ID), wall = clock_seconds(CLOCK_MONOTONIC);
    if (!read_busy_seconds(&busy)) return -1.0;
    double others = -1.0;
    if (l->have && wall > l->wall_seconds) {
        others = ((busy - l->busy_seconds) - (own - l->own_seconds)) / (wall - l->wall_seconds);
        if (others < 0.0) others = 0.0; // the ticks are samples: a little below this process's own time
    }
    *l = (cg_cpu_load){busy, own, wall, true};
    return others;
}

static double default_others_load(void *ctx) { return cg_cpu_load_others(ctx); }

void cg_thread_tuner_init(cg_thread_tuner *t, int threads, bool on) {
    CG_CHECK(threads >= 1, "thread count %d", threads);
    *t = (cg_thread_tuner){.active = on && threads >= 2, .counts = {threads, threads > 1 ? threads - 1 : 1},
                           .next_check = CG_TUNER_WARMUP, .probe_end = -CG_TUNER_PERIOD_MAX,
                           .period = CG_TUNER_PERIOD_MIN, .window = -1, .others_load = default_others_load};
    t->load_ctx = &t->load;
    if (t->active) t->others_load(t->load_ctx); // the first reading: the load is measured from here
}

int cg_thread_tuner_next(const cg_thread_tuner *t) { return t->counts[t->active ? t->trying : 0]; }

int cg_thread_tuner_chosen(const cg_thread_tuner *t) { return t->counts[t->active ? t->chosen : 0]; }

// Window w of a probe runs the kept count when w is even, the other when odd.
static int window_count(const cg_thread_tuner *t, int w) { return w % 2 == 0 ? t->chosen : 1 - t->chosen; }

static double median(const double *v, int n) { // n is 2 or 3
    if (n == 2) return 0.5 * (v[0] + v[1]);
    double a = v[0], b = v[1], c = v[2];
    return a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
}

static void end_probe(cg_thread_tuner *t, int pairs) {
    double kept = median(t->seconds[t->chosen], pairs), other = median(t->seconds[1 - t->chosen], pairs);
    t->last_ms[t->chosen] = 1e3 * kept;
    t->last_ms[1 - t->chosen] = 1e3 * other;
    if (pairs == CG_TUNER_PAIRS && other < kept * (1.0 - CG_TUNER_SWITCH)) {
        t->chosen = 1 - t->chosen;
        t->switches++;
        t->period = CG_TUNER_PERIOD_MIN;
    } else {
        t->period = t->period * 2 < CG_TUNER_PERIOD_MAX ? t->period * 2 : CG_TUNER_PERIOD_MAX;
    }
    t->probes++;
    t->window = -1;
    t->trying = t->chosen;
    t->probe_end = t->steps;
}

// After two pairs: every window of the other count slower than every window of the kept one.
static bool clearly_slower(const cg_thread_tuner *t) {
    const double *kept = t->seconds[t->chosen], *other = t->seconds[1 - t->chosen];
    double slowest_kept = kept[0] > kept[1] ? kept[0] : kept[1];
    double fastest_other = other[0] < other[1] ? other[0] : other[1];
    return fastest_other > slowest_kept * (1.0 + CG_TUNER_EARLY);
}

// Every CG_TUNER_CHECK steps outside a probe: the load of the other programs, and a probe if due.
static void check(cg_thread_tuner *t) {
    t->next_check = t->steps + CG_TUNER_CHECK;
    double others = t->others_load(t->load_ctx);
    bool busy = others < 0.0 || others >= CG_TUNER_BUSY_CORES; // unknown: time anyway
    if (busy != t->busy) { // the load came or went: probe now
        t->busy = busy;
        t->period = CG_TUNER_PERIOD_MIN;
        t->probe_end = t->steps - CG_TUNER_PERIOD_MIN;
    }
    if (t->chosen == 0 && !busy) return; // N on a CPU of its own: N - 1 can only lose
    if (t->steps - t->probe_end < t->period) return;
    t->window = 0;
    t->window_steps = 0;
    t->window_seconds = 0.0;
    t->trying = window_count(t, 0);
}

void cg_thread_tuner_report(cg_thread_tuner *t, double seconds, int64_t images) {
    if (!t->active) return;
    t->steps++;
    if (t->batch == 0) t->batch = images;
    if (t->window < 0) {
        if (t->steps >= t->next_check) check(t);
        return;
    }
    if (images != t->batch) return; // a partial batch: not timed against full ones
    t->window_seconds += seconds;
    if (++t->window_steps < CG_TUNER_WINDOW) return;
    int w = t->window;
    t->seconds[window_count(t, w)][w / 2] = t->window_seconds / CG_TUNER_WINDOW;
    t->window = w + 1;
    t->window_steps = 0;
    t->window_seconds = 0.0;
    if (t->window == 4 && clearly_slower(t)) end_probe(t, 2);
    else if (t->window == 2 * CG_TUNER_PAIRS) end_probe(t, CG_TUNER_PAIRS);
    else t->trying = window_count(t, t->window);
}

void cg_thread_tuner_describe(const cg_thread_tuner *t, char *text, size_t size) {
    int n = cg_thread_tuner_chosen(t), other = t->counts[1 - t->chosen];
    const char *s = n == 1 ? "" : "s";
    const char *why = !t->active ? "" : t->busy ? " (probing)" : " (CPU not shared: no probe)";
    if (!t->active || t->probes == 0)
        snprintf(text, size, "%d thread%s%s", n, s, why);
    else
        snprintf(text, size, "%d thread%s, %.1f ms a step against %.1f with %d (%d probe%s, %d change%s)", n, s,
                 t->last_ms[t->chosen], t->last_ms[1 - t->chosen], other, t->probes, t->probes == 1 ? "" : "s",
                 t->switches, t->switches == 1 ? "" : "s");
}

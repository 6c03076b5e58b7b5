// test_thread_tuner.c: the thread tuner's decisions (kernels/cpu/thread_tuner.c) from made-up
// step times and a made-up load of other programs: no clock is read. It picks the faster count,
// probes again after its period and when the load goes, is not moved by one slow (or fast)
// window, does not time a partial batch, does not probe on a CPU nobody else uses, and never
// asks for fewer than one thread. Speed itself is measured by benchmarks, not here.
#include "kernels/cpu/thread_tuner.h"
#include "tests/check.h"

#include <string.h>

typedef struct {
    double load;         // cores the other programs use
    double ms[4];        // milliseconds a step with 1, 2 or 3 threads ([1] to [3])
    int64_t images;      // images in each step
    long outlier_at;     // the step (0-based) whose time is multiplied by outlier_factor; -1: none
    double outlier_factor;
    long steps_with[4];  // steps run with each count
    long step;           // steps run so far
} world;

static double fake_load(void *ctx) { return ((world *)ctx)->load; }

static void tuner_start(cg_thread_tuner *t, world *w, int threads) {
    cg_thread_tuner_init(t, threads, true);
    t->others_load = fake_load;
    t->load_ctx = w;
}

// Runs `steps` steps; each takes the world's time for the count the tuner asks for.
static void run(cg_thread_tuner *t, world *w, long steps) {
    for (long i = 0; i < steps; i++, w->step++) {
        int n = cg_thread_tuner_next(t);
        if (n < 1 || n > 3) {
            fail("count", "step %ld: %d threads asked for", w->step, n);
            return;
        }
        w->steps_with[n]++;
        double seconds = 1e-3 * w->ms[n] * (w->step == w->outlier_at ? w->outlier_factor : 1.0);
        cg_thread_tuner_report(t, seconds, w->images);
    }
}

static world make_world(double load, double ms1, double ms2) {
    return (world){.load = load, .ms = {0, ms1, ms2, 0}, .images = 128, .outlier_at = -1};
}

static void expect_chosen(const cg_thread_tuner *t, int want, const char *what) {
    int kept = cg_thread_tuner_chosen(t);
    if (kept != want) fail(what, "kept %d threads, expected %d", kept, want);
}

// A core taken, one thread faster (the bf16 case): it switches to 1 after its first probe.
static void test_picks_faster(void) {
    cg_thread_tuner t;
    world w = make_world(1.0, 8.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, 100);
    expect_chosen(&t, 1, "busy, 1 faster");
    if (t.switches != 1) fail("busy, 1 faster", "%d switches, expected 1", t.switches);
    // The probe ran CG_TUNER_WINDOW steps of each count CG_TUNER_PAIRS times, then 1 thread.
    long at_two = CG_TUNER_WARMUP + CG_TUNER_PAIRS * CG_TUNER_WINDOW;
    if (w.steps_with[2] < at_two || w.steps_with[2] > at_two + 2 * CG_TUNER_PAIRS * CG_TUNER_WINDOW)
        fail("busy, 1 faster", "%ld steps with 2 threads of 100", w.steps_with[2]);
    char text[128];
    cg_thread_tuner_describe(&t, text, sizeof text);
    if (strstr(text, "1 thread, 8.0 ms a step against 10.0 with 2 (2 probes, 1 change)") == NULL)
        fail("describe", "'%s'", text);

    // Two threads faster although the CPU is shared: it keeps 2, stopping after two pairs.
    w = make_world(1.0, 15.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, CG_TUNER_WARMUP + 4 * CG_TUNER_WINDOW);
    expect_chosen(&t, 2, "busy, 2 faster");
    if (t.probes != 1 || w.steps_with[1] != 2 * CG_TUNER_WINDOW)
        fail("busy, 2 faster", "%d probes, %ld steps with 1 thread (expected 1 probe stopped after %d steps)",
             t.probes, w.steps_with[1], 2 * CG_TUNER_WINDOW);
}

// After a switch it probes the other count again within a period; when the other program stops,
// it goes back to 2 threads.
static void test_probes_again(void) {
    cg_thread_tuner t;
    world w = make_world(1.0, 8.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, 30);
    expect_chosen(&t, 1, "before the period");
    long two_before = w.steps_with[2];
    run(&t, &w, CG_TUNER_PERIOD_MIN + CG_TUNER_CHECK + 2 * CG_TUNER_PAIRS * CG_TUNER_WINDOW);
    if (w.steps_with[2] == two_before) fail("probe again", "no step with 2 threads in a period after the switch");
    expect_chosen(&t, 1, "probe again, still busy");
    if (t.probes < 2) fail("probe again", "%d probes", t.probes);
    // The load goes and two threads get faster: back to 2 within a check and a probe.
    w.load = 0.0, w.ms[1] = 16.0, w.ms[2] = 9.0;
    run(&t, &w, CG_TUNER_CHECK + 2 * CG_TUNER_PAIRS * CG_TUNER_WINDOW + 1);
    expect_chosen(&t, 2, "load gone");
    // The period doubles while the choice holds, up to its maximum.
    w = make_world(1.0, 8.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, 20000);
    if (t.period != CG_TUNER_PERIOD_MAX) fail("period", "%lld steps after many probes", (long long)t.period);
    if (w.steps_with[2] > 20000 / 50)
        fail("period", "%ld of 20000 steps with the slower 2 threads", w.steps_with[2]);
}

// One slow window does not decide, nor one impossibly fast one.
static void test_outliers(void) {
    cg_thread_tuner t;
    // 1 faster, its first window 10x slower.
    world w = make_world(1.0, 8.0, 10.0);
    w.outlier_at = CG_TUNER_WARMUP + CG_TUNER_WINDOW, w.outlier_factor = 10.0;
    tuner_start(&t, &w, 2);
    run(&t, &w, 40);
    expect_chosen(&t, 1, "slow window of the faster count");
    // 2 faster, one of its windows 10x slower.
    w = make_world(1.0, 10.0, 8.0);
    w.outlier_at = CG_TUNER_WARMUP, w.outlier_factor = 10.0;
    tuner_start(&t, &w, 2);
    run(&t, &w, 40);
    expect_chosen(&t, 2, "slow window of the kept count");
    // 2 faster, one window of 1 thread 10x faster.
    w = make_world(1.0, 10.0, 8.0);
    w.outlier_at = CG_TUNER_WARMUP + CG_TUNER_WINDOW, w.outlier_factor = 0.1;
    tuner_start(&t, &w, 2);
    run(&t, &w, 40);
    expect_chosen(&t, 2, "fast window of the slower count");
}

// Partial batches are not timed: here a slow one (1 s, 32 images) before every step of the
// probe's windows with 2 threads, the faster count; timed, they would make 2 look slower.
static void test_partial_batch(void) {
    cg_thread_tuner t;
    world w = make_world(1.0, 10.0, 8.0);
    tuner_start(&t, &w, 2);
    for (long i = 0; i < 60; i++) {
        if (t.window >= 0 && cg_thread_tuner_next(&t) == 2) cg_thread_tuner_report(&t, 1.0, 32);
        run(&t, &w, 1);
    }
    expect_chosen(&t, 2, "partial batch");
    if (t.probes < 1 || t.last_ms[0] != 8.0 || t.last_ms[1] != 10.0)
        fail("partial batch", "%d probes; timed %.1f ms with 2, %.1f with 1", t.probes, t.last_ms[0], t.last_ms[1]);
}

// No probe on a CPU nobody else uses (even when 1 thread would win); probes when the load is
// unknown; 1 thread asked for: 1 thread always; off: N always.
static void test_idle_and_limits(void) {
    cg_thread_tuner t;
    world w = make_world(0.1, 5.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, 2000);
    if (w.steps_with[1] != 0) fail("idle", "%ld steps with 1 thread on an idle CPU", w.steps_with[1]);
    w = make_world(-1.0, 8.0, 10.0);
    tuner_start(&t, &w, 2);
    run(&t, &w, 100);
    expect_chosen(&t, 1, "load unknown");
    w = make_world(1.0, 8.0, 10.0);
    tuner_start(&t, &w, 1);
    run(&t, &w, 500);
    if (w.steps_with[1] != 500) fail("one thread", "%ld of 500 steps with 1 thread", w.steps_with[1]);
    w = make_world(1.0, 8.0, 10.0);
    cg_thread_tuner_init(&t, 2, false);
    t.others_load = fake_load, t.load_ctx = &w;
    run(&t, &w, 500);
    if (w.steps_with[2] != 500) fail("off", "%ld of 500 steps with 2 threads", w.steps_with[2]);
    // Three threads asked for: 3 or 2, never fewer.
    w = make_world(1.0, 0.0, 8.0);
    w.ms[3] = 10.0;
    tuner_start(&t, &w, 3);
    run(&t, &w, 300);
    expect_chosen(&t, 2, "3 threads asked for");
    if (w.steps_with[1] != 0) fail("3 threads asked for", "%ld steps with 1 thread", w.steps_with[1]);
}

int main(void) {
    test_picks_faster();
    test_probes_again();
    test_outliers();
    test_partial_batch();
    test_idle_and_limits();
    return check_summary("test_thread_tuner");
}

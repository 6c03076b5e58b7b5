// guard.c: divergence and interruption for the training loops (guard.h). The per-step record is
// two device copies of one float each; the checks read the slots back once an epoch (each step on
// the CPU, where reading is free). Weights are checked, and kept as the last good ones, at the end
// of each epoch. Saving stays with the examples.
#define _POSIX_C_SOURCE 200809L
#include "examples/common/guard.h"
#include "core/anomaly.h"
#include "core/kernels.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cg_guard {
    const char *program;
    cg_params *params;
    const cg_metrics *metrics;
    const cg_amp *amp;   // NULL or fp32: no loss scaler
    bool scaler;         // a loss scaler skips the steps whose gradients overflow
    int64_t capacity;    // slots
    float *slots;        // device: (capacity, 2): running loss sum, then skipped steps so far (with a
                         // loss scaler) or 1 when the step's gradients held inf / NaN (without)
    float *state;        // device: CG_AMP_STATE floats for the gradient check without a scaler (scale 1)
    float *host;         // host copy of the slots
    int64_t step;        // slots recorded this epoch (by the host; a replayed graph records on its own)
    long epoch;          // the epoch under way
    float skipped_before; // skipped steps at the start of the epoch
    float *good;         // host: the last good weights (params->numel floats), NULL before the first
    long good_epochs;    // epochs those weights have seen
    bool initial_good;   // good holds the weights training started from (no epoch yet)
    bool diverged, interrupted_unsafe;
    char message[768];
    bool warned_static; // the one warning about a static loss scale that skipped a whole epoch
};

static volatile sig_atomic_t caught = 0;

static void on_signal(int sig) { caught = sig; } // SA_RESETHAND: a second one kills as usual

void cg_guard_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; // no SA_RESTART: a blocking read returns, the loop looks at the flag
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cg_guard_signal(void) { return (int)caught; }

cg_guard *cg_guard_new(const char *program, cg_params *params, const cg_metrics *metrics, const cg_amp *amp,
                       int64_t steps_per_epoch, bool detect_anomaly) {
    cg_guard *g = cg_xcalloc(1, sizeof *g);
    g->program = program;
    g->params = params;
    g->metrics = metrics;
    g->amp = amp;
    g->scaler = amp != NULL && amp->precision != CG_PRECISION_FP32;
    g->capacity = steps_per_epoch > 0 ? steps_per_epoch : 1;
    g->slots = cg_device_alloc_for(params->device, (size_t)g->capacity * 2 * sizeof(float), "the divergence checks");
    cg_device_zero(params->device, g->slots, (size_t)g->capacity * 2 * sizeof(float));
    g->host = cg_xcalloc((size_t)g->capacity * 2, sizeof(float));
    float state[CG_AMP_STATE] = {0};
    state[CG_AMP_SCALE] = 1.0f; // the check multiplies the gradients by 1 / scale: exactly unchanged
    g->state = cg_device_alloc_for(params->device, sizeof state, "the divergence checks");
    cg_device_copy(params->device, g->state, cg_cpu(), state, sizeof state);
    cg_anomaly_enable(detect_anomaly);
    // The weights training starts from (initialised or loaded) are the first good ones.
    g->good = cg_xmalloc((size_t)(params->numel ? params->numel : 1) * sizeof(float));
    cg_device_copy(cg_cpu(), g->good, params->device, params->values, (size_t)params->numel * sizeof(float));
    g->initial_good = true;
    return g;
}

void cg_guard_free(cg_guard *g) {
    if (g == NULL) return;
    cg_device_free(g->params->device, g->slots);
    cg_device_free(g->params->device, g->state);
    free(g->host);
    free(g->good);
    free(g);
}

static float skipped_now(const cg_guard *g) {
    if (!g->scaler) return 0.0f;
    float v = 0.0f;
    cg_device_copy(cg_cpu(), &v, g->params->device, g->amp->state + CG_AMP_SKIPPED, sizeof v);
    return v;
}

void cg_guard_epoch_begin(cg_guard *g, long epoch) {
    g->epoch = epoch;
    g->step = 0;
    g->skipped_before = skipped_now(g);
}

// CGRAD_TEST_SIGNAL=EPOCH:STEP:SIG (tests only): this process sends itself signal SIG when step
// STEP of epoch EPOCH begins, so that a test interrupts a run at a known place on any machine.
static void test_signal(const cg_guard *g) {
    static int parsed = 0;
    static long at_epoch, at_step;
    static int sig;
    if (parsed == 0) {
        const char *spec = getenv("CGRAD_TEST_SIGNAL");
        parsed = spec && sscanf(spec, "%ld:%ld:%d", &at_epoch, &at_step, &sig) == 3 ? 1 : -1;
    }
    if (parsed == 1 && g->epoch == at_epoch && g->step + 1 == at_step) raise(sig);
}

void cg_guard_step_begin(cg_guard *g) {
    if (cg_anomaly_enabled()) cg_anomaly_reset();
    test_signal(g);
}

void cg_guard_skip_steps(cg_guard *g, int64_t steps) {
    if (steps > g->capacity) steps = g->capacity;
    if (steps > 0) cg_device_zero(g->params->device, g->slots, (size_t)steps * 2 * sizeof(float));
    g->step = steps > 0 ? steps : 0;
}

int64_t cg_guard_step(const cg_guard *g) { return g->step; }

void cg_guard_record(cg_guard *g) {
    if (g->step >= g->capacity) return; // more steps than announced: the epoch-end check still sees the weights
    cg_device d = g->params->device;
    float *slot = g->slots + 2 * g->step;
    cg_device_copy(d, slot, d, g->metrics->sums->data, sizeof(float)); // the running loss sum
    if (g->scaler) {
        cg_device_copy(d, slot + 1, d, g->amp->state + CG_AMP_SKIPPED, sizeof(float));
    } else {
        // The step's gradients (still in the block until the next zero_grad) checked for inf / NaN
        // by the loss scaler's kernel at scale 1: a NaN gradient behind a ReLU leaves the loss
        // finite (cgrad's ReLU maps NaN to 0) while it turns weights into NaN.
        const cg_kernels *k = cg_kernels_for(d);
        k->fill(g->state + CG_AMP_FOUND_INF, 0.0f, 1);
        k->amp_unscale_check(g->params->grads, NULL, CG_F32, g->state, g->params->numel, NULL, 0);
        cg_device_copy(d, slot + 1, d, g->state + CG_AMP_FOUND_INF, sizeof(float));
    }
    g->step++;
}

// The message of a divergence at `step` of `epoch` (1-based), with anomaly mode's finding.
static void diverge(cg_guard *g, long epoch, int64_t step, const char *what, bool hint) {
    char anomaly[512] = "";
    const char *lead = "";
    if (cg_anomaly_report(anomaly, sizeof anomaly))
        lead = "; first non-finite value: ";
    else if (hint && !cg_anomaly_enabled())
        lead = " (--detect-anomaly names the op it came from)";
    snprintf(g->message, sizeof g->message, "training diverged at epoch %ld, step %lld: %s%s%s", epoch,
             (long long)step, what, lead, anomaly);
    g->diverged = true;
}

// Checks slots [from, to) of epoch (read into g->host first). True when one diverged.
static bool check_slots(cg_guard *g, long epoch, int64_t from, int64_t to) {
    float skipped_prev = from == 0 ? g->skipped_before : g->host[2 * (from - 1) + 1];
    for (int64_t i = from; i < to; i++) {
        float sum = g->host[2 * i], skipped = g->scaler ? g->host[2 * i + 1] : 0.0f;
        bool step_skipped = g->scaler && skipped > skipped_prev;
        skipped_prev = skipped;
        if (!g->scaler && g->host[2 * i + 1] != 0.0f && isfinite(sum)) {
            diverge(g, epoch, i + 1, "a gradient is NaN or infinite", true);
            return true;
        }
        if (isfinite(sum)) continue;
        // With a loss scaler, a non-finite loss makes non-finite gradients, so the scaler skips the
        // step and no weight changes: not divergence. (The running sum stays non-finite for the
        // rest of the epoch; the weights are checked at its end.)
        (void)step_skipped;
        if (g->scaler) return false;
        diverge(g, epoch, i + 1, isnan(sum) ? "the loss is NaN" : "the loss is infinite", true);
        return true;
    }
    return false;
}

static void read_slots(cg_guard *g, int64_t from, int64_t to) {
    if (to <= from) return;
    cg_device_copy(cg_cpu(), g->host + 2 * from, g->params->device, g->slots + 2 * from,
                   (size_t)(to - from) * 2 * sizeof(float));
}

bool cg_guard_should_stop(cg_guard *g, long epoch) {
    if (caught) return true;
    bool each_step = g->params->device.type == CG_CPU || cg_anomaly_enabled();
    if (!each_step || g->step == 0 || g->step > g->capacity) return false;
    int64_t i = g->step - 1;
    read_slots(g, i, i + 1);
    if (check_slots(g, epoch, i, i + 1)) return true;
    // Anomaly mode without a scaler: any non-finite output or gradient is divergence, even when
    // the loss is still finite (a NaN gradient reaches the loss one step later).
    char anomaly[512];
    if (!g->scaler && cg_anomaly_report(anomaly, sizeof anomaly)) {
        diverge(g, epoch, g->step, "a non-finite value in the step", true);
        return true;
    }
    return false;
}

// The first non-finite weight: false when all are finite; else the tensor and index in buf.
static bool weights_finite(cg_guard *g, float *host, char *buf, size_t size) {
    cg_params *p = g->params;
    cg_device_copy(cg_cpu(), host, p->device, p->values, (size_t)p->numel * sizeof(float));
    for (int t = 0; t < p->count; t++) {
        const cg_tensor *w = p->tensors[t];
        const float *v = host + p->offsets[t];
        for (int64_t k = 0; k < w->numel; k++)
            if (!isfinite(v[k])) {
                snprintf(buf, size, "weight '%s' [%lld] is %s", w->name, (long long)k,
                         isnan(v[k]) ? "NaN" : "infinite");
                return false;
            }
    }
    return true;
}

bool cg_guard_epoch_end(cg_guard *g, long epoch, int64_t steps) {
    if (g->diverged) return false;
    if (steps > g->capacity) steps = g->capacity;
    read_slots(g, 0, steps);
    if (check_slots(g, epoch, 0, steps)) return false;
    // A dynamic scale that skipped every step has halved itself all epoch long: the gradients are not
    // finite at any scale, which is divergence. A static scale too large skips by the user's choice
    // (lesson 04), and later batches may fit: one warning, training goes on.
    bool all_skipped = g->scaler && steps > 0 && g->host[2 * (steps - 1) + 1] - g->skipped_before >= (float)steps;
    if (all_skipped && !g->amp->scaler.dynamic && !g->warned_static) {
        fprintf(stderr, "%s: the loss scaler skipped all %lld steps of epoch %ld: the static loss scale %g overflows "
                "%s (--loss-scale dynamic adapts it)\n", g->program, (long long)steps, epoch,
                (double)g->amp->scaler.init_scale, cg_precision_name(g->amp->precision));
        g->warned_static = true;
    }
    if (all_skipped && g->amp->scaler.dynamic) {
        char what[160];
        snprintf(what, sizeof what, "the loss scaler skipped all %lld steps of the epoch (inf or NaN gradients every "
                 "time): nothing was learnt", (long long)steps);
        diverge(g, epoch, steps, what, false);
        return false;
    }
    float *now = cg_xmalloc((size_t)(g->params->numel ? g->params->numel : 1) * sizeof(float));
    char where[160];
    if (!weights_finite(g, now, where, sizeof where)) {
        char what[256];
        snprintf(what, sizeof what, "%s after the epoch's last step", where);
        diverge(g, epoch, steps, what, true);
        free(now);
        return false;
    }
    free(g->good);
    g->good = now; // this epoch's weights are the last good ones
    g->good_epochs = epoch;
    g->initial_good = false;
    return caught == 0;
}

int cg_guard_finish(cg_guard *g) {
    if (g->diverged) {
        fprintf(stderr, "%s: %s\n", g->program, g->message);
        // Put the last good weights back, so that whatever is saved is finite.
        cg_device_copy(g->params->device, g->params->values, cg_cpu(), g->good,
                       (size_t)g->params->numel * sizeof(float));
        return 1;
    }
    if (caught) {
        // Interrupted mid-epoch: the weights of the step it stopped at, unless they are not finite.
        float *now = cg_xmalloc((size_t)(g->params->numel ? g->params->numel : 1) * sizeof(float));
        char where[160];
        g->interrupted_unsafe = !weights_finite(g, now, where, sizeof where);
        free(now);
        if (g->interrupted_unsafe)
            cg_device_copy(g->params->device, g->params->values, cg_cpu(), g->good,
                           (size_t)g->params->numel * sizeof(float));
        fprintf(stderr, "%s: interrupted by %s after step %lld of epoch %ld%s\n", g->program,
                caught == SIGINT ? "SIGINT" : "SIGTERM", (long long)g->step, g->epoch,
                g->interrupted_unsafe ? "; the weights there were not finite, the last good epoch's are kept" : "");
        return caught == SIGINT ? 130 : 143;
    }
    return 0;
}

bool cg_guard_can_save(const cg_guard *g) {
    if (g->diverged || g->interrupted_unsafe) return !g->initial_good; // the initial weights: nothing learnt
    return true;
}

bool cg_guard_weights_current(const cg_guard *g) { return !g->diverged && !g->interrupted_unsafe; }

long cg_guard_epochs_done(const cg_guard *g) { return g->good_epochs; }

bool cg_guard_diverged(const cg_guard *g) { return g->diverged; }

const char *cg_guard_message(const cg_guard *g) { return g->message; }

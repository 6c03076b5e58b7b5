// guard.h: what keeps a training run from ending badly, shared by the examples' training loops.
// Divergence: a non-finite loss (or, with a loss scaler, non-finite weights, or every step of an
// epoch skipped) stops training with one line naming the epoch and the step, and the weights of
// the last good epoch are put back so that what is saved is never NaN. With --detect-anomaly
// (core/anomaly.h) the line also names the first op whose output or gradient was non-finite.
// Steps the mixed-precision loss scaler skipped (inf / NaN gradients at too large a scale) are
// not divergence. Interruption: SIGINT (Ctrl-C) and SIGTERM end training at the next step
// boundary, so that the program can save (the whole training state: resume.h) and exit 130 / 143
// as a shell expects.
// How the checks cost nothing: each step's running loss sum and skipped-step count are copied on
// the device into one slot of a small buffer (capturable into a CUDA Graph); on the CPU each step
// is checked at once, on a GPU once an epoch (and each step with --detect-anomaly, which also
// turns CUDA Graphs off). It does not save anything itself: the example does, as it always has.
//
// In a training loop:
//   cg_guard *g = cg_guard_new("cnn", params, metrics, amp, steps_per_epoch, detect_anomaly);
//   cg_guard_catch_signals();
//   for each epoch:  cg_guard_epoch_begin(g, epoch);
//       for each step:  cg_guard_step_begin(g); train_step(...); cg_guard_record(g);
//                       if (cg_guard_should_stop(g, epoch)) break;        (optional: stop mid-epoch)
//       if (!cg_guard_epoch_end(g, epoch, steps)) break;
//   int status = cg_guard_finish(g);   // 0, 1 (diverged), 130 (SIGINT) or 143 (SIGTERM)
//   if (save_path && cg_guard_can_save(g)) save, with cg_guard_epochs_done(g) epochs
//   (examples/common/resume.h: the whole state when cg_guard_weights_current(g), else weights);
#ifndef CG_EXAMPLES_GUARD_H
#define CG_EXAMPLES_GUARD_H

#include "cgrad.h"

typedef struct cg_guard cg_guard;

// Watches the loss summed in metrics (metrics->sums[0]), the skipped steps of amp (NULL or an fp32
// amp: no scaler), and the weights in params. steps_per_epoch: the most steps an epoch has.
// detect_anomaly turns on core/anomaly.h. program names the example in messages.
cg_guard *cg_guard_new(const char *program, cg_params *params, const cg_metrics *metrics, const cg_amp *amp,
                       int64_t steps_per_epoch, bool detect_anomaly);
void cg_guard_free(cg_guard *g);

// From now on SIGINT and SIGTERM ask training to stop at the next step boundary instead of killing
// the process; a second signal of the same kind kills it as usual.
void cg_guard_catch_signals(void);
// The signal that asked training to stop (SIGINT or SIGTERM), or 0.
int cg_guard_signal(void);

// At the start of each epoch (the step slots start again from 0) and of each step (the anomaly
// report is cleared).
void cg_guard_epoch_begin(cg_guard *g, long epoch);
void cg_guard_step_begin(cg_guard *g);
// A resumed epoch (examples/common/resume.h) starts after `steps` steps an earlier run trained:
// their slots become finite zeros and the next cg_guard_record fills slot `steps`. Call it after
// cg_guard_epoch_begin.
void cg_guard_skip_steps(cg_guard *g, int64_t steps);
// Steps recorded in the epoch under way, those skipped by cg_guard_skip_steps included: where
// training stopped when it was interrupted mid-epoch.
int64_t cg_guard_step(const cg_guard *g);
// After each training step: the step's loss sum and skipped count go into its slot, on the device.
// Nothing is read back, so it may be captured into a CUDA Graph with the step.
void cg_guard_record(cg_guard *g);
// After cg_guard_record, outside any capture: true when training must stop now, on a signal, or
// (on the CPU, or with anomaly detection) when this step diverged.
bool cg_guard_should_stop(cg_guard *g, long epoch);
// At the end of an epoch of `steps` steps: every step's slot and the weights are checked; good
// weights are kept (host copy) as the last good ones. False when training must stop (diverged, or
// a signal).
bool cg_guard_epoch_end(cg_guard *g, long epoch, int64_t steps);

// After the loop: prints the one-line reason on stderr when training diverged or was interrupted,
// puts the last good weights back into params when it diverged, and returns the exit status: 0, 1
// (diverged), 130 (SIGINT) or 143 (SIGTERM).
int cg_guard_finish(cg_guard *g);
// Whether params now hold weights worth saving: training finished, was interrupted with finite
// weights, or diverged after at least one good epoch (whose weights are back).
bool cg_guard_can_save(const cg_guard *g);
// Whether params hold the weights of the step training stopped at (it finished, or was
// interrupted with finite weights), so that the rest of the training state (optimizer moments,
// generators) goes with them; false when cg_guard_finish put the last good epoch's back.
bool cg_guard_weights_current(const cg_guard *g);
// Epochs whose weights params hold (all of them when training finished; the good ones otherwise).
long cg_guard_epochs_done(const cg_guard *g);
// True when training diverged; the message (one line) is then in cg_guard_message.
bool cg_guard_diverged(const cg_guard *g);
const char *cg_guard_message(const cg_guard *g);

#endif

// resume.h: checkpoints that resume, for cnn's training loop. --save PATH writes the weights to
// PATH (PyTorch's names: PyTorch, --load and quantize read it) and, beside it, PATH.state: the
// whole training state (core/train/train_state.h: weights and buffers again, optimizer moments and
// step count, loss scaler, the epoch's running metrics, the loader's generators and position,
// epoch, step, the log's clock, the run's settings). --save-every N saves every N epochs; Ctrl-C and
// SIGTERM save where training stopped (guard.h stops it at a step boundary); --resume PATH reads
// PATH.state and continues, so that a run stopped and resumed ends with the same bits as one
// that never stopped (same device, same --threads). --load PATH reads weights alone (cnn's or
// PyTorch's safetensors). Not the training loop and not the signals: cnn and guard.h.
//
// Why two files. A state must be written by one rename to be atomic, and PyTorch's
// load_state_dict(strict=True) refuses a file holding optimizer tensors. So PATH.state is complete
// on its own (it has its own copy of the weights) and is written first, then PATH, each by a
// rename (core/train/checkpoint.h): a crash between the two leaves both whole, the state one save
// newer, and --resume reads PATH.state alone. A run that diverges writes PATH (the last good
// epoch's weights) but never PATH.state, so the last whole state is kept.
//
// In a training loop:
//   r = cg_resume_new("cnn", params, buffers, model, dataset, classes, C, H, W);
//   cg_resume_setting(r, "--batch-size", "%ld", batch) ...      (every setting that must not change)
//   --load: cg_resume_load_weights(r, path);  --resume: cg_resume_check(r, path, epochs, log, &at);
//   open the log;  cg_resume_continue_log(r, log);   (--resume: the earlier rows again)
//   ... make the optimizer, loaders, amp, metrics ...;  cg_resume_attach(r, o, amp, loader, metrics);
//   more to save (a schedule's numbers, a model's dropout generators), before the restore:
//       cg_train_state_add_*(cg_resume_state(r), ...)   (its settings: cg_resume_setting, before the check)
//   --resume: cg_resume_restore(r, &at);
//   for (epoch = at.epochs_done + 1; ...) { step = cg_resume_epoch_begin(r, guard, epoch, &images);
//       ... steps ...; log the epoch;  cg_resume_epoch_end(r, epoch, seconds, save, every, epochs); }
//   cg_resume_save_final(r, guard, save, status, seconds, quiet);
#ifndef CG_EXAMPLES_RESUME_H
#define CG_EXAMPLES_RESUME_H

#include "cgrad.h"
#include "core/train/train_state.h"
#include "examples/common/epoch_log.h"
#include "examples/common/guard.h"

typedef struct cg_resume cg_resume;

// Where a saved run stopped.
typedef struct {
    long epochs_done; // whole epochs trained
    int64_t step;     // steps of epoch epochs_done + 1 trained before the stop (0: at an epoch's end)
    double seconds;   // the log's clock then: seconds since the run first started, over every resume
} cg_resume_point;

// A run of `model` on `dataset` (classes, images C x H x W) whose weights are params and buffers
// (NULL: none). These are written in the weights' metadata ("model", "dataset", "classes",
// "input": "1x28x28") and are settings of the state; --load checks them when the file has them.
cg_resume *cg_resume_new(const char *program, cg_params *params, cg_params *buffers, const char *model,
                         const char *dataset, int classes, int64_t C, int64_t H, int64_t W);
void cg_resume_free(cg_resume *r);
// The state registry, for what else a program saves (a learning-rate schedule: see the hook in
// core/train/train_state.h).
cg_train_state *cg_resume_state(cg_resume *r);
// A setting that a resumed run must share (printf-style value), e.g. ("--batch-size", "%ld", 128).
void cg_resume_setting(cg_resume *r, const char *flag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// The flags of saving, resuming and loading together: --load or --resume (not both), --save-every
// only with --save, --eval only with --load or --resume and without --save, --save-every or --log.
// Errors: CG_ERR_ARG naming the flags.
cg_status cg_resume_check_flags(const char *load, const char *resume, const char *save, long save_every,
                                const char *log, bool eval);

// The state file of a --save path: PATH.state (size bytes).
void cg_resume_state_path(const char *path, char *out, size_t size);
// Whether --save PATH can be written, PATH and PATH.state (cg_checkpoint_check_writable), before
// training. Errors: those of cg_checkpoint_check_writable.
cg_status cg_resume_check_writable(const char *path);

// --load PATH: the weights (and buffers) of a safetensors file, cnn's or PyTorch's. Its metadata,
// when it has one, must name this model, class count and image shape; then every tensor must
// match by name and shape (core/train/checkpoint.h). A training state file is refused (--resume
// reads it). Errors: one line naming the file and what differs; nothing is changed on error.
cg_status cg_resume_load_weights(cg_resume *r, const char *path);

// --resume PATH, before the run writes anything: finds the state (PATH.state, or PATH itself when
// it is one), checks it against every setting given so far, checks that epochs (--epochs) asks for
// more than it has trained, and fills *at. log_path (--log, or NULL): the rows of that log up to
// the epochs trained are kept, to be written again by cg_resume_continue_log.
// Errors: CG_ERR_ARG for a setting that differs or too few --epochs; CG_ERR_IO / CG_ERR_FORMAT
// for a missing state ("x.state: ... (x holds weights alone: --load starts a new run from them)"),
// a truncated or foreign file.
cg_status cg_resume_check(cg_resume *r, const char *path, long epochs, const char *log_path, cg_resume_point *at);

// The training objects, once made (amp and metrics may be NULL): saved from now on, and restored
// by cg_resume_restore. loader: the training loader.
void cg_resume_attach(cg_resume *r, cg_optimizer *o, cg_amp *amp, cg_loader *loader, cg_metrics *metrics);
// --resume, after cg_resume_check and cg_resume_attach: every registered piece from the state,
// all or nothing; amp's 16-bit weights refreshed; *at as cg_resume_check's, with the saved clock.
// Errors: as cg_train_state_load.
cg_status cg_resume_restore(cg_resume *r, cg_resume_point *at);
// Right after the log is opened (cg_epoch_log_open replaced the file): the rows cg_resume_check
// kept are written again. Nothing without --resume and --log.
cg_status cg_resume_continue_log(cg_resume *r, cg_epoch_log *log);

// Starts epoch `epoch`: cg_guard_epoch_begin, the metrics reset, the loader's epoch started (its
// generators noted first: a state saved in this epoch holds them). In the epoch a resume stopped
// in, the metrics are kept and the batches trained before the stop are drawn again and passed
// over (their augmentation draws too, so every later draw is the same). Returns the steps
// already trained in the epoch, and in *images its images.
int64_t cg_resume_epoch_begin(cg_resume *r, cg_guard *g, long epoch, int64_t *images);
// After epoch `epoch`'s row is logged: the epoch counts as trained (seconds: the log's clock).
// With path set, every > 0 and epoch a multiple of every, below last (the final save is
// cg_resume_save_final's), the whole state and the weights are saved. Errors: the save's.
cg_status cg_resume_epoch_end(cg_resume *r, long epoch, double seconds, const char *path, long every, long last);
// After cg_guard_finish: with path set, saves what can be saved and says so (status: its
// return). Training finished or interrupted with finite weights: the whole state (where it
// stopped, mid-epoch included) and the weights; diverged: the last good epoch's weights alone,
// a state file left as it was; nothing learnt: nothing, a file there left as it was.
// Errors: the save's.
cg_status cg_resume_save_final(cg_resume *r, const cg_guard *g, const char *path, int status, double seconds,
                               bool quiet);

#endif

// train_state.h: the whole state of a training run in one safetensors file, so that a run stopped
// anywhere (at an epoch's end, or between two steps on Ctrl-C) continues exactly as if it had never
// stopped: the model's blocks (weights, BatchNorm buffers), the optimizer's moments and step count,
// the loss scaler, other device tensors (an epoch's running metrics), the random generators'
// (seed, stream, offset), whole numbers (epoch, step, loader position), real numbers (the log's
// clock, a learning-rate schedule's state), and the settings that make the run what it is, which a
// resumed run must share. It does not decide when to save or what the numbers mean: the training
// program registers what it has and says when (examples/common/resume.h for cnn).
//
// The file is a safetensors checkpoint (core/train/checkpoint.h), written atomically, whose tensors
// are, for a model with parameters c1.weight, ...:
//   c1.weight, ...                        each block's tensors under their own (PyTorch's) names
//   optimizer.exp_avg.c1.weight           Adam / AdamW: m (PyTorch's optimizer state names)
//   optimizer.exp_avg_sq.c1.weight        Adam / AdamW: v
//   optimizer.momentum_buffer.c1.weight   SGD with momentum
//   optimizer.step                        () the optimizer's step count (steps applied)
//   grad_scaler.scale, grad_scaler.growth_tracker, grad_scaler.skipped_steps, grad_scaler.steps
//                                         () the loss scaler (core/train/amp.h); fp32 runs too
//   NAME                                  each tensor given to cg_train_state_add_tensor
// all F32, and whose "__metadata__" holds (every value a string):
//   "cgrad.state": "1"                    the version of this layout
//   "setting.FLAG": "VALUE"               each setting (cg_train_state_set), e.g. "setting.--seed": "0"
//   "rng.NAME": "SEED STREAM OFFSET"      each generator, decimal (core/rng.h)
//   "int.NAME": "123"                     each whole number, decimal
//   "float.NAME": "0.10000000000000001"   each real number, printed with 17 significant digits
//                                         (reads back to the same double)
// plus the caller's own metadata.
//
// Hook for what a training program adds later, e.g. a learning-rate schedule that keeps its state
// in host numbers: cg_train_state_add_float(s, "schedule.lr", &lr); or in device memory:
// cg_train_state_add_tensor(s, "schedule.lr", lr_tensor); and its settings with cg_train_state_set.
// A model with Dropout adds each layer's generator: cg_train_state_add_rng(s, "dropout.1", &rng).
#ifndef CG_TRAIN_STATE_H
#define CG_TRAIN_STATE_H

#include "core/rng.h"
#include "core/train/amp.h"
#include "core/train/optim.h"

typedef struct cg_train_state cg_train_state;

cg_train_state *cg_train_state_new(void);
// Frees the registry and the tensor headers it made; nothing registered is freed.
void cg_train_state_free(cg_train_state *s);

// What the state holds. Each pointer is kept: it is read when saving and written when loading, so
// it must stay valid (and a tensor's data where it is) while s is used.
// A block of tensors saved under their own names (a model's parameters, its buffers).
void cg_train_state_add_block(cg_train_state *s, cg_params *block);
// The optimizer's moments (of every parameter of its block, named as above) and step count.
void cg_train_state_add_optimizer(cg_train_state *s, cg_optimizer *o);
// The loss scaler's scale, growth tracker, skipped and total steps.
void cg_train_state_add_amp(cg_train_state *s, cg_amp *a);
// Any F32 tensor, saved as NAME (e.g. "metrics.sums").
void cg_train_state_add_tensor(cg_train_state *s, const char *name, cg_tensor *t);
// A generator: its offset is saved and restored; its seed and stream must be the file's.
void cg_train_state_add_rng(cg_train_state *s, const char *name, cg_rng *r);
void cg_train_state_add_int(cg_train_state *s, const char *name, int64_t *v);
void cg_train_state_add_float(cg_train_state *s, const char *name, double *v);
// A setting of this run (name, e.g. "--batch-size", and value, both copied; set again to replace):
// a file saved with another value, without it, or with a setting this run lacks is refused.
void cg_train_state_set(cg_train_state *s, const char *name, const char *value);

// Writes everything registered to path, atomically (cg_checkpoint_save_blocks), with the caller's
// n_metadata key/value pairs added to the metadata. Errors: those of cg_checkpoint_save_blocks.
cg_status cg_train_state_save(const cg_train_state *s, const char *path, const char *const *metadata,
                              int n_metadata);

// Whether path is a training state file (its metadata has "cgrad.state"). Errors: those of
// cg_checkpoint_read_all_metadata (a missing file, another format).
cg_status cg_train_state_probe(const char *path, bool *is_state);

// Reads path's metadata and checks it against what is registered, changing nothing: the version,
// every setting (the message names it and both values: "training state 'x': saved with
// --batch-size 32, this run has --batch-size 64"), each generator's seed and stream, and that
// every whole and real number is there and well formed. Errors: CG_ERR_ARG for a setting or
// generator that differs; CG_ERR_FORMAT for a file that is not a training state, of another
// version, or with a value missing or malformed; those of cg_checkpoint_read_all_metadata.
cg_status cg_train_state_check(const cg_train_state *s, const char *path);

// The whole number "int.NAME" of path's metadata, read alone (nothing else is checked), for what
// a program must know before it makes anything (the epochs already trained). Errors: those of
// cg_checkpoint_read_all_metadata; CG_ERR_FORMAT when it is missing or not a whole number.
cg_status cg_train_state_peek_int(const char *path, const char *name, int64_t *value);

// cg_train_state_check, then every tensor (strictly by name and shape, the whole file checked
// before anything is copied: core/train/checkpoint.h), then the numbers and generator offsets.
// All or nothing: on error nothing registered has changed.
cg_status cg_train_state_load(cg_train_state *s, const char *path);

#endif

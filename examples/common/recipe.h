// recipe.h: cnn's training recipe as flags with PyTorch's names and defaults, the same as the
// PyTorch twin's (bench/torch_train.py): the optimizer (SGD with momentum and Nesterov, Adam,
// AdamW, weight decay L2 or decoupled, BatchNorm and biases spared or not), the learning-rate
// schedule with warm-up (core/train/schedule.h, written to the device before each step), label
// smoothing, gradient clipping (core/train/clip.h), the training augmentation (datasets/loader.h)
// and test-time augmentation with flips; the evaluation with top-1, top-5 and the confusion
// matrix. Not the model, the data or the loop: the example keeps those.
//
// In a program:
//   options: longopts gets CG_RECIPE_LONGOPTS; a getopt_long code c with cg_recipe_handles(c)
//            goes to cg_recipe_option; after the loop cg_recipe_finish; --help prints cg_recipe_usage.
//   setup:   cg_recipe_check_data (flags against the images), cg_recipe_start (optimizer, schedule,
//            clipper), cg_recipe_augment (the training loader), cg_recipe_describe (one line).
//   a step:  cg_recipe_set_lr(r, step) before the step is run or replayed (never inside a
//            capture); in the step: loss = cg_recipe_loss(...), backward, cg_recipe_clip, step.
//   eval:    cg_recipe_evaluate (TTA, top-5, confusion); at the end cg_recipe_write_confusion.
#ifndef CG_EXAMPLES_RECIPE_H
#define CG_EXAMPLES_RECIPE_H

#include "cgrad.h"
#include "examples/common/resume.h"

#include <getopt.h>
#include <stdio.h>

// getopt_long codes of the recipe's flags (above any one-letter code).
enum {
    CG_RECIPE_OPT_FIRST = 0x1000,
    CG_RECIPE_OPT_OPTIMIZER = CG_RECIPE_OPT_FIRST,
    CG_RECIPE_OPT_LR,
    CG_RECIPE_OPT_MOMENTUM,
    CG_RECIPE_OPT_NESTEROV,
    CG_RECIPE_OPT_WEIGHT_DECAY,
    CG_RECIPE_OPT_DECOUPLED,
    CG_RECIPE_OPT_NO_DECAY_BN_BIAS,
    CG_RECIPE_OPT_SCHEDULE,
    CG_RECIPE_OPT_WARMUP,
    CG_RECIPE_OPT_STEP_SIZE,
    CG_RECIPE_OPT_GAMMA,
    CG_RECIPE_OPT_MIN_LR,
    CG_RECIPE_OPT_LABEL_SMOOTHING,
    CG_RECIPE_OPT_CLIP,
    CG_RECIPE_OPT_AUGMENT,
    CG_RECIPE_OPT_CROP_PADDING,
    CG_RECIPE_OPT_PADDING_MODE,
    CG_RECIPE_OPT_FLIP,
    CG_RECIPE_OPT_CUTOUT,
    CG_RECIPE_OPT_TTA,
    CG_RECIPE_OPT_CONFUSION,
    CG_RECIPE_OPT_PRESET,
    CG_RECIPE_OPT_LAST
};

// The recipe's entries of a getopt_long table (put them before the terminating {0, 0, 0, 0}).
#define CG_RECIPE_LONGOPTS                                                                              \
    {"optimizer", required_argument, 0, CG_RECIPE_OPT_OPTIMIZER}, {"lr", required_argument, 0, CG_RECIPE_OPT_LR}, \
        {"momentum", required_argument, 0, CG_RECIPE_OPT_MOMENTUM},                                     \
        {"nesterov", no_argument, 0, CG_RECIPE_OPT_NESTEROV},                                           \
        {"weight-decay", required_argument, 0, CG_RECIPE_OPT_WEIGHT_DECAY},                             \
        {"decoupled-weight-decay", no_argument, 0, CG_RECIPE_OPT_DECOUPLED},                            \
        {"no-decay-bn-bias", no_argument, 0, CG_RECIPE_OPT_NO_DECAY_BN_BIAS},                           \
        {"lr-schedule", required_argument, 0, CG_RECIPE_OPT_SCHEDULE},                                  \
        {"warmup", required_argument, 0, CG_RECIPE_OPT_WARMUP},                                         \
        {"step-size", required_argument, 0, CG_RECIPE_OPT_STEP_SIZE},                                   \
        {"gamma", required_argument, 0, CG_RECIPE_OPT_GAMMA},                                           \
        {"min-lr", required_argument, 0, CG_RECIPE_OPT_MIN_LR},                                         \
        {"label-smoothing", required_argument, 0, CG_RECIPE_OPT_LABEL_SMOOTHING},                       \
        {"clip-grad-norm", required_argument, 0, CG_RECIPE_OPT_CLIP},                                   \
        {"augment", required_argument, 0, CG_RECIPE_OPT_AUGMENT},                                       \
        {"crop-padding", required_argument, 0, CG_RECIPE_OPT_CROP_PADDING},                            \
        {"padding-mode", required_argument, 0, CG_RECIPE_OPT_PADDING_MODE},                             \
        {"flip", required_argument, 0, CG_RECIPE_OPT_FLIP}, {"cutout", required_argument, 0, CG_RECIPE_OPT_CUTOUT}, \
        {"tta", no_argument, 0, CG_RECIPE_OPT_TTA}, {"confusion", required_argument, 0, CG_RECIPE_OPT_CONFUSION}, \
        {"recipe", required_argument, 0, CG_RECIPE_OPT_PRESET}

typedef struct {
    // the optimizer
    cg_optim_kind optimizer; // adam (default), adamw or sgd
    double lr;               // < 0: the default (1e-3 for adam and adamw, 1e-2 for sgd)
    double momentum;         // SGD, default 0
    bool nesterov;
    double weight_decay;     // < 0: the default (0; 0.01 for adamw, torch.optim.AdamW's)
    bool decoupled;          // decoupled weight decay for SGD and Adam too (AdamW always)
    bool no_decay_bn_bias;   // no weight decay on parameters of one dimension
    // the schedule
    cg_schedule_kind schedule;
    double warmup, step_size, gamma, min_lr;
    // the loss and the gradients
    double label_smoothing; // 0: none
    double clip_grad_norm;  // 0: none
    // augmentation
    int augment;            // -1: the data set's default, 0 off, 1 on
    cg_augmentation aug;    // crop padding 4, zeros, flip random, no cutout by default
    bool tta;
    int tta_level;          // 0 none, 1 mirror (--tta), 2 mirror and 1-pixel translations (airbench94)
    const char *confusion_path;
    // --recipe airbench94: airbench 0.1.8's whole recipe for the fast network (cg_recipe_usage)
    bool airbench94;
    int64_t batch_size;     // images per step: airbench94's rates depend on it (the program sets it)
    bool momentum_given, crop_padding_given;
    int flags_given; // recipe flags on the command line, --confusion aside
    int other_flags; // of those, the ones --recipe airbench94 sets itself (not --augment, --recipe)
} cg_recipe;

// airbench 0.1.8's hyperparameters (airbench/lib_airbench94.py), per 1024 images in its
// "decoupled" form, and the rates of plain SGD with a MEAN loss that they come to.
#define CG_AIRBENCH_BATCH 1024
#define CG_AIRBENCH_EPOCHS 9.9
#define CG_AIRBENCH_LR 11.5
#define CG_AIRBENCH_MOMENTUM 0.85
#define CG_AIRBENCH_WEIGHT_DECAY 0.0153
#define CG_AIRBENCH_BIAS_SCALER 64.0
#define CG_AIRBENCH_LABEL_SMOOTHING 0.2
#define CG_AIRBENCH_WHITEN_BIAS_EPOCHS 3
#define CG_AIRBENCH_TRANSLATE 2
#define CG_AIRBENCH_LOOKAHEAD_EVERY 5

// The defaults (above).
void cg_recipe_init(cg_recipe *r);
// Whether a getopt_long code is one of the recipe's.
bool cg_recipe_handles(int code);
// One flag's value (arg NULL for the flags without one). Errors: CG_ERR_ARG naming the flag.
cg_status cg_recipe_option(cg_recipe *r, int code, const char *arg);
// After every flag: the defaults that depend on others, and the combinations PyTorch refuses
// (--nesterov without --momentum, --momentum with adam, --warmup with onecycle). Errors: CG_ERR_ARG.
cg_status cg_recipe_finish(cg_recipe *r);
// The recipe's lines of --help.
void cg_recipe_usage(FILE *f);

// The recipe's settings that a resumed run must share (examples/common/resume.h): --optimizer, --lr,
// --momentum, --nesterov, the weight decay's flags, the schedule's (and, for cosine, linear and
// onecycle, whose rate depends on the run's length, --epochs: epochs 0 leaves it out, for --eval),
// --label-smoothing, --clip-grad-norm and the augmentation's. Not --tta and --confusion (evaluation).
void cg_recipe_settings(const cg_recipe *r, cg_resume *rs, bool dataset_augments, long epochs);

// Against the data: augmentation flags when augmentation is off, reflection padding not smaller
// than the images, --confusion's path not writable. dataset_augments: the data set's default.
// Errors: CG_ERR_ARG / CG_ERR_IO naming the flag.
cg_status cg_recipe_check_data(const cg_recipe *r, const char *dataset, bool dataset_augments, int64_t H, int64_t W);

// What a run of the recipe holds.
typedef struct {
    const cg_recipe *recipe;
    cg_optimizer *optimizer;
    cg_schedule schedule;
    cg_grad_clipper *clipper; // NULL without --clip-grad-norm
    double lr_now;            // the learning rate of the last cg_recipe_set_lr
    cg_tensor *mirror;        // TTA: the mirrored batch (made at the first evaluation)
    cg_tensor *shifted;       // TTA level 2: a translated batch
    int64_t total_steps;      // the run's steps (the schedule's)
    int tta_level;            // the evaluation's (the recipe's; a program may lower it for the epochs
                              // before the last, as airbench evaluates them without TTA)
    // airbench94
    cg_lookahead *lookahead;
    int whiten_bias_group;    // the optimizer group of whiten.bias (-1: none)
    double lr_sgd, decay_sgd; // the rate and L2 weight decay of plain SGD on the mean loss (group 0)
} cg_recipe_run;

// The optimizer over params, the schedule over ceil(epochs x steps_per_epoch) steps (a fraction of
// an epoch with --recipe airbench94 only), the clipper; with airbench94 the parameter groups and
// the Lookahead over params and buffers (BatchNorm's statistics; NULL: none), started from their
// values now.
cg_recipe_run *cg_recipe_start(const cg_recipe *r, cg_params *params, cg_params *buffers, int64_t steps_per_epoch,
                               double epochs);
void cg_recipe_free(cg_recipe_run *run);
// The training augmentation on loader, when on (dataset_augments: the data set's default).
void cg_recipe_augment(const cg_recipe *r, cg_loader *loader, bool dataset_augments);
// One line: optimizer, weight decay, schedule, loss, clipping, augmentation, TTA (cnn prints it
// when a recipe flag was given: flags_given).
void cg_recipe_describe(const cg_recipe_run *run, bool augmenting, char *text, size_t size);

// The learning rate of step `step` (0-based over the run) into the optimizer's device memory.
// Between steps, outside any CUDA Graph capture; a replay then reads it.
void cg_recipe_set_lr(cg_recipe_run *run, int64_t step);
// At the start of epoch `epoch` (1-based): airbench94 freezes the whitening layer's bias after
// its first 3 epochs (its group's rate set to 0, on the device). Between steps.
void cg_recipe_epoch_begin(cg_recipe_run *run, long epoch);
// After step `steps_done` (1-based over the run) has been queued: airbench94's Lookahead every 5
// steps (decay 0.95^5 (steps_done / T)^3), and at the last step the weights set to the average.
// Returns true when the run's steps are done (the caller stops training). Between steps. amp (or
// NULL): mixed precision's 16-bit weights, cast again from the averaged ones.
bool cg_recipe_step_end(cg_recipe_run *run, int64_t steps_done, cg_amp *amp);
// The training loss: softmax cross-entropy with the recipe's label smoothing. logits (N, K) f32.
cg_tensor *cg_recipe_loss(const cg_recipe_run *run, cg_tape *tape, cg_tensor *logits, cg_tensor *labels);
// Gradient clipping, when asked: after the backward (and the unscale), before the step.
void cg_recipe_clip(cg_recipe_run *run);

typedef struct {
    double loss, top1, top5;
} cg_eval_result;

// Mean loss (plain cross-entropy, no smoothing, as the twin reports it), top-1 and top-5 over a
// whole data set, without recording; with --tta the logits are the mean of those of each image and
// of its mirror image; at TTA level 2 (airbench94) 0.5 of that plus 0.25 of the same for the image
// moved by one pixel down-right and 0.25 for it moved up-left (reflected edges), airbench's
// infer_mirror_translate. confusion (or NULL) gets the counts added. The model is put back in training
// mode at the end.
// The evaluation logits (N, K) f32 of a batch x (N, C, H, W) at the run's TTA level (above), in the
// tape's arena; the model in evaluation mode and recording off are the caller's.
cg_tensor *cg_recipe_eval_logits(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_tensor *x);
cg_eval_result cg_recipe_evaluate(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_loader *loader,
                                  cg_metrics *metrics, cg_confusion *confusion);

// The confusion matrix to --confusion's path (nothing without it), and, unless quiet, each class's
// accuracy (all of them up to 20 classes, else the 5 worst and the 5 best). Errors: CG_ERR_IO.
cg_status cg_recipe_write_confusion(const cg_recipe *r, const cg_confusion *confusion, char *const *names,
                                    bool quiet);

#endif

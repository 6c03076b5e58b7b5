// recipe.c: the training recipe's flags, checks and calls (recipe.h); the arithmetic is in
// core/train (optim, schedule, clip, metrics) and the kernels.
#include "examples/common/recipe.h"
#include "examples/common/cli.h"
#include "core/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cg_recipe_init(cg_recipe *r) {
    *r = (cg_recipe){.optimizer = CG_OPTIM_ADAM,
                     .lr = -1.0,
                     .weight_decay = -1.0,
                     .schedule = CG_SCHEDULE_CONSTANT,
                     .step_size = 30.0,
                     .gamma = 0.1,
                     .augment = -1,
                     .aug = {.crop_padding = 4, .reflect = false, .flip = CG_FLIP_RANDOM, .cutout = 0}};
}

bool cg_recipe_handles(int code) { return code >= CG_RECIPE_OPT_FIRST && code < CG_RECIPE_OPT_LAST; }

static cg_status one_of(const char *flag, const char *arg, const char *const *names, int count, int *out) {
    for (int i = 0; i < count; i++)
        if (strcmp(arg, names[i]) == 0) {
            *out = i;
            return cg_ok();
        }
    char list[128] = "";
    for (int i = 0; i < count; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i == 0 ? "" : i == count - 1 ? " or " : ", ",
                 names[i]);
    return cg_error(CG_ERR_ARG, "%s: '%s' is not %s", flag, arg, list);
}

cg_status cg_recipe_option(cg_recipe *r, int code, const char *arg) {
    long n = 0;
    int choice = 0;
    cg_status s = cg_ok();
    if (code != CG_RECIPE_OPT_CONFUSION) r->flags_given++;
    if (code != CG_RECIPE_OPT_CONFUSION && code != CG_RECIPE_OPT_AUGMENT && code != CG_RECIPE_OPT_PRESET)
        r->other_flags++;
    switch (code) {
    case CG_RECIPE_OPT_PRESET: {
        static const char *const names[] = {"airbench94"};
        if ((s = one_of("--recipe", arg, names, 1, &choice)).code == CG_OK) r->airbench94 = true;
        return s;
    }
    case CG_RECIPE_OPT_OPTIMIZER: {
        static const char *const names[] = {"adam", "adamw", "sgd"};
        static const cg_optim_kind kinds[] = {CG_OPTIM_ADAM, CG_OPTIM_ADAMW, CG_OPTIM_SGD};
        if ((s = one_of("--optimizer", arg, names, 3, &choice)).code == CG_OK) r->optimizer = kinds[choice];
        return s;
    }
    case CG_RECIPE_OPT_LR: return cg_cli_float("--lr", arg, 1e-12, 1e3, &r->lr);
    case CG_RECIPE_OPT_MOMENTUM: r->momentum_given = true; return cg_cli_float("--momentum", arg, 0.0, 1.0, &r->momentum);
    case CG_RECIPE_OPT_NESTEROV: r->nesterov = true; return cg_ok();
    case CG_RECIPE_OPT_WEIGHT_DECAY: return cg_cli_float("--weight-decay", arg, 0.0, 10.0, &r->weight_decay);
    case CG_RECIPE_OPT_DECOUPLED: r->decoupled = true; return cg_ok();
    case CG_RECIPE_OPT_NO_DECAY_BN_BIAS: r->no_decay_bn_bias = true; return cg_ok();
    case CG_RECIPE_OPT_SCHEDULE: return cg_schedule_parse(arg, &r->schedule);
    case CG_RECIPE_OPT_WARMUP: return cg_cli_float("--warmup", arg, 0.0, 1e5, &r->warmup);
    case CG_RECIPE_OPT_STEP_SIZE: return cg_cli_float("--step-size", arg, 1e-6, 1e5, &r->step_size);
    case CG_RECIPE_OPT_GAMMA: return cg_cli_float("--gamma", arg, 0.0, 10.0, &r->gamma);
    case CG_RECIPE_OPT_MIN_LR: return cg_cli_float("--min-lr", arg, 0.0, 1e3, &r->min_lr);
    case CG_RECIPE_OPT_LABEL_SMOOTHING:
        if ((s = cg_cli_float("--label-smoothing", arg, 0.0, 1.0, &r->label_smoothing)).code == CG_OK &&
            r->label_smoothing >= 1.0)
            s = cg_error(CG_ERR_ARG, "--label-smoothing: %s must be below 1 (1 would ignore the labels)", arg);
        return s;
    case CG_RECIPE_OPT_CLIP: return cg_cli_float("--clip-grad-norm", arg, 0.0, 1e9, &r->clip_grad_norm);
    case CG_RECIPE_OPT_AUGMENT: {
        static const char *const names[] = {"off", "on"};
        if ((s = one_of("--augment", arg, names, 2, &choice)).code == CG_OK) r->augment = choice;
        return s;
    }
    case CG_RECIPE_OPT_CROP_PADDING:
        r->crop_padding_given = true;
        if ((s = cg_cli_int("--crop-padding", arg, 0, 64, &n)).code == CG_OK) r->aug.crop_padding = (int)n;
        return s;
    case CG_RECIPE_OPT_PADDING_MODE: {
        static const char *const names[] = {"zeros", "reflect"};
        if ((s = one_of("--padding-mode", arg, names, 2, &choice)).code == CG_OK) r->aug.reflect = choice == 1;
        return s;
    }
    case CG_RECIPE_OPT_FLIP: {
        static const char *const names[] = {"random", "alternate", "off"};
        static const cg_flip_mode modes[] = {CG_FLIP_RANDOM, CG_FLIP_ALTERNATE, CG_FLIP_OFF};
        if ((s = one_of("--flip", arg, names, 3, &choice)).code == CG_OK) r->aug.flip = modes[choice];
        return s;
    }
    case CG_RECIPE_OPT_CUTOUT:
        if ((s = cg_cli_int("--cutout", arg, 0, 1024, &n)).code == CG_OK) r->aug.cutout = (int)n;
        return s;
    case CG_RECIPE_OPT_TTA: r->tta = true, r->tta_level = 1; return cg_ok();
    case CG_RECIPE_OPT_CONFUSION: return cg_cli_path("--confusion", arg, &r->confusion_path);
    }
    CG_CHECK(false, "recipe: option code %d is not the recipe's", code);
    return cg_ok();
}

cg_status cg_recipe_finish(cg_recipe *r) {
    if (r->airbench94) {
        if (r->other_flags > 0)
            return cg_error(CG_ERR_ARG, "--recipe airbench94 sets the optimizer, schedule, loss, augmentation and "
                            "TTA itself: of the recipe's flags only --augment and --confusion go with it");
        r->optimizer = CG_OPTIM_SGD;
        r->momentum = CG_AIRBENCH_MOMENTUM;
        r->momentum_given = r->nesterov = true;
        r->lr = CG_AIRBENCH_LR; // per 1024 images; the SGD rates are made in cg_recipe_start
        r->weight_decay = CG_AIRBENCH_WEIGHT_DECAY;
        r->schedule = CG_SCHEDULE_TRIANGLE;
        r->label_smoothing = CG_AIRBENCH_LABEL_SMOOTHING;
        r->aug = (cg_augmentation){.crop_padding = CG_AIRBENCH_TRANSLATE, .reflect = true, .flip = CG_FLIP_ALTERNATE};
        r->tta = true;
        r->tta_level = 2;
        return cg_ok();
    }
    bool sgd = r->optimizer == CG_OPTIM_SGD;
    if (r->lr < 0) r->lr = sgd ? 1e-2 : 1e-3;
    if (r->weight_decay < 0) r->weight_decay = r->optimizer == CG_OPTIM_ADAMW ? 1e-2 : 0.0;
    if (!sgd && (r->momentum_given || r->nesterov))
        return cg_error(CG_ERR_ARG, "%s: SGD's (with --optimizer sgd); Adam's betas are fixed at (0.9, 0.999)",
                        r->momentum_given ? "--momentum" : "--nesterov");
    if (r->nesterov && r->momentum <= 0.0)
        return cg_error(CG_ERR_ARG, "--nesterov needs --momentum above 0 (torch.optim.SGD refuses it too)");
    if (r->schedule == CG_SCHEDULE_ONECYCLE && r->warmup > 0)
        return cg_error(CG_ERR_ARG, "--warmup does not combine with --lr-schedule onecycle (it warms up itself)");
    if (r->min_lr > r->lr && r->schedule == CG_SCHEDULE_COSINE)
        return cg_error(CG_ERR_ARG, "--min-lr: %g is above --lr %g", r->min_lr, r->lr);
    return cg_ok();
}

void cg_recipe_usage(FILE *f) {
    fprintf(f,
            "The recipe (PyTorch's names and defaults; bench/torch_train.py takes the same flags):\n"
            "  --optimizer NAME   adam (default), adamw or sgd\n"
            "  --lr X             learning rate (default 0.001 for adam and adamw, 0.01 for sgd); with a schedule,\n"
            "                     its base (onecycle: its peak)\n"
            "  --momentum X       SGD's momentum (default 0); --nesterov: Nesterov momentum\n"
            "  --weight-decay X   default 0 (0.01 for adamw): L2, added to the gradient as torch.optim.SGD and\n"
            "                     Adam do; --decoupled-weight-decay: the weights times 1 - lr x X before each\n"
            "                     step instead (as AdamW, which always does); --no-decay-bn-bias: none for\n"
            "                     BatchNorm weights and biases and every bias (parameters of one dimension)\n"
            "  --lr-schedule S    per step t of T: constant (default); step: lr x gamma^floor(epoch / step-size)\n"
            "                     (--step-size E, default 30, --gamma X, default 0.1); cosine: min-lr + (lr -\n"
            "                     min-lr)(1 + cos(pi t / T)) / 2 (--min-lr, default 0); linear: lr (1 - t / T);\n"
            "                     onecycle: torch's OneCycleLR(max_lr = lr) (up from lr / 25 over 30 %% of T,\n"
            "                     cosine, down to lr / 25 / 1e4); triangle: airbench's, lr x 0.2 at t = 0\n"
            "                     up to lr at t = int(0.23 T), down to lr x 0.07 at T, linearly. The rate is\n"
            "                     kept on the device, so CUDA\n"
            "                     Graph replays read each step's; the log's lr column is the epoch's last\n"
            "  --warmup E         E epochs (a fraction allowed) of linear warm-up, lr x (t + 1) / W over the\n"
            "                     first W = E x steps per epoch steps, the schedule then over the rest (not\n"
            "                     with onecycle)\n"
            "  --label-smoothing X  cross-entropy with label smoothing X in [0, 1) (default 0)\n"
            "  --clip-grad-norm X   scale the gradients so that their global L2 norm is at most X (default 0:\n"
            "                     off), as torch.nn.utils.clip_grad_norm_; computed on the device\n"
            "  --augment on|off   training augmentation, default on for cifar10, cifar100, tinyimagenet and\n"
            "                     folder: a random crop of the image padded by --crop-padding P pixels (default\n"
            "                     4) of --padding-mode zeros (default) or reflect (a translation by up to P\n"
            "                     pixels, airbench's), --flip random (default: each image with probability\n"
            "                     1/2), alternate (airbench's: a random half flipped in odd epochs, the\n"
            "                     other half in even ones) or off, and --cutout S (an S x S square set to 0\n"
            "                     after normalisation, centred on a random pixel, clipped at the borders;\n"
            "                     default 0: none). Drawn from Philox, the same on the CPU and the GPU\n"
            "  --tta              test-time augmentation: the mean of the logits of each test image and of\n"
            "                     its mirror image\n"
            "  --recipe airbench94  airbench 0.1.8's whole recipe for --model fast on cifar10 (batch 1024 and 9.9\n"
            "                     epochs unless --batch-size / --epochs say otherwise; the last epoch cut at\n"
            "                     ceil(9.9 x steps per epoch) steps, the last partial batch of each epoch\n"
            "                     dropped): SGD Nesterov momentum 0.85 with its rates per 1024 images, lr 11.5\n"
            "                     and weight decay 0.0153 in its decoupled form (here the rates of SGD on the\n"
            "                     mean loss: lr = 11.5 B / (1024 (1 + 1 / 0.15)), L2 decay 0.0153 / 11.5; the\n"
            "                     BatchNorm biases at 64 x the lr and 1/64 of the decay), --lr-schedule\n"
            "                     triangle, label smoothing 0.2, Lookahead (every 5 steps the weights and\n"
            "                     BatchNorm statistics set to their running average, decay 0.95^5 (t / T)^3;\n"
            "                     at the end to the average), the whitening layer's bias frozen after 3\n"
            "                     epochs, translation by 2 with reflection and alternating flips, and TTA\n"
            "                     level 2 (mirror and 1-pixel translations). Only --augment and --confusion of\n"
            "                     the recipe's flags go with it\n"
            "  --confusion PATH   at the end, the test set's confusion matrix as CSV (a header of class names,\n"
            "                     then one row per true class: the count predicted as each class), for\n"
            "                     tools/plot_confusion.py; each class's accuracy is printed too\n");
}

void cg_recipe_settings(const cg_recipe *r, cg_resume *rs, bool dataset_augments, long epochs) {
    static const char *const optimizers[] = {"sgd", "adam", "adamw"};
    static const char *const flips[] = {"off", "random", "alternate"};
    cg_resume_setting(rs, "--recipe", "%s", r->airbench94 ? "airbench94" : "none");
    cg_resume_setting(rs, "--optimizer", "%s", optimizers[r->optimizer]);
    cg_resume_setting(rs, "--lr", "%.9g", r->lr);
    cg_resume_setting(rs, "--momentum", "%.9g%s", r->momentum, r->nesterov ? " (--nesterov)" : "");
    cg_resume_setting(rs, "--weight-decay", "%.9g%s%s", r->weight_decay, r->decoupled ? " (--decoupled-weight-decay)" : "",
                      r->no_decay_bn_bias ? " (--no-decay-bn-bias)" : "");
    cg_resume_setting(rs, "--lr-schedule", "%s (--warmup %.9g, --step-size %.9g, --gamma %.9g, --min-lr %.9g)",
                      cg_schedule_name(r->schedule), r->warmup, r->step_size, r->gamma, r->min_lr);
    bool by_length = r->schedule == CG_SCHEDULE_COSINE || r->schedule == CG_SCHEDULE_LINEAR ||
                     r->schedule == CG_SCHEDULE_ONECYCLE || r->schedule == CG_SCHEDULE_TRIANGLE;
    if (by_length && epochs > 0) cg_resume_setting(rs, "--epochs (the schedule's length)", "%ld", epochs);
    cg_resume_setting(rs, "--label-smoothing", "%.9g", r->label_smoothing);
    cg_resume_setting(rs, "--clip-grad-norm", "%.9g", r->clip_grad_norm);
    bool augmenting = r->augment >= 0 ? r->augment == 1 : dataset_augments;
    cg_resume_setting(rs, "--augment", "%s", augmenting ? "on" : "off");
    if (augmenting)
        cg_resume_setting(rs, "--crop-padding", "%d (--padding-mode %s, --flip %s, --cutout %d)", r->aug.crop_padding,
                          r->aug.reflect ? "reflect" : "zeros", flips[r->aug.flip], r->aug.cutout);
}

cg_status cg_recipe_check_data(const cg_recipe *r, const char *dataset, bool dataset_augments, int64_t H, int64_t W) {
    bool augmenting = r->augment >= 0 ? r->augment == 1 : dataset_augments;
    const char *unused = r->aug.cutout > 0               ? "--cutout"
                         : r->aug.reflect                ? "--padding-mode"
                         : r->aug.flip != CG_FLIP_RANDOM ? "--flip"
                         : r->crop_padding_given         ? "--crop-padding"
                                                         : NULL;
    if (!augmenting && unused && !r->airbench94) // airbench94 sets them itself
        return cg_error(CG_ERR_ARG, "%s: the training augmentation is off for %s (add --augment on)", unused, dataset);
    if (augmenting && r->aug.reflect && (r->aug.crop_padding >= H || r->aug.crop_padding >= W))
        return cg_error(CG_ERR_ARG, "--padding-mode reflect: --crop-padding %d must be smaller than the images "
                        "(%lldx%lld)", r->aug.crop_padding, (long long)H, (long long)W);
    if (r->confusion_path) return cg_confusion_check_writable("--confusion", r->confusion_path);
    return cg_ok();
}

// airbench94's rates for plain SGD on the mean loss. airbench gives torch.optim.SGD, on the SUM of
// the per-image losses, lr = 11.5 / s and weight_decay = wd / lr with s = 1024 (1 + 1 / (1 - 0.85))
// and wd = 0.0153 B / s (L2: added to the gradient). The gradient of the sum is B times that of the
// mean, so the same steps come from lr' = B lr on the mean loss with weight decay wd / lr / B
// (momentum and Nesterov are linear: the buffer is the old one over B). The BatchNorm biases' group
// has 64 x the rate and weight_decay wd / (64 lr): the same decay per step.
static void airbench_groups(cg_recipe_run *run, cg_params *params) {
    double B = (double)run->recipe->batch_size;
    double kilostep = 1024.0 * (1.0 + 1.0 / (1.0 - CG_AIRBENCH_MOMENTUM));
    double lr = CG_AIRBENCH_LR / kilostep, wd = CG_AIRBENCH_WEIGHT_DECAY * B / kilostep;
    run->lr_sgd = lr * B;
    run->decay_sgd = wd / lr / B;
    cg_optimizer *o = run->optimizer;
    int biases = cg_optimizer_add_group(o, (float)CG_AIRBENCH_BIAS_SCALER,
                                        (float)(wd / (lr * CG_AIRBENCH_BIAS_SCALER) / B));
    run->whiten_bias_group = cg_optimizer_add_group(o, 1.0f, (float)run->decay_sgd);
    for (int i = 0; i < params->count; i++) {
        const cg_tensor *t = params->tensors[i];
        if (t->name && strstr(t->name, "norm") && t->requires_grad) cg_optimizer_set_group(o, t, biases);
        if (t->name && strcmp(t->name, "whiten.bias") == 0) cg_optimizer_set_group(o, t, run->whiten_bias_group);
    }
}

cg_recipe_run *cg_recipe_start(const cg_recipe *r, cg_params *params, cg_params *buffers, int64_t steps_per_epoch,
                               double epochs) {
    cg_recipe_run *run = cg_xcalloc(1, sizeof *run);
    run->recipe = r;
    run->whiten_bias_group = -1;
    run->tta_level = r->tta_level;
    run->total_steps = (int64_t)ceil((double)steps_per_epoch * epochs - 1e-9);
    if (r->airbench94) {
        CG_CHECK(r->batch_size > 0, "--recipe airbench94: the batch size was not set");
        double kilostep = 1024.0 * (1.0 + 1.0 / (1.0 - CG_AIRBENCH_MOMENTUM));
        run->lr_sgd = CG_AIRBENCH_LR / kilostep * (double)r->batch_size;
        run->decay_sgd = CG_AIRBENCH_WEIGHT_DECAY / CG_AIRBENCH_LR;
    }
    double lr = r->airbench94 ? run->lr_sgd : r->lr;
    cg_optim_config c = r->optimizer == CG_OPTIM_SGD    ? cg_sgd_config((float)lr)
                        : r->optimizer == CG_OPTIM_ADAMW ? cg_adamw_config((float)lr)
                                                         : cg_adam_config((float)lr);
    c.weight_decay = (float)(r->airbench94 ? run->decay_sgd : r->weight_decay);
    c.momentum = (float)r->momentum;
    c.nesterov = r->nesterov;
    c.decoupled_weight_decay = r->decoupled;
    c.no_decay_bn_bias = r->no_decay_bn_bias;
    run->optimizer = cg_optimizer_new(params, c);
    if (r->airbench94) {
        airbench_groups(run, params);
        run->lookahead = cg_lookahead_new(params, buffers);
    }
    run->schedule = cg_schedule_new(r->schedule, lr, run->total_steps, steps_per_epoch);
    run->schedule.warmup_epochs = r->warmup;
    run->schedule.step_size = r->step_size;
    run->schedule.gamma = r->gamma;
    run->schedule.min_lr = r->min_lr;
    run->lr_now = lr;
    if (r->clip_grad_norm > 0) run->clipper = cg_grad_clipper_new(params, (float)r->clip_grad_norm);
    return run;
}

void cg_recipe_epoch_begin(cg_recipe_run *run, long epoch) {
    if (run->whiten_bias_group < 0) return;
    bool trained = epoch - 1 < CG_AIRBENCH_WHITEN_BIAS_EPOCHS; // airbench: epoch (0-based) < 3
    cg_optimizer_set_group_lr_scale(run->optimizer, run->whiten_bias_group, trained ? 1.0f : 0.0f);
}

bool cg_recipe_step_end(cg_recipe_run *run, int64_t steps_done, cg_amp *amp) {
    bool last = steps_done >= run->total_steps;
    if (run->lookahead) {
        if (steps_done % CG_AIRBENCH_LOOKAHEAD_EVERY == 0) {
            // airbench: 0.95^5 (arange(T + 1) / T)^3 in float32, read with .item()
            float progress = (float)steps_done / (float)run->total_steps;
            float decay = (float)pow(0.95, CG_AIRBENCH_LOOKAHEAD_EVERY) * (progress * progress * progress);
            cg_lookahead_update(run->lookahead, decay);
        }
        if (last) cg_lookahead_update(run->lookahead, 1.0f); // the weights become the average
        if (amp && (last || steps_done % CG_AIRBENCH_LOOKAHEAD_EVERY == 0)) cg_amp_refresh(amp); // 16-bit copy
    }
    return last;
}

void cg_recipe_free(cg_recipe_run *run) {
    if (run == NULL) return;
    cg_grad_clipper_free(run->clipper);
    cg_optimizer_free(run->optimizer);
    cg_lookahead_free(run->lookahead);
    cg_tensor_free(run->mirror);
    cg_tensor_free(run->shifted);
    free(run);
}

void cg_recipe_augment(const cg_recipe *r, cg_loader *loader, bool dataset_augments) {
    if (r->augment >= 0 ? r->augment == 1 : dataset_augments) cg_loader_set_augmentation_full(loader, &r->aug);
}

void cg_recipe_describe(const cg_recipe_run *run, bool augmenting, char *text, size_t size) {
    const cg_recipe *r = run->recipe;
    size_t at = 0;
#define PUT(...) (at += (size_t)snprintf(text + at, at < size ? size - at : 0, __VA_ARGS__))
    if (r->airbench94) {
        PUT("recipe: airbench94: batch %lld, %lld steps; SGD Nesterov momentum %g, lr %g per 1024 images (%.6g on the "
            "mean loss), weight decay %g per 1024 (L2 %.6g), BatchNorm biases at %gx the lr; triangle schedule (%g, "
            "peak at %g, %g); label smoothing %g; Lookahead every %d steps; whitening bias frozen after %d epochs; ",
            (long long)r->batch_size, (long long)run->total_steps, CG_AIRBENCH_MOMENTUM, CG_AIRBENCH_LR, run->lr_sgd,
            CG_AIRBENCH_WEIGHT_DECAY, run->decay_sgd, CG_AIRBENCH_BIAS_SCALER, run->schedule.tri_start,
            run->schedule.tri_peak, run->schedule.tri_end, CG_AIRBENCH_LABEL_SMOOTHING, CG_AIRBENCH_LOOKAHEAD_EVERY,
            CG_AIRBENCH_WHITEN_BIAS_EPOCHS);
        if (augmenting) PUT("translation by %d (reflect), alternating flips; ", r->aug.crop_padding);
        else PUT("no augmentation; ");
        PUT("TTA level 2 (mirror, 1-pixel translations)");
        return;
    }
    static const char *const optimizers[] = {"sgd", "adam", "adamw"};
    PUT("recipe: %s lr %g", optimizers[r->optimizer], r->lr);
    if (r->optimizer == CG_OPTIM_SGD && r->momentum > 0) PUT(" momentum %g%s", r->momentum, r->nesterov ? " nesterov" : "");
    if (r->weight_decay > 0)
        PUT(", weight decay %g (%s%s)", r->weight_decay,
            r->decoupled || r->optimizer == CG_OPTIM_ADAMW ? "decoupled" : "L2",
            r->no_decay_bn_bias ? ", none on BatchNorm and biases" : "");
    PUT(", schedule %s", cg_schedule_name(r->schedule));
    int64_t warm = cg_schedule_warmup_steps(&run->schedule);
    if (warm > 0) PUT(" after %lld warm-up steps", (long long)warm);
    PUT(" over %lld steps", (long long)run->schedule.total_steps);
    if (r->label_smoothing > 0) PUT(", label smoothing %g", r->label_smoothing);
    if (r->clip_grad_norm > 0) PUT(", gradient norm clipped at %g", r->clip_grad_norm);
    if (augmenting) {
        static const char *const flips[] = {"no flip", "random flip", "alternating flip"};
        PUT("; augmentation: crop padded by %d (%s), %s", r->aug.crop_padding, r->aug.reflect ? "reflect" : "zeros",
            flips[r->aug.flip]);
        if (r->aug.cutout > 0) PUT(", cutout %d", r->aug.cutout);
    } else {
        PUT("; no augmentation");
    }
    if (r->tta) PUT("; TTA with flips");
    if (r->schedule == CG_SCHEDULE_TRIANGLE)
        PUT(" (triangle: %g, peak at %g of the steps, %g)", run->schedule.tri_start, run->schedule.tri_peak,
            run->schedule.tri_end);
#undef PUT
}

void cg_recipe_set_lr(cg_recipe_run *run, int64_t step) {
    run->lr_now = cg_schedule_lr(&run->schedule, step);
    if ((float)run->lr_now != run->optimizer->lr_host) cg_optimizer_set_lr(run->optimizer, (float)run->lr_now);
}

cg_tensor *cg_recipe_loss(const cg_recipe_run *run, cg_tape *tape, cg_tensor *logits, cg_tensor *labels) {
    if (run->recipe->label_smoothing > 0)
        return cg_cross_entropy_smoothed(tape, logits, labels, (float)run->recipe->label_smoothing);
    return cg_cross_entropy(tape, logits, labels);
}

void cg_recipe_clip(cg_recipe_run *run) {
    if (run->clipper) cg_grad_clip(run->clipper);
}

// A batch of x's shape in *buf (made, or made larger, when needed): the first rows if larger.
static cg_tensor *scratch_like(cg_tensor **buf, const cg_tensor *x) {
    if (*buf == NULL || (*buf)->shape[0] < x->shape[0] || (*buf)->numel / (*buf)->shape[0] != x->numel / x->shape[0]) {
        cg_tensor_free(*buf);
        *buf = cg_tensor_new(x->device, CG_F32, 4, x->shape);
    }
    return (*buf)->shape[0] == x->shape[0] ? *buf : cg_tensor_first_rows(*buf, x->shape[0]);
}

// The logits of x, or with TTA the mean of those of x and of its mirror image (in place, in the
// first logits: nothing records in evaluation).
static cg_tensor *mirror_logits(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_tensor *x) {
    cg_tensor *logits = cg_autocast_f32(tape, cg_module_forward(model, tape, x));
    if (run->tta_level < 1) return logits;
    CG_CHECK(x->ndim == 4, "--tta: images (N, C, H, W) expected, got %d dimensions", x->ndim);
    cg_tensor *mirror = scratch_like(&run->mirror, x);
    const cg_kernels *k = cg_kernels_for(x->device);
    k->flip_images(mirror->data, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3]);
    cg_tensor *other = cg_autocast_f32(tape, cg_module_forward(model, tape, mirror));
    k->scale(logits->data, logits->data, 0.5f, logits->numel); // 0.5 a + 0.5 b, as the twin
    k->axpy(logits->data, 0.5f, other->data, logits->numel);
    if (mirror != run->mirror) cg_tensor_free(mirror);
    return logits;
}

// Level 2 (airbench's infer_mirror_translate): 0.5 m(x) + 0.5 (m(x moved down-right by 1) +
// m(x moved up-left by 1)) / 2, m the mirror mean above, the edges reflected.
cg_tensor *cg_recipe_eval_logits(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_tensor *x) {
    cg_tensor *logits = mirror_logits(run, model, tape, x);
    if (run->tta_level < 2) return logits;
    cg_tensor *shifted = scratch_like(&run->shifted, x);
    const cg_kernels *k = cg_kernels_for(x->device);
    k->scale(logits->data, logits->data, 0.5f, logits->numel);
    for (int d = 1; d >= -1; d -= 2) {
        k->shift_images(shifted->data, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], d, d);
        cg_tensor *other = mirror_logits(run, model, tape, shifted);
        k->axpy(logits->data, 0.25f, other->data, logits->numel);
    }
    if (shifted != run->shifted) cg_tensor_free(shifted);
    return logits;
}

cg_eval_result cg_recipe_evaluate(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_loader *loader,
                                  cg_metrics *metrics, cg_confusion *confusion) {
    cg_module_set_training(model, false);
    bool grad_enabled = tape->grad_enabled;
    tape->grad_enabled = false;
    cg_metrics_reset(metrics);
    cg_loader_start_epoch(loader);
    cg_batch batch;
    int64_t seen = 0;
    while (cg_loader_next(loader, &batch)) {
        cg_tensor *logits = cg_recipe_eval_logits(run, model, tape, batch.x);
        cg_metrics_add_loss(metrics, cg_cross_entropy(tape, logits, batch.labels), batch.size);
        cg_metrics_add_argmax_correct(metrics, logits, batch.labels);
        cg_metrics_add_top5_correct(metrics, logits, batch.labels);
        if (confusion) cg_confusion_add(confusion, logits, batch.labels);
        cg_tape_clear(tape);
        seen += batch.size;
    }
    cg_eval_result out;
    cg_metrics_read(metrics, seen, &out.loss, &out.top1);
    out.top5 = cg_metrics_read_top5(metrics, seen);
    tape->grad_enabled = grad_enabled;
    cg_module_set_training(model, true);
    return out;
}

typedef struct {
    int index;
    double accuracy;
    int64_t images;
} class_accuracy;

static int by_accuracy(const void *a, const void *b) {
    const class_accuracy *x = a, *y = b;
    if (x->accuracy != y->accuracy) return x->accuracy < y->accuracy ? -1 : 1;
    return x->index - y->index;
}

cg_status cg_recipe_write_confusion(const cg_recipe *r, const cg_confusion *confusion, char *const *names,
                                    bool quiet) {
    if (r->confusion_path == NULL || confusion == NULL) return cg_ok();
    int K = confusion->classes;
    int64_t *counts = cg_xmalloc((size_t)K * (size_t)K * sizeof(int64_t));
    cg_confusion_read(confusion, counts);
    cg_status s = cg_confusion_write_csv(r->confusion_path, names, K, counts);
    if (s.code == CG_OK && !quiet) {
        class_accuracy *acc = cg_xmalloc((size_t)K * sizeof *acc);
        for (int i = 0; i < K; i++) {
            int64_t row = 0;
            for (int j = 0; j < K; j++) row += counts[(int64_t)i * K + j];
            acc[i] = (class_accuracy){i, row > 0 ? (double)counts[(int64_t)i * K + i] / (double)row : 0.0, row};
        }
        qsort(acc, (size_t)K, sizeof *acc, by_accuracy);
        printf("per-class accuracy, worst first%s:\n", K > 20 ? " (the 5 worst and the 5 best)" : "");
        for (int n = 0; n < K; n++) {
            if (K > 20 && n == 5) {
                printf("  ...\n");
                n = K - 5;
            }
            const class_accuracy *a = &acc[n];
            char fallback[16];
            snprintf(fallback, sizeof fallback, "%d", a->index);
            printf("  %-28s %.4f  (%lld images)\n", names && names[a->index] ? names[a->index] : fallback, a->accuracy,
                   (long long)a->images);
        }
        printf("wrote the confusion matrix to %s\n", r->confusion_path);
        free(acc);
    }
    free(counts);
    return s;
}

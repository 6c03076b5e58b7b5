// recipe.c: the training recipe's flags, checks and calls (recipe.h); the arithmetic is in
// core/train (optim, schedule, clip, metrics) and the kernels.
#include "examples/common/recipe.h"
#include "examples/common/cli.h"
#include "core/kernels.h"

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
    switch (code) {
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
    case CG_RECIPE_OPT_TTA: r->tta = true; return cg_ok();
    case CG_RECIPE_OPT_CONFUSION: return cg_cli_path("--confusion", arg, &r->confusion_path);
    }
    CG_CHECK(false, "recipe: option code %d is not the recipe's", code);
    return cg_ok();
}

cg_status cg_recipe_finish(cg_recipe *r) {
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
            "                     cosine, down to lr / 25 / 1e4). The rate is kept on the device, so CUDA\n"
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
            "  --confusion PATH   at the end, the test set's confusion matrix as CSV (a header of class names,\n"
            "                     then one row per true class: the count predicted as each class), for\n"
            "                     tools/plot_confusion.py; each class's accuracy is printed too\n");
}

void cg_recipe_settings(const cg_recipe *r, cg_resume *rs, bool dataset_augments, long epochs) {
    static const char *const optimizers[] = {"sgd", "adam", "adamw"};
    static const char *const flips[] = {"off", "random", "alternate"};
    cg_resume_setting(rs, "--optimizer", "%s", optimizers[r->optimizer]);
    cg_resume_setting(rs, "--lr", "%.9g", r->lr);
    cg_resume_setting(rs, "--momentum", "%.9g%s", r->momentum, r->nesterov ? " (--nesterov)" : "");
    cg_resume_setting(rs, "--weight-decay", "%.9g%s%s", r->weight_decay, r->decoupled ? " (--decoupled-weight-decay)" : "",
                      r->no_decay_bn_bias ? " (--no-decay-bn-bias)" : "");
    cg_resume_setting(rs, "--lr-schedule", "%s (--warmup %.9g, --step-size %.9g, --gamma %.9g, --min-lr %.9g)",
                      cg_schedule_name(r->schedule), r->warmup, r->step_size, r->gamma, r->min_lr);
    bool by_length = r->schedule == CG_SCHEDULE_COSINE || r->schedule == CG_SCHEDULE_LINEAR ||
                     r->schedule == CG_SCHEDULE_ONECYCLE;
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
    if (!augmenting && unused)
        return cg_error(CG_ERR_ARG, "%s: the training augmentation is off for %s (add --augment on)", unused, dataset);
    if (augmenting && r->aug.reflect && (r->aug.crop_padding >= H || r->aug.crop_padding >= W))
        return cg_error(CG_ERR_ARG, "--padding-mode reflect: --crop-padding %d must be smaller than the images "
                        "(%lldx%lld)", r->aug.crop_padding, (long long)H, (long long)W);
    if (r->confusion_path) return cg_confusion_check_writable("--confusion", r->confusion_path);
    return cg_ok();
}

cg_recipe_run *cg_recipe_start(const cg_recipe *r, cg_params *params, int64_t steps_per_epoch, long epochs) {
    cg_recipe_run *run = cg_xcalloc(1, sizeof *run);
    run->recipe = r;
    cg_optim_config c = r->optimizer == CG_OPTIM_SGD    ? cg_sgd_config((float)r->lr)
                        : r->optimizer == CG_OPTIM_ADAMW ? cg_adamw_config((float)r->lr)
                                                         : cg_adam_config((float)r->lr);
    c.weight_decay = (float)r->weight_decay;
    c.momentum = (float)r->momentum;
    c.nesterov = r->nesterov;
    c.decoupled_weight_decay = r->decoupled;
    c.no_decay_bn_bias = r->no_decay_bn_bias;
    run->optimizer = cg_optimizer_new(params, c);
    run->schedule = cg_schedule_new(r->schedule, r->lr, steps_per_epoch * epochs, steps_per_epoch);
    run->schedule.warmup_epochs = r->warmup;
    run->schedule.step_size = r->step_size;
    run->schedule.gamma = r->gamma;
    run->schedule.min_lr = r->min_lr;
    run->lr_now = r->lr;
    if (r->clip_grad_norm > 0) run->clipper = cg_grad_clipper_new(params, (float)r->clip_grad_norm);
    return run;
}

void cg_recipe_free(cg_recipe_run *run) {
    if (run == NULL) return;
    cg_grad_clipper_free(run->clipper);
    cg_optimizer_free(run->optimizer);
    cg_tensor_free(run->mirror);
    free(run);
}

void cg_recipe_augment(const cg_recipe *r, cg_loader *loader, bool dataset_augments) {
    if (r->augment >= 0 ? r->augment == 1 : dataset_augments) cg_loader_set_augmentation_full(loader, &r->aug);
}

void cg_recipe_describe(const cg_recipe_run *run, bool augmenting, char *text, size_t size) {
    const cg_recipe *r = run->recipe;
    size_t at = 0;
#define PUT(...) (at += (size_t)snprintf(text + at, at < size ? size - at : 0, __VA_ARGS__))
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

// The logits of x, or with TTA the mean of those of x and of its mirror image (in place, in the
// first logits: nothing records in evaluation).
static cg_tensor *eval_logits(cg_recipe_run *run, cg_module *model, cg_tape *tape, cg_tensor *x) {
    cg_tensor *logits = cg_autocast_f32(tape, cg_module_forward(model, tape, x));
    if (!run->recipe->tta) return logits;
    CG_CHECK(x->ndim == 4, "--tta: images (N, C, H, W) expected, got %d dimensions", x->ndim);
    if (run->mirror == NULL || run->mirror->shape[0] < x->shape[0] || run->mirror->numel / run->mirror->shape[0] !=
                                                                          x->numel / x->shape[0]) {
        cg_tensor_free(run->mirror);
        run->mirror = cg_tensor_new(x->device, CG_F32, 4, x->shape);
    }
    cg_tensor *mirror = run->mirror->shape[0] == x->shape[0] ? run->mirror : cg_tensor_first_rows(run->mirror, x->shape[0]);
    const cg_kernels *k = cg_kernels_for(x->device);
    k->flip_images(mirror->data, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3]);
    cg_tensor *other = cg_autocast_f32(tape, cg_module_forward(model, tape, mirror));
    k->scale(logits->data, logits->data, 0.5f, logits->numel); // 0.5 a + 0.5 b, as the twin
    k->axpy(logits->data, 0.5f, other->data, logits->numel);
    if (mirror != run->mirror) cg_tensor_free(mirror);
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
        cg_tensor *logits = eval_logits(run, model, tape, batch.x);
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

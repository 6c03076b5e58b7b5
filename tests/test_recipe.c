// test_recipe.c: the training recipe's pieces on the CPU against their definitions written out
// here: gradient clipping by the global norm against a host computation in double; the top-5
// counter and the confusion matrix on rows built by hand (ties included) and the confusion CSV
// byte for byte; the loader's augmentation (crop with zero and reflection padding, flips, cutout,
// airbench's alternating flip) pixel by pixel against the padded, mirrored, cropped and cut image
// built here; the mirror of a batch (TTA). Then the built cnn with the recipe's flags on a small
// Fashion-MNIST-shaped data set: a run with every flag, the lr column of a step schedule, two runs
// with augmentation giving the same log, and bad combinations refused with one line naming the flag.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "core/kernels.h"
#include "datasets/files.h"
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- gradient clipping ----------------------------------------------------------------------

// Two parameters with gradients drawn at random; after cg_grad_clip each gradient must be
// g min(1, max_norm / (norm + 1e-6)) with norm = sqrt(sum g^2) taken here in double.
static void test_clip(void) {
    for (int v = 0; v < 2; v++) {
        cg_params *params = cg_params_new(cg_cpu());
        cg_tensor *w = cg_params_add(params, "w", 2, (int64_t[]){300, 1000}); // over one chunk of the CPU's sum
        cg_tensor *b = cg_params_add(params, "b", 1, (int64_t[]){7});
        int64_t n = w->numel + b->numel;
        float *g = cg_xmalloc((size_t)n * sizeof(float));
        cg_rng r = cg_rng_new(5, 0);
        cg_rng_uniform(&r, g, n, -0.01f, 0.01f);
        cg_tensor_copy_from_host(w->grad, g, w->numel);
        cg_tensor_copy_from_host(b->grad, g + w->numel, b->numel);
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
        double norm = sqrt(sum), max_norm = v == 0 ? 1.0 : 100.0; // about 3.2: clipped, then not
        double coef = fmin(1.0, max_norm / (norm + 1e-6));
        cg_grad_clipper *c = cg_grad_clipper_new(params, (float)max_norm);
        cg_grad_clip(c);
        double got_norm = cg_grad_clipper_last_norm(c), worst = 0.0;
        if (fabs(got_norm - norm) > 1e-5 * norm) fail("clip", "norm %.9g, host %.9g", got_norm, norm);
        float *out = cg_xmalloc((size_t)n * sizeof(float));
        cg_tensor_copy_to_host(out, w->grad, w->numel);
        cg_tensor_copy_to_host(out + w->numel, b->grad, b->numel);
        for (int64_t i = 0; i < n; i++) {
            double want = g[i] * coef, err = fabs(out[i] - want);
            worst = err > worst ? err : worst;
            if (!(err <= 1e-6 * fabs(want) + 1e-12)) {
                fail("clip", "max_norm %g, gradient %lld: %.9g, expected %.9g", max_norm, (long long)i, (double)out[i],
                     want);
                break;
            }
        }
        if (v == 1 && memcmp(out, g, (size_t)n * sizeof(float)) != 0)
            fail("clip", "a norm below max_norm changed the gradients");
        // the padding of the block stays zero
        for (int64_t i = 0; i < params->numel; i++) {
            bool in_w = i >= params->offsets[0] && i < params->offsets[0] + w->numel;
            bool in_b = i >= params->offsets[1] && i < params->offsets[1] + b->numel;
            if (!in_w && !in_b && params->grads[i] != 0.0f) fail("clip", "padding gradient %lld changed", (long long)i);
        }
        printf("clip_grad_norm max %-5g norm %.6f (host %.6f), coefficient %.6f, max error %.3g\n", max_norm, got_norm,
               norm, coef, worst);
        free(g), free(out);
        cg_grad_clipper_free(c);
        cg_params_free(params);
    }
}

// ---- top-5 and the confusion matrix --------------------------------------------------------

enum { ROWS = 6, K7 = 7 };
// Rows of 7 logits and their labels, with the label's rank (how many logits come before it:
// larger ones, and equal ones of a lower index) written beside each.
static const float logits7[ROWS][K7] = {
    {5, 4, 3, 2, 1, 0, -1}, // label 0: rank 0 (top-1, top-5), predicted 0
    {6, 5, 4, 3, 2, 1, 0},  // label 5: rank 5 (neither), predicted 0
    {6, 5, 4, 3, 2, 1, 0},  // label 4: rank 4 (top-5 only), predicted 0
    {1, 1, 1, 1, 1, 1, 1},  // label 3: all tied, rank 3 (top-5 only), predicted 0 (the first maximum)
    {1, 1, 1, 1, 1, 1, 1},  // label 0: all tied, rank 0 (top-1, top-5), predicted 0
    {0, 0, 0, 0, 0, 0, 1},  // label 6: rank 0 (top-1, top-5), predicted 6
};
static const int32_t labels7[ROWS] = {0, 5, 4, 3, 0, 6};

static void test_topk_and_confusion(void) {
    cg_tensor *logits = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){ROWS, K7});
    cg_tensor *labels = cg_tensor_new(cg_cpu(), CG_I32, 1, (int64_t[]){ROWS});
    cg_tensor_copy_from_host(logits, logits7, ROWS * K7);
    cg_tensor_copy_from_host(labels, labels7, ROWS);
    const cg_kernels *k = cg_kernels_for(cg_cpu());
    float acc[4] = {0, 0, 0, 0};
    k->count_argmax_correct(acc, logits->data, labels->data, ROWS, K7);
    k->count_topk_correct(acc + 1, logits->data, labels->data, ROWS, K7, 1);
    k->count_topk_correct(acc + 2, logits->data, labels->data, ROWS, K7, 5);
    k->count_topk_correct(acc + 3, logits->data, labels->data, ROWS, K7, 6);
    if (acc[0] != 3 || acc[1] != 3 || acc[2] != 5 || acc[3] != 6)
        fail("count_topk_correct", "argmax %g, top-1 %g, top-5 %g, top-6 %g; expected 3, 3, 5, 6", (double)acc[0],
             (double)acc[1], (double)acc[2], (double)acc[3]);
    // Through the metrics: top-5 of 6 rows, twice (it accumulates), read as a fraction.
    cg_metrics *m = cg_metrics_new(cg_cpu());
    cg_metrics_add_argmax_correct(m, logits, labels);
    cg_metrics_add_top5_correct(m, logits, labels);
    cg_metrics_add_top5_correct(m, logits, labels);
    double loss, top1, top5 = cg_metrics_read_top5(m, 2 * ROWS);
    cg_metrics_read(m, ROWS, &loss, &top1);
    if (top1 != 0.5 || top5 != 10.0 / 12.0) fail("metrics top-5", "top-1 %g (0.5), top-5 %g (10/12)", top1, top5);
    // With 3 classes top-5 is top-3: every row counts.
    cg_tensor *three = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){2, 3});
    cg_tensor *three_labels = cg_tensor_new(cg_cpu(), CG_I32, 1, (int64_t[]){2});
    cg_tensor_copy_from_host(three, (float[]){3, 2, 1, 1, 2, 3}, 6);
    cg_tensor_copy_from_host(three_labels, (int32_t[]){2, 0}, 2);
    cg_metrics_reset(m);
    cg_metrics_add_top5_correct(m, three, three_labels);
    if (cg_metrics_read_top5(m, 2) != 1.0) fail("metrics top-5", "3 classes: %g, expected 1", cg_metrics_read_top5(m, 2));
    cg_metrics_free(m);

    // The confusion matrix: row the label, column the first maximum.
    cg_confusion *c = cg_confusion_new(cg_cpu(), K7);
    cg_confusion_add(c, logits, labels);
    int64_t counts[K7 * K7];
    cg_confusion_read(c, counts);
    int64_t expected[K7 * K7] = {0};
    expected[0 * K7 + 0] = 2, expected[5 * K7 + 0] = 1, expected[4 * K7 + 0] = 1, expected[3 * K7 + 0] = 1;
    expected[6 * K7 + 6] = 1;
    if (memcmp(counts, expected, sizeof counts) != 0) fail("confusion", "counts differ from the hand-made matrix");
    // The CSV: names (one with a comma and a quote, quoted as RFC 4180 says), then the rows.
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/confusion.csv", run_dir);
    char *names[K7] = {"plane", "car", "bird, small", "cat \"tabby\"", "deer", "dog", "frog"};
    cg_status s = cg_confusion_write_csv(path, names, K7, counts);
    read_text(path, text, sizeof text);
    const char *want = "plane,car,\"bird, small\",\"cat \"\"tabby\"\"\",deer,dog,frog\n"
                       "2,0,0,0,0,0,0\n0,0,0,0,0,0,0\n0,0,0,0,0,0,0\n1,0,0,0,0,0,0\n1,0,0,0,0,0,0\n"
                       "1,0,0,0,0,0,0\n0,0,0,0,0,0,1\n";
    if (s.code != CG_OK || strcmp(text, want) != 0) fail("confusion CSV", "%s\ngot:\n%s\nexpected:\n%s", s.message, text, want);
    cg_status bad = cg_confusion_check_writable("--confusion", run_dir);
    if (bad.code == CG_OK || strstr(bad.message, "--confusion") == NULL || strstr(bad.message, "directory") == NULL)
        fail("confusion", "a directory as the path: '%s'", bad.message);
    unlink(path);
    cg_confusion_free(c);
    cg_tensor_free(logits), cg_tensor_free(labels), cg_tensor_free(three), cg_tensor_free(three_labels);
    printf("top-1 3, top-5 5 of 6 hand-made rows (ties to the lower index); confusion matrix and its CSV\n");
}

// ---- augmentation ---------------------------------------------------------------------------

enum { COUNT = 40, C = 3, H = 9, W = 7, B = 16 };

// The definition, built step by step: the image (pixel / 255) mirrored left-right when flipped;
// padded by p pixels on each side, with zeros or (reflect) with the rows and columns next to the
// edge mirrored about it (padded[p - 1 - j] = image[1 + j], padded[p + n + j] = image[n - 2 - j],
// torch.nn.functional.pad's "reflect"); the window at (dy, dx) cut out of it; then the cutout
// square of side s centred at (cy, cx), rows cy - s/2 .. cy - s/2 + s - 1 (and columns alike),
// set to 0 where it lies in the image.
static void reference_image(const uint8_t *src, const int32_t *a, int p, bool reflect, int s, float *out) {
    float image[C][H][W], padded[C][H + 2 * 8][W + 2 * 8];
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) image[c][y][x] = src[(c * H + y) * W + (a[2] ? W - 1 - x : x)] / 255.0f;
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < H + 2 * p; y++)
            for (int x = 0; x < W + 2 * p; x++) padded[c][y][x] = 0.0f;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) padded[c][p + y][p + x] = image[c][y][x];
        if (reflect) {
            for (int y = p; y < p + H; y++) // the columns, on the image's rows
                for (int j = 0; j < p; j++) {
                    padded[c][y][p - 1 - j] = padded[c][y][p + 1 + j];
                    padded[c][y][p + W + j] = padded[c][y][p + W - 2 - j];
                }
            for (int j = 0; j < p; j++) // then whole rows, corners included
                for (int x = 0; x < W + 2 * p; x++) {
                    padded[c][p - 1 - j][x] = padded[c][p + 1 + j][x];
                    padded[c][p + H + j][x] = padded[c][p + H - 2 - j][x];
                }
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = padded[c][a[0] + y][a[1] + x];
                bool cut = s > 0 && y >= a[3] - s / 2 && y < a[3] - s / 2 + s && x >= a[4] - s / 2 && x < a[4] - s / 2 + s;
                out[(c * H + y) * W + x] = cut ? 0.0f : v;
            }
    }
}

static void test_augmentation(void) {
    cg_dataset *d = cg_dataset_new_images(COUNT, C, H, W, 4);
    cg_rng r = cg_rng_new(9, 0);
    uint32_t words[COUNT * C * H * W];
    cg_rng_u32(&r, words, COUNT * C * H * W);
    for (int i = 0; i < COUNT * C * H * W; i++) d->pixels[i] = (uint8_t)words[i];
    for (int i = 0; i < COUNT; i++) d->labels[i] = i % 4;
    static const cg_augmentation settings[] = {
        {3, false, CG_FLIP_RANDOM, 0}, // crop with zero padding and flips (the old augmentation)
        {3, true, CG_FLIP_RANDOM, 4},  // translation with reflection, flips, cutout 4
        {2, true, CG_FLIP_OFF, 5},     // odd cutout side
        {0, false, CG_FLIP_OFF, 3},    // cutout alone
    };
    for (size_t v = 0; v < sizeof settings / sizeof settings[0]; v++) {
        const cg_augmentation *aug = &settings[v];
        cg_loader *l = cg_loader_new(d, B, true, false, 3, cg_cpu());
        cg_loader_set_augmentation_full(l, aug);
        int64_t checked = 0, flipped = 0, cut_pixels = 0, bad = 0;
        for (int epoch = 0; epoch < 3; epoch++) {
            cg_loader_start_epoch(l);
            cg_batch batch;
            int64_t first = 0;
            while (cg_loader_next(l, &batch)) {
                const float *x = batch.x->data;
                for (int64_t i = 0; i < batch.size; i++) {
                    const int32_t *a = l->augment_host + CG_AUGMENT_FIELDS * i;
                    if (a[0] < 0 || a[0] > 2 * aug->crop_padding || a[1] < 0 || a[1] > 2 * aug->crop_padding ||
                        (aug->flip == CG_FLIP_OFF && a[2]) || (aug->cutout && (a[3] < 0 || a[3] >= H || a[4] < 0 || a[4] >= W)))
                        fail("augmentation draws", "setting %zu: dy %d dx %d flip %d cy %d cx %d out of range", v, a[0], a[1],
                             a[2], a[3], a[4]);
                    float want[C * H * W];
                    int32_t sample = l->order[first + i];
                    reference_image(d->pixels + sample * C * H * W, a, aug->crop_padding, aug->reflect, aug->cutout, want);
                    for (int j = 0; j < C * H * W; j++) {
                        if (x[i * C * H * W + j] != want[j] && bad++ == 0)
                            fail("augmentation", "setting %zu, epoch %d, sample %d, value %d: %.9g, definition %.9g", v,
                                 epoch, sample, j, (double)x[i * C * H * W + j], (double)want[j]);
                        cut_pixels += x[i * C * H * W + j] == 0.0f;
                    }
                    flipped += a[2];
                    checked++;
                }
                first += batch.size;
            }
        }
        printf("augmentation: crop padding %d (%s), flip %s, cutout %d: %lld images as defined, %lld flipped, %lld "
               "zeros\n", aug->crop_padding, aug->reflect ? "reflect" : "zeros",
               aug->flip == CG_FLIP_RANDOM ? "random" : "off", aug->cutout, (long long)checked, (long long)flipped,
               (long long)cut_pixels);
        if (aug->flip == CG_FLIP_RANDOM && (flipped < checked / 4 || flipped > 3 * checked / 4))
            fail("augmentation", "setting %zu: %lld of %lld images flipped", v, (long long)flipped, (long long)checked);
        cg_loader_free(l);
    }

    // Airbench's alternating flip: each image flipped in every other epoch, about half of them in
    // the first; the draws are the same for the same seed.
    cg_augmentation alt = {0, false, CG_FLIP_ALTERNATE, 0};
    cg_loader *l = cg_loader_new(d, COUNT, true, false, 3, cg_cpu()), *again = cg_loader_new(d, COUNT, true, false, 3, cg_cpu());
    cg_loader_set_augmentation_full(l, &alt), cg_loader_set_augmentation_full(again, &alt);
    int flips[3][COUNT];
    for (int epoch = 0; epoch < 3; epoch++) {
        cg_batch b1, b2;
        cg_loader_start_epoch(l), cg_loader_start_epoch(again);
        cg_loader_next(l, &b1), cg_loader_next(again, &b2);
        for (int i = 0; i < COUNT; i++) flips[epoch][l->order[i]] = l->augment_host[CG_AUGMENT_FIELDS * i + 2];
        if (memcmp(b1.x->data, b2.x->data, (size_t)COUNT * C * H * W * sizeof(float)) != 0)
            fail("alternating flip", "epoch %d: the same seed gave other batches", epoch + 1);
    }
    int first_half = 0;
    for (int s = 0; s < COUNT; s++) {
        first_half += flips[0][s];
        if (flips[1][s] == flips[0][s] || flips[2][s] != flips[0][s])
            fail("alternating flip", "image %d flipped %d, %d, %d in epochs 1-3", s, flips[0][s], flips[1][s], flips[2][s]);
    }
    if (first_half < COUNT / 5 || first_half > 4 * COUNT / 5)
        fail("alternating flip", "%d of %d images flipped in the first epoch", first_half, COUNT);
    printf("alternating flip: %d of %d images flipped in epochs 1 and 3, the others in epoch 2\n", first_half, COUNT);
    cg_loader_free(l), cg_loader_free(again);

    // The mirror of a batch (--tta): y[p, h, w] = x[p, h, W - 1 - w].
    float x[2 * H * W], y[2 * H * W];
    for (int i = 0; i < 2 * H * W; i++) x[i] = (float)i;
    cg_kernels_for(cg_cpu())->flip_images(y, x, 2, H, W);
    for (int p = 0; p < 2; p++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                if (y[(p * H + h) * W + w] != x[(p * H + h) * W + W - 1 - w]) {
                    fail("flip_images", "plane %d row %d column %d", p, h, w);
                    return;
                }
    // The translations of airbench's test-time augmentation: torch's F.pad(x, (1,) * 4, "reflect")
    // cropped at [0:H, 0:W] (dy = dx = 1) and [2:H + 2, 2:W + 2] (dy = dx = -1); the padded image's
    // row -1 is row 1, its row H is row H - 2.
    for (int d = -1; d <= 1; d += 2) {
        cg_kernels_for(cg_cpu())->shift_images(y, x, 2, H, W, d, d);
        for (int p = 0; p < 2; p++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    int sh = h - d < 0 ? d - h : h - d > H - 1 ? 2 * (H - 1) - (h - d) : h - d;
                    int sw = w - d < 0 ? d - w : w - d > W - 1 ? 2 * (W - 1) - (w - d) : w - d;
                    if (y[(p * H + h) * W + w] != x[(p * H + sh) * W + sw]) {
                        fail("shift_images", "shift %d: plane %d row %d column %d", d, p, h, w);
                        return;
                    }
                }
    }
    if (H > 2) { // one case by hand: shifted down-right, pixel (0, 0) is the original (1, 1)
        cg_kernels_for(cg_cpu())->shift_images(y, x, 1, H, W, 1, 1);
        if (y[0] != x[W + 1]) fail("shift_images", "pixel (0, 0) = %g, expected x[1, 1] = %g", y[0], x[W + 1]);
    }
    cg_dataset_free(d);
}

// ---- cnn with the recipe's flags --------------------------------------------------------------

// Line `row` (0: the header) of a CSV into fields; returns how many.
static int csv_row(const char *text, int row, char fields[][48], int max) {
    const char *at = text;
    for (int i = 0; i < row && at; i++) {
        at = strchr(at, '\n');
        if (at) at++;
    }
    int n = 0;
    if (!at || !*at) return 0;
    while (n < max && *at && *at != '\n') {
        size_t len = strcspn(at, ",\n");
        snprintf(fields[n++], 48, "%.*s", (int)len, at);
        at += len;
        if (*at == ',') at++;
    }
    return n;
}

// The log without its seconds and images/s columns (7 and 8 of 10).
static void without_timing(const char *text, char *out, size_t size) {
    out[0] = '\0';
    char fields[16][48];
    for (int row = 0;; row++) {
        int n = csv_row(text, row, fields, 16);
        if (n == 0) break;
        for (int i = 0; i < n; i++)
            if (i != 6 && i != 7) strncat(out, fields[i], size - strlen(out) - 1), strncat(out, ",", size - strlen(out) - 1);
        strncat(out, "\n", size - strlen(out) - 1);
    }
}

static void test_cnn(void) {
    write_fake_fashion_mnist(run_dir, 320, 100);
    char args[4096], log_path[600], confusion_path[600], text[8192];
    snprintf(log_path, sizeof log_path, "%s/run.csv", run_dir);
    snprintf(confusion_path, sizeof confusion_path, "%s/confusion.csv", run_dir);

    const run_result *r = run("--help");
    static const char *flags[] = {"--momentum", "--nesterov", "--weight-decay", "--decoupled-weight-decay",
                                  "--no-decay-bn-bias", "--lr-schedule", "--warmup", "--step-size", "--gamma",
                                  "--min-lr", "--label-smoothing", "--clip-grad-norm", "--crop-padding",
                                  "--padding-mode", "--flip", "--cutout", "--tta", "--confusion", "adamw"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strstr(r->out, flags[i]) == NULL) fail("--help", "does not list %s", flags[i]);

    // Every flag at once: it trains, logs test_top5 and lr, and writes the confusion matrix.
    snprintf(args, sizeof args,
             "--data '%s' --epochs 2 --batch-size 32 --threads 1 --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov "
             "--weight-decay 5e-4 --no-decay-bn-bias --lr-schedule onecycle --label-smoothing 0.1 --clip-grad-norm 1 "
             "--augment on --crop-padding 2 --padding-mode reflect --flip alternate --cutout 8 --tta --confusion '%s' "
             "--log '%s'",
             run_dir, confusion_path, log_path);
    r = run(args);
    if (r->exit_code != 0) fail("cnn, every recipe flag", "exit %d: %s", r->exit_code, r->err);
    if (strstr(r->out, "recipe: sgd lr 0.05 momentum 0.9 nesterov") == NULL || strstr(r->out, "per-class accuracy") == NULL)
        fail("cnn, every recipe flag", "stdout lacks the recipe or per-class lines:\n%s", r->out);
    read_text(log_path, text, sizeof text);
    char fields[16][48];
    int n = csv_row(text, 0, fields, 16);
    static const char *header[] = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                   "test_top5", "seconds", "images_per_s", "device", "lr"};
    for (int i = 0; i < 10; i++)
        if (i >= n || strcmp(fields[i], header[i]) != 0) fail("cnn --log", "column %d is not %s:\n%s", i + 1, header[i], text);
    n = csv_row(text, 2, fields, 16);
    // onecycle over 2 x 10 steps ends at lr / 25 / 1e4 = 2e-7 (its last step, t = T - 1)
    if (n < 10 || fabs(atof(fields[9]) - 2e-7) > 1e-12 || atof(fields[5]) < atof(fields[4]))
        fail("cnn --log", "epoch 2: lr %s (expected 2e-07), top-5 %s, top-1 %s", n >= 10 ? fields[9] : "?",
             n >= 6 ? fields[5] : "?", n >= 5 ? fields[4] : "?");
    read_text(confusion_path, text, sizeof text);
    n = csv_row(text, 0, fields, 16);
    int64_t total = 0;
    for (int row = 1; row <= 10; row++) {
        int cells = csv_row(text, row, fields, 16);
        if (cells != 10) fail("--confusion", "row %d has %d cells", row, cells);
        for (int i = 0; i < cells; i++) total += atoll(fields[i]);
    }
    if (csv_row(text, 0, fields, 16) != 10 || strcmp(fields[0], "T-shirt/top") != 0 || total != 100)
        fail("--confusion", "header or counts wrong (%lld images, expected 100):\n%s", (long long)total, text);

    // The step schedule: the lr column holds each epoch's last rate (gamma 0.5 every epoch).
    snprintf(args, sizeof args,
             "--data '%s' --epochs 2 --batch-size 64 --threads 1 --optimizer sgd --lr 0.1 --lr-schedule step "
             "--step-size 1 --gamma 0.5 --quiet --log '%s'", run_dir, log_path);
    r = run(args);
    read_text(log_path, text, sizeof text);
    char second[16][48];
    int n1 = csv_row(text, 1, fields, 16), n2 = csv_row(text, 2, second, 16);
    if (r->exit_code != 0 || n1 < 10 || n2 < 10 || strcmp(fields[9], "0.1") != 0 || strcmp(second[9], "0.05") != 0)
        fail("cnn --lr-schedule step", "exit %d, lr %s then %s (expected 0.1 then 0.05)", r->exit_code,
             n1 >= 10 ? fields[9] : "?", n2 >= 10 ? second[9] : "?");

    // The same seed, the same augmented run: the same log.
    char first_log[4096], again_log[4096];
    snprintf(args, sizeof args,
             "--data '%s' --epochs 2 --batch-size 32 --threads 1 --augment on --cutout 6 --padding-mode reflect "
             "--lr-schedule cosine --warmup 0.5 --quiet --log '%s'", run_dir, log_path);
    r = run(args);
    read_text(log_path, text, sizeof text);
    without_timing(text, first_log, sizeof first_log);
    r = run(args);
    read_text(log_path, text, sizeof text);
    without_timing(text, again_log, sizeof again_log);
    if (r->exit_code != 0 || strcmp(first_log, again_log) != 0)
        fail("cnn augmented twice", "exit %d; logs:\n%s\n%s", r->exit_code, first_log, again_log);
    else
        printf("cnn with the recipe: onecycle lr 2e-07 at the end, step lr 0.1 then 0.05, augmented runs repeat:\n%s",
               first_log);

    // Bad combinations: one line naming the flag (and the second needle, where there is one).
    static const struct {
        const char *args, *flag, *also;
    } refused[] = {
        {"--optimizer sgd --nesterov", "--nesterov", "--momentum"},
        {"--momentum 0.9", "--momentum", NULL},
        {"--lr-schedule cosine_annealing", "--lr-schedule", "cosine_annealing"},
        {"--lr-schedule onecycle --warmup 1", "--warmup", "onecycle"},
        {"--cutout 8", "--cutout", "--augment on"},
        {"--crop-padding 2 --augment off", "--crop-padding", "--augment on"},
        {"--label-smoothing 1", "--label-smoothing", NULL},
        {"--augment on --padding-mode reflect --crop-padding 28", "--padding-mode", "28"},
        {"--flip sometimes", "--flip", "sometimes"},
        {"--clip-grad-norm -1", "--clip-grad-norm", NULL},
        {"--confusion /nonexistent-cgrad-dir/c.csv", "--confusion", "/nonexistent-cgrad-dir/c.csv"},
        {"--optimizer rmsprop", "--optimizer", "rmsprop"},
        // --recipe airbench94 sets the recipe itself, for the fast network; fractions of epochs only there.
        {"--model fast --recipe airbench94 --lr 0.1", "--recipe airbench94", "--augment"},
        {"--recipe airbench94", "--recipe airbench94", "--model fast"},
        {"--recipe airbench3", "--recipe", "airbench3"},
        {"--epochs 2.5", "--epochs", "2.5"},
    };
    char bad[1024];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(bad, sizeof bad, "--data '%s' %s", run_dir, refused[i].args);
        expect_refused(bad, refused[i].flag, refused[i].also);
    }
    snprintf(bad, sizeof bad, "--data '%s' --model fast --recipe airbench94 --save-every 1 --save '%s/w.st'", run_dir, run_dir);
    expect_refused(bad, "--recipe airbench94", "--save-every");

    unlink(log_path), unlink(confusion_path);
    remove_fake_fashion_mnist(run_dir);
}

int main(int argc, char **argv) {
    if (!run_begin_program("test_recipe", "cnn", argc, argv)) return 1;
    test_clip();
    test_topk_and_confusion();
    test_augmentation();
    test_cnn();
    run_end();
    return check_summary("test_recipe");
}

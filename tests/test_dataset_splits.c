// test_dataset_splits.c: choosing and reporting the splits of a data set, on small files this test
// writes in the official formats: an image folder with test/ instead of val/ (and val/ preferred
// when both are there), the report of what a load did with the decoded cache (written, used,
// rebuilt, off, not writable) and how long it took, TinyImageNet-200 through the same call, and
// the class-balanced subset of cnn --limit on CIFAR-10 binary files whose records are in class
// order. CPU only. The loaders themselves are tested in test_image_folder.c and test_idx_cifar.c.
#define _POSIX_C_SOURCE 200809L
#pragma GCC diagnostic ignored "-Wunused-function" // dataset_files.h's helpers this test does not need
#include "datasets/cifar.h"
#include "datasets/image_folder.h"
#include "tests/dataset_files.h"

#include <fcntl.h> // AT_FDCWD, for utimensat

// stb_image_write (Debian's libstb-dev) writes the PNG and JPEG files; static, private to this file.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

enum { SIDE = 4 };

// A SIDE x SIDE RGB PNG whose every byte is `value` (lossless, so pixels check exactly).
static void write_flat_png(const char *path, uint8_t value) {
    uint8_t img[SIDE * SIDE * 3];
    memset(img, value, sizeof img);
    char *dir = strdup(path);
    *strrchr(dir, '/') = '\0';
    make_dirs(dir);
    free(dir);
    if (!stbi_write_png(path, SIDE, SIDE, 3, img, SIDE * 3)) {
        fprintf(stderr, "%s: stbi_write_png %s failed\n", test_program, path);
        exit(1);
    }
}

static void write_flat_jpg(const char *path, uint8_t value) {
    uint8_t img[SIDE * SIDE * 3];
    memset(img, value, sizeof img);
    char *dir = strdup(path);
    *strrchr(dir, '/') = '\0';
    make_dirs(dir);
    free(dir);
    if (!stbi_write_jpg(path, SIDE, SIDE, 3, img, 95)) {
        fprintf(stderr, "%s: stbi_write_jpg %s failed\n", test_program, path);
        exit(1);
    }
}

static const char *cache_name(cg_image_cache c) {
    static const char *const names[] = {"off", "used", "written", "rebuilt", "not written"};
    return (unsigned)c < 5 ? names[c] : "?";
}

// Loads one split and checks the report: split name, folder suffix, cache state, image count.
static void expect_split(cg_image_layout layout, const char *dir, bool train, bool use_cache, const char *split,
                         cg_image_cache cache, int64_t images, const char *what) {
    cg_image_load_report r;
    cg_dataset *d = NULL;
    if (!expect_ok(cg_image_dataset_load(layout, dir, train, use_cache, &r, &d), what)) return;
    char text[3000];
    cg_image_load_describe(&r, text, sizeof text);
    char want_folder[1100];
    snprintf(want_folder, sizeof want_folder, "%s/%s", dir, split);
    if (strcmp(r.split, split) != 0) fail(what, "read the %s split, expected %s", r.split, split);
    if (strcmp(r.folder, want_folder) != 0) fail(what, "folder %s, expected %s", r.folder, want_folder);
    if (r.cache != cache) fail(what, "cache %s, expected %s", cache_name(r.cache), cache_name(cache));
    if (r.images != images || d->count != images)
        fail(what, "%lld images (data set %lld), expected %lld", (long long)r.images, (long long)d->count,
             (long long)images);
    if (!(r.seconds >= 0.0 && r.seconds < 60.0)) fail(what, "load time %g s", r.seconds);
    if (strstr(text, split) == NULL || strstr(text, want_folder) == NULL || strchr(text, '\n') != NULL)
        fail(what, "the description does not name the split and its folder on one line: %s", text);
    if (cache == CG_CACHE_USED && strstr(text, "from the decoded cache") == NULL)
        fail(what, "the description does not say the cache was used: %s", text);
    if (cache == CG_CACHE_REBUILT && strstr(text, "no longer matched") == NULL)
        fail(what, "the description does not say the cache was rebuilt: %s", text);
    if (cache == CG_CACHE_WRITTEN && strstr(text, "no decoded cache yet") == NULL)
        fail(what, "the description does not say the cache was new: %s", text);
    printf("  ok %-34s %s\n", what, text);
    cg_dataset_free(d);
}

static void test_folder_splits(void) {
    printf("image folder: train/ with val/ or test/, and the decoded cache's report\n");
    char *dir = fresh_dir("splits");
    char path[1200];
    const char *classes[2] = {"cat", "dog"};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/train/%s/%d.png", dir, classes[c], i);
            write_flat_png(path, (uint8_t)(10 * c + i));
        }
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/test/%s/t.png", dir, classes[c]);
        write_flat_png(path, (uint8_t)(100 + c));
    }
    // test/ and no val/: test/ is the evaluation split.
    expect_split(CG_IMAGE_SPLITS, dir, true, true, "train", CG_CACHE_WRITTEN, 6, "train, first load");
    expect_split(CG_IMAGE_SPLITS, dir, true, true, "train", CG_CACHE_USED, 6, "train, second load");
    expect_split(CG_IMAGE_SPLITS, dir, false, true, "test", CG_CACHE_WRITTEN, 2, "no val/: test/");
    expect_split(CG_IMAGE_SPLITS, dir, false, false, "test", CG_CACHE_OFF, 2, "test/ without the cache");

    // A new image makes the cache stale: decoded and rewritten, then used again.
    snprintf(path, sizeof path, "%s/train/dog/3.png", dir);
    write_flat_png(path, 13);
    expect_split(CG_IMAGE_SPLITS, dir, true, true, "train", CG_CACHE_REBUILT, 7, "train after a new image");
    expect_split(CG_IMAGE_SPLITS, dir, true, true, "train", CG_CACHE_USED, 7, "train, cache rewritten");
    // Touching an image (a newer modification time) makes it stale too.
    struct timespec later[2] = {{.tv_sec = 2000000000, .tv_nsec = 0}, {.tv_sec = 2000000000, .tv_nsec = 0}};
    utimensat(AT_FDCWD, path, later, 0);
    expect_split(CG_IMAGE_SPLITS, dir, true, true, "train", CG_CACHE_REBUILT, 7, "train after a touch");

    // A cache that cannot be written (its name taken by a folder): decoded, said so, no error.
    snprintf(path, sizeof path, "%s/test/.cgrad-cache.bin", dir);
    unlink(path);
    make_dirs(path);
    char inside[1300];
    snprintf(inside, sizeof inside, "%s/keep", path);
    write_text(inside, "a file, so that rename cannot replace the folder\n");
    fprintf(stderr, "(a warning about the decoded cache is expected next)\n");
    expect_split(CG_IMAGE_SPLITS, dir, false, true, "test", CG_CACHE_NOT_WRITTEN, 2, "test, cache not writable");
    remove_tree(path);

    // Both val/ and test/: val/ wins.
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/val/%s/v.png", dir, classes[c]);
        write_flat_png(path, (uint8_t)(200 + c));
    }
    snprintf(path, sizeof path, "%s/val/dog/w.png", dir);
    write_flat_png(path, 210);
    expect_split(CG_IMAGE_SPLITS, dir, false, true, "val", CG_CACHE_WRITTEN, 3, "val/ and test/: val/");

    // Neither, or no train/: one error naming what was looked for.
    cg_dataset *d = NULL;
    char *val = path_of(dir, "val"), *test = path_of(dir, "test"), *train = path_of(dir, "train");
    remove_tree(val);
    remove_tree(test);
    expect_error(cg_image_dataset_load(CG_IMAGE_SPLITS, dir, false, true, NULL, &d), d, "neither val/ nor test/", val,
                 "neither");
    if (d == NULL) {
        cg_status s = cg_image_dataset_load(CG_IMAGE_SPLITS, dir, false, true, NULL, &d);
        if (strstr(s.message, test) == NULL) fail("neither val/ nor test/", "test/ is not named: %s", s.message);
    }
    remove_tree(train);
    expect_error(cg_image_dataset_load(CG_IMAGE_SPLITS, dir, true, true, NULL, &d), d, "no train/", train, "missing");
    free(val);
    free(test);
    free(train);
    free(dir);
}

static void test_tiny_report(void) {
    printf("TinyImageNet-200 through cg_image_dataset_load\n");
    char *root = fresh_dir("tiny-imagenet-200");
    char path[1200];
    snprintf(path, sizeof path, "%s/wnids.txt", root);
    write_text(path, "n01\nn02\n");
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/train/n0%d/images/n0%d_%d.JPEG", root, c + 1, c + 1, i);
            write_flat_jpg(path, (uint8_t)(50 * c + i));
        }
    snprintf(path, sizeof path, "%s/val/images/val_0.JPEG", root);
    write_flat_jpg(path, 7);
    snprintf(path, sizeof path, "%s/test/images/test_0.JPEG", root); // unlabelled: never read
    write_flat_jpg(path, 9);
    snprintf(path, sizeof path, "%s/val/val_annotations.txt", root);
    write_text(path, "val_0.JPEG\tn02\t0\t0\t3\t3\n");
    expect_split(CG_IMAGE_TINYIMAGENET, root, true, true, "train", CG_CACHE_WRITTEN, 4, "tiny train, first load");
    expect_split(CG_IMAGE_TINYIMAGENET, root, true, true, "train", CG_CACHE_USED, 4, "tiny train, second load");
    expect_split(CG_IMAGE_TINYIMAGENET, root, false, true, "val", CG_CACHE_WRITTEN, 1, "tiny val (test/ unlabelled)");
    free(root);
}

// ---- the class-balanced subset ------------------------------------------------------------------

// Pixel p of CIFAR record r of this test: a pattern that tells records apart.
static uint8_t pixel_of(int r, int p) { return (uint8_t)(r * 7 + p * 13 + (p >> 8)); }

// CIFAR-10 binary records (label byte, then 3072 pixel bytes).
static void write_records(const char *path, const uint8_t *labels, int first, int count) {
    size_t n = (size_t)count * 3073;
    uint8_t *buf = malloc(n + 1);
    for (int k = 0; k < count; k++) {
        buf[(size_t)k * 3073] = labels[first + k];
        for (int p = 0; p < 3072; p++) buf[(size_t)k * 3073 + 1 + (size_t)p] = pixel_of(first + k, p);
    }
    write_file(path, buf, n);
    free(buf);
}

static void test_balanced_subset(void) {
    printf("class-balanced subset (cnn --limit) on CIFAR-10 binary files in class order\n");
    // 42 training records sorted by class, as a folder listing gives them: classes 0 and 1 have
    // 6 images, class 2 has 2, the 7 others 4 each. The first 25 in file order would be classes
    // 0 to 4 only.
    enum { TOTAL = 42 };
    uint8_t labels[TOTAL + 2];
    int per_class[10] = {6, 6, 2, 4, 4, 4, 4, 4, 4, 4}, n = 0;
    for (int c = 0; c < 10; c++)
        for (int i = 0; i < per_class[c]; i++) labels[n++] = (uint8_t)c;
    labels[n++] = 3; // the two test records
    labels[n++] = 5;
    char *dir = fresh_dir("cifar-10-batches-bin");
    const int batch_sizes[5] = {10, 10, 10, 10, 2};
    char name[64];
    int first = 0;
    for (int b = 0; b < 5; b++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        char *p = path_of(dir, name);
        write_records(p, labels, first, batch_sizes[b]);
        first += batch_sizes[b];
        free(p);
    }
    char *test = path_of(dir, "test_batch.bin"), *meta = path_of(dir, "batches.meta.txt");
    write_records(test, labels, TOTAL, 2);
    write_text(meta, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n");

    cg_dataset *d = NULL;
    if (expect_ok(cg_cifar10_load(dir, true, &d), "cifar10 train for the subset") &&
        expect_ok(cg_dataset_keep_balanced(d, 25), "keep 25")) {
        // Round robin: two full rounds of 10, then class 2 has nothing left and classes 0, 1, 3,
        // 4, 5 give one more each.
        const int want_count[10] = {3, 3, 2, 3, 3, 3, 2, 2, 2, 2};
        int got_count[10] = {0}, start[10] = {0};
        for (int c = 1; c < 10; c++) start[c] = start[c - 1] + per_class[c - 1];
        bool ok = d->count == 25;
        for (int64_t k = 0; ok && k < d->count; k++) {
            int c = d->labels[k];
            // The j-th kept image of class c is record start[c] + j, and its pixels came with it.
            int record = start[c] + got_count[c]++;
            for (int p = 0; p < 3072; p += 97)
                if (d->pixels[(size_t)k * 3072 + (size_t)p] != pixel_of(record, p)) {
                    fail("keep 25", "sample %lld (class %d) has the pixels of another record than %d", (long long)k, c,
                         record);
                    ok = false;
                    break;
                }
        }
        for (int c = 0; ok && c < 10; c++)
            if (got_count[c] != want_count[c]) {
                fail("keep 25", "class %d has %d images, expected %d", c, got_count[c], want_count[c]);
                ok = false;
            }
        for (int k = 0; ok && k < 10; k++)
            if (d->labels[k] != k) fail("keep 25", "sample %d has label %d: expected the classes in turn", k, d->labels[k]);
        if (d->count != 25) fail("keep 25", "%lld samples kept", (long long)d->count);
        if (ok) printf("  ok keep 25 of 42: per class 3 3 2 3 3 3 2 2 2 2, the first of each class, pixels moved\n");

        if (expect_ok(cg_dataset_keep_balanced(d, 100), "keep more than there is") && d->count != 25)
            fail("keep more than there is", "%lld samples, expected 25 unchanged", (long long)d->count);
        cg_status s = cg_dataset_keep_balanced(d, 0);
        if (s.code != CG_ERR_ARG) fail("keep 0", "expected CG_ERR_ARG, got %d", s.code);
        else printf("  ok keep 0 refused: %s\n", s.message);
    }
    cg_dataset_free(d);

    // An f32 data set (the synthetic kind): features move with their labels.
    cg_dataset *f = calloc(1, sizeof *f);
    f->count = 6;
    f->sample_ndim = 1;
    f->sample_shape[0] = 2;
    f->sample_numel = 2;
    f->dtype = CG_F32;
    f->num_classes = 2;
    f->x = malloc(12 * sizeof(float));
    f->labels = malloc(6 * sizeof(int32_t));
    const int32_t f_labels[6] = {0, 0, 0, 0, 1, 1};
    for (int i = 0; i < 6; i++) {
        f->labels[i] = f_labels[i];
        f->x[2 * i] = (float)i;
        f->x[2 * i + 1] = (float)(-i);
    }
    if (expect_ok(cg_dataset_keep_balanced(f, 3), "keep 3 of f32")) {
        const int want_from[3] = {0, 4, 1}; // class 0, class 1, class 0
        for (int k = 0; k < 3; k++)
            if (f->x[2 * k] != (float)want_from[k] || f->x[2 * k + 1] != (float)(-want_from[k]) ||
                f->labels[k] != f_labels[want_from[k]])
                fail("keep 3 of f32", "sample %d is (%g, %g) label %d, expected sample %d", k, f->x[2 * k],
                     f->x[2 * k + 1], f->labels[k], want_from[k]);
        if (f->count != 3) fail("keep 3 of f32", "%lld samples", (long long)f->count);
        printf("  ok keep 3 of an f32 data set: samples 0, 4, 1\n");
    }
    cg_dataset_free(f);
    free(test);
    free(meta);
    free(dir);
}

int main(void) {
    dataset_test_begin("test_dataset_splits");
    test_folder_splits();
    test_tiny_report();
    test_balanced_subset();
    return dataset_test_end();
}

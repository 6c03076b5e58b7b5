// test_image_folder.c: the ImageFolder loader (PNG and JPEG through stb_image) and the
// TinyImageNet-200 layout on small trees this test writes into a temporary folder; the decoded
// cache (used the second time, invalidated when the file list changes); and broken inputs (bad
// PNG or JPEG, empty classes, ...) that must each give a clear error naming the file.
// CPU only. IDX and CIFAR are tested in test_idx_cifar.c, the loader that batches these data sets
// in test_loader.c; the shared helpers are in dataset_files.h.
#define _POSIX_C_SOURCE 200809L
#include "datasets/image_folder.h"
#include "tests/dataset_files.h"

#include <fcntl.h> // AT_FDCWD, for utimensat

// stb_image_write (Debian's libstb-dev) writes the test's PNG and JPEG files; static, so its
// functions stay private to this file.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

// ---- image folders ----------------------------------------------------------------------------------

enum { IMG_W = 6, IMG_H = 5 };

// A test image (H, W, channels) interleaved, as stb_image_write takes it; `seed` varies it.
static void make_image(uint8_t *rgb, int w, int h, int channels, int seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                rgb[(y * w + x) * channels + c] = (uint8_t)(seed * 40 + x * 9 + y * 5 + c * 60);
}

static void write_png(const char *path, int w, int h, int channels, int seed) {
    uint8_t *img = malloc((size_t)w * h * channels);
    make_image(img, w, h, channels, seed);
    if (!stbi_write_png(path, w, h, channels, img, w * channels)) {
        fprintf(stderr, "%s: stbi_write_png %s failed\n", test_program, path);
        exit(1);
    }
    free(img);
}

// A JPEG of one flat colour (seed) with a gentle ramp: little JPEG loss, checked approximately.
static void write_jpg(const char *path, int w, int h, int seed) {
    uint8_t *img = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        img[3 * i] = (uint8_t)(40 + 30 * seed);
        img[3 * i + 1] = (uint8_t)(200 - 20 * seed);
        img[3 * i + 2] = (uint8_t)(100 + (i % w));
    }
    if (!stbi_write_jpg(path, w, h, 3, img, 95)) {
        fprintf(stderr, "%s: stbi_write_jpg %s failed\n", test_program, path);
        exit(1);
    }
    free(img);
}

// Sample i of d against make_image(seed) with `channels` channels written (1: gray to RGB, 4: alpha dropped).
static void check_png_sample(const cg_dataset *d, int64_t i, int channels, int seed, const char *what) {
    uint8_t *img = malloc((size_t)IMG_W * IMG_H * channels);
    make_image(img, IMG_W, IMG_H, channels, seed);
    const uint8_t *s = d->pixels + i * d->sample_numel;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < IMG_H; y++)
            for (int x = 0; x < IMG_W; x++) {
                uint8_t want = img[(y * IMG_W + x) * channels + (channels == 1 ? 0 : c)];
                uint8_t got = s[(c * IMG_H + y) * IMG_W + x];
                if (got != want) {
                    fail(what, "sample %lld (c %d, y %d, x %d) is %u, expected %u", (long long)i, c, y, x, got, want);
                    free(img);
                    return;
                }
            }
    free(img);
}

static void check_jpg_sample(const cg_dataset *d, int64_t i, int w, int h, int seed, const char *what) {
    const uint8_t *s = d->pixels + i * d->sample_numel;
    int worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int want[3] = {40 + 30 * seed, 200 - 20 * seed, 100 + x};
            for (int c = 0; c < 3; c++) {
                int diff = abs((int)s[(c * h + y) * w + x] - want[c]);
                if (diff > worst) worst = diff;
            }
        }
    if (worst > 12) fail(what, "sample %lld differs from the JPEG's source by up to %d (allowed 12)", (long long)i, worst);
}


// Loads root as an ImageFolder; *from_cache set.
static cg_dataset *load_folder(const char *root, bool use_cache, bool *from_cache, const char *what) {
    cg_dataset *d = NULL;
    if (!expect_ok(cg_image_folder_load(root, use_cache, from_cache, &d), what)) return NULL;
    return d;
}

static void test_image_folder(void) {
    printf("ImageFolder (PNG and JPEG through stb_image)\n");
    char *root = fresh_dir("folder");
    char *cat = path_of(root, "cat"), *dog = path_of(root, "dog"), *dog_sub = path_of(root, "dog/sub");
    char *hidden = path_of(root, ".hidden");
    make_dirs(cat);
    make_dirs(dog_sub);
    make_dirs(hidden);
    char *p_a = path_of(cat, "a.png"), *p_b = path_of(cat, "b.JPG"), *p_x = path_of(dog, "x.png");
    char *p_y = path_of(dog_sub, "y.png"), *p_z = path_of(dog, "z.png");
    write_png(p_a, IMG_W, IMG_H, 3, 1);
    write_jpg(p_b, IMG_W, IMG_H, 2);
    write_png(p_x, IMG_W, IMG_H, 1, 3);  // grayscale: becomes 3 equal channels
    write_png(p_y, IMG_W, IMG_H, 3, 4);
    write_png(p_z, IMG_W, IMG_H, 4, 5);  // RGBA: alpha dropped
    char *ignored = path_of(dog, "notes.txt"), *ignored2 = path_of(root, "README.txt");
    char *hidden_img = path_of(hidden, "h.png");
    write_text(ignored, "not an image\n");
    write_text(ignored2, "not a class\n");
    write_png(hidden_img, 3, 3, 3, 0); // in a hidden folder: neither a class nor an image

    // Expected order: cat/a.png, cat/b.JPG, dog/x.png, dog/z.png, dog/sub/y.png (folder, then name).
    char *cache = path_of(root, ".cgrad-cache.bin");
    bool from_cache = true;
    cg_dataset *d = load_folder(root, true, &from_cache, "folder first load");
    if (d != NULL) {
        if (d->count != 5 || d->num_classes != 2 || d->sample_shape[0] != 3 || d->sample_shape[1] != IMG_H ||
            d->sample_shape[2] != IMG_W || d->dtype != CG_U8)
            fail("folder shape", "count %lld, classes %d, shape (%lld, %lld, %lld); expected 5, 2, (3, 5, 6)",
                 (long long)d->count, d->num_classes, (long long)d->sample_shape[0], (long long)d->sample_shape[1],
                 (long long)d->sample_shape[2]);
        else {
            if (strcmp(d->class_names[0], "cat") != 0 || strcmp(d->class_names[1], "dog") != 0)
                fail("folder names", "'%s', '%s'; expected cat, dog", d->class_names[0], d->class_names[1]);
            const int32_t want_labels[5] = {0, 0, 1, 1, 1};
            for (int i = 0; i < 5; i++)
                if (d->labels[i] != want_labels[i]) fail("folder labels", "label %d is %d", i, d->labels[i]);
            check_png_sample(d, 0, 3, 1, "folder png rgb");
            check_jpg_sample(d, 1, IMG_W, IMG_H, 2, "folder jpeg");
            check_png_sample(d, 2, 1, 3, "folder png gray");
            check_png_sample(d, 3, 4, 5, "folder png rgba");
            check_png_sample(d, 4, 3, 4, "folder png in a subfolder");
        }
        if (from_cache) fail("folder first load", "said it came from the cache");
        if (!file_exists(cache)) fail("folder cache", "%s was not written", cache);
        printf("  ok folder: 5 images, 2 classes, PNG exact (RGB, gray, RGBA), JPEG within 12, cache written\n");
    }

    // The second load must come from the cache. To prove it, one cached byte is changed (the
    // fingerprint still matches): a decoded load would not see it.
    size_t clen = 0;
    uint8_t *cbytes = read_whole(cache, &clen);
    size_t want_len = 64 + 5 * 3 * IMG_H * IMG_W;
    if (clen != want_len) fail("folder cache", "%zu bytes, expected %zu", clen, want_len);
    const uint8_t original = d ? d->pixels[0] : 0, patched = (uint8_t)(255 - original);
    cbytes[64] = patched;
    write_file(cache, cbytes, clen);
    cg_dataset *again = load_folder(root, true, &from_cache, "folder second load");
    if (again != NULL) {
        if (!from_cache) fail("folder second load", "did not use the cache");
        if (again->pixels[0] != patched)
            fail("folder second load", "pixel 0 is %u: not the cached (patched) value %u", again->pixels[0], patched);
        size_t rest = d ? (size_t)(d->count * d->sample_numel) - 1 : 0;
        if (d && (again->count != d->count || memcmp(again->pixels + 1, d->pixels + 1, rest) != 0 ||
                  memcmp(again->labels, d->labels, sizeof(int32_t) * (size_t)d->count) != 0))
            fail("folder second load", "the cached data set differs from the decoded one");
        printf("  ok folder cache: the second load comes from the cache (a patched cached byte shows)\n");
    }
    cg_dataset_free(again);

    // use_cache = false: decodes (the patched byte is gone) and leaves the cache alone.
    again = load_folder(root, false, &from_cache, "folder without cache");
    if (again != NULL && (from_cache || again->pixels[0] != original))
        fail("folder without cache", "from_cache %d, pixel 0 %u (expected %u, decoded)", from_cache, again->pixels[0],
             original);
    cg_dataset_free(again);

    // A new image changes the file list: the cache is ignored, the images decoded, the cache rewritten.
    char *p_c = path_of(cat, "c.png");
    write_png(p_c, IMG_W, IMG_H, 3, 6);
    again = load_folder(root, true, &from_cache, "folder after a new file");
    if (again != NULL) {
        if (from_cache) fail("folder after a new file", "used the stale cache");
        if (again->count != 6 || again->pixels[0] != original)
            fail("folder after a new file", "count %lld, pixel 0 %u; expected 6 and %u", (long long)again->count,
                 again->pixels[0], original);
        else check_png_sample(again, 2, 3, 6, "folder new file");
    }
    cg_dataset_free(again);
    again = load_folder(root, true, &from_cache, "folder cache rewritten");
    if (again != NULL && (!from_cache || again->count != 6))
        fail("folder cache rewritten", "from_cache %d, count %lld; expected the new cache of 6", from_cache,
             (long long)again->count);
    cg_dataset_free(again);

    // Moving an image to another class (same count, bytes and times) also invalidates it.
    char *moved = path_of(dog, "c.png");
    rename(p_c, moved);
    again = load_folder(root, true, &from_cache, "folder after a move");
    if (again != NULL && (from_cache || again->labels[2] != 1 || again->labels[5] != 1))
        fail("folder after a move", "from_cache %d; expected a fresh decode with c.png in class 1", from_cache);
    cg_dataset_free(again);
    printf("  ok folder cache: a new file and a moved file each invalidate it; use_cache=false bypasses it\n");

    // Touching a file (a newer modification time) invalidates it too.
    again = load_folder(root, true, &from_cache, "folder before touch");
    cg_dataset_free(again);
    const struct timespec newer[2] = {{2000000000, 0}, {2000000000, 0}}; // access, modification (2033)
    if (utimensat(AT_FDCWD, p_y, newer, 0) != 0) fail("folder touch", "utimensat on %s failed", p_y);
    again = load_folder(root, true, &from_cache, "folder after touch");
    if (again != NULL && from_cache) fail("folder after touch", "used the cache of the older file");
    cg_dataset_free(again);

    // A damaged cache is ignored (and rewritten), not an error.
    write_text(cache, "CGRADIMG garbage");
    again = load_folder(root, true, &from_cache, "folder damaged cache");
    if (again != NULL && (from_cache || again->count != 6)) fail("folder damaged cache", "from_cache %d", from_cache);
    cg_dataset_free(again);
    again = load_folder(root, true, &from_cache, "folder repaired cache");
    if (again != NULL && !from_cache) fail("folder repaired cache", "the cache was not rewritten");
    cg_dataset_free(again);
    printf("  ok folder cache: a newer file time and a damaged cache each lead to a fresh decode\n");

    cg_dataset_free(d);
    free(cbytes);
    free(moved);
    free(p_c);
    free(cache);
    free(hidden_img);
    free(ignored);
    free(ignored2);
    free(p_a);
    free(p_b);
    free(p_x);
    free(p_y);
    free(p_z);
    free(hidden);
    free(cat);
    free(dog);
    free(dog_sub);
    free(root);
}

// A folder root/name with class "ok" holding good.png, and bad (a file name) in it; returns root.
static char *broken_folder(const char *name, const char *bad_name, char **bad_path) {
    char *root = fresh_dir(name);
    char *cls = path_of(root, "ok");
    make_dirs(cls);
    char *good = path_of(cls, "a-good.png");
    write_png(good, IMG_W, IMG_H, 3, 1);
    *bad_path = path_of(cls, bad_name);
    free(good);
    free(cls);
    return root;
}

static void test_image_folder_errors(void) {
    printf("ImageFolder, broken inputs\n");
    cg_dataset *d = NULL;
    char *bad;

    // A JPEG cut short: stb_image would decode it as grey without complaint.
    char *root = broken_folder("folder-truncated-jpeg", "b.jpg", &bad);
    write_jpg(bad, IMG_W, IMG_H, 1);
    size_t len;
    uint8_t *jpg = read_whole(bad, &len);
    write_file(bad, jpg, len * 2 / 3);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "truncated JPEG", bad, "truncated JPEG");
    // A JPEG whose Huffman table header is corrupt (class 5, number 7): refused before stb_image.
    for (size_t i = 0; i + 4 < len; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) { // DHT marker; byte i+4 is Tc/Th
            jpg[i + 4] = 0x57;
            break;
        }
    write_file(bad, jpg, len);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "corrupt JPEG", bad, "corrupt JPEG: a Huffman table");
    // A JPEG frame header (SOF0) claiming 65535 x 65535 pixels: stb_image refuses it
    // (STBI_MAX_DIMENSIONS) before allocating.
    write_jpg(bad, IMG_W, IMG_H, 1);
    free(jpg);
    jpg = read_whole(bad, &len);
    for (size_t i = 0; i + 9 < len; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) { // SOF0: length (2), precision (1), height (2), width (2)
            jpg[i + 5] = jpg[i + 6] = jpg[i + 7] = jpg[i + 8] = 0xFF;
            break;
        }
    write_file(bad, jpg, len);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "oversized JPEG", bad, "too large");
    free(jpg);
    free(root);
    free(bad);

    root = broken_folder("folder-truncated-png", "b.png", &bad);
    write_png(bad, IMG_W, IMG_H, 3, 2);
    uint8_t *png = read_whole(bad, &len);
    write_file(bad, png, len - 20);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "truncated PNG", bad, "PNG");
    // A PNG header that claims 100000 x 1 pixels: refused before any pixel memory is allocated.
    put_be32(png + 16, 100000);
    put_be32(png + 20, 1);
    write_file(bad, png, len);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "oversized PNG", bad, "too large");
    free(png);
    free(root);
    free(bad);

    root = broken_folder("folder-gif-ext", "anim.gif", &bad);
    write_text(bad, "GIF89a\x01\x00\x01\x00");
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "unsupported type by extension", bad,
                 "unsupported image type .gif");
    free(root);
    free(bad);

    root = broken_folder("folder-gif-content", "fake.png", &bad);
    write_text(bad, "GIF89a\x01\x00\x01\x00 a GIF named .png");
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "unsupported type by content", bad,
                 "unsupported image type: a GIF file");
    write_text(bad, "just some text in a .png file");
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "not an image", bad, "not a JPEG");
    free(root);
    free(bad);

    root = broken_folder("folder-size", "b.png", &bad);
    write_png(bad, IMG_W + 1, IMG_H, 3, 2);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "image of another size", bad,
                 "7 x 5 pixels, expected 6 x 5 like");
    free(bad);
    char *empty = path_of(root, "zzz-empty");
    make_dirs(empty);
    bad = path_of(root, "ok/b.png");
    unlink(bad);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "empty class", empty, "no .jpg, .jpeg or .png");
    free(empty);
    free(root);
    free(bad);

    root = fresh_dir("folder-no-classes");
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "no class folders", root, "no class folders");
    free(root);
    char *missing = path_of(tmp_root, "no-such-folder");
    expect_error(cg_image_folder_load(missing, false, NULL, &d), d, "missing root", missing, "cannot open");
    free(missing);
}

// ---- TinyImageNet -------------------------------------------------------------------------------

static void test_tinyimagenet(void) {
    printf("TinyImageNet-200 layout\n");
    char *root = fresh_dir("tiny-imagenet-200");
    char *wnids = path_of(root, "wnids.txt"), *words = path_of(root, "words.txt");
    write_text(wnids, "n002\nn001\n"); // label order: n002 is 0, n001 is 1
    write_text(words, "n999\tsomething else\nn001\tcat, kitty\nn002\tdog, domestic dog, Canis familiaris\n");
    const char *files[3] = {"train/n002/images/n002_0.JPEG", "train/n002/images/n002_1.JPEG",
                            "train/n001/images/n001_0.JPEG"};
    const int seeds[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        char *p = path_of(root, files[i]);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        make_dirs(p);
        *slash = '/';
        write_jpg(p, 8, 8, seeds[i]);
        free(p);
    }
    char *boxes = path_of(root, "train/n002/n002_boxes.txt");
    write_text(boxes, "n002_0.JPEG\t0\t0\t7\t7\n");
    char *val_images = path_of(root, "val/images");
    make_dirs(val_images);
    char *v0 = path_of(val_images, "val_0.JPEG"), *v1 = path_of(val_images, "val_1.JPEG");
    write_jpg(v0, 8, 8, 3);
    write_jpg(v1, 8, 8, 4);
    char *ann = path_of(root, "val/val_annotations.txt");
    write_text(ann, "val_0.JPEG\tn001\t0\t0\t7\t7\nval_1.JPEG\tn002\t1\t1\t6\t6\n");

    cg_dataset *d = NULL;
    bool from_cache = true;
    if (expect_ok(cg_tinyimagenet_load(root, true, true, &from_cache, &d), "tiny train")) {
        if (d->count != 3 || d->num_classes != 2 || d->sample_shape[1] != 8 || d->sample_shape[2] != 8 || from_cache)
            fail("tiny train", "count %lld, classes %d, %lld x %lld, from_cache %d; expected 3, 2, 8 x 8, 0",
                 (long long)d->count, d->num_classes, (long long)d->sample_shape[1], (long long)d->sample_shape[2],
                 from_cache);
        else {
            const int32_t want[3] = {0, 0, 1};
            for (int i = 0; i < 3; i++) {
                if (d->labels[i] != want[i]) fail("tiny train labels", "label %d is %d, expected %d", i, d->labels[i], want[i]);
                check_jpg_sample(d, i, 8, 8, seeds[i], "tiny train pixels");
            }
            if (strcmp(d->class_names[0], "n002 dog") != 0 || strcmp(d->class_names[1], "n001 cat") != 0)
                fail("tiny names", "'%s', '%s'; expected 'n002 dog', 'n001 cat'", d->class_names[0], d->class_names[1]);
        }
        printf("  ok tiny train: 3 images in wnids.txt order, names from words.txt\n");
    }
    cg_dataset_free(d);
    d = NULL;
    char *train_cache = path_of(root, ".cgrad-cache-train.bin");
    if (!file_exists(train_cache)) fail("tiny cache", "%s was not written", train_cache);
    if (expect_ok(cg_tinyimagenet_load(root, true, true, &from_cache, &d), "tiny train again") && !from_cache)
        fail("tiny train again", "did not use the cache");
    cg_dataset_free(d);
    d = NULL;

    if (expect_ok(cg_tinyimagenet_load(root, false, true, &from_cache, &d), "tiny val")) {
        if (d->count != 2 || d->labels[0] != 1 || d->labels[1] != 0)
            fail("tiny val", "count %lld, labels %d %d; expected 2, labels 1 0", (long long)d->count, d->labels[0],
                 d->count > 1 ? d->labels[1] : -1);
        else {
            check_jpg_sample(d, 0, 8, 8, 3, "tiny val pixels");
            check_jpg_sample(d, 1, 8, 8, 4, "tiny val pixels");
        }
        printf("  ok tiny val: 2 images labelled by val_annotations.txt\n");
    }
    cg_dataset_free(d);
    d = NULL;
    char *val_cache = path_of(root, ".cgrad-cache-val.bin");
    if (!file_exists(val_cache)) fail("tiny cache", "%s was not written", val_cache);

    // Broken.
    write_text(ann, "val_0.JPEG\tn001\t0\t0\t7\t7\nval_1.JPEG\tn777\t1\t1\t6\t6\n");
    expect_error(cg_tinyimagenet_load(root, false, true, NULL, &d), d, "tiny unknown wnid", ann,
                 "class 'n777' of val_1.JPEG is not in wnids.txt");
    write_text(ann, "val_0.JPEG n001\n");
    expect_error(cg_tinyimagenet_load(root, false, true, NULL, &d), d, "tiny annotation without tab", ann,
                 "expected FILE<TAB>WNID");
    write_text(ann, "../../etc/passwd.png\tn001\n");
    expect_error(cg_tinyimagenet_load(root, false, true, NULL, &d), d, "tiny annotation path", ann,
                 "not a plain file name");
    write_text(wnids, "n002\nn001\nn002\n");
    expect_error(cg_tinyimagenet_load(root, true, true, NULL, &d), d, "tiny repeated wnid", wnids, "appears twice");
    write_text(wnids, "n002\nn001\nn003\n");
    expect_error(cg_tinyimagenet_load(root, true, true, NULL, &d), d, "tiny missing class", "train/n003/images",
                 "class n003");
    free(val_cache);
    free(train_cache);
    free(ann);
    free(v0);
    free(v1);
    free(val_images);
    free(boxes);
    free(wnids);
    free(words);
    free(root);
}

int main(void) {
    dataset_test_begin("test_image_folder");
    test_image_folder();
    test_image_folder_errors();
    test_tinyimagenet();
    return dataset_test_end();
}

// test_datasets.c: the file loaders (idx, cifar, image_folder) on small files this test writes in
// the official formats into a temporary folder, and on broken ones that must each give a clear
// error (status not OK, the file named, what was wrong). The decoded cache: used the second time,
// invalidated when the file list changes. tools/download_datasets.sh --dry-run. Then the real
// Fashion-MNIST when it is installed (/usr/share/datasets/fashion-mnist; that part is skipped,
// not the test, when it is absent).
// CPU only; the loader that batches these data sets is tested in test_loader.c.
#define _POSIX_C_SOURCE 200809L
#include "../datasets/cifar.h"
#include "../datasets/idx.h"
#include "../datasets/image_folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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

static int failures = 0;
static char tmp_root[256];

// Print "FAIL what: message" and count it; the test goes on to report every difference.
static void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failures++;
}

static bool expect_ok(cg_status s, const char *what) {
    if (s.code != CG_OK) {
        fail(what, "expected success, got error %d: %s", s.code, s.message);
        return false;
    }
    return true;
}

// The load must fail, and its message must contain `file` and `reason` (either may be NULL).
static void expect_error(cg_status s, cg_dataset *d, const char *what, const char *file, const char *reason) {
    if (s.code == CG_OK) {
        fail(what, "expected an error, the load succeeded");
        cg_dataset_free(d);
        return;
    }
    if (d != NULL) fail(what, "an error, but *out is not NULL");
    if (file != NULL && strstr(s.message, file) == NULL)
        fail(what, "the message does not name %s: %s", file, s.message);
    if (reason != NULL && strstr(s.message, reason) == NULL)
        fail(what, "the message does not say '%s': %s", reason, s.message);
    if (strchr(s.message, '\n') != NULL) fail(what, "the message is not one line: %s", s.message);
    printf("  ok (error as expected) %-34s %s\n", what, s.message);
}

// ---- files ----------------------------------------------------------------------------------------

static char *path_of(const char *a, const char *b) {
    char *p = malloc(strlen(a) + strlen(b) + 2);
    sprintf(p, "%s/%s", a, b);
    return p;
}

// mkdir -p of dir (relative to nothing: a full path).
static void make_dirs(const char *dir) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test_datasets: cannot write %s\n", path);
        exit(1);
    }
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (g == NULL || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
        fprintf(stderr, "test_datasets: cannot write %s\n", path);
        exit(1);
    }
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "test_datasets: cannot read %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dp = opendir(path);
        struct dirent *de;
        while (dp != NULL && (de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char *child = path_of(path, de->d_name);
            remove_tree(child);
            free(child);
        }
        if (dp) closedir(dp);
        rmdir(path);
    } else {
        unlink(path);
    }
}

// A new empty folder tmp_root/name.
static char *fresh_dir(const char *name) {
    char *dir = path_of(tmp_root, name);
    remove_tree(dir);
    make_dirs(dir);
    return dir;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// ---- IDX --------------------------------------------------------------------------------------------

enum { IDX_N = 5, IDX_ROWS = 4, IDX_COLS = 3 };
static const uint8_t IDX_LABELS[IDX_N] = {3, 0, 9, 1, 7};

static uint8_t idx_pixel(int i, int r, int c) { return (uint8_t)(i * 31 + r * 7 + c * 101); }

// An IDX images file of n images (magic 0x00000803, sizes n, rows, cols); *len bytes.
static uint8_t *idx_images(uint32_t n, uint32_t rows, uint32_t cols, size_t *len) {
    *len = 16 + (size_t)n * rows * cols;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x00000803);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < cols; c++) b[16 + (i * rows + r) * cols + c] = idx_pixel((int)i, (int)r, (int)c);
    return b;
}

static uint8_t *idx_labels(uint32_t n, const uint8_t *labels, size_t *len) {
    *len = 8 + n;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    memcpy(b + 8, labels, n);
    return b;
}

static void check_idx(const cg_dataset *d, const char *what, const char *name9) {
    if (d->count != IDX_N || d->sample_ndim != 3 || d->sample_shape[0] != 1 || d->sample_shape[1] != IDX_ROWS ||
        d->sample_shape[2] != IDX_COLS || d->sample_numel != IDX_ROWS * IDX_COLS || d->dtype != CG_U8 ||
        d->num_classes != 10 || d->pixels == NULL || d->x != NULL)
        fail(what, "count %lld, shape (%lld, %lld, %lld), classes %d; expected 5 of (1, 4, 3) u8, 10 classes",
             (long long)d->count, (long long)d->sample_shape[0], (long long)d->sample_shape[1],
             (long long)d->sample_shape[2], d->num_classes);
    for (int i = 0; i < IDX_N; i++) {
        if (d->labels[i] != IDX_LABELS[i]) fail(what, "label %d is %d, expected %d", i, d->labels[i], IDX_LABELS[i]);
        for (int r = 0; r < IDX_ROWS; r++)
            for (int c = 0; c < IDX_COLS; c++) {
                uint8_t got = d->pixels[(i * IDX_ROWS + r) * IDX_COLS + c];
                if (got != idx_pixel(i, r, c)) {
                    fail(what, "pixel (%d, %d, %d) is %u, expected %u", i, r, c, got, idx_pixel(i, r, c));
                    return;
                }
            }
    }
    if (d->class_names == NULL || strcmp(d->class_names[9], name9) != 0)
        fail(what, "class 9 is named '%s', expected '%s'", d->class_names ? d->class_names[9] : "(none)", name9);
}

static void test_idx(void) {
    printf("IDX (MNIST / Fashion-MNIST)\n");
    size_t ilen, llen;
    uint8_t *images = idx_images(IDX_N, IDX_ROWS, IDX_COLS, &ilen);
    uint8_t *labels = idx_labels(IDX_N, IDX_LABELS, &llen);

    // Plain files, the training names.
    char *plain = fresh_dir("idx-plain");
    char *p_img = path_of(plain, "train-images-idx3-ubyte"), *p_lab = path_of(plain, "train-labels-idx1-ubyte");
    write_file(p_img, images, ilen);
    write_file(p_lab, labels, llen);
    cg_dataset *d = NULL;
    if (expect_ok(cg_idx_load(plain, true, CG_IDX_MNIST, &d), "idx plain")) {
        check_idx(d, "idx plain", "9");
        if (strcmp(d->class_names[0], "0") != 0) fail("idx plain", "class 0 is '%s', expected '0'", d->class_names[0]);
        printf("  ok idx plain: 5 images of 1 x 4 x 3, labels and pixels exact\n");
    }
    cg_dataset_free(d);
    d = NULL;
    expect_error(cg_idx_load(plain, false, CG_IDX_MNIST, &d), d, "idx test split absent", "t10k-images-idx3-ubyte",
                 "no t10k-images-idx3-ubyte.gz");

    // gzip files, the test names.
    char *gz = fresh_dir("idx-gz");
    char *g_img = path_of(gz, "t10k-images-idx3-ubyte.gz"), *g_lab = path_of(gz, "t10k-labels-idx1-ubyte.gz");
    write_gz(g_img, images, ilen);
    write_gz(g_lab, labels, llen);
    d = NULL;
    if (expect_ok(cg_idx_load(gz, false, CG_IDX_FASHION_MNIST, &d), "idx gzip")) {
        check_idx(d, "idx gzip", "Ankle boot");
        if (strcmp(d->class_names[0], "T-shirt/top") != 0) fail("idx gzip", "class 0 is '%s'", d->class_names[0]);
        printf("  ok idx gzip: the same through zlib, Fashion-MNIST names\n");
    }
    cg_dataset_free(d);

    // Broken files. Each is written to `bad` and read with the good other file of the pair.
    char *broken = fresh_dir("idx-broken");
    char *bad = path_of(broken, "bad-images-idx3-ubyte"), *bad_gz = path_of(broken, "bad-images-idx3-ubyte.gz");
    char *bad_lab = path_of(broken, "bad-labels-idx1-ubyte");
    uint8_t *copy = malloc(ilen + 64);

    write_file(bad, images, ilen - 5);
    d = NULL;
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx truncated", bad, "truncated");

    write_gz(bad_gz, images, ilen - 5);
    expect_error(cg_idx_load_files(bad_gz, p_lab, CG_IDX_MNIST, &d), d, "idx gzip short stream", bad_gz, "truncated");

    size_t zlen;
    uint8_t *z = read_whole(g_img, &zlen);
    write_file(bad_gz, z, zlen / 2); // the compressed file cut in half
    expect_error(cg_idx_load_files(bad_gz, g_lab, CG_IDX_MNIST, &d), d, "idx gzip truncated", bad_gz,
                 "truncated gzip file");
    z[zlen - 6] ^= 0xFF; // the CRC-32 in the gzip trailer
    write_file(bad_gz, z, zlen);
    expect_error(cg_idx_load_files(bad_gz, g_lab, CG_IDX_MNIST, &d), d, "idx gzip bad CRC", bad_gz, "corrupt gzip");
    free(z);

    memcpy(copy, images, ilen);
    put_be32(copy, 0x00000804);
    write_file(bad, copy, ilen);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx wrong magic", bad,
                 "wrong magic number 0x00000804");
    expect_error(cg_idx_load_files(p_lab, p_img, CG_IDX_MNIST, &d), d, "idx files swapped", p_lab,
                 "expected 0x00000803");

    memcpy(copy, images, 16);
    put_be32(copy + 4, 0xFFFFFFFF);
    put_be32(copy + 8, 0xFFFFFFFF);
    put_be32(copy + 12, 0xFFFFFFFF);
    write_file(bad, copy, ilen);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx sizes overflow", bad, "overflow");
    write_gz(bad_gz, copy, ilen);
    expect_error(cg_idx_load_files(bad_gz, p_lab, CG_IDX_MNIST, &d), d, "idx gzip sizes overflow", bad_gz, "overflow");
    put_be32(copy + 4, 1000000000); // 1e9 images of 28 x 28: no overflow, but not in a small file
    put_be32(copy + 8, 28);
    put_be32(copy + 12, 28);
    write_file(bad, copy, ilen);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx huge sizes", bad, "the file has");
    write_gz(bad_gz, copy, ilen);
    expect_error(cg_idx_load_files(bad_gz, p_lab, CG_IDX_MNIST, &d), d, "idx gzip huge sizes", bad_gz,
                 "can hold");
    memcpy(copy, images, ilen);
    put_be32(copy + 8, 0);
    write_file(bad, copy, ilen);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx zero size", bad, "is 0");

    memcpy(copy, images, ilen);
    memset(copy + ilen, 0, 7);
    write_file(bad, copy, ilen + 7);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx extra bytes", bad, "unexpected bytes");
    write_gz(bad_gz, copy, ilen + 7);
    expect_error(cg_idx_load_files(bad_gz, p_lab, CG_IDX_MNIST, &d), d, "idx gzip extra bytes", bad_gz,
                 "unexpected bytes");
    write_file(bad, images, 10);
    expect_error(cg_idx_load_files(bad, p_lab, CG_IDX_MNIST, &d), d, "idx truncated header", bad, "truncated");

    const uint8_t out_of_range[IDX_N] = {3, 0, 10, 1, 7};
    size_t blen;
    uint8_t *bl = idx_labels(IDX_N, out_of_range, &blen);
    write_file(bad_lab, bl, blen);
    expect_error(cg_idx_load_files(p_img, bad_lab, CG_IDX_MNIST, &d), d, "idx label out of range", bad_lab,
                 "label 10 at byte offset 10");
    free(bl);
    bl = idx_labels(IDX_N - 1, IDX_LABELS, &blen);
    write_file(bad_lab, bl, blen);
    expect_error(cg_idx_load_files(p_img, bad_lab, CG_IDX_MNIST, &d), d, "idx count mismatch", bad_lab,
                 "4 labels, but");
    free(bl);
    char *missing = path_of(broken, "no-such-file");
    expect_error(cg_idx_load_files(missing, p_lab, CG_IDX_MNIST, &d), d, "idx missing file", missing, "cannot open");

    free(missing);
    free(copy);
    free(bad);
    free(bad_gz);
    free(bad_lab);
    free(broken);
    free(p_img);
    free(p_lab);
    free(g_img);
    free(g_lab);
    free(plain);
    free(gz);
    free(images);
    free(labels);
}

// ---- CIFAR ------------------------------------------------------------------------------------------

static uint8_t cifar_pixel(int record, int p) { return (uint8_t)(record * 13 + p * 7); }

// A file of n records starting at global record number `first`: label bytes from labels(k).
static void write_cifar(const char *path, int first, int n, int label_bytes, const uint8_t *labels) {
    size_t rec = (size_t)label_bytes + 3072;
    uint8_t *b = malloc(rec * (size_t)n);
    for (int k = 0; k < n; k++) {
        memcpy(b + rec * (size_t)k, labels + label_bytes * (first + k), (size_t)label_bytes);
        for (int p = 0; p < 3072; p++) b[rec * (size_t)k + (size_t)label_bytes + (size_t)p] = cifar_pixel(first + k, p);
    }
    write_file(path, b, rec * (size_t)n);
    free(b);
}

static void check_cifar(const cg_dataset *d, const char *what, int count, int first, const uint8_t *labels,
                        int label_bytes, int used, int classes) {
    if (d->count != count || d->sample_ndim != 3 || d->sample_shape[0] != 3 || d->sample_shape[1] != 32 ||
        d->sample_shape[2] != 32 || d->dtype != CG_U8 || d->num_classes != classes)
        fail(what, "count %lld, shape (%lld, %lld, %lld), classes %d; expected %d of (3, 32, 32), %d classes",
             (long long)d->count, (long long)d->sample_shape[0], (long long)d->sample_shape[1],
             (long long)d->sample_shape[2], d->num_classes, count, classes);
    for (int k = 0; k < count && k < d->count; k++) {
        if (d->labels[k] != labels[label_bytes * (first + k) + used])
            fail(what, "label %d is %d, expected %d", k, d->labels[k], labels[label_bytes * (first + k) + used]);
        for (int p = 0; p < 3072; p++)
            if (d->pixels[(size_t)k * 3072 + (size_t)p] != cifar_pixel(first + k, p)) {
                fail(what, "record %d pixel %d is %u, expected %u", k, p, d->pixels[(size_t)k * 3072 + (size_t)p],
                     cifar_pixel(first + k, p));
                return;
            }
    }
}

static void test_cifar10(void) {
    printf("CIFAR-10 binary\n");
    char *parent = fresh_dir("cifar10");
    char *dir = path_of(parent, "cifar-10-batches-bin");
    make_dirs(dir);
    const uint8_t labels[10] = {6, 9, 9, 4, 1, 1, 2, 7, 8, 3}; // 8 training records, 2 test records
    const int per_batch[5] = {1, 2, 1, 1, 3};
    char name[64];
    int first = 0;
    for (int b = 0; b < 5; b++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        char *p = path_of(dir, name);
        write_cifar(p, first, per_batch[b], 1, labels);
        first += per_batch[b];
        free(p);
    }
    char *test = path_of(dir, "test_batch.bin");
    write_cifar(test, 8, 2, 1, labels);
    char *meta = path_of(dir, "batches.meta.txt");
    write_text(meta, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n\n");

    cg_dataset *d = NULL;
    if (expect_ok(cg_cifar10_load(parent, true, &d), "cifar10 train (parent folder)")) {
        check_cifar(d, "cifar10 train", 8, 0, labels, 1, 0, 10);
        if (strcmp(d->class_names[0], "airplane") != 0 || strcmp(d->class_names[9], "truck") != 0)
            fail("cifar10 names", "'%s' .. '%s', expected airplane .. truck", d->class_names[0], d->class_names[9]);
        printf("  ok cifar10 train: 8 records over 5 batches, labels, pixels and names exact\n");
    }
    cg_dataset_free(d);
    d = NULL;
    if (expect_ok(cg_cifar10_load(dir, false, &d), "cifar10 test")) {
        check_cifar(d, "cifar10 test", 2, 8, labels, 1, 0, 10);
        printf("  ok cifar10 test: 2 records\n");
    }
    cg_dataset_free(d);
    d = NULL;

    // Broken: the test batch is rewritten each time, then restored.
    size_t len;
    uint8_t *good = read_whole(test, &len);
    write_file(test, good, len - 1);
    expect_error(cg_cifar10_load(dir, false, &d), d, "cifar10 truncated", test, "not a whole number of 3073-byte");
    write_file(test, good, 0);
    expect_error(cg_cifar10_load(dir, false, &d), d, "cifar10 empty", test, "empty");
    good[3073] = 10; // the second record's label
    write_file(test, good, len);
    expect_error(cg_cifar10_load(dir, false, &d), d, "cifar10 label out of range", test,
                 "label 10 at byte offset 3073 (record 1)");
    good[3073] = labels[9];
    write_file(test, good, len);
    write_text(meta, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\n");
    expect_error(cg_cifar10_load(dir, false, &d), d, "cifar10 meta short", meta, "9 class names, expected 10");
    write_text(meta, "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n");
    char *batch3 = path_of(dir, "data_batch_3.bin");
    unlink(batch3);
    expect_error(cg_cifar10_load(dir, true, &d), d, "cifar10 missing batch", batch3, "cannot open");
    char *nowhere = path_of(parent, "nothing-here");
    expect_error(cg_cifar10_load(nowhere, true, &d), d, "cifar10 wrong folder", nowhere, "data_batch_1.bin");
    free(nowhere);
    free(batch3);
    free(good);
    free(test);
    free(meta);
    free(dir);
    free(parent);
}

static void test_cifar100(void) {
    printf("CIFAR-100 binary\n");
    char *dir = fresh_dir("cifar-100-binary");
    const uint8_t labels[2 * 5] = {11, 19, 0, 99, 19, 50, 3, 1, 7, 77}; // (coarse, fine) for 3 train, 2 test
    char *train = path_of(dir, "train.bin"), *test = path_of(dir, "test.bin");
    write_cifar(train, 0, 3, 2, labels);
    write_cifar(test, 3, 2, 2, labels);
    char fine[2000] = "", coarse[400] = "", line[32];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof line, "fine_%d\r\n", i); // Windows line ends are accepted too
        strcat(fine, line);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof line, "coarse_%d\n", i);
        strcat(coarse, line);
    }
    char *fine_path = path_of(dir, "fine_label_names.txt"), *coarse_path = path_of(dir, "coarse_label_names.txt");
    write_text(fine_path, fine);
    write_text(coarse_path, coarse);

    cg_dataset *d = NULL;
    if (expect_ok(cg_cifar100_load(dir, true, false, &d), "cifar100 fine")) {
        check_cifar(d, "cifar100 fine", 3, 0, labels, 2, 1, 100);
        if (strcmp(d->class_names[99], "fine_99") != 0) fail("cifar100 names", "class 99 is '%s'", d->class_names[99]);
        printf("  ok cifar100 train, fine labels: 3 records, labels, pixels and 100 names exact\n");
    }
    cg_dataset_free(d);
    d = NULL;
    if (expect_ok(cg_cifar100_load(dir, false, true, &d), "cifar100 coarse")) {
        check_cifar(d, "cifar100 coarse", 2, 3, labels, 2, 0, 20);
        if (strcmp(d->class_names[19], "coarse_19") != 0)
            fail("cifar100 names", "coarse class 19 is '%s'", d->class_names[19]);
        printf("  ok cifar100 test, coarse labels: 2 records, 20 names\n");
    }
    cg_dataset_free(d);
    d = NULL;

    size_t len;
    uint8_t *good = read_whole(test, &len);
    good[3074 + 1] = 100; // the second record's fine label
    write_file(test, good, len);
    expect_error(cg_cifar100_load(dir, false, false, &d), d, "cifar100 fine label out of range", test,
                 "fine label 100 at byte offset 3075 (record 1)");
    good[3074 + 1] = 77;
    good[0] = 20; // the first record's coarse label: checked even when the fine labels are used
    write_file(test, good, len);
    expect_error(cg_cifar100_load(dir, false, false, &d), d, "cifar100 coarse label out of range", test,
                 "coarse label 20 at byte offset 0 (record 0)");
    good[0] = 3;
    write_file(test, good, len - 3073); // one record and one byte: a 3074-byte multiple plus 1
    expect_error(cg_cifar100_load(dir, false, false, &d), d, "cifar100 truncated", test, "3074-byte records");
    free(good);
    free(train);
    free(test);
    free(fine_path);
    free(coarse_path);
    free(dir);
}

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
        fprintf(stderr, "test_datasets: stbi_write_png %s failed\n", path);
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
        fprintf(stderr, "test_datasets: stbi_write_jpg %s failed\n", path);
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

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
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
    // A JPEG whose Huffman table header is corrupt: stb_image's reason is in the message.
    for (size_t i = 0; i + 4 < len; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC4) { // DHT marker; byte i+4 is Tc/Th
            jpg[i + 4] = 0x57;
            break;
        }
    write_file(bad, jpg, len);
    expect_error(cg_image_folder_load(root, false, NULL, &d), d, "corrupt JPEG", bad, "corrupt JPEG: stb_image: ");
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

// ---- the real Fashion-MNIST -----------------------------------------------------------------------

static void test_real_fashion_mnist(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("SKIP real Fashion-MNIST: %s is absent (apt-get install dataset-fashion-mnist)\n", dir);
        return;
    }
    printf("Real Fashion-MNIST (%s)\n", dir);
    const int64_t counts[2] = {60000, 10000};
    for (int split = 0; split < 2; split++) {
        const char *what = split == 0 ? "fashion-mnist train" : "fashion-mnist test";
        cg_dataset *d = NULL;
        double t0 = cg_seconds();
        if (!expect_ok(cg_idx_load(dir, split == 0, CG_IDX_FASHION_MNIST, &d), what)) continue;
        double seconds = cg_seconds() - t0;
        if (d->count != counts[split] || d->sample_shape[0] != 1 || d->sample_shape[1] != 28 ||
            d->sample_shape[2] != 28)
            fail(what, "count %lld, shape (%lld, %lld, %lld); expected %lld of (1, 28, 28)", (long long)d->count,
                 (long long)d->sample_shape[0], (long long)d->sample_shape[1], (long long)d->sample_shape[2],
                 (long long)counts[split]);
        int64_t per_class[10] = {0};
        for (int64_t i = 0; i < d->count; i++) {
            if (d->labels[i] < 0 || d->labels[i] > 9) {
                fail(what, "label %lld is %d", (long long)i, d->labels[i]);
                break;
            }
            per_class[d->labels[i]]++;
        }
        for (int c = 0; c < 10; c++) // both splits are balanced: 6000 and 1000 per class
            if (per_class[c] != counts[split] / 10)
                fail(what, "class %d has %lld images, expected %lld", c, (long long)per_class[c],
                     (long long)(counts[split] / 10));
        if (split == 0 && (d->labels[0] != 9 || strcmp(d->class_names[9], "Ankle boot") != 0))
            fail(what, "train[0] is labelled %d (%s), expected 9 (Ankle boot)", d->labels[0],
                 d->class_names[d->labels[0]]);
        uint64_t sum = 0;
        for (int64_t p = 0; p < d->sample_numel; p++) sum += d->pixels[p];
        if (sum == 0) fail(what, "the first image is all zeros");
        printf("  ok %s: %lld images of 28 x 28, 10 balanced classes%s, %.2f s\n", what, (long long)d->count,
               split == 0 ? ", train[0] = 9 Ankle boot" : "", seconds);
        cg_dataset_free(d);
    }
}

// ---- tools/download_datasets.sh --------------------------------------------------------------------

// The script cannot download here (no network in the test), but its --dry-run must name every
// official archive with its MD5 and write nothing. Run from the repository root (as ctest does).
static void test_download_script(void) {
    const char *script = "tools/download_datasets.sh";
    if (access(script, R_OK) != 0) {
        printf("SKIP download script: %s not found from this working folder\n", script);
        return;
    }
    printf("tools/download_datasets.sh --dry-run\n");
    if (system("bash -n tools/download_datasets.sh") != 0) fail("download script", "bash -n reports a syntax error");
    char *target = path_of(tmp_root, "downloads-dry-run");
    char command[512];
    snprintf(command, sizeof command, "bash %s --dry-run %s all 2>&1", script, target);
    FILE *p = popen(command, "r");
    char output[16384] = "";
    size_t used = p ? fread(output, 1, sizeof output - 1, p) : 0;
    output[used] = '\0';
    int status = p ? pclose(p) : -1;
    if (status != 0) fail("download script", "--dry-run exited with status %d: %.300s", status, output);
    const char *must[] = {
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432", "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
        "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
        "dataset-fashion-mnist", "nothing was downloaded or written"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (strstr(output, must[i]) == NULL) fail("download script", "--dry-run output lacks '%s'", must[i]);
    if (file_exists(target)) fail("download script", "--dry-run created %s", target);
    snprintf(command, sizeof command, "bash %s --dry-run %s no-such-set >/dev/null 2>&1", script, target);
    if (system(command) == 0) fail("download script", "an unknown data set name was accepted");
    printf("  ok download script: syntax, every archive's address and MD5 in --dry-run, nothing written\n");
    free(target);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/cgrad-test-datasets-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(tmp_root) == NULL) {
        fprintf(stderr, "test_datasets: cannot create a temporary folder %s\n", tmp_root);
        return 1;
    }
    test_idx();
    test_cifar10();
    test_cifar100();
    test_image_folder();
    test_image_folder_errors();
    test_tinyimagenet();
    test_download_script();
    test_real_fashion_mnist();
    remove_tree(tmp_root);
    if (failures) {
        fprintf(stderr, "test_datasets: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_datasets: all passed\n");
    return 0;
}

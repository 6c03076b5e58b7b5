// test_idx_cifar.c: the IDX (MNIST / Fashion-MNIST) and CIFAR-10/100 loaders on small files this
// test writes in the official formats into a temporary folder, and on broken ones that must each
// give a clear error (status not OK, the file named, what was wrong). tools/download_datasets.sh
// --dry-run. Then the real Fashion-MNIST when it is installed (/usr/share/datasets/fashion-mnist;
// that part is skipped, not the test, when it is absent).
// CPU only. ImageFolder and TinyImageNet are tested in test_image_folder.c, the loader that batches
// these data sets in test_loader.c; the shared helpers are in dataset_files.h.
#define _POSIX_C_SOURCE 200809L
#include "datasets/cifar.h"
#include "datasets/idx.h"
#include "tests/dataset_files.h"

#include <zlib.h>

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (g == NULL || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
        fprintf(stderr, "%s: cannot write %s\n", test_program, path);
        exit(1);
    }
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
    dataset_test_begin("test_idx_cifar");
    test_idx();
    test_cifar10();
    test_cifar100();
    test_download_script();
    test_real_fashion_mnist();
    return dataset_test_end();
}

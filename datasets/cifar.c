// cifar.c: reads the CIFAR-10 / CIFAR-100 binary versions (cifar.h): every file's length is checked
// to be a whole number of records before anything is allocated, every label byte is range-checked.
// No per-channel statistics or augmentation here (the loader does them).
#define _POSIX_C_SOURCE 200809L
#include "datasets/cifar.h"
#include "datasets/files.h"
#include "core/safe_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * 32 * 32, RECORDS_PER_READ = 256 };

// What tells CIFAR-10 and CIFAR-100 apart.
typedef struct {
    const char *name;           // "CIFAR-10"
    const char *folder;         // the folder the archive extracts to
    const char *files[5];       // record files, in order
    int nfiles;
    int label_bytes;            // label bytes before the pixels of a record
    const char *label_what[2];  // what each label byte is, for messages
    int label_limit[2];         // each label byte must be below this
    int label_used;             // which label byte becomes the data set's label
    const char *meta;           // class names, one per line
} cifar_spec;

// dir itself when it holds the first record file, else dir/folder when that does; NULL with an
// error otherwise.
static char *find_folder(const char *dir, const cifar_spec *spec, cg_status *s) {
    char *probe = cg_path_join(dir, spec->files[0]);
    bool here = cg_is_file(probe);
    free(probe);
    if (here) return strdup(dir);
    char *sub = cg_path_join(dir, spec->folder);
    probe = cg_path_join(sub, spec->files[0]);
    bool below = cg_is_file(probe);
    free(probe);
    if (below) return sub;
    free(sub);
    *s = cg_error(CG_ERR_IO, "%s: no %s nor %s/%s: expected the extracted %s binary version (%s/)", dir,
                  spec->files[0], spec->folder, spec->files[0], spec->name, spec->folder);
    return NULL;
}

// Reads the records of path (records of them, checked by the caller against its length) into
// d's pixels and labels from sample `first` on.
static cg_status read_records(const char *path, const cifar_spec *spec, int64_t records, cg_dataset *d,
                              int64_t first, uint8_t *buf) {
    const size_t rec = (size_t)spec->label_bytes + CIFAR_PIXELS;
    const char *why = NULL;
    int fd = cg_open_regular(path, NULL, &why); // a named pipe is refused, not waited on
    if (fd < 0) return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, why);
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        close(fd);
        return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    cg_status s = cg_ok();
    int64_t done = 0;
    while (done < records && s.code == CG_OK) {
        int64_t n = records - done < RECORDS_PER_READ ? records - done : RECORDS_PER_READ;
        size_t got = fread(buf, rec, (size_t)n, f);
        if (got != (size_t)n) {
            s = cg_error(CG_ERR_IO, "%s: %s after %lld of its %lld records (byte offset %lld)", path,
                         ferror(f) ? "read error" : "the file shrank while being read", (long long)(done + (int64_t)got),
                         (long long)records, (long long)((done + (int64_t)got) * (int64_t)rec));
            break;
        }
        for (int64_t r = 0; r < n; r++) {
            const uint8_t *record = buf + (size_t)r * rec;
            int64_t index = done + r;
            for (int b = 0; b < spec->label_bytes; b++) {
                if (record[b] >= spec->label_limit[b]) {
                    s = cg_error(CG_ERR_FORMAT, "%s: %s %u at byte offset %lld (record %lld) is out of range: "
                                 "expected 0..%d", path, spec->label_what[b], record[b],
                                 (long long)(index * (int64_t)rec + b), (long long)index, spec->label_limit[b] - 1);
                    break;
                }
            }
            if (s.code != CG_OK) break;
            d->labels[first + index] = record[spec->label_used];
            memcpy(d->pixels + (size_t)(first + index) * CIFAR_PIXELS, record + spec->label_bytes, CIFAR_PIXELS);
        }
        done += n;
    }
    fclose(f);
    return s;
}

static cg_status cifar_load(const char *dir, const cifar_spec *spec, cg_dataset **out) {
    *out = NULL;
    cg_status s = cg_ok();
    char *root = find_folder(dir, spec, &s);
    if (root == NULL) return s;

    const int num_classes = spec->label_limit[spec->label_used];
    char *meta_path = cg_path_join(root, spec->meta);
    char **names = NULL;
    int name_count = 0;
    s = cg_read_lines(meta_path, 1 << 20, &names, &name_count);
    if (s.code == CG_OK && name_count != num_classes)
        s = cg_error(CG_ERR_FORMAT, "%s: %d class names, expected %d (one per line)", meta_path, name_count,
                     num_classes);
    free(meta_path);

    // Every file's length is a whole number of records, checked before anything is allocated.
    const int64_t rec = spec->label_bytes + CIFAR_PIXELS;
    char *paths[5] = {NULL};
    int64_t records[5] = {0}, total = 0;
    for (int i = 0; i < spec->nfiles && s.code == CG_OK; i++) {
        paths[i] = cg_path_join(root, spec->files[i]);
        int64_t bytes = 0;
        s = cg_file_size(paths[i], &bytes);
        if (s.code != CG_OK) break;
        if (bytes == 0)
            s = cg_error(CG_ERR_FORMAT, "%s: empty: expected %s records of %lld bytes", paths[i], spec->name,
                         (long long)rec);
        else if (bytes % rec != 0)
            s = cg_error(CG_ERR_FORMAT, "%s: %lld bytes is not a whole number of %lld-byte records (%d label byte%s + "
                         "%d pixels): truncated or not %s binary; the last whole record ends at byte offset %lld",
                         paths[i], (long long)bytes, (long long)rec, spec->label_bytes,
                         spec->label_bytes > 1 ? "s" : "", CIFAR_PIXELS, spec->name,
                         (long long)(bytes / rec * rec));
        records[i] = bytes / rec;
        total += records[i];
    }

    cg_dataset *d = NULL;
    if (s.code == CG_OK) {
        d = cg_dataset_new_images(total, 3, CIFAR_SIDE, CIFAR_SIDE, num_classes);
        if (d == NULL)
            s = cg_error(CG_ERR_OOM, "%s: out of host memory for %lld images of 3 x 32 x 32", root, (long long)total);
    }
    uint8_t *buf = s.code == CG_OK ? malloc((size_t)rec * RECORDS_PER_READ) : NULL;
    if (s.code == CG_OK && buf == NULL) s = cg_error(CG_ERR_OOM, "%s: out of host memory", root);
    int64_t first = 0;
    for (int i = 0; i < spec->nfiles && s.code == CG_OK; i++) {
        s = read_records(paths[i], spec, records[i], d, first, buf);
        first += records[i];
    }
    free(buf);
    for (int i = 0; i < spec->nfiles; i++) free(paths[i]);
    free(root);
    if (s.code != CG_OK) {
        cg_lines_free(names, name_count);
        cg_dataset_free(d);
        return s;
    }
    d->class_names = names; // exactly num_classes strings
    *out = d;
    return cg_ok();
}

cg_status cg_cifar10_load(const char *dir, bool train, cg_dataset **out) {
    cifar_spec spec = {
        .name = "CIFAR-10",
        .folder = "cifar-10-batches-bin",
        .label_bytes = 1,
        .label_what = {"label", NULL},
        .label_limit = {10, 0},
        .label_used = 0,
        .meta = "batches.meta.txt",
    };
    if (train) {
        const char *files[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                "data_batch_5.bin"};
        memcpy(spec.files, files, sizeof files);
        spec.nfiles = 5;
    } else {
        spec.files[0] = "test_batch.bin";
        spec.nfiles = 1;
    }
    return cifar_load(dir, &spec, out);
}

cg_status cg_cifar100_load(const char *dir, bool train, bool coarse, cg_dataset **out) {
    cifar_spec spec = {
        .name = "CIFAR-100",
        .folder = "cifar-100-binary",
        .files = {train ? "train.bin" : "test.bin"},
        .nfiles = 1,
        .label_bytes = 2,
        .label_what = {"coarse label", "fine label"},
        .label_limit = {20, 100},
        .label_used = coarse ? 0 : 1,
        .meta = coarse ? "coarse_label_names.txt" : "fine_label_names.txt",
    };
    return cifar_load(dir, &spec, out);
}

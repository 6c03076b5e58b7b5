// idx.c: reads MNIST / Fashion-MNIST IDX files (idx.h) through zlib's gzread, which reads .gz
// and plain files alike. Every size in a header is checked against the file's length before
// anything is allocated from it. Only unsigned-byte IDX files with 3 (images) or 1 (labels) dims.
#define _POSIX_C_SOURCE 200809L
#include "datasets/idx.h"
#include "datasets/files.h"
#include "core/safe_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

// Deflate (RFC 1951) can compress at most about 1032:1, so a .gz file of n bytes decompresses to
// less than 1032 * n bytes (plus a little slack for tiny files): the bound checked before a size
// read from a .gz header is allocated.
enum { DEFLATE_MAX_RATIO = 1032, GZ_SLACK = 1024 };

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const DIGIT_NAMES[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

// One open IDX file, its header read and checked.
typedef struct {
    const char *path;
    gzFile gz;
    bool compressed;        // gzip (starts with 1f 8b) or plain
    int64_t file_bytes;     // length on disk
    int ndim;
    uint32_t dims[3];
    uint64_t header_bytes;  // 4 + 4 * ndim
    uint64_t data_bytes;    // the product of the dims: bytes after the header
} idx_file;

static void idx_close(idx_file *f) {
    if (f->gz != NULL) gzclose(f->gz);
    f->gz = NULL;
}

// zlib's reason for the last error on gz (without the "<fd:N>: " gzdopen puts first), or the C
// library's for an I/O error.
static const char *gz_reason(gzFile gz) {
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum);
    if (errnum == Z_ERRNO) return strerror(errno);
    const char *colon = strstr(msg, ": ");
    if (msg[0] == '<' && colon != NULL) msg = colon + 2;
    return msg;
}

// zlib's error code on gz (Z_OK when none).
static int gz_errnum(gzFile gz) {
    int errnum = Z_OK;
    gzerror(gz, &errnum);
    return errnum;
}

static bool gz_failed(gzFile gz) { return gz_errnum(gz) != Z_OK; }

// Reads up to n bytes (gzread takes at most UINT_MAX at a time); the count read. Short on end of
// data or on an error (then gz_failed is true).
static uint64_t gz_read_all(gzFile gz, uint8_t *dst, uint64_t n) {
    uint64_t done = 0;
    while (done < n) {
        uint64_t left = n - done;
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int got = gzread(gz, dst + done, chunk);
        if (got <= 0) break;
        done += (uint64_t)got;
    }
    return done;
}

// The error for a read that stopped at decompressed byte offset `at` instead of `want`.
static cg_status short_read(const idx_file *f, uint64_t at, uint64_t want, const char *what) {
    int errnum = gz_errnum(f->gz);
    if (errnum == Z_ERRNO)
        return cg_error(CG_ERR_IO, "%s: read error at byte offset %llu: %s", f->path, (unsigned long long)at,
                        gz_reason(f->gz));
    if (errnum == Z_BUF_ERROR) // zlib: "unexpected end of file"
        return cg_error(CG_ERR_FORMAT, "%s: truncated gzip file: %s ends at decompressed byte offset %llu, expected "
                        "%llu bytes (zlib: %s)", f->path, what, (unsigned long long)at, (unsigned long long)want,
                        gz_reason(f->gz));
    if (errnum != Z_OK) // zlib may find a bad CRC before it hands over the bytes it covers
        return cg_error(CG_ERR_FORMAT, "%s: corrupt gzip data, found while reading %s (zlib: %s)", f->path, what,
                        gz_reason(f->gz));
    return cg_error(CG_ERR_FORMAT, "%s: truncated: %s ends at %sbyte offset %llu, expected %llu bytes", f->path, what,
                    f->compressed ? "decompressed " : "", (unsigned long long)at, (unsigned long long)want);
}

// Opens path and reads and checks its header: magic 0x00000800 | want_ndim, want_ndim sizes
// (each at least 1, their product without overflow), and a length that can hold exactly that
// data: equal to it for a plain file, within deflate's ratio for a .gz file (whose exact
// decompressed length idx_read_data checks).
static cg_status idx_open(const char *path, int want_ndim, idx_file *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    f->ndim = want_ndim;
    const char *why = NULL;
    int fd = cg_open_regular(path, &f->file_bytes, &why); // a named pipe is refused, not waited on
    if (fd < 0) return cg_error(CG_ERR_IO, "%s: cannot open: %s", path, why);
    uint8_t gzmagic[2] = {0, 0};
    f->compressed = pread(fd, gzmagic, 2, 0) == 2 && gzmagic[0] == 0x1f && gzmagic[1] == 0x8b;
    f->gz = gzdopen(fd, "rb"); // owns fd from here
    if (f->gz == NULL) {
        close(fd);
        return cg_error(CG_ERR_OOM, "%s: zlib could not open it (out of memory)", path);
    }
    gzbuffer(f->gz, 1u << 17);

    const char *kind = want_ndim == 3 ? "images" : "labels";
    uint8_t header[16];
    f->header_bytes = 4 + 4 * (uint64_t)want_ndim;
    uint64_t got = gz_read_all(f->gz, header, 4);
    if (got < 4) {
        cg_status s = short_read(f, got, 4, "the 4-byte magic number");
        idx_close(f);
        return s;
    }
    uint32_t magic = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 | header[3];
    uint32_t want_magic = 0x00000800u | (uint32_t)want_ndim;
    if (magic != want_magic) {
        idx_close(f);
        return cg_error(CG_ERR_FORMAT, "%s: wrong magic number 0x%08x at %sbyte offset 0: expected 0x%08x "
                        "(IDX %s: unsigned bytes, %d dims)%s", path, magic, f->compressed ? "decompressed " : "",
                        want_magic, kind, want_ndim,
                        magic == (0x00000800u | (uint32_t)(4 - want_ndim)) ? "; this looks like the other file of the pair"
                                                                            : "");
    }
    got = gz_read_all(f->gz, header + 4, 4 * (uint64_t)want_ndim);
    if (got < 4 * (uint64_t)want_ndim) {
        cg_status s = short_read(f, 4 + got, f->header_bytes, "the header");
        idx_close(f);
        return s;
    }
    uint64_t product = 1;
    bool overflow = false;
    for (int i = 0; i < want_ndim; i++) {
        const uint8_t *b = header + 4 + 4 * i;
        f->dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (f->dims[i] == 0) {
            idx_close(f);
            return cg_error(CG_ERR_FORMAT, "%s: size %d at byte offset %d is 0: expected at least 1", path, i,
                            4 + 4 * i);
        }
        if (!cg_mul_u64(product, f->dims[i], &product)) overflow = true;
    }
    char sizes[64];
    if (want_ndim == 3)
        snprintf(sizes, sizeof sizes, "%u x %u x %u", f->dims[0], f->dims[1], f->dims[2]);
    else
        snprintf(sizes, sizeof sizes, "%u", f->dims[0]);
    if (overflow || product > (uint64_t)INT64_MAX - f->header_bytes || product > (uint64_t)SIZE_MAX) {
        idx_close(f);
        return cg_error(CG_ERR_FORMAT, "%s: sizes %s at byte offset 4 overflow: their product does not fit in 63 bits",
                        path, sizes);
    }
    f->data_bytes = product;
    uint64_t total = f->header_bytes + product;
    if (!f->compressed && (uint64_t)f->file_bytes != total) {
        idx_close(f);
        if ((uint64_t)f->file_bytes < total)
            return cg_error(CG_ERR_FORMAT, "%s: truncated: the header promises %s = %llu bytes after its %llu bytes, "
                            "%llu in all; the file has %lld", path, sizes, (unsigned long long)product,
                            (unsigned long long)f->header_bytes, (unsigned long long)total, (long long)f->file_bytes);
        return cg_error(CG_ERR_FORMAT, "%s: %lld unexpected bytes after the data, from byte offset %llu: the header "
                        "promises %s = %llu bytes after its %llu bytes, %llu in all", path,
                        (long long)((uint64_t)f->file_bytes - total), (unsigned long long)total, sizes,
                        (unsigned long long)product, (unsigned long long)f->header_bytes, (unsigned long long)total);
    }
    if (f->compressed && total / DEFLATE_MAX_RATIO > (uint64_t)f->file_bytes + GZ_SLACK) {
        idx_close(f);
        return cg_error(CG_ERR_FORMAT, "%s: the header promises %s = %llu bytes, more than a %lld-byte gzip file can "
                        "hold (deflate compresses at most %d:1): corrupt sizes", path, sizes,
                        (unsigned long long)product, (long long)f->file_bytes, DEFLATE_MAX_RATIO);
    }
    return cg_ok();
}

// Reads the f->data_bytes bytes after the header into dst, then checks that the data (the
// decompressed stream for .gz, with its CRC) ends exactly there.
static cg_status idx_read_data(idx_file *f, uint8_t *dst) {
    uint64_t got = gz_read_all(f->gz, dst, f->data_bytes);
    if (got < f->data_bytes) return short_read(f, f->header_bytes + got, f->header_bytes + f->data_bytes, "the data");
    uint8_t extra;
    int more = gzread(f->gz, &extra, 1);
    if (more > 0)
        return cg_error(CG_ERR_FORMAT, "%s: unexpected bytes after the data: the %sstream goes on past byte offset %llu, "
                        "where the header's sizes end it", f->path, f->compressed ? "decompressed " : "",
                        (unsigned long long)(f->header_bytes + f->data_bytes));
    if (more < 0 || gz_failed(f->gz))
        return cg_error(CG_ERR_FORMAT, "%s: corrupt gzip data at the end of the stream (decompressed byte offset %llu): "
                        "zlib: %s", f->path, (unsigned long long)(f->header_bytes + f->data_bytes), gz_reason(f->gz));
    return cg_ok();
}

cg_status cg_idx_load_files(const char *images_path, const char *labels_path, cg_idx_names names,
                            cg_dataset **out) {
    *out = NULL;
    idx_file img, lab;
    cg_status s = idx_open(images_path, 3, &img);
    if (s.code != CG_OK) return s;
    s = idx_open(labels_path, 1, &lab);
    if (s.code != CG_OK) {
        idx_close(&img);
        return s;
    }
    if (img.dims[0] > CG_DATASET_MAX_COUNT || img.dims[1] > CG_DATASET_MAX_SIDE || img.dims[2] > CG_DATASET_MAX_SIDE) {
        idx_close(&img);
        idx_close(&lab);
        return cg_error(CG_ERR_FORMAT, "%s: %u images of %u x %u: more than cgrad accepts (at most %d images, %d "
                        "pixels a side)", images_path, img.dims[0], img.dims[1], img.dims[2], CG_DATASET_MAX_COUNT,
                        CG_DATASET_MAX_SIDE);
    }
    if (img.dims[0] != lab.dims[0]) {
        idx_close(&img);
        idx_close(&lab);
        return cg_error(CG_ERR_FORMAT, "%s: %u labels, but %s has %u images: expected one label per image",
                        labels_path, lab.dims[0], images_path, img.dims[0]);
    }

    int64_t count = img.dims[0];
    cg_dataset *d = cg_dataset_new_images(count, 1, img.dims[1], img.dims[2], 10);
    uint8_t *raw_labels = malloc((size_t)count);
    if (d == NULL || raw_labels == NULL) {
        cg_dataset_free(d);
        free(raw_labels);
        idx_close(&img);
        idx_close(&lab);
        return cg_error(CG_ERR_OOM, "%s: out of host memory for %lld images of %u x %u", images_path,
                        (long long)count, img.dims[1], img.dims[2]);
    }
    s = idx_read_data(&img, d->pixels);
    if (s.code == CG_OK) s = idx_read_data(&lab, raw_labels);
    for (int64_t i = 0; s.code == CG_OK && i < count; i++) {
        if (raw_labels[i] > 9)
            s = cg_error(CG_ERR_FORMAT, "%s: label %u at byte offset %llu (sample %lld) is out of range: expected 0..9",
                         labels_path, raw_labels[i], (unsigned long long)(lab.header_bytes + (uint64_t)i),
                         (long long)i);
        d->labels[i] = raw_labels[i];
    }
    free(raw_labels);
    idx_close(&img);
    idx_close(&lab);
    if (s.code != CG_OK) {
        cg_dataset_free(d);
        return s;
    }
    const char *const *table = names == CG_IDX_FASHION_MNIST ? FASHION_NAMES : DIGIT_NAMES;
    d->class_names = cg_xcalloc(10, sizeof(char *));
    for (int c = 0; c < 10; c++) d->class_names[c] = strdup(table[c]);
    *out = d;
    return cg_ok();
}

// The path of dir/stem(.gz), trying "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
// then the mirrors' "train-images.idx3-ubyte(.gz)"; NULL with an error when none exists.
static char *find_idx(const char *dir, const char *stem, cg_status *s) {
    char dotted[64];
    snprintf(dotted, sizeof dotted, "%s", stem);
    char *dash = strstr(dotted, "-idx");
    if (dash != NULL) *dash = '.';
    const char *spellings[2] = {stem, dotted};
    for (int k = 0; k < 2; k++) {
        for (int gz = 1; gz >= 0; gz--) {
            char name[80];
            snprintf(name, sizeof name, "%s%s", spellings[k], gz ? ".gz" : "");
            char *path = cg_path_join(dir, name);
            if (cg_is_file(path)) return path;
            free(path);
        }
    }
    *s = cg_error(CG_ERR_IO, "%s: no %s.gz or %s: expected the MNIST / Fashion-MNIST IDX files there "
                  "(tools/download_datasets.sh fetches them)", dir, stem, stem);
    return NULL;
}

cg_status cg_idx_load(const char *dir, bool train, cg_idx_names names, cg_dataset **out) {
    *out = NULL;
    cg_status s = cg_ok();
    if (!cg_is_dir(dir)) return cg_error(CG_ERR_IO, "%s: not a directory (expected the folder of the IDX files)", dir);
    char *images = find_idx(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", &s);
    if (images == NULL) return s;
    char *labels = find_idx(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", &s);
    if (labels == NULL) {
        free(images);
        return s;
    }
    s = cg_idx_load_files(images, labels, names, out);
    free(images);
    free(labels);
    return s;
}

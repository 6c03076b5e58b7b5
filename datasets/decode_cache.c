// decode_cache.c: the decoded cache of an image data set (image_list.h): its fingerprint, and the
// file that holds every image's pixels after a 64-byte header (magic, version, fingerprint, shape).
// Reading checks every field against the list; writing never follows a link and never leaves half a file.
#define _POSIX_C_SOURCE 200809L
#include "datasets/image_list.h"
#include "datasets/files.h"
#include "datasets/image_decode.h"
#include "core/safe_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    CACHE_HEADER = 64, // bytes before the pixels in a cache file
    CACHE_VERSION = 1,
};
static const char CACHE_MAGIC[8] = {'C', 'G', 'R', 'A', 'D', 'I', 'M', 'G'};


static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull; // FNV-1a 64-bit prime (Fowler, Noll, Vo)
    }
    return h;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// What the cache must match: count, total bytes, newest mtime, and a hash of the class names
// and of every file's path relative to root, label, size and mtime.
fingerprint fingerprint_of(const image_file_list *l, size_t root_len, char **names, int num_classes) {
    fingerprint fp = {(uint64_t)l->n, 0, 0xcbf29ce484222325ull, INT64_MIN}; // FNV-1a offset basis
    for (int c = 0; c < num_classes; c++) fp.hash = fnv1a(fp.hash, names[c], strlen(names[c]) + 1);
    for (int64_t i = 0; i < l->n; i++) {
        const image_file *e = &l->v[i];
        fp.hash = fnv1a(fp.hash, e->path + root_len, strlen(e->path + root_len) + 1);
        uint8_t fields[20];
        put_u32(fields, (uint32_t)e->label);
        put_u64(fields + 4, (uint64_t)e->bytes);
        put_u64(fields + 12, (uint64_t)e->mtime_ns);
        fp.hash = fnv1a(fp.hash, fields, sizeof fields);
        fp.total_bytes += (uint64_t)e->bytes;
        if (e->mtime_ns > fp.newest_ns) fp.newest_ns = e->mtime_ns;
    }
    return fp;
}

// Reads exactly n bytes at the file position; false on error or end of file.
static bool read_exact(int fd, uint8_t *dst, size_t n) {
    while (n > 0) {
        ssize_t got = read(fd, dst, n > (1u << 30) ? (1u << 30) : n);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            return false;
        }
        dst += got;
        n -= (size_t)got;
    }
    return true;
}

static bool write_exact(int fd, const uint8_t *src, size_t n) {
    while (n > 0) {
        ssize_t put = write(fd, src, n > (1u << 30) ? (1u << 30) : n);
        if (put <= 0) {
            if (put < 0 && errno == EINTR) continue;
            return false;
        }
        src += put;
        n -= (size_t)put;
    }
    return true;
}

// The cached data set when cache_path exists, is whole, and matches fp; NULL otherwise (then the
// caller decodes). Every size in the header is checked against the file's length first.
cg_dataset *cache_read(const char *cache_path, const fingerprint *fp, const image_file_list *l, int num_classes) {
    const char *why = NULL;
    int fd = cg_open_regular(cache_path, NULL, &why); // a named pipe there is refused, not waited on
    if (fd < 0) return NULL;
    cg_dataset *d = NULL;
    struct stat st;
    uint8_t h[CACHE_HEADER];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < CACHE_HEADER || !read_exact(fd, h, CACHE_HEADER))
        goto done;
    uint32_t channels = get_u32(h + 12), height = get_u32(h + 16), width = get_u32(h + 20);
    uint64_t count = get_u64(h + 24), pixel_bytes = get_u64(h + 56), expect = 0;
    if (memcmp(h, CACHE_MAGIC, 8) != 0 || get_u32(h + 8) != CACHE_VERSION || channels != 3 || height < 1 ||
        width < 1 || height > CG_IMAGE_MAX_SIDE || width > CG_IMAGE_MAX_SIDE || count != fp->count ||
        get_u64(h + 32) != fp->total_bytes || (int64_t)get_u64(h + 40) != fp->newest_ns || get_u64(h + 48) != fp->hash)
        goto done;
    if (!cg_mul_u64(count, 3ull * height * width, &expect) || expect != pixel_bytes || expect > SIZE_MAX ||
        (uint64_t)st.st_size != CACHE_HEADER + expect)
        goto done;
    d = cg_dataset_new_images((int64_t)count, 3, height, width, num_classes);
    if (d == NULL) goto done;
    if (!read_exact(fd, d->pixels, (size_t)expect)) {
        cg_dataset_free(d);
        d = NULL;
        goto done;
    }
    for (int64_t i = 0; i < l->n; i++) d->labels[i] = l->v[i].label;
done:
    close(fd);
    return d;
}

// Writes d's pixels with fp to cache_path atomically: a temporary file beside it, fsync, rename,
// fsync of the folder. The caller only warns on failure.
cg_status cache_write(const char *cache_path, const char *root, const fingerprint *fp, const cg_dataset *d) {
    uint8_t h[CACHE_HEADER] = {0};
    memcpy(h, CACHE_MAGIC, 8);
    put_u32(h + 8, CACHE_VERSION);
    put_u32(h + 12, (uint32_t)d->sample_shape[0]);
    put_u32(h + 16, (uint32_t)d->sample_shape[1]);
    put_u32(h + 20, (uint32_t)d->sample_shape[2]);
    put_u64(h + 24, fp->count);
    put_u64(h + 32, fp->total_bytes);
    put_u64(h + 40, (uint64_t)fp->newest_ns);
    put_u64(h + 48, fp->hash);
    uint64_t pixel_bytes = (uint64_t)d->count * (uint64_t)d->sample_numel;
    put_u64(h + 56, pixel_bytes);

    // The temporary file is made new (mkstemp: a file or link planted at its name by someone who
    // can write in the data folder is never opened), after removing those ended runs left.
    cg_remove_stale_temps(cache_path);
    size_t tmp_size = strlen(cache_path) + 64;
    char *tmp = cg_xmalloc(tmp_size);
    int fd = cg_temp_create(cache_path, tmp, tmp_size);
    if (fd < 0) {
        cg_status s = cg_error(CG_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    bool ok = write_exact(fd, h, CACHE_HEADER) && write_exact(fd, d->pixels, (size_t)pixel_bytes) && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, cache_path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        cg_status s = cg_error(CG_ERR_IO, "%s: cannot write: %s", tmp, strerror(err));
        free(tmp);
        return s;
    }
    free(tmp);
    int dfd = open(root, O_RDONLY | O_DIRECTORY); // make the rename itself durable
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return cg_ok();
}

// image_list.h: what image_folder.c and decode_cache.c share (private to datasets/): the listed
// image files of a data set, and its decoded cache: one file of every image's pixels, used again
// while the list's fingerprint (count, sizes, times, names) still matches.
#ifndef CG_IMAGE_LIST_H
#define CG_IMAGE_LIST_H

#include "datasets/dataset.h"

#include <stddef.h>
#include <stdint.h>

// One image file of the list.
typedef struct {
    char *path;       // full path (root joined with the rest)
    size_t name_at;   // path + name_at is the file name (the folder is what comes before)
    int32_t label;
    int64_t bytes;    // size on disk
    int64_t mtime_ns; // modification time, nanoseconds since the epoch
} image_file;

typedef struct {
    image_file *v;
    int64_t n, cap;
} image_file_list;

// What the cache must match.
typedef struct {
    uint64_t count, total_bytes, hash;
    int64_t newest_ns;
} fingerprint;

// The fingerprint of list l (its paths relative to the first root_len characters, and the class names).
fingerprint fingerprint_of(const image_file_list *l, size_t root_len, char **names, int num_classes);
// The data set in cache_path when its header matches fp (NULL otherwise, or when it is unreadable:
// the caller decodes again).
cg_dataset *cache_read(const char *cache_path, const fingerprint *fp, const image_file_list *l, int num_classes);
// Writes d to cache_path atomically (a new temporary file in the folder, renamed; never through a
// link). Errors: CG_ERR_IO naming the file (the caller goes on without a cache).
cg_status cache_write(const char *cache_path, const char *root, const fingerprint *fp, const cg_dataset *d);

#endif

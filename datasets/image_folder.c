// image_folder.c: ImageFolder and TinyImageNet-200 (image_folder.h). Lists the files, fingerprints
// the list, loads the decoded cache (decode_cache.c) when it matches, else decodes every image (in parallel with
// OpenMP, through image_decode.c) and writes the cache. No resizing, cropping or augmentation.
#define _POSIX_C_SOURCE 200809L
#include "datasets/image_folder.h"
#include "datasets/image_list.h"
#include "datasets/files.h"
#include "datasets/image_decode.h"
#include "core/safe_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_IMAGE_FILE = 64 << 20, // bytes of one image file
    MAX_DEPTH = 32,            // folder nesting under a class (guards against symbolic-link loops)
};

// ---- the file list ------------------------------------------------------------------------------


static void list_push(image_file_list *l, char *path, int32_t label, const struct stat *st) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        image_file *grown = realloc(l->v, (size_t)l->cap * sizeof *grown);
        CG_CHECK(grown != NULL, "out of host memory listing %lld image files", (long long)l->cap);
        l->v = grown;
    }
    const char *slash = strrchr(path, '/');
    image_file *e = &l->v[l->n++];
    e->path = path;
    e->name_at = slash ? (size_t)(slash - path) + 1 : 0;
    e->label = label;
    e->bytes = (int64_t)st->st_size;
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + (int64_t)st->st_mtim.tv_nsec;
}

static void list_free(image_file_list *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->v[i].path);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

// 1: a JPEG or PNG name (.jpg, .jpeg, .png, any case); -1: another image type; 0: not an image.
static int image_kind(const char *name) {
    static const char *const supported[] = {".jpg", ".jpeg", ".png"};
    static const char *const unsupported[] = {".bmp", ".gif",  ".webp", ".tif", ".tiff", ".ppm", ".pgm",
                                              ".pbm", ".pnm",  ".tga",  ".psd", ".hdr",  ".pic", ".heic",
                                              ".heif", ".avif", ".jxl", ".jp2", ".ico",  ".exr", ".svg"};
    const char *dot = strrchr(name, '.');
    if (dot == NULL) return 0;
    for (size_t i = 0; i < sizeof supported / sizeof *supported; i++)
        if (strcasecmp(dot, supported[i]) == 0) return 1;
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (strcasecmp(dot, unsupported[i]) == 0) return -1;
    return 0;
}

static cg_status unsupported_type(const char *path) {
    return cg_error(CG_ERR_FORMAT, "%s: unsupported image type %s: cgrad decodes JPEG and PNG only", path,
                    strrchr(path, '.'));
}

// Orders entries by (folder, file name), as Python's sorted(os.walk(...)) then sorted(files).
static int by_folder_then_name(const void *pa, const void *pb) {
    const image_file *a = pa, *b = pb;
    size_t la = a->name_at, lb = b->name_at;
    int r = memcmp(a->path, b->path, la < lb ? la : lb);
    if (r != 0) return r;
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a->path + la, b->path + lb);
}

// Appends to l the JPEG / PNG files of dir (and, when recurse, of its subfolders), labelled
// `label`. Names starting with '.' are skipped; another image type is an error.
static cg_status walk(const char *dir, bool recurse, int depth, int32_t label, image_file_list *l) {
    if (depth > MAX_DEPTH)
        return cg_error(CG_ERR_FORMAT, "%s: folders nested more than %d deep (a symbolic-link loop?)", dir, MAX_DEPTH);
    DIR *dp = opendir(dir);
    if (dp == NULL) return cg_error(CG_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    cg_status s = cg_ok();
    struct dirent *de;
    while (s.code == CG_OK && (de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *path = cg_path_join(dir, de->d_name);
        int kind = image_kind(de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            if (kind != 0) s = cg_error(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            free(path);
        } else if (S_ISDIR(st.st_mode)) {
            if (recurse) s = walk(path, true, depth + 1, label, l);
            free(path);
        } else if (S_ISREG(st.st_mode) && kind == 1) {
            list_push(l, path, label, &st); // the list owns path now
        } else {
            if (S_ISREG(st.st_mode) && kind == -1) s = unsupported_type(path);
            free(path);
        }
    }
    closedir(dp);
    return s;
}

static int by_string(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// ---- decoding -----------------------------------------------------------------------------------

// Reads and decodes one image of the expected size into dst (3 * height * width bytes).
static cg_status decode_one(const image_file *e, int width, int height, const char *first_path, uint8_t *dst) {
    char *data;
    size_t len;
    cg_status s = cg_file_read(e->path, MAX_IMAGE_FILE, &data, &len);
    if (s.code != CG_OK) return s;
    int w = 0, h = 0;
    s = cg_image_probe(e->path, (const uint8_t *)data, len, &w, &h);
    if (s.code == CG_OK && (w != width || h != height))
        s = cg_error(CG_ERR_FORMAT, "%s: %d x %d pixels, expected %d x %d like %s: every image must have the same "
                     "size (cgrad does not resize)", e->path, w, h, width, height, first_path);
    if (s.code == CG_OK) s = cg_image_decode_rgb(e->path, (const uint8_t *)data, len, width, height, dst);
    free(data);
    return s;
}

// Decodes every image of l into a new data set. The first image sets the size; on errors, the
// one of the lowest index is reported.
static cg_status decode_all(const image_file_list *l, int num_classes, cg_dataset **out) {
    *out = NULL;
    char *data;
    size_t len;
    cg_status s = cg_file_read(l->v[0].path, MAX_IMAGE_FILE, &data, &len);
    if (s.code != CG_OK) return s;
    int width = 0, height = 0;
    s = cg_image_probe(l->v[0].path, (const uint8_t *)data, len, &width, &height);
    free(data);
    if (s.code != CG_OK) return s;
    if (l->n > CG_DATASET_MAX_COUNT)
        return cg_error(CG_ERR_FORMAT, "%s: %lld images, more than the %d cgrad accepts", l->v[0].path, (long long)l->n,
                        CG_DATASET_MAX_COUNT);
    uint64_t total = 0;
    if (!cg_mul_u64((uint64_t)l->n, 3ull * (uint64_t)width * (uint64_t)height, &total) || total > SIZE_MAX / 2)
        return cg_error(CG_ERR_OOM, "%s: %lld images of 3 x %d x %d do not fit in memory", l->v[0].path,
                        (long long)l->n, height, width);
    // The limit stated in dataset.h: the decoded pixels must fit in the machine's memory (a folder
    // of small files declaring large images would otherwise be paged out, then killed).
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    if (total > memory)
        return cg_error(CG_ERR_OOM, "%s: %lld images of 3 x %d x %d (the size of this first one) need %.1f GiB "
                        "decoded, more than this machine's %.1f GiB of memory", l->v[0].path, (long long)l->n, height,
                        width, (double)total / 1073741824.0, (double)memory / 1073741824.0);
    cg_dataset *d = cg_dataset_new_images(l->n, 3, height, width, num_classes);
    if (d == NULL)
        return cg_error(CG_ERR_OOM, "%s: out of host memory for %lld images of 3 x %d x %d (%llu bytes)",
                        l->v[0].path, (long long)l->n, height, width, (unsigned long long)total);

    const int64_t count = l->n, numel = d->sample_numel;
    int64_t bad_index = count;
    cg_status bad = cg_ok();
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < count; i++) {
        int64_t first_bad;
#pragma omp atomic read
        first_bad = bad_index;
        if (i > first_bad) continue; // an earlier image already failed
        cg_status si = decode_one(&l->v[i], width, height, l->v[0].path, d->pixels + i * numel);
        if (si.code != CG_OK) {
#pragma omp critical(cg_image_folder_error)
            {
                if (i < bad_index) {
                    bad = si;
#pragma omp atomic write
                    bad_index = i;
                }
            }
        }
        d->labels[i] = l->v[i].label;
    }
    if (bad.code != CG_OK) {
        cg_dataset_free(d);
        return bad;
    }
    *out = d;
    return cg_ok();
}

// The data set of the listed images: from root/cache_name when it matches, else decoded (and the
// cache written). Takes the names (freed on error, the data set's on success). report->cache and
// ->cache_path say what happened to the cache.
static cg_status load_listed(const char *root, image_file_list *l, char **names, int num_classes, const char *cache_name,
                             bool use_cache, cg_image_load_report *report, cg_dataset **out) {
    size_t root_len = strlen(root);
    if (root_len > 0 && root[root_len - 1] != '/') root_len++; // paths are root + "/" + rest
    fingerprint fp = fingerprint_of(l, root_len, names, num_classes);
    char *cache_path = cg_path_join(root, cache_name);
    snprintf(report->cache_path, sizeof report->cache_path, "%s", cache_path);
    bool had_cache = use_cache && cg_is_file(cache_path); // there but not used: stale or damaged
    cg_dataset *d = use_cache ? cache_read(cache_path, &fp, l, num_classes) : NULL;
    cg_status s = cg_ok();
    if (d != NULL) {
        report->cache = CG_CACHE_USED;
    } else {
        report->cache = CG_CACHE_OFF;
        s = decode_all(l, num_classes, &d);
        if (s.code == CG_OK && use_cache) {
            cg_status w = cache_write(cache_path, root, &fp, d);
            report->cache = w.code != CG_OK ? CG_CACHE_NOT_WRITTEN : had_cache ? CG_CACHE_REBUILT : CG_CACHE_WRITTEN;
            if (w.code != CG_OK)
                fprintf(stderr, "cgrad: warning: no decoded cache (%s); the next load decodes the images again\n",
                        w.message);
        }
    }
    free(cache_path);
    if (s.code != CG_OK) {
        for (int c = 0; c < num_classes; c++) free(names[c]);
        free(names);
        return s;
    }
    d->class_names = names;
    *out = d;
    return cg_ok();
}

// ---- ImageFolder --------------------------------------------------------------------------------

static cg_status folder_load(const char *root, bool use_cache, cg_image_load_report *report, cg_dataset **out) {
    *out = NULL;
    DIR *dp = opendir(root);
    if (dp == NULL) return cg_error(CG_ERR_IO, "%s: cannot open the folder: %s", root, strerror(errno));
    int num_classes = 0, cap = 16;
    char **names = cg_xmalloc((size_t)cap * sizeof *names);
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *path = cg_path_join(root, de->d_name);
        bool dir = cg_is_dir(path);
        free(path);
        if (!dir) continue;
        if (num_classes > CG_DATASET_MAX_CLASSES) { // counted on, not stored: the refusal below says how many
            num_classes++;
            continue;
        }
        if (num_classes == cap) {
            cap *= 2;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            CG_CHECK(grown != NULL, "out of host memory listing %d class folders", cap);
            names = grown;
        }
        names[num_classes++] = strdup(de->d_name);
    }
    closedir(dp);
    if (num_classes > CG_DATASET_MAX_CLASSES) {
        for (int c = 0; c <= CG_DATASET_MAX_CLASSES; c++) free(names[c]); // the ones stored
        free(names);
        return cg_error(CG_ERR_FORMAT, "%s: %d class folders, more than the %d cgrad accepts", root, num_classes,
                        CG_DATASET_MAX_CLASSES);
    }
    if (num_classes == 0) {
        free(names);
        return cg_error(CG_ERR_FORMAT, "%s: no class folders: expected %s/CLASS/IMAGE.jpg|png (torchvision's "
                        "ImageFolder layout)", root, root);
    }
    qsort(names, (size_t)num_classes, sizeof *names, by_string);

    image_file_list l = {0};
    cg_status s = cg_ok();
    for (int c = 0; c < num_classes && s.code == CG_OK; c++) {
        char *dir = cg_path_join(root, names[c]);
        int64_t start = l.n;
        s = walk(dir, true, 0, c, &l);
        if (s.code == CG_OK && l.n == start)
            s = cg_error(CG_ERR_FORMAT, "%s: no .jpg, .jpeg or .png images in class folder '%s'", dir, names[c]);
        if (s.code == CG_OK)
            qsort(l.v + start, (size_t)(l.n - start), sizeof *l.v, by_folder_then_name);
        free(dir);
    }
    if (s.code != CG_OK) {
        list_free(&l);
        for (int c = 0; c < num_classes; c++) free(names[c]);
        free(names);
        return s;
    }
    s = load_listed(root, &l, names, num_classes, ".cgrad-cache.bin", use_cache, report, out);
    list_free(&l);
    return s;
}

cg_status cg_image_folder_load(const char *root, bool use_cache, bool *from_cache, cg_dataset **out) {
    cg_image_load_report report = {0};
    cg_status s = folder_load(root, use_cache, &report, out);
    if (from_cache) *from_cache = s.code == CG_OK && report.cache == CG_CACHE_USED;
    return s;
}

// ---- TinyImageNet-200 ---------------------------------------------------------------------------

typedef struct {
    const char *wnid;
    int index;
} wnid_index;

static int by_wnid(const void *a, const void *b) {
    return strcmp(((const wnid_index *)a)->wnid, ((const wnid_index *)b)->wnid);
}

// The label of wnid, or -1.
static int find_wnid(const wnid_index *sorted, int n, const char *wnid) {
    wnid_index key = {wnid, 0};
    const wnid_index *hit = bsearch(&key, sorted, (size_t)n, sizeof key, by_wnid);
    return hit ? hit->index : -1;
}

// A name is a plain file or folder name: not empty, no '/', not starting with '.', no spaces.
static bool plain_name(const char *s) {
    return s[0] != '\0' && s[0] != '.' && strpbrk(s, "/ \t") == NULL;
}

// "WNID first-synonym" for each wnid, from words.txt ("WNID<TAB>syn, syn, ..." per line); the
// wnid alone where words.txt is absent or has no line for it.
static cg_status tiny_names(const char *root, char **wnids, const wnid_index *sorted, int n, char ***out) {
    char **names = cg_xcalloc((size_t)n, sizeof *names);
    char *words_path = cg_path_join(root, "words.txt");
    if (cg_is_file(words_path)) {
        char *text;
        size_t len;
        cg_status s = cg_file_read(words_path, 64u << 20, &text, &len);
        if (s.code != CG_OK) {
            free(words_path);
            free(names);
            return s;
        }
        char *line = text;
        while (line < text + len) {
            char *end = memchr(line, '\n', (size_t)(text + len - line));
            if (end == NULL) end = text + len;
            *end = '\0';
            char *tab = strchr(line, '\t');
            if (tab != NULL) {
                *tab = '\0';
                int label = find_wnid(sorted, n, line);
                if (label >= 0 && names[label] == NULL) {
                    char *syn = tab + 1;
                    size_t syn_len = strcspn(syn, ",\r");
                    names[label] = cg_xmalloc(strlen(line) + syn_len + 2);
                    sprintf(names[label], "%s %.*s", line, (int)syn_len, syn);
                }
            }
            line = end + 1;
        }
        free(text);
    }
    free(words_path);
    for (int i = 0; i < n; i++)
        if (names[i] == NULL) names[i] = strdup(wnids[i]);
    *out = names;
    return cg_ok();
}

static cg_status tiny_val_list(const char *root, const wnid_index *sorted, int n, image_file_list *l) {
    char *ann_path = cg_path_join(root, "val/val_annotations.txt");
    char *images = cg_path_join(root, "val/images");
    char **lines = NULL;
    int count = 0;
    cg_status s = cg_read_lines(ann_path, 16u << 20, &lines, &count);
    if (s.code == CG_OK && count == 0) s = cg_error(CG_ERR_FORMAT, "%s: empty: expected FILE<TAB>WNID lines", ann_path);
    for (int k = 0; k < count && s.code == CG_OK; k++) {
        char *tab = strchr(lines[k], '\t');
        if (tab == NULL) {
            s = cg_error(CG_ERR_FORMAT, "%s: entry %d: expected FILE<TAB>WNID<TAB>..., found '%.60s'", ann_path, k + 1,
                         lines[k]);
            break;
        }
        *tab = '\0';
        char *wnid = tab + 1;
        wnid[strcspn(wnid, "\t")] = '\0';
        int label = find_wnid(sorted, n, wnid);
        if (!plain_name(lines[k]))
            s = cg_error(CG_ERR_FORMAT, "%s: entry %d: file name '%s' is not a plain file name", ann_path, k + 1,
                         lines[k]);
        else if (label < 0)
            s = cg_error(CG_ERR_FORMAT, "%s: entry %d: class '%s' of %s is not in wnids.txt", ann_path, k + 1, wnid,
                         lines[k]);
        if (s.code != CG_OK) break;
        char *path = cg_path_join(images, lines[k]);
        struct stat st;
        int kind = image_kind(lines[k]);
        errno = 0;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            s = cg_error(CG_ERR_IO, "%s: cannot open (listed in %s, entry %d): %s", path, ann_path, k + 1,
                         errno ? strerror(errno) : "not a regular file");
        else if (kind == -1)
            s = unsupported_type(path);
        else if (kind == 0)
            s = cg_error(CG_ERR_FORMAT, "%s: not a .jpg, .jpeg or .png name (listed in %s, entry %d)", path, ann_path,
                         k + 1);
        if (s.code != CG_OK) {
            free(path);
            break;
        }
        list_push(l, path, label, &st);
    }
    cg_lines_free(lines, count);
    free(ann_path);
    free(images);
    return s;
}

static cg_status tiny_load(const char *root, bool train, bool use_cache, cg_image_load_report *report,
                           cg_dataset **out) {
    *out = NULL;
    if (!cg_is_dir(root))
        return cg_error(CG_ERR_IO, "%s: not a folder (expected the extracted tiny-imagenet-200/)", root);
    char *wnids_path = cg_path_join(root, "wnids.txt");
    char **wnids = NULL;
    int n = 0;
    cg_status s = cg_read_lines(wnids_path, 1u << 20, &wnids, &n);
    if (s.code == CG_OK && n == 0) s = cg_error(CG_ERR_FORMAT, "%s: empty: expected one WordNet id per line", wnids_path);
    if (s.code == CG_OK && n > CG_DATASET_MAX_CLASSES)
        s = cg_error(CG_ERR_FORMAT, "%s: %d classes, more than the %d cgrad accepts", wnids_path, n,
                     CG_DATASET_MAX_CLASSES);
    wnid_index *sorted = cg_xcalloc((size_t)(n > 0 ? n : 1), sizeof *sorted);
    for (int i = 0; i < n && s.code == CG_OK; i++) {
        if (!plain_name(wnids[i]))
            s = cg_error(CG_ERR_FORMAT, "%s: line %d: '%.60s' is not a WordNet id (a plain folder name)", wnids_path,
                         i + 1, wnids[i]);
        sorted[i].wnid = wnids[i];
        sorted[i].index = i;
    }
    if (s.code == CG_OK) {
        qsort(sorted, (size_t)n, sizeof *sorted, by_wnid);
        for (int i = 1; i < n && s.code == CG_OK; i++)
            if (strcmp(sorted[i - 1].wnid, sorted[i].wnid) == 0)
                s = cg_error(CG_ERR_FORMAT, "%s: '%s' appears twice: expected each class once", wnids_path,
                             sorted[i].wnid);
    }
    char **names = NULL;
    if (s.code == CG_OK) s = tiny_names(root, wnids, sorted, n, &names);

    image_file_list l = {0};
    if (s.code == CG_OK && train) {
        for (int c = 0; c < n && s.code == CG_OK; c++) {
            char *cls = cg_path_join(root, "train");
            char *cls_dir = cg_path_join(cls, wnids[c]);
            char *dir = cg_path_join(cls_dir, "images");
            int64_t start = l.n;
            if (!cg_is_dir(dir))
                s = cg_error(CG_ERR_IO, "%s: missing: expected the training images of class %s (wnids.txt line %d)",
                             dir, wnids[c], c + 1);
            else
                s = walk(dir, false, 0, c, &l);
            if (s.code == CG_OK && l.n == start)
                s = cg_error(CG_ERR_FORMAT, "%s: no .JPEG, .jpg or .png images for class %s", dir, wnids[c]);
            if (s.code == CG_OK) qsort(l.v + start, (size_t)(l.n - start), sizeof *l.v, by_folder_then_name);
            free(cls);
            free(cls_dir);
            free(dir);
        }
    } else if (s.code == CG_OK) {
        s = tiny_val_list(root, sorted, n, &l);
    }
    free(wnids_path);
    free(sorted);
    if (s.code == CG_OK) {
        s = load_listed(root, &l, names, n, train ? ".cgrad-cache-train.bin" : ".cgrad-cache-val.bin", use_cache,
                        report, out);
        names = NULL; // load_listed owns them now
    }
    if (names != NULL) {
        for (int c = 0; c < n; c++) free(names[c]);
        free(names);
    }
    list_free(&l);
    cg_lines_free(wnids, n);
    return s;
}

cg_status cg_tinyimagenet_load(const char *root, bool train, bool use_cache, bool *from_cache, cg_dataset **out) {
    cg_image_load_report report = {0};
    cg_status s = tiny_load(root, train, use_cache, &report, out);
    if (from_cache) *from_cache = s.code == CG_OK && report.cache == CG_CACHE_USED;
    return s;
}

// ---- one split, with a report -------------------------------------------------------------------

cg_status cg_image_dataset_load(cg_image_layout layout, const char *dir, bool train, bool use_cache,
                                cg_image_load_report *report, cg_dataset **out) {
    *out = NULL;
    cg_image_load_report local;
    if (report == NULL) report = &local;
    *report = (cg_image_load_report){.split = train ? "train" : "val", .cache = CG_CACHE_OFF};
    double start = cg_seconds();
    cg_status s;
    if (layout == CG_IMAGE_TINYIMAGENET) {
        snprintf(report->folder, sizeof report->folder, "%s/%s", dir, report->split);
        s = tiny_load(dir, train, use_cache, report, out);
    } else {
        // The evaluation split: val/ when there is one (torchvision's habit), else test/.
        char *val = cg_path_join(dir, "val"), *test = cg_path_join(dir, "test");
        if (!train && !cg_is_dir(val) && cg_is_dir(test)) report->split = "test";
        char *folder = cg_path_join(dir, report->split);
        snprintf(report->folder, sizeof report->folder, "%s", folder);
        if (!cg_is_dir(folder))
            s = train ? cg_error(CG_ERR_IO, "%s: missing: expected the training images as %s/CLASS/IMAGE.jpg|png", folder,
                                 folder)
                      : cg_error(CG_ERR_IO, "%s: neither %s nor %s: expected the evaluation images as "
                                 "DIR/val/CLASS/IMAGE.jpg|png (or DIR/test/...)", dir, val, test);
        else
            s = folder_load(folder, use_cache, report, out);
        free(val);
        free(test);
        free(folder);
    }
    report->seconds = cg_seconds() - start;
    report->images = s.code == CG_OK ? (*out)->count : 0;
    return s;
}

void cg_image_load_describe(const cg_image_load_report *r, char *text, size_t size) {
    if (size == 0) return;
    char head[1200];
    snprintf(head, sizeof head, "%s split (%s): %lld image%s", r->split, r->folder, (long long)r->images,
             r->images == 1 ? "" : "s");
    switch (r->cache) {
    case CG_CACHE_USED:
        snprintf(text, size, "%s from the decoded cache %s in %.2f s", head, r->cache_path, r->seconds);
        break;
    case CG_CACHE_WRITTEN:
        snprintf(text, size, "%s decoded in %.2f s (no decoded cache yet: wrote %s)", head, r->seconds, r->cache_path);
        break;
    case CG_CACHE_REBUILT:
        snprintf(text, size, "%s decoded in %.2f s (the decoded cache no longer matched the files: rewrote %s)", head,
                 r->seconds, r->cache_path);
        break;
    case CG_CACHE_NOT_WRITTEN:
        snprintf(text, size, "%s decoded in %.2f s (the decoded cache could not be written)", head, r->seconds);
        break;
    case CG_CACHE_OFF:
    default:
        snprintf(text, size, "%s decoded in %.2f s (decoded cache off)", head, r->seconds);
        break;
    }
}

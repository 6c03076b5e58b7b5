// checkpoint.c: a parameter block to and from safetensors. Saving writes a temporary file and
// renames it (fsync before and after) so a crash never leaves half a checkpoint; loading parses
// the file through safetensors_file.c, which checks every rule of the format before anything is copied. Only F32
// tensors are saved or loaded (and BatchNorm's step counts as I64); the other dtypes are known only
// to check a file's layout. A checkpoint is one or more blocks (parameters, buffers) saved as one.
#define _POSIX_C_SOURCE 200809L
#include "core/train/checkpoint.h"
#include "core/safe_file.h"
#include "core/train/safetensors_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Tensors are written and read as they lie in memory, and safetensors is little-endian.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "core/checkpoint.c needs a little-endian host"
#endif

// ---- the tensors of the blocks ------------------------------------------------------------------

// Every tensor of the blocks, in block order.
typedef struct {
    cg_tensor **t;
    int count;
} tensor_list;

static tensor_list gather(cg_params *const *blocks, int n_blocks) {
    CG_CHECK(n_blocks >= 1 && blocks != NULL, "a checkpoint needs at least one block");
    tensor_list l = {NULL, 0};
    int total = 0;
    for (int b = 0; b < n_blocks; b++) {
        CG_CHECK(blocks[b] != NULL, "checkpoint block %d is NULL", b);
        total += blocks[b]->count;
    }
    l.t = cg_xmalloc((size_t)(total + 1) * sizeof *l.t);
    for (int b = 0; b < n_blocks; b++)
        for (int i = 0; i < blocks[b]->count; i++) l.t[l.count++] = blocks[b]->tensors[i];
    return l;
}

// PyTorch keeps BatchNorm's count of training batches, "NAME.num_batches_tracked", as an int64
// scalar; cgrad keeps it as an f32 scalar (layers/norm.h). Such a tensor is written as I64, and
// read from I64 (or F32).
static bool is_step_count(const cg_tensor *t) {
    static const char suffix[] = ".num_batches_tracked";
    size_t n = strlen(t->name), k = sizeof suffix - 1;
    return t->ndim == 0 && n > k && strcmp(t->name + n - k, suffix) == 0;
}

static int64_t file_bytes(const cg_tensor *t) { return is_step_count(t) ? 8 : t->numel * (int64_t)sizeof(float); }

// ---- saving ------------------------------------------------------------------------------------

// A JSON number written exactly: cJSON stores numbers as doubles and prints large ones with an
// exponent, so integers go in as raw text.
static cJSON *json_integer(int64_t v) {
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_CreateRaw(text);
}

// The header: "__metadata__" first (when there is any), then each parameter in block order with
// its bytes packed one after another. Returns a malloc'ed, unpadded JSON text, or NULL when
// cJSON runs out of memory.
static char *build_header(const tensor_list *p, const char *const *metadata, int n_metadata) {
    cJSON *root = cJSON_CreateObject();
    if (n_metadata > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, METADATA_KEY);
        for (int i = 0; i < n_metadata; i++)
            cJSON_AddStringToObject(meta, metadata[2 * i], metadata[2 * i + 1]);
    }
    int64_t offset = 0; // bytes into the data section
    for (int i = 0; i < p->count; i++) {
        const cg_tensor *t = p->t[i];
        cJSON *entry = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(entry, "dtype", is_step_count(t) ? "I64" : "F32");
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, json_integer(t->shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, json_integer(offset));
        offset += file_bytes(t);
        cJSON_AddItemToArray(offsets, json_integer(offset));
    }
    char *text = cJSON_PrintUnformatted(root); // NULL if any step above failed to allocate
    cJSON_Delete(root);
    return text;
}

// The arguments a caller can get wrong (CG_ERR_ARG); a NULL block or path is a programmer error.
static cg_status check_save_args(const tensor_list *p, const char *path, const char *const *metadata,
                                 int n_metadata) {
    CG_CHECK(path != NULL, "cg_checkpoint_save needs a path");
    CG_CHECK(n_metadata >= 0 && (n_metadata == 0 || metadata != NULL),
             "n_metadata = %d with metadata %s", n_metadata, metadata ? "given" : "NULL");
    for (int i = 0; i < n_metadata; i++) {
        const char *key = metadata[2 * i], *value = metadata[2 * i + 1];
        if (key == NULL || key[0] == '\0')
            return cg_error(CG_ERR_ARG, "saving checkpoint '%s': metadata key %d is %s", path, i,
                            key ? "empty" : "NULL");
        if (value == NULL)
            return cg_error(CG_ERR_ARG, "saving checkpoint '%s': metadata value of '%s' is NULL",
                            path, key);
        for (int j = 0; j < i; j++)
            if (strcmp(metadata[2 * j], key) == 0)
                return cg_error(CG_ERR_ARG, "saving checkpoint '%s': metadata key '%s' given twice",
                                path, key);
    }
    for (int i = 0; i < p->count; i++) {
        if (strcmp(p->t[i]->name, METADATA_KEY) == 0)
            return cg_error(CG_ERR_ARG, "saving checkpoint '%s': a parameter is named '%s', which "
                            "safetensors keeps for metadata", path, METADATA_KEY);
        for (int j = 0; j < i; j++) // two blocks may not share a name
            if (strcmp(p->t[i]->name, p->t[j]->name) == 0)
                return cg_error(CG_ERR_ARG, "saving checkpoint '%s': two tensors are named '%s'", path,
                                p->t[i]->name);
    }
    return cg_ok();
}

// Write the 8-byte length, the header padded with spaces to a multiple of 8 bytes, then every
// parameter's values. Returns false with errno set when a write fails.
static bool write_contents(FILE *f, const tensor_list *p, const char *header) {
    size_t length = strlen(header);
    size_t padded = (length + 7) / 8 * 8;
    unsigned char size_bytes[8];
    for (int i = 0; i < 8; i++) size_bytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (fwrite(size_bytes, 1, 8, f) != 8) return false;
    if (fwrite(header, 1, length, f) != length) return false;
    for (size_t i = length; i < padded; i++)
        if (fputc(' ', f) == EOF) return false;

    float *host = NULL; // staging for parameters that live on a GPU
    bool ok = true;
    for (int i = 0; i < p->count && ok; i++) {
        const cg_tensor *t = p->t[i];
        const float *values = t->data;
        if (t->device.type != CG_CPU) {
            free(host);
            host = cg_xmalloc(cg_tensor_bytes(t));
            cg_tensor_copy_to_host(host, t, t->numel);
            values = host;
        }
        if (is_step_count(t)) {
            int64_t count = (int64_t)llroundf(values[0]);
            ok = fwrite(&count, sizeof count, 1, f) == 1;
        } else {
            ok = fwrite(values, sizeof(float), (size_t)t->numel, f) == (size_t)t->numel;
        }
    }
    int saved_errno = errno;
    free(host);
    errno = saved_errno;
    return ok;
}

// fsync the directory holding path, so that the rename itself survives a crash.
// Filesystems that cannot sync a directory answer EINVAL; that is not an error.
static int sync_directory(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    int err = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    close(fd);
    return err;
}

cg_status cg_checkpoint_save(const cg_params *p, const char *path, const char *const *metadata,
                             int n_metadata) {
    CG_CHECK(p != NULL, "cg_checkpoint_save needs a parameter block");
    cg_params *blocks[1] = {(cg_params *)p}; // only read
    return cg_checkpoint_save_blocks(blocks, 1, path, metadata, n_metadata);
}

static cg_status save_list(const tensor_list *p, const char *path, const char *const *metadata, int n_metadata);

cg_status cg_checkpoint_save_blocks(cg_params *const *blocks, int n_blocks, const char *path,
                                    const char *const *metadata, int n_metadata) {
    tensor_list list = gather(blocks, n_blocks);
    cg_status st = save_list(&list, path, metadata, n_metadata);
    free(list.t);
    return st;
}

static cg_status save_list(const tensor_list *p, const char *path, const char *const *metadata, int n_metadata) {
    cg_status st = check_save_args(p, path, metadata, n_metadata);
    if (st.code != CG_OK) return st;
    char *header = build_header(p, metadata, n_metadata);
    if (header == NULL)
        return cg_error(CG_ERR_OOM, "saving checkpoint '%s': out of memory building the header", path);

    // The temporary file is made new (mkstemp: never through an existing name or link), and the
    // ones that killed runs left beside path are removed first.
    cg_remove_stale_temps(path);
    size_t tmp_size = strlen(path) + 64;
    char *tmp = cg_xmalloc(tmp_size);
    int fd = cg_temp_create(path, tmp, tmp_size);
    if (fd < 0) {
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': cannot create a temporary file '%s': %s",
                      path, tmp, strerror(errno));
        free(tmp);
        free(header);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    if (f == NULL) {
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': fdopen of '%s': %s", path, tmp,
                      strerror(errno));
        close(fd);
    } else if (!write_contents(f, p, header) || fflush(f) != 0) {
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': writing '%s': %s", path, tmp, strerror(errno));
    } else if (fsync(fileno(f)) != 0) {
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': fsync of '%s': %s", path, tmp, strerror(errno));
    }
    if (f != NULL && fclose(f) != 0 && st.code == CG_OK)
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': closing '%s': %s", path, tmp, strerror(errno));
    if (st.code == CG_OK && rename(tmp, path) != 0)
        st = cg_error(CG_ERR_IO, "saving checkpoint '%s': renaming '%s' to it: %s", path, tmp,
                      strerror(errno));
    if (st.code != CG_OK) {
        unlink(tmp); // the checkpoint already at path, if any, was never opened
    } else {
        char dir[4096];
        int err = sync_directory(path, dir, sizeof dir);
        if (err != 0)
            st = cg_error(CG_ERR_IO, "saved checkpoint '%s' but could not fsync its directory '%s': %s",
                          path, dir, strerror(err));
    }
    free(tmp);
    free(header);
    return st;
}

// ---- loading -----------------------------------------------------------------------------------

static cg_status load(const tensor_list *p, const char *path, bool allow_extra) {
    CG_CHECK(path != NULL, "cg_checkpoint_load needs a path");
    st_file sf;
    cg_status st = st_open(&sf, path);
    if (st.code != CG_OK) return st;

    // Names, dtypes and shapes first, so that a file for another model reads nothing.
    char a[96], b[96];
    int64_t total = 0; // floats over all parameters: each fits in the file, checked above
    for (int i = 0; i < p->count && st.code == CG_OK; i++) {
        const cg_tensor *t = p->t[i];
        st_entry *e = st_find(&sf, t->name);
        if (e == NULL) {
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': parameter '%s' %s is missing from the file",
                          path, t->name, cg_shape_str(t, a, sizeof a));
            break;
        }
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (strcmp(e->dtype, "F32") != 0 && !(is_step_count(t) && strcmp(e->dtype, "I64") == 0))
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' is %s, the parameter is %s",
                          path, t->name, e->dtype, is_step_count(t) ? "I64 or F32" : "F32");
        else if (!same)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' has shape %s, the model's parameter is %s",
                          path, t->name, entry_shape_str(e, a, sizeof a), cg_shape_str(t, b, sizeof b));
        e->used = true;
        total += t->numel;
    }
    for (int i = 0; i < sf.count && st.code == CG_OK && !allow_extra; i++)
        if (!sf.entries[i].used)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' %s is not a parameter of the model",
                          path, sf.entries[i].name, entry_shape_str(&sf.entries[i], a, sizeof a));

    // Read everything, then copy: a read error halfway leaves the parameters as they were.
    float *host = st.code == CG_OK ? cg_xmalloc((size_t)total * sizeof(float)) : NULL;
    int64_t at = 0;
    for (int i = 0; i < p->count && st.code == CG_OK; i++) {
        const cg_tensor *t = p->t[i];
        const st_entry *e = st_find(&sf, t->name);
        if (strcmp(e->dtype, "I64") == 0) { // a step count (checked above)
            int64_t count = 0;
            st = read_at(&sf, sf.data_start + e->begin, &count, sizeof count, t->name);
            host[at] = (float)count;
        } else {
            st = read_at(&sf, sf.data_start + e->begin, host + at, cg_tensor_bytes(t), t->name);
        }
        at += t->numel;
    }
    // Weights that are NaN or infinite come from a run that diverged: refused, naming the tensor,
    // rather than trained on or quantised (whose integer conversion of NaN is undefined).
    at = 0;
    for (int i = 0; i < p->count && st.code == CG_OK; i++) {
        const cg_tensor *t = p->t[i];
        int64_t bad = 0, first = -1;
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(host[at + k])) {
                if (first < 0) first = k;
                bad++;
            }
        if (bad > 0)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' holds %lld non-finite value%s (the first, "
                          "at index %lld, is %s): the run that saved it diverged; refusing its weights",
                          path, t->name, (long long)bad, bad > 1 ? "s" : "", (long long)first,
                          isnan(host[at + first]) ? "NaN" : host[at + first] > 0 ? "inf" : "-inf");
        at += t->numel;
    }
    at = 0;
    for (int i = 0; i < p->count && st.code == CG_OK; i++) {
        cg_tensor_copy_from_host(p->t[i], host + at, p->t[i]->numel);
        at += p->t[i]->numel;
    }
    free(host);
    st_close(&sf);
    return st;
}

static cg_status load_blocks(cg_params *const *blocks, int n_blocks, const char *path, bool allow_extra) {
    tensor_list list = gather(blocks, n_blocks);
    cg_status st = load(&list, path, allow_extra);
    free(list.t);
    return st;
}

cg_status cg_checkpoint_load(cg_params *p, const char *path) {
    CG_CHECK(p != NULL, "cg_checkpoint_load needs a parameter block");
    return load_blocks(&p, 1, path, false);
}

cg_status cg_checkpoint_load_allow_extra(cg_params *p, const char *path) {
    CG_CHECK(p != NULL, "cg_checkpoint_load needs a parameter block");
    return load_blocks(&p, 1, path, true);
}

cg_status cg_checkpoint_load_blocks(cg_params *const *blocks, int n_blocks, const char *path) {
    return load_blocks(blocks, n_blocks, path, false);
}

cg_status cg_checkpoint_read_metadata(const char *path, const char *key, char *value, size_t size) {
    CG_CHECK(path != NULL && key != NULL && value != NULL && size > 0, "bad arguments");
    st_file sf;
    cg_status st = st_open(&sf, path);
    if (st.code != CG_OK) return st;
    const cJSON *item = sf.metadata ? cJSON_GetObjectItemCaseSensitive(sf.metadata, key) : NULL;
    if (item == NULL)
        st = cg_error(CG_ERR_ARG, "checkpoint '%s': no metadata '%s'", path, key);
    else if (strlen(item->valuestring) >= size)
        st = cg_error(CG_ERR_ARG, "checkpoint '%s': metadata '%s' has %zu bytes, more than the %zu "
                      "given", path, key, strlen(item->valuestring), size - 1);
    else
        snprintf(value, size, "%s", item->valuestring);
    st_close(&sf);
    return st;
}

cg_status cg_checkpoint_check_writable(const char *path) {
    CG_CHECK(path != NULL, "cg_checkpoint_check_writable needs a path");
    size_t len = strlen(path);
    if (len == 0) return cg_error(CG_ERR_ARG, "cannot write checkpoint '': the path is empty");
    if (path[len - 1] == '/')
        return cg_error(CG_ERR_ARG, "cannot write checkpoint '%s': the path ends with '/': give a file name", path);
    struct stat info;
    if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
        return cg_error(CG_ERR_ARG, "cannot write checkpoint '%s': it is a directory: give a file name (e.g. "
                        "%s/model.safetensors)", path, path);
    // A real attempt, as the save will make it: a new temporary file beside path, removed at once.
    // It also clears the temporary files that ended runs left there.
    cg_remove_stale_temps(path);
    char tmp[4200];
    int fd = cg_temp_create(path, tmp, sizeof tmp);
    if (fd < 0) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash == NULL)
            snprintf(dir, sizeof dir, ".");
        else if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
        return cg_error(CG_ERR_IO, "cannot write checkpoint '%s': directory '%s': %s", path, dir, strerror(errno));
    }
    close(fd);
    unlink(tmp);
    return cg_ok();
}

cg_status cg_checkpoint_read_all_metadata(const char *path, char ***pairs, int *count) {
    CG_CHECK(path != NULL && pairs != NULL && count != NULL, "bad arguments");
    *pairs = NULL;
    *count = 0;
    st_file sf;
    cg_status st = st_open(&sf, path);
    if (st.code != CG_OK) return st;
    int n = sf.metadata ? cJSON_GetArraySize(sf.metadata) : 0;
    char **out = cg_xcalloc((size_t)(2 * n + 1), sizeof *out);
    int i = 0;
    for (const cJSON *kv = sf.metadata ? sf.metadata->child : NULL; kv != NULL && i < n; kv = kv->next, i++) {
        out[2 * i] = cg_xmalloc(strlen(kv->string) + 1);
        strcpy(out[2 * i], kv->string);
        out[2 * i + 1] = cg_xmalloc(strlen(kv->valuestring) + 1);
        strcpy(out[2 * i + 1], kv->valuestring);
    }
    st_close(&sf);
    *pairs = out;
    *count = i;
    return cg_ok();
}

void cg_checkpoint_free_metadata(char **pairs, int count) {
    if (pairs == NULL) return;
    for (int i = 0; i < 2 * count; i++) free(pairs[i]);
    free(pairs);
}

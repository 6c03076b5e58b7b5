// safetensors_file.c: a safetensors file opened and checked rule by rule (safetensors_file.h): the
// header parsed with cJSON, every dtype, shape and offset checked against the file's length, the
// metadata's strings checked, before anything is read. No parameter blocks here: checkpoint.c.
#define _POSIX_C_SOURCE 200809L
#include "core/train/safetensors_file.h"
#include "core/safe_file.h"
#include "core/train/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The dtypes of the safetensors README with a whole number of bytes per element. The sub-byte
// ones (F4, F6_E2M3, F6_E3M2) are not accepted.
typedef struct {
    const char *name;
    int bytes;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},     {"C64", 8},
};

// Bytes per element of a dtype name, or 0 when the name is not one of st_dtypes.
int st_dtype_bytes(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return st_dtypes[i].bytes;
    return 0;
}





void st_close(st_file *sf) {
    if (sf->f) fclose(sf->f);
    cJSON_Delete(sf->root);
    free(sf->entries);
    memset(sf, 0, sizeof *sf);
}

// "[50, 20]" (with ", ..." past CG_MAX_DIMS dims) into buf.
const char *entry_shape_str(const st_entry *e, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    int shown = e->ndim < CG_MAX_DIMS ? e->ndim : CG_MAX_DIMS;
    for (int d = 0; d < shown && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
    if (n < size) snprintf(buf + n, size - n, "%s]", e->ndim > CG_MAX_DIMS ? ", ..." : "");
    return buf;
}

// A JSON number that is a whole number from 0 to 2^53 (the integers a double holds exactly).
static bool json_index(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v <= 9007199254740992.0) || v != floor(v)) return false;
    *out = (int64_t)v;
    return true;
}

// Where the header stops being UTF-8 text without control characters (JSON's whitespace
// aside), or n when it is all good. The reference reader rejects a header that is not UTF-8.
static size_t bad_text_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x20) {
            if (c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        if (c < 0x80) { i++; continue; }
        // A multi-byte sequence: its length from the lead byte, then continuation bytes 10xxxxxx.
        int extra;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { extra = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { extra = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { extra = 3; cp = c & 0x07; }
        else return i;
        if (i + (size_t)extra >= n) return i;
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (size_t)extra + 1;
    }
    return n;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Check the "__metadata__" object: every value a string, no key twice.
static cg_status check_metadata(const char *path, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': \"%s\" is not an object", path, METADATA_KEY);
    int count = cJSON_GetArraySize(meta);
    const char **keys = cg_xmalloc((size_t)count * sizeof *keys);
    int i = 0;
    for (const cJSON *kv = meta->child; kv != NULL; kv = kv->next) {
        if (!cJSON_IsString(kv)) {
            free(keys);
            return cg_error(CG_ERR_FORMAT, "checkpoint '%s': metadata '%s' is not a string", path,
                            kv->string);
        }
        keys[i++] = kv->string;
    }
    qsort(keys, (size_t)count, sizeof *keys, compare_strings);
    cg_status st = cg_ok();
    for (i = 1; i < count && st.code == CG_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': metadata '%s' appears twice", path, keys[i]);
    free(keys);
    return st;
}

// Check one tensor entry on its own: its fields, its dtype, its offsets against the data section
// and its byte count against shape x dtype size.
static cg_status parse_entry(const char *path, const cJSON *item, int64_t data_size, st_entry *e) {
    memset(e, 0, sizeof *e);
    e->name = item->string;
    if (!cJSON_IsObject(item))
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' is not a JSON object", path, e->name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (dtype == NULL || shape == NULL || offsets == NULL)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' has no \"%s\"", path, e->name,
                        dtype == NULL ? "dtype" : shape == NULL ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': dtype is not a string", path, e->name);
    e->dtype = dtype->valuestring;
    int dtype_bytes = st_dtype_bytes(e->dtype);
    if (dtype_bytes == 0)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': unknown dtype '%s'", path,
                        e->name, e->dtype);

    // shape: whole numbers; their product times the dtype size is the tensor's byte count.
    if (!cJSON_IsArray(shape))
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': shape is not an array", path, e->name);
    e->ndim = cJSON_GetArraySize(shape);
    int64_t bytes = dtype_bytes;
    bool empty = false, too_large = false;
    int d = 0;
    for (const cJSON *dim = shape->child; dim != NULL; dim = dim->next, d++) {
        int64_t n;
        if (!json_index(dim, &n))
            return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': shape[%d] is not a "
                            "non-negative integer", path, e->name, d);
        if (d < CG_MAX_DIMS) e->shape[d] = n;
        if (n == 0) empty = true;
        else if (bytes > INT64_MAX / n) too_large = true;
        else bytes *= n;
    }
    if (empty) bytes = 0;
    char shape_buf[96];
    if (too_large && !empty)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': shape %s is too large", path,
                        e->name, entry_shape_str(e, shape_buf, sizeof shape_buf));

    // data_offsets: [begin, end] inside the data section, holding exactly `bytes` bytes.
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_index(offsets->child, &e->begin) || !json_index(offsets->child->next, &e->end))
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': data_offsets is not an array "
                        "of two non-negative integers", path, e->name);
    if (e->end < e->begin)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': data_offsets [%lld, %lld] end "
                        "before they begin", path, e->name, (long long)e->begin, (long long)e->end);
    if (e->end > data_size)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': data_offsets [%lld, %lld] out "
                        "of range: the data section has %lld bytes (file truncated?)", path, e->name,
                        (long long)e->begin, (long long)e->end, (long long)data_size);
    if (e->end - e->begin != bytes)
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s': data_offsets [%lld, %lld] hold "
                        "%lld bytes but shape %s of %s needs %lld", path, e->name,
                        (long long)e->begin, (long long)e->end, (long long)(e->end - e->begin),
                        entry_shape_str(e, shape_buf, sizeof shape_buf), e->dtype, (long long)bytes);
    return cg_ok();
}

static int compare_names(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static int compare_offsets(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// The layout rule: sorted by offsets, each tensor starts where the one before ended (the first
// at 0), and the last ends at the end of the data section. No overlaps, no gaps.
static cg_status check_layout(const st_file *sf) {
    if (sf->count == 0) {
        if (sf->data_size != 0)
            return cg_error(CG_ERR_FORMAT, "checkpoint '%s': no tensors, but %lld bytes of data follow "
                            "the header", sf->path, (long long)sf->data_size);
        return cg_ok();
    }
    const st_entry **order = cg_xmalloc((size_t)sf->count * sizeof *order);
    for (int i = 0; i < sf->count; i++) order[i] = &sf->entries[i];
    qsort(order, (size_t)sf->count, sizeof *order, compare_offsets);
    cg_status st = cg_ok();
    int64_t expected = 0;
    const st_entry *previous = NULL;
    for (int i = 0; i < sf->count && st.code == CG_OK; i++) {
        const st_entry *e = order[i];
        if (e->begin < expected)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensors '%s' [%lld, %lld] and '%s' [%lld, "
                          "%lld] overlap", sf->path, previous->name, (long long)previous->begin,
                          (long long)previous->end, e->name, (long long)e->begin, (long long)e->end);
        else if (e->begin > expected)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': gap in the data section: bytes [%lld, %lld) "
                          "belong to no tensor (before '%s')", sf->path, (long long)expected,
                          (long long)e->begin, e->name);
        expected = e->end;
        previous = e;
    }
    if (st.code == CG_OK && expected != sf->data_size)
        st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': the tensors end at byte %lld of the data section "
                      "but it has %lld bytes (%lld bytes belong to no tensor)", sf->path,
                      (long long)expected, (long long)sf->data_size, (long long)(sf->data_size - expected));
    free(order);
    return st;
}

// Read `bytes` bytes at `offset` of the file into out.
cg_status read_at(const st_file *sf, int64_t offset, void *out, size_t bytes, const char *what) {
    if (fseeko(sf->f, (off_t)offset, SEEK_SET) != 0)
        return cg_error(CG_ERR_IO, "checkpoint '%s': seeking to byte %lld for %s: %s", sf->path,
                        (long long)offset, what, strerror(errno));
    size_t got = fread(out, 1, bytes, sf->f);
    if (got != bytes)
        return cg_error(CG_ERR_IO, "checkpoint '%s': reading %s: %zu of %zu bytes at byte %lld (%s)",
                        sf->path, what, got, bytes, (long long)offset,
                        ferror(sf->f) ? strerror(errno) : "the file ended early");
    return cg_ok();
}

// What a file whose first 8 bytes are `head` is, when it is a format people mistake for
// safetensors, or NULL. PyTorch's torch.save writes a zip archive holding a pickle (.pt, .pth;
// "PK\3\4", PyTorch 1.6 and later) or, in its legacy format, a bare pickle (0x80, then the
// protocol number 2 to 5: the pickle module's PROTO opcode, then another opcode). A safetensors
// header length would need more than 4 GB of header to look like either.
static const char *foreign_format(const unsigned char head[8], const char **hint) {
    static const char *convert = "; convert it in Python: safetensors.torch.save_file(torch.load(FILE), NEW)";
    *hint = "";
    if (memcmp(head, "PK\x03\x04", 4) == 0) {
        *hint = convert;
        return "a zip archive (PyTorch's torch.save format, a .pt or .pth file: a pickle in a zip)";
    }
    // A safetensors header of 0x280 bytes starts 80 02 00 too; no pickle opcode is 0x00.
    if (head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 && head[2] != 0) {
        *hint = convert;
        return "a Python pickle (PyTorch's legacy torch.save format)";
    }
    if (memcmp(head, "\x93NUMPY", 6) == 0) return "a NumPy .npy file";
    if (memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) return "an HDF5 file (Keras?)";
    return NULL;
}

// Open path, read and check the header and the layout. On success sf holds the open file and the
// entries sorted by name; on error sf is closed.
cg_status st_open(st_file *sf, const char *path) {
    memset(sf, 0, sizeof *sf);
    sf->path = path;
    // Checked to be a regular file before anything is read: a named pipe would block forever.
    const char *why = NULL;
    int64_t file_size = 0;
    int fd = cg_open_regular(path, &file_size, &why);
    if (fd < 0) return cg_error(CG_ERR_IO, "checkpoint '%s': cannot open: %s", path, why);
    sf->f = fdopen(fd, "rb");
    if (sf->f == NULL) {
        close(fd);
        return cg_error(CG_ERR_IO, "checkpoint '%s': cannot open: %s", path, strerror(errno));
    }
    if (file_size < 8) {
        st_close(sf);
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': the file has %lld bytes, fewer than the 8 of "
                        "the header length", path, (long long)file_size);
    }

    // The header length: 8 bytes, little-endian. Checked against the file before any allocation.
    unsigned char size_bytes[8];
    cg_status st = read_at(sf, 0, size_bytes, 8, "the header length");
    if (st.code != CG_OK) { st_close(sf); return st; }
    const char *hint = NULL, *foreign = foreign_format(size_bytes, &hint);
    if (foreign != NULL) {
        st_close(sf);
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s' is %s, not a safetensors file%s", path, foreign, hint);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | size_bytes[i];
    if (n > (uint64_t)(file_size - 8)) {
        st_close(sf);
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': header length %llu is larger than the %lld "
                        "bytes that follow it (file truncated?)", path, (unsigned long long)n,
                        (long long)(file_size - 8));
    }
    if (n > CG_CHECKPOINT_MAX_HEADER || n < 2) {
        st_close(sf);
        return cg_error(CG_ERR_FORMAT, "checkpoint '%s': header length %llu is outside 2 to %d bytes",
                        path, (unsigned long long)n, CG_CHECKPOINT_MAX_HEADER);
    }
    sf->data_start = 8 + (int64_t)n;
    sf->data_size = file_size - sf->data_start;

    // The header: UTF-8 text, starting with '{', one JSON value, then only whitespace (padding).
    char *text = cg_xmalloc((size_t)n + 1);
    st = read_at(sf, 8, text, (size_t)n, "the header");
    if (st.code != CG_OK) { free(text); st_close(sf); return st; }
    text[n] = '\0';
    size_t bad = bad_text_at((const unsigned char *)text, (size_t)n);
    if (bad < n)
        st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': header byte %zu (file byte %zu) is not UTF-8 "
                      "text (0x%02x)", path, bad, bad + 8, (unsigned)(unsigned char)text[bad]);
    else if (text[0] != '{')
        st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': the header does not start with '{' (found "
                      "0x%02x): it is not a JSON object", path, (unsigned)(unsigned char)text[0]);
    if (st.code == CG_OK) {
        const char *end = NULL;
        sf->root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
        size_t at = end ? (size_t)(end - text) : 0;
        if (sf->root != NULL)
            while (at < n && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
                at++;
        if (sf->root == NULL || at < n)
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': the header is not valid JSON (at header byte "
                          "%zu of %llu)", path, at, (unsigned long long)n);
        else if (!cJSON_IsObject(sf->root))
            st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': the header is not a JSON object", path);
    }
    free(text);
    if (st.code != CG_OK) { st_close(sf); return st; }

    // The entries: at most one per member, so their count is bounded by the header's length.
    int members = cJSON_GetArraySize(sf->root);
    sf->entries = cg_xcalloc((size_t)members + 1, sizeof *sf->entries);
    int metadata_seen = 0;
    for (const cJSON *item = sf->root->child; item != NULL && st.code == CG_OK; item = item->next) {
        if (strcmp(item->string, METADATA_KEY) == 0) {
            if (++metadata_seen > 1)
                st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': \"%s\" appears twice", path, METADATA_KEY);
            else
                st = check_metadata(path, item);
            sf->metadata = item;
            continue;
        }
        st = parse_entry(path, item, sf->data_size, &sf->entries[sf->count]);
        sf->count++;
    }
    if (st.code == CG_OK) {
        qsort(sf->entries, (size_t)sf->count, sizeof *sf->entries, compare_names);
        for (int i = 1; i < sf->count && st.code == CG_OK; i++)
            if (strcmp(sf->entries[i - 1].name, sf->entries[i].name) == 0)
                st = cg_error(CG_ERR_FORMAT, "checkpoint '%s': tensor '%s' appears twice in the header",
                              path, sf->entries[i].name);
    }
    if (st.code == CG_OK) st = check_layout(sf);
    if (st.code != CG_OK) st_close(sf);
    return st;
}

st_entry *st_find(const st_file *sf, const char *name) {
    st_entry key = {.name = name};
    return bsearch(&key, sf->entries, (size_t)sf->count, sizeof key, compare_names);
}

// Match every parameter to its entry, read them all into host memory, and only then copy them in.

// test_checkpoint.c: safetensors checkpoints (core/checkpoint.h): a bit-exact round trip of a
// SimpleNN parameter block, the saved bytes read back against the format, atomic saves (a failed
// save leaves no temporary file and the old checkpoint as it was), and malformed or mismatched
// files each rejected with a message naming the file; two blocks (parameters and buffers) in one
// file, BatchNorm's num_batches_tracked as PyTorch's I64. A GPU round trip runs when a GPU is there.
// `test_checkpoint --export PATH` writes the file tests/reference/check_safetensors.py reads.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "core/train/checkpoint.h"
#include "tests/check.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64]; // the test's own temporary directory

static void expect_ok(const char *what, cg_status st) {
    if (st.code != CG_OK) fail(what, "expected success, got error %d: %s", st.code, st.message);
}

// "DIR/name" in a static buffer (one at a time is enough here).
static const char *in_dir(const char *name) {
    static char path[sizeof dir + 256 + 1];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

// ---- models ------------------------------------------------------------------------------------

// The course's SimpleNN: fc1 Linear(20, 50), ReLU, fc2 Linear(50, 1), Sigmoid; PyTorch's
// initialisation from a Philox stream keyed by seed.
typedef struct {
    cg_params *params;
    cg_module *net;
} simple_nn;

static simple_nn simple_nn_new(cg_device dev, uint64_t seed) {
    simple_nn m;
    m.params = cg_params_new(dev);
    cg_rng init = cg_rng_new(seed, CG_STREAM_INIT);
    m.net = cg_sequential_new();
    cg_sequential_add(m.net, cg_linear_new(m.params, "fc1", 20, 50, true, &init));
    cg_sequential_add(m.net, cg_relu_new());
    cg_sequential_add(m.net, cg_linear_new(m.params, "fc2", 50, 1, true, &init));
    cg_sequential_add(m.net, cg_sigmoid_new());
    return m;
}

static void simple_nn_free(simple_nn m) {
    cg_module_free(m.net);
    cg_params_free(m.params);
}

// Every parameter value of p, on the host, in block order (malloc'ed; *n gets the count).
static float *host_values(const cg_params *p, int64_t *n) {
    *n = cg_params_count(p);
    float *out = cg_xmalloc((size_t)*n * sizeof(float));
    int64_t at = 0;
    for (int i = 0; i < p->count; i++) {
        cg_tensor_copy_to_host(out + at, p->tensors[i], p->tensors[i]->numel);
        at += p->tensors[i]->numel;
    }
    return out;
}

// True when a and b hold the same names, shapes and bit-identical values.
static bool same_params(const cg_params *a, const cg_params *b) {
    if (a->count != b->count) return false;
    for (int i = 0; i < a->count; i++)
        if (strcmp(a->tensors[i]->name, b->tensors[i]->name) != 0 ||
            !cg_same_shape(a->tensors[i], b->tensors[i]))
            return false;
    int64_t na, nb;
    float *va = host_values(a, &na), *vb = host_values(b, &nb);
    bool same = na == nb && memcmp(va, vb, (size_t)na * sizeof(float)) == 0;
    free(va);
    free(vb);
    return same;
}

// ---- files -------------------------------------------------------------------------------------

// The whole file (malloc'ed), or NULL; *size gets its length.
static unsigned char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = cg_xmalloc((size_t)*size);
    if (fread(bytes, 1, (size_t)*size, f) != (size_t)*size) {
        free(bytes);
        bytes = NULL;
    }
    fclose(f);
    return bytes;
}

static void write_bytes(const char *path, const void *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    CG_CHECK(f != NULL, "cannot write %s", path);
    CG_CHECK(fwrite(bytes, 1, size, f) == size, "short write to %s", path);
    fclose(f);
}

// A safetensors file by hand: the 8-byte length of header (as given, no padding), the header,
// then data_bytes bytes of data holding the floats 0, 1, 2, ... (and zero bytes after those).
static void write_safetensors(const char *path, const char *header, size_t data_bytes) {
    size_t n = strlen(header);
    size_t size = 8 + n + data_bytes;
    unsigned char *bytes = cg_xcalloc(size, 1);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(bytes + 8, header, n);
    for (size_t i = 0; i < data_bytes / 4; i++) {
        float v = (float)i;
        memcpy(bytes + 8 + n + 4 * i, &v, 4);
    }
    write_bytes(path, bytes, size);
    free(bytes);
}

// How many files in the test directory have a name starting with prefix.
static int count_files(const char *prefix) {
    DIR *d = opendir(dir);
    CG_CHECK(d != NULL, "cannot list %s", dir);
    int count = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) count++;
    closedir(d);
    return count;
}

// ---- round trips -------------------------------------------------------------------------------

static void test_round_trip(void) {
    printf("round trip on the CPU\n");
    simple_nn a = simple_nn_new(cg_cpu(), 1), b = simple_nn_new(cg_cpu(), 2);
    if (same_params(a.params, b.params)) fail("round trip", "two seeds gave the same weights");
    const char *meta[] = {"format", "pt", "epoch", "5"};
    const char *path = in_dir("simple_nn.safetensors");
    expect_ok("save", cg_checkpoint_save(a.params, path, meta, 2));
    expect_ok("load", cg_checkpoint_load(b.params, path));
    if (!same_params(a.params, b.params)) fail("round trip", "loaded values differ from the saved ones");

    char value[16];
    expect_ok("read_metadata epoch", cg_checkpoint_read_metadata(path, "epoch", value, sizeof value));
    if (strcmp(value, "5") != 0) fail("read_metadata epoch", "expected \"5\", got \"%s\"", value);
    cg_status st = cg_checkpoint_read_metadata(path, "step", value, sizeof value);
    if (st.code != CG_ERR_ARG) fail("read_metadata step", "a missing key was not an error");
    st = cg_checkpoint_read_metadata(path, "format", value, 2);
    if (st.code != CG_ERR_ARG) fail("read_metadata format", "a value longer than the buffer was not an error");

    // Saving over an existing checkpoint replaces it; no temporary file stays behind.
    simple_nn c = simple_nn_new(cg_cpu(), 3);
    expect_ok("save over", cg_checkpoint_save(c.params, path, NULL, 0));
    expect_ok("load again", cg_checkpoint_load(b.params, path));
    if (!same_params(c.params, b.params)) fail("save over", "the second save did not replace the first");
    if (count_files("simple_nn.safetensors.tmp") != 0) fail("save", "a temporary file was left behind");
    st = cg_checkpoint_read_metadata(path, "epoch", value, sizeof value);
    if (st.code != CG_ERR_ARG) fail("no metadata", "a file without metadata reported an epoch");
    simple_nn_free(a);
    simple_nn_free(b);
    simple_nn_free(c);
}

static void test_gpu_round_trip(void) {
    if (cg_cuda_device_count() == 0) {
        printf("round trip on a GPU: skipped (no GPU)\n");
        return;
    }
    printf("round trip on a GPU\n");
    cg_device gpu = {CG_CUDA, 0};
    simple_nn g = simple_nn_new(gpu, 4), h = simple_nn_new(cg_cpu(), 5), g2 = simple_nn_new(gpu, 6);
    const char *path = in_dir("gpu.safetensors");
    expect_ok("save from GPU", cg_checkpoint_save(g.params, path, NULL, 0));
    expect_ok("load into CPU", cg_checkpoint_load(h.params, path));
    expect_ok("load into GPU", cg_checkpoint_load(g2.params, path));
    if (!same_params(g.params, h.params)) fail("GPU to CPU", "values differ");
    if (!same_params(g.params, g2.params)) fail("GPU to GPU", "values differ");
    simple_nn_free(g);
    simple_nn_free(h);
    simple_nn_free(g2);
}

// ---- the bytes of a saved file -----------------------------------------------------------------

static void test_file_format(void) {
    printf("saved bytes against the safetensors format\n");
    simple_nn a = simple_nn_new(cg_cpu(), 7);
    const char *meta[] = {"format", "pt", "note", "quote \" backslash \\ tab \t done"};
    char path[512];
    snprintf(path, sizeof path, "%s", in_dir("format.safetensors"));
    expect_ok("save", cg_checkpoint_save(a.params, path, meta, 2));
    long size = 0;
    unsigned char *bytes = read_file(path, &size);
    if (bytes == NULL || size < 8) {
        fail("format", "cannot read back %s", path);
        free(bytes);
        simple_nn_free(a);
        return;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    int64_t floats = cg_params_count(a.params); // 20*50 + 50 + 50 + 1
    if (n % 8 != 0) fail("header length", "%llu is not a multiple of 8", (unsigned long long)n);
    if ((long)(8 + n + 4 * floats) != size)
        fail("file size", "8 + header %llu + data %lld != %ld", (unsigned long long)n,
             (long long)(4 * floats), size);
    if (8 + n > (uint64_t)size) {
        free(bytes);
        simple_nn_free(a);
        return;
    }

    // The header: a JSON object, then only spaces; with the metadata and every parameter.
    char *text = (char *)bytes + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    if (root == NULL || !cJSON_IsObject(root)) fail("header", "not a JSON object");
    for (const char *c = end ? end : text + n; c < text + n; c++)
        if (*c != ' ') fail("header padding", "byte %ld is 0x%02x, not a space", (long)(c - text), *c);
    const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(metadata, "format");
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(metadata, "note");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "pt") != 0)
        fail("metadata", "no \"format\": \"pt\"");
    if (!cJSON_IsString(note) || strcmp(note->valuestring, meta[3]) != 0)
        fail("metadata", "the note with quotes, backslash and tab did not come back as written");
    if (cJSON_GetArraySize(root) != 1 + a.params->count)
        fail("header", "%d members, expected metadata and %d tensors", cJSON_GetArraySize(root),
             a.params->count);

    int64_t offset = 0;
    for (int i = 0; i < a.params->count; i++) {
        const cg_tensor *t = a.params->tensors[i];
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, t->name);
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dtype) || strcmp(dtype->valuestring, "F32") != 0)
            fail(t->name, "dtype is not \"F32\"");
        bool shape_ok = cJSON_IsArray(shape) && cJSON_GetArraySize(shape) == t->ndim;
        for (int d = 0; shape_ok && d < t->ndim; d++)
            shape_ok = cJSON_GetArrayItem(shape, d)->valuedouble == (double)t->shape[d];
        if (!shape_ok) fail(t->name, "shape differs from the parameter's");
        int64_t bytes_needed = 4 * t->numel;
        if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
            cJSON_GetArrayItem(offsets, 0)->valuedouble != (double)offset ||
            cJSON_GetArrayItem(offsets, 1)->valuedouble != (double)(offset + bytes_needed)) {
            fail(t->name, "data_offsets are not [%lld, %lld]", (long long)offset,
                 (long long)(offset + bytes_needed));
        } else {
            // The data: the parameter's floats, little-endian (this host's order), bit for bit.
            float *values = cg_xmalloc((size_t)bytes_needed);
            cg_tensor_copy_to_host(values, t, t->numel);
            if (memcmp(bytes + 8 + n + offset, values, (size_t)bytes_needed) != 0)
                fail(t->name, "data section bytes differ from the parameter's values");
            free(values);
        }
        offset += bytes_needed;
    }
    cJSON_Delete(root);
    free(bytes);
    simple_nn_free(a);
}

// ---- atomic saves ------------------------------------------------------------------------------

static void test_atomic_save(void) {
    printf("atomic saves: failures leave no temporary file and the old checkpoint as it was\n");
    simple_nn a = simple_nn_new(cg_cpu(), 8), b = simple_nn_new(cg_cpu(), 9);
    char path[512];
    snprintf(path, sizeof path, "%s", in_dir("atomic.safetensors"));
    expect_ok("first save", cg_checkpoint_save(a.params, path, NULL, 0));
    long size_before = 0, size_after = 0;
    unsigned char *before = read_file(path, &size_before);
    int files_before = count_files("");

    // 1. Into a directory that does not exist: nothing is created.
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no_such_dir/x.safetensors", dir);
    cg_status st = cg_checkpoint_save(b.params, missing, NULL, 0);
    printf("  missing directory: %s\n", st.message);
    if (st.code != CG_ERR_IO || strstr(st.message, missing) == NULL)
        fail("missing directory", "expected CG_ERR_IO naming the path, got %d: %s", st.code, st.message);

    // 2. Over a directory: the temporary file is written, the rename fails, the file is removed.
    char over_dir[512];
    snprintf(over_dir, sizeof over_dir, "%s/a_directory", dir);
    CG_CHECK(mkdir(over_dir, 0755) == 0, "mkdir %s", over_dir);
    files_before++;
    st = cg_checkpoint_save(b.params, over_dir, NULL, 0);
    printf("  rename over a directory: %s\n", st.message);
    if (st.code != CG_ERR_IO) fail("rename fails", "expected CG_ERR_IO, got %d: %s", st.code, st.message);
    if (count_files("a_directory.tmp") != 0) fail("rename fails", "the temporary file was left behind");

    // 3. A write that fails halfway (a file size limit makes write() return EFBIG): the old
    //    checkpoint at the same path is untouched.
    struct rlimit old_limit, small;
    getrlimit(RLIMIT_FSIZE, &old_limit);
    small = old_limit;
    small.rlim_cur = 256;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
        st = cg_checkpoint_save(b.params, path, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &old_limit);
        printf("  write fails (file size limit): %s\n", st.message);
        if (st.code != CG_ERR_IO) fail("write fails", "expected CG_ERR_IO, got %d: %s", st.code, st.message);
    } else {
        printf("  write fails: skipped (setrlimit refused)\n");
    }
    signal(SIGXFSZ, old_handler);

    // 4. Bad metadata: refused before any file is made.
    const char *repeated[] = {"epoch", "1", "epoch", "2"};
    st = cg_checkpoint_save(b.params, path, repeated, 2);
    printf("  repeated metadata key: %s\n", st.message);
    if (st.code != CG_ERR_ARG) fail("repeated key", "expected CG_ERR_ARG, got %d", st.code);
    const char *null_value[] = {"epoch", NULL};
    st = cg_checkpoint_save(b.params, path, null_value, 1);
    if (st.code != CG_ERR_ARG) fail("NULL value", "expected CG_ERR_ARG, got %d", st.code);

    unsigned char *after = read_file(path, &size_after);
    if (before == NULL || after == NULL || size_before != size_after ||
        memcmp(before, after, (size_t)size_before) != 0)
        fail("atomic", "the existing checkpoint changed after failed saves");
    if (count_files("") != files_before)
        fail("atomic", "%d files in the directory after failed saves, %d before", count_files(""),
             files_before);
    if (count_files("atomic.safetensors.tmp") != 0) fail("atomic", "a temporary file was left behind");
    expect_ok("load after failures", cg_checkpoint_load(b.params, path));
    if (!same_params(a.params, b.params)) fail("atomic", "the old checkpoint no longer loads as saved");
    rmdir(over_dir);
    free(before);
    free(after);
    simple_nn_free(a);
    simple_nn_free(b);
}

// ---- malformed and mismatched files ------------------------------------------------------------

// The model every malformed file is loaded into: fc Linear(2, 3), that is fc.weight (3, 2) and
// fc.bias (3,): 24 + 12 bytes of F32.
typedef struct {
    cg_params *params;
    cg_module *fc;
    float *original; // its values before any load
    int64_t n;
} small_model;

static small_model small_new(void) {
    small_model m;
    m.params = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(10, CG_STREAM_INIT);
    m.fc = cg_linear_new(m.params, "fc", 2, 3, true, &init);
    m.original = host_values(m.params, &m.n);
    return m;
}

static void small_free(small_model m) {
    cg_module_free(m.fc);
    cg_params_free(m.params);
    free(m.original);
}

#define GOOD_WEIGHT "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}"
#define GOOD_BIAS "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

// Load path into m and expect the error code with a message that names the file and holds `words`.
// The parameters must be as they were.
static void expect_rejected(const char *what, small_model *m, const char *path, cg_status_code code,
                            const char *words) {
    cg_status st = cg_checkpoint_load(m->params, path);
    printf("  %-28s %s\n", what, st.code == CG_OK ? "(accepted)" : st.message);
    if (st.code != code)
        fail(what, "expected error %d, got %d: %s", code, st.code, st.message);
    else if (strstr(st.message, path) == NULL || strstr(st.message, words) == NULL)
        fail(what, "the message does not name the file and say \"%s\": %s", words, st.message);
    else if (strchr(st.message, '\n') != NULL)
        fail(what, "the message is more than one line: %s", st.message);
    int64_t n;
    float *now = host_values(m->params, &n);
    if (memcmp(now, m->original, (size_t)n * sizeof(float)) != 0)
        fail(what, "a rejected file changed the parameters");
    free(now);
}

// Write a file with the given header and data size, then expect it rejected.
static void expect_header_rejected(const char *what, small_model *m, const char *header,
                                   size_t data_bytes, cg_status_code code, const char *words) {
    char path[512];
    snprintf(path, sizeof path, "%s", in_dir("bad.safetensors"));
    write_safetensors(path, header, data_bytes);
    expect_rejected(what, m, path, code, words);
}

// A file written by hand rather than by cgrad: padding spaces, metadata, and the tensors in
// another order in the header than in the data section. All allowed by the format.
static void test_good_handmade(void) {
    const char *path = in_dir("handmade.safetensors");
    write_safetensors(path, "{\"__metadata__\":{\"epoch\":\"3\"}," GOOD_BIAS "," GOOD_WEIGHT "}      ", 36);
    small_model fresh = small_new();
    expect_ok("hand-made file", cg_checkpoint_load(fresh.params, path));
    int64_t n;
    float *v = host_values(fresh.params, &n); // weight then bias, as in the block
    for (int i = 0; i < 9; i++)
        if (v[i] != (float)i) fail("hand-made file", "value %d is %g, expected %d", i, (double)v[i], i);
    free(v);
    small_free(fresh);
}

static void test_malformed(void) {
    printf("malformed files, each rejected:\n");
    small_model m = small_new();
    test_good_handmade();
    char path[512];
    snprintf(path, sizeof path, "%s", in_dir("bad.safetensors"));

    // A good file of the small model, then cut short at several places.
    const char *good = in_dir("small.safetensors");
    char good_path[512];
    snprintf(good_path, sizeof good_path, "%s", good);
    expect_ok("save small", cg_checkpoint_save(m.params, good_path, NULL, 0));
    long size = 0;
    unsigned char *bytes = read_file(good_path, &size);
    CG_CHECK(bytes != NULL && size > 48, "cannot read back %s", good_path);
    write_bytes(path, bytes, 0);
    expect_rejected("empty file", &m, path, CG_ERR_FORMAT, "fewer than the 8");
    write_bytes(path, bytes, 5);
    expect_rejected("truncated in the length", &m, path, CG_ERR_FORMAT, "fewer than the 8");
    write_bytes(path, bytes, 20);
    expect_rejected("truncated in the header", &m, path, CG_ERR_FORMAT, "larger than");
    write_bytes(path, bytes, (size_t)size - 4);
    expect_rejected("truncated in the data", &m, path, CG_ERR_FORMAT, "out of range");

    // The header length.
    unsigned char huge[8 + 2] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'}; // 2^63: never allocated
    write_bytes(path, huge, sizeof huge);
    expect_rejected("header length 2^63", &m, path, CG_ERR_FORMAT, "larger than");
    unsigned char longer[8 + 2] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, longer, sizeof longer);
    expect_rejected("header length > file", &m, path, CG_ERR_FORMAT, "larger than");

    // The header's JSON.
    expect_header_rejected("invalid JSON", &m, "{\"fc.weight\": {\"dtype\": \"F32\",", 36,
                           CG_ERR_FORMAT, "not valid JSON");
    expect_header_rejected("text after the JSON", &m, "{" GOOD_WEIGHT "," GOOD_BIAS "} x", 36,
                           CG_ERR_FORMAT, "not valid JSON");
    expect_header_rejected("non-object header", &m, "[1, 2, 3]", 36, CG_ERR_FORMAT, "not a JSON object");
    expect_header_rejected("not UTF-8", &m, "{\"fc.w\xff\":1}", 36, CG_ERR_FORMAT, "not UTF-8");
    expect_header_rejected("entry not an object", &m, "{\"fc.weight\":7," GOOD_BIAS "}", 36,
                           CG_ERR_FORMAT, "not a JSON object");
    expect_header_rejected("missing data_offsets", &m,
                           "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,2]}," GOOD_BIAS "}", 36,
                           CG_ERR_FORMAT, "has no \"data_offsets\"");
    expect_header_rejected("missing dtype", &m,
                           "{\"fc.weight\":{\"shape\":[3,2],\"data_offsets\":[0,24]}," GOOD_BIAS "}", 36,
                           CG_ERR_FORMAT, "has no \"dtype\"");
    expect_header_rejected("shape not integers", &m,
                           "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,-2],\"data_offsets\":[0,24]},"
                           GOOD_BIAS "}", 36, CG_ERR_FORMAT, "shape[1] is not a non-negative integer");
    expect_header_rejected("offsets not a pair", &m,
                           "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0]},"
                           GOOD_BIAS "}", 36, CG_ERR_FORMAT, "two non-negative integers");
    expect_header_rejected("metadata not strings", &m,
                           "{\"__metadata__\":{\"epoch\":5}," GOOD_WEIGHT "," GOOD_BIAS "}", 36,
                           CG_ERR_FORMAT, "metadata 'epoch' is not a string");

    // The layout of the data section.
    expect_header_rejected("offsets out of range", &m,
                           "{" GOOD_WEIGHT ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],"
                           "\"data_offsets\":[36,48]}}", 36, CG_ERR_FORMAT, "out of range");
    expect_header_rejected("offsets reversed", &m,
                           "{" GOOD_WEIGHT ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[0],"
                           "\"data_offsets\":[24,0]}}", 36, CG_ERR_FORMAT, "end before they begin");
    expect_header_rejected("overlapping tensors", &m,
                           "{" GOOD_WEIGHT ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],"
                           "\"data_offsets\":[20,32]}}", 36, CG_ERR_FORMAT, "overlap");
    expect_header_rejected("a gap", &m,
                           "{" GOOD_WEIGHT ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],"
                           "\"data_offsets\":[28,40]}}", 40, CG_ERR_FORMAT, "gap");
    expect_header_rejected("bytes after the last tensor", &m, "{" GOOD_WEIGHT "," GOOD_BIAS "}", 40,
                           CG_ERR_FORMAT, "belong to no tensor");
    expect_header_rejected("shape/offset size mismatch", &m,
                           "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,20]},"
                           "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]}}", 32,
                           CG_ERR_FORMAT, "hold 20 bytes but shape [3, 2] of F32 needs 24");
    expect_header_rejected("duplicate names", &m, "{" GOOD_WEIGHT "," GOOD_WEIGHT "," GOOD_BIAS "}", 36,
                           CG_ERR_FORMAT, "'fc.weight' appears twice");

    // Dtypes.
    expect_header_rejected("unknown dtype", &m,
                           "{\"fc.weight\":{\"dtype\":\"F33\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                           GOOD_BIAS "}", 36, CG_ERR_FORMAT, "unknown dtype 'F33'");
    expect_header_rejected("wrong dtype (F16)", &m,
                           "{\"fc.weight\":{\"dtype\":\"F16\",\"shape\":[3,2],\"data_offsets\":[0,12]},"
                           "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]}}", 24,
                           CG_ERR_FORMAT, "'fc.weight' is F16, the parameter is F32");

    // Files that are good safetensors but do not fit the model.
    expect_header_rejected("missing parameter", &m, "{" GOOD_WEIGHT "}", 24, CG_ERR_FORMAT,
                           "parameter 'fc.bias' (3) is missing");
    expect_header_rejected("wrong shape", &m,
                           "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                           GOOD_BIAS "}", 36, CG_ERR_FORMAT, "'fc.weight' has shape [2, 3], the model's parameter is (3, 2)");
    const char *extra = "{" GOOD_WEIGHT "," GOOD_BIAS ",\"fc2.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                        "\"data_offsets\":[36,40]}}";
    expect_header_rejected("extra tensor", &m, extra, 40, CG_ERR_FORMAT,
                           "'fc2.weight' [1] is not a parameter of the model");
    small_model fresh = small_new();
    expect_ok("extra tensor allowed", cg_checkpoint_load_allow_extra(fresh.params, path));
    int64_t n;
    float *v = host_values(fresh.params, &n);
    for (int i = 0; i < 9; i++)
        if (v[i] != (float)i) fail("extra tensor allowed", "value %d is %g, expected %d", i, (double)v[i], i);
    free(v);
    small_free(fresh);

    // Not a file to read.
    expect_rejected("missing file", &m, in_dir("no_such.safetensors"), CG_ERR_IO, "cannot open");
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub.safetensors", dir);
    CG_CHECK(mkdir(sub, 0755) == 0, "mkdir %s", sub);
    expect_rejected("a directory", &m, sub, CG_ERR_IO, "not a regular file");
    rmdir(sub);
    free(bytes);
    small_free(m);
}

// ---- export for tests/reference/check_safetensors.py --------------------------------------------

// SimpleNN from seed 0, its outputs on a fixed batch X (4, 20) with X[i][j] = ((7i + 3j) mod 9 - 4) / 4
// (quarters, exact in float32 and in Python), saved with the outputs in the metadata.
static int export_simple_nn(const char *path) {
    simple_nn m = simple_nn_new(cg_cpu(), 0);
    float x_host[4 * 20];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 20; j++) x_host[i * 20 + j] = (float)((7 * i + 3 * j) % 9 - 4) / 4.0f;
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){4, 20});
    cg_tensor_copy_from_host(x, x_host, 4 * 20);
    cg_tape *tape = cg_tape_new(cg_cpu(), 1 << 16);
    tape->grad_enabled = false;
    cg_tensor *y = cg_module_forward(m.net, tape, x);
    float out[4];
    cg_tensor_copy_to_host(out, y, 4);
    char outputs[128];
    snprintf(outputs, sizeof outputs, "%.9g,%.9g,%.9g,%.9g", (double)out[0], (double)out[1],
             (double)out[2], (double)out[3]);
    const char *meta[] = {"format", "pt", "model", "SimpleNN", "cgrad.outputs", outputs};
    cg_status st = cg_checkpoint_save(m.params, path, meta, 3);
    if (st.code == CG_OK) printf("wrote %s; cgrad outputs %s\n", path, outputs);
    else fprintf(stderr, "%s\n", st.message);
    cg_tape_free(tape);
    cg_tensor_free(x);
    simple_nn_free(m);
    return st.code == CG_OK ? 0 : 1;
}

// Remove the test directory and what is left in it.
// Two blocks in one file (a model's parameters and its buffers, core/train/checkpoint.h's _blocks
// functions): a BatchNorm's tensors, with num_batches_tracked written as PyTorch's I64 scalar,
// read back from it and from an F32 one; a name in both blocks refused; a file lacking the buffers
// refused by load_blocks.
static void test_blocks(void) {
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_module *bn = cg_batch_norm2d_new(params, buffers, "bn", 3);
    cg_batch_norm2d_layer *b = (cg_batch_norm2d_layer *)bn;
    cg_tensor_copy_from_host(b->running_mean, (float[]){0.5f, -1.0f, 2.0f}, 3);
    cg_tensor_copy_from_host(b->num_batches_tracked, (float[]){1234.0f}, 1);
    cg_params *blocks[2] = {params, buffers};
    char path[sizeof dir + 256 + 1];
    snprintf(path, sizeof path, "%s", in_dir("blocks.safetensors")); // in_dir's buffer is reused below
    expect_ok("save two blocks", cg_checkpoint_save_blocks(blocks, 2, path, NULL, 0));
    long size = 0;
    unsigned char *bytes = read_file(path, &size);
    if (bytes == NULL || size < 8) {
        fail("two blocks", "cannot read %s back", path);
    } else {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
        char *header = cg_xcalloc(n + 1, 1);
        memcpy(header, bytes + 8, n);
        cJSON *root = cJSON_Parse(header);
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(root, "bn.num_batches_tracked");
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(count, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(count, "shape");
        const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(count, "data_offsets");
        if (!cJSON_IsString(dtype) || strcmp(dtype->valuestring, "I64") != 0 || cJSON_GetArraySize(shape) != 0)
            fail("num_batches_tracked", "not an I64 scalar in the header: %s", header);
        else {
            int64_t v = 0;
            memcpy(&v, bytes + 8 + n + (size_t)cJSON_GetArrayItem(offsets, 0)->valuedouble, 8);
            if (v != 1234) fail("num_batches_tracked", "the file holds %lld, expected 1234", (long long)v);
        }
        if (cJSON_GetArraySize(root) != 5) fail("two blocks", "%d entries in the header, expected 5", cJSON_GetArraySize(root));
        cJSON_Delete(root);
        free(header);
    }
    free(bytes);

    cg_params *params2 = cg_params_new(cg_cpu()), *buffers2 = cg_params_new(cg_cpu());
    cg_module *bn2 = cg_batch_norm2d_new(params2, buffers2, "bn", 3);
    cg_params *blocks2[2] = {params2, buffers2};
    expect_ok("load two blocks", cg_checkpoint_load_blocks(blocks2, 2, path));
    if (!same_params(buffers, buffers2) || !same_params(params, params2))
        fail("two blocks", "loaded values differ from the saved ones");
    // The count as an F32 scalar (a file of another writer) loads too.
    write_safetensors(in_dir("f32count.safetensors"), "{\"bn.num_batches_tracked\":{\"dtype\":\"F32\",\"shape\":[],"
                      "\"data_offsets\":[0,4]}}", 4);
    cg_params *counts = cg_params_new(cg_cpu());
    cg_tensor *c = cg_params_add(counts, "bn.num_batches_tracked", 0, NULL);
    expect_ok("an F32 num_batches_tracked", cg_checkpoint_load(counts, in_dir("f32count.safetensors")));
    float got = -1;
    cg_tensor_copy_to_host(&got, c, 1);
    if (got != 0.0f) fail("an F32 num_batches_tracked", "read %g, expected 0", (double)got);
    // Parameters alone against the two-block file: its buffers are not parameters.
    cg_status s = cg_checkpoint_load(params2, path);
    if (s.code != CG_ERR_FORMAT || strstr(s.message, "is not a parameter") == NULL)
        fail("parameters alone", "expected a refusal naming a buffer, got %d: %s", s.code, s.message);
    // A name in both blocks cannot be saved.
    cg_params *twice = cg_params_new(cg_cpu());
    cg_params_add(twice, "bn.weight", 1, (int64_t[]){3});
    cg_params *dup[2] = {params, twice};
    s = cg_checkpoint_save_blocks(dup, 2, in_dir("dup.safetensors"), NULL, 0);
    if (s.code != CG_ERR_ARG || strstr(s.message, "bn.weight") == NULL)
        fail("a name in two blocks", "expected CG_ERR_ARG naming bn.weight, got %d: %s", s.code, s.message);
    cg_params_free(twice);
    cg_params_free(counts);
    cg_module_free(bn2);
    cg_params_free(params2);
    cg_params_free(buffers2);
    cg_module_free(bn);
    cg_params_free(params);
    cg_params_free(buffers);
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink(in_dir(e->d_name));
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--export") == 0) return export_simple_nn(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--export PATH]\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/cgrad_checkpoint_XXXXXX");
    CG_CHECK(mkdtemp(dir) != NULL, "cannot make a temporary directory");
    test_round_trip();
    test_gpu_round_trip();
    test_file_format();
    test_atomic_save();
    test_malformed();
    test_blocks();
    remove_dir();
    return check_summary("test_checkpoint");
}

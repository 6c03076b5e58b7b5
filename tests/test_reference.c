// test_reference.c: checks cgrad's SimpleNN against PyTorch: the outputs, BCE loss and the four
// parameter gradients of one batch, then five steps each of SGD, SGD with Nesterov momentum and
// weight decay, and Adam (per-step losses, final weights), all read from tests/reference/simple_nn.bin.
// It does not make the fixture: tests/reference/make_simple_nn_fixture.py does (see its README).
//
// Fixture format (little-endian; the script's docstring is the reference):
//   8 bytes magic "CGREF001", uint32 version (1), uint32 count of arrays, then per array:
//   uint32 name length L (1..255), L name bytes (ASCII, no zero), uint32 ndim (0..4),
//   ndim int64 dims (each >= 1), prod(dims) float32 values in row-major order.
// Every length is checked against the bytes left in the file before anything is allocated from it.
//
// A value passes when |got - expected| <= tol * max(1, |expected|). Exit 0 when all pass, 1 otherwise
// (a missing or corrupt fixture included). Runs on the CPU, and on cuda:0 too when a GPU is usable.
#include "../cgrad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_PATH "tests/reference/simple_nn.bin"
#define FIXTURE_MAGIC "CGREF001"
#define FIXTURE_VERSION 1u
#define FIXTURE_MAX_BYTES (64L << 20) // a fixture is a few KB; anything this big is not one
#define STEPS 5

static const char *const param_names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};

// ---------------------------------------------------------------------------------------------
// Reading the fixture

typedef struct {
    char name[256];
    int ndim;
    int64_t dims[4];
    int64_t numel;
    float *data; // numel floats, host memory
} ref_array;

typedef struct {
    int count;
    ref_array *arrays;
} ref_file;

// A cursor over the file's bytes; every take checks the bytes left first.
typedef struct {
    const unsigned char *bytes;
    size_t size, pos;
} reader;

static bool take(reader *r, size_t n, const unsigned char **out) {
    if (n > r->size - r->pos) return false;
    *out = r->bytes + r->pos;
    r->pos += n;
    return true;
}

static bool take_u32(reader *r, uint32_t *out) {
    const unsigned char *b;
    if (!take(r, 4, &b)) return false;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static bool take_i64(reader *r, int64_t *out) {
    uint32_t lo, hi;
    if (!take_u32(r, &lo) || !take_u32(r, &hi)) return false;
    *out = (int64_t)((uint64_t)hi << 32 | lo);
    return true;
}

static void ref_free(ref_file *f) {
    for (int i = 0; i < f->count; i++) free(f->arrays[i].data);
    free(f->arrays);
    f->arrays = NULL;
    f->count = 0;
}

// Parse a whole fixture held in memory. `path` only names the file in messages.
// Errors: CG_ERR_FORMAT naming the byte offset, what was expected and what was found.
static cg_status ref_parse(const unsigned char *bytes, size_t size, const char *path, ref_file *out) {
    *out = (ref_file){0};
    reader r = {bytes, size, 0};
    const unsigned char *magic;
    if (!take(&r, 8, &magic) || memcmp(magic, FIXTURE_MAGIC, 8) != 0)
        return cg_error(CG_ERR_FORMAT, "%s: not a cgrad reference fixture (expected magic \"%s\" at offset 0)", path,
                        FIXTURE_MAGIC);
    uint32_t version, count;
    if (!take_u32(&r, &version) || !take_u32(&r, &count))
        return cg_error(CG_ERR_FORMAT, "%s: truncated header (%zu bytes, expected at least 16)", path, size);
    if (version != FIXTURE_VERSION)
        return cg_error(CG_ERR_FORMAT, "%s: version %u at offset 8, this test reads version %u", path, version,
                        FIXTURE_VERSION);
    // The smallest array record is 4 + 1 + 4 bytes (one-letter name, a scalar) + 4 bytes of value.
    if (count == 0 || count > (size - r.pos) / 13)
        return cg_error(CG_ERR_FORMAT, "%s: %u arrays at offset 12 cannot fit in the %zu bytes that follow", path,
                        count, size - r.pos);
    out->arrays = cg_xcalloc(count, sizeof *out->arrays);
    cg_status err;
    for (uint32_t i = 0; i < count; i++) {
        ref_array *a = &out->arrays[i];
        size_t start = r.pos;
        uint32_t name_len = 0, ndim = 0;
        const unsigned char *name, *data;
        if (!take_u32(&r, &name_len) || name_len == 0 || name_len > 255 || !take(&r, name_len, &name)) {
            err = cg_error(CG_ERR_FORMAT, "%s: array %u at offset %zu: bad or truncated name (length %u, 1..255)",
                           path, i, start, name_len);
            goto fail;
        }
        memcpy(a->name, name, name_len);
        a->name[name_len] = '\0';
        out->count = (int)i + 1; // from here on ref_free releases this entry too
        if (!take_u32(&r, &ndim) || ndim > 4) {
            err = cg_error(CG_ERR_FORMAT, "%s: array '%s' at offset %zu: ndim %u (expected 0..4) or truncated", path,
                           a->name, start, ndim);
            goto fail;
        }
        a->ndim = (int)ndim;
        a->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            // Each dim must be >= 1 and the running product must still fit in the bytes left.
            if (!take_i64(&r, &a->dims[d]) || a->dims[d] < 1 ||
                a->dims[d] > (int64_t)((size - r.pos) / 4) / a->numel) {
                err = cg_error(CG_ERR_FORMAT,
                               "%s: array '%s' at offset %zu: dim %u is %lld, truncated or more values than the "
                               "%zu bytes left hold",
                               path, a->name, start, d, (long long)a->dims[d], size - r.pos);
                goto fail;
            }
            a->numel *= a->dims[d];
        }
        if (!take(&r, (size_t)a->numel * 4, &data)) {
            err = cg_error(CG_ERR_FORMAT, "%s: array '%s' at offset %zu: %lld float32 values need %lld bytes, %zu left",
                           path, a->name, start, (long long)a->numel, (long long)a->numel * 4, size - r.pos);
            goto fail;
        }
        a->data = cg_xmalloc((size_t)a->numel * sizeof(float));
        for (int64_t k = 0; k < a->numel; k++) {
            const unsigned char *b = data + 4 * k;
            uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&a->data[k], &bits, 4);
        }
    }
    if (r.pos != size) {
        err = cg_error(CG_ERR_FORMAT, "%s: %zu unexpected bytes after the last array (offset %zu)", path,
                       size - r.pos, r.pos);
        goto fail;
    }
    return cg_ok();

fail: // the message is built before the arrays it names are freed
    ref_free(out);
    return err;
}

// Read and parse the fixture at path. Errors: CG_ERR_IO (missing, unreadable), CG_ERR_FORMAT.
static cg_status ref_load(const char *path, ref_file *out) {
    *out = (ref_file){0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cg_error(CG_ERR_IO,
                        "%s: cannot open (run from the repository root; regenerate with "
                        "/usr/bin/python3 tests/reference/make_simple_nn_fixture.py)",
                        path);
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || size > FIXTURE_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return cg_error(CG_ERR_IO, "%s: size %ld unreadable or over the %ld bytes a fixture may have", path, size,
                        FIXTURE_MAX_BYTES);
    }
    unsigned char *bytes = cg_xmalloc((size_t)size + 1);
    size_t got = fread(bytes, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(bytes);
        return cg_error(CG_ERR_IO, "%s: read %zu of %ld bytes", path, got, size);
    }
    cg_status s = ref_parse(bytes, (size_t)size, path, out);
    free(bytes);
    return s;
}

// The array called name with numel values, or NULL after printing why.
static const ref_array *ref_find(const ref_file *f, const char *name, int64_t numel) {
    for (int i = 0; i < f->count; i++) {
        if (strcmp(f->arrays[i].name, name) != 0) continue;
        if (f->arrays[i].numel != numel) {
            fprintf(stderr, "FAIL fixture array '%s' has %lld values, expected %lld\n", name,
                    (long long)f->arrays[i].numel, (long long)numel);
            return NULL;
        }
        return &f->arrays[i];
    }
    fprintf(stderr, "FAIL fixture has no array '%s'\n", name);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Comparing

static int failures = 0;

// Compare n values; print the max error and every mismatch (up to 5), naming array and index.
// err = |got - expected| / max(1, |expected|). Returns the max error.
static double compare(const char *label, const float *got, const ref_array *expected, double tol) {
    double max_err = 0.0;
    int bad = 0;
    for (int64_t i = 0; i < expected->numel; i++) {
        double e = expected->data[i], g = got[i];
        double err = fabs(g - e) / fmax(1.0, fabs(e));
        if (!(err <= tol)) { // also catches NaN
            if (bad < 5)
                fprintf(stderr, "FAIL %s[%lld]: expected %.9g, got %.9g (error %.3g > tolerance %.1g)\n", label,
                        (long long)i, e, g, err, tol);
            bad++;
            err = isnan(err) ? INFINITY : err;
        }
        if (err > max_err) max_err = err;
    }
    if (bad > 0) {
        fprintf(stderr, "FAIL %s: %d of %lld values out of tolerance\n", label, bad, (long long)expected->numel);
        failures++;
    }
    printf("  %-28s max error %.3g  (%lld values)\n", label, max_err, (long long)expected->numel);
    return max_err;
}

// Compare a tensor (any device) with the fixture's array `name`.
static void compare_tensor(const char *label, const cg_tensor *t, const ref_file *f, const char *name, double tol) {
    const ref_array *a = ref_find(f, name, t->numel);
    if (a == NULL) {
        failures++;
        return;
    }
    float *host = cg_xmalloc((size_t)t->numel * sizeof(float));
    cg_tensor_copy_to_host(host, t, t->numel);
    compare(label, host, a, tol);
    free(host);
}

// ---------------------------------------------------------------------------------------------
// The model

typedef struct {
    cg_params *params;
    cg_module *model;
    cg_tensor *x, *y; // the batch, on the device
    cg_tape *tape;
} simple_nn;

// Build SimpleNN on dev with the fixture's initial weights and batch. False if the fixture lacks them.
static bool simple_nn_build(simple_nn *s, cg_device dev, const ref_file *f) {
    s->params = cg_params_new(dev);
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT); // overwritten below by PyTorch's initial weights
    s->model = cg_sequential_new();
    cg_sequential_add(s->model, cg_linear_new(s->params, "fc1", 20, 50, true, &rng));
    cg_sequential_add(s->model, cg_relu_new());
    cg_sequential_add(s->model, cg_linear_new(s->params, "fc2", 50, 1, true, &rng));
    cg_sequential_add(s->model, cg_sigmoid_new());
    s->x = cg_tensor_new(dev, CG_F32, 2, (int64_t[]){32, 20});
    s->y = cg_tensor_new(dev, CG_F32, 1, (int64_t[]){32});
    s->tape = cg_tape_new(dev, 1 << 20);
    const ref_array *x = ref_find(f, "X", s->x->numel), *y = ref_find(f, "y", s->y->numel);
    if (x == NULL || y == NULL) return false;
    cg_tensor_copy_from_host(s->x, x->data, x->numel);
    cg_tensor_copy_from_host(s->y, y->data, y->numel);
    return true;
}

// Overwrite every parameter with the fixture's initial value and zero the gradients.
static bool simple_nn_reset(simple_nn *s, const ref_file *f) {
    for (int i = 0; i < 4; i++) {
        cg_tensor *p = cg_params_find(s->params, param_names[i]);
        CG_CHECK(p != NULL, "SimpleNN has no parameter %s", param_names[i]);
        const ref_array *a = ref_find(f, param_names[i], p->numel);
        if (a == NULL) return false;
        if (a->ndim != p->ndim || memcmp(a->dims, p->shape, (size_t)a->ndim * sizeof(int64_t)) != 0) {
            char buf[64];
            fprintf(stderr, "FAIL fixture's %s is not shaped %s\n", a->name, cg_shape_str(p, buf, sizeof buf));
            return false;
        }
        cg_tensor_copy_from_host(p, a->data, a->numel);
    }
    cg_params_zero_grad(s->params);
    return true;
}

static void simple_nn_free(simple_nn *s) {
    cg_tape_free(s->tape);
    cg_tensor_free(s->x);
    cg_tensor_free(s->y);
    cg_module_free(s->model);
    cg_params_free(s->params);
}

// Forward, BCE and backward of the initial model against PyTorch's.
static void check_forward_backward(simple_nn *s, const ref_file *f, double tol) {
    printf(" forward and backward of one batch:\n");
    cg_tensor *probs = cg_module_forward(s->model, s->tape, s->x);
    cg_tensor *loss = cg_bce(s->tape, probs, s->y);
    cg_tape_backward(s->tape, loss);
    compare_tensor("outputs", probs, f, "outputs", tol);
    compare_tensor("loss", loss, f, "loss", tol);
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "grad.%s", param_names[i]);
        compare_tensor(name, cg_params_find(s->params, param_names[i])->grad, f, name, tol);
    }
    cg_tape_clear(s->tape);
}

// STEPS steps of `config` from the initial weights; per-step losses and final weights against
// the fixture's arrays "LABEL.losses" and "LABEL.fc1.weight" etc.
static void check_optimizer(simple_nn *s, const ref_file *f, const char *label, cg_optim_config config,
                            double tol) {
    printf(" %d steps of %s:\n", STEPS, label);
    if (!simple_nn_reset(s, f)) {
        failures++;
        return;
    }
    cg_optimizer *opt = cg_optimizer_new(s->params, config);
    float losses[STEPS];
    for (int step = 0; step < STEPS; step++) {
        cg_optimizer_zero_grad(opt);
        cg_tensor *probs = cg_module_forward(s->model, s->tape, s->x);
        cg_tensor *loss = cg_bce(s->tape, probs, s->y);
        cg_tape_backward(s->tape, loss);
        cg_optimizer_step(opt);
        losses[step] = cg_tensor_item(loss);
        cg_tape_clear(s->tape);
    }
    cg_optimizer_free(opt);

    char name[64];
    snprintf(name, sizeof name, "%s.losses", label);
    const ref_array *expected = ref_find(f, name, STEPS);
    if (expected == NULL)
        failures++;
    else
        compare(name, losses, expected, tol);
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", label, param_names[i]);
        compare_tensor(name, cg_params_find(s->params, param_names[i]), f, name, tol);
    }
}

static void check_device(cg_device dev, const ref_file *f, double tol) {
    char buf[16];
    printf("SimpleNN on %s against PyTorch (tolerance %.0e relative):\n", cg_device_str(dev, buf, sizeof buf), tol);
    simple_nn s;
    if (!simple_nn_build(&s, dev, f) || !simple_nn_reset(&s, f)) {
        failures++;
        simple_nn_free(&s);
        return;
    }
    check_forward_backward(&s, f, tol);

    check_optimizer(&s, f, "sgd", cg_sgd_config(0.01f), tol);

    cg_optim_config nesterov = cg_sgd_config(0.01f);
    nesterov.momentum = 0.9f;
    nesterov.nesterov = true;
    nesterov.weight_decay = 1e-3f;
    check_optimizer(&s, f, "sgd_nesterov", nesterov, tol);

    check_optimizer(&s, f, "adam", cg_adam_config(1e-3f), tol);
    simple_nn_free(&s);
}

// ---------------------------------------------------------------------------------------------
// The reader must refuse broken fixtures with a message, never crash or over-allocate.

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void expect_refused(const unsigned char *bytes, size_t size, const char *what) {
    ref_file f;
    cg_status s = ref_parse(bytes, size, "corrupt.bin", &f);
    if (s.code == CG_OK) {
        fprintf(stderr, "FAIL a fixture with %s was accepted\n", what);
        failures++;
        ref_free(&f);
    }
}

static void check_corrupt_fixtures(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return; // already reported by ref_load
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *good = cg_xmalloc((size_t)size + 8);
    if (fread(good, 1, (size_t)size, file) != (size_t)size) {
        fclose(file);
        free(good);
        fprintf(stderr, "FAIL cannot reread %s\n", path);
        failures++;
        return;
    }
    fclose(file);
    int before = failures;
    unsigned char *bad = cg_xmalloc((size_t)size + 8);

    for (long n = 0; n < size; n++) expect_refused(good, (size_t)n, "a truncated file"); // every prefix
    memcpy(bad, good, (size_t)size);
    bad[0] = 'X';
    expect_refused(bad, (size_t)size, "a wrong magic");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 8, 2);
    expect_refused(bad, (size_t)size, "version 2");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 12, 0xffffffffu);
    expect_refused(bad, (size_t)size, "a huge array count");
    // The first array is "X" (name length 1): its ndim sits at 16 + 4 + 1, its first dim at 25.
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 21, 5);
    expect_refused(bad, (size_t)size, "ndim 5");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 25, 0x7fffffffu);
    put_u32(bad + 29, 0x7fffffffu);
    expect_refused(bad, (size_t)size, "a huge dimension");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 25, 0);
    expect_refused(bad, (size_t)size, "a zero dimension");
    memcpy(bad, good, (size_t)size);
    put_u32(bad + 16, 100000);
    expect_refused(bad, (size_t)size, "a huge name length");
    memcpy(bad, good, (size_t)size);
    memset(bad + size, 0, 8);
    expect_refused(bad, (size_t)size + 8, "trailing bytes");

    printf("reader: %ld truncations and 8 corruptions of %s refused%s\n", size, path,
           failures == before ? "" : " (NOT ALL)");
    free(bad);
    free(good);
}

int main(void) {
    ref_file f;
    cg_status s = ref_load(FIXTURE_PATH, &f);
    if (s.code != CG_OK) {
        fprintf(stderr, "test_reference: %s\n", s.message);
        return 1;
    }
    printf("fixture %s: %d arrays\n", FIXTURE_PATH, f.count);
    check_corrupt_fixtures(FIXTURE_PATH);

    const double tol = 1e-5;
    check_device(cg_cpu(), &f, tol);
    if (cg_cuda_device_count() > 0) {
        cg_device gpu;
        if (cg_device_parse("cuda:0", &gpu).code == CG_OK) check_device(gpu, &f, tol);
    }
    ref_free(&f);

    if (failures > 0) {
        fprintf(stderr, "test_reference: %d check(s) FAILED\n", failures);
        return 1;
    }
    printf("test_reference: all checks passed\n");
    return 0;
}

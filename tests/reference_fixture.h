// reference_fixture.h: reads the PyTorch reference fixtures of tests/reference/ (simple_nn.bin,
// cnn.bin, resblock.bin), sets a model's parameters to their initial weights, and compares cgrad's
// values with theirs, after a model's optimizer steps too. Header-only (static functions), shared by
// tests/test_reference.c, test_reference_cnn.c and test_reference_resblock.c; it makes no fixture
// and builds no model.
//
// Fixture format (little-endian; make_simple_nn_fixture.py's docstring is the reference):
//   8 bytes magic "CGREF001", uint32 version (1), uint32 count of arrays, then per array:
//   uint32 name length L (1..255), L name bytes (ASCII, no zero), uint32 ndim (0..4),
//   ndim int64 dims (each >= 1), prod(dims) float32 values in row-major order.
// Every length is checked against the bytes left in the file before anything is allocated from it.
//
// A value passes when |got - expected| <= tol * max(1, |expected|). Each failed check adds one to
// check.h's `failures`, which the including test reads to choose its exit status.
#ifndef CG_TESTS_REFERENCE_FIXTURE_H
#define CG_TESTS_REFERENCE_FIXTURE_H

#include "cgrad.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_MAGIC "CGREF001"
#define FIXTURE_VERSION 1u
#define FIXTURE_MAX_BYTES (64L << 20) // fixtures are under 1 MB; anything this big is not one

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
                        "%s: cannot open (run from the repository root; tests/reference/README.md says how "
                        "to regenerate it)",
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
// Loading into a cgrad model

// True when the fixture's array a has t's shape; otherwise false after printing why.
static bool ref_same_shape(const ref_array *a, const cg_tensor *t) {
    if (a->ndim == t->ndim && memcmp(a->dims, t->shape, (size_t)a->ndim * sizeof(int64_t)) == 0) return true;
    char buf[64];
    fprintf(stderr, "FAIL fixture's %s is not shaped %s\n", a->name, cg_shape_str(t, buf, sizeof buf));
    return false;
}

// Overwrite the parameters names[0..n) of params with the fixture's arrays of the same names (the
// model's initial weights) and zero the gradients. False, after printing why, when the fixture
// lacks one or shapes it otherwise. A parameter the model lacks is a bug of the test: CG_CHECK
// stops there, naming `model`.
__attribute__((unused)) static bool ref_set_params(cg_params *params, const char *model, const char *const *names, int n,
                           const ref_file *f) {
    for (int i = 0; i < n; i++) {
        cg_tensor *p = cg_params_find(params, names[i]);
        CG_CHECK(p != NULL, "%s has no parameter %s", model, names[i]);
        const ref_array *a = ref_find(f, names[i], p->numel);
        if (a == NULL || !ref_same_shape(a, p)) return false;
        cg_tensor_copy_from_host(p, a->data, a->numel);
    }
    cg_params_zero_grad(params);
    return true;
}

// ---------------------------------------------------------------------------------------------
// Comparing

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
        fail(label, "%d of %lld values out of tolerance", bad, (long long)expected->numel);
    }
    printf("  %-28s max error %.3g  (%lld values)\n", label, max_err, (long long)expected->numel);
    return max_err;
}

// Compare a tensor (any device) with the fixture's array `name`. Returns the max error (0 when the
// array is missing, which counts as a failure).
static double compare_tensor(const char *label, const cg_tensor *t, const ref_file *f, const char *name,
                             double tol) {
    const ref_array *a = ref_find(f, name, t->numel);
    if (a == NULL) {
        failures++;
        return 0.0;
    }
    float *host = cg_xmalloc((size_t)t->numel * sizeof(float));
    cg_tensor_copy_to_host(host, t, t->numel);
    double max_err = compare(label, host, a, tol);
    free(host);
    return max_err;
}

// ---------------------------------------------------------------------------------------------
// Training steps against the fixture

// `steps` steps of an optimizer with `config` on one fixed batch x (zero_grad, forward, the loss
// against target, backward, step), the loss of each step into losses[steps]; then the losses
// against the fixture's array "LABEL.losses" (a missing array is a failure). The tape is cleared
// after each step. Returns the max error of the losses.
__attribute__((unused)) static double ref_train_steps(const char *label, const ref_file *f, cg_module *model, cg_params *params, cg_tape *tape,
                              cg_tensor *x, cg_tensor *(*loss_fn)(cg_tape *, cg_tensor *, cg_tensor *),
                              cg_tensor *target, cg_optim_config config, int steps, double tol) {
    cg_optimizer *opt = cg_optimizer_new(params, config);
    float *losses = cg_xmalloc((size_t)steps * sizeof(float));
    for (int step = 0; step < steps; step++) {
        cg_optimizer_zero_grad(opt);
        cg_tensor *out = cg_module_forward(model, tape, x);
        cg_tensor *loss = loss_fn(tape, out, target);
        cg_tape_backward(tape, loss);
        cg_optimizer_step(opt);
        losses[step] = cg_tensor_item(loss);
        cg_tape_clear(tape);
    }
    cg_optimizer_free(opt);
    char name[64];
    snprintf(name, sizeof name, "%s.losses", label);
    const ref_array *expected = ref_find(f, name, steps);
    double max_err = 0.0;
    if (expected == NULL)
        failures++;
    else
        max_err = compare(name, losses, expected, tol);
    free(losses);
    return max_err;
}

// The main of a fixture test: loads path, runs check on the CPU and, where there is one, on the GPU,
// and returns the test's exit status (name labels its lines).
__attribute__((unused)) static int ref_run_on_devices(const char *path, const char *name,
                                                      void (*check)(cg_device, const ref_file *)) {
    ref_file f;
    cg_status s = ref_load(path, &f);
    if (s.code != CG_OK) {
        fprintf(stderr, "%s: %s\n", name, s.message);
        return 1;
    }
    printf("fixture %s: %d arrays\n", path, f.count);
    check(cg_cpu(), &f);
    cg_device gpu;
    cg_status g = cg_device_parse("cuda", &gpu);
    if (g.code == CG_OK)
        check(gpu, &f);
    else
        printf("GPU checks not run: %s\n", g.message);
    ref_free(&f);
    return check_summary(name);
}

#endif

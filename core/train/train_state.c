// train_state.c: a registry of what a training run's state is made of, written to and read from
// one safetensors file through core/train/checkpoint.c (train_state.h has the layout). The device
// tensors (optimizer moments, the loss scaler) are saved and loaded through tensor headers over
// their memory, so nothing is staged on the host beyond what the checkpoint code does itself.
// It does not know about epochs, loaders or flags: the program gives them names.
#define _POSIX_C_SOURCE 200809L
#include "core/train/train_state.h"
#include "core/kernels.h"
#include "core/train/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION "1"
#define MAX_BLOCKS 8

typedef struct {
    char *name;
    void *value; // cg_rng *, int64_t *, double *, or the setting's text (owned)
} entry;

typedef struct {
    entry *items;
    int count, capacity;
} entry_list;

struct cg_train_state {
    cg_params *blocks[MAX_BLOCKS + 1]; // the caller's blocks, then `own`
    int n_blocks;
    cg_params own; // a view block of the headers made here: only count and tensors are set
    int own_capacity;
    entry_list rngs, ints, floats, settings;
};

cg_train_state *cg_train_state_new(void) { return cg_xcalloc(1, sizeof(cg_train_state)); }

static void free_list(entry_list *l, bool owns_values) {
    for (int i = 0; i < l->count; i++) {
        free(l->items[i].name);
        if (owns_values) free(l->items[i].value);
    }
    free(l->items);
}

void cg_train_state_free(cg_train_state *s) {
    if (s == NULL) return;
    for (int i = 0; i < s->own.count; i++) {
        free((char *)s->own.tensors[i]->name);
        free(s->own.tensors[i]);
    }
    free(s->own.tensors);
    free_list(&s->rngs, false);
    free_list(&s->ints, false);
    free_list(&s->floats, false);
    free_list(&s->settings, true);
    free(s);
}

static char *copy_text(const char *text) {
    char *c = strdup(text);
    CG_CHECK(c != NULL, "out of host memory");
    return c;
}

static entry *find(entry_list *l, const char *name) {
    for (int i = 0; i < l->count; i++)
        if (strcmp(l->items[i].name, name) == 0) return &l->items[i];
    return NULL;
}

static void push(entry_list *l, const char *name, void *value) {
    CG_CHECK(find(l, name) == NULL, "training state: '%s' registered twice", name);
    if (l->count == l->capacity) {
        l->capacity = l->capacity ? 2 * l->capacity : 8;
        l->items = realloc(l->items, (size_t)l->capacity * sizeof *l->items);
        CG_CHECK(l->items != NULL, "out of host memory");
    }
    l->items[l->count++] = (entry){copy_text(name), value};
}

void cg_train_state_add_block(cg_train_state *s, cg_params *block) {
    CG_CHECK(block != NULL && s->n_blocks < MAX_BLOCKS, "training state: at most %d blocks", MAX_BLOCKS);
    s->blocks[s->n_blocks++] = block;
}

// A header named `name` over `data` (F32, shape, on device d), saved with the blocks.
static void add_header(cg_train_state *s, const char *name, cg_device d, void *data, int ndim, const int64_t *shape) {
    for (int i = 0; i < s->own.count; i++)
        CG_CHECK(strcmp(s->own.tensors[i]->name, name) != 0, "training state: tensor '%s' registered twice", name);
    if (s->own.count == s->own_capacity) {
        s->own_capacity = s->own_capacity ? 2 * s->own_capacity : 32;
        s->own.tensors = realloc(s->own.tensors, (size_t)s->own_capacity * sizeof *s->own.tensors);
        CG_CHECK(s->own.tensors != NULL, "out of host memory");
    }
    cg_tensor *t = cg_xcalloc(1, sizeof *t);
    cg_tensor_set_shape(t, ndim, shape);
    t->dtype = CG_F32;
    t->device = d;
    t->data = data;
    t->name = copy_text(name);
    s->own.device = d;
    s->own.tensors[s->own.count++] = t;
}

void cg_train_state_add_optimizer(cg_train_state *s, cg_optimizer *o) {
    const cg_params *p = o->params;
    // PyTorch's names for the state of torch.optim.Adam / AdamW (exp_avg, exp_avg_sq) and SGD
    // (momentum_buffer).
    const char *first = o->config.kind == CG_OPTIM_SGD ? "momentum_buffer" : "exp_avg";
    for (int i = 0; i < p->count; i++) {
        const cg_tensor *w = p->tensors[i];
        char name[512];
        if (o->state1) {
            snprintf(name, sizeof name, "optimizer.%s.%s", first, w->name);
            add_header(s, name, p->device, o->state1 + p->offsets[i], w->ndim, w->shape);
        }
        if (o->state2) {
            snprintf(name, sizeof name, "optimizer.exp_avg_sq.%s", w->name);
            add_header(s, name, p->device, o->state2 + p->offsets[i], w->ndim, w->shape);
        }
    }
    add_header(s, "optimizer.step", p->device, o->counter, 0, NULL);
}

void cg_train_state_add_amp(cg_train_state *s, cg_amp *a) {
    // The slots of a->state that carry over from step to step (core/kernels.h); found_inf is
    // each step's own.
    static const struct {
        const char *name;
        int slot;
    } slots[] = {{"grad_scaler.scale", CG_AMP_SCALE},
                 {"grad_scaler.growth_tracker", CG_AMP_GROWTH},
                 {"grad_scaler.skipped_steps", CG_AMP_SKIPPED},
                 {"grad_scaler.steps", CG_AMP_STEPS}};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        add_header(s, slots[i].name, a->params->device, a->state + slots[i].slot, 0, NULL);
}

void cg_train_state_add_tensor(cg_train_state *s, const char *name, cg_tensor *t) {
    CG_CHECK(t->dtype == CG_F32, "training state: tensor '%s' is not F32", name);
    add_header(s, name, t->device, t->data, t->ndim, t->shape);
}

void cg_train_state_add_rng(cg_train_state *s, const char *name, cg_rng *r) { push(&s->rngs, name, r); }
void cg_train_state_add_int(cg_train_state *s, const char *name, int64_t *v) { push(&s->ints, name, v); }
void cg_train_state_add_float(cg_train_state *s, const char *name, double *v) { push(&s->floats, name, v); }

void cg_train_state_set(cg_train_state *s, const char *name, const char *value) {
    entry *e = find(&s->settings, name);
    if (e) {
        free(e->value);
        e->value = copy_text(value);
    } else {
        push(&s->settings, name, copy_text(value));
    }
}

// ---- saving ------------------------------------------------------------------------------------

static void add_pair(char **meta, int *n, const char *prefix, const char *name, const char *value) {
    size_t size = strlen(prefix) + strlen(name) + 1;
    meta[2 * *n] = cg_xmalloc(size);
    snprintf(meta[2 * *n], size, "%s%s", prefix, name);
    meta[2 * *n + 1] = copy_text(value);
    (*n)++;
}

cg_status cg_train_state_save(const cg_train_state *s, const char *path, const char *const *metadata,
                              int n_metadata) {
    CG_CHECK(s->n_blocks + (s->own.count > 0) >= 1, "training state: nothing registered");
    int capacity = n_metadata + 1 + s->settings.count + s->rngs.count + s->ints.count + s->floats.count;
    char **meta = cg_xcalloc((size_t)(2 * capacity + 1), sizeof *meta);
    int n = 0;
    for (int i = 0; i < n_metadata; i++) add_pair(meta, &n, "", metadata[2 * i], metadata[2 * i + 1]);
    add_pair(meta, &n, "", "cgrad.state", STATE_VERSION);
    char text[96];
    for (int i = 0; i < s->settings.count; i++)
        add_pair(meta, &n, "setting.", s->settings.items[i].name, s->settings.items[i].value);
    for (int i = 0; i < s->rngs.count; i++) {
        const cg_rng *r = s->rngs.items[i].value;
        snprintf(text, sizeof text, "%" PRIu64 " %" PRIu32 " %" PRIu64, r->seed, r->stream, r->offset);
        add_pair(meta, &n, "rng.", s->rngs.items[i].name, text);
    }
    for (int i = 0; i < s->ints.count; i++) {
        snprintf(text, sizeof text, "%" PRId64, *(const int64_t *)s->ints.items[i].value);
        add_pair(meta, &n, "int.", s->ints.items[i].name, text);
    }
    for (int i = 0; i < s->floats.count; i++) {
        snprintf(text, sizeof text, "%.17g", *(const double *)s->floats.items[i].value);
        add_pair(meta, &n, "float.", s->floats.items[i].name, text);
    }
    cg_params *blocks[MAX_BLOCKS + 1];
    int n_blocks = 0;
    for (int i = 0; i < s->n_blocks; i++) blocks[n_blocks++] = s->blocks[i];
    if (s->own.count > 0) blocks[n_blocks++] = (cg_params *)&s->own;
    cg_status st = cg_checkpoint_save_blocks(blocks, n_blocks, path, (const char *const *)meta, n);
    for (int i = 0; i < 2 * n; i++) free(meta[i]);
    free(meta);
    return st;
}

// ---- reading -----------------------------------------------------------------------------------

typedef struct {
    char **pairs;
    int count;
} metadata;

static const char *lookup(const metadata *m, const char *prefix, const char *name) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < m->count; i++) {
        const char *key = m->pairs[2 * i];
        if (strncmp(key, prefix, lp) == 0 && strcmp(key + lp, name) == 0) return m->pairs[2 * i + 1];
    }
    return NULL;
}

static bool parse_i64(const char *text, int64_t *out) {
    if (text == NULL || text[0] == '\0') return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_u64(const char *text, char **end, uint64_t *out) {
    if (text[0] < '0' || text[0] > '9') return false; // strtoull would take "-1"
    errno = 0;
    unsigned long long v = strtoull(text, end, 10);
    if (errno != 0 || *end == text) return false;
    *out = (uint64_t)v;
    return true;
}

// "SEED STREAM OFFSET" -> r's three fields.
static bool parse_rng(const char *text, cg_rng *r) {
    if (text == NULL) return false;
    char *end = NULL;
    uint64_t stream;
    if (!parse_u64(text, &end, &r->seed) || *end != ' ') return false;
    if (!parse_u64(end + 1, &end, &stream) || *end != ' ' || stream > UINT32_MAX) return false;
    if (!parse_u64(end + 1, &end, &r->offset) || *end != '\0') return false;
    r->stream = (uint32_t)stream;
    return true;
}

static bool parse_double(const char *text, double *out) {
    if (text == NULL || text[0] == '\0') return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (*end != '\0') return false;
    *out = v;
    return true;
}

static cg_status read_metadata(const char *path, metadata *m) {
    cg_status st = cg_checkpoint_read_all_metadata(path, &m->pairs, &m->count);
    if (st.code != CG_OK) return st;
    const char *version = lookup(m, "", "cgrad.state");
    if (version == NULL)
        st = cg_error(CG_ERR_FORMAT, "training state '%s': the file holds no training state (no \"cgrad.state\" in "
                      "its metadata): weights alone?", path);
    else if (strcmp(version, STATE_VERSION) != 0)
        st = cg_error(CG_ERR_FORMAT, "training state '%s': layout version '%.32s', this program reads version %s",
                      path, version, STATE_VERSION);
    if (st.code != CG_OK) cg_checkpoint_free_metadata(m->pairs, m->count);
    return st;
}

// Every check of cg_train_state_check on metadata already read.
static cg_status check(const cg_train_state *s, const char *path, const metadata *m) {
    for (int i = 0; i < s->settings.count; i++) {
        const char *name = s->settings.items[i].name, *mine = s->settings.items[i].value;
        const char *saved = lookup(m, "setting.", name);
        if (saved == NULL)
            return cg_error(CG_ERR_FORMAT, "training state '%s': it does not record %s (saved by another version of "
                            "the program?)", path, name);
        if (strcmp(saved, mine) != 0)
            return cg_error(CG_ERR_ARG, "training state '%s': saved with %s %.64s, this run has %s %.64s (a resumed "
                            "run keeps the settings it was saved with)", path, name, saved, name, mine);
    }
    for (int i = 0; i < m->count; i++) {
        const char *key = m->pairs[2 * i];
        if (strncmp(key, "setting.", 8) == 0 && find((entry_list *)&s->settings, key + 8) == NULL)
            return cg_error(CG_ERR_ARG, "training state '%s': saved with %.64s %.64s, which this run does not have "
                            "(saved by another version of the program?)", path, key + 8, m->pairs[2 * i + 1]);
    }
    for (int i = 0; i < s->rngs.count; i++) {
        const cg_rng *mine = s->rngs.items[i].value;
        cg_rng saved;
        if (!parse_rng(lookup(m, "rng.", s->rngs.items[i].name), &saved))
            return cg_error(CG_ERR_FORMAT, "training state '%s': generator '%s' is missing or not \"SEED STREAM "
                            "OFFSET\"", path, s->rngs.items[i].name);
        if (saved.seed != mine->seed || saved.stream != mine->stream)
            return cg_error(CG_ERR_ARG, "training state '%s': generator '%s' was keyed by seed %" PRIu64 ", stream %"
                            PRIu32 "; this run's by seed %" PRIu64 ", stream %" PRIu32, path, s->rngs.items[i].name,
                            saved.seed, saved.stream, mine->seed, mine->stream);
    }
    for (int i = 0; i < s->ints.count; i++) {
        int64_t v;
        if (!parse_i64(lookup(m, "int.", s->ints.items[i].name), &v))
            return cg_error(CG_ERR_FORMAT, "training state '%s': whole number '%s' is missing or malformed", path,
                            s->ints.items[i].name);
    }
    for (int i = 0; i < s->floats.count; i++) {
        double v;
        if (!parse_double(lookup(m, "float.", s->floats.items[i].name), &v))
            return cg_error(CG_ERR_FORMAT, "training state '%s': number '%s' is missing or malformed", path,
                            s->floats.items[i].name);
    }
    return cg_ok();
}

cg_status cg_train_state_probe(const char *path, bool *is_state) {
    metadata m;
    *is_state = false;
    cg_status st = cg_checkpoint_read_all_metadata(path, &m.pairs, &m.count);
    if (st.code != CG_OK) return st;
    *is_state = lookup(&m, "", "cgrad.state") != NULL;
    cg_checkpoint_free_metadata(m.pairs, m.count);
    return cg_ok();
}

cg_status cg_train_state_check(const cg_train_state *s, const char *path) {
    metadata m;
    cg_status st = read_metadata(path, &m);
    if (st.code != CG_OK) return st;
    st = check(s, path, &m);
    cg_checkpoint_free_metadata(m.pairs, m.count);
    return st;
}

cg_status cg_train_state_peek_int(const char *path, const char *name, int64_t *value) {
    metadata m;
    cg_status st = read_metadata(path, &m);
    if (st.code != CG_OK) return st;
    if (!parse_i64(lookup(&m, "int.", name), value))
        st = cg_error(CG_ERR_FORMAT, "training state '%s': whole number '%s' is missing or malformed", path, name);
    cg_checkpoint_free_metadata(m.pairs, m.count);
    return st;
}

cg_status cg_train_state_load(cg_train_state *s, const char *path) {
    metadata m;
    cg_status st = read_metadata(path, &m);
    if (st.code != CG_OK) return st;
    st = check(s, path, &m);
    if (st.code == CG_OK) {
        cg_params *blocks[MAX_BLOCKS + 1];
        int n_blocks = 0;
        for (int i = 0; i < s->n_blocks; i++) blocks[n_blocks++] = s->blocks[i];
        if (s->own.count > 0) blocks[n_blocks++] = &s->own;
        st = cg_checkpoint_load_blocks(blocks, n_blocks, path); // all or nothing
    }
    if (st.code == CG_OK) { // everything is checked: the numbers cannot fail now
        for (int i = 0; i < s->rngs.count; i++) {
            cg_rng saved;
            parse_rng(lookup(&m, "rng.", s->rngs.items[i].name), &saved);
            ((cg_rng *)s->rngs.items[i].value)->offset = saved.offset;
        }
        for (int i = 0; i < s->ints.count; i++)
            parse_i64(lookup(&m, "int.", s->ints.items[i].name), s->ints.items[i].value);
        for (int i = 0; i < s->floats.count; i++)
            parse_double(lookup(&m, "float.", s->floats.items[i].name), s->floats.items[i].value);
    }
    cg_checkpoint_free_metadata(m.pairs, m.count);
    return st;
}

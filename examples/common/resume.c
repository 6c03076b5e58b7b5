// resume.c: --save, --save-every, --resume and --load for cnn (resume.h): which pieces of a run go
// into its training state and under which names, the two files of a save and their order, where
// an epoch stopped and how it starts again. The file format is core/train/train_state.c's.
#define _POSIX_C_SOURCE 200809L
#include "examples/common/resume.h"
#include "core/safe_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LOG_BYTES (16 << 20) // a log larger than this is not kept on resume (a row is < 2 KB)

struct cg_resume {
    const char *program;
    cg_params *params, *buffers;
    char model[64], dataset[64], input[64], classes[16];
    cg_train_state *state;
    cg_loader *loader;
    cg_amp *amp;
    cg_metrics *metrics;
    char state_path[4200]; // the state --resume reads
    bool resuming;         // cg_resume_check passed
    cg_resume_point at;    // where the resumed run stopped
    // What the state file holds besides tensors (registered by pointer).
    int64_t epochs_done, step, position;
    double seconds;
    cg_rng shuffle, augment;             // the loader's generators at the start of epoch epochs_done + 1
    cg_rng shuffle_start, augment_start; // the same, noted at the start of the epoch under way
    long epoch;                          // the epoch under way
    long trained;                        // whole epochs trained, over every resume
    long saved_epochs;                   // the last save (epochs, step), so as not to write it twice
    int64_t saved_step;
    char *log_rows; // the rows of the resumed run's log to write again (NULL: none)
};

cg_resume *cg_resume_new(const char *program, cg_params *params, cg_params *buffers, const char *model,
                         const char *dataset, int classes, int64_t C, int64_t H, int64_t W) {
    cg_resume *r = cg_xcalloc(1, sizeof *r);
    r->program = program;
    r->params = params;
    r->buffers = buffers;
    snprintf(r->model, sizeof r->model, "%s", model);
    snprintf(r->dataset, sizeof r->dataset, "%s", dataset);
    snprintf(r->classes, sizeof r->classes, "%d", classes);
    snprintf(r->input, sizeof r->input, "%lldx%lldx%lld", (long long)C, (long long)H, (long long)W);
    r->saved_epochs = -1;
    r->state = cg_train_state_new();
    cg_train_state_add_block(r->state, params);
    if (buffers) cg_train_state_add_block(r->state, buffers);
    cg_train_state_set(r->state, "--model", r->model);
    cg_train_state_set(r->state, "--dataset", r->dataset);
    cg_train_state_set(r->state, "classes", r->classes);
    cg_train_state_set(r->state, "image shape", r->input);
    cg_train_state_add_int(r->state, "epoch", &r->epochs_done);
    cg_train_state_add_int(r->state, "step", &r->step);
    cg_train_state_add_int(r->state, "loader.position", &r->position);
    cg_train_state_add_float(r->state, "seconds", &r->seconds);
    return r;
}

void cg_resume_free(cg_resume *r) {
    if (r == NULL) return;
    cg_train_state_free(r->state);
    free(r->log_rows);
    free(r);
}

cg_train_state *cg_resume_state(cg_resume *r) { return r->state; }

void cg_resume_setting(cg_resume *r, const char *flag, const char *fmt, ...) {
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    cg_train_state_set(r->state, flag, value);
}

cg_status cg_resume_check_flags(const char *load, const char *resume, const char *save, long save_every,
                                const char *log, bool eval) {
    if (load && resume)
        return cg_error(CG_ERR_ARG, "--load and --resume: give one (--resume restores the weights too)");
    if (save_every > 0 && save == NULL) return cg_error(CG_ERR_ARG, "--save-every needs --save PATH");
    if (eval && load == NULL && resume == NULL)
        return cg_error(CG_ERR_ARG, "--eval needs the weights to evaluate: --load PATH or --resume PATH");
    if (eval && (save || save_every > 0 || log))
        return cg_error(CG_ERR_ARG, "--eval trains nothing: %s has nothing to write", save ? "--save" : save_every > 0 ?
                        "--save-every" : "--log");
    return cg_ok();
}

void cg_resume_state_path(const char *path, char *out, size_t size) { snprintf(out, size, "%s.state", path); }

cg_status cg_resume_check_writable(const char *path) {
    cg_status s = cg_checkpoint_check_writable(path);
    if (s.code != CG_OK) return s;
    char state[4200];
    cg_resume_state_path(path, state, sizeof state);
    return cg_checkpoint_check_writable(state);
}

// ---- --load ----------------------------------------------------------------------------------------

static const char *lookup(char **pairs, int count, const char *key) {
    for (int i = 0; i < count; i++)
        if (strcmp(pairs[2 * i], key) == 0) return pairs[2 * i + 1];
    return NULL;
}

cg_status cg_resume_load_weights(cg_resume *r, const char *path) {
    char **pairs = NULL;
    int count = 0;
    cg_status s = cg_checkpoint_read_all_metadata(path, &pairs, &count); // also names a .pt or a truncated file
    if (s.code != CG_OK) return s;
    const char *model = lookup(pairs, count, "model"), *classes = lookup(pairs, count, "classes");
    const char *input = lookup(pairs, count, "input");
    if (lookup(pairs, count, "cgrad.state"))
        s = cg_error(CG_ERR_FORMAT, "checkpoint '%s' is a training state: --resume continues it; --load reads the "
                     "weights file saved beside it", path);
    else if (model && strcmp(model, r->model) != 0)
        s = cg_error(CG_ERR_FORMAT, "checkpoint '%s' holds a --model %.64s, this run builds --model %s", path, model,
                     r->model);
    else if (classes && strcmp(classes, r->classes) != 0)
        s = cg_error(CG_ERR_FORMAT, "checkpoint '%s' was trained for %.16s classes, the data set '%s' has %s", path,
                     classes, r->dataset, r->classes);
    else if (input && strcmp(input, r->input) != 0)
        s = cg_error(CG_ERR_FORMAT, "checkpoint '%s' was trained on images of %.32s, the data set '%s' has %s", path,
                     input, r->dataset, r->input);
    cg_checkpoint_free_metadata(pairs, count);
    if (s.code != CG_OK) return s;
    cg_params *blocks[2] = {r->params, r->buffers};
    return cg_checkpoint_load_blocks(blocks, r->buffers ? 2 : 1, path); // names, shapes, NaN: checkpoint.h
}

// ---- --resume --------------------------------------------------------------------------------------

// The rows of the log at path whose epoch (first cell) is at most `epochs`, after its header line;
// NULL when there is no such file or it cannot be read (it is then written anew).
static char *kept_log_rows(const char *path, long epochs) {
    const char *why = NULL;
    int64_t bytes = 0;
    int fd = cg_open_regular(path, &bytes, &why);
    if (fd < 0) return NULL;
    if (bytes <= 0 || bytes > MAX_LOG_BYTES) {
        close(fd);
        return NULL;
    }
    char *text = cg_xmalloc((size_t)bytes + 1);
    FILE *f = fdopen(fd, "rb");
    size_t n = f ? fread(text, 1, (size_t)bytes, f) : 0;
    if (f) fclose(f); else close(fd);
    text[n] = '\0';
    // Keep the header line and each row "E,..." with E <= epochs.
    char *out = cg_xmalloc(n + 1), *w = out;
    bool header = true;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        char *after = NULL;
        long e = strtol(line, &after, 10);
        if (end && (header || (after != line && *after == ',' && e >= 1 && e <= epochs))) { // whole lines only
            memcpy(w, line, len);
            w += len;
        }
        header = false;
        line += len;
    }
    *w = '\0';
    free(text);
    return out;
}

cg_status cg_resume_check(cg_resume *r, const char *path, long epochs, const char *log_path, cg_resume_point *at) {
    // The state beside PATH, or PATH itself when it is a state.
    cg_resume_state_path(path, r->state_path, sizeof r->state_path);
    struct stat info;
    if (stat(r->state_path, &info) != 0) {
        bool is_state = false;
        cg_status s = cg_train_state_probe(path, &is_state);
        if (s.code != CG_OK) return s;
        if (!is_state)
            return cg_error(CG_ERR_FORMAT, "--resume '%s': no training state '%s' beside it, and the file holds weights "
                            "alone (--load starts a new run from them)", path, r->state_path);
        snprintf(r->state_path, sizeof r->state_path, "%s", path);
    }
    cg_status s = cg_train_state_check(r->state, r->state_path);
    int64_t done = 0, step = 0;
    if (s.code == CG_OK) s = cg_train_state_peek_int(r->state_path, "epoch", &done);
    if (s.code == CG_OK) s = cg_train_state_peek_int(r->state_path, "step", &step);
    if (s.code == CG_OK && (done < 0 || step < 0))
        s = cg_error(CG_ERR_FORMAT, "training state '%s': epoch %lld, step %lld: not a place in a run", r->state_path,
                     (long long)done, (long long)step);
    if (s.code == CG_OK && epochs > 0 && done >= epochs)
        s = cg_error(CG_ERR_ARG, "--epochs %ld: the training state '%s' has trained %lld epoch%s already; ask for "
                     "more (--eval evaluates it)", epochs, r->state_path, (long long)done, done == 1 ? "" : "s");
    if (s.code != CG_OK) return s;
    r->resuming = true;
    r->at = (cg_resume_point){(long)done, step, 0.0};
    r->trained = (long)done;
    if (log_path) r->log_rows = kept_log_rows(log_path, (long)done);
    *at = r->at;
    return cg_ok();
}

void cg_resume_attach(cg_resume *r, cg_optimizer *o, cg_amp *amp, cg_loader *loader, cg_metrics *metrics) {
    r->loader = loader;
    r->amp = amp;
    r->metrics = metrics;
    cg_train_state_add_optimizer(r->state, o);
    if (amp) cg_train_state_add_amp(r->state, amp);
    if (metrics) cg_train_state_add_tensor(r->state, "metrics.sums", metrics->sums);
    r->shuffle = r->shuffle_start = loader->rng;
    r->augment = r->augment_start = loader->augment_rng;
    cg_train_state_add_rng(r->state, "loader.shuffle", &r->shuffle);
    cg_train_state_add_rng(r->state, "loader.augment", &r->augment);
}

cg_status cg_resume_restore(cg_resume *r, cg_resume_point *at) {
    CG_CHECK(r->resuming && r->loader != NULL, "cg_resume_restore before cg_resume_check and cg_resume_attach");
    cg_status s = cg_train_state_load(r->state, r->state_path);
    if (s.code != CG_OK) return s;
    int64_t count = r->loader->data->count, batch = r->loader->batch_size;
    int64_t expected = r->step * batch < count ? r->step * batch : count;
    if (r->epochs_done != r->at.epochs_done || r->step != r->at.step || r->position != expected)
        return cg_error(CG_ERR_FORMAT, "training state '%s': epoch %lld, step %lld, loader position %lld do not agree "
                        "(%lld images in batches of %lld)", r->state_path, (long long)r->epochs_done,
                        (long long)r->step, (long long)r->position, (long long)count, (long long)batch);
    // The loader's generators as they were when epoch epochs_done + 1 started.
    r->loader->rng = r->shuffle;
    r->loader->augment_rng = r->augment;
    if (r->amp) cg_amp_refresh(r->amp); // the 16-bit copy of the restored weights
    r->at.seconds = r->seconds;
    *at = r->at;
    return cg_ok();
}

cg_status cg_resume_continue_log(cg_resume *r, cg_epoch_log *log) {
    if (r->log_rows == NULL) return cg_ok();
    cg_status s = cg_epoch_log_continue(log, r->program, r->log_rows);
    free(r->log_rows);
    r->log_rows = NULL;
    return s;
}

// ---- epochs and saves ------------------------------------------------------------------------------

int64_t cg_resume_epoch_begin(cg_resume *r, cg_guard *g, long epoch, int64_t *images) {
    cg_guard_epoch_begin(g, epoch);
    bool stopped_here = r->resuming && epoch == r->at.epochs_done + 1 && r->at.step > 0;
    // (the metrics of the epoch a resume stopped in came back with the state)
    if (!stopped_here && r->metrics) cg_metrics_reset(r->metrics);
    r->epoch = epoch;
    r->shuffle_start = r->loader->rng;
    r->augment_start = r->loader->augment_rng;
    cg_loader_start_epoch(r->loader);
    *images = 0;
    int64_t skipped = 0;
    if (stopped_here) {
        cg_batch batch;
        while (skipped < r->at.step && cg_loader_next(r->loader, &batch)) {
            skipped++;
            *images += batch.size;
        }
        cg_guard_skip_steps(g, skipped);
    }
    return skipped;
}

// The whole state to PATH.state, where training stands: `epochs` whole epochs and `step` steps
// of the next, the log's clock at `seconds`.
static cg_status save_state(cg_resume *r, const char *path, long epochs, int64_t step, double seconds) {
    char state[4200];
    cg_resume_state_path(path, state, sizeof state);
    int64_t count = r->loader->data->count, batch = r->loader->batch_size;
    r->epochs_done = epochs;
    r->step = step;
    r->position = step * batch < count ? step * batch : count;
    r->seconds = seconds;
    // Mid-epoch, the generators as the epoch found them (the resumed run draws the epoch's order
    // and its passed-over batches again); at an epoch's end, as they are now: the next epoch's.
    bool mid = step > 0;
    r->shuffle = mid ? r->shuffle_start : r->loader->rng;
    r->augment = mid ? r->augment_start : r->loader->augment_rng;
    const char *metadata[] = {"program", r->program, "model", r->model, "dataset", r->dataset};
    return cg_train_state_save(r->state, state, metadata, 3);
}

// The weights (and buffers) to PATH, with the metadata PyTorch users and --load read.
static cg_status save_weights(cg_resume *r, const char *path, long epochs) {
    char text[32];
    snprintf(text, sizeof text, "%ld", epochs);
    const char *metadata[] = {"format", "pt",    "model", r->model,   "dataset", r->dataset,
                              "epochs", text,    "classes", r->classes, "input",  r->input};
    cg_params *blocks[2] = {r->params, r->buffers};
    return cg_checkpoint_save_blocks(blocks, r->buffers ? 2 : 1, path, metadata, 6);
}

// Both files, the state first (resume.h says why), unless this very point was saved already.
static cg_status save_both(cg_resume *r, const char *path, long epochs, int64_t step, double seconds) {
    if (r->saved_epochs == epochs && r->saved_step == step) return cg_ok();
    cg_status s = save_state(r, path, epochs, step, seconds);
    if (s.code == CG_OK) s = save_weights(r, path, epochs);
    if (s.code == CG_OK) {
        r->saved_epochs = epochs;
        r->saved_step = step;
    }
    return s;
}

cg_status cg_resume_epoch_end(cg_resume *r, long epoch, double seconds, const char *path, long every, long last) {
    r->trained = epoch;
    if (path == NULL || every <= 0 || epoch % every != 0 || epoch >= last) return cg_ok();
    return save_both(r, path, epoch, 0, seconds);
}

cg_status cg_resume_save_final(cg_resume *r, const cg_guard *g, const char *path, int status, double seconds,
                               bool quiet) {
    if (path == NULL) return cg_ok();
    if (!cg_guard_can_save(g)) {
        fprintf(stderr, "%s: nothing saved to %s (no epoch ended with finite weights); a file there is left as it was\n",
                r->program, path);
        return cg_ok();
    }
    char state[4200];
    cg_resume_state_path(path, state, sizeof state);
    cg_status s;
    if (cg_guard_weights_current(g)) {
        // Where it stopped: after r->trained whole epochs, and the steps of the next one when it
        // stopped inside it.
        int64_t step = r->epoch > r->trained ? cg_guard_step(g) : 0;
        if ((s = save_both(r, path, r->trained, step, seconds)).code != CG_OK) return s;
        if (status != 0)
            fprintf(stderr, "%s: saved %s and %s where training stopped (epoch %ld, step %lld); --resume %s continues "
                    "it\n", r->program, path, state, r->trained + (step > 0), (long long)step, path);
        else if (!quiet)
            printf("saved %s and its training state %s\n", path, state);
        return cg_ok();
    }
    // The last good epoch's weights are back in params; the moments and generators are not theirs.
    long epochs = cg_guard_epochs_done(g);
    if ((s = save_weights(r, path, epochs)).code != CG_OK) return s;
    fprintf(stderr, "%s: saved %s: the weights of epoch %ld, the last good one (no training state: %s, if there is "
            "one, is left as it was)\n", r->program, path, epochs, state);
    return cg_ok();
}

// lookahead.c: the running average of lookahead.h, as three kernels per slice: scale, axpy, copy.
#include "core/train/lookahead.h"
#include "core/kernels.h"

#include <stdlib.h>
#include <string.h>

// The slices of block b to average: every tensor but those named *num_batches_tracked, padding
// included (it stays zero).
static void make_runs(cg_lookahead *l, int b) {
    const cg_params *p = l->blocks[b];
    l->run_begin[b] = cg_xmalloc((size_t)(p->count + 1) * sizeof(int64_t));
    l->run_end[b] = cg_xmalloc((size_t)(p->count + 1) * sizeof(int64_t));
    int runs = 0;
    for (int i = 0; i < p->count; i++) {
        const char *name = p->tensors[i]->name ? p->tensors[i]->name : "";
        size_t len = strlen(name), tail = strlen("num_batches_tracked");
        if (len >= tail && strcmp(name + len - tail, "num_batches_tracked") == 0) continue;
        int64_t begin = p->offsets[i], end = i + 1 < p->count ? p->offsets[i + 1] : p->numel;
        if (runs > 0 && l->run_end[b][runs - 1] == begin) {
            l->run_end[b][runs - 1] = end;
        } else {
            l->run_begin[b][runs] = begin;
            l->run_end[b][runs] = end;
            runs++;
        }
    }
    l->runs[b] = runs;
}

cg_lookahead *cg_lookahead_new(cg_params *params, cg_params *buffers) {
    CG_CHECK(params != NULL, "cg_lookahead_new: no parameters");
    cg_lookahead *l = cg_xcalloc(1, sizeof *l);
    l->blocks[0] = params;
    l->blocks[1] = buffers;
    for (int b = 0; b < 2; b++) {
        cg_params *p = l->blocks[b];
        if (p == NULL || p->numel == 0) {
            l->blocks[b] = NULL;
            continue;
        }
        size_t bytes = (size_t)p->numel * sizeof(float);
        l->ema[b] = cg_device_alloc_for(p->device, bytes, "the Lookahead average");
        cg_device_copy(p->device, l->ema[b], p->device, p->values, bytes);
        make_runs(l, b);
    }
    return l;
}

void cg_lookahead_free(cg_lookahead *l) {
    if (l == NULL) return;
    for (int b = 0; b < 2; b++) {
        if (l->blocks[b] == NULL) continue;
        cg_device_free(l->blocks[b]->device, l->ema[b]);
        free(l->run_begin[b]);
        free(l->run_end[b]);
    }
    free(l);
}

void cg_lookahead_set_average(cg_lookahead *l, const cg_tensor *t, const float *host_values) {
    for (int b = 0; b < 2; b++) {
        cg_params *p = l->blocks[b];
        for (int i = 0; p && i < p->count; i++) {
            if (p->tensors[i] != t) continue;
            int64_t at = p->offsets[i];
            bool averaged = false;
            for (int r = 0; r < l->runs[b]; r++) averaged |= at >= l->run_begin[b][r] && at < l->run_end[b][r];
            CG_CHECK(averaged, "cg_lookahead_set_average: %s is not averaged", t->name ? t->name : "the tensor");
            cg_device_copy(p->device, l->ema[b] + at, cg_cpu(), host_values, (size_t)t->numel * sizeof(float));
            return;
        }
    }
    CG_CHECK(false, "cg_lookahead_set_average: %s is not a tensor of the averaged blocks", t->name ? t->name : "the tensor");
}

void cg_lookahead_update(cg_lookahead *l, float decay) {
    CG_CHECK(decay >= 0.0f && decay <= 1.0f, "Lookahead decay %g is not in [0, 1]", (double)decay);
    for (int b = 0; b < 2; b++) {
        cg_params *p = l->blocks[b];
        if (p == NULL) continue;
        const cg_kernels *k = cg_kernels_for(p->device);
        for (int r = 0; r < l->runs[b]; r++) {
            int64_t at = l->run_begin[b][r], n = l->run_end[b][r] - at;
            float *ema = l->ema[b] + at, *w = p->values + at;
            if (decay < 1.0f) {
                k->scale(ema, ema, decay, n);       // decay ema
                k->axpy(ema, 1.0f - decay, w, n);   // + (1 - decay) w
            }
            cg_device_copy(p->device, w, p->device, ema, (size_t)n * sizeof(float)); // w = ema
        }
    }
}

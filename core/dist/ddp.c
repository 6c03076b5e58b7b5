// ddp.c: the data-parallel model (PyTorch's DistributedDataParallel, Li et al., "PyTorch
// Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020): rank 0's weights
// copied to every rank, the gradient block cut into buckets, and each bucket's all-reduce started
// from the tape's backward hook as soon as the last gradient in it is written, so that the
// reduction of the last layers overlaps the backward pass of the first ones.
// Not here: starting the processes and failures (dist.c), the data shards (datasets/shard.c).
#include "core/dist/dist_internal.h"
#include "core/kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The parameter whose tensor x is, or -1: parameters are slices of the value block in order, so a
// binary search on the data pointer finds it.
static int param_index(const cg_dist *d, const cg_tensor *x) {
    const cg_params *p = d->params;
    uintptr_t at = (uintptr_t)x->data, base = (uintptr_t)p->values;
    if (x->dtype != CG_F32 || at < base || at >= base + (uintptr_t)p->numel * sizeof(float)) return -1;
    int64_t offset = (int64_t)((at - base) / sizeof(float));
    int lo = 0, hi = p->count - 1;
    while (lo < hi) { // the last parameter that starts at or before offset
        int mid = (lo + hi + 1) / 2;
        if (p->offsets[mid] <= offset) lo = mid;
        else hi = mid - 1;
    }
    return p->tensors[lo] == x ? lo : -1;
}

// Start bucket b's all-reduce: the average over the ranks, in place.
static void start_bucket(cg_dist *d, int b) {
    float *g = d->params->grads + d->bucket_begin[b];
    int64_t n = d->bucket_end[b] - d->bucket_begin[b];
    if (d->nccl) {
        d->nccl->allreduce_start(g, n, 0); // ncclAvg: the division is part of the reduction
        return;
    }
    char err[512];
    if (d->mpi->allreduce_f32_start(g, n, 0, err, sizeof err)) cg_dist_fail(d, 1, err);
}

// Start, in bucket order (the same on every rank), every bucket whose gradients are all final.
static void start_ready(cg_dist *d) {
    while (d->next_bucket < d->n_buckets && d->waiting[d->next_bucket] == 0) start_bucket(d, d->next_bucket++);
}

// Before the first backward node (node == t->count): which node writes each parameter's gradient
// last. The backward walks the nodes from the last to the first, so that is the first node, in
// recording order, that takes the parameter as an input. Then after each node: the parameters it
// was the last writer of are final.
static void backward_hook(void *ctx, const cg_tape *t, int node) {
    cg_dist *d = ctx;
    int P = d->params->count;
    if (node == t->count) {
        // Under autocast the f32 gradients are complete only after cg_amp_backward gathers the
        // 16-bit ones: then the whole block is reduced in cg_dist_sync_gradients.
        d->overlap = t->autocast == CG_F32;
        d->next_bucket = 0;
        if (!d->overlap) return;
        for (int p = 0; p < P; p++) d->last_use[p] = -1;
        for (int i = 0; i < t->count; i++)
            for (int j = 0; j < t->nodes[i].n_in; j++) {
                int p = param_index(d, t->nodes[i].in[j]);
                if (p >= 0 && d->last_use[p] == -1) d->last_use[p] = i;
            }
        for (int b = 0; b < d->n_buckets; b++) d->waiting[b] = 0;
        for (int p = 0; p < P; p++)
            if (d->last_use[p] >= 0) d->waiting[d->bucket_of[p]]++;
        start_ready(d);
        return;
    }
    if (!d->overlap) return;
    const cg_node *n = &t->nodes[node];
    bool freed = false;
    for (int j = 0; j < n->n_in; j++) {
        int p = param_index(d, n->in[j]);
        if (p >= 0 && d->last_use[p] == node) {
            d->last_use[p] = -2; // done (a parameter may be two inputs of one node)
            d->waiting[d->bucket_of[p]]--;
            freed = true;
        }
    }
    if (freed) start_ready(d);
    if (d->nccl == NULL) d->mpi->progress(); // MPI moves a started reduction on only when called
}

// Buckets of about bucket_bytes, from the last parameter back to the first (the order in which the
// backward pass finishes them); a parameter larger than a bucket is a bucket of its own.
static void make_buckets(cg_dist *d) {
    const cg_params *p = d->params;
    int P = p->count;
    free(d->bucket_begin), free(d->bucket_end), free(d->bucket_of), free(d->last_use), free(d->waiting);
    d->bucket_begin = cg_xcalloc((size_t)P + 1, sizeof(int64_t));
    d->bucket_end = cg_xcalloc((size_t)P + 1, sizeof(int64_t));
    d->bucket_of = cg_xcalloc((size_t)P + 1, sizeof(int));
    d->last_use = cg_xcalloc((size_t)P + 1, sizeof(int));
    d->waiting = cg_xcalloc((size_t)P + 1, sizeof(int));
    d->n_buckets = 0;
    int64_t end = p->numel; // the block's padding goes with the last parameter
    for (int i = P - 1; i >= 0; i--) {
        int b = d->n_buckets;
        d->bucket_of[i] = b;
        int64_t floats = end - p->offsets[i];
        bool full = (size_t)floats * sizeof(float) >= d->bucket_bytes;
        if (full || i == 0) {
            d->bucket_begin[b] = p->offsets[i];
            d->bucket_end[b] = end;
            end = p->offsets[i];
            d->n_buckets++;
        }
    }
}

// FNV-1a over the parameters' names, shapes and offsets: equal on two ranks when they built the
// same model.
static uint64_t layout_hash(const cg_params *p) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < p->count; i++) {
        const cg_tensor *t = p->tensors[i];
        for (const char *c = t->name; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
        int64_t words[6] = {t->ndim, t->shape[0], t->ndim > 1 ? t->shape[1] : 0, t->ndim > 2 ? t->shape[2] : 0,
                            t->ndim > 3 ? t->shape[3] : 0, p->offsets[i]};
        for (int w = 0; w < 6; w++) h = (h ^ (uint64_t)words[w]) * 0x100000001b3ULL;
    }
    return h;
}

cg_status cg_dist_prepare(cg_dist *d, cg_params *params, cg_tape *tape) {
    if (d == NULL) return cg_ok();
    CG_CHECK(cg_device_equal(params->device, d->device) && cg_device_equal(tape->device, d->device),
             "cg_dist_prepare: the model is not on the run's device");
    cg_status s = cg_dist_agree(d, "the model's parameter count", cg_params_count(params));
    if (s.code == CG_OK) s = cg_dist_agree(d, "the model's layout (parameter names and shapes)", (int64_t)layout_hash(params));
    if (s.code != CG_OK) return s;
    d->params = params;
    char err[512];
    int reporter = 1;
    if (d->nccl) {
        d->nccl->broadcast(params->values, (size_t)params->numel * sizeof(float));
        if (d->nccl->synchronize(d->timeout, err, sizeof err)) cg_dist_fail(d, 1, err);
    } else if (d->mpi->broadcast(params->values, (size_t)params->numel * sizeof(float), 0, &reporter, err, sizeof err)) {
        cg_dist_fail(d, reporter, err);
    }
    make_buckets(d);
    tape->backward_hook = backward_hook;
    tape->backward_hook_ctx = d;
    return cg_ok();
}

void cg_dist_sync_gradients(cg_dist *d, const cg_amp *amp) {
    if (d == NULL) return;
    d->steps++;
    cg_dist_inject_fault(d);
    float *found_inf = amp && amp->dtype != CG_F32 ? amp->state + CG_AMP_FOUND_INF : NULL;
    if (!d->overlap) { // one bucket: the whole block
        d->next_bucket = d->n_buckets;
        if (d->nccl) {
            d->nccl->allreduce_start(d->params->grads, d->params->numel, 0);
        } else {
            char err[512];
            if (d->mpi->allreduce_f32_start(d->params->grads, d->params->numel, 0, err, sizeof err))
                cg_dist_fail(d, 1, err);
        }
    }
    while (d->next_bucket < d->n_buckets) start_bucket(d, d->next_bucket++); // unused parameters' buckets
    d->overlap = false; // until the next backward pass says otherwise
    if (d->nccl) {
        d->nccl->join();
        if (found_inf) d->nccl->allreduce_max(found_inf, 1); // every rank skips the same steps
        return;
    }
    char err[512];
    int reporter = 1;
    if (found_inf && d->mpi->allreduce_f32_start(found_inf, 1, 1, err, sizeof err)) cg_dist_fail(d, 1, err);
    if (d->mpi->wait_all(&reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
    if (d->world > 1) cg_cpu_kernels()->scale(d->params->grads, d->params->grads, 1.0f / (float)d->world, d->params->numel);
}

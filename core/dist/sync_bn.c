// sync_bn.c: synchronised batch norm (--sync-bn), as torch.nn.SyncBatchNorm: the tape's
// batch_norm_sum hook (core/tape.h), which adds up batch norm's per-channel sums over the ranks,
// so that every rank normalises with the statistics of all the ranks' batches together and its
// input gradient is the one a single process with the whole batch would get. NCCL on GPUs (queued
// on the communication stream in order with the gradient buckets: nothing waits on the host, the
// step stays one CUDA Graph), MPI on CPUs (blocking, within CGRAD_DIST_TIMEOUT). Not the
// arithmetic: core/ops_norm.c and the batch_norm_* kernels.
#include "core/dist/dist_internal.h"

#include <limits.h>

static void sum_over_ranks(void *ctx, double *buf, int64_t n) {
    cg_dist *d = ctx;
    if (d->nccl) {
        d->nccl->allreduce_sum_f64_joined(buf, n);
        return;
    }
    CG_CHECK(n <= INT_MAX, "sync-bn: %lld sums in one all-reduce", (long long)n);
    char err[512];
    int reporter = 1;
    if (d->mpi->allreduce_f64(buf, (int)n, 0, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
}

void cg_dist_sync_batch_norm(cg_dist *d, cg_tape *tape) {
    if (d == NULL) return;
    CG_CHECK(cg_device_equal(tape->device, d->device), "cg_dist_sync_batch_norm: the tape is not on the run's device");
    tape->batch_norm_sum = sum_over_ranks;
    tape->batch_norm_sum_ctx = d;
}

// collectives.c: what the ranks exchange outside the gradient buckets: all-gathers and sums of a
// few host values (checks that every rank agrees, the epoch's loss and accuracy), a blocking
// all-reduce for the benchmark, and the end of a run (the ranks' weights compared, MPI and NCCL
// closed). Host values go through MPI, or, when no MPI started the processes, through NCCL and a
// small buffer on the GPU. Not the gradient buckets (ddp.c), not the start (dist.c).
#include "core/dist/dist_internal.h"
#include "core/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Wait for NCCL's collectives on the compute stream, within the timeout.
static void nccl_wait(cg_dist *d) {
    char err[512];
    if (d->nccl->synchronize(d->timeout, err, sizeof err)) cg_dist_fail(d, 1, err);
}

void cg_dist_host_allgather(cg_dist *d, const void *mine, void *all, size_t bytes) {
    char err[512];
    int reporter = 1;
    if (d->mpi) {
        if (d->mpi->allgather(mine, all, bytes, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
        return;
    }
    char *buf = cg_device_alloc(d->device, bytes * (size_t)(d->world + 1)); // mine, then everyone's
    cg_device_copy(d->device, buf, cg_cpu(), mine, bytes);
    d->nccl->allgather(buf, buf + bytes, bytes);
    nccl_wait(d);
    cg_device_copy(cg_cpu(), all, d->device, buf + bytes, bytes * (size_t)d->world);
    cg_device_free(d->device, buf);
}

void cg_dist_host_sum(cg_dist *d, double *values, int n) {
    char err[512];
    int reporter = 1;
    if (d->mpi) {
        if (d->mpi->allreduce_f64(values, n, 0, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
        return;
    }
    double *buf = cg_device_alloc(d->device, (size_t)n * sizeof(double));
    cg_device_copy(d->device, buf, cg_cpu(), values, (size_t)n * sizeof(double));
    d->nccl->allreduce_f64(buf, n, 0);
    nccl_wait(d);
    cg_device_copy(cg_cpu(), values, d->device, buf, (size_t)n * sizeof(double));
    cg_device_free(d->device, buf);
}

cg_status cg_dist_agree(cg_dist *d, const char *what, int64_t value) {
    if (d == NULL) return cg_ok();
    int64_t *all = cg_xcalloc((size_t)d->world, sizeof *all);
    cg_dist_host_allgather(d, &value, all, sizeof value);
    cg_status s = cg_ok();
    for (int r = 1; r < d->world && s.code == CG_OK; r++)
        if (all[r] != all[0])
            s = cg_error(CG_ERR_ARG, "%s: rank %d has %lld, rank 0 %lld: every rank needs the same", what, r,
                         (long long)all[r], (long long)all[0]);
    free(all);
    return s.code == CG_OK ? s : cg_dist_agreed_failure(d, s);
}

void cg_dist_mean(cg_dist *d, int64_t samples, double *a, double *b) {
    if (d == NULL) return;
    double n = (double)samples, sums[3] = {n > 0 ? *a * n : 0.0, n > 0 ? *b * n : 0.0, n};
    cg_dist_host_sum(d, sums, 3);
    *a = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
    *b = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
}

void cg_dist_allreduce(cg_dist *d, float *buf, int64_t n) {
    if (d == NULL) return;
    char err[512];
    int reporter = 1;
    if (d->nccl) {
        d->nccl->allreduce_start(buf, n, 0);
        d->nccl->join();
        nccl_wait(d);
        return;
    }
    if (d->mpi->allreduce_f32_start(buf, n, 0, err, sizeof err) || d->mpi->wait_all(&reporter, err, sizeof err))
        cg_dist_fail(d, reporter, err);
    if (d->world > 1) cg_cpu_kernels()->scale(buf, buf, 1.0f / (float)d->world, n);
}

void cg_dist_describe(const cg_dist *d, char *out, size_t size) {
    if (d == NULL) {
        snprintf(out, size, "not distributed");
        return;
    }
    char how[256] = "started without MPI (tools/launch_local.sh)", nccl[32] = "";
    if (d->mpi) d->mpi->version(how, sizeof how);
    int v = d->nccl ? d->nccl->version() : 0;
    if (d->nccl) snprintf(nccl, sizeof nccl, ", NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    snprintf(out, size, "%d ranks (%d on this host), %s%s", d->world, d->local_world, how, nccl);
}

void cg_dist_finish(cg_dist *d) {
    if (d == NULL) return;
    // Data parallelism keeps every rank's weights equal; a difference is a bug worth a line.
    if (d->params) {
        size_t bytes = (size_t)d->params->numel * sizeof(float);
        unsigned char *host = cg_xmalloc(bytes ? bytes : 1);
        cg_device_copy(cg_cpu(), host, d->device, d->params->values, bytes);
        uint64_t h = 0xcbf29ce484222325ULL, *all = cg_xcalloc((size_t)d->world, sizeof *all);
        for (size_t i = 0; i < bytes; i++) h = (h ^ host[i]) * 0x100000001b3ULL;
        cg_dist_host_allgather(d, &h, all, sizeof h);
        for (int r = 1; r < d->world && d->rank == 0; r++)
            if (all[r] != all[0])
                fprintf(stderr, "%s: %swarning: rank %d ends with other weights than rank 0\n", d->program,
                        cg_dist_tag(), r);
        free(all);
        free(host);
    }
    cg_dist_close(d);
    free(d->bucket_begin);
    free(d->bucket_end);
    free(d->bucket_of);
    free(d->last_use);
    free(d->waiting);
    free(d);
}

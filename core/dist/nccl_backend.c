// nccl_backend.c: the NCCL plugin, libcgrad_nccl.so (dist_backend.h): one communicator per
// process, gradient all-reduces on a communication stream of their own that overlap the backward
// pass (synchronised batch norm's sums go there too, in order with them), the weights' broadcast,
// and NCCL's asynchronous errors. Not the processes' start (MPI does that, and sends NCCL's unique
// id); no training logic. Exports only cg_nccl_backend_entry and calls no cg_ function. Every call
// is queued on a stream and may be captured into a CUDA Graph.
#define _POSIX_C_SOURCE 200809L
#include "core/dist/dist_backend.h"
#include "core/dist/plugin_clock.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ncclComm_t comm;
static int device = -1;
static cudaStream_t compute; // the CUDA plugin's stream for this GPU (the training's)
static cudaStream_t side;    // the communication stream
static cudaEvent_t ready;    // recorded on compute: what a reduction must wait for
static cudaEvent_t reduced;  // recorded on side: what the compute stream waits for at join

// A CUDA or NCCL error inside a queued call: nothing can be returned from there, so the message
// names the call and the process stops (the launcher then stops the others).
#define CUDA_OR_DIE(call)                                                                                   \
    do {                                                                                                    \
        cudaError_t e_ = (call);                                                                            \
        if (e_ != cudaSuccess) {                                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
            ncclCommAbort(comm);                                                                            \
            abort();                                                                                        \
        }                                                                                                   \
    } while (0)
#define NCCL_OR_DIE(call)                                                                                   \
    do {                                                                                                    \
        ncclResult_t r_ = (call);                                                                           \
        if (r_ != ncclSuccess) {                                                                            \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call, ncclGetErrorString(r_),      \
                    ncclGetLastError(comm));                                                                \
            ncclCommAbort(comm);                                                                            \
            abort();                                                                                        \
        }                                                                                                   \
    } while (0)

static int nccl_version(void) {
    int v = 0;
    ncclGetVersion(&v);
    return v;
}

static int nccl_unique_id(void *id128, char *err, size_t err_size) {
    ncclUniqueId id;
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) {
        snprintf(err, err_size, "ncclGetUniqueId: %s", ncclGetErrorString(r));
        return 1;
    }
    memcpy(id128, &id, sizeof id < 128 ? sizeof id : 128);
    return 0;
}

static int nccl_poll(char *err, size_t err_size) {
    ncclResult_t async = ncclSuccess;
    if (comm == NULL) return 0;
    ncclResult_t r = ncclCommGetAsyncError(comm, &async);
    if (r != ncclSuccess) async = r;
    if (async == ncclSuccess || async == ncclInProgress) return 0;
    snprintf(err, err_size, "NCCL: %s (%s)", ncclGetErrorString(async), ncclGetLastError(comm));
    return 1;
}

// The initialisation's guard: if the other ranks have not joined when the time is up (one never
// started, or died first), this process says so and exits, and the launcher ends the others.
// A blocking communicator is kept for everything else: its calls are queued on the stream when they
// return, which is what capturing them into a CUDA Graph needs.
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t init_done = PTHREAD_COND_INITIALIZER;
static int initialised;
static double init_timeout;
static int init_rank;

static void *guard_init(void *arg) {
    (void)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)init_timeout + 1;
    pthread_mutex_lock(&init_lock);
    int rc = 0;
    while (!initialised && rc == 0) rc = pthread_cond_timedwait(&init_done, &init_lock, &until);
    int done = initialised;
    pthread_mutex_unlock(&init_lock);
    if (!done) {
        fprintf(stderr, "rank %d: NCCL: the other ranks did not join within %g s (one did not start, or died); "
                "stopping this rank\n", init_rank, init_timeout);
        _exit(1);
    }
    return NULL;
}

static int nccl_init(const void *id128, int world, int rank, int gpu, void *stream, double timeout, char *err,
                     size_t err_size) {
    device = gpu;
    compute = (cudaStream_t)stream;
    cudaError_t e = cudaSetDevice(gpu);
    if (e != cudaSuccess) {
        snprintf(err, err_size, "cudaSetDevice(%d): %s", gpu, cudaGetErrorString(e));
        return 1;
    }
    ncclUniqueId id;
    memcpy(&id, id128, sizeof id);
    init_timeout = timeout;
    init_rank = rank;
    pthread_t guard;
    int guarded = pthread_create(&guard, NULL, guard_init, NULL) == 0;
    ncclResult_t r = ncclCommInitRank(&comm, world, id, rank);
    pthread_mutex_lock(&init_lock);
    initialised = 1;
    pthread_cond_broadcast(&init_done);
    pthread_mutex_unlock(&init_lock);
    if (guarded) pthread_join(guard, NULL);
    if (r != ncclSuccess) {
        snprintf(err, err_size, "ncclCommInitRank: %s (%s)", ncclGetErrorString(r), ncclGetLastError(comm));
        comm = NULL;
        return 1;
    }
    if ((e = cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&reduced, cudaEventDisableTiming)) != cudaSuccess) {
        snprintf(err, err_size, "NCCL plugin: %s", cudaGetErrorString(e));
        return 1;
    }
    return 0;
}

// A queued call's result: anything but success ends the process (the launcher ends the others).
static void settle(ncclResult_t r) { NCCL_OR_DIE(r); }

static void nccl_allreduce_start(float *buf, int64_t n, int op) {
    CUDA_OR_DIE(cudaSetDevice(device));
    CUDA_OR_DIE(cudaEventRecord(ready, compute)); // the gradients are written by then
    CUDA_OR_DIE(cudaStreamWaitEvent(side, ready, 0));
    settle(ncclAllReduce(buf, buf, (size_t)n, ncclFloat, op ? ncclMax : ncclAvg, comm, side));
}

static void nccl_join(void) {
    CUDA_OR_DIE(cudaSetDevice(device));
    CUDA_OR_DIE(cudaEventRecord(reduced, side));
    CUDA_OR_DIE(cudaStreamWaitEvent(compute, reduced, 0));
}

static void nccl_allreduce_sum_f64_joined(double *buf, int64_t n) {
    CUDA_OR_DIE(cudaSetDevice(device));
    CUDA_OR_DIE(cudaEventRecord(ready, compute)); // the sums are written by then
    CUDA_OR_DIE(cudaStreamWaitEvent(side, ready, 0));
    settle(ncclAllReduce(buf, buf, (size_t)n, ncclDouble, ncclSum, comm, side));
    CUDA_OR_DIE(cudaEventRecord(reduced, side));
    CUDA_OR_DIE(cudaStreamWaitEvent(compute, reduced, 0)); // what follows reads the sums
}

static void nccl_broadcast(void *buf, size_t bytes) {
    CUDA_OR_DIE(cudaSetDevice(device));
    settle(ncclBroadcast(buf, buf, bytes, ncclUint8, 0, comm, compute));
}

static void nccl_allgather(const void *send, void *recv, size_t bytes) {
    CUDA_OR_DIE(cudaSetDevice(device));
    settle(ncclAllGather(send, recv, bytes, ncclUint8, comm, compute));
}

static void nccl_allreduce_f64(double *buf, int64_t n, int op) {
    CUDA_OR_DIE(cudaSetDevice(device));
    settle(ncclAllReduce(buf, buf, (size_t)n, ncclDouble, op ? ncclMax : ncclSum, comm, compute));
}

static void nccl_allreduce_max(float *buf, int64_t n) {
    CUDA_OR_DIE(cudaSetDevice(device));
    settle(ncclAllReduce(buf, buf, (size_t)n, ncclFloat, ncclMax, comm, compute));
}

static int nccl_synchronize(double timeout, char *err, size_t err_size) {
    CUDA_OR_DIE(cudaSetDevice(device));
    double deadline = plugin_now() + timeout;
    for (;;) {
        cudaError_t e = cudaStreamQuery(compute);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) {
            snprintf(err, err_size, "waiting for the GPU: %s", cudaGetErrorString(e));
            return 1;
        }
        if (nccl_poll(err, err_size)) return 1;
        if (plugin_now() > deadline) {
            snprintf(err, err_size, "the GPU's collectives did not complete within %g s (a rank died or hangs)",
                     timeout);
            return 1;
        }
        plugin_nap(100e-6);
    }
}

static void nccl_abort(void) {
    if (comm) ncclCommAbort(comm);
    comm = NULL;
}

static void nccl_finalize(void) {
    if (comm == NULL) return;
    cudaSetDevice(device);
    cudaStreamSynchronize(side);
    ncclCommFinalize(comm); // waits for the communicator's work (blocking communicator)
    ncclCommDestroy(comm);
    comm = NULL;
    cudaEventDestroy(ready);
    cudaEventDestroy(reduced);
    cudaStreamDestroy(side);
}

__attribute__((visibility("default"))) const cg_nccl_backend *cg_nccl_backend_entry(void) {
    static const cg_nccl_backend backend = {
        .version = nccl_version,
        .unique_id = nccl_unique_id,
        .init = nccl_init,
        .allreduce_start = nccl_allreduce_start,
        .join = nccl_join,
        .allreduce_sum_f64_joined = nccl_allreduce_sum_f64_joined,
        .broadcast = nccl_broadcast,
        .allreduce_max = nccl_allreduce_max,
        .allgather = nccl_allgather,
        .allreduce_f64 = nccl_allreduce_f64,
        .synchronize = nccl_synchronize,
        .poll = nccl_poll,
        .abort = nccl_abort,
        .finalize = nccl_finalize,
    };
    return &backend;
}

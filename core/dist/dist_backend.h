// dist_backend.h: what core/dist/dist.c asks of the two communication plugins (private to core/dist/).
// libcgrad_mpi.so (mpi_backend.c) starts and connects the processes and reduces host buffers;
// libcgrad_nccl.so (nccl_backend.c) reduces GPU buffers on the GPU. Both are loaded with dlopen only
// when --distributed is asked, so a run that is not distributed never loads MPI or NCCL, and a
// binary built with them still runs where they are not installed. Like the CUDA plugin, neither
// calls any cg_ function (they are loaded into programs that export none): plain C types only.
// Every function that can fail returns 0, or non-zero with a one-line reason written to err.
#ifndef CG_DIST_BACKEND_H
#define CG_DIST_BACKEND_H

#include <stddef.h>
#include <stdint.h>

// ---- MPI: processes, host buffers -------------------------------------------------------------
// Every blocking call waits at most the timeout (set_timeout, seconds). When it runs out, err says
// which ranks did not answer a query sent over a second communicator (a rank waiting in any call
// of this plugin answers at once; one that died or hangs elsewhere does not), and *reporter (when
// the function has one) is set on the lowest rank that did answer, so that one line is printed.
typedef struct {
    // MPI_Init_thread (funneled: only the main thread calls MPI); this process's rank in the world,
    // the world's size, and its rank and count among the ranks of its host (MPI_Comm_split_type
    // with MPI_COMM_TYPE_SHARED): the local rank picks the GPU.
    int (*init)(int *rank, int *world, int *local_rank, int *local_world, char *err, size_t err_size);
    void (*set_timeout)(double seconds);
    // The library's own name and version ("Open MPI v4.1.4, ...").
    void (*version)(char *out, size_t size);
    // all[r * bytes ...] = rank r's `mine` (bytes each).
    int (*allgather)(const void *mine, void *all, size_t bytes, int *reporter, char *err, size_t err_size);
    // buf (bytes) from rank `root` to every rank.
    int (*broadcast)(void *buf, size_t bytes, int root, int *reporter, char *err, size_t err_size);
    // In place over every rank: sum (op 0) or maximum (op 1) of n doubles.
    int (*allreduce_f64)(double *buf, int n, int op, int *reporter, char *err, size_t err_size);
    // In place, sum (op 0) or maximum (op 1) of n host floats, started now and finished by wait_all
    // (MPI_Iallreduce), so that the backward pass goes on meanwhile. Every rank starts the same
    // reductions in the same order. Errors: too many in flight (64).
    int (*allreduce_f32_start)(float *buf, int64_t n, int op, char *err, size_t err_size);
    // Let MPI move the started reductions on (MPI_Testall); it runs only when called.
    void (*progress)(void);
    // Wait for every started reduction.
    int (*wait_all)(int *reporter, char *err, size_t err_size);
    // End the whole job now (MPI_Abort): every rank stops.
    void (*abort)(int code);
    void (*finalize)(void);
} cg_mpi_backend;

// ---- NCCL: GPU buffers ------------------------------------------------------------------------
// Collectives queued on streams of the GPU, so nothing waits on the host and a training step with
// its all-reduce is still one CUDA Graph. Built whenever CUDA and NCCL are found, with or without MPI. The gradient reductions run on a communication stream of
// their own: start waits (on the GPU) for the compute stream's work queued so far, join makes the
// compute stream wait for every reduction started, so that they overlap the rest of the backward.
typedef struct {
    // NCCL's version, e.g. 22809 for 2.28.9.
    int (*version)(void);
    // The id every rank needs to join (NCCL_UNIQUE_ID_BYTES = 128 bytes): made by rank 0, sent to
    // the others by MPI.
    int (*unique_id)(void *id128, char *err, size_t err_size);
    // Join the world (ncclCommInitRank) on GPU `gpu`, whose compute stream is `stream` (the CUDA
    // plugin's). When the others have not joined within timeout seconds, it prints one line and
    // ends the process.
    int (*init)(const void *id128, int world, int rank, int gpu, void *stream, double timeout, char *err,
                size_t err_size);
    // Average (op 0, ncclAvg) or maximum (op 1) of n floats in place on the communication stream.
    void (*allreduce_start)(float *buf, int64_t n, int op);
    void (*join)(void);
    // The sum of n doubles in place, queued on the communication stream after the reductions started
    // so far, and the compute stream waits for it (synchronised batch norm's statistics, in the
    // forward and in the backward pass): every collective of a step in one order on every rank, as
    // PyTorch's one NCCL stream per process group.
    void (*allreduce_sum_f64_joined)(double *buf, int64_t n);
    // On the compute stream (device buffers): `bytes` bytes from rank 0 to every rank; the maximum of
    // n floats in place; every rank's `bytes` bytes of send into recv (rank r's at r * bytes); the
    // sum (op 0) or maximum (op 1) of n doubles in place. The last two carry the host's collectives
    // when no MPI started the processes (the file rendezvous of core/dist/dist.c).
    void (*broadcast)(void *buf, size_t bytes);
    void (*allreduce_max)(float *buf, int64_t n);
    void (*allgather)(const void *send, void *recv, size_t bytes);
    void (*allreduce_f64)(double *buf, int64_t n, int op);
    // Wait for the compute stream, within the timeout, watching for NCCL's asynchronous errors.
    int (*synchronize)(double timeout, char *err, size_t err_size);
    // NCCL's asynchronous error (a peer gone, a network error), if any: non-zero with its text.
    int (*poll)(char *err, size_t err_size);
    // Stop every NCCL kernel of this rank (ncclCommAbort): after an error, before ending the job.
    void (*abort)(void);
    void (*finalize)(void);
} cg_nccl_backend;

#define CG_MPI_BACKEND_ENTRY "cg_mpi_backend_entry"
#define CG_NCCL_BACKEND_ENTRY "cg_nccl_backend_entry"
typedef const cg_mpi_backend *(*cg_mpi_backend_entry_fn)(void);
typedef const cg_nccl_backend *(*cg_nccl_backend_entry_fn)(void);

#endif

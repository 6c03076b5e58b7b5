// dist_internal.h: the state of a distributed run, shared by core/dist/dist.c (processes, plugins,
// checks, failures) and core/dist/ddp.c (gradient buckets and the tape's hook). Private to core/dist/.
#ifndef CG_DIST_INTERNAL_H
#define CG_DIST_INTERNAL_H

#include "core/dist/dist.h"
#include "core/dist/dist_backend.h"

#include <pthread.h>

struct cg_dist {
    char program[32];
    const cg_mpi_backend *mpi;   // NULL when the processes were started without MPI (file rendezvous)
    const cg_nccl_backend *nccl; // NULL on the CPU
    char id_file[512];           // the file rendezvous: where rank 0 wrote NCCL's id ("" with MPI)
    int rank, world, local_rank, local_world;
    cg_device device;
    double timeout;      // seconds (CGRAD_DIST_TIMEOUT)
    size_t bucket_bytes; // CGRAD_DIST_BUCKET_MB
    pthread_t watchdog;  // on GPUs: polls NCCL's asynchronous errors
    bool watching;
    volatile int stop_watching;

    // The model (cg_dist_prepare).
    cg_params *params;
    int n_buckets;
    int64_t *bucket_begin, *bucket_end; // float offsets into the gradient block, bucket 0 the last
    int *bucket_of;                     // per parameter
    int *last_use;                      // per parameter, this step: the tape node whose backward
                                        // writes its gradient last; -1 unused, -2 done
    int *waiting;                       // per bucket, this step: parameters not final yet
    int next_bucket;                    // buckets started this step (they start in order)
    bool overlap;                       // this step's buckets start during the backward pass
    int64_t steps;                      // gradient syncs so far

    int fault_rank;      // CGRAD_DIST_FAULT: -1 none
    int64_t fault_step;
    bool fault_hang;
};

// A rank failed or stopped answering: print "program: rank R: what" (when reporter is set: one
// rank speaks for all), stop NCCL, and end the whole job (MPI_Abort; without MPI this process exits
// and the launcher ends the others). Does not return.
void cg_dist_fail(cg_dist *d, int reporter, const char *what) __attribute__((noreturn));
// A collective error every rank sees the same way (a different build, model or data set): every
// rank closes the run and returns s; rank 0 alone prints it (the others' stderr is closed).
cg_status cg_dist_agreed_failure(cg_dist *d, cg_status s);
// Stop the NCCL watchdog, close NCCL and MPI: the run is over (dist.c).
void cg_dist_close(cg_dist *d);

// Host-side collectives (collectives.c): through MPI, or, when no MPI started the processes, through
// NCCL and a buffer on the GPU. They wait at most the timeout; a failure ends the job (cg_dist_fail).
// all[r * bytes ...] = rank r's `mine`.
void cg_dist_host_allgather(cg_dist *d, const void *mine, void *all, size_t bytes);
// n doubles summed over the ranks, in place.
void cg_dist_host_sum(cg_dist *d, double *buf, int n);

// The fault of CGRAD_DIST_FAULT, if this rank has one at this step (ddp.c calls it each step).
void cg_dist_inject_fault(cg_dist *d);

#endif

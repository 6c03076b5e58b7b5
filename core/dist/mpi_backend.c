// mpi_backend.c: the MPI plugin, libcgrad_mpi.so (dist_backend.h): starting MPI, the local rank,
// and collectives over host buffers that give up after a timeout and say which ranks are missing.
// Not the training logic (core/dist/dist.c), not GPU buffers (nccl_backend.c). Exports only
// cg_mpi_backend_entry and calls no cg_ function. Any MPI-3 library: only standard calls.
#define _POSIX_C_SOURCE 200809L
#include "core/dist/dist_backend.h"
#include "core/dist/plugin_clock.h"

#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING 64
#define TAG_QUERY 1
#define TAG_ANSWER 2

static MPI_Comm comm = MPI_COMM_NULL;  // the training's communicator (a copy of the world)
static MPI_Comm watch = MPI_COMM_NULL; // the side channel that finds who is missing
static int my_rank, world_size;
static double timeout_s = 300.0;
static MPI_Request pending[MAX_PENDING]; // started float reductions
static int n_pending;
static long collectives;          // collectives started so far: what a rank answers a query with
static long query_in, answer_out; // the buffers of the standing receive and of the reply
static MPI_Request query_request = MPI_REQUEST_NULL;
static int oversubscribed;        // more ranks on this host than it has cores

static void mpi_error(int code, const char *what, char *err, size_t err_size) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    snprintf(err, err_size, "%s: %s", what, text);
}

// Answer a query from another rank (it wants to know we are alive), and post the next receive.
static void serve_queries(void) {
    int done = 0;
    MPI_Status status;
    while (query_request != MPI_REQUEST_NULL && MPI_Test(&query_request, &done, &status) == MPI_SUCCESS && done) {
        MPI_Request reply;
        answer_out = collectives;
        MPI_Isend(&answer_out, 1, MPI_LONG, status.MPI_SOURCE, TAG_ANSWER, watch, &reply);
        MPI_Request_free(&reply);
        MPI_Irecv(&query_in, 1, MPI_LONG, MPI_ANY_SOURCE, TAG_QUERY, watch, &query_request);
    }
}

// The timeout ran out: ask every other rank whether it is alive, wait a few seconds for the
// answers (serving their queries meanwhile), and name those that stayed silent.
static void find_missing(const char *what, int *reporter, char *err, size_t err_size) {
    static long answers[4096];
    static MPI_Request queries[4096], replies[4096];
    int n = world_size < 4096 ? world_size : 4096;
    long mine = collectives;
    for (int r = 0; r < n; r++) {
        queries[r] = replies[r] = MPI_REQUEST_NULL;
        if (r == my_rank) continue;
        MPI_Isend(&mine, 1, MPI_LONG, r, TAG_QUERY, watch, &queries[r]);
        MPI_Irecv(&answers[r], 1, MPI_LONG, r, TAG_ANSWER, watch, &replies[r]);
    }
    double grace = timeout_s < 5.0 ? timeout_s : 5.0, end = plugin_now() + grace;
    int answered = 1; // this rank
    while (plugin_now() < end && answered < n) {
        serve_queries();
        answered = 1;
        for (int r = 0; r < n; r++) {
            int done = 0;
            if (r != my_rank && MPI_Test(&replies[r], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done &&
                replies[r] == MPI_REQUEST_NULL)
                answered++;
        }
        plugin_nap(1e-3);
    }
    // Who stayed silent; the lowest rank that answered (or this one) reports.
    char list[256] = "";
    int silent = 0, lowest_alive = my_rank;
    for (int r = n - 1; r >= 0; r--) {
        if (r == my_rank) continue;
        int done = 0;
        MPI_Test(&replies[r], &done, MPI_STATUS_IGNORE);
        if (replies[r] == MPI_REQUEST_NULL) {
            if (r < lowest_alive) lowest_alive = r;
        } else {
            silent++;
        }
    }
    for (int r = 0; r < n; r++) {
        if (r == my_rank || replies[r] == MPI_REQUEST_NULL) continue;
        size_t len = strlen(list);
        if (len + 16 < sizeof list) snprintf(list + len, sizeof list - len, "%s%d", len ? ", " : "", r);
    }
    if (reporter) *reporter = lowest_alive == my_rank;
    if (silent == 0)
        snprintf(err, err_size, "%s waited %g s; every rank answers but the collective did not complete "
                 "(ranks at different steps: a different data set size or epoch count?)", what, timeout_s);
    else
        snprintf(err, err_size, "%s waited %g s for rank%s %s, which did not answer (died or hangs)", what, timeout_s,
                 silent > 1 ? "s" : "", list);
}

// Wait for `count` requests within the timeout, serving queries meanwhile.
static int wait_requests(MPI_Request *requests, int count, const char *what, int *reporter, char *err,
                         size_t err_size) {
    double start = plugin_now(), deadline = start + timeout_s;
    for (;;) {
        int done = 0, rc = MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            if (reporter) *reporter = 1;
            mpi_error(rc, what, err, err_size);
            return 1;
        }
        if (done) return 0;
        serve_queries();
        double t = plugin_now();
        if (t > deadline) {
            find_missing(what, reporter, err, err_size);
            return 1;
        }
        // MPI moves a large message on only inside MPI calls, a step at a time: keep calling while
        // the wait is short (giving the core away between calls when there are more ranks than
        // cores here, as Open MPI does, so that the others can run); past a second a peer is late
        // anyway, and a millisecond's nap between calls costs nothing.
        if (t - start > 1.0)
            plugin_nap(1e-3);
        else if (oversubscribed)
            sched_yield();
    }
}

static int mpi_init(int *rank, int *world, int *local_rank, int *local_world, char *err, size_t err_size) {
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        snprintf(err, err_size, "MPI_Init_thread failed (code %d)", rc);
        return 1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &watch);
    // Errors come back as codes (and become a message naming the rank) instead of ending the job.
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(watch, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &my_rank);
    MPI_Comm_size(comm, &world_size);
    MPI_Comm local;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, local_rank);
    MPI_Comm_size(local, local_world);
    oversubscribed = *local_world > sysconf(_SC_NPROCESSORS_ONLN);
    MPI_Comm_free(&local);
    MPI_Irecv(&query_in, 1, MPI_LONG, MPI_ANY_SOURCE, TAG_QUERY, watch, &query_request);
    *rank = my_rank;
    *world = world_size;
    return 0;
}

static void mpi_set_timeout(double seconds) { timeout_s = seconds; }

static void mpi_version(char *out, size_t size) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(text, &len);
    text[strcspn(text, ",\n")] = '\0'; // "Open MPI v4.1.4", without the package details
    snprintf(out, size, "%s", text);
}

static int mpi_allgather(const void *mine, void *all, size_t bytes, int *reporter, char *err, size_t err_size) {
    MPI_Request r;
    collectives++;
    int rc = MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, comm, &r);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Iallgather", err, err_size), 1;
    return wait_requests(&r, 1, "an all-gather", reporter, err, err_size);
}

static int mpi_broadcast(void *buf, size_t bytes, int root, int *reporter, char *err, size_t err_size) {
    MPI_Request r;
    collectives++;
    int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, comm, &r);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Ibcast", err, err_size), 1;
    return wait_requests(&r, 1, "a broadcast", reporter, err, err_size);
}

static int mpi_allreduce_f64(double *buf, int n, int op, int *reporter, char *err, size_t err_size) {
    MPI_Request r;
    collectives++;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, op ? MPI_MAX : MPI_SUM, comm, &r);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Iallreduce", err, err_size), 1;
    return wait_requests(&r, 1, "an all-reduce", reporter, err, err_size);
}

static int mpi_allreduce_f32_start(float *buf, int64_t n, int op, char *err, size_t err_size) {
    // MPI counts are int: a larger buffer goes in pieces.
    for (int64_t done = 0; done < n;) {
        int64_t piece = n - done < (1LL << 30) ? n - done : (1LL << 30);
        if (n_pending == MAX_PENDING) {
            snprintf(err, err_size, "more than %d all-reduces in flight (larger buckets needed)", MAX_PENDING);
            return 1;
        }
        collectives++;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + done, (int)piece, MPI_FLOAT, op ? MPI_MAX : MPI_SUM, comm,
                                &pending[n_pending]);
        if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Iallreduce", err, err_size), 1;
        n_pending++;
        done += piece;
    }
    return 0;
}

static void mpi_progress(void) {
    int done = 0;
    if (n_pending) MPI_Testall(n_pending, pending, &done, MPI_STATUSES_IGNORE);
    serve_queries();
}

static int mpi_wait_all(int *reporter, char *err, size_t err_size) {
    int rc = wait_requests(pending, n_pending, "the gradient all-reduce", reporter, err, err_size);
    if (rc == 0) n_pending = 0;
    return rc;
}

static void mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void mpi_finalize(void) {
    if (query_request != MPI_REQUEST_NULL) {
        MPI_Cancel(&query_request);
        MPI_Wait(&query_request, MPI_STATUS_IGNORE);
    }
    MPI_Comm_free(&watch);
    MPI_Comm_free(&comm);
    MPI_Finalize();
}

__attribute__((visibility("default"))) const cg_mpi_backend *cg_mpi_backend_entry(void) {
    static const cg_mpi_backend backend = {
        .init = mpi_init,
        .set_timeout = mpi_set_timeout,
        .version = mpi_version,
        .allgather = mpi_allgather,
        .broadcast = mpi_broadcast,
        .allreduce_f64 = mpi_allreduce_f64,
        .allreduce_f32_start = mpi_allreduce_f32_start,
        .progress = mpi_progress,
        .wait_all = mpi_wait_all,
        .abort = mpi_abort,
        .finalize = mpi_finalize,
    };
    return &backend;
}

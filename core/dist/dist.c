// dist.c: joining a distributed run: the launcher check, loading the MPI and NCCL plugins, the GPU of
// each rank, the build check across ranks, host-side collectives, and what happens when a rank fails
// (one line naming the rank, then the whole job stops: no rank is left waiting). The gradient
// buckets are in ddp.c. No MPI or NCCL header here: they are reached through dist_backend.h.
#define _POSIX_C_SOURCE 200809L
#include "dist_internal.h"
#include "../device_backend.h"
#include "../kernels.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tag[32] = "";           // "rank R: " once started
static cg_dist *running = NULL;     // the run, until cg_dist_finish (for the exit handler)
static volatile sig_atomic_t stopping = 0; // this rank is ending the job itself: stay quiet on SIGTERM
static char sigterm_line[96];       // written by the SIGTERM handler (no formatting there)

bool cg_dist_built(void) {
#ifdef CG_MPI_PLUGIN
    return true;
#else
    return false;
#endif
}

int cg_dist_rank(const cg_dist *d) { return d ? d->rank : 0; }
int cg_dist_world(const cg_dist *d) { return d ? d->world : 1; }
const char *cg_dist_tag(void) { return tag; }

// ---- failures ------------------------------------------------------------------------------------

void cg_dist_fail(cg_dist *d, int reporter, const char *what) {
    stopping = 1;
    if (reporter) fprintf(stderr, "%s: %s%s; stopping every rank\n", d->program, tag, what);
    fflush(stderr);
    if (!reporter) { // let the reporting rank print before the job ends
        struct timespec t = {1, 0};
        nanosleep(&t, NULL);
    }
    if (d->nccl) d->nccl->abort();
    d->mpi->abort(1);
    _exit(1); // MPI_Abort does not return; this is in case it did
}

// The launcher ends the other ranks with SIGTERM when one fails (or when the job is cancelled).
static void on_sigterm(int sig) {
    if (!stopping) {
        ssize_t ignored = write(STDERR_FILENO, sigterm_line, strlen(sigterm_line));
        (void)ignored;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

// A program that leaves with the run still open (an error on this rank only) ends the job, so that
// the other ranks do not wait for it until their timeout.
static void at_exit(void) {
    if (running == NULL) return;
    stopping = 1;
    if (running->nccl) running->nccl->abort();
    running->mpi->abort(1);
}

void cg_dist_inject_fault(cg_dist *d) {
    if (d->rank != d->fault_rank || d->steps != d->fault_step) return;
    if (!d->fault_hang) raise(SIGKILL); // as if the process crashed or ran out of memory
    for (;;) pause();                    // alive, but never reaching the next collective
}

#ifdef CG_NCCL_PLUGIN
// On GPUs: NCCL reports a peer that vanished (or a network error) asynchronously; nothing on the
// host waits on NCCL during training, so a thread looks every 100 ms.
static void *watch_nccl(void *arg) {
    cg_dist *d = arg;
    char err[512];
    while (!d->stop_watching) {
        if (d->nccl->poll(err, sizeof err)) {
            stopping = 1;
            fprintf(stderr, "%s: %s%s; stopping this rank\n", d->program, tag, err);
            d->nccl->abort();
            _exit(1); // the launcher then stops the others (MPI is not called from this thread)
        }
        struct timespec t = {0, 100 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return NULL;
}
#endif

// ---- the build hash --------------------------------------------------------------------------------

// FNV-1a (64 bits) of a file's bytes, continuing from h; h unchanged when it cannot be read.
static uint64_t hash_file(uint64_t h, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return h;
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
    fclose(f);
    return h;
}

// ---- plugins ---------------------------------------------------------------------------------------

static void *load_entry(const char *env, const char *built_path, const char *entry, const char *what, char *err,
                        size_t err_size) {
    const char *path = getenv(env);
    if (path == NULL || path[0] == '\0') path = built_path;
    // RTLD_GLOBAL: Open MPI loads components of its own that look for its symbols.
    void *handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (handle == NULL) {
        snprintf(err, err_size, "cannot load the %s plugin: %s", what, dlerror());
        return NULL;
    }
    void *fn = dlsym(handle, entry);
    if (fn == NULL) snprintf(err, err_size, "%s has no %s", path, entry);
    return fn;
}

static cg_status env_number(const char *name, double fallback, double min, double *out) {
    const char *text = getenv(name);
    *out = fallback;
    if (text == NULL || text[0] == '\0') return cg_ok();
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= min) || v > 1e9)
        return cg_error(CG_ERR_ARG, "%s: '%s' is not a number >= %g", name, text, min);
    *out = v;
    return cg_ok();
}

static cg_status parse_fault(cg_dist *d) {
    d->fault_rank = -1;
    const char *text = getenv("CGRAD_DIST_FAULT");
    if (text == NULL || text[0] == '\0') return cg_ok();
    int rank = -1, used = 0;
    long long step = -1;
    char kind[8] = "";
    if (sscanf(text, "%d:%lld:%7[a-z]%n", &rank, &step, kind, &used) != 3 || text[used] != '\0' || rank < 0 ||
        step < 0 || (strcmp(kind, "kill") && strcmp(kind, "hang")))
        return cg_error(CG_ERR_ARG, "CGRAD_DIST_FAULT: '%s' is not RANK:STEP:kill or RANK:STEP:hang", text);
    d->fault_rank = rank;
    d->fault_step = step;
    d->fault_hang = strcmp(kind, "hang") == 0;
    return cg_ok();
}

// ---- start -------------------------------------------------------------------------------------------

// A collective error every rank sees the same way (a different build, model or data set): every
// rank closes MPI and returns the status; rank 0 alone prints it (the others' stderr is closed).
static cg_status agreed_failure(cg_dist *d, cg_status s) {
    // The first rank to exit makes the launcher end the others with SIGTERM: rank 0 must still
    // print the reason, and every rank is on its way out anyway.
    signal(SIGTERM, SIG_IGN);
    if (d->rank != 0) {
        FILE *null = freopen("/dev/null", "w", stderr);
        (void)null;
    }
    if (d->watching) {
        d->stop_watching = 1;
        pthread_join(d->watchdog, NULL);
        d->watching = false;
    }
    if (d->nccl) d->nccl->finalize();
    d->mpi->finalize();
    running = NULL;
    return s;
}

typedef struct {
    uint64_t build; // hash of the executable and the plugins
    int32_t device; // CG_CPU or CG_CUDA
    int32_t index;  // the GPU
} rank_facts;

static cg_status start_nccl(cg_dist *d, char *err, size_t err_size) {
#ifndef CG_NCCL_PLUGIN
    (void)err, (void)err_size;
    return cg_error(CG_ERR_ARG, "--distributed on a GPU needs NCCL, and this build has none (the CUDA toolkit's "
                    "nccl.h and libnccl, or libnccl-dev, when configuring)");
#else
    cg_nccl_backend_entry_fn entry = NULL;
    *(void **)&entry = load_entry("CGRAD_NCCL_PLUGIN", CG_NCCL_PLUGIN, CG_NCCL_BACKEND_ENTRY, "NCCL", err, err_size);
    if (entry == NULL) cg_dist_fail(d, 1, err); // this rank only: the others must not wait for it
    const cg_nccl_backend *nccl = entry();
    unsigned char id[128] = {0};
    int reporter = 1;
    if (d->rank == 0 && nccl->unique_id(id, err, err_size)) cg_dist_fail(d, 1, err);
    if (d->mpi->broadcast(id, sizeof id, 0, &reporter, err, err_size)) cg_dist_fail(d, reporter, err);
    void *stream = cg_cuda_backend_loaded()->stream(d->device.index);
    if (nccl->init(id, d->world, d->rank, d->device.index, stream, d->timeout, err, err_size)) cg_dist_fail(d, 1, err);
    d->nccl = nccl;
    d->stop_watching = 0;
    d->watching = pthread_create(&d->watchdog, NULL, watch_nccl, d) == 0;
    return cg_ok();
#endif
}

cg_status cg_dist_start(const char *program, const char *device_text, cg_device *device, cg_dist **out) {
    *out = NULL;
    const char *launchers[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    bool launched = false;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) launched |= getenv(launchers[i]) != NULL;
    if (!launched)
        return cg_error(CG_ERR_ARG, "--distributed: no MPI launcher started this process (OMPI_COMM_WORLD_SIZE, "
                        "PMIX_RANK and PMI_RANK are unset): run mpirun -np N %s --distributed ...", program);
#ifndef CG_MPI_PLUGIN
    (void)device_text, (void)device;
    return cg_error(CG_ERR_ARG, "--distributed: this build has no MPI (install libopenmpi-dev and configure with "
                    "-DCGRAD_DIST=ON)");
#else
    cg_dist *d = cg_xcalloc(1, sizeof *d);
    snprintf(d->program, sizeof d->program, "%s", program);
    double bucket_mb = 1.0;
    cg_status s = env_number("CGRAD_DIST_TIMEOUT", 300.0, 0.1, &d->timeout);
    if (s.code == CG_OK) s = env_number("CGRAD_DIST_BUCKET_MB", 1.0, 0.0, &bucket_mb);
    if (s.code == CG_OK) s = parse_fault(d);
    if (s.code != CG_OK) return free(d), s;
    d->bucket_bytes = (size_t)(bucket_mb * 1048576.0);

    char err[512];
    cg_mpi_backend_entry_fn entry = NULL;
    *(void **)&entry = load_entry("CGRAD_MPI_PLUGIN", CG_MPI_PLUGIN, CG_MPI_BACKEND_ENTRY, "MPI", err, sizeof err);
    if (entry == NULL) return free(d), cg_error(CG_ERR_DEVICE, "--distributed: %s", err);
    d->mpi = entry();
    if (d->mpi->init(&d->rank, &d->world, &d->local_rank, &d->local_world, err, sizeof err))
        return free(d), cg_error(CG_ERR_DEVICE, "--distributed: %s", err);
    d->mpi->set_timeout(d->timeout);
    running = d;
    atexit(at_exit);
    snprintf(tag, sizeof tag, "rank %d: ", d->rank);
    snprintf(sigterm_line, sizeof sigterm_line, "%s: rank %d: stopped by the launcher (another rank failed, or the "
             "job was cancelled)\n", program, d->rank);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigaction(SIGTERM, &sa, NULL);
    if (d->rank != 0) {
        FILE *null = freopen("/dev/null", "w", stdout); // rank 0 alone prints
        (void)null;
    }

    // One process per GPU: a plain "cuda" is the GPU of this rank's place on its host.
    if (device->type == CG_CUDA && strcmp(device_text, "cuda") == 0) {
        int gpus = cg_cuda_device_count();
        device->index = gpus > 0 ? d->local_rank % gpus : 0;
    }
    d->device = *device;
    if (device->type == CG_CUDA && (s = start_nccl(d, err, sizeof err)).code != CG_OK) return agreed_failure(d, s);

    // Every rank must run the same build on the same kind of device.
    rank_facts mine = {hash_file(0xcbf29ce484222325ULL, "/proc/self/exe"), (int32_t)device->type, device->index};
#ifdef CG_NCCL_PLUGIN
    if (d->nccl) mine.build = hash_file(mine.build, getenv("CGRAD_NCCL_PLUGIN") ? getenv("CGRAD_NCCL_PLUGIN") : CG_NCCL_PLUGIN);
#endif
    mine.build = hash_file(mine.build, getenv("CGRAD_MPI_PLUGIN") ? getenv("CGRAD_MPI_PLUGIN") : CG_MPI_PLUGIN);
    rank_facts *all = cg_xcalloc((size_t)d->world, sizeof *all);
    int reporter = 1;
    if (d->mpi->allgather(&mine, all, sizeof mine, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
    s = cg_ok();
    for (int r = 1; r < d->world && s.code == CG_OK; r++) {
        if (all[r].device != all[0].device)
            s = cg_error(CG_ERR_ARG, "rank %d trains on the %s, rank 0 on the %s: give every rank the same --device", r,
                         all[r].device == CG_CPU ? "CPU" : "GPU", all[0].device == CG_CPU ? "CPU" : "GPU");
        else if (all[r].build != all[0].build)
            s = cg_error(CG_ERR_ARG, "rank %d runs another build than rank 0 (hash %016llx, rank 0's %016llx): start "
                         "the same cgrad binary on every rank", r, (unsigned long long)all[r].build,
                         (unsigned long long)all[0].build);
    }
    free(all);
    if (s.code != CG_OK) return agreed_failure(d, s);
    *out = d;
    return cg_ok();
#endif
}

void cg_dist_describe(const cg_dist *d, char *out, size_t size) {
    if (d == NULL) {
        snprintf(out, size, "not distributed");
        return;
    }
    char mpi[256];
    d->mpi->version(mpi, sizeof mpi);
    int v = d->nccl ? d->nccl->version() : 0;
    if (d->nccl)
        snprintf(out, size, "%d ranks (%d on this host), %s, NCCL %d.%d.%d", d->world, d->local_world, mpi,
                 v / 10000, v / 100 % 100, v % 100);
    else
        snprintf(out, size, "%d ranks (%d on this host), %s", d->world, d->local_world, mpi);
}

// ---- host-side collectives ---------------------------------------------------------------------------

cg_status cg_dist_agree(cg_dist *d, const char *what, int64_t value) {
    if (d == NULL) return cg_ok();
    int64_t *all = cg_xcalloc((size_t)d->world, sizeof *all);
    char err[512];
    int reporter = 1;
    if (d->mpi->allgather(&value, all, sizeof value, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
    cg_status s = cg_ok();
    for (int r = 1; r < d->world && s.code == CG_OK; r++)
        if (all[r] != all[0])
            s = cg_error(CG_ERR_ARG, "%s: rank %d has %lld, rank 0 %lld: every rank needs the same", what, r,
                         (long long)all[r], (long long)all[0]);
    free(all);
    return s.code == CG_OK ? s : agreed_failure(d, s);
}

void cg_dist_mean(cg_dist *d, int64_t samples, double *a, double *b) {
    if (d == NULL) return;
    double n = (double)samples, sums[3] = {n > 0 ? *a * n : 0.0, n > 0 ? *b * n : 0.0, n};
    char err[512];
    int reporter = 1;
    if (d->mpi->allreduce_f64(sums, 3, 0, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
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
        if (d->nccl->synchronize(d->timeout, err, sizeof err)) cg_dist_fail(d, 1, err);
        return;
    }
    if (d->mpi->allreduce_f32_start(buf, n, 0, err, sizeof err) || d->mpi->wait_all(&reporter, err, sizeof err))
        cg_dist_fail(d, reporter, err);
    if (d->world > 1) cg_cpu_kernels.scale(buf, buf, 1.0f / (float)d->world, n);
}

void cg_dist_finish(cg_dist *d) {
    if (d == NULL) return;
    char err[512];
    int reporter = 1;
    // Data parallelism keeps every rank's weights equal; a difference is a bug worth a line.
    if (d->params) {
        size_t bytes = (size_t)d->params->numel * sizeof(float);
        float *host = cg_xmalloc(bytes ? bytes : 1);
        cg_device_copy(cg_cpu(), host, d->device, d->params->values, bytes);
        uint64_t h = 0xcbf29ce484222325ULL, *all = cg_xcalloc((size_t)d->world, sizeof *all);
        for (size_t i = 0; i < bytes; i++) h = (h ^ ((unsigned char *)host)[i]) * 0x100000001b3ULL;
        if (d->mpi->allgather(&h, all, sizeof h, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
        for (int r = 1; r < d->world && d->rank == 0; r++)
            if (all[r] != all[0])
                fprintf(stderr, "%s: %swarning: rank %d ends with other weights than rank 0\n", d->program, tag, r);
        free(all);
        free(host);
    }
    if (d->watching) {
        d->stop_watching = 1;
        pthread_join(d->watchdog, NULL);
    }
    if (d->nccl) d->nccl->finalize();
    d->mpi->finalize();
    running = NULL;
    free(d->bucket_begin);
    free(d->bucket_end);
    free(d->bucket_of);
    free(d->last_use);
    free(d->waiting);
    free(d);
}

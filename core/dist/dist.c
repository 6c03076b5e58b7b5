// dist.c: joining a distributed run: the launcher check, loading the MPI and NCCL plugins, the GPU of
// each rank, the build check across ranks, and what happens when a rank fails (one line naming the
// rank, then the whole job stops: no rank is left waiting). Two ways in: an MPI launcher (mpirun;
// the way for several machines and for CPUs), or, on one machine with GPUs and NCCL but no MPI, N
// processes started by tools/launch_local.sh that meet through a file holding NCCL's id (llm.c
// offers the same). The host-side collectives are in collectives.c, the gradient buckets in ddp.c.
// No MPI or NCCL header here: they are reached through dist_backend.h.
#define _POSIX_C_SOURCE 200809L
#include "core/dist/dist_internal.h"
#include "core/device_backend.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tag[32] = "";           // "rank R: " once started
static cg_dist *running = NULL;     // the run, until it is closed (for the exit handler)
static volatile sig_atomic_t stopping = 0; // this rank is ending the job itself: stay quiet on SIGTERM
static char sigterm_line[128];      // written by the SIGTERM handler (no formatting there)

bool cg_dist_has_mpi(void) {
#ifdef CG_MPI_PLUGIN
    return true;
#else
    return false;
#endif
}

bool cg_dist_has_nccl(void) {
#ifdef CG_NCCL_PLUGIN
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
    if (d->mpi) d->mpi->abort(1);
    _exit(1); // without MPI the launcher ends the others when this process exits
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
    if (running->mpi) running->mpi->abort(1);
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

void cg_dist_close(cg_dist *d) {
    if (d->watching) {
        d->stop_watching = 1;
        pthread_join(d->watchdog, NULL);
        d->watching = false;
    }
    if (d->nccl) d->nccl->finalize();
    if (d->mpi) d->mpi->finalize();
    if (d->id_file[0] && d->rank == 0) unlink(d->id_file);
    running = NULL;
}

cg_status cg_dist_agreed_failure(cg_dist *d, cg_status s) {
    // The first rank to exit makes the launcher end the others with SIGTERM: rank 0 must still
    // print the reason, and every rank is on its way out anyway.
    signal(SIGTERM, SIG_IGN);
    if (d->rank != 0) {
        FILE *null = freopen("/dev/null", "w", stderr);
        (void)null;
    }
    cg_dist_close(d);
    return s;
}

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

// ---- plugins and settings --------------------------------------------------------------------------

#if defined(CG_MPI_PLUGIN) || defined(CG_NCCL_PLUGIN)
// The plugin's entry point; its path (the built one, or the environment's) in *path.
static void *load_entry(const char *env, const char *built_path, const char *entry, const char *what,
                        const char **path, char *err, size_t err_size) {
    *path = getenv(env);
    if (*path == NULL || (*path)[0] == '\0') *path = built_path;
    // RTLD_GLOBAL: Open MPI loads components of its own that look for its symbols.
    void *handle = dlopen(*path, RTLD_NOW | RTLD_GLOBAL);
    if (handle == NULL) {
        snprintf(err, err_size, "cannot load the %s plugin: %s", what, dlerror());
        return NULL;
    }
    void *fn = dlsym(handle, entry);
    if (fn == NULL) snprintf(err, err_size, "%s has no %s", *path, entry);
    return fn;
}
#endif

static cg_status env_number(const char *name, double fallback, double min, double max, double *out) {
    const char *text = getenv(name);
    *out = fallback;
    if (text == NULL || text[0] == '\0') return cg_ok();
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= min) || v > max)
        return cg_error(CG_ERR_ARG, "%s: '%s' is not a number from %g to %g", name, text, min, max);
    *out = v;
    return cg_ok();
}

static cg_status parse_settings(cg_dist *d) {
    double bucket_mb = 1.0;
    cg_status s = env_number("CGRAD_DIST_TIMEOUT", 300.0, 0.1, 1e7, &d->timeout);
    if (s.code == CG_OK) s = env_number("CGRAD_DIST_BUCKET_MB", 1.0, 0.0, 1e5, &bucket_mb);
    d->bucket_bytes = (size_t)(bucket_mb * 1048576.0);
    d->fault_rank = -1;
    const char *text = getenv("CGRAD_DIST_FAULT");
    if (s.code != CG_OK || text == NULL || text[0] == '\0') return s;
    int rank = -1, used = 0;
    long long step = -1;
    char kind[8] = "";
    if (sscanf(text, "%d:%lld:%7[a-z]%n", &rank, &step, kind, &used) != 3 || text[used] != '\0' || rank < 0 ||
        step < 1 || (strcmp(kind, "kill") && strcmp(kind, "hang")))
        return cg_error(CG_ERR_ARG, "CGRAD_DIST_FAULT: '%s' is not RANK:STEP:kill or RANK:STEP:hang", text);
    d->fault_rank = rank;
    d->fault_step = step;
    d->fault_hang = strcmp(kind, "hang") == 0;
    return cg_ok();
}

// ---- the two ways in -------------------------------------------------------------------------------

static cg_status join_mpi(cg_dist *d, uint64_t *build) {
#ifndef CG_MPI_PLUGIN
    (void)d, (void)build;
    return cg_error(CG_ERR_ARG, "--distributed: an MPI launcher started this process, but this build has no MPI "
                    "(install libopenmpi-dev and configure with -DCGRAD_DIST=ON)");
#else
    char err[512];
    const char *path;
    cg_mpi_backend_entry_fn entry = NULL;
    *(void **)&entry = load_entry("CGRAD_MPI_PLUGIN", CG_MPI_PLUGIN, CG_MPI_BACKEND_ENTRY, "MPI", &path, err, sizeof err);
    if (entry == NULL) return cg_error(CG_ERR_DEVICE, "--distributed: %s", err);
    *build = hash_file(*build, path);
    d->mpi = entry();
    if (d->mpi->init(&d->rank, &d->world, &d->local_rank, &d->local_world, err, sizeof err)) {
        d->mpi = NULL;
        return cg_error(CG_ERR_DEVICE, "--distributed: %s", err);
    }
    d->mpi->set_timeout(d->timeout);
    return cg_ok();
#endif
}

// tools/launch_local.sh: CGRAD_DIST_RANK, CGRAD_DIST_WORLD, CGRAD_DIST_ID_FILE (and optionally
// CGRAD_DIST_LOCAL_RANK) in each process's environment.
static cg_status join_file(cg_dist *d) {
    const char *names[] = {"CGRAD_DIST_RANK", "CGRAD_DIST_WORLD"};
    double v[2];
    for (int i = 0; i < 2; i++) {
        if (getenv(names[i]) == NULL) return cg_error(CG_ERR_ARG, "--distributed: CGRAD_DIST_WORLD is set but %s is not", names[i]);
        cg_status s = env_number(names[i], 0, i, 1 << 20, &v[i]);
        if (s.code != CG_OK) return s;
    }
    d->rank = (int)v[0];
    d->world = (int)v[1];
    double local = d->rank;
    cg_status s = env_number("CGRAD_DIST_LOCAL_RANK", d->rank, 0, 1 << 20, &local);
    if (s.code != CG_OK) return s;
    d->local_rank = (int)local;
    d->local_world = d->world;
    const char *file = getenv("CGRAD_DIST_ID_FILE");
    if (d->rank >= d->world || file == NULL || file[0] == '\0')
        return cg_error(CG_ERR_ARG, "--distributed: CGRAD_DIST_RANK %d of CGRAD_DIST_WORLD %d with CGRAD_DIST_ID_FILE "
                        "%s: start the processes with tools/launch_local.sh N", d->rank, d->world, file ? file : "unset");
    snprintf(d->id_file, sizeof d->id_file, "%s", file);
    return cg_ok();
}

#ifdef CG_NCCL_PLUGIN
// NCCL's id from rank 0 to the others: through MPI, or through the file (written whole under another
// name, then renamed, so that a reader never sees half of it).
static void share_nccl_id(cg_dist *d, const cg_nccl_backend *nccl, unsigned char *id, size_t size) {
    char err[700]; // room for the file's path
    int reporter = 1;
    if (d->rank == 0 && nccl->unique_id(id, err, sizeof err)) cg_dist_fail(d, 1, err);
    if (d->mpi) {
        if (d->mpi->broadcast(id, size, 0, &reporter, err, sizeof err)) cg_dist_fail(d, reporter, err);
        return;
    }
    if (d->rank == 0) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.part", d->id_file);
        FILE *f = fopen(tmp, "wb");
        if (f == NULL || fwrite(id, 1, size, f) != size || fclose(f) != 0 || rename(tmp, d->id_file) != 0) {
            snprintf(err, sizeof err, "cannot write NCCL's id to %s", d->id_file);
            cg_dist_fail(d, 1, err);
        }
        return;
    }
    double deadline = cg_seconds() + d->timeout;
    for (;;) {
        FILE *f = fopen(d->id_file, "rb");
        size_t n = f ? fread(id, 1, size, f) : 0;
        if (f) fclose(f);
        if (n == size) return;
        if (cg_seconds() > deadline) {
            snprintf(err, sizeof err, "no NCCL id in %s after %g s (did rank 0 start?)", d->id_file, d->timeout);
            cg_dist_fail(d, 1, err);
        }
        struct timespec t = {0, 10 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
}

#endif

static cg_status start_nccl(cg_dist *d, uint64_t *build) {
#ifndef CG_NCCL_PLUGIN
    (void)build;
    return cg_error(CG_ERR_ARG, "--distributed on a GPU needs NCCL, and this build has none (the CUDA toolkit's "
                    "nccl.h and libnccl, libnccl-dev, or -DNCCL_ROOT=DIR when configuring)");
#else
    char err[512];
    const char *path;
    cg_nccl_backend_entry_fn entry = NULL;
    *(void **)&entry = load_entry("CGRAD_NCCL_PLUGIN", CG_NCCL_PLUGIN, CG_NCCL_BACKEND_ENTRY, "NCCL", &path, err, sizeof err);
    if (entry == NULL) cg_dist_fail(d, 1, err); // this rank only: the others must not wait for it
    *build = hash_file(*build, path);
    const cg_nccl_backend *nccl = entry();
    unsigned char id[128] = {0};
    share_nccl_id(d, nccl, id, sizeof id);
    void *stream = cg_cuda_backend_loaded()->stream(d->device.index);
    if (nccl->init(id, d->world, d->rank, d->device.index, stream, d->timeout, err, sizeof err)) cg_dist_fail(d, 1, err);
    d->nccl = nccl;
    d->stop_watching = 0;
    d->watching = pthread_create(&d->watchdog, NULL, watch_nccl, d) == 0;
    return cg_ok();
#endif
}

// ---- start -------------------------------------------------------------------------------------------

typedef struct {
    uint64_t build; // hash of the executable and the plugins
    int32_t device; // CG_CPU or CG_CUDA
    int32_t index;  // the GPU
} rank_facts;

cg_status cg_dist_start(const char *program, const char *device_text, cg_device *device, cg_dist **out) {
    *out = NULL;
    const char *launchers[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    bool by_mpi = false, by_file = getenv("CGRAD_DIST_WORLD") != NULL;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) by_mpi |= getenv(launchers[i]) != NULL;
    if (!by_mpi && !by_file)
        return cg_error(CG_ERR_ARG, "--distributed: no MPI launcher started this process (OMPI_COMM_WORLD_SIZE, "
                        "PMIX_RANK and PMI_RANK are unset): run mpirun -np N %s --distributed ...", program);
    if (!by_mpi && device->type != CG_CUDA)
        return cg_error(CG_ERR_ARG, "--distributed: processes started without MPI (CGRAD_DIST_WORLD) meet through "
                        "NCCL, on GPUs only: on CPUs run mpirun -np N %s --distributed ...", program);
    cg_dist *d = cg_xcalloc(1, sizeof *d);
    snprintf(d->program, sizeof d->program, "%s", program);
    uint64_t build = hash_file(0xcbf29ce484222325ULL, "/proc/self/exe");
    cg_status s = parse_settings(d);
    if (s.code == CG_OK) s = by_mpi ? join_mpi(d, &build) : join_file(d);
    if (s.code != CG_OK) return free(d), s;
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
    if (device->type == CG_CUDA && (s = start_nccl(d, &build)).code != CG_OK) return cg_dist_agreed_failure(d, s);

    // Every rank must run the same build on the same kind of device.
    rank_facts mine = {build, (int32_t)device->type, device->index};
    rank_facts *all = cg_xcalloc((size_t)d->world, sizeof *all);
    cg_dist_host_allgather(d, &mine, all, sizeof mine);
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
    if (s.code != CG_OK) return cg_dist_agreed_failure(d, s);
    *out = d;
    return cg_ok();
}

// threads.c: how many CPU threads the OpenMP loops use, and how the threads wait
// for each other between loops (the wait policy, chosen before OpenMP starts), and the scratch
// buffers each thread keeps for the kernels between calls. It does not pin threads to cores.
#define _GNU_SOURCE // setenv, execv
#include "kernels/cpu/threads.h"
#include "core/device.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

void cg_set_num_threads(int n) {
    CG_CHECK(n >= 1, "thread count %d", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

int cg_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Between two parallel loops, a thread that has finished its share waits for the others. GCC's
// OpenMP (libgomp) lets it spin, busy, for a while (GOMP_SPINCOUNT, 300000 turns by default)
// before it sleeps. On cores of its own that saves the microseconds of a wake-up; when another
// program holds one of the cores, the spinning thread holds the other, the thread that shares a
// core with the other program runs at half speed, and every loop waits for it: two threads ran
// at half the speed of one (lesson 03). Sleeping at once (OMP_WAIT_POLICY=passive) frees the
// core for whichever thread still has work. Measured on a 2-core Xeon (lesson 03): on idle cores
// passive lost about 3 % (a wake-up per parallel loop); with one core taken by another program,
// two passive threads ran at 1.9x one thread and 2.5x two spinning ones, where two spinning
// threads fell below one. So cnn sleeps at once unless the environment says otherwise.
// On a Zen 5 VM the wake-ups cost more: idle, passive threads trained the tutorial CNN 8 to 12 %
// slower than threads that spin 1,000 turns first (bf16 25,329 against 28,384 images/s, fp32
// 17,985 against 19,882), and the short spin lost where a core was busy (two fixed threads, bf16
// 12,107 against 14,422). A tuned run (thread_tuner.c) leaves two threads for one where they lose,
// and there the short spin lost nothing (a core busy, bf16 15,417 against 15,237 passive and 14,714
// on one thread; fp32 10,326, 10,259 and 10,361).
// So a tuned run spins briefly and the others sleep at once; OMP_WAIT_POLICY=passive is set in
// both cases, for OpenMP runtimes that do not read GOMP_SPINCOUNT (libgomp takes the count over
// the policy). libgomp reads these variables once, as the program starts, before main: so the
// program sets them and starts itself again (execv of /proc/self/exe, same arguments), once;
// CGRAD_WAIT_POLICY_SET marks the second start.
#define CG_WAIT_POLICY "passive"

static const char *policy_origin = "OpenMP's default"; // what cg_threads_print says

void cg_threads_setup(int argc, char **argv, bool tuned) {
    (void)argc, (void)tuned;
#ifdef _OPENMP
    if (getenv("CGRAD_WAIT_POLICY_SET")) { // the second start
        policy_origin = "set by cgrad";
#ifdef __linux__
        // Started as /proc/self/exe, the process would be named "exe" (ps, top): its own name back.
        const char *name = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
        prctl(PR_SET_NAME, name ? name + 1 : argc > 0 && argv[0] ? argv[0] : "cgrad", 0, 0, 0);
#endif
        return;
    }
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) {
        policy_origin = "from the environment";
        return;
    }
#ifdef __linux__
    if (setenv("OMP_WAIT_POLICY", CG_WAIT_POLICY, 1) == 0 &&
        (!tuned || setenv("GOMP_SPINCOUNT", CG_TUNED_SPINCOUNT, 1) == 0) &&
        setenv("CGRAD_WAIT_POLICY_SET", "1", 1) == 0) {
        fflush(NULL);
        execv("/proc/self/exe", argv);
    }
    // execv returned: it failed; run on with OpenMP's default (the variables set now are not read).
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("CGRAD_WAIT_POLICY_SET");
#endif
#else
    (void)argv;
#endif
}

const char *cg_threads_describe(void) {
    static char text[160];
    size_t size = sizeof text;
#ifdef _OPENMP
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    char how[96];
    if (policy || spin)
        snprintf(how, sizeof how, "%s%s%s%s", policy ? "OMP_WAIT_POLICY=" : "", policy ? policy : "",
                 policy && spin ? " " : "", spin ? "GOMP_SPINCOUNT=" : "");
    if (spin) snprintf(how + strlen(how), sizeof how - strlen(how), "%s", spin);
    snprintf(text, size, "%d OpenMP thread%s, waiting %s (%s)", cg_get_num_threads(),
             cg_get_num_threads() == 1 ? "" : "s", policy || spin ? how : "by spinning, then sleeping",
             policy_origin);
#else
    snprintf(text, size, "1 thread (built without OpenMP)");
#endif
    return text;
}

// Each thread's buffers, a list through their `next`, freed by free_buffers when the thread ends
// (a POSIX thread-specific key's destructor; the main thread's are freed by the process's end).
static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *head) {
    for (cg_thread_buffer *b = head, *next; b != NULL; b = next) {
        next = b->next;
        free(b->data);
        b->data = NULL, b->bytes = 0, b->next = NULL, b->listed = false;
    }
}

static void make_buffers_key(void) {
    CG_CHECK(pthread_key_create(&buffers_key, free_buffers) == 0, "pthread_key_create failed");
}

// From a 64-byte boundary (posix_memalign; threads.h says why), the size rounded up to whole lines.
void *cg_thread_buffer_get(cg_thread_buffer *b, int64_t bytes) {
    if (!b->listed) { // this thread's first use of it: on the thread's list
        pthread_once(&buffers_once, make_buffers_key);
        b->next = pthread_getspecific(buffers_key);
        CG_CHECK(pthread_setspecific(buffers_key, b) == 0, "pthread_setspecific failed");
        b->listed = true;
    }
    if (b->bytes < bytes) {
        free(b->data);
        size_t rounded = ((size_t)(bytes > 0 ? bytes : 1) + 63) / 64 * 64;
        b->data = NULL;
        CG_CHECK(posix_memalign(&b->data, 64, rounded) == 0, "out of host memory asking for %zu bytes", rounded);
        b->bytes = bytes;
    }
    return b->data;
}

// threads.h: the CPU's threads: how many the OpenMP loops use, how they wait for each other, and
// each thread's scratch buffers (kernels/cpu/threads.c, which defines them).
#ifndef CG_KERNELS_CPU_THREADS_H
#define CG_KERNELS_CPU_THREADS_H

#include <stdbool.h>
#include <stdint.h>

// CPU threads for the OpenMP loops (n >= 1), the BLAS library's products included (OpenBLAS
// itself runs on one thread; the loops share a product's pieces: blas.h). Every kernel gives the
// same bits with any count, so the thread tuner may change it between two steps. Without a call,
// OpenMP's default.
void cg_set_num_threads(int n);
int cg_get_num_threads(void);
// The wait policy of the OpenMP threads (kernels/cpu/threads.c): call in main before anything
// starts OpenMP's threads. When neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, it sets
// OMP_WAIT_POLICY=passive (threads sleep as soon as they wait: another program on one of the cores
// then does not halve the speed) and, for a run whose thread tuner may move it to fewer threads
// when other programs slow it (tuned: examples/cnn), GOMP_SPINCOUNT=CG_TUNED_SPINCOUNT as well
// (GCC's OpenMP then spins that many turns, some microseconds, before it sleeps: a wake-up saved
// at most parallel loops), and starts the program again with the same arguments, since OpenMP
// reads them only at start.
void cg_threads_setup(int argc, char **argv, bool tuned);
#define CG_TUNED_SPINCOUNT "1000"
// One line for the user, e.g. "2 OpenMP threads, waiting OMP_WAIT_POLICY=passive (set by cgrad)"
// (a static buffer, rewritten by each call).
const char *cg_threads_describe(void);

// A scratch buffer that a kernel keeps between calls, one per thread: declare it
// `static _Thread_local cg_thread_buffer b;` (or an array of them, one per use) and ask for it
// with cg_thread_buffer_get(&b, bytes): the buffer, grown when it is smaller than `bytes` (its
// contents are then lost), never shrunk. Each kernel file keeps its own, so that a kernel that
// calls another (a convolution its GEMM) never gets a buffer it is still using.
// Every buffer starts on a 64-byte boundary (a cache line). malloc gives 16 bytes, and a kernel's
// 64-byte loads of a buffer 16, 32 or 48 bytes off each straddle two lines: the tutorial's second
// convolution lost 10 to 15 % in fp32 in some runs and not in others, and in bf16 (whose scratch
// was still malloc's) its forward ran at 460 GFLOP/s instead of 630 and its backward at 350 to
// 450 instead of 550, depending on which buffers earlier kernels had left in the heap (a new
// first-layer kernel that allocated less moved them and cost the bf16 backward a quarter).
// A thread's buffers are freed when the thread ends: GCC's OpenMP ends the threads a smaller team
// leaves out (3 threads, then 2: the third ends, and a later team of 3 starts a new one), so that
// a thread count moving between N and N - 1 (the thread tuner, N >= 3) lost each ended thread's
// scratch, megabytes a time.
typedef struct cg_thread_buffer {
    void *data;
    int64_t bytes;
    struct cg_thread_buffer *next; // the thread's other buffers (threads.c frees them all at its end)
    bool listed;                   // on this thread's list
} cg_thread_buffer;
void *cg_thread_buffer_get(cg_thread_buffer *b, int64_t bytes);
// The same as `floats` floats.
static inline float *cg_thread_floats_aligned(cg_thread_buffer *b, int64_t floats) {
    return cg_thread_buffer_get(b, floats * (int64_t)sizeof(float));
}

#endif

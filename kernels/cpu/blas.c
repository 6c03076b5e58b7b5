// blas.c: OpenBLAS, loaded with dlopen the first time a product is large enough to need it.
// Loading it costs about 2.5 ms at process start (the library and its Fortran runtime), as
// much as a tenth of training the course's SimpleNN, which never multiplies matrices that
// large. The build writes the library's path in CG_OPENBLAS_PATH; without it, or when it cannot
// be loaded, every product uses the engine's own loops (gemm.c).
#define _GNU_SOURCE // RTLD_DEFAULT
#include "kernels/cpu/blas.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// cblas_sgemm's C signature (the CBLAS standard, as OpenBLAS declares it in cblas.h).
typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 }; // CBLAS's enum values

static struct {
    bool tried;
    sgemm_fn sgemm;
    void (*set_num_threads)(int);
    char *(*get_corename)(void);
    int threads; // asked for before the library was loaded (0: none)
} blas;

// Debian's OpenBLAS 0.3.21 does not recognise some recent CPUs and falls back to its generic
// "Prescott" core, about 5x slower. Tell the user once how to choose the right one.
static void warn_generic_core(void) {
    const char *core = blas.get_corename ? blas.get_corename() : NULL;
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2");
    bool avx512 = __builtin_cpu_supports("avx512f");
    if (core && (avx2 || avx512) && (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 ||
                                     strcmp(core, "Nehalem") == 0 || strcmp(core, "Atom") == 0 ||
                                     strcmp(core, "Barcelona") == 0)) {
        fprintf(stderr,
                "cgrad: warning: OpenBLAS is running its generic '%s' core on a CPU with %s; matrix products "
                "will be several times slower. Set OPENBLAS_CORETYPE=%s before running.\n",
                core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
    }
}

static void load(void) {
    blas.tried = true;
#ifdef CG_OPENBLAS_PATH
    // A pthreads build of OpenBLAS (Debian's is built on OpenMP) starts its pool of threads as it is
    // loaded, one per core unless OPENBLAS_NUM_THREADS says otherwise, and they spin a while after
    // each product. With a count already asked for, the pool is made that size (the user's own
    // OPENBLAS_NUM_THREADS wins): `--threads 1` on a 16-core machine had started 15 more threads
    // that burned CPU time between products (bench_cpu_peak, which times with this process's CPU
    // time, saw the first linear layer at 4 % of the peak instead of 67 %).
    if (blas.threads > 0) {
        char count[16];
        snprintf(count, sizeof count, "%d", blas.threads);
        setenv("OPENBLAS_NUM_THREADS", count, 0);
    }
    void *handle = dlopen(CG_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "cgrad: note: %s; large matrix products use the engine's own loops\n", dlerror());
        return;
    }
    // POSIX's way to turn dlsym's pointer into a function pointer.
    *(void **)&blas.sgemm = dlsym(handle, "cblas_sgemm");
    *(void **)&blas.set_num_threads = dlsym(handle, "openblas_set_num_threads");
    *(void **)&blas.get_corename = dlsym(handle, "openblas_get_corename");
    if (blas.sgemm == NULL) return;
    if (blas.threads > 0 && blas.set_num_threads) blas.set_num_threads(blas.threads);
    warn_generic_core();
#endif
}

bool cg_blas_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   const float *B, float beta, float *C) {
    if (!blas.tried) load();
    if (blas.sgemm == NULL) return false;
    // Debian's OpenBLAS is built on OpenMP and takes its thread count from the OpenMP loops' at each
    // call. Its one-thread and threaded drivers cut K into blocks differently for some sizes (K = 784:
    // other bits), so the product runs with the count set for the library (cg_blas_set_num_threads),
    // not with the loops' when the thread tuner has moved them (cg_set_loop_threads, threads.h).
    int loops = 0;
#ifdef _OPENMP
    if (blas.threads > 0 && omp_get_max_threads() != blas.threads) loops = omp_get_max_threads();
    if (loops) omp_set_num_threads(blas.threads);
#endif
    blas.sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS, trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)M,
               (int)N, (int)K, alpha, A, trans_a ? (int)M : (int)K, B, trans_b ? (int)K : (int)N, beta, C, (int)N);
#ifdef _OPENMP
    if (loops) omp_set_num_threads(loops);
#endif
    return true;
}

const char *cg_blas_core(void) {
    if (!blas.tried) load();
    return blas.get_corename ? blas.get_corename() : NULL;
}

void cg_blas_set_num_threads(int n) {
    blas.threads = n;
    if (blas.set_num_threads) blas.set_num_threads(n);
}

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
} blas;

// Debian's OpenBLAS is built on OpenMP: at each call it takes its thread count from OpenMP's
// (omp_get_max_threads, outside an active parallel region), and openblas_set_num_threads sets
// OpenMP's, the count of cgrad's own loops (after loading, a `--threads 2` run went on at one
// thread's speed). So OpenBLAS is called with OpenMP's count at 1 for the calling thread, and the
// count is put back after; inside a parallel region this touches only that thread's setting.
static int openmp_threads_to_one(void) {
#ifdef _OPENMP
    int n = omp_get_max_threads();
    if (n != 1) omp_set_num_threads(1);
    return n;
#else
    return 1;
#endif
}
static void openmp_threads_back(int n) {
#ifdef _OPENMP
    if (n != 1) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

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
    // OpenBLAS runs every product on one thread, whatever the machine: cgrad's OpenMP threads share
    // the pieces of a large product (cg_blas_sgemm). A pthreads build of OpenBLAS (Debian's is built
    // on OpenMP) starts its own pool of threads as it is loaded, one per core unless
    // OPENBLAS_NUM_THREADS says otherwise, and they spin a while after each product: `--threads 1`
    // on a 16-core machine had started 15 threads that burned CPU time between products
    // (bench_cpu_peak, which times with this process's CPU time, saw the first linear layer at 4 %
    // of the peak instead of 67 %), and on two threads that pool fought OpenMP's for the cores.
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    int threads = openmp_threads_to_one();
    void *handle = dlopen(CG_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "cgrad: note: %s; large matrix products use the engine's own loops\n", dlerror());
        openmp_threads_back(threads);
        return;
    }
    // POSIX's way to turn dlsym's pointer into a function pointer.
    *(void **)&blas.sgemm = dlsym(handle, "cblas_sgemm");
    *(void **)&blas.set_num_threads = dlsym(handle, "openblas_set_num_threads");
    *(void **)&blas.get_corename = dlsym(handle, "openblas_get_corename");
    if (blas.sgemm != NULL && blas.set_num_threads) blas.set_num_threads(1);
    openmp_threads_back(threads);
    if (blas.sgemm != NULL) warn_generic_core();
#endif
}

// One piece of C: rows [lo, hi) (along M) or columns [lo, hi) (along N), a cblas_sgemm of its own.
static void sgemm_piece(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                        const float *B, float beta, float *C, bool along_m, int64_t lo, int64_t hi) {
    int lda = trans_a ? (int)M : (int)K, ldb = trans_b ? (int)K : (int)N, ldc = (int)N; // the whole matrices' strides
    if (along_m) {
        A += trans_a ? lo : lo * K; // op(A)'s rows lo.. : A's rows, or A's columns when transposed
        C += lo * N;
        M = hi - lo;
    } else {
        B += trans_b ? lo * K : lo; // op(B)'s columns lo.. : B's columns, or B's rows when transposed
        C += lo;
        N = hi - lo;
    }
    blas.sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS, trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)M,
               (int)N, (int)K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int cg_blas_pieces(int64_t M, int64_t N, int64_t K) {
    int64_t side = M > N ? M : N;
    if (M * N * K < CG_BLAS_PIECE_WORK || side < 2 * CG_BLAS_PIECE_ALIGN) return 1;
    return side >= 1024 ? 4 : 2;
}

bool cg_blas_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   const float *B, float beta, float *C) {
    if (!blas.tried) load();
    if (blas.sgemm == NULL) return false;
    // The pieces split the longer side of C, so that the operand every piece reads whole (and packs
    // again) is the smaller one; their boundaries fall on multiples of CG_BLAS_PIECE_ALIGN.
    int pieces = cg_blas_pieces(M, N, K);
    bool along_m = M >= N;
    int64_t side = along_m ? M : N;
#pragma omp parallel for schedule(static) if (pieces > 1)
    for (int p = 0; p < pieces; p++) {
        int64_t lo = side * p / pieces / CG_BLAS_PIECE_ALIGN * CG_BLAS_PIECE_ALIGN;
        int64_t hi = p == pieces - 1 ? side : side * (p + 1) / pieces / CG_BLAS_PIECE_ALIGN * CG_BLAS_PIECE_ALIGN;
        int threads = openmp_threads_to_one();
        sgemm_piece(trans_a, trans_b, M, N, K, alpha, A, B, beta, C, along_m, lo, hi);
        openmp_threads_back(threads);
    }
    return true;
}

const char *cg_blas_core(void) {
    if (!blas.tried) load();
    return blas.get_corename ? blas.get_corename() : NULL;
}

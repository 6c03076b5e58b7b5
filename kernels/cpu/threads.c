// threads.c: how many CPU threads OpenMP loops and the BLAS library use.
#include "core/device.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/cpu/blas.h"

void cg_set_num_threads(int n) {
    CG_CHECK(n >= 1, "thread count %d", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    cg_blas_set_num_threads(n);
}

int cg_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

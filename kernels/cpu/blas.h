// blas.h: the CPU's large matrix products through OpenBLAS, loaded on first use (blas.c).
#ifndef CG_KERNELS_CPU_BLAS_H
#define CG_KERNELS_CPU_BLAS_H

#include "core/common.h"

// Row-major C(M,N) = alpha op(A) op(B) + beta C through cblas_sgemm; false (nothing done) when
// no BLAS library could be loaded.
bool cg_blas_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   const float *B, float beta, float *C);
// The name of the kernels OpenBLAS chose for this CPU ("SkylakeX", "Haswell", ...: its
// openblas_get_corename, which OPENBLAS_CORETYPE overrides), loading the library if it is not yet;
// NULL without it.
const char *cg_blas_core(void);
// Threads for the BLAS library, applied now or when it is loaded.
void cg_blas_set_num_threads(int n);

#endif

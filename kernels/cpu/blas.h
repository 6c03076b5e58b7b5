// blas.h: the CPU's large matrix products through OpenBLAS, loaded on first use (blas.c).
#ifndef CG_KERNELS_CPU_BLAS_H
#define CG_KERNELS_CPU_BLAS_H

#include "core/common.h"

// Row-major C(M,N) = alpha op(A) op(B) + beta C through cblas_sgemm; false (nothing done) when
// no BLAS library could be loaded. OpenBLAS runs on one thread; a large product is cut into
// cg_blas_pieces pieces along the longer side of C, a cblas_sgemm each, and the OpenMP threads
// share them. The pieces depend on the shape alone, never on the thread count: each value of C is
// computed by the same call with 1 thread or 16, so the bits are the same. (OpenBLAS's own
// threaded driver cuts K into blocks differently from its one-thread driver for some sizes, and
// its Haswell kernels round a row differently in pieces of other heights: other bits with other
// thread counts, which the thread tuner, switching counts mid-run, cannot have.)
bool cg_blas_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   const float *B, float beta, float *C);
// The name of the kernels OpenBLAS chose for this CPU ("SkylakeX", "Haswell", ...: its
// openblas_get_corename, which OPENBLAS_CORETYPE overrides), loading the library if it is not yet;
// NULL without it.
const char *cg_blas_core(void);
// The pieces of an M x N x K product: 1 below CG_BLAS_PIECE_WORK multiply-adds (waking a second
// thread would cost more than it gains: the tutorial CNN's last layer, 128 x 10 x 128, ran at
// 8 GFLOP/s in two pieces on two threads against 68 whole), else 2, or 4 where the longer side is
// 1,024 or more. Each piece packs the other operand again: the tutorial's first linear layer (128 x 128 x 3,136)
// in two pieces ran 10 % slower on one thread than whole, in four pieces 33 % (Zen 5, SkylakeX
// kernels); its gradients (128 x 3,136 x 128) lost 1 % in two and 2 % in four.
int cg_blas_pieces(int64_t M, int64_t N, int64_t K);
#define CG_BLAS_PIECE_WORK (1 << 21)
#define CG_BLAS_PIECE_ALIGN 16 // piece boundaries on multiples of 16 rows or columns (a register tile's)

#endif

// whitening.h: the data-dependent first layer of the fast CIFAR network (after airbench94, Keller
// Jordan 2024): a k x k convolution whose filters are the eigenvectors of the covariance of the
// training images' k x k patches, scaled by 1 / sqrt(eigenvalue + eps), and their negatives. The
// eigenvectors come from a cyclic Jacobi eigen-solver for small symmetric matrices (12 x 12 for
// RGB 2 x 2 patches). Not a general linear-algebra library: no large or non-symmetric matrices.
#ifndef CG_EXAMPLES_WHITENING_H
#define CG_EXAMPLES_WHITENING_H

#include "cgrad.h"

// Eigenvalues and eigenvectors of the symmetric n x n matrix a (row-major doubles; only its
// symmetric part is read, and it is overwritten), by the cyclic Jacobi method (Jacobi 1846; Golub
// and Van Loan, "Matrix Computations", 4th ed., section 8.5): plane rotations, each zeroing one
// off-diagonal pair, swept over every pair until the off-diagonal part is below 1e-15 of the
// whole (it converges quadratically; a 12 x 12 matrix takes 6 to 10 sweeps).
// values: n doubles, largest first; vectors: n x n, row i the unit eigenvector of values[i].
// Returns the sweeps taken, or -1 when 100 sweeps were not enough (never seen for symmetric input).
int cg_symmetric_eigen(double *a, int n, double *values, double *vectors);

// Adds the k x k patches of n images (n x C x H x W floats, NCHW; every position, stride 1, no
// padding) to sum ((C k k) x (C k k) doubles, the upper triangle of the sum of p p^T) and their count,
// n (H - k + 1) (W - k + 1), to *patches. A patch's element (c, i, j) is at index c k k + i k + j,
// PyTorch's unfold order. Runs on the OpenMP threads; the result has the same bits for any count.
void cg_patch_covariance_add(const float *images, int64_t n, int64_t C, int64_t H, int64_t W, int k, double *sum,
                             int64_t *patches);

// Sets weight (2 D, C, k, k) with D = C k k from the patch sum and count of cg_patch_covariance_add:
// covariance = sum / patches (uncentred, as airbench), filter i (i < D) = eigenvector i / sqrt(
// eigenvalue i + eps), largest eigenvalue first; filter D + i = -filter i (as bench/torch_models.py's
// init_whitening). Errors: CG_ERR_ARG when no patch was added or the solver did not converge.
cg_status cg_whitening_set(cg_tensor *weight, const double *sum, int64_t patches, float eps);

#endif

// whitening.c: the Jacobi eigen-solver, the patch covariance and the whitening filters. Host code
// in doubles, run once before training; the filters are then copied to the weight's device.
#include "examples/common/whitening.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define A(i, j) a[(size_t)(i) * n + (j)]
#define V(i, j) v[(size_t)(i) * n + (j)]

int cg_symmetric_eigen(double *a, int n, double *values, double *vectors) {
    CG_CHECK(n >= 1 && n <= 4096, "cg_symmetric_eigen: n = %d", n);
    for (int i = 0; i < n; i++) // the symmetric part: (A + A^T) / 2
        for (int j = i + 1; j < n; j++) A(i, j) = A(j, i) = 0.5 * (A(i, j) + A(j, i));
    double *v = cg_xcalloc((size_t)n * n, sizeof *v); // V, whose columns become the eigenvectors
    for (int i = 0; i < n; i++) V(i, i) = 1.0;
    int sweeps = -1;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, all = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                all += A(i, j) * A(i, j);
                if (i != j) off += A(i, j) * A(i, j);
            }
        if (off <= 1e-30 * all || off == 0.0) {
            sweeps = sweep;
            break;
        }
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                if (A(p, q) == 0.0) continue;
                // The rotation J (J_pp = J_qq = c, J_pq = s, J_qp = -s) with (J^T A J)_pq = 0:
                // cot(2 phi) = theta = (a_qq - a_pp) / (2 a_pq), t = tan(phi) the smaller root of
                // t^2 + 2 theta t - 1 = 0 (the smaller rotation, which keeps the method stable).
                double theta = (A(q, q) - A(p, p)) / (2.0 * A(p, q));
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) { // A J: columns p and q
                    double akp = A(k, p), akq = A(k, q);
                    A(k, p) = c * akp - s * akq;
                    A(k, q) = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { // J^T (A J): rows p and q
                    double apk = A(p, k), aqk = A(q, k);
                    A(p, k) = c * apk - s * aqk;
                    A(q, k) = s * apk + c * aqk;
                }
                A(p, q) = A(q, p) = 0.0; // zero up to rounding: set it exactly
                for (int k = 0; k < n; k++) { // V J
                    double vkp = V(k, p), vkq = V(k, q);
                    V(k, p) = c * vkp - s * vkq;
                    V(k, q) = s * vkp + c * vkq;
                }
            }
    }
    // Largest eigenvalue first (selection sort: n is small), eigenvector i as row i.
    int *order = cg_xmalloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 0; i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (A(order[j], order[j]) > A(order[best], order[best])) best = j;
        int tmp = order[i];
        order[i] = order[best];
        order[best] = tmp;
    }
    for (int i = 0; i < n; i++) {
        values[i] = A(order[i], order[i]);
        for (int k = 0; k < n; k++) vectors[(size_t)i * n + k] = V(k, order[i]);
    }
    free(order);
    free(v);
    return sweeps;
}

// Images per block: each block of images sums into its own D x D array, and the blocks' arrays are
// added in block order at the end, so that the sum has the same bits whatever the thread count.
#define COVARIANCE_BLOCK 50

void cg_patch_covariance_add(const float *images, int64_t n, int64_t C, int64_t H, int64_t W, int k, double *sum,
                             int64_t *patches) {
    int64_t D = C * k * k, OH = H - k + 1, OW = W - k + 1, P = OH * OW;
    CG_CHECK(D <= 64 && H >= k && W >= k && n >= 0, "patch covariance: %lld images of %lld x %d x %d patches of %lld x %lld",
             (long long)n, (long long)C, k, k, (long long)H, (long long)W);
    int64_t blocks = (n + COVARIANCE_BLOCK - 1) / COVARIANCE_BLOCK;
    double *partial = cg_xcalloc((size_t)(blocks * D * D) + 1, sizeof *partial);
#pragma omp parallel
    {
        // rows: the image's patches as a D x P matrix, row r = c k k + i k + j holding pixel (c, y + i,
        // x + j) of every position (y, x): each entry of the sum is then a dot product of two rows,
        // contiguous, which the compiler vectorises (products of floats are exact in double).
        float *rows = cg_xmalloc((size_t)(D * P) * sizeof *rows);
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < blocks; b++) {
            double *part = partial + b * D * D;
            int64_t last = (b + 1) * COVARIANCE_BLOCK < n ? (b + 1) * COVARIANCE_BLOCK : n;
            for (int64_t m = b * COVARIANCE_BLOCK; m < last; m++) {
                const float *image = images + m * C * H * W;
                for (int64_t c = 0; c < C; c++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            float *row = rows + ((c * k + i) * k + j) * P;
                            for (int64_t y = 0; y < OH; y++)
                                memcpy(row + y * OW, image + (c * H + y + i) * W + j, (size_t)OW * sizeof *row);
                        }
                for (int64_t r = 0; r < D; r++) // the upper triangle; mirrored in cg_whitening_set
                    for (int64_t s = r; s < D; s++) {
                        const float *a = rows + r * P, *e = rows + s * P;
                        double acc = 0.0;
#pragma omp simd reduction(+ : acc)
                        for (int64_t p = 0; p < P; p++) acc += (double)a[p] * (double)e[p];
                        part[r * D + s] += acc;
                    }
            }
        }
        free(rows);
    }
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t r = 0; r < D; r++)
            for (int64_t s = r; s < D; s++) sum[r * D + s] += partial[(b * D + r) * D + s];
    *patches += n * P;
    free(partial);
}

cg_status cg_whitening_set(cg_tensor *weight, const double *sum, int64_t patches, float eps) {
    int64_t D = weight->shape[1] * weight->shape[2] * weight->shape[3];
    CG_CHECK(weight->ndim == 4 && weight->shape[0] == 2 * D && weight->shape[2] == weight->shape[3],
             "whitening: the weight must be (2 C k k, C, k, k)");
    if (patches < 1) return cg_error(CG_ERR_ARG, "whitening: no image patches to compute the covariance from");
    double *cov = cg_xmalloc((size_t)(D * D) * sizeof *cov), *values = cg_xmalloc((size_t)D * sizeof *values);
    double *vectors = cg_xmalloc((size_t)(D * D) * sizeof *vectors);
    for (int64_t r = 0; r < D; r++)
        for (int64_t s = r; s < D; s++) cov[r * D + s] = cov[s * D + r] = sum[r * D + s] / (double)patches;
    int sweeps = cg_symmetric_eigen(cov, (int)D, values, vectors);
    cg_status st = cg_ok();
    if (sweeps < 0) {
        st = cg_error(CG_ERR_ARG, "whitening: the eigen-solver did not converge on the %lld x %lld patch covariance",
                      (long long)D, (long long)D);
    } else {
        float *w = cg_xmalloc((size_t)(2 * D * D) * sizeof *w);
        for (int64_t i = 0; i < D; i++) {
            double scale = 1.0 / sqrt((values[i] > 0 ? values[i] : 0.0) + eps); // rounding can make 0 slightly < 0
            for (int64_t d = 0; d < D; d++) {
                w[i * D + d] = (float)(vectors[i * D + d] * scale);
                w[(D + i) * D + d] = -w[i * D + d];
            }
        }
        cg_tensor_copy_from_host(weight, w, weight->numel);
        free(w);
    }
    free(cov);
    free(values);
    free(vectors);
    return st;
}

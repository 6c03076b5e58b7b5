// test_whitening.c: the fast network's data-dependent first layer (examples/common/whitening.h): the
// Jacobi eigen-solver on symmetric matrices (random 12 x 12, diagonal, with a repeated eigenvalue,
// 1 x 1): A v = lambda v, orthonormal vectors, eigenvalues largest first; then the whitening filters
// of 2 x 2 patches of random RGB images: applied to the patches they give a covariance of
// lambda / (lambda + eps) on the diagonal and 0 elsewhere, and filter D + i is minus filter i.
// The comparison with PyTorch's torch.linalg.eigh is tests/test_model_checkpoint.c's.
#include "examples/common/whitening.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Checks values / vectors of the symmetric n x n matrix a (kept unchanged by the caller).
static void check_eigen(const char *what, const double *a, int n) {
    double *work = malloc(sizeof(double) * n * n), *values = malloc(sizeof(double) * n);
    double *vectors = malloc(sizeof(double) * n * n);
    memcpy(work, a, sizeof(double) * n * n);
    int sweeps = cg_symmetric_eigen(work, n, values, vectors);
    double scale = 0;
    for (int i = 0; i < n * n; i++) scale = fmax(scale, fabs(a[i]));
    double residual = 0, orthogonal = 0;
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < n; r++) { // (A v_i - lambda_i v_i)_r
            double av = 0;
            for (int c = 0; c < n; c++) av += a[r * n + c] * vectors[i * n + c];
            residual = fmax(residual, fabs(av - values[i] * vectors[i * n + r]));
        }
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int k = 0; k < n; k++) dot += vectors[i * n + k] * vectors[j * n + k];
            orthogonal = fmax(orthogonal, fabs(dot - (i == j)));
        }
        if (i > 0 && values[i] > values[i - 1]) fail(what, "eigenvalue %d (%g) above eigenvalue %d (%g)", i, values[i], i - 1, values[i - 1]);
    }
    if (sweeps < 0) fail(what, "did not converge");
    if (residual > 1e-12 * fmax(scale, 1)) fail(what, "|A v - lambda v| = %.3g", residual);
    if (orthogonal > 1e-12) fail(what, "|V V^T - I| = %.3g", orthogonal);
    printf("  %-34s n = %2d: %d sweeps, |A v - lambda v| %.2g, |V V^T - I| %.2g\n", what, n, sweeps, residual,
           orthogonal);
    free(work);
    free(values);
    free(vectors);
}

static double uniform(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return (double)(*state >> 8) / 16777216.0;
}

int main(void) {
    printf("Jacobi eigen-solver:\n");
    uint32_t state = 1;
    double a[144];
    for (int i = 0; i < 12; i++)
        for (int j = 0; j <= i; j++) a[i * 12 + j] = a[j * 12 + i] = uniform(&state) * 2 - 1;
    check_eigen("random symmetric", a, 12);
    memset(a, 0, sizeof a);
    for (int i = 0; i < 12; i++) a[i * 12 + i] = i % 5 - 2.0;
    check_eigen("diagonal, repeated eigenvalues", a, 12);
    double b[9] = {2, 1, 0, 1, 2, 0, 0, 0, 3}; // eigenvalues 3, 3, 1
    check_eigen("3 x 3 with a double eigenvalue", b, 3);
    double one[1] = {-4};
    check_eigen("1 x 1", one, 1);

    printf("whitening of 2 x 2 patches of random RGB images:\n");
    enum { C = 3, H = 10, W = 9, D = C * 4, IMAGES = 130 }; // three blocks of the covariance's 50
    double sum[D * D] = {0};
    int64_t patches = 0;
    float *images = malloc(sizeof(float) * IMAGES * C * H * W);
    for (int i = 0; i < IMAGES * C * H * W; i++) { // correlated neighbours: a smooth part and noise
        int x = i % W, y = i / W % H;
        images[i] = (float)(sin(0.7 * x + 0.3 * y + i / (H * W)) + 0.5 * uniform(&state));
    }
    cg_set_num_threads(1);
    cg_patch_covariance_add(images, IMAGES, C, H, W, 2, sum, &patches);
    if (patches != IMAGES * (H - 1) * (W - 1)) fail("patches", "%lld counted", (long long)patches);
    // Against the definition: every patch gathered on its own, p p^T added in double.
    double naive[D * D] = {0}, patch[D];
    for (int m = 0; m < IMAGES; m++)
        for (int y = 0; y + 2 <= H; y++)
            for (int x = 0; x + 2 <= W; x++) {
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++)
                            patch[c * 4 + i * 2 + j] = images[((m * C + c) * H + y + i) * W + x + j];
                for (int r = 0; r < D; r++)
                    for (int c = 0; c < D; c++) naive[r * D + c] += patch[r] * patch[c];
            }
    double sum_error = 0;
    for (int r = 0; r < D; r++)
        for (int c = r; c < D; c++) sum_error = fmax(sum_error, fabs(sum[r * D + c] - naive[r * D + c]));
    if (sum_error > 1e-9) fail("patch covariance", "differs from the patch-by-patch sum by %.3g", sum_error);
    // The same bits on two threads: the blocks' sums are added in a fixed order.
    double again[D * D] = {0};
    int64_t again_patches = 0;
    cg_set_num_threads(2);
    cg_patch_covariance_add(images, IMAGES, C, H, W, 2, again, &again_patches);
    if (memcmp(sum, again, sizeof sum) != 0) fail("patch covariance", "two threads give other bits than one");
    printf("  patch covariance within %.2g of the patch-by-patch sum; same bits on 1 and 2 threads\n", sum_error);
    cg_tensor *weight = cg_tensor_new(cg_cpu(), CG_F32, 4, (int64_t[]){2 * D, C, 2, 2});
    const float eps = 5e-4f;
    cg_status s = cg_whitening_set(weight, sum, patches, eps);
    if (s.code != CG_OK) fail("cg_whitening_set", "%s", s.message);
    const float *w = weight->data;
    // The covariance of the filtered patches: F Cov F^T, with Cov from the upper triangle of sum.
    double cov[D * D], eig_work[D * D], values[D], vectors[D * D];
    for (int r = 0; r < D; r++)
        for (int c = r; c < D; c++) cov[r * D + c] = cov[c * D + r] = sum[r * D + c] / (double)patches;
    memcpy(eig_work, cov, sizeof cov);
    cg_symmetric_eigen(eig_work, D, values, vectors);
    double worst = 0, mirror = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double v = 0;
            for (int r = 0; r < D; r++)
                for (int c = 0; c < D; c++) v += w[i * D + r] * cov[r * D + c] * w[j * D + c];
            double expected = i == j ? values[i] / (values[i] + eps) : 0.0;
            worst = fmax(worst, fabs(v - expected));
        }
    for (int i = 0; i < D * D; i++) mirror = fmax(mirror, fabs(w[D * D + i] + w[i]));
    if (worst > 1e-4) fail("whitened covariance", "differs from lambda / (lambda + eps) by %.3g", worst);
    if (mirror != 0) fail("negated filters", "filter D + i differs from -filter i by %.3g", mirror);
    printf("  whitened covariance within %.2g of diag(lambda / (lambda + eps)); eigenvalues %.4g .. %.4g\n", worst,
           values[0], values[D - 1]);
    cg_tensor_free(weight);
    free(images);
    return check_summary("test_whitening");
}

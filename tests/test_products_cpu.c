// test_products_cpu.c: the CPU's matrix products give the same bits on 1, 2 and 3 threads, and
// values close to the product in double: gemm_cpu (with AVX-512 the engine's loops for every
// product; without, OpenBLAS for the large ones and the engine's loops for the small ones or
// without OpenBLAS), and OpenBLAS's own path (cg_blas_sgemm) wherever the build found OpenBLAS.
// There a large product runs in pieces that depend on its shape alone (kernels/cpu/blas.h), so its
// bits cannot depend on the thread count; before, OpenBLAS ran the product on the threads itself
// and `--model mlp`'s first layer (K = 784) summed in another order on two threads than on one.
// The shapes are the linear layers of the course's models (the tutorial CNN's 3,136 -> 128 -> 10 and the MLP's 784 -> 128 at batch 128: forward,
// input gradient, weight gradient) and odd ones whose pieces are not whole tiles, with beta 0 and 1.
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"
#include "tests/check.h"
#include "tests/uniform.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float beta;
    int pieces; // what cg_blas_pieces must say: the test covers 1, 2 and 4
    const char *name;
} shape;

// op(A) (M x K) and op(B) (K x N) as stored: A is K x M when transposed, B is N x K.
static float a_at(const shape *s, const float *A, int64_t i, int64_t k) {
    return s->trans_a ? A[k * s->M + i] : A[i * s->K + k];
}
static float b_at(const shape *s, const float *B, int64_t k, int64_t j) {
    return s->trans_b ? B[j * s->K + k] : B[k * s->N + j];
}

// gemm_cpu, or OpenBLAS's path (false when OpenBLAS is missing)
static bool product(bool blas, const shape *s, float alpha, const float *A, const float *B, float *C) {
    if (blas) return cg_blas_sgemm(s->trans_a, s->trans_b, s->M, s->N, s->K, alpha, A, B, s->beta, C);
    gemm_cpu(s->trans_a, s->trans_b, s->M, s->N, s->K, alpha, A, B, s->beta, C);
    return true;
}

static void check_shape(const shape *s, bool blas) {
    const float alpha = 0.5f;
    int64_t na = s->M * s->K, nb = s->K * s->N, nc = s->M * s->N;
    float *A = malloc((size_t)na * sizeof(float)), *B = malloc((size_t)nb * sizeof(float));
    float *C0 = malloc((size_t)nc * sizeof(float)), *C[3];
    for (int64_t i = 0; i < na; i++) A[i] = uniform();
    for (int64_t i = 0; i < nb; i++) B[i] = uniform();
    // beta 0: C is not read (a gradient written fresh holds whatever the arena held): NaNs must vanish
    for (int64_t i = 0; i < nc; i++) C0[i] = s->beta == 0.0f ? NAN : uniform();
    char what[160];
    snprintf(what, sizeof what, "%s: %s (%lld x %lld x %lld%s%s, beta %g)", blas ? "OpenBLAS" : "gemm_cpu", s->name,
             (long long)s->M, (long long)s->N, (long long)s->K, s->trans_a ? ", A transposed" : "",
             s->trans_b ? ", B transposed" : "", (double)s->beta);
    int pieces = cg_blas_pieces(s->M, s->N, s->K);
    if (pieces != s->pieces) fail(what, "cg_blas_pieces says %d, the test expects %d", pieces, s->pieces);
    int failures_before = failures, threads_at_start = cg_get_num_threads();
    for (int t = 0; t < 3; t++) {
        C[t] = malloc((size_t)nc * sizeof(float));
        memcpy(C[t], C0, (size_t)nc * sizeof(float));
        cg_set_num_threads(t + 1);
        if (!product(blas, s, alpha, A, B, C[t])) fail(what, "OpenBLAS missing after it was found");
        // OpenBLAS's OpenMP build sets OpenMP's count when told its own (blas.c puts it back)
        if (cg_get_num_threads() != t + 1)
            fail(what, "%d threads set, %d after the product", t + 1, cg_get_num_threads());
    }
    cg_set_num_threads(threads_at_start);
    for (int t = 1; t < 3; t++)
        for (int64_t i = 0; i < nc; i++)
            if (memcmp(&C[t][i], &C[0][i], sizeof(float)) != 0) {
                fail(what, "%d threads: element %lld (row %lld, column %lld) is %.9g, on 1 thread %.9g", t + 1,
                     (long long)i, (long long)(i / s->N), (long long)(i % s->N), (double)C[t][i], (double)C[0][i]);
                break;
            }
    // Against the product in double: each value within a few roundings of its terms' magnitudes.
    double worst = 0.0;
    for (int64_t i = 0; i < s->M; i++)
        for (int64_t j = 0; j < s->N; j++) {
            double sum = 0.0, magnitude = 0.0;
            for (int64_t k = 0; k < s->K; k++) {
                double term = (double)a_at(s, A, i, k) * (double)b_at(s, B, k, j);
                sum += term, magnitude += fabs(term);
            }
            double c0 = s->beta == 0.0f ? 0.0 : s->beta * (double)C0[i * s->N + j];
            double want = alpha * sum + c0, scale = alpha * magnitude + fabs(c0);
            double error = fabs((double)C[0][i * s->N + j] - want) / (scale > 0.0 ? scale : 1.0);
            if (!(error <= worst)) worst = error; // (a NaN left in C is the worst error)
        }
    if (!(worst <= 1e-5)) fail(what, "relative error %.3g against the product in double", worst);
    if (failures == failures_before)
        printf("%-82s %s1, 2, 3 threads the same bits; error %.1e\n", what,
               !blas ? "" : pieces == 1 ? "1 piece; " : pieces == 2 ? "2 pieces; " : "4 pieces; ", worst);
    free(A), free(B), free(C0);
    for (int t = 0; t < 3; t++) free(C[t]);
}

// Each thread's scratch buffers are freed when the thread ends (kernels/cpu/threads.c): GCC's
// OpenMP ends the third thread when a team of 3 is followed by one of 2, and a later team of 3
// starts a new one. Twenty such turns, 4 MB of scratch on each thread: the heap (malloc's arenas
// and mmapped blocks) must not keep the ended threads' 80 MB.
#if defined(_OPENMP) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
static size_t heap_bytes(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
static void check_thread_buffers(void) {
    static _Thread_local cg_thread_buffer scratch;
    const int64_t bytes = 4 << 20;
    int threads_at_start = cg_get_num_threads();
    size_t before = 0;
    for (int turn = 0; turn < 21; turn++) {
        if (turn == 1) before = heap_bytes(); // (after the first turn: the threads that stay hold theirs)
        cg_set_num_threads(3);
#pragma omp parallel
        memset(cg_thread_buffer_get(&scratch, bytes), 1, (size_t)bytes);
        cg_set_num_threads(2);
#pragma omp parallel
        (void)cg_thread_buffer_get(&scratch, bytes);
    }
    cg_set_num_threads(threads_at_start);
    size_t after = heap_bytes(); // (the last ended thread may still be ending: 16 MB of slack)
    double grown = after > before ? (double)(after - before) / (1 << 20) : 0.0;
    if (grown > 16.0)
        fail("thread buffers", "the heap grew by %.1f MB over 20 turns of 3 then 2 threads (4 MB a thread)", grown);
    else
        printf("thread buffers: 20 turns of 3 then 2 threads, 4 MB a thread: the heap grew by %.1f MB\n", grown);
}
#else
static void check_thread_buffers(void) { printf("thread buffers: not checked (needs OpenMP and glibc's mallinfo2)\n"); }
#endif

int main(void) {
    // Loading OpenBLAS (when the build found it) leaves cgrad's thread count as it was: its OpenMP
    // build's openblas_set_num_threads sets OpenMP's (kernels/cpu/blas.c puts it back).
    int threads_at_start = cg_get_num_threads();
    cg_set_num_threads(2);
    const char *core = cg_blas_core();
    if (cg_get_num_threads() != 2) fail("loading OpenBLAS", "2 threads set before, %d after", cg_get_num_threads());
    cg_set_num_threads(threads_at_start);
    printf("gemm_cpu: %s\n", gemm_cpu_uses_openblas() ? "large products by OpenBLAS" : "every product by the engine's loops");
    if (core) printf("OpenBLAS's path checked too, its %s kernels\n", core);
    const shape shapes[] = {
        {false, true, 128, 128, 3136, 0.0f, 2, "tutorial CNN, first linear layer, forward (y = x W^T)"},
        {false, false, 128, 3136, 128, 0.0f, 4, "tutorial CNN, first linear layer, dx = dy W"},
        {true, false, 128, 3136, 128, 1.0f, 4, "tutorial CNN, first linear layer, dW += dy^T x"},
        {false, true, 128, 10, 128, 0.0f, 1, "tutorial CNN, last layer, forward (one piece)"},
        {false, false, 128, 64, 128, 1.0f, 1, "one piece, large enough for OpenBLAS's own threads"},
        {false, true, 128, 128, 784, 0.0f, 2, "MLP, hidden layer, forward (K = 784)"},
        {true, false, 128, 784, 128, 1.0f, 2, "MLP, hidden layer, dW += dy^T x"},
        {false, false, 1000, 40, 300, 1.0f, 2, "odd: pieces along M, not whole tiles"},
        {true, true, 37, 1100, 70, 0.0f, 4, "odd: pieces along N, both transposed"},
        {true, false, 1200, 64, 100, 1.0f, 4, "odd: pieces along M, A transposed"},
        {false, true, 50, 1500, 60, 0.0f, 4, "odd: pieces along N, B transposed"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_shape(&shapes[i], false);
        if (core) check_shape(&shapes[i], true);
    }
    check_thread_buffers();
    return check_summary("test_products_cpu");
}

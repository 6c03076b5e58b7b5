// cpu.h: declarations shared by the CPU kernel files (private to kernels/cpu).
// CG_OMP_MIN_WORK: below this many elements (256 Ki) a loop runs on one thread,
// because starting an OpenMP team costs microseconds, more than a small loop itself.
#ifndef CG_KERNELS_CPU_H
#define CG_KERNELS_CPU_H

#include "core/kernels.h"

#define CG_OMP_MIN_WORK (1 << 18)
// The piece (16 Ki values) of the element-wise passes over a few hundred thousand values (the
// optimizer's update, the weights' casts) that threads take one at a time (schedule(dynamic)).
// With the passive wait the other thread starts tens of microseconds late, a good part of such a
// pass: split in halves up front, the running thread finishes its half and waits; in pieces, it
// goes on taking them until the other arrives.
#define CG_DYNAMIC_PIECE (1 << 14)

// Images per group where a batch of N is taken in groups of at most `most` images: as few groups,
// of sizes as even as can be (32 images in groups of at most 25 are 16 + 16, not 25 + 7). Groups of
// small planes side by side make one product's columns (conv.c, conv_dx.c, bf16_small.c): a small
// last group is a narrow product, a half-used panel of columns at its end (CIFAR's layer4.0,
// batch 32: 112 positions, 3.5 panels), at a fraction of the GEMM's speed.
static inline int64_t cg_even_group(int64_t N, int64_t most) {
    most = most < N ? most : N;
    most = most > 1 ? most : 1;
    int64_t groups = (N + most - 1) / most;
    return (N + groups - 1) / groups;
}

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C);
// Whether gemm_cpu hands its large products to OpenBLAS: never with AVX-512 (the engine's loops
// take every product: gemm.c says why), else when OpenBLAS could be loaded (the first call loads it).
bool gemm_cpu_uses_openblas(void);
// gemm_cpu always on the engine's own register-tiled loops, never OpenBLAS: for callers whose B
// already has the layout those loops read (row-major, N a multiple of 16), which then is not
// copied at all, where OpenBLAS packs both operands on every call (the convolutions' columns).
void gemm_engine_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     const float *B, float beta, float *C);
// gemm_engine_cpu with op(A) packed ahead by gemm_pack_a_cpu into gemm_packed_a_floats(M, K)
// floats (A itself is still passed: the matrix-vector products read it): for a matrix that many
// products share. The same sums, in the same order, as gemm_engine_cpu.
int64_t gemm_packed_a_floats(int64_t M, int64_t K);
// The GEMM's block of K (gemm.c): the sums of C over K are taken a block at a time, each block's
// added to C in order, so a product over K = K1 + K2 (K1 a multiple of it) gives the same bits as
// the product over K1 then the one over K2 added to it (beta 1).
#define CG_GEMM_KC 256
void gemm_pack_a_cpu(float *packed, bool trans_a, int64_t M, int64_t K, const float *A);
// Rows m0 .. m1-1 of op(A) alone, laid out as gemm_pack_a_cpu lays out a matrix of m1 - m0 rows
// (gemm_packed_a_floats(m1 - m0, K) floats), on the calling thread.
void gemm_pack_a_rows_cpu(float *packed, bool trans_a, int64_t M, int64_t K, const float *A, int64_t m0, int64_t m1);
void gemm_prepacked_cpu(bool trans_a, const float *A, const float *packed_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float *B, float beta, float *C);
// gemm_prepacked_cpu (B not transposed) with B (K, N) given as the engine copies it: N / 32
// column panels one after the other, panel j (columns 32 j .. 32 j + 31) its K rows of 32 floats,
// b[k][32 j + c] at panels[32 j K + 32 k + c]. packed_a may be NULL (op(A) then packed, or read in
// place, as gemm_engine_cpu does). N a multiple of 16, M and N > 1, beta 0 or 1 (else an error);
// when N is an odd number of 16s the last panel is 16 columns wide (its rows 16 floats apart).
// The same sums, in the same order, as gemm_engine_cpu.
#define CG_GEMM_PANEL 32
void gemm_panels_b_cpu(bool trans_a, const float *A, const float *packed_a, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *panels, float beta, float *C);
// conv_direct.c: the fused conv + bias + ReLU + 2x2 max pooling of a one-channel image, 3 x 3,
// stride 1, padding 1 (the tutorial's first layer), direct; false (nothing done) for other shapes.
bool conv1_relu_pool_direct_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias, int64_t N,
                                int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                int64_t pad, int64_t P, int64_t Q);
// conv_direct_dw.c (with conv_direct_dw_channels.c and conv_direct_dw_one_channel.c): dW of a
// fused conv 3 x 3 (stride 1, padding 1) + bias + ReLU + 2 x 2 max
// pooling block straight from the pooled gradient, one term per window (its maximum's), in groups
// of `group` images: within a few units of the last place of the dense product's; and db (its
// bits) when dbias is not NULL. False (nothing done) for other shapes. _takes: whether it runs
// for this shape (an AVX-512 build, whole vectors of 16 output channels, at most 256 in and out;
// without AVX-512, whole vectors of 8 input channels).
bool conv2d_relu_pool_dw_windows_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                       int64_t stride, int64_t pad, int64_t P, int64_t Q);
bool conv2d_relu_pool_dw_windows_cpu(float *dw, float *dbias, const float *dy, const float *y, const uint8_t *where,
                                     const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                     int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t group);
// The same with bf16 dy, y and x (N, K, P/2, Q/2; N, C, H, W: one input channel, or whole vectors
// of them without db), for the bf16 paths (bf16_ops.c): dW's f32 sums of the exact products added
// to dw (f32, K x C x 9) group by group, and db's sums in double, exact, into db_sums (K; or NULL).
bool conv2d_relu_pool_dw_windows_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                          const uint8_t *where, const uint16_t *x, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                                          int64_t P, int64_t Q, int64_t group);
// The same two windows a vdpbf16ps (run only where the CPU has AVX512-BF16): f32 sums of the exact
// products, a pair of them added at once; for one input channel (with db, as above) or whole
// vectors of 32 input channels (db_sums NULL).
bool conv2d_relu_pool_dw_windows_pairs_bf16_cpu(float *dw, double *db_sums, const uint16_t *dy, const uint16_t *y,
                                                const uint8_t *where, const uint16_t *x, int64_t N, int64_t C,
                                                int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                                int64_t pad, int64_t P, int64_t Q, int64_t group);
void conv2d_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                        int64_t Q);
void conv2d_backward_cpu(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                         int64_t pad, int64_t P, int64_t Q, bool accumulate);
void max_pool2d_forward_cpu(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t kernel, int64_t stride, int64_t P, int64_t Q);
void global_avg_pool_forward_cpu(float *y, const float *x, int64_t planes, int64_t HW);
void global_avg_pool_backward_cpu(float *dx, const float *dy, int64_t planes, int64_t HW);
void add_bias_forward_cpu(float *y, const float *x, const float *bias, int64_t rows, int64_t cols);
void add_bias_backward_cpu(float *dbias, const float *dy, int64_t rows, int64_t cols);
void relu_forward_cpu(float *y, const float *x, int64_t n);
void relu_backward_cpu(float *dx, const float *dy, const float *y, int64_t n);
void gelu_forward_cpu(float *y, const float *x, int64_t n, bool tanh_approx);
void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n, bool tanh_approx);
void batch_norm_forward_cpu(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                            const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                            float momentum, bool training);
void batch_norm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training);
// Batch norm on bf16 NCHW tensors without f32 copies (norm.c): the bits of the f32 kernels on
// widened copies. Forward: y = round(act(x scale + shift [+ z])), act ReLU when relu (z: a
// residual, or NULL). Backward: act 0 (y = the batch norm's output), 1 (ReLU after it: its output
// computed again from x, stats, gamma, beta) or 2 (residual add and ReLU: from y, the block's
// output, and g_out = the gradient of the batch norm's output, written, when not NULL); dx
// written (or added to when accumulate), dgamma and dbeta added to.
void batch_norm_forward_bf16_cpu(uint16_t *y, float *stats, float *running_mean, float *running_var,
                                 const uint16_t *x, const uint16_t *z, const float *gamma, const float *beta,
                                 int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training, bool relu);
void batch_norm_backward_bf16_cpu(uint16_t *dx, uint16_t *g_out, float *dgamma, float *dbeta, const uint16_t *dy,
                                  const uint16_t *y, const uint16_t *x, const float *gamma, const float *beta,
                                  const float *stats, int64_t N, int64_t C, int64_t HW, bool training, int act,
                                  bool accumulate);
void batch_norm_forward_from_stats_cpu(float *y, const float *x, const float *gamma, const float *beta,
                                       const float *stats, int64_t N, int64_t C, int64_t HW);

// amp.c: the 16-bit convolutions (f32 arithmetic on widened copies, or bf16 hardware), which the
// fused 16-bit block (conv_pool_h.c) builds on
void conv2d_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q);
void conv2d_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                           const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q);

// Each kernel file fills its own rows of the table (table.c calls them once, before main()).
void cg_cpu_kernels_install(void);
void elementwise_register_cpu(cg_kernels *k);
void gemm_register_cpu(cg_kernels *k);
void conv_register_cpu(cg_kernels *k);
void pool_register_cpu(cg_kernels *k);
void norm_register_cpu(cg_kernels *k);
void rng_register_cpu(cg_kernels *k);
void loss_register_cpu(cg_kernels *k);
void gather_register_cpu(cg_kernels *k);
void optim_register_cpu(cg_kernels *k);
void amp_register_cpu(cg_kernels *k);
void conv_pool_h_register_cpu(cg_kernels *k); // conv_pool_h.c: the fused block in 16 bits

#endif

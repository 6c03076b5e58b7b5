// cpu.h: declarations shared by the CPU kernel files (private to kernels/cpu).
// CG_OMP_MIN_WORK: below this many elements (256 Ki) a loop runs on one thread,
// because starting an OpenMP team costs microseconds, more than a small loop itself.
#ifndef CG_KERNELS_CPU_H
#define CG_KERNELS_CPU_H

#include "../../core/kernels.h"

#define CG_OMP_MIN_WORK (1 << 18)

void fill_cpu(float *x, float value, int64_t n);
void axpy_cpu(float *y, float alpha, const float *x, int64_t n);
void add_scalar_cpu(float *x, float value);
void add_scalar_unless_cpu(float *x, float value, const float *flag);
void zero_cpu(void *p, size_t bytes);
void scale_cpu(float *y, const float *x, float alpha, int64_t n);
void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C);
// gemm_cpu always on the engine's own register-tiled loops, never OpenBLAS: for callers whose B
// already has the layout those loops read (row-major, N a multiple of 16), which then is not
// copied at all, where OpenBLAS packs both operands on every call (the convolutions' columns).
void gemm_engine_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     const float *B, float beta, float *C);
void linear_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                        int64_t K);
void conv2d_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                        int64_t Q);
void conv2d_backward_cpu(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                         int64_t pad, int64_t P, int64_t Q);
void max_pool2d_forward_cpu(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t kernel, int64_t stride, int64_t P, int64_t Q);
void max_pool2d_backward_cpu(float *dx, const float *dy, const int32_t *argmax, int64_t n);
void conv2d_relu_pool_forward_cpu(float *y, uint8_t *where, const float *x, const float *w, const float *bias,
                                  int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                  int64_t stride, int64_t pad, int64_t P, int64_t Q);
void conv2d_relu_pool_backward_cpu(float *dx, float *dw, float *dbias, const float *dy, const float *y,
                                   const uint8_t *where, const float *x, const float *w, int64_t N, int64_t C,
                                   int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                   int64_t pad, int64_t P, int64_t Q);
void batch_norm_forward_cpu(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                            const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                            float momentum, bool training);
void batch_norm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training);
void dropout_forward_cpu(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed, uint32_t stream,
                         uint64_t offset);
void multiply_add_cpu(float *y, const float *a, const float *b, int64_t n);
void add_forward_cpu(float *y, const float *a, const float *b, int64_t n);
void add_bias_forward_cpu(float *y, const float *x, const float *bias, int64_t rows, int64_t cols);
void add_bias_backward_cpu(float *dbias, const float *dy, int64_t rows, int64_t cols);
void relu_forward_cpu(float *y, const float *x, int64_t n);
void relu_backward_cpu(float *dx, const float *dy, const float *y, int64_t n);
void sigmoid_forward_cpu(float *y, const float *x, int64_t n);
void sigmoid_backward_cpu(float *dx, const float *dy, const float *y, int64_t n);
void bce_forward_cpu(float *loss, const float *p, const float *t, int64_t n);
void bce_backward_cpu(float *dp, const float *dloss, const float *p, const float *t, int64_t n);
void cross_entropy_forward_cpu(float *loss, const float *logits, const int32_t *labels, int64_t N, int64_t K);
void cross_entropy_backward_cpu(float *dlogits, const float *dloss, const float *logits, const int32_t *labels,
                                int64_t N, int64_t K);
void sum_forward_cpu(float *y, const float *x, float scale, int64_t n);
void sum_backward_cpu(float *dx, const float *dy, float scale, int64_t n);
void count_binary_correct_cpu(float *acc, const float *p, const float *t, float threshold, int64_t n);
void count_argmax_correct_cpu(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K);
void rng_uniform_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi);
void rng_normal_cpu(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean, float std);
void gather_batch_cpu(float *x_out, int32_t *labels_out, float *targets_out, const float *x, const int32_t *labels,
                      const int32_t *order, int64_t batch, int64_t sample_numel);
void gather_images_cpu(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                       const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H, int64_t W,
                       int64_t pad, const float *mean, const float *inv_std);
void sgd_step_cpu(float *p, const float *g, float *momentum_buf, float *state, int64_t n, float lr, float momentum,
                  float dampening, float weight_decay, bool nesterov, const float *found_inf);
void adam_step_cpu(float *p, const float *g, float *m, float *v, float *state, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, bool decoupled_weight_decay, const float *found_inf);

// half_ops.c: the 16-bit kernels (f32 arithmetic on widened copies, results rounded to 16 bits)
void cast_cpu(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate);
void gemm_h_cpu(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const void *A, const void *B, float beta, void *C);
void linear_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                          int64_t N, int64_t K);
void add_bias_backward_h_cpu(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols);
void conv2d_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                          int64_t P, int64_t Q);
void conv2d_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                           const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q);
void max_pool2d_forward_h_cpu(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q);
void max_pool2d_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t n);
void relu_forward_h_cpu(cg_dtype dtype, void *y, const void *x, int64_t n);
void relu_backward_h_cpu(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n);
// conv_pool_h.c: the fused conv2d + ReLU + 2x2 max pooling block in 16 bits
void conv2d_relu_pool_forward_h_cpu(cg_dtype dtype, void *y, uint8_t *where, const void *x, const void *w,
                                    const void *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                    int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
void conv2d_relu_pool_backward_h_cpu(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *y,
                                     const uint8_t *where, const void *x, const void *w, int64_t N, int64_t C,
                                     int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                     int64_t pad, int64_t P, int64_t Q);
void amp_unscale_check_h_cpu(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n);
void amp_update_scale_cpu(float *amp, float growth_factor, float backoff_factor, int growth_interval);

#endif

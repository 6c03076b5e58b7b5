// cuda.h: declarations shared by the CUDA kernel files (private to kernels/cuda): the launch
// shape of elementwise kernels, the launch-error check, and the host wrappers table.cu lists.
// Every wrapper queues its kernel on cg_cuda_stream() and returns at once.
#ifndef CG_KERNELS_CUDA_H
#define CG_KERNELS_CUDA_H

#include "../../core/bench.h"
#include "../../core/device_cuda.h"
#include "../../core/kernels.h"

#define CG_THREADS 256 // threads per block of elementwise kernels

// Blocks for n elements, one per thread, capped: kernels loop (grid-stride) past the cap.
static inline unsigned cg_blocks(int64_t n) {
    int64_t b = (n + CG_THREADS - 1) / CG_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b < 65536 ? b : 65536);
}

// After every launch: report a bad launch configuration at the line that made it.
#define CG_LAUNCH_CHECK() CG_CUDA_CHECK(cudaGetLastError())

// for (i = this thread's first element; i < n; i += all threads of the grid)
#define GRID_STRIDE(i, n)                                                                     \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// Launch `kernel` with one thread per element of n on the GPU's stream, then check the launch.
#define LAUNCH(kernel, n, ...)                                                                \
    do {                                                                                      \
        kernel<<<cg_blocks(n), CG_THREADS, 0, cg_cuda_stream()>>>(__VA_ARGS__);               \
        CG_LAUNCH_CHECK();                                                                    \
    } while (0)

// Launch `kernel` as one block of CG_THREADS threads (reductions whose result is one number:
// a single block sums in a fixed order, so the result is the same on every run).
#define LAUNCH_ONE_BLOCK(kernel, ...)                                                         \
    do {                                                                                      \
        kernel<<<1, CG_THREADS, 0, cg_cuda_stream()>>>(__VA_ARGS__);                          \
        CG_LAUNCH_CHECK();                                                                    \
    } while (0)

// The sum of v over the 32 threads of a warp, valid in lane 0 (each step adds the value held
// `offset` lanes higher).
static __device__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// The sum of v over the CG_THREADS threads of a block, valid in thread 0.
static __device__ float block_sum(float v) {
    __shared__ float partial[CG_THREADS];
    partial[threadIdx.x] = v;
    __syncthreads();
    for (int stride = CG_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    return partial[0];
}

extern "C" {
void fill_cuda(float *x, float value, int64_t n);
void axpy_cuda(float *y, float alpha, const float *x, int64_t n);
void add_scalar_cuda(float *x, float value);
void zero_cuda(void *p, size_t bytes);
void scale_cuda(float *y, const float *x, float alpha, int64_t n);
void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               const float *B, float beta, float *C);
void linear_forward_cuda(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                         int64_t K);
void conv2d_forward_cuda(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q);
void conv2d_backward_cuda(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                          int64_t pad, int64_t P, int64_t Q);
void max_pool2d_forward_cuda(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                             int64_t kernel, int64_t stride, int64_t P, int64_t Q);
void max_pool2d_backward_cuda(float *dx, const float *dy, const int32_t *argmax, int64_t n);
void batch_norm_forward_cuda(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                            const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                            float momentum, bool training);
void batch_norm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training);
void dropout_forward_cuda(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed, uint32_t stream,
                         uint64_t offset);
void multiply_add_cuda(float *y, const float *a, const float *b, int64_t n);
void add_forward_cuda(float *y, const float *a, const float *b, int64_t n);
void add_bias_forward_cuda(float *y, const float *x, const float *bias, int64_t rows, int64_t cols);
void add_bias_backward_cuda(float *dbias, const float *dy, int64_t rows, int64_t cols);
void relu_forward_cuda(float *y, const float *x, int64_t n);
void relu_backward_cuda(float *dx, const float *dy, const float *y, int64_t n);
void sigmoid_forward_cuda(float *y, const float *x, int64_t n);
void sigmoid_backward_cuda(float *dx, const float *dy, const float *y, int64_t n);
void bce_forward_cuda(float *loss, const float *p, const float *t, int64_t n);
void bce_backward_cuda(float *dp, const float *dloss, const float *p, const float *t, int64_t n);
void cross_entropy_forward_cuda(float *loss, const float *logits, const int32_t *labels, int64_t N, int64_t K);
void cross_entropy_backward_cuda(float *dlogits, const float *dloss, const float *logits, const int32_t *labels,
                                 int64_t N, int64_t K);
void sum_forward_cuda(float *y, const float *x, float scale, int64_t n);
void sum_backward_cuda(float *dx, const float *dy, float scale, int64_t n);
void count_binary_correct_cuda(float *acc, const float *p, const float *t, float threshold, int64_t n);
void count_argmax_correct_cuda(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K);
void rng_uniform_cuda(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi);
void rng_normal_cuda(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean, float std);
void gather_batch_cuda(float *x_out, int32_t *labels_out, float *targets_out, const float *x,
                       const int32_t *labels, const int32_t *order, int64_t batch, int64_t sample_numel);
void gather_images_cuda(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                        const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H, int64_t W,
                        int64_t pad, const float *mean, const float *inv_std);
void sgd_step_cuda(float *p, const float *g, float *momentum_buf, float *state, int64_t n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, const float *found_inf);
void adam_step_cuda(float *p, const float *g, float *m, float *v, float *state, int64_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, bool decoupled_weight_decay, const float *found_inf);
// Mixed precision (the _h rows of core/kernels.h): gemm.cu and amp.cu.
void add_scalar_unless_cuda(float *x, float value, const float *flag);
void cast_cuda(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate);
void gemm_h_cuda(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const void *A, const void *B, float beta, void *C);
void linear_forward_h_cuda(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                           int64_t N, int64_t K);
void add_bias_backward_h_cuda(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols);
void conv2d_forward_h_cuda(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                           int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                           int64_t pad, int64_t P, int64_t Q);
void conv2d_backward_h_cuda(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                            const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                            int64_t stride, int64_t pad, int64_t P, int64_t Q);
void max_pool2d_forward_h_cuda(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                               int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q);
void max_pool2d_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t n);
void relu_forward_h_cuda(cg_dtype dtype, void *y, const void *x, int64_t n);
void relu_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n);
void amp_unscale_check_cuda(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n);
void amp_update_scale_cuda(float *amp, float growth_factor, float backoff_factor, int growth_interval);
// The benchmark's products (core/bench.h: cg_bench_gemm), from gemm.cu.
cg_status gemm_bench_cuda(cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K, const void *A,
                          const void *B, void *C);
}

#endif

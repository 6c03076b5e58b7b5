// cuda.h: declarations shared by the CUDA kernel files (private to kernels/cuda): the launch
// shape of elementwise kernels, the launch-error check, and the host wrappers table.cu lists.
// Every wrapper queues its kernel on cg_cuda_stream() and returns at once.
#ifndef CG_KERNELS_CUDA_H
#define CG_KERNELS_CUDA_H

#include "core/measure/hw_bench.h"
#include "kernels/cuda/plugin.h"
#include "core/kernels.h"
#include "kernels/cuda/fast_divide.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

// 16-bit values in f32 registers and back: h2f widens (exact), f2h<T> rounds to nearest even
// (the identity for float, so that one template serves f32 and 16-bit tensors).
static __device__ __forceinline__ float h2f(float v) { return v; }
static __device__ __forceinline__ float h2f(__half v) { return __half2float(v); }
static __device__ __forceinline__ float h2f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> static __device__ __forceinline__ T f2h(float v);
template <> __device__ __forceinline__ float f2h<float>(float v) { return v; }
template <> __device__ __forceinline__ __half f2h<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 f2h<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// VEC consecutive values of p widened into v, and rounded back. VEC = 8 with 16-bit T is one
// 16-byte load or store (p 16-byte aligned: arena tensors are, and an offset of a multiple of 8
// values keeps it): a GPU moves memory fastest in 16-byte pieces per thread, and a kernel that
// reads one 2-byte value per thread reaches a third of the memory's bandwidth at best.
// VEC = 8 with float T is two 16-byte loads or stores (p 16-byte aligned). VEC = 1: one value, any T.
template <int VEC, typename T> static __device__ __forceinline__ void load_vec(float *v, const T *p) {
    if constexpr (VEC == 8 && sizeof(T) == 2) {
        uint4 raw = *(const uint4 *)p;
        const T *h = (const T *)&raw;
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = h2f(h[k]);
    } else if constexpr (VEC == 8 && sizeof(T) == 4) {
        float4 a = ((const float4 *)p)[0], b = ((const float4 *)p)[1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = h2f(p[k]);
    }
}
template <int VEC, typename T> static __device__ __forceinline__ void store_vec(T *p, const float *v) {
    if constexpr (VEC == 8 && sizeof(T) == 2) {
        uint4 raw;
        T *h = (T *)&raw;
#pragma unroll
        for (int k = 0; k < 8; k++) h[k] = f2h<T>(v[k]);
        *(uint4 *)p = raw;
    } else if constexpr (VEC == 8 && sizeof(T) == 4) {
        ((float4 *)p)[0] = make_float4(v[0], v[1], v[2], v[3]);
        ((float4 *)p)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
        for (int k = 0; k < VEC; k++) p[k] = f2h<T>(v[k]);
    }
}
// A gradient's VEC starting values: its old ones when the kernel adds to it (accumulate), zeros
// when it writes it (core/tape.h: fresh gradients; its memory is then never read).
template <int VEC, typename T>
static __device__ __forceinline__ void gradient_start_vec(float *v, const T *dx, bool accumulate) {
    if (accumulate) {
        load_vec<VEC>(v, dx);
    } else {
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = 0.0f;
    }
}
// 8 for 16-bit values whose rows of `inner` (a multiple of 8: channels-last channels) split
// into 16-byte pieces and whose tensors all start 16-byte aligned, else 1.
template <typename T, typename... Ptr> static inline int vec_width(int64_t inner, const Ptr *...tensors) {
    bool ok = sizeof(T) == 2 && inner % 8 == 0;
    ((ok = ok && ((uintptr_t)tensors & 15) == 0), ...);
    return ok ? 8 : 1;
}

// Run the statement(s) with T the C type of a 16-bit dtype (__half or __nv_bfloat16).
#define DISPATCH16(dtype, ...)                                                                        \
    do {                                                                                               \
        if ((dtype) == CG_F16) {                                                                       \
            typedef __half T;                                                                          \
            __VA_ARGS__;                                                                                      \
        } else if ((dtype) == CG_BF16) {                                                               \
            typedef __nv_bfloat16 T;                                                                   \
            __VA_ARGS__;                                                                                      \
        } else {                                                                                       \
            CG_CHECK(0, "a 16-bit kernel called with dtype %s", cg_dtype_name(dtype));                 \
        }                                                                                              \
    } while (0)

// The kernels below index in 32 bits (64-bit division is emulated on a GPU and costs several
// times more): a tensor of n values that does not fit stops the run with this line.
static inline void cg_cuda_check_int32(const char *op, int64_t n) {
    CG_CHECK(n < INT32_MAX, "%s on the GPU: %lld values do not fit 32-bit indices; use a smaller batch", op,
             (long long)n);
}

// GELU (core/kernels.h), the same formulas as kernels/cpu/elementwise.c in single precision.
#define GELU_C 0.7978845608028654f // sqrt(2 / pi)
#define GELU_A 0.044715f
static __device__ __forceinline__ float gelu_value(float x, bool tanh_approx) {
    if (tanh_approx) return 0.5f * x * (1.0f + tanhf(GELU_C * (x + GELU_A * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}
static __device__ __forceinline__ float gelu_slope(float x, bool tanh_approx) {
    if (tanh_approx) {
        float t = tanhf(GELU_C * (x + GELU_A * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    }
    return 0.5f * (1.0f + erff(x * 0.7071067811865476f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}

// Max pooling, f32 and 16-bit (T) alike: output i (N C planes of P x Q, pq = P Q and q = Q as fast
// divisors) is the largest value of its window in x (N C planes of H x W), the first one on ties
// (strict >, as on the CPU); argmax[i] its flat index in x.
template <typename T>
static __device__ __forceinline__ int window_argmax(const T *x, int first, int kernel, int row_step, int col_step) {
    // The window's values: kernel rows row_step apart, kernel columns col_step apart, from first.
    int best = first;
    float best_value = h2f(x[best]);
    for (int r = 0; r < kernel; r++)
        for (int s = 0; s < kernel; s++) {
            int j = first + r * row_step + s * col_step;
            float v = h2f(x[j]);
            if (v > best_value) best = j, best_value = v;
        }
    return best;
}

template <typename T>
static __global__ void max_pool_kernel(T *y, int32_t *argmax, const T *x, int n, int H, int W, int kernel, int stride,
                                       cg_fast_divisor pq, cg_fast_divisor q) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int plane = (int)cg_fast_divide((uint32_t)i, pq), pos = i - plane * (int)pq.divisor;
        int p = (int)cg_fast_divide((uint32_t)pos, q), col = pos - p * (int)q.divisor;
        int best = window_argmax(x, plane * H * W + p * stride * W + col * stride, kernel, W, 1);
        y[i] = x[best];
        argmax[i] = best;
    }
}

// Channels-last x (N, H, W, C) and y (N, P, Q, C): element i of y is (row, k) with row = (m P + p)
// Q + q; the same windows in the same order as above, argmax indexing x as stored. VEC channels
// per thread (k .. k + VEC - 1, 16-byte loads and stores for VEC = 8: C a multiple of 8).
template <typename T, int VEC>
static __global__ void max_pool_cl_kernel(T *y, int32_t *argmax, const T *x, int n, int H, int W, int kernel, int stride,
                                          cg_fast_divisor c, cg_fast_divisor pq, cg_fast_divisor q) {
    int C = (int)c.divisor;
    for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < n / VEC; v += gridDim.x * blockDim.x) {
        int i = v * VEC, row = (int)cg_fast_divide((uint32_t)i, c), k = i - row * C;
        int m = (int)cg_fast_divide((uint32_t)row, pq), pos = row - m * (int)pq.divisor;
        int p = (int)cg_fast_divide((uint32_t)pos, q), col = pos - p * (int)q.divisor;
        int first = ((m * H + p * stride) * W + col * stride) * C + k, best[VEC];
        float best_value[VEC], value[VEC];
        load_vec<VEC>(best_value, x + first);
#pragma unroll
        for (int l = 0; l < VEC; l++) best[l] = first + l;
        for (int r = 0; r < kernel; r++)
            for (int s = 0; s < kernel; s++) {
                int j = first + (r * W + s) * C;
                load_vec<VEC>(value, x + j);
#pragma unroll
                for (int l = 0; l < VEC; l++)
                    if (value[l] > best_value[l]) best[l] = j + l, best_value[l] = value[l];
            }
        store_vec<VEC>(y + i, best_value); // a maximum is one of the values: exact
#pragma unroll
        for (int l = 0; l < VEC; l++) argmax[i + l] = best[l];
    }
}

template <typename T>
static void max_pool_launch(T *y, int32_t *argmax, const T *x, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t kernel, int64_t stride, int64_t P, int64_t Q, bool channels_last = false) {
    cg_cuda_check_int32("max_pool2d", N * C * H * W);
    if (channels_last && vec_width<T>(C, x, y, argmax) == 8)
        LAUNCH((max_pool_cl_kernel<T, 8>), N * C * P * Q / 8, y, argmax, x, (int)(N * C * P * Q), (int)H, (int)W,
               (int)kernel, (int)stride, cg_fast_divisor_make((uint32_t)C), cg_fast_divisor_make((uint32_t)(P * Q)),
               cg_fast_divisor_make((uint32_t)Q));
    else if (channels_last)
        LAUNCH((max_pool_cl_kernel<T, 1>), N * C * P * Q, y, argmax, x, (int)(N * C * P * Q), (int)H, (int)W,
               (int)kernel, (int)stride, cg_fast_divisor_make((uint32_t)C), cg_fast_divisor_make((uint32_t)(P * Q)),
               cg_fast_divisor_make((uint32_t)Q));
    else
        LAUNCH(max_pool_kernel<T>, N * C * P * Q, y, argmax, x, (int)(N * C * P * Q), (int)H, (int)W, (int)kernel,
               (int)stride, cg_fast_divisor_make((uint32_t)(P * Q)), cg_fast_divisor_make((uint32_t)Q));
}

extern "C" {
void zero_cuda(void *p, size_t bytes);
// The cast row (core/kernels.h), from amp.cu, for the other files' scratch copies (conv16.cu).
void cast_cuda(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate);
void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               const float *B, float beta, float *C);
void conv2d_forward_cuda(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q);
void conv2d_backward_cuda(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                          int64_t pad, int64_t P, int64_t Q, bool accumulate);
void add_bias_forward_cuda(float *y, const float *x, const float *bias, int64_t rows, int64_t cols);
// A first layer's convolution (C <= 4 input channels, x NCHW) computed directly (conv_direct.cu):
// the forward (16 bits, y channels-last, K a multiple of 8) and the weight gradient (dtype f32 or
// 16 bits, dw (K, C, R, S) += ..., dy channels-last or NCHW, K even). False, with nothing done,
// for other shapes (the caller goes to cuDNN).
bool conv_direct_forward(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N, int64_t C,
                         int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q);
bool conv_direct_weight_grad(cg_dtype dtype, void *dw, const void *x, const void *dy, bool dy_cl, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                             int64_t P, int64_t Q);
// dbias (K) += the column sums of dy (N, PQ, K) stored channels-last, 16-bit (norm.cu).
void conv_bias_grad_cl_cuda(cg_dtype dtype, void *dbias, const void *dy, int64_t N, int64_t K, int64_t PQ);
void rng_uniform_cuda(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi);
// Mixed precision (the _h rows of core/kernels.h): gemm.cu, amp.cu and conv16.cu.
// The benchmark's products (core/bench.h: cg_bench_gemm), from gemm.cu.
cg_status gemm_bench_cuda(cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K, const void *A,
                          const void *B, void *C);
// Each kernel file fills its own rows of the table (table.cu calls them once).
void elementwise_register_cuda(cg_kernels *k);
void gemm_register_cuda(cg_kernels *k);
void conv_register_cuda(cg_kernels *k);
void norm_register_cuda(cg_kernels *k);
void rng_register_cuda(cg_kernels *k);
void loss_register_cuda(cg_kernels *k);
void gather_register_cuda(cg_kernels *k);
void optim_register_cuda(cg_kernels *k);
void amp_register_cuda(cg_kernels *k);
void conv16_register_cuda(cg_kernels *k);
}

#endif

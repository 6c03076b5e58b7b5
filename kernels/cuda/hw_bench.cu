// bench.cu: the benchmark's GPU group (core/bench_backend.h, for core/bench.h): timers made of
// CUDA events, conversions of f32 draws to f16 / bf16 / int8, and one convolution layer in fp32,
// tf32, fp16 or bf16: cuDNN's tuned plans (cudnn_conv.c) and the kernels around them (bias,
// mean, loss gradient, bias gradient). Products are gemm.cu's (cuBLAS). Training never uses this
// file: its layers keep f32 NCHW and the kernel table.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/measure/hw_bench_backend.h"
#include "core/rng.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cudnn_conv.h"

namespace {

// ---- number formats ----------------------------------------------------------------------------

__device__ float to_f32(float v) { return v; }
__device__ float to_f32(__half v) { return __half2float(v); }
__device__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ T from_f32(float v);
template <> __device__ float from_f32<float>(float v) { return v; }
template <> __device__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
// Symmetric int8 quantisation of a value in [-1, 1]: round(127 v), clamped to +-127.
template <> __device__ int8_t from_f32<int8_t>(float v) { return (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(127.0f * v))); }

// V values of T read or written as one access (16 bytes when V = 16 / sizeof(T)), which is
// what lets a memory-bound kernel reach the memory's bandwidth.
template <typename T, int V> struct alignas(sizeof(T) * V) vec {
    T v[V];
};

template <typename T> __global__ void convert_kernel(T *dst, const float *src, int64_t n) {
    GRID_STRIDE(i, n) dst[i] = from_f32<T>(src[i]);
}

// src (N, C, HW) f32 -> dst in T: NCHW (Cs = C), or NHWC (N, HW, Cs) with channels C..Cs-1 zero.
template <typename T>
__global__ void pack_kernel(T *dst, const float *src, int64_t N, int64_t C, int64_t HW, int64_t Cs, bool nhwc) {
    GRID_STRIDE(i, N * Cs * HW) {
        int64_t n, c, hw;
        if (nhwc) {
            c = i % Cs, hw = i / Cs % HW, n = i / (Cs * HW);
        } else {
            hw = i % HW, c = i / HW % Cs, n = i / (HW * Cs);
        }
        dst[i] = from_f32<T>(c < C ? src[(n * C + c) * HW + hw] : 0.0f);
    }
}

// ---- the kernels around the convolution ---------------------------------------------------------

// y (N, K, PQ) += bias[k] (NCHW), V values per access (PQ % V == 0). Block row blockIdx.y walks
// the planes (n, k), so the channel is worked out once per plane, not once per value; the blocks
// of a row share out the plane.
template <typename T, int V>
__global__ void bias_add_nchw_kernel(T *y, const T *bias, int64_t planes, int64_t K, int64_t plane_vectors) {
    for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        float b = to_f32(bias[plane % K]);
        vec<T, V> *p = (vec<T, V> *)y + plane * plane_vectors;
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < plane_vectors;
             i += (int64_t)gridDim.x * blockDim.x) {
            vec<T, V> v = p[i];
            for (int j = 0; j < V; j++) v.v[j] = from_f32<T>(to_f32(v.v[j]) + b);
            p[i] = v;
        }
    }
}

// y (rows, K) += bias (NHWC: K channels side by side), V values per access, G = K / V accesses
// per row. The grid's stride is a multiple of G, so a thread meets the same V channels at every
// step: it reads their biases once.
template <typename T, int V> __global__ void bias_add_nhwc_kernel(T *y, const T *bias, int64_t vectors, int64_t G) {
    int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    int64_t k0 = first % G * V;
    float b[V];
    for (int j = 0; j < V; j++) b[j] = to_f32(bias[k0 + j]);
    vec<T, V> *yv = (vec<T, V> *)y;
    for (int64_t i = first; i < vectors; i += stride) {
        vec<T, V> v = yv[i];
        for (int j = 0; j < V; j++) v.v[j] = from_f32<T>(to_f32(v.v[j]) + b[j]);
        yv[i] = v;
    }
}

// Any shape, one value per thread: the fallback of the two above.
template <typename T> __global__ void bias_add_any_kernel(T *y, const T *bias, int64_t n, int64_t K, int64_t PQ, bool nhwc) {
    GRID_STRIDE(i, n) y[i] = from_f32<T>(to_f32(y[i]) + to_f32(bias[nhwc ? i % K : i / PQ % K]));
}

// partial[block] = the sum of this block's share of x, accumulated in f32.
template <typename T, int V> __global__ void sum_partial_kernel(float *partial, const T *x, int64_t vectors) {
    const vec<T, V> *xv = (const vec<T, V> *)x;
    float sum = 0.0f;
    GRID_STRIDE(i, vectors) {
        vec<T, V> p = xv[i];
        for (int j = 0; j < V; j++) sum += to_f32(p.v[j]);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// loss[0] = scale x the sum of partial[0..count), in one block (a fixed order: the same every run).
__global__ void sum_finish_kernel(float *loss, const float *partial, int64_t count, float scale) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += partial[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) loss[0] = scale * sum;
}

template <typename T, int V> __global__ void fill_kernel(T *x, float value, int64_t vectors) {
    vec<T, V> p;
    for (int j = 0; j < V; j++) p.v[j] = from_f32<T>(value);
    vec<T, V> *xv = (vec<T, V> *)x;
    GRID_STRIDE(i, vectors) xv[i] = p;
}

// NCHW bias gradient, first pass: block (k, n) sums plane (n, k) of dy into partial[k N + n].
template <typename T, int V> __global__ void bias_grad_planes_kernel(float *partial, const T *dy, int64_t pq_vectors) {
    int64_t k = blockIdx.x, n = blockIdx.y, K = gridDim.x, N = gridDim.y;
    const vec<T, V> *plane = (const vec<T, V> *)dy + (n * K + k) * pq_vectors;
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < pq_vectors; i += blockDim.x) {
        vec<T, V> p = plane[i];
        for (int j = 0; j < V; j++) sum += to_f32(p.v[j]);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[k * N + n] = sum;
}

// NHWC bias gradient, first pass: dy is a (rows, K) matrix. Blocks of 32 x 8 threads: lane x
// takes channel 32 blockIdx.y + x (a warp reads 32 neighbouring channels of a row), the 8 rows
// of threads y step through this block's rows; partial[blockIdx.x K + k] gets the block's sum.
#define ROW_THREADS 8
template <typename T> __global__ void bias_grad_rows_kernel(float *partial, const T *dy, int64_t rows, int64_t K) {
    __shared__ float sums[ROW_THREADS][32];
    int64_t k = (int64_t)blockIdx.y * 32 + threadIdx.x;
    float sum = 0.0f;
    if (k < K)
        for (int64_t r = (int64_t)blockIdx.x * ROW_THREADS + threadIdx.y; r < rows; r += (int64_t)gridDim.x * ROW_THREADS)
            sum += to_f32(dy[r * K + k]);
    sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && k < K) {
        for (int y = 1; y < ROW_THREADS; y++) sum += sums[y][threadIdx.x];
        partial[blockIdx.x * K + k] = sum;
    }
}

// Second pass: dbias[k] += the sum over i < count of partial[k count + i] (k_major) or
// partial[i K + k].
template <typename T>
__global__ void bias_grad_total_kernel(T *dbias, const float *partial, int64_t count, int64_t K, bool k_major) {
    GRID_STRIDE(k, K) {
        float sum = 0.0f;
        for (int64_t i = 0; i < count; i++) sum += partial[k_major ? k * count + i : i * K + k];
        dbias[k] = from_f32<T>(to_f32(dbias[k]) + sum);
    }
}

#define REDUCE_BLOCKS 1024 // blocks of the first pass of the sums (and their partial results)

// ---- timers ----------------------------------------------------------------------------------------

struct gpu_timer {
    int index;
    cudaEvent_t start, stop;
};

void *timer_new(int index) {
    cg_cuda_use_gpu(index);
    gpu_timer *t = (gpu_timer *)cg_xcalloc(1, sizeof *t);
    t->index = index;
    CG_CUDA_CHECK(cudaEventCreate(&t->start));
    CG_CUDA_CHECK(cudaEventCreate(&t->stop));
    return t;
}

void timer_start(void *timer) {
    gpu_timer *t = (gpu_timer *)timer;
    cg_cuda_use_gpu(t->index);
    CG_CUDA_CHECK(cudaEventRecord(t->start, cg_cuda_stream()));
}

double timer_stop(void *timer) {
    gpu_timer *t = (gpu_timer *)timer;
    cg_cuda_use_gpu(t->index);
    CG_CUDA_CHECK(cudaEventRecord(t->stop, cg_cuda_stream()));
    CG_CUDA_CHECK(cudaEventSynchronize(t->stop));
    float ms = 0.0f;
    CG_CUDA_CHECK(cudaEventElapsedTime(&ms, t->start, t->stop));
    return ms / 1000.0;
}

void timer_free(void *timer) {
    gpu_timer *t = (gpu_timer *)timer;
    cg_cuda_use_gpu(t->index);
    CG_CUDA_CHECK(cudaEventDestroy(t->start));
    CG_CUDA_CHECK(cudaEventDestroy(t->stop));
    free(t);
}

// ---- conversions and products ------------------------------------------------------------------------

void convert_from_f32(int index, void *dst, cg_dtype dtype, const float *src, int64_t n) {
    cg_cuda_use_gpu(index);
    switch (dtype) {
    case CG_F32: CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, cg_cuda_stream())); break;
    case CG_F16: LAUNCH(convert_kernel<__half>, n, (__half *)dst, src, n); break;
    case CG_BF16: LAUNCH(convert_kernel<__nv_bfloat16>, n, (__nv_bfloat16 *)dst, src, n); break;
    case CG_I8: LAUNCH(convert_kernel<int8_t>, n, (int8_t *)dst, src, n); break;
    default: CG_CHECK(0, "no conversion from f32 to dtype %d", (int)dtype);
    }
}

cg_status gemm(int index, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K, const void *A,
               const void *B, void *C) {
    cg_cuda_use_gpu(index);
    return gemm_bench_cuda(p, trans_b, M, N, K, A, B, C);
}

// ---- one convolution layer --------------------------------------------------------------------------

struct gpu_conv {
    int index;
    cg_dtype dtype;         // how x, w, bias, y and their gradients are stored
    bool nhwc;              // x (N, H, W, Cs), w (K, R, S, Cs), y (N, P, Q, K); else NCHW
    int64_t C;              // the layer's input channels
    int64_t d[11];          // N Cs H W K R S stride pad P Q, Cs the stored channels
    void *x, *w, *bias, *y, *dy, *dw, *dbias;
    float *loss, *partial;  // loss: 1 value; partial: first-pass sums
    int64_t partial_count;
    float dy_value;         // d loss / dy: 1 / numel(y), times the loss scale for fp16
    cg_cudnn_tuned *forward, *backward_filter;
};

static const char *const precision_names[] = {"fp32", "tf32", "fp16", "bf16", "int8"};

template <typename T> constexpr int vector_width() { return (int)(16 / sizeof(T)); }

template <typename T> void add_bias(gpu_conv *c) {
    int64_t N = c->d[0], K = c->d[4], PQ = c->d[9] * c->d[10], n = N * K * PQ;
    constexpr int V = vector_width<T>();
    cudaStream_t s = cg_cuda_stream();
    if (!c->nhwc && PQ % V == 0) {
        int64_t plane_vectors = PQ / V, planes = N * K;
        dim3 grid((unsigned)((plane_vectors + CG_THREADS - 1) / CG_THREADS), (unsigned)(planes < 65535 ? planes : 65535));
        bias_add_nchw_kernel<T, V><<<grid, CG_THREADS, 0, s>>>((T *)c->y, (const T *)c->bias, planes, K, plane_vectors);
    } else if (c->nhwc && K % V == 0 && K / V <= CG_THREADS) {
        int64_t G = K / V, threads = CG_THREADS / G * G, vectors = n / V; // threads: a multiple of G
        int64_t blocks = (vectors + threads - 1) / threads;
        bias_add_nhwc_kernel<T, V><<<(unsigned)(blocks < 65536 ? blocks : 65536), (unsigned)threads, 0, s>>>(
            (T *)c->y, (const T *)c->bias, vectors, G);
    } else {
        bias_add_any_kernel<T><<<cg_blocks(n), CG_THREADS, 0, s>>>((T *)c->y, (const T *)c->bias, n, K, PQ, c->nhwc);
    }
    CG_LAUNCH_CHECK();
}

template <typename T> void forward(gpu_conv *c) {
#ifdef CG_HAVE_CUDNN
    cg_cudnn_conv_run(c->forward, c->x, c->w, c->y);
#endif
    add_bias<T>(c);
}

// loss = scale x sum(x[0..n)), two passes.
template <typename T> void mean(gpu_conv *c, const T *x, int64_t n, float scale) {
    constexpr int V = vector_width<T>();
    unsigned blocks = cg_blocks(n) < REDUCE_BLOCKS ? cg_blocks(n) : REDUCE_BLOCKS;
    if (n % V == 0)
        sum_partial_kernel<T, V><<<blocks, CG_THREADS, 0, cg_cuda_stream()>>>(c->partial, x, n / V);
    else
        sum_partial_kernel<T, 1><<<blocks, CG_THREADS, 0, cg_cuda_stream()>>>(c->partial, x, n);
    CG_LAUNCH_CHECK();
    LAUNCH_ONE_BLOCK(sum_finish_kernel, c->loss, c->partial, (int64_t)blocks, scale);
}

template <typename T> void bias_grad(gpu_conv *c) {
    int64_t N = c->d[0], K = c->d[4], PQ = c->d[9] * c->d[10];
    cudaStream_t s = cg_cuda_stream();
    if (c->nhwc) {
        dim3 grid(REDUCE_BLOCKS, (unsigned)((K + 31) / 32)), block(32, ROW_THREADS);
        bias_grad_rows_kernel<T><<<grid, block, 0, s>>>(c->partial, (const T *)c->dy, N * PQ, K);
        CG_LAUNCH_CHECK();
        LAUNCH(bias_grad_total_kernel<T>, K, (T *)c->dbias, c->partial, (int64_t)REDUCE_BLOCKS, K, false);
    } else {
        constexpr int V = vector_width<T>();
        dim3 grid((unsigned)K, (unsigned)N);
        if (PQ % V == 0)
            bias_grad_planes_kernel<T, V><<<grid, CG_THREADS, 0, s>>>(c->partial, (const T *)c->dy, PQ / V);
        else
            bias_grad_planes_kernel<T, 1><<<grid, CG_THREADS, 0, s>>>(c->partial, (const T *)c->dy, PQ);
        CG_LAUNCH_CHECK();
        LAUNCH(bias_grad_total_kernel<T>, K, (T *)c->dbias, c->partial, N, K, true);
    }
}

template <typename T> void fill(T *x, float value, int64_t n) {
    constexpr int V = vector_width<T>();
    if (n % V == 0)
        fill_kernel<T, V><<<cg_blocks(n / V), CG_THREADS, 0, cg_cuda_stream()>>>(x, value, n / V);
    else
        fill_kernel<T, 1><<<cg_blocks(n), CG_THREADS, 0, cg_cuda_stream()>>>(x, value, n);
    CG_LAUNCH_CHECK();
}

template <typename T> void train_step(gpu_conv *c) {
    int64_t ny = c->d[0] * c->d[4] * c->d[9] * c->d[10];
    forward<T>(c);
    mean<T>(c, (const T *)c->y, ny, 1.0f / (float)ny); // loss = mean(y)
    fill<T>((T *)c->dy, c->dy_value, ny);               // dy = d loss / dy
#ifdef CG_HAVE_CUDNN
    cg_cudnn_conv_run(c->backward_filter, c->x, c->dw, c->dy); // dw += conv_backward_filter(x, dy)
#endif
    bias_grad<T>(c); // dbias += sum of dy over N, P, Q
}

template <typename T> void pack(void *dst, const float *src, int64_t N, int64_t C, int64_t HW, int64_t Cs, bool nhwc) {
    LAUNCH(pack_kernel<T>, N * Cs * HW, (T *)dst, src, N, C, HW, Cs, nhwc);
}

void conv_free(void *conv) {
    gpu_conv *c = (gpu_conv *)conv;
    if (c == NULL) return;
    cg_cuda_use_gpu(c->index);
#ifdef CG_HAVE_CUDNN
    cg_cudnn_conv_free(c->forward);
    cg_cudnn_conv_free(c->backward_filter);
#endif
    void *buffers[] = {c->x, c->w, c->bias, c->y, c->dy, c->dw, c->dbias, c->loss, c->partial};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        if (buffers[i]) cg_cuda_free(buffers[i]);
    free(c);
}

cg_status conv_new(int index, cg_bench_precision p, const cg_bench_conv_shape *s, uint64_t seed, void **out,
                   char *about, size_t about_size) {
    *out = NULL;
#ifndef CG_HAVE_CUDNN
    (void)index, (void)p, (void)s, (void)seed, (void)about, (void)about_size;
    return cg_error(CG_ERR_DEVICE, "this build has no cuDNN: the tuned convolutions need it");
#else
    if (p == CG_BENCH_INT8) return cg_error(CG_ERR_DEVICE, "int8 convolutions are not measured");
    cg_cuda_use_gpu(index);
    gpu_conv *c = (gpu_conv *)cg_xcalloc(1, sizeof *c);
    c->index = index;
    c->dtype = p == CG_BENCH_FP16 ? CG_F16 : p == CG_BENCH_BF16 ? CG_BF16 : CG_F32;
    c->nhwc = c->dtype != CG_F32;
    c->C = s->C;
    int64_t Cs = c->nhwc ? (s->C + 7) / 8 * 8 : s->C; // 16-byte rows of f16 / bf16 channels
    int64_t P = (s->H + 2 * s->pad - s->R) / s->stride + 1, Q = (s->W + 2 * s->pad - s->S) / s->stride + 1;
    int64_t d[11] = {s->N, Cs, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, P, Q};
    memcpy(c->d, d, sizeof d);
    CG_CHECK(s->N <= 65535 && s->K <= 65535 * 32, "conv benchmark: batch %lld or %lld channels too large",
             (long long)s->N, (long long)s->K);
    size_t size = c->dtype == CG_F32 ? 4 : 2;
    int64_t nx = s->N * Cs * s->H * s->W, nw = s->K * Cs * s->R * s->S, ny = s->N * s->K * P * Q;
    c->x = cg_cuda_alloc((size_t)nx * size);
    c->w = cg_cuda_alloc((size_t)nw * size);
    c->dw = cg_cuda_alloc((size_t)nw * size);
    c->bias = cg_cuda_alloc((size_t)s->K * size);
    c->dbias = cg_cuda_alloc((size_t)s->K * size);
    c->y = cg_cuda_alloc((size_t)ny * size);
    c->dy = cg_cuda_alloc((size_t)ny * size);
    c->loss = (float *)cg_cuda_alloc(sizeof(float));
    c->partial_count = REDUCE_BLOCKS * s->K > s->N * s->K ? REDUCE_BLOCKS * s->K : s->N * s->K;
    c->partial = (float *)cg_cuda_alloc((size_t)c->partial_count * sizeof(float));
    // fp16's smallest subnormal is 6e-8; 1 / numel(y) (2.4e-9 for the course's layer) would be 0.
    c->dy_value = (c->dtype == CG_F16 ? 65536.0f : 1.0f) / (float)ny;

    // The same draws as the f32 path of core/bench.c, converted to the stored format and layout.
    int64_t n_real_x = s->N * s->C * s->H * s->W, n_real_w = s->K * s->C * s->R * s->S;
    int64_t n_scratch = n_real_x > n_real_w ? n_real_x : n_real_w;
    float *scratch = (float *)cg_cuda_alloc((size_t)(n_scratch > s->K ? n_scratch : s->K) * sizeof(float));
    float bound = 1.0f / sqrtf((float)(s->C * s->R * s->S));
    void (*pack_fn)(void *, const float *, int64_t, int64_t, int64_t, int64_t, bool) =
        c->dtype == CG_F16 ? pack<__half> : c->dtype == CG_BF16 ? pack<__nv_bfloat16> : pack<float>;
    rng_uniform_cuda(scratch, n_real_x, seed, CG_STREAM_DATA, 0, -1.0f, 1.0f);
    pack_fn(c->x, scratch, s->N, s->C, s->H * s->W, Cs, c->nhwc);
    rng_uniform_cuda(scratch, n_real_w, seed, CG_STREAM_INIT, 0, -bound, bound);
    pack_fn(c->w, scratch, s->K, s->C, s->R * s->S, Cs, c->nhwc);
    rng_uniform_cuda(scratch, s->K, seed, CG_STREAM_INIT, (uint64_t)((n_real_w + 3) / 4), -bound, bound);
    pack_fn(c->bias, scratch, 1, s->K, 1, s->K, false);
    cg_cuda_free(scratch);
    cudaStream_t stream = cg_cuda_stream();
    CG_CUDA_CHECK(cudaMemsetAsync(c->dw, 0, (size_t)nw * size, stream));
    CG_CUDA_CHECK(cudaMemsetAsync(c->dbias, 0, (size_t)s->K * size, stream));
    CG_CUDA_CHECK(cudaMemsetAsync(c->y, 0, (size_t)ny * size, stream));
    if (c->dtype == CG_F16)
        fill<__half>((__half *)c->dy, c->dy_value, ny);
    else if (c->dtype == CG_BF16)
        fill<__nv_bfloat16>((__nv_bfloat16 *)c->dy, c->dy_value, ny);
    else
        fill<float>((float *)c->dy, c->dy_value, ny);

    // The engines, each the fastest of those cuDNN offers for this format (timed on these buffers).
    bool allow_reduced = p != CG_BENCH_FP32; // tf32, and the 16-bit formats on Tensor Cores
    char about_forward[256], about_filter[256];
    c->forward = cg_cudnn_conv_tune(CG_CUDNN_FORWARD, c->dtype, c->nhwc, allow_reduced, c->d, c->x, c->w, c->y,
                                    about_forward, sizeof about_forward);
    c->backward_filter = c->forward == NULL ? NULL
                                            : cg_cudnn_conv_tune(CG_CUDNN_BACKWARD_FILTER, c->dtype, c->nhwc,
                                                                 allow_reduced, c->d, c->x, c->dw, c->dy, about_filter,
                                                                 sizeof about_filter);
    if (c->backward_filter == NULL) {
        cg_status st = cg_error(CG_ERR_DEVICE, "%s convolution: %s", precision_names[p],
                                c->forward == NULL ? about_forward : about_filter);
        conv_free(c);
        return st;
    }
    CG_CUDA_CHECK(cudaMemsetAsync(c->dw, 0, (size_t)nw * size, stream)); // the timing runs added to it
    if (c->nhwc)
        snprintf(about, about_size, "NHWC %s, C %lld padded to %lld; %s; %s", precision_names[p], (long long)s->C,
                 (long long)Cs, about_forward, about_filter);
    else
        snprintf(about, about_size, "NCHW %s%s; %s; %s", precision_names[p],
                 p == CG_BENCH_TF32 ? " (TF32 Tensor Cores allowed)" : " (no TF32)", about_forward, about_filter);
    *out = c;
    return cg_ok();
#endif
}

void conv_forward(void *conv) {
    gpu_conv *c = (gpu_conv *)conv;
    cg_cuda_use_gpu(c->index);
    if (c->dtype == CG_F16)
        forward<__half>(c);
    else if (c->dtype == CG_BF16)
        forward<__nv_bfloat16>(c);
    else
        forward<float>(c);
}

void conv_train_step(void *conv) {
    gpu_conv *c = (gpu_conv *)conv;
    cg_cuda_use_gpu(c->index);
    if (c->dtype == CG_F16)
        train_step<__half>(c);
    else if (c->dtype == CG_BF16)
        train_step<__nv_bfloat16>(c);
    else
        train_step<float>(c);
}

void conv_buffers(void *conv, cg_bench_conv_buffers *out) {
    gpu_conv *c = (gpu_conv *)conv;
    *out = cg_bench_conv_buffers{c->x, c->w, c->bias, c->y, c->dy, c->dw, c->dbias, c->dtype, c->nhwc, c->d[1]};
}

} // namespace

extern "C" const cg_cuda_bench *cg_cuda_bench_table(void) {
    static const cg_cuda_bench table = {
        timer_new, timer_start, timer_stop,      timer_free,   convert_from_f32, gemm,
        conv_new,  conv_forward, conv_train_step, conv_buffers, conv_free,
    };
    return &table;
}

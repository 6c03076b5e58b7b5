// gemm.cu: matrix products: the engine's kernels for small ones, cuBLAS (called only here)
// for the rest. cuBLAS is column-major; a row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, so the
// operands are passed swapped and nothing is transposed in memory. FP32 math (no TF32): the
// handle keeps cuBLAS's default math mode. A fixed workspace from the caching allocator keeps
// cuBLAS from allocating during CUDA Graph capture. Also the benchmark's products in fp32, tf32,
// fp16, bf16 and int8 (gemm_bench_cuda, for core/bench.h), on a handle of their own.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda.h"

#define CG_CUBLAS_CHECK(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t cg_st_ = (call);                                                            \
        if (cg_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
            cg_check_failed(__FILE__, __LINE__, #call, "cuBLAS error %d: %s", (int)cg_st_,        \
                            cublasGetStatusString(cg_st_));                                        \
    } while (0)

#define CG_CUBLAS_WORKSPACE (4 << 20)

static cublasHandle_t handle_for_current_gpu(void) {
    static cublasHandle_t handles[16];
    int gpu = 0;
    CG_CUDA_CHECK(cudaGetDevice(&gpu));
    if (handles[gpu] == NULL) {
        CG_CUBLAS_CHECK(cublasCreate(&handles[gpu]));
        CG_CUBLAS_CHECK(cublasSetStream(handles[gpu], cg_cuda_stream()));
        void *workspace = cg_cuda_alloc(CG_CUBLAS_WORKSPACE);
        CG_CUBLAS_CHECK(cublasSetWorkspace(handles[gpu], workspace, CG_CUBLAS_WORKSPACE));
    }
    return handles[gpu];
}

// Products smaller than this many multiply-adds use small_gemm_kernel instead of cuBLAS.
#define CG_SMALL_GEMM_WORK (1 << 20)

// Small products: one warp (32 threads) per element of C. The lanes share out the K products
// and add their partial sums with warp shuffles: a single thread looping over K would wait on
// one memory load after another, 32 lanes issue their loads at once. For the matrices of a
// small MLP (32 x 50 x 20) this is several times faster than cuBLAS, whose kernels are built
// for large tiles.
static __global__ void small_gemm_kernel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                         const float *A, const float *B, float beta, float *C) {
    int lane = threadIdx.x % 32;
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    for (int64_t idx = warp; idx < M * N; idx += warps) {
        int64_t i = idx / N, j = idx % N;
        float acc = 0.0f;
        for (int64_t k = lane; k < K; k += 32) {
            float a = trans_a ? A[k * M + i] : A[i * K + k];
            float b = trans_b ? B[j * K + k] : B[k * N + j];
            acc += a * b;
        }
        acc = warp_sum(acc);
        if (lane == 0) C[idx] = alpha * acc + (beta == 0.0f ? 0.0f : beta * C[idx]); // beta 0 ignores NaN in C
    }
}

// A small fully connected layer in one kernel, a warp per output:
// y[i][j] = bias[j] + sum over k of x[i][k] w[j][k].
static __global__ void small_linear_kernel(float *y, const float *x, const float *w, const float *bias, int64_t M,
                                           int64_t N, int64_t K) {
    int lane = threadIdx.x % 32;
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    for (int64_t idx = warp; idx < M * N; idx += warps) {
        int64_t i = idx / N, j = idx % N;
        float acc = 0.0f;
        for (int64_t k = lane; k < K; k += 32) acc += x[i * K + k] * w[j * K + k];
        acc = warp_sum(acc);
        if (lane == 0) y[idx] = acc + (bias ? bias[j] : 0.0f);
    }
}

extern "C" {
static void linear_forward_cuda(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                                int64_t K) {
    if (M * N * K < CG_SMALL_GEMM_WORK) {
        LAUNCH(small_linear_kernel, 32 * M * N, y, x, w, bias, M, N, K);
        return;
    }
    gemm_cuda(false, true, M, N, K, 1.0f, x, w, 0.0f, y);
    if (bias) add_bias_forward_cuda(y, y, bias, M, N);
}

void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               const float *B, float beta, float *C) {
    if (M * N * K < CG_SMALL_GEMM_WORK) {
        LAUNCH(small_gemm_kernel, 32 * M * N, trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
        return;
    }
    cublasHandle_t h = handle_for_current_gpu();
    int lda = (int)(trans_a ? M : K), ldb = (int)(trans_b ? K : N);
    CG_CUBLAS_CHECK(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
                                (int)M, (int)K, &alpha, B, ldb, A, lda, &beta, C, (int)N));
}

// The benchmark's handle: cuBLAS's default math mode (like PyTorch's defaults, it lets fp16 and
// bf16 products reduce split sums in their own format), and a 32 MiB workspace, the size PyTorch
// gives cuBLAS on Hopper (4 MiB before it), so that both libraries may choose the same kernels.
#define CG_CUBLAS_BENCH_WORKSPACE (32 << 20)

static cublasHandle_t bench_handle_for_current_gpu(void) {
    static cublasHandle_t handles[16];
    int gpu = 0;
    CG_CUDA_CHECK(cudaGetDevice(&gpu));
    CG_CHECK(gpu >= 0 && gpu < 16, "cuda:%d: at most 16 GPUs", gpu);
    if (handles[gpu] == NULL) {
        CG_CUBLAS_CHECK(cublasCreate(&handles[gpu]));
        CG_CUBLAS_CHECK(cublasSetStream(handles[gpu], cg_cuda_stream()));
        void *workspace = cg_cuda_alloc(CG_CUBLAS_BENCH_WORKSPACE);
        CG_CUBLAS_CHECK(cublasSetWorkspace(handles[gpu], workspace, CG_CUBLAS_BENCH_WORKSPACE));
    }
    return handles[gpu];
}

cg_status gemm_bench_cuda(cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K, const void *A,
                          const void *B, void *C) {
    CG_CHECK(M > 0 && N > 0 && K > 0 && M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX,
             "gemm %lld x %lld x %lld: sizes must be in 1..2^31-1", (long long)M, (long long)N, (long long)K);
    cudaDataType_t in_type, out_type;
    cublasComputeType_t compute;
    switch (p) {
    case CG_BENCH_FP32: in_type = CUDA_R_32F, out_type = CUDA_R_32F, compute = CUBLAS_COMPUTE_32F; break;
    case CG_BENCH_TF32: in_type = CUDA_R_32F, out_type = CUDA_R_32F, compute = CUBLAS_COMPUTE_32F_FAST_TF32; break;
    case CG_BENCH_FP16: in_type = CUDA_R_16F, out_type = CUDA_R_16F, compute = CUBLAS_COMPUTE_32F; break;
    case CG_BENCH_BF16: in_type = CUDA_R_16BF, out_type = CUDA_R_16BF, compute = CUBLAS_COMPUTE_32F; break;
    case CG_BENCH_INT8: in_type = CUDA_R_8I, out_type = CUDA_R_32I, compute = CUBLAS_COMPUTE_32I; break;
    default: CG_CHECK(0, "bad precision %d", (int)p);
    }
    // alpha and beta have the compute type: int32 for CUBLAS_COMPUTE_32I, float otherwise.
    float alpha_f = 1.0f, beta_f = 0.0f;
    int32_t alpha_i = 1, beta_i = 0;
    const void *alpha = p == CG_BENCH_INT8 ? (const void *)&alpha_i : (const void *)&alpha_f;
    const void *beta = p == CG_BENCH_INT8 ? (const void *)&beta_i : (const void *)&beta_f;
    // Row-major C (M, N) = A op(B) is column-major C^T (N, M) = op(B)^T A^T: B goes first.
    int ldb = (int)(trans_b ? K : N), lda = (int)K;
    cublasStatus_t st = cublasGemmEx(bench_handle_for_current_gpu(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                                     (int)N, (int)M, (int)K, alpha, B, in_type, ldb, A, in_type, lda, beta, C, out_type,
                                     (int)N, compute, CUBLAS_GEMM_DEFAULT);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_ARCH_MISMATCH || st == CUBLAS_STATUS_INVALID_VALUE) {
        static const char *const names[] = {"fp32", "tf32", "fp16", "bf16", "int8"};
        return cg_error(CG_ERR_DEVICE, "cuBLAS cannot run a %s product on this GPU: %s", names[p],
                        cublasGetStatusString(st));
    }
    CG_CUBLAS_CHECK(st);
    CG_LAUNCH_CHECK();
    return cg_ok();
}

} // extern "C"

// ---- mixed precision: 16-bit products with f32 accumulation ------------------------------------------

static __device__ __forceinline__ float wide16(__half v) { return __half2float(v); }
static __device__ __forceinline__ float wide16(__nv_bfloat16 v) { return __bfloat162float(v); }
static __device__ __forceinline__ void store16(__half *p, float v) { *p = __float2half_rn(v); }
static __device__ __forceinline__ void store16(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// small_gemm_kernel on 16-bit data: the sums in f32, one rounding when C is stored.
template <typename T>
static __global__ void small_gemm_h_kernel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                           const T *A, const T *B, float beta, T *C) {
    int lane = threadIdx.x % 32;
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    for (int64_t idx = warp; idx < M * N; idx += warps) {
        int64_t i = idx / N, j = idx % N;
        float acc = 0.0f;
        for (int64_t k = lane; k < K; k += 32) {
            float a = wide16(trans_a ? A[k * M + i] : A[i * K + k]);
            float b = wide16(trans_b ? B[j * K + k] : B[k * N + j]);
            acc += a * b;
        }
        acc = warp_sum(acc);
        if (lane == 0) store16(&C[idx], alpha * acc + (beta == 0.0f ? 0.0f : beta * wide16(C[idx])));
    }
}

// y (M, N) = bias broadcast over the rows (16-bit), before a product that adds to it (beta 1):
// the bias is then added in f32 inside the product, and y rounded once.
template <typename T> static __global__ void broadcast_rows_kernel(T *y, const T *bias, int64_t M, int64_t N) {
    GRID_STRIDE(i, M * N) y[i] = bias[i % N];
}

extern "C" {
static cudaDataType_t cuda_type16(cg_dtype dtype) {
    CG_CHECK(dtype == CG_F16 || dtype == CG_BF16, "a 16-bit product with dtype %s", cg_dtype_name(dtype));
    return dtype == CG_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

static void gemm_h_cuda(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const void *A, const void *B, float beta, void *C) {
    cudaDataType_t type = cuda_type16(dtype);
    if (M * N * K < CG_SMALL_GEMM_WORK) {
        if (dtype == CG_F16)
            LAUNCH(small_gemm_h_kernel<__half>, 32 * M * N, trans_a, trans_b, M, N, K, alpha, (const __half *)A,
                   (const __half *)B, beta, (__half *)C);
        else
            LAUNCH(small_gemm_h_kernel<__nv_bfloat16>, 32 * M * N, trans_a, trans_b, M, N, K, alpha,
                   (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)B, beta, (__nv_bfloat16 *)C);
        return;
    }
    // Tensor Cores with f32 accumulation (CUBLAS_COMPUTE_32F): the products of 16-bit values
    // are exact in f32, their sums are f32, and C is rounded to 16 bits once.
    cublasHandle_t h = handle_for_current_gpu();
    int lda = (int)(trans_a ? M : K), ldb = (int)(trans_b ? K : N);
    CG_CUBLAS_CHECK(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
                                 (int)M, (int)K, &alpha, B, type, ldb, A, type, lda, &beta, C, type, (int)N,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void linear_forward_h_cuda(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                                  int64_t N, int64_t K) {
    if (bias) {
        if (dtype == CG_F16)
            LAUNCH(broadcast_rows_kernel<__half>, M * N, (__half *)y, (const __half *)bias, M, N);
        else
            LAUNCH(broadcast_rows_kernel<__nv_bfloat16>, M * N, (__nv_bfloat16 *)y, (const __nv_bfloat16 *)bias, M, N);
    }
    gemm_h_cuda(dtype, false, true, M, N, K, 1.0f, x, w, bias ? 1.0f : 0.0f, y);
}

int cg_cuda_cublas_version(void) {
    int version = 0;
    CG_CUBLAS_CHECK(cublasGetVersion(handle_for_current_gpu(), &version));
    return version;
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void gemm_register_cuda(cg_kernels *k) {
    k->gemm = gemm_cuda;
    k->linear_forward = linear_forward_cuda;
    k->gemm_h = gemm_h_cuda;
    k->linear_forward_h = linear_forward_h_cuda;
}

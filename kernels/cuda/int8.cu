// int8.cu: the GPU's int8 inference kernels (core/qkernels.h): quantising a float batch into
// NHWC int8, im2col on int8, the int8 GEMM and its output stage, int8 max pooling.
// The GEMM goes through cuBLASLt (int8 inputs, CUBLAS_COMPUTE_32I, int32 sums: the int8 Tensor
// Cores) where its layout rules allow: "TN" (the int8 operands k-contiguous, as ours are),
// leading dimensions and output channels multiples of 4, 4-byte aligned pointers. Otherwise
// (and when cuBLASLt offers no algorithm) a dp4a kernel: __dp4a adds four int8 x int8 products
// into an int32 per instruction (sm_61 and later), its output stage fused.
// The output stage does exactly what the CPU does (qkernels.h): __int2float_rn, __fmul_rn,
// __float2int_rn, so that the integers are the same bits on both devices.
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/qkernels.h"
#include "kernels/cuda/cuda.h"

#define CG_CUBLASLT_CHECK(call)                                                                    \
    do {                                                                                           \
        cublasStatus_t cg_st_ = (call);                                                            \
        if (cg_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
            cg_check_failed(__FILE__, __LINE__, #call, "cuBLASLt error %d: %s", (int)cg_st_,      \
                            cublasGetStatusString(cg_st_));                                        \
    } while (0)

// ---- quantise, im2col, max pooling --------------------------------------------------------------

static __global__ void quantize_nchw_kernel(int8_t *q, const float *x, int64_t N, int64_t C, int64_t HW, float scale,
                                            int32_t zero_point) {
    GRID_STRIDE(i, N * HW * C) { // i indexes q (N, HW, C)
        int64_t c = i % C, hw = i / C % HW, n = i / (C * HW);
        float v = __fdiv_rn(x[(n * C + c) * HW + hw], scale);
        v = fminf(fmaxf(v, -32768.0f), 32767.0f);
        int r = __float2int_rn(v) + zero_point;
        q[i] = (int8_t)min(max(r, -128), 127);
    }
}

static void quantize_nchw_cuda(int8_t *q, const float *x, int64_t N, int64_t C, int64_t HW, float scale,
                               int32_t zero_point) {
    LAUNCH(quantize_nchw_kernel, N * HW * C, q, x, N, C, HW, scale, zero_point);
}

// cols (M, Kp) i8, row = output pixel (n, p, q), columns (r, s, c); outside the image the
// input's zero point, the padding columns K .. Kp zero.
// The same, 4 bytes (one 32-bit word) per thread with 32-bit index arithmetic, for sizes that fit
// in 32 bits (the host checks): one thread per byte with 64-bit divisions spent far more time on
// the indices than on the copying (the tutorial CNN's second layer has 231 M bytes of columns at
// batch 4096). Kp is a multiple of 4, cols 4-byte aligned; byte b of a word is column 4 j + b.
static __global__ void im2col_int8_words_kernel(uint32_t *cols, const int8_t *x, int8_t pad_value, int M, int Kp4,
                                                int H, int W, int C, int R, int S, int stride, int pad, int P, int Q) {
    const int K = R * S * C, PQ = P * Q;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < M * Kp4; i += gridDim.x * blockDim.x) {
        int row = i / Kp4, k0 = (i - row * Kp4) * 4;
        int n = row / PQ, pq = row - n * PQ, p = pq / Q, q = pq - p * Q;
        uint32_t word = 0;
        for (int b = 0; b < 4; b++) {
            int k = k0 + b;
            int8_t v = 0;
            if (k < K) {
                int rs = k / C, c = k - rs * C, r = rs / S, s = rs - r * S;
                int ih = p * stride - pad + r, iw = q * stride - pad + s;
                v = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? pad_value
                                                             : x[(((int64_t)n * H + ih) * W + iw) * C + c];
            }
            word |= (uint32_t)(uint8_t)v << (8 * b);
        }
        cols[i] = word;
    }
}

static __global__ void im2col_int8_kernel(int8_t *cols, const int8_t *x, int8_t pad_value, int64_t M, int64_t Kp,
                                          int64_t H, int64_t W, int64_t C, int64_t R, int64_t S, int64_t stride,
                                          int64_t pad, int64_t P, int64_t Q) {
    GRID_STRIDE(i, M * Kp) {
        int64_t row = i / Kp, k = i % Kp;
        int8_t v = 0;
        if (k < R * S * C) {
            int64_t c = k % C, s = k / C % S, r = k / (C * S);
            int64_t n = row / (P * Q), p = row / Q % P, q = row % Q;
            int64_t ih = p * stride - pad + r, iw = q * stride - pad + s;
            v = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? pad_value : x[((n * H + ih) * W + iw) * C + c];
        }
        cols[i] = v;
    }
}

static __global__ void max_pool2d_int8_kernel(int8_t *y, const int8_t *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                              int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    GRID_STRIDE(i, N * P * Q * C) {
        int64_t c = i % C, q = i / C % Q, p = i / (C * Q) % P, n = i / (C * Q * P);
        int m = -128;
        for (int64_t a = 0; a < kernel; a++)
            for (int64_t b = 0; b < kernel; b++)
                m = max(m, (int)x[((n * H + p * stride + a) * W + q * stride + b) * C + c]);
        y[i] = (int8_t)m;
    }
}

static void max_pool2d_int8_cuda(int8_t *y, const int8_t *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                 int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    LAUNCH(max_pool2d_int8_kernel, N * P * Q * C, y, x, N, H, W, C, kernel, stride, P, Q);
}

// ---- the output stage -----------------------------------------------------------------------------

// Element (row, j) of the output from its int32 sum, as qkernels.h defines it.
static __device__ __forceinline__ void stage_one(void *y, int64_t row, int64_t j, int64_t Nout, int32_t acc,
                                                 const cg_qoutput out) {
    float v = __fmul_rn(__int2float_rn(acc + out.offset[j]), out.multiplier[j]);
    if (out.to_float) {
        ((float *)y)[row * Nout + j] = out.relu ? fmaxf(v, 0.0f) : v;
        return;
    }
    v = fminf(fmaxf(v, -32768.0f), 32767.0f);
    int q = __float2int_rn(v) + out.zero_point;
    q = min(max(q, out.relu ? out.zero_point : -128), 127);
    ((int8_t *)y)[row * Nout + j] = (int8_t)q;
}

static __global__ void stage_kernel(void *y, const int32_t *acc, int64_t M, int64_t Nout, const cg_qoutput out) {
    GRID_STRIDE(i, M * Nout) stage_one(y, i / Nout, i % Nout, Nout, acc[i], out);
}

// ---- the dp4a GEMM ------------------------------------------------------------------------------
// A 64 x 64 tile of outputs per block of 256 threads, each thread 4 x 4 outputs (rows ty + 16 i,
// columns tx + 16 j), k in steps of 32 bytes (8 words of 4 int8) staged in shared memory.
#define TILE 64
#define TILE_WORDS 8

static __global__ void gemm_dp4a_kernel(void *y, const int8_t *A, const int8_t *B, int64_t M, int64_t Nout,
                                        int64_t Kp, const cg_qoutput out) {
    __shared__ int As[TILE_WORDS][TILE + 1], Bs[TILE_WORDS][TILE + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t row0 = (int64_t)blockIdx.x * TILE, col0 = (int64_t)blockIdx.y * TILE, Kw = Kp / 4;
    const int *Aw = (const int *)A, *Bw = (const int *)B; // rows of Kp bytes = Kw words
    int acc[4][4] = {{0}};
    for (int64_t k0 = 0; k0 < Kw; k0 += TILE_WORDS) {
        for (int l = threadIdx.x; l < TILE * TILE_WORDS; l += blockDim.x) {
            int r = l / TILE_WORDS, w = l % TILE_WORDS;
            int64_t k = k0 + w;
            As[w][r] = row0 + r < M && k < Kw ? Aw[(row0 + r) * Kw + k] : 0;
            Bs[w][r] = col0 + r < Nout && k < Kw ? Bw[(col0 + r) * Kw + k] : 0;
        }
        __syncthreads();
        for (int w = 0; w < TILE_WORDS; w++) {
            int a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = As[w][ty + 16 * i];
            for (int j = 0; j < 4; j++) b[j] = Bs[w][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int64_t row = row0 + ty + 16 * i, col = col0 + tx + 16 * j;
            if (row < M && col < Nout) stage_one(y, row, col, Nout, acc[i][j], out);
        }
}

// ---- cuBLASLt ------------------------------------------------------------------------------------

#define CG_CUBLASLT_WORKSPACE (4 << 20)

static cublasLtHandle_t lt_handle(void **workspace) {
    static cublasLtHandle_t handles[16];
    static void *workspaces[16];
    int gpu = 0;
    CG_CUDA_CHECK(cudaGetDevice(&gpu));
    if (handles[gpu] == NULL) {
        CG_CUBLASLT_CHECK(cublasLtCreate(&handles[gpu]));
        workspaces[gpu] = cg_cuda_alloc(CG_CUBLASLT_WORKSPACE);
    }
    *workspace = workspaces[gpu];
    return handles[gpu];
}

// acc (M, Nout) i32 = A (M, Kp) B (Nout, Kp)^T through cuBLASLt; false (nothing queued) when
// cuBLASLt has no algorithm (cublaslt_layout_ok: the layout rules, 16-byte aligned operands).
// cuBLASLt is column-major: it computes acc^T (Nout, M) = op("A") op("B") with "A" = our B read as
// (Kp x Nout, lda Kp) and transposed, "B" = our A read as (Kp x M, ldb Kp) as it is, and C read as
// (Nout x M, ldc Nout): the TN form that int8 Tensor Cores take.
static bool cublaslt_layout_ok(const int8_t *A, const int8_t *B, int64_t Nout, int64_t Kp, int64_t M) {
    return Nout % 4 == 0 && Kp % 4 == 0 && M <= INT32_MAX && ((uintptr_t)A | (uintptr_t)B) % 16 == 0;
}

static bool gemm_cublaslt(int32_t *acc, const int8_t *A, const int8_t *B, int64_t M, int64_t Nout, int64_t Kp) {
    void *workspace = NULL;
    cublasLtHandle_t h = lt_handle(&workspace);
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    CG_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    CG_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    CG_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n));
    CG_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, (uint64_t)Kp, (uint64_t)Nout, Kp));
    CG_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, (uint64_t)Kp, (uint64_t)M, Kp));
    CG_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, (uint64_t)Nout, (uint64_t)M, Nout));
    cublasLtMatmulPreference_t pref;
    CG_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = CG_CUBLASLT_WORKSPACE;
    CG_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, lc, lc, pref, 1, &result, &found);
    bool ok = st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        int32_t alpha = 1, beta = 0;
        st = cublasLtMatmul(h, op, &alpha, B, la, A, lb, &beta, acc, lc, acc, lc, &result.algo, workspace, ws,
                            cg_cuda_stream());
        ok = st == CUBLAS_STATUS_SUCCESS;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(op);
    return ok;
}

// The GEMM path: cuBLASLt where its layout rules allow and it offers an algorithm, else dp4a;
// always dp4a when the environment variable CGRAD_INT8_GEMM is "dp4a" (read at every call, so
// that test_quant_cuda can compare the two paths).
static bool dp4a_forced(void) {
    const char *e = getenv("CGRAD_INT8_GEMM");
    return e && strcmp(e, "dp4a") == 0;
}

static int64_t cublaslt_count = 0; // products that went through cuBLASLt

static int64_t cublaslt_gemms(void) { return cublaslt_count; }

// y (M, Nout) = output stage of A (M, Kp) B (Nout, Kp)^T.
static void gemm_int8(void *y, const int8_t *A, const int8_t *B, const cg_qoutput *out, int64_t M, int64_t Nout,
                      int64_t Kp) {
    if (M == 0) return;
    if (!dp4a_forced() && cublaslt_layout_ok(A, B, Nout, Kp, M)) {
        int32_t *acc = (int32_t *)cg_cuda_alloc((size_t)(M * Nout) * sizeof(int32_t));
        bool done = gemm_cublaslt(acc, A, B, M, Nout, Kp);
        cublaslt_count += done;
        if (done) LAUNCH(stage_kernel, M * Nout, y, acc, M, Nout, *out);
        cg_cuda_free(acc); // the caching allocator: reused only by later work on the same stream
        if (done) return;
    }
    dim3 grid((unsigned)((M + TILE - 1) / TILE), (unsigned)((Nout + TILE - 1) / TILE));
    gemm_dp4a_kernel<<<grid, 256, 0, cg_cuda_stream()>>>(y, A, B, M, Nout, Kp, *out);
    CG_LAUNCH_CHECK();
}

// ---- the layers ----------------------------------------------------------------------------------

static void linear_int8_cuda(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int64_t M,
                             int64_t Nout, int64_t K) {
    const int64_t Kp = CG_QK_PAD(K);
    if (Kp == K) {
        gemm_int8(y, x, w, out, M, Nout, Kp);
        return;
    }
    // Rows of x padded to Kp with zeros (im2col of a 1 x 1 "image" per row does exactly that).
    int8_t *xp = (int8_t *)cg_cuda_alloc((size_t)(M * Kp));
    LAUNCH(im2col_int8_kernel, M * Kp, xp, x, (int8_t)0, M, Kp, 1, 1, K, 1, 1, 1, 0, 1, 1);
    gemm_int8(y, xp, w, out, M, Nout, Kp);
    cg_cuda_free(xp);
}

static void conv2d_int8_cuda(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int32_t x_zero_point,
                             int64_t N, int64_t H, int64_t W, int64_t C, int64_t Kout, int64_t R, int64_t S,
                             int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    const int64_t M = N * P * Q, Kp = CG_QK_PAD(R * S * C);
    int8_t *cols = (int8_t *)cg_cuda_alloc((size_t)(M * Kp));
    if (M * Kp < INT32_MAX && N * H * W < INT32_MAX && Kp % 4 == 0 && (uintptr_t)cols % 4 == 0)
        LAUNCH(im2col_int8_words_kernel, M * Kp / 4, (uint32_t *)cols, x, (int8_t)x_zero_point, (int)M, (int)(Kp / 4),
               (int)H, (int)W, (int)C, (int)R, (int)S, (int)stride, (int)pad, (int)P, (int)Q);
    else
        LAUNCH(im2col_int8_kernel, M * Kp, cols, x, (int8_t)x_zero_point, M, Kp, H, W, C, R, S, stride, pad, P, Q);
    gemm_int8(y, cols, w, out, M, Kout, Kp);
    cg_cuda_free(cols);
}

static cg_qkernels qtable;

extern "C" const cg_qkernels *cg_cuda_qkernel_table(void) {
    if (qtable.device_name == NULL) {
        qtable.quantize_nchw = quantize_nchw_cuda;
        qtable.linear = linear_int8_cuda;
        qtable.conv2d = conv2d_int8_cuda;
        qtable.max_pool2d = max_pool2d_int8_cuda;
        qtable.cublaslt_gemms = cublaslt_gemms;
        qtable.device_name = "cuda";
    }
    return &qtable;
}

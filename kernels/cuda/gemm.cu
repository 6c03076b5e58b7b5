// gemm.cu: matrix products through cuBLAS, the only file that calls it. cuBLAS is
// column-major; a row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, so the
// operands are passed swapped and nothing is transposed in memory. FP32 math (no TF32): the
// handle keeps cuBLAS's default math mode. A fixed workspace from the caching allocator keeps
// cuBLAS from allocating during CUDA Graph capture.
#include <cublas_v2.h>

#include "../../core/device.h"
#include "cuda.h"

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
        cg_device dev = {CG_CUDA, gpu};
        void *workspace = cg_device_alloc(dev, CG_CUBLAS_WORKSPACE);
        CG_CUBLAS_CHECK(cublasSetWorkspace(handles[gpu], workspace, CG_CUBLAS_WORKSPACE));
    }
    return handles[gpu];
}

extern "C" {
void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               const float *B, float beta, float *C) {
    cublasHandle_t h = handle_for_current_gpu();
    int lda = (int)(trans_a ? M : K), ldb = (int)(trans_b ? K : N);
    CG_CUBLAS_CHECK(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
                                (int)M, (int)K, &alpha, B, ldb, A, lda, &beta, C, (int)N));
}

int cg_cuda_cublas_version(void) {
    int version = 0;
    CG_CUBLAS_CHECK(cublasGetVersion(handle_for_current_gpu(), &version));
    return version;
}
}

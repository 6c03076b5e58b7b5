// device_cuda.h: what kernels/cuda needs from core/device_cuda.c: the stream every kernel,
// copy and cuBLAS call of the current GPU is queued on. Private to the CUDA backend.
#ifndef CG_DEVICE_CUDA_H
#define CG_DEVICE_CUDA_H

#include <cuda_runtime.h>

#include "core/common.h"

#ifdef __cplusplus
extern "C" {
#endif

// The stream of the GPU in use (made on first use; not the legacy default stream, which
// cannot be captured into a CUDA Graph).
cudaStream_t cg_cuda_stream(void);
// Make GPU `index` the one this thread's CUDA calls (and cg_cuda_stream) go to.
void cg_cuda_use_gpu(int index);
// cuBLAS's version, from kernels/cuda/gemm.cu (the only file that calls cuBLAS).
int cg_cuda_cublas_version(void);
// Device memory of the current GPU from the caching allocator of device_cuda.c (workspaces).
void *cg_cuda_alloc(size_t bytes);
void cg_cuda_free(void *p);
// The GPU's kernel table, from kernels/cuda/table.cu.
const struct cg_kernels *cg_cuda_kernel_table(void);
// The GPU's int8 inference kernels, from kernels/cuda/int8.cu.
const struct cg_qkernels *cg_cuda_qkernel_table(void);

// Abort with file:line and CUDA's own error string when a CUDA call fails.
#define CG_CUDA_CHECK(call)                                                                            \
    do {                                                                                               \
        cudaError_t cg_err_ = (call);                                                                  \
        if (cg_err_ != cudaSuccess)                                                                    \
            cg_check_failed(__FILE__, __LINE__, #call, "CUDA error %d: %s", (int)cg_err_,              \
                            cudaGetErrorString(cg_err_));                                              \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif

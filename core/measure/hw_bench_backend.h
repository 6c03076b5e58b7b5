// bench_backend.h: the GPU half of core/bench.h, a group of the CUDA plugin's table
// (device_backend.h: cg_cuda_backend.bench). Private to core/bench.c and the plugin
// (kernels/cuda/bench.cu fills it; cuBLAS stays in gemm.cu, cuDNN in cudnn_conv.c). `index` is
// the GPU ordinal; pointers are device pointers on it. No CUDA header here.
#ifndef CG_BENCH_BACKEND_H
#define CG_BENCH_BACKEND_H

#include "core/measure/hw_bench.h"

#ifdef __cplusplus
extern "C" {
#endif

// Where a convolution layer keeps its data, for cg_bench_conv_check: device pointers, the
// stored format and layout (NHWC: x (N, H, W, Cs), w (K, R, S, Cs), y and dy (N, P, Q, K)).
typedef struct {
    void *x, *w, *bias, *y, *dy, *dw, *dbias;
    cg_dtype dtype;
    bool nhwc;
    int64_t stored_channels; // Cs: C, or C rounded up to a multiple of 8 in NHWC
} cg_bench_conv_buffers;

typedef struct cg_cuda_bench {
    // CUDA events on the GPU's stream: a start and a stop event; stop waits for the stop event.
    void *(*timer_new)(int index);
    void (*timer_start)(void *timer);
    double (*timer_stop)(void *timer); // seconds
    void (*timer_free)(void *timer);
    // dst[i] = src[i] stored as dtype (F16, BF16: round to nearest even; I8: round(127 x),
    // clamped to +-127), i < n. F32 copies.
    void (*convert_from_f32)(int index, void *dst, cg_dtype dtype, const float *src, int64_t n);
    // cg_bench_gemm on a GPU: cublasGemmEx. Errors: CG_ERR_DEVICE with cuBLAS's status string when
    // it does not support the combination on this GPU; other cuBLAS failures abort.
    cg_status (*gemm)(int index, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K, const void *A,
                      const void *B, void *C);
    // cg_bench_conv with tuned = true: allocates and fills the layer, tunes cuDNN's engines, and
    // writes a one-line description into about. Errors: CG_ERR_DEVICE (no cuDNN in this build, no
    // engine for the shape or format).
    cg_status (*conv_new)(int index, cg_bench_precision p, const cg_bench_conv_shape *shape, uint64_t seed,
                          void **conv, char *about, size_t about_size);
    void (*conv_forward)(void *conv);
    void (*conv_train_step)(void *conv);
    void (*conv_buffers)(void *conv, cg_bench_conv_buffers *out);
    void (*conv_free)(void *conv);
} cg_cuda_bench;

// From kernels/cuda/bench.cu.
const cg_cuda_bench *cg_cuda_bench_table(void);

#ifdef __cplusplus
}
#endif

#endif

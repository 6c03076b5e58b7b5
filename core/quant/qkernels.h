// qkernels.h: the int8 inference kernels one device provides (issue 6), beside the training
// table of kernels.h: quantise a float batch, int8 convolution and fully connected layers with
// int32 sums and a fused output stage, int8 max pooling. Raw pointers on the table's device,
// no tensors, no gradients (post-training quantisation is inference only).
//
// Layout: int8 activations are NHWC, (N, H, W, C) row-major, so that an int8 GEMM over im2col
// rows writes the next layer's input directly (rows = pixels, columns = channels).
// Weights are (Nout, Kp) i8 row-major, symmetric per output channel, with Kp = CG_QK_PAD(K):
// K rounded up to a multiple of 4 (4 bytes per dot-product step of VNNI and dp4a), the padding
// columns zero. A convolution's columns are ordered (r, s, c), matching NHWC im2col.
//
// The arithmetic, identical bit for bit on every device (Jacob et al., CVPR 2018, eq. 7;
// gemmlowp's output pipeline; the float rules are IEEE-754 binary32, round to nearest even):
//   acc[i][j] = sum_k qx[i][k] qw[j][k]                          exact int32
//   a         = acc[i][j] + offset[j]                            int32, offset = round(b / (sx sw)) - zx sum_k qw
//   v         = (float)a * multiplier[j]                         int -> float rounds to nearest even,
//                                                                one float product (no FMA)
//   requantise: q = clamp(rint(clamp(v, -32768, 32767)) + zy, lo, 127), lo = zy if relu else -128
//   dequantise: y = relu ? max(v, 0) : v                         (f32 output: logits)
// multiplier[j] = sx sw[j] / sy to requantise, sx sw[j] to dequantise. The CPU uses cvtdq2ps,
// mulps and cvtps2dq (round to nearest even); the GPU __int2float_rn, __fmul_rn and
// __float2int_rn: the same operations, so the same bits.
#ifndef CG_QKERNELS_H
#define CG_QKERNELS_H

#include "core/device.h"

#ifdef __cplusplus
extern "C" {
#endif

// K rounded up to a multiple of 4.
#define CG_QK_PAD(K) (((K) + 3) / 4 * 4)
// The largest K: |acc| <= 128 * 128 * K and the CPU's unsigned trick adds 128 * 127 * K, < 2^31.
#define CG_QK_MAX_K 65536

// The output stage of an int8 layer (device pointers, Nout values each).
typedef struct {
    const int32_t *offset;    // (Nout,) i32
    const float *multiplier;  // (Nout,) f32
    int32_t zero_point;       // zy, the output's zero point (requantise only)
    bool relu;                // ReLU fused
    bool to_float;            // true: dequantise to f32; false: requantise to i8
} cg_qoutput;

typedef struct cg_qkernels {
    const char *device_name;

    // x (N, C, H, W) f32 -> q (N, H, W, C) i8, q = clamp(rint(clamp(x / scale, -32768, 32767)) +
    // zero_point, -128, 127): a correctly rounded division, as cg_quantize_one.
    void (*quantize_nchw)(int8_t *q, const float *x, int64_t N, int64_t C, int64_t HW, float scale,
                          int32_t zero_point);

    // The fully connected layer: x (M, K) i8, w (Nout, CG_QK_PAD(K)) i8 -> y (M, Nout), i8 or f32
    // as out->to_float says.
    void (*linear)(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int64_t M, int64_t Nout,
                   int64_t K);

    // Convolution as im2col + int8 GEMM: x (N, H, W, C) i8 with zero point x_zero_point (the value
    // of the zero padding), w (Kout, CG_QK_PAD(R S C)) i8 in (r, s, c) order, stride, padding pad
    // -> y (N, P, Q, Kout) i8 (or f32 when out->to_float).
    void (*conv2d)(void *y, const int8_t *x, const int8_t *w, const cg_qoutput *out, int32_t x_zero_point, int64_t N,
                   int64_t H, int64_t W, int64_t C, int64_t Kout, int64_t R, int64_t S, int64_t stride, int64_t pad,
                   int64_t P, int64_t Q);

    // Max pooling on int8 (exact: quantisation is monotonic, so the maximum of the integers is the
    // integer of the maximum): x (N, H, W, C) -> y (N, P, Q, C), kernel x kernel windows, stride,
    // no padding.
    void (*max_pool2d)(int8_t *y, const int8_t *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t kernel,
                       int64_t stride, int64_t P, int64_t Q);

    // GPU only (NULL on the CPU): how many int8 products went through cuBLASLt (int8 Tensor
    // Cores) rather than the dp4a kernel since the plugin was loaded; for tests and curiosity.
    int64_t (*cublaslt_gemms)(void);
} cg_qkernels;

// The table of a device; aborts if its backend is not built (as cg_kernels_for).
const cg_qkernels *cg_qkernels_for(cg_device device);

// Filled in kernels/cpu/int8.c; the plugin's is kernels/cuda/int8.cu.
extern const cg_qkernels cg_cpu_qkernels;

#ifdef __cplusplus
}
#endif

#endif

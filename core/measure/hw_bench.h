// bench.h: what the course's GPU benchmark (chapter 0; examples/gpu_benchmark, lesson 00) measures
// with: a timer on the device's own clock, random matrices in a chosen number format, matrix
// products in fp32, tf32, fp16, bf16 or int8, the theoretical peak to compare them with, and one
// convolution layer's forward pass and training step. These work on raw buffers the benchmark
// owns, outside tensors and the tape: they measure the hardware and its libraries (cuBLAS, cuDNN,
// OpenBLAS), not the engine's bookkeeping. The same calls run on the CPU (fp32 only) and on a GPU;
// this header includes no CUDA header (the GPU half is the "bench" group of device_backend.h).
#ifndef CG_BENCH_H
#define CG_BENCH_H

#include "core/device.h"
#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// The number formats of a matrix product (course chapter 1). Inputs, output and accumulation:
//   fp32  f32 x f32 -> f32, f32 accumulation, FP32 units (cuBLAS CUBLAS_COMPUTE_32F)
//   tf32  f32 x f32 -> f32, inputs rounded to TF32 (10-bit mantissa) on Tensor Cores, f32
//         accumulation (CUBLAS_COMPUTE_32F_FAST_TF32; GPUs before Ampere run it as fp32)
//   fp16  f16 x f16 -> f16, f32 accumulation (CUBLAS_COMPUTE_32F), as torch.mm on half tensors
//   bf16  bf16 x bf16 -> bf16, f32 accumulation, as torch.mm on bfloat16 tensors
//   int8  i8 x i8 -> i32, i32 accumulation (CUBLAS_COMPUTE_32I), GPU only
typedef enum { CG_BENCH_FP32 = 0, CG_BENCH_TF32, CG_BENCH_FP16, CG_BENCH_BF16, CG_BENCH_INT8, CG_BENCH_NUM_PRECISIONS } cg_bench_precision;

// "fp32", "tf32", "fp16", "bf16", "int8".
const char *cg_bench_precision_name(cg_bench_precision p);
// The inverse. Errors: CG_ERR_ARG naming the text and the five names.
cg_status cg_bench_precision_parse(const char *text, cg_bench_precision *out);
// How the inputs and the output of a product in p are stored: F32, F32, F16, BF16, I8 -> I32.
cg_dtype cg_bench_input_dtype(cg_bench_precision p);
cg_dtype cg_bench_output_dtype(cg_bench_precision p);

// The theoretical dense peak of the device `info` describes for a matrix product in p, in
// TFLOPS (TOPS for int8): SMs x boost clock x operations per SM per clock. FP32 is
// info->peak_fp32_tflops (FP32 cores x clock x 2). Tensor Cores have no query: a table per
// architecture in bench.c, from NVIDIA's architecture whitepapers, gives their operations per SM
// per clock. 0 when unknown (the CPU; GPUs the table does not list). *basis, when not NULL, is
// set to a short phrase saying what the figure rests on.
double cg_bench_peak_tflops(const cg_device_info *info, cg_bench_precision p, const char **basis);

// ---- timing ----------------------------------------------------------------------------------
// A stopwatch on the device's own clock: CUDA events queued on the GPU's stream (so the time is
// the GPU's, without the host's launch overhead at the ends), the monotonic clock on the CPU.
typedef struct cg_timer cg_timer;
cg_timer *cg_timer_new(cg_device d);
void cg_timer_start(cg_timer *t);
// Seconds since cg_timer_start; waits until the device has done the work queued in between.
double cg_timer_stop(cg_timer *t);
void cg_timer_free(cg_timer *t);

// ---- matrix products ------------------------------------------------------------------------

// x[0..n) = uniform values in [-1, 1) drawn by Philox from (seed, CG_STREAM_DATA), stored as
// dtype: F32 as drawn; F16 and BF16 rounded to nearest even; I8 as round(127 u). On a GPU the
// draws are made in f32 chunks and converted by a kernel. Errors: CG_ERR_DEVICE when the device
// cannot store dtype here (the CPU: F32 only).
cg_status cg_bench_fill_uniform(cg_device d, void *x, cg_dtype dtype, int64_t n, uint64_t seed);

// Row-major C (M, N) = A (M, K) op(B), op(B) = B (K, N), or B stored (N, K) and transposed when
// trans_b (int8 needs trans_b: its Tensor Core kernels take the "TN" layout). A, B in
// cg_bench_input_dtype(p), C in cg_bench_output_dtype(p). The CPU runs fp32 through the kernel
// table's gemm (CBLAS sgemm for large products); a GPU runs cuBLAS's cublasGemmEx.
// Errors: CG_ERR_DEVICE with the reason when the device cannot run p (the CPU: fp32 only; a GPU:
// when cuBLAS answers that the combination is not supported there).
cg_status cg_bench_gemm(cg_device d, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K,
                        const void *A, const void *B, void *C);

// Checks `samples` entries of a product made by cg_bench_gemm (at positions drawn from seed)
// against a dot product in double on the host, from the stored (rounded) inputs. Returns the
// largest |C_ij - exact_ij| / sqrt(sum_k (a_ik b_kj)^2), the error relative to the typical size
// of an entry of a product of random matrices: about 1e-7 for fp32, a few 1e-4 for tf32 and fp16,
// a few 1e-3 for bf16 (the last of their 10 or 7 mantissa bits), 0 for int8. Copies B whole to
// the host.
double cg_bench_gemm_check(cg_device d, cg_bench_precision p, bool trans_b, int64_t M, int64_t N, int64_t K,
                           const void *A, const void *B, const void *C, int samples, uint64_t seed);

// ---- one convolution layer ------------------------------------------------------------------

// x (N, C, H, W) -> y (N, K, P, Q) with weights (K, C, R, S), a bias (K), stride, zero padding.
typedef struct {
    int64_t N, C, H, W, K, R, S, stride, pad;
} cg_bench_conv_shape;

typedef struct cg_bench_conv cg_bench_conv;

// A layer with its input, weights, bias, output and gradients allocated on d and filled with
// random values (x uniform in [-1, 1); weights and bias in +-1/sqrt(C R S), PyTorch's default
// bound). Two ways to run it:
//   tuned = false: the engine's own conv2d kernels (core/kernels.h), what the cnn example trains
//     with: fp32, NCHW, on the CPU or a GPU.
//   tuned = true (a GPU): cuDNN with the fastest engine, chosen by timing every candidate the
//     heuristics list (as PyTorch's cudnn.benchmark = True). fp32 (no TF32) and tf32 in NCHW;
//     fp16 and bf16 in NHWC with C padded with zero channels to a multiple of 8 (16-byte rows:
//     what cuDNN's Tensor Core kernels need), f32 accumulation.
// Errors: CG_ERR_DEVICE naming what this device or build cannot do (tuned on the CPU, a 16-bit
// format without tuned, a build without cuDNN, no cuDNN engine for the shape, int8).
cg_status cg_bench_conv_new(cg_device d, cg_bench_precision p, bool tuned, cg_bench_conv_shape shape, uint64_t seed,
                            cg_bench_conv **out);
// y = conv(x, w) + bias.
void cg_bench_conv_forward(cg_bench_conv *c);
// One training step of the layer as PyTorch's benchmark runs it (y = conv(x); y.mean().backward()):
// forward; loss = mean(y); dy = d loss / dy (1 / numel(y); for fp16 times 65536, the loss scale
// GradScaler starts with, since 1 / numel underflows in fp16); dw += conv_backward_filter(x, dy);
// dbias += the sum of dy over N, P, Q. x is data, so no input gradient is computed (PyTorch's
// does not compute one either).
void cg_bench_conv_train_step(cg_bench_conv *c);
// Checks the layer against a direct convolution computed in double on the host from its stored
// (rounded) x, weights and bias: one forward pass, `samples` entries of y drawn from seed; then the
// weight and bias gradients are zeroed, one training step runs, and `samples` entries of dw and
// every entry of dbias are compared (the loss gradient dy is read back as stored). Returns the
// largest |got - exact| / max(|exact|, sqrt(sum of the squared terms)): about 1e-6 for fp32, 1e-3
// for fp16 (y is stored in 16 bits, twice: before and after the bias), 1e-2 for bf16. The bias
// gradient is a sum of N P Q equal values, the hardest case for f32 accumulation: the CPU kernel,
// which sums each P x Q plane in f32, is off by 5e-4 there for the course's 224 x 224 images.
// Leaves one step's gradients in dw and dbias.
double cg_bench_conv_check(cg_bench_conv *c, int samples, uint64_t seed);
// One line on how the layer runs: layout, format, method (e.g. the cuDNN engines chosen).
const char *cg_bench_conv_about(const cg_bench_conv *c);
void cg_bench_conv_free(cg_bench_conv *c);

#ifdef __cplusplus
}
#endif

#endif

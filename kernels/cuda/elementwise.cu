// elementwise.cu: fill, axpy, scale, add, bias add, ReLU and sigmoid on the GPU: one thread
// per element (grid-stride loops past 65536 blocks). The CPU twins are kernels/cpu/elementwise.c.
#include "kernels/cuda/cuda.h"

static __global__ void fill_kernel(float *x, float value, int64_t n) {
    GRID_STRIDE(i, n) x[i] = value;
}
static __global__ void axpy_kernel(float *y, float alpha, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] += alpha * x[i];
}
static __global__ void add_scalar_kernel(float *x, float value) { x[0] += value; }
static __global__ void scale_kernel(float *y, const float *x, float alpha, int64_t n) {
    GRID_STRIDE(i, n) y[i] = alpha * x[i];
}
static __global__ void add_kernel(float *y, const float *a, const float *b, int64_t n) {
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
static __global__ void add_bias_kernel(float *y, const float *x, const float *bias, int64_t n, int64_t cols) {
    GRID_STRIDE(i, n) y[i] = x[i] + bias[i % cols];
}
// One warp per column: the lanes share out the rows and add their partial sums with shuffles,
// so 32 loads are in flight at once instead of one after another.
static __global__ void add_bias_backward_kernel(float *dbias, const float *dy, int64_t rows, int64_t cols) {
    int lane = threadIdx.x % 32;
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    for (int64_t c = warp; c < cols; c += warps) {
        float sum = 0.0f;
        for (int64_t r = lane; r < rows; r += 32) sum += dy[r * cols + c];
        sum = warp_sum(sum);
        if (lane == 0) dbias[c] += sum;
    }
}
static __global__ void relu_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
static __global__ void relu_backward_kernel(float *dx, const float *dy, const float *y, int64_t n) {
    GRID_STRIDE(i, n) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}
static __global__ void sigmoid_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
}
static __global__ void sigmoid_backward_kernel(float *dx, const float *dy, const float *y, int64_t n) {
    GRID_STRIDE(i, n) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

extern "C" {
static void fill_cuda(float *x, float value, int64_t n) { LAUNCH(fill_kernel, n, x, value, n); }
static void axpy_cuda(float *y, float alpha, const float *x, int64_t n) { LAUNCH(axpy_kernel, n, y, alpha, x, n); }
static void add_scalar_cuda(float *x, float value) { LAUNCH(add_scalar_kernel, 1, x, value); }
static void scale_cuda(float *y, const float *x, float alpha, int64_t n) { LAUNCH(scale_kernel, n, y, x, alpha, n); }
static void add_forward_cuda(float *y, const float *a, const float *b, int64_t n) { LAUNCH(add_kernel, n, y, a, b, n); }
void add_bias_forward_cuda(float *y, const float *x, const float *bias, int64_t rows, int64_t cols) {
    LAUNCH(add_bias_kernel, rows * cols, y, x, bias, rows * cols, cols);
}
static void add_bias_backward_cuda(float *dbias, const float *dy, int64_t rows, int64_t cols) {
    LAUNCH(add_bias_backward_kernel, 32 * cols, dbias, dy, rows, cols);
}
static void relu_forward_cuda(float *y, const float *x, int64_t n) { LAUNCH(relu_kernel, n, y, x, n); }
static void relu_backward_cuda(float *dx, const float *dy, const float *y, int64_t n) {
    LAUNCH(relu_backward_kernel, n, dx, dy, y, n);
}
static void sigmoid_forward_cuda(float *y, const float *x, int64_t n) { LAUNCH(sigmoid_kernel, n, y, x, n); }
static void sigmoid_backward_cuda(float *dx, const float *dy, const float *y, int64_t n) {
    LAUNCH(sigmoid_backward_kernel, n, dx, dy, y, n);
}
}

static __global__ void multiply_add_kernel(float *y, const float *a, const float *b, int64_t n) {
    GRID_STRIDE(i, n) y[i] += a[i] * b[i];
}

static void multiply_add_cuda(float *y, const float *a, const float *b, int64_t n) {
    LAUNCH(multiply_add_kernel, n, y, a, b, n);
}

extern "C" void zero_cuda(void *p, size_t bytes) { CG_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cg_cuda_stream())); }

// GELU (core/kernels.h): gelu_value and gelu_slope are in cuda.h (batch norm fuses them too).
// One template for f32 and 16-bit tensors (the _h rows): each value widened in registers, the
// result rounded once when it is stored.
// VEC values per thread (cuda.h: load_vec), n a multiple of VEC.
template <typename T, int VEC> static __global__ void gelu_kernel(T *y, const T *x, int64_t n, bool tanh_approx) {
    GRID_STRIDE(v, n / VEC) {
        float val[VEC];
        load_vec<VEC>(val, x + v * VEC);
#pragma unroll
        for (int k = 0; k < VEC; k++) val[k] = gelu_value(val[k], tanh_approx);
        store_vec<VEC>(y + v * VEC, val);
    }
}
// accumulate false: dx is written, its old values never read (0 + g: the same bits as adding to zeros).
template <typename T, int VEC>
static __global__ void gelu_backward_kernel(T *dx, const T *dy, const T *x, int64_t n, bool tanh_approx,
                                            bool accumulate) {
    GRID_STRIDE(v, n / VEC) {
        float xv[VEC], g[VEC], out[VEC];
        load_vec<VEC>(xv, x + v * VEC);
        load_vec<VEC>(g, dy + v * VEC);
        gradient_start_vec<VEC>(out, dx + v * VEC, accumulate);
#pragma unroll
        for (int k = 0; k < VEC; k++) out[k] = out[k] + g[k] * gelu_slope(xv[k], tanh_approx);
        store_vec<VEC>(dx + v * VEC, out);
    }
}
static void gelu_forward_cuda(float *y, const float *x, int64_t n, bool tanh_approx) {
    LAUNCH((gelu_kernel<float, 1>), n, y, x, n, tanh_approx);
}
static void gelu_backward_cuda(float *dx, const float *dy, const float *x, int64_t n, bool tanh_approx) {
    LAUNCH((gelu_backward_kernel<float, 1>), n, dx, dy, x, n, tanh_approx, true);
}
static void gelu_forward_h_cuda(cg_dtype dtype, void *y, const void *x, int64_t n, bool tanh_approx) {
    DISPATCH16(dtype, {
        if (vec_width<T>(n, x, y) == 8)
            LAUNCH((gelu_kernel<T, 8>), n / 8, (T *)y, (const T *)x, n, tanh_approx);
        else
            LAUNCH((gelu_kernel<T, 1>), n, (T *)y, (const T *)x, n, tanh_approx);
    });
}
static void gelu_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, const void *x, int64_t n, bool tanh_approx,
                                 bool accumulate) {
    DISPATCH16(dtype, {
        if (vec_width<T>(n, dx, dy, x) == 8)
            LAUNCH((gelu_backward_kernel<T, 8>), n / 8, (T *)dx, (const T *)dy, (const T *)x, n, tanh_approx, accumulate);
        else
            LAUNCH((gelu_backward_kernel<T, 1>), n, (T *)dx, (const T *)dy, (const T *)x, n, tanh_approx, accumulate);
    });
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void elementwise_register_cuda(cg_kernels *k) {
    k->gelu_forward = gelu_forward_cuda;
    k->gelu_backward = gelu_backward_cuda;
    k->gelu_forward_h = gelu_forward_h_cuda;
    k->gelu_backward_h = gelu_backward_h_cuda;
    k->fill = fill_cuda;
    k->axpy = axpy_cuda;
    k->zero = zero_cuda;
    k->add_scalar = add_scalar_cuda;
    k->scale = scale_cuda;
    k->multiply_add = multiply_add_cuda;
    k->add_forward = add_forward_cuda;
    k->add_bias_forward = add_bias_forward_cuda;
    k->add_bias_backward = add_bias_backward_cuda;
    k->relu_forward = relu_forward_cuda;
    k->relu_backward = relu_backward_cuda;
    k->sigmoid_forward = sigmoid_forward_cuda;
    k->sigmoid_backward = sigmoid_backward_cuda;
}

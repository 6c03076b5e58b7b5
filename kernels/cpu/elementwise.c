// elementwise.c: fill, axpy, scale, add, bias add, ReLU and sigmoid on the CPU.
// Plain loops the compiler vectorises. Each loop is written twice: on one thread below
// CG_OMP_MIN_WORK elements, and under OpenMP above it, because entering even an inactive
// OpenMP region (`if` clause false) costs a system call in GCC's libgomp, more than a small
// loop itself (a SimpleNN step runs about 15 of them).
#include "kernels/cpu/cpu.h"

#include <math.h>
#include <string.h>

static void fill_cpu(float *x, float value, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) x[i] = value;
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) x[i] = value;
}

static void axpy_cpu(float *y, float alpha, const float *x, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void add_scalar_cpu(float *x, float value) { x[0] += value; }

// memset, in slices over the threads when large: zeroing a step's gradient buffers (tens of MB
// for a CNN) is bound by memory bandwidth, which one core does not fill.
// The CPU's memory zeroing is the device layer's (core/device.c: threads share large ranges).
static void zero_cpu(void *p, size_t bytes) { cg_device_zero(cg_cpu(), p, bytes); }

static void scale_cpu(float *y, const float *x, float alpha, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

static void add_forward_cpu(float *y, const float *a, const float *b, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void add_bias_rows(float *y, const float *x, const float *bias, int64_t r0, int64_t r1, int64_t cols) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] + bias[c];
}

void add_bias_forward_cpu(float *y, const float *x, const float *bias, int64_t rows, int64_t cols) {
    if (rows * cols < CG_OMP_MIN_WORK) {
        add_bias_rows(y, x, bias, 0, rows, cols);
        return;
    }
#pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) add_bias_rows(y, x, bias, r, r + 1, cols);
}


void add_bias_backward_cpu(float *dbias, const float *dy, int64_t rows, int64_t cols) {
    // Row by row, so that the inner loop runs over contiguous memory.
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dbias[c] += dy[r * cols + c];
}

static inline float relu(float x) { return x > 0.0f ? x : 0.0f; }
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void relu_forward_cpu(float *y, const float *x, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] = relu(x[i]);
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] = relu(x[i]);
}

void relu_backward_cpu(float *dx, const float *dy, const float *y, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

static void sigmoid_forward_cpu(float *y, const float *x, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] = sigmoid(x[i]);
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] = sigmoid(x[i]);
}

static void sigmoid_backward_cpu(float *dx, const float *dy, const float *y, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

static void multiply_add_cpu(float *y, const float *a, const float *b, int64_t n) {
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) y[i] += a[i] * b[i];
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] += a[i] * b[i];
}

// GELU (core/kernels.h). The derivative of x Phi(x) is Phi(x) + x phi(x), phi the normal density;
// of the tanh form, (1 + t) / 2 + x (1 - t^2) c (1 + 3 a x^2) / 2 with t = tanh(c (x + a x^3)).
#define GELU_C 0.7978845608028654f // sqrt(2 / pi)
#define GELU_A 0.044715f
static float gelu_value(float x, bool tanh_approx) {
    if (tanh_approx) return 0.5f * x * (1.0f + tanhf(GELU_C * (x + GELU_A * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}
static float gelu_slope(float x, bool tanh_approx) {
    if (tanh_approx) {
        float t = tanhf(GELU_C * (x + GELU_A * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    }
    return 0.5f * (1.0f + erff(x * 0.7071067811865476f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}
void gelu_forward_cpu(float *y, const float *x, int64_t n, bool tanh_approx) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] = gelu_value(x[i], tanh_approx);
}
void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n, bool tanh_approx) {
#pragma omp parallel for if (n >= CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_slope(x[i], tanh_approx);
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void elementwise_register_cpu(cg_kernels *k) {
    k->gelu_forward = gelu_forward_cpu;
    k->gelu_backward = gelu_backward_cpu;
    k->fill = fill_cpu;
    k->axpy = axpy_cpu;
    k->zero = zero_cpu;
    k->add_scalar = add_scalar_cpu;
    k->scale = scale_cpu;
    k->multiply_add = multiply_add_cpu;
    k->add_forward = add_forward_cpu;
    k->add_bias_forward = add_bias_forward_cpu;
    k->add_bias_backward = add_bias_backward_cpu;
    k->relu_forward = relu_forward_cpu;
    k->relu_backward = relu_backward_cpu;
    k->sigmoid_forward = sigmoid_forward_cpu;
    k->sigmoid_backward = sigmoid_backward_cpu;
}

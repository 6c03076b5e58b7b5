// elementwise.c: fill, axpy, scale, add, bias add, ReLU and sigmoid on the CPU.
// Plain loops the compiler vectorises; OpenMP only above CG_OMP_MIN_WORK elements.
#include "cpu.h"

#include <math.h>

void fill_cpu(float *x, float value, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) x[i] = value;
}

void axpy_cpu(float *y, float alpha, const float *x, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void add_scalar_cpu(float *x, float value) { x[0] += value; }

void scale_cpu(float *y, const float *x, float alpha, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

void add_forward_cpu(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void add_bias_forward_cpu(float *y, const float *x, const float *bias, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > CG_OMP_MIN_WORK)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] + bias[c];
}

void add_bias_backward_cpu(float *dbias, const float *dy, int64_t rows, int64_t cols) {
    // Row by row, so that the inner loop runs over contiguous memory.
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dbias[c] += dy[r * cols + c];
}

void relu_forward_cpu(float *y, const float *x, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward_cpu(float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

void sigmoid_forward_cpu(float *y, const float *x, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void sigmoid_backward_cpu(float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

// table.c: the CPU's row of kernels (see core/kernels.h). Every entry is filled: the CPU is
// the reference every other device is tested against.
#include "cpu.h"

const cg_kernels cg_cpu_kernels = {
    .device_name = "cpu",
    .fill = fill_cpu,
    .axpy = axpy_cpu,
    .add_scalar = add_scalar_cpu,
    .scale = scale_cpu,
    .gemm = gemm_cpu,
    .linear_forward = linear_forward_cpu,
    .add_forward = add_forward_cpu,
    .add_bias_forward = add_bias_forward_cpu,
    .add_bias_backward = add_bias_backward_cpu,
    .relu_forward = relu_forward_cpu,
    .relu_backward = relu_backward_cpu,
    .sigmoid_forward = sigmoid_forward_cpu,
    .sigmoid_backward = sigmoid_backward_cpu,
    .bce_forward = bce_forward_cpu,
    .bce_backward = bce_backward_cpu,
    .cross_entropy_forward = cross_entropy_forward_cpu,
    .cross_entropy_backward = cross_entropy_backward_cpu,
    .sum_forward = sum_forward_cpu,
    .sum_backward = sum_backward_cpu,
    .count_binary_correct = count_binary_correct_cpu,
    .count_argmax_correct = count_argmax_correct_cpu,
    .rng_uniform = rng_uniform_cpu,
    .rng_normal = rng_normal_cpu,
    .gather_batch = gather_batch_cpu,
    .sgd_step = sgd_step_cpu,
    .adam_step = adam_step_cpu,
};

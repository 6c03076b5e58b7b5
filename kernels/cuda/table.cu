// table.cu: the GPU's row of kernels (see core/kernels.h), filled once on first use.
#include "cuda.h"

static cg_kernels table;

extern "C" const cg_kernels *cg_cuda_kernel_table(void) {
    if (table.device_name == NULL) {
        table.fill = fill_cuda;
        table.axpy = axpy_cuda;
        table.zero = zero_cuda;
        table.add_scalar = add_scalar_cuda;
        table.scale = scale_cuda;
        table.gemm = gemm_cuda;
        table.linear_forward = linear_forward_cuda;
        table.conv2d_forward = conv2d_forward_cuda;
        table.conv2d_backward = conv2d_backward_cuda;
        table.max_pool2d_forward = max_pool2d_forward_cuda;
        table.max_pool2d_backward = max_pool2d_backward_cuda;
        table.batch_norm_forward = batch_norm_forward_cuda;
        table.batch_norm_backward = batch_norm_backward_cuda;
        table.dropout_forward = dropout_forward_cuda;
        table.multiply_add = multiply_add_cuda;
        table.add_forward = add_forward_cuda;
        table.add_bias_forward = add_bias_forward_cuda;
        table.add_bias_backward = add_bias_backward_cuda;
        table.relu_forward = relu_forward_cuda;
        table.relu_backward = relu_backward_cuda;
        table.sigmoid_forward = sigmoid_forward_cuda;
        table.sigmoid_backward = sigmoid_backward_cuda;
        table.bce_forward = bce_forward_cuda;
        table.bce_backward = bce_backward_cuda;
        table.cross_entropy_forward = cross_entropy_forward_cuda;
        table.cross_entropy_backward = cross_entropy_backward_cuda;
        table.sum_forward = sum_forward_cuda;
        table.sum_backward = sum_backward_cuda;
        table.count_binary_correct = count_binary_correct_cuda;
        table.count_argmax_correct = count_argmax_correct_cuda;
        table.rng_uniform = rng_uniform_cuda;
        table.rng_normal = rng_normal_cuda;
        table.gather_batch = gather_batch_cuda;
        table.gather_images = gather_images_cuda;
        table.sgd_step = sgd_step_cuda;
        table.adam_step = adam_step_cuda;
        table.add_scalar_unless = add_scalar_unless_cuda;
        table.cast = cast_cuda;
        table.gemm_h = gemm_h_cuda;
        table.linear_forward_h = linear_forward_h_cuda;
        table.add_bias_backward_h = add_bias_backward_h_cuda;
        table.conv2d_forward_h = conv2d_forward_h_cuda;
        table.conv2d_backward_h = conv2d_backward_h_cuda;
        table.max_pool2d_forward_h = max_pool2d_forward_h_cuda;
        table.max_pool2d_backward_h = max_pool2d_backward_h_cuda;
        table.relu_forward_h = relu_forward_h_cuda;
        table.relu_backward_h = relu_backward_h_cuda;
        table.amp_unscale_check = amp_unscale_check_cuda;
        table.amp_update_scale = amp_update_scale_cuda;
        table.device_name = "cuda";
    }
    return &table;
}

// ops_conv.c: the image ops of the op table: conv2d, max_pool2d, their fused block (conv2d +
// ReLU + 2x2 max pooling), reshape (flatten) and the copy between memory formats. Tensor logic
// only; the arithmetic is in kernels/cpu/conv.c and kernels/cuda/conv.cu.
#include "core/ops_internal.h"

#include <stdio.h>

#define F cg_f32

// ---- conv2d -----------------------------------------------------------------------------------
// in[0] = x (N, C, H, W), in[1] = W (K, C, R, S), in[2] = b (K,) when n_in == 3.
// iattr[0] = stride, iattr[1] = padding.

#define CONV_DIMS(n)                                                                                          \
    (n)->in[0]->shape[0], (n)->in[0]->shape[1], (n)->in[0]->shape[2], (n)->in[0]->shape[3], (n)->in[1]->shape[0], \
        (n)->in[1]->shape[2], (n)->in[1]->shape[3], (int64_t)(n)->iattr[0], (int64_t)(n)->iattr[1],            \
        (n)->out->shape[2], (n)->out->shape[3]

// Every tensor of the node (inputs, output, gradients) has the node's dtype: f32, or 16 bits
// under autocast (then the _h kernels, f32 accumulation).
// iattr[2] = 1: the output is written channels-last (cg_channels_last_wanted); x may be stored
// either way (16 bits only: the f32 path copies a channels-last x to NCHW first).
// The weights may be stored channels-last (K, R, S, C) too (a 16-bit copy of the parameter block
// on a GPU, core/train/amp.h): then they go to the channels-last kernels only.
// saved[0] (GPU, 16 bits, when x needs a gradient and the weights are stored (K, C, R, S); else
// NULL): the weights as cuDNN's NHWC kernels read them, written by the forward and read by the
// backward's dx instead of a second copy.
static void conv2d_node_forward(const cg_kernels *k, cg_node *n) {
    const void *bias = n->n_in == 3 ? n->in[2]->data : NULL;
    n->out->channels_last = n->iattr[2];
    if (n->iattr[2] || n->in[0]->channels_last)
        KERNEL(k, conv2d_forward_cl)(n->out->dtype, n->out->data, n->iattr[2], n->in[0]->data, n->in[0]->channels_last,
                                     n->in[1]->data, n->in[1]->channels_last, n->saved[0] ? n->saved[0]->data : NULL,
                                     bias, CONV_DIMS(n));
    else if (n->out->dtype == CG_F32)
        KERNEL(k, conv2d_forward)(F(n->out), F(n->in[0]), F(n->in[1]), (const float *)bias, CONV_DIMS(n));
    else
        KERNEL(k, conv2d_forward_h)(n->out->dtype, n->out->data, n->in[0]->data, n->in[1]->data, bias, CONV_DIMS(n));
}

static void conv2d_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    void *dx = x->requires_grad ? cg_tape_grad(t, x)->data : NULL;
    void *dw = w->requires_grad ? cg_tape_grad(t, w)->data : NULL;
    void *db = n->n_in == 3 && n->in[2]->requires_grad ? cg_tape_grad(t, n->in[2])->data : NULL;
    if (n->out->channels_last || x->channels_last)
        KERNEL(k, conv2d_backward_cl)(n->out->dtype, dx, dw, db, n->out->grad->data, n->out->channels_last, x->data,
                                      x->channels_last, w->data, w->channels_last,
                                      n->saved[0] ? n->saved[0]->data : NULL, CONV_DIMS(n), !n->grad_fresh[0]);
    else if (n->out->dtype == CG_F32)
        KERNEL(k, conv2d_backward)((float *)dx, (float *)dw, (float *)db, F(n->out->grad), F(x), F(w), CONV_DIMS(n),
                                   !n->grad_fresh[0]);
    else
        KERNEL(k, conv2d_backward_h)(n->out->dtype, dx, dw, db, n->out->grad->data, x->data, w->data, CONV_DIMS(n));
}

// Checks conv2d's inputs, all of dtype dt, and gives the output size P x Q.
static void conv2d_check(cg_tape *t, cg_dtype dt, cg_tensor *x, cg_tensor *weight, cg_tensor *bias, int stride,
                         int padding, int64_t *P, int64_t *Q) {
    cg_op_check_input(t, "conv2d", x, dt);
    cg_op_check_input(t, "conv2d", weight, dt);
    char sx[64], sw[64];
    CG_CHECK(x->ndim == 4 && weight->ndim == 4 && x->shape[1] == weight->shape[1],
             "conv2d: x %s must be (N, C, H, W) and weight %s (K, C, R, S) with the same C",
             cg_shape_str(x, sx, sizeof sx), cg_shape_str(weight, sw, sizeof sw));
    CG_CHECK(stride >= 1 && padding >= 0, "conv2d: stride %d, padding %d", stride, padding);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t K = weight->shape[0], R = weight->shape[2], S = weight->shape[3];
    CG_CHECK(H + 2 * padding >= R && W + 2 * padding >= S, "conv2d: kernel %s larger than the padded input %s",
             cg_shape_str(weight, sw, sizeof sw), cg_shape_str(x, sx, sizeof sx));
    *P = (H + 2 * padding - R) / stride + 1, *Q = (W + 2 * padding - S) / stride + 1;
    if (bias) {
        cg_op_check_input(t, "conv2d", bias, dt);
        CG_CHECK(bias->numel == K, "conv2d: bias of %lld for %lld filters", (long long)bias->numel, (long long)K);
    }
    (void)N, (void)C;
}

cg_tensor *cg_conv2d(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias, int stride, int padding) {
    cg_dtype dt = cg_op_compute_dtype(t);
    x = cg_op_autocast_input(t, CG_OP_CONV2D, x), weight = cg_op_autocast_input(t, CG_OP_CONV2D, weight);
    if (bias) bias = cg_op_autocast_input(t, CG_OP_CONV2D, bias);
    int64_t P, Q;
    conv2d_check(t, dt, x, weight, bias, stride, padding, &P, &Q);
    // Channels-last in 16 bits only, and for an output whose channels fill Tensor Core rows of 8
    // (a 3-channel input is padded as it is copied; an output is not).
    bool last = dt != CG_F32 && cg_channels_last_wanted(t) && weight->shape[0] % 8 == 0 && P * Q > 1 &&
                cg_kernels_for(t->device)->conv2d_forward_cl != NULL;
    if (dt == CG_F32 || cg_kernels_for(t->device)->conv2d_forward_cl == NULL) x = cg_to_memory_format(t, x, false);
    // Channels-last weights (a GPU's 16-bit copy) only where the channels-last kernels run.
    if (!last && !x->channels_last) weight = cg_to_memory_format(t, weight, false);
    // The f32 rows and the channels-last ones (16 bits) can write a first gradient of x (core/tape.h:
    // fresh gradients); the 16-bit NCHW row adds.
    cg_node node = {.op = CG_OP_CONV2D, .forward = conv2d_node_forward, .backward = conv2d_node_backward,
                    .n_in = bias ? 3 : 2, .in = {x, weight, bias}, .iattr = {stride, padding, last}, .dtype = dt,
                    .grad_writable = {dt == CG_F32 || last || x->channels_last}};
    if ((last || x->channels_last) && !weight->channels_last && t->device.type == CG_CUDA && t->grad_enabled &&
        x->requires_grad) {
        int64_t n = (weight->shape[0] + 7) / 8 * 8 * weight->shape[2] * weight->shape[3] * ((x->shape[1] + 7) / 8 * 8);
        node.saved[0] = cg_arena_tensor(t->arena, dt, 1, &n);
    }
    return cg_op_apply(t, &node, 4, (int64_t[]){x->shape[0], weight->shape[0], P, Q});
}

// ---- conv2d + ReLU + 2x2 max pooling ------------------------------------------------------------
// in[] as conv2d; iattr[0] = stride, iattr[1] = padding, iattr[2], iattr[3] = the convolution's
// output size P, Q; saved[0] = where (N, K, P/2, Q/2) u8, the position of each window's maximum.

#define FUSED_DIMS(n)                                                                                        \
    (n)->in[0]->shape[0], (n)->in[0]->shape[1], (n)->in[0]->shape[2], (n)->in[0]->shape[3], (n)->in[1]->shape[0], \
        (n)->in[1]->shape[2], (n)->in[1]->shape[3], (int64_t)(n)->iattr[0], (int64_t)(n)->iattr[1],            \
        (int64_t)(n)->iattr[2], (int64_t)(n)->iattr[3]

// In f32, or in 16 bits under autocast (the _h kernels: the three ops' values in 16 bits).
static void conv2d_relu_pool_node_forward(const cg_kernels *k, cg_node *n) {
    const void *bias = n->n_in == 3 ? n->in[2]->data : NULL;
    uint8_t *where = (uint8_t *)n->saved[0]->data;
    if (n->out->dtype == CG_F32)
        KERNEL(k, conv2d_relu_pool_forward)(F(n->out), where, F(n->in[0]), F(n->in[1]), (const float *)bias,
                                            FUSED_DIMS(n));
    else
        KERNEL(k, conv2d_relu_pool_forward_h)(n->out->dtype, n->out->data, where, n->in[0]->data, n->in[1]->data, bias,
                                              FUSED_DIMS(n));
}

static void conv2d_relu_pool_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    void *dx = x->requires_grad ? cg_tape_grad(t, x)->data : NULL;
    void *dw = w->requires_grad ? cg_tape_grad(t, w)->data : NULL;
    void *db = n->n_in == 3 && n->in[2]->requires_grad ? cg_tape_grad(t, n->in[2])->data : NULL;
    const uint8_t *where = (const uint8_t *)n->saved[0]->data;
    if (n->out->dtype == CG_F32)
        KERNEL(k, conv2d_relu_pool_backward)((float *)dx, (float *)dw, (float *)db, F(n->out->grad), F(n->out), where,
                                             F(x), F(w), FUSED_DIMS(n), !n->grad_fresh[0]);
    else
        KERNEL(k, conv2d_relu_pool_backward_h)(n->out->dtype, dx, dw, db, n->out->grad->data, n->out->data, where,
                                               x->data, w->data, FUSED_DIMS(n), !n->grad_fresh[0]);
}

cg_tensor *cg_conv2d_relu_max_pool2d(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias, int stride,
                                     int padding) {
    // The three ops where this device has no fused kernel for the compute dtype, and for 16-bit
    // inputs outside autocast.
    const cg_kernels *k = cg_kernels_for(t->device);
    cg_dtype dt = cg_op_compute_dtype(t);
    bool fused = dt == CG_F32 ? k->conv2d_relu_pool_forward != NULL && x->dtype == CG_F32
                              : k->conv2d_relu_pool_forward_h != NULL;
    if (!fused) return cg_max_pool2d(t, cg_relu(t, cg_conv2d(t, x, weight, bias, stride, padding)), 2, 2);
    x = cg_op_autocast_input(t, CG_OP_CONV2D_RELU_POOL, x); // channels-last: cg_op_apply copies it to NCHW
    weight = cg_op_autocast_input(t, CG_OP_CONV2D_RELU_POOL, weight);
    if (bias) bias = cg_op_autocast_input(t, CG_OP_CONV2D_RELU_POOL, bias);
    int64_t P, Q;
    conv2d_check(t, dt, x, weight, bias, stride, padding, &P, &Q);
    CG_CHECK(P >= 2 && Q >= 2 && P <= INT32_MAX && Q <= INT32_MAX,
             "conv2d_relu_max_pool2d: a %lld x %lld convolution output has no 2 x 2 window", (long long)P,
             (long long)Q);
    int64_t shape[4] = {x->shape[0], weight->shape[0], P / 2, Q / 2};
    cg_node node = {.op = CG_OP_CONV2D_RELU_POOL, .forward = conv2d_relu_pool_node_forward,
                    .backward = conv2d_relu_pool_node_backward, .n_in = bias ? 3 : 2, .in = {x, weight, bias},
                    .iattr = {stride, padding, (int)P, (int)Q}, .dtype = dt,
                    .grad_writable = {true}}; // both rows write a first dx (core/tape.h), in every dtype
    node.saved[0] = cg_arena_tensor(t->arena, CG_U8, 4, shape);
    return cg_op_apply(t, &node, 4, shape);
}

// ---- max_pool2d --------------------------------------------------------------------------------
// iattr[0] = kernel, iattr[1] = stride; saved[0] = arg-max indices (N, C, P, Q) i32.

// Max pooling keeps its input's dtype (a maximum is one of the values: exact in any format) and,
// in 16 bits, its memory format (the arg-max indices point into x as stored).
static void max_pool2d_node_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *x = n->in[0], *y = n->out;
    y->channels_last = x->channels_last && y->shape[2] * y->shape[3] > 1;
    if (y->dtype == CG_F32)
        KERNEL(k, max_pool2d_forward)(F(y), (int32_t *)n->saved[0]->data, F(x), x->shape[0], x->shape[1], x->shape[2],
                                      x->shape[3], n->iattr[0], n->iattr[1], y->shape[2], y->shape[3]);
    else
        KERNEL(k, max_pool2d_forward_h)(y->dtype, y->data, (int32_t *)n->saved[0]->data, x->data, x->shape[0],
                                        x->shape[1], x->shape[2], x->shape[3], n->iattr[0], n->iattr[1], y->shape[2],
                                        y->shape[3], x->channels_last);
}

static void max_pool2d_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, max_pool2d_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad),
                                       (const int32_t *)n->saved[0]->data, n->out->numel);
    else
        KERNEL(k, max_pool2d_backward_h)(n->out->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data,
                                         (const int32_t *)n->saved[0]->data, n->in[0]->shape[0], n->in[0]->shape[1],
                                         n->in[0]->shape[2], n->in[0]->shape[3], n->iattr[0], n->iattr[1],
                                         n->out->shape[2], n->out->shape[3], n->in[0]->channels_last,
                                         !n->grad_fresh[0]);
}

cg_tensor *cg_max_pool2d(cg_tape *t, cg_tensor *x, int kernel, int stride) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "max_pool2d: input is %s",
             cg_dtype_name(x->dtype));
    cg_op_check_input(t, "max_pool2d", x, x->dtype);
    if (x->dtype == CG_F32) x = cg_to_memory_format(t, x, false);
    char sx[64];
    CG_CHECK(x->ndim == 4 && kernel >= 1 && stride >= 1 && x->shape[2] >= kernel && x->shape[3] >= kernel,
             "max_pool2d: x %s must be (N, C, H, W) with H, W >= kernel %d (stride %d)", cg_shape_str(x, sx, sizeof sx),
             kernel, stride);
    CG_CHECK(x->numel <= INT32_MAX, "max_pool2d: %lld elements overflow the i32 arg-max", (long long)x->numel);
    int64_t shape[4] = {x->shape[0], x->shape[1], (x->shape[2] - kernel) / stride + 1,
                        (x->shape[3] - kernel) / stride + 1};
    cg_node node = {.op = CG_OP_MAX_POOL2D, .forward = max_pool2d_node_forward, .backward = max_pool2d_node_backward,
                    .n_in = 1, .in = {x}, .iattr = {kernel, stride}, .dtype = x->dtype,
                    .grad_writable = {x->dtype != CG_F32}}; // 16 bits: a first gradient is written (core/tape.h)
    node.saved[0] = cg_arena_tensor(t->arena, CG_I32, 4, shape);
    return cg_op_apply(t, &node, 4, shape);
}

// ---- reshape ----------------------------------------------------------------------------------

// Reshape keeps its input's dtype; 16-bit values are copied (and their gradient added) by the
// cast kernel from a dtype to itself.
static void reshape_node_forward(const cg_kernels *k, cg_node *n) {
    cg_dtype dt = n->out->dtype;
    if (dt == CG_F32)
        k->scale(F(n->out), F(n->in[0]), 1.0f, n->out->numel);
    else
        KERNEL(k, cast)(n->out->data, dt, n->in[0]->data, dt, n->out->numel, false);
}

static void reshape_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_dtype dt = n->out->dtype;
    if (dt == CG_F32)
        k->axpy(F(cg_tape_grad(t, n->in[0])), 1.0f, F(n->out->grad), n->out->numel);
    else
        KERNEL(k, cast)(cg_tape_grad(t, n->in[0])->data, dt, n->out->grad->data, dt, n->out->numel, true);
}

cg_tensor *cg_reshape(cg_tape *t, cg_tensor *x, int ndim, const int64_t *shape) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "reshape: input is %s",
             cg_dtype_name(x->dtype));
    cg_op_check_input(t, "reshape", x, x->dtype);
    cg_node node = {.op = CG_OP_RESHAPE, .forward = reshape_node_forward, .backward = reshape_node_backward, .n_in = 1,
                    .in = {x}, .dtype = x->dtype};
    cg_tensor *y = cg_op_apply(t, &node, ndim, shape);
    char sx[64], sy[64];
    CG_CHECK(y->numel == x->numel, "reshape %s to %s changes the element count", cg_shape_str(x, sx, sizeof sx),
             cg_shape_str(y, sy, sizeof sy));
    return y;
}

cg_tensor *cg_flatten(cg_tape *t, cg_tensor *x) {
    CG_CHECK(x->ndim >= 1, "flatten of a scalar");
    int64_t shape[2] = {x->shape[0], x->numel / x->shape[0]};
    return cg_reshape(t, x, 2, shape);
}

// ---- memory formats ---------------------------------------------------------------------------
// iattr[0] = 1: to channels-last, 0: to NCHW. One transposing copy each way (the kernel row
// memory_format_copy); the backward adds the gradient transposed back.

static void memory_format_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    n->out->channels_last = n->iattr[0];
    KERNEL(k, memory_format_copy)(x->dtype, n->out->data, x->data, x->shape[0], x->shape[1], x->shape[2] * x->shape[3],
                                  n->iattr[0], false);
}

static void memory_format_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    const cg_tensor *x = n->in[0];
    KERNEL(k, memory_format_copy)(x->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data, x->shape[0],
                                  x->shape[1], x->shape[2] * x->shape[3], !n->iattr[0], true);
}

cg_tensor *cg_to_memory_format(cg_tape *t, cg_tensor *x, bool channels_last) {
    if (x->channels_last == channels_last) return x;
    if (x->ndim != 4 || x->shape[1] == 1 || x->shape[2] * x->shape[3] == 1) { // the same bytes either way
        CG_CHECK(!x->channels_last, "to_memory_format: a channels-last tensor that is not (N, C, H, W) with C, H W > 1");
        return x;
    }
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "to_memory_format: input is %s",
             cg_dtype_name(x->dtype));
    cg_op_check_input(t, "to_memory_format", x, x->dtype);
    cg_node node = {.op = CG_OP_MEMORY_FORMAT, .forward = memory_format_node_forward,
                    .backward = memory_format_node_backward, .n_in = 1, .in = {x}, .iattr = {channels_last},
                    .dtype = x->dtype};
    return cg_op_apply(t, &node, 4, x->shape);
}

// ---- average pooling ------------------------------------------------------------------------------
// avg_pool2d: iattr[0] = kernel, iattr[1] = stride. global_avg_pool2d: the mean of each plane.

#define POOL_DIMS(n)                                                                                          \
    (n)->in[0]->shape[0], (n)->in[0]->shape[1], (n)->in[0]->shape[2], (n)->in[0]->shape[3], (int64_t)(n)->iattr[0], \
        (int64_t)(n)->iattr[1], (n)->out->shape[2], (n)->out->shape[3]

static void avg_pool2d_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, avg_pool2d_forward)(F(n->out), F(n->in[0]), POOL_DIMS(n));
}
static void avg_pool2d_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, avg_pool2d_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), POOL_DIMS(n));
}

cg_tensor *cg_avg_pool2d(cg_tape *t, cg_tensor *x, int kernel, int stride) {
    x = cg_op_autocast_input(t, CG_OP_AVG_POOL2D, x);
    cg_op_check_input(t, "avg_pool2d", x, CG_F32);
    char sx[64];
    CG_CHECK(x->ndim == 4 && kernel >= 1 && stride >= 1 && x->shape[2] >= kernel && x->shape[3] >= kernel,
             "avg_pool2d: x %s must be (N, C, H, W) with H, W >= kernel %d (stride %d)", cg_shape_str(x, sx, sizeof sx),
             kernel, stride);
    int64_t shape[4] = {x->shape[0], x->shape[1], (x->shape[2] - kernel) / stride + 1,
                        (x->shape[3] - kernel) / stride + 1};
    cg_node node = {.op = CG_OP_AVG_POOL2D, .forward = avg_pool2d_node_forward, .backward = avg_pool2d_node_backward,
                    .n_in = 1, .in = {x}, .iattr = {kernel, stride}};
    return cg_op_apply(t, &node, 4, shape);
}

// Global average pooling keeps a 16-bit input's dtype and memory format, as PyTorch's
// adaptive_avg_pool2d under autocast: the sums in f32, each mean rounded once (the bits of the
// f32 op on the input widened, then rounded: its _h rows say so), and in the backward a first
// gradient is written (core/tape.h). Under autocast ResNet's head so reads its last block's
// channels-last output as it is, where a cast to f32 and a copy to NCHW came first.
static void global_avg_pool_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    if (x->dtype == CG_F32)
        KERNEL(k, global_avg_pool_forward)(F(n->out), F(x), x->shape[0] * x->shape[1], x->shape[2] * x->shape[3]);
    else
        KERNEL(k, global_avg_pool_forward_h)(x->dtype, n->out->data, x->data, x->shape[0], x->shape[1],
                                             x->shape[2] * x->shape[3], x->channels_last);
}
static void global_avg_pool_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    const cg_tensor *x = n->in[0];
    if (x->dtype == CG_F32)
        KERNEL(k, global_avg_pool_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), x->shape[0] * x->shape[1],
                                            x->shape[2] * x->shape[3]);
    else
        KERNEL(k, global_avg_pool_backward_h)(x->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data,
                                              x->shape[0], x->shape[1], x->shape[2] * x->shape[3], x->channels_last,
                                              !n->grad_fresh[0]);
}

cg_tensor *cg_global_avg_pool2d(cg_tape *t, cg_tensor *x) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "global_avg_pool2d: input is %s",
             cg_dtype_name(x->dtype));
    cg_op_check_input(t, "global_avg_pool2d", x, x->dtype);
    if (x->dtype == CG_F32) x = cg_to_memory_format(t, x, false);
    char sx[64];
    CG_CHECK(x->ndim == 4, "global_avg_pool2d: x %s must be (N, C, H, W)", cg_shape_str(x, sx, sizeof sx));
    cg_node node = {.op = CG_OP_GLOBAL_AVG_POOL, .forward = global_avg_pool_node_forward,
                    .backward = global_avg_pool_node_backward, .n_in = 1, .in = {x}, .dtype = x->dtype,
                    .grad_writable = {x->dtype != CG_F32}};
    return cg_op_apply(t, &node, 2, (int64_t[]){x->shape[0], x->shape[1]});
}

// ops_internal.h: what the op files share (private to core/): the row of the op table, the
// shared path that runs and records an op, input checks, and the missing-kernel report.
// ops.c holds the table and the dense ops; ops_conv.c the image ops; ops_norm.c batch norm
// and dropout.
#ifndef CG_OPS_INTERNAL_H
#define CG_OPS_INTERNAL_H

#include "core/kernels.h"
#include "core/ops.h"

typedef void (*cg_forward_fn)(const cg_kernels *k, cg_node *n);
typedef void (*cg_backward_fn)(const cg_kernels *k, cg_tape *t, cg_node *n);

// Make node->out with the given shape, run the forward, record the node when an input requires
// a gradient. The node arrives with op, inputs, attributes and saved tensors set.
// The output's dtype is node->dtype (F32 unless the op set another).
cg_tensor *cg_op_apply(cg_tape *t, cg_node *node, int ndim, const int64_t *shape);
// Abort unless x is on the tape's device with the given dtype; names the op and both devices.
void cg_op_check_input(const cg_tape *t, const char *op, const cg_tensor *x, cg_dtype dtype);
void cg_op_missing_kernel(const char *name, const cg_kernels *k) __attribute__((noreturn));

// k->fn, or a clear abort naming the kernel and the device when the device lacks it.
#define KERNEL(k, fn) ((k)->fn ? (k)->fn : (cg_op_missing_kernel(#fn, (k)), (k)->fn))

static inline float *cg_f32(const cg_tensor *t) { return (float *)t->data; }

// The dtype an autocast op (matmul, linear, conv2d) computes in: the tape's autocast type.
static inline cg_dtype cg_op_compute_dtype(const cg_tape *t) { return t->autocast; }

// The rows of ops_amp.c
void cg_cast_forward(const cg_kernels *k, cg_node *n);
void cg_cast_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
// ops_conv.c
void cg_conv2d_forward(const cg_kernels *k, cg_node *n);
void cg_conv2d_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
void cg_max_pool2d_forward(const cg_kernels *k, cg_node *n);
void cg_max_pool2d_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
void cg_conv2d_relu_pool_forward(const cg_kernels *k, cg_node *n);
void cg_conv2d_relu_pool_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
void cg_reshape_forward(const cg_kernels *k, cg_node *n);
void cg_reshape_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
// ops_norm.c
void cg_batch_norm2d_forward(const cg_kernels *k, cg_node *n);
void cg_batch_norm2d_backward(const cg_kernels *k, cg_tape *t, cg_node *n);
void cg_dropout_forward(const cg_kernels *k, cg_node *n);
void cg_dropout_backward(const cg_kernels *k, cg_tape *t, cg_node *n);

#endif

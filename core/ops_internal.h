// ops_internal.h: what the op files share (private to core/): the shared path that runs and
// records an op, the input checks, the autocast policy of the op table, and the missing-kernel
// report. ops.c holds the op table, this shared path and the dense ops; ops_conv.c the image
// ops; ops_norm.c batch norm and dropout. An op file's node functions are static: the node
// carries them (core/tape.h), so no file has to list another file's functions.
#ifndef CG_OPS_INTERNAL_H
#define CG_OPS_INTERNAL_H

#include "core/kernels.h"
#include "core/ops.h"

// Make node->out with the given shape, run node->forward on the tape's device, and record the
// node when an input requires a gradient. The node arrives with op, forward, backward, inputs,
// attributes and saved tensors set; the output's dtype is node->dtype (F32 unless set).
cg_tensor *cg_op_apply(cg_tape *t, cg_node *node, int ndim, const int64_t *shape);
// Abort unless x is on the tape's device with the given dtype; names the op and both devices.
void cg_op_check_input(const cg_tape *t, const char *op, const cg_tensor *x, cg_dtype dtype);
void cg_op_missing_kernel(const char *name, const cg_kernels *k) __attribute__((noreturn));
// x as op takes it under the tape's autocast, by the op's column of the op table
// (cg_op_autocast): cast to the autocast dtype (a parameter through its 16-bit copy), to f32,
// or kept as it is.
cg_tensor *cg_op_autocast_input(cg_tape *t, cg_op op, cg_tensor *x);

// k->fn, or a clear abort naming the kernel and the device when the device lacks it.
#define KERNEL(k, fn) ((k)->fn ? (k)->fn : (cg_op_missing_kernel(#fn, (k)), (k)->fn))

static inline float *cg_f32(const cg_tensor *t) { return (float *)t->data; }

// The dtype an op of policy CG_AUTOCAST_LOW (matmul, linear, conv2d) computes in: the tape's.
static inline cg_dtype cg_op_compute_dtype(const cg_tape *t) { return t->autocast; }

#endif

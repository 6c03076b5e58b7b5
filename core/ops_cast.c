// ops_amp.c: the cast op of mixed precision and the two autocast helpers the other ops call
// (core/ops.h). Tensor logic only; the conversions are the cast kernels (kernels/cpu/half_ops.c,
// kernels/cuda/amp.cu), which round to nearest even as core/half.c spells out.
#include "core/ops_internal.h"

static bool castable(cg_dtype t) { return t == CG_F32 || t == CG_F16 || t == CG_BF16; }

// in[0] = x; the output has node->dtype.
void cg_cast_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, cast)(n->out->data, n->out->dtype, n->in[0]->data, n->in[0]->dtype, n->out->numel, false);
}

// d x += d y, converted to x's dtype (the derivative of a rounding is taken as 1, as PyTorch's
// .to() does: autograd sees a cast as the identity).
void cg_cast_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cast)(cg_tape_grad(t, x)->data, x->dtype, n->out->grad->data, n->out->dtype, x->numel, true);
}

cg_tensor *cg_cast(cg_tape *t, cg_tensor *x, cg_dtype dtype) {
    CG_CHECK(castable(x->dtype) && castable(dtype), "cast: %s to %s (only f32, f16 and bf16)", cg_dtype_name(x->dtype),
             cg_dtype_name(dtype));
    if (x->dtype == dtype) return x;
    cg_op_check_input(t, "cast", x, x->dtype);
    cg_node node = {.op = CG_OP_CAST, .n_in = 1, .in = {x}, .dtype = dtype};
    return cg_op_apply(t, &node, x->ndim, x->shape);
}

cg_tensor *cg_autocast_low(cg_tape *t, cg_tensor *x) {
    if (x->dtype == t->autocast) return x;
    if (x->low != NULL && x->low->dtype == t->autocast) return x->low; // the parameter's 16-bit copy
    return cg_cast(t, x, t->autocast);
}

cg_tensor *cg_autocast_f32(cg_tape *t, cg_tensor *x) { return x->dtype == CG_F32 ? x : cg_cast(t, x, CG_F32); }

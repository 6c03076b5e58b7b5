// ops.c: the op table (each op's name and autocast policy), the shared path of every op, the
// cast op of mixed precision, and the dense ops (matmul, linear, add, activations, losses,
// reductions). Each op checks its inputs, makes its output on the tape, calls its device's
// kernel through cg_kernels_for, and records itself; each backward calls the kernels that
// accumulate the input gradients. No arithmetic here: that is in kernels/cpu and kernels/cuda.
// The image ops are in ops_conv.c, batch norm and dropout in ops_norm.c.
#include "core/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A kernel the device lacks is a clear error, never a fallback to another device.
void cg_op_missing_kernel(const char *name, const cg_kernels *k) {
    CG_CHECK(0, "kernel %s is missing on %s", name, k->device_name);
}

// ---- the op table ----------------------------------------------------------------------------
// One row per op: its name, its autocast policy and its memory-format policy (core/ops.h), the
// one place that says what runs in 16 bits under mixed precision and what reads channels-last
// tensors (an op left out of the last column takes NCHW only). tests/op_cases.h has a test row
// for every op.
typedef struct {
    const char *name;
    cg_autocast_policy autocast;
    cg_layout_policy layout;
} op_row;

static const op_row op_table[CG_NUM_OPS] = {
    [CG_OP_MATMUL] = {"matmul", CG_AUTOCAST_LOW},
    [CG_OP_LINEAR] = {"linear", CG_AUTOCAST_LOW},
    [CG_OP_ADD] = {"add", CG_AUTOCAST_F32, CG_LAYOUT_ELEMENTWISE},
    [CG_OP_RELU] = {"relu", CG_AUTOCAST_KEEP, CG_LAYOUT_ELEMENTWISE},
    [CG_OP_SIGMOID] = {"sigmoid", CG_AUTOCAST_F32},
    [CG_OP_BCE] = {"bce", CG_AUTOCAST_F32},
    [CG_OP_CROSS_ENTROPY] = {"cross_entropy", CG_AUTOCAST_F32},
    [CG_OP_SUM] = {"sum", CG_AUTOCAST_F32},
    [CG_OP_SCALE] = {"scale", CG_AUTOCAST_F32},
    [CG_OP_CONV2D] = {"conv2d", CG_AUTOCAST_LOW, CG_LAYOUT_OWN},
    [CG_OP_MAX_POOL2D] = {"max_pool2d", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
    [CG_OP_RESHAPE] = {"reshape", CG_AUTOCAST_KEEP},
    [CG_OP_BATCH_NORM2D] = {"batch_norm2d", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
    [CG_OP_DROPOUT] = {"dropout", CG_AUTOCAST_F32},
    // Under autocast the fused block computes in 16 bits where the device has its _h kernels (the
    // CPU), and runs as its three ops elsewhere (conv2d LOW, relu and max_pool2d KEEP).
    [CG_OP_CONV2D_RELU_POOL] = {"conv2d_relu_max_pool2d", CG_AUTOCAST_LOW},
    [CG_OP_CAST] = {"cast", CG_AUTOCAST_KEEP, CG_LAYOUT_ELEMENTWISE},
    [CG_OP_GELU] = {"gelu", CG_AUTOCAST_KEEP, CG_LAYOUT_ELEMENTWISE},
    [CG_OP_AVG_POOL2D] = {"avg_pool2d", CG_AUTOCAST_F32},
    [CG_OP_GLOBAL_AVG_POOL] = {"global_avg_pool2d", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
    [CG_OP_MEMORY_FORMAT] = {"to_memory_format", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
    [CG_OP_BATCH_NORM_ACT] = {"batch_norm2d_act", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
    [CG_OP_BATCH_NORM_ADD_RELU] = {"batch_norm2d_add_relu", CG_AUTOCAST_KEEP, CG_LAYOUT_OWN},
};

const char *cg_op_name(int op) {
    CG_CHECK(op >= 0 && op < CG_NUM_OPS && op_table[op].name != NULL, "op %d has no row in the op table", op);
    return op_table[op].name;
}

cg_autocast_policy cg_op_autocast(int op) {
    cg_op_name(op); // checks the row
    return op_table[op].autocast;
}

cg_layout_policy cg_op_layout(int op) {
    cg_op_name(op);
    return op_table[op].layout;
}

bool cg_channels_last_wanted_on(cg_device device) {
    const char *v = getenv("CGRAD_CONV16_LAYOUT");
    if (v != NULL && strcmp(v, "nhwc") == 0) return true;
    if (v != NULL && strcmp(v, "nchw") == 0) return false;
    CG_CHECK(v == NULL, "CGRAD_CONV16_LAYOUT=%s: nchw or nhwc", v);
    return device.type == CG_CUDA;
}

bool cg_channels_last_wanted(const cg_tape *t) { return cg_channels_last_wanted_on(t->device); }

#define F cg_f32

// ---- matmul ---------------------------------------------------------------------------------
// iattr[0] = trans_a, iattr[1] = trans_b; M, N, K from the output and the first input.

static void mm_dims(const cg_node *n, int64_t *M, int64_t *N, int64_t *K) {
    *M = n->out->shape[0];
    *N = n->out->shape[1];
    *K = n->iattr[0] ? n->in[0]->shape[0] : n->in[0]->shape[1];
}

// The product in the node's dtype: the f32 kernel, or the 16-bit one (f32 accumulation).
static void gemm_any(const cg_kernels *k, cg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                     const void *A, const void *B, float beta, void *C) {
    if (dt == CG_F32)
        KERNEL(k, gemm)(ta, tb, M, N, K, alpha, (const float *)A, (const float *)B, beta, (float *)C);
    else
        KERNEL(k, gemm_h)(dt, ta, tb, M, N, K, alpha, A, B, beta, C);
}

static void matmul_node_forward(const cg_kernels *k, cg_node *n) {
    int64_t M, N, K;
    mm_dims(n, &M, &N, &K);
    gemm_any(k, n->out->dtype, n->iattr[0], n->iattr[1], M, N, K, 1.0f, n->in[0]->data, n->in[1]->data, 0.0f,
             n->out->data);
}

static void matmul_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    int64_t M, N, K;
    mm_dims(n, &M, &N, &K);
    bool ta = n->iattr[0], tb = n->iattr[1];
    cg_tensor *a = n->in[0], *b = n->in[1];
    cg_dtype dt = n->out->dtype; // the inputs' and every gradient's too
    const void *dc = n->out->grad->data;
    // C = op(A) op(B)  =>  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC, written for the layout
    // each input is stored in, so that no transposed copy is ever made. beta 1 adds to a gradient,
    // beta 0 writes a first one (grad_fresh: the buffer holds no zeros, and is not read).
    if (a->requires_grad) {
        void *da = cg_tape_grad(t, a)->data;
        float beta = n->grad_fresh[0] ? 0.0f : 1.0f;
        if (!ta)
            gemm_any(k, dt, false, !tb, M, K, N, 1.0f, dc, b->data, beta, da); // dA(M,K) = dC op(B)^T
        else
            gemm_any(k, dt, tb, true, K, M, N, 1.0f, b->data, dc, beta, da); // dA(K,M) = op(B) dC^T
    }
    if (b->requires_grad) { // (when b is a, dA above was the first: grad_fresh[1] is false)
        void *db = cg_tape_grad(t, b)->data;
        float beta = n->grad_fresh[1] ? 0.0f : 1.0f;
        if (!tb)
            gemm_any(k, dt, !ta, false, K, N, M, 1.0f, a->data, dc, beta, db); // dB(K,N) = op(A)^T dC
        else
            gemm_any(k, dt, true, ta, N, K, M, 1.0f, dc, a->data, beta, db); // dB(N,K) = dC^T op(A)
    }
}

// ---- linear: y = x W^T + b ------------------------------------------------------------------
// in[0] = x (M, K), in[1] = W (N, K), in[2] = b (N,) when n_in == 3.

static void linear_node_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    const void *b = n->n_in == 3 ? n->in[2]->data : NULL;
    if (n->out->dtype == CG_F32)
        KERNEL(k, linear_forward)(F(n->out), F(x), F(w), (const float *)b, x->shape[0], w->shape[0], x->shape[1]);
    else
        KERNEL(k, linear_forward_h)(n->out->dtype, n->out->data, x->data, w->data, b, x->shape[0], w->shape[0],
                                    x->shape[1]);
}

static void linear_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    int64_t M = x->shape[0], N = w->shape[0], K = x->shape[1];
    cg_dtype dt = n->out->dtype;
    const void *dy = n->out->grad->data;
    // beta 0: a first gradient written (grad_fresh, as matmul's); 1: added
    if (x->requires_grad)
        gemm_any(k, dt, false, false, M, K, N, 1.0f, dy, w->data, n->grad_fresh[0] ? 0.0f : 1.0f,
                 cg_tape_grad(t, x)->data); // dx = dy W
    if (w->requires_grad)
        gemm_any(k, dt, true, false, N, K, M, 1.0f, dy, x->data, n->grad_fresh[1] ? 0.0f : 1.0f,
                 cg_tape_grad(t, w)->data); // dW = dy^T x
    if (n->n_in == 3 && n->in[2]->requires_grad) { // db = column sums of dy
        void *db = cg_tape_grad(t, n->in[2])->data;
        if (dt == CG_F32)
            KERNEL(k, add_bias_backward)((float *)db, (const float *)dy, M, N);
        else
            KERNEL(k, add_bias_backward_h)(dt, db, dy, M, N);
    }
}

// ---- add (same shape, or bias over rows) ----------------------------------------------------
// iattr[0] = 1 when in[1] is a bias broadcast over the rows of in[0].

static void add_node_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *a = n->in[0], *b = n->in[1];
    if (a->dtype != CG_F32)
        KERNEL(k, add_forward_h)(a->dtype, n->out->data, a->data, b->data, a->numel);
    else if (n->iattr[0])
        KERNEL(k, add_bias_forward)(F(n->out), F(a), F(b), a->numel / b->numel, b->numel);
    else
        KERNEL(k, add_forward)(F(n->out), F(a), F(b), a->numel);
}

static void add_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *a = n->in[0], *b = n->in[1];
    if (a->dtype != CG_F32) { // one 16-bit dtype, one shape: each gradient = round(gradient + dy)
        cg_dtype dt = a->dtype;
        if (a->requires_grad && cg_tape_grad(t, a)->data != n->out->grad->data)
            k->cast(a->grad->data, dt, n->out->grad->data, dt, a->numel, true);
        if (b->requires_grad) k->cast(cg_tape_grad(t, b)->data, dt, n->out->grad->data, dt, b->numel, true);
        return;
    }
    const float *dy = F(n->out->grad);
    // a's gradient may be the output's own buffer (see prepare_gradients in tape.c): then it
    // already holds dy.
    if (a->requires_grad && cg_tape_grad(t, a)->data != n->out->grad->data) k->axpy(F(a->grad), 1.0f, dy, a->numel);
    if (b->requires_grad) {
        if (n->iattr[0])
            KERNEL(k, add_bias_backward)(F(cg_tape_grad(t, b)), dy, a->numel / b->numel, b->numel);
        else
            k->axpy(F(cg_tape_grad(t, b)), 1.0f, dy, b->numel);
    }
}

// ---- activations ----------------------------------------------------------------------------

static void relu_node_forward(const cg_kernels *k, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, relu_forward)(F(n->out), F(n->in[0]), n->out->numel);
    else
        KERNEL(k, relu_forward_h)(n->out->dtype, n->out->data, n->in[0]->data, n->out->numel);
}
static void relu_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, relu_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->out), n->out->numel);
    else
        KERNEL(k, relu_backward_h)(n->out->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data, n->out->data,
                                   n->out->numel, !n->grad_fresh[0]);
}
static void sigmoid_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, sigmoid_forward)(F(n->out), F(n->in[0]), n->out->numel);
}
static void sigmoid_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, sigmoid_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->out), n->out->numel);
}

// ---- losses ---------------------------------------------------------------------------------

static void bce_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, bce_forward)(F(n->out), F(n->in[0]), F(n->in[1]), n->in[0]->numel);
}
static void bce_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    CG_CHECK(!n->in[1]->requires_grad, "bce: no gradient with respect to the targets");
    KERNEL(k, bce_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->in[0]), F(n->in[1]),
                            n->in[0]->numel);
}
static void cross_entropy_node_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cross_entropy_forward)(F(n->out), F(x), (const int32_t *)n->in[1]->data, x->shape[0], x->shape[1],
                                     n->fattr[0]);
}
static void cross_entropy_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cross_entropy_backward)(F(cg_tape_grad(t, x)), F(n->out->grad), F(x), (const int32_t *)n->in[1]->data,
                                      x->shape[0], x->shape[1], n->fattr[0]);
}

// ---- reductions and scale -------------------------------------------------------------------
// fattr[0] = the factor: 1 for sum, 1/n for mean, s for scale.

static void sum_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, sum_forward)(F(n->out), F(n->in[0]), n->fattr[0], n->in[0]->numel);
}
static void sum_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, sum_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), n->fattr[0], n->in[0]->numel);
}
static void scale_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, scale)(F(n->out), F(n->in[0]), n->fattr[0], n->out->numel);
}
static void scale_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    k->axpy(F(cg_tape_grad(t, n->in[0])), n->fattr[0], F(n->out->grad), n->out->numel);
}


// ---- the shared path of every op ------------------------------------------------------------

void cg_op_check_input(const cg_tape *t, const char *op, const cg_tensor *x, cg_dtype dtype) {
    char a[16], b[16];
    CG_CHECK(cg_device_equal(x->device, t->device), "%s: input on %s, tape on %s", op,
             cg_device_str(x->device, a, sizeof a), cg_device_str(t->device, b, sizeof b));
    CG_CHECK(x->dtype == dtype, "%s: input is %s, expected %s", op, cg_dtype_name(x->dtype), cg_dtype_name(dtype));
}

// The shared path of every op: make the output, run the forward on the node's device, and
// record the node if any input requires a gradient. `node` arrives with op, inputs, attributes
// and saved tensors filled in.
cg_tensor *cg_op_apply(cg_tape *t, cg_node *node, int ndim, const int64_t *shape) {
    CG_CHECK(node->forward != NULL && node->backward != NULL, "op %s: a node without its functions",
             cg_op_name(node->op));
    // Channels-last inputs: kept where the op's row says it reads them, else copied to NCHW.
    cg_layout_policy layout = cg_op_layout(node->op);
    bool all_last = true, any_last = false;
    for (int i = 0; i < node->n_in; i++) {
        bool image = node->in[i]->ndim == 4;
        any_last |= node->in[i]->channels_last;
        all_last &= !image || node->in[i]->channels_last;
    }
    bool keep = layout == CG_LAYOUT_OWN || (layout == CG_LAYOUT_ELEMENTWISE && all_last);
    if (any_last && !keep)
        for (int i = 0; i < node->n_in; i++) node->in[i] = cg_to_memory_format(t, node->in[i], false);
    node->out = cg_arena_tensor(t->arena, node->dtype, ndim, shape);
    node->out->channels_last = any_last && layout == CG_LAYOUT_ELEMENTWISE && keep; // CG_LAYOUT_OWN: its forward says
    node->forward(cg_kernels_for(t->device), node);
    if (cg_tape_after_forward) cg_tape_after_forward(node, t->count + 1); // anomaly detection, core/anomaly.h
    bool needs_grad = false;
    for (int i = 0; i < node->n_in; i++) needs_grad |= node->in[i]->requires_grad;
    if (t->grad_enabled && needs_grad) {
        node->out->requires_grad = true;
        cg_tape_record(t, node);
    }
    return node->out;
}

// x as op takes it under the tape's autocast: its column of the op table.
cg_tensor *cg_op_autocast_input(cg_tape *t, cg_op op, cg_tensor *x) {
    switch (cg_op_autocast(op)) {
    case CG_AUTOCAST_LOW: return cg_autocast_low(t, x);
    case CG_AUTOCAST_F32:
    case CG_AUTOCAST_PROMOTE: return cg_autocast_f32(t, x); // a pair that does not stay in 16 bits
    case CG_AUTOCAST_KEEP: break;
    }
    return x;
}

// A node of op with its functions, n_in inputs, one float and two integer attributes, then
// cg_op_apply: the dense ops below all go through here.
static cg_tensor *apply(cg_tape *t, cg_op op, cg_forward_fn forward, cg_backward_fn backward, cg_dtype dtype,
                        int ndim, const int64_t *shape, int n_in, cg_tensor **in, float fattr, int iattr0) {
    cg_node node = {.op = op, .forward = forward, .backward = backward, .n_in = n_in, .fattr = {fattr, 0},
                    .iattr = {iattr0}, .dtype = dtype};
    for (int i = 0; i < n_in; i++) node.in[i] = in[i];
    return cg_op_apply(t, &node, ndim, shape);
}

// ---- cast (mixed precision) -------------------------------------------------------------------
// in[0] = x; the output has node->dtype. The conversions are the cast kernels
// (kernels/cpu/amp.c, kernels/cuda/amp.cu), which round to nearest even as core/half.c spells out.

static bool castable(cg_dtype t) { return t == CG_F32 || t == CG_F16 || t == CG_BF16; }

static void cast_node_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, cast)(n->out->data, n->out->dtype, n->in[0]->data, n->in[0]->dtype, n->out->numel, false);
}

// d x += d y, converted to x's dtype (the derivative of a rounding is taken as 1, as PyTorch's
// .to() does: autograd sees a cast as the identity).
static void cast_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cast)(cg_tape_grad(t, x)->data, x->dtype, n->out->grad->data, n->out->dtype, x->numel, true);
}

cg_tensor *cg_cast(cg_tape *t, cg_tensor *x, cg_dtype dtype) {
    CG_CHECK(castable(x->dtype) && castable(dtype), "cast: %s to %s (only f32, f16 and bf16)", cg_dtype_name(x->dtype),
             cg_dtype_name(dtype));
    if (x->dtype == dtype) return x;
    cg_op_check_input(t, "cast", x, x->dtype);
    return apply(t, CG_OP_CAST, cast_node_forward, cast_node_backward, dtype, x->ndim, x->shape, 1, &x, 0.0f, 0);
}

cg_tensor *cg_autocast_low(cg_tape *t, cg_tensor *x) {
    if (x->dtype == t->autocast) return x;
    if (x->low != NULL && x->low->dtype == t->autocast) { // the parameter's 16-bit copy
        x->low->requires_grad = x->requires_grad; // a frozen parameter's copy gets no gradient either
        return x->low;
    }
    return cg_cast(t, x, t->autocast);
}

cg_tensor *cg_autocast_f32(cg_tape *t, cg_tensor *x) { return x->dtype == CG_F32 ? x : cg_cast(t, x, CG_F32); }

// ---- the dense ops ----------------------------------------------------------------------------

cg_tensor *cg_matmul(cg_tape *t, cg_tensor *a, cg_tensor *b, bool trans_a, bool trans_b) {
    cg_dtype dt = cg_op_compute_dtype(t);
    a = cg_op_autocast_input(t, CG_OP_MATMUL, a), b = cg_op_autocast_input(t, CG_OP_MATMUL, b);
    cg_op_check_input(t, "matmul", a, dt);
    cg_op_check_input(t, "matmul", b, dt);
    char sa[64], sb[64];
    CG_CHECK(a->ndim == 2 && b->ndim == 2, "matmul: %s and %s must both be 2-D", cg_shape_str(a, sa, sizeof sa),
             cg_shape_str(b, sb, sizeof sb));
    int64_t M = trans_a ? a->shape[1] : a->shape[0];
    int64_t Ka = trans_a ? a->shape[0] : a->shape[1];
    int64_t Kb = trans_b ? b->shape[1] : b->shape[0];
    int64_t N = trans_b ? b->shape[0] : b->shape[1];
    CG_CHECK(Ka == Kb, "matmul: inner dimensions differ: %s%s x %s%s", cg_shape_str(a, sa, sizeof sa),
             trans_a ? "^T" : "", cg_shape_str(b, sb, sizeof sb), trans_b ? "^T" : "");
    // Both gradients are products that can be written as well as added (core/tape.h: fresh gradients).
    cg_node node = {.op = CG_OP_MATMUL, .forward = matmul_node_forward, .backward = matmul_node_backward, .n_in = 2,
                    .in = {a, b}, .iattr = {trans_a, trans_b}, .dtype = dt, .grad_writable = {true, true}};
    return cg_op_apply(t, &node, 2, (int64_t[]){M, N});
}

cg_tensor *cg_linear(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias) {
    cg_dtype dt = cg_op_compute_dtype(t);
    x = cg_op_autocast_input(t, CG_OP_LINEAR, x), weight = cg_op_autocast_input(t, CG_OP_LINEAR, weight);
    if (bias) bias = cg_op_autocast_input(t, CG_OP_LINEAR, bias);
    cg_op_check_input(t, "linear", x, dt);
    cg_op_check_input(t, "linear", weight, dt);
    char sx[64], sw[64], sb[64];
    CG_CHECK(x->ndim == 2 && weight->ndim == 2 && x->shape[1] == weight->shape[1],
             "linear: x %s must be (N, in) and weight %s (out, in)", cg_shape_str(x, sx, sizeof sx),
             cg_shape_str(weight, sw, sizeof sw));
    if (bias) {
        cg_op_check_input(t, "linear", bias, dt);
        CG_CHECK(bias->ndim == 1 && bias->shape[0] == weight->shape[0], "linear: bias %s for weight %s",
                 cg_shape_str(bias, sb, sizeof sb), cg_shape_str(weight, sw, sizeof sw));
    }
    // dx and dW are products that can be written as well as added (core/tape.h: fresh gradients);
    // the bias's gradient, a column sum, is only added.
    cg_node node = {.op = CG_OP_LINEAR, .forward = linear_node_forward, .backward = linear_node_backward,
                    .n_in = bias ? 3 : 2, .in = {x, weight, bias}, .dtype = dt, .grad_writable = {true, true}};
    return cg_op_apply(t, &node, 2, (int64_t[]){x->shape[0], weight->shape[0]});
}

cg_tensor *cg_add(cg_tape *t, cg_tensor *a, cg_tensor *b) {
    // The op table's PROMOTE: a pair of one 16-bit dtype and one shape stays in it, others go to f32.
    bool low = a->dtype == b->dtype && (a->dtype == CG_F16 || a->dtype == CG_BF16) && cg_same_shape(a, b);
    if (!low) a = cg_op_autocast_input(t, CG_OP_ADD, a), b = cg_op_autocast_input(t, CG_OP_ADD, b);
    cg_op_check_input(t, "add", a, a->dtype);
    cg_op_check_input(t, "add", b, a->dtype);
    bool bias = !cg_same_shape(a, b);
    char sa[64], sb[64];
    CG_CHECK(!bias || (b->ndim == 1 && a->ndim >= 1 && a->shape[a->ndim - 1] == b->shape[0]),
             "add: %s + %s: shapes must match, or the second be a bias over the last dimension",
             cg_shape_str(a, sa, sizeof sa), cg_shape_str(b, sb, sizeof sb));
    // Same shapes: d a = d y exactly, so the tape may give a the output's gradient buffer.
    cg_node node = {.op = CG_OP_ADD, .forward = add_node_forward, .backward = add_node_backward, .dtype = a->dtype,
                    .n_in = 2, .in = {a, b}, .iattr = {bias}, .in0_grad_is_out_grad = !bias};
    return cg_op_apply(t, &node, a->ndim, a->shape);
}

// ReLU keeps its input's dtype: f32, or 16 bits under autocast (a sign test is exact in any format).
cg_tensor *cg_relu(cg_tape *t, cg_tensor *x) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "relu: input is %s",
             cg_dtype_name(x->dtype));
    x = cg_op_autocast_input(t, CG_OP_RELU, x);
    cg_op_check_input(t, "relu", x, x->dtype);
    // In 16 bits the backward can write a first gradient (core/tape.h: fresh gradients).
    cg_node node = {.op = CG_OP_RELU, .forward = relu_node_forward, .backward = relu_node_backward, .n_in = 1,
                    .in = {x}, .dtype = x->dtype, .grad_writable = {x->dtype != CG_F32}};
    return cg_op_apply(t, &node, x->ndim, x->shape);
}

cg_tensor *cg_sigmoid(cg_tape *t, cg_tensor *x) {
    x = cg_op_autocast_input(t, CG_OP_SIGMOID, x);
    cg_op_check_input(t, "sigmoid", x, CG_F32);
    return apply(t, CG_OP_SIGMOID, sigmoid_node_forward, sigmoid_node_backward, CG_F32, x->ndim, x->shape, 1, &x,
                 0.0f, 0);
}

cg_tensor *cg_scale(cg_tape *t, cg_tensor *x, float s) {
    x = cg_op_autocast_input(t, CG_OP_SCALE, x);
    cg_op_check_input(t, "scale", x, CG_F32);
    return apply(t, CG_OP_SCALE, scale_node_forward, scale_node_backward, CG_F32, x->ndim, x->shape, 1, &x, s, 0);
}

cg_tensor *cg_bce(cg_tape *t, cg_tensor *p, cg_tensor *targets) {
    p = cg_op_autocast_input(t, CG_OP_BCE, p);
    cg_op_check_input(t, "bce", p, CG_F32);
    cg_op_check_input(t, "bce", targets, CG_F32);
    char sa[64], sb[64];
    CG_CHECK(p->numel == targets->numel, "bce: probabilities %s and targets %s differ in size",
             cg_shape_str(p, sa, sizeof sa), cg_shape_str(targets, sb, sizeof sb));
    cg_tensor *in[2] = {p, targets};
    return apply(t, CG_OP_BCE, bce_node_forward, bce_node_backward, CG_F32, 0, NULL, 2, in, 0.0f, 0);
}

cg_tensor *cg_cross_entropy(cg_tape *t, cg_tensor *logits, cg_tensor *labels) {
    return cg_cross_entropy_smoothed(t, logits, labels, 0.0f);
}

cg_tensor *cg_cross_entropy_smoothed(cg_tape *t, cg_tensor *logits, cg_tensor *labels, float label_smoothing) {
    CG_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, "cross_entropy: label smoothing %g outside [0, 1]",
             (double)label_smoothing);
    logits = cg_op_autocast_input(t, CG_OP_CROSS_ENTROPY, logits);
    cg_op_check_input(t, "cross_entropy", logits, CG_F32);
    cg_op_check_input(t, "cross_entropy", labels, CG_I32);
    char sa[64], sb[64];
    CG_CHECK(logits->ndim == 2 && labels->numel == logits->shape[0],
             "cross_entropy: logits %s must be (N, K) and labels %s (N,)", cg_shape_str(logits, sa, sizeof sa),
             cg_shape_str(labels, sb, sizeof sb));
    cg_tensor *in[2] = {logits, labels};
    return apply(t, CG_OP_CROSS_ENTROPY, cross_entropy_node_forward, cross_entropy_node_backward, CG_F32, 0, NULL, 2,
                 in, label_smoothing, 0);
}

// sum and mean are one op: the factor fattr[0] is 1 or 1 / n.
static cg_tensor *sum_scaled(cg_tape *t, cg_tensor *x, const char *what, bool mean) {
    x = cg_op_autocast_input(t, CG_OP_SUM, x);
    cg_op_check_input(t, what, x, CG_F32);
    float factor = mean ? 1.0f / (float)x->numel : 1.0f;
    return apply(t, CG_OP_SUM, sum_node_forward, sum_node_backward, CG_F32, 0, NULL, 1, &x, factor, 0);
}

cg_tensor *cg_sum(cg_tape *t, cg_tensor *x) { return sum_scaled(t, x, "sum", false); }
cg_tensor *cg_mean(cg_tape *t, cg_tensor *x) { return sum_scaled(t, x, "mean", true); }

// ---- GELU: iattr[0] = 1 for the tanh approximation ---------------------------------------------

static void gelu_node_forward(const cg_kernels *k, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, gelu_forward)(F(n->out), F(n->in[0]), n->out->numel, n->iattr[0]);
    else
        KERNEL(k, gelu_forward_h)(n->out->dtype, n->out->data, n->in[0]->data, n->out->numel, n->iattr[0]);
}
static void gelu_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, gelu_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->in[0]), n->out->numel,
                                 n->iattr[0]);
    else
        KERNEL(k, gelu_backward_h)(n->out->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data,
                                   n->in[0]->data, n->out->numel, n->iattr[0], !n->grad_fresh[0]);
}

// GELU keeps its input's dtype, as PyTorch's under autocast (not on its lists: it runs in the
// dtype it is given): f32, or 16 bits with the arithmetic in f32 and the result rounded once.
static cg_tensor *gelu(cg_tape *t, cg_tensor *x, bool tanh_approx) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "gelu: input is %s",
             cg_dtype_name(x->dtype));
    x = cg_op_autocast_input(t, CG_OP_GELU, x);
    cg_op_check_input(t, "gelu", x, x->dtype);
    cg_node node = {.op = CG_OP_GELU, .forward = gelu_node_forward, .backward = gelu_node_backward, .n_in = 1,
                    .in = {x}, .iattr = {tanh_approx}, .dtype = x->dtype, .grad_writable = {x->dtype != CG_F32}};
    return cg_op_apply(t, &node, x->ndim, x->shape);
}
cg_tensor *cg_gelu(cg_tape *t, cg_tensor *x) { return gelu(t, x, false); }
cg_tensor *cg_gelu_tanh(cg_tape *t, cg_tensor *x) { return gelu(t, x, true); }

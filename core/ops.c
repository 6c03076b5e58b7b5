// ops.c: the op table. The one file that knows both tensors and kernels: each op checks its
// inputs, makes its output on the tape, calls its device's kernel through cg_kernels_for, and
// records itself; each backward calls the kernels that accumulate the input gradients.
// No arithmetic here: that is in kernels/cpu and kernels/cuda.
#include "ops_internal.h"
#include "anomaly.h"

#include <stdio.h>

typedef struct {
    const char *name;
    cg_forward_fn forward;
    cg_backward_fn backward;
} cg_op_row;

// A kernel the device lacks is a clear error, never a fallback to another device.
void cg_op_missing_kernel(const char *name, const cg_kernels *k) {
    CG_CHECK(0, "kernel %s is missing on %s", name, k->device_name);
}

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

static void matmul_forward(const cg_kernels *k, cg_node *n) {
    int64_t M, N, K;
    mm_dims(n, &M, &N, &K);
    gemm_any(k, n->out->dtype, n->iattr[0], n->iattr[1], M, N, K, 1.0f, n->in[0]->data, n->in[1]->data, 0.0f,
             n->out->data);
}

static void matmul_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    int64_t M, N, K;
    mm_dims(n, &M, &N, &K);
    bool ta = n->iattr[0], tb = n->iattr[1];
    cg_tensor *a = n->in[0], *b = n->in[1];
    cg_dtype dt = n->out->dtype; // the inputs' and every gradient's too
    const void *dc = n->out->grad->data;
    // C = op(A) op(B)  =>  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC, written for the layout
    // each input is stored in, so that no transposed copy is ever made.
    if (a->requires_grad) {
        void *da = cg_tape_grad(t, a)->data;
        if (!ta)
            gemm_any(k, dt, false, !tb, M, K, N, 1.0f, dc, b->data, 1.0f, da); // dA(M,K) = dC op(B)^T
        else
            gemm_any(k, dt, tb, true, K, M, N, 1.0f, b->data, dc, 1.0f, da); // dA(K,M) = op(B) dC^T
    }
    if (b->requires_grad) {
        void *db = cg_tape_grad(t, b)->data;
        if (!tb)
            gemm_any(k, dt, !ta, false, K, N, M, 1.0f, a->data, dc, 1.0f, db); // dB(K,N) = op(A)^T dC
        else
            gemm_any(k, dt, true, ta, N, K, M, 1.0f, dc, a->data, 1.0f, db); // dB(N,K) = dC^T op(A)
    }
}

// ---- linear: y = x W^T + b ------------------------------------------------------------------
// in[0] = x (M, K), in[1] = W (N, K), in[2] = b (N,) when n_in == 3.

static void linear_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    const void *b = n->n_in == 3 ? n->in[2]->data : NULL;
    if (n->out->dtype == CG_F32)
        KERNEL(k, linear_forward)(F(n->out), F(x), F(w), (const float *)b, x->shape[0], w->shape[0], x->shape[1]);
    else
        KERNEL(k, linear_forward_h)(n->out->dtype, n->out->data, x->data, w->data, b, x->shape[0], w->shape[0],
                                    x->shape[1]);
}

static void linear_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *w = n->in[1];
    int64_t M = x->shape[0], N = w->shape[0], K = x->shape[1];
    cg_dtype dt = n->out->dtype;
    const void *dy = n->out->grad->data;
    if (x->requires_grad) gemm_any(k, dt, false, false, M, K, N, 1.0f, dy, w->data, 1.0f, cg_tape_grad(t, x)->data); // dx = dy W
    if (w->requires_grad) gemm_any(k, dt, true, false, N, K, M, 1.0f, dy, x->data, 1.0f, cg_tape_grad(t, w)->data); // dW = dy^T x
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

static void add_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *a = n->in[0], *b = n->in[1];
    if (n->iattr[0])
        KERNEL(k, add_bias_forward)(F(n->out), F(a), F(b), a->numel / b->numel, b->numel);
    else
        KERNEL(k, add_forward)(F(n->out), F(a), F(b), a->numel);
}

static void add_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *a = n->in[0], *b = n->in[1];
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

static void relu_forward(const cg_kernels *k, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, relu_forward)(F(n->out), F(n->in[0]), n->out->numel);
    else
        KERNEL(k, relu_forward_h)(n->out->dtype, n->out->data, n->in[0]->data, n->out->numel);
}
static void relu_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    if (n->out->dtype == CG_F32)
        KERNEL(k, relu_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->out), n->out->numel);
    else
        KERNEL(k, relu_backward_h)(n->out->dtype, cg_tape_grad(t, n->in[0])->data, n->out->grad->data, n->out->data,
                                   n->out->numel);
}
static void sigmoid_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, sigmoid_forward)(F(n->out), F(n->in[0]), n->out->numel);
}
static void sigmoid_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, sigmoid_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->out), n->out->numel);
}

// ---- losses ---------------------------------------------------------------------------------

static void bce_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, bce_forward)(F(n->out), F(n->in[0]), F(n->in[1]), n->in[0]->numel);
}
static void bce_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    CG_CHECK(!n->in[1]->requires_grad, "bce: no gradient with respect to the targets");
    KERNEL(k, bce_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->in[0]), F(n->in[1]),
                            n->in[0]->numel);
}
static void cross_entropy_forward(const cg_kernels *k, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cross_entropy_forward)(F(n->out), F(x), (const int32_t *)n->in[1]->data, x->shape[0], x->shape[1]);
}
static void cross_entropy_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0];
    KERNEL(k, cross_entropy_backward)(F(cg_tape_grad(t, x)), F(n->out->grad), F(x), (const int32_t *)n->in[1]->data,
                                      x->shape[0], x->shape[1]);
}

// ---- reductions and scale -------------------------------------------------------------------
// fattr[0] = the factor: 1 for sum, 1/n for mean, s for scale.

static void sum_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, sum_forward)(F(n->out), F(n->in[0]), n->fattr[0], n->in[0]->numel);
}
static void sum_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, sum_backward)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), n->fattr[0], n->in[0]->numel);
}
static void scale_forward(const cg_kernels *k, cg_node *n) {
    KERNEL(k, scale)(F(n->out), F(n->in[0]), n->fattr[0], n->out->numel);
}
static void scale_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    k->axpy(F(cg_tape_grad(t, n->in[0])), n->fattr[0], F(n->out->grad), n->out->numel);
}

static const cg_op_row cg_op_table[CG_NUM_OPS] = {
    [CG_OP_MATMUL] = {"matmul", matmul_forward, matmul_backward},
    [CG_OP_LINEAR] = {"linear", linear_forward, linear_backward},
    [CG_OP_ADD] = {"add", add_forward, add_backward},
    [CG_OP_RELU] = {"relu", relu_forward, relu_backward},
    [CG_OP_SIGMOID] = {"sigmoid", sigmoid_forward, sigmoid_backward},
    [CG_OP_BCE] = {"bce", bce_forward, bce_backward},
    [CG_OP_CROSS_ENTROPY] = {"cross_entropy", cross_entropy_forward, cross_entropy_backward},
    [CG_OP_SUM] = {"sum", sum_forward, sum_backward},
    [CG_OP_SCALE] = {"scale", scale_forward, scale_backward},
    [CG_OP_CONV2D] = {"conv2d", cg_conv2d_forward, cg_conv2d_backward},
    [CG_OP_MAX_POOL2D] = {"max_pool2d", cg_max_pool2d_forward, cg_max_pool2d_backward},
    [CG_OP_RESHAPE] = {"reshape", cg_reshape_forward, cg_reshape_backward},
    [CG_OP_BATCH_NORM2D] = {"batch_norm2d", cg_batch_norm2d_forward, cg_batch_norm2d_backward},
    [CG_OP_DROPOUT] = {"dropout", cg_dropout_forward, cg_dropout_backward},
    [CG_OP_CONV2D_RELU_POOL] = {"conv2d_relu_max_pool2d", cg_conv2d_relu_pool_forward, cg_conv2d_relu_pool_backward},
    [CG_OP_CAST] = {"cast", cg_cast_forward, cg_cast_backward},
};

const char *cg_op_name(int op) {
    CG_CHECK(op >= 0 && op < CG_NUM_OPS, "unknown op %d", op);
    return cg_op_table[op].name;
}

void cg_op_backward(cg_tape *t, cg_node *node) {
    cg_op_table[node->op].backward(cg_kernels_for(t->device), t, node);
    if (cg_anomaly_enabled()) cg_anomaly_after_backward(node, (int)(node - t->nodes) + 1); // core/anomaly.h
}

const cg_kernels *cg_kernels_for(cg_device device) {
    if (device.type == CG_CPU) return &cg_cpu_kernels;
    const cg_kernels *k = cg_cuda_kernels();
    CG_CHECK(k != NULL, "no kernels for cuda:%d: cgrad was built without CUDA", device.index);
    return k;
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
    node->out = cg_arena_tensor(t->arena, node->dtype, ndim, shape);
    cg_op_table[node->op].forward(cg_kernels_for(t->device), node);
    if (cg_anomaly_enabled()) cg_anomaly_after_forward(node, t->count + 1); // core/anomaly.h
    bool needs_grad = false;
    for (int i = 0; i < node->n_in; i++) needs_grad |= node->in[i]->requires_grad;
    if (t->grad_enabled && needs_grad) {
        node->out->requires_grad = true;
        cg_tape_record(t, node);
    }
    return node->out;
}

static cg_tensor *apply_typed(cg_tape *t, cg_op op, cg_dtype dtype, int ndim, const int64_t *shape, int n_in,
                              cg_tensor **in, float fattr, int iattr0, int iattr1) {
    cg_node node = {.op = op, .n_in = n_in, .fattr = {fattr, 0}, .iattr = {iattr0, iattr1}, .dtype = dtype};
    for (int i = 0; i < n_in; i++) node.in[i] = in[i];
    return cg_op_apply(t, &node, ndim, shape);
}

static cg_tensor *apply(cg_tape *t, cg_op op, int ndim, const int64_t *shape, int n_in, cg_tensor **in,
                        float fattr, int iattr0, int iattr1) {
    cg_node node = {.op = op, .n_in = n_in, .fattr = {fattr, 0}, .iattr = {iattr0, iattr1}};
    for (int i = 0; i < n_in; i++) node.in[i] = in[i];
    return cg_op_apply(t, &node, ndim, shape);
}

cg_tensor *cg_matmul(cg_tape *t, cg_tensor *a, cg_tensor *b, bool trans_a, bool trans_b) {
    cg_dtype dt = cg_op_compute_dtype(t);
    a = cg_autocast_low(t, a), b = cg_autocast_low(t, b);
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
    int64_t shape[2] = {M, N};
    cg_tensor *in[2] = {a, b};
    return apply_typed(t, CG_OP_MATMUL, dt, 2, shape, 2, in, 0.0f, trans_a, trans_b);
}

cg_tensor *cg_linear(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias) {
    cg_dtype dt = cg_op_compute_dtype(t);
    x = cg_autocast_low(t, x), weight = cg_autocast_low(t, weight);
    if (bias) bias = cg_autocast_low(t, bias);
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
    int64_t shape[2] = {x->shape[0], weight->shape[0]};
    cg_tensor *in[3] = {x, weight, bias};
    return apply_typed(t, CG_OP_LINEAR, dt, 2, shape, bias ? 3 : 2, in, 0.0f, 0, 0);
}

cg_tensor *cg_add(cg_tape *t, cg_tensor *a, cg_tensor *b) {
    a = cg_autocast_f32(t, a), b = cg_autocast_f32(t, b);
    cg_op_check_input(t, "add", a, CG_F32);
    cg_op_check_input(t, "add", b, CG_F32);
    bool bias = !cg_same_shape(a, b);
    char sa[64], sb[64];
    CG_CHECK(!bias || (b->ndim == 1 && a->ndim >= 1 && a->shape[a->ndim - 1] == b->shape[0]),
             "add: %s + %s: shapes must match, or the second be a bias over the last dimension",
             cg_shape_str(a, sa, sizeof sa), cg_shape_str(b, sb, sizeof sb));
    cg_tensor *in[2] = {a, b};
    return apply(t, CG_OP_ADD, a->ndim, a->shape, 2, in, 0.0f, bias, 0);
}

static cg_tensor *unary(cg_tape *t, cg_op op, cg_tensor *x, float fattr) {
    x = cg_autocast_f32(t, x);
    cg_op_check_input(t, cg_op_name(op), x, CG_F32);
    return apply(t, op, x->ndim, x->shape, 1, &x, fattr, 0, 0);
}

// ReLU keeps its input's dtype: f32, or 16 bits under autocast (a sign test is exact in any format).
cg_tensor *cg_relu(cg_tape *t, cg_tensor *x) {
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "relu: input is %s",
             cg_dtype_name(x->dtype));
    cg_op_check_input(t, "relu", x, x->dtype);
    return apply_typed(t, CG_OP_RELU, x->dtype, x->ndim, x->shape, 1, &x, 0.0f, 0, 0);
}
cg_tensor *cg_sigmoid(cg_tape *t, cg_tensor *x) { return unary(t, CG_OP_SIGMOID, x, 0.0f); }
cg_tensor *cg_scale(cg_tape *t, cg_tensor *x, float s) { return unary(t, CG_OP_SCALE, x, s); }

cg_tensor *cg_bce(cg_tape *t, cg_tensor *p, cg_tensor *targets) {
    p = cg_autocast_f32(t, p);
    cg_op_check_input(t, "bce", p, CG_F32);
    cg_op_check_input(t, "bce", targets, CG_F32);
    char sa[64], sb[64];
    CG_CHECK(p->numel == targets->numel, "bce: probabilities %s and targets %s differ in size",
             cg_shape_str(p, sa, sizeof sa), cg_shape_str(targets, sb, sizeof sb));
    cg_tensor *in[2] = {p, targets};
    return apply(t, CG_OP_BCE, 0, NULL, 2, in, 0.0f, 0, 0);
}

cg_tensor *cg_cross_entropy(cg_tape *t, cg_tensor *logits, cg_tensor *labels) {
    logits = cg_autocast_f32(t, logits);
    cg_op_check_input(t, "cross_entropy", logits, CG_F32);
    cg_op_check_input(t, "cross_entropy", labels, CG_I32);
    char sa[64], sb[64];
    CG_CHECK(logits->ndim == 2 && labels->numel == logits->shape[0],
             "cross_entropy: logits %s must be (N, K) and labels %s (N,)", cg_shape_str(logits, sa, sizeof sa),
             cg_shape_str(labels, sb, sizeof sb));
    cg_tensor *in[2] = {logits, labels};
    return apply(t, CG_OP_CROSS_ENTROPY, 0, NULL, 2, in, 0.0f, 0, 0);
}

cg_tensor *cg_sum(cg_tape *t, cg_tensor *x) {
    x = cg_autocast_f32(t, x);
    cg_op_check_input(t, "sum", x, CG_F32);
    return apply(t, CG_OP_SUM, 0, NULL, 1, &x, 1.0f, 0, 0);
}

cg_tensor *cg_mean(cg_tape *t, cg_tensor *x) {
    x = cg_autocast_f32(t, x);
    cg_op_check_input(t, "mean", x, CG_F32);
    return apply(t, CG_OP_SUM, 0, NULL, 1, &x, 1.0f / (float)x->numel, 0, 0);
}

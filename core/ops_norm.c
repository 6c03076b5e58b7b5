// ops_norm.c: the regularising ops of the op table: batch_norm2d and dropout.
// Tensor logic only; the arithmetic is in kernels/cpu/norm.c and kernels/cuda/norm.cu.
#include "core/ops_internal.h"

#define F cg_f32

// ---- batch_norm2d -----------------------------------------------------------------------------
// in = x (N, C, H, W), gamma (C,), beta (C,); iattr[0] = training; fattr = eps, momentum;
// saved[0] = stats (2C: mean, inverse std), saved[1] / saved[2] = running mean / variance.
// Synchronised over the ranks when the tape says so (core/tape.h: batch_norm_sum): below.

// A 16-bit x may be stored channels-last; y is stored as x (the f32 kernels take NCHW only).
static void batch_norm2d_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    n->out->channels_last = x->channels_last;
    if (x->dtype == CG_F32)
        KERNEL(k, batch_norm_forward)(F(n->out), F(n->saved[0]), F(n->saved[1]), F(n->saved[2]), F(x), F(n->in[1]),
                                      F(n->in[2]), N, C, HW, n->fattr[0], n->fattr[1], n->iattr[0]);
    else
        KERNEL(k, batch_norm_forward_h)(x->dtype, n->out->data, F(n->saved[0]), F(n->saved[1]), F(n->saved[2]),
                                        x->data, F(n->in[1]), F(n->in[2]), N, C, HW, n->fattr[0], n->fattr[1],
                                        n->iattr[0], x->channels_last);
}

static void batch_norm2d_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    float *dgamma = gamma->requires_grad ? F(cg_tape_grad(t, gamma)) : NULL;
    float *dbeta = beta->requires_grad ? F(cg_tape_grad(t, beta)) : NULL;
    if (x->dtype == CG_F32) {
        float *dx = x->requires_grad ? F(cg_tape_grad(t, x)) : NULL;
        KERNEL(k, batch_norm_backward)(dx, dgamma, dbeta, F(n->out->grad), F(x), F(gamma), F(n->saved[0]), N, C, HW,
                                       n->iattr[0]);
    } else {
        void *dx = x->requires_grad ? cg_tape_grad(t, x)->data : NULL;
        KERNEL(k, batch_norm_backward_h)(x->dtype, dx, dgamma, dbeta, n->out->grad->data, x->data, F(gamma),
                                         F(n->saved[0]), N, C, HW, n->iattr[0], x->channels_last, !n->grad_fresh[0]);
    }
}

// ---- synchronised (t->batch_norm_sum set, training) ------------------------------------------------
// Before the node: this batch's per-channel sums, summed over the ranks, become saved[0] = stats
// (2C + 1: mean, inverse std, then the count over every rank) and update the running statistics;
// the node's forward normalises with them. Backward: this rank's sums of dy and dy xhat, a copy
// summed over the ranks, then dx from those. iattr[1] = 1.

static void batch_norm2d_synced_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    KERNEL(k, batch_norm_forward_from_stats)(F(n->out), F(x), F(n->in[1]), F(n->in[2]), F(n->saved[0]), x->shape[0],
                                             x->shape[1], x->shape[2] * x->shape[3]);
}

static void batch_norm2d_synced_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    double *sums = cg_arena_alloc(t->arena, (size_t)(4 * C) * sizeof(double));
    KERNEL(k, batch_norm_backward_sums)(sums, F(n->out->grad), F(x), F(n->saved[0]), N, C, HW);
    if (t->batch_norm_sum) t->batch_norm_sum(t->batch_norm_sum_ctx, sums + 2 * C, 2 * C); // none: one rank
    float *dx = x->requires_grad ? F(cg_tape_grad(t, x)) : NULL;
    float *dgamma = gamma->requires_grad ? F(cg_tape_grad(t, gamma)) : NULL;
    float *dbeta = beta->requires_grad ? F(cg_tape_grad(t, beta)) : NULL;
    KERNEL(k, batch_norm_backward_from_sums)(dx, dgamma, dbeta, F(n->out->grad), F(x), F(gamma), F(n->saved[0]), sums,
                                             N, C, HW);
}

// The checks of batch_norm2d and its node, ready for cg_op_apply (the synchronised form's
// statistics already computed): shared with batch_norm2d_act below.
static cg_node batch_norm_node(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                               cg_tensor *running_var, bool training, float momentum, float eps) {
    // Under autocast x keeps its 16-bit dtype (statistics and sums in f32, the output rounded once,
    // as cuDNN's batch norm under torch.autocast); the synchronised form works in f32.
    CG_CHECK(x->dtype == CG_F32 || x->dtype == CG_F16 || x->dtype == CG_BF16, "batch_norm2d: x is %s",
             cg_dtype_name(x->dtype));
    x = cg_op_autocast_input(t, CG_OP_BATCH_NORM2D, x);
    if (training && t->batch_norm_sum != NULL) x = cg_autocast_f32(t, x);
    if (x->dtype == CG_F32) x = cg_to_memory_format(t, x, false);
    cg_tensor *all[] = {x, gamma, beta, running_mean, running_var};
    cg_op_check_input(t, "batch_norm2d", x, x->dtype);
    for (int i = 1; i < 5; i++) cg_op_check_input(t, "batch_norm2d", all[i], CG_F32);
    char sx[64];
    CG_CHECK(x->ndim == 4, "batch_norm2d: x %s must be (N, C, H, W)", cg_shape_str(x, sx, sizeof sx));
    int64_t C = x->shape[1];
    for (int i = 1; i < 5; i++)
        CG_CHECK(all[i]->numel == C, "batch_norm2d: a per-channel tensor of %lld values for %lld channels",
                 (long long)all[i]->numel, (long long)C);
    CG_CHECK(!training || x->numel / C > 1, "batch_norm2d: training needs more than one value per channel");
    cg_node node = {.op = CG_OP_BATCH_NORM2D, .forward = batch_norm2d_node_forward,
                    .backward = batch_norm2d_node_backward, .dtype = x->dtype, .n_in = 3, .in = {x, gamma, beta},
                    .iattr = {training}, .fattr = {eps, momentum},
                    .grad_writable = {x->dtype != CG_F32}}; // 16 bits: a first dx is written (core/tape.h)
    if (!training || t->batch_norm_sum == NULL) {
        node.saved[0] = cg_arena_tensor(t->arena, CG_F32, 1, (int64_t[]){2 * C});
        node.saved[1] = running_mean;
        node.saved[2] = running_var;
    } else { // the statistics of every rank's batch together
        const cg_kernels *k = cg_kernels_for(t->device);
        double *sums = cg_arena_alloc(t->arena, (size_t)(2 * C + 1) * sizeof(double));
        KERNEL(k, batch_norm_sums)(sums, F(x), x->shape[0], C, x->shape[2] * x->shape[3]);
        t->batch_norm_sum(t->batch_norm_sum_ctx, sums, 2 * C + 1);
        node.saved[0] = cg_arena_tensor(t->arena, CG_F32, 1, (int64_t[]){2 * C + 1});
        KERNEL(k, batch_norm_stats_from_sums)(F(node.saved[0]), F(running_mean), F(running_var), sums, C, eps, momentum);
        node.forward = batch_norm2d_synced_node_forward;
        node.backward = batch_norm2d_synced_node_backward;
        node.iattr[1] = 1;
    }
    return node;
}

cg_tensor *cg_batch_norm2d(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                           cg_tensor *running_var, bool training, float momentum, float eps) {
    cg_node node = batch_norm_node(t, x, gamma, beta, running_mean, running_var, training, momentum, eps);
    return cg_op_apply(t, &node, 4, node.in[0]->shape);
}

// ---- batch_norm2d_act -------------------------------------------------------------------------------
// As batch_norm2d (in, iattr, fattr, saved), the output the activation's; iattr[2] = the
// activation (cg_activation, core/kernels.h).

static void batch_norm_act_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    n->out->channels_last = x->channels_last;
    KERNEL(k, batch_norm_act_forward)(x->dtype, (cg_activation)n->iattr[2], n->out->data, F(n->saved[0]),
                                      F(n->saved[1]), F(n->saved[2]), x->data, F(n->in[1]), F(n->in[2]), x->shape[0],
                                      x->shape[1], x->shape[2] * x->shape[3], n->fattr[0], n->fattr[1], n->iattr[0],
                                      x->channels_last);
}

static void batch_norm_act_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    void *dx = x->requires_grad ? cg_tape_grad(t, x)->data : NULL;
    float *dgamma = gamma->requires_grad ? F(cg_tape_grad(t, gamma)) : NULL;
    float *dbeta = beta->requires_grad ? F(cg_tape_grad(t, beta)) : NULL;
    KERNEL(k, batch_norm_act_backward)(x->dtype, (cg_activation)n->iattr[2], dx, dgamma, dbeta, n->out->grad->data,
                                       x->data, F(gamma), F(beta), F(n->saved[0]), x->shape[0], x->shape[1],
                                       x->shape[2] * x->shape[3], n->iattr[0], x->channels_last, !n->grad_fresh[0]);
}

static cg_tensor *batch_norm_act(cg_tape *t, cg_activation act, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta,
                                 cg_tensor *running_mean, cg_tensor *running_var, bool training, float momentum,
                                 float eps) {
    if ((training && t->batch_norm_sum != NULL) || cg_kernels_for(t->device)->batch_norm_act_forward == NULL) {
        cg_tensor *y = cg_batch_norm2d(t, x, gamma, beta, running_mean, running_var, training, momentum, eps);
        return act == CG_ACT_GELU ? cg_gelu(t, y) : cg_relu(t, y);
    }
    cg_node node = batch_norm_node(t, x, gamma, beta, running_mean, running_var, training, momentum, eps);
    node.op = CG_OP_BATCH_NORM_ACT;
    node.forward = batch_norm_act_node_forward;
    node.backward = batch_norm_act_node_backward;
    node.iattr[2] = act;
    node.grad_writable[0] = true; // every dtype (batch_norm_act_backward's accumulate flag)
    return cg_op_apply(t, &node, 4, node.in[0]->shape);
}

cg_tensor *cg_batch_norm2d_gelu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                                cg_tensor *running_var, bool training, float momentum, float eps) {
    return batch_norm_act(t, CG_ACT_GELU, x, gamma, beta, running_mean, running_var, training, momentum, eps);
}

cg_tensor *cg_batch_norm2d_relu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                                cg_tensor *running_var, bool training, float momentum, float eps) {
    return batch_norm_act(t, CG_ACT_RELU, x, gamma, beta, running_mean, running_var, training, momentum, eps);
}

// ---- batch_norm2d_add_relu --------------------------------------------------------------------------
// As batch_norm2d (iattr, fattr, saved), in[3] = z, the residual; the output relu(bn(x) + z).

static void batch_norm_add_relu_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_tensor *x = n->in[0];
    n->out->channels_last = x->channels_last;
    KERNEL(k, batch_norm_add_relu_forward)(x->dtype, n->out->data, F(n->saved[0]), F(n->saved[1]), F(n->saved[2]),
                                           x->data, n->in[3]->data, F(n->in[1]), F(n->in[2]), x->shape[0],
                                           x->shape[1], x->shape[2] * x->shape[3], n->fattr[0], n->fattr[1],
                                           n->iattr[0], x->channels_last);
}

// g = dy where y > 0 (ReLU's gradient, from the output as PyTorch's), which is both z's gradient
// and the batch norm's output gradient; then batch norm's backward from g. When this node is the
// first to reach z's gradient (grad_fresh[3]), g is written straight into it; otherwise into a
// scratch tensor, added to z's gradient after the batch norm's backward (so that, were z also x,
// a dx written by the batch norm comes first).
static void batch_norm_add_relu_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    cg_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2], *z = n->in[3];
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    cg_dtype dt = x->dtype;
    bool g_is_dz = z->requires_grad && n->grad_fresh[3];
    cg_tensor *g = g_is_dz ? cg_tape_grad(t, z) : cg_arena_tensor(t->arena, dt, x->ndim, x->shape);
    float *dgamma = gamma->requires_grad ? F(cg_tape_grad(t, gamma)) : NULL;
    float *dbeta = beta->requires_grad ? F(cg_tape_grad(t, beta)) : NULL;
    void *dx = x->requires_grad ? cg_tape_grad(t, x)->data : NULL;
    if (dt == CG_F32) { // (f32 gradients are never fresh: g is scratch, zeroed, then added to)
        k->zero(g->data, cg_tensor_bytes(g));
        KERNEL(k, relu_backward)(F(g), F(n->out->grad), F(n->out), x->numel);
        KERNEL(k, batch_norm_backward)(dx, dgamma, dbeta, F(g), F(x), F(gamma), F(n->saved[0]), N, C, HW, n->iattr[0]);
        if (z->requires_grad) k->axpy(F(cg_tape_grad(t, z)), 1.0f, F(g), x->numel);
        return;
    }
    if (k->batch_norm_add_relu_backward) // (the two rows below in fewer passes)
        k->batch_norm_add_relu_backward(dt, dx, g->data, dgamma, dbeta, n->out->grad->data, n->out->data, x->data,
                                        F(gamma), F(n->saved[0]), N, C, HW, n->iattr[0], x->channels_last,
                                        !n->grad_fresh[0]);
    else {
        KERNEL(k, relu_backward_h)(dt, g->data, n->out->grad->data, n->out->data, x->numel, false);
        KERNEL(k, batch_norm_backward_h)(dt, dx, dgamma, dbeta, g->data, x->data, F(gamma), F(n->saved[0]), N, C, HW,
                                         n->iattr[0], x->channels_last, !n->grad_fresh[0]);
    }
    if (z->requires_grad && !g_is_dz) k->cast(z->grad->data, dt, g->data, dt, x->numel, true);
}

cg_tensor *cg_batch_norm2d_add_relu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta,
                                    cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *z, bool training,
                                    float momentum, float eps) {
    bool fused = !(training && t->batch_norm_sum != NULL) &&
                 cg_kernels_for(t->device)->batch_norm_add_relu_forward != NULL;
    cg_node node;
    if (fused) {
        node = batch_norm_node(t, x, gamma, beta, running_mean, running_var, training, momentum, eps);
        x = node.in[0]; // as the batch norm takes it (autocast, layout); z must have its dtype and shape
        fused = z->dtype == x->dtype && cg_same_shape(z, x);
    }
    if (!fused) { // the three ops (x already cast if the node was made: casting again is a no-op)
        cg_tensor *y = cg_batch_norm2d(t, x, gamma, beta, running_mean, running_var, training, momentum, eps);
        return cg_relu(t, cg_add(t, y, z));
    }
    z = cg_to_memory_format(t, z, x->channels_last);
    cg_op_check_input(t, "batch_norm2d_add_relu", z, x->dtype);
    node.op = CG_OP_BATCH_NORM_ADD_RELU;
    node.forward = batch_norm_add_relu_node_forward;
    node.backward = batch_norm_add_relu_node_backward;
    node.n_in = 4;
    node.in[3] = z;
    // 16 bits: dx and dz may be written (a first gradient), as batch_norm2d's and ReLU's.
    node.grad_writable[0] = node.grad_writable[3] = x->dtype != CG_F32;
    return cg_op_apply(t, &node, 4, x->shape);
}

// ---- dropout ----------------------------------------------------------------------------------
// fattr[0] = p; rng = the generator at the mask's first block; saved[0] = the mask (0 or
// 1 / (1 - p) per element).

static void dropout_node_forward(const cg_kernels *k, cg_node *n) {
    const cg_rng *r = &n->rng;
    KERNEL(k, dropout_forward)(F(n->out), F(n->saved[0]), F(n->in[0]), n->out->numel, n->fattr[0], r->seed, r->stream,
                               r->offset);
}

static void dropout_node_backward(const cg_kernels *k, cg_tape *t, cg_node *n) {
    KERNEL(k, multiply_add)(F(cg_tape_grad(t, n->in[0])), F(n->out->grad), F(n->saved[0]), n->out->numel);
}

cg_tensor *cg_dropout(cg_tape *t, cg_tensor *x, float p, cg_rng *rng) {
    x = cg_op_autocast_input(t, CG_OP_DROPOUT, x);
    cg_op_check_input(t, "dropout", x, CG_F32);
    CG_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability %g outside [0, 1)", (double)p);
    cg_node node = {.op = CG_OP_DROPOUT, .forward = dropout_node_forward, .backward = dropout_node_backward, .n_in = 1,
                    .in = {x}, .fattr = {p}, .rng = *rng};
    node.saved[0] = cg_arena_tensor(t->arena, CG_F32, x->ndim, x->shape);
    rng->offset += (uint64_t)(x->numel + 3) / 4; // the blocks this mask uses
    return cg_op_apply(t, &node, x->ndim, x->shape);
}

// tape.c: recording nodes and walking them backwards. Each node carries its op's backward, so
// the tape knows no op: what each backward does is in the op files (core/ops*.c).
// Gradients take their tensor's dtype (16 bits for a 16-bit tensor under mixed precision).
#include "core/tape.h"
#include "core/kernels.h"

#include <stdlib.h>
#include <string.h>

cg_node_hook cg_tape_after_forward = NULL, cg_tape_after_backward = NULL;

cg_tape *cg_tape_new(cg_device device, size_t arena_bytes) {
    cg_tape *t = cg_xcalloc(1, sizeof *t);
    t->device = device;
    t->arena = cg_arena_new(device, arena_bytes);
    t->grad_enabled = true;
    t->autocast = CG_F32;
    const char *fresh = getenv("CGRAD_FRESH_GRADIENTS"); // "0": zero every gradient (to compare)
    CG_CHECK(fresh == NULL || strcmp(fresh, "0") == 0 || strcmp(fresh, "1") == 0, "CGRAD_FRESH_GRADIENTS=%s: 0 or 1",
             fresh);
    t->fresh_gradients = fresh == NULL || strcmp(fresh, "1") == 0;
    t->one = cg_tensor_new(device, CG_F32, 0, NULL);
    cg_tensor_fill(t->one, 1.0f);
    return t;
}

void cg_tape_free(cg_tape *t) {
    if (t == NULL) return;
    cg_arena_free(t->arena);
    cg_tensor_free(t->one);
    free(t->nodes);
    free(t);
}

void cg_tape_record(cg_tape *t, const cg_node *node) {
    CG_CHECK(node->n_in >= 1 && node->n_in <= CG_NODE_MAX_INPUTS && node->backward != NULL,
             "a node of op %d with %d inputs and %s backward", node->op, node->n_in, node->backward ? "a" : "no");
    if (t->count == t->capacity) {
        t->capacity = t->capacity ? 2 * t->capacity : 64;
        t->nodes = realloc(t->nodes, (size_t)t->capacity * sizeof *t->nodes);
        CG_CHECK(t->nodes != NULL, "out of host memory for %d tape nodes", t->capacity);
    }
    t->nodes[t->count++] = *node;
}

cg_tensor *cg_tape_grad(cg_tape *t, cg_tensor *x) {
    CG_CHECK(x->requires_grad, "gradient asked for a tensor that does not require one");
    if (x->grad == NULL) {
        x->grad = cg_arena_tensor(t->arena, x->dtype, x->ndim, x->shape);
        x->grad->channels_last = x->channels_last;
        cg_device_zero(x->device, x->grad->data, cg_tensor_bytes(x->grad));
    }
    return x->grad;
}

// Before any backward kernel runs, give every tensor that will receive a gradient its buffer,
// walking the nodes in the same reverse order as the backward pass. The buffers are carved out
// of the arena one after another, so one memset zeroes them all (instead of one per tensor: on
// a GPU each would be a separate operation). Two shortcuts:
// - when a node says that its first input's gradient is exactly its output's
//   (in0_grad_is_out_grad: an add of two same-shape tensors) and nothing else has given that
//   input a gradient yet, the two share one buffer, and the op's backward skips it;
// - when the node that meets an input first can write its gradient (grad_writable) and the
//   tape allows it (fresh_gradients), that node's backward is the first to touch the buffer:
//   it gets a buffer placed after the memset (grad_fresh), which its backward writes. Most
//   activations have one consumer, so most activation gradients are never zeroed, and their
//   first backward reads nothing from them (PyTorch's autograd does the same: the first
//   gradient of a tensor is assigned, the later ones are added).
static void prepare_gradients(cg_tape *t, cg_tensor *loss, cg_tensor *seed) {
    cg_arena_mark start = cg_arena_get_mark(t->arena);
    // d loss / d loss = the seed: 1 (the tape's constant one), or mixed precision's loss scale.
    // When the loss is the last thing recorded, no backward adds to its gradient, so it can be
    // the seed itself; otherwise a buffer set to it.
    bool loss_is_last = t->count > 0 && t->nodes[t->count - 1].out == loss;
    loss->grad = loss_is_last ? seed : cg_arena_tensor(t->arena, CG_F32, loss->ndim, loss->shape);
    for (int i = t->count - 1; i >= 0; i--) {
        cg_node *n = &t->nodes[i];
        for (int j = 0; j < CG_NODE_MAX_INPUTS; j++) n->grad_fresh[j] = false;
        if (n->out->grad == NULL) continue; // no gradient reaches this node
        for (int j = 0; j < n->n_in; j++) {
            cg_tensor *x = n->in[j];
            if (!x->requires_grad || x->grad != NULL) continue;
            if (n->in0_grad_is_out_grad && j == 0 && n->out->grad != seed && x->dtype == n->out->dtype) {
                x->grad = n->out->grad; // (the seed must stay as it is)
            } else if (n->grad_writable[j] && t->fresh_gradients) {
                x->grad = cg_arena_tensor_header(t->arena, x->dtype, x->ndim, x->shape); // data: below
                n->grad_fresh[j] = true;
            } else {
                x->grad = cg_arena_tensor(t->arena, x->dtype, x->ndim, x->shape);
            }
            x->grad->channels_last = x->channels_last; // (a shared buffer: the add's output is stored as x)
        }
    }
    cg_arena_zero_since(t->arena, start);
    for (int i = t->count - 1; i >= 0; i--)
        for (int j = 0; j < t->nodes[i].n_in; j++) {
            cg_tensor *g = t->nodes[i].grad_fresh[j] ? t->nodes[i].in[j]->grad : NULL;
            if (g != NULL && g->data == NULL) g->data = cg_arena_alloc(t->arena, cg_tensor_bytes(g));
        }
    if (!loss_is_last) cg_kernels_for(t->device)->axpy((float *)loss->grad->data, 1.0f, (const float *)seed->data, 1);
}

void cg_tape_backward(cg_tape *t, cg_tensor *loss) { cg_tape_backward_seeded(t, loss, t->one); }

void cg_tape_backward_seeded(cg_tape *t, cg_tensor *loss, cg_tensor *seed) {
    CG_CHECK(loss->numel == 1 && loss->dtype == CG_F32, "backward needs a one-element f32 loss");
    CG_CHECK(loss->requires_grad, "the loss does not depend on any parameter (was the tape recording?)");
    CG_CHECK(seed->numel == 1 && seed->dtype == CG_F32 && cg_device_equal(seed->device, t->device),
             "backward: the seed must be a one-element f32 tensor on the tape's device");
    prepare_gradients(t, loss, seed);
    const cg_kernels *k = cg_kernels_for(t->device);
    if (t->backward_hook) t->backward_hook(t->backward_hook_ctx, t, t->count);
    for (int i = t->count - 1; i >= 0; i--) {
        cg_node *n = &t->nodes[i];
        if (n->out->grad != NULL) { // else nothing flows back through this node
            n->backward(k, t, n);
            if (cg_tape_after_backward) cg_tape_after_backward(n, i + 1);
        }
        if (t->backward_hook) t->backward_hook(t->backward_hook_ctx, t, i);
    }
}

void cg_tape_clear(cg_tape *t) {
    t->count = 0;
    cg_arena_reset(t->arena);
}

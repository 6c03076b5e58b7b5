// tape.h: reverse-mode automatic differentiation by recording. Execution is eager: each op
// computes its output at once (core/ops.c) and, when an input requires a gradient and the tape
// records, appends a node. cg_tape_backward walks the nodes in reverse and calls each op's
// backward, which ACCUMULATES into its inputs' gradients (except the first one to reach a
// gradient, which may write it: grad_fresh below, as PyTorch's autograd assigns a first
// gradient and adds the later ones). The tape owns the step's arena:
// outputs and intermediate gradients live there until cg_tape_clear.
#ifndef CG_TAPE_H
#define CG_TAPE_H

#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"

#define CG_NODE_MAX_INPUTS 4 // batch norm + residual add + ReLU: x, gamma, beta, the residual

struct cg_kernels;
struct cg_node;
struct cg_tape;
// What an op does with a node (core/ops.c and the other op files): forward computes out from
// in[] with the device's kernels; backward ADDS the gradients of in[] from out->grad.
typedef void (*cg_forward_fn)(const struct cg_kernels *k, struct cg_node *n);
typedef void (*cg_backward_fn)(const struct cg_kernels *k, struct cg_tape *t, struct cg_node *n);

typedef struct cg_node {
    int op;                               // a cg_op (ops.h): its row of the op table
    cg_forward_fn forward;                // set by the op that makes the node, so that the tape
    cg_backward_fn backward;              // walks back without knowing any op
    bool in0_grad_is_out_grad;            // d in[0] = d out exactly (add of two same-shape
                                          // tensors): the tape may let them share one buffer
    bool grad_writable[CG_NODE_MAX_INPUTS]; // set by the op: its backward can WRITE d in[j] (every
                                            // element) instead of adding to it, when told so by...
    bool grad_fresh[CG_NODE_MAX_INPUTS];    // ...the tape: this node's backward is the first to
                                            // reach d in[j], whose buffer was left unzeroed
    cg_tensor *out;
    cg_tensor *in[CG_NODE_MAX_INPUTS];
    int n_in;
    float fattr[2];                       // op-specific numbers: scale factor, dropout probability
    int iattr[4];                         // op-specific integers: transpose flags, stride, padding
    cg_dtype dtype;                       // the output's dtype (0: F32; 16 bits under autocast)
    cg_tensor *saved[3];                  // what the forward keeps for the backward: im2col
                                          // columns, max-pool arg-max, dropout mask, batch
                                          // statistics (and batch norm's running statistics)
    cg_rng rng;                           // dropout: where its mask is drawn from
} cg_node;

typedef struct cg_tape {
    cg_device device;
    cg_arena *arena;
    cg_node *nodes;
    int count, capacity;
    bool grad_enabled; // false: ops compute but record nothing (evaluation, like torch.no_grad)
    cg_tensor *one;    // () f32 holding 1: d loss / d loss, made once so no step has to write it
    bool fresh_gradients; // true (the default): the first backward to reach an activation's
                          // gradient writes it, no memset before and no read of zeros (nodes
                          // with grad_writable); false: every gradient is zeroed, then added to
                          // (also when the environment has CGRAD_FRESH_GRADIENTS=0)
    cg_dtype autocast; // CG_F32: off. CG_F16 or CG_BF16: matmul, linear and conv2d cast their
                       // inputs to it and compute in it (f32 accumulation), ReLU and max pooling
                       // keep it, every other op casts to f32 first (torch.autocast's policy)
    // Called by the backward pass with node == count before the first node, then after each node
    // (from the last to the first) with its index: data-parallel training starts reducing the
    // gradients that are final (core/dist/ddp.c). NULL: nobody watches.
    void (*backward_hook)(void *ctx, const struct cg_tape *t, int node);
    void *backward_hook_ctx;
    // Synchronised batch norm (--sync-bn, core/dist/sync_bn.c, as torch.nn.SyncBatchNorm): when set,
    // batch_norm2d in training sums its per-channel sums over every rank through it, once in the
    // forward and once in the backward: buf holds n doubles on the tape's device, summed in place
    // (on a GPU queued on its stream, nothing waits on the host). NULL: each process normalises
    // with its own batch's statistics.
    void (*batch_norm_sum)(void *ctx, double *buf, int64_t n);
    void *batch_norm_sum_ctx;
} cg_tape;

// Checks run after every op's forward (by cg_op_apply) and backward (by cg_tape_backward) when set;
// index is the op's position in the step, from 1. Anomaly detection (core/anomaly.c) sets them.
typedef void (*cg_node_hook)(const cg_node *node, int index);
extern cg_node_hook cg_tape_after_forward, cg_tape_after_backward;

// A tape whose arena starts at arena_bytes on `device` (it grows if a step needs more).
cg_tape *cg_tape_new(cg_device device, size_t arena_bytes);
void cg_tape_free(cg_tape *t);

// Append a copy of a node whose forward has run (called by cg_op_apply, core/ops.c).
void cg_tape_record(cg_tape *t, const cg_node *node);

// Gradients of every recorded tensor with respect to `loss`, a one-element F32 tensor:
// sets dloss = 1 and calls each node's backward in reverse order. Parameter gradients add up
// across calls until cg_params_zero_grad. A tensor's gradient has its dtype.
void cg_tape_backward(cg_tape *t, cg_tensor *loss);
// The same with dloss = seed[0] (a () f32 tensor on the tape's device, read there: the loss
// scale of mixed precision, core/amp.h, so that a captured CUDA Graph uses its current value).
void cg_tape_backward_seeded(cg_tape *t, cg_tensor *loss, cg_tensor *seed);

// Drop the nodes and reset the arena: every tensor made on this tape is gone.
void cg_tape_clear(cg_tape *t);

// x->grad, made (zeroed, from the arena) if x has none yet. x must require a gradient.
cg_tensor *cg_tape_grad(cg_tape *t, cg_tensor *x);

#endif

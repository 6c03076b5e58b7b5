// ops.h: the differentiable operations. Each takes a tape, computes its output at once in the
// tape's arena on the tape's device, and records itself when an input requires a gradient.
// Every input must be on the tape's device (a mismatch aborts, naming both devices).
// Adding an op: the checklist in the README ("Adding an op"): an enum value and a declaration
// here, its row of the op table and its node functions (core/ops.c), its kernels (core/kernels.h,
// kernels/cpu, kernels/cuda), a row in tests/op_cases.h.
#ifndef CG_OPS_H
#define CG_OPS_H

#include "core/tape.h"

typedef enum {
    CG_OP_MATMUL,
    CG_OP_LINEAR,
    CG_OP_ADD,
    CG_OP_RELU,
    CG_OP_SIGMOID,
    CG_OP_BCE,
    CG_OP_CROSS_ENTROPY,
    CG_OP_SUM,
    CG_OP_SCALE,
    CG_OP_CONV2D,
    CG_OP_MAX_POOL2D,
    CG_OP_RESHAPE,
    CG_OP_BATCH_NORM2D,
    CG_OP_DROPOUT,
    CG_OP_CONV2D_RELU_POOL,
    CG_OP_CAST,
    CG_OP_GELU,
    CG_OP_AVG_POOL2D,
    CG_OP_GLOBAL_AVG_POOL,
    CG_OP_MEMORY_FORMAT,
    CG_OP_BATCH_NORM_ACT,
    CG_OP_BATCH_NORM_ADD_RELU,
    CG_NUM_OPS
} cg_op;

// Mixed precision (core/train/amp.h): what an op does with its inputs when the tape's autocast
// is F16 or BF16, as torch.autocast. One column of the op table (core/ops.c) says it per op:
typedef enum {
    CG_AUTOCAST_LOW,  // inputs cast to the autocast dtype (a parameter through its 16-bit copy,
                      // cg_autocast_low); 16-bit output computed with f32 accumulation
    CG_AUTOCAST_KEEP, // the input's dtype is kept: exact in any format (a sign test, a maximum, a
                      // copy), or computed in f32 and rounded once to it (batch norm, GELU and global
                      // average pooling, whose statistics and sums stay f32, as cuDNN's and PyTorch's
                      // under autocast)
    CG_AUTOCAST_F32,  // 16-bit inputs cast to f32 first; computed and returned in f32
    CG_AUTOCAST_PROMOTE, // two inputs of one 16-bit dtype and one shape stay in it (bf16 + bf16 is
                         // bf16, as PyTorch's type promotion), computed in f32 and rounded once;
                         // any other pair as F32 (the residual add: cg_add)
} cg_autocast_policy;
// With autocast F32 (the default) every op takes and gives f32, except that the KEEP ops also
// take a 16-bit tensor.

// Memory formats (core/tensor.h: channels_last). Under autocast a GPU's 16-bit convolutions write
// their outputs channels-last (see cg_channels_last_wanted), so that cuDNN's Tensor Core kernels
// read them as they are, without the transposes NCHW costs them. Another column of the op table
// says what each op does with a channels-last input:
typedef enum {
    CG_LAYOUT_NCHW,        // none taken: such an input is first copied to NCHW (cg_to_memory_format)
    CG_LAYOUT_ELEMENTWISE, // any: the output is stored as the inputs (an input stored otherwise
                           // than the others is copied to NCHW first)
    CG_LAYOUT_OWN,         // the op reads either and says what it writes (conv2d, batch_norm2d,
                           // max_pool2d in 16 bits; the others copy such an input to NCHW first)
} cg_layout_policy;
cg_layout_policy cg_op_layout(int op);
// Whether the 16-bit convolutions of tape t write channels-last outputs: the environment's
// CGRAD_CONV16_LAYOUT=nhwc (yes) or nchw (no), read at every call so that a test can try both;
// unset, yes on a GPU and no on the CPU (whose convolutions are NCHW and would only pay the copies).
bool cg_channels_last_wanted(const cg_tape *t);
// The same for any tape on `device` (core/train/amp.h stores its 16-bit weights by it).
bool cg_channels_last_wanted_on(cg_device device);

// The op table's row of an op: its name and its autocast policy.
const char *cg_op_name(int op);
cg_autocast_policy cg_op_autocast(int op);

// x (any shape, F32, F16 or BF16) -> the same values in `dtype` (F32, F16 or BF16), rounded to
// nearest even (core/half.h); x itself when it has that dtype already. Differentiable: the
// gradient is cast back to x's dtype and added.
cg_tensor *cg_cast(cg_tape *t, cg_tensor *x, cg_dtype dtype);
// x in the tape's autocast dtype: x itself when it has it, a parameter's 16-bit copy (x->low,
// kept by core/amp.h) when it has one of that dtype, else cg_cast.
cg_tensor *cg_autocast_low(cg_tape *t, cg_tensor *x);
// x as f32: x itself, or cg_cast(t, x, CG_F32).
cg_tensor *cg_autocast_f32(cg_tape *t, cg_tensor *x);

// a: (M, K) f32, or (K, M) if trans_a; b: (K, N) f32, or (N, K) if trans_b -> (M, N) f32.
// op(a) @ op(b); a Linear layer is matmul(x, W, false, true) with W (out, in) as in PyTorch.
cg_tensor *cg_matmul(cg_tape *t, cg_tensor *a, cg_tensor *b, bool trans_a, bool trans_b);
// x (N, in) f32, weight (out, in) f32, bias (out,) f32 or NULL -> (N, out) f32:
// x weight^T + bias, as torch.nn.functional.linear. The same as matmul then add, in one op
// (on a GPU, one kernel instead of two for small layers).
cg_tensor *cg_linear(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias);
// a + b. b has a's shape, or b: (C,) f32 is added to every row of a: (R, C) (bias broadcast).
// f32; a and b of one 16-bit dtype and one shape (a residual add under autocast) give that dtype.
cg_tensor *cg_add(cg_tape *t, cg_tensor *a, cg_tensor *b);
// max(x, 0), elementwise. Any shape, f32, f16 or bf16 (the output has x's dtype).
cg_tensor *cg_relu(cg_tape *t, cg_tensor *x);
// 1 / (1 + exp(-x)), elementwise. Any shape, f32.
cg_tensor *cg_sigmoid(cg_tape *t, cg_tensor *x);
// Binary cross-entropy, mean over elements: probabilities p in [0, 1] and targets in {0, 1},
// both f32 with the same number of elements (so p (N, 1) pairs with targets (N,)) -> () f32.
// As torch.nn.BCELoss: each log is clamped to >= -100.
cg_tensor *cg_bce(cg_tape *t, cg_tensor *p, cg_tensor *targets);
// Softmax cross-entropy: logits (N, K) f32, labels (N,) i32 in [0, K) -> () f32, the mean over
// rows of logsumexp(logits) - logits[label]. As torch.nn.functional.cross_entropy.
cg_tensor *cg_cross_entropy(cg_tape *t, cg_tensor *logits, cg_tensor *labels);
// The same with label smoothing e in [0, 1] (torch.nn.functional.cross_entropy's label_smoothing,
// Szegedy et al. 2016): the target is (1 - e) onehot(label) + e / K.
cg_tensor *cg_cross_entropy_smoothed(cg_tape *t, cg_tensor *logits, cg_tensor *labels, float label_smoothing);
// Sum and mean of all elements -> () f32.
cg_tensor *cg_sum(cg_tape *t, cg_tensor *x);
cg_tensor *cg_mean(cg_tape *t, cg_tensor *x);
// s * x, elementwise.
cg_tensor *cg_scale(cg_tape *t, cg_tensor *x, float s);

// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d; under autocast all in 16
// bits with f32 accumulation, see above): x (N, C, H, W) f32,
// weight (K, C, R, S) f32, bias (K,) f32 or NULL -> (N, K, P, Q) f32 with
// P = (H + 2 padding - R) / stride + 1 and Q likewise. Computed as im2col + GEMM (Chellapilla,
// Puri, Simard 2006): see the conv2d kernels in core/kernels.h.
cg_tensor *cg_conv2d(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias, int stride, int padding);
// Max pooling over kernel x kernel windows moved by stride, no padding: x (N, C, H, W) f32, f16 or
// bf16 (the output has x's dtype) ->
// (N, C, (H - kernel) / stride + 1, (W - kernel) / stride + 1). The gradient goes to the
// first maximum of each window (as PyTorch).
cg_tensor *cg_max_pool2d(cg_tape *t, cg_tensor *x, int kernel, int stride);
// max_pool2d(relu(conv2d(x, weight, bias, stride, padding)), 2, 2), the same values and
// gradients, as one op where the device has a fused kernel (the CPU: the convolution's output
// is pooled while in cache, and neither it nor the ReLU's output is stored) and as the three ops
// elsewhere. x (N, C, H, W) -> (N, K, P / 2, Q / 2), P x Q as conv2d; P, Q >= 2.
cg_tensor *cg_conv2d_relu_max_pool2d(cg_tape *t, cg_tensor *x, cg_tensor *weight, cg_tensor *bias, int stride,
                                     int padding);
// Average pooling over kernel x kernel windows moved by stride, no padding, as
// torch.nn.functional.avg_pool2d: x (N, C, H, W) f32 -> (N, C, (H - kernel) / stride + 1,
// (W - kernel) / stride + 1) f32.
cg_tensor *cg_avg_pool2d(cg_tape *t, cg_tensor *x, int kernel, int stride);
// Global average pooling, the mean of each channel's plane: x (N, C, H, W) f32 -> (N, C) f32, as
// torch.nn.AdaptiveAvgPool2d(1) followed by flatten (the head of a ResNet, He et al. 2016).
cg_tensor *cg_global_avg_pool2d(cg_tape *t, cg_tensor *x);
// x (N, C, H, W) f32, f16 or bf16 with its values stored channels-last (N, H, W, C) or NCHW, as
// x.contiguous(memory_format=torch.channels_last or torch.contiguous_format): x itself when it
// is stored so already (or when H W = 1, where both are the same), else a transposed copy on the
// tape. The gradient is transposed back.
cg_tensor *cg_to_memory_format(cg_tape *t, cg_tensor *x, bool channels_last);
// The same values in another shape of the same element count (a copy on the tape); f32, f16 or
// bf16, kept.
cg_tensor *cg_reshape(cg_tape *t, cg_tensor *x, int ndim, const int64_t *shape);
// (N, d1, d2, ...) -> (N, d1 * d2 * ...), as torch.flatten(x, 1).
cg_tensor *cg_flatten(cg_tape *t, cg_tensor *x);
// Batch normalisation over the channels of x (N, C, H, W) f32, or f16 / bf16 under autocast
// (y then has x's dtype; the statistics and sums are f32 either way) (Ioffe and Szegedy 2015), as
// torch.nn.functional.batch_norm: y = gamma (x - mean) / sqrt(var + eps) + beta per channel.
// gamma, beta: (C,) f32. training: mean and (biased) var of this batch, and the running
// statistics (C,) f32 updated in place: running = (1 - momentum) running + momentum batch, the
// variance unbiased (n / (n - 1)) as PyTorch. Evaluation: the running statistics are used.
cg_tensor *cg_batch_norm2d(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                           cg_tensor *running_var, bool training, float momentum, float eps);
// cg_gelu(cg_batch_norm2d(...)) and cg_relu(cg_batch_norm2d(...)), the same arguments, as one op
// where the device has the fused kernels (both devices), so that the batch norm's output is
// neither stored nor read again: one pass over memory fewer each way (the backward computes it
// again from x). Its value is kept in f32 between the two, so under autocast the result has one
// rounding fewer than the two ops'. The synchronised form (t->batch_norm_sum in training) runs as
// the two ops.
cg_tensor *cg_batch_norm2d_gelu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                                cg_tensor *running_var, bool training, float momentum, float eps);
cg_tensor *cg_batch_norm2d_relu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta, cg_tensor *running_mean,
                                cg_tensor *running_var, bool training, float momentum, float eps);
// cg_relu(cg_add(cg_batch_norm2d(x, ...), z)), the end of a ResNet basic block (He et al. 2016:
// the second batch norm, the shortcut z added, then ReLU), as one op where the device has the
// fused kernel (both devices): z (x's shape) of x's dtype, else the three ops run. Forward: one
// pass reads x and z and writes y (the three ops: three passes, two tensors stored and read
// again); backward: ReLU's gradient g = dy where y > 0 is written once, as the shortcut's gradient
// (the first to reach it) and batch norm's output gradient. Under autocast the sum is kept in
// f32 (one rounding, the three ops' two). The synchronised form runs as the three ops.
cg_tensor *cg_batch_norm2d_add_relu(cg_tape *t, cg_tensor *x, cg_tensor *gamma, cg_tensor *beta,
                                    cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *z, bool training,
                                    float momentum, float eps);
// Dropout (Srivastava et al. 2014), as torch.nn.functional.dropout in training mode: each
// element is zeroed with probability p and the others scaled by 1 / (1 - p). The mask comes
// from rng (Philox; the same on CPU and GPU), which moves on by (numel + 3) / 4 blocks.
cg_tensor *cg_dropout(cg_tape *t, cg_tensor *x, float p, cg_rng *rng);
// GELU (Hendrycks and Gimpel 2016), elementwise, any shape, y of x's dtype (f32, or f16 / bf16
// under autocast, computed in f32 and rounded once): x Phi(x), Phi the standard normal CDF, as torch.nn.functional.gelu(x);
// cg_gelu_tanh is its tanh approximation, gelu(x, approximate='tanh').
cg_tensor *cg_gelu(cg_tape *t, cg_tensor *x);
cg_tensor *cg_gelu_tanh(cg_tape *t, cg_tensor *x);

#endif

// kernels.h: the table of kernels one device provides. Kernels take raw pointers and sizes and
// never see a tensor; core/ops.c is the one file that turns tensors into these calls.
// kernels/cpu fills one table, kernels/cuda the other. A NULL entry is a kernel the device does
// not have: ops.c reports it by name instead of falling back to another device.
//
// Conventions: pointers live on the table's device; gradient outputs come first and start with
// d; backward kernels ACCUMULATE (+=) into their gradient outputs; scalars that change from
// step to step (the loss gradient, the optimizer's step count and learning rate) are read from
// device memory, so that a captured CUDA Graph replays them correctly.
#ifndef CG_KERNELS_H
#define CG_KERNELS_H

#include "core/device.h"
#include "core/dtype.h"

#ifdef __cplusplus
extern "C" { // these headers are also read by the CUDA (C++) files
#endif

// The activation that a fused batch norm applies to its output (the batch_norm_act rows).
typedef enum { CG_ACT_GELU = 1, CG_ACT_RELU = 2 } cg_activation;

// A weight of the parameter block whose 16-bit copy, and that copy's gradient, are stored
// channels-last (core/train/amp.h): the (K, C, R, S) convolution weight at element `offset` of the
// block, stored (K, R, S, C) there (rs = r S + s): element (k, c, rs) at offset + (k RS + rs) C + c
// instead of offset + (k C + c) RS + rs. The GPU's Tensor Core convolutions read and write
// weights so; the master weights and their f32 gradients stay (K, C, R, S). C, offset and the
// length K C RS are multiples of 8 (the GPU's kernels take 8 values at a time).
typedef struct {
    int64_t offset, K, C, RS;
} cg_amp_cl_slice;

typedef struct cg_kernels {
    const char *device_name;

    // x[i] = value, i < n
    void (*fill)(float *x, float value, int64_t n);
    // y[i] += alpha * x[i]
    void (*axpy)(float *y, float alpha, const float *x, int64_t n);
    // bytes of memory at p set to zero
    void (*zero)(void *p, size_t bytes);
    // x[0] += value (a counter on the device, e.g. the optimizer's step count)
    void (*add_scalar)(float *x, float value);
    // y[i] = alpha * x[i]
    void (*scale)(float *y, const float *x, float alpha, int64_t n);

    // Row-major C(M,N) = alpha * op(A) op(B) + beta * C, with op(A) (M,K) and op(B) (K,N).
    // A is stored (M,K), or (K,M) when trans_a; B is stored (K,N), or (N,K) when trans_b.
    void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 const float *B, float beta, float *C);

    // y(M, N) = x(M, K) w(N, K)^T + bias(N) (bias may be NULL): a fully connected layer.
    void (*linear_forward)(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                           int64_t K);

    // 2-D convolution (cross-correlation) of x (N, C, H, W) with w (K, C, R, S), stride and zero
    // padding pad, plus bias (K) or NULL: y (N, K, P, Q). Each device chooses its method: the CPU
    // runs im2col + GEMM four images at a time (their columns stay in cache), the GPU im2col
    // + one GEMM over the batch. Workspace comes from the device's allocator.
    void (*conv2d_forward)(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C,
                           int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad,
                           int64_t P, int64_t Q);
    // dx (N, C, H, W), dw (K, C, R, S), dbias (K) += the gradients from dy (N, K, P, Q); any of
    // the three may be NULL. accumulate false: dx is written, not added to (its old contents are
    // never read: the tape's fresh gradients, core/tape.h), the same bits as adding to zeros.
    void (*conv2d_backward)(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                            int64_t stride, int64_t pad, int64_t P, int64_t Q, bool accumulate);
    // Max pooling, kernel x kernel windows, stride, no padding: y (N, C, P, Q); argmax holds the
    // flat index into x of each window's first maximum. Backward: dx[argmax[i]] += dy[i], i < n.
    void (*max_pool2d_forward)(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t kernel, int64_t stride, int64_t P, int64_t Q);
    void (*max_pool2d_backward)(float *dx, const float *dy, const int32_t *argmax, int64_t n);
    // Average pooling, kernel x kernel windows, stride, no padding: y (N, C, P, Q), each the mean of
    // its window (torch.nn.functional.avg_pool2d). Backward: each dx += dy / kernel^2 of every
    // window that covers it (gathered per input element: no atomics, the same sums on every run).
    void (*avg_pool2d_forward)(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t kernel,
                               int64_t stride, int64_t P, int64_t Q);
    void (*avg_pool2d_backward)(float *dx, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W,
                                int64_t kernel, int64_t stride, int64_t P, int64_t Q);
    // Global average pooling: y (planes) = the mean of each plane of x (planes, HW) (a (N, C, H, W)
    // tensor is N C planes), as torch.nn.AdaptiveAvgPool2d(1). Backward: dx += dy / HW.
    void (*global_avg_pool_forward)(float *y, const float *x, int64_t planes, int64_t HW);
    void (*global_avg_pool_backward)(float *dx, const float *dy, int64_t planes, int64_t HW);
    // conv2d, bias, ReLU and 2x2 max pooling with stride 2 in one pass (the tutorial CNN's block):
    // y (N, K, P/2, Q/2) = max_pool2d(relu(conv2d(x, w) + bias)), P x Q the convolution's output;
    // where (N, K, P/2, Q/2) u8: the position of each window's first maximum, 0 top left, 1 top
    // right, 2 bottom left, 3 bottom right. y, dx and dw identical to the three ops in a row
    // (but dw of a 3 x 3 "same" convolution with whole vectors of 16 output channels on the CPU
    // with AVX-512: one term per pooling window, summed window by window, or with one input
    // channel in 16 lanes of every 16th window, within a few units of the last place); dbias too
    // up to the order of its sum.
    // Backward: dx, dw, dbias += the gradients from dy (shaped as y), any may be NULL; accumulate
    // false: dx is written, not added to (its old contents are never read: the tape's fresh
    // gradients, core/tape.h), the same bits as adding to zeros. Optional: a device without them
    // (NULL) runs the three ops instead (cg_conv2d_relu_max_pool2d).
    void (*conv2d_relu_pool_forward)(float *y, uint8_t *where, const float *x, const float *w, const float *bias,
                                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                     int64_t stride, int64_t pad, int64_t P, int64_t Q);
    void (*conv2d_relu_pool_backward)(float *dx, float *dw, float *dbias, const float *dy, const float *y,
                                      const uint8_t *where, const float *x, const float *w, int64_t N, int64_t C,
                                      int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                      int64_t pad, int64_t P, int64_t Q, bool accumulate);

    // Batch normalisation of x (N, C, HW). stats (2C): the batch mean and 1 / sqrt(var + eps) per
    // channel, written when training and read by the backward. training: statistics of the
    // batch, and running_mean / running_var (C) updated with momentum (unbiased variance);
    // otherwise the running statistics normalise (and stats holds them).
    void (*batch_norm_forward)(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                               const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                               float momentum, bool training);
    // dx, dgamma, dbeta += the gradients (any of them may be NULL); x, gamma, stats as forward.
    void (*batch_norm_backward)(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW,
                                bool training);
    // Synchronised batch normalisation (torch.nn.SyncBatchNorm): the training statistics of the
    // batches of every rank together, in steps around two sums over the ranks (core/ops_norm.c):
    // batch_norm_sums: sums (2C + 1 doubles) = per channel the sum of x and the sum of x^2 over this
    // batch (N, C, HW), then the count N HW.
    void (*batch_norm_sums)(double *sums, const float *x, int64_t N, int64_t C, int64_t HW);
    // From sums over every rank: stats (2C + 1) = per channel the mean and 1 / sqrt(var + eps), var
    // the biased variance, then the count m; running_mean / running_var (C) updated with momentum,
    // the variance unbiased (m / (m - 1)): as batch_norm_forward in training, with the same roundings.
    void (*batch_norm_stats_from_sums)(float *stats, float *running_mean, float *running_var, const double *sums,
                                       int64_t C, float eps, float momentum);
    // y = gamma (x - mean) inv_std + beta per channel, mean and inv_std from stats (as written by
    // batch_norm_stats_from_sums): the normalisation of batch_norm_forward, the statistics given.
    void (*batch_norm_forward_from_stats)(float *y, const float *x, const float *gamma, const float *beta,
                                          const float *stats, int64_t N, int64_t C, int64_t HW);
    // Backward, first step: sums (4C doubles) = per channel the sum of dy and the sum of dy xhat
    // (xhat = (x - mean) inv_std, from stats) over this batch, written twice: [0, 2C) stays this
    // rank's, [2C, 4C) is to be summed over the ranks.
    void (*batch_norm_backward_sums)(double *sums, const float *dy, const float *x, const float *stats, int64_t N,
                                     int64_t C, int64_t HW);
    // Backward, last step: dgamma += this rank's sum of dy xhat, dbeta += this rank's sum of dy
    // (the gradient all-reduce averages them); dx += gamma inv_std (dy - S_dy / m - xhat S_dyxhat / m)
    // with S the sums over every rank (sums + 2C) and m = stats[2C], the count over every rank.
    // Any of dx, dgamma, dbeta may be NULL.
    void (*batch_norm_backward_from_sums)(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                          const float *gamma, const float *stats, const double *sums, int64_t N,
                                          int64_t C, int64_t HW);
    // Dropout: mask[i] = 0 with probability p else 1 / (1 - p), from Philox block offset + i / 4
    // of (seed, stream) as rng_uniform draws it; y = x * mask.
    void (*dropout_forward)(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                            uint32_t stream, uint64_t offset);
    // y[i] += a[i] * b[i] (dropout's backward: dx += dy * mask)
    void (*multiply_add)(float *y, const float *a, const float *b, int64_t n);

    // y = a + b, all n elements
    void (*add_forward)(float *y, const float *a, const float *b, int64_t n);
    // y(rows, cols) = x(rows, cols) + bias(cols) broadcast over rows
    void (*add_bias_forward)(float *y, const float *x, const float *bias, int64_t rows, int64_t cols);
    // dbias(cols) += sum over rows of dy(rows, cols)
    void (*add_bias_backward)(float *dbias, const float *dy, int64_t rows, int64_t cols);

    // y = max(x, 0); dx += dy where y > 0
    void (*relu_forward)(float *y, const float *x, int64_t n);
    void (*relu_backward)(float *dx, const float *dy, const float *y, int64_t n);
    // y = 1 / (1 + exp(-x)); dx += dy * y * (1 - y)
    void (*sigmoid_forward)(float *y, const float *x, int64_t n);
    void (*sigmoid_backward)(float *dx, const float *dy, const float *y, int64_t n);
    // GELU (Hendrycks and Gimpel 2016) as torch.nn.functional.gelu: y = x Phi(x) with
    // Phi(x) = (1 + erf(x / sqrt(2))) / 2; tanh_approx (PyTorch's approximate='tanh'):
    // y = x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2. dx += dy * y'(x), from x.
    void (*gelu_forward)(float *y, const float *x, int64_t n, bool tanh_approx);
    void (*gelu_backward)(float *dx, const float *dy, const float *x, int64_t n, bool tanh_approx);

    // Binary cross-entropy, mean over n: loss[0] = -mean(t log p + (1 - t) log(1 - p)), each log
    // clamped to >= -100 as PyTorch's BCELoss does. dp += dloss[0] * (p - t) / max(p (1 - p), 1e-12) / n.
    void (*bce_forward)(float *loss, const float *p, const float *t, int64_t n);
    void (*bce_backward)(float *dp, const float *dloss, const float *p, const float *t, int64_t n);

    // Softmax cross-entropy over int labels, mean over N rows of K logits, log-sum-exp with the
    // row maximum subtracted. dlogits += dloss[0] * (softmax(logits) - onehot(label)) / N.
    // With label smoothing e (PyTorch's label_smoothing): the target is (1 - e) onehot + e / K, so
    // each row's loss is logsumexp(row) - (1 - e) row[label] - e mean(row), and
    // dlogits += dloss[0] * (softmax(logits) - (1 - e) onehot(label) - e / K) / N. e = 0: the above.
    void (*cross_entropy_forward)(float *loss, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                  float smoothing);
    void (*cross_entropy_backward)(float *dlogits, const float *dloss, const float *logits, const int32_t *labels,
                                   int64_t N, int64_t K, float smoothing);

    // y[0] = scale * sum(x); dx[i] += scale * dy[0]  (sum: scale 1; mean: scale 1/n)
    void (*sum_forward)(float *y, const float *x, float scale, int64_t n);
    void (*sum_backward)(float *dx, const float *dy, float scale, int64_t n);

    // Metrics, accumulated on the device and read once an epoch.
    // acc[0] += number of i with (p[i] > threshold) == (t[i] > 0.5)
    void (*count_binary_correct)(float *acc, const float *p, const float *t, float threshold, int64_t n);
    // acc[0] += number of rows whose arg-max equals the label
    void (*count_argmax_correct)(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K);
    // acc[0] += number of rows whose label is among the k largest logits: rank < k with rank =
    // #{j : row[j] > row[label]} + #{j < label : row[j] == row[label]} (ties go to the lower
    // index, as count_argmax_correct's first maximum; k = 1 counts what it counts). Top-5: k = 5.
    void (*count_topk_correct)(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                               int64_t k);
    // counts (K, K) += the confusion matrix of the batch: counts[label * K + argmax(row)] += 1
    // (row: the true class; column: the predicted one, the first maximum). Integers in floats,
    // exact up to 2^24 per cell.
    void (*confusion_add)(float *counts, const float *logits, const int32_t *labels, int64_t N, int64_t K);

    // Random numbers: out[0..n) from Philox blocks offset, offset + 1, ... of (seed, stream),
    // four values per block, exactly as cg_rng_uniform / cg_rng_normal compute them on the host.
    void (*rng_uniform)(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float lo, float hi);
    void (*rng_normal)(float *out, int64_t n, uint64_t seed, uint32_t stream, uint64_t offset, float mean,
                       float std);

    // Data loading: rows order[0..batch) of a data set already on the device, into a batch.
    // x_out(batch, sample_numel) = x[order[i]]; labels_out[i] = labels[order[i]];
    // targets_out[i] = (float)labels[order[i]] (0/1 targets for binary cross-entropy).
    void (*gather_batch)(float *x_out, int32_t *labels_out, float *targets_out, const float *x,
                         const int32_t *labels, const int32_t *order, int64_t batch, int64_t sample_numel);

    // The same for images stored as u8 pixels (C, H, W): x_out (batch, C, H, W) =
    // (pixel / 255 - mean[c]) * inv_std[c]. augment (batch, CG_AUGMENT_FIELDS) i32 or NULL: per
    // sample a crop offset (dy, dx) in [0, 2 pad] into the image padded by `pad` pixels on each side
    // (zeros, or when reflect the mirror image without repeating the edge, as torch.nn.functional.pad
    // mode "reflect"; pad < H and W then), a flip flag (mirror left-right first), and a cutout
    // centre (cy, cx) in [0, H) x [0, W): with cutout > 0, the output pixels of rows
    // [cy - cutout/2, cy - cutout/2 + cutout) and columns alike (clipped at the borders) are 0 after
    // normalisation (DeVries and Taylor 2017). torchvision's RandomCrop(padding, padding_mode)
    // and RandomHorizontalFlip; airbench's translation is the crop with reflection.
    void (*gather_images)(float *x_out, int32_t *labels_out, const uint8_t *pixels, const int32_t *labels,
                          const int32_t *order, const int32_t *augment, int64_t batch, int64_t C, int64_t H,
                          int64_t W, int64_t pad, bool reflect, int64_t cutout, const float *mean,
                          const float *inv_std);
    // y (planes, H, W) = x mirrored left-right: y[p, h, w] = x[p, h, W - 1 - w] (test-time
    // augmentation; y and x must not overlap).
    void (*flip_images)(float *y, const float *x, int64_t planes, int64_t H, int64_t W);
    // y (planes, H, W) = x moved down by dy rows and right by dx columns, the pixels that come in
    // mirrored without repeating the edge: y[p, h, w] = x[p, r(h - dy), r(w - dx)], r(-i) = i,
    // r(H - 1 + i) = H - 1 - i (|dy| < H, |dx| < W). dy = dx = 1 is torch's
    // F.pad(x, (1,) * 4, "reflect")[:, :, 0:H, 0:W], dy = dx = -1 its [:, :, 2:H + 2, 2:W + 2]
    // (airbench's test-time translations; y and x must not overlap).
    void (*shift_images)(float *y, const float *x, int64_t planes, int64_t H, int64_t W, int64_t dy, int64_t dx);

    // Optimizers over the flat parameter block (PyTorch's torch.optim formulas; see core/train/optim.h).
    // state[0] is the step count, already incremented for this step (first step: 1). lr: one float
    // on the device, read when the kernel runs, so that a CUDA Graph captured once replays with the
    // learning rate the host wrote there before each replay (a schedule). decoupled: the weight
    // decay multiplies p by 1 - lr wd before the update (AdamW's, Loshchilov and Hutter 2019)
    // instead of adding wd p to the gradient (L2). decay_mask: NULL (every element decays) or n
    // bytes on the device, element i decaying only where decay_mask[i] != 0.
    // found_inf: NULL, or one float on the device; when it is not 0 the step changes nothing
    // (mixed precision skips the steps whose gradients overflowed, core/train/amp.h).
    void (*sgd_step)(float *p, const float *g, float *momentum_buf, float *state, int64_t n, const float *lr,
                     float momentum, float dampening, float weight_decay, bool nesterov, bool decoupled,
                     const uint8_t *decay_mask, const float *found_inf);
    void (*adam_step)(float *p, const float *g, float *m, float *v, float *state, int64_t n, const float *lr,
                      float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                      const uint8_t *decay_mask, const float *found_inf);
    // Gradient clipping by the global norm (torch.nn.utils.clip_grad_norm_): sum_sq[0] = the sum of
    // g[i]^2, i < n, in a fixed order (the same bits on every run; partials: CG_NORM_PARTIALS floats
    // of scratch on the device); then, reading it on the device, g[i] *= min(1, max_norm /
    // (sqrt(sum_sq[0]) + 1e-6)) in one pass.
    void (*grad_sq_sum)(float *sum_sq, float *partials, const float *g, int64_t n);
    void (*clip_by_norm)(float *g, const float *sum_sq, float max_norm, int64_t n);
    // x[0] += value, unless flag[0] != 0 (the optimizer's step count, not advanced on a skipped step)
    void (*add_scalar_unless)(float *x, float value, const float *flag);

    // ---- mixed precision (core/amp.h) ------------------------------------------------------------
    // The kernels ending in _h take 16-bit data: `dtype` is CG_F16 or CG_BF16, and every void
    // pointer holds n values of it. Products and convolutions accumulate in f32 and round once
    // when they store (cuBLAS / cuDNN with f32 compute on the GPU; on the CPU the f32 kernel on
    // widened copies, the result rounded to 16 bits: the same policy with the rounding emulated).
    // Their meaning is the f32 kernel's of the same name above.

    // y[i] = x[i] converted from xtype to ytype (F32, F16 or BF16; rounding to nearest even as
    // core/half.h); accumulate: y[i] = y[i] + x[i], summed in f32 and rounded to ytype once.
    void (*cast)(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate);
    // The copy between memory formats (cg_to_memory_format): x (N, C, HW) NCHW -> y (N, HW, C)
    // when to_channels_last, the reverse otherwise; f32, f16 or bf16 (x and y of dtype).
    // accumulate: y += the copy (16 bits: summed in f32, rounded once), for the backward.
    void (*memory_format_copy)(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                               bool to_channels_last, bool accumulate);
    void (*gemm_h)(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const void *A, const void *B, float beta, void *C);
    void (*linear_forward_h)(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                             int64_t N, int64_t K);
    void (*add_bias_backward_h)(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols);
    void (*conv2d_forward_h)(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                             int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                             int64_t pad, int64_t P, int64_t Q);
    void (*conv2d_backward_h)(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                              const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                              int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
    // Convolutions with channels-last tensors (core/tensor.h): y_cl / x_cl / dy_cl say whether each
    // is stored (N, H, W, C) (then dx is stored as x); w_cl whether w and dw (K, C, R, S) are stored
    // (K, R, S, C) (a 16-bit copy of the parameter block's, core/train/amp.h; then C and K are
    // multiples of 8). The same values as conv2d_forward_h / _backward_h on the tensors in NCHW
    // (GPU: cuDNN's NHWC Tensor Core kernels read and write them as they are; CPU: copies around
    // the NCHW kernels).
    // w_nhwc (may be NULL; unused when w_cl): room for round8(K) x R x S x round8(C) values of
    // dtype, where the forward leaves the weights as cuDNN's NHWC kernels read them (KRSC, channels
    // padded to 8) and the backward reads them back instead of making that copy again (the tape
    // keeps it between the two: core/ops_conv.c). The CPU ignores it.
    void (*conv2d_forward_cl)(cg_dtype dtype, void *y, bool y_cl, const void *x, bool x_cl, const void *w, bool w_cl,
                              void *w_nhwc, const void *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
    // accumulate false: dx is written, not added to (its old contents are never read: the tape's
    // fresh gradients, core/tape.h); the same values as adding to zeros (the same bits, but for
    // the sign of a zero where cuDNN writes with beta 0). Also in the rows below.
    void (*conv2d_backward_cl)(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, bool dy_cl,
                               const void *x, bool x_cl, const void *w, bool w_cl, const void *w_nhwc, int64_t N,
                               int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                               int64_t pad, int64_t P, int64_t Q, bool accumulate);
    // channels_last: x and y stored (N, H, W, C) (argmax then indexes x as stored).
    void (*max_pool2d_forward_h)(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q,
                                 bool channels_last);
    // dx[argmax[i]] = round(dx[argmax[i]] + dy[i]) for every i < N C P Q; the sizes and layout of
    // the forward. Windows that overlap (kernel > stride) may send several gradients to one input
    // (the GPU then adds atomically); otherwise each input has at most one window, and the GPU
    // gathers: each input looks up its window's arg-max. accumulate false: dx's inputs that are
    // no window's maximum are set to zero, the others to round(0 + dy).
    void (*max_pool2d_backward_h)(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t N,
                                  int64_t C, int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P,
                                  int64_t Q, bool channels_last, bool accumulate);
    // Global average pooling on 16-bit activations, as PyTorch's adaptive_avg_pool2d(x, 1) runs
    // under autocast (in x's dtype, the sums in f32): y (N, C) = round(the f32 sum of plane (n, c)
    // of x, taken in the order of its HW positions, / HW), the bits of global_avg_pool_forward on
    // x widened, rounded once. channels_last: x (and dx) stored (N, HW, C). Backward: dx =
    // round(dx + dy / HW) for each of the plane's HW values, the bits of the f32 row's dy / HW
    // added and rounded; accumulate false: dx written, round(dy / HW), its old contents not read.
    void (*global_avg_pool_forward_h)(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                                      bool channels_last);
    void (*global_avg_pool_backward_h)(cg_dtype dtype, void *dx, const void *dy, int64_t N, int64_t C, int64_t HW,
                                       bool channels_last, bool accumulate);
    void (*relu_forward_h)(cg_dtype dtype, void *y, const void *x, int64_t n);
    void (*relu_backward_h)(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n, bool accumulate);
    // Batch normalisation and GELU on 16-bit activations (x, y, dy, dx of dtype), as cuDNN's batch
    // norm and PyTorch's GELU run under autocast: the statistics and every sum in f32, gamma,
    // beta, stats, the running statistics and dgamma / dbeta f32 as in batch_norm_forward; each
    // stored 16-bit value rounded once (y = round(f32 result), dx = round(dx + f32 gradient)).
    // The same formulas and arguments as the f32 rows; channels_last: x, y, dy, dx stored (N, HW, C).
    void (*batch_norm_forward_h)(cg_dtype dtype, void *y, float *stats, float *running_mean, float *running_var,
                                 const void *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                                 int64_t HW, float eps, float momentum, bool training, bool channels_last);
    void (*batch_norm_backward_h)(cg_dtype dtype, void *dx, float *dgamma, float *dbeta, const void *dy,
                                  const void *x, const float *gamma, const float *stats, int64_t N, int64_t C,
                                  int64_t HW, bool training, bool channels_last, bool accumulate);
    // Batch norm followed by an activation in one op (cg_batch_norm2d_gelu, _relu): y = act(batch
    // norm of x), act the exact GELU or ReLU, x and y of dtype (f32, f16 or bf16), the batch norm's
    // output kept in f32 between the two (never stored); the backward takes dy of the activation's
    // output and computes the batch norm's output again from x, stats, gamma and beta. Otherwise
    // as batch_norm_forward_h / _backward_h.
    void (*batch_norm_act_forward)(cg_dtype dtype, cg_activation act, void *y, float *stats, float *running_mean,
                                   float *running_var, const void *x, const float *gamma, const float *beta, int64_t N,
                                   int64_t C, int64_t HW, float eps, float momentum, bool training, bool channels_last);
    void (*batch_norm_act_backward)(cg_dtype dtype, cg_activation act, void *dx, float *dgamma, float *dbeta,
                                    const void *dy, const void *x, const float *gamma, const float *beta,
                                    const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                    bool channels_last, bool accumulate);
    // The end of a ResNet basic block in one op (cg_batch_norm2d_add_relu): y = relu(batch norm of
    // x + z), z (the shortcut) of x's dtype, shape and layout, the sum kept in f32 and y rounded once.
    // Otherwise as batch_norm_act_forward. Its backward is ReLU's (relu_backward, from y) then
    // batch norm's (batch_norm_backward / _h), or in 16 bits this row where it exists (the CPU's
    // and the GPU's): g = dy where y > 0, +0 elsewhere (y the op's output, g of x's dtype,
    // written, the gradient of both the batch norm's output and z), then batch_norm_backward_h's
    // dx (+=, or written when !accumulate), dgamma and dbeta from g; the same values as the two rows.
    void (*batch_norm_add_relu_forward)(cg_dtype dtype, void *y, float *stats, float *running_mean,
                                        float *running_var, const void *x, const void *z, const float *gamma,
                                        const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                        float momentum, bool training, bool channels_last);
    void (*batch_norm_add_relu_backward)(cg_dtype dtype, void *dx, void *g, float *dgamma, float *dbeta,
                                         const void *dy, const void *y, const void *x, const float *gamma,
                                         const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                         bool channels_last, bool accumulate);
    void (*gelu_forward_h)(cg_dtype dtype, void *y, const void *x, int64_t n, bool tanh_approx);
    // y = round(a + b), n values of one 16-bit dtype (the residual add under autocast; its
    // backward is cast with accumulate: each gradient = round(gradient + dy)).
    void (*add_forward_h)(cg_dtype dtype, void *y, const void *a, const void *b, int64_t n);
    void (*gelu_backward_h)(cg_dtype dtype, void *dx, const void *dy, const void *x, int64_t n, bool tanh_approx,
                            bool accumulate);
    // The fused block in 16 bits: the values and gradients of conv2d_forward_h (its output rounded
    // to 16 bits), relu_forward_h and max_pool2d_forward_h(2, 2) in a row, bit for bit, with
    // `where` as conv2d_relu_pool_forward's; accumulate as there. Optional (NULL: the three ops run).
    void (*conv2d_relu_pool_forward_h)(cg_dtype dtype, void *y, uint8_t *where, const void *x, const void *w,
                                       const void *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                       int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q);
    void (*conv2d_relu_pool_backward_h)(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy,
                                        const void *y, const uint8_t *where, const void *x, const void *w, int64_t N,
                                        int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                        int64_t stride, int64_t pad, int64_t P, int64_t Q, bool accumulate);

    // The loss scaler on the device (PyTorch's _amp_foreach_non_finite_check_and_unscale_ and
    // _amp_update_scale_, aten/src/ATen/native/cuda/AmpKernels.cu). amp[] holds
    // CG_AMP_STATE floats: see core/amp.h for the slots.
    // g (n) f32 += h (n) of dtype (NULL: nothing added), then: amp[FOUND_INF] = 1 if any g[i] is
    // inf or NaN (left as it is otherwise), and g[i] *= 1 / amp[SCALE].
    // slices, count: where h is stored channels-last (cg_amp_cl_slice, at the top of this file;
    // NULL, 0: nowhere).
    void (*amp_unscale_check)(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n,
                              const cg_amp_cl_slice *slices, int count);
    // The 16-bit copy of the parameter block (core/train/amp.h): low (n) of dtype = values (n) f32
    // rounded, the slices' weights stored channels-last, the rest as in values.
    void (*amp_refresh)(void *low, cg_dtype dtype, const float *values, int64_t n, const cg_amp_cl_slice *slices,
                        int count);
    // After the step: the scale rule of core/grad_scaler.h on amp[], reading amp[FOUND_INF].
    void (*amp_update_scale)(float *amp, float growth_factor, float backoff_factor, int growth_interval);
} cg_kernels;

// Fields per sample of gather_images' augment array: dy, dx, flip, cutout cy, cutout cx.
enum { CG_AUGMENT_FIELDS = 5 };
// Floats of scratch that grad_sq_sum takes (one partial sum per block).
enum { CG_NORM_PARTIALS = 512 };

// The slots of the loss scaler's state on the device (amp_unscale_check, amp_update_scale).
enum {
    CG_AMP_SCALE = 0,     // S, the loss scale (also the gradient the backward starts from)
    CG_AMP_FOUND_INF = 1, // 1 when this step's gradients hold an inf or NaN, else 0
    CG_AMP_GROWTH = 2,    // good steps since S last changed
    CG_AMP_SKIPPED = 3,   // steps skipped so far
    CG_AMP_STEPS = 4,     // steps so far (applied and skipped)
    CG_AMP_STATE = 8      // floats of state (room to spare)
};

// The table of a device. Aborts if the device's backend is not built.
const cg_kernels *cg_kernels_for(cg_device device);

// The CPU's table (built by kernels/cpu/table.c, which installs it with cg_kernels_install_cpu
// before main() runs), and the GPU's (from the CUDA plugin that core/cuda_plugin.c loads; NULL when
// cgrad was built without CUDA or the plugin cannot be loaded). cg_kernels_for (core/kernels.c) picks one.
const cg_kernels *cg_cpu_kernels(void);
const cg_kernels *cg_cuda_kernels(void);
void cg_kernels_install_cpu(const cg_kernels *table);

#ifdef __cplusplus
}
#endif

#endif

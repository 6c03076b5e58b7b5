// norm.cu: batch normalisation on the GPU and the steps of its synchronised form (core/dist sums
// the per-channel sums over the ranks in between). CPU twin: kernels/cpu/norm.c.
//
// Every per-channel sum (the statistics, the backward's sums of dy and dy xhat) is taken in two
// launches by channel_sums.h: step 1's partial sums there, step 2's kernels (what each sum becomes)
// here. The elementwise passes (normalise, dx) run over the flat tensor, one thread per element,
// with the channel of element i, i / HW mod C, found by two multiply-highs (fast_divide.h).
// A ReLU or GELU that follows the batch norm may run in the same passes (the batch_norm_act rows:
// its input computed from x in registers, never stored), and a residual z added before a ReLU in
// the normalising pass (the batch_norm_add_relu row: the end of a ResNet basic block).
// 16-bit tensors may be stored channels-last (N, HW, C) (core/tensor.h). With C a multiple of 8
// every pass there runs on channel_sums.h's one launch shape: a thread owns 8 neighbouring
// channels (one 16-byte piece of a pixel) and walks pixels, so that its channels' coefficients
// live in its registers, loaded once. Other channel counts take the flat passes with 1 for HW
// (the channel of element i is i mod C).
// Each kernel is a template on the activations' type: f32, or 16 bits under autocast (the
// _h rows: values widened in registers, sums in f32, each stored value rounded once).
#include "kernels/cuda/channel_sums.h" // (and cuda.h, fast_divide.h)


// ---- step 2 of each sum ------------------------------------------------------------------------

// Channel c's stats (mean, 1 / sqrt(var + eps), var biased) from its sums over m values, and its
// running statistics updated with the unbiased variance, in the CPU's formulas and roundings.
static __device__ void write_stats(float *stats, float *running_mean, float *running_var, int64_t C, int64_t c,
                                   double sum, double sum_sq, double m, float eps, float momentum) {
    double mu = sum / m, var = fmax(sum_sq / m - mu * mu, 0.0);
    stats[c] = (float)mu;
    stats[C + c] = (float)(1.0 / sqrt(var + eps));
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)(var * m / (m - 1.0));
}

// Training: the batch's stats and running statistics.
static __global__ void batch_stats_kernel(float *stats, float *running_mean, float *running_var, const float *partial,
                                          int64_t S, int64_t C, double m, float eps, float momentum) {
    double sum, sum_sq;
    int64_t c = channel_totals(&sum, &sum_sq, partial, S, C);
    if (c >= 0) write_stats(stats, running_mean, running_var, C, c, sum, sum_sq, m, eps, momentum);
}

// Evaluation: stats from the running statistics.
static __global__ void running_stats_kernel(float *stats, const float *running_mean, const float *running_var,
                                            int64_t C, float eps) {
    GRID_STRIDE(c, C) {
        stats[c] = running_mean[c];
        stats[C + c] = 1.0f / sqrtf(running_var[c] + eps);
    }
}

// Synchronised form, forward: sums (2C + 1) = the sums of x and x^2, then the count.
static __global__ void x_sums_kernel(double *sums, const float *partial, int64_t S, int64_t C, double m) {
    double sum, sum_sq;
    int64_t c = channel_totals(&sum, &sum_sq, partial, S, C);
    if (c >= 0) sums[c] = sum, sums[C + c] = sum_sq;
    if (c == 0) sums[2 * C] = m;
}

// Backward: totals (2C) = the sums of dy and of dy xhat; dgamma / dbeta += them (either may be NULL).
// `copy`: the synchronised form's layout, the two sums written twice (4C).
static __global__ void dy_sums_kernel(double *totals, float *dgamma, float *dbeta, const float *partial,
                                      const float *stats, int64_t S, int64_t C, bool copy) {
    double sum_dy, sum_dy_xc;
    int64_t c = channel_totals(&sum_dy, &sum_dy_xc, partial, S, C);
    if (c < 0) return;
    double sum_dy_xhat = sum_dy_xc * stats[C + c];
    totals[c] = sum_dy;
    totals[C + c] = sum_dy_xhat;
    if (copy) totals[2 * C + c] = sum_dy, totals[3 * C + c] = sum_dy_xhat;
    if (dgamma) dgamma[c] += (float)sum_dy_xhat;
    if (dbeta) dbeta[c] += (float)sum_dy;
}

static __global__ void add_param_grads_kernel(float *dgamma, float *dbeta, const double *sums, int64_t C) {
    GRID_STRIDE(c, C) {
        if (dgamma) dgamma[c] += (float)sums[C + c];
        if (dbeta) dbeta[c] += (float)sums[c];
    }
}

// ---- the elementwise passes ----------------------------------------------------------------------

// for (i = this thread's first element; i < n; i += all threads of the grid), n < 2^31: the
// index fits the fast divisions (the step is added in 64 bits, so it cannot wrap past n).
#define FLAT_LOOP(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// The channel of flat element i: i / HW mod C, both by multiply-high (HW = 1 for channels-last).
static __device__ __forceinline__ int channel_of(int64_t i, cg_fast_divisor hw, cg_fast_divisor c) {
    uint32_t q = cg_fast_divide((uint32_t)i, hw);
    return (int)(q - cg_fast_divide(q, c) * c.divisor);
}

// y = x gamma inv_std + (beta - mean gamma inv_std), per channel (the CPU's two roundings);
// ACT: y = the activation of that, the batch norm's output kept in f32 between the two; z (NULL:
// none): a residual of x's layout added to the batch norm's output before the activation.
// One value per thread, any layout.
template <typename T, int ACT>
static __global__ void normalize_kernel(T *y, const T *x, const T *z, const float *gamma, const float *beta,
                                        const float *stats, int n, cg_fast_divisor channels, cg_fast_divisor hw) {
    int C = (int)channels.divisor;
    FLAT_LOOP(i, n) {
        int c = channel_of(i, hw, channels);
        float scale = gamma[c] * stats[C + c], shift = beta[c] - stats[c] * scale;
        float v = h2f(x[i]) * scale + shift;
        if (z) v += h2f(z[i]);
        y[i] = f2h<T>(act_value<ACT>(v));
    }
}

// The same channels-last, 8 channels per thread (the channels-last passes' shape), R rows.
template <typename T, int ACT>
static __global__ void normalize_cl8_kernel(T *y, const T *x, const T *z, const float *gamma, const float *beta,
                                            const float *stats, int R, int C) {
    int c0 = CL8_FIRST_CHANNEL();
    if (c0 >= C) return;
    float scale[8], shift[8];
#pragma unroll
    for (int k = 0; k < 8; k++) {
        scale[k] = gamma[c0 + k] * stats[C + c0 + k];
        shift[k] = beta[c0 + k] - stats[c0 + k] * scale[k];
    }
    uint4 raw[CL8_BATCH], raw_z[CL8_BATCH];
    cl8_rows(
        R,
        [&](int b, int r) {
            raw[b] = piece_load(x, r, C, c0);
            if (z) raw_z[b] = piece_load(z, r, C, c0);
        },
        [&](int b, int r) {
            float v[8], zv[8];
            piece_widen<T>(v, raw[b]);
            if (z) piece_widen<T>(zv, raw_z[b]);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                v[k] = v[k] * scale[k] + shift[k];
                if (z) v[k] += zv[k];
                v[k] = act_value<ACT>(v[k]);
            }
            store_vec<8>(y + (int64_t)r * C + c0, v);
        });
}

// dx += gamma inv_std (dy - S_dy / m - xhat S_dyxhat / m) in training, gamma inv_std dy otherwise;
// S from sums (C values of each, f64) over m values per channel; m_on_device: m is read there
// instead (the synchronised form's count over every rank, stats[2C], which the host never sees).
// ACT: dy is the gradient of an activation that follows (beta then needed to compute its input).
// accumulate false: dx is written (0 + g), its old values never read (core/tape.h: fresh gradients).
// Per channel, once: g = gamma inv_std, S_dy / m and inv_std S_dyxhat / m (the divisions by m
// there, not per element), so that dx = g (dy - S_dy / m - (x - mean) inv_std S_dyxhat / m).
struct dx_coefficients {
    float g, shift, mean, dy_mean, dyxhat_mean;
};
template <int ACT>
static __device__ __forceinline__ dx_coefficients dx_coefficients_of(int c, int C, const float *gamma, const float *beta,
                                                                     const float *stats, const double *sums, float m,
                                                                     bool training) {
    float mean = stats[c], inv_std = stats[C + c], g = gamma[c] * inv_std;
    return {g, ACT != 0 ? beta[c] - mean * g : 0.0f, mean, training ? (float)sums[c] / m : 0.0f,
            training ? inv_std * ((float)sums[C + c] / m) : 0.0f};
}
template <int ACT>
static __device__ __forceinline__ float dx_value(const dx_coefficients &k, float start, float dy, float x) {
    float d = ACT != 0 ? bn_output_grad<ACT>(dy, x, k.g, k.shift) : dy;
    return start + k.g * (d - k.dy_mean - (x - k.mean) * k.dyxhat_mean); // the two means 0 in evaluation
}

template <typename T, int ACT>
static __global__ void dx_kernel(T *dx, const T *dy, const T *x, const float *gamma, const float *beta,
                                 const float *stats, const double *sums, float m, const float *m_on_device, int n,
                                 cg_fast_divisor channels, cg_fast_divisor hw, bool training, bool accumulate) {
    if (m_on_device) m = *m_on_device;
    int C = (int)channels.divisor;
    FLAT_LOOP(i, n) {
        int c = channel_of(i, hw, channels);
        dx_coefficients k = dx_coefficients_of<ACT>(c, C, gamma, beta, stats, sums, m, training);
        dx[i] = f2h<T>(dx_value<ACT>(k, accumulate ? h2f(dx[i]) : 0.0f, h2f(dy[i]), h2f(x[i])));
    }
}

// The same channels-last, 8 channels per thread, R rows (dx, dy and x never overlap).
template <typename T, int ACT>
static __global__ void dx_cl8_kernel(T *__restrict__ dx, const T *__restrict__ dy, const T *__restrict__ x,
                                     const float *gamma, const float *beta, const float *stats, const double *sums,
                                     float m, const float *m_on_device, int R, int C, bool training, bool accumulate) {
    int c0 = CL8_FIRST_CHANNEL();
    if (c0 >= C) return;
    if (m_on_device) m = *m_on_device;
    dx_coefficients coef[8];
#pragma unroll
    for (int k = 0; k < 8; k++) coef[k] = dx_coefficients_of<ACT>(c0 + k, C, gamma, beta, stats, sums, m, training);
    uint4 raw_x[CL8_BATCH], raw_dy[CL8_BATCH];
    cl8_rows(
        R,
        [&](int b, int r) {
            raw_x[b] = piece_load(x, r, C, c0);
            raw_dy[b] = piece_load(dy, r, C, c0);
        },
        [&](int b, int r) {
            int64_t i = (int64_t)r * C + c0;
            float xv[8], dyv[8], out[8];
            piece_widen<T>(xv, raw_x[b]);
            piece_widen<T>(dyv, raw_dy[b]);
            gradient_start_vec<8>(out, dx + i, accumulate);
#pragma unroll
            for (int k = 0; k < 8; k++) out[k] = dx_value<ACT>(coef[k], out[k], dyv[k], xv[k]);
            store_vec<8>(dx + i, out);
        });
}

// The elementwise passes' launches: channels-last with 8 channels per thread where vec_width
// allows (one wave of blocks), else one value per thread.
// z: a residual (NULL: none).
template <typename T, int ACT = 0>
static void normalize(T *y, const T *x, const float *gamma, const float *beta, const float *stats, int64_t N, int64_t C,
                      int64_t HW, bool channels_last = false, const T *z = NULL) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("batch_norm", n);
    if constexpr (sizeof(T) == 2)
        if (channels_last && vec_width<T>(C, x, y) == 8 && (z == NULL || vec_width<T>(C, z) == 8)) {
            cl8_shape shape = cl8_shape_make(normalize_cl8_kernel<T, ACT>, C, N * HW);
            normalize_cl8_kernel<T, ACT><<<shape.grid, shape.block, 0, cg_cuda_stream()>>>(
                y, x, z, gamma, beta, stats, (int)(N * HW), (int)C);
            CG_LAUNCH_CHECK();
            return;
        }
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make(channels_last ? 1u : (uint32_t)HW);
    LAUNCH((normalize_kernel<T, ACT>), n, y, x, z, gamma, beta, stats, (int)n, c, hw);
}

template <typename T, int ACT = 0>
static void input_gradient(T *dx, const T *dy, const T *x, const float *gamma, const float *beta, const float *stats,
                           const double *sums, float m, const float *m_on_device, int64_t N, int64_t C, int64_t HW,
                           bool training, bool channels_last = false, bool accumulate = true) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("batch_norm", n);
    if constexpr (sizeof(T) == 2)
        if (channels_last && vec_width<T>(C, dx, dy, x) == 8) {
            cl8_shape shape = cl8_shape_make(dx_cl8_kernel<T, ACT>, C, N * HW);
            dx_cl8_kernel<T, ACT><<<shape.grid, shape.block, 0, cg_cuda_stream()>>>(
                dx, dy, x, gamma, beta, stats, sums, m, m_on_device, (int)(N * HW), (int)C, training, accumulate);
            CG_LAUNCH_CHECK();
            return;
        }
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make(channels_last ? 1u : (uint32_t)HW);
    LAUNCH((dx_kernel<T, ACT>), n, dx, dy, x, gamma, beta, stats, sums, m, m_on_device, (int)n, c, hw, training,
           accumulate);
}

// ---- the table's rows ------------------------------------------------------------------------------
// Scratch buffers come from the caching allocator and go back to it once their last kernel is
// queued: the stream's order keeps them alive long enough (as conv.cu's).

// The forward and backward for f32 (T = float) and 16-bit (T = __half, __nv_bfloat16) tensors;
// ACT: an activation after the batch norm in the same passes (y its output, dy its output gradient).
// z: a residual added before the activation (NULL: none).
template <typename T, int ACT = 0>
static void bn_forward(T *y, float *stats, float *running_mean, float *running_var, const T *x, const float *gamma,
                       const float *beta, int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training,
                       bool channels_last = false, const T *z = NULL) {
    if (training) {
        int64_t S;
        float *partial = partial_sums<SUMS_OF_X, T>(&S, x, NULL, NULL, N, C, HW, channels_last);
        CHANNEL_TOTALS_LAUNCH(batch_stats_kernel, C, stats, running_mean, running_var, partial, S, C, (double)(N * HW),
                              eps, momentum);
        cg_cuda_free(partial);
    } else {
        LAUNCH(running_stats_kernel, C, stats, running_mean, running_var, C, eps);
    }
    normalize<T, ACT>(y, x, gamma, beta, stats, N, C, HW, channels_last, z);
}

// The end of a basic block, backward (bn_backward with relu_y): g = dy where y > 0 (ReLU's gradient
// from its output y, relu_backward_h's values, written to g), then batch norm's backward from g.
// Channels-last with 8 channels a thread, g is made in the pass that takes the sums of g (the
// launch shape of the plain sums, so the same sums): 7 passes over a block's output instead of
// 8 (ReLU's pass read dy and y and wrote g, then the sums read g again), and one launch fewer.
template <typename T> static __global__ void relu_grad_kernel(T *g, const T *dy, const T *y, int n) {
    FLAT_LOOP(i, n) g[i] = f2h<T>(h2f(y[i]) > 0.0f ? 0.0f + h2f(dy[i]) : 0.0f);
}

// Step 1 of those sums, g written on the way; *shares = S (as partial_sums).
template <typename T>
static float *relu_grad_partial_sums(int64_t *shares, T *g, const T *dy, const T *y, const T *x, const float *stats,
                                     int64_t N, int64_t C, int64_t HW, bool channels_last) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("batch_norm", n);
    if constexpr (sizeof(T) == 2)
        if (channels_last && vec_width<T>(C, g, dy, y, x) == 8) {
            cl8_shape shape = cl8_shape_make(channel_partial_sums_cl8<SUMS_OF_DY, 0, T>, C, N * HW);
            *shares = shape.grid.y;
            float *partial = (float *)cg_cuda_alloc((size_t)(*shares * C * 2) * sizeof(float));
            channel_partial_sums_cl8<SUMS_OF_DY, 0, T, true><<<shape.grid, shape.block, 0, cg_cuda_stream()>>>(
                partial, dy, x, stats, NULL, NULL, (int)(N * HW), (int)C, y, g);
            CG_LAUNCH_CHECK();
            return partial;
        }
    LAUNCH(relu_grad_kernel<T>, n, g, dy, y, (int)n); // ReLU's pass, then the sums of g
    return partial_sums<SUMS_OF_DY, T>(shares, g, x, stats, N, C, HW, channels_last);
}

// relu_y (NULL: none): dy is the gradient of relu(batch norm's output + z) = relu_y, and g (written)
// gets ReLU's gradient, from which the rest runs (the end of a basic block: relu_grad_partial_sums).
template <typename T, int ACT = 0>
static void bn_backward(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *gamma,
                        const float *beta, const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                        bool channels_last = false, bool accumulate = true, const T *relu_y = NULL, T *g = NULL) {
    int64_t S;
    float *partial = relu_y ? relu_grad_partial_sums<T>(&S, g, dy, relu_y, x, stats, N, C, HW, channels_last)
                            : partial_sums<SUMS_OF_DY, T, ACT>(&S, dy, x, stats, N, C, HW, channels_last, gamma, beta);
    if (relu_y) dy = g; // batch norm's output gradient from here on
    double *totals = (double *)cg_cuda_alloc((size_t)(2 * C) * sizeof(double));
    CHANNEL_TOTALS_LAUNCH(dy_sums_kernel, C, totals, dgamma, dbeta, partial, stats, S, C, false);
    if (dx)
        input_gradient<T, ACT>(dx, dy, x, gamma, beta, stats, totals, (float)(N * HW), NULL, N, C, HW, training,
                                channels_last, accumulate);
    cg_cuda_free(partial), cg_cuda_free(totals);
}

// The bias gradient of a convolution whose dy (N, PQ, K) is stored channels-last: dbias[k] =
// round(dbias[k] + the sum of column k), in f32 then f64 as batch norm's sums (conv_bias_grad_cl_cuda below).
template <typename T>
static __global__ void add_bias_grad_kernel(T *dbias, const float *partial, int64_t S, int64_t C) {
    double sum, unused;
    int64_t c = channel_totals(&sum, &unused, partial, S, C);
    if (c >= 0) dbias[c] = f2h<T>(h2f(dbias[c]) + (float)sum);
}

extern "C" {
static void batch_norm_forward_cuda(float *y, float *stats, float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                    float momentum, bool training) {
    bn_forward<float>(y, stats, running_mean, running_var, x, gamma, beta, N, C, HW, eps, momentum, training);
}

static void batch_norm_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                     const float *gamma, const float *stats, int64_t N, int64_t C, int64_t HW, bool training) {
    bn_backward<float>(dx, dgamma, dbeta, dy, x, gamma, NULL, stats, N, C, HW, training);
}

static void batch_norm_forward_h_cuda(cg_dtype dtype, void *y, float *stats, float *running_mean, float *running_var,
                                      const void *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                                      int64_t HW, float eps, float momentum, bool training, bool channels_last) {
    DISPATCH16(dtype, bn_forward<T>((T *)y, stats, running_mean, running_var, (const T *)x, gamma, beta, N, C, HW, eps,
                                    momentum, training, channels_last));
}

static void batch_norm_backward_h_cuda(cg_dtype dtype, void *dx, float *dgamma, float *dbeta, const void *dy,
                                       const void *x, const float *gamma, const float *stats, int64_t N, int64_t C,
                                       int64_t HW, bool training, bool channels_last, bool accumulate) {
    DISPATCH16(dtype, bn_backward<T>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, gamma, NULL, stats, N, C,
                                     HW, training, channels_last, accumulate));
}

// Batch norm then an activation (f32, f16 or bf16): the templates above with ACT.
#define DISPATCH_ANY(dtype, ...)                  \
    do {                                          \
        if ((dtype) == CG_F32) {                  \
            typedef float T;                      \
            __VA_ARGS__;                          \
        } else {                                  \
            DISPATCH16(dtype, __VA_ARGS__);       \
        }                                         \
    } while (0)
#define DISPATCH_ACT(act, ...)                                                                  \
    do {                                                                                        \
        CG_CHECK((act) == CG_ACT_GELU || (act) == CG_ACT_RELU, "batch norm: activation %d", (int)(act)); \
        if ((act) == CG_ACT_GELU) {                                                             \
            const int ACT = CG_ACT_GELU;                                                        \
            __VA_ARGS__;                                                                        \
        } else {                                                                                \
            const int ACT = CG_ACT_RELU;                                                        \
            __VA_ARGS__;                                                                        \
        }                                                                                       \
    } while (0)

static void batch_norm_act_forward_cuda(cg_dtype dtype, cg_activation act, void *y, float *stats, float *running_mean,
                                        float *running_var, const void *x, const float *gamma, const float *beta,
                                        int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training,
                                        bool channels_last) {
    DISPATCH_ACT(act, DISPATCH_ANY(dtype, (bn_forward<T, ACT>((T *)y, stats, running_mean, running_var, (const T *)x,
                                                              gamma, beta, N, C, HW, eps, momentum, training,
                                                              channels_last))));
}

static void batch_norm_add_relu_forward_cuda(cg_dtype dtype, void *y, float *stats, float *running_mean,
                                             float *running_var, const void *x, const void *z, const float *gamma,
                                             const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                                             float momentum, bool training, bool channels_last) {
    DISPATCH_ANY(dtype, (bn_forward<T, CG_ACT_RELU>((T *)y, stats, running_mean, running_var, (const T *)x, gamma,
                                                    beta, N, C, HW, eps, momentum, training, channels_last,
                                                    (const T *)z)));
}

static void batch_norm_act_backward_cuda(cg_dtype dtype, cg_activation act, void *dx, float *dgamma, float *dbeta,
                                         const void *dy, const void *x, const float *gamma, const float *beta,
                                         const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                         bool channels_last, bool accumulate) {
    DISPATCH_ACT(act, DISPATCH_ANY(dtype, (bn_backward<T, ACT>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, gamma,
                                                               beta, stats, N, C, HW, training, channels_last,
                                                               accumulate))));
}

static void batch_norm_add_relu_backward_cuda(cg_dtype dtype, void *dx, void *g, float *dgamma, float *dbeta,
                                              const void *dy, const void *y, const void *x, const float *gamma,
                                              const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                              bool channels_last, bool accumulate) {
    DISPATCH16(dtype, bn_backward<T>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, gamma, NULL, stats, N, C,
                                     HW, training, channels_last, accumulate, (const T *)y, (T *)g));
}

// The bias gradient of a convolution whose dy (N, PQ, K) is stored channels-last (conv16.cu).
void conv_bias_grad_cl_cuda(cg_dtype dtype, void *dbias, const void *dy, int64_t N, int64_t K, int64_t PQ) {
    DISPATCH16(dtype, {
        int64_t S;
        float *partial = partial_sums<SUMS_OF_X, T>(&S, (const T *)dy, NULL, NULL, N, K, PQ, true);
        CHANNEL_TOTALS_LAUNCH(add_bias_grad_kernel<T>, K, (T *)dbias, partial, S, K);
        cg_cuda_free(partial);
    });
}

static void batch_norm_sums_cuda(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    int64_t S;
    float *partial = partial_sums<SUMS_OF_X, float>(&S, x, NULL, NULL, N, C, HW);
    CHANNEL_TOTALS_LAUNCH(x_sums_kernel, C, sums, partial, S, C, (double)(N * HW));
    cg_cuda_free(partial);
}

static __global__ void stats_from_sums_kernel(float *stats, float *running_mean, float *running_var, const double *sums,
                                              int64_t C, float eps, float momentum) {
    double m = sums[2 * C];
    GRID_STRIDE(c, C) {
        write_stats(stats, running_mean, running_var, C, c, sums[c], sums[C + c], m, eps, momentum);
        if (c == 0) stats[2 * C] = (float)m;
    }
}

static void batch_norm_stats_from_sums_cuda(float *stats, float *running_mean, float *running_var, const double *sums,
                                            int64_t C, float eps, float momentum) {
    LAUNCH(stats_from_sums_kernel, C, stats, running_mean, running_var, sums, C, eps, momentum);
}

static void batch_norm_forward_from_stats_cuda(float *y, const float *x, const float *gamma, const float *beta,
                                               const float *stats, int64_t N, int64_t C, int64_t HW) {
    normalize<float>(y, x, gamma, beta, stats, N, C, HW);
}

static void batch_norm_backward_sums_cuda(double *sums, const float *dy, const float *x, const float *stats, int64_t N,
                                          int64_t C, int64_t HW) {
    int64_t S;
    float *partial = partial_sums<SUMS_OF_DY, float>(&S, dy, x, stats, N, C, HW);
    CHANNEL_TOTALS_LAUNCH(dy_sums_kernel, C, sums, NULL, NULL, partial, stats, S, C, true);
    cg_cuda_free(partial);
}

static void batch_norm_backward_from_sums_cuda(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                               const float *gamma, const float *stats, const double *sums, int64_t N,
                                               int64_t C, int64_t HW) {
    LAUNCH(add_param_grads_kernel, C, dgamma, dbeta, sums, C); // this rank's sums: [0, 2C)
    if (dx) // every rank's sums, [2C, 4C), over every rank's count, stats[2C]
        input_gradient<float>(dx, dy, x, gamma, NULL, stats, sums + 2 * C, 0.0f, stats + 2 * C, N, C, HW, true);
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void norm_register_cuda(cg_kernels *k) {
    k->batch_norm_forward = batch_norm_forward_cuda;
    k->batch_norm_backward = batch_norm_backward_cuda;
    k->batch_norm_forward_h = batch_norm_forward_h_cuda;
    k->batch_norm_backward_h = batch_norm_backward_h_cuda;
    k->batch_norm_act_forward = batch_norm_act_forward_cuda;
    k->batch_norm_act_backward = batch_norm_act_backward_cuda;
    k->batch_norm_add_relu_forward = batch_norm_add_relu_forward_cuda;
    k->batch_norm_add_relu_backward = batch_norm_add_relu_backward_cuda;
    k->batch_norm_sums = batch_norm_sums_cuda;
    k->batch_norm_stats_from_sums = batch_norm_stats_from_sums_cuda;
    k->batch_norm_forward_from_stats = batch_norm_forward_from_stats_cuda;
    k->batch_norm_backward_sums = batch_norm_backward_sums_cuda;
    k->batch_norm_backward_from_sums = batch_norm_backward_from_sums_cuda;
}

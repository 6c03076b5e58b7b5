// norm.cu: batch normalisation on the GPU and the steps of its synchronised form (core/dist sums
// the per-channel sums over the ranks in between). CPU twin: kernels/cpu/norm.c.
//
// Every per-channel sum is taken in two launches, so that the whole GPU works on it and the
// result is the same on every run:
//   1. channel_partial_sums: a grid of C x S blocks; block (c, s) sums channel c over its share
//      of the images (a contiguous run of about N / S of them), in f32, and writes its two sums
//      to partial[s][c]. S is chosen so that there are a few thousand blocks: one block per
//      channel (the first version of this file) left most of the GPU idle at 64 channels and
//      took most of a small CIFAR network's step.
//   2. a per-channel kernel adds the S partials in f64 and turns them into what the caller wants
//      (mean and inverse std, the gradients of gamma and beta, the sums to reduce). One warp per
//      channel: lane l adds shares l, l + 32, ..., then the 32 lane sums are added in a fixed
//      tree (the same bits every run). One thread per channel walking all S shares took a third
//      of the fast network's step once S was in the thousands.
// The elementwise passes (normalise, dx) run over the flat tensor, one thread per element (8 for
// channels-last, below), with the channel of element i, i / HW mod C, found by two multiply-highs
// (fast_divide.h).
// A ReLU or GELU that follows the batch norm may run in the same passes (the batch_norm_act rows:
// its input computed from x in registers, never stored).
// 16-bit tensors may be stored channels-last (N, HW, C) (core/tensor.h): step 1 then has its own
// kernel (a block sums 32 neighbouring channels over a share of the N HW rows), and the channel
// of element i is i mod C (the same passes with 1 for HW). The elementwise passes read 8 values
// per thread there (16-byte loads); step 1 does not: a version with 8 channels per thread was
// slower at the same block count on an H100, and with more blocks step 2 (which walks every
// share) lost what step 1 gained.
// Each kernel is a template on the activations' type: f32, or 16 bits under autocast (the
// _h rows: values widened in registers, sums in f32, each stored value rounded once).
#include "kernels/cuda/cuda.h" // (and fast_divide.h)

// What the partial sums add up: the sum of x and of x^2 (the forward's statistics), or the sum
// of dy and of dy (x - mean) (the backward's; multiplied by inv_std once, in step 2).
enum { SUMS_OF_X, SUMS_OF_DY };

// An activation after the batch norm in the same op (ACT: 0 for none, or a cg_activation): its
// value, and the batch norm's output gradient dy times its slope at the batch norm's output
// x scale + shift (the forward's formula, so the same value; dy is then the activation's output
// gradient, its input computed again from x).
template <int ACT> static __device__ __forceinline__ float act_value(float v) {
    return ACT == CG_ACT_GELU ? gelu_value(v, false) : ACT == CG_ACT_RELU ? (v > 0.0f ? v : 0.0f) : v;
}
template <int ACT> static __device__ __forceinline__ float bn_output_grad(float dy, float x, float scale, float shift) {
    if (ACT == 0) return dy;
    float v = x * scale + shift;
    return ACT == CG_ACT_GELU ? dy * gelu_slope(v, false) : (v > 0.0f ? dy : 0.0f);
}

// Blocks of step 1 along the images: enough for a few thousand blocks in all, no more than the
// images, and at least 2,048 values per block (fewer are not worth a block).
static int64_t image_shares(int64_t N, int64_t C, int64_t HW) {
    int64_t s = (4096 + C - 1) / C;
    if (s > N) s = N;
    int64_t by_size = N * HW / 2048;
    if (s > by_size) s = by_size;
    return s < 1 ? 1 : s;
}

// partial[(s C + c) 2 + 0 / 1] = the two sums of channel c over images [s N / S, (s + 1) N / S).
// The threads walk the block's values (image n, position hw) in steps of blockDim.x without
// dividing: each step moves step_n images and step_hw positions, carrying one image when the
// position passes HW.
// gamma, beta: for an activation (ACT != 0; else NULL).
template <int what, int ACT, typename T>
static __global__ void channel_partial_sums(float *partial, const T *a, const T *x, const float *stats,
                                           const float *gamma, const float *beta, int N, int C, int HW) {
    int c = blockIdx.x, s = blockIdx.y, S = gridDim.y;
    int n_end = (int)((int64_t)(s + 1) * N / S);
    int step_n = blockDim.x / HW, step_hw = blockDim.x % HW;
    int n = (int)((int64_t)s * N / S) + threadIdx.x / HW, hw = threadIdx.x % HW;
    float mean = what != SUMS_OF_X ? stats[c] : 0.0f;
    float scale = ACT != 0 && what != SUMS_OF_X ? gamma[c] * stats[C + c] : 0.0f;
    float shift = ACT != 0 && what != SUMS_OF_X ? beta[c] - mean * scale : 0.0f;
    float sum = 0.0f, sum2 = 0.0f;
    while (n < n_end) {
        int64_t i = ((int64_t)n * C + c) * HW + hw;
        float v = h2f(a[i]);
        if (what != SUMS_OF_X) v = bn_output_grad<ACT>(v, h2f(x[i]), scale, shift);
        sum += v;
        sum2 += what == SUMS_OF_X ? v * v : v * (h2f(x[i]) - mean);
        hw += step_hw;
        n += step_n;
        if (hw >= HW) hw -= HW, n++;
    }
    float total = block_sum(sum);
    __syncthreads(); // block_sum's shared array is used again just below
    float total2 = block_sum(sum2);
    if (threadIdx.x == 0) {
        partial[((int64_t)s * C + c) * 2] = total;
        partial[((int64_t)s * C + c) * 2 + 1] = total2;
    }
}

// Channels-last: block (g, s) sums channels [32 g, 32 g + 32) over rows [s R / S, (s + 1) R / S)
// of the (R = N HW) x C matrix. Thread (tx, ty) takes channel 32 g + tx and rows ty, ty + 8, ...:
// the 32 lanes of a warp read 32 neighbouring values of one row. The 8 row sums of each channel
// are then added in shared memory, in order.
enum { CL_CHANNELS = 32, CL_ROWS = 8 };
template <int what, int ACT, typename T>
static __global__ void channel_partial_sums_cl(float *partial, const T *a, const T *x, const float *stats,
                                              const float *gamma, const float *beta, int rows, int C) {
    __shared__ float sums[2][CL_ROWS][CL_CHANNELS + 1];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * CL_CHANNELS + tx, s = blockIdx.y, S = gridDim.y;
    int r_end = (int)((int64_t)(s + 1) * rows / S);
    float sum = 0.0f, sum2 = 0.0f;
    if (c < C) {
        float mean = what != SUMS_OF_X ? stats[c] : 0.0f;
        float scale = ACT != 0 && what != SUMS_OF_X ? gamma[c] * stats[C + c] : 0.0f;
        float shift = ACT != 0 && what != SUMS_OF_X ? beta[c] - mean * scale : 0.0f;
        for (int r = (int)((int64_t)s * rows / S) + ty; r < r_end; r += CL_ROWS) {
            int64_t i = (int64_t)r * C + c;
            float v = h2f(a[i]);
            if (what != SUMS_OF_X) v = bn_output_grad<ACT>(v, h2f(x[i]), scale, shift);
            sum += v;
            sum2 += what == SUMS_OF_X ? v * v : v * (h2f(x[i]) - mean);
        }
    }
    sums[0][ty][tx] = sum, sums[1][ty][tx] = sum2;
    __syncthreads();
    if (ty == 0 && c < C) {
        float total = 0.0f, total2 = 0.0f;
        for (int k = 0; k < CL_ROWS; k++) total += sums[0][k][tx], total2 += sums[1][k][tx];
        partial[((int64_t)s * C + c) * 2] = total;
        partial[((int64_t)s * C + c) * 2 + 1] = total2;
    }
}

// A new device buffer (caching allocator) with step 1's partial sums of `what`; *shares = S.
// channels_last: a and x stored (N, HW, C).
template <int what, typename T, int ACT = 0>
static float *partial_sums(int64_t *shares, const T *a, const T *x, const float *stats, int64_t N, int64_t C,
                           int64_t HW, bool channels_last = false, const float *gamma = NULL,
                           const float *beta = NULL) {
    cg_cuda_check_int32("batch_norm", N * C * HW);
    int64_t S;
    float *partial;
    if (!channels_last) {
        S = image_shares(N, C, HW);
        partial = (float *)cg_cuda_alloc((size_t)(S * C * 2) * sizeof(float));
        channel_partial_sums<what, ACT, T><<<dim3((unsigned)C, (unsigned)S), CG_THREADS, 0, cg_cuda_stream()>>>(
            partial, a, x, stats, gamma, beta, (int)N, (int)C, (int)HW);
    } else { // about a thousand blocks, each over at least 512 rows (64 per thread)
        int64_t groups = (C + CL_CHANNELS - 1) / CL_CHANNELS, rows = N * HW;
        S = (1024 + groups - 1) / groups;
        if (S > rows / 512) S = rows / 512;
        if (S < 1) S = 1;
        partial = (float *)cg_cuda_alloc((size_t)(S * C * 2) * sizeof(float));
        channel_partial_sums_cl<what, ACT, T><<<dim3((unsigned)groups, (unsigned)S), dim3(CL_CHANNELS, CL_ROWS), 0,
                                           cg_cuda_stream()>>>(partial, a, x, stats, gamma, beta, (int)rows, (int)C);
    }
    CG_LAUNCH_CHECK();
    *shares = S;
    return partial;
}

// The finalising kernels run one warp per channel: `for (c, lane)` over C channels, lane 0..31
// (the launch's thread count is 32 C; a warp never straddles two channels).
#define CHANNEL_WARPS(c, lane, C) \
    GRID_STRIDE(g_, (C) * 32)     \
    for (int64_t c = g_ / 32, lane = g_ % 32, once_ = 1; once_; once_ = 0)

// The two sums of channel c over the S shares, in f64: lane l over shares l, l + 32, ..., then
// a fixed tree over the lanes. Every lane of the warp calls it; lane 0 gets the totals.
static __device__ void add_shares(double *sum, double *sum2, const float *partial, int64_t S, int64_t C, int64_t c,
                                  int64_t lane) {
    double a = 0.0, b = 0.0;
    for (int64_t s = lane; s < S; s += 32) {
        a += partial[(s * C + c) * 2];
        b += partial[(s * C + c) * 2 + 1];
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        a += __shfl_down_sync(0xffffffffu, a, offset);
        b += __shfl_down_sync(0xffffffffu, b, offset);
    }
    *sum = a, *sum2 = b;
}

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
    CHANNEL_WARPS(c, lane, C) {
        double sum, sum_sq;
        add_shares(&sum, &sum_sq, partial, S, C, c, lane);
        if (lane == 0) write_stats(stats, running_mean, running_var, C, c, sum, sum_sq, m, eps, momentum);
    }
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
    CHANNEL_WARPS(c, lane, C) {
        double sum, sum_sq;
        add_shares(&sum, &sum_sq, partial, S, C, c, lane);
        if (lane == 0) sums[c] = sum, sums[C + c] = sum_sq;
        if (c == 0 && lane == 0) sums[2 * C] = m;
    }
}

// Backward: totals (2C) = the sums of dy and of dy xhat; dgamma / dbeta += them (either may be NULL).
// `copy`: the synchronised form's layout, the two sums written twice (4C).
static __global__ void dy_sums_kernel(double *totals, float *dgamma, float *dbeta, const float *partial,
                                      const float *stats, int64_t S, int64_t C, bool copy) {
    CHANNEL_WARPS(c, lane, C) {
        double sum_dy, sum_dy_xc;
        add_shares(&sum_dy, &sum_dy_xc, partial, S, C, c, lane);
        if (lane != 0) continue;
        double sum_dy_xhat = sum_dy_xc * stats[C + c];
        totals[c] = sum_dy;
        totals[C + c] = sum_dy_xhat;
        if (copy) totals[2 * C + c] = sum_dy, totals[3 * C + c] = sum_dy_xhat;
        if (dgamma) dgamma[c] += (float)sum_dy_xhat;
        if (dbeta) dbeta[c] += (float)sum_dy;
    }
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
// ACT: y = the activation of that, the batch norm's output kept in f32 between the two.
// VEC values per thread (cuda.h: load_vec): VEC = 8 only channels-last with C a multiple of 8,
// so that the 8 values are channels c .. c + 7 of one pixel. Then each block first computes
// every channel's coefficients into shared memory (C <= CL_SHARED_CHANNELS): eight 4-byte loads
// of gamma, beta and the statistics per 16-byte piece of x bound the kernel otherwise (measured:
// 8 values per thread without it ran slower than 1). The same arithmetic either way.
enum { CL_SHARED_CHANNELS = 1024 };
template <typename T, int ACT, int VEC>
static __global__ void normalize_kernel(T *y, const T *x, const float *gamma, const float *beta, const float *stats,
                                        int n, cg_fast_divisor channels, cg_fast_divisor hw) {
    extern __shared__ float coef[]; // VEC = 8: scale[C], then shift[C]
    int C = (int)channels.divisor;
    if (VEC > 1) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float scale = gamma[c] * stats[C + c];
            coef[c] = scale, coef[C + c] = beta[c] - stats[c] * scale;
        }
        __syncthreads();
    }
    FLAT_LOOP(v, n / VEC) {
        int64_t i = v * VEC;
        int c0 = channel_of(i, hw, channels);
        float val[VEC];
        load_vec<VEC>(val, x + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            int c = c0 + k;
            float scale, shift;
            if (VEC > 1)
                scale = coef[c], shift = coef[C + c];
            else
                scale = gamma[c] * stats[C + c], shift = beta[c] - stats[c] * scale;
            val[k] = act_value<ACT>(val[k] * scale + shift);
        }
        store_vec<VEC>(y + i, val);
    }
}

// dx += gamma inv_std (dy - S_dy / m - xhat S_dyxhat / m) in training, gamma inv_std dy otherwise;
// S from sums (C values of each, f64) over m values per channel; m_on_device: m is read there
// instead (the synchronised form's count over every rank, stats[2C], which the host never sees).
// ACT: dy is the gradient of an activation that follows (beta then needed to compute its input).
// accumulate false: dx is written (0 + g), its old values never read (core/tape.h: fresh gradients).
// VEC as normalize_kernel's (its shared coefficients: g, shift, mean, S_dy / m, inv_std S_dyxhat / m).
template <typename T, int ACT, int VEC>
static __global__ void dx_kernel(T *dx, const T *dy, const T *x, const float *gamma, const float *beta,
                                 const float *stats, const double *sums, float m, const float *m_on_device, int n,
                                 cg_fast_divisor channels, cg_fast_divisor hw, bool training, bool accumulate) {
    extern __shared__ float coef[]; // VEC = 8: five arrays of C
    if (m_on_device) m = *m_on_device;
    int C = (int)channels.divisor;
    if (VEC > 1) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float mean = stats[c], inv_std = stats[C + c], g = gamma[c] * inv_std;
            coef[c] = g, coef[C + c] = ACT != 0 ? beta[c] - mean * g : 0.0f, coef[2 * C + c] = mean;
            // (the divisions by m once per channel here, not per element: the same formula rounded differently)
            coef[3 * C + c] = training ? (float)sums[c] / m : 0.0f;
            coef[4 * C + c] = training ? inv_std * ((float)sums[C + c] / m) : 0.0f;
        }
        __syncthreads();
    }
    FLAT_LOOP(v, n / VEC) {
        int64_t i = v * VEC;
        int c0 = channel_of(i, hw, channels);
        float xv[VEC], dyv[VEC], out[VEC];
        load_vec<VEC>(xv, x + i);
        load_vec<VEC>(dyv, dy + i);
        gradient_start_vec<VEC>(out, dx + i, accumulate);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            int c = c0 + k;
            if (VEC > 1) {
                float g = coef[c], mean = coef[2 * C + c];
                float d = ACT != 0 ? bn_output_grad<ACT>(dyv[k], xv[k], g, coef[C + c]) : dyv[k];
                out[k] = out[k] + g * (d - coef[3 * C + c] - (xv[k] - mean) * coef[4 * C + c]); // 0s in evaluation
                continue;
            }
            float mean = stats[c], inv_std = stats[C + c], g = gamma[c] * inv_std;
            float d = ACT != 0 ? bn_output_grad<ACT>(dyv[k], xv[k], g, beta[c] - mean * g) : dyv[k];
            if (training) {
                float sum_dy = (float)sums[c], sum_dy_xhat = (float)sums[C + c];
                out[k] = out[k] + g * (d - sum_dy / m - (xv[k] - mean) * inv_std * sum_dy_xhat / m);
            } else {
                out[k] = out[k] + g * d;
            }
        }
        store_vec<VEC>(dx + i, out);
    }
}

// Blocks for the shared-coefficient kernels: each block fills its coefficients once, so no more
// blocks than the GPU runs at a time (about 8 per multiprocessor), each looping over many pieces.
static unsigned shared_blocks(int64_t pieces) {
    unsigned b = cg_blocks(pieces);
    return b < 1024 ? b : 1024;
}

// channels_last: the channel of element i is i mod C (HW taken as 1 in i / HW mod C).
template <typename T, int ACT = 0>
static void normalize(T *y, const T *x, const float *gamma, const float *beta, const float *stats, int64_t N, int64_t C,
                      int64_t HW, bool channels_last = false) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("batch_norm", n);
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make(channels_last ? 1u : (uint32_t)HW);
    if (channels_last && C <= CL_SHARED_CHANNELS && vec_width<T>(C, x, y) == 8) {
        normalize_kernel<T, ACT, 8><<<shared_blocks(n / 8), CG_THREADS, 2 * C * sizeof(float), cg_cuda_stream()>>>(
            y, x, gamma, beta, stats, (int)n, c, hw);
        CG_LAUNCH_CHECK();
    } else {
        LAUNCH((normalize_kernel<T, ACT, 1>), n, y, x, gamma, beta, stats, (int)n, c, hw);
    }
}

template <typename T, int ACT = 0>
static void input_gradient(T *dx, const T *dy, const T *x, const float *gamma, const float *beta, const float *stats,
                           const double *sums, float m, const float *m_on_device, int64_t N, int64_t C, int64_t HW,
                           bool training, bool channels_last = false, bool accumulate = true) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("batch_norm", n);
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make(channels_last ? 1u : (uint32_t)HW);
    if (channels_last && C <= CL_SHARED_CHANNELS && vec_width<T>(C, dx, dy, x) == 8) {
        dx_kernel<T, ACT, 8><<<shared_blocks(n / 8), CG_THREADS, 5 * C * sizeof(float), cg_cuda_stream()>>>(
            dx, dy, x, gamma, beta, stats, sums, m, m_on_device, (int)n, c, hw, training, accumulate);
        CG_LAUNCH_CHECK();
    } else {
        LAUNCH((dx_kernel<T, ACT, 1>), n, dx, dy, x, gamma, beta, stats, sums, m, m_on_device, (int)n, c, hw, training,
               accumulate);
    }
}

// ---- the table's rows ------------------------------------------------------------------------------
// Scratch buffers come from the caching allocator and go back to it once their last kernel is
// queued: the stream's order keeps them alive long enough (as conv.cu's).

// The forward and backward for f32 (T = float) and 16-bit (T = __half, __nv_bfloat16) tensors;
// ACT: an activation after the batch norm in the same passes (y its output, dy its output gradient).
template <typename T, int ACT = 0>
static void bn_forward(T *y, float *stats, float *running_mean, float *running_var, const T *x, const float *gamma,
                       const float *beta, int64_t N, int64_t C, int64_t HW, float eps, float momentum, bool training,
                       bool channels_last = false) {
    if (training) {
        int64_t S;
        float *partial = partial_sums<SUMS_OF_X, T>(&S, x, NULL, NULL, N, C, HW, channels_last);
        LAUNCH(batch_stats_kernel, 32 * C, stats, running_mean, running_var, partial, S, C, (double)(N * HW), eps, momentum);
        cg_cuda_free(partial);
    } else {
        LAUNCH(running_stats_kernel, C, stats, running_mean, running_var, C, eps);
    }
    normalize<T, ACT>(y, x, gamma, beta, stats, N, C, HW, channels_last);
}

template <typename T, int ACT = 0>
static void bn_backward(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *gamma,
                        const float *beta, const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                        bool channels_last = false, bool accumulate = true) {
    int64_t S;
    float *partial = partial_sums<SUMS_OF_DY, T, ACT>(&S, dy, x, stats, N, C, HW, channels_last, gamma, beta);
    double *totals = (double *)cg_cuda_alloc((size_t)(2 * C) * sizeof(double));
    LAUNCH(dy_sums_kernel, 32 * C, totals, dgamma, dbeta, partial, stats, S, C, false);
    if (dx)
        input_gradient<T, ACT>(dx, dy, x, gamma, beta, stats, totals, (float)(N * HW), NULL, N, C, HW, training,
                                channels_last, accumulate);
    cg_cuda_free(partial), cg_cuda_free(totals);
}

// The bias gradient of a convolution whose dy (N, PQ, K) is stored channels-last: dbias[k] =
// round(dbias[k] + the sum of column k), in f32 then f64 as batch norm's sums (conv_bias_grad_cl_cuda below).
template <typename T>
static __global__ void add_bias_grad_kernel(T *dbias, const float *partial, int64_t S, int64_t C) {
    CHANNEL_WARPS(c, lane, C) {
        double sum, unused;
        add_shares(&sum, &unused, partial, S, C, c, lane);
        if (lane == 0) dbias[c] = f2h<T>(h2f(dbias[c]) + (float)sum);
    }
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

static void batch_norm_act_backward_cuda(cg_dtype dtype, cg_activation act, void *dx, float *dgamma, float *dbeta,
                                         const void *dy, const void *x, const float *gamma, const float *beta,
                                         const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                                         bool channels_last, bool accumulate) {
    DISPATCH_ACT(act, DISPATCH_ANY(dtype, (bn_backward<T, ACT>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, gamma,
                                                               beta, stats, N, C, HW, training, channels_last,
                                                               accumulate))));
}

// The bias gradient of a convolution whose dy (N, PQ, K) is stored channels-last (amp.cu).
void conv_bias_grad_cl_cuda(cg_dtype dtype, void *dbias, const void *dy, int64_t N, int64_t K, int64_t PQ) {
    DISPATCH16(dtype, {
        int64_t S;
        float *partial = partial_sums<SUMS_OF_X, T>(&S, (const T *)dy, NULL, NULL, N, K, PQ, true);
        LAUNCH(add_bias_grad_kernel<T>, 32 * K, (T *)dbias, partial, S, K);
        cg_cuda_free(partial);
    });
}

static void batch_norm_sums_cuda(double *sums, const float *x, int64_t N, int64_t C, int64_t HW) {
    int64_t S;
    float *partial = partial_sums<SUMS_OF_X, float>(&S, x, NULL, NULL, N, C, HW);
    LAUNCH(x_sums_kernel, 32 * C, sums, partial, S, C, (double)(N * HW));
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
    LAUNCH(dy_sums_kernel, 32 * C, sums, NULL, NULL, partial, stats, S, C, true);
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
    k->batch_norm_sums = batch_norm_sums_cuda;
    k->batch_norm_stats_from_sums = batch_norm_stats_from_sums_cuda;
    k->batch_norm_forward_from_stats = batch_norm_forward_from_stats_cuda;
    k->batch_norm_backward_sums = batch_norm_backward_sums_cuda;
    k->batch_norm_backward_from_sums = batch_norm_backward_from_sums_cuda;
}

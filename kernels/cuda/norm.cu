// norm.cu: batch normalisation on the GPU and the steps of its synchronised form (core/dist sums
// the per-channel sums over the ranks in between). CPU twin: kernels/cpu/norm.c.
//
// Every per-channel sum is taken in two launches, so that the whole GPU works on it and the
// result is the same on every run:
//   1. channel_partial_sums: a grid of C x S blocks; block (c, s) sums channel c over its share
//      of the images (a contiguous run of about N / S of them), in f32, and writes its two sums
//      to partial[s][which][c]. S is chosen so that there are a few thousand blocks: one block per
//      channel (the first version of this file) left most of the GPU idle at 64 channels and
//      took most of a small CIFAR network's step.
//   2. a per-channel kernel adds the S partials in f64 and turns them into what the caller wants
//      (mean and inverse std, the gradients of gamma and beta, the sums to reduce): a block of
//      32 x 32 threads per 32 channels, each thread over a few shares, then a fixed tree (the
//      same bits every run). One thread, then one warp, per channel walking all S shares took a
//      third of the fast network's step, then 6 to 17 us a call.
// The elementwise passes (normalise, dx) run over the flat tensor, one thread per element, with
// the channel of element i, i / HW mod C, found by two multiply-highs (fast_divide.h).
// A ReLU or GELU that follows the batch norm may run in the same passes (the batch_norm_act rows:
// its input computed from x in registers, never stored), and a residual z added before a ReLU in
// the normalising pass (the batch_norm_add_relu row: the end of a ResNet basic block).
// 16-bit tensors may be stored channels-last (N, HW, C) (core/tensor.h). With C a multiple of 8
// every pass there runs on one launch shape (channels-last passes, below): a thread owns 8
// neighbouring channels (one 16-byte piece of a pixel) and walks pixels, so that its channels'
// coefficients live in its registers, loaded once. Other channel counts take a kernel of 32
// channels per block for step 1 and the flat passes with 1 for HW (the channel of element i is i mod C).
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

// partial[(2 s + 0 / 1) C + c] = the two sums of channel c over images [s N / S, (s + 1) N / S)
// (share s's C first sums, then its C second sums: step 2 reads them 32 channels at a time).
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
        partial[(int64_t)s * 2 * C + c] = total;
        partial[((int64_t)s * 2 + 1) * C + c] = total2;
    }
}

// Channels-last with C not a multiple of 8: block (g, s) sums channels [32 g, 32 g + 32) over
// rows [s R / S, (s + 1) R / S) of the (R = N HW) x C matrix. Thread (tx, ty) takes channel
// 32 g + tx and rows ty, ty + 8, ...: the 32 lanes of a warp read 32 neighbouring values of one
// row. The 8 row sums of each channel are then added in shared memory, in order.
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
        partial[(int64_t)s * 2 * C + c] = total;
        partial[((int64_t)s * 2 + 1) * C + c] = total2;
    }
}

// ---- channels-last passes: 8 channels per thread -------------------------------------------------
// For 16-bit tensors stored channels-last with C a multiple of 8 and 16-byte aligned (vec_width):
// the R = N HW rows (pixels) split into S contiguous shares and the channels into groups of 8 GX;
// thread (tx, ty) of block (g, s) owns channels c0 = 8 (GX g + tx) .. c0 + 7 and walks rows ty,
// ty + GY, ... of share s. A warp reads whole 16-byte pieces of neighbouring channels (GX pieces
// of a row, then the next rows), and since a thread's channels never change, their coefficients
// (gamma, the statistics, the sums) are loaded once into its registers. (An earlier version walked
// the flat tensor with a grid-stride loop, so each piece could be any channel: it read the
// coefficients from shared memory for every piece.)
// Those registers leave room for 2 or 3 blocks per multiprocessor, so each thread keeps several
// rows' loads in flight (cl8_rows), and the grid is one wave of blocks: an H100 profile of the
// first version (one row at a time, 512 or 1,024 blocks) showed a third of the memory's bandwidth
// used, the kernels waiting on loads, and a second wave of a few blocks at the end.
struct cl8_shape {
    dim3 grid, block;
};
enum { CL8_BATCH = 4 }; // rows loaded at once per thread (cl8_rows)
// As many blocks of `kernel` as the GPU runs at once, fewer where a thread would walk less than a
// batch of rows: small tensors (ResNet's and the fast network's last layers).
template <typename Kernel> static cl8_shape cl8_shape_make(Kernel kernel, int64_t C, int64_t rows) {
    int64_t octets = C / 8, gx = octets < 32 ? octets : 32, gy = CG_THREADS / gx;
    int dev = 0, sms = 0, per_sm = 0;
    CG_CUDA_CHECK(cudaGetDevice(&dev));
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CG_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, (int)(gx * gy), 0));
    int64_t blocks = (int64_t)sms * (per_sm > 0 ? per_sm : 1);
    int64_t groups = (octets + gx - 1) / gx, S = blocks / groups;
    if (S > rows / (CL8_BATCH * gy)) S = rows / (CL8_BATCH * gy);
    if (S < 1) S = 1;
    return {dim3((unsigned)groups, (unsigned)S), dim3((unsigned)gx, (unsigned)gy)};
}
// This thread's first channel (c0 >= C: a thread past the last group's channels, with nothing to do).
#define CL8_FIRST_CHANNEL() (8 * (int)(blockIdx.x * blockDim.x + threadIdx.x))

// This thread's rows of its block's share of the R rows, CL8_BATCH at a time: load(b, r) for
// every row r of the batch (b = 0, 1, ...), then use(b, r) for each, so that the batch's loads are
// all in flight before the first is needed. The 16 bytes of a row stay raw (uint4, four registers)
// between the two: widened to f32 when used.
template <typename Load, typename Use> static __device__ __forceinline__ void cl8_rows(int R, Load load, Use use) {
    int step = (int)blockDim.y, end = (int)((int64_t)(blockIdx.y + 1) * R / gridDim.y);
    for (int r = (int)((int64_t)blockIdx.y * R / gridDim.y) + (int)threadIdx.y; r < end; r += CL8_BATCH * step) {
#pragma unroll
        for (int b = 0; b < CL8_BATCH; b++)
            if (r + b * step < end) load(b, r + b * step);
#pragma unroll
        for (int b = 0; b < CL8_BATCH; b++)
            if (r + b * step < end) use(b, r + b * step);
    }
}
// Row r's 8 values from channel c0, raw; widened; rounded back (16-bit T only).
template <typename T> static __device__ __forceinline__ uint4 piece_load(const T *p, int r, int C, int c0) {
    static_assert(sizeof(T) == 2, "8 values of 16 bits: 16 bytes");
    return *(const uint4 *)(p + (int64_t)r * C + c0);
}
template <typename T> static __device__ __forceinline__ void piece_widen(float *v, uint4 raw) {
    const T *h = (const T *)&raw;
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = h2f(h[k]);
}

// Step 1: partial[(2 s + 0 / 1) C + c] = the two sums of channel c over share s. Each thread sums
// its rows; then the GY sums of each channel are added in shared memory, in order of ty.
template <int what, int ACT, typename T>
static __global__ void channel_partial_sums_cl8(float *partial, const T *a, const T *x, const float *stats,
                                               const float *gamma, const float *beta, int rows, int C) {
    __shared__ float sums[2][CG_THREADS * 8]; // [which][ty (8 GX) + 8 tx + k]
    int GX = blockDim.x, GY = blockDim.y, width = 8 * GX, c0 = CL8_FIRST_CHANNEL();
    float sum[8] = {}, sum2[8] = {};
    if (c0 < C) {
        float mean[8], scale[8], shift[8];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            mean[k] = what != SUMS_OF_X ? stats[c0 + k] : 0.0f;
            scale[k] = ACT != 0 && what != SUMS_OF_X ? gamma[c0 + k] * stats[C + c0 + k] : 0.0f;
            shift[k] = ACT != 0 && what != SUMS_OF_X ? beta[c0 + k] - mean[k] * scale[k] : 0.0f;
        }
        uint4 raw_a[CL8_BATCH], raw_x[CL8_BATCH];
        cl8_rows(
            rows,
            [&](int b, int r) {
                raw_a[b] = piece_load(a, r, C, c0);
                if (what != SUMS_OF_X) raw_x[b] = piece_load(x, r, C, c0);
            },
            [&](int b, int r) {
                float v[8], xv[8];
                piece_widen<T>(v, raw_a[b]);
                if (what != SUMS_OF_X) piece_widen<T>(xv, raw_x[b]);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    float w = what != SUMS_OF_X ? bn_output_grad<ACT>(v[k], xv[k], scale[k], shift[k]) : v[k];
                    sum[k] += w;
                    sum2[k] += what == SUMS_OF_X ? w * w : w * (xv[k] - mean[k]);
                }
            });
    }
    int slot = threadIdx.y * width + 8 * threadIdx.x;
#pragma unroll
    for (int k = 0; k < 8; k++) sums[0][slot + k] = sum[k], sums[1][slot + k] = sum2[k];
    __syncthreads();
    // One thread per (which, channel) of the block adds its GY values: consecutive threads read
    // consecutive channels (no two in one bank).
    for (int t = threadIdx.y * GX + threadIdx.x; t < 2 * width; t += GX * GY) {
        int which = t / width, j = t - which * width, c = 8 * (int)blockIdx.x * GX + j;
        if (c >= C) continue;
        float total = 0.0f;
        for (int y = 0; y < GY; y++) total += sums[which][y * width + j];
        partial[((int64_t)blockIdx.y * 2 + which) * C + c] = total;
    }
}

// A new device buffer (caching allocator) with step 1's partial sums of `what`; *shares = S.
// channels_last: a and x stored (N, HW, C).
template <int what, typename T, int ACT = 0>
static float *partial_sums(int64_t *shares, const T *a, const T *x, const float *stats, int64_t N, int64_t C,
                           int64_t HW, bool channels_last = false, const float *gamma = NULL,
                           const float *beta = NULL) {
    cg_cuda_check_int32("batch_norm", N * C * HW);
    if constexpr (sizeof(T) == 2)
        if (channels_last && vec_width<T>(C, a, x) == 8) { // one wave of blocks
            cl8_shape shape = cl8_shape_make(channel_partial_sums_cl8<what, ACT, T>, C, N * HW);
            *shares = shape.grid.y;
            float *partial = (float *)cg_cuda_alloc((size_t)(*shares * C * 2) * sizeof(float));
            channel_partial_sums_cl8<what, ACT, T><<<shape.grid, shape.block, 0, cg_cuda_stream()>>>(
                partial, a, x, stats, gamma, beta, (int)(N * HW), (int)C);
            CG_LAUNCH_CHECK();
            return partial;
        }
    int64_t S;
    float *partial;
    if (!channels_last) {
        S = image_shares(N, C, HW);
        partial = (float *)cg_cuda_alloc((size_t)(S * C * 2) * sizeof(float));
        channel_partial_sums<what, ACT, T><<<dim3((unsigned)C, (unsigned)S), CG_THREADS, 0, cg_cuda_stream()>>>(
            partial, a, x, stats, gamma, beta, (int)N, (int)C, (int)HW);
    } else { // channels-last, C not a multiple of 8: about a thousand blocks, each over >= 512 rows
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

// Step 2 runs one block of 32 x 32 threads per 32 channels (CHANNEL_TOTALS_LAUNCH): thread
// (tx, ty) adds shares ty, ty + 32, ... of channel 32 g + tx in f64 (a warp reads 32 neighbouring
// floats of partial, one 128-byte line), then the 32 sums of each channel are added in a fixed
// tree in shared memory (the same bits every run). Returns the channel to thread (tx, 0), which
// gets the totals, and -1 to every other thread; every thread of the block must call it. (One warp
// per channel, lanes reading shares 2C floats apart, took 6 to 17 us a call on an H100: a chain of
// dependent loads with most of the GPU idle.)
enum { TOTALS_ROWS = 32 };
static __device__ int64_t channel_totals(double *sum, double *sum2, const float *partial, int64_t S, int64_t C) {
    __shared__ double t[2][TOTALS_ROWS][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t c = (int64_t)blockIdx.x * 32 + tx;
    double a = 0.0, b = 0.0;
    if (c < C) {
#pragma unroll 4
        for (int64_t s = ty; s < S; s += TOTALS_ROWS) {
            a += partial[s * 2 * C + c];
            b += partial[(s * 2 + 1) * C + c];
        }
    }
    t[0][ty][tx] = a, t[1][ty][tx] = b;
    __syncthreads();
    for (int half = TOTALS_ROWS / 2; half > 0; half /= 2) {
        if (ty < half) t[0][ty][tx] += t[0][ty + half][tx], t[1][ty][tx] += t[1][ty + half][tx];
        __syncthreads();
    }
    if (ty != 0 || c >= C) return -1;
    *sum = t[0][0][tx], *sum2 = t[1][0][tx];
    return c;
}
#define CHANNEL_TOTALS_LAUNCH(kernel, C, ...)                                                               \
    do {                                                                                                    \
        kernel<<<(unsigned)(((C) + 31) / 32), dim3(32, TOTALS_ROWS), 0, cg_cuda_stream()>>>(__VA_ARGS__);  \
        CG_LAUNCH_CHECK();                                                                                  \
    } while (0)

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

template <typename T, int ACT = 0>
static void bn_backward(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *gamma,
                        const float *beta, const float *stats, int64_t N, int64_t C, int64_t HW, bool training,
                        bool channels_last = false, bool accumulate = true) {
    int64_t S;
    float *partial = partial_sums<SUMS_OF_DY, T, ACT>(&S, dy, x, stats, N, C, HW, channels_last, gamma, beta);
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

// The bias gradient of a convolution whose dy (N, PQ, K) is stored channels-last (amp.cu).
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
    k->batch_norm_sums = batch_norm_sums_cuda;
    k->batch_norm_stats_from_sums = batch_norm_stats_from_sums_cuda;
    k->batch_norm_forward_from_stats = batch_norm_forward_from_stats_cuda;
    k->batch_norm_backward_sums = batch_norm_backward_sums_cuda;
    k->batch_norm_backward_from_sums = batch_norm_backward_from_sums_cuda;
}

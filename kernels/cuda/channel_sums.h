// channel_sums.h: per-channel sums of a tensor on the GPU, deterministic, for the batch norm
// (norm.cu: its statistics, its backward's sums) and a convolution's bias gradient. Private to
// norm.cu, which includes it once (static templates).
//
// Every per-channel sum is taken in two launches, so that the whole GPU works on it and the
// result is the same on every run:
//   1. the partial sums (partial_sums below): a grid of C x S blocks; block (c, s) sums channel c
//      over its share of the images (a contiguous run of about N / S of them), in f32, and writes
//      its two sums to partial[s][which][c]. S is chosen so that there are a few thousand blocks:
//      one block per channel (the first version) left most of the GPU idle at 64 channels and took
//      most of a small CIFAR network's step.
//   2. a per-channel kernel of the caller's adds the S partials in f64 (channel_totals below) and
//      turns them into what the caller wants (mean and inverse std, the gradients of gamma and
//      beta, the sums to reduce): a block of 32 x 32 threads per 32 channels, each thread over a
//      few shares, then a fixed tree (the same bits every run). One thread, then one warp, per
//      channel walking all S shares took a third of the fast network's step, then 6 to 17 us a call.
// Channels-last 16-bit tensors with C a multiple of 8 take the "cl8" launch shape (a thread owns 8
// channels and walks pixels), which norm.cu's elementwise passes use too; other channel counts a
// kernel of 32 channels per block. The backward's sums may see dy through an activation that
// follows the batch norm (act_value, bn_output_grad).
#ifndef CG_KERNELS_CUDA_CHANNEL_SUMS_H
#define CG_KERNELS_CUDA_CHANNEL_SUMS_H

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
// RELU_Y (the end of a basic block, SUMS_OF_DY): a is the gradient of a ReLU's output y, and the
// summed dy is ReLU's gradient g = dy where y > 0 (+0 elsewhere, relu_backward_h's values), which
// this pass also writes to g: one pass over dy, y and x instead of ReLU's (dy, y -> g) and then the
// sums' (g, x). The sums are the same, added in the same order (same launch shape).
template <int what, int ACT, typename T, bool RELU_Y = false>
static __global__ void channel_partial_sums_cl8(float *partial, const T *a, const T *x, const float *stats,
                                               const float *gamma, const float *beta, int rows, int C,
                                               const T *y = nullptr, T *g = nullptr) {
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
        uint4 raw_a[CL8_BATCH], raw_x[CL8_BATCH], raw_y[RELU_Y ? CL8_BATCH : 1];
        cl8_rows(
            rows,
            [&](int b, int r) {
                raw_a[b] = piece_load(a, r, C, c0);
                if (what != SUMS_OF_X) raw_x[b] = piece_load(x, r, C, c0);
                if constexpr (RELU_Y) raw_y[b] = piece_load(y, r, C, c0);
            },
            [&](int b, int r) {
                float v[8], xv[8];
                piece_widen<T>(v, raw_a[b]);
                if (what != SUMS_OF_X) piece_widen<T>(xv, raw_x[b]);
                if constexpr (RELU_Y) {
                    float yv[8];
                    piece_widen<T>(yv, raw_y[b]);
#pragma unroll
                    for (int k = 0; k < 8; k++) v[k] = yv[k] > 0.0f ? 0.0f + v[k] : 0.0f; // (-0 gives +0)
                    store_vec<8>(g + (int64_t)r * C + c0, v); // exact: 16-bit values
                }
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

#endif

// conv_direct.cu: convolutions whose input has few channels (a network's first layer: 1 or 3
// colour planes, NCHW), computed directly instead of through cuDNN. cuDNN's Tensor Core engines
// want NHWC with the channels padded to multiples of 8, so an RGB image would first be copied with
// 5 of its 8 channels zeros, and its engines for such a thin layer use little of the GPU (lesson
// 08). The forward (16 bits, x NCHW -> y channels-last) and the weight gradient (f32 or 16 bits, dy
// channels-last or NCHW; a second kernel for 3 x 3 filters and 16-bit channels-last dy). The input
// gradient of a first layer is not needed (the images need none), and other shapes return false:
// the caller goes to cuDNN, as do the shapes where cuDNN is faster (cudnn_wins: ResNet-18's
// stem). CPU twin: the convolutions of kernels/cpu/conv.c and kernels/cpu/amp.c.
#include "kernels/cuda/cuda.h"

#include <stdlib.h>
#include <string.h>

enum { DIRECT_MAX_CHANNELS = 4, DIRECT_MAX_WEIGHTS = 4096 };

// ---- forward ---------------------------------------------------------------------------------------
// From NCHW x straight to channels-last y: each thread takes PIX output pixels and 8 G output channels at
// a time, adds its C R S taps times their weights (all the weights in shared memory, as f32) to the
// bias in f32, and stores the sums rounded once. cuDNN's Tensor Core engines need the input
// copied to NHWC with its channels padded to 8 first (5 of 8 channels zeros for an RGB image);
// for the fast network's 2 x 2 whitening layer the engine cuDNN chose and that copy took 0.217 ms
// a step on an H100, this kernel 0.106 ms, and 0.029 ms once unrolled (RS below; lesson 08).
// ResNet-18's 3 x 3 stem (3 -> 64 channels, 9 times the work per pixel) still took 0.27 ms a step
// at batch 512 with one group of 8 channels per thread (G = 1) and a warp's 32 threads spread
// over 4 pixels and 8 groups: each tap's x value was loaded for 8 FMAs, and the warp's weight
// loads hit 8 addresses. Now the warp's threads take 32 neighbouring pixels and one group: their
// x loads are coalesced, their weight loads one broadcast address, and each x value serves 8 G FMAs.
// RS: the kernel's side when it is 2 or 3 (R = S = RS known at compile time, so that the loops over
// the taps unroll and every tap's load of x can be issued before the first is used), 0 for any R, S.
// G: groups of 8 output channels per thread (K a multiple of 8 G), so 8 G sums in registers.
// PIX: pixels per thread, 32 apart (a warp takes 32 PIX neighbouring pixels): each weight loaded
// from shared memory serves PIX FMAs. With one pixel a thread (105 us for ResNet-18's stem at
// batch 512 on an H100, profiled) a tap's eight 16-byte weight loads fed 32 FMAs, and shared
// memory answers one such load a cycle where the multiprocessor does four warp FMAs: the loads
// set the pace. Each pixel's sums are taken in the same order whatever PIX: the same bits.
template <typename T, int RS, int G, int PIX>
static __global__ void conv_few_channels_kernel(T *y, const T *x, const T *w, const T *bias, int C, int H, int W,
                                                int K, int R, int S, int stride, int pad, int pixels,
                                                cg_fast_divisor pq, cg_fast_divisor q) {
    extern __shared__ float ws[]; // ws[tap K + k] = w[k][tap], tap = (c R + r) S + s
    if (RS != 0) R = RS, S = RS;
    int taps = C * R * S, P = (int)pq.divisor / (int)q.divisor, Q = (int)q.divisor;
    for (int i = threadIdx.x; i < taps * K; i += blockDim.x) {
        int k = i / taps, tap = i - k * taps;
        ws[tap * K + k] = h2f(w[i]);
    }
    __syncthreads();
    int lane = threadIdx.x % 32, warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) / 32);
    int warps = (int)(gridDim.x * blockDim.x / 32);
    for (int base = warp * 32 * PIX; base < pixels; base += warps * 32 * PIX) {
        int pixel[PIX], m[PIX], p[PIX], col[PIX];
#pragma unroll
        for (int j = 0; j < PIX; j++) {
            pixel[j] = base + 32 * j + lane;
            int in = pixel[j] < pixels ? pixel[j] : pixels - 1; // a pixel past the end computes, stores nothing
            m[j] = (int)cg_fast_divide((uint32_t)in, pq);
            int pos = in - m[j] * P * Q;
            p[j] = (int)cg_fast_divide((uint32_t)pos, q), col[j] = pos - p[j] * Q;
        }
        for (int k0 = 0; k0 < K; k0 += 8 * G) {
            float acc[PIX][8 * G];
#pragma unroll
            for (int l = 0; l < 8 * G; l++) {
                float b = bias ? h2f(bias[k0 + l]) : 0.0f;
#pragma unroll
                for (int j = 0; j < PIX; j++) acc[j][l] = b;
            }
            for (int c = 0; c < C; c++) {
#pragma unroll
                for (int r = 0; r < (RS != 0 ? RS : R); r++) {
#pragma unroll
                    for (int s = 0; s < (RS != 0 ? RS : S); s++) {
                        // A tap outside the image adds 0 (the padding): its load is skipped, not its FMAs.
                        float xv[PIX];
#pragma unroll
                        for (int j = 0; j < PIX; j++) {
                            int h = p[j] * stride + r - pad, wc = col[j] * stride + s - pad;
                            xv[j] = h >= 0 && h < H && wc >= 0 && wc < W
                                        ? h2f(x[((int64_t)m[j] * C + c) * H * W + h * W + wc])
                                        : 0.0f;
                        }
                        // The tap's weights in 16-byte loads (K and k0 multiples of 8: aligned), not
                        // 4-byte ones: shared memory serves a warp's load per instruction.
                        const float4 *wk = (const float4 *)(ws + ((c * R + r) * S + s) * K + k0);
#pragma unroll
                        for (int l = 0; l < 2 * G; l++) {
                            float4 w4 = wk[l];
#pragma unroll
                            for (int j = 0; j < PIX; j++) {
                                acc[j][4 * l] += xv[j] * w4.x, acc[j][4 * l + 1] += xv[j] * w4.y;
                                acc[j][4 * l + 2] += xv[j] * w4.z, acc[j][4 * l + 3] += xv[j] * w4.w;
                            }
                        }
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < PIX; j++)
                if (pixel[j] < pixels)
#pragma unroll
                    for (int l = 0; l < G; l++) store_vec<8>(y + (int64_t)pixel[j] * K + k0 + 8 * l, acc[j] + 8 * l);
        }
    }
}

// Where cuDNN wins: a 16-bit first layer with 64 or more filters of 3 x 3 or larger runs faster on
// cuDNN's Tensor Core engines, its input copied NHWC with the channels padded to 8, than in these
// kernels. ResNet-18's stem (3 -> 64, 3 x 3, batch 512, bf16, an H100): forward 98.6 us here
// against 79.2 us, weight gradient 158.6 against 95.4 (the copies into cuDNN's layout not counted).
// The fast network's whitening layer (3 -> 24, 2 x 2: 37.5 against 72.8 us forward) and the
// tutorial CNN's first layer (1 -> 32, 3 x 3, batch 128: 8.2 / 11.8 against 17.7 / 28.1 us) stay here.
// CGRAD_FIRST_LAYER=direct or =cudnn in the environment sends every 16-bit first layer one way (to
// compare: bench/first_layer.c, test_cuda_amp); read at each call, nanoseconds beside a convolution.
static bool cudnn_wins(cg_dtype dtype, int64_t K, int64_t R, int64_t S) {
#ifdef CG_HAVE_CUDNN
    if (dtype == CG_F32) return false;
    const char *way = getenv("CGRAD_FIRST_LAYER");
    if (way && strcmp(way, "direct") == 0) return false;
    if (way && strcmp(way, "cudnn") == 0) return true;
    return K >= 64 && R * S >= 9;
#else
    return false;
#endif
}

extern "C" bool conv_direct_forward(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                                    int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                    int64_t pad, int64_t P, int64_t Q) {
    if (cudnn_wins(dtype, K, R, S)) return false;
    if (C > DIRECT_MAX_CHANNELS || K % 8 != 0 || C * R * S * K > DIRECT_MAX_WEIGHTS || ((uintptr_t)y & 15) != 0)
        return false;
    {
        int64_t pixels = N * P * Q;
        cg_cuda_check_int32("conv2d", pixels * K);
        cg_cuda_check_int32("conv2d", N * C * H * W);
        // PIX pixels a thread; blocks of 128 threads: the 3 x 3 kernel with 32 channels a thread takes
        // about 150 registers, so that three such blocks fit on a multiprocessor where one of 256 did.
        enum { PIX = 2, THREADS = 128 };
        int64_t groups = (pixels + PIX * THREADS - 1) / (PIX * THREADS);
        unsigned blocks = groups < 8192 ? (unsigned)groups : 8192;
        size_t shared = (size_t)(C * R * S * K) * sizeof(float);
        cg_fast_divisor pq = cg_fast_divisor_make((uint32_t)(P * Q)), q = cg_fast_divisor_make((uint32_t)Q);
        // G: as many of the output channels per thread as divide K, up to 32 of them (64 took 140
        // registers for a 3 x 3 kernel, or spilled under 128)
        int octets = (int)(K / 8), G = octets % 4 == 0 ? 4 : octets % 3 == 0 ? 3 : 1;
#define FEW_CHANNELS(RS, G)                                                                                          \
    conv_few_channels_kernel<T, RS, G, PIX><<<blocks, THREADS, shared, cg_cuda_stream()>>>(                          \
        (T *)y, (const T *)x, (const T *)w, (const T *)bias, (int)C, (int)H, (int)W, (int)K, (int)R, (int)S,          \
        (int)stride, (int)pad, (int)pixels, pq, q)
#define FEW_CHANNELS_G(RS)        \
    do {                          \
        if (G == 4)               \
            FEW_CHANNELS(RS, 4);  \
        else if (G == 3)          \
            FEW_CHANNELS(RS, 3);  \
        else                      \
            FEW_CHANNELS(RS, 1);  \
    } while (0)
        DISPATCH16(dtype, {
            if (R == 2 && S == 2)
                FEW_CHANNELS_G(2); // the fast network's whitening layer (24 channels: G = 3)
            else if (R == 3 && S == 3)
                FEW_CHANNELS_G(3); // the tutorial CNN's first layer (32 channels: G = 4)
            else
                FEW_CHANNELS_G(0);
            CG_LAUNCH_CHECK();
        });
#undef FEW_CHANNELS_G
#undef FEW_CHANNELS
        return true;
    }
}

// ---- weight gradient -------------------------------------------------------------------------------
// dw[k][tap] += the sum over every output pixel (n, p, q) of dy(n, k, p, q) x(n, tap at (p, q)),
// tap = (c R + r) S + s: per pixel, the outer product of the K values of dy and the C R S values of
// x under the filter (its im2col row), added up over the N P Q pixels. cuDNN's engines for this
// small result from a long reduction ran on 14 to 56 blocks in 16 bits (ResNet-18's stem: 0.18 ms
// a step with the NHWC copies, H100 profile) and, in FP32, an engine that Nsight Compute timed at
// 428 us a launch for the tutorial's first layer (35 us here; the real step gained 2 to 3 %, the
// profiler inflating that engine: lesson 08).
// Step 1: block b takes its share of the pixels, WGRAD_TILE at a time: it writes their im2col rows and
// their dy values into shared memory (f32), then each thread adds, for every pixel of its set,
// the products of 2 neighbouring output channels and 4 neighbouring taps (one 8-byte and one
// 16-byte shared load for 8 FMAs) into 8 registers. A "job" is one such 2 x 4 piece of dw; when
// there are fewer jobs than threads, the threads split the tile's pixels into sets, and the sets'
// sums are added in shared memory, in order. The block writes partial[b][job][8].
// Step 2: one warp per value of dw adds the B partials (each lane a stride of them, then a fixed
// tree of shuffles: the same bits every run) and adds the total to dw, rounded once.
enum { WGRAD_TILE = 32 };
template <typename T, bool DY_CL>
static __global__ void wgrad_partial_kernel(float *partial, const T *x, const T *dy, int C, int H, int W, int K,
                                            int R, int S, int stride, int pad, int pixels, int taps4, int jobs,
                                            cg_fast_divisor pq, cg_fast_divisor q, cg_fast_divisor rs,
                                            cg_fast_divisor s_div) {
    extern __shared__ float sm[]; // sx[WGRAD_TILE][taps4], then sdy[WGRAD_TILE][K]
    float *sx = sm, *sdy = sm + WGRAD_TILE * taps4;
    int taps = C * (int)rs.divisor, PQ = (int)pq.divisor, Q = (int)q.divisor;
    int t = threadIdx.x, job = t % jobs, set = t / jobs, sets = blockDim.x / jobs;
    int kp = job % (K / 2), tg = job / (K / 2); // channels 2 kp, 2 kp + 1; taps 4 tg .. 4 tg + 3
    float acc[8] = {};
    int begin = (int)((int64_t)blockIdx.x * pixels / gridDim.x);
    int end = (int)((int64_t)(blockIdx.x + 1) * pixels / gridDim.x);
    for (int base = begin; base < end; base += WGRAD_TILE) {
        int count = min(WGRAD_TILE, end - base);
        __syncthreads(); // the last tile's values are no longer read
        // The tile's im2col rows: entry (tap, pixel), pixels fastest so that a warp reads along a row of x.
        for (int i = t; i < taps4 * WGRAD_TILE; i += blockDim.x) {
            int tap = i / WGRAD_TILE, j = i % WGRAD_TILE;
            float v = 0.0f;
            if (j < count && tap < taps) {
                int pixel = base + j, m = (int)cg_fast_divide((uint32_t)pixel, pq), pos = pixel - m * PQ;
                int p = (int)cg_fast_divide((uint32_t)pos, q), col = pos - p * Q;
                int c = (int)cg_fast_divide((uint32_t)tap, rs), rest = tap - c * (int)rs.divisor;
                int r = (int)cg_fast_divide((uint32_t)rest, s_div), s = rest - r * (int)s_div.divisor;
                int h = p * stride + r - pad, w = col * stride + s - pad;
                if (h >= 0 && h < H && w >= 0 && w < W) v = h2f(x[((int64_t)(m * C + c) * H + h) * W + w]);
            }
            sx[j * taps4 + tap] = v;
        }
        // The tile's dy: channels-last, a contiguous run of count K values; NCHW, pixels fastest.
        for (int i = t; i < K * WGRAD_TILE; i += blockDim.x) {
            int k, j;
            if (DY_CL)
                j = i / K, k = i - j * K;
            else
                k = i / WGRAD_TILE, j = i % WGRAD_TILE;
            float v = 0.0f;
            if (j < count) {
                int pixel = base + j;
                if (DY_CL) {
                    v = h2f(dy[(int64_t)pixel * K + k]);
                } else {
                    int m = (int)cg_fast_divide((uint32_t)pixel, pq), pos = pixel - m * PQ;
                    v = h2f(dy[((int64_t)m * K + k) * PQ + pos]);
                }
            }
            sdy[j * K + k] = v;
        }
        __syncthreads();
        if (set < sets)
            for (int j = set; j < count; j += sets) {
                float2 d = *(const float2 *)(sdy + j * K + 2 * kp);
                float4 v = *(const float4 *)(sx + j * taps4 + 4 * tg);
                acc[0] += d.x * v.x, acc[1] += d.x * v.y, acc[2] += d.x * v.z, acc[3] += d.x * v.w;
                acc[4] += d.y * v.x, acc[5] += d.y * v.y, acc[6] += d.y * v.z, acc[7] += d.y * v.w;
            }
    }
    // The sets' sums, added in shared memory in the order of the sets.
    __syncthreads();
    if (set < sets)
        for (int e = 0; e < 8; e++) sm[(set * jobs + job) * 8 + e] = acc[e];
    __syncthreads();
    for (int o = t; o < jobs * 8; o += blockDim.x) {
        float total = 0.0f;
        for (int k = 0; k < sets; k++) total += sm[k * jobs * 8 + o];
        partial[(int64_t)blockIdx.x * jobs * 8 + o] = total;
    }
}

template <typename T>
static __global__ void wgrad_total_kernel(T *dw, const float *partial, int blocks, int jobs, int K, int taps) {
    int o = blockIdx.x, lane = threadIdx.x; // value o of the partials: job o / 8, element o % 8
    float sum = 0.0f;
    for (int b = lane; b < blocks; b += 32) sum += partial[(int64_t)b * jobs * 8 + o];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane != 0) return;
    int job = o / 8, e = o % 8, kp = job % (K / 2), tg = job / (K / 2);
    int k = 2 * kp + e / 4, tap = 4 * tg + e % 4;
    if (tap < taps) dw[k * taps + tap] = f2h<T>(h2f(dw[k * taps + tap]) + sum);
}

// The same weight gradient when dy is channels-last in 16 bits and the filter is 3 x 3 with K / 8 a
// divisor of 32. It was written for ResNet-18's stem under autocast (3 -> 64 channels, 3 x 3,
// 524,288 pixels at batch 512), which cuDNN now takes (cudnn_wins): the figures below are its.
// The kernel above spends its time on shared memory: it builds im2col tiles there and reads two
// operands for every 8 FMAs (254 us a step on an H100, profiled, for 1.8 GFLOP); a
// version that kept whole images in shared memory and read two operands for 16 FMAs still took
// 200 us. Here a lane keeps 8 output channels x the 9 taps of one input channel, 72 sums, in
// registers. For each pixel it loads its 8 values of dy from global memory (one 16-byte load; a
// warp's lanes read K / 8 such pieces for each of 32 / (K / 8) neighbouring pixels: one contiguous
// run) and the pixel's 9 inputs from the image in shared memory (padded with zeros: a tap outside
// the image reads 0), then does 72 FMAs: 9 shared loads for 72 FMAs. What sets the pace is the
// wait for dy: with 160 registers a thread, one block of 12 warps fits on a multiprocessor, three
// warps a scheduler, too few to hide a load from memory behind the others' FMAs. So the loads
// are issued AHEAD pixels before their use: one or two ahead, 168 us (ncu's warp states: 4.2 of
// 7.7 cycles between two instructions waiting on global loads); four ahead, 161 us (H100,
// ResNet-18's stem at batch 512). Warp w takes input channel w mod C and every (warps / C)-th
// group of pixels of the image; block b takes images b, b + B, ... At the end the lanes of a warp
// that hold the same channels add their sums by a butterfly of shuffles (a + b = b + a: every lane
// ends with the same bits), the warps of an input channel add theirs in shared memory in warp
// order, and the block writes partial[value][b] for wgrad_blocks_total_kernel. Sums in f32; the
// same bits every run.
enum { LANES_WARPS = 12, LANES_SHARED_MAX = 12 * 1024, AHEAD = 4 };
template <typename T>
static __global__ void __launch_bounds__(32 * LANES_WARPS)
    wgrad_lanes_kernel(float *partial, const T *x, const T *dy, int N, int C, int H, int W, int K, int stride, int pad,
                       int P, int Q, cg_fast_divisor q_div) {
    extern __shared__ float sm[];
    int Hp = H + 2 * pad, Wp = W + 2 * pad, PQ = P * Q, t = threadIdx.x;
    int kg = K / 8, lane = t % 32, warp = t / 32, c = warp % C, group = warp / C, groups = LANES_WARPS / C;
    int kgroup = lane % kg, slot = lane / kg, step = groups * (32 / kg); // LANES_WARPS a multiple of C (C <= 4)
    float acc[8][9];
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 9; e++) acc[j][e] = 0.0f;
    for (int i = t; i < C * Hp * Wp; i += blockDim.x) sm[i] = 0.0f; // the padding stays zero
    for (int n = blockIdx.x; n < N; n += gridDim.x) {
        __syncthreads(); // the zeros are written, or the last image is no longer read
        for (int i = t; i < C * H * W; i += blockDim.x) {
            int ci = i / (H * W), h = i / W % H, w = i % W;
            sm[(ci * Hp + h + pad) * Wp + w + pad] = h2f(x[(int64_t)n * C * H * W + i]);
        }
        __syncthreads();
        const T *dyn = dy + (int64_t)n * PQ * K + kgroup * 8;
        const float *plane = sm + c * Hp * Wp;
        int pix = group * (32 / kg) + slot;
        float d[AHEAD][8]; // dy of the lane's next AHEAD pixels: d[u] for pixels pix + (u + i AHEAD) step
#pragma unroll
        for (int u = 0; u < AHEAD; u++)
            if (pix + u * step < PQ) load_vec<8>(d[u], dyn + (int64_t)(pix + u * step) * K);
        for (; pix < PQ; pix += AHEAD * step)
#pragma unroll
            for (int u = 0; u < AHEAD; u++) {
                int at = pix + u * step;
                if (at >= PQ) break;
                int p = (int)cg_fast_divide((uint32_t)at, q_div), q = at - p * Q;
                const float *xp = plane + p * stride * Wp + q * stride;
#pragma unroll
                for (int r = 0; r < 3; r++)
#pragma unroll
                    for (int s = 0; s < 3; s++) {
                        float v = xp[r * Wp + s];
#pragma unroll
                        for (int j = 0; j < 8; j++) acc[j][r * 3 + s] += d[u][j] * v;
                    }
                if (at + AHEAD * step < PQ) load_vec<8>(d[u], dyn + (int64_t)(at + AHEAD * step) * K);
            }
    }
    // Lanes kgroup, kgroup + kg, kgroup + 2 kg, ... hold the same 72 values of dw: a butterfly over them.
    for (int o = kg; o < 32; o *= 2)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 9; e++) acc[j][e] += __shfl_xor_sync(0xffffffffu, acc[j][e], o);
    __syncthreads(); // the image is no longer read: its shared memory takes the warps' sums
    float *sums = sm; // [warp][kgroup][8 x 9]
    if (slot == 0)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 9; e++) sums[(warp * kg + kgroup) * 72 + j * 9 + e] = acc[j][e];
    __syncthreads();
    int taps = C * 9;
    for (int o = t; o < K * taps; o += blockDim.x) { // o = k taps + tap, tap = 9 c + 3 r + s
        int k = o / taps, tap = o - k * taps, ci = tap / 9, e = tap - ci * 9;
        float total = 0.0f;
        for (int g = 0; g < groups; g++) total += sums[((g * C + ci) * kg + k / 8) * 72 + k % 8 * 9 + e];
        partial[(int64_t)o * gridDim.x + blockIdx.x] = total;
    }
}

// dw[o] += the sum of the blocks' partial[o][b]: a warp per value, each lane a stride of the
// blocks, then a fixed tree of shuffles (the same bits every run); rounded once.
template <typename T> static __global__ void wgrad_blocks_total_kernel(T *dw, const float *partial, int blocks) {
    int o = blockIdx.x, lane = threadIdx.x;
    float sum = 0.0f;
    for (int b = lane; b < blocks; b += 32) sum += partial[(int64_t)o * blocks + b];
    sum = warp_sum(sum);
    if (lane == 0) dw[o] = f2h<T>(h2f(dw[o]) + sum);
}

// The shape conditions of wgrad_lanes_kernel, and its launch; false where they do not hold.
static bool conv_direct_weight_grad_lanes(cg_dtype dtype, void *dw, const void *x, const void *dy, int64_t N,
                                          int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                          int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    int64_t kg = K / 8;
    if (dtype == CG_F32 || C > DIRECT_MAX_CHANNELS || R != 3 || S != 3 || K % 8 != 0 || kg == 0 || kg > 32 ||
        32 % kg != 0 || LANES_WARPS % C != 0 || N * P * Q == 0 || (uintptr_t)dy % 16 != 0)
        return false;
    int64_t image = C * (H + 2 * pad) * (W + 2 * pad), sums = LANES_WARPS * K * 9;
    int64_t floats = image > sums ? image : sums;
    if (floats > LANES_SHARED_MAX) return false;
    cg_cuda_check_int32("conv2d", N * C * H * W);
    cg_cuda_check_int32("conv2d", N * P * Q * K);
    // An image a block at a time; one such block (384 threads of about 160 registers, sm_90) fits on a
    // multiprocessor, and 512 of them fill an H100's 132 in four turns.
    int blocks = N < 512 ? (int)N : 512;
    int64_t values = K * C * 9;
    float *partial = (float *)cg_cuda_alloc((size_t)(values * blocks) * sizeof(float));
    cg_fast_divisor q = cg_fast_divisor_make((uint32_t)Q);
    DISPATCH16(dtype, {
        wgrad_lanes_kernel<T><<<blocks, 32 * LANES_WARPS, (size_t)floats * sizeof(float), cg_cuda_stream()>>>(
            partial, (const T *)x, (const T *)dy, (int)N, (int)C, (int)H, (int)W, (int)K, (int)stride, (int)pad,
            (int)P, (int)Q, q);
        CG_LAUNCH_CHECK();
        wgrad_blocks_total_kernel<T><<<(unsigned)values, 32, 0, cg_cuda_stream()>>>((T *)dw, partial, blocks);
        CG_LAUNCH_CHECK();
    });
    cg_cuda_free(partial);
    return true;
}

extern "C" bool conv_direct_weight_grad(cg_dtype dtype, void *dw, const void *x, const void *dy, bool dy_cl, int64_t N,
                                        int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                        int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (cudnn_wins(dtype, K, R, S)) return false;
    if (dy_cl && conv_direct_weight_grad_lanes(dtype, dw, x, dy, N, C, H, W, K, R, S, stride, pad, P, Q)) return true;
    int64_t taps = C * R * S, taps4 = (taps + 3) / 4 * 4, jobs = K / 2 * (taps4 / 4), pixels = N * P * Q;
    if (C > DIRECT_MAX_CHANNELS || K % 2 != 0 || jobs > CG_THREADS || pixels == 0) return false;
    cg_cuda_check_int32("conv2d", pixels * K);
    cg_cuda_check_int32("conv2d", N * C * H * W);
    // About 256 pixels a block (8 tiles), at most 1,024 blocks: enough to fill the GPU, and step 2
    // adds at most 1,024 partials per value.
    int64_t blocks = pixels / 256;
    blocks = blocks < 1 ? 1 : blocks > 1024 ? 1024 : blocks;
    size_t tile = (size_t)(WGRAD_TILE * (taps4 + K)), sums = (size_t)(CG_THREADS / jobs * jobs * 8);
    size_t shared = (tile > sums ? tile : sums) * sizeof(float);
    float *partial = (float *)cg_cuda_alloc((size_t)(blocks * jobs * 8) * sizeof(float));
    cg_fast_divisor pq = cg_fast_divisor_make((uint32_t)(P * Q)), q = cg_fast_divisor_make((uint32_t)Q);
    cg_fast_divisor rs = cg_fast_divisor_make((uint32_t)(R * S)), s = cg_fast_divisor_make((uint32_t)S);
#define WGRAD(T, DY_CL)                                                                                             \
    wgrad_partial_kernel<T, DY_CL><<<(unsigned)blocks, CG_THREADS, shared, cg_cuda_stream()>>>(                      \
        partial, (const T *)x, (const T *)dy, (int)C, (int)H, (int)W, (int)K, (int)R, (int)S, (int)stride, (int)pad, \
        (int)pixels, (int)taps4, (int)jobs, pq, q, rs, s);                                                          \
    CG_LAUNCH_CHECK();                                                                                              \
    wgrad_total_kernel<T><<<(unsigned)(jobs * 8), 32, 0, cg_cuda_stream()>>>((T *)dw, partial, (int)blocks,         \
                                                                            (int)jobs, (int)K, (int)taps);          \
    CG_LAUNCH_CHECK()
    if (dtype == CG_F32) {
        if (dy_cl) {
            WGRAD(float, true);
        } else {
            WGRAD(float, false);
        }
    } else {
        DISPATCH16(dtype, {
            if (dy_cl) {
                WGRAD(T, true);
            } else {
                WGRAD(T, false);
            }
        });
    }
#undef WGRAD
    cg_cuda_free(partial);
    return true;
}

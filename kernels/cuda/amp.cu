// amp.cu: the GPU's kernels of mixed precision (the _h rows of core/kernels.h, the cast, the
// loss scaler): fp16 / bf16 data, arithmetic in f32 registers, one rounding (to nearest even)
// per stored value. Convolutions go to cuDNN with 16-bit data (cudnn_conv.c), NCHW, or NHWC
// where a tensor is stored channels-last (core/tensor.h; an NCHW operand is then copied to NHWC
// with its channels padded to multiples of 8), or are widened to f32 when cuDNN has no engine.
// CPU twins: kernels/cpu/amp.c. The 16-bit products are in gemm.cu, beside the cuBLAS handle.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cudnn_conv.h"

// ---- elementwise kernels: 8 values per thread where they can -------------------------------------
// Each thread takes VEC neighbouring values, i = VEC p for p < n / VEC: VEC = 8 (one 16-byte
// piece of each 16-bit tensor) where n is a multiple of 8 and every tensor 16-byte aligned, else
// 1. One 2-byte value per thread moved about 1.4 TB/s of an H100's 3.35 in ResNet-18's ReLU
// gradient (an Nsight Compute profile); the same arithmetic on pieces gives the same bits.
// launch_vec runs k8 (the kernel's VEC = 8 form) over n / 8 threads' worth where vec is 8, else k1.
template <typename... P, typename... A>
static void launch_vec(int vec, int64_t n, void (*k8)(P...), void (*k1)(P...), A... args) {
    if (vec == 8)
        LAUNCH(k8, n / 8, args...);
    else
        LAUNCH(k1, n, args...);
}

// ---- casts ---------------------------------------------------------------------------------------

// y = round(x), or round(y + x) when accumulating (a gradient added to another of its dtype).
template <typename Y, typename X, int VEC>
static __global__ void cast_kernel(Y *y, const X *x, int64_t n, bool accumulate) {
    GRID_STRIDE(p, n / VEC) {
        int64_t i = p * VEC;
        float v[VEC], old[VEC];
        load_vec<VEC>(v, x + i);
        if (accumulate) {
            load_vec<VEC>(old, y + i);
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = old[k] + v[k];
        }
        store_vec<VEC>(y + i, v);
    }
}
template <typename Y, typename X> static void cast_launch(Y *y, const X *x, int64_t n, bool accumulate) {
    // 8 per thread: one 16-byte piece of a 16-bit side, two of an f32 side (the parameters' copies)
    int vec = n % 8 == 0 && ((uintptr_t)y & 15) == 0 && ((uintptr_t)x & 15) == 0 ? 8 : 1;
    launch_vec(vec, n, cast_kernel<Y, X, 8>, cast_kernel<Y, X, 1>, y, x, n, accumulate);
}

template <typename Y> static void cast_from(Y *y, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
    switch (xtype) {
    case CG_F32: cast_launch(y, (const float *)x, n, accumulate); break;
    case CG_F16: cast_launch(y, (const __half *)x, n, accumulate); break;
    case CG_BF16: cast_launch(y, (const __nv_bfloat16 *)x, n, accumulate); break;
    default: CG_CHECK(0, "cast from %s: only f32, f16 and bf16", cg_dtype_name(xtype));
    }
}

// ---- ReLU, max pooling, bias gradients -------------------------------------------------------------

// y = round(a + b): the residual add of two 16-bit tensors.
template <typename T, int VEC> static __global__ void add_h_kernel(T *y, const T *a, const T *b, int64_t n) {
    GRID_STRIDE(p, n / VEC) {
        int64_t i = p * VEC;
        float u[VEC], v[VEC];
        load_vec<VEC>(u, a + i);
        load_vec<VEC>(v, b + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) u[k] += v[k];
        store_vec<VEC>(y + i, u);
    }
}

// y = x where x > 0, else +0 (widening and rounding back a 16-bit value is exact).
template <typename T, int VEC> static __global__ void relu_h_kernel(T *y, const T *x, int64_t n) {
    GRID_STRIDE(p, n / VEC) {
        int64_t i = p * VEC;
        float v[VEC];
        load_vec<VEC>(v, x + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = v[k] > 0.0f ? v[k] : 0.0f;
        store_vec<VEC>(y + i, v);
    }
}

// accumulate false: dx written (+0 where y <= 0), its old values never read.
template <typename T, int VEC>
static __global__ void relu_backward_h_kernel(T *dx, const T *dy, const T *y, int64_t n, bool accumulate) {
    GRID_STRIDE(p, n / VEC) {
        int64_t i = p * VEC;
        float g[VEC], d[VEC], v[VEC];
        gradient_start_vec<VEC>(g, dx + i, accumulate); // (where y <= 0 its old value is stored back)
        load_vec<VEC>(d, dy + i);
        load_vec<VEC>(v, y + i);
#pragma unroll
        for (int k = 0; k < VEC; k++)
            if (v[k] > 0.0f) g[k] += d[k];
        store_vec<VEC>(dx + i, g);
    }
}

// *p += v for a 16-bit value, atomically: a compare-and-swap loop on the aligned 32-bit word
// that holds it (overlapping pooling windows may send two gradients to one input). Works on
// every GPU cgrad builds for, bf16 included.
template <typename T> static __device__ void atomic_add_16(T *p, float v) {
    unsigned int *word = (unsigned int *)((size_t)p & ~(size_t)3);
    bool high = ((size_t)p & 2) != 0;
    unsigned int old = *word, assumed;
    do {
        assumed = old;
        unsigned short bits = high ? (unsigned short)(assumed >> 16) : (unsigned short)(assumed & 0xffffu);
        T current;
        memcpy(&current, &bits, 2);
        T sum = f2h<T>(h2f(current) + v);
        unsigned short new_bits;
        memcpy(&new_bits, &sum, 2);
        unsigned int updated = high ? (assumed & 0xffffu) | ((unsigned int)new_bits << 16)
                                    : (assumed & 0xffff0000u) | new_bits;
        old = atomicCAS(word, assumed, updated);
    } while (old != assumed);
}

// Windows that overlap (kernel > stride): each output's gradient goes to its arg-max, atomically.
template <typename T>
static __global__ void max_pool_scatter_h_kernel(T *dx, const T *dy, const int32_t *argmax, int64_t n) {
    GRID_STRIDE(i, n) atomic_add_16(&dx[argmax[i]], h2f(dy[i]));
}

// Windows that do not overlap (kernel <= stride): each input lies in one window at most, so each
// thread takes an input j, finds its window's output o, and gives j the gradient dy[o] when
// argmax[o] == j. Every store is coalesced (a scatter to the arg-maxes was not), and when
// accumulate is false dx is written without being read or zeroed first. x's dimensions (N, C,
// H, W) or channels-last (N, H, W, C): c, w, h as fast divisors, stride too. VEC inputs per
// thread, channels k .. k + VEC - 1 of one pixel for VEC = 8 (channels-last, C a multiple of 8).
template <typename T, int VEC>
static __global__ void max_pool_gather_h_kernel(T *dx, const T *dy, const int32_t *argmax, int n, cg_fast_divisor c,
                                                cg_fast_divisor w, cg_fast_divisor h, cg_fast_divisor stride,
                                                int kernel, int P, int Q, bool channels_last, bool accumulate) {
    for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < n / VEC; v += gridDim.x * blockDim.x) {
        int j = v * VEC;
        // j = ((m H + row) W + col) C + k channels-last, ((plane H + row) W + col) NCHW.
        uint32_t rest = (uint32_t)j, k = 0;
        if (channels_last) {
            uint32_t pixel = cg_fast_divide(rest, c);
            k = rest - pixel * c.divisor, rest = pixel;
        }
        uint32_t r1 = cg_fast_divide(rest, w), col = rest - r1 * w.divisor;
        uint32_t outer = cg_fast_divide(r1, h), row = r1 - outer * h.divisor; // outer: m, or the plane
        uint32_t p = cg_fast_divide(row, stride), q = cg_fast_divide(col, stride);
        bool inside = p < (uint32_t)P && q < (uint32_t)Q && row - p * stride.divisor < (uint32_t)kernel &&
                      col - q * stride.divisor < (uint32_t)kernel;
        int o = channels_last ? (int)(((outer * P + p) * Q + q) * c.divisor + k) : (int)((outer * P + p) * Q + q);
        if (!inside && accumulate) continue;
        float g[VEC], out[VEC];
        bool hit[VEC];
        if (inside) load_vec<VEC>(g, dy + o);
#pragma unroll
        for (int l = 0; l < VEC; l++) hit[l] = inside && argmax[o + l] == j + l;
        gradient_start_vec<VEC>(out, dx + j, accumulate);
#pragma unroll
        for (int l = 0; l < VEC; l++)
            if (hit[l]) out[l] = out[l] + g[l];
        store_vec<VEC>(dx + j, out); // (adding nothing stores the same bits back)
    }
}

// dbias[c] += sum over rows of dy (rows, cols), in f32 and in a fixed order (the same result on
// every run): a block of 32 x 32 threads takes 32 columns, thread (x, y) adds rows y, y + 32, ...
// of column x (a warp reads 32 neighbouring columns of a row), then warp y adds column y's 32
// partial sums by a fixed tree of shuffles. One thread per column walking every row (the version
// before) took 51 us for the 10 columns of ResNet-18's head at batch 512 (an H100, profiled):
// 512 loads one after the other.
template <typename T> static __global__ void bias_backward_h_kernel(T *dbias, const T *dy, int64_t rows, int64_t cols) {
    __shared__ float partial[32][33]; // [column][row group], padded against bank conflicts
    int64_t c = blockIdx.x * 32 + threadIdx.x;
    float sum = 0.0f;
    if (c < cols)
        for (int64_t r = threadIdx.y; r < rows; r += 32) sum += h2f(dy[r * cols + c]);
    partial[threadIdx.x][threadIdx.y] = sum;
    __syncthreads();
    float total = warp_sum(partial[threadIdx.y][threadIdx.x]); // warp y: column y, lane x: row group x
    c = blockIdx.x * 32 + threadIdx.y;
    if (threadIdx.x == 0 && c < cols) dbias[c] = f2h<T>(h2f(dbias[c]) + total);
}

// Convolution bias, as conv.cu does it in f32: block (k, n) sums channel k of image n into
// partial[k][n] (f32); then one thread per channel adds its N partials to dbias[k].
template <typename T> static __global__ void conv_bias_partial_h_kernel(float *partial, const T *dy, int N, int K, int PQ) {
    int k = blockIdx.x, n = blockIdx.y;
    float part = 0.0f;
    for (int i = threadIdx.x; i < PQ; i += blockDim.x) part += h2f(dy[((int64_t)n * K + k) * PQ + i]);
    float total = block_sum(part);
    if (threadIdx.x == 0) partial[k * N + n] = total;
}

template <typename T> static __global__ void conv_bias_total_h_kernel(T *dbias, const float *partial, int N, int K) {
    GRID_STRIDE(k, K) {
        float sum = 0.0f;
        for (int n = 0; n < N; n++) sum += partial[k * N + n];
        dbias[k] = f2h<T>(h2f(dbias[k]) + sum);
    }
}

// y (N, K, PQ) = y + bias[k], rounded once.
template <typename T> static __global__ void channel_bias_h_kernel(T *y, const T *bias, int64_t N, int64_t K, int64_t PQ) {
    GRID_STRIDE(i, N * K * PQ) y[i] = f2h<T>(h2f(y[i]) + h2f(bias[i / PQ % K]));
}

// The same for y stored channels-last (N, PQ, K): the channel of element i is i mod K (by
// multiply-high: a 64-bit remainder per element took as long as the convolution it follows).
// VEC channels per thread (16-byte loads and stores for VEC = 8, K a multiple of 8).
template <typename T, int VEC>
static __global__ void channel_bias_cl_kernel(T *y, const T *bias, int n, cg_fast_divisor k) {
    for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < n / VEC; v += gridDim.x * blockDim.x) {
        int i = v * VEC, c = i - (int)cg_fast_divide((uint32_t)i, k) * (int)k.divisor;
        float val[VEC];
        load_vec<VEC>(val, y + i);
#pragma unroll
        for (int l = 0; l < VEC; l++) val[l] = val[l] + h2f(bias[c + l]);
        store_vec<VEC>(y + i, val);
    }
}

// y = (or +=) x moved between NCHW (N, C, HW) and channels-last (N, HW, C), one thread per
// element of y (T: float, __half or __nv_bfloat16; the sum rounded once).
template <typename T>
static __global__ void memory_format_kernel(T *y, const T *x, int n, cg_fast_divisor c, cg_fast_divisor hw,
                                            bool to_channels_last, bool accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int from;
        if (to_channels_last) { // i = (m HW + p) C + k
            int row = (int)cg_fast_divide((uint32_t)i, c), k = i - row * (int)c.divisor;
            int m = (int)cg_fast_divide((uint32_t)row, hw), p = row - m * (int)hw.divisor;
            from = (m * (int)c.divisor + k) * (int)hw.divisor + p;
        } else { // i = (m C + k) HW + p
            int plane = (int)cg_fast_divide((uint32_t)i, hw), p = i - plane * (int)hw.divisor;
            int m = (int)cg_fast_divide((uint32_t)plane, c), k = plane - m * (int)c.divisor;
            from = (m * (int)hw.divisor + p) * (int)c.divisor + k;
        }
        y[i] = accumulate ? f2h<T>(h2f(y[i]) + h2f(x[from])) : x[from];
    }
}

// NHWC with channel counts padded to multiples of 8, the layout cuDNN's fp16 / bf16 Tensor Core
// kernels read (16-byte rows of channels). pack: src (N, C, HW) -> dst (Np, HW, Cp), the padding
// rows and channels zero. unpack: dst (N, C, HW) = (or +=) src (., HW, Cp) without the padding.
// Element i of dst (Np, HW, Cp) is (n, p, c) with c = i mod Cp and n, p from i / Cp; its source is
// src's (n, c, p) when n < N and c < C, else 0 (the padding). 32-bit indices with the divisions
// by multiply-high (fast_divide.h): with 64-bit ones (emulated divisions, three per element) the
// copies of the weights took 7 us a launch and 0.27 ms of ResNet-18's step on an H100.
template <typename T>
static __global__ void pack_nhwc_kernel(T *dst, const T *src, int total, int N, int C, cg_fast_divisor Cp,
                                        cg_fast_divisor HW) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int q = (int)cg_fast_divide((uint32_t)i, Cp), c = i - q * (int)Cp.divisor;
        int n = (int)cg_fast_divide((uint32_t)q, HW), p = q - n * (int)HW.divisor;
        dst[i] = (n < N && c < C) ? src[(n * C + c) * (int)HW.divisor + p] : f2h<T>(0.0f);
    }
}

// The way back: dst (N, C, HW) element i = (n, c, p) from src (N, HW, Cp), written or added.
template <typename T>
static __global__ void unpack_nhwc_kernel(T *dst, const T *src, int total, int Cp, cg_fast_divisor C,
                                          cg_fast_divisor HW, bool accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int q = (int)cg_fast_divide((uint32_t)i, HW), p = i - q * (int)HW.divisor;
        int n = (int)cg_fast_divide((uint32_t)q, C), c = q - n * (int)C.divisor;
        float v = h2f(src[(n * (int)HW.divisor + p) * Cp + c]);
        dst[i] = f2h<T>(accumulate ? h2f(dst[i]) + v : v);
    }
}

// ---- the loss scaler -------------------------------------------------------------------------------

// The channels-last slice (core/kernels.h: cg_amp_cl_slice) that holds element e of the parameter
// block, or NULL where e lies in none: a binary search on their offsets (sorted).
static __device__ const cg_amp_cl_slice *slice_of(int64_t e, const cg_amp_cl_slice *slices, int count) {
    int lo = 0, hi = count; // -> the first slice that starts after e
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (slices[mid].offset <= e) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    const cg_amp_cl_slice *s = &slices[lo - 1];
    return e - s->offset < s->K * s->C * s->RS ? s : NULL;
}

// low = values rounded to T, VEC values a thread (n a multiple of VEC): outside the slices each
// in its place; in a slice, the thread's VEC values of low, (k, rs, c) .. (k, rs, c + VEC - 1) in
// (K, RS, C) order, are read from (k, c, rs), RS apart, in the (K, C, R, S) block. The writes in
// order, the reads gathered (a weight's values are near each other: in the caches). With VEC 8 a
// thread's values never straddle a slice's edge, nor a row of C (offsets and lengths, and C,
// multiples of 8), so one search serves them all.
template <typename T, int VEC>
static __global__ void amp_refresh_kernel(T *low, const float *values, int64_t n, const cg_amp_cl_slice *slices,
                                          int count) {
    GRID_STRIDE(group, n / VEC) {
        int64_t j = group * VEC;
        const cg_amp_cl_slice *s = slice_of(j, slices, count);
        float v[VEC];
        if (s == NULL) {
            load_vec<VEC>(v, values + j);
        } else {
            uint32_t C = (uint32_t)s->C, RS = (uint32_t)s->RS, local = (uint32_t)(j - s->offset);
            uint32_t k = local / (C * RS), r = local - k * C * RS, rs = r / C, c = r - rs * C;
            const float *from = values + s->offset + ((int64_t)k * C + c) * RS + rs;
#pragma unroll
            for (int e = 0; e < VEC; e++) v[e] = from[e * RS];
        }
        store_vec<VEC>(low + j, v);
    }
}

// g += h (16-bit, may be NULL; in a slice, h's value for g's (k, c, rs) is at (k, rs, c)); found_inf
// if any is not finite; g *= 1 / scale. VEC values a thread, as amp_refresh_kernel (here the
// thread's values run through rs, then c, in (K, C, R, S) order). Every thread that sees inf /
// NaN writes the same 1, so no atomic is needed.
template <typename T, int VEC>
static __global__ void unscale_check_kernel(float *g, const T *h, float *amp, int64_t n, const cg_amp_cl_slice *slices,
                                            int count) {
    float inv_scale = 1.0f / amp[CG_AMP_SCALE];
    bool bad = false;
    GRID_STRIDE(group, n / VEC) {
        int64_t i = group * VEC;
        float v[VEC], add[VEC];
        load_vec<VEC>(v, g + i);
        if (h) {
            const cg_amp_cl_slice *s = slice_of(i, slices, count);
            if (s == NULL) {
                load_vec<VEC>(add, h + i);
            } else {
                uint32_t C = (uint32_t)s->C, RS = (uint32_t)s->RS, local = (uint32_t)(i - s->offset);
                uint32_t k = local / (C * RS), r = local - k * C * RS, c = r / RS, rs = r - c * RS;
#pragma unroll
                for (int e = 0; e < VEC; e++) {
                    add[e] = h2f(h[s->offset + ((int64_t)k * RS + rs) * C + c]);
                    if (++rs == RS) { // the next value of (k, c, rs) in (K, C, R, S) order
                        rs = 0;
                        if (++c == C) c = 0, k++;
                    }
                }
            }
#pragma unroll
            for (int e = 0; e < VEC; e++) v[e] += add[e];
        }
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            bad |= !isfinite(v[e]);
            if (inv_scale != 1.0f) v[e] *= inv_scale;
        }
        store_vec<VEC>(g + i, v);
    }
    if (bad) amp[CG_AMP_FOUND_INF] = 1.0f;
}

// PyTorch's _amp_update_scale_, one thread.
static __global__ void update_scale_kernel(float *amp, float growth_factor, float backoff_factor, int growth_interval) {
    amp[CG_AMP_STEPS] += 1.0f;
    if (amp[CG_AMP_FOUND_INF] != 0.0f) {
        amp[CG_AMP_SCALE] *= backoff_factor;
        amp[CG_AMP_GROWTH] = 0.0f;
        amp[CG_AMP_SKIPPED] += 1.0f;
        return;
    }
    amp[CG_AMP_GROWTH] += 1.0f;
    if (amp[CG_AMP_GROWTH] >= (float)growth_interval) {
        float grown = amp[CG_AMP_SCALE] * growth_factor;
        if (isfinite(grown)) amp[CG_AMP_SCALE] = grown;
        amp[CG_AMP_GROWTH] = 0.0f;
    }
}

// ---- host wrappers -----------------------------------------------------------------------------------

// A device scratch copy of n values of x widened to f32 (NULL for NULL), from the caching
// allocator: freed at once after use, which the stream's order makes safe (see conv.cu).
static float *widened(const void *x, cg_dtype t, int64_t n) {
    if (x == NULL) return NULL;
    float *w = (float *)cg_cuda_alloc((size_t)n * sizeof(float));
    cast_from<float>(w, x, t, n, false);
    return w;
}

static float *zeroed(int64_t n) {
    float *z = (float *)cg_cuda_alloc((size_t)n * sizeof(float));
    zero_cuda(z, (size_t)n * sizeof(float));
    return z;
}

static void *zeroed16(int64_t n) {
    void *z = cg_cuda_alloc((size_t)n * 2);
    zero_cuda(z, (size_t)n * 2);
    return z;
}

// ---- 16-bit convolutions in NHWC ---------------------------------------------------------------------
#ifdef CG_HAVE_CUDNN

static int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }

// src (N, C, HW) packed to (Np, HW, Cp) into dst, or into a new device buffer (caching
// allocator) when dst is NULL; returns where.
static void *packed_into(void *dst, cg_dtype dtype, const void *src, int64_t N, int64_t Np, int64_t C, int64_t Cp,
                         int64_t HW) {
    int64_t total = Np * HW * Cp;
    cg_cuda_check_int32("conv2d (NHWC copy)", total);
    if (dst == NULL) dst = cg_cuda_alloc((size_t)total * 2);
    cg_fast_divisor cp = cg_fast_divisor_make((uint32_t)Cp), hw = cg_fast_divisor_make((uint32_t)HW);
    DISPATCH16(dtype, LAUNCH(pack_nhwc_kernel<T>, total, (T *)dst, (const T *)src, (int)total, (int)N, (int)C, cp, hw));
    return dst;
}

static void *packed(cg_dtype dtype, const void *src, int64_t N, int64_t Np, int64_t C, int64_t Cp, int64_t HW) {
    return packed_into(NULL, dtype, src, N, Np, C, Cp, HW);
}

// The weights (K, C, RS) into w_nhwc as conv_forward_cl packs them, for the backward; for the
// forward that does not go through cuDNN (a first layer's direct kernel). Nothing when NULL.
static void keep_weights_nhwc(void *w_nhwc, cg_dtype dtype, const void *w, int64_t K, int64_t C, int64_t RS) {
    if (w_nhwc) packed_into(w_nhwc, dtype, w, K, round8(K), C, round8(C), RS);
}

static void unpacked(cg_dtype dtype, void *dst, const void *src, int64_t N, int64_t C, int64_t Cp, int64_t HW,
                     bool accumulate) {
    int64_t total = N * C * HW;
    cg_cuda_check_int32("conv2d (NHWC copy)", N * HW * Cp);
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make((uint32_t)HW);
    DISPATCH16(dtype, LAUNCH(unpack_nhwc_kernel<T>, total, (T *)dst, (const T *)src, (int)total, (int)Cp, c, hw,
                             accumulate));
}

// y = conv(x, w) in NHWC, y and x stored channels-last or NCHW (as y_cl, x_cl say): an NCHW
// operand goes through an NHWC copy with its channels padded to multiples of 8 (channels-last
// ones have them already: core/ops_conv.c makes them only so). The weights are read as they are
// when stored channels-last (w_cl: the mixed-precision copy, core/train/amp.h), else copied, into
// w_nhwc when given (kept there for the backward), else a scratch buffer. False (nothing
// written) when cuDNN has no engine.
static bool conv_forward_cl(cg_dtype dtype, void *y, bool y_cl, const void *x, bool x_cl, const void *w, bool w_cl,
                            void *w_nhwc, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                            int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    CG_CHECK((!x_cl || C % 8 == 0) && (!y_cl || K % 8 == 0) && (!w_cl || (C % 8 == 0 && K % 8 == 0)),
             "conv2d: channels-last with %lld -> %lld channels", (long long)C, (long long)K);
    w_cl = w_cl || (R * S == 1 && C % 8 == 0 && K % 8 == 0); // (K, C, 1, 1) is (K, 1, 1, C) already
    int64_t Cp = round8(C), Kp = round8(K);
    int64_t dh[11] = {N, Cp, H, W, Kp, R, S, stride, pad, P, Q};
    void *xh = x_cl ? (void *)x : packed(dtype, x, N, N, C, Cp, H * W);
    void *wh = w_cl ? (void *)w : packed_into(w_nhwc, dtype, w, K, Kp, C, Cp, R * S);
    void *yh = y_cl ? y : cg_cuda_alloc((size_t)(N * P * Q * Kp) * 2);
    bool done = cg_cudnn_conv2d_run16(CG_CUDNN_FORWARD, dtype, true, xh, wh, yh, dh);
    if (done && !y_cl) unpacked(dtype, y, yh, N, K, Kp, P * Q, false);
    if (!x_cl) cg_cuda_free(xh);
    if (!y_cl) cg_cuda_free(yh);
    if (!w_cl && wh != w_nhwc) cg_cuda_free(wh);
    return done;
}

// dx and / or dw += the gradients in NHWC, dy and x (and dx) stored as dy_cl, x_cl say, w and dw
// as w_cl says (dx written instead when accumulate is false); *data_done / *filter_done say what
// was done. w_nhwc: the forward's NHWC copy of the weights, or NULL (then made here, unless w_cl).
static void conv_backward_cl(cg_dtype dtype, void *dx, void *dw, const void *dy, bool dy_cl, const void *x, bool x_cl,
                             const void *w, bool w_cl, const void *w_nhwc, int64_t N, int64_t C, int64_t H, int64_t W,
                             int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q,
                             bool accumulate, bool *data_done, bool *filter_done) {
    CG_CHECK((!x_cl || C % 8 == 0) && (!dy_cl || K % 8 == 0) && (!w_cl || (C % 8 == 0 && K % 8 == 0)),
             "conv2d: channels-last with %lld -> %lld channels", (long long)C, (long long)K);
    w_cl = w_cl || (R * S == 1 && C % 8 == 0 && K % 8 == 0); // (K, C, 1, 1) is (K, 1, 1, C) already
    int64_t Cp = round8(C), Kp = round8(K);
    int64_t dh[11] = {N, Cp, H, W, Kp, R, S, stride, pad, P, Q};
    void *dyh = dy_cl ? (void *)dy : packed(dtype, dy, N, N, K, Kp, P * Q);
    if (dw) {
        // cuDNN adds to dw (beta 1): in place when it is stored channels-last, else to zeros then
        // added to dw by the copy back to (K, C, R, S).
        void *xh = x_cl ? (void *)x : packed(dtype, x, N, N, C, Cp, H * W);
        void *dwh = w_cl ? dw : zeroed16(Kp * R * S * Cp);
        *filter_done = cg_cudnn_conv2d_run16(CG_CUDNN_BACKWARD_FILTER, dtype, true, xh, dwh, dyh, dh);
        if (*filter_done && !w_cl) unpacked(dtype, dw, dwh, K, C, Cp, R * S, true);
        if (!x_cl) cg_cuda_free(xh);
        if (!w_cl) cg_cuda_free(dwh);
    }
    if (dx) {
        // In place when dx is channels-last (cuDNN adds, or writes: beta 0), else written into an
        // NHWC copy that is then added to dx, or written.
        void *wh = w_cl ? (void *)w : w_nhwc ? (void *)w_nhwc : packed(dtype, w, K, Kp, C, Cp, R * S);
        void *dxh = x_cl ? dx : cg_cuda_alloc((size_t)(N * H * W * Cp) * 2);
        *data_done = cg_cudnn_conv2d_run16(x_cl && accumulate ? CG_CUDNN_BACKWARD_DATA : CG_CUDNN_BACKWARD_DATA_WRITE,
                                           dtype, true, dxh, wh, dyh, dh);
        if (*data_done && !x_cl) unpacked(dtype, dx, dxh, N, C, Cp, H * W, accumulate);
        if (!x_cl) cg_cuda_free(dxh);
        if (wh != w && wh != w_nhwc) cg_cuda_free(wh);
    }
    if (!dy_cl) cg_cuda_free((void *)dyh);
}
#else
static void keep_weights_nhwc(void *, cg_dtype, const void *, int64_t, int64_t, int64_t) {} // no NHWC backward
#endif

extern "C" {
static void cast_cuda(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
    if (n <= 0) return;
    switch (ytype) {
    case CG_F32: cast_from<float>((float *)y, x, xtype, n, accumulate); break;
    case CG_F16: cast_from<__half>((__half *)y, x, xtype, n, accumulate); break;
    case CG_BF16: cast_from<__nv_bfloat16>((__nv_bfloat16 *)y, x, xtype, n, accumulate); break;
    default: CG_CHECK(0, "cast to %s: only f32, f16 and bf16", cg_dtype_name(ytype));
    }
}

static void relu_forward_h_cuda(cg_dtype dtype, void *y, const void *x, int64_t n) {
    DISPATCH16(dtype, launch_vec(vec_width<T>(n, y, x), n, relu_h_kernel<T, 8>, relu_h_kernel<T, 1>, (T *)y,
                                 (const T *)x, n));
}

static void add_forward_h_cuda(cg_dtype dtype, void *y, const void *a, const void *b, int64_t n) {
    DISPATCH16(dtype, launch_vec(vec_width<T>(n, y, a, b), n, add_h_kernel<T, 8>, add_h_kernel<T, 1>, (T *)y,
                                 (const T *)a, (const T *)b, n));
}

static void relu_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, const void *y, int64_t n, bool accumulate) {
    DISPATCH16(dtype, launch_vec(vec_width<T>(n, dx, dy, y), n, relu_backward_h_kernel<T, 8>,
                                 relu_backward_h_kernel<T, 1>, (T *)dx, (const T *)dy, (const T *)y, n, accumulate));
}

static void max_pool2d_forward_h_cuda(cg_dtype dtype, void *y, int32_t *argmax, const void *x, int64_t N, int64_t C,
                                      int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P, int64_t Q,
                                      bool channels_last) {
    DISPATCH16(dtype, max_pool_launch<T>((T *)y, argmax, (const T *)x, N, C, H, W, kernel, stride, P, Q, channels_last));
}

static void max_pool2d_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, const int32_t *argmax, int64_t N,
                                       int64_t C, int64_t H, int64_t W, int64_t kernel, int64_t stride, int64_t P,
                                       int64_t Q, bool channels_last, bool accumulate) {
    int64_t n_in = N * C * H * W, n_out = N * C * P * Q;
    cg_cuda_check_int32("max_pool2d", n_in);
    if (kernel > stride) {
        if (!accumulate) zero_cuda(dx, (size_t)n_in * 2);
        DISPATCH16(dtype, LAUNCH(max_pool_scatter_h_kernel<T>, n_out, (T *)dx, (const T *)dy, argmax, n_out));
        return;
    }
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), w = cg_fast_divisor_make((uint32_t)W);
    cg_fast_divisor h = cg_fast_divisor_make((uint32_t)H), s = cg_fast_divisor_make((uint32_t)stride);
    DISPATCH16(dtype, {
        if (channels_last && vec_width<T>(C, dx, dy, argmax) == 8)
            LAUNCH((max_pool_gather_h_kernel<T, 8>), n_in / 8, (T *)dx, (const T *)dy, argmax, (int)n_in, c, w, h, s,
                   (int)kernel, (int)P, (int)Q, true, accumulate);
        else
            LAUNCH((max_pool_gather_h_kernel<T, 1>), n_in, (T *)dx, (const T *)dy, argmax, (int)n_in, c, w, h, s,
                   (int)kernel, (int)P, (int)Q, channels_last, accumulate);
    });
}

static void add_bias_backward_h_cuda(cg_dtype dtype, void *dbias, const void *dy, int64_t rows, int64_t cols) {
    unsigned blocks = (unsigned)((cols + 31) / 32);
    DISPATCH16(dtype, {
        bias_backward_h_kernel<T><<<blocks, dim3(32, 32), 0, cg_cuda_stream()>>>((T *)dbias, (const T *)dy, rows, cols);
        CG_LAUNCH_CHECK();
    });
}

// dbias += the sums of dy (N, K, PQ) over N and PQ (conv_bias_partial_h_kernel, then the totals).
static void conv_bias_grad_h(cg_dtype dtype, void *dbias, const void *dy, int64_t N, int64_t K, int64_t PQ) {
    CG_CHECK(N * PQ < INT32_MAX && K * N < INT32_MAX, "conv2d bias gradient: sizes overflow 32-bit indices");
    float *partial = (float *)cg_cuda_alloc((size_t)(K * N) * sizeof(float));
    DISPATCH16(dtype, {
        conv_bias_partial_h_kernel<T><<<dim3((unsigned)K, (unsigned)N), CG_THREADS, 0, cg_cuda_stream()>>>(
            partial, (const T *)dy, (int)N, (int)K, (int)PQ);
        CG_LAUNCH_CHECK();
        LAUNCH(conv_bias_total_h_kernel<T>, K, (T *)dbias, partial, (int)N, (int)K);
    });
    cg_cuda_free(partial);
}

static void conv2d_forward_h_cuda(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t N,
                                  int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                  int64_t pad, int64_t P, int64_t Q) {
    bool done = false;
#ifdef CG_HAVE_CUDNN
    int64_t d[11] = {N, C, H, W, K, R, S, stride, pad, P, Q};
    done = cg_cudnn_conv2d_run16(CG_CUDNN_FORWARD, dtype, false, (void *)x, (void *)w, y, d);
    if (done && bias) DISPATCH16(dtype, LAUNCH(channel_bias_h_kernel<T>, N * K * P * Q, (T *)y, (const T *)bias, N, K, P * Q));
#endif
    if (!done) { // no 16-bit engine (or no cuDNN): f32 on widened copies, rounded once
        float *xf = widened(x, dtype, N * C * H * W), *wf = widened(w, dtype, K * C * R * S);
        float *bf = widened(bias, dtype, K), *yf = (float *)cg_cuda_alloc((size_t)(N * K * P * Q) * sizeof(float));
        conv2d_forward_cuda(yf, xf, wf, bf, N, C, H, W, K, R, S, stride, pad, P, Q);
        cast_cuda(y, dtype, yf, CG_F32, N * K * P * Q, false);
        cg_cuda_free(xf), cg_cuda_free(wf), cg_cuda_free(yf);
        if (bf) cg_cuda_free(bf);
    }
}

static void conv2d_backward_h_cuda(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, const void *x,
                                   const void *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                                   int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    if (dbias) conv_bias_grad_h(dtype, dbias, dy, N, K, P * Q);
    bool filter_done = dw == NULL, data_done = dx == NULL;
    if (!filter_done) filter_done = conv_direct_weight_grad(dtype, dw, x, dy, false, N, C, H, W, K, R, S, stride, pad, P, Q);
#ifdef CG_HAVE_CUDNN
    int64_t d[11] = {N, C, H, W, K, R, S, stride, pad, P, Q};
    if (!filter_done)
        filter_done = cg_cudnn_conv2d_run16(CG_CUDNN_BACKWARD_FILTER, dtype, false, (void *)x, dw, (void *)dy, d);
    if (!data_done) data_done = cg_cudnn_conv2d_run16(CG_CUDNN_BACKWARD_DATA, dtype, false, dx, (void *)w, (void *)dy, d);
#endif
    if (filter_done && data_done) return;
    // What cuDNN could not do in 16 bits: f32 on widened copies, added to the 16-bit gradients.
    float *dyf = widened(dy, dtype, N * K * P * Q), *xf = widened(x, dtype, N * C * H * W);
    float *wf = widened(w, dtype, K * C * R * S);
    float *dxf = data_done ? NULL : zeroed(N * C * H * W), *dwf = filter_done ? NULL : zeroed(K * C * R * S);
    conv2d_backward_cuda(dxf, dwf, NULL, dyf, xf, wf, N, C, H, W, K, R, S, stride, pad, P, Q);
    if (dxf) cast_cuda(dx, dtype, dxf, CG_F32, N * C * H * W, true), cg_cuda_free(dxf);
    if (dwf) cast_cuda(dw, dtype, dwf, CG_F32, K * C * R * S, true), cg_cuda_free(dwf);
    cg_cuda_free(dyf), cg_cuda_free(xf), cg_cuda_free(wf);
}

static void memory_format_copy_cuda(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                                    bool to_channels_last, bool accumulate) {
    int64_t n = N * C * HW;
    cg_cuda_check_int32("to_memory_format", n);
    cg_fast_divisor c = cg_fast_divisor_make((uint32_t)C), hw = cg_fast_divisor_make((uint32_t)HW);
    if (dtype == CG_F32)
        LAUNCH(memory_format_kernel<float>, n, (float *)y, (const float *)x, (int)n, c, hw, to_channels_last, accumulate);
    else
        DISPATCH16(dtype, LAUNCH(memory_format_kernel<T>, n, (T *)y, (const T *)x, (int)n, c, hw, to_channels_last,
                                 accumulate));
}

// A 16-bit NCHW copy (caching allocator) of x (N, C, HW) stored channels-last, or x itself.
static void *nchw16(cg_dtype dtype, const void *x, int64_t N, int64_t C, int64_t HW, bool cl) {
    if (!cl) return (void *)x;
    void *t = cg_cuda_alloc((size_t)(N * C * HW) * 2);
    memory_format_copy_cuda(dtype, t, x, N, C, HW, false, false);
    return t;
}

static void conv2d_forward_cl_cuda(cg_dtype dtype, void *y, bool y_cl, const void *x, bool x_cl, const void *w,
                                   bool w_cl, void *w_nhwc, const void *bias, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    // A first layer (few input channels, so never w_cl): the direct kernel (conv_direct.cu), no
    // NHWC copies (but the weights' one for the backward, when asked for).
    if (!x_cl && y_cl && !w_cl && conv_direct_forward(dtype, y, x, w, bias, N, C, H, W, K, R, S, stride, pad, P, Q)) {
        keep_weights_nhwc(w_nhwc, dtype, w, K, C, R * S);
        return;
    }
    bool done = false;
#ifdef CG_HAVE_CUDNN
    done = conv_forward_cl(dtype, y, y_cl, x, x_cl, w, w_cl, w_nhwc, N, C, H, W, K, R, S, stride, pad, P, Q);
    if (done && bias && y_cl) {
        cg_cuda_check_int32("conv2d bias", N * K * P * Q);
        int n = (int)(N * K * P * Q);
        cg_fast_divisor k = cg_fast_divisor_make((uint32_t)K);
        DISPATCH16(dtype, {
            if (vec_width<T>(K, y) == 8)
                LAUNCH((channel_bias_cl_kernel<T, 8>), n / 8, (T *)y, (const T *)bias, n, k);
            else
                LAUNCH((channel_bias_cl_kernel<T, 1>), n, (T *)y, (const T *)bias, n, k);
        });
    }
    if (done && bias && !y_cl)
        DISPATCH16(dtype, LAUNCH(channel_bias_h_kernel<T>, N * K * P * Q, (T *)y, (const T *)bias, N, K, P * Q));
#endif
    if (!done) { // the NCHW path on NCHW copies
        void *xn = nchw16(dtype, x, N, C, H * W, x_cl), *yn = y_cl ? cg_cuda_alloc((size_t)(N * K * P * Q) * 2) : y;
        void *wn = nchw16(dtype, w, K, C, R * S, w_cl);
        conv2d_forward_h_cuda(dtype, yn, xn, wn, bias, N, C, H, W, K, R, S, stride, pad, P, Q);
        if (y_cl) memory_format_copy_cuda(dtype, y, yn, N, K, P * Q, true, false), cg_cuda_free(yn);
        if (x_cl) cg_cuda_free(xn); // (w_nhwc: conv_forward_cl packed it before finding no engine)
        if (w_cl) cg_cuda_free(wn);
    }
}

static void conv2d_backward_cl_cuda(cg_dtype dtype, void *dx, void *dw, void *dbias, const void *dy, bool dy_cl,
                                    const void *x, bool x_cl, const void *w, bool w_cl, const void *w_nhwc, int64_t N,
                                    int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                                    int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    if (dbias && dy_cl) conv_bias_grad_cl_cuda(dtype, dbias, dy, N, K, P * Q);
    if (dbias && !dy_cl) conv_bias_grad_h(dtype, dbias, dy, N, K, P * Q);
    bool filter_done = dw == NULL, data_done = dx == NULL;
    if (!filter_done && !x_cl && !w_cl) // a first layer: the direct kernel (conv_direct.cu)
        filter_done = conv_direct_weight_grad(dtype, dw, x, dy, dy_cl, N, C, H, W, K, R, S, stride, pad, P, Q);
#ifndef CG_HAVE_CUDNN
    (void)w_nhwc;
#else
    conv_backward_cl(dtype, data_done ? NULL : dx, filter_done ? NULL : dw, dy, dy_cl, x, x_cl, w, w_cl, w_nhwc, N, C,
                     H, W, K, R, S, stride, pad, P, Q, accumulate, &data_done, &filter_done);
#endif
    if (filter_done && data_done) return;
    if (!data_done && !accumulate) zero_cuda(dx, (size_t)(N * C * H * W) * 2); // the path below adds
    // The NCHW path on NCHW copies for what cuDNN could not do here.
    void *dyn = nchw16(dtype, dy, N, K, P * Q, dy_cl), *xn = nchw16(dtype, x, N, C, H * W, x_cl);
    void *dxn = data_done ? NULL : x_cl ? zeroed16(N * C * H * W) : dx;
    void *wn = nchw16(dtype, w, K, C, R * S, w_cl), *dwn = filter_done ? NULL : w_cl ? zeroed16(K * C * R * S) : dw;
    conv2d_backward_h_cuda(dtype, dxn, dwn, NULL, dyn, xn, wn, N, C, H, W, K, R, S, stride, pad, P, Q);
    if (dxn && x_cl) memory_format_copy_cuda(dtype, dx, dxn, N, C, H * W, true, true), cg_cuda_free(dxn);
    if (dwn && w_cl) memory_format_copy_cuda(dtype, dw, dwn, K, C, R * S, true, true), cg_cuda_free(dwn);
    if (dy_cl) cg_cuda_free(dyn);
    if (x_cl) cg_cuda_free(xn);
    if (w_cl) cg_cuda_free(wn);
}

// 8 values a thread where n and the pointers allow 16-byte pieces (the parameter block: always),
// else 1 (the slices' offsets and lengths are multiples of 8: core/kernels.h).
static void amp_unscale_check_cuda(float *g, const void *h, cg_dtype dtype, float *amp, int64_t n,
                                   const cg_amp_cl_slice *slices, int count) {
    bool by8 = n % 8 == 0 && ((uintptr_t)g & 31) == 0 && ((uintptr_t)h & 15) == 0;
    if (h == NULL) dtype = CG_F16; // (any 16-bit type: nothing is read)
    DISPATCH16(dtype, {
        if (by8)
            LAUNCH((unscale_check_kernel<T, 8>), n / 8, g, (const T *)h, amp, n, slices, count);
        else
            LAUNCH((unscale_check_kernel<T, 1>), n, g, (const T *)h, amp, n, slices, count);
    });
}

static void amp_refresh_cuda(void *low, cg_dtype dtype, const float *values, int64_t n, const cg_amp_cl_slice *slices,
                             int count) {
    bool by8 = n % 8 == 0 && ((uintptr_t)low & 15) == 0 && ((uintptr_t)values & 31) == 0;
    DISPATCH16(dtype, {
        if (by8)
            LAUNCH((amp_refresh_kernel<T, 8>), n / 8, (T *)low, values, n, slices, count);
        else
            LAUNCH((amp_refresh_kernel<T, 1>), n, (T *)low, values, n, slices, count);
    });
}

static void amp_update_scale_cuda(float *amp, float growth_factor, float backoff_factor, int growth_interval) {
    update_scale_kernel<<<1, 1, 0, cg_cuda_stream()>>>(amp, growth_factor, backoff_factor, growth_interval);
    CG_LAUNCH_CHECK();
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void amp_register_cuda(cg_kernels *k) {
    k->cast = cast_cuda;
    k->add_bias_backward_h = add_bias_backward_h_cuda;
    k->conv2d_forward_h = conv2d_forward_h_cuda;
    k->conv2d_backward_h = conv2d_backward_h_cuda;
    k->conv2d_forward_cl = conv2d_forward_cl_cuda;
    k->conv2d_backward_cl = conv2d_backward_cl_cuda;
    k->memory_format_copy = memory_format_copy_cuda;
    k->max_pool2d_forward_h = max_pool2d_forward_h_cuda;
    k->max_pool2d_backward_h = max_pool2d_backward_h_cuda;
    k->relu_forward_h = relu_forward_h_cuda;
    k->relu_backward_h = relu_backward_h_cuda;
    k->add_forward_h = add_forward_h_cuda;
    k->amp_unscale_check = amp_unscale_check_cuda;
    k->amp_refresh = amp_refresh_cuda;
    k->amp_update_scale = amp_update_scale_cuda;
}

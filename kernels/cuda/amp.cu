// amp.cu: the GPU's kernels of mixed precision but the convolutions (the cast; 16-bit add, ReLU,
// max pooling and the linear layer's bias gradient, the _h rows of core/kernels.h; the loss scaler
// and the refresh of the 16-bit weights): fp16 / bf16 data, arithmetic in f32 registers, one
// rounding (to nearest even) per stored value. The 16-bit convolutions and the copies between
// memory formats are in conv16.cu, the 16-bit products in gemm.cu beside the cuBLAS handle.
// CPU twins: kernels/cpu/amp.c.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda.h"

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

extern "C" {
void cast_cuda(void *y, cg_dtype ytype, const void *x, cg_dtype xtype, int64_t n, bool accumulate) {
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
    k->max_pool2d_forward_h = max_pool2d_forward_h_cuda;
    k->max_pool2d_backward_h = max_pool2d_backward_h_cuda;
    k->relu_forward_h = relu_forward_h_cuda;
    k->relu_backward_h = relu_backward_h_cuda;
    k->add_forward_h = add_forward_h_cuda;
    k->amp_unscale_check = amp_unscale_check_cuda;
    k->amp_refresh = amp_refresh_cuda;
    k->amp_update_scale = amp_update_scale_cuda;
}

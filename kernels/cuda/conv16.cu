// conv16.cu: the GPU's 16-bit convolutions (the conv2d _h and _cl rows of core/kernels.h) and the
// copies between NCHW and channels-last (memory_format_copy). Convolutions go to cuDNN with
// 16-bit data (cudnn_conv.c), NCHW, or NHWC where a tensor is stored channels-last (core/tensor.h;
// an NCHW operand is then copied to NHWC with its channels padded to multiples of 8, and the
// weights unless mixed precision stores them channels-last: core/train/amp.h), or are widened to
// f32 when cuDNN has no engine; a first layer of few channels takes conv_direct.cu's kernels.
// Arithmetic in f32 registers, one rounding (to nearest even) per stored value. CPU twins:
// kernels/cpu/amp.c. The rest of mixed precision (casts, ReLU, pooling, the loss scaler): amp.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cudnn_conv.h"

#include <string.h>

// ---- kernels: biases, layouts ---------------------------------------------------------------------

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

// The same for Cp = 8 (a first layer's input of 1 to 8 channels): a thread a row (n, p), whose 8
// values, padding included, leave as one 16-byte store. (One value a thread took 10 us for
// ResNet-18's stem input at batch 512 on an H100.)
template <typename T>
static __global__ void pack_nhwc8_kernel(T *dst, const T *src, int rows, int N, int C, cg_fast_divisor HW) {
    for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < rows; q += gridDim.x * blockDim.x) {
        int n = (int)cg_fast_divide((uint32_t)q, HW), p = q - n * (int)HW.divisor;
        uint4 raw;
        T *v = (T *)&raw;
#pragma unroll
        for (int c = 0; c < 8; c++) v[c] = (n < N && c < C) ? src[(n * C + c) * (int)HW.divisor + p] : f2h<T>(0.0f);
        *(uint4 *)(dst + (int64_t)q * 8) = raw;
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

// ---- host side ------------------------------------------------------------------------------------

// A device scratch copy of n values of x widened to f32 (NULL for NULL), from the caching
// allocator: freed at once after use, which the stream's order makes safe (see conv.cu).
static float *widened(const void *x, cg_dtype t, int64_t n) {
    if (x == NULL) return NULL;
    float *w = (float *)cg_cuda_alloc((size_t)n * sizeof(float));
    cast_cuda(w, CG_F32, x, t, n, false);
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
    if (Cp == 8 && (uintptr_t)dst % 16 == 0)
        DISPATCH16(dtype, LAUNCH(pack_nhwc8_kernel<T>, Np * HW, (T *)dst, (const T *)src, (int)(Np * HW), (int)N,
                                 (int)C, hw));
    else
        DISPATCH16(dtype, LAUNCH(pack_nhwc_kernel<T>, total, (T *)dst, (const T *)src, (int)total, (int)N, (int)C, cp,
                                 hw));
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

// What both directions check and share: channels-last operands have their channels in eights;
// returns whether the weights are read as they are (w_cl, or a 1 x 1 filter with its channels in
// eights: (K, C, 1, 1) is (K, 1, 1, C) already), and fills cuDNN's dimensions, channels padded.
static bool nhwc_dims(int64_t dh[11], bool x_cl, bool y_cl, bool w_cl, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    CG_CHECK((!x_cl || C % 8 == 0) && (!y_cl || K % 8 == 0) && (!w_cl || (C % 8 == 0 && K % 8 == 0)),
             "conv2d: channels-last with %lld -> %lld channels", (long long)C, (long long)K);
    int64_t d[11] = {N, round8(C), H, W, round8(K), R, S, stride, pad, P, Q};
    memcpy(dh, d, sizeof d);
    return w_cl || (R * S == 1 && C % 8 == 0 && K % 8 == 0);
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
    int64_t dh[11];
    w_cl = nhwc_dims(dh, x_cl, y_cl, w_cl, N, C, H, W, K, R, S, stride, pad, P, Q);
    int64_t Cp = dh[1], Kp = dh[4];
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
    int64_t dh[11];
    w_cl = nhwc_dims(dh, x_cl, dy_cl, w_cl, N, C, H, W, K, R, S, stride, pad, P, Q);
    int64_t Cp = dh[1], Kp = dh[4];
    void *dyh = dy_cl ? (void *)dy : packed(dtype, dy, N, N, K, Kp, P * Q);
    if (dw) {
        // cuDNN adds to dw (beta 1): in place when dw is stored channels-last, else in a
        // channels-last copy of dw, copied back to (K, C, R, S). Engines that add in f32 round
        // once (some round their gradient first); adding into zeros, then that into dw, would
        // always round twice.
        void *xh = x_cl ? (void *)x : packed(dtype, x, N, N, C, Cp, H * W);
        void *dwh = w_cl ? dw : packed(dtype, dw, K, Kp, C, Cp, R * S);
        *filter_done = cg_cudnn_conv2d_run16(CG_CUDNN_BACKWARD_FILTER, dtype, true, xh, dwh, dyh, dh);
        if (*filter_done && !w_cl) unpacked(dtype, dw, dwh, K, C, Cp, R * S, false);
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
    conv2d_backward_cuda(dxf, dwf, NULL, dyf, xf, wf, N, C, H, W, K, R, S, stride, pad, P, Q, true);
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

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void conv16_register_cuda(cg_kernels *k) {
    k->conv2d_forward_h = conv2d_forward_h_cuda;
    k->conv2d_backward_h = conv2d_backward_h_cuda;
    k->conv2d_forward_cl = conv2d_forward_cl_cuda;
    k->conv2d_backward_cl = conv2d_backward_cl_cuda;
    k->memory_format_copy = memory_format_copy_cuda;
}

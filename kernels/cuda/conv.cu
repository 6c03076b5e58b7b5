// conv.cu: convolution (cuDNN, or im2col + GEMM over the whole batch without it) and max
// pooling on the GPU, one thread per output element. col2im gathers (each pixel sums the column
// entries it fed) rather than scattering, so no atomics are needed. CPU twin: kernels/cpu/conv.c.
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cudnn_conv.h"

// The index arithmetic of these kernels is in 32-bit ints: 64-bit division and remainder are
// emulated on the GPU and cost several times more. The host wrappers check that sizes fit.
#define GRID_STRIDE32(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

#ifndef CG_HAVE_CUDNN // im2col + GEMM, when cuDNN is not there

static __global__ void im2col_kernel(float *col, const float *x, int N, int C, int H, int W, int R, int S, int stride,
                                     int pad, int P, int Q) {
    int npq = N * P * Q;
    GRID_STRIDE32(i, C * R * S * npq) {
        int row = i / npq, column = i - row * npq;
        int c = row / (R * S), r = row / S % R, s = row % S;
        int n = column / (P * Q), p = column / Q % P, q = column % Q;
        int h = p * stride - pad + r, w = q * stride - pad + s;
        col[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : 0.0f;
    }
}

static __global__ void col2im_kernel(float *dx, const float *col, int N, int C, int H, int W, int R, int S, int stride,
                                     int pad, int P, int Q) {
    int npq = N * P * Q;
    GRID_STRIDE32(i, N * C * H * W) {
        int n = i / (C * H * W), c = i / (H * W) % C, h = i / W % H, w = i % W;
        float sum = 0.0f;
        for (int r = 0; r < R; r++) {
            int ph = h + pad - r; // = p * stride for the output row p that read this pixel
            if (ph < 0 || ph % stride != 0 || ph / stride >= P) continue;
            for (int s = 0; s < S; s++) {
                int qw = w + pad - s;
                if (qw < 0 || qw % stride != 0 || qw / stride >= Q) continue;
                sum += col[((c * R + r) * S + s) * npq + (n * P + ph / stride) * Q + qw / stride];
            }
        }
        dx[i] += sum;
    }
}

static __global__ void from_gemm_kernel(float *y, const float *yk, const float *bias, int N, int K, int PQ) {
    GRID_STRIDE32(i, N * K * PQ) {
        int n = i / (K * PQ), k = i / PQ % K, pq = i % PQ;
        y[i] = yk[(k * N + n) * PQ + pq] + (bias ? bias[k] : 0.0f);
    }
}

static __global__ void to_gemm_kernel(float *dyk, const float *dy, int N, int K, int PQ) {
    GRID_STRIDE32(i, N * K * PQ) {
        int k = i / (N * PQ), n = i / PQ % N, pq = i % PQ;
        dyk[i] = dy[(n * K + k) * PQ + pq];
    }
}
#endif

// The bias gradient in two deterministic passes: block (k, n) sums channel k of image n (PQ
// contiguous values) into partial[k][n]; then one thread per channel adds its N partials.
static __global__ void bias_partial_kernel(float *partial, const float *dy, int N, int K, int PQ) {
    int k = blockIdx.x, n = blockIdx.y;
    float part = 0.0f;
    for (int i = threadIdx.x; i < PQ; i += blockDim.x) part += dy[(n * K + k) * PQ + i];
    float total = block_sum(part);
    if (threadIdx.x == 0) partial[k * N + n] = total;
}

static __global__ void bias_total_kernel(float *dbias, const float *partial, int N, int K) {
    GRID_STRIDE32(k, K) {
        float sum = 0.0f;
        for (int n = 0; n < N; n++) sum += partial[k * N + n];
        dbias[k] += sum;
    }
}

static void conv_bias_backward(float *dbias, const float *dy, int64_t N, int64_t K, int64_t PQ) {
    float *partial = (float *)cg_cuda_alloc((size_t)(K * N) * sizeof(float));
    bias_partial_kernel<<<dim3((unsigned)K, (unsigned)N), CG_THREADS, 0, cg_cuda_stream()>>>(partial, dy, (int)N,
                                                                                              (int)K, (int)PQ);
    CG_LAUNCH_CHECK();
    LAUNCH(bias_total_kernel, K, dbias, partial, (int)N, (int)K);
    cg_cuda_free(partial);
}

#ifdef CG_HAVE_CUDNN
// y (N, K, PQ) += bias[k] (the im2col path adds it while moving to NCHW)
static __global__ void add_channel_bias_kernel(float *y, const float *bias, int N, int K, int PQ) {
    GRID_STRIDE32(i, N * K * PQ) y[i] += bias[i / PQ % K];
}
#endif

// Overlapping windows may send two gradients to one input: add atomically.
static __global__ void max_pool_backward_kernel(float *dx, const float *dy, const int32_t *argmax, int64_t n) {
    GRID_STRIDE(i, n) atomicAdd(&dx[argmax[i]], dy[i]);
}

static void check_int32(int64_t a, int64_t b, int64_t c) {
    CG_CHECK(a < INT32_MAX && b < INT32_MAX && c < INT32_MAX,
             "conv2d on the GPU: %lld, %lld, %lld elements do not fit 32-bit indices; use a smaller batch",
             (long long)a, (long long)b, (long long)c);
}

// Convolution over a whole batch. With cuDNN (CG_HAVE_CUDNN): its graph API, cudnn_conv.c.
// Without: im2col into col (C*R*S, N*P*Q), one GEMM, a layout move to NCHW. Workspace comes
// from the caching allocator and goes back to it at once: later work on the same stream runs
// after these kernels, so reusing the memory is safe.
extern "C" {
void conv2d_forward_cuda(float *y, const float *x, const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t P,
                         int64_t Q) {
    int64_t crs = C * R * S, npq = N * P * Q;
    check_int32(crs * npq, N * C * H * W, K * npq);
#ifdef CG_HAVE_CUDNN
    int64_t d[11] = {N, C, H, W, K, R, S, stride, pad, P, Q};
    cg_cudnn_conv2d_forward(y, x, w, d);
    if (bias) LAUNCH(add_channel_bias_kernel, N * K * P * Q, y, bias, (int)N, (int)K, (int)(P * Q));
#else
    float *col = (float *)cg_cuda_alloc((size_t)(crs * npq) * sizeof(float));
    float *yk = (float *)cg_cuda_alloc((size_t)(K * npq) * sizeof(float));
    LAUNCH(im2col_kernel, crs * npq, col, x, N, C, H, W, R, S, stride, pad, P, Q);
    gemm_cuda(false, false, K, npq, crs, 1.0f, w, col, 0.0f, yk); // yk (K, NPQ) = W (K, CRS) col (CRS, NPQ)
    LAUNCH(from_gemm_kernel, N * K * P * Q, y, yk, bias, N, K, P * Q);
    cg_cuda_free(col);
    cg_cuda_free(yk);
#endif
}

void conv2d_backward_cuda(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                          int64_t pad, int64_t P, int64_t Q, bool accumulate) {
    int64_t crs = C * R * S, npq = N * P * Q;
    check_int32(crs * npq, N * C * H * W, K * npq);
    // a first gradient (core/tape.h): zeros, then added to as below (cuDNN's FP32 backward adds)
    if (dx && !accumulate) zero_cuda(dx, (size_t)(N * C * H * W) * sizeof(float));
    if (dbias) conv_bias_backward(dbias, dy, N, K, P * Q);
    // A first layer's weight gradient: the direct kernel (conv_direct.cu), faster than cuDNN's FP32 engines there.
    if (dw && conv_direct_weight_grad(CG_F32, dw, x, dy, false, N, C, H, W, K, R, S, stride, pad, P, Q)) dw = NULL;
    if (dx == NULL && dw == NULL) return;
#ifdef CG_HAVE_CUDNN
    int64_t d[11] = {N, C, H, W, K, R, S, stride, pad, P, Q};
    if (dw) cg_cudnn_conv2d_backward_filter(dw, x, dy, d);
    if (dx) cg_cudnn_conv2d_backward_data(dx, w, dy, d);
#else
    float *dyk = (float *)cg_cuda_alloc((size_t)(K * npq) * sizeof(float));
    float *col = (float *)cg_cuda_alloc((size_t)(crs * npq) * sizeof(float));
    LAUNCH(to_gemm_kernel, N * K * P * Q, dyk, dy, N, K, P * Q);
    if (dw) {
        LAUNCH(im2col_kernel, crs * npq, col, x, N, C, H, W, R, S, stride, pad, P, Q);
        gemm_cuda(false, true, K, crs, npq, 1.0f, dyk, col, 1.0f, dw); // dW (K, CRS) += dyk col^T
    }
    if (dx) {
        gemm_cuda(true, false, crs, npq, K, 1.0f, w, dyk, 0.0f, col); // dcol (CRS, NPQ) = W^T dyk
        LAUNCH(col2im_kernel, N * C * H * W, dx, col, N, C, H, W, R, S, stride, pad, P, Q);
    }
    cg_cuda_free(dyk);
    cg_cuda_free(col);
#endif
}

static void max_pool2d_forward_cuda(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                    int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    max_pool_launch<float>(y, argmax, x, N, C, H, W, kernel, stride, P, Q);
}
static void max_pool2d_backward_cuda(float *dx, const float *dy, const int32_t *argmax, int64_t n) {
    LAUNCH(max_pool_backward_kernel, n, dx, dy, argmax, n);
}
}

// Average pooling (core/kernels.h): one thread per output element forward; backward one thread
// per input element, gathering the windows that cover it (as the CPU, no atomics).
static __global__ void avg_pool2d_kernel(float *y, const float *x, int64_t NC, int64_t H, int64_t W, int64_t kernel,
                                         int64_t stride, int64_t P, int64_t Q) {
    float inv = 1.0f / (float)(kernel * kernel);
    GRID_STRIDE(o, NC * P * Q) {
        int64_t q = o % Q, p = (o / Q) % P, plane = o / (P * Q);
        const float *xp = x + plane * H * W;
        float sum = 0.0f;
        for (int64_t i = 0; i < kernel; i++)
            for (int64_t j = 0; j < kernel; j++) sum += xp[(p * stride + i) * W + q * stride + j];
        y[o] = sum * inv;
    }
}

static __device__ void covering(int64_t h, int64_t kernel, int64_t stride, int64_t P, int64_t *first, int64_t *last) {
    int64_t lo = h - kernel + 1;
    *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    *last = h / stride < P - 1 ? h / stride : P - 1;
}

static __global__ void avg_pool2d_backward_kernel(float *dx, const float *dy, int64_t NC, int64_t H, int64_t W,
                                                  int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    float inv = 1.0f / (float)(kernel * kernel);
    GRID_STRIDE(i, NC * H * W) {
        int64_t w = i % W, h = (i / W) % H, plane = i / (H * W);
        int64_t p0, p1, q0, q1;
        covering(h, kernel, stride, P, &p0, &p1);
        covering(w, kernel, stride, Q, &q0, &q1);
        float sum = 0.0f;
        for (int64_t p = p0; p <= p1; p++)
            for (int64_t q = q0; q <= q1; q++) sum += dy[(plane * P + p) * Q + q];
        dx[i] += sum * inv;
    }
}

static __global__ void global_avg_pool_kernel(float *y, const float *x, int64_t planes, int64_t HW) {
    GRID_STRIDE(p, planes) {
        float sum = 0.0f;
        for (int64_t i = 0; i < HW; i++) sum += x[p * HW + i];
        y[p] = sum / (float)HW;
    }
}

static __global__ void global_avg_pool_backward_kernel(float *dx, const float *dy, int64_t planes, int64_t HW) {
    GRID_STRIDE(i, planes * HW) dx[i] += dy[i / HW] / (float)HW;
}

// The same on 16-bit activations (core/kernels.h: global_avg_pool_forward_h): one thread per
// (n, c), its plane's values widened and summed in f32 in the order of their positions, as the
// f32 kernel above (the same bits), then rounded once. Channels-last, the plane's values lie C
// apart and neighbouring threads read neighbouring channels: each step of the loop is one
// coalesced read for the warp. Under autocast this replaces three passes (a cast of the 16-bit
// activations to f32, a copy to NCHW, the f32 pooling), and three more in the backward.
template <typename T>
static __global__ void global_avg_pool_h_kernel(T *y, const T *x, int NC, int C, int HW, bool channels_last) {
    GRID_STRIDE32(i, NC) {
        int n = i / C, c = i - n * C;
        const T *plane = channels_last ? x + n * HW * C + c : x + i * HW;
        int step = channels_last ? C : 1;
        float sum = 0.0f;
        for (int j = 0; j < HW; j++) sum += h2f(plane[j * step]);
        y[i] = f2h<T>(sum / (float)HW);
    }
}

// dx = round(dx + dy / HW), or round(0 + dy / HW) when written (the zeros the CPU adds to: the
// same bits, a zero's sign included). One thread per VEC values of dx: channels-last with C a
// multiple of 8, 8 neighbouring channels of one position (16-byte loads and stores); else one.
template <typename T, int VEC>
static __global__ void global_avg_pool_backward_h_kernel(T *dx, const T *dy, int n, int C, int HW, bool channels_last,
                                                         bool accumulate) {
    GRID_STRIDE32(v, n / VEC) {
        int i = v * VEC, plane = channels_last ? i / (HW * C) * C + i % C : i / HW; // dy index of value i
        float g[VEC], d[VEC];
        load_vec<VEC>(g, dy + plane); // VEC 8: channels plane .. plane + 7 of the same image
        gradient_start_vec<VEC>(d, dx + i, accumulate);
#pragma unroll
        for (int k = 0; k < VEC; k++) d[k] = d[k] + g[k] / (float)HW;
        store_vec<VEC>(dx + i, d);
    }
}

static void avg_pool2d_forward_cuda(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                    int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    LAUNCH(avg_pool2d_kernel, N * C * P * Q, y, x, N * C, H, W, kernel, stride, P, Q);
}
static void avg_pool2d_backward_cuda(float *dx, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t kernel, int64_t stride, int64_t P, int64_t Q) {
    LAUNCH(avg_pool2d_backward_kernel, N * C * H * W, dx, dy, N * C, H, W, kernel, stride, P, Q);
}
static void global_avg_pool_forward_cuda(float *y, const float *x, int64_t planes, int64_t HW) {
    LAUNCH(global_avg_pool_kernel, planes, y, x, planes, HW);
}
static void global_avg_pool_backward_cuda(float *dx, const float *dy, int64_t planes, int64_t HW) {
    LAUNCH(global_avg_pool_backward_kernel, planes * HW, dx, dy, planes, HW);
}

static void global_avg_pool_forward_h_cuda(cg_dtype dtype, void *y, const void *x, int64_t N, int64_t C, int64_t HW,
                                           bool channels_last) {
    cg_cuda_check_int32("global_avg_pool2d", N * C * HW);
    DISPATCH16(dtype, LAUNCH(global_avg_pool_h_kernel<T>, N * C, (T *)y, (const T *)x, (int)(N * C), (int)C, (int)HW,
                             channels_last));
}
static void global_avg_pool_backward_h_cuda(cg_dtype dtype, void *dx, const void *dy, int64_t N, int64_t C,
                                            int64_t HW, bool channels_last, bool accumulate) {
    cg_cuda_check_int32("global_avg_pool2d", N * C * HW);
    DISPATCH16(dtype, {
        if (channels_last && vec_width<T>(C, dx, dy) == 8)
            LAUNCH((global_avg_pool_backward_h_kernel<T, 8>), N * C * HW / 8, (T *)dx, (const T *)dy, (int)(N * C * HW),
                   (int)C, (int)HW, true, accumulate);
        else
            LAUNCH((global_avg_pool_backward_h_kernel<T, 1>), N * C * HW, (T *)dx, (const T *)dy, (int)(N * C * HW),
                   (int)C, (int)HW, channels_last, accumulate);
    });
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void conv_register_cuda(cg_kernels *k) {
    k->avg_pool2d_forward = avg_pool2d_forward_cuda;
    k->avg_pool2d_backward = avg_pool2d_backward_cuda;
    k->global_avg_pool_forward = global_avg_pool_forward_cuda;
    k->global_avg_pool_backward = global_avg_pool_backward_cuda;
    k->global_avg_pool_forward_h = global_avg_pool_forward_h_cuda;
    k->global_avg_pool_backward_h = global_avg_pool_backward_h_cuda;
    k->conv2d_forward = conv2d_forward_cuda;
    k->conv2d_backward = conv2d_backward_cuda;
    k->max_pool2d_forward = max_pool2d_forward_cuda;
    k->max_pool2d_backward = max_pool2d_backward_cuda;
}

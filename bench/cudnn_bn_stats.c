#define _POSIX_C_SOURCE 200809L
// cudnn_bn_stats.c: can cuDNN take batch norm's statistics inside the convolution before it, and
// does that beat cgrad's own pass? In training, each of ResNet-18's batch norms first reads the
// convolution's whole output once for two sums per channel (sum of y, sum of y^2: mean and
// variance), then normalises. cuDNN's graph API can describe the convolution with those sums in
// its epilogue: y = conv(x, w) kept in f32 inside the kernel (a virtual tensor), stored rounded to
// bf16 (an identity pointwise op), and two per-channel ADD reductions, of y and of y * y. If the
// engine that runs it is as fast as the plain convolution, the statistics pass disappears.
//
// For each of ResNet-18's 3 x 3 stride-1 convolutions on CIFAR-10 (bf16, NHWC, batch 512), this
// program times, with CUDA events (each plan: 3 untimed runs, then the mean of 20):
//   conv     the convolution alone, the fastest of the engines cuDNN's heuristics propose;
//   fused    the convolution with the two reductions, the fastest engine that takes the graph;
//   cgrad    cgrad's batch norm forward on that output in training minus the same in evaluation
//            (the statistics: the sums pass and the per-channel step after it, kernels/cuda/norm.cu);
// and checks the fused sums: run twice (the same bits or not: cgrad's batch norm is deterministic)
// and against the sums of the stored bf16 output (the fused ones add the f32 values before
// rounding, so they differ by the roundings' noise, printed as a fraction of the standard deviation).
// Figures to read, not a test: build/bench_cudnn_bn_stats [--batch N] (a CUDA build with cuDNN).
// A graph with cuDNN's GEN_STATS operation instead was tried first: 2.2 to 2.3 times the plain
// convolution's time on an H100 (cuDNN 9.14), so it is not timed here.
#include "core/common.h"
#include "core/device.h"
#include "core/kernels.h"

#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call) check_cudnn((call), #call, __LINE__)
#define CC(call) check_cuda((call), #call, __LINE__)
static void check_cudnn(cudnnStatus_t s, const char *what, int line) {
    if (s == CUDNN_STATUS_SUCCESS) return;
    fprintf(stderr, "bench_cudnn_bn_stats: line %d: %s: %s\n", line, what, cudnnGetErrorString(s));
    exit(1);
}
static void check_cuda(cudaError_t e, const char *what, int line) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "bench_cudnn_bn_stats: line %d: %s: %s\n", line, what, cudaGetErrorString(e));
    exit(1);
}
#define SET(d, attr, type, n, ptr) CK(cudnnBackendSetAttribute(d, attr, type, n, ptr))

static cudnnHandle_t handle;
enum { UID_X = 1, UID_W, UID_Y, UID_SUM, UID_SQ, UID_YF, UID_Y2 };

static cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t t) {
    cudnnBackendDescriptor_t d;
    CK(cudnnBackendCreateDescriptor(t, &d));
    return d;
}

// A tensor of dims (n, c, h, w) stored NHWC; virtual: never stored (inside the fused kernel).
static cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w,
                                       bool is_virtual) {
    cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c}, alignment = 16;
    SET(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    SET(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
    SET(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
    SET(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    SET(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    CK(cudnnBackendFinalize(t));
    return t;
}

// y = conv(x, w), 3 x 3, stride 1, padding 1, f32 accumulation.
static cudnnBackendDescriptor_t conv_op(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t w,
                                        cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t conv = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    int64_t spatial = 2, pads[2] = {1, 1}, ones[2] = {1, 1};
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    SET(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
    SET(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    SET(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    SET(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
    SET(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
    SET(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, ones);
    SET(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, ones);
    CK(cudnnBackendFinalize(conv));
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    float alpha = 1.0f, beta = 0.0f;
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
    SET(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    CK(cudnnBackendFinalize(op));
    return op;
}

// y = x (IDENTITY: a cast to y's type) or x * b (MUL), in f32.
static cudnnBackendDescriptor_t pointwise_op(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                                             cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CK(cudnnBackendFinalize(pw));
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) SET(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    CK(cudnnBackendFinalize(op));
    return op;
}

// y (1, C, 1, 1) = the sum of x over N, H and W, in f32.
static cudnnBackendDescriptor_t channel_sum_op(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t red = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    cudnnReduceTensorOp_t add = CUDNN_REDUCE_TENSOR_ADD;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SET(red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &add);
    SET(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CK(cudnnBackendFinalize(red));
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &red);
    CK(cudnnBackendFinalize(op));
    return op;
}

static cudnnBackendDescriptor_t graph_of(cudnnBackendDescriptor_t *ops, int64_t n) {
    cudnnBackendDescriptor_t g = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    SET(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, ops);
    SET(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    CK(cudnnBackendFinalize(g));
    return g;
}

// A plan and what it needs to run: the variant pack of the tensors' addresses and a workspace.
typedef struct {
    cudnnBackendDescriptor_t plan, pack;
    void *workspace;
    double us; // the mean of the timed runs
} runnable;

static void run_once(const runnable *r) { CK(cudnnBackendExecute(handle, r->plan, r->pack)); }

// The mean time of 20 runs after 3 untimed ones, in microseconds.
static double time_runs(const runnable *r) {
    cudaEvent_t start, stop;
    CC(cudaEventCreate(&start));
    CC(cudaEventCreate(&stop));
    for (int i = 0; i < 3; i++) run_once(r);
    CC(cudaEventRecord(start, 0));
    for (int i = 0; i < 20; i++) run_once(r);
    CC(cudaEventRecord(stop, 0));
    CC(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CC(cudaEventElapsedTime(&ms, start, stop));
    cudaEventDestroy(start), cudaEventDestroy(stop);
    return 1000.0 * ms / 20;
}

// The fastest plan of the engine configurations that cuDNN's heuristics (mode A) propose for the
// graph, the first 12 that run; us = 0 when none does.
static runnable fastest(cudnnBackendDescriptor_t graph, int64_t n, const int64_t *uids, void **pointers) {
    enum { MAX_CONFIGS = 32, MAX_PLANS = 12 };
    runnable best = {0};
    cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), configs[MAX_CONFIGS];
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    CK(cudnnBackendFinalize(heur));
    for (int i = 0; i < MAX_CONFIGS; i++) configs[i] = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t count = 0;
    if (cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, MAX_CONFIGS,
                                 &count, configs) != CUDNN_STATUS_SUCCESS)
        count = 0;
    int plans = 0;
    for (int64_t i = 0; i < count && i < MAX_CONFIGS && plans < MAX_PLANS; i++) {
        runnable r = {make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR), NULL, NULL, 0.0};
        SET(r.plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
        SET(r.plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &configs[i]);
        if (cudnnBackendFinalize(r.plan) != CUDNN_STATUS_SUCCESS) { // this engine cannot run the graph
            cudnnBackendDestroyDescriptor(r.plan);
            continue;
        }
        plans++;
        int64_t bytes = 0, got = 0;
        CK(cudnnBackendGetAttribute(r.plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                                    &bytes));
        if (bytes > 0) CC(cudaMalloc(&r.workspace, (size_t)bytes));
        r.pack = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
        SET(r.pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
        SET(r.pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, pointers);
        SET(r.pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &r.workspace);
        CK(cudnnBackendFinalize(r.pack));
        r.us = time_runs(&r);
        if (best.plan == NULL || r.us < best.us) best = r; // (the slower ones are left: a short program)
    }
    return best;
}

// The sums of the stored bf16 output y (n rows of C channels), in double, into sum and sum_sq.
static void host_sums(const uint16_t *y, int64_t n, int64_t C, double *sum, double *sum_sq) {
    for (int64_t c = 0; c < C; c++) sum[c] = sum_sq[c] = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++) {
            uint32_t bits = (uint32_t)y[i * C + c] << 16;
            float v;
            memcpy(&v, &bits, sizeof v);
            sum[c] += v, sum_sq[c] += (double)v * v;
        }
}

// cgrad's batch norm statistics on y (N, C, HW channels-last bf16): its training forward minus its
// evaluation forward (the same normalising pass), microseconds, the mean of 20 each.
static double cgrad_stats_us(cg_device gpu, void *y, int64_t N, int64_t C, int64_t HW) {
    const cg_kernels *k = cg_kernels_for(gpu);
    float *buffers = cg_device_alloc(gpu, (size_t)(6 * C) * sizeof(float)); // stats (2C), gamma, beta, mean, var
    cg_device_zero(gpu, buffers, (size_t)(6 * C) * sizeof(float));
    void *out = cg_device_alloc(gpu, (size_t)(N * C * HW) * 2);
    double us[2];
    for (int training = 0; training < 2; training++) {
        for (int rep = 0; rep < 23; rep++) {
            if (rep == 3) cg_device_synchronize(gpu), us[training] = cg_seconds();
            k->batch_norm_forward_h(CG_BF16, out, buffers, buffers + 4 * C, buffers + 5 * C, y, buffers + 2 * C,
                                    buffers + 3 * C, N, C, HW, 1e-5f, 0.1f, training, true);
        }
        cg_device_synchronize(gpu);
        us[training] = 1e6 * (cg_seconds() - us[training]) / 20;
    }
    cg_device_free(gpu, out), cg_device_free(gpu, buffers);
    return us[1] - us[0];
}

static uint16_t bf16_of(float f) { // round to nearest even (finite values)
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void run_shape(cg_device gpu, int64_t N, int64_t C, int64_t H) {
    int64_t K = C, HW = H * H;
    size_t nx = (size_t)(N * HW * C), nw = (size_t)(K * 9 * C), ny = (size_t)(N * HW * K);
    uint16_t *host = malloc(nx > ny ? nx * 2 : ny * 2);
    uint16_t *w_host = malloc(nw * 2);
    CG_CHECK(host != NULL && w_host != NULL, "out of host memory");
    uint32_t state = 12345;
    for (size_t i = 0; i < nx; i++) // uniform in [-1, 1); weights in [-0.1, 0.1)
        state = state * 1664525u + 1013904223u, host[i] = bf16_of((float)(state >> 8) / 8388608.0f - 1.0f);
    for (size_t i = 0; i < nw; i++)
        state = state * 1664525u + 1013904223u, w_host[i] = bf16_of(0.1f * ((float)(state >> 8) / 8388608.0f - 1.0f));
    void *x, *w, *y, *sums;
    CC(cudaMalloc(&x, nx * 2));
    CC(cudaMalloc(&w, nw * 2));
    CC(cudaMalloc(&y, ny * 2));
    CC(cudaMalloc(&sums, (size_t)(2 * K) * sizeof(float)));
    CC(cudaMemcpy(x, host, nx * 2, cudaMemcpyHostToDevice));
    CC(cudaMemcpy(w, w_host, nw * 2, cudaMemcpyHostToDevice));

    cudnnBackendDescriptor_t tx = tensor(UID_X, CUDNN_DATA_BFLOAT16, N, C, H, H, false);
    cudnnBackendDescriptor_t tw = tensor(UID_W, CUDNN_DATA_BFLOAT16, K, C, 3, 3, false);
    cudnnBackendDescriptor_t ty = tensor(UID_Y, CUDNN_DATA_BFLOAT16, N, K, H, H, false);
    cudnnBackendDescriptor_t plain = conv_op(tx, tw, ty);
    int64_t uids[5] = {UID_X, UID_W, UID_Y, UID_SUM, UID_SQ};
    void *pointers[5] = {x, w, y, sums, (float *)sums + K};
    runnable conv = fastest(graph_of(&plain, 1), 3, uids, pointers);

    cudnnBackendDescriptor_t tyf = tensor(UID_YF, CUDNN_DATA_FLOAT, N, K, H, H, true);
    cudnnBackendDescriptor_t ty2 = tensor(UID_Y2, CUDNN_DATA_FLOAT, N, K, H, H, true);
    cudnnBackendDescriptor_t tsum = tensor(UID_SUM, CUDNN_DATA_FLOAT, 1, K, 1, 1, false);
    cudnnBackendDescriptor_t tsq = tensor(UID_SQ, CUDNN_DATA_FLOAT, 1, K, 1, 1, false);
    cudnnBackendDescriptor_t ops[5] = {conv_op(tx, tw, tyf), pointwise_op(CUDNN_POINTWISE_IDENTITY, tyf, NULL, ty),
                                       channel_sum_op(tyf, tsum), pointwise_op(CUDNN_POINTWISE_MUL, tyf, tyf, ty2),
                                       channel_sum_op(ty2, tsq)};
    runnable fused = fastest(graph_of(ops, 5), 5, uids, pointers);
    double cgrad = cgrad_stats_us(gpu, y, N, K, HW);
    printf("%4lld x %2lld x %2lld  %8.1f  %8.1f  %+8.1f  %8.1f", (long long)C, (long long)H, (long long)H, conv.us,
           fused.us, fused.plan ? fused.us - conv.us : 0.0, cgrad);
    if (fused.plan) {
        // Twice, the same bits?, and against the stored output's sums.
        float *got = malloc((size_t)(4 * K) * sizeof(float));
        double *sum = malloc((size_t)(2 * K) * sizeof(double)), *sum_sq = sum + K;
        CG_CHECK(got != NULL && sum != NULL, "out of host memory");
        run_once(&fused);
        CC(cudaMemcpy(got, sums, (size_t)(2 * K) * sizeof(float), cudaMemcpyDeviceToHost));
        run_once(&fused);
        CC(cudaMemcpy(got + 2 * K, sums, (size_t)(2 * K) * sizeof(float), cudaMemcpyDeviceToHost));
        bool same = memcmp(got, got + 2 * K, (size_t)(2 * K) * sizeof(float)) == 0;
        CC(cudaMemcpy(host, y, ny * 2, cudaMemcpyDeviceToHost));
        host_sums(host, (int64_t)(ny / (size_t)K), K, sum, sum_sq);
        double m = (double)(ny / (size_t)K), worst = 0.0;
        for (int64_t c = 0; c < K; c++) { // |mean difference| / std
            double mean = sum[c] / m, sd = sqrt(fmax(sum_sq[c] / m - mean * mean, 1e-30));
            double d = fabs((double)got[c] / m - mean) / sd;
            if (d > worst) worst = d;
        }
        printf("  %-13s  %.1e\n", same ? "same bits" : "DIFFERENT", worst);
        free(got), free(sum);
    } else {
        printf("  (no engine)\n");
    }
    cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(sums);
    free(host), free(w_host);
}

int main(int argc, char **argv) {
    static const char usage[] =
        "usage: bench_cudnn_bn_stats [--batch N]\n"
        "  ResNet-18's 3 x 3 stride-1 convolutions (bf16, NHWC) on the GPU: cuDNN's fastest engine for the\n"
        "  convolution alone, its fastest for the convolution with batch norm's two per-channel sums in\n"
        "  its epilogue, and cgrad's own statistics pass on the same output (microseconds a call).\n"
        "  --batch N   images per batch (default 512)\n";
    long batch = 512;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_cudnn_bn_stats: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (batch < 1 || batch > 4096) {
        fprintf(stderr, "bench_cudnn_bn_stats: --batch %ld outside 1 .. 4096\n", batch);
        return 2;
    }
    cg_device gpu;
    if (cg_device_parse("cuda", &gpu).code != CG_OK) {
        fprintf(stderr, "bench_cudnn_bn_stats: no usable GPU\n");
        return 1;
    }
    CK(cudnnCreate(&handle));
    struct cudaDeviceProp prop;
    CC(cudaGetDeviceProperties(&prop, 0));
    printf("%s, cuDNN %zu; ResNet-18's 3 x 3 stride-1 convolutions, bf16 NHWC, batch %ld (microseconds)\n", prop.name,
           cudnnGetVersion(), batch);
    printf("channels x H x W      conv     fused     extra     cgrad  fused sums twice  |mean - stored's| / sd\n");
    static const int64_t shapes[][2] = {{64, 32}, {128, 16}, {256, 8}, {512, 4}};
    for (int i = 0; i < 4; i++) run_shape(gpu, batch, shapes[i][0], shapes[i][1]);
    printf("extra = fused - conv: what the sums cost inside the convolution; cgrad = its batch norm's statistics\n"
           "(training forward - evaluation forward), which the fused convolution would replace.\n");
    return 0;
}

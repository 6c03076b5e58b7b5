// test_quant_cuda.c: the GPU's int8 inference kernels (kernels/cuda/int8.cu) give the SAME bits
// as the CPU's (core/qkernels.h defines the arithmetic so that they can): input quantisation,
// int8 max pooling, the int8 fully connected and convolution layers through cuBLASLt and through
// the dp4a kernel (CGRAD_INT8_GEMM=dp4a; at least one product must take the cuBLASLt path), requantised and dequantised, and a whole int8 model
// converted once and run on both devices. Without a GPU it reports itself skipped (77).
#define _POSIX_C_SOURCE 200112L
#include "cgrad.h"
#include "core/quant/qkernels.h"
#include "layers/quantize.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cg_device gpu;

static void *to_gpu(const void *host, size_t bytes) {
    void *p = cg_device_alloc(gpu, bytes);
    cg_device_copy(gpu, p, cg_cpu(), host, bytes);
    return p;
}

static void random_i8(cg_rng *rng, int8_t *x, int64_t n, int lo, int hi) {
    uint32_t u;
    for (int64_t i = 0; i < n; i++) {
        cg_rng_u32(rng, &u, 1);
        x[i] = (int8_t)(lo + (int)(u % (uint32_t)(hi - lo + 1)));
    }
}

// The GPU's bytes at d against the CPU's at host.
static void same_bits(const char *what, const void *host, const void *d, size_t bytes) {
    char *back = malloc(bytes);
    cg_device_copy(cg_cpu(), back, gpu, d, bytes);
    for (size_t i = 0; i < bytes; i++)
        if (back[i] != ((const char *)host)[i]) {
            fail(what, "byte %zu of %zu differs: GPU %d, CPU %d", i, bytes, back[i], ((const char *)host)[i]);
            break;
        }
    free(back);
}

// One layer (conv when R > 0, else linear) on both devices in every output mode.
static void layer_case(cg_rng *rng, int64_t N, int64_t H, int64_t W, int64_t C, int64_t K, int64_t R,
                       int64_t stride, int64_t pad, const char *gemm) {
    const cg_qkernels *g = cg_qkernels_for(gpu);
    bool conv = R > 0;
    int64_t P = conv ? (H + 2 * pad - R) / stride + 1 : 1, Q = conv ? (W + 2 * pad - R) / stride + 1 : 1;
    int64_t Kr = conv ? R * R * C : C, Kp = CG_QK_PAD(Kr), M = N * P * Q, nx = conv ? N * H * W * C : N * C;
    int8_t *x = malloc(nx), *w = calloc(K * Kp, 1);
    int32_t *offset = malloc(sizeof(int32_t) * K);
    float *mult = malloc(sizeof(float) * K);
    random_i8(rng, x, nx, -128, 127);
    for (int64_t j = 0; j < K; j++) random_i8(rng, w + j * Kp, Kr, -127, 127);
    for (int64_t j = 0; j < K; j++) {
        float u[2];
        cg_rng_uniform(rng, u, 2, 0.0f, 1.0f);
        offset[j] = (int32_t)((u[0] - 0.5f) * 4000.0f);
        mult[j] = (0.5f + u[1]) / (96.0f * sqrtf((float)Kr));
    }
    int8_t *dx = to_gpu(x, nx), *dw = to_gpu(w, K * Kp);
    int32_t *doff = to_gpu(offset, sizeof(int32_t) * K);
    float *dmult = to_gpu(mult, sizeof(float) * K);
    for (int mode = 0; mode < 4; mode++) {
        cg_qoutput o = {offset, mult, -17, mode & 1, (mode & 2) != 0}, od = o;
        od.offset = doff, od.multiplier = dmult;
        size_t bytes = (size_t)(M * K) * (o.to_float ? 4 : 1);
        void *y = malloc(bytes), *dy = cg_device_alloc(gpu, bytes);
        if (conv) {
            cg_cpu_qkernels.conv2d(y, x, w, &o, 23, N, H, W, C, K, R, R, stride, pad, P, Q);
            g->conv2d(dy, dx, dw, &od, 23, N, H, W, C, K, R, R, stride, pad, P, Q);
        } else {
            cg_cpu_qkernels.linear(y, x, w, &o, N, K, C);
            g->linear(dy, dx, dw, &od, N, K, C);
        }
        char what[160];
        snprintf(what, sizeof what, "%s %s N%lld %lldx%lldx%lld -> %lld R%lld s%lld p%lld relu %d float %d", gemm,
                 conv ? "conv" : "linear", (long long)N, (long long)H, (long long)W, (long long)C, (long long)K,
                 (long long)R, (long long)stride, (long long)pad, o.relu, o.to_float);
        same_bits(what, y, dy, bytes);
        free(y);
        cg_device_free(gpu, dy);
    }
    cg_device_free(gpu, dx), cg_device_free(gpu, dw), cg_device_free(gpu, doff), cg_device_free(gpu, dmult);
    free(x), free(w), free(offset), free(mult);
}

static void test_layers(const char *gemm) {
    if (strcmp(gemm, "dp4a") == 0)
        setenv("CGRAD_INT8_GEMM", "dp4a", 1);
    else
        unsetenv("CGRAD_INT8_GEMM"); // cuBLASLt where its layout rules allow, dp4a elsewhere
    int64_t before = cg_qkernels_for(gpu)->cublaslt_gemms();
    cg_rng rng = cg_rng_new(71, 0);
    layer_case(&rng, 4, 28, 28, 1, 32, 3, 1, 1, gemm);   // the tutorial CNN's c1
    layer_case(&rng, 3, 14, 14, 32, 64, 3, 1, 1, gemm);  // its c2
    layer_case(&rng, 2, 9, 7, 3, 10, 3, 2, 0, gemm);     // odd sizes, stride 2, 10 channels
    layer_case(&rng, 2, 11, 13, 6, 70, 5, 1, 2, gemm);
    layer_case(&rng, 37, 1, 1, 3136, 128, 0, 1, 0, gemm); // its f1
    layer_case(&rng, 37, 1, 1, 128, 10, 0, 1, 0, gemm);   // its f2
    layer_case(&rng, 5, 1, 1, 37, 33, 0, 1, 0, gemm);     // K not a multiple of 4
    layer_case(&rng, 300, 1, 1, 784, 128, 0, 1, 0, gemm); // the MLP's first layer
    int64_t through_lt = cg_qkernels_for(gpu)->cublaslt_gemms() - before;
    printf("%s: %lld of the int8 products went through cuBLASLt\n", gemm, (long long)through_lt);
    if (strcmp(gemm, "dp4a") == 0 && through_lt != 0) fail("CGRAD_INT8_GEMM=dp4a", "%lld cuBLASLt products", (long long)through_lt);
    if (strcmp(gemm, "dp4a") != 0 && through_lt == 0)
        fail("cuBLASLt", "no int8 product went through cuBLASLt (does this GPU have int8 Tensor Cores?)");
}

static void test_pool_quantize(void) {
    const cg_qkernels *g = cg_qkernels_for(gpu);
    cg_rng rng = cg_rng_new(72, 0);
    enum { N = 3, H = 9, W = 8, C = 5, P = 4, Q = 4 };
    int8_t x[N * H * W * C], y[N * P * Q * C];
    random_i8(&rng, x, N * H * W * C, -128, 127);
    int8_t *dx = to_gpu(x, sizeof x), *dy = cg_device_alloc(gpu, sizeof y);
    cg_cpu_qkernels.max_pool2d(y, x, N, H, W, C, 2, 2, P, Q);
    g->max_pool2d(dy, dx, N, H, W, C, 2, 2, P, Q);
    same_bits("int8 max pool", y, dy, sizeof y);
    cg_device_free(gpu, dx), cg_device_free(gpu, dy);

    enum { n = 4, c = 3, hw = 1000 };
    static float xf[n * c * hw];
    static int8_t q[n * c * hw];
    cg_rng_normal(&rng, xf, n * c * hw, 0.1f, 2.0f);
    xf[0] = 1e9f, xf[1] = -1e9f;
    for (int i = 2; i < 200; i++) xf[i] = ((float)(i - 100) + 0.5f) * 0.25f; // ties: k + 0.5 steps of 0.25
    float *dxf = to_gpu(xf, sizeof xf);
    int8_t *dq = cg_device_alloc(gpu, sizeof q);
    cg_cpu_qkernels.quantize_nchw(q, xf, n, c, hw, 0.25f, 5);
    g->quantize_nchw(dq, dxf, n, c, hw, 0.25f, 5);
    same_bits("quantize NCHW -> NHWC", q, dq, sizeof q);
    cg_cpu_qkernels.quantize_nchw(q, xf, n, c, hw, 0.0371f, -100);
    g->quantize_nchw(dq, dxf, n, c, hw, 0.0371f, -100);
    same_bits("quantize NCHW -> NHWC, scale 0.0371", q, dq, sizeof q);
    cg_device_free(gpu, dxf), cg_device_free(gpu, dq);
}

// A small CNN converted twice from the same fp32 weights and calibration batch, once for each
// device: every layer's output and the logits are the same bits.
static void test_model(void) {
    cg_params *params = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(73, CG_STREAM_INIT);
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", 2, 16, 3, 1, 1, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_conv2d_new(params, "c2", 16, 24, 3, 1, 1, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "f1", 24 * 3 * 3, 40, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(params, "f2", 40, 10, true, &rng));
    cg_tape *tape = cg_tape_new(cg_cpu(), 1 << 20);
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 4, (int64_t[]){64, 2, 12, 12});
    cg_tensor *xg = cg_tensor_new(gpu, CG_F32, 4, (int64_t[]){64, 2, 12, 12});
    cg_rng_normal(&rng, x->data, x->numel, 0.0f, 1.0f);
    cg_tensor_copy(xg, x);
    cg_qmodel *qc = NULL, *qg = NULL;
    cg_status s = cg_qmodel_new(&qc, m, 2, 12, 12, CG_OBSERVER_PERCENTILE, 0, cg_cpu());
    if (s.code == CG_OK) s = cg_qmodel_new(&qg, m, 2, 12, 12, CG_OBSERVER_PERCENTILE, 0, gpu);
    if (s.code != CG_OK) {
        fail("model", "%s", s.message);
        return;
    }
    cg_qmodel_calibrate(qc, tape, x);
    cg_qmodel_calibrate(qg, tape, x);
    cg_qmodel_convert(qc);
    cg_qmodel_convert(qg);
    unsetenv("CGRAD_INT8_GEMM");
    cg_tensor *lc = cg_qmodel_forward(qc, x), *lg = cg_qmodel_forward(qg, xg);
    same_bits("int8 model logits", lc->data, lg->data, cg_tensor_bytes(lc));
    float *a = malloc(sizeof(float) * 64 * 16 * 12 * 12), *b = malloc(sizeof(float) * 64 * 16 * 12 * 12);
    for (int i = 0; i < qc->count; i++) {
        const cg_qlayer *L = &qc->layers[i];
        int64_t n = 64 * L->out_c * L->out_h * L->out_w;
        cg_qmodel_layer_output(qc, i, 64, a);
        cg_qmodel_layer_output(qg, i, 64, b);
        if (memcmp(a, b, sizeof(float) * (size_t)n) != 0) fail("int8 model layer", "layer %d (%s) differs", i, L->name);
    }
    free(a), free(b);
    cg_qmodel_free(qc), cg_qmodel_free(qg);
    cg_tensor_free(x), cg_tensor_free(xg);
    cg_tape_free(tape);
    cg_module_free(m);
    cg_params_free(params);
}

int main(void) {
    if (cg_cuda_device_count() == 0) {
        printf("SKIP test_quant_cuda: no GPU\n");
        return 77;
    }
    gpu = (cg_device){CG_CUDA, 0};
    test_layers("auto");
    test_layers("dp4a");
    test_pool_quantize();
    test_model();
    return check_summary("test_quant_cuda");
}

// test_quant_layers.c: the CPU's int8 inference kernels (core/qkernels.h) bit-exact against naive
// loops (quantising a batch, the int8 fully connected and convolution layers with their output
// stage, int8 max pooling), the int8 twin of a small model close to its fp32 outputs (which
// catches a wrong weight order after Flatten), the layers that cannot be converted, and, when the
// real Fashion-MNIST is installed, a tutorial CNN trained briefly whose int8 test accuracy must be
// within a point of its fp32 accuracy. The GPU against the CPU: test_quant_cuda.c.
#include "cgrad.h"
#include "core/quant/qkernels.h"
#include "layers/quantize.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void random_i8(cg_rng *rng, int8_t *x, int64_t n, int lo, int hi) {
    uint32_t u;
    for (int64_t i = 0; i < n; i++) {
        cg_rng_u32(rng, &u, 1);
        x[i] = (int8_t)(lo + (int)(u % (uint32_t)(hi - lo + 1)));
    }
}

// The output stage of core/qkernels.h, written out for one value.
static void ref_stage(void *y, int64_t index, int32_t a, float mult, const cg_qoutput *o) {
    float v = (float)a * mult;
    if (o->to_float) {
        ((float *)y)[index] = o->relu && v < 0.0f ? 0.0f : v;
        return;
    }
    if (v < -32768.0f) v = -32768.0f;
    if (v > 32767.0f) v = 32767.0f;
    int32_t q = (int32_t)rintf(v) + o->zero_point;
    int32_t lo = o->relu ? o->zero_point : -128;
    ((int8_t *)y)[index] = (int8_t)(q < lo ? lo : q > 127 ? 127 : q);
}

// Random output stage for n channels: offsets and multipliers that make the outputs cover the
// int8 range and saturate at both ends now and then.
static void random_stage(cg_rng *rng, int32_t *offset, float *mult, int64_t n, int64_t K) {
    float u[2];
    for (int64_t j = 0; j < n; j++) {
        cg_rng_uniform(rng, u, 2, 0.0f, 1.0f);
        offset[j] = (int32_t)((u[0] - 0.5f) * 4000.0f);
        mult[j] = (0.5f + u[1]) * 40.0f / (128.0f * sqrtf((float)K) * 30.0f);
    }
}

static int64_t compare_bytes(const char *what, const void *got, const void *want, int64_t n, size_t size) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp((const char *)got + i * size, (const char *)want + i * size, size) != 0 && bad++ < 3) {
            if (size == 1)
                fail(what, "element %lld is %d, expected %d", (long long)i, ((const int8_t *)got)[i],
                     ((const int8_t *)want)[i]);
            else
                fail(what, "element %lld is %.9g, expected %.9g", (long long)i, ((const float *)got)[i],
                     ((const float *)want)[i]);
        }
    return bad;
}

static void test_linear(void) {
    cg_rng rng = cg_rng_new(61, 0);
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 10, 37}, {13, 33, 64}, {96, 128, 784}, {5, 17, 3}, {200, 64, 290}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int64_t M = shapes[t][0], N = shapes[t][1], K = shapes[t][2], Kp = CG_QK_PAD(K);
        int8_t *x = malloc(M * K), *w = calloc(N * Kp, 1);
        int32_t *offset = malloc(sizeof(int32_t) * N);
        float *mult = malloc(sizeof(float) * N);
        random_i8(&rng, x, M * K, -128, 127);
        for (int64_t j = 0; j < N; j++) random_i8(&rng, w + j * Kp, K, -127, 127); // padding stays 0
        random_stage(&rng, offset, mult, N, K);
        for (int mode = 0; mode < 4; mode++) {
            cg_qoutput o = {offset, mult, (int32_t)(t * 37 % 256) - 128, mode & 1, (mode & 2) != 0};
            size_t size = o.to_float ? 4 : 1;
            void *got = malloc(size * M * N), *want = malloc(size * M * N);
            cg_cpu_qkernels.linear(got, x, w, &o, M, N, K);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    int32_t s = 0;
                    for (int64_t k = 0; k < K; k++) s += (int32_t)x[i * K + k] * w[j * Kp + k];
                    ref_stage(want, i * N + j, s + offset[j], mult[j], &o);
                }
            char what[96];
            snprintf(what, sizeof what, "int8 linear %lldx%lldx%lld relu %d float %d", (long long)M, (long long)N,
                     (long long)K, o.relu, o.to_float);
            compare_bytes(what, got, want, M * N, size);
            free(got);
            free(want);
        }
        free(x), free(w), free(offset), free(mult);
    }
}

typedef struct {
    int64_t N, H, W, C, K, R, stride, pad;
    bool extreme; // inputs and weights only -128 or 127: the largest sums (Winograd's bounds)
} conv_shape;

static void test_conv(void) {
    cg_rng rng = cg_rng_new(62, 0);
    const conv_shape shapes[] = {
        {2, 28, 28, 1, 32, 3, 1, 1, false}, {3, 14, 14, 32, 64, 3, 1, 1, false}, {2, 9, 7, 3, 10, 3, 2, 0, false},
        {1, 5, 5, 5, 17, 5, 1, 2, false},   {4, 6, 6, 8, 16, 1, 1, 0, false},    {2, 11, 13, 6, 70, 3, 2, 1, false},
        // 3 x 3, stride 1, padding 1, 8 to 404 channels: Winograd's tiles on AVX2 builds (int8_winograd.c):
        // odd sizes, channels not a multiple of 16, several blocks of tiles and a partial last one, the
        // channel limit with the largest sums, one channel past it (im2col again), images of 1 x 1 and 1 x 2
        {2, 7, 9, 9, 20, 3, 1, 1, false},   {5, 13, 11, 16, 24, 3, 1, 1, false}, {1, 4, 5, 404, 16, 3, 1, 1, true},
        {1, 5, 3, 404, 20, 3, 1, 1, false}, {1, 3, 3, 405, 8, 3, 1, 1, true},  {3, 1, 1, 16, 16, 3, 1, 1, false},
        {2, 1, 2, 24, 40, 3, 1, 1, false}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        conv_shape s = shapes[t];
        int64_t P = (s.H + 2 * s.pad - s.R) / s.stride + 1, Q = (s.W + 2 * s.pad - s.R) / s.stride + 1;
        int64_t Kr = s.R * s.R * s.C, Kp = CG_QK_PAD(Kr), M = s.N * P * Q;
        int8_t *x = malloc(s.N * s.H * s.W * s.C), *w = calloc(s.K * Kp, 1);
        int32_t *offset = malloc(sizeof(int32_t) * s.K);
        float *mult = malloc(sizeof(float) * s.K);
        random_i8(&rng, x, s.N * s.H * s.W * s.C, -128, 127);
        for (int64_t j = 0; j < s.K; j++) random_i8(&rng, w + j * Kp, Kr, -127, 127);
        if (s.extreme) {
            for (int64_t i = 0; i < s.N * s.H * s.W * s.C; i++) x[i] = x[i] < 0 ? -128 : 127;
            for (int64_t j = 0; j < s.K; j++)
                for (int64_t k = 0; k < Kr; k++) w[j * Kp + k] = w[j * Kp + k] < 0 ? -128 : 127;
        }
        random_stage(&rng, offset, mult, s.K, Kr);
        int32_t xz = (int32_t)(t * 53 % 256) - 128; // the input's zero point: the padding value
        for (int mode = 0; mode < 4; mode++) {
            cg_qoutput o = {offset, mult, (int32_t)(t * 29 % 256) - 128, mode & 1, (mode & 2) != 0};
            size_t size = o.to_float ? 4 : 1;
            void *got = malloc(size * M * s.K), *want = malloc(size * M * s.K);
            cg_cpu_qkernels.conv2d(got, x, w, &o, xz, s.N, s.H, s.W, s.C, s.K, s.R, s.R, s.stride, s.pad, P, Q);
            for (int64_t n = 0; n < s.N; n++)
                for (int64_t p = 0; p < P; p++)
                    for (int64_t q = 0; q < Q; q++)
                        for (int64_t k = 0; k < s.K; k++) {
                            int32_t sum = 0;
                            for (int64_t r = 0; r < s.R; r++)
                                for (int64_t u = 0; u < s.R; u++)
                                    for (int64_t c = 0; c < s.C; c++) {
                                        int64_t ih = p * s.stride - s.pad + r, iw = q * s.stride - s.pad + u;
                                        int32_t v = ih < 0 || ih >= s.H || iw < 0 || iw >= s.W
                                                        ? xz
                                                        : x[((n * s.H + ih) * s.W + iw) * s.C + c];
                                        sum += v * w[k * Kp + (r * s.R + u) * s.C + c];
                                    }
                            ref_stage(want, ((n * P + p) * Q + q) * s.K + k, sum + offset[k], mult[k], &o);
                        }
            char what[128];
            snprintf(what, sizeof what, "int8 conv N%lld %lldx%lldx%lld -> %lld, %lldx%lld stride %lld pad %lld, relu %d "
                     "float %d", (long long)s.N, (long long)s.H, (long long)s.W, (long long)s.C, (long long)s.K,
                     (long long)s.R, (long long)s.R, (long long)s.stride, (long long)s.pad, o.relu, o.to_float);
            compare_bytes(what, got, want, M * s.K, size);
            free(got);
            free(want);
        }
        free(x), free(w), free(offset), free(mult);
    }
}

static void test_pool_and_quantize(void) {
    cg_rng rng = cg_rng_new(63, 0);
    const int64_t N = 3, H = 9, W = 8, C = 5, kernel = 2, stride = 2, P = 4, Q = 4;
    int8_t x[N * H * W * C], got[N * P * Q * C], want[N * P * Q * C];
    random_i8(&rng, x, N * H * W * C, -128, 127);
    cg_cpu_qkernels.max_pool2d(got, x, N, H, W, C, kernel, stride, P, Q);
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++)
                for (int64_t c = 0; c < C; c++) {
                    int m = -128;
                    for (int64_t a = 0; a < kernel; a++)
                        for (int64_t b = 0; b < kernel; b++) {
                            int v = x[((n * H + p * stride + a) * W + q * stride + b) * C + c];
                            m = v > m ? v : m;
                        }
                    want[((n * P + p) * Q + q) * C + c] = (int8_t)m;
                }
    compare_bytes("int8 max pool", got, want, N * P * Q * C, 1);

    // NCHW f32 -> NHWC i8, the same integers as cg_quantize_one, saturating at both ends.
    enum { n = 2, c = 3, hw = 20 };
    float xf[n * c * hw];
    int8_t q[n * c * hw], qwant[n * c * hw];
    cg_rng_normal(&rng, xf, n * c * hw, 0.2f, 1.5f);
    xf[0] = 1e9f, xf[1] = -1e9f, xf[2] = INFINITY;
    cg_qparams p = {0.02f, -7};
    cg_cpu_qkernels.quantize_nchw(q, xf, n, c, hw, p.scale, p.zero_point);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++)
            for (int k = 0; k < hw; k++) qwant[(i * hw + k) * c + j] = cg_quantize_one(xf[(i * c + j) * hw + k], p);
    compare_bytes("quantize NCHW -> NHWC", q, qwant, n * c * hw, 1);
}

// A small CNN with random weights: its int8 twin follows its fp32 outputs closely (SQNR of the
// logits above 25 dB). A weight permuted wrongly after Flatten gives about 7 dB (tried).
static void test_small_model(void) {
    cg_params *params = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(64, CG_STREAM_INIT);
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", 3, 8, 3, 1, 1, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_conv2d_new(params, "c2", 8, 12, 3, 2, 0, true, &rng));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "f1", 12 * 2 * 2, 20, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(params, "f2", 20, 5, true, &rng));
    cg_tape *tape = cg_tape_new(cg_cpu(), 1 << 20);
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 4, (int64_t[]){16, 3, 10, 10});
    cg_rng_normal(&rng, x->data, x->numel, 0.0f, 1.0f);
    for (int kind = 0; kind < 2; kind++) {
        cg_qmodel *q = NULL;
        cg_status s = cg_qmodel_new(&q, m, 3, 10, 10, kind ? CG_OBSERVER_PERCENTILE : CG_OBSERVER_MINMAX, 0, cg_cpu());
        if (s.code != CG_OK) {
            fail("small model", "%s", s.message);
            break;
        }
        if (q->count != 6 || !q->layers[0].relu || q->layers[2].relu || !q->layers[4].relu || !q->layers[5].to_float)
            fail("small model plan", "%d layers, ReLU fused in the wrong places", q->count);
        cg_qmodel_calibrate(q, tape, x);
        cg_qmodel_convert(q);
        cg_qmodel_measure_error(q, tape, x);
        for (int i = 0; i < q->count; i++) {
            const cg_qlayer *L = &q->layers[i];
            if (L->kind != CG_QLAYER_CONV && L->kind != CG_QLAYER_LINEAR) continue;
            double db = 10.0 * log10(L->signal / L->noise);
            if (!(db > 25.0)) fail("small model SQNR", "%s layer %s: %.1f dB", kind ? "percentile" : "min-max", L->name, db);
            if (!(L->weight_sqnr_db > 30.0)) fail("small model weights", "layer %s: %.1f dB", L->name, L->weight_sqnr_db);
        }
        int64_t b8 = cg_qmodel_bytes(q), b32 = cg_qmodel_fp32_bytes(q);
        if (b32 != 4 * cg_params_count(params) || !(b32 > 3 * b8)) fail("model size", "fp32 %lld, int8 %lld bytes", (long long)b32, (long long)b8);
        cg_qmodel_free(q);
    }
    cg_tensor_free(x);

    // Layers without an int8 version, and a ReLU that follows nothing fusable, are refused by name.
    cg_module *bad = cg_sequential_new();
    cg_sequential_add(bad, cg_flatten_new());
    cg_sequential_add(bad, cg_linear_new(params, "g1", 12, 4, true, &rng));
    cg_sequential_add(bad, cg_sigmoid_new());
    cg_qmodel *q = NULL;
    cg_status s = cg_qmodel_new(&q, bad, 3, 2, 2, CG_OBSERVER_MINMAX, 0, cg_cpu());
    if (s.code != CG_ERR_ARG || strstr(s.message, "Sigmoid") == NULL || q != NULL)
        fail("refuse Sigmoid", "status %d: %s", s.code, s.message);
    cg_module *bad2 = cg_sequential_new();
    cg_sequential_add(bad2, cg_relu_new());
    cg_sequential_add(bad2, cg_flatten_new());
    cg_sequential_add(bad2, cg_linear_new(params, "g2", 12, 4, true, &rng));
    s = cg_qmodel_new(&q, bad2, 3, 2, 2, CG_OBSERVER_MINMAX, 0, cg_cpu());
    if (s.code != CG_ERR_ARG || strstr(s.message, "ReLU") == NULL) fail("refuse lone ReLU", "status %d: %s", s.code, s.message);
    cg_module_free(bad);
    cg_module_free(bad2);
    cg_module_free(m);
    cg_tape_free(tape);
    cg_params_free(params);
}

// The tutorial CNN trained for one pass over 8000 Fashion-MNIST images, then converted with 10
// calibration batches: int8 within 1 point of fp32 on 2000 held-out test images.
static void test_fashion_mnist(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access(dir, R_OK) != 0) {
        printf("SKIP quantised CNN on Fashion-MNIST: %s is absent\n", dir);
        return;
    }
    cg_dataset *train = NULL, *test = NULL;
    cg_status s = cg_idx_load(dir, true, CG_IDX_FASHION_MNIST, &train);
    if (s.code == CG_OK) s = cg_idx_load(dir, false, CG_IDX_FASHION_MNIST, &test);
    if (s.code != CG_OK) {
        fail("fashion-mnist", "%s", s.message);
        return;
    }
    train->count = 8000;
    test->count = 2000;
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    cg_device cpu = cg_cpu();
    cg_params *params = cg_params_new(cpu);
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT);
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", 1, 32, 3, 1, 1, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_conv2d_new(params, "c2", 32, 64, 3, 1, 1, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "f1", 64 * 7 * 7, 128, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(params, "f2", 128, 10, true, &rng));
    cg_optimizer *opt = cg_optimizer_new(params, cg_adam_config(1e-3f));
    cg_loader *loader = cg_loader_new(train, 64, true, false, 0, cpu);
    cg_loader_set_normalization(loader, mean, std);
    cg_tape *tape = cg_tape_new(cpu, 16 << 20);
    cg_batch batch;
    cg_loader_start_epoch(loader);
    while (cg_loader_next(loader, &batch)) {
        cg_tensor *loss = cg_cross_entropy(tape, cg_module_forward(m, tape, batch.x), batch.labels);
        cg_optimizer_zero_grad(opt);
        cg_tape_backward(tape, loss);
        cg_optimizer_step(opt);
        cg_tape_clear(tape);
    }
    cg_module_set_training(m, false);
    tape->grad_enabled = false;

    cg_qmodel *q = NULL;
    if ((s = cg_qmodel_new(&q, m, 1, 28, 28, CG_OBSERVER_PERCENTILE, 0, cpu)).code != CG_OK) {
        fail("fashion-mnist", "%s", s.message);
        return;
    }
    cg_loader_start_epoch(loader);
    for (int b = 0; b < 10 && cg_loader_next(loader, &batch); b++) cg_qmodel_calibrate(q, tape, batch.x);
    cg_qmodel_convert(q);

    cg_loader *test_loader = cg_loader_new(test, 500, false, false, 0, cpu);
    cg_loader_set_normalization(test_loader, mean, std);
    cg_metrics *m32 = cg_metrics_new(cpu), *m8 = cg_metrics_new(cpu);
    cg_loader_start_epoch(test_loader);
    while (cg_loader_next(test_loader, &batch)) {
        cg_metrics_add_argmax_correct(m32, cg_module_forward(m, tape, batch.x), batch.labels);
        cg_metrics_add_argmax_correct(m8, cg_qmodel_forward(q, batch.x), batch.labels);
        cg_tape_clear(tape);
    }
    double loss, acc32, acc8;
    cg_metrics_read(m32, test->count, &loss, &acc32);
    cg_metrics_read(m8, test->count, &loss, &acc8);
    printf("tutorial CNN, 1 pass over 8000 images: test accuracy on 2000 images fp32 %.4f, int8 %.4f\n", acc32, acc8);
    if (!(acc32 > 0.70)) fail("fashion-mnist fp32", "accuracy %.4f after training, expected > 0.70", acc32);
    if (!(fabs(acc8 - acc32) <= 0.01)) fail("fashion-mnist int8", "accuracy %.4f, fp32 %.4f: more than 1 point apart", acc8, acc32);
    cg_metrics_free(m32), cg_metrics_free(m8);
    cg_loader_free(test_loader), cg_loader_free(loader);
    cg_qmodel_free(q);
    cg_tape_free(tape);
    cg_optimizer_free(opt);
    cg_module_free(m);
    cg_params_free(params);
    cg_dataset_free(train), cg_dataset_free(test);
}

int main(void) {
    test_linear();
    test_conv();
    test_pool_and_quantize();
    test_small_model();
    test_fashion_mnist();
    return check_summary("test_quant_layers");
}

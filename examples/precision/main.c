// precision: the course's chapter 1 number formats in C. Prints the bit layouts of chosen
// numbers in FP32, FP16 and BF16 (the course's examples among them), a table of each format's
// range and precision, the underflow demonstration (a gradient of 1e-8 computed by cgrad's own
// mixed-precision backward vanishes in fp16, survives with a loss scale, and survives in bf16),
// the course's INT8 worked example (what its min/max formula gives, and why its printed integers
// cannot come from it), and the TFLOPS each format achieves on the device at hand (a matrix
// product per format: the kernel table on the CPU, fp16/bf16 emulated there; cuBLAS through the
// benchmark group on a GPU). It trains nothing; examples/simple_nn and examples/cnn take
// --precision for that.
#include "cgrad.h"
#include "core/measure/hw_bench.h"
#include "core/half.h"
#include "core/kernels.h"
#include "core/quant/qkernels.h"
#include "core/quant/quant.h"
#include "examples/common/cli.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_features.h"

#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static void usage(FILE *f) {
    fprintf(f, "usage: precision [--device DEV] [--part LIST] [--n N]\n"
               "Show FP32, FP16, BF16 and INT8: bit layouts of chosen numbers, range and precision, how a\n"
               "gradient of 1e-8 vanishes in fp16 without loss scaling and survives with it, the course's\n"
               "INT8 worked example, and the TFLOPS each format achieves on the device.\n"
               "\n"
               "  --device DEV   where parts 3 and 5 run: cpu (default), cuda or cuda:N\n"
               "  --part LIST    which parts, comma-separated (default 1,2,3,4,5): 1 bit layouts, 2 range\n"
               "                 and precision, 3 underflow, 4 INT8 worked example, 5 TFLOPS per format\n"
               "  --n N          matrix size of part 5 (default 1024 on the CPU, 8192 on a GPU)\n"
               "  --help         this text\n"
               "\n"
               "Part 5 times C = A B^T (N x N, 2 N^3 operations) per format, the best of at least 3 runs\n"
               "and 0.2 s: on the CPU fp32 through the kernel table's gemm (the engine's own, or OpenBLAS for\n"
               "large products without AVX-512), fp16 and bf16 through its 16-bit gemm (fp16 emulated: widened\n"
               "to fp32, rounded back; bf16 on AVX512-BF16 or AMX where the CPU has them, emulated otherwise)\n"
               "and int8 through the int8 Linear layer (VNNI where the CPU has it; int32 sums, output stage); on a\n"
               "GPU fp32, tf32, fp16, bf16 and int8 through cuBLAS (the benchmark group of gpu_benchmark).\n");
}

// "s eeeeeeee fffffff..." for the `bits` low bits of v, split after the sign and the exponent.
static void bit_string(char *out, uint32_t v, int bits, int exponent_bits) {
    int k = 0;
    for (int i = bits - 1; i >= 0; i--) {
        out[k++] = (char)('0' + ((v >> i) & 1u));
        if (i == bits - 1 || i == bits - 1 - exponent_bits) out[k++] = ' ';
    }
    out[k] = '\0';
}

static uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static void layouts(void) {
    printf("1. Bit layouts: sign | exponent | fraction (rounded to nearest, ties to even: core/half.c)\n\n");
    struct {
        const char *name;
        float value;
    } numbers[] = {
        {"3.14159265 (the course's FP32 example)", 3.14159265f},
        {"3.14 (the course's FP16 example)", 3.14f},
        {"0.1", 0.1f},
        {"1/3", 1.0f / 3.0f},
        {"65504 (FP16's largest)", 65504.0f},
        {"65520 (rounds up past it)", 65520.0f},
        {"1e-8 (a small gradient)", 1e-8f},
        {"1e-8 x 65536 (the same, loss-scaled)", 1e-8f * 65536.0f},
        {"-0.0", -0.0f},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        float x = numbers[i].value;
        uint16_t h = cg_f32_to_f16(x), b = cg_f32_to_bf16(x);
        char s32[48], s16[24], sb[24];
        bit_string(s32, float_bits(x), 32, 8);
        bit_string(s16, h, 16, 5);
        bit_string(sb, b, 16, 8);
        printf("%s\n", numbers[i].name);
        printf("  FP32  %-36s 0x%08X  %.9g\n", s32, float_bits(x), (double)x);
        printf("  FP16  %-36s 0x%04X      %.9g\n", s16, h, (double)cg_f16_to_f32(h));
        printf("  BF16  %-36s 0x%04X      %.9g\n", sb, b, (double)cg_bf16_to_f32(b));
    }
    // The course prints 3.14159265 as 01000000010010010000111111011000 (0x40490FD8) and 3.14 in
    // FP16 as 0100001001000110 (0x4246): neither is the rounded value.
    printf("The course writes 3.14159265 as 0x40490FD8 and 3.14 in FP16 as 0x4246 (%.9g): rounded to nearest\n"
           "they are 0x40490FDB and 0x4248, as above.\n\n", (double)cg_f16_to_f32(0x4246));
}

static void ranges(void) {
    printf("2. Range and precision\n\n");
    printf("  format  bits (s, e, f)  largest finite   smallest normal  smallest subnormal  step after 1  digits\n");
    // FP32 from <float.h>; FP16 and BF16 from their bit patterns, converted exactly.
    printf("  FP32    1, 8, 23        %-16.8g %-16.8g %-19.8g %-13.3g %.1f\n", (double)FLT_MAX, (double)FLT_MIN,
           (double)ldexpf(1.0f, -149), (double)FLT_EPSILON, 24 * log10(2.0));
    printf("  FP16    1, 5, 10        %-16.8g %-16.8g %-19.8g %-13.3g %.1f\n", (double)cg_f16_to_f32(0x7BFF),
           (double)cg_f16_to_f32(0x0400), (double)cg_f16_to_f32(0x0001), (double)(cg_f16_to_f32(0x3C01) - 1.0f),
           11 * log10(2.0));
    printf("  BF16    1, 8, 7         %-16.8g %-16.8g %-19.8g %-13.3g %.1f\n", (double)cg_bf16_to_f32(0x7F7F),
           (double)cg_bf16_to_f32(0x0080), (double)cg_bf16_to_f32(0x0001), (double)(cg_bf16_to_f32(0x3F81) - 1.0f),
           8 * log10(2.0));
    printf("  (digits: significant decimal digits, log10 of 2^(fraction bits + 1))\n\n");
}

// One weight w = 0.5 used as y = x w^T with x = 1; loss = 1e-8 * y, so d loss / d w = 1e-8.
// Through cgrad's mixed-precision backward (core/train/amp.h): the gradient of the 16-bit copy of w is
// 16 bits; the f32 gradient the optimizer would see is read back.
static float demo_gradient(cg_device dev, cg_precision p, cg_grad_scaler_config scaler, float *scale) {
    cg_params *params = cg_params_new(dev);
    cg_tensor *w = cg_params_add(params, "w", 2, (int64_t[]){1, 1});
    cg_tensor_fill(w, 0.5f);
    cg_amp *amp = cg_amp_new(params, p, scaler);
    cg_tape *t = cg_tape_new(dev, 1 << 16);
    cg_amp_attach(amp, t);
    cg_tensor *x = cg_tensor_new(dev, CG_F32, 2, (int64_t[]){1, 1});
    cg_tensor_fill(x, 1.0f);
    cg_tensor *loss = cg_scale(t, cg_sum(t, cg_matmul(t, x, w, false, true)), 1e-8f);
    cg_params_zero_grad(params);
    cg_amp_backward(amp, t, loss);
    float g = cg_tensor_item(w->grad);
    *scale = cg_amp_read(amp).scale;
    cg_tensor_free(x);
    cg_tape_free(t);
    cg_amp_free(amp);
    cg_params_free(params);
    return g;
}

static void underflow(cg_device dev) {
    char name[16];
    printf("3. Underflow: a gradient of 1e-8\n\n");
    uint16_t h = cg_f32_to_f16(1e-8f), hs = cg_f32_to_f16(1e-8f * 65536.0f);
    printf("  by hand:  1e-8 in FP16 is 0x%04X = %g (below 2^-24 = 5.96e-8: zero)\n", h, (double)cg_f16_to_f32(h));
    printf("            1e-8 x 65536 in FP16 is 0x%04X = %.9g; / 65536 in FP32 = %.9g\n", hs, (double)cg_f16_to_f32(hs),
           (double)(cg_f16_to_f32(hs) / 65536.0f));
    printf("  by cgrad's backward on %s (loss = 1e-8 * x w, d loss / d w = 1e-8):\n", cg_device_str(dev, name, sizeof name));
    struct {
        const char *label;
        cg_precision p;
        cg_grad_scaler_config s;
    } runs[] = {
        {"fp32", CG_PRECISION_FP32, cg_grad_scaler_static_config(1.0f)},
        {"fp16, no loss scale", CG_PRECISION_FP16, cg_grad_scaler_static_config(1.0f)},
        {"fp16, loss scale 65536", CG_PRECISION_FP16, cg_grad_scaler_default_config()},
        {"bf16, no loss scale", CG_PRECISION_BF16, cg_grad_scaler_static_config(1.0f)},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        float scale = 1.0f;
        float g = demo_gradient(dev, runs[i].p, runs[i].s, &scale);
        printf("    %-24s gradient %-14.9g %s\n", runs[i].label, (double)g,
               g == 0.0f ? "VANISHED: w would never learn" : "survives");
    }
    printf("\n");
}

// ---- part 4: the course's INT8 worked example ---------------------------------------------------

static void print_row(const char *label, const double *v, const char *format, const char *note) {
    printf("  %-22s", label);
    for (int i = 0; i < 4; i++) printf(format, v[i]);
    printf("%s\n", note);
}

static void int8_example(void) {
    printf("4. INT8: the course's worked example (min/max scaling onto -128..127)\n\n");
    const float w[4] = {0.8342f, -1.234f, 0.0023f, 2.567f};
    const float lo = -1.234f, hi = 2.567f;
    const float scale = (hi - lo) / 255.0f;
    double row[4];
    for (int i = 0; i < 4; i++) row[i] = w[i];
    print_row("weights w", row, "%9.4f", "");
    printf("  min %.4g, max %.4g: scale = (max - min) / 255 = %.4g / 255 = %.7f\n", (double)lo, (double)hi,
           (double)(hi - lo), (double)scale);
    for (int i = 0; i < 4; i++) row[i] = (w[i] - lo) / scale;
    print_row("(w - min) / scale", row, "%9.2f", "");
    for (int i = 0; i < 4; i++) row[i] = rintf((w[i] - lo) / scale) - 128.0f;
    print_row("round(...) - 128", row, "%9.0f", "   what the course's formula gives");
    const double printed[4] = {56, -128, -111, 127};
    print_row("the course prints", printed, "%9.0f", "   (not what the formula gives)");

    // The engine's affine parameters for [min, max]: the same scale, its zero point.
    cg_qparams p = cg_qparams_affine(lo, hi);
    int8_t q[4];
    float back[4];
    cg_quantize(q, w, 4, p);
    cg_dequantize(back, q, 4, p);
    printf("  cgrad (cg_qparams_affine): scale %.7f, zero point %d, q = round(w / scale) + zero point\n",
           (double)p.scale, p.zero_point);
    for (int i = 0; i < 4; i++) row[i] = q[i];
    print_row("cgrad's q", row, "%9.0f", "");
    for (int i = 0; i < 4; i++) row[i] = back[i];
    print_row("back: scale (q - zp)", row, "%9.4f", "");
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        row[i] = (double)back[i] - (double)w[i];
        worst = fabs(row[i]) > worst ? fabs(row[i]) : worst;
    }
    print_row("error", row, "%+9.4f", "");
    printf("  largest error %.4f, under half a step (%.4f)\n", worst, 0.5 * (double)p.scale);

    // Why the printed integers cannot come from a min/max scale.
    int steps = (int)ceilf((w[0] - w[2]) / scale);
    printf("  The printed integers need another scale: 0.8342 and 0.0023 are %.4f apart, at most %d steps\n"
           "  at this scale or any larger one, but 56 and -111 are %d apart. Scale 0.005 (1/200) and zero\n"
           "  point -111 give them, clipping both ends of the range:\n",
           (double)(w[0] - w[2]), steps, 56 - -111);
    cg_qparams p200 = {0.005f, -111};
    cg_quantize(q, w, 4, p200);
    for (int i = 0; i < 4; i++) row[i] = q[i];
    print_row("scale 1/200, zp -111", row, "%9.0f", "");
    printf("  size: 4 weights are %zu bytes in fp32 and %zu in int8, 4 times smaller (the course's 32 bytes\n"
           "  are 4 numbers of 8 bytes, fp64)\n\n",
           4 * sizeof(float), 4 * sizeof(int8_t));
}

// ---- part 5: achieved TFLOPS per format -----------------------------------------------------------

// Runs f(arg) until at least 3 runs and 0.2 s, after one warm-up; the best time, in seconds.
static double best_time(cg_device d, void (*f)(void *), void *arg) {
    cg_timer *t = cg_timer_new(d);
    f(arg); // warm-up: libraries loaded, kernels chosen, memory touched
    double best = 1e30, total = 0;
    for (int r = 0; r < 3 || total < 0.2; r++) {
        cg_timer_start(t);
        f(arg);
        double s = cg_timer_stop(t);
        total += s;
        best = s < best ? s : best;
    }
    cg_timer_free(t);
    return best;
}

typedef struct {
    cg_device d;
    cg_bench_precision p;
    cg_dtype half; // CPU 16-bit runs
    int64_t n;
    void *A, *B, *C;
    const cg_qoutput *out; // CPU int8 runs
} product;

static void run_bench_gemm(void *arg) {
    product *x = arg;
    cg_status s = cg_bench_gemm(x->d, x->p, true, x->n, x->n, x->n, x->A, x->B, x->C);
    CG_CHECK(s.code == CG_OK, "cg_bench_gemm: %s", s.message);
}

static void run_gemm_h(void *arg) {
    product *x = arg;
    cg_kernels_for(x->d)->gemm_h(x->half, false, true, x->n, x->n, x->n, 1.0f, x->A, x->B, 0.0f, x->C);
}

static void run_int8_linear(void *arg) {
    product *x = arg;
    cg_qkernels_for(x->d)->linear(x->C, x->A, x->B, x->out, x->n, x->n, x->n);
}

static void speed_row(const char *format, const char *what, int64_t n, double seconds, double peak) {
    double tflops = 2.0 * (double)n * (double)n * (double)n / seconds / 1e12;
    printf("  %-6s %-46s %6lld %9.4f %9.3f", format, what, (long long)n, seconds, tflops);
    if (peak > 0)
        printf(" %8.1f %6.0f %%\n", peak, 100.0 * tflops / peak);
    else
        printf(" %8s %8s\n", "n/a", "n/a");
}

static void speed_cpu(cg_device d, int64_t n) {
    size_t nn = (size_t)(n * n);
    float *A = malloc(nn * sizeof(float)), *B = malloc(nn * sizeof(float)), *C = malloc(nn * sizeof(float));
    CG_CHECK(A && B && C, "out of memory for three %lld x %lld matrices", (long long)n, (long long)n);
    cg_status s = cg_bench_fill_uniform(d, A, CG_F32, (int64_t)nn, 1);
    if (s.code == CG_OK) s = cg_bench_fill_uniform(d, B, CG_F32, (int64_t)nn, 2);
    CG_CHECK(s.code == CG_OK, "cg_bench_fill_uniform: %s", s.message);

    product x = {.d = d, .p = CG_BENCH_FP32, .n = n, .A = A, .B = B, .C = C};
    speed_row("fp32",
              gemm_cpu_uses_openblas() ? "kernel table gemm (OpenBLAS sgemm when large)"
                                       : "kernel table gemm (the engine's own GEMM)",
              n, best_time(d, run_bench_gemm, &x), 0);

    // 16 bits: the same values rounded, multiplied by the kernel table's 16-bit gemm: fp16 emulated,
    // bf16 on the CPU's bf16 instructions where it has them (kernels/cpu/cpu_features.h), emulated
    // otherwise.
    cg_cpu_bf16_path bf16_path = cg_cpu_bf16();
    const char *bf16_what = bf16_path == CG_BF16_AMX      ? "16-bit gemm: AMX-BF16 tiles, fp32 sums"
                            : bf16_path == CG_BF16_AVX512 ? "16-bit gemm: AVX512-BF16, fp32 sums"
                                                          : "16-bit gemm, emulated: widen, fp32, round";
    uint16_t *Ah = malloc(nn * 2), *Bh = malloc(nn * 2), *Ch = malloc(nn * 2);
    CG_CHECK(Ah && Bh && Ch, "out of memory");
    const cg_dtype halves[2] = {CG_F16, CG_BF16};
    for (int h = 0; h < 2; h++) {
        for (size_t i = 0; i < nn; i++) {
            Ah[i] = halves[h] == CG_F16 ? cg_f32_to_f16(A[i]) : cg_f32_to_bf16(A[i]);
            Bh[i] = halves[h] == CG_F16 ? cg_f32_to_f16(B[i]) : cg_f32_to_bf16(B[i]);
        }
        product y = {.d = d, .half = halves[h], .n = n, .A = Ah, .B = Bh, .C = Ch};
        speed_row(h == 0 ? "fp16" : "bf16", h == 0 ? "16-bit gemm, emulated: widen, fp32, round" : bf16_what, n,
                  best_time(d, run_gemm_h, &y), 0);
    }
    free(Ah), free(Bh), free(Ch);

    // int8: the Linear layer of the quantised models, int8 out (its output stage included).
    int64_t kp = CG_QK_PAD(n);
    int8_t *Aq = malloc(nn), *Bq = calloc((size_t)(n * kp), 1), *Cq = malloc(nn);
    int32_t *offset = calloc((size_t)n, sizeof(int32_t));
    float *multiplier = malloc((size_t)n * sizeof(float));
    CG_CHECK(Aq && Bq && Cq && offset && multiplier, "out of memory");
    for (size_t i = 0; i < nn; i++) Aq[i] = (int8_t)lrintf(127.0f * A[i]);
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = 0; k < n; k++) Bq[r * kp + k] = (int8_t)lrintf(127.0f * B[r * n + k]);
    for (int64_t j = 0; j < n; j++) multiplier[j] = 1.0f / (128.0f * (float)n);
    cg_qoutput out = {.offset = offset, .multiplier = multiplier, .zero_point = 0, .relu = false, .to_float = false};
    product z = {.d = d, .n = n, .A = Aq, .B = Bq, .C = Cq, .out = &out};
    speed_row("int8", "int8 Linear layer: int32 sums, output stage", n, best_time(d, run_int8_linear, &z), 0);
    if (bf16_path == CG_BF16_EMULATED)
        printf("  (int8: TOPS, integer operations; the CPU has no 16-bit products that cgrad uses: fp16 and\n"
               "  bf16 are fp32 products plus conversions, so slower than fp32 here, where a GPU is faster)\n");
    else
        printf("  (int8: TOPS, integer operations; fp16 is fp32 products plus conversions on the CPU, no faster\n"
               "  than fp32; bf16 runs on the CPU's bf16 products: twice fp32's multiply-adds an instruction, more on AMX)\n");
    free(Aq), free(Bq), free(Cq), free(offset), free(multiplier);
    free(A), free(B), free(C);
}

static void speed_gpu(cg_device d, int64_t n) {
    cg_device_info info;
    cg_status s = cg_device_get_info(d, &info);
    CG_CHECK(s.code == CG_OK, "cg_device_get_info: %s", s.message);
    const cg_bench_precision formats[5] = {CG_BENCH_FP32, CG_BENCH_TF32, CG_BENCH_FP16, CG_BENCH_BF16, CG_BENCH_INT8};
    for (int f = 0; f < 5; f++) {
        cg_bench_precision p = formats[f];
        size_t in = cg_dtype_size(cg_bench_input_dtype(p)), outb = cg_dtype_size(cg_bench_output_dtype(p));
        void *A = cg_device_alloc(d, (size_t)(n * n) * in), *B = cg_device_alloc(d, (size_t)(n * n) * in);
        void *C = cg_device_alloc(d, (size_t)(n * n) * outb);
        s = cg_bench_fill_uniform(d, A, cg_bench_input_dtype(p), n * n, 1);
        if (s.code == CG_OK) s = cg_bench_fill_uniform(d, B, cg_bench_input_dtype(p), n * n, 2);
        product x = {.d = d, .p = p, .n = n, .A = A, .B = B, .C = C};
        if (s.code == CG_OK) s = cg_bench_gemm(d, p, true, n, n, n, A, B, C); // can this GPU run it?
        if (s.code != CG_OK) {
            printf("  %-6s skipped: %s\n", cg_bench_precision_name(p), s.message);
        } else {
            const char *basis = NULL;
            double peak = cg_bench_peak_tflops(&info, p, &basis);
            speed_row(cg_bench_precision_name(p), "cuBLAS cublasGemmEx (as gpu_benchmark)", n, best_time(d, run_bench_gemm, &x),
                      peak);
        }
        cg_device_free(d, A), cg_device_free(d, B), cg_device_free(d, C);
    }
    printf("  (int8: TOPS; peak: FP32 cores x clock x 2 for fp32, the Tensor Core rate of NVIDIA's\n"
           "  whitepapers for the others, at the maximum clock the driver reports)\n");
}

static void speed(cg_device d, int64_t n) {
    char name[16];
    if (n <= 0) n = d.type == CG_CPU ? 1024 : 8192;
    printf("5. Achieved TFLOPS per format on %s: C = A B^T, %lld x %lld, 2 N^3 = %.3g TFLOP per product\n\n",
           cg_device_str(d, name, sizeof name), (long long)n, (long long)n, 2.0 * (double)n * (double)n * (double)n / 1e12);
    printf("  %-6s %-46s %6s %9s %9s %8s %8s\n", "format", "what runs", "N", "seconds", "TFLOPS", "peak", "of peak");
    if (d.type == CG_CPU)
        speed_cpu(d, n);
    else
        speed_gpu(d, n);
    printf("\n");
}

int main(int argc, char **argv) {
#if defined(__x86_64__) || defined(__i386__)
    // cgrad's CPU kernels flush denormal floats to zero for speed (kernels/cpu/table.c); this program
    // shows each format's range, its smallest denormal included, so it turns the flush off.
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_OFF);
#endif
    const char *device = "cpu";
    const char *parts = "1,2,3,4,5";
    long long n = 0;
    static const struct option longopts[] = {{"device", required_argument, 0, 'd'}, {"part", required_argument, 0, 'p'},
                                             {"n", required_argument, 0, 'n'},      {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'p': parts = optarg; break;
        case 'n': {
            char *end;
            n = strtoll(optarg, &end, 10);
            if (*end || n < 16 || n > 65536)
                return cg_cli_fail("precision", cg_error(CG_ERR_ARG, "--n: '%s' is not a whole number in 16..65536", optarg));
            break;
        }
        case 'h': usage(stdout); return 0;
        default: return cg_cli_fail("precision", cg_cli_option_error(c, argv)); // a value missing, or unknown
        }
    }
    if (optind < argc) return cg_cli_fail("precision", cg_cli_no_operands(argc, argv));
    bool want[6] = {false};
    for (const char *at = parts; *at;) {
        char *end;
        long k = strtol(at, &end, 10);
        if (end == at || k < 1 || k > 5 || (*end && *end != ','))
            return cg_cli_fail("precision", cg_error(CG_ERR_ARG, "--part: '%s' is not a list of parts 1 to 5, such as 1,3", parts));
        want[k] = true;
        at = *end ? end + 1 : end;
    }
    cg_device dev;
    cg_status s = cg_device_parse(device, &dev);
    if (s.code != CG_OK) return cg_cli_fail("precision", s);
    if (want[1]) layouts();
    if (want[2]) ranges();
    if (want[3]) underflow(dev);
    if (want[4]) int8_example();
    if (want[5]) speed(dev, (int64_t)n);
    return 0;
}

// precision: the course's chapter 1 number formats in C. Prints the bit layouts of chosen
// numbers in FP32, FP16 and BF16 (the course's examples among them), a table of each format's
// range and precision, and the underflow demonstration: a gradient of 1e-8 computed by cgrad's
// own mixed-precision backward vanishes in fp16, survives with a loss scale, and survives in bf16.
// It trains nothing; examples/simple_nn and examples/cnn take --precision for that.
#include "cgrad.h"
#include "core/half.h"
#include "examples/common/cli.h"

#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: precision [--device DEV]\n"
               "Show FP32, FP16 and BF16: bit layouts of chosen numbers, range and precision, and how a\n"
               "gradient of 1e-8 vanishes in fp16 without loss scaling and survives with it.\n"
               "\n"
               "  --device DEV   where the gradient demonstration runs: cpu (default), cuda or cuda:N\n"
               "  --help         this text\n");
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
// Through cgrad's mixed-precision backward (core/amp.h): the gradient of the 16-bit copy of w is
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

int main(int argc, char **argv) {
    const char *device = "cpu";
    static const struct option longopts[] = {{"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': return cg_cli_fail("precision", cg_error(CG_ERR_ARG, "%s needs a value", argv[optind - 1]));
        default: return cg_cli_fail("precision", cg_error(CG_ERR_ARG, "unknown option '%s' (see --help)", argv[optind - 1]));
        }
    }
    if (optind < argc)
        return cg_cli_fail("precision", cg_error(CG_ERR_ARG, "unexpected argument '%s' (see --help)", argv[optind]));
    cg_device dev;
    cg_status s = cg_device_parse(device, &dev);
    if (s.code != CG_OK) return cg_cli_fail("precision", s);
    layouts();
    ranges();
    underflow(dev);
    return 0;
}

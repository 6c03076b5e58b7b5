// test_amp.c: mixed precision on the CPU (core/amp.h, the autocast policy of core/ops.h): the
// cast op's values and gradient (finite differences on values the 16-bit formats hold exactly),
// the CPU's cast kernel on large arrays (rounding, accumulating into f32, and from a 16-bit dtype
// to itself: reshape's copy and gradient),
// autocast ops against f32 ones, the loss scaler wired into real training steps (overflow: the
// step skipped, the scale halved; growth after growth_interval clean steps, step for step as
// core/grad_scaler.c's host state machine), and a small deterministic run in which fp16 without
// loss scaling stalls (its gradients underflow to zero) while fp16 with scaling learns.
#define _POSIX_C_SOURCE 200809L // setenv
#include "cgrad.h"
#include "core/half.h"
#include "core/kernels.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cg_tensor *host_tensor(int ndim, const int64_t *shape, const float *values) {
    cg_tensor *t = cg_tensor_new(cg_cpu(), CG_F32, ndim, shape);
    memcpy(t->data, values, cg_tensor_bytes(t));
    return t;
}

// ---- the cast op -------------------------------------------------------------------------------

static float cast_loss(cg_tape *t, cg_tensor *x, cg_tensor *w, cg_dtype low) {
    cg_tensor *y = cg_cast(t, cg_cast(t, x, low), CG_F32);
    return cg_tensor_item(cg_sum(t, cg_matmul(t, y, w, false, false))); // sum(y w)
}

static void test_cast(cg_dtype low) {
    const char *name = cg_dtype_name(low);
    enum { R = 3, C = 8 };
    float xv[R * C], wv[C];
    for (int i = 0; i < R * C; i++) xv[i] = (float)((i * 37) % 129 - 64) / 32.0f; // k / 32 in [-2, 2]: exact in both
    for (int j = 0; j < C; j++) wv[j] = 0.25f * (float)(j - 3);
    cg_tensor *x = host_tensor(2, (int64_t[]){R, C}, xv), *w = host_tensor(2, (int64_t[]){C, 1}, wv);
    x->requires_grad = true;
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);

    // Values: rounding as core/half.h rounds, one value at a time.
    float odd[4] = {1.0f / 3.0f, 70000.0f, 1e-8f, -2.7182818f};
    cg_tensor *o = host_tensor(1, (int64_t[]){4}, odd);
    cg_tensor *o16 = cg_cast(t, o, low);
    if (o16->dtype != low) fail("cast", "output dtype %s, expected %s", cg_dtype_name(o16->dtype), name);
    const uint16_t *bits = (const uint16_t *)o16->data;
    for (int i = 0; i < 4; i++) {
        uint16_t want = low == CG_F16 ? cg_f32_to_f16(odd[i]) : cg_f32_to_bf16(odd[i]);
        if (bits[i] != want) fail("cast values", "%s of %g: bits 0x%04x, expected 0x%04x", name, (double)odd[i], bits[i], want);
    }
    cg_tape_clear(t);

    // Gradient: the analytic one against central differences with h = 1/32, a step that keeps
    // every x +- h exact in fp16 and bf16 (so the rounding plays no part).
    cg_tensor *y16 = cg_cast(t, x, low);
    cg_tensor *loss = cg_sum(t, cg_matmul(t, cg_cast(t, y16, CG_F32), w, false, false));
    cg_tape_backward(t, loss);
    if (y16->grad == NULL || y16->grad->dtype != low)
        fail("cast gradient dtype", "the %s tensor's gradient is %s", name, y16->grad ? cg_dtype_name(y16->grad->dtype) : "missing");
    float analytic[R * C];
    memcpy(analytic, x->grad->data, sizeof analytic);
    cg_tape_clear(t);
    x->grad = NULL;
    t->grad_enabled = false;
    const float h = 1.0f / 32.0f;
    float worst = 0.0f;
    for (int i = 0; i < R * C; i++) {
        float *v = (float *)x->data, keep = v[i];
        v[i] = keep + h;
        float up = cast_loss(t, x, w, low);
        cg_tape_clear(t);
        v[i] = keep - h;
        float down = cast_loss(t, x, w, low);
        cg_tape_clear(t);
        v[i] = keep;
        float numeric = (up - down) / (2 * h);
        float err = fabsf(numeric - analytic[i]);
        if (err > worst) worst = err;
        if (err > 1e-5f) fail("cast gradient", "%s element %d: analytic %g, numeric %g", name, i, (double)analytic[i], (double)numeric);
    }
    printf("cast f32 -> %s -> f32: values as core/half.h, gradient against finite differences (worst %.2g)\n", name,
           (double)worst);
    cg_tape_free(t);
    cg_tensor_free(x), cg_tensor_free(w), cg_tensor_free(o);
}

// ---- autocast ops against f32 ----------------------------------------------------------------------

// Images (N, 2, 8, 8) -> 5 logits: conv2d 2 -> 8, ReLU (with_norm: BatchNorm2d, GELU and a
// basic block, whose residual add), 2x2 max pooling, flatten, linear; weights from seed.
static cg_module *small_model(cg_params *params, cg_params *buffers, bool with_norm, uint64_t seed) {
    cg_rng init = cg_rng_new(seed, CG_STREAM_INIT);
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_conv2d_new(params, "c1", 2, 8, 3, 1, 1, true, &init));
    if (with_norm) {
        cg_sequential_add(m, cg_batch_norm2d_new(params, buffers, "n1", 8));
        cg_sequential_add(m, cg_gelu_new());
        cg_sequential_add(m, cg_basic_block_new(params, buffers, "b1", 8, 8, 1, &init)); // the residual add
    } else {
        cg_sequential_add(m, cg_relu_new());
    }
    cg_sequential_add(m, cg_max_pool2d_new(2, 2));
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(params, "f1", 8 * 4 * 4, 5, true, &init));
    return m;
}

// Its input: SMALL_BATCH images (N, 2, 8, 8) drawn N(0, 1) from seed, and their labels.
#define SMALL_BATCH 6
static void small_batch(uint64_t seed, cg_tensor **x, cg_tensor **labels) {
    float xv[SMALL_BATCH * 2 * 8 * 8];
    cg_rng data = cg_rng_new(seed, CG_STREAM_DATA);
    cg_rng_normal(&data, xv, SMALL_BATCH * 2 * 8 * 8, 0.0f, 1.0f);
    *x = host_tensor(4, (int64_t[]){SMALL_BATCH, 2, 8, 8}, xv);
    int32_t labels_v[SMALL_BATCH] = {0, 1, 2, 3, 4, 0};
    *labels = cg_tensor_new(cg_cpu(), CG_I32, 1, (int64_t[]){SMALL_BATCH});
    memcpy((*labels)->data, labels_v, sizeof labels_v);
}

// The rest of a step of the small model after its forward (logits, 16 bits under autocast): the
// f32 cross-entropy against labels and amp's backward on tape t; the logits (SMALL_BATCH x 5
// values) copied to out as f32, and a copy of every parameter gradient returned (to free).
static float *small_step_backward(cg_tape *t, cg_amp *amp, cg_params *params, cg_tensor *logits, cg_tensor *labels,
                                  float *out) {
    logits = cg_autocast_f32(t, logits);
    cg_tensor *loss = cg_cross_entropy(t, logits, labels);
    cg_params_zero_grad(params);
    cg_amp_backward(amp, t, loss);
    memcpy(out, logits->data, (size_t)logits->numel * sizeof(float));
    float *grads = cg_xmalloc((size_t)params->numel * sizeof(float));
    memcpy(grads, params->grads, (size_t)params->numel * sizeof(float));
    return grads;
}

// The tutorial CNN's layer kinds on a small batch: conv2d, ReLU, max pooling, flatten, linear;
// outputs and parameter gradients under autocast against f32 (relative to the largest value).
// with_norm: the fast network's kinds and ResNet's instead, conv2d, BatchNorm2d (training), GELU, a
// basic block (its residual add), max pooling, flatten, linear; under autocast batch norm, GELU
// and the add of two 16-bit tensors keep the 16-bit dtype, so that no cast of an activation is on
// the tape before the logits' (the parameters' 16-bit copies are not ops).
static void test_autocast_model(cg_precision precision, bool with_norm) {
    cg_dtype low = cg_precision_dtype(precision);
    char name[48];
    snprintf(name, sizeof name, "%s%s", cg_precision_name(precision), with_norm ? " (batch norm, GELU)" : "");
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_module *m = small_model(params, buffers, with_norm, 3);
    int64_t N = SMALL_BATCH;
    cg_tensor *x, *labels;
    small_batch(4, &x, &labels);

    float *out[2], *grads[2];
    int64_t n_out = N * 5, n_grad = params->numel;
    for (int pass = 0; pass < 2; pass++) { // 0: f32, 1: autocast
        // With batch norm the activations' gradients are 16-bit too, and in fp16 they fall below its
        // normal range (6e-5) without a loss scale: 1024 keeps them there (a power of two: exact).
        float scale = with_norm ? 1024.0f : 1.0f;
        cg_amp *amp = cg_amp_new(params, pass ? precision : CG_PRECISION_FP32, cg_grad_scaler_static_config(scale));
        cg_tape *t = cg_tape_new(cg_cpu(), 1 << 20);
        cg_amp_attach(amp, t);
        cg_tensor *logits = cg_module_forward(m, t, x);
        if (pass && logits->dtype != low) fail("autocast", "%s: linear output is %s", name, cg_dtype_name(logits->dtype));
        int casts = 0;
        for (int i = 0; i < t->count; i++) casts += t->nodes[i].op == CG_OP_CAST;
        if (pass && casts != 0) // the tape records ops that need gradients: the input's cast is not one
            fail("autocast", "%s: %d casts on the tape before the loss, expected none", name, casts);
        out[pass] = cg_xmalloc((size_t)n_out * sizeof(float));
        grads[pass] = small_step_backward(t, amp, params, logits, labels, out[pass]);
        cg_tape_free(t);
        cg_amp_free(amp);
    }
    // Compared as ||autocast - f32|| / ||f32|| (Euclidean norms): fp16 keeps 11 significant
    // bits, bf16 8, and a few roundings of each come on the way. Single elements can differ
    // more: a convolution output near 0 may change sign once its inputs are rounded (ReLU then
    // passes or stops its gradient), and two values of a pooling window may round to one.
    double tol = low == CG_F16 ? 2e-3 : 5e-2; // seen: 5e-4 and 3.1e-2
    // With batch norm, its backward (dy less its mean and its projection on xhat) keeps less of a
    // 16-bit dy's precision, and pooling and ReLU decide on 16-bit values: the parameters far from
    // the loss carry 2 % (fp16) to 4 % (bf16) of error, those next to it 0.1 % to 0.6 %.
    if (with_norm) tol = low == CG_F16 ? 3e-2 : 8e-2; // seen: 1.3e-2 and 2.7e-2
    const char *what[2] = {"logits", "parameter gradients"};
    int64_t counts[2] = {n_out, n_grad};
    float *pairs[2][2] = {{out[0], out[1]}, {grads[0], grads[1]}};
    for (int k = 0; k < 2; k++) {
        double norm = 0, diff = 0;
        for (int64_t i = 0; i < counts[k]; i++) {
            norm += (double)pairs[k][0][i] * pairs[k][0][i];
            diff += ((double)pairs[k][0][i] - pairs[k][1][i]) * ((double)pairs[k][0][i] - pairs[k][1][i]);
        }
        double rel = sqrt(diff / norm);
        if (!(rel <= tol) || norm == 0)
            fail("autocast", "%s %s: relative difference %.3g against f32, more than %.3g", name, what[k], rel, tol);
        else
            printf("autocast %s: %s within %.2g of f32 (relative, Euclidean norm)\n", name, what[k], rel);
        free(pairs[k][0]), free(pairs[k][1]);
    }
    cg_tensor_free(x), cg_tensor_free(labels);
    cg_module_free(m);
    cg_params_free(params);
    cg_params_free(buffers);
}

// Channels-last (core/tensor.h): the copy stores element (n, c, p) of x (N, C, HW) at (n HW + p) C + c;
// and the model of test_autocast_model (batch norm, GELU, a basic block) under autocast with its
// convolutions' outputs stored channels-last (CGRAD_CONV16_LAYOUT=nhwc) gives the same logits and
// gradients, bit for bit, as with NCHW: the CPU runs its NCHW kernels on copies (kernels/cpu/amp.c).
// On the tape: channels-last activations, no cast, one copy back to NCHW (before the flatten); and
// the 16-bit copies of the basic block's weights are stored channels-last, their gradients too.
static void test_channels_last(cg_precision precision) {
    const char *name = cg_precision_name(precision);
    {
        float v[2 * 3 * 20];
        for (int i = 0; i < 120; i++) v[i] = (float)i;
        cg_tensor *x = host_tensor(4, (int64_t[]){2, 3, 4, 5}, v);
        cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);
        cg_tensor *y = cg_to_memory_format(t, x, true);
        const float *yv = y->data;
        int wrong = 0;
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 20; p++) wrong += yv[(n * 20 + p) * 3 + c] != v[(n * 3 + c) * 20 + p];
        if (!y->channels_last || wrong) fail("to_memory_format", "%d of 120 values out of place", wrong);
        cg_tape_free(t);
        cg_tensor_free(x);
    }
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_module *m = small_model(params, buffers, true, 5);
    cg_tensor *x, *labels;
    small_batch(6, &x, &labels);
    float out[2][SMALL_BATCH * 5], *grads[2];
    const char *layouts[2] = {"nchw", "nhwc"};
    for (int pass = 0; pass < 2; pass++) {
        setenv("CGRAD_CONV16_LAYOUT", layouts[pass], 1);
        cg_amp *amp = cg_amp_new(params, precision, cg_grad_scaler_static_config(1024.0f));
        if (amp->cl_count != 2 * pass) // the basic block's two 8 -> 8 convolutions (core/train/amp.h)
            fail("channels-last", "%s %s: %d 16-bit weights stored channels-last, expected %d", name, layouts[pass],
                 amp->cl_count, 2 * pass);
        cg_tape *t = cg_tape_new(cg_cpu(), 1 << 20);
        cg_amp_attach(amp, t);
        cg_tensor *logits = cg_module_forward(m, t, x);
        int last = 0, copies = 0, casts = 0;
        for (int i = 0; i < t->count; i++) {
            last += t->nodes[i].out->channels_last;
            copies += t->nodes[i].op == CG_OP_MEMORY_FORMAT;
            casts += t->nodes[i].op == CG_OP_CAST;
        }
        if (pass == 1 && (last < 7 || copies != 1 || casts != 0))
            fail("channels-last", "%s: %d channels-last outputs on the tape (expected at least 7), %d copies to NCHW "
                 "(expected 1), %d casts (expected 0)", name, last, copies, casts);
        if (pass == 0 && (last || copies)) fail("channels-last", "%s: NCHW asked, %d channels-last outputs", name, last);
        grads[pass] = small_step_backward(t, amp, params, logits, labels, out[pass]);
        cg_tape_free(t);
        cg_amp_free(amp);
    }
    unsetenv("CGRAD_CONV16_LAYOUT");
    if (memcmp(out[0], out[1], sizeof out[0]) != 0 || memcmp(grads[0], grads[1], (size_t)params->numel * sizeof(float)))
        fail("channels-last", "%s: logits or gradients differ from NCHW's", name);
    else
        printf("channels-last %s: logits and %lld parameter gradients the same bits as NCHW\n", name,
               (long long)params->numel);
    free(grads[0]), free(grads[1]);
    cg_tensor_free(x), cg_tensor_free(labels);
    cg_module_free(m);
    cg_params_free(params);
    cg_params_free(buffers);
}

// Fresh gradients (core/tape.h): the first backward to reach an activation's gradient writes it
// in a buffer that was never zeroed. The model of test_autocast_model under autocast, in both
// layouts, with the step's memory first filled with NaNs (all bits set): the logits and every
// parameter gradient must be the same bits as with every gradient zeroed and added to, and the
// nodes that write (16-bit batch norm, GELU, pooling, channels-last convolutions) must be there.
static void test_fresh_gradients(cg_precision precision) {
    const char *name = cg_precision_name(precision);
    cg_params *params = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_module *m = small_model(params, buffers, true, 7);
    cg_tensor *x, *labels;
    small_batch(8, &x, &labels);
    const char *layouts[2] = {"nchw", "nhwc"};
    for (int layout = 0; layout < 2; layout++) {
        setenv("CGRAD_CONV16_LAYOUT", layouts[layout], 1);
        // Run 0: every gradient zeroed; 1: fresh gradients in NaN-filled memory; 2: fresh gradients
        // in an arena of 4 KiB, which the step outgrows many times (its buffers in many blocks).
        float out[3][SMALL_BATCH * 5], *grads[3];
        int fresh_grads = 0;
        for (int fresh = 0; fresh < 3; fresh++) {
            cg_amp *amp = cg_amp_new(params, precision, cg_grad_scaler_static_config(1024.0f));
            cg_tape *t = cg_tape_new(cg_cpu(), fresh == 2 ? 4096 : 1 << 20);
            if (fresh < 2) {
                memset(cg_arena_alloc(t->arena, 1 << 19), 0xff, 1 << 19); // NaNs where the step will live
                cg_tape_clear(t);
            }
            t->fresh_gradients = fresh > 0;
            cg_amp_attach(amp, t);
            grads[fresh] = small_step_backward(t, amp, params, cg_module_forward(m, t, x), labels, out[fresh]);
            for (int i = 0; i < t->count; i++)
                for (int j = 0; j < t->nodes[i].n_in; j++) fresh_grads += fresh == 1 && t->nodes[i].grad_fresh[j];
            if (fresh == 2 && cg_arena_block_count(t->arena) < 2)
                fail("fresh gradients", "%s: the 4 KiB arena held the step in one block", name);
            cg_tape_free(t);
            cg_amp_free(amp);
        }
        // The gradients written: conv2d's dx (channels-last only), batch norm's, GELU's, the
        // block's fused batch norm + ReLU's and, from its end (batch norm + add + ReLU), both the
        // batch norm's dx and the shortcut's (the first to reach the block's input), pooling's: at
        // least 5 in NCHW, 6 channels-last.
        int expected = layout ? 6 : 5;
        size_t grad_bytes = (size_t)params->numel * sizeof(float);
        if (memcmp(out[0], out[1], sizeof out[0]) != 0 || memcmp(grads[0], grads[1], grad_bytes) ||
            memcmp(out[0], out[2], sizeof out[0]) != 0 || memcmp(grads[0], grads[2], grad_bytes))
            fail("fresh gradients", "%s %s: logits or gradients differ from zeroed gradients'", name, layouts[layout]);
        else if (fresh_grads < expected)
            fail("fresh gradients", "%s %s: %d fresh gradients written, expected at least %d", name,
                 layouts[layout], fresh_grads, expected);
        else
            printf("fresh gradients %s %s: %d gradients written unzeroed by their first backward; the same bits as zeroed, "
                   "also across arena blocks\n",
                   name, layouts[layout], fresh_grads);
        free(grads[0]), free(grads[1]), free(grads[2]);
    }
    unsetenv("CGRAD_CONV16_LAYOUT");
    cg_tensor_free(x), cg_tensor_free(labels);
    cg_module_free(m);
    cg_params_free(params);
    cg_params_free(buffers);
}

// Global average pooling keeps a 16-bit input's dtype and layout (ResNet's head under autocast):
// its output, and the gradient it sends back, must be the bits of the f32 op on the input widened
// with a cast on each side (the path before it kept 16 bits), in NCHW and channels-last; with no
// cast of its own on the tape. Fresh gradients on (the pooling writes its input's gradient).
static void test_global_avg_pool_keeps(cg_dtype low) {
    enum { N = 3, C = 5, HW = 12 };
    float xv[N * C * HW], wv[C];
    cg_rng data = cg_rng_new(11, CG_STREAM_DATA);
    cg_rng_normal(&data, xv, N * C * HW, 0.0f, 1.0f);
    for (int c = 0; c < C; c++) wv[c] = 0.3f * (float)(c - 2) + 0.1f;
    cg_tensor *w = host_tensor(2, (int64_t[]){C, 1}, wv);
    for (int cl = 0; cl < 2; cl++) {
        uint16_t y_bits[2][N * C];
        float grads[2][N * C * HW];
        int casts[2] = {0, 0};
        for (int path = 0; path < 2; path++) { // 0: the 16-bit op; 1: cast, f32 op, cast
            cg_tensor *x = host_tensor(4, (int64_t[]){N, C, 3, 4}, xv);
            x->requires_grad = true;
            cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);
            cg_tensor *x16 = cg_cast(t, x, low);
            if (cl) x16 = cg_to_memory_format(t, x16, true);
            int before = t->count;
            cg_tensor *y = path == 0 ? cg_global_avg_pool2d(t, x16)
                                     : cg_cast(t, cg_global_avg_pool2d(t, cg_cast(t, x16, CG_F32)), low);
            for (int i = before; i < t->count; i++) casts[path] += t->nodes[i].op == CG_OP_CAST;
            if (y->dtype != low) fail("global_avg_pool2d", "%s output is %s", cg_dtype_name(low), cg_dtype_name(y->dtype));
            memcpy(y_bits[path], y->data, sizeof y_bits[path]);
            cg_tape_backward(t, cg_sum(t, cg_matmul(t, cg_cast(t, y, CG_F32), w, false, false)));
            memcpy(grads[path], x->grad->data, sizeof grads[path]);
            cg_tape_free(t);
            cg_tensor_free(x);
        }
        const char *layout = cl ? "channels-last" : "NCHW";
        if (casts[0] != 0) fail("global_avg_pool2d", "%s %s: %d casts on the tape", cg_dtype_name(low), layout, casts[0]);
        if (memcmp(y_bits[0], y_bits[1], sizeof y_bits[0]) != 0)
            fail("global_avg_pool2d", "%s %s: output bits differ from the f32 op's rounded", cg_dtype_name(low), layout);
        else if (memcmp(grads[0], grads[1], sizeof grads[0]) != 0)
            fail("global_avg_pool2d", "%s %s: input gradient differs from the f32 op's", cg_dtype_name(low), layout);
        else
            printf("global_avg_pool2d in %s, %s: output and gradient the bits of the f32 op between casts\n",
                   cg_dtype_name(low), layout);
    }
    cg_tensor_free(w);
}

// A frozen parameter (requires_grad false, as the fast network's whitening weights) gets no
// gradient under autocast either: its 16-bit copy follows it, so the convolution's backward
// computes no weight gradient (work saved) and the f32 gradient block stays zero there.
static void test_frozen_under_autocast(void) {
    cg_params *params = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(5, CG_STREAM_INIT);
    cg_module *conv = cg_conv2d_new(params, "c1", 2, 4, 3, 1, 1, true, &init);
    cg_tensor *w = ((cg_conv2d_layer *)conv)->weight;
    w->requires_grad = false;
    float xv[2 * 2 * 5 * 5];
    cg_rng data = cg_rng_new(6, CG_STREAM_DATA);
    cg_rng_normal(&data, xv, 2 * 2 * 5 * 5, 0.0f, 1.0f);
    cg_tensor *x = host_tensor(4, (int64_t[]){2, 2, 5, 5}, xv);
    cg_amp *amp = cg_amp_new(params, CG_PRECISION_BF16, cg_grad_scaler_static_config(1.0f));
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 20);
    cg_amp_attach(amp, t);
    cg_tensor *loss = cg_sum(t, cg_autocast_f32(t, cg_module_forward(conv, t, x)));
    cg_params_zero_grad(params);
    cg_amp_backward(amp, t, loss);
    int64_t off = params->offsets[0], nonzero = 0;
    for (int64_t i = 0; i < w->numel; i++) nonzero += params->grads[off + i] != 0.0f;
    if (w->low->requires_grad || nonzero)
        fail("frozen under autocast", "the 16-bit copy %s a gradient; %lld of %lld f32 gradients are not 0",
             w->low->requires_grad ? "asks for" : "does not ask for", (long long)nonzero, (long long)w->numel);
    else
        printf("frozen under autocast: no gradient for the frozen weight\n");
    cg_tape_free(t);
    cg_amp_free(amp);
    cg_tensor_free(x);
    cg_module_free(conv);
    cg_params_free(params);
}

// ---- training steps with the loss scaler --------------------------------------------------------

typedef struct {
    cg_params *params;
    cg_module *model;
    cg_optimizer *opt;
    cg_amp *amp;
    cg_tape *tape;
    cg_tensor *x, *targets;
} run;

// Linear(20, 1) and a sigmoid on the course's random data (the first 64 samples, one batch),
// BCE (times a factor run_step takes), Adam with eps 1e-12 instead of 1e-8, so that its step
// does not depend on the gradients' magnitude even when they are about 1e-9.
// input_factor multiplies the inputs.
static run run_new(cg_precision precision, cg_grad_scaler_config scaler, float input_factor) {
    run r;
    r.params = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(7, CG_STREAM_INIT);
    r.model = cg_sequential_new();
    cg_sequential_add(r.model, cg_linear_new(r.params, "fc", 20, 1, true, &init));
    cg_sequential_add(r.model, cg_sigmoid_new());
    cg_optim_config oc = cg_adam_config(1e-2f);
    oc.eps = 1e-12f;
    r.opt = cg_optimizer_new(r.params, oc);
    r.amp = cg_amp_new(r.params, precision, scaler);
    r.tape = cg_tape_new(cg_cpu(), 1 << 20);
    cg_amp_attach(r.amp, r.tape);
    cg_dataset *d = cg_synthetic_binary(64, 20, 5);
    float targets[64];
    for (int i = 0; i < 64; i++) targets[i] = (float)d->labels[i];
    for (int64_t i = 0; i < 64 * 20; i++) d->x[i] *= input_factor;
    r.x = host_tensor(2, (int64_t[]){64, 20}, d->x);
    r.targets = host_tensor(1, (int64_t[]){64}, targets);
    cg_dataset_free(d);
    return r;
}

static void run_free(run *r) {
    cg_tensor_free(r->x), cg_tensor_free(r->targets);
    cg_tape_free(r->tape);
    cg_amp_free(r->amp);
    cg_optimizer_free(r->opt);
    cg_module_free(r->model);
    cg_params_free(r->params);
}

// One training step; returns the (unscaled) BCE before the step.
static float run_step(run *r, float loss_factor) {
    cg_tensor *p = cg_module_forward(r->model, r->tape, r->x);
    cg_tensor *bce = cg_bce(r->tape, p, r->targets);
    float value = cg_tensor_item(bce);
    cg_tensor *loss = loss_factor == 1.0f ? bce : cg_scale(r->tape, bce, loss_factor);
    cg_optimizer_zero_grad(r->opt);
    cg_amp_backward(r->amp, r->tape, loss);
    cg_amp_step(r->amp, r->opt);
    cg_tape_clear(r->tape);
    return value;
}

static float *params_copy(const run *r) {
    float *c = cg_xmalloc((size_t)r->params->numel * sizeof(float));
    memcpy(c, r->params->values, (size_t)r->params->numel * sizeof(float));
    return c;
}

static void test_scaler_wired(void) {
    // Overflow: the loss times 1e4 makes gradients of about 100, times 65536: inf in fp16.
    run r = run_new(CG_PRECISION_FP16, cg_grad_scaler_default_config(), 1.0f);
    float *before = params_copy(&r);
    run_step(&r, 1e4f);
    cg_amp_stats st = cg_amp_read(r.amp);
    if (st.scale != 32768.0f || st.skipped != 1 || st.steps != 1)
        fail("scaler overflow", "scale %g, %lld skipped of %lld: expected 32768, 1 of 1", (double)st.scale,
             (long long)st.skipped, (long long)st.steps);
    if (memcmp(before, r.params->values, (size_t)r.params->numel * sizeof(float)) != 0)
        fail("scaler overflow", "the parameters changed in a skipped step");
    if (*r.opt->counter != 0.0f) fail("scaler overflow", "Adam's step count is %g after a skipped step", (double)*r.opt->counter);
    printf("overflow step: skipped, parameters and Adam's step count unchanged, scale 65536 -> %g\n", (double)st.scale);
    free(before);
    run_free(&r);

    // Growth and back-off step for step with the host state machine: growth_interval 3, steps
    // that overflow or not depending on the loss factor (1: clean up to S = 16384; 1e5: inf).
    cg_grad_scaler_config c = cg_grad_scaler_default_config();
    c.init_scale = 4096.0f;
    c.growth_interval = 3;
    r = run_new(CG_PRECISION_FP16, c, 1.0f);
    cg_grad_scaler *host = cg_grad_scaler_new(c);
    const float factors[] = {1, 1, 1, 1, 1e5f, 1, 1, 1, 1, 1, 1};
    int n_steps = (int)(sizeof factors / sizeof factors[0]);
    for (int i = 0; i < n_steps; i++) {
        float *prev = params_copy(&r);
        run_step(&r, factors[i]);
        bool changed = memcmp(prev, r.params->values, (size_t)r.params->numel * sizeof(float)) != 0;
        bool applied = cg_grad_scaler_update(host, factors[i] != 1.0f);
        st = cg_amp_read(r.amp);
        if (st.scale != cg_grad_scaler_scale(host) || st.skipped != cg_grad_scaler_skipped(host) || changed != applied)
            fail("scaler growth", "step %d: device scale %g, %lld skipped, step %s; host %g, %lld, %s", i + 1,
                 (double)st.scale, (long long)st.skipped, changed ? "applied" : "skipped",
                 (double)cg_grad_scaler_scale(host), (long long)cg_grad_scaler_skipped(host), applied ? "applied" : "skipped");
        free(prev);
    }
    // 3 clean steps: x2; one clean, one overflow: x0.5; 6 clean: x2 x2.
    if (st.scale != 16384.0f) fail("scaler growth", "final scale %g, expected 4096 x2 x0.5 x2 x2 = 16384 after 11 steps",
                                   (double)st.scale);
    printf("11 steps (growth interval 3, one overflow): scale %g and skipped steps as the host GradScaler\n", (double)st.scale);
    cg_grad_scaler_free(host);
    run_free(&r);
}

// The loss times 1e-7 makes every gradient about 1e-9, below fp16's smallest subnormal (6e-8):
// without scaling they round to zero and Adam never moves; scaled by 65536 they are 1e-4 and
// it learns as in f32 (Adam's step does not depend on the gradients' magnitude).
static void test_stall_and_learn(void) {
    const int steps = 60;
    const float factor = 1e-7f;
    struct {
        const char *name;
        cg_precision p;
        cg_grad_scaler_config s;
        float first, last;
    } cases[3] = {{"fp32", CG_PRECISION_FP32, cg_grad_scaler_static_config(1.0f), 0, 0},
                  {"fp16, no scaling", CG_PRECISION_FP16, cg_grad_scaler_static_config(1.0f), 0, 0},
                  {"fp16, dynamic scaling", CG_PRECISION_FP16, cg_grad_scaler_default_config(), 0, 0}};
    for (int k = 0; k < 3; k++) {
        run r = run_new(cases[k].p, cases[k].s, 1.0f);
        for (int i = 0; i < steps; i++) {
            float l = run_step(&r, factor);
            if (i == 0) cases[k].first = l;
            cases[k].last = l;
        }
        printf("%-22s loss %.6f -> %.6f after %d steps\n", cases[k].name, (double)cases[k].first, (double)cases[k].last,
               steps);
        run_free(&r);
    }
    if (cases[1].last != cases[1].first) fail("stall", "fp16 without scaling moved: %g -> %g", (double)cases[1].first, (double)cases[1].last);
    if (!(cases[0].last < cases[0].first - 0.05f)) fail("learn", "fp32 did not learn: %g -> %g", (double)cases[0].first, (double)cases[0].last);
    if (!(cases[2].last < cases[2].first - 0.05f)) fail("learn", "fp16 with scaling did not learn: %g -> %g", (double)cases[2].first, (double)cases[2].last);
    if (!(fabsf(cases[2].last - cases[0].last) < 0.01f * cases[0].last))
        fail("learn", "fp16 with scaling ends at %g, fp32 at %g (more than 1%% apart)", (double)cases[2].last, (double)cases[0].last);
}

static void test_parse(void) {
    cg_precision p;
    cg_grad_scaler_config c;
    if (cg_precision_parse("bf16", &p).code != CG_OK || p != CG_PRECISION_BF16) fail("parse", "bf16");
    if (cg_precision_parse("fp8", &p).code == CG_OK) fail("parse", "fp8 accepted");
    if (cg_loss_scale_parse("static:1024", &c).code != CG_OK || c.dynamic || c.init_scale != 1024.0f) fail("parse", "static:1024");
    if (cg_loss_scale_parse("dynamic", &c).code != CG_OK || !c.dynamic || c.init_scale != 65536.0f) fail("parse", "dynamic");
    if (cg_loss_scale_parse("none", &c).code != CG_OK || c.dynamic || c.init_scale != 1.0f) fail("parse", "none");
    const char *bad[] = {"static:", "static:-1", "static:0", "static:abc", "static:inf", "huge"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cg_loss_scale_parse(bad[i], &c).code == CG_OK) fail("parse", "'%s' accepted", bad[i]);
    if (!cg_loss_scale_default(CG_PRECISION_FP16).dynamic || cg_loss_scale_default(CG_PRECISION_BF16).dynamic)
        fail("parse", "defaults: fp16 dynamic, bf16 none");
}

// f32 to and from a 16-bit dtype through core/half.c.
static uint16_t to16(cg_dtype low, float v) { return low == CG_F16 ? cg_f32_to_f16(v) : cg_f32_to_bf16(v); }
static float from16(cg_dtype low, uint16_t h) { return low == CG_F16 ? cg_f16_to_f32(h) : cg_bf16_to_f32(h); }

// The CPU's cast kernel on arrays large enough for its threads and its pieces (an odd length):
// f32 to 16 bits (rounded straight from the f32 values) against core/half.c, a 16-bit gradient
// accumulated into an f32 one against the sum worked out here, and 16 bits to the same 16 bits.
static void test_cast_kernel(cg_dtype low) {
    int64_t n = 3 * (1 << 18) + 777;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 100003) / 1024.0f - 48.0f; // not all exact in 16 bits
    cg_cpu_kernels()->cast(h, low, x, CG_F32, n, false);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += h[i] != to16(low, x[i]);
    if (wrong) fail("cast kernel", "f32 to %s: %lld values wrong", cg_dtype_name(low), (long long)wrong);
    for (int64_t i = 0; i < n; i++) y[i] = (float)(i % 1000) * 0.25f;
    cg_cpu_kernels()->cast(y, CG_F32, h, low, n, true);
    wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += y[i] != (float)(i % 1000) * 0.25f + from16(low, h[i]);
    if (wrong) fail("cast kernel", "%s accumulated into f32: %lld values wrong", cg_dtype_name(low), (long long)wrong);
    // From the 16-bit dtype to itself (reshape's copy and its gradient): a copy, then
    // round(g + h) into a 16-bit g, against core/half.c.
    uint16_t *g = malloc(sizeof(uint16_t) * (size_t)n), *copy = malloc(sizeof(uint16_t) * (size_t)n);
    cg_cpu_kernels()->cast(copy, low, h, low, n, false);
    if (memcmp(copy, h, sizeof(uint16_t) * (size_t)n) != 0)
        fail("cast kernel", "%s to itself: not a copy", cg_dtype_name(low));
    for (int64_t i = 0; i < n; i++) g[i] = to16(low, (float)(i % 1000) * 0.125f);
    memcpy(copy, g, sizeof(uint16_t) * (size_t)n);
    cg_cpu_kernels()->cast(g, low, h, low, n, true);
    wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += g[i] != to16(low, from16(low, copy[i]) + from16(low, h[i]));
    if (wrong)
        fail("cast kernel", "%s accumulated into itself: %lld values wrong", cg_dtype_name(low), (long long)wrong);
    free(x), free(y), free(h), free(g), free(copy);
}

int main(void) {
    test_parse();
    test_cast(CG_F16);
    test_cast(CG_BF16);
    test_cast_kernel(CG_F16);
    test_cast_kernel(CG_BF16);
    test_autocast_model(CG_PRECISION_FP16, false);
    test_autocast_model(CG_PRECISION_BF16, false);
    test_autocast_model(CG_PRECISION_FP16, true);
    test_autocast_model(CG_PRECISION_BF16, true);
    test_frozen_under_autocast();
    test_global_avg_pool_keeps(CG_F16);
    test_global_avg_pool_keeps(CG_BF16);
    test_channels_last(CG_PRECISION_FP16);
    test_channels_last(CG_PRECISION_BF16);
    test_fresh_gradients(CG_PRECISION_FP16);
    test_fresh_gradients(CG_PRECISION_BF16);
    test_scaler_wired();
    test_stall_and_learn();
    return check_summary("test_amp");
}

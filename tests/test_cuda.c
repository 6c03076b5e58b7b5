// test_cuda.c: every op of core/ops.h on the GPU against the CPU (the rows of tests/op_cases.h:
// output, loss and every input gradient), then every CUDA kernel against its CPU twin on the same
// random inputs through the two kernel tables of core/kernels.h, with a tolerance that grows with
// the magnitude of the values (|gpu - cpu| <= atol + rtol * |cpu|), then a whole SimpleNN training
// run on both devices, whose per-epoch losses must agree. Without a GPU it reports itself skipped (77).
#include "cgrad.h"
#include "tests/op_cases.h"
#include "tests/twin.h"
#include "datasets/files.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(t) ((float *)(t).host)
#define D(t) ((float *)(t).dev)
#define FI(t) ((int32_t *)(t).host)
#define DI(t) ((int32_t *)(t).dev)

// ---- every op, through the tape, on both devices -------------------------------------------

// A tensor computed on the GPU against its CPU twin, value by value: 1 (and a fail()) when one
// differs, else 0.
static int compare_tensors(const char *what, const char *name, const cg_tensor *cpu, const cg_tensor *cuda) {
    int64_t n = cpu->numel;
    float *want = cg_xmalloc((size_t)n * sizeof(float)), *got = cg_xmalloc((size_t)n * sizeof(float));
    cg_tensor_copy_to_host(want, cpu, n);
    cg_tensor_copy_to_host(got, cuda, n);
    int64_t bad = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= 2e-4 + 1e-3 * fabs(want[i])) && bad < 0) bad = i;
        if (err > worst) worst = err;
    }
    if (bad >= 0)
        fail(name, "op %s element %lld of %lld: cpu %.9g, cuda %.9g", what, (long long)bad, (long long)n,
             (double)want[bad], (double)got[bad]);
    free(want);
    free(got);
    return bad >= 0;
}

// Each row of tests/op_cases.h on the CPU and on the GPU from the same inputs and loss weights:
// the loss and the gradient of every input that requires one must agree.
static void test_ops_against_cpu(void) {
    check_coverage("test_cuda");
    cg_tape *tc = cg_tape_new(cg_cpu(), 1 << 16), *tg = cg_tape_new(gpu, 1 << 16);
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        const op_case *c = &cases[i];
        case_state sc, sg;
        memset(&sc, 0, sizeof sc);
        memset(&sg, 0, sizeof sg);
        cg_rng rc = cg_rng_new(2024, case_stream(c)), rg = rc;
        for (int j = 0; j < c->n_in; j++) {
            draw_input(c, j, &rc, &sc, cg_cpu());
            draw_input(c, j, &rg, &sg, gpu);
        }
        cg_tensor *lc = case_loss(tc, c, &sc, &rc), *lg = case_loss(tg, c, &sg, &rg);
        cg_tape_backward(tc, lc);
        cg_tape_backward(tg, lg);
        int bad = compare_tensors("loss", c->name, lc, lg);
        for (int j = 0; j < c->n_in; j++) {
            if (!c->in[j].requires_grad) continue;
            char what[32];
            snprintf(what, sizeof what, "d input %d", j);
            if (sc.in[j]->grad == NULL || sg.in[j]->grad == NULL) {
                fail(c->name, "op %s: no gradient", what);
                bad++;
                continue;
            }
            bad += compare_tensors(what, c->name, sc.in[j]->grad, sg.in[j]->grad);
        }
        if (!bad) printf("ok   op %-22s loss and input gradients agree\n", c->name);
        cg_tape_clear(tc);
        cg_tape_clear(tg);
        for (int j = 0; j < c->n_in; j++) {
            free(sc.host[j]), free(sg.host[j]);
            cg_tensor_free(sc.in[j]), cg_tensor_free(sg.in[j]);
        }
        cg_tensor_free(sc.u), cg_tensor_free(sc.w), cg_tensor_free(sg.u), cg_tensor_free(sg.w);
    }
    cg_tape_free(tc);
    cg_tape_free(tg);
}

static void test_elementwise(cg_rng *r) {
    const int64_t n = 100003; // not a multiple of any block size
    twin a = twin_uniform(r, n, CG_F32, -2, 2), b = twin_uniform(r, n, CG_F32, -2, 2), y = twin_uniform(r, n, CG_F32, -1, 1);
    twin dy = twin_uniform(r, n, CG_F32, -1, 1);

    K_CPU->fill(F(y), 0.25f, n), K_GPU->fill(D(y), 0.25f, n);
    expect_close("fill", &y, 0, 0);
    K_CPU->axpy(F(y), -1.5f, F(a), n), K_GPU->axpy(D(y), -1.5f, D(a), n);
    expect_close("axpy", &y, 1e-6, 1e-6);
    K_CPU->add_scalar(F(y), 3.0f), K_GPU->add_scalar(D(y), 3.0f);
    expect_close("add_scalar", &y, 1e-6, 1e-6);
    K_CPU->scale(F(y), F(a), 0.3f, n), K_GPU->scale(D(y), D(a), 0.3f, n);
    expect_close("scale", &y, 1e-7, 1e-6);
    K_CPU->add_forward(F(y), F(a), F(b), n), K_GPU->add_forward(D(y), D(a), D(b), n);
    expect_close("add_forward", &y, 1e-7, 1e-6);

    int64_t rows = 1001, cols = 97;
    twin x2 = twin_uniform(r, rows * cols, CG_F32, -1, 1), bias = twin_uniform(r, cols, CG_F32, -1, 1);
    twin y2 = twin_new(rows * cols, CG_F32), dbias = twin_uniform(r, cols, CG_F32, -1, 1);
    K_CPU->add_bias_forward(F(y2), F(x2), F(bias), rows, cols);
    K_GPU->add_bias_forward(D(y2), D(x2), D(bias), rows, cols);
    expect_close("add_bias_forward", &y2, 1e-7, 1e-6);
    K_CPU->add_bias_backward(F(dbias), F(x2), rows, cols);
    K_GPU->add_bias_backward(D(dbias), D(x2), rows, cols);
    expect_close("add_bias_backward", &dbias, 1e-4, 1e-5); // sums of 1001 terms in another order

    twin dx = twin_uniform(r, n, CG_F32, -1, 1);
    K_CPU->relu_forward(F(y), F(a), n), K_GPU->relu_forward(D(y), D(a), n);
    expect_close("relu_forward", &y, 0, 0);
    K_CPU->relu_backward(F(dx), F(dy), F(y), n), K_GPU->relu_backward(D(dx), D(dy), D(y), n);
    expect_close("relu_backward", &dx, 1e-7, 1e-6);
    K_CPU->sigmoid_forward(F(y), F(a), n), K_GPU->sigmoid_forward(D(y), D(a), n);
    expect_close("sigmoid_forward", &y, 1e-6, 1e-6);
    K_CPU->sigmoid_backward(F(dx), F(dy), F(y), n), K_GPU->sigmoid_backward(D(dx), D(dy), D(y), n);
    expect_close("sigmoid_backward", &dx, 1e-6, 1e-6);

    twin *all[] = {&a, &b, &y, &dy, &x2, &bias, &y2, &dbias, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
}

static void test_gemm(cg_rng *r) {
    // odd sizes (no tile fits exactly), large enough for cuBLAS, and small (the engine's kernel)
    const int64_t sizes[2][3] = {{67, 45, 131}, {32, 50, 20}};
    for (int s = 0; s < 2; s++)
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            twin A = twin_uniform(r, M * K, CG_F32, -1, 1), B = twin_uniform(r, K * N, CG_F32, -1, 1), C = twin_uniform(r, M * N, CG_F32, -1, 1);
            K_CPU->gemm(ta, tb, M, N, K, 0.5f, F(A), F(B), 1.0f, F(C));
            K_GPU->gemm(ta, tb, M, N, K, 0.5f, D(A), D(B), 1.0f, D(C));
            char name[32];
            snprintf(name, sizeof name, "gemm %s%s %lldx%lldx%lld", ta ? "T" : "N", tb ? "T" : "N", (long long)M,
                     (long long)N, (long long)K);
            expect_close(name, &C, 1e-5, 1e-5);
            twin_free(&A), twin_free(&B), twin_free(&C);
        }
    // linear_forward: x W^T + b, small (one fused kernel) and large (cuBLAS, then the bias)
    const int64_t lsizes[2][3] = {{32, 50, 20}, {300, 200, 100}};
    for (int s = 0; s < 2; s++) {
        int64_t M = lsizes[s][0], N = lsizes[s][1], K = lsizes[s][2];
        twin x = twin_uniform(r, M * K, CG_F32, -1, 1), w = twin_uniform(r, N * K, CG_F32, -1, 1), b = twin_uniform(r, N, CG_F32, -1, 1);
        twin y = twin_new(M * N, CG_F32);
        K_CPU->linear_forward(F(y), F(x), F(w), F(b), M, N, K);
        K_GPU->linear_forward(D(y), D(x), D(w), D(b), M, N, K);
        expect_close(s == 0 ? "linear_forward small" : "linear_forward large", &y, 1e-5, 1e-5);
        twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y);
    }
    // beta = 0 must ignore whatever C held, NaN included
    twin A = twin_uniform(r, 4 * 3, CG_F32, -1, 1), B = twin_uniform(r, 3 * 5, CG_F32, -1, 1), C = twin_new(4 * 5, CG_F32);
    for (int i = 0; i < 20; i++) F(C)[i] = NAN;
    twin_upload(&C);
    K_CPU->gemm(false, false, 4, 5, 3, 1.0f, F(A), F(B), 0.0f, F(C));
    K_GPU->gemm(false, false, 4, 5, 3, 1.0f, D(A), D(B), 0.0f, D(C));
    expect_close("gemm beta=0 over NaN", &C, 1e-6, 1e-6);
    twin_free(&A), twin_free(&B), twin_free(&C);
}

static void test_losses(cg_rng *r) {
    const int64_t n = 777;
    twin p = twin_uniform(r, n, CG_F32, 0.02f, 0.98f), t = twin_labels(r, n, 2);
    twin tf = twin_new(n, CG_F32);
    for (int64_t i = 0; i < n; i++) F(tf)[i] = (float)FI(t)[i];
    twin_upload(&tf);
    twin loss = twin_new(1, CG_F32), dloss = twin_new(1, CG_F32), dp = twin_uniform(r, n, CG_F32, -1, 1);
    F(dloss)[0] = 0.7f;
    twin_upload(&dloss);
    K_CPU->bce_forward(F(loss), F(p), F(tf), n), K_GPU->bce_forward(D(loss), D(p), D(tf), n);
    expect_close("bce_forward", &loss, 1e-6, 1e-5);
    K_CPU->bce_backward(F(dp), F(dloss), F(p), F(tf), n), K_GPU->bce_backward(D(dp), D(dloss), D(p), D(tf), n);
    expect_close("bce_backward", &dp, 1e-6, 1e-5);

    const int64_t N = 300, C = 10;
    twin logits = twin_uniform(r, N * C, CG_F32, -5, 5), labels = twin_labels(r, N, (int)C);
    twin dlogits = twin_uniform(r, N * C, CG_F32, -1, 1);
    K_CPU->cross_entropy_forward(F(loss), F(logits), FI(labels), N, C, 0.1f);
    K_GPU->cross_entropy_forward(D(loss), D(logits), DI(labels), N, C, 0.1f);
    expect_close("cross_entropy_forward", &loss, 1e-5, 1e-5);
    K_CPU->cross_entropy_backward(F(dlogits), F(dloss), F(logits), FI(labels), N, C, 0.1f);
    K_GPU->cross_entropy_backward(D(dlogits), D(dloss), D(logits), DI(labels), N, C, 0.1f);
    expect_close("cross_entropy_backward", &dlogits, 1e-6, 1e-5);

    twin x = twin_uniform(r, 54321, CG_F32, -1, 1), dx = twin_uniform(r, 54321, CG_F32, -1, 1);
    K_CPU->sum_forward(F(loss), F(x), 0.01f, 54321), K_GPU->sum_forward(D(loss), D(x), 0.01f, 54321);
    expect_close("sum_forward", &loss, 1e-4, 1e-5);
    K_CPU->sum_backward(F(dx), F(dloss), 0.01f, 54321), K_GPU->sum_backward(D(dx), D(dloss), 0.01f, 54321);
    expect_close("sum_backward", &dx, 1e-7, 1e-6);

    twin acc = twin_new(1, CG_F32);
    K_CPU->count_binary_correct(F(acc), F(p), F(tf), 0.5f, n);
    K_GPU->count_binary_correct(D(acc), D(p), D(tf), 0.5f, n);
    expect_close("count_binary_correct", &acc, 0, 0);
    K_CPU->count_argmax_correct(F(acc), F(logits), FI(labels), N, C);
    K_GPU->count_argmax_correct(D(acc), D(logits), DI(labels), N, C);
    expect_close("count_argmax_correct", &acc, 0, 0);
    for (int64_t k = 1; k <= 5; k += 4) {
        K_CPU->count_topk_correct(F(acc), F(logits), FI(labels), N, C, k);
        K_GPU->count_topk_correct(D(acc), D(logits), DI(labels), N, C, k);
        expect_close(k == 1 ? "count_topk_correct k 1" : "count_topk_correct k 5", &acc, 0, 0);
    }
    twin counts = twin_new(C * C, CG_F32);
    K_CPU->confusion_add(F(counts), F(logits), FI(labels), N, C);
    K_GPU->confusion_add(D(counts), D(logits), DI(labels), N, C);
    expect_close("confusion_add", &counts, 0, 0);
    twin_free(&counts);

    twin *all[] = {&p, &t, &tf, &loss, &dloss, &dp, &logits, &labels, &dlogits, &x, &dx, &acc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
}

// Integers compared through floats (exact below 2^24).
static void expect_equal_i32(const char *kernel, twin *t) {
    int32_t *got = cg_xmalloc((size_t)t->n * sizeof(int32_t));
    cg_device_copy(cg_cpu(), got, gpu, t->dev, (size_t)t->n * sizeof(int32_t));
    int64_t bad = -1;
    for (int64_t i = 0; i < t->n && bad < 0; i++)
        if (got[i] != ((int32_t *)t->host)[i]) bad = i;
    if (bad >= 0) {
        fail(kernel, "element %lld: cpu %d, cuda %d", (long long)bad, ((int32_t *)t->host)[bad], got[bad]);
    } else {
        printf("ok   %-24s %8lld values, identical\n", kernel, (long long)t->n);
    }
    free(got);
}

static void test_conv_and_pool(cg_rng *r) {
    const int64_t N = 3, C = 4, H = 9, W = 7, R = 3, S = 3, K = 5;
    // stride 2 pad 1 (small: the GEMMs take the engine's kernels), and a batch big enough for
    // cuBLAS and for the CPU's threads
    const int64_t shapes[2][4] = {{3, 4, 2, 1}, {64, 8, 1, 1}}; // N, C, stride, pad
    for (int v = 0; v < 2; v++) {
        int64_t n = shapes[v][0], c = shapes[v][1], stride = shapes[v][2], pad = shapes[v][3];
        int64_t P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - S) / stride + 1;
        twin x = twin_uniform(r, n * c * H * W, CG_F32, -1, 1), w = twin_uniform(r, K * c * R * S, CG_F32, -1, 1);
        twin b = twin_uniform(r, K, CG_F32, -1, 1), y = twin_new(n * K * P * Q, CG_F32);
        K_CPU->conv2d_forward(F(y), F(x), F(w), F(b), n, c, H, W, K, R, S, stride, pad, P, Q);
        K_GPU->conv2d_forward(D(y), D(x), D(w), D(b), n, c, H, W, K, R, S, stride, pad, P, Q);
        expect_close(v == 0 ? "conv2d_forward small" : "conv2d_forward batch 64", &y, 1e-5, 1e-5);
        twin dy = twin_uniform(r, n * K * P * Q, CG_F32, -1, 1), dx = twin_uniform(r, n * c * H * W, CG_F32, -1, 1);
        twin dw = twin_uniform(r, K * c * R * S, CG_F32, -1, 1), db = twin_uniform(r, K, CG_F32, -1, 1);
        K_CPU->conv2d_backward(F(dx), F(dw), F(db), F(dy), F(x), F(w), n, c, H, W, K, R, S, stride, pad, P, Q, true);
        K_GPU->conv2d_backward(D(dx), D(dw), D(db), D(dy), D(x), D(w), n, c, H, W, K, R, S, stride, pad, P, Q, true);
        expect_close("conv2d_backward dx", &dx, 1e-5, 1e-5);
        expect_close("conv2d_backward dw", &dw, 1e-4, 1e-5);
        expect_close("conv2d_backward dbias", &db, 1e-4, 1e-5);
        // accumulate false (a first gradient): dx written over what it held (other values on each side)
        twin dx1 = twin_uniform(r, n * c * H * W, CG_F32, -1, 1);
        for (int64_t i = 0; i < n * c * H * W; i++) F(dx1)[i] = 1e30f; // the CPU's old values, never read
        K_CPU->conv2d_backward(F(dx1), NULL, NULL, F(dy), F(x), F(w), n, c, H, W, K, R, S, stride, pad, P, Q, false);
        K_GPU->conv2d_backward(D(dx1), NULL, NULL, D(dy), D(x), D(w), n, c, H, W, K, R, S, stride, pad, P, Q, false);
        expect_close("conv2d_backward dx written (accumulate false)", &dx1, 1e-5, 1e-5);
        twin *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db, &dx1};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    }
    twin x = twin_uniform(r, N * C * H * W, CG_F32, -1, 1);
    // pooling: 2x2 stride 2, and 3x3 stride 1 (overlapping windows: atomic adds on the GPU)
    const int64_t kernels[2][2] = {{2, 2}, {3, 1}};
    for (int v = 0; v < 2; v++) {
        int64_t kk = kernels[v][0], ss = kernels[v][1], PP = (H - kk) / ss + 1, QQ = (W - kk) / ss + 1;
        twin py = twin_new(N * C * PP * QQ, CG_F32), arg = twin_new(N * C * PP * QQ, CG_I32);
        K_CPU->max_pool2d_forward(F(py), FI(arg), F(x), N, C, H, W, kk, ss, PP, QQ);
        K_GPU->max_pool2d_forward(D(py), DI(arg), D(x), N, C, H, W, kk, ss, PP, QQ);
        expect_close(v == 0 ? "max_pool2d_forward 2/2" : "max_pool2d_forward 3/1", &py, 0, 0);
        expect_equal_i32(v == 0 ? "max_pool2d arg-max 2/2" : "max_pool2d arg-max 3/1", &arg);
        twin pdx = twin_uniform(r, N * C * H * W, CG_F32, -1, 1), pdy = twin_uniform(r, N * C * PP * QQ, CG_F32, -1, 1);
        K_CPU->max_pool2d_backward(F(pdx), F(pdy), FI(arg), N * C * PP * QQ);
        K_GPU->max_pool2d_backward(D(pdx), D(pdy), DI(arg), N * C * PP * QQ);
        expect_close(v == 0 ? "max_pool2d_backward 2/2" : "max_pool2d_backward 3/1", &pdx, 1e-6, 1e-6);
        twin_free(&py), twin_free(&arg), twin_free(&pdx), twin_free(&pdy);
    }
    twin_free(&x);
}

// Batch norm on shapes that take each path of the GPU's sums: one block per channel and a few
// thousand values (5 x 3 x 37), channels cut into shares of whole images (64 x 16 x 225: 7
// shares), shares of planes smaller than a block (49 and 9 positions: a thread's steps cross
// images) and planes larger than a block (300);
// then the synchronised form's five steps (one rank: the sums are this rank's).
static void test_batch_norm(cg_rng *r) {
    static const int64_t shapes[][3] = {{5, 3, 37}, {64, 16, 225}, {512, 8, 49}, {600, 4, 9}, {8, 4, 300}};
    for (size_t v = 0; v < sizeof shapes / sizeof *shapes; v++) {
        const int64_t N = shapes[v][0], C = shapes[v][1], HW = shapes[v][2];
        printf("batch norm, N %lld, C %lld, HW %lld\n", (long long)N, (long long)C, (long long)HW);
        for (int training = 1; training >= 0; training--) {
            twin x = twin_uniform(r, N * C * HW, CG_F32, -2, 3), gamma = twin_uniform(r, C, CG_F32, 0.5f, 1.5f), beta = twin_uniform(r, C, CG_F32, -1, 1);
            twin rm = twin_uniform(r, C, CG_F32, -0.5f, 0.5f), rv = twin_uniform(r, C, CG_F32, 0.5f, 2.0f);
            twin y = twin_new(N * C * HW, CG_F32), stats = twin_new(2 * C, CG_F32);
            K_CPU->batch_norm_forward(F(y), F(stats), F(rm), F(rv), F(x), F(gamma), F(beta), N, C, HW, 1e-5f, 0.1f, training);
            K_GPU->batch_norm_forward(D(y), D(stats), D(rm), D(rv), D(x), D(gamma), D(beta), N, C, HW, 1e-5f, 0.1f, training);
            expect_close(training ? "batch_norm_forward train" : "batch_norm_forward eval", &y, 1e-5, 1e-5);
            expect_close(training ? "batch_norm running_var" : "batch_norm stats (eval)", training ? &rv : &stats, 1e-5, 1e-5);
            if (training) expect_close("batch_norm running_mean", &rm, 1e-6, 1e-5);
            twin dy = twin_uniform(r, N * C * HW, CG_F32, -1, 1), dx = twin_uniform(r, N * C * HW, CG_F32, -1, 1);
            twin dg = twin_uniform(r, C, CG_F32, -1, 1), db = twin_uniform(r, C, CG_F32, -1, 1);
            K_CPU->batch_norm_backward(F(dx), F(dg), F(db), F(dy), F(x), F(gamma), F(stats), N, C, HW, training);
            K_GPU->batch_norm_backward(D(dx), D(dg), D(db), D(dy), D(x), D(gamma), D(stats), N, C, HW, training);
            expect_close(training ? "batch_norm_backward dx train" : "batch_norm_backward dx eval", &dx, 1e-5, 1e-4);
            expect_close("batch_norm_backward dgamma", &dg, 1e-4, 1e-4);
            expect_close("batch_norm_backward dbeta", &db, 1e-4, 1e-4);
            twin *all[] = {&x, &gamma, &beta, &rm, &rv, &y, &stats, &dy, &dx, &dg, &db};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
        }
    }
    // The synchronised steps; the f64 sums live in f32 twins of twice the length (raw storage,
    // never compared: what they lead to is).
    const int64_t N = 64, C = 16, HW = 225;
    twin x = twin_uniform(r, N * C * HW, CG_F32, -2, 3), gamma = twin_uniform(r, C, CG_F32, 0.5f, 1.5f), beta = twin_uniform(r, C, CG_F32, -1, 1);
    twin rm = twin_uniform(r, C, CG_F32, -0.5f, 0.5f), rv = twin_uniform(r, C, CG_F32, 0.5f, 2.0f);
    twin sums = twin_new(2 * (2 * C + 1), CG_F32), stats = twin_new(2 * C + 1, CG_F32), y = twin_new(N * C * HW, CG_F32);
    K_CPU->batch_norm_sums((double *)sums.host, F(x), N, C, HW);
    K_GPU->batch_norm_sums((double *)sums.dev, D(x), N, C, HW);
    K_CPU->batch_norm_stats_from_sums(F(stats), F(rm), F(rv), (double *)sums.host, C, 1e-5f, 0.1f);
    K_GPU->batch_norm_stats_from_sums(D(stats), D(rm), D(rv), (double *)sums.dev, C, 1e-5f, 0.1f);
    expect_close("batch_norm_stats_from_sums", &stats, 1e-5, 1e-5);
    expect_close("batch_norm_stats_from_sums running_var", &rv, 1e-5, 1e-5);
    K_CPU->batch_norm_forward_from_stats(F(y), F(x), F(gamma), F(beta), F(stats), N, C, HW);
    K_GPU->batch_norm_forward_from_stats(D(y), D(x), D(gamma), D(beta), D(stats), N, C, HW);
    expect_close("batch_norm_forward_from_stats", &y, 1e-5, 1e-5);
    twin dsums = twin_new(2 * 4 * C, CG_F32), dy = twin_uniform(r, N * C * HW, CG_F32, -1, 1);
    twin dx = twin_uniform(r, N * C * HW, CG_F32, -1, 1), dg = twin_uniform(r, C, CG_F32, -1, 1), db = twin_uniform(r, C, CG_F32, -1, 1);
    K_CPU->batch_norm_backward_sums((double *)dsums.host, F(dy), F(x), F(stats), N, C, HW);
    K_GPU->batch_norm_backward_sums((double *)dsums.dev, D(dy), D(x), D(stats), N, C, HW);
    K_CPU->batch_norm_backward_from_sums(F(dx), F(dg), F(db), F(dy), F(x), F(gamma), F(stats), (double *)dsums.host, N, C, HW);
    K_GPU->batch_norm_backward_from_sums(D(dx), D(dg), D(db), D(dy), D(x), D(gamma), D(stats), (double *)dsums.dev, N, C, HW);
    expect_close("batch_norm_backward_from_sums dx", &dx, 1e-5, 1e-4);
    expect_close("batch_norm_backward_from_sums dgamma", &dg, 1e-4, 1e-4);
    expect_close("batch_norm_backward_from_sums dbeta", &db, 1e-4, 1e-4);
    twin *all[] = {&x, &gamma, &beta, &rm, &rv, &sums, &stats, &y, &dsums, &dy, &dx, &dg, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
}

static void test_dropout(cg_rng *r) {
    const int64_t n = 10001;
    twin x = twin_uniform(r, n, CG_F32, -1, 1), y = twin_new(n, CG_F32), mask = twin_new(n, CG_F32);
    K_CPU->dropout_forward(F(y), F(mask), F(x), n, 0.3f, 99, CG_STREAM_DROPOUT, 5);
    K_GPU->dropout_forward(D(y), D(mask), D(x), n, 0.3f, 99, CG_STREAM_DROPOUT, 5);
    expect_close("dropout_forward mask", &mask, 0, 0);
    expect_close("dropout_forward", &y, 0, 1e-7);
    twin acc = twin_uniform(r, n, CG_F32, -1, 1);
    K_CPU->multiply_add(F(acc), F(x), F(mask), n), K_GPU->multiply_add(D(acc), D(x), D(mask), n);
    expect_close("multiply_add", &acc, 1e-7, 1e-6);
    twin_free(&x), twin_free(&y), twin_free(&mask), twin_free(&acc);
}

static void test_optimizers(cg_rng *r) {
    const int64_t n = 70001;
    // Every 7th float spared by the weight-decay mask; the learning rate changed between steps on
    // both devices (a schedule: the kernels read it from memory).
    twin mask = twin_new(n, CG_U8), lr = twin_new(1, CG_F32);
    for (int64_t i = 0; i < n; i++) ((uint8_t *)mask.host)[i] = i % 7 != 0;
    twin_upload(&mask);
    for (int kind = 0; kind < 6; kind++) {
        twin p = twin_uniform(r, n, CG_F32, -1, 1), g = twin_uniform(r, n, CG_F32, -1, 1);
        twin m = twin_new(n, CG_F32), v = twin_new(n, CG_F32), state = twin_new(1, CG_F32);
        const char *names[] = {"sgd_step",         "sgd_step nesterov",         "adam_step", "adam_step adamw",
                               "sgd_step decoupled masked", "adam_step L2 masked"};
        const uint8_t *mh = kind >= 4 ? mask.host : NULL, *md = kind >= 4 ? mask.dev : NULL;
        for (int step = 1; step <= 3; step++) {
            K_CPU->add_scalar(F(state), 1.0f), K_GPU->add_scalar(D(state), 1.0f);
            F(lr)[0] = (kind == 2 || kind == 3 || kind == 5 ? 1e-2f : 0.1f) / (float)step;
            twin_upload(&lr);
            if (kind == 0) {
                K_CPU->sgd_step(F(p), F(g), NULL, F(state), n, F(lr), 0.0f, 0.0f, 0.0f, false, false, NULL, NULL);
                K_GPU->sgd_step(D(p), D(g), NULL, D(state), n, D(lr), 0.0f, 0.0f, 0.0f, false, false, NULL, NULL);
            } else if (kind == 1 || kind == 4) {
                K_CPU->sgd_step(F(p), F(g), F(m), F(state), n, F(lr), 0.9f, 0.0f, 1e-2f, true, kind == 4, mh, NULL);
                K_GPU->sgd_step(D(p), D(g), D(m), D(state), n, D(lr), 0.9f, 0.0f, 1e-2f, true, kind == 4, md, NULL);
            } else {
                K_CPU->adam_step(F(p), F(g), F(m), F(v), F(state), n, F(lr), 0.9f, 0.999f, 1e-8f, 1e-2f, kind == 3,
                                 mh, NULL);
                K_GPU->adam_step(D(p), D(g), D(m), D(v), D(state), n, D(lr), 0.9f, 0.999f, 1e-8f, 1e-2f, kind == 3,
                                 md, NULL);
            }
        }
        expect_close(names[kind], &p, 1e-6, 1e-5);
        twin_free(&p), twin_free(&g), twin_free(&m), twin_free(&v), twin_free(&state);
    }
    twin_free(&mask), twin_free(&lr);
    // Gradient clipping: the sum of squares (a GPU tree against the CPU's double sum), then the
    // scaling, once below the norm (scaled) and once above it (unchanged).
    for (int v = 0; v < 2; v++) {
        const int64_t m = v == 0 ? 1000003 : 999;
        twin g = twin_uniform(r, m, CG_F32, -1, 1), sum = twin_new(1, CG_F32), parts = twin_new(CG_NORM_PARTIALS, CG_F32);
        K_CPU->grad_sq_sum(F(sum), F(parts), F(g), m), K_GPU->grad_sq_sum(D(sum), D(parts), D(g), m);
        expect_close(v == 0 ? "grad_sq_sum 1000003" : "grad_sq_sum 999", &sum, 0, 1e-5);
        float max_norm = v == 0 ? 3.0f : 1e3f;
        K_CPU->clip_by_norm(F(g), F(sum), max_norm, m), K_GPU->clip_by_norm(D(g), D(sum), max_norm, m);
        expect_close(v == 0 ? "clip_by_norm (clips)" : "clip_by_norm (leaves)", &g, 1e-7, 1e-5);
        twin_free(&g), twin_free(&sum), twin_free(&parts);
    }
}

static void test_rng_and_gather(cg_rng *r) {
    const int64_t n = 10002; // not a multiple of 4
    twin u = twin_new(n, CG_F32), z = twin_new(n, CG_F32);
    K_CPU->rng_uniform(F(u), n, 1234, 7, 99, -3.0f, 5.0f), K_GPU->rng_uniform(D(u), n, 1234, 7, 99, -3.0f, 5.0f);
    expect_close("rng_uniform (Philox)", &u, 0, 1e-7);
    K_CPU->rng_normal(F(z), n, 1234, 7, 99, 1.0f, 2.0f), K_GPU->rng_normal(D(z), n, 1234, 7, 99, 1.0f, 2.0f);
    expect_close("rng_normal (Philox)", &z, 1e-6, 1e-6);

    const int64_t count = 50, numel = 13, B = 17;
    twin x = twin_uniform(r, count * numel, CG_F32, -1, 1), labels = twin_labels(r, count, 2), order = twin_labels(r, B, count);
    twin xo = twin_new(B * numel, CG_F32), lo = twin_new(B, CG_I32), to = twin_new(B, CG_F32);
    K_CPU->gather_batch(F(xo), FI(lo), F(to), F(x), FI(labels), FI(order), B, numel);
    K_GPU->gather_batch(D(xo), DI(lo), D(to), D(x), DI(labels), DI(order), B, numel);
    expect_close("gather_batch x", &xo, 0, 0);
    expect_close("gather_batch targets", &to, 0, 0);

    // Images with every augmentation: crops with zero and reflection padding, flips, cutout.
    const int64_t N = 9, Ci = 3, H = 11, W = 8, pad = 3, cut = 4;
    twin pixels = twin_new(count * Ci * H * W, CG_U8), ilabels = twin_labels(r, count, 10), iorder = twin_labels(r, N, count);
    uint32_t *words = cg_xmalloc((size_t)(count * Ci * H * W) * sizeof(uint32_t));
    cg_rng_u32(r, words, count * Ci * H * W);
    for (int64_t i = 0; i < count * Ci * H * W; i++) ((uint8_t *)pixels.host)[i] = (uint8_t)words[i];
    free(words);
    twin_upload(&pixels);
    twin aug = twin_new(N * CG_AUGMENT_FIELDS, CG_I32), mean = twin_new(Ci, CG_F32), inv_std = twin_new(Ci, CG_F32);
    for (int64_t i = 0; i < N; i++) {
        int32_t *a = FI(aug) + CG_AUGMENT_FIELDS * i;
        a[0] = (int32_t)(i % (2 * pad + 1)), a[1] = (int32_t)((3 * i) % (2 * pad + 1)), a[2] = (int32_t)(i % 2);
        a[3] = (int32_t)((5 * i) % H), a[4] = (int32_t)((7 * i) % W);
    }
    for (int c = 0; c < Ci; c++) F(mean)[c] = 0.4f + 0.05f * c, F(inv_std)[c] = 4.0f - c;
    twin_upload(&aug), twin_upload(&mean), twin_upload(&inv_std);
    twin xi = twin_new(N * Ci * H * W, CG_F32), li = twin_new(N, CG_I32), xf = twin_new(N * Ci * H * W, CG_F32);
    for (int reflect = 0; reflect <= 1; reflect++) {
        K_CPU->gather_images(F(xi), FI(li), pixels.host, FI(ilabels), FI(iorder), FI(aug), N, Ci, H, W, pad, reflect,
                             cut, F(mean), F(inv_std));
        K_GPU->gather_images(D(xi), DI(li), pixels.dev, DI(ilabels), DI(iorder), DI(aug), N, Ci, H, W, pad, reflect,
                             cut, D(mean), D(inv_std));
        expect_close(reflect ? "gather_images reflect, cutout" : "gather_images zeros, cutout", &xi, 0, 1e-6);
    }
    expect_equal_i32("gather_images labels", &li);
    K_CPU->flip_images(F(xf), F(xi), N * Ci, H, W), K_GPU->flip_images(D(xf), D(xi), N * Ci, H, W);
    expect_close("flip_images", &xf, 0, 1e-6);
    for (int d = -1; d <= 1; d += 2) {
        K_CPU->shift_images(F(xf), F(xi), N * Ci, H, W, d, d), K_GPU->shift_images(D(xf), D(xi), N * Ci, H, W, d, d);
        expect_close(d > 0 ? "shift_images down-right" : "shift_images up-left", &xf, 0, 1e-6);
    }
    twin *images[] = {&pixels, &ilabels, &iorder, &aug, &mean, &inv_std, &xi, &li, &xf};
    for (size_t i = 0; i < sizeof images / sizeof *images; i++) twin_free(images[i]);
    twin *all[] = {&u, &z, &x, &labels, &order, &xo, &lo, &to};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
}

// The streaming loader on the GPU (pinned buffers filled by a thread, asynchronous copies, events)
// against the resident one (the data set on the GPU, gathered by a kernel): the same batches, over
// three epochs with augmentation, to the rounding of the normalisation (CPU against GPU kernel).
static void test_streaming_loader(void) {
    const int64_t count = 300, C = 3, H = 12, W = 10, batch = 64; // 4 full batches and one of 44
    cg_dataset *d = cg_dataset_new_images(count, C, H, W, 5);
    cg_rng r = cg_rng_new(11, 0);
    uint32_t *words = cg_xmalloc((size_t)(count * C * H * W) * sizeof(uint32_t));
    cg_rng_u32(&r, words, count * C * H * W);
    for (int64_t i = 0; i < count * C * H * W; i++) d->pixels[i] = (uint8_t)words[i];
    for (int64_t i = 0; i < count; i++) d->labels[i] = (int32_t)(i % 5);
    free(words);
    const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.2f, 0.3f, 0.25f};
    cg_loader *resident = cg_loader_new(d, batch, true, false, 4, gpu);
    cg_loader *streaming = cg_loader_new_streaming(d, batch, true, false, 4, gpu);
    cg_loader *both[2] = {resident, streaming};
    for (int i = 0; i < 2; i++) {
        cg_loader_set_normalization(both[i], mean, std);
        cg_loader_set_augmentation(both[i], 2, true);
    }
    float *xa = cg_xmalloc((size_t)(batch * C * H * W) * sizeof(float)), *xb = cg_xmalloc((size_t)(batch * C * H * W) * sizeof(float));
    int32_t la[64], lb[64];
    int64_t batches = 0;
    double worst = 0.0;
    for (int epoch = 0; epoch < 3; epoch++) {
        cg_loader_start_epoch(resident), cg_loader_start_epoch(streaming);
        cg_batch a, b;
        while (cg_loader_next(resident, &a)) {
            if (!cg_loader_next(streaming, &b) || a.size != b.size) {
                fail("streaming loader", "epoch %d, batch %lld missing or of another size", epoch, (long long)batches);
                break;
            }
            cg_tensor_copy_to_host(xa, a.x, a.size * C * H * W), cg_tensor_copy_to_host(xb, b.x, b.size * C * H * W);
            cg_device_copy(cg_cpu(), la, gpu, a.labels->data, (size_t)a.size * sizeof(int32_t));
            cg_device_copy(cg_cpu(), lb, gpu, b.labels->data, (size_t)b.size * sizeof(int32_t));
            for (int64_t i = 0; i < a.size * C * H * W; i++) {
                double e = fabs((double)xa[i] - xb[i]);
                worst = e > worst ? e : worst;
            }
            if (memcmp(la, lb, (size_t)a.size * sizeof(int32_t)) != 0)
                fail("streaming loader", "epoch %d, batch %lld: other labels", epoch, (long long)batches);
            batches++;
        }
    }
    if (batches != 15 || worst > 1e-5)
        fail("streaming loader", "%lld batches (expected 15), largest difference %.3g", (long long)batches, worst);
    else
        printf("ok   streaming loader              15 batches over 3 epochs as the resident loader's (max |diff| %.3g)\n",
               worst);
    free(xa), free(xb);
    cg_loader_free(resident), cg_loader_free(streaming);
    cg_dataset_free(d);
}

// SimpleNN for a few epochs on each device from the same seed: same weights, same batches, so
// the per-epoch losses must agree closely (only summation order differs).
static void train_simple_nn(cg_device dev, int epochs, double *losses, bool use_graph) {
    cg_dataset *data = cg_synthetic_binary(1000, 20, 3);
    cg_params *params = cg_params_new(dev);
    cg_rng init = cg_rng_new(3, CG_STREAM_INIT);
    cg_module *model = cg_sequential_new();
    cg_sequential_add(model, cg_linear_new(params, "fc1", 20, 50, true, &init));
    cg_sequential_add(model, cg_relu_new());
    cg_sequential_add(model, cg_linear_new(params, "fc2", 50, 1, true, &init));
    cg_sequential_add(model, cg_sigmoid_new());
    cg_optimizer *opt = cg_optimizer_new(params, cg_sgd_config(0.05f));
    cg_loader *loader = cg_loader_new(data, 32, true, false, 3, dev);
    cg_tape *tape = cg_tape_new(dev, 1 << 16);
    cg_metrics *metrics = cg_metrics_new(dev);
    cg_graph *graph = cg_graph_new(dev);
    for (int e = 0; e < epochs; e++) {
        cg_metrics_reset(metrics);
        cg_loader_start_epoch(loader);
        cg_batch batch;
        while (cg_loader_next(loader, &batch)) {
            if (use_graph && e > 0 && cg_graph_replay(graph, batch.size)) continue;
            if (use_graph && e > 0) cg_graph_begin(graph);
            cg_tensor *probs = cg_module_forward(model, tape, batch.x);
            cg_tensor *loss = cg_bce(tape, probs, batch.targets);
            cg_optimizer_zero_grad(opt);
            cg_tape_backward(tape, loss);
            cg_optimizer_step(opt);
            cg_metrics_add_loss(metrics, loss, batch.size);
            cg_tape_clear(tape);
            if (use_graph && e > 0) cg_graph_end(graph, batch.size);
        }
        double acc;
        cg_metrics_read(metrics, data->count, &losses[e], &acc);
    }
    cg_graph_free(graph);
    cg_metrics_free(metrics);
    cg_tape_free(tape);
    cg_loader_free(loader);
    cg_optimizer_free(opt);
    cg_module_free(model);
    cg_params_free(params);
    cg_dataset_free(data);
}

static void test_training_agrees(void) {
    enum { EPOCHS = 20 };
    double cpu[EPOCHS], eager[EPOCHS], graphed[EPOCHS];
    train_simple_nn(cg_cpu(), EPOCHS, cpu, false);
    train_simple_nn(gpu, EPOCHS, eager, false);
    train_simple_nn(gpu, EPOCHS, graphed, true);
    double worst = 0.0;
    for (int e = 0; e < EPOCHS; e++) {
        double r1 = fabs(eager[e] - cpu[e]) / cpu[e], r2 = fabs(graphed[e] - cpu[e]) / cpu[e];
        worst = fmax(worst, fmax(r1, r2));
    }
    if (worst > 1e-4) {
        fail("simple_nn", "losses differ: worst relative difference %.3g (epoch 20: cpu %.7f, cuda %.7f, "
             "cuda graph %.7f)", worst, cpu[EPOCHS - 1], eager[EPOCHS - 1], graphed[EPOCHS - 1]);
    } else {
        printf("ok   simple_nn 20 epochs: worst relative loss difference cpu / cuda / cuda graph %.3g\n", worst);
    }
}

int main(void) {
    if (!twin_setup()) return 77;
    cg_rng r = cg_rng_new(42, 0);
    test_ops_against_cpu();
    test_elementwise(&r);
    test_gemm(&r);
    test_losses(&r);
    test_conv_and_pool(&r);
    test_batch_norm(&r);
    test_dropout(&r);
    test_optimizers(&r);
    test_rng_and_gather(&r);
    test_streaming_loader();
    test_training_agrees();
    cg_memory_stats s = cg_device_memory_stats(gpu);
    printf("allocator: %lld allocations, %lld from the cache, peak %.1f KiB\n", (long long)s.allocations,
           (long long)s.cache_hits, s.peak_allocated / 1024.0);
    return check_summary("test_cuda");
}

// test_grad.c: every op of core/ops.h, backward against central finite differences on small random
// inputs, one run per row of tests/op_cases.h (a new op adds its rows there). Outputs are weighted
// down to a scalar loss so every element's gradient counts. CPU only; test_cuda runs the same rows
// on the GPU against the CPU.
#include "kernels/cpu/cpu.h" // conv2d_relu_pool_dw_windows_takes
#include "tests/op_cases.h" // and tests/check.h

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the harness -------------------------------------------------------------------------------

// Run one row: analytic gradients from the tape, then a central difference for every element of
// every input that requires a gradient. Returns the number of elements that differ.
static int run_case(const op_case *c, cg_tape *t, uint32_t stream) {
    cg_rng rng = cg_rng_new(2024, stream);
    case_state s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < c->n_in; i++)
        draw_input(c, i, &rng, &s, cg_cpu());

    // Analytic: the loss built twice on one tape and added, then one backward. Each input then
    // receives its gradient from two nodes, so a backward that overwrites (=) instead of
    // accumulating (+=) shows as half the gradient; the sum is halved before the comparison.
    t->grad_enabled = true;
    cg_tensor *loss = cg_add(t, case_loss(t, c, &s, &rng), case_loss(t, c, &s, &rng));
    cg_tape_backward(t, loss);
    float *analytic[MAX_INPUTS] = {NULL};
    int bad = 0;
    for (int i = 0; i < c->n_in; i++) {
        cg_tensor *x = s.in[i];
        if (!c->in[i].requires_grad) {
            if (x->grad != NULL) {
                fail(c->name, "input %d does not require a gradient but got one", i);
                bad++;
            }
            continue;
        }
        if (x->grad == NULL) {
            fail(c->name, "input %d requires a gradient but backward gave none", i);
            bad++;
            continue;
        }
        analytic[i] = cg_xmalloc((size_t)x->numel * sizeof(float));
        cg_tensor_copy_to_host(analytic[i], x->grad, x->numel);
        for (int64_t j = 0; j < x->numel; j++)
            analytic[i][j] *= 0.5f;
    }
    cg_tape_clear(t);
    for (int i = 0; i < c->n_in; i++)
        s.in[i]->grad = NULL; // it lived in the tape's arena

    // Numeric: (loss(x + h) - loss(x - h)) / 2h, one element at a time, recording nothing.
    t->grad_enabled = false;
    double max_abs = 0.0, max_rel = 0.0;
    int checked = 0;
    for (int i = 0; i < c->n_in; i++) {
        if (analytic[i] == NULL)
            continue;
        cg_tensor *x = s.in[i];
        float *v = s.host[i];
        for (int64_t j = 0; j < x->numel; j++) {
            float saved = v[j];
            double plus, minus;
            v[j] = saved + c->step;
            cg_tensor_copy_from_host(x, v, x->numel);
            plus = cg_tensor_item(case_loss(t, c, &s, &rng));
            cg_tape_clear(t);
            v[j] = saved - c->step;
            cg_tensor_copy_from_host(x, v, x->numel);
            minus = cg_tensor_item(case_loss(t, c, &s, &rng));
            cg_tape_clear(t);
            v[j] = saved;
            cg_tensor_copy_from_host(x, v, x->numel);

            double numeric = (plus - minus) / (2.0 * (double)c->step);
            double got = analytic[i][j];
            double err = fabs(got - numeric);
            double rel = err / fmax(fabs(numeric), 1e-6);
            max_abs = fmax(max_abs, err);
            if (fabs(numeric) > 1e-3)
                max_rel = fmax(max_rel, rel);
            checked++;
            if (err > c->atol + c->rtol * fabs(numeric)) {
                fail(c->name, "input %d index %lld: numeric %.6g, analytic %.6g (error %.3g)", i, (long long)j, numeric,
                     got, err);
                bad++;
            }
        }
    }
    printf("%-24s %3d elements  max abs error %.2e  max rel error %.2e  %s\n", c->name, checked, max_abs, max_rel,
           bad ? "FAILED" : "ok");
    if (checked == 0 && bad == 0) {
        fail(c->name, "no element was checked");
        bad++;
    }

    for (int i = 0; i < c->n_in; i++) {
        free(analytic[i]);
        free(s.host[i]);
        cg_tensor_free(s.in[i]);
    }
    cg_tensor_free(s.u);
    cg_tensor_free(s.w);
    return bad;
}

// The fused block against conv2d, relu, max_pool2d in a row: the same output and the same
// gradients of x and the weights, to the last bit (the fused kernel does the same arithmetic in
// the same order), but the weights' where the CPU adds one term per pooling window (below); the
// bias gradient, a sum taken in another order, to 1e-6 relative. K output
// channels: 6, and 16, a whole vector, for which the CPU's backward also lays out the output
// gradient transposed for the weight gradient's product.
static int check_fused_block(cg_tape *t, int64_t K) {
    cg_rng rng = cg_rng_new(7, 0);
    int64_t xs[4] = {5, 3, 9, 8}, ws[4] = {K, 3, 3, 3}, bs[1] = {K};
    // Whether the CPU sums this block's dW one term per pooling window (below)
    bool dw_windows = conv2d_relu_pool_dw_windows_takes(xs[1], xs[2], xs[3], K, 3, 3, 1, 1, xs[2], xs[3]);
    cg_tensor *in[3] = {cg_tensor_new(cg_cpu(), CG_F32, 4, xs), cg_tensor_new(cg_cpu(), CG_F32, 4, ws),
                        cg_tensor_new(cg_cpu(), CG_F32, 1, bs)};
    cg_tensor *weights = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){K * 4 * 4, 1});
    float host[5 * 3 * 9 * 8];
    for (int i = 0; i < 3; i++) {
        cg_rng_normal(&rng, host, in[i]->numel, 0.0f, 1.0f);
        cg_tensor_copy_from_host(in[i], host, in[i]->numel);
        in[i]->requires_grad = true;
    }
    cg_rng_normal(&rng, host, weights->numel, 0.0f, 1.0f);
    cg_tensor_copy_from_host(weights, host, weights->numel);
    float *result[2][4]; // [fused][output, dx, dw, db]
    int64_t sizes[4] = {5 * K * 4 * 4, in[0]->numel, in[1]->numel, in[2]->numel};
    for (int fused = 0; fused < 2; fused++) {
        t->grad_enabled = true;
        cg_tensor *y = fused ? cg_conv2d_relu_max_pool2d(t, in[0], in[1], in[2], 1, 1)
                             : cg_max_pool2d(t, cg_relu(t, cg_conv2d(t, in[0], in[1], in[2], 1, 1)), 2, 2);
        cg_tensor *flat = cg_reshape(t, y, 2, (int64_t[]){5, K * 4 * 4});
        cg_tape_backward(t, cg_sum(t, cg_matmul(t, flat, weights, false, false)));
        const cg_tensor *from[4] = {y, in[0]->grad, in[1]->grad, in[2]->grad};
        for (int i = 0; i < 4; i++) {
            result[fused][i] = cg_xmalloc((size_t)sizes[i] * sizeof(float));
            cg_tensor_copy_to_host(result[fused][i], from[i], sizes[i]);
        }
        cg_tape_clear(t);
        for (int i = 0; i < 3; i++) in[i]->grad = NULL;
    }
    static const char *what[4] = {"output", "dx", "dw", "dbias"};
    int bad = 0, positive = 0;
    for (int64_t j = 0; j < sizes[0]; j++) positive += result[0][0][j] > 0.0f;
    if (positive == 0 || positive == sizes[0]) {
        fail("fused block", "%d of %lld outputs positive; the ReLU is not exercised", positive, (long long)sizes[0]);
        bad++;
    }
    for (int i = 0; i < 4; i++) {
        // dw: for whole vectors of 16 output channels the CPU sums it one term per pooling window,
        // in an order of its own (kernels/cpu/conv_direct_dw.c; test_conv_cpu checks those bits):
        // within 1e-5 relative there, bit for bit otherwise
        bool windows = i == 2 && dw_windows;
        bool same = i == 3 || windows || memcmp(result[0][i], result[1][i], (size_t)sizes[i] * sizeof(float)) == 0;
        for (int64_t j = 0; windows && j < sizes[i]; j++)
            same &= fabsf(result[0][i][j] - result[1][i][j]) <= 1e-5f * (fabsf(result[0][i][j]) + 1.0f);
        for (int64_t j = 0; i == 3 && j < sizes[i]; j++) // dbias
            same &= fabsf(result[0][i][j] - result[1][i][j]) <= 1e-6f * fabsf(result[0][i][j]) + 1e-7f;
        if (!same) {
            fail("fused block", "%s differs from conv2d, relu, max_pool2d in a row (%lld channels)", what[i],
                 (long long)K);
            bad++;
        }
        free(result[0][i]);
        free(result[1][i]);
    }
    for (int i = 0; i < 3; i++) cg_tensor_free(in[i]);
    cg_tensor_free(weights);
    if (!bad)
        printf("fused block, %2lld channels   output and gradients as the three ops%s\n", (long long)K,
               dw_windows ? " (dw within 1e-5)" : "");
    return bad;
}

// A convolution of large planes, which the CPU computes a few output rows at a time (conv.c,
// forward_rows), against its definition summed in double: every output within float rounding.
// Two cases: stride 1 with "same" padding (32 x 32, 4 blocks of 8 rows) and a strided 7 x 7 (35
// output rows: 4 blocks of 8 and one of 3).
static int check_conv_row_blocks(cg_tape *t, int64_t N, int64_t C, int64_t H, int64_t K, int64_t R, int64_t stride,
                                 int64_t pad) {
    cg_rng rng = cg_rng_new(11, 0);
    int64_t P = (H + 2 * pad - R) / stride + 1, xs[4] = {N, C, H, H}, ws[4] = {K, C, R, R}, bs[1] = {K};
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 4, xs), *w = cg_tensor_new(cg_cpu(), CG_F32, 4, ws),
              *b = cg_tensor_new(cg_cpu(), CG_F32, 1, bs);
    float *hx = cg_xmalloc((size_t)x->numel * sizeof(float)), *hw = cg_xmalloc((size_t)w->numel * sizeof(float));
    float hb[64], *hy = cg_xmalloc((size_t)(N * K * P * P) * sizeof(float));
    cg_rng_normal(&rng, hx, x->numel, 0.0f, 1.0f);
    cg_rng_normal(&rng, hw, w->numel, 0.0f, 1.0f);
    cg_rng_normal(&rng, hb, K, 0.0f, 1.0f);
    cg_tensor_copy_from_host(x, hx, x->numel);
    cg_tensor_copy_from_host(w, hw, w->numel);
    cg_tensor_copy_from_host(b, hb, K);
    t->grad_enabled = false;
    cg_tensor *y = cg_conv2d(t, x, w, b, stride, pad);
    cg_tensor_copy_to_host(hy, y, N * K * P * P);
    double worst = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t p = 0; p < P; p++)
                for (int64_t q = 0; q < P; q++) {
                    double sum = hb[k], size = fabs(hb[k]);
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t r = 0; r < R; r++)
                            for (int64_t s2 = 0; s2 < R; s2++) {
                                int64_t h = p * stride - pad + r, v = q * stride - pad + s2;
                                if (h < 0 || h >= H || v < 0 || v >= H) continue;
                                double term = (double)hx[((n * C + c) * H + h) * H + v] * hw[((k * C + c) * R + r) * R + s2];
                                sum += term;
                                size += fabs(term);
                            }
                    double error = fabs(hy[((n * K + k) * P + p) * P + q] - sum) / (size + 1e-30);
                    if (error > worst) worst = error;
                }
    int bad = worst > 1e-6;
    if (bad)
        fail("conv2d in blocks of rows", "%lldx%lld, %lldx%lld stride %lld: an output %.2g (relative to the sum of |terms|) "
             "from its definition", (long long)H, (long long)H, (long long)R, (long long)R, (long long)stride, worst);
    else
        printf("conv2d %3lldx%-3lld %lldx%lld stride %lld   as its definition (%.1e)\n", (long long)H, (long long)H,
               (long long)R, (long long)R, (long long)stride, worst);
    cg_tape_clear(t);
    t->grad_enabled = true;
    free(hx);
    free(hw);
    free(hy);
    cg_tensor_free(x);
    cg_tensor_free(w);
    cg_tensor_free(b);
    return bad;
}

int main(void) {
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);
    check_coverage("test_grad");
    check_fused_block(t, 6);
    check_fused_block(t, 16);
    check_conv_row_blocks(t, 2, 16, 32, 8, 3, 1, 1);
    check_conv_row_blocks(t, 1, 3, 70, 4, 7, 2, 3);
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        run_case(&cases[i], t, case_stream(&cases[i]));
    cg_tape_free(t);
    printf("test_grad: %d cases run\n", n);
    return check_summary("test_grad");
}

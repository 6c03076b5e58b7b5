// test_grad.c: every op of core/ops.h, backward against central finite differences on small random
// inputs, one run per row of tests/op_cases.h (a new op adds its rows there). Outputs are weighted
// down to a scalar loss so every element's gradient counts. CPU only; test_cuda runs the same rows
// on the GPU against the CPU.
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
// the same order); the bias gradient, a sum taken in another order, to 1e-6 relative. K output
// channels: 6, and 16, a whole vector, for which the CPU's backward also lays out the output
// gradient transposed for the weight gradient's product.
static int check_fused_block(cg_tape *t, int64_t K) {
    cg_rng rng = cg_rng_new(7, 0);
    int64_t xs[4] = {5, 3, 9, 8}, ws[4] = {K, 3, 3, 3}, bs[1] = {K};
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
        bool same = i == 3 || memcmp(result[0][i], result[1][i], (size_t)sizes[i] * sizeof(float)) == 0;
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
    if (!bad) printf("fused block, %2lld channels   output and gradients as the three ops\n", (long long)K);
    return bad;
}

int main(void) {
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 16);
    check_coverage("test_grad");
    check_fused_block(t, 6);
    check_fused_block(t, 16);
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        run_case(&cases[i], t, case_stream(&cases[i]));
    cg_tape_free(t);
    printf("test_grad: %d cases run\n", n);
    return check_summary("test_grad");
}

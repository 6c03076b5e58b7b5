// optim.c: SGD and Adam / AdamW updates over the flat parameter block (formulas in
// core/train/optim.h), and gradient clipping by the global norm. The learning rate is read from
// memory when the kernel runs (core/kernels.h).
#include "kernels/cpu/cpu.h"

#include <math.h>
#include <stdlib.h>

// The updates of parameters [begin, end); the exported functions below run them on one thread
// for small blocks, split over OpenMP threads for large ones (see elementwise.c for why).

static void sgd_range(float *p, const float *g, float *momentum_buf, bool first, int64_t begin, int64_t end,
                      float lr, float momentum, float dampening, float weight_decay, bool nesterov, bool decoupled,
                      const uint8_t *decay_mask) {
    for (int64_t i = begin; i < end; i++) {
        float wd = decay_mask && decay_mask[i] == 0 ? 0.0f : weight_decay;
        float d = g[i];
        if (decoupled)
            p[i] *= 1.0f - lr * wd;
        else
            d += wd * p[i];
        if (momentum != 0.0f) {
            float b = first ? d : momentum * momentum_buf[i] + (1.0f - dampening) * d;
            momentum_buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}

static void add_scalar_unless_cpu(float *x, float value, const float *flag) {
    if (flag[0] == 0.0f) x[0] += value;
}

static void sgd_step_cpu(float *p, const float *g, float *momentum_buf, float *state, int64_t n, const float *lr_at,
                         float momentum, float dampening, float weight_decay, bool nesterov, bool decoupled,
                         const uint8_t *decay_mask, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    bool first = state[0] <= 1.0f;
    float lr = lr_at[0];
    if (n < CG_OMP_MIN_WORK) {
        sgd_range(p, g, momentum_buf, first, 0, n, lr, momentum, dampening, weight_decay, nesterov, decoupled,
                  decay_mask);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK)
        sgd_range(p, g, momentum_buf, first, b, b + CG_OMP_MIN_WORK < n ? b + CG_OMP_MIN_WORK : n, lr, momentum,
                  dampening, weight_decay, nesterov, decoupled, decay_mask);
}

static void adam_range(float *p, const float *g, float *m, float *v, int64_t begin, int64_t end, float lr,
                       float step_size, float bias_correction2_sqrt, float beta1, float beta2, float eps,
                       float weight_decay, bool decoupled, const uint8_t *decay_mask) {
    for (int64_t i = begin; i < end; i++) {
        float wd = decay_mask && decay_mask[i] == 0 ? 0.0f : weight_decay;
        float d = g[i];
        if (decoupled)
            p[i] *= 1.0f - lr * wd;
        else
            d += wd * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * d;
        v[i] = beta2 * v[i] + (1.0f - beta2) * d * d;
        float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

static void adam_step_cpu(float *p, const float *g, float *m, float *v, float *state, int64_t n, const float *lr_at,
                          float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                          const uint8_t *decay_mask, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    float t = state[0], lr = lr_at[0];
    float bias_correction1 = 1.0f - powf(beta1, t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, t));
    float step_size = lr / bias_correction1;
    if (n < CG_OMP_MIN_WORK) {
        adam_range(p, g, m, v, 0, n, lr, step_size, bias_correction2_sqrt, beta1, beta2, eps, weight_decay, decoupled,
                   decay_mask);
        return;
    }
    // Pieces of CG_DYNAMIC_PIECE values taken dynamically (cpu.h): the other thread wakes
    // up late, and the running one takes more pieces meanwhile. Each value's update is its own.
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < n; b += CG_DYNAMIC_PIECE)
        adam_range(p, g, m, v, b, b + CG_DYNAMIC_PIECE < n ? b + CG_DYNAMIC_PIECE : n, lr, step_size,
                   bias_correction2_sqrt, beta1, beta2, eps, weight_decay, decoupled, decay_mask);
}

// The sum of squares in chunks of CG_OMP_MIN_WORK, each summed in double, the chunks added in
// their order: the same bits whatever the number of threads.
static void grad_sq_sum_cpu(float *sum_sq, float *partials, const float *g, int64_t n) {
    (void)partials;
    int64_t chunks = (n + CG_OMP_MIN_WORK - 1) / CG_OMP_MIN_WORK;
    double stack[64], *part = chunks <= 64 ? stack : cg_xmalloc((size_t)chunks * sizeof(double));
#pragma omp parallel for if (chunks > 1)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t end = (c + 1) * CG_OMP_MIN_WORK < n ? (c + 1) * CG_OMP_MIN_WORK : n;
        // eight running sums (element i into sum i % 8), added at the end: a fixed order that the
        // compiler can keep in vector registers
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = c * CG_OMP_MIN_WORK;
        for (; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; j++) s[j] += (double)g[i + j] * g[i + j];
        for (; i < end; i++) s[i % 8] += (double)g[i] * g[i];
        part[c] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    double total = 0.0;
    for (int64_t c = 0; c < chunks; c++) total += part[c];
    if (part != stack) free(part);
    sum_sq[0] = (float)total;
}

static void clip_by_norm_cpu(float *g, const float *sum_sq, float max_norm, int64_t n) {
    float coef = max_norm / (sqrtf(sum_sq[0]) + 1e-6f);
    if (coef >= 1.0f) return; // clamped to 1: nothing changes (a NaN norm scales by NaN, as PyTorch's)
#pragma omp parallel for if (n > CG_OMP_MIN_WORK)
    for (int64_t i = 0; i < n; i++) g[i] *= coef;
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void optim_register_cpu(cg_kernels *k) {
    k->sgd_step = sgd_step_cpu;
    k->adam_step = adam_step_cpu;
    k->add_scalar_unless = add_scalar_unless_cpu;
    k->grad_sq_sum = grad_sq_sum_cpu;
    k->clip_by_norm = clip_by_norm_cpu;
}

// optim.c: SGD and Adam / AdamW updates over the flat parameter block (formulas in core/optim.h).
#include "kernels/cpu/cpu.h"

#include <math.h>

// The updates of parameters [begin, end); the exported functions below run them on one thread
// for small blocks, split over OpenMP threads for large ones (see elementwise.c for why).

static void sgd_range(float *p, const float *g, float *momentum_buf, bool first, int64_t begin, int64_t end,
                      float lr, float momentum, float dampening, float weight_decay, bool nesterov) {
    for (int64_t i = begin; i < end; i++) {
        float d = g[i] + weight_decay * p[i];
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

static void sgd_step_cpu(float *p, const float *g, float *momentum_buf, float *state, int64_t n, float lr, float momentum,
                         float dampening, float weight_decay, bool nesterov, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    bool first = state[0] <= 1.0f;
    if (n < CG_OMP_MIN_WORK) {
        sgd_range(p, g, momentum_buf, first, 0, n, lr, momentum, dampening, weight_decay, nesterov);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK)
        sgd_range(p, g, momentum_buf, first, b, b + CG_OMP_MIN_WORK < n ? b + CG_OMP_MIN_WORK : n, lr, momentum,
                  dampening, weight_decay, nesterov);
}

static void adam_range(float *p, const float *g, float *m, float *v, int64_t begin, int64_t end, float lr,
                       float step_size, float bias_correction2_sqrt, float beta1, float beta2, float eps,
                       float weight_decay, bool decoupled_weight_decay) {
    for (int64_t i = begin; i < end; i++) {
        float d = g[i];
        if (decoupled_weight_decay)
            p[i] *= 1.0f - lr * weight_decay;
        else
            d += weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * d;
        v[i] = beta2 * v[i] + (1.0f - beta2) * d * d;
        float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

static void adam_step_cpu(float *p, const float *g, float *m, float *v, float *state, int64_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, bool decoupled_weight_decay, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    float t = state[0];
    float bias_correction1 = 1.0f - powf(beta1, t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, t));
    float step_size = lr / bias_correction1;
    if (n < CG_OMP_MIN_WORK) {
        adam_range(p, g, m, v, 0, n, lr, step_size, bias_correction2_sqrt, beta1, beta2, eps, weight_decay,
                   decoupled_weight_decay);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK)
        adam_range(p, g, m, v, b, b + CG_OMP_MIN_WORK < n ? b + CG_OMP_MIN_WORK : n, lr, step_size,
                   bias_correction2_sqrt, beta1, beta2, eps, weight_decay, decoupled_weight_decay);
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void optim_register_cpu(cg_kernels *k) {
    k->sgd_step = sgd_step_cpu;
    k->adam_step = adam_step_cpu;
    k->add_scalar_unless = add_scalar_unless_cpu;
}

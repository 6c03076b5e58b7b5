// optim.cu: SGD and Adam / AdamW over the flat parameter block, one thread per parameter
// (formulas in core/optim.h; CPU twin kernels/cpu/optim.c). The step count is read from device
// memory so that a captured CUDA Graph replays each step with the right bias correction.
#include "kernels/cuda/cuda.h"

static __global__ void sgd_kernel(float *p, const float *g, float *momentum_buf, const float *state, int64_t n,
                                  float lr, float momentum, float dampening, float weight_decay, bool nesterov,
                                  const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    bool first = state[0] <= 1.0f;
    GRID_STRIDE(i, n) {
        float d = g[i] + weight_decay * p[i];
        if (momentum != 0.0f) {
            float b = first ? d : momentum * momentum_buf[i] + (1.0f - dampening) * d;
            momentum_buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}

static __global__ void adam_kernel(float *p, const float *g, float *m, float *v, const float *state, int64_t n,
                                   float lr, float beta1, float beta2, float eps, float weight_decay,
                                   bool decoupled_weight_decay, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    float t = state[0];
    float bias_correction1 = 1.0f - powf(beta1, t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, t));
    float step_size = lr / bias_correction1;
    GRID_STRIDE(i, n) {
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

static __global__ void add_scalar_unless_kernel(float *x, float value, const float *flag) {
    if (flag[0] == 0.0f) x[0] += value;
}

extern "C" {
static void add_scalar_unless_cuda(float *x, float value, const float *flag) {
    LAUNCH(add_scalar_unless_kernel, 1, x, value, flag);
}
static void sgd_step_cuda(float *p, const float *g, float *momentum_buf, float *state, int64_t n, float lr, float momentum,
                          float dampening, float weight_decay, bool nesterov, const float *found_inf) {
    LAUNCH(sgd_kernel, n, p, g, momentum_buf, state, n, lr, momentum, dampening, weight_decay, nesterov, found_inf);
}
static void adam_step_cuda(float *p, const float *g, float *m, float *v, float *state, int64_t n, float lr, float beta1,
                           float beta2, float eps, float weight_decay, bool decoupled_weight_decay, const float *found_inf) {
    LAUNCH(adam_kernel, n, p, g, m, v, state, n, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
           found_inf);
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void optim_register_cuda(cg_kernels *k) {
    k->sgd_step = sgd_step_cuda;
    k->adam_step = adam_step_cuda;
    k->add_scalar_unless = add_scalar_unless_cuda;
}

// optim.cu: SGD and Adam / AdamW over the flat parameter block, one thread per parameter
// (formulas in core/train/optim.h; CPU twin kernels/cpu/optim.c), and gradient clipping by the
// global norm. The step count and the learning rate are read from device memory so that a
// captured CUDA Graph replays each step with the right bias correction and the schedule's rate.
#include "kernels/cuda/cuda.h"

static __global__ void sgd_kernel(float *p, const float *g, float *momentum_buf, const float *state, int64_t n,
                                  const float *lr_at, float momentum, float dampening, float weight_decay,
                                  bool nesterov, bool decoupled, const uint8_t *decay_mask, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    bool first = state[0] <= 1.0f;
    float lr = lr_at[0];
    GRID_STRIDE(i, n) {
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

static __global__ void adam_kernel(float *p, const float *g, float *m, float *v, const float *state, int64_t n,
                                   const float *lr_at, float beta1, float beta2, float eps, float weight_decay,
                                   bool decoupled, const uint8_t *decay_mask, const float *found_inf) {
    if (found_inf && *found_inf != 0.0f) return; // mixed precision: this step's gradients overflowed
    float t = state[0], lr = lr_at[0];
    float bias_correction1 = 1.0f - powf(beta1, t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, t));
    float step_size = lr / bias_correction1;
    GRID_STRIDE(i, n) {
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

static __global__ void add_scalar_unless_kernel(float *x, float value, const float *flag) {
    if (flag[0] == 0.0f) x[0] += value;
}

// The global norm in two passes, in a fixed order: block b sums the squares of its stripe into
// partials[b] (CG_NORM_PARTIALS blocks), then one block adds the partials. Same bits every run.
static __global__ void sq_partial_kernel(float *partials, const float *g, int64_t n) {
    float part = 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        part += g[i] * g[i];
    float total = block_sum(part);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

static __global__ void sq_final_kernel(float *sum_sq, const float *partials, int64_t count) {
    float part = 0.0f;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) part += partials[i];
    float total = block_sum(part);
    if (threadIdx.x == 0) sum_sq[0] = total;
}

// g *= min(1, max_norm / (norm + 1e-6)), the coefficient computed by every thread from sum_sq.
static __global__ void clip_kernel(float *g, const float *sum_sq, float max_norm, int64_t n) {
    float coef = max_norm / (sqrtf(sum_sq[0]) + 1e-6f);
    if (coef >= 1.0f) return; // clamped to 1: nothing changes (a NaN norm scales by NaN, as PyTorch's)
    GRID_STRIDE(i, n) g[i] *= coef;
}

extern "C" {
static void add_scalar_unless_cuda(float *x, float value, const float *flag) {
    LAUNCH(add_scalar_unless_kernel, 1, x, value, flag);
}
static void sgd_step_cuda(float *p, const float *g, float *momentum_buf, float *state, int64_t n, const float *lr,
                          float momentum, float dampening, float weight_decay, bool nesterov, bool decoupled,
                          const uint8_t *decay_mask, const float *found_inf) {
    LAUNCH(sgd_kernel, n, p, g, momentum_buf, state, n, lr, momentum, dampening, weight_decay, nesterov, decoupled,
           decay_mask, found_inf);
}
static void adam_step_cuda(float *p, const float *g, float *m, float *v, float *state, int64_t n, const float *lr,
                           float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                           const uint8_t *decay_mask, const float *found_inf) {
    LAUNCH(adam_kernel, n, p, g, m, v, state, n, lr, beta1, beta2, eps, weight_decay, decoupled, decay_mask,
           found_inf);
}
static void grad_sq_sum_cuda(float *sum_sq, float *partials, const float *g, int64_t n) {
    sq_partial_kernel<<<CG_NORM_PARTIALS, CG_THREADS, 0, cg_cuda_stream()>>>(partials, g, n);
    CG_LAUNCH_CHECK();
    LAUNCH_ONE_BLOCK(sq_final_kernel, sum_sq, partials, (int64_t)CG_NORM_PARTIALS);
}
static void clip_by_norm_cuda(float *g, const float *sum_sq, float max_norm, int64_t n) {
    LAUNCH(clip_kernel, n, g, sum_sq, max_norm, n);
}
}

// This file's rows of the CUDA kernel table (kernels/cuda/table.cu).
extern "C" void optim_register_cuda(cg_kernels *k) {
    k->sgd_step = sgd_step_cuda;
    k->adam_step = adam_step_cuda;
    k->add_scalar_unless = add_scalar_unless_cuda;
    k->grad_sq_sum = grad_sq_sum_cuda;
    k->clip_by_norm = clip_by_norm_cuda;
}

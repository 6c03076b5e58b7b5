// grad_scaler.c: the loss-scale state machine of core/grad_scaler.h (PyTorch's GradScaler rule).
// Host only: when the scale moves to the device for CUDA Graphs, this stays the reference.
#include "core/train/grad_scaler.h"

#include <math.h>
#include <stdlib.h>

cg_grad_scaler_config cg_grad_scaler_default_config(void) {
    cg_grad_scaler_config c;
    c.init_scale = 65536.0f; // 2^16
    c.growth_factor = 2.0f;
    c.backoff_factor = 0.5f;
    c.growth_interval = 2000;
    c.dynamic = true;
    return c;
}

cg_grad_scaler_config cg_grad_scaler_static_config(float scale) {
    cg_grad_scaler_config c = cg_grad_scaler_default_config();
    c.init_scale = scale;
    c.dynamic = false;
    return c;
}

cg_grad_scaler *cg_grad_scaler_new(cg_grad_scaler_config config) {
    CG_CHECK(isfinite(config.init_scale) && config.init_scale > 0.0f,
             "grad scaler: init_scale must be positive and finite, got %g", (double)config.init_scale);
    if (config.dynamic) {
        CG_CHECK(config.growth_factor > 1.0f && isfinite(config.growth_factor),
                 "grad scaler: growth_factor must be > 1, got %g", (double)config.growth_factor);
        CG_CHECK(config.backoff_factor > 0.0f && config.backoff_factor < 1.0f,
                 "grad scaler: backoff_factor must be in (0, 1), got %g", (double)config.backoff_factor);
        CG_CHECK(config.growth_interval >= 1, "grad scaler: growth_interval must be >= 1, got %d",
                 config.growth_interval);
    }
    cg_grad_scaler *s = cg_xcalloc(1, sizeof *s);
    s->config = config;
    s->scale = config.init_scale;
    return s;
}

void cg_grad_scaler_free(cg_grad_scaler *s) {
    free(s);
}

bool cg_grad_scaler_update(cg_grad_scaler *s, bool found_inf) {
    s->steps += 1;
    if (found_inf) {
        // The gradients are unusable: the step is skipped, and in dynamic mode the scale that
        // overflowed is halved and the count of good steps starts again.
        s->skipped_steps += 1;
        if (s->config.dynamic) {
            s->scale *= s->config.backoff_factor;
            s->backoffs += 1;
        }
        s->growth_tracker = 0;
        return false;
    }
    if (!s->config.dynamic)
        return true;
    // A good step. After growth_interval of them in a row, try a larger scale: more of the small
    // gradients survive in fp16, and if it overflows the next step halves it back.
    s->growth_tracker += 1;
    if (s->growth_tracker == s->config.growth_interval) {
        float grown = s->scale * s->config.growth_factor;
        if (isfinite(grown)) { // PyTorch does not grow the scale past float's range to inf
            s->scale = grown;
            s->growths += 1;
        }
        s->growth_tracker = 0;
    }
    return true;
}

float cg_grad_scaler_scale(const cg_grad_scaler *s) {
    return s->scale;
}

float cg_grad_scaler_inv_scale(const cg_grad_scaler *s) {
    // PyTorch computes it the same way, in fp32: scale.double().reciprocal().float().
    return (float)(1.0 / (double)s->scale);
}

int64_t cg_grad_scaler_skipped(const cg_grad_scaler *s) {
    return s->skipped_steps;
}

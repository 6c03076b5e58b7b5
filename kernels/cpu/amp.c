// amp.c: the fused inf / NaN check and unscale of gradients (kernels/cpu/amp.h).
// One pass over memory instead of two: the check rides along with the multiplication.
#include "amp.h"
#include "cpu.h"

#include <math.h>

// Returns 1 if any of g[begin, end) was inf or NaN; multiplies them by inv_scale.
static int unscale_check_range(float *g, float inv_scale, int64_t begin, int64_t end) {
    int bad = 0;
    for (int64_t i = begin; i < end; i++) {
        float v = g[i];
        bad |= !isfinite(v); // inf, -inf or NaN: exponent bits all ones
        g[i] = v * inv_scale;
    }
    return bad;
}

void amp_unscale_check_cpu(float *g, float *found_inf, const float *inv_scale, int64_t n) {
    float scale_by = *inv_scale;
    int bad = 0;
    if (scale_by == 1.0f) {
        // Nothing to unscale (a scale of 1, as bf16 runs use): only look.
        for (int64_t i = 0; i < n; i++)
            bad |= !isfinite(g[i]);
    } else if (n < CG_OMP_MIN_WORK) {
        bad = unscale_check_range(g, scale_by, 0, n);
    } else {
#pragma omp parallel for reduction(| : bad)
        for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK)
            bad |= unscale_check_range(g, scale_by, b, b + CG_OMP_MIN_WORK < n ? b + CG_OMP_MIN_WORK : n);
    }
    if (bad)
        *found_inf = 1.0f;
}

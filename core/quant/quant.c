// quant.c: int8 quantization parameters, quantize / dequantize, and the calibration observers.
// Formulas and conventions are in quant.h. Plain loops on host arrays; the int8 GEMM and the
// requantisation of its int32 sums live in kernels/cpu/int8_gemm.c.
#include "core/quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

// round half to even (the default rounding mode), then saturate to [-128, 127]. The float is
// clamped before the conversion so that huge values and infinities cannot overflow the int.
static int8_t saturate_round(float v) {
    if (isnan(v)) return 0; // converting NaN to an integer is undefined behaviour in C
    v = rintf(v);
    if (v < (float)CG_QMIN) return (int8_t)CG_QMIN;
    if (v > (float)CG_QMAX) return (int8_t)CG_QMAX;
    return (int8_t)(int32_t)v;
}

cg_qparams cg_qparams_affine(float min, float max) {
    CG_CHECK(min <= max, "affine range [%g, %g]: min must not exceed max", min, max);
    if (min > 0.0f) min = 0.0f;
    if (max < 0.0f) max = 0.0f;
    cg_qparams p;
    p.scale = (max - min) / (float)(CG_QMAX - CG_QMIN);
    if (!(p.scale > 0.0f)) p.scale = 1.0f; // all zeros
    float zp = (float)CG_QMIN - rintf(min / p.scale);
    p.zero_point = zp < CG_QMIN ? CG_QMIN : zp > CG_QMAX ? CG_QMAX : (int32_t)zp;
    return p;
}

cg_qparams cg_qparams_symmetric(float absmax) {
    CG_CHECK(absmax >= 0.0f, "symmetric range: absmax %g must be >= 0", absmax);
    cg_qparams p = {absmax / (float)CG_QMAX, 0};
    if (!(p.scale > 0.0f)) p.scale = 1.0f;
    return p;
}

// min and max of the finite values of x (n >= 1); [0, 0] when none is finite. Returns how many
// values were NaN or infinite (skipped).
static int64_t min_max(const float *x, int64_t n, float *lo, float *hi) {
    float a = INFINITY, b = -INFINITY;
    int64_t skipped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            skipped++;
            continue;
        }
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    if (skipped == n) a = b = 0.0f;
    *lo = a;
    *hi = b;
    return skipped;
}

cg_qparams cg_qparams_from_data(const float *x, int64_t n, bool symmetric) {
    CG_CHECK(n > 0, "cannot take quantization parameters of %lld values", (long long)n);
    float lo, hi;
    min_max(x, n, &lo, &hi);
    return symmetric ? cg_qparams_symmetric(fmaxf(fabsf(lo), fabsf(hi))) : cg_qparams_affine(lo, hi);
}

void cg_qparams_per_channel(cg_qparams *params, const float *x, int64_t channels, int64_t inner, bool symmetric) {
    CG_CHECK(channels > 0 && inner > 0, "per-channel parameters of a (%lld, %lld) array", (long long)channels,
             (long long)inner);
    for (int64_t c = 0; c < channels; c++) params[c] = cg_qparams_from_data(x + c * inner, inner, symmetric);
}

int8_t cg_quantize_one(float x, cg_qparams p) {
    // round(x / s), then add the integer zero point (PyTorch's order: quantize_val in
    // aten/src/ATen/native/quantized/AffineQuantizerBase.cpp). NaN becomes the zero point.
    if (isnan(x)) return saturate_round((float)p.zero_point);
    float r = rintf(x / p.scale);
    return saturate_round(r + (float)p.zero_point);
}

void cg_quantize(int8_t *q, const float *x, int64_t n, cg_qparams p) {
    for (int64_t i = 0; i < n; i++) q[i] = cg_quantize_one(x[i], p);
}

void cg_dequantize(float *x, const int8_t *q, int64_t n, cg_qparams p) {
    for (int64_t i = 0; i < n; i++) x[i] = p.scale * (float)((int32_t)q[i] - p.zero_point);
}

void cg_quantize_per_channel(int8_t *q, const float *x, int64_t channels, int64_t inner, const cg_qparams *params) {
    for (int64_t c = 0; c < channels; c++) cg_quantize(q + c * inner, x + c * inner, inner, params[c]);
}

void cg_dequantize_per_channel(float *x, const int8_t *q, int64_t channels, int64_t inner,
                               const cg_qparams *params) {
    for (int64_t c = 0; c < channels; c++) cg_dequantize(x + c * inner, q + c * inner, inner, params[c]);
}

// ---- observers ------------------------------------------------------------------------------------

void cg_observer_init(cg_observer *obs, cg_observer_kind kind, double percentile) {
    memset(obs, 0, sizeof(*obs));
    obs->kind = kind;
    if (kind == CG_OBSERVER_PERCENTILE) {
        obs->percentile = percentile > 0.0 ? percentile : 99.99;
        CG_CHECK(obs->percentile > 50.0 && obs->percentile <= 100.0, "percentile %g is not in (50, 100]",
                 obs->percentile);
    }
    if (kind != CG_OBSERVER_MINMAX) obs->hist = cg_xcalloc(CG_OBSERVER_BINS, sizeof(int64_t));
}

void cg_observer_free(cg_observer *obs) {
    free(obs->hist);
    obs->hist = NULL;
}

// Double the histogram's range: old bin i (of [-r, r)) lies inside new bin B/4 + i/2 (of [-2r, 2r)).
static void histogram_double(cg_observer *obs) {
    int64_t *h = obs->hist;
    int64_t merged[CG_OBSERVER_BINS] = {0};
    for (int i = 0; i < CG_OBSERVER_BINS; i++) merged[CG_OBSERVER_BINS / 4 + i / 2] += h[i];
    memcpy(h, merged, sizeof(merged));
    obs->range *= 2.0f;
}

void cg_observer_update(cg_observer *obs, const float *x, int64_t n) {
    if (n <= 0) return;
    float lo, hi;
    int64_t skipped = min_max(x, n, &lo, &hi);
    obs->nonfinite += skipped; // counted, never binned: the caller decides what to do about them
    if (skipped == n) return;
    obs->min = obs->count == 0 ? lo : fminf(obs->min, lo);
    obs->max = obs->count == 0 ? hi : fmaxf(obs->max, hi);
    obs->count += n - skipped;
    if (obs->kind == CG_OBSERVER_MINMAX) return;

    float absmax = fmaxf(fabsf(lo), fabsf(hi));
    if (obs->range == 0.0f) obs->range = absmax > 0.0f ? absmax : 1.0f;
    while (absmax > obs->range) histogram_double(obs);
    const float bins_per_unit = (float)CG_OBSERVER_BINS / (2.0f * obs->range);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        int64_t b = (int64_t)((x[i] + obs->range) * bins_per_unit);
        b = b < 0 ? 0 : b >= CG_OBSERVER_BINS ? CG_OBSERVER_BINS - 1 : b;
        obs->hist[b]++;
    }
}

// The value below which a fraction q of the counted values lie, interpolated inside its bin.
static float histogram_quantile(const cg_observer *obs, double q) {
    double target = q * (double)obs->count, cum = 0.0;
    const double width = 2.0 * obs->range / CG_OBSERVER_BINS;
    for (int b = 0; b < CG_OBSERVER_BINS; b++) {
        double h = (double)obs->hist[b];
        if (h > 0.0 && cum + h >= target) {
            double frac = (target - cum) / h;
            return (float)(-obs->range + (b + frac) * width);
        }
        cum += h;
    }
    return obs->range;
}

// The entropy threshold T (quant.h): the bin edge whose clipped, 128-level histogram Q is closest
// to the clipped histogram P in Kullback-Leibler divergence.
#define HALF_BINS (CG_OBSERVER_BINS / 2)
#define ENTROPY_LEVELS 128

static float entropy_threshold(const cg_observer *obs) {
    double *a = cg_xmalloc(3 * HALF_BINS * sizeof(double)), *p = a + HALF_BINS, *q = a + 2 * HALF_BINS;
    for (int k = 0; k < HALF_BINS; k++) // fold: |x| in bin k of [0, range)
        a[k] = (double)obs->hist[HALF_BINS + k] + (double)obs->hist[HALF_BINS - 1 - k];
    // The first bin holds every exact zero (half of a ReLU's outputs): zero is exactly representable,
    // yet the spike would dominate the divergence, so it counts as its neighbour (NVIDIA's
    // pytorch-quantization entropy calibrator does the same).
    a[0] = a[1];
    int last = HALF_BINS; // past the last non-empty bin
    while (last > 0 && a[last - 1] == 0.0) last--;
    const double width = obs->range / HALF_BINS;
    if (last <= ENTROPY_LEVELS) { // fewer bins than levels: nothing to clip
        free(a);
        return (float)(last * width);
    }
    double beyond = 0.0; // counts in bins i .. last
    for (int k = ENTROPY_LEVELS; k < last; k++) beyond += a[k];
    double best_kl = INFINITY;
    int best = last;
    for (int i = ENTROPY_LEVELS; i <= last; i++) {
        // P: bins 0 .. i, the clipped tail added to the last; Q: bins 0 .. i (no tail) merged into
        // ENTROPY_LEVELS groups, each group's count spread over its bins where P is not zero.
        double sum_p = 0.0, sum_q = 0.0;
        for (int k = 0; k < i; k++) p[k] = a[k];
        p[i - 1] += beyond;
        for (int j = 0; j < ENTROPY_LEVELS; j++) {
            int start = (int)((int64_t)j * i / ENTROPY_LEVELS), stop = (int)((int64_t)(j + 1) * i / ENTROPY_LEVELS);
            double total = 0.0;
            int used = 0;
            for (int k = start; k < stop; k++) total += a[k], used += p[k] != 0.0;
            for (int k = start; k < stop; k++) q[k] = p[k] != 0.0 ? total / used : 0.0;
        }
        for (int k = 0; k < i; k++) sum_p += p[k], sum_q += q[k];
        double kl = 0.0;
        for (int k = 0; k < i; k++) {
            if (p[k] == 0.0) continue;
            double pk = p[k] / sum_p, qk = q[k] / sum_q;
            kl += pk * log(pk / (qk > 1e-12 ? qk : 1e-12));
        }
        if (kl < best_kl) best_kl = kl, best = i;
        if (i < last) beyond -= a[i];
    }
    free(a);
    return (float)(best * width);
}

void cg_observer_range(const cg_observer *obs, float *lo, float *hi) {
    if (obs->count == 0) {
        *lo = *hi = 0.0f;
        return;
    }
    *lo = obs->min;
    *hi = obs->max;
    if (obs->kind == CG_OBSERVER_PERCENTILE) {
        double p = obs->percentile / 100.0;
        *lo = fmaxf(obs->min, fminf(obs->max, histogram_quantile(obs, 1.0 - p)));
        *hi = fmaxf(obs->min, fminf(obs->max, histogram_quantile(obs, p)));
    } else if (obs->kind == CG_OBSERVER_ENTROPY) {
        float t = entropy_threshold(obs);
        *lo = fmaxf(obs->min, fminf(obs->max, -t));
        *hi = fmaxf(obs->min, fminf(obs->max, t));
    }
}

cg_qparams cg_observer_qparams(const cg_observer *obs, bool symmetric) {
    float lo, hi;
    cg_observer_range(obs, &lo, &hi);
    return symmetric ? cg_qparams_symmetric(fmaxf(fabsf(lo), fabsf(hi))) : cg_qparams_affine(lo, hi);
}

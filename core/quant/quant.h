// quant.h: int8 quantization parameters (affine and symmetric, per tensor and per output channel),
// quantize / dequantize of float arrays, and the calibration observers (min-max, percentile, entropy).
// It works on raw host arrays and knows nothing of tensors, modules or devices (issue 6, step 1).
//
// The convention (PyTorch's quint8/qint8 "affine" and "symmetric" schemes, torch.ao.quantization):
//   q = clamp(round(x / scale) + zero_point, -128, 127)        x ~= scale * (q - zero_point)
//   affine:    min' = min(min, 0), max' = max(max, 0)          (0 is always exactly representable:
//              scale = (max' - min') / 255                      zero padding, ReLU's zeros)
//              zero_point = clamp(-128 - round(min' / scale), -128, 127)
//   symmetric: scale = max(|min|, |max|) / 127, zero_point = 0 (q in [-127, 127] for data in range)
// round() is round-half-to-even, C's rintf in the default rounding mode: what PyTorch (std::nearbyint),
// NumPy and the x86 / CUDA float-to-int instructions (cvtps2dq, __float2int_rn) do, so ties carry no
// bias and the CPU and GPU give identical integers.
//
// The course's worked example (chapter 1, INT8): w = [0.8342, -1.234, 0.0023, 2.567],
// scale = (2.567 + 1.234) / 255 = 0.0149059, q = round((w - min) / scale) - 128. That formula gives
// [11, -128, -45, 127], and so does the convention above (zero_point = -45). The course prints
// [56, -128, -111, 127], which NO min/max scaling can produce: 0.8342 and 0.0023 are 0.8319 apart,
// at most ceil(0.8319 / 0.0149059) = 56 steps under any scale >= (max - min) / 255, but 56 and -111
// are 167 steps apart. Those numbers need scale ~= 0.005 (1/200) and zero_point = -111, a range of
// [-0.085, 1.19] that clips both -1.234 and 2.567 (tests/test_quant.c checks both statements).
#ifndef CG_QUANT_H
#define CG_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CG_QMIN (-128)
#define CG_QMAX 127

// One (scale, zero_point) pair: a tensor's, or one output channel's.
typedef struct {
    float scale;        // real units per integer step (> 0)
    int32_t zero_point; // the integer that stands for real 0, in [-128, 127]; 0 when symmetric
} cg_qparams;

// Affine parameters for data in [min, max] (min <= max; the range is widened to include 0).
// A range of zero width (all zeros) gives scale 1 and zero_point -128 (the formula with scale 1).
cg_qparams cg_qparams_affine(float min, float max);
// Symmetric parameters for data in [-absmax, absmax] (absmax >= 0; 0 gives scale 1).
cg_qparams cg_qparams_symmetric(float absmax);
// Per tensor, from the data itself: affine (min / max of x) or symmetric (max |x|). x: (n,) f32.
// NaN and infinite values are left out of the range (quantised, NaN gives the zero point and an
// infinity saturates: no float-to-integer conversion is ever undefined).
cg_qparams cg_qparams_from_data(const float *x, int64_t n, bool symmetric);
// Per output channel: x is (channels, inner) f32 (a Linear weight (out, in), a Conv2d weight
// (K, C*R*S)); writes channels parameters to params.
void cg_qparams_per_channel(cg_qparams *params, const float *x, int64_t channels, int64_t inner, bool symmetric);

// One value: clamp(round(x / scale) + zero_point, -128, 127), round half to even.
int8_t cg_quantize_one(float x, cg_qparams p);
// x: (n,) f32 -> q: (n,) i8 with one pair of parameters.
void cg_quantize(int8_t *q, const float *x, int64_t n, cg_qparams p);
// q: (n,) i8 -> x: (n,) f32, x = scale * (q - zero_point).
void cg_dequantize(float *x, const int8_t *q, int64_t n, cg_qparams p);
// Per channel: x: (channels, inner) f32 -> q: (channels, inner) i8, row c with params[c].
void cg_quantize_per_channel(int8_t *q, const float *x, int64_t channels, int64_t inner, const cg_qparams *params);
void cg_dequantize_per_channel(float *x, const int8_t *q, int64_t channels, int64_t inner,
                               const cg_qparams *params);

// ---- calibration observers ----------------------------------------------------------------------
// An observer watches the activations of N calibration batches (cg_observer_update once per batch)
// and then gives a range [lo, hi] and from it the quantization parameters.
//   CG_OBSERVER_MINMAX: the exact running min and max of every value seen.
//   CG_OBSERVER_PERCENTILE: lo / hi are the (100 - p) % and p % quantiles (p = 99.99 by default) of
//     every value seen, read from a histogram of CG_OBSERVER_BINS equal bins over [-range, range).
//     The range starts as the first batch's max |x| and doubles when a later batch goes beyond it,
//     each new bin then being the sum of two old ones (exact: no value changes bin boundaries
//     wrongly), so memory stays fixed whatever N is. A quantile is interpolated linearly inside
//     its bin: its error is at most one bin width, range / (CG_OBSERVER_BINS / 2), i.e. at most
//     2 * max|x| / 1024. It is also clamped to the exact [min, max]. (TensorRT's and PyTorch's
//     HistogramObserver keep a histogram the same way; TensorRT's percentile calibrator reads it.)
//   CG_OBSERVER_ENTROPY: the same histogram, folded to |x| (1024 bins over [0, range)); the range is
//     [-T, T] (clamped to [min, max]) with the T that minimises the Kullback-Leibler divergence
//     KL(P || Q) between P, the histogram up to T with everything beyond T added to its last bin,
//     and Q, the same bins merged into 128 levels (int8's half range) and spread back evenly over
//     the bins that were not empty. T is tried at every bin edge from 128 bins up. The first bin
//     (where a ReLU's zeros pile up, exactly representable) counts as its neighbour. (Szymon Migacz,
//     "8-bit Inference with TensorRT", GTC 2017; MXNet's _get_optimal_threshold.)
#define CG_OBSERVER_BINS 2048

typedef enum { CG_OBSERVER_MINMAX, CG_OBSERVER_PERCENTILE, CG_OBSERVER_ENTROPY } cg_observer_kind;

typedef struct {
    cg_observer_kind kind;
    double percentile; // in (50, 100], for CG_OBSERVER_PERCENTILE
    float min, max;    // exact extremes of everything seen (both kinds)
    int64_t count;     // finite values seen
    int64_t nonfinite; // NaN and infinite values seen (skipped: a diverged model's activations)
    float range;       // the histogram covers [-range, range); 0 before the first non-zero value
    int64_t *hist;     // CG_OBSERVER_BINS counts (percentile and entropy), owned
} cg_observer;

// percentile: ignored for CG_OBSERVER_MINMAX; for CG_OBSERVER_PERCENTILE, 0 means 99.99.
void cg_observer_init(cg_observer *obs, cg_observer_kind kind, double percentile);
void cg_observer_free(cg_observer *obs);
// Add one batch: x: (n,) f32. NaN and infinite values are not binned but counted in nonfinite,
// for the caller to refuse the calibration (they come from weights that overflow).
void cg_observer_update(cg_observer *obs, const float *x, int64_t n);
// The calibrated range; [0, 0] before any value.
void cg_observer_range(const cg_observer *obs, float *lo, float *hi);
// Parameters from the range: affine, or symmetric over max(|lo|, |hi|).
cg_qparams cg_observer_qparams(const cg_observer *obs, bool symmetric);

#ifdef __cplusplus
}
#endif

#endif

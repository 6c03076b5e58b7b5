// quantized.h: post-training int8 quantisation of a trained fp32 Sequential: the quantised model,
// the ranges its calibration sees, its weights' conversion, its int8 forward on the CPU or a GPU,
// its size and its error per layer. Inference only (no tape, no gradients). The model is planned
// from the fp32 layers, calibrated and measured by layers/quantize.h, which knows the layers; this
// file knows only their weights and shapes.
//
// What a model becomes (torch.ao.quantization's "static" post-training scheme, eager mode):
//   input            x (N, C, H, W) f32 -> int8 NHWC, per-tensor affine (scale, zero point)
//   Conv2d [+ ReLU]  int8 weights per output channel symmetric, int32 sums, bias in int32 (units
//                    of sx sw), requantised to the int8 output's own affine parameters; ReLU fused
//                    (clamping at the output's zero point)
//   MaxPool2d        on the int8 values directly (same parameters in and out)
//   Flatten          nothing moves: the next Linear's weight columns are permuted at conversion
//                    from PyTorch's (c, h, w) order to NHWC's (h, w, c)
//   Linear [+ ReLU]  as Conv2d; the LAST layer dequantises to f32 logits instead
// Dropout is the identity at inference and is skipped. Anything else (BatchNorm2d, Sigmoid) is
// refused by cg_qmodel_new with its name.
// Activation ranges come from observers (core/quant.h) fed by running the fp32 model on
// calibration batches: the input and every Conv2d / Linear output (after its ReLU).
#ifndef CG_QUANTIZED_H
#define CG_QUANTIZED_H

#include "core/quant/quant.h"
#include "core/tensor.h"

struct cg_module; // the fp32 Sequential (layers/module.h), read only by layers/quantize.c

typedef enum { CG_QLAYER_CONV, CG_QLAYER_LINEAR, CG_QLAYER_MAX_POOL, CG_QLAYER_FLATTEN } cg_qlayer_kind;

typedef struct {
    cg_qlayer_kind kind;
    char name[64];                 // "c1" (the parameter prefix), "MaxPool2d", "Flatten"
    int src_index;                 // the fp32 child whose output this layer's output stands for
    const cg_tensor *weight, *bias; // Conv2d / Linear: the fp32 parameters (bias may be NULL), else NULL
    int64_t in_c, in_h, in_w;      // per image, NHWC order in memory (Linear: in_c features, 1 x 1)
    int64_t out_c, out_h, out_w;
    int64_t kernel, stride, pad;   // Conv2d (kernel x kernel), MaxPool2d
    bool relu, to_float;           // ReLU fused; dequantised f32 output (the last layer)
    bool flattened_input;          // a Linear after Flatten of (in_c', in_h', in_w'): see permute
    int64_t flat_c, flat_h, flat_w;
    cg_observer observer;          // Conv2d / Linear: the output's range
    cg_qparams out_q;              // the output's parameters (MaxPool2d, Flatten: the input's)
    // After cg_qmodel_convert: on the model's device.
    int8_t *w;                     // (out_c, Kp) i8, see core/qkernels.h
    int32_t *offset;               // (out_c,) i32
    float *multiplier;             // (out_c,) f32
    int64_t k_real;                // weights per output channel (C R S or in features)
    double weight_sqnr_db;         // of the weights alone (host)
    // The layer's output of the last forward: (capacity, out_h, out_w, out_c) i8 (f32 if to_float).
    void *out;
    double signal, noise;          // sums for cg_qmodel_measure_error
} cg_qlayer;

typedef struct {
    cg_device device;
    int count;
    cg_qlayer layers[64];
    int64_t in_c, in_h, in_w;      // the input image
    cg_observer input_observer;
    cg_qparams input_q;
    struct cg_module *fp32;        // the Sequential it was made from (not owned)
    int8_t *input;                 // (capacity, H, W, C) i8
    int64_t capacity;              // batch the buffers hold
    cg_tensor *logits, *logits_view; // (capacity, classes) f32 and the last batch's rows
    bool converted;
} cg_qmodel;

// An empty model for images (C, H, W) whose observers are of `kind` (percentile: 0 means 99.99),
// its int8 kernels on `device`; layers/quantize.c's cg_qmodel_new fills its layers.
cg_qmodel *cg_qmodel_alloc(int64_t C, int64_t H, int64_t W, cg_observer_kind kind, double percentile,
                           cg_device device);
void cg_qmodel_free(cg_qmodel *m);

// Feeds the values of x (any shape, f32, any device) to the input's observer (i = -1) or layer i's.
// Call before cg_qmodel_convert.
void cg_qmodel_observe(cg_qmodel *m, int i, const cg_tensor *x);
// Quantise the weights with the calibrated ranges: per output channel symmetric weights,
// bias_q = round(b / (sx sw)), offset = bias_q - zx sum_k qw, multiplier = sx sw / sy (or sx sw
// for the last layer), rounded to f32 once (both devices then use the same f32 value).
void cg_qmodel_convert(cg_qmodel *m);

// x (N, C, H, W) f32 on the model's device -> logits (N, classes) f32, valid until the next call.
cg_tensor *cg_qmodel_forward(cg_qmodel *m, const cg_tensor *x);

// Layer i's output of the last forward (N images) as f32 in NCHW order (PyTorch's), on the host:
// dequantised, x = scale (q - zero_point). host: N out_c out_h out_w floats. (A Flatten's output
// keeps the NHWC order of the values it flattens: (h, w, c), not PyTorch's (c, h, w).)
void cg_qmodel_layer_output(const cg_qmodel *m, int i, int64_t N, float *host);

// Adds, for layer i after a cg_qmodel_forward of N images, the fp32 reference output ref's (N, ...)
// sum of squares to the layer's signal and the squared difference to its noise (host doubles).
// SQNR (dB) = 10 log10(signal / noise) (the quantisation error measure of e.g. TensorRT's and
// PyTorch's numeric suites).
void cg_qmodel_compare(cg_qmodel *m, int i, const cg_tensor *ref);

// Bytes to store the model: int8: int8 weights + int32 biases + one f32 scale per output channel +
// a scale and zero point per activation; fp32: 4 bytes per parameter.
int64_t cg_qmodel_bytes(const cg_qmodel *m);
int64_t cg_qmodel_fp32_bytes(const cg_qmodel *m);

#endif

// quantize.h: a trained fp32 Sequential turned into the int8 model of core/quant/quantized.h
// (post-training static quantisation, as torch.ao.quantization's eager mode): planning it from the
// layers, calibrating it on fp32 batches and measuring its error layer by layer. Include this
// header to quantise a model; it brings quantized.h's forward, size and layer outputs with it.
#ifndef CG_LAYERS_QUANTIZE_H
#define CG_LAYERS_QUANTIZE_H

#include "core/quant/quantized.h"
#include "layers/module.h"

// Plan the quantised twin of fp32 (a Sequential of Conv2d, ReLU, MaxPool2d, Flatten, Linear,
// Dropout ending in Conv2d or Linear) for images (C, H, W), with observers of `kind`
// (percentile: 0 means 99.99). Its int8 kernels run on `device`. The model keeps pointers to
// fp32's weights: fp32 must outlive it.
// Errors: CG_ERR_ARG naming the layer that cannot be quantised or a shape that does not fit.
cg_status cg_qmodel_new(cg_qmodel **out, cg_module *fp32, int64_t C, int64_t H, int64_t W, cg_observer_kind kind,
                        double percentile, cg_device device);

// One calibration batch: runs the fp32 model on x (N, C, H, W) f32 (on t's device, no
// recording) and feeds every observer. Call before cg_qmodel_convert.
void cg_qmodel_calibrate(cg_qmodel *m, cg_tape *t, cg_tensor *x);

// Runs the fp32 model and the int8 model on x and adds, for each Conv2d / Linear layer, the
// fp32 output's sum of squares to signal and the squared difference to noise (cg_qmodel_compare).
void cg_qmodel_measure_error(cg_qmodel *m, cg_tape *t, cg_tensor *x);

#endif

// metrics.h: loss and accuracy summed on the device during an epoch and read once at its end,
// so that training never waits on the device to print a number.
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include "core/tensor.h"

// Nothing here is counted on the host, so the adds can be captured into a CUDA Graph and
// replayed; the caller knows how many samples it fed and passes that to cg_metrics_read.
typedef struct {
    cg_tensor *sums; // (2,) f32 on the device: [sum of loss * batch size, correct predictions]
} cg_metrics;

cg_metrics *cg_metrics_new(cg_device device);
void cg_metrics_free(cg_metrics *m);
void cg_metrics_reset(cg_metrics *m);
// loss: () f32, the mean over a batch of batch_size samples.
void cg_metrics_add_loss(cg_metrics *m, const cg_tensor *loss, int64_t batch_size);
// p: probabilities, targets: 0/1 f32, same numel; counts (p > threshold) == target.
void cg_metrics_add_binary_correct(cg_metrics *m, const cg_tensor *p, const cg_tensor *targets, float threshold);
// logits (N, K) f32, labels (N,) i32; counts arg-max == label.
void cg_metrics_add_argmax_correct(cg_metrics *m, const cg_tensor *logits, const cg_tensor *labels);
// Mean loss per sample and accuracy (correct / samples) over the `samples` samples added since
// the last reset. Synchronises with the device.
void cg_metrics_read(const cg_metrics *m, int64_t samples, double *mean_loss, double *accuracy);

#endif

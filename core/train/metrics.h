// metrics.h: loss and accuracy summed on the device during an epoch and read once at its end,
// so that training never waits on the device to print a number.
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include "core/tensor.h"

// Nothing here is counted on the host, so the adds can be captured into a CUDA Graph and
// replayed; the caller knows how many samples it fed and passes that to cg_metrics_read.
typedef struct {
    cg_tensor *sums; // (3,) f32 on the device: [sum of loss * batch size, correct predictions,
                     // labels among the 5 largest logits]
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
// logits (N, K) f32, labels (N,) i32; counts the rows whose label is among the min(5, K) largest
// logits (top-5 accuracy; ties as count_topk_correct in core/kernels.h).
void cg_metrics_add_top5_correct(cg_metrics *m, const cg_tensor *logits, const cg_tensor *labels);
// Mean loss per sample and accuracy (correct / samples) over the `samples` samples added since
// the last reset. Synchronises with the device.
void cg_metrics_read(const cg_metrics *m, int64_t samples, double *mean_loss, double *accuracy);
// Top-5 accuracy over the same samples (0 when nothing was added by cg_metrics_add_top5_correct).
double cg_metrics_read_top5(const cg_metrics *m, int64_t samples);

// ---- the confusion matrix ------------------------------------------------------------------
// counts (K, K) on the device: row the true class, column the predicted one (the arg-max),
// accumulated per batch by a kernel and read once, at the end.
typedef struct {
    int classes;       // K
    cg_tensor *counts; // (K, K) f32 on the device, whole numbers
} cg_confusion;

cg_confusion *cg_confusion_new(cg_device device, int classes);
void cg_confusion_free(cg_confusion *c);
void cg_confusion_reset(cg_confusion *c);
// logits (N, K) f32, labels (N,) i32 in [0, K).
void cg_confusion_add(cg_confusion *c, const cg_tensor *logits, const cg_tensor *labels);
// The K x K counts into out (host, row-major). Synchronises with the device.
void cg_confusion_read(const cg_confusion *c, int64_t *out);
// Whether path can be written (a new temporary file beside it, removed at once): CG_ERR_ARG /
// CG_ERR_IO naming flag and path otherwise. So that a bad path fails before training.
cg_status cg_confusion_check_writable(const char *flag, const char *path);
// Writes the matrix as CSV, as tools/plot_confusion.py reads it: a header row of the K class names
// (names NULL: 0 .. K-1; a name holding a comma, a quote or a line break is quoted as RFC 4180
// says), then one row per true class of K counts. Written to a temporary file and renamed over
// path. Errors: CG_ERR_IO naming the path.
cg_status cg_confusion_write_csv(const char *path, char *const *names, int classes, const int64_t *counts);

#endif

// metrics.c: device-side sums of loss and correct predictions.
#include "core/train/metrics.h"
#include "core/kernels.h"

#include <stdlib.h>

cg_metrics *cg_metrics_new(cg_device device) {
    cg_metrics *m = cg_xcalloc(1, sizeof *m);
    m->sums = cg_tensor_new(device, CG_F32, 1, (int64_t[]){2});
    cg_metrics_reset(m);
    return m;
}

void cg_metrics_free(cg_metrics *m) {
    if (m == NULL) return;
    cg_tensor_free(m->sums);
    free(m);
}

void cg_metrics_reset(cg_metrics *m) {
    cg_tensor_fill(m->sums, 0.0f);
}

void cg_metrics_add_loss(cg_metrics *m, const cg_tensor *loss, int64_t batch_size) {
    CG_CHECK(loss->numel == 1 && loss->dtype == CG_F32, "metrics: the loss must be one f32 value");
    float *sums = m->sums->data;
    cg_kernels_for(m->sums->device)->axpy(sums, (float)batch_size, loss->data, 1);
}

void cg_metrics_add_binary_correct(cg_metrics *m, const cg_tensor *p, const cg_tensor *targets, float threshold) {
    CG_CHECK(p->numel == targets->numel, "metrics: %lld predictions for %lld targets", (long long)p->numel,
             (long long)targets->numel);
    float *sums = m->sums->data;
    cg_kernels_for(m->sums->device)->count_binary_correct(sums + 1, p->data, targets->data, threshold, p->numel);
}

void cg_metrics_add_argmax_correct(cg_metrics *m, const cg_tensor *logits, const cg_tensor *labels) {
    CG_CHECK(logits->ndim == 2 && labels->numel == logits->shape[0], "metrics: logits must be (N, K), labels (N,)");
    float *sums = m->sums->data;
    cg_kernels_for(m->sums->device)->count_argmax_correct(sums + 1, logits->data, labels->data, logits->shape[0],
                                                           logits->shape[1]);
}

void cg_metrics_read(const cg_metrics *m, int64_t samples, double *mean_loss, double *accuracy) {
    float host[2];
    cg_tensor_copy_to_host(host, m->sums, 2);
    *mean_loss = samples > 0 ? host[0] / (double)samples : 0.0;
    *accuracy = samples > 0 ? host[1] / (double)samples : 0.0;
}

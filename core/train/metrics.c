// metrics.c: device-side sums of loss and correct predictions (top-1 and top-5), and the
// confusion matrix with its CSV file.
#define _POSIX_C_SOURCE 200809L
#include "core/train/metrics.h"
#include "core/kernels.h"
#include "core/safe_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cg_metrics *cg_metrics_new(cg_device device) {
    cg_metrics *m = cg_xcalloc(1, sizeof *m);
    m->sums = cg_tensor_new(device, CG_F32, 1, (int64_t[]){3});
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

void cg_metrics_add_top5_correct(cg_metrics *m, const cg_tensor *logits, const cg_tensor *labels) {
    CG_CHECK(logits->ndim == 2 && labels->numel == logits->shape[0], "metrics: logits must be (N, K), labels (N,)");
    float *sums = m->sums->data;
    int64_t K = logits->shape[1];
    cg_kernels_for(m->sums->device)->count_topk_correct(sums + 2, logits->data, labels->data, logits->shape[0], K,
                                                         K < 5 ? K : 5);
}

void cg_metrics_read(const cg_metrics *m, int64_t samples, double *mean_loss, double *accuracy) {
    float host[3];
    cg_tensor_copy_to_host(host, m->sums, 3);
    *mean_loss = samples > 0 ? host[0] / (double)samples : 0.0;
    *accuracy = samples > 0 ? host[1] / (double)samples : 0.0;
}

double cg_metrics_read_top5(const cg_metrics *m, int64_t samples) {
    float host[3];
    cg_tensor_copy_to_host(host, m->sums, 3);
    return samples > 0 ? host[2] / (double)samples : 0.0;
}

// ---- the confusion matrix ------------------------------------------------------------------

cg_confusion *cg_confusion_new(cg_device device, int classes) {
    CG_CHECK(classes >= 1, "confusion: %d classes", classes);
    cg_confusion *c = cg_xcalloc(1, sizeof *c);
    c->classes = classes;
    c->counts = cg_tensor_new(device, CG_F32, 2, (int64_t[]){classes, classes});
    cg_confusion_reset(c);
    return c;
}

void cg_confusion_free(cg_confusion *c) {
    if (c == NULL) return;
    cg_tensor_free(c->counts);
    free(c);
}

void cg_confusion_reset(cg_confusion *c) { cg_tensor_fill(c->counts, 0.0f); }

void cg_confusion_add(cg_confusion *c, const cg_tensor *logits, const cg_tensor *labels) {
    CG_CHECK(logits->ndim == 2 && logits->shape[1] == c->classes && labels->numel == logits->shape[0],
             "confusion: logits must be (N, %d), labels (N,)", c->classes);
    cg_kernels_for(c->counts->device)->confusion_add(c->counts->data, logits->data, labels->data, logits->shape[0],
                                                     c->classes);
}

void cg_confusion_read(const cg_confusion *c, int64_t *out) {
    int64_t n = (int64_t)c->classes * c->classes;
    float *host = cg_xmalloc((size_t)n * sizeof(float));
    cg_tensor_copy_to_host(host, c->counts, n);
    for (int64_t i = 0; i < n; i++) out[i] = (int64_t)host[i];
    free(host);
}

cg_status cg_confusion_check_writable(const char *flag, const char *path) {
    struct stat info;
    if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
        return cg_error(CG_ERR_ARG, "%s: '%s' is a directory: give a file name (e.g. %s/confusion.csv)", flag, path,
                        path);
    cg_remove_stale_temps(path);
    char tmp[4200];
    int fd = cg_temp_create(path, tmp, sizeof tmp);
    if (fd < 0) return cg_error(CG_ERR_IO, "%s: cannot write '%s': %s", flag, path, strerror(errno));
    close(fd);
    unlink(tmp);
    return cg_ok();
}

// One CSV cell: the text as it is, or quoted with its quotes doubled when it needs it.
static void put_cell(FILE *f, const char *text) {
    if (strpbrk(text, ",\"\r\n") == NULL) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = text; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

cg_status cg_confusion_write_csv(const char *path, char *const *names, int classes, const int64_t *counts) {
    cg_remove_stale_temps(path);
    char tmp[4200];
    int fd = cg_temp_create(path, tmp, sizeof tmp);
    if (fd < 0) return cg_error(CG_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return cg_error(CG_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    for (int i = 0; i < classes; i++) {
        if (i) fputc(',', f);
        if (names && names[i]) {
            put_cell(f, names[i]);
        } else {
            fprintf(f, "%d", i);
        }
    }
    fputc('\n', f);
    for (int i = 0; i < classes; i++) {
        for (int j = 0; j < classes; j++) fprintf(f, j ? ",%lld" : "%lld", (long long)counts[(int64_t)i * classes + j]);
        fputc('\n', f);
    }
    bool ok = !ferror(f) && fflush(f) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) ok = false, err = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        return cg_error(CG_ERR_IO, "cannot write '%s': %s", path, strerror(err));
    }
    return cg_ok();
}

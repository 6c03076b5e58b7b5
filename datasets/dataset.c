// dataset.c: freeing a data set, and the class-balanced subset of cnn --limit. No loading here
// (idx.c, cifar.c, image_folder.c do that).
#include "datasets/dataset.h"

#include <stdlib.h>
#include <string.h>

void cg_dataset_free(cg_dataset *d) {
    if (d == NULL) return;
    free(d->x);
    free(d->pixels);
    free(d->labels);
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d);
}

cg_status cg_dataset_keep_balanced(cg_dataset *d, int64_t n) {
    if (n < 1) return cg_error(CG_ERR_ARG, "a subset of %lld samples: expected at least 1", (long long)n);
    if (n >= d->count) return cg_ok();
    const int K = d->num_classes;
    CG_CHECK(K >= 1, "a data set without classes");
    // Each class's samples in data-set order: a counting sort of the indices by label.
    int64_t *start = calloc((size_t)K + 1, sizeof *start);
    int64_t *next = calloc((size_t)K, sizeof *next);
    int64_t *by_class = malloc((size_t)d->count * sizeof *by_class);
    int64_t *keep = malloc((size_t)n * sizeof *keep);
    const size_t sample_bytes = (size_t)d->sample_numel * (d->dtype == CG_U8 ? sizeof(uint8_t) : sizeof(float));
    void *values = malloc((size_t)n * sample_bytes + 1);
    int32_t *labels = malloc((size_t)n * sizeof *labels + 1);
    cg_status s = cg_ok();
    if (start == NULL || next == NULL || by_class == NULL || keep == NULL || values == NULL || labels == NULL) {
        s = cg_error(CG_ERR_OOM, "out of host memory for a subset of %lld samples", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < d->count; i++) {
        CG_CHECK(d->labels[i] >= 0 && d->labels[i] < K, "sample %lld has label %d of %d classes", (long long)i,
                 d->labels[i], K);
        start[d->labels[i] + 1]++;
    }
    for (int c = 0; c < K; c++) start[c + 1] += start[c];
    for (int c = 0; c < K; c++) next[c] = start[c];
    for (int64_t i = 0; i < d->count; i++) by_class[next[d->labels[i]]++] = i;
    // Round robin over the classes; a class that has given all its samples is passed over.
    for (int c = 0; c < K; c++) next[c] = start[c];
    int64_t taken = 0;
    while (taken < n)
        for (int c = 0; c < K && taken < n; c++)
            if (next[c] < start[c + 1]) keep[taken++] = by_class[next[c]++];
    const uint8_t *from = d->dtype == CG_U8 ? (const uint8_t *)d->pixels : (const uint8_t *)d->x;
    for (int64_t k = 0; k < n; k++) {
        memcpy((uint8_t *)values + (size_t)k * sample_bytes, from + (size_t)keep[k] * sample_bytes, sample_bytes);
        labels[k] = d->labels[keep[k]];
    }
    if (d->dtype == CG_U8) {
        free(d->pixels);
        d->pixels = values;
    } else {
        free(d->x);
        d->x = values;
    }
    free(d->labels);
    d->labels = labels;
    d->count = n;
    values = NULL;
    labels = NULL;
done:
    free(start);
    free(next);
    free(by_class);
    free(keep);
    free(values);
    free(labels);
    return s;
}

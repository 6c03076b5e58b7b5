// loss.c: binary cross-entropy, softmax cross-entropy, sum / mean, and the accuracy counters.
// Reductions accumulate in double, so that the thread count barely changes the result.
// Serial below CG_OMP_MIN_WORK elements, for the reason given in elementwise.c.
#include "kernels/cpu/cpu.h"

#include <math.h>

// log clamped at -100, as torch.nn.BCELoss does, so that p = 0 or 1 gives a finite loss.
static float clamped_log(float x) {
    float l = logf(x);
    return l < -100.0f ? -100.0f : l;
}

static void bce_forward_cpu(float *loss, const float *p, const float *t, int64_t n) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += t[i] * clamped_log(p[i]) + (1.0f - t[i]) * clamped_log(1.0f - p[i]);
    loss[0] = (float)(-total / (double)n);
}

static void bce_backward_cpu(float *dp, const float *dloss, const float *p, const float *t, int64_t n) {
    // d/dp of -(t log p + (1 - t) log(1 - p)) = (p - t) / (p (1 - p)); PyTorch bounds the
    // denominator below by 1e-12.
    float g = dloss[0] / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float denom = p[i] * (1.0f - p[i]);
        if (denom < 1e-12f) denom = 1e-12f;
        dp[i] += g * (p[i] - t[i]) / denom;
    }
}

// logsumexp(row) - (1 - e) row[label] - e mean(row), with the row maximum subtracted before exp.
static double cross_entropy_row(const float *row, int32_t label, int64_t K, float e) {
    float max = row[0];
    for (int64_t c = 1; c < K; c++) max = row[c] > max ? row[c] : max;
    double sum = 0.0, total = 0.0;
    for (int64_t c = 0; c < K; c++) sum += exp((double)row[c] - max), total += row[c];
    double target = e == 0.0f ? row[label] : (1.0 - e) * row[label] + e * total / (double)K;
    return log(sum) + max - target;
}

static void cross_entropy_forward_cpu(float *loss, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                      float e) {
    double total = 0.0;
    if (N * K < CG_OMP_MIN_WORK) {
        for (int64_t r = 0; r < N; r++) total += cross_entropy_row(logits + r * K, labels[r], K, e);
    } else {
#pragma omp parallel for reduction(+ : total)
        for (int64_t r = 0; r < N; r++) total += cross_entropy_row(logits + r * K, labels[r], K, e);
    }
    loss[0] = (float)(total / (double)N);
}

// drow += g * (softmax(row) - (1 - e) onehot(label) - e / K)
static void cross_entropy_row_backward(float *drow, const float *row, int32_t label, int64_t K, float g, float e) {
    float max = row[0];
    for (int64_t c = 1; c < K; c++) max = row[c] > max ? row[c] : max;
    float sum = 0.0f;
    for (int64_t c = 0; c < K; c++) sum += expf(row[c] - max);
    float hit = 1.0f - e, spread = e / (float)K;
    for (int64_t c = 0; c < K; c++) drow[c] += g * (expf(row[c] - max) / sum - (c == label ? hit : 0.0f) - spread);
}

static void cross_entropy_backward_cpu(float *dlogits, const float *dloss, const float *logits, const int32_t *labels,
                                       int64_t N, int64_t K, float e) {
    float g = dloss[0] / (float)N;
    if (N * K < CG_OMP_MIN_WORK) {
        for (int64_t r = 0; r < N; r++)
            cross_entropy_row_backward(dlogits + r * K, logits + r * K, labels[r], K, g, e);
        return;
    }
#pragma omp parallel for
    for (int64_t r = 0; r < N; r++) cross_entropy_row_backward(dlogits + r * K, logits + r * K, labels[r], K, g, e);
}

static void sum_forward_cpu(float *y, const float *x, float scale, int64_t n) {
    double total = 0.0;
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) total += x[i];
    } else {
#pragma omp parallel for reduction(+ : total)
        for (int64_t i = 0; i < n; i++) total += x[i];
    }
    y[0] = (float)(scale * total);
}

static void sum_backward_cpu(float *dx, const float *dy, float scale, int64_t n) {
    float g = scale * dy[0];
    if (n < CG_OMP_MIN_WORK) {
        for (int64_t i = 0; i < n; i++) dx[i] += g;
        return;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) dx[i] += g;
}

static void count_binary_correct_cpu(float *acc, const float *p, const float *t, float threshold, int64_t n) {
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) correct += (p[i] > threshold) == (t[i] > 0.5f);
    acc[0] += (float)correct;
}

static void count_argmax_correct_cpu(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K) {
    int64_t correct = 0;
    for (int64_t r = 0; r < N; r++) {
        const float *row = logits + r * K;
        int64_t best = 0;
        for (int64_t c = 1; c < K; c++)
            if (row[c] > row[best]) best = c;
        correct += best == labels[r];
    }
    acc[0] += (float)correct;
}

// The rank of the label's logit in its row: how many logits come before it, larger ones and
// equal ones of a lower index (core/kernels.h, count_topk_correct).
static int64_t label_rank(const float *row, int64_t K, int64_t label) {
    float v = row[label];
    int64_t rank = 0;
    for (int64_t c = 0; c < K; c++) rank += row[c] > v || (row[c] == v && c < label);
    return rank;
}

static void count_topk_correct_cpu(float *acc, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                                   int64_t k) {
    int64_t correct = 0;
    for (int64_t r = 0; r < N; r++) correct += label_rank(logits + r * K, K, labels[r]) < k;
    acc[0] += (float)correct;
}

static void confusion_add_cpu(float *counts, const float *logits, const int32_t *labels, int64_t N, int64_t K) {
    for (int64_t r = 0; r < N; r++) {
        const float *row = logits + r * K;
        int64_t best = 0;
        for (int64_t c = 1; c < K; c++)
            if (row[c] > row[best]) best = c;
        counts[labels[r] * K + best] += 1.0f;
    }
}

// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void loss_register_cpu(cg_kernels *k) {
    k->bce_forward = bce_forward_cpu;
    k->bce_backward = bce_backward_cpu;
    k->cross_entropy_forward = cross_entropy_forward_cpu;
    k->cross_entropy_backward = cross_entropy_backward_cpu;
    k->sum_forward = sum_forward_cpu;
    k->sum_backward = sum_backward_cpu;
    k->count_binary_correct = count_binary_correct_cpu;
    k->count_argmax_correct = count_argmax_correct_cpu;
    k->count_topk_correct = count_topk_correct_cpu;
    k->confusion_add = confusion_add_cpu;
}

// anomaly.c: the non-finite checks of anomaly.h, on host copies of each op's output and of the
// gradients its backward produced. F32, F16 and BF16 tensors are checked (by their exponent bits
// for the 16-bit ones); integer tensors cannot hold NaN and are skipped.
#include "core/anomaly.h"
#include "core/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool enabled = false;
static bool found = false;
static char report[512];

void cg_anomaly_enable(bool on) {
    enabled = on;
    cg_tape_after_forward = on ? cg_anomaly_after_forward : NULL; // the tape and the ops call back
    cg_tape_after_backward = on ? cg_anomaly_after_backward : NULL;
}
bool cg_anomaly_enabled(void) { return enabled; }

void cg_anomaly_reset(void) {
    found = false;
    report[0] = '\0';
}

bool cg_anomaly_report(char *buf, size_t size) {
    if (found) snprintf(buf, size, "%s", report);
    return found;
}

// Counts the NaN and infinite values of t (copied to the host). False for a dtype that has none.
static bool count_nonfinite(const cg_tensor *t, int64_t *nans, int64_t *infs) {
    *nans = *infs = 0;
    if (t == NULL || t->data == NULL || t->numel == 0) return false;
    if (t->dtype != CG_F32 && t->dtype != CG_F16 && t->dtype != CG_BF16) return false;
    size_t bytes = cg_tensor_bytes(t);
    void *host = cg_xmalloc(bytes);
    cg_tensor_copy_to_host(host, t, t->numel);
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == CG_F32) {
            float v = ((const float *)host)[i];
            if (isnan(v)) (*nans)++;
            else if (isinf(v)) (*infs)++;
        } else {
            // binary16: exponent 0x7C00, bfloat16: 0x7F80; all ones is inf (mantissa 0) or NaN.
            uint16_t h = ((const uint16_t *)host)[i];
            uint16_t exp = t->dtype == CG_F16 ? 0x7C00 : 0x7F80, man = t->dtype == CG_F16 ? 0x03FF : 0x007F;
            if ((h & exp) == exp) {
                if (h & man) (*nans)++;
                else (*infs)++;
            }
        }
    }
    free(host);
    return true;
}

static void remember(const char *what, const cg_node *node, int index, const char *which, const cg_tensor *t,
                     int64_t nans, int64_t infs) {
    char shape[96];
    snprintf(report, sizeof report, "%s of %s (op %d of the step): %s %s %s holds %lld NaN and %lld infinite values",
             what, cg_op_name(node->op), index, which, cg_shape_str(t, shape, sizeof shape), cg_dtype_name(t->dtype),
             (long long)nans, (long long)infs);
    found = true;
}

void cg_anomaly_after_forward(const cg_node *node, int index) {
    if (!enabled || found) return;
    int64_t nans, infs;
    if (count_nonfinite(node->out, &nans, &infs) && nans + infs > 0)
        remember("forward", node, index, "output", node->out, nans, infs);
}

void cg_anomaly_after_backward(const cg_node *node, int index) {
    if (!enabled || found) return;
    for (int i = 0; i < node->n_in; i++) {
        const cg_tensor *x = node->in[i];
        if (!x->requires_grad || x->grad == NULL) continue;
        int64_t nans, infs;
        if (count_nonfinite(x->grad, &nans, &infs) && nans + infs > 0) {
            char which[48];
            snprintf(which, sizeof which, "the gradient of input %d", i + 1);
            remember("backward", node, index, which, x->grad, nans, infs);
            return;
        }
    }
}

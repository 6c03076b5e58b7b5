// schedule.h: learning-rate schedules, computed on the host for each step from the step number
// alone (nothing to save but the step), with the formulas of bench/torch_train.py, the PyTorch
// twin (torch.optim.lr_scheduler): constant, step (StepLR by epochs), cosine (CosineAnnealingLR),
// linear (LinearLR from 1 to 0), onecycle (OneCycleLR), triangle (airbench's piecewise-linear
// schedule, a LambdaLR there), and a linear warm-up before any but onecycle. The optimizer reads the value from device memory (cg_optimizer_set_lr). Not
// momentum cycling, not restarts, not schedules that watch a metric (ReduceLROnPlateau).
#ifndef CG_SCHEDULE_H
#define CG_SCHEDULE_H

#include "core/common.h"

typedef enum {
    CG_SCHEDULE_CONSTANT = 0,
    CG_SCHEDULE_STEP,
    CG_SCHEDULE_COSINE,
    CG_SCHEDULE_LINEAR,
    CG_SCHEDULE_ONECYCLE,
    CG_SCHEDULE_TRIANGLE
} cg_schedule_kind;

typedef struct {
    cg_schedule_kind kind;
    double lr;              // the base (and, for onecycle, the peak) learning rate
    int64_t total_steps;    // T: steps of the whole run
    int64_t steps_per_epoch;
    double warmup_epochs;   // E: linear warm-up over W = round(E x steps_per_epoch) steps (not onecycle)
    double step_size;       // step: epochs between decays (default 30)
    double gamma;           // step: the factor of each decay (default 0.1)
    double min_lr;          // cosine: the rate it ends at (default 0)
    double tri_start, tri_peak, tri_end; // triangle: factor at step 0, where it reaches 1 (a fraction
                                         // of the steps), factor at the end (default 0.2, 0.23, 0.07:
                                         // airbench94's)
} cg_schedule;

// The defaults of a kind: step_size 30, gamma 0.1, min_lr 0, triangle 0.2 / 0.23 / 0.07, no warm-up.
cg_schedule cg_schedule_new(cg_schedule_kind kind, double lr, int64_t total_steps, int64_t steps_per_epoch);

// "constant", "step", "cosine", "linear", "onecycle" or "triangle" -> *out; CG_ERR_ARG naming the text otherwise.
cg_status cg_schedule_parse(const char *text, cg_schedule_kind *out);
const char *cg_schedule_name(cg_schedule_kind kind);

// W: the warm-up steps, round(warmup_epochs x steps_per_epoch) with ties to even as Python's
// round() (0 for onecycle).
int64_t cg_schedule_warmup_steps(const cg_schedule *s);

// The factor of lr at step t (0-based), bench/torch_train.py's lr_factor: with W warm-up steps,
// t < W gives (t + 1) / W; then, with u = t - W and U = max(1, T - W):
//   constant  1
//   step      gamma^floor(floor(u / steps_per_epoch) / step_size)
//   cosine    m + (1 - m) (1 + cos(pi u / U)) / 2, m = min_lr / lr
//   linear    1 - u / U
//   onecycle  OneCycleLR(max_lr = lr, total_steps = T), its defaults: pct_start 0.3, cosine
//             annealing, div_factor 25, final_div_factor 1e4: with e = 0.3 T - 1, from 1/25 up to 1
//             over t in [0, e], then down to 1/25/1e4 at t = T - 1, each part along
//             c(a, b, x) = b + (a - b) (1 + cos(pi x)) / 2
//   triangle  airbench's triangle(U, start, end, peak): with P = floor(peak U), linear from start at
//             u = 0 to 1 at u = P, then to end at u = U: u < P gives start + (1 - start) u / P, else
//             1 + (end - 1)(u - P) / max(1, U - P)
double cg_schedule_factor(const cg_schedule *s, int64_t t);
// lr x the factor.
double cg_schedule_lr(const cg_schedule *s, int64_t t);

#endif

// schedule.c: the learning-rate schedules of schedule.h, each one formula of the step number.
#include "core/train/schedule.h"

#include <math.h>
#include <string.h>

#define PI 3.14159265358979323846 // math.pi (M_PI is not C11)

static const char *const names[] = {"constant", "step", "cosine", "linear", "onecycle", "triangle"};

cg_schedule cg_schedule_new(cg_schedule_kind kind, double lr, int64_t total_steps, int64_t steps_per_epoch) {
    return (cg_schedule){.kind = kind, .lr = lr, .total_steps = total_steps, .steps_per_epoch = steps_per_epoch,
                         .warmup_epochs = 0.0, .step_size = 30.0, .gamma = 0.1, .min_lr = 0.0,
                         .tri_start = 0.2, .tri_peak = 0.23, .tri_end = 0.07};
}

cg_status cg_schedule_parse(const char *text, cg_schedule_kind *out) {
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (cg_schedule_kind)i;
            return cg_ok();
        }
    return cg_error(CG_ERR_ARG, "--lr-schedule: '%s' is not constant, step, cosine, linear, onecycle or triangle", text);
}

const char *cg_schedule_name(cg_schedule_kind kind) { return names[kind]; }

int64_t cg_schedule_warmup_steps(const cg_schedule *s) {
    if (s->kind == CG_SCHEDULE_ONECYCLE) return 0;
    return (int64_t)nearbyint(s->warmup_epochs * (double)s->steps_per_epoch); // ties to even, as Python's round
}

// OneCycleLR's annealing from a to b as x goes from 0 to 1 (torch.optim.lr_scheduler._annealing_cos).
static double annealing_cos(double a, double b, double x) { return b + (a - b) / 2.0 * (cos(PI * x) + 1.0); }

double cg_schedule_factor(const cg_schedule *s, int64_t t) {
    int64_t warm = cg_schedule_warmup_steps(s);
    if (t < warm) return (double)(t + 1) / (double)warm;
    double u = (double)(t - warm), U = (double)(s->total_steps - warm > 1 ? s->total_steps - warm : 1);
    switch (s->kind) {
    case CG_SCHEDULE_CONSTANT: return 1.0;
    case CG_SCHEDULE_STEP: {
        int64_t epoch = (t - warm) / (s->steps_per_epoch > 0 ? s->steps_per_epoch : 1);
        return pow(s->gamma, floor((double)epoch / s->step_size));
    }
    case CG_SCHEDULE_COSINE: {
        double m = s->min_lr / s->lr;
        return m + (1.0 - m) * 0.5 * (1.0 + cos(PI * u / U));
    }
    case CG_SCHEDULE_LINEAR: return 1.0 - u / U;
    case CG_SCHEDULE_TRIANGLE: {
        double steps = (double)(s->total_steps - warm > 0 ? s->total_steps - warm : 0);
        double peak = floor(s->tri_peak * steps); // Python's int() of a positive number
        if (u < peak) return s->tri_start + (1.0 - s->tri_start) * u / peak;
        return 1.0 + (s->tri_end - 1.0) * (u - peak) / (steps - peak > 1.0 ? steps - peak : 1.0);
    }
    case CG_SCHEDULE_ONECYCLE: {
        const double initial = 1.0 / 25.0, final = 1.0 / 25.0 / 1e4;
        double end1 = 0.3 * (double)s->total_steps - 1.0, last = (double)s->total_steps - 1.0;
        if ((double)t <= end1) return annealing_cos(initial, 1.0, (double)t / end1);
        double x = ((double)t - end1) / (last - end1); // last - end1 = 0.7 T > 0
        return annealing_cos(1.0, final, x > 1.0 ? 1.0 : x);
    }
    }
    return 1.0;
}

double cg_schedule_lr(const cg_schedule *s, int64_t t) { return s->lr * cg_schedule_factor(s, t); }

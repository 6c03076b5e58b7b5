// test_schedule.c: every learning-rate schedule of core/train/schedule.h at chosen steps against
// numbers written out here, computed from the formulas of bench/torch_train.py's lr_factor (which
// match torch.optim.lr_scheduler's OneCycleLR, CosineAnnealingLR, LinearLR and a per-epoch StepLR
// to 3e-16 at every step of these runs, torch 1.13); the warm-up's rounding (ties to even, as
// Python's round); and the parsing of --lr-schedule. Host arithmetic only.
#include "core/train/schedule.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *what;
    cg_schedule_kind kind;
    double warmup, min_lr; // warm-up epochs; cosine's floor (lr 0.1)
    int count;
    int64_t steps[6];
    double expected[6]; // the factor of lr at each step
} schedule_case;

// All over T = 50 steps, 10 per epoch (5 epochs), lr 0.1; step: step_size 2 epochs, gamma 0.1.
static const schedule_case cases[] = {
    // warm-up W = round(0.5 x 10) = 5 steps: (t + 1) / W, then 1
    {"constant, warmup 0.5", CG_SCHEDULE_CONSTANT, 0.5, 0.0, 4, {0, 4, 5, 49}, {0.2, 1, 1, 1}},
    // gamma^floor(floor(t / 10) / 2): epochs 0-1 at 1, 2-3 at 0.1, 4 at 0.01
    {"step", CG_SCHEDULE_STEP, 0.0, 0.0, 6, {0, 19, 20, 39, 40, 49}, {1, 1, 0.1, 0.1, 0.01, 0.01}},
    // W = 10, then the epochs count from the end of the warm-up: u = t - 10
    {"step, warmup 1", CG_SCHEDULE_STEP, 1.0, 0.0, 4, {9, 10, 29, 30}, {1, 1, 1, 0.1}},
    // m + (1 - m)(1 + cos(pi t / 50)) / 2, m = 0.001 / 0.1 = 0.01: t = 25 gives 0.505
    {"cosine, min_lr 0.001", CG_SCHEDULE_COSINE, 0.0, 0.001, 4, {0, 10, 25, 49},
     {1, 0.90546341221559901, 0.505, 0.010976769428005578}},
    // W = round(2.5) = 2 (ties to even); then (1 + cos(pi u / 48)) / 2, u = t - 2: u = 24 gives 0.5
    {"cosine, warmup 0.25", CG_SCHEDULE_COSINE, 0.25, 0.0, 5, {0, 1, 2, 26, 49},
     {0.5, 1, 1, 0.5, 0.0010705383806982605}},
    // 1 - t / 50
    {"linear", CG_SCHEDULE_LINEAR, 0.0, 0.0, 3, {0, 10, 49}, {1, 0.8, 0.02}},
    // W = 3: 1/3 at t = 0; then 1 - u / 47: u = 23 gives 24 / 47
    {"linear, warmup 0.3", CG_SCHEDULE_LINEAR, 0.3, 0.0, 4, {0, 2, 3, 26}, {1.0 / 3.0, 1, 1, 24.0 / 47.0}},
    // OneCycleLR: e = 0.3 x 50 - 1 = 14; up from 1/25 = 0.04 to 1 at t = 14 (t = 7: half way,
    // 0.52), then down to 0.04 / 1e4 = 4e-6 at t = 49 along the cosine (t = 15: 0.99798715504903157)
    {"onecycle", CG_SCHEDULE_ONECYCLE, 0.0, 0.0, 6, {0, 7, 14, 15, 30, 49},
     {0.04, 0.52, 1, 0.99798715504903157, 0.56711836444229613, 4e-6}},
};

static void test_values(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const schedule_case *c = &cases[i];
        cg_schedule s = cg_schedule_new(c->kind, 0.1, 50, 10);
        s.warmup_epochs = c->warmup;
        s.step_size = 2.0;
        s.gamma = 0.1;
        s.min_lr = c->min_lr;
        double worst = 0.0;
        for (int j = 0; j < c->count; j++) {
            double got = cg_schedule_factor(&s, c->steps[j]), err = fabs(got - c->expected[j]);
            worst = err > worst ? err : worst;
            if (!(err <= 1e-12))
                fail(c->what, "step %lld: factor %.17g, expected %.17g", (long long)c->steps[j], got, c->expected[j]);
            double lr = cg_schedule_lr(&s, c->steps[j]);
            if (!(fabs(lr - 0.1 * c->expected[j]) <= 1e-13))
                fail(c->what, "step %lld: lr %.17g, expected %.17g", (long long)c->steps[j], lr, 0.1 * c->expected[j]);
        }
        printf("%-22s %d steps checked, max error %.3g\n", c->what, c->count, worst);
    }
}

// Warm-up steps: round(E x steps per epoch), ties to even; none with onecycle.
static void test_warmup_rounding(void) {
    static const struct {
        double epochs;
        int64_t steps_per_epoch, expected;
    } rows[] = {{0.25, 10, 2}, {0.35, 10, 4}, {0.5, 3, 2}, {1.5, 3, 4}, {0.5, 5, 2}, {2.0, 7, 14}, {0.0, 9, 0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cg_schedule s = cg_schedule_new(CG_SCHEDULE_COSINE, 1.0, 100, rows[i].steps_per_epoch);
        s.warmup_epochs = rows[i].epochs;
        int64_t got = cg_schedule_warmup_steps(&s);
        if (got != rows[i].expected)
            fail("warm-up steps", "%g epochs of %lld steps: %lld, expected %lld (Python's round)", rows[i].epochs,
                 (long long)rows[i].steps_per_epoch, (long long)got, (long long)rows[i].expected);
    }
    cg_schedule s = cg_schedule_new(CG_SCHEDULE_ONECYCLE, 1.0, 100, 10);
    s.warmup_epochs = 3.0;
    if (cg_schedule_warmup_steps(&s) != 0) fail("warm-up steps", "onecycle has none of its own");
    // The warm-up's last step reaches lr exactly, and the schedule starts from its own step 0.
    cg_schedule c = cg_schedule_new(CG_SCHEDULE_LINEAR, 0.5, 40, 8);
    c.warmup_epochs = 1.0;
    if (cg_schedule_lr(&c, 7) != 0.5 || cg_schedule_lr(&c, 8) != 0.5 || cg_schedule_lr(&c, 0) != 0.5 / 8)
        fail("warm-up", "linear after 8 warm-up steps: %g %g %g", cg_schedule_lr(&c, 0), cg_schedule_lr(&c, 7),
             cg_schedule_lr(&c, 8));
}

static void test_parse(void) {
    static const char *names[] = {"constant", "step", "cosine", "linear", "onecycle", "triangle"};
    for (int i = 0; i < 6; i++) {
        cg_schedule_kind k;
        cg_status s = cg_schedule_parse(names[i], &k);
        if (s.code != CG_OK || (int)k != i || strcmp(cg_schedule_name(k), names[i]) != 0)
            fail("parse", "'%s': %s", names[i], s.message);
    }
    cg_schedule_kind k;
    cg_status s = cg_schedule_parse("cosine_annealing", &k);
    if (s.code != CG_ERR_ARG || strstr(s.message, "--lr-schedule") == NULL || strstr(s.message, "cosine_annealing") == NULL)
        fail("parse", "a bad name: code %d, '%s'", s.code, s.message);
}

// airbench94's triangle over its 476 steps (48 per epoch x 9.9, rounded up): 0.2 at step 0, 1 at
// int(0.23 x 476) = 109, 0.07 at 476; linear in between (airbench 0.1.8's utils.triangle).
static void test_triangle(void) {
    cg_schedule s = cg_schedule_new(CG_SCHEDULE_TRIANGLE, 2.0, 476, 48);
    struct { int64_t t; double factor; } cases[] = {{0, 0.2},
                                                    {54, 0.2 + 0.8 * 54.0 / 109.0},
                                                    {109, 1.0},
                                                    {300, 1.0 - 0.93 * 191.0 / 367.0},
                                                    {475, 1.0 - 0.93 * 366.0 / 367.0},
                                                    {476, 0.07}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = cg_schedule_factor(&s, cases[i].t);
        if (fabs(got - cases[i].factor) > 1e-12)
            fail("triangle", "step %lld: factor %.12g, expected %.12g", (long long)cases[i].t, got, cases[i].factor);
    }
    if (fabs(cg_schedule_lr(&s, 109) - 2.0) > 1e-12) fail("triangle", "lr at the peak %g", cg_schedule_lr(&s, 109));
}

int main(void) {
    test_values();
    test_triangle();
    test_warmup_rounding();
    test_parse();
    return check_summary("test_schedule");
}

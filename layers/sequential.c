// sequential.c: a list of modules run in order.
#include "sequential.h"

#include <stdlib.h>

static cg_tensor *sequential_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) x = cg_module_forward(s->children[i], t, x);
    return x;
}

static void sequential_free(cg_module *m) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) cg_module_free(s->children[i]);
    free(s);
}

cg_module *cg_sequential_new(void) {
    cg_sequential *s = cg_xcalloc(1, sizeof *s);
    s->base = (cg_module){.kind = "Sequential", .forward = sequential_forward, .free = sequential_free,
                          .training = true};
    return &s->base;
}

void cg_sequential_add(cg_module *seq, cg_module *child) {
    cg_sequential *s = (cg_sequential *)seq;
    CG_CHECK(s->count < CG_SEQUENTIAL_MAX, "a Sequential holds at most %d modules", CG_SEQUENTIAL_MAX);
    s->children[s->count++] = child;
}

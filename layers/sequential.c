// sequential.c: a list of modules run in order; the runs that the fusion pass (layers/fusion.c)
// recognises run as one op, unless fusion is turned off.
#include "layers/sequential.h"
#include "layers/fusion.h"

#include <stdlib.h>

static cg_tensor *sequential_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) {
        int used = 0;
        cg_tensor *y = s->fuse ? cg_fusion_forward(s->children + i, s->count - i, t, x, &used) : NULL;
        if (y) { // children i .. i + used - 1 ran as one op
            x = y;
            i += used - 1;
            continue;
        }
        x = cg_module_forward(s->children[i], t, x);
    }
    return x;
}

static void sequential_set_children_training(cg_module *m, bool training) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) cg_module_set_training(s->children[i], training);
}

static void sequential_set_fusion(cg_module *m, bool fuse) {
    cg_sequential *s = (cg_sequential *)m;
    s->fuse = fuse;
    for (int i = 0; i < s->count; i++) cg_module_set_fusion(s->children[i], fuse);
}

static void sequential_free(cg_module *m) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) cg_module_free(s->children[i]);
    free(s);
}

const cg_module_type cg_sequential_type = {.name = "Sequential", .forward = sequential_forward,
                                           .set_children_training = sequential_set_children_training,
                                           .set_fusion = sequential_set_fusion, .free = sequential_free};

cg_module *cg_sequential_new(void) {
    cg_sequential *s = cg_xcalloc(1, sizeof *s);
    s->base = cg_module_base(&cg_sequential_type);
    s->fuse = true;
    return &s->base;
}

void cg_sequential_set_fusion(cg_module *seq, bool fuse) { cg_module_set_fusion(seq, fuse); }

void cg_sequential_add(cg_module *seq, cg_module *child) {
    cg_sequential *s = (cg_sequential *)seq;
    CG_CHECK(s->count < CG_SEQUENTIAL_MAX, "a Sequential holds at most %d modules", CG_SEQUENTIAL_MAX);
    s->children[s->count++] = child;
}

// sequential.c: a list of modules run in order, with Conv2d, ReLU, MaxPool2d(2) run as one
// fused op unless fusion is turned off.
#include "layers/sequential.h"
#include "layers/conv.h"

#include <stdlib.h>

static cg_tensor *sequential_forward(cg_module *m, cg_tape *t, cg_tensor *x) {
    cg_sequential *s = (cg_sequential *)m;
    for (int i = 0; i < s->count; i++) {
        cg_tensor *y = s->fuse ? cg_conv_relu_pool_forward(s->children + i, s->count - i, t, x) : NULL;
        if (y) { // children i, i+1, i+2 ran as one op
            x = y;
            i += 2;
            continue;
        }
        x = cg_module_forward(s->children[i], t, x);
    }
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
    s->fuse = true;
    return &s->base;
}

void cg_sequential_set_fusion(cg_module *seq, bool fuse) { ((cg_sequential *)seq)->fuse = fuse; }

void cg_sequential_add(cg_module *seq, cg_module *child) {
    cg_sequential *s = (cg_sequential *)seq;
    CG_CHECK(s->count < CG_SEQUENTIAL_MAX, "a Sequential holds at most %d modules", CG_SEQUENTIAL_MAX);
    s->children[s->count++] = child;
}

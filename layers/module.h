// module.h: what every layer is: a forward function over a tape, plus a name and a mode.
// Parameters are not held here: a layer adds them to the model's cg_params block when it is made,
// keeps pointers to them, and the optimizer sees the block as a whole.
#ifndef CG_MODULE_H
#define CG_MODULE_H

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct cg_module cg_module;

struct cg_module {
    const char *kind;                                                // "Linear", "ReLU", ...
    cg_tensor *(*forward)(cg_module *m, cg_tape *t, cg_tensor *x);   // the layer's computation
    void (*free)(cg_module *m);                                      // releases the module itself
    bool training;                                                   // train (true) or eval mode
};

// y = m->forward(m, t, x)
cg_tensor *cg_module_forward(cg_module *m, cg_tape *t, cg_tensor *x);
// Train or evaluation mode for m and, in a Sequential, every child (matters for dropout and
// batch norm; the layers of this file behave the same in both).
void cg_module_set_training(cg_module *m, bool training);
void cg_module_free(cg_module *m);

#endif

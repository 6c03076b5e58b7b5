// module.h: what every layer is: a forward function over a tape, plus a name and a mode.
// Parameters are not held here: a layer adds them to the model's cg_params block when it is made,
// keeps pointers to them, and the optimizer sees the block as a whole.
#ifndef CG_MODULE_H
#define CG_MODULE_H

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct cg_module cg_module;

// What every module of one kind shares: its name and its methods (one constant per kind, e.g.
// cg_conv2d_type in layers/conv.c). Code that must know a module's kind compares this pointer
// (cg_module_is), never a string.
typedef struct {
    const char *name;                                              // PyTorch's class name: "Linear", "ReLU", ...
    cg_tensor *(*forward)(cg_module *m, cg_tape *t, cg_tensor *x); // the layer's computation
    void (*set_children_training)(cg_module *m, bool training);    // a container's children; NULL for a leaf
    void (*set_fusion)(cg_module *m, bool fuse); // runs of ops as one fused op (on by default) in it and its
                                                 // children; NULL for a module without any
    void (*free)(cg_module *m);                                    // releases the module (and its children)
} cg_module_type;

struct cg_module {
    const cg_module_type *type;
    bool training; // train (true) or eval mode
};

// Whether m is a module of that kind.
static inline bool cg_module_is(const cg_module *m, const cg_module_type *type) { return m->type == type; }
// A module of that kind in training mode, with nothing else set: m->base of a layer's struct.
static inline cg_module cg_module_base(const cg_module_type *type) { return (cg_module){.type = type, .training = true}; }

// y = m->forward(m, t, x)
cg_tensor *cg_module_forward(cg_module *m, cg_tape *t, cg_tensor *x);
// Train or evaluation mode for m and, in a Sequential, every child (matters for dropout and
// batch norm; the layers of this file behave the same in both).
void cg_module_set_training(cg_module *m, bool training);
// Fused ops on (the default) or off in m and every module inside it (layers/fusion.h: the same
// results with less memory traffic; under autocast a fused batch norm and activation round once
// fewer). Off, every op of the model runs on its own, as the course writes it.
void cg_module_set_fusion(cg_module *m, bool fuse);
void cg_module_free(cg_module *m);

#endif

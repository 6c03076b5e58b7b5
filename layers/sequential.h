// sequential.h: modules applied one after another, as torch.nn.Sequential.
#ifndef CG_SEQUENTIAL_H
#define CG_SEQUENTIAL_H

#include "layers/module.h"

#define CG_SEQUENTIAL_MAX 64

typedef struct {
    cg_module base;
    int count;
    cg_module *children[CG_SEQUENTIAL_MAX];
    bool fuse; // run the patterns of layers/fusion.c as one op each; default true
} cg_sequential;

// The kind of a Sequential (layers/module.h).
extern const cg_module_type cg_sequential_type;

cg_module *cg_sequential_new(void);
// Fusion on (the default) or off. The results are the same either way; off runs every child
// as its own op, as a student would write it, e.g. to compare the two.
void cg_sequential_set_fusion(cg_module *seq, bool fuse);
// Append a child; the Sequential frees it.
void cg_sequential_add(cg_module *seq, cg_module *child);

#endif

// sequential.h: modules applied one after another, as torch.nn.Sequential.
#ifndef CG_SEQUENTIAL_H
#define CG_SEQUENTIAL_H

#include "module.h"

#define CG_SEQUENTIAL_MAX 64

typedef struct {
    cg_module base;
    int count;
    cg_module *children[CG_SEQUENTIAL_MAX];
} cg_sequential;

cg_module *cg_sequential_new(void);
// Append a child; the Sequential frees it.
void cg_sequential_add(cg_module *seq, cg_module *child);

#endif

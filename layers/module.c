// module.c: calling, switching mode and freeing any module.
#include "layers/module.h"
#include "layers/sequential.h"

#include <string.h>

cg_tensor *cg_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) { return m->forward(m, t, x); }

void cg_module_set_training(cg_module *m, bool training) {
    m->training = training;
    if (strcmp(m->kind, "Sequential") == 0) {
        cg_sequential *s = (cg_sequential *)m;
        for (int i = 0; i < s->count; i++) cg_module_set_training(s->children[i], training);
    }
}

void cg_module_free(cg_module *m) {
    if (m) m->free(m);
}

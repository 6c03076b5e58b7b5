// module.c: calling, switching mode and freeing any module, through its type.
#include "layers/module.h"


cg_tensor *cg_module_forward(cg_module *m, cg_tape *t, cg_tensor *x) { return m->type->forward(m, t, x); }

void cg_module_set_training(cg_module *m, bool training) {
    m->training = training;
    if (m->type->set_children_training) m->type->set_children_training(m, training);
}

void cg_module_set_fusion(cg_module *m, bool fuse) {
    if (m->type->set_fusion) m->type->set_fusion(m, fuse);
}

void cg_module_free(cg_module *m) {
    if (m) m->type->free(m);
}

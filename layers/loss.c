// loss.c: dispatch from a criterion to its op.
#include "layers/loss.h"

cg_tensor *cg_loss(cg_loss_kind kind, cg_tape *t, cg_tensor *output, cg_tensor *target) {
    switch (kind) {
    case CG_LOSS_BCE: return cg_bce(t, output, target);
    case CG_LOSS_CROSS_ENTROPY: return cg_cross_entropy(t, output, target);
    }
    CG_CHECK(0, "unknown loss %d", (int)kind);
}

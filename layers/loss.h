// loss.h: the criteria a training loop picks from, as torch.nn.BCELoss and CrossEntropyLoss.
// The arithmetic is the ops cg_bce and cg_cross_entropy (core/ops.h); this adds the choice.
#ifndef CG_LOSS_H
#define CG_LOSS_H

#include "core/ops.h"

typedef enum {
    CG_LOSS_BCE,           // output: probabilities (N, 1) or (N,); target: f32 0/1 (N,)
    CG_LOSS_CROSS_ENTROPY, // output: logits (N, K); target: i32 class indices (N,)
} cg_loss_kind;

// The mean loss over the batch -> () f32.
cg_tensor *cg_loss(cg_loss_kind kind, cg_tape *t, cg_tensor *output, cg_tensor *target);

#endif

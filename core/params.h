// params.h: the persistent parameter block. Every parameter of a model is a slice of one flat
// F32 array, and every gradient a slice of a second one (pointers into the block, as llm.c does),
// so that zero_grad is one memset, an optimizer step is one kernel over the whole array and a
// checkpoint is one contiguous write. Not for activations: those live in the tape's arena.
#ifndef CG_PARAMS_H
#define CG_PARAMS_H

#include "core/tensor.h"

#define CG_PARAM_ALIGN 16 // floats (64 bytes): each parameter starts on a 64-byte boundary

typedef struct cg_params {
    cg_device device;
    int count;            // parameters
    int capacity;         // room in `tensors`
    cg_tensor **tensors;  // each parameter, data inside `values`, grad->data inside `grads`
    int64_t *offsets;     // float offset of each parameter in the block
    int64_t numel;        // floats in use, with padding (padding stays zero)
    int64_t block_floats; // floats allocated
    float *values;        // device array of block_floats
    float *grads;         // device array of block_floats
} cg_params;

cg_params *cg_params_new(cg_device device);
void cg_params_free(cg_params *p);

// Add a zero-initialised F32 parameter with requires_grad set and a zeroed gradient.
// name: copied, e.g. "fc1.weight" (PyTorch's state_dict key). The block may move when it grows,
// so add every parameter before creating an optimizer; tensor pointers stay valid.
cg_tensor *cg_params_add(cg_params *p, const char *name, int ndim, const int64_t *shape);

// Set every gradient to zero (one memset over the gradient block).
void cg_params_zero_grad(cg_params *p);
// Number of parameters in the model (without padding).
int64_t cg_params_count(const cg_params *p);
// The parameter called name, or NULL.
cg_tensor *cg_params_find(const cg_params *p, const char *name);

#endif

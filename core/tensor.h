// tensor.h: the one data structure of cgrad: a contiguous, row-major array of at most 4 dims
// with a dtype and a device. No strides and no views except reshape, which shares the data.
// Activations are NCHW, but for one exception, channels_last (PyTorch's torch.channels_last): a
// 4-D tensor whose shape reads (N, C, H, W) while its values are stored (N, H, W, C), as the
// GPU's Tensor Core convolutions read and write them (core/ops.h says which ops take it). A tensor made here owns its memory; tensors made by a tape live in the
// tape's arena, and parameters live in a cg_params block (see arena.h, params.h).
#ifndef CG_TENSOR_H
#define CG_TENSOR_H

#include "core/common.h"
#include "core/device.h"
#include "core/dtype.h"

#define CG_MAX_DIMS 4

typedef struct cg_tensor {
    int ndim;                   // 0 (a scalar) to CG_MAX_DIMS
    int64_t shape[CG_MAX_DIMS]; // shape[0] is the outermost (slowest) dimension
    int64_t numel;              // product of shape
    cg_dtype dtype;
    cg_device device;
    void *data;                 // numel * cg_dtype_size(dtype) bytes on `device`
    struct cg_tensor *grad;     // same shape and dtype (a parameter's: F32); NULL until backward reaches it
    struct cg_tensor *low;      // a parameter's 16-bit copy under mixed precision (core/amp.h), or NULL
    bool requires_grad;         // parameters, and anything computed from them on a tape
    bool owns_data;             // cg_tensor_free releases data (cg_tensor_new only)
    bool channels_last;         // 4-D, H W > 1: stored (N, H, W, C); a gradient is stored as its tensor
    const char *name;           // parameter name ("fc1.weight") or NULL
} cg_tensor;

// New tensor of the given shape, owning uninitialised memory on `device`.
// shape: ndim values, each >= 1. Free with cg_tensor_free.
cg_tensor *cg_tensor_new(cg_device device, cg_dtype dtype, int ndim, const int64_t *shape);
// Free a tensor made by cg_tensor_new or cg_tensor_reshape (its data only if it owns it).
void cg_tensor_free(cg_tensor *t);

// Fill every element with value (F32 and I32 tensors; value converted to the dtype).
void cg_tensor_fill(cg_tensor *t, float value);
// Copy src into dst: same numel and dtype, any devices.
void cg_tensor_copy(cg_tensor *dst, const cg_tensor *src);
// Copy bytes from / to host memory; `count` elements, at most numel.
void cg_tensor_copy_from_host(cg_tensor *t, const void *host, int64_t count);
void cg_tensor_copy_to_host(void *host, const cg_tensor *t, int64_t count);
// A new tensor header over the same data with another shape of the same numel.
// Free the header with cg_tensor_free; the data stays with t.
cg_tensor *cg_tensor_reshape(cg_tensor *t, int ndim, const int64_t *shape);
// A new header over the first `rows` entries of t's first dimension (a shorter batch over
// the same memory). Free the header with cg_tensor_free; the data stays with t.
cg_tensor *cg_tensor_first_rows(cg_tensor *t, int64_t rows);
// Print "name (2, 3) f32 cpu" and up to `max_values` values (copied to the host if needed).
void cg_tensor_print(const cg_tensor *t, const char *label, int max_values);
// One F32 value, read back to the host (synchronises with the device).
float cg_tensor_item(const cg_tensor *t);

// Fill in ndim, shape and numel of a header (used by the arena and the parameter block).
void cg_tensor_set_shape(cg_tensor *t, int ndim, const int64_t *shape);
// "(32, 20)" into buf.
const char *cg_shape_str(const cg_tensor *t, char *buf, size_t size);
bool cg_same_shape(const cg_tensor *a, const cg_tensor *b);
size_t cg_tensor_bytes(const cg_tensor *t);

#endif

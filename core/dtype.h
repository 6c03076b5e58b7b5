// dtype.h: the element types a tensor can hold, their sizes and names.
// F32 and I32 have every kernel; F16 and BF16 those of mixed precision (core/amp.h: casts,
// products, convolutions, ReLU, max pooling); I8 (quantized inference) and U8 (raw images) are
// listed so that files and headers can name them already.
#ifndef CG_DTYPE_H
#define CG_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" { // these headers are also read by the CUDA (C++) files
#endif

typedef enum {
    CG_F32 = 0, // IEEE-754 binary32
    CG_F16,     // IEEE-754 binary16 (1 sign, 5 exponent, 10 mantissa bits)
    CG_BF16,    // bfloat16 (1 sign, 8 exponent, 7 mantissa bits)
    CG_I32,     // labels, int32 accumulators
    CG_I8,      // quantized weights and activations
    CG_U8,      // raw image bytes
    CG_NUM_DTYPES
} cg_dtype;

// Bytes per element.
size_t cg_dtype_size(cg_dtype t);
// "f32", "f16", "bf16", "i32", "i8", "u8".
const char *cg_dtype_name(cg_dtype t);

#ifdef __cplusplus
}
#endif

#endif

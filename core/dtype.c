// dtype.c: element sizes and names.
#include "core/dtype.h"
#include "core/common.h"

size_t cg_dtype_size(cg_dtype t) {
    switch (t) {
    case CG_F32: return 4;
    case CG_F16: return 2;
    case CG_BF16: return 2;
    case CG_I32: return 4;
    case CG_I8: return 1;
    case CG_U8: return 1;
    default: break;
    }
    CG_CHECK(0, "unknown dtype %d", (int)t);
}

const char *cg_dtype_name(cg_dtype t) {
    static const char *names[CG_NUM_DTYPES] = {"f32", "f16", "bf16", "i32", "i8", "u8"};
    CG_CHECK(t >= 0 && t < CG_NUM_DTYPES, "unknown dtype %d", (int)t);
    return names[t];
}

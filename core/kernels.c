// kernels.c: the one lookup from a device to its kernel table (core/kernels.h). The CPU's table
// is built in kernels/cpu; the GPU's comes from the CUDA plugin, loaded when first asked for.
#include "core/kernels.h"

const cg_kernels *cg_kernels_for(cg_device device) {
    if (device.type == CG_CPU) return cg_cpu_kernels();
    const cg_kernels *k = cg_cuda_kernels();
    CG_CHECK(k != NULL, "no kernels for cuda:%d: cgrad was built without CUDA", device.index);
    return k;
}

// qkernels.c: which table of int8 inference kernels (qkernels.h) serves a device. The GPU's
// comes from the CUDA plugin (device_backend.h: cg_cuda_backend.quant); no CUDA header here.
#include "core/quant/qkernels.h"
#include "core/device_backend.h"

const cg_qkernels *cg_qkernels_for(cg_device device) {
    if (device.type == CG_CPU) return &cg_cpu_qkernels;
    const cg_qkernels *k = cg_cuda_backend_loaded()->quant();
    CG_CHECK(k != NULL, "no int8 kernels for cuda:%d", device.index);
    return k;
}

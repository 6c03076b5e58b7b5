// kernels.c: the one lookup from a device to its kernel table (core/kernels.h). Core never calls
// into kernels/: each device's kernels hand their table over. The CPU's table is built in
// kernels/cpu/table.c and installed here before main() runs; the GPU's comes from the CUDA plugin,
// loaded when first asked for (core/cuda_plugin.c).
#include "core/kernels.h"
#include "core/device_backend.h"

static const cg_kernels *cpu_table; // set once, before main(), by kernels/cpu/table.c

void cg_kernels_install_cpu(const cg_kernels *table) { cpu_table = table; }

const cg_kernels *cg_cpu_kernels(void) {
    CG_CHECK(cpu_table != NULL, "no CPU kernels: kernels/cpu/table.c was not linked in (CMakeLists.txt keeps it "
                                "with -u cg_cpu_kernels_install)");
    return cpu_table;
}

const cg_kernels *cg_cuda_kernels(void) {
    char reason[512];
    const cg_cuda_backend *b = cg_cuda_backend_get(reason, sizeof reason);
    return b ? b->kernels() : NULL;
}

const cg_kernels *cg_kernels_for(cg_device device) {
    if (device.type == CG_CPU) return cg_cpu_kernels();
    const cg_kernels *k = cg_cuda_kernels();
    CG_CHECK(k != NULL, "no kernels for cuda:%d: cgrad was built without CUDA", device.index);
    return k;
}

// table.c: the CPU's kernel table (core/kernels.h), built from the rows each kernel file fills
// (elementwise.c, gemm.c, ...) and handed to core before main() runs. Every entry is filled: the
// CPU is the reference every other device is tested against.
#include "kernels/cpu/cpu.h"

static cg_kernels table;

// A constructor (GCC and Clang run it before main()) so that core never calls into kernels/: the
// CPU's kernels install their table as the CUDA plugin hands over the GPU's. Nothing calls this
// function by name, so a static library would leave this file out of a program: CMakeLists.txt
// links it into every program that uses cgrad (-u cg_cpu_kernels_install). Filling the rows only
// stores function addresses: no CPU feature is probed here.
__attribute__((constructor)) void cg_cpu_kernels_install(void) {
    elementwise_register_cpu(&table);
    gemm_register_cpu(&table);
    conv_register_cpu(&table);
    norm_register_cpu(&table);
    rng_register_cpu(&table);
    loss_register_cpu(&table);
    gather_register_cpu(&table);
    optim_register_cpu(&table);
    amp_register_cpu(&table);
    conv_pool_h_register_cpu(&table);
    table.device_name = "cpu";
    cg_kernels_install_cpu(&table);
}

// table.c: the CPU's kernel table (core/kernels.h), built from the rows each kernel file fills
// (elementwise.c, gemm.c, ...) and handed to core before main() runs. Every entry is filled: the
// CPU is the reference every other device is tested against.
#include "kernels/cpu/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static cg_kernels table;

// A constructor (GCC and Clang run it before main()) so that core never calls into kernels/: the
// CPU's kernels install their table as the CUDA plugin hands over the GPU's. Nothing calls this
// function by name, so a static library would leave this file out of a program: CMakeLists.txt
// links it into every program that uses cgrad (-u cg_cpu_kernels_install). Filling the rows only
// stores function addresses: no CPU feature is probed here.
//
// It also makes the CPU flush denormal floats (below 1.2e-38 in magnitude) to zero, in results
// (FTZ) and in operands (DAZ): on x86 an operation that meets one takes a slow microcode path of
// about a hundred cycles. As training goes on, more and more small gradients and products land
// there: the tutorial CNN's epochs grew slower one after another (3,542, 3,037, 2,854, 2,741
// images/s on one thread of a Xeon with AVX-512, 2026-12-05) and ran at an even pace with the
// flush (3,249, 3,258, 3,156 in epochs 2 to 4), with the same losses and accuracies to the digits
// printed. The setting belongs to each thread; set here, before main() and before OpenMP starts its
// threads, it is copied into every thread the program starts. (TensorFlow flushes denormals the
// same way; PyTorch offers torch.set_flush_denormal.)
__attribute__((constructor)) void cg_cpu_kernels_install(void) {
#if defined(__x86_64__) || defined(__i386__)
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
    elementwise_register_cpu(&table);
    gemm_register_cpu(&table);
    conv_register_cpu(&table);
    pool_register_cpu(&table);
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

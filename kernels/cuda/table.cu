// table.cu: the GPU's kernel table (core/kernels.h), built once on first use (the plugin is
// loaded and used from one thread) from the rows each kernel file fills.
#include "kernels/cuda/cuda.h"

static cg_kernels table;

extern "C" const cg_kernels *cg_cuda_kernel_table(void) {
    if (table.device_name == NULL) {
        elementwise_register_cuda(&table);
        gemm_register_cuda(&table);
        conv_register_cuda(&table);
        norm_register_cuda(&table);
        rng_register_cuda(&table);
        loss_register_cuda(&table);
        gather_register_cuda(&table);
        optim_register_cuda(&table);
        amp_register_cuda(&table);
        conv16_register_cuda(&table);
        table.device_name = "cuda";
    }
    return &table;
}

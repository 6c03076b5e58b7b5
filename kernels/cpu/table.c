// table.c: the CPU's kernel table (core/kernels.h), built once on first use from the rows each
// kernel file fills (elementwise.c, gemm.c, ...). Every entry is filled: the CPU is the
// reference every other device is tested against.
#include "kernels/cpu/cpu.h"

#include <pthread.h>

static cg_kernels table;
static pthread_once_t table_built = PTHREAD_ONCE_INIT;

static void build_table(void) {
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
}

const cg_kernels *cg_cpu_kernels(void) {
    pthread_once(&table_built, build_table);
    return &table;
}

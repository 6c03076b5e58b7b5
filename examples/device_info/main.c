// device_info: the course's torch.cuda tour (chapter 2, section V) in C: is a GPU available,
// its name and properties, and the caching allocator's memory figures after creating a tensor,
// after freeing it and after empty_cache. On a machine without a GPU it describes the CPU and
// says why no GPU can be used.
#include "cgrad.h"
#include "examples/common/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: device_info [--device cuda|cuda:N] [--help]\n"
               "Print the CPU and GPU cgrad can use, and the GPU allocator's memory figures.\n");
}

static double mib(size_t bytes) { return bytes / 1048576.0; }

static void print_memory(const char *when, cg_device dev) {
    cg_memory_stats s = cg_device_memory_stats(dev);
    printf("  %-34s allocated %8.2f MiB   reserved %8.2f MiB   peak %8.2f MiB\n", when, mib(s.allocated),
           mib(s.reserved), mib(s.peak_allocated));
}

int main(int argc, char **argv) {
    const char *device_text = "cuda";
    static const struct option longopts[] = {
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 'd') device_text = optarg;
        else if (c == 'h') return usage(stdout), 0;
        else return cg_cli_fail("device_info", cg_cli_option_error(c, argv));
    }
    if (optind < argc) return cg_cli_fail("device_info", cg_cli_no_operands(argc, argv));
    // A misspelt device is a usage error; "no GPU here" is an answer (below). The CPU is not a GPU.
    cg_device dev;
    cg_status s = cg_device_parse(device_text, &dev);
    if (s.code == CG_ERR_ARG) return cg_cli_fail("device_info", cg_error(CG_ERR_ARG, "--device: %s", s.message));
    if (s.code == CG_OK && dev.type == CG_CPU)
        return cg_cli_fail("device_info", cg_error(CG_ERR_ARG, "--device: 'cpu' is not a GPU: give cuda or cuda:N "
                                                               "(the CPU is described without it)"));

    cg_device_info info;
    cg_device_get_info(cg_cpu(), &info);
    printf("CPU: %s, %d OpenMP threads\n", info.name, info.multiprocessors);
    printf("CUDA backend built: %s\n", cg_cuda_built() ? "yes" : "no");

    printf("torch.cuda.is_available() -> %s\n", s.code == CG_OK ? "True" : "False");
    if (s.code != CG_OK) {
        printf("no GPU: %s\n", s.message);
        return 0; // describing a machine without a GPU is a success
    }
    s = cg_device_get_info(dev, &info);
    if (s.code != CG_OK) return cg_cli_fail("device_info", s);
    printf("torch.cuda.get_device_name(%d) -> %s\n", dev.index, info.name);
    printf("  compute capability      %d.%d\n", info.compute_major, info.compute_minor);
    printf("  multiprocessors (SMs)   %d x %d FP32 cores = %d cores\n", info.multiprocessors,
           info.cores_per_multiprocessor, info.multiprocessors * info.cores_per_multiprocessor);
    printf("  boost clock             %.3f GHz\n", info.clock_ghz);
    printf("  FP32 peak               %d cores x %.3f GHz x 2 = %.1f TFLOPS\n",
           info.multiprocessors * info.cores_per_multiprocessor, info.clock_ghz, info.peak_fp32_tflops);
    printf("  memory                  %.0f MiB total, %.0f MiB free\n", mib(info.memory_total), mib(info.memory_free));
    printf("  driver / runtime        %d.%d / %d.%d, cuBLAS %d\n", info.driver_version / 1000,
           info.driver_version % 1000 / 10, info.runtime_version / 1000, info.runtime_version % 1000 / 10,
           info.cublas_version);

    printf("memory (torch.cuda.memory_allocated / memory_reserved / max_memory_allocated):\n");
    print_memory("at start", dev);
    cg_tensor *t = cg_tensor_new(dev, CG_F32, 2, (int64_t[]){4096, 4096}); // 64 MiB
    cg_tensor_fill(t, 1.0f);
    print_memory("after a 4096 x 4096 f32 tensor", dev);
    cg_tensor_free(t);
    print_memory("after freeing it (cached)", dev);
    cg_device_empty_cache(dev);
    print_memory("after empty_cache", dev);
    return 0;
}

// allreduce.c: the bandwidth of the all-reduce that data-parallel training runs on its gradient
// block, measured the way nccl-tests' all_reduce_perf reports it (NVIDIA/nccl-tests, doc/PERFORMANCE.md):
// algbw = bytes / time, and the bus bandwidth busbw = algbw x 2 (n - 1) / n for n ranks, the rate
// each link must carry in a ring all-reduce (every rank sends and receives 2 (n - 1) / n of the
// buffer), comparable with the hardware's link speed whatever n is. Sizes from --min-bytes to
// --max-bytes, doubling, plus the size of the tutorial CNN's gradient block (marked "<- grads").
// Figures to read, not a test. Run under the launcher, one rank per GPU or N ranks on CPUs:
//   mpirun -np 2 build/bench_allreduce [--device cpu|cuda] [--iters N] [--min-bytes B] [--max-bytes B]
//                                      [--threads N]
// The reduction is cgrad's own (cg_dist_allreduce: NCCL's average on GPUs, MPI's sum and a scale on
// CPUs) on the run's device; the time is the mean over the ranks of the mean over --iters calls.
#include "cgrad.h"
#include "examples/common/cli.h"
#include "examples/common/models.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mpirun -np N bench_allreduce [options]\n"
               "All-reduce bandwidth (nccl-tests' algbw and busbw) from --min-bytes to --max-bytes and at the\n"
               "size of the tutorial CNN's gradient block.\n\n"
               "  --device DEV       cpu (MPI) or cuda (NCCL; cuda takes the local rank's GPU) (default cpu)\n"
               "  --iters N          timed all-reduces per size (default 20, after 5 untimed)\n"
               "  --min-bytes B      smallest size (default 4096)\n"
               "  --max-bytes B      largest size (default 67108864 = 64 MiB)\n"
               "  --threads N        CPU threads per rank for the CPU's averaging pass (default: OpenMP's\n"
               "                     choice; 1 when the ranks share few cores)\n"
               "  --help             this text\n");
}

// Mean seconds of one all-reduce of n floats at buf, over `iters` calls (after 5 untimed), averaged
// over the ranks.
static double time_allreduce(cg_dist *d, cg_device dev, float *buf, int64_t n, long iters) {
    for (int i = 0; i < 5; i++) cg_dist_allreduce(d, buf, n);
    cg_device_synchronize(dev);
    double start = cg_seconds();
    for (long i = 0; i < iters; i++) cg_dist_allreduce(d, buf, n);
    cg_device_synchronize(dev);
    double seconds = (cg_seconds() - start) / (double)iters, unused = 0.0;
    cg_dist_mean(d, 1, &seconds, &unused);
    return seconds;
}

int main(int argc, char **argv) {
    const char *device = "cpu";
    long iters = 20, min_bytes = 4096, max_bytes = 64L << 20, threads = 0;
    static const struct option longopts[] = {{"device", required_argument, 0, 'd'},
                                             {"iters", required_argument, 0, 'i'},
                                             {"min-bytes", required_argument, 0, 'a'},
                                             {"max-bytes", required_argument, 0, 'b'},
                                             {"threads", required_argument, 0, 't'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'i': s = cg_cli_int("--iters", optarg, 1, 1000000, &iters); break;
        case 'a': s = cg_cli_int("--min-bytes", optarg, 4, 1L << 34, &min_bytes); break;
        case 'b': s = cg_cli_int("--max-bytes", optarg, 4, 1L << 34, &max_bytes); break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &threads); break;
        case 'h': usage(stdout); return 0;
        default: s = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code != CG_OK) return cg_cli_fail("bench_allreduce", s);
    if (threads > 0) cg_set_num_threads((int)threads);
    cg_device dev;
    cg_dist *d = NULL;
    if ((s = cg_device_parse(device, &dev)).code != CG_OK || (s = cg_dist_start("bench_allreduce", device, &dev, &d)).code != CG_OK)
        return cg_cli_fail("bench_allreduce", s);

    // The gradient block of the tutorial CNN on Fashion-MNIST (what cnn --distributed reduces).
    cg_params *params = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(0, CG_STREAM_INIT);
    cg_module *model = NULL;
    if ((s = cg_model_new("tutorial", params, NULL, 1, 28, 28, 10, &rng, &model)).code != CG_OK)
        return cg_cli_fail("bench_allreduce", s);
    int64_t grads = params->numel;
    cg_module_free(model);
    cg_params_free(params);

    char text[256], name[16];
    cg_dist_describe(d, text, sizeof text);
    printf("all-reduce on %s, %s; %ld timed calls per size; busbw = algbw x 2(n-1)/n, n = %d\n",
           cg_device_str(dev, name, sizeof name), text, iters, cg_dist_world(d));
    printf("%12s %12s %12s %12s %12s\n", "bytes", "floats", "time (us)", "algbw (GB/s)", "busbw (GB/s)");
    int64_t largest = max_bytes / 4 > grads ? max_bytes / 4 : grads;
    float *buf = cg_device_alloc(dev, (size_t)largest * sizeof(float));
    cg_device_zero(dev, buf, (size_t)largest * sizeof(float));
    bool grads_done = false;
    for (int64_t bytes = min_bytes; bytes <= max_bytes || !grads_done; bytes *= 2) {
        // The gradient block's size, in its place among the powers of two.
        bool at_grads = !grads_done && (grads * 4 <= bytes || bytes > max_bytes);
        int64_t n = at_grads ? grads : bytes / 4;
        double seconds = time_allreduce(d, dev, buf, n, iters);
        double algbw = (double)n * 4 / seconds / 1e9, W = cg_dist_world(d);
        printf("%12lld %12lld %12.1f %12.3f %12.3f%s\n", (long long)n * 4, (long long)n, seconds * 1e6, algbw,
               algbw * 2.0 * (W - 1) / W, at_grads ? "  <- grads" : "");
        if (at_grads) {
            grads_done = true;
            bytes /= 2; // then this power of two
        }
    }
    cg_device_free(dev, buf);
    cg_dist_finish(d);
    return 0;
}

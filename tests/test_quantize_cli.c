// test_quantize_cli.c: runs the built quantize example (CGRAD_BIN_DIR/quantize): --help exits 0
// with the usage; bad flags, a missing checkpoint and a checkpoint of another model exit non-zero
// with one stderr line naming them; and a whole run on an MLP checkpoint written here (random
// weights) and a small Fashion-MNIST-shaped data set written here (fake_idx.h) prints fp32, fp16
// and int8 accuracies within 2 points of each other, a size ratio near 4 and the speeds.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"

#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// An MLP checkpoint (fc1 784 -> 128, fc2 128 -> 10) with PyTorch's initial weights, model "mlp".
static bool write_mlp(const char *path) {
    cg_params *p = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(5, CG_STREAM_INIT);
    cg_module *m = cg_sequential_new();
    cg_sequential_add(m, cg_flatten_new());
    cg_sequential_add(m, cg_linear_new(p, "fc1", 784, 128, true, &rng));
    cg_sequential_add(m, cg_relu_new());
    cg_sequential_add(m, cg_linear_new(p, "fc2", 128, 10, true, &rng));
    const char *meta[] = {"format", "pt", "model", "mlp"};
    cg_status s = cg_checkpoint_save(p, path, meta, 2);
    cg_module_free(m);
    cg_params_free(p);
    if (s.code != CG_OK) fail("write checkpoint", "%s", s.message);
    return s.code == CG_OK;
}

int main(int argc, char **argv) {
    if (!run_begin_program("test_quantize_cli", "quantize", argc, argv)) return 1;
    const run_result *r = run("--help");
    if (r->exit_code != 0 || strstr(r->out, "usage") == NULL || strstr(r->out, "--calib-batches") == NULL)
        fail("--help", "exit %d, stdout \"%s\"", r->exit_code, r->out);

    char ckpt[512], args[1024];
    snprintf(ckpt, sizeof ckpt, "%s/mlp.safetensors", run_dir);
    expect_refused("", "--load");
    expect_refused("--load x --observer median", "--observer", "median", "entropy");
    expect_refused("--load x --calib-batches 0", "--calib-batches");
    expect_refused("--load x --percentile 40", "--percentile");
    expect_refused("--load /nonexistent/m.safetensors", "/nonexistent/m.safetensors");
    write_fake_fashion_mnist(run_dir, 512, 1000);
    if (write_mlp(ckpt)) {
        snprintf(args, sizeof args, "--load %s --data %s --model tutorial", ckpt, run_dir);
        expect_refused(args, "c1.weight");
        snprintf(args, sizeof args, "--load %s --data %s --model resnet", ckpt, run_dir);
        expect_refused(args, "resnet");
        {
            snprintf(args, sizeof args,
                     "--load %s --data %s --calib-batches 2 --batch-size 512 --reps 1 --sqnr-images 200", ckpt,
                     run_dir);
            r = run(args);
            double a32 = -1, a8 = -1, ratio = 0, s32 = 0, s8 = 0;
            const char *acc = strstr(r->out, "Test accuracy on cpu: ");
            const char *size = strstr(r->out, "points; ");
            const char *speed = strstr(r->out, "Inference on cpu, batch 512: ");
            if (r->exit_code != 0 || !acc || sscanf(acc, "Test accuracy on cpu: fp32 %lf, int8 %lf", &a32, &a8) != 2 ||
                !size || sscanf(size, "points; %lfx smaller", &ratio) != 1 || !speed ||
                sscanf(speed, "Inference on cpu, batch 512: fp32 %lf images/s, int8 %lf", &s32, &s8) != 2)
                fail("whole run", "exit %d, stdout \"%s\", stderr \"%s\"", r->exit_code, r->out, r->err);
            else if (!(a32 >= 0 && a32 <= 1 && a8 >= a32 - 0.02 && a8 <= a32 + 0.02 && ratio > 3.9 && ratio < 4.0 &&
                       s32 > 0 && s8 > 0))
                fail("whole run", "fp32 %.4f, int8 %.4f, %.2fx smaller, %.0f and %.0f images/s", a32, a8, ratio, s32, s8);
            else
                printf("whole run: fp32 %.4f, int8 %.4f, %.2fx smaller, %.0f and %.0f images/s\n", a32, a8, ratio, s32, s8);
            double a16 = -1, s16 = 0;
            const char *half = strstr(r->out, "fp16 on cpu: ");
            if (!half || sscanf(half, "fp16 on cpu: accuracy %lf, %lf images/s", &a16, &s16) != 2 ||
                !(a16 >= a32 - 0.02 && a16 <= a32 + 0.02 && s16 > 0))
                fail("fp16 row", "fp16 accuracy %.4f (fp32 %.4f), %.0f images/s: \"%s\"", a16, a32, s16, r->out);
            if (strstr(r->out, "fc1    linear+relu") == NULL || strstr(r->out, "fc2    linear ") == NULL)
                fail("SQNR table", "rows for fc1 and fc2 missing: \"%s\"", r->out);
        }
    }
    unlink(ckpt);
    remove_fake_fashion_mnist(run_dir);
    run_end();
    return check_summary("test_quantize_cli");
}

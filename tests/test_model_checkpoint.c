// test_model_checkpoint.c: a checkpoint that `cnn --save` writes for --model tutorial-bn, resnet18 and
// fast loads in PyTorch into bench/torch_models.py's twin with strict names (BatchNorm's running
// statistics and num_batches_tracked included) and gives there cgrad's own test loss and accuracy;
// the fast network's whitening layer equals the twin's init_whitening on the same images; and a file
// PyTorch wrote from the twin's state_dict (I64 num_batches_tracked) loads back with cnn --load.
// The PyTorch side is tests/reference/check_model_checkpoint.py, run with /usr/bin/python3: without
// it or without torch the test is skipped (exit 77). Small grey images keep it short: 12 x 12 for
// tutorial-bn and ResNet-18 (its stages then run at 12, 6, 3 and 2 pixels), 28 x 28 for the fast network.
#define _POSIX_C_SOURCE 200809L
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tests/reference/check_model_checkpoint.py"

// count side x side images in dir (MNIST's file names): class i mod 10 brightens one band of rows.
static void write_images(const char *dir, const char *images, const char *labels, uint32_t count, uint32_t side) {
    size_t n = (size_t)count * side * side;
    uint8_t *pixels = malloc(n), *classes = malloc(count);
    uint32_t state = 777u + count;
    for (uint32_t i = 0; i < count; i++) {
        classes[i] = (uint8_t)(i % 10);
        for (uint32_t p = 0; p < side * side; p++) {
            state = state * 1664525u + 1013904223u;
            int band = (p / side) * 10 / side == classes[i];
            pixels[(size_t)i * side * side + p] = (uint8_t)((band ? 150 : 20) + (state >> 26));
        }
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, images);
    write_idx(path, 3, (uint32_t[]){count, side, side}, pixels, n);
    snprintf(path, sizeof path, "%s/%s", dir, labels);
    write_idx(path, 1, (uint32_t[]){count}, classes, count);
    free(pixels);
    free(classes);
}

// Runs the PyTorch side; prints its output. False when it found a difference (or failed).
static bool check_in_pytorch(const char *model, const char *dir, const char *extra) {
    char command[4096];
    snprintf(command, sizeof command,
             PYTHON " " SCRIPT " --model %s --checkpoint '%s/%s.safetensors' --data '%s' --log '%s/%s.csv' "
                    "--mean 0.2860 --std 0.3530 %s 2>&1", // Fashion-MNIST's normalisation in cnn
             model, run_dir, model, dir, run_dir, model, extra);
    FILE *p = popen(command, "r");
    if (p == NULL) return false;
    char line[512];
    while (fgets(line, sizeof line, p)) printf("  %s", line);
    int status = pclose(p);
    return status == 0;
}

// cnn --model MODEL on dir's images: one epoch, saved and logged in run_dir; then PyTorch's check.
static void check_model(const char *model, const char *dir, const char *extra) {
    char args[2048];
    snprintf(args, sizeof args,
             "--model %s --dataset fashion-mnist --data '%s' --epochs 1 --batch-size 8 --quiet --log '%s/%s.csv' "
             "--save '%s/%s.safetensors'",
             model, dir, run_dir, model, run_dir, model);
    const run_result *r = run(args);
    if (r->exit_code != 0) {
        fail(model, "cnn %s: exit %d: %s", args, r->exit_code, r->err);
        return;
    }
    printf("%s: cnn saved %s/%s.safetensors; PyTorch says:\n", model, run_dir, model);
    if (!check_in_pytorch(model, dir, extra)) fail(model, "the checkpoint does not match in PyTorch (lines above)");
}

int main(int argc, char **argv) {
    if (system(PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("test_model_checkpoint: skipped: %s cannot import torch (Debian: apt-get install python3-torch)\n",
               PYTHON);
        return 77;
    }
    if (!run_begin_program("test_model_checkpoint", "cnn", argc, argv)) return 1;
    char small[512], large[512], command[2200];
    snprintf(small, sizeof small, "%s/small", run_dir);
    snprintf(large, sizeof large, "%s/large", run_dir);
    snprintf(command, sizeof command, "mkdir -p '%s' '%s'", small, large);
    if (system(command) != 0) {
        fail("mkdir", "%s", command);
        return check_summary("test_model_checkpoint");
    }
    write_images(small, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 16, 12);
    write_images(small, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 16, 12);
    write_images(large, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 16, 28);
    write_images(large, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 16, 28);

    char back[700];
    snprintf(back, sizeof back, "--write-back '%s/twin.safetensors'", run_dir);
    check_model("tutorial-bn", small, "");
    check_model("resnet18", small, back);
    check_model("fast", large, "");

    // The twin's state_dict as PyTorch writes it (I64 num_batches_tracked) loads with cnn --load.
    char args[2048];
    snprintf(args, sizeof args, "--model resnet18 --dataset fashion-mnist --data '%s' --epochs 1 --batch-size 8 --quiet "
             "--load '%s/twin.safetensors'", small, run_dir);
    const run_result *r = run(args);
    if (r->exit_code != 0) fail("cnn --load (PyTorch's file)", "exit %d: %s", r->exit_code, r->err);
    else printf("cnn --load of the twin's file: %s", r->out);

    snprintf(command, sizeof command, "rm -rf '%s' '%s' '%s'/*.safetensors '%s'/*.safetensors.state '%s'/*.csv",
             small, large, run_dir, run_dir, run_dir);
    if (system(command) != 0) fprintf(stderr, "test_model_checkpoint: could not remove %s\n", run_dir);
    run_end();
    return check_summary("test_model_checkpoint");
}

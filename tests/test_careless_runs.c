// test_careless_runs.c: the examples run as a careless user runs them, on a small Fashion-MNIST-
// shaped data set the test writes. A learning rate that makes training diverge must stop it with
// one line naming the epoch and step, exit 1 and leave an existing checkpoint as it was (with
// --detect-anomaly the line names the op); steps the fp16 loss scaler skips are not divergence;
// Ctrl-C and SIGTERM stop at a step boundary, save and exit 130 / 143; --load and quantize refuse
// NaN weights; a bad --save is refused before training; path flags refuse a flag as their value;
// images too large for a model are refused naming the folder; --log replaces a link; quantize's
// and device_info's file and usage errors. Plus the guard's rules (examples/common/guard.h) and
// the model bounds (models.h) called directly. CPU only.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "core/kernels.h"
#include "core/quant/quant.h"
#include "examples/common/cli.h"
#include "examples/common/guard.h"
#include "examples/common/models.h"
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char bin_dir[900];

// run() runs this example next.
static void use(const char *example) { snprintf(run_path, sizeof run_path, "%s/%s", bin_dir, example); }

static bool one_line(const char *text) {
    size_t len = strlen(text);
    return len > 0 && strchr(text, '\n') == text + len - 1;
}

// args must exit with `code` (0: any non-zero below 128) and print exactly one stderr line holding needle.
static void expect_refused_exit(const char *args, int code, const char *needle) {
    const run_result *r = run(args);
    bool code_ok = code ? r->exit_code == code : (r->exit_code > 0 && r->exit_code < 128);
    if (!code_ok)
        fail(args, "exit status %d; expected %d (stderr: %s)", r->exit_code, code, r->err);
    else if (!one_line(r->err))
        fail(args, "stderr is not exactly one line: \"%s\"", r->err);
    else if (strstr(r->err, needle) == NULL)
        fail(args, "stderr does not say \"%s\": \"%s\"", needle, r->err);
    else
        printf("  refused (exit %d): %s\n    %s", r->exit_code, args, r->err);
}

static char *in_run_dir(const char *name) {
    static char paths[8][1024];
    static int next = 0;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", run_dir, name);
    return p;
}

static void write_text_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) fail(path, "cannot write");
}

static bool file_holds(const char *path, const char *text) {
    char buf[256];
    read_text(path, buf, sizeof buf);
    return strcmp(buf, text) == 0;
}

// ---- divergence -----------------------------------------------------------------------------------

static void test_divergence(void) {
    printf("divergence\n");
    use("cnn");
    char args[2048];
    char *old = in_run_dir("old.safetensors");
    write_text_file(old, "an older checkpoint");
    snprintf(args, sizeof args, "--data %s --epochs 3 --optimizer sgd --lr 50 --quiet --save %s", run_dir, old);
    const run_result *r = run(args);
    if (r->exit_code != 1 || strstr(r->err, "cnn: training diverged at epoch 1, step ") == NULL ||
        strstr(r->err, "the loss is NaN") == NULL)
        fail("sgd --lr 50", "expected exit 1 and 'training diverged at epoch 1, step N: the loss is NaN'; exit %d, "
             "stderr: %s", r->exit_code, r->err);
    else
        printf("  sgd --lr 50 (exit 1): %s", r->err);
    if (strstr(r->out, "nan") != NULL) fail("sgd --lr 50", "a NaN reached the output: %s", r->out);
    if (!file_holds(old, "an older checkpoint")) fail("sgd --lr 50", "the checkpoint already at --save was replaced");
    remove_checkpoint(old);

    snprintf(args, sizeof args, "--data %s --epochs 3 --optimizer sgd --lr 50 --quiet --detect-anomaly", run_dir);
    r = run(args);
    if (r->exit_code != 1 || strstr(r->err, "first non-finite value: ") == NULL ||
        (strstr(r->err, "forward of ") == NULL && strstr(r->err, "backward of ") == NULL))
        fail("--detect-anomaly", "expected exit 1 and the first non-finite op named; exit %d, stderr: %s",
             r->exit_code, r->err);
    else if (!one_line(r->err))
        fail("--detect-anomaly", "more than one line: %s", r->err);
    else
        printf("  --detect-anomaly (exit 1): %s", r->err);

    // A fixed loss scale of 5e5 overflows fp16 in some steps of the MLP: those steps are skipped,
    // which is not divergence. 1e30 overflows in every step: a static scale is the user's choice, so
    // one warning and the run goes on (a dynamic scale that skips a whole epoch is divergence: the
    // guard's rules below).
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --precision fp16 --loss-scale static:5e5 --limit 600",
             run_dir);
    r = run(args);
    long skipped = -1;
    const char *at = strstr(r->out, "loss scale 500000, ");
    if (at) skipped = strtol(at + strlen("loss scale 500000, "), NULL, 10);
    if (r->exit_code != 0 || skipped < 1)
        fail("fp16 skipped steps", "expected exit 0 with steps skipped; exit %d, %ld skipped, stderr: %s", r->exit_code,
             skipped, r->err);
    else
        printf("  fp16 with %ld skipped steps: exit 0\n", skipped);
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 2 --precision fp16 --loss-scale static:1e30 --limit 600",
             run_dir);
    r = run(args);
    if (r->exit_code != 0 || strstr(r->err, "skipped all") == NULL || !one_line(r->err))
        fail("fp16 every step skipped", "expected exit 0 and one warning 'skipped all'; exit %d, stderr: %s",
             r->exit_code, r->err);
}

// The guard's rules on a tiny model, with the loss and the scaler's count set by hand.
static void test_guard_rules(void) {
    printf("guard rules\n");
    cg_device cpu = cg_cpu();
    cg_params *params = cg_params_new(cpu);
    cg_rng init = cg_rng_new(3, CG_STREAM_INIT);
    cg_module *fc = cg_linear_new(params, "fc", 2, 3, true, &init);
    cg_metrics *metrics = cg_metrics_new(cpu);
    float *sums = metrics->sums->data;
    for (int fp16 = 0; fp16 < 2; fp16++) {
        cg_amp *amp = cg_amp_new(params, fp16 ? CG_PRECISION_FP16 : CG_PRECISION_FP32,
                                 cg_loss_scale_default(fp16 ? CG_PRECISION_FP16 : CG_PRECISION_FP32));
        cg_guard *g = cg_guard_new("test", params, metrics, amp, 4, false);
        cg_guard_epoch_begin(g, 1);
        cg_metrics_reset(metrics);
        sums[0] = 1.5f; // step 1: a finite loss
        cg_guard_record(g);
        bool stop1 = cg_guard_should_stop(g, 1);
        sums[0] = NAN; // step 2: NaN loss; with the scaler, the step is skipped (its count goes up)
        if (fp16) amp->state[CG_AMP_SKIPPED] += 1.0f;
        cg_guard_record(g);
        bool stop2 = cg_guard_should_stop(g, 1);
        if (stop1) fail("guard", "stopped on a finite loss");
        if (!fp16 && (!stop2 || !cg_guard_diverged(g) || strstr(cg_guard_message(g), "epoch 1, step 2") == NULL))
            fail("guard fp32", "a NaN loss at step 2 must stop with 'epoch 1, step 2': %s", cg_guard_message(g));
        if (fp16 && (stop2 || !cg_guard_epoch_end(g, 1, 2)))
            fail("guard fp16", "a NaN loss on a skipped step is not divergence: %s", cg_guard_message(g));
        if (fp16) {
            // Non-finite weights at the end of an epoch are, even with a scaler.
            params->values[1] = INFINITY;
            cg_guard_epoch_begin(g, 2);
            cg_metrics_reset(metrics);
            cg_guard_record(g);
            if (cg_guard_epoch_end(g, 2, 1) || strstr(cg_guard_message(g), "weight 'fc.weight' [1] is infinite") == NULL)
                fail("guard fp16 weights", "infinite weights must stop training: %s", cg_guard_message(g));
            int status = cg_guard_finish(g); // puts epoch 1's weights back
            if (status != 1 || !isfinite(params->values[1]) || !cg_guard_can_save(g) || cg_guard_epochs_done(g) != 1)
                fail("guard fp16 weights", "after divergence: status %d, weight %g, can save %d, epochs %ld", status,
                     (double)params->values[1], cg_guard_can_save(g), cg_guard_epochs_done(g));
        }
        cg_guard_free(g);
        cg_amp_free(amp);
    }
    printf("  fp32: a NaN loss stops at its step; fp16: a skipped NaN step does not, infinite weights do and the "
           "last good epoch's come back\n");
    cg_metrics_free(metrics);
    cg_module_free(fc);
    cg_params_free(params);
}

// ---- interruption ---------------------------------------------------------------------------------

// Runs cnn in the background, sends sig once its first epoch is logged, and returns its exit status.
static int interrupted_run(int sig, const char *save, const char *log) {
    char program[1024], data[1024];
    snprintf(program, sizeof program, "%s/cnn", bin_dir);
    snprintf(data, sizeof data, "%s", run_dir);
    unlink(log);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(program, program, "--data", data, "--epochs", "1000", "--model", "mlp", "--save", save, "--log", log,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) { // up to 60 s for the first epoch's row
        char text[4096];
        read_text(log, text, sizeof text);
        if (strchr(text, '\n') && strchr(strchr(text, '\n') + 1, '\n')) break;
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    kill(pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void test_interruption(void) {
    printf("interruption\n");
    const int sigs[2] = {SIGINT, SIGTERM}, codes[2] = {130, 143};
    for (int k = 0; k < 2; k++) {
        char *save = in_run_dir("interrupted.safetensors"), *log = in_run_dir("interrupted.csv");
        unlink(save);
        int code = interrupted_run(sigs[k], save, log);
        char epochs[32] = "";
        cg_status s = cg_checkpoint_read_metadata(save, "epochs", epochs, sizeof epochs);
        if (code != codes[k]) fail(k ? "SIGTERM" : "SIGINT", "exit status %d, expected %d", code, codes[k]);
        else if (s.code != CG_OK) fail(k ? "SIGTERM" : "SIGINT", "no readable checkpoint: %s", s.message);
        else printf("  %s: exit %d, checkpoint saved after %s epochs\n", k ? "SIGTERM" : "SIGINT", code, epochs);
        remove_checkpoint(save);
        unlink(log);
    }
}

// ---- refusals before training ---------------------------------------------------------------------

// A copy of src with the first `count` floats of its data section set to `value`.
static void poison_checkpoint(const char *src, const char *dst, float value, int count) {
    FILE *f = fopen(src, "rb");
    if (!f) {
        fail("poison", "cannot read %s", src);
        return;
    }
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | buf[i];
    for (int i = 0; i < count; i++) memcpy(buf + 8 + header + 4 * (size_t)i, &value, 4);
    f = fopen(dst, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
}

static void test_refusals(void) {
    printf("refusals\n");
    char args[2048];
    use("cnn");
    char *good = in_run_dir("good.safetensors"), *bad = in_run_dir("nan.safetensors");
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --limit 200 --quiet --save %s", run_dir, good);
    if (run(args)->exit_code != 0) fail("train a checkpoint", "%s", run_output.err);
    poison_checkpoint(good, bad, NAN, 1);
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --load %s", run_dir, bad);
    expect_refused_exit(args, 1, "holds 1 non-finite value");
    // --save refused before training, never after it.
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --save %s", run_dir, run_dir);
    expect_refused_exit(args, 2, "it is a directory");
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --save ''", run_dir);
    expect_refused_exit(args, 2, "--save: the name is empty");
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --save --quiet", run_dir);
    expect_refused_exit(args, 2, "--save: '--quiet' looks like a flag");
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --save %s/no/such/dir/m.safetensors", run_dir, run_dir);
    expect_refused_exit(args, 1, "No such file or directory");
    if (strstr(run_output.out, "epoch 1") != NULL) fail("--save missing dir", "refused only after training");

    // Images of 2048 x 2048 declared by a 4 MB IDX file: the tutorial CNN would need 2.1 G parameters.
    char *big = in_run_dir("big");
    mkdir(big, 0755);
    for (int split = 0; split < 2; split++) {
        char images[1100], labels[1100];
        snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte", big, split ? "t10k" : "train");
        snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte", big, split ? "t10k" : "train");
        uint8_t *pixels = calloc(2048 * 2048, 1), label = 3;
        write_idx(images, 3, (uint32_t[]){1, 2048, 2048}, pixels, 2048 * 2048);
        write_idx(labels, 1, (uint32_t[]){1}, &label, 1);
        free(pixels);
    }
    snprintf(args, sizeof args, "--data %s --epochs 1", big);
    expect_refused_exit(args, 1, "more than the 268435456 (1 GiB) cgrad accepts");
    if (strstr(run_output.err, big) == NULL) fail("2048 x 2048 images", "the message does not name %s", big);
    for (int split = 0; split < 2; split++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", big, split ? "t10k" : "train");
        unlink(path);
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", big, split ? "t10k" : "train");
        unlink(path);
    }
    rmdir(big);
    // The activations of a step: 128 images of 3 x 512 x 512 would need about 29 GiB.
    cg_status s = cg_model_check_size("tutorial", 3, 512, 512, 10, 128, "data/x");
    if (s.code == CG_OK || strstr(s.message, "--batch-size") == NULL || strstr(s.message, "data/x") == NULL)
        fail("step activations", "expected a refusal naming data/x and --batch-size: %s", s.message);
    if (cg_model_check_size("tutorial", 3, 512, 512, 10, 16, "data/x").code != CG_OK)
        fail("step activations", "16 images of 3 x 512 x 512 refused");

    // --log: a link there is replaced, the file it points to is left alone.
    char *victim = in_run_dir("victim.txt"), *link = in_run_dir("log-link.csv");
    write_text_file(victim, "victim");
    unlink(link);
    if (symlink(victim, link) != 0) fail("--log link", "cannot make the link");
    snprintf(args, sizeof args, "--data %s --model mlp --epochs 1 --limit 200 --quiet --log %s", run_dir, link);
    if (run(args)->exit_code != 0) fail("--log link", "%s", run_output.err);
    struct stat st;
    if (!file_holds(victim, "victim")) fail("--log link", "the log was written through the link into %s", victim);
    if (lstat(link, &st) != 0 || !S_ISREG(st.st_mode)) fail("--log link", "%s is not the log file now", link);
    unlink(link);
    unlink(victim);

    // quantize: a missing file is a file error (exit 1), NaN weights are refused, a bad model
    // name in the metadata is the checkpoint's fault, not --model's.
    use("quantize");
    expect_refused_exit("--load /no/such/model.safetensors", 1, "/no/such/model.safetensors");
    snprintf(args, sizeof args, "--data %s --load %s", run_dir, bad);
    expect_refused_exit(args, 1, "holds 1 non-finite value");
    // Finite weights so large that the first layer's outputs overflow: calibration sees infinities
    // (it used to abort on an internal check, exit 134).
    char *huge = in_run_dir("huge.safetensors");
    poison_checkpoint(good, huge, -3e38f, 784); // dark pixels (normalised below 0) give +inf
    snprintf(args, sizeof args, "--data %s --load %s --calib-batches 1", run_dir, huge);
    expect_refused_exit(args, 1, "NaN or infinite outputs during calibration");
    unlink(huge);
    cg_params *p = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(1, CG_STREAM_INIT);
    cg_module *fc = cg_linear_new(p, "fc", 2, 3, true, &init);
    const char *meta[] = {"model", "resnet\x1b[2J"};
    char *odd = in_run_dir("odd.safetensors");
    if (cg_checkpoint_save(p, odd, meta, 1).code != CG_OK) fail("odd model", "cannot save");
    snprintf(args, sizeof args, "--data %s --load %s", run_dir, odd);
    expect_refused_exit(args, 1, "its metadata names the model 'resnet\\x1B[2J'");
    cg_module_free(fc);
    cg_params_free(p);
    unlink(odd);
    remove_checkpoint(good);
    unlink(bad);

    use("device_info");
    expect_refused_exit("--device cpu", 2, "'cpu' is not a GPU");
    expect_refused_exit("--device cuda:x", 2, "unknown device 'cuda:x'");
    expect_refused_exit("stray", 2, "unexpected argument 'stray'");

    // Quantisation never converts NaN to an integer (undefined behaviour in C); observers count
    // non-finite values instead of aborting.
    cg_qparams qp = {0.5f, -3};
    if (cg_quantize_one(NAN, qp) != -3) fail("quantize NaN", "NaN gave %d, expected the zero point -3", cg_quantize_one(NAN, qp));
    if (cg_quantize_one(INFINITY, qp) != 127 || cg_quantize_one(-INFINITY, qp) != -128)
        fail("quantize inf", "infinities do not saturate");
    cg_observer obs;
    cg_observer_init(&obs, CG_OBSERVER_PERCENTILE, 0);
    const float values[4] = {1.0f, NAN, INFINITY, -2.0f};
    cg_observer_update(&obs, values, 4);
    float lo, hi;
    cg_observer_range(&obs, &lo, &hi);
    if (obs.nonfinite != 2 || obs.count != 2 || !(lo >= -2.0f && hi <= 1.0f))
        fail("observer", "NaN / inf: nonfinite %lld, count %lld, range [%g, %g]", (long long)obs.nonfinite,
             (long long)obs.count, (double)lo, (double)hi);
    cg_observer_free(&obs);

    // The path check itself.
    const char *out = NULL;
    if (cg_cli_path("--save", "--quiet", &out).code == CG_OK || cg_cli_path("--save", "", &out).code == CG_OK ||
        cg_cli_path("--save", "./--quiet", &out).code != CG_OK)
        fail("cg_cli_path", "a flag or an empty name was accepted, or ./--quiet refused");
}

int main(int argc, char **argv) {
#ifdef CGRAD_BIN_DIR
    snprintf(bin_dir, sizeof bin_dir, "%s", CGRAD_BIN_DIR);
#else
    snprintf(bin_dir, sizeof bin_dir, "./build");
#endif
    if (argc > 1) snprintf(bin_dir, sizeof bin_dir, "%s", argv[1]);
    char cnn[1024];
    snprintf(cnn, sizeof cnn, "%s/cnn", bin_dir);
    if (access(cnn, X_OK) != 0) {
        fprintf(stderr, "FAIL test_careless_runs: no executable at %s (build the examples first)\n", cnn);
        return 1;
    }
    if (!run_begin(cnn, "/tmp/cgrad_test_careless_XXXXXX")) {
        fprintf(stderr, "FAIL test_careless_runs: cannot make a temporary directory\n");
        return 1;
    }
    write_fake_fashion_mnist(run_dir, 600, 100);
    test_guard_rules();
    test_refusals();
    test_divergence();
    test_interruption();
    remove_fake_fashion_mnist(run_dir);
    run_end();
    if (failures) {
        fprintf(stderr, "test_careless_runs: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_careless_runs: all passed\n");
    return 0;
}

// test_resume.c: checkpoints that resume, run through the built cnn (CGRAD_BIN_DIR/cnn, or argv[1]) on
// a small Fashion-MNIST-shaped data set the test writes (tests/fake_idx.h), on the CPU:
// - 4 epochs straight and 2 epochs + --resume + 2 end with the same bytes: the weights file, the
//   data of the state file and its metadata (but the clock), and the log (but the timing columns);
//   for the tutorial CNN with Adam and augmentation (a last batch shorter than the others), the
//   MLP with SGD in fp16 (the loss scaler's state), the fast network and the tutorial CNN with
//   BatchNorm (BatchNorm's buffers; the latter's training loss falls, and --eval of its weights
//   gives the logged accuracy);
// - a run stopped by SIGTERM inside an epoch, and one killed by SIGKILL after a --save-every save,
//   resume to the same bytes;
// - --eval prints the test loss and accuracy the run logged; --load reads the weights alone;
// - bad input, each refused with one line naming the file and what was wrong and a non-zero exit,
//   the checkpoint already there left as it was: another model, class count or image shape (with
//   and without metadata), a truncated file, PyTorch's zip and pickle .pt, a state whose settings
//   differ from the flags, a weights-only file given to --resume, too few --epochs, flags that
//   do not go together.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "examples/common/models.h"
#include "tests/fake_idx.h"
#include "tests/run_program.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char *in_dir(const char *name) {
    static char paths[8][1024];
    static int next = 0;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", run_dir, name);
    return p;
}

// The whole file (NULL when it cannot be read); *size its bytes.
static unsigned char *read_file(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    *size = fread(data, 1, (size_t)n, f);
    fclose(f);
    return data;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size) fail(path, "cannot write");
    if (f) fclose(f);
}

// Two training states: the same data section to the byte, and the same metadata but the clock.
static void expect_same_state(const char *what, const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = read_file(a, &na), *y = read_file(b, &nb);
    if (!x || !y || na < 8 || nb < 8) {
        fail(what, "cannot read %s or %s", a, b);
    } else {
        uint64_t ha = 0, hb = 0;
        for (int i = 7; i >= 0; i--) ha = ha << 8 | x[i], hb = hb << 8 | y[i];
        if (ha > na - 8 || hb > nb - 8 || na - 8 - ha != nb - 8 - hb || memcmp(x + 8 + ha, y + 8 + hb, na - 8 - ha) != 0)
            fail(what, "the tensors of %s and %s differ", a, b);
        char **pa = NULL, **pb = NULL;
        int ca = 0, cb = 0;
        cg_checkpoint_read_all_metadata(a, &pa, &ca);
        cg_checkpoint_read_all_metadata(b, &pb, &cb);
        if (ca != cb || ca < 10) fail(what, "%d and %d metadata entries", ca, cb);
        for (int i = 0; i < ca && i < cb; i++) {
            if (strcmp(pa[2 * i], "float.seconds") == 0) continue;
            if (strcmp(pa[2 * i], pb[2 * i]) != 0 || strcmp(pa[2 * i + 1], pb[2 * i + 1]) != 0)
                fail(what, "metadata %s = %s in %s, %s = %s in %s", pa[2 * i], pa[2 * i + 1], a, pb[2 * i],
                     pb[2 * i + 1], b);
        }
        cg_checkpoint_free_metadata(pa, ca);
        cg_checkpoint_free_metadata(pb, cb);
    }
    free(x);
    free(y);
}

// The log without its seconds and images_per_s columns (found by name in the header), which are
// timing.
static void log_without_timing(const char *path, char *out, size_t size) {
    char text[16384];
    read_text(path, text, sizeof text);
    bool drop[64] = {false};
    int column = 0;
    for (const char *c = text; *c && *c != '\n'; column++) { // the header's names
        size_t len = strcspn(c, ",\n");
        if (column < 64 && ((len == 7 && strncmp(c, "seconds", 7) == 0) || (len == 12 && strncmp(c, "images_per_s", 12) == 0)))
            drop[column] = true;
        c += len;
        if (*c == ',') c++;
    }
    out[0] = '\0';
    size_t n = 0;
    column = 0;
    bool first_kept = true; // no comma before the first kept cell of a line
    for (const char *c = text; *c && n + 1 < size;) {
        size_t len = strcspn(c, ",\n");
        if (!(column < 64 && drop[column])) {
            if (!first_kept && n + 1 < size) out[n++] = ',';
            for (size_t i = 0; i < len && n + 1 < size; i++) out[n++] = c[i];
            first_kept = false;
        }
        c += len;
        if (*c == ',') {
            column++;
            c++;
        } else if (*c == '\n') {
            if (n + 1 < size) out[n++] = '\n';
            column = 0;
            first_kept = true;
            c++;
        }
    }
    out[n] = '\0';
}

static void expect_same_log(const char *what, const char *a, const char *b, int rows) {
    char x[16384], y[16384];
    log_without_timing(a, x, sizeof x);
    log_without_timing(b, y, sizeof y);
    int lines = 0;
    for (const char *c = x; *c; c++) lines += *c == '\n';
    if (strcmp(x, y) != 0) fail(what, "the logs differ:\n%s---\n%s", x, y);
    else if (lines != rows + 1) fail(what, "%d lines in the log, expected a header and %d rows:\n%s", lines, rows, x);
}

static int expect_run(const char *what, const char *args) {
    const run_result *r = run(args);
    if (r->exit_code != 0) fail(what, "cnn %s: exit %d: %s", args, r->exit_code, r->err);
    return r->exit_code;
}

// Runs `cnn args` with CGRAD_TEST_SIGNAL=EPOCH:STEP:SIG (examples/common/guard.c): the run sends
// itself sig when that step begins, the same place on any machine; returns the exit status (or
// minus the signal that killed it).
static int stopped_run(const char *args, int epoch, int step, int sig) {
    char command[8192];
    snprintf(command, sizeof command, "CGRAD_TEST_SIGNAL=%d:%d:%d exec '%s' %s >/dev/null 2>'%s/stderr'", epoch, step,
             sig, run_path, args, run_dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    read_text(in_dir("stderr"), run_output.err, sizeof run_output.err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// The training loss of the log's last row below its first row's (column 1, train_loss).
static void expect_loss_falls(const char *what, const char *path) {
    char text[16384];
    read_text(path, text, sizeof text);
    double first = -1, last = -1;
    int rows = 0;
    for (const char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        const char *comma = strchr(line + 1, ',');
        if (comma == NULL) break;
        last = strtod(comma + 1, NULL);
        if (rows++ == 0) first = last;
    }
    if (rows < 2 || !(last < first)) fail(what, "the training loss does not fall over %d epochs: %g, then %g", rows,
                                          first, last);
    else printf("  training loss %.4f after the first epoch, %.4f after the last\n", first, last);
}

// ---- the same bytes, straight or resumed --------------------------------------------------------------

static char common[1400]; // the data and the run's settings

static void test_same_bytes(const char *what, const char *flags, int epochs, int first) {
    printf("%s: %d epochs straight, and %d + --resume + %d\n", what, epochs, first, epochs - first);
    char args[4096];
    char *a = in_dir("a.safetensors"), *b = in_dir("b.safetensors"), *alog = in_dir("a.csv"), *blog = in_dir("b.csv");
    char astate[1100], bstate[1100];
    snprintf(astate, sizeof astate, "%s.state", a);
    snprintf(bstate, sizeof bstate, "%s.state", b);
    snprintf(args, sizeof args, "%s %s --epochs %d --save %s --log %s --quiet", common, flags, epochs, a, alog);
    expect_run(what, args);
    snprintf(args, sizeof args, "%s %s --epochs %d --save %s --log %s --quiet", common, flags, first, b, blog);
    expect_run(what, args);
    snprintf(args, sizeof args, "%s %s --epochs %d --resume %s --save %s --log %s --quiet", common, flags, epochs, b, b,
             blog);
    expect_run(what, args);
    if (!same_bytes(a, b)) fail(what, "the weights after %d straight epochs and after %d + %d differ", epochs, first,
                                epochs - first);
    expect_same_state(what, astate, bstate);
    expect_same_log(what, alog, blog, epochs);
    if (failures == 0) printf("  same weights (bytes), same state, same log\n");
}

// A run stopped inside an epoch by SIGTERM, and one killed (SIGKILL) after a --save-every save,
// resume to the bytes of the straight run test_same_bytes left in a.safetensors.
static void test_stopped(const char *flags, int epochs) {
    char args[4096];
    char *a = in_dir("a.safetensors"), *c = in_dir("c.safetensors"), *clog = in_dir("c.csv");
    for (int k = 0; k < 2; k++) {
        int sig = k == 0 ? SIGTERM : SIGKILL;
        const char *what = k == 0 ? "SIGTERM inside an epoch" : "SIGKILL after --save-every 1";
        unlink(c);
        unlink(clog);
        snprintf(args, sizeof args, "%s %s --epochs %d --save %s --log %s --quiet%s", common, flags, epochs, c, clog,
                 k == 1 ? " --save-every 1" : "");
        int code = stopped_run(args, 2, 2, sig); // step 2 of epoch 2
        if (code != (k == 0 ? 143 : -SIGKILL))
            fail(what, "exit status %d (stderr: %s)", code, run_output.err);
        else
            printf("  %s: %s", what, k == 0 ? run_output.err : "killed\n");
        snprintf(args, sizeof args, "%s %s --epochs %d --resume %s --save %s --log %s", common, flags, epochs, c, c, clog);
        const run_result *r = run(args);
        if (r->exit_code != 0) fail(what, "the resumed run: exit %d: %s", r->exit_code, r->err);
        const char *resuming = strstr(r->out, "resuming");
        if (resuming) printf("    %.*s\n", (int)strcspn(resuming, "\n"), resuming);
        if (!same_bytes(a, c)) fail(what, "the resumed run's weights differ from the straight run's");
        expect_same_log(what, in_dir("a.csv"), clog, epochs);
    }
}

// --eval: the test accuracy of the last epoch the straight run logged; --load alone.
static void test_eval(const char *flags) {
    printf("--eval and --load\n");
    char args[4096], text[8192];
    read_text(in_dir("a.csv"), text, sizeof text);
    const char *last = text;
    for (const char *c = text; c[0] && c[1]; c++)
        if (c[0] == '\n') last = c + 1;
    double logged = -1, logged_loss = -1; // test_accuracy (column 4) and test_loss (column 3)
    int column = 0;
    for (const char *c = last; *c && column < 4; c++) {
        if (*c == ',' && ++column == 3) logged_loss = strtod(c + 1, NULL);
        if (*c == ',' && column == 4) logged = strtod(c + 1, NULL);
    }
    snprintf(args, sizeof args, "%s %s --load %s --eval", common, flags, in_dir("a.safetensors"));
    const run_result *r = run(args);
    const char *at = strstr(r->out, "Test accuracy on cpu: ");
    double accuracy = at ? strtod(at + strlen("Test accuracy on cpu: "), NULL) : -2;
    if (r->exit_code != 0 || accuracy < 0 || accuracy - logged > 1e-9 || logged - accuracy > 1e-9 ||
        strstr(r->out, "test loss") == NULL || strstr(r->out, "epoch 1") != NULL)
        fail("--eval", "exit %d, accuracy %g, the log's %g; stdout: %s stderr: %s", r->exit_code, accuracy, logged,
             r->out, r->err);
    else
        printf("  %s", r->out);
    // The test loss too (6 decimals in both): BatchNorm's running statistics loaded, not fresh ones.
    const char *loss_at = strstr(r->out, "test loss ");
    double loss = loss_at ? strtod(loss_at + strlen("test loss "), NULL) : -2;
    if (loss - logged_loss > 1.5e-6 || logged_loss - loss > 1.5e-6)
        fail("--eval", "test loss %.6f, the log's %.6f", loss, logged_loss);
    snprintf(args, sizeof args, "%s %s --resume %s --eval", common, flags, in_dir("a.safetensors"));
    r = run(args);
    at = strstr(r->out, "Test accuracy on cpu: ");
    if (r->exit_code != 0 || !at || strtod(at + strlen("Test accuracy on cpu: "), NULL) != accuracy)
        fail("--resume --eval", "exit %d: %s %s", r->exit_code, r->out, r->err);
    // --load starts a new run: 1 epoch from the weights of 4.
    snprintf(args, sizeof args, "%s %s --load %s --epochs 1 --quiet", common, flags, in_dir("a.safetensors"));
    expect_run("--load", args);
}

// ---- bad input -------------------------------------------------------------------------------------------

// A checkpoint of the tutorial CNN for `classes` classes and images 1 x side x side, with the
// metadata given (NULL: none, as PyTorch's safetensors.torch.save_file writes it).
static void write_tutorial(const char *path, int classes, int side, const char *const *metadata, int n) {
    cg_params *p = cg_params_new(cg_cpu()), *buffers = cg_params_new(cg_cpu());
    cg_rng rng = cg_rng_new(1, CG_STREAM_INIT);
    cg_module *m = NULL;
    if (cg_model_new("tutorial", p, buffers, 1, side, side, classes, &rng, &m).code != CG_OK) fail(path, "cannot build");
    if (cg_checkpoint_save(p, path, metadata, n).code != CG_OK) fail(path, "cannot save");
    cg_module_free(m);
    cg_params_free(p);
    cg_params_free(buffers);
}

static void test_bad_input(const char *flags) {
    printf("bad input\n");
    char args[4096], good[1024], other[1024], good_state[1100];
    snprintf(good, sizeof good, "%s", in_dir("a.safetensors"));
    snprintf(other, sizeof other, "%s", in_dir("other.safetensors"));
    snprintf(good_state, sizeof good_state, "%s.state", good);
    size_t n_good, n_state;
    unsigned char *before = read_file(good, &n_good), *state_before = read_file(good_state, &n_state);
    refusal_stdout_lacks = "epoch 1"; // refused before training

    // Another model, class count or image shape: named by the metadata, or by a tensor without it.
    snprintf(args, sizeof args, "%s --model mlp --epochs 1 --save %s --quiet", common, other);
    expect_run("an MLP", args);
    char other_state[1100];
    snprintf(other_state, sizeof other_state, "%s.state", other);
    unlink(other_state);
    snprintf(args, sizeof args, "%s %s --load %s", common, flags, other);
    expect_refused(args, other, "holds a --model mlp, this run builds --model tutorial");
    const char *five[] = {"format", "pt", "model", "tutorial", "classes", "5"};
    write_tutorial(other, 5, 28, five, 3);
    expect_refused(args, other, "was trained for 5 classes, the data set 'fashion-mnist' has 10");
    write_tutorial(other, 5, 28, NULL, 0);
    expect_refused(args, other, "tensor 'f2.weight' has shape [5, 128], the model's parameter is (10, 128)");
    const char *big[] = {"model", "tutorial", "input", "1x32x32"};
    write_tutorial(other, 10, 32, big, 2);
    expect_refused(args, other, "was trained on images of 1x32x32, the data set 'fashion-mnist' has 1x28x28");
    write_tutorial(other, 10, 32, NULL, 0);
    expect_refused(args, other, "tensor 'f1.weight' has shape [128, 4096], the model's parameter is (128, 3136)");

    // A truncated file; PyTorch's torch.save files (a zip since PyTorch 1.6, a bare pickle before).
    write_file(other, before, n_good / 2);
    expect_refused(args, other, "(file truncated?)");
    // (Two literals: in one, "\x00a" would read as the single byte 0x0a, "a" being a hex digit.)
    static const char zip_start[] = "PK\x03\x04\x14\x00\x00\x00\x08\x00" "archive/data.pkl";
    write_file(other, zip_start, sizeof zip_start - 1);
    expect_refused(args, other, "a zip archive (PyTorch's torch.save format");
    write_file(other, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
    expect_refused(args, other, "a Python pickle (PyTorch's legacy torch.save format)");
    snprintf(args, sizeof args, "%s %s --resume %s --epochs 5", common, flags, other);
    expect_refused(args, other, "a Python pickle");
    write_file(other, state_before, n_state - 100);
    expect_refused(args, other, "(file truncated?)");
    unlink(other);

    // A state that does not fit the flags; the weights file alone; too few --epochs.
    struct {
        const char *flags, *needle;
    } mismatches[] = {
        {"--batch-size 16", "saved with --batch-size 48, this run has --batch-size 16"},
        {"--seed 1", "saved with --seed 0, this run has --seed 1"},
        {"--optimizer sgd", "saved with --optimizer adam, this run has --optimizer sgd"},
        {"--lr 0.01", "saved with --lr 0.001, this run has --lr 0.01"},
        {"--augment off", "saved with --augment on, this run has --augment off"},
        {"--precision bf16", "saved with --precision fp32, this run has --precision bf16"},
        {"--model mlp", "saved with --model tutorial, this run has --model mlp"},
        {"--limit 100", "saved with training images (--limit) 120, this run has training images (--limit) 100"},
    };
    for (size_t i = 0; i < sizeof mismatches / sizeof mismatches[0]; i++) {
        snprintf(args, sizeof args, "%s %s %s --resume %s --epochs 5 --save %s", common, flags, mismatches[i].flags,
                 good, good);
        expect_refused(args, good_state, mismatches[i].needle);
    }
    snprintf(args, sizeof args, "%s %s --resume %s --epochs 4 --save %s", common, flags, good, good);
    expect_refused(args, "--epochs 4: the training state", "has trained 4 epochs already");
    snprintf(other, sizeof other, "%s", in_dir("weights-only.safetensors"));
    write_file(other, before, n_good);
    snprintf(args, sizeof args, "%s %s --resume %s --epochs 5", common, flags, other);
    expect_refused(args, other, "no training state", "holds weights alone (--load starts a new run from them)");
    snprintf(args, sizeof args, "%s %s --load %s --epochs 5", common, flags, good_state);
    expect_refused(args, good_state, "is a training state: --resume continues it");
    unlink(other);

    // Flags that do not go together.
    snprintf(args, sizeof args, "%s %s --load %s --resume %s", common, flags, good, good);
    expect_refused(args, "--load and --resume: give one");
    snprintf(args, sizeof args, "%s %s --save-every 2", common, flags);
    expect_refused(args, "--save-every needs --save PATH");
    snprintf(args, sizeof args, "%s %s --eval", common, flags);
    expect_refused(args, "--eval needs the weights to evaluate");
    snprintf(args, sizeof args, "%s %s --eval --load %s --save %s", common, flags, good, good);
    expect_refused(args, "--eval trains nothing: --save has nothing to write");
    refusal_stdout_lacks = NULL;

    // None of these touched the checkpoint; a run that diverges writes its last good epoch's
    // weights, if it had one, but never a state: the last whole state stays.
    for (int k = 0; k < 2; k++) {
        size_t n_after, n_state_after;
        unsigned char *after = read_file(good, &n_after), *state_after = read_file(good_state, &n_state_after);
        if (k == 0 && (!after || n_after != n_good || memcmp(before, after, n_good) != 0))
            fail("bad input", "%s changed", good);
        if (!state_after || n_state_after != n_state || memcmp(state_before, state_after, n_state) != 0)
            fail(k ? "divergence" : "bad input", "%s changed", good_state);
        free(after);
        free(state_after);
        if (k == 1) break;
        snprintf(args, sizeof args, "%s --epochs 2 --optimizer sgd --lr 50 --quiet --save %s", common, good);
        const run_result *r = run(args);
        if (r->exit_code != 1 || strstr(r->err, "training diverged") == NULL)
            fail("divergence", "expected exit 1 and 'training diverged'; exit %d: %s", r->exit_code, r->err);
        else
            printf("  divergence: %s", r->err);
    }
    // The state still resumes.
    snprintf(args, sizeof args, "%s %s --resume %s --eval", common, flags, good);
    if (run(args)->exit_code != 0) fail("divergence", "the state no longer resumes: %s", run_output.err);
    free(before);
    free(state_before);
}

int main(int argc, char **argv) {
    if (!run_begin_program("test_resume", "cnn", argc, argv)) return 1;
    write_fake_fashion_mnist(run_dir, 300, 60);
    // 120 images in batches of 48: two full batches and one of 24, each epoch. Two threads, tuned
    // (the default): on a busy machine the tuner may run some steps' loops with one, which changes
    // no bit (OpenBLAS, whose one-thread driver would, keeps its two: kernels/cpu/blas.c).
    snprintf(common, sizeof common, "--data %s --limit 120 --batch-size 48 --threads 2", run_dir);
    const char *tutorial = "--augment on";
    test_same_bytes("the tutorial CNN, Adam, augmentation", tutorial, 4, 2);
    test_stopped(tutorial, 4);
    test_eval(tutorial);
    test_bad_input(tutorial);
    // The MLP with SGD in fp16 under a static loss scale: the scaler's steps and the optimizer's count.
    test_same_bytes("the MLP, SGD, fp16", "--model mlp --optimizer sgd --precision fp16 --loss-scale static:256", 3, 1);
    // The fast network: BatchNorm's running statistics and num_batches_tracked (I64) in the state.
    test_same_bytes("the fast network, BatchNorm buffers, SGD", "--model fast --optimizer sgd --limit 40", 2, 1);
    // The tutorial CNN with BatchNorm: its buffers in the state, its loss falling, and --eval / --load
    // of its weights giving the logged accuracy (evaluation reads the running statistics).
    // Flips alone: a crop would move the bands that tell the test's classes apart.
    const char *tutorial_bn = "--model tutorial-bn --optimizer sgd --lr 0.01 --momentum 0.9 --augment on "
                              "--crop-padding 0";
    test_same_bytes("the tutorial CNN with BatchNorm, SGD", tutorial_bn, 3, 1);
    expect_loss_falls("the tutorial CNN with BatchNorm", in_dir("a.csv"));
    test_eval(tutorial_bn);
    // The training recipe: a schedule of the step (its warm-up across the stop; a step schedule, whose
    // rate does not depend on --epochs: cosine, linear and onecycle do, so a run saved with other
    // --epochs is refused), Nesterov momentum, weight decay spared to biases, label smoothing,
    // clipping, alternating flips (their parity by epoch), reflection padding and cutout.
    test_same_bytes("the tutorial CNN, the recipe",
                    "--optimizer sgd --lr 0.05 --momentum 0.9 --nesterov --weight-decay 5e-4 --no-decay-bn-bias "
                    "--lr-schedule step --step-size 1 --gamma 0.5 --warmup 1.5 --label-smoothing 0.1 "
                    "--clip-grad-norm 1 --augment on --padding-mode reflect --flip alternate --cutout 6", 4, 1);

    const char *names[] = {"a.safetensors", "a.safetensors.state", "b.safetensors", "b.safetensors.state",
                           "c.safetensors", "c.safetensors.state", "a.csv", "b.csv", "c.csv", "stderr"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(in_dir(names[i]));
    remove_fake_fashion_mnist(run_dir);
    run_end();
    return check_summary("test_resume");
}

// cnn: the course's chapter 3 in C: prepare a data set, load it in batches, build a base CNN,
// train it on the CPU or a GPU, and log loss and accuracy per epoch (train and test) with the
// wall-clock time, so that plot_curves.py can overlay a CPU run and a GPU run.
// The tutorial CNN: conv3x3(C,32,pad 1), ReLU, maxpool 2, conv3x3(32,64,pad 1), ReLU, maxpool 2,
// flatten, Linear(64*H/4*W/4, 128), ReLU, Linear(128, classes); Adam 1e-3, batch 128.
#define _POSIX_C_SOURCE 200809L // setenv (--deterministic)
#include "cgrad.h"
#include "examples/common/cli.h"
#include "examples/common/epoch_log.h"
#include "examples/common/models.h"
#include "examples/common/guard.h"
#include "examples/common/recipe.h"
#include "examples/common/resume.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: cnn [options]\n"
            "Train the tutorial CNN on an image data set and log loss and accuracy per epoch.\n"
            "\n"
            "  --dataset NAME     fashion-mnist (default), mnist, cifar10, cifar100, tinyimagenet or folder\n"
            "  --data DIR         where the data set is (default /usr/share/datasets/fashion-mnist;\n"
            "                     tools/download_datasets.sh fetches the others; for folder: DIR/train/CLASS/*.png|jpg\n"
            "                     and DIR/val/CLASS/*.png|jpg, or DIR/test/... without val/, with the same classes)\n"
            "  --model NAME       tutorial (default): the two-convolution CNN of the course; tutorial-bn: the\n"
            "                     same with BatchNorm2d after each convolution (and no conv bias); mlp: flatten,\n"
            "                     Linear(C*H*W, 128), ReLU, Linear(128, classes) (for examples/quantize);\n"
            "                     resnet18: ResNet-18, CIFAR form (3x3 stem, no max pool); fast: the small fast\n"
            "                     CIFAR network after airbench94 (its first layer set from the training images)\n"
            "  --stem-stride N    resnet18's first convolution: stride 1 (default) or 2 (for 64x64 images)\n"
            "  --device DEV       cpu, cuda or cuda:N (default cpu)\n"
            "                     (on the CPU, fp32 3x3 convolutions of stride 1 and padding 1 run\n"
            "                     Winograd's F(2x2, 3x3): 2.25x fewer multiplications, results within a\n"
            "                     few units of the last place; the environment's CGRAD_CPU_WINOGRAD=0\n"
            "                     turns it off: lesson 03)\n"
            "  --epochs N         passes over the training set (default 5; with --recipe airbench94 9.9, a\n"
            "                     fraction allowed there: ceil(N x steps per epoch) steps in all)\n"
            "  --batch-size N     images per step (default 128; 1024 with --recipe airbench94)\n"
            "  --seed N           seed of the weights, the shuffle and the augmentation (default 0)\n"
            "  --threads N        CPU threads (default: OpenMP's choice)\n"
            "  --thread-tuning on|off  on the CPU, run each training step's loops with N threads (--threads) or\n"
            "                     N-1, whichever ran faster when both were timed while another program was\n"
            "                     using the CPU; probes again from time to time; the results of one\n"
            "                     thread; waiting threads spin briefly, then sleep (default on; off:\n"
            "                     always N, waiting threads sleep at once; lesson 03)\n"
            "  --limit N          train on N training images only, class-balanced: the first N/classes of\n"
            "                     each class (the same subset for every seed)\n"
            "  --limit-test N     evaluate on N test images only, class-balanced as --limit (quick tries on\n"
            "                     a CPU; bench/torch_train.py's --limit-test)\n"
            "  --summary          print the data set's line and the model's summary, then exit (no training)\n"
            "  --log PATH         CSV per epoch: epoch,train_loss,train_accuracy,test_loss,test_accuracy,\n"
            "                     test_top5,seconds,images_per_s,device,lr (bench/torch_train.py's columns;\n"
            "                     the top-5 accuracy is printed each epoch too with more than 10 classes)\n"
            "  --monitor          sample the GPU once a second through NVML (utilisation, memory,\n"
            "                     temperature, power): shown each epoch, and added to the log as\n"
            "                     gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w, the epoch's mean\n"
            "  --save PATH        write the trained weights as safetensors (PyTorch's parameter names) and,\n"
            "                     beside them, PATH.state: the whole training state (weights, optimizer\n"
            "                     moments and step, loss scale, epoch, step, generators, loader position,\n"
            "                     the flags below that must not change), each file replaced atomically;\n"
            "                     also on Ctrl-C or SIGTERM (at a step boundary, then exit 130 or 143) and, if\n"
            "                     training diverges, the last good epoch's weights (PATH.state left as it was)\n"
            "  --save-every N     with --save: also save after every N epochs\n"
            "  --resume PATH      continue the run saved at PATH (reads PATH.state) up to --epochs, as if it\n"
            "                     had never stopped: the same results to the bit on the CPU with the same\n"
            "                     threads, and on a GPU when both runs use --deterministic (close otherwise:\n"
            "                     lesson 07);\n"
            "                     --model, --stem-stride, --dataset, --limit, --batch-size, --seed, --precision,\n"
            "                     --loss-scale and the recipe's flags below (but --tta and --confusion) must be\n"
            "                     the saved run's; --log keeps the rows of the epochs it has and goes on\n"
            "  --load PATH        start a new run from the weights of a safetensors file (cnn's --save, or\n"
            "                     PyTorch's safetensors.torch.save_file of the same model)\n"
            "  --eval             evaluate the weights of --load or --resume on the test set (loss, accuracy\n"
            "                     and top-5; --tta and --confusion apply) without training\n"
            "  --precision P      fp32 (default), fp16 or bf16: mixed precision as torch.autocast (convolutions\n"
            "                     and linear layers in 16 bits with f32 accumulation, ReLU, max pooling,\n"
            "                     batch norm and GELU in 16 bits (their statistics and sums in f32), softmax\n"
            "                     cross-entropy and the optimizer in f32 on FP32 master weights; on the\n"
            "                     CPU, bf16 products and convolutions on AMX or AVX512-BF16 where it has\n"
            "                     them, the rest and fp16 with the rounding emulated: same numbers, slower;\n"
            "                     on a GPU the 16-bit activations are stored channels-last, NHWC, unless\n"
            "                     the environment sets CGRAD_CONV16_LAYOUT=nchw: lesson 08; and the first\n"
            "                     backward to reach an activation's gradient writes it unzeroed, unless\n"
            "                     CGRAD_FRESH_GRADIENTS=0)\n"
            "  --loss-scale S     dynamic (default for fp16: 65536, x2 after 2000 good steps, x0.5 and the\n"
            "                     step skipped on inf/NaN), static:S (a fixed scale) or none (default for\n"
            "                     bf16). With --precision the log gets precision,loss_scale,skipped_steps\n"
            "  --no-graph         on a GPU, launch every kernel of every step (no CUDA Graph replay)\n"
            "  --untimed-step     before the clock starts, one untimed training step of a throwaway copy of\n"
            "                     the model on a batch of zeros: the kernels loaded, the libraries started,\n"
            "                     cuDNN's engines timed, the memory cache filled, as airbench94's warmup94()\n"
            "                     does for its timed runs; the model trained is untouched (bench/cifar.sh)\n"
            "  --deterministic    on a GPU, each convolution's cuDNN algorithm is the first deterministic\n"
            "                     one in cuDNN's order of preference, not the fastest of a timing (as\n"
            "                     PyTorch's cudnn.deterministic with benchmark off): the same algorithms in\n"
            "                     every process, so that a run, or a run stopped and resumed (--resume),\n"
            "                     repeats another to the bit on the same GPU; may be slower\n"
            "  --stream           on a GPU, keep the images in host memory and prepare each next batch on a\n"
            "                     background thread (pinned buffers, asynchronous copies) instead of copying\n"
            "                     the data set to the GPU; the default for a data set larger than half the\n"
            "                     GPU's free memory\n"
            "  --no-fusion        run each Conv2d, ReLU, MaxPool2d as three ops (on the CPU; the same results,\n"
            "                     more memory traffic: lesson 03), each BatchNorm2d, GELU or ReLU as two and\n"
            "                     each basic block's BatchNorm2d, add and ReLU as three (both devices; in 16\n"
            "                     bits one rounding more: lesson 08) instead of one op\n"
            "  --detect-anomaly   check every op's output and gradients for NaN and inf (slow; no CUDA Graph),\n"
            "                     so that a diverging run names the first op that made one\n"
            "  --distributed      one rank of a data-parallel run started by mpirun -np N cnn --distributed ...\n"
            "                     (one process per GPU: --device cuda takes the GPU of the local rank; or N on\n"
            "                     CPUs): same weights everywhere, each rank trains on its share of every epoch\n"
            "                     with --batch-size images per step, gradients averaged over the ranks; rank 0\n"
            "                     alone prints, logs and saves; on one GPU machine without MPI:\n"
            "                     tools/launch_local.sh N cnn --distributed --device cuda ... (lesson 06)\n"
            "  --sync-bn          with --distributed: BatchNorm2d in training normalises with the mean and\n"
            "                     variance of all the ranks' batches together (two all-reduces per layer and\n"
            "                     step, as PyTorch's SyncBatchNorm): the same running statistics on every\n"
            "                     rank; without it each rank normalises with its own batch's\n"
            "  --quiet            print only the final test accuracy\n"
            "  --help             this text\n"
            "\n");
    cg_recipe_usage(f);
}

typedef struct {
    const char *dataset, *data, *model, *device, *log_path, *save_path, *load_path, *resume_path;
    long epochs, batch_size, seed, threads, limit, limit_test, stem_stride, save_every;
    double epochs_fraction; // --epochs as given (a fraction with --recipe airbench94: 9.9 by default)
    bool epochs_given, batch_size_given;
    bool summary, quiet, no_graph, monitor, no_fusion, stream, detect_anomaly, distributed, sync_bn, eval,
        deterministic, thread_tuning, untimed_step;
    cg_recipe recipe; // optimizer, schedule, loss, clipping, augmentation, TTA: examples/common/recipe.h
    cg_precision precision;
    bool precision_given, loss_scale_given;
    cg_grad_scaler_config loss_scale;
} options;

static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.dataset = "fashion-mnist", .model = "tutorial", .device = "cpu", .epochs = 5, .batch_size = 128,
                  .thread_tuning = true};
    cg_recipe_init(&o->recipe);
    static const struct option longopts[] = {
        {"dataset", required_argument, 0, 'D'}, {"data", required_argument, 0, 'd'},
        {"model", required_argument, 0, 'm'},   {"device", required_argument, 0, 'v'},
        {"epochs", required_argument, 0, 'e'},  {"batch-size", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},    {"threads", required_argument, 0, 't'},
        {"thread-tuning", required_argument, 0, 'H'},
        {"limit", required_argument, 0, 'n'},   {"limit-test", required_argument, 0, 'k'},
        {"summary", no_argument, 0, 'Z'},
        {"log", required_argument, 0, 'L'},     {"save", required_argument, 0, 'S'},
        {"load", required_argument, 0, 'R'},    {"quiet", no_argument, 0, 'q'},
        {"no-graph", no_argument, 0, 'G'},      {"monitor", no_argument, 0, 'M'},
        {"untimed-step", no_argument, 0, 'w'},
        {"deterministic", no_argument, 0, 'Q'},
        {"no-fusion", no_argument, 0, 'F'},     {"stream", no_argument, 0, 'W'},
        {"precision", required_argument, 0, 'P'}, {"loss-scale", required_argument, 0, 'C'},
        {"detect-anomaly", no_argument, 0, 'A'}, {"stem-stride", required_argument, 0, 'T'},
        {"distributed", no_argument, 0, 'X'}, {"sync-bn", no_argument, 0, 'Y'},
        {"resume", required_argument, 0, 'U'},
        {"save-every", required_argument, 0, 'E'}, {"eval", no_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},          CG_RECIPE_LONGOPTS, {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': o->dataset = optarg; break;
        case 'd': s = cg_cli_path("--data", optarg, &o->data); break;
        case 'm': o->model = optarg; break;
        case 'v': o->device = optarg; break;
        case 'e': s = cg_cli_float("--epochs", optarg, 1e-3, 100000, &o->epochs_fraction), o->epochs_given = true; break;
        case 'b': s = cg_cli_int("--batch-size", optarg, 1, 1 << 16, &o->batch_size), o->batch_size_given = true; break;
        case 's': s = cg_cli_int("--seed", optarg, 0, 0x7fffffffL, &o->seed); break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &o->threads); break;
        case 'H':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                s = cg_error(CG_ERR_ARG, "--thread-tuning: '%s' is not on or off", optarg);
            o->thread_tuning = strcmp(optarg, "on") == 0;
            break;
        case 'n': s = cg_cli_int("--limit", optarg, 1, 1L << 30, &o->limit); break;
        case 'k': s = cg_cli_int("--limit-test", optarg, 1, 1L << 30, &o->limit_test); break;
        case 'Z': o->summary = true; break;
        case 'T': s = cg_cli_int("--stem-stride", optarg, 1, 2, &o->stem_stride); break;
        case 'L': s = cg_cli_path("--log", optarg, &o->log_path); break;
        case 'S': s = cg_cli_path("--save", optarg, &o->save_path); break;
        case 'R': s = cg_cli_path("--load", optarg, &o->load_path); break;
        case 'U': s = cg_cli_path("--resume", optarg, &o->resume_path); break;
        case 'E': s = cg_cli_int("--save-every", optarg, 1, 100000, &o->save_every); break;
        case 'V': o->eval = true; break;
        case 'A': o->detect_anomaly = o->no_graph = true; break; // its host checks cannot be captured
        case 'q': o->quiet = true; break;
        case 'G': o->no_graph = true; break;
        case 'w': o->untimed_step = true; break;
        case 'Q': o->deterministic = true; break;
        case 'F': o->no_fusion = true; break;
        case 'W': o->stream = true; break;
        case 'M': o->monitor = true; break;
        case 'X': o->distributed = true; break;
        case 'Y': o->sync_bn = true; break;
        case 'P': s = cg_precision_parse(optarg, &o->precision), o->precision_given = true; break;
        case 'C': s = cg_loss_scale_parse(optarg, &o->loss_scale), o->loss_scale_given = true; break;
        case 'h': usage(stdout); return 0;
        default: // the recipe's options, else a value missing or an option unknown
            s = cg_recipe_handles(c) ? cg_recipe_option(&o->recipe, c, optarg) : cg_cli_option_error(c, argv);
            break;
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code == CG_OK) s = cg_recipe_finish(&o->recipe);
    if (s.code == CG_OK && o->sync_bn && !o->distributed)
        s = cg_error(CG_ERR_ARG, "--sync-bn: only with --distributed (it synchronises batch norm across the ranks "
                     "of mpirun -np N cnn --distributed ...)");
    // --epochs: whole epochs, but for airbench94 (9.9 by default: the last epoch cut short).
    if (!o->epochs_given) o->epochs_fraction = o->recipe.airbench94 ? CG_AIRBENCH_EPOCHS : 5.0;
    if (s.code == CG_OK && !o->recipe.airbench94 && o->epochs_fraction != floor(o->epochs_fraction))
        s = cg_error(CG_ERR_ARG, "--epochs: %g is not a whole number of epochs (a fraction only with --recipe airbench94)",
                     o->epochs_fraction);
    o->epochs = (long)ceil(o->epochs_fraction - 1e-9);
    if (o->recipe.airbench94 && !o->batch_size_given) o->batch_size = CG_AIRBENCH_BATCH;
    o->recipe.batch_size = o->batch_size;
    if (s.code == CG_OK && o->recipe.airbench94 && strcmp(o->model, "fast") != 0)
        s = cg_error(CG_ERR_ARG, "--recipe airbench94: for --model fast (its groups name the fast network's layers)");
    if (s.code == CG_OK && o->recipe.airbench94 && (o->resume_path || o->save_every || o->distributed))
        s = cg_error(CG_ERR_ARG, "--recipe airbench94: not with %s (the Lookahead average is not in the saved state; "
                     "one process)", o->resume_path ? "--resume" : o->save_every ? "--save-every" : "--distributed");
    if (s.code == CG_OK && o->distributed && o->recipe.confusion_path)
        s = cg_error(CG_ERR_ARG, "--confusion: not with --distributed (each rank sees its share of the test set): "
                     "evaluate the saved weights with --eval --confusion in one process");
    if (s.code == CG_OK && !cg_model_exists(o->model))
        s = cg_error(CG_ERR_ARG, "--model: '%s' is not a model (%s)", o->model, CG_MODEL_NAMES);
    if (s.code == CG_OK) s = cg_resume_check_flags(o->load_path, o->resume_path, o->save_path, o->save_every,
                                                   o->log_path, o->eval);
    if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    if (!o->loss_scale_given) o->loss_scale = cg_loss_scale_default(o->precision);
    return -1;
}

// Loads one split through the catalog; for image folders (decoded from JPEG / PNG) it says, unless
// quiet, which folder it read, whether the decoded cache was used, written or rebuilt, and how long
// the load took.
static cg_status load_split(const cg_dataset_info *info, const char *dir, bool train, bool quiet, cg_dataset **out) {
    if (strcmp(info->name, "tinyimagenet") == 0 || strcmp(info->name, "folder") == 0) {
        // folder: DIR/train, and DIR/val (or DIR/test) in the ImageFolder layout
        cg_image_load_report report;
        cg_image_layout layout = strcmp(info->name, "folder") == 0 ? CG_IMAGE_SPLITS : CG_IMAGE_TINYIMAGENET;
        cg_status s = cg_image_dataset_load(layout, dir, train, true, &report, out);
        char text[2600];
        cg_image_load_describe(&report, text, sizeof text);
        if (s.code == CG_OK && !quiet) printf("%s %s\n", info->name, text);
        return s;
    }
    return cg_dataset_info_load(info, dir, train, NULL, out);
}

typedef struct {
    cg_module *model;
    cg_tape *tape;
    cg_optimizer *optimizer;
    cg_metrics *metrics;
    cg_amp *amp; // mixed precision (fp32: plain backward and step)
    cg_dist *dist; // --distributed (NULL otherwise)
    cg_recipe_run *recipe; // the loss's label smoothing, gradient clipping
} trainer;

// One training step on a batch already on the device. Everything it does is queued on the
// device with nothing read back, so on a GPU it can be captured as a CUDA Graph and replayed.
static void train_step(trainer *tr, const cg_batch *batch) {
    cg_tensor *logits = cg_module_forward(tr->model, tr->tape, batch->x);   // forward: (B, classes)
    logits = cg_autocast_f32(tr->tape, logits);                            // f32 for the loss (no-op in fp32)
    cg_tensor *loss = cg_recipe_loss(tr->recipe, tr->tape, logits, batch->labels); // cross-entropy, mean
    cg_optimizer_zero_grad(tr->optimizer);
    cg_amp_backward(tr->amp, tr->tape, loss); // scaler.scale(loss).backward(); scaler.unscale_(optimizer)
    cg_dist_sync_gradients(tr->dist, tr->amp); // --distributed: the average over the ranks
    cg_recipe_clip(tr->recipe);               // clip_grad_norm_ (when asked), on the device
    cg_amp_step(tr->amp, tr->optimizer);      // scaler.step(optimizer); scaler.update()
    cg_metrics_add_loss(tr->metrics, loss, batch->size);
    cg_metrics_add_argmax_correct(tr->metrics, logits, batch->labels);
    cg_tape_clear(tr->tape);
}

// --untimed-step: one training step of a throwaway copy of the model (its own parameters, optimizer,
// loss scale, tape and metrics) on a batch of zeros shaped as the real ones, then everything freed
// and the device waited for. The first step of a process pays once for what every later step
// finds ready: the GPU's kernels loaded on first launch, the cuBLAS and cuDNN handles, cuDNN's
// engines timed for each convolution (kept for the process by shape), the caching allocator's
// blocks. On an H100 that was about 0.45 s of the fast network's first epoch (0.59 to 0.64 s against
// 0.15 s for each epoch after it, the engines' timing already taken from CGRAD_CUDNN_CACHE). airbench94
// times its runs after its warmup94() has done the same for PyTorch in its process; with
// --untimed-step, cgrad's clock starts after it too. The model trained, its generators, loader and
// metrics are not touched, so the run's results are those of a run without it.
static void warm_up(const options *opt, cg_device dev, int64_t C, int64_t H, int64_t W, int classes) {
    cg_params *params = cg_params_new(dev), *buffers = cg_params_new(dev);
    cg_rng init = cg_rng_new(0, CG_STREAM_INIT);
    cg_module *model = NULL;
    cg_model_options model_options = {.stem_stride = (int)opt->stem_stride};
    cg_status s = cg_model_new_options(opt->model, &model_options, params, buffers, C, H, W, classes, &init, &model);
    CG_CHECK(s.code == CG_OK, "--untimed-step: %s", s.message); // the same model was just made once
    if (opt->no_fusion) cg_sequential_set_fusion(model, false);
    cg_recipe_run *recipe = cg_recipe_start(&opt->recipe, params, buffers, 1, opt->epochs_fraction);
    cg_tape *tape = cg_tape_new(dev, 64 << 20);
    cg_metrics *metrics = cg_metrics_new(dev);
    cg_amp *amp = cg_amp_new(params, opt->precision, opt->loss_scale);
    cg_amp_attach(amp, tape);
    trainer tr = {model, tape, recipe->optimizer, metrics, amp, NULL, recipe};
    int64_t shape[4] = {opt->batch_size, C, H, W}, n = opt->batch_size;
    cg_batch batch = {cg_tensor_new(dev, CG_F32, 4, shape), cg_tensor_new(dev, CG_I32, 1, &n), NULL, n};
    cg_tensor_fill(batch.x, 0.0f);
    cg_tensor_fill(batch.labels, 0.0f);
    cg_recipe_set_lr(recipe, 0);
    train_step(&tr, &batch);
    double loss, accuracy;
    cg_metrics_read(metrics, n, &loss, &accuracy); // waits for the device
    cg_tensor_free(batch.x);
    cg_tensor_free(batch.labels);
    cg_amp_free(amp);
    cg_metrics_free(metrics);
    cg_tape_free(tape);
    cg_recipe_free(recipe);
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);
}

// The running mean loss of the epoch for the progress line (read from the device only when drawn).
typedef struct {
    cg_metrics *metrics;
    int64_t images;
} running_loss;

static double read_running_loss(void *ctx) {
    running_loss *r = ctx;
    double loss, accuracy;
    cg_metrics_read(r->metrics, r->images, &loss, &accuracy);
    return loss;
}

int main(int argc, char **argv) {
    options opt;
    int stop = parse_options(argc, argv, &opt);
    if (stop >= 0) return stop;
    // --thread-tuning: each CPU training step with N threads or N - 1, whichever is faster while
    // another program uses the CPU (kernels/cpu/thread_tuner.c); not on a GPU, nor across ranks.
    bool tuning = opt.thread_tuning && strcmp(opt.device, "cpu") == 0 && !opt.distributed && !opt.eval;
    // OpenMP's wait policy, a short spin where the tuner runs: may start cnn again
    // (kernels/cpu/threads.c; the options are read again then, nothing else has happened yet)
    cg_threads_setup(argc, argv, tuning);
    double process_start = cg_seconds();

    const cg_dataset_info *info = cg_dataset_info_find(opt.dataset);
    if (info == NULL)
        return cg_cli_fail("cnn", cg_error(CG_ERR_ARG, "--dataset: '%s' is not one of %s", opt.dataset,
                                           cg_dataset_info_names()));
    const char *dir = opt.data ? opt.data : info->default_dir;
    if (dir == NULL) return cg_cli_fail("cnn", cg_error(CG_ERR_ARG, "--dataset folder needs --data DIR"));

    // --deterministic: read by the CUDA plugin's cuDNN code each time it picks an algorithm
    // (kernels/cuda/cudnn_conv.c), as PyTorch reads CUBLAS_WORKSPACE_CONFIG
    if (opt.deterministic) setenv("CGRAD_DETERMINISTIC", "1", 1);
    cg_device dev;
    cg_status s = cg_device_parse(opt.device, &dev);
    if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    cg_dist *dist = NULL; // --distributed: this process is one rank (core/dist/dist.h)
    if (opt.distributed && (s = cg_dist_start("cnn", opt.device, &dev, &dist)).code != CG_OK) return cg_cli_fail("cnn", s);
    if (cg_dist_rank(dist) != 0) opt.log_path = opt.save_path = NULL; // rank 0 alone writes
    if (opt.threads > 0) cg_set_num_threads((int)opt.threads);
    char dev_name[16];
    cg_device_str(dev, dev_name, sizeof dev_name);

    cg_dataset *train = NULL, *test = NULL;
    if ((s = load_split(info, dir, true, opt.quiet, &train)).code != CG_OK) return cg_cli_fail("cnn", s);
    if ((s = load_split(info, dir, false, opt.quiet, &test)).code != CG_OK) return cg_cli_fail("cnn", s);
    if (opt.limit > 0 && (s = cg_dataset_keep_balanced(train, opt.limit)).code != CG_OK) // class-balanced
        return cg_cli_fail("cnn", s);
    if (opt.limit_test > 0 && (s = cg_dataset_keep_balanced(test, opt.limit_test)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    int64_t C = train->sample_shape[0], H = train->sample_shape[1], W = train->sample_shape[2];
    if (test->sample_shape[0] != C || test->sample_shape[1] != H || test->sample_shape[2] != W)
        return cg_cli_fail("cnn", cg_error(CG_ERR_FORMAT, "%s: training images are %lldx%lldx%lld, test images %lldx%lldx%lld",
                                           dir, (long long)C, (long long)H, (long long)W,
                                           (long long)test->sample_shape[0], (long long)test->sample_shape[1],
                                           (long long)test->sample_shape[2]));
    if (H < 4 || W < 4)
        return cg_cli_fail("cnn", cg_error(CG_ERR_FORMAT, "%s: images of %lldx%lld are too small for the tutorial CNN "
                                           "(two 2x2 poolings need at least 4x4)", dir, (long long)H, (long long)W));
    // The test labels must mean the same classes as the training labels.
    bool same_classes = test->num_classes == train->num_classes;
    for (int i = 0; same_classes && train->class_names && test->class_names && i < train->num_classes; i++)
        same_classes = strcmp(train->class_names[i], test->class_names[i]) == 0;
    if (!same_classes)
        return cg_cli_fail("cnn", cg_error(CG_ERR_FORMAT, "%s: the test set's %d classes are not the training set's %d "
                                           "(same names in the same order needed)", dir, test->num_classes,
                                           train->num_classes));

    cg_params *params = cg_params_new(dev);
    cg_params *buffers = cg_params_new(dev); // BatchNorm's running statistics: saved, not trained
    cg_rng init = cg_rng_new((uint64_t)opt.seed, CG_STREAM_INIT);
    cg_module *model = NULL; // tutorial, tutorial-bn, mlp, resnet18 or fast: examples/common/models.c
    if ((s = cg_model_check_size(opt.model, C, H, W, train->num_classes, opt.batch_size, dir)).code != CG_OK)
        return cg_cli_fail("cnn", s); // sizes from the files, bounded before anything is allocated
    cg_model_options model_options = {.stem_stride = (int)opt.stem_stride};
    if ((s = cg_model_new_options(opt.model, &model_options, params, buffers, C, H, W, train->num_classes, &init,
                                  &model)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    if (opt.no_fusion) cg_sequential_set_fusion(model, false);
    if (opt.summary) { // --summary: the model's layers, then exit; nothing trained, loaded or written
        printf("%s: %lld training and %lld test images of %lldx%lldx%lld, %d classes; %lld parameters\n", info->name,
               (long long)train->count, (long long)test->count, (long long)C, (long long)H, (long long)W,
               train->num_classes, (long long)cg_params_count(params));
        cg_model_print_summary(model, C, H, W);
        cg_module_free(model);
        cg_params_free(params);
        cg_params_free(buffers);
        cg_dataset_free(train);
        cg_dataset_free(test);
        return 0;
    }
    // --save, --resume and --load (examples/common/resume.h), with the settings a resumed run keeps.
    cg_resume *rs = cg_resume_new("cnn", params, buffers, opt.model, info->name, train->num_classes, C, H, W);
    cg_resume_setting(rs, "training images (--limit)", "%lld", (long long)train->count);
    cg_resume_setting(rs, "--stem-stride", "%ld", opt.stem_stride);
    cg_resume_setting(rs, "--batch-size", "%ld", opt.batch_size);
    cg_resume_setting(rs, "--seed", "%ld", opt.seed);
    cg_resume_setting(rs, "--precision", "%s", cg_precision_name(opt.precision));
    if (opt.loss_scale.dynamic) cg_resume_setting(rs, "--loss-scale", "dynamic");
    else cg_resume_setting(rs, "--loss-scale", "static:%.9g", (double)opt.loss_scale.init_scale);
    cg_recipe_settings(&opt.recipe, rs, info->augment, opt.eval ? 0 : opt.epochs); // --optimizer, --lr, ...
    if (opt.load_path && (s = cg_resume_load_weights(rs, opt.load_path)).code != CG_OK) return cg_cli_fail("cnn", s);
    cg_resume_point at = {0, 0, 0.0};
    if (opt.resume_path &&
        (s = cg_resume_check(rs, opt.resume_path, opt.eval ? 0 : opt.epochs, opt.log_path, &at)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    // airbench's Lookahead average starts from the model as made, before the whitening init.
    cg_tensor *whiten = opt.recipe.airbench94 ? cg_params_find(params, "whiten.weight") : NULL;
    float *whiten_as_made = whiten ? cg_xmalloc((size_t)whiten->numel * sizeof(float)) : NULL;
    if (whiten) cg_tensor_copy_to_host(whiten_as_made, whiten, whiten->numel);
    double whiten_start = cg_seconds();
    if (!opt.load_path && !opt.resume_path &&
        (s = cg_model_init_from_data(opt.model, params, train, info->mean, info->std)).code != CG_OK)
        return cg_cli_fail("cnn", s); // the fast network's whitening layer
    double whiten_seconds = cg_seconds() - whiten_start; // airbench counts it in its training time

    // Everything that can fail on input is checked before the log is created and training starts.
    if (opt.save_path && (s = cg_resume_check_writable(opt.save_path)).code != CG_OK) return cg_cli_fail("cnn", s);
    if ((s = cg_recipe_check_data(&opt.recipe, info->name, info->augment, H, W)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    // The CSV log (its precision and GPU columns as asked), the GPU monitor and the progress line:
    // examples/common/epoch_log.h.
    cg_epoch_log *log = NULL;
    s = cg_epoch_log_open(&log, "cnn", opt.log_path,
                          "epoch,train_loss,train_accuracy,test_loss,test_accuracy,test_top5,seconds,images_per_s,"
                          "device,lr",
                          opt.precision_given, opt.monitor, dev, opt.quiet);
    if (s.code == CG_OK) s = cg_resume_continue_log(rs, log); // --resume: the rows of the epochs it has
    if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    if (!opt.quiet)
        printf("%s: %lld training and %lld test images of %lldx%lldx%lld, %d classes; %lld parameters; %s\n",
               info->name, (long long)train->count, (long long)test->count, (long long)C, (long long)H, (long long)W,
               train->num_classes, (long long)cg_params_count(params), dev_name);
    if (!opt.quiet) cg_model_print_summary(model, C, H, W); // layers, shapes, parameters, FLOPs per image
    cg_thread_tuner tuner; // (`tuning`: above, where the wait policy is set)
    cg_thread_tuner_init(&tuner, cg_get_num_threads(), tuning);
    int tuner_probes_shown = 0; // a "thread tuning:" line after each epoch with a probe
    if (!opt.quiet && dev.type == CG_CPU && tuner.active)
        printf("CPU: %s; thread tuning on (%d or %d)\n", cg_threads_describe(), tuner.counts[0], tuner.counts[1]);
    else if (!opt.quiet && dev.type == CG_CPU)
        printf("CPU: %s; thread tuning off%s\n", cg_threads_describe(), tuning ? " (1 thread)" : "");

    // The data sets on the device, or streamed from host memory (--stream, or too large for the GPU).
    size_t bytes = (size_t)((train->count + test->count) * train->sample_numel);
    bool stream = dev.type != CG_CPU && (opt.stream || cg_loader_should_stream(dev, bytes));
    bool drop_last = opt.recipe.airbench94; // airbench's training loader drops the last partial batch
    cg_loader *loader = stream ? cg_loader_new_streaming(train, opt.batch_size, true, drop_last, (uint64_t)opt.seed, dev)
                               : cg_loader_new(train, opt.batch_size, true, drop_last, (uint64_t)opt.seed, dev);
    cg_loader *test_loader = stream ? cg_loader_new_streaming(test, 500, false, false, 0, dev)
                                    : cg_loader_new(test, 500, false, false, 0, dev);
    if (stream && !opt.quiet)
        printf("streaming the images from host memory (%.1f MB): a background thread prepares each batch\n",
               (double)bytes / 1e6);
    cg_loader_set_normalization(loader, info->mean, info->std);
    cg_loader_set_normalization(test_loader, info->mean, info->std);
    // The optimizer, the schedule, clipping and the augmentation: examples/common/recipe.h.
    // With airbench94 also the parameter groups and the Lookahead, its average starting from the
    // weights now but for the whitening layer's, as made (airbench's: its copy of the model is made
    // before the whitening init; at step 5 of a 9.9-epoch run it weighs 1e-6, of a 2-epoch one 0.19).
    cg_recipe_run *recipe =
        cg_recipe_start(&opt.recipe, params, buffers, cg_loader_num_batches(loader), opt.epochs_fraction);
    if (recipe->lookahead && whiten) cg_lookahead_set_average(recipe->lookahead, whiten, whiten_as_made);
    free(whiten_as_made);
    cg_optimizer *optimizer = recipe->optimizer;
    cg_recipe_augment(&opt.recipe, loader, info->augment);
    cg_confusion *confusion = opt.recipe.confusion_path ? cg_confusion_new(dev, test->num_classes) : NULL;
    if (!opt.quiet && opt.eval && opt.recipe.tta_level > 0) // --eval trains nothing: of the recipe, only TTA applies
        printf("evaluation with TTA: the mean of the logits of each test image and of its mirror image%s\n",
               opt.recipe.tta_level > 1 ? ", and of both shifted by one pixel (airbench94's)" : "");
    if (!opt.quiet && !opt.eval && opt.recipe.flags_given > 0) { // the default recipe is the tutorial's: Adam 0.001
        char line[1024];
        cg_recipe_describe(recipe, opt.recipe.augment >= 0 ? opt.recipe.augment == 1 : info->augment, line,
                           sizeof line);
        printf("%s\n", line);
    }
    cg_tape *tape = cg_tape_new(dev, 64 << 20);
    cg_tape *eval_tape = cg_tape_new(dev, 64 << 20); // its own arena: the training arena never moves
    // --distributed: rank 0's weights everywhere, gradient buckets, each rank's share of the data.
    if ((s = cg_dist_prepare(dist, params, tape)).code != CG_OK || (s = cg_loader_shard(loader, dist, CG_SHARD_PAD)).code != CG_OK ||
        (s = cg_loader_shard(test_loader, dist, CG_SHARD_UNEVEN)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    if (opt.sync_bn) cg_dist_sync_batch_norm(dist, tape); // --sync-bn: batch statistics over every rank
    if (dist && !opt.quiet) {
        char text[256];
        cg_dist_describe(dist, text, sizeof text);
        printf("distributed: %s; %ld images per step on each rank%s\n", text, opt.batch_size,
               opt.sync_bn ? ", batch norm synchronised" : "");
    }
    cg_metrics *metrics = cg_metrics_new(dev);
    // Mixed precision: a 16-bit copy of the weights (made now, after --load), the loss scale on
    // the device, and both tapes computing under the autocast policy.
    cg_amp *amp = cg_amp_new(params, opt.precision, opt.loss_scale);
    cg_amp_attach(amp, tape);
    cg_amp_attach(amp, eval_tape);
    trainer tr = {model, tape, optimizer, metrics, amp, dist, recipe};
    // From here on a save holds the optimizer, the loss scale, the loader and the epoch's metrics.
    cg_resume_attach(rs, optimizer, amp, loader, metrics);
    if (opt.resume_path && (s = cg_resume_restore(rs, &at)).code != CG_OK) return cg_cli_fail("cnn", s);
    if (opt.resume_path && !opt.quiet && !opt.eval)
        printf("resuming %s after epoch %ld%s\n", opt.resume_path, at.epochs_done, at.step ? " and part of the next" : "");
    if (opt.eval) { // --eval: the test set only (--tta and --confusion apply)
        cg_eval_result r = cg_recipe_evaluate(recipe, model, eval_tape, test_loader, metrics, confusion);
        printf("%s: test loss %.6f  accuracy %.4f  top-5 %.4f  (%lld images)\n",
               opt.load_path ? opt.load_path : opt.resume_path, r.loss, r.top1, r.top5, (long long)test->count);
        printf("Test accuracy on %s: %.4f\n", dev_name, r.top1);
        cg_epoch_log_close(log);
        if ((s = cg_recipe_write_confusion(&opt.recipe, confusion, test->class_names, opt.quiet)).code != CG_OK)
            return cg_cli_fail("cnn", s);
        return 0;
    }
    // On a GPU, epoch 1 runs eagerly (it sizes the arena and builds the cuDNN plans); in epoch 2
    // one step of each batch size is captured as a CUDA Graph and replayed for every later step.
    // The batch is gathered outside the graph, so each replay trains on the new batch.
    cg_graph *graph = cg_graph_new(dev);
    // Divergence and Ctrl-C / SIGTERM: examples/common/guard.h.
    cg_guard *guard = cg_guard_new("cnn", params, metrics, amp, cg_loader_num_batches(loader), opt.detect_anomaly);
    cg_guard_catch_signals();

    if (opt.untimed_step) warm_up(&opt, dev, C, H, W, train->num_classes); // untimed (above)
    // A resumed run's clock goes on from the saved one; its first epoch (two, if it began inside
    // one) runs eagerly before any capture.
    double start = cg_seconds() - at.seconds, train_seconds = 0.0, tta_seconds = 0.0;
    bool steps_done = false; // airbench94: its ceil(epochs x steps per epoch) steps are done
    cg_eval_result test_result = {0};
    long first_epoch = at.epochs_done + 1, graph_from = first_epoch + (at.step > 0 ? 2 : 1);
    for (long epoch = first_epoch; epoch <= opt.epochs; epoch++) {
        double epoch_start = cg_seconds();
        cg_epoch_log_begin(log);
        cg_batch batch;
        cg_loader_set_epoch(loader, epoch); // the epoch the loader starts next (alternating flips)
        int64_t images = 0, step = cg_resume_epoch_begin(rs, guard, epoch, &images); // metrics, loader, guard
        int64_t steps = cg_loader_num_batches(loader);
        cg_recipe_epoch_begin(recipe, epoch); // airbench94: the whitening bias frozen after epoch 3
        while (!steps_done && cg_loader_next(loader, &batch)) {
            double step_start = cg_seconds();
            int threads = cg_thread_tuner_next(&tuner); // this step's count (N when the tuner is off)
            if (tuner.active && threads != cg_get_num_threads()) cg_set_num_threads(threads); // same bits either way
            cg_guard_step_begin(guard);
            cg_recipe_set_lr(recipe, (epoch - 1) * steps + step); // written to the device, read by the replay
            if (opt.no_graph || epoch < graph_from) {
                train_step(&tr, &batch);
            } else if (!cg_graph_replay(graph, batch.size)) {
                cg_graph_begin(graph);
                train_step(&tr, &batch);
                cg_graph_end(graph, batch.size);
            }
            step++;
            steps_done = cg_recipe_step_end(recipe, (epoch - 1) * steps + step, amp); // airbench94's Lookahead
            cg_thread_tuner_report(&tuner, cg_seconds() - step_start, batch.size); // (nothing when off)
            cg_guard_record(guard);
            if (cg_guard_should_stop(guard, epoch)) break;
            images += batch.size;
            running_loss ctx = {metrics, images};
            cg_epoch_log_progress(log, epoch, opt.epochs, step, steps, images, read_running_loss, &ctx);
        }
        if (!cg_guard_epoch_end(guard, epoch, step)) {
            cg_epoch_log_end(log, NULL, NULL, opt.precision, NULL, 0);
            break;
        }
        double train_loss, train_accuracy;
        // the images trained on: airbench94 drops each epoch's last partial batch and cuts the last epoch
        cg_metrics_read(metrics, drop_last ? images : loader->count, &train_loss, &train_accuracy); // waits for the device
        cg_dist_mean(dist, loader->count, &train_loss, &train_accuracy);      // over every rank
        double epoch_seconds = cg_seconds() - epoch_start;
        train_seconds += epoch_seconds;
        if (tuner.active) cg_set_num_threads(cg_thread_tuner_chosen(&tuner)); // evaluate with the count kept
        bool last = epoch == opt.epochs || steps_done;
        // airbench94 evaluates the epochs before the last without its TTA, and times the last apart
        if (opt.recipe.airbench94) recipe->tta_level = last ? opt.recipe.tta_level : 0;
        double eval_start = cg_seconds();
        test_result = cg_recipe_evaluate(recipe, model, eval_tape, test_loader, metrics, last ? confusion : NULL);
        if (last) tta_seconds = cg_seconds() - eval_start;
        double top5_unused = 0.0;
        cg_dist_mean(dist, test_loader->count, &test_result.loss, &test_result.top1);
        cg_dist_mean(dist, test_loader->count, &test_result.top5, &top5_unused);
        double images_per_s = (double)(drop_last ? images : train->count) / epoch_seconds;
        double seconds = cg_seconds() - start;
        char cells[256], extra[224];
        snprintf(cells, sizeof cells, "%ld,%.6f,%.4f,%.6f,%.4f,%.4f,%.3f,%.1f,%s,%.6g", epoch, train_loss,
                 train_accuracy, test_result.loss, test_result.top1, test_result.top5, seconds, images_per_s,
                 dev_name, recipe->lr_now);
        if ((s = cg_epoch_log_end(log, cells, amp, opt.precision, extra, sizeof extra)).code != CG_OK)
            return cg_cli_fail("cnn", s);
        // After an epoch with a probe, the thread count in use: before the epoch line, so that a script
        // taking the epoch line with `tail -3` still finds it.
        if (!opt.quiet && tuner.probes > tuner_probes_shown) {
            char text[160];
            cg_thread_tuner_describe(&tuner, text, sizeof text);
            printf("thread tuning: %s\n", text);
            tuner_probes_shown = tuner.probes;
        }
        if (!opt.quiet) {
            char top5[32] = ""; // shown where it says something: more than 10 classes (always in the log)
            if (test->num_classes > 10) snprintf(top5, sizeof top5, "  top-5 %.4f", test_result.top5);
            printf("epoch %ld/%ld  train loss %.4f  accuracy %.4f  |  test loss %.4f  accuracy %.4f%s  |  %.2f s, "
                   "%.0f images/s%s%s\n",
                   epoch, opt.epochs, train_loss, train_accuracy, test_result.loss, test_result.top1, top5,
                   epoch_seconds, images_per_s, extra, "");
        }
        if ((s = cg_resume_epoch_end(rs, epoch, seconds, opt.save_path, opt.save_every, opt.epochs)).code != CG_OK)
            return cg_cli_fail("cnn", s); // --save-every
        if (cg_guard_signal()) break; // Ctrl-C during the evaluation: stop before the next epoch
        if (steps_done) break;        // airbench94: its last (partial) epoch is done
    }
    int status = cg_guard_finish(guard); // 0; 1 diverged; 130 / 143 interrupted (the line is printed)
    if (status == 0) printf("Test accuracy on %s: %.4f\n", dev_name, test_result.top1);
    if (status == 0 && opt.recipe.airbench94) // airbench's timing: training steps and whitening init; TTA apart
        printf("airbench94: train_seconds %.3f (training steps %.3f + whitening init %.3f), tta_seconds %.3f, "
               "test accuracy with TTA %.4f, process wall %.2f s\n", train_seconds + whiten_seconds, train_seconds,
               whiten_seconds, tta_seconds, test_result.top1, cg_seconds() - process_start);
    if (status == 0 && !opt.quiet)
        printf("Training: %ld epochs in %.2f s (%.0f images/s)\n", opt.epochs - at.epochs_done, train_seconds,
               (drop_last ? (double)recipe->total_steps * (double)opt.batch_size // airbench94: whole batches
                          : (double)train->count * (double)(opt.epochs - at.epochs_done)) / train_seconds);
    // The whole state where training stopped, or the last good epoch's weights (resume.h).
    if ((s = cg_resume_save_final(rs, guard, opt.save_path, status, cg_seconds() - start, opt.quiet)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    cg_dist_finish(dist);
    cg_guard_free(guard);
    cg_resume_free(rs);
    // The confusion matrix of the last evaluation (after the weights are safe).
    if (status == 0 && (s = cg_recipe_write_confusion(&opt.recipe, confusion, test->class_names, opt.quiet)).code != CG_OK)
        return cg_cli_fail("cnn", s);

    cg_epoch_log_close(log);
    cg_graph_free(graph);
    cg_metrics_free(metrics);
    cg_tape_free(eval_tape);
    cg_tape_free(tape);
    cg_loader_free(test_loader);
    cg_loader_free(loader);
    cg_amp_free(amp);
    cg_confusion_free(confusion);
    cg_recipe_free(recipe); // and its optimizer
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);
    cg_dataset_free(train);
    cg_dataset_free(test);
    return status;
}

// cnn: the course's chapter 3 in C: prepare a data set, load it in batches, build a base CNN,
// train it on the CPU or a GPU, and log loss and accuracy per epoch (train and test) with the
// wall-clock time, so that plot_curves.py can overlay a CPU run and a GPU run.
// The tutorial CNN: conv3x3(C,32,pad 1), ReLU, maxpool 2, conv3x3(32,64,pad 1), ReLU, maxpool 2,
// flatten, Linear(64*H/4*W/4, 128), ReLU, Linear(128, classes); Adam 1e-3, batch 128.
#include "../../cgrad.h"
#include "../../core/monitor.h"
#include "../common/cli.h"
#include "../common/models.h"

#include <getopt.h>
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
            "                     and DIR/val/CLASS/*.png|jpg with the same classes)\n"
            "  --model NAME       tutorial (default): the two-convolution CNN of the course; mlp: flatten,\n"
            "                     Linear(C*H*W, 128), ReLU, Linear(128, classes) (for examples/quantize)\n"
            "  --device DEV       cpu, cuda or cuda:N (default cpu)\n"
            "  --epochs N         passes over the training set (default 5)\n"
            "  --batch-size N     images per step (default 128)\n"
            "  --lr X             learning rate (default 0.001 for adam, 0.01 for sgd)\n"
            "  --optimizer NAME   adam (default) or sgd\n"
            "  --seed N           seed of the weights, the shuffle and the augmentation (default 0)\n"
            "  --threads N        CPU threads (default: OpenMP's choice)\n"
            "  --limit N          train on the first N training images only\n"
            "  --augment on|off   random crop (padding 4) and flip; default on for cifar, tinyimagenet, folder\n"
            "  --log PATH         CSV per epoch: epoch,train_loss,train_accuracy,test_loss,test_accuracy,\n"
            "                     seconds,images_per_s,device\n"
            "  --monitor          sample the GPU once a second through NVML (utilisation, memory,\n"
            "                     temperature, power): shown each epoch, and added to the log as\n"
            "                     gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w, the epoch's mean\n"
            "  --save PATH        write the trained weights as safetensors (PyTorch's parameter names)\n"
            "  --load PATH        start from weights saved by --save\n"
            "  --precision P      fp32 (default), fp16 or bf16: mixed precision as torch.autocast (convolutions\n"
            "                     and linear layers in 16 bits with f32 accumulation, ReLU and max pooling in\n"
            "                     16 bits, softmax cross-entropy and Adam in f32 on FP32 master weights; on\n"
            "                     the CPU the rounding is emulated: same numbers, slower)\n"
            "  --loss-scale S     dynamic (default for fp16: 65536, x2 after 2000 good steps, x0.5 and the\n"
            "                     step skipped on inf/NaN), static:S (a fixed scale) or none (default for\n"
            "                     bf16). With --precision the log gets precision,loss_scale,skipped_steps\n"
            "  --no-graph         on a GPU, launch every kernel of every step (no CUDA Graph replay)\n"
            "  --stream           on a GPU, keep the images in host memory and prepare each next batch on a\n"
            "                     background thread (pinned buffers, asynchronous copies) instead of copying\n"
            "                     the data set to the GPU; the default for a data set larger than half the\n"
            "                     GPU's free memory\n"
            "  --no-fusion        on the CPU, run each Conv2d, ReLU, MaxPool2d as three ops instead of one\n"
            "                     fused op (the same results, more memory traffic: lesson 03)\n"
            "  --quiet            print only the final test accuracy\n"
            "  --help             this text\n");
}

typedef struct {
    const char *dataset, *data, *model, *device, *log_path, *save_path, *load_path;
    long epochs, batch_size, seed, threads, limit;
    double lr;
    bool sgd, quiet, no_graph, monitor, no_fusion, stream;
    int augment; // -1: the data set's default
    cg_precision precision;
    bool precision_given, loss_scale_given;
    cg_grad_scaler_config loss_scale;
} options;

static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.dataset = "fashion-mnist", .model = "tutorial", .device = "cpu", .epochs = 5, .batch_size = 128,
                   .lr = -1.0, .augment = -1};
    static const struct option longopts[] = {
        {"dataset", required_argument, 0, 'D'}, {"data", required_argument, 0, 'd'},
        {"model", required_argument, 0, 'm'},   {"device", required_argument, 0, 'v'},
        {"epochs", required_argument, 0, 'e'},  {"batch-size", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'l'},      {"optimizer", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},    {"threads", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'n'},   {"augment", required_argument, 0, 'a'},
        {"log", required_argument, 0, 'L'},     {"save", required_argument, 0, 'S'},
        {"load", required_argument, 0, 'R'},    {"quiet", no_argument, 0, 'q'},
        {"no-graph", no_argument, 0, 'G'},      {"monitor", no_argument, 0, 'M'},
        {"no-fusion", no_argument, 0, 'F'},     {"stream", no_argument, 0, 'W'},
        {"precision", required_argument, 0, 'P'}, {"loss-scale", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': o->dataset = optarg; break;
        case 'd': o->data = optarg; break;
        case 'm': o->model = optarg; break;
        case 'v': o->device = optarg; break;
        case 'e': s = cg_cli_int("--epochs", optarg, 1, 100000, &o->epochs); break;
        case 'b': s = cg_cli_int("--batch-size", optarg, 1, 1 << 16, &o->batch_size); break;
        case 'l': s = cg_cli_float("--lr", optarg, 0.0, 1e3, &o->lr); break;
        case 's': s = cg_cli_int("--seed", optarg, 0, 0x7fffffffL, &o->seed); break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &o->threads); break;
        case 'n': s = cg_cli_int("--limit", optarg, 1, 1L << 30, &o->limit); break;
        case 'L': o->log_path = optarg; break;
        case 'S': o->save_path = optarg; break;
        case 'R': o->load_path = optarg; break;
        case 'q': o->quiet = true; break;
        case 'G': o->no_graph = true; break;
        case 'F': o->no_fusion = true; break;
        case 'W': o->stream = true; break;
        case 'M': o->monitor = true; break;
        case 'P': s = cg_precision_parse(optarg, &o->precision), o->precision_given = true; break;
        case 'C': s = cg_loss_scale_parse(optarg, &o->loss_scale), o->loss_scale_given = true; break;
        case 'o':
            if (strcmp(optarg, "adam") && strcmp(optarg, "sgd"))
                s = cg_error(CG_ERR_ARG, "--optimizer: '%s' is not adam or sgd", optarg);
            o->sgd = strcmp(optarg, "sgd") == 0;
            break;
        case 'a':
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                s = cg_error(CG_ERR_ARG, "--augment: '%s' is not on or off", optarg);
            o->augment = strcmp(optarg, "on") == 0;
            break;
        case 'h': usage(stdout); return 0;
        case ':': s = cg_error(CG_ERR_ARG, "%s needs a value", argv[optind - 1]); break;
        default: s = cg_error(CG_ERR_ARG, "unknown option '%s' (see --help)", argv[optind - 1]); break;
        }
    }
    if (s.code == CG_OK && optind < argc) s = cg_error(CG_ERR_ARG, "unexpected argument '%s' (see --help)", argv[optind]);
    if (s.code == CG_OK && strcmp(o->model, "tutorial") != 0 && strcmp(o->model, "mlp") != 0)
        s = cg_error(CG_ERR_ARG, "--model: '%s' is not a model (tutorial, mlp)", o->model);
    if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    if (o->lr < 0) o->lr = o->sgd ? 1e-2 : 1e-3;
    if (!o->loss_scale_given) o->loss_scale = cg_loss_scale_default(o->precision);
    return -1;
}

// Each data set: how to load it and its per-channel mean and standard deviation of pixel / 255
// (the figures torchvision's examples use).
typedef struct {
    const char *name;
    const char *default_dir;
    float mean[3], std[3];
    bool augment; // training augmentation by default
} dataset_info;

static const dataset_info datasets[] = {
    {"fashion-mnist", "/usr/share/datasets/fashion-mnist", {0.2860f}, {0.3530f}, false},
    {"mnist", "data/mnist", {0.1307f}, {0.3081f}, false},
    {"cifar10", "data/cifar-10-batches-bin", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, true},
    {"cifar100", "data/cifar-100-binary", {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, true},
    {"tinyimagenet", "data/tiny-imagenet-200", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, true},
    {"folder", NULL, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, true},
};

static cg_status load_split(const dataset_info *info, const char *dir, bool train, cg_dataset **out) {
    bool from_cache = false;
    if (strcmp(info->name, "fashion-mnist") == 0) return cg_idx_load(dir, train, CG_IDX_FASHION_MNIST, out);
    if (strcmp(info->name, "mnist") == 0) return cg_idx_load(dir, train, CG_IDX_MNIST, out);
    if (strcmp(info->name, "cifar10") == 0) return cg_cifar10_load(dir, train, out);
    if (strcmp(info->name, "cifar100") == 0) return cg_cifar100_load(dir, train, false, out);
    if (strcmp(info->name, "tinyimagenet") == 0) return cg_tinyimagenet_load(dir, train, true, &from_cache, out);
    // folder: DIR/train and DIR/val in the ImageFolder layout
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, train ? "train" : "val");
    return cg_image_folder_load(path, true, &from_cache, out);
}

typedef struct {
    cg_module *model;
    cg_tape *tape;
    cg_optimizer *optimizer;
    cg_metrics *metrics;
    cg_amp *amp; // mixed precision (fp32: plain backward and step)
} trainer;

// One training step on a batch already on the device. Everything it does is queued on the
// device with nothing read back, so on a GPU it can be captured as a CUDA Graph and replayed.
static void train_step(trainer *tr, const cg_batch *batch) {
    cg_tensor *logits = cg_module_forward(tr->model, tr->tape, batch->x);   // forward: (B, classes)
    logits = cg_autocast_f32(tr->tape, logits);                            // f32 for the loss (no-op in fp32)
    cg_tensor *loss = cg_cross_entropy(tr->tape, logits, batch->labels);  // softmax cross-entropy, mean
    cg_optimizer_zero_grad(tr->optimizer);
    cg_amp_backward(tr->amp, tr->tape, loss); // scaler.scale(loss).backward()
    cg_amp_step(tr->amp, tr->optimizer);      // scaler.step(optimizer); scaler.update()
    cg_metrics_add_loss(tr->metrics, loss, batch->size);
    cg_metrics_add_argmax_correct(tr->metrics, logits, batch->labels);
    cg_tape_clear(tr->tape);
}

// Mean loss and accuracy over a whole data set, without recording.
static void evaluate(cg_module *model, cg_tape *tape, cg_loader *loader, cg_metrics *metrics, double *loss,
                     double *accuracy) {
    cg_module_set_training(model, false);
    tape->grad_enabled = false;
    cg_metrics_reset(metrics);
    cg_loader_start_epoch(loader);
    cg_batch batch;
    int64_t seen = 0;
    while (cg_loader_next(loader, &batch)) {
        cg_tensor *logits = cg_autocast_f32(tape, cg_module_forward(model, tape, batch.x));
        cg_metrics_add_loss(metrics, cg_cross_entropy(tape, logits, batch.labels), batch.size);
        cg_metrics_add_argmax_correct(metrics, logits, batch.labels);
        cg_tape_clear(tape);
        seen += batch.size;
    }
    cg_metrics_read(metrics, seen, loss, accuracy);
    tape->grad_enabled = true;
    cg_module_set_training(model, true);
}

int main(int argc, char **argv) {
    cg_threads_setup(argc, argv); // OpenMP's wait policy: may start cnn again (kernels/cpu/threads.c)
    options opt;
    int stop = parse_options(argc, argv, &opt);
    if (stop >= 0) return stop;

    const dataset_info *info = NULL;
    for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++)
        if (strcmp(datasets[i].name, opt.dataset) == 0) info = &datasets[i];
    if (info == NULL)
        return cg_cli_fail("cnn", cg_error(CG_ERR_ARG, "--dataset: '%s' is not one of fashion-mnist, mnist, "
                                                       "cifar10, cifar100, tinyimagenet, folder", opt.dataset));
    const char *dir = opt.data ? opt.data : info->default_dir;
    if (dir == NULL) return cg_cli_fail("cnn", cg_error(CG_ERR_ARG, "--dataset folder needs --data DIR"));

    cg_device dev;
    cg_status s = cg_device_parse(opt.device, &dev);
    if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    if (opt.threads > 0) cg_set_num_threads((int)opt.threads);
    char dev_name[16];
    cg_device_str(dev, dev_name, sizeof dev_name);

    cg_dataset *train = NULL, *test = NULL;
    if ((s = load_split(info, dir, true, &train)).code != CG_OK) return cg_cli_fail("cnn", s);
    if ((s = load_split(info, dir, false, &test)).code != CG_OK) return cg_cli_fail("cnn", s);
    if (opt.limit > 0 && opt.limit < train->count) train->count = opt.limit; // the first N images
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
    cg_rng init = cg_rng_new((uint64_t)opt.seed, CG_STREAM_INIT);
    cg_module *model = NULL; // the tutorial CNN or the MLP: examples/common/models.c
    if ((s = cg_model_new(opt.model, params, C, H, W, train->num_classes, &init, &model)).code != CG_OK)
        return cg_cli_fail("cnn", s);
    if (opt.no_fusion) cg_sequential_set_fusion(model, false);
    if (opt.load_path && (s = cg_checkpoint_load(params, opt.load_path)).code != CG_OK) return cg_cli_fail("cnn", s);

    // Everything that can fail on input is checked before the log is created and training starts.
    if (opt.save_path && (s = cg_checkpoint_check_writable(opt.save_path)).code != CG_OK) return cg_cli_fail("cnn", s);
    cg_csv_log *log = NULL;
    if (opt.log_path) {
        char header[320];
        snprintf(header, sizeof header,
                 "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s,device%s%s",
                 opt.precision_given ? ",precision,loss_scale,skipped_steps" : "",
                 opt.monitor ? "," CG_MONITOR_CSV_HEADER : "");
        s = cg_csv_log_open(&log, opt.log_path, header);
        if (s.code != CG_OK) return cg_cli_fail("cnn", s);
    }
    // The GPU's counters, sampled on a thread of their own; without NVML (or on the CPU) one
    // line says why and the gpu_ columns stay empty.
    cg_monitor *monitor = NULL;
    if (opt.monitor) {
        char why[512];
        monitor = cg_monitor_start(dev, 1.0, why, sizeof why);
        if (monitor == NULL) fprintf(stderr, "cnn: --monitor: %s; the gpu_ columns stay empty\n", why);
    }
    if (!opt.quiet)
        printf("%s: %lld training and %lld test images of %lldx%lldx%lld, %d classes; %lld parameters; %s\n",
               info->name, (long long)train->count, (long long)test->count, (long long)C, (long long)H, (long long)W,
               train->num_classes, (long long)cg_params_count(params), dev_name);
    if (!opt.quiet && dev.type == CG_CPU) printf("CPU: %s\n", cg_threads_describe());

    cg_optimizer *optimizer =
        cg_optimizer_new(params, opt.sgd ? cg_sgd_config((float)opt.lr) : cg_adam_config((float)opt.lr));
    // The data sets on the device, or streamed from host memory (--stream, or too large for the GPU).
    size_t bytes = (size_t)((train->count + test->count) * train->sample_numel);
    bool stream = dev.type != CG_CPU && (opt.stream || cg_loader_should_stream(dev, bytes));
    cg_loader *loader = stream ? cg_loader_new_streaming(train, opt.batch_size, true, false, (uint64_t)opt.seed, dev)
                               : cg_loader_new(train, opt.batch_size, true, false, (uint64_t)opt.seed, dev);
    cg_loader *test_loader = stream ? cg_loader_new_streaming(test, 500, false, false, 0, dev)
                                    : cg_loader_new(test, 500, false, false, 0, dev);
    if (stream && !opt.quiet)
        printf("streaming the images from host memory (%.1f MB): a background thread prepares each batch\n",
               (double)bytes / 1e6);
    cg_loader_set_normalization(loader, info->mean, info->std);
    cg_loader_set_normalization(test_loader, info->mean, info->std);
    bool augment = opt.augment >= 0 ? opt.augment : info->augment;
    if (augment) cg_loader_set_augmentation(loader, 4, true);
    cg_tape *tape = cg_tape_new(dev, 64 << 20);
    cg_tape *eval_tape = cg_tape_new(dev, 64 << 20); // its own arena: the training arena never moves
    cg_metrics *metrics = cg_metrics_new(dev);
    // Mixed precision: a 16-bit copy of the weights (made now, after --load), the loss scale on
    // the device, and both tapes computing under the autocast policy.
    cg_amp *amp = cg_amp_new(params, opt.precision, opt.loss_scale);
    cg_amp_attach(amp, tape);
    cg_amp_attach(amp, eval_tape);
    trainer tr = {model, tape, optimizer, metrics, amp};
    // On a GPU, epoch 1 runs eagerly (it sizes the arena and builds the cuDNN plans); in epoch 2
    // one step of each batch size is captured as a CUDA Graph and replayed for every later step.
    // The batch is gathered outside the graph, so each replay trains on the new batch.
    cg_graph *graph = cg_graph_new(dev);
    cg_progress progress;
    cg_progress_init(&progress, opt.quiet);

    double start = cg_seconds(), train_seconds = 0.0, test_loss = 0.0, test_accuracy = 0.0;
    for (long epoch = 1; epoch <= opt.epochs; epoch++) {
        double epoch_start = cg_seconds();
        cg_metrics_reset(metrics);
        cg_loader_start_epoch(loader);
        cg_batch batch;
        int64_t step = 0, steps = cg_loader_num_batches(loader);
        while (cg_loader_next(loader, &batch)) {
            if (opt.no_graph || epoch == 1) {
                train_step(&tr, &batch);
            } else if (!cg_graph_replay(graph, batch.size)) {
                cg_graph_begin(graph);
                train_step(&tr, &batch);
                cg_graph_end(graph, batch.size);
            }
            step++;
            cg_progress_draw(&progress, "epoch %ld/%ld  step %lld/%lld", epoch, opt.epochs, (long long)step,
                             (long long)steps);
        }
        double train_loss, train_accuracy;
        cg_metrics_read(metrics, train->count, &train_loss, &train_accuracy); // waits for the device
        double epoch_seconds = cg_seconds() - epoch_start;
        train_seconds += epoch_seconds;
        evaluate(model, eval_tape, test_loader, metrics, &test_loss, &test_accuracy);
        double images_per_s = (double)train->count / epoch_seconds;
        double seconds = cg_seconds() - start;
        char gpu_cells[128] = "", gpu_text[128] = ""; // with --monitor: the epoch's GPU counters
        if (opt.monitor) {
            cg_monitor_sample sample;
            if (monitor) sample = cg_monitor_take(monitor);
            cg_monitor_csv_cells(monitor ? &sample : NULL, gpu_cells, sizeof gpu_cells);
            if (monitor) {
                char counters[96];
                cg_monitor_describe(&sample, counters, sizeof counters);
                snprintf(gpu_text, sizeof gpu_text, "  |  %s", counters);
            }
        }
        char amp_cells[96] = "", amp_text[96] = ""; // the loss scale, read once an epoch
        if (opt.precision != CG_PRECISION_FP32 || opt.precision_given) {
            cg_amp_stats st = cg_amp_read(amp);
            snprintf(amp_cells, sizeof amp_cells, ",%s,%g,%lld", cg_precision_name(opt.precision), (double)st.scale,
                     (long long)st.skipped);
            if (opt.precision != CG_PRECISION_FP32)
                snprintf(amp_text, sizeof amp_text, "  |  %s, loss scale %g, %lld skipped", cg_precision_name(opt.precision),
                         (double)st.scale, (long long)st.skipped);
        }
        if (log) {
            s = cg_csv_log_row(log, "%ld,%.6f,%.4f,%.6f,%.4f,%.3f,%.1f,%s%s%s", epoch, train_loss, train_accuracy,
                               test_loss, test_accuracy, seconds, images_per_s, dev_name,
                               opt.precision_given ? amp_cells : "", gpu_cells);
            if (s.code != CG_OK) return cg_cli_fail("cnn", s);
        }
        cg_progress_done(&progress);
        if (!opt.quiet)
            printf("epoch %ld/%ld  train loss %.4f  accuracy %.4f  |  test loss %.4f  accuracy %.4f  |  %.2f s, "
                   "%.0f images/s%s%s\n",
                   epoch, opt.epochs, train_loss, train_accuracy, test_loss, test_accuracy, epoch_seconds, images_per_s,
                   amp_text, gpu_text);
    }
    printf("Test accuracy on %s: %.4f\n", dev_name, test_accuracy);
    if (!opt.quiet)
        printf("Training: %ld epochs in %.2f s (%.0f images/s)\n", opt.epochs, train_seconds,
               (double)train->count * opt.epochs / train_seconds);
    if (opt.save_path) {
        char epochs[32];
        snprintf(epochs, sizeof epochs, "%ld", opt.epochs);
        const char *metadata[] = {"format", "pt", "model", opt.model, "dataset", info->name, "epochs", epochs};
        if ((s = cg_checkpoint_save(params, opt.save_path, metadata, 4)).code != CG_OK) return cg_cli_fail("cnn", s);
        if (!opt.quiet) printf("saved %s\n", opt.save_path);
    }

    cg_monitor_stop(monitor);
    cg_csv_log_close(log);
    cg_graph_free(graph);
    cg_metrics_free(metrics);
    cg_tape_free(eval_tape);
    cg_tape_free(tape);
    cg_loader_free(test_loader);
    cg_loader_free(loader);
    cg_amp_free(amp);
    cg_optimizer_free(optimizer);
    cg_module_free(model);
    cg_params_free(params);
    cg_dataset_free(train);
    cg_dataset_free(test);
    return 0;
}

// simple_nn: the course's SimpleNN (chapter 2) in C. Linear(20, 50), ReLU, Linear(50, 1),
// Sigmoid, trained with binary cross-entropy and SGD (lr 0.01) on X = randn(1000, 20) with
// random 0/1 labels, batch 32 shuffled, 100 epochs; then the accuracy on the whole set at
// threshold 0.5. The same program runs on the CPU or a GPU (--device) and writes a CSV per epoch.
#include "cgrad.h"
#include "examples/common/cli.h"
#include "examples/common/epoch_log.h"
#include "examples/common/guard.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: simple_nn [options]\n"
            "Train the course's SimpleNN (Linear 20-50, ReLU, Linear 50-1, Sigmoid) on 1000 random samples.\n"
            "\n"
            "  --device DEV       cpu, cuda or cuda:N (default cpu)\n"
            "  --epochs N         passes over the data (default 100)\n"
            "  --batch-size N     samples per step (default 32; the last batch keeps the rest)\n"
            "  --lr X             learning rate (default 0.01 for sgd, 0.001 for adam)\n"
            "  --optimizer NAME   sgd or adam (default sgd)\n"
            "  --seed N           seed of the data, the weights and the shuffle (default 0)\n"
            "  --threads N        CPU threads (default: OpenMP's choice)\n"
            "  --log PATH         write a CSV row per epoch: epoch,loss,accuracy,seconds,device\n"
            "  --monitor          sample the GPU once a second through NVML (utilisation, memory,\n"
            "                     temperature, power) and add gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w\n"
            "                     to the log: each epoch's mean (the latest sample for epochs under 1 s)\n"
            "  --precision P      fp32 (default), fp16 or bf16: mixed precision as torch.autocast (the\n"
            "                     linear layers and ReLU in 16 bits with f32 accumulation, sigmoid, loss\n"
            "                     and SGD in f32 on FP32 master weights; on the CPU the rounding is emulated)\n"
            "  --loss-scale S     dynamic (default for fp16: 65536, x2 after 2000 good steps, x0.5 and the\n"
            "                     step skipped on inf/NaN), static:S (a fixed scale) or none (default for\n"
            "                     bf16). With --precision the log gets precision,loss_scale,skipped_steps\n"
            "  --no-graph         on a GPU, launch every kernel of every step (no CUDA Graph replay)\n"
            "  --quiet            print only the final accuracy\n"
            "  --help             this text\n"
            "\n"
            "The loss printed every 10 epochs and logged each epoch is the mean over the epoch's samples;\n"
            "the logged accuracy is over the epoch's training batches, the final one over the whole set.\n");
}

typedef struct {
    const char *device;
    long epochs, batch_size, seed, threads;
    double lr;
    bool adam, quiet, no_graph, monitor;
    const char *log_path;
    cg_precision precision;
    bool precision_given;
    cg_grad_scaler_config loss_scale;
    bool loss_scale_given;
} options;

// Fills *o from argv. Returns -1 to go on, or the exit status to stop with.
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.device = "cpu", .epochs = 100, .batch_size = 32, .seed = 0, .threads = 0, .lr = -1.0};
    static const struct option longopts[] = {
        {"device", required_argument, 0, 'd'},  {"epochs", required_argument, 0, 'e'},
        {"batch-size", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},
        {"optimizer", required_argument, 0, 'o'}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"log", required_argument, 0, 'L'},
        {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
        {"no-graph", no_argument, 0, 'G'},    {"monitor", no_argument, 0, 'M'},
        {"precision", required_argument, 0, 'P'}, {"loss-scale", required_argument, 0, 'S'},
        {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0; // we print our own one-line errors
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->device = optarg; break;
        case 'e': s = cg_cli_int("--epochs", optarg, 1, 1000000, &o->epochs); break;
        case 'b': s = cg_cli_int("--batch-size", optarg, 1, 1 << 20, &o->batch_size); break;
        case 'l': s = cg_cli_float("--lr", optarg, 0.0, 1e6, &o->lr); break;
        case 's': s = cg_cli_int("--seed", optarg, 0, 0x7fffffffL, &o->seed); break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &o->threads); break;
        case 'L': s = cg_cli_path("--log", optarg, &o->log_path); break;
        case 'q': o->quiet = true; break;
        case 'G': o->no_graph = true; break;
        case 'M': o->monitor = true; break;
        case 'P': s = cg_precision_parse(optarg, &o->precision), o->precision_given = true; break;
        case 'S': s = cg_loss_scale_parse(optarg, &o->loss_scale), o->loss_scale_given = true; break;
        case 'o':
            if (strcmp(optarg, "sgd") == 0)
                o->adam = false;
            else if (strcmp(optarg, "adam") == 0)
                o->adam = true;
            else
                s = cg_error(CG_ERR_ARG, "--optimizer: '%s' is not sgd or adam", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: s = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code != CG_OK) return cg_cli_fail("simple_nn", s);
    if (o->lr < 0) o->lr = o->adam ? 1e-3 : 1e-2;
    if (!o->loss_scale_given) o->loss_scale = cg_loss_scale_default(o->precision);
    return -1;
}

typedef struct {
    cg_module *model;
    cg_tape *tape;
    cg_optimizer *optimizer;
    cg_metrics *metrics;
    cg_amp *amp; // mixed precision (fp32: plain backward and step)
} trainer;

// One training step on a batch: everything it does is queued on the device, with nothing read
// back, so on a GPU it can be captured once as a CUDA Graph and replayed.
static void train_step(trainer *tr, const cg_batch *batch) {
    cg_tensor *probs = cg_module_forward(tr->model, tr->tape, batch->x); // forward: (B, 1)
    cg_tensor *loss = cg_bce(tr->tape, probs, batch->targets);          // loss: BCE, mean
    cg_optimizer_zero_grad(tr->optimizer);                               // optimizer.zero_grad()
    cg_amp_backward(tr->amp, tr->tape, loss);                            // scaler.scale(loss).backward()
    cg_amp_step(tr->amp, tr->optimizer);                                 // scaler.step(opt); scaler.update()
    cg_metrics_add_loss(tr->metrics, loss, batch->size);
    cg_metrics_add_binary_correct(tr->metrics, probs, batch->targets, 0.5f);
    cg_tape_clear(tr->tape);                                             // free the step's tensors
}

// The progress line's loss: the epoch's, already read.
static double value_of(void *ctx) { return *(const double *)ctx; }

int main(int argc, char **argv) {
    options opt;
    int stop = parse_options(argc, argv, &opt);
    if (stop >= 0) return stop;

    cg_device dev;
    cg_status s = cg_device_parse(opt.device, &dev);
    if (s.code != CG_OK) return cg_cli_fail("simple_nn", s);
    if (opt.threads > 0) cg_set_num_threads((int)opt.threads);
    char dev_name[16];
    cg_device_str(dev, dev_name, sizeof dev_name);

    // Everything is checked before the log is created, so bad input leaves no file behind.
    // The CSV log (its precision and GPU columns as asked), the GPU monitor and the progress line:
    // examples/common/epoch_log.h.
    cg_epoch_log *log = NULL;
    s = cg_epoch_log_open(&log, "simple_nn", opt.log_path, "epoch,loss,accuracy,seconds,device", opt.precision_given,
                          opt.monitor, dev, opt.quiet);
    if (s.code != CG_OK) return cg_cli_fail("simple_nn", s);
    double start = cg_seconds();

    // Data: X = randn(1000, 20), y = randn(1000) > 0.
    cg_dataset *data = cg_synthetic_binary(1000, 20, (uint64_t)opt.seed);

    // Model: the course's SimpleNN, parameters named as PyTorch names them.
    cg_params *params = cg_params_new(dev);
    cg_rng init = cg_rng_new((uint64_t)opt.seed, CG_STREAM_INIT);
    cg_module *model = cg_sequential_new();
    cg_sequential_add(model, cg_linear_new(params, "fc1", 20, 50, true, &init));
    cg_sequential_add(model, cg_relu_new());
    cg_sequential_add(model, cg_linear_new(params, "fc2", 50, 1, true, &init));
    cg_sequential_add(model, cg_sigmoid_new());

    cg_optimizer *optimizer =
        cg_optimizer_new(params, opt.adam ? cg_adam_config((float)opt.lr) : cg_sgd_config((float)opt.lr));
    cg_loader *loader = cg_loader_new(data, opt.batch_size, true, false, (uint64_t)opt.seed, dev);
    cg_tape *tape = cg_tape_new(dev, 1 << 20);
    cg_metrics *metrics = cg_metrics_new(dev);
    cg_amp *amp = cg_amp_new(params, opt.precision, opt.loss_scale);
    cg_amp_attach(amp, tape);
    trainer tr = {model, tape, optimizer, metrics, amp};
    // On a GPU the first epoch runs eagerly (it sizes the arena and fills the allocator's
    // cache); the second is captured whole as a CUDA Graph (every batch's gather and step, on
    // fixed addresses), and each later epoch is one replay of it. The CPU runs every epoch
    // eagerly.
    cg_graph *graph = cg_graph_new(dev);
    // Divergence and Ctrl-C / SIGTERM (checked once an epoch: on a GPU an epoch is one graph).
    cg_guard *guard = cg_guard_new("simple_nn", params, metrics, amp, cg_loader_num_batches(loader), false);
    cg_guard_catch_signals();

    double train_start = cg_seconds(); // after the set-up, as PyTorch's own timing of this loop
    for (long epoch = 1; epoch <= opt.epochs; epoch++) {
        cg_epoch_log_begin(log);
        cg_loader_start_epoch(loader); // the new order is copied to the device, outside the graph
        cg_guard_epoch_begin(guard, epoch);
        bool capture = !opt.no_graph && epoch == 2;
        if (opt.no_graph || epoch == 1 || !cg_graph_replay(graph, 0)) {
            if (capture) cg_graph_begin(graph);
            cg_metrics_reset(metrics);
            cg_batch batch;
            while (cg_loader_next(loader, &batch)) {
                train_step(&tr, &batch);
                cg_guard_record(guard); // capturable: a device copy of the loss sum
            }
            if (capture) cg_graph_end(graph, 0);
        }
        if (!cg_guard_epoch_end(guard, epoch, cg_loader_num_batches(loader))) break;
        double loss, accuracy;
        cg_metrics_read(metrics, data->count, &loss, &accuracy);
        double seconds = cg_seconds() - start;
        char cells[128];
        snprintf(cells, sizeof cells, "%ld,%.6f,%.4f,%.6f,%s", epoch, loss, accuracy, seconds, dev_name);
        if ((s = cg_epoch_log_end(log, cells, amp, opt.precision, NULL, 0)).code != CG_OK)
            return cg_cli_fail("simple_nn", s);
        if (!opt.quiet && epoch % 10 == 0) {
            printf("Epoch [%ld/%ld], Loss: %.4f\n", epoch, opt.epochs, loss);
        }
        cg_epoch_log_progress(log, epoch, opt.epochs, 1, 1, data->count, value_of, &loss); // an epoch is one step here
    }
    cg_device_synchronize(dev);
    double train_seconds = cg_seconds() - train_start;
    int status = cg_guard_finish(guard); // 0; 1 diverged; 130 / 143 interrupted (the line is printed)
    cg_guard_free(guard);
    if (status == 0) { // a diverged or interrupted run skips this (its line is printed)
        // Accuracy on the whole set, without recording (torch.no_grad()).
        cg_tensor *x_all = cg_tensor_new(dev, CG_F32, 2, (int64_t[]){data->count, 20});
        cg_tensor *y_all = cg_tensor_new(dev, CG_F32, 1, (int64_t[]){data->count});
        float *targets = cg_xmalloc((size_t)data->count * sizeof(float));
        for (int64_t i = 0; i < data->count; i++) targets[i] = (float)data->labels[i];
        cg_tensor_copy_from_host(x_all, data->x, data->count * 20);
        cg_tensor_copy_from_host(y_all, targets, data->count);
        cg_module_set_training(model, false);
        tape->grad_enabled = false;
        cg_metrics_reset(metrics);
        cg_tensor *probs = cg_module_forward(model, tape, x_all);
        cg_metrics_add_binary_correct(metrics, probs, y_all, 0.5f);
        double unused, accuracy;
        cg_metrics_read(metrics, data->count, &unused, &accuracy);
        printf("Accuracy on %s: %.4f\n", dev_name, accuracy);
        if (!opt.quiet && opt.precision != CG_PRECISION_FP32) {
            cg_amp_stats st = cg_amp_read(amp);
            printf("Precision %s: loss scale %g at the end, %lld of %lld steps skipped (inf/NaN gradients)\n",
                   cg_precision_name(opt.precision), (double)st.scale, (long long)st.skipped, (long long)st.steps);
        }
        int64_t steps = opt.epochs * cg_loader_num_batches(loader);
        if (!opt.quiet)
            printf("Training: %ld epochs, %lld steps in %.3f s (%.1f us per step)\n", opt.epochs, (long long)steps,
                   train_seconds, 1e6 * train_seconds / (double)steps);
        free(targets);
        cg_tensor_free(x_all);
        cg_tensor_free(y_all);
    }

    cg_epoch_log_close(log);
    cg_graph_free(graph);
    cg_metrics_free(metrics);
    cg_tape_free(tape);
    cg_loader_free(loader);
    cg_amp_free(amp);
    cg_optimizer_free(optimizer);
    cg_module_free(model);
    cg_params_free(params);
    cg_dataset_free(data);
    return status;
}

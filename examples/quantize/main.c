// quantize: the course's INT8 section on a trained model. Loads an fp32 checkpoint of the tutorial
// CNN or the MLP (written by `cnn --save`), calibrates the activation ranges on a few training
// batches, converts the model to int8 (layers/quantize.h) and reports fp32, fp16 (autocast, lesson
// 04) and int8: test accuracy, model size in bytes, inference images/s, and the error of every int8
// layer (SQNR).
// Not here: quantisation-aware training (the course mentions it; cgrad does post-training only).
#include "cgrad.h"
#include "core/quant/qkernels.h"
#include "layers/quantize.h"
#include "examples/common/cli.h"
#include "examples/common/models.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: quantize --load PATH [options]\n"
            "Convert a trained fp32 model to int8 (post-training quantisation) and compare fp32, fp16\n"
            "(autocast with a 16-bit copy of the weights; emulated on the CPU) and int8.\n"
            "\n"
            "  --load PATH          fp32 weights written by `cnn --save` (required)\n"
            "  --model NAME         tutorial or mlp (default: the checkpoint's \"model\" metadata)\n"
            "  --dataset NAME       fashion-mnist (default), mnist or cifar10\n"
            "  --data DIR           where the data set is (default /usr/share/datasets/fashion-mnist;\n"
            "                       data/mnist, data/cifar-10-batches-bin for the others)\n"
            "  --device DEV         cpu, cuda or cuda:N (default cpu)\n"
            "  --calib-batches N    training batches of 128 the activation ranges are calibrated on (default 10)\n"
            "  --observer NAME      minmax, percentile or entropy (KL, TensorRT's) (default percentile)\n"
            "  --percentile P       the percentile observer's quantile, in (50, 100] (default 99.99)\n"
            "  --batch-size N       images per forward when timing inference (default 4096)\n"
            "  --reps N             timed forwards per precision; the best is reported (default 5)\n"
            "  --sqnr-images N      test images the per-layer error is measured on (default 1000)\n"
            "  --threads N          CPU threads (default: OpenMP's choice)\n"
            "  --quiet              print only the accuracies and the speed ratio\n"
            "  --help               this text\n");
}

typedef struct {
    const char *load_path, *model, *dataset, *data, *device;
    long calib_batches, batch_size, reps, sqnr_images, threads;
    double percentile;
    cg_observer_kind observer;
    bool quiet;
} options;

static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.dataset = "fashion-mnist", .device = "cpu", .calib_batches = 10, .batch_size = 4096, .reps = 5,
                   .sqnr_images = 1000, .percentile = 99.99,
                   .observer = CG_OBSERVER_PERCENTILE};
    static const struct option longopts[] = {
        {"load", required_argument, 0, 'R'},          {"model", required_argument, 0, 'm'},
        {"dataset", required_argument, 0, 'D'},       {"data", required_argument, 0, 'd'},
        {"device", required_argument, 0, 'v'},        {"calib-batches", required_argument, 0, 'c'},
        {"observer", required_argument, 0, 'o'},      {"percentile", required_argument, 0, 'p'},
        {"batch-size", required_argument, 0, 'b'},    {"reps", required_argument, 0, 'r'},
        {"sqnr-images", required_argument, 0, 'n'},   {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cg_status s = cg_ok();
    int c;
    opterr = 0;
    while (s.code == CG_OK && (c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'R': s = cg_cli_path("--load", optarg, &o->load_path); break;
        case 'm': o->model = optarg; break;
        case 'D': o->dataset = optarg; break;
        case 'd': s = cg_cli_path("--data", optarg, &o->data); break;
        case 'v': o->device = optarg; break;
        case 'c': s = cg_cli_int("--calib-batches", optarg, 1, 100000, &o->calib_batches); break;
        case 'p': s = cg_cli_float("--percentile", optarg, 50.000001, 100.0, &o->percentile); break;
        case 'b': s = cg_cli_int("--batch-size", optarg, 1, 1 << 16, &o->batch_size); break;
        case 'r': s = cg_cli_int("--reps", optarg, 1, 1000, &o->reps); break;
        case 'n': s = cg_cli_int("--sqnr-images", optarg, 1, 1 << 20, &o->sqnr_images); break;
        case 't': s = cg_cli_int("--threads", optarg, 1, 1024, &o->threads); break;
        case 'q': o->quiet = true; break;
        case 'o':
            if (strcmp(optarg, "minmax") == 0)
                o->observer = CG_OBSERVER_MINMAX;
            else if (strcmp(optarg, "percentile") == 0)
                o->observer = CG_OBSERVER_PERCENTILE;
            else if (strcmp(optarg, "entropy") == 0)
                o->observer = CG_OBSERVER_ENTROPY;
            else
                s = cg_error(CG_ERR_ARG, "--observer: '%s' is not minmax, percentile or entropy", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: s = cg_cli_option_error(c, argv); break; // a value missing, or an option unknown
        }
    }
    if (s.code == CG_OK) s = cg_cli_no_operands(argc, argv);
    if (s.code == CG_OK && o->load_path == NULL) s = cg_error(CG_ERR_ARG, "--load PATH is required (see --help)");
    if (s.code != CG_OK) return cg_cli_fail("quantize", s);
    return -1;
}

// Test accuracy of the fp32 model (int8 == NULL; in fp16 when the tape has a 16-bit autocast) or of
// the int8 model over a whole split.
static double accuracy(cg_module *fp32, cg_qmodel *int8, cg_tape *tape, cg_loader *loader, cg_metrics *metrics) {
    cg_metrics_reset(metrics);
    cg_loader_start_epoch(loader);
    cg_batch batch;
    int64_t seen = 0;
    while (cg_loader_next(loader, &batch)) {
        cg_tensor *logits = int8 ? cg_qmodel_forward(int8, batch.x)
                                 : cg_autocast_f32(tape, cg_module_forward(fp32, tape, batch.x)); // fp16 logits to f32
        cg_metrics_add_argmax_correct(metrics, logits, batch.labels);
        cg_tape_clear(tape);
        seen += batch.size;
    }
    double loss, acc;
    cg_metrics_read(metrics, seen, &loss, &acc);
    return acc;
}

// Images per second of one forward of x, the best of reps after one untimed warm-up forward.
static double images_per_s(cg_module *fp32, cg_qmodel *int8, cg_tape *tape, cg_tensor *x, long reps) {
    double best = 1e30;
    for (long r = -1; r < reps; r++) {
        cg_device_synchronize(x->device);
        double t0 = cg_seconds();
        if (int8)
            cg_qmodel_forward(int8, x);
        else
            cg_module_forward(fp32, tape, x);
        cg_device_synchronize(x->device);
        double t = cg_seconds() - t0;
        cg_tape_clear(tape);
        if (r >= 0 && t < best) best = t;
    }
    return (double)x->shape[0] / best;
}

int main(int argc, char **argv) {
    options opt;
    int stop = parse_options(argc, argv, &opt);
    if (stop >= 0) return stop;
    cg_status s;
    char model_name[64] = "";
    if (opt.model == NULL) {
        // A file that cannot be read is a file error (exit 1); only a missing "model" entry asks for --model.
        s = cg_checkpoint_read_metadata(opt.load_path, "model", model_name, sizeof model_name);
        if (s.code != CG_OK && s.code != CG_ERR_ARG) return cg_cli_fail("quantize", s);
        if (s.code != CG_OK)
            return cg_cli_fail("quantize", cg_error(CG_ERR_ARG, "%s; say which with --model", s.message));
        if (strcmp(model_name, "tutorial") != 0 && strcmp(model_name, "mlp") != 0)
            return cg_cli_fail("quantize", cg_error(CG_ERR_FORMAT, "checkpoint '%s': its metadata names the model "
                                                    "'%s', not one cgrad builds (tutorial, mlp); say which with --model",
                                                    opt.load_path, model_name));
        opt.model = model_name;
    }
    const cg_dataset_info *info = cg_dataset_info_find(opt.dataset);
    if (info == NULL)
        return cg_cli_fail("quantize", cg_error(CG_ERR_ARG, "--dataset: '%s' is not one of %s", opt.dataset,
                                                cg_dataset_info_names()));
    cg_device dev;
    if ((s = cg_device_parse(opt.device, &dev)).code != CG_OK) return cg_cli_fail("quantize", s);
    if (opt.threads > 0) cg_set_num_threads((int)opt.threads);
    char dev_name[16];
    cg_device_str(dev, dev_name, sizeof dev_name);

    // Everything below is freed at `done`, on success and on every error (nothing is left to the OS).
    int status = 0;
    cg_dataset *train = NULL, *test = NULL;
    cg_params *params = NULL, *buffers = NULL;
    cg_module *model = NULL;
    cg_qmodel *q = NULL;
    cg_tape *tape = NULL, *tape16 = NULL;
    cg_metrics *metrics = NULL;
    cg_loader *calib = NULL, *test_loader = NULL, *sqnr_loader = NULL, *speed_loader = NULL;
    cg_amp *amp16 = NULL;
    const char *dir = opt.data ? opt.data : info->default_dir;
    if ((s = cg_dataset_info_load(info, dir, true, NULL, &train)).code != CG_OK) goto fail;
    if ((s = cg_dataset_info_load(info, dir, false, NULL, &test)).code != CG_OK) goto fail;
    int64_t C = train->sample_shape[0], H = train->sample_shape[1], W = train->sample_shape[2];

    params = cg_params_new(dev);
    buffers = cg_params_new(dev);
    cg_rng init = cg_rng_new(0, CG_STREAM_INIT);
    if ((s = cg_model_new(opt.model, params, buffers, C, H, W, train->num_classes, &init, &model)).code != CG_OK)
        goto fail;
    if ((s = cg_checkpoint_load_blocks((cg_params *[]){params, buffers}, 2, opt.load_path)).code != CG_OK)
        goto fail; // refuses NaN / inf weights
    cg_module_set_training(model, false);

    s = cg_qmodel_new(&q, model, C, H, W, opt.observer, opt.percentile, dev);
    if (s.code != CG_OK) goto fail;

    tape = cg_tape_new(dev, 64 << 20);
    tape->grad_enabled = false;
    metrics = cg_metrics_new(dev);

    // Calibration: the first N shuffled training batches of 128.
    calib = cg_loader_new(train, 128, true, false, 1, dev);
    cg_loader_set_normalization(calib, info->mean, info->std);
    cg_loader_start_epoch(calib);
    cg_batch batch;
    long batches = 0;
    double t0 = cg_seconds();
    while (batches < opt.calib_batches && cg_loader_next(calib, &batch)) {
        cg_qmodel_calibrate(q, tape, batch.x);
        batches++;
    }
    // Finite weights can still overflow to infinities on the way through: no range can be taken.
    for (int i = 0; i < q->count; i++) {
        int64_t bad = q->layers[i].observer.nonfinite;
        if (bad > 0) {
            s = cg_error(CG_ERR_FORMAT, "checkpoint '%s': layer %s gave %lld NaN or infinite outputs during "
                         "calibration (weights too large): refusing to quantise", opt.load_path, q->layers[i].name,
                         (long long)bad);
            goto fail;
        }
    }
    cg_qmodel_convert(q);
    double calib_seconds = cg_seconds() - t0;
    if (!opt.quiet) {
        char observer[64];
        if (opt.observer == CG_OBSERVER_PERCENTILE)
            snprintf(observer, sizeof observer, "percentile %g%%", opt.percentile);
        else
            snprintf(observer, sizeof observer, "%s", opt.observer == CG_OBSERVER_MINMAX ? "min-max" : "entropy (KL)");
        printf("%s, %s model from %s on %s: calibrated on %ld batches of 128 (%s observer) in %.2f s\n", info->name,
               opt.model, opt.load_path, dev_name, batches, observer, calib_seconds);
    }

    // Accuracy on the whole test set.
    test_loader = cg_loader_new(test, 500, false, false, 0, dev);
    cg_loader_set_normalization(test_loader, info->mean, info->std);
    double acc32 = accuracy(model, NULL, tape, test_loader, metrics);
    double acc8 = accuracy(model, q, tape, test_loader, metrics);
    // The same fp32 model in fp16, lesson 04's way: a 16-bit copy of the weights and a tape whose
    // products and convolutions run in fp16 with f32 sums (on the CPU the rounding is emulated:
    // accurate, but slower than fp32).
    amp16 = cg_amp_new(params, CG_PRECISION_FP16, cg_loss_scale_default(CG_PRECISION_FP16));
    tape16 = cg_tape_new(dev, 64 << 20);
    tape16->grad_enabled = false;
    cg_amp_attach(amp16, tape16);
    double acc16 = accuracy(model, NULL, tape16, test_loader, metrics);

    // Per-layer error on the first test images.
    int64_t sqnr_n = opt.sqnr_images < test->count ? opt.sqnr_images : test->count;
    sqnr_loader = cg_loader_new(test, sqnr_n < 500 ? sqnr_n : 500, false, false, 0, dev);
    cg_loader_set_normalization(sqnr_loader, info->mean, info->std);
    cg_loader_start_epoch(sqnr_loader);
    for (int64_t done = 0; done < sqnr_n && cg_loader_next(sqnr_loader, &batch); done += batch.size)
        cg_qmodel_measure_error(q, tape, batch.x);

    // Speed: one batch of batch_size test images (fewer if the test set is smaller).
    int64_t bs = opt.batch_size < test->count ? opt.batch_size : test->count;
    speed_loader = cg_loader_new(test, bs, false, false, 0, dev);
    cg_loader_set_normalization(speed_loader, info->mean, info->std);
    cg_loader_start_epoch(speed_loader);
    cg_loader_next(speed_loader, &batch);
    double ips32 = images_per_s(model, NULL, tape, batch.x, opt.reps);
    double ips8 = images_per_s(model, q, tape, batch.x, opt.reps);
    double ips16 = images_per_s(model, NULL, tape16, batch.x, opt.reps);

    int64_t bytes32 = cg_qmodel_fp32_bytes(q), bytes8 = cg_qmodel_bytes(q);
    if (!opt.quiet) {
        printf("\n%-10s %10s %14s %16s\n", "precision", "accuracy", "size (bytes)", "images/s");
        printf("%-10s %10.4f %14lld %16.0f\n", "fp32", acc32, (long long)bytes32, ips32);
        printf("%-10s %10.4f %14lld %16.0f%s\n", "fp16", acc16, (long long)bytes32 / 2, ips16,
               dev.type == CG_CPU ? "   (16 bits emulated on the CPU)" : "");
        printf("%-10s %10.4f %14lld %16.0f\n", "int8", acc8, (long long)bytes8, ips8);
        printf("int8 - fp32: %+.2f points; %.2fx smaller; %.2fx the images/s (%s, batch %lld, best of %ld)\n",
               100.0 * (acc8 - acc32), (double)bytes32 / bytes8, ips8 / ips32, dev_name, (long long)bs, opt.reps);
        const cg_qkernels *qk = cg_qkernels_for(dev);
        if (qk->cublaslt_gemms) // on a GPU: which int8 product ran
            printf("int8 products through cuBLASLt (int8 Tensor Cores): %lld; the others through the dp4a kernel\n",
                   (long long)qk->cublaslt_gemms());
        printf("\nper-layer error on %lld test images (SQNR, dB; higher is better, +6 dB per bit)\n", (long long)sqnr_n);
        printf("%-6s %-11s %-16s %12s %12s %14s %10s\n", "layer", "kind", "output", "weights dB", "output dB",
               "output scale", "zero point");
        for (int i = 0; i < q->count; i++) {
            const cg_qlayer *L = &q->layers[i];
            if (L->kind != CG_QLAYER_CONV && L->kind != CG_QLAYER_LINEAR) continue;
            char shape[64], kind[16];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld%s", (long long)L->out_c, (long long)L->out_h,
                     (long long)L->out_w, L->to_float ? " f32" : " i8");
            snprintf(kind, sizeof kind, "%s%s", L->kind == CG_QLAYER_CONV ? "conv" : "linear", L->relu ? "+relu" : "");
            printf("%-6s %-11s %-16s %12.1f %12.1f %14.6g %10d\n", L->name, kind, shape, L->weight_sqnr_db,
                   10.0 * log10(L->signal / L->noise), L->to_float ? 0.0 : L->out_q.scale,
                   L->to_float ? 0 : L->out_q.zero_point);
        }
    }
    printf("Test accuracy on %s: fp32 %.4f, int8 %.4f\n", dev_name, acc32, acc8);
    printf("Inference on %s, batch %lld: fp32 %.0f images/s, int8 %.0f images/s (%.2fx)\n", dev_name, (long long)bs,
           ips32, ips8, ips8 / ips32);
    printf("fp16 on %s: accuracy %.4f, %.0f images/s (%.2fx fp32)\n", dev_name, acc16, ips16, ips16 / ips32);

    goto done;
fail:
    status = cg_cli_fail("quantize", s);
done:
    cg_loader_free(speed_loader);
    cg_loader_free(sqnr_loader);
    cg_loader_free(test_loader);
    cg_loader_free(calib);
    cg_metrics_free(metrics);
    cg_tape_free(tape);
    cg_tape_free(tape16);
    cg_amp_free(amp16);
    cg_qmodel_free(q);
    cg_module_free(model);
    cg_params_free(params);
    cg_params_free(buffers);
    cg_dataset_free(train);
    cg_dataset_free(test);
    return status;
}

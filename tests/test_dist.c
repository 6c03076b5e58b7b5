// test_dist.c: data-parallel training over MPI ranks on the CPU (core/dist/, datasets/shard.c).
// Run by ctest without a launcher, it starts itself again as mpiexec -n 2 (skipped, 77, in a build
// without MPI). Under the launcher every rank:
//  - trains a residual block (conv, ReLU, conv, ReLU, conv, + the skip, ReLU, max pool, Linear)
//    on its share of 100 samples at batch 16, from weights drawn with a seed of its own (so the
//    broadcast from rank 0 must replace them), with Adam and with SGD, and compares the weights
//    with the same model trained in one process at batch 16 x ranks on the same epochs: the same
//    within summation order (the last, partial step included);
//  - trains a network with batch norm (conv, BatchNorm2d, ReLU, twice, max pool, Linear) the same
//    way with SGD: with synchronised batch norm (cg_dist_sync_batch_norm) the weights and the
//    running statistics are those of one process at batch 16 x ranks (within summation order);
//    without it the running statistics differ (each rank's own batch);
//  - averages two numbers over ranks that saw different sample counts (cg_dist_mean);
//  - trains one fp16 step in which only rank 1's gradients overflow: every rank skips it (the
//    inf/NaN flag is reduced too), then a finite step leaves the ranks with equal weights.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    cg_params *params;
    cg_module *c1, *c2, *c3, *fc;
} resnet;

static resnet resnet_new(uint64_t seed) {
    resnet m;
    cg_rng rng = cg_rng_new(seed, CG_STREAM_INIT);
    m.params = cg_params_new(cg_cpu());
    m.c1 = cg_conv2d_new(m.params, "c1", 1, 8, 3, 1, 1, true, &rng);
    m.c2 = cg_conv2d_new(m.params, "c2", 8, 8, 3, 1, 1, true, &rng);
    m.c3 = cg_conv2d_new(m.params, "c3", 8, 8, 3, 1, 1, true, &rng);
    m.fc = cg_linear_new(m.params, "fc", 8 * 4 * 4, 10, true, &rng);
    return m;
}

static void resnet_free(resnet *m) {
    cg_module_free(m->c1), cg_module_free(m->c2), cg_module_free(m->c3), cg_module_free(m->fc);
    cg_params_free(m->params);
}

// x (N, 1, 8, 8) -> logits (N, 10)
static cg_tensor *resnet_forward(void *model, cg_tape *t, cg_tensor *x) {
    resnet *m = model;
    cg_tensor *h = cg_relu(t, cg_module_forward(m->c1, t, x));
    cg_tensor *r = cg_module_forward(m->c3, t, cg_relu(t, cg_module_forward(m->c2, t, h)));
    cg_tensor *y = cg_relu(t, cg_add(t, r, h)); // the skip connection
    return cg_module_forward(m->fc, t, cg_flatten(t, cg_max_pool2d(t, y, 2, 2)));
}

// x (N, 1, 8, 8) -> conv 3x3, BatchNorm2d, ReLU, conv 3x3, BatchNorm2d, ReLU, max pool 2, Linear -> (N, 10)
typedef struct {
    cg_params *params, *buffers; // buffers: the running statistics
    cg_module *c1, *bn1, *c2, *bn2, *fc;
} bn_net;

static bn_net bn_net_new(uint64_t seed) {
    bn_net m;
    cg_rng rng = cg_rng_new(seed, CG_STREAM_INIT);
    m.params = cg_params_new(cg_cpu());
    m.buffers = cg_params_new(cg_cpu());
    m.c1 = cg_conv2d_new(m.params, "c1", 1, 8, 3, 1, 1, false, &rng);
    m.bn1 = cg_batch_norm2d_new(m.params, m.buffers, "bn1", 8);
    m.c2 = cg_conv2d_new(m.params, "c2", 8, 8, 3, 1, 1, false, &rng);
    m.bn2 = cg_batch_norm2d_new(m.params, m.buffers, "bn2", 8);
    m.fc = cg_linear_new(m.params, "fc", 8 * 4 * 4, 10, true, &rng);
    // gamma away from 1, so that a wrong gamma factor in the backward shows
    cg_rng_fill_normal(&rng, ((cg_batch_norm2d_layer *)m.bn1)->weight, 1.0f, 0.3f);
    cg_rng_fill_normal(&rng, ((cg_batch_norm2d_layer *)m.bn2)->weight, 1.0f, 0.3f);
    return m;
}

static void bn_net_free(bn_net *m) {
    cg_module *all[] = {m->c1, m->bn1, m->c2, m->bn2, m->fc};
    for (int i = 0; i < 5; i++) cg_module_free(all[i]);
    cg_params_free(m->params);
    cg_params_free(m->buffers);
}

static cg_tensor *bn_net_forward(void *model, cg_tape *t, cg_tensor *x) {
    bn_net *m = model;
    cg_tensor *h = cg_relu(t, cg_module_forward(m->bn1, t, cg_module_forward(m->c1, t, x)));
    h = cg_relu(t, cg_module_forward(m->bn2, t, cg_module_forward(m->c2, t, h)));
    return cg_module_forward(m->fc, t, cg_flatten(t, cg_max_pool2d(t, h, 2, 2)));
}

// `epochs` over loader l of the model `forward` runs (its parameters `params`), SGD or Adam by
// `config`; with d, each step's gradients are averaged over the ranks, and with sync_bn its batch
// norm is synchronised over them too.
typedef cg_tensor *(*forward_fn)(void *model, cg_tape *t, cg_tensor *x);
static void train(forward_fn forward, void *model, cg_params *params, cg_loader *l, cg_optim_config config,
                  cg_dist *d, bool sync_bn, int epochs) {
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 20);
    cg_optimizer *o = cg_optimizer_new(params, config);
    if (d && cg_dist_prepare(d, params, t).code != CG_OK) fail("cg_dist_prepare", "refused the same model");
    if (sync_bn) cg_dist_sync_batch_norm(d, t);
    for (int e = 0; e < epochs; e++) {
        cg_loader_start_epoch(l);
        cg_batch b;
        while (cg_loader_next(l, &b)) {
            cg_tensor *loss = cg_cross_entropy(t, forward(model, t, b.x), b.labels);
            cg_optimizer_zero_grad(o);
            cg_tape_backward(t, loss);
            cg_dist_sync_gradients(d, NULL);
            cg_optimizer_step(o);
            cg_tape_clear(t);
        }
    }
    cg_optimizer_free(o);
    cg_tape_free(t);
}

static double max_difference(const cg_params *a, const cg_params *b);

// Synchronised batch norm against one process with the whole batch; without it, the running
// statistics must differ (else this check could not fail).
static void check_sync_batch_norm(cg_dist *d, const cg_dataset *data) {
    int W = cg_dist_world(d), B = 16;
    bn_net single = bn_net_new(2), synced = bn_net_new(2 + 1000 * (uint64_t)cg_dist_rank(d)), per_rank = bn_net_new(2);
    cg_loader *whole = cg_loader_new(data, B * W, true, false, 3, cg_cpu());
    cg_loader *share = cg_loader_new(data, B, true, false, 3, cg_cpu());
    if (cg_loader_shard(share, d, CG_SHARD_PAD).code != CG_OK) fail("sync batch norm", "cg_loader_shard refused");
    train(bn_net_forward, &single, single.params, whole, cg_sgd_config(0.05f), NULL, false, 2);
    train(bn_net_forward, &synced, synced.params, share, cg_sgd_config(0.05f), d, true, 2);
    cg_loader_free(share);
    share = cg_loader_new(data, B, true, false, 3, cg_cpu());
    if (cg_loader_shard(share, d, CG_SHARD_PAD).code != CG_OK) fail("sync batch norm", "cg_loader_shard refused");
    train(bn_net_forward, &per_rank, per_rank.params, share, cg_sgd_config(0.05f), d, false, 2);
    double weights = max_difference(single.params, synced.params), stats = max_difference(single.buffers, synced.buffers);
    double unsynced = max_difference(single.buffers, per_rank.buffers);
    if (weights > 1e-5 || stats > 1e-5)
        fail("synchronised batch norm", "rank %d: %d ranks at batch %d end with weights %.3g and running statistics "
             "%.3g away from one process at batch %d (tolerance 1e-5)", cg_dist_rank(d), W, B, weights, stats, B * W);
    else
        printf("batch norm synchronised: %d ranks at batch %d, 2 epochs of 100 samples: weights within %.3g, running "
               "statistics within %.3g of one process at batch %d\n", W, B, weights, stats, B * W);
    if (unsynced < 1e-3)
        fail("batch norm per rank", "rank %d: running statistics %.3g from one process's: each rank's own batch "
             "should make them differ", cg_dist_rank(d), unsynced);
    else
        printf("batch norm per rank (not synchronised): running statistics %.3g away\n", unsynced);
    cg_loader_free(whole);
    cg_loader_free(share);
    bn_net_free(&single), bn_net_free(&synced), bn_net_free(&per_rank);
}

static double max_difference(const cg_params *a, const cg_params *b) {
    double worst = 0.0;
    for (int64_t i = 0; i < a->numel; i++) worst = fmax(worst, fabs((double)a->values[i] - (double)b->values[i]));
    return worst;
}

static void check_equivalence(cg_dist *d, const cg_dataset *data, const char *name, cg_optim_config config,
                              double tolerance) {
    int W = cg_dist_world(d), B = 16;
    resnet single = resnet_new(1), ddp = resnet_new(1 + 1000 * (uint64_t)cg_dist_rank(d));
    cg_loader *whole = cg_loader_new(data, B * W, true, false, 3, cg_cpu());
    cg_loader *share = cg_loader_new(data, B, true, false, 3, cg_cpu());
    if (cg_loader_shard(share, d, CG_SHARD_PAD).code != CG_OK) fail(name, "cg_loader_shard refused");
    train(resnet_forward, &single, single.params, whole, config, NULL, false, 2);
    train(resnet_forward, &ddp, ddp.params, share, config, d, false, 2);
    double diff = max_difference(single.params, ddp.params);
    if (diff > tolerance)
        fail(name, "rank %d: %d ranks at batch %d end %.3g away from one process at batch %d (tolerance %g)",
             cg_dist_rank(d), W, B, diff, B * W, tolerance);
    else
        printf("%s: %d ranks at batch %d, 2 epochs of 100 samples: weights within %.3g of one process at batch %d\n",
               name, W, B, diff, B * W);
    cg_loader_free(whole);
    cg_loader_free(share);
    resnet_free(&single);
    resnet_free(&ddp);
}

static void check_mean(cg_dist *d) {
    int r = cg_dist_rank(d), W = cg_dist_world(d);
    double a = r + 1, b = 10.0 * (r + 1), num = 0, den = 0;
    cg_dist_mean(d, r + 1, &a, &b); // rank r: mean r + 1 over r + 1 samples
    for (int k = 1; k <= W; k++) num += (double)k * k, den += k;
    if (fabs(a - num / den) > 1e-12 || fabs(b - 10.0 * num / den) > 1e-12)
        fail("cg_dist_mean", "got %g and %g, expected %g and %g", a, b, num / den, 10.0 * num / den);
}

// One fp16 step where rank 1's input overflows fp16, then one where nothing does. Returns the
// model, which cg_dist_finish then checks is the same on every rank (freed after it).
static resnet check_amp_skip(cg_dist *d) {
    resnet m = resnet_new(5 + (uint64_t)cg_dist_rank(d));
    cg_tape *t = cg_tape_new(cg_cpu(), 1 << 20);
    cg_optimizer *o = cg_optimizer_new(m.params, cg_sgd_config(0.1f));
    if (cg_dist_prepare(d, m.params, t).code != CG_OK) fail("amp", "cg_dist_prepare refused");
    cg_amp *amp = cg_amp_new(m.params, CG_PRECISION_FP16, cg_grad_scaler_static_config(1.0f));
    cg_amp_attach(amp, t);
    int64_t xs[4] = {4, 1, 8, 8}, n = 4;
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 4, xs), *labels = cg_tensor_new(cg_cpu(), CG_I32, 1, &n);
    memset(labels->data, 0, 4 * sizeof(int32_t));
    float *before = malloc((size_t)m.params->numel * sizeof(float));
    memcpy(before, m.params->values, (size_t)m.params->numel * sizeof(float));
    for (int step = 0; step < 2; step++) {
        cg_tensor_fill(x, step == 0 && cg_dist_rank(d) == 1 ? 1e30f : 0.5f); // 1e30 is inf in fp16
        cg_tensor *loss = cg_cross_entropy(t, cg_autocast_f32(t, resnet_forward(&m, t, x)), labels);
        cg_optimizer_zero_grad(o);
        cg_amp_backward(amp, t, loss);
        cg_dist_sync_gradients(d, amp);
        cg_amp_step(amp, o);
        cg_tape_clear(t);
        if (step == 0 && memcmp(before, m.params->values, (size_t)m.params->numel * sizeof(float)) != 0)
            fail("amp", "rank %d stepped although rank 1's gradients overflowed", cg_dist_rank(d));
    }
    double sum = 0.0;
    for (int64_t i = 0; i < m.params->numel; i++) sum += m.params->values[i] * (double)(i % 7 + 1);
    double mean = sum, unused = 0.0;
    cg_dist_mean(d, 1, &mean, &unused);
    if (fabs(mean - sum) > 1e-12 * fabs(sum)) fail("amp", "rank %d's weights differ from the others'", cg_dist_rank(d));
    if (memcmp(before, m.params->values, (size_t)m.params->numel * sizeof(float)) == 0)
        fail("amp", "the finite step changed nothing");
    free(before);
    cg_tensor_free(x), cg_tensor_free(labels);
    cg_amp_free(amp);
    cg_optimizer_free(o);
    cg_tape_free(t);
    return m;
}

// Without a launcher: start this program again as mpiexec -n 2 and return its status.
static int relaunch(void) {
#ifdef CGRAD_MPIEXEC
    char self[1024], command[2048];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return fail("relaunch", "cannot read /proc/self/exe"), 1;
    self[len] = '\0';
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0); // CI runs as root
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    snprintf(command, sizeof command, "'%s' -n 2 %s '%s'", CGRAD_MPIEXEC, CGRAD_MPIEXEC_FLAGS, self);
    printf("test_dist: %s\n", command);
    fflush(stdout);
    int status = system(command);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : 1;
#else
    printf("test_dist: skipped: no mpiexec was found when configuring\n");
    return 77;
#endif
}

int main(void) {
    if (!cg_dist_has_mpi()) {
        printf("test_dist: skipped: this build has no MPI (libopenmpi-dev, -DCGRAD_DIST=ON)\n");
        return 77;
    }
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return relaunch();
    cg_set_num_threads(1); // the ranks share the machine's cores
    cg_device dev = cg_cpu();
    cg_dist *d = NULL;
    cg_status s = cg_dist_start("test_dist", "cpu", &dev, &d);
    if (s.code != CG_OK) {
        fprintf(stderr, "FAIL cg_dist_start: %s\n", s.message);
        return 1;
    }
    // 100 samples of 1 x 8 x 8 in 10 classes: with 2 ranks, steps of 32 (16 per rank) and a last
    // step of 4 (2 per rank).
    int64_t shape[4] = {100, 1, 8, 8};
    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 4, shape);
    cg_rng rng = cg_rng_new(11, CG_STREAM_INIT);
    cg_rng_fill_normal(&rng, x, 0.0f, 1.0f);
    int32_t labels[100];
    uint32_t words[100];
    cg_rng_u32(&rng, words, 100);
    for (int i = 0; i < 100; i++) labels[i] = (int32_t)(words[i] % 10);
    cg_dataset data = {.count = 100, .sample_ndim = 3, .sample_shape = {1, 8, 8}, .sample_numel = 64,
                       .dtype = CG_F32, .x = x->data, .labels = labels, .num_classes = 10};
    check_equivalence(d, &data, "residual block, Adam", cg_adam_config(1e-3f), 1e-5);
    check_equivalence(d, &data, "residual block, SGD", cg_sgd_config(0.05f), 1e-5);
    check_sync_batch_norm(d, &data);
    check_mean(d);
    resnet last = check_amp_skip(d);
    cg_tensor_free(x);
    cg_dist_finish(d);
    resnet_free(&last);
    return failures ? 1 : 0;
}

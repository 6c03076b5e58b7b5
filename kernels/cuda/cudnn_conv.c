// cudnn_conv.c: convolutions through cuDNN's graph API (the backend descriptors of cuDNN 9;
// cuDNN 9.19 marks the legacy cudnnConvolutionForward family deprecated). One execution plan
// per (direction, shape), chosen on first use by timing the candidate engines on the real
// problem (cg_cudnn_conv_tune, as PyTorch's cudnn.benchmark), then cached (for the process, and
// with CGRAD_CUDNN_CACHE=PATH the choices in a file for the next processes); workspace from the
// caching allocator. Training uses FP32 engines only, none that rounds to TF32 on Tensor Cores
// (NVIDIA's "numerical note TENSOR_CORE"), so results stay FP32 as on the CPU. The benchmark
// (kernels/cuda/bench.cu) also builds plans here for F16 and BF16 data and the NHWC layout.
// The only file that calls cuDNN.
#include <cudnn.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cuda/plugin.h"
#include "kernels/cuda/cudnn_conv.h"

#define CUDNN_CHECK(call)                                                                                     \
    do {                                                                                                      \
        cudnnStatus_t st_ = (call);                                                                           \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                                      \
            cg_check_failed(__FILE__, __LINE__, #call, "cuDNN error %d: %s", (int)st_, cudnnGetErrorString(st_)); \
    } while (0)

typedef enum { DIR_FORWARD, DIR_BACKWARD_DATA, DIR_BACKWARD_FILTER } direction;
enum { UID_X = 1, UID_W = 2, UID_Y = 3 };

typedef struct {
    direction dir;
    bool overwrite;   // backward data only: dx written (beta 0), not added to
    cg_dtype dtype;   // of x, w and y: F32, or F16 / BF16 (mixed precision)
    bool nhwc;        // x (N, H, W, C), w (K, R, S, C), y (N, P, Q, K); else NCHW
    int64_t dims[11]; // N C H W K R S stride pad P Q
    cudnnBackendDescriptor_t plan; // NULL: cuDNN has no engine for it (16-bit only)
    int64_t workspace;
} cached_plan;

#define MAX_PLANS 1024 // ResNet-18 in mixed precision alone needs about 100 (shapes x directions x formats)
static cached_plan plans[MAX_PLANS];
static int plan_count;
static cudnnHandle_t handle;

static cudnnHandle_t get_handle(void) {
    if (handle == NULL) {
        CUDNN_CHECK(cudnnCreate(&handle));
        CUDNN_CHECK(cudnnSetStream(handle, cg_cuda_stream()));
    }
    return handle;
}

static cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d));
    return d;
}

// A 4-D tensor of `type` with the given unique id. cuDNN always takes the dimensions in the
// order (n, c, h, w); the strides say how they are laid out: NCHW, or NHWC (channels last).
static cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, bool nhwc, int64_t n, int64_t c, int64_t h,
                                       int64_t w) {
    cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t dims[4] = {n, c, h, w}, alignment = 16;
    int64_t strides[4] = {c * h * w, h * w, w, 1};
    if (nhwc) {
        strides[0] = h * w * c;
        strides[1] = 1;
        strides[2] = w * c;
        strides[3] = c;
    }
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment));
    CUDNN_CHECK(cudnnBackendFinalize(t));
    return t;
}

// The numerical notes of an engine configuration, as a bit mask (1 << CUDNN_NUMERICAL_NOTE_...),
// and, when asked, its engine's global index (the number cuDNN's logs name it by) and whether
// it compiles its kernel at run time (CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION: seconds to build).
static unsigned engine_notes(cudnnBackendDescriptor_t config, int64_t *index, bool *runtime_compiled) {
    cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t count = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count,
                                         &engine));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t n_notes = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                         CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n_notes, notes));
    if (index) CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count, index));
    if (runtime_compiled) {
        cudnnBackendBehaviorNote_t behaviors[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
        int64_t n_behaviors = 0;
        *runtime_compiled = false;
        if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                     CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &n_behaviors, behaviors) == CUDNN_STATUS_SUCCESS)
            for (int64_t i = 0; i < n_behaviors; i++)
                *runtime_compiled |= behaviors[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
    }
    unsigned mask = 0;
    for (int64_t i = 0; i < n_notes; i++) mask |= 1u << notes[i];
    cudnnBackendDestroyDescriptor(engine);
    return mask;
}

// Engines that round FP32 inputs to TF32 or lower, or reduce in lower precision: what FP32 must
// not do. DOWN_CONVERT_INPUTS alone is what no format may do (PyTorch's filter, Conv_v8.cpp).
#define NOTE(n) (1u << CUDNN_NUMERICAL_NOTE_##n)

// Deterministic choice (CGRAD_DETERMINISTIC=1 in the environment; cnn --deterministic sets it):
// engines whose results may change from run to run (NONDETERMINISTIC: atomic additions in any
// order) are left out, and the engine is the first of cuDNN's heuristics that runs, not the
// fastest of a timing, as PyTorch's torch.backends.cudnn.deterministic = True with benchmark =
// False. Timing picks by microseconds, so two processes may pick different engines, which round
// differently: a resumed run would then not end with the straight run's bits.
static bool deterministic(void) {
    const char *v = getenv("CGRAD_DETERMINISTIC");
    return v != NULL && strcmp(v, "1") == 0;
}
// CGRAD_CUDNN_LOG=1 in the environment: each tuning prints, on stderr, the problem, every engine
// it timed (cuDNN's global index, microseconds a run) and the one it kept, to see what cuDNN
// offers for a shape and how far apart its engines are.
static bool tune_log(void) {
    const char *v = getenv("CGRAD_CUDNN_LOG");
    return v != NULL && strcmp(v, "1") == 0;
}
#define REDUCED_PRECISION_NOTES (NOTE(TENSOR_CORE) | NOTE(DOWN_CONVERT_INPUTS) | NOTE(REDUCED_PRECISION_REDUCTION))

// One convolution: its direction, sizes (N C H W K R S stride pad P Q; C as stored), the stored
// data type and layout.
typedef struct {
    direction dir;
    const int64_t *d;
    cudnnDataType_t type;
    bool nhwc;
    bool overwrite; // a backward one writes its output (beta 0) instead of adding to it
} conv_problem;

// The descriptors of a convolution's operation graph; graph is the one plans are made from.
typedef struct {
    cudnnBackendDescriptor_t graph, op, conv, x, w, y;
} op_graph;

static void destroy_graph(op_graph *g) {
    cudnnBackendDescriptor_t all[] = {g->graph, g->op, g->conv, g->x, g->w, g->y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cudnnBackendDestroyDescriptor(all[i]);
}

// The operation graph of one convolution. Returns cuDNN's status of finalizing it (an
// unsupported type or layout shows here); the descriptors are in *g either way.
static cudnnStatus_t make_graph(const conv_problem *pb, op_graph *g) {
    const int64_t *d = pb->d;
    int64_t N = d[0], C = d[1], H = d[2], W = d[3], K = d[4], R = d[5], S = d[6], stride = d[7], pad = d[8],
            P = d[9], Q = d[10];
    cudnnHandle_t h = get_handle();
    g->x = tensor(UID_X, pb->type, pb->nhwc, N, C, H, W);
    g->w = tensor(UID_W, pb->type, pb->nhwc, K, C, R, S);
    g->y = tensor(UID_Y, pb->type, pb->nhwc, N, K, P, Q);

    g->conv = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    int64_t spatial = 2, pads[2] = {pad, pad}, strides[2] = {stride, stride}, dilations[2] = {1, 1};
    cudnnDataType_t compute = CUDNN_DATA_FLOAT; // f32 accumulation for every data type
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnBackendDescriptor_t conv = g->conv;
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations));
    CUDNN_CHECK(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides));
    CUDNN_CHECK(cudnnBackendFinalize(conv));

    // The operation: y = conv(x, w); dx = conv_bwd_data(w, dy); dw = conv_bwd_filter(x, dy).
    // The backward ones read and write through the same three ids (dy in UID_Y, dx in UID_X,
    // dw in UID_W), alpha 1 and beta 1 so that they ADD to the gradient as every backward does,
    // or beta 0 (overwrite) where the gradient is fresh (core/tape.h): never read, never zeroed.
    static const cudnnBackendDescriptorType_t op_types[3] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                                                             CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                                                             CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    static const cudnnBackendAttributeName_t attrs[3][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
    direction dir = pb->dir;
    g->op = make(op_types[dir]);
    float alpha = 1.0f, beta = dir == DIR_FORWARD || pb->overwrite ? 0.0f : 1.0f;
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][0], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->x));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][1], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->w));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->y));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][4], CUDNN_TYPE_FLOAT, 1, &alpha));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->op, attrs[dir][5], CUDNN_TYPE_FLOAT, 1, &beta));
    g->graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    cudnnStatus_t st = cudnnBackendFinalize(g->op);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    CUDNN_CHECK(cudnnBackendSetAttribute(g->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->op));
    CUDNN_CHECK(cudnnBackendSetAttribute(g->graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
    return cudnnBackendFinalize(g->graph);
}

// The engine configurations cuDNN's heuristics (`mode`) propose for a graph, best first, into
// configs[0..max) (descriptors the caller made). Returns how many, 0 when the heuristics fail.
// *heur is the heuristics descriptor, which the caller destroys once done with the configs.
static int64_t heuristic_configs(cudnnBackendDescriptor_t graph, cudnnBackendHeurMode_t mode,
                                 cudnnBackendDescriptor_t *configs, int64_t max, cudnnBackendDescriptor_t *heur) {
    *heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(*heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &graph));
    CUDNN_CHECK(cudnnBackendSetAttribute(*heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    int64_t count = 0;
    if (cudnnBackendFinalize(*heur) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(*heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, max, &count,
                                 configs) != CUDNN_STATUS_SUCCESS)
        count = 0;
    return count < max ? count : max;
}

// An execution plan for one engine configuration; NULL when the engine cannot run the graph.
static cudnnBackendDescriptor_t make_plan(cudnnBackendDescriptor_t config) {
    cudnnHandle_t h = get_handle();
    cudnnBackendDescriptor_t plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
    CUDNN_CHECK(cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &config));
    if (cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS) return plan;
    cudnnBackendDestroyDescriptor(plan);
    return NULL;
}

static int64_t plan_workspace(cudnnBackendDescriptor_t plan) {
    int64_t n = 0, bytes = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &bytes));
    return bytes;
}

// Build the execution plan of one FP32 NCHW convolution: its operation graph, the heuristics'
// engine configurations in order, the first FP32 one that finalizes.
static cached_plan *build_plan(direction dir, const int64_t d[11]) {
    int64_t N = d[0], C = d[1], H = d[2], W = d[3], K = d[4], R = d[5], S = d[6];
    conv_problem pb = {dir, d, CUDNN_DATA_FLOAT, false, false};
    op_graph g;
    CUDNN_CHECK(make_graph(&pb, &g));
    enum { MAX_CONFIGS = 32 };
    cudnnBackendDescriptor_t configs[MAX_CONFIGS];
    for (int i = 0; i < MAX_CONFIGS; i++) configs[i] = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    cudnnBackendDescriptor_t heur;
    int64_t n_configs = heuristic_configs(g.graph, CUDNN_HEUR_MODE_A, configs, MAX_CONFIGS, &heur);

    cudnnBackendDescriptor_t plan = NULL;
    for (int64_t i = 0; i < n_configs && plan == NULL; i++) {
        unsigned notes = engine_notes(configs[i], NULL, NULL);
        if (notes & REDUCED_PRECISION_NOTES) continue;
        if (deterministic() && (notes & NOTE(NONDETERMINISTIC))) continue;
        plan = make_plan(configs[i]); // the heuristics list the fastest first
    }
    CG_CHECK(plan != NULL, "cuDNN has no FP32 engine for conv2d (direction %d) of x (%lld, %lld, %lld, %lld), "
                           "w (%lld, %lld, %lld, %lld)", (int)dir, (long long)N, (long long)C, (long long)H,
             (long long)W, (long long)K, (long long)C, (long long)R, (long long)S);
    for (int i = 0; i < MAX_CONFIGS; i++) cudnnBackendDestroyDescriptor(configs[i]);
    cudnnBackendDestroyDescriptor(heur);
    destroy_graph(&g);

    CG_CHECK(plan_count < MAX_PLANS, "more than %d cached cuDNN plans", MAX_PLANS);
    cached_plan *c = &plans[plan_count++];
    c->dir = dir;
    c->dtype = CG_F32;
    c->nhwc = false;
    memcpy(c->dims, d, sizeof c->dims);
    c->plan = plan;
    c->workspace = plan_workspace(plan);
    return c;
}

// Run a plan on x, w, y with a workspace from the caching allocator. Returns cuDNN's status.
static cudnnStatus_t execute(cudnnBackendDescriptor_t plan, int64_t workspace_size, void *x, void *w, void *y) {
    void *workspace = workspace_size > 0 ? cg_cuda_alloc((size_t)workspace_size) : NULL;
    int64_t uids[3] = {UID_X, UID_W, UID_Y};
    void *pointers[3] = {x, w, y};
    cudnnBackendDescriptor_t pack = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    CUDNN_CHECK(cudnnBackendFinalize(pack));
    cudnnStatus_t st = cudnnBackendExecute(get_handle(), plan, pack);
    cudnnBackendDestroyDescriptor(pack);
    if (workspace) cg_cuda_free(workspace); // stream-ordered reuse: see conv.cu
    return st;
}

struct cg_cudnn_tuned {
    cudnnBackendDescriptor_t plan;
    int64_t workspace;
};

// The plan for a convolution: cached per (direction, dtype, shape). A new one is chosen by timing
// the engines cuDNN proposes on this very problem (as PyTorch's cudnn.benchmark does), writing
// into a scratch output so that the backward ones, which add to their output, leave the real
// gradient alone. F32: FP32 engines only, the heuristics' first choice if timing finds nothing.
// F16 / BF16 (mixed precision): Tensor Core engines allowed (f32 accumulation, as the graph's
// compute type says), none that converts its inputs down; a cached NULL plan when none runs.
static cached_plan *plan_for(direction dir, bool overwrite, cg_dtype dtype, bool nhwc, const int64_t d[11], void *x,
                            void *w, void *y) {
    for (int i = 0; i < plan_count; i++)
        if (plans[i].dir == dir && plans[i].overwrite == overwrite && plans[i].dtype == dtype && plans[i].nhwc == nhwc &&
            memcmp(plans[i].dims, d, sizeof plans[i].dims) == 0)
            return &plans[i];
    int64_t N = d[0], C = d[1], H = d[2], W = d[3], K = d[4], R = d[5], S = d[6], P = d[9], Q = d[10];
    int64_t out_values = dir == DIR_FORWARD ? N * K * P * Q : dir == DIR_BACKWARD_DATA ? N * C * H * W : K * C * R * S;
    size_t out_bytes = (size_t)out_values * (dtype == CG_F32 ? 4 : 2);
    void *scratch = cg_cuda_alloc(out_bytes);
    CG_CUDA_CHECK(cudaMemsetAsync(scratch, 0, out_bytes, cg_cuda_stream()));
    static const int tune_dirs[3] = {CG_CUDNN_FORWARD, CG_CUDNN_BACKWARD_DATA, CG_CUDNN_BACKWARD_FILTER};
    bool low = dtype != CG_F32;
    char about[256];
    cg_cudnn_tuned *tuned = NULL;
    if (dir == DIR_FORWARD)
        tuned = cg_cudnn_conv_tune(tune_dirs[dir], dtype, nhwc, low, d, x, w, scratch, about, sizeof about);
    else if (dir == DIR_BACKWARD_DATA)
        tuned = cg_cudnn_conv_tune(overwrite ? CG_CUDNN_BACKWARD_DATA_WRITE : tune_dirs[dir], dtype, nhwc, low, d,
                                   scratch, w, y, about, sizeof about);
    else
        tuned = cg_cudnn_conv_tune(tune_dirs[dir], dtype, nhwc, low, d, x, scratch, y, about, sizeof about);
    cg_cuda_free(scratch);
    if (tuned == NULL && !low) return build_plan(dir, d);
    CG_CHECK(plan_count < MAX_PLANS, "more than %d cached cuDNN plans", MAX_PLANS);
    cached_plan *c = &plans[plan_count++];
    c->dir = dir;
    c->overwrite = overwrite;
    c->dtype = dtype;
    c->nhwc = nhwc;
    memcpy(c->dims, d, sizeof c->dims);
    if (tuned == NULL) { // 16-bit without an engine: the caller widens to f32
        c->plan = NULL;
        c->workspace = 0;
        return c;
    }
    c->plan = tuned->plan;
    c->workspace = tuned->workspace;
    free(tuned); // the plan itself now belongs to the cache
    return c;
}

static void run(direction dir, const int64_t d[11], void *x, void *w, void *y) {
    cached_plan *c = plan_for(dir, false, CG_F32, false, d, x, w, y);
    CUDNN_CHECK(execute(c->plan, c->workspace, x, w, y));
}

bool cg_cudnn_conv2d_run16(int which, cg_dtype dtype, bool nhwc, void *x, void *w, void *y, const int64_t d[11]) {
    static const direction dirs[4] = {DIR_FORWARD, DIR_BACKWARD_DATA, DIR_BACKWARD_FILTER, DIR_BACKWARD_DATA};
    CG_CHECK(which >= CG_CUDNN_FORWARD && which <= CG_CUDNN_BACKWARD_DATA_WRITE && (dtype == CG_F16 || dtype == CG_BF16),
             "cg_cudnn_conv2d_run16: direction %d, dtype %d", which, (int)dtype);
    cached_plan *c = plan_for(dirs[which], which == CG_CUDNN_BACKWARD_DATA_WRITE, dtype, nhwc, d, x, w, y);
    if (c->plan == NULL) return false;
    CUDNN_CHECK(execute(c->plan, c->workspace, x, w, y));
    return true;
}

void cg_cudnn_conv2d_forward(float *y, const float *x, const float *w, const int64_t d[11]) {
    run(DIR_FORWARD, d, (void *)x, (void *)w, y);
}

void cg_cudnn_conv2d_backward_data(float *dx, const float *w, const float *dy, const int64_t d[11]) {
    run(DIR_BACKWARD_DATA, d, dx, (void *)w, (void *)dy);
}

void cg_cudnn_conv2d_backward_filter(float *dw, const float *x, const float *dy, const int64_t d[11]) {
    run(DIR_BACKWARD_FILTER, d, (void *)x, dw, (void *)dy);
}

int cg_cudnn_version(void) { return (int)cudnnGetVersion(); }

// ---- the tuning's choices on disk ----------------------------------------------------------------

// CGRAD_CUDNN_CACHE=PATH in the environment: each problem's choice is written to PATH, and a later
// process that meets the same problem on the same GPU and cuDNN builds the plan it names instead
// of timing the candidates again (the fast network's 15 training problems, 16 engines each: 0.59 to
// 0.64 s for its first epoch with the file against 0.62 to 0.64 s without, on an H100; the rest of that
// epoch's half second is the first step's other costs, which cnn --untimed-step takes out of the clock).
// PyTorch's cudnn.benchmark keeps its choices for the life of the process, which is why airbench94
// runs warmup94() before its timed runs; bench/cifar.sh gives cgrad's timed runs the choices of
// its untimed warm-up run this way. One line per problem: the problem's text (its sizes, format,
// direction, the GPU, cuDNN's version), a tab, the candidate's position in the heuristics' list
// and cuDNN's global index of its engine. The file is rewritten whole and renamed into place, so
// that a crash leaves the old file or the new one; a line that does not parse, or names a
// candidate whose engine is not the one written, is ignored (the problem is timed again).
#define CACHE_LINES 256
#define CACHE_KEY 512
typedef struct {
    char key[CACHE_KEY];
    int64_t candidate, engine;
} cache_line;
static cache_line cache[CACHE_LINES];
static int cache_count = -1; // -1: not read yet

static const char *cache_path(void) {
    const char *path = getenv("CGRAD_CUDNN_CACHE");
    return path != NULL && path[0] != '\0' ? path : NULL;
}

static void cache_read(void) {
    if (cache_count >= 0) return;
    cache_count = 0;
    FILE *f = cache_path() ? fopen(cache_path(), "r") : NULL;
    if (f == NULL) return;
    char line[CACHE_KEY + 64];
    while (cache_count < CACHE_LINES && fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        long long candidate, engine;
        if (tab == NULL || tab - line >= CACHE_KEY || sscanf(tab + 1, "%lld %lld", &candidate, &engine) != 2 ||
            candidate < 0)
            continue;
        cache_line *c = &cache[cache_count++];
        memcpy(c->key, line, (size_t)(tab - line));
        c->key[tab - line] = '\0';
        c->candidate = candidate, c->engine = engine;
    }
    fclose(f);
}

static const cache_line *cache_find(const char *key) {
    cache_read();
    for (int i = 0; i < cache_count; i++)
        if (strcmp(cache[i].key, key) == 0) return &cache[i];
    return NULL;
}

static void cache_add(const char *key, int64_t candidate, int64_t engine) {
    const char *path = cache_path();
    if (path == NULL || cache_count >= CACHE_LINES || strlen(key) >= CACHE_KEY) return;
    cache_line *c = &cache[cache_count++];
    snprintf(c->key, sizeof c->key, "%s", key);
    c->candidate = candidate, c->engine = engine;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) return;
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "cgrad: CGRAD_CUDNN_CACHE: cannot write %s (the choice is kept for this process only)\n", tmp);
        return;
    }
    for (int i = 0; i < cache_count; i++)
        fprintf(f, "%s\t%lld %lld\n", cache[i].key, (long long)cache[i].candidate, (long long)cache[i].engine);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "cgrad: CGRAD_CUDNN_CACHE: cannot replace %s\n", path);
        remove(tmp);
    }
}

// The problem as a line of the file: what the heuristics' list depends on.
static void cache_key(char *key, size_t size, int dir, cudnnDataType_t type, bool nhwc, bool allow_reduced,
                      const int64_t d[11]) {
    static char gpu[256];
    if (gpu[0] == '\0') {
        int device = 0;
        struct cudaDeviceProp prop;
        CG_CUDA_CHECK(cudaGetDevice(&device));
        CG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        snprintf(gpu, sizeof gpu, "%.200s sm_%d%d", prop.name, prop.major, prop.minor);
    }
    snprintf(key, size, "dir %d type %d %s reduced %d: %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld; %s; cuDNN %d",
             dir, (int)type, nhwc ? "NHWC" : "NCHW", (int)allow_reduced, (long long)d[0], (long long)d[1],
             (long long)d[2], (long long)d[3], (long long)d[4], (long long)d[5], (long long)d[6], (long long)d[7],
             (long long)d[8], (long long)d[9], (long long)d[10], gpu, (int)cudnnGetVersion());
}

// ---- tuned plans, for the benchmark --------------------------------------------------------------

// Every candidate the heuristics list (mode A, then the fallback list) that the format allows is
// finalized and timed: one untimed run, then TIMED_RUNS runs between two CUDA events. Engines
// needing more workspace than half the free memory are left out, and so are engines that compile
// their kernel at run time (seconds each) unless no other engine runs. At most MAX_TIMED engines
// are timed, and no new one once TUNE_SECONDS have passed.
#define MAX_CANDIDATES 32
#define MAX_TIMED 16
#define TIMED_RUNS 3
#define TUNE_SECONDS 20.0

cg_cudnn_tuned *cg_cudnn_conv_tune(int dir, cg_dtype dtype, bool nhwc, bool allow_reduced, const int64_t d[11], void *x,
                                   void *w, void *y, char *about, size_t about_size) {
    CG_CHECK(dir >= CG_CUDNN_FORWARD && dir <= CG_CUDNN_BACKWARD_DATA_WRITE, "bad direction %d", dir);
    cudnnDataType_t type;
    switch (dtype) {
    case CG_F32: type = CUDNN_DATA_FLOAT; break;
    case CG_F16: type = CUDNN_DATA_HALF; break;
    case CG_BF16: type = CUDNN_DATA_BFLOAT16; break;
    default: snprintf(about, about_size, "no cuDNN convolution for dtype %d", (int)dtype); return NULL;
    }
    const char *type_name = dtype == CG_F32 ? "f32" : dtype == CG_F16 ? "f16" : "bf16";
    static const direction dirs[4] = {DIR_FORWARD, DIR_BACKWARD_DATA, DIR_BACKWARD_FILTER, DIR_BACKWARD_DATA};
    static const char *const dir_names[4] = {"forward", "backward data", "backward filter", "backward data"};
    conv_problem pb = {dirs[dir], d, type, nhwc, dir == CG_CUDNN_BACKWARD_DATA_WRITE};
    op_graph g;
    cudnnStatus_t st = make_graph(&pb, &g);
    if (st != CUDNN_STATUS_SUCCESS) {
        snprintf(about, about_size, "cuDNN cannot describe this %s convolution: %s", dir_names[dir],
                 cudnnGetErrorString(st));
        destroy_graph(&g);
        return NULL;
    }
    cudnnBackendDescriptor_t configs[2 * MAX_CANDIDATES], heurs[2];
    for (int i = 0; i < 2 * MAX_CANDIDATES; i++) configs[i] = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t n_a = heuristic_configs(g.graph, CUDNN_HEUR_MODE_A, configs, MAX_CANDIDATES, &heurs[0]);
    int64_t n = n_a + heuristic_configs(g.graph, CUDNN_HEUR_MODE_FALLBACK, configs + n_a, MAX_CANDIDATES, &heurs[1]);

    size_t free_bytes = 0, total_bytes = 0;
    CG_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    cudaEvent_t start, stop;
    CG_CUDA_CHECK(cudaEventCreate(&start));
    CG_CUDA_CHECK(cudaEventCreate(&stop));
    cudaStream_t stream = cg_cuda_stream();
    cg_cudnn_tuned *best = NULL;
    float best_ms = FLT_MAX;
    int64_t best_index = -1, seen[2 * MAX_CANDIDATES];
    unsigned best_notes = 0;
    int timed = 0, n_seen = 0;
    bool fixed_order = deterministic(), log = tune_log();
    if (log)
        fprintf(stderr, "cuDNN %s %s %s: N %lld C %lld H %lld W %lld K %lld %lldx%lld stride %lld pad %lld, %lld candidates\n",
                dir_names[dir], nhwc ? "NHWC" : "NCHW", type_name, (long long)d[0], (long long)d[1], (long long)d[2],
                (long long)d[3], (long long)d[4], (long long)d[5], (long long)d[6], (long long)d[7], (long long)d[8],
                (long long)n);
    double started = cg_seconds();
    // A choice made before (CGRAD_CUDNN_CACHE): its candidate, if it is still the engine written and runs
    char key[CACHE_KEY];
    bool from_cache = false;
    int64_t best_candidate = -1;
    if (!fixed_order && cache_path()) {
        cache_key(key, sizeof key, dir, type, nhwc, allow_reduced, d);
        const cache_line *hit = cache_find(key);
        int64_t index = -1;
        bool runtime_compiled = false;
        unsigned notes = hit && hit->candidate < n ? engine_notes(configs[hit->candidate], &index, &runtime_compiled) : 0;
        cudnnBackendDescriptor_t plan = hit && index == hit->engine ? make_plan(configs[hit->candidate]) : NULL;
        int64_t workspace = plan ? plan_workspace(plan) : 0;
        if (plan && (size_t)workspace <= free_bytes / 2 && execute(plan, workspace, x, w, y) == CUDNN_STATUS_SUCCESS) {
            best = cg_xcalloc(1, sizeof *best);
            best->plan = plan;
            best->workspace = workspace;
            best_ms = 0.0f, best_index = index, best_notes = notes, best_candidate = hit->candidate;
            from_cache = true;
        } else if (plan) {
            cudaGetLastError(); // a refused launch leaves an error to clear
            cudnnBackendDestroyDescriptor(plan);
        }
    }
    // Pass 0: engines with precompiled kernels; pass 1, only when none ran: the runtime-compiled.
    for (int pass = 0; pass < 2 && best == NULL; pass++) {
        n_seen = 0;
        for (int64_t i = 0; i < n && timed < MAX_TIMED && (best == NULL || cg_seconds() - started < TUNE_SECONDS);
             i++) {
            int64_t index = -1;
            bool runtime_compiled = false;
            unsigned notes = engine_notes(configs[i], &index, &runtime_compiled);
            bool repeat = false; // the fallback list repeats engines of the first list
            for (int j = 0; j < n_seen && i >= n_a; j++) repeat |= seen[j] == index;
            if (repeat) continue;
            seen[n_seen++] = index;
            const char *skip = runtime_compiled != (pass == 1) ? (pass == 0 ? "compiled at run time" : NULL)
                               : (notes & NOTE(DOWN_CONVERT_INPUTS))                         ? "converts its inputs down"
                               : !allow_reduced && (notes & REDUCED_PRECISION_NOTES)          ? "reduced precision"
                               : fixed_order && (notes & NOTE(NONDETERMINISTIC))              ? "nondeterministic"
                                                                                              : NULL;
            if (runtime_compiled != (pass == 1) || skip) {
                if (log && skip) fprintf(stderr, "  engine %lld: left out (%s)\n", (long long)index, skip);
                continue;
            }
            cudnnBackendDescriptor_t plan = make_plan(configs[i]);
            if (plan == NULL) {
                if (log) fprintf(stderr, "  engine %lld: no plan for this graph\n", (long long)index);
                continue;
            }
            int64_t workspace = plan_workspace(plan);
            if ((size_t)workspace > free_bytes / 2 || execute(plan, workspace, x, w, y) != CUDNN_STATUS_SUCCESS) {
                cudaGetLastError(); // a refused launch leaves an error to clear
                cudnnBackendDestroyDescriptor(plan);
                if (log) fprintf(stderr, "  engine %lld: does not run (workspace %lld bytes)\n", (long long)index,
                                 (long long)workspace);
                continue;
            }
            if (fixed_order) { // the first that runs (see deterministic)
                best = cg_xcalloc(1, sizeof *best);
                best->plan = plan;
                best->workspace = workspace;
                best_ms = 0.0f;
                best_index = index;
                best_notes = notes;
                break;
            }
            CG_CUDA_CHECK(cudaEventRecord(start, stream));
            for (int r = 0; r < TIMED_RUNS; r++) CUDNN_CHECK(execute(plan, workspace, x, w, y));
            CG_CUDA_CHECK(cudaEventRecord(stop, stream));
            CG_CUDA_CHECK(cudaEventSynchronize(stop));
            float ms = 0.0f;
            CG_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
            ms /= TIMED_RUNS;
            timed++;
            if (log) fprintf(stderr, "  engine %lld%s: %.1f us\n", (long long)index, (notes & NOTE(TENSOR_CORE)) ? " (TC)" : "",
                             1e3 * ms);
            if (ms < best_ms) {
                if (best == NULL) best = cg_xcalloc(1, sizeof *best);
                else cudnnBackendDestroyDescriptor(best->plan);
                best->plan = plan;
                best->workspace = workspace;
                best_ms = ms;
                best_index = index;
                best_notes = notes;
                best_candidate = i;
            } else {
                cudnnBackendDestroyDescriptor(plan);
            }
        }
    }
    CG_CUDA_CHECK(cudaEventDestroy(start));
    CG_CUDA_CHECK(cudaEventDestroy(stop));
    for (int i = 0; i < 2 * MAX_CANDIDATES; i++) cudnnBackendDestroyDescriptor(configs[i]);
    cudnnBackendDestroyDescriptor(heurs[0]);
    cudnnBackendDestroyDescriptor(heurs[1]);
    destroy_graph(&g);
    if (log && timed >= MAX_TIMED) fprintf(stderr, "  (no more: %d engines timed)\n", timed);
    if (log && best) fprintf(stderr, "  kept engine %lld%s\n", (long long)best_index, from_cache ? " (CGRAD_CUDNN_CACHE)" : "");
    if (best && !fixed_order && !from_cache && cache_path()) cache_add(key, best_candidate, best_index);
    if (best == NULL)
        snprintf(about, about_size, "no cuDNN engine runs this %s %s %s convolution (%lld candidates)", dir_names[dir],
                 nhwc ? "NHWC" : "NCHW", type_name, (long long)n);
    else if (fixed_order)
        snprintf(about, about_size, "%s: cuDNN engine %lld%s, the heuristics' first deterministic one", dir_names[dir],
                 (long long)best_index, (best_notes & NOTE(TENSOR_CORE)) ? " (Tensor Cores)" : "");
    else if (from_cache)
        snprintf(about, about_size, "%s: cuDNN engine %lld%s, timed by an earlier process (CGRAD_CUDNN_CACHE)",
                 dir_names[dir], (long long)best_index, (best_notes & NOTE(TENSOR_CORE)) ? " (Tensor Cores)" : "");
    else
        snprintf(about, about_size, "%s: cuDNN engine %lld%s, %.3f ms, fastest of %d timed", dir_names[dir],
                 (long long)best_index, (best_notes & NOTE(TENSOR_CORE)) ? " (Tensor Cores)" : "", best_ms, timed);
    return best;
}

void cg_cudnn_conv_run(cg_cudnn_tuned *t, void *x, void *w, void *y) { CUDNN_CHECK(execute(t->plan, t->workspace, x, w, y)); }

void cg_cudnn_conv_free(cg_cudnn_tuned *t) {
    if (t == NULL) return;
    cudnnBackendDestroyDescriptor(t->plan);
    free(t);
}

// cudnn_conv.c: convolutions through cuDNN's graph API (the backend descriptors of cuDNN 9;
// cuDNN 9.19 marks the legacy cudnnConvolutionForward family deprecated). One execution plan
// per (direction, shape), built on first use and cached; workspace from the caching allocator.
// FP32 only, and no engine that rounds to TF32 on Tensor Cores (NVIDIA's "numerical note
// TENSOR_CORE"), so results stay FP32 as on the CPU. The only file that calls cuDNN.
#include <cudnn.h>
#include <stdio.h>
#include <string.h>

#include "../../core/device_cuda.h"
#include "cudnn_conv.h"

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
    int64_t dims[11]; // N C H W K R S stride pad P Q
    cudnnBackendDescriptor_t plan;
    int64_t workspace;
} cached_plan;

#define MAX_PLANS 64
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

// A 4-D NCHW float tensor with the given unique id.
static cudnnBackendDescriptor_t tensor(int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w) {
    cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t dims[4] = {n, c, h, w}, strides[4] = {c * h * w, h * w, w, 1}, alignment = 16;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    CUDNN_CHECK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment));
    CUDNN_CHECK(cudnnBackendFinalize(t));
    return t;
}

// True when an engine configuration rounds to TF32 or lower precision (what FP32 must not do).
static bool reduces_precision(cudnnBackendDescriptor_t config) {
    cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t count = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count,
                                         &engine));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t n_notes = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                         CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n_notes, notes));
    bool reduced = false;
    for (int64_t i = 0; i < n_notes; i++)
        reduced |= notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
                   notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
    cudnnBackendDestroyDescriptor(engine);
    return reduced;
}

// Build the execution plan of one convolution: its operation graph, the heuristics' engine
// configurations in order, the first FP32 one that finalizes.
static cached_plan *build_plan(direction dir, const int64_t d[11]) {
    int64_t N = d[0], C = d[1], H = d[2], W = d[3], K = d[4], R = d[5], S = d[6], stride = d[7], pad = d[8],
            P = d[9], Q = d[10];
    cudnnHandle_t h = get_handle();
    cudnnBackendDescriptor_t x = tensor(UID_X, N, C, H, W), w = tensor(UID_W, K, C, R, S), y = tensor(UID_Y, N, K, P, Q);

    cudnnBackendDescriptor_t conv = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    int64_t spatial = 2, pads[2] = {pad, pad}, strides[2] = {stride, stride}, dilations[2] = {1, 1};
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
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
    // dw in UID_W), alpha 1 and beta 1 so that they ADD to the gradient as every backward does.
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
    cudnnBackendDescriptor_t op = make(op_types[dir]);
    float alpha = 1.0f, beta = dir == DIR_FORWARD ? 0.0f : 1.0f;
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][0], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][1], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w));
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv));
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][4], CUDNN_TYPE_FLOAT, 1, &alpha));
    CUDNN_CHECK(cudnnBackendSetAttribute(op, attrs[dir][5], CUDNN_TYPE_FLOAT, 1, &beta));
    CUDNN_CHECK(cudnnBackendFinalize(op));

    cudnnBackendDescriptor_t graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op));
    CUDNN_CHECK(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
    CUDNN_CHECK(cudnnBackendFinalize(graph));

    cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
    CUDNN_CHECK(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &graph));
    CUDNN_CHECK(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode));
    CUDNN_CHECK(cudnnBackendFinalize(heur));
    enum { MAX_CONFIGS = 32 };
    cudnnBackendDescriptor_t configs[MAX_CONFIGS];
    for (int i = 0; i < MAX_CONFIGS; i++) configs[i] = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t n_configs = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         MAX_CONFIGS, &n_configs, configs));

    cudnnBackendDescriptor_t plan = NULL;
    for (int64_t i = 0; i < n_configs && plan == NULL; i++) {
        if (reduces_precision(configs[i])) continue;
        cudnnBackendDescriptor_t candidate = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        CUDNN_CHECK(cudnnBackendSetAttribute(candidate, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
        CUDNN_CHECK(cudnnBackendSetAttribute(candidate, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                             CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &configs[i]));
        if (cudnnBackendFinalize(candidate) == CUDNN_STATUS_SUCCESS)
            plan = candidate; // the heuristics list the fastest first
        else
            cudnnBackendDestroyDescriptor(candidate);
    }
    CG_CHECK(plan != NULL, "cuDNN has no FP32 engine for conv2d (direction %d) of x (%lld, %lld, %lld, %lld), "
                           "w (%lld, %lld, %lld, %lld)", (int)dir, (long long)N, (long long)C, (long long)H,
             (long long)W, (long long)K, (long long)C, (long long)R, (long long)S);
    for (int i = 0; i < MAX_CONFIGS; i++) cudnnBackendDestroyDescriptor(configs[i]);
    cudnnBackendDescriptor_t all[] = {heur, graph, op, conv, x, w, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cudnnBackendDestroyDescriptor(all[i]);

    CG_CHECK(plan_count < MAX_PLANS, "more than %d cached cuDNN plans", MAX_PLANS);
    cached_plan *c = &plans[plan_count++];
    c->dir = dir;
    memcpy(c->dims, d, sizeof c->dims);
    c->plan = plan;
    int64_t n = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                         &c->workspace));
    return c;
}

static void run(direction dir, const int64_t d[11], void *x, void *w, void *y) {
    cached_plan *c = NULL;
    for (int i = 0; i < plan_count && c == NULL; i++)
        if (plans[i].dir == dir && memcmp(plans[i].dims, d, sizeof plans[i].dims) == 0) c = &plans[i];
    if (c == NULL) c = build_plan(dir, d);
    void *workspace = c->workspace > 0 ? cg_cuda_alloc((size_t)c->workspace) : NULL;
    int64_t uids[3] = {UID_X, UID_W, UID_Y};
    void *pointers[3] = {x, w, y};
    cudnnBackendDescriptor_t pack = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    CUDNN_CHECK(cudnnBackendFinalize(pack));
    CUDNN_CHECK(cudnnBackendExecute(get_handle(), c->plan, pack));
    cudnnBackendDestroyDescriptor(pack);
    if (workspace) cg_cuda_free(workspace); // stream-ordered reuse: see conv.cu
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

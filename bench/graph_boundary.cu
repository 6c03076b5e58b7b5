// graph_boundary.cu: what the boundary between two kernels costs inside a CUDA Graph, and what
// programmatic dependent launch (PDL, compute capability 9.0 and later) wins back of it. A training
// step replayed as one graph (lesson 08) still runs its kernels one after the other: each waits for
// the one before to finish and its memory to be flushed, then its blocks are scheduled. With PDL a
// kernel may be launched while the one before is still running; it waits for it where it must, at
// `griddepcontrol.wait`, having done its launch and set-up meanwhile.
//
// A chain of K = 200 dependent elementwise kernels (x = 1.0001 x + 1 over n floats, 16 bytes a
// thread) is captured into a graph three ways and replayed 20 times after 3 untimed replays; the
// time a kernel, CUDA events around the replays, for n from 4,096 floats (a kernel that does
// almost nothing: the boundary alone) to 64 M (256 MB read and written: the memory's bandwidth):
//   plain       ordinary launches: the graph's usual edges
//   pdl early   launched with cudaLaunchAttributeProgrammaticStreamSerialization; each kernel
//               waits for the one before (griddepcontrol.wait), then at once lets the next one
//               start launching (griddepcontrol.launch_dependents)
//   pdl at end  the same attribute and wait, no early signal: the next kernel is launched as the
//               blocks of this one exit
// and, last column, bytes read and written per microsecond by the plain chain (8 a float).
// Every kernel waits before it touches memory, so the three chains compute the same values.
// Figures to read, not a test: build/bench_graph_boundary (a CUDA build, a GPU of compute
// capability 9.0 or later for the PDL columns).
#include <cuda_runtime.h>

#include <stdio.h>
#include <string.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_graph_boundary: %s: %s\n", #x, cudaGetErrorString(e_));         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

enum { PLAIN, PDL_EARLY, PDL_AT_END };

// One link of the chain. griddepcontrol exists from sm_90 on; compiled for an older GPU the
// kernel is the plain one (and main does not time the PDL chains there).
template <int MODE> __global__ void link(float4 *x, int n4) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (MODE != PLAIN) asm volatile("griddepcontrol.wait;" ::: "memory");
    if (MODE == PDL_EARLY) asm volatile("griddepcontrol.launch_dependents;");
#endif
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
        float4 v = x[i];
        v.x = v.x * 1.0001f + 1.0f, v.y = v.y * 1.0001f + 1.0f, v.z = v.z * 1.0001f + 1.0f, v.w = v.w * 1.0001f + 1.0f;
        x[i] = v;
    }
}

// Blocks of 256 threads, one float4 a thread, at most 8 blocks a multiprocessor (then grid-stride).
template <int MODE> static cudaError_t launch(cudaStream_t s, float4 *x, int n4, int max_blocks) {
    int threads = 256, blocks = (n4 + threads - 1) / threads;
    if (blocks > max_blocks) blocks = max_blocks;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDim = dim3((unsigned)blocks), cfg.blockDim = dim3((unsigned)threads), cfg.stream = s;
    cfg.attrs = attr, cfg.numAttrs = MODE == PLAIN ? 0 : 1;
    return cudaLaunchKernelEx(&cfg, link<MODE>, x, n4);
}

// Microseconds a kernel of a K-kernel chain, captured once and replayed.
template <int MODE> static int time_chain(cudaStream_t s, float4 *x, int n4, int max_blocks, int K, float *us) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int k = 0; k < K; k++) CK(launch<MODE>(s, x, n4, max_blocks));
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int w = 0; w < 3; w++) CK(cudaGraphLaunch(exec, s));
    cudaEvent_t start, stop;
    CK(cudaEventCreate(&start));
    CK(cudaEventCreate(&stop));
    const int replays = 20;
    CK(cudaEventRecord(start, s));
    for (int r = 0; r < replays; r++) CK(cudaGraphLaunch(exec, s));
    CK(cudaEventRecord(stop, s));
    CK(cudaEventSynchronize(stop));
    float ms;
    CK(cudaEventElapsedTime(&ms, start, stop));
    *us = 1000.0f * ms / (float)(replays * K);
    CK(cudaEventDestroy(start));
    CK(cudaEventDestroy(stop));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: bench_graph_boundary\n"
                   "The time a kernel of a chain of 200 dependent elementwise kernels replayed as one CUDA Graph,\n"
                   "from 4,096 to 64 M floats a kernel: plain launches, and programmatic dependent launch (PDL)\n"
                   "with an early signal and without (compute capability 9.0 and later); then the plain chain's\n"
                   "bytes read and written a microsecond. Lesson 08 reads it.\n");
            return 0;
        }
        fprintf(stderr, "bench_graph_boundary: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "bench_graph_boundary: no CUDA GPU found\n");
        return 1;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    bool pdl = prop.major >= 9;
    printf("%s, %d multiprocessors%s\n", prop.name, prop.multiProcessorCount,
           pdl ? "" : " (compute capability below 9.0: no PDL columns)");
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const size_t most = (size_t)1 << 26; // floats: 256 MB
    float4 *x;
    CK(cudaMalloc((void **)&x, most * sizeof(float)));
    CK(cudaMemset(x, 0, most * sizeof(float)));
    const int K = 200, max_blocks = prop.multiProcessorCount * 8;
    printf("%12s %12s %12s %12s %12s\n", "floats", "plain us", "pdl early", "pdl at end", "bytes/us plain");
    for (int n = 1 << 12; (size_t)n <= most; n <<= n < (1 << 20) ? 4 : 2) {
        float plain, early = 0.0f, at_end = 0.0f;
        if (time_chain<PLAIN>(s, x, n / 4, max_blocks, K, &plain)) return 1;
        if (pdl && (time_chain<PDL_EARLY>(s, x, n / 4, max_blocks, K, &early) ||
                    time_chain<PDL_AT_END>(s, x, n / 4, max_blocks, K, &at_end)))
            return 1;
        printf("%12d %12.2f %12.2f %12.2f %12.0f\n", n, plain, early, at_end, 8.0 * n / plain);
    }
    CK(cudaFree(x));
    CK(cudaStreamDestroy(s));
    return 0;
}

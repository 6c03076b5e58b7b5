// device_cuda.c: the GPU side of core/device.c: availability, properties, streams, copies,
// pinned host memory, CUDA Graph capture, and the caching allocator. Part of the plugin
// libcgrad_cuda.so (see device_backend.h), which exports only cg_cuda_backend_entry.
// No kernels here: those are kernels/cuda.
#include "core/measure/hw_bench_backend.h"
#include "core/device_backend.h"
#include "kernels/cuda/plugin.h"
#include "core/quant/qkernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG_MAX_GPUS 16

static _Thread_local int current_gpu = -1; // per thread, as cudaSetDevice is
static cudaStream_t streams[CG_MAX_GPUS];

// Make `index` the GPU that CUDA calls of this thread go to.
static void use_gpu(int index) {
    CG_CHECK(index >= 0 && index < CG_MAX_GPUS, "cuda:%d: at most %d GPUs", index, CG_MAX_GPUS);
    if (index != current_gpu) {
        CG_CUDA_CHECK(cudaSetDevice(index));
        current_gpu = index;
    }
}

void cg_cuda_use_gpu(int index) { use_gpu(index); }

cudaStream_t cg_cuda_stream(void) {
    if (current_gpu < 0) use_gpu(0);
    if (streams[current_gpu] == NULL) CG_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[current_gpu], cudaStreamNonBlocking));
    return streams[current_gpu];
}

static int cuda_count(char *reason, size_t reason_size) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count); // fails cleanly without a driver or a GPU
    if (err != cudaSuccess) {
        snprintf(reason, reason_size, "%s", cudaGetErrorString(err));
        cudaGetLastError(); // clear the sticky error so later calls are not confused by it
        return 0;
    }
    if (count == 0) snprintf(reason, reason_size, "the CUDA driver reports no device");
    return count;
}

// ---- the caching allocator -------------------------------------------------------------------
// Like PyTorch's: freed blocks are kept and handed out again instead of going back to the
// driver, because cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds. Sizes are rounded to classes (512 B steps up to 1 MiB, 2 MiB steps above) so
// that a freed block fits the next request of about the same size. A request takes the
// smallest cached block of its class or the next ones up to twice its size.

#define SMALL_STEP 512
#define SMALL_LIMIT (1 << 20)
#define LARGE_STEP (2 << 20)

typedef struct {
    void *ptr;
    size_t size; // rounded
    bool in_use;
} block;

typedef struct {
    block *blocks;
    int count, capacity;
    cg_memory_stats stats;
} gpu_pool;

static gpu_pool pools[CG_MAX_GPUS];

static size_t round_size(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= SMALL_LIMIT) return (bytes + SMALL_STEP - 1) / SMALL_STEP * SMALL_STEP;
    return (bytes + LARGE_STEP - 1) / LARGE_STEP * LARGE_STEP;
}

static void release_cached(gpu_pool *pool) {
    int kept = 0;
    for (int i = 0; i < pool->count; i++) {
        if (pool->blocks[i].in_use) {
            pool->blocks[kept++] = pool->blocks[i];
        } else {
            CG_CUDA_CHECK(cudaFree(pool->blocks[i].ptr));
            pool->stats.reserved -= pool->blocks[i].size;
        }
    }
    pool->count = kept;
}

static void *cuda_alloc(int index, size_t bytes) {
    use_gpu(index);
    gpu_pool *pool = &pools[index];
    size_t size = round_size(bytes);
    pool->stats.allocations++;
    int best = -1;
    for (int i = 0; i < pool->count; i++) {
        block *b = &pool->blocks[i];
        if (!b->in_use && b->size >= size && b->size <= 2 * size && (best < 0 || b->size < pool->blocks[best].size))
            best = i;
    }
    if (best >= 0) {
        pool->blocks[best].in_use = true;
        pool->stats.cache_hits++;
        pool->stats.allocated += pool->blocks[best].size;
    } else {
        void *ptr = NULL;
        cudaError_t err = cudaMalloc(&ptr, size);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            release_cached(pool); // give the cache back and try once more
            err = cudaMalloc(&ptr, size);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_bytes = 0, total = 0;
            cudaMemGetInfo(&free_bytes, &total);
            fprintf(stderr,
                    "cgrad: CUDA out of memory on cuda:%d: asked for %.1f MiB, %.1f MiB free of %.1f MiB; "
                    "cgrad holds %.1f MiB (%.1f MiB in use). Try a smaller --batch-size.\n",
                    index, size / 1048576.0, free_bytes / 1048576.0, total / 1048576.0,
                    pool->stats.reserved / 1048576.0, pool->stats.allocated / 1048576.0);
            exit(EXIT_FAILURE);
        }
        if (pool->count == pool->capacity) {
            pool->capacity = pool->capacity ? 2 * pool->capacity : 64;
            pool->blocks = realloc(pool->blocks, (size_t)pool->capacity * sizeof *pool->blocks);
            CG_CHECK(pool->blocks != NULL, "out of host memory for the allocator's table");
        }
        pool->blocks[pool->count++] = (block){ptr, size, true};
        pool->stats.reserved += size;
        pool->stats.allocated += size;
        best = pool->count - 1;
    }
    if (pool->stats.allocated > pool->stats.peak_allocated) pool->stats.peak_allocated = pool->stats.allocated;
    return pool->blocks[best].ptr;
}

static void cuda_free(int index, void *p);

void *cg_cuda_alloc(size_t bytes) { return cuda_alloc(current_gpu < 0 ? 0 : current_gpu, bytes); }
void cg_cuda_free(void *p) { cuda_free(current_gpu < 0 ? 0 : current_gpu, p); }

static void cuda_free(int index, void *p) {
    gpu_pool *pool = &pools[index];
    for (int i = 0; i < pool->count; i++) {
        if (pool->blocks[i].ptr == p) {
            CG_CHECK(pool->blocks[i].in_use, "cuda:%d: pointer %p freed twice", index, p);
            pool->blocks[i].in_use = false; // cached, not returned to the driver
            pool->stats.allocated -= pool->blocks[i].size;
            return;
        }
    }
    CG_CHECK(0, "cuda:%d: free of %p, which the allocator never handed out", index, p);
}

static cg_memory_stats cuda_memory_stats(int index) { return pools[index].stats; }

static void cuda_empty_cache(int index) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaStreamSynchronize(cg_cuda_stream())); // blocks may still be read by queued work
    release_cached(&pools[index]);
}

// ---- copies ----------------------------------------------------------------------------------
// Copies are queued on the GPU's stream, in order with the kernels. A copy to the host waits
// for it (the caller reads the data next); a copy from the host returns once the source has
// been read (pageable memory) or at once (pinned memory: the caller must not reuse it until
// the stream has passed the copy).

static void cuda_copy(int index, void *dst, const void *src, size_t bytes, int direction) {
    use_gpu(index);
    cudaStream_t s = cg_cuda_stream();
    enum cudaMemcpyKind kind = direction == 0 ? cudaMemcpyHostToDevice
                               : direction == 1 ? cudaMemcpyDeviceToHost
                                                : cudaMemcpyDeviceToDevice;
    CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
    if (direction == 1) CG_CUDA_CHECK(cudaStreamSynchronize(s));
}

static void cuda_zero(int index, void *p, size_t bytes) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cg_cuda_stream()));
}

static void cuda_synchronize(int index) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaStreamSynchronize(cg_cuda_stream()));
}

static void *cuda_host_alloc(int index, size_t bytes) {
    use_gpu(index);
    void *p = NULL;
    CG_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
    return p;
}

static void cuda_host_free(int index, void *p) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaFreeHost(p));
}

static void *cuda_event_new(int index) {
    use_gpu(index);
    cudaEvent_t e;
    CG_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
}

static void cuda_event_record(int index, void *event) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, cg_cuda_stream()));
}

static void cuda_event_wait(int index, void *event) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)event));
}

static void cuda_event_free(int index, void *event) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaEventDestroy((cudaEvent_t)event));
}

// ---- device properties -----------------------------------------------------------------------

// FP32 cores per SM by compute capability (NVIDIA's CUDA C Programming Guide, "Arithmetic
// Instructions" throughput table: 32-bit floating-point add, multiply, multiply-add).
static int fp32_cores_per_sm(int major, int minor) {
    switch (major) {
    case 6: return minor == 0 ? 64 : 128; // Pascal: P100 64, GP10x (the P4000) 128
    case 7: return 64;                    // Volta, Turing
    case 8: return minor == 0 ? 64 : 128; // A100 64, Ampere GA10x and Ada 128
    case 9: return 128;                   // Hopper
    case 10:
    case 12: return 128;                  // Blackwell
    default: return 0;                    // unknown: no peak figure
    }
}

static cg_status cuda_info(int index, cg_device_info *info) {
    use_gpu(index);
    struct cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, index);
    if (err != cudaSuccess) return cg_error(CG_ERR_DEVICE, "cuda:%d: %s", index, cudaGetErrorString(err));
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->compute_major = prop.major;
    info->compute_minor = prop.minor;
    info->multiprocessors = prop.multiProcessorCount;
    info->cores_per_multiprocessor = fp32_cores_per_sm(prop.major, prop.minor);
    int clock_khz = 0;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, index));
    info->clock_ghz = clock_khz / 1e6;
    CG_CUDA_CHECK(cudaMemGetInfo(&info->memory_free, &info->memory_total));
    CG_CUDA_CHECK(cudaDriverGetVersion(&info->driver_version));
    CG_CUDA_CHECK(cudaRuntimeGetVersion(&info->runtime_version));
    info->cublas_version = cg_cuda_cublas_version();
    if (cudaDeviceGetPCIBusId(info->pci_bus_id, (int)sizeof info->pci_bus_id, index) != cudaSuccess) {
        cudaGetLastError();
        info->pci_bus_id[0] = '\0';
    }
    info->peak_fp32_tflops =
        (double)info->multiprocessors * info->cores_per_multiprocessor * info->clock_ghz * 1e9 * 2.0 / 1e12;
    return cg_ok();
}

// ---- CUDA Graphs -----------------------------------------------------------------------------

static void cuda_capture_begin(int index) {
    use_gpu(index);
    // Thread-local mode: a CUDA call from this thread that is illegal during capture fails
    // loudly instead of being silently left out of the graph.
    CG_CUDA_CHECK(cudaStreamBeginCapture(cg_cuda_stream(), cudaStreamCaptureModeThreadLocal));
}

static void *cuda_capture_end(int index) {
    use_gpu(index);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CG_CUDA_CHECK(cudaStreamEndCapture(cg_cuda_stream(), &graph));
    CG_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CG_CUDA_CHECK(cudaGraphDestroy(graph));
    return exec;
}

static void cuda_graph_launch(int index, void *exec) {
    use_gpu(index);
    CG_CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)exec, cg_cuda_stream()));
}

static void cuda_graph_destroy(void *exec) { CG_CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)exec)); }

static void *cuda_stream(int index) {
    use_gpu(index);
    return cg_cuda_stream();
}

// ---- the plugin's entry point -------------------------------------------------------------------

__attribute__((visibility("default"))) const cg_cuda_backend *cg_cuda_backend_entry(void) {
    static const cg_cuda_backend backend = {
        .count = cuda_count,
        .alloc = cuda_alloc,
        .free = cuda_free,
        .copy = cuda_copy,
        .zero = cuda_zero,
        .synchronize = cuda_synchronize,
        .host_alloc = cuda_host_alloc,
        .host_free = cuda_host_free,
        .event_new = cuda_event_new,
        .event_record = cuda_event_record,
        .event_wait = cuda_event_wait,
        .event_free = cuda_event_free,
        .info = cuda_info,
        .memory_stats = cuda_memory_stats,
        .empty_cache = cuda_empty_cache,
        .capture_begin = cuda_capture_begin,
        .capture_end = cuda_capture_end,
        .graph_launch = cuda_graph_launch,
        .graph_destroy = cuda_graph_destroy,
        .stream = cuda_stream,
        .kernels = cg_cuda_kernel_table,
        .bench = cg_cuda_bench_table,
        .quant = cg_cuda_qkernel_table,
    };
    return &backend;
}

// device.h: where a tensor lives (the CPU or one CUDA GPU), and raw memory on it.
// The CPU is always available. CUDA is available when cgrad was built with the CUDA backend and
// a driver and GPU are present; asking for it otherwise is a returned error, never a crash.
// This header includes no CUDA header: layers/, datasets/ and examples/ use it as it is.
#ifndef CG_DEVICE_H
#define CG_DEVICE_H

#include "core/common.h"

#ifdef __cplusplus
extern "C" { // these headers are also read by the CUDA (C++) files
#endif

typedef enum { CG_CPU = 0, CG_CUDA = 1, CG_NUM_DEVICE_TYPES } cg_device_type;

typedef struct {
    cg_device_type type;
    int index; // GPU ordinal for CG_CUDA; 0 for the CPU
} cg_device;

cg_device cg_cpu(void);
bool cg_device_equal(cg_device a, cg_device b);
// Writes "cpu" or "cuda:N" into buf (at least 16 bytes) and returns buf.
const char *cg_device_str(cg_device d, char *buf, size_t size);

// Parse "cpu", "cuda" (= "cuda:0") or "cuda:N" and check the device can be used.
// Errors: CG_ERR_ARG for text that is none of these; CG_ERR_DEVICE with
// "built without CUDA" or "no GPU found" (and the driver's reason) when CUDA cannot be used.
cg_status cg_device_parse(const char *text, cg_device *out);

// True when this build contains the CUDA backend.
bool cg_cuda_built(void);
// Number of usable GPUs; 0 without the backend or without a driver. Never aborts.
int cg_cuda_device_count(void);

// Raw memory. When memory runs out, cg_device_alloc prints how much was asked for (and, on a
// GPU, how much is free) with a hint to use a smaller batch, and exits with status 1.
// CPU memory is 64-byte aligned. bytes may be 0 (returns a valid, unusable pointer).
void *cg_device_alloc(cg_device d, size_t bytes);
// The same, the message naming what the memory was for ("the parameter block of 1234 floats");
// on the CPU only (the GPU's allocator prints its own report).
void *cg_device_alloc_for(cg_device d, size_t bytes, const char *what);
void cg_device_free(cg_device d, void *p);
// Copy bytes between any two devices (host<->GPU, GPU<->GPU, host<->host).
void cg_device_copy(cg_device dst_dev, void *dst, cg_device src_dev, const void *src, size_t bytes);
// Set bytes to zero.
void cg_device_zero(cg_device d, void *p, size_t bytes);
// Wait until all work queued on d has finished (no-op on the CPU).
void cg_device_synchronize(cg_device d);

// Page-locked ("pinned") host memory for fast, asynchronous copies to `d`; plain host memory
// when d is the CPU. Free with cg_host_free(d, p).
void *cg_host_alloc(cg_device d, size_t bytes);
void cg_host_free(cg_device d, void *p);

// A marker in d's queue of work (a CUDA event on a GPU; NULL and no-ops on the CPU, where work
// is done when its call returns): record it after some queued work, and cg_event_wait blocks the
// calling thread, which may be another thread, until that work is done.
void *cg_event_new(cg_device d);
void cg_event_record(cg_device d, void *event);
void cg_event_wait(cg_device d, void *event);
void cg_event_free(cg_device d, void *event);

// What a device is. For a GPU: the CUDA device properties; for the CPU: the model name and
// thread count. Theoretical FP32 peak = FP32 cores x clock x 2 (one FMA is two operations),
// as course chapter 1 computes it; cores per SM come from NVIDIA's table per architecture.
typedef struct cg_device_info {
    char name[256];
    int compute_major, compute_minor; // 0 for the CPU
    int multiprocessors;              // SMs; CPU: threads
    int cores_per_multiprocessor;     // FP32 cores per SM
    double clock_ghz;                 // GPU boost clock; 0 when unknown
    size_t memory_total, memory_free; // bytes
    int driver_version, runtime_version, cublas_version; // e.g. 13000 for CUDA 13.0
    double peak_fp32_tflops;          // cores x clock x 2 / 1e12; 0 when unknown
    char pci_bus_id[32];              // "0000:01:00.0" (how NVML finds the same GPU); "" for the CPU
} cg_device_info;

cg_status cg_device_get_info(cg_device d, cg_device_info *info);

// The caching allocator's figures for a device, in bytes (as torch.cuda.memory_allocated,
// memory_reserved, max_memory_allocated). allocated: handed out to tensors now; reserved:
// held from the driver, allocated plus cached free blocks; peak: the most ever allocated.
typedef struct cg_memory_stats {
    size_t allocated, reserved, peak_allocated;
    int64_t allocations, cache_hits; // calls to alloc, and those served from the cache
} cg_memory_stats;

cg_memory_stats cg_device_memory_stats(cg_device d);
// Give every cached, unused block back to the driver (torch.cuda.empty_cache).
void cg_device_empty_cache(cg_device d);

// CUDA Graphs: record the kernels a training step enqueues once, then replay them with one call.
// A step may be captured when it runs only device work on fixed addresses (the arena and the
// loader guarantee that after the first step) and reads nothing back to the host. On the CPU
// every call is a no-op and cg_graph_replay returns false, so the same loop runs everywhere.
typedef struct cg_graph cg_graph;
cg_graph *cg_graph_new(cg_device d);
void cg_graph_free(cg_graph *g);
// Replay the graph captured under `key` (e.g. the batch size); false if there is none.
bool cg_graph_replay(cg_graph *g, int64_t key);
// Start capturing; everything enqueued on the device until cg_graph_end is recorded, not run.
void cg_graph_begin(cg_graph *g);
// Stop capturing, keep the graph under `key`, and run it once (so the step happens).
void cg_graph_end(cg_graph *g, int64_t key);


#ifdef __cplusplus
}
#endif

#endif

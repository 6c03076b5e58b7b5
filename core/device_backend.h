// device_backend.h: what core/device.c and core/kernels.c ask of the CUDA side (private to core/).
// The CUDA backend is a plugin, libcgrad_cuda.so (kernels/cuda/plugin.c and the kernels beside it), loaded
// with dlopen the first time a GPU is asked for (core/cuda_plugin.c). A CPU run never loads
// the CUDA libraries (cuBLAS alone takes about 0.1 s to load), and a binary built with CUDA
// still runs on a machine without them. Pointers passed here are device pointers of GPU `index`.
#ifndef CG_DEVICE_BACKEND_H
#define CG_DEVICE_BACKEND_H

#include "core/common.h"

#ifdef __cplusplus
extern "C" {
#endif

// The types the table hands over, by name only: this header sits below device.h and kernels.h,
// which use it (core/device.c, core/kernels.c), so it includes neither.
struct cg_device_info;   // core/device.h
struct cg_memory_stats;  // core/device.h
struct cg_kernels;       // core/kernels.h
struct cg_cuda_bench;    // core/measure/hw_bench_backend.h
struct cg_qkernels;      // core/quant/qkernels.h

typedef struct {
    // Number of GPUs; 0 with the reason (e.g. the driver's error string) written to reason.
    int (*count)(char *reason, size_t reason_size);
    void *(*alloc)(int index, size_t bytes);
    void (*free)(int index, void *p);
    // direction: 0 host->device, 1 device->host, 2 device->device.
    void (*copy)(int index, void *dst, const void *src, size_t bytes, int direction);
    void (*zero)(int index, void *p, size_t bytes);
    void (*synchronize)(int index);
    void *(*host_alloc)(int index, size_t bytes); // pinned host memory
    void (*host_free)(int index, void *p);
    // Events on the GPU's stream: made, recorded after the work queued so far, waited for by the
    // calling thread (any thread), destroyed.
    void *(*event_new)(int index);
    void (*event_record)(int index, void *event);
    void (*event_wait)(int index, void *event);
    void (*event_free)(int index, void *event);
    cg_status (*info)(int index, struct cg_device_info *info);
    struct cg_memory_stats (*memory_stats)(int index);
    void (*empty_cache)(int index);
    // Stream capture into a CUDA Graph: begin, end (returns the instantiated graph), launch, destroy.
    void (*capture_begin)(int index);
    void *(*capture_end)(int index);
    void (*graph_launch)(int index, void *exec);
    void (*graph_destroy)(void *exec);
    // The stream (a cudaStream_t) that GPU `index`'s work is queued on: for NCCL (core/dist/).
    void *(*stream)(int index);
    const struct cg_kernels *(*kernels)(void);
    // The benchmark group (core/bench.h, bench_backend.h): timers, number-format conversions,
    // products in each format, a tuned convolution layer.
    const struct cg_cuda_bench *(*bench)(void);
    // The int8 inference kernels (core/qkernels.h), from kernels/cuda/int8.cu.
    const struct cg_qkernels *(*quant)(void);
} cg_cuda_backend;

// The one symbol libcgrad_cuda.so exports.
#define CG_CUDA_BACKEND_ENTRY "cg_cuda_backend_entry"
typedef const cg_cuda_backend *(*cg_cuda_backend_entry_fn)(void);

// From core/cuda_plugin.c: the backend, loaded on first call; NULL with the reason when this
// build has no CUDA backend or the plugin (or the CUDA libraries it needs) cannot be loaded.
const cg_cuda_backend *cg_cuda_backend_get(char *reason, size_t reason_size);
// The backend of a build and machine where a GPU was already found; aborts otherwise.
const cg_cuda_backend *cg_cuda_backend_loaded(void);

#ifdef __cplusplus
}
#endif

#endif

// device.h: where a tensor lives (the CPU or one CUDA GPU), and raw memory on it.
// The CPU is always available. CUDA is available when cgrad was built with the CUDA backend and
// a driver and GPU are present; asking for it otherwise is a returned error, never a crash.
// This header includes no CUDA header: layers/, datasets/ and examples/ use it as it is.
#ifndef CG_DEVICE_H
#define CG_DEVICE_H

#include "common.h"

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

// Raw memory. cg_device_alloc aborts with a clear message when memory runs out.
// CPU memory is 64-byte aligned. bytes may be 0 (returns a valid, unusable pointer).
void *cg_device_alloc(cg_device d, size_t bytes);
void cg_device_free(cg_device d, void *p);
// Copy bytes between any two devices (host<->GPU, GPU<->GPU, host<->host).
void cg_device_copy(cg_device dst_dev, void *dst, cg_device src_dev, const void *src, size_t bytes);
// Set bytes to zero.
void cg_device_zero(cg_device d, void *p, size_t bytes);
// Wait until all work queued on d has finished (no-op on the CPU).
void cg_device_synchronize(cg_device d);

// CPU threads for OpenMP loops and the BLAS library (n >= 1). Without a call, OpenMP's default.
void cg_set_num_threads(int n);
int cg_get_num_threads(void);

#endif

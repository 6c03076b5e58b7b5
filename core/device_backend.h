// device_backend.h: what core/device.c asks of the CUDA side (private to core/).
// core/device_cuda.c implements it in a CUDA build; core/device_nocuda.c otherwise, where every
// call says "built without CUDA". Pointers passed here are device pointers of GPU `index`.
#ifndef CG_DEVICE_BACKEND_H
#define CG_DEVICE_BACKEND_H

#include "device.h"

bool cg_backend_cuda_built(void);
// Number of GPUs; 0 with the reason (e.g. the driver's error string) written to reason.
int cg_backend_cuda_count(char *reason, size_t reason_size);
void *cg_backend_cuda_alloc(int index, size_t bytes);
void cg_backend_cuda_free(int index, void *p);
// direction: 0 host->device, 1 device->host, 2 device->device.
void cg_backend_cuda_copy(int index, void *dst, const void *src, size_t bytes, int direction);
void cg_backend_cuda_zero(int index, void *p, size_t bytes);
void cg_backend_cuda_synchronize(int index);

void *cg_backend_cuda_host_alloc(int index, size_t bytes); // pinned host memory
void cg_backend_cuda_host_free(int index, void *p);
cg_status cg_backend_cuda_info(int index, cg_device_info *info);
cg_memory_stats cg_backend_cuda_memory_stats(int index);
void cg_backend_cuda_empty_cache(int index);

// Stream capture into a CUDA Graph: begin, end (returns the instantiated graph), launch, destroy.
void cg_backend_cuda_capture_begin(int index);
void *cg_backend_cuda_capture_end(int index);
void cg_backend_cuda_graph_launch(int index, void *exec);
void cg_backend_cuda_graph_destroy(void *exec);

#endif

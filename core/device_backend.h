// device_backend.h: what core/device.c asks of the CUDA side (private to core/).
// core/device_cuda.c implements it in a CUDA build; core/device_nocuda.c otherwise, where every
// call says "built without CUDA". Pointers passed here are device pointers of GPU `index`.
#ifndef CG_DEVICE_BACKEND_H
#define CG_DEVICE_BACKEND_H

#include "common.h"

bool cg_backend_cuda_built(void);
// Number of GPUs; 0 with the reason (e.g. the driver's error string) written to reason.
int cg_backend_cuda_count(char *reason, size_t reason_size);
void *cg_backend_cuda_alloc(int index, size_t bytes);
void cg_backend_cuda_free(int index, void *p);
// direction: 0 host->device, 1 device->host, 2 device->device.
void cg_backend_cuda_copy(int index, void *dst, const void *src, size_t bytes, int direction);
void cg_backend_cuda_zero(int index, void *p, size_t bytes);
void cg_backend_cuda_synchronize(int index);

#endif

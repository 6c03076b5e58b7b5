// device_nocuda.c: the CUDA side of core/device.c in a build without the CUDA toolkit.
// cg_backend_cuda_count reports 0 GPUs with the reason; the other calls cannot be reached,
// because cg_device_parse never hands out a CUDA device in this build.
#include "device_backend.h"

#include <stdio.h>

bool cg_backend_cuda_built(void) { return false; }

int cg_backend_cuda_count(char *reason, size_t reason_size) {
    snprintf(reason, reason_size, "built without CUDA");
    return 0;
}

void *cg_backend_cuda_alloc(int index, size_t bytes) {
    CG_CHECK(0, "cuda:%d alloc of %zu bytes: built without CUDA", index, bytes);
}
void cg_backend_cuda_free(int index, void *p) {
    (void)p;
    CG_CHECK(0, "cuda:%d free: built without CUDA", index);
}
void cg_backend_cuda_copy(int index, void *dst, const void *src, size_t bytes, int direction) {
    (void)dst, (void)src, (void)direction;
    CG_CHECK(0, "cuda:%d copy of %zu bytes: built without CUDA", index, bytes);
}
void cg_backend_cuda_zero(int index, void *p, size_t bytes) {
    (void)p;
    CG_CHECK(0, "cuda:%d zero of %zu bytes: built without CUDA", index, bytes);
}
void cg_backend_cuda_synchronize(int index) { CG_CHECK(0, "cuda:%d sync: built without CUDA", index); }

void *cg_backend_cuda_host_alloc(int index, size_t bytes) {
    CG_CHECK(0, "cuda:%d pinned alloc of %zu bytes: built without CUDA", index, bytes);
}
void cg_backend_cuda_host_free(int index, void *p) {
    (void)p;
    CG_CHECK(0, "cuda:%d pinned free: built without CUDA", index);
}
cg_status cg_backend_cuda_info(int index, cg_device_info *info) {
    (void)info;
    return cg_error(CG_ERR_DEVICE, "cuda:%d: cgrad was built without CUDA", index);
}
cg_memory_stats cg_backend_cuda_memory_stats(int index) {
    (void)index;
    cg_memory_stats none = {0};
    return none;
}
void cg_backend_cuda_empty_cache(int index) { (void)index; }
void cg_backend_cuda_capture_begin(int index) { CG_CHECK(0, "cuda:%d graph: built without CUDA", index); }
void *cg_backend_cuda_capture_end(int index) { CG_CHECK(0, "cuda:%d graph: built without CUDA", index); }
void cg_backend_cuda_graph_launch(int index, void *exec) {
    (void)exec;
    CG_CHECK(0, "cuda:%d graph: built without CUDA", index);
}
void cg_backend_cuda_graph_destroy(void *exec) { (void)exec; }

// Without the backend there is no CUDA kernel table (see core/kernels.h).
#include "kernels.h"
const cg_kernels *cg_cuda_kernels(void) { return NULL; }

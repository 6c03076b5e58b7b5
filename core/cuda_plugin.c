// cuda_plugin.c: finding and loading the CUDA backend plugin, libcgrad_cuda.so, on first use.
// The build writes the plugin's path in CG_CUDA_PLUGIN; CGRAD_CUDA_PLUGIN in the environment
// overrides it. Without CG_CUDA_PLUGIN (a build without the CUDA toolkit) every answer is
// "built without CUDA".
#define _POSIX_C_SOURCE 200809L
#include "core/device_backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cg_cuda_backend *cg_cuda_backend_get(char *reason, size_t reason_size) {
#ifndef CG_CUDA_PLUGIN
    snprintf(reason, reason_size, "built without CUDA");
    return NULL;
#else
    static const cg_cuda_backend *backend = NULL;
    static char load_error[512] = ""; // set once: a failed load is not retried
    if (backend == NULL && load_error[0] == '\0') {
        const char *path = getenv("CGRAD_CUDA_PLUGIN");
        if (path == NULL || path[0] == '\0') path = CG_CUDA_PLUGIN;
        void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            snprintf(load_error, sizeof load_error, "cannot load the CUDA backend: %s", dlerror());
        } else {
            cg_cuda_backend_entry_fn entry = NULL;
            *(void **)&entry = dlsym(handle, CG_CUDA_BACKEND_ENTRY); // POSIX's way to get a function
            if (entry == NULL)
                snprintf(load_error, sizeof load_error, "%s has no %s", path, CG_CUDA_BACKEND_ENTRY);
            else
                backend = entry();
        }
    }
    if (backend == NULL) snprintf(reason, reason_size, "%s", load_error);
    return backend;
#endif
}

const cg_cuda_backend *cg_cuda_backend_loaded(void) {
    char reason[512];
    const cg_cuda_backend *b = cg_cuda_backend_get(reason, sizeof reason);
    CG_CHECK(b != NULL, "a GPU was used but the CUDA backend is not available: %s", reason);
    return b;
}

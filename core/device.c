// device.c: device names, parsing, and raw memory on the CPU or a GPU.
// The GPU half goes through the plugin table of device_backend.h: no CUDA header here.
#define _POSIX_C_SOURCE 200112L
#include "core/device.h"
#include "core/device_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// The threads the CPU's OpenMP loops run on (1 without OpenMP).
static int omp_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Zeroes host memory; the threads share a large range, in slices of 1 MiB.
static void zero_host(void *p, size_t bytes) {
    const size_t slice = (size_t)1 << 20;
    if (bytes < 4 * slice) {
        memset(p, 0, bytes);
        return;
    }
    int64_t slices = (int64_t)((bytes + slice - 1) / slice);
#pragma omp parallel for
    for (int64_t i = 0; i < slices; i++) {
        size_t begin = (size_t)i * slice, end = begin + slice < bytes ? begin + slice : bytes;
        memset((char *)p + begin, 0, end - begin);
    }
}

cg_device cg_cpu(void) {
    cg_device d = {CG_CPU, 0};
    return d;
}

bool cg_device_equal(cg_device a, cg_device b) { return a.type == b.type && a.index == b.index; }

const char *cg_device_str(cg_device d, char *buf, size_t size) {
    if (d.type == CG_CPU)
        snprintf(buf, size, "cpu");
    else
        snprintf(buf, size, "cuda:%d", d.index);
    return buf;
}

bool cg_cuda_built(void) {
#ifdef CG_CUDA_PLUGIN
    return true;
#else
    return false;
#endif
}

// The GPU count, loading the CUDA backend if needed; 0 with the reason when there is none.
static int gpu_count(char *reason, size_t reason_size) {
    const cg_cuda_backend *b = cg_cuda_backend_get(reason, reason_size);
    return b ? b->count(reason, reason_size) : 0;
}

int cg_cuda_device_count(void) {
    char reason[512];
    return gpu_count(reason, sizeof reason);
}

// The loaded backend (only reached with a CUDA device, which cg_device_parse hands out only
// when the backend loaded and found the GPU).
static const cg_cuda_backend *cuda(void) { return cg_cuda_backend_loaded(); }

cg_status cg_device_parse(const char *text, cg_device *out) {
    if (strcmp(text, "cpu") == 0) {
        *out = cg_cpu();
        return cg_ok();
    }
    int index = 0;
    if (strcmp(text, "cuda") != 0) {
        char *end = NULL;
        if (strncmp(text, "cuda:", 5) != 0 || text[5] == '\0')
            return cg_error(CG_ERR_ARG, "unknown device '%s' (expected cpu, cuda or cuda:N)", text);
        long v = strtol(text + 5, &end, 10);
        if (*end != '\0' || v < 0 || v > 1023)
            return cg_error(CG_ERR_ARG, "unknown device '%s' (expected cpu, cuda or cuda:N)", text);
        index = (int)v;
    }
    if (!cg_cuda_built()) return cg_error(CG_ERR_DEVICE, "device '%s': cgrad was built without CUDA", text);
    char reason[512];
    int count = gpu_count(reason, sizeof reason);
    if (count == 0)
        return cg_error(CG_ERR_DEVICE, "device '%s': no GPU found (%s)", text, reason);
    if (index >= count)
        return cg_error(CG_ERR_DEVICE, "device '%s': only %d GPU(s) found (cuda:0 to cuda:%d)", text, count,
                        count - 1);
    out->type = CG_CUDA;
    out->index = index;
    return cg_ok();
}

void *cg_device_alloc_for(cg_device d, size_t bytes, const char *what) {
    if (d.type == CG_CUDA) return cuda()->alloc(d.index, bytes);
    void *p = NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        // Not a bug but a request too large for this machine (a batch too large, usually):
        // say so and stop, as the GPU's allocator does.
        if (what != NULL)
            fprintf(stderr, "cgrad: out of host memory asking for %.1f MiB for %s\n", bytes / 1048576.0, what);
        else
            fprintf(stderr, "cgrad: out of host memory asking for %.1f MiB; try a smaller --batch-size\n",
                    bytes / 1048576.0);
        exit(EXIT_FAILURE);
    }
    return p;
}

void *cg_device_alloc(cg_device d, size_t bytes) { return cg_device_alloc_for(d, bytes, NULL); }

void cg_device_free(cg_device d, void *p) {
    if (p == NULL) return;
    if (d.type == CG_CUDA)
        cuda()->free(d.index, p);
    else
        free(p);
}

void cg_device_copy(cg_device dst_dev, void *dst, cg_device src_dev, const void *src, size_t bytes) {
    if (bytes == 0) return;
    if (dst_dev.type == CG_CPU && src_dev.type == CG_CPU) {
        memmove(dst, src, bytes);
    } else if (dst_dev.type == CG_CUDA && src_dev.type == CG_CPU) {
        cuda()->copy(dst_dev.index, dst, src, bytes, 0);
    } else if (dst_dev.type == CG_CPU && src_dev.type == CG_CUDA) {
        cuda()->copy(src_dev.index, dst, src, bytes, 1);
    } else {
        cuda()->copy(dst_dev.index, dst, src, bytes, 2);
    }
}

void cg_device_zero(cg_device d, void *p, size_t bytes) {
    if (bytes == 0) return;
    if (d.type == CG_CUDA)
        cuda()->zero(d.index, p, bytes);
    else
        zero_host(p, bytes);
}

void cg_device_synchronize(cg_device d) {
    if (d.type == CG_CUDA) cuda()->synchronize(d.index);
}

void *cg_host_alloc(cg_device d, size_t bytes) {
    if (d.type == CG_CUDA) return cuda()->host_alloc(d.index, bytes);
    return cg_device_alloc(d, bytes);
}

void *cg_event_new(cg_device d) { return d.type == CG_CUDA ? cuda()->event_new(d.index) : NULL; }

void cg_event_record(cg_device d, void *event) {
    if (d.type == CG_CUDA) cuda()->event_record(d.index, event);
}

void cg_event_wait(cg_device d, void *event) {
    if (d.type == CG_CUDA) cuda()->event_wait(d.index, event);
}

void cg_event_free(cg_device d, void *event) {
    if (d.type == CG_CUDA && event) cuda()->event_free(d.index, event);
}

void cg_host_free(cg_device d, void *p) {
    if (p == NULL) return;
    if (d.type == CG_CUDA)
        cuda()->host_free(d.index, p);
    else
        cg_device_free(d, p);
}

// The CPU's model name from /proc/cpuinfo (Linux); "unknown CPU" elsewhere.
static void cpu_model_name(char *out, size_t size) {
    snprintf(out, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ' || *colon == '\t') colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(out, size, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

cg_status cg_device_get_info(cg_device d, cg_device_info *info) {
    memset(info, 0, sizeof *info);
    if (d.type == CG_CUDA) return cuda()->info(d.index, info);
    cpu_model_name(info->name, sizeof info->name);
    info->multiprocessors = omp_threads(); // the OpenMP threads loops run on
    return cg_ok();
}

cg_memory_stats cg_device_memory_stats(cg_device d) {
    if (d.type == CG_CUDA) return cuda()->memory_stats(d.index);
    cg_memory_stats none = {0}; // host memory is not tracked
    return none;
}

void cg_device_empty_cache(cg_device d) {
    if (d.type == CG_CUDA) cuda()->empty_cache(d.index);
}

// ---- CUDA Graphs: a few captured steps, looked up by key ----------------------------------

#define CG_GRAPH_SLOTS 8

struct cg_graph {
    cg_device device;
    int count;
    int64_t keys[CG_GRAPH_SLOTS];
    void *execs[CG_GRAPH_SLOTS];
};

cg_graph *cg_graph_new(cg_device d) {
    cg_graph *g = cg_xcalloc(1, sizeof *g);
    g->device = d;
    return g;
}

void cg_graph_free(cg_graph *g) {
    if (g == NULL) return;
    for (int i = 0; i < g->count; i++) cuda()->graph_destroy(g->execs[i]);
    free(g);
}

bool cg_graph_replay(cg_graph *g, int64_t key) {
    if (g->device.type != CG_CUDA) return false;
    for (int i = 0; i < g->count; i++)
        if (g->keys[i] == key) {
            cuda()->graph_launch(g->device.index, g->execs[i]);
            return true;
        }
    return false;
}

void cg_graph_begin(cg_graph *g) {
    if (g->device.type == CG_CUDA) cuda()->capture_begin(g->device.index);
}

void cg_graph_end(cg_graph *g, int64_t key) {
    if (g->device.type != CG_CUDA) return;
    void *exec = cuda()->capture_end(g->device.index);
    CG_CHECK(g->count < CG_GRAPH_SLOTS, "more than %d captured graphs", CG_GRAPH_SLOTS);
    g->keys[g->count] = key;
    g->execs[g->count] = exec;
    g->count++;
    cuda()->graph_launch(g->device.index, exec);
}

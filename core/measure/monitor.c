// monitor.c: GPU counters through NVML, loaded with dlopen, read once per interval on a pthread
// (monitor.h). The few NVML types and functions used are declared here, as the NVML API
// Reference Manual (docs.nvidia.com/deploy/nvml-api, "Device Queries") defines them, so that no
// NVML header or library is needed to build. Nothing here touches CUDA.
#define _POSIX_C_SOURCE 200809L
#include "core/measure/monitor.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- NVML, as its reference manual declares it ---------------------------------------------------

typedef int nvml_return;                    // nvmlReturn_t: NVML_SUCCESS = 0
typedef struct nvml_device_st *nvml_device; // nvmlDevice_t
typedef struct {
    unsigned int gpu, memory; // % of the sample period a kernel ran / device memory was read or written
} nvml_utilization;           // nvmlUtilization_t
typedef struct {
    unsigned long long total, free, used; // bytes
} nvml_memory;                            // nvmlMemory_t (version 1, what nvmlDeviceGetMemoryInfo fills)
enum { NVML_SUCCESS = 0, NVML_TEMPERATURE_GPU = 0 };

typedef struct {
    nvml_return (*init)(void);                                                   // nvmlInit_v2
    nvml_return (*shutdown)(void);                                               // nvmlShutdown
    const char *(*error_string)(nvml_return);                                    // nvmlErrorString
    nvml_return (*handle_by_index)(unsigned int, nvml_device *);                 // nvmlDeviceGetHandleByIndex_v2
    nvml_return (*handle_by_pci_bus_id)(const char *, nvml_device *);            // nvmlDeviceGetHandleByPciBusId_v2
    nvml_return (*utilization)(nvml_device, nvml_utilization *);                 // nvmlDeviceGetUtilizationRates
    nvml_return (*memory)(nvml_device, nvml_memory *);                           // nvmlDeviceGetMemoryInfo
    nvml_return (*temperature)(nvml_device, int sensor, unsigned int *celsius);  // nvmlDeviceGetTemperature
    nvml_return (*power)(nvml_device, unsigned int *milliwatts);                 // nvmlDeviceGetPowerUsage
} nvml_api;

// ---- the monitor -----------------------------------------------------------------------------------

enum { UTIL, MEM, TEMP, POWER, FIELDS };

struct cg_monitor {
    void *library;
    nvml_api nvml;
    nvml_device device;
    double interval; // seconds

    pthread_t thread;
    pthread_mutex_t lock; // guards everything below
    pthread_cond_t wake;  // signalled to stop the thread before its next sample is due
    bool stop;
    double sums[FIELDS]; // of the samples since the last cg_monitor_take
    int counts[FIELDS];  // how many of them reported each field
    int samples;
    double last[FIELDS]; // the most recent sample
};

// One sample of the four counters; NaN for a counter the GPU does not report (NVML_ERROR_NOT_SUPPORTED).
static void read_counters(const cg_monitor *m, double v[FIELDS]) {
    nvml_utilization u;
    nvml_memory mem;
    unsigned int celsius, milliwatts;
    v[UTIL] = m->nvml.utilization(m->device, &u) == NVML_SUCCESS ? (double)u.gpu : NAN;
    v[MEM] = m->nvml.memory(m->device, &mem) == NVML_SUCCESS ? (double)mem.used / 1048576.0 : NAN;
    v[TEMP] = m->nvml.temperature(m->device, NVML_TEMPERATURE_GPU, &celsius) == NVML_SUCCESS ? (double)celsius : NAN;
    v[POWER] = m->nvml.power(m->device, &milliwatts) == NVML_SUCCESS ? milliwatts / 1000.0 : NAN;
}

// Add a sample to the sums; called with the lock held.
static void record(cg_monitor *m, const double v[FIELDS]) {
    for (int f = 0; f < FIELDS; f++) {
        m->last[f] = v[f];
        if (!isnan(v[f])) {
            m->sums[f] += v[f];
            m->counts[f]++;
        }
    }
    m->samples++;
}

// The sampling thread: a sample, then a wait of `interval` (cut short by cg_monitor_stop).
static void *sampler(void *arg) {
    cg_monitor *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        double whole = floor(m->interval);
        deadline.tv_sec += (time_t)whole;
        deadline.tv_nsec += (long)((m->interval - whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!m->stop && pthread_cond_timedwait(&m->wake, &m->lock, &deadline) != ETIMEDOUT) {
        }
        if (m->stop) break;
        pthread_mutex_unlock(&m->lock); // NVML queries take about a millisecond: not under the lock
        double v[FIELDS];
        read_counters(m, v);
        pthread_mutex_lock(&m->lock);
        record(m, v);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

// dlsym into a function pointer (POSIX's way: through a void * object).
static bool load(void *library, const char *name, void *fn) {
    void *p = dlsym(library, name);
    memcpy(fn, &p, sizeof p);
    return p != NULL;
}

cg_monitor *cg_monitor_start_nvml(const char *pci_bus_id, unsigned index, double interval_s, char *why,
                                  size_t why_size) {
    CG_CHECK(interval_s > 0.0, "monitor interval %g s", interval_s);
    const char *path = getenv("CGRAD_NVML_LIBRARY");
    if (path == NULL || path[0] == '\0') path = "libnvidia-ml.so.1";
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(why, why_size, "NVML not found (%s; it comes with the NVIDIA driver)", dlerror());
        return NULL;
    }
    cg_monitor *m = cg_xcalloc(1, sizeof *m);
    m->library = library;
    m->interval = interval_s;
    nvml_api *n = &m->nvml;
    const char *missing = NULL;
    if (!load(library, "nvmlInit_v2", &n->init)) missing = "nvmlInit_v2";
    else if (!load(library, "nvmlShutdown", &n->shutdown)) missing = "nvmlShutdown";
    else if (!load(library, "nvmlErrorString", &n->error_string)) missing = "nvmlErrorString";
    else if (!load(library, "nvmlDeviceGetHandleByIndex_v2", &n->handle_by_index)) missing = "nvmlDeviceGetHandleByIndex_v2";
    else if (!load(library, "nvmlDeviceGetHandleByPciBusId_v2", &n->handle_by_pci_bus_id))
        missing = "nvmlDeviceGetHandleByPciBusId_v2";
    else if (!load(library, "nvmlDeviceGetUtilizationRates", &n->utilization)) missing = "nvmlDeviceGetUtilizationRates";
    else if (!load(library, "nvmlDeviceGetMemoryInfo", &n->memory)) missing = "nvmlDeviceGetMemoryInfo";
    else if (!load(library, "nvmlDeviceGetTemperature", &n->temperature)) missing = "nvmlDeviceGetTemperature";
    else if (!load(library, "nvmlDeviceGetPowerUsage", &n->power)) missing = "nvmlDeviceGetPowerUsage";
    if (missing) {
        snprintf(why, why_size, "%s has no %s", path, missing);
        dlclose(library);
        free(m);
        return NULL;
    }
    nvml_return st = n->init();
    if (st != NVML_SUCCESS) {
        snprintf(why, why_size, "NVML did not start: %s", n->error_string(st));
        dlclose(library);
        free(m);
        return NULL;
    }
    // The PCI bus id names the same GPU as CUDA does; NVML's index may count GPUs that
    // CUDA_VISIBLE_DEVICES hides, or in another order.
    if (pci_bus_id && pci_bus_id[0])
        st = n->handle_by_pci_bus_id(pci_bus_id, &m->device);
    else
        st = n->handle_by_index(index, &m->device);
    if (st != NVML_SUCCESS) {
        if (pci_bus_id && pci_bus_id[0])
            snprintf(why, why_size, "NVML does not find the GPU at PCI %s: %s", pci_bus_id, n->error_string(st));
        else
            snprintf(why, why_size, "NVML does not find GPU %u: %s", index, n->error_string(st));
        n->shutdown();
        dlclose(library);
        free(m);
        return NULL;
    }
    double v[FIELDS];
    read_counters(m, v); // the first sample now, so that even a first epoch shorter than interval has one
    record(m, v);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&m->lock, NULL);
    int err = pthread_create(&m->thread, NULL, sampler, m);
    if (err != 0) {
        snprintf(why, why_size, "cannot start the monitoring thread: %s", strerror(err));
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->lock);
        n->shutdown();
        dlclose(library);
        free(m);
        return NULL;
    }
    return m;
}

cg_monitor *cg_monitor_start(cg_device d, double interval_s, char *why, size_t why_size) {
    if (d.type != CG_CUDA) {
        snprintf(why, why_size, "nothing to monitor on the CPU (GPU counters only)");
        return NULL;
    }
    cg_device_info info;
    cg_status s = cg_device_get_info(d, &info);
    if (s.code != CG_OK) {
        snprintf(why, why_size, "%s", s.message);
        return NULL;
    }
    return cg_monitor_start_nvml(info.pci_bus_id, (unsigned)d.index, interval_s, why, why_size);
}

cg_monitor_sample cg_monitor_take(cg_monitor *m) {
    cg_monitor_sample out;
    pthread_mutex_lock(&m->lock);
    double v[FIELDS];
    if (m->samples > 0) {
        for (int f = 0; f < FIELDS; f++) v[f] = m->counts[f] ? m->sums[f] / m->counts[f] : NAN;
        out.samples = m->samples;
    } else { // no sample since the last call: the latest one stands for this period
        memcpy(v, m->last, sizeof v);
        out.samples = 1;
    }
    memset(m->sums, 0, sizeof m->sums);
    memset(m->counts, 0, sizeof m->counts);
    m->samples = 0;
    pthread_mutex_unlock(&m->lock);
    out.util_percent = v[UTIL];
    out.memory_used_mib = v[MEM];
    out.temperature_c = v[TEMP];
    out.power_w = v[POWER];
    return out;
}

void cg_monitor_stop(cg_monitor *m) {
    if (m == NULL) return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    m->nvml.shutdown();
    dlclose(m->library);
    free(m);
}

void cg_monitor_csv_cells(const cg_monitor_sample *s, char *buf, size_t size) {
    double v[FIELDS] = {NAN, NAN, NAN, NAN};
    if (s) {
        v[UTIL] = s->util_percent;
        v[MEM] = s->memory_used_mib;
        v[TEMP] = s->temperature_c;
        v[POWER] = s->power_w;
    }
    static const char *const formats[FIELDS] = {",%.1f", ",%.0f", ",%.1f", ",%.1f"};
    size_t used = 0;
    buf[0] = '\0';
    for (int f = 0; f < FIELDS && used < size; f++) {
        int n = isnan(v[f]) ? snprintf(buf + used, size - used, ",") : snprintf(buf + used, size - used, formats[f], v[f]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

void cg_monitor_describe(const cg_monitor_sample *s, char *buf, size_t size) {
    const double v[FIELDS] = {s->util_percent, s->memory_used_mib, s->temperature_c, s->power_w};
    char text[FIELDS][32];
    for (int f = 0; f < FIELDS; f++) {
        if (isnan(v[f]))
            snprintf(text[f], sizeof text[f], "?");
        else
            snprintf(text[f], sizeof text[f], "%.0f", v[f]);
    }
    snprintf(buf, size, "GPU %s %% busy, %s MiB, %s C, %s W", text[UTIL], text[MEM], text[TEMP], text[POWER]);
}

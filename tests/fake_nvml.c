// fake_nvml.c: a stand-in for libnvidia-ml.so.1 that test_monitor loads through
// CGRAD_NVML_LIBRARY, so that core/monitor.c's thread, means and CSV cells are tested on machines
// without an NVIDIA driver. Fixed counters: utilisation alternating 40 % and 60 %, 2048 MiB used,
// 61 C, and no power reading (NVML_ERROR_NOT_SUPPORTED), so that an unreported counter is tested.
// One GPU, at PCI bus id 0000:01:00.0 and index 0. Signatures as the NVML reference manual's.
typedef struct nvml_device_st *nvml_device;
typedef struct {
    unsigned int gpu, memory;
} nvml_utilization;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory;

enum { SUCCESS = 0, ERROR_INVALID_ARGUMENT = 2, ERROR_NOT_SUPPORTED = 3, ERROR_NOT_FOUND = 6 };

static int the_gpu; // its address is the device handle
static unsigned int calls;

int nvmlInit_v2(void) { return SUCCESS; }
int nvmlShutdown(void) { return SUCCESS; }
const char *nvmlErrorString(int result) {
    return result == ERROR_NOT_FOUND ? "Not Found" : result == ERROR_NOT_SUPPORTED ? "Not Supported" : "Unknown Error";
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvml_device *device) {
    if (index != 0) return ERROR_NOT_FOUND;
    *device = (nvml_device)&the_gpu;
    return SUCCESS;
}
int nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, nvml_device *device) {
    const char *mine = "0000:01:00.0";
    for (int i = 0; mine[i] || bus_id[i]; i++)
        if (mine[i] != bus_id[i]) return ERROR_NOT_FOUND;
    *device = (nvml_device)&the_gpu;
    return SUCCESS;
}
int nvmlDeviceGetUtilizationRates(nvml_device device, nvml_utilization *u) {
    if (device != (nvml_device)&the_gpu) return ERROR_INVALID_ARGUMENT;
    unsigned int n = __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    u->gpu = n % 2 ? 60 : 40;
    u->memory = 10;
    return SUCCESS;
}
int nvmlDeviceGetMemoryInfo(nvml_device device, nvml_memory *m) {
    if (device != (nvml_device)&the_gpu) return ERROR_INVALID_ARGUMENT;
    m->total = 8ull << 30;
    m->used = 2048ull << 20;
    m->free = m->total - m->used;
    return SUCCESS;
}
int nvmlDeviceGetTemperature(nvml_device device, int sensor, unsigned int *celsius) {
    if (device != (nvml_device)&the_gpu || sensor != 0) return ERROR_INVALID_ARGUMENT;
    *celsius = 61;
    return SUCCESS;
}
int nvmlDeviceGetPowerUsage(nvml_device device, unsigned int *milliwatts) {
    (void)device, (void)milliwatts;
    return ERROR_NOT_SUPPORTED;
}

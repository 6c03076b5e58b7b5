// monitor.h: GPU monitoring during training (course chapter 4's `watch -n 1 nvidia-smi`, inside
// the program): utilisation, memory used, temperature and power, sampled on a background thread
// through NVML, the library nvidia-smi itself reads. NVML is loaded at run time with
// dlopen("libnvidia-ml.so.1"), the library the NVIDIA driver installs, so no build needs it and
// a machine without it gets a one-line reason instead of a failure. It only reads the GPU's
// counters: it neither slows the training (one query a second) nor needs CUDA.
#ifndef CG_MONITOR_H
#define CG_MONITOR_H

#include "core/device.h"

// The CSV columns a training log gains with --monitor, and how each is measured:
//   gpu_util     % of the last sample period (1/6 s to 1 s, the driver's choice) during which
//                one or more kernels ran on the GPU (nvmlDeviceGetUtilizationRates .gpu)
//   gpu_mem_mib  device memory in use by every process and the driver, MiB (nvmlDeviceGetMemoryInfo .used)
//   gpu_temp_c   GPU die temperature, degrees Celsius (nvmlDeviceGetTemperature, NVML_TEMPERATURE_GPU)
//   gpu_power_w  power draw of the whole board, watts (nvmlDeviceGetPowerUsage, milliwatts / 1000)
#define CG_MONITOR_CSV_HEADER "gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w"

typedef struct {
    double util_percent, memory_used_mib, temperature_c, power_w; // NaN when the GPU does not report one
    int samples; // how many samples the values are the mean of; 0: none yet (all NaN)
} cg_monitor_sample;

typedef struct cg_monitor cg_monitor;

// Start sampling GPU d every interval_s seconds (the first sample at once) on a background
// thread. Returns NULL, with a one-line reason in why, when it cannot: d is the CPU, NVML cannot
// be loaded (no NVIDIA driver), or NVML does not find the GPU. The environment variable
// CGRAD_NVML_LIBRARY names another library to load instead of libnvidia-ml.so.1 (tests).
cg_monitor *cg_monitor_start(cg_device d, double interval_s, char *why, size_t why_size);
// The same for the GPU NVML knows by PCI bus id ("0000:01:00.0"; "" or NULL: NVML's index).
cg_monitor *cg_monitor_start_nvml(const char *pci_bus_id, unsigned index, double interval_s, char *why,
                                  size_t why_size);
// The mean of the samples taken since the previous call (or the start): what the CSV row of an
// epoch gets. When no sample fell in between (an epoch shorter than the interval), the most
// recent sample instead, with samples = 1.
cg_monitor_sample cg_monitor_take(cg_monitor *m);
// Stop the thread and unload NVML. NULL is allowed.
void cg_monitor_stop(cg_monitor *m);

// ",util,mem,temp,power" for a CSV row: each formatted, or an empty cell when NaN (also every
// cell when s is NULL: a run with --monitor but nothing to monitor keeps the same columns).
void cg_monitor_csv_cells(const cg_monitor_sample *s, char *buf, size_t size);

// "GPU 87 % busy, 1234 MiB, 55 C, 250 W" for a progress line; "?" for a counter not reported.
void cg_monitor_describe(const cg_monitor_sample *s, char *buf, size_t size);

#endif

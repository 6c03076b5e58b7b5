// test_monitor.c: core/monitor.h without a GPU. A fake NVML (tests/fake_nvml.c, loaded through
// CGRAD_NVML_LIBRARY) drives the sampling thread: the first sample at once, the means of later
// ones, an unreported counter left empty, the CSV cells, a GPU NVML does not find. Then the
// refusals: the CPU, a missing library. Then simple_nn --monitor --log on the CPU: one stderr
// line, the four gpu_ columns present and empty. With a real GPU and driver, also one real sample.
#define _POSIX_C_SOURCE 200809L
#include "core/measure/monitor.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

static void test_fake_nvml(void) {
    setenv("CGRAD_NVML_LIBRARY", CGRAD_FAKE_NVML, 1);
    char why[512] = "";
    cg_monitor *m = cg_monitor_start_nvml("0000:01:00.0", 0, 0.02, why, sizeof why);
    if (m == NULL) {
        fail("fake NVML", "did not start: %s", why);
        return;
    }
    cg_monitor_sample first = cg_monitor_take(m); // the sample taken by start, perhaps one more
    if (first.samples < 1 || !(first.util_percent >= 40 && first.util_percent <= 60) || first.memory_used_mib != 2048 ||
        first.temperature_c != 61 || !isnan(first.power_w))
        fail("first sample", "%d samples: util %g, mem %g, temp %g, power %g (expected 40..60, 2048, 61, NaN)",
             first.samples, first.util_percent, first.memory_used_mib, first.temperature_c, first.power_w);
    sleep_seconds(0.25); // about 12 samples at 0.02 s
    cg_monitor_sample mean = cg_monitor_take(m);
    // Utilisation alternates 40 / 60: the mean of n samples is within 20 / n of 50.
    if (mean.samples < 4 || fabs(mean.util_percent - 50.0) > 20.0 / mean.samples + 1e-9 || mean.memory_used_mib != 2048)
        fail("mean", "%d samples, util %g, mem %g", mean.samples, mean.util_percent, mean.memory_used_mib);
    char cells[128];
    cg_monitor_csv_cells(&(cg_monitor_sample){50.0, 2048.0, 61.0, NAN, 3}, cells, sizeof cells);
    if (strcmp(cells, ",50.0,2048,61.0,") != 0) fail("csv cells", "\"%s\", expected \",50.0,2048,61.0,\"", cells);
    cg_monitor_csv_cells(NULL, cells, sizeof cells);
    if (strcmp(cells, ",,,,") != 0) fail("csv cells of nothing", "\"%s\"", cells);
    char text[128];
    cg_monitor_describe(&mean, text, sizeof text);
    if (strstr(text, "2048 MiB") == NULL || strstr(text, "? W") == NULL) fail("describe", "\"%s\"", text);
    cg_monitor_stop(m);
    printf("fake NVML: first sample at start, mean of %d samples %.1f %% (40/60 alternating), \"%s\"\n", mean.samples,
           mean.util_percent, text);

    // A stop right after the start returns at once (the thread waits on a condition, not a sleep).
    m = cg_monitor_start_nvml(NULL, 0, 30.0, why, sizeof why);
    if (m == NULL) fail("index 0", "did not start: %s", why);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cg_monitor_stop(m);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double waited = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    if (waited > 1.0) fail("stop", "took %.2f s with a 30 s interval", waited);

    if (cg_monitor_start_nvml("0000:99:00.0", 0, 1.0, why, sizeof why) != NULL)
        fail("unknown bus id", "started");
    else if (strstr(why, "0000:99:00.0") == NULL || strstr(why, "Not Found") == NULL)
        fail("unknown bus id", "reason \"%s\"", why);
    else
        printf("unknown GPU: %s\n", why);
    unsetenv("CGRAD_NVML_LIBRARY");
}

static void test_refusals(void) {
    char why[512] = "";
    if (cg_monitor_start(cg_cpu(), 1.0, why, sizeof why) != NULL) fail("cpu", "started");
    else if (strstr(why, "CPU") == NULL) fail("cpu", "reason \"%s\"", why);
    else printf("cpu: %s\n", why);
    setenv("CGRAD_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    if (cg_monitor_start_nvml(NULL, 0, 1.0, why, sizeof why) != NULL) fail("no library", "started");
    else if (strstr(why, "NVML not found") == NULL) fail("no library", "reason \"%s\"", why);
    else printf("no library: %s\n", why);
    unsetenv("CGRAD_NVML_LIBRARY");
}

// simple_nn --monitor on the CPU: a one-line note, the columns there and empty.
static void test_simple_nn_log(void) {
    char dir[] = "/tmp/test_monitor.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        fail("mkdtemp", "cannot make a scratch folder");
        return;
    }
    char csv[256], err[256], command[2048];
    snprintf(csv, sizeof csv, "%s/log.csv", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    snprintf(command, sizeof command, "'%s/simple_nn' --device cpu --epochs 2 --quiet --monitor --log '%s' >/dev/null 2>'%s'",
             CGRAD_BIN_DIR, csv, err);
    int status = system(command);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("simple_nn --monitor", "exit status %d", status);
    char text[4096] = "";
    FILE *f = fopen(err, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    if (n == 0 || strchr(text, '\n') != text + n - 1 || strstr(text, "--monitor") == NULL)
        fail("simple_nn --monitor", "stderr is not one line naming --monitor: \"%s\"", text);
    f = fopen(csv, "r");
    n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    const char *header = "epoch,loss,accuracy,seconds,device,gpu_util,gpu_mem_mib,gpu_temp_c,gpu_power_w\n";
    if (strncmp(text, header, strlen(header)) != 0) fail("simple_nn --monitor", "log starts \"%.120s\"", text);
    int rows = -1; // the header is not a row
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), rows++) {
        size_t len = strlen(line);
        if (rows >= 0 && (len < 8 || strcmp(line + len - 8, ",cpu,,,,") != 0))
            fail("simple_nn --monitor", "row \"%s\" does not end in ,cpu,,,,", line);
    }
    if (rows != 2) fail("simple_nn --monitor", "%d rows, expected 2", rows);
    unlink(csv);
    unlink(err);
    rmdir(dir);
    printf("simple_nn --monitor on the CPU: one note, %d rows with empty gpu_ columns\n", rows);
}

// With a GPU and its driver: one real sample of the first GPU.
static void test_real_gpu(void) {
    cg_device d;
    if (cg_cuda_device_count() == 0 || cg_device_parse("cuda", &d).code != CG_OK) {
        printf("skipped: no GPU for a real sample\n");
        return;
    }
    char why[512];
    cg_monitor *m = cg_monitor_start(d, 0.1, why, sizeof why);
    if (m == NULL) {
        fail("real GPU", "a GPU but no monitor: %s", why);
        return;
    }
    cg_monitor_sample s = cg_monitor_take(m);
    if (!(s.util_percent >= 0 && s.util_percent <= 100) || !(s.memory_used_mib > 0))
        fail("real GPU", "util %g, memory %g MiB", s.util_percent, s.memory_used_mib);
    char text[128];
    cg_monitor_describe(&s, text, sizeof text);
    printf("real GPU: %s\n", text);
    cg_monitor_stop(m);
}

int main(void) {
    test_fake_nvml();
    test_refusals();
    test_simple_nn_log();
    test_real_gpu();
    return check_summary("test_monitor");
}

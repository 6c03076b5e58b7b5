// epoch_log.c: the per-epoch report of the examples (examples/common/epoch_log.h).
#include "examples/common/epoch_log.h"
#include "core/measure/monitor.h"
#include "examples/common/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cg_epoch_log {
    cg_csv_log *csv;
    cg_monitor *monitor;
    bool monitor_asked, precision_columns;
    cg_progress progress;
    double start;        // the run's first epoch began
    double epoch_start;  // this epoch began
    char header[512];    // the CSV's first line
};

cg_status cg_epoch_log_open(cg_epoch_log **out, const char *program, const char *path, const char *columns,
                            bool precision_columns, bool monitor, cg_device dev, bool quiet) {
    *out = NULL;
    cg_epoch_log *e = cg_xcalloc(1, sizeof *e);
    e->monitor_asked = monitor;
    e->precision_columns = precision_columns;
    if (path) {
        char header[512];
        snprintf(header, sizeof header, "%s%s%s", columns, precision_columns ? ",precision,loss_scale,skipped_steps" : "",
                 monitor ? "," CG_MONITOR_CSV_HEADER : "");
        snprintf(e->header, sizeof e->header, "%s", header);
        cg_status s = cg_csv_log_open(&e->csv, path, header);
        if (s.code != CG_OK) {
            free(e);
            return s;
        }
    }
    if (monitor) {
        char why[512];
        e->monitor = cg_monitor_start(dev, 1.0, why, sizeof why);
        if (e->monitor == NULL) fprintf(stderr, "%s: --monitor: %s; the gpu_ columns stay empty\n", program, why);
    }
    cg_progress_init(&e->progress, quiet);
    e->start = e->epoch_start = cg_seconds();
    *out = e;
    return cg_ok();
}

void cg_epoch_log_begin(cg_epoch_log *e) { e->epoch_start = cg_seconds(); }

// "1 h 02 min", "3 min 07 s" or "12 s".
static void format_duration(double seconds, char *buf, size_t size) {
    long s = seconds > 0 && isfinite(seconds) ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, size, "%ld h %02ld min", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, size, "%ld min %02ld s", s / 60, s % 60);
    else
        snprintf(buf, size, "%ld s", s);
}

void cg_epoch_log_progress(cg_epoch_log *e, long epoch, long epochs, int64_t step, int64_t steps, int64_t images,
                           double (*loss_so_far)(void *ctx), void *ctx) {
    if (!cg_progress_due(&e->progress)) return;
    double elapsed = cg_seconds() - e->epoch_start;
    double rate = elapsed > 0 ? (double)images / elapsed : 0.0;
    double per_step = step > 0 ? elapsed / (double)step : 0.0;
    double left = per_step * (double)((steps - step) + (epochs - epoch) * steps);
    char loss[32] = "", eta[32];
    if (loss_so_far) snprintf(loss, sizeof loss, "  loss %.4f", loss_so_far(ctx));
    format_duration(left, eta, sizeof eta);
    cg_progress_draw(&e->progress, "epoch %ld/%ld  step %lld/%lld%s  %.0f images/s  %s left", epoch, epochs,
                     (long long)step, (long long)steps, loss, rate, eta);
}

cg_status cg_epoch_log_end(cg_epoch_log *e, const char *own_cells, const cg_amp *amp, cg_precision precision,
                           char *text, size_t size) {
    cg_progress_done(&e->progress);
    char amp_cells[96] = "", amp_text[96] = "", gpu_cells[128] = "", gpu_text[128] = "";
    if (amp && (e->precision_columns || precision != CG_PRECISION_FP32)) { // read once an epoch
        cg_amp_stats st = cg_amp_read(amp);
        if (e->precision_columns)
            snprintf(amp_cells, sizeof amp_cells, ",%s,%g,%lld", cg_precision_name(precision), (double)st.scale,
                     (long long)st.skipped);
        if (precision != CG_PRECISION_FP32)
            snprintf(amp_text, sizeof amp_text, "  |  %s, loss scale %g, %lld skipped", cg_precision_name(precision),
                     (double)st.scale, (long long)st.skipped);
    }
    if (e->monitor_asked) { // the epoch's mean of the GPU's counters
        cg_monitor_sample sample;
        if (e->monitor) sample = cg_monitor_take(e->monitor);
        cg_monitor_csv_cells(e->monitor ? &sample : NULL, gpu_cells, sizeof gpu_cells);
        if (e->monitor) {
            char counters[96];
            cg_monitor_describe(&sample, counters, sizeof counters);
            snprintf(gpu_text, sizeof gpu_text, "  |  %s", counters);
        }
    }
    if (text) snprintf(text, size, "%s%s", amp_text, gpu_text);
    if (e->csv == NULL || own_cells == NULL) return cg_ok(); // NULL: an epoch cut short has no row
    return cg_csv_log_row(e->csv, "%s%s%s", own_cells, amp_cells, gpu_cells);
}

cg_status cg_epoch_log_continue(cg_epoch_log *e, const char *program, const char *previous) {
    if (e->csv == NULL || previous == NULL) return cg_ok();
    size_t header = strlen(e->header);
    if (strncmp(previous, e->header, header) != 0 || previous[header] != '\n') {
        fprintf(stderr, "%s: the log's earlier rows have other columns than this run's; the log starts anew\n", program);
        return cg_ok();
    }
    cg_status s = cg_ok();
    for (const char *line = previous + header + 1; *line && s.code == CG_OK;) {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        s = cg_csv_log_row(e->csv, "%.*s", len, line);
        line += len + (end != NULL);
    }
    return s;
}

void cg_epoch_log_close(cg_epoch_log *e) {
    if (e == NULL) return;
    cg_progress_done(&e->progress);
    cg_monitor_stop(e->monitor);
    cg_csv_log_close(e->csv);
    free(e);
}

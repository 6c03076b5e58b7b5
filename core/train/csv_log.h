// csv_log.h: the per-epoch metrics log of a training run, one CSV row per epoch.
// Each row is formatted in memory and written with a single write() and flushed, so a crash or
// Ctrl-C leaves only whole rows. Opening fails (as a returned status) before any training when
// the path cannot be written, so bad input never leaves a file behind.
#ifndef CG_CSV_LOG_H
#define CG_CSV_LOG_H

#include "core/common.h"

typedef struct cg_csv_log cg_csv_log;

// Replace path by a new file holding the header line, e.g. "epoch,loss,accuracy,seconds,device":
// written to a new temporary file beside it and renamed over it, as a checkpoint is saved, so a
// symbolic link at path is replaced, never written through. Errors: CG_ERR_IO naming the path and
// the system's reason (a directory at path, a folder that cannot be written).
cg_status cg_csv_log_open(cg_csv_log **out, const char *path, const char *header);
// Append one row (printf-style, without the newline). Errors: CG_ERR_IO (disk full, ...).
cg_status cg_csv_log_row(cg_csv_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_csv_log_close(cg_csv_log *log);

#endif

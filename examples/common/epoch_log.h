// epoch_log.h: what simple_nn and cnn report about each epoch beyond their own numbers, written
// once: the CSV log with its optional mixed-precision and GPU columns, the GPU monitor
// (core/measure/monitor.h) that fills them, and the progress line (epoch, step, images/s,
// running loss, time left), drawn on a terminal only. Not the training loop itself.
#ifndef CG_EPOCH_LOG_H
#define CG_EPOCH_LOG_H

#include "cgrad.h"

typedef struct cg_epoch_log cg_epoch_log;

// Opens the CSV at path (NULL: no file) whose header is `columns`, then
// ",precision,loss_scale,skipped_steps" when precision_columns, then the monitor's columns when
// monitor; starts the monitor on dev when asked (when it cannot, one line on stderr says why and
// its columns stay empty). quiet: no progress line. Errors: the CSV's (core/train/csv_log.h).
cg_status cg_epoch_log_open(cg_epoch_log **out, const char *program, const char *path, const char *columns,
                            bool precision_columns, bool monitor, cg_device dev, bool quiet);

// The progress line of step `step` of `steps` in epoch `epoch` of `epochs`, `images` trained so
// far in this epoch. loss_so_far: called only when the line is drawn (at most 10 times a
// second, never when stderr is not a terminal), it gives the running mean loss of the epoch;
// NULL: no loss shown. The time left counts the remaining steps of every epoch at this epoch's
// rate.
void cg_epoch_log_progress(cg_epoch_log *e, long epoch, long epochs, int64_t step, int64_t steps, int64_t images,
                           double (*loss_so_far)(void *ctx), void *ctx);
// A new epoch starts (its clock and its image count restart).
void cg_epoch_log_begin(cg_epoch_log *e);

// Ends the epoch: clears the progress line, writes the CSV row (the program's own cells, then the
// precision and GPU cells; amp may be NULL; own_cells NULL: an epoch cut short, no row) and returns in `text` what the console line appends:
// "  |  bf16, loss scale 1, 0 skipped" and "  |  GPU 97 %, ..." as they apply.
cg_status cg_epoch_log_end(cg_epoch_log *e, const char *own_cells, const cg_amp *amp, cg_precision precision,
                           char *text, size_t size);

// Continues the log of an earlier run that this one resumes (examples/common/resume.h): previous
// is that log's header line and the rows to keep. When the header is this log's, the rows are
// written again after it; otherwise (other columns) they are dropped, said in one line on stderr
// naming program. Nothing happens without a CSV. Errors: the CSV's.
cg_status cg_epoch_log_continue(cg_epoch_log *e, const char *program, const char *previous);

// Closes the CSV and stops the monitor; NULL does nothing.
void cg_epoch_log_close(cg_epoch_log *e);

#endif

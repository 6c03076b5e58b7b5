// safe_file.h: opening files that someone else may have planted or replaced. A file opened for
// reading is checked to be a regular file before anything waits on it (a named pipe would block
// forever); a temporary file is created new (never through an existing name or link) with the
// writer's process id in its name, so that the stale ones a killed run left behind can be found
// and removed without touching anyone else's files. No reading or writing of contents here.
#ifndef CG_SAFE_FILE_H
#define CG_SAFE_FILE_H

#include "core/common.h"

// Opens path for reading without blocking on a named pipe, a socket or a device (O_NONBLOCK,
// cleared again after the check), then checks with fstat that it is a regular file. Returns the
// descriptor (close it), or -1 with *why set to the system's reason ("No such file or
// directory") or to what it is instead ("a named pipe, not a regular file"). *bytes (may be
// NULL) gets the file's length.
int cg_open_regular(const char *path, int64_t *bytes, const char **why);

// Creates a new, empty temporary file beside final_path, named FINAL.tmp.PID.XXXXXX (the X's made
// unique by mkstemp, which never follows or reuses an existing name), with mode 0644. Writes its
// name into tmp (size bytes) and returns the descriptor, or -1 with errno set.
int cg_temp_create(const char *final_path, char *tmp, size_t size);

// Removes the temporary files that cg_temp_create made for final_path in earlier runs that have
// ended (killed, or out of disk space) and were not renamed: names FINAL.tmp.PID.XXXXXX whose
// process PID no longer runs, that are regular files (never a link: lstat) owned by this user.
// A file of a run still going is left alone. Returns how many were removed; errors are ignored
// (a file that cannot be removed stays, and is looked at again next time).
int cg_remove_stale_temps(const char *final_path);

#endif

// safe_file.c: regular-file opens that cannot hang, temporary files created new, and the removal
// of one's own stale temporary files (safe_file.h). POSIX calls only; nothing is read here.
#define _POSIX_C_SOURCE 200809L
#include "core/safe_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// What a file that is not a regular one is, for messages.
static const char *kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory, not a regular file";
    if (S_ISFIFO(mode)) return "a named pipe, not a regular file";
    if (S_ISSOCK(mode)) return "a socket, not a regular file";
    if (S_ISCHR(mode)) return "a character device, not a regular file";
    if (S_ISBLK(mode)) return "a block device, not a regular file";
    return "not a regular file";
}

int cg_open_regular(const char *path, int64_t *bytes, const char **why) {
    // O_NONBLOCK: opening a named pipe for reading would otherwise wait for a writer, forever.
    // O_NOCTTY: a terminal device never becomes the controlling terminal.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *why = strerror(errno);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = kind_of(st.st_mode);
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (bytes != NULL) *bytes = (int64_t)st.st_size;
    *why = NULL;
    return fd;
}

int cg_temp_create(const char *final_path, char *tmp, size_t size) {
    int n = snprintf(tmp, size, "%s.tmp.%ld.XXXXXX", final_path, (long)getpid());
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp); // O_CREAT | O_EXCL: a planted file or link at that name is never opened
    if (fd < 0) return -1;
    fchmod(fd, 0644);      // mkstemp makes the file private (0600); these are ordinary data files
    return fd;
}

// The pid in "PID.XXXXXX" (the part of a name after "FINAL.tmp."), or 0 when it is not that form.
static long temp_pid(const char *rest) {
    char *end = NULL;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (end == rest || errno != 0 || pid <= 0 || *end != '.' || strlen(end + 1) != 6) return 0;
    return pid;
}

int cg_remove_stale_temps(const char *final_path) {
    const char *slash = strrchr(final_path, '/');
    char dir[4096];
    const char *base = final_path;
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else {
        int len = slash == final_path ? 1 : (int)(slash - final_path);
        if ((size_t)len >= sizeof dir) return 0;
        snprintf(dir, sizeof dir, "%.*s", len, final_path);
        base = slash + 1;
    }
    if (base[0] == '\0') return 0;
    char prefix[1024];
    int plen = snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    if (plen < 0 || (size_t)plen >= sizeof prefix) return 0;

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;
    DIR *dp = fdopendir(dfd);
    if (dp == NULL) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (strncmp(de->d_name, prefix, (size_t)plen) != 0) continue;
        long pid = temp_pid(de->d_name + plen);
        if (pid == 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; // that run may still be writing it
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) continue; // a link, or someone else's
        if (unlinkat(dfd, de->d_name, 0) == 0) removed++;               // unlink never follows a link
    }
    closedir(dp);
    return removed;
}

// replay_main.c: runs a fuzz target over saved inputs without libFuzzer, so that the corpus (seeds
// and every crash input found so far) is replayed by ctest with any compiler. Arguments: files or
// folders (every regular file inside, in name order). Exit 0 when every input ran; a crash or a
// sanitizer report is the failure.
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int inputs = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += run_file(argv[i]);
            inputs++;
            continue;
        }
        DIR *dp = opendir(argv[i]);
        char **names = NULL;
        int count = 0;
        struct dirent *de;
        while (dp && (de = readdir(dp)) != NULL) {
            if (de->d_name[0] == '.') continue;
            names = realloc(names, (size_t)(count + 1) * sizeof *names);
            names[count] = malloc(strlen(argv[i]) + strlen(de->d_name) + 2);
            sprintf(names[count], "%s/%s", argv[i], de->d_name);
            count++;
        }
        if (dp) closedir(dp);
        qsort(names, (size_t)count, sizeof *names, by_name);
        for (int k = 0; k < count; k++) {
            if (stat(names[k], &st) == 0 && S_ISREG(st.st_mode)) {
                errors += run_file(names[k]);
                inputs++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %d inputs run\n", inputs);
    return errors ? 1 : 0;
}

// test_docs.c: the README, bench/README.md and the lessons stay true to the programs. Every command
// they show that runs a built example (`build/NAME ...` or `./build/NAME ...`) may only use flags
// that `NAME --help` lists: a flag renamed or removed in the code and not in the text fails here.
// The programs are CGRAD_BIN_DIR/NAME; the documents are read from the source tree (the test's
// working directory).
#define _POSIX_C_SOURCE 200809L
#include "tests/check.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CGRAD_BIN_DIR
#define CGRAD_BIN_DIR "./build"
#endif

static const char *programs[] = {"simple_nn", "cnn", "device_info", "gpu_benchmark", "precision", "quantize"};
#define NUM_PROGRAMS (sizeof programs / sizeof programs[0])
static char *help_text[NUM_PROGRAMS]; // each program's --help, read once
static int checked;                   // (program, flag) uses checked

// The whole stdout of `program --help` (NULL and a failure when it does not run).
static char *read_help(const char *program) {
    char command[1024];
    snprintf(command, sizeof command, "'%s/%s' --help 2>/dev/null", CGRAD_BIN_DIR, program);
    FILE *p = popen(command, "r");
    if (!p) {
        fail(program, "cannot run %s", command);
        return NULL;
    }
    size_t size = 0, cap = 1 << 14;
    char *text = malloc(cap);
    size_t n;
    while ((n = fread(text + size, 1, cap - size - 1, p)) > 0) {
        size += n;
        if (size + 1 == cap) text = realloc(text, cap *= 2);
    }
    text[size] = '\0';
    int status = pclose(p);
    if (status != 0 || size == 0) {
        fail(program, "`%s` exited with status %d and printed %zu bytes", command, status, size);
        free(text);
        return NULL;
    }
    return text;
}

// Whether help lists flag as a whole word ("--log" is not found inside "--logits").
static bool help_lists(const char *help, const char *flag) {
    size_t len = strlen(flag);
    for (const char *at = strstr(help, flag); at; at = strstr(at + 1, flag)) {
        char next = at[len];
        if (!(isalnum((unsigned char)next) || next == '-' || next == '_')) return true;
    }
    return false;
}

// The flags after "build/NAME" on one line of a document, up to the end of that command.
static void check_command(const char *doc, int line_no, int program, const char *rest) {
    char line[2048];
    snprintf(line, sizeof line, "%s", rest);
    char *save = NULL;
    for (char *word = strtok_r(line, " \t\n", &save); word; word = strtok_r(NULL, " \t\n", &save)) {
        if (strstr(word, "build/") || strchr(word, '|') || strchr(word, '`') || strchr(word, ';') ||
            strcmp(word, "&&") == 0 || strchr(word, '>') || strchr(word, '#'))
            break; // the end of this command: another command, a pipe, a redirection or a comment
        if (strncmp(word, "--", 2) != 0 || !isalpha((unsigned char)word[2])) continue;
        char flag[64];
        size_t n = 0;
        while (word[n] && (isalnum((unsigned char)word[n]) || word[n] == '-') && n < sizeof flag - 1) n++;
        memcpy(flag, word, n), flag[n] = '\0';
        while (n > 2 && flag[n - 1] == '-') flag[--n] = '\0'; // "--precision fp16|bf16" and the like
        checked++;
        if (help_text[program] && !help_lists(help_text[program], flag)) {
            char what[256];
            snprintf(what, sizeof what, "%s:%d", doc, line_no);
            fail(what, "`%s %s`: %s --help does not list %s", programs[program], flag, programs[program], flag);
        }
    }
}

static void check_document(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fail(path, "cannot read");
        return;
    }
    char line[4096];
    int line_no = 0;
    while (fgets(line, sizeof line, f)) {
        line_no++;
        for (char *at = strstr(line, "build/"); at; at = strstr(at + 1, "build/")) {
            if (at > line && (isalnum((unsigned char)at[-1]) || at[-1] == '_' || at[-1] == '-')) continue;
            const char *name = at + strlen("build/");
            for (size_t p = 0; p < NUM_PROGRAMS; p++) {
                size_t len = strlen(programs[p]);
                if (strncmp(name, programs[p], len) == 0 && (name[len] == ' ' || name[len] == '\t'))
                    check_command(path, line_no, (int)p, name + len);
            }
        }
    }
    fclose(f);
}

int main(void) {
    for (size_t p = 0; p < NUM_PROGRAMS; p++) help_text[p] = read_help(programs[p]);
    check_document("README.md");
    check_document("bench/README.md");
    DIR *d = opendir("lessons");
    if (!d) {
        fail("lessons", "cannot open the folder (run from the source tree)");
    } else {
        for (struct dirent *e; (e = readdir(d));) {
            size_t len = strlen(e->d_name);
            if (len < 4 || strcmp(e->d_name + len - 3, ".md") != 0) continue;
            char path[512];
            snprintf(path, sizeof path, "lessons/%s", e->d_name);
            check_document(path);
        }
        closedir(d);
    }
    if (checked < 50) fail("documents", "only %d flag uses found: is the scan still reading the commands?", checked);
    for (size_t p = 0; p < NUM_PROGRAMS; p++) free(help_text[p]);
    printf("test_docs: %d flag uses in the README, bench/README.md and the lessons\n", checked);
    return check_summary("test_docs");
}

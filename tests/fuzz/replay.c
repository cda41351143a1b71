/* SPDX-License-Identifier: MIT
 * A main() for the libFuzzer harnesses without libFuzzer: runs the
 * harness once on each file named, or on each file in each directory
 * named (in name order), the way `fuzz_<target> FILE...` replays inputs.
 * Built with the project's compiler for make test (tests/fuzz/replay.sh),
 * so every harness compiles and its checks run on its seeds, under the
 * sanitizers with SAN=1. A wrong result aborts (FUZZ_BUG), as in a fuzzer.
 *   replay_<target> [--min N] PATH...
 * Exits 1 when fewer than N inputs (default 1) were run, or a path cannot
 * be read. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Runs the harness on the file at path; 0 when it could be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) abort();
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so that ASan sees any read past the input. */
    unsigned char *in = malloc(len ? len : 1);
    if (in == NULL) abort();
    if (len) memcpy(in, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(in, len);
    free(in);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir, in name order; adds to *count. */
static int run_dir(const char *dir, long *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            if (names == NULL) abort();
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) abort();
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    long min = 1;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--min") == 0) {
        min = strtol(argv[2], NULL, 10);
        first = 3;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long count = 0;
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i]);
        if (rc != 0) return 1;
        if (!S_ISDIR(st.st_mode)) count++;
    }
    fprintf(stderr, "%s: %ld inputs\n", argv[0], count);
    if (count < min) {
        fprintf(stderr, "replay: %ld inputs, fewer than %ld\n", count, min);
        return 1;
    }
    return 0;
}

/* SPDX-License-Identifier: MIT
 * Shared bits of the libFuzzer harnesses (tests/fuzz/fuzz_*.c): exact-size
 * copies (ASan sees any over-read), a fixed clock, one temp dir per
 * process, and the abort-with-message used for wrong results. */
#ifndef LS_FUZZ_COMMON_H
#define LS_FUZZ_COMMON_H
#include "ls_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lodestone/ls_clock.h"
#include "lodestone/ls_err.h"

#define FUZZ_NOW_S 1800000000LL

/* libFuzzer's entry points (each harness defines TestOneInput, some
 * Initialize). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A wrong result: print and abort, so libFuzzer saves the input. */
#define FUZZ_BUG(...)                                            \
    do {                                                         \
        fprintf(stderr, "FUZZ BUG %s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                            \
        fputc('\n', stderr);                                     \
        abort();                                                 \
    } while (0)

/* Heap copy of exactly n bytes (one byte when n is 0, never read). */
static inline char *fuzz_exact(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (c == NULL) abort();
    if (n) memcpy(c, p, n);
    return c;
}

/* Lines in n bytes of text: 1 plus its newlines (a file that parses has
 * at most that many entries). */
static inline size_t fuzz_lines(const uint8_t *p, size_t n)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += p[i] == '\n';
    return lines;
}

/* NUL-terminated heap copy. */
static inline char *fuzz_cstr(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c == NULL) abort();
    if (n) memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static char fuzz_dir_buf[256];

/* One temp dir for the process (under $TMPDIR, else /tmp), removed at exit
 * by rm -r. libFuzzer may end a run without running atexit: run.sh points
 * TMPDIR at a folder of its own and empties it after each target. */
static void fuzz_rm_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_buf);
    if (system(cmd) != 0) {}
}

static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_buf[0]) return fuzz_dir_buf;
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 200) tmp = "/tmp";
    snprintf(fuzz_dir_buf, sizeof fuzz_dir_buf, "%.200s/lsfuzz.XXXXXX", tmp);
    if (mkdtemp(fuzz_dir_buf) == NULL) abort();
    atexit(fuzz_rm_dir);
    return fuzz_dir_buf;
}

static inline void fuzz_write(const char *name, const void *p, size_t n, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(p, 1, n, f) != n) abort();
    fclose(f);
    chmod(path, mode);
}

/* The repository root: LS_ROOT in the environment, else where the harness
 * was built from (build.sh and CMake define LS_FUZZ_ROOT). */
#ifndef LS_FUZZ_ROOT
#define LS_FUZZ_ROOT "."
#endif

/* Reads a file of the source tree (relative to the repository root). */
static inline char *fuzz_slurp(const char *rel, size_t *len)
{
    char path[1024];
    const char *root = getenv("LS_ROOT") ? getenv("LS_ROOT") : LS_FUZZ_ROOT;
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    if (len) *len = n;
    return buf;
}

/* On failure: err carries rc and a non-empty, NUL-terminated message. */
static inline void fuzz_check_err(ls_rc rc, const ls_err *err)
{
    if (rc == LS_OK) return;
    if (memchr(err->msg, '\0', sizeof err->msg) == NULL) FUZZ_BUG("error message not terminated");
    if (err->msg[0] == '\0') FUZZ_BUG("empty error message for %s", ls_rc_name(rc));
    if (err->code != rc)
        FUZZ_BUG("returned %s but err.code is %s (%s)", ls_rc_name(rc), ls_rc_name(err->code),
                 err->msg);
}

static inline void fuzz_err_poison(ls_err *err)
{
    err->code = LS_OK;
    memset(err->msg, 0xAA, sizeof err->msg);
}

#endif

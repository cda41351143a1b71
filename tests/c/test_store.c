/* SPDX-License-Identifier: MIT
 * Tests of native/store/: opening and refusing directories, point access,
 * atomic batches, range and prefix scans over snapshots, the typed key
 * encoding, allocation failures, and a SIGKILL crash test showing that
 * acknowledged synced batches survive whole and no batch survives in part.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

typedef struct {
    const char *p;
    size_t n;
} bytes;

#define B(s)               \
    {                      \
        (s), sizeof(s) - 1 \
    }
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char meta_format_key[] = "\x00"
                                      "format"; /* 7 bytes: namespace 0, "format" */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: the same sequence for the same seed everywhere */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned seed_rng(const char *what)
{
    const char *env = getenv("LS_TEST_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 0)
                                : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    print_message("%s: seed %u (set LS_TEST_SEED to repeat)\n", what, seed);
    return seed;
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) return c < 0 ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

static const char *hex(const void *p, size_t n, char *out, size_t outlen)
{
    const unsigned char *b = p;
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", b[i]);
    return out;
}

static char *store_path(void **state, const char *name)
{
    return th_path((const char *)*state, name);
}

static ls_store_t *open_ok(const char *path, int create)
{
    ls_store_opts o = {create, 0, 0};
    ls_store_t *st = NULL;
    ls_err err = {0};
    th_ok(ls_store_open(&st, path, &o, &err), &err);
    assert_non_null(st);
    return st;
}

static ls_rc open_fails(const char *path, int create, ls_err *err)
{
    ls_store_opts o = {create, 0, 0};
    ls_store_t *st = (ls_store_t *)&o; /* must be reset to NULL */
    memset(err, 0, sizeof *err);
    ls_rc rc = ls_store_open(&st, path, &o, err);
    assert_int_not_equal(rc, LS_OK);
    assert_null(st);
    assert_int_equal(err->code, rc);
    return rc;
}

static void put(ls_store_t *st, bytes k, bytes v)
{
    ls_err err = {0};
    th_ok(ls_store_put(st, k.p, k.n, v.p, v.n, 0, &err), &err);
}

static void want_value(ls_store_t *st, bytes k, bytes want)
{
    ls_buf val = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_store_get(st, k.p, k.n, &val, &err), &err);
    assert_int_equal(val.len, want.n);
    if (want.n) assert_memory_equal(val.ptr, want.p, want.n);
    ls_buf_free(&val);
}

static void want_absent(ls_store_t *st, bytes k)
{
    ls_buf val = LS_BUF_INIT;
    ls_err err = {LS_OK, "untouched"};
    assert_int_equal(ls_store_get(st, k.p, k.n, &val, &err), LS_ENOTFOUND);
    assert_string_equal(err.msg, "untouched");
    ls_buf_free(&val);
}

/* Runs the iterator to its end, checking the keys against want in order;
 * frees the iterator. */
static void want_keys(ls_store_iter_t *it, const bytes *want, size_t n)
{
    const void *k;
    size_t kl;
    ls_err err = {0};
    char h1[128], h2[128];
    for (size_t i = 0; i < n; i++) {
        ls_rc rc = ls_store_iter_next(it, &k, &kl, NULL, NULL, &err);
        if (rc != LS_OK)
            fail_msg("key %zu (%s): got %s", i, hex(want[i].p, want[i].n, h1, sizeof h1),
                     ls_rc_name(rc));
        if (bytes_cmp(k, kl, want[i].p, want[i].n) != 0)
            fail_msg("key %zu: got %s, want %s", i, hex(k, kl, h1, sizeof h1),
                     hex(want[i].p, want[i].n, h2, sizeof h2));
    }
    ls_rc rc = ls_store_iter_next(it, &k, &kl, NULL, NULL, &err);
    if (rc != LS_ENOTFOUND)
        fail_msg("after %zu keys: got %s (%s), want the end", n, ls_rc_name(rc),
                 hex(k, kl, h1, sizeof h1));
    assert_int_equal(ls_store_iter_next(it, &k, &kl, NULL, NULL, &err),
                     LS_ENOTFOUND); /* stays ended */
    ls_store_iter_free(it);
}

static void scan_range(ls_store_t *st, const bytes *lower, const bytes *upper, int reverse,
                       const bytes *want, size_t n)
{
    ls_store_range r = {lower ? lower->p : NULL, lower ? lower->n : 0, upper ? upper->p : NULL,
                        upper ? upper->n : 0, reverse};
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_new(&it, st, &r, &err), &err);
    want_keys(it, want, n);
}

static void scan_prefix(ls_store_t *st, bytes prefix, int reverse, const bytes *want, size_t n)
{
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_prefix(&it, st, prefix.p, prefix.n, reverse, &err), &err);
    want_keys(it, want, n);
}

static void reversed(const bytes *in, bytes *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[n - 1 - i];
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- open / close ---- */

static void test_store_create_reopen_keeps_data(void **state)
{
    char *path = store_path(state, "reopen");
    ls_store_t *st = open_ok(path, 1);
    assert_int_equal(ls_store_format(st), LS_STORE_FORMAT);
    put(st, (bytes)B("alpha"), (bytes)B("one"));
    ls_err err = {0};
    th_ok(ls_store_put(st, "beta", 4, "two", 3, LS_STORE_SYNC, &err), &err);
    ls_store_close(st);

    st = open_ok(path, 0); /* no create needed now */
    want_value(st, (bytes)B("alpha"), (bytes)B("one"));
    want_value(st, (bytes)B("beta"), (bytes)B("two"));
    assert_int_equal(ls_store_format(st), LS_STORE_FORMAT);
    ls_store_close(st);

    st = open_ok(path, 1); /* create on an existing store opens it */
    want_value(st, (bytes)B("alpha"), (bytes)B("one"));
    ls_store_close(st);
    ls_store_close(NULL);
    free(path);
}

static void test_store_format_record_written(void **state)
{
    char *path = store_path(state, "format");
    ls_store_t *st = open_ok(path, 1);
    want_value(st, (bytes){meta_format_key, 7}, (bytes)B("\x00\x00\x00\x01"));
    ls_store_close(st);
    free(path);
}

/* A new store holds its format record only; any other record, in any
 * namespace (before the format record's key or after it), is data. */
static void test_store_holds_data(void **state)
{
    ls_err err = {0};
    char *path = store_path(state, "holds");
    ls_store_t *st = open_ok(path, 1);
    int holds = -1;
    th_ok(ls_store_holds_data(st, &holds, &err), &err);
    assert_int_equal(holds, 0);
    static const struct {
        const char *key;
        size_t len;
    } keys[] = {{"\x00keycheck!", 10}, {"\x00", 1}, {"\000format!", 8}, {"\x11run", 4}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        th_ok(ls_store_put(st, keys[i].key, keys[i].len, "v", 1, 0, &err), &err);
        th_ok(ls_store_holds_data(st, &holds, &err), &err);
        assert_int_equal(holds, 1);
        th_ok(ls_store_delete(st, keys[i].key, keys[i].len, 0, &err), &err);
        th_ok(ls_store_holds_data(st, &holds, &err), &err);
        assert_int_equal(holds, 0);
    }
    /* The vault's key check seals nothing: with it alone, the store is new. */
    th_ok(ls_store_put(st, "\x00keycheck", 9, "v", 1, 0, &err), &err);
    th_ok(ls_store_holds_data(st, &holds, &err), &err);
    assert_int_equal(holds, 0);
    /* Reopened, with a record: still data. */
    th_ok(ls_store_put(st, "\x01secret", 7, "v", 1, LS_STORE_SYNC, &err), &err);
    ls_store_close(st);
    st = open_ok(path, 0);
    th_ok(ls_store_holds_data(st, &holds, &err), &err);
    assert_int_equal(holds, 1);
    assert_int_equal(ls_store_holds_data(NULL, &holds, &err), LS_EINVAL);
    assert_int_equal(ls_store_holds_data(st, NULL, &err), LS_EINVAL);
    ls_store_close(st);
    free(path);
}

static void test_store_open_missing_without_create(void **state)
{
    ls_err err;
    char *path = store_path(state, "missing");
    assert_int_equal(open_fails(path, 0, &err), LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "does not exist"));

    ls_store_t *st = NULL;
    assert_int_equal(ls_store_open(&st, path, NULL, &err), LS_ENOTFOUND); /* NULL opts: no create */
    assert_null(st);

    /* an empty directory is no store either, and asking leaves nothing behind */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(open_fails(path, 0, &err), LS_ENOTFOUND);
    st = open_ok(path, 1);
    ls_store_close(st);

    /* a missing parent cannot be created */
    char *deep = th_path(path, "no/such/dir");
    assert_int_equal(open_fails(deep, 0, &err), LS_ENOTFOUND);
    assert_int_equal(open_fails(deep, 1, &err), LS_EIO);
    free(deep);
    free(path);
}

static void test_store_open_leftover_lock_and_log_is_empty(void **state)
{
    /* LevelDB leaves LOCK and LOG behind when an open fails early: such a
     * directory still counts as empty. */
    char *path = store_path(state, "leftover");
    assert_int_equal(mkdir(path, 0700), 0);
    char *lock = th_path(path, "LOCK"), *log = th_path(path, "LOG");
    write_file(lock, "");
    write_file(log, "leveldb info log\n");
    ls_err err;
    assert_int_equal(open_fails(path, 0, &err), LS_ENOTFOUND);
    ls_store_t *st = open_ok(path, 1);
    ls_store_close(st);
    free(lock);
    free(log);
    free(path);
}

static void test_store_open_twice_in_process_busy(void **state)
{
    char *path = store_path(state, "twice");
    ls_store_t *st = open_ok(path, 1);
    ls_err err;
    assert_int_equal(open_fails(path, 1, &err), LS_EBUSY);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "is already open in this process (its LOCK is held)"));
    ls_store_close(st);

    st = open_ok(path, 0); /* closing released the lock */
    ls_store_close(st);
    free(path);
}

static void test_store_open_held_by_child_busy(void **state)
{
    char *path = store_path(state, "child");
    ls_store_close(open_ok(path, 1));

    int ready[2], done[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(done[1]);
        ls_store_opts o = {0, 0, 0};
        ls_store_t *st = NULL;
        ls_err err;
        char rc = (char)ls_store_open(&st, path, &o, &err);
        if (write(ready[1], &rc, 1) != 1) _exit(2);
        /* hold the store until the parent closes its end (or gives up) */
        struct pollfd pfd = {done[0], POLLIN, 0};
        (void)poll(&pfd, 1, 30000);
        ls_store_close(st);
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char rc = 99;
    assert_int_equal(read(ready[0], &rc, 1), 1);
    assert_int_equal(rc, LS_OK);

    ls_err err;
    assert_int_equal(open_fails(path, 0, &err), LS_EBUSY);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "in use by another process (its LOCK is held)"));

    close(done[1]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);

    ls_store_close(open_ok(path, 0)); /* the child's exit released the lock */
    free(path);
}

/* Held in statics so that a forked child's copies stay reachable. */
static char *held_path;
static ls_store_t *held_store;

static void test_store_open_from_child_while_held_busy(void **state)
{
    /* The child inherits LevelDB's table of locks this process holds, so it
     * is refused even before fcntl is asked; either way it must be EBUSY. */
    held_path = store_path(state, "parent-holds");
    held_store = open_ok(held_path, 1);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* never hang the suite */
        close(fds[0]);
        ls_store_opts o = {1, 0, 0};
        ls_store_t *mine = NULL;
        ls_err err = {0};
        int rc = (int)ls_store_open(&mine, held_path, &o, &err);
        if (rc == LS_EBUSY && strstr(err.msg, "its LOCK is held") == NULL) rc = -1;
        ssize_t w = write(fds[1], &rc, sizeof rc);
        _exit(w == (ssize_t)sizeof rc ? 0 : 1);
    }
    close(fds[1]);
    int rc = -2;
    ssize_t got = read(fds[0], &rc, sizeof rc);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(got, (ssize_t)sizeof rc);
    assert_int_equal(rc, LS_EBUSY);

    put(held_store, (bytes)B("still"), (bytes)B("mine")); /* the parent's handle is unharmed */
    want_value(held_store, (bytes)B("still"), (bytes)B("mine"));
    ls_store_close(held_store);
    held_store = NULL;
    free(held_path);
    held_path = NULL;
}

static void test_store_open_not_a_leveldb_eformat(void **state)
{
    char *path = store_path(state, "notdb");
    assert_int_equal(mkdir(path, 0700), 0);
    char *file = th_path(path, "notes.txt");
    write_file(file, "not a database\n");
    ls_err err;
    assert_int_equal(open_fails(path, 1, &err), LS_EFORMAT);
    assert_non_null(strstr(err.msg, "not a Lodestone store"));
    assert_non_null(strstr(err.msg, "CURRENT"));
    assert_int_equal(open_fails(path, 0, &err), LS_EFORMAT);

    /* nothing was written into the refused directory */
    char *current = th_path(path, "CURRENT");
    struct stat sb;
    assert_int_equal(stat(current, &sb), -1);

    assert_int_equal(open_fails(file, 1, &err), LS_EFORMAT); /* a regular file */
    assert_non_null(strstr(err.msg, "not a directory"));
    free(current);
    free(file);
    free(path);
}

static void test_store_open_leveldb_without_format_eformat(void **state)
{
    char *path = store_path(state, "foreign");
    ls_store_t *st = open_ok(path, 1);
    ls_err err = {0};
    th_ok(ls_store_delete(st, meta_format_key, 7, LS_STORE_SYNC, &err), &err);
    put(st, (bytes)B("someone else's key"), (bytes)B("v"));
    ls_store_close(st);

    assert_int_equal(open_fails(path, 0, &err), LS_EFORMAT);
    assert_non_null(strstr(err.msg, "not a Lodestone store"));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(open_fails(path, 1, &err), LS_EFORMAT);
    free(path);
}

static void test_store_open_empty_leveldb_adopted(void **state)
{
    char *path = store_path(state, "adopt");
    ls_store_t *st = open_ok(path, 1);
    ls_err err = {0};
    th_ok(ls_store_delete(st, meta_format_key, 7, LS_STORE_SYNC, &err), &err);
    ls_store_close(st);

    st = open_ok(path, 0); /* an empty LevelDB becomes a store */
    assert_int_equal(ls_store_format(st), LS_STORE_FORMAT);
    want_value(st, (bytes){meta_format_key, 7}, (bytes)B("\x00\x00\x00\x01"));
    ls_store_close(st);
    free(path);
}

static void test_store_open_newer_format_eformat(void **state)
{
    char *path = store_path(state, "newer");
    ls_store_t *st = open_ok(path, 1);
    ls_err err = {0};
    th_ok(ls_store_put(st, meta_format_key, 7, "\x00\x00\x00\x02", 4, LS_STORE_SYNC, &err), &err);
    ls_store_close(st);

    assert_int_equal(open_fails(path, 0, &err), LS_EFORMAT);
    assert_non_null(strstr(err.msg, "format version 2 is newer than this build supports (1)"));
    assert_int_equal(open_fails(path, 1, &err), LS_EFORMAT);
    free(path);
}

static void test_store_open_damaged_format_record_ecorrupt(void **state)
{
    static const bytes damaged[] = {B("\x00\x01"), B("\x00\x00\x00\x00"),
                                    B("\x00\x00\x00\x00\x01")};
    for (size_t n = 0; n < NELEMS(damaged); n++) {
        char name[32];
        snprintf(name, sizeof name, "badformat%zu", n);
        char *path = store_path(state, name);
        ls_store_t *st = open_ok(path, 1);
        ls_err err = {0};
        th_ok(ls_store_put(st, meta_format_key, 7, damaged[n].p, damaged[n].n, LS_STORE_SYNC, &err),
              &err);
        ls_store_close(st);
        assert_int_equal(open_fails(path, 0, &err), LS_ECORRUPT);
        assert_non_null(strstr(err.msg, "format record"));
        assert_int_equal(open_fails(path, 1, &err), LS_ECORRUPT);
        free(path);
    }
}

static void test_store_open_bad_arguments(void **state)
{
    (void)state;
    ls_store_t *st = NULL;
    ls_err err = {0};
    assert_int_equal(ls_store_open(NULL, "/tmp", NULL, &err), LS_EINVAL);
    assert_int_equal(ls_store_open(&st, NULL, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_store_open(&st, "", NULL, NULL), LS_EINVAL);
    assert_null(st);
}

static void test_store_options_applied(void **state)
{
    char *path = store_path(state, "opts");
    ls_store_opts o = {1, 1 << 20, 64 << 10}; /* small cache, small memtable */
    ls_store_t *st = NULL;
    ls_err err = {0};
    th_ok(ls_store_open(&st, path, &o, &err), &err);
    char key[32], val[256];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 2000; i++) { /* several memtables' worth: tables get written */
        int n = snprintf(key, sizeof key, "k%06d", i);
        th_ok(ls_store_put(st, key, (size_t)n, val, sizeof val, 0, &err), &err);
    }
    want_value(st, (bytes)B("k001999"), (bytes){val, sizeof val});
    want_absent(st, (bytes)B("k002000"));
    ls_store_close(st);
    free(path);
}

/* ---- point access ---- */

static void test_store_get_put_delete(void **state)
{
    char *path = store_path(state, "point");
    ls_store_t *st = open_ok(path, 1);
    ls_err err = {0};

    want_absent(st, (bytes)B("k"));
    put(st, (bytes)B("k"), (bytes)B("v1"));
    want_value(st, (bytes)B("k"), (bytes)B("v1"));
    put(st, (bytes)B("k"), (bytes)B("value two"));
    want_value(st, (bytes)B("k"), (bytes)B("value two"));

    /* binary keys and values with NULs; an empty value; the empty key */
    put(st, (bytes)B("a\0b"), (bytes)B("\0\xff\0"));
    want_value(st, (bytes)B("a\0b"), (bytes)B("\0\xff\0"));
    want_absent(st, (bytes)B("a"));
    th_ok(ls_store_put(st, "empty", 5, NULL, 0, 0, &err), &err);
    want_value(st, (bytes)B("empty"), (bytes)B(""));
    put(st, (bytes)B(""), (bytes)B("empty key"));
    want_value(st, (bytes)B(""), (bytes)B("empty key"));

    /* the value buffer is reused and replaced */
    ls_buf val = LS_BUF_INIT;
    th_ok(ls_store_get(st, "k", 1, &val, &err), &err);
    th_ok(ls_store_get(st, "empty", 5, &val, &err), &err);
    assert_int_equal(val.len, 0);
    ls_buf_free(&val);

    th_ok(ls_store_delete(st, "k", 1, LS_STORE_SYNC, &err), &err);
    want_absent(st, (bytes)B("k"));
    th_ok(ls_store_delete(st, "never there", 11, 0, &err), &err); /* not an error */

    assert_int_equal(ls_store_put(st, "k", 1, "v", 1, 0x80, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "flags"));
    assert_int_equal(ls_store_put(st, NULL, 3, "v", 1, 0, &err), LS_EINVAL);
    assert_int_equal(ls_store_put(st, "k", 1, NULL, 1, 0, &err), LS_EINVAL);
    assert_int_equal(ls_store_delete(st, NULL, 3, 0, &err), LS_EINVAL);
    assert_int_equal(ls_store_get(st, NULL, 3, &val, &err), LS_EINVAL);
    assert_int_equal(ls_store_get(st, "k", 1, NULL, &err), LS_EINVAL);
    want_absent(st, (bytes)B("k"));

    ls_store_close(st);
    free(path);
}

/* ---- batches ---- */

static void test_store_batch_atomic_count_clear(void **state)
{
    char *path = store_path(state, "batch");
    ls_store_t *st = open_ok(path, 1);
    put(st, (bytes)B("old"), (bytes)B("x"));

    ls_store_batch_t *b = NULL;
    ls_err err = {0};
    th_ok(ls_store_batch_new(&b, &err), &err);
    assert_int_equal(ls_store_batch_count(b), 0);
    ls_store_batch_put(b, "a", 1, "1", 1);
    ls_store_batch_put(b, "b", 1, "2", 1);
    ls_store_batch_delete(b, "old", 3);
    assert_int_equal(ls_store_batch_count(b), 3);

    /* nothing is visible before the write */
    want_absent(st, (bytes)B("a"));
    want_value(st, (bytes)B("old"), (bytes)B("x"));

    ls_store_iter_t *before = NULL;
    th_ok(ls_store_iter_prefix(&before, st, "", 0, 0, &err), &err);

    th_ok(ls_store_write(st, b, LS_STORE_SYNC, &err), &err);
    want_value(st, (bytes)B("a"), (bytes)B("1"));
    want_value(st, (bytes)B("b"), (bytes)B("2"));
    want_absent(st, (bytes)B("old"));
    assert_int_equal(ls_store_batch_count(b), 3); /* left as it was */

    /* a snapshot taken before the write sees none of it */
    const bytes was[] = {{meta_format_key, 7}, B("old")};
    want_keys(before, was, NELEMS(was));

    /* writing the same batch again is harmless */
    th_ok(ls_store_write(st, b, 0, &err), &err);

    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_count(b), 0);
    put(st, (bytes)B("c"), (bytes)B("3"));
    th_ok(ls_store_write(st, b, 0, &err), &err); /* an empty batch writes nothing */
    const bytes all[] = {{meta_format_key, 7}, B("a"), B("b"), B("c")};
    scan_prefix(st, (bytes)B(""), 0, all, NELEMS(all));

    ls_store_batch_put(b, "d", 1, "4", 1);
    assert_int_equal(ls_store_batch_count(b), 1);
    th_ok(ls_store_write(st, b, 0, &err), &err);
    want_value(st, (bytes)B("d"), (bytes)B("4"));

    assert_int_equal(ls_store_write(st, b, 2, &err), LS_EINVAL);
    assert_int_equal(ls_store_write(st, NULL, 0, &err), LS_EINVAL);
    assert_int_equal(ls_store_batch_new(NULL, &err), LS_EINVAL);
    ls_store_batch_free(b);
    ls_store_batch_free(NULL);
    ls_store_close(st);
    free(path);
}

/* Group commit merges batches: the merged batch applies each one's
 * operations in order, later batches winning, and leaves the sources as
 * they were. */
static void test_store_batch_append(void **state)
{
    char *path = store_path(state, "append");
    ls_store_t *st = open_ok(path, 1);
    put(st, (bytes)B("gone"), (bytes)B("x"));
    ls_store_batch_t *a = NULL, *b = NULL, *m = NULL;
    ls_err err = {0};
    th_ok(ls_store_batch_new(&a, &err), &err);
    th_ok(ls_store_batch_new(&b, &err), &err);
    th_ok(ls_store_batch_new(&m, &err), &err);
    ls_store_batch_put(a, "k", 1, "from-a", 6);
    ls_store_batch_put(a, "only-a", 6, "1", 1);
    ls_store_batch_put(b, "k", 1, "from-b", 6);
    ls_store_batch_delete(b, "gone", 4);
    ls_store_batch_append(m, a);
    ls_store_batch_append(m, b);
    assert_int_equal(ls_store_batch_count(m), 4);
    assert_int_equal(ls_store_batch_count(a), 2);
    assert_int_equal(ls_store_batch_count(b), 2);
    th_ok(ls_store_write(st, m, LS_STORE_SYNC, &err), &err);
    want_value(st, (bytes)B("k"), (bytes)B("from-b"));
    want_value(st, (bytes)B("only-a"), (bytes)B("1"));
    want_absent(st, (bytes)B("gone"));
    ls_store_batch_free(a);
    ls_store_batch_free(b);
    ls_store_batch_free(m);
    ls_store_close(st);
    free(path);
}

static void test_store_batch_later_ops_win(void **state)
{
    char *path = store_path(state, "later");
    ls_store_t *st = open_ok(path, 1);
    put(st, (bytes)B("d"), (bytes)B("was here"));
    ls_store_batch_t *b = NULL;
    ls_err err = {0};
    th_ok(ls_store_batch_new(&b, &err), &err);
    ls_store_batch_put(b, "a", 1, "first", 5);
    ls_store_batch_put(b, "a", 1, "second", 6); /* put, put: the second */
    ls_store_batch_put(b, "b", 1, "gone", 4);
    ls_store_batch_delete(b, "b", 1); /* put, delete: absent */
    ls_store_batch_delete(b, "c", 1);
    ls_store_batch_put(b, "c", 1, "back", 4); /* delete, put: present */
    ls_store_batch_delete(b, "d", 1);
    ls_store_batch_put(b, "d", 1, "new", 3);
    ls_store_batch_delete(b, "d", 1); /* existing key: put, delete: absent */
    assert_int_equal(ls_store_batch_count(b), 9);
    th_ok(ls_store_write(st, b, LS_STORE_SYNC, &err), &err);
    ls_store_batch_free(b);

    want_value(st, (bytes)B("a"), (bytes)B("second"));
    want_absent(st, (bytes)B("b"));
    want_value(st, (bytes)B("c"), (bytes)B("back"));
    want_absent(st, (bytes)B("d"));
    ls_store_close(st);
    free(path);
}

/* ---- scans ---- */

/* The scan fixture's keys, in byte order (the format record comes first). */
static const bytes scan_keys[] = {
    {"\x00"
     "format",
     7},
    B("a"),
    B("a\x00"),
    B("a\x01"),
    B("ab"),
    B("b"),
    B("b\xff"),
    B("b\xff\x00"),
    B("b\xff\xff"),
    B("b\xff\xff\x01"),
    B("c"),
    B("\xff"),
    B("\xff\xff"),
    B("\xff\xff\x01"),
};

static ls_store_t *scan_fixture(void **state, const char *name)
{
    char *path = store_path(state, name);
    ls_store_t *st = open_ok(path, 1);
    free(path);
    /* inserted out of order, in two batches */
    ls_store_batch_t *b = NULL;
    ls_err err = {0};
    th_ok(ls_store_batch_new(&b, &err), &err);
    for (size_t i = NELEMS(scan_keys); i-- > 1;) {
        ls_store_batch_put(b, scan_keys[i].p, scan_keys[i].n, scan_keys[i].p, scan_keys[i].n);
        if (i == 7) {
            th_ok(ls_store_write(st, b, 0, &err), &err);
            ls_store_batch_clear(b);
        }
    }
    th_ok(ls_store_write(st, b, 0, &err), &err);
    ls_store_batch_free(b);
    return st;
}

static void test_store_scan_range_forward(void **state)
{
    ls_store_t *st = scan_fixture(state, "fwd");
    const bytes *k = scan_keys;
    scan_range(st, NULL, NULL, 0, k, NELEMS(scan_keys));

    const bytes lo = B("a\x01"), hi = B("b\xff\xff");
    const bytes mid[] = {B("a\x01"), B("ab"), B("b"), B("b\xff"), B("b\xff\x00")};
    scan_range(st, &lo, &hi, 0, mid, NELEMS(mid)); /* lower included, upper excluded */

    const bytes b = B("b");
    scan_range(st, NULL, &b, 0, k, 5); /* from the start up to "b" */
    scan_range(st, &b, NULL, 0, k + 5, NELEMS(scan_keys) - 5);

    const bytes aa = B("aa"), bb = B("bb"), bfffe = B("b\xff\xfe");
    const bytes between[] = {B("ab"), B("b"), B("b\xff"), B("b\xff\x00")};
    scan_range(st, &aa, &bfffe, 0, between, NELEMS(between)); /* bounds that are not keys */
    scan_range(st, &aa, &bb, 0, between, 2);                  /* "b\xff" sorts after "bb" */

    const bytes past = B("\xff\xff\xff"), empty = B("");
    scan_range(st, &past, NULL, 0, NULL, 0);
    scan_range(st, &b, &b, 0, NULL, 0);       /* lower == upper */
    scan_range(st, &bb, &aa, 0, NULL, 0);     /* lower > upper */
    scan_range(st, NULL, &empty, 0, NULL, 0); /* nothing is below the empty key */
    scan_range(st, &empty, NULL, 0, k, NELEMS(scan_keys));

    /* NULL range: everything */
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_new(&it, st, NULL, &err), &err);
    want_keys(it, k, NELEMS(scan_keys));

    ls_store_range bad = {NULL, 2, NULL, 0, 0};
    assert_int_equal(ls_store_iter_new(&it, st, &bad, &err), LS_EINVAL);
    assert_null(it);
    ls_store_close(st);
}

static void test_store_scan_range_reverse(void **state)
{
    ls_store_t *st = scan_fixture(state, "rev");
    bytes rev[NELEMS(scan_keys)];
    reversed(scan_keys, rev, NELEMS(scan_keys));
    scan_range(st, NULL, NULL, 1, rev, NELEMS(rev));

    const bytes lo = B("a\x01"), hi = B("b\xff\xff");
    const bytes mid[] = {B("b\xff\x00"), B("b\xff"), B("b"), B("ab"), B("a\x01")};
    scan_range(st, &lo, &hi, 1, mid, NELEMS(mid));

    const bytes b = B("b\xff");
    const bytes top[] = {B("\xff\xff\x01"),  B("\xff\xff"),  B("\xff"),      B("c"),
                         B("b\xff\xff\x01"), B("b\xff\xff"), B("b\xff\x00"), B("b\xff")};
    scan_range(st, &b, NULL, 1, top, NELEMS(top));

    const bytes a = B("a"), aa = B("aa");
    const bytes as[] = {B("a\x01"), B("a\x00"), B("a")};
    scan_range(st, &a, &aa, 1, as, NELEMS(as)); /* upper is not a key */

    const bytes past = B("\xff\xff\xff");
    scan_range(st, NULL, &past, 1, rev, NELEMS(rev)); /* upper beyond every key */
    const bytes below = {"\x00", 1};
    scan_range(st, NULL, &below, 1, NULL, 0);
    scan_range(st, &a, &a, 1, NULL, 0);
    scan_range(st, &aa, &a, 1, NULL, 0);
    ls_store_close(st);
}

static void test_store_scan_prefix(void **state)
{
    ls_store_t *st = scan_fixture(state, "prefix");
    const bytes as[] = {B("a"), B("a\x00"), B("a\x01"), B("ab")};
    const bytes asr[] = {B("ab"), B("a\x01"), B("a\x00"), B("a")};
    scan_prefix(st, (bytes)B("a"), 0, as, NELEMS(as));
    scan_prefix(st, (bytes)B("a"), 1, asr, NELEMS(asr));
    scan_prefix(st, (bytes)B("a\x00"), 0, as + 1, 1);

    /* prefixes ending in 0xFF: the end is found past the 0xFF run */
    const bytes bff[] = {B("b\xff"), B("b\xff\x00"), B("b\xff\xff"), B("b\xff\xff\x01")};
    const bytes bffr[] = {B("b\xff\xff\x01"), B("b\xff\xff"), B("b\xff\x00"), B("b\xff")};
    scan_prefix(st, (bytes)B("b\xff"), 0, bff, NELEMS(bff));
    scan_prefix(st, (bytes)B("b\xff"), 1, bffr, NELEMS(bffr));
    scan_prefix(st, (bytes)B("b\xff\xff"), 0, bff + 2, 2);

    /* all-0xFF prefixes have no end: they run to the last key */
    const bytes ff[] = {B("\xff"), B("\xff\xff"), B("\xff\xff\x01")};
    const bytes ffr[] = {B("\xff\xff\x01"), B("\xff\xff"), B("\xff")};
    scan_prefix(st, (bytes)B("\xff"), 0, ff, NELEMS(ff));
    scan_prefix(st, (bytes)B("\xff"), 1, ffr, NELEMS(ffr));
    scan_prefix(st, (bytes)B("\xff\xff"), 0, ff + 1, 2);
    scan_prefix(st, (bytes)B("\xff\xff"), 1, ffr, 2);
    scan_prefix(st, (bytes)B("\xff\xff\xff"), 0, NULL, 0);

    scan_prefix(st, (bytes)B("z"), 0, NULL, 0);
    scan_prefix(st, (bytes)B("z"), 1, NULL, 0);
    scan_prefix(st, (bytes)B("b\xff\xff\x01\x00"), 0, NULL, 0);

    /* the empty prefix is everything */
    bytes rev[NELEMS(scan_keys)];
    reversed(scan_keys, rev, NELEMS(scan_keys));
    scan_prefix(st, (bytes){NULL, 0}, 0, scan_keys, NELEMS(scan_keys));
    scan_prefix(st, (bytes)B(""), 1, rev, NELEMS(rev));

    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    assert_int_equal(ls_store_iter_prefix(&it, st, NULL, 1, 0, &err), LS_EINVAL);
    ls_store_close(st);
}

static void test_store_scan_values_borrowed(void **state)
{
    ls_store_t *st = scan_fixture(state, "values");
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_prefix(&it, st, "b", 1, 0, &err), &err);
    const void *k, *v;
    size_t kl, vl, n = 0;
    ls_rc rc;
    while ((rc = ls_store_iter_next(it, &k, &kl, &v, &vl, &err)) == LS_OK) {
        assert_int_equal(kl, vl); /* the fixture's values are the keys */
        assert_memory_equal(k, v, kl);
        n++;
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    assert_int_equal(n, 5);
    assert_int_equal(ls_store_iter_next(NULL, &k, &kl, NULL, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_store_iter_next(it, NULL, &kl, NULL, NULL, &err), LS_EINVAL);
    ls_store_iter_free(it);
    ls_store_iter_free(NULL);
    ls_store_close(st);
}

static void test_store_scan_snapshot_isolation(void **state)
{
    char *path = store_path(state, "snapshot");
    ls_store_t *st = open_ok(path, 1);
    put(st, (bytes)B("k1"), (bytes)B("old1"));
    put(st, (bytes)B("k2"), (bytes)B("old2"));
    put(st, (bytes)B("k4"), (bytes)B("old4"));

    ls_store_iter_t *fwd = NULL, *rev = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_prefix(&fwd, st, "k", 1, 0, &err), &err);
    th_ok(ls_store_iter_prefix(&rev, st, "k", 1, 1, &err), &err);

    /* written after the iterators were made, before their first step */
    ls_store_batch_t *b = NULL;
    th_ok(ls_store_batch_new(&b, &err), &err);
    ls_store_batch_put(b, "k0", 2, "new0", 4);
    ls_store_batch_put(b, "k2", 2, "new2", 4);
    ls_store_batch_put(b, "k3", 2, "new3", 4);
    ls_store_batch_delete(b, "k4", 2);
    ls_store_batch_put(b, "k5", 2, "new5", 4);
    th_ok(ls_store_write(st, b, 0, &err), &err);

    const void *k, *v;
    size_t kl, vl;
    const char *want[] = {"k1", "old1", "k2", "old2", "k4", "old4"};
    for (size_t i = 0; i < 3; i++) {
        th_ok(ls_store_iter_next(fwd, &k, &kl, &v, &vl, &err), &err);
        assert_int_equal(kl, 2);
        assert_memory_equal(k, want[2 * i], 2);
        assert_int_equal(vl, 4);
        assert_memory_equal(v, want[2 * i + 1], 4);
        if (i == 0) { /* more writes while the scan runs */
            ls_store_batch_delete(b, "k2", 2);
            th_ok(ls_store_write(st, b, 0, &err), &err);
        }
    }
    assert_int_equal(ls_store_iter_next(fwd, &k, &kl, &v, &vl, &err), LS_ENOTFOUND);
    const bytes old_rev[] = {B("k4"), B("k2"), B("k1")};
    want_keys(rev, old_rev, NELEMS(old_rev));
    ls_store_iter_free(fwd);

    /* a new iterator sees the present */
    const bytes now[] = {B("k0"), B("k1"), B("k3"), B("k5")};
    scan_prefix(st, (bytes)B("k"), 0, now, NELEMS(now));
    ls_store_batch_free(b);
    ls_store_close(st);
    free(path);
}

/* ---- corruption ---- */

static void test_store_corruption_reported(void **state)
{
    char *path = store_path(state, "corrupt");
    ls_store_t *st = open_ok(path, 1);
    ls_err err = {0};
    char key[32], val[200];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof key, "key%06d", i);
        for (size_t j = 0; j < sizeof val; j++) val[j] = (char)(rng() >> 56);
        th_ok(ls_store_put(st, key, (size_t)n, val, sizeof val, 0, &err), &err);
    }
    ls_store_close(st);
    ls_store_close(open_ok(path, 0)); /* recovery turns the log into a table */
    th_damage_largest_table(path, 4096);

    ls_rc rc = ls_store_open(&st, path, NULL, &err);
    if (rc == LS_OK) {
        ls_store_iter_t *it = NULL;
        th_ok(ls_store_iter_prefix(&it, st, "key", 3, 0, &err), &err);
        const void *k;
        size_t kl;
        while ((rc = ls_store_iter_next(it, &k, &kl, NULL, NULL, &err)) == LS_OK) {}
        ls_store_iter_free(it);
        ls_store_close(st);
    }
    assert_int_equal(rc, LS_ECORRUPT);
    assert_int_equal(err.code, LS_ECORRUPT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "Corruption"));
    free(path);
}

/* ---- keys ---- */

static void want_buf(const ls_buf *k, bytes want)
{
    char h1[128], h2[128];
    if (k->len != want.n || memcmp(k->ptr, want.p, want.n) != 0)
        fail_msg("key %s, want %s", hex(k->ptr, k->len, h1, sizeof h1),
                 hex(want.p, want.n, h2, sizeof h2));
}

static void test_keys_layout(void **state)
{
    (void)state;
    ls_buf k = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_key_ns(&k, LS_NS_RUN, &err), &err);
    th_ok(ls_key_u64(&k, 0x0102030405060708ULL, &err), &err);
    want_buf(&k, (bytes)B("\x10\x01\x02\x03\x04\x05\x06\x07\x08"));

    ls_buf_clear(&k);
    th_ok(ls_key_i64(&k, -1, &err), &err);
    th_ok(ls_key_i64(&k, 0, &err), &err);
    th_ok(ls_key_i64(&k, INT64_MIN, &err), &err);
    th_ok(ls_key_i64(&k, INT64_MAX, &err), &err);
    want_buf(&k, (bytes)B("\x7f\xff\xff\xff\xff\xff\xff\xff"
                          "\x80\x00\x00\x00\x00\x00\x00\x00"
                          "\x00\x00\x00\x00\x00\x00\x00\x00"
                          "\xff\xff\xff\xff\xff\xff\xff\xff"));

    ls_buf_clear(&k);
    th_ok(ls_key_str(&k, "a\0b", 3, &err), &err);
    th_ok(ls_key_str(&k, "", 0, &err), &err);
    th_ok(ls_key_str(&k, NULL, 0, &err), &err);
    th_ok(ls_key_str(&k, "\0", 1, &err), &err);
    th_ok(ls_key_bytes(&k, "\0\x01\xff", 3, &err), &err);
    want_buf(&k, (bytes)B("a\x00\xff"
                          "b\x00\x01"
                          "\x00\x01"
                          "\x00\x01"
                          "\x00\xff\x00\x01"
                          "\x00\x01\xff"));
    assert_int_equal(k.ptr[k.len], 0); /* ls_buf keeps its NUL */

    ls_buf_clear(&k);
    th_ok(ls_key_ns(&k, LS_NS_META, &err), &err);
    th_ok(ls_key_bytes(&k, "format", 6, &err), &err);
    want_buf(&k, (bytes){meta_format_key, 7}); /* the store's own format record */

    assert_int_equal(ls_key_ns(&k, (ls_store_ns)0x100, &err), LS_EINVAL);
    assert_int_equal(ls_key_str(&k, NULL, 1, &err), LS_EINVAL);
    assert_int_equal(ls_key_bytes(&k, NULL, 1, &err), LS_EINVAL);
    assert_int_equal(ls_key_u64(NULL, 1, &err), LS_EINVAL);
    want_buf(&k, (bytes){meta_format_key, 7}); /* failed calls append nothing */
    ls_buf_free(&k);
}

static int64_t random_i64(void)
{
    static const int64_t edges[] = {INT64_MIN, INT64_MIN + 1, -256, -255,          -1,       0,
                                    1,         255,           256,  INT64_MAX - 1, INT64_MAX};
    uint64_t r = rng();
    if (r % 4 == 0) return edges[(r >> 8) % NELEMS(edges)];
    int bits = (int)((r >> 8) % 64) + 1;
    uint64_t v = rng() >> (64 - bits);
    return (r >> 16) & 1 ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
}

static uint64_t random_u64(void)
{
    static const uint64_t edges[] = {
        0, 1, 0xFF, 0x100, 0xFFFFFFFF, 0x100000000ULL, UINT64_MAX - 1, UINT64_MAX, 1ULL << 63};
    uint64_t r = rng();
    if (r % 4 == 0) return edges[(r >> 8) % NELEMS(edges)];
    int bits = (int)((r >> 8) % 64) + 1;
    return rng() >> (64 - bits);
}

/* Strings over an alphabet rich in the bytes the escaping cares about. */
static size_t random_str(unsigned char *s, size_t max)
{
    static const unsigned char alphabet[] = {0x00, 0x00, 0x01, 0x02, 'a', 0x7f, 0xfe, 0xff};
    size_t n = (size_t)(rng() % (max + 1));
    for (size_t i = 0; i < n; i++) s[i] = alphabet[rng() % sizeof alphabet];
    return n;
}

#define NITEMS 160
#define STRMAX 6

typedef struct {
    unsigned char s[STRMAX];
    size_t slen;
    int64_t i;
    uint64_t u;
    ls_buf key;
} item;

static int cmp_int(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_uint(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* Typed order of (ns, str, i64, u64) tuples. */
static int item_cmp(const item *a, const item *b)
{
    int c = bytes_cmp(a->s, a->slen, b->s, b->slen);
    if (c == 0) c = cmp_int(a->i, b->i);
    if (c == 0) c = cmp_uint(a->u, b->u);
    return c;
}

static void test_keys_order_property(void **state)
{
    (void)state;
    seed_rng("test_keys_order_property");
    static item items[NITEMS];
    ls_err err = {0};
    for (size_t n = 0; n < NITEMS; n++) {
        item *it = &items[n];
        memset(it, 0, sizeof *it);
        /* a few fixed strings that stress the escaping, then random ones */
        static const bytes fixed[] = {B(""),         B("\x00"), B("\x00\x00"),
                                      B("\x00\x01"), B("\x01"), B("\xff"),
                                      B("\x00\xff"), B("a"),    B("a\x00")};
        if (n < NELEMS(fixed)) {
            memcpy(it->s, fixed[n].p, fixed[n].n);
            it->slen = fixed[n].n;
        } else {
            it->slen = random_str(it->s, STRMAX);
        }
        /* small value ranges make equal strings (and equal integers) common */
        it->i = rng() % 3 == 0 ? (int64_t)(rng() % 3) - 1 : random_i64();
        it->u = rng() % 3 == 0 ? rng() % 3 : random_u64();
        th_ok(ls_key_ns(&it->key, LS_NS_HISTORY, &err), &err);
        th_ok(ls_key_str(&it->key, it->s, it->slen, &err), &err);
        th_ok(ls_key_i64(&it->key, it->i, &err), &err);
        th_ok(ls_key_u64(&it->key, it->u, &err), &err);
    }

    char h1[128], h2[128];
    for (size_t a = 0; a < NITEMS; a++) {
        for (size_t b = 0; b < NITEMS; b++) {
            int typed = item_cmp(&items[a], &items[b]);
            int enc =
                bytes_cmp(items[a].key.ptr, items[a].key.len, items[b].key.ptr, items[b].key.len);
            if (typed != enc)
                fail_msg("items %zu and %zu: typed order %d, encoded order %d (%s vs %s)", a, b,
                         typed, enc, hex(items[a].key.ptr, items[a].key.len, h1, sizeof h1),
                         hex(items[b].key.ptr, items[b].key.len, h2, sizeof h2));
        }
    }

    /* each part alone keeps its order too */
    for (size_t a = 0; a < NITEMS; a++) {
        for (size_t b = 0; b < NITEMS; b++) {
            ls_buf ka = LS_BUF_INIT, kb = LS_BUF_INIT;
            th_ok(ls_key_u64(&ka, items[a].u, &err), &err);
            th_ok(ls_key_u64(&kb, items[b].u, &err), &err);
            assert_int_equal(bytes_cmp(ka.ptr, ka.len, kb.ptr, kb.len),
                             cmp_uint(items[a].u, items[b].u));
            ls_buf_clear(&ka);
            ls_buf_clear(&kb);
            th_ok(ls_key_i64(&ka, items[a].i, &err), &err);
            th_ok(ls_key_i64(&kb, items[b].i, &err), &err);
            assert_int_equal(bytes_cmp(ka.ptr, ka.len, kb.ptr, kb.len),
                             cmp_int(items[a].i, items[b].i));
            ls_buf_clear(&ka);
            ls_buf_clear(&kb);
            th_ok(ls_key_str(&ka, items[a].s, items[a].slen, &err), &err);
            th_ok(ls_key_str(&kb, items[b].s, items[b].slen, &err), &err);
            assert_int_equal(bytes_cmp(ka.ptr, ka.len, kb.ptr, kb.len),
                             bytes_cmp(items[a].s, items[a].slen, items[b].s, items[b].slen));
            ls_buf_free(&ka);
            ls_buf_free(&kb);
        }
    }

    /* and every key reads back to its parts, consuming it exactly */
    ls_buf s = LS_BUF_INIT;
    for (size_t n = 0; n < NITEMS; n++) {
        ls_key_reader r;
        ls_key_reader_init(&r, items[n].key.ptr, items[n].key.len);
        ls_store_ns ns = LS_NS_META;
        int64_t i = 0;
        uint64_t u = 0;
        th_ok(ls_key_read_ns(&r, &ns, &err), &err);
        th_ok(ls_key_read_str(&r, &s, &err), &err);
        th_ok(ls_key_read_i64(&r, &i, &err), &err);
        th_ok(ls_key_read_u64(&r, &u, &err), &err);
        assert_int_equal(ns, LS_NS_HISTORY);
        assert_int_equal(s.len, items[n].slen);
        if (s.len) assert_memory_equal(s.ptr, items[n].s, s.len);
        assert_true(i == items[n].i);
        assert_true(u == items[n].u);
        assert_int_equal(r.left, 0);
        ls_buf_free(&items[n].key);
    }
    ls_buf_free(&s);
}

static void test_keys_reader_roundtrip_all_parts(void **state)
{
    (void)state;
    ls_buf k = LS_BUF_INIT, s = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_key_ns(&k, LS_NS_SIGNAL, &err), &err);
    th_ok(ls_key_bytes(&k, "\x00\xff\x00\x01", 4, &err), &err);
    th_ok(ls_key_str(&k, "sig\0nal", 7, &err), &err);
    th_ok(ls_key_str(&k, "", 0, &err), &err);
    th_ok(ls_key_u64(&k, 42, &err), &err);

    ls_key_reader r;
    ls_key_reader_init(&r, k.ptr, k.len);
    ls_store_ns ns;
    unsigned char raw[4];
    uint64_t u;
    th_ok(ls_key_read_ns(&r, &ns, &err), &err);
    assert_int_equal(ns, LS_NS_SIGNAL);
    th_ok(ls_key_read_bytes(&r, raw, 4, &err), &err);
    assert_memory_equal(raw, "\x00\xff\x00\x01", 4);
    th_ok(ls_key_read_str(&r, &s, &err), &err);
    assert_int_equal(s.len, 7);
    assert_memory_equal(s.ptr, "sig\0nal", 7);
    th_ok(ls_key_read_str(&r, &s, &err), &err); /* replaced, not appended */
    assert_int_equal(s.len, 0);
    th_ok(ls_key_read_u64(&r, &u, &err), &err);
    assert_true(u == 42);
    assert_int_equal(r.left, 0);
    th_ok(ls_key_read_bytes(&r, NULL, 0, &err), &err);
    ls_buf_free(&k);
    ls_buf_free(&s);
}

static void test_keys_reader_truncated(void **state)
{
    (void)state;
    ls_key_reader r;
    ls_err err = {0};
    ls_buf s = LS_BUF_INIT;
    ls_store_ns ns;
    uint64_t u;
    int64_t i;
    unsigned char raw[8];

    ls_key_reader_init(&r, NULL, 0);
    assert_int_equal(ls_key_read_ns(&r, &ns, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "key too short"));
    assert_int_equal(ls_key_read_str(&r, &s, &err), LS_EINVAL);

    static const unsigned char seven[] = {1, 2, 3, 4, 5, 6, 7};
    ls_key_reader_init(&r, seven, sizeof seven);
    assert_int_equal(ls_key_read_u64(&r, &u, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "needs 8 bytes, 7 left"));
    assert_int_equal(ls_key_read_i64(&r, &i, &err), LS_EINVAL);
    assert_int_equal(ls_key_read_bytes(&r, raw, 8, &err), LS_EINVAL);
    assert_int_equal(r.left, 7); /* rejected parts are not consumed */
    th_ok(ls_key_read_bytes(&r, raw, 7, &err), &err);
    assert_int_equal(r.left, 0);

    /* strings cut before or inside their terminator */
    static const bytes cut[] = {B("ab"), B("ab\x00"), B("a\x00\xff"), B("\x00")};
    for (size_t n = 0; n < NELEMS(cut); n++) {
        ls_key_reader_init(&r, cut[n].p, cut[n].n);
        memset(&err, 0, sizeof err);
        assert_int_equal(ls_key_read_str(&r, &s, &err), LS_EINVAL);
        assert_int_equal(err.code, LS_EINVAL);
        assert_non_null(strstr(err.msg, "no terminator"));
        assert_int_equal(r.left, cut[n].n);
    }

    /* a whole key followed by a truncated one */
    ls_buf k = LS_BUF_INIT;
    th_ok(ls_key_str(&k, "x", 1, &err), &err);
    th_ok(ls_key_u64(&k, 7, &err), &err);
    ls_key_reader_init(&r, k.ptr, k.len - 1);
    th_ok(ls_key_read_str(&r, &s, &err), &err);
    assert_int_equal(ls_key_read_u64(&r, &u, &err), LS_EINVAL);
    ls_buf_free(&k);
    ls_buf_free(&s);
}

static void test_keys_reader_malformed(void **state)
{
    (void)state;
    ls_key_reader r;
    ls_err err = {0};
    ls_buf s = LS_BUF_INIT;
    static const bytes bad[] = {B("a\x00\x02\x00\x01"), B("\x00\x00\x00\x01"), B("ab\x00\xfe")};
    for (size_t n = 0; n < NELEMS(bad); n++) {
        ls_key_reader_init(&r, bad[n].p, bad[n].n);
        assert_int_equal(ls_key_read_str(&r, &s, &err), LS_ECORRUPT);
        assert_non_null(strstr(err.msg, "malformed key"));
        assert_int_equal(r.left, bad[n].n);
    }
    assert_int_equal(ls_key_read_str(NULL, &s, &err), LS_EINVAL);
    assert_int_equal(ls_key_read_str(&r, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_key_read_u64(NULL, NULL, &err), LS_EINVAL);
    ls_buf_free(&s);
}

static void test_keys_prefix_end(void **state)
{
    (void)state;
    static const struct {
        bytes prefix, end;
    } cases[] = {
        {B("ab"), B("ac")},       {B("a\xff"), B("b")},
        {B("a\xff\xff"), B("b")}, {B("\x01\xfe\xff"), B("\x01\xff")},
        {B("\x00"), B("\x01")},   {B("x\x00\xff"), B("x\x01")},
    };
    ls_buf end = LS_BUF_INIT;
    ls_err err = {0};
    for (size_t n = 0; n < NELEMS(cases); n++) {
        th_ok(ls_key_prefix_end(cases[n].prefix.p, cases[n].prefix.n, &end, &err), &err);
        want_buf(&end, cases[n].end);
    }
    ls_err untouched = {LS_OK, "untouched"};
    assert_int_equal(ls_key_prefix_end("\xff\xff", 2, &end, &untouched), LS_ENOTFOUND);
    assert_int_equal(ls_key_prefix_end("\xff", 1, &end, &untouched), LS_ENOTFOUND);
    assert_int_equal(ls_key_prefix_end("", 0, &end, &untouched), LS_ENOTFOUND);
    assert_int_equal(ls_key_prefix_end(NULL, 0, &end, &untouched), LS_ENOTFOUND);
    assert_string_equal(untouched.msg, "untouched");
    assert_int_equal(ls_key_prefix_end(NULL, 1, &end, &err), LS_EINVAL);
    ls_buf_free(&end);
}

/* ---- allocation failures ---- */

static const char *alloc_path; /* the store the allocation tests use */

static ls_rc alloc_open(void *ud)
{
    ls_store_opts o = {*(int *)ud, 0, 0};
    ls_store_t *st = NULL;
    ls_err err = {0};
    ls_rc rc = ls_store_open(&st, alloc_path, &o, &err);
    if (rc == LS_ENOMEM) assert_non_null(strstr(err.msg, "out of memory"));
    if (rc != LS_OK) {
        assert_null(st);
        return rc;
    }
    ls_store_close(st);
    if (*(int *)ud) th_rmtree(alloc_path); /* fresh again for the next run */
    return LS_OK;
}

static void test_store_alloc_failure_open(void **state)
{
    char *path = store_path(state, "alloc-open");
    alloc_path = path;
    int create = 1;
    assert_int_equal(th_each_alloc_failure(alloc_open, &create), 2); /* handle, path copy */
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1); /* failed creates left nothing */

    ls_store_close(open_ok(path, 1));
    create = 0;
    assert_int_equal(th_each_alloc_failure(alloc_open, &create), 2);
    alloc_path = NULL;
    free(path);
}

static ls_store_t *alloc_store;

static ls_rc alloc_get(void *ud)
{
    (void)ud;
    ls_buf val = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = ls_store_get(alloc_store, "k", 1, &val, &err);
    if (rc == LS_OK) assert_memory_equal(val.ptr, "value", 5);
    ls_buf_free(&val);
    return rc;
}

static ls_rc alloc_iter(void *ud)
{
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    ls_store_range r = {"a", 1, "z", 1, *(int *)ud & 1};
    ls_rc rc = *(int *)ud & 2 ? ls_store_iter_prefix(&it, alloc_store, "k", 1, *(int *)ud & 1, &err)
                              : ls_store_iter_new(&it, alloc_store, &r, &err);
    if (rc != LS_OK) {
        assert_null(it);
        return rc;
    }
    const void *k;
    size_t kl;
    rc = ls_store_iter_next(it, &k, &kl, NULL, NULL, &err);
    ls_store_iter_free(it);
    return rc;
}

static ls_rc alloc_batch(void *ud)
{
    (void)ud;
    ls_store_batch_t *b = NULL;
    ls_err err = {0};
    ls_rc rc = ls_store_batch_new(&b, &err);
    if (rc != LS_OK) {
        assert_null(b);
        return rc;
    }
    ls_store_batch_put(b, "k", 1, "value", 5);
    rc = ls_store_write(alloc_store, b, 0, &err);
    ls_store_batch_free(b);
    return rc;
}

static ls_rc alloc_put_delete(void *ud)
{
    (void)ud;
    ls_err err = {0};
    ls_rc rc = ls_store_put(alloc_store, "tmp", 3, "v", 1, LS_STORE_SYNC, &err);
    if (rc == LS_OK) rc = ls_store_delete(alloc_store, "tmp", 3, 0, &err);
    return rc;
}

static void test_store_alloc_failure_access(void **state)
{
    char *path = store_path(state, "alloc-access");
    alloc_store = open_ok(path, 1);
    put(alloc_store, (bytes)B("k"), (bytes)B("value"));

    assert_int_equal(th_each_alloc_failure(alloc_get, NULL), 1);        /* the value buffer */
    assert_int_equal(th_each_alloc_failure(alloc_batch, NULL), 1);      /* the batch handle */
    assert_int_equal(th_each_alloc_failure(alloc_put_delete, NULL), 0); /* nothing of ours */
    for (int mode = 0; mode < 4; mode++) /* range, prefix; both ways */
        assert_int_equal(th_each_alloc_failure(alloc_iter, &mode), 1); /* the iterator */

    ls_store_close(alloc_store);
    alloc_store = NULL;
    free(path);
}

static ls_rc alloc_keys(void *ud)
{
    (void)ud;
    ls_err err = {0};
    ls_rc rc = LS_OK;
    /* each writer on a fresh buffer, so each one allocates */
    for (int part = 0; part < 6 && rc == LS_OK; part++) {
        ls_buf k = LS_BUF_INIT;
        switch (part) {
        case 0: rc = ls_key_ns(&k, LS_NS_TIMER, &err); break;
        case 1: rc = ls_key_u64(&k, 1, &err); break;
        case 2: rc = ls_key_i64(&k, -1, &err); break;
        case 3: rc = ls_key_str(&k, "a\0b", 3, &err); break;
        case 4: rc = ls_key_bytes(&k, "raw", 3, &err); break;
        case 5: rc = ls_key_prefix_end("ab", 2, &k, &err); break;
        }
        if (rc != LS_OK) assert_int_equal(k.len, 0);
        ls_buf_free(&k);
    }
    if (rc != LS_OK) return rc;

    /* growing a key that already holds something, all or nothing */
    ls_buf k = LS_BUF_INIT;
    unsigned char big[100];
    memset(big, 0, sizeof big);
    rc = ls_key_ns(&k, LS_NS_INDEX, &err);
    if (rc == LS_OK) {
        rc = ls_key_str(&k, big, sizeof big, &err);
        if (rc != LS_OK) assert_int_equal(k.len, 1);
    }

    /* reading a string back */
    ls_buf s = LS_BUF_INIT;
    if (rc == LS_OK) {
        ls_key_reader r;
        ls_key_reader_init(&r, k.ptr, k.len);
        rc = ls_key_read_ns(&r, NULL, &err);
        if (rc == LS_OK) rc = ls_key_read_str(&r, &s, &err);
        if (rc == LS_ENOMEM) assert_int_equal(r.left, k.len - 1); /* not consumed */
        if (rc == LS_OK) assert_int_equal(s.len, sizeof big);
    }
    ls_buf_free(&s);
    ls_buf_free(&k);
    return rc;
}

static void test_keys_alloc_failure(void **state)
{
    (void)state;
    /* six fresh buffers, the second key's growth, its first allocation, the read */
    assert_int_equal(th_each_alloc_failure(alloc_keys, NULL), 9);
}

/* ---- crash test ---- */

#define CRASH_ROUNDS   5
#define CRASH_KEYS     6   /* keys per batch, besides "last" */
#define CRASH_WRITE_MS 200 /* a child writes for at most this long */
#define CRASH_KILL_MS  40  /* the parent kills within this long after the first ack */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t crash_key(char *buf, size_t cap, uint64_t n, unsigned i)
{
    return (size_t)snprintf(buf, cap, "b/%010" PRIu64 "/%u", n, i);
}

static uint64_t read_last(ls_store_t *st, int *found)
{
    ls_buf val = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = ls_store_get(st, "last", 4, &val, &err);
    *found = rc == LS_OK;
    uint64_t n = rc == LS_OK ? strtoull((const char *)val.ptr, NULL, 10) : 0;
    ls_buf_free(&val);
    return n;
}

/* The child: writes numbered batches with sync, acknowledging each one on
 * fd after it returns, until it is killed. Never returns. */
__attribute__((noreturn)) static void crash_child(const char *path, int fd)
{
    ls_store_opts o = {1, 0, 0};
    ls_store_t *st = NULL;
    ls_store_batch_t *b = NULL;
    ls_err err = {0};
    if (ls_store_open(&st, path, &o, &err) != LS_OK || ls_store_batch_new(&b, &err) != LS_OK) {
        fprintf(stderr, "crash child: %s\n", err.msg);
        _exit(3);
    }
    int found;
    uint64_t n = read_last(st, &found) + 1;
    double start = now_ms();
    for (;; n++) {
        if (now_ms() - start > CRASH_WRITE_MS)
            for (;;) pause(); /* enough: wait for the kill */
        char key[64], val[32];
        int vl = snprintf(val, sizeof val, "%" PRIu64, n);
        ls_store_batch_clear(b);
        for (unsigned i = 0; i < CRASH_KEYS; i++) {
            size_t kl = crash_key(key, sizeof key, n, i);
            ls_store_batch_put(b, key, kl, val, (size_t)vl);
        }
        ls_store_batch_put(b, "last", 4, val, (size_t)vl);
        if (ls_store_write(st, b, LS_STORE_SYNC, &err) != LS_OK) {
            fprintf(stderr, "crash child: %s\n", err.msg);
            _exit(4);
        }
        if (write(fd, &n, sizeof n) != (ssize_t)sizeof n) _exit(5);
    }
}

/* Reopens the store and checks it against acked, the highest acknowledged
 * batch: batches 1..acked whole, acked + 1 whole or absent, no part of any
 * batch. Returns the highest batch present. */
static uint64_t crash_verify(const char *path, uint64_t acked)
{
    ls_store_t *st = open_ok(path, 0);
    int found;
    uint64_t last = read_last(st, &found);
    if (acked > 0 && !found)
        fail_msg("batch %" PRIu64 " was acknowledged, but \"last\" is absent", acked);
    if (last < acked || last > acked + 1)
        fail_msg("\"last\" is %" PRIu64 " with %" PRIu64 " acknowledged", last, acked);

    unsigned *count = calloc((size_t)last + 2, sizeof *count);
    assert_non_null(count);
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    th_ok(ls_store_iter_prefix(&it, st, "b/", 2, 0, &err), &err);
    const void *k, *v;
    size_t kl, vl;
    ls_rc rc;
    while ((rc = ls_store_iter_next(it, &k, &kl, &v, &vl, &err)) == LS_OK) {
        char key[64], val[32];
        assert_true(kl < sizeof key && vl < sizeof val);
        memcpy(key, k, kl);
        key[kl] = '\0';
        memcpy(val, v, vl);
        val[vl] = '\0';
        uint64_t n = 0;
        unsigned i = 0;
        if (sscanf(key, "b/%" SCNu64 "/%u", &n, &i) != 2) fail_msg("stray key %s", key);
        if (n == 0 || n > last)
            fail_msg("key %s of batch %" PRIu64 " beyond \"last\" %" PRIu64 ": a partial batch",
                     key, n, last);
        if (strtoull(val, NULL, 10) != n) fail_msg("key %s holds %s", key, val);
        count[n]++;
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
    for (uint64_t n = 1; n <= last; n++)
        if (count[n] != CRASH_KEYS)
            fail_msg("batch %" PRIu64 " has %u of %u keys (acknowledged up to %" PRIu64 ")", n,
                     count[n], CRASH_KEYS, acked);
    free(count);
    ls_store_close(st);
    return last;
}

static void test_store_crash_sigkill_keeps_acknowledged_batches(void **state)
{
    seed_rng("test_store_crash_sigkill_keeps_acknowledged_batches");
    char *path = store_path(state, "crash");
    uint64_t last = 0;
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(path, fds[1]);
        }
        close(fds[1]);

        /* wait for the first acknowledgement, then kill at a random moment */
        uint64_t acked = last, n;
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ready = poll(&pfd, 1, 20000);
        ssize_t got = ready == 1 ? read(fds[0], &n, sizeof n) : -1;
        if (got == (ssize_t)sizeof n) acked = n;
        long delay_ms = 1 + (long)(rng() % CRASH_KILL_MS);
        if (got == (ssize_t)sizeof n) {
            struct timespec ts = {0, delay_ms * 1000000L};
            while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
        }
        kill(pid, SIGKILL);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (got != (ssize_t)sizeof n)
            fail_msg("round %d: the child acknowledged nothing (status 0x%x)", round, status);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("round %d: the child ended by itself (status 0x%x)", round, status);
        while (read(fds[0], &n, sizeof n) == (ssize_t)sizeof n) acked = n; /* acks in order */
        close(fds[0]);

        uint64_t before = last;
        last = crash_verify(path, acked);
        print_message("crash round %d: killed after %ld ms, batches %" PRIu64 "..%" PRIu64
                      " acknowledged, %" PRIu64 " present\n",
                      round, delay_ms, before + 1, acked, last);
        assert_true(acked > before);
    }
    free(path);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    *state = th_mkdtemp("store");
    rng_state = 0x5EED;
    return 0;
}

static int group_teardown(void **state)
{
    th_rmtree(*state);
    free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_create_reopen_keeps_data),
        cmocka_unit_test(test_store_format_record_written),
        cmocka_unit_test(test_store_holds_data),
        cmocka_unit_test(test_store_batch_append),
        cmocka_unit_test(test_store_open_missing_without_create),
        cmocka_unit_test(test_store_open_leftover_lock_and_log_is_empty),
        cmocka_unit_test(test_store_open_twice_in_process_busy),
        cmocka_unit_test(test_store_open_held_by_child_busy),
        cmocka_unit_test(test_store_open_from_child_while_held_busy),
        cmocka_unit_test(test_store_open_not_a_leveldb_eformat),
        cmocka_unit_test(test_store_open_leveldb_without_format_eformat),
        cmocka_unit_test(test_store_open_empty_leveldb_adopted),
        cmocka_unit_test(test_store_open_newer_format_eformat),
        cmocka_unit_test(test_store_open_damaged_format_record_ecorrupt),
        cmocka_unit_test(test_store_open_bad_arguments),
        cmocka_unit_test(test_store_options_applied),
        cmocka_unit_test(test_store_get_put_delete),
        cmocka_unit_test(test_store_batch_atomic_count_clear),
        cmocka_unit_test(test_store_batch_later_ops_win),
        cmocka_unit_test(test_store_scan_range_forward),
        cmocka_unit_test(test_store_scan_range_reverse),
        cmocka_unit_test(test_store_scan_prefix),
        cmocka_unit_test(test_store_scan_values_borrowed),
        cmocka_unit_test(test_store_scan_snapshot_isolation),
        cmocka_unit_test(test_store_corruption_reported),
        cmocka_unit_test(test_keys_layout),
        cmocka_unit_test(test_keys_order_property),
        cmocka_unit_test(test_keys_reader_roundtrip_all_parts),
        cmocka_unit_test(test_keys_reader_truncated),
        cmocka_unit_test(test_keys_reader_malformed),
        cmocka_unit_test(test_keys_prefix_end),
        cmocka_unit_test(test_store_alloc_failure_open),
        cmocka_unit_test(test_store_alloc_failure_access),
        cmocka_unit_test(test_keys_alloc_failure),
        cmocka_unit_test(test_store_crash_sigkill_keeps_acknowledged_batches),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

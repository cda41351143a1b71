/* SPDX-License-Identifier: MIT
 * Tests of native/vault/mask.c: secret values replaced by "[secret NAME]"
 * in texts, against the secrets of a real store. Every occurrence, the
 * length bound, the longest value first, overlapping occurrences, the cut
 * at a limit (never inside a mark nor a character), reloading after a
 * put or a delete, secrets that do not open, threads, thousands of
 * secrets, and allocation failures.
 */
#define _GNU_SOURCE 1 /* memmem */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    th_store_dir d;
    ls_vault_mask_t *m;
    char notes[4096]; /* what the mask told, one line each */
    int nnotes;
} env;

static void on_note(void *ud, const char *msg)
{
    env *e = ud;
    size_t have = strlen(e->notes);
    snprintf(e->notes + have, sizeof e->notes - have, "%s\n", msg);
    e->nnotes++;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "vault_mask");
    ls_vault_mask_opts o = {.note = on_note, .note_ud = e};
    ls_err err = {0};
    if (ls_vault_mask_new(&e->m, e->d.v, e->d.st, &o, &err) != LS_OK) return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    ls_vault_mask_free(e->m);
    th_store_dir_close(&e->d);
    free(e);
    return 0;
}

static void put(env *e, const char *name, const char *value)
{
    ls_err err = {0};
    th_ok(ls_vault_secret_put(e->d.v, e->d.st, name, value, strlen(value), &err), &err);
}

/* text masked with no limit, as a NUL-terminated string (caller frees). */
static char *masked(env *e, const char *text)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    size_t used = 99;
    th_ok(ls_vault_mask_text(e->m, text, strlen(text), SIZE_MAX, &out, &used, &err), &err);
    assert_int_equal(used, strlen(text));
    char *s = strndup(out.ptr ? (const char *)out.ptr : "", out.len);
    ls_buf_free(&out);
    assert_non_null(s);
    return s;
}

static void assert_masked(env *e, const char *text, const char *want)
{
    char *got = masked(e, text);
    if (strcmp(got, want) != 0) fail_msg("masked \"%s\": got \"%s\", want \"%s\"", text, got, want);
    free(got);
}

/* text masked with a limit: the output and the bytes it stands for. */
static void assert_cut(env *e, const char *text, size_t limit, const char *want, size_t want_used)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    size_t used = 99;
    th_ok(ls_vault_mask_text(e->m, text, strlen(text), limit, &out, &used, &err), &err);
    const char *got = out.ptr ? (const char *)out.ptr : "";
    if (strcmp(got, want) != 0 || used != want_used)
        fail_msg("masked \"%s\" to %zu bytes: got \"%s\" (%zu used), want \"%s\" (%zu)", text,
                 limit, got, used, want, want_used);
    assert_true(out.len <= limit);
    ls_buf_free(&out);
}

/* ---- what is masked ---- */

static void test_mask_without_secrets(void **state)
{
    env *e = *state;
    assert_int_equal(ls_vault_mask_count(e->m), 0);
    assert_masked(e, "", "");
    assert_masked(e, "nothing to hide", "nothing to hide");
    /* a cut still falls where a character starts: "é" is 2 bytes */
    assert_cut(e, "ab\xc3\xa9z", 3, "ab", 2);
    assert_cut(e, "ab\xc3\xa9z", 4, "ab\xc3\xa9", 4);
    assert_int_equal(e->nnotes, 0);
}

static void test_mask_every_occurrence(void **state)
{
    env *e = *state;
    put(e, "stripe/key", "sk_live_51H");
    assert_masked(e, "Bearer sk_live_51H", "Bearer [secret stripe/key]");
    assert_masked(e, "sk_live_51Hsk_live_51H", "[secret stripe/key][secret stripe/key]");
    assert_masked(e, "sk_live_51 is not it", "sk_live_51 is not it");
    /* a thousand occurrences in 20 KB of text */
    ls_buf text = LS_BUF_INIT, want = LS_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        ls_buf_printf(&text, NULL, "%04d sk_live_51H, ", i);
        ls_buf_printf(&want, NULL, "%04d [secret stripe/key], ", i);
    }
    char *got = masked(e, (const char *)text.ptr);
    assert_string_equal(got, (const char *)want.ptr);
    assert_null(strstr(got, "sk_live"));
    free(got);
    ls_buf_free(&text);
    ls_buf_free(&want);
    /* not a transformed form: a prefix, URL-encoded, another case */
    assert_masked(e, "sk_live_51 sk%5Flive%5F51H SK_LIVE_51H",
                  "sk_live_51 sk%5Flive%5F51H SK_LIVE_51H");
}

static void test_mask_length_bound(void **state)
{
    env *e = *state;
    assert_int_equal(LS_VAULT_MASK_MIN, 4);
    put(e, "short", "abc"); /* 3 bytes: never masked */
    put(e, "four", "wxyz"); /* 4 bytes: masked */
    put(e, "empty", "");
    assert_int_equal(ls_vault_mask_count(e->m), 1);
    assert_masked(e, "abc wxyz abcabc", "abc [secret four] abcabc");
    assert_masked(e, "wxyz", "[secret four]");
    assert_masked(e, "wxy", "wxy");
    assert_masked(e, "xwxyzw", "x[secret four]w");
}

static void test_mask_longest_first(void **state)
{
    env *e = *state;
    put(e, "token", "abc123def");          /* inside the longer value */
    put(e, "header", "Bearer abc123def!"); /* contains it */
    put(e, "same/b", "twin-value");
    put(e, "same/a", "twin-value"); /* the same value: the first name wins */
    assert_masked(e, "h: Bearer abc123def!, t: abc123def", "h: [secret header], t: [secret token]");
    assert_masked(e, "Bearer abc123def?", "Bearer [secret token]?");
    assert_masked(e, "twin-value", "[secret same/a]");
}

static void test_mask_overlaps(void **state)
{
    env *e = *state;
    put(e, "a", "abcdef12");
    put(e, "b", "ef12ghij");
    put(e, "c", "12gh");
    /* a, then b overlapping its end (c inside both): the whole stretch */
    assert_masked(e, "xxabcdef12ghijyy", "xx[secret a][secret b]yy");
    /* b alone: c is inside it */
    assert_masked(e, "ef12ghij", "[secret b]");
    /* a chain: b starts inside a and ends past it; the a after b's end
     * is a stretch of its own */
    assert_masked(e, "abcdef12ghijabcdef12", "[secret a][secret b][secret a]");
    /* c overlapping the end of a: "abcdef12gh" */
    assert_masked(e, "abcdef12gh.", "[secret a][secret c].");
}

/* ---- cuts ---- */

static void test_mask_cut_at_limit(void **state)
{
    env *e = *state;
    put(e, "pw", "hunter22");
    const char *text = "pw=hunter22;";
    /* "pw=" (3) + "[secret pw]" (11) + ";" */
    assert_cut(e, text, 15, "pw=[secret pw];", 12);
    assert_cut(e, text, 14, "pw=[secret pw]", 11);
    /* a mark that does not fit is left out whole: no part of it, and no
     * part of the value */
    for (size_t lim = 3; lim < 14; lim++) assert_cut(e, text, lim, "pw=", 3);
    assert_cut(e, text, 2, "pw", 2);
    assert_cut(e, text, 0, "", 0);
    /* a cut in plain text falls where a character starts */
    assert_cut(e, "\xe2\x82\xac\xe2\x82\xachunter22", 5, "\xe2\x82\xac", 3);
    assert_cut(e, "\xe2\x82\xac\xe2\x82\xachunter22", 6, "\xe2\x82\xac\xe2\x82\xac", 6);
    assert_cut(e, "\xe2\x82\xac\xe2\x82\xachunter22", 17, "\xe2\x82\xac\xe2\x82\xac[secret pw]",
               14);
    /* a value cut by the limit is not masked: but never shown either */
    assert_cut(e, "hunter22hunter22", 20, "[secret pw]", 8);
}

/* ---- the loaded values follow the store ---- */

static void test_mask_follows_changes(void **state)
{
    env *e = *state;
    ls_err err = {0};
    uint64_t g0 = ls_vault_secrets_generation();
    put(e, "api", "first-value");
    assert_true(ls_vault_secrets_generation() > g0);
    assert_masked(e, "first-value second-value", "[secret api] second-value");
    uint64_t g1 = ls_vault_secrets_generation();
    put(e, "api", "second-value"); /* changed after the values were loaded */
    assert_true(ls_vault_secrets_generation() > g1);
    assert_masked(e, "first-value second-value", "first-value [secret api]");
    put(e, "other", "other-value");
    assert_int_equal(ls_vault_mask_count(e->m), 2);
    th_ok(ls_vault_secret_delete(e->d.st, "api", &err), &err);
    assert_masked(e, "first-value second-value other-value",
                  "first-value second-value [secret other]");
    assert_int_equal(ls_vault_mask_count(e->m), 1);
    uint64_t g2 = ls_vault_secrets_generation();
    th_ok(ls_vault_rotate(e->d.v, NULL, &err), &err);
    size_t n = 0;
    th_ok(ls_vault_secret_reseal_all(e->d.v, e->d.st, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_true(ls_vault_secrets_generation() > g2);
    assert_masked(e, "other-value", "[secret other]");
}

static void test_mask_secret_that_does_not_open(void **state)
{
    env *e = *state;
    ls_err err = {0};
    /* "stale" sealed under another key file's key 1: this vault's key 1
     * does not open it */
    char *kpath = th_path(e->d.dir, "other.key");
    ls_vault_opts vo = {.create_if_missing = 1};
    ls_vault_t *other = NULL;
    th_ok(ls_vault_load(&other, kpath, &vo, &err), &err);
    th_ok(ls_vault_secret_put(other, e->d.st, "stale", "stale-value", 11, &err), &err);
    ls_vault_close(other);
    free(kpath);
    put(e, "good", "good-value");
    assert_masked(e, "good-value stale-value", "[secret good] stale-value");
    assert_int_equal(e->nnotes, 1);
    assert_non_null(strstr(e->notes, "secret masking: 1 secret could not be loaded and is not "
                                     "masked in texts kept in clear (history errors, log lines): "
                                     "stale (first reason: secret \"stale\": "));
    assert_null(strstr(e->notes, "stale-value"));
    assert_null(strstr(e->notes, "good"));
    /* told once: another change that leaves it out says nothing again */
    put(e, "good2", "good2-value");
    assert_masked(e, "good2-value", "[secret good2]");
    assert_int_equal(e->nnotes, 1);
}

/* ---- threads ---- */

typedef struct {
    env *e;
    atomic_int stop;
    atomic_int bad;
    atomic_long masked;
} race;

static void *masker(void *ud)
{
    race *r = ud;
    ls_buf out = LS_BUF_INIT;
    static const char text[] = "id=fixed-secret-1 and more text after it";
    static const char want[] = "id=[secret fixed] and more text after it";
    while (!atomic_load(&r->stop)) {
        size_t used = 0;
        ls_buf_clear(&out);
        if (ls_vault_mask_text(r->e->m, text, sizeof text - 1, SIZE_MAX, &out, &used, NULL) !=
                LS_OK ||
            out.len != sizeof want - 1 || memcmp(out.ptr, want, out.len) != 0)
            atomic_fetch_add(&r->bad, 1);
        atomic_fetch_add(&r->masked, 1);
    }
    ls_buf_free(&out);
    return NULL;
}

/* Threads mask while another puts secrets: each text is masked whole
 * with a set of values, old or new, never a half-loaded one. */
static void test_mask_threads(void **state)
{
    env *e = *state;
    put(e, "fixed", "fixed-secret-1");
    race r = {.e = e};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, masker, &r), 0);
    char name[32], val[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "churn/%d", i % 5);
        snprintf(val, sizeof val, "churn-value-%d", i);
        put(e, name, val);
        th_nap_ms(1);
    }
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_true(atomic_load(&r.masked) > 0);
    assert_int_equal(ls_vault_mask_count(e->m), 6);
}

/* ---- many secrets ---- */

/* The process's resident set (VmRSS) or its peak since the last reset
 * (VmHWM), in kB: -1 when /proc does not say. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return -1;
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return kb;
}

/* Thousands of secrets: a load holds a couple of guarded allocations at a
 * time, not one per secret (each its own locked page and mappings: some
 * 20,000 secrets ran out of mappings, vm.max_map_count, and the mask
 * loaded none, masking nothing). Measured by the resident peak, which a
 * page per secret held at once raises by 4 KiB a secret. */
static void test_mask_many_secrets(void **state)
{
    env *e = *state;
    enum { N = 2000 };
    char name[32], val[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "bulk/%04d", i);
        snprintf(val, sizeof val, "bulk-value-%04d-of-the-many", i);
        put(e, name, val);
    }
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL || fputs("5", f) == EOF || fclose(f) != 0) skip(); /* resets VmHWM */
    long before = status_kb("VmRSS");
    if (before < 0) skip();
    assert_int_equal(ls_vault_mask_count(e->m), N);
    long grew = status_kb("VmHWM") - before;
    if (grew >= (long)N * 4 / 2)
        fail_msg("loading %d secrets raised the resident peak by %ld kB", N, grew);
    assert_masked(e, "x bulk-value-1999-of-the-many y", "x [secret bulk/1999] y");
    assert_int_equal(e->nnotes, 0);
}

/* ---- allocation failures ---- */

/* With allocation failing at each point in turn, a fresh mask either
 * masks the text, or says (a note) that it could not load, or fails with
 * LS_ENOMEM leaving out as it was: never a crash, a leak or a half mark. */
static void test_mask_alloc_failures(void **state)
{
    env *e = *state;
    put(e, "one", "value-one");
    put(e, "two", "value-two");
    static const char text[] = "a value-one b value-two c";
    static const char want[] = "a [secret one] b [secret two] c";
    int clean = 0, failed = 0;
    th_fail_install();
    for (long n = 0; n < 300; n++) { /* the last ones fail no allocation */
        ls_vault_mask_t *m = NULL;
        ls_vault_mask_opts o = {.note = on_note, .note_ud = e};
        e->nnotes = 0;
        ls_buf out = LS_BUF_INIT;
        size_t used = 0;
        th_fail_after(n);
        ls_rc rc = ls_vault_mask_new(&m, e->d.v, e->d.st, &o, NULL);
        if (rc == LS_OK)
            rc = ls_vault_mask_text(m, text, sizeof text - 1, SIZE_MAX, &out, &used, NULL);
        th_fail_never();
        clean = 0;
        if (rc == LS_OK && e->nnotes == 0) {
            assert_int_equal(used, sizeof text - 1);
            assert_string_equal((const char *)out.ptr, want);
            clean = 1;
        } else if (rc == LS_OK) {
            assert_int_equal(used, sizeof text - 1); /* masked with what loaded */
            assert_non_null(strstr(e->notes, "out of memory"));
            failed++;
        } else {
            assert_int_equal(rc, LS_ENOMEM);
            assert_int_equal(out.len, 0);
            failed++;
        }
        e->notes[0] = '\0';
        ls_buf_free(&out);
        ls_vault_mask_free(m);
    }
    th_fail_uninstall();
    assert_true(clean);
    assert_true(failed > 5);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_mask_without_secrets), T(test_mask_every_occurrence),
        T(test_mask_length_bound),    T(test_mask_longest_first),
        T(test_mask_overlaps),        T(test_mask_cut_at_limit),
        T(test_mask_follows_changes), T(test_mask_secret_that_does_not_open),
        T(test_mask_threads),         T(test_mask_many_secrets),
        T(test_mask_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

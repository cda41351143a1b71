/* SPDX-License-Identifier: MIT
 * Tests of native/flow/retire.c (ls_flow_key_retire) and the key file
 * rewrites under it (native/vault/keyring.c). A store is written by the
 * engine through a tiny C runner under keys 1 and 2 (runs that completed,
 * one that waits for a signal with the signal pending in its inbox,
 * custom statuses, a schedule, secrets), key 3 is made current, and the
 * old keys are retired: every value then opens with a keyring that holds
 * key 3 alone, and the waiting run completes. A damaged value is left as
 * it was and keeps the key file unchanged, as does a history record
 * whose seq is not its key's; a retirement again changes
 * nothing; one cut short by failed allocations at each point is finished
 * by the next call. A key file that is a symlink stays one.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow/flow_int.h"
#include "flow/history.h"
#include "lodestone/ls_flow.h"
#include "lodestone/ls_id.h"

#define WAIT_MS 10000

/* ---- the runner ----
 * done: step "a", a custom status, completes with {"ok":true}.
 * waits: step "a", waits for signal "go", completes with its payload. */

static int is(const ls_flow_act *a, const char *type)
{
    return strcmp(ls_flow_act_type(a), type) == 0;
}

static int r_has_type(void *ud, const char *type, size_t len)
{
    (void)ud;
    return (len == 4 && memcmp(type, "done", 4) == 0) ||
           (len == 5 && memcmp(type, "waits", 5) == 0);
}

static void r_list_types(void *ud, ls_buf *out)
{
    (void)ud;
    ls_buf_printf(out, NULL, "done, waits");
}

static void r_activate(void *ud, void *worker, ls_flow_act *a)
{
    (void)ud;
    (void)worker;
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    ls_flow_outcome oc = LS_FLOW_DONE;
    ls_flow_step_info info;
    if (!th_act_ok(a, ls_flow_act_step(a, "a", 1, &info, &out, &err), &err)) goto out;
    if (info.outcome == LS_FLOW_RUN &&
        !th_act_ok(a, ls_flow_act_step_done(a, "a", 1, info.attempt, "{\"a\":1}", 7, &err), &err))
        goto out;
    if (is(a, "done")) {
        if (!th_act_ok(a, ls_flow_act_set_status(a, "{\"stage\":\"x\"}", 13, &err), &err)) goto out;
        th_act_ok(a, ls_flow_act_complete(a, "{\"ok\":true}", 11, &err), &err);
        goto out;
    }
    if (!th_act_ok(a, ls_flow_act_wait_signal(a, "go", 2, -1, &oc, &out, &err), &err) ||
        oc == LS_FLOW_WAIT)
        goto out;
    th_act_ok(a, ls_flow_act_complete(a, (const char *)out.ptr, out.len, &err), &err);
out:
    ls_buf_free(&out);
}

static const ls_flow_runner runner = {.worker_open = th_worker_open,
                                      .worker_close = th_worker_close,
                                      .activate = r_activate,
                                      .has_type = r_has_type,
                                      .list_types = r_list_types};

/* ---- the environment ---- */

typedef struct {
    th_store_dir d;
    ls_flow_t *f;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "flow_retire");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    ls_flow_close(e->f);
    th_store_dir_close(&e->d);
    free(e);
    return 0;
}

static void eng_open(env *e, int run)
{
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st, .vault = e->d.v, .runner = &runner, .workers = 2};
    assert_null(e->f);
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    if (run) th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_close(env *e)
{
    ls_flow_close(e->f);
    e->f = NULL;
}

static void start(env *e, const char *type, const char *name)
{
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int c = -1;
    th_ok(ls_flow_start(e->f, type, strlen(type), name, strlen(name), "{\"in\":1}", 8, &run, &c,
                        &err),
          &err);
    assert_int_equal(c, 1);
    ls_buf_free(&run);
}

/* Waits (bounded) until run name's object has want in it. */
static void wait_for(env *e, const char *name, const char *want)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    for (int i = 0; i < WAIT_MS / 10; i++) {
        th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
        if (strstr((const char *)out.ptr, want) != NULL) break;
        th_nap_ms(10);
    }
    ls_buf_putc(&out, '\0', NULL);
    if (strstr((const char *)out.ptr, want) == NULL)
        fail_msg("run %s: [%s] not in %s", name, want, (const char *)out.ptr);
    ls_buf_free(&out);
}

static void rotate(env *e, uint32_t want)
{
    ls_err err = {0};
    uint32_t id = 0;
    th_ok(ls_vault_rotate(e->d.v, &id, &err), &err);
    assert_int_equal(id, want);
    th_ok(ls_vault_check_write(e->d.v, e->d.st, &err), &err);
}

/* The store of every test: under key 1 run d1 (completed), run w1 (waits
 * for "go"), a custom status, schedule nightly and secret s1; under key 2
 * run d2, secret s2 and w1's signal, pending in its inbox; key 3 current
 * and the key check under it. Secrets are not resealed at the rotations. */
static void build(env *e)
{
    ls_err err = {0};
    eng_open(e, 1);
    start(e, "done", "d1");
    start(e, "waits", "w1");
    th_wait_run_end(e->f, "d1", WAIT_MS);
    wait_for(e, "w1", "\"waiting\"");
    const char *def = "{\"name\":\"nightly\",\"workflow\":\"done\",\"cron\":\"@yearly\"}";
    th_ok(ls_flow_schedule_put(e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, NULL, NULL, &err),
          &err);
    th_ok(ls_vault_secret_put(e->d.v, e->d.st, "s1", "one", 3, &err), &err);
    eng_close(e);

    rotate(e, 2);
    eng_open(e, 1);
    start(e, "done", "d2");
    th_wait_run_end(e->f, "d2", WAIT_MS);
    th_ok(ls_vault_secret_put(e->d.v, e->d.st, "s2", "two", 3, &err), &err);
    eng_close(e);
    /* The engine open but not running: the signal stays in the inbox. */
    eng_open(e, 0);
    th_ok(ls_flow_signal(e->f, "w1", 2, "go", 2, "{\"n\":2}", 7, &err), &err);
    eng_close(e);
    rotate(e, 3);
}

/* Sealed values of st that do not name key, read here from the records
 * themselves (not with retire.c's walk): history payloads, inbox entries,
 * custom statuses, schedules, secrets and the key check. */
static size_t count_other(ls_store_t *st, uint32_t key)
{
    static const unsigned char nss[] = {LS_NS_HISTORY, LS_NS_SIGNAL, LS_NS_RUNINFO, LS_NS_SCHEDULE};
    size_t n = 0;
    ls_err err = {0};
    for (size_t i = 0; i < sizeof nss; i++) {
        ls_store_iter_t *it = NULL;
        const void *k, *v;
        size_t kl, vl;
        ls_rc rc;
        th_ok(ls_store_iter_prefix(&it, st, &nss[i], 1, 0, &err), &err);
        while ((rc = ls_store_iter_next(it, &k, &kl, &v, &vl, &err)) == LS_OK) {
            if (nss[i] == LS_NS_HISTORY || nss[i] == LS_NS_SIGNAL) {
                ls_event ev;
                th_ok(ls_event_decode(v, vl, &ev, &err), &err);
                if (ev.payload_len) n += ls_vault_sealed_key(ev.payload, ev.payload_len) != key;
            } else if (nss[i] == LS_NS_RUNINFO) {
                if (kl == 2 + LS_ID_BYTES && ((const char *)k)[kl - 1] == 'c')
                    n += ls_vault_sealed_key(v, vl) != key;
            } else {
                n += ls_vault_sealed_key(v, vl) != key;
            }
        }
        assert_int_equal(rc, LS_ENOTFOUND);
        ls_store_iter_free(it);
    }
    size_t secrets = 0;
    th_ok(ls_vault_secret_count_other_keys(st, key, &secrets, &err), &err);
    uint32_t check = 0;
    th_ok(ls_vault_check_key(st, &check, &err), &err);
    return n + secrets + (check != key);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 4096);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t total(const ls_flow_retire_report *rep)
{
    size_t n = 0;
    for (int k = 0; k < LS_FLOW_SEALED_KINDS; k++) n += rep->resealed[k];
    return n;
}

/* Loads key_path again into e->d.v. */
static void reload_vault(env *e)
{
    ls_err err = {0};
    ls_vault_close(e->d.v);
    e->d.v = NULL;
    th_ok(ls_vault_load(&e->d.v, e->d.key_path, NULL, &err), &err);
}

/* The secret name reads as want. */
static void secret_is(env *e, const char *name, const char *want)
{
    ls_secret_t *s = NULL;
    ls_err err = {0};
    th_ok(ls_vault_secret_get(e->d.v, e->d.st, name, &s, &err), &err);
    assert_int_equal(ls_secret_len(s), strlen(want));
    assert_memory_equal(ls_secret_data(s), want, strlen(want));
    ls_secret_free(s);
}

/* Run name's history and object open; its object has want in it. */
static void run_opens(env *e, const char *name, const char *want)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_history(e->f, name, strlen(name), &out, &err), &err);
    th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
    ls_buf_putc(&out, '\0', NULL);
    if (strstr((const char *)out.ptr, want) == NULL)
        fail_msg("run %s: [%s] not in %s", name, want, (const char *)out.ptr);
    ls_buf_free(&out);
}

/* ---- tests ---- */

static void test_retire_reseals_every_kind(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    assert_true(count_other(e->d.st, 3) > 0);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.retired, 1);
    assert_int_equal(rep.key, 3);
    assert_int_equal(rep.keys_before, 3);
    assert_int_equal(rep.failed, 0);
    assert_string_equal(rep.first_failed, "");
    assert_int_equal(rep.remaining, 0);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_SECRETS], 2);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_INBOX], 1);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_STATUS], 2);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_SCHEDULES], 1);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_KEYCHECK], 0); /* under key 3 since rotate */
    /* d1, d2: input, step a's start (sealed empty since version 3), its
     * result, output; w1: input, a's start, its result */
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_HISTORY], 4 + 4 + 3);
    assert_int_equal(ls_vault_key_count(e->d.v), 1);
    assert_int_equal(count_other(e->d.st, 3), 0);

    /* The key file holds key 3 alone, 0600; nothing else is left beside it. */
    struct stat sb;
    assert_int_equal(stat(e->d.key_path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    char *text = slurp(e->d.key_path);
    assert_non_null(strstr(text, "current 3\nkey 3 "));
    assert_null(strstr(text, "key 1 "));
    assert_null(strstr(text, "key 2 "));
    free(text);
    DIR *dir = opendir(e->d.dir);
    assert_non_null(dir);
    const struct dirent *de;
    while ((de = readdir(dir)) != NULL) assert_null(strstr(de->d_name, ".tmp-"));
    closedir(dir);

    /* A keyring holding key 3 alone opens everything, and the waiting run
     * takes its pending signal and completes. */
    reload_vault(e);
    uint32_t ids[4] = {0};
    assert_int_equal(ls_vault_key_ids(e->d.v, ids, 4), 1);
    assert_int_equal(ids[0], 3);
    uint32_t check = 0;
    th_ok(ls_vault_check_open(e->d.v, e->d.st, &check, &err), &err);
    secret_is(e, "s1", "one");
    secret_is(e, "s2", "two");
    eng_open(e, 1);
    th_wait_run_end(e->f, "w1", WAIT_MS);
    run_opens(e, "w1", "\"output\":{\"n\":2}");
    run_opens(e, "w1", "\"input\":{\"in\":1}");
    run_opens(e, "d1", "\"custom_status\":{\"stage\":\"x\"}");
    run_opens(e, "d1", "\"output\":{\"ok\":true}");
    run_opens(e, "d2", "\"custom_status\":{\"stage\":\"x\"}");
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_flow_schedule_get(e->f, "nightly", 7, &out, &err), &err);
    ls_buf_free(&out);
    eng_close(e);
}

/* The store's key check under key 1 (as an older lodestoned left it):
 * resealed under key 3, counted, and then the key file is retired. */
static void test_retire_reseals_key_check(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    /* A copy of the key file with key 1 current writes the check. */
    char *text = slurp(e->d.key_path);
    char *at = strstr(text, "current 3\n");
    assert_non_null(at);
    at[8] = '1';
    char *copy = th_path(e->d.dir, "key1.key");
    FILE *f = fopen(copy, "wb");
    assert_non_null(f);
    assert_int_equal(fchmod(fileno(f), 0600), 0);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    free(text);
    ls_vault_t *v1 = NULL;
    th_ok(ls_vault_load(&v1, copy, NULL, &err), &err);
    th_ok(ls_vault_check_write(v1, e->d.st, &err), &err);
    ls_vault_close(v1);
    unlink(copy);
    free(copy);
    uint32_t check = 0;
    th_ok(ls_vault_check_key(e->d.st, &check, &err), &err);
    assert_int_equal(check, 1);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_KEYCHECK], 1);
    assert_int_equal(rep.retired, 1);
    th_ok(ls_vault_check_key(e->d.st, &check, &err), &err);
    assert_int_equal(check, 3);
    reload_vault(e);
    th_ok(ls_vault_check_open(e->d.v, e->d.st, &check, &err), &err);
    assert_int_equal(count_other(e->d.st, 3), 0);
}

/* Flips the last byte of the first history payload under key 1. */
static void damage_first_payload(ls_store_t *st)
{
    const unsigned char ns = LS_NS_HISTORY;
    ls_store_iter_t *it = NULL;
    const void *k, *v;
    size_t kl, vl;
    ls_err err = {0};
    th_ok(ls_store_iter_prefix(&it, st, &ns, 1, 0, &err), &err);
    int done = 0;
    while (!done && ls_store_iter_next(it, &k, &kl, &v, &vl, &err) == LS_OK) {
        ls_event ev;
        th_ok(ls_event_decode(v, vl, &ev, &err), &err);
        if (ev.payload_len == 0 || ls_vault_sealed_key(ev.payload, ev.payload_len) != 1) continue;
        unsigned char *copy = malloc(vl);
        assert_non_null(copy);
        memcpy(copy, v, vl);
        size_t at = (size_t)(ev.payload - (const unsigned char *)v) + ev.payload_len - 1;
        copy[at] ^= 1;
        th_ok(ls_store_put(st, k, kl, copy, vl, LS_STORE_SYNC, &err), &err);
        free(copy);
        done = 1;
    }
    assert_true(done);
    ls_store_iter_free(it);
}

static void test_retire_damaged_value_keeps_key_file(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    damage_first_payload(e->d.st);
    char *before = slurp(e->d.key_path);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.retired, 0);
    assert_int_equal(rep.failed, 1);
    assert_int_equal(rep.remaining, 1);
    /* The first run in id order is one of d1, w1 (both under key 1). */
    assert_true(strstr(rep.first_failed, "run d1 (id ") == rep.first_failed ||
                strstr(rep.first_failed, "run w1 (id ") == rep.first_failed);
    assert_non_null(strstr(rep.first_failed, "): payload of event "));
    assert_non_null(strstr(rep.first_failed, "does not authenticate"));
    /* Everything else is resealed, the key file is the same. */
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_SECRETS], 2);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_INBOX], 1);
    assert_int_equal(count_other(e->d.st, 3), 1);
    assert_int_equal(ls_vault_key_count(e->d.v), 3);
    char *after = slurp(e->d.key_path);
    assert_string_equal(before, after);
    free(after);

    /* Again: nothing more to reseal, the same failure, the same key file. */
    ls_flow_retire_report again;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &again, &err), &err);
    assert_int_equal(total(&again), 0);
    assert_int_equal(again.failed, 1);
    assert_string_equal(again.first_failed, rep.first_failed);
    assert_int_equal(again.retired, 0);
    after = slurp(e->d.key_path);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

/* Copies run id's history event `from` (its value as stored) under the
 * key of seq `to`, and returns that value in *val. */
static void copy_event(env *e, const ls_id *id, uint64_t from, uint64_t to, ls_buf *val)
{
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT;
    th_ok(ls_history_key(&k, id, from, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, val, &err), &err);
    th_ok(ls_history_key(&k, id, to, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, val->ptr, val->len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k);
}

/* A history record whose stored seq is not its key's (d1's step result,
 * under key 1, copied to seq 1000) is not resealed: it would be bound to
 * a place it was not written for. It is counted as a value that does not
 * open, named, and left as it was; every other value is resealed, and the
 * key file is unchanged. */
static void test_retire_moved_event_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    ls_id d1;
    eng_open(e, 0);
    th_ok(flow_lookup(e->f, "d1", 2, &d1, &err), &err);
    eng_close(e);
    ls_buf moved = LS_BUF_INIT, k = LS_BUF_INIT, now = LS_BUF_INIT;
    copy_event(e, &d1, 3, 1000, &moved);
    ls_event ev;
    th_ok(ls_event_decode(moved.ptr, moved.len, &ev, &err), &err);
    assert_int_equal(ev.seq, 3);
    assert_int_equal(ls_vault_sealed_key(ev.payload, ev.payload_len), 1);
    char *before = slurp(e->d.key_path);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.retired, 0);
    assert_int_equal(rep.failed, 1);
    assert_int_equal(rep.remaining, 1);
    assert_true(strstr(rep.first_failed, "run d1 (id ") == rep.first_failed);
    assert_non_null(strstr(rep.first_failed, "): payload of event 1000: the event holds seq 3"));
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_SECRETS], 2);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_INBOX], 1);
    assert_int_equal(count_other(e->d.st, 3), 1);
    /* the record is as it was, the original resealed; the key file the same */
    th_ok(ls_history_key(&k, &d1, 1000, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &now, &err), &err);
    assert_int_equal(now.len, moved.len);
    assert_memory_equal(now.ptr, moved.ptr, moved.len);
    th_ok(ls_history_key(&k, &d1, 3, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &now, &err), &err);
    th_ok(ls_event_decode(now.ptr, now.len, &ev, &err), &err);
    assert_int_equal(ls_vault_sealed_key(ev.payload, ev.payload_len), 3);
    assert_int_equal(ls_vault_key_count(e->d.v), 3);
    char *after = slurp(e->d.key_path);
    assert_string_equal(before, after);
    free(after);
    free(before);
    ls_buf_free(&moved), ls_buf_free(&k), ls_buf_free(&now);
}

static void test_retire_again_is_nothing(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.retired, 1);
    char *before = slurp(e->d.key_path);
    reload_vault(e);
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.keys_before, 1);
    assert_int_equal(rep.retired, 0);
    assert_int_equal(total(&rep), 0);
    char *after = slurp(e->d.key_path);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* Puts under a new arrival id of run id (which has no events: a parent
 * retention deleted) a child's result sealed as its writer found the
 * run: started 3 when it was there, 0 when not. */
static void orphan_entry(env *e, const ls_id *id, unsigned started)
{
    ls_err err = {0};
    ls_id arrival;
    th_ok(ls_id_new(&arrival, NULL, &err), &err);
    ls_event ev = {.type = LS_EV_CHILD_COMPLETED, .seq = 1, .name = "kid", .name_len = 3};
    ls_buf sealed = LS_BUF_INIT, k = LS_BUF_INIT, v = LS_BUF_INIT;
    th_ok(flow_seal_event_with(e->d.v, id, &arrival, started, &ev, "1", 1, &sealed, &err), &err);
    th_ok(flow_key_inbox(&k, id, &arrival, &err), &err);
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, v.ptr, v.len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&sealed);
    ls_buf_free(&k);
    ls_buf_free(&v);
}

/* Inbox entries of a run that is gone (a detached child's result for a
 * parent that retention deleted, which the next start removes) are
 * resealed, whichever start their writer bound them to: retirement does
 * not stop at them (before, "event 1 is missing" failed it). */
static void test_retire_orphan_inbox_entries(void **state)
{
    env *e = *state;
    ls_err err = {0};
    build(e);
    ls_id gone;
    th_ok(ls_id_new(&gone, NULL, &err), &err);
    orphan_entry(e, &gone, 3);
    orphan_entry(e, &gone, 0);
    rotate(e, 4); /* both under key 3, now an older one */
    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    if (rep.failed) fail_msg("%zu failed: %s", rep.failed, rep.first_failed);
    assert_int_equal(rep.retired, 1);
    assert_true(rep.resealed[LS_FLOW_SEALED_INBOX] >= 2);
}

/* Retirement cut short at every allocation in turn (each an LS_ENOMEM with
 * the key file unchanged), each attempt going on from what the one before
 * wrote: the last finishes the job. */
static env *alloc_env;

static ls_rc retire_once(void *ud)
{
    (void)ud;
    ls_flow_retire_report rep;
    ls_err err = {0};
    ls_rc rc = ls_flow_key_retire(alloc_env->d.v, alloc_env->d.st, &rep, &err);
    if (rc == LS_OK && !rep.retired) return LS_EINVAL;
    if (rc != LS_OK) assert_int_equal(ls_vault_key_count(alloc_env->d.v), 3);
    return rc;
}

static void test_retire_alloc_failures_then_finishes(void **state)
{
    env *e = *state;
    build(e);
    alloc_env = e;
    long points = th_each_alloc_failure(retire_once, NULL);
    assert_true(points > 0);
    assert_int_equal(ls_vault_key_count(e->d.v), 1);
    assert_int_equal(count_other(e->d.st, 3), 0);
    reload_vault(e);
    assert_int_equal(ls_vault_current_key(e->d.v), 3);
    secret_is(e, "s1", "one");
}

/* Moves e's key file to DIR/keys/real.key, puts a symlink to it at
 * DIR/link.key, loads the vault through the link and rotates once (key 2
 * current, the key check sealed under it). The three paths are the
 * caller's to free. */
static void key_file_behind_link(env *e, char **real_dir, char **real, char **link)
{
    ls_err err = {0};
    *real_dir = th_path(e->d.dir, "keys");
    assert_int_equal(mkdir(*real_dir, 0700), 0);
    *real = th_path(*real_dir, "real.key");
    *link = th_path(e->d.dir, "link.key");
    assert_int_equal(rename(e->d.key_path, *real), 0);
    assert_int_equal(symlink(*real, *link), 0);
    ls_vault_close(e->d.v);
    e->d.v = NULL;
    th_ok(ls_vault_load(&e->d.v, *link, NULL, &err), &err);
    th_ok(ls_vault_rotate(e->d.v, NULL, &err), &err);
    th_ok(ls_vault_check_write(e->d.v, e->d.st, &err), &err);
}

/* A key file that is a symlink: rotation and retirement replace the file
 * it names, in that file's directory, and the link stays a link. */
static void test_retire_key_file_symlink_stays(void **state)
{
    env *e = *state;
    ls_err err = {0};
    char *real_dir, *real, *link;
    key_file_behind_link(e, &real_dir, &real, &link);
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    char *text = slurp(real);
    assert_non_null(strstr(text, "current 2\n"));
    free(text);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.retired, 1);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(stat(real, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    text = slurp(real);
    assert_non_null(strstr(text, "current 2\nkey 2 "));
    assert_null(strstr(text, "key 1 "));
    free(text);
    /* No temporary file is left in either directory. */
    const char *dirs[] = {e->d.dir, real_dir};
    for (int i = 0; i < 2; i++) {
        DIR *dir = opendir(dirs[i]);
        assert_non_null(dir);
        const struct dirent *de;
        while ((de = readdir(dir)) != NULL) assert_null(strstr(de->d_name, ".tmp-"));
        closedir(dir);
    }
    unlink(link);
    free(real_dir);
    free(real);
    free(link);
}

/* A key file that is a symlink whose target was removed after the load:
 * neither a rotation nor a retirement writes the keys beside the link (a
 * regular file in its place); both fail, the link stays, the keyring is
 * as it was. */
static void test_retire_key_file_dangling_symlink_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    char *real_dir, *real, *link;
    key_file_behind_link(e, &real_dir, &real, &link);
    assert_int_equal(unlink(real), 0);

    struct stat sb;
    assert_int_equal(ls_vault_rotate(e->d.v, NULL, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "is a symlink to a file that no longer exists"));
    assert_int_equal(ls_vault_key_count(e->d.v), 2);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));

    ls_flow_retire_report rep;
    assert_int_equal(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), LS_EIO);
    assert_int_equal(rep.retired, 0);
    assert_non_null(strstr(err.msg, "is a symlink to a file that no longer exists"));
    assert_int_equal(ls_vault_key_count(e->d.v), 2);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(stat(real, &sb), -1);
    unlink(link);
    free(real_dir);
    free(real);
    free(link);
}

static void test_retire_one_key_is_nothing(void **state)
{
    env *e = *state;
    ls_err err = {0};
    th_ok(ls_vault_secret_put(e->d.v, e->d.st, "s1", "one", 3, &err), &err);
    char *before = slurp(e->d.key_path);
    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.keys_before, 1);
    assert_int_equal(rep.retired, 0);
    assert_int_equal(total(&rep), 0);
    char *after = slurp(e->d.key_path);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(ls_flow_key_retire(e->d.v, e->d.st, NULL, &err), LS_EINVAL);
}

/* ---- stores mixing event versions ---- */

static ls_id id_of(env *e, const char *name)
{
    ls_id id;
    ls_err err = {0};
    th_ok(flow_lookup(e->f, name, strlen(name), &id, &err), &err);
    return id;
}

/* The version of event seq of run id, and the key its sealed value names
 * (0: it has none). */
static unsigned event_version(env *e, const ls_id *id, uint64_t seq, uint32_t *key)
{
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_event ev;
    th_ok(ls_history_key(&k, id, seq, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    th_ok(ls_event_decode(v.ptr, v.len, &ev, &err), &err);
    *key = ev.payload_len ? ls_vault_sealed_key(ev.payload, ev.payload_len) : 0;
    ls_buf_free(&k), ls_buf_free(&v);
    return ev.version;
}

/* Renames run id's StepCompleted of step "a" to "z" in the store. */
static void rename_step_a(env *e, const ls_id *id)
{
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, w = LS_BUF_INIT;
    ls_event ev;
    uint64_t seq = 0;
    for (uint64_t s = 1; s <= 4 && seq == 0; s++) {
        th_ok(ls_history_key(&k, id, s, &err), &err);
        th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
        th_ok(ls_event_decode(v.ptr, v.len, &ev, &err), &err);
        if (ev.type == LS_EV_STEP_COMPLETED) seq = s;
    }
    assert_int_equal(seq, 3);
    ev.name = "z";
    th_ok(ls_event_encode(&ev, &w, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, w.ptr, w.len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k), ls_buf_free(&v), ls_buf_free(&w);
}

/* A store mixing events of version 1 (as older lodestoned wrote them), 2
 * and 3, under retired keys and the current one: d1's history of version
 * 1 and w1's of version 2 under key 1 (their step starts without a sealed
 * value, as those versions wrote them), w1's pending signal of version 1
 * under key 2, d2 of version 3 under key 2 (every event sealed, its step's
 * start a MAC alone), d3's start of version 1 under key 3 (current).
 * Retirement opens each as it was sealed and seals it again bound to its
 * fields (a rename of d1's step is then refused): a version 3 value as
 * version 3 (d2's, its step start's MAC too), an older one as version 2,
 * whatever its place (d1's and w1's events and w1's signal): versions
 * never go down in a run, and their step starts stay as they were, without
 * a sealed value (an older event raised to 3 would have the run refuse
 * every older one after it). d3's start, under the current key, is left
 * as it was. Everything opens under key 3 alone, and w1 and d3 complete. */
static void test_retire_mixed_event_versions(void **state)
{
    env *e = *state;
    ls_err err = {0};
    size_t v1 = 0;
    eng_open(e, 1);
    start(e, "done", "d1");
    start(e, "waits", "w1");
    th_wait_run_end(e->f, "d1", WAIT_MS);
    wait_for(e, "w1", "\"waiting\"");
    ls_id d1 = id_of(e, "d1"), w1 = id_of(e, "w1");
    eng_close(e);
    assert_int_equal(th_events_as_v1(e->d.st, e->d.v, 0, &d1), 4);
    assert_int_equal(th_events_as(e->d.st, e->d.v, 2, 0, &w1), 3);

    rotate(e, 2);
    eng_open(e, 1);
    start(e, "done", "d2");
    th_wait_run_end(e->f, "d2", WAIT_MS);
    eng_close(e);
    eng_open(e, 0); /* not running: the signal stays pending, d3 unstarted */
    th_ok(ls_flow_signal(e->f, "w1", 2, "go", 2, "{\"n\":2}", 7, &err), &err);
    eng_close(e);
    assert_int_equal(th_events_as_v1(e->d.st, e->d.v, 1, &w1), 1);
    rotate(e, 3);
    eng_open(e, 0);
    start(e, "done", "d3");
    ls_id d3 = id_of(e, "d3"), d2 = id_of(e, "d2");
    eng_close(e);
    assert_int_equal(th_events_as_v1(e->d.st, e->d.v, 0, &d3), 1);
    /* d1: input, result, output; w1: input, result; d2: those and its
     * step's start; d3: input */
    assert_int_equal(th_payload_events(e->d.st, 0, NULL, &v1), 3 + 2 + 4 + 1);
    assert_int_equal(v1, 3 + 1);

    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.failed, 0);
    assert_int_equal(rep.remaining, 0);
    assert_int_equal(rep.retired, 1);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_INBOX], 1);
    assert_int_equal(rep.resealed[LS_FLOW_SEALED_HISTORY], 3 + 2 + 4); /* d1, w1, d2 */
    assert_int_equal(count_other(e->d.st, 3), 0);
    assert_int_equal(th_payload_events(e->d.st, 1, &w1, &v1), 1);
    assert_int_equal(v1, 0);
    assert_int_equal(th_payload_events(e->d.st, 0, NULL, &v1), 3 + 2 + 4 + 1);
    assert_int_equal(v1, 1); /* d3's start */
    uint32_t key = 9;
    assert_int_equal(event_version(e, &d1, 1, &key), 2); /* a run started before version 3 */
    assert_int_equal(key, 3);
    assert_int_equal(event_version(e, &d1, 2, &key), 1); /* its step's start: nothing sealed */
    assert_int_equal(key, 0);
    assert_int_equal(event_version(e, &d1, 3, &key), 2); /* an older event stays older */
    assert_int_equal(key, 3);
    assert_int_equal(event_version(e, &w1, 1, &key), 2);
    assert_int_equal(event_version(e, &w1, 2, &key), 2);
    assert_int_equal(key, 0);
    assert_int_equal(event_version(e, &d2, 2, &key), 3); /* the MAC alone, resealed */
    assert_int_equal(key, 3);

    reload_vault(e);
    eng_open(e, 1);
    th_wait_run_end(e->f, "w1", WAIT_MS);
    th_wait_run_end(e->f, "d3", WAIT_MS);
    run_opens(e, "w1", "\"output\":{\"n\":2}");
    run_opens(e, "d1", "\"output\":{\"ok\":true}");
    run_opens(e, "d2", "\"output\":{\"ok\":true}");
    run_opens(e, "d3", "\"input\":{\"in\":1}");
    run_opens(e, "d3", "\"output\":{\"ok\":true}");
    eng_close(e);

    rename_step_a(e, &d1);
    eng_open(e, 0);
    ls_buf out = LS_BUF_INIT;
    assert_int_equal(ls_flow_history(e->f, "d1", 2, &out, &err), LS_EAUTH);
    assert_non_null(strstr(err.msg, "payload of event 3: sealed value does not authenticate"));
    ls_buf_free(&out);
    eng_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retire_reseals_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_reseals_key_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_damaged_value_keeps_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_moved_event_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_again_is_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_alloc_failures_then_finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_key_file_symlink_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_key_file_dangling_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retire_one_key_is_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_mixed_event_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_orphan_inbox_entries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

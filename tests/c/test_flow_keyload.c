/* SPDX-License-Identifier: MIT
 * Tests of native/flow/keyload.c, the store's keyring at start: a key is
 * created only for a new store; a missing, wrong or stale key file is
 * refused with a message naming it, leaving the store as it was and no key
 * file behind; a store written before key checks existed has one sealed
 * record of each kind probed before its key check is written.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow/history.h"
#include "lodestone/ls_flow.h"

static char *tdir;
static int seq;

/* ---- helpers ---- */

static char *fresh(const char *base)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%d", base, ++seq);
    return th_path(tdir, name);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static ls_store_t *new_store(void)
{
    char *path = fresh("store");
    ls_store_opts o = {.create_if_missing = 1};
    ls_store_t *st = NULL;
    ls_err err = {0};
    th_ok(ls_store_open(&st, path, &o, &err), &err);
    free(path);
    return st;
}

/* A key file of its own, with one fresh key (numbered 1, as every first
 * key is); rotated n times. Caller frees the path. */
static char *new_key_file(int rotations)
{
    char *path = fresh("key");
    ls_vault_opts o = {.create_if_missing = 1};
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    for (int i = 0; i < rotations; i++) th_ok(ls_vault_rotate(v, NULL, &err), &err);
    ls_vault_close(v);
    return path;
}

static ls_vault_t *load(const char *path)
{
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_vault_load(&v, path, NULL, &err), &err);
    return v;
}

/* Every key and value of st, in order, into out. */
static void snapshot(ls_store_t *st, ls_buf *out)
{
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    const void *k, *v;
    size_t kl, vl;
    ls_buf_clear(out);
    th_ok(ls_store_iter_new(&it, st, NULL, &err), &err);
    ls_rc rc;
    while ((rc = ls_store_iter_next(it, &k, &kl, &v, &vl, &err)) == LS_OK) {
        ls_buf_printf(out, NULL, "%zu:", kl);
        ls_buf_append(out, k, kl, NULL);
        ls_buf_printf(out, NULL, "%zu:", vl);
        ls_buf_append(out, v, vl, NULL);
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
}

static void copy_file(const char *from, const char *to)
{
    char text[4096];
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    assert_int_equal(chmod(to, 0600), 0);
}

/* ---- records as the engine and the vault write them ---- */

/* A schedule record: sealed with its store key as associated data. */
static void put_schedule(ls_vault_t *v, ls_store_t *st, const char *name)
{
    ls_buf k = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_key_ns(&k, LS_NS_SCHEDULE, &err), &err);
    th_ok(ls_key_str(&k, name, strlen(name), &err), &err);
    th_ok(ls_vault_seal(v, k.ptr, k.len, "{}", 2, &sealed, &err), &err);
    th_ok(ls_store_put(st, k.ptr, k.len, sealed.ptr, sealed.len, 0, &err), &err);
    ls_buf_free(&k), ls_buf_free(&sealed);
}

/* Run (id byte b)'s WorkflowStarted as an older lodestoned wrote it (event
 * version 1): its input sealed with the run id and seq 1 as associated
 * data; with bad_version 1, a payload this build does
 * not read (a damaged record); with 2, one whose last byte is flipped (it
 * does not authenticate under the key it names). Sets *id. */
static void put_run(ls_vault_t *v, ls_store_t *st, unsigned char b, int bad_version, ls_id *id)
{
    ls_err err = {0};
    memset(id->b, b, LS_ID_BYTES);
    unsigned char ad[LS_ID_BYTES + 8] = {0};
    memcpy(ad, id->b, LS_ID_BYTES);
    ad[LS_ID_BYTES + 7] = 1;
    ls_buf sealed = LS_BUF_INIT, k = LS_BUF_INIT, val = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, ad, sizeof ad, "{\"a\":1}", 7, &sealed, &err), &err);
    if (bad_version == 1) sealed.ptr[0] = 9;
    if (bad_version == 2) sealed.ptr[sealed.len - 1] ^= 1;
    ls_event ev = {.version = 1,
                   .type = LS_EV_WORKFLOW_STARTED,
                   .seq = 1,
                   .time_ms = 1,
                   .payload = sealed.ptr,
                   .payload_len = sealed.len};
    th_ok(ls_history_key(&k, id, 1, &err), &err);
    th_ok(ls_event_encode(&ev, &val, &err), &err);
    th_ok(ls_store_put(st, k.ptr, k.len, val.ptr, val.len, 0, &err), &err);
    ls_buf_free(&sealed), ls_buf_free(&k), ls_buf_free(&val);
}

/* Loads and expects a refusal rc whose message has want; the store is
 * unchanged and no key file is created. */
static void refused(ls_store_t *st, const char *key_file, ls_rc rc, const char *want)
{
    ls_buf before = LS_BUF_INIT, after = LS_BUF_INIT;
    int had = exists(key_file);
    snapshot(st, &before);
    ls_vault_t *v = (ls_vault_t *)&v;
    ls_err err = {0};
    assert_int_equal(ls_flow_key_load(&v, st, key_file, &err), rc);
    assert_null(v);
    assert_string_equal(err.msg, want);
    snapshot(st, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.ptr, after.ptr, before.len);
    assert_int_equal(exists(key_file), had);
    ls_buf_free(&before), ls_buf_free(&after);
}

static void loaded(ls_store_t *st, const char *key_file, uint32_t check_id)
{
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_flow_key_load(&v, st, key_file, &err), &err);
    assert_non_null(v);
    uint32_t id = 0;
    th_ok(ls_vault_check_open(v, st, &id, &err), &err);
    assert_int_equal(id, check_id);
    ls_vault_close(v);
}

/* ---- a new store ---- */

static void test_keyload_new_store_creates_key(void **state)
{
    (void)state;
    ls_store_t *st = new_store();
    char *path = fresh("master.key");
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_flow_key_load(&v, st, path, &err), &err);
    assert_int_equal(ls_vault_created(v), 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    ls_vault_close(v);
    /* The key check binds the store to it: loaded again, it opens. */
    uint32_t id = 0;
    th_ok(ls_vault_check_key(st, &id, &err), &err);
    assert_int_equal(id, 1);
    th_ok(ls_flow_key_load(&v, st, path, &err), &err);
    assert_int_equal(ls_vault_created(v), 0);
    ls_vault_close(v);

    /* A new store with a key file given: the check goes under its key. */
    ls_store_close(st);
    st = new_store();
    char *given = new_key_file(2);
    loaded(st, given, 3);

    assert_int_equal(ls_flow_key_load(NULL, st, path, &err), LS_EINVAL);
    assert_int_equal(ls_flow_key_load(&v, NULL, path, &err), LS_EINVAL);
    assert_int_equal(ls_flow_key_load(&v, st, NULL, &err), LS_EINVAL);
    ls_store_close(st);
    free(path), free(given);
}

/* A store holding its format record and a key check alone seals
 * nothing: when its key file is gone, it is new, bound to a key created
 * now, and never locked out. */
static void test_keyload_key_check_alone_is_a_new_store(void **state)
{
    (void)state;
    ls_store_t *st = new_store();
    char *path = fresh("master.key");
    loaded(st, path, 1);
    assert_int_equal(unlink(path), 0);
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_flow_key_load(&v, st, path, &err), &err);
    assert_int_equal(ls_vault_created(v), 1);
    ls_vault_close(v);
    loaded(st, path, 1); /* the check is under the new key file's key 1 */
    ls_store_close(st);
    free(path);
}

/* ---- refusals ---- */

static void test_keyload_missing_key_refused(void **state)
{
    (void)state;
    ls_store_t *st = new_store();
    char *path = fresh("master.key");
    loaded(st, path, 1);
    ls_vault_t *sv = load(path);
    ls_err serr = {0};
    th_ok(ls_vault_secret_put(sv, st, "token", "s3cret", 6, &serr), &serr); /* data */
    ls_vault_close(sv);
    assert_int_equal(unlink(path), 0);
    char want[600];
    snprintf(want, sizeof want,
             "key file %s does not exist, and this store holds data sealed under a key (written "
             "under key 1)",
             path);
    refused(st, path, LS_ENOTFOUND, want);
    ls_store_close(st);

    /* A store of an older lodestoned (no key check), holding a secret. */
    st = new_store();
    char *old = new_key_file(0);
    ls_vault_t *v = load(old);
    ls_err err = {0};
    th_ok(ls_vault_secret_put(v, st, "token", "s3cret", 6, &err), &err);
    ls_vault_close(v);
    snprintf(want, sizeof want,
             "key file %s does not exist, and this store holds data sealed under a key", path);
    refused(st, path, LS_ENOTFOUND, want);
    ls_store_close(st);
    free(path), free(old);
}

static void test_keyload_wrong_key_refused(void **state)
{
    (void)state;
    ls_store_t *st = new_store();
    char *right = new_key_file(0), *wrong = new_key_file(0);
    loaded(st, right, 1);
    char want[600];
    snprintf(want, sizeof want, "key file %s does not open this store's data (written under key 1)",
             wrong);
    refused(st, wrong, LS_EAUTH, want);

    /* A copy of the key file from before a rotation lacks the key now
     * current, under which the check was written again. */
    char *stale = fresh("stale.key");
    copy_file(right, stale);
    ls_vault_t *v = load(right);
    ls_err err = {0};
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_check_write(v, st, &err), &err);
    ls_vault_close(v);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (written under key 2, which it does not "
             "hold)",
             stale);
    refused(st, stale, LS_EAUTH, want);
    loaded(st, right, 2);
    ls_store_close(st);
    free(right), free(wrong), free(stale);
}

/* ---- stores written before key checks ---- */

static void test_keyload_old_store_probed(void **state)
{
    (void)state;
    char *right = new_key_file(0), *wrong = new_key_file(0);
    char *stale = fresh("stale.key");
    copy_file(right, stale);
    ls_vault_t *v = load(right);
    ls_err err = {0};
    char want[800];
    ls_id id;

    /* One store per kind of sealed record: each alone decides. */
    ls_store_t *st = new_store();
    th_ok(ls_vault_secret_put(v, st, "token", "s3cret", 6, &err), &err);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (secret \"token\": sealed value does "
             "not authenticate (tampered, wrong key, or wrong associated data))",
             wrong);
    refused(st, wrong, LS_EAUTH, want);
    loaded(st, right, 1);
    ls_store_close(st);

    st = new_store();
    put_schedule(v, st, "nightly");
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (schedule \"nightly\": sealed value "
             "does not authenticate (tampered, wrong key, or wrong associated data))",
             wrong);
    refused(st, wrong, LS_EAUTH, want);
    loaded(st, right, 1);
    ls_store_close(st);

    st = new_store();
    put_run(v, st, 0x11, 0, &id);
    char text[LS_ID_TEXTLEN + 1];
    ls_id_format(&id, text);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (run %s: payload of event 1: sealed "
             "value does not authenticate (tampered, wrong key, or wrong associated data))",
             wrong, text);
    refused(st, wrong, LS_EAUTH, want);
    loaded(st, right, 1);
    ls_store_close(st);

    /* The oldest run opens with the stale copy, the newest (sealed after a
     * rotation) does not. */
    st = new_store();
    put_run(v, st, 0x11, 0, &id);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    put_run(v, st, 0x22, 0, &id);
    ls_id_format(&id, text);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (run %s: payload of event 1: sealed "
             "value names key 2, which this keyring does not hold)",
             stale, text);
    refused(st, stale, LS_EAUTH, want);
    loaded(st, right, 2);
    ls_store_close(st);
    ls_vault_close(v);
    free(right), free(wrong), free(stale);
}

static void test_keyload_old_store_nothing_sealed(void **state)
{
    (void)state;
    ls_err err = {0};
    /* Only unsealed records (a workflow source): nothing can be lost, any
     * key is taken and the check written. */
    ls_store_t *st = new_store();
    th_ok(ls_store_put(st, "\x17v1", 3, "source", 6, 0, &err), &err);
    char *any = new_key_file(0);
    loaded(st, any, 1);
    ls_store_close(st);

    /* Only a damaged sealed record: it says nothing of the key, so no check
     * is written (the next start probes again) but the start goes on. */
    st = new_store();
    ls_vault_t *v = load(any);
    ls_id id;
    put_run(v, st, 0x33, 1, &id);
    ls_vault_close(v);
    char *other = new_key_file(0);
    v = NULL;
    th_ok(ls_flow_key_load(&v, st, other, &err), &err);
    ls_vault_close(v);
    uint32_t kid = 0;
    assert_int_equal(ls_vault_check_key(st, &kid, &err), LS_ENOTFOUND);
    ls_store_close(st);
    free(any), free(other);
}

/* A record that does not authenticate under a key the key file holds,
 * beside records that open under it, is damage, not a wrong key: the key
 * is taken and the record reported. With nothing that opens, it is still
 * a refusal. */
static void test_keyload_old_store_damage_beside_good(void **state)
{
    (void)state;
    char *right = new_key_file(0), *wrong = new_key_file(0);
    ls_vault_t *v = load(right);
    ls_err err = {0};
    ls_id id;
    ls_store_t *st = new_store();
    th_ok(ls_vault_secret_put(v, st, "token", "s3cret", 6, &err), &err);
    put_schedule(v, st, "nightly");
    put_run(v, st, 0x11, 2, &id);
    ls_vault_close(v);
    char text[LS_ID_TEXTLEN + 1], want[800];
    ls_id_format(&id, text);

    snprintf(want, sizeof want,
             "key file %s does not open this store's data (secret \"token\": sealed value does "
             "not authenticate (tampered, wrong key, or wrong associated data))",
             wrong);
    refused(st, wrong, LS_EAUTH, want);

    ls_flow_key_report rep;
    v = NULL;
    th_ok(ls_flow_key_load_report(&v, st, right, &rep, &err), &err);
    ls_vault_close(v);
    assert_int_equal(rep.opened, 2);
    assert_int_equal(rep.damaged, 2); /* the run, from each end */
    assert_int_equal(rep.probed, 4);
    snprintf(want, sizeof want,
             "run %s: payload of event 1: sealed value does not authenticate (tampered, wrong "
             "key, or wrong associated data)",
             text);
    assert_string_equal(rep.first_damage, want);
    uint32_t kid = 0;
    th_ok(ls_vault_check_key(st, &kid, &err), &err);
    assert_int_equal(kid, 1);
    ls_store_close(st);

    /* The tampered run alone: nothing opens, refused. */
    st = new_store();
    v = load(right);
    put_run(v, st, 0x11, 2, &id);
    ls_vault_close(v);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (run %s: payload of event 1: sealed "
             "value does not authenticate (tampered, wrong key, or wrong associated data))",
             right, text);
    refused(st, right, LS_EAUTH, want);

    /* Beside it, a newer run under a key a stale copy lacks: refused,
     * naming that run, though the secret opens. */
    char *stale = fresh("stale.key");
    copy_file(right, stale);
    v = load(right);
    th_ok(ls_vault_secret_put(v, st, "token", "s3cret", 6, &err), &err);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    put_run(v, st, 0x22, 0, &id);
    ls_vault_close(v);
    ls_id_format(&id, text);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (run %s: payload of event 1: sealed "
             "value names key 2, which this keyring does not hold)",
             stale, text);
    refused(st, stale, LS_EAUTH, want);
    ls_store_close(st);
    free(right), free(wrong), free(stale);
}

/* A store read error while probing (a damaged table) is an unreadable
 * record, not a refusal: with a secret that opens, the key is taken and
 * the failed read reported. */
static void test_keyload_old_store_read_error(void **state)
{
    (void)state;
    char *right = new_key_file(0), *path = fresh("store");
    ls_store_opts o = {.create_if_missing = 1};
    ls_store_t *st = NULL;
    ls_err err = {0};
    th_ok(ls_store_open(&st, path, &o, &err), &err);
    ls_vault_t *v = load(right);
    th_ok(ls_vault_secret_put(v, st, "token", "s3cret", 6, &err), &err);
    ls_vault_close(v);
    /* A run of 40 events without payloads (passed over by the probe),
     * each with a name of 1000 letters that do not compress. LevelDB
     * passes over a damaged block and reports it at the end of the scan,
     * which the probe reaches within its 64 events. */
    ls_id id;
    memset(id.b, 0x44, LS_ID_BYTES);
    char name[1000];
    unsigned x = 12345;
    ls_buf k = LS_BUF_INIT, val = LS_BUF_INIT;
    for (uint64_t sq = 1; sq <= 40; sq++) {
        for (size_t i = 0; i < sizeof name; i++) {
            x = x * 1103515245u + 12345u;
            name[i] = (char)('a' + (x >> 16) % 26);
        }
        ls_event ev = {.type = LS_EV_TIMER_FIRED,
                       .seq = sq,
                       .time_ms = 1,
                       .name = name,
                       .name_len = sizeof name};
        th_ok(ls_history_key(&k, &id, sq, &err), &err);
        th_ok(ls_event_encode(&ev, &val, &err), &err);
        th_ok(ls_store_put(st, k.ptr, k.len, val.ptr, val.len, 0, &err), &err);
    }
    ls_buf_free(&k), ls_buf_free(&val);
    ls_store_close(st);
    th_ok(ls_store_open(&st, path, NULL, &err), &err); /* recovery makes a table */
    ls_store_close(st);
    th_damage_largest_table(path, 16384);
    th_ok(ls_store_open(&st, path, NULL, &err), &err);
    ls_flow_key_report rep;
    v = NULL;
    th_ok(ls_flow_key_load_report(&v, st, right, &rep, &err), &err);
    ls_vault_close(v);
    assert_int_equal(rep.opened, 1);
    assert_true(rep.damaged >= 1);
    assert_non_null(strstr(rep.first_damage, "reading the history: "));
    assert_non_null(strstr(rep.first_damage, "Corruption"));
    uint32_t kid = 0;
    th_ok(ls_vault_check_key(st, &kid, &err), &err);
    assert_int_equal(kid, 1);
    ls_store_close(st);
    free(right), free(path);
}

/* ---- allocation failures ---- */

typedef struct {
    ls_store_t *st;
    char *key_file;
    ls_buf before;
} af_ctx;

/* Each failure leaves the store as it was and no key file this call made
 * (checked after the failed allocation, so these allocations succeed). */
static ls_rc af_load(void *ud)
{
    af_ctx *c = ud;
    int had = exists(c->key_file);
    ls_vault_t *v = NULL;
    ls_err err = {0};
    ls_rc rc = ls_flow_key_load(&v, c->st, c->key_file, &err);
    if (rc != LS_OK) {
        ls_buf after = LS_BUF_INIT;
        snapshot(c->st, &after);
        assert_null(v);
        assert_int_equal(exists(c->key_file), had);
        assert_int_equal(after.len, c->before.len);
        assert_memory_equal(after.ptr, c->before.ptr, after.len);
        ls_buf_free(&after);
    }
    ls_vault_close(v);
    return rc;
}

/* The store has its key check now, under key 1. */
static void assert_checked(ls_store_t *st)
{
    uint32_t id = 0;
    ls_err err = {0};
    th_ok(ls_vault_check_key(st, &id, &err), &err);
    assert_int_equal(id, 1);
}

static void test_keyload_alloc_failures(void **state)
{
    (void)state;
    /* A new store, its key created here. */
    af_ctx c = {.st = new_store(), .key_file = fresh("af.key"), .before = LS_BUF_INIT};
    snapshot(c.st, &c.before);
    assert_true(th_each_alloc_failure(af_load, &c) >= 2);
    assert_checked(c.st);
    assert_true(exists(c.key_file));
    ls_store_close(c.st);
    free(c.key_file);

    /* An older store with one record of each kind, probed. */
    c.st = new_store();
    c.key_file = new_key_file(0);
    ls_vault_t *v = load(c.key_file);
    ls_err err = {0};
    ls_id id;
    th_ok(ls_vault_secret_put(v, c.st, "token", "s3cret", 6, &err), &err);
    put_schedule(v, c.st, "nightly");
    put_run(v, c.st, 0x11, 0, &id);
    ls_vault_close(v);
    snapshot(c.st, &c.before);
    assert_true(th_each_alloc_failure(af_load, &c) >= 6);
    assert_checked(c.st);
    ls_store_close(c.st);
    free(c.key_file);
    ls_buf_free(&c.before);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    (void)state;
    tdir = th_mkdtemp("flow_keyload");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_rmtree(tdir);
    free(tdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyload_new_store_creates_key),
        cmocka_unit_test(test_keyload_key_check_alone_is_a_new_store),
        cmocka_unit_test(test_keyload_missing_key_refused),
        cmocka_unit_test(test_keyload_wrong_key_refused),
        cmocka_unit_test(test_keyload_old_store_probed),
        cmocka_unit_test(test_keyload_old_store_nothing_sealed),
        cmocka_unit_test(test_keyload_old_store_damage_beside_good),
        cmocka_unit_test(test_keyload_old_store_read_error),
        cmocka_unit_test(test_keyload_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

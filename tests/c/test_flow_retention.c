/* SPDX-License-Identifier: MIT
 * Tests of retention (native/flow/retention.c) through a tiny C runner:
 * runs that ended before and after the cutoff, per-type retention, keep
 * forever, bounded batches, every key of a deleted run gone (the whole
 * store is scanned for its id), inbox entries of runs that no longer exist
 * gone while a running run's stay, running runs kept, a name reused after
 * deletion, the background thread, and allocation failures. Time is a
 * clock that moves only when the test says so; waits for the engine's
 * threads are bounded (10 s) and never asserted on.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/flow_int.h"
#include "flow/history.h"
#include "flow/retention.h"
#include "lodestone/ls_flow.h"
#include "lodestone/ls_id.h"
#include "ls_json.h"

#define WAIT_MS 10000
#define DAY_MS  (1000LL * 3600 * 24)

/* ---- the runner ----
 * quick, keep (30 days), forever (kept forever), short (1 hour): complete
 * at once. waits: waits for signal "go". rich: a step, a custom status, a
 * 5 ms sleep, signal "go", then completes. parent: starts detached child
 * "kid-1" (quick) and completes. */

static int is(const ls_flow_act *a, const char *type)
{
    return strcmp(ls_flow_act_type(a), type) == 0;
}

static const char *const types[] = {"quick", "keep", "forever", "short", "waits", "rich", "parent"};

static int r_has_type(void *ud, const char *type, size_t len)
{
    (void)ud;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i]) == len && memcmp(types[i], type, len) == 0) return 1;
    return 0;
}

static void r_list_types(void *ud, ls_buf *out)
{
    (void)ud;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        ls_buf_printf(out, NULL, "%s%s", i ? ", " : "", types[i]);
}

static int64_t r_retention_ms(void *ud, const char *type, size_t len)
{
    (void)ud;
    if (len == 4 && memcmp(type, "keep", 4) == 0) return 30 * DAY_MS;
    if (len == 7 && memcmp(type, "forever", 7) == 0) return LS_FLOW_KEEP_FOREVER;
    if (len == 5 && memcmp(type, "short", 5) == 0) return 3600000LL;
    return LS_FLOW_RETENTION_DEFAULT;
}

static void r_activate(void *ud, void *worker, ls_flow_act *a)
{
    (void)ud;
    (void)worker;
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    ls_flow_outcome oc = LS_FLOW_DONE;
    if (is(a, "rich")) {
        ls_flow_step_info info;
        if (!th_act_ok(a, ls_flow_act_step(a, "a", 1, &info, &out, &err), &err)) goto out;
        if (info.outcome == LS_FLOW_RUN &&
            !th_act_ok(a, ls_flow_act_step_done(a, "a", 1, info.attempt, "1", 1, &err), &err))
            goto out;
        if (!th_act_ok(a, ls_flow_act_set_status(a, "{\"stage\":\"x\"}", 13, &err), &err)) goto out;
        if (!th_act_ok(a, ls_flow_act_sleep(a, 5, &oc, &err), &err) || oc == LS_FLOW_WAIT) goto out;
    }
    if (is(a, "rich") || is(a, "waits")) {
        if (!th_act_ok(a, ls_flow_act_wait_signal(a, "go", 2, -1, &oc, &out, &err), &err) ||
            oc == LS_FLOW_WAIT)
            goto out;
    }
    if (is(a, "parent") &&
        !th_act_ok(a, ls_flow_act_child_start(a, "quick", 5, "kid-1", 5, NULL, 0, 1, &out, &err),
                   &err))
        goto out;
    th_act_ok(a, ls_flow_act_complete(a, "{\"ok\":true}", 11, &err), &err);
out:
    ls_buf_free(&out);
}

static const ls_flow_runner runner = {.worker_open = th_worker_open,
                                      .worker_close = th_worker_close,
                                      .activate = r_activate,
                                      .has_type = r_has_type,
                                      .list_types = r_list_types,
                                      .retention_ms = r_retention_ms};

/* ---- the environment ---- */

typedef struct {
    th_store_dir d;
    ls_flow_t *f;
    th_clock fc;
    int64_t retention_ms;
    int64_t interval_ms;
    unsigned batch;
    uint64_t deleted_sum;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "flow_retention");
    th_clock_init(&e->fc, ls_clock_wall_ms(NULL));
    e->retention_ms = DAY_MS;
    e->interval_ms = 3600000LL; /* the thread stays out of the way */
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
    ls_flow_opts o = {.store = e->d.st,
                      .vault = e->d.v,
                      .clock = &e->fc.clock,
                      .runner = &runner,
                      .workers = 2,
                      .retention_ms = e->retention_ms,
                      .retention_interval_ms = e->interval_ms,
                      .retention_batch = e->batch};
    assert_null(e->f);
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    if (run) th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_close(env *e)
{
    ls_flow_close(e->f);
    e->f = NULL;
}

static void start(env *e, const char *type, const char *name, const char *input, int *created)
{
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int c = -1;
    th_ok(ls_flow_start(e->f, type, strlen(type), name, name ? strlen(name) : 0, input,
                        input ? strlen(input) : 0, &run, &c, &err),
          &err);
    if (created) *created = c;
    ls_buf_free(&run);
}

/* Starts a run and returns its name (the id when unnamed): caller frees. */
static char *start_named(env *e, const char *type, const char *name)
{
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int c = -1;
    th_ok(ls_flow_start(e->f, type, strlen(type), name, name ? strlen(name) : 0, NULL, 0, &run, &c,
                        &err),
          &err);
    assert_int_equal(c, 1);
    json_t *j = NULL;
    th_ok(ls_json_parse((const char *)run.ptr, run.len, &j, &err), &err);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ls_buf_free(&run);
    return id;
}

static ls_flow_stats stats(env *e)
{
    ls_flow_stats s;
    ls_flow_get_stats(e->f, &s);
    return s;
}

/* Waits (bounded) until n runs have ended since open. */
static void wait_ended(env *e, uint64_t n)
{
    for (int i = 0; i < WAIT_MS; i++) {
        ls_flow_stats s = stats(e);
        if (s.completed + s.failed + s.cancelled + s.terminated >= n) return;
        th_nap_ms(1);
    }
    fail_msg("runs did not end within %d ms", WAIT_MS);
}

/* The run's status, or NULL when there is no such run (then the history
 * is gone too). */
static const char *status_of(env *e, const char *name, char buf[32])
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = ls_flow_describe(e->f, name, strlen(name), &out, &err);
    if (rc == LS_ENOTFOUND) {
        assert_int_equal(ls_flow_history(e->f, name, strlen(name), &out, &err), LS_ENOTFOUND);
        ls_buf_free(&out);
        return NULL;
    }
    th_ok(rc, &err);
    json_t *j = NULL;
    th_ok(ls_json_parse((const char *)out.ptr, out.len, &j, &err), &err);
    snprintf(buf, 32, "%s", json_string_value(json_object_get(j, "status")));
    json_decref(j);
    th_ok(ls_flow_history(e->f, name, strlen(name), &out, &err), &err);
    assert_non_null(strstr((const char *)out.ptr, "workflow_started"));
    ls_buf_free(&out);
    return buf;
}

static void assert_gone(env *e, const char *name)
{
    char b[32];
    const char *s = status_of(e, name, b);
    if (s) fail_msg("run %s is still there (%s)", name, s);
}

static void assert_status(env *e, const char *name, const char *want)
{
    char b[32];
    const char *s = status_of(e, name, b);
    if (s == NULL) fail_msg("run %s is gone, expected %s", name, want);
    assert_string_equal(s, want);
}

/* How many runs GET /v1/workflows lists (at most 1000). */
static size_t listed(env *e)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, NULL, NULL, 1000, NULL, &out, &err), &err);
    json_t *j = NULL;
    th_ok(ls_json_parse((const char *)out.ptr, out.len, &j, &err), &err);
    size_t n = json_array_size(json_object_get(j, "runs"));
    json_decref(j);
    ls_buf_free(&out);
    return n;
}

static flow_retention_result pass(env *e)
{
    flow_retention_result r;
    ls_err err = {0};
    th_ok(flow_retention_pass(e->f, &r, &err), &err);
    return r;
}

static void signal_go(env *e, const char *name)
{
    ls_err err = {0};
    th_ok(ls_flow_signal(e->f, name, strlen(name), "go", 2, NULL, 0, &err), &err);
}

/* Waits (bounded) until the run waits on something. */
static void wait_waiting(env *e, const char *name)
{
    for (int i = 0; i < WAIT_MS; i++) {
        ls_buf out = LS_BUF_INIT;
        ls_err err = {0};
        th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
        int w = strstr((const char *)out.ptr, "\"waiting\"") != NULL;
        ls_buf_free(&out);
        if (w) return;
        th_nap_ms(1);
    }
    fail_msg("run %s never waited", name);
}

/* ---- tests ---- */

/* Runs that ended more than the retention ago go; those that ended later
 * stay; the default is 7 days. */
static void test_retention_cutoff(void **state)
{
    env *e = *state;
    e->retention_ms = 0; /* the default: 7 days */
    eng_open(e, 1);
    char *old[3];
    for (int i = 0; i < 3; i++) old[i] = start_named(e, "quick", NULL);
    wait_ended(e, 3);
    th_clock_advance(&e->fc, 7 * DAY_MS - 60000);
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 0);
    char *young = start_named(e, "quick", "young");
    wait_ended(e, 4);
    assert_int_equal(listed(e), 4);
    th_clock_advance(&e->fc, 120000); /* the first three ended 7 days and a minute ago */
    r = pass(e);
    assert_int_equal(r.deleted, 3);
    assert_int_equal(r.batches, 1);
    for (int i = 0; i < 3; i++) assert_gone(e, old[i]);
    assert_status(e, young, "completed");
    assert_int_equal(listed(e), 1);
    ls_flow_stats s = stats(e);
    assert_int_equal(s.runs_deleted, 3);
    assert_int_equal(s.retention_passes, 2);
    /* Nothing more to do: a second pass deletes nothing. */
    assert_int_equal(pass(e).deleted, 0);
    th_clock_advance(&e->fc, 7 * DAY_MS);
    assert_int_equal(pass(e).deleted, 1);
    assert_gone(e, young);
    assert_int_equal(listed(e), 0);
    for (int i = 0; i < 3; i++) free(old[i]);
    free(young);
}

/* A type with a longer retention is kept while a shorter one goes, and the
 * walk goes on past it; a type kept forever stays. */
static void test_retention_per_type(void **state)
{
    env *e = *state;
    eng_open(e, 1); /* default: 1 day */
    start(e, "keep", "k1", NULL, NULL);
    wait_ended(e, 1);
    start(e, "forever", "f1", NULL, NULL);
    wait_ended(e, 2);
    th_clock_advance(&e->fc, 10);
    start(e, "quick", "q1", NULL, NULL);
    wait_ended(e, 3);
    start(e, "short", "s1", NULL, NULL);
    wait_ended(e, 4);
    th_clock_advance(&e->fc, 2 * 3600000LL); /* 2 hours: only short's hour has passed */
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 1);
    assert_gone(e, "s1");
    assert_status(e, "q1", "completed");
    th_clock_advance(&e->fc, DAY_MS); /* q1 goes; k1, older, is kept and passed over */
    r = pass(e);
    assert_int_equal(r.deleted, 1);
    assert_int_equal(r.kept, 2); /* k1, f1 */
    assert_gone(e, "q1");
    assert_status(e, "k1", "completed");
    assert_status(e, "f1", "completed");
    th_clock_advance(&e->fc, 30 * DAY_MS);
    r = pass(e);
    assert_int_equal(r.deleted, 1);
    assert_gone(e, "k1");
    th_clock_advance(&e->fc, 3650 * DAY_MS);
    assert_int_equal(pass(e).deleted, 0);
    assert_status(e, "f1", "completed");
    assert_int_equal(listed(e), 1);
}

/* With the default kept forever, only types with a retention of their own
 * go; a runner without retention_ms keeps everything. */
static void test_retention_forever(void **state)
{
    env *e = *state;
    e->retention_ms = LS_FLOW_KEEP_FOREVER;
    eng_open(e, 1);
    start(e, "quick", "q1", NULL, NULL);
    start(e, "keep", "k1", NULL, NULL);
    start(e, "short", "s1", NULL, NULL);
    wait_ended(e, 3);
    th_clock_advance(&e->fc, 3650 * DAY_MS);
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 2);
    assert_status(e, "q1", "completed");
    assert_gone(e, "k1");
    assert_gone(e, "s1");
    eng_close(e);

    /* A runner that says nothing about types: the default rules alone. */
    ls_flow_runner plain = runner;
    plain.retention_ms = NULL;
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st,
                      .vault = e->d.v,
                      .clock = &e->fc.clock,
                      .runner = &plain,
                      .retention_ms = LS_FLOW_KEEP_FOREVER};
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    th_clock_advance(&e->fc, 3650 * DAY_MS);
    r = pass(e);
    assert_int_equal(r.deleted + r.kept, 0); /* not even a walk */
    assert_status(e, "q1", "completed");
}

/* Many runs go in several writes of at most retention_batch runs. */
static void test_retention_batches(void **state)
{
    env *e = *state;
    e->batch = 7;
    eng_open(e, 1);
    for (int i = 0; i < 50; i++) start(e, "quick", NULL, NULL, NULL);
    wait_ended(e, 50);
    assert_int_equal(listed(e), 50);
    th_clock_advance(&e->fc, 2 * DAY_MS);
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 50);
    assert_int_equal(r.batches, 8); /* 7 x 7 + 1 */
    assert_int_equal(r.max_batch, 7);
    assert_int_equal(listed(e), 0);
    assert_int_equal(stats(e).runs_deleted, 50);
}

/* Keys and values of the whole store that hold the 16 bytes of id. */
static size_t keys_with(env *e, const ls_id *id)
{
    ls_store_iter_t *it = NULL;
    ls_err err = {0};
    const void *k, *v;
    size_t kl, vl, n = 0;
    ls_rc rc;
    th_ok(ls_store_iter_new(&it, e->d.st, NULL, &err), &err);
    while ((rc = ls_store_iter_next(it, &k, &kl, &v, &vl, &err)) == LS_OK)
        n += memmem(k, kl, id->b, LS_ID_BYTES) != NULL || memmem(v, vl, id->b, LS_ID_BYTES) != NULL;
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
    return n;
}

static void put_raw(env *e, const ls_buf *k, const char *v)
{
    ls_err err = {0};
    th_ok(ls_store_put(e->d.st, k->ptr, k->len, v, strlen(v), LS_STORE_SYNC, &err), &err);
}

/* An inbox entry for run id: signal `name` with a null payload (sealed:
 * a signal without one is refused). */
static void put_inbox(env *e, const ls_id *id, const char *name)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_err err = {0};
    ls_id arrival;
    ls_event ev = {.type = LS_EV_SIGNAL_RECEIVED,
                   .seq = 1,
                   .time_ms = 1,
                   .name = name,
                   .name_len = strlen(name)};
    th_ok(ls_id_new(&arrival, NULL, &err), &err);
    th_ok(flow_seal_event_with(e->d.v, id, &arrival, 3, &ev, "null", 4, &sealed, &err), &err);
    th_ok(ls_key_ns(&k, LS_NS_SIGNAL, &err), &err);
    th_ok(ls_buf_append(&k, id->b, LS_ID_BYTES, &err), &err);
    th_ok(ls_buf_append(&k, arrival.b, LS_ID_BYTES, &err), &err);
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, v.ptr, v.len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
}

/* The internal id of a named run, from the name index. */
static ls_id id_of(env *e, const char *name)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    ls_err err = {0};
    ls_id id;
    th_ok(ls_key_ns(&k, LS_NS_INDEX, &err), &err);
    th_ok(ls_buf_putc(&k, 'n', &err), &err);
    th_ok(ls_buf_append(&k, name, strlen(name), &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    assert_int_equal(v.len, LS_ID_BYTES);
    memcpy(id.b, v.ptr, LS_ID_BYTES);
    ls_buf_free(&k);
    ls_buf_free(&v);
    return id;
}

/* Leftovers a deleted run may have besides its own keys: an inbox entry
 * that arrived as it ended, a run-info key of another kind, the durable
 * key of the timer its history names. */
static void add_leftovers(env *e, const ls_id *id)
{
    ls_buf k = LS_BUF_INIT, pre = LS_BUF_INIT;
    ls_err err = {0};
    ls_id arrival;
    th_ok(ls_id_new(&arrival, NULL, &err), &err);
    th_ok(ls_key_ns(&k, LS_NS_SIGNAL, &err), &err);
    th_ok(ls_buf_append(&k, id->b, LS_ID_BYTES, &err), &err);
    th_ok(ls_buf_append(&k, arrival.b, LS_ID_BYTES, &err), &err);
    put_raw(e, &k, "late signal");
    ls_buf_clear(&k);
    th_ok(ls_key_ns(&k, LS_NS_RUNINFO, &err), &err);
    th_ok(ls_buf_append(&k, id->b, LS_ID_BYTES, &err), &err);
    th_ok(ls_buf_putc(&k, 'x', &err), &err);
    put_raw(e, &k, "something else");
    /* The timer of its TimerStarted event. */
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t kl, vl;
    int timers = 0;
    th_ok(ls_history_prefix(&pre, id, &err), &err);
    th_ok(ls_store_iter_prefix(&it, e->d.st, pre.ptr, pre.len, 0, &err), &err);
    while (ls_store_iter_next(it, &key, &kl, &val, &vl, &err) == LS_OK) {
        ls_event ev;
        th_ok(ls_event_decode(val, vl, &ev, &err), &err);
        if (ev.type != LS_EV_TIMER_STARTED) continue;
        ls_buf_clear(&k);
        th_ok(ls_key_ns(&k, LS_NS_TIMER, &err), &err);
        th_ok(ls_key_i64(&k, ev.due_ms, &err), &err);
        th_ok(ls_buf_append(&k, id->b, LS_ID_BYTES, &err), &err);
        th_ok(ls_key_u64(&k, ev.seq, &err), &err);
        put_raw(e, &k, "");
        timers++;
    }
    ls_store_iter_free(it);
    assert_int_equal(timers, 1);
    ls_buf_free(&k);
    ls_buf_free(&pre);
}

/* Every key of a deleted run is gone (record, history, indexes, custom
 * status, parent link, leftovers), other runs are whole, and the store
 * opens again. */
static void test_retention_every_key(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start(e, "rich", "rich-1", NULL, NULL);
    wait_waiting(e, "rich-1");
    th_clock_advance(&e->fc, 10); /* the 5 ms sleep is over */
    wait_waiting(e, "rich-1");
    signal_go(e, "rich-1");
    start(e, "parent", "p-1", NULL, NULL);
    wait_ended(e, 3); /* rich-1, p-1, kid-1 */
    start(e, "keep", "other", NULL, NULL);
    wait_ended(e, 4);
    assert_status(e, "rich-1", "completed");
    assert_status(e, "kid-1", "completed");
    ls_id rich = id_of(e, "rich-1"), kid = id_of(e, "kid-1"), parent = id_of(e, "p-1"),
          other = id_of(e, "other");
    add_leftovers(e, &rich);
    ls_id nobody;
    ls_err err = {0};
    th_ok(ls_id_new(&nobody, NULL, &err), &err);
    put_inbox(e, &nobody, "late"); /* as a child's end reaching a deleted parent */
    assert_int_equal(keys_with(e, &nobody), 1);
    size_t before = keys_with(e, &rich);
    assert_true(before >= 15);            /* 9 events, record, 4 indexes, status, leftovers */
    assert_true(keys_with(e, &kid) >= 6); /* with its parent link */
    size_t other_keys = keys_with(e, &other);
    th_clock_advance(&e->fc, 2 * DAY_MS);
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 3);
    assert_int_equal(r.orphans, 1);
    assert_int_equal(keys_with(e, &nobody), 0);
    assert_int_equal(keys_with(e, &rich), 0);
    assert_int_equal(keys_with(e, &kid), 0);
    assert_int_equal(keys_with(e, &parent), 0);
    assert_int_equal(keys_with(e, &other), other_keys);
    assert_gone(e, "rich-1");
    assert_gone(e, "kid-1");
    assert_gone(e, "p-1");
    assert_status(e, "other", "completed");
    /* A restart finds a consistent store. */
    eng_close(e);
    th_store_close(&e->d.st, &e->d.v);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    eng_open(e, 1);
    assert_int_equal(listed(e), 1);
    assert_status(e, "other", "completed");
}

/* A run that has not ended is never deleted, however old; once it ends,
 * its retention counts from its end. */
static void test_retention_running_kept(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start(e, "waits", "w1", NULL, NULL);
    start(e, "quick", "q1", NULL, NULL);
    wait_ended(e, 1);
    wait_waiting(e, "w1");
    /* An inbox entry the run has not taken yet is its own, not an orphan. */
    ls_id w1 = id_of(e, "w1");
    put_inbox(e, &w1, "early");
    th_clock_advance(&e->fc, 30 * DAY_MS);
    flow_retention_result r = pass(e);
    assert_int_equal(r.deleted, 1);
    assert_int_equal(r.orphans, 0);
    assert_gone(e, "q1");
    assert_status(e, "w1", "running");
    signal_go(e, "w1");
    wait_ended(e, 2);
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_history(e->f, "w1", 2, &out, &err), &err);
    assert_non_null(strstr((const char *)out.ptr, "\"name\":\"early\""));
    ls_buf_free(&out);
    assert_int_equal(pass(e).deleted, 0);
    assert_status(e, "w1", "completed");
    th_clock_advance(&e->fc, DAY_MS + 1);
    assert_int_equal(pass(e).deleted, 1);
    assert_gone(e, "w1");
}

/* Once deleted, a run's name is free: a start under it makes a new run. */
static void test_retention_name_reuse(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    int created = -1;
    start(e, "quick", "order-1", "{\"n\":1}", &created);
    assert_int_equal(created, 1);
    wait_ended(e, 1);
    start(e, "quick", "order-1", "{\"n\":2}", &created);
    assert_int_equal(created, 0); /* still there: the same run */
    th_clock_advance(&e->fc, 2 * DAY_MS);
    assert_int_equal(pass(e).deleted, 1);
    start(e, "quick", "order-1", "{\"n\":2}", &created);
    assert_int_equal(created, 1);
    wait_ended(e, 2);
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_describe(e->f, "order-1", 7, &out, &err), &err);
    json_t *j = NULL;
    th_ok(ls_json_parse((const char *)out.ptr, out.len, &j, &err), &err);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "input"), "n")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "completed");
    json_decref(j);
    ls_buf_free(&out);
    assert_int_equal(listed(e), 1);
}

/* The engine's own thread runs passes every retention_interval_ms. */
static void test_retention_thread(void **state)
{
    env *e = *state;
    e->interval_ms = 10;
    eng_open(e, 1);
    for (int i = 0; i < 5; i++) start(e, "quick", NULL, NULL, NULL);
    start(e, "waits", "w1", NULL, NULL);
    wait_ended(e, 5);
    th_clock_advance(&e->fc, 2 * DAY_MS);
    int i;
    /* A pass counts once it is over, after its deletions. */
    for (i = 0; i < WAIT_MS && (stats(e).runs_deleted < 5 || stats(e).retention_passes < 1); i++)
        th_nap_ms(1);
    assert_int_equal(stats(e).runs_deleted, 5);
    assert_true(stats(e).retention_passes >= 1);
    assert_int_equal(listed(e), 1);
    assert_status(e, "w1", "running");
    eng_close(e); /* joins the thread */
}

/* A pass whose allocation fails returns LS_ENOMEM; what it deleted before
 * (its result says) stays deleted, and the passes that follow delete the
 * rest: every run exactly once, none listed at the end. Engine threads are
 * not running (their allocations would take the failures). */
static ls_rc pass_under_failure(void *ud)
{
    env *e = ud;
    flow_retention_result r;
    ls_err err = {0};
    ls_rc rc = flow_retention_pass(e->f, &r, &err);
    e->deleted_sum += r.deleted; /* a failure after a write: those are gone */
    return rc;
}

static void test_retention_alloc_failures(void **state)
{
    env *e = *state;
    e->batch = 1000;
    eng_open(e, 1);
    start(e, "rich", "rich-1", NULL, NULL);
    wait_waiting(e, "rich-1");
    th_clock_advance(&e->fc, 10);
    wait_waiting(e, "rich-1");
    signal_go(e, "rich-1");
    start(e, "quick", "q1", NULL, NULL);
    start(e, "quick", "q2", NULL, NULL);
    wait_ended(e, 3);
    eng_close(e);
    eng_open(e, 0);
    th_clock_advance(&e->fc, 2 * DAY_MS);
    long points = th_each_alloc_failure(pass_under_failure, e);
    assert_true(points > 5);
    assert_int_equal(e->deleted_sum, 3);
    assert_int_equal(listed(e), 0);
}

static void on_answer_end(void *ud)
{
    atomic_store((atomic_int *)ud, 1);
}

/* A run whose end was watched has its answer kept in memory (the results
 * cache); once retention deletes the run, that answer is gone too. */
static void test_retention_forgets_answers(void **state)
{
    env *e = *state;
    e->retention_ms = 0; /* the default: 7 days */
    eng_open(e, 1);
    char *id = start_named(e, "waits", NULL);
    wait_waiting(e, id);
    atomic_int fired = 0;
    uint64_t w;
    ls_err err = {0};
    th_ok(ls_flow_watch(e->f, id, strlen(id), on_answer_end, &fired, &w, &err), &err);
    signal_go(e, id);
    for (int i = 0; i < WAIT_MS && !atomic_load(&fired); i++) th_nap_ms(1);
    assert_int_equal(atomic_load(&fired), 1);
    assert_int_equal(flow_results_count(e->f->results), 1);
    ls_buf out = LS_BUF_INIT;
    int done = 0;
    th_ok(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), &err);
    assert_int_equal(done, 1);
    assert_non_null(strstr((const char *)out.ptr, "\"status\":\"completed\""));
    th_clock_advance(&e->fc, 7 * DAY_MS + 60000);
    assert_int_equal(pass(e).deleted, 1);
    assert_int_equal(flow_results_count(e->f->results), 0);
    assert_int_equal(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), LS_ENOTFOUND);
    ls_buf_free(&out);
    free(id);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_retention_cutoff),         T(test_retention_per_type),
        T(test_retention_forever),        T(test_retention_batches),
        T(test_retention_every_key),      T(test_retention_running_kept),
        T(test_retention_name_reuse),     T(test_retention_thread),
        T(test_retention_alloc_failures), T(test_retention_forgets_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

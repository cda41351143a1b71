/* SPDX-License-Identifier: MIT
 * Tests of schedules (native/flow/schedule.c, schedule_plan.c): the due
 * fire and what was missed for a table of expressions (month ends, leap
 * days, year ends), the overlap decision, fire ids, definition checks, and
 * the engine with a small C runner on a clock that moves only when told:
 * fires on time with deterministic ids, overlap skip / buffer_one / allow,
 * catchup one / none after a simulated downtime, a fire attempted twice
 * across a crash, the API calls and file schedules. Steps are driven with
 * flow_sched_tick (the scheduler thread does the same; results do not
 * depend on who looks first). Waits are bounded (10 s) and never timed.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "flow/schedule.h"
#include "lodestone/ls_flow.h"
#include "ls_json.h"

#define WAIT_MS 10000
#define T0      INT64_C(1800000000000) /* 2027-01-15T08:00:00Z, a whole hour */

/* ---- the pure parts ---- */

typedef struct {
    const char *cron;
    int64_t anchor, now;
    int after_downtime, catchup;
    int64_t fire;
    uint64_t missed;
    int64_t anchor_after, next;
} plan_case;

static void test_schedule_plan_table(void **state)
{
    (void)state;
    const int64_t S = 1000, M = 60 * S, H = 60 * M;
    const plan_case cases[] = {
        /* nothing due yet */
        {"@every 10s", T0, T0 + 5 * S, 0, FLOW_CATCHUP_ONE, 0, 0, T0, T0 + 10 * S},
        /* due exactly now */
        {"@every 10s", T0, T0 + 10 * S, 0, FLOW_CATCHUP_ONE, T0 + 10 * S, 0, T0 + 10 * S,
         T0 + 20 * S},
        /* a late look: the latest fires, the others are passed over */
        {"@every 10s", T0, T0 + 35 * S, 0, FLOW_CATCHUP_NONE, T0 + 30 * S, 2, T0 + 30 * S,
         T0 + 40 * S},
        /* after a downtime: catchup one fires the latest, none fires nothing */
        {"@every 10s", T0, T0 + 35 * S, 1, FLOW_CATCHUP_ONE, T0 + 30 * S, 2, T0 + 30 * S,
         T0 + 40 * S},
        {"@every 10s", T0, T0 + 35 * S, 1, FLOW_CATCHUP_NONE, 0, 3, T0 + 30 * S, T0 + 40 * S},
        /* the 31st: February has none, so after 2024-01-31 comes 2024-03-31 */
        {"0 0 31 * *", 1706659200000, 1711843200000 - S, 1, FLOW_CATCHUP_ONE, 0, 0, 1706659200000,
         1711843200000},
        {"0 0 31 * *", 1706659200000, 1711843200000, 1, FLOW_CATCHUP_ONE, 1711843200000, 0,
         1711843200000, 1717113600000}, /* then 2024-05-31: April has no 31st */
        /* leap days: 2024-02-29 and 2028-02-29 missed; one fires 2028's */
        {"0 0 29 2 *", 1677628800000, 1835481600000, 1, FLOW_CATCHUP_ONE, 1835395200000, 1,
         1835395200000, 1961625600000},
        {"0 0 29 2 *", 1677628800000, 1835481600000, 1, FLOW_CATCHUP_NONE, 0, 2, 1835395200000,
         1961625600000},
        /* across a year end */
        {"@hourly", 1704067199000, 1704067200000, 0, FLOW_CATCHUP_ONE, 1704067200000, 0,
         1704067200000, 1704067200000 + H},
        /* every 15 minutes, an hour down */
        {"*/15 * * * *", T0, T0 + H + M, 1, FLOW_CATCHUP_NONE, 0, 4, T0 + H, T0 + H + 15 * M},
        {"*/15 * * * *", T0, T0 + H + M, 1, FLOW_CATCHUP_ONE, T0 + H, 3, T0 + H, T0 + H + 15 * M},
        /* @every counts from the epoch, not from the anchor */
        {"@every 1m", T0 + 30 * S, T0 + 95 * S, 0, FLOW_CATCHUP_ONE, T0 + 60 * S, 0, T0 + 60 * S,
         T0 + 120 * S},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const plan_case *c = &cases[i];
        ls_cron cron;
        ls_err err = {0};
        th_ok(ls_cron_parse(c->cron, strlen(c->cron), &cron, &err), &err);
        flow_sched_plan p;
        flow_sched_plan_at(&cron, NULL, c->anchor, c->now, c->after_downtime, c->catchup, &p);
        int64_t want_next = c->next;
        if (p.fire != c->fire || p.missed != c->missed || p.anchor != c->anchor_after ||
            p.next != want_next)
            fail_msg("case %zu (%s): fire %lld missed %llu anchor %lld next %lld; expected "
                     "%lld %llu %lld %lld",
                     i, c->cron, (long long)p.fire, (unsigned long long)p.missed,
                     (long long)p.anchor, (long long)p.next, (long long)c->fire,
                     (unsigned long long)c->missed, (long long)c->anchor_after,
                     (long long)want_next);
    }

    /* 02:30 Berlin, down from the 27th to 03:00 CEST on the 30th: the 28th,
     * the 29th (no 02:30 that day: 03:00 CEST) and the 30th are due; the
     * 30th's fires, two are missed, and the next is the 31st. */
    ls_cron daily;
    ls_err err = {0};
    th_ok(ls_cron_parse("30 2 * * *", 10, &daily, &err), &err);
    flow_sched_plan p;
    flow_sched_plan_at(&daily, "Europe/Berlin", 1774575000000, 1774832400000, 1, FLOW_CATCHUP_ONE,
                       &p);
    assert_int_equal(p.fire, 1774830600000); /* 2026-03-30 00:30 UTC */
    assert_int_equal(p.missed, 2);
    assert_int_equal(p.anchor, 1774830600000);
    assert_int_equal(p.next, 1774917000000); /* 2026-03-31 00:30 UTC */
}

static void test_schedule_overlap_decisions(void **state)
{
    (void)state;
    /* overlap, previous still running, a buffered fire waits -> action */
    static const int table[][4] = {
        {FLOW_OVERLAP_SKIP, 0, 0, FLOW_SCHED_START},
        {FLOW_OVERLAP_SKIP, 1, 0, FLOW_SCHED_SKIP},
        {FLOW_OVERLAP_SKIP, 1, 1, FLOW_SCHED_SKIP},
        {FLOW_OVERLAP_BUFFER_ONE, 0, 0, FLOW_SCHED_START},
        {FLOW_OVERLAP_BUFFER_ONE, 1, 0, FLOW_SCHED_BUFFER},
        {FLOW_OVERLAP_BUFFER_ONE, 1, 1, FLOW_SCHED_SKIP},
        {FLOW_OVERLAP_ALLOW, 0, 0, FLOW_SCHED_START},
        {FLOW_OVERLAP_ALLOW, 1, 0, FLOW_SCHED_START},
        {FLOW_OVERLAP_ALLOW, 1, 1, FLOW_SCHED_START},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(flow_sched_decide(table[i][0], table[i][1], table[i][2]), table[i][3]);
}

static void test_schedule_fire_ids(void **state)
{
    (void)state;
    char id[FLOW_SCHED_NAMEMAX + FLOW_SCHED_IDSUFFIX + 1];
    assert_int_equal(flow_sched_fire_id("nightly", T0 + 10000, id, sizeof id), 24);
    assert_string_equal(id, "nightly@20270115T080010Z");
    flow_sched_fire_id("leap", 951782400000 + 999, id, sizeof id); /* ms are cut */
    assert_string_equal(id, "leap@20000229T000000Z");
    flow_sched_fire_id("e", 0, id, sizeof id);
    assert_string_equal(id, "e@19700101T000000Z");
    char longest[FLOW_SCHED_NAMEMAX + 1];
    memset(longest, 'a', FLOW_SCHED_NAMEMAX);
    longest[FLOW_SCHED_NAMEMAX] = '\0';
    assert_int_equal(flow_sched_fire_id(longest, T0, id, sizeof id),
                     FLOW_SCHED_NAMEMAX + FLOW_SCHED_IDSUFFIX);
}

/* Parses def (JSON) and expects LS_EINVAL with a message containing want. */
static void def_fails(const char *def, const char *want)
{
    json_t *o = NULL;
    ls_err err = {0};
    th_ok(ls_json_parse(def, strlen(def), &o, &err), &err);
    flow_sched_def d;
    ls_rc rc = flow_sched_def_parse(o, NULL, &d, &err);
    json_decref(o);
    if (rc != LS_EINVAL) fail_msg("%s: expected EINVAL, got %s", def, ls_rc_name(rc));
    if (strstr(err.msg, want) == NULL) fail_msg("%s: [%s] not in [%s]", def, want, err.msg);
    assert_null(d.name);
}

static void test_schedule_definitions(void **state)
{
    (void)state;
    json_t *o = NULL;
    ls_err err = {0};
    const char *ok = "{\"name\":\"n-1\",\"workflow\":\"quick\",\"cron\":\"*/15 * * * *\"}";
    th_ok(ls_json_parse(ok, strlen(ok), &o, &err), &err);
    flow_sched_def d;
    th_ok(flow_sched_def_parse(o, NULL, &d, &err), &err);
    json_decref(o);
    assert_string_equal(d.name, "n-1");
    assert_int_equal(d.overlap, FLOW_OVERLAP_SKIP); /* defaults */
    assert_int_equal(d.catchup, FLOW_CATCHUP_ONE);
    assert_null(d.input);
    flow_sched_def_free(&d);

    const char *full = "{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@every 30s\",\"timezone\":"
                       "\"UTC\",\"overlap\":\"allow\",\"catchup\":\"none\",\"input\":{\"b\":1,"
                       "\"a\":[true]}}";
    th_ok(ls_json_parse(full, strlen(full), &o, &err), &err);
    th_ok(flow_sched_def_parse(o, NULL, &d, &err), &err);
    json_decref(o);
    assert_int_equal(d.overlap, FLOW_OVERLAP_ALLOW);
    assert_int_equal(d.catchup, FLOW_CATCHUP_NONE);
    assert_string_equal(d.input, "{\"a\":[true],\"b\":1}");
    assert_int_equal(d.cron.every_ms, 30000);
    assert_null(d.timezone); /* UTC */
    flow_sched_def_free(&d);

    /* A named zone is kept, and part of what makes two definitions equal. */
    const char *paris = "{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"0 9 * * *\",\"timezone\":"
                        "\"Europe/Paris\"}";
    flow_sched_def p1, p2;
    th_ok(ls_json_parse(paris, strlen(paris), &o, &err), &err);
    th_ok(flow_sched_def_parse(o, NULL, &p1, &err), &err);
    json_decref(o);
    assert_string_equal(p1.timezone, "Europe/Paris");
    const char *utc = "{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"0 9 * * *\"}";
    th_ok(ls_json_parse(utc, strlen(utc), &o, &err), &err);
    th_ok(flow_sched_def_parse(o, NULL, &p2, &err), &err);
    json_decref(o);
    assert_false(flow_sched_def_equal(&p1, &p2));
    o = json_object();
    th_ok(flow_sched_def_to_json(&p1, o, &err), &err);
    assert_string_equal(json_string_value(json_object_get(o, "timezone")), "Europe/Paris");
    json_decref(o);
    flow_sched_def_free(&p1);
    flow_sched_def_free(&p2);

    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"* * * *\"}", "cron \"* * * *\"");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"61 * * * *\"}", "minute");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"0 0 30 2 *\"}", "never fires");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\"}", "cron: is required");
    def_fails("{\"name\":\"n\",\"cron\":\"@daily\"}", "workflow: is required");
    def_fails("{\"workflow\":\"w\",\"cron\":\"@daily\"}", "name: is required");
    def_fails("{\"name\":\"n@1\",\"workflow\":\"w\",\"cron\":\"@daily\"}",
              "name: character 2 (0x40) is not allowed");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\\u0000x\"}",
              "cron: must not contain \\u0000");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\",\"overlap\":\"skip\\u0000\"}",
              "overlap: must not contain \\u0000");
    def_fails("{\"name\":\"..\",\"workflow\":\"w\",\"cron\":\"@daily\"}",
              "name: \"..\" is not allowed: a URL reads it as a path step");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\",\"timezone\":"
              "\"Europe/Pariss\"}",
              "timezone: unknown zone \"Europe/Pariss\"");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\",\"overlap\":\"queue\"}",
              "overlap: must be skip, buffer_one or allow, got \"queue\"");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\",\"catchup\":\"all\"}",
              "catchup: must be one or none, got \"all\"");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":\"@daily\",\"every\":1}",
              "every: unknown field");
    def_fails("{\"name\":\"n\",\"workflow\":\"w\",\"cron\":5}", "cron: must be a string");
    def_fails("[1]", "schedule: must be an object");
    char big[300];
    memset(big, 'x', sizeof big);
    snprintf(big, sizeof big, "{\"name\":\"%0101d\",\"workflow\":\"w\",\"cron\":\"@daily\"}", 0);
    def_fails(big, "name: must be 1 to 100 characters, got 101");

    /* The workflow is a type's name: up to 200 characters (a schedule's
     * name stays within 100, for its fire ids), and never "." or "..". */
    char wf[400];
    snprintf(wf, sizeof wf, "{\"name\":\"n\",\"workflow\":\"%0200d\",\"cron\":\"@daily\"}", 0);
    th_ok(ls_json_parse(wf, strlen(wf), &o, &err), &err);
    th_ok(flow_sched_def_parse(o, NULL, &d, &err), &err);
    json_decref(o);
    assert_int_equal(strlen(d.workflow), 200);
    flow_sched_def_free(&d);
    snprintf(wf, sizeof wf, "{\"name\":\"n\",\"workflow\":\"%0201d\",\"cron\":\"@daily\"}", 0);
    def_fails(wf, "workflow: must be 1 to 200 characters, got 201");
    def_fails("{\"name\":\"n\",\"workflow\":\"..\",\"cron\":\"@daily\"}",
              "workflow: \"..\" is not allowed: a URL reads it as a path step");
    def_fails("{\"name\":\"n\",\"workflow\":\"a/b\",\"cron\":\"@daily\"}",
              "workflow: character 2 (0x2f) is not allowed; use letters, digits and - _ . :");
}

/* ---- the engine, with a C runner ---- */

/* quick: ends at once, its output is its input; hold: waits for signal
 * "done", then ends. */
static int r_has_type(void *ud, const char *type, size_t len)
{
    (void)ud;
    return (len == 5 && memcmp(type, "quick", 5) == 0) ||
           (len == 4 && memcmp(type, "hold", 4) == 0);
}

static void r_list_types(void *ud, ls_buf *out)
{
    (void)ud;
    ls_buf_append(out, "hold,quick", 10, NULL);
}

static void r_activate(void *ud, void *worker, ls_flow_act *a)
{
    (void)ud;
    (void)worker;
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    if (strcmp(ls_flow_act_type(a), "hold") == 0) {
        ls_flow_outcome oc;
        if (ls_flow_act_wait_signal(a, "done", 4, -1, &oc, &out, &err) != LS_OK ||
            oc == LS_FLOW_WAIT)
            goto out;
        if (oc == LS_FLOW_CANCELLED) {
            ls_flow_act_cancelled(a, &err);
            goto out;
        }
    }
    if (ls_flow_act_input(a, &out, &err) == LS_OK)
        ls_flow_act_complete(a, (const char *)out.ptr, out.len, &err);
out:
    ls_buf_free(&out);
}

static const ls_flow_runner runner = {.worker_open = th_worker_open,
                                      .worker_close = th_worker_close,
                                      .activate = r_activate,
                                      .has_type = r_has_type,
                                      .list_types = r_list_types};

typedef struct {
    th_store_dir d;
    ls_flow_t *f;
    th_clock fc;
    pthread_mutex_t log_mu;
    char log[8192]; /* the engine's log lines as they fit (not through ls_malloc,
                     * which the allocation failure tests swap) */
    size_t log_len;
    int system_clock;   /* engines use the system clock instead of fc */
    size_t max_payload; /* the engine's --max-payload; 0: its default */
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "flow_schedule");
    th_clock_init(&e->fc, T0);
    pthread_mutex_init(&e->log_mu, NULL);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    ls_flow_close(e->f);
    th_store_dir_close(&e->d);
    pthread_mutex_destroy(&e->log_mu);
    free(e);
    return 0;
}

static void on_log(void *ud, int level, const char *run, const char *msg)
{
    env *e = ud;
    (void)level;
    (void)run;
    pthread_mutex_lock(&e->log_mu);
    int n = snprintf(e->log + e->log_len, sizeof e->log - e->log_len, "%s\n", msg);
    if (n > 0 && (size_t)n < sizeof e->log - e->log_len) e->log_len += (size_t)n;
    pthread_mutex_unlock(&e->log_mu);
}

static int log_has(env *e, const char *text)
{
    pthread_mutex_lock(&e->log_mu);
    int has = strstr(e->log, text) != NULL;
    pthread_mutex_unlock(&e->log_mu);
    return has;
}

/* Opens the engine over e's store; with run, starts its threads (the
 * scheduler's among them). */
static void eng_open_run(env *e, int run)
{
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st,
                      .vault = e->d.v,
                      .clock = e->system_clock ? NULL : &e->fc.clock,
                      .runner = &runner,
                      .workers = 2,
                      .max_payload = e->max_payload,
                      .log = on_log,
                      .log_ud = e};
    assert_null(e->f);
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    if (run) th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_open(env *e)
{
    eng_open_run(e, 1);
}

static void eng_run(env *e)
{
    ls_err err = {0};
    th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_close(env *e)
{
    ls_flow_close(e->f);
    e->f = NULL;
}

static json_t *parse_buf(const ls_buf *b)
{
    json_t *j = NULL;
    ls_err err = {0};
    th_ok(ls_json_parse((const char *)b->ptr, b->len, &j, &err), &err);
    return j;
}

/* Puts a schedule (API source) and returns its object. */
static json_t *put(env *e, const char *def, int *created)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_schedule_put(e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, &out, created, &err),
          &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    return j;
}

static json_t *get_sched(env *e, const char *name)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_schedule_get(e->f, name, strlen(name), &out, &err), &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    return j;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL) fail_msg("field \"%s\" is missing or not a string", key);
    return s;
}

static json_int_t jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) fail_msg("field \"%s\" is missing or not an integer", key);
    return json_integer_value(v);
}

/* The ids of every run, oldest first, joined by spaces. */
static void run_ids(env *e, char *out, size_t cap)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, NULL, NULL, 1000, NULL, &b, &err), &err);
    json_t *j = parse_buf(&b);
    ls_buf_free(&b);
    json_t *runs = json_object_get(j, "runs");
    out[0] = '\0';
    for (size_t i = json_array_size(runs); i-- > 0;) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? " " : "", jstr(json_array_get(runs, i), "id"));
    }
    json_decref(j);
}

static void status_of(env *e, const char *name, char *out)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_describe(e->f, name, strlen(name), &b, &err), &err);
    json_t *j = parse_buf(&b);
    snprintf(out, 32, "%s", jstr(j, "status"));
    json_decref(j);
    ls_buf_free(&b);
}

/* Waits (bounded) until the run has ended and left the engine's memory
 * (a watch fires then): from then on a schedule sees it as not running. */
static void wait_ended(env *e, const char *name)
{
    th_wait_run_end(e->f, name, WAIT_MS);
}

static void end_hold(env *e, const char *name)
{
    ls_err err = {0};
    th_ok(ls_flow_signal(e->f, name, strlen(name), "done", 4, NULL, 0, &err), &err);
    wait_ended(e, name);
}

static void check_ids(env *e, const char *want)
{
    char ids[4096];
    run_ids(e, ids, sizeof ids);
    assert_string_equal(ids, want);
}

/* Each run of the list has exactly one workflow_started event. */
static void started_once(env *e, const char *name)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_history(e->f, name, strlen(name), &b, &err), &err);
    json_t *j = parse_buf(&b);
    ls_buf_free(&b);
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(json_object_get(j, "events"), i, ev)
    {
        if (strcmp(jstr(ev, "type"), "workflow_started") == 0) n++;
    }
    json_decref(j);
    assert_int_equal(n, 1);
}

static void test_schedule_fires_with_deterministic_ids(void **state)
{
    env *e = *state;
    eng_open(e);
    int created = 0;
    json_t *s = put(e,
                    "{\"name\":\"tick\",\"workflow\":\"quick\",\"cron\":\"@every 10s\","
                    "\"input\":{\"n\":7}}",
                    &created);
    assert_int_equal(created, 1);
    assert_string_equal(jstr(s, "source"), "api");
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:00:10.000Z");
    assert_string_equal(jstr(s, "timezone"), "UTC");
    assert_string_equal(jstr(s, "overlap"), "skip");
    assert_string_equal(jstr(s, "catchup"), "one");
    assert_null(json_object_get(s, "last_fire"));
    json_decref(s);

    flow_sched_tick(e->f); /* nothing due yet */
    check_ids(e, "");
    th_clock_advance(&e->fc, 9999);
    flow_sched_tick(e->f);
    check_ids(e, "");
    th_clock_advance(&e->fc, 1);
    int64_t next = flow_sched_tick(e->f);
    assert_int_equal(next, T0 + 20000);
    check_ids(e, "tick@20270115T080010Z");
    wait_ended(e, "tick@20270115T080010Z");
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_describe(e->f, "tick@20270115T080010Z", 21, &b, &err), &err);
    json_t *run = parse_buf(&b);
    ls_buf_free(&b);
    assert_string_equal(jstr(run, "type"), "quick");
    assert_int_equal(jint(json_object_get(run, "output"), "n"), 7); /* the schedule's input */
    json_decref(run);

    s = get_sched(e, "tick");
    assert_string_equal(jstr(s, "last_fire"), "2027-01-15T08:00:10.000Z");
    assert_string_equal(jstr(s, "last_outcome"), "started");
    assert_string_equal(jstr(s, "last_run"), "tick@20270115T080010Z");
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:00:20.000Z");
    assert_int_equal(jint(s, "fires_started"), 1);
    json_decref(s);

    /* The next two fire times, one look each (each run ends before the
     * next fire: overlap skip would pass a fire over otherwise). */
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    wait_ended(e, "tick@20270115T080020Z");
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    check_ids(e, "tick@20270115T080010Z tick@20270115T080020Z tick@20270115T080030Z");
    ls_flow_schedule_stats st;
    ls_flow_schedule_get_stats(e->f, &st);
    assert_int_equal(st.schedules, 1);
    assert_int_equal(st.fires_started, 3);
    assert_int_equal(st.fires_skipped, 0);
    assert_int_equal(st.fires_missed, 0);
    eng_close(e);
}

/* A schedule whose previous run still runs. */
static void test_schedule_overlap_skip(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e, "{\"name\":\"s\",\"workflow\":\"hold\",\"cron\":\"@every 10s\"}", NULL));
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f); /* s@..10 still holds: skipped */
    check_ids(e, "s@20270115T080010Z");
    json_t *s = get_sched(e, "s");
    assert_string_equal(jstr(s, "last_outcome"), "skipped");
    assert_string_equal(jstr(s, "last_fire"), "2027-01-15T08:00:20.000Z");
    assert_int_equal(jint(s, "fires_skipped"), 1);
    json_decref(s);
    end_hold(e, "s@20270115T080010Z");
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f); /* it ended: the next fire starts */
    check_ids(e, "s@20270115T080010Z s@20270115T080030Z");
    ls_flow_schedule_stats st;
    ls_flow_schedule_get_stats(e->f, &st);
    assert_int_equal(st.fires_started, 2);
    assert_int_equal(st.fires_skipped, 1);
    end_hold(e, "s@20270115T080030Z");
    eng_close(e);
}

/* Waits until the run exists (the scheduler thread starts it). */
static void wait_run(env *e, const char *name)
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        ls_buf b = LS_BUF_INIT;
        ls_rc rc = ls_flow_describe(e->f, name, strlen(name), &b, NULL);
        ls_buf_free(&b);
        if (rc == LS_OK) return;
        th_nap_ms(2);
    }
    fail_msg("run %s never started", name);
}

static void test_schedule_overlap_buffer_one(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e,
                    "{\"name\":\"b\",\"workflow\":\"hold\",\"cron\":\"@every 10s\","
                    "\"overlap\":\"buffer_one\"}",
                    NULL));
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f); /* buffered */
    json_t *s = get_sched(e, "b");
    assert_string_equal(jstr(s, "last_outcome"), "buffered");
    assert_string_equal(jstr(s, "buffered_fire"), "2027-01-15T08:00:20.000Z");
    json_decref(s);
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f); /* one waits already: this one is skipped */
    check_ids(e, "b@20270115T080010Z");
    /* The first ends: its watch wakes the scheduler thread, which starts
     * the buffered fire (with its own fire time), without a tick here. */
    end_hold(e, "b@20270115T080010Z");
    wait_run(e, "b@20270115T080020Z");
    check_ids(e, "b@20270115T080010Z b@20270115T080020Z");
    s = get_sched(e, "b");
    assert_null(json_object_get(s, "buffered_fire"));
    assert_string_equal(jstr(s, "last_run"), "b@20270115T080020Z");
    assert_int_equal(jint(s, "fires_started"), 2);
    assert_int_equal(jint(s, "fires_skipped"), 1);
    json_decref(s);
    end_hold(e, "b@20270115T080020Z");
    eng_close(e);
}

static void test_schedule_overlap_allow(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e,
                    "{\"name\":\"a\",\"workflow\":\"hold\",\"cron\":\"@every 10s\","
                    "\"overlap\":\"allow\"}",
                    NULL));
    for (int i = 0; i < 3; i++) {
        th_clock_advance(&e->fc, 10000);
        flow_sched_tick(e->f);
    }
    check_ids(e, "a@20270115T080010Z a@20270115T080020Z a@20270115T080030Z");
    char st[32];
    status_of(e, "a@20270115T080010Z", st);
    assert_string_equal(st, "running"); /* all three at once */
    end_hold(e, "a@20270115T080010Z");
    end_hold(e, "a@20270115T080020Z");
    end_hold(e, "a@20270115T080030Z");
    eng_close(e);
}

/* Fires once, then the daemon is down for 35 s (fire times +20, +30, +40
 * missed). */
static void downtime(env *e, const char *catchup)
{
    char def[256];
    snprintf(def, sizeof def,
             "{\"name\":\"c\",\"workflow\":\"quick\",\"cron\":\"@every 10s\",\"catchup\":\"%s\"}",
             catchup);
    eng_open(e);
    json_decref(put(e, def, NULL));
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    wait_ended(e, "c@20270115T080010Z");
    eng_close(e);
    th_clock_advance(&e->fc, 35000); /* now T0+45s */
    eng_open_run(e, 0);              /* no scheduler thread yet: the test looks first */
}

static void test_schedule_catchup_one_after_downtime(void **state)
{
    env *e = *state;
    downtime(e, "one");
    json_t *s = get_sched(e, "c"); /* the record survived, with its last fire */
    assert_string_equal(jstr(s, "last_run"), "c@20270115T080010Z");
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:00:20.000Z");
    json_decref(s);
    flow_sched_tick(e->f);
    flow_sched_tick(e->f); /* a second look changes nothing */
    check_ids(e, "c@20270115T080010Z c@20270115T080040Z");
    eng_run(e);
    wait_ended(e, "c@20270115T080040Z");
    s = get_sched(e, "c");
    assert_int_equal(jint(s, "fires_missed"), 2);
    assert_int_equal(jint(s, "fires_started"), 2);
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:00:50.000Z");
    json_decref(s);
    /* Then on schedule again. */
    th_clock_advance(&e->fc, 5000);
    flow_sched_tick(e->f);
    check_ids(e, "c@20270115T080010Z c@20270115T080040Z c@20270115T080050Z");
    eng_close(e);
}

static void test_schedule_catchup_none_after_downtime(void **state)
{
    env *e = *state;
    downtime(e, "none");
    flow_sched_tick(e->f);
    check_ids(e, "c@20270115T080010Z");
    eng_run(e);
    json_t *s = get_sched(e, "c");
    assert_int_equal(jint(s, "fires_missed"), 3);
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:00:50.000Z");
    json_decref(s);
    th_clock_advance(&e->fc, 5000);
    flow_sched_tick(e->f);
    check_ids(e, "c@20270115T080010Z c@20270115T080050Z");
    ls_flow_schedule_stats st;
    ls_flow_schedule_get_stats(e->f, &st);
    assert_int_equal(st.fires_missed, 3);
    assert_int_equal(st.fires_started, 1); /* since this open */
    eng_close(e);
}

/* A crash between a fire's start and the write of the schedule's record:
 * after the restart the same fire is attempted again and finds its run. */
static void test_schedule_fire_attempted_twice(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e, "{\"name\":\"i\",\"workflow\":\"quick\",\"cron\":\"@every 10s\"}", NULL));
    /* The record as it was before the fire. */
    ls_buf k = LS_BUF_INIT, before = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_key_ns(&k, LS_NS_SCHEDULE, &err), &err);
    th_ok(ls_key_str(&k, "i", 1, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &before, &err), &err);
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    wait_ended(e, "i@20270115T080010Z");
    eng_close(e);
    /* Put the old record back: the fire's start is durable, its record
     * is not, as a SIGKILL between the two writes leaves them. */
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, before.ptr, before.len, LS_STORE_SYNC, &err), &err);
    eng_open_run(e, 0);
    json_t *s = get_sched(e, "i");
    assert_null(json_object_get(s, "last_run"));
    json_decref(s);
    flow_sched_tick(e->f); /* catchup one: the same fire time again */
    check_ids(e, "i@20270115T080010Z");
    started_once(e, "i@20270115T080010Z");
    s = get_sched(e, "i");
    assert_string_equal(jstr(s, "last_run"), "i@20270115T080010Z");
    assert_string_equal(jstr(s, "last_outcome"), "started");
    json_decref(s);
    ls_flow_schedule_stats st;
    ls_flow_schedule_get_stats(e->f, &st);
    assert_int_equal(st.fires_started, 0); /* found, not started */
    eng_run(e);

    /* A run of a fire's id started by hand counts as that fire too. */
    ls_buf run = LS_BUF_INIT;
    int created = 0;
    th_ok(ls_flow_start(e->f, "quick", 5, "i@20270115T080020Z", 18, NULL, 0, &run, &created, &err),
          &err);
    ls_buf_free(&run);
    th_clock_advance(&e->fc, 10000);
    flow_sched_tick(e->f);
    check_ids(e, "i@20270115T080010Z i@20270115T080020Z");
    started_once(e, "i@20270115T080020Z");
    ls_buf_free(&k);
    ls_buf_free(&before);
    eng_close(e);
}

static void test_schedule_api(void **state)
{
    env *e = *state;
    eng_open(e);
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    int created = -1;
    const char *d1 = "{\"name\":\"x\",\"workflow\":\"quick\",\"cron\":\"*/15 * * * *\"}";
    json_decref(put(e, d1, &created));
    assert_int_equal(created, 1);
    json_decref(put(e, d1, &created)); /* the same again: nothing changes */
    assert_int_equal(created, 0);
    /* An unknown type, a bad definition. */
    const char *bad = "{\"name\":\"y\",\"workflow\":\"nope\",\"cron\":\"@daily\"}";
    assert_int_equal(
        ls_flow_schedule_put(e->f, bad, strlen(bad), LS_FLOW_SCHEDULE_API, &out, NULL, &err),
        LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    bad = "{\"name\":\"y\",\"workflow\":\"quick\",\"cron\":\"@sometimes\"}";
    assert_int_equal(
        ls_flow_schedule_put(e->f, bad, strlen(bad), LS_FLOW_SCHEDULE_API, &out, NULL, &err),
        LS_EINVAL);
    assert_non_null(strstr(err.msg, "cron \"@sometimes\""));

    /* Files declare "nightly" and "x": x becomes the file's. */
    const char *files = "[{\"name\":\"nightly\",\"workflow\":\"quick\",\"cron\":\"@daily\"},"
                        "{\"name\":\"x\",\"workflow\":\"quick\",\"cron\":\"@hourly\"}]";
    th_ok(ls_flow_schedule_sync_files(e->f, files, strlen(files), &err), &err);
    json_decref(put(e, "{\"name\":\"z\",\"workflow\":\"hold\",\"cron\":\"@weekly\"}", NULL));
    th_ok(ls_flow_schedule_list(e->f, &out, &err), &err);
    json_t *l = parse_buf(&out);
    json_t *arr = json_object_get(l, "schedules");
    assert_int_equal(json_array_size(arr), 3);
    assert_string_equal(jstr(json_array_get(arr, 0), "name"), "nightly");
    assert_string_equal(jstr(json_array_get(arr, 0), "source"), "file");
    assert_string_equal(jstr(json_array_get(arr, 0), "next_fire"), "2027-01-16T00:00:00.000Z");
    assert_string_equal(jstr(json_array_get(arr, 1), "name"), "x");
    assert_string_equal(jstr(json_array_get(arr, 1), "cron"), "@hourly");
    assert_string_equal(jstr(json_array_get(arr, 1), "source"), "file");
    assert_string_equal(jstr(json_array_get(arr, 2), "source"), "api");
    json_decref(l);

    /* The API cannot change or delete a file's schedule. */
    assert_int_equal(
        ls_flow_schedule_put(e->f, d1, strlen(d1), LS_FLOW_SCHEDULE_API, &out, NULL, &err),
        LS_ESTATE);
    assert_non_null(strstr(err.msg, "edit that file"));
    assert_int_equal(ls_flow_schedule_delete(e->f, "nightly", 7, LS_FLOW_SCHEDULE_API, &err),
                     LS_ESTATE);
    assert_non_null(strstr(err.msg, "workflow.define"));
    assert_int_equal(ls_flow_schedule_delete(e->f, "none", 4, LS_FLOW_SCHEDULE_API, &err),
                     LS_ENOTFOUND);
    th_ok(ls_flow_schedule_delete(e->f, "z", 1, LS_FLOW_SCHEDULE_API, &err), &err);
    assert_int_equal(ls_flow_schedule_get(e->f, "z", 1, &out, &err), LS_ENOTFOUND);

    /* A reload where the files declare only "x": "nightly" goes. */
    files = "[{\"name\":\"x\",\"workflow\":\"quick\",\"cron\":\"@hourly\"}]";
    th_ok(ls_flow_schedule_sync_files(e->f, files, strlen(files), &err), &err);
    assert_int_equal(ls_flow_schedule_get(e->f, "nightly", 7, &out, &err), LS_ENOTFOUND);
    /* A bad one is reported, the good ones still apply. */
    files = "[{\"name\":\"x\",\"workflow\":\"quick\",\"cron\":\"@hourly\"},"
            "{\"name\":\"q\",\"workflow\":\"quick\",\"cron\":\"@often\"}]";
    assert_int_equal(ls_flow_schedule_sync_files(e->f, files, strlen(files), &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "@often"));
    th_ok(ls_flow_schedule_get(e->f, "x", 1, &out, &err), &err);

    /* All of it is durable. */
    eng_close(e);
    eng_open(e);
    th_ok(ls_flow_schedule_list(e->f, &out, &err), &err);
    l = parse_buf(&out);
    arr = json_object_get(l, "schedules");
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(jstr(json_array_get(arr, 0), "name"), "x");
    assert_string_equal(jstr(json_array_get(arr, 0), "cron"), "@hourly");
    json_decref(l);
    ls_buf_free(&out);
    eng_close(e);
}

/* A changed definition takes fire times from now on: no catch-up of the
 * times the old one did not have. */
/* A schedule whose input is over the payload limit is refused when it is
 * put, from the API or a workflow file: accepted, it would fail at every
 * fire. */
/* A schedule named ".." (accepted before new names were checked) is
 * still loaded from the store, listed and deleted: the daemon starts. */
static void test_schedule_stored_dot_name_still_loads(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e, "{\"name\":\"dd\",\"workflow\":\"quick\",\"cron\":\"@daily\"}", NULL));
    eng_close(e);
    /* The record of "dd", renamed "..", as an older daemon stored it. */
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, pt = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_key_ns(&k, LS_NS_SCHEDULE, &err), &err);
    th_ok(ls_key_str(&k, "dd", 2, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    th_ok(ls_vault_open(e->d.v, k.ptr, k.len, v.ptr, v.len, &pt, &err), &err); /* sealed */
    th_ok(ls_store_delete(e->d.st, k.ptr, k.len, 0, &err), &err);
    json_t *rec = parse_buf(&pt);
    json_object_set_new(rec, "name", json_string(".."));
    ls_buf_clear(&pt);
    th_ok(ls_json_dump(rec, &pt, &err), &err);
    json_decref(rec);
    ls_buf_clear(&k);
    th_ok(ls_key_ns(&k, LS_NS_SCHEDULE, &err), &err);
    th_ok(ls_key_str(&k, "..", 2, &err), &err);
    ls_buf_clear(&v);
    th_ok(ls_vault_seal(e->d.v, k.ptr, k.len, pt.ptr, pt.len, &v, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, v.ptr, v.len, 0, &err), &err);
    ls_buf_free(&pt);

    eng_open(e);
    th_ok(ls_flow_schedule_get(e->f, "..", 2, &out, &err), &err);
    json_t *got = parse_buf(&out);
    assert_string_equal(jstr(got, "name"), "..");
    json_decref(got);
    th_ok(ls_flow_schedule_delete(e->f, "..", 2, LS_FLOW_SCHEDULE_API, &err), &err);
    assert_int_equal(ls_flow_schedule_get(e->f, "..", 2, &out, &err), LS_ENOTFOUND);
    /* A new one of that name is still refused. */
    const char *dots = "{\"name\":\"..\",\"workflow\":\"quick\",\"cron\":\"@daily\"}";
    assert_int_equal(
        ls_flow_schedule_put(e->f, dots, strlen(dots), LS_FLOW_SCHEDULE_API, &out, NULL, &err),
        LS_EINVAL);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&out);
}

/* Copies file from to file to. */
static void copy_file(const char *from, const char *to)
{
    char buf[4096];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* A schedule sealed under a key the keyring lacks (a stale key file) is
 * skipped alone, logged by name: the ones after it still load, and
 * neither a put nor a file's declaration replaces its record. */
static void test_schedule_record_that_does_not_open_is_skipped(void **state)
{
    env *e = *state;
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    char *stale = th_path(e->d.dir, "stale.key");
    copy_file(e->d.key_path, stale); /* key 1 only */
    assert_int_equal(chmod(stale, 0600), 0);
    eng_open(e);
    json_decref(put(e, "{\"name\":\"b1\",\"workflow\":\"quick\",\"cron\":\"@daily\"}", NULL));
    th_ok(ls_vault_rotate(e->d.v, NULL, &err), &err);
    json_decref(put(e, "{\"name\":\"a1\",\"workflow\":\"quick\",\"cron\":\"@hourly\"}", NULL));
    eng_close(e);

    ls_vault_t *right = e->d.v, *old = NULL;
    ls_vault_opts vo = {0};
    th_ok(ls_vault_load(&old, stale, &vo, &err), &err);
    e->d.v = old;
    eng_open(e);
    assert_true(
        log_has(e, "schedule a1: its stored record does not open: sealed value names key 2"));
    json_t *b1 = get_sched(e, "b1"); /* after a1, still loaded */
    assert_string_equal(jstr(b1, "cron"), "@daily");
    json_decref(b1);
    assert_int_equal(ls_flow_schedule_get(e->f, "a1", 2, &out, &err), LS_ENOTFOUND);
    const char *a1 = "{\"name\":\"a1\",\"workflow\":\"quick\",\"cron\":\"@daily\"}";
    assert_int_equal(
        ls_flow_schedule_put(e->f, a1, strlen(a1), LS_FLOW_SCHEDULE_API, &out, NULL, &err),
        LS_ESTATE);
    const char *files = "[{\"name\":\"a1\",\"workflow\":\"quick\",\"cron\":\"@daily\"}]";
    assert_int_equal(ls_flow_schedule_sync_files(e->f, files, strlen(files), &err), LS_ESTATE);
    eng_close(e);

    /* The right key file: a1 is as it was put. */
    e->d.v = right;
    ls_vault_close(old);
    free(stale);
    eng_open(e);
    json_t *got = get_sched(e, "a1");
    assert_string_equal(jstr(got, "cron"), "@hourly");
    assert_string_equal(jstr(got, "source"), "api");
    json_decref(got);
    eng_close(e);
    ls_buf_free(&out);
}

static void test_schedule_input_over_the_payload_limit(void **state)
{
    env *e = *state;
    e->max_payload = 100;
    eng_open(e);
    ls_err err = {0};
    char def[512];
    snprintf(def, sizeof def,
             "{\"name\":\"big\",\"workflow\":\"quick\",\"cron\":\"@daily\",\"input\":\"%0150d\"}",
             0);
    assert_int_equal(
        ls_flow_schedule_put(e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, NULL, NULL, &err),
        LS_EINVAL);
    assert_string_equal(err.msg, "input: 152 bytes, over the payload limit of 100 bytes "
                                 "(lodestoned --max-payload)");
    char files[600];
    snprintf(files, sizeof files, "[%s]", def);
    assert_int_equal(ls_flow_schedule_sync_files(e->f, files, strlen(files), &err), LS_EINVAL);
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_flow_schedule_list(e->f, &out, &err), &err);
    assert_null(strstr((const char *)out.ptr, "\"big\""));
    ls_buf_free(&out);
    /* within the limit: taken */
    const char *small = "{\"name\":\"small\",\"workflow\":\"quick\",\"cron\":\"@daily\","
                        "\"input\":{\"n\":1}}";
    th_ok(ls_flow_schedule_put(e->f, small, strlen(small), LS_FLOW_SCHEDULE_API, NULL, NULL, &err),
          &err);
}

static void test_schedule_redefinition(void **state)
{
    env *e = *state;
    eng_open(e);
    json_decref(put(e, "{\"name\":\"r\",\"workflow\":\"quick\",\"cron\":\"@hourly\"}", NULL));
    th_clock_advance(&e->fc, INT64_C(30) * 60000);
    json_t *s = put(e, "{\"name\":\"r\",\"workflow\":\"quick\",\"cron\":\"*/10 * * * *\"}", NULL);
    assert_string_equal(jstr(s, "next_fire"), "2027-01-15T08:40:00.000Z");
    json_decref(s);
    flow_sched_tick(e->f);
    check_ids(e, ""); /* 08:10, 08:20, 08:30 were never its times */
    eng_close(e);
}

/* The scheduler thread fires on the system clock by itself. */
static void test_schedule_thread_fires(void **state)
{
    env *e = *state;
    e->system_clock = 1;
    eng_open(e);
    json_decref(put(e, "{\"name\":\"t\",\"workflow\":\"quick\",\"cron\":\"@every 1s\"}", NULL));
    ls_flow_schedule_stats st = {0};
    for (int i = 0; i < WAIT_MS / 10 && st.fires_started < 2; i++) {
        th_nap_ms(10);
        ls_flow_schedule_get_stats(e->f, &st);
    }
    assert_true(st.fires_started >= 2);
    json_t *s = get_sched(e, "t");
    const char *last = jstr(s, "last_run");
    assert_int_equal(strncmp(last, "t@", 2), 0);
    assert_int_equal(strlen(last), 2 + 16);
    json_decref(s);
    eng_close(e);
}

/* ---- allocation failures (engine threads not running: they would take
 * the failing allocations at points that vary run to run) ---- */

typedef struct {
    env *e;
    int i;
    ls_rc rc[4096];
} put_ctx;

static ls_rc put_under_failure(void *ud)
{
    put_ctx *c = ud;
    char def[200];
    snprintf(def, sizeof def,
             "{\"name\":\"af-%d\",\"workflow\":\"quick\",\"cron\":\"@every 10s\","
             "\"input\":{\"k\":[1,2]}}",
             c->i);
    ls_buf out = LS_BUF_INIT;
    int created = -1;
    ls_rc rc =
        ls_flow_schedule_put(c->e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, &out, &created, NULL);
    ls_buf_free(&out);
    if (c->i < 4096) c->rc[c->i] = rc;
    c->i++;
    return rc;
}

static ls_rc views_under_failure(void *ud)
{
    env *e = ud;
    ls_buf out = LS_BUF_INIT;
    ls_rc rc = ls_flow_schedule_list(e->f, &out, NULL);
    if (rc == LS_OK) rc = ls_flow_schedule_get(e->f, "af-0", 4, &out, NULL);
    ls_buf_free(&out);
    return rc;
}

static ls_rc open_under_failure(void *ud)
{
    env *e = ud;
    ls_flow_opts o = {.store = e->d.st, .vault = e->d.v, .clock = &e->fc.clock, .runner = &runner};
    ls_flow_t *f = NULL;
    ls_rc rc = ls_flow_open(&f, &o, NULL);
    if (rc == LS_OK) {
        ls_flow_schedule_stats st;
        ls_flow_schedule_get_stats(f, &st);
        if (st.schedules != 1) rc = LS_ECORRUPT;
    }
    ls_flow_close(f);
    return rc;
}

static void test_schedule_alloc_failures(void **state)
{
    env *e = *state;
    eng_open_run(e, 0);
    put_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->e = e;
    long points = th_each_alloc_failure(put_under_failure, c);
    assert_true(points > 3);
    /* A put that returned an error changed nothing: only the last one,
     * which saw no failure, exists. */
    for (int i = 0; i < c->i; i++) {
        char name[32];
        snprintf(name, sizeof name, "af-%d", i);
        ls_buf out = LS_BUF_INIT;
        ls_rc rc = ls_flow_schedule_get(e->f, name, strlen(name), &out, NULL);
        ls_buf_free(&out);
        assert_int_equal(c->rc[i], i < c->i - 1 ? LS_ENOMEM : LS_OK);
        assert_int_equal(rc, i < c->i - 1 ? LS_ENOTFOUND : LS_OK);
    }
    int last = c->i - 1;
    free(c);
    /* The views and the reopen look at one schedule, af-0 (its put above
     * failed): make it, and drop the one that succeeded. */
    char def[200];
    snprintf(def, sizeof def, "{\"name\":\"af-0\",\"workflow\":\"quick\",\"cron\":\"@hourly\"}");
    ls_err err = {0};
    th_ok(ls_flow_schedule_put(e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, NULL, NULL, &err),
          &err);
    snprintf(def, sizeof def, "af-%d", last);
    th_ok(ls_flow_schedule_delete(e->f, def, strlen(def), LS_FLOW_SCHEDULE_API, &err), &err);
    assert_true(th_each_alloc_failure(views_under_failure, e) > 0);
    eng_close(e);
    assert_true(th_each_alloc_failure(open_under_failure, e) > 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_plan_table),
        cmocka_unit_test(test_schedule_overlap_decisions),
        cmocka_unit_test(test_schedule_fire_ids),
        cmocka_unit_test(test_schedule_definitions),
        T(test_schedule_fires_with_deterministic_ids),
        T(test_schedule_overlap_skip),
        T(test_schedule_overlap_buffer_one),
        T(test_schedule_overlap_allow),
        T(test_schedule_catchup_one_after_downtime),
        T(test_schedule_catchup_none_after_downtime),
        T(test_schedule_fire_attempted_twice),
        T(test_schedule_api),
        T(test_schedule_stored_dot_name_still_loads),
        T(test_schedule_record_that_does_not_open_is_skipped),
        T(test_schedule_input_over_the_payload_limit),
        T(test_schedule_redefinition),
        T(test_schedule_thread_fires),
        T(test_schedule_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

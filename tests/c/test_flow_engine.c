/* SPDX-License-Identifier: MIT
 * Tests of the workflow engine (native/flow/engine.c, act.c, query.c)
 * through a small scriptable C runner, no Lua: starts and their errors,
 * steps, retries, fatal failures, durable timers across restarts, recovery,
 * replay of recorded results and side effects, non-determinism, lists,
 * watches, shutdown with a grace period, encryption at rest and allocation
 * failures. Runs end on the engine's own threads; tests wait for them with
 * ls_flow_watch (bounded by 10 s) and never assert on elapsed time. Tests
 * that restart the engine while a run sleeps use a clock that moves only
 * when told to.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lodestone/ls_flow.h"
#include "lodestone/ls_id.h"
#include "flow/flow_int.h"
#include "flow/history.h"
#include "flow/retention.h"
#include "ls_json.h"

#define WAIT_MS 10000 /* longest wait for anything the engine does */

/* ---- scripts ---- */

/* What a step does when the runner runs it. */
enum {
    B_OK = 0,     /* succeeds */
    B_FAIL2,      /* fails (retryable) on attempts 1 and 2, then succeeds */
    B_ALWAYS,     /* always fails (retryable) */
    B_FATAL,      /* fails with a fatal error */
    B_CODE,       /* fails with code E_CARD, which its policy lists as non-retryable */
    B_BADPOLICY,  /* fails with a retry policy the engine refuses */
    B_BLOCK,      /* while h->block_armed: runs until the engine interrupts it */
    B_GATE,       /* waits for h->gate_open (gives up when interrupted) */
    B_SLOW_RETRY, /* fails attempt 1 with a 300 ms backoff */
    B_MSG         /* fails (retryable, 3 attempts) with h->failmsg */
};

/* What the workflow code does. */
enum {
    OP_END = 0,
    OP_STEP,          /* ctx:step(name) with behaviour b */
    OP_SLEEP,         /* ctx:sleep(ms) */
    OP_SIDE,          /* ctx:<name>() recording h->side_value */
    OP_COMPLETE,      /* return {"input":input,"results":[every value so far]} */
    OP_COMPLETE_TEXT, /* return the JSON text name, as it is */
    OP_FAIL,          /* raise name (with a traceback) */
    OP_RETURN,        /* return from activate with no outcome (a broken runner) */
    OP_CRASH,         /* while h->crash_armed: abandon the activation (as a crash would) */
    OP_SIGNAL,        /* ctx:wait_signal(name, ms; -1: no timeout): adds the payload or "timeout" */
    OP_CLEANUP,    /* where a cancellation delivered earlier goes on (a catch); skipped otherwise */
    OP_STATUS,     /* ctx:set_status(name as JSON text) */
    OP_CHILD,      /* ctx:start_child(name = type, detached = b), then (ms == 0) wait for it */
    OP_CHILD_WAIT, /* wait for the last child started */
    OP_ALL,        /* ctx:all of b branches as branch runs: branch 1 sleeps ms, then
                    * branch i runs step "b<i>" and returns its value (name "raise":
                    * the code raises once it has started them) */
    OP_LOG,        /* ctx:log(h->logmsg, h->logmsg_len bytes) */
    OP_SECRET,     /* reads secret name (raises when it fails); adds "secret" */
    OP_RAISE       /* raise h->failmsg with the traceback h->failtrace */
};

typedef struct {
    int op;
    const char *name;
    int b;
    int64_t ms;
} op;

typedef struct {
    const char *type;
    op ops[12];
} script;

/* clang-format off */
#define STEP(n)      {OP_STEP, n, B_OK, 0}
#define STEP_B(n, b) {OP_STEP, n, b, 0}
#define SLEEP(ms)    {OP_SLEEP, NULL, 0, ms}
#define SIDE(kind)   {OP_SIDE, kind, 0, 0}
#define COMPLETE     {OP_COMPLETE, NULL, 0, 0}
#define SIGNAL(n, ms) {OP_SIGNAL, n, 0, ms}
#define CLEANUP      {OP_CLEANUP, NULL, 0, 0}
#define CHILD(t)     {OP_CHILD, t, 0, 0}
#define START_CHILD(t, detached) {OP_CHILD, t, detached, 1}
/* clang-format on */

/* Names at and past the limit of step and signal names (200 bytes). */
#define X10     "xxxxxxxxxx"
#define X100    X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define NAME200 X100 X100
#define NAME201 X100 X100 "x"
#define NAME300 X100 X100 X100

static const script scripts_main[] = {
    {"three", {STEP("a"), STEP("b"), STEP("c"), COMPLETE}},
    {"flaky", {STEP_B("charge", B_FAIL2), COMPLETE}},
    {"doomed", {STEP("a"), STEP_B("charge", B_ALWAYS), COMPLETE}},
    {"fatal", {STEP_B("charge", B_FATAL), COMPLETE}},
    {"coded", {STEP_B("charge", B_CODE), COMPLETE}},
    {"badpolicy", {STEP_B("charge", B_BADPOLICY), COMPLETE}},
    {"nap", {STEP("a"), SLEEP(200), STEP("b"), COMPLETE}},
    {"ab_sleep", {STEP("a"), STEP("b"), SLEEP(300), STEP("c"), COMPLETE}},
    {"ab_crash", {STEP("a"), STEP("b"), {OP_CRASH, NULL, 0, 0}, STEP("c"), COMPLETE}},
    {"v1", {STEP("a"), SLEEP(300), STEP("b"), COMPLETE}},
    {"v2", {STEP("a"), SLEEP(300), STEP("b"), COMPLETE}},
    {"side", {SIDE("random"), SLEEP(100), STEP("a"), COMPLETE}},
    {"sleepy", {SLEEP(60000), COMPLETE}},
    {"blocky", {STEP("a"), STEP_B("b", B_BLOCK), COMPLETE}},
    {"gated", {STEP_B("wait", B_GATE), COMPLETE}},
    {"a_gated_c", {STEP("a"), STEP_B("b", B_GATE), STEP("c"), COMPLETE}},
    {"secret", {SIDE("uuid"), STEP("a"), COMPLETE}},
    {"sec_old", {SLEEP(200), {OP_SECRET, "s1", 0, 0}, COMPLETE}},
    {"sec_new", {SLEEP(200), {OP_SECRET, "s2", 0, 0}, COMPLETE}},
    {"raises", {STEP("a"), {OP_FAIL, "boom: out of widgets", 0, 0}}},
    {"silent", {STEP("a"), {OP_RETURN, NULL, 0, 0}}},
    {"spaced",
     {STEP_B("wait", B_GATE), {OP_COMPLETE_TEXT, "{ \"b\" : [1, 2.50], \"a\" : null }", 0, 0}}},
    {"backoff", {STEP("a"), STEP_B("charge", B_SLOW_RETRY), COMPLETE}},
    {"side_block", {SIDE("random"), STEP_B("b", B_BLOCK), COMPLETE}},
    {"sig", {STEP("a"), SIGNAL("go", -1), SIGNAL("go", -1), STEP("b"), COMPLETE}},
    {"limited", {STEP("a"), SIGNAL("go", -1), COMPLETE}},
    {"sig_to", {SIGNAL("go", 200), SIGNAL("go", 60000), COMPLETE}},
    {"gate_sig", {STEP_B("wait", B_GATE), SIGNAL("go", -1), COMPLETE}},
    {"cancel_me", {STEP("a"), SLEEP(60000), STEP("b"), COMPLETE}},
    {"cancel_catch",
     {STEP("a"), SIGNAL("go", -1), STEP("b"), COMPLETE, CLEANUP, STEP("undo"), SLEEP(300),
      STEP("undo2"), COMPLETE}},
    {"parent", {STEP("a"), CHILD("three"), COMPLETE}},
    {"parent_fatal", {CHILD("fatal"), COMPLETE}},
    {"parent_leaves", {START_CHILD("sleepy", 0), STEP("a"), COMPLETE}},
    {"parent_detached", {START_CHILD("sleepy", 1), COMPLETE}},
    {"parent_nap", {START_CHILD("nap", 0), STEP("a"), {OP_CHILD_WAIT, NULL, 0, 0}, COMPLETE}},
    {"fan", {STEP("a"), {OP_ALL, NULL, 2, 300}, STEP("z"), COMPLETE}},
    {"fan_fail", {STEP("a"), {OP_ALL, "raise", 2, 60000}, COMPLETE}},
    {"fan_big", {{OP_ALL, "bigname", 2, 1}, COMPLETE}},
    {"nap_fan", {SLEEP(200), {OP_ALL, NULL, 2, 1}, COMPLETE}},
    /* names over the limits, or not text (a new step or wait is refused) */
    {"name200", {STEP(NAME200), COMPLETE}},
    {"name201", {STEP("a"), STEP(NAME201), COMPLETE}},
    {"name_utf8", {STEP("caf\xc3\xa9 \xe2\x82\xac"), STEP("a\xff-b"), COMPLETE}},
    {"name_ctl", {STEP("a\nb"), COMPLETE}},
    {"name_del", {STEP("a\177b"), COMPLETE}},    /* DEL */
    {"name_c1", {STEP("a\302\205b"), COMPLETE}}, /* U+0085 */
    {"sig_del", {SIGNAL("g\177o", 60000), COMPLETE}},
    {"sig_slash", {SIGNAL("a/b", -1), COMPLETE}},
    {"sig_dots", {SIGNAL("..", 60000), COMPLETE}},
    {"sig_utf8", {SIGNAL("g\xc0\xafo", -1), COMPLETE}},
    {"sig_ctl", {SIGNAL("g\x01o", 60000), COMPLETE}},
    {"sig_long", {SIGNAL(NAME201, -1), COMPLETE}},
    /* a workflow that starts itself, without end */
    {"deep", {CHILD("deep"), COMPLETE}},
    {"deep_fan", {CHILD("fan"), COMPLETE}},
    /* a chain of detached children: dr0 > dr1 > dr2 (which waits for "go")
     * > dr3 > dr4 > dr5 */
    {"dr0", {START_CHILD("dr1", 1), COMPLETE}},
    {"dr1", {START_CHILD("dr2", 1), COMPLETE}},
    {"dr2", {SIGNAL("go", -1), START_CHILD("dr3", 1), COMPLETE}},
    {"dr3", {START_CHILD("dr4", 1), COMPLETE}},
    {"dr4", {START_CHILD("dr5", 1), COMPLETE}},
    {"dr5", {COMPLETE}},
    {"logger", {{OP_LOG, NULL, 0, 0}, SLEEP(1), COMPLETE}},
    /* texts with secrets' values in them */
    {"leaky_step", {STEP("a"), STEP_B("charge", B_MSG), COMPLETE}},
    {"leaky_run", {STEP("a"), {OP_RAISE, NULL, 0, 0}}},
    {"leaky_parent", {CHILD("leaky_run"), COMPLETE}},
    /* a child of a type no file can declare */
    {"parent_badtype", {CHILD("no/such"), COMPLETE}},
    {"status",
     {{OP_STATUS, "{\"stage\":\"one\"}", 0, 0},
      SIGNAL("go", -1),
      {OP_STATUS, "{\"stage\":\"two\"}", 0, 0},
      SIGNAL("go", -1),
      COMPLETE}},
    {NULL, {{0}}}};

/* The same types after an edit of the workflow file: v1 now starts with
 * step "x", v2 no longer does anything. */
static const script scripts_edited[] = {
    {"v1", {STEP("x"), SLEEP(300), STEP("b"), COMPLETE}}, {"v2", {COMPLETE}}, {NULL, {{0}}}};

/* Runs recorded before names and depths had limits: the histories of
 * "legacy" and "legacy2" are recorded with scripts_recorded, then its names are
 * rewritten in the store (rename_events) to ones the engine refuses now,
 * and it goes on with scripts_upgraded, whose code asks for those names.
 * The chains c0 > c1 > c2 > c3 and k0 > ... > k3 are recorded under a
 * high --max-depth and go on under a low one. */
static const script scripts_recorded[] = {
    {"legacy", {STEP("a"), SIGNAL("go", 300), STEP("b"), COMPLETE}},
    {"legacy2", {STEP("a"), SIGNAL("go", 300), STEP("b"), COMPLETE}},
    {"c0", {CHILD("c1"), COMPLETE}},
    {"c1", {CHILD("c2"), COMPLETE}},
    {"c2", {CHILD("c3"), COMPLETE}},
    {"c3", {SLEEP(300), STEP("a"), COMPLETE}},
    {"k0", {CHILD("k1"), COMPLETE}},
    {"k1", {CHILD("k2"), COMPLETE}},
    {"k2", {CHILD("k3"), COMPLETE}},
    {"k3", {SLEEP(300), CHILD("three"), COMPLETE}},
    {"three", {STEP("a"), STEP("b"), STEP("c"), COMPLETE}},
    {"legacy3", {SIGNAL("go", -1), SLEEP(300), COMPLETE}},
    {"legacy4", {SIGNAL("go", -1), SLEEP(300), COMPLETE}},
    {NULL, {{0}}}};
static const script scripts_upgraded[] = {
    {"legacy3", {SIGNAL("g\xffo", -1), SLEEP(300), COMPLETE}},
    {"legacy4", {SIGNAL("g\xffo", -1), SLEEP(300), SIGNAL("g\xffo", -1), COMPLETE}},
    {"legacy", {STEP(NAME300), SIGNAL("g\xffo", 300), STEP("b"), COMPLETE}},
    {"legacy2", {STEP(NAME300), SIGNAL("g\xffo", 300), STEP("b"), STEP(NAME300), COMPLETE}},
    {"c0", {CHILD("c1"), COMPLETE}},
    {"c1", {CHILD("c2"), COMPLETE}},
    {"c2", {CHILD("c3"), COMPLETE}},
    {"c3", {SLEEP(300), STEP("a"), COMPLETE}},
    {"k0", {CHILD("k1"), COMPLETE}},
    {"k1", {CHILD("k2"), COMPLETE}},
    {"k2", {CHILD("k3"), COMPLETE}},
    {"k3", {SLEEP(300), CHILD("three"), COMPLETE}},
    {"three", {STEP("a"), STEP("b"), STEP("c"), COMPLETE}},
    {NULL, {{0}}}};

/* Runs stored under type names refused now (an older lodestoned loaded
 * any name a file gave, of any length): "old" and "old_done" are renamed
 * in the store (retype_run) to these. */
#define TYPE250 NAME200 "yyyyyyyyyy" X10 X10 X10 X10
static const script scripts_typed[] = {{"old", {SIGNAL("go", -1), COMPLETE}},
                                       {"old_done", {COMPLETE}},
                                       {TYPE250, {SIGNAL("go", -1), COMPLETE}},
                                       {"a b", {COMPLETE}},
                                       {NULL, {{0}}}};

/* "legacy" whose first step is now named with a byte that is not UTF-8. */
static const script scripts_renamed[] = {
    {"legacy", {STEP("a\xff"), SIGNAL("go", 300), STEP("b"), COMPLETE}}, {NULL, {{0}}}};

#define FAST_RETRY "{\"initial_interval\":\"10ms\",\"max_attempts\":3,\"jitter\":0}"
/* The workflow's policy: slow and long; the step's fields must win. */
#define WF_RETRY "{\"initial_interval\":\"1s\",\"max_attempts\":10}"

/* ---- the runner ---- */

typedef struct {
    char run[64];
    char step[32];
    int calls;
    char key[64];
    int key_changed; /* a later attempt got another idempotency key */
} counter;

typedef struct {
    const script *scripts; /* swapped only while no engine is open */
    pthread_mutex_t mu;
    counter cnt[512];
    size_t ncnt;
    char log[16384];
    size_t loglen;
    atomic_int gen; /* put in step results: tells a replayed result from a new one */
    atomic_int block_armed;
    atomic_int gate_open;
    atomic_int crash_armed;
    atomic_int workers_open;
    atomic_int bugs;      /* runner checks that failed on an engine thread */
    char side_value[128]; /* JSON text that OP_SIDE offers */
    char tag[96];         /* added to step results when not empty */
    const char *big;      /* OP_ALL "bigname": the name of branch 2's step */
    const char *logmsg;   /* what OP_LOG logs */
    const char *failmsg;  /* what B_MSG fails with, OP_RAISE raises */
    size_t failmsg_len;
    const char *failtrace; /* OP_RAISE's traceback */
    size_t logmsg_len;
    size_t last_log_len;    /* the length of the last line the log got */
    char last_log_tail[64]; /* and its end */
} harness;

static void harness_init(harness *h)
{
    memset(h, 0, sizeof *h);
    h->scripts = scripts_main;
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->gen, 1);
    snprintf(h->side_value, sizeof h->side_value, "0.25");
}

static counter *find_counter(harness *h, const char *run, const char *step, int create)
{
    for (size_t i = 0; i < h->ncnt; i++)
        if (strcmp(h->cnt[i].run, run) == 0 && strcmp(h->cnt[i].step, step) == 0) return &h->cnt[i];
    if (!create) return NULL;
    if (h->ncnt == sizeof h->cnt / sizeof h->cnt[0]) abort();
    counter *c = &h->cnt[h->ncnt++];
    snprintf(c->run, sizeof c->run, "%s", run);
    snprintf(c->step, sizeof c->step, "%s", step);
    return c;
}

static void count_call(harness *h, const char *run, const char *step, const char *key)
{
    pthread_mutex_lock(&h->mu);
    counter *c = find_counter(h, run, step, 1);
    if (c->calls && strcmp(c->key, key) != 0) c->key_changed = 1;
    snprintf(c->key, sizeof c->key, "%s", key);
    c->calls++;
    pthread_mutex_unlock(&h->mu);
}

/* How many times step of run actually ran (not replayed). */
static int calls(harness *h, const char *run, const char *step)
{
    pthread_mutex_lock(&h->mu);
    counter *c = find_counter(h, run, step, 0);
    int n = c ? c->calls : 0;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void key_of(harness *h, const char *run, const char *step, char out[64], int *changed)
{
    pthread_mutex_lock(&h->mu);
    counter *c = find_counter(h, run, step, 0);
    snprintf(out, 64, "%s", c ? c->key : "");
    *changed = c ? c->key_changed : 0;
    pthread_mutex_unlock(&h->mu);
}

static int log_has(harness *h, const char *needle)
{
    pthread_mutex_lock(&h->mu);
    int found = strstr(h->log, needle) != NULL;
    pthread_mutex_unlock(&h->mu);
    return found;
}

/* Forgets what the log has said so far. */
static void h_log_clear(harness *h)
{
    pthread_mutex_lock(&h->mu);
    h->loglen = 0;
    h->log[0] = '\0';
    pthread_mutex_unlock(&h->mu);
}

static void on_log(void *ud, int level, const char *run, const char *msg)
{
    harness *h = ud;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1400];
    int n = snprintf(line, sizeof line, "%s [%s] %s\n", names[level & 3], run ? run : "-", msg);
    if (n >= (int)sizeof line) n = (int)sizeof line - 1; /* a long line is kept cut (8 KiB lines) */
    if (getenv("LS_TEST_VERBOSE")) fputs(line, stderr);
    pthread_mutex_lock(&h->mu);
    size_t mlen = strlen(msg);
    h->last_log_len = mlen;
    snprintf(h->last_log_tail, sizeof h->last_log_tail, "%s",
             msg + (mlen < sizeof h->last_log_tail ? 0 : mlen - (sizeof h->last_log_tail - 1)));
    if (n > 0 && h->loglen + (size_t)n < sizeof h->log) {
        memcpy(h->log + h->loglen, line, (size_t)n + 1);
        h->loglen += (size_t)n;
    }
    pthread_mutex_unlock(&h->mu);
}

static const script *find_script(const harness *h, const char *type, size_t len)
{
    for (const script *s = h->scripts; s->type; s++)
        if (strlen(s->type) == len && memcmp(s->type, type, len) == 0) return s;
    return NULL;
}

static ls_rc r_worker_open(void *ud, unsigned index, void **worker, ls_err *err)
{
    (void)err;
    harness *h = ud;
    atomic_fetch_add(&h->workers_open, 1);
    (void)index;
    *worker = h; /* any non-NULL token: the runner keeps no per-worker state */
    return LS_OK;
}

/* cmocka's assertions longjmp, which must not happen on an engine thread:
 * runner code counts what went wrong, and the test checks the count. */
#define RCHECK(h, cond)                                                                     \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: runner check failed: %s\n", __FILE__, __LINE__, #cond); \
            atomic_fetch_add(&(h)->bugs, 1);                                                \
        }                                                                                   \
    } while (0)

static void r_worker_close(void *ud, void *worker)
{
    harness *h = ud;
    RCHECK(h, worker != NULL);
    atomic_fetch_sub(&h->workers_open, 1);
}

static int r_has_type(void *ud, const char *type, size_t len)
{
    return find_script(ud, type, len) != NULL;
}

/* Type "limited" (a copy of "sig") admits one run per input "k" value. */
static int r_type_limits(void *ud, const char *type, size_t len, ls_buf *json)
{
    (void)ud;
    if (len != 7 || memcmp(type, "limited", 7) != 0) return 0;
    static const char limits[] = "{\"limit\":1,\"key\":\"k\"}";
    return ls_buf_set(json, limits, sizeof limits - 1, NULL) == LS_OK;
}

static void r_list_types(void *ud, ls_buf *out)
{
    const harness *h = ud;
    for (const script *s = h->scripts; s->type; s++) {
        if (s != h->scripts) ls_buf_putc(out, ',', NULL);
        ls_buf_append(out, s->type, strlen(s->type), NULL);
    }
}

/* Raises msg in the workflow code: the run fails. */
static void raise_msg(ls_flow_act *a, const char *msg, size_t len)
{
    ls_err err = {0};
    if (ls_flow_act_fail(a, msg, len, NULL, 0, &err) != LS_OK)
        fprintf(stderr, "runner: ls_flow_act_fail: %s\n", err.msg);
}

static void raise_err(ls_flow_act *a, const ls_err *err)
{
    const char *m = ls_err_text(err);
    raise_msg(a, m, strlen(m));
}

static void add_value(ls_buf *acc, const void *json, size_t len)
{
    if (acc->len > 1) ls_buf_putc(acc, ',', NULL);
    ls_buf_append(acc, json, len, NULL);
}

enum { S_OK, S_FAIL, S_ABANDON };

typedef struct {
    int kind;
    char result[256];
    ls_flow_failure fl;
} step_out;

static void failure(step_out *so, const char *msg, const char *code, int fatal, const char *retry)
{
    so->kind = S_FAIL;
    so->fl.error = msg;
    so->fl.error_len = strlen(msg);
    so->fl.code = code;
    so->fl.fatal = fatal;
    so->fl.retry_workflow = WF_RETRY;
    so->fl.retry_workflow_len = strlen(WF_RETRY);
    so->fl.retry_step = retry;
    so->fl.retry_step_len = strlen(retry);
}

/* The step's code: what a test lets it do, counted per run and step. */
static void call_step(harness *h, ls_flow_act *a, const op *o, const ls_flow_step_info *info,
                      step_out *so)
{
    memset(so, 0, sizeof *so);
    so->fl.attempt = info->attempt;
    count_call(h, ls_flow_act_name(a), o->name, info->key);
    switch (o->b) {
    case B_FAIL2:
        if (info->attempt > 2) break;
        failure(so, "flaky: try again", NULL, 0, FAST_RETRY);
        return;
    case B_ALWAYS: failure(so, "still down", NULL, 0, FAST_RETRY); return;
    case B_FATAL: failure(so, "card declined", NULL, 1, FAST_RETRY); return;
    case B_CODE:
        failure(so, "card expired", "E_CARD", 0,
                "{\"initial_interval\":\"10ms\",\"max_attempts\":5,"
                "\"non_retryable\":[\"E_CARD\"]}");
        return;
    case B_SLOW_RETRY:
        if (info->attempt > 1) break;
        failure(so, "busy", NULL, 0, "{\"initial_interval\":\"300ms\",\"jitter\":0}");
        return;
    case B_BADPOLICY:
        failure(so, "oops", NULL, 0, "{\"initial_interval\":\"10ms\",\"backof\":2}");
        return;
    case B_MSG:
        failure(so, h->failmsg, NULL, 0, FAST_RETRY);
        so->fl.error_len = h->failmsg_len;
        return;
    case B_BLOCK:
        if (!atomic_load(&h->block_armed)) break;
        /* Stuck in the step (an HTTP call that does not answer) until the
         * engine asks everyone to give up. */
        while (!ls_flow_act_interrupted(a)) th_nap_ms(1);
        so->kind = S_ABANDON;
        return;
    case B_GATE:
        while (!atomic_load(&h->gate_open)) {
            if (ls_flow_act_interrupted(a)) {
                so->kind = S_ABANDON;
                return;
            }
            th_nap_ms(1);
        }
        break;
    default: break;
    }
    so->kind = S_OK;
    char tag[128] = "";
    if (h->tag[0]) snprintf(tag, sizeof tag, ",\"tag\":\"%s\"", h->tag);
    snprintf(so->result, sizeof so->result, "{\"attempt\":%u,\"gen\":%d,\"step\":\"%s\"%s}",
             info->attempt, atomic_load(&h->gen), o->name, tag);
}

/* ctx:step: 1 when the code goes on, 0 when the activation is over, 2
 * when a cancellation was delivered. */
static int do_step(harness *h, ls_flow_act *a, const op *o, ls_buf *acc)
{
    ls_flow_step_info info;
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    size_t nlen = strlen(o->name);
    int go_on = 0;
    if (ls_flow_act_step(a, o->name, nlen, &info, &out, &err) != LS_OK) {
        raise_err(a, &err);
        goto out;
    }
    switch (info.outcome) {
    case LS_FLOW_DONE:
        add_value(acc, out.ptr, out.len);
        go_on = 1;
        break;
    case LS_FLOW_FAILED: raise_msg(a, (const char *)out.ptr, out.len); break;
    case LS_FLOW_WAIT: break;
    case LS_FLOW_CANCELLED: go_on = 2; break;
    case LS_FLOW_TIMEOUT: RCHECK(h, 0); break;
    case LS_FLOW_RUN: {
        step_out so;
        call_step(h, a, o, &info, &so);
        if (so.kind == S_ABANDON) {
            ls_flow_act_abandon(a);
            break;
        }
        if (so.kind == S_OK) {
            if (ls_flow_act_step_done(a, o->name, nlen, info.attempt, so.result, strlen(so.result),
                                      &err) != LS_OK) {
                raise_err(a, &err);
                break;
            }
            add_value(acc, so.result, strlen(so.result));
            go_on = 1;
            break;
        }
        ls_flow_outcome oc;
        if (ls_flow_act_step_failed(a, o->name, nlen, &so.fl, &oc, &out, &err) != LS_OK)
            raise_err(a, &err);
        else if (oc == LS_FLOW_FAILED)
            raise_msg(a, (const char *)out.ptr, out.len);
        else
            RCHECK(h, oc == LS_FLOW_WAIT);
        break;
    }
    }
out:
    ls_buf_free(&out);
    return go_on;
}

/* OP_ALL, section sec of the code: in the branch run of one of its
 * branches, runs that branch and ends the run (0); else starts a branch
 * run per branch and waits for them, adding their results to acc (1 to go
 * on, 0 when the activation is over). */
static int do_all(harness *h, ls_flow_act *a, const op *o, int sec, ls_buf *acc)
{
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT, res = LS_BUF_INIT;
    ls_buf ids[4] = {LS_BUF_INIT, LS_BUF_INIT, LS_BUF_INIT, LS_BUF_INIT};
    char scope[32];
    ls_flow_outcome oc;
    const char *mine = ls_flow_act_branch_of(a);
    int go = 0, n = o->b;
    RCHECK(h, n >= 1 && n <= 4);
    ls_buf_putc(&res, '[', NULL);
    if (mine) {
        int i = 0;
        RCHECK(h, sscanf(mine, "[%*d.%d]", &i) == 1 && i >= 1 && i <= n);
        snprintf(scope, sizeof scope, "[%d.%d]", sec, i);
        RCHECK(h, strcmp(scope, mine) == 0);
        if (ls_flow_act_branch(a, scope, strlen(scope), &err) != LS_OK) goto fail;
        if (i == 1) {
            if (ls_flow_act_sleep(a, o->ms, &oc, &err) != LS_OK) goto fail;
            if (oc == LS_FLOW_WAIT) goto over;
        }
        char name[8];
        snprintf(name, sizeof name, "b%d", i);
        /* (name "bigname": branch 2's step is named h->big) */
        int big = o->name && strcmp(o->name, "bigname") == 0 && i == 2 && h->big;
        const op step = {OP_STEP, big ? h->big : name, B_OK, 0};
        if (do_step(h, a, &step, &res) != 1) goto over;
        /* the run's output: the step's value alone */
        if (ls_flow_act_complete(a, (const char *)res.ptr + 1, res.len - 1, &err) != LS_OK)
            goto fail;
        goto over;
    }
    if (ls_flow_act_flush(a, &err) != LS_OK) goto fail;
    for (int i = 0; i < n; i++) {
        snprintf(scope, sizeof scope, "[%d.%d]", sec, i + 1);
        if (ls_flow_act_branch_start(a, scope, strlen(scope), &ids[i], &err) != LS_OK) goto fail;
    }
    if (o->name && strcmp(o->name, "raise") == 0) {
        raise_msg(a, "gave up", 7);
        goto over;
    }
    for (int i = 0; i < n; i++) {
        if (ls_flow_act_child_wait(a, (const char *)ids[i].ptr, ids[i].len, &oc, &out, &err) !=
            LS_OK)
            goto fail;
        if (oc == LS_FLOW_WAIT) goto over;
        if (oc != LS_FLOW_DONE) {
            raise_msg(a, (const char *)out.ptr, out.len);
            goto over;
        }
        add_value(&res, out.ptr, out.len);
    }
    ls_buf_putc(&res, ']', NULL);
    add_value(acc, res.ptr, res.len);
    go = 1;
    goto over;
fail:
    raise_err(a, &err);
over:
    ls_buf_free(&out);
    ls_buf_free(&res);
    for (int i = 0; i < 4; i++) ls_buf_free(&ids[i]);
    return go;
}

static void r_activate(void *ud, void *worker, ls_flow_act *a)
{
    harness *h = ud;
    RCHECK(h, worker != NULL);
    const char *type = ls_flow_act_type(a);
    const script *s = find_script(h, type, strlen(type));
    ls_buf acc = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err = {0};
    ls_flow_outcome oc;
    if (s == NULL) {
        raise_msg(a, "no such type", 12);
        return;
    }
    ls_buf_putc(&acc, '[', NULL);
    ls_buf child = LS_BUF_INIT;
    int cancelled = 0, sections = 0;
    for (const op *o = s->ops; o->op != OP_END; o++) {
        if (cancelled) {
            /* The code catches the cancellation at CLEANUP, or lets it
             * end the run. */
            cancelled = 0;
            while (o->op != OP_END && o->op != OP_CLEANUP) o++;
            if (o->op == OP_END) {
                if (ls_flow_act_cancelled(a, &err) != LS_OK) raise_err(a, &err);
                goto out;
            }
            add_value(&acc, "\"caught\"", 8);
            continue;
        }
        switch (o->op) {
        case OP_STEP: {
            int go = do_step(h, a, o, &acc);
            if (go == 0) goto out;
            if (go == 2) cancelled = 1, o--;
            break;
        }
        case OP_SLEEP:
            if (ls_flow_act_sleep(a, o->ms, &oc, &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            if (oc == LS_FLOW_WAIT) goto out;
            if (oc == LS_FLOW_CANCELLED) {
                cancelled = 1, o--;
                break;
            }
            RCHECK(h, oc == LS_FLOW_DONE);
            break;
        case OP_SIGNAL:
            if (ls_flow_act_wait_signal(a, o->name, strlen(o->name), o->ms, &oc, &out, &err) !=
                LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            if (oc == LS_FLOW_WAIT) goto out;
            if (oc == LS_FLOW_CANCELLED) {
                cancelled = 1, o--;
                break;
            }
            if (oc == LS_FLOW_TIMEOUT)
                add_value(&acc, "\"timeout\"", 9);
            else
                add_value(&acc, out.ptr, out.len);
            break;
        case OP_CHILD:
        case OP_CHILD_WAIT:
            if (o->op == OP_CHILD &&
                ls_flow_act_child_start(a, o->name, strlen(o->name), NULL, 0, "{\"from\":1}", 10,
                                        o->b, &child, &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            add_value(&acc, "\"child\"", 7);
            if (o->op == OP_CHILD && o->ms) break; /* started only */
            if (ls_flow_act_child_wait(a, (const char *)child.ptr, child.len, &oc, &out, &err) !=
                LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            if (oc == LS_FLOW_WAIT) goto out;
            if (oc == LS_FLOW_FAILED) {
                raise_msg(a, (const char *)out.ptr, out.len);
                goto out;
            }
            if (oc == LS_FLOW_CANCELLED) {
                cancelled = 1, o--;
                break;
            }
            add_value(&acc, out.ptr, out.len);
            break;
        case OP_ALL: {
            int go = do_all(h, a, o, ++sections, &acc);
            if (go == 0) goto out;
            break;
        }
        case OP_CLEANUP: goto done; /* not cancelled: the code ends before its catch */
        case OP_LOG: ls_flow_act_log(a, LS_FLOW_LOG_INFO, h->logmsg, h->logmsg_len); break;
        case OP_SECRET: {
            ls_secret_t *sec = NULL;
            if (ls_flow_act_secret(a, o->name, &sec, &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            ls_secret_free(sec);
            add_value(&acc, "\"secret\"", 8);
            break;
        }
        case OP_STATUS:
            if (ls_flow_act_set_status(a, o->name, strlen(o->name), &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            break;
        case OP_SIDE:
            if (ls_flow_act_side_effect(a, o->name, h->side_value, strlen(h->side_value), &out,
                                        &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            add_value(&acc, out.ptr, out.len);
            break;
        case OP_COMPLETE: {
            ls_buf_putc(&acc, ']', NULL);
            if (ls_flow_act_input(a, &out, &err) != LS_OK) {
                raise_err(a, &err);
                goto out;
            }
            ls_buf res = LS_BUF_INIT;
            ls_buf_printf(&res, NULL, "{\"input\":%.*s,\"results\":%.*s}", (int)out.len,
                          (const char *)out.ptr, (int)acc.len, (const char *)acc.ptr);
            if (ls_flow_act_complete(a, (const char *)res.ptr, res.len, &err) != LS_OK)
                raise_err(a, &err);
            ls_buf_free(&res);
            goto out;
        }
        case OP_FAIL: {
            static const char trace[] = "stack traceback:\n\tworkflow.lua:12: in run";
            if (ls_flow_act_fail(a, o->name, strlen(o->name), trace, sizeof trace - 1, &err) !=
                LS_OK)
                fprintf(stderr, "runner: ls_flow_act_fail: %s\n", err.msg);
            goto out;
        }
        case OP_RETURN: goto out;
        case OP_RAISE:
            if (ls_flow_act_fail(a, h->failmsg, h->failmsg_len, h->failtrace,
                                 h->failtrace ? strlen(h->failtrace) : 0, &err) != LS_OK)
                fprintf(stderr, "runner: ls_flow_act_fail: %s\n", err.msg);
            goto out;
        case OP_COMPLETE_TEXT:
            if (ls_flow_act_complete(a, o->name, strlen(o->name), &err) != LS_OK)
                raise_err(a, &err);
            goto out;
        case OP_CRASH:
            if (atomic_load(&h->crash_armed)) {
                ls_flow_act_abandon(a);
                goto out;
            }
            break;
        }
    }
done:
out:
    ls_buf_free(&child);
    ls_buf_free(&acc);
    ls_buf_free(&out);
}

static const ls_flow_runner runner = {.worker_open = r_worker_open,
                                      .worker_close = r_worker_close,
                                      .activate = r_activate,
                                      .has_type = r_has_type,
                                      .list_types = r_list_types,
                                      .type_limits = r_type_limits,
                                      .type_version = NULL};

/* ---- the environment: a store, a vault, an engine ---- */

typedef struct {
    th_store_dir d;
    ls_flow_t *f;
    harness h;
    th_clock fc;
    int frozen;           /* engines use fc, not the system clock */
    unsigned max_depth;   /* the engine's (0: its default) */
    int64_t retention_ms; /* the engine's (0: its default) */
} env;

/* From now on engines of e use a clock stopped at the present (th_clock:
 * the timer thread still waits on real time, at most the time left on the
 * clock between two looks). */
static void freeze(env *e)
{
    th_clock_init(&e->fc, ls_clock_wall_ms(NULL));
    e->frozen = 1;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "flow_engine");
    harness_init(&e->h);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    ls_flow_close(e->f);
    th_store_dir_close(&e->d);
    pthread_mutex_destroy(&e->h.mu);
    free(e);
    return 0;
}

/* Opens the engine over e's store (recovering what it holds); run starts
 * its threads. */
static void eng_open(env *e, int run)
{
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st,
                      .vault = e->d.v,
                      .clock = e->frozen ? &e->fc.clock : NULL,
                      .runner = &runner,
                      .runner_ud = &e->h,
                      .workers = 4,
                      .max_depth = e->max_depth,
                      .retention_ms = e->retention_ms,
                      .log = on_log,
                      .log_ud = &e->h};
    assert_null(e->f);
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    if (run) th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_close(env *e)
{
    ls_flow_close(e->f);
    e->f = NULL;
    assert_int_equal(atomic_load(&e->h.workers_open), 0);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
}

/* Starts a run and returns its object (caller decrefs). */
static json_t *start(env *e, const char *type, const char *name, const char *input, int *created)
{
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int c = -1;
    th_ok(ls_flow_start(e->f, type, strlen(type), name, name ? strlen(name) : 0, input,
                        input ? strlen(input) : 0, &run, &c, &err),
          &err);
    if (created) *created = c;
    json_t *j = NULL;
    th_ok(ls_json_parse((const char *)run.ptr, run.len, &j, &err), &err);
    ls_buf_free(&run);
    return j;
}

static void start1(env *e, const char *type, const char *name, const char *input)
{
    int created;
    json_decref(start(e, type, name, input, &created));
    assert_int_equal(created, 1);
}

/* ---- reading JSON views ---- */

static json_t *parse_buf(const ls_buf *b)
{
    json_t *j = NULL;
    ls_err err = {0};
    th_ok(ls_json_parse((const char *)b->ptr, b->len, &j, &err), &err);
    return j;
}

static json_t *describe(env *e, const char *name)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    return j;
}

static json_t *history(env *e, const char *name)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_history(e->f, name, strlen(name), &out, &err), &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    json_t *ev = json_incref(json_object_get(j, "events"));
    json_decref(j);
    assert_true(json_is_array(ev));
    return ev;
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

static void assert_json(const json_t *v, const char *expected)
{
    json_t *x = NULL;
    ls_err err = {0};
    th_ok(ls_json_parse(expected, strlen(expected), &x, &err), &err);
    if (!json_equal((json_t *)v, x)) {
        char *got = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        json_decref(x);
        fail_msg("JSON differs: got %s, expected %s", got ? got : "(none)", expected);
    }
    json_decref(x);
}

static const char *status_of(env *e, const char *name, char buf[32])
{
    json_t *d = describe(e, name);
    snprintf(buf, 32, "%s", jstr(d, "status"));
    json_decref(d);
    return buf;
}

/* Events of type (and name, when not NULL) in a history. */
static size_t count_events(const json_t *events, const char *type, const char *name)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (strcmp(jstr(ev, "type"), type) != 0) continue;
        if (name && strcmp(jstr(ev, "name"), name) != 0) continue;
        n++;
    }
    return n;
}

/* The k-th (0-based) event of type and name, or fails. */
static json_t *nth_event(const json_t *events, const char *type, const char *name, size_t k)
{
    size_t i, seen = 0;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (strcmp(jstr(ev, "type"), type) != 0) continue;
        if (name && strcmp(jstr(ev, "name"), name) != 0) continue;
        if (seen++ == k) return ev;
    }
    fail_msg("no %s event of \"%s\" number %zu (%zu of them)", type, name ? name : "*", k, seen);
    return NULL;
}

/* ---- waiting for the engine ---- */

/* A watch callback that counts (the watch test's own). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
} waiter;

static void on_end(void *ud)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->fired++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits (up to WAIT_MS) until the run has ended. */
static void wait_end(env *e, const char *name)
{
    th_wait_run_end(e->f, name, WAIT_MS);
}

/* Waits until the run is suspended on a timer (describe shows "waiting"). */
static json_t *wait_waiting(env *e, const char *name)
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        json_t *d = describe(e, name);
        json_t *w = json_object_get(d, "waiting");
        if (w) {
            json_incref(w);
            json_decref(d);
            return w;
        }
        json_decref(d);
        th_nap_ms(2);
    }
    fail_msg("run %s never waited", name);
    return NULL;
}

/* Waits until step of run has been called at least n times. */
static void wait_calls(env *e, const char *run, const char *step, int n)
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        if (calls(&e->h, run, step) >= n) return;
        th_nap_ms(2);
    }
    fail_msg("step %s of %s was not called %d times", step, run, n);
}

/* Waits until lodestoned's log (the harness's) holds needle. */
static void wait_log(env *e, const char *needle)
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        if (log_has(&e->h, needle)) return;
        th_nap_ms(2);
    }
    fail_msg("the log never said \"%s\"", needle);
}

/* Waits until no worker is busy and no run is queued: the activations
 * under way are over. */
static void wait_idle(env *e)
{
    ls_flow_stats st;
    for (int i = 0; i < WAIT_MS / 2; i++) {
        ls_flow_get_stats(e->f, &st);
        if (st.workers_busy == 0 && st.runs_queued == 0) return;
        th_nap_ms(2);
    }
    fail_msg("the engine never went idle");
}

/* A vault of another key file (key 1 of its own), as a daemon given the
 * wrong --key-file has. */
static ls_vault_t *other_vault(env *e)
{
    ls_err err = {0};
    ls_vault_t *v = NULL;
    char *path = th_path(e->d.dir, "other.key");
    ls_vault_opts vo = {.create_if_missing = 1};
    th_ok(ls_vault_load(&v, path, &vo, &err), &err);
    free(path);
    return v;
}

/* ---- 1. a run from start to end ---- */

static void test_engine_runs_to_completion(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    int created;
    json_t *r = start(e, "three", "order-1", "{\"amount\": 5, \"to\": \"ana\"}", &created);
    assert_int_equal(created, 1);
    assert_string_equal(jstr(r, "id"), "order-1");
    assert_string_equal(jstr(r, "type"), "three");
    assert_string_equal(jstr(r, "status"), "running");
    assert_json(json_object_get(r, "input"), "{\"amount\":5,\"to\":\"ana\"}");
    json_decref(r);
    wait_end(e, "order-1");

    json_t *d = describe(e, "order-1");
    assert_string_equal(jstr(d, "id"), "order-1");
    assert_string_equal(jstr(d, "type"), "three");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_int_equal(jint(d, "steps_completed"), 3);
    assert_int_equal(jint(d, "attempts_failed"), 0);
    assert_json(json_object_get(d, "input"), "{\"amount\":5,\"to\":\"ana\"}");
    assert_json(json_object_get(d, "output"),
                "{\"input\":{\"amount\":5,\"to\":\"ana\"},\"results\":["
                "{\"attempt\":1,\"gen\":1,\"step\":\"a\"},"
                "{\"attempt\":1,\"gen\":1,\"step\":\"b\"},"
                "{\"attempt\":1,\"gen\":1,\"step\":\"c\"}]}");
    assert_null(json_object_get(d, "error"));
    assert_null(json_object_get(d, "waiting"));
    jstr(d, "created_at");
    jstr(d, "updated_at");
    json_decref(d);

    /* The result view agrees. */
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    int done = 0;
    th_ok(ls_flow_result(e->f, "order-1", 7, &out, &done, &err), &err);
    assert_int_equal(done, 1);
    json_t *res = parse_buf(&out);
    assert_string_equal(jstr(res, "status"), "completed");
    assert_non_null(json_object_get(res, "output"));
    json_decref(res);
    ls_buf_free(&out);

    /* Each step ran once, each with its own idempotency key: the run's id
     * and the step's position among its commands. */
    const char *steps[] = {"a", "b", "c"};
    char prefix[64] = "";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(calls(&e->h, "order-1", steps[i]), 1);
        char key[64], want[8];
        int changed;
        key_of(&e->h, "order-1", steps[i], key, &changed);
        char *dash = strrchr(key, '-');
        assert_non_null(dash);
        snprintf(want, sizeof want, "-%d", i + 1);
        assert_string_equal(dash, want);
        if (i == 0)
            snprintf(prefix, sizeof prefix, "%.*s", (int)(dash - key), key);
        else
            assert_int_equal(strncmp(key, prefix, strlen(prefix)), 0);
        assert_int_equal(strlen(prefix), LS_ID_TEXTLEN);
    }

    /* History: started, three started/completed pairs, completed. */
    json_t *ev = history(e, "order-1");
    assert_int_equal(json_array_size(ev), 8);
    assert_string_equal(jstr(json_array_get(ev, 0), "type"), "workflow_started");
    assert_string_equal(jstr(json_array_get(ev, 7), "type"), "workflow_completed");
    assert_int_equal(count_events(ev, "step_started", NULL), 3);
    assert_int_equal(count_events(ev, "step_completed", NULL), 3);
    assert_json(json_object_get(nth_event(ev, "step_completed", "b", 0), "result"),
                "{\"attempt\":1,\"gen\":1,\"step\":\"b\"}");
    for (size_t i = 0; i < json_array_size(ev); i++)
        assert_int_equal(jint(json_array_get(ev, i), "seq"), (json_int_t)i + 1);
    json_decref(ev);

    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.started, 1);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.steps_completed, 3);
    assert_int_equal(st.runs_active, 0);
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.workers, 4);
    eng_close(e);
}

/* ---- 2. idempotent starts ---- */

typedef struct {
    env *e;
    pthread_barrier_t *bar;
    const char *name;
    int async;            /* ls_flow_start_async instead of ls_flow_start */
    atomic_int landed;    /* its done calls */
    atomic_int landed_rc; /* ... and the last one's rc */
    int created;
    char id[64];
    char created_at[64];
} starter;

static void on_start_landed(void *ud, ls_rc rc, const ls_err *err)
{
    starter *s = ud;
    (void)err;
    atomic_store(&s->landed_rc, (int)rc);
    atomic_fetch_add(&s->landed, 1);
}

static void *start_thread(void *p)
{
    starter *s = p;
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    pthread_barrier_wait(s->bar);
    const char *name = s->name ? s->name : "same";
    ls_rc rc = s->async ? ls_flow_start_async(s->e->f, "three", 5, name, strlen(name), "{\"n\":1}",
                                              7, 0, &run, &s->created, on_start_landed, s, &err)
                        : ls_flow_start(s->e->f, "three", 5, name, strlen(name), "{\"n\":1}", 7,
                                        &run, &s->created, &err);
    if (rc == LS_OK) {
        json_t *j = NULL;
        if (ls_json_parse((const char *)run.ptr, run.len, &j, NULL) == LS_OK) {
            snprintf(s->id, sizeof s->id, "%s", json_string_value(json_object_get(j, "id")));
            snprintf(s->created_at, sizeof s->created_at, "%s",
                     json_string_value(json_object_get(j, "created_at")));
        }
        json_decref(j);
    } else {
        s->created = -1;
    }
    ls_buf_free(&run);
    return NULL;
}

/* Text stored before the engine checked it for UTF-8 (a signal name, a
 * cancel reason) shows with U+FFFD where it was not UTF-8, instead of
 * making the run's history unreadable. (Such a run was written by an
 * older lodestoned: its events are of version 1, the last one added.) */
static void test_engine_text_stored_unchecked_still_shows(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    json_decref(start(e, "three", "order-u", "{}", NULL));
    wait_end(e, "order-u");
    ls_id id;
    ls_err err = {0};
    th_ok(flow_lookup(e->f, "order-u", 7, &id, &err), &err);
    json_t *before = history(e, "order-u");
    uint64_t next = json_array_size(before) + 1;
    json_decref(before);
    th_events_as_v1(e->d.st, e->d.v, 0, &id);
    static const char by[] = "\xff"
                             "bob",
                      reason[] = "bad \xc0\xaf reason";
    ls_event ev = {.version = 1,
                   .type = LS_EV_CANCEL_REQUESTED,
                   .seq = next,
                   .time_ms = 1,
                   .name = by,
                   .name_len = sizeof by - 1,
                   .error = reason,
                   .error_len = sizeof reason - 1};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    th_ok(ls_history_key(&k, &id, next, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, v.ptr, v.len, 0, &err), &err);
    ls_buf_free(&k);
    ls_buf_free(&v);

    json_t *evs = history(e, "order-u");
    json_t *last = json_array_get(evs, json_array_size(evs) - 1);
    assert_string_equal(jstr(last, "type"), "cancel_requested");
    assert_string_equal(jstr(last, "by"), "\xef\xbf\xbd"
                                          "bob");
    assert_string_equal(jstr(last, "reason"), "bad \xef\xbf\xbd\xef\xbf\xbd reason");
    json_decref(evs);
}

static void test_engine_start_is_idempotent(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    int created;
    json_t *first = start(e, "three", "pay-7", "{\"amount\":1}", &created);
    assert_int_equal(created, 1);
    json_t *again = start(e, "three", "pay-7", "{\"amount\":999}", &created);
    assert_int_equal(created, 0);
    assert_string_equal(jstr(again, "id"), "pay-7");
    assert_string_equal(jstr(again, "created_at"), jstr(first, "created_at"));
    assert_json(json_object_get(again, "input"), "{\"amount\":1}");
    json_decref(first);
    json_decref(again);
    wait_end(e, "pay-7");
    /* Once more after the end: still the same run, now completed. */
    again = start(e, "three", "pay-7", NULL, &created);
    assert_int_equal(created, 0);
    assert_string_equal(jstr(again, "status"), "completed");
    assert_json(json_object_get(again, "input"), "{\"amount\":1}");
    json_decref(again);

    /* Eight threads start one name at once: one creates it. */
    enum { N = 8 };
    pthread_t th[N];
    starter s[N];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].e = e;
        s[i].bar = &bar;
        assert_int_equal(pthread_create(&th[i], NULL, start_thread, &s[i]), 0);
    }
    int ncreated = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_true(s[i].created == 0 || s[i].created == 1);
        ncreated += s[i].created;
        assert_string_equal(s[i].id, "same");
        assert_string_equal(s[i].created_at, s[0].created_at);
    }
    pthread_barrier_destroy(&bar);
    assert_int_equal(ncreated, 1);
    wait_end(e, "same");

    for (const char *const *n = (const char *const[]){"pay-7", "same", NULL}; *n; n++) {
        char st[32];
        assert_string_equal(status_of(e, *n, st), "completed");
        assert_int_equal(calls(&e->h, *n, "a"), 1);
        assert_int_equal(calls(&e->h, *n, "c"), 1);
    }
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, NULL, NULL, 0, NULL, &out, &err), &err);
    json_t *l = parse_buf(&out);
    assert_int_equal(json_array_size(json_object_get(l, "runs")), 2);
    json_decref(l);
    ls_buf_free(&out);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.started, 2);

    /* Asynchronous starts with a name, mixed with waiting ones: a start of
     * a name being written waits for it, then finds the run. Per name, one
     * start creates it (and only that one is called back, once). */
    for (int round = 0; round < 6; round++) {
        char name[32];
        snprintf(name, sizeof name, "mixed-%d", round);
        pthread_barrier_init(&bar, NULL, N);
        for (int i = 0; i < N; i++) {
            memset(&s[i], 0, sizeof s[i]);
            s[i].e = e;
            s[i].bar = &bar;
            s[i].name = name;
            s[i].async = round % 2 == 0 || i % 2 == 1; /* even rounds: all asynchronous */
            assert_int_equal(pthread_create(&th[i], NULL, start_thread, &s[i]), 0);
        }
        ncreated = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            assert_true(s[i].created == 0 || s[i].created == 1);
            ncreated += s[i].created;
            assert_string_equal(s[i].id, name);
            assert_string_equal(s[i].created_at, s[0].created_at);
        }
        pthread_barrier_destroy(&bar);
        assert_int_equal(ncreated, 1);
        wait_end(e, name);
        for (int i = 0; i < N; i++) {
            int want = s[i].async && s[i].created;
            for (int k = 0; k < WAIT_MS && atomic_load(&s[i].landed) < want; k++) th_nap_ms(1);
            assert_int_equal(atomic_load(&s[i].landed), want);
            if (want) assert_int_equal(atomic_load(&s[i].landed_rc), LS_OK);
        }
        assert_int_equal(calls(&e->h, name, "a"), 1);
    }
    /* After the end, an asynchronous start of the name: the same run,
     * completed, never called back. */
    memset(&s[0], 0, sizeof s[0]);
    created = -1;
    ls_buf run = LS_BUF_INIT;
    th_ok(ls_flow_start_async(e->f, "three", 5, "mixed-0", 7, NULL, 0, 0, &run, &created,
                              on_start_landed, &s[0], &err),
          &err);
    assert_int_equal(created, 0);
    json_t *j = parse_buf(&run);
    assert_string_equal(jstr(j, "status"), "completed");
    json_decref(j);
    ls_buf_free(&run);
    /* A bad name is refused before anything. */
    assert_int_equal(ls_flow_start_async(e->f, "three", 5, "no spaces", 9, NULL, 0, 0, &run,
                                         &created, on_start_landed, &s[0], &err),
                     LS_EINVAL);
    th_nap_ms(20);
    assert_int_equal(atomic_load(&s[0].landed), 0);
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.started, 2 + 6);
    eng_close(e);
}

/* ---- 3. bad starts ---- */

static void expect_start_error(env *e, const char *type, const char *name, size_t nlen,
                               const char *input, ls_rc rc, const char *needle)
{
    ls_buf run = LS_BUF_INIT;
    ls_err err = {0};
    int created = -1;
    ls_rc got = ls_flow_start(e->f, type, strlen(type), name, nlen, input,
                              input ? strlen(input) : 0, &run, &created, &err);
    ls_buf_free(&run);
    if (got != rc)
        fail_msg("start %s/%.*s: got %s (%s), expected %s", type, (int)nlen, name ? name : "",
                 ls_rc_name(got), err.msg, ls_rc_name(rc));
    assert_int_equal(err.code, rc);
    assert_int_equal(created, 0);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void test_engine_start_rejects_bad_arguments(void **state)
{
    env *e = *state;
    eng_open(e, 0); /* nothing needs to run */

    expect_start_error(e, "nope", "r1", 2, NULL, LS_ENOTFOUND, "unknown workflow type \"nope\"");
    expect_start_error(e, "nope", "r1", 2, NULL, LS_ENOTFOUND, "three,flaky,doomed");
    expect_start_error(e, "nope", "r1", 2, NULL, LS_ENOTFOUND, "raises,silent");
    expect_start_error(e, "thre", "r1", 2, NULL, LS_ENOTFOUND, "known types: three,");
    expect_start_error(e, "three", "a b", 3, NULL, LS_EINVAL, "character 2 (0x20)");
    expect_start_error(e, "three", "x/y", 3, NULL, LS_EINVAL, "character 2 (0x2f)");
    expect_start_error(e, "three", "\xc3\xa9t\xc3\xa9", 6, NULL, LS_EINVAL, "character 1 (0xc3)");
    expect_start_error(e, "three", "nul\0x", 5, NULL, LS_EINVAL, "character 4 (0x00)");
    /* Ids a URL cannot name: /v1/workflows/.. is /v1/. */
    expect_start_error(e, "three", "..", 2, NULL, LS_EINVAL, "id: \"..\" is not allowed");
    expect_start_error(e, "three", ".", 1, NULL, LS_EINVAL, "id: \".\" is not allowed");
    char longname[202];
    memset(longname, 'n', 201);
    longname[201] = '\0';
    expect_start_error(e, "three", longname, 201, NULL, LS_EINVAL, "got 201");
    expect_start_error(e, "three", longname, 201, NULL, LS_EINVAL, "1 to 200 characters");
    expect_start_error(e, "three", "r1", 2, "{\"a\":", LS_EINVAL, "input");
    expect_start_error(e, "three", "r1", 2, "{\"a\":1,\"a\":2}", LS_EINVAL, "input");
    expect_start_error(e, "three", "r1", 2, "[1,2] x", LS_EINVAL, "input");
    /* None of them started anything. */
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    assert_int_equal(ls_flow_describe(e->f, "r1", 2, &out, &err), LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "\"r1\""));

    /* 200 characters of every allowed kind are fine. */
    for (int i = 0; i < 200; i++) longname[i] = "aZ09-_.:@"[i % 9];
    longname[200] = '\0';
    start1(e, "three", longname, NULL);
    json_t *d = describe(e, longname);
    assert_string_equal(jstr(d, "id"), longname);
    assert_true(json_is_null(json_object_get(d, "input")));
    json_decref(d);

    /* An empty name is a fresh id, every time. */
    int created;
    json_t *r1 = start(e, "three", "", "{}", &created);
    assert_int_equal(created, 1);
    json_t *r2 = start(e, "three", NULL, "{}", &created);
    assert_int_equal(created, 1);
    const char *id1 = jstr(r1, "id"), *id2 = jstr(r2, "id");
    assert_int_equal(strlen(id1), LS_ID_TEXTLEN);
    assert_string_not_equal(id1, id2);
    ls_id parsed;
    th_ok(ls_id_parse(&parsed, id1, strlen(id1), &err), &err);
    d = describe(e, id2);
    assert_string_equal(jstr(d, "status"), "running");
    json_decref(d);
    json_decref(r1);
    json_decref(r2);

    th_ok(ls_flow_list(e->f, NULL, NULL, 0, NULL, &out, &err), &err);
    json_t *l = parse_buf(&out);
    assert_int_equal(json_array_size(json_object_get(l, "runs")), 3);
    json_decref(l);
    ls_buf_free(&out);
    eng_close(e);
}

/* Fails unless msg starts with want. */
static void assert_prefix(const char *msg, const char *want)
{
    if (strncmp(msg, want, strlen(want)) != 0) fail_msg("[%s] does not start [%s]", want, msg);
}

/* Workflow type names: 1 to 200 characters of letters, digits and
 * - _ . :, not "." or "..". A start (the API's, a child's) of another is
 * refused before the type is looked up, naming the rule; a name of 100 KB
 * is not copied into the message. */
static void test_engine_type_names_checked(void **state)
{
    env *e = *state;
    ls_err err = {0};
    static const char *const good[] = {"order", "github-push", "nightly_cleanup", "a:b.c", "...",
                                       ".x",    NAME200};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        th_ok(ls_flow_check_type_name(good[i], strlen(good[i]), NULL, &err), &err);
    static const struct {
        const char *s;
        size_t n;
        const char *msg;
    } bad[] = {
        {"", 0, "workflow type: must be 1 to 200 characters, got 0"},
        {NAME201, 201, "workflow type: must be 1 to 200 characters, got 201"},
        {".", 1, "workflow type: \".\" is not allowed: a URL reads it as a path step"},
        {"..", 2, "workflow type: \"..\" is not allowed: a URL reads it as a path step"},
        {"a/b", 3,
         "workflow type: character 2 (0x2f) is not allowed; use letters, digits and - _ . :"},
        {"a b", 3, "workflow type: character 2 (0x20) is not allowed"},
        {"a\0b", 3, "workflow type: character 2 (0x00) is not allowed"},
        {"a\nb", 3, "workflow type: character 2 (0x0a) is not allowed"},
        {"a\177", 2, "workflow type: character 2 (0x7f) is not allowed"},
        {"a\302\205", 3, "workflow type: character 2 (0xc2) is not allowed"}, /* U+0085 */
        {"caf\xc3\xa9", 5, "workflow type: character 4 (0xc3) is not allowed"},
        {"a\xff", 2, "workflow type: character 2 (0xff) is not allowed"},
        {"a@b", 3, "workflow type: character 2 (0x40) is not allowed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ls_flow_check_type_name(bad[i].s, bad[i].n, NULL, &err), LS_EINVAL);
        assert_prefix(err.msg, bad[i].msg);
    }
    assert_int_equal(ls_flow_check_type_name("a/b", 3, "name", &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "name: character 2 (0x2f)"));

    eng_open(e, 1);
    ls_buf run = LS_BUF_INIT;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int created = -1;
        err = (ls_err){0};
        assert_int_equal(
            ls_flow_start(e->f, bad[i].s, bad[i].n, "r1", 2, NULL, 0, &run, &created, &err),
            LS_EINVAL);
        assert_prefix(err.msg, bad[i].msg);
        assert_int_equal(created, 0);
        /* (the async start, which the API uses, checks alike) */
        assert_int_equal(ls_flow_start_async(e->f, bad[i].s, bad[i].n, "r1", 2, NULL, 0, 0, &run,
                                             &created, NULL, NULL, &err),
                         LS_EINVAL);
        assert_prefix(err.msg, bad[i].msg);
    }
    size_t big = 100000;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 't', big);
    int created = -1;
    assert_int_equal(ls_flow_start(e->f, huge, big, "r1", 2, NULL, 0, &run, &created, &err),
                     LS_EINVAL);
    assert_string_equal(err.msg, "workflow type: must be 1 to 200 characters, got 100000");
    free(huge);
    assert_int_equal(ls_flow_describe(e->f, "r1", 2, &run, &err), LS_ENOTFOUND);
    ls_buf_free(&run);

    /* A child of such a type fails its parent, naming the rule. */
    start1(e, "parent_badtype", "pb-1", NULL);
    wait_end(e, "pb-1");
    json_t *d = describe(e, "pb-1");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "child workflow: workflow type: character 3 (0x2f) "
                                             "is not allowed; use letters, digits and - _ . :"));
    json_decref(d);
    eng_close(e);
}

/* Rewrites the stored record of run `name` (the engine closed) to type
 * `type`, and its type index entry: a run that an older lodestoned
 * stored under a type name it took as it was. */
static void retype_run(env *e, const ls_id *id, const char *type)
{
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, nv = LS_BUF_INIT, tk = LS_BUF_INIT;
    ls_store_batch_t *b = NULL;
    ls_run_record rec;
    th_ok(ls_run_key(&k, id, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    th_ok(ls_run_decode(v.ptr, v.len, &rec, &err), &err);
    th_ok(ls_store_batch_new(&b, &err), &err);
    th_ok(flow_key_type(&tk, rec.type, rec.type_len, id, &err), &err);
    ls_store_batch_delete(b, tk.ptr, tk.len);
    rec.type = type;
    rec.type_len = strlen(type);
    th_ok(ls_run_encode(&rec, &nv, &err), &err);
    ls_store_batch_put(b, k.ptr, k.len, nv.ptr, nv.len);
    th_ok(flow_key_type(&tk, type, strlen(type), id, &err), &err);
    ls_store_batch_put(b, tk.ptr, tk.len, "", 0);
    th_ok(ls_store_write(e->d.st, b, LS_STORE_SYNC, &err), &err);
    ls_store_batch_free(b);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&nv);
    ls_buf_free(&tk);
}

/* The ids of the runs a list of type gives (comma-separated). */
static void list_ids(env *e, const char *type, char *out, size_t cap)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, NULL, type, 0, NULL, &b, &err), &err);
    json_t *l = parse_buf(&b), *r;
    size_t i, n = 0;
    out[0] = '\0';
    json_array_foreach(json_object_get(l, "runs"), i, r)
    {
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", jstr(r, "id"));
        assert_true(n < cap);
    }
    json_decref(l);
    ls_buf_free(&b);
}

/* Runs stored under a type name the rule refuses now (250 characters, a
 * space) are read as they are: recovered, shown, listed (by that type
 * too), and a running one replays and goes on: only starts check. */
static void test_engine_type_stored_unchecked_still_runs(void **state)
{
    env *e = *state;
    e->h.scripts = scripts_typed;
    eng_open(e, 1);
    start1(e, "old", "ot-1", NULL);
    start1(e, "old_done", "ot-2", NULL);
    json_decref(wait_waiting(e, "ot-1"));
    wait_end(e, "ot-2");
    ls_id id1, id2;
    ls_err err = {0};
    th_ok(flow_lookup(e->f, "ot-1", 4, &id1, &err), &err);
    th_ok(flow_lookup(e->f, "ot-2", 4, &id2, &err), &err);
    eng_close(e);
    retype_run(e, &id1, TYPE250);
    retype_run(e, &id2, "a b");

    eng_open(e, 1);
    json_t *d = describe(e, "ot-1");
    assert_string_equal(jstr(d, "type"), TYPE250);
    assert_string_equal(jstr(d, "status"), "running");
    json_decref(d);
    d = describe(e, "ot-2");
    assert_string_equal(jstr(d, "type"), "a b");
    assert_string_equal(jstr(d, "status"), "completed");
    json_decref(d);
    char ids[64];
    list_ids(e, TYPE250, ids, sizeof ids);
    assert_string_equal(ids, "ot-1");
    list_ids(e, "a b", ids, sizeof ids);
    assert_string_equal(ids, "ot-2");
    list_ids(e, NULL, ids, sizeof ids);
    assert_string_equal(ids, "ot-2,ot-1");
    th_ok(ls_flow_signal(e->f, "ot-1", 4, "go", 2, "1", 1, &err), &err);
    wait_end(e, "ot-1");
    d = describe(e, "ot-1");
    assert_string_equal(jstr(d, "status"), "completed");
    json_decref(d);
    /* A new start of either is refused. */
    ls_buf run = LS_BUF_INIT;
    int created = -1;
    assert_int_equal(ls_flow_start(e->f, "a b", 3, NULL, 0, NULL, 0, &run, &created, &err),
                     LS_EINVAL);
    ls_buf_free(&run);
    eng_close(e);
}

/* A run's log line (ctx:log, s:log) of more than LS_FLOW_LOG_LINEMAX
 * bytes is cut where a character starts, saying how many bytes were
 * dropped; a NUL is logged as U+FFFD. */
static void test_engine_log_line_cut(void **state)
{
    (void)state;
    static char line[FLOW_LOG_LINECAP];
    size_t big = 10u << 20;
    char *msg = malloc(big);
    assert_non_null(msg);

    assert_int_equal(flow_log_line("hello", 5, line, sizeof line), 5);
    assert_string_equal(line, "hello");
    assert_int_equal(flow_log_line("a\0b", 3, line, sizeof line), 5);
    assert_string_equal(line, "a\xef\xbf\xbd"
                              "b");
    /* up to the limit: whole */
    memset(msg, 'x', big);
    assert_int_equal(flow_log_line(msg, LS_FLOW_LOG_LINEMAX, line, sizeof line),
                     LS_FLOW_LOG_LINEMAX);
    assert_int_equal(flow_log_line(msg, LS_FLOW_LOG_LINEMAX + 1, line, sizeof line),
                     LS_FLOW_LOG_LINEMAX + strlen(" [cut: 1 byte dropped]"));
    assert_string_equal(line + LS_FLOW_LOG_LINEMAX, " [cut: 1 byte dropped]");
    /* "a" and 2-byte characters: byte 8193 (the first past the limit) is
     * the second of one, which goes whole */
    msg[0] = 'a';
    for (size_t i = 1; i + 1 < big; i += 2) memcpy(msg + i, "\xc3\xa9", 2);
    size_t n = flow_log_line(msg, big - 1, line, sizeof line);
    char want[64];
    snprintf(want, sizeof want, " [cut: %zu bytes dropped]", big - 1 - 8191);
    assert_int_equal(n, 8191 + strlen(want));
    assert_memory_equal(line + 8189, "\xc3\xa9", 2);
    assert_string_equal(line + 8191, want);
    /* 4-byte characters after "ab": one starts at byte 8191 (0-based 8190) */
    memcpy(msg, "ab", 2);
    for (size_t i = 2; i + 4 <= big; i += 4) memcpy(msg + i, "\xf0\x9d\x84\x9e", 4);
    n = flow_log_line(msg, 2 + 4 * 5000, line, sizeof line);
    assert_int_equal(n, 8190 + strlen(" [cut: 11812 bytes dropped]"));
    assert_string_equal(line + 8190, " [cut: 11812 bytes dropped]");
    /* NULs up to the limit: each as U+FFFD, in the room the header says */
    memset(msg, 0, big);
    n = flow_log_line(msg, big, line, sizeof line);
    assert_int_equal(n, (size_t)3 * LS_FLOW_LOG_LINEMAX + strlen(" [cut: 10477568 bytes dropped]"));
    assert_true(n < FLOW_LOG_LINECAP);
    free(msg);
}

/* Through ls_flow_act_log, which ctx:log and s:log call: the log sink
 * gets the cut line. */
static void test_engine_log_lines_cut(void **state)
{
    env *e = *state;
    size_t big = 10u << 20;
    char *msg = malloc(big);
    assert_non_null(msg);
    memset(msg, 'y', big);
    e->h.logmsg = msg;
    e->h.logmsg_len = big;
    eng_open(e, 1);
    start1(e, "logger", "lg-cut", NULL);
    wait_end(e, "lg-cut");
    assert_int_equal(e->h.last_log_len,
                     LS_FLOW_LOG_LINEMAX + strlen(" [cut: 10477568 bytes dropped]"));
    assert_string_equal(e->h.last_log_tail + sizeof e->h.last_log_tail - 1 -
                            strlen("yy [cut: 10477568 bytes dropped]"),
                        "yy [cut: 10477568 bytes dropped]");
    eng_close(e);
    free(msg);
}

/* ---- 4. retries and failures ---- */

static void test_engine_retry_then_success(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "flaky", "fl-1", "{}");
    wait_end(e, "fl-1");
    json_t *d = describe(e, "fl-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_int_equal(jint(d, "attempts_failed"), 2);
    assert_int_equal(jint(d, "steps_completed"), 1);
    assert_json(json_object_get(d, "output"),
                "{\"input\":{},\"results\":[{\"attempt\":3,\"gen\":1,\"step\":\"charge\"}]}");
    json_decref(d);
    assert_int_equal(calls(&e->h, "fl-1", "charge"), 3);
    char key[64];
    int changed;
    key_of(&e->h, "fl-1", "charge", key, &changed);
    assert_false(changed); /* one idempotency key for every attempt */

    json_t *ev = history(e, "fl-1");
    assert_int_equal(count_events(ev, "step_failed", "charge"), 2);
    for (int i = 0; i < 2; i++) {
        json_t *f = nth_event(ev, "step_failed", "charge", (size_t)i);
        assert_int_equal(jint(f, "attempt"), i + 1);
        assert_string_equal(jstr(f, "error"), "flaky: try again");
        jstr(f, "retry_at");
        assert_null(json_object_get(f, "final"));
    }
    assert_int_equal(count_events(ev, "step_completed", "charge"), 1);
    assert_int_equal(jint(nth_event(ev, "step_completed", "charge", 0), "attempt"), 3);
    assert_int_equal(count_events(ev, "step_started", "charge"), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(jint(nth_event(ev, "step_started", "charge", (size_t)i), "attempt"),
                         i + 1);
    json_decref(ev);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.steps_failed, 2);
    assert_int_equal(st.timers, 0);
    eng_close(e);
}

static void test_engine_retries_exhausted(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "doomed", "dm-1", NULL);
    wait_end(e, "dm-1");
    json_t *d = describe(e, "dm-1");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_int_equal(jint(d, "attempts_failed"), 3);
    assert_int_equal(jint(d, "steps_completed"), 1);
    const char *msg = jstr(d, "error");
    assert_non_null(strstr(msg, "step \"charge\" failed on attempt 3"));
    assert_non_null(strstr(msg, "still down"));
    assert_null(json_object_get(d, "output"));
    json_decref(d);
    /* max_attempts 3 of the step, not 10 of the workflow. */
    assert_int_equal(calls(&e->h, "dm-1", "charge"), 3);
    assert_int_equal(calls(&e->h, "dm-1", "a"), 1);

    json_t *ev = history(e, "dm-1");
    assert_int_equal(count_events(ev, "step_failed", "charge"), 3);
    json_t *last = nth_event(ev, "step_failed", "charge", 2);
    assert_int_equal(jint(last, "attempt"), 3);
    assert_true(json_is_true(json_object_get(last, "final")));
    assert_null(json_object_get(last, "retry_at"));
    json_t *wf = nth_event(ev, "workflow_failed", NULL, 0);
    assert_non_null(strstr(jstr(wf, "error"), "step \"charge\" failed on attempt 3"));
    json_decref(ev);

    /* The result view carries the error. */
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    int done;
    th_ok(ls_flow_result(e->f, "dm-1", 4, &out, &done, &err), &err);
    assert_int_equal(done, 1);
    json_t *r = parse_buf(&out);
    assert_string_equal(jstr(r, "status"), "failed");
    assert_non_null(strstr(jstr(r, "error"), "attempt 3"));
    json_decref(r);
    ls_buf_free(&out);
    eng_close(e);
}

static void test_engine_retry_backoff_survives_restart(void **state)
{
    env *e = *state;
    freeze(e);
    eng_open(e, 1);
    start1(e, "backoff", "bo-1", NULL);
    json_t *w = wait_waiting(e, "bo-1");
    assert_string_equal(jstr(w, "kind"), "retry");
    assert_string_equal(jstr(w, "name"), "charge");
    json_decref(w);
    eng_close(e); /* during the backoff */

    eng_open(e, 0);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.timers, 1); /* the retry's durable timer */
    assert_int_equal(st.runs_queued, 0);
    ls_err err = {0};
    th_ok(ls_flow_run(e->f, &err), &err);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "bo-1");
    json_t *d = describe(e, "bo-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_int_equal(jint(d, "attempts_failed"), 1);
    json_decref(d);
    assert_int_equal(calls(&e->h, "bo-1", "a"), 1);
    assert_int_equal(calls(&e->h, "bo-1", "charge"), 2);
    char key[64];
    int changed;
    key_of(&e->h, "bo-1", "charge", key, &changed);
    assert_false(changed);
    json_t *ev = history(e, "bo-1");
    assert_int_equal(jint(nth_event(ev, "step_completed", "charge", 0), "attempt"), 2);
    json_decref(ev);
    eng_close(e);
}

static void test_engine_fatal_failures_stop_at_once(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "fatal", "ft-1", NULL);
    start1(e, "coded", "ft-2", NULL);
    start1(e, "badpolicy", "ft-3", NULL);
    wait_end(e, "ft-1");
    wait_end(e, "ft-2");
    wait_end(e, "ft-3");

    /* workflow.fatal: one attempt, final. */
    json_t *d = describe(e, "ft-1");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_int_equal(jint(d, "attempts_failed"), 1);
    assert_non_null(strstr(jstr(d, "error"), "step \"charge\" failed on attempt 1: card declined"));
    json_decref(d);
    assert_int_equal(calls(&e->h, "ft-1", "charge"), 1);
    json_t *ev = history(e, "ft-1");
    assert_int_equal(count_events(ev, "step_failed", NULL), 1);
    json_t *f = nth_event(ev, "step_failed", "charge", 0);
    assert_int_equal(jint(f, "attempt"), 1);
    assert_true(json_is_true(json_object_get(f, "final")));
    assert_null(json_object_get(f, "retry_at"));
    json_decref(ev);

    /* A code its policy lists as non-retryable: the same. */
    d = describe(e, "ft-2");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "card expired"));
    json_decref(d);
    assert_int_equal(calls(&e->h, "ft-2", "charge"), 1);

    /* A retry policy with an unknown field is the code's error: the
     * runner raises what the engine said about it. */
    d = describe(e, "ft-3");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "backof"));
    json_decref(d);
    assert_int_equal(calls(&e->h, "ft-3", "charge"), 1);
    eng_close(e);
}

static void test_engine_runner_errors_fail_the_run(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "raises", "rs-1", NULL);
    start1(e, "silent", "rs-2", NULL);
    wait_end(e, "rs-1");
    wait_end(e, "rs-2");
    json_t *d = describe(e, "rs-1");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_string_equal(jstr(d, "error"), "boom: out of widgets");
    assert_int_equal(jint(d, "steps_completed"), 1);
    json_decref(d);
    json_t *ev = history(e, "rs-1");
    json_t *wf = nth_event(ev, "workflow_failed", NULL, 0);
    assert_string_equal(jstr(wf, "traceback"), "stack traceback:\n\tworkflow.lua:12: in run");
    json_decref(ev);
    /* Returning without an outcome fails the run, saying so. */
    d = describe(e, "rs-2");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "without an outcome"));
    json_decref(d);
    eng_close(e);
}

/* ---- 5. a durable timer across a restart ---- */

static void test_engine_timer_survives_restart(void **state)
{
    env *e = *state;
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap", "nap-1", "{\"why\":\"restart\"}");
    json_t *w = wait_waiting(e, "nap-1");
    assert_string_equal(jstr(w, "kind"), "sleep");
    jstr(w, "due_at");
    json_decref(w);
    assert_int_equal(calls(&e->h, "nap-1", "a"), 1);
    ls_err err = {0};
    th_ok(ls_flow_stop(e->f, 0, &err), &err);
    th_ok(ls_flow_stop(e->f, 0, &err), &err); /* idempotent */
    eng_close(e);

    /* A full restart: store and vault too. */
    th_store_close(&e->d.st, &e->d.v);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    eng_open(e, 0);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.runs_active, 1);
    assert_int_equal(st.timers, 1);      /* rebuilt from the durable timer key */
    assert_int_equal(st.runs_queued, 0); /* waits for it, not the queue */
    th_ok(ls_flow_run(e->f, &err), &err);
    assert_int_equal(ls_flow_run(e->f, &err), LS_EINVAL);
    th_clock_advance(&e->fc, 200);
    wait_end(e, "nap-1");

    json_t *d = describe(e, "nap-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_int_equal(jint(d, "steps_completed"), 2);
    json_decref(d);
    assert_int_equal(calls(&e->h, "nap-1", "a"), 1);
    assert_int_equal(calls(&e->h, "nap-1", "b"), 1);
    json_t *ev = history(e, "nap-1");
    assert_int_equal(count_events(ev, "timer_started", NULL), 1);
    assert_int_equal(count_events(ev, "timer_fired", NULL), 1);
    assert_true(jint(nth_event(ev, "timer_fired", NULL, 0), "seq") >
                jint(nth_event(ev, "timer_started", NULL, 0), "seq"));
    assert_true(jint(nth_event(ev, "step_started", "b", 0), "seq") >
                jint(nth_event(ev, "timer_fired", NULL, 0), "seq"));
    jstr(nth_event(ev, "timer_started", NULL, 0), "due_at");
    json_decref(ev);
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.runs_active, 0);
    eng_close(e);
}

/* ---- parallel branches as branch runs ---- */

/* The ids of the branch runs a run started (from its history). */
static void branch_ids(env *e, const char *run, char out[][64], size_t n)
{
    json_t *ev = history(e, run);
    size_t k = 0, i;
    json_t *x;
    json_array_foreach(ev, i, x)
    {
        if (strcmp(jstr(x, "type"), "child_started") == 0 && k < n)
            snprintf(out[k++], 64, "%s", jstr(x, "name"));
    }
    assert_int_equal(k, n);
    json_decref(ev);
}

static const char *step_of(const json_t *v)
{
    return json_string_value(json_object_get(v, "step"));
}

static void test_engine_branch_runs(void **state)
{
    env *e = *state;
    char s[32], kids[2][64];
    freeze(e);
    eng_open(e, 1);
    start1(e, "fan", "fan-1", "{\"n\":1}");
    json_t *w = wait_waiting(e, "fan-1");
    assert_string_equal(jstr(w, "kind"), "child"); /* waits for branch 1, which sleeps */
    json_decref(w);
    branch_ids(e, "fan-1", kids, 2);
    assert_non_null(strstr(kids[0], "-b1.1"));
    assert_non_null(strstr(kids[1], "-b1.2"));
    wait_end(e, kids[1]);
    w = wait_waiting(e, kids[0]);
    assert_string_equal(jstr(w, "kind"), "sleep");
    json_decref(w);

    /* A restart while branch 1 sleeps: it is still a branch run after it. */
    ls_err err = {0};
    th_ok(ls_flow_stop(e->f, 0, &err), &err);
    eng_close(e);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "fan-1");
    json_t *d = describe(e, "fan-1");
    assert_string_equal(jstr(d, "status"), "completed");
    json_t *res = json_object_get(json_object_get(d, "output"), "results");
    assert_int_equal(json_array_size(res), 3); /* a, [b1, b2], z */
    assert_string_equal(step_of(json_array_get(res, 0)), "a");
    assert_string_equal(step_of(json_array_get(json_array_get(res, 1), 0)), "b1");
    assert_string_equal(step_of(json_array_get(json_array_get(res, 1), 1)), "b2");
    assert_string_equal(step_of(json_array_get(res, 2)), "z");
    json_decref(d);
    /* Step a ran once: the branch runs replay it from their copy. */
    assert_int_equal(calls(&e->h, "fan-1", "a"), 1);
    assert_int_equal(calls(&e->h, kids[0], "a"), 0);
    assert_int_equal(calls(&e->h, kids[0], "b1"), 1);
    assert_int_equal(calls(&e->h, kids[1], "b2"), 1);
    assert_int_equal(calls(&e->h, kids[0], "z"), 0);

    d = describe(e, kids[0]);
    assert_string_equal(jstr(d, "parent"), "fan-1");
    assert_string_equal(jstr(d, "branch"), "[1.1]");
    assert_string_equal(jstr(d, "status"), "completed");
    json_decref(d);
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_flow_history(e->f, kids[0], strlen(kids[0]), &out, &err), &err);
    json_t *ho = parse_buf(&out);
    ls_buf_free(&out);
    assert_string_equal(jstr(ho, "branch"), "[1.1]");
    assert_true(jint(ho, "parent_events") >= 3); /* started, a started, a completed */
    json_decref(ho);
    /* its own events only: the branch's timer and step, and its end */
    json_t *ev = history(e, kids[0]);
    assert_string_equal(jstr(json_array_get(ev, 0), "type"), "timer_started");
    assert_int_equal(count_events(ev, "step_completed", "a"), 0);
    assert_int_equal(count_events(ev, "step_completed", "[1.1]b1"), 1);
    json_decref(ev);
    ev = history(e, "fan-1");
    assert_int_equal(count_events(ev, "child_completed", NULL), 2);
    assert_int_equal(count_events(ev, "step_completed", NULL), 2); /* a and z */
    json_decref(ev);
    assert_string_equal(status_of(e, kids[1], s), "completed");
    eng_close(e);
}

/* A run that ends in the write that starts its branch runs (its code
 * raised right after): they are asked to cancel in that same write. */
static void test_engine_branch_runs_end_with_their_run(void **state)
{
    env *e = *state;
    char s[32], kids[2][64];
    freeze(e); /* branch 1's sleep would never end */
    eng_open(e, 1);
    start1(e, "fan_fail", "ff-1", NULL);
    wait_end(e, "ff-1");
    assert_string_equal(status_of(e, "ff-1", s), "failed");
    branch_ids(e, "ff-1", kids, 2);
    wait_end(e, kids[0]);
    assert_string_equal(status_of(e, kids[0], s), "cancelled"); /* at its sleep */
    wait_end(e, kids[1]);
    eng_close(e);
}

/* ---- 6. recovery of runs that never ran ---- */

static void test_engine_recovers_unstarted_runs(void **state)
{
    env *e = *state;
    char name[16];
    eng_open(e, 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "rec-%d", i);
        start1(e, "three", name, "{\"i\":1}");
    }
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.runs_queued, 5);
    eng_close(e); /* never ran */
    assert_int_equal(calls(&e->h, "rec-0", "a"), 0);

    eng_open(e, 0);
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.runs_active, 5);
    assert_int_equal(st.runs_queued, 5);
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.started, 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "rec-%d", i);
        char s[32];
        assert_string_equal(status_of(e, name, s), "running");
    }
    ls_err err = {0};
    th_ok(ls_flow_run(e->f, &err), &err);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "rec-%d", i);
        wait_end(e, name);
        char s[32];
        assert_string_equal(status_of(e, name, s), "completed");
        assert_int_equal(calls(&e->h, name, "a"), 1);
        assert_int_equal(calls(&e->h, name, "b"), 1);
        assert_int_equal(calls(&e->h, name, "c"), 1);
    }
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.completed, 5);
    assert_int_equal(st.runs_active, 0);
    eng_close(e);
}

/* ---- 7. replay of recorded results ---- */

static void test_engine_replay_returns_recorded_results(void **state)
{
    env *e = *state;
    freeze(e);
    eng_open(e, 1);
    start1(e, "ab_sleep", "rp-1", "{\"k\":\"v\"}");
    json_decref(wait_waiting(e, "rp-1"));
    assert_int_equal(calls(&e->h, "rp-1", "a"), 1);
    assert_int_equal(calls(&e->h, "rp-1", "b"), 1);
    eng_close(e); /* while it sleeps */

    /* New step code would give other results: the run must see the old. */
    atomic_store(&e->h.gen, 2);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "rp-1");
    json_t *d = describe(e, "rp-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_json(json_object_get(d, "output"), "{\"input\":{\"k\":\"v\"},\"results\":["
                                              "{\"attempt\":1,\"gen\":1,\"step\":\"a\"},"
                                              "{\"attempt\":1,\"gen\":1,\"step\":\"b\"},"
                                              "{\"attempt\":1,\"gen\":2,\"step\":\"c\"}]}");
    json_decref(d);
    assert_int_equal(calls(&e->h, "rp-1", "a"), 1);
    assert_int_equal(calls(&e->h, "rp-1", "b"), 1);
    assert_int_equal(calls(&e->h, "rp-1", "c"), 1);
    json_t *ev = history(e, "rp-1");
    assert_int_equal(count_events(ev, "step_completed", "a"), 1);
    assert_int_equal(count_events(ev, "step_completed", "b"), 1);
    json_decref(ev);
    eng_close(e);
}

/* A step's result goes with the run's next write: it is durable before
 * the next step's code runs, and the last one shares the end's write. A
 * run of three steps is four writes: its start, a's result with b's
 * start, b's with c's, c's with the end. */
static void test_engine_step_result_rides_the_next_write(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    ls_flow_stats s0, s1;
    ls_flow_get_stats(e->f, &s0);
    start1(e, "a_gated_c", "ride-1", NULL);
    wait_calls(e, "ride-1", "b", 1);
    /* b's code is running (held at the gate): a's result is stored. */
    json_t *ev = history(e, "ride-1");
    assert_int_equal(count_events(ev, "step_completed", "a"), 1);
    assert_int_equal(count_events(ev, "step_started", "b"), 1);
    assert_int_equal(count_events(ev, "step_completed", "b"), 0);
    json_decref(ev);
    atomic_store(&e->h.gate_open, 1);
    wait_end(e, "ride-1");
    ls_flow_get_stats(e->f, &s1);
    assert_int_equal(s1.transitions - s0.transitions, 4);
    ev = history(e, "ride-1");
    assert_int_equal(count_events(ev, "step_completed", "a"), 1);
    assert_int_equal(count_events(ev, "step_completed", "b"), 1);
    assert_int_equal(count_events(ev, "step_completed", "c"), 1);
    assert_int_equal(count_events(ev, "workflow_completed", NULL), 1);
    json_decref(ev);
    json_t *d = describe(e, "ride-1");
    assert_int_equal(jint(d, "steps_completed"), 3);
    json_decref(d);
    eng_close(e);
}

static void test_engine_abandoned_run_resumes_after_restart(void **state)
{
    env *e = *state;
    atomic_store(&e->h.crash_armed, 1);
    eng_open(e, 1);
    start1(e, "ab_crash", "cr-1", NULL);
    wait_calls(e, "cr-1", "b", 1);
    /* Abandoned after b: still running, waiting on nothing, not requeued.
     * b's result is written as the activation ends: wait for that too. */
    for (int i = 0; i < WAIT_MS / 2; i++) {
        ls_flow_stats st;
        ls_flow_get_stats(e->f, &st);
        if (st.activations == 1 && st.runs_queued == 0 && st.steps_completed == 2 &&
            st.workers_busy == 0)
            break;
        th_nap_ms(2);
    }
    json_t *d = describe(e, "cr-1");
    assert_string_equal(jstr(d, "status"), "running");
    assert_int_equal(jint(d, "steps_completed"), 2);
    assert_null(json_object_get(d, "waiting"));
    json_decref(d);
    eng_close(e);

    atomic_store(&e->h.crash_armed, 0);
    atomic_store(&e->h.gen, 2);
    eng_open(e, 1);
    wait_end(e, "cr-1");
    d = describe(e, "cr-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_json(json_object_get(json_object_get(d, "output"), "results"),
                "[{\"attempt\":1,\"gen\":1,\"step\":\"a\"},"
                "{\"attempt\":1,\"gen\":1,\"step\":\"b\"},"
                "{\"attempt\":1,\"gen\":2,\"step\":\"c\"}]");
    json_decref(d);
    assert_int_equal(calls(&e->h, "cr-1", "a"), 1);
    assert_int_equal(calls(&e->h, "cr-1", "b"), 1);
    assert_int_equal(calls(&e->h, "cr-1", "c"), 1);
    eng_close(e);
}

/* A payload that does not open at an activation (the daemon was given
 * another key file) is no fault of the run's code: the activation is given
 * up, the error logged naming the run and the record, and the run stays
 * unfinished. With the right key back it goes on and completes. */
static void test_engine_vault_failure_keeps_the_run(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap", "kw-1", "{\"n\":1}");
    json_decref(wait_waiting(e, "kw-1"));
    /* kw-2's payloads are sealed under key 2, which the other file lacks. */
    th_ok(ls_vault_rotate(e->d.v, NULL, &err), &err);
    start1(e, "nap", "kw-2", "{\"n\":2}");
    json_decref(wait_waiting(e, "kw-2"));
    eng_close(e);

    ls_vault_t *right = e->d.v, *wrong = other_vault(e);
    e->d.v = wrong;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 200); /* both timers fire */
    wait_log(e, "run kw-1: payload of event");
    wait_log(e, "run kw-2: payload of event");
    /* Every event is checked as the run is loaded (version 3): the first
     * one refused is its first. */
    assert_true(log_has(&e->h, "error [kw-1] run kw-1: payload of event 1: sealed value does not "
                               "authenticate"));
    assert_true(log_has(&e->h, "error [kw-2] run kw-2: payload of event 1: sealed value names key "
                               "2, which this keyring does not hold; the run waits, unfinished"));
    assert_false(log_has(&e->h, "failed:"));
    wait_idle(e);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.runs_active, 2);
    assert_int_equal(st.steps_completed, 0);
    eng_close(e);

    /* The right key again: nothing was failed or lost, and both go on. */
    e->d.v = right;
    ls_vault_close(wrong);
    eng_open(e, 0);
    char buf[32];
    assert_string_equal(status_of(e, "kw-1", buf), "running");
    assert_string_equal(status_of(e, "kw-2", buf), "running");
    json_t *ev = history(e, "kw-1");
    assert_int_equal(count_events(ev, "workflow_failed", NULL), 0);
    assert_int_equal(count_events(ev, "timer_fired", NULL), 0);
    json_decref(ev);
    th_ok(ls_flow_run(e->f, &err), &err);
    wait_end(e, "kw-1");
    wait_end(e, "kw-2");
    for (int k = 1; k <= 2; k++) {
        char name[8];
        snprintf(name, sizeof name, "kw-%d", k);
        json_t *d = describe(e, name);
        assert_string_equal(jstr(d, "status"), "completed");
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(json_object_get(d, "output"), "input"), "n")),
                         k);
        json_decref(d);
        assert_int_equal(calls(&e->h, name, "a"), 1);
        assert_int_equal(calls(&e->h, name, "b"), 1);
    }
    eng_close(e);
}

/* A branch run's copy of its parent's history that does not open for
 * any cause, not only a wrong key (here a damaged record, LS_EFORMAT), is
 * no fault of the parent's code: the activation is given up, the run
 * waits, unfinished, and goes on once the record is whole again. */
static void test_engine_branch_copy_that_does_not_open_keeps_the_run(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap_fan", "nf-1", "{\"n\":1}");
    json_decref(wait_waiting(e, "nf-1"));
    eng_close(e);

    /* Its input (event 1's payload, which its code has not read yet) in a
     * format this build does not read. */
    const unsigned char prefix[1] = {LS_NS_HISTORY};
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_buf k = LS_BUF_INIT, whole = LS_BUF_INIT, bad = LS_BUF_INIT, damaged = LS_BUF_INIT;
    th_ok(ls_store_iter_prefix(&it, e->d.st, prefix, sizeof prefix, 0, &err), &err);
    th_ok(ls_store_iter_next(it, &key, &klen, &val, &vlen, &err), &err);
    th_ok(ls_buf_set(&k, key, klen, &err), &err);
    th_ok(ls_buf_set(&whole, val, vlen, &err), &err);
    ls_store_iter_free(it);
    ls_event ev;
    th_ok(ls_event_decode(whole.ptr, whole.len, &ev, &err), &err);
    assert_int_equal(ev.type, LS_EV_WORKFLOW_STARTED);
    th_ok(ls_buf_set(&bad, ev.payload, ev.payload_len, &err), &err);
    bad.ptr[0] = 9;
    ev.payload = bad.ptr;
    th_ok(ls_event_encode(&ev, &damaged, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, damaged.ptr, damaged.len, 0, &err), &err);

    eng_open(e, 1);
    th_clock_advance(&e->fc, 300); /* the sleep ends: the branch runs start */
    wait_log(e, "error [nf-1] run nf-1: payload of event 1: ");
    assert_true(log_has(&e->h, "; the run waits, unfinished"));
    assert_false(log_has(&e->h, "failed:"));
    wait_idle(e);
    /* (describe would open the damaged input: the stats say it) */
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.runs_active, 1);
    assert_int_equal(st.failed, 0);
    eng_close(e);

    /* The record whole again: nothing was failed or started, and it goes
     * on and completes. */
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, whole.ptr, whole.len, 0, &err), &err);
    eng_open(e, 0);
    char buf[32];
    assert_string_equal(status_of(e, "nf-1", buf), "running");
    json_t *h = history(e, "nf-1");
    assert_int_equal(count_events(h, "workflow_failed", NULL), 0);
    assert_int_equal(count_events(h, "child_started", NULL), 0);
    json_decref(h);
    th_ok(ls_flow_run(e->f, &err), &err);
    for (int i = 0; i < WAIT_MS / 2; i++) {
        th_clock_advance(&e->fc, 10); /* branch 1's sleep */
        if (strcmp(status_of(e, "nf-1", buf), "running") != 0) break;
        th_nap_ms(2);
    }
    wait_end(e, "nf-1");
    assert_string_equal(status_of(e, "nf-1", buf), "completed");
    eng_close(e);
    ls_buf_free(&k), ls_buf_free(&whole), ls_buf_free(&bad), ls_buf_free(&damaged);
}

/* A secret sealed under a key the keyring lacks (a stale key file) gives
 * the activation up, as a payload that does not open: the run waits and
 * goes on with the right key. One that does not authenticate under a key
 * the ring holds (its record damaged) stays the code's error, and fails
 * the run here. (The runs' own events are sealed under key 1, which the
 * stale key file holds: since version 3 every event is checked when the
 * run is loaded.) */
static void test_engine_secret_under_missing_key_keeps_the_run(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    ls_vault_t *right = e->d.v, *stale = NULL;
    th_ok(ls_vault_secret_put(right, e->d.st, "s1", "one", 3, &err), &err); /* key 1 */
    eng_open(e, 1);
    start1(e, "sec_old", "so-1", NULL);
    start1(e, "sec_new", "sn-1", NULL);
    json_decref(wait_waiting(e, "so-1"));
    json_decref(wait_waiting(e, "sn-1"));
    eng_close(e);
    ls_vault_opts vo = {0};
    th_ok(ls_vault_load(&stale, e->d.key_path, &vo, &err), &err); /* key 1 alone */
    th_ok(ls_vault_rotate(right, NULL, &err), &err);
    th_ok(ls_vault_secret_put(right, e->d.st, "s2", "two", 3, &err), &err); /* key 2 */
    /* s1's sealed value damaged: under key 1, which both rings hold */
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    th_ok(ls_key_ns(&k, LS_NS_SECRET, &err), &err);
    th_ok(ls_key_str(&k, "s1", 2, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    v.ptr[v.len - 1] ^= 1;
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, v.ptr, v.len, 0, &err), &err);
    ls_buf_free(&k), ls_buf_free(&v);

    assert_int_equal(ls_vault_secret_missing_key(stale, e->d.st, "s2"), 2);
    assert_int_equal(ls_vault_secret_missing_key(stale, e->d.st, "s1"), 0);
    assert_int_equal(ls_vault_secret_missing_key(right, e->d.st, "s2"), 0);
    assert_int_equal(ls_vault_secret_missing_key(stale, e->d.st, "nope"), 0);
    e->d.v = stale;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 200); /* both timers fire */
    wait_end(e, "so-1");
    wait_log(e, "error [sn-1] run sn-1: secret \"s2\": sealed value names key 2, which this "
                "keyring does not hold; the run waits, unfinished");
    assert_true(log_has(&e->h, "[so-1] failed: secret \"s1\": sealed value does not authenticate"));
    assert_false(log_has(&e->h, "[sn-1] failed:"));
    wait_idle(e);
    eng_close(e);

    /* The right key again: sn-1 was not failed, and goes on. */
    e->d.v = right;
    ls_vault_close(stale);
    eng_open(e, 0);
    char buf[32];
    assert_string_equal(status_of(e, "sn-1", buf), "running");
    json_t *ev = history(e, "sn-1");
    assert_int_equal(count_events(ev, "workflow_failed", NULL), 0);
    json_decref(ev);
    th_ok(ls_flow_run(e->f, &err), &err);
    wait_end(e, "sn-1");
    assert_string_equal(status_of(e, "sn-1", buf), "completed");
    eng_close(e);
}

/* ---- 8. non-determinism ---- */

static void test_engine_nondeterminism_fails_the_run(void **state)
{
    env *e = *state;
    freeze(e);
    eng_open(e, 1);
    start1(e, "v1", "nd-1", NULL);
    start1(e, "v2", "nd-2", NULL);
    json_decref(wait_waiting(e, "nd-1"));
    json_decref(wait_waiting(e, "nd-2"));
    eng_close(e);

    e->h.scripts = scripts_edited;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "nd-1");
    wait_end(e, "nd-2");
    json_t *d = describe(e, "nd-1");
    assert_string_equal(jstr(d, "status"), "failed");
    const char *msg = jstr(d, "error");
    if (!strstr(msg, "history has step \"a\"") || !strstr(msg, "asked for step \"x\"") ||
        !strstr(msg, "non-determinism"))
        fail_msg("error does not name both steps: %s", msg);
    json_decref(d);
    assert_int_equal(calls(&e->h, "nd-1", "x"), 0);
    assert_int_equal(calls(&e->h, "nd-1", "a"), 1);
    assert_int_equal(calls(&e->h, "nd-1", "b"), 0);

    /* Code that ends early while history holds more. */
    d = describe(e, "nd-2");
    assert_string_equal(jstr(d, "status"), "failed");
    msg = jstr(d, "error");
    if (!strstr(msg, "history has step \"a\"") || !strstr(msg, "ended without it"))
        fail_msg("error does not say what history holds: %s", msg);
    json_decref(d);
    eng_close(e);
}

/* ---- 9. side effects ---- */

static void test_engine_side_effect_survives_restart(void **state)
{
    env *e = *state;
    snprintf(e->h.side_value, sizeof e->h.side_value, "0.111");
    freeze(e);
    eng_open(e, 1);
    start1(e, "side", "se-1", NULL);
    json_decref(wait_waiting(e, "se-1"));
    eng_close(e);

    snprintf(e->h.side_value, sizeof e->h.side_value, "0.222");
    eng_open(e, 1);
    th_clock_advance(&e->fc, 100);
    wait_end(e, "se-1");
    json_t *d = describe(e, "se-1");
    assert_string_equal(jstr(d, "status"), "completed");
    assert_json(json_object_get(json_object_get(d, "output"), "results"),
                "[0.111,{\"attempt\":1,\"gen\":1,\"step\":\"a\"}]");
    json_decref(d);
    json_t *ev = history(e, "se-1");
    assert_int_equal(count_events(ev, "side_effect_recorded", "random"), 1);
    assert_json(json_object_get(nth_event(ev, "side_effect_recorded", "random", 0), "value"),
                "0.111");
    json_decref(ev);
    eng_close(e);
}

/* ---- 10. lists ---- */

static json_t *list(env *e, const char *status, const char *type, unsigned limit,
                    const char *cursor)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, status, type, limit, cursor, &out, &err), &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    return j;
}

static size_t list_count(env *e, const char *status, const char *type)
{
    json_t *l = list(e, status, type, 1000, NULL);
    json_t *runs = json_object_get(l, "runs");
    size_t n = json_array_size(runs), i;
    json_t *r;
    json_array_foreach(runs, i, r)
    {
        if (status && *status) assert_string_equal(jstr(r, "status"), status);
        if (type && *type) assert_string_equal(jstr(r, "type"), type);
    }
    assert_null(json_object_get(l, "next_cursor"));
    json_decref(l);
    return n;
}

static void test_engine_list_filters_and_pages(void **state)
{
    env *e = *state;
    freeze(e); /* the sleepers never wake */
    eng_open(e, 1);
    /* l-00..l-09, in start order: six complete, two fail, two sleep. */
    static const char *const types[10] = {"three", "fatal", "three",  "sleepy", "three",
                                          "three", "fatal", "sleepy", "three",  "three"};
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "l-%02d", i);
        start1(e, types[i], name, NULL);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "l-%02d", i);
        if (strcmp(types[i], "sleepy") == 0)
            json_decref(wait_waiting(e, name));
        else
            wait_end(e, name);
    }

    assert_int_equal(list_count(e, NULL, NULL), 10);
    assert_int_equal(list_count(e, "completed", NULL), 6);
    assert_int_equal(list_count(e, "failed", NULL), 2);
    assert_int_equal(list_count(e, "running", NULL), 2);
    assert_int_equal(list_count(e, "cancelled", NULL), 0);
    assert_int_equal(list_count(e, "", NULL), 10);
    assert_int_equal(list_count(e, NULL, "three"), 6);
    assert_int_equal(list_count(e, NULL, "fatal"), 2);
    assert_int_equal(list_count(e, NULL, "sleepy"), 2);
    assert_int_equal(list_count(e, NULL, "thre"), 0);
    assert_int_equal(list_count(e, NULL, "nosuch"), 0);
    assert_int_equal(list_count(e, NULL, ""), 10);
    assert_int_equal(list_count(e, "failed", "fatal"), 2);
    assert_int_equal(list_count(e, "completed", "fatal"), 0);
    assert_int_equal(list_count(e, "running", "sleepy"), 2);

    /* What a list shows: no payloads; errors of failed runs; what a
     * running one waits for. */
    json_t *l = list(e, NULL, NULL, 0, NULL);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(l, "runs"), i, r)
    {
        const char *st = jstr(r, "status");
        assert_null(json_object_get(r, "input"));
        assert_null(json_object_get(r, "output"));
        if (strcmp(st, "failed") == 0) assert_non_null(strstr(jstr(r, "error"), "card declined"));
        if (strcmp(st, "running") == 0)
            assert_string_equal(jstr(json_object_get(r, "waiting"), "kind"), "sleep");
    }
    json_decref(l);

    /* Pages of 3, newest first: every run exactly once, in order. */
    for (unsigned limit = 1; limit <= 11; limit++) {
        char cursor[64] = "";
        int seen = 0, pages = 0;
        for (;;) {
            l = list(e, NULL, NULL, limit, cursor[0] ? cursor : NULL);
            json_t *runs = json_object_get(l, "runs");
            assert_true(json_array_size(runs) <= limit);
            json_array_foreach(runs, i, r)
            {
                snprintf(name, sizeof name, "l-%02d", 9 - seen);
                assert_string_equal(jstr(r, "id"), name);
                seen++;
            }
            pages++;
            json_t *next = json_object_get(l, "next_cursor");
            if (next == NULL) {
                json_decref(l);
                break;
            }
            assert_int_equal(json_array_size(runs), limit);
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
            json_decref(l);
            assert_true(pages <= 10);
        }
        assert_int_equal(seen, 10);
        assert_int_equal(pages, (10 + limit - 1) / limit);
    }
    /* Filtered pages. */
    l = list(e, "completed", NULL, 4, NULL);
    assert_int_equal(json_array_size(json_object_get(l, "runs")), 4);
    char cursor[64];
    snprintf(cursor, sizeof cursor, "%s", jstr(l, "next_cursor"));
    json_decref(l);
    l = list(e, "completed", NULL, 4, cursor);
    assert_int_equal(json_array_size(json_object_get(l, "runs")), 2);
    assert_null(json_object_get(l, "next_cursor"));
    assert_string_equal(jstr(json_array_get(json_object_get(l, "runs"), 1), "id"), "l-00");
    json_decref(l);

    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    assert_int_equal(ls_flow_list(e->f, "done", NULL, 0, NULL, &out, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "status: unknown value \"done\""));
    assert_int_equal(ls_flow_list(e->f, NULL, NULL, 1001, NULL, &out, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(ls_flow_list(e->f, NULL, NULL, 0, "zzz", &out, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "cursor"));
    ls_buf_free(&out);
    eng_close(e); /* with two runs asleep */
}

/* ---- 11. watches ---- */

/* ---- 11a. starts that nobody waits for ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    ls_rc rc;
    ls_store_t *st;
    ls_buf run;   /* the run's object, filled before the start is written */
    int in_store; /* the run's record was in the store when called back */
} landing;

#define LANDING(e)                                                                                \
    {                                                                                             \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, LS_EIO, (e)->d.st, LS_BUF_INIT, 0 \
    }

static void on_landed(void *ud, ls_rc rc, const ls_err *err)
{
    landing *l = ud;
    (void)err;
    /* Durable before it is said to be: its record is in the store now. */
    const char *text;
    size_t n;
    ls_id id;
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT;
    int in_store =
        ls_json_peek_string((const char *)l->run.ptr, l->run.len, "id", &text, &n) == LS_OK &&
        ls_id_parse(&id, text, n, NULL) == LS_OK && ls_run_key(&k, &id, NULL) == LS_OK &&
        ls_store_get(l->st, k.ptr, k.len, &v, NULL) == LS_OK;
    ls_buf_free(&k);
    ls_buf_free(&v);
    pthread_mutex_lock(&l->mu);
    l->calls++;
    l->rc = rc;
    l->in_store = in_store;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void wait_landed(landing *l)
{
    pthread_mutex_lock(&l->mu);
    for (int i = 0; l->calls == 0 && i < WAIT_MS / 10; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    assert_int_equal(l->calls, 1);
}

/* Starts "three" asynchronously; returns the new run's id (caller frees). */
static char *start_async(env *e, const char *input, landing *l)
{
    ls_err err = {0};
    int created = -1;
    th_ok(ls_flow_start_async(e->f, "three", 5, NULL, 0, input, input ? strlen(input) : 0, 0,
                              &l->run, &created, on_landed, l, &err),
          &err);
    assert_int_equal(created, 1);
    json_t *j = parse_buf(&l->run);
    assert_string_equal(jstr(j, "status"), "running");
    char *id = strdup(jstr(j, "id"));
    json_decref(j);
    return id;
}

static void test_engine_start_async(void **state)
{
    env *e = *state;
    ls_err err = {0};
    /* Before the engine runs, the start is written by the caller. */
    eng_open(e, 0);
    landing early = LANDING(e);
    char *first = start_async(e, "{\"n\":1}", &early);
    assert_int_equal(early.calls, 1); /* before start_async returned */
    assert_int_equal(early.rc, LS_OK);
    assert_int_equal(early.in_store, 1);
    ls_buf_free(&early.run);
    th_ok(ls_flow_run(e->f, &err), &err);
    wait_end(e, first);

    /* Running: many at once, each landing once, each run completing. */
    enum { N = 64 };
    landing l[N];
    char *ids[N];
    for (int i = 0; i < N; i++) {
        l[i] = (landing)LANDING(e);
        ids[i] = start_async(e, "{\"n\":2}", &l[i]);
    }
    for (int i = 0; i < N; i++) {
        wait_landed(&l[i]);
        assert_int_equal(l[i].rc, LS_OK);
        assert_int_equal(l[i].in_store, 1);
        ls_buf_free(&l[i].run);
        wait_end(e, ids[i]);
        ls_buf out = LS_BUF_INIT;
        int done = 0;
        th_ok(ls_flow_result(e->f, ids[i], strlen(ids[i]), &out, &done, &err), &err);
        assert_int_equal(done, 1);
        json_t *r = parse_buf(&out);
        assert_string_equal(jstr(r, "status"), "completed");
        json_decref(r);
        ls_buf_free(&out);
        assert_int_equal(calls(&e->h, ids[i], "c"), 1);
        free(ids[i]);
    }
    free(first);

    /* The run's object comes as ls_flow_describe writes it (compact, keys
     * sorted); a dumped input is kept as it is, its size still checked. */
    landing d = LANDING(e);
    int dc = -1;
    th_ok(ls_flow_start_async(e->f, "three", 5, NULL, 0, "{\"a\":[1,2]}", 11, LS_FLOW_INPUT_DUMPED,
                              &d.run, &dc, on_landed, &d, &err),
          &err);
    json_t *dj = parse_buf(&d.run);
    ls_buf canon = LS_BUF_INIT;
    th_ok(ls_json_dump(dj, &canon, &err), &err);
    assert_int_equal(canon.len, d.run.len);
    assert_memory_equal(canon.ptr, d.run.ptr, canon.len);
    assert_json(json_object_get(dj, "input"), "{\"a\":[1,2]}");
    char *did = strdup(jstr(dj, "id"));
    json_decref(dj);
    ls_buf_free(&canon);
    wait_landed(&d);
    ls_buf_free(&d.run);
    wait_end(e, did);
    json_t *desc = describe(e, did);
    assert_json(json_object_get(desc, "input"), "{\"a\":[1,2]}");
    json_decref(desc);
    free(did);
    size_t big = LS_FLOW_MAX_PAYLOAD + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '1', big);

    /* Refused up front: nothing started, never called back. */
    landing none = LANDING(e);
    ls_buf run = LS_BUF_INIT;
    assert_int_equal(ls_flow_start_async(e->f, "nope", 4, NULL, 0, NULL, 0, 0, &run, &dc, on_landed,
                                         &none, &err),
                     LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "three"));
    assert_int_equal(ls_flow_start_async(e->f, "three", 5, NULL, 0, "{bad", 4, 0, &run, &dc,
                                         on_landed, &none, &err),
                     LS_EINVAL);
    assert_int_equal(ls_flow_start_async(e->f, "three", 5, NULL, 0, huge, big, LS_FLOW_INPUT_DUMPED,
                                         &run, &dc, on_landed, &none, &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "payload limit"));
    free(huge);
    ls_buf_free(&run);
    th_nap_ms(20);
    assert_int_equal(none.calls, 0);
    eng_close(e);
}

static void test_engine_watch_and_unwatch(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "gated", "wt-1", NULL);
    waiter w1 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    waiter w2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    uint64_t id1, id2;
    ls_err err = {0};
    th_ok(ls_flow_watch(e->f, "wt-1", 4, on_end, &w1, &id1, &err), &err);
    th_ok(ls_flow_watch(e->f, "wt-1", 4, on_end, &w2, &id2, &err), &err);
    assert_int_not_equal(id1, id2);
    /* Cancelled while pending: never fires. */
    assert_int_equal(ls_flow_unwatch(e->f, id2), 1);
    assert_int_equal(ls_flow_unwatch(e->f, id2), 0); /* unknown by now */
    assert_int_equal(w1.fired, 0);

    /* While it runs, its result says only that. */
    ls_buf out = LS_BUF_INIT;
    int done = -1;
    th_ok(ls_flow_result(e->f, "wt-1", 4, &out, &done, &err), &err);
    assert_int_equal(done, 0);
    json_t *r = parse_buf(&out);
    assert_json(r, "{\"id\":\"wt-1\",\"status\":\"running\"}");
    json_decref(r);
    ls_buf_free(&out);

    atomic_store(&e->h.gate_open, 1);
    wait_end(e, "wt-1");
    assert_int_equal(ls_flow_unwatch(e->f, id1), 0); /* has fired (and returned) */
    assert_int_equal(w1.fired, 1);
    assert_int_equal(w2.fired, 0);

    /* An ended run: LS_EEXIST, err untouched, nothing registered. */
    waiter w3 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    uint64_t id3 = 0;
    ls_err untouched = {.code = LS_OK, .msg = "untouched"};
    assert_int_equal(ls_flow_watch(e->f, "wt-1", 4, on_end, &w3, &id3, &untouched), LS_EEXIST);
    assert_string_equal(untouched.msg, "untouched");
    assert_int_equal(ls_flow_watch(e->f, "nobody", 6, on_end, &w3, &id3, &err), LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nobody"));

    /* A watch on a run that never ends is dropped with the engine. */
    start1(e, "sleepy", "wt-2", NULL);
    th_ok(ls_flow_watch(e->f, "wt-2", 4, on_end, &w3, &id3, &err), &err);
    eng_close(e);
    assert_int_equal(w1.fired, 1);
    assert_int_equal(w2.fired, 0);
    assert_int_equal(w3.fired, 0);
}

/* The answer of a run that completed while watched comes from memory (the
 * results cache): the same text the store gives, with the runner's output
 * (spaces, unsorted keys) as ls_json_dump writes it. A run that ended
 * unwatched is not kept; a run looked up by name reads the store. */
static void test_engine_result_of_watched_run(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    json_t *run = start(e, "spaced", NULL, NULL, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(run, "id"));
    json_decref(run);
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    uint64_t wid;
    ls_err err = {0};
    th_ok(ls_flow_watch(e->f, id, strlen(id), on_end, &w, &wid, &err), &err);
    assert_int_equal(flow_results_count(e->f->results), 0);
    atomic_store(&e->h.gate_open, 1);
    wait_end(e, id);
    assert_int_equal(ls_flow_unwatch(e->f, wid), 0); /* fired: the answer was kept before */
    assert_int_equal(flow_results_count(e->f->results), 1);

    char want[256];
    snprintf(want, sizeof want,
             "{\"id\":\"%s\",\"output\":{\"a\":null,\"b\":[1,2.5]},\"status\":\"completed\"}", id);
    ls_buf out = LS_BUF_INIT;
    int done = 0;
    th_ok(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), &err);
    assert_int_equal(done, 1);
    assert_string_equal((const char *)out.ptr, want);
    /* That answer came from memory, not the store: a text put in the
     * cache under the run's id is what ls_flow_result gives. */
    ls_id rid;
    th_ok(ls_id_parse(&rid, id, strlen(id), &err), &err);
    flow_results_put(e->f->results, &rid, ls_strdup("{\"cached\":1}"), 12);
    th_ok(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), &err);
    assert_string_equal((const char *)out.ptr, "{\"cached\":1}");
    /* The store's answer, byte for byte. */
    flow_results_clear(e->f->results);
    done = 0;
    th_ok(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), &err);
    assert_int_equal(done, 1);
    assert_string_equal((const char *)out.ptr, want);

    /* Ended unwatched: nothing kept, the store answers. */
    atomic_store(&e->h.gate_open, 0);
    run = start(e, "three", NULL, NULL, NULL);
    snprintf(id, sizeof id, "%s", jstr(run, "id"));
    json_decref(run);
    char st[32];
    for (int i = 0; i < WAIT_MS && strcmp(status_of(e, id, st), "completed") != 0; i++)
        th_nap_ms(1);
    assert_string_equal(status_of(e, id, st), "completed");
    assert_int_equal(flow_results_count(e->f->results), 0);
    th_ok(ls_flow_result(e->f, id, strlen(id), &out, &done, &err), &err);
    assert_int_equal(done, 1);
    assert_non_null(strstr((const char *)out.ptr, "\"status\":\"completed\""));

    /* Named and watched: kept under its id; by name, the store answers
     * the same. */
    start1(e, "spaced", "rc-named", NULL);
    atomic_store(&e->h.gate_open, 1);
    wait_end(e, "rc-named");
    assert_int_equal(flow_results_count(e->f->results), 1);
    th_ok(ls_flow_result(e->f, "rc-named", 8, &out, &done, &err), &err);
    assert_string_equal(
        (const char *)out.ptr,
        "{\"id\":\"rc-named\",\"output\":{\"a\":null,\"b\":[1,2.5]},\"status\":\"completed\"}");
    ls_buf_free(&out);
    eng_close(e);
}

/* ---- 12. shutdown ---- */

typedef struct {
    harness *h;
    long after_ms;
} opener;

static void *open_gate_later(void *p)
{
    opener *o = p;
    th_nap_ms(o->after_ms);
    atomic_store(&o->h->gate_open, 1);
    return NULL;
}

static void test_engine_stop_interrupts_after_grace(void **state)
{
    env *e = *state;
    atomic_store(&e->h.block_armed, 1);
    eng_open(e, 1);
    start1(e, "blocky", "st-1", "{}");
    start1(e, "side_block", "st-2", NULL);
    wait_calls(e, "st-1", "b", 1);
    wait_calls(e, "st-2", "b", 1);
    ls_err err = {0};
    th_ok(ls_flow_stop(e->f, 100, &err), &err);
    assert_true(log_has(&e->h, "still running after the grace period"));
    /* Stopped: no more starts. */
    ls_buf run = LS_BUF_INIT;
    int created = -1;
    assert_int_equal(ls_flow_start(e->f, "three", 5, "late", 4, NULL, 0, &run, &created, &err),
                     LS_EBUSY);
    assert_int_equal(created, 0);
    ls_buf_free(&run);
    json_t *d = describe(e, "st-1");
    assert_string_equal(jstr(d, "status"), "running");
    assert_int_equal(jint(d, "steps_completed"), 1);
    json_decref(d);
    eng_close(e);

    atomic_store(&e->h.block_armed, 0);
    eng_open(e, 1);
    wait_end(e, "st-1");
    char s[32];
    assert_string_equal(status_of(e, "st-1", s), "completed");
    assert_int_equal(calls(&e->h, "st-1", "a"), 1);
    assert_int_equal(calls(&e->h, "st-1", "b"), 2);
    char key[64];
    int changed;
    key_of(&e->h, "st-1", "b", key, &changed);
    assert_false(changed); /* the re-run gets the key of the interrupted one */
    json_t *ev = history(e, "st-1");
    assert_int_equal(count_events(ev, "step_completed", "b"), 1);
    assert_int_equal(count_events(ev, "step_failed", NULL), 0);
    json_decref(ev);

    /* A step started after a side effect was recorded in flight (its start
     * is synced before it runs): it runs again as the same attempt, with
     * the same key. */
    wait_end(e, "st-2");
    assert_string_equal(status_of(e, "st-2", s), "completed");
    assert_int_equal(calls(&e->h, "st-2", "b"), 2);
    key_of(&e->h, "st-2", "b", key, &changed);
    assert_false(changed);
    ev = history(e, "st-2");
    assert_int_equal(count_events(ev, "side_effect_recorded", "random"), 1);
    assert_int_equal(count_events(ev, "step_started", "b"), 1);
    assert_int_equal(jint(nth_event(ev, "step_completed", "b", 0), "attempt"), 1);
    json_decref(ev);
    eng_close(e);
}

static void test_engine_stop_lets_activations_finish_within_grace(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "gated", "gr-1", NULL);
    wait_calls(e, "gr-1", "wait", 1);
    opener o = {&e->h, 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, open_gate_later, &o), 0);
    ls_err err = {0};
    th_ok(ls_flow_stop(e->f, WAIT_MS, &err), &err);
    pthread_join(th, NULL);
    assert_false(log_has(&e->h, "still running after the grace period"));
    char s[32];
    assert_string_equal(status_of(e, "gr-1", s), "completed");
    eng_close(e);
}

/* ---- 13. encryption at rest ---- */

typedef struct {
    const char *needle[4];
    int found[4];
    size_t files;
} scan;

static void scan_dir(const char *dir, scan *sc)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *p = th_path(dir, de->d_name);
        struct stat sb;
        assert_int_equal(lstat(p, &sb), 0);
        if (S_ISDIR(sb.st_mode)) {
            scan_dir(p, sc);
        } else if (S_ISREG(sb.st_mode)) {
            FILE *fp = fopen(p, "rb");
            assert_non_null(fp);
            char *buf = malloc((size_t)sb.st_size + 1);
            assert_non_null(buf);
            size_t n = fread(buf, 1, (size_t)sb.st_size, fp);
            fclose(fp);
            for (int i = 0; i < 4; i++)
                if (memmem(buf, n, sc->needle[i], strlen(sc->needle[i]))) sc->found[i]++;
            free(buf);
            sc->files++;
        }
        free(p);
    }
    closedir(d);
}

static void test_engine_payloads_encrypted_at_rest(void **state)
{
    env *e = *state;
    char name[64], secret_in[64], secret_out[64], secret_se[64], input[128];
    unsigned long salt = (unsigned long)getpid() * 2654435761u ^ (unsigned long)time(NULL);
    snprintf(name, sizeof name, "enc-run-%lx", salt);
    snprintf(secret_in, sizeof secret_in, "card-4111-%lx-input", salt);
    snprintf(secret_out, sizeof secret_out, "token-%lx-result", salt);
    snprintf(secret_se, sizeof secret_se, "uuid-%lx-side-effect", salt);
    snprintf(input, sizeof input, "{\"card\":\"%s\"}", secret_in);
    snprintf(e->h.tag, sizeof e->h.tag, "%s", secret_out);
    snprintf(e->h.side_value, sizeof e->h.side_value, "\"%s\"", secret_se);
    eng_open(e, 1);
    start1(e, "secret", name, input);
    wait_end(e, name);

    /* Decrypted in the views. */
    json_t *ev = history(e, name);
    char *text = json_dumps(ev, JSON_COMPACT);
    assert_non_null(strstr(text, secret_in));
    assert_non_null(strstr(text, secret_out));
    assert_non_null(strstr(text, secret_se));
    free(text);
    json_decref(ev);
    json_t *d = describe(e, name);
    assert_string_equal(jstr(json_object_get(d, "input"), "card"), secret_in);
    json_decref(d);
    eng_close(e);

    /* Not on disk: the write-ahead log and the tables, before and after
     * the store is closed. The name is not a payload: it must be found,
     * which shows the scan reads what the store wrote. */
    for (int pass = 0; pass < 2; pass++) {
        scan sc = {{secret_in, secret_out, secret_se, name}, {0}, 0};
        scan_dir(e->d.store_path, &sc);
        assert_true(sc.files > 0);
        assert_int_equal(sc.found[0], 0);
        assert_int_equal(sc.found[1], 0);
        assert_int_equal(sc.found[2], 0);
        assert_true(sc.found[3] > 0);
        th_store_close(&e->d.st, &e->d.v);
        if (pass == 0) th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    }
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v); /* for teardown */

    /* The key that sealed them is in a file only its owner can read. */
    struct stat sb;
    assert_int_equal(stat(e->d.key_path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

/* ---- 14. allocation failures ---- */

typedef struct {
    env *e;
    int i;
    struct {
        ls_rc rc;
        int created;
    } res[4096];
} alloc_ctx;

static ls_rc start_under_failure(void *ud)
{
    alloc_ctx *c = ud;
    char name[32], input[] = "{\"amount\":12,\"items\":[1,2,3],\"note\":\"x\"}";
    snprintf(name, sizeof name, "af-%d", c->i);
    ls_buf run = LS_BUF_INIT;
    int created = -1;
    ls_rc rc = ls_flow_start(c->e->f, "three", 5, name, strlen(name), input, strlen(input), &run,
                             &created, NULL);
    ls_buf_free(&run);
    if (c->i < 4096) {
        c->res[c->i].rc = rc;
        c->res[c->i].created = created;
    }
    c->i++;
    return rc;
}

static ls_rc open_under_failure(void *ud)
{
    env *e = ud;
    ls_flow_opts o = {.store = e->d.st, .vault = e->d.v, .runner = &runner, .runner_ud = &e->h};
    ls_flow_t *f = NULL;
    ls_rc rc = ls_flow_open(&f, &o, NULL);
    if (rc == LS_OK) {
        ls_flow_stats st;
        ls_flow_get_stats(f, &st);
        if (st.runs_active != 3 || st.timers != 1) rc = LS_ECORRUPT;
    }
    ls_flow_close(f);
    return rc;
}

typedef struct {
    env *e;
    char name[32];
} views_ctx;

static ls_rc views_under_failure(void *ud)
{
    views_ctx *v = ud;
    env *e = v->e;
    size_t n = strlen(v->name);
    ls_buf out = LS_BUF_INIT;
    int done;
    ls_rc rc = ls_flow_describe(e->f, v->name, n, &out, NULL);
    if (rc == LS_OK) rc = ls_flow_history(e->f, v->name, n, &out, NULL);
    if (rc == LS_OK) rc = ls_flow_result(e->f, v->name, n, &out, &done, NULL);
    if (rc == LS_OK) rc = ls_flow_list(e->f, NULL, NULL, 2, NULL, &out, NULL);
    if (rc == LS_OK) rc = ls_flow_list(e->f, "running", "three", 2, NULL, &out, NULL);
    ls_buf_free(&out);
    return rc;
}

/* Only calls made with the engine's threads not running: with workers
 * allocating concurrently, the failing allocator (a process-wide counter)
 * would hit their allocations instead, at points that vary run to run. */
static void test_engine_alloc_failures(void **state)
{
    env *e = *state;
    eng_open(e, 0);
    alloc_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->e = e;
    long points = th_each_alloc_failure(start_under_failure, c);
    assert_true(points > 5);
    assert_true(c->i <= 4096);
    /* A start that returned an error stored nothing: only the last one,
     * which saw no failure, exists. */
    for (int i = 0; i < c->i; i++) {
        char name[32];
        snprintf(name, sizeof name, "af-%d", i);
        ls_buf out = LS_BUF_INIT;
        ls_err err = {0};
        ls_rc rc = ls_flow_describe(e->f, name, strlen(name), &out, &err);
        ls_buf_free(&out);
        if (i < c->i - 1) {
            assert_int_equal(c->res[i].rc, LS_ENOMEM);
            assert_int_equal(c->res[i].created, 0);
            assert_int_equal(rc, LS_ENOTFOUND);
        } else {
            assert_int_equal(c->res[i].rc, LS_OK);
            assert_int_equal(c->res[i].created, 1);
            th_ok(rc, &err);
        }
    }
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.started, 1);
    assert_int_equal(st.runs_queued, 1);
    views_ctx v = {e, ""};
    snprintf(v.name, sizeof v.name, "af-%d", c->i - 1);
    free(c);

    points = th_each_alloc_failure(views_under_failure, &v);
    assert_true(points > 0);
    eng_close(e);

    /* Recovery of a fresh store with three unfinished runs, one asleep. */
    th_store_close(&e->d.st, &e->d.v);
    th_rmtree(e->d.store_path);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap", "ar-1", NULL);
    json_decref(wait_waiting(e, "ar-1"));
    eng_close(e);
    eng_open(e, 0);
    start1(e, "three", "ar-2", NULL);
    start1(e, "three", "ar-3", NULL);
    eng_close(e);
    points = th_each_alloc_failure(open_under_failure, e);
    assert_true(points > 0);
}

/* ---- main ---- */

/* ---- signals, cancellation, termination, custom status ---- */

static void signal_ok(env *e, const char *run, const char *sig, const char *payload)
{
    ls_err err = {0};
    th_ok(ls_flow_signal(e->f, run, strlen(run), sig, strlen(sig), payload,
                         payload ? strlen(payload) : 0, &err),
          &err);
}

/* The "results" array of a completed run's output. */
static json_t *results_of(env *e, const char *run)
{
    json_t *d = describe(e, run);
    assert_string_equal(jstr(d, "status"), "completed");
    json_t *r = json_object_get(json_object_get(d, "output"), "results");
    assert_non_null(r);
    json_incref(r);
    json_decref(d);
    return r;
}

static void test_engine_signals_in_order(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "s-1", NULL);
    json_t *w = wait_waiting(e, "s-1");
    assert_string_equal(jstr(w, "kind"), "signal");
    assert_string_equal(jstr(w, "name"), "go");
    assert_null(json_object_get(w, "due_at"));
    json_decref(w);
    signal_ok(e, "s-1", "other", "\"ignored\"");
    signal_ok(e, "s-1", "go", "{\"n\": 1}");
    signal_ok(e, "s-1", "go", "{\"n\":2}");
    wait_end(e, "s-1");
    json_t *r = results_of(e, "s-1");
    assert_int_equal(json_array_size(r), 4);
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":2}");
    json_decref(r);
    json_t *ev = history(e, "s-1");
    assert_int_equal(count_events(ev, "signal_received", "go"), 2);
    assert_int_equal(count_events(ev, "signal_received", "other"), 1);
    assert_json(json_object_get(nth_event(ev, "signal_received", "go", 0), "payload"), "{\"n\":1}");
    json_decref(ev);

    /* Sent before the run waits: kept, in order. */
    start1(e, "sig", "s-2", NULL);
    signal_ok(e, "s-2", "go", "1");
    signal_ok(e, "s-2", "go", "2");
    wait_end(e, "s-2");
    r = results_of(e, "s-2");
    assert_json(json_array_get(r, 1), "1");
    assert_json(json_array_get(r, 2), "2");
    json_decref(r);

    /* Errors: a finished run, an unknown run, bad names and payloads. */
    assert_int_equal(ls_flow_signal(e->f, "s-2", 3, "go", 2, NULL, 0, &err), LS_ESTATE);
    assert_non_null(strstr(err.msg, "has finished (completed)"));
    assert_int_equal(ls_flow_signal(e->f, "nope", 4, "go", 2, NULL, 0, &err), LS_ENOTFOUND);
    start1(e, "sig", "s-3", NULL);
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "", 0, NULL, 0, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "signal name"));
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "go", 2, "{bad", 4, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "payload"));
    /* Not UTF-8: its event would make the run's history unreadable. */
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "g\xff", 2, NULL, 0, &err), LS_EINVAL);
    assert_string_equal(err.msg, "signal name: byte 2 (0xff) is not valid UTF-8");
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "g\xc3", 2, NULL, 0, &err), LS_EINVAL);
    assert_int_equal(ls_flow_cancel(e->f, "s-3", 3, "\xe2\x82", "why", &err), LS_EINVAL);
    assert_string_equal(err.msg, "by: byte 1 (0xe2) is not valid UTF-8");
    assert_int_equal(ls_flow_cancel(e->f, "s-3", 3, "ops", "caf\xe9", &err), LS_EINVAL);
    assert_string_equal(err.msg, "reason: byte 4 (0xe9) is not valid UTF-8");
    /* Control characters: C0, DEL and C1 (U+0080 to U+009F), which
     * passed (only bytes below 0x20 were refused). */
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "g\x7f", 2, NULL, 0, &err), LS_EINVAL);
    assert_string_equal(err.msg, "signal name: control character at byte 2");
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "g\xc2\x9f", 3, NULL, 0, &err), LS_EINVAL);
    assert_string_equal(err.msg, "signal name: control character at byte 2");
    assert_int_equal(ls_flow_cancel(e->f, "s-3", 3, "ops\xc2\x80", "why", &err), LS_EINVAL);
    assert_string_equal(err.msg, "by: control character at byte 4");
    assert_int_equal(ls_flow_cancel(e->f, "s-3", 3, "ops", "wh\x7fy", &err), LS_EINVAL);
    assert_string_equal(err.msg, "reason: control character at byte 3");
    /* Names the API's path cannot carry: "/", ".", "..". */
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "a/b", 3, NULL, 0, &err), LS_EINVAL);
    assert_string_equal(err.msg, "signal name: \"/\" at byte 2: a name is one segment of the API's "
                                 "path (/v1/workflows/ID/signals/NAME)");
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, ".", 1, NULL, 0, &err), LS_EINVAL);
    assert_string_equal(err.msg, "signal name: \".\" is not a name: HTTP clients remove such "
                                 "segments from the API's path");
    assert_int_equal(ls_flow_signal(e->f, "s-3", 3, "..", 2, NULL, 0, &err), LS_EINVAL);
    signal_ok(e, "s-3", "...", NULL); /* (not a dot segment) */
    signal_ok(e, "s-3", "a.b", NULL);
    signal_ok(e, "s-3",
              "\xc2\xa0"
              "caf\xc3\xa9",
              NULL); /* (UTF-8 is fine, U+00A0 too) */
    signal_ok(e, "s-3", "go", NULL);
    signal_ok(e, "s-3", "go", NULL);
    wait_end(e, "s-3");
    r = results_of(e, "s-3");
    assert_json(json_array_get(r, 1), "null");
    json_decref(r);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

static void test_engine_signal_timeout_and_restart(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "sig_to", "t-1", NULL);
    json_t *w = wait_waiting(e, "t-1");
    assert_string_equal(jstr(w, "kind"), "signal");
    jstr(w, "due_at");
    json_decref(w);
    th_clock_advance(&e->fc, 200); /* the first wait times out */
    for (int i = 0; i < WAIT_MS / 2; i++) {
        json_t *ev = history(e, "t-1");
        size_t n = count_events(ev, "timer_started", "signal:go");
        json_decref(ev);
        if (n == 2) break;
        th_nap_ms(2);
    }
    json_decref(wait_waiting(e, "t-1"));
    eng_close(e); /* waiting on the second */

    eng_open(e, 0);
    th_ok(ls_flow_run(e->f, &err), &err);
    signal_ok(e, "t-1", "go", "\"yes\"");
    wait_end(e, "t-1");
    json_t *r = results_of(e, "t-1");
    assert_json(r, "[\"timeout\",\"yes\"]");
    json_decref(r);
    json_t *ev = history(e, "t-1");
    assert_int_equal(count_events(ev, "timer_started", "signal:go"), 2);
    assert_int_equal(count_events(ev, "timer_fired", "signal:go"), 1);
    assert_int_equal(count_events(ev, "timer_cancelled", "signal:go"), 1);
    json_decref(ev);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.timers, 0);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

/* A signal that arrives while the run is busy waits in the inbox; a crash
 * before the run takes it loses nothing. */
static void test_engine_signal_inbox_survives_restart(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "gate_sig", "g-1", NULL);
    wait_calls(e, "g-1", "wait", 1);
    signal_ok(e, "g-1", "go", "{\"kept\":true}");
    th_ok(ls_flow_stop(e->f, 0, &err), &err); /* interrupts the gated step */
    eng_close(e);

    th_store_close(&e->d.st, &e->d.v);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    atomic_store(&e->h.gate_open, 1);
    eng_open(e, 1);
    wait_end(e, "g-1");
    json_t *r = results_of(e, "g-1");
    assert_json(json_array_get(r, 1), "{\"kept\":true}");
    json_decref(r);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

/* ---- records changed in the store ---- */

/* Reads run id's inbox: up to max entries in arrival order, their keys and
 * values into keys[] and vals[] (initialised here). Returns how many. */
static size_t read_inbox(env *e, const ls_id *id, ls_buf *keys, ls_buf *vals, size_t max)
{
    ls_err err = {0};
    ls_buf prefix = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen, n = 0;
    th_ok(flow_key_inbox(&prefix, id, NULL, &err), &err);
    th_ok(ls_store_iter_prefix(&it, e->d.st, prefix.ptr, prefix.len, 0, &err), &err);
    while (n < max && ls_store_iter_next(it, &key, &klen, &val, &vlen, &err) == LS_OK) {
        keys[n] = (ls_buf)LS_BUF_INIT;
        vals[n] = (ls_buf)LS_BUF_INIT;
        th_ok(ls_buf_set(&keys[n], key, klen, &err), &err);
        th_ok(ls_buf_set(&vals[n], val, vlen, &err), &err);
        n++;
    }
    ls_store_iter_free(it);
    ls_buf_free(&prefix);
    return n;
}

/* Puts value (vlen bytes) under key in e's store, synced. */
static void put_raw(env *e, const void *key, size_t klen, const void *val, size_t vlen)
{
    ls_err err = {0};
    th_ok(ls_store_put(e->d.st, key, klen, val, vlen, LS_STORE_SYNC, &err), &err);
}

/* Re-encodes the event in val with its name, type (0: kept) or payload
 * (NULL: kept) changed, and puts it under key: a store changed by someone
 * who can write it but has no key. */
static void put_changed(env *e, const ls_buf *key, const ls_buf *val, const char *name,
                        ls_event_type type, const ls_event *payload_of)
{
    ls_err err = {0};
    ls_event ev;
    ls_buf v = LS_BUF_INIT;
    th_ok(ls_event_decode(val->ptr, val->len, &ev, &err), &err);
    if (name) {
        ev.name = name;
        ev.name_len = strlen(name);
    }
    if (type) ev.type = type;
    if (payload_of) {
        ev.payload = payload_of->payload;
        ev.payload_len = payload_of->payload_len;
    }
    th_ok(ls_event_encode(&ev, &v, &err), &err);
    put_raw(e, key->ptr, key->len, v.ptr, v.len);
    ls_buf_free(&v);
}

/* Waits until run's history holds n events of type named name. */
static void wait_events(env *e, const char *run, const char *type, const char *name, size_t n)
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        json_t *ev = history(e, run);
        size_t k = count_events(ev, type, name);
        json_decref(ev);
        if (k >= n) return;
        th_nap_ms(2);
    }
    fail_msg("run %s never had %zu %s events of \"%s\"", run, n, type, name);
}

/* The activation is given up, logged with want; the run is neither
 * failed nor moved on (its step "b" never ran, no signal reached its
 * history). */
static void given_up_with(env *e, const char *run, const char *want)
{
    char buf[32];
    wait_log(e, want);
    wait_idle(e);
    assert_false(log_has(&e->h, "failed:"));
    assert_string_equal(status_of(e, run, buf), "running");
    assert_int_equal(calls(&e->h, run, "b"), 0);
}

/* The log line of run's activation given up on the inbox entry stored
 * under key (its arrival id: the key's last bytes), of type and name,
 * refused with why; into out. */
static const char *inbox_refused(char *out, size_t cap, const char *run, const ls_buf *key,
                                 const char *type, const char *name, const char *why)
{
    ls_id arrival;
    char at[LS_ID_TEXTLEN + 1];
    assert_true(key->len >= LS_ID_BYTES);
    memcpy(arrival.b, key->ptr + key->len - LS_ID_BYTES, LS_ID_BYTES);
    ls_id_format(&arrival, at);
    snprintf(out, cap,
             "error [%s] cannot load history: payload of a pending signal or child result "
             "(inbox entry %s, %s \"%s\"): %s",
             run, at, type, name, why);
    return out;
}

#define NO_AUTH "sealed value does not authenticate"

/* A pending signal's payload (an inbox entry, sealed with seq 0) that does
 * not open is named as such, not as "event 0", with its arrival id, type
 * and name, and the activation is given up without failing the run: with
 * the right key it goes on. */
static void test_engine_inbox_entry_that_does_not_open_is_named(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "ib-1", NULL);
    json_decref(wait_waiting(e, "ib-1"));
    eng_close(e);

    /* The key file as it was before a rotation: key 1 alone. */
    ls_vault_t *right = e->d.v, *stale = NULL;
    ls_vault_opts vo = {0};
    th_ok(ls_vault_load(&stale, e->d.key_path, &vo, &err), &err);
    th_ok(ls_vault_rotate(right, NULL, &err), &err);
    eng_open(e, 0);                          /* not running: the signal stays in the inbox */
    signal_ok(e, "ib-1", "go", "{\"n\":1}"); /* sealed under key 2 */
    ls_id id;
    th_ok(flow_lookup(e->f, "ib-1", 4, &id, &err), &err);
    eng_close(e);
    ls_buf key, val;
    assert_int_equal(read_inbox(e, &id, &key, &val, 1), 1);

    e->d.v = stale;
    eng_open(e, 1);
    char line[512];
    wait_log(e, inbox_refused(line, sizeof line, "ib-1", &key, "signal_received", "go",
                              "sealed value names key 2, which this keyring does not hold"));
    assert_false(log_has(&e->h, "payload of event 0"));
    assert_false(log_has(&e->h, "failed:"));
    char buf[32];
    assert_string_equal(status_of(e, "ib-1", buf), "running");
    eng_close(e);

    /* The right key again: the signal was kept and is delivered. */
    e->d.v = right;
    ls_vault_close(stale);
    eng_open(e, 1);
    signal_ok(e, "ib-1", "go", "{\"n\":2}");
    wait_end(e, "ib-1");
    json_t *r = results_of(e, "ib-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":2}");
    json_decref(r);
    eng_close(e);
    ls_buf_free(&key);
    ls_buf_free(&val);
}

/* Two signals pending in a run's inbox whose sealed payloads are swapped
 * in the store (same run, same name: an older lodestoned sealed both with
 * the same associated data, and the run took them in the swapped order
 * without a word): neither opens, the activation is given up and logged,
 * the run waits. Put back, both are delivered in the order they came. */
static void test_engine_swapped_pending_signals_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "sw-1", NULL);
    json_decref(wait_waiting(e, "sw-1"));
    eng_close(e);
    eng_open(e, 0); /* not running: the signals stay in the inbox */
    signal_ok(e, "sw-1", "go", "{\"n\":1}");
    signal_ok(e, "sw-1", "go", "{\"n\":2}");
    ls_id id;
    th_ok(flow_lookup(e->f, "sw-1", 4, &id, &err), &err);
    eng_close(e);

    ls_buf keys[2], vals[2];
    assert_int_equal(read_inbox(e, &id, keys, vals, 2), 2);
    ls_event ev[2];
    th_ok(ls_event_decode(vals[0].ptr, vals[0].len, &ev[0], &err), &err);
    th_ok(ls_event_decode(vals[1].ptr, vals[1].len, &ev[1], &err), &err);
    put_changed(e, &keys[0], &vals[0], NULL, 0, &ev[1]);
    put_changed(e, &keys[1], &vals[1], NULL, 0, &ev[0]);
    eng_open(e, 1);
    char line[512];
    given_up_with(
        e, "sw-1",
        inbox_refused(line, sizeof line, "sw-1", &keys[0], "signal_received", "go", NO_AUTH));
    json_t *h = history(e, "sw-1");
    assert_int_equal(count_events(h, "signal_received", NULL), 0);
    json_decref(h);
    eng_close(e);

    for (int i = 0; i < 2; i++) put_raw(e, keys[i].ptr, keys[i].len, vals[i].ptr, vals[i].len);
    eng_open(e, 1);
    wait_end(e, "sw-1");
    json_t *r = results_of(e, "sw-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":2}");
    json_decref(r);
    eng_close(e);
    for (int i = 0; i < 2; i++) ls_buf_free(&keys[i]), ls_buf_free(&vals[i]);
}

/* A pending signal renamed in the store ("halt" to the "go" the run waits
 * for), or made another type (a child's result), does not open: the run
 * is not handed a payload that was sent under another name. Put back, it
 * is a "halt" that nothing waits for. */
static void test_engine_changed_pending_signal_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "rn-1", NULL);
    json_decref(wait_waiting(e, "rn-1"));
    eng_close(e);
    eng_open(e, 0);
    signal_ok(e, "rn-1", "halt", "{\"n\":9}");
    signal_ok(e, "rn-1", "go", "{\"n\":1}");
    ls_id id;
    th_ok(flow_lookup(e->f, "rn-1", 4, &id, &err), &err);
    eng_close(e);
    ls_buf keys[2], vals[2];
    assert_int_equal(read_inbox(e, &id, keys, vals, 2), 2);

    put_changed(e, &keys[0], &vals[0], "go", 0, NULL);
    eng_open(e, 1);
    char line[512];
    given_up_with(
        e, "rn-1",
        inbox_refused(line, sizeof line, "rn-1", &keys[0], "signal_received", "go", NO_AUTH));
    eng_close(e);

    put_changed(e, &keys[0], &vals[0], NULL, LS_EV_CHILD_COMPLETED, NULL);
    h_log_clear(&e->h);
    eng_open(e, 1);
    given_up_with(
        e, "rn-1",
        inbox_refused(line, sizeof line, "rn-1", &keys[0], "child_completed", "halt", NO_AUTH));
    json_t *h = history(e, "rn-1");
    assert_int_equal(count_events(h, "child_completed", NULL), 0);
    assert_int_equal(count_events(h, "signal_received", NULL), 0);
    json_decref(h);
    eng_close(e);

    put_raw(e, keys[0].ptr, keys[0].len, vals[0].ptr, vals[0].len);
    eng_open(e, 1);
    wait_events(e, "rn-1", "signal_received", "go", 1);
    signal_ok(e, "rn-1", "go", "{\"n\":3}");
    wait_end(e, "rn-1");
    json_t *r = results_of(e, "rn-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":3}");
    json_decref(r);
    h = history(e, "rn-1");
    assert_int_equal(count_events(h, "signal_received", "halt"), 1);
    json_decref(h);
    eng_close(e);
    for (int i = 0; i < 2; i++) ls_buf_free(&keys[i]), ls_buf_free(&vals[i]);
}

/* A signal forged in the store without a payload (a pending "halt" made a
 * "go" with its sealed payload removed, as if sent without one): lodestoned
 * seals every signal's payload, "null" too, so one without is refused,
 * never handed to the run as null. Put back, the run goes on. */
static void test_engine_pending_signal_without_payload_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "np-1", NULL);
    json_decref(wait_waiting(e, "np-1"));
    eng_close(e);
    eng_open(e, 0);
    signal_ok(e, "np-1", "halt", "{\"n\":9}");
    ls_id id;
    th_ok(flow_lookup(e->f, "np-1", 4, &id, &err), &err);
    eng_close(e);
    ls_buf keys[1], vals[1];
    assert_int_equal(read_inbox(e, &id, keys, vals, 1), 1);
    ls_event none = {0};
    put_changed(e, &keys[0], &vals[0], "go", 0, &none);
    eng_open(e, 1);
    char line[512];
    given_up_with(e, "np-1",
                  inbox_refused(line, sizeof line, "np-1", &keys[0], "signal_received", "go",
                                "a signal_received without its sealed payload"));
    json_t *h = history(e, "np-1");
    assert_int_equal(count_events(h, "signal_received", NULL), 0);
    json_decref(h);
    eng_close(e);

    put_raw(e, keys[0].ptr, keys[0].len, vals[0].ptr, vals[0].len);
    eng_open(e, 1);
    wait_events(e, "np-1", "signal_received", "halt", 1);
    signal_ok(e, "np-1", "go", "{\"n\":1}");
    signal_ok(e, "np-1", "go", "{\"n\":2}");
    wait_end(e, "np-1");
    json_t *r = results_of(e, "np-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    json_decref(r);
    eng_close(e);
    ls_buf_free(&keys[0]);
    ls_buf_free(&vals[0]);
}

/* A signal in a run's history renamed in the store to the name its code
 * waits for: the replay takes it, its payload does not open, and the
 * activation is given up naming the run and the event; the run is not
 * failed. Put back, the run goes on as it was. */
static void test_engine_renamed_history_signal_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "hs-1", NULL);
    json_decref(wait_waiting(e, "hs-1"));
    eng_close(e);
    eng_open(e, 0);
    signal_ok(e, "hs-1", "halt", "{\"n\":9}");
    signal_ok(e, "hs-1", "go", "{\"n\":1}");
    ls_id id;
    th_ok(flow_lookup(e->f, "hs-1", 4, &id, &err), &err);
    eng_close(e);
    eng_open(e, 1); /* both go into its history, halt first; go is taken */
    wait_events(e, "hs-1", "signal_received", "go", 1);
    json_t *h = history(e, "hs-1");
    json_int_t seq = jint(nth_event(h, "signal_received", "halt", 0), "seq");
    json_decref(h);
    wait_idle(e);
    eng_close(e);

    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    th_ok(ls_history_key(&key, &id, (uint64_t)seq, &err), &err);
    th_ok(ls_store_get(e->d.st, key.ptr, key.len, &val, &err), &err);
    put_changed(e, &key, &val, "go", 0, NULL);
    h_log_clear(&e->h);
    eng_open(e, 1);
    signal_ok(e, "hs-1", "go", "{\"n\":2}"); /* wakes it: its replay takes the renamed one */
    char want[128];
    snprintf(want, sizeof want,
             "error [hs-1] run hs-1: payload of event %lld: sealed value does not authenticate",
             (long long)seq);
    given_up_with(e, "hs-1", want);
    eng_close(e);

    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    eng_open(e, 1);
    wait_end(e, "hs-1");
    json_t *r = results_of(e, "hs-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":2}");
    json_decref(r);
    eng_close(e);
    ls_buf_free(&key);
    ls_buf_free(&val);
}

/* A step's result stripped from its record in the store (a step that
 * never ran, forged as completed): lodestoned seals every result, "null"
 * too, so its replay refuses the record and the activation is given up,
 * naming the run and the event, instead of taking the step as done with
 * null; the run is not failed. Put back, it goes on. */
static void test_engine_step_result_without_payload_refused(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "sr-1", NULL);
    json_decref(wait_waiting(e, "sr-1"));
    json_t *h = history(e, "sr-1");
    json_int_t seq = jint(nth_event(h, "step_completed", "a", 0), "seq");
    json_decref(h);
    ls_id id;
    th_ok(flow_lookup(e->f, "sr-1", 4, &id, &err), &err);
    wait_idle(e);
    eng_close(e);

    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    th_ok(ls_history_key(&key, &id, (uint64_t)seq, &err), &err);
    th_ok(ls_store_get(e->d.st, key.ptr, key.len, &val, &err), &err);
    ls_event none = {0};
    put_changed(e, &key, &val, NULL, 0, &none);
    h_log_clear(&e->h);
    eng_open(e, 1);
    signal_ok(e, "sr-1", "go", "{\"n\":1}"); /* wakes it: its replay meets the step */
    char want[160];
    snprintf(want, sizeof want,
             "error [sr-1] run sr-1: payload of event %lld: a step_completed without its sealed "
             "payload",
             (long long)seq);
    given_up_with(e, "sr-1", want);
    eng_close(e);

    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    eng_open(e, 1);
    signal_ok(e, "sr-1", "go", "{\"n\":2}");
    wait_end(e, "sr-1");
    h = history(e, "sr-1");
    assert_int_equal(count_events(h, "step_completed", "a"), 1); /* not run again */
    json_decref(h);
    eng_close(e);
    ls_buf_free(&key);
    ls_buf_free(&val);
}

/* Sets run id's record's last_seq in the store. */
static void set_last_seq(env *e, const ls_id *id, uint64_t last)
{
    ls_err err = {0};
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, w = LS_BUF_INIT;
    ls_run_record rec;
    th_ok(ls_run_key(&k, id, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    th_ok(ls_run_decode(v.ptr, v.len, &rec, &err), &err);
    rec.last_seq = last;
    th_ok(ls_run_encode(&rec, &w, &err), &err);
    put_raw(e, k.ptr, k.len, w.ptr, w.len);
    ls_buf_free(&k), ls_buf_free(&v), ls_buf_free(&w);
}

/* The history, the run and its result refuse an event of version 2 copied
 * to another key of its run (its payload opens under the seq it holds):
 * a completed run's WorkflowCompleted, seq N, copied to N + 1 and the
 * record made to end there, would show the output twice in the history
 * and as the output of event N + 1. Each is LS_ECORRUPT naming the key's
 * seq and the one the record holds; put back, all read as before. */
static void test_engine_moved_event_refused_by_api(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "three", "mv-1", NULL);
    wait_end(e, "mv-1");
    ls_id id;
    th_ok(flow_lookup(e->f, "mv-1", 4, &id, &err), &err);
    json_t *h = history(e, "mv-1");
    json_int_t last = jint(nth_event(h, "workflow_completed", NULL, 0), "seq");
    json_decref(h);
    wait_idle(e);
    eng_close(e);

    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT, copy = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_history_key(&key, &id, (uint64_t)last, &err), &err);
    th_ok(ls_store_get(e->d.st, key.ptr, key.len, &val, &err), &err);
    th_ok(ls_history_key(&copy, &id, (uint64_t)last + 1, &err), &err);
    put_raw(e, copy.ptr, copy.len, val.ptr, val.len);
    set_last_seq(e, &id, (uint64_t)last + 1);
    char want[96];
    snprintf(want, sizeof want, "event %lld: the record holds seq %lld", (long long)last + 1,
             (long long)last);
    eng_open(e, 0);
    int done = 0;
    assert_int_equal(ls_flow_history(e->f, "mv-1", 4, &out, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, want);
    err = (ls_err){0};
    assert_int_equal(ls_flow_result(e->f, "mv-1", 4, &out, &done, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, want);
    err = (ls_err){0};
    assert_int_equal(ls_flow_describe(e->f, "mv-1", 4, &out, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, want);
    eng_close(e);

    /* Only the copy in the history (the record as it was): refused too. */
    set_last_seq(e, &id, (uint64_t)last);
    eng_open(e, 0);
    err = (ls_err){0};
    assert_int_equal(ls_flow_history(e->f, "mv-1", 4, &out, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, want);
    th_ok(ls_flow_result(e->f, "mv-1", 4, &out, &done, &err), &err);
    eng_close(e);

    th_ok(ls_store_delete(e->d.st, copy.ptr, copy.len, LS_STORE_SYNC, &err), &err);
    eng_open(e, 0);
    h = history(e, "mv-1");
    assert_int_equal(count_events(h, "workflow_completed", NULL), 1);
    json_decref(h);
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val), ls_buf_free(&copy), ls_buf_free(&out);
}

/* A run written by an older lodestoned (every event of version 1, its
 * payloads sealed with the run id and seq alone, a signal pending in its
 * inbox sealed likewise) opens and completes; what this build adds is of
 * version 3 (every event sealed, a step's start too), and the old events
 * stay as they were. */
static void test_engine_version1_records_open(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "sig", "old-1", "{\"in\":1}");
    json_decref(wait_waiting(e, "old-1"));
    signal_ok(e, "old-1", "go", "{\"n\":1}");
    wait_events(e, "old-1", "signal_received", "go", 1);
    wait_idle(e);
    eng_close(e);
    eng_open(e, 0);
    signal_ok(e, "old-1", "go", "{\"n\":2}");
    ls_id id;
    th_ok(flow_lookup(e->f, "old-1", 5, &id, &err), &err);
    eng_close(e);

    size_t v1 = 0;
    /* input, a's start (sealed empty), a, go */
    assert_int_equal(th_payload_events(e->d.st, 0, &id, &v1), 4);
    assert_int_equal(v1, 0);
    /* the inbox first: its entry is sealed with the run's start as found */
    assert_int_equal(th_events_as_v1(e->d.st, e->d.v, 1, &id), 1);
    assert_true(th_events_as_v1(e->d.st, e->d.v, 0, &id) >= 3);
    assert_int_equal(th_payload_events(e->d.st, 0, &id, &v1), 3); /* a's start: none */
    assert_int_equal(v1, 3);
    assert_int_equal(th_payload_events(e->d.st, 1, &id, &v1), 1);
    assert_int_equal(v1, 1);

    eng_open(e, 1);
    wait_end(e, "old-1");
    json_t *d = describe(e, "old-1");
    assert_json(json_object_get(json_object_get(d, "output"), "input"), "{\"in\":1}");
    json_decref(d);
    json_t *r = results_of(e, "old-1");
    assert_json(json_array_get(r, 1), "{\"n\":1}");
    assert_json(json_array_get(r, 2), "{\"n\":2}");
    json_decref(r);
    json_t *h = history(e, "old-1"); /* every payload opens */
    assert_json(json_object_get(nth_event(h, "signal_received", "go", 0), "payload"), "{\"n\":1}");
    assert_json(json_object_get(nth_event(h, "signal_received", "go", 1), "payload"), "{\"n\":2}");
    json_decref(h);
    /* the second go, step b's start and result and the output are new:
     * version 3, each sealed */
    assert_int_equal(th_payload_events(e->d.st, 0, &id, &v1), 7);
    assert_int_equal(v1, 3);
    assert_int_equal(calls(&e->h, "old-1", "a"), 1);
    eng_close(e);
}

/* ---- version 3: every event sealed ---- */

/* Run name of "nap", started on a frozen clock, waits on its sleep (its
 * history: started, a's start and result, the timer's start), into *id;
 * the engine is closed. */
static void nap_waiting(env *e, const char *name, ls_id *id)
{
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap", name, "{\"n\":1}");
    json_decref(wait_waiting(e, name));
    th_ok(flow_lookup(e->f, name, strlen(name), id, &err), &err);
    wait_idle(e);
    eng_close(e);
}

/* Reads event seq of run id into *ev (borrowed from val) under key. */
static void read_event(env *e, const ls_id *id, uint64_t seq, ls_buf *key, ls_buf *val,
                       ls_event *ev)
{
    ls_err err = {0};
    th_ok(ls_history_key(key, id, seq, &err), &err);
    th_ok(ls_store_get(e->d.st, key->ptr, key->len, val, &err), &err);
    th_ok(ls_event_decode(val->ptr, val->len, ev, &err), &err);
}

/* Puts ev, encoded as it is, under key: a store changed by someone who
 * can write it but has no key. */
static void put_ev(env *e, const ls_buf *key, const ls_event *ev)
{
    ls_err err = {0};
    ls_buf v = LS_BUF_INIT;
    th_ok(ls_event_encode(ev, &v, &err), &err);
    put_raw(e, key->ptr, key->len, v.ptr, v.len);
    ls_buf_free(&v);
}

/* Wakes run name (a signal nothing waits for) and expects its activation
 * given up with want (given_up_with); the engine is closed after. */
static void poke_given_up(env *e, const char *name, const char *want)
{
    h_log_clear(&e->h);
    eng_open(e, 1);
    signal_ok(e, name, "poke", "1");
    given_up_with(e, name, want);
    eng_close(e);
}

/* Forges in run id's history, as someone without the key file would, a
 * TimerFired at seq `at` made of its TimerStarted (event 4, whose version
 * is returned), of version (0: the TimerStarted's) and without a seal,
 * and makes the run's record end there. key: where it was put. */
static unsigned forge_timer_fired(env *e, const ls_id *id, uint64_t at, unsigned version,
                                  ls_buf *key)
{
    ls_buf k4 = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    ls_err err = {0};
    read_event(e, id, 4, &k4, &val, &ev);
    assert_int_equal(ev.type, LS_EV_TIMER_STARTED);
    unsigned was = ev.version;
    ev.type = LS_EV_TIMER_FIRED;
    ev.seq = at;
    ev.due_ms = 0;
    ev.payload = NULL;
    ev.payload_len = 0;
    if (version) ev.version = version;
    th_ok(ls_history_key(key, id, at, &err), &err);
    put_ev(e, key, &ev);
    set_last_seq(e, id, at);
    ls_buf_free(&k4);
    ls_buf_free(&val);
    return was;
}

/* Takes back what forge_timer_fired put under key: the record ends at last. */
static void unforge(env *e, const ls_id *id, const ls_buf *key, uint64_t last)
{
    ls_err err = {0};
    th_ok(ls_store_delete(e->d.st, key->ptr, key->len, LS_STORE_SYNC, &err), &err);
    set_last_seq(e, id, last);
}

/* A TimerFired forged in the store by someone without the key file (a
 * durable wait skipped): written without a seal, or as a version 1 event
 * (which carried none), after the TimerStarted of a run started at
 * version 3, the run's record made to end there. Its activation is given
 * up, naming the run and the event; the run neither fails nor moves on
 * (its step "b" never runs). With the record put right, it waits for its
 * timer and completes. */
static void test_engine_forged_timer_fired_refused(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "tf-1", &id);
    ls_buf k5 = LS_BUF_INIT;
    assert_int_equal(forge_timer_fired(e, &id, 5, 0, &k5), 3);
    poke_given_up(e, "tf-1",
                  "error [tf-1] run tf-1: payload of event 5: a timer_fired without its sealed "
                  "payload; the run waits, unfinished");

    forge_timer_fired(e, &id, 5, 1, &k5);
    poke_given_up(e, "tf-1",
                  "error [tf-1] run tf-1: event 5: a version 1 event in a run started at version "
                  "3; the run waits, unfinished");

    unforge(e, &id, &k5, 4);
    eng_open(e, 1);
    char buf[32];
    assert_string_equal(status_of(e, "tf-1", buf), "running");
    th_clock_advance(&e->fc, 300);
    wait_end(e, "tf-1");
    assert_string_equal(status_of(e, "tf-1", buf), "completed");
    assert_int_equal(calls(&e->h, "tf-1", "b"), 1);
    eng_close(e);
    ls_buf_free(&k5);
}

/* Deletes run id's pending inbox entries from the store. */
static void drop_inbox(env *e, const ls_id *id)
{
    ls_err err = {0};
    ls_buf prefix = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    ls_store_batch_t *b = NULL;
    const void *key, *val;
    size_t klen, vlen;
    ls_rc rc;
    th_ok(flow_key_inbox(&prefix, id, NULL, &err), &err);
    th_ok(ls_store_batch_new(&b, &err), &err);
    th_ok(ls_store_iter_prefix(&it, e->d.st, prefix.ptr, prefix.len, 0, &err), &err);
    while ((rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, &err)) == LS_OK)
        ls_store_batch_delete(b, key, klen);
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
    th_ok(ls_store_write(e->d.st, b, LS_STORE_SYNC, &err), &err);
    ls_store_batch_free(b);
    ls_buf_free(&prefix);
}

/* Puts into run id's inbox a request of type and version without a seal,
 * as someone without the key file would. */
static void forge_request(env *e, const ls_id *id, ls_event_type type, unsigned version)
{
    ls_err err = {0};
    ls_id arrival;
    ls_buf k = LS_BUF_INIT;
    th_ok(ls_id_new(&arrival, NULL, &err), &err);
    ls_event ev = {
        .version = version, .type = type, .seq = 1, .time_ms = 1, .name = "mallory", .name_len = 7};
    th_ok(flow_key_inbox(&k, id, &arrival, &err), &err);
    put_ev(e, &k, &ev);
    ls_buf_free(&k);
}

/* A terminate request forged in a run's inbox is not taken at start-up
 * either: the drain refuses the activation ("cannot load history"), and
 * once the entry is deleted the run's code runs as before (the old code
 * marked the run terminating at start-up from the raw entry, for good:
 * its code was interrupted at once, every activation). */
static void test_engine_forged_terminate_at_startup(void **state)
{
    env *e = *state;
    ls_err err = {0};
    ls_id id;
    eng_open(e, 0);
    start1(e, "gated", "fx-1", NULL);
    th_ok(flow_lookup(e->f, "fx-1", 4, &id, &err), &err);
    eng_close(e);
    forge_request(e, &id, LS_EV_WORKFLOW_TERMINATED, 3);
    h_log_clear(&e->h);
    eng_open(e, 1);
    wait_log(e, "cannot load history: seal of a pending request");
    drop_inbox(e, &id);
    signal_ok(e, "fx-1", "poke", "1");
    wait_calls(e, "fx-1", "wait", 1);
    th_nap_ms(50); /* an interrupted step would have given up by now */
    atomic_store(&e->h.gate_open, 1);
    wait_end(e, "fx-1");
    char buf[32];
    assert_string_equal(status_of(e, "fx-1", buf), "completed");
    eng_close(e);
}

/* Cancel requests forged in a waiting run's inbox (started at version 3):
 * one of version 3 without its seal (the drain opens every entry, one
 * without a payload too), then one of version 1 (an older version after
 * version 3 events: flow_hist_check_entry) are refused, the run left
 * running; deleted, the run completes. */
static void test_engine_forged_cancel_entries_refused(void **state)
{
    env *e = *state;
    ls_id id;
    char buf[32];
    nap_waiting(e, "fc-1", &id);
    static const struct {
        unsigned version;
        const char *why;
    } forged[] = {{3, "cancel_requested \"mallory\"): a cancel_requested without its sealed "
                      "payload"},
                  {1, "cancel_requested \"mallory\"): a version 1 event in a run started at "
                      "version 3"}};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        forge_request(e, &id, LS_EV_CANCEL_REQUESTED, forged[i].version);
        h_log_clear(&e->h);
        eng_open(e, 1);
        wait_log(e, "cannot load history: seal of a pending request");
        wait_log(e, forged[i].why);
        assert_string_equal(status_of(e, "fc-1", buf), "running");
        eng_close(e);
        drop_inbox(e, &id);
    }
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "fc-1");
    assert_string_equal(status_of(e, "fc-1", buf), "completed");
    assert_int_equal(calls(&e->h, "fc-1", "b"), 1);
    eng_close(e);
}

/* A run started at version 3 whose first event is rewritten as a version
 * 1 event without a payload (as an older WorkflowStarted could be: its
 * input null), so that it reads as a run started before, with a forged
 * version 1 TimerFired after it: its version 3 events were sealed for a
 * run started at version 3, and do not open (the old code completed the
 * run, skipping the sleep). Put back, the run completes. */
static void test_engine_downgraded_start_refused(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "dg-1", &id);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT, k5 = LS_BUF_INIT;
    ls_event ev;
    forge_timer_fired(e, &id, 5, 1, &k5);
    read_event(e, &id, 1, &key, &val, &ev);
    assert_int_equal(ev.version, 3);
    ev.version = 1;
    ev.payload = NULL;
    ev.payload_len = 0;
    put_ev(e, &key, &ev);
    poke_given_up(e, "dg-1",
                  "error [dg-1] run dg-1: payload of event 2: sealed value does not authenticate");

    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    unforge(e, &id, &k5, 4);
    /* the poke was sealed for the run as it was found then: refused now */
    h_log_clear(&e->h);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_log(e, "cannot load history: payload of a pending signal or child result");
    eng_close(e);
    drop_inbox(e, &id);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "dg-1");
    char buf[32];
    assert_string_equal(status_of(e, "dg-1", buf), "completed");
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val), ls_buf_free(&k5);
}

/* The seq of run name's last event, as the history API lists it. */
static uint64_t last_seq_of(env *e, const char *name)
{
    json_t *evs = history(e, name);
    json_t *last = json_array_get(evs, json_array_size(evs) - 1);
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(last, "seq"));
    json_decref(evs);
    return seq;
}

/* Rewrites run id's last event (seq last) in the store as a version 1
 * event without a payload, its reason (when reason) changed. */
static void last_as_v1(env *e, const ls_id *id, uint64_t last, const char *reason)
{
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, id, last, &key, &val, &ev);
    assert_int_equal(ev.version, 3);
    ev.version = 1;
    ev.payload = NULL;
    ev.payload_len = 0;
    if (reason) ev.error = reason, ev.error_len = strlen(reason);
    put_ev(e, &key, &ev);
    ls_buf_free(&key), ls_buf_free(&val);
}

/* The API's views of an ended run started at version 3 refuse a last
 * event of version 1: a completed run's output (describe and result: the
 * old code showed null) and a cancelled run's reason in a list (the old
 * code showed the forged one); and one whose fields changed under its
 * seal (check_last opens it). */
static void test_engine_api_refuses_older_last_event(void **state)
{
    env *e = *state;
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    int done = 0;
    eng_open(e, 1);
    start1(e, "three", "al-1", "{\"i\":1}");
    wait_end(e, "al-1");
    for (int i = 2; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "al-%d", i);
        start1(e, "cancel_me", name, NULL);
        json_decref(wait_waiting(e, name));
        th_ok(ls_flow_cancel(e->f, name, 4, "tester", "not needed", &err), &err);
        wait_end(e, name);
    }
    ls_id co, ca, cb;
    th_ok(flow_lookup(e->f, "al-1", 4, &co, &err), &err);
    th_ok(flow_lookup(e->f, "al-2", 4, &ca, &err), &err);
    th_ok(flow_lookup(e->f, "al-3", 4, &cb, &err), &err);
    uint64_t n1 = last_seq_of(e, "al-1"), n2 = last_seq_of(e, "al-2"), n3 = last_seq_of(e, "al-3");
    eng_close(e);
    last_as_v1(e, &co, n1, NULL);
    last_as_v1(e, &ca, n2, "forged");
    char want[128];
    eng_open(e, 0);
    snprintf(want, sizeof want, "event %llu: a version 1 event in a run started at version 3",
             (unsigned long long)n1);
    assert_int_equal(ls_flow_describe(e->f, "al-1", 4, &out, &err), LS_EAUTH);
    assert_string_equal(err.msg, want);
    assert_int_equal(ls_flow_result(e->f, "al-1", 4, &out, &done, &err), LS_EAUTH);
    assert_string_equal(err.msg, want);
    snprintf(want, sizeof want, "event %llu: a version 1 event in a run started at version 3",
             (unsigned long long)n2);
    /* a list shows the run as unreadable, not its forged reason */
    th_ok(ls_flow_list(e->f, "cancelled", NULL, 0, NULL, &out, &err), &err);
    json_t *j = parse_buf(&out);
    json_t *runs = json_object_get(j, "runs");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(runs); i++) {
        json_t *r = json_array_get(runs, i);
        if (strcmp(jstr(r, "id"), "al-2") != 0) continue;
        seen = 1;
        assert_string_equal(jstr(r, "unreadable"), want);
        assert_null(json_object_get(r, "reason"));
    }
    assert_true(seen);
    json_decref(j);
    eng_close(e);

    /* al-3's reason changed, its version and seal kept: check_last opens it */
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &cb, n3, &key, &val, &ev);
    ev.error = "forged", ev.error_len = 6;
    put_ev(e, &key, &ev);
    ls_buf_free(&key), ls_buf_free(&val);
    eng_open(e, 0);
    snprintf(want, sizeof want, "payload of event %llu: sealed value does not authenticate",
             (unsigned long long)n3);
    assert_int_equal(ls_flow_describe(e->f, "al-3", 4, &out, &err), LS_EAUTH);
    assert_non_null(strstr(err.msg, want));
    eng_close(e);
    ls_buf_free(&out);
}

/* A step's start or a timer's changed in the store (seal kept): the
 * activation is given up; put back, the run completes. */
static void test_engine_changed_event_without_payload_refused(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "ce-1", &id);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &id, 2, &key, &val, &ev);
    assert_int_equal(ev.type, LS_EV_STEP_STARTED);
    ev.attempt = 2;
    put_ev(e, &key, &ev);
    /* the history API checks the seal of a kind it shows without a payload */
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    eng_open(e, 0);
    assert_int_equal(ls_flow_history(e->f, "ce-1", 4, &out, &err), LS_EAUTH);
    assert_non_null(strstr(err.msg, "payload of event 2: sealed value does not authenticate"));
    eng_close(e);
    ls_buf_free(&out);
    poke_given_up(e, "ce-1",
                  "error [ce-1] run ce-1: payload of event 2: sealed value does not authenticate");
    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "ce-1");
    char buf[32];
    assert_string_equal(status_of(e, "ce-1", buf), "completed");
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val);
}

/* An event deleted from the middle of a run's history is refused by the
 * replay and by the history API, naming the missing seq (the API listed
 * the rest without it); put back, all reads and the run completes. */
static void test_engine_deleted_middle_event_refused(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "gp-1", &id);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_event ev;
    ls_err err = {0};
    read_event(e, &id, 2, &key, &val, &ev);
    th_ok(ls_store_delete(e->d.st, key.ptr, key.len, LS_STORE_SYNC, &err), &err);
    eng_open(e, 0);
    assert_int_equal(ls_flow_history(e->f, "gp-1", 4, &out, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, "history: event 2 is missing (event 3 follows 1)");
    eng_close(e);
    poke_given_up(e, "gp-1",
                  "error [gp-1] run gp-1: history: event 2 is missing (event 3 follows 1); the run "
                  "waits, unfinished");

    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "gp-1");
    json_t *h = history(e, "gp-1");
    assert_int_equal(count_events(h, "step_started", "a"), 1);
    json_decref(h);
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val), ls_buf_free(&out);
}

/* The newest event of a run deleted (its record still counting it) is
 * refused when the run is loaded, naming both seqs (the old code replayed
 * the shorter history and wrote its next event in the deleted one's
 * place); put back, the run completes. */
static void test_engine_deleted_newest_event_refused(void **state)
{
    env *e = *state;
    ls_id id;
    ls_err err = {0};
    nap_waiting(e, "ln-1", &id);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &id, 4, &key, &val, &ev);
    th_ok(ls_store_delete(e->d.st, key.ptr, key.len, LS_STORE_SYNC, &err), &err);
    poke_given_up(e, "ln-1",
                  "error [ln-1] run ln-1: history: its last event is event 3, the run's record "
                  "says 4; the run waits, unfinished");
    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "ln-1");
    char buf[32];
    assert_string_equal(status_of(e, "ln-1", buf), "completed");
    assert_int_equal(calls(&e->h, "ln-1", "b"), 1);
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val);
}

/* A run started before version 3 (its events of version 2, as the
 * previous lodestoned wrote them: the step's and timer's starts without a
 * seal) replays and completes; what this build appends is of version 3,
 * each event sealed, and the older events stay as they were. */
static void test_engine_version2_run_goes_on(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "v2-1", &id);
    assert_int_equal(th_events_as(e->d.st, e->d.v, 2, 0, &id), 4);
    size_t v1 = 9;
    assert_int_equal(th_payload_events(e->d.st, 0, &id, &v1), 2); /* input, a's result */
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "v2-1");
    char buf[32];
    assert_string_equal(status_of(e, "v2-1", buf), "completed");
    assert_int_equal(calls(&e->h, "v2-1", "a"), 1);
    json_t *h = history(e, "v2-1");
    assert_int_equal(count_events(h, "timer_fired", NULL), 1);
    json_decref(h);
    /* the timer's firing, b's start and result and the output: sealed */
    assert_int_equal(th_payload_events(e->d.st, 0, &id, &v1), 2 + 4);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &id, 4, &key, &val, &ev);
    assert_int_equal(ev.version, 2);
    read_event(e, &id, 5, &key, &val, &ev);
    assert_int_equal(ev.version, 3);
    assert_int_equal(ev.type, LS_EV_TIMER_FIRED);
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val);
}

/* Versions never go down in a run: in a run started at version 2 to which
 * this build appended a version 3 event (a signal), a version 2 event
 * forged without a seal after it (a TimerFired) is refused (the old code
 * took it: the run completed, skipping the sleep). Deleted, the run
 * completes. */
static void test_engine_older_event_after_v3_refused(void **state)
{
    env *e = *state;
    ls_id id;
    nap_waiting(e, "mx-1", &id);
    assert_int_equal(th_events_as(e->d.st, e->d.v, 2, 0, &id), 4);
    eng_open(e, 1);
    signal_ok(e, "mx-1", "poke", "1"); /* event 5, of version 3 */
    wait_events(e, "mx-1", "signal_received", "poke", 1);
    wait_idle(e);
    eng_close(e);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT, k6 = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &id, 5, &key, &val, &ev);
    assert_int_equal(ev.version, 3);
    assert_int_equal(forge_timer_fired(e, &id, 6, 0, &k6), 2);
    poke_given_up(e, "mx-1",
                  "error [mx-1] run mx-1: event 6: a version 2 event after event 5 of version 3; "
                  "the run waits, unfinished");

    unforge(e, &id, &k6, 5);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "mx-1");
    char buf[32];
    assert_string_equal(status_of(e, "mx-1", buf), "completed");
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val), ls_buf_free(&k6);
}

/* Key retirement keeps an older event at its version class: in a run of
 * version 1 events waiting on a timer, a step's result (sealed) is sealed
 * again as version 2, not 3, since the timer's start after it (nothing
 * sealed: it stays version 1) would then be refused; the run completes. */
static void test_engine_retirement_keeps_older_events_older(void **state)
{
    env *e = *state;
    ls_id id;
    ls_err err = {0};
    nap_waiting(e, "rk-1", &id);
    assert_int_equal(th_events_as_v1(e->d.st, e->d.v, 0, &id), 4);
    th_ok(ls_vault_rotate(e->d.v, NULL, &err), &err);
    th_ok(ls_vault_check_write(e->d.v, e->d.st, &err), &err);
    ls_flow_retire_report rep;
    th_ok(ls_flow_key_retire(e->d.v, e->d.st, &rep, &err), &err);
    assert_int_equal(rep.failed, 0);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    ls_event ev;
    read_event(e, &id, 3, &key, &val, &ev);
    assert_int_equal(ev.type, LS_EV_STEP_COMPLETED);
    assert_int_equal(ev.version, 2);
    read_event(e, &id, 4, &key, &val, &ev);
    assert_int_equal(ev.version, 1);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "rk-1");
    char buf[32];
    assert_string_equal(status_of(e, "rk-1", buf), "completed");
    eng_close(e);
    ls_buf_free(&key), ls_buf_free(&val);
}

/* A branch run's copy of its parent's history, when the parent's events
 * are of version 1: opened as such, sealed again for the branch as
 * version 2, and the branches and the parent complete. */
static void test_engine_branch_copy_of_version1_history(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "nap_fan", "nv-1", "{\"n\":1}");
    json_decref(wait_waiting(e, "nv-1"));
    ls_id id;
    th_ok(flow_lookup(e->f, "nv-1", 4, &id, &err), &err);
    eng_close(e);
    assert_true(th_events_as_v1(e->d.st, e->d.v, 0, &id) > 0);

    eng_open(e, 1);
    char s[32], kids[2][64];
    th_clock_advance(&e->fc, 200); /* the sleep ends: the branch runs start */
    for (int i = 0; i < WAIT_MS / 2; i++) {
        th_clock_advance(&e->fc, 10); /* branch 1's sleep */
        if (strcmp(status_of(e, "nv-1", s), "running") != 0) break;
        th_nap_ms(2);
    }
    wait_end(e, "nv-1");
    assert_false(log_has(&e->h, "does not authenticate"));
    assert_string_equal(status_of(e, "nv-1", s), "completed");
    branch_ids(e, "nv-1", kids, 2);
    for (int i = 0; i < 2; i++) {
        ls_id kid;
        size_t v1 = 9;
        th_ok(flow_lookup(e->f, kids[i], strlen(kids[i]), &kid, &err), &err);
        assert_string_equal(status_of(e, kids[i], s), "completed");
        assert_true(th_payload_events(e->d.st, 0, &kid, &v1) >= 2); /* the input copied, ... */
        assert_int_equal(v1, 0);
    }
    eng_close(e);
}

static void test_engine_cancel_at_next_wait(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "cancel_me", "c-1", NULL);
    json_t *w = wait_waiting(e, "c-1");
    json_decref(w);
    th_ok(ls_flow_cancel(e->f, "c-1", 3, "tester", "not needed", &err), &err);
    wait_end(e, "c-1");
    json_t *d = describe(e, "c-1");
    assert_string_equal(jstr(d, "status"), "cancelled");
    assert_string_equal(jstr(d, "reason"), "not needed");
    assert_string_equal(jstr(d, "by"), "tester");
    json_decref(d);
    assert_int_equal(calls(&e->h, "c-1", "a"), 1);
    assert_int_equal(calls(&e->h, "c-1", "b"), 0);
    json_t *ev = history(e, "c-1");
    assert_int_equal(count_events(ev, "cancel_requested", NULL), 1);
    assert_int_equal(count_events(ev, "timer_cancelled", NULL), 1);
    json_t *end = nth_event(ev, "workflow_cancelled", NULL, 0);
    assert_string_equal(jstr(end, "reason"), "not needed");
    json_decref(ev);
    assert_int_equal(ls_flow_cancel(e->f, "c-1", 3, "tester", NULL, &err), LS_ESTATE);
    assert_non_null(strstr(err.msg, "cancelled"));
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.timers, 0);
    eng_close(e);
}

/* The code catches the cancellation and runs cleanup, which sleeps; a
 * restart in the middle replays the delivery at the same place. */
static void test_engine_cancel_cleanup_replays(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "cancel_catch", "k-1", NULL);
    json_t *w = wait_waiting(e, "k-1");
    assert_string_equal(jstr(w, "kind"), "signal");
    json_decref(w);
    th_ok(ls_flow_cancel(e->f, "k-1", 3, NULL, NULL, &err), &err);
    wait_calls(e, "k-1", "undo", 1);
    w = wait_waiting(e, "k-1");
    assert_string_equal(jstr(w, "kind"), "sleep");
    json_decref(w);
    eng_close(e);

    eng_open(e, 0);
    th_ok(ls_flow_run(e->f, &err), &err);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "k-1");
    json_t *d = describe(e, "k-1");
    assert_string_equal(jstr(d, "status"), "cancelled");
    json_decref(d);
    assert_int_equal(calls(&e->h, "k-1", "undo"), 1);
    assert_int_equal(calls(&e->h, "k-1", "undo2"), 1);
    assert_int_equal(calls(&e->h, "k-1", "b"), 0);
    assert_false(log_has(&e->h, "non-determinism"));
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

static void test_engine_terminate(void **state)
{
    env *e = *state;
    ls_err err = {0};
    int ended = 0;
    eng_open(e, 1);
    start1(e, "sleepy", "x-1", NULL);
    json_decref(wait_waiting(e, "x-1"));
    th_ok(ls_flow_terminate(e->f, "x-1", 3, "ops", "stuck", WAIT_MS, &ended, &err), &err);
    assert_true(ended);
    json_t *d = describe(e, "x-1");
    assert_string_equal(jstr(d, "status"), "terminated");
    assert_string_equal(jstr(d, "reason"), "stuck");
    json_decref(d);

    /* A step that is running is interrupted. */
    atomic_store(&e->h.block_armed, 1);
    start1(e, "blocky", "x-2", NULL);
    wait_calls(e, "x-2", "b", 1);
    th_ok(ls_flow_terminate(e->f, "x-2", 3, NULL, NULL, WAIT_MS, &ended, &err), &err);
    assert_true(ended);
    d = describe(e, "x-2");
    assert_string_equal(jstr(d, "status"), "terminated");
    json_decref(d);
    json_t *ev = history(e, "x-2");
    assert_int_equal(count_events(ev, "step_completed", "b"), 0);
    assert_int_equal(count_events(ev, "workflow_terminated", NULL), 1);
    json_decref(ev);
    assert_int_equal(ls_flow_terminate(e->f, "x-2", 3, NULL, NULL, WAIT_MS, &ended, &err),
                     LS_ESTATE);
    ls_flow_stats st;
    ls_flow_get_stats(e->f, &st);
    assert_int_equal(st.terminated, 2);
    assert_int_equal(st.timers, 0);
    eng_close(e);
}

/* Concurrency: one "limited" run per key at a time; the others are held
 * (none of their code runs), in order, across a restart. */
static void test_engine_concurrency_queue(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "limited", "l-1", "{\"k\":\"x\"}");
    start1(e, "limited", "l-2", "{\"k\":\"x\"}");
    start1(e, "limited", "l-3", "{\"k\":\"x\"}");
    start1(e, "limited", "m-1", "{\"k\":\"y\"}");
    json_decref(wait_waiting(e, "l-1"));
    json_decref(wait_waiting(e, "m-1"));
    json_t *w = wait_waiting(e, "l-2");
    assert_string_equal(jstr(w, "kind"), "concurrency");
    assert_string_equal(jstr(w, "name"), "x");
    json_decref(w);
    assert_int_equal(calls(&e->h, "l-2", "a"), 0);
    assert_int_equal(calls(&e->h, "l-3", "a"), 0);
    eng_close(e); /* l-2 and l-3 held */

    eng_open(e, 1);
    w = wait_waiting(e, "l-3");
    assert_string_equal(jstr(w, "kind"), "concurrency");
    json_decref(w);
    signal_ok(e, "l-1", "go", NULL);
    wait_end(e, "l-1");
    wait_calls(e, "l-2", "a", 1); /* the oldest held run got the slot */
    w = wait_waiting(e, "l-2");
    assert_string_equal(jstr(w, "kind"), "signal");
    json_decref(w);
    w = wait_waiting(e, "l-3");
    assert_string_equal(jstr(w, "kind"), "concurrency");
    json_decref(w);
    assert_int_equal(calls(&e->h, "l-3", "a"), 0);
    /* A held run can be terminated; it frees no slot it did not have. */
    int ended = 0;
    th_ok(ls_flow_terminate(e->f, "l-3", 3, NULL, "no", WAIT_MS, &ended, &err), &err);
    assert_true(ended);
    signal_ok(e, "l-2", "go", NULL);
    signal_ok(e, "m-1", "go", NULL);
    wait_end(e, "l-2");
    wait_end(e, "m-1");
    assert_int_equal(calls(&e->h, "l-3", "a"), 0);
    assert_int_equal(calls(&e->h, "l-2", "a"), 1);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

static void test_engine_custom_status(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    start1(e, "status", "st-1", NULL);
    json_decref(wait_waiting(e, "st-1"));
    json_t *d = describe(e, "st-1");
    assert_json(json_object_get(d, "custom_status"), "{\"stage\":\"one\"}");
    json_decref(d);
    signal_ok(e, "st-1", "go", NULL);
    for (int i = 0; i < WAIT_MS / 2; i++) {
        d = describe(e, "st-1");
        json_t *cs = json_object_get(d, "custom_status");
        int two = cs && strcmp(jstr(cs, "stage"), "two") == 0;
        json_decref(d);
        if (two) break;
        th_nap_ms(2);
    }
    signal_ok(e, "st-1", "go", NULL);
    wait_end(e, "st-1");
    d = describe(e, "st-1");
    assert_json(json_object_get(d, "custom_status"), "{\"stage\":\"two\"}");
    json_decref(d);
    eng_close(e);
}

/* ---- child workflows ---- */

static void test_engine_child_workflows(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "parent", "p-1", NULL);
    wait_end(e, "p-1");
    json_t *r = results_of(e, "p-1");
    /* [a, "child", the child's output] */
    assert_int_equal(json_array_size(r), 3);
    json_t *child_out = json_array_get(r, 2);
    assert_json(json_object_get(child_out, "input"), "{\"from\":1}");
    assert_int_equal(json_array_size(json_object_get(child_out, "results")), 3);
    json_decref(r);
    json_t *ev = history(e, "p-1");
    json_t *cs = nth_event(ev, "child_started", NULL, 0);
    assert_string_equal(jstr(cs, "workflow"), "three");
    char child[128];
    snprintf(child, sizeof child, "%s", jstr(cs, "name"));
    assert_int_equal(count_events(ev, "child_completed", child), 1);
    json_decref(ev);
    json_t *d = describe(e, child);
    assert_string_equal(jstr(d, "status"), "completed");
    assert_string_equal(jstr(d, "parent"), "p-1");
    json_decref(d);

    /* A child's failure is the parent's error. */
    start1(e, "parent_fatal", "p-2", NULL);
    wait_end(e, "p-2");
    d = describe(e, "p-2");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "child workflow"));
    assert_non_null(strstr(jstr(d, "error"), "failed: step \"charge\" failed"));
    json_decref(d);

    /* A parent that ends cancels its unfinished children, unless detached. */
    start1(e, "parent_leaves", "p-3", NULL);
    wait_end(e, "p-3");
    ev = history(e, "p-3");
    snprintf(child, sizeof child, "%s", jstr(nth_event(ev, "child_started", NULL, 0), "name"));
    json_decref(ev);
    wait_end(e, child);
    d = describe(e, child);
    assert_string_equal(jstr(d, "status"), "cancelled");
    assert_string_equal(jstr(d, "by"), "p-3");
    json_decref(d);
    start1(e, "parent_detached", "p-4", NULL);
    wait_end(e, "p-4");
    ev = history(e, "p-4");
    json_t *started = nth_event(ev, "child_started", NULL, 0);
    assert_true(json_is_true(json_object_get(started, "detached")));
    snprintf(child, sizeof child, "%s", jstr(started, "name"));
    json_decref(ev);
    json_decref(wait_waiting(e, child)); /* still running, asleep */
    int ended = 0;
    th_ok(ls_flow_terminate(e->f, child, strlen(child), NULL, NULL, WAIT_MS, &ended, &err), &err);
    assert_true(ended);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

/* The parent waits for a sleeping child across a restart. */
static void test_engine_child_wait_survives_restart(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "parent_nap", "pn-1", NULL);
    json_t *w = wait_waiting(e, "pn-1");
    assert_string_equal(jstr(w, "kind"), "child");
    json_decref(w);
    eng_close(e);

    th_store_close(&e->d.st, &e->d.v);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    eng_open(e, 0);
    th_ok(ls_flow_run(e->f, &err), &err);
    th_clock_advance(&e->fc, 200);
    wait_end(e, "pn-1");
    json_t *r = results_of(e, "pn-1");
    assert_int_equal(json_array_size(r), 4); /* "child", a, "child", its output */
    json_decref(r);
    assert_int_equal(calls(&e->h, "pn-1", "a"), 1);
    json_t *ev = history(e, "pn-1");
    assert_int_equal(count_events(ev, "child_started", NULL), 1);
    assert_int_equal(count_events(ev, "child_completed", NULL), 1);
    json_decref(ev);
    assert_int_equal(atomic_load(&e->h.bugs), 0);
    eng_close(e);
}

/* ---- names and depths: limits on what a run's code asks for ---- */

/* The name of the first child run started by run (history). */
static void first_child(env *e, const char *run, char out[128])
{
    json_t *ev = history(e, run);
    assert_int_equal(count_events(ev, "child_started", NULL), 1);
    snprintf(out, 128, "%s", jstr(nth_event(ev, "child_started", NULL, 0), "name"));
    json_decref(ev);
}

/* A parent whose first event is damaged (a version byte no build
 * writes): its child still ends once, completed. Sealing the parent's
 * notice reads that event (the start byte); it counts as damaged, as a
 * missing one does, and the child's end is not undone by it (before, the
 * child's history got a completion and two failures, and it stayed
 * running for good). */
static void test_engine_child_ends_when_parent_start_damaged(void **state)
{
    env *e = *state;
    ls_err err = {0};
    freeze(e);
    eng_open(e, 1);
    start1(e, "parent_nap", "pd-1", NULL);
    json_decref(wait_waiting(e, "pd-1"));
    char child[128];
    first_child(e, "pd-1", child);
    ls_id id;
    th_ok(flow_lookup(e->f, "pd-1", 4, &id, &err), &err);
    wait_idle(e);
    eng_close(e);
    ls_buf key = LS_BUF_INIT, val = LS_BUF_INIT;
    th_ok(ls_history_key(&key, &id, 1, &err), &err);
    th_ok(ls_store_get(e->d.st, key.ptr, key.len, &val, &err), &err);
    val.ptr[0] = 9; /* the version byte */
    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    ls_buf_free(&key);
    ls_buf_free(&val);
    eng_open(e, 1);
    th_clock_advance(&e->fc, 200);
    wait_end(e, child);
    char buf[32];
    assert_string_equal(status_of(e, child, buf), "completed");
    json_t *ev = history(e, child);
    assert_int_equal(count_events(ev, "workflow_completed", NULL), 1);
    assert_int_equal(count_events(ev, "workflow_failed", NULL), 0);
    json_decref(ev);
    eng_close(e);
}

static void assert_failed_with(env *e, const char *run, const char *error)
{
    json_t *d = describe(e, run);
    assert_string_equal(jstr(d, "status"), "failed");
    assert_string_equal(jstr(d, "error"), error);
    json_decref(d);
}

/* How many runs of type the engine lists. */
static size_t runs_of(env *e, const char *type)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, NULL, type, 1000, NULL, &out, &err), &err);
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    size_t n = json_array_size(json_object_get(j, "runs"));
    json_decref(j);
    return n;
}

/* A list shows of a completed run what its record holds, and reads none
 * of its events: one whose first event is gone (a damaged run) does not
 * make the whole list fail, as it did when the list read every ended
 * run's first event for its version. A failed run whose last event does
 * not open is listed, saying so ("unreadable"), not the list's end. */
static void test_engine_list_reads_no_event_of_a_completed_run(void **state)
{
    env *e = *state;
    ls_err err = {0};
    eng_open(e, 1);
    start1(e, "three", "lc-1", NULL);
    start1(e, "three", "lc-2", NULL);
    wait_end(e, "lc-1");
    wait_end(e, "lc-2");
    ls_id id;
    th_ok(flow_lookup(e->f, "lc-1", 4, &id, &err), &err);
    ls_buf key = LS_BUF_INIT;
    th_ok(ls_history_key(&key, &id, 1, &err), &err);
    th_ok(ls_store_delete(e->d.st, key.ptr, key.len, LS_STORE_SYNC, &err), &err);
    assert_int_equal(runs_of(e, "three"), 2);
    /* a failed run's last event damaged: listed, saying so */
    start1(e, "fatal", "lc-3", NULL);
    wait_end(e, "lc-3");
    th_ok(flow_lookup(e->f, "lc-3", 4, &id, &err), &err);
    ls_buf val = LS_BUF_INIT;
    uint64_t last = 0;
    for (uint64_t seq = 1;; seq++) { /* the last event */
        th_ok(ls_history_key(&key, &id, seq, &err), &err);
        if (ls_store_get(e->d.st, key.ptr, key.len, &val, &err) != LS_OK) break;
        last = seq;
    }
    th_ok(ls_history_key(&key, &id, last, &err), &err);
    th_ok(ls_store_get(e->d.st, key.ptr, key.len, &val, &err), &err);
    val.ptr[val.len - 1] ^= 1; /* the error's last byte: the seal no longer opens */
    put_raw(e, key.ptr, key.len, val.ptr, val.len);
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_flow_list(e->f, NULL, "fatal", 1000, NULL, &out, &err), &err);
    json_t *j = parse_buf(&out);
    json_t *r = json_array_get(json_object_get(j, "runs"), 0);
    assert_non_null(r);
    assert_string_equal(jstr(r, "id"), "lc-3");
    assert_non_null(strstr(jstr(r, "unreadable"), "does not authenticate"));
    json_decref(j);
    ls_buf_free(&out);
    ls_buf_free(&key);
    ls_buf_free(&val);
    eng_close(e);
}

/* Step and signal names are at most 200 bytes of UTF-8 text without
 * control characters: a step or a wait that would record another is
 * refused, naming the call and what is wrong, before anything is
 * recorded. (Any name was recorded: a step name of megabytes went into
 * each of its events, twice per attempt, and into the run object.) */
static void test_engine_new_names_are_checked(void **state)
{
    env *e = *state;
    eng_open(e, 1);
    static const struct {
        const char *type, *error;
    } refused[] = {
        {"name201", "ctx:step: step name: must be 1 to 200 bytes, got 201"},
        {"name_utf8", "ctx:step: step name: byte 2 (0xff) is not valid UTF-8"},
        {"name_ctl", "ctx:step: step name: control character at byte 2"},
        {"name_del", "ctx:step: step name: control character at byte 2"},
        {"name_c1", "ctx:step: step name: control character at byte 2"},
        {"sig_del", "ctx:wait_signal: signal name: control character at byte 2"},
        {"sig_slash", "ctx:wait_signal: signal name: \"/\" at byte 2: a name is one segment of "
                      "the API's path (/v1/workflows/ID/signals/NAME)"},
        {"sig_dots", "ctx:wait_signal: signal name: \"..\" is not a name: HTTP clients remove "
                     "such segments from the API's path"},
        {"sig_utf8", "ctx:wait_signal: signal name: byte 2 (0xc0) is not valid UTF-8"},
        {"sig_ctl", "ctx:wait_signal: signal name: control character at byte 2"},
        {"sig_long", "ctx:wait_signal: signal name: must be 1 to 200 bytes, got 201"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        start1(e, refused[i].type, refused[i].type, NULL);
    start1(e, "name200", "name200", NULL);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        wait_end(e, refused[i].type);
        assert_failed_with(e, refused[i].type, refused[i].error);
    }
    wait_end(e, "name200");
    json_t *ev = history(e, "name200");
    assert_int_equal(count_events(ev, "step_completed", NAME200), 1);
    json_decref(ev);
    /* The steps before the refused one ran; the refused one left no event. */
    ev = history(e, "name201");
    assert_int_equal(count_events(ev, "step_started", NULL), 1);
    assert_int_equal(count_events(ev, "step_completed", "a"), 1);
    json_decref(ev);
    ev = history(e, "name_utf8");
    assert_int_equal(count_events(ev, "step_completed", "caf\xc3\xa9 \xe2\x82\xac"), 1);
    assert_int_equal(count_events(ev, "step_started", NULL), 1);
    json_decref(ev);
    ev = history(e, "sig_ctl");
    assert_int_equal(count_events(ev, "timer_started", NULL), 0);
    json_decref(ev);
    assert_int_equal(calls(&e->h, "name201", "a"), 1);
    eng_close(e);
}

/* The largest allocation seen since the allocator below was installed. */
static atomic_size_t largest_alloc;

static void *sizing_alloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    size_t seen = atomic_load(&largest_alloc);
    while (size > seen && !atomic_compare_exchange_weak(&largest_alloc, &seen, size)) {}
    return realloc(ptr, size);
}

/* A step name over the limit in a ctx:all branch is refused before a copy
 * of it is made (the branch's scoped name: it copied 10 MB to refuse a
 * name of 10 MB), and a name is checked only where a step is about to be
 * recorded: one that differs from history is non-determinism. */
static void test_engine_names_checked_where_recorded(void **state)
{
    env *e = *state;
    size_t n = 10u << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    e->h.big = big;
    atomic_store(&largest_alloc, 0);
    ls_set_allocator(sizing_alloc, NULL);
    eng_open(e, 1);
    start1(e, "fan_big", "fb-1", NULL);
    wait_end(e, "fb-1");
    char st[32];
    assert_string_equal(status_of(e, "fb-1", st), "failed");
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_list(e->f, "failed", "fan_big", 10, NULL, &out, &err), &err);
    eng_close(e);
    ls_set_allocator(NULL, NULL);
    e->h.big = NULL;
    free(big);
    assert_true(atomic_load(&largest_alloc) < (1u << 20));
    json_t *j = parse_buf(&out);
    ls_buf_free(&out);
    size_t i, refused = 0;
    json_t *r;
    json_array_foreach(json_object_get(j, "runs"), i, r)
    {
        if (strcmp(jstr(r, "error"), "ctx:step: step name: must be 1 to 200 bytes, got 10485760") ==
            0)
            refused++;
    }
    assert_int_equal(refused, 1); /* branch 2's run */
    json_decref(j);

    /* A name that differs from the one history holds: non-determinism,
     * which fails the run for good. */
    freeze(e);
    e->h.scripts = scripts_recorded;
    eng_open(e, 1);
    start1(e, "legacy", "lg-3", NULL);
    json_decref(wait_waiting(e, "lg-3"));
    eng_close(e);
    e->h.scripts = scripts_renamed;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "lg-3");
    assert_failed_with(e, "lg-3",
                       "run lg-3: non-determinism at command 1: history has step \"a\", the "
                       "workflow asked for step \"a\\xff\"");
    eng_close(e);
}

/* Rewrites, in the store, the name of every event of run id that is
 * named from to to: a history as an engine without the name checks wrote
 * it (the engine is closed), so the whole run as version 1 events, whose
 * payloads are not bound to their names. */
static void rename_events(env *e, const ls_id *id, const char *from, const char *to)
{
    ls_err err = {0};
    ls_buf prefix = LS_BUF_INIT, v = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_store_iter_t *it = NULL;
    const void *key, *val;
    size_t klen, vlen, renamed = 0;
    ls_store_batch_t *b = NULL;
    th_events_as_v1(e->d.st, e->d.v, 0, id);
    th_ok(ls_history_prefix(&prefix, id, &err), &err);
    th_ok(ls_store_batch_new(&b, &err), &err);
    th_ok(ls_store_iter_prefix(&it, e->d.st, prefix.ptr, prefix.len, 0, &err), &err);
    ls_rc rc;
    while ((rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, &err)) == LS_OK) {
        ls_event ev;
        th_ok(ls_event_decode(val, vlen, &ev, &err), &err);
        if (ev.name_len != strlen(from) || memcmp(ev.name, from, ev.name_len) != 0) continue;
        th_event_as_v1(e->d.v, id, NULL, 1, &ev, &sealed); /* the run is of version 1 now */
        ev.name = to;
        ev.name_len = strlen(to);
        th_ok(ls_event_encode(&ev, &v, &err), &err);
        ls_store_batch_put(b, key, klen, v.ptr, v.len);
        renamed++;
    }
    assert_int_equal(rc, LS_ENOTFOUND);
    ls_store_iter_free(it);
    assert_true(renamed > 0);
    th_ok(ls_store_write(e->d.st, b, LS_STORE_SYNC, &err), &err);
    ls_store_batch_free(b);
    ls_buf_free(&prefix);
    ls_buf_free(&v);
    ls_buf_free(&sealed);
}

/* A history recorded before names had limits (a step named with 300
 * bytes, a wait with a timeout on a signal name that is not UTF-8) still
 * replays: the checks apply where a name is first recorded. A new step
 * with such a name in the same run is refused. */
static void test_engine_names_recorded_before_replay(void **state)
{
    env *e = *state;
    freeze(e);
    e->h.scripts = scripts_recorded;
    eng_open(e, 1);
    start1(e, "legacy", "lg-1", NULL);
    start1(e, "legacy2", "lg-2", NULL);
    json_decref(wait_waiting(e, "lg-1"));
    json_decref(wait_waiting(e, "lg-2"));
    ls_id ids[2];
    ls_err err = {0};
    th_ok(flow_lookup(e->f, "lg-1", 4, &ids[0], &err), &err);
    th_ok(flow_lookup(e->f, "lg-2", 4, &ids[1], &err), &err);
    eng_close(e);
    for (int i = 0; i < 2; i++) {
        rename_events(e, &ids[i], "a", NAME300);
        rename_events(e, &ids[i], "signal:go", "signal:g\xffo");
    }

    e->h.scripts = scripts_upgraded;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "lg-1");
    wait_end(e, "lg-2");
    json_t *r = results_of(e, "lg-1");
    /* [the recorded result of the step now named NAME300, the wait's
     * timeout, b] */
    assert_int_equal(json_array_size(r), 3);
    assert_string_equal(jstr(json_array_get(r, 0), "step"), "a"); /* replayed, not run again */
    assert_string_equal(json_string_value(json_array_get(r, 1)), "timeout");
    assert_string_equal(jstr(json_array_get(r, 2), "step"), "b");
    json_decref(r);
    assert_failed_with(e, "lg-2", "ctx:step: step name: must be 1 to 200 bytes, got 300");
    json_t *ev = history(e, "lg-2");
    assert_int_equal(count_events(ev, "step_started", NAME300), 1); /* the recorded one */
    assert_int_equal(count_events(ev, "step_completed", "b"), 1);
    json_decref(ev);
    eng_close(e);
}

/* A wait without a timeout on a name refused now, whose signal history
 * holds (sent before the API checked names), replays and takes it; a new
 * such wait, with no signal to take, is refused. */
static void test_engine_signal_recorded_before_replays(void **state)
{
    env *e = *state;
    freeze(e);
    e->h.scripts = scripts_recorded;
    eng_open(e, 1);
    start1(e, "legacy3", "lg-3", NULL);
    start1(e, "legacy4", "lg-4", NULL);
    json_decref(wait_waiting(e, "lg-3"));
    json_decref(wait_waiting(e, "lg-4"));
    signal_ok(e, "lg-3", "go", "7");
    signal_ok(e, "lg-4", "go", "8");
    ls_id ids[2];
    ls_err err = {0};
    th_ok(flow_lookup(e->f, "lg-3", 4, &ids[0], &err), &err);
    th_ok(flow_lookup(e->f, "lg-4", 4, &ids[1], &err), &err);
    for (int i = 0; i < 2; i++) {
        json_t *w = wait_waiting(e, i ? "lg-4" : "lg-3");
        assert_string_equal(jstr(w, "kind"), "sleep");
        json_decref(w);
    }
    eng_close(e);
    rename_events(e, &ids[0], "go", "g\xffo");
    rename_events(e, &ids[1], "go", "g\xffo");

    e->h.scripts = scripts_upgraded;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "lg-3");
    wait_end(e, "lg-4");
    json_t *r = results_of(e, "lg-3");
    assert_int_equal(json_array_size(r), 1);
    assert_int_equal(json_integer_value(json_array_get(r, 0)), 7);
    json_decref(r);
    assert_failed_with(e, "lg-4", "ctx:wait_signal: signal name: byte 2 (0xff) is not valid UTF-8");
    eng_close(e);
}

/* A workflow that starts itself without end stops at --max-depth: the run
 * at the limit fails when it starts a child (or a ctx:all branch run),
 * naming the limit, and each run above it fails as a child's failure
 * fails its parent. (It started runs without end, thousands a second,
 * and a terminate of the first run did not catch up with the newest.) */
static void test_engine_child_depth_limit(void **state)
{
    env *e = *state;
    e->max_depth = 3;
    eng_open(e, 1);
    start1(e, "deep", "d-1", NULL);
    wait_end(e, "d-1");
    char run[128] = "d-1", child[128];
    for (int depth = 0; depth < 3; depth++) {
        first_child(e, run, child);
        wait_end(e, child);
        json_t *d = describe(e, run);
        assert_string_equal(jstr(d, "status"), "failed");
        assert_non_null(strstr(jstr(d, "error"), "child workflow"));
        json_decref(d);
        snprintf(run, sizeof run, "%s", child);
    }
    /* run is at depth 3 */
    json_t *ev = history(e, run);
    assert_int_equal(count_events(ev, "child_started", NULL), 0);
    json_decref(ev);
    char want[512];
    snprintf(want, sizeof want,
             "run %s cannot start child workflow \"deep\": it is nested 3 deep, the limit of "
             "nested runs (lodestoned --max-depth); does a workflow start itself without end?",
             run);
    assert_failed_with(e, run, want);
    assert_int_equal(runs_of(e, "deep"), 4);
    eng_close(e);

    /* A branch run is a level too. */
    e->max_depth = 1;
    eng_open(e, 1);
    start1(e, "deep_fan", "df-1", NULL);
    wait_end(e, "df-1");
    first_child(e, "df-1", child);
    snprintf(want, sizeof want,
             "run %s cannot start a ctx:all branch run: it is nested 1 deep, the limit of nested "
             "runs (lodestoned --max-depth); does a workflow start itself without end?",
             child);
    assert_failed_with(e, child, want);
    ev = history(e, child);
    assert_int_equal(count_events(ev, "child_started", NULL), 0);
    assert_int_equal(calls(&e->h, child, "a"), 1); /* its code ran up to the section */
    json_decref(ev);
    eng_close(e);
}

/* Waits until a run of type exists and waits (on a timer), and puts its
 * name into out. */
static void sleeping_run_of(env *e, const char *type, char out[128])
{
    for (int i = 0; i < WAIT_MS / 2; i++) {
        ls_buf b = LS_BUF_INIT;
        ls_err err = {0};
        th_ok(ls_flow_list(e->f, NULL, type, 10, NULL, &b, &err), &err);
        json_t *j = parse_buf(&b);
        ls_buf_free(&b);
        json_t *r = json_array_get(json_object_get(j, "runs"), 0);
        if (r) {
            snprintf(out, 128, "%s", jstr(r, "id"));
            json_decref(j);
            json_decref(wait_waiting(e, out));
            return;
        }
        json_decref(j);
        th_nap_ms(2);
    }
    fail_msg("no run of type %s", type);
}

/* Chains recorded under a higher --max-depth go on under a lower one: a
 * child start that history holds replays at any depth, and only a new
 * child of a run at or past the limit is refused (its depth read from the
 * parent links the store holds, the engine having restarted). */
static void test_engine_depth_recorded_before_replays(void **state)
{
    env *e = *state;
    freeze(e);
    e->h.scripts = scripts_recorded;
    e->max_depth = 10;
    eng_open(e, 1);
    start1(e, "c0", "c-0", NULL);
    start1(e, "k0", "k-0", NULL);
    char c2[128], c3[128], k3[128];
    sleeping_run_of(e, "c3", c3);
    sleeping_run_of(e, "k3", k3);
    eng_close(e);

    e->h.scripts = scripts_upgraded;
    e->max_depth = 2;
    eng_open(e, 1);
    th_clock_advance(&e->fc, 300);
    wait_end(e, "c-0");
    wait_end(e, "k-0");
    char st[32];
    assert_string_equal(status_of(e, "c-0", st), "completed");
    assert_string_equal(status_of(e, c3, st), "completed");
    first_child(e, "c-0", c2); /* c1 */
    first_child(e, c2, c2);    /* c2, at depth 2: its recorded child start replayed */
    assert_string_equal(status_of(e, c2, st), "completed");
    char want[512];
    snprintf(want, sizeof want,
             "run %s cannot start child workflow \"three\": it is nested over 2 deep, the limit "
             "of nested runs (lodestoned --max-depth); does a workflow start itself without end?",
             k3);
    assert_failed_with(e, k3, want);
    assert_string_equal(status_of(e, "k-0", st), "failed");
    assert_int_equal(runs_of(e, "three"), 0);
    eng_close(e);
}

/* The chain dr0 > dr1 > dr2 started, dr0 and dr1 ended, dr2 waiting for
 * "go": its runs' names and ids. */
typedef struct {
    char name[3][128];
    ls_id id[3];
} chain;

static void start_chain(env *e, chain *c)
{
    ls_err err = {0};
    start1(e, "dr0", "dr-0", NULL);
    snprintf(c->name[0], sizeof c->name[0], "dr-0");
    wait_end(e, "dr-0");
    first_child(e, "dr-0", c->name[1]);
    wait_end(e, c->name[1]);
    first_child(e, c->name[1], c->name[2]);
    json_t *w = wait_waiting(e, c->name[2]);
    assert_string_equal(jstr(w, "kind"), "signal");
    json_decref(w);
    for (int i = 0; i < 3; i++)
        th_ok(flow_lookup(e->f, c->name[i], strlen(c->name[i]), &c->id[i], &err), &err);
}

/* Deletes the runs that ended, as retention does once they are old. */
static void retention_pass(env *e, uint64_t want)
{
    flow_retention_result r;
    ls_err err = {0};
    th_clock_advance(&e->fc, e->retention_ms + 1000);
    th_ok(flow_retention_pass(e->f, &r, &err), &err);
    assert_int_equal(r.deleted, want);
}

/* Rewrites run id's parent link as an older lodestoned wrote it: the
 * parent's id, a flags byte (1: detached), the parent's name, and no depth
 * (flag 2 and the 4 bytes after the flags). The engine is closed. Returns
 * 0 when the link had no depth to take out. */
static int link_without_depth(env *e, const ls_id *id)
{
    ls_buf k = LS_BUF_INIT, v = LS_BUF_INIT, nv = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(flow_key_parent(&k, id, &err), &err);
    th_ok(ls_store_get(e->d.st, k.ptr, k.len, &v, &err), &err);
    assert_true(v.len > LS_ID_BYTES + 1);
    unsigned char flags = v.ptr[LS_ID_BYTES];
    if (!(flags & 2)) {
        ls_buf_free(&k);
        ls_buf_free(&v);
        return 0;
    }
    assert_true(v.len > LS_ID_BYTES + 5);
    th_ok(ls_buf_set(&nv, v.ptr, LS_ID_BYTES, &err), &err);
    th_ok(ls_buf_putc(&nv, flags & 1, &err), &err);
    th_ok(ls_buf_append(&nv, v.ptr + LS_ID_BYTES + 5, v.len - LS_ID_BYTES - 5, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, nv.ptr, nv.len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k);
    ls_buf_free(&v);
    ls_buf_free(&nv);
    return 1;
}

/* Puts value raw (n bytes) as run id's parent link. */
static void put_link(env *e, const ls_id *id, const void *raw, size_t n)
{
    ls_buf k = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(flow_key_parent(&k, id, &err), &err);
    th_ok(ls_store_put(e->d.st, k.ptr, k.len, raw, n, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k);
}

/* Restarts the engine, lets dr2 go on, and returns the first run of the
 * chain that failed (its name into out), checking that the chain stopped
 * there: it names the limit, and no run below it exists. */
static void resume_chain(env *e, const chain *c, char out[128])
{
    ls_err err = {0};
    eng_open(e, 1);
    signal_ok(e, c->name[2], "go", "1");
    char run[128];
    snprintf(run, sizeof run, "%s", c->name[2]);
    static const char *const types[] = {"dr3", "dr4", "dr5"};
    for (int i = 0;; i++) {
        char st[32];
        wait_end(e, run);
        if (strcmp(status_of(e, run, st), "failed") == 0) break;
        assert_true(i < 3);
        assert_int_equal(runs_of(e, types[i]), 1);
        first_child(e, run, run);
    }
    (void)err;
    snprintf(out, 128, "%s", run);
}

/* A run's depth is in its own parent link: a run recovered after
 * retention deleted the runs above it knows how deep it is. (Its depth
 * was read from its ancestors' links, and a deleted one counted as the
 * first run: a chain of detached children past a restart went deeper
 * than --max-depth.) */
static void test_engine_depth_survives_retention(void **state)
{
    env *e = *state;
    freeze(e);
    e->max_depth = 3;
    e->retention_ms = 1000;
    eng_open(e, 1);
    chain c;
    start_chain(e, &c);
    retention_pass(e, 2); /* dr-0 and dr1's run */
    eng_close(e);
    char last[128], want[512];
    resume_chain(e, &c, last);
    /* dr3's run, at depth 3, cannot start dr4 */
    snprintf(want, sizeof want,
             "run %s cannot start child workflow \"dr4\": it is nested 3 deep, the limit of "
             "nested runs (lodestoned --max-depth); does a workflow start itself without end?",
             last);
    assert_failed_with(e, last, want);
    assert_int_equal(runs_of(e, "dr3"), 1);
    assert_int_equal(runs_of(e, "dr4"), 0);
    eng_close(e);
}

/* Parent links written before they held depths are read: the depth of a
 * run recovered with one comes from its ancestors' links, up to a run no
 * run started. */
static void test_engine_depth_from_old_links(void **state)
{
    env *e = *state;
    freeze(e);
    e->max_depth = 3;
    eng_open(e, 1);
    chain c;
    start_chain(e, &c);
    eng_close(e);
    assert_true(link_without_depth(e, &c.id[1]));
    assert_true(link_without_depth(e, &c.id[2]));
    char last[128];
    resume_chain(e, &c, last);
    assert_int_equal(runs_of(e, "dr4"), 0);
    json_t *d = describe(e, c.name[2]); /* the link still names its parent */
    assert_string_equal(jstr(d, "parent"), c.name[1]);
    assert_true(json_is_true(json_object_get(d, "detached")));
    json_decref(d);
    eng_close(e);
}

/* An old link whose ancestor is gone (deleted by retention) or corrupt
 * ends the walk up the links: the run is taken to be as deep as the runs
 * counted up to there, said in the log, and goes on. (A corrupt link
 * failed the run for good, saying only "parent link of 3 bytes".) */
static void test_engine_depth_past_missing_ancestors(void **state)
{
    env *e = *state;
    freeze(e);
    e->max_depth = 3;
    e->retention_ms = 1000;
    eng_open(e, 1);
    chain c;
    start_chain(e, &c);
    retention_pass(e, 2);
    eng_close(e);
    link_without_depth(e, &c.id[2]);
    char last[128], want[512];
    resume_chain(e, &c, last);
    /* dr1's run is gone: dr2's run is taken to be 1 deep, so dr4's is at 3 */
    assert_int_equal(runs_of(e, "dr4"), 1);
    assert_int_equal(runs_of(e, "dr5"), 0);
    snprintf(want, sizeof want,
             "warn [%s] run %s, 1 above this run, is deleted: the runs above it are not known, "
             "and this run is taken to be nested 1 deep (lodestoned --max-depth)",
             c.name[2], c.name[1]);
    assert_true(log_has(&e->h, want));
    eng_close(e);

    /* A corrupt link above: the same, logged as an error. */
    th_store_close(&e->d.st, &e->d.v);
    th_rmtree(e->d.store_path);
    th_store_open(e->d.store_path, e->d.key_path, &e->d.st, &e->d.v);
    e->retention_ms = 0;
    eng_open(e, 1);
    start_chain(e, &c);
    eng_close(e);
    link_without_depth(e, &c.id[2]);
    put_link(e, &c.id[1], "abc", 3);
    resume_chain(e, &c, last);
    assert_int_equal(runs_of(e, "dr4"), 1);
    char st[32];
    assert_string_equal(status_of(e, c.name[2], st), "completed");
    snprintf(want, sizeof want,
             "error [%s] the parent link of run %s, 1 above this run, is corrupt (parent link "
             "of 3 bytes): the runs above it are not known, and this run is taken to be nested "
             "1 deep (lodestoned --max-depth)",
             c.name[2], c.name[1]);
    assert_true(log_has(&e->h, want));
    eng_close(e);
}

typedef struct {
    env *e;
    ls_id id, parent;
    char name[128];
    unsigned depth;
} depth_ctx;

static ls_rc depth_under_failure(void *ud)
{
    depth_ctx *c = ud;
    flow_run *r = flow_run_new(&c->id, c->name, strlen(c->name), "dr2", 3);
    if (r == NULL) return LS_ENOMEM;
    r->has_parent = 1;
    r->parent = c->parent;
    ls_err err = {0};
    ls_rc rc = flow_run_depth(c->e->f, r, 3, &c->depth, &err);
    if (rc == LS_OK) {
        assert_true(r->depth_known);
    } else {
        /* nothing kept; the message names the run and what was read */
        assert_false(r->depth_known);
        char want[300];
        snprintf(want, sizeof want,
                 "run %s: cannot tell how deep it is nested (lodestoned --max-depth): reading "
                 "the ",
                 c->name);
        assert_int_equal(strncmp(ls_err_text(&err), want, strlen(want)), 0);
    }
    flow_run_free(r);
    return rc;
}

/* A read of the links that fails for now (here: out of memory) is an
 * error naming the run and the link, and no depth is kept. max_depth is
 * cut to 1000 (a larger one made a cycle of corrupt links a walk without
 * end, and cap + 1 wrap to 0). */
static void test_engine_depth_read_errors(void **state)
{
    env *e = *state;
    freeze(e);
    eng_open(e, 1);
    chain c;
    start_chain(e, &c);
    eng_close(e);
    link_without_depth(e, &c.id[1]);
    link_without_depth(e, &c.id[2]);
    e->max_depth = UINT_MAX;
    eng_open(e, 0);
    assert_int_equal(e->f->o.max_depth, 1000);
    depth_ctx *dc = calloc(1, sizeof *dc);
    assert_non_null(dc);
    dc->e = e;
    dc->id = c.id[2];
    dc->parent = c.id[1];
    snprintf(dc->name, sizeof dc->name, "%s", c.name[2]);
    long points = th_each_alloc_failure(depth_under_failure, dc);
    assert_true(points > 2);
    assert_int_equal(dc->depth, 2);

    /* Links that make a cycle: the walk stops past the limit. */
    ls_id x, y;
    ls_err err = {0};
    unsigned char v[LS_ID_BYTES + 2];
    th_ok(ls_id_new(&x, NULL, &err), &err);
    th_ok(ls_id_new(&y, NULL, &err), &err);
    memcpy(v, y.b, LS_ID_BYTES); /* an old link: id, flags, name */
    v[LS_ID_BYTES] = 0;
    v[LS_ID_BYTES + 1] = 'y';
    put_link(e, &x, v, sizeof v);
    memcpy(v, x.b, LS_ID_BYTES);
    v[LS_ID_BYTES + 1] = 'x';
    put_link(e, &y, v, sizeof v);
    flow_run *r = flow_run_new(&x, "x", 1, "dr2", 3);
    assert_non_null(r);
    r->has_parent = 1;
    r->parent = y;
    unsigned depth = 0;
    th_ok(flow_run_depth(e->f, r, e->f->o.max_depth, &depth, &err), &err);
    assert_int_equal(depth, 1001);
    flow_run_free(r);
    free(dc);
    eng_close(e);
}

/* ---- secrets masked in texts kept in clear ---- */

#define TOKEN "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

static void put_secret(env *e, const char *name, const char *value)
{
    ls_err err = {0};
    th_ok(ls_vault_secret_put(e->d.v, e->d.st, name, value, strlen(value), &err), &err);
}

/* The run's history as the API gives it, and its run object: neither
 * holds needle anywhere. */
static void assert_run_lacks(env *e, const char *name, const char *needle)
{
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_flow_history(e->f, name, strlen(name), &out, &err), &err);
    if (memmem(out.ptr, out.len, needle, strlen(needle)))
        fail_msg("the history of %s holds \"%s\": %s", name, needle, (const char *)out.ptr);
    ls_buf_clear(&out);
    th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
    if (memmem(out.ptr, out.len, needle, strlen(needle)))
        fail_msg("run %s shows \"%s\": %s", name, needle, (const char *)out.ptr);
    ls_buf_free(&out);
}

static void assert_log_lacks(env *e, const char *needle)
{
    if (log_has(&e->h, needle)) fail_msg("the log holds \"%s\": %s", needle, e->h.log);
}

/* A step fails with a secret's value in its error: every attempt's error
 * in history, the run's error, the result and the log lines that quote
 * them name the secret instead. */
static void test_engine_mask_step_failure(void **state)
{
    env *e = *state;
    static const char msg[] = "charge refused: Authorization: Bearer " TOKEN " (HTTP 401)";
    static const char want[] =
        "charge refused: Authorization: Bearer [secret stripe/key] (HTTP 401)";
    put_secret(e, "stripe/key", TOKEN);
    e->h.failmsg = msg;
    e->h.failmsg_len = sizeof msg - 1;
    eng_open(e, 1);
    start1(e, "leaky_step", "mk-1", NULL);
    wait_end(e, "mk-1");
    json_t *ev = history(e, "mk-1");
    assert_int_equal(count_events(ev, "step_failed", "charge"), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(jstr(nth_event(ev, "step_failed", "charge", i), "error"), want);
    char final[256];
    snprintf(final, sizeof final, "step \"charge\" failed on attempt 3: %s", want);
    assert_string_equal(jstr(nth_event(ev, "workflow_failed", NULL, 0), "error"), final);
    json_decref(ev);
    json_t *d = describe(e, "mk-1");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_string_equal(jstr(d, "error"), final);
    json_decref(d);
    assert_run_lacks(e, "mk-1", "sk_live");
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    int done = 0;
    th_ok(ls_flow_result(e->f, "mk-1", 4, &out, &done, &err), &err);
    assert_int_equal(done, 1);
    assert_null(strstr((const char *)out.ptr, "sk_live"));
    assert_non_null(strstr((const char *)out.ptr, "[secret stripe/key]"));
    ls_buf_free(&out);
    /* lodestoned's lines that quote the errors */
    wait_log(e, "info [mk-1] step \"charge\" attempt 1 failed (charge refused: Authorization: "
                "Bearer [secret stripe/key] (HTTP 401)); retrying in ");
    wait_log(e, "warn [mk-1] failed: step \"charge\" failed on attempt 3: charge refused: "
                "Authorization: Bearer [secret stripe/key] (HTTP 401)");
    assert_log_lacks(e, "sk_live");
    eng_close(e);
}

/* The run fails with a secret's value in its error and its traceback,
 * and so does its parent, which quotes the child's error. */
static void test_engine_mask_run_failure(void **state)
{
    env *e = *state;
    static const char msg[] =
        "workflow.lua:9: attempt to concatenate a nil value near 'Bearer " TOKEN "'";
    put_secret(e, "stripe/key", TOKEN);
    e->h.failmsg = msg;
    e->h.failmsg_len = sizeof msg - 1;
    e->h.failtrace = "stack traceback:\n\tworkflow.lua:9: in function <token=" TOKEN ">";
    eng_open(e, 1);
    start1(e, "leaky_run", "mk-2", NULL);
    start1(e, "leaky_parent", "mk-3", NULL);
    wait_end(e, "mk-2");
    wait_end(e, "mk-3");
    json_t *ev = history(e, "mk-2");
    json_t *wf = nth_event(ev, "workflow_failed", NULL, 0);
    assert_string_equal(jstr(wf, "error"),
                        "workflow.lua:9: attempt to concatenate a nil value near "
                        "'Bearer [secret stripe/key]'");
    assert_string_equal(
        jstr(wf, "traceback"),
        "stack traceback:\n\tworkflow.lua:9: in function <token=[secret stripe/key]>");
    json_decref(ev);
    assert_run_lacks(e, "mk-2", "sk_live");
    json_t *d = describe(e, "mk-3");
    assert_string_equal(jstr(d, "status"), "failed");
    assert_non_null(strstr(jstr(d, "error"), "near 'Bearer [secret stripe/key]'"));
    json_decref(d);
    assert_run_lacks(e, "mk-3", "sk_live");
    wait_log(e, "warn [mk-2] failed: workflow.lua:9: attempt to concatenate a nil value near "
                "'Bearer [secret stripe/key]'");
    assert_log_lacks(e, "sk_live");
    eng_close(e);
}

/* Runs leaky_parent as run, its child failing with msg, and returns the
 * error its ChildFailed event holds (caller frees). */
static char *child_failed_error(env *e, const char *run, const char *msg)
{
    e->h.failmsg = msg;
    e->h.failmsg_len = strlen(msg);
    start1(e, "leaky_parent", run, NULL);
    wait_end(e, run);
    json_t *ev = history(e, run);
    char *got = strdup(jstr(nth_event(ev, "child_failed", NULL, 0), "error"));
    assert_non_null(got);
    json_decref(ev);
    return got;
}

/* A parent is told 150 bytes of its child's error: cut where a character
 * starts, and never inside a "[secret NAME]" mark, which is left out
 * whole rather than cut to "[secret st". */
static void test_engine_child_error_cut(void **state)
{
    env *e = *state;
    char msg[400], want[200];
    put_secret(e, "stripe/key", TOKEN);
    eng_open(e, 1);
    /* a two-byte character at bytes 149 and 150 */
    memset(msg, 'a', 149);
    snprintf(msg + 149, sizeof msg - 149, "\xc3\xa9 and more");
    snprintf(want, sizeof want, "failed: %.149s", msg);
    char *got = child_failed_error(e, "ce-1", msg);
    assert_string_equal(got, want);
    free(got);
    /* a secret at byte 140: its mark, bytes 140 to 158, would be cut */
    memset(msg, 'b', 140);
    snprintf(msg + 140, sizeof msg - 140, "%s and more", TOKEN);
    snprintf(want, sizeof want, "failed: %.140s", msg);
    got = child_failed_error(e, "ce-2", msg);
    assert_string_equal(got, want);
    free(got);
    /* a mark that ends at byte 149 is kept */
    memset(msg, 'c', 131);
    snprintf(msg + 131, sizeof msg - 131, "%s and more", TOKEN);
    snprintf(want, sizeof want, "failed: %.131s[secret stripe/key]", msg);
    got = child_failed_error(e, "ce-3", msg);
    assert_string_equal(got, want);
    free(got);
    assert_log_lacks(e, "sk_l");
    eng_close(e);
}

/* ctx:log and s:log lines: masked before lodestoned's log gets them. */
static void test_engine_mask_log_line(void **state)
{
    env *e = *state;
    static const char line[] = "calling the API with " TOKEN ", twice: " TOKEN;
    put_secret(e, "stripe/key", TOKEN);
    e->h.logmsg = line;
    e->h.logmsg_len = sizeof line - 1;
    eng_open(e, 1);
    start1(e, "logger", "mk-4", NULL);
    wait_end(e, "mk-4");
    wait_log(e,
             "info [mk-4] calling the API with [secret stripe/key], twice: [secret stripe/key]\n");
    assert_log_lacks(e, "sk_live");
    eng_close(e);
}

/* A secret set, changed or deleted after the engine loaded the values:
 * the next text is masked with the secrets as they are then. */
static void test_engine_mask_follows_secret_changes(void **state)
{
    env *e = *state;
    static const char line[] = "old=value-number-one new=value-number-two";
    e->h.logmsg = line;
    e->h.logmsg_len = sizeof line - 1;
    put_secret(e, "k", "value-number-one");
    eng_open(e, 1);
    start1(e, "logger", "mk-5", NULL);
    wait_end(e, "mk-5");
    wait_log(e, "[mk-5] old=[secret k] new=value-number-two\n");
    put_secret(e, "k", "value-number-two"); /* changed */
    start1(e, "logger", "mk-6", NULL);
    wait_end(e, "mk-6");
    wait_log(e, "[mk-6] old=value-number-one new=[secret k]\n");
    ls_err err = {0};
    th_ok(ls_vault_secret_delete(e->d.st, "k", &err), &err); /* deleted */
    start1(e, "logger", "mk-7", NULL);
    wait_end(e, "mk-7");
    wait_log(e, "[mk-7] old=value-number-one new=value-number-two\n");
    eng_close(e);
}

/* A value under LS_VAULT_MASK_MIN bytes is not masked, one of exactly
 * that many is; where one value holds another, the longer one is masked
 * where it occurs, the shorter one elsewhere. */
static void test_engine_mask_short_and_nested(void **state)
{
    env *e = *state;
    static const char line[] = "region=eu pin=7391 key=AKIAIOSFODNN7 pair=AKIAIOSFODNN7:wJalrXUtnF";
    put_secret(e, "region", "eu");
    put_secret(e, "pin", "7391");
    put_secret(e, "aws/id", "AKIAIOSFODNN7");
    put_secret(e, "aws/pair", "AKIAIOSFODNN7:wJalrXUtnF");
    e->h.logmsg = line;
    e->h.logmsg_len = sizeof line - 1;
    eng_open(e, 1);
    start1(e, "logger", "mk-8", NULL);
    wait_end(e, "mk-8");
    wait_log(e, "[mk-8] region=eu pin=[secret pin] key=[secret aws/id] pair=[secret aws/pair]\n");
    eng_close(e);
}

/* A text cut to the limit is masked first: a value across the cut is
 * left out whole, with no first part of it shown (a cut first and masked
 * after would keep "sk_live_4eC39..." up to the cut). */
static void test_engine_mask_before_cut(void **state)
{
    env *e = *state;
    put_secret(e, "stripe/key", TOKEN);
    /* an error of 9000 bytes whose value starts 10 bytes before where
     * history cuts (FLOW_ERROR_MAX - 40) */
    size_t at = FLOW_ERROR_MAX - 40 - 10, n = 9000;
    char *msg = malloc(n + 1);
    assert_non_null(msg);
    memset(msg, 'e', n);
    memcpy(msg + at, TOKEN, strlen(TOKEN));
    msg[n] = '\0';
    e->h.failmsg = msg;
    e->h.failmsg_len = n;
    /* a log line of 9000 bytes whose value straddles LS_FLOW_LOG_LINEMAX */
    char *line = malloc(n + 1);
    assert_non_null(line);
    memset(line, 'l', n);
    memcpy(line + LS_FLOW_LOG_LINEMAX - 10, TOKEN, strlen(TOKEN));
    line[n] = '\0';
    e->h.logmsg = line;
    e->h.logmsg_len = n;
    eng_open(e, 1);
    /* the log line first, alone: the last line the log gets */
    start1(e, "logger", "mk-10", NULL);
    wait_end(e, "mk-10");
    char want[64];
    snprintf(want, sizeof want, "ll [cut: %zu bytes dropped]", n - (LS_FLOW_LOG_LINEMAX - 10));
    wait_log(e, "[mk-10] llll");
    pthread_mutex_lock(&e->h.mu);
    size_t last_len = e->h.last_log_len;
    char last_tail[sizeof e->h.last_log_tail];
    memcpy(last_tail, e->h.last_log_tail, sizeof last_tail);
    pthread_mutex_unlock(&e->h.mu);
    assert_int_equal(last_len, LS_FLOW_LOG_LINEMAX - 10 + strlen(want) - 2);
    assert_string_equal(last_tail + strlen(last_tail) - strlen(want), want);
    start1(e, "leaky_run", "mk-9", NULL);
    wait_end(e, "mk-9");
    json_t *d = describe(e, "mk-9");
    const char *err = jstr(d, "error");
    char tail[64];
    snprintf(tail, sizeof tail, "e ... (%zu bytes cut)", n - at);
    assert_int_equal(strlen(err), at + strlen(tail) - 1);
    assert_string_equal(err + at - 1, tail);
    json_decref(d);
    assert_run_lacks(e, "mk-9", "sk_l");
    assert_log_lacks(e, "sk_l");
    eng_close(e);
    free(msg);
    free(line);
}

/* lodestoned's retry line quotes 300 bytes of a step's error: a value
 * across that bound is left out whole, as the quote is masked before it
 * is cut (a quote cut first kept "sk_live_4e" up to the bound). */
static void test_engine_mask_before_quote_cut(void **state)
{
    env *e = *state;
    put_secret(e, "stripe/key", TOKEN);
    char msg[400];
    memset(msg, 'q', 295);
    memcpy(msg + 295, TOKEN, strlen(TOKEN));
    msg[295 + strlen(TOKEN)] = '\0';
    e->h.failmsg = msg;
    e->h.failmsg_len = strlen(msg);
    eng_open(e, 1);
    start1(e, "leaky_step", "mk-13", NULL);
    wait_end(e, "mk-13");
    char want[400];
    snprintf(want, sizeof want, "attempt 1 failed (%.295s); retrying in ", msg);
    wait_log(e, want);
    assert_log_lacks(e, "sk_l");
    assert_run_lacks(e, "mk-13", "sk_l");
    eng_close(e);
}

/* A secret that does not open under this keyring is not masked (its value
 * is unknown here): the others are, and the log says once which one was
 * left out, by name. */
static void test_engine_mask_secret_that_does_not_open(void **state)
{
    env *e = *state;
    ls_err err = {0};
    ls_vault_t *v = other_vault(e);
    th_ok(ls_vault_secret_put(v, e->d.st, "foreign", "foreign-value", 13, &err), &err);
    ls_vault_close(v);
    put_secret(e, "stripe/key", TOKEN);
    static const char line[] = "foreign-value " TOKEN;
    e->h.logmsg = line;
    e->h.logmsg_len = sizeof line - 1;
    eng_open(e, 1);
    start1(e, "logger", "mk-11", NULL);
    start1(e, "logger", "mk-12", NULL);
    wait_end(e, "mk-11");
    wait_end(e, "mk-12");
    wait_log(e, "[mk-11] foreign-value [secret stripe/key]\n");
    wait_log(e, "[mk-12] foreign-value [secret stripe/key]\n");
    wait_log(e, "warn [-] secret masking: 1 secret could not be loaded and is not masked in texts "
                "kept in clear (history errors, log lines): foreign (first reason: ");
    pthread_mutex_lock(&e->h.mu);
    const char *first = strstr(e->h.log, "secret masking");
    int twice = first && strstr(first + 1, "secret masking") != NULL;
    pthread_mutex_unlock(&e->h.mu);
    assert_false(twice); /* once */
    eng_close(e);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_engine_runs_to_completion),
        T(test_engine_text_stored_unchecked_still_shows),
        T(test_engine_start_is_idempotent),
        T(test_engine_start_rejects_bad_arguments),
        T(test_engine_type_names_checked),
        T(test_engine_type_stored_unchecked_still_runs),
        T(test_engine_log_line_cut),
        T(test_engine_log_lines_cut),
        T(test_engine_retry_then_success),
        T(test_engine_retries_exhausted),
        T(test_engine_retry_backoff_survives_restart),
        T(test_engine_fatal_failures_stop_at_once),
        T(test_engine_runner_errors_fail_the_run),
        T(test_engine_timer_survives_restart),
        T(test_engine_branch_runs),
        T(test_engine_branch_runs_end_with_their_run),
        T(test_engine_recovers_unstarted_runs),
        T(test_engine_replay_returns_recorded_results),
        T(test_engine_step_result_rides_the_next_write),
        T(test_engine_abandoned_run_resumes_after_restart),
        T(test_engine_vault_failure_keeps_the_run),
        T(test_engine_secret_under_missing_key_keeps_the_run),
        T(test_engine_branch_copy_that_does_not_open_keeps_the_run),
        T(test_engine_inbox_entry_that_does_not_open_is_named),
        T(test_engine_swapped_pending_signals_refused),
        T(test_engine_changed_pending_signal_refused),
        T(test_engine_pending_signal_without_payload_refused),
        T(test_engine_renamed_history_signal_refused),
        T(test_engine_step_result_without_payload_refused),
        T(test_engine_moved_event_refused_by_api),
        T(test_engine_version1_records_open),
        T(test_engine_forged_timer_fired_refused),
        T(test_engine_downgraded_start_refused),
        T(test_engine_forged_terminate_at_startup),
        T(test_engine_forged_cancel_entries_refused),
        T(test_engine_changed_event_without_payload_refused),
        T(test_engine_api_refuses_older_last_event),
        T(test_engine_deleted_middle_event_refused),
        T(test_engine_deleted_newest_event_refused),
        T(test_engine_version2_run_goes_on),
        T(test_engine_older_event_after_v3_refused),
        T(test_engine_retirement_keeps_older_events_older),
        T(test_engine_branch_copy_of_version1_history),
        T(test_engine_nondeterminism_fails_the_run),
        T(test_engine_side_effect_survives_restart),
        T(test_engine_list_filters_and_pages),
        T(test_engine_start_async),
        T(test_engine_watch_and_unwatch),
        T(test_engine_result_of_watched_run),
        T(test_engine_stop_interrupts_after_grace),
        T(test_engine_stop_lets_activations_finish_within_grace),
        T(test_engine_payloads_encrypted_at_rest),
        T(test_engine_alloc_failures),
        T(test_engine_signals_in_order),
        T(test_engine_signal_timeout_and_restart),
        T(test_engine_signal_inbox_survives_restart),
        T(test_engine_cancel_at_next_wait),
        T(test_engine_cancel_cleanup_replays),
        T(test_engine_terminate),
        T(test_engine_custom_status),
        T(test_engine_concurrency_queue),
        T(test_engine_child_workflows),
        T(test_engine_child_wait_survives_restart),
        T(test_engine_child_ends_when_parent_start_damaged),
        T(test_engine_list_reads_no_event_of_a_completed_run),
        T(test_engine_new_names_are_checked),
        T(test_engine_names_recorded_before_replay),
        T(test_engine_names_checked_where_recorded),
        T(test_engine_signal_recorded_before_replays),
        T(test_engine_child_depth_limit),
        T(test_engine_depth_recorded_before_replays),
        T(test_engine_depth_survives_retention),
        T(test_engine_depth_from_old_links),
        T(test_engine_depth_past_missing_ancestors),
        T(test_engine_depth_read_errors),
        T(test_engine_mask_step_failure),
        T(test_engine_mask_run_failure),
        T(test_engine_child_error_cut),
        T(test_engine_mask_log_line),
        T(test_engine_mask_follows_secret_changes),
        T(test_engine_mask_short_and_nested),
        T(test_engine_mask_before_cut),
        T(test_engine_mask_before_quote_cut),
        T(test_engine_mask_secret_that_does_not_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

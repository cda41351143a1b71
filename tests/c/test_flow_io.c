/* SPDX-License-Identifier: MIT
 * Tests of activations parked on a runner's own I/O (ls_flow_act_park_io,
 * ls_flow_runner.poll/wake) through a small C runner with one worker: a
 * run whose step waits for I/O does not hold the worker, and goes on once
 * the I/O is done; a terminate ends it while it waits; a stop interrupts it
 * after the grace period and a restart runs its step again. The "I/O" is a
 * flag the test sets. Runs end on the engine's threads; tests wait for them
 * (bounded) and never assert on elapsed time. Also: a runner that fails a
 * run while its write is in flight is refused.
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lodestone/ls_flow.h"
#include "ls_json.h"

#define WAIT_MS 10000

/* ---- the runner: type "io" runs step "call", which waits for the I/O;
 * type "plain" runs step "call" at once; both then complete ---- */

enum { S_STEP = 0, S_IO, S_DONE_IO, S_COMPLETE };

typedef struct {
    ls_flow_act *act;
    int stage;
    int io; /* its step waits for the I/O */
    uint32_t attempt;
    int parked_io;
} slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* poll waits on it; wake and the test signal it */
    slot s[16];
    int io_done;      /* the I/O of every parked activation is done */
    int woken;        /* wake called since the last poll */
    int parked_now;   /* activations parked on the I/O */
    int calls;        /* step attempts begun */
    int polls_waited; /* polls that could wait */
    atomic_int bugs;
} ioh;

static slot *slot_of(ioh *h, ls_flow_act *a, int create)
{
    slot *free_slot = NULL;
    for (size_t i = 0; i < sizeof h->s / sizeof *h->s; i++) {
        if (h->s[i].act == a) return &h->s[i];
        if (h->s[i].act == NULL && free_slot == NULL) free_slot = &h->s[i];
    }
    if (!create || free_slot == NULL) return NULL;
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->act = a;
    return free_slot;
}

static void bug(ioh *h, const char *what)
{
    fprintf(stderr, "runner check failed: %s\n", what);
    atomic_fetch_add(&h->bugs, 1);
}

/* Runs a's code from its slot's stage until it parks or ends. Caller holds
 * h->mu. */
static void go(ioh *h, ls_flow_act *a, slot *sl)
{
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    ls_flow_step_info info;
    for (;;) {
        if (sl->stage == S_STEP) {
            if (ls_flow_act_step(a, "call", 4, &info, &out, &err) != LS_OK) break;
            if (info.outcome == LS_FLOW_DONE) {
                sl->stage = S_COMPLETE;
                continue;
            }
            if (info.outcome != LS_FLOW_RUN) break;
            sl->attempt = info.attempt;
            h->calls++;
            sl->stage = S_IO;
            if (ls_flow_act_parked(a)) goto parked;
        } else if (sl->stage == S_IO) {
            sl->stage = S_DONE_IO;
            if (sl->io) {
                if (!ls_flow_act_park_io(a)) bug(h, "park_io refused");
                sl->parked_io = 1;
                h->parked_now++;
                goto parked;
            }
        } else if (sl->stage == S_DONE_IO) {
            if (ls_flow_act_interrupted(a)) break;
            static const char res[] = "\"answered\"";
            if (ls_flow_act_step_done(a, "call", 4, sl->attempt, res, sizeof res - 1, &err) !=
                LS_OK)
                break;
            sl->stage = S_COMPLETE;
            if (ls_flow_act_parked(a)) goto parked;
        } else {
            static const char output[] = "{\"ok\":true}";
            if (ls_flow_act_complete(a, output, sizeof output - 1, &err) != LS_OK) break;
            sl->act = NULL;
            ls_buf_free(&out);
            return;
        }
    }
    ls_flow_act_abandon(a); /* interrupted, or an engine error */
    sl->act = NULL;
parked:
    ls_buf_free(&out);
}

static int r_has_type(void *ud, const char *type, size_t len)
{
    (void)ud;
    return (len == 2 && memcmp(type, "io", 2) == 0) ||
           (len == 5 && memcmp(type, "plain", 5) == 0) ||
           (len == 4 && memcmp(type, "past", 4) == 0) ||
           (len == 7 && memcmp(type, "nullerr", 7) == 0);
}

/* Type "past": sleeps, and when the sleep waits, goes on as code that did
 * not unwind would and fails the run while the sleep's write is in flight:
 * the engine refuses that (the write owns the batch). Once the timer has
 * fired, it completes. */
static void run_past(ioh *h, ls_flow_act *a)
{
    ls_err err = {0};
    ls_flow_outcome oc;
    if (ls_flow_act_sleep(a, 20, &oc, &err) != LS_OK) {
        bug(h, "sleep refused");
        ls_flow_act_abandon(a);
    } else if (oc == LS_FLOW_WAIT) {
        if (ls_flow_act_fail(a, "went on", 7, NULL, 0, &err) != LS_EINVAL)
            bug(h, "fail while the sleep's write is in flight");
        else if (strstr(err.msg, "parked") == NULL)
            bug(h, "the refusal does not say why");
    } else if (ls_flow_act_complete(a, "1", 1, &err) != LS_OK) {
        bug(h, "complete refused");
    }
}

static void r_list_types(void *ud, ls_buf *out)
{
    (void)ud;
    ls_buf_append(out, "io,plain", 8, NULL);
}

static void r_activate(void *ud, void *worker, ls_flow_act *a)
{
    (void)worker;
    ioh *h = ud;
    if (strcmp(ls_flow_act_type(a), "past") == 0) {
        run_past(h, a);
        return;
    }
    if (strcmp(ls_flow_act_type(a), "nullerr") == 0) { /* fails with no message */
        ls_err err = {0};
        if (ls_flow_act_fail(a, NULL, 0, NULL, 0, &err) != LS_OK) {
            bug(h, "a failure with no message was refused");
            ls_flow_act_abandon(a);
        }
        return;
    }
    pthread_mutex_lock(&h->mu);
    slot *sl = slot_of(h, a, 1);
    if (sl == NULL) {
        bug(h, "out of slots");
        ls_flow_act_abandon(a);
    } else {
        sl->io = strcmp(ls_flow_act_type(a), "io") == 0;
        go(h, a, sl);
    }
    pthread_mutex_unlock(&h->mu);
}

static void r_resume(void *ud, void *worker, ls_flow_act *a)
{
    (void)worker;
    ioh *h = ud;
    ls_err err = {0};
    pthread_mutex_lock(&h->mu);
    slot *sl = slot_of(h, a, 0);
    if (sl == NULL) {
        bug(h, "resume of an activation never parked");
        ls_flow_act_abandon(a);
    } else if (!sl->parked_io && ls_flow_act_check(a, &err) != LS_OK) {
        ls_flow_act_abandon(a); /* its write failed */
        sl->act = NULL;
    } else {
        sl->parked_io = 0;
        go(h, a, sl);
    }
    pthread_mutex_unlock(&h->mu);
}

static size_t r_poll(void *ud, void *worker, int ms, ls_flow_act **out, size_t cap)
{
    (void)worker;
    ioh *h = ud;
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    if (ms > 0 && !h->io_done && !h->woken) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        h->polls_waited++;
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    h->woken = 0;
    for (size_t i = 0; i < sizeof h->s / sizeof *h->s && n < cap; i++) {
        slot *sl = &h->s[i];
        if (sl->act && sl->parked_io && (h->io_done || ls_flow_act_interrupted(sl->act))) {
            out[n++] = sl->act;
            h->parked_now--;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void r_wake(void *ud, void *worker)
{
    (void)worker;
    ioh *h = ud;
    pthread_mutex_lock(&h->mu);
    h->woken = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static const ls_flow_runner runner = {.worker_open = th_worker_open,
                                      .worker_close = th_worker_close,
                                      .activate = r_activate,
                                      .has_type = r_has_type,
                                      .list_types = r_list_types,
                                      .resume = r_resume,
                                      .poll = r_poll,
                                      .wake = r_wake};

/* ---- the environment ---- */

typedef struct {
    th_store_dir d;
    ls_flow_t *f;
    ioh h;
    char log[4096];
    size_t loglen;
} env;

static void on_log(void *ud, int level, const char *run, const char *msg)
{
    (void)level;
    (void)run;
    env *e = ud;
    size_t n = strlen(msg);
    if (e->loglen + n + 2 < sizeof e->log) {
        memcpy(e->log + e->loglen, msg, n);
        e->loglen += n;
        e->log[e->loglen++] = '\n';
        e->log[e->loglen] = '\0';
    }
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    th_store_dir_open(&e->d, "flow_io");
    pthread_mutex_init(&e->h.mu, NULL);
    pthread_cond_init(&e->h.cv, NULL);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    ls_flow_close(e->f);
    th_store_dir_close(&e->d);
    pthread_mutex_destroy(&e->h.mu);
    pthread_cond_destroy(&e->h.cv);
    free(e);
    return 0;
}

static void eng_open(env *e)
{
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st,
                      .vault = e->d.v,
                      .runner = &runner,
                      .runner_ud = &e->h,
                      .workers = 1,
                      .log = on_log,
                      .log_ud = e};
    th_ok(ls_flow_open(&e->f, &o, &err), &err);
    th_ok(ls_flow_run(e->f, &err), &err);
}

static void eng_close(env *e)
{
    ls_flow_close(e->f);
    e->f = NULL;
    assert_int_equal(atomic_load(&e->h.bugs), 0);
}

static void start1(env *e, const char *type, const char *name)
{
    ls_err err = {0};
    ls_buf run = LS_BUF_INIT;
    int created = 0;
    th_ok(
        ls_flow_start(e->f, type, strlen(type), name, strlen(name), NULL, 0, &run, &created, &err),
        &err);
    assert_int_equal(created, 1);
    ls_buf_free(&run);
}

static const char *status_of(env *e, const char *name, char buf[32])
{
    ls_err err = {0};
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_flow_describe(e->f, name, strlen(name), &out, &err), &err);
    json_t *j = json_loadb((const char *)out.ptr, out.len, 0, NULL);
    assert_non_null(j);
    snprintf(buf, 32, "%s", json_string_value(json_object_get(j, "status")));
    json_decref(j);
    ls_buf_free(&out);
    return buf;
}

static int parked_now(env *e)
{
    pthread_mutex_lock(&e->h.mu);
    int n = e->h.parked_now;
    pthread_mutex_unlock(&e->h.mu);
    return n;
}

static void wait_parked(env *e, int n)
{
    for (int i = 0; i < WAIT_MS / 10 && parked_now(e) != n; i++) th_nap_ms(10);
    assert_int_equal(parked_now(e), n);
}

static void set_io_done(env *e, int done)
{
    pthread_mutex_lock(&e->h.mu);
    e->h.io_done = done;
    pthread_cond_signal(&e->h.cv);
    pthread_mutex_unlock(&e->h.mu);
}

static int calls(env *e)
{
    pthread_mutex_lock(&e->h.mu);
    int n = e->h.calls;
    pthread_mutex_unlock(&e->h.mu);
    return n;
}

/* ---- tests ---- */

static void test_io_wait_does_not_hold_the_worker(void **state)
{
    env *e = *state;
    char s[32];
    eng_open(e);
    start1(e, "io", "a");
    wait_parked(e, 1);
    /* One worker, parked on a's I/O: b still runs to its end. */
    start1(e, "plain", "b");
    th_wait_run_end(e->f, "b", WAIT_MS);
    assert_string_equal(status_of(e, "b", s), "completed");
    assert_string_equal(status_of(e, "a", s), "running");
    assert_int_equal(parked_now(e), 1);
    /* Two parked at once, then both go on when their I/O is done. */
    start1(e, "io", "c");
    wait_parked(e, 2);
    set_io_done(e, 1);
    th_wait_run_end(e->f, "a", WAIT_MS);
    th_wait_run_end(e->f, "c", WAIT_MS);
    assert_string_equal(status_of(e, "a", s), "completed");
    assert_string_equal(status_of(e, "c", s), "completed");
    assert_int_equal(calls(e), 3);
    pthread_mutex_lock(&e->h.mu);
    assert_true(e->h.polls_waited > 0); /* the idle worker waited in poll */
    pthread_mutex_unlock(&e->h.mu);
    eng_close(e);
}

static void test_io_terminate_ends_a_parked_run(void **state)
{
    env *e = *state;
    char s[32];
    ls_err err = {0};
    int ended = 0;
    eng_open(e);
    start1(e, "io", "t");
    wait_parked(e, 1);
    /* Ends while its I/O never finishes: the poll hands the parked
     * activation back as interrupted. */
    th_ok(ls_flow_terminate(e->f, "t", 1, "test", "enough", WAIT_MS, &ended, &err), &err);
    assert_int_equal(ended, 1);
    assert_string_equal(status_of(e, "t", s), "terminated");
    assert_int_equal(parked_now(e), 0);
    eng_close(e);
}

static void test_io_stop_interrupts_a_parked_run(void **state)
{
    env *e = *state;
    char s[32];
    ls_err err = {0};
    eng_open(e);
    start1(e, "io", "s");
    wait_parked(e, 1);
    th_ok(ls_flow_stop(e->f, 100, &err), &err);
    assert_non_null(strstr(e->log, "still running after the grace period"));
    assert_string_equal(status_of(e, "s", s), "running");
    eng_close(e);
    /* After a restart its step runs again, and the run completes. */
    set_io_done(e, 1);
    eng_open(e);
    th_wait_run_end(e->f, "s", WAIT_MS);
    assert_string_equal(status_of(e, "s", s), "completed");
    assert_int_equal(calls(e), 2);
    eng_close(e);
}

static void test_io_fail_refused_while_a_write_is_in_flight(void **state)
{
    env *e = *state;
    char s[32];
    eng_open(e);
    start1(e, "past", "p");
    th_wait_run_end(e->f, "p", WAIT_MS);
    assert_string_equal(status_of(e, "p", s), "completed");
    eng_close(e);
}

static void test_io_fail_without_a_message(void **state)
{
    env *e = *state;
    char s[32];
    eng_open(e);
    start1(e, "nullerr", "n");
    th_wait_run_end(e->f, "n", WAIT_MS);
    assert_string_equal(status_of(e, "n", s), "failed");
    eng_close(e);
}

static void test_io_poll_needs_wake_and_resume(void **state)
{
    env *e = *state;
    ls_flow_runner half = runner;
    half.wake = NULL;
    ls_err err = {0};
    ls_flow_opts o = {.store = e->d.st, .vault = e->d.v, .runner = &half, .runner_ud = &e->h};
    assert_int_equal(ls_flow_open(&e->f, &o, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "poll needs its wake and resume"));
    assert_null(e->f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_io_wait_does_not_hold_the_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_terminate_ends_a_parked_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_stop_interrupts_a_parked_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_fail_refused_while_a_write_is_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_io_fail_without_a_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_poll_needs_wake_and_resume, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT
 * Tests of native/flow/replay.c: histories replay command by command to
 * their recorded outcomes (completed, retried, failed, in flight, backing
 * off, timers fired or pending, side effects, buffered signals), then
 * report "new"; any divergence is a non-determinism error naming both
 * sides; malformed histories are LS_ECORRUPT; the one allocation fails
 * cleanly.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/replay.h"

/* ---- building histories ---- */

typedef struct {
    ls_event ev[64];
    size_t n;
} hist;

static ls_event *add(hist *h, ls_event_type t, const char *name)
{
    assert_true(h->n < sizeof h->ev / sizeof h->ev[0]);
    ls_event *e = &h->ev[h->n];
    memset(e, 0, sizeof *e);
    e->type = t;
    e->seq = ++h->n;
    e->time_ms = 1700000000000 + (int64_t)h->n;
    e->name = name;
    e->name_len = name ? strlen(name) : 0;
    return e;
}

static void set_payload(ls_event *e, const char *s)
{
    e->payload = (const unsigned char *)s;
    e->payload_len = strlen(s);
}

static void set_error(ls_event *e, const char *s)
{
    e->error = s;
    e->error_len = strlen(s);
}

static void h_start(hist *h)
{
    h->n = 0;
    set_payload(add(h, LS_EV_WORKFLOW_STARTED, NULL), "{\"amount\":5}");
}

static void h_step_started(hist *h, const char *name, uint32_t attempt)
{
    add(h, LS_EV_STEP_STARTED, name)->attempt = attempt;
}

static void h_step_completed(hist *h, const char *name, uint32_t attempt, const char *result)
{
    ls_event *e = add(h, LS_EV_STEP_COMPLETED, name);
    e->attempt = attempt;
    set_payload(e, result);
}

static void h_step_failed(hist *h, const char *name, uint32_t attempt, const char *error, int fatal,
                          int64_t due)
{
    ls_event *e = add(h, LS_EV_STEP_FAILED, name);
    e->attempt = attempt;
    e->flags = fatal ? LS_EVF_FATAL : 0;
    e->due_ms = due;
    set_error(e, error);
}

static void h_step(hist *h, const char *name, const char *result)
{
    h_step_started(h, name, 1);
    h_step_completed(h, name, 1, result);
}

static void h_timer(hist *h, const char *name, int64_t due, int fired)
{
    add(h, LS_EV_TIMER_STARTED, name)->due_ms = due;
    if (fired) add(h, LS_EV_TIMER_FIRED, name);
}

static void h_side_effect(hist *h, const char *kind, const char *value)
{
    set_payload(add(h, LS_EV_SIDE_EFFECT, kind), value);
}

static void h_signal(hist *h, const char *name, const char *value)
{
    set_payload(add(h, LS_EV_SIGNAL_RECEIVED, name), value);
}

/* ---- driving the cursor ---- */

static ls_rc next(ls_replay *c, ls_cmd_kind kind, const char *name, ls_replay_match *m, ls_err *err)
{
    return ls_replay_next(c, kind, name, name ? strlen(name) : 0, m, err);
}

static void expect_payload(const ls_replay_match *m, const char *want)
{
    assert_int_equal(m->last->payload_len, strlen(want));
    if (*want) assert_memory_equal(m->last->payload, want, strlen(want));
}

static void expect_error(const ls_replay_match *m, const char *want)
{
    assert_int_equal(m->last->error_len, strlen(want));
    if (*want) assert_memory_equal(m->last->error, want, strlen(want));
}

static void expect_done(ls_replay *c, ls_cmd_kind kind, const char *name, const char *payload)
{
    ls_replay_match m;
    ls_err err;
    th_ok(next(c, kind, name, &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    expect_payload(&m, payload);
}

static void expect_new(ls_replay *c, ls_cmd_kind kind, const char *name)
{
    ls_replay_match m;
    ls_err err = {.code = LS_OK, .msg = "untouched"};
    assert_int_equal(next(c, kind, name, &m, &err), LS_ENOTFOUND);
    assert_string_equal(err.msg, "untouched");
}

/* Marks "the workflow finished" in expect_nondet. */
static const char finish_marker[] = "(finish)";
#define FINISH finish_marker

static void expect_nondet(ls_replay *c, ls_cmd_kind kind, const char *name, const char *msg)
{
    ls_replay_match m;
    ls_err err = {0};
    ls_rc rc = name == FINISH ? ls_replay_finish(c, &err) : next(c, kind, name, &m, &err);
    assert_int_equal(rc, LS_REPLAY_ENONDET);
    assert_int_equal(err.code, LS_REPLAY_ENONDET);
    assert_string_equal(err.msg, msg);
}

static void expect_corrupt(const hist *h, ls_cmd_kind kind, const char *name, const char *msg)
{
    ls_replay c;
    ls_replay_match m;
    ls_err err = {0};
    ls_rc rc = ls_replay_init(&c, h->ev, h->n, &err);
    if (rc == LS_OK) {
        rc = next(&c, kind, name, &m, &err);
        ls_replay_free(&c);
    }
    assert_int_equal(rc, LS_ECORRUPT);
    if (strstr(err.msg, msg) == NULL) fail_msg("\"%s\" does not contain \"%s\"", err.msg, msg);
}

/* ---- replay ---- */

static void test_replay_three_steps_then_new(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "charge", "{\"id\":\"ch_1\"}");
    h_step(&h, "reserve", "{}");
    h_step(&h, "ship", "{\"tracking\":\"T-1\"}");
    ls_replay c;
    ls_err err;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    assert_ptr_equal(ls_replay_started(&c), &h.ev[0]);
    assert_null(ls_replay_closed(&c));

    ls_replay_match m;
    th_ok(next(&c, LS_CMD_STEP, "charge", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    assert_int_equal(m.command, 1);
    assert_int_equal(m.attempt, 1);
    assert_ptr_equal(m.first, &h.ev[1]);
    assert_ptr_equal(m.last, &h.ev[2]);
    expect_payload(&m, "{\"id\":\"ch_1\"}");
    expect_done(&c, LS_CMD_STEP, "reserve", "{}");
    expect_done(&c, LS_CMD_STEP, "ship", "{\"tracking\":\"T-1\"}");
    assert_int_equal(ls_replay_commands(&c), 3);
    expect_new(&c, LS_CMD_STEP, "notify");
    expect_new(&c, LS_CMD_TIMER, "1m"); /* and everything after */
    th_ok(ls_replay_finish(&c, &err), &err);
    ls_replay_free(&c);
    ls_replay_free(&c); /* harmless twice */
    ls_replay_free(NULL);
}

static void test_replay_retries_complete_with_attempt_count(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step_started(&h, "charge", 1);
    h_step_failed(&h, "charge", 1, "payments unavailable", 0, 1000);
    h_step_started(&h, "charge", 2);
    h_step_failed(&h, "charge", 2, "timeout", 0, 3000);
    h_step_failed(&h, "charge", 3, "no StepStarted before this attempt", 0, 7000);
    h_step_started(&h, "charge", 4);
    h_step_completed(&h, "charge", 4, "{\"id\":1}");
    h_step(&h, "ship", "{}");
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    th_ok(next(&c, LS_CMD_STEP, "charge", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    assert_int_equal(m.attempt, 4);
    assert_int_equal(m.command, 1);
    assert_ptr_equal(m.first, &h.ev[1]);
    assert_ptr_equal(m.last, &h.ev[7]);
    expect_payload(&m, "{\"id\":1}");
    th_ok(next(&c, LS_CMD_STEP, "ship", &m, &err), &err);
    assert_int_equal(m.command, 2);
    expect_new(&c, LS_CMD_STEP, "notify");
    ls_replay_free(&c);
}

static void test_replay_step_failed_for_good(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step_started(&h, "charge", 1);
    h_step_failed(&h, "charge", 1, "card declined", 1, 0);
    ls_event *end = add(&h, LS_EV_WORKFLOW_FAILED, NULL);
    set_error(end, "card declined\nstack traceback: ...");
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    assert_ptr_equal(ls_replay_closed(&c), end);
    th_ok(next(&c, LS_CMD_STEP, "charge", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_FAILED);
    assert_int_equal(m.attempt, 1);
    expect_error(&m, "card declined");
    th_ok(ls_replay_finish(&c, &err), &err);
    /* a run that failed has no command after its last one */
    expect_nondet(&c, LS_CMD_STEP, "refund",
                  "non-determinism at command 2: history ends with workflow_failed, the workflow "
                  "asked for step \"refund\"");
    ls_replay_free(&c);
}

static void test_replay_in_flight_step(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "charge", "{}");
    h_step_started(&h, "ship", 1);
    h_step_failed(&h, "ship", 1, "502", 0, 5000);
    h_step_started(&h, "ship", 2); /* the daemon died here */
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    th_ok(next(&c, LS_CMD_STEP, "ship", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_INFLIGHT);
    assert_int_equal(m.attempt, 2);
    assert_int_equal(m.command, 2);
    assert_ptr_equal(m.first, &h.ev[3]);
    assert_ptr_equal(m.last, &h.ev[5]);
    expect_new(&c, LS_CMD_STEP, "notify");
    ls_replay_free(&c);

    /* the same step cut off after a retryable failure: backing off */
    h.n--;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    th_ok(next(&c, LS_CMD_STEP, "ship", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_BACKOFF);
    assert_int_equal(m.attempt, 1);
    assert_true(m.due_ms == 5000);
    expect_error(&m, "502");
    ls_replay_free(&c);

    /* and a run terminated while its step was in flight */
    h_step_started(&h, "ship", 2);
    add(&h, LS_EV_WORKFLOW_TERMINATED, NULL);
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    th_ok(next(&c, LS_CMD_STEP, "ship", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_INFLIGHT);
    expect_new(&c, LS_CMD_STEP, "cleanup"); /* terminated is not an ending of its own */
    ls_replay_free(&c);
}

static void test_replay_timers_fired_and_pending(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_timer(&h, "10s", 1700000010000, 1);
    h_step(&h, "ship", "{}");
    h_timer(&h, "1d", 1700086400000, 0);
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    th_ok(next(&c, LS_CMD_TIMER, "10s", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    assert_int_equal(m.due_ms, 0);
    assert_ptr_equal(m.first, &h.ev[1]);
    assert_ptr_equal(m.last, &h.ev[2]);
    expect_done(&c, LS_CMD_STEP, "ship", "{}");
    th_ok(next(&c, LS_CMD_TIMER, "1d", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_PENDING);
    assert_true(m.due_ms == 1700086400000);
    assert_int_equal(m.command, 3);
    assert_ptr_equal(m.first, m.last);
    expect_new(&c, LS_CMD_STEP, "after");
    ls_replay_free(&c);

    /* unnamed timers match each other */
    h_start(&h);
    h_timer(&h, "", 5, 1);
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    th_ok(ls_replay_next(&c, LS_CMD_TIMER, NULL, 0, &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    ls_replay_free(&c);
}

static void test_replay_side_effects_return_recorded_values(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_side_effect(&h, "now", "1700000000123");
    h_side_effect(&h, "uuid", "0b7e4f3c-5a2d-4c8e-9f10-2f6a1b3c4d5e");
    h_step(&h, "charge", "{}");
    h_side_effect(&h, "random", "0.25");
    ls_replay c;
    ls_err err;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_SIDE_EFFECT, "now", "1700000000123");
    expect_done(&c, LS_CMD_SIDE_EFFECT, "uuid", "0b7e4f3c-5a2d-4c8e-9f10-2f6a1b3c4d5e");
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    expect_done(&c, LS_CMD_SIDE_EFFECT, "random", "0.25");
    expect_new(&c, LS_CMD_SIDE_EFFECT, "now");
    ls_replay_free(&c);

    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_nondet(&c, LS_CMD_SIDE_EFFECT, "random",
                  "non-determinism at command 1: history has side effect \"now\", the workflow "
                  "asked for side effect \"random\"");
    ls_replay_free(&c);
}

static void test_replay_signals_are_buffered_and_consumed_in_order(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_signal(&h, "approve", "\"first\"");
    h_step_started(&h, "charge", 1);
    h_signal(&h, "other", "1");
    h_step_completed(&h, "charge", 1, "{}");
    h_timer(&h, "1h", 99, 0);
    h_signal(&h, "approve", "\"second\"");
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    th_ok(next(&c, LS_CMD_SIGNAL, "approve", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_DONE);
    assert_int_equal(m.command, 0); /* not a command */
    expect_payload(&m, "\"first\"");
    expect_done(&c, LS_CMD_STEP, "charge", "{}"); /* signals inside a record are skipped */
    th_ok(next(&c, LS_CMD_TIMER, "1h", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_PENDING); /* the signal after it is not a firing */
    expect_done(&c, LS_CMD_SIGNAL, "approve", "\"second\"");
    expect_done(&c, LS_CMD_SIGNAL, "other", "1");
    expect_new(&c, LS_CMD_SIGNAL, "approve"); /* none left: suspend */
    ls_replay_free(&c);

    /* a wait with no signal while history went on past it */
    h_start(&h);
    h_step(&h, "charge", "{}");
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_nondet(&c, LS_CMD_SIGNAL, "approve",
                  "non-determinism at command 1: history has step \"charge\", the workflow waits "
                  "for signal \"approve\", which history never received");
    ls_replay_free(&c);
}

static void test_replay_same_step_name_twice(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "poll", "1");
    h_step_failed(&h, "poll", 1, "boom", 0, 10);
    h_step_completed(&h, "poll", 2, "2");
    ls_replay c;
    ls_err err;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "poll", "1");
    th_ok(next(&c, LS_CMD_STEP, "poll", &m, &err), &err);
    assert_int_equal(m.attempt, 2);
    assert_int_equal(m.command, 2);
    expect_payload(&m, "2");
    ls_replay_free(&c);
}

/* ---- non-determinism ---- */

static void test_replay_nondet_changed_step_name(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "validate", "{}");
    h_step(&h, "reserve", "{}");
    h_step(&h, "charge", "{}");
    ls_replay c;
    ls_err err;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "validate", "{}");
    expect_done(&c, LS_CMD_STEP, "reserve", "{}");
    const char *msg = "non-determinism at command 3: history has step \"charge\", the workflow "
                      "asked for step \"ship\"";
    expect_nondet(&c, LS_CMD_STEP, "ship", msg);
    /* sticky: the same error again, whatever is asked */
    expect_nondet(&c, LS_CMD_STEP, "charge", msg);
    expect_nondet(&c, LS_CMD_SIGNAL, "x", msg);
    expect_nondet(&c, 0, FINISH, msg);
    ls_replay_free(&c);
}

static void test_replay_nondet_step_where_timer_was(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "charge", "{}");
    h_timer(&h, "10s", 1, 1);
    h_step(&h, "ship", "{}");
    ls_replay c;
    ls_err err;
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    expect_nondet(&c, LS_CMD_STEP, "ship",
                  "non-determinism at command 2: history has timer \"10s\", the workflow asked "
                  "for step \"ship\"");
    ls_replay_free(&c);

    /* and the other way round, with a name that must be escaped and cut */
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_nondet(&c, LS_CMD_TIMER, "a \"quoted\"\tname that goes on and on and on and on and on",
                  "non-determinism at command 1: history has step \"charge\", the workflow asked "
                  "for timer \"a \\\"quoted\\\"\\x09name that goes on and on...\"");
    ls_replay_free(&c);
}

static void test_replay_nondet_missing_command(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_step(&h, "charge", "{}");
    h_timer(&h, "10s", 1, 1);
    h_step(&h, "ship", "{}");
    ls_replay c;
    ls_err err;
    /* the workflow skips the timer */
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    expect_nondet(&c, LS_CMD_STEP, "ship",
                  "non-determinism at command 2: history has timer \"10s\", the workflow asked "
                  "for step \"ship\"");
    ls_replay_free(&c);
    /* the workflow ends before its last step */
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    expect_done(&c, LS_CMD_TIMER, "10s", "");
    expect_nondet(&c, 0, FINISH,
                  "non-determinism at command 3: history has step \"ship\", the workflow ended "
                  "without it");
    ls_replay_free(&c);
    /* a completed run has no command after its last */
    add(&h, LS_EV_WORKFLOW_COMPLETED, NULL);
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "charge", "{}");
    expect_done(&c, LS_CMD_TIMER, "10s", "");
    expect_done(&c, LS_CMD_STEP, "ship", "{}");
    th_ok(ls_replay_finish(&c, &err), &err);
    expect_nondet(&c, LS_CMD_SIGNAL, "more",
                  "non-determinism at command 4: history ends with workflow_completed, the "
                  "workflow waits for signal \"more\"");
    ls_replay_free(&c);
}

/* ---- malformed histories ---- */

static void test_replay_rejects_malformed_histories(void **state)
{
    (void)state;
    hist h;
    ls_replay c;
    ls_err err;

    h.n = 0;
    assert_int_equal(ls_replay_init(&c, h.ev, 0, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "nothing, not workflow_started"));
    h_start(&h);
    h_step(&h, "a", "1");
    assert_int_equal(ls_replay_init(&c, h.ev + 1, 2, &err), LS_ECORRUPT);
    h.ev[2].seq = 9; /* gap */
    assert_int_equal(ls_replay_init(&c, h.ev, h.n, &err), LS_ECORRUPT);
    assert_string_equal(err.msg, "history: event 3 has seq 9");
    h_start(&h);
    add(&h, LS_EV_WORKFLOW_STARTED, NULL);
    assert_int_equal(ls_replay_init(&c, h.ev, h.n, &err), LS_ECORRUPT);
    h_start(&h);
    add(&h, LS_EV_WORKFLOW_COMPLETED, NULL);
    h_signal(&h, "late", "1"); /* a signal after the end is harmless */
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    ls_replay_free(&c);
    h_step(&h, "after", "1");
    assert_int_equal(ls_replay_init(&c, h.ev, h.n, &err), LS_ECORRUPT);
    assert_non_null(strstr(err.msg, "step_started at seq 4 after workflow_completed at seq 2"));

    h_start(&h);
    add(&h, LS_EV_TIMER_FIRED, "t");
    expect_corrupt(&h, LS_CMD_TIMER, "t", "timer_fired of \"t\" at seq 2 without timer_started");
    h_start(&h);
    h_step_started(&h, "a", 1);
    h_step(&h, "b", "{}");
    expect_corrupt(&h, LS_CMD_STEP, "a",
                   "step \"a\" (seq 2) is unfinished at seq 3, a step_started of \"b\"");
    h_start(&h);
    h_timer(&h, "t", 1, 0);
    h_side_effect(&h, "now", "1");
    expect_corrupt(&h, LS_CMD_TIMER, "t",
                   "timer \"t\" (seq 2) is pending at seq 3, a side_effect_recorded of \"now\"");
    h_start(&h);
    h_step_started(&h, "a", 2);
    h_step_completed(&h, "a", 1, "{}");
    expect_corrupt(&h, LS_CMD_STEP, "a", "goes back in attempts");
    h_start(&h);
    h_step_failed(&h, "a", 1, "x", 0, 0);
    h_step_started(&h, "a", 1);
    expect_corrupt(&h, LS_CMD_STEP, "a", "goes back in attempts");
    h_start(&h);
    h_step_started(&h, "a", 0);
    expect_corrupt(&h, LS_CMD_STEP, "a", "has attempt 0");
}

static void test_replay_over_decoded_values(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_side_effect(&h, "now", "17");
    h_step_failed(&h, "charge", 1, "503", 0, 2000);
    h_step_completed(&h, "charge", 2, "{\"id\":\"ch\\u0000x\"}");
    h_timer(&h, "10s", 12345, 0);
    /* as the engine will: values from the store, decoded, borrowed */
    ls_buf vals[16];
    ls_event ev[16];
    ls_err err;
    for (size_t i = 0; i < h.n; i++) {
        vals[i] = (ls_buf)LS_BUF_INIT;
        th_ok(ls_event_encode(&h.ev[i], &vals[i], &err), &err);
        th_ok(ls_event_decode(vals[i].ptr, vals[i].len, &ev[i], &err), &err);
    }
    ls_replay c;
    ls_replay_match m;
    th_ok(ls_replay_init(&c, ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_SIDE_EFFECT, "now", "17");
    th_ok(next(&c, LS_CMD_STEP, "charge", &m, &err), &err);
    assert_int_equal(m.attempt, 2);
    expect_payload(&m, "{\"id\":\"ch\\u0000x\"}");
    th_ok(next(&c, LS_CMD_TIMER, "10s", &m, &err), &err);
    assert_int_equal(m.state, LS_REPLAY_PENDING);
    assert_true(m.due_ms == 12345);
    ls_replay_free(&c);
    for (size_t i = 0; i < h.n; i++) ls_buf_free(&vals[i]);
}

static void test_replay_names(void **state)
{
    (void)state;
    assert_string_equal(ls_cmd_kind_name(LS_CMD_STEP), "step");
    assert_string_equal(ls_cmd_kind_name(LS_CMD_SIDE_EFFECT), "side effect");
    assert_string_equal(ls_cmd_kind_name((ls_cmd_kind)0), "unknown command");
}

/* ---- allocation failures ---- */

static ls_rc init_with_signals(void *ud)
{
    const hist *h = ud;
    ls_replay c;
    ls_err err;
    ls_rc rc = ls_replay_init(&c, h->ev, h->n, &err);
    if (rc != LS_OK) {
        assert_int_equal(err.code, LS_ENOMEM);
        return rc;
    }
    ls_replay_match m;
    rc = ls_replay_next(&c, LS_CMD_SIGNAL, "go", 2, &m, &err);
    if (rc == LS_OK) rc = ls_replay_next(&c, LS_CMD_STEP, "a", 1, &m, &err);
    ls_replay_free(&c);
    return rc;
}

static void test_replay_alloc_failures(void **state)
{
    (void)state;
    hist h;
    h_start(&h);
    h_signal(&h, "go", "1");
    h_step(&h, "a", "1");
    assert_int_equal(th_each_alloc_failure(init_with_signals, &h), 1);
    /* without signals nothing is allocated at all */
    h_start(&h);
    h_step(&h, "a", "1");
    ls_replay c;
    ls_err err;
    th_fail_install();
    th_fail_after(0);
    th_ok(ls_replay_init(&c, h.ev, h.n, &err), &err);
    expect_done(&c, LS_CMD_STEP, "a", "1");
    expect_new(&c, LS_CMD_STEP, "b");
    ls_replay_free(&c);
    assert_int_equal(th_alloc_count(), 0);
    th_fail_uninstall();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_three_steps_then_new),
        cmocka_unit_test(test_replay_retries_complete_with_attempt_count),
        cmocka_unit_test(test_replay_step_failed_for_good),
        cmocka_unit_test(test_replay_in_flight_step),
        cmocka_unit_test(test_replay_timers_fired_and_pending),
        cmocka_unit_test(test_replay_side_effects_return_recorded_values),
        cmocka_unit_test(test_replay_signals_are_buffered_and_consumed_in_order),
        cmocka_unit_test(test_replay_same_step_name_twice),
        cmocka_unit_test(test_replay_nondet_changed_step_name),
        cmocka_unit_test(test_replay_nondet_step_where_timer_was),
        cmocka_unit_test(test_replay_nondet_missing_command),
        cmocka_unit_test(test_replay_rejects_malformed_histories),
        cmocka_unit_test(test_replay_over_decoded_values),
        cmocka_unit_test(test_replay_names),
        cmocka_unit_test(test_replay_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT
 * Deterministic replay: a cursor that walks a run's history record by
 * record as the workflow issues commands, returns recorded outcomes, says
 * "new" once history is used up, and reports any divergence as
 * non-determinism naming both sides. Rules in replay.h. The cursor borrows
 * the events; only a consumed-signal bitmap is allocated, once, at init. */
#include "ls_config.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "replay.h"

/* ---- event classes ---- */

static int is_terminal(ls_event_type t)
{
    return t == LS_EV_WORKFLOW_COMPLETED || t == LS_EV_WORKFLOW_FAILED ||
           t == LS_EV_WORKFLOW_CANCELLED || t == LS_EV_WORKFLOW_TERMINATED;
}

/* The command kind an event belongs to, or 0 for a non-command event. */
static ls_cmd_kind event_kind(ls_event_type t)
{
    switch (t) {
    case LS_EV_STEP_STARTED:
    case LS_EV_STEP_COMPLETED:
    case LS_EV_STEP_FAILED: return LS_CMD_STEP;
    case LS_EV_TIMER_STARTED:
    case LS_EV_TIMER_FIRED:
    case LS_EV_TIMER_CANCELLED: return LS_CMD_TIMER;
    case LS_EV_SIDE_EFFECT: return LS_CMD_SIDE_EFFECT;
    case LS_EV_CHILD_STARTED: return LS_CMD_CHILD;
    default: return (ls_cmd_kind)0;
    }
}

const char *ls_cmd_kind_name(ls_cmd_kind kind)
{
    switch (kind) {
    case LS_CMD_STEP: return "step";
    case LS_CMD_TIMER: return "timer";
    case LS_CMD_SIDE_EFFECT: return "side effect";
    case LS_CMD_SIGNAL: return "signal";
    case LS_CMD_CHILD: return "child workflow";
    }
    return "unknown command";
}

static int same_name(const ls_event *e, const char *name, size_t len)
{
    return e->name_len == len && (len == 0 || memcmp(e->name, name, len) == 0);
}

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- messages ---- */

#define QUOTE_MAX 40 /* visible characters of a name in a message */

typedef struct {
    char s[QUOTE_MAX + 8]; /* room for one escape and "..." past the limit */
} quoted;

/* name as printable text, escaped (\" \\ \xNN) and cut with "..." */
static const char *quote(quoted *q, const char *name, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (o >= QUOTE_MAX) {
            memcpy(q->s + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            q->s[o++] = '\\';
            q->s[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7F) {
            q->s[o++] = '\\';
            q->s[o++] = 'x';
            q->s[o++] = hex[ch >> 4];
            q->s[o++] = hex[ch & 15];
        } else {
            q->s[o++] = (char)ch;
        }
    }
    q->s[o] = '\0';
    return q->s;
}

/* Records a sticky failure and copies it to err. */
LS_PRINTF(3, 4)
static ls_rc fail(ls_replay *c, ls_rc code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->ferr.msg, sizeof c->ferr.msg, fmt, ap);
    va_end(ap);
    c->ferr.code = code;
    c->failed = code;
    return code;
}

static ls_rc failed_again(const ls_replay *c, ls_err *err)
{
    if (err) *err = c->ferr;
    return c->failed;
}

/* "step \"charge\"" for the record starting at e */
static const char *describe(quoted *q, char *buf, size_t cap, const ls_event *e)
{
    snprintf(buf, cap, "%s \"%s\"", ls_cmd_kind_name(event_kind(e->type)),
             quote(q, e->name, e->name_len));
    return buf;
}

#define DESC_MAX (sizeof(quoted) + 16)

static ls_rc corrupt_record(ls_replay *c, ls_err *err, const ls_event *first, const ls_event *e,
                            const char *what)
{
    quoted q1, q2;
    char d[DESC_MAX];
    fail(c, LS_ECORRUPT, "history: %s (seq %llu) %s at seq %llu, a %s of \"%s\"",
         describe(&q1, d, sizeof d, first), ull(first->seq), what, ull(e->seq),
         ls_event_type_name(e->type), quote(&q2, e->name, e->name_len));
    return failed_again(c, err);
}

/* ---- cursor ---- */

ls_rc ls_replay_init(ls_replay *c, const ls_event *events, size_t n, ls_err *err)
{
    assert(c != NULL && (events != NULL || n == 0));
    memset(c, 0, sizeof *c);
    if (n == 0 || events[0].type != LS_EV_WORKFLOW_STARTED)
        return ls_err_set(err, LS_ECORRUPT, "history: %s, not workflow_started, comes first",
                          n == 0 ? "nothing" : ls_event_type_name(events[0].type));
    size_t signals = 0;
    const ls_event *closed = NULL;
    for (size_t i = 0; i < n; i++) {
        const ls_event *e = &events[i];
        if (e->seq != i + 1)
            return ls_err_set(err, LS_ECORRUPT, "history: event %zu has seq %llu", i + 1,
                              ull(e->seq));
        if (i > 0 && e->type == LS_EV_WORKFLOW_STARTED)
            return ls_err_set(err, LS_ECORRUPT, "history: workflow_started again at seq %llu",
                              ull(e->seq));
        if (closed && (is_terminal(e->type) || event_kind(e->type) != 0))
            return ls_err_set(err, LS_ECORRUPT, "history: %s at seq %llu after %s at seq %llu",
                              ls_event_type_name(e->type), ull(e->seq),
                              ls_event_type_name(closed->type), ull(closed->seq));
        if (is_terminal(e->type)) closed = e;
        signals += e->type == LS_EV_SIGNAL_RECEIVED;
        if (e->type == LS_EV_CANCEL_REQUESTED && c->cancel == NULL) c->cancel = e;
    }
    if (signals) {
        c->used = ls_calloc((n + 7) / 8, 1);
        if (c->used == NULL) return ls_err_set(err, LS_ENOMEM, "history: out of memory");
    }
    c->ev = events;
    c->n = n;
    c->closed = closed;
    return LS_OK;
}

void ls_replay_free(ls_replay *c)
{
    if (c == NULL) return;
    if (!c->shared_used) ls_free(c->used);
    c->used = NULL;
}

const ls_event *ls_replay_started(const ls_replay *c)
{
    return c->n ? &c->ev[0] : NULL;
}

const ls_event *ls_replay_closed(const ls_replay *c)
{
    return c->closed;
}

const ls_event *ls_replay_cancel(const ls_replay *c)
{
    return c->cancel;
}

static size_t next_command(const ls_replay *c, size_t i);

ls_rc ls_replay_find_child(const ls_replay *c, const char *name, size_t len, uint64_t before,
                           ls_replay_match *m)
{
    for (size_t i = 0; i < c->n && c->ev[i].seq < before; i++) {
        const ls_event *e = &c->ev[i];
        if ((e->type != LS_EV_CHILD_COMPLETED && e->type != LS_EV_CHILD_FAILED) ||
            !same_name(e, name, len))
            continue;
        memset(m, 0, sizeof *m);
        m->state = e->type == LS_EV_CHILD_COMPLETED ? LS_REPLAY_DONE : LS_REPLAY_FAILED;
        m->first = m->last = e;
        return LS_OK;
    }
    return LS_ENOTFOUND;
}

uint64_t ls_replay_peek(const ls_replay *c)
{
    if (c->failed) return 0;
    size_t i = next_command(c, c->pos);
    return i < c->n ? c->ev[i].seq : 0;
}

ls_rc ls_replay_take_signal(ls_replay *c, const char *name, size_t len, uint64_t before,
                            ls_replay_match *m)
{
    assert(c != NULL && m != NULL && (name != NULL || len == 0));
    if (c->used == NULL) return LS_ENOTFOUND;
    for (size_t i = 0; i < c->n && c->ev[i].seq < before; i++) {
        const ls_event *e = &c->ev[i];
        if (e->type != LS_EV_SIGNAL_RECEIVED || !same_name(e, name, len)) continue;
        if (c->used[i / 8] & (1u << (i % 8))) continue;
        c->used[i / 8] |= (unsigned char)(1u << (i % 8));
        memset(m, 0, sizeof *m);
        m->state = LS_REPLAY_DONE;
        m->first = m->last = e;
        return LS_OK;
    }
    return LS_ENOTFOUND;
}

uint64_t ls_replay_commands(const ls_replay *c)
{
    return c->commands;
}

/* Index of the first command event at or after i, or n. */
size_t ls_replay_scope_len(const char *name, size_t len)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        if (j >= len || name[j] != '[') return i;
        j++;
        size_t d = j;
        while (j < len && name[j] >= '0' && name[j] <= '9') j++;
        if (j == d || j >= len || name[j] != '.') return i;
        d = ++j;
        while (j < len && name[j] >= '0' && name[j] <= '9') j++;
        if (j == d || j >= len || name[j] != ']') return i;
        i = j + 1;
    }
}

/* Whether e is the cursor's to match: every non-command event is, a
 * command event only when its name's branch prefix is the cursor's scope. */
static int in_scope(const ls_replay *c, const ls_event *e)
{
    if (event_kind(e->type) == 0) return 1;
    size_t pl = ls_replay_scope_len(e->name, e->name_len);
    return pl == c->scope_len && (pl == 0 || memcmp(e->name, c->scope, pl) == 0);
}

static size_t next_command(const ls_replay *c, size_t i)
{
    while (i < c->n && (event_kind(c->ev[i].type) == 0 || !in_scope(c, &c->ev[i]))) i++;
    return i;
}

void ls_replay_init_scope(ls_replay *c, const ls_replay *root, const char *scope, size_t len)
{
    memset(c, 0, sizeof *c);
    c->ev = root->ev;
    c->n = root->n;
    c->used = root->used; /* signals are the run's, whichever cursor takes them */
    c->shared_used = 1;
    c->closed = root->closed;
    c->cancel = root->cancel;
    c->scope = scope;
    c->scope_len = len;
}

/* Whether the run ended on its own: no command can follow. */
static int ended(const ls_replay *c)
{
    return c->closed && (c->closed->type == LS_EV_WORKFLOW_COMPLETED ||
                         c->closed->type == LS_EV_WORKFLOW_FAILED);
}

/* ---- records ---- */

static ls_rc read_step(ls_replay *c, size_t i, ls_replay_match *m, ls_err *err)
{
    const ls_event *first = &c->ev[i], *last = NULL;
    ls_replay_state st = LS_REPLAY_INFLIGHT;
    size_t j;
    for (j = i; j < c->n; j++) {
        const ls_event *e = &c->ev[j];
        if (is_terminal(e->type)) break; /* the run ended with the step unfinished */
        if (event_kind(e->type) == 0 || !in_scope(c, e)) continue; /* not a command of ours */
        if (event_kind(e->type) != LS_CMD_STEP || !same_name(e, first->name, first->name_len))
            return corrupt_record(c, err, first, e, "is unfinished");
        if (e->attempt == 0) return corrupt_record(c, err, first, e, "has attempt 0");
        if (last && (e->attempt < last->attempt ||
                     (e->type == LS_EV_STEP_STARTED && last->type == LS_EV_STEP_FAILED &&
                      e->attempt == last->attempt)))
            return corrupt_record(c, err, first, e, "goes back in attempts");
        last = e;
        if (e->type == LS_EV_STEP_COMPLETED) {
            st = LS_REPLAY_DONE;
        } else if (e->type == LS_EV_STEP_FAILED) {
            st = e->flags & LS_EVF_FATAL    ? LS_REPLAY_FAILED
                 : e->flags & LS_EVF_PAUSED ? LS_REPLAY_PAUSED
                                            : LS_REPLAY_BACKOFF;
        } else {
            st = LS_REPLAY_INFLIGHT;
        }
        if (st == LS_REPLAY_DONE || st == LS_REPLAY_FAILED) {
            j++;
            break;
        }
    }
    if (last == NULL) /* cannot happen: first is a step event */
        return corrupt_record(c, err, first, first, "is empty");
    m->state = st;
    m->attempt = last->attempt;
    m->due_ms = st == LS_REPLAY_BACKOFF ? last->due_ms : 0;
    m->first = first;
    m->last = last;
    c->pos = j;
    return LS_OK;
}

static ls_rc read_timer(ls_replay *c, size_t i, ls_replay_match *m, ls_err *err)
{
    const ls_event *started = &c->ev[i];
    if (started->type != LS_EV_TIMER_STARTED) {
        quoted q;
        fail(c, LS_ECORRUPT, "history: %s of \"%s\" at seq %llu without timer_started",
             ls_event_type_name(started->type), quote(&q, started->name, started->name_len),
             ull(started->seq));
        return failed_again(c, err);
    }
    m->state = LS_REPLAY_PENDING;
    m->due_ms = started->due_ms;
    m->first = m->last = started;
    size_t j;
    for (j = i + 1; j < c->n; j++) {
        const ls_event *e = &c->ev[j];
        if (is_terminal(e->type)) break;
        if (event_kind(e->type) == 0 || !in_scope(c, e)) continue; /* not a command of ours */
        if ((e->type != LS_EV_TIMER_FIRED && e->type != LS_EV_TIMER_CANCELLED) ||
            !same_name(e, started->name, started->name_len))
            return corrupt_record(c, err, started, e, "is pending");
        m->state = e->type == LS_EV_TIMER_FIRED ? LS_REPLAY_DONE : LS_REPLAY_CANCELLED;
        m->due_ms = 0;
        m->last = e;
        j++;
        break;
    }
    c->pos = j;
    return LS_OK;
}

static ls_rc next_signal(ls_replay *c, const char *name, size_t len, ls_replay_match *m,
                         ls_err *err)
{
    if (ls_replay_take_signal(c, name, len, UINT64_MAX, m) == LS_OK) return LS_OK;
    size_t k = next_command(c, c->pos);
    quoted q1, q2;
    char d[DESC_MAX];
    if (k < c->n) {
        fail(c, LS_REPLAY_ENONDET,
             "non-determinism at command %llu: history has %s, the workflow waits for signal "
             "\"%s\", which history never received",
             ull(c->commands + 1), describe(&q1, d, sizeof d, &c->ev[k]), quote(&q2, name, len));
        return failed_again(c, err);
    }
    if (ended(c)) {
        fail(c, LS_REPLAY_ENONDET,
             "non-determinism at command %llu: history ends with %s, the workflow waits for "
             "signal \"%s\"",
             ull(c->commands + 1), ls_event_type_name(c->closed->type), quote(&q2, name, len));
        return failed_again(c, err);
    }
    return LS_ENOTFOUND;
}

ls_rc ls_replay_next(ls_replay *c, ls_cmd_kind kind, const char *name, size_t name_len,
                     ls_replay_match *m, ls_err *err)
{
    assert(c != NULL && m != NULL && (name != NULL || name_len == 0));
    assert(kind >= LS_CMD_STEP && kind <= LS_CMD_CHILD);
    if (c->failed) return failed_again(c, err);
    if (kind == LS_CMD_SIGNAL) return next_signal(c, name, name_len, m, err);

    quoted q1, q2;
    char d[DESC_MAX];
    size_t i = next_command(c, c->pos);
    c->pos = i;
    if (i == c->n) {
        if (!ended(c)) return LS_ENOTFOUND;
        fail(c, LS_REPLAY_ENONDET,
             "non-determinism at command %llu: history ends with %s, the workflow asked for %s "
             "\"%s\"",
             ull(c->commands + 1), ls_event_type_name(c->closed->type), ls_cmd_kind_name(kind),
             quote(&q2, name, name_len));
        return failed_again(c, err);
    }

    const ls_event *e = &c->ev[i];
    if (event_kind(e->type) != kind || !same_name(e, name, name_len)) {
        fail(c, LS_REPLAY_ENONDET,
             "non-determinism at command %llu: history has %s, the workflow asked for %s \"%s\"",
             ull(c->commands + 1), describe(&q1, d, sizeof d, e), ls_cmd_kind_name(kind),
             quote(&q2, name, name_len));
        return failed_again(c, err);
    }

    memset(m, 0, sizeof *m);
    ls_rc rc;
    switch (kind) {
    case LS_CMD_STEP: rc = read_step(c, i, m, err); break;
    case LS_CMD_TIMER: rc = read_timer(c, i, m, err); break;
    default:
        m->state = LS_REPLAY_DONE;
        m->first = m->last = e;
        c->pos = i + 1;
        rc = LS_OK;
        break;
    }
    if (rc != LS_OK) return rc;
    m->command = ++c->commands;
    return LS_OK;
}

ls_rc ls_replay_finish(ls_replay *c, ls_err *err)
{
    assert(c != NULL);
    if (c->failed) return failed_again(c, err);
    size_t k = next_command(c, c->pos);
    if (k == c->n) return LS_OK;
    quoted q;
    char d[DESC_MAX];
    fail(c, LS_REPLAY_ENONDET,
         "non-determinism at command %llu: history has %s, the workflow ended without it",
         ull(c->commands + 1), describe(&q, d, sizeof d, &c->ev[k]));
    return failed_again(c, err);
}

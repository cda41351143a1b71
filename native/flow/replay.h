/* SPDX-License-Identifier: MIT
 * Deterministic replay (internal to ls_flow): matches the commands a
 * workflow issues, in order, against the records its history holds, and
 * hands back each recorded outcome, "new" when history has no more, or a
 * non-determinism error when the workflow asks for something else.
 *
 * Commands and their records (events of one record are consecutive in seq
 * order, apart from the non-command events listed below):
 *  - step NAME: StepStarted/StepFailed events of NAME, one or more attempts,
 *    ended by StepCompleted (DONE) or a StepFailed with LS_EVF_FATAL
 *    (FAILED). StepStarted is optional before an attempt (the engine may
 *    skip writing it). Attempts are >= 1 and never decrease; a StepStarted
 *    after a StepFailed has a larger attempt. A record cut off by the end of
 *    history is INFLIGHT (last event StepStarted: the attempt was running
 *    at a crash; re-run it) or BACKOFF (last event a retryable StepFailed:
 *    the next attempt, attempt + 1, is due at due_ms). Retry backoff is not
 *    a timer: it lives in StepFailed.due_ms.
 *  - timer NAME: TimerStarted of NAME, then TimerFired of NAME (DONE),
 *    TimerCancelled of NAME (CANCELLED: a signal wait's timer that a signal
 *    beat, or a wait a cancellation ended) or nothing yet (PENDING, due at
 *    the TimerStarted's due_ms).
 *  - side effect KIND (ctx:now/random/uuid): one SideEffectRecorded whose
 *    name is KIND (DONE; the value is its payload).
 *  - child ID: one ChildStarted named by the child run's id. Its end is a
 *    ChildCompleted/ChildFailed of that name, a non-command event that
 *    arrives later, anywhere (ls_replay_find_child).
 * Names compare byte for byte; the engine chooses the timer name (a name
 * derived from the duration makes a changed duration non-deterministic,
 * an empty name does not).
 *
 * Non-command events are never matched against commands:
 *  - WorkflowStarted must be event 1 and only there (ls_replay_started).
 *  - WorkflowCompleted/Failed/Cancelled/Terminated end the run, at most one,
 *    and no command event may follow (ls_replay_closed).
 *  - SignalReceived events are buffered signals anywhere in history. A
 *    signal wait (LS_CMD_SIGNAL NAME) consumes the earliest unconsumed
 *    SignalReceived of NAME, wherever it is, and does not count as a
 *    command (it has no record of its own). Since waits consume signals of
 *    one name in seq order, the k-th wait on NAME always gets the k-th
 *    signal of NAME, in the first run and in every replay. A wait with a
 *    timeout is a timer command too (its TimerCancelled or TimerFired
 *    records whether a signal or the timeout won).
 *  - CancelRequested events may appear anywhere, also inside a record;
 *    the engine decides where a cancellation is delivered from their seq
 *    (ls_replay_cancel, ls_replay_peek).
 *
 * Errors of ls_replay_next and ls_replay_finish are sticky: once one is
 * returned the cursor returns it again. Only LS_REPLAY_ENONDET means
 * non-determinism (arguments are checked with assert); LS_ECORRUPT means a
 * history that no engine run can have written.
 */
#ifndef LS_FLOW_REPLAY_H
#define LS_FLOW_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "lodestone/ls_err.h"

/* The code of a non-determinism failure. */
#define LS_REPLAY_ENONDET LS_ENONDET

/* Command kinds the workflow issues. */
typedef enum {
    LS_CMD_STEP = 1,
    LS_CMD_TIMER = 2,
    LS_CMD_SIDE_EFFECT = 3,
    LS_CMD_SIGNAL = 4, /* wait for a signal; see above */
    LS_CMD_CHILD = 5   /* start a child workflow: one ChildStarted named by the child's id */
} ls_cmd_kind;

/* Outcome of a replayed command. */
typedef enum {
    LS_REPLAY_DONE = 1,  /* step completed, timer fired, side effect or signal value */
    LS_REPLAY_FAILED,    /* step failed for good: last->error */
    LS_REPLAY_INFLIGHT,  /* step attempt `attempt` started, no outcome: run it again */
    LS_REPLAY_BACKOFF,   /* step attempt `attempt` failed (last->error); retry at due_ms */
    LS_REPLAY_PENDING,   /* timer started, not fired: fires at due_ms */
    LS_REPLAY_CANCELLED, /* timer ended unfired (TimerCancelled): a signal or a cancel won */
    LS_REPLAY_PAUSED     /* step attempt `attempt` failed, attempts used up: paused */
} ls_replay_state;

typedef struct {
    ls_replay_state state;
    uint64_t command;      /* 1-based index of the command (signal waits: 0) */
    uint32_t attempt;      /* step: attempt of the last event; otherwise 0 */
    int64_t due_ms;        /* BACKOFF: next attempt; PENDING: fire time; else 0 */
    const ls_event *first; /* first event of the record */
    const ls_event *last;  /* event that decided the state; payload/error are here */
} ls_replay_match;

/* A cursor over one run's history. Fill it with ls_replay_init; fields are
 * private. */
typedef struct {
    const ls_event *ev; /* borrowed */
    size_t n;
    size_t pos;             /* next event to examine for a command record */
    uint64_t commands;      /* records matched so far */
    unsigned char *used;    /* consumed-signal bitmap by event index, or NULL */
    const ls_event *closed; /* terminal event, or NULL */
    const ls_event *cancel; /* first CancelRequested, or NULL */
    const char *scope;      /* branch prefix of the commands matched ("" at the root) */
    size_t scope_len;
    int shared_used; /* used belongs to the root cursor */
    ls_rc failed;    /* sticky error, LS_OK when none */
    ls_err ferr;
} ls_replay;

/* Starts a cursor over n events in seq order (events[i].seq == i + 1). The
 * events are borrowed until ls_replay_free: keep them (and the values their
 * strings point into) unchanged. Allocates once, only when the history
 * holds signals. LS_ECORRUPT when the seqs are not 1..n, event 1 is not
 * WorkflowStarted (or it appears again), or a terminal event is repeated or
 * followed by a command event; LS_ENOMEM. On failure the cursor needs no
 * ls_replay_free (calling it is harmless). */
ls_rc ls_replay_init(ls_replay *c, const ls_event *events, size_t n, ls_err *err);

/* Releases the cursor's allocation. c may be NULL. */
void ls_replay_free(ls_replay *c);

/* Matches the workflow's next command (kind, name of name_len bytes; name
 * may be NULL when name_len is 0) against history. Returns
 *  - LS_OK with *m filled (events borrowed as for ls_replay_init);
 *  - LS_ENOTFOUND (err untouched) when history holds no record for it: the
 *    command is new and the engine must execute it and append its events
 *    (for a signal wait: no signal is buffered, suspend until one arrives).
 *    Every later command is new too;
 *  - LS_REPLAY_ENONDET with a message naming both sides, e.g.
 *    non-determinism at command 3: history has step "charge", the workflow
 *    asked for step "ship"
 *    when history holds a different command there, a run that completed or
 *    failed has no more commands, or a signal wait finds no signal although
 *    history shows the run went on past it;
 *  - LS_ECORRUPT when the record is malformed (see above).
 * Never allocates. */
ls_rc ls_replay_next(ls_replay *c, ls_cmd_kind kind, const char *name, size_t name_len,
                     ls_replay_match *m, ls_err *err);

/* Called when the workflow's code returns. LS_REPLAY_ENONDET ("history has
 * step "ship", the workflow ended without it") when history holds command
 * records not yet matched; a sticky error again; LS_OK otherwise. */
ls_rc ls_replay_finish(ls_replay *c, ls_err *err);

/* The WorkflowStarted event (its payload is the input). Never NULL after a
 * successful init. */
const ls_event *ls_replay_started(const ls_replay *c);

/* The terminal event (completed, failed, cancelled, terminated) or NULL. */
const ls_event *ls_replay_closed(const ls_replay *c);

/* Parallel branches (ctx:all). A command issued in a branch is stored
 * under a name prefixed with the branch's scope, one "[SECTION.BRANCH]"
 * token per level of nesting ("[1.2]charge", "[1.2][1.1]"); a cursor
 * matches only the command records of its scope, in their order, and skips
 * the others, so branches replay alike however they interleaved. */

/* Length of the scope prefix of a command name (0 at the root). */
size_t ls_replay_scope_len(const char *name, size_t len);

/* A cursor over root's events for the commands of scope (len bytes,
 * borrowed): it shares root's consumed-signal bitmap, so free it before
 * root. Never fails. */
void ls_replay_init_scope(ls_replay *c, const ls_replay *root, const char *scope, size_t len);

/* The first CancelRequested event, or NULL. */
const ls_event *ls_replay_cancel(const ls_replay *c);

/* The seq of the first event of the next command record (the one the next
 * ls_replay_next would match), or 0 when history holds no more (or the
 * cursor has failed). Does not move the cursor. */
uint64_t ls_replay_peek(const ls_replay *c);

/* Consumes the earliest unconsumed SignalReceived of name whose seq is
 * below `before` (UINT64_MAX: anywhere) into *m (state DONE). LS_ENOTFOUND
 * when there is none; never fails the cursor. */
ls_rc ls_replay_take_signal(ls_replay *c, const char *name, size_t len, uint64_t before,
                            ls_replay_match *m);

/* The end of child run `name` (ChildCompleted: DONE, ChildFailed: FAILED)
 * among the events below seq `before` (UINT64_MAX: anywhere), into *m.
 * LS_ENOTFOUND when it has not ended (as far as history knows). Pure
 * lookup: a child ends once. */
ls_rc ls_replay_find_child(const ls_replay *c, const char *name, size_t len, uint64_t before,
                           ls_replay_match *m);

/* Number of command records matched so far. */
uint64_t ls_replay_commands(const ls_replay *c);

/* Stable name of a command kind ("step", "timer", "side effect",
 * "signal"); static, never NULL. */
const char *ls_cmd_kind_name(ls_cmd_kind kind);

#endif

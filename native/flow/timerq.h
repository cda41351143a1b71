/* SPDX-License-Identifier: MIT
 * The in-memory side of durable timers (internal to native/flow/): a queue
 * of (due time, run id, timer seq) ordered by due time, then run id
 * (bytewise), then seq, so equal due times always come out in the same
 * order. The store holds the durable copy; on start the engine rebuilds
 * this queue from it.
 *
 * Costs: add, remove by key and pop are O(log n); peek and "next due in"
 * are O(1); lookup by key is O(1) expected. About 70 bytes per timer; memory is
 * kept when timers go (no shrinking).
 *
 * Thread-safety: none. One queue is used by one thread at a time; the
 * engine holds its own lock around every call.
 */
#ifndef LS_FLOW_TIMERQ_H
#define LS_FLOW_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_err.h"

#define LS_FLOW_RUN_ID_BYTES 16

typedef struct ls_flow_timerq ls_flow_timerq_t;

/* One timer: a copy, owned by the caller. */
typedef struct {
    int64_t due_ms; /* wall clock, ms since the epoch */
    uint8_t run_id[LS_FLOW_RUN_ID_BYTES];
    uint64_t seq; /* the timer's sequence number within its run */
} ls_flow_timer;

/* Creates an empty queue with room for cap timers before it grows (0 picks
 * a small default). On LS_OK *out is the queue: caller frees with
 * ls_flow_timerq_free. LS_ENOMEM otherwise (*out NULL). */
ls_rc ls_flow_timerq_new(ls_flow_timerq_t **out, size_t cap, ls_err *err);

/* Frees q and every timer in it. q may be NULL. */
void ls_flow_timerq_free(ls_flow_timerq_t *q);

/* Number of timers in q. */
size_t ls_flow_timerq_count(const ls_flow_timerq_t *q);

/* Adds a timer. LS_EEXIST when (run_id, seq) is already queued (the queue
 * is unchanged; remove it first to reschedule). LS_ENOMEM when growing
 * fails: the queue is unchanged and still valid. */
ls_rc ls_flow_timerq_add(ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                         uint64_t seq, int64_t due_ms, ls_err *err);

/* Removes the timer (run_id, seq). On LS_OK *due_ms (may be NULL) gets its
 * due time. LS_ENOTFOUND when it is not queued (err untouched). */
ls_rc ls_flow_timerq_remove(ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                            uint64_t seq, int64_t *due_ms);

/* Looks the timer up without removing it. LS_OK with *due_ms (may be NULL),
 * or LS_ENOTFOUND. */
ls_rc ls_flow_timerq_find(const ls_flow_timerq_t *q, const uint8_t run_id[LS_FLOW_RUN_ID_BYTES],
                          uint64_t seq, int64_t *due_ms);

/* Copies the first timer (due or not) into *t. LS_ENOTFOUND when empty. */
ls_rc ls_flow_timerq_peek(const ls_flow_timerq_t *q, ls_flow_timer *t);

/* Milliseconds from now_ms until the first timer is due, 0 if it already
 * is, for a scheduler's sleep. LS_ENOTFOUND when the queue is empty
 * (*in_ms untouched): sleep until woken. */
ls_rc ls_flow_timerq_next_due_in(const ls_flow_timerq_t *q, int64_t now_ms, int64_t *in_ms);

/* Removes the first timer into *t if it is due (due_ms <= now_ms).
 * LS_ENOTFOUND when nothing is due. */
ls_rc ls_flow_timerq_pop(ls_flow_timerq_t *q, int64_t now_ms, ls_flow_timer *t);

/* Removes up to max due timers, in order, into out[]. Returns how many; a
 * return of max means more may be due, so call again. */
size_t ls_flow_timerq_pop_due(ls_flow_timerq_t *q, int64_t now_ms, ls_flow_timer *out, size_t max);

/* Test hook: checks the heap order and the key index against each other.
 * LS_OK, or LS_ECORRUPT naming the first inconsistency. O(n). */
ls_rc ls_flow_timerq_check(const ls_flow_timerq_t *q, ls_err *err);

#endif

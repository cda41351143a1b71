/* SPDX-License-Identifier: MIT
 * Workflow history (internal to ls_flow): the typed events of a run, their
 * compact versioned binary value, the keys they are stored under, and the
 * run record. Pure codecs: no store access, no Lua, no crypto; payloads are
 * opaque bytes (the engine puts vault-sealed JSON there).
 *
 * Event value, version 3 (LS_EVENT_VERSION), 2 or 1, of one layout. The
 * version says how the payload was sealed (query.c): version 3's and 2's
 * are bound to every other field of the event, version 1's (what older
 * lodestoned wrote) to the run and seq alone. Every version 3 event has a
 * sealed payload, an event of a kind that holds none too (an empty
 * plaintext: the sealed value is a MAC over the event alone); versions 2
 * and 1 left it out of such events, which are not authenticated. A run
 * whose first event is of version 3 has every later event and inbox entry
 * of version 3 (query.c refuses another). Integers marked "varint" are
 * unsigned LEB128 (7 bits a byte, least significant group first, high bit
 * set on every byte but the last), canonical: at most 10 bytes, no
 * superfluous trailing 0x00 group, no bits past 64. Signed values are
 * zigzag-mapped first ((v << 1) ^ (v >> 63)). Layout:
 *
 *   u8      version        3, 2 or 1
 *   u8      type           ls_event_type (1..LS_EV_LAST)
 *   u8      flags          LS_EVF_* bits; unknown bits are rejected
 *   varint  seq            >= 1
 *   varint  time_ms        zigzag
 *   varint  due_ms         zigzag (0 when unused)
 *   varint  attempt        <= UINT32_MAX
 *   varint  name_len,    then name_len bytes
 *   varint  payload_len, then payload_len bytes
 *   varint  error_len,   then error_len bytes
 *   (nothing after: trailing bytes are rejected)
 *
 * Keys: LS_NS_HISTORY, the 16 bytes of the run id, seq as 8 big-endian
 * bytes (ls_key_u64). One run's events are contiguous and in seq order.
 */
#ifndef LS_FLOW_HISTORY_H
#define LS_FLOW_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_err.h"
#include "lodestone/ls_id.h"

/* ---- events ---- */

/* Event types. Values are stored: only ever append, never renumber. */
typedef enum {
    LS_EV_WORKFLOW_STARTED = 1,     /* payload: input */
    LS_EV_STEP_STARTED = 2,         /* name, attempt */
    LS_EV_STEP_COMPLETED = 3,       /* name, attempt, payload: result */
    LS_EV_STEP_FAILED = 4,          /* name, attempt, error; flags, due_ms */
    LS_EV_TIMER_STARTED = 5,        /* name, due_ms: when it fires */
    LS_EV_TIMER_FIRED = 6,          /* name (the TimerStarted's) */
    LS_EV_SIDE_EFFECT = 7,          /* SideEffectRecorded: name = kind, payload: value */
    LS_EV_SIGNAL_RECEIVED = 8,      /* name, payload */
    LS_EV_WORKFLOW_COMPLETED = 9,   /* payload: output */
    LS_EV_WORKFLOW_FAILED = 10,     /* error (message and traceback) */
    LS_EV_WORKFLOW_CANCELLED = 11,  /* name: who, error: reason, may be empty */
    LS_EV_WORKFLOW_TERMINATED = 12, /* name: who, error: reason, may be empty */
    LS_EV_TIMER_CANCELLED = 13,     /* name (the TimerStarted's): ended unfired */
    LS_EV_CANCEL_REQUESTED = 14,    /* name: who, error: reason, may be empty */
    LS_EV_CHILD_STARTED = 15,       /* name: the child run's id; payload {"type"}; flags */
    LS_EV_CHILD_COMPLETED = 16,     /* name: the child run's id; payload: its output */
    LS_EV_CHILD_FAILED = 17, /* name: the child run's id; error: why (failed, cancelled...) */
    LS_EV_RESUMED = 18       /* a paused run was resumed; name: who */
} ls_event_type;

#define LS_EV_LAST LS_EV_RESUMED

/* Event flags. */
#define LS_EVF_FATAL    0x01u /* StepFailed: final (non-retryable or attempts exhausted) */
#define LS_EVF_DETACHED 0x02u /* ChildStarted: the child outlives its parent */
#define LS_EVF_PAUSED   0x04u /* StepFailed: attempts used up; the run waits for a resume */
#define LS_EVF_KNOWN    0x07u /* every flag this build knows */

#define LS_EVENT_VERSION 3 /* written (1 and 2 are still read, and written on request) */

/* One event. Strings are byte strings with a length (they may hold NULs
 * and are not NUL-terminated); a NULL pointer is allowed when the length
 * is 0. */
typedef struct {
    unsigned version; /* 1 to 3 once decoded; 0 encodes as LS_EVENT_VERSION */
    ls_event_type type;
    uint32_t flags;   /* LS_EVF_* */
    uint64_t seq;     /* 1-based, dense per run */
    int64_t time_ms;  /* when the event was written */
    int64_t due_ms;   /* TimerStarted: fire time; retryable StepFailed: next attempt */
    uint32_t attempt; /* step events: 1-based attempt; 0 otherwise */
    const char *name; /* step, timer, side-effect kind or signal name */
    size_t name_len;
    const unsigned char *payload; /* opaque */
    size_t payload_len;
    const char *error; /* failure text */
    size_t error_len;
} ls_event;

/* Stable API name of a type ("step_completed"); "unknown" for a value this
 * build does not know. Static, never NULL. */
const char *ls_event_type_name(ls_event_type t);

/* Type for an API name (len bytes). LS_ENOTFOUND (err untouched) when no
 * type has that name. */
ls_rc ls_event_type_parse(const char *name, size_t len, ls_event_type *out);

/* Encodes ev into out, replacing its contents (out is caller-owned and
 * reused; one allocation at most, none once it has grown), as version
 * ev->version (0: LS_EVENT_VERSION). LS_EINVAL for an unknown version,
 * type or flag, seq 0, or a NULL string with a non-zero length;
 * LS_ENOMEM. On failure out is left as it was. */
ls_rc ls_event_encode(const ls_event *ev, ls_buf *out, ls_err *err);

/* Decodes len bytes of value into *ev (ev->version: the value's). The
 * strings of *ev are borrowed from value (borrowed until value changes or
 * is freed). Never allocates. LS_EFORMAT for a version this build does
 * not know (not 1 to 3); LS_ECORRUPT naming
 * what was wrong (truncated, overlong or overflowing varint, unknown type
 * or flag, seq 0, attempt out of range, a length past the end, trailing
 * bytes). On failure *ev is unspecified. */
ls_rc ls_event_decode(const void *value, size_t len, ls_event *ev, ls_err *err);

/* ---- keys ---- */

#define LS_HISTORY_PREFIX_LEN (1 + LS_ID_BYTES)     /* namespace + run id */
#define LS_HISTORY_KEY_LEN    (1 + LS_ID_BYTES + 8) /* + seq */

/* The key of event seq of run, replacing the contents of k. LS_ENOMEM with
 * k left as it was. */
ls_rc ls_history_key(ls_buf *k, const ls_id *run, uint64_t seq, ls_err *err);

/* The prefix of every history key of run, replacing the contents of k: a
 * prefix scan (ls_store_iter_prefix) lists the run's events in seq order.
 * LS_ENOMEM with k left as it was. */
ls_rc ls_history_prefix(ls_buf *k, const ls_id *run, ls_err *err);

/* Recovers run id and seq from a history key; either output may be NULL.
 * LS_ECORRUPT when the key is not a history key of the right length. */
ls_rc ls_history_key_parse(const void *key, size_t klen, ls_id *run, uint64_t *seq, ls_err *err);

/* ---- run records ---- */

/* Run status. Values are stored: only ever append. */
typedef enum {
    LS_RUN_RUNNING = 1,
    LS_RUN_COMPLETED = 2,
    LS_RUN_FAILED = 3,
    LS_RUN_CANCELLED = 4,
    LS_RUN_TERMINATED = 5
} ls_run_status;

#define LS_RUN_STATUS_LAST LS_RUN_TERMINATED
#define LS_RUN_VERSION     2

/* The record stored under LS_NS_RUN + run id. Value, version 1, with the
 * varints of the event layout:
 *   u8 version 1, u8 status, varint created_ms (zigzag), varint updated_ms
 *   (zigzag), varint last_seq, varint steps_completed (u32), varint
 *   attempts_failed (u32), varint type_len, then type_len bytes of type,
 *   varint name_len, then name_len bytes of name. Nothing after.
 * Version 2 (written now) adds varint version_len, then version_len bytes
 * of version (the workflow source the run is pinned to). */
typedef struct {
    ls_run_status status;
    int64_t created_ms;
    int64_t updated_ms;
    uint64_t last_seq;        /* seq of the run's newest event */
    uint32_t steps_completed; /* StepCompleted events so far */
    uint32_t attempts_failed; /* StepFailed events so far */
    const char *type;         /* workflow type name */
    size_t type_len;
    const char *name;    /* the run's id as users see it (given at start, or the */
    size_t name_len;     /* text form of the internal id) */
    const char *version; /* the workflow source's version it is pinned to ("": none) */
    size_t version_len;
} ls_run_record;

/* API name of a status ("running"); "unknown" otherwise. Static, never NULL. */
const char *ls_run_status_name(ls_run_status s);

/* Status for an API name; LS_ENOTFOUND (err untouched) when none has it. */
ls_rc ls_run_status_parse(const char *name, size_t len, ls_run_status *out);

/* Encode and decode a run record, with the rules of ls_event_encode and
 * ls_event_decode (type borrowed from value). */
ls_rc ls_run_encode(const ls_run_record *r, ls_buf *out, ls_err *err);
ls_rc ls_run_decode(const void *value, size_t len, ls_run_record *r, ls_err *err);

/* The key of run's record (LS_NS_RUN + id), replacing the contents of k. */
ls_rc ls_run_key(ls_buf *k, const ls_id *run, ls_err *err);

#endif

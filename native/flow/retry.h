/* SPDX-License-Identifier: MIT
 * Retry policies of workflow steps (internal to native/flow/), with
 * Temporal's semantics under Lua-friendly names. Pure computation: no
 * clock, no I/O; randomness comes from a caller-supplied source (or
 * libsodium), so a schedule can be reproduced exactly in tests.
 *
 * Fields and defaults (as a workflow file writes them):
 *   initial_interval  delay after the first failure        default 1s
 *   backoff           growth factor per attempt, >= 1      default 2.0
 *   max_interval      cap on the delay, >= initial         default 100 x initial
 *   max_attempts      attempts in all, 0 = no limit        default 0 (Temporal's)
 *   jitter            fraction 0..1 of random spread       default 0.2
 *   non_retryable     error codes that stop retrying       default none
 *
 * Delay after attempt n (1-based) failed:
 *   base  = min(initial * backoff^(n-1), max_interval), rounded to the ms
 *   delay = base + uniform integer offset in [-floor(base*jitter), +floor(base*jitter)]
 * so 0 <= delay <= max_interval * (1 + jitter) for every n, however large.
 * The default jitter is not 0 so that the runs failing on one outage do not
 * all come back in the same millisecond; write `jitter = 0` for an exact
 * schedule.
 */
#ifndef LS_FLOW_RETRY_H
#define LS_FLOW_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "ls_json.h"
#include "lodestone/ls_err.h"

#define LS_FLOW_RETRY_DEFAULT_INITIAL_MS INT64_C(1000)
#define LS_FLOW_RETRY_DEFAULT_BACKOFF    2.0
#define LS_FLOW_RETRY_DEFAULT_MAX_FACTOR 100 /* max_interval = 100 x initial */
#define LS_FLOW_RETRY_DEFAULT_JITTER     0.2
/* Longest interval accepted: a century, as ls_duration_parse allows. */
#define LS_FLOW_RETRY_MAX_MS (INT64_C(100) * 365 * 24 * 3600 * 1000)

/* Bits of ls_flow_retry.set: which fields were given explicitly (in the
 * parsed table, its base, or a merged policy) rather than defaulted or
 * derived. */
enum {
    LS_FLOW_RETRY_SET_INITIAL = 1u << 0,
    LS_FLOW_RETRY_SET_BACKOFF = 1u << 1,
    LS_FLOW_RETRY_SET_MAX = 1u << 2,
    LS_FLOW_RETRY_SET_ATTEMPTS = 1u << 3,
    LS_FLOW_RETRY_SET_JITTER = 1u << 4,
    LS_FLOW_RETRY_SET_NON_RETRYABLE = 1u << 5,
};

/* A complete, valid policy. Initialise with ls_flow_retry_init (or a parse
 * or merge); release with ls_flow_retry_free. Plain assignment would share
 * non_retryable: use ls_flow_retry_copy. */
typedef struct {
    int64_t initial_ms;       /* > 0 */
    double backoff;           /* finite, >= 1 */
    int64_t max_ms;           /* >= initial_ms */
    uint32_t max_attempts;    /* 0 = unlimited */
    double jitter;            /* 0..1 */
    char *non_retryable;      /* codes, each NUL-terminated, packed; NULL when none */
    size_t non_retryable_len; /* bytes in non_retryable */
    unsigned set;             /* LS_FLOW_RETRY_SET_* */
} ls_flow_retry;

/* Random source for jitter: next() returns 64 uniformly random bits. A NULL
 * source means libsodium's randombytes_buf. The offset is bits modulo the
 * span (at most about 6e12), a bias below 1e-6. */
typedef struct {
    uint64_t (*next)(void *ud);
    void *ud;
} ls_flow_rand;

/* What ls_flow_retry_next decided. AGAIN is 0, so `if (v)` means "give up". */
typedef enum {
    LS_FLOW_RETRY_AGAIN = 0,     /* retry after *delay_ms */
    LS_FLOW_RETRY_FATAL,         /* the error was marked fatal (workflow.fatal) */
    LS_FLOW_RETRY_NON_RETRYABLE, /* its code is in non_retryable */
    LS_FLOW_RETRY_EXHAUSTED      /* max_attempts attempts have failed */
} ls_flow_retry_verdict;

/* Fills p with the defaults above (set = 0). Cannot fail. */
void ls_flow_retry_init(ls_flow_retry *p);

/* Releases p's list and leaves p as ls_flow_retry_init would. p may be NULL. */
void ls_flow_retry_free(ls_flow_retry *p);

/* Makes dst an independent copy of src. dst is overwritten, not freed
 * first. On failure (LS_ENOMEM) dst is left as ls_flow_retry_init makes it. */
ls_rc ls_flow_retry_copy(ls_flow_retry *dst, const ls_flow_retry *src, ls_err *err);

/* Parses a retry table as the Lua binding hands it over: a JSON object with
 * any of the fields above. Durations are seconds (a number, fractions
 * allowed) or duration strings ("250ms", "1m30s"); max_attempts is a
 * non-negative integer (an integral real such as 5.0 is accepted, as Lua 5.1
 * numbers are doubles); non_retryable is an array of non-empty strings (an
 * empty object counts as an empty array, for an empty Lua table). Unknown
 * fields are errors, so a typo never silently means "default".
 *
 * Fields not in obj come from base (base NULL: the defaults). This is how
 * the engine builds a step's policy: parse the step's table on the
 * workflow's parsed policy, so that the result is validated as a whole
 * (a step's max_interval of 500ms is fine under a workflow's 100ms
 * initial_interval, refused under 1s). max_interval,
 * when neither obj nor base set it, is 100 x the resulting initial_interval
 * (capped at LS_FLOW_RETRY_MAX_MS). The result must be valid as a whole:
 * max_interval >= initial_interval.
 *
 * name prefixes every message ("retry" when NULL), e.g.
 * "retry.backoff: must be at least 1, got 0.5". On success *out is a new
 * policy (caller frees with ls_flow_retry_free); on failure *out is as
 * ls_flow_retry_init leaves it. LS_EINVAL for bad input, LS_ENOMEM. */
ls_rc ls_flow_retry_parse(const json_t *obj, const ls_flow_retry *base, const char *name,
                          ls_flow_retry *out, ls_err *err);

/* Per-step overrides on top of per-workflow defaults, for policies that
 * were parsed separately (each valid alone): every field set in
 * over (see `set`) wins, the others come from base; non_retryable is
 * replaced as a whole, not merged. max_interval is re-derived from the new
 * initial_interval when neither set it. Validates the result like
 * ls_flow_retry_parse (messages prefixed with name, "retry" when NULL).
 * out must not alias base or over; caller frees with ls_flow_retry_free. */
ls_rc ls_flow_retry_merge(const ls_flow_retry *base, const ls_flow_retry *over, const char *name,
                          ls_flow_retry *out, ls_err *err);

/* Decides what follows a failed attempt. attempt is the 1-based number of
 * the attempt that just failed (>= 1, asserted). error_code is the failure's
 * code or NULL when it has none; fatal says it was raised with
 * workflow.fatal. rnd may be NULL (libsodium). Checks, in order: fatal,
 * non_retryable (exact, case-sensitive match), max_attempts. On AGAIN
 * *delay_ms holds the delay; otherwise *delay_ms is set to -1. */
ls_flow_retry_verdict ls_flow_retry_next(const ls_flow_retry *p, uint64_t attempt,
                                         const char *error_code, int fatal, const ls_flow_rand *rnd,
                                         int64_t *delay_ms);

/* The delay before jitter for the attempt that just failed:
 * min(initial * backoff^(attempt-1), max_interval), to the nearest ms. */
int64_t ls_flow_retry_base_delay(const ls_flow_retry *p, uint64_t attempt);

/* Whether code is in p's non_retryable list (code NULL: no). */
int ls_flow_retry_is_non_retryable(const ls_flow_retry *p, const char *code);

/* "again", "fatal", "non_retryable" or "exhausted"; never NULL. For history
 * events and logs. */
const char *ls_flow_retry_verdict_name(ls_flow_retry_verdict v);

#endif

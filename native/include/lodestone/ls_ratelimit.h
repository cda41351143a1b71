/* SPDX-License-Identifier: MIT
 * Rate limiting with GCRA (the generic cell rate algorithm, a token bucket
 * kept as one "theoretical arrival time" per key) over a fixed-size table in
 * a shared memory file, so that every process and thread that opens the
 * same file (lighttpd's server.max-worker processes) shares one budget per
 * key.
 *
 * Conventions: see ls_err.h. A denied request is not an error: ls_rl_take
 * returns LS_OK and says so in ls_rl_result.allowed.
 *
 * Threads and processes: a handle may be used by several threads at once;
 * any number of processes may open the same file. Time comes from the
 * monotonic clock, which all processes on a machine share.
 */
#ifndef LODESTONE_RATELIMIT_H
#define LODESTONE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_clock.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Layout version written into the table's header by this build. */
#define LS_RL_LAYOUT 1

/* Slots in a table when ls_rl_opts.capacity is 0, and the bounds of it. */
#define LS_RL_DEFAULT_CAPACITY 65536
#define LS_RL_MIN_CAPACITY     8
#define LS_RL_MAX_CAPACITY     ((size_t)1 << 26)

typedef struct ls_rl ls_rl_t;

typedef struct {
    size_t capacity; /* key slots; 0 = LS_RL_DEFAULT_CAPACITY; rounded up to
                        a power of two, at least LS_RL_MIN_CAPACITY */
    unsigned mode;   /* permission bits of a file created now; 0 = 0600 */
} ls_rl_opts;

/* A limit: `rate` requests per `per_ms` milliseconds on average, and at most
 * `burst` at once (the size of the bucket). Build one with ls_rl_limit_parse
 * or fill it in; ls_rl_take checks it either way. */
typedef struct {
    int64_t rate;   /* > 0 */
    int64_t per_ms; /* > 0 */
    int64_t burst;  /* >= 1 */
} ls_rl_limit;

/* What ls_rl_take decided, with the figures for RateLimit-* headers. */
typedef struct {
    int allowed;            /* 1 allowed (cost taken), 0 denied (nothing taken) */
    int64_t limit;          /* the burst: RateLimit-Limit */
    int64_t remaining;      /* requests of cost 1 that would be allowed right
                               after this one: RateLimit-Remaining */
    int64_t retry_after_ms; /* denied: wait this long, then the same request
                               fits (rounded up); 0 when allowed */
    int64_t reset_ms;       /* until the bucket is full again (rounded up):
                               RateLimit-Reset */
} ls_rl_result;

typedef struct {
    size_t capacity;    /* slots in the table */
    size_t used;        /* slots that have ever held a key */
    uint64_t evictions; /* keys with budget in use pushed out by new keys */
    uint64_t recovered; /* locks taken over from a process that died holding them */
} ls_rl_stats;

/* ---- limits ---- */

/* Builds *out from rate per duration text (per, per_len: "1s", "1m",
 * "250ms", see ls_duration.h) and burst; burst 0 means "same as rate".
 * LS_EINVAL naming the field when rate <= 0, burst < 0, the duration does
 * not parse or is 0, or the figures are out of range (more than one request
 * per nanosecond, or a bucket that takes over 100 years to refill). */
LS_API ls_rc ls_rl_limit_parse(ls_rl_limit *out, int64_t rate, const char *per, size_t per_len,
                               int64_t burst, ls_err *err);

/* Checks a limit filled in by hand: LS_EINVAL naming the field, as above. */
LS_API ls_rc ls_rl_limit_check(const ls_rl_limit *lim, ls_err *err);

/* ---- tables ---- */

/* Opens the table in file path, creating it (fully initialised, then
 * linked into place, so no process ever sees half a table) when it does
 * not exist. opts may be NULL (defaults). Every process sharing a budget
 * must open the same path with the same capacity. Creating needs write
 * access to the directory (a temporary file beside path is linked to
 * path), and works on tmpfs (/dev/shm) or any local file system. Errors:
 * LS_EFORMAT (the
 * message names path) when the file is not a table of this layout, holds a
 * different capacity, or is truncated; LS_EPERM when it is a symbolic
 * link, belongs to another user than us or root, or others may write it, and
 * when we may not open it; LS_EINVAL for a capacity over
 * LS_RL_MAX_CAPACITY; LS_EIO for system failures (e.g. no space to
 * create it). On success *out is a handle; caller frees with ls_rl_close. */
LS_API ls_rc ls_rl_open(ls_rl_t **out, const char *path, const ls_rl_opts *opts, ls_err *err);

/* Unmaps the table and frees the handle; the file and its state stay.
 * rl may be NULL. */
LS_API void ls_rl_close(ls_rl_t *rl);

/* Takes cost (usually 1; 0 only reads the state) from key's budget under
 * lim, at the time of clock's monotonic reading (clock NULL: the system
 * clock). Fills *out and returns LS_OK whether allowed or denied. A key the
 * table has not seen (or has forgotten) starts with a full bucket. Keys are
 * byte strings (klen may be 0); different limits must use different keys
 * (e.g. prefixed with the limit's name). LS_EINVAL for a bad limit or a
 * cost that is negative or above the burst (it could never be allowed). */
LS_API ls_rc ls_rl_take(ls_rl_t *rl, const void *key, size_t klen, const ls_rl_limit *lim,
                        int64_t cost, const ls_clock *clock, ls_rl_result *out, ls_err *err);

/* A key as the table knows it: its hash under the table's own secret
 * hash key. A caller that takes from the same key many times (the rate
 * limit of a cached token's subject) can hash it once with ls_rl_hash and
 * take with ls_rl_take_hash; the hash is only good for the handle that
 * made it. */
typedef struct {
    uint64_t h0, h1;
} ls_rl_key;

/* Hashes key (klen bytes; key may be NULL when klen is 0) for rl. */
LS_API void ls_rl_hash(const ls_rl_t *rl, const void *key, size_t klen, ls_rl_key *out);

/* ls_rl_take for a key hashed by ls_rl_hash with the same rl. */
LS_API ls_rc ls_rl_take_hash(ls_rl_t *rl, const ls_rl_key *key, const ls_rl_limit *lim,
                             int64_t cost, const ls_clock *clock, ls_rl_result *out, ls_err *err);

/* Counters of the table, shared by every process that has it open. */
LS_API void ls_rl_stats_get(const ls_rl_t *rl, ls_rl_stats *out);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT
 * Fetching an identity provider's published keys (a JWT authenticator's
 * `jwks_url`) off the request path (internal to ls_policy). A fetcher owns
 * one URL and one cache file. A background thread GETs the URL with
 * libcurl, checks that the body is a JWK Set with 1 to max_keys keys, at
 * least one of them usable (the others are skipped: see ls_jwks_add_json),
 * and replaces the cache file atomically; the engine reads the keys from
 * that file through its ordinary file watch, so a restart works while the
 * provider is down and every process on the machine shares the result.
 * Only jwks_fetch.c includes <curl/curl.h>.
 *
 * Schedule: after a success, the next fetch is due after the response's
 * Cache-Control max-age clamped to [min_refresh_ms, max_refresh_ms], or
 * refresh_ms when it has none. A cache file younger than that interval
 * (written by an earlier run, or by the fetcher of another process sharing
 * it, such as another lighttpd worker) postpones a scheduled fetch until it
 * ages, so N workers do not fetch N times. After a failure the old file stays and the fetch is
 * retried after retry_min_ms, doubling up to retry_max_ms. A refetch asked
 * for by the engine (a token whose kid no key has) happens at once, but at
 * most once per kid_refetch_ms: asks in between wait for the end of that
 * interval and are then served together by one fetch. An ask is also
 * answered by a fetch that was due anyway or was running when it came;
 * those do not count against the interval (so the keys asked for during
 * the very first fetch do not hold back a rotation a few seconds later).
 * And by a new copy of the cache that another fetcher sharing it wrote
 * (another worker that was asked too): one that appeared while this one
 * waited for the fetch lock, or less than 2 s before the ask, while the
 * engine may not have loaded it yet. So N workers that see one unknown kid
 * fetch once, not N times in turn. That copy counts as an install.
 *
 * Threads and processes: the handle belongs to one thread (the policy's);
 * only its fetch thread runs beside it. The thread is started by
 * ls_jwks_fetch_poll in the process that calls it, not at creation, so a
 * fetcher made before fork() works in the child: a child that finds the
 * parent's thread recorded starts its own and never touches the parent's.
 * The fetch thread blocks every signal. Once a thread has run, libcurl and
 * the code of this module stay mapped for the life of the process, so no
 * thread can outlive the code it runs. The thread reads the system clock,
 * never the policy's (tests move that one by hand).
 */
#ifndef LS_POLICY_JWKS_FETCH_H
#define LS_POLICY_JWKS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_err.h"

#define LS_JWKS_FETCH_REFRESH_MS     INT64_C(600000)   /* 10 min, without max-age */
#define LS_JWKS_FETCH_MIN_REFRESH_MS INT64_C(60000)    /* max-age clamp: 1 min.. */
#define LS_JWKS_FETCH_MAX_REFRESH_MS INT64_C(86400000) /* ..24 h */
#define LS_JWKS_FETCH_RETRY_MIN_MS   INT64_C(5000)     /* first retry after a failure */
#define LS_JWKS_FETCH_RETRY_MAX_MS   INT64_C(300000)   /* retries back off up to 5 min */
#define LS_JWKS_FETCH_KID_MS         INT64_C(60000)    /* one refetch on request per minute */
#define LS_JWKS_FETCH_CONNECT_MS     INT64_C(3000)
#define LS_JWKS_FETCH_TIMEOUT_MS     INT64_C(10000) /* the whole transfer */
#define LS_JWKS_FETCH_MAX_BODY       ((size_t)1 << 20)
#define LS_JWKS_FETCH_MAX_KEYS       64 /* keys in a set: see max_keys */
#define LS_JWKS_FETCH_MAX_REDIRS     3  /* followed only to https */

typedef struct ls_jwks_fetch ls_jwks_fetch_t;

/* Options; zero values mean the defaults above. */
typedef struct {
    int64_t refresh_ms;     /* between fetches when the response has no max-age */
    int64_t min_refresh_ms; /* max-age is clamped to [min_refresh_ms, max_refresh_ms] */
    int64_t max_refresh_ms;
    int64_t retry_min_ms;       /* backoff after failures: retry_min_ms doubling.. */
    int64_t retry_max_ms;       /* ..up to retry_max_ms */
    int64_t kid_refetch_ms;     /* at most one ls_jwks_fetch_request served per this */
    int64_t connect_timeout_ms; /* libcurl's connect timeout */
    int64_t timeout_ms;         /* libcurl's timeout for the whole transfer */
    size_t max_body;            /* a larger response fails */
    /* A JWK Set with more keys, usable or skipped, fails. Every lighttpd
     * worker parses an installed set again on its request path, and
     * checking a public key costs up to half a millisecond (P-384), also
     * when it then turns out unusable (a point not on its curve): 1 MiB of
     * P-521 keys (4,300) stalled each worker 1.4 s. Identity providers
     * publish a handful. */
    size_t max_keys;
} ls_jwks_fetch_opts;

/* What a fetcher did, for tests and metrics. */
typedef struct {
    uint64_t attempts; /* fetches started */
    uint64_t installs; /* cache files written */
    uint64_t failures; /* fetches that kept the old file */
    uint64_t requests; /* refetches asked for by ls_jwks_fetch_request and served */
    uint64_t shared;   /* of those, served by a copy another fetcher had just written */
} ls_jwks_fetch_stats;

/* Checks that url is one a fetcher accepts: https, or http to a loopback
 * host (127.0.0.0/8, [::1], localhost: keys must not cross a network in
 * clear text), with no user name or password in it (they would end up in
 * logs). LS_EINVAL with a message saying why; no I/O. */
ls_rc ls_jwks_fetch_check_url(const char *url, ls_err *err);

/* Creates a fetcher for url (checked as ls_jwks_fetch_check_url does) that
 * keeps the keys at cache_path, whose directory must exist. opts may be
 * NULL. Starts nothing: see ls_jwks_fetch_poll. Caller frees with
 * ls_jwks_fetch_free. */
ls_rc ls_jwks_fetch_new(ls_jwks_fetch_t **out, const char *url, const char *cache_path,
                        const ls_jwks_fetch_opts *opts, ls_err *err);

/* Stops the fetch thread (a transfer in progress is abandoned at once) and
 * joins it, then frees f. f may be NULL. In a forked child it frees only
 * memory: the parent's thread is not there to stop. */
void ls_jwks_fetch_free(ls_jwks_fetch_t *f);

/* Starts the fetch thread when none runs in this process (the first call,
 * or the first in a forked child), then reports the outcome of fetching:
 * LS_OK when the thread runs and no failure happened since the one whose
 * number is in *seen; otherwise the code and message of the latest failure
 * ("jwks_url: HTTP status 503; keeping the cached keys, next try in 5s
 * (https://...)"), reported once: *seen is updated. Also fails (LS_EIO)
 * when no thread can be started; the next call tries again. Costs a
 * getpid(): call it about once a second, not per request. */
ls_rc ls_jwks_fetch_poll(ls_jwks_fetch_t *f, uint64_t *seen, ls_err *err);

/* Number of cache files this fetcher has written, plus the copies another
 * fetcher wrote that answered an ask (see above), for noticing a new one
 * without stat(). An atomic load: cheap enough for every request. */
uint64_t ls_jwks_fetch_installs(const ls_jwks_fetch_t *f);

/* Asks for a refetch soon (the engine saw a kid no key has). seen is the
 * ls_jwks_fetch_installs count the caller's keys came from: an ask made
 * with keys older than the newest install is dropped, since those keys are
 * about to be replaced (a decision racing the install of a fetch must not
 * cost a second fetch). Never blocks on I/O; while one is pending it is an
 * atomic load, so a flood of unknown kids costs nothing more. Served as
 * the header comment says. */
void ls_jwks_fetch_request(ls_jwks_fetch_t *f, uint64_t seen);

/* Counters since creation. */
void ls_jwks_fetch_get_stats(ls_jwks_fetch_t *f, ls_jwks_fetch_stats *st);

#endif

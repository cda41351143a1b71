/* SPDX-License-Identifier: MIT
 * An HTTP/1.1 client (libcurl) for lodestoned's API on its unix socket,
 * for callers that must never wait long (mod_magnet scripts inside
 * lighttpd).
 *
 * Conventions (see ls_err.h): one handle holds at most one connection and
 * keeps it alive between requests. A request on a kept connection that the
 * daemon closed (found idle-closed before sending, or closed with no byte of
 * answer after sending) is sent once more on a fresh connection; give
 * requests that must not happen twice an idempotency key (a start's id).
 * Every request is bounded by one total timeout shared by connect, send and
 * receive; after a failure the connection is not reused. One thread per
 * handle; a handle used in a forked child drops the parent's connection
 * first.
 */
#ifndef LODESTONE_CLIENT_H
#define LODESTONE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LS_CLIENT_TIMEOUT_DEFAULT      500               /* ms per request */
#define LS_CLIENT_MAX_RESPONSE_DEFAULT ((size_t)1 << 20) /* body bytes */

typedef struct ls_client ls_client_t;

/* Options; zero values mean the defaults. */
typedef struct {
    int timeout_ms;      /* total time per request, connect to last byte */
    size_t max_response; /* largest body accepted */
} ls_client_opts;

/* Counters since open. */
typedef struct {
    uint64_t requests;   /* requests asked for */
    uint64_t connects;   /* connections opened */
    uint64_t reconnects; /* of those, replacements of a kept connection the daemon closed */
    int connected;       /* a connection is kept now */
} ls_client_stats;

/* Makes a handle for the daemon at socket_path (copied); connects lazily, on
 * the first request. opts may be NULL. LS_EINVAL when the path is empty or
 * too long for a unix socket address, or a figure is negative. On LS_OK,
 * *out is the handle: Caller frees with ls_client_close. */
LS_API ls_rc ls_client_open(ls_client_t **out, const char *socket_path, const ls_client_opts *opts,
                            ls_err *err);

/* Closes the connection and frees the handle. NULL does nothing. */
LS_API void ls_client_close(ls_client_t *c);

/* Sends `method path` (path with its query, already percent-encoded) with
 * body (JSON; NULL and 0 for none) and reads the answer. On LS_OK, *status is
 * the HTTP status and the body (de-chunked) replaces the contents of *resp
 * (caller-owned, reused): any status is LS_OK. Fails with LS_EIO when the
 * daemon cannot be reached, closes the connection, or does not answer within
 * the timeout (the message says which, with the socket path and the
 * timeout); LS_EBUSY when its listen queue is full; LS_EFORMAT when the
 * answer is not HTTP/1.x or its body is larger than max_response; LS_EINVAL
 * on a bad method or path; LS_ENOMEM. */
LS_API ls_rc ls_client_request(ls_client_t *c, const char *method, const char *path,
                               const void *body, size_t len, int *status, ls_buf *resp,
                               ls_err *err);

/* Changes the total timeout of later requests (ms, > 0). */
LS_API void ls_client_set_timeout(ls_client_t *c, int timeout_ms);

/* Drops the kept connection, if any (the next request opens a new one). */
LS_API void ls_client_disconnect(ls_client_t *c);

/* Fills *out with the handle's counters. */
LS_API void ls_client_stats_get(const ls_client_t *c, ls_client_stats *out);

#ifdef __cplusplus
}
#endif
#endif

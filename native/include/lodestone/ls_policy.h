/* SPDX-License-Identifier: MIT
 * The policy engine: a policy declaration (the JSON form of a Lua
 * `policy.define{...}`) compiled once into a decision procedure that runs
 * per request without blocking I/O: IP rules, authentication (JWT, API
 * keys, Basic, webhook signatures), rules, rate limits, identity headers and
 * the audit log. Fails closed: any error while deciding denies.
 *
 * Conventions: see ls_err.h. A policy handle is used by one thread at a
 * time (mod_magnet runs one Lua state per lighttpd worker); rate-limit
 * state is shared between processes through a file under the policy's
 * rate-limit directory.
 */
#ifndef LODESTONE_POLICY_H
#define LODESTONE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "ls_clock.h"
#include "ls_err.h"
#include "ls_pmetrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ls_policy ls_policy_t;

/* Flags of ls_policy_opts. */
#define LS_POLICY_NO_AUDIT   0x1u /* do not open or write the audit log (offline checks) */
#define LS_POLICY_PRIVATE_RL 0x2u /* keep rate-limit state in this process only */

typedef struct {
    const char *base_dir;  /* relative file names in the declaration resolve
                              here; NULL: the current directory */
    const char *rl_dir;    /* directory of shared rate-limit tables; NULL:
                              "/dev/shm" */
    const ls_clock *clock; /* NULL: the system clock; borrowed until free */
    unsigned flags;
    const char *cache_dir; /* where keys fetched from a jwks_url are kept
                              (jwks-<policy>-<hash of URL>.json); NULL:
                              "/var/cache/lodestone". Created if missing; must
                              not be writable by group or others */

    /* Decision counters and times go here; NULL: none. Borrowed until
     * ls_policy_free. */
    ls_pmetrics_t *metrics;
} ls_policy_opts;

/* Compiles len bytes of declaration JSON into a policy, loading the key
 * files it names and opening its rate-limit table and audit log. Errors
 * name the field: LS_EINVAL ("authenticate[1].audience: expected a string
 * or an array of strings"), or the failing file's code (LS_ENOTFOUND,
 * LS_EPERM, LS_EFORMAT...) with its path. Caller frees with
 * ls_policy_free. */
LS_API ls_rc ls_policy_load(ls_policy_t **out, const char *json, size_t len,
                            const ls_policy_opts *opts, ls_err *err);

/* Flushes the audit log and frees everything. p may be NULL. Stops the
 * threads fetching jwks_url keys and waits for them (promptly: a transfer
 * in progress is abandoned). */
LS_API void ls_policy_free(ls_policy_t *p);

/* The declaration's name. Borrowed until ls_policy_free. */
LS_API const char *ls_policy_name(const ls_policy_t *p);

/* Request headers the policy reads, in the order ls_policy_request.headers
 * must hold their values. Borrowed until ls_policy_free. */
LS_API size_t ls_policy_header_count(const ls_policy_t *p);
LS_API const char *ls_policy_header_name(const ls_policy_t *p, size_t i);

/* Request headers the policy sets for the backend (identity headers, the
 * assertion, and the request id when every decision is audited). The
 * caller removes every incoming copy of them before acting on a decision,
 * whatever it is, so a client can never forge them. Borrowed until free. */
LS_API size_t ls_policy_strip_count(const ls_policy_t *p);
LS_API const char *ls_policy_strip_name(const ls_policy_t *p, size_t i);

/* 1 when the request header name (len bytes) is not one of the strip
 * names above in any case, yet reads as one to a backend that maps header
 * names the CGI way (letters upper case, every other byte but a digit
 * '_'): "X_User" or "X.User" for X-User. The caller removes such headers
 * too before passing an allowed request on. 0 otherwise, for NULL, and
 * when the policy says strip_lookalikes = false. */
LS_API int ls_policy_strip_lookalike(const ls_policy_t *p, const char *name, size_t len);

/* 1 when ls_policy_strip_lookalike can say 1: a strip name has a byte
 * other than a letter or a digit (X-User; XUser has no lookalikes) and the
 * policy does not say strip_lookalikes = false. A caller that must walk
 * every request header to find lookalikes skips the walk otherwise. */
LS_API int ls_policy_strips_lookalikes(const ls_policy_t *p);

/* Reads a policy or route file (Lua source) whole into a new ls_malloc
 * block with a NUL after it (free with ls_free): a regular file only,
 * opened without blocking, so a FIFO or a device put in its place is
 * refused instead of stalling the server; at most LS_POLICY_FILE_MAX
 * bytes. Errors name the path: LS_ENOTFOUND, LS_EPERM (not a regular
 * file, no access), LS_EFORMAT (too large), LS_EIO, LS_ENOMEM. */
#define LS_POLICY_FILE_MAX (16u << 20)
LS_API ls_rc ls_policy_read_file(const char *path, char **text, size_t *len, ls_err *err);

/* Whether authenticators read the request body (webhook signatures):
 * 0 none does; LS_POLICY_BODY_SOME_PATHS: some do, each on its `paths`
 * (ls_policy_path_needs_body says which requests); LS_POLICY_BODY_EVERY_PATH:
 * one does on every path. */
#define LS_POLICY_BODY_SOME_PATHS 1
#define LS_POLICY_BODY_EVERY_PATH 2
LS_API int ls_policy_needs_body(const ls_policy_t *p);

/* 1 when an authenticator that applies to this request path (raw, as
 * ls_policy_request.path: not yet decoded) needs the body: one with no
 * `paths`, or one of whose paths matches; also when that cannot be told
 * (out of memory), so that no signature is checked without its body.
 * 0 otherwise, and for a path the engine refuses (it decides such a
 * request without the body). Uses a buffer of p's own: not while another
 * thread uses p. */
LS_API int ls_policy_path_needs_body(ls_policy_t *p, const char *path, size_t len);

/* A byte string; ptr NULL means absent. */
typedef struct {
    const char *ptr;
    size_t len;
} ls_str;

typedef struct {
    ls_str method;
    ls_str path;  /* without the query string */
    ls_str query; /* without '?'; may be absent */
    ls_str host;  /* Host / :authority, port allowed */
    ls_str remote_addr;
    ls_str request_id;     /* for the audit log; absent (or not 1 to 128 of
                              A-Z a-z 0-9 - . _ : + / = @): the policy's
                              request id header from a trusted proxy, else a
                              new id */
    const ls_str *headers; /* ls_policy_header_count values, in that order */
    ls_str body;           /* raw body when ls_policy_path_needs_body */
    int64_t now_ms;        /* wall time for the audit log; 0: the clock */
    /* Instead of headers, when set: the engine asks header(header_ctx, i)
     * for the value of header i (as headers[i] would hold it; {NULL, 0}:
     * absent) when the decision first needs it, and at most once per
     * decision, so a header that an earlier authenticator made moot is
     * never read. The value must stay valid until the decision is made.
     * header may also not return (a Lua error): the engine holds no lock,
     * no allocation and no rate-limit budget taken at that point, and the
     * decision is abandoned. It must not decide with the same policy. */
    ls_str (*header)(void *header_ctx, size_t i);
    void *header_ctx;
} ls_policy_request;

typedef struct {
    const char *name;
    const char *value;
} ls_policy_header;

typedef struct {
    int allow; /* 1: pass the request on */
    /* 0 when allowed; else 400, 401, 403, 429 or 500, or 200 (reason "jwks",
     * allow 0) on the assertion keys' path, their JWKS in body */
    int status;
    const char *reason;                  /* stable snake_case name ("missing_scope") */
    const char *detail;                  /* more for the audit log (never for the client) or NULL */
    const char *subject;                 /* authenticated caller, or NULL */
    const char *rule;                    /* name of the rule that decided, or NULL */
    const char *client;                  /* client address after trusted-proxy handling, or NULL */
    const ls_policy_header *set_headers; /* on allow: identity headers for the request */
    size_t n_set_headers;
    const ls_policy_header *resp_headers; /* on deny: response headers */
    size_t n_resp_headers;
    const char *body; /* on deny: small JSON body naming no internals */
    size_t body_len;
    const char *notice; /* something for the server's log, or NULL: a reload
                           problem (a JWKS file that failed to parse, old keys
                           kept), a webhook without paths, a rate limit that
                           could not be taken (at most once a minute) */
    double decision_us; /* time spent deciding; measured when the decision is audited or counted */
    const char *request_id; /* the id of the audit record written, or NULL */
} ls_policy_decision;

/* Decides one request. Fills *d, whose strings and arrays are borrowed
 * until the next ls_policy_eval on p or ls_policy_free. Returns LS_OK with
 * a decision in every case where one was made, deny included; internal
 * failures also produce a deny (status 500, reason "internal_error") and
 * return LS_OK, so the caller always has something safe to act on. Returns
 * LS_EINVAL only for a NULL argument. Files the policy reads (JWKS, API
 * keys, passwords) are checked for changes at most once a second and
 * reloaded; a file that fails to reload keeps its previous contents and
 * reports it once in d->notice. */
LS_API ls_rc ls_policy_eval(ls_policy_t *p, const ls_policy_request *req, ls_policy_decision *d,
                            ls_err *err);

/* Digits in a request id the engine makes. */
#define LS_POLICY_REQUEST_ID_LEN 32

/* Writes a new request id and its NUL into out, from the generator the
 * policy's audit records use: for records a caller writes of its own
 * about a request the policy let through (lodestone.route's errors).
 * LS_EIO when libsodium cannot initialise. */
LS_API ls_rc ls_policy_new_request_id(ls_policy_t *p, char out[LS_POLICY_REQUEST_ID_LEN + 1],
                                      ls_err *err);

/* The header request ids travel in (audit.request_id), or NULL when the
 * policy sends none (no audit log, or request_id = false). *to_backend
 * (may be NULL) is set to 1 when allowed requests carry it to the backend
 * (every decision is logged). Borrowed until ls_policy_free. */
LS_API const char *ls_policy_request_id_header(const ls_policy_t *p, int *to_backend);

/* Flushes the audit log (e.g. when idle). */
LS_API void ls_policy_flush(ls_policy_t *p);

/* Reopens the audit log at its path (after logrotate). */
LS_API ls_rc ls_policy_reopen_audit(ls_policy_t *p, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

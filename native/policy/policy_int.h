/* SPDX-License-Identifier: MIT
 * The policy engine's internals, shared by policy.c (compiling a
 * declaration), authn.c (authenticators) and eval.c (deciding). Not
 * exported. */
#ifndef LS_POLICY_INT_H
#define LS_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "assertion.h"
#include "audit.h"
#include "jwks_fetch.h"
#include "request_id.h"
#include "ls_json.h"
#include "lodestone/ls_apikey.h"
#include "lodestone/ls_basic.h"
#include "lodestone/ls_cidr.h"
#include "lodestone/ls_hmac.h"
#include "lodestone/ls_jwt.h"
#include "lodestone/ls_pmetrics.h"
#include "lodestone/ls_policy.h"
#include "lodestone/ls_ratelimit.h"
#include "rules.h"

#define POLICY_MAX_HEADERS  32   /* request headers one policy reads (bits of hv_have) */
#define POLICY_MAX_AUTHN    16   /* authenticators per policy */
#define POLICY_MAX_LIMITS   8    /* rate limits per policy */
#define POLICY_MAX_IDHDR    16   /* identity headers per policy */
#define POLICY_MAX_ITEMS    64   /* roles or scopes kept per caller */
#define POLICY_MAX_NAME     64   /* a policy's name: part of file names (rl table, jwks cache) */
#define POLICY_SCRATCH      8192 /* bytes for one decision's strings */
#define POLICY_NOTICE_MAX   4096 /* bytes of notices one decision carries */
#define ASSERTION_JWKS_PATH "/.well-known/lodestone/jwks.json"
#define RELOAD_CHECK_MS     1000 /* how often watched files are stat()ed */
#define POLICY_MCACHE       32   /* metric slots cached per policy */

/* What a watched file looked like when it was last loaded. */
typedef struct {
    char *path;
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns;
    off_t size;
    int64_t checked_ms; /* monotonic ms of the last stat */
    int checked;        /* checked_ms is set */
} file_watch;

typedef enum { AUTHN_JWT = 1, AUTHN_APIKEY, AUTHN_BASIC, AUTHN_WEBHOOK } authn_type;
typedef enum { HOOK_GITHUB = 1, HOOK_STRIPE, HOOK_HMAC } hook_provider;

typedef struct {
    authn_type type;
    int header;        /* index into the request headers, or -1 */
    char *query_param; /* api_key: read from this query parameter, or NULL */
    char *label;       /* "authenticate[N]" or the declared name */
    ls_rules_t *paths; /* applies on these paths only, or NULL: on every path */

    /* jwt */
    ls_jwks_t *jwks;
    file_watch jwks_file; /* path NULL when keys came inline or from PEM/secret */
    ls_jwt_cache_t *cache;
    ls_jwt_opts vopts; /* strings below are owned here */
    char *issuer;
    char **audiences;
    size_t n_audiences;
    char **required;
    size_t n_required;
    char *subject_claim;
    char *roles_claim;
    char *scopes_claim;
    ls_jwks_fetch_t *fetch;  /* jwks_url: keeps jwks_file (the cache) fresh, or NULL */
    uint64_t fetch_installs; /* cache files written by it that we have looked at */
    uint64_t fetch_failures; /* its failures already reported as notices */
    int fetch_polled;        /* ls_jwks_fetch_poll was called at least once */

    /* api_key */
    ls_apikey_set_t *keys;
    file_watch keys_file;

    /* basic */
    ls_basic_set_t *users;
    file_watch users_file;
    char *realm;

    /* webhook */
    hook_provider provider;
    unsigned char *secret; /* sodium_malloc'd */
    size_t secret_len;
    ls_hmac_generic_opts hook_opts;
    char *sig_prefix;
    int64_t tolerance_s;
    char *hook_subject;
    char **hook_roles;
    size_t n_hook_roles;
} authn;

typedef enum { RL_BY_IP = 1, RL_BY_SUBJECT, RL_BY_APIKEY, RL_BY_HEADER } rl_by;

typedef struct {
    rl_by by;
    int header; /* RL_BY_HEADER: index into the request headers */
    ls_rl_limit limit;
    char prefix[16];   /* key prefix that keeps limits apart: 12 hex digits and ':' */
    ls_rules_t *paths; /* applies on these paths only, or NULL: on every path */
} rate_limit;

typedef enum { ID_SUBJECT = 1, ID_ROLES, ID_SCOPES, ID_CLAIM } idhdr_source;

typedef struct {
    char *name;
    idhdr_source source;
    char *claim; /* ID_CLAIM: dotted path */
} id_header;

struct ls_policy {
    char *name;
    char *base_dir;
    char *cache_dir; /* ls_policy_opts.cache_dir, or NULL */
    const ls_clock *clock;
    unsigned flags;

    char *headers[POLICY_MAX_HEADERS]; /* names the caller passes values of */
    size_t n_headers;
    int xff_header; /* index of X-Forwarded-For, or -1 */

    authn authn[POLICY_MAX_AUTHN];
    size_t n_authn;
    int needs_body;             /* 0 or LS_POLICY_BODY_*: the most any webhook needs */
    int64_t rl_said_ms;         /* monotonic time a rate limit failure was said, 0: never */
    int64_t audit_looked_ms;    /* ... the audit log's counters were read, 0: never */
    uint64_t audit_errors_seen; /* its write_errors and dropped then */
    uint64_t audit_dropped_seen;

    ls_rules_t *rules;

    ls_cidr_set_t *ip_allow; /* NULL: every address */
    ls_cidr_set_t *ip_deny;
    ls_cidr_set_t *trusted; /* trusted proxies, or NULL */

    rate_limit limits[POLICY_MAX_LIMITS];
    size_t n_limits;
    ls_rl_t *rl;
    char *rl_path;

    id_header idhdr[POLICY_MAX_IDHDR];
    size_t n_idhdr;

    ls_audit_t *audit;
    int audit_all;  /* 1: every decision, 0: denials only */
    int lookalikes; /* 1: a strip name has lookalikes, and they are stripped */

    /* request ids of audit records: the header they come in by (from
     * trusted proxies) and go out by (to the client on a denial, to the
     * backend when every decision is logged), or NULL for neither */
    char *rid_header;
    int rid_in;    /* index of rid_header among the request headers, or -1 */
    int rid_strip; /* 1: rid_header is the last of the strip list */
    ls_reqid_gen rid;

    ls_assertion_t *assertion; /* signed identity for the backend, or NULL */

    /* decision metrics (ls_policy_opts.metrics), or NULL; the slots of the
     * (decision, reason) pairs seen so far are cached here */
    ls_pmetrics_t *metrics;
    ls_pmetrics_hist *m_hist; /* NULL when the table had no room */
    int m_hist_looked;
    struct {
        int allow;
        const char *reason_at; /* the pointer it was cached under */
        char reason[LS_PMETRICS_REASON_MAX + 1];
        ls_pmetrics_counter *c;
    } m_cache[POLICY_MCACHE];
    size_t m_cached;
    char *assertion_header;

    int64_t now_ms; /* monotonic ms read once per decision, when now_valid */
    int now_valid;

    /* per-decision scratch, reused: decisions borrow from here */
    ls_buf path;        /* normalised path */
    ls_buf body_path;   /* the same, for ls_policy_path_needs_body */
    ls_buf notice;      /* notices pending: ls_policy_notice */
    ls_buf notice_said; /* the last decision's d->notice */
    char scratch[POLICY_SCRATCH];
    size_t scratch_used;
    ls_policy_header set_headers[POLICY_MAX_IDHDR + 2]; /* + assertion, request id */
    ls_policy_header resp_headers[8];
    char client[LS_CIDR_TEXTMAX];
    ls_jwt_t *token; /* verified token of the current decision */
    /* request headers asked for so far (ls_policy_request.header) */
    ls_str hv[POLICY_MAX_HEADERS];
    uint32_t hv_have; /* bit i: hv[i] holds header i */
};

/* The value of request header i ({NULL, 0}: absent) for the decision under
 * way: from req->headers, or asked for once through req->header. */
static inline ls_str ls_policy_req_header(ls_policy_t *p, const ls_policy_request *req, int i)
{
    if (req->header == NULL) return req->headers ? req->headers[i] : (ls_str){NULL, 0};
    uint32_t bit = (uint32_t)1 << i;
    if (!(p->hv_have & bit)) {
        p->hv[i] = req->header(req->header_ctx, (size_t)i);
        p->hv_have |= bit;
    }
    return p->hv[i];
}

/* ---- policy.c ---- */

/* Registers a request header the policy reads and puts its index in *idx
 * (an existing index when the name is already registered; names are
 * case-insensitive). LS_EINVAL when the table is full, LS_ENOMEM. */
ls_rc ls_policy_want_header(ls_policy_t *p, const char *name, int *idx, ls_err *err);

/* Resolves name against the policy's base directory into a new string
 * (caller frees with ls_free); NULL on allocation failure. */
char *ls_policy_path(const ls_policy_t *p, const char *name);

/* Copies a string into the decision scratch; returns NULL when full. */
const char *ls_policy_scratch(ls_policy_t *p, const char *s, size_t len);

/* Records a notice for the next decision (first one wins). */
void ls_policy_notice(ls_policy_t *p, const ls_err *err);

/* Stats path; returns 1 when it changed since w was filled (or w is new),
 * 0 when unchanged or checked less than RELOAD_CHECK_MS ago, -1 when the
 * stat failed (err set). Updates w. */
int ls_policy_watch_changed(ls_policy_t *p, file_watch *w, ls_err *err);

/* ---- eval.c ---- */

/* What deciding derives from the caller alone: the identity header values
 * and the hashes of rate-limit keys made from the subject. A JWT
 * authenticator keeps one with each verified token it caches
 * (ls_authn_memo_slot), so a cache hit derives none of it again. */
typedef struct caller_memo caller_memo;

/* Frees m; m may be NULL. */
void ls_caller_memo_free(caller_memo *m);

/* ---- authn.c ---- */

/* Where this decision's caller memo lives: a slot kept with the verified
 * token the decision authenticated with (initially NULL), or NULL when the
 * decision has no such token. */
caller_memo **ls_authn_memo_slot(ls_policy_t *p);

/* Compiles one authenticator declaration into a (zeroed) slot. */
ls_rc ls_authn_compile(ls_policy_t *p, authn *a, const json_t *decl, const char *label,
                       ls_err *err);

/* Releases what a slot holds. */
void ls_authn_free(authn *a);

/* Reloads the slot's watched files when they changed (at most once per
 * RELOAD_CHECK_MS); failures keep the old contents and leave a notice. */
void ls_authn_refresh(ls_policy_t *p, authn *a);

/* Outcome of trying one authenticator on a request. */
typedef enum {
    AUTHN_ABSENT = 0, /* its credential is not in the request: try the next */
    AUTHN_OK,         /* authenticated: *id filled */
    AUTHN_REJECTED,   /* credential present but invalid: deny 401 */
    AUTHN_ERROR       /* could not tell (out of memory, a library failure): deny 500 */
} authn_result;

/* Runs one authenticator. On AUTHN_OK fills id (strings and arrays
 * borrowed from the verified token, the key set or the declaration, valid
 * for this decision); on AUTHN_REJECTED and AUTHN_ERROR sets *reason
 * (stable name; "internal_error" for AUTHN_ERROR) and *detail (for the
 * audit log). */
authn_result ls_authn_run(ls_policy_t *p, authn *a, const ls_policy_request *req, ls_identity *id,
                          const char **reason, const char **detail);

#endif

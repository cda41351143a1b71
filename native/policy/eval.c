/* SPDX-License-Identifier: MIT
 * Deciding a request: client address and IP rules, path normalisation,
 * the first matching rule, authentication, the rule's requirements, rate
 * limits, then identity headers on allow or a small response on deny, and
 * the audit record. Fails closed: every early exit is a deny. Allocates
 * nothing once the reused buffers have grown. */
#include "ls_config.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "path.h"
#include "policy_int.h"

typedef struct {
    ls_identity id;
    const authn *via; /* authenticator that succeeded */
    const char *api_key_id;
    const char *www_auth; /* WWW-Authenticate for a 401 */
} caller;

struct caller_memo {
    const char *value[POLICY_MAX_IDHDR]; /* identity header i's value, or NULL */
    ls_rl_key rl[POLICY_MAX_LIMITS];
    unsigned char rl_known[POLICY_MAX_LIMITS]; /* 1: rl[i] is limit i's key */
    char text[];                               /* the values */
};

static const char *const bodies[] = {
    [0] = "{\"error\":\"internal_error\"}",
};

static const char *body_for(int status)
{
    switch (status) {
    case 400: return "{\"error\":\"bad_request\"}";
    case 401: return "{\"error\":\"unauthorized\"}";
    case 403: return "{\"error\":\"forbidden\"}";
    case 429: return "{\"error\":\"too_many_requests\"}";
    default: return bodies[0];
    }
}

static void add_resp(ls_policy_t *p, ls_policy_decision *d, const char *name, const char *value)
{
    if (value == NULL || d->n_resp_headers == sizeof p->resp_headers / sizeof p->resp_headers[0])
        return;
    p->resp_headers[d->n_resp_headers].name = name;
    p->resp_headers[d->n_resp_headers].value = value;
    d->n_resp_headers++;
}

static void deny(ls_policy_t *p, ls_policy_decision *d, int status, const char *reason,
                 const char *detail)
{
    d->allow = 0;
    d->status = status;
    d->reason = reason;
    d->detail = detail;
    d->body = body_for(status);
    d->body_len = strlen(d->body);
    add_resp(p, d, "Content-Type", "application/json");
    add_resp(p, d, "Cache-Control", "no-store");
}

/* Whether something limited to paths (an authenticator, a rate limit;
 * NULL: every path) is on this normalised path. */
static int on_paths(const ls_rules_t *paths, const ls_buf *path)
{
    const ls_rule *r;
    return paths == NULL ||
           ls_rules_match(paths, NULL, NULL, (const char *)path->ptr, path->len, &r) == LS_OK;
}

int ls_policy_path_needs_body(ls_policy_t *p, const char *path, size_t len)
{
    if (!p->needs_body || path == NULL) return 0;
    if (p->needs_body == LS_POLICY_BODY_EVERY_PATH) return 1;
    ls_rc rc = ls_path_normalize(path, len, &p->body_path, NULL);
    /* A path the engine refuses is denied before anyone authenticates;
     * without memory to tell, the body is read (and the decision fails). */
    if (rc != LS_OK) return rc != LS_EINVAL;
    for (size_t i = 0; i < p->n_authn; i++)
        if (p->authn[i].type == AUTHN_WEBHOOK && on_paths(p->authn[i].paths, &p->body_path))
            return 1;
    return 0;
}

/* WWW-Authenticate for a 401: Bearer (RFC 6750) when a JWT authenticator
 * applies to the path, else Basic, else nothing. */
static const char *challenge(ls_policy_t *p, int token_was_bad)
{
    char buf[256];
    for (size_t i = 0; i < p->n_authn; i++) {
        const authn *a = &p->authn[i];
        if (!on_paths(a->paths, &p->path)) continue;
        if (a->type == AUTHN_JWT) {
            snprintf(buf, sizeof buf, "Bearer realm=\"%s\"%s", p->name,
                     token_was_bad ? ", error=\"invalid_token\"" : "");
            return ls_policy_scratch(p, buf, strlen(buf));
        }
        if (a->type == AUTHN_BASIC) {
            snprintf(buf, sizeof buf, "Basic realm=\"%s\", charset=\"UTF-8\"",
                     a->realm ? a->realm : p->name);
            return ls_policy_scratch(p, buf, strlen(buf));
        }
    }
    return NULL;
}

/* ---- steps ---- */

static int check_ip(ls_policy_t *p, const ls_policy_request *req, ls_policy_decision *d)
{
    if (req->remote_addr.ptr == NULL || req->remote_addr.len == 0) {
        deny(p, d, 403, "bad_client_address", NULL);
        return 0;
    }
    uint8_t addr[LS_CIDR_ADDRBYTES];
    ls_err err;
    if (p->trusted) {
        /* Behind trusted proxies: X-Forwarded-For decides, in canonical form. */
        ls_str xff = ls_policy_req_header(p, req, p->xff_header);
        if (ls_cidr_client_addr(req->remote_addr.ptr, req->remote_addr.len, xff.ptr, xff.len,
                                p->trusted, p->client, addr, &err) != LS_OK) {
            deny(p, d, 403, "bad_client_address", NULL);
            return 0;
        }
    } else {
        /* The peer as the server wrote it: parsed only when a set needs it. */
        size_t n = req->remote_addr.len < sizeof p->client - 1 ? req->remote_addr.len
                                                               : sizeof p->client - 1;
        memcpy(p->client, req->remote_addr.ptr, n);
        p->client[n] = '\0';
        if ((p->ip_allow || p->ip_deny) &&
            ls_cidr_parse_addr(req->remote_addr.ptr, req->remote_addr.len, addr, &err) != LS_OK) {
            deny(p, d, 403, "bad_client_address", NULL);
            return 0;
        }
    }
    d->client = p->client;
    if (p->ip_deny && ls_cidr_set_contains_addr(p->ip_deny, addr)) {
        deny(p, d, 403, "ip_denied", NULL);
        return 0;
    }
    if (p->ip_allow && !ls_cidr_set_contains_addr(p->ip_allow, addr)) {
        deny(p, d, 403, "ip_not_allowed", NULL);
        return 0;
    }
    return 1;
}

/* Tries the authenticators that apply to the path in order; the first
 * whose credential is present decides. Returns 0 (and denies) when a
 * present credential is rejected. */
static int authenticate(ls_policy_t *p, const ls_policy_request *req, caller *c,
                        ls_policy_decision *d)
{
    for (size_t i = 0; i < p->n_authn; i++) {
        authn *a = &p->authn[i];
        if (!on_paths(a->paths, &p->path)) continue;
        const char *reason = NULL, *detail = NULL;
        authn_result r = ls_authn_run(p, a, req, &c->id, &reason, &detail);
        if (r == AUTHN_ABSENT) continue;
        if (r == AUTHN_OK) {
            c->via = a;
            d->subject = c->id.subject;
            return 1;
        }
        if (r == AUTHN_ERROR) { /* no fault of the credential's: no challenge */
            deny(p, d, 500, reason, detail);
            return 0;
        }
        deny(p, d, 401, reason, detail);
        add_resp(p, d, "WWW-Authenticate", challenge(p, a->type == AUTHN_JWT));
        return 0;
    }
    return 1; /* anonymous */
}

/* The key of limit l for this request, hashed for the policy's table.
 * Returns 1 when the key comes from the caller alone (the subject), so it
 * may be kept in the caller's memo; 0 when it depends on the request. */
static int rate_key(ls_policy_t *p, const rate_limit *l, const ls_policy_request *req,
                    const caller *c, ls_rl_key *out)
{
    char key[512];
    const char *val = NULL;
    size_t vlen = 0;
    char kind = 'i';
    ls_str h;
    if ((l->by == RL_BY_SUBJECT && c->id.authenticated && c->id.subject) ||
        (l->by == RL_BY_APIKEY && c->via && c->via->type == AUTHN_APIKEY)) {
        kind = 's'; /* an API key's subject names the key's owner */
        val = c->id.subject;
    } else if (l->by == RL_BY_HEADER && (h = ls_policy_req_header(p, req, l->header)).ptr &&
               h.len > 0) { /* an empty value is no key: every such client would share one */
        kind = 'h';
        val = h.ptr;
        vlen = h.len;
    }
    if (val == NULL) { /* by ip, or the fallback when the key is missing */
        kind = 'i';
        val = p->client;
    }
    if (vlen == 0) vlen = strlen(val);
    size_t plen = strlen(l->prefix);
    memcpy(key, l->prefix, plen);
    key[plen] = kind;
    if (vlen > sizeof key - 16) {
        /* A long value (a header can be kilobytes) keys by its digest, so
         * values that differ only at the end never share a budget. */
        key[plen] = (char)(kind - 'a' + 'A');
        crypto_generichash((unsigned char *)key + plen + 1, 32, (const unsigned char *)val, vlen,
                           NULL, 0);
        vlen = 32;
    } else {
        memcpy(key + plen + 1, val, vlen);
    }
    ls_rl_hash(p->rl, key, plen + 1 + vlen, out);
    return kind == 's';
}

/* Reads the headers the rate limits key by, so that a header callback that
 * raises (ls_policy_request.header) does so before a memo is allocated or
 * any budget is taken. */
static void rate_headers(ls_policy_t *p, const ls_policy_request *req)
{
    for (size_t i = 0; i < p->n_limits; i++)
        if (p->limits[i].by == RL_BY_HEADER) ls_policy_req_header(p, req, p->limits[i].header);
}

/* 1 at most once a minute for one kind of trouble: *said_ms holds when it
 * was last 1, 0 for never (a time of 0 is kept as 1). */
static int minute_due(int64_t *said_ms, int64_t now_ms)
{
    if (*said_ms != 0 && now_ms - *said_ms < 60000) return 0;
    *said_ms = now_ms ? now_ms : 1;
    return 1;
}

/* A rate limit that cannot be taken (its table cut short, out of memory)
 * denies with 500; the server's log hears why at most once a minute, as
 * the audit log may be off or say it only for denials it keeps. */
static void rate_trouble(ls_policy_t *p, const ls_err *err)
{
    if (!minute_due(&p->rl_said_ms, p->now_ms)) return;
    ls_err note = *err;
    ls_err_prefix(&note, "rate limit: denying with 500 (said at most once a minute)");
    ls_policy_notice(p, &note);
}

static int check_rate(ls_policy_t *p, const ls_policy_request *req, const caller *c,
                      const caller_memo *memo, ls_policy_decision *d)
{
    rate_headers(p, req);
    for (size_t i = 0; i < p->n_limits; i++) {
        const rate_limit *l = &p->limits[i];
        if (!on_paths(l->paths, &p->path)) continue;
        ls_rl_key key;
        if (memo && memo->rl_known[i])
            key = memo->rl[i];
        else
            rate_key(p, l, req, c, &key);
        ls_rl_result r;
        ls_err err;
        if (ls_rl_take_hash(p->rl, &key, &l->limit, 1, p->clock, &r, &err) != LS_OK) {
            deny(p, d, 500, "internal_error", ls_policy_scratch(p, err.msg, strlen(err.msg)));
            rate_trouble(p, &err);
            return 0;
        }
        if (!r.allowed) {
            char buf[96];
            deny(p, d, 429, "rate_limited", NULL);
            snprintf(buf, sizeof buf, "%lld", (long long)((r.retry_after_ms + 999) / 1000));
            add_resp(p, d, "Retry-After", ls_policy_scratch(p, buf, strlen(buf)));
            snprintf(buf, sizeof buf, "%lld", (long long)r.limit);
            add_resp(p, d, "RateLimit-Limit", ls_policy_scratch(p, buf, strlen(buf)));
            snprintf(buf, sizeof buf, "%lld", (long long)r.remaining);
            add_resp(p, d, "RateLimit-Remaining", ls_policy_scratch(p, buf, strlen(buf)));
            snprintf(buf, sizeof buf, "%lld", (long long)((r.reset_ms + 999) / 1000));
            add_resp(p, d, "RateLimit-Reset", ls_policy_scratch(p, buf, strlen(buf)));
            return 0;
        }
    }
    return 1;
}

/* Joins items with sep into the scratch; NULL when empty or full. */
static const char *join(ls_policy_t *p, const char *const *items, size_t n, char sep)
{
    if (n == 0) return NULL;
    char *start = p->scratch + p->scratch_used;
    size_t room = POLICY_SCRATCH - p->scratch_used, used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        if (used + len + 2 > room) return NULL;
        if (i) start[used++] = sep;
        memcpy(start + used, items[i], len);
        used += len;
    }
    start[used] = '\0';
    p->scratch_used += used + 1;
    return start;
}

/* 1 when string v would not read back as itself in a header: a NUL byte
 * would cut it short, and in a list sep would split it. */
static int ambiguous(const json_t *v, int sep)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return memchr(s, 0, n) != NULL || (sep && memchr(s, sep, n) != NULL);
}

/* A claim as header text: strings as they are, numbers and booleans
 * printed, arrays of strings joined with commas; NULL (no header) for a
 * value that would read back as another. */
static const char *claim_text(ls_policy_t *p, const json_t *v)
{
    char buf[64];
    if (json_is_string(v)) {
        if (ambiguous(v, 0)) return NULL;
        return ls_policy_scratch(p, json_string_value(v), json_string_length(v));
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_array(v)) {
        const char *items[POLICY_MAX_ITEMS];
        size_t n = 0, i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) continue;
            if (ambiguous(e, ',')) return NULL;
            if (n < POLICY_MAX_ITEMS) items[n++] = json_string_value(e);
        }
        return join(p, items, n, ',');
    } else {
        return NULL;
    }
    return ls_policy_scratch(p, buf, strlen(buf));
}

/* Header values must not break the header: no control characters. */
static int header_safe(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f) return 0;
    return 1;
}

/* Identity header h's value for caller c (in the scratch), or NULL when
 * the caller has none or it would not be a safe header value. */
static const char *idhdr_value(ls_policy_t *p, const caller *c, const id_header *h)
{
    const char *v = NULL;
    switch (h->source) {
    case ID_SUBJECT: v = c->id.subject; break;
    case ID_ROLES: v = join(p, c->id.roles, c->id.nroles, ','); break;
    case ID_SCOPES: v = join(p, c->id.scopes, c->id.nscopes, ' '); break;
    case ID_CLAIM:
        v = c->id.claims ? claim_text(p, ls_json_path(c->id.claims, h->claim)) : NULL;
        break;
    }
    return v && header_safe(v) ? v : NULL;
}

void ls_caller_memo_free(caller_memo *m)
{
    ls_free(m);
}

/* The caller's memo: the one kept with its verified token, built on the
 * token's first decision. NULL when the caller has no such token or memory
 * is short; the decision then derives everything itself. */
static const caller_memo *memo_of(ls_policy_t *p, const ls_policy_request *req, const caller *c)
{
    if (!c->id.authenticated || (p->n_idhdr == 0 && p->n_limits == 0)) return NULL;
    caller_memo **slot = ls_authn_memo_slot(p);
    if (slot == NULL || *slot) return slot ? *slot : NULL;
    rate_headers(p, req);
    size_t mark = p->scratch_used; /* the values are copied out, then the scratch is given back */
    const char *v[POLICY_MAX_IDHDR];
    size_t len[POLICY_MAX_IDHDR], bytes = sizeof(caller_memo);
    for (size_t i = 0; i < p->n_idhdr; i++) {
        v[i] = idhdr_value(p, c, &p->idhdr[i]);
        len[i] = v[i] ? strlen(v[i]) : 0;
        if (v[i]) bytes += len[i] + 1;
    }
    caller_memo *m = ls_malloc(bytes);
    if (m == NULL) {
        p->scratch_used = mark;
        return NULL;
    }
    memset(m, 0, sizeof *m);
    char *text = m->text;
    for (size_t i = 0; i < p->n_idhdr; i++) {
        if (v[i] == NULL) continue;
        memcpy(text, v[i], len[i] + 1);
        m->value[i] = text;
        text += len[i] + 1;
    }
    for (size_t i = 0; i < p->n_limits; i++)
        m->rl_known[i] = (unsigned char)rate_key(p, &p->limits[i], req, c, &m->rl[i]);
    p->scratch_used = mark;
    *slot = m;
    return m;
}

static void identity_headers(ls_policy_t *p, const caller *c, const caller_memo *memo,
                             ls_policy_decision *d)
{
    if (!c->id.authenticated) return;
    if (p->assertion && c->id.subject) {
        const char *tok = NULL;
        ls_err err;
        if (ls_assertion_token(p->assertion, c->id.subject, c->id.roles, c->id.nroles, &tok,
                               &err) == LS_OK) {
            p->set_headers[d->n_set_headers].name = p->assertion_header;
            p->set_headers[d->n_set_headers].value = tok;
            d->n_set_headers++;
        }
    }
    for (size_t i = 0; i < p->n_idhdr; i++) {
        const char *v = memo ? memo->value[i] : idhdr_value(p, c, &p->idhdr[i]);
        if (v == NULL) continue;
        p->set_headers[d->n_set_headers].name = p->idhdr[i].name;
        p->set_headers[d->n_set_headers].value = v;
        d->n_set_headers++;
    }
}

/* 1 when the decision gets an audit record. */
static int audited(const ls_policy_t *p, const ls_policy_decision *d)
{
    return p->audit && (!d->allow || p->audit_all) && d->status != 200;
}

/* 1 when the request's peer (not X-Forwarded-For) is a trusted proxy. */
static int from_trusted_proxy(const ls_policy_t *p, const ls_policy_request *req)
{
    uint8_t addr[LS_CIDR_ADDRBYTES];
    ls_err err;
    return p->trusted && req->remote_addr.ptr &&
           ls_cidr_parse_addr(req->remote_addr.ptr, req->remote_addr.len, addr, &err) == LS_OK &&
           ls_cidr_set_contains_addr(p->trusted, addr);
}

/* The audit record's id: the caller's, else the one a trusted proxy sent
 * in the request id header, else a new one. It goes back to the client
 * with a denial and on to the backend when every decision is logged, so
 * that each side can name the record. */
static void request_id(ls_policy_t *p, const ls_policy_request *req, ls_policy_decision *d)
{
    ls_str in = req->request_id;
    if (!ls_reqid_valid(in.ptr, in.len)) {
        /* the peer is parsed only when there is an id to take from it */
        ls_str h = p->rid_in >= 0 ? ls_policy_req_header(p, req, p->rid_in) : (ls_str){NULL, 0};
        in = ls_reqid_valid(h.ptr, h.len) && from_trusted_proxy(p, req) ? h : (ls_str){NULL, 0};
    }
    const char *id;
    if (in.ptr) {
        id = ls_policy_scratch(p, in.ptr, in.len);
    } else {
        char fresh[LS_REQID_LEN + 1];
        id = ls_reqid_next(&p->rid, fresh) == 0 ? ls_policy_scratch(p, fresh, LS_REQID_LEN) : NULL;
    }
    if (id == NULL) return; /* no libsodium, or the scratch is full: the record goes without */
    d->request_id = id;
    if (p->rid_header == NULL) return;
    if (!d->allow) {
        add_resp(p, d, p->rid_header, id);
    } else if (p->rid_strip) {
        p->set_headers[d->n_set_headers].name = p->rid_header;
        p->set_headers[d->n_set_headers].value = id;
        d->n_set_headers++;
    }
}

static void audit(ls_policy_t *p, const ls_policy_request *req, const ls_policy_decision *d)
{
    char method[LS_RULES_METHOD_MAX + 1];
    size_t ml = req->method.len < sizeof method - 1 ? req->method.len : sizeof method - 1;
    if (req->method.ptr) memcpy(method, req->method.ptr, ml);
    method[req->method.ptr ? ml : 0] = '\0';
    ls_audit_record r = {
        .time_ms = req->now_ms,
        .request_id = d->request_id,
        .method = method[0] ? method : NULL,
        .path = p->path.len ? (const char *)p->path.ptr : NULL,
        .client = d->client,
        .subject = d->subject,
        .policy = p->name,
        .rule = d->rule,
        .decision = d->allow ? LS_AUDIT_ALLOW : LS_AUDIT_DENY,
        .status = d->status,
        .reason = d->detail ? d->detail : d->reason,
        .decision_us = d->decision_us,
    };
    char reason[LS_ERR_MSGMAX + 64];
    size_t reason_len = strlen(d->reason);
    if (d->detail && strncmp(d->detail, d->reason, reason_len) == 0 &&
        d->detail[reason_len] == ':') {
        r.reason = d->detail; /* already "reason: detail" (JWT messages are) */
    } else if (d->detail) {
        snprintf(reason, sizeof reason, "%s: %s", d->reason, d->detail);
        r.reason = reason;
    }
    ls_audit_write(p->audit, &r, NULL);
}

/* ---- metrics ---- */

/* Records the audit log could not write are counted where the server
 * does not look: say so in a notice, looking at most once a minute. */
static void audit_trouble(ls_policy_t *p, int64_t now_ms)
{
    if (!minute_due(&p->audit_looked_ms, now_ms)) return;
    ls_audit_stats st;
    ls_audit_get_stats(p->audit, &st);
    if (st.write_errors == p->audit_errors_seen) return;
    ls_err note = {0};
    ls_err_set(&note, LS_EIO,
               "audit log %s: %llu failed writes or reopens, %llu records lost, since it last "
               "said so (%s)",
               ls_audit_path(p->audit),
               (unsigned long long)(st.write_errors - p->audit_errors_seen),
               (unsigned long long)(st.dropped - p->audit_dropped_seen),
               st.last_errno > 0 ? strerror(st.last_errno) : "short write");
    ls_policy_notice(p, &note);
    p->audit_errors_seen = st.write_errors;
    p->audit_dropped_seen = st.dropped;
}

/* The shared counter of (allow, reason), through the policy's cache: a
 * reason is a stable engine code, so a few entries cover every decision. */
static ls_pmetrics_counter *counter_of(ls_policy_t *p, int allow, const char *reason)
{
    /* Reasons are the engine's constant strings: the same pointer, almost
     * always; the text decides otherwise. */
    for (size_t i = 0; i < p->m_cached; i++)
        if (p->m_cache[i].reason_at == reason && p->m_cache[i].allow == allow)
            return p->m_cache[i].c;
    for (size_t i = 0; i < p->m_cached; i++)
        if (p->m_cache[i].allow == allow && strcmp(p->m_cache[i].reason, reason) == 0)
            return p->m_cache[i].c;
    /* NULL (the table is full) is cached too: slots are never freed. */
    ls_pmetrics_counter *c = ls_pmetrics_counter_get(p->metrics, p->name, allow, reason);
    if (p->m_cached < POLICY_MCACHE) {
        p->m_cache[p->m_cached].allow = allow;
        p->m_cache[p->m_cached].reason_at = reason;
        snprintf(p->m_cache[p->m_cached].reason, sizeof p->m_cache[0].reason, "%s", reason);
        p->m_cache[p->m_cached++].c = c;
    }
    return c;
}

/* Counts a decision and its time (the gate's own answers, status 200, are
 * not decisions). */
static void count(ls_policy_t *p, const ls_policy_decision *d, int64_t ns)
{
    const char *reason = d->reason ? d->reason : "unknown";
    ls_pmetrics_counter_add(p->metrics, counter_of(p, d->allow, reason));
    if (!p->m_hist_looked) {
        p->m_hist = ls_pmetrics_hist_get(p->metrics, p->name);
        p->m_hist_looked = 1;
    }
    ls_pmetrics_hist_observe(p->m_hist, ns);
    ls_err merr; /* a table cut short stops counting: said once */
    if (ls_pmetrics_take_fault(p->metrics, &merr) != LS_OK) ls_policy_notice(p, &merr);
}

/* ---- the decision ---- */

static void decide(ls_policy_t *p, const ls_policy_request *req, ls_policy_decision *d)
{
    if (!check_ip(p, req, d)) return;

    ls_err err;
    ls_rc rc =
        req->path.ptr ? ls_path_normalize(req->path.ptr, req->path.len, &p->path, &err) : LS_EINVAL;
    if (rc != LS_OK) {
        const char *detail = req->path.ptr ? ls_policy_scratch(p, err.msg, strlen(err.msg)) : NULL;
        if (rc == LS_ENOMEM)
            deny(p, d, 500, "internal_error", detail); /* not the path's fault */
        else
            deny(p, d, 400, "bad_path", detail);
        return;
    }
    if (p->assertion && p->path.len == strlen(ASSERTION_JWKS_PATH) &&
        memcmp(p->path.ptr, ASSERTION_JWKS_PATH, p->path.len) == 0) {
        /* The keys backends use to verify assertions: public, not audited. */
        d->status = 200;
        d->reason = "jwks";
        d->body = ls_assertion_jwks(p->assertion);
        d->body_len = strlen(d->body);
        add_resp(p, d, "Content-Type", "application/jwk-set+json");
        add_resp(p, d, "Cache-Control", "max-age=300");
        return;
    }
    /* As long as any rule may name (a port and a trailing dot besides):
     * a method or host cut short would never match the rule naming it,
     * and a deny rule that names methods would let such requests pass. A
     * longer one matches no rule that names one. */
    char method[LS_RULES_METHOD_MAX + 1], host[LS_RULES_HOST_MAX + 16];
    size_t ml = req->method.ptr && req->method.len < sizeof method ? req->method.len : 0;
    if (ml) memcpy(method, req->method.ptr, ml);
    method[ml] = '\0';
    size_t hl = req->host.ptr && req->host.len < sizeof host ? req->host.len : 0;
    if (hl) memcpy(host, req->host.ptr, hl);
    host[hl] = '\0';

    const ls_rule *rule;
    if (ls_rules_match(p->rules, method[0] ? method : NULL, hl ? host : NULL,
                       (const char *)p->path.ptr, p->path.len, &rule) != LS_OK) {
        deny(p, d, 403, ls_rule_reason_name(LS_REASON_NO_MATCH), NULL);
        return;
    }
    d->rule = ls_rule_name(rule);

    caller c;
    memset(&c, 0, sizeof c);
    ls_rule_kind kind = ls_rule_kind_of(rule);
    if (kind == LS_RULE_REQUIRE && !authenticate(p, req, &c, d)) return;

    ls_rule_reason why;
    const char *detail = NULL;
    if (ls_rule_check(rule, &c.id, &why, &detail) != LS_OK) {
        if (why == LS_REASON_NOT_AUTHENTICATED) {
            deny(p, d, 401, ls_rule_reason_name(why), NULL);
            add_resp(p, d, "WWW-Authenticate", challenge(p, 0));
        } else {
            deny(p, d, 403, ls_rule_reason_name(why), detail);
        }
        return;
    }
    const caller_memo *memo = memo_of(p, req, &c);
    if (!check_rate(p, req, &c, memo, d)) return;

    d->allow = 1;
    d->status = 0;
    d->reason = "allowed";
    identity_headers(p, &c, memo, d);
}

ls_rc ls_policy_eval(ls_policy_t *p, const ls_policy_request *req, ls_policy_decision *d,
                     ls_err *err)
{
    if (p == NULL || req == NULL || d == NULL) return ls_err_set(err, LS_EINVAL, "NULL argument");
    /* One clock read serves the reload checks and the decision time. */
    int64_t t0 = ls_clock_mono_ns(p->clock);
    p->now_ms = t0 / 1000000;
    p->now_valid = 1;
    memset(d, 0, sizeof *d);
    d->set_headers = p->set_headers;
    d->resp_headers = p->resp_headers;
    p->scratch_used = 0;
    p->hv_have = 0;
    ls_buf_clear(&p->path);
    ls_jwt_free(p->token);
    p->token = NULL;

    for (size_t i = 0; i < p->n_authn; i++) ls_authn_refresh(p, &p->authn[i]);

    decide(p, req, d);
    p->now_valid = 0;
    int logged = audited(p, d);
    if (logged) request_id(p, req, d);
    if (logged || p->metrics) {
        int64_t ns = ls_clock_mono_ns(p->clock) - t0;
        d->decision_us = (double)ns / 1000.0;
        if (logged) {
            audit(p, req, d);
            audit_trouble(p, t0 / 1000000);
        }
        if (p->metrics && d->status != 200) count(p, d, ns);
    }
    if (p->notice.len) {              /* from a reload, the decision or the audit log */
        ls_buf said = p->notice_said; /* the last decision's, done with */
        p->notice_said = p->notice;
        p->notice = said;
        ls_buf_clear(&p->notice);
        d->notice = (const char *)p->notice_said.ptr;
    }
    return LS_OK;
}

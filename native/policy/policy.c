/* SPDX-License-Identifier: MIT
 * Compiling a policy declaration (JSON) into an ls_policy_t: the fields
 * name, authenticate, rules, rate_limit, ip, identity_headers and audit,
 * each checked with errors that name the field. Also the helpers the
 * authenticators share: header registration, paths, file watching. */
#include "ls_config.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_duration.h"
#include "policy_int.h"

/* ---- helpers shared with authn.c and eval.c ---- */

ls_rc ls_policy_want_header(ls_policy_t *p, const char *name, int *idx, ls_err *err)
{
    for (size_t i = 0; i < p->n_headers; i++) {
        if (strcasecmp(p->headers[i], name) == 0) {
            *idx = (int)i;
            return LS_OK;
        }
    }
    if (p->n_headers == POLICY_MAX_HEADERS)
        return ls_err_set(err, LS_EINVAL, "a policy may read at most %d request headers",
                          POLICY_MAX_HEADERS);
    char *copy = ls_strdup(name);
    if (copy == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    p->headers[p->n_headers] = copy;
    *idx = (int)p->n_headers++;
    return LS_OK;
}

char *ls_policy_path(const ls_policy_t *p, const char *name)
{
    if (name[0] == '/' || p->base_dir == NULL) return ls_strdup(name);
    size_t a = strlen(p->base_dir), b = strlen(name);
    char *out = ls_malloc(a + b + 2);
    if (out == NULL) return NULL;
    memcpy(out, p->base_dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
    return out;
}

const char *ls_policy_scratch(ls_policy_t *p, const char *s, size_t len)
{
    if (len + 1 > POLICY_SCRATCH - p->scratch_used) return NULL;
    char *dst = p->scratch + p->scratch_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    p->scratch_used += len + 1;
    return dst;
}

void ls_policy_notice(ls_policy_t *p, const ls_err *err)
{
    /* Several in one decision are joined, up to a bound: each is said once. */
    size_t n = strlen(err->msg);
    if (p->notice.len + 2 + n > POLICY_NOTICE_MAX) return;
    if (p->notice.len) ls_buf_append(&p->notice, "; ", 2, NULL);
    ls_buf_append(&p->notice, err->msg, n, NULL);
}

int ls_policy_watch_changed(ls_policy_t *p, file_watch *w, ls_err *err)
{
    int64_t now = p->now_valid ? p->now_ms : ls_clock_mono_ns(p->clock) / 1000000;
    if (w->checked && now - w->checked_ms < RELOAD_CHECK_MS) return 0;
    w->checked = 1;
    w->checked_ms = now;
    struct stat st;
    if (stat(w->path, &st) != 0) {
        ls_err_set(err, errno == ENOENT ? LS_ENOTFOUND : LS_EIO, "%s: %s", w->path,
                   strerror(errno));
        return -1;
    }
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    int changed =
        st.st_dev != w->dev || st.st_ino != w->ino || mtime != w->mtime_ns || st.st_size != w->size;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->mtime_ns = mtime;
    w->size = st.st_size;
    return changed;
}

/* ---- compiling the declaration ---- */

static ls_rc bad_field(ls_err *err, const char *field, const char *what)
{
    return ls_err_set(err, LS_EINVAL, "%s: %s", field, what);
}

/* Strings of a JSON array into a new cidr set; NULL field leaves *out NULL. */
static ls_rc compile_cidrs(const json_t *arr, const char *field, ls_cidr_set_t **out, ls_err *err)
{
    if (arr == NULL) return LS_OK;
    if (!json_is_array(arr)) return bad_field(err, field, "expected an array of addresses");
    ls_rc rc = ls_cidr_set_new(out, err);
    if (rc != LS_OK) return rc;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return ls_err_set(err, LS_EINVAL, "%s[%zu]: expected a string", field, i + 1);
        rc = ls_cidr_set_add(*out, json_string_value(v), json_string_length(v), err);
        if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s[%zu]", field, i + 1);
    }
    return LS_OK;
}

static ls_rc compile_ip(ls_policy_t *p, const json_t *ip, ls_err *err)
{
    if (ip == NULL) return LS_OK;
    if (!json_is_object(ip)) return bad_field(err, "ip", "expected a table");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)ip, key, v)
    {
        if (strcmp(key, "allow") != 0 && strcmp(key, "deny") != 0 &&
            strcmp(key, "trusted_proxies") != 0)
            return ls_err_set(err, LS_EINVAL,
                              "ip: unknown field '%s' (allow, deny, trusted_proxies)", key);
    }
    ls_rc rc = compile_cidrs(json_object_get(ip, "allow"), "ip.allow", &p->ip_allow, err);
    if (rc == LS_OK) rc = compile_cidrs(json_object_get(ip, "deny"), "ip.deny", &p->ip_deny, err);
    if (rc == LS_OK)
        rc = compile_cidrs(json_object_get(ip, "trusted_proxies"), "ip.trusted_proxies",
                           &p->trusted, err);
    if (rc == LS_OK && p->trusted != NULL) {
        rc = ls_policy_want_header(p, "X-Forwarded-For", &p->xff_header, err);
    }
    return rc;
}

/* The prefix that keeps limit rl's keys apart from the other limits' in
 * the shared table: a digest of what it counts (by, per, paths), not of
 * its place in the list, so that a reload that adds, removes or reorders
 * limits moves no budget from one to another; a limit whose rate or burst
 * changes keeps its budget. Limits alike in all three are told apart by
 * their order among themselves. */
static ls_rc limit_prefix(ls_policy_t *p, rate_limit *rl, const char *by, const json_t *paths,
                          ls_err *err)
{
    char *ptext = paths ? json_dumps(paths, JSON_COMPACT) : NULL;
    if (paths && ptext == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    char byl[300];
    size_t i = 0;
    for (; i < sizeof byl - 1 && by[i]; i++) /* header names in any case */
        byl[i] = (char)(by[i] >= 'A' && by[i] <= 'Z' ? by[i] - 'A' + 'a' : by[i]);
    byl[i] = '\0';
    for (unsigned n = 0;; n++) {
        crypto_generichash_state st;
        unsigned char h[6];
        char head[320];
        int hl = snprintf(head, sizeof head, "%s\n%lld\n%u\n", byl, (long long)rl->limit.per_ms, n);
        crypto_generichash_init(&st, NULL, 0, sizeof h);
        crypto_generichash_update(&st, (const unsigned char *)head, (size_t)hl);
        if (ptext) crypto_generichash_update(&st, (const unsigned char *)ptext, strlen(ptext));
        crypto_generichash_final(&st, h, sizeof h);
        for (size_t k = 0; k < sizeof h; k++) snprintf(rl->prefix + 2 * k, 3, "%02x", h[k]);
        rl->prefix[2 * sizeof h] = ':';
        rl->prefix[2 * sizeof h + 1] = '\0';
        size_t j = 0;
        while (j < p->n_limits && strcmp(p->limits[j].prefix, rl->prefix) != 0) j++;
        if (j == p->n_limits) break; /* no earlier limit has it */
    }
    free(ptext); /* (jansson's allocation) */
    return LS_OK;
}

static ls_rc compile_limit(ls_policy_t *p, const json_t *d, const char *field, ls_err *err)
{
    if (!json_is_object(d)) return bad_field(err, field, "expected a table");
    if (p->n_limits == POLICY_MAX_LIMITS)
        return ls_err_set(err, LS_EINVAL, "%s: at most %d rate limits", field, POLICY_MAX_LIMITS);
    rate_limit *rl = &p->limits[p->n_limits];
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)d, key, v)
    {
        if (strcmp(key, "by") != 0 && strcmp(key, "rate") != 0 && strcmp(key, "per") != 0 &&
            strcmp(key, "burst") != 0 && strcmp(key, "paths") != 0)
            return ls_err_set(err, LS_EINVAL,
                              "%s: unknown field '%s' (by, rate, per, burst, paths)", field, key);
    }
    const char *by = "ip";
    ls_rc rc = ls_json_get_str(d, "by", &by, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", field);
    if (strcmp(by, "ip") == 0) {
        rl->by = RL_BY_IP;
    } else if (strcmp(by, "subject") == 0) {
        rl->by = RL_BY_SUBJECT;
    } else if (strcmp(by, "api_key") == 0) {
        rl->by = RL_BY_APIKEY;
    } else if (strncmp(by, "header:", 7) == 0 && by[7] != '\0') {
        rl->by = RL_BY_HEADER;
        if ((rc = ls_policy_want_header(p, by + 7, &rl->header, err)) != LS_OK) return rc;
    } else {
        return ls_err_set(err, LS_EINVAL,
                          "%s.by: \"%s\" is not ip, subject, api_key or header:NAME", field, by);
    }
    int64_t rate = 0, burst = 0;
    rc = ls_json_get_int(d, "rate", &rate, err);
    if (rc == LS_ENOTFOUND) return bad_field(err, field, "rate is required (requests per 'per')");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", field);
    rc = ls_json_get_int(d, "burst", &burst, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", field);
    const char *per = "1s";
    size_t per_len = 2;
    rc = ls_json_get_str(d, "per", &per, &per_len, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", field);
    rc = ls_rl_limit_parse(&rl->limit, rate, per, per_len, burst, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", field);
    const json_t *paths = json_object_get(d, "paths");
    if ((rc = limit_prefix(p, rl, by, paths, err)) != LS_OK) return rc;
    p->n_limits++; /* counted before its paths, so that free releases them */
    if (paths == NULL) return LS_OK;
    char label[64];
    snprintf(label, sizeof label, "%s.paths", field);
    return ls_rules_compile_paths(&rl->paths, paths, label, err);
}

static ls_rc compile_limits(ls_policy_t *p, const json_t *d, const ls_policy_opts *opts,
                            ls_err *err)
{
    if (d == NULL) return LS_OK;
    ls_rc rc;
    if (json_is_array(d)) {
        size_t i;
        json_t *v;
        json_array_foreach(d, i, v)
        {
            char field[48];
            snprintf(field, sizeof field, "rate_limit[%zu]", i + 1);
            if ((rc = compile_limit(p, v, field, err)) != LS_OK) return rc;
        }
    } else if ((rc = compile_limit(p, d, "rate_limit", err)) != LS_OK) {
        return rc;
    }
    if (p->n_limits == 0) return LS_OK;

    /* One table per policy name, shared by every process that loads it. */
    const char *dir = opts && opts->rl_dir ? opts->rl_dir : "/dev/shm";
    char path[4096];
    int n;
    if (opts && (opts->flags & LS_POLICY_PRIVATE_RL))
        n = snprintf(path, sizeof path, "%s/lodestone-%s.%ld.rl", dir, p->name, (long)getpid());
    else
        n = snprintf(path, sizeof path, "%s/lodestone-%s.rl", dir, p->name);
    if (n < 0 || (size_t)n >= sizeof path)
        return ls_err_set(err, LS_EINVAL, "rate_limit: table path too long in %s", dir);
    p->rl_path = ls_strdup(path);
    if (p->rl_path == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    rc = ls_rl_open(&p->rl, p->rl_path, NULL, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "rate_limit");
    return LS_OK;
}

/* 1 when name can be an HTTP header name: printable ASCII, no space, no ':'. */
static int header_name_ok(const char *name)
{
    if (name[0] == '\0') return 0;
    for (const char *c = name; *c; c++)
        if (*c <= ' ' || *c >= 127 || *c == ':') return 0;
    return 1;
}

/* Headers no identity header may be: the backend would take the caller's
 * identity for the request's credentials, host, framing or connection, or
 * for the client's address. */
static const char *const reserved_headers[] = {
    "Authorization", "Proxy-Authorization", "Cookie", "Host", "Content-Length", "Content-Type",
    "Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
    "Expect",
    /* the client's address, as proxies tell it */
    "X-Forwarded-For", "Forwarded", "X-Real-IP", NULL};

/* A header name byte as a CGI variable name has it (HTTP_X_USER). */
static unsigned char cgi_byte(unsigned char c)
{
    if (c >= 'a' && c <= 'z') return (unsigned char)(c - 32);
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return c;
    return '_';
}

/* 1 when header names a and b are one for a backend that reads headers
 * the CGI way (X_User, x.user and X-User are HTTP_X_USER): what the gate
 * strips as a lookalike of an identity header. */
static int cgi_same(const char *a, const char *b)
{
    size_t i = 0;
    for (; a[i] && b[i]; i++)
        if (cgi_byte((unsigned char)a[i]) != cgi_byte((unsigned char)b[i])) return 0;
    return a[i] == b[i];
}

/* LS_OK when an identity header may be called name: not a reserved one,
 * nor one the policy reads a credential or the client's address from
 * (compiled before the identity headers), in any spelling a backend may
 * take for it (cgi_same: the gate would strip the real one as a
 * lookalike and send the identity under its name). */
static ls_rc idhdr_name_ok(const ls_policy_t *p, const char *name, ls_err *err)
{
    for (size_t i = 0; reserved_headers[i]; i++)
        if (cgi_same(name, reserved_headers[i]))
            return ls_err_set(err, LS_EINVAL,
                              "identity_headers.%s: not allowed: the backend reads %s as the "
                              "request's own, not as the caller's identity",
                              name, reserved_headers[i]);
    for (size_t i = 0; i < p->n_authn; i++) {
        const authn *a = &p->authn[i];
        if (a->header >= 0 && cgi_same(name, p->headers[a->header]))
            return ls_err_set(err, LS_EINVAL,
                              "identity_headers.%s: not allowed: %s reads its credential from it",
                              name, a->label);
    }
    if (p->xff_header >= 0 && cgi_same(name, p->headers[p->xff_header]))
        return ls_err_set(err, LS_EINVAL,
                          "identity_headers.%s: not allowed: the policy reads the client's "
                          "address from it (ip.trusted_proxies)",
                          name);
    return LS_OK;
}

static ls_rc compile_identity_headers(ls_policy_t *p, const json_t *d, ls_err *err)
{
    if (d == NULL) return LS_OK;
    if (!json_is_object(d))
        return bad_field(err, "identity_headers", "expected a table of header = source");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)d, name, v)
    {
        if (p->n_idhdr == POLICY_MAX_IDHDR)
            return ls_err_set(err, LS_EINVAL, "identity_headers: at most %d", POLICY_MAX_IDHDR);
        if (!json_is_string(v))
            return ls_err_set(err, LS_EINVAL,
                              "identity_headers.%s: expected a string (sub, roles, scopes or a "
                              "claim name)",
                              name);
        if (!header_name_ok(name))
            return ls_err_set(err, LS_EINVAL, "identity_headers: \"%s\" is not a header name",
                              name);
        ls_rc rc = idhdr_name_ok(p, name, err);
        if (rc != LS_OK) return rc;
        const char *src = json_string_value(v);
        if (src[0] == '\0' || strcmp(src, "claims.") == 0)
            return ls_err_set(err, LS_EINVAL,
                              "identity_headers.%s: empty: expected sub, roles, scopes or a "
                              "claim name",
                              name);
        id_header *h = &p->idhdr[p->n_idhdr++]; /* counted now: free releases a half-made one */
        if (strcmp(src, "sub") == 0 || strcmp(src, "subject") == 0) {
            h->source = ID_SUBJECT;
        } else if (strcmp(src, "roles") == 0) {
            h->source = ID_ROLES;
        } else if (strcmp(src, "scopes") == 0) {
            h->source = ID_SCOPES;
        } else {
            h->source = ID_CLAIM;
            const char *claim = strncmp(src, "claims.", 7) == 0 ? src + 7 : src;
            if ((h->claim = ls_strdup(claim)) == NULL)
                return ls_err_set(err, LS_ENOMEM, "out of memory");
        }
        if ((h->name = ls_strdup(name)) == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    }
    return LS_OK;
}

static ls_rc compile_audit(ls_policy_t *p, const json_t *d, const ls_policy_opts *opts, ls_err *err)
{
    if (d == NULL) return LS_OK;
    if (!json_is_object(d)) return bad_field(err, "audit", "expected a table with path and log");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)d, key, v)
    {
        if (strcmp(key, "path") != 0 && strcmp(key, "log") != 0 && strcmp(key, "request_id") != 0)
            return ls_err_set(err, LS_EINVAL, "audit: unknown field '%s' (path, log, request_id)",
                              key);
    }
    const char *rid = "X-Request-Id";
    json_t *ridv = json_object_get(d, "request_id");
    if (json_is_false(ridv)) {
        rid = NULL;
    } else if (ridv) {
        if (!json_is_string(ridv) || json_string_length(ridv) == 0)
            return bad_field(err, "audit.request_id", "expected a header name or false");
        rid = json_string_value(ridv);
        if (!header_name_ok(rid))
            return ls_err_set(err, LS_EINVAL, "audit.request_id: \"%s\" is not a header name", rid);
    }
    for (size_t i = 0; rid && i < p->n_idhdr; i++)
        if (strcasecmp(p->idhdr[i].name, rid) == 0)
            return ls_err_set(err, LS_EINVAL, "audit.request_id: \"%s\" is an identity header too",
                              rid);
    if (rid && p->assertion_header && strcasecmp(p->assertion_header, rid) == 0)
        return ls_err_set(err, LS_EINVAL, "audit.request_id: \"%s\" is the assertion header too",
                          rid);
    const char *path, *log = "all";
    ls_rc rc = ls_json_get_str(d, "path", &path, NULL, err);
    if (rc == LS_ENOTFOUND) return bad_field(err, "audit", "path is required");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "audit");
    rc = ls_json_get_str(d, "log", &log, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "audit");
    if (strcmp(log, "all") == 0)
        p->audit_all = 1;
    else if (strcmp(log, "deny") == 0)
        p->audit_all = 0;
    else
        return ls_err_set(err, LS_EINVAL, "audit.log: \"%s\" is not \"all\" or \"deny\"", log);
    if (opts && (opts->flags & LS_POLICY_NO_AUDIT)) return LS_OK;
    char *full = ls_policy_path(p, path);
    if (full == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    /* A flusher thread, so records reach the file within a second even when
     * no more requests come to this worker. */
    ls_audit_opts aopts = {.clock = p->clock, .background = 1};
    rc = ls_audit_open(&p->audit, full, &aopts, err);
    ls_free(full);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "audit.path");
    if (rid == NULL) return LS_OK;
    if ((p->rid_header = ls_strdup(rid)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    p->rid_strip = p->audit_all;
    /* An id that came with the request counts only from a trusted proxy. */
    if (p->trusted) return ls_policy_want_header(p, rid, &p->rid_in, err);
    return LS_OK;
}

static ls_rc compile_authn(ls_policy_t *p, const json_t *d, ls_err *err)
{
    if (d == NULL) return LS_OK;
    if (!json_is_array(d)) return bad_field(err, "authenticate", "expected a list");
    size_t i;
    json_t *v;
    json_array_foreach(d, i, v)
    {
        if (p->n_authn == POLICY_MAX_AUTHN)
            return ls_err_set(err, LS_EINVAL, "authenticate: at most %d", POLICY_MAX_AUTHN);
        char label[48];
        snprintf(label, sizeof label, "authenticate[%zu]", i + 1);
        ls_rc rc = ls_authn_compile(p, &p->authn[p->n_authn], v, label, err);
        p->n_authn++; /* counted even on failure, so that free releases it */
        if (rc != LS_OK) return rc;
    }
    /* A signed body is a credential: with no paths, on every route. */
    for (size_t k = 0; p->n_authn > 1 && k < p->n_authn; k++) {
        const authn *a = &p->authn[k];
        if (a->type != AUTHN_WEBHOOK || a->paths) continue;
        ls_err note = {0};
        ls_err_set(&note, LS_OK,
                   "%s: a webhook without paths authenticates on every path, next to the "
                   "other authenticators: give it its hook's paths = { ... }",
                   a->label);
        ls_policy_notice(p, &note);
        break;
    }
    return LS_OK;
}

static ls_rc compile_assertion(ls_policy_t *p, const json_t *d, ls_err *err)
{
    if (d == NULL) return LS_OK;
    if (!json_is_object(d)) return bad_field(err, "assertion", "expected a table");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)d, key, v)
    {
        if (strcmp(key, "header") != 0 && strcmp(key, "ttl") != 0 && strcmp(key, "key_file") != 0 &&
            strcmp(key, "audience") != 0)
            return ls_err_set(err, LS_EINVAL,
                              "assertion: unknown field '%s' (header, ttl, key_file, audience)",
                              key);
    }
    const char *hdr = "X-Lodestone-Assertion", *key_file = NULL, *aud = NULL;
    ls_rc rc = ls_json_get_str(d, "header", &hdr, NULL, err);
    if (rc == LS_OK || rc == LS_ENOTFOUND) rc = ls_json_get_str(d, "audience", &aud, NULL, err);
    if (rc == LS_OK || rc == LS_ENOTFOUND)
        rc = ls_json_get_str(d, "key_file", &key_file, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "assertion");
    int64_t ttl_ms = 60000;
    json_t *t = json_object_get(d, "ttl");
    if (json_is_integer(t)) {
        ttl_ms = json_integer_value(t) * 1000;
    } else if (json_is_string(t)) {
        rc = ls_duration_parse(json_string_value(t), json_string_length(t), &ttl_ms, err);
        if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "assertion.ttl");
    } else if (t) {
        return bad_field(err, "assertion.ttl", "expected seconds or a duration like \"60s\"");
    }
    for (size_t i = 0; i < p->n_idhdr; i++)
        if (cgi_same(hdr, p->idhdr[i].name))
            return ls_err_set(err, LS_EINVAL,
                              "assertion.header: %s is an identity header (identity_headers.%s)",
                              hdr, p->idhdr[i].name);
    if ((p->assertion_header = ls_strdup(hdr)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    char def[512];
    snprintf(def, sizeof def, "%s.assertion.key", p->name);
    char *path = ls_policy_path(p, key_file ? key_file : def);
    char issuer[300];
    snprintf(issuer, sizeof issuer, "lodestone:%s", p->name);
    rc = path ? ls_assertion_open(&p->assertion, path, issuer, aud, ttl_ms / 1000, p->clock, err)
              : ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_free(path);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "assertion");
}

static const char *const top_fields[] = {
    "name",  "authenticate", "rules", "rate_limit", "ip", "identity_headers", "strip_lookalikes",
    "audit", "assertion",    NULL};

static ls_rc check_top_fields(const json_t *decl, ls_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)decl, key, v)
    {
        size_t i;
        for (i = 0; top_fields[i] && strcmp(top_fields[i], key) != 0; i++) {}
        if (top_fields[i] == NULL)
            return ls_err_set(err, LS_EINVAL,
                              "unknown field '%s' (name, authenticate, rules, rate_limit, ip, "
                              "identity_headers, strip_lookalikes, audit, assertion)",
                              key);
    }
    return LS_OK;
}

static ls_rc compile(ls_policy_t *p, const json_t *decl, const ls_policy_opts *opts, ls_err *err)
{
    if (!json_is_object(decl)) return ls_err_set(err, LS_EINVAL, "a policy must be a table");
    ls_rc rc = check_top_fields(decl, err);
    if (rc != LS_OK) return rc;
    const char *name;
    rc = ls_json_get_str(decl, "name", &name, NULL, err);
    if (rc == LS_ENOTFOUND) return ls_err_set(err, LS_EINVAL, "name: required");
    if (rc != LS_OK) return rc;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return ls_err_set(err, LS_EINVAL,
                              "name: \"%s\" may hold only letters, digits, '-', '_' and '.'", name);
    if (name[0] == '\0') return ls_err_set(err, LS_EINVAL, "name: must not be empty");
    if (name[0] == '.') return ls_err_set(err, LS_EINVAL, "name: must not start with '.'");
    if (strlen(name) > POLICY_MAX_NAME)
        return ls_err_set(err, LS_EINVAL, "name: %zu characters long, at most %d", strlen(name),
                          POLICY_MAX_NAME);
    if ((p->name = ls_strdup(name)) == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");

    json_t *rules = json_object_get(decl, "rules");
    json_t *empty = NULL;
    if (rules == NULL) rules = empty = json_array();
    rc = ls_rules_compile(&p->rules, rules, err);
    json_decref(empty);
    if (rc != LS_OK) return rc;

    if ((rc = compile_ip(p, json_object_get(decl, "ip"), err)) != LS_OK) return rc;
    if ((rc = compile_authn(p, json_object_get(decl, "authenticate"), err)) != LS_OK) return rc;
    if ((rc = compile_identity_headers(p, json_object_get(decl, "identity_headers"), err)) != LS_OK)
        return rc;
    const json_t *sl = json_object_get(decl, "strip_lookalikes");
    if (sl != NULL && !json_is_boolean(sl))
        return bad_field(err, "strip_lookalikes", "expected true or false");
    p->lookalikes = !json_is_false(sl); /* strip_lookalikes = false: exact names only */
    if ((rc = compile_limits(p, json_object_get(decl, "rate_limit"), opts, err)) != LS_OK)
        return rc;
    if ((rc = compile_assertion(p, json_object_get(decl, "assertion"), err)) != LS_OK) return rc;
    return compile_audit(p, json_object_get(decl, "audit"), opts, err);
}

/* 1 when a strip name has a byte other than a letter or a digit, which
 * some other byte can stand for in a CGI variable name. */
static int strip_names_have_lookalikes(const ls_policy_t *p)
{
    for (size_t i = 0; i < ls_policy_strip_count(p); i++)
        for (const char *c = ls_policy_strip_name(p, i); *c; c++)
            if (cgi_byte((unsigned char)*c) == '_') return 1;
    return 0;
}

ls_rc ls_policy_load(ls_policy_t **out, const char *text, size_t len, const ls_policy_opts *opts,
                     ls_err *err)
{
    if (out == NULL || text == NULL) return ls_err_set(err, LS_EINVAL, "NULL argument");
    ls_policy_t *p = ls_calloc(1, sizeof *p);
    if (p == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    p->xff_header = -1;
    p->rid_in = -1;
    p->clock = opts ? opts->clock : NULL;
    p->flags = opts ? opts->flags : 0;
    p->metrics = opts ? opts->metrics : NULL;
    if ((opts && opts->base_dir && (p->base_dir = ls_strdup(opts->base_dir)) == NULL) ||
        (opts && opts->cache_dir && (p->cache_dir = ls_strdup(opts->cache_dir)) == NULL)) {
        ls_free(p->base_dir);
        ls_free(p);
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    }

    json_t *decl = NULL;
    ls_rc rc = ls_json_parse(text, len, &decl, err);
    if (rc != LS_OK) {
        ls_err_prefix(err, "policy JSON");
        goto fail;
    }
    rc = compile(p, decl, opts, err);
    json_decref(decl);
    if (rc != LS_OK) goto fail;
    /* Only a strip name with a byte other than a letter or a digit has
     * lookalikes (X_User for X-User). */
    if (p->lookalikes) p->lookalikes = strip_names_have_lookalikes(p);
    *out = p;
    return LS_OK;
fail:
    ls_policy_free(p);
    return rc;
}

void ls_policy_free(ls_policy_t *p)
{
    if (p == NULL) return;
    ls_jwt_free(p->token);
    for (size_t i = 0; i < p->n_authn; i++) ls_authn_free(&p->authn[i]);
    for (size_t i = 0; i < p->n_headers; i++) ls_free(p->headers[i]);
    for (size_t i = 0; i < p->n_idhdr; i++) {
        ls_free(p->idhdr[i].name);
        ls_free(p->idhdr[i].claim);
    }
    ls_rules_free(p->rules);
    for (size_t i = 0; i < p->n_limits; i++) ls_rules_free(p->limits[i].paths);
    ls_cidr_set_free(p->ip_allow);
    ls_cidr_set_free(p->ip_deny);
    ls_cidr_set_free(p->trusted);
    ls_rl_close(p->rl);
    if (p->rl_path && (p->flags & LS_POLICY_PRIVATE_RL)) unlink(p->rl_path);
    ls_free(p->rl_path);
    ls_audit_close(p->audit);
    ls_assertion_free(p->assertion);
    ls_free(p->assertion_header);
    ls_free(p->rid_header);
    ls_buf_free(&p->path);
    ls_buf_free(&p->body_path);
    ls_buf_free(&p->notice);
    ls_buf_free(&p->notice_said);
    ls_free(p->base_dir);
    ls_free(p->cache_dir);
    ls_free(p->name);
    ls_free(p);
}

const char *ls_policy_name(const ls_policy_t *p)
{
    return p->name;
}

size_t ls_policy_header_count(const ls_policy_t *p)
{
    return p->n_headers;
}

const char *ls_policy_header_name(const ls_policy_t *p, size_t i)
{
    return i < p->n_headers ? p->headers[i] : NULL;
}

size_t ls_policy_strip_count(const ls_policy_t *p)
{
    return p->n_idhdr + (p->assertion_header != NULL) + (size_t)p->rid_strip;
}

const char *ls_policy_strip_name(const ls_policy_t *p, size_t i)
{
    if (i < p->n_idhdr) return p->idhdr[i].name;
    i -= p->n_idhdr;
    if (p->assertion_header) {
        if (i == 0) return p->assertion_header;
        i--;
    }
    return i == 0 && p->rid_strip ? p->rid_header : NULL;
}

int ls_policy_strips_lookalikes(const ls_policy_t *p)
{
    return p != NULL && p->lookalikes;
}

int ls_policy_strip_lookalike(const ls_policy_t *p, const char *name, size_t len)
{
    if (p == NULL || name == NULL || !p->lookalikes) return 0;
    size_t n = ls_policy_strip_count(p);
    for (size_t i = 0; i < n; i++) {
        const char *s = ls_policy_strip_name(p, i);
        if (strlen(s) != len) continue;
        int same = 1, alike = 1;
        for (size_t j = 0; j < len && alike; j++) {
            unsigned char a = (unsigned char)name[j], b = (unsigned char)s[j];
            alike = cgi_byte(a) == cgi_byte(b);
            same = same && (a == b || (cgi_byte(a) == cgi_byte(b) && cgi_byte(a) != '_'));
        }
        if (alike && !same) return 1;
    }
    return 0;
}

int ls_policy_needs_body(const ls_policy_t *p)
{
    return p->needs_body;
}

_Static_assert(LS_POLICY_REQUEST_ID_LEN == LS_REQID_LEN, "request id lengths");

ls_rc ls_policy_new_request_id(ls_policy_t *p, char out[LS_POLICY_REQUEST_ID_LEN + 1], ls_err *err)
{
    if (ls_reqid_next(&p->rid, out) != 0)
        return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    return LS_OK;
}

const char *ls_policy_request_id_header(const ls_policy_t *p, int *to_backend)
{
    if (to_backend) *to_backend = p->rid_strip;
    return p->rid_header;
}

void ls_policy_flush(ls_policy_t *p)
{
    if (p->audit) ls_audit_flush(p->audit, NULL);
}

ls_rc ls_policy_reopen_audit(ls_policy_t *p, ls_err *err)
{
    return p->audit ? ls_audit_reopen(p->audit, err) : LS_OK;
}

/* SPDX-License-Identifier: MIT
 * Tests of the policy engine (native/policy/policy.c, authn.c, eval.c):
 * declarations in, decisions out, through the public ls_policy.h. */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/assertion.h"

static char *dir;
static ls_manual_clock mc;

static int setup(void **state)
{
    (void)state;
    dir = th_mkdtemp("policy");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmtree(dir);
    free(dir);
    return 0;
}

static void write_file(const char *name, const char *text, mode_t mode)
{
    char *path = th_path(dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    free(path);
}

static const char SECRET[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */

/* Mints an HS256 token over payload with key. Caller frees. */
static char *mint(const char *payload, const char *key)
{
    return th_mint_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, key);
}

/* A request with Authorization and X-API-Key headers (in the order the
 * policy asks for them, looked up by name). */
typedef struct {
    const char *method, *path, *query, *addr;
    const char *authz, *apikey, *xff, *tenant, *sig, *rid;
    const char *body;
} req_spec;

static ls_rc decide(ls_policy_t *p, const req_spec *r, ls_policy_decision *d)
{
    ls_str headers[32];
    size_t n = ls_policy_header_count(p);
    for (size_t i = 0; i < n; i++) {
        const char *name = ls_policy_header_name(p, i), *v = NULL;
        if (strcasecmp(name, "Authorization") == 0) v = r->authz;
        if (strcasecmp(name, "X-API-Key") == 0) v = r->apikey;
        if (strcasecmp(name, "X-Forwarded-For") == 0) v = r->xff;
        if (strcasecmp(name, "X-Tenant") == 0) v = r->tenant;
        if (strcasecmp(name, "X-Hub-Signature-256") == 0) v = r->sig;
        if (strcasecmp(name, "X-Request-Id") == 0) v = r->rid;
        headers[i] = (ls_str){v, v ? strlen(v) : 0};
    }
    const char *addr = r->addr ? r->addr : "192.0.2.10";
    ls_policy_request req = {
        .method = {r->method ? r->method : "GET", strlen(r->method ? r->method : "GET")},
        .path = {r->path, strlen(r->path)},
        .query = {r->query, r->query ? strlen(r->query) : 0},
        .host = {"api.example.com", 15},
        .remote_addr = {addr, strlen(addr)},
        .headers = headers,
        .body = {r->body, r->body ? strlen(r->body) : 0},
    };
    ls_err err;
    return ls_policy_eval(p, &req, d, &err);
}

static const char *resp_header(const ls_policy_decision *d, const char *name)
{
    for (size_t i = 0; i < d->n_resp_headers; i++)
        if (strcasecmp(d->resp_headers[i].name, name) == 0) return d->resp_headers[i].value;
    return NULL;
}

static const char *set_header(const ls_policy_decision *d, const char *name)
{
    for (size_t i = 0; i < d->n_set_headers; i++)
        if (strcasecmp(d->set_headers[i].name, name) == 0) return d->set_headers[i].value;
    return NULL;
}

static ls_policy_t *load(const char *json, unsigned flags)
{
    ls_policy_opts opts = {.base_dir = dir, .rl_dir = dir, .clock = &mc.clock, .flags = flags};
    ls_policy_t *p = NULL;
    ls_err err;
    ls_rc rc = ls_policy_load(&p, json, strlen(json), &opts, &err);
    if (rc != LS_OK) fail_msg("load: %s (%s)", err.msg, ls_rc_name(rc));
    return p;
}

static ls_rc load_err(const char *json, ls_err *err)
{
    ls_policy_opts opts = {.base_dir = dir, .rl_dir = dir, .clock = &mc.clock};
    ls_policy_t *p = NULL;
    ls_rc rc = ls_policy_load(&p, json, strlen(json), &opts, err);
    ls_policy_free(p);
    return rc;
}

#define ORDERS_POLICY                                                                            \
    "{\"name\":\"orders-api\","                                                                  \
    "\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]," \
    "\"issuer\":\"https://id.example.com/\",\"audience\":\"orders\",\"leeway\":30,"              \
    "\"roles_claim\":\"realm_access.roles\"}],"                                                  \
    "\"rules\":[{\"path\":\"/healthz\",\"allow\":\"anyone\"},{\"path\":\"/me\"},"                \
    "{\"path\":\"/admin/**\",\"roles\":[\"admin\"]},"                                            \
    "{\"path\":\"/orders/**\",\"methods\":[\"GET\"],\"scopes\":[\"orders:read\"]},"              \
    "{\"path\":\"/orders/**\",\"methods\":[\"POST\"],\"scopes\":[\"orders:write\"],"             \
    "\"claims\":{\"tenant\":\"acme\"}},{\"path\":\"/internal/**\",\"deny\":true}],"              \
    "\"identity_headers\":{\"X-User\":\"sub\",\"X-Roles\":\"roles\",\"X-Tenant\":\"tenant\"},"   \
    "\"audit\":{\"path\":\"audit.log\",\"log\":\"all\"}}"

#define NOW_S 1800000000LL

static char *token_for(const char *sub, const char *roles, const char *scope, const char *extra)
{
    char payload[1024];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"https://id.example.com/\",\"aud\":\"orders\",\"sub\":\"%s\","
             "\"exp\":%lld,\"iat\":%lld,\"realm_access\":{\"roles\":[%s]},\"scope\":\"%s\"%s}",
             sub, NOW_S + 600, NOW_S - 10, roles, scope, extra ? extra : "");
    return mint(payload, SECRET);
}

static char *bearer(char *tok)
{
    char *h;
    if (asprintf(&h, "Bearer %s", tok) < 0) abort();
    free(tok);
    return h;
}

static void orders_setup(void)
{
    ls_manual_clock_init(&mc, NOW_S * 1000);
    write_file("hs.key", SECRET, 0600);
}

static void test_policy_public_route_needs_no_token(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    ls_policy_decision d;
    req_spec r = {.path = "/healthz"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_int_equal(d.status, 0);
    assert_string_equal(d.rule, "rules[1]");
    assert_null(d.subject);
    /* no identity; the request id of the audit record (every decision is
     * logged) is the one header set */
    assert_int_equal(d.n_set_headers, 1);
    assert_string_equal(d.set_headers[0].name, "X-Request-Id");
    ls_policy_free(p);
}

static void test_policy_jwt_allows_and_sets_identity(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    char *authz =
        bearer(token_for("alice", "\"admin\",\"ops\"", "orders:read", ",\"tenant\":\"acme\""));
    ls_policy_decision d;
    req_spec r = {.path = "/me", .authz = authz};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.subject, "alice");
    assert_string_equal(d.rule, "rules[2]");
    assert_string_equal(set_header(&d, "X-User"), "alice");
    assert_string_equal(set_header(&d, "X-Roles"), "admin,ops");
    assert_string_equal(set_header(&d, "X-Tenant"), "acme");
    /* identity headers are what the caller strips from every request, and
     * the request id when every decision is logged */
    assert_int_equal(ls_policy_strip_count(p), 4);
    assert_string_equal(ls_policy_strip_name(p, 3), "X-Request-Id");
    assert_null(ls_policy_strip_name(p, 4));
    /* and whatever a CGI-style backend reads as one of them */
    static const char *const alike[] = {"X_User", "x.user", "X~ROLES", "X_Request_Id",
                                        "X-Request_Id"};
    for (size_t i = 0; i < sizeof alike / sizeof alike[0]; i++)
        assert_int_equal(ls_policy_strip_lookalike(p, alike[i], strlen(alike[i])), 1);
    static const char *const other[] = {"X-User",  "x-user", "X-USER",        "X-Users",
                                        "XX-User", "X-Use",  "Authorization", ""};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_int_equal(ls_policy_strip_lookalike(p, other[i], strlen(other[i])), 0);
    assert_int_equal(ls_policy_strip_lookalike(p, NULL, 0), 0);
    assert_int_equal(ls_policy_strip_lookalike(NULL, "X_User", 6), 0);
    assert_int_equal(ls_policy_strips_lookalikes(p), 1);
    /* strip_lookalikes = false: exact names only (a backend that reads
     * headers by their names), so a gate need not walk the headers */
    {
        static const char keep[] = "{\"name\":\"k\",\"identity_headers\":{\"X-User\":\"sub\"},"
                                   "\"strip_lookalikes\":false}";
        static const char none[] = "{\"name\":\"n\"}";
        ls_policy_t *k = load(keep, 0), *n = load(none, 0);
        assert_int_equal(ls_policy_strip_count(k), 1);
        assert_int_equal(ls_policy_strips_lookalikes(k), 0);
        assert_int_equal(ls_policy_strip_lookalike(k, "X_User", 6), 0);
        assert_int_equal(ls_policy_strips_lookalikes(n), 0); /* nothing to strip */
        ls_policy_free(k);
        ls_policy_free(n);
    }

    r.path = "/admin/users/7";
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.rule, "rules[3]");

    r.path = "/orders/42";
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    r.method = "POST"; /* needs orders:write */
    decide(p, &r, &d);
    assert_int_equal(d.allow, 0);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "missing_scope");
    assert_string_equal(d.body, "{\"error\":\"forbidden\"}");
    free(authz);
    ls_policy_free(p);
}

/* RFC 9110: the auth scheme is case-insensitive; the space after it is
 * not optional. */
static void test_policy_auth_scheme_in_any_case(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    char *tok = token_for("alice", "", "", NULL);
    static const char *const schemes[] = {"Bearer ", "bearer ", "BEARER ", "bEaReR "};
    ls_policy_decision d;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        char *authz;
        if (asprintf(&authz, "%s%s", schemes[i], tok) < 0) abort();
        req_spec r = {.path = "/me", .authz = authz};
        decide(p, &r, &d);
        assert_int_equal(d.allow, 1);
        assert_string_equal(d.subject, "alice");
        free(authz);
    }
    static const char *const not_bearer[] = {"Bearer", "Bearerx", "Bearex ", "Basic "};
    for (size_t i = 0; i < sizeof not_bearer / sizeof not_bearer[0]; i++) {
        char *authz;
        if (asprintf(&authz, "%s%s", not_bearer[i], tok) < 0) abort();
        req_spec r = {.path = "/me", .authz = authz};
        decide(p, &r, &d);
        assert_int_equal(d.status, 401);
        assert_string_equal(d.reason, "not_authenticated"); /* no bearer credential */
        free(authz);
    }
    free(tok);
    ls_policy_free(p);
}

static void test_policy_denials_have_status_and_reason(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    ls_policy_decision d;

    req_spec r = {.path = "/me"}; /* no token */
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "not_authenticated");
    assert_string_equal(resp_header(&d, "WWW-Authenticate"), "Bearer realm=\"orders-api\"");
    assert_string_equal(d.body, "{\"error\":\"unauthorized\"}");
    assert_string_equal(resp_header(&d, "Content-Type"), "application/json");

    char *authz = bearer(token_for("bob", "\"user\"", "orders:read", NULL));
    authz[strlen(authz) - 3] ^= 1; /* break the signature */
    r.authz = authz;
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "bad_signature");
    assert_string_equal(resp_header(&d, "WWW-Authenticate"),
                        "Bearer realm=\"orders-api\", error=\"invalid_token\"");
    free(authz);

    authz = bearer(token_for("bob", "\"user\"", "orders:read", NULL));
    r.authz = authz;
    r.path = "/admin/x";
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "missing_role");

    r.path = "/internal/metrics";
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "explicit_deny");

    r.path = "/nowhere";
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "no_matching_rule");

    r.path = "/orders/../admin/x"; /* normalised before matching */
    decide(p, &r, &d);
    assert_string_equal(d.reason, "missing_role");
    r.path = "/orders/%2fadmin";
    decide(p, &r, &d);
    assert_int_equal(d.status, 400);
    assert_string_equal(d.reason, "bad_path");

    ls_manual_clock_advance(&mc, INT64_C(3600) * 1000); /* token expired */
    r.path = "/me";
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "expired");
    free(authz);
    ls_policy_free(p);
}

static void test_policy_claims_and_forged_identity(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    ls_policy_decision d;
    char *authz = bearer(token_for("carol", "", "orders:write", ",\"tenant\":\"other\""));
    req_spec r = {.method = "POST", .path = "/orders", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "claim_mismatch");
    free(authz);
    /* A subject with a line break never becomes a header. */
    authz = bearer(token_for("eve\\r\\nX-Admin: 1", "", "", NULL));
    r = (req_spec){.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_null(set_header(&d, "X-User"));
    free(authz);
    ls_policy_free(p);
}

/* Roles, scopes, the subject and claims go on as C strings and in joined
 * headers; a value with a NUL byte or the separator must not pass for
 * another (found by a coverage-guided fuzzing pass). */
static void test_policy_token_strings_cannot_pass_for_others(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, LS_POLICY_NO_AUDIT);
    ls_policy_decision d;
    struct {
        const char *roles, *path, *want_roles;
        int status;
    } cases[] = {
        {"\"admin\\u0000-not-really\"", "/admin/x", NULL, 403}, /* was allowed */
        {"\"admin,ops\"", "/admin/x", NULL, 403},
        {"\"admin,ops\",\"viewer\"", "/me", "viewer", 0},
        {"\"admin\\u0000x\",\"admin\"", "/admin/x", "admin", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *authz = bearer(token_for("carol", cases[i].roles, "", NULL));
        req_spec r = {.path = cases[i].path, .authz = authz};
        assert_int_equal(decide(p, &r, &d), LS_OK);
        if (d.status != cases[i].status) fail_msg("case %zu: status %d", i, d.status);
        if (cases[i].status) assert_string_equal(d.reason, "missing_role");
        const char *xr = set_header(&d, "X-Roles");
        if (cases[i].want_roles)
            assert_string_equal(xr, cases[i].want_roles);
        else
            assert_null(xr);
        free(authz);
    }

    /* A subject with a NUL byte: the token is refused. */
    char *authz = bearer(token_for("alice\\u0000mallory", "", "", NULL));
    req_spec r = {.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "invalid_claim");
    free(authz);

    /* A claim header is withheld rather than cut short or split. */
    static const char *const tenants[] = {"\"acme\\u0000x\"", "[\"acme\",\"a,b\"]",
                                          "[\"a\\u0000\"]", "[\"acme\",\"beta\"]"};
    for (size_t i = 0; i < 4; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, ",\"tenant\":%s", tenants[i]);
        authz = bearer(token_for("carol", "", "", extra));
        r = (req_spec){.path = "/me", .authz = authz};
        decide(p, &r, &d);
        assert_int_equal(d.allow, 1);
        if (i < 3)
            assert_null(set_header(&d, "X-Tenant"));
        else
            assert_string_equal(set_header(&d, "X-Tenant"), "acme,beta");
        free(authz);
    }
    /* and the rule's claim compares the whole value */
    authz = bearer(token_for("carol", "", "orders:write", ",\"tenant\":\"acme\\u0000x\""));
    r = (req_spec){.method = "POST", .path = "/orders", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "claim_mismatch");
    free(authz);
    ls_policy_free(p);

    /* subject_claim: a value with a NUL byte names no subject. */
    const char *json =
        "{\"name\":\"sc\",\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\","
        "\"algorithms\":[\"HS256\"],\"subject_claim\":\"email\"}],\"rules\":[{\"path\":\"/me\"}],"
        "\"identity_headers\":{\"X-User\":\"sub\",\"X-Scopes\":\"scopes\"}}";
    p = load(json, LS_POLICY_NO_AUDIT);
    authz = bearer(token_for("carol", "", "", ",\"email\":\"bob@example.com\\u0000x\""));
    r = (req_spec){.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_null(d.subject);
    assert_null(set_header(&d, "X-User"));
    free(authz);
    authz = bearer(token_for("carol", "", "", ",\"email\":\"bob@example.com\""));
    r = (req_spec){.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_string_equal(d.subject, "bob@example.com");
    assert_string_equal(set_header(&d, "X-User"), "bob@example.com");
    free(authz);
    /* A scope from an scp array holding a space would read as two in the
     * space-joined X-Scopes: it is dropped. */
    char payload[256];
    snprintf(payload, sizeof payload,
             "{\"exp\":%lld,\"scp\":[\"orders:read orders:write\",\"a:b\"]}", NOW_S + 600);
    authz = bearer(mint(payload, SECRET));
    r = (req_spec){.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(set_header(&d, "X-Scopes"), "a:b");
    free(authz);
    ls_policy_free(p);

    /* The assertion cache keeps roles "a", "b" and the one role "a,b"
     * apart (a caller must never get another's signed roles). */
    char *keyfile = th_path(dir, "cache-key.assertion.key");
    ls_assertion_t *a = NULL;
    ls_err err;
    th_ok(ls_assertion_open(&a, keyfile, "lodestone:t", NULL, 60, &mc.clock, &err), &err);
    const char *two[] = {"a", "b"}, *one[] = {"a,b"};
    const char *tok = NULL;
    th_ok(ls_assertion_token(a, "carol", two, 2, &tok, &err), &err);
    char *first = strdup(tok);
    th_ok(ls_assertion_token(a, "carol", one, 1, &tok, &err), &err);
    assert_string_not_equal(tok, first);
    th_ok(ls_assertion_token(a, "carol", two, 2, &tok, &err), &err);
    assert_string_equal(tok, first); /* and a repeat still hits the cache */
    free(first);
    ls_assertion_free(a);
    unlink(keyfile);
    free(keyfile);
}

static void test_policy_audit_log_has_decisions_and_no_token(void **state)
{
    (void)state;
    orders_setup();
    char *log = th_path(dir, "audit.log");
    unlink(log); /* other tests of this policy wrote to it too */
    free(log);
    ls_policy_t *p = load(ORDERS_POLICY, 0);
    ls_policy_decision d;
    char *tok = token_for("alice", "\"admin\"", "orders:read", NULL);
    char *authz;
    if (asprintf(&authz, "Bearer %s", tok) < 0) abort();
    req_spec r = {.path = "/me", .authz = authz, .query = "token=s3cret"};
    decide(p, &r, &d);
    r.path = "/admin/x";
    r.authz = "Bearer nonsense";
    decide(p, &r, &d);
    ls_policy_free(p); /* flushes */

    char *path = th_path(dir, "audit.log");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        assert_null(strstr(line, tok));
        assert_null(strstr(line, "s3cret"));
        assert_null(strstr(line, "nonsense"));
        assert_non_null(strstr(line, "\"policy\":\"orders-api\""));
        if (n == 1) {
            assert_non_null(strstr(line, "\"decision\":\"allow\""));
            assert_non_null(strstr(line, "\"subject\":\"alice\""));
            assert_non_null(strstr(line, "\"path\":\"/me\""));
        } else {
            assert_non_null(strstr(line, "\"decision\":\"deny\""));
            assert_non_null(strstr(line, "\"status\":401"));
            assert_non_null(strstr(line, "\"reason\":\"malformed: "));
            assert_null(strstr(line, "malformed: malformed")); /* the reason is said once */
        }
    }
    fclose(f);
    assert_int_equal(n, 2);
    unlink(path);
    free(path);
    free(tok);
    free(authz);
}

static int is_made_id(const char *id)
{
    if (id == NULL || strlen(id) != 32) return 0;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every audit record has a request id: one a trusted proxy sent, else a
 * new one. It goes back to the client with a denial and, when every
 * decision is logged, on to the backend in place of the client's copy. */
static void test_policy_audit_records_carry_request_ids(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    char *log = th_path(dir, "rid.log");
    unlink(log);
    ls_policy_t *p = load("{\"name\":\"rid\",\"rules\":[{\"path\":\"/open\",\"allow\":\"anyone\"},"
                          "{\"path\":\"/shut\",\"deny\":true}],"
                          "\"ip\":{\"trusted_proxies\":[\"127.0.0.1\"]},"
                          "\"audit\":{\"path\":\"rid.log\",\"log\":\"all\"}}",
                          0);
    ls_policy_decision d;
    char *ids[6];

    /* A client's own id is not taken: the backend gets a new one. */
    req_spec r = {.path = "/open", .addr = "192.0.2.5", .rid = "client-chosen"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_true(is_made_id(d.request_id));
    assert_string_equal(set_header(&d, "X-Request-Id"), d.request_id);
    ids[0] = strdup(d.request_id);

    /* A denial names its record to the client. */
    r.path = "/shut";
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_true(is_made_id(d.request_id));
    assert_string_equal(resp_header(&d, "X-Request-Id"), d.request_id);
    assert_string_not_equal(d.request_id, ids[0]);
    ids[1] = strdup(d.request_id);

    /* A trusted proxy's id is kept, both ways. */
    r = (req_spec){.path = "/open", .addr = "127.0.0.1", .xff = "192.0.2.5", .rid = "lb-7f3a:1"};
    decide(p, &r, &d);
    assert_string_equal(d.request_id, "lb-7f3a:1");
    assert_string_equal(set_header(&d, "X-Request-Id"), "lb-7f3a:1");
    ids[2] = strdup(d.request_id);
    r.path = "/shut";
    decide(p, &r, &d);
    assert_string_equal(resp_header(&d, "X-Request-Id"), "lb-7f3a:1");
    ids[3] = strdup(d.request_id);

    /* ... unless it is not plain text of a sane length. */
    char longid[130];
    memset(longid, 'a', 129);
    longid[129] = '\0';
    const char *bad[] = {"two words", "quote\"d", "", longid};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = (req_spec){.path = "/open", .addr = "127.0.0.1", .rid = bad[i]};
        decide(p, &r, &d);
        if (!is_made_id(d.request_id)) fail_msg("bad id %zu kept: %s", i, d.request_id);
    }
    longid[128] = '\0'; /* 128 is the longest taken */
    r.rid = longid;
    decide(p, &r, &d);
    assert_string_equal(d.request_id, longid);
    ids[4] = strdup(d.request_id);

    /* The caller's own id (ls_policy_request.request_id) comes first. */
    ls_str hdrs[4] = {{0}};
    ls_policy_request req = {.method = {"GET", 3},
                             .path = {"/shut", 5},
                             .remote_addr = {"192.0.2.5", 9},
                             .request_id = {"cli-1", 5},
                             .headers = hdrs};
    ls_err err;
    assert_int_equal(ls_policy_eval(p, &req, &d, &err), LS_OK);
    assert_string_equal(d.request_id, "cli-1");
    ids[5] = strdup(d.request_id);
    ls_policy_free(p); /* flushes */

    /* Each record has its decision's id. */
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[2048];
    size_t n = 0;
    const size_t want_at[] = {0, 1, 2, 3, 8, 9}; /* lines of ids[]; 4..7 are the bad ids */
    while (fgets(line, sizeof line, f)) {
        for (size_t k = 0; k < 6; k++) {
            if (want_at[k] != n) continue;
            char field[200];
            snprintf(field, sizeof field, "\"request_id\":\"%s\"", ids[k]);
            if (strstr(line, field) == NULL) fail_msg("line %zu lacks %s: %s", n, field, line);
        }
        assert_non_null(strstr(line, "\"request_id\":\""));
        n++;
    }
    fclose(f);
    assert_int_equal(n, 10);
    for (size_t k = 0; k < 6; k++) free(ids[k]);
    unlink(log);
    free(log);
}

/* Only denials are logged: an allowed request keeps whatever id it came
 * with and the id is no header to strip; request_id = false keeps ids in
 * the log only. Made ids never repeat, in a process or across a fork. */
static void test_policy_request_ids_in_deny_mode_and_unique(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    ls_policy_t *p = load("{\"name\":\"rid2\",\"rules\":[{\"path\":\"/open\",\"allow\":\"anyone\"},"
                          "{\"path\":\"/shut\",\"deny\":true}],"
                          "\"audit\":{\"path\":\"rid2.log\",\"log\":\"deny\"}}",
                          0);
    assert_int_equal(ls_policy_strip_count(p), 0);
    assert_int_equal(ls_policy_header_count(p), 0); /* no trusted proxy: no id is read */
    int to_backend = -1;
    assert_string_equal(ls_policy_request_id_header(p, &to_backend), "X-Request-Id");
    assert_int_equal(to_backend, 0);
    ls_policy_decision d;
    req_spec r = {.path = "/open"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_null(d.request_id);
    assert_int_equal(d.n_set_headers, 0);

    enum { N = 2000 };
    char **seen = calloc(N, sizeof *seen);
    assert_non_null(seen);
    r.path = "/shut";
    for (size_t i = 0; i < N; i++) {
        decide(p, &r, &d);
        assert_true(is_made_id(d.request_id));
        assert_string_equal(resp_header(&d, "X-Request-Id"), d.request_id);
        seen[i] = strdup(d.request_id);
    }
    qsort(seen, N, sizeof *seen, cmp_str);
    for (size_t i = 1; i < N; i++)
        if (strcmp(seen[i - 1], seen[i]) == 0) fail_msg("id made twice: %s", seen[i]);
    for (size_t i = 0; i < N; i++) free(seen[i]);
    free(seen);

    /* A forked child makes ids of its own, not the parent's next ones. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        decide(p, &r, &d);
        ssize_t w = write(fds[1], d.request_id, 32);
        _exit(w == 32 ? 0 : 1);
    }
    char child_id[33] = {0};
    assert_int_equal(read(fds[0], child_id, 32), 32);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    close(fds[1]);
    decide(p, &r, &d);
    assert_true(is_made_id(child_id));
    assert_string_not_equal(child_id, d.request_id);
    /* Ids for a caller's own records come from the same sequence. */
    char own[LS_POLICY_REQUEST_ID_LEN + 1];
    assert_int_equal(ls_policy_new_request_id(p, own, NULL), LS_OK);
    assert_true(is_made_id(own));
    assert_string_not_equal(own, d.request_id);
    ls_policy_free(p);

    /* request_id = false: the id stays in the log. */
    p = load("{\"name\":\"rid3\",\"rules\":[{\"path\":\"/shut\",\"deny\":true}],"
             "\"audit\":{\"path\":\"rid3.log\",\"log\":\"all\",\"request_id\":false}}",
             0);
    assert_int_equal(ls_policy_strip_count(p), 0);
    assert_null(ls_policy_request_id_header(p, NULL));
    decide(p, &r, &d);
    assert_true(is_made_id(d.request_id));
    assert_null(resp_header(&d, "X-Request-Id"));
    ls_policy_free(p);

    /* A header name of one's own. */
    p = load("{\"name\":\"rid4\",\"rules\":[{\"path\":\"/shut\",\"deny\":true}],"
             "\"audit\":{\"path\":\"rid4.log\",\"request_id\":\"X-Correlation-Id\"}}",
             0);
    decide(p, &r, &d);
    assert_string_equal(resp_header(&d, "X-Correlation-Id"), d.request_id);
    assert_int_equal(ls_policy_strip_count(p), 1);
    assert_string_equal(ls_policy_strip_name(p, 0), "X-Correlation-Id");
    assert_string_equal(ls_policy_request_id_header(p, &to_backend), "X-Correlation-Id");
    assert_int_equal(to_backend, 1); /* log defaults to "all" */
    ls_policy_free(p);

    /* Offline checks (no audit log) make no ids and strip nothing more. */
    p = load("{\"name\":\"rid5\",\"rules\":[{\"path\":\"/shut\",\"deny\":true}],"
             "\"audit\":{\"path\":\"rid5.log\"}}",
             LS_POLICY_NO_AUDIT);
    decide(p, &r, &d);
    assert_null(d.request_id);
    assert_null(resp_header(&d, "X-Request-Id"));
    assert_int_equal(ls_policy_strip_count(p), 0);
    assert_null(ls_policy_request_id_header(p, NULL));
    ls_policy_free(p);
}

/* A cached token's second and later decisions reuse what its first one
 * derived (identity header values, the hashed rate-limit key): the same
 * headers, a budget shared with the subject's other tokens and kept apart
 * from other subjects, and an unsafe value left out every time. */
static void test_policy_cached_token_keeps_identity_and_budget(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(
        "{\"name\":\"memo\",\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\","
        "\"algorithms\":[\"HS256\"],\"roles_claim\":\"realm_access.roles\"}],"
        "\"rules\":[{\"path\":\"/me\"}],"
        "\"rate_limit\":{\"by\":\"subject\",\"rate\":1,\"per\":\"10s\",\"burst\":3},"
        "\"identity_headers\":{\"X-User\":\"sub\",\"X-Roles\":\"roles\",\"X-Tenant\":\"tenant\"}}",
        LS_POLICY_PRIVATE_RL);
    ls_policy_decision d;
    char *alice1 = bearer(token_for("alice", "\"admin\",\"ops\"", "", ",\"tenant\":\"acme\""));
    char *alice2 = bearer(token_for("alice", "\"admin\"", "", ",\"jti\":\"second\""));
    char *bob = bearer(token_for("bob", "\"user\"", "", NULL));
    req_spec r = {.path = "/me", .authz = alice1};
    for (int i = 0; i < 2; i++) { /* verified, then served from the cache */
        assert_int_equal(decide(p, &r, &d), LS_OK);
        assert_int_equal(d.allow, 1);
        assert_string_equal(set_header(&d, "X-User"), "alice");
        assert_string_equal(set_header(&d, "X-Roles"), "admin,ops");
        assert_string_equal(set_header(&d, "X-Tenant"), "acme");
    }
    r.authz = alice2; /* another token of alice's: its own headers, her budget */
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(set_header(&d, "X-Roles"), "admin");
    assert_null(set_header(&d, "X-Tenant"));
    r.authz = alice1;
    decide(p, &r, &d);
    assert_int_equal(d.status, 429);
    r.authz = alice2;
    decide(p, &r, &d);
    assert_int_equal(d.status, 429);
    r.authz = bob; /* another subject, another budget */
    for (int i = 0; i < 3; i++) {
        decide(p, &r, &d);
        assert_int_equal(d.allow, 1);
        assert_string_equal(set_header(&d, "X-User"), "bob");
        assert_string_equal(set_header(&d, "X-Roles"), "user");
    }
    decide(p, &r, &d);
    assert_int_equal(d.status, 429);
    free(alice1);
    free(alice2);
    free(bob);

    char *eve = bearer(token_for("eve\\r\\nX-Admin: 1", "\"a\"", "", NULL));
    r.authz = eve;
    for (int i = 0; i < 2; i++) {
        decide(p, &r, &d);
        assert_int_equal(d.allow, 1);
        assert_null(set_header(&d, "X-User"));
        assert_string_equal(set_header(&d, "X-Roles"), "a");
    }
    free(eve);
    ls_policy_free(p);
}

static void test_policy_api_key_and_rate_limit(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    ls_buf file = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_apikey_new_file_header(&file, &err), &err);
    char key[LS_APIKEY_KEY_SIZE];
    ls_apikey_spec spec = {.subject = "svc-billing", .roles = "billing", .scopes = ""};
    th_ok(ls_apikey_generate((char *)file.ptr, file.len, &spec, key, &file, &err), &err);
    write_file("api-keys", (char *)file.ptr, 0600);
    ls_buf_free(&file);

    ls_policy_t *p = load("{\"name\":\"keys\",\"authenticate\":[{\"type\":\"api_key\","
                          "\"keys\":\"api-keys\"}],\"rules\":[{\"path\":\"/bill/**\","
                          "\"roles\":[\"billing\"]}],\"rate_limit\":{\"by\":\"subject\","
                          "\"rate\":1,\"per\":\"1s\",\"burst\":2},"
                          "\"identity_headers\":{\"X-User\":\"sub\"}}",
                          LS_POLICY_PRIVATE_RL);
    ls_policy_decision d;
    req_spec r = {.path = "/bill/1", .apikey = key};
    for (int i = 0; i < 2; i++) {
        decide(p, &r, &d);
        assert_int_equal(d.allow, 1);
        assert_string_equal(set_header(&d, "X-User"), "svc-billing");
    }
    decide(p, &r, &d);
    assert_int_equal(d.status, 429);
    assert_string_equal(d.reason, "rate_limited");
    assert_string_equal(resp_header(&d, "Retry-After"), "1");
    assert_string_equal(resp_header(&d, "RateLimit-Limit"), "2");
    assert_string_equal(resp_header(&d, "RateLimit-Remaining"), "0");
    assert_string_equal(d.body, "{\"error\":\"too_many_requests\"}");
    ls_manual_clock_advance(&mc, 1000);
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);

    r.apikey = "lsk_not-a-real-key-but-long-enough";
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "invalid_api_key");
    ls_policy_free(p);
}

static void test_policy_rate_limit_by_header_keeps_long_values_apart(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    ls_policy_t *p = load("{\"name\":\"hdr-rl\",\"rules\":[{\"allow\":\"anyone\"}],"
                          "\"rate_limit\":{\"by\":\"header:X-Tenant\",\"rate\":1,\"per\":\"1m\","
                          "\"burst\":1}}",
                          LS_POLICY_PRIVATE_RL);
    char a[2001], b[2001];
    memset(a, 'x', 2000);
    a[2000] = '\0';
    memcpy(b, a, sizeof b);
    b[1999] = 'y'; /* differs only in the last byte */
    ls_policy_decision d;
    req_spec r = {.path = "/", .tenant = a};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    decide(p, &r, &d);
    assert_int_equal(d.status, 429); /* the same tenant again */
    r.tenant = b;
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1); /* another tenant has its own budget */
    r.tenant = "short";
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    decide(p, &r, &d);
    assert_int_equal(d.status, 429);
    ls_policy_free(p);
}

static void test_policy_ip_rules_and_trusted_proxies(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    ls_policy_t *p =
        load("{\"name\":\"ips\",\"rules\":[{\"allow\":\"anyone\"}],"
             "\"ip\":{\"allow\":[\"10.0.0.0/8\",\"::1/128\"],\"deny\":[\"10.9.0.0/16\"],"
             "\"trusted_proxies\":[\"127.0.0.1\"]}}",
             0);
    ls_policy_decision d;
    req_spec r = {.path = "/", .addr = "10.1.2.3"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.client, "10.1.2.3");
    r.addr = "192.0.2.1";
    decide(p, &r, &d);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "ip_not_allowed");
    r.addr = "10.9.1.1";
    decide(p, &r, &d);
    assert_string_equal(d.reason, "ip_denied");
    /* Through the trusted proxy, the forwarded client counts. */
    r = (req_spec){.path = "/", .addr = "127.0.0.1", .xff = "192.0.2.77, 10.1.1.1"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.client, "10.1.1.1");
    /* An untrusted peer cannot claim an address. */
    r = (req_spec){.path = "/", .addr = "192.0.2.1", .xff = "10.1.1.1"};
    decide(p, &r, &d);
    assert_string_equal(d.reason, "ip_not_allowed");
    ls_policy_free(p);
}

/* Request headers handed over on demand (ls_policy_request.header),
 * counting how often the engine asks for each. */
typedef struct {
    ls_policy_t *p;
    const char *name[4], *value[4];
    int asked[32];
} lazy_headers;

static ls_str lazy_header(void *ctx, size_t i)
{
    lazy_headers *h = ctx;
    h->asked[i]++;
    for (size_t k = 0; k < 4 && h->name[k]; k++)
        if (strcasecmp(h->name[k], ls_policy_header_name(h->p, i)) == 0)
            return (ls_str){h->value[k], strlen(h->value[k])};
    return (ls_str){NULL, 0};
}

static int asked_for(const lazy_headers *h, const char *name)
{
    for (size_t i = 0; i < ls_policy_header_count(h->p); i++)
        if (strcasecmp(ls_policy_header_name(h->p, i), name) == 0) return h->asked[i];
    fail_msg("the policy reads no %s header", name);
    return -1;
}

static void decide_lazy(lazy_headers *h, const char *path, ls_policy_decision *d)
{
    memset(h->asked, 0, sizeof h->asked);
    ls_policy_request req = {
        .method = {"GET", 3},
        .path = {path, strlen(path)},
        .remote_addr = {"127.0.0.1", 9},
        .header = lazy_header,
        .header_ctx = h,
    };
    ls_err err;
    th_ok(ls_policy_eval(h->p, &req, d, &err), &err);
    for (size_t i = 0; i < ls_policy_header_count(h->p); i++)
        assert_in_range(h->asked[i], 0, 1); /* once per decision at most */
}

static void test_policy_headers_are_asked_for_when_needed(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(
        "{\"name\":\"lazy\",\"authenticate\":["
        "{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]},"
        "{\"type\":\"jwt\",\"header\":\"X-Token\",\"secret_file\":\"hs.key\","
        "\"algorithms\":[\"HS256\"]}],"
        "\"rules\":[{\"path\":\"/healthz\",\"allow\":\"anyone\"},{\"path\":\"/me\"}],"
        "\"rate_limit\":{\"by\":\"header:X-Tenant\",\"rate\":1000,\"per\":\"1s\"},"
        "\"ip\":{\"trusted_proxies\":[\"127.0.0.1\"]},\"identity_headers\":{\"X-User\":\"sub\"}}",
        LS_POLICY_PRIVATE_RL);
    char *authz = bearer(token_for("alice", "", "", NULL));
    lazy_headers h = {.p = p,
                      .name = {"Authorization", "X-Tenant", "X-Forwarded-For"},
                      .value = {authz, "acme", "192.0.2.5"}};
    ls_policy_decision d;

    /* The first authenticator's credential decides: X-Token stays unread. */
    decide_lazy(&h, "/me", &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(set_header(&d, "X-User"), "alice");
    assert_string_equal(d.client, "192.0.2.5");
    assert_int_equal(asked_for(&h, "Authorization"), 1);
    assert_int_equal(asked_for(&h, "X-Token"), 0);
    assert_int_equal(asked_for(&h, "X-Tenant"), 1);
    assert_int_equal(asked_for(&h, "X-Forwarded-For"), 1);

    /* Without it, the second one is asked for and decides. */
    h.name[0] = "X-Token";
    decide_lazy(&h, "/me", &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(set_header(&d, "X-User"), "alice");
    assert_int_equal(asked_for(&h, "Authorization"), 1);
    assert_int_equal(asked_for(&h, "X-Token"), 1);

    /* A public route authenticates nobody. */
    decide_lazy(&h, "/healthz", &d);
    assert_int_equal(d.allow, 1);
    assert_int_equal(asked_for(&h, "Authorization"), 0);
    assert_int_equal(asked_for(&h, "X-Token"), 0);
    assert_int_equal(asked_for(&h, "X-Tenant"), 1);

    /* Neither credential: both were looked at, and the answer is 401. */
    h.name[0] = "X-Other";
    decide_lazy(&h, "/me", &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "not_authenticated");
    assert_int_equal(asked_for(&h, "Authorization"), 1);
    assert_int_equal(asked_for(&h, "X-Token"), 1);
    free(authz);
    ls_policy_free(p);
}

/* A header callback that does not return (as a Lua error leaves it)
 * when asked for one header. */
static jmp_buf raise_jmp;
static const char *raise_on;

static ls_str raising_header(void *ctx, size_t i)
{
    lazy_headers *h = ctx;
    if (strcasecmp(ls_policy_header_name(h->p, i), raise_on) == 0) longjmp(raise_jmp, 1);
    return lazy_header(ctx, i);
}

static int decide_raising(lazy_headers *h, const char *path)
{
    ls_policy_decision d;
    ls_policy_request req = {
        .method = {"GET", 3},
        .path = {path, strlen(path)},
        .remote_addr = {"192.0.2.9", 9},
        .header = raising_header,
        .header_ctx = h,
    };
    ls_err err;
    if (setjmp(raise_jmp)) return -1;
    th_ok(ls_policy_eval(h->p, &req, &d, &err), &err);
    return d.allow ? 0 : d.status;
}

/* A decision the header callback abandons takes no rate-limit budget and
 * leaves no allocation behind (the caller memo; valgrind and LSan see a
 * leak), and the next decision is whole. */
static void test_policy_abandoned_decision_leaves_nothing_behind(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load("{\"name\":\"raise\",\"authenticate\":[{\"type\":\"jwt\","
                          "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]}],"
                          "\"rules\":[{\"path\":\"/me\"},{\"path\":\"/\",\"allow\":\"anyone\"}],"
                          "\"rate_limit\":[{\"by\":\"ip\",\"rate\":1,\"per\":\"1m\",\"burst\":1},"
                          "{\"by\":\"header:X-Tenant\",\"rate\":100,\"per\":\"1s\"}],"
                          "\"identity_headers\":{\"X-User\":\"sub\"}}",
                          LS_POLICY_PRIVATE_RL);
    char *authz = bearer(token_for("alice", "", "", NULL));
    lazy_headers h = {.p = p, .name = {"Authorization", "X-Tenant"}, .value = {authz, "acme"}};
    raise_on = "X-Tenant";
    assert_int_equal(decide_raising(&h, "/"), -1);   /* anonymous: before any take */
    assert_int_equal(decide_raising(&h, "/me"), -1); /* a caller: before its memo */
    assert_int_equal(decide_raising(&h, "/me"), -1);
    raise_on = "X-None";
    assert_int_equal(decide_raising(&h, "/"), 0); /* the one request the ip budget holds */
    assert_int_equal(decide_raising(&h, "/me"), 429);
    free(authz);
    ls_policy_free(p);
}

/* Renames text (with mode) over the policy's jwks.json a second later:
 * the request r is still allowed with the keys before, and the notice
 * says the new file was refused, and why. */
static void keys_refused(ls_policy_t *p, const req_spec *r, const char *text, mode_t mode,
                         const char *why)
{
    char *from = th_path(dir, "jwks.json.tmp"), *to = th_path(dir, "jwks.json");
    write_file("jwks.json.tmp", text, mode);
    rename(from, to);
    free(from);
    free(to);
    ls_manual_clock_advance(&mc, 1000);
    ls_policy_decision d;
    decide(p, r, &d);
    assert_int_equal(d.allow, 1);
    assert_non_null(d.notice);
    assert_non_null(strstr(d.notice, "keeping the previous keys"));
    assert_non_null(strstr(d.notice, why));
}

static void test_policy_jwks_reload_and_bad_file_keeps_keys(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    /* oct key "0123...cdef" (32 bytes) in base64url */
    const char *jwks1 = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\","
                        "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";
    const char *jwks2 = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k2\","
                        "\"k\":\"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA\"}]}";
    write_file("jwks.json", jwks1, 0644);
    ls_policy_t *p = load("{\"name\":\"reload\",\"authenticate\":[{\"type\":\"jwt\","
                          "\"jwks\":\"jwks.json\",\"algorithms\":[\"HS256\"]}],"
                          "\"rules\":[{\"path\":\"/me\"}]}",
                          0);
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"exp\":%lld}", NOW_S + 600);
    char *t1 = mint(payload, SECRET);
    char *a1;
    if (asprintf(&a1, "Bearer %s", t1) < 0) abort();
    ls_policy_decision d;
    req_spec r = {.path = "/me", .authz = a1};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);

    /* Rotate: the old key is gone, tokens it signed stop working. */
    write_file("jwks.json.tmp", jwks2, 0644);
    char *from = th_path(dir, "jwks.json.tmp"), *to = th_path(dir, "jwks.json");
    rename(from, to);
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1); /* checked at most once a second */
    ls_manual_clock_advance(&mc, 1000);
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_null(d.notice);
    char *t2 = mint(payload, "fedcba9876543210fedcba9876543210");
    char *a2;
    if (asprintf(&a2, "Bearer %s", t2) < 0) abort();
    r.authz = a2;
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);

    /* A broken file keeps the keys and says so once. */
    keys_refused(p, &r, "{\"keys\": [", 0644, "jwks.json");
    decide(p, &r, &d);
    assert_null(d.notice);

    /* So does a file group or others may write, whatever keys it holds:
     * anyone could have put them there. */
    keys_refused(p, &r, jwks1, 0664, "mode 0664 lets group or others write it");
    r.authz = a1;
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    free(from);
    free(to);
    free(t1);
    free(t2);
    free(a1);
    free(a2);
    ls_policy_free(p);
}

/* The JWKS and PEM files a policy takes its keys from, like its other key
 * files, must not be writable by group or others. */
static void test_policy_key_files_others_may_write_are_refused(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    ls_err err;
    const char *jwks = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\","
                       "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";
    const char *with_jwks = "{\"name\":\"k\",\"authenticate\":[{\"type\":\"jwt\","
                            "\"jwks\":\"jwks.json\",\"algorithms\":[\"HS256\"]}]}";
    write_file("jwks.json", jwks, 0664);
    assert_int_equal(load_err(with_jwks, &err), LS_EPERM);
    assert_non_null(strstr(err.msg, "jwks.json: mode 0664 lets group or others write it, so "
                                    "anyone could add keys (chmod go-w)"));
    write_file("jwks.json", jwks, 0646);
    assert_int_equal(load_err(with_jwks, &err), LS_EPERM);
    write_file("jwks.json", jwks, 0644);
    ls_policy_free(load(with_jwks, 0));

    FILE *f = fopen(LS_TEST_VECTORS "/jwt/rfc7515-a2-public.pem", "r");
    assert_non_null(f);
    char pem[4096];
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = '\0';
    const char *with_pem = "{\"name\":\"k\",\"authenticate\":[{\"type\":\"jwt\","
                           "\"pem\":\"rsa.pem\",\"algorithms\":[\"RS256\"]}]}";
    write_file("rsa.pem", pem, 0666);
    assert_int_equal(load_err(with_pem, &err), LS_EPERM);
    assert_non_null(strstr(err.msg, "rsa.pem: mode 0666 lets group or others write it"));
    write_file("rsa.pem", pem, 0444);
    ls_policy_free(load(with_pem, 0));
}

/* Methods and hosts as long as a rule may name are matched whole: a deny
 * rule naming them is not skipped (it was, past 15 and 254 bytes), and
 * the audit record names the whole method. */
static void test_policy_long_methods_and_hosts_match_their_rules(void **state)
{
    (void)state;
    char host[260], json[1024];
    memset(host, 'h', 250);
    memcpy(host + 250, ".com", 5); /* 254 bytes */
    snprintf(json, sizeof json,
             "{\"name\":\"long\",\"rules\":["
             "{\"path\":\"/dav/**\",\"methods\":[\"BASELINE-CONTROL\"],\"deny\":true},"
             "{\"path\":\"/dav/**\",\"host\":\"%s\",\"deny\":true},"
             "{\"path\":\"/dav/**\",\"allow\":\"anyone\"}],"
             "\"audit\":{\"path\":\"long-audit.log\"}}",
             host);
    ls_policy_t *p = load(json, 0);
    char with_port[270];
    snprintf(with_port, sizeof with_port, "%s.:8080", host);
    static const struct {
        const char *method;
        int host, status;
    } cases[] = {
        {"BASELINE-CONTROL", 0, 403},
        {"baseline-control", 0, 403},
        {"UPDATEREDIRECTREF", 0, 0},
        {"GET", 1, 403},
        {"GET", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h = cases[i].host ? with_port : "api.example.com";
        ls_policy_request req = {
            .method = {cases[i].method, strlen(cases[i].method)},
            .path = {"/dav/x", 6},
            .host = {h, strlen(h)},
            .remote_addr = {"192.0.2.10", 10},
        };
        ls_policy_decision d;
        ls_err err;
        assert_int_equal(ls_policy_eval(p, &req, &d, &err), LS_OK);
        assert_int_equal(d.allow ? 0 : d.status, cases[i].status);
        if (cases[i].status) assert_string_equal(d.reason, "explicit_deny");
    }
    ls_policy_free(p); /* flushes */
    char *path = th_path(dir, "long-audit.log");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, "\"method\":\"BASELINE-CONTROL\""));
    fclose(f);
    unlink(path);
    free(path);
}

static void test_policy_github_webhook(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    write_file("gh.secret", "It's a Secret to Everybody\n", 0600);
    ls_policy_t *p = load("{\"name\":\"hooks\",\"authenticate\":[{\"type\":\"webhook\","
                          "\"provider\":\"github\",\"secret_file\":\"gh.secret\"}],"
                          "\"rules\":[{\"path\":\"/hooks/github\",\"methods\":[\"POST\"]}]}",
                          0);
    assert_int_equal(ls_policy_needs_body(p), LS_POLICY_BODY_EVERY_PATH);
    ls_policy_decision d;
    req_spec r = {.method = "POST",
                  .path = "/hooks/github",
                  .body = "Hello, World!",
                  .sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.subject, "github");
    r.body = "Hello, World?";
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "bad_signature");
    r.sig = NULL;
    decide(p, &r, &d);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "not_authenticated");
    ls_policy_free(p);
}

/* An authenticator with `paths` is tried on those paths only: a webhook
 * signature authenticates the hook, not every route, and only requests to
 * the hook need their body read. */
#define MIXED_POLICY                                                                              \
    "{\"name\":\"mixed\",\"authenticate\":["                                                      \
    "{\"type\":\"webhook\",\"provider\":\"github\",\"secret_file\":\"gh.secret\","                \
    "\"roles\":[\"github-hook\"],\"paths\":[\"/hooks/**\"]},"                                     \
    "{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]}],"                  \
    "\"rules\":[{\"path\":\"/hooks/github\",\"methods\":[\"POST\"],\"roles\":[\"github-hook\"]}," \
    "{\"path\":\"/me\"}]}"

static void test_policy_authenticator_paths(void **state)
{
    (void)state;
    orders_setup();
    write_file("gh.secret", "It's a Secret to Everybody\n", 0600);
    ls_policy_t *p = load(MIXED_POLICY, 0);
    const char *sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    ls_policy_decision d;
    req_spec r = {.method = "POST", .path = "/hooks/github", .body = "Hello, World!", .sig = sig};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.subject, "github");
    assert_null(d.notice);

    /* The same signed body on another route is no credential there. */
    r.method = "GET";
    r.path = "/me";
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "not_authenticated");
    assert_string_equal(resp_header(&d, "WWW-Authenticate"), "Bearer realm=\"mixed\"");
    /* ... nor on a path that only looks like the hook's before decoding. */
    r.path = "/hooks/%2e%2e/me";
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "not_authenticated");

    char *authz = bearer(token_for("alice", "", "", NULL));
    r.path = "/me";
    r.authz = authz;
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_string_equal(d.subject, "alice");
    /* A token is tried on the hook too: its rule wants the webhook's role. */
    r = (req_spec){.method = "POST", .path = "/hooks/github", .body = "forged", .authz = authz};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 403);
    assert_string_equal(d.reason, "missing_role");
    free(authz);

    assert_int_equal(ls_policy_needs_body(p), LS_POLICY_BODY_SOME_PATHS);
    assert_int_equal(ls_policy_path_needs_body(p, "/hooks/github", 13), 1);
    assert_int_equal(ls_policy_path_needs_body(p, "/hooks", 6), 1);
    assert_int_equal(ls_policy_path_needs_body(p, "/x/../hooks/a", 13), 1);
    assert_int_equal(ls_policy_path_needs_body(p, "/me", 3), 0);
    assert_int_equal(ls_policy_path_needs_body(p, "/hooks/%2e%2e/me", 16), 0);
    assert_int_equal(ls_policy_path_needs_body(p, "/../hooks", 9), 0); /* refused */
    assert_int_equal(ls_policy_path_needs_body(p, NULL, 0), 0);
    /* Without memory to tell, the body is read: a signature is never
     * checked over a body it was not given. */
    char longp[4001];
    memset(longp, 'a', sizeof longp - 1);
    memcpy(longp, "/me/", 4);
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(ls_policy_path_needs_body(p, longp, strlen(longp)), 0);
    ls_policy_free(p);
    p = load(MIXED_POLICY, 0);
    th_fail_install();
    th_fail_after(0);
    int needs = ls_policy_path_needs_body(p, longp, strlen(longp));
    th_fail_never();
    th_fail_uninstall();
    assert_int_equal(needs, 1);
    ls_policy_free(p);

    /* A webhook without paths next to other authenticators is said once. */
    p = load("{\"name\":\"wide\",\"authenticate\":["
             "{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]},"
             "{\"type\":\"webhook\",\"provider\":\"github\",\"secret_file\":\"gh.secret\"}],"
             "\"rules\":[{\"path\":\"/me\"}]}",
             0);
    assert_int_equal(ls_policy_needs_body(p), LS_POLICY_BODY_EVERY_PATH);
    assert_int_equal(ls_policy_path_needs_body(p, "/me", 3), 1);
    r = (req_spec){.path = "/me"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_non_null(d.notice);
    assert_non_null(strstr(d.notice, "authenticate[2]: a webhook without paths authenticates on "
                                     "every path"));
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_null(d.notice);
    ls_policy_free(p);

    /* The challenge of a 401 is that of an authenticator the path has. */
    write_file("users", "", 0600);
    p = load(
        "{\"name\":\"two\",\"authenticate\":["
        "{\"type\":\"basic\",\"users\":\"users\",\"realm\":\"staff\",\"paths\":[\"/admin/**\"]},"
        "{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
        "\"paths\":[\"/api/**\",\"/me\"]}],"
        "\"rules\":[{\"path\":\"/admin/**\"},{\"path\":\"/api/**\"},{\"path\":\"/me\"},"
        "{\"path\":\"/other\"}]}",
        0);
    req_spec q = {.path = "/admin/x"};
    assert_int_equal(decide(p, &q, &d), LS_OK);
    assert_int_equal(d.status, 401);
    assert_string_equal(resp_header(&d, "WWW-Authenticate"),
                        "Basic realm=\"staff\", charset=\"UTF-8\"");
    q.path = "/api/x";
    assert_int_equal(decide(p, &q, &d), LS_OK);
    assert_int_equal(d.status, 401);
    assert_string_equal(resp_header(&d, "WWW-Authenticate"), "Bearer realm=\"two\"");
    q.path = "/other"; /* no authenticator: no challenge */
    assert_int_equal(decide(p, &q, &d), LS_OK);
    assert_int_equal(d.status, 401);
    assert_null(resp_header(&d, "WWW-Authenticate"));
    assert_int_equal(ls_policy_needs_body(p), 0);
    assert_int_equal(ls_policy_path_needs_body(p, "/admin/x", 8), 0);
    ls_policy_free(p);
}

/* paths errors name the authenticator, the item and what is wrong; they
 * come after the authenticator's own fields are found right. */
static void test_policy_authenticator_paths_errors(void **state)
{
    (void)state;
    orders_setup();
    static const struct {
        const char *paths, *msg;
    } cases[] = {
        {"\"/a\"", "authenticate[1].paths: expected a list of paths, got string"},
        {"[]", "authenticate[1].paths: empty list (leave it out to mean every path)"},
        {"{}", "authenticate[1].paths: expected a list of paths, got object"},
        {"[\"/a\",\"/b*\"]",
         "authenticate[1].paths[2]: path '/b*': '*' must be a whole segment: '*' is one segment, "
         "'**' any number"},
        {"[7]", "authenticate[1].paths[1]: expected a path, got integer"},
        {"[\"a\"]", "authenticate[1].paths[1]: path 'a': must start with '/'"},
        {"[\"/a//b\"]", "authenticate[1].paths[1]: path '/a//b': empty segment"},
        {"[\"/a/%zz\"]", "authenticate[1].paths[1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\","
                 "\"algorithms\":[\"HS256\"],\"paths\":%s}]}",
                 cases[i].paths);
        ls_err err;
        assert_int_equal(load_err(json, &err), LS_EINVAL);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err.msg, cases[i].msg);
    }
    ls_err err;
    /* the authenticator's own mistakes first; a name labels the paths */
    assert_int_equal(load_err("{\"name\":\"x\",\"authenticate\":[{\"paths\":3}]}", &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "authenticate[1]: type required"));
    assert_int_equal(load_err("{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\","
                              "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
                              "\"pathz\":[\"/a\"],\"paths\":3}]}",
                              &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "unknown field 'pathz'"));
    assert_int_equal(load_err("{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"name\":"
                              "\"staff-tokens-of-the-eastern-region-of-the-company-that-has-a-"
                              "very-long-name-indeed-more-than-a-hundred\","
                              "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
                              "\"paths\":[\"/b*\"]}]}",
                              &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "more-than-a-hundred.paths[1]: path '/b*'"));
}

/* A list option given empty would check nothing where the author meant
 * a check (a token without aud passing an audience = {}), and a range
 * error says the range: the policy does not load, and says which field. */
static void test_policy_authenticator_options_fail_closed(void **state)
{
    (void)state;
    orders_setup();
    write_file("hook.secret", "s3cret", 0600);
    static const struct {
        const char *fields, *msg;
    } cases[] = {
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],\"audience\":[]",
         "authenticate[1].audience: the list is empty (leave it out to not check aud)"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
         "\"required_claims\":[]",
         "authenticate[1].required_claims: the list is empty (leave it out to require none)"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[]",
         "authenticate[1].algorithms: required"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],\"issuer\":\"\"",
         "authenticate[1].issuer: must not be empty (leave it out to not check iss)"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],\"leeway\":-5",
         "authenticate[1].leeway: out of range (0 to 86400 seconds: at most one day)"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
         "\"leeway\":\"2d\"",
         "authenticate[1].leeway: out of range (0 to 86400 seconds: at most one day)"},
        {"\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
         "\"cache_ttl\":-1",
         "authenticate[1].cache_ttl: out of range (0 to 3200000000 seconds)"},
        {"\"type\":\"webhook\",\"provider\":\"github\",\"secret_file\":\"hook.secret\","
         "\"roles\":[]",
         "authenticate[1].roles: the list is empty (leave it out for no roles)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"name\":\"x\",\"authenticate\":[{%s}]}", cases[i].fields);
        ls_err err;
        ls_rc rc = load_err(json, &err);
        if (rc != LS_EINVAL || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, ls_rc_name(rc), err.msg,
                     cases[i].msg);
    }
    ls_err err; /* one of each still loads */
    assert_int_equal(
        load_err("{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\","
                 "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"],"
                 "\"audience\":[\"a\"],\"required_claims\":\"sub\",\"leeway\":86400}]}",
                 &err),
        LS_OK);
}

/* An identity header that would break the request or stand in for its
 * credentials, or that names no source, does not load. */
static void test_policy_identity_headers_refused(void **state)
{
    (void)state;
    orders_setup();
    static const struct {
        const char *idh, *msg;
    } cases[] = {
        {"\"Authorization\":\"sub\"",
         "identity_headers.Authorization: not allowed: the backend reads Authorization as the "
         "request's own, not as the caller's identity"},
        {"\"proxy-authorization\":\"sub\"", "identity_headers.proxy-authorization: not allowed"},
        {"\"COOKIE\":\"sub\"", "identity_headers.COOKIE: not allowed"},
        {"\"Host\":\"sub\"", "identity_headers.Host: not allowed"},
        {"\"Content-Length\":\"sub\"", "identity_headers.Content-Length: not allowed"},
        {"\"Content-Type\":\"sub\"", "identity_headers.Content-Type: not allowed"},
        {"\"Transfer-Encoding\":\"sub\"", "identity_headers.Transfer-Encoding: not allowed"},
        {"\"Connection\":\"sub\"", "identity_headers.Connection: not allowed"},
        {"\"x-token\":\"sub\"",
         "identity_headers.x-token: not allowed: authenticate[1] reads its credential from it"},
        {"\"X-Forwarded-For\":\"sub\"",
         "identity_headers.X-Forwarded-For: not allowed: the backend reads X-Forwarded-For as "
         "the request's own"},
        {"\"forwarded\":\"sub\"", "identity_headers.forwarded: not allowed"},
        {"\"X-Real-IP\":\"sub\"", "identity_headers.X-Real-IP: not allowed"},
        /* spellings a CGI-style backend takes for the same header (the
         * gate would strip the real one as a lookalike) */
        {"\"X_Forwarded_For\":\"sub\"",
         "identity_headers.X_Forwarded_For: not allowed: the backend reads X-Forwarded-For as "
         "the request's own"},
        {"\"proxy.authorization\":\"sub\"",
         "identity_headers.proxy.authorization: not allowed: the backend reads "
         "Proxy-Authorization"},
        {"\"X_Token\":\"sub\"",
         "identity_headers.X_Token: not allowed: authenticate[1] reads its credential from it"},
        {"\"x.token\":\"sub\"", "identity_headers.x.token: not allowed: authenticate[1]"},
        {"\"X-U\":\"\"",
         "identity_headers.X-U: empty: expected sub, roles, scopes or a claim name"},
        {"\"X-U\":\"claims.\"", "identity_headers.X-U: empty"},
        {"\"\":\"sub\"", "identity_headers: \"\" is not a header name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[768];
        snprintf(json, sizeof json,
                 "{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\","
                 "\"algorithms\":[\"HS256\"],\"header\":\"X-Token\"}],"
                 "\"ip\":{\"trusted_proxies\":[\"10.0.0.1\"]},\"identity_headers\":{%s}}",
                 cases[i].idh);
        ls_err err;
        ls_rc rc = load_err(json, &err);
        if (rc != LS_EINVAL || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, ls_rc_name(rc), err.msg,
                     cases[i].msg);
    }
    ls_err err;
    /* the assertion's header is no identity header, in any spelling */
    assert_int_equal(load_err("{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\","
                              "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]}],"
                              "\"identity_headers\":{\"X_Lodestone_Assertion\":\"sub\"},"
                              "\"assertion\":{\"ttl\":\"60s\"}}",
                              &err),
                     LS_EINVAL);
    assert_string_equal(err.msg, "assertion.header: X-Lodestone-Assertion is an identity header "
                                 "(identity_headers.X_Lodestone_Assertion)");
    /* other names, and claims, load */
    assert_int_equal(
        load_err("{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\","
                 "\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]}],"
                 "\"identity_headers\":{\"X-User\":\"sub\",\"X-T\":\"claims.tenant\"}}",
                 &err),
        LS_OK);
}

static ls_rc load_mixed(void *ud)
{
    (void)ud;
    ls_policy_opts opts = {
        .base_dir = dir, .rl_dir = dir, .clock = &mc.clock, .flags = LS_POLICY_PRIVATE_RL};
    ls_policy_t *p = NULL;
    ls_rc rc = ls_policy_load(&p, MIXED_POLICY, strlen(MIXED_POLICY), &opts, NULL);
    ls_policy_free(p);
    return rc;
}

static void test_policy_authenticator_paths_enomem(void **state)
{
    (void)state;
    orders_setup();
    write_file("gh.secret", "It's a Secret to Everybody\n", 0600);
    assert_true(th_each_alloc_failure(load_mixed, NULL) > 10);
}

/* A rate limit that cannot be taken denies with 500, and says why in
 * the notice (lighttpd's error log) at most once a minute. */
static void test_policy_rate_limit_trouble_is_said(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load("{\"name\":\"rt\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
                          "\"rate_limit\":{\"by\":\"ip\",\"rate\":100}}",
                          LS_POLICY_NO_AUDIT);
    ls_policy_decision d;
    req_spec r = {.path = "/x"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    char *table = th_path(dir, "lodestone-rt.rl");
    assert_int_equal(truncate(table, 0), 0); /* cut short while in use */
    free(table);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 500);
    assert_string_equal(d.reason, "internal_error");
    assert_non_null(d.notice);
    assert_non_null(strstr(d.notice, "rate limit: denying with 500"));
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 500);
    assert_null(d.notice);
    ls_manual_clock_advance(&mc, 61000);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 500);
    assert_non_null(d.notice);
    ls_policy_free(p);

    /* Two notices of one decision are both said: the load's and the
     * decision's. */
    write_file("gh.secret", "It's a Secret to Everybody\n", 0600);
    p = load("{\"name\":\"rt2\",\"authenticate\":["
             "{\"type\":\"jwt\",\"secret_file\":\"hs.key\",\"algorithms\":[\"HS256\"]},"
             "{\"type\":\"webhook\",\"provider\":\"github\",\"secret_file\":\"gh.secret\"}],"
             "\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
             "\"rate_limit\":{\"by\":\"ip\",\"rate\":100}}",
             LS_POLICY_NO_AUDIT);
    table = th_path(dir, "lodestone-rt2.rl");
    assert_int_equal(truncate(table, 0), 0);
    free(table);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 500);
    assert_non_null(d.notice);
    assert_non_null(strstr(d.notice, "a webhook without paths authenticates on every path"));
    assert_non_null(strstr(d.notice, "; rate limit: denying with 500"));
    ls_policy_free(p);
}

/* A rate limit with paths counts requests to those paths only: a login
 * form gets a tighter budget than the rest of the site. */
static void test_policy_rate_limit_paths(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load("{\"name\":\"rlp\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
                          "\"rate_limit\":[{\"by\":\"ip\",\"rate\":1,\"per\":\"1m\",\"burst\":2,"
                          "\"paths\":[\"/login\",\"/password/**\"]},"
                          "{\"by\":\"ip\",\"rate\":100,\"burst\":5}]}",
                          LS_POLICY_NO_AUDIT | LS_POLICY_PRIVATE_RL);
    ls_policy_decision d;
    req_spec r = {.method = "POST", .path = "/login"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    r.path = "/password/reset/"; /* the same budget: the first limit's */
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    r.path = "/x/../login";
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 429);
    assert_string_equal(resp_header(&d, "RateLimit-Limit"), "2");
    /* Elsewhere only the second limit counts: 2 of its 5 went to the
     * allowed logins (a denied one stops at the first limit). */
    r.path = "/index.html";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(decide(p, &r, &d), LS_OK);
        assert_int_equal(d.allow, 1);
    }
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 429);
    assert_string_equal(resp_header(&d, "RateLimit-Limit"), "5");
    ls_policy_free(p);

    ls_err err;
    assert_int_equal(
        load_err("{\"name\":\"x\",\"rate_limit\":{\"rate\":1,\"paths\":[\"/a*\"]}}", &err),
        LS_EINVAL);
    assert_non_null(strstr(err.msg, "rate_limit.paths[1]: path '/a*': '*' must be a whole"));
    assert_int_equal(
        load_err("{\"name\":\"x\",\"rate_limit\":[{\"rate\":1},{\"rate\":1,\"paths\":[]}]}", &err),
        LS_EINVAL);
    assert_non_null(strstr(err.msg, "rate_limit[2].paths: empty list"));
    assert_int_equal(load_err("{\"name\":\"x\",\"rate_limit\":{\"rate\":1,\"path\":\"/a\"}}", &err),
                     LS_EINVAL);
    assert_non_null(strstr(err.msg, "unknown field 'path' (by, rate, per, burst, paths)"));
}

/* A limit's budget follows what it counts (by, per, paths), not its place
 * in the list: a reload that puts another limit before it moves no budget,
 * and one that changes its rate keeps it. */
static void test_policy_rate_limit_budget_survives_reorder(void **state)
{
    (void)state;
    orders_setup();
    const char *login =
        "{\"by\":\"ip\",\"rate\":1,\"per\":\"1m\",\"burst\":1,\"paths\":[\"/login\"]}";
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\":\"rlk\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
             "\"rate_limit\":[%s]}",
             login);
    ls_policy_t *p = load(json, LS_POLICY_NO_AUDIT);
    ls_policy_decision d;
    req_spec r = {.method = "POST", .path = "/login"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 429);
    ls_policy_free(p);

    /* The reload: a site-wide limit first, the login limit second. */
    snprintf(json, sizeof json,
             "{\"name\":\"rlk\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
             "\"rate_limit\":[{\"by\":\"ip\",\"rate\":100,\"burst\":50},%s]}",
             login);
    p = load(json, LS_POLICY_NO_AUDIT);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.status, 429); /* still spent */
    assert_string_equal(resp_header(&d, "RateLimit-Limit"), "1");
    ls_policy_free(p);

    /* Two limits alike in what they count still keep two budgets. */
    p = load("{\"name\":\"rlk2\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
             "\"rate_limit\":[{\"by\":\"ip\",\"rate\":5,\"burst\":2},"
             "{\"by\":\"ip\",\"rate\":5,\"burst\":3}]}",
             LS_POLICY_NO_AUDIT | LS_POLICY_PRIVATE_RL);
    r.path = "/x";
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_int_equal(decide(p, &r, &d), LS_OK); /* the first's 2 are spent, not the second's 3 */
    assert_int_equal(d.status, 429);
    assert_string_equal(resp_header(&d, "RateLimit-Limit"), "2");
    ls_policy_free(p);
}

/* Records the audit log cannot write are said in a notice (the server's
 * log), looked for at most once a minute. */
static void test_policy_audit_write_failures_are_said(void **state)
{
    (void)state;
    orders_setup();
    char *full = th_path(dir, "full.log");
    assert_int_equal(symlink("/dev/full", full), 0); /* every write: ENOSPC */
    ls_policy_t *p = load("{\"name\":\"af\",\"rules\":[{\"path\":\"/**\",\"allow\":\"anyone\"}],"
                          "\"audit\":{\"path\":\"full.log\",\"log\":\"all\"}}",
                          0);
    ls_policy_decision d;
    req_spec r = {.path = "/x"};
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1);
    assert_null(d.notice);
    ls_policy_flush(p); /* the write fails */
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_null(d.notice); /* not looked for again within the minute */
    ls_manual_clock_advance(&mc, 61000);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_int_equal(d.allow, 1); /* the decision goes on */
    assert_non_null(d.notice);
    /* the flush, then the third decision's record with the second's */
    assert_non_null(strstr(d.notice, "full.log: 2 failed writes or reopens, 3 records lost"));
    assert_non_null(strstr(d.notice, "No space left on device"));
    ls_manual_clock_advance(&mc, 30000);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_null(d.notice); /* its write failed too: said in the next minute's */
    ls_manual_clock_advance(&mc, 31000);
    assert_int_equal(decide(p, &r, &d), LS_OK);
    assert_non_null(d.notice);
    assert_non_null(strstr(d.notice, "full.log: 2 failed writes or reopens, 2 records lost"));
    ls_policy_free(p);
    unlink(full);
    free(full);
}

/* A jwks_url cache directory another user owns is refused: that user
 * could plant keys. Only root can make one here. */
static void test_policy_jwks_cache_dir_of_another_user_is_refused(void **state)
{
    (void)state;
    orders_setup();
    char *other = th_path(dir, "theirs");
    assert_int_equal(mkdir(other, 0755), 0);
    const char *json = "{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\","
                       "\"jwks_url\":\"https://id.example.com/jwks\","
                       "\"jwks_cache\":\"theirs/idp.json\",\"algorithms\":[\"RS256\"]}]}";
    ls_err err;
    assert_int_equal(load_err(json, &err), LS_OK);
    if (geteuid() == 0) {
        assert_int_equal(chown(other, 65534, 65534), 0);
        assert_int_equal(load_err(json, &err), LS_EPERM);
        assert_non_null(strstr(err.msg, "authenticate[1].jwks_cache: directory "));
        assert_non_null(strstr(err.msg, "belongs to uid 65534, who could plant keys"));
        assert_int_equal(chown(other, 0, 0), 0); /* root's own is fine */
        assert_int_equal(load_err(json, &err), LS_OK);
    }
    free(other);
}

static void test_policy_assertion_is_signed_and_verifiable(void **state)
{
    (void)state;
    orders_setup();
    const char *json =
        "{\"name\":\"asrt\",\"authenticate\":[{\"type\":\"jwt\",\"secret_file\":\"hs.key\","
        "\"algorithms\":[\"HS256\"],\"roles_claim\":\"realm_access.roles\"}],"
        "\"rules\":[{\"path\":\"/me\"}],\"assertion\":{\"ttl\":\"60s\",\"audience\":\"backend\"}}";
    char *keyfile = th_path(dir, "asrt.assertion.key");
    unlink(keyfile);
    ls_policy_t *p = load(json, 0);
    struct stat st;
    assert_int_equal(stat(keyfile, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ls_policy_strip_count(p), 1);
    assert_string_equal(ls_policy_strip_name(p, 0), "X-Lodestone-Assertion");

    /* The JWKS endpoint serves the public key. */
    ls_policy_decision d;
    req_spec r = {.path = "/.well-known/lodestone/jwks.json"};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 0);
    assert_int_equal(d.status, 200);
    assert_string_equal(resp_header(&d, "Content-Type"), "application/jwk-set+json");
    ls_jwks_t *ks = NULL;
    ls_err err;
    th_ok(ls_jwks_parse(&ks, d.body, d.body_len, &err), &err);

    char *authz = bearer(token_for("alice", "\"admin\",\"ops\"", "", NULL));
    r = (req_spec){.path = "/me", .authz = authz};
    decide(p, &r, &d);
    assert_int_equal(d.allow, 1);
    const char *a1 = set_header(&d, "X-Lodestone-Assertion");
    assert_non_null(a1);
    char *first = strdup(a1);
    /* A backend verifies it with the JWKS. */
    const char *aud[] = {"backend"};
    ls_jwt_opts vo = {.algs = LS_JWT_ALG_BIT(LS_JWT_EDDSA),
                      .issuer = "lodestone:asrt",
                      .audiences = aud,
                      .n_audiences = 1,
                      .clock = &mc.clock};
    ls_jwt_t *t = NULL;
    ls_jwt_reason why;
    th_ok(ls_jwt_verify(&t, ks, first, strlen(first), &vo, &why, &err), &err);
    assert_string_equal(ls_jwt_subject(t), "alice");
    assert_int_equal(ls_jwt_exp(t), NOW_S + 60);
    ls_buf claims = LS_BUF_INIT;
    th_ok(ls_jwt_claims_json(t, &claims, &err), &err);
    assert_non_null(strstr((char *)claims.ptr, "\"roles\":[\"admin\",\"ops\"]"));
    ls_buf_free(&claims);
    ls_jwt_free(t);

    /* Signed once and reused for half its lifetime, then renewed. */
    decide(p, &r, &d);
    assert_string_equal(set_header(&d, "X-Lodestone-Assertion"), first);
    ls_manual_clock_advance(&mc, 31000);
    decide(p, &r, &d);
    assert_string_not_equal(set_header(&d, "X-Lodestone-Assertion"), first);
    ls_policy_free(p);

    /* Another load (another worker) uses the same key. */
    p = load(json, 0);
    decide(p, &(req_spec){.path = "/.well-known/lodestone/jwks.json"}, &d);
    ls_jwks_t *ks2 = NULL;
    th_ok(ls_jwks_parse(&ks2, d.body, d.body_len, &err), &err);
    unsigned char f1[LS_JWKS_FPBYTES], f2[LS_JWKS_FPBYTES];
    ls_jwks_fingerprint(ks, f1);
    ls_jwks_fingerprint(ks2, f2);
    assert_memory_equal(f1, f2, sizeof f1);
    ls_policy_free(p);
    ls_jwks_free(ks);
    ls_jwks_free(ks2);

    /* A key file others can read is refused. */
    chmod(keyfile, 0644);
    assert_int_equal(load_err(json, &err), LS_EPERM);
    assert_non_null(strstr(err.msg, "chmod 600"));
    unlink(keyfile);
    free(keyfile);
    free(first);
    free(authz);
}

static void test_policy_load_errors_name_the_field(void **state)
{
    (void)state;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    static const struct {
        const char *json, *msg;
        ls_rc rc;
    } cases[] = {
        {"[1]", "a policy must be a table", LS_EINVAL},
        {"{\"rules\":[]}", "name: required", LS_EINVAL},
        {"{\"name\":\"a b\"}", "may hold only letters", LS_EINVAL},
        {"{\"name\":\"\"}", "name: must not be empty", LS_EINVAL},
        {"{\"name\":\".x\"}", "name: must not start with '.'", LS_EINVAL},
        /* the name goes into file names (rate-limit table, jwks cache) */
        {"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         "name: 65 characters long, at most 64", LS_EINVAL},
        {"{\"name\":\"x\",\"rule\":[]}", "unknown field 'rule'", LS_EINVAL},
        {"{\"name\":\"x\",\"strip_lookalikes\":\"no\"}", "strip_lookalikes: expected true or false",
         LS_EINVAL},
        {"{\"name\":\"x\",\"rules\":[{\"path\":\"/a\",\"role\":[\"x\"]}]}", "rules[1]", LS_EINVAL},
        {"{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"jwks\":\"j.json\"}]}",
         "authenticate[1].algorithms: required", LS_EINVAL},
        {"{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"jwks\":\"missing.json\","
         "\"algorithms\":[\"RS256\"]}]}",
         "missing.json", LS_ENOTFOUND},
        {"{\"name\":\"x\",\"authenticate\":[{\"type\":\"jwt\",\"jwks\":\"j.json\","
         "\"algorithms\":[\"none\"]}]}",
         "authenticate[1].algorithms[1]", LS_EINVAL},
        {"{\"name\":\"x\",\"authenticate\":[{\"type\":\"saml\"}]}", "is not jwt, api_key",
         LS_EINVAL},
        {"{\"name\":\"x\",\"authenticate\":[{\"type\":\"api_key\"}]}",
         "authenticate[1].keys: required", LS_EINVAL},
        {"{\"name\":\"x\",\"rules\":[{\"path\":\"a\"}]}", "rules[1]: path 'a': must start with '/'",
         LS_EINVAL},
        {"{\"name\":\"x\",\"rate_limit\":{\"by\":\"planet\",\"rate\":1}}",
         "rate_limit.by: \"planet\"", LS_EINVAL},
        {"{\"name\":\"x\",\"rate_limit\":{\"rate\":0}}", "rate_limit", LS_EINVAL},
        {"{\"name\":\"x\",\"ip\":{\"allow\":[\"10.0.0.1/8\"]}}", "host bits set", LS_EINVAL},
        {"{\"name\":\"x\",\"audit\":{\"path\":\"a.log\",\"log\":\"some\"}}", "audit.log: \"some\"",
         LS_EINVAL},
        {"{\"name\":\"x\",\"identity_headers\":{\"X-User\":7}}", "identity_headers.X-User",
         LS_EINVAL},
        {"{\"name\":\"x\",\"audit\":{\"path\":\"a.log\",\"request_id\":7}}",
         "audit.request_id: expected a header name or false", LS_EINVAL},
        {"{\"name\":\"x\",\"audit\":{\"path\":\"a.log\",\"request_id\":\"Request Id\"}}",
         "audit.request_id: \"Request Id\" is not a header name", LS_EINVAL},
        {"{\"name\":\"x\",\"identity_headers\":{\"X-Id\":\"sub\"},"
         "\"audit\":{\"path\":\"a.log\",\"request_id\":\"x-id\"}}",
         "audit.request_id: \"x-id\" is an identity header too", LS_EINVAL},
        {"{\"name\":\"x\",\"audit\":{\"path\":\"a.log\",\"id\":1}}",
         "audit: unknown field 'id' (path, log, request_id)", LS_EINVAL},
        {"{\"name\":", "policy JSON: line 1", LS_EINVAL},
    };
    write_file("j.json", "{\"keys\":[]}", 0644);
    ls_err ok;
    assert_int_equal(
        load_err("{\"name\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
                 &ok),
        LS_OK); /* 64 is fine */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_err err = {0};
        ls_rc rc = load_err(cases[i].json, &err);
        if (rc != cases[i].rc || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %s \"%s\", want %s containing \"%s\"", i, ls_rc_name(rc),
                     err.msg, ls_rc_name(cases[i].rc), cases[i].msg);
    }
}

static ls_rc load_orders(void *ud)
{
    (void)ud;
    ls_policy_opts opts = {
        .base_dir = dir, .rl_dir = dir, .clock = &mc.clock, .flags = LS_POLICY_PRIVATE_RL};
    const char *json = ORDERS_POLICY;
    ls_policy_t *p = NULL;
    ls_rc rc =
        ls_policy_load(&p, json, strlen(json), &opts, NULL); /* NULL err: codes still right */
    ls_policy_free(p);
    return rc;
}

static void test_policy_load_reports_enomem(void **state)
{
    (void)state;
    orders_setup();
    long points = th_each_alloc_failure(load_orders, NULL);
    assert_true(points > 10);
}

/* A decision that runs out of memory while it verifies a token denies
 * with 500 internal_error: never a 401, which would tell a client with a
 * good token that it is bad, and never an allow without an identity. Each
 * allocation of a cold HS256 decision fails in turn (a new token each
 * time, so none is cached). */
static void test_policy_out_of_memory_while_deciding_is_500(void **state)
{
    (void)state;
    orders_setup();
    ls_policy_t *p = load(ORDERS_POLICY, LS_POLICY_NO_AUDIT | LS_POLICY_PRIVATE_RL);
    long points = 0, allowed_despite = 0;
    th_fail_install();
    for (long i = 0;; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "u%ld", i);
        char *authz =
            bearer(token_for(sub, "", "orders:read", NULL)); /* libc's malloc: not counted */
        ls_policy_decision d;
        th_fail_after(i);
        long before = th_alloc_count();
        ls_rc rc = decide(p, &(req_spec){.path = "/orders/1", .authz = authz}, &d);
        int injected = i < th_alloc_count() - before;
        th_fail_never();
        free(authz);
        assert_int_equal(rc, LS_OK);
        if (!injected) {
            assert_int_equal(d.allow, 1);
            break;
        }
        points++;
        if (d.allow) {
            /* a failure that does not matter (a cache entry not kept): the
             * caller is still who the token says */
            assert_string_equal(d.subject, sub);
            allowed_despite++;
            continue;
        }
        if (d.status != 500)
            fail_msg("allocation %ld failed: status %d (%s)", i, d.status, d.reason);
        assert_string_equal(d.reason, "internal_error");
        assert_null(set_header(&d, "X-User"));
    }
    th_fail_uninstall();
    assert_true(points > 3);
    assert_true(allowed_despite < points);
    ls_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_public_route_needs_no_token),
        cmocka_unit_test(test_policy_jwt_allows_and_sets_identity),
        cmocka_unit_test(test_policy_auth_scheme_in_any_case),
        cmocka_unit_test(test_policy_denials_have_status_and_reason),
        cmocka_unit_test(test_policy_claims_and_forged_identity),
        cmocka_unit_test(test_policy_token_strings_cannot_pass_for_others),
        cmocka_unit_test(test_policy_audit_log_has_decisions_and_no_token),
        cmocka_unit_test(test_policy_audit_records_carry_request_ids),
        cmocka_unit_test(test_policy_request_ids_in_deny_mode_and_unique),
        cmocka_unit_test(test_policy_cached_token_keeps_identity_and_budget),
        cmocka_unit_test(test_policy_api_key_and_rate_limit),
        cmocka_unit_test(test_policy_rate_limit_by_header_keeps_long_values_apart),
        cmocka_unit_test(test_policy_ip_rules_and_trusted_proxies),
        cmocka_unit_test(test_policy_headers_are_asked_for_when_needed),
        cmocka_unit_test(test_policy_abandoned_decision_leaves_nothing_behind),
        cmocka_unit_test(test_policy_jwks_reload_and_bad_file_keeps_keys),
        cmocka_unit_test(test_policy_key_files_others_may_write_are_refused),
        cmocka_unit_test(test_policy_out_of_memory_while_deciding_is_500),
        cmocka_unit_test(test_policy_long_methods_and_hosts_match_their_rules),
        cmocka_unit_test(test_policy_github_webhook),
        cmocka_unit_test(test_policy_authenticator_paths),
        cmocka_unit_test(test_policy_authenticator_paths_errors),
        cmocka_unit_test(test_policy_authenticator_options_fail_closed),
        cmocka_unit_test(test_policy_identity_headers_refused),
        cmocka_unit_test(test_policy_authenticator_paths_enomem),
        cmocka_unit_test(test_policy_rate_limit_trouble_is_said),
        cmocka_unit_test(test_policy_rate_limit_paths),
        cmocka_unit_test(test_policy_rate_limit_budget_survives_reorder),
        cmocka_unit_test(test_policy_audit_write_failures_are_said),
        cmocka_unit_test(test_policy_jwks_cache_dir_of_another_user_is_refused),
        cmocka_unit_test(test_policy_assertion_is_signed_and_verifiable),
        cmocka_unit_test(test_policy_load_errors_name_the_field),
        cmocka_unit_test(test_policy_load_reports_enomem),
    };
    return cmocka_run_group_tests_name("policy", tests, setup, teardown);
}

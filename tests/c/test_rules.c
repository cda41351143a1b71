/* SPDX-License-Identifier: MIT
 * Tests of native/policy path normalisation (path.c) and access rules
 * (rules.c): normalisation tricks, pattern matching, route selection,
 * requirement checks, compile errors and allocation failures. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include "ls_json.h"
#include "policy/path.h"
#include "policy/rules.h"

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
    json_t *v = NULL;
    ls_err err = {0};
    ls_rc rc = ls_json_parse(text, strlen(text), &v, &err);
    if (rc != LS_OK) fail_msg("bad test JSON %s: %s", text, err.msg);
    return v;
}

static ls_rules_t *compile(const char *text)
{
    json_t *decl = parse(text);
    ls_rules_t *r = NULL;
    ls_err err = {0};
    th_ok(ls_rules_compile(&r, decl, &err), &err);
    json_decref(decl);
    return r;
}

/* Compiles text, expecting LS_EINVAL with a message containing want. */
static void compile_fails(const char *text, const char *want)
{
    json_t *decl = parse(text);
    ls_rules_t *r = (ls_rules_t *)1;
    ls_err err = {0};
    ls_rc rc = ls_rules_compile(&r, decl, &err);
    json_decref(decl);
    if (rc != LS_EINVAL) fail_msg("%s: got %s, want EINVAL", text, ls_rc_name(rc));
    assert_null(r);
    if (strstr(err.msg, want) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, err.msg, want);
}

/* Name of the rule matched by (method, host, raw path), or "-" for none. */
static const char *route(const ls_rules_t *r, const char *method, const char *host, const char *raw)
{
    ls_buf p = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_path_normalize(raw, strlen(raw), &p, &err), &err);
    const ls_rule *rule = NULL;
    ls_rc rc = ls_rules_match(r, method, host, (const char *)p.ptr, p.len, &rule);
    ls_buf_free(&p);
    if (rc == LS_ENOTFOUND) return "-";
    assert_int_equal(rc, LS_OK);
    return ls_rule_name(rule);
}

static const ls_rule *match(const ls_rules_t *r, const char *method, const char *path)
{
    const ls_rule *rule = NULL;
    if (ls_rules_match(r, method, NULL, path, strlen(path), &rule) != LS_OK)
        fail_msg("%s %s: no rule", method, path);
    return rule;
}

static const char *const no_strings[] = {NULL};

static ls_identity who(const char *const *roles, size_t nroles, const char *const *scopes,
                       size_t nscopes, const json_t *claims)
{
    ls_identity id = {
        1,       "alice", roles ? roles : no_strings, nroles, scopes ? scopes : no_strings,
        nscopes, claims};
    return id;
}

/* ---- path normalisation ---- */

static void test_path_normalize_examples(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"/", "/"},
        {"//", "/"},
        {"/admin", "/admin"},
        {"//admin", "/admin"},
        {"/./admin", "/admin"},
        {"/admin/../admin", "/admin"},
        {"/x/%2e%2e/admin", "/admin"},
        {"/x/%2E%2e/admin", "/admin"},
        {"/x/.%2e/admin", "/admin"},
        {"/%2e/admin", "/admin"},
        {"/a/b/", "/a/b/"},
        {"/a//b//", "/a/b/"},
        {"/a/b/..", "/a/"},
        {"/a/b/.", "/a/b/"},
        {"/a/..", "/"},
        {"/a/b/../../", "/"},
        {"/a/./b/../c", "/a/c"},
        {"/a/%41%62", "/a/Ab"},
        {"/a%20b", "/a b"},
        {"/%25", "/%"},
        {"/%252e%252e", "/%2e%2e"},
        {"/...", "/..."},
        {"/a/.b/..c", "/a/.b/..c"},
        {"/caf%C3%A9", "/caf\xc3\xa9"},
        {"/a;b/c", "/a;b/c"},
    };
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i][0];
        ls_rc rc = ls_path_normalize(in, strlen(in), &out, &err);
        if (rc != LS_OK) fail_msg("%s: %s", in, err.msg);
        if (strcmp((const char *)out.ptr, cases[i][1]) != 0 || out.len != strlen(cases[i][1]))
            fail_msg("%s: got \"%s\", want \"%s\"", in, out.ptr, cases[i][1]);
    }
    ls_buf_free(&out);
}

static void test_path_normalize_rejects_tricks(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        const char *msg;
    } cases[] = {
        {"", 0, "must start with '/'"},
        {"admin", 0, "must start with '/'"},
        {"%2fadmin", 0, "must start with '/'"},
        {"/a%zz", 0, "invalid %-escape at byte 2"},
        {"/a%2", 0, "invalid %-escape"},
        {"/a%", 0, "invalid %-escape"},
        {"/a%g0", 0, "invalid %-escape"},
        {"/admin%2Fx", 0, "encoded slash at byte 6"},
        {"/admin%2fx", 0, "encoded slash"},
        {"/a%5cb", 0, "encoded backslash"},
        {"/a%5Cb", 0, "encoded backslash"},
        {"/a%00b", 0, "encoded NUL"},
        {"/a\0b", 4, "NUL byte at byte 2"},
        {"/a\\..\\admin", 0, "backslash"},
        {"/a?x=1", 0, "query or fragment"},
        {"/a#frag", 0, "query or fragment"},
        {"/..", 0, "'..' above the root"},
        {"/a/../..", 0, "'..' above the root"},
        {"/%2e%2e/x", 0, "'..' above the root"},
        {"/a/../../admin", 0, "'..' above the root"},
        {"/public/..;/admin", 0, "dot segment with parameters"},
        {"/public/.;x/admin", 0, "dot segment with parameters"},
    };
    ls_buf out = LS_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_err err = {0};
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        ls_rc rc = ls_path_normalize(cases[i].in, len, &out, &err);
        if (rc != LS_EINVAL) fail_msg("%s: got %s, want EINVAL", cases[i].in, ls_rc_name(rc));
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].in, err.msg, cases[i].msg);
        assert_int_equal(out.len, 0);
    }
    ls_buf_free(&out);
}

static void test_path_normalize_length_limit(void **state)
{
    (void)state;
    char *p = malloc(LS_PATH_MAX + 2);
    p[0] = '/';
    memset(p + 1, 'a', LS_PATH_MAX);
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_path_normalize(p, LS_PATH_MAX, &out, &err), &err);
    assert_int_equal(out.len, LS_PATH_MAX);
    assert_int_equal(ls_path_normalize(p, LS_PATH_MAX + 1, &out, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "longer than 8192"));
    ls_buf_free(&out);
    free(p);
}

static void test_path_normalize_reuses_buffer(void **state)
{
    (void)state;
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    const char *p = "/orders/12345/items/../items/7";
    th_ok(ls_path_normalize(p, strlen(p), &out, &err), &err);
    th_fail_install();
    for (int i = 0; i < 100; i++) th_ok(ls_path_normalize(p, strlen(p), &out, &err), &err);
    assert_int_equal(th_alloc_count(), 0);
    th_fail_uninstall();
    assert_string_equal((const char *)out.ptr, "/orders/12345/items/7");
    ls_buf_free(&out);
}

static ls_rc normalize_once(void *ud)
{
    (void)ud;
    ls_buf out = LS_BUF_INIT;
    ls_err err = {0};
    ls_rc rc = ls_path_normalize("/a/%2e/b", 8, &out, &err);
    if (rc == LS_ENOMEM) assert_int_equal(err.code, LS_ENOMEM);
    ls_buf_free(&out);
    return rc;
}

static void test_path_normalize_enomem(void **state)
{
    (void)state;
    assert_true(th_each_alloc_failure(normalize_once, NULL) >= 1);
}

/* Random paths built from pieces that matter (slashes, dots, escaped
 * dots, parameters): every result is canonical and normalising it again
 * changes nothing. */
static void test_path_normalize_random_invariants(void **state)
{
    (void)state;
    static const char *const pieces[] = {"/", "/", ".", "..", "a", "bc", "%2e", "%2E", "%61", ";"};
    uint64_t seed = 0x9e3779b97f4a7c15u;
    ls_buf out = LS_BUF_INIT, again = LS_BUF_INIT;
    char raw[128];
    size_t ok = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        raw[n++] = '/';
        int count = 1 + (int)(seed % 12);
        for (int k = 0; k < count; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            const char *p = pieces[(seed >> 33) % (sizeof pieces / sizeof pieces[0])];
            memcpy(raw + n, p, strlen(p));
            n += strlen(p);
        }
        raw[n] = '\0';
        ls_err err = {0};
        if (ls_path_normalize(raw, n, &out, &err) != LS_OK) {
            assert_int_equal(err.code, LS_EINVAL);
            assert_int_equal(out.len, 0);
            continue;
        }
        ok++;
        const char *o = (const char *)out.ptr;
        if (o[0] != '/' || strstr(o, "//") || strstr(o, "/./") || strstr(o, "/../") || out.len > n)
            fail_msg("%s normalised to %s", raw, o);
        size_t l = out.len;
        if ((l >= 2 && strcmp(o + l - 2, "/.") == 0) || (l >= 3 && strcmp(o + l - 3, "/..") == 0))
            fail_msg("%s normalised to %s", raw, o);
        th_ok(ls_path_normalize(o, out.len, &again, &err), &err);
        if (strcmp((const char *)again.ptr, o) != 0)
            fail_msg("%s: %s, then %s", raw, o, (const char *)again.ptr);
    }
    assert_true(ok > 5000);
    ls_buf_free(&out);
    ls_buf_free(&again);
}

/* ---- the example rule list ---- */

static const char example[] =
    "[{\"path\":\"/healthz\",\"allow\":\"anyone\"},"
    " {\"path\":\"/me\"},"
    " {\"path\":\"/admin/**\",\"roles\":[\"admin\"]},"
    " {\"path\":\"/orders/**\",\"methods\":[\"GET\"],\"scopes\":[\"orders:read\"]},"
    " {\"path\":\"/orders/**\",\"methods\":[\"POST\"],\"scopes\":[\"orders:write\"],"
    "  \"claims\":{\"tenant\":\"acme\"}},"
    " {\"path\":\"/internal/**\",\"deny\":true},"
    " {\"host\":\"api.example.com\",\"path\":\"/v2/*\",\"name\":\"v2\"}]";

static void test_rules_compile_example(void **state)
{
    (void)state;
    ls_rules_t *r = compile(example);
    assert_int_equal(ls_rules_count(r), 7);
    assert_string_equal(ls_rule_name(ls_rules_at(r, 0)), "rules[1]");
    assert_string_equal(ls_rule_name(ls_rules_at(r, 6)), "v2");
    assert_int_equal(ls_rule_index(ls_rules_at(r, 6)), 7);
    assert_null(ls_rules_at(r, 7));
    assert_int_equal(ls_rule_kind_of(ls_rules_at(r, 0)), LS_RULE_PUBLIC);
    assert_int_equal(ls_rule_kind_of(ls_rules_at(r, 1)), LS_RULE_REQUIRE);
    assert_int_equal(ls_rule_kind_of(ls_rules_at(r, 5)), LS_RULE_DENY);

    assert_string_equal(route(r, "GET", NULL, "/healthz"), "rules[1]");
    assert_string_equal(route(r, "GET", NULL, "/me"), "rules[2]");
    assert_string_equal(route(r, "GET", NULL, "/admin/users"), "rules[3]");
    assert_string_equal(route(r, "GET", NULL, "/orders/7"), "rules[4]");
    assert_string_equal(route(r, "POST", NULL, "/orders"), "rules[5]");
    assert_string_equal(route(r, "DELETE", NULL, "/orders/7"), "-");
    assert_string_equal(route(r, "GET", NULL, "/internal/metrics"), "rules[6]");
    assert_string_equal(route(r, "GET", "api.example.com", "/v2/x"), "v2");
    assert_string_equal(route(r, "GET", "other.example.com", "/v2/x"), "-");
    assert_string_equal(route(r, "GET", NULL, "/v2/x"), "-");
    assert_string_equal(route(r, "GET", NULL, "/nowhere"), "-");
    ls_rules_free(r);
    ls_rules_free(NULL);
}

static void test_rules_normalised_tricks_reach_same_rule(void **state)
{
    (void)state;
    ls_rules_t *r = compile(example);
    static const char *const admin[] = {"/admin",          "/admin/",     "/admin/../admin",
                                        "/x/%2e%2e/admin", "//admin",     "/./admin",
                                        "/%61dmin",        "/x/../admin", "/healthz/../admin/x"};
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++)
        if (strcmp(route(r, "GET", NULL, admin[i]), "rules[3]") != 0)
            fail_msg("%s did not reach the admin rule", admin[i]);
    static const char *const internal[] = {"/internal", "/internal/", "/healthz/../internal/x",
                                           "//internal//x", "/%69nternal/x"};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++)
        if (strcmp(route(r, "GET", NULL, internal[i]), "rules[6]") != 0)
            fail_msg("%s did not reach the deny rule", internal[i]);
    ls_rules_free(r);
}

static void test_rules_first_match_wins(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"path\":\"/a/**\",\"name\":\"first\"},"
                            " {\"path\":\"/a/b\",\"name\":\"second\"},"
                            " {\"path\":\"/**\",\"name\":\"catchall\"}]");
    assert_string_equal(route(r, "GET", NULL, "/a/b"), "first");
    assert_string_equal(route(r, "GET", NULL, "/b"), "catchall");
    assert_string_equal(route(r, "GET", NULL, "/"), "catchall");
    ls_rules_free(r);
}

static void test_rules_empty_list_denies_everything(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[]");
    assert_int_equal(ls_rules_count(r), 0);
    const ls_rule *rule = NULL;
    assert_int_equal(ls_rules_match(r, "GET", "h", "/", 1, &rule), LS_ENOTFOUND);
    assert_null(rule);
    ls_rules_free(r);
}

/* ---- patterns ---- */

struct pcase {
    const char *pattern, *path;
    int match;
};

static void check_patterns(const struct pcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char decl[256];
        snprintf(decl, sizeof decl, "[{\"path\":\"%s\"}]", c[i].pattern);
        ls_rules_t *r = compile(decl);
        const ls_rule *rule;
        ls_rc rc = ls_rules_match(r, "GET", NULL, c[i].path, strlen(c[i].path), &rule);
        ls_rules_free(r);
        if ((rc == LS_OK) != c[i].match)
            fail_msg("pattern %s, path %s: got %s, want %s", c[i].pattern, c[i].path,
                     rc == LS_OK ? "match" : "no match", c[i].match ? "match" : "no match");
    }
}

static void test_rules_pattern_literal(void **state)
{
    (void)state;
    static const struct pcase c[] = {
        {"/me", "/me", 1},     {"/me", "/me/", 1},
        {"/me/", "/me", 1},    {"/me", "/mee", 0},
        {"/me", "/m", 0},      {"/me", "/me/x", 0},
        {"/me", "/ME", 0},     {"/", "/", 1},
        {"/", "/a", 0},        {"/a/b", "/a/b", 1},
        {"/a/b", "/a", 0},     {"/a/b", "/a/bc", 0},
        {"/a%20b", "/a b", 1}, {"/caf%C3%A9", "/caf\xc3\xa9", 1},
        {"/a%2Ab", "/a*b", 1}, {"/a%2Ab", "/axb", 0},
    };
    check_patterns(c, sizeof c / sizeof c[0]);
}

static void test_rules_pattern_star_is_one_segment(void **state)
{
    (void)state;
    static const struct pcase c[] = {
        {"/v2/*", "/v2/x", 1}, {"/v2/*", "/v2/x/", 1},      {"/v2/*", "/v2", 0},
        {"/v2/*", "/v2/", 0},  {"/v2/*", "/v2/x/y", 0},     {"/*", "/x", 1},
        {"/*", "/", 0},        {"/*/b", "/a/b", 1},         {"/*/b", "/a/c", 0},
        {"/*/b", "/a/x/b", 0}, {"/a/*/c/*", "/a/1/c/2", 1}, {"/a/*/c/*", "/a/1/c", 0},
        {"/*/*", "/a/b", 1},   {"/*/*", "/a", 0},
    };
    check_patterns(c, sizeof c / sizeof c[0]);
}

static void test_rules_pattern_double_star_any_depth(void **state)
{
    (void)state;
    static const struct pcase c[] = {
        {"/admin/**", "/admin", 1},     {"/admin/**", "/admin/", 1},
        {"/admin/**", "/admin/a", 1},   {"/admin/**", "/admin/a/b", 1},
        {"/admin/**", "/adminx", 0},    {"/admin/**", "/admi", 0},
        {"/admin/**", "/", 0},          {"/**", "/", 1},
        {"/**", "/anything/at/all", 1}, {"/**/x", "/x", 1},
        {"/**/x", "/a/b/x", 1},         {"/**/x", "/a/b/x/y", 0},
        {"/a/**/b", "/a/b", 1},         {"/a/**/b", "/a/1/2/b", 1},
        {"/a/**/b", "/a/1/2/b/3", 0},   {"/a/**/b/**/c", "/a/x/b/y/z/c", 1},
        {"/a/**/b/**/c", "/a/b/c", 1},  {"/a/**/b/**/c", "/a/b/b/c/c", 1},
        {"/a/**/b/**/c", "/a/c/b", 0},  {"/a/**/*", "/a", 0},
        {"/a/**/*", "/a/x", 1},         {"/a/**/*/z", "/a/x/y/z", 1},
        {"/a/**/**", "/a", 1},          {"/**/b/*", "/x/b/y", 1},
        {"/**/b/*", "/b/y", 1},         {"/**/b/*", "/x/b", 0},
    };
    check_patterns(c, sizeof c / sizeof c[0]);
}

static void test_rules_bad_patterns(void **state)
{
    (void)state;
    compile_fails("[{\"path\":\"admin\"}]", "rules[1]: path 'admin': must start with '/'");
    compile_fails("[{\"path\":\"\"}]", "must start with '/'");
    compile_fails("[{\"path\":\"/a*\"}]", "'*' must be a whole segment");
    compile_fails("[{\"path\":\"/*a\"}]", "'*' must be a whole segment");
    compile_fails("[{\"path\":\"/a/***\"}]", "'*' must be a whole segment");
    compile_fails("[{\"path\":\"/a/**b\"}]", "'*' must be a whole segment");
    compile_fails("[{\"path\":\"/a//b\"}]", "empty segment");
    compile_fails("[{\"path\":\"//\"}]", "empty segment");
    compile_fails("[{\"path\":\"/a/../b\"}]", "'.' and '..' segments never match");
    compile_fails("[{\"path\":\"/a/%2e\"}]", "'.' and '..' segments never match");
    compile_fails("[{\"path\":\"/a%2Fb\"}]", "rules[1]: path: encoded slash");
    compile_fails("[{\"path\":\"/a%zz\"}]", "invalid %-escape");
    compile_fails("[{\"path\":\"/a\\\\b\"}]", "backslash");
    compile_fails("[{\"path\":\"/a\\u0000b\"}]", "contains NUL");
    compile_fails("[{\"path\":\"/a?b\"}]", "query or fragment");
}

/* ---- methods and hosts ---- */

static void test_rules_methods_case_insensitive(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"path\":\"/a\",\"methods\":[\"get\",\"Head\"],\"name\":\"read\"},"
                            " {\"path\":\"/a\",\"methods\":[\"propfind\"],\"name\":\"dav\"},"
                            " {\"path\":\"/a\",\"name\":\"any\"}]");
    assert_string_equal(route(r, "GET", NULL, "/a"), "read");
    assert_string_equal(route(r, "get", NULL, "/a"), "read");
    assert_string_equal(route(r, "HEAD", NULL, "/a"), "read");
    assert_string_equal(route(r, "PROPFIND", NULL, "/a"), "dav");
    assert_string_equal(route(r, "PropFind", NULL, "/a"), "dav");
    assert_string_equal(route(r, "POST", NULL, "/a"), "any");
    assert_string_equal(route(r, "GETX", NULL, "/a"), "any");
    assert_string_equal(route(r, NULL, NULL, "/a"), "any");
    ls_rules_free(r);
    compile_fails("[{\"methods\":[]}]", "rules[1]: field 'methods': empty list");
    compile_fails("[{\"methods\":\"GET\"}]", "rules[1]: field 'methods': expected an array");
    compile_fails("[{\"methods\":[\"GET\",7]}]", "rules[1]: methods[2]: expected a string");
    compile_fails("[{\"methods\":[\"GE T\"]}]", "not a method name");
    compile_fails("[{\"methods\":[\"\"]}]", "methods[1]: empty");
}

static void test_rules_host_case_port_and_dot(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"host\":\"API.Example.com.\",\"name\":\"api\"},"
                            " {\"host\":\"[::1]\",\"name\":\"v6\"},"
                            " {\"path\":\"/**\",\"name\":\"any\"}]");
    assert_string_equal(route(r, "GET", "api.example.com", "/x"), "api");
    assert_string_equal(route(r, "GET", "API.EXAMPLE.COM:8443", "/x"), "api");
    assert_string_equal(route(r, "GET", "api.example.com.", "/x"), "api");
    assert_string_equal(route(r, "GET", "api.example.com.:443", "/x"), "api");
    assert_string_equal(route(r, "GET", "[::1]:8080", "/x"), "v6");
    assert_string_equal(route(r, "GET", "[::1]", "/x"), "v6");
    assert_string_equal(route(r, "GET", "api.example.co", "/x"), "any");
    assert_string_equal(route(r, "GET", "xapi.example.com", "/x"), "any");
    assert_string_equal(route(r, "GET", "", "/x"), "any");
    assert_string_equal(route(r, "GET", NULL, "/x"), "any");
    ls_rules_free(r);
    compile_fails("[{\"host\":\"api.example.com:443\"}]", "rules[1]: host");
    compile_fails("[{\"host\":\"\"}]", "not a host name");
    compile_fails("[{\"host\":\"a b\"}]", "bad character");
    compile_fails("[{\"host\":[\"a\"]}]", "rules[1]: field 'host': expected a string");
}

/* ---- checks ---- */

static void test_rules_check_public_and_deny(void **state)
{
    (void)state;
    ls_rules_t *r = compile(example);
    ls_rule_reason why;
    const char *detail = "x";
    assert_int_equal(ls_rule_check(match(r, "GET", "/healthz"), NULL, &why, &detail), LS_OK);
    assert_int_equal(why, LS_REASON_ALLOWED);
    assert_null(detail);
    ls_identity id = who(NULL, 0, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(match(r, "GET", "/internal/x"), &id, &why, &detail), LS_EDENIED);
    assert_int_equal(why, LS_REASON_EXPLICIT_DENY);
    assert_int_equal(ls_rule_check(match(r, "GET", "/internal/x"), NULL, &why, NULL), LS_EDENIED);
    assert_int_equal(why, LS_REASON_EXPLICIT_DENY);
    ls_rules_free(r);
}

static void test_rules_check_requires_authentication(void **state)
{
    (void)state;
    ls_rules_t *r = compile(example);
    const ls_rule *me = match(r, "GET", "/me");
    ls_rule_reason why;
    assert_int_equal(ls_rule_check(me, NULL, &why, NULL), LS_EDENIED);
    assert_int_equal(why, LS_REASON_NOT_AUTHENTICATED);
    ls_identity anon = {0};
    assert_int_equal(ls_rule_check(me, &anon, &why, NULL), LS_EDENIED);
    assert_int_equal(why, LS_REASON_NOT_AUTHENTICATED);
    ls_identity id = who(NULL, 0, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(me, &id, &why, NULL), LS_OK);
    assert_int_equal(why, LS_REASON_ALLOWED);
    /* An anonymous caller is "not authenticated" before any role check. */
    assert_int_equal(ls_rule_check(match(r, "GET", "/admin"), &anon, &why, NULL), LS_EDENIED);
    assert_int_equal(why, LS_REASON_NOT_AUTHENTICATED);
    ls_rules_free(r);
}

static void test_rules_roles_any_of(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"roles\":[\"admin\",\"ops\"]}]");
    const ls_rule *rule = match(r, "GET", "/x");
    ls_rule_reason why;
    const char *detail;
    const char *const admin[] = {"user", "admin"};
    const char *const ops[] = {"ops"};
    const char *const user[] = {"user", "Admin", "admins"};
    ls_identity id = who(admin, 2, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_OK);
    id = who(ops, 1, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_OK);
    id = who(user, 3, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_EDENIED);
    assert_int_equal(why, LS_REASON_MISSING_ROLE);
    assert_string_equal(detail, "admin");
    id = who(NULL, 0, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_EDENIED);
    assert_int_equal(why, LS_REASON_MISSING_ROLE);
    ls_rules_free(r);
}

static void test_rules_scopes_all_of(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"scopes\":[\"orders:read\",\"orders:write\"]}]");
    const ls_rule *rule = match(r, "POST", "/orders");
    ls_rule_reason why;
    const char *detail;
    const char *const both[] = {"profile", "orders:write", "orders:read"};
    const char *const one[] = {"orders:read"};
    ls_identity id = who(NULL, 0, both, 3, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_OK);
    id = who(NULL, 0, one, 1, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_EDENIED);
    assert_int_equal(why, LS_REASON_MISSING_SCOPE);
    assert_string_equal(detail, "orders:write");
    id = who(NULL, 0, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_EDENIED);
    assert_string_equal(detail, "orders:read");
    /* Roles do not stand in for scopes. */
    id = who(both, 3, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, NULL), LS_EDENIED);
    ls_rules_free(r);
}

static void test_rules_claims(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"claims\":{\"tenant\":\"acme\",\"level\":3,\"verified\":true,"
                            "\"realm_access.tier\":\"gold\",\"https://ex.com/org\":\"o1\","
                            "\"ratio\":0.5}}]");
    const ls_rule *rule = match(r, "GET", "/x");
    ls_rule_reason why;
    const char *detail;
    struct {
        const char *claims;
        const char *mismatch; /* NULL: allowed */
    } c[] = {
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":true,\"realm_access\":{\"tier\":\"gold\"},"
         "\"https://ex.com/org\":\"o1\",\"ratio\":0.5}",
         NULL},
        /* arrays containing the value, and 3.0 for 3 */
        {"{\"tenant\":[\"x\",\"acme\"],\"level\":3.0,\"verified\":[false,true],"
         "\"realm_access\":{\"tier\":[\"gold\"]},\"https://ex.com/org\":\"o1\",\"ratio\":[0.5]}",
         NULL},
        {"{\"tenant\":\"acme2\"}", "tenant"},
        {"{\"tenant\":\"ACME\"}", "tenant"},
        {"{\"tenant\":\"acme\",\"level\":\"3\"}", "level"},
        {"{\"tenant\":\"acme\",\"level\":4}", "level"},
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":\"true\"}", "verified"},
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":1}", "verified"},
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":true,\"realm_access\":{\"tier\":\"iron\"}}",
         "realm_access.tier"},
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":true,\"realm_access\":\"gold\"}",
         "realm_access.tier"},
        /* A name with dots falls back to a nested lookup when no claim has
         * the literal name: both spellings are found, so "ratio" is next. */
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":true,\"realm_access\":{\"tier\":\"gold\"},"
         "\"https://ex\":{\"com/org\":\"o1\"}}",
         "ratio"},
        {"{\"tenant\":\"acme\",\"level\":3,\"verified\":true,\"realm_access\":{\"tier\":\"gold\"},"
         "\"https://ex.com/org\":\"o2\",\"https://ex\":{\"com/org\":\"o1\"}}",
         "https://ex.com/org"},
        {"{}", "tenant"},
        {"{\"tenant\":[]}", "tenant"},
        {"{\"tenant\":{\"acme\":1}}", "tenant"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        json_t *claims = parse(c[i].claims);
        ls_identity id = who(NULL, 0, NULL, 0, claims);
        ls_rc rc = ls_rule_check(rule, &id, &why, &detail);
        json_decref(claims);
        if (c[i].mismatch == NULL) {
            if (rc != LS_OK) fail_msg("%s: denied (%s)", c[i].claims, detail);
        } else {
            if (rc != LS_EDENIED || why != LS_REASON_CLAIM_MISMATCH)
                fail_msg("%s: not a claim mismatch", c[i].claims);
            if (strcmp(detail, c[i].mismatch) != 0)
                fail_msg("%s: mismatch on %s, want %s", c[i].claims, detail, c[i].mismatch);
        }
    }
    /* No claims object at all. */
    ls_identity id = who(NULL, 0, NULL, 0, NULL);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_EDENIED);
    assert_int_equal(why, LS_REASON_CLAIM_MISMATCH);
    ls_rules_free(r);

    compile_fails("[{\"claims\":{\"a\":null}}]", "rules[1]: claims.a: expected a string, number "
                                                 "or boolean, got null");
    compile_fails("[{\"claims\":{\"a\":[\"x\"]}}]", "got array");
    compile_fails("[{\"claims\":{}}]", "rules[1]: field 'claims': empty");
    compile_fails("[{\"claims\":[]}]", "rules[1]: field 'claims': expected an object, got array");
    compile_fails("[{\"claims\":{\"\":\"x\"}}]", "empty claim name");
}

static void test_rules_check_order(void **state)
{
    (void)state;
    ls_rules_t *r = compile("[{\"roles\":[\"r\"],\"scopes\":[\"s\"],\"claims\":{\"c\":\"v\"}}]");
    const ls_rule *rule = match(r, "GET", "/");
    ls_rule_reason why;
    const char *detail;
    const char *const role[] = {"r"}, *const scope[] = {"s"};
    json_t *good = parse("{\"c\":\"v\"}"), *bad = parse("{\"c\":\"w\"}");
    ls_identity id = who(NULL, 0, NULL, 0, bad);
    ls_rule_check(rule, &id, &why, &detail);
    assert_int_equal(why, LS_REASON_MISSING_ROLE);
    id = who(role, 1, NULL, 0, bad);
    ls_rule_check(rule, &id, &why, &detail);
    assert_int_equal(why, LS_REASON_MISSING_SCOPE);
    id = who(role, 1, scope, 1, bad);
    ls_rule_check(rule, &id, &why, &detail);
    assert_int_equal(why, LS_REASON_CLAIM_MISMATCH);
    assert_string_equal(detail, "c");
    id = who(role, 1, scope, 1, good);
    assert_int_equal(ls_rule_check(rule, &id, &why, &detail), LS_OK);
    assert_int_equal(why, LS_REASON_ALLOWED);
    assert_null(detail);
    assert_int_equal(ls_rule_check(rule, &id, NULL, NULL), LS_OK);
    json_decref(good);
    json_decref(bad);
    ls_rules_free(r);
}

static void test_rules_reason_names(void **state)
{
    (void)state;
    assert_string_equal(ls_rule_reason_name(LS_REASON_ALLOWED), "allowed");
    assert_string_equal(ls_rule_reason_name(LS_REASON_NO_MATCH), "no_matching_rule");
    assert_string_equal(ls_rule_reason_name(LS_REASON_NOT_AUTHENTICATED), "not_authenticated");
    assert_string_equal(ls_rule_reason_name(LS_REASON_MISSING_ROLE), "missing_role");
    assert_string_equal(ls_rule_reason_name(LS_REASON_MISSING_SCOPE), "missing_scope");
    assert_string_equal(ls_rule_reason_name(LS_REASON_CLAIM_MISMATCH), "claim_mismatch");
    assert_string_equal(ls_rule_reason_name(LS_REASON_EXPLICIT_DENY), "explicit_deny");
    assert_string_equal(ls_rule_reason_name((ls_rule_reason)99), "unknown");
}

/* ---- compile errors ---- */

static void test_rules_unknown_field_suggests(void **state)
{
    (void)state;
    compile_fails("[{\"path\":\"/a\"},{\"path\":\"/b\"},{\"path\":\"/c\",\"role\":[\"x\"]}]",
                  "rules[3]: unknown field 'role' (did you mean 'roles'?)");
    compile_fails("[{\"method\":[\"GET\"]}]", "unknown field 'method' (did you mean 'methods'?)");
    compile_fails("[{\"scope\":[\"a\"]}]", "(did you mean 'scopes'?)");
    compile_fails("[{\"Path\":\"/a\"}]", "(did you mean 'path'?)");
    compile_fails("[{\"hosts\":\"a\"}]", "(did you mean 'host'?)");
    compile_fails("[{\"claim\":{}}]", "(did you mean 'claims'?)");
    compile_fails("[{\"xyzzy\":1}]", "rules[1]: unknown field 'xyzzy'");
    json_t *decl = parse("[{\"xyzzy\":1}]");
    ls_rules_t *r;
    ls_err err = {0};
    assert_int_equal(ls_rules_compile(&r, decl, &err), LS_EINVAL);
    assert_null(strstr(err.msg, "did you mean"));
    /* err may be NULL. */
    assert_int_equal(ls_rules_compile(&r, decl, NULL), LS_EINVAL);
    json_decref(decl);
}

static void test_rules_wrong_types(void **state)
{
    (void)state;
    compile_fails("{}", "rules: expected an array, got object");
    compile_fails("[\"/a\"]", "rules[1]: expected an object, got string");
    compile_fails("[{},7]", "rules[2]: expected an object, got integer");
    compile_fails("[{\"path\":7}]", "rules[1]: field 'path': expected a string, got integer");
    compile_fails("[{\"roles\":\"admin\"}]", "rules[1]: field 'roles': expected an array, got "
                                             "string");
    compile_fails("[{\"roles\":[]}]", "rules[1]: field 'roles': empty list");
    compile_fails("[{\"roles\":[1]}]", "rules[1]: roles[1]: expected a string, got integer");
    compile_fails("[{\"scopes\":[\"a\",\"\"]}]", "rules[1]: scopes[2]: empty");
    compile_fails("[{\"scopes\":{}}]", "field 'scopes': expected an array, got object");
    compile_fails("[{\"deny\":\"yes\"}]", "rules[1]: field 'deny': expected a boolean, got string");
    compile_fails("[{\"allow\":true}]", "rules[1]: field 'allow': the only value is \"anyone\"");
    compile_fails("[{\"allow\":\"everyone\"}]", "the only value is \"anyone\"");
    compile_fails("[{\"name\":5}]", "rules[1]: field 'name': expected a string, got integer");
    compile_fails("[{\"name\":\"\"}]", "rules[1]: field 'name': empty");
    ls_rules_t *r;
    assert_int_equal(ls_rules_compile(&r, NULL, NULL), LS_EINVAL);
}

static void test_rules_allow_deny_conflicts(void **state)
{
    (void)state;
    compile_fails("[{\"allow\":\"anyone\",\"deny\":true}]",
                  "rules[1]: 'allow' and 'deny' exclude each other");
    compile_fails("[{\"allow\":\"anyone\",\"roles\":[\"a\"]}]",
                  "rules[1]: 'allow' cannot be combined with roles, scopes or claims");
    compile_fails("[{\"deny\":true,\"scopes\":[\"a\"]}]", "'deny' cannot be combined");
    compile_fails("[{\"deny\":true,\"claims\":{\"a\":1}}]", "'deny' cannot be combined");
    /* deny = false is the same as no deny. */
    ls_rules_t *r = compile("[{\"deny\":false,\"allow\":\"anyone\"}]");
    assert_int_equal(ls_rule_kind_of(ls_rules_at(r, 0)), LS_RULE_PUBLIC);
    ls_rules_free(r);
}

/* ---- allocation ---- */

static void test_rules_match_and_check_allocate_nothing(void **state)
{
    (void)state;
    ls_rules_t *r = compile(example);
    json_t *claims = parse("{\"tenant\":\"acme\"}");
    const char *const scopes[] = {"orders:write"};
    ls_identity id = who(NULL, 0, scopes, 1, claims);
    th_fail_install();
    for (int i = 0; i < 100; i++) {
        const ls_rule *rule;
        assert_int_equal(ls_rules_match(r, "POST", "api.example.com", "/orders/7", 9, &rule),
                         LS_OK);
        assert_int_equal(ls_rule_check(rule, &id, NULL, NULL), LS_OK);
        assert_int_equal(ls_rules_match(r, "GET", "h", "/zzz", 4, &rule), LS_ENOTFOUND);
    }
    assert_int_equal(th_alloc_count(), 0);
    th_fail_uninstall();
    json_decref(claims);
    ls_rules_free(r);
}

static ls_rc compile_example(void *ud)
{
    const json_t *decl = ud;
    ls_rules_t *r = NULL;
    ls_err err = {0};
    ls_rc rc = ls_rules_compile(&r, decl, &err);
    if (rc == LS_ENOMEM) {
        assert_null(r);
        assert_string_equal(err.msg, "out of memory compiling rules");
    }
    ls_rules_free(r);
    return rc;
}

static void test_rules_compile_enomem(void **state)
{
    (void)state;
    json_t *decl = parse(example);
    assert_true(th_each_alloc_failure(compile_example, decl) >= 2);
    json_decref(decl);
    /* Many rules: more than one arena chunk. */
    json_t *big = json_array();
    for (int i = 0; i < 200; i++) {
        char p[64];
        snprintf(p, sizeof p, "[{\"path\":\"/p%d/*/x/**\",\"roles\":[\"a\",\"b\"]}]", i);
        json_t *one = parse(p);
        json_array_append(big, json_array_get(one, 0));
        json_decref(one);
    }
    assert_true(th_each_alloc_failure(compile_example, big) >= 3);
    ls_rules_t *r = NULL;
    ls_err err = {0};
    th_ok(ls_rules_compile(&r, big, &err), &err);
    assert_string_equal(route(r, "GET", NULL, "/p199/q/x/y/z"), "rules[200]");
    ls_rules_free(r);
    json_decref(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_normalize_examples),
        cmocka_unit_test(test_path_normalize_rejects_tricks),
        cmocka_unit_test(test_path_normalize_length_limit),
        cmocka_unit_test(test_path_normalize_reuses_buffer),
        cmocka_unit_test(test_path_normalize_enomem),
        cmocka_unit_test(test_path_normalize_random_invariants),
        cmocka_unit_test(test_rules_compile_example),
        cmocka_unit_test(test_rules_normalised_tricks_reach_same_rule),
        cmocka_unit_test(test_rules_first_match_wins),
        cmocka_unit_test(test_rules_empty_list_denies_everything),
        cmocka_unit_test(test_rules_pattern_literal),
        cmocka_unit_test(test_rules_pattern_star_is_one_segment),
        cmocka_unit_test(test_rules_pattern_double_star_any_depth),
        cmocka_unit_test(test_rules_bad_patterns),
        cmocka_unit_test(test_rules_methods_case_insensitive),
        cmocka_unit_test(test_rules_host_case_port_and_dot),
        cmocka_unit_test(test_rules_check_public_and_deny),
        cmocka_unit_test(test_rules_check_requires_authentication),
        cmocka_unit_test(test_rules_roles_any_of),
        cmocka_unit_test(test_rules_scopes_all_of),
        cmocka_unit_test(test_rules_claims),
        cmocka_unit_test(test_rules_check_order),
        cmocka_unit_test(test_rules_reason_names),
        cmocka_unit_test(test_rules_unknown_field_suggests),
        cmocka_unit_test(test_rules_wrong_types),
        cmocka_unit_test(test_rules_allow_deny_conflicts),
        cmocka_unit_test(test_rules_match_and_check_allocate_nothing),
        cmocka_unit_test(test_rules_compile_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

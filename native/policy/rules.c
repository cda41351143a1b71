/* SPDX-License-Identifier: MIT
 * Access rules: compiled once from JSON into flat structs in one arena
 * (patterns split into a literal prefix and segment arrays, methods into a
 * bit mask, hosts lower-cased), then matched and checked without
 * allocating. See rules.h for the declaration language. */
#include "ls_config.h"

#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "path.h"
#include "rules.h"

#define RULES_MAX   10000
#define HOST_MAX    LS_RULES_HOST_MAX
#define METHOD_MAX  LS_RULES_METHOD_MAX
#define CHUNK_BYTES 4096

/* ---- compiled form ---- */

enum { SEG_LIT, SEG_ONE, SEG_ANY };

struct seg {
    int kind;
    size_t len;
    const char *s; /* SEG_LIT: decoded text */
};

/* How the path is matched: the literal prefix alone, the prefix followed by
 * a lone trailing "**", or the prefix followed by the general matcher. */
enum { MATCH_EXACT, MATCH_PREFIX_ANY, MATCH_GENERAL };

struct str {
    const char *s; /* NUL-terminated */
    size_t len;
};

struct claim {
    const char *name; /* NUL-terminated */
    size_t name_len;
    int dotted; /* name contains '.': fall back to a nested lookup */
    json_type type;
    struct str s;
    json_int_t i;
    double d;
};

struct ls_rule {
    uint32_t method_mask; /* well-known methods; 0 with nxmethods 0: any */
    int kind;             /* ls_rule_kind */
    int match;
    const char *lit; /* decoded literal prefix "/a/b", "" for none */
    size_t lit_len;
    char lit1;              /* lit[1] when lit_len > 1: a quick first test */
    const struct seg *segs; /* from the first wildcard on */
    size_t nsegs;
    const char *host; /* lower case, NULL for any */
    size_t host_len;
    const struct str *xmethods; /* extension methods, upper case */
    size_t nxmethods;
    const struct str *roles;
    size_t nroles;
    const struct str *scopes;
    size_t nscopes;
    const struct claim *claims;
    size_t nclaims;
    const char *name;
    size_t index; /* from 1 */
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

struct ls_rules {
    ls_rule *v;
    size_t n;
    struct chunk *chunks;
    const char *label; /* names the list in path errors: "rules", "api.paths" */
};

static const struct str known_methods[] = {
    {"GET", 3},   {"HEAD", 4},    {"POST", 4},  {"PUT", 3},     {"DELETE", 6},
    {"PATCH", 5}, {"OPTIONS", 7}, {"TRACE", 5}, {"CONNECT", 7},
};
#define NKNOWN (sizeof known_methods / sizeof known_methods[0])

static const char *const fields[] = {"path",  "methods", "host",   "allow", "deny",
                                     "roles", "scopes",  "claims", "name"};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* ---- small helpers ---- */

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static unsigned char upper(unsigned char c)
{
    return c >= 'a' && c <= 'z' ? (unsigned char)(c - 32) : c;
}

/* memcmp(a, b, n) == 0 for the short strings of paths, inline: words at a
 * time, the last word overlapping (a libc call per rule costs more). */
static inline int same(const char *a, const char *b, size_t n)
{
    if (n < 8) {
        if (n >= 4) {
            uint32_t x0, y0, x1, y1;
            memcpy(&x0, a, 4);
            memcpy(&y0, b, 4);
            memcpy(&x1, a + n - 4, 4);
            memcpy(&y1, b + n - 4, 4);
            return x0 == y0 && x1 == y1;
        }
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i]) return 0;
        return 1;
    }
    uint64_t x, y;
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return 0;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
}

/* a (n bytes, any case) equals upper-case b (n bytes). */
static int eq_upper(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (upper((unsigned char)a[i]) != (unsigned char)b[i]) return 0;
    return 1;
}

static uint32_t method_bit(const char *m, size_t n)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (n == known_methods[i].len && eq_upper(m, known_methods[i].s, n)) return 1u << i;
    return 0;
}

/* Host without port and trailing dot, lower case, into buf (HOST_MAX).
 * Returns the length, or 0 when there is no usable host. */
static size_t host_norm(const char *h, size_t hlen, char *buf)
{
    size_t n;
    if (hlen > 0 && h[0] == '[') {
        const char *e = memchr(h, ']', hlen);
        if (e == NULL) return 0;
        n = (size_t)(e - h) + 1;
    } else {
        const char *c = memchr(h, ':', hlen);
        n = c ? (size_t)(c - h) : hlen;
        if (n > 0 && h[n - 1] == '.') n--;
    }
    if (n == 0 || n > HOST_MAX) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = (char)lower((unsigned char)h[i]);
    return n;
}

/* ---- arena ---- */

static void *arena_alloc(ls_rules_t *r, size_t n)
{
    const size_t a = alignof(max_align_t);
    n = (n + a - 1) / a * a;
    struct chunk *c = r->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = ls_malloc(sizeof *c + cap);
        if (c == NULL) return NULL;
        c->next = r->chunks;
        c->used = 0;
        c->cap = cap;
        r->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static ls_rc oom(ls_err *err)
{
    return ls_err_set(err, LS_ENOMEM, "out of memory compiling rules");
}

static const char *arena_strndup(ls_rules_t *r, const char *s, size_t n)
{
    char *p = arena_alloc(r, n + 1);
    if (p == NULL) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- compiling: fields ---- */

/* Levenshtein distance of two short strings, capped at 3. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 16 || lb > 16) return 3;
    size_t row[17];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] < 3 ? row[lb] : 3;
}

static ls_rc check_fields(const json_t *obj, size_t idx, ls_err *err)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        size_t f;
        for (f = 0; f < NFIELDS; f++)
            if (strcmp(key, fields[f]) == 0) break;
        if (f < NFIELDS) continue;
        const char *near = NULL;
        size_t best = 3;
        for (f = 0; f < NFIELDS; f++) {
            size_t d = distance(key, fields[f]);
            if (d < best && d < strlen(key)) {
                best = d;
                near = fields[f];
            }
        }
        if (near)
            return ls_err_set(err, LS_EINVAL,
                              "rules[%zu]: unknown field '%.40s' (did you mean '%s'?)", idx, key,
                              near);
        return ls_err_set(err, LS_EINVAL, "rules[%zu]: unknown field '%.40s'", idx, key);
    }
    return LS_OK;
}

/* Copies a string array (non-empty, non-empty strings, no NUL) into the
 * arena. upcase: store upper case (methods). */
static ls_rc str_list(ls_rules_t *r, const json_t *arr, const char *field, size_t idx,
                      struct str **out, size_t *n, ls_err *err)
{
    size_t len = json_array_size(arr);
    if (len == 0)
        return ls_err_set(err, LS_EINVAL, "rules[%zu]: field '%s': empty list (leave it out)", idx,
                          field);
    struct str *v = arena_alloc(r, len * sizeof *v);
    if (v == NULL) return oom(err);
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_array_get(arr, i);
        if (!json_is_string(e))
            return ls_err_set(err, LS_EINVAL, "rules[%zu]: %s[%zu]: expected a string, got %s", idx,
                              field, i + 1, ls_json_type_name(e));
        const char *s = json_string_value(e);
        size_t sl = json_string_length(e);
        if (sl == 0 || strlen(s) != sl)
            return ls_err_set(err, LS_EINVAL, "rules[%zu]: %s[%zu]: empty or contains NUL", idx,
                              field, i + 1);
        v[i].s = arena_strndup(r, s, sl);
        if (v[i].s == NULL) return oom(err);
        v[i].len = sl;
    }
    *out = v;
    *n = len;
    return LS_OK;
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static ls_rc compile_methods(ls_rules_t *r, ls_rule *rule, const json_t *arr, ls_err *err)
{
    struct str *v;
    size_t n;
    ls_rc rc = str_list(r, arr, "methods", rule->index, &v, &n, err);
    if (rc != LS_OK) return rc;
    size_t nx = 0;
    for (size_t i = 0; i < n; i++) {
        char *s = (char *)v[i].s; /* our own arena copy */
        if (v[i].len > METHOD_MAX)
            return ls_err_set(err, LS_EINVAL, "rules[%zu]: methods[%zu]: longer than %d bytes",
                              rule->index, i + 1, METHOD_MAX);
        for (size_t j = 0; j < v[i].len; j++) {
            if (!is_tchar((unsigned char)s[j]))
                return ls_err_set(err, LS_EINVAL,
                                  "rules[%zu]: methods[%zu]: '%s' is not a method name",
                                  rule->index, i + 1, s);
            s[j] = (char)upper((unsigned char)s[j]);
        }
        uint32_t bit = method_bit(s, v[i].len);
        if (bit)
            rule->method_mask |= bit;
        else
            v[nx++] = v[i];
    }
    rule->xmethods = v;
    rule->nxmethods = nx;
    return LS_OK;
}

static ls_rc compile_host(ls_rules_t *r, ls_rule *rule, const char *h, size_t hl, ls_err *err)
{
    size_t idx = rule->index;
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '@')
            return ls_err_set(err, LS_EINVAL, "rules[%zu]: host: bad character at byte %zu", idx,
                              i);
    }
    char buf[HOST_MAX];
    size_t n = host_norm(h, hl, buf);
    size_t plain = hl > 0 && h[hl - 1] == '.' && h[0] != '[' ? hl - 1 : hl;
    if (n == 0 || n != plain)
        return ls_err_set(err, LS_EINVAL,
                          "rules[%zu]: host: '%.60s' is not a host name (no port, at most %d "
                          "bytes)",
                          idx, h, HOST_MAX);
    rule->host = arena_strndup(r, buf, n);
    if (rule->host == NULL) return oom(err);
    rule->host_len = n;
    return LS_OK;
}

static ls_rc compile_claims(ls_rules_t *r, ls_rule *rule, const json_t *obj, ls_err *err)
{
    size_t idx = rule->index, n = json_object_size(obj), i = 0;
    if (n == 0)
        return ls_err_set(err, LS_EINVAL, "rules[%zu]: field 'claims': empty (leave it out)", idx);
    struct claim *v = arena_alloc(r, n * sizeof *v);
    if (v == NULL) return oom(err);
    memset(v, 0, n * sizeof *v);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        struct claim *c = &v[i++];
        size_t kl = strlen(key);
        if (kl == 0) return ls_err_set(err, LS_EINVAL, "rules[%zu]: claims: empty claim name", idx);
        c->type = json_typeof(val);
        switch (c->type) {
        case JSON_STRING:
            c->s.len = json_string_length(val);
            c->s.s = arena_strndup(r, json_string_value(val), c->s.len);
            if (c->s.s == NULL) return oom(err);
            break;
        case JSON_INTEGER:
            c->i = json_integer_value(val);
            c->d = (double)c->i;
            break;
        case JSON_REAL: c->d = json_real_value(val); break;
        case JSON_TRUE:
        case JSON_FALSE: break;
        default:
            return ls_err_set(err, LS_EINVAL,
                              "rules[%zu]: claims.%.60s: expected a string, number or boolean, "
                              "got %s",
                              idx, key, ls_json_type_name(val));
        }
        c->name = arena_strndup(r, key, kl);
        if (c->name == NULL) return oom(err);
        c->name_len = kl;
        c->dotted = memchr(key, '.', kl) != NULL;
    }
    rule->claims = v;
    rule->nclaims = n;
    return LS_OK;
}

/* ---- compiling: path patterns ---- */

static ls_rc pattern_error(const ls_rules_t *r, ls_err *err, size_t idx, const char *pat,
                           const char *what)
{
    return ls_err_set(err, LS_EINVAL, "%s[%zu]: path '%.80s': %s", r->label, idx, pat, what);
}

static ls_rc compile_path(ls_rules_t *r, ls_rule *rule, const char *pat, size_t len, ls_err *err)
{
    size_t idx = rule->index;
    if (len == 0 || pat[0] != '/') return pattern_error(r, err, idx, pat, "must start with '/'");
    if (len > LS_PATH_MAX) return pattern_error(r, err, idx, pat, "too long");
    if (strlen(pat) != len) return pattern_error(r, err, idx, pat, "contains NUL");
    /* A trailing slash does not count: "/" has no segments, "/a/" is "/a". */
    size_t core = len == 1 ? 0 : pat[len - 1] == '/' ? len - 1 : len;

    size_t nseg = 0;
    for (size_t i = 0; i < core; i++) nseg += pat[i] == '/';
    char *lit = arena_alloc(r, core + 1);
    char *text = arena_alloc(r, core + 1);
    struct seg *segs = arena_alloc(r, (nseg ? nseg : 1) * sizeof *segs);
    if (lit == NULL || text == NULL || segs == NULL) return oom(err);

    size_t lit_len = 0, tlen = 0, ns = 0, i = 0;
    int wild = 0;
    while (i < core) {
        size_t b = i + 1, e = b;
        while (e < core && pat[e] != '/') e++;
        size_t sl = e - b;
        const char *s = pat + b;
        int kind = SEG_LIT;
        if (sl == 0) return pattern_error(r, err, idx, pat, "empty segment (repeated '/')");
        if (sl == 1 && s[0] == '*')
            kind = SEG_ONE;
        else if (sl == 2 && s[0] == '*' && s[1] == '*')
            kind = SEG_ANY;
        else if (memchr(s, '*', sl))
            return pattern_error(r, err, idx, pat,
                                 "'*' must be a whole segment: '*' is one segment, '**' any "
                                 "number");
        if (kind != SEG_LIT) {
            wild = 1;
            segs[ns++] = (struct seg){kind, 0, NULL};
            i = e;
            continue;
        }
        char *dst = wild ? text + tlen : lit + lit_len + 1;
        size_t dl;
        ls_rc rc = ls_path_decode_segment(s, sl, dst, &dl, b, err);
        if (rc != LS_OK) {
            ls_err_prefix(err, "%s[%zu]", r->label, idx);
            return rc;
        }
        if ((dl == 1 && dst[0] == '.') || (dl == 2 && dst[0] == '.' && dst[1] == '.'))
            return pattern_error(r, err, idx, pat, "'.' and '..' segments never match");
        if (wild) {
            segs[ns++] = (struct seg){SEG_LIT, dl, dst};
            tlen += dl;
        } else {
            lit[lit_len] = '/';
            lit_len += 1 + dl;
        }
        i = e;
    }
    lit[lit_len] = '\0';
    rule->lit = lit;
    rule->lit_len = lit_len;
    rule->lit1 = (char)(lit_len > 1 ? lit[1] : '\0');
    rule->segs = segs;
    rule->nsegs = ns;
    if (ns == 0)
        rule->match = MATCH_EXACT;
    else if (ns == 1 && segs[0].kind == SEG_ANY)
        rule->match = MATCH_PREFIX_ANY;
    else
        rule->match = MATCH_GENERAL;
    return LS_OK;
}

/* ---- compiling: one rule ---- */

static ls_rc compile_rule(ls_rules_t *r, ls_rule *rule, const json_t *obj, size_t idx, ls_err *err)
{
    rule->index = idx;
    if (!json_is_object(obj))
        return ls_err_set(err, LS_EINVAL, "rules[%zu]: expected an object, got %s", idx,
                          ls_json_type_name(obj));
    ls_rc rc = check_fields(obj, idx, err);
    if (rc != LS_OK) return rc;

    const char *s;
    size_t sl;
    json_t *v;
    rc = ls_json_get_str(obj, "path", &s, &sl, err);
    if (rc == LS_OK) rc = compile_path(r, rule, s, sl, err);
    if (rc == LS_ENOTFOUND) rc = compile_path(r, rule, "/**", 3, err);
    if (rc != LS_OK) goto fail;

    rc = ls_json_get_arr(obj, "methods", &v, err);
    if (rc == LS_OK) rc = compile_methods(r, rule, v, err);
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;

    rc = ls_json_get_str(obj, "host", &s, &sl, err);
    if (rc == LS_OK) rc = compile_host(r, rule, s, sl, err);
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;

    rc = ls_json_get_arr(obj, "roles", &v, err);
    if (rc == LS_OK) {
        struct str *roles;
        rc = str_list(r, v, "roles", idx, &roles, &rule->nroles, err);
        if (rc == LS_OK) rule->roles = roles;
    }
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;

    rc = ls_json_get_arr(obj, "scopes", &v, err);
    if (rc == LS_OK) {
        struct str *scopes;
        rc = str_list(r, v, "scopes", idx, &scopes, &rule->nscopes, err);
        if (rc == LS_OK) rule->scopes = scopes;
    }
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;

    rc = ls_json_get_obj(obj, "claims", &v, err);
    if (rc == LS_OK) rc = compile_claims(r, rule, v, err);
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;

    int allow = 0, deny = 0;
    v = json_object_get(obj, "allow");
    if (v != NULL) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "anyone") != 0)
            return ls_err_set(err, LS_EINVAL,
                              "rules[%zu]: field 'allow': the only value is "
                              "\"anyone\"",
                              idx);
        allow = 1;
    }
    rc = ls_json_get_bool(obj, "deny", &deny, err);
    if (rc != LS_OK && rc != LS_ENOTFOUND) goto fail;
    int reqs = rule->nroles || rule->nscopes || rule->nclaims;
    if (allow && deny)
        return ls_err_set(err, LS_EINVAL, "rules[%zu]: 'allow' and 'deny' exclude each other", idx);
    if ((allow || deny) && reqs)
        return ls_err_set(err, LS_EINVAL,
                          "rules[%zu]: '%s' cannot be combined with roles, scopes or claims", idx,
                          allow ? "allow" : "deny");
    rule->kind = deny ? LS_RULE_DENY : allow ? LS_RULE_PUBLIC : LS_RULE_REQUIRE;

    rc = ls_json_get_str(obj, "name", &s, &sl, err);
    if (rc == LS_OK) {
        if (sl == 0 || strlen(s) != sl)
            return ls_err_set(err, LS_EINVAL, "rules[%zu]: field 'name': empty or contains NUL",
                              idx);
        rule->name = arena_strndup(r, s, sl);
    } else if (rc == LS_ENOTFOUND) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "rules[%zu]", idx);
        rule->name = arena_strndup(r, buf, (size_t)n);
    } else {
        goto fail;
    }
    if (rule->name == NULL) return oom(err);
    return LS_OK;

fail:
    /* ls_json_get_* messages name the field but not the rule. */
    if (err && rc == LS_EINVAL && strncmp(err->msg, "rules[", 6) != 0)
        ls_err_prefix(err, "rules[%zu]", idx);
    return rc;
}

ls_rc ls_rules_compile(ls_rules_t **out, const json_t *decl, ls_err *err)
{
    *out = NULL;
    if (!json_is_array(decl))
        return ls_err_set(err, LS_EINVAL, "rules: expected an array, got %s",
                          decl ? ls_json_type_name(decl) : "nothing");
    size_t n = json_array_size(decl);
    if (n > RULES_MAX)
        return ls_err_set(err, LS_EINVAL, "rules: %zu rules, at most %d", n, RULES_MAX);
    ls_rules_t *r = ls_calloc(1, sizeof *r);
    if (r == NULL) return oom(err);
    r->label = "rules";
    ls_rc rc = LS_OK;
    if (n > 0) {
        r->v = arena_alloc(r, n * sizeof *r->v);
        if (r->v == NULL) {
            rc = oom(err);
            goto fail;
        }
        memset(r->v, 0, n * sizeof *r->v);
    }
    for (size_t i = 0; i < n; i++) {
        rc = compile_rule(r, &r->v[i], json_array_get(decl, i), i + 1, err);
        if (rc != LS_OK) goto fail;
    }
    r->n = n;
    *out = r;
    return LS_OK;

fail:
    ls_rules_free(r);
    return rc;
}

ls_rc ls_rules_compile_paths(ls_rules_t **out, const json_t *paths, const char *label, ls_err *err)
{
    *out = NULL;
    if (!json_is_array(paths))
        return ls_err_set(err, LS_EINVAL, "%s: expected a list of paths, got %s", label,
                          paths ? ls_json_type_name(paths) : "nothing");
    size_t n = json_array_size(paths);
    if (n == 0)
        return ls_err_set(err, LS_EINVAL, "%s: empty list (leave it out to mean every path)",
                          label);
    if (n > RULES_MAX)
        return ls_err_set(err, LS_EINVAL, "%s: %zu paths, at most %d", label, n, RULES_MAX);
    ls_rules_t *r = ls_calloc(1, sizeof *r);
    if (r == NULL) return oom(err);
    ls_rc rc;
    char *l = (char *)arena_strndup(r, label, strlen(label));
    r->v = arena_alloc(r, n * sizeof *r->v);
    if (l == NULL || r->v == NULL) {
        rc = oom(err);
        goto fail;
    }
    r->label = l;
    memset(r->v, 0, n * sizeof *r->v);
    for (size_t i = 0; i < n; i++) {
        ls_rule *rule = &r->v[i];
        const json_t *pat = json_array_get(paths, i);
        rule->index = i + 1;
        rule->kind = LS_RULE_PUBLIC;
        rule->name = l;
        if (!json_is_string(pat)) {
            rc = ls_err_set(err, LS_EINVAL, "%s[%zu]: expected a path, got %s", label, i + 1,
                            ls_json_type_name(pat));
            goto fail;
        }
        rc = compile_path(r, rule, json_string_value(pat), json_string_length(pat), err);
        if (rc != LS_OK) goto fail;
    }
    r->n = n;
    *out = r;
    return LS_OK;

fail:
    ls_rules_free(r);
    return rc;
}

void ls_rules_free(ls_rules_t *rules)
{
    if (rules == NULL) return;
    struct chunk *c = rules->chunks;
    while (c) {
        struct chunk *next = c->next;
        ls_free(c);
        c = next;
    }
    ls_free(rules);
}

size_t ls_rules_count(const ls_rules_t *rules)
{
    return rules->n;
}

const ls_rule *ls_rules_at(const ls_rules_t *rules, size_t i)
{
    return i < rules->n ? &rules->v[i] : NULL;
}

/* ---- matching ---- */

/* Matches the segments of s ("" or "/a/b", n bytes) against p: the
 * classic wildcard algorithm over segments, backtracking only to the last
 * "**". */
static int segs_match(const struct seg *p, size_t np, const char *s, size_t n)
{
    size_t pi = 0, si = 0, star_pi = SIZE_MAX, star_si = 0;
    while (si < n) {
        size_t b = si + 1, e = b;
        while (e < n && s[e] != '/') e++;
        if (pi < np) {
            const struct seg *g = &p[pi];
            if (g->kind == SEG_ANY) {
                star_pi = pi++;
                star_si = si;
                continue;
            }
            if (g->kind == SEG_ONE ? e > b : (e - b == g->len && same(s + b, g->s, g->len))) {
                pi++;
                si = e;
                continue;
            }
        }
        if (star_pi == SIZE_MAX) return 0;
        pi = star_pi + 1; /* the "**" takes one more segment */
        size_t t = star_si + 1;
        while (t < n && s[t] != '/') t++;
        star_si = si = t;
    }
    while (pi < np && p[pi].kind == SEG_ANY) pi++;
    return pi == np;
}

static int path_match(const ls_rule *r, const char *path, size_t n)
{
    /* Most rules differ from the path in the first segment's first byte. */
    if (r->lit_len > 1 && (n < r->lit_len || path[1] != r->lit1)) return 0;
    if (r->match == MATCH_EXACT) return n == r->lit_len && same(path, r->lit, n);
    if (n < r->lit_len || !same(path, r->lit, r->lit_len)) return 0;
    if (n > r->lit_len && path[r->lit_len] != '/') return 0;
    if (r->match == MATCH_PREFIX_ANY) return 1;
    return segs_match(r->segs, r->nsegs, path + r->lit_len, n - r->lit_len);
}

static int xmethod_match(const ls_rule *r, const char *m, size_t n)
{
    for (size_t i = 0; i < r->nxmethods; i++)
        if (n == r->xmethods[i].len && eq_upper(m, r->xmethods[i].s, n)) return 1;
    return 0;
}

ls_rc ls_rules_match(const ls_rules_t *rules, const char *method, const char *host,
                     const char *path, size_t path_len, const ls_rule **rule)
{
    /* Method and host are looked at when the first rule needs them. */
    size_t mlen = 0, hlen = 0;
    uint32_t mbit = 0;
    int have_method = 0, have_host = 0;
    char hbuf[HOST_MAX];
    if (path_len > 0 && path[path_len - 1] == '/') path_len--; /* "/a/" as "/a", "/" as "" */

    for (size_t i = 0; i < rules->n; i++) {
        const ls_rule *r = &rules->v[i];
        if (r->method_mask | r->nxmethods) {
            if (method == NULL) continue;
            if (!have_method) {
                mlen = strlen(method);
                mbit = method_bit(method, mlen);
                have_method = 1;
            }
            if (mbit ? !(r->method_mask & mbit) : !xmethod_match(r, method, mlen)) continue;
        }
        if (!path_match(r, path, path_len)) continue;
        if (r->host) {
            if (!have_host) {
                hlen = host ? host_norm(host, strlen(host), hbuf) : 0;
                have_host = 1;
            }
            if (hlen != r->host_len || !same(hbuf, r->host, hlen)) continue;
        }
        *rule = r;
        return LS_OK;
    }
    return LS_ENOTFOUND;
}

/* ---- checking ---- */

static int has_any_role(const ls_rule *r, const ls_identity *id)
{
    for (size_t i = 0; i < r->nroles; i++)
        for (size_t j = 0; j < id->nroles; j++)
            if (id->roles[j] && strcmp(id->roles[j], r->roles[i].s) == 0) return 1;
    return 0;
}

static const char *missing_scope(const ls_rule *r, const ls_identity *id)
{
    for (size_t i = 0; i < r->nscopes; i++) {
        size_t j;
        for (j = 0; j < id->nscopes; j++)
            if (id->scopes[j] && strcmp(id->scopes[j], r->scopes[i].s) == 0) break;
        if (j == id->nscopes) return r->scopes[i].s;
    }
    return NULL;
}

static int claim_value_eq(const json_t *v, const struct claim *c)
{
    switch (c->type) {
    case JSON_STRING:
        return json_is_string(v) && json_string_length(v) == c->s.len &&
               same(json_string_value(v), c->s.s, c->s.len);
    case JSON_INTEGER:
        if (json_is_integer(v)) return json_integer_value(v) == c->i;
        return json_is_real(v) && json_real_value(v) == c->d;
    case JSON_REAL: return json_is_number(v) && json_number_value(v) == c->d;
    case JSON_TRUE: return json_is_true(v);
    case JSON_FALSE: return json_is_false(v);
    default: return 0;
    }
}

static int claim_ok(const json_t *claims, const struct claim *c)
{
    const json_t *v = json_object_getn(claims, c->name, c->name_len);
    if (v == NULL && c->dotted) v = ls_json_path(claims, c->name);
    if (v == NULL) return 0;
    if (!json_is_array(v)) return claim_value_eq(v, c);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (claim_value_eq(json_array_get(v, i), c)) return 1;
    return 0;
}

static const char *claim_mismatch(const ls_rule *r, const ls_identity *id)
{
    for (size_t i = 0; i < r->nclaims; i++)
        if (!json_is_object(id->claims) || !claim_ok(id->claims, &r->claims[i]))
            return r->claims[i].name;
    return NULL;
}

ls_rc ls_rule_check(const ls_rule *rule, const ls_identity *id, ls_rule_reason *reason,
                    const char **detail)
{
    ls_rule_reason why = LS_REASON_ALLOWED;
    const char *d = NULL;
    if (rule->kind == LS_RULE_DENY)
        why = LS_REASON_EXPLICIT_DENY;
    else if (rule->kind == LS_RULE_PUBLIC)
        why = LS_REASON_ALLOWED;
    else if (id == NULL || !id->authenticated)
        why = LS_REASON_NOT_AUTHENTICATED;
    else if (rule->nroles && !has_any_role(rule, id)) {
        why = LS_REASON_MISSING_ROLE;
        d = rule->roles[0].s;
    } else if ((d = missing_scope(rule, id)) != NULL)
        why = LS_REASON_MISSING_SCOPE;
    else if ((d = claim_mismatch(rule, id)) != NULL)
        why = LS_REASON_CLAIM_MISMATCH;
    if (reason) *reason = why;
    if (detail) *detail = d;
    return why == LS_REASON_ALLOWED ? LS_OK : LS_EDENIED;
}

/* ---- accessors ---- */

const char *ls_rule_name(const ls_rule *rule)
{
    return rule->name;
}

size_t ls_rule_index(const ls_rule *rule)
{
    return rule->index;
}

ls_rule_kind ls_rule_kind_of(const ls_rule *rule)
{
    return (ls_rule_kind)rule->kind;
}

const char *ls_rule_reason_name(ls_rule_reason reason)
{
    switch (reason) {
    case LS_REASON_ALLOWED: return "allowed";
    case LS_REASON_NO_MATCH: return "no_matching_rule";
    case LS_REASON_NOT_AUTHENTICATED: return "not_authenticated";
    case LS_REASON_MISSING_ROLE: return "missing_role";
    case LS_REASON_MISSING_SCOPE: return "missing_scope";
    case LS_REASON_CLAIM_MISMATCH: return "claim_mismatch";
    case LS_REASON_EXPLICIT_DENY: return "explicit_deny";
    }
    return "unknown";
}

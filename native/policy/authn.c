/* SPDX-License-Identifier: MIT
 * The policy's authenticators: JWT bearer tokens, API keys, HTTP Basic and
 * webhook signatures. Each is compiled from its declaration, reloads its
 * key files when they change, and on a request answers absent (no
 * credential of its kind: the next one is tried), ok (with an identity), or
 * rejected (a credential that does not verify). */
#include "ls_config.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "jwt_int.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_duration.h"
#include "policy_int.h"

#define JWT_CACHE_DEFAULT 10000
#define JWKS_CACHE_DIR    "/var/cache/lodestone" /* ls_policy_opts.cache_dir's default */

/* ---- declaration helpers ---- */

static ls_rc field_err(ls_err *err, const char *label, const char *field, const char *what)
{
    return ls_err_set(err, LS_EINVAL, "%s.%s: %s", label, field, what);
}

/* Optional string field copied into *out (left NULL when absent). */
static ls_rc opt_str(const json_t *d, const char *label, const char *field, char **out, ls_err *err)
{
    const char *s;
    ls_rc rc = ls_json_get_str(d, field, &s, NULL, err);
    if (rc == LS_ENOTFOUND) return LS_OK;
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if ((*out = ls_strdup(s)) == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    return LS_OK;
}

/* A string or an array of strings, copied into a new array. An empty list
 * is refused with the words if_empty: it would check nothing where the
 * author meant to check something, and policies fail closed. */
static ls_rc str_list(const json_t *d, const char *label, const char *field, const char *if_empty,
                      char ***out, size_t *n, ls_err *err)
{
    json_t *v = json_object_get(d, field);
    if (v == NULL) return LS_OK;
    size_t count = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return field_err(err, label, field, "expected a string or a list of strings");
    if (count == 0) return field_err(err, label, field, if_empty);
    *out = ls_calloc(count ? count : 1, sizeof **out);
    if (*out == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(item))
            return ls_err_set(err, LS_EINVAL, "%s.%s[%zu]: expected a string", label, field, i + 1);
        if (((*out)[i] = ls_strdup(json_string_value(item))) == NULL)
            return ls_err_set(err, LS_ENOMEM, "out of memory");
        *n = i + 1;
    }
    return LS_OK;
}

static void free_list(char **list, size_t n)
{
    if (list == NULL) return;
    for (size_t i = 0; i < n; i++) ls_free(list[i]);
    ls_free(list);
}

#define DURATION_MAX_MS 3200000000000LL /* about a century */

/* A duration given as seconds (number) or text ("30s"), in milliseconds,
 * at most max_ms; range says the allowed values in the message. */
static ls_rc duration_ms(const json_t *d, const char *label, const char *field, int64_t max_ms,
                         const char *range, int64_t *ms, ls_err *err)
{
    json_t *v = json_object_get(d, field);
    if (v == NULL) return LS_ENOTFOUND;
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!(s >= 0 && s * 1000.0 <= (double)max_ms))
            return ls_err_set(err, LS_EINVAL, "%s.%s: out of range (%s)", label, field, range);
        *ms = (int64_t)(s * 1000.0 + 0.5);
        return LS_OK;
    }
    if (!json_is_string(v))
        return field_err(err, label, field, "expected seconds or a duration like \"30s\"");
    ls_rc rc = ls_duration_parse(json_string_value(v), json_string_length(v), ms, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s.%s", label, field);
    if (*ms > max_ms)
        return ls_err_set(err, LS_EINVAL, "%s.%s: out of range (%s)", label, field, range);
    return LS_OK;
}

/* Fields every authenticator has (ls_authn_compile reads them). */
static const char *const common_fields[] = {"type", "name", "paths", NULL};

static int listed(const char *const *names, const char *key)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], key) == 0) return 1;
    return 0;
}

static ls_rc check_fields(const json_t *d, const char *label, const char *const *allowed,
                          ls_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)d, key, v)
    {
        if (!listed(common_fields, key) && !listed(allowed, key))
            return ls_err_set(err, LS_EINVAL, "%s: unknown field '%s'", label, key);
    }
    return LS_OK;
}

static ls_rc watch_init(ls_policy_t *p, file_watch *w, const char *name, ls_err *err)
{
    if ((w->path = ls_policy_path(p, name)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_policy_watch_changed(p, w, NULL); /* fill the stamp; the load reports errors */
    return LS_OK;
}

/* Reads a secret file (a trailing newline is not part of the secret) into
 * guarded memory: caller frees with sodium_free, which wipes. */
static ls_rc read_secret(ls_policy_t *p, const char *name, const char *field, unsigned char **out,
                         size_t *n, ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    char *path = ls_policy_path(p, name), *text = NULL;
    if (path == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    size_t len = 0;
    ls_rc rc = ls_conffile_read(path, 4096, "a secret", &text, &len, err);
    if (rc != LS_OK) {
        ls_err_prefix(err, "%s %s", field, path);
        ls_free(path);
        return rc;
    }
    ls_free(path);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (len == 0) rc = ls_err_set(err, LS_EINVAL, "%s: the file is empty", field);
    unsigned char *secret = rc == LS_OK ? sodium_malloc(len) : NULL;
    if (rc == LS_OK && secret == NULL) rc = ls_err_set(err, LS_ENOMEM, "out of memory");
    if (rc == LS_OK) memcpy(secret, text, len);
    sodium_memzero(text, len);
    ls_free(text);
    if (rc != LS_OK) return rc;
    *out = secret;
    *n = len;
    return LS_OK;
}

/* ---- JWT ---- */

static const char *const jwt_fields[] = {
    "jwks",       "jwks_url",        "pem",         "secret_file",  "issuer",        "audience",
    "algorithms", "leeway",          "roles_claim", "scopes_claim", "subject_claim", "header",
    "cache_size", "required_claims", "cache_ttl",   "allow_no_exp", "jwks_cache",    "jwks_refresh",
    NULL};

/* jwks_url: keys fetched by a background thread (jwks_fetch.c) into a cache
 * file that this authenticator watches like a `jwks` file, so new keys are
 * installed by the ordinary reload (at once when the fetcher says it wrote
 * the file, else within a second), every lighttpd worker shares them, and
 * a restart works while the provider is down. Without a cache file the
 * authenticator starts with no keys: tokens are refused (unknown_kid) until
 * the first fetch lands, and the first request starts that fetch. */

/* "<cache_dir>/jwks-<policy>-<16 hex digits of BLAKE2b(url)>.json". */
static char *default_cache_path(const ls_policy_t *p, const char *url)
{
    unsigned char h[crypto_generichash_BYTES_MIN];
    char hex[17];
    crypto_generichash(h, sizeof h, (const unsigned char *)url, strlen(url), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, 8);
    const char *dir = p->cache_dir ? p->cache_dir : JWKS_CACHE_DIR;
    size_t n = strlen(dir) + strlen(p->name) + sizeof hex + 16;
    char *out = ls_malloc(n);
    if (out) snprintf(out, n, "%s/jwks-%s-%s.json", dir, p->name, hex);
    return out;
}

/* The cache file's directory must exist (it is created when missing) and
 * be writable by no one but its owner: anyone else could plant keys. */
static ls_rc check_cache_dir(const char *label, const char *file, ls_err *err)
{
    const char *slash = strrchr(file, '/');
    char *dir = slash == NULL   ? ls_strdup(".")
                : slash == file ? ls_strdup("/")
                                : ls_strndup(file, (size_t)(slash - file));
    if (dir == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    struct stat st;
    ls_rc rc = LS_OK;
    int ok = stat(dir, &st) == 0;
    if (!ok && errno == ENOENT)
        ok = (mkdir(dir, 0755) == 0 || errno == EEXIST) && stat(dir, &st) == 0;
    if (!ok)
        rc = ls_err_set(err, errno == EACCES ? LS_EPERM : LS_EIO, "%s.jwks_cache: directory %s: %s",
                        label, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = ls_err_set(err, LS_EINVAL, "%s.jwks_cache: %s is not a directory", label, dir);
    else if (st.st_mode & 022)
        rc = ls_err_set(err, LS_EPERM,
                        "%s.jwks_cache: directory %s is writable by group or others, who could "
                        "plant keys: use one only the server's user can write",
                        label, dir);
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        rc = ls_err_set(err, LS_EPERM,
                        "%s.jwks_cache: directory %s belongs to uid %u, who could plant keys: "
                        "use one of the server's user (uid %u) or root",
                        label, dir, (unsigned)st.st_uid, (unsigned)geteuid());
    ls_free(dir);
    return rc;
}

static ls_rc compile_jwks_url(ls_policy_t *p, authn *a, const json_t *d, const char *url,
                              ls_err *err)
{
    const char *label = a->label, *name;
    ls_rc rc = ls_jwks_fetch_check_url(url, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s.jwks_url", label);
    int64_t refresh = LS_JWKS_FETCH_REFRESH_MS;
    rc =
        duration_ms(d, label, "jwks_refresh", DURATION_MAX_MS, "between 1m and 24h", &refresh, err);
    if (rc == LS_EINVAL) return rc;
    if (refresh < LS_JWKS_FETCH_MIN_REFRESH_MS || refresh > LS_JWKS_FETCH_MAX_REFRESH_MS)
        return field_err(err, label, "jwks_refresh", "between 1m and 24h");
    rc = ls_json_get_str(d, "jwks_cache", &name, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    a->jwks_file.path = rc == LS_OK ? ls_policy_path(p, name) : default_cache_path(p, url);
    if (a->jwks_file.path == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    if ((rc = check_cache_dir(label, a->jwks_file.path, err)) != LS_OK) return rc;
    ls_policy_watch_changed(p, &a->jwks_file, NULL); /* stamp before the load */
    ls_jwks_fetch_opts fo = {.refresh_ms = refresh};
    rc = ls_jwks_fetch_new(&a->fetch, url, a->jwks_file.path, &fo, err);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "%s", label);
}

/* jwks_url: the cache file's keys; none when there is no cache yet, or it
 * is damaged (said in a notice; the fetcher replaces it at once). */
static ls_rc load_cached_keys(ls_policy_t *p, authn *a, ls_jwks_t **out, ls_err *err)
{
    ls_err lerr;
    ls_rc rc = ls_jwks_load_file(out, a->jwks_file.path, &lerr);
    if (rc == LS_OK) return LS_OK;
    if (rc == LS_ENOMEM) return ls_err_set(err, LS_ENOMEM, "out of memory");
    if (rc != LS_ENOTFOUND) {
        ls_err_prefix(&lerr, "%s: ignoring the cached keys until they are fetched again", a->label);
        ls_policy_notice(p, &lerr);
    }
    return ls_jwks_new(out, err);
}

/* Says which keys of a loaded JWK Set were skipped and why, unless the
 * keys it replaces (prev, or NULL) had the same said of them: a refresh
 * that brings the same set is no news. */
static void notice_skipped_keys(ls_policy_t *p, const authn *a, const ls_jwks_t *ks,
                                const ls_jwks_t *prev)
{
    ls_err note, before;
    if (ls_jwks_skip_notice(ks, &note) == LS_OK) return;
    if (prev && ls_jwks_skip_notice(prev, &before) != LS_OK && strcmp(before.msg, note.msg) == 0)
        return;
    ls_err_prefix(&note, "%s: %s", a->label, a->jwks_file.path);
    ls_policy_notice(p, &note);
}

static ls_rc jwt_load_keys(ls_policy_t *p, authn *a, const json_t *d, ls_jwks_t **out, ls_err *err)
{
    ls_jwks_t *ks = NULL;
    ls_rc rc;
    if (a->fetch) {
        if ((rc = load_cached_keys(p, a, &ks, err)) != LS_OK) return rc;
    } else if (a->jwks_file.path) {
        rc = ls_jwks_load_file(&ks, a->jwks_file.path, err);
        if (rc != LS_OK) return rc;
    } else if ((rc = ls_jwks_new(&ks, err)) != LS_OK) {
        return rc;
    }
    notice_skipped_keys(p, a, ks, NULL);
    const char *name;
    if (d && ls_json_get_str(d, "pem", &name, NULL, NULL) == LS_OK) {
        char *path = ls_policy_path(p, name);
        rc = path ? ls_jwks_add_pem_file(ks, path, NULL, LS_JWT_ALG_ANY, err)
                  : ls_err_set(err, LS_ENOMEM, "out of memory");
        ls_free(path);
        if (rc != LS_OK) goto fail;
    }
    if (d && ls_json_get_str(d, "secret_file", &name, NULL, NULL) == LS_OK) {
        unsigned char *secret = NULL;
        size_t n = 0;
        rc = read_secret(p, name, "secret_file", &secret, &n, err);
        if (rc == LS_OK) rc = ls_jwks_add_secret(ks, secret, n, NULL, LS_JWT_ALG_ANY, err);
        if (secret) sodium_free(secret);
        if (rc != LS_OK) goto fail;
    }
    *out = ks;
    return LS_OK;
fail:
    ls_jwks_free(ks);
    return rc;
}

static ls_rc compile_jwt(ls_policy_t *p, authn *a, const json_t *d, ls_err *err)
{
    const char *label = a->label;
    ls_rc rc = check_fields(d, label, jwt_fields, err);
    if (rc != LS_OK) return rc;
    const char *jwks, *url = NULL;
    rc = ls_json_get_str(d, "jwks_url", &url, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    rc = ls_json_get_str(d, "jwks", &jwks, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if (rc == LS_OK && (rc = watch_init(p, &a->jwks_file, jwks, err)) != LS_OK) return rc;
    int sources = (a->jwks_file.path != NULL) + (url != NULL) +
                  (json_object_get(d, "pem") != NULL) + (json_object_get(d, "secret_file") != NULL);
    if (sources != 1)
        return ls_err_set(err, LS_EINVAL,
                          "%s: needs exactly one key source: jwks, jwks_url, pem or secret_file",
                          label);
    if (url == NULL && (json_object_get(d, "jwks_cache") || json_object_get(d, "jwks_refresh")))
        return ls_err_set(err, LS_EINVAL, "%s: jwks_cache and jwks_refresh go with jwks_url",
                          label);
    if (url && (rc = compile_jwks_url(p, a, d, url, err)) != LS_OK) return rc;

    /* algorithms: required, never "none" */
    json_t *algs = json_object_get(d, "algorithms");
    if (!json_is_array(algs) || json_array_size(algs) == 0)
        return field_err(err, label, "algorithms",
                         "required: a list such as { \"RS256\", \"EdDSA\" }");
    size_t i;
    json_t *v;
    json_array_foreach(algs, i, v)
    {
        ls_jwt_alg alg;
        if (!json_is_string(v))
            return ls_err_set(err, LS_EINVAL, "%s.algorithms[%zu]: expected a string", label,
                              i + 1);
        rc = ls_jwt_alg_parse(json_string_value(v), json_string_length(v), &alg, err);
        if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s.algorithms[%zu]", label, i + 1);
        a->vopts.algs |= LS_JWT_ALG_BIT(alg);
    }
    if ((rc = opt_str(d, label, "issuer", &a->issuer, err)) != LS_OK) return rc;
    if (a->issuer && a->issuer[0] == '\0')
        return field_err(err, label, "issuer", "must not be empty (leave it out to not check iss)");
    rc = str_list(d, label, "audience", "the list is empty (leave it out to not check aud)",
                  &a->audiences, &a->n_audiences, err);
    if (rc != LS_OK) return rc;
    rc = str_list(d, label, "required_claims", "the list is empty (leave it out to require none)",
                  &a->required, &a->n_required, err);
    if (rc != LS_OK) return rc;
    if ((rc = opt_str(d, label, "roles_claim", &a->roles_claim, err)) != LS_OK) return rc;
    if ((rc = opt_str(d, label, "scopes_claim", &a->scopes_claim, err)) != LS_OK) return rc;
    if ((rc = opt_str(d, label, "subject_claim", &a->subject_claim, err)) != LS_OK) return rc;
    int64_t ms = 0;
    rc = duration_ms(d, label, "leeway", 86400000, "0 to 86400 seconds: at most one day", &ms, err);
    if (rc == LS_EINVAL) return rc;
    int no_exp = 0;
    rc = ls_json_get_bool(d, "allow_no_exp", &no_exp, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);

    a->vopts.issuer = a->issuer;
    a->vopts.audiences = (const char *const *)a->audiences;
    a->vopts.n_audiences = a->n_audiences;
    a->vopts.required = (const char *const *)a->required;
    a->vopts.n_required = a->n_required;
    a->vopts.leeway_s = ms / 1000;
    a->vopts.clock = p->clock;
    a->vopts.flags = no_exp ? LS_JWT_ALLOW_NO_EXP : 0;

    const char *hdr = "Authorization";
    rc = ls_json_get_str(d, "header", &hdr, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if ((rc = ls_policy_want_header(p, hdr, &a->header, err)) != LS_OK) return rc;

    int64_t size = JWT_CACHE_DEFAULT, ttl_ms = 300000;
    rc = ls_json_get_int(d, "cache_size", &size, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if (size < 1 || size > 16777216) return field_err(err, label, "cache_size", "1 to 16777216");
    rc = duration_ms(d, label, "cache_ttl", DURATION_MAX_MS, "0 to 3200000000 seconds", &ttl_ms,
                     err);
    if (rc == LS_EINVAL) return rc;
    ls_jwt_cache_opts copts = {.capacity = (size_t)size,
                               .ttl_s = ttl_ms / 1000 ? ttl_ms / 1000 : 1};
    if ((rc = ls_jwt_cache_new(&a->cache, &copts, &a->vopts, err)) != LS_OK)
        return LS_ERR_PREFIXED(rc, err, "%s", label);

    if ((rc = jwt_load_keys(p, a, d, &a->jwks, err)) != LS_OK)
        return LS_ERR_PREFIXED(rc, err, "%s", label);
    return LS_OK;
}

/* The caller a verified token names, derived once per token and kept with
 * it (ls_jwt_set_memo), so a cache hit costs no claim lookups. One block:
 * this header, the two pointer arrays, then the strings. */
typedef struct {
    const char *subject; /* borrowed from the claims, which live as long */
    size_t nroles, nscopes;
    const char **roles, **scopes;
    caller_memo *derived; /* the decision's own memo (eval.c), or NULL */
} jwt_memo;

static void jwt_memo_free(void *memo)
{
    jwt_memo *m = memo;
    ls_caller_memo_free(m->derived);
    ls_free(m);
}

caller_memo **ls_authn_memo_slot(ls_policy_t *p)
{
    jwt_memo *m = p->token ? ls_jwt_memo(p->token) : NULL;
    return m ? &m->derived : NULL;
}

/* The roles (sep ',') or scopes (sep ' ') a token names. They go on as C
 * strings, joined with sep in X-Roles and X-Scopes, so an item holding a
 * NUL byte or sep could pass for another ("admin\u0000x" for admin, the
 * one role "admin,x" for two): such items are dropped, which only takes
 * rights away. */
static size_t claim_items(ls_jwt_t *t, const char *claim, const char *fallback, char sep,
                          ls_jwt_str *items)
{
    size_t n = 0;
    if (ls_jwt_claim_strings_into(t, claim, items, POLICY_MAX_ITEMS, &n, NULL) != LS_OK &&
        (fallback == NULL ||
         ls_jwt_claim_strings_into(t, fallback, items, POLICY_MAX_ITEMS, &n, NULL) != LS_OK))
        return 0;
    if (n > POLICY_MAX_ITEMS) n = POLICY_MAX_ITEMS; /* more are dropped: fewer rights */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!memchr(items[i].ptr, 0, items[i].len) && !memchr(items[i].ptr, sep, items[i].len))
            items[kept++] = items[i];
    return kept;
}

static jwt_memo *jwt_memo_build(const authn *a, ls_jwt_t *t)
{
    ls_jwt_str roles[POLICY_MAX_ITEMS], scopes[POLICY_MAX_ITEMS];
    size_t nr = claim_items(t, a->roles_claim ? a->roles_claim : "roles", NULL, ',', roles);
    size_t ns = claim_items(t, a->scopes_claim ? a->scopes_claim : "scope",
                            a->scopes_claim ? NULL : "scp", ' ', scopes);
    size_t bytes = sizeof(jwt_memo) + (nr + ns) * sizeof(char *);
    for (size_t i = 0; i < nr; i++) bytes += roles[i].len + 1;
    for (size_t i = 0; i < ns; i++) bytes += scopes[i].len + 1;
    jwt_memo *m = ls_malloc(bytes);
    if (m == NULL) return NULL;
    m->roles = (const char **)(m + 1);
    m->scopes = m->roles + nr;
    char *str = (char *)(m->scopes + ns);
    m->nroles = nr;
    m->nscopes = ns;
    m->derived = NULL;
    for (size_t i = 0; i < nr + ns; i++) {
        const ls_jwt_str *it = i < nr ? &roles[i] : &scopes[i - nr];
        memcpy(str, it->ptr, it->len);
        str[it->len] = '\0';
        m->roles[i] = str; /* roles and scopes are one array */
        str += it->len + 1;
    }
    m->subject = ls_jwt_subject(t);
    if (a->subject_claim) {
        json_t *s = ls_json_path(ls_jwt_claims(t), a->subject_claim);
        int ok = json_is_string(s) && !memchr(json_string_value(s), 0, json_string_length(s));
        m->subject = ok ? json_string_value(s) : NULL; /* none rather than a cut one */
    }
    return m;
}

/* Fills id from a verified token; 0 when out of memory. */
static int jwt_identity(const authn *a, ls_jwt_t *t, ls_identity *id)
{
    jwt_memo *m = ls_jwt_memo(t);
    if (m == NULL) {
        if ((m = jwt_memo_build(a, t)) == NULL) return 0;
        ls_jwt_set_memo(t, m, jwt_memo_free);
    }
    id->authenticated = 1;
    id->claims = ls_jwt_claims(t);
    id->subject = m->subject;
    id->roles = m->roles;
    id->nroles = m->nroles;
    id->scopes = m->scopes;
    id->nscopes = m->nscopes;
    return 1;
}

/* Whether the credential h starts with scheme (lower case, n bytes with
 * its space) in any case, as RFC 9110 reads auth schemes. ASCII only:
 * strncasecmp would consult the locale's tables on every request. */
static int has_scheme(ls_str h, const char *scheme, size_t n)
{
    if (h.ptr == NULL || h.len < n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h.ptr[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)scheme[i]) return 0;
    }
    return 1;
}

static authn_result run_jwt(ls_policy_t *p, authn *a, const ls_policy_request *req, ls_identity *id,
                            const char **reason, const char **detail)
{
    ls_str h = ls_policy_req_header(p, req, a->header);
    if (!has_scheme(h, "bearer ", 7)) return AUTHN_ABSENT;
    const char *tok = h.ptr + 7;
    size_t len = h.len - 7;
    while (len > 0 && *tok == ' ') tok++, len--;
    while (len > 0 && tok[len - 1] == ' ') len--;

    ls_jwt_t *t = NULL;
    ls_jwt_reason why = LS_JWT_OK;
    ls_err err;
    ls_rc rc = ls_jwt_cache_verify(a->cache, a->jwks, tok, len, &t, &why, &err);
    if (rc != LS_OK) {
        if (a->fetch && (why == LS_JWT_UNKNOWN_KID || why == LS_JWT_NO_KEY))
            /* keys may have rotated: at most one a minute */
            ls_jwks_fetch_request(a->fetch, a->fetch_installs);
        int failed = why == LS_JWT_OK || why == LS_JWT_ERROR;
        *reason = failed ? "internal_error" : ls_jwt_reason_name(why);
        *detail = ls_policy_scratch(p, err.msg, strlen(err.msg));
        return failed ? AUTHN_ERROR : AUTHN_REJECTED;
    }
    ls_jwt_free(p->token);
    p->token = t; /* claims stay alive until the next decision */
    if (!jwt_identity(a, t, id)) {
        *reason = "internal_error";
        *detail = "out of memory";
        return AUTHN_ERROR;
    }
    return AUTHN_OK;
}

/* ---- API keys ---- */

static const char *const apikey_fields[] = {"header", "query", "keys", NULL};

static ls_rc compile_apikey(ls_policy_t *p, authn *a, const json_t *d, ls_err *err)
{
    ls_rc rc = check_fields(d, a->label, apikey_fields, err);
    if (rc != LS_OK) return rc;
    const char *keys;
    rc = ls_json_get_str(d, "keys", &keys, NULL, err);
    if (rc == LS_ENOTFOUND) return field_err(err, a->label, "keys", "required: the key file");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    if ((rc = opt_str(d, a->label, "query", &a->query_param, err)) != LS_OK) return rc;
    const char *hdr = a->query_param ? NULL : "X-API-Key";
    rc = ls_json_get_str(d, "header", &hdr, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    a->header = -1;
    if (hdr && (rc = ls_policy_want_header(p, hdr, &a->header, err)) != LS_OK) return rc;
    if ((rc = watch_init(p, &a->keys_file, keys, err)) != LS_OK) return rc;
    rc = ls_apikey_load(&a->keys, a->keys_file.path, err);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "%s.keys", a->label);
}

/* Finds name=value in a query string; value is not decoded (keys are
 * base64url and need no escaping). */
static int query_param(ls_str q, const char *name, ls_str *out)
{
    size_t nlen = strlen(name);
    const char *s = q.ptr, *end = q.ptr + q.len;
    while (s && s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - s) > nlen && memcmp(s, name, nlen) == 0 && s[nlen] == '=') {
            out->ptr = s + nlen + 1;
            out->len = (size_t)(stop - out->ptr);
            return 1;
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}

static authn_result run_apikey(ls_policy_t *p, authn *a, const ls_policy_request *req,
                               ls_identity *id, const char **reason, const char **detail)
{
    ls_str key = {NULL, 0};
    if (a->header >= 0) key = ls_policy_req_header(p, req, a->header);
    if (key.ptr == NULL && a->query_param && req->query.ptr)
        query_param(req->query, a->query_param, &key);
    if (key.ptr == NULL) return AUTHN_ABSENT;
    const ls_apikey_entry *e;
    if (ls_apikey_verify(a->keys, key.ptr, key.len, &e, NULL) != LS_OK) {
        *reason = "invalid_api_key";
        *detail = NULL;
        return AUTHN_REJECTED;
    }
    (void)p;
    id->authenticated = 1;
    id->subject = e->subject;
    id->roles = e->roles;
    id->nroles = e->nroles;
    id->scopes = e->scopes;
    id->nscopes = e->nscopes;
    return AUTHN_OK;
}

/* ---- HTTP Basic ---- */

static const char *const basic_fields[] = {"users", "realm", NULL};

static ls_rc compile_basic(ls_policy_t *p, authn *a, const json_t *d, ls_err *err)
{
    ls_rc rc = check_fields(d, a->label, basic_fields, err);
    if (rc != LS_OK) return rc;
    const char *users;
    rc = ls_json_get_str(d, "users", &users, NULL, err);
    if (rc == LS_ENOTFOUND) return field_err(err, a->label, "users", "required: the password file");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    if ((rc = opt_str(d, a->label, "realm", &a->realm, err)) != LS_OK) return rc;
    if ((rc = ls_policy_want_header(p, "Authorization", &a->header, err)) != LS_OK) return rc;
    if ((rc = watch_init(p, &a->users_file, users, err)) != LS_OK) return rc;
    ls_basic_opts bopts = {.clock = p->clock};
    rc = ls_basic_load(&a->users, a->users_file.path, &bopts, err);
    return rc == LS_OK ? LS_OK : LS_ERR_PREFIXED(rc, err, "%s.users", a->label);
}

static authn_result run_basic(ls_policy_t *p, authn *a, const ls_policy_request *req,
                              ls_identity *id, const char **reason, const char **detail)
{
    ls_str h = ls_policy_req_header(p, req, a->header);
    if (!has_scheme(h, "basic ", 6)) return AUTHN_ABSENT;
    const char *user = NULL;
    ls_err err;
    ls_rc rc = ls_basic_verify(a->users, h.ptr, h.len, &user, &err);
    if (rc != LS_OK) {
        *reason = rc == LS_EINVAL ? "malformed_credentials" : "invalid_credentials";
        *detail = rc == LS_EINVAL ? ls_policy_scratch(p, err.msg, strlen(err.msg)) : NULL;
        return AUTHN_REJECTED;
    }
    id->authenticated = 1;
    id->subject = user;
    return AUTHN_OK;
}

/* ---- webhook signatures ---- */

static const char *const hook_fields[] = {"provider", "secret_file", "header",
                                          "encoding", "prefix",      "tolerance",
                                          "subject",  "roles",       NULL};

static ls_rc compile_webhook(ls_policy_t *p, authn *a, const json_t *d, ls_err *err)
{
    ls_rc rc = check_fields(d, a->label, hook_fields, err);
    if (rc != LS_OK) return rc;
    const char *prov, *hdr = NULL, *secret;
    rc = ls_json_get_str(d, "provider", &prov, NULL, err);
    if (rc == LS_ENOTFOUND)
        return field_err(err, a->label, "provider", "required: github, stripe or hmac");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    if (strcmp(prov, "github") == 0) {
        a->provider = HOOK_GITHUB;
        hdr = "X-Hub-Signature-256";
    } else if (strcmp(prov, "stripe") == 0) {
        a->provider = HOOK_STRIPE;
        hdr = "Stripe-Signature";
    } else if (strcmp(prov, "hmac") == 0) {
        a->provider = HOOK_HMAC;
        hdr = "X-Signature";
    } else {
        return ls_err_set(err, LS_EINVAL, "%s.provider: \"%s\" is not github, stripe or hmac",
                          a->label, prov);
    }
    rc = ls_json_get_str(d, "header", &hdr, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    if ((rc = ls_policy_want_header(p, hdr, &a->header, err)) != LS_OK) return rc;
    rc = ls_json_get_str(d, "secret_file", &secret, NULL, err);
    if (rc == LS_ENOTFOUND) return field_err(err, a->label, "secret_file", "required");
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    rc = read_secret(p, secret, "secret_file", &a->secret, &a->secret_len, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", a->label);

    const char *enc = "hex";
    rc = ls_json_get_str(d, "encoding", &enc, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", a->label);
    if (strcmp(enc, "hex") == 0)
        a->hook_opts.encoding = LS_HMAC_HEX;
    else if (strcmp(enc, "base64") == 0)
        a->hook_opts.encoding = LS_HMAC_BASE64;
    else if (strcmp(enc, "base64url") == 0)
        a->hook_opts.encoding = LS_HMAC_BASE64URL;
    else
        return ls_err_set(err, LS_EINVAL, "%s.encoding: \"%s\" is not hex, base64 or base64url",
                          a->label, enc);
    if ((rc = opt_str(d, a->label, "prefix", &a->sig_prefix, err)) != LS_OK) return rc;
    a->hook_opts.sig_prefix = a->sig_prefix;
    int64_t ms = 0;
    rc =
        duration_ms(d, a->label, "tolerance", DURATION_MAX_MS, "0 to 3200000000 seconds", &ms, err);
    if (rc == LS_EINVAL) return rc;
    if (ms != 0 && ms < 1000)
        return field_err(err, a->label, "tolerance", "at least 1s (Stripe timestamps are seconds)");
    a->tolerance_s = ms / 1000;
    if ((rc = opt_str(d, a->label, "subject", &a->hook_subject, err)) != LS_OK) return rc;
    if (a->hook_subject == NULL && (a->hook_subject = ls_strdup(prov)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    return str_list(d, a->label, "roles", "the list is empty (leave it out for no roles)",
                    &a->hook_roles, &a->n_hook_roles, err);
}

static authn_result run_webhook(ls_policy_t *p, authn *a, const ls_policy_request *req,
                                ls_identity *id, const char **reason, const char **detail)
{
    ls_str h = ls_policy_req_header(p, req, a->header);
    if (h.ptr == NULL) return AUTHN_ABSENT;
    const char *body = req->body.ptr ? req->body.ptr : "";
    ls_hmac_reason why = LS_HMAC_OK;
    ls_rc rc;
    if (a->provider == HOOK_GITHUB) {
        rc = ls_hmac_verify_github(a->secret, a->secret_len, h.ptr, h.len, body, req->body.len,
                                   &why, NULL);
    } else if (a->provider == HOOK_STRIPE) {
        ls_hmac_stripe_opts so = {.tolerance_s = a->tolerance_s, .clock = p->clock};
        rc = ls_hmac_verify_stripe(a->secret, a->secret_len, &so, h.ptr, h.len, body, req->body.len,
                                   &why, NULL);
    } else {
        rc = ls_hmac_verify_generic(a->secret, a->secret_len, &a->hook_opts, h.ptr, h.len, body,
                                    req->body.len, &why, NULL);
    }
    if (rc != LS_OK) {
        *reason = why == LS_HMAC_OK ? "internal_error" : ls_hmac_reason_name(why);
        *detail = NULL;
        return why == LS_HMAC_OK ? AUTHN_ERROR : AUTHN_REJECTED;
    }
    id->authenticated = 1;
    id->subject = a->hook_subject;
    id->roles = (const char *const *)a->hook_roles;
    id->nroles = a->n_hook_roles;
    return AUTHN_OK;
}

/* ---- dispatch ---- */

ls_rc ls_authn_compile(ls_policy_t *p, authn *a, const json_t *d, const char *label, ls_err *err)
{
    memset(a, 0, sizeof *a);
    a->header = -1;
    if (!json_is_object(d)) return ls_err_set(err, LS_EINVAL, "%s: expected a table", label);
    const char *name = label, *type;
    ls_rc rc = ls_json_get_str(d, "name", &name, NULL, err);
    if (rc == LS_EINVAL) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if ((a->label = ls_strdup(name)) == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    rc = ls_json_get_str(d, "type", &type, NULL, err);
    if (rc == LS_ENOTFOUND)
        return ls_err_set(err, LS_EINVAL,
                          "%s: type required (use policy.jwt{...}, policy.api_key{...}, "
                          "policy.basic{...} or policy.webhook{...})",
                          label);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", label);
    if (strcmp(type, "jwt") == 0) {
        a->type = AUTHN_JWT;
        rc = compile_jwt(p, a, d, err);
    } else if (strcmp(type, "api_key") == 0) {
        a->type = AUTHN_APIKEY;
        rc = compile_apikey(p, a, d, err);
    } else if (strcmp(type, "basic") == 0) {
        a->type = AUTHN_BASIC;
        rc = compile_basic(p, a, d, err);
    } else if (strcmp(type, "webhook") == 0) {
        a->type = AUTHN_WEBHOOK;
        rc = compile_webhook(p, a, d, err);
    } else {
        return ls_err_set(err, LS_EINVAL, "%s.type: \"%s\" is not jwt, api_key, basic or webhook",
                          label, type);
    }
    if (rc != LS_OK) return rc;

    const json_t *paths = json_object_get(d, "paths");
    if (paths) {
        char pl[LS_ERR_MSGMAX];
        snprintf(pl, sizeof pl, "%s.paths", a->label);
        if ((rc = ls_rules_compile_paths(&a->paths, paths, pl, err)) != LS_OK) return rc;
    }
    if (a->type == AUTHN_WEBHOOK) {
        int where = a->paths ? LS_POLICY_BODY_SOME_PATHS : LS_POLICY_BODY_EVERY_PATH;
        if (where > p->needs_body) p->needs_body = where;
    }
    return LS_OK;
}

void ls_authn_free(authn *a)
{
    ls_jwks_fetch_free(a->fetch); /* first: stops and joins its thread */
    ls_free(a->query_param);
    ls_free(a->label);
    ls_rules_free(a->paths);
    ls_jwks_free(a->jwks);
    ls_free(a->jwks_file.path);
    ls_jwt_cache_free(a->cache);
    ls_free(a->issuer);
    free_list(a->audiences, a->n_audiences);
    free_list(a->required, a->n_required);
    ls_free(a->subject_claim);
    ls_free(a->roles_claim);
    ls_free(a->scopes_claim);
    ls_apikey_free(a->keys);
    ls_free(a->keys_file.path);
    ls_basic_free(a->users);
    ls_free(a->users_file.path);
    ls_free(a->realm);
    if (a->secret) sodium_free(a->secret); /* sodium_free wipes */
    ls_free(a->sig_prefix);
    ls_free(a->hook_subject);
    free_list(a->hook_roles, a->n_hook_roles);
    memset(a, 0, sizeof *a);
}

/* jwks_url, about once a second: the fetch thread runs in this process
 * (started here on the first request, again after a fork), and its new
 * failures become notices. */
static void jwt_fetch_poll(ls_policy_t *p, authn *a)
{
    ls_err err;
    a->fetch_polled = 1;
    if (ls_jwks_fetch_poll(a->fetch, &a->fetch_failures, &err) != LS_OK) {
        ls_err_prefix(&err, "%s", a->label);
        ls_policy_notice(p, &err);
    }
}

void ls_authn_refresh(ls_policy_t *p, authn *a)
{
    ls_err err;
    if (a->type == AUTHN_JWT && a->jwks_file.path) {
        if (a->fetch && ls_jwks_fetch_installs(a->fetch) != a->fetch_installs) {
            a->fetch_installs = ls_jwks_fetch_installs(a->fetch);
            a->jwks_file.checked = 0; /* the fetcher wrote the cache: look now */
        }
        int was = a->jwks_file.checked;
        int64_t last = a->jwks_file.checked_ms;
        int c = ls_policy_watch_changed(p, &a->jwks_file, &err);
        ls_jwks_t *ks;
        if (c == 1 && ls_jwks_load_file(&ks, a->jwks_file.path, &err) == LS_OK) {
            notice_skipped_keys(p, a, ks, a->jwks);
            ls_jwks_free(a->jwks);
            a->jwks = ks; /* cached tokens of removed keys are invalidated by fingerprint */
        } else if (c != 0 && !(a->fetch && c == -1 && err.code == LS_ENOTFOUND)) {
            /* (jwks_url without a cache yet is no news: its fetcher reports) */
            ls_err_prefix(&err, "%s: keeping the previous keys", a->label);
            ls_policy_notice(p, &err);
        }
        if (a->fetch && (!a->fetch_polled || !was || a->jwks_file.checked_ms != last))
            jwt_fetch_poll(p, a);
    } else if (a->type == AUTHN_APIKEY) {
        int c = ls_policy_watch_changed(p, &a->keys_file, &err);
        ls_apikey_set_t *ks;
        if (c == 1 && ls_apikey_load(&ks, a->keys_file.path, &err) == LS_OK) {
            ls_apikey_free(a->keys);
            a->keys = ks;
        } else if (c != 0) {
            ls_err_prefix(&err, "%s: keeping the previous keys", a->label);
            ls_policy_notice(p, &err);
        }
    } else if (a->type == AUTHN_BASIC) {
        int c = ls_policy_watch_changed(p, &a->users_file, &err);
        ls_basic_set_t *us;
        ls_basic_opts bopts = {.clock = p->clock};
        if (c == 1 && ls_basic_load(&us, a->users_file.path, &bopts, &err) == LS_OK) {
            ls_basic_free(a->users);
            a->users = us;
        } else if (c != 0) {
            ls_err_prefix(&err, "%s: keeping the previous users", a->label);
            ls_policy_notice(p, &err);
        }
    }
}

authn_result ls_authn_run(ls_policy_t *p, authn *a, const ls_policy_request *req, ls_identity *id,
                          const char **reason, const char **detail)
{
    switch (a->type) {
    case AUTHN_JWT: return run_jwt(p, a, req, id, reason, detail);
    case AUTHN_APIKEY: return run_apikey(p, a, req, id, reason, detail);
    case AUTHN_BASIC: return run_basic(p, a, req, id, reason, detail);
    case AUTHN_WEBHOOK: return run_webhook(p, a, req, id, reason, detail);
    }
    return AUTHN_ABSENT;
}

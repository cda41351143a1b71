/* SPDX-License-Identifier: MIT
 * JWS/JWT verification. The compact form is taken apart strictly (size
 * limit first, three segments, strict base64url, JSON objects without
 * duplicate keys); the header is checked as RFC 8725 asks ("none" never,
 * allow-list, "crit" rejected, the key chosen by the keyset and never by
 * the token); then the signature, then the claims (exp, nbf, iat with
 * leeway, iss, aud, required names). Also algorithm and reason names and
 * the verified-token handle. */
#include "ls_config.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jwt_int.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_base64.h"

/* ---- algorithms ---- */

static const struct {
    const char *name;
    ls_jwk_type type;
    int md;
    int crv;
} alg_tab[LS_JWT_ALG_END] = {
    [LS_JWT_ALG_ANY] = {"", (ls_jwk_type)0, LS_MD_SHA256, LS_CRV_NONE},
    [LS_JWT_HS256] = {"HS256", LS_JWK_OCT, LS_MD_SHA256, LS_CRV_NONE},
    [LS_JWT_HS384] = {"HS384", LS_JWK_OCT, LS_MD_SHA384, LS_CRV_NONE},
    [LS_JWT_HS512] = {"HS512", LS_JWK_OCT, LS_MD_SHA512, LS_CRV_NONE},
    [LS_JWT_RS256] = {"RS256", LS_JWK_RSA, LS_MD_SHA256, LS_CRV_NONE},
    [LS_JWT_RS384] = {"RS384", LS_JWK_RSA, LS_MD_SHA384, LS_CRV_NONE},
    [LS_JWT_RS512] = {"RS512", LS_JWK_RSA, LS_MD_SHA512, LS_CRV_NONE},
    [LS_JWT_PS256] = {"PS256", LS_JWK_RSA, LS_MD_SHA256, LS_CRV_NONE},
    [LS_JWT_PS384] = {"PS384", LS_JWK_RSA, LS_MD_SHA384, LS_CRV_NONE},
    [LS_JWT_PS512] = {"PS512", LS_JWK_RSA, LS_MD_SHA512, LS_CRV_NONE},
    [LS_JWT_ES256] = {"ES256", LS_JWK_EC, LS_MD_SHA256, LS_CRV_P256},
    [LS_JWT_ES384] = {"ES384", LS_JWK_EC, LS_MD_SHA384, LS_CRV_P384},
    [LS_JWT_ES512] = {"ES512", LS_JWK_EC, LS_MD_SHA512, LS_CRV_P521},
    [LS_JWT_EDDSA] = {"EdDSA", LS_JWK_OKP, LS_MD_SHA512, LS_CRV_ED25519},
    [LS_JWT_ED25519] = {"Ed25519", LS_JWK_OKP, LS_MD_SHA512, LS_CRV_ED25519},
};

static int alg_valid(ls_jwt_alg a)
{
    return (int)a > LS_JWT_ALG_ANY && a < LS_JWT_ALG_END;
}

const char *ls_jwt_alg_name(ls_jwt_alg alg)
{
    return alg_valid(alg) ? alg_tab[alg].name : "";
}

int ls_jwt_alg_md(ls_jwt_alg alg)
{
    return alg_valid(alg) ? alg_tab[alg].md : LS_MD_SHA256;
}

ls_jwk_type ls_jwt_alg_type(ls_jwt_alg alg)
{
    return alg_valid(alg) ? alg_tab[alg].type : (ls_jwk_type)0;
}

int ls_jwt_alg_curve(ls_jwt_alg alg)
{
    return alg_valid(alg) ? alg_tab[alg].crv : LS_CRV_NONE;
}

static int is_eddsa(ls_jwt_alg a)
{
    return a == LS_JWT_EDDSA || a == LS_JWT_ED25519;
}

int ls_jwt_alg_same(ls_jwt_alg a, ls_jwt_alg b)
{
    return a == b || (is_eddsa(a) && is_eddsa(b));
}

static int alg_allowed(uint32_t mask, ls_jwt_alg a)
{
    if (is_eddsa(a))
        return (mask & (LS_JWT_ALG_BIT(LS_JWT_EDDSA) | LS_JWT_ALG_BIT(LS_JWT_ED25519))) != 0;
    return (mask & LS_JWT_ALG_BIT(a)) != 0;
}

static int is_none(const char *s, size_t len)
{
    return len == 4 && strncasecmp(s, "none", 4) == 0;
}

ls_rc ls_jwt_alg_parse(const char *name, size_t len, ls_jwt_alg *out, ls_err *err)
{
    if (is_none(name, len))
        return ls_err_set(err, LS_EINVAL, "algorithm \"none\" is never allowed");
    for (int a = LS_JWT_ALG_ANY + 1; a < LS_JWT_ALG_END; a++)
        if (strlen(alg_tab[a].name) == len && memcmp(alg_tab[a].name, name, len) == 0) {
            *out = (ls_jwt_alg)a;
            return LS_OK;
        }
    return ls_err_set(err, LS_EINVAL, "unknown algorithm \"%.*s\"", len > 40 ? 40 : (int)len, name);
}

ls_rc ls_jwt_algs_parse(const char *list, uint32_t *mask, ls_err *err)
{
    uint32_t m = 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0) break;
        ls_jwt_alg a;
        ls_rc rc = ls_jwt_alg_parse(p, n, &a, err);
        if (rc != LS_OK) return rc;
        m |= LS_JWT_ALG_BIT(a);
        p += n;
    }
    if (m == 0) return ls_err_set(err, LS_EINVAL, "empty algorithm list");
    *mask = m;
    return LS_OK;
}

/* ---- reasons ---- */

static const char *const reason_names[LS_JWT_REASON_END] = {
    [LS_JWT_OK] = "ok",
    [LS_JWT_ERROR] = "error",
    [LS_JWT_MALFORMED] = "malformed",
    [LS_JWT_TOO_LARGE] = "too_large",
    [LS_JWT_ALG_NONE] = "alg_none",
    [LS_JWT_ALG_NOT_ALLOWED] = "alg_not_allowed",
    [LS_JWT_CRIT_UNSUPPORTED] = "crit_unsupported",
    [LS_JWT_BAD_TYPE] = "bad_type",
    [LS_JWT_UNKNOWN_KID] = "unknown_kid",
    [LS_JWT_NO_KEY] = "no_key",
    [LS_JWT_AMBIGUOUS_KEY] = "ambiguous_key",
    [LS_JWT_KEY_ALG_MISMATCH] = "key_alg_mismatch",
    [LS_JWT_BAD_SIGNATURE] = "bad_signature",
    [LS_JWT_EXPIRED] = "expired",
    [LS_JWT_NOT_YET_VALID] = "not_yet_valid",
    [LS_JWT_ISSUED_IN_FUTURE] = "issued_in_future",
    [LS_JWT_BAD_ISSUER] = "bad_issuer",
    [LS_JWT_BAD_AUDIENCE] = "bad_audience",
    [LS_JWT_MISSING_CLAIM] = "missing_claim",
    [LS_JWT_INVALID_CLAIM] = "invalid_claim",
};

const char *ls_jwt_reason_name(ls_jwt_reason r)
{
    return (unsigned)r < LS_JWT_REASON_END ? reason_names[r] : "unknown";
}

/* Sets *reason and a message "reason_name: detail"; returns LS_EAUTH. */
static ls_rc reject(ls_jwt_reason *reason, ls_jwt_reason r, ls_err *err, const char *fmt, ...)
    LS_PRINTF(4, 5);

static ls_rc reject(ls_jwt_reason *reason, ls_jwt_reason r, ls_err *err, const char *fmt, ...)
{
    *reason = r;
    if (err == NULL) return LS_EAUTH;
    char detail[LS_ERR_MSGMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return ls_err_set(err, LS_EAUTH, "%s: %s", reason_names[r], detail);
}

/* Bounds a token-supplied string for a message. */
#define SHOWN(len) ((len) > 64 ? 64 : (int)(len))

/* ---- options ---- */

ls_rc ls_jwt_opts_check(const ls_jwt_opts *o, ls_err *err)
{
    if (o == NULL) return ls_err_set(err, LS_EINVAL, "JWT options are required");
    uint32_t valid = 0;
    for (int a = LS_JWT_ALG_ANY + 1; a < LS_JWT_ALG_END; a++) valid |= LS_JWT_ALG_BIT(a);
    if (o->algs == 0) return ls_err_set(err, LS_EINVAL, "the algorithm allow-list is empty");
    if (o->algs & ~valid)
        return ls_err_set(err, LS_EINVAL, "the algorithm allow-list holds unknown bits 0x%x",
                          (unsigned)(o->algs & ~valid));
    if (o->leeway_s < 0 || o->leeway_s > 86400)
        return ls_err_set(err, LS_EINVAL, "leeway must be 0 to 86400 seconds, got %lld",
                          (long long)o->leeway_s);
    if (o->issuer != NULL && o->issuer[0] == '\0')
        return ls_err_set(err, LS_EINVAL,
                          "issuer must not be empty (leave it out, NULL, to not check iss)");
    if (o->n_audiences > 0 && o->audiences == NULL)
        return ls_err_set(err, LS_EINVAL, "n_audiences is %zu but audiences is NULL",
                          o->n_audiences);
    for (size_t i = 0; i < o->n_audiences; i++)
        if (o->audiences[i] == NULL) return ls_err_set(err, LS_EINVAL, "audiences[%zu] is NULL", i);
    if (o->n_required > 0 && o->required == NULL)
        return ls_err_set(err, LS_EINVAL, "n_required is %zu but required is NULL", o->n_required);
    for (size_t i = 0; i < o->n_required; i++)
        if (o->required[i] == NULL) return ls_err_set(err, LS_EINVAL, "required[%zu] is NULL", i);
    if (o->flags & ~LS_JWT_ALLOW_NO_EXP)
        return ls_err_set(err, LS_EINVAL, "unknown flags 0x%x", o->flags);
    return LS_OK;
}

static const char *put_str(char **sp, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(*sp, s, n);
    const char *r = *sp;
    *sp += n;
    return r;
}

ls_rc ls_jwt_opts_copy(ls_jwt_opts *dst, void **mem, const ls_jwt_opts *src, ls_err *err)
{
    size_t ptrs = src->n_audiences + src->n_required;
    size_t bytes = ptrs * sizeof(char *);
    if (src->issuer) bytes += strlen(src->issuer) + 1;
    if (src->typ) bytes += strlen(src->typ) + 1;
    for (size_t i = 0; i < src->n_audiences; i++) bytes += strlen(src->audiences[i]) + 1;
    for (size_t i = 0; i < src->n_required; i++) bytes += strlen(src->required[i]) + 1;
    char *m = ls_malloc(bytes);
    if (m == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory copying JWT options");
    const char **list = (const char **)(void *)m;
    char *sp = m + ptrs * sizeof(char *);
    *dst = *src;
    for (size_t i = 0; i < src->n_audiences; i++) list[i] = put_str(&sp, src->audiences[i]);
    for (size_t i = 0; i < src->n_required; i++)
        list[src->n_audiences + i] = put_str(&sp, src->required[i]);
    dst->audiences = src->n_audiences ? list : NULL;
    dst->required = src->n_required ? list + src->n_audiences : NULL;
    dst->issuer = src->issuer ? put_str(&sp, src->issuer) : NULL;
    dst->typ = src->typ ? put_str(&sp, src->typ) : NULL;
    *mem = m;
    return LS_OK;
}

/* ---- strict JSON for token segments ----
 * The header and claims of every token are parsed on the request path, and
 * jansson's own reader costs about 30 ns a byte here (8.5 us for 264 bytes
 * of claims, four times the cost of building the values). This reader
 * accepts exactly RFC 8259 JSON as ls_json_parse does (duplicate keys
 * rejected at every depth, UTF-8 validated, \u0000 allowed in strings but
 * not in keys, integers that overflow rejected) and builds the same
 * jansson values; it decodes strings in place, so its input is scratch. It
 * limits nesting to 32 levels and numbers to 127 characters, which no
 * token needs. */

#define JSON_MAX_DEPTH 32

struct jp {
    unsigned char *p, *end, *start;
    int depth;
    int oom;
    size_t at;
    const char *why;
};

static json_t *jp_fail(struct jp *j, const char *why)
{
    if (j->why == NULL) {
        j->why = why;
        j->at = (size_t)(j->p - j->start);
    }
    return NULL;
}

static json_t *jp_oom(struct jp *j)
{
    j->oom = 1;
    return jp_fail(j, "out of memory");
}

static void jp_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* A string at j->p (the opening quote), decoded in place: *s and *len
 * point into the input. Returns 0 on error. */
static int jp_string(struct jp *j, unsigned char **s, size_t *len)
{
    unsigned char *begin = ++j->p;
    const unsigned char *at = begin;
    const char *why = ls_json_string_decode(&at, j->end, begin, len);
    j->p = begin + (at - begin); /* (the same buffer, not const) */
    if (why) return jp_fail(j, why), 0;
    *s = begin;
    return 1;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static int is_digit(const struct jp *j, const unsigned char *p)
{
    return p < j->end && *p >= '0' && *p <= '9';
}

static json_t *jp_number(struct jp *j)
{
    unsigned char *s = j->p, *p = j->p;
    int neg = *p == '-', real = 0;
    p += neg;
    if (!is_digit(j, p)) return jp_fail(j, "invalid number");
    if (*p == '0') {
        if (is_digit(j, ++p)) return jp_fail(j, "leading zero in a number");
    } else {
        while (is_digit(j, p)) p++;
    }
    if (p < j->end && *p == '.') {
        real = 1;
        if (!is_digit(j, ++p)) return j->p = p, jp_fail(j, "invalid number");
        while (is_digit(j, p)) p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(j, p)) return j->p = p, jp_fail(j, "invalid number");
        while (is_digit(j, p)) p++;
    }
    j->p = p;
    json_t *v;
    if (!real) {
        unsigned long long u = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
        for (const unsigned char *d = s + neg; d < p; d++) {
            unsigned dv = *d - '0';
            if (u > (lim - dv) / 10) return j->p = s, jp_fail(j, "integer out of range");
            u = u * 10 + dv;
        }
        long long x = neg ? (u == lim ? LLONG_MIN : -(long long)u) : (long long)u;
        v = json_integer((json_int_t)x);
    } else {
        char tmp[128];
        size_t n = (size_t)(p - s);
        if (n >= sizeof tmp) return j->p = s, jp_fail(j, "number too long");
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        pthread_once(&c_locale_once, c_locale_init);
        double d = c_locale ? strtod_l(tmp, NULL, c_locale) : strtod(tmp, NULL);
        if (!isfinite(d)) return j->p = s, jp_fail(j, "real number overflow");
        v = json_real(d);
    }
    return v ? v : jp_oom(j);
}

static json_t *jp_value(struct jp *j);

static json_t *jp_literal(struct jp *j, const char *word, json_t *v)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return jp_fail(j, "invalid literal");
    j->p += n;
    return v;
}

static json_t *jp_array(struct jp *j)
{
    json_t *arr = json_array();
    if (arr == NULL) return jp_oom(j);
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return arr;
    }
    for (;;) {
        json_t *v = jp_value(j);
        if (v == NULL) break;
        if (json_array_append_new(arr, v) != 0) {
            jp_oom(j);
            break;
        }
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return arr;
        }
        jp_fail(j, "expected ',' or ']'");
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *jp_object(struct jp *j)
{
    json_t *obj = json_object();
    if (obj == NULL) return jp_oom(j);
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return obj;
    }
    for (;;) {
        jp_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            jp_fail(j, "expected a string key");
            break;
        }
        unsigned char *k;
        size_t klen;
        unsigned char *kpos = j->p;
        if (!jp_string(j, &k, &klen)) break;
        if (memchr(k, '\0', klen) != NULL) {
            j->p = kpos;
            jp_fail(j, "NUL byte in an object key");
            break;
        }
        if (json_object_getn(obj, (const char *)k, klen) != NULL) {
            j->p = kpos;
            jp_fail(j, "duplicate object key");
            break;
        }
        jp_ws(j);
        if (j->p >= j->end || *j->p != ':') {
            jp_fail(j, "expected ':'");
            break;
        }
        j->p++;
        json_t *v = jp_value(j);
        if (v == NULL) break;
        if (json_object_setn_new_nocheck(obj, (const char *)k, klen, v) != 0) {
            jp_oom(j);
            break;
        }
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return obj;
        }
        jp_fail(j, "expected ',' or '}'");
        break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *jp_value(struct jp *j)
{
    jp_ws(j);
    if (j->p >= j->end) return jp_fail(j, "unexpected end of input");
    json_t *v;
    switch (*j->p) {
    case '{':
    case '[':
        if (++j->depth > JSON_MAX_DEPTH) return jp_fail(j, "nested too deeply");
        v = *j->p == '{' ? jp_object(j) : jp_array(j);
        j->depth--;
        return v;
    case '"': {
        unsigned char *s;
        size_t n;
        if (!jp_string(j, &s, &n)) return NULL;
        v = json_stringn_nocheck((const char *)s, n);
        return v ? v : jp_oom(j);
    }
    case 't': return jp_literal(j, "true", json_true());
    case 'f': return jp_literal(j, "false", json_false());
    case 'n': return jp_literal(j, "null", json_null());
    }
    if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return jp_number(j);
    return jp_fail(j, "unexpected character");
}

ls_rc ls_jwt_parse_json(unsigned char *text, size_t len, json_t **out, ls_err *err)
{
    struct jp j = {text, text + len, text, 0, 0, 0, NULL};
    json_t *v = jp_value(&j);
    if (v != NULL) {
        jp_ws(&j);
        if (j.p != j.end) {
            json_decref(v);
            v = jp_fail(&j, "end of input expected");
        }
    }
    if (v == NULL) {
        if (j.oom) return ls_err_set(err, LS_ENOMEM, "out of memory parsing JSON");
        return ls_err_set(err, LS_EINVAL, "byte %zu: %s", j.at, j.why);
    }
    *out = v;
    return LS_OK;
}

/* ---- taking a compact JWS apart ---- */

#define SIG_MAX 1024 /* RSA-8192 */

struct jws {
    json_t *header;
    ls_jwt_alg alg;
    const ls_jwk *key;
    const char *kid; /* borrowed from header */
    size_t kid_len;
    unsigned char *payload; /* decoded, in buf */
    size_t plen;
    unsigned char *heap; /* scratch when the stack one is too small */
    unsigned char stack[2048];
};

static void jws_init(struct jws *j)
{
    j->header = NULL;
    j->key = NULL;
    j->kid = NULL;
    j->kid_len = 0;
    j->payload = NULL;
    j->plen = 0;
    j->heap = NULL;
}

static void jws_done(struct jws *j)
{
    json_decref(j->header);
    j->header = NULL;
    ls_free(j->heap);
    j->heap = NULL;
}

/* Compares typ values as RFC 7515 4.1.9 asks: case-insensitive, with the
 * "application/" prefix optional. */
static int typ_equal(const char *a, size_t alen, const char *b)
{
    static const char app[] = "application/";
    size_t blen = strlen(b), n = sizeof app - 1;
    if (alen > n && strncasecmp(a, app, n) == 0 && memchr(a + n, '/', alen - n) == NULL)
        a += n, alen -= n;
    if (blen > n && strncasecmp(b, app, n) == 0 && strchr(b + n, '/') == NULL) b += n, blen -= n;
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static ls_rc check_header(struct jws *j, const ls_jwt_opts *o, ls_jwt_reason *reason, ls_err *err)
{
    const json_t *h = j->header;
    json_t *v = json_object_get(h, "alg");
    if (v == NULL) return reject(reason, LS_JWT_MALFORMED, err, "header has no alg");
    if (!json_is_string(v))
        return reject(reason, LS_JWT_MALFORMED, err, "alg must be a string, got %s",
                      ls_json_type_name(v));
    const char *a = json_string_value(v);
    size_t alen = json_string_length(v);
    if (is_none(a, alen))
        return reject(reason, LS_JWT_ALG_NONE, err,
                      "alg \"%.4s\" (an unsecured JWS) is never accepted", a);
    if (ls_jwt_alg_parse(a, alen, &j->alg, NULL) != LS_OK)
        return reject(reason, LS_JWT_ALG_NOT_ALLOWED, err, "alg \"%.*s\" is not supported",
                      SHOWN(alen), a);
    if (!alg_allowed(o->algs, j->alg))
        return reject(reason, LS_JWT_ALG_NOT_ALLOWED, err, "alg %s is not in the allow-list",
                      alg_tab[j->alg].name);

    v = json_object_get(h, "crit");
    if (v != NULL) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return reject(reason, LS_JWT_MALFORMED, err,
                          "crit must be a non-empty array of header names");
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i)))
                return reject(reason, LS_JWT_MALFORMED, err, "crit[%zu] is not a string", i);
        json_t *first = json_array_get(v, 0);
        return reject(reason, LS_JWT_CRIT_UNSUPPORTED, err,
                      "crit lists \"%.*s\", an extension this verifier does not understand",
                      SHOWN(json_string_length(first)), json_string_value(first));
    }

    if (o->typ != NULL) {
        v = json_object_get(h, "typ");
        if (!json_is_string(v))
            return reject(reason, LS_JWT_BAD_TYPE, err, "header has no typ string (want %s)",
                          o->typ);
        if (!typ_equal(json_string_value(v), json_string_length(v), o->typ))
            return reject(reason, LS_JWT_BAD_TYPE, err, "typ \"%.*s\" is not %s",
                          SHOWN(json_string_length(v)), json_string_value(v), o->typ);
    }

    /* jku, x5u, jwk and x5c are deliberately never read: keys come from the
     * keyset alone. */
    v = json_object_get(h, "kid");
    if (v != NULL) {
        if (!json_is_string(v))
            return reject(reason, LS_JWT_MALFORMED, err, "kid must be a string, got %s",
                          ls_json_type_name(v));
        if (memchr(json_string_value(v), 0, json_string_length(v)))
            return reject(reason, LS_JWT_MALFORMED, err, "kid contains a NUL byte");
        j->kid = json_string_value(v);
        j->kid_len = json_string_length(v);
    }
    return LS_OK;
}

/* The key decides: with a kid, the one key of that kid able to verify alg;
 * without, the one key of the whole set able to. */
static ls_rc select_key(const ls_jwks_t *ks, struct jws *j, ls_jwt_reason *reason, ls_err *err)
{
    const ls_jwk *found = NULL, *named = NULL;
    size_t n_found = 0;
    const char *an = alg_tab[j->alg].name;
    for (size_t i = 0; i < ks->n; i++) {
        const ls_jwk *k = &ks->keys[i];
        if (j->kid != NULL) {
            if (k->kid == NULL || k->kid_len != j->kid_len ||
                memcmp(k->kid, j->kid, j->kid_len) != 0)
                continue;
            if (named == NULL) named = k;
        }
        if (!ls_jwk_can_verify(k, j->alg)) continue;
        if (found == NULL) found = k;
        n_found++;
    }
    if (j->kid != NULL) {
        int kl = SHOWN(j->kid_len);
        if (named == NULL)
            return reject(reason, LS_JWT_UNKNOWN_KID, err, "no key has kid \"%.*s\"", kl, j->kid);
        if (n_found == 0)
            return reject(reason, LS_JWT_KEY_ALG_MISMATCH, err,
                          "key \"%.*s\" is %s%s%s and cannot verify %s", kl, j->kid,
                          ls_jwk_desc(named), named->alg ? " restricted to " : "",
                          named->alg ? alg_tab[named->alg].name : "", an);
        if (n_found > 1)
            return reject(reason, LS_JWT_AMBIGUOUS_KEY, err,
                          "%zu keys with kid \"%.*s\" can verify %s", n_found, kl, j->kid, an);
    } else {
        if (n_found == 0)
            return reject(reason, LS_JWT_NO_KEY, err, "token has no kid and no key can verify %s",
                          an);
        if (n_found > 1)
            return reject(reason, LS_JWT_AMBIGUOUS_KEY, err,
                          "token has no kid and %zu keys can verify %s", n_found, an);
    }
    j->key = found;
    return LS_OK;
}

/* Everything up to and including the signature. */
static ls_rc verify_jws(const ls_jwks_t *ks, const char *token, size_t len, const ls_jwt_opts *o,
                        struct jws *j, ls_jwt_reason *reason, ls_err *err)
{
    size_t max = o->max_token_len ? o->max_token_len : LS_JWT_MAX_TOKEN_DEFAULT;
    if (len > max)
        return reject(reason, LS_JWT_TOO_LARGE, err, "token of %zu bytes is over the limit of %zu",
                      len, max);
    if (len == 0) return reject(reason, LS_JWT_MALFORMED, err, "empty token");
    size_t dots = 0;
    for (const char *p = token; (p = memchr(p, '.', len - (size_t)(p - token))) != NULL; p++)
        dots++;
    if (dots != 2)
        return reject(reason, LS_JWT_MALFORMED, err,
                      "expected 3 segments separated by '.', got %zu", dots + 1);
    const char *d1 = memchr(token, '.', len);
    const char *pl = d1 + 1;
    const char *d2 = memchr(pl, '.', len - (size_t)(pl - token));
    const char *sg = d2 + 1;
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - pl);
    size_t slen = len - (size_t)(sg - token);

    size_t need = ls_base64_decoded_max(hlen) + ls_base64_decoded_max(plen);
    unsigned char *buf = j->stack;
    if (need > sizeof j->stack) {
        buf = j->heap = ls_malloc(need);
        if (buf == NULL) {
            *reason = LS_JWT_ERROR;
            return ls_err_set(err, LS_ENOMEM, "out of memory decoding a token");
        }
    }
    ls_err e;
    size_t hdec;
    if (ls_base64url_decode_into(token, hlen, buf, need, &hdec, &e) != LS_OK)
        return reject(reason, LS_JWT_MALFORMED, err, "header: %s", e.msg);
    ls_rc rc = ls_jwt_parse_json(buf, hdec, &j->header, &e);
    if (rc == LS_ENOMEM) {
        *reason = LS_JWT_ERROR;
        return ls_err_set(err, rc, "%s", e.msg);
    }
    if (rc != LS_OK) return reject(reason, LS_JWT_MALFORMED, err, "header is not JSON: %s", e.msg);
    if (!json_is_object(j->header))
        return reject(reason, LS_JWT_MALFORMED, err, "header: expected a JSON object, got %s",
                      ls_json_type_name(j->header));
    if ((rc = check_header(j, o, reason, err)) != LS_OK) return rc;
    if ((rc = select_key(ks, j, reason, err)) != LS_OK) return rc;

    unsigned char sig[SIG_MAX];
    size_t sdec;
    if (slen > ls_base64url_encoded_len(SIG_MAX))
        return reject(reason, LS_JWT_BAD_SIGNATURE, err,
                      "signature of %zu characters is longer than any key's", slen);
    if (ls_base64url_decode_into(sg, slen, sig, sizeof sig, &sdec, &e) != LS_OK)
        return reject(reason, LS_JWT_MALFORMED, err, "signature: %s", e.msg);
    j->payload = buf + hdec;
    if (ls_base64url_decode_into(pl, plen, j->payload, need - hdec, &j->plen, &e) != LS_OK)
        return reject(reason, LS_JWT_MALFORMED, err, "payload: %s", e.msg);

    int ok = ls_jws_verify_sig(ks, j->key, j->alg, (const unsigned char *)token,
                               (size_t)(d2 - token), sig, sdec);
    if (ok < 0) {
        *reason = LS_JWT_ERROR;
        return ls_err_set(err, LS_ENOMEM, "out of memory verifying a signature");
    }
    if (!ok)
        return reject(reason, LS_JWT_BAD_SIGNATURE, err,
                      "signature does not verify with %s%s%.*s%s", ls_jwk_desc(j->key),
                      j->key->kid ? " \"" : "", j->key->kid ? SHOWN(j->key->kid_len) : 0,
                      j->key->kid ? j->key->kid : "", j->key->kid ? "\"" : "");
    return LS_OK;
}

/* ---- claims ---- */

/* A NumericDate claim: *present 0 when absent. */
static ls_rc time_claim(const json_t *claims, const char *name, double *out, int *present,
                        ls_jwt_reason *reason, ls_err *err)
{
    json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (v == NULL) return LS_OK;
    if (!json_is_number(v))
        return reject(reason, LS_JWT_INVALID_CLAIM, err, "%s must be a number, got %s", name,
                      ls_json_type_name(v));
    *out = json_number_value(v);
    return LS_OK;
}

static int json_str_eq(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

static int aud_match(const json_t *aud, const ls_jwt_opts *o)
{
    for (size_t i = 0; i < o->n_audiences; i++) {
        if (json_str_eq(aud, o->audiences[i])) return 1;
        if (json_is_array(aud))
            for (size_t k = 0; k < json_array_size(aud); k++)
                if (json_str_eq(json_array_get(aud, k), o->audiences[i])) return 1;
    }
    return 0;
}

static ls_rc check_claims(const json_t *claims, const ls_jwt_opts *o, ls_jwt_t *t,
                          ls_jwt_reason *reason, ls_err *err)
{
    double now = (double)ls_clock_wall_ms(o->clock) / 1000.0, leeway = (double)o->leeway_s;
    double exp = 0, nbf = 0, iat = 0;
    int has_exp, has_nbf, has_iat;
    ls_rc rc;
    if ((rc = time_claim(claims, "exp", &exp, &has_exp, reason, err)) != LS_OK) return rc;
    if ((rc = time_claim(claims, "nbf", &nbf, &has_nbf, reason, err)) != LS_OK) return rc;
    if ((rc = time_claim(claims, "iat", &iat, &has_iat, reason, err)) != LS_OK) return rc;
    if (has_exp && now >= exp + leeway)
        return reject(reason, LS_JWT_EXPIRED, err,
                      "token expired at %.0f, now is %.0f (leeway %llds)", exp, now,
                      (long long)o->leeway_s);
    if (!has_exp && !(o->flags & LS_JWT_ALLOW_NO_EXP))
        return reject(reason, LS_JWT_MISSING_CLAIM, err, "token has no exp");
    if (has_nbf && now + leeway < nbf)
        return reject(reason, LS_JWT_NOT_YET_VALID, err,
                      "token is not valid before %.0f, now is %.0f (leeway %llds)", nbf, now,
                      (long long)o->leeway_s);
    if (has_iat && iat > now + leeway)
        return reject(reason, LS_JWT_ISSUED_IN_FUTURE, err,
                      "token issued at %.0f, in the future of %.0f (leeway %llds)", iat, now,
                      (long long)o->leeway_s);

    json_t *sub = json_object_get(claims, "sub");
    if (sub != NULL && !json_is_string(sub))
        return reject(reason, LS_JWT_INVALID_CLAIM, err, "sub must be a string, got %s",
                      ls_json_type_name(sub));
    /* The subject is handed on as a C string (identity headers, the
     * assertion, rate-limit keys): "alice\u0000x" must not become alice. */
    if (sub != NULL && memchr(json_string_value(sub), 0, json_string_length(sub)))
        return reject(reason, LS_JWT_INVALID_CLAIM, err, "sub contains a NUL byte");

    if (o->issuer != NULL) {
        json_t *iss = json_object_get(claims, "iss");
        if (iss == NULL) return reject(reason, LS_JWT_BAD_ISSUER, err, "token has no iss");
        if (!json_str_eq(iss, o->issuer)) {
            if (!json_is_string(iss))
                return reject(reason, LS_JWT_BAD_ISSUER, err, "iss is %s, not a string",
                              ls_json_type_name(iss));
            return reject(reason, LS_JWT_BAD_ISSUER, err, "iss \"%.*s\" is not the expected issuer",
                          SHOWN(json_string_length(iss)), json_string_value(iss));
        }
    }
    if (o->n_audiences > 0) {
        json_t *aud = json_object_get(claims, "aud");
        if (aud == NULL) return reject(reason, LS_JWT_BAD_AUDIENCE, err, "token has no aud");
        if (!aud_match(aud, o))
            return reject(reason, LS_JWT_BAD_AUDIENCE, err, "aud holds no accepted audience");
    }
    for (size_t i = 0; i < o->n_required; i++)
        if (json_object_get(claims, o->required[i]) == NULL)
            return reject(reason, LS_JWT_MISSING_CLAIM, err, "required claim \"%s\" is absent",
                          o->required[i]);

    t->exp = exp;
    t->has_exp = has_exp;
    t->sub = sub ? json_string_value(sub) : NULL;
    return LS_OK;
}

/* ---- entry points ---- */

ls_rc ls_jwt_verify(ls_jwt_t **out, const ls_jwks_t *keys, const char *token, size_t len,
                    const ls_jwt_opts *opts, ls_jwt_reason *reason, ls_err *err)
{
    ls_jwt_reason dummy;
    if (reason == NULL) reason = &dummy;
    *out = NULL;
    *reason = LS_JWT_ERROR;
    if (keys == NULL || (token == NULL && len > 0))
        return ls_err_set(err, LS_EINVAL, "keys and token are required");
    ls_rc rc = ls_jwt_opts_check(opts, err);
    if (rc != LS_OK) return rc;

    struct jws j;
    json_t *claims = NULL;
    ls_jwt_t *t = NULL;
    jws_init(&j);
    if ((rc = verify_jws(keys, token, len, opts, &j, reason, err)) != LS_OK) goto fail;

    ls_err e;
    rc = ls_jwt_parse_json(j.payload, j.plen, &claims, &e);
    if (rc == LS_ENOMEM) {
        ls_err_set(err, rc, "%s", e.msg);
        goto fail;
    }
    if (rc != LS_OK) {
        rc = reject(reason, LS_JWT_MALFORMED, err, "payload is not JSON: %s", e.msg);
        goto fail;
    }
    if (!json_is_object(claims)) {
        rc = reject(reason, LS_JWT_MALFORMED, err, "claims: expected a JSON object, got %s",
                    ls_json_type_name(claims));
        goto fail;
    }
    t = ls_calloc(1, sizeof *t);
    if (t == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory keeping a verified token");
        goto fail;
    }
    if ((rc = check_claims(claims, opts, t, reason, err)) != LS_OK) goto fail;
    t->refs = 1;
    t->header = j.header;
    j.header = NULL;
    t->claims = claims;
    t->alg = j.alg;
    t->kid = j.kid;
    memcpy(t->key_fp, j.key->fp, sizeof t->key_fp);
    jws_done(&j);
    *reason = LS_JWT_OK;
    *out = t;
    return LS_OK;
fail:
    if (rc != LS_EAUTH) *reason = LS_JWT_ERROR;
    ls_free(t);
    json_decref(claims);
    jws_done(&j);
    return rc;
}

ls_rc ls_jws_verify(const ls_jwks_t *keys, const char *token, size_t len, const ls_jwt_opts *opts,
                    ls_buf *payload, ls_jwt_reason *reason, ls_err *err)
{
    ls_jwt_reason dummy;
    if (reason == NULL) reason = &dummy;
    *reason = LS_JWT_ERROR;
    if (keys == NULL || (token == NULL && len > 0) || payload == NULL)
        return ls_err_set(err, LS_EINVAL, "keys, token and payload are required");
    ls_rc rc = ls_jwt_opts_check(opts, err);
    if (rc != LS_OK) return rc;
    struct jws j;
    jws_init(&j);
    rc = verify_jws(keys, token, len, opts, &j, reason, err);
    if (rc == LS_OK) {
        rc = ls_buf_set(payload, j.payload, j.plen, err);
        *reason = rc == LS_OK ? LS_JWT_OK : LS_JWT_ERROR;
    }
    jws_done(&j);
    return rc;
}

/* ---- verified tokens ---- */

ls_jwt_t *ls_jwt_ref(ls_jwt_t *t)
{
    t->refs++;
    return t;
}

void ls_jwt_free(ls_jwt_t *t)
{
    if (t == NULL || --t->refs > 0) return;
    if (t->memo_free) t->memo_free(t->memo);
    json_decref(t->header);
    json_decref(t->claims);
    ls_free(t);
}

void *ls_jwt_memo(const ls_jwt_t *t)
{
    return t->memo;
}

void ls_jwt_set_memo(ls_jwt_t *t, void *memo, void (*memo_free)(void *memo))
{
    if (t->memo_free) t->memo_free(t->memo);
    t->memo = memo;
    t->memo_free = memo_free;
}

json_t *ls_jwt_claims(const ls_jwt_t *t)
{
    return t->claims;
}

json_t *ls_jwt_header(const ls_jwt_t *t)
{
    return t->header;
}

ls_jwt_alg ls_jwt_get_alg(const ls_jwt_t *t)
{
    return t->alg;
}

const char *ls_jwt_kid(const ls_jwt_t *t)
{
    return t->kid;
}

const char *ls_jwt_subject(const ls_jwt_t *t)
{
    return t->sub;
}

int64_t ls_jwt_exp(const ls_jwt_t *t)
{
    if (!t->has_exp) return 0;
    if (t->exp >= 9.2e18) return INT64_MAX;
    if (t->exp <= -9.2e18) return INT64_MIN;
    int64_t s = (int64_t)t->exp;
    return (double)s > t->exp ? s - 1 : s; /* round down */
}

ls_rc ls_jwt_claims_json(const ls_jwt_t *t, ls_buf *out, ls_err *err)
{
    ls_buf_clear(out);
    return ls_json_dump(t->claims, out, err);
}

ls_rc ls_jwt_claim_strings(const ls_jwt_t *t, const char *path, ls_jwt_str_fn fn, void *ud,
                           ls_err *err)
{
    /* A claim named with dots ("https://example.com/roles") wins over a path. */
    json_t *v = json_object_get(t->claims, path);
    if (v == NULL) v = ls_json_path(t->claims, path);
    if (v == NULL) return LS_ENOTFOUND;
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *end = s + json_string_length(v);
        while (s < end) {
            while (s < end && *s == ' ') s++;
            const char *w = s;
            while (s < end && *s != ' ') s++;
            if (s > w && fn(ud, w, (size_t)(s - w)) != 0) break;
        }
        return LS_OK;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *item = json_array_get(v, i);
            if (json_is_string(item) &&
                fn(ud, json_string_value(item), json_string_length(item)) != 0)
                break;
        }
        return LS_OK;
    }
    return ls_err_set(err, LS_EINVAL, "claim \"%s\": expected a string or an array, got %s", path,
                      ls_json_type_name(v));
}

struct collect {
    ls_jwt_str *items;
    size_t cap, count;
};

static int collect_item(void *ud, const char *s, size_t len)
{
    struct collect *c = ud;
    if (c->count < c->cap) {
        c->items[c->count].ptr = s;
        c->items[c->count].len = len;
    }
    c->count++;
    return 0;
}

ls_rc ls_jwt_claim_strings_into(const ls_jwt_t *t, const char *path, ls_jwt_str *items, size_t cap,
                                size_t *count, ls_err *err)
{
    struct collect c = {items, cap, 0};
    ls_rc rc = ls_jwt_claim_strings(t, path, collect_item, &c, err);
    *count = rc == LS_OK ? c.count : 0;
    return rc;
}

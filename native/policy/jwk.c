/* SPDX-License-Identifier: MIT
 * Keysets: JWK Sets (RFC 7517, 7518, 8037), PEM public keys and HMAC
 * secrets, each turned once into a ready-to-verify key that records its
 * family, curve, kid and allowed algorithm, plus a keyed fingerprint so a
 * cache can tell whether the key that verified a token is still present.
 * A key of a JWK Set that cannot be used here (malformed, unsupported, or
 * for something else than signatures) is skipped, as RFC 7517 section 5
 * says, and remembered with why: it never verifies anything, and a token
 * naming its kid finds no key. A failed add leaves the keyset as it was. */
#include "ls_config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "conffile.h"
#include "jwt_int.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_base64.h"

#define KEYFILE_MAX ((size_t)1 << 20)
#define SHOWN_MAX   64 /* bytes of a value from a key set shown in messages */

/* ---- process-wide state: fingerprint key, keyset serials ---- */

static unsigned char fp_key[crypto_generichash_KEYBYTES];
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t next_serial = 1;

static void fp_key_init(void)
{
    randombytes_buf(fp_key, sizeof fp_key);
}

static void hash_len(crypto_generichash_state *st, size_t n)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    crypto_generichash_update(st, b, sizeof b);
}

/* Fingerprint over family, curve, alg, kid and the public material (or the
 * secret: the digest is keyed, so it says nothing about a weak secret). */
static void fingerprint(ls_jwk *k, const unsigned char *a, size_t alen, const unsigned char *b,
                        size_t blen)
{
    crypto_generichash_state st;
    unsigned char head[4] = {(unsigned char)k->type, (unsigned char)k->crv, (unsigned char)k->alg,
                             k->kid != NULL};
    crypto_generichash_init(&st, fp_key, sizeof fp_key, LS_JWK_FPBYTES);
    crypto_generichash_update(&st, head, sizeof head);
    hash_len(&st, k->kid_len);
    if (k->kid_len) crypto_generichash_update(&st, (const unsigned char *)k->kid, k->kid_len);
    hash_len(&st, alen);
    if (alen) crypto_generichash_update(&st, a, alen);
    hash_len(&st, blen);
    if (blen) crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, k->fp, LS_JWK_FPBYTES);
}

/* ---- error messages naming the key ---- */

/* Where a key came from: what ("PEM public key") or, when NULL, keys[idx]
 * of a JWK Set, whose messages lack the key's name (".n: ...", ": x, y:
 * ..."): the caller puts "keys[idx]" in front (see put_skip). */
struct kctx {
    const char *what;
    size_t idx;
};

static ls_rc kerr(const struct kctx *c, ls_err *err, ls_rc code, const char *field, const char *fmt,
                  ...) LS_PRINTF(5, 6);

static ls_rc kerr(const struct kctx *c, ls_err *err, ls_rc code, const char *field, const char *fmt,
                  ...)
{
    char detail[LS_ERR_MSGMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (c->what)
        return field ? ls_err_set(err, code, "%s: %s: %s", c->what, field, detail)
                     : ls_err_set(err, code, "%s: %s", c->what, detail);
    return field ? ls_err_set(err, code, ".%s: %s", field, detail)
                 : ls_err_set(err, code, ": %s", detail);
}

/* Adds the key's name in front of a message set by a callee. */
static ls_rc kprefix(const struct kctx *c, ls_err *err, ls_rc rc)
{
    ls_err_prefix(err, "%s", c->what ? c->what : "");
    return rc;
}

/* A value from a key set as messages show it: at most SHOWN_MAX bytes,
 * anything but printable ASCII as '?', so that it cannot forge log lines.
 * Returns out. */
static char *shown(const char *s, size_t len, char out[SHOWN_MAX + 4])
{
    size_t n = len < SHOWN_MAX ? len : SHOWN_MAX;
    for (size_t i = 0; i < n; i++) {
        out[i] = s[i];
        if (s[i] < 0x20 || s[i] >= 0x7f) out[i] = '?';
    }
    if (len > n) memcpy(out + n, "...", 3), n += 3;
    out[n] = '\0';
    return out;
}

const char *ls_jwk_desc(const ls_jwk *k)
{
    switch (k->type) {
    case LS_JWK_RSA: return "an RSA key";
    case LS_JWK_EC:
        return k->crv == LS_CRV_P256   ? "an EC P-256 key"
               : k->crv == LS_CRV_P384 ? "an EC P-384 key"
                                       : "an EC P-521 key";
    case LS_JWK_OKP: return "an OKP Ed25519 key";
    case LS_JWK_OCT: return "an oct key";
    }
    return "a key";
}

static size_t curve_bytes(int crv)
{
    switch (crv) {
    case LS_CRV_P256: return 32;
    case LS_CRV_P384: return 48;
    case LS_CRV_P521: return 66;
    case LS_CRV_ED25519: return 32;
    }
    return 0;
}

static const char *curve_name(int crv)
{
    switch (crv) {
    case LS_CRV_P256: return "P-256";
    case LS_CRV_P384: return "P-384";
    case LS_CRV_P521: return "P-521";
    case LS_CRV_ED25519: return "Ed25519";
    }
    return NULL;
}

static const size_t hmac_min[LS_MD_COUNT] = {32, 48, 64};

/* ---- what a key may verify ---- */

int ls_jwk_can_verify(const ls_jwk *k, ls_jwt_alg alg)
{
    if (ls_jwt_alg_type(alg) != k->type) return 0;
    if (k->alg != LS_JWT_ALG_ANY && !ls_jwt_alg_same(k->alg, alg)) return 0;
    switch (k->type) {
    case LS_JWK_EC:
    case LS_JWK_OKP: return k->crv == ls_jwt_alg_curve(alg);
    case LS_JWK_OCT: return k->mac[ls_jwt_alg_md(alg)] != NULL;
    case LS_JWK_RSA: return 1;
    }
    return 0;
}

/* A key's own alg must fit its family, curve and (HMAC) length. */
static ls_rc check_alg_fits(const struct kctx *c, const ls_jwk *k, size_t secret_len, ls_err *err)
{
    if (k->alg == LS_JWT_ALG_ANY) return LS_OK;
    const char *name = ls_jwt_alg_name(k->alg);
    if (ls_jwt_alg_type(k->alg) != k->type ||
        ((k->type == LS_JWK_EC || k->type == LS_JWK_OKP) && ls_jwt_alg_curve(k->alg) != k->crv))
        return kerr(c, err, LS_EINVAL, "alg", "%s does not fit %s", name, ls_jwk_desc(k));
    if (k->type == LS_JWK_OCT && secret_len < hmac_min[ls_jwt_alg_md(k->alg)])
        return kerr(c, err, LS_EINVAL, "alg", "%s needs a key of at least %zu bytes, got %zu", name,
                    hmac_min[ls_jwt_alg_md(k->alg)], secret_len);
    return LS_OK;
}

/* ---- building one key ---- */

static size_t bit_length(const unsigned char *v, size_t n)
{
    if (n == 0) return 0;
    size_t bits = (n - 1) * 8;
    for (unsigned c = v[0]; c; c >>= 1) bits++;
    return bits;
}

static ls_rc build_rsa(const struct kctx *c, ls_jwk *k, const unsigned char *n, size_t nlen,
                       const unsigned char *e, size_t elen, ls_err *err)
{
    /* Tolerate leading zero bytes (some issuers add them); the key is the
     * number, so the fingerprint is taken over the minimal form. */
    while (nlen > 0 && n[0] == 0) n++, nlen--;
    while (elen > 0 && e[0] == 0) e++, elen--;
    size_t bits = bit_length(n, nlen);
    if (bits < 2048)
        return kerr(c, err, LS_EINVAL, "n", "RSA modulus of %zu bits is too small (at least 2048)",
                    bits);
    if (bits > 8192)
        return kerr(c, err, LS_EINVAL, "n", "RSA modulus of %zu bits is too large (at most 8192)",
                    bits);
    if ((n[nlen - 1] & 1) == 0) return kerr(c, err, LS_EINVAL, "n", "RSA modulus is even");
    if (elen == 0 || elen > 8 || (e[elen - 1] & 1) == 0 || (elen == 1 && e[0] < 3))
        return kerr(c, err, LS_EINVAL, "e",
                    "RSA exponent must be odd, at least 3, at most 64 bits");
    k->bits = bits;
    ls_rc rc = ls_jws_key_rsa(k, n, nlen, e, elen, err);
    if (rc != LS_OK) return kprefix(c, err, rc);
    fingerprint(k, n, nlen, e, elen);
    return LS_OK;
}

static ls_rc build_ec(const struct kctx *c, ls_jwk *k, const ls_buf *x, const ls_buf *y,
                      ls_err *err)
{
    size_t fs = curve_bytes(k->crv);
    if (x->len != fs)
        return kerr(c, err, LS_EINVAL, "x", "expected %zu bytes for %s, got %zu", fs,
                    curve_name(k->crv), x->len);
    if (y->len != fs)
        return kerr(c, err, LS_EINVAL, "y", "expected %zu bytes for %s, got %zu", fs,
                    curve_name(k->crv), y->len);
    k->bits = k->crv == LS_CRV_P521 ? 521 : fs * 8;
    ls_rc rc = ls_jws_key_ec(k, x->ptr, y->ptr, fs, err);
    if (rc != LS_OK) return kprefix(c, err, rc);
    fingerprint(k, x->ptr, fs, y->ptr, fs);
    return LS_OK;
}

static ls_rc build_okp(const struct kctx *c, ls_jwk *k, const ls_buf *x, ls_err *err)
{
    if (x->len != 32)
        return kerr(c, err, LS_EINVAL, "x", "expected 32 bytes for Ed25519, got %zu", x->len);
    k->bits = 256;
    ls_rc rc = ls_jws_key_okp(k, x->ptr, x->len, err);
    if (rc != LS_OK) return kprefix(c, err, rc);
    fingerprint(k, x->ptr, x->len, NULL, 0);
    return LS_OK;
}

static ls_rc build_oct(const struct kctx *c, ls_jwk *k, const unsigned char *s, size_t len,
                       ls_err *err)
{
    if (len < 32)
        return kerr(c, err, LS_EINVAL, c->what ? NULL : "k",
                    "HMAC key of %zu bytes is too short (at least 32)", len);
    k->bits = len * 8;
    ls_rc rc = ls_jws_key_oct(k, s, len, err);
    if (rc != LS_OK) return kprefix(c, err, rc);
    fingerprint(k, s, len, NULL, 0);
    return LS_OK;
}

/* Initialises *k and builds it from decoded parameters: a and b are n and
 * e (RSA), x and y (EC), x (OKP) or the secret (oct). On failure *k holds
 * nothing. */
static ls_rc build_key(const struct kctx *c, ls_jwk *k, ls_jwk_type type, int crv, ls_jwt_alg alg,
                       const char *kid, size_t kid_len, const ls_buf *a, const ls_buf *b,
                       ls_err *err)
{
    memset(k, 0, sizeof *k);
    k->type = type;
    k->crv = crv;
    k->alg = alg;
    ls_rc rc = check_alg_fits(c, k, a->len, err);
    if (rc != LS_OK) return rc;
    if (kid != NULL) {
        k->kid = ls_strndup(kid, kid_len);
        if (k->kid == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory copying a kid");
        k->kid_len = kid_len;
    }
    switch (type) {
    case LS_JWK_RSA: rc = build_rsa(c, k, a->ptr, a->len, b->ptr, b->len, err); break;
    case LS_JWK_EC: rc = build_ec(c, k, a, b, err); break;
    case LS_JWK_OKP: rc = build_okp(c, k, a, err); break;
    case LS_JWK_OCT: rc = build_oct(c, k, a->ptr, a->len, err); break;
    default: rc = kerr(c, err, LS_EINVAL, NULL, "unknown key type");
    }
    if (rc != LS_OK) {
        ls_jws_key_release(k);
        ls_free(k->kid);
        memset(k, 0, sizeof *k);
    }
    return rc;
}

static void release_key(ls_jwk *k)
{
    ls_jws_key_release(k);
    ls_free(k->kid);
    memset(k, 0, sizeof *k);
}

/* Makes room for n more keys. */
static ls_rc reserve(ls_jwks_t *ks, size_t n, ls_err *err)
{
    if (n <= ks->cap - ks->n) return LS_OK;
    size_t cap = ks->cap ? ks->cap : 4;
    while (cap - ks->n < n) cap *= 2;
    ls_jwk *keys = ls_realloc(ks->keys, cap * sizeof *keys);
    if (keys == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory growing a keyset");
    ks->keys = keys;
    ks->cap = cap;
    return LS_OK;
}

/* ---- JWK members ---- */

/* String member: LS_ENOTFOUND (err untouched) when absent. *s and *len are
 * NULL and 0 unless LS_OK. */
static ls_rc member_str(const struct kctx *c, const json_t *obj, const char *field, const char **s,
                        size_t *len, ls_err *err)
{
    *s = NULL;
    *len = 0;
    json_t *v = json_object_get(obj, field);
    if (v == NULL) return LS_ENOTFOUND;
    if (!json_is_string(v))
        return kerr(c, err, LS_EINVAL, field, "expected a string, got %s", ls_json_type_name(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return LS_OK;
}

/* Required base64url member, decoded into out (cleared first). */
static ls_rc member_b64(const struct kctx *c, const json_t *obj, const char *field, ls_buf *out,
                        ls_err *err)
{
    const char *s;
    size_t len;
    ls_rc rc = member_str(c, obj, field, &s, &len, err);
    if (rc == LS_ENOTFOUND) return kerr(c, err, LS_EINVAL, field, "missing");
    if (rc != LS_OK) return rc;
    ls_buf_clear(out);
    ls_err e;
    rc = ls_base64url_decode(s, len, out, &e);
    if (rc != LS_OK) return kerr(c, err, rc, field, "%s", e.msg);
    return LS_OK;
}

static int str_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Key management algorithms of JWE (RFC 7518 section 4.1): a key that names
 * one is for encryption. */
static int jwe_alg(const char *s, size_t len)
{
    static const char *const prefixes[] = {"RSA1_5", "RSA-OAEP", "ECDH-ES", "PBES2-", "dir"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (len >= strlen(prefixes[i]) && memcmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    /* A128KW, A192KW, A256KW, A128GCMKW... */
    return len >= 5 && s[0] == 'A' && memcmp(s + len - 2, "KW", 2) == 0;
}

/* Parses keys[idx] into *k. LS_OK when *k is ready to verify. Otherwise the
 * key is skipped and err says why (see struct kctx): LS_EINVAL when it
 * is malformed, LS_EFORMAT when it is well formed but not for verifying
 * here (use "enc", an unknown kty, curve or alg), with *other_use 1 when the
 * key itself says it is for something else than signatures. LS_ENOMEM is
 * not a skip. */
static ls_rc parse_jwk(const struct kctx *c, const json_t *obj, ls_jwk *k, int *other_use,
                       ls_buf *a, ls_buf *b, ls_err *err)
{
    const char *s, *kid = NULL;
    size_t len, kid_len = 0;
    ls_jwt_alg alg = LS_JWT_ALG_ANY;
    ls_jwk_type type;
    int crv = LS_CRV_NONE;
    char show[SHOWN_MAX + 4];
    ls_rc rc;

    *other_use = 0;
    if (!json_is_object(obj))
        return kerr(c, err, LS_EINVAL, NULL, "expected an object, got %s", ls_json_type_name(obj));
    const char *kty;
    size_t kty_len;
    rc = member_str(c, obj, "kty", &kty, &kty_len, err);
    if (rc == LS_ENOTFOUND) return kerr(c, err, LS_EINVAL, "kty", "missing");
    if (rc != LS_OK) return rc;

    rc = member_str(c, obj, "use", &s, &len, err);
    if (rc == LS_OK && !str_is(s, len, "sig")) {
        *other_use = 1;
        return kerr(c, err, LS_EFORMAT, "use", "\"%s\", not for signatures", shown(s, len, show));
    }
    if (rc == LS_EINVAL) return rc;

    json_t *ops = json_object_get(obj, "key_ops");
    if (ops != NULL) {
        if (!json_is_array(ops))
            return kerr(c, err, LS_EINVAL, "key_ops", "expected an array, got %s",
                        ls_json_type_name(ops));
        int verify = 0;
        for (size_t i = 0; i < json_array_size(ops); i++) {
            json_t *op = json_array_get(ops, i);
            if (json_is_string(op) &&
                str_is(json_string_value(op), json_string_length(op), "verify"))
                verify = 1;
        }
        if (!verify) {
            *other_use = 1;
            return kerr(c, err, LS_EFORMAT, "key_ops", "no \"verify\", not for signatures");
        }
    }

    rc = member_str(c, obj, "alg", &s, &len, err);
    if (rc == LS_OK && ls_jwt_alg_parse(s, len, &alg, NULL) != LS_OK) {
        *other_use = jwe_alg(s, len);
        return kerr(c, err, LS_EFORMAT, "alg", "\"%s\" %s", shown(s, len, show),
                    *other_use ? "is for encryption" : "is not supported");
    }
    if (rc == LS_EINVAL) return rc;

    rc = member_str(c, obj, "kid", &kid, &kid_len, err);
    if (rc == LS_EINVAL) return rc;
    if (rc == LS_ENOTFOUND) kid = NULL;
    if (kid != NULL && memchr(kid, 0, kid_len) != NULL)
        return kerr(c, err, LS_EINVAL, "kid", "contains a NUL byte");

    if (str_is(kty, kty_len, "RSA")) {
        type = LS_JWK_RSA;
        if ((rc = member_b64(c, obj, "n", a, err)) != LS_OK) return rc;
        if ((rc = member_b64(c, obj, "e", b, err)) != LS_OK) return rc;
    } else if (str_is(kty, kty_len, "EC") || str_is(kty, kty_len, "OKP")) {
        type = kty_len == 2 ? LS_JWK_EC : LS_JWK_OKP;
        rc = member_str(c, obj, "crv", &s, &len, err);
        if (rc == LS_ENOTFOUND) return kerr(c, err, LS_EINVAL, "crv", "missing");
        if (rc != LS_OK) return rc;
        if (type == LS_JWK_EC)
            crv = str_is(s, len, "P-256")   ? LS_CRV_P256
                  : str_is(s, len, "P-384") ? LS_CRV_P384
                  : str_is(s, len, "P-521") ? LS_CRV_P521
                                            : LS_CRV_NONE;
        else
            crv = str_is(s, len, "Ed25519") ? LS_CRV_ED25519 : LS_CRV_NONE;
        if (crv == LS_CRV_NONE) { /* secp256k1, X25519, Ed448... */
            *other_use = str_is(s, len, "X25519") || str_is(s, len, "X448");
            return kerr(c, err, LS_EFORMAT, "crv", "\"%s\" %s", shown(s, len, show),
                        *other_use ? "is for key agreement" : "is not supported");
        }
        if ((rc = member_b64(c, obj, "x", a, err)) != LS_OK) return rc;
        if (type == LS_JWK_EC && (rc = member_b64(c, obj, "y", b, err)) != LS_OK) return rc;
    } else if (str_is(kty, kty_len, "oct")) {
        type = LS_JWK_OCT;
        if ((rc = member_b64(c, obj, "k", a, err)) != LS_OK) return rc;
    } else {
        return kerr(c, err, LS_EFORMAT, "kty", "\"%s\" is not supported",
                    shown(kty, kty_len, show));
    }
    return build_key(c, k, type, crv, alg, kid, kid_len, a, b, err);
}

static void wipe_buf(ls_buf *b)
{
    if (b->ptr) sodium_memzero(b->ptr, b->cap);
    ls_buf_free(b);
}

/* ---- skipped keys ---- */

/* Remembers keys[idx] (obj) as skipped, among the first LS_JWKS_SKIPS_KEPT:
 * tail is parse_jwk's message (".n: ..." or ": ..."). LS_ENOMEM. */
static ls_rc remember_skip(ls_jwks_t *ks, size_t idx, const json_t *obj, int other_use,
                           const char *tail, ls_err *err)
{
    if (ks->n_skips >= LS_JWKS_SKIPS_KEPT) return LS_OK;
    if (ks->skips == NULL && (ks->skips = ls_calloc(LS_JWKS_SKIPS_KEPT, sizeof *ks->skips)) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory noting a skipped key");
    ls_jwk_skip *sk = &ks->skips[ks->n_skips];
    json_t *kid = json_is_object(obj) ? json_object_get(obj, "kid") : NULL;
    sk->index = idx;
    sk->other_use = other_use;
    sk->field = tail[0] == '.';
    const char *why = tail + (sk->field ? 1 : tail[0] == ':' ? 2 : 0);
    sk->kid = NULL;
    if (json_is_string(kid) && memchr(json_string_value(kid), 0, json_string_length(kid)) == NULL &&
        (sk->kid = ls_strndup(json_string_value(kid), json_string_length(kid))) == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory noting a skipped key");
    if ((sk->why = ls_strdup(why)) == NULL) {
        ls_free(sk->kid);
        return ls_err_set(err, LS_ENOMEM, "out of memory noting a skipped key");
    }
    ks->n_skips++;
    return LS_OK;
}

/* Forgets the skipped keys from the from-th kept one on. */
static void forget_skips(ls_jwks_t *ks, size_t from)
{
    for (size_t i = from; i < ks->n_skips; i++) {
        ls_free(ks->skips[i].kid);
        ls_free(ks->skips[i].why);
    }
    ks->n_skips = from;
}

/* Appends "; keys[i].n: why [kid "x"]" (i counted from 1, as every index
 * in a message is; no "; " first) to out (size cap,
 * holding *len bytes) if it fits whole: 1 when it did. */
static int put_skip(char *out, size_t cap, size_t *len, const ls_jwk_skip *sk)
{
    char kid[SHOWN_MAX + 4], line[LS_ERR_MSGMAX];
    const char *sep = *len ? "; " : "", *dot = sk->field ? "." : ": ";
    int n = sk->kid
                ? snprintf(line, sizeof line, "%skeys[%zu]%s%s [kid \"%s\"]", sep, sk->index + 1,
                           dot, sk->why, shown(sk->kid, strlen(sk->kid), kid))
                : snprintf(line, sizeof line, "%skeys[%zu]%s%s", sep, sk->index + 1, dot, sk->why);
    if (n < 0 || (size_t)n >= cap - *len) return 0;
    memcpy(out + *len, line, (size_t)n + 1);
    *len += (size_t)n;
    return 1;
}

/* Sets err to head (or nothing) followed by the kept skipped keys from the
 * from-th on (with other_use ones only when all), of total skipped: "...;
 * and 3 more". */
static ls_rc skips_err(const ls_jwks_t *ks, size_t from, size_t total, int all, ls_rc code,
                       const char *head, ls_err *err)
{
    char list[LS_ERR_MSGMAX - 64];
    size_t len = 0, shown_n = 0;
    for (size_t i = from; i < ks->n_skips; i++) {
        if (!all && ks->skips[i].other_use) continue;
        if (!put_skip(list, sizeof list - 24, &len, &ks->skips[i])) break;
        shown_n++;
    }
    if (shown_n < total)
        snprintf(list + len, sizeof list - len, "%sand %zu more", len ? "; " : "", total - shown_n);
    return head ? ls_err_set(err, code, "%s: %s", head, list) : ls_err_set(err, code, "%s", list);
}

/* ---- keysets ---- */

ls_rc ls_jwks_new(ls_jwks_t **out, ls_err *err)
{
    ls_jwks_t *ks = ls_calloc(1, sizeof *ks);
    if (ks == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory creating a keyset");
    ls_rc rc = ls_jws_crypto_init(ks, err);
    if (rc != LS_OK) goto fail;
    pthread_once(&fp_once, fp_key_init);
    ks->serial = atomic_fetch_add(&next_serial, 1);
    *out = ks;
    return LS_OK;
fail:
    ls_free(ks);
    return rc;
}

void ls_jwks_free(ls_jwks_t *ks)
{
    if (ks == NULL) return;
    for (size_t i = 0; i < ks->n; i++) release_key(&ks->keys[i]);
    ls_free(ks->keys);
    forget_skips(ks, 0);
    ls_free(ks->skips);
    ls_jws_crypto_fini(ks);
    ls_free(ks);
}

ls_rc ls_jwks_add_json(ls_jwks_t *ks, const char *text, size_t len, ls_err *err)
{
    json_t *root = NULL;
    ls_rc rc = ls_json_parse(text, len, &root, err);
    if (rc != LS_OK) {
        ls_err_prefix(err, "JWK Set");
        return rc;
    }
    json_t *keys = json_is_object(root) ? json_object_get(root, "keys") : NULL;
    if (!json_is_array(keys)) {
        rc = ls_err_set(err, LS_EINVAL, "JWK Set: expected an object with a \"keys\" array");
        json_decref(root);
        return rc;
    }
    size_t n = json_array_size(keys), added = 0, skipped = 0, unusable = 0;
    size_t kept_before = ks->n_skips;
    ls_buf a = LS_BUF_INIT, b = LS_BUF_INIT;
    rc = reserve(ks, n, err);
    for (size_t i = 0; rc == LS_OK && i < n; i++) {
        struct kctx c = {NULL, i};
        json_t *obj = json_array_get(keys, i);
        int other_use;
        ls_err why;
        ls_rc krc = parse_jwk(&c, obj, &ks->keys[ks->n + added], &other_use, &a, &b, &why);
        if (krc == LS_OK) {
            added++;
        } else if (krc == LS_ENOMEM) {
            rc = ls_err_set(err, krc, "keys[%zu]%s", i + 1, why.msg);
        } else { /* RFC 7517 section 5: ignored, not fatal */
            skipped++;
            unusable += !other_use;
            rc = remember_skip(ks, i, obj, other_use, why.msg, err);
        }
    }
    if (rc == LS_OK && n > 0 && added == 0)
        rc = skips_err(ks, kept_before, skipped, 1, LS_EINVAL, NULL, err);
    if (rc == LS_OK) {
        ks->n += added;
        ks->skipped += skipped;
        ks->skipped_unusable += unusable;
    } else {
        for (size_t i = 0; i < added; i++) release_key(&ks->keys[ks->n + i]);
        forget_skips(ks, kept_before);
    }
    wipe_buf(&a);
    wipe_buf(&b);
    json_decref(root);
    return rc;
}

ls_rc ls_jwks_parse(ls_jwks_t **out, const char *text, size_t len, ls_err *err)
{
    ls_jwks_t *ks;
    ls_rc rc = ls_jwks_new(&ks, err);
    if (rc != LS_OK) return rc;
    rc = ls_jwks_add_json(ks, text, len, err);
    if (rc != LS_OK) goto fail;
    *out = ks;
    return LS_OK;
fail:
    ls_jwks_free(ks);
    return rc;
}

/* Reads a key file whole, as the policy's other trusted files are read
 * (conffile.h): refused when group or others may write it, since anyone
 * could then add a key. Configuration time only. *out is a buffer of the
 * file's bytes (freed by the caller). Errors are prefixed with the path. */
static ls_rc read_file(const char *path, ls_buf *out, ls_err *err)
{
    char *text;
    size_t len;
    ls_rc rc = ls_conffile_read(path, KEYFILE_MAX, "keys", &text, &len, err);
    if (rc != LS_OK) return LS_ERR_PREFIXED(rc, err, "%s", path);
    *out = (ls_buf){(unsigned char *)text, len, len + 1};
    return LS_OK;
}

ls_rc ls_jwks_load_file(ls_jwks_t **out, const char *path, ls_err *err)
{
    ls_buf text = LS_BUF_INIT;
    ls_rc rc = read_file(path, &text, err);
    if (rc == LS_OK) {
        rc = ls_jwks_parse(out, (const char *)text.ptr, text.len, err);
        if (rc != LS_OK) ls_err_prefix(err, "%s", path);
    }
    wipe_buf(&text); /* a JWK Set may hold secrets (oct keys) */
    return rc;
}

static ls_rc check_alg_arg(ls_jwt_alg alg, ls_err *err)
{
    if ((int)alg < 0 || alg >= LS_JWT_ALG_END)
        return ls_err_set(err, LS_EINVAL, "unknown algorithm value %d", (int)alg);
    return LS_OK;
}

ls_rc ls_jwks_add_pem(ls_jwks_t *ks, const char *pem, size_t len, const char *kid, ls_jwt_alg alg,
                      ls_err *err)
{
    struct kctx c = {"PEM public key", 0};
    ls_jwk_params p = {0, LS_CRV_NONE, LS_BUF_INIT, LS_BUF_INIT};
    ls_rc rc = check_alg_arg(alg, err);
    if (rc == LS_OK) rc = reserve(ks, 1, err);
    if (rc == LS_OK) {
        rc = ls_jws_pem_params(pem, len, &p, err);
        if (rc != LS_OK) kprefix(&c, err, rc);
    }
    if (rc == LS_OK)
        rc = build_key(&c, &ks->keys[ks->n], p.type, p.crv, alg, kid, kid ? strlen(kid) : 0, &p.a,
                       &p.b, err);
    if (rc == LS_OK) ks->n++;
    ls_buf_free(&p.a);
    ls_buf_free(&p.b);
    return rc;
}

ls_rc ls_jwks_add_pem_file(ls_jwks_t *ks, const char *path, const char *kid, ls_jwt_alg alg,
                           ls_err *err)
{
    ls_buf text = LS_BUF_INIT;
    ls_rc rc = read_file(path, &text, err);
    if (rc == LS_OK) {
        rc = ls_jwks_add_pem(ks, (const char *)text.ptr, text.len, kid, alg, err);
        if (rc != LS_OK) ls_err_prefix(err, "%s", path);
    }
    ls_buf_free(&text);
    return rc;
}

ls_rc ls_jwks_add_secret(ls_jwks_t *ks, const void *secret, size_t len, const char *kid,
                         ls_jwt_alg alg, ls_err *err)
{
    struct kctx c = {"HMAC secret", 0};
    /* A borrowed view of the secret: build_key only reads it. */
    ls_buf s = {(unsigned char *)secret, len, len};
    ls_buf none = LS_BUF_INIT;
    ls_rc rc = check_alg_arg(alg, err);
    if (rc == LS_OK) rc = reserve(ks, 1, err);
    if (rc == LS_OK)
        rc = build_key(&c, &ks->keys[ks->n], LS_JWK_OCT, LS_CRV_NONE, alg, kid,
                       kid ? strlen(kid) : 0, &s, &none, err);
    if (rc == LS_OK) ks->n++;
    return rc;
}

size_t ls_jwks_count(const ls_jwks_t *ks)
{
    return ks->n;
}

size_t ls_jwks_skipped(const ls_jwks_t *ks)
{
    return ks->skipped;
}

ls_rc ls_jwks_skipped_info(const ls_jwks_t *ks, size_t i, ls_jwk_skipped *info, ls_err *err)
{
    (void)err;
    if (i >= ks->n_skips) return LS_ENOTFOUND;
    const ls_jwk_skip *sk = &ks->skips[i];
    info->index = sk->index;
    info->kid = sk->kid;
    info->why = sk->why;
    info->other_use = sk->other_use;
    return LS_OK;
}

ls_rc ls_jwks_skip_notice(const ls_jwks_t *ks, ls_err *out)
{
    size_t n = ks->skipped_unusable;
    if (n == 0) return LS_OK;
    char head[96];
    snprintf(head, sizeof head,
             "JWK Set: %zu key%s skipped, not usable here (tokens naming %s are "
             "refused)",
             n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
    return skips_err(ks, 0, n, 0, LS_EFORMAT, head, out);
}

ls_rc ls_jwks_key_info(const ls_jwks_t *ks, size_t i, ls_jwk_info *info, ls_err *err)
{
    (void)err;
    if (i >= ks->n) return LS_ENOTFOUND;
    const ls_jwk *k = &ks->keys[i];
    info->type = k->type;
    info->kid = k->kid;
    info->curve = curve_name(k->crv);
    info->alg = k->alg;
    info->bits = k->bits;
    return LS_OK;
}

int ls_jwks_has_kid(const ls_jwks_t *ks, const char *kid)
{
    size_t len = strlen(kid);
    for (size_t i = 0; i < ks->n; i++)
        if (ks->keys[i].kid && ks->keys[i].kid_len == len && memcmp(ks->keys[i].kid, kid, len) == 0)
            return 1;
    return 0;
}

int ls_jwks_has_fp(const ls_jwks_t *ks, const unsigned char fp[LS_JWK_FPBYTES])
{
    for (size_t i = 0; i < ks->n; i++)
        if (memcmp(ks->keys[i].fp, fp, LS_JWK_FPBYTES) == 0) return 1;
    return 0;
}

void ls_jwks_fingerprint(const ls_jwks_t *ks, unsigned char out[LS_JWKS_FPBYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, fp_key, sizeof fp_key, LS_JWKS_FPBYTES);
    hash_len(&st, ks->n);
    for (size_t i = 0; i < ks->n; i++)
        crypto_generichash_update(&st, ks->keys[i].fp, LS_JWK_FPBYTES);
    crypto_generichash_final(&st, out, LS_JWKS_FPBYTES);
}

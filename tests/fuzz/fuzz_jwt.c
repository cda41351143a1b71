/* SPDX-License-Identifier: MIT
 * libFuzzer: JWT/JWS verification against a key set with oct, RSA, EC
 * (P-256, P-521) and OKP keys (the RFC 7515/8037 vectors' public keys).
 * Input byte 0 picks the mode:
 *   0: the rest is a compact token, verified as it is (ls_jwt_verify,
 *      ls_jws_verify and a small ls_jwt_cache); a token that verifies must
 *      be one of the RFC tokens (no one can forge a signature here).
 *   1/2/3: byte 1 is a header length h; the next h bytes are the JOSE
 *      header JSON, the rest the payload; the harness base64url-encodes and
 *      signs them with HS256/HS384/HS512 under the oct key, so claim and
 *      header checks get real coverage. A token that verifies must satisfy
 *      the claims rules, checked against ls_json_parse's reading. */
#include "fuzz_common.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ls_json.h"
#include "lodestone/ls_base64.h"
#include "lodestone/ls_buf.h"
#include "lodestone/ls_jwt.h"
#include "policy/jwt_int.h"

#define NOW_S  1300819000LL /* the RFC tokens carry exp 1300819380 */
#define LEEWAY 30

static ls_jwks_t *ks;
static ls_jwt_cache_t *cache;
static ls_manual_clock mc;
static ls_jwt_opts o;
static unsigned char hkey[64];
static size_t hkey_len;
static char *seeds[6];
static size_t nseeds;

static const char *const vec[] = {
    "tests/c/vectors/jwt/rfc7515-a1.jws", "tests/c/vectors/jwt/rfc7515-a2.jws",
    "tests/c/vectors/jwt/rfc7515-a3.jws", "tests/c/vectors/jwt/rfc7515-a4.jws",
    "tests/c/vectors/jwt/rfc7515-a5.jws", "tests/c/vectors/jwt/rfc8037-a4.jws",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ls_err err;
    size_t n;
    char *jwks = fuzz_slurp("tests/fuzz/keys.jwks.json", &n);
    if (ls_jwks_parse(&ks, jwks, n, &err) != LS_OK) {
        fprintf(stderr, "jwks: %s\n", err.msg);
        abort();
    }
    free(jwks);
    if (ls_jwks_count(ks) != 5) FUZZ_BUG("expected 5 keys, got %zu", ls_jwks_count(ks));
    const char *k =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    if (ls_base64url_decode_into(k, strlen(k), hkey, sizeof hkey, &hkey_len, &err) != LS_OK)
        abort();
    ls_manual_clock_init(&mc, NOW_S * 1000);
    uint32_t all = 0;
    for (int a = LS_JWT_HS256; a < LS_JWT_ALG_END; a++) all |= LS_JWT_ALG_BIT(a);
    o.algs = all;
    o.issuer = "joe";
    o.leeway_s = LEEWAY;
    o.clock = &mc.clock;
    ls_jwt_cache_opts copts = {.capacity = 4, .ttl_s = 60};
    if (ls_jwt_cache_new(&cache, &copts, &o, &err) != LS_OK) abort();
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++)
        seeds[nseeds++] = fuzz_slurp(vec[i], NULL);
    return 0;
}

static void b64u(ls_buf *b, const void *p, size_t n)
{
    if (ls_base64url_encode(p, n, b, NULL) != LS_OK) abort();
}

/* The claims rules a verified token must satisfy (ls_jwt.h). */
static void check_claims(const ls_jwt_t *t, const uint8_t *h, size_t hlen, const uint8_t *pl,
                         size_t plen, const char *alg)
{
    json_t *hj = NULL, *cj = NULL;
    if (ls_json_parse((const char *)h, hlen, &hj, NULL) != LS_OK || !json_is_object(hj))
        FUZZ_BUG("verified a token whose header ls_json_parse rejects");
    json_t *a = json_object_get(hj, "alg");
    if (!json_is_string(a) || strcmp(json_string_value(a), alg) != 0)
        FUZZ_BUG("verified a token whose alg is not %s", alg);
    if (json_object_get(hj, "crit")) FUZZ_BUG("verified a token with crit");
    if (ls_json_parse((const char *)pl, plen, &cj, NULL) != LS_OK || !json_is_object(cj))
        FUZZ_BUG("verified a token whose claims ls_json_parse rejects");
    if (!json_equal(cj, ls_jwt_claims(t))) FUZZ_BUG("claims differ from ls_json_parse's reading");
    json_t *exp = json_object_get(cj, "exp"), *nbf = json_object_get(cj, "nbf");
    json_t *iat = json_object_get(cj, "iat"), *iss = json_object_get(cj, "iss");
    json_t *sub = json_object_get(cj, "sub");
    if (!json_is_number(exp) || !((double)NOW_S < json_number_value(exp) + LEEWAY))
        FUZZ_BUG("verified a token with a bad or past exp");
    if (nbf && (!json_is_number(nbf) || (double)NOW_S < json_number_value(nbf) - LEEWAY))
        FUZZ_BUG("verified a token with a bad or future nbf");
    if (iat && (!json_is_number(iat) || json_number_value(iat) > (double)NOW_S + LEEWAY))
        FUZZ_BUG("verified a token with a bad or future iat");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), "joe") != 0)
        FUZZ_BUG("verified a token with the wrong issuer");
    if (sub && !json_is_string(sub)) FUZZ_BUG("verified a token whose sub is not a string");
    const char *s = ls_jwt_subject(t);
    if ((s == NULL) != (sub == NULL) || (s && strcmp(s, json_string_value(sub)) != 0))
        FUZZ_BUG("subject differs from the claims");
    int64_t e = ls_jwt_exp(t);
    double ev = json_number_value(exp);
    if (ev > -9e18 && ev < 9e18 && e != (int64_t)floor(ev))
        FUZZ_BUG("ls_jwt_exp %lld, claims say %f", (long long)e, json_number_value(exp));
    json_decref(hj);
    json_decref(cj);
}

static int walk(void *ud, const char *s, size_t len)
{
    (void)s;
    *(size_t *)ud += len;
    return 0;
}

static void use_token(ls_jwt_t *t)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    if (ls_jwt_claims_json(t, &b, &err) != LS_OK) FUZZ_BUG("claims_json: %s", err.msg);
    json_t *back = NULL;
    if (ls_json_parse((const char *)b.ptr, b.len, &back, &err) != LS_OK ||
        !json_equal(back, ls_jwt_claims(t)))
        FUZZ_BUG("claims_json does not read back as the claims");
    json_decref(back);
    ls_buf_free(&b);
    static const char *const paths[] = {"scope", "roles", "realm_access.roles", "a.b.c", "aud", ""};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        size_t total = 0, count = 0;
        ls_jwt_str items[4];
        ls_jwt_claim_strings(t, paths[i], walk, &total, NULL);
        ls_jwt_claim_strings_into(t, paths[i], items, 4, &count, NULL);
        for (size_t k = 0; k < count && k < 4; k++)
            if (items[k].len && items[k].ptr == NULL) FUZZ_BUG("NULL claim item");
    }
    (void)ls_jwt_kid(t);
    (void)ls_jwt_get_alg(t);
}

static ls_rc verify(const char *tok, size_t len, ls_jwt_t **out)
{
    char *c = fuzz_exact(tok, len);
    ls_jwt_reason why = LS_JWT_REASON_END;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_jwt_verify(out, ks, c, len, &o, &why, &err);
    if (rc != LS_OK && rc != LS_EAUTH) FUZZ_BUG("ls_jwt_verify returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if ((rc == LS_OK) != (why == LS_JWT_OK) || (rc == LS_OK) != (*out != NULL))
        FUZZ_BUG("rc %s but reason %s", ls_rc_name(rc), ls_jwt_reason_name(why));
    if (rc == LS_EAUTH) {
        const char *name = ls_jwt_reason_name(why);
        size_t nl = strlen(name);
        if (why <= LS_JWT_ERROR || why >= LS_JWT_REASON_END || strncmp(err.msg, name, nl) != 0 ||
            err.msg[nl] != ':')
            FUZZ_BUG("reason %s, message \"%s\"", name, err.msg);
    }
    /* the cache agrees */
    ls_jwt_t *ct = NULL;
    ls_jwt_reason cwhy = LS_JWT_REASON_END;
    ls_rc crc = ls_jwt_cache_verify(cache, ks, c, len, &ct, &cwhy, &err);
    if (crc != rc || cwhy != why)
        FUZZ_BUG("cache says %s/%s, verify %s/%s", ls_rc_name(crc), ls_jwt_reason_name(cwhy),
                 ls_rc_name(rc), ls_jwt_reason_name(why));
    if (ct && !json_equal(ls_jwt_claims(ct), ls_jwt_claims(*out)))
        FUZZ_BUG("cache returned other claims");
    ls_jwt_free(ct);
    free(c);
    return rc;
}

static ls_rc jws(const char *tok, size_t len)
{
    char *c = fuzz_exact(tok, len);
    ls_buf payload = LS_BUF_INIT;
    ls_jwt_reason why = LS_JWT_REASON_END;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_jws_verify(ks, c, len, &o, &payload, &why, &err);
    if (rc != LS_OK && rc != LS_EAUTH) FUZZ_BUG("ls_jws_verify returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if ((rc == LS_OK) != (why == LS_JWT_OK)) FUZZ_BUG("jws rc and reason disagree");
    ls_buf_free(&payload);
    free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 20000) return 0;
    unsigned mode = data[0] & 3;
    data++, size--;
    if (mode == 0) {
        ls_jwt_t *t = NULL;
        ls_rc rc = verify((const char *)data, size, &t);
        ls_rc rc2 = jws((const char *)data, size);
        if (rc == LS_OK && rc2 != LS_OK) FUZZ_BUG("JWT verifies but its JWS does not");
        if (rc == LS_OK || rc2 == LS_OK) {
            int same = 0;
            for (size_t i = 0; i < nseeds; i++)
                same |= strlen(seeds[i]) == size && memcmp(seeds[i], data, size) == 0;
            if (!same)
                FUZZ_BUG("a token that is not an RFC vector verified (jwt %s, jws %s)",
                         ls_rc_name(rc), ls_rc_name(rc2));
        }
        if (t) use_token(t);
        ls_jwt_free(t);
        return 0;
    }
    if (size < 1) return 0;
    size_t hlen = data[0];
    data++, size--;
    if (hlen > size) return 0;
    const uint8_t *h = data, *pl = data + hlen;
    size_t plen = size - hlen;
    ls_buf tok = LS_BUF_INIT;
    b64u(&tok, h, hlen);
    ls_buf_putc(&tok, '.', NULL);
    b64u(&tok, pl, plen);
    const EVP_MD *md = mode == 1 ? EVP_sha256() : mode == 2 ? EVP_sha384() : EVP_sha512();
    const char *alg = mode == 1 ? "HS256" : mode == 2 ? "HS384" : "HS512";
    unsigned char mac[64];
    unsigned int maclen = 0;
    if (HMAC(md, hkey, (int)hkey_len, tok.ptr, tok.len, mac, &maclen) == NULL) abort();
    ls_buf_putc(&tok, '.', NULL);
    b64u(&tok, mac, maclen);
    ls_jwt_t *t = NULL;
    ls_rc rc = verify((const char *)tok.ptr, tok.len, &t);
    ls_rc rc2 = jws((const char *)tok.ptr, tok.len);
    if (rc == LS_OK && rc2 != LS_OK) FUZZ_BUG("JWT verifies but its JWS does not");
    if (rc == LS_OK) {
        check_claims(t, h, hlen, pl, plen, alg);
        use_token(t);
    }
    ls_jwt_free(t);
    ls_buf_free(&tok);
    return 0;
}

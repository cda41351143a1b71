/* SPDX-License-Identifier: MIT
 * Tests of native/policy JWT/JWS/JWKS verification and the verified-token
 * cache: RFC 7515 and RFC 8037 vectors, round trips for every algorithm
 * with keys made here by OpenSSL, each RFC 8725 attack as its own case,
 * claims checks, key loading errors, cache behaviour, failing allocations. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "lodestone/ls_base64.h"
#include "lodestone/ls_jwt.h"
#include "../../native/policy/jwt_int.h"

#define NOW    1700000000LL
#define RFCNOW 1300819370LL /* ten seconds before the RFC 7515 tokens' exp */
#define ISS    "https://id.example.com/"
#define CLAIMS                                                                              \
    "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"orders\",\"iat\":1699999990,\"exp\":" \
    "1700000600}"

/* ---- fixture: keys generated once by OpenSSL ---- */

static struct {
    EVP_PKEY *rsa1, *rsa2, *ec256, *ec384, *ec521, *ed1, *attacker;
    unsigned char h64[64];
} F;

static int group_setup(void **state)
{
    (void)state;
    F.rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    F.ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    F.ed1 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    F.attacker = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    randombytes_buf(F.h64, sizeof F.h64);
    return F.rsa1 && F.rsa2 && F.ec256 && F.ec384 && F.ec521 && F.ed1 && F.attacker ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY *all[] = {F.rsa1, F.rsa2, F.ec256, F.ec384, F.ec521, F.ed1, F.attacker};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) EVP_PKEY_free(all[i]);
    return 0;
}

/* ---- helpers: files, base64url, JWKs of generated keys ---- */

static char *read_vector(const char *name)
{
    char *path = th_path(LS_TEST_VECTORS "/jwt", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    free(path);
    buf[n] = '\0';
    return strdup(buf);
}

static void put_b64u(ls_buf *b, const void *p, size_t n)
{
    ls_err err;
    th_ok(ls_base64url_encode(p, n, b, &err), &err);
}

static void put_bn(ls_buf *b, const EVP_PKEY *pk, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
    unsigned char raw[1024];
    int n = pad ? BN_bn2binpad(bn, raw, pad) : BN_bn2bin(bn, raw);
    assert_true(n > 0);
    put_b64u(b, raw, (size_t)n);
    BN_free(bn);
}

static int ec_field(const EVP_PKEY *pk, const char **crv)
{
    char group[64];
    assert_int_equal(
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL),
        1);
    if (strcmp(group, "prime256v1") == 0) return *crv = "P-256", 32;
    if (strcmp(group, "secp384r1") == 0) return *crv = "P-384", 48;
    return *crv = "P-521", 66;
}

/* Appends the public JWK of pk (kid and alg optional) to b. */
static void put_jwk(ls_buf *b, const EVP_PKEY *pk, const char *kid, const char *alg)
{
    ls_err err;
    ls_buf_printf(b, &err, "{");
    if (kid) ls_buf_printf(b, &err, "\"kid\":\"%s\",", kid);
    if (alg) ls_buf_printf(b, &err, "\"alg\":\"%s\",", alg);
    if (EVP_PKEY_is_a(pk, "RSA")) {
        ls_buf_printf(b, &err, "\"kty\":\"RSA\",\"n\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_RSA_N, 0);
        ls_buf_printf(b, &err, "\",\"e\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_RSA_E, 0);
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        const char *crv;
        int fs = ec_field(pk, &crv);
        ls_buf_printf(b, &err, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"", crv);
        put_bn(b, pk, OSSL_PKEY_PARAM_EC_PUB_X, fs);
        ls_buf_printf(b, &err, "\",\"y\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_EC_PUB_Y, fs);
    } else {
        unsigned char raw[32];
        size_t n = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(pk, raw, &n), 1);
        ls_buf_printf(b, &err, "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"");
        put_b64u(b, raw, n);
    }
    ls_buf_printf(b, &err, "\"}");
}

static ls_jwks_t *parse_jwks(const char *json)
{
    ls_jwks_t *ks = NULL;
    ls_err err;
    th_ok(ls_jwks_parse(&ks, json, strlen(json), &err), &err);
    return ks;
}

/* One-key keyset from a single JWK text (as the RFC files hold). */
static ls_jwks_t *jwks_of_jwk(const char *jwk)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[%s]}", jwk);
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    ls_buf_free(&b);
    return ks;
}

static ls_jwks_t *jwks_of_vector(const char *name)
{
    char *jwk = read_vector(name);
    ls_jwks_t *ks = jwks_of_jwk(jwk);
    free(jwk);
    return ks;
}

/* The usual set: one key per family and curve, each with a kid. */
static ls_jwks_t *std_keys(void)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "rsa1", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec256, "ec256", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec384, "ec384", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec521, "ec521", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ed1, "ed1", NULL);
    ls_buf_printf(&b, &err, ",{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"");
    put_b64u(&b, F.h64, sizeof F.h64);
    ls_buf_printf(&b, &err, "\"}]}");
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    ls_buf_free(&b);
    assert_int_equal(ls_jwks_count(ks), 6);
    return ks;
}

/* ---- helpers: signing tokens with OpenSSL ---- */

static int pss_salt = RSA_PSS_SALTLEN_DIGEST;

static const char *md_of(const char *alg)
{
    if (strstr(alg, "384")) return "SHA384";
    if (strstr(alg, "512")) return "SHA512";
    return "SHA256";
}

static size_t sign_pkey(EVP_PKEY *pk, const char *alg, const ls_buf *in, unsigned char *sig)
{
    int ed = strcmp(alg, "EdDSA") == 0 || strcmp(alg, "Ed25519") == 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    assert_int_equal(EVP_DigestSignInit_ex(m, &pc, ed ? NULL : md_of(alg), NULL, NULL, pk, NULL),
                     1);
    if (alg[0] == 'P') {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, pss_salt), 1);
    }
    size_t n = 2048;
    assert_int_equal(EVP_DigestSign(m, sig, &n, in->ptr, in->len), 1);
    EVP_MD_CTX_free(m);
    if (alg[0] != 'E' || ed) return n;
    /* ECDSA: DER to the JWS form R||S. */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(es);
    const char *crv;
    int fs = ec_field(pk, &crv);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, fs);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + fs, fs);
    ECDSA_SIG_free(es);
    return 2 * (size_t)fs;
}

/* b64u(header).b64u(payload).b64u(signature by alg's method). Caller frees
 * with free(). */
static char *sign_jws(const char *header, const char *payload, const char *alg, EVP_PKEY *pk,
                      const void *secret, size_t slen)
{
    ls_buf t = LS_BUF_INIT;
    ls_err err;
    put_b64u(&t, header, strlen(header));
    ls_buf_putc(&t, '.', &err);
    put_b64u(&t, payload, strlen(payload));
    unsigned char sig[2048];
    size_t n = 0;
    if (alg[0] == 'H') {
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, md_of(alg), NULL, secret, slen, t.ptr, t.len,
                                  sig, sizeof sig, &n));
    } else if (pk != NULL) {
        n = sign_pkey(pk, alg, &t, sig);
    }
    ls_buf_putc(&t, '.', &err);
    put_b64u(&t, sig, n);
    char *s = strdup((char *)t.ptr);
    ls_buf_free(&t);
    return s;
}

static char *header_of(char *buf, size_t size, const char *alg, const char *kid)
{
    if (kid)
        snprintf(buf, size, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(buf, size, "{\"alg\":\"%s\"}", alg);
    return buf;
}

static char *tok(const char *alg, const char *kid, EVP_PKEY *pk, const char *payload)
{
    char h[256];
    return sign_jws(header_of(h, sizeof h, alg, kid), payload, alg, pk, NULL, 0);
}

static char *tok_hs(const char *alg, const char *kid, const void *secret, size_t n,
                    const char *payload)
{
    char h[256];
    return sign_jws(header_of(h, sizeof h, alg, kid), payload, alg, NULL, secret, n);
}

/* ---- helpers: verifying ---- */

static uint32_t all_algs(void)
{
    uint32_t m = 0;
    for (int a = LS_JWT_ALG_ANY + 1; a < LS_JWT_ALG_END; a++) m |= LS_JWT_ALG_BIT(a);
    return m;
}

static ls_jwt_opts opts_at(ls_manual_clock *mc, int64_t now_s)
{
    ls_manual_clock_init(mc, now_s * 1000);
    ls_jwt_opts o = {0};
    o.algs = all_algs();
    o.clock = &mc->clock;
    return o;
}

/* Verifies and checks the outcome; returns the token on LS_JWT_OK (caller
 * frees), NULL otherwise. */
static ls_jwt_t *expect(const ls_jwks_t *ks, const char *token, const ls_jwt_opts *o,
                        ls_jwt_reason want)
{
    ls_jwt_t *t = NULL;
    ls_jwt_reason r = LS_JWT_REASON_END;
    ls_err err = {LS_OK, ""};
    ls_rc rc = ls_jwt_verify(&t, ks, token, strlen(token), o, &r, &err);
    if (r != want)
        fail_msg("want %s, got %s (%s)", ls_jwt_reason_name(want), ls_jwt_reason_name(r), err.msg);
    if (want == LS_JWT_OK) {
        assert_int_equal(rc, LS_OK);
        assert_non_null(t);
        return t;
    }
    assert_int_equal(rc, LS_EAUTH);
    assert_null(t);
    /* The message starts with the reason's name. */
    size_t n = strlen(ls_jwt_reason_name(want));
    assert_memory_equal(err.msg, ls_jwt_reason_name(want), n);
    assert_int_equal(err.msg[n], ':');
    return NULL;
}

static void expect_ok(const ls_jwks_t *ks, const char *token, const ls_jwt_opts *o)
{
    ls_jwt_free(expect(ks, token, o, LS_JWT_OK));
}

/* Same as expect, for the signature-only entry point. */
static void expect_jws(const ls_jwks_t *ks, const char *token, const ls_jwt_opts *o,
                       ls_jwt_reason want, const char *payload)
{
    ls_buf out = LS_BUF_INIT;
    ls_jwt_reason r = LS_JWT_REASON_END;
    ls_err err = {LS_OK, ""};
    ls_rc rc = ls_jws_verify(ks, token, strlen(token), o, &out, &r, &err);
    if (r != want)
        fail_msg("want %s, got %s (%s)", ls_jwt_reason_name(want), ls_jwt_reason_name(r), err.msg);
    assert_int_equal(rc, want == LS_JWT_OK ? LS_OK : LS_EAUTH);
    if (payload) {
        assert_int_equal(out.len, strlen(payload));
        assert_memory_equal(out.ptr, payload, out.len);
    }
    ls_buf_free(&out);
}

/* ---- RFC 7515 appendix A and RFC 8037 appendix A ---- */

static void check_rfc7515_jwt(const char *key_file, const char *jws_file, ls_jwt_alg alg)
{
    ls_jwks_t *ks = jwks_of_vector(key_file);
    char *token = read_vector(jws_file);
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, RFCNOW);
    o.algs = LS_JWT_ALG_BIT(alg);
    o.issuer = "joe";
    ls_jwt_t *t = expect(ks, token, &o, LS_JWT_OK);
    assert_int_equal(ls_jwt_get_alg(t), alg);
    assert_int_equal(ls_jwt_exp(t), 1300819380);
    assert_null(ls_jwt_subject(t));
    assert_null(ls_jwt_kid(t));
    assert_true(json_is_true(json_object_get(ls_jwt_claims(t), "http://example.com/is_root")));
    ls_jwt_free(t);
    /* One second before exp is fine; at exp the token is expired. */
    ls_manual_clock_advance(&mc, 9000);
    expect_ok(ks, token, &o);
    ls_manual_clock_advance(&mc, 1000);
    expect(ks, token, &o, LS_JWT_EXPIRED);
    /* The wrong algorithm in the allow-list is refused before any crypto. */
    o.algs = LS_JWT_ALG_BIT(alg == LS_JWT_HS256 ? LS_JWT_RS256 : LS_JWT_HS256);
    expect(ks, token, &o, LS_JWT_ALG_NOT_ALLOWED);
    free(token);
    ls_jwks_free(ks);
}

static void test_jwt_rfc7515_a1_hs256_verifies(void **state)
{
    (void)state;
    check_rfc7515_jwt("rfc7515-a1-key.json", "rfc7515-a1.jws", LS_JWT_HS256);
}

static void test_jwt_rfc7515_a2_rs256_verifies(void **state)
{
    (void)state;
    check_rfc7515_jwt("rfc7515-a2-key.json", "rfc7515-a2.jws", LS_JWT_RS256);
}

static void test_jwt_rfc7515_a3_es256_verifies(void **state)
{
    (void)state;
    check_rfc7515_jwt("rfc7515-a3-key.json", "rfc7515-a3.jws", LS_JWT_ES256);
}

static void test_jwt_rfc7515_a4_es512_verifies(void **state)
{
    (void)state;
    ls_jwks_t *ks = jwks_of_vector("rfc7515-a4-key.json");
    char *token = read_vector("rfc7515-a4.jws");
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, RFCNOW);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_ES512);
    /* A JWS whose payload is the word "Payload": the signature verifies... */
    expect_jws(ks, token, &o, LS_JWT_OK, "Payload");
    /* ...but it is no JWT: its payload is not a claims object. */
    expect(ks, token, &o, LS_JWT_MALFORMED);
    /* One bit of the signature changed. */
    size_t n = strlen(token);
    token[n - 10] = token[n - 10] == 'A' ? 'B' : 'A';
    expect_jws(ks, token, &o, LS_JWT_BAD_SIGNATURE, NULL);
    free(token);
    ls_jwks_free(ks);
}

static void test_jwt_rfc7515_a5_unsecured_rejected_as_alg_none(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    char *token = read_vector("rfc7515-a5.jws");
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, RFCNOW);
    o.algs = all_algs(); /* everything that can be allowed */
    expect(ks, token, &o, LS_JWT_ALG_NONE);
    expect_jws(ks, token, &o, LS_JWT_ALG_NONE, NULL);
    free(token);
    ls_jwks_free(ks);
}

static void test_jwt_rfc8037_a4_ed25519_verifies(void **state)
{
    (void)state;
    ls_jwks_t *ks = jwks_of_vector("rfc8037-a2-public.json");
    char *token = read_vector("rfc8037-a4.jws");
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_EDDSA);
    expect_jws(ks, token, &o, LS_JWT_OK, "Example of Ed25519 signing");
    /* RFC 9864: allowing "Ed25519" allows the polymorphic name as well. */
    o.algs = LS_JWT_ALG_BIT(LS_JWT_ED25519);
    expect_jws(ks, token, &o, LS_JWT_OK, "Example of Ed25519 signing");
    o.algs = LS_JWT_ALG_BIT(LS_JWT_ES256);
    expect_jws(ks, token, &o, LS_JWT_ALG_NOT_ALLOWED, NULL);
    free(token);
    ls_jwks_free(ks);
}

/* Signs with the RFC 8037 private key through libsodium. */
static char *sign_rfc8037(const char *header, const char *payload)
{
    char *jwk = read_vector("rfc8037-a1-private.json");
    json_t *j;
    ls_err err;
    th_ok(ls_json_parse(jwk, strlen(jwk), &j, &err), &err);
    const char *d = json_string_value(json_object_get(j, "d"));
    unsigned char seed[32], pk[32], sk[64], sig[64];
    size_t n;
    th_ok(ls_base64url_decode_into(d, strlen(d), seed, sizeof seed, &n, &err), &err);
    assert_int_equal(n, 32);
    crypto_sign_seed_keypair(pk, sk, seed);
    ls_buf t = LS_BUF_INIT;
    put_b64u(&t, header, strlen(header));
    ls_buf_putc(&t, '.', &err);
    put_b64u(&t, payload, strlen(payload));
    crypto_sign_detached(sig, NULL, t.ptr, t.len, sk);
    ls_buf_putc(&t, '.', &err);
    put_b64u(&t, sig, sizeof sig);
    char *s = strdup((char *)t.ptr);
    ls_buf_free(&t);
    sodium_memzero(sk, sizeof sk);
    json_decref(j);
    free(jwk);
    return s;
}

static void test_jwt_rfc8037_ed25519_alg_name_verifies(void **state)
{
    (void)state;
    /* The private key of A.1 reproduces the signature of A.4 exactly. */
    char *again = sign_rfc8037("{\"alg\":\"EdDSA\"}", "Example of Ed25519 signing");
    char *rfc = read_vector("rfc8037-a4.jws");
    assert_string_equal(again, rfc);
    free(again);
    free(rfc);

    ls_jwks_t *ks = jwks_of_vector("rfc8037-a2-public.json");
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *token = sign_rfc8037("{\"alg\":\"Ed25519\"}", CLAIMS);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_ED25519);
    ls_jwt_t *t = expect(ks, token, &o, LS_JWT_OK);
    assert_int_equal(ls_jwt_get_alg(t), LS_JWT_ED25519);
    assert_string_equal(ls_jwt_subject(t), "alice");
    ls_jwt_free(t);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_EDDSA);
    expect_ok(ks, token, &o);
    free(token);
    ls_jwks_free(ks);

    /* A key restricted to either name verifies both. */
    ls_jwks_t *ks2 = jwks_of_jwk("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\","
                                 "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}");
    token = sign_rfc8037("{\"alg\":\"Ed25519\"}", CLAIMS);
    expect_ok(ks2, token, &o);
    free(token);
    ls_jwks_free(ks2);
}

static void test_jwt_rfc_keys_from_pem_match_jwk(void **state)
{
    (void)state;
    static const char *const pairs[][3] = {
        {"rfc7515-a2-key.json", "rfc7515-a2-public.pem", "rfc7515-a2.jws"},
        {"rfc7515-a3-key.json", "rfc7515-a3-public.pem", "rfc7515-a3.jws"},
        {"rfc7515-a4-key.json", "rfc7515-a4-public.pem", "rfc7515-a4.jws"},
        {"rfc8037-a2-public.json", "rfc8037-a2-public.pem", "rfc8037-a4.jws"},
    };
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, RFCNOW);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ls_jwks_t *from_jwk = jwks_of_vector(pairs[i][0]), *from_pem;
        ls_err err;
        th_ok(ls_jwks_new(&from_pem, &err), &err);
        char *path = th_path(LS_TEST_VECTORS "/jwt", pairs[i][1]);
        th_ok(ls_jwks_add_pem_file(from_pem, path, NULL, LS_JWT_ALG_ANY, &err), &err);
        free(path);
        unsigned char a[LS_JWKS_FPBYTES], b[LS_JWKS_FPBYTES];
        ls_jwks_fingerprint(from_jwk, a);
        ls_jwks_fingerprint(from_pem, b);
        assert_memory_equal(a, b, sizeof a);
        char *token = read_vector(pairs[i][2]);
        expect_jws(from_pem, token, &o, LS_JWT_OK, NULL);
        free(token);
        ls_jwks_free(from_jwk);
        ls_jwks_free(from_pem);
    }
}

/* ---- round trips with generated keys ---- */

/* Changes one character in the middle of segment seg (0..2) to another
 * character of the alphabet, keeping the base64url valid. */
static void tamper(char *token, int seg)
{
    char *p = token;
    for (int i = 0; i < seg; i++) p = strchr(p, '.') + 1;
    size_t n = strcspn(p, ".");
    p[n / 2] = p[n / 2] == 'A' ? 'B' : 'A';
}

static void test_jwt_round_trip_every_algorithm(void **state)
{
    (void)state;
    static const struct {
        const char *alg, *kid;
        EVP_PKEY **pk;
    } cases[] = {
        {"RS256", "rsa1", &F.rsa1},   {"RS384", "rsa1", &F.rsa1},   {"RS512", "rsa1", &F.rsa1},
        {"PS256", "rsa1", &F.rsa1},   {"PS384", "rsa1", &F.rsa1},   {"PS512", "rsa1", &F.rsa1},
        {"ES256", "ec256", &F.ec256}, {"ES384", "ec384", &F.ec384}, {"ES512", "ec521", &F.ec521},
        {"EdDSA", "ed1", &F.ed1},     {"Ed25519", "ed1", &F.ed1},   {"HS256", "hs", NULL},
        {"HS384", "hs", NULL},        {"HS512", "hs", NULL},
    };
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_jwt_opts o = opts_at(&mc, NOW);
        ls_jwt_alg alg;
        ls_err err;
        th_ok(ls_jwt_alg_parse(cases[i].alg, strlen(cases[i].alg), &alg, &err), &err);
        o.algs = LS_JWT_ALG_BIT(alg);
        char *t = cases[i].pk ? tok(cases[i].alg, cases[i].kid, *cases[i].pk, CLAIMS)
                              : tok_hs(cases[i].alg, cases[i].kid, F.h64, 64, CLAIMS);
        ls_jwt_t *v = expect(ks, t, &o, LS_JWT_OK);
        assert_int_equal(ls_jwt_get_alg(v), alg);
        assert_string_equal(ls_jwt_kid(v), cases[i].kid);
        ls_jwt_free(v);
        char *bad = strdup(t);
        tamper(bad, 2);
        expect(ks, bad, &o, LS_JWT_BAD_SIGNATURE);
        strcpy(bad, t);
        tamper(bad, 1);
        expect(ks, bad, &o, LS_JWT_BAD_SIGNATURE);
        free(bad);
        free(t);
    }
    ls_jwks_free(ks);
}

static void test_jwt_ps_requires_salt_of_hash_length(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    pss_salt = 20;
    char *t = tok("PS256", "rsa1", F.rsa1, CLAIMS);
    pss_salt = RSA_PSS_SALTLEN_DIGEST;
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE);
    free(t);
    /* A PKCS#1 v1.5 signature under a PS name does not verify either. */
    char h[64];
    t = sign_jws(header_of(h, sizeof h, "PS256", "rsa1"), CLAIMS, "RS256", F.rsa1, NULL, 0);
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_es_signature_length_is_exact(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    expect_ok(ks, t, &o);
    /* Re-encode the signature with a byte more and a byte less. */
    char *dot = strrchr(t, '.');
    ls_buf sig = LS_BUF_INIT, alt = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_base64url_decode(dot + 1, strlen(dot + 1), &sig, &err), &err);
    assert_int_equal(sig.len, 64);
    for (int delta = -1; delta <= 1; delta += 2) {
        ls_buf_clear(&alt);
        ls_buf_append(&alt, t, (size_t)(dot - t) + 1, &err);
        unsigned char longer[65] = {0};
        memcpy(longer + (delta > 0), sig.ptr, 64 - (delta < 0));
        put_b64u(&alt, longer, delta > 0 ? 65 : 63);
        expect(ks, (char *)alt.ptr, &o, LS_JWT_BAD_SIGNATURE);
    }
    /* A DER signature where R||S belongs. */
    ls_buf_clear(&alt);
    ls_buf_append(&alt, t, (size_t)(dot - t) + 1, &err);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned char der[128];
    size_t n = sizeof der;
    assert_int_equal(EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, F.ec256, NULL), 1);
    assert_int_equal(EVP_DigestSign(m, der, &n, (unsigned char *)t, (size_t)(dot - t)), 1);
    EVP_MD_CTX_free(m);
    put_b64u(&alt, der, n);
    expect(ks, (char *)alt.ptr, &o, LS_JWT_BAD_SIGNATURE);
    ls_buf_free(&sig);
    ls_buf_free(&alt);
    free(t);
    ls_jwks_free(ks);
}

/* ---- RFC 8725 attacks, one case each ---- */

static void test_jwt_attack_alg_none_in_any_case(void **state)
{
    (void)state;
    static const char *const names[] = {"none", "None", "NONE", "nOnE"};
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    for (size_t i = 0; i < 4; i++) {
        char h[64];
        /* Unsigned, and also "signed" with the HMAC key for good measure. */
        char *t = sign_jws(header_of(h, sizeof h, names[i], NULL), CLAIMS, "X", NULL, NULL, 0);
        expect(ks, t, &o, LS_JWT_ALG_NONE);
        free(t);
        t = sign_jws(header_of(h, sizeof h, names[i], "hs"), CLAIMS, "HS256", NULL, F.h64, 64);
        expect(ks, t, &o, LS_JWT_ALG_NONE);
        free(t);
    }
    /* "none" cannot even be put in an allow-list. */
    ls_jwt_alg a;
    uint32_t mask;
    ls_err err;
    assert_int_equal(ls_jwt_alg_parse("none", 4, &a, &err), LS_EINVAL);
    assert_int_equal(ls_jwt_algs_parse("RS256,None", &mask, &err), LS_EINVAL);
    ls_jwks_free(ks);
}

static void test_jwt_attack_alg_not_in_allow_list(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_ES256);
    char *t = tok("RS256", "rsa1", F.rsa1, CLAIMS);
    expect(ks, t, &o, LS_JWT_ALG_NOT_ALLOWED);
    free(t);
    /* Names outside the registry, and case variants, are not algorithms. */
    o.algs = all_algs();
    static const char *const odd[] = {"rs256", "HS1", "RS256 ", "ES256K", ""};
    for (size_t i = 0; i < 5; i++) {
        char h[64];
        t = sign_jws(header_of(h, sizeof h, odd[i], "rsa1"), CLAIMS, "RS256", F.rsa1, NULL, 0);
        expect(ks, t, &o, LS_JWT_ALG_NOT_ALLOWED);
        free(t);
    }
    ls_jwks_free(ks);
}

static void test_jwt_attack_rsa_public_key_as_hmac_secret(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    o.algs = LS_JWT_ALG_BIT(LS_JWT_RS256) | LS_JWT_ALG_BIT(LS_JWT_HS256);
    ls_buf jwk = LS_BUF_INIT;
    put_jwk(&jwk, F.rsa1, "rsa1", NULL);
    ls_jwks_t *ks = jwks_of_jwk((char *)jwk.ptr);

    /* Every form of the public key an attacker might try as the secret. */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, F.rsa1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(F.rsa1, &der);
    const struct {
        const void *p;
        size_t n;
    } secrets[] = {{pem, (size_t)pem_len}, {der, (size_t)der_len}, {jwk.ptr, jwk.len}};
    for (size_t i = 0; i < 3; i++) {
        char *t = tok_hs("HS256", "rsa1", secrets[i].p, secrets[i].n, CLAIMS);
        expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH); /* the key is RSA: no HMAC */
        free(t);
        t = tok_hs("HS256", NULL, secrets[i].p, secrets[i].n, CLAIMS);
        expect(ks, t, &o, LS_JWT_NO_KEY); /* no oct key in the set at all */
        free(t);
    }
    /* The same set still verifies real RS256 tokens. */
    char *t = tok("RS256", "rsa1", F.rsa1, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    OPENSSL_free(der);
    BIO_free(bio);
    ls_buf_free(&jwk);
    ls_jwks_free(ks);
}

static void test_jwt_attack_ec_public_key_as_hmac_secret(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwks_t *ks = std_keys();
    unsigned char pub[133];
    size_t n = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(F.ec256, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &n), 1);
    char *t = tok_hs("HS256", "ec256", pub, n, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    unsigned char ed[32];
    n = sizeof ed;
    assert_int_equal(EVP_PKEY_get_raw_public_key(F.ed1, ed, &n), 1);
    t = tok_hs("HS256", "ed1", ed, n, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_attack_unknown_crit_rejected(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    static const char *const headers[] = {
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"b64\"],\"b64\":false}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"http://example.com/x\"]}",
    };
    for (size_t i = 0; i < 3; i++) {
        char *t = sign_jws(headers[i], CLAIMS, "HS256", NULL, F.h64, 64);
        expect(ks, t, &o, LS_JWT_CRIT_UNSUPPORTED);
        free(t);
    }
    ls_jwks_free(ks);
}

static void test_jwt_attack_invalid_crit_is_malformed(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    static const char *const headers[] = {
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[]}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":\"exp\"}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[1]}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":null}",
    };
    for (size_t i = 0; i < 4; i++) {
        char *t = sign_jws(headers[i], CLAIMS, "HS256", NULL, F.h64, 64);
        expect(ks, t, &o, LS_JWT_MALFORMED);
        free(t);
    }
    ls_jwks_free(ks);
}

/* Replaces segment seg of token by text. Caller frees. */
static char *with_segment(const char *token, int seg, const char *text)
{
    const char *p = token;
    for (int i = 0; i < seg; i++) p = strchr(p, '.') + 1;
    size_t n = strcspn(p, ".");
    char *out = malloc(strlen(token) + strlen(text) + 1);
    memcpy(out, token, (size_t)(p - token));
    strcpy(out + (p - token), text);
    strcat(out, p + n);
    return out;
}

static void test_jwt_attack_non_strict_base64url(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    expect_ok(ks, t, &o);
    char *h = strndup(t, strcspn(t, "."));
    char *p = strndup(strchr(t, '.') + 1, strcspn(strchr(t, '.') + 1, "."));
    char *s = strdup(strrchr(t, '.') + 1);
    size_t slen = strlen(s); /* 64 bytes: 86 characters, the last with 4 spare bits */
    assert_int_equal(slen, 86);

    ls_buf v = LS_BUF_INIT;
    ls_err err;
    const char *variants[8];
    char spare[100], plus[100], padded[100], spaced[100];
    /* Same bytes, non-zero spare bits: a lenient decoder would accept it. */
    strcpy(spare, s);
    spare[slen - 1] = (char)(spare[slen - 1] + 1);
    snprintf(padded, sizeof padded, "%s==", s);
    strcpy(plus, s);
    for (char *c = plus; *c; c++)
        if (*c == '-')
            *c = '+';
        else if (*c == '_')
            *c = '/';
    snprintf(spaced, sizeof spaced, "%.40s %s", s, s + 40);
    variants[0] = spare;
    variants[1] = padded;
    variants[2] = strcmp(plus, s) ? plus : "ab+c";
    variants[3] = spaced;
    for (int i = 0; i < 4; i++) {
        char *bad = with_segment(t, 2, variants[i]);
        expect(ks, bad, &o, LS_JWT_MALFORMED);
        free(bad);
    }
    /* Padding and whitespace in the header and the payload. */
    ls_buf_printf(&v, &err, "%s=", h);
    char *bad = with_segment(t, 0, (char *)v.ptr);
    expect(ks, bad, &o, LS_JWT_MALFORMED);
    free(bad);
    ls_buf_clear(&v);
    ls_buf_printf(&v, &err, "%s\n", p);
    bad = with_segment(t, 1, (char *)v.ptr);
    expect(ks, bad, &o, LS_JWT_MALFORMED);
    free(bad);
    ls_buf_clear(&v);
    ls_buf_printf(&v, &err, " %s", t);
    expect(ks, (char *)v.ptr, &o, LS_JWT_MALFORMED);
    ls_buf_free(&v);
    free(h);
    free(p);
    free(s);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_attack_non_json_header_or_payload(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    const char *hs = "{\"alg\":\"HS256\",\"kid\":\"hs\"}";
    struct {
        const char *header, *payload;
    } cases[] = {
        {"not json", CLAIMS},
        {"[\"HS256\"]", CLAIMS},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\",\"kid\":\"hs\"}", CLAIMS}, /* duplicate */
        {"{\"alg\":\"HS256\",\"kid\":\"hs\"} x", CLAIMS},
        {"{\"alg\":256,\"kid\":\"hs\"}", CLAIMS},
        {"{\"kid\":\"hs\"}", CLAIMS},
        {"{\"alg\":\"HS256\",\"kid\":7}", CLAIMS},
        {hs, "\"just a string\""},
        {hs, "[1,2,3]"},
        {hs, "{\"sub\":\"alice\",\"sub\":\"mallory\",\"exp\":1700000600}"},
        {hs, "{\"exp\":1700000600"},
        {hs, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = sign_jws(cases[i].header, cases[i].payload, "HS256", NULL, F.h64, 64);
        expect(ks, t, &o, LS_JWT_MALFORMED);
        free(t);
    }
    ls_jwks_free(ks);
}

static void test_jwt_attack_oversized_token_rejected_before_decoding(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    /* Not even base64url: the size check comes first. */
    char *big = malloc(LS_JWT_MAX_TOKEN_DEFAULT + 2);
    memset(big, '!', LS_JWT_MAX_TOKEN_DEFAULT + 1);
    big[LS_JWT_MAX_TOKEN_DEFAULT + 1] = '\0';
    expect(ks, big, &o, LS_JWT_TOO_LARGE);
    big[LS_JWT_MAX_TOKEN_DEFAULT] = '\0'; /* at the limit: parsed, and malformed */
    expect(ks, big, &o, LS_JWT_MALFORMED);
    free(big);
    /* A valid token over a configured limit. */
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    o.max_token_len = strlen(t) - 1;
    expect(ks, t, &o, LS_JWT_TOO_LARGE);
    o.max_token_len = strlen(t);
    expect_ok(ks, t, &o);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_attack_wrong_segment_count(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    char *two = strndup(t, (size_t)(strrchr(t, '.') - t));
    ls_buf four = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&four, &err, "%s.", t);
    const char *cases[] = {"", ".", "abc", two, (char *)four.ptr, "a.b.c.d.e", "..", "...."};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(ks, cases[i], &o, LS_JWT_MALFORMED);
    /* A JWE (five segments) is not a JWS. */
    ls_jwt_t *out;
    ls_jwt_reason r;
    assert_int_equal(ls_jwt_verify(&out, ks, "a.b.c.d.e", 9, &o, &r, &err), LS_EAUTH);
    assert_string_equal(err.msg, "malformed: expected 3 segments separated by '.', got 5");
    ls_buf_free(&four);
    free(two);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_attack_embedded_jwk_not_trusted(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_buf jwk = LS_BUF_INIT, h = LS_BUF_INIT;
    ls_err err;
    put_jwk(&jwk, F.ec256, NULL, NULL);
    ls_jwks_t *ks = jwks_of_jwk((char *)jwk.ptr); /* our one ES256 key, no kid */
    ls_buf attacker = LS_BUF_INIT;
    put_jwk(&attacker, F.attacker, "evil", NULL);

    /* Signed by the attacker's key, which the header carries. */
    ls_buf_printf(&h, &err, "{\"alg\":\"ES256\",\"jwk\":%s}", (char *)attacker.ptr);
    char *t = sign_jws((char *)h.ptr, CLAIMS, "ES256", F.attacker, NULL, 0);
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE); /* checked with our key only */
    free(t);
    ls_buf_clear(&h);
    ls_buf_printf(&h, &err, "{\"alg\":\"ES256\",\"kid\":\"evil\",\"jwk\":%s}",
                  (char *)attacker.ptr);
    t = sign_jws((char *)h.ptr, CLAIMS, "ES256", F.attacker, NULL, 0);
    expect(ks, t, &o, LS_JWT_UNKNOWN_KID);
    free(t);
    /* jku and x5u are never fetched or trusted either. */
    t = sign_jws("{\"alg\":\"ES256\",\"jku\":\"https://evil.example/jwks.json\","
                 "\"x5u\":\"https://evil.example/cert.pem\"}",
                 CLAIMS, "ES256", F.attacker, NULL, 0);
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE);
    free(t);
    ls_buf_free(&attacker);
    ls_buf_free(&jwk);
    ls_buf_free(&h);
    ls_jwks_free(ks);
}

static void test_jwt_attack_no_kid_needs_exactly_one_candidate(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "rsa1", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.rsa2, "rsa2", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec256, "ec256", NULL);
    ls_buf_printf(&b, &err, "]}");
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    /* Two RSA keys: no kid is ambiguous, even though rsa1 would verify. */
    char *t = tok("RS256", NULL, F.rsa1, CLAIMS);
    expect(ks, t, &o, LS_JWT_AMBIGUOUS_KEY);
    free(t);
    /* One EC P-256 key: it is the candidate. */
    t = tok("ES256", NULL, F.ec256, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    /* No Ed25519 key at all. */
    t = tok("EdDSA", NULL, F.ed1, CLAIMS);
    expect(ks, t, &o, LS_JWT_NO_KEY);
    free(t);
    /* With the kid, rsa2 is chosen and rsa1's signature fails against it. */
    t = tok("RS256", "rsa2", F.rsa1, CLAIMS);
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE);
    free(t);
    ls_buf_free(&b);
    ls_jwks_free(ks);
}

static void test_jwt_attack_unknown_kid(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("RS256", "rotated-away", F.rsa1, CLAIMS);
    ls_jwt_t *out;
    ls_jwt_reason r;
    ls_err err;
    assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), &o, &r, &err), LS_EAUTH);
    assert_int_equal(r, LS_JWT_UNKNOWN_KID);
    assert_string_equal(err.msg, "unknown_kid: no key has kid \"rotated-away\"");
    assert_false(ls_jwks_has_kid(ks, "rotated-away"));
    assert_true(ls_jwks_has_kid(ks, "rsa1"));
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_key_decides_its_algorithms(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "rsa1", "RS256");
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec384, "ec384", NULL);
    ls_buf_printf(&b, &err, "]}");
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    /* A key with alg RS256 verifies only RS256. */
    char *t = tok("RS256", "rsa1", F.rsa1, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    t = tok("PS256", "rsa1", F.rsa1, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    t = tok("RS512", "rsa1", F.rsa1, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    /* An EC key verifies only the ES algorithm of its curve. */
    t = tok("ES384", "ec384", F.ec384, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    t = tok("ES256", "ec384", F.ec256, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    ls_jwt_reason r;
    ls_jwt_t *out;
    t = tok("ES512", "ec384", F.ec521, CLAIMS);
    assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), &o, &r, &err), LS_EAUTH);
    assert_string_equal(
        err.msg, "key_alg_mismatch: key \"ec384\" is an EC P-384 key and cannot verify ES512");
    free(t);
    ls_buf_free(&b);
    ls_jwks_free(ks);
}

static void test_jwt_typ_check_is_optional(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *plain = tok_hs("HS256", "hs", F.h64, 64, CLAIMS);
    char *at = sign_jws("{\"alg\":\"HS256\",\"kid\":\"hs\",\"typ\":\"at+jwt\"}", CLAIMS, "HS256",
                        NULL, F.h64, 64);
    char *app = sign_jws("{\"alg\":\"HS256\",\"kid\":\"hs\",\"typ\":\"application/AT+JWT\"}",
                         CLAIMS, "HS256", NULL, F.h64, 64);
    expect_ok(ks, plain, &o); /* off by default */
    expect_ok(ks, at, &o);
    o.typ = "at+jwt";
    expect(ks, plain, &o, LS_JWT_BAD_TYPE);
    expect_ok(ks, at, &o);
    expect_ok(ks, app, &o);
    o.typ = "JWT";
    expect(ks, at, &o, LS_JWT_BAD_TYPE);
    free(plain);
    free(at);
    free(app);
    ls_jwks_free(ks);
}

/* ---- claims ---- */

/* An HS256 token (kid "hs") with the given claims. Caller frees. */
static char *hs_claims(const char *fmt, ...) LS_PRINTF(1, 2);

static char *hs_claims(const char *fmt, ...)
{
    char payload[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(payload, sizeof payload, fmt, ap);
    va_end(ap);
    return tok_hs("HS256", "hs", F.h64, 64, payload);
}

static void test_jwt_claims_exp_boundaries(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *at_now = hs_claims("{\"exp\":%lld}", NOW);
    char *next = hs_claims("{\"exp\":%lld}", NOW + 1);
    char *past = hs_claims("{\"exp\":%lld}", NOW - 30);
    char *frac = hs_claims("{\"exp\":%lld.5}", NOW);
    expect(ks, at_now, &o, LS_JWT_EXPIRED);
    expect_ok(ks, next, &o);
    expect_ok(ks, frac, &o); /* half a second left */
    ls_manual_clock_advance(&mc, 500);
    expect(ks, frac, &o, LS_JWT_EXPIRED);
    ls_manual_clock_init(&mc, NOW * 1000 + 999);
    expect_ok(ks, next, &o);
    ls_manual_clock_advance(&mc, 1);
    expect(ks, next, &o, LS_JWT_EXPIRED);
    /* Leeway 30 s: expired 29 s ago is still fine, 30 s ago is not. */
    ls_manual_clock_init(&mc, NOW * 1000);
    o.leeway_s = 30;
    expect(ks, past, &o, LS_JWT_EXPIRED);
    ls_manual_clock_advance(&mc, -1000);
    expect_ok(ks, past, &o);
    free(at_now);
    free(next);
    free(past);
    free(frac);
    ls_jwks_free(ks);
}

static void test_jwt_claims_nbf_boundaries(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *now = hs_claims("{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW);
    char *later = hs_claims("{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 1);
    char *l30 = hs_claims("{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 30);
    char *l31 = hs_claims("{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 31);
    expect_ok(ks, now, &o);
    expect(ks, later, &o, LS_JWT_NOT_YET_VALID);
    o.leeway_s = 30;
    expect_ok(ks, l30, &o);
    expect(ks, l31, &o, LS_JWT_NOT_YET_VALID);
    free(now);
    free(later);
    free(l30);
    free(l31);
    ls_jwks_free(ks);
}

static void test_jwt_claims_iat_in_future(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *past = hs_claims("{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW - 100);
    char *now = hs_claims("{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW);
    char *f5 = hs_claims("{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW + 5);
    char *f6 = hs_claims("{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW + 6);
    expect_ok(ks, past, &o);
    expect_ok(ks, now, &o);
    expect(ks, f5, &o, LS_JWT_ISSUED_IN_FUTURE);
    o.leeway_s = 5;
    expect_ok(ks, f5, &o);
    expect(ks, f6, &o, LS_JWT_ISSUED_IN_FUTURE);
    free(past);
    free(now);
    free(f5);
    free(f6);
    ls_jwks_free(ks);
}

static void test_jwt_claims_exp_required_unless_allowed(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = hs_claims("{\"sub\":\"svc\"}");
    expect(ks, t, &o, LS_JWT_MISSING_CLAIM);
    o.flags = LS_JWT_ALLOW_NO_EXP;
    ls_jwt_t *v = expect(ks, t, &o, LS_JWT_OK);
    assert_int_equal(ls_jwt_exp(v), 0);
    assert_string_equal(ls_jwt_subject(v), "svc");
    ls_jwt_free(v);
    free(t);
    ls_jwks_free(ks);
}

/* A NUL byte (\u0000 is valid JSON) in a string handed on as a C string
 * would cut it short: "alice\u0000mallory" must not pass for alice. */
static void test_jwt_attack_nul_in_sub_or_kid(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_t *out;
    ls_jwt_reason r;
    ls_err err;
    char *t = hs_claims("{\"exp\":%lld,\"sub\":\"alice\\u0000mallory\"}", NOW + 60);
    assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), &o, &r, &err), LS_EAUTH);
    assert_int_equal(r, LS_JWT_INVALID_CLAIM);
    assert_string_equal(err.msg, "invalid_claim: sub contains a NUL byte");
    free(t);
    t = tok_hs("HS256", "hs\\u0000x", F.h64, 64, CLAIMS);
    assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), &o, &r, &err), LS_EAUTH);
    assert_int_equal(r, LS_JWT_MALFORMED);
    assert_string_equal(err.msg, "malformed: kid contains a NUL byte");
    free(t);
    /* Elsewhere it is just a character of the claim. */
    t = hs_claims("{\"exp\":%lld,\"sub\":\"alice\",\"note\":\"a\\u0000b\"}", NOW + 60);
    ls_jwt_free(expect(ks, t, &o, LS_JWT_OK));
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_claims_must_have_their_types(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    static const char *const bad[] = {
        "{\"exp\":\"1700000600\"}",          "{\"exp\":null}",
        "{\"exp\":1700000600,\"nbf\":true}", "{\"exp\":1700000600,\"iat\":[1]}",
        "{\"exp\":1700000600,\"sub\":42}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *t = tok_hs("HS256", "hs", F.h64, 64, bad[i]);
        expect(ks, t, &o, LS_JWT_INVALID_CLAIM);
        free(t);
    }
    ls_jwks_free(ks);
}

static void test_jwt_claims_issuer_exact(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    o.issuer = ISS;
    char *good = hs_claims("{\"exp\":%lld,\"iss\":\"%s\"}", NOW + 60, ISS);
    char *noslash = hs_claims("{\"exp\":%lld,\"iss\":\"https://id.example.com\"}", NOW + 60);
    char *other = hs_claims("{\"exp\":%lld,\"iss\":\"https://evil.example/\"}", NOW + 60);
    char *none = hs_claims("{\"exp\":%lld}", NOW + 60);
    char *num = hs_claims("{\"exp\":%lld,\"iss\":1}", NOW + 60);
    expect_ok(ks, good, &o);
    expect(ks, noslash, &o, LS_JWT_BAD_ISSUER);
    expect(ks, other, &o, LS_JWT_BAD_ISSUER);
    expect(ks, none, &o, LS_JWT_BAD_ISSUER);
    expect(ks, num, &o, LS_JWT_BAD_ISSUER);
    o.issuer = NULL; /* not configured: not checked */
    expect_ok(ks, other, &o);
    free(good);
    free(noslash);
    free(other);
    free(none);
    free(num);
    ls_jwks_free(ks);
}

static void test_jwt_claims_audience_string_or_array(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    const char *auds[] = {"orders", "billing"};
    char *str = hs_claims("{\"exp\":%lld,\"aud\":\"orders\"}", NOW + 60);
    char *arr = hs_claims("{\"exp\":%lld,\"aud\":[\"x\",\"billing\"]}", NOW + 60);
    char *wrong = hs_claims("{\"exp\":%lld,\"aud\":[\"x\",\"orders-admin\"]}", NOW + 60);
    char *empty = hs_claims("{\"exp\":%lld,\"aud\":[]}", NOW + 60);
    char *none = hs_claims("{\"exp\":%lld}", NOW + 60);
    char *num = hs_claims("{\"exp\":%lld,\"aud\":7}", NOW + 60);
    expect_ok(ks, none, &o); /* not configured: not checked */
    o.audiences = auds;
    o.n_audiences = 2;
    expect_ok(ks, str, &o);
    expect_ok(ks, arr, &o);
    expect(ks, wrong, &o, LS_JWT_BAD_AUDIENCE);
    expect(ks, empty, &o, LS_JWT_BAD_AUDIENCE);
    expect(ks, none, &o, LS_JWT_BAD_AUDIENCE);
    expect(ks, num, &o, LS_JWT_BAD_AUDIENCE);
    o.n_audiences = 1;
    expect(ks, arr, &o, LS_JWT_BAD_AUDIENCE);
    free(str);
    free(arr);
    free(wrong);
    free(empty);
    free(none);
    free(num);
    ls_jwks_free(ks);
}

static void test_jwt_claims_required_names(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    const char *req[] = {"sub", "tenant"};
    o.required = req;
    o.n_required = 2;
    char *full = hs_claims("{\"exp\":%lld,\"sub\":\"a\",\"tenant\":null}", NOW + 60);
    char *part = hs_claims("{\"exp\":%lld,\"sub\":\"a\"}", NOW + 60);
    expect_ok(ks, full, &o); /* present, even as null */
    ls_jwt_t *out;
    ls_jwt_reason r;
    ls_err err;
    assert_int_equal(ls_jwt_verify(&out, ks, part, strlen(part), &o, &r, &err), LS_EAUTH);
    assert_int_equal(r, LS_JWT_MISSING_CLAIM);
    assert_string_equal(err.msg, "missing_claim: required claim \"tenant\" is absent");
    free(full);
    free(part);
    ls_jwks_free(ks);
}

struct words {
    char items[8][32];
    int n;
};

static int add_word(void *ud, const char *s, size_t len)
{
    struct words *w = ud;
    snprintf(w->items[w->n++], sizeof w->items[0], "%.*s", (int)len, s);
    return w->n == 8;
}

static void test_jwt_claims_roles_path_and_scope(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = hs_claims("{\"exp\":%lld,\"realm_access\":{\"roles\":[\"admin\",7,\"user\"]},"
                        "\"scope\":\" orders:read  orders:write \",\"n\":3,"
                        "\"https://example.com/roles\":[\"ops\"]}",
                        NOW + 60);
    ls_jwt_t *v = expect(ks, t, &o, LS_JWT_OK);
    struct words w = {.n = 0};
    ls_err err;
    th_ok(ls_jwt_claim_strings(v, "realm_access.roles", add_word, &w, &err), &err);
    assert_int_equal(w.n, 2); /* 7 is not a string: skipped */
    assert_string_equal(w.items[0], "admin");
    assert_string_equal(w.items[1], "user");
    ls_jwt_str items[4];
    size_t n;
    th_ok(ls_jwt_claim_strings_into(v, "scope", items, 4, &n, &err), &err);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].len, 11);
    assert_memory_equal(items[0].ptr, "orders:read", 11);
    assert_memory_equal(items[1].ptr, "orders:write", 12);
    /* Fewer slots than items: count says how many there are. */
    th_ok(ls_jwt_claim_strings_into(v, "scope", items, 1, &n, &err), &err);
    assert_int_equal(n, 2);
    th_ok(ls_jwt_claim_strings_into(v, "https://example.com/roles", items, 4, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_memory_equal(items[0].ptr, "ops", 3);
    err.code = LS_OK;
    assert_int_equal(ls_jwt_claim_strings_into(v, "realm_access.groups", items, 4, &n, &err),
                     LS_ENOTFOUND);
    assert_int_equal(err.code, LS_OK);
    assert_int_equal(ls_jwt_claim_strings_into(v, "n", items, 4, &n, &err), LS_EINVAL);
    assert_string_equal(err.msg, "claim \"n\": expected a string or an array, got integer");
    assert_int_equal(ls_jwt_claim_strings_into(v, "realm_access", items, 4, &n, &err), LS_EINVAL);
    ls_jwt_free(v);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_handle_accessors(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    ls_jwt_t *v = expect(ks, t, &o, LS_JWT_OK);
    assert_string_equal(ls_jwt_subject(v), "alice");
    assert_string_equal(ls_jwt_kid(v), "ec256");
    assert_int_equal(ls_jwt_exp(v), 1700000600);
    assert_int_equal(ls_jwt_get_alg(v), LS_JWT_ES256);
    ls_buf js = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_set(&js, "old", 3, &err), &err);
    th_ok(ls_jwt_claims_json(v, &js, &err), &err);
    assert_string_equal((char *)js.ptr, "{\"aud\":\"orders\",\"exp\":1700000600,\"iat\":1699999990,"
                                        "\"iss\":\"" ISS "\",\"sub\":\"alice\"}");
    /* The engine's view (jwt_int.h). */
    assert_string_equal(json_string_value(json_object_get(ls_jwt_claims(v), "aud")), "orders");
    assert_string_equal(json_string_value(json_object_get(ls_jwt_header(v), "alg")), "ES256");
    ls_buf_free(&js);
    ls_jwt_free(v);
    ls_jwt_free(NULL);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_options_are_checked(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    char *t = tok("ES256", "ec256", F.ec256, CLAIMS);
    const char *null_list[] = {NULL};
    struct {
        ls_jwt_opts o;
        const char *msg;
    } cases[6];
    for (int i = 0; i < 6; i++) cases[i].o = opts_at(&mc, NOW);
    cases[0].o.algs = 0;
    cases[0].msg = "the algorithm allow-list is empty";
    cases[1].o.algs = 1; /* LS_JWT_ALG_ANY's bit */
    cases[1].msg = "the algorithm allow-list holds unknown bits 0x1";
    cases[2].o.leeway_s = -1;
    cases[2].msg = "leeway must be 0 to 86400 seconds, got -1";
    cases[3].o.n_audiences = 1;
    cases[3].msg = "n_audiences is 1 but audiences is NULL";
    cases[4].o.required = null_list;
    cases[4].o.n_required = 1;
    cases[4].msg = "required[0] is NULL";
    cases[5].o.issuer = "";
    cases[5].msg = "issuer must not be empty (leave it out, NULL, to not check iss)";
    for (int i = 0; i < 6; i++) {
        ls_jwt_t *out = (ls_jwt_t *)1;
        ls_jwt_reason r = LS_JWT_OK;
        ls_err err;
        assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), &cases[i].o, &r, &err), LS_EINVAL);
        assert_null(out);
        assert_int_equal(r, LS_JWT_ERROR);
        assert_string_equal(err.msg, cases[i].msg);
    }
    ls_jwt_t *out;
    ls_err err;
    assert_int_equal(ls_jwt_verify(&out, ks, t, strlen(t), NULL, NULL, &err), LS_EINVAL);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_alg_and_reason_names(void **state)
{
    (void)state;
    ls_err err;
    for (int a = LS_JWT_ALG_ANY + 1; a < LS_JWT_ALG_END; a++) {
        const char *name = ls_jwt_alg_name((ls_jwt_alg)a);
        ls_jwt_alg back;
        th_ok(ls_jwt_alg_parse(name, strlen(name), &back, &err), &err);
        assert_int_equal(back, a);
    }
    assert_string_equal(ls_jwt_alg_name(LS_JWT_ALG_ANY), "");
    assert_string_equal(ls_jwt_alg_name(LS_JWT_ALG_END), "");
    ls_jwt_alg a;
    assert_int_equal(ls_jwt_alg_parse("RS257", 5, &a, &err), LS_EINVAL);
    assert_string_equal(err.msg, "unknown algorithm \"RS257\"");
    uint32_t mask = 0;
    th_ok(ls_jwt_algs_parse(" RS256, EdDSA,ES256 ", &mask, &err), &err);
    assert_int_equal(mask, LS_JWT_ALG_BIT(LS_JWT_RS256) | LS_JWT_ALG_BIT(LS_JWT_EDDSA) |
                               LS_JWT_ALG_BIT(LS_JWT_ES256));
    assert_int_equal(ls_jwt_algs_parse(" , ", &mask, &err), LS_EINVAL);

    static const char *const want[] = {
        "ok",
        "error",
        "malformed",
        "too_large",
        "alg_none",
        "alg_not_allowed",
        "crit_unsupported",
        "bad_type",
        "unknown_kid",
        "no_key",
        "ambiguous_key",
        "key_alg_mismatch",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "bad_issuer",
        "bad_audience",
        "missing_claim",
        "invalid_claim",
    };
    assert_int_equal(sizeof want / sizeof want[0], LS_JWT_REASON_END);
    for (int r = 0; r < LS_JWT_REASON_END; r++)
        assert_string_equal(ls_jwt_reason_name((ls_jwt_reason)r), want[r]);
    assert_string_equal(ls_jwt_reason_name(LS_JWT_REASON_END), "unknown");
}

/* ---- the token JSON reader ---- */

static void test_jwt_json_reader_agrees_with_ls_json_parse(void **state)
{
    (void)state;
    static const char *const corpus[] = {
        /* accepted */
        "{}",
        "[]",
        "\"\"",
        "0",
        "-0",
        "1.5",
        "-1.5e10",
        "1E+2",
        "1e-2",
        "true",
        "false",
        "null",
        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\"}",
        " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ",
        "\"\\u00e9\\u20AC\\ud83d\\ude00\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
        "\"\\u0000x\"",
        "9223372036854775807",
        "-9223372036854775808",
        "{\"\":1}",
        "[1e-400]",
        "{\"a\":{\"a\":{\"a\":1}}}",
        "[\"\xef\xbf\xbf\", \"\xf4\x8f\xbf\xbf\"]",
        "{\"k\\u00e9y\":\"v\"}",
        "0.1",
        "[-0.0]",
        /* rejected */
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{a:1}",
        "{'a':1}",
        "01",
        "-",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "True",
        "\"abc",
        "\"a\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"a\x01b\"",
        "\"a\tb\"",
        "\"\xc3\x28\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xff\"",
        "\"\xe2\x82\"",
        "{\"a\":1,\"a\":2}",
        "[{\"a\":1,\"a\":2}]",
        "{\"a\\u0000\":1}",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "[1] x",
        "{} {}",
        "1 2",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "[,]",
        "\xef\xbb\xbf{}",
        "-01",
        "[-]",
        "\"\\uD834\\uDD1E\\uDD1E\"",
    };
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        const char *text = corpus[i];
        size_t len = strlen(text);
        json_t *want = NULL, *got = NULL;
        ls_err e1, e2;
        ls_rc r1 = ls_json_parse(text, len, &want, &e1);
        unsigned char *copy = (unsigned char *)strndup(text, len);
        ls_rc r2 = ls_jwt_parse_json(copy, len, &got, &e2);
        free(copy);
        if ((r1 == LS_OK) != (r2 == LS_OK))
            fail_msg("corpus[%zu] %s: jansson %s (%s), reader %s (%s)", i, text, ls_rc_name(r1),
                     r1 ? e1.msg : "", ls_rc_name(r2), r2 ? e2.msg : "");
        if (r1 == LS_OK && !json_equal(want, got))
            fail_msg("corpus[%zu] %s: values differ", i, text);
        json_decref(want);
        json_decref(got);
    }
    /* Its own limits: 32 levels of nesting. */
    char deep[80];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    json_t *v;
    ls_err err;
    assert_int_equal(ls_jwt_parse_json((unsigned char *)deep, 66, &v, &err), LS_EINVAL);
    assert_string_equal(err.msg, "byte 32: nested too deeply");
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    th_ok(ls_jwt_parse_json((unsigned char *)deep, 64, &v, &err), &err);
    json_decref(v);
    char dup[] = "{\"sub\":\"a\",\"sub\":\"b\"}";
    assert_int_equal(ls_jwt_parse_json((unsigned char *)dup, strlen(dup), &v, &err), LS_EINVAL);
    assert_string_equal(err.msg, "byte 11: duplicate object key");
}

static void test_jwt_claims_with_escapes_and_unicode(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = hs_claims("{\"exp\":%lld,\"sub\":\"J\\u00f6rg \\\"j\\\" M\xc3\xbcller\","
                        "\"scope\":\"a\\u0020b\"}",
                        NOW + 60);
    ls_jwt_t *v = expect(ks, t, &o, LS_JWT_OK);
    assert_string_equal(ls_jwt_subject(v), "J\xc3\xb6rg \"j\" M\xc3\xbcller");
    ls_jwt_str items[4];
    size_t n;
    ls_err err;
    th_ok(ls_jwt_claim_strings_into(v, "scope", items, 4, &n, &err), &err);
    assert_int_equal(n, 2);
    ls_jwt_free(v);
    free(t);
    ls_jwks_free(ks);
}

/* ---- keysets ---- */

static void expect_jwks_error(const char *json, const char *msg)
{
    ls_jwks_t *ks = (ls_jwks_t *)1;
    ls_err err;
    ls_rc rc = ls_jwks_parse(&ks, json, strlen(json), &err);
    if (rc != LS_EINVAL) fail_msg("%s: want EINVAL, got %s", json, ls_rc_name(rc));
    if (strstr(err.msg, msg) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", json, err.msg, msg);
    assert_ptr_equal(ks, (ls_jwks_t *)1);
}

static void test_jwt_jwks_errors_name_key_and_field(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    char json[4096];

    expect_jwks_error("{\"keys\": [", "JWK Set: line 1");
    expect_jwks_error("[]", "JWK Set: expected an object with a \"keys\" array");
    expect_jwks_error("{\"keys\": {}}", "JWK Set: expected an object with a \"keys\" array");
    /* A set none of whose keys can be used says why for each. */
    expect_jwks_error("{\"keys\":[\"x\"]}", "keys[1]: expected an object, got string");
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"ab+c\",\"e\":\"AQAB\"}]}",
                      "keys[1].n: invalid base64url: character '+' at offset 2");
    expect_jwks_error("{\"keys\":[{\"n\":\"AQAB\"}]}", "keys[1].kty: missing");
    expect_jwks_error("{\"keys\":[{\"kty\":1}]}", "keys[1].kty: expected a string, got integer");
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", "keys[1].e: missing");
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                      "keys[1].n: RSA modulus of 17 bits is too small (at least 2048)");
    expect_jwks_error(
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
        "keys[1].x: expected 32 bytes for P-256, got 3");
    expect_jwks_error("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                      "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
                      "keys[1]: x, y: not a point on P-256");
    expect_jwks_error("{\"keys\":[{\"kty\":\"EC\",\"x\":\"AQAB\"}]}", "keys[1].crv: missing");
    expect_jwks_error("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AQAB\"}]}",
                      "keys[1].x: expected 32 bytes for Ed25519, got 3");
    expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}",
                      "keys[1].k: HMAC key of 5 bytes is too short (at least 32)");
    expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ=\"}]}",
                      "keys[1].k: invalid base64url: padding '=' is not allowed (offset 7)");
    put_jwk(&b, F.ec256, "k1", "ES384");
    snprintf(json, sizeof json, "{\"keys\":[%s]}", (char *)b.ptr);
    expect_jwks_error(json, "keys[1].alg: ES384 does not fit an EC P-256 key [kid \"k1\"]");
    ls_buf_clear(&b);
    put_jwk(&b, F.rsa1, "k1", "HS256");
    snprintf(json, sizeof json, "{\"keys\":[%s]}", (char *)b.ptr);
    expect_jwks_error(json, "keys[1].alg: HS256 does not fit an RSA key [kid \"k1\"]");
    ls_buf_clear(&b);
    ls_buf_printf(&b, &err, "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":\"");
    put_b64u(&b, F.h64, 32);
    ls_buf_printf(&b, &err, "\"}]}");
    expect_jwks_error((char *)b.ptr, "keys[1].alg: HS512 needs a key of at least 64 bytes, got 32");
    expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"kid\":5,\"k\":\"AQAB\"}]}",
                      "keys[1].kid: expected a string, got integer");
    expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\\u0000b\",\"k\":\"AQAB\"}]}",
                      "keys[1].kid: contains a NUL byte");
    /* Keys for something else only: no key either. */
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"e1\",\"n\":\"x\"}]}",
                      "keys[1].use: \"enc\", not for signatures [kid \"e1\"]");
    /* Values from the set are shown cut short and without control bytes. */
    expect_jwks_error("{\"keys\":[{\"kty\":\"P\\nQ\",\"kid\":\"line\\nbreak\"}]}",
                      "keys[1].kty: \"P?Q\" is not supported [kid \"line?break\"]");
    /* Beyond what a message holds: counted. */
    ls_buf_clear(&b);
    ls_buf_printf(&b, &err, "{\"keys\":[");
    for (int i = 0; i < 40; i++) ls_buf_printf(&b, &err, "%s{\"kty\":\"PQ%d\"}", i ? "," : "", i);
    ls_buf_printf(&b, &err, "]}");
    expect_jwks_error((char *)b.ptr, "more");

    /* A failed add leaves an existing set as it was. */
    ls_jwks_t *ks = std_keys();
    unsigned char before[LS_JWKS_FPBYTES], after[LS_JWKS_FPBYTES];
    ls_jwks_fingerprint(ks, before);
    snprintf(json, sizeof json, "{\"keys\":[{\"kty\":\"PQ\"},{\"kty\":\"RSA\"}]}");
    assert_int_equal(ls_jwks_add_json(ks, json, strlen(json), &err), LS_EINVAL);
    assert_string_equal(err.msg, "keys[1].kty: \"PQ\" is not supported; keys[2].n: missing");
    assert_int_equal(ls_jwks_count(ks), 6);
    assert_int_equal(ls_jwks_skipped(ks), 0);
    ls_jwk_skipped sk;
    assert_int_equal(ls_jwks_skipped_info(ks, 0, &sk, &err), LS_ENOTFOUND);
    assert_int_equal(ls_jwks_skip_notice(ks, &err), LS_OK);
    ls_jwks_fingerprint(ks, after);
    assert_memory_equal(before, after, sizeof before);
    /* An empty set is no key at all, and no error. */
    assert_int_equal(ls_jwks_add_json(ks, "{\"keys\":[]}", 11, &err), LS_OK);
    assert_int_equal(ls_jwks_count(ks), 6);
    ls_jwks_free(ks);
    ls_buf_free(&b);
}

/* One key the library cannot use no longer costs the whole set (RFC 7517
 * section 5): it is skipped, said once with its index, kid and reason, and
 * never verifies anything, also not through a kid that names it. */
static void test_jwt_jwks_bad_key_skipped_not_fatal(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT, n2 = LS_BUF_INIT;
    ls_err err;
    put_bn(&n2, F.rsa2, OSSL_PKEY_PARAM_RSA_N, 0);
    ls_buf_putc(&n2, 0, &err);
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "good", NULL);
    ls_buf_printf(&b, &err,
                  ",{\"kty\":\"RSA\",\"kid\":\"old\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"
                  ",{\"kty\":\"RSA\",\"kid\":\"no-n\",\"e\":\"AQAB\"}"
                  ",{\"kty\":\"RSA\",\"kid\":\"bad-e\",\"n\":\"%s\",\"e\":\"Ag\"}"
                  ",{\"kty\":\"PQ\",\"kid\":\"pq\"}"
                  ",{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"kid\":\"k1\",\"x\":\"x\",\"y\":\"x\"}"
                  ",{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"enc\",\"n\":\"x\",\"e\":\"x\"}"
                  ",\"x\"]}",
                  (char *)n2.ptr);
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    assert_int_equal(ls_jwks_count(ks), 1);
    assert_int_equal(ls_jwks_skipped(ks), 7);

    /* The list: every skipped key, which and why. */
    ls_jwk_skipped sk;
    th_ok(ls_jwks_skipped_info(ks, 0, &sk, &err), &err);
    assert_int_equal(sk.index, 1);
    assert_string_equal(sk.kid, "old");
    assert_string_equal(sk.why, "n: RSA modulus of 17 bits is too small (at least 2048)");
    assert_int_equal(sk.other_use, 0);
    th_ok(ls_jwks_skipped_info(ks, 2, &sk, &err), &err);
    assert_string_equal(sk.kid, "bad-e");
    assert_string_equal(sk.why, "e: RSA exponent must be odd, at least 3, at most 64 bits");
    th_ok(ls_jwks_skipped_info(ks, 5, &sk, &err), &err);
    assert_string_equal(sk.kid, "enc");
    assert_int_equal(sk.other_use, 1);
    th_ok(ls_jwks_skipped_info(ks, 6, &sk, &err), &err);
    assert_int_equal(sk.index, 7);
    assert_null(sk.kid);
    assert_int_equal(ls_jwks_skipped_info(ks, 7, &sk, &err), LS_ENOTFOUND);

    /* The notice: the unusable ones, not the key meant for encryption. */
    assert_int_equal(ls_jwks_skip_notice(ks, &err), LS_EFORMAT);
    assert_string_equal(
        err.msg,
        "JWK Set: 6 keys skipped, not usable here (tokens naming them are refused): "
        "keys[2].n: RSA modulus of 17 bits is too small (at least 2048) [kid \"old\"]; "
        "keys[3].n: missing [kid \"no-n\"]; "
        "keys[4].e: RSA exponent must be odd, at least 3, at most 64 bits [kid \"bad-e\"]; "
        "keys[5].kty: \"PQ\" is not supported [kid \"pq\"]; "
        "keys[6].crv: \"secp256k1\" is not supported [kid \"k1\"]; "
        "keys[8]: expected an object, got string");

    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("RS256", "good", F.rsa1, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    /* A kid naming a skipped key finds no key: never the usable one. */
    static const char *const skipped_kids[] = {"old", "no-n", "bad-e", "pq", "k1", "enc"};
    for (size_t i = 0; i < sizeof skipped_kids / sizeof skipped_kids[0]; i++) {
        t = tok("RS256", skipped_kids[i], F.rsa1, CLAIMS);
        ls_jwt_free(expect(ks, t, &o, LS_JWT_UNKNOWN_KID));
        free(t);
    }
    /* Without a kid: the one usable key (the skipped do not count)... */
    t = tok("RS256", NULL, F.rsa1, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    t = tok("RS256", NULL, F.rsa2, CLAIMS); /* (bad-e's modulus) */
    ls_jwt_free(expect(ks, t, &o, LS_JWT_BAD_SIGNATURE));
    free(t);
    ls_jwks_free(ks);

    /* ...and only when exactly one remains. */
    ls_buf_clear(&b);
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "a", NULL);
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.rsa2, "b", NULL);
    ls_buf_printf(&b, &err, ",{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
    ks = parse_jwks((char *)b.ptr);
    assert_int_equal(ls_jwks_count(ks), 2);
    t = tok("RS256", NULL, F.rsa1, CLAIMS);
    ls_jwt_free(expect(ks, t, &o, LS_JWT_AMBIGUOUS_KEY));
    free(t);
    ls_jwks_free(ks);
    ls_buf_free(&n2);
    ls_buf_free(&b);
}

static void test_jwt_jwks_skips_keys_it_cannot_use(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.rsa1, "sig-key", NULL);
    ls_buf_printf(&b, &err,
                  ",{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"e\",\"n\":\"x\",\"e\":\"x\"}"
                  ",{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\",\"n\":\"x\",\"e\":\"x\"}"
                  ",{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"x\",\"y\":\"x\"}"
                  ",{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"x\"}"
                  ",{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"x\"}"
                  ",{\"kty\":\"oct\",\"key_ops\":[\"encrypt\"],\"k\":\"x\"}"
                  ",{\"kty\":\"PQ\",\"pub\":\"x\"}");
    ls_buf_putc(&b, ',', &err);
    put_jwk(&b, F.ec256, "with-ops", NULL);
    b.len--; /* reopen the object to add use and key_ops */
    ls_buf_printf(&b, &err, ",\"use\":\"sig\",\"key_ops\":[\"verify\"]}]}");
    ls_jwks_t *ks = parse_jwks((char *)b.ptr);
    assert_int_equal(ls_jwks_count(ks), 2);
    assert_int_equal(ls_jwks_skipped(ks), 7);
    ls_jwk_info info;
    th_ok(ls_jwks_key_info(ks, 0, &info, &err), &err);
    assert_int_equal(info.type, LS_JWK_RSA);
    assert_string_equal(info.kid, "sig-key");
    assert_null(info.curve);
    assert_int_equal(info.bits, 2048);
    assert_int_equal(info.alg, LS_JWT_ALG_ANY);
    th_ok(ls_jwks_key_info(ks, 1, &info, &err), &err);
    assert_int_equal(info.type, LS_JWK_EC);
    assert_string_equal(info.curve, "P-256");
    assert_int_equal(info.bits, 256);
    assert_int_equal(ls_jwks_key_info(ks, 2, &info, &err), LS_ENOTFOUND);
    ls_buf_free(&b);
    ls_jwks_free(ks);
}

static void test_jwt_jwks_load_file(void **state)
{
    (void)state;
    char *dir = th_mkdtemp("jwt");
    char *path = th_path(dir, "jwks.json");
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&b, &err, "{\"keys\":[");
    put_jwk(&b, F.ec256, "file-key", "ES256");
    ls_buf_printf(&b, &err, "]}");
    FILE *f = fopen(path, "wb");
    fwrite(b.ptr, 1, b.len, f);
    fclose(f);
    ls_jwks_t *ks;
    th_ok(ls_jwks_load_file(&ks, path, &err), &err);
    assert_int_equal(ls_jwks_count(ks), 1);
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok("ES256", "file-key", F.ec256, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    ls_jwks_free(ks);

    f = fopen(path, "wb");
    fputs("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"!\",\"y\":\"x\"}]}", f);
    fclose(f);
    assert_int_equal(ls_jwks_load_file(&ks, path, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "jwks.json: keys[1].x: invalid base64url"));
    char *missing = th_path(dir, "absent.json");
    assert_int_equal(ls_jwks_load_file(&ks, missing, &err), LS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "absent.json"));
    free(missing);
    ls_buf_free(&b);
    free(path);
    th_rmtree(dir);
    free(dir);
}

static char *pem_of(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(bio);
    return s;
}

static void test_jwt_pem_public_keys(void **state)
{
    (void)state;
    ls_jwks_t *ks;
    ls_err err;
    th_ok(ls_jwks_new(&ks, &err), &err);
    EVP_PKEY *keys[] = {F.rsa1, F.ec384, F.ed1};
    const char *kids[] = {"pem-rsa", "pem-ec", NULL};
    const char *algs[] = {"PS384", "ES384", "EdDSA"};
    for (int i = 0; i < 3; i++) {
        char *pem = pem_of(keys[i]);
        th_ok(ls_jwks_add_pem(ks, pem, strlen(pem), kids[i], LS_JWT_ALG_ANY, &err), &err);
        free(pem);
    }
    assert_int_equal(ls_jwks_count(ks), 3);
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    for (int i = 0; i < 3; i++) {
        char *t = tok(algs[i], kids[i], keys[i], CLAIMS);
        expect_ok(ks, t, &o);
        free(t);
    }
    /* The same key as PEM and as JWK: the same fingerprint. */
    ls_buf b = LS_BUF_INIT;
    put_jwk(&b, F.ec384, "pem-ec", NULL);
    ls_jwks_t *as_jwk = jwks_of_jwk((char *)b.ptr), *as_pem;
    th_ok(ls_jwks_new(&as_pem, &err), &err);
    char *pem = pem_of(F.ec384);
    th_ok(ls_jwks_add_pem(as_pem, pem, strlen(pem), "pem-ec", LS_JWT_ALG_ANY, &err), &err);
    unsigned char f1[LS_JWKS_FPBYTES], f2[LS_JWKS_FPBYTES];
    ls_jwks_fingerprint(as_jwk, f1);
    ls_jwks_fingerprint(as_pem, f2);
    assert_memory_equal(f1, f2, sizeof f1);
    /* With a restriction that does not fit. */
    assert_int_equal(ls_jwks_add_pem(as_pem, pem, strlen(pem), NULL, LS_JWT_RS256, &err),
                     LS_EINVAL);
    assert_string_equal(err.msg, "PEM public key: alg: RS256 does not fit an EC P-384 key");
    free(pem);

    /* Not a public key: garbage, a private key, a small RSA key. */
    assert_int_equal(ls_jwks_add_pem(ks, "hello", 5, NULL, LS_JWT_ALG_ANY, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "PEM public key: no PEM public key"));
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, F.ec256, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    assert_int_equal(ls_jwks_add_pem(ks, p, (size_t)n, NULL, LS_JWT_ALG_ANY, &err), LS_EINVAL);
    BIO_free(bio);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    pem = pem_of(small);
    assert_int_equal(ls_jwks_add_pem(ks, pem, strlen(pem), NULL, LS_JWT_ALG_ANY, &err), LS_EINVAL);
    assert_string_equal(err.msg,
                        "PEM public key: n: RSA modulus of 1024 bits is too small (at least 2048)");
    free(pem);
    EVP_PKEY_free(small);
    assert_int_equal(ls_jwks_add_pem_file(ks, "/nonexistent/key.pem", NULL, LS_JWT_ALG_ANY, &err),
                     LS_ENOTFOUND);
    assert_int_equal(ls_jwks_count(ks), 3);
    ls_buf_free(&b);
    ls_jwks_free(as_jwk);
    ls_jwks_free(as_pem);
    ls_jwks_free(ks);
}

static void test_jwt_hmac_secrets(void **state)
{
    (void)state;
    ls_jwks_t *ks;
    ls_err err;
    th_ok(ls_jwks_new(&ks, &err), &err);
    th_ok(ls_jwks_add_secret(ks, F.h64, 32, "s32", LS_JWT_ALG_ANY, &err), &err);
    th_ok(ls_jwks_add_secret(ks, F.h64, 64, "s64", LS_JWT_HS256, &err), &err);
    assert_int_equal(ls_jwks_add_secret(ks, F.h64, 31, NULL, LS_JWT_ALG_ANY, &err), LS_EINVAL);
    assert_string_equal(err.msg, "HMAC secret: HMAC key of 31 bytes is too short (at least 32)");
    assert_int_equal(ls_jwks_add_secret(ks, F.h64, 32, NULL, LS_JWT_ES256, &err), LS_EINVAL);
    assert_int_equal(ls_jwks_add_secret(ks, F.h64, 32, NULL, (ls_jwt_alg)99, &err), LS_EINVAL);
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char *t = tok_hs("HS256", "s32", F.h64, 32, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    /* A 32-byte key is too short for HS384 (RFC 7518 3.2). */
    t = tok_hs("HS384", "s32", F.h64, 32, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    /* s64 is restricted to HS256. */
    t = tok_hs("HS512", "s64", F.h64, 64, CLAIMS);
    expect(ks, t, &o, LS_JWT_KEY_ALG_MISMATCH);
    free(t);
    t = tok_hs("HS256", "s64", F.h64, 64, CLAIMS);
    expect_ok(ks, t, &o);
    free(t);
    /* Without a kid both keys can do HS256. */
    t = tok_hs("HS256", NULL, F.h64, 64, CLAIMS);
    expect(ks, t, &o, LS_JWT_AMBIGUOUS_KEY);
    free(t);
    /* A truncated MAC is not accepted. */
    t = tok_hs("HS256", "s32", F.h64, 32, CLAIMS);
    t[strlen(t) - 3] = '\0';
    expect(ks, t, &o, LS_JWT_BAD_SIGNATURE);
    free(t);
    ls_jwks_free(ks);
}

static void test_jwt_jwks_fingerprint_tracks_content(void **state)
{
    (void)state;
    ls_buf a = LS_BUF_INIT, b = LS_BUF_INIT;
    put_jwk(&a, F.rsa1, "k", NULL);
    put_jwk(&b, F.rsa1, "k2", NULL);
    ls_jwks_t *k1 = jwks_of_jwk((char *)a.ptr), *k1again = jwks_of_jwk((char *)a.ptr),
              *k2 = jwks_of_jwk((char *)b.ptr);
    unsigned char f1[LS_JWKS_FPBYTES], f1b[LS_JWKS_FPBYTES], f2[LS_JWKS_FPBYTES];
    ls_jwks_fingerprint(k1, f1);
    ls_jwks_fingerprint(k1again, f1b);
    ls_jwks_fingerprint(k2, f2);
    assert_memory_equal(f1, f1b, sizeof f1);
    assert_memory_not_equal(f1, f2, sizeof f1); /* only the kid differs */
    ls_buf_free(&a);
    ls_buf_free(&b);
    ls_jwks_free(k1);
    ls_jwks_free(k1again);
    ls_jwks_free(k2);
}

/* ---- cache ---- */

static ls_jwt_cache_t *new_cache(size_t cap, int64_t ttl, const ls_jwt_opts *o)
{
    ls_jwt_cache_t *c;
    ls_jwt_cache_opts co = {cap, ttl};
    ls_err err;
    th_ok(ls_jwt_cache_new(&c, &co, o, &err), &err);
    return c;
}

static ls_jwt_t *cached(ls_jwt_cache_t *c, const ls_jwks_t *ks, const char *t, ls_jwt_reason want)
{
    ls_jwt_t *v = NULL;
    ls_jwt_reason r;
    ls_err err = {LS_OK, ""};
    ls_rc rc = ls_jwt_cache_verify(c, ks, t, strlen(t), &v, &r, &err);
    if (r != want)
        fail_msg("want %s, got %s (%s)", ls_jwt_reason_name(want), ls_jwt_reason_name(r), err.msg);
    assert_int_equal(rc, want == LS_JWT_OK ? LS_OK : LS_EAUTH);
    return v;
}

static int hit(ls_jwt_cache_t *c, const ls_jwks_t *ks, const char *t)
{
    ls_jwt_t *v;
    ls_err err;
    ls_rc rc = ls_jwt_cache_lookup(c, ks, t, strlen(t), &v, &err);
    ls_jwt_free(v);
    return rc == LS_OK;
}

static void test_jwt_cache_hit_skips_verification(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_cache_t *c = new_cache(8, 0, &o);
    char *t = tok("RS256", "rsa1", F.rsa1, CLAIMS);
    ls_jwt_t *first = cached(c, ks, t, LS_JWT_OK);
    ls_jwt_t *second = cached(c, ks, t, LS_JWT_OK);
    assert_ptr_equal(first, second); /* the very same verified token */
    assert_string_equal(ls_jwt_subject(second), "alice");
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.misses, 1); /* one verification */
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.count, 1);
    /* Another keyset object with the same keys (a reload that changed
     * nothing) still hits: no verification. */
    ls_jwks_t *same = std_keys();
    ls_jwt_free(cached(c, same, t, LS_JWT_OK));
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    /* Failures are not cached. */
    char *bad = strdup(t);
    tamper(bad, 2);
    assert_null(cached(c, ks, bad, LS_JWT_BAD_SIGNATURE));
    assert_null(cached(c, ks, bad, LS_JWT_BAD_SIGNATURE));
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.inserts, 1);
    /* Handles outlive the cache. */
    ls_jwt_cache_free(c);
    assert_string_equal(ls_jwt_subject(first), "alice");
    ls_jwt_free(first);
    ls_jwt_free(second);
    free(bad);
    free(t);
    ls_jwks_free(same);
    ls_jwks_free(ks);
}

static uint64_t constant_hash(const char *token, size_t len)
{
    (void)token;
    (void)len;
    return 42;
}

static void test_jwt_cache_compares_whole_token(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_cache_t *c = new_cache(8, 0, &o);
    ls_jwt_cache_set_hash_for_test(c, constant_hash); /* every token collides */
    char *alice = hs_claims("{\"sub\":\"alice\",\"exp\":%lld}", NOW + 60);
    char *bob = hs_claims("{\"sub\":\"bob\",\"exp\":%lld}", NOW + 60);
    ls_jwt_free(cached(c, ks, alice, LS_JWT_OK));
    /* Same hash, other token: verified on its own, its own claims. */
    ls_jwt_t *v = cached(c, ks, bob, LS_JWT_OK);
    assert_string_equal(ls_jwt_subject(v), "bob");
    ls_jwt_free(v);
    v = cached(c, ks, alice, LS_JWT_OK);
    assert_string_equal(ls_jwt_subject(v), "alice");
    ls_jwt_free(v);
    /* A forgery with the same hash and length as a cached token. */
    char *forged = strdup(alice);
    tamper(forged, 2);
    assert_int_equal(strlen(forged), strlen(alice));
    assert_false(hit(c, ks, forged));
    assert_null(cached(c, ks, forged, LS_JWT_BAD_SIGNATURE));
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.inserts, 2);
    assert_int_equal(st.hits, 1);
    free(forged);
    free(alice);
    free(bob);
    ls_jwt_cache_free(c);
    ls_jwks_free(ks);
}

static void test_jwt_cache_entries_expire(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_cache_t *c = new_cache(8, 300, &o);
    char *short_lived = hs_claims("{\"exp\":%lld}", NOW + 60);
    ls_jwt_free(cached(c, ks, short_lived, LS_JWT_OK));
    ls_manual_clock_advance(&mc, 59999);
    assert_true(hit(c, ks, short_lived));
    ls_manual_clock_advance(&mc, 1);
    assert_false(hit(c, ks, short_lived)); /* at exp: gone */
    assert_null(cached(c, ks, short_lived, LS_JWT_EXPIRED));
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.invalidations, 1);
    assert_int_equal(st.count, 0);

    /* The ttl bounds long-lived tokens: re-verified after it. */
    ls_jwt_cache_t *c10 = new_cache(8, 10, &o);
    char *long_lived = hs_claims("{\"exp\":%lld}", NOW + 3600);
    ls_jwt_free(cached(c10, ks, long_lived, LS_JWT_OK));
    ls_manual_clock_advance(&mc, 9999);
    assert_true(hit(c10, ks, long_lived));
    ls_manual_clock_advance(&mc, 1);
    assert_false(hit(c10, ks, long_lived));
    ls_jwt_free(cached(c10, ks, long_lived, LS_JWT_OK));
    ls_jwt_cache_get_stats(c10, &st);
    assert_int_equal(st.inserts, 2);

    /* Leeway extends a cached token as it extends a verified one. */
    ls_jwt_opts ol = opts_at(&mc, NOW);
    ol.leeway_s = 30;
    ls_jwt_cache_t *cl = new_cache(8, 300, &ol);
    ls_jwt_free(cached(cl, ks, short_lived, LS_JWT_OK));
    ls_manual_clock_advance(&mc, 89999);
    assert_true(hit(cl, ks, short_lived));
    ls_manual_clock_advance(&mc, 1);
    assert_false(hit(cl, ks, short_lived));
    free(short_lived);
    free(long_lived);
    ls_jwt_cache_free(c);
    ls_jwt_cache_free(c10);
    ls_jwt_cache_free(cl);
    ls_jwks_free(ks);
}

static void test_jwt_cache_evicts_least_recently_used(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_cache_t *c = new_cache(3, 0, &o);
    char *t[5];
    for (int i = 0; i < 5; i++) t[i] = hs_claims("{\"n\":%d,\"exp\":%lld}", i, NOW + 60);
    for (int i = 0; i < 3; i++) ls_jwt_free(cached(c, ks, t[i], LS_JWT_OK));
    assert_true(hit(c, ks, t[0]));               /* order now, most recent first: 0 2 1 */
    ls_jwt_free(cached(c, ks, t[3], LS_JWT_OK)); /* evicts 1 */
    assert_false(hit(c, ks, t[1]));
    assert_true(hit(c, ks, t[2]));               /* 2 3 0 */
    ls_jwt_free(cached(c, ks, t[4], LS_JWT_OK)); /* evicts 0 */
    assert_false(hit(c, ks, t[0]));
    assert_true(hit(c, ks, t[2]));
    assert_true(hit(c, ks, t[3]));
    assert_true(hit(c, ks, t[4]));
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.count, 3);
    ls_jwt_cache_clear(c);
    assert_false(hit(c, ks, t[4]));
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.count, 0);
    for (int i = 0; i < 5; i++) free(t[i]);
    ls_jwt_cache_free(c);
    ls_jwks_free(ks);
}

static void test_jwt_cache_key_rotation_invalidates(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_buf k1 = LS_BUF_INIT, k2 = LS_BUF_INIT, both = LS_BUF_INIT, renamed = LS_BUF_INIT;
    ls_err err;
    put_jwk(&k1, F.rsa1, "k1", NULL);
    put_jwk(&k2, F.rsa2, "k2", NULL);
    put_jwk(&renamed, F.rsa1, "k1-renamed", NULL);
    ls_buf_printf(&both, &err, "{\"keys\":[%s,%s]}", (char *)k2.ptr, (char *)k1.ptr);
    ls_jwks_t *old = jwks_of_jwk((char *)k1.ptr), *rotated = jwks_of_jwk((char *)k2.ptr),
              *overlap = parse_jwks((char *)both.ptr),
              *other_kid = jwks_of_jwk((char *)renamed.ptr);
    ls_jwt_cache_t *c = new_cache(8, 0, &o);
    char *t = tok("RS256", "k1", F.rsa1, CLAIMS);
    ls_jwt_free(cached(c, old, t, LS_JWT_OK));
    assert_true(hit(c, overlap, t)); /* k1 still published beside k2 */
    assert_true(hit(c, old, t));
    assert_false(hit(c, other_kid, t)); /* same material, other kid: not the same key */
    ls_jwt_free(cached(c, old, t, LS_JWT_OK));
    assert_false(hit(c, rotated, t)); /* k1 revoked */
    assert_null(cached(c, rotated, t, LS_JWT_UNKNOWN_KID));
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(c, &st);
    assert_int_equal(st.invalidations, 2);
    free(t);
    ls_buf_free(&k1);
    ls_buf_free(&k2);
    ls_buf_free(&both);
    ls_buf_free(&renamed);
    ls_jwks_free(old);
    ls_jwks_free(rotated);
    ls_jwks_free(overlap);
    ls_jwks_free(other_kid);
    ls_jwt_cache_free(c);
}

static void test_jwt_cache_options_are_checked(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    ls_jwt_cache_t *c = (ls_jwt_cache_t *)1;
    ls_jwt_cache_opts co = {0, 0};
    ls_err err;
    assert_int_equal(ls_jwt_cache_new(&c, &co, &o, &err), LS_EINVAL);
    co.capacity = ((size_t)1 << 24) + 1;
    assert_int_equal(ls_jwt_cache_new(&c, &co, &o, &err), LS_EINVAL);
    co.capacity = 4;
    co.ttl_s = -1;
    assert_int_equal(ls_jwt_cache_new(&c, &co, &o, &err), LS_EINVAL);
    co.ttl_s = 0;
    o.algs = 0;
    assert_int_equal(ls_jwt_cache_new(&c, &co, &o, &err), LS_EINVAL);
    assert_string_equal(err.msg, "the algorithm allow-list is empty");
    assert_ptr_equal(c, (ls_jwt_cache_t *)1);
    ls_jwt_cache_free(NULL);
    ls_jwks_free(NULL);
}

static void test_jwt_cache_copies_its_options(void **state)
{
    (void)state;
    ls_jwks_t *ks = std_keys();
    ls_manual_clock mc;
    ls_jwt_opts o = opts_at(&mc, NOW);
    char iss[64], aud[16], req[16];
    strcpy(iss, ISS);
    strcpy(aud, "orders");
    strcpy(req, "sub");
    const char *auds[] = {aud}, *reqs[] = {req};
    o.issuer = iss;
    o.audiences = auds;
    o.n_audiences = 1;
    o.required = reqs;
    o.n_required = 1;
    o.typ = "JWT";
    ls_jwt_cache_t *c = new_cache(4, 0, &o);
    /* The caller's strings change; the cache keeps what it was given. */
    strcpy(iss, "changed");
    strcpy(aud, "changed");
    strcpy(req, "changed");
    char *t = sign_jws("{\"alg\":\"ES256\",\"kid\":\"ec256\",\"typ\":\"JWT\"}", CLAIMS, "ES256",
                       F.ec256, NULL, 0);
    ls_jwt_free(cached(c, ks, t, LS_JWT_OK));
    free(t);
    t = tok("ES256", "ec256", F.ec256, CLAIMS); /* no typ */
    assert_null(cached(c, ks, t, LS_JWT_BAD_TYPE));
    free(t);
    ls_jwt_cache_free(c);
    ls_jwks_free(ks);
}

/* ---- failing allocations ---- */

struct alloc_case {
    const char *jwks;
    const char *pem;
    const char *small, *large, *payload_token;
    ls_jwt_opts o;
};

static ls_rc alloc_run(void *ud)
{
    struct alloc_case *a = ud;
    ls_jwks_t *ks = NULL;
    ls_jwt_cache_t *c = NULL;
    ls_jwt_t *t = NULL, *t2 = NULL, *t3 = NULL;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    const char *aud[] = {"orders"};
    ls_jwt_opts o = a->o;
    o.audiences = aud;
    o.n_audiences = 1;
    o.issuer = ISS;
    ls_rc rc = ls_jwks_parse(&ks, a->jwks, strlen(a->jwks), &err);
    if (rc == LS_OK) rc = ls_jwks_add_pem(ks, a->pem, strlen(a->pem), "pem", LS_JWT_ALG_ANY, &err);
    if (rc == LS_OK) rc = ls_jwks_add_secret(ks, F.h64, 64, "secret", LS_JWT_HS512, &err);
    if (rc == LS_OK) rc = ls_jwt_verify(&t, ks, a->small, strlen(a->small), &o, NULL, &err);
    if (rc == LS_OK) rc = ls_jwt_claims_json(t, &out, &err);
    ls_jwt_free(t);
    t = NULL;
    if (rc == LS_OK) rc = ls_jwt_verify(&t, ks, a->large, strlen(a->large), &o, NULL, &err);
    ls_jwt_free(t);
    t = NULL;
    if (rc == LS_OK)
        rc = ls_jws_verify(ks, a->payload_token, strlen(a->payload_token), &o, &out, NULL, &err);
    ls_jwt_cache_opts co = {2, 0};
    if (rc == LS_OK) rc = ls_jwt_cache_new(&c, &co, &o, &err);
    if (rc == LS_OK) rc = ls_jwt_cache_verify(c, ks, a->small, strlen(a->small), &t, NULL, &err);
    if (rc == LS_OK) rc = ls_jwt_cache_verify(c, ks, a->small, strlen(a->small), &t2, NULL, &err);
    if (rc == LS_OK) rc = ls_jwt_cache_verify(c, ks, a->large, strlen(a->large), &t3, NULL, &err);
    ls_jwt_free(t);
    ls_jwt_free(t2);
    ls_jwt_free(t3);
    ls_jwt_cache_free(c);
    ls_buf_free(&out);
    ls_jwks_free(ks);
    return rc;
}

static void test_jwt_reports_enomem(void **state)
{
    (void)state;
    ls_buf jwks = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&jwks, &err, "{\"keys\":[");
    put_jwk(&jwks, F.rsa1, "rsa1", "RS256");
    ls_buf_putc(&jwks, ',', &err);
    put_jwk(&jwks, F.ec256, "ec256", NULL);
    ls_buf_printf(&jwks, &err, ",{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"");
    put_b64u(&jwks, F.h64, 48);
    ls_buf_printf(&jwks, &err, "\"}]}");
    char *pem = pem_of(F.ed1);
    char *small = tok("ES256", "ec256", F.ec256, CLAIMS);
    char big[3000];
    snprintf(big, sizeof big,
             "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"orders\",\"exp\":1700000600,"
             "\"pad\":\"%02000d\"}",
             0);
    char *large = tok("RS256", "rsa1", F.rsa1, big); /* decodes past the stack scratch */
    char *payload_token = tok("EdDSA", "pem", F.ed1, "not json");
    struct alloc_case a = {(char *)jwks.ptr, pem, small, large, payload_token, {0}};
    ls_manual_clock mc;
    a.o = opts_at(&mc, NOW);
    long points = th_each_alloc_failure(alloc_run, &a);
    assert_true(points >= 20);
    free(pem);
    free(small);
    free(large);
    free(payload_token);
    ls_buf_free(&jwks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_rfc7515_a1_hs256_verifies),
        cmocka_unit_test(test_jwt_rfc7515_a2_rs256_verifies),
        cmocka_unit_test(test_jwt_rfc7515_a3_es256_verifies),
        cmocka_unit_test(test_jwt_rfc7515_a4_es512_verifies),
        cmocka_unit_test(test_jwt_rfc7515_a5_unsecured_rejected_as_alg_none),
        cmocka_unit_test(test_jwt_rfc8037_a4_ed25519_verifies),
        cmocka_unit_test(test_jwt_rfc8037_ed25519_alg_name_verifies),
        cmocka_unit_test(test_jwt_rfc_keys_from_pem_match_jwk),
        cmocka_unit_test(test_jwt_round_trip_every_algorithm),
        cmocka_unit_test(test_jwt_ps_requires_salt_of_hash_length),
        cmocka_unit_test(test_jwt_es_signature_length_is_exact),
        cmocka_unit_test(test_jwt_attack_alg_none_in_any_case),
        cmocka_unit_test(test_jwt_attack_alg_not_in_allow_list),
        cmocka_unit_test(test_jwt_attack_rsa_public_key_as_hmac_secret),
        cmocka_unit_test(test_jwt_attack_ec_public_key_as_hmac_secret),
        cmocka_unit_test(test_jwt_attack_unknown_crit_rejected),
        cmocka_unit_test(test_jwt_attack_invalid_crit_is_malformed),
        cmocka_unit_test(test_jwt_attack_non_strict_base64url),
        cmocka_unit_test(test_jwt_attack_non_json_header_or_payload),
        cmocka_unit_test(test_jwt_attack_oversized_token_rejected_before_decoding),
        cmocka_unit_test(test_jwt_attack_wrong_segment_count),
        cmocka_unit_test(test_jwt_attack_embedded_jwk_not_trusted),
        cmocka_unit_test(test_jwt_attack_no_kid_needs_exactly_one_candidate),
        cmocka_unit_test(test_jwt_attack_unknown_kid),
        cmocka_unit_test(test_jwt_attack_nul_in_sub_or_kid),
        cmocka_unit_test(test_jwt_key_decides_its_algorithms),
        cmocka_unit_test(test_jwt_typ_check_is_optional),
        cmocka_unit_test(test_jwt_claims_exp_boundaries),
        cmocka_unit_test(test_jwt_claims_nbf_boundaries),
        cmocka_unit_test(test_jwt_claims_iat_in_future),
        cmocka_unit_test(test_jwt_claims_exp_required_unless_allowed),
        cmocka_unit_test(test_jwt_claims_must_have_their_types),
        cmocka_unit_test(test_jwt_claims_issuer_exact),
        cmocka_unit_test(test_jwt_claims_audience_string_or_array),
        cmocka_unit_test(test_jwt_claims_required_names),
        cmocka_unit_test(test_jwt_claims_roles_path_and_scope),
        cmocka_unit_test(test_jwt_handle_accessors),
        cmocka_unit_test(test_jwt_options_are_checked),
        cmocka_unit_test(test_jwt_alg_and_reason_names),
        cmocka_unit_test(test_jwt_json_reader_agrees_with_ls_json_parse),
        cmocka_unit_test(test_jwt_claims_with_escapes_and_unicode),
        cmocka_unit_test(test_jwt_jwks_errors_name_key_and_field),
        cmocka_unit_test(test_jwt_jwks_skips_keys_it_cannot_use),
        cmocka_unit_test(test_jwt_jwks_bad_key_skipped_not_fatal),
        cmocka_unit_test(test_jwt_jwks_load_file),
        cmocka_unit_test(test_jwt_pem_public_keys),
        cmocka_unit_test(test_jwt_hmac_secrets),
        cmocka_unit_test(test_jwt_jwks_fingerprint_tracks_content),
        cmocka_unit_test(test_jwt_cache_hit_skips_verification),
        cmocka_unit_test(test_jwt_cache_compares_whole_token),
        cmocka_unit_test(test_jwt_cache_entries_expire),
        cmocka_unit_test(test_jwt_cache_evicts_least_recently_used),
        cmocka_unit_test(test_jwt_cache_key_rotation_invalidates),
        cmocka_unit_test(test_jwt_cache_options_are_checked),
        cmocka_unit_test(test_jwt_cache_copies_its_options),
        cmocka_unit_test(test_jwt_reports_enomem),
    };
    return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}

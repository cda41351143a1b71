/* SPDX-License-Identifier: MIT
 * JWT verification cost: ns per verification (median over rounds) for
 * HS256, RS256 (2048), ES256 and EdDSA without a cache, a cache hit, and a
 * bare OpenSSL EVP_DigestVerify of the same RS256 signing input with the
 * same public key, measured alternately in the same run; prints the ratio
 * RS256 / bare verify. Keys are generated here by OpenSSL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench.h"
#include "bench_jose.h"
#include "lodestone/ls_base64.h"
#include "lodestone/ls_jwt.h"

#define ROUNDS 9

/* ---- timed loops: each returns ns per operation for one round ---- */

static double time_verify(const ls_jwks_t *ks, const char *token, const ls_jwt_opts *o, int n)
{
    size_t len = strlen(token);
    ls_err err;
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        ls_jwt_t *t;
        if (ls_jwt_verify(&t, ks, token, len, o, NULL, &err) != LS_OK) bench_die("verify", err.msg);
        ls_jwt_free(t);
    }
    return (double)(bench_now_ns() - t0) / n;
}

static double time_cache_hit(ls_jwt_cache_t *c, const ls_jwks_t *ks, const char *token, int n)
{
    size_t len = strlen(token);
    ls_err err;
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        ls_jwt_t *t;
        if (ls_jwt_cache_verify(c, ks, token, len, &t, NULL, &err) != LS_OK)
            bench_die("cache", err.msg);
        ls_jwt_free(t);
    }
    return (double)(bench_now_ns() - t0) / n;
}

/* The baseline: what any RS256 verifier must do at least. */
static double time_bare(EVP_PKEY *pub, EVP_MD *md, const unsigned char *msg, size_t mlen,
                        const unsigned char *sig, size_t slen, int n)
{
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        if (m == NULL || EVP_DigestVerifyInit(m, NULL, md, NULL, pub) != 1 ||
            EVP_DigestVerify(m, sig, slen, msg, mlen) != 1)
            bench_die("bare verify", "failed");
        EVP_MD_CTX_free(m);
    }
    return (double)(bench_now_ns() - t0) / n;
}

static double median(double *v)
{
    return bench_median_d(v, ROUNDS);
}

int main(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa || !ec || !ed) bench_die("keygen", "failed");
    unsigned char secret[32];
    for (size_t i = 0; i < sizeof secret; i++) secret[i] = (unsigned char)(i * 7 + 1);

    ls_buf jwks = LS_BUF_INIT;
    make_jwks(&jwks, rsa, ec, ed, secret, sizeof secret);
    ls_jwks_t *ks;
    ls_err err;
    if (ls_jwks_parse(&ks, (char *)jwks.ptr, jwks.len, &err) != LS_OK) bench_die("jwks", err.msg);

    char payload[512];
    long long now = (long long)time(NULL);
    snprintf(
        payload, sizeof payload,
        "{\"iss\":\"https://id.example.com/\",\"sub\":\"8f2d1c9e-5b1a-4c53-9a65-0d6f3e2b7a10\","
        "\"aud\":[\"orders\",\"account\"],\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld,"
        "\"scope\":\"openid profile orders:read orders:write\","
        "\"realm_access\":{\"roles\":[\"user\",\"admin\"]},\"tenant\":\"acme\"}",
        now + 86400, now - 10, now - 10);
    char *hs = sign_token("HS256", "hs", NULL, secret, sizeof secret, payload);
    char *rs = sign_token("RS256", "rsa", rsa, NULL, 0, payload);
    char *es = sign_token("ES256", "ec", ec, NULL, 0, payload);
    char *eddsa = sign_token("EdDSA", "ed", ed, NULL, 0, payload);

    const char *aud[] = {"orders"};
    ls_jwt_opts o = {0};
    o.algs = LS_JWT_ALG_BIT(LS_JWT_HS256) | LS_JWT_ALG_BIT(LS_JWT_RS256) |
             LS_JWT_ALG_BIT(LS_JWT_ES256) | LS_JWT_ALG_BIT(LS_JWT_EDDSA);
    o.issuer = "https://id.example.com/";
    o.audiences = aud;
    o.n_audiences = 1;
    o.leeway_s = 30;

    /* Baseline inputs: the same signing input, signature and public key. */
    const char *dot = strrchr(rs, '.');
    ls_buf sig = LS_BUF_INIT;
    if (ls_base64url_decode(dot + 1, strlen(dot + 1), &sig, &err) != LS_OK)
        bench_die("sig", err.msg);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(rsa, &der);
    const unsigned char *dp = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &dp, der_len);
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pub == NULL || sha256 == NULL) bench_die("baseline", "key");

    ls_jwt_cache_t *cache;
    ls_jwt_cache_opts co = {1024, 300};
    if (ls_jwt_cache_new(&cache, &co, &o, &err) != LS_OK) bench_die("cache", err.msg);
    time_cache_hit(cache, ks, rs, 1); /* the one miss: verify and insert */

    double r_hs[ROUNDS], r_rs[ROUNDS], r_es[ROUNDS], r_ed[ROUNDS], r_hit[ROUNDS], r_bare[ROUNDS];
    double ratio[ROUNDS];
    /* Warm up. */
    time_bare(pub, sha256, (const unsigned char *)rs, (size_t)(dot - rs), sig.ptr, sig.len, 200);
    time_verify(ks, rs, &o, 200);
    for (int r = 0; r < ROUNDS; r++) {
        r_bare[r] = time_bare(pub, sha256, (const unsigned char *)rs, (size_t)(dot - rs), sig.ptr,
                              sig.len, 2000);
        r_rs[r] = time_verify(ks, rs, &o, 2000);
        ratio[r] = r_rs[r] / r_bare[r];
        r_hs[r] = time_verify(ks, hs, &o, 20000);
        r_es[r] = time_verify(ks, es, &o, 2000);
        r_ed[r] = time_verify(ks, eddsa, &o, 2000);
        r_hit[r] = time_cache_hit(cache, ks, rs, 200000);
    }
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(cache, &st);

    printf("jwt verification, %d rounds (medians), token %zu bytes (RS256), claims checked: "
           "exp nbf iat iss aud\n",
           ROUNDS, strlen(rs));
    printf("  %-34s %10.0f ns/op\n", "HS256 cold (no cache)", median(r_hs));
    printf("  %-34s %10.0f ns/op\n", "RS256-2048 cold (no cache)", median(r_rs));
    printf("  %-34s %10.0f ns/op\n", "ES256 cold (no cache)", median(r_es));
    printf("  %-34s %10.0f ns/op\n", "EdDSA cold (no cache)", median(r_ed));
    printf("  %-34s %10.0f ns/op\n", "cache hit (RS256 token)", median(r_hit));
    printf("  %-34s %10.0f ns/op\n", "bare OpenSSL EVP_DigestVerify", median(r_bare));
    printf("  ratio RS256 cold / bare verify: %.3f (median of per-round ratios; target <= 1.3)\n",
           median(ratio));
    printf("  cache: %llu hits, %llu misses\n", (unsigned long long)st.hits,
           (unsigned long long)st.misses);

    ls_jwt_cache_free(cache);
    EVP_MD_free(sha256);
    EVP_PKEY_free(pub);
    OPENSSL_free(der);
    ls_buf_free(&sig);
    free(hs);
    free(rs);
    free(es);
    free(eddsa);
    ls_jwks_free(ks);
    ls_buf_free(&jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    return 0;
}

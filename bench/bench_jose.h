/* SPDX-License-Identifier: MIT
 * JOSE helpers shared by the benchmarks: base64url, key parameters as JWK
 * members, and signing tokens with OpenSSL (benchmarks only: the library
 * verifies, it never signs). */
#ifndef LS_BENCH_JOSE_H
#define LS_BENCH_JOSE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "bench.h"
#include "lodestone/ls_base64.h"
#include "lodestone/ls_buf.h"

static void b64u(ls_buf *b, const void *p, size_t n)
{
    ls_err err;
    if (ls_base64url_encode(p, n, b, &err) != LS_OK) bench_die("base64url", err.msg);
}

static void put_bn(ls_buf *b, const EVP_PKEY *pk, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char raw[512];
    if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1) bench_die("key", name);
    int n = pad ? BN_bn2binpad(bn, raw, pad) : BN_bn2bin(bn, raw);
    b64u(b, raw, (size_t)n);
    BN_free(bn);
}

/* header.payload.signature for alg with key pk (or the HMAC secret of slen
 * bytes); kid
 * may be NULL. Caller frees. */
static char *sign_token(const char *alg, const char *kid, EVP_PKEY *pk, const void *secret,
                        size_t slen, const char *payload)
{
    ls_buf t = LS_BUF_INIT;
    ls_err err;
    char header[128];
    if (kid)
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 kid);
    else
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    b64u(&t, header, strlen(header));
    ls_buf_putc(&t, '.', &err);
    b64u(&t, payload, strlen(payload));
    unsigned char sig[512];
    size_t n = sizeof sig;
    if (alg[0] == 'H') {
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, slen, t.ptr, t.len, sig, n, &n))
            bench_die("sign", alg);
    } else {
        int ed = alg[0] == 'E' && alg[1] == 'd';
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        if (EVP_DigestSignInit_ex(m, NULL, ed ? NULL : "SHA256", NULL, NULL, pk, NULL) != 1 ||
            EVP_DigestSign(m, sig, &n, t.ptr, t.len) != 1)
            bench_die("sign", alg);
        EVP_MD_CTX_free(m);
        if (alg[0] == 'E' && !ed) { /* DER to R||S */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            n = 64;
        }
    }
    ls_buf_putc(&t, '.', &err);
    b64u(&t, sig, n);
    char *s = strdup((char *)t.ptr);
    ls_buf_free(&t);
    return s;
}

/* A JWKS with the public keys, kids "rsa", "ec" and "ed", and, when secret
 * is not NULL, an HMAC key of slen bytes with kid "hs". */
static void make_jwks(ls_buf *b, EVP_PKEY *rsa, EVP_PKEY *ec, EVP_PKEY *ed,
                      const unsigned char *secret, size_t slen)
{
    ls_err err;
    ls_buf_printf(b, &err, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa\",\"n\":\"");
    put_bn(b, rsa, OSSL_PKEY_PARAM_RSA_N, 0);
    ls_buf_printf(b, &err, "\",\"e\":\"");
    put_bn(b, rsa, OSSL_PKEY_PARAM_RSA_E, 0);
    ls_buf_printf(b, &err, "\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"x\":\"");
    put_bn(b, ec, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    ls_buf_printf(b, &err, "\",\"y\":\"");
    put_bn(b, ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    unsigned char raw[32];
    size_t n = sizeof raw;
    EVP_PKEY_get_raw_public_key(ed, raw, &n);
    ls_buf_printf(b, &err, "\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"");
    b64u(b, raw, n);
    if (secret) {
        ls_buf_printf(b, &err, "\"},{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"");
        b64u(b, secret, slen);
    }
    ls_buf_printf(b, &err, "\"}]}");
}

#endif

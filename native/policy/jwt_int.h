/* SPDX-License-Identifier: MIT
 * Internal declarations shared by jwt.c, jwk.c, jws_crypto.c and
 * jwt_cache.c, and by the policy engine (claims of a verified token).
 * OpenSSL types stay behind void pointers: only jws_crypto.c includes
 * OpenSSL headers. */
#ifndef LS_JWT_INT_H
#define LS_JWT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_json.h"
#include "lodestone/ls_jwt.h"

/* Bytes of a key fingerprint (keyed BLAKE2b). */
#define LS_JWK_FPBYTES 16u

/* Curves. */
enum { LS_CRV_NONE = 0, LS_CRV_P256, LS_CRV_P384, LS_CRV_P521, LS_CRV_ED25519 };

/* Digests, as indexes into ls_jwks.md. */
enum { LS_MD_SHA256 = 0, LS_MD_SHA384, LS_MD_SHA512, LS_MD_COUNT };

/* One key of a keyset, ready to verify: nothing is parsed at verify time. */
typedef struct {
    ls_jwk_type type;
    int crv;        /* LS_CRV_*; LS_CRV_NONE for RSA and oct */
    ls_jwt_alg alg; /* restriction, or LS_JWT_ALG_ANY */
    char *kid;      /* NUL-terminated copy, or NULL */
    size_t kid_len;
    size_t bits;            /* RSA modulus, curve, or HMAC key bits */
    size_t sig_len;         /* exact signature length (RSA, EC, OKP) */
    void *pkey;             /* EVP_PKEY * for RSA and EC */
    void *mac[LS_MD_COUNT]; /* EVP_MAC_CTX * keyed templates for oct */
    unsigned char okp[32];  /* Ed25519 public key */
    unsigned char fp[LS_JWK_FPBYTES];
} ls_jwk;

/* A key of a JWK Set that was skipped, and why. */
typedef struct {
    size_t index;  /* in its set's "keys" array */
    char *kid;     /* NUL-terminated copy, or NULL */
    char *why;     /* "n: RSA modulus of 1024 bits is too small (at least 2048)" */
    int other_use; /* the key says it is not for verifying signatures */
    int field;     /* why starts with a member's name ("keys[i].n: ...") */
} ls_jwk_skip;

struct ls_jwks {
    ls_jwk *keys;
    size_t n, cap;
    size_t skipped;          /* keys skipped */
    size_t skipped_unusable; /* of them, those not for another use */
    ls_jwk_skip *skips;      /* the first LS_JWKS_SKIPS_KEPT skipped, or NULL */
    size_t n_skips;
    uint64_t serial;       /* unique per keyset; keys are only ever added */
    void *md[LS_MD_COUNT]; /* EVP_MD * fetched once per keyset */
};

struct ls_jwt {
    int refs; /* handles share one token: cache and callers */
    json_t *header;
    json_t *claims;
    ls_jwt_alg alg;
    const char *kid; /* borrowed from header */
    const char *sub; /* borrowed from claims */
    double exp;      /* seconds; valid when has_exp */
    int has_exp;
    unsigned char key_fp[LS_JWK_FPBYTES]; /* the key that verified it */
    void *memo;                           /* what a user derived from it, freed with it */
    void (*memo_free)(void *memo);
};

/* ---- for the policy engine ---- */

/* What a user of verified tokens derived from one (the policy engine keeps
 * the caller's identity there), so that a cache hit need not derive it
 * again. Tokens of one cache belong to one thread, so no locking. The memo
 * is freed with memo_free when the last handle goes. */
void *ls_jwt_memo(const ls_jwt_t *t);
void ls_jwt_set_memo(ls_jwt_t *t, void *memo, void (*memo_free)(void *memo));

/* The claims object of a verified token. Borrowed until ls_jwt_free. */
json_t *ls_jwt_claims(const ls_jwt_t *t);

/* The protected header object. Borrowed until ls_jwt_free. */
json_t *ls_jwt_header(const ls_jwt_t *t);

/* ---- jwt.c ---- */

/* Strict JSON reader for token segments, equivalent to ls_json_parse but
 * several times faster; decodes strings in place, so text is modified.
 * Nesting is limited to 32 levels and numbers to 127 characters. */
ls_rc ls_jwt_parse_json(unsigned char *text, size_t len, json_t **out, ls_err *err);

/* Checks opts for configuration errors (LS_EINVAL). */
ls_rc ls_jwt_opts_check(const ls_jwt_opts *o, ls_err *err);

/* Deep copy of opts into *dst; its strings live in *mem. Caller frees *mem
 * with ls_free. */
ls_rc ls_jwt_opts_copy(ls_jwt_opts *dst, void **mem, const ls_jwt_opts *src, ls_err *err);

/* Adds a reference to t and returns it. */
ls_jwt_t *ls_jwt_ref(ls_jwt_t *t);

/* The digest an algorithm uses (LS_MD_*), its key family, and the curve an
 * ES or EdDSA algorithm needs (LS_CRV_NONE for others). */
int ls_jwt_alg_md(ls_jwt_alg alg);
ls_jwk_type ls_jwt_alg_type(ls_jwt_alg alg);
int ls_jwt_alg_curve(ls_jwt_alg alg);

/* 1 when a and b are the same algorithm (EdDSA and Ed25519 are). */
int ls_jwt_alg_same(ls_jwt_alg a, ls_jwt_alg b);

/* ---- jwk.c ---- */

/* 1 when key k may verify alg (family, curve, restriction, HMAC length). */
int ls_jwk_can_verify(const ls_jwk *k, ls_jwt_alg alg);

/* "an RSA key", "an EC P-256 key"...: for messages. Static. */
const char *ls_jwk_desc(const ls_jwk *k);

/* 1 when a key with this fingerprint is in ks. */
int ls_jwks_has_fp(const ls_jwks_t *ks, const unsigned char fp[LS_JWK_FPBYTES]);

/* ---- jws_crypto.c (the only file with OpenSSL) ---- */

/* Fetches and releases the digests of a keyset. */
ls_rc ls_jws_crypto_init(ls_jwks_t *ks, ls_err *err);
void ls_jws_crypto_fini(ls_jwks_t *ks);

/* Build k's verifier from public parameters (big-endian bytes). On failure
 * k holds nothing to release. */
ls_rc ls_jws_key_rsa(ls_jwk *k, const unsigned char *n, size_t nlen, const unsigned char *e,
                     size_t elen, ls_err *err);
ls_rc ls_jws_key_ec(ls_jwk *k, const unsigned char *x, const unsigned char *y, size_t len,
                    ls_err *err);
ls_rc ls_jws_key_okp(ls_jwk *k, const unsigned char *x, size_t len, ls_err *err);
ls_rc ls_jws_key_oct(ls_jwk *k, const unsigned char *secret, size_t len, ls_err *err);
void ls_jws_key_release(ls_jwk *k);

/* Public parameters of a PEM public key, as JWK members would give them:
 * RSA (a = n, b = e), EC (a = x, b = y, padded to the field), OKP (a = x).
 * a and b are appended to. */
typedef struct {
    ls_jwk_type type;
    int crv;
    ls_buf a, b;
} ls_jwk_params;

ls_rc ls_jws_pem_params(const char *pem, size_t len, ls_jwk_params *p, ls_err *err);

/* Verifies sig over msg with key k for alg (already checked with
 * ls_jwk_can_verify). Returns 1 valid, 0 invalid, -1 out of memory. */
int ls_jws_verify_sig(const ls_jwks_t *ks, const ls_jwk *k, ls_jwt_alg alg,
                      const unsigned char *msg, size_t mlen, const unsigned char *sig, size_t slen);

/* ---- jwt_cache.c, for tests ---- */

/* Replaces the cache's token hash (NULL restores keyed BLAKE2b), so that a
 * test can force collisions. */
void ls_jwt_cache_set_hash_for_test(ls_jwt_cache_t *c,
                                    uint64_t (*fn)(const char *token, size_t len));

#endif

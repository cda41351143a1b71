/* SPDX-License-Identifier: MIT
 * JWT/JWS verification (RFC 7515, 7518, 7519, 8037, 9864), keysets from
 * JWKS and PEM, and a verified-token cache, in pure C without blocking I/O
 * on the verification path. Follows RFC 8725: the key decides which
 * algorithms it can verify, "none" is never accepted, an allow-list is
 * required, unknown "crit" is rejected, base64url and JSON are strict, and
 * "jku", "x5u", "jwk" and "x5c" in a token are never used to find keys.
 *
 * Conventions: see ls_err.h. A token that fails verification gives LS_EAUTH
 * and a reason (ls_jwt_reason) whose stable name starts the message in err
 * ("expired: ..."); a bad configuration gives LS_EINVAL.
 *
 * Threads: a keyset may be used by several threads at once for verifying
 * once it is built; adding keys needs exclusive access. A cache is for one
 * thread (mod_magnet runs one Lua state per thread: give each its own
 * cache), and a token handle returned by a cache must be freed on the
 * cache's thread.
 */
#ifndef LODESTONE_JWT_H
#define LODESTONE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- algorithms ---- */

/* JWS algorithms this library verifies. "EdDSA" (RFC 8037) and "Ed25519"
 * (RFC 9864) name the same algorithm here (only the Ed25519 curve is
 * supported): allowing either allows both, and a key restricted to either
 * verifies both. */
typedef enum {
    LS_JWT_ALG_ANY = 0, /* "no restriction" where an algorithm is optional */
    LS_JWT_HS256,
    LS_JWT_HS384,
    LS_JWT_HS512,
    LS_JWT_RS256,
    LS_JWT_RS384,
    LS_JWT_RS512,
    LS_JWT_PS256,
    LS_JWT_PS384,
    LS_JWT_PS512,
    LS_JWT_ES256,
    LS_JWT_ES384,
    LS_JWT_ES512,
    LS_JWT_EDDSA,
    LS_JWT_ED25519,
    LS_JWT_ALG_END /* one past the last */
} ls_jwt_alg;

/* Allow-lists are bit sets of algorithms. */
#define LS_JWT_ALG_BIT(alg) (UINT32_C(1) << (unsigned)(alg))

/* Name of alg as it appears in a JOSE header ("RS256"), or "" for
 * LS_JWT_ALG_ANY and unknown values. Static, never NULL. */
LS_API const char *ls_jwt_alg_name(ls_jwt_alg alg);

/* Parses one algorithm name (case-sensitive, as in JOSE). LS_EINVAL for
 * unknown names and for "none" in any case. */
LS_API ls_rc ls_jwt_alg_parse(const char *name, size_t len, ls_jwt_alg *out, ls_err *err);

/* Parses a list of names separated by commas and/or spaces ("RS256,
 * EdDSA") into an allow-list; *mask receives the bits. LS_EINVAL for an
 * unknown name or an empty list. */
LS_API ls_rc ls_jwt_algs_parse(const char *list, uint32_t *mask, ls_err *err);

/* ---- keysets ---- */

typedef struct ls_jwks ls_jwks_t;

/* Key families. */
typedef enum { LS_JWK_RSA = 1, LS_JWK_EC, LS_JWK_OKP, LS_JWK_OCT } ls_jwk_type;

/* Size of ls_jwks_fingerprint's output. */
#define LS_JWKS_FPBYTES 32u

/* Creates an empty keyset. Caller frees with ls_jwks_free. */
LS_API ls_rc ls_jwks_new(ls_jwks_t **out, ls_err *err);

/* Frees a keyset and all its keys. ks may be NULL. Tokens verified with it
 * stay valid. */
LS_API void ls_jwks_free(ls_jwks_t *ks);

/* Adds the keys of a JWK Set ({"keys": [...]}, RFC 7517) given as len bytes
 * of JSON text. Supported: kty "RSA" (n, e; 2048 to 8192 bits), "EC" (crv
 * P-256, P-384, P-521; x, y), "OKP" (crv Ed25519; x) and "oct" (k, at least
 * 32 bytes). Optional members: "kid" (string), "alg" (restricts the key to
 * that algorithm; must fit the key), "use" (only "sig" keys are used),
 * "key_ops" (used only if it lists "verify"). Private members are ignored.
 * A key that cannot be used here is skipped, as RFC 7517 section 5 says:
 * one that is malformed (a missing or bad member, an RSA modulus outside
 * 2048 to 8192 bits, a point not on its curve), unsupported (other kty,
 * curves or algorithms) or for something else (use "enc", key_ops without
 * "verify"). Skipped keys are counted in ls_jwks_skipped, described by
 * ls_jwks_skipped_info and ls_jwks_skip_notice, and never verify anything:
 * a token whose kid names only a skipped key finds no key (unknown_kid).
 * Fails with LS_EINVAL and adds nothing when the text is not JSON, not an
 * object with a "keys" array, or lists keys none of which can be used (the
 * message says why for each, counting from 1: "keys[1].n: invalid
 * base64url: ... [kid \"a\"]; keys[2]: ..."); LS_ENOMEM. An empty "keys" array adds nothing and
 * succeeds. */
LS_API ls_rc ls_jwks_add_json(ls_jwks_t *ks, const char *text, size_t len, ls_err *err);

/* ls_jwks_new followed by ls_jwks_add_json. Caller frees with
 * ls_jwks_free; *out is untouched on failure. */
LS_API ls_rc ls_jwks_parse(ls_jwks_t **out, const char *text, size_t len, ls_err *err);

/* Reads a JWK Set file (at most 1 MiB) and parses it. Errors are prefixed
 * with the path; LS_ENOTFOUND when the file is absent, LS_EPERM when it is
 * not a regular file or group or others may write it (anyone could add a
 * key), LS_EIO when it cannot be read. Caller frees with ls_jwks_free. */
LS_API ls_rc ls_jwks_load_file(ls_jwks_t **out, const char *path, ls_err *err);

/* Adds the first PEM "PUBLIC KEY" (SubjectPublicKeyInfo: RSA, EC P-256/
 * P-384/P-521 or Ed25519) found in len bytes of text. kid may be NULL (no
 * kid); alg LS_JWT_ALG_ANY leaves the key unrestricted, otherwise it must
 * fit the key. The same key given as PEM or as JWK behaves the same. */
LS_API ls_rc ls_jwks_add_pem(ls_jwks_t *ks, const char *pem, size_t len, const char *kid,
                             ls_jwt_alg alg, ls_err *err);

/* Reads a PEM file (refused as ls_jwks_load_file refuses one) and adds its
 * key as ls_jwks_add_pem does. */
LS_API ls_rc ls_jwks_add_pem_file(ls_jwks_t *ks, const char *path, const char *kid, ls_jwt_alg alg,
                                  ls_err *err);

/* Adds an HMAC secret of len bytes (at least 32). It verifies HS256, and
 * HS384/HS512 only when at least 48/64 bytes long; alg restricts it further
 * (LS_JWT_ALG_ANY: no restriction). kid may be NULL. The secret is copied
 * into OpenSSL's HMAC state and not kept otherwise; the caller should wipe
 * its copy. */
LS_API ls_rc ls_jwks_add_secret(ls_jwks_t *ks, const void *secret, size_t len, const char *kid,
                                ls_jwt_alg alg, ls_err *err);

/* Number of usable keys, and of keys skipped as unusable. */
LS_API size_t ls_jwks_count(const ls_jwks_t *ks);
LS_API size_t ls_jwks_skipped(const ls_jwks_t *ks);

/* Skipped keys described: the first LS_JWKS_SKIPS_KEPT, in the order met. */
#define LS_JWKS_SKIPS_KEPT 16u

/* A key ls_jwks_add_json skipped. Strings: Borrowed until ls_jwks_free. */
typedef struct {
    size_t index;    /* its place in its set's "keys" array, from 0 (messages
                        count from 1: index 0 is "keys[1]") */
    const char *kid; /* its kid, or NULL when it has none that is a string */
    const char *why; /* "n: RSA modulus of 1024 bits is too small (at least 2048)" */
    int other_use;   /* 1 when the key says it is for something else than
                        verifying signatures (use "enc", key_ops, a JWE alg,
                        an ECDH curve); 0 when it could be meant for that and
                        is malformed or unsupported */
} ls_jwk_skipped;

/* Describes skipped key i (0 <= i < min(ls_jwks_skipped, LS_JWKS_SKIPS_KEPT)).
 * LS_ENOTFOUND past those. */
LS_API ls_rc ls_jwks_skipped_info(const ls_jwks_t *ks, size_t i, ls_jwk_skipped *info, ls_err *err);

/* For a log, once per load: when keys that could be meant for verifying
 * signatures were skipped (other_use 0), returns LS_EFORMAT with out saying
 * which and why ("JWK Set: 1 key skipped, not usable here (tokens naming it
 * are refused): keys[1].n: RSA modulus of 1024 bits is too small (at least
 * 2048) [kid \"old\"]"; beyond what fits, "and N more"). Otherwise LS_OK,
 * out untouched: keys for something else are not news. */
LS_API ls_rc ls_jwks_skip_notice(const ls_jwks_t *ks, ls_err *out);

/* What a key is, for listings and logs. Strings: Borrowed until
 * ls_jwks_free. */
typedef struct {
    ls_jwk_type type;
    const char *kid;   /* NULL when the key has none */
    const char *curve; /* "P-256", "P-384", "P-521", "Ed25519", or NULL */
    ls_jwt_alg alg;    /* restriction, or LS_JWT_ALG_ANY */
    size_t bits;       /* RSA modulus, curve size, or HMAC key bits */
} ls_jwk_info;

/* Describes key i (0 <= i < ls_jwks_count). LS_ENOTFOUND past the end. */
LS_API ls_rc ls_jwks_key_info(const ls_jwks_t *ks, size_t i, ls_jwk_info *info, ls_err *err);

/* 1 when some key has this kid (NUL-terminated), else 0. */
LS_API int ls_jwks_has_kid(const ls_jwks_t *ks, const char *kid);

/* A digest of every key's material, kid and alg, in order: equal sets give
 * equal fingerprints within one process (the digest is keyed per process,
 * so it reveals nothing about HMAC secrets). */
LS_API void ls_jwks_fingerprint(const ls_jwks_t *ks, unsigned char out[LS_JWKS_FPBYTES]);

/* ---- verification ---- */

/* Why a token was rejected. Names (ls_jwt_reason_name) are stable. */
typedef enum {
    LS_JWT_OK = 0,           /* "ok" */
    LS_JWT_ERROR,            /* "error": not a verdict (bad options, out of memory) */
    LS_JWT_MALFORMED,        /* "malformed": segments, base64url, JSON, header types */
    LS_JWT_TOO_LARGE,        /* "too_large": over max_token_len, checked before decoding */
    LS_JWT_ALG_NONE,         /* "alg_none": "none" in any case, never accepted */
    LS_JWT_ALG_NOT_ALLOWED,  /* "alg_not_allowed": unknown or not in the allow-list */
    LS_JWT_CRIT_UNSUPPORTED, /* "crit_unsupported": "crit" names extensions (none known) */
    LS_JWT_BAD_TYPE,         /* "bad_type": "typ" differs from the required one */
    LS_JWT_UNKNOWN_KID,      /* "unknown_kid": no key has the token's kid (refetch?) */
    LS_JWT_NO_KEY,           /* "no_key": no kid, and no key can verify the alg */
    LS_JWT_AMBIGUOUS_KEY,    /* "ambiguous_key": several keys could verify it */
    LS_JWT_KEY_ALG_MISMATCH, /* "key_alg_mismatch": the kid's key cannot do this alg */
    LS_JWT_BAD_SIGNATURE,    /* "bad_signature" */
    LS_JWT_EXPIRED,          /* "expired": now >= exp + leeway */
    LS_JWT_NOT_YET_VALID,    /* "not_yet_valid": now < nbf - leeway */
    LS_JWT_ISSUED_IN_FUTURE, /* "issued_in_future": iat > now + leeway */
    LS_JWT_BAD_ISSUER,       /* "bad_issuer": iss absent or different */
    LS_JWT_BAD_AUDIENCE,     /* "bad_audience": aud absent or no accepted value */
    LS_JWT_MISSING_CLAIM,    /* "missing_claim": exp or a required claim absent */
    LS_JWT_INVALID_CLAIM,    /* "invalid_claim": exp/nbf/iat not numeric, sub not a string */
    LS_JWT_REASON_END
} ls_jwt_reason;

/* Stable snake_case name of a reason ("unknown_kid"); never NULL. */
LS_API const char *ls_jwt_reason_name(ls_jwt_reason r);

#define LS_JWT_MAX_TOKEN_DEFAULT 8192u

/* Flags of ls_jwt_opts. */
#define LS_JWT_ALLOW_NO_EXP 0x1u /* accept tokens without "exp" */

/* What a verification demands. Zero-initialise and set algs at least. The
 * strings are borrowed for the duration of a call (a cache copies them);
 * a clock given to a cache must outlive the cache. */
typedef struct {
    uint32_t algs;                /* allow-list of LS_JWT_ALG_BIT()s; 0 is LS_EINVAL */
    const char *issuer;           /* "iss" must equal this when not NULL */
    const char *const *audiences; /* "aud" (string or array) must hold one of these */
    size_t n_audiences;           /* 0: aud not checked */
    const char *const *required;  /* claim names that must be present */
    size_t n_required;
    const char *typ;       /* when not NULL, header "typ" must match (case-insensitive,
                              "application/" prefix optional); off by default */
    int64_t leeway_s;      /* clock skew allowed for exp, nbf, iat; 0..86400 */
    size_t max_token_len;  /* 0: LS_JWT_MAX_TOKEN_DEFAULT */
    const ls_clock *clock; /* NULL: the system clock */
    unsigned flags;        /* LS_JWT_ALLOW_NO_EXP */
} ls_jwt_opts;

/* A verified token. */
typedef struct ls_jwt ls_jwt_t;

/* Verifies a compact JWS (len bytes of token, no surrounding whitespace)
 * with a key from keys, then its claims. On LS_OK *out is the verified
 * token. Caller frees with ls_jwt_free. On failure *out is NULL and *reason
 * (may be NULL) says why: LS_EAUTH for a rejected token, LS_EINVAL with
 * LS_JWT_ERROR for bad opts, LS_ENOMEM. */
LS_API ls_rc ls_jwt_verify(ls_jwt_t **out, const ls_jwks_t *keys, const char *token, size_t len,
                           const ls_jwt_opts *opts, ls_jwt_reason *reason, ls_err *err);

/* Verifies the signature of a compact JWS whose payload need not be JSON
 * (RFC 7515 A.4, RFC 8037 A.4): the header checks and key selection of
 * ls_jwt_verify, no claims checks. Uses algs, typ and max_token_len of
 * opts. On LS_OK replaces the contents of *payload with the decoded
 * payload. */
LS_API ls_rc ls_jws_verify(const ls_jwks_t *keys, const char *token, size_t len,
                           const ls_jwt_opts *opts, ls_buf *payload, ls_jwt_reason *reason,
                           ls_err *err);

/* Releases a token handle. t may be NULL. */
LS_API void ls_jwt_free(ls_jwt_t *t);

/* The algorithm that verified the token. */
LS_API ls_jwt_alg ls_jwt_get_alg(const ls_jwt_t *t);

/* "kid" of the header, or NULL. Borrowed until ls_jwt_free. */
LS_API const char *ls_jwt_kid(const ls_jwt_t *t);

/* "sub" claim, or NULL when absent. Borrowed until ls_jwt_free. */
LS_API const char *ls_jwt_subject(const ls_jwt_t *t);

/* "exp" claim in whole seconds since the epoch (rounded down), or 0 when
 * the token has none. */
LS_API int64_t ls_jwt_exp(const ls_jwt_t *t);

/* Replaces the contents of *out with the claims as compact JSON text
 * (keys sorted). */
LS_API ls_rc ls_jwt_claims_json(const ls_jwt_t *t, ls_buf *out, ls_err *err);

/* One string item of a claim; not NUL-terminated (items of a
 * space-separated claim point into it). Borrowed until ls_jwt_free. */
typedef struct {
    const char *ptr;
    size_t len;
} ls_jwt_str;

/* Called once per item; a non-zero return stops the walk. */
typedef int (*ls_jwt_str_fn)(void *ud, const char *s, size_t len);

/* Walks the string items of the claim at a dotted path through nested
 * objects ("realm_access.roles"): each string of an array (other elements
 * are skipped), or each space-separated word of a string ("scope").
 * LS_ENOTFOUND (err untouched) when the path is absent; LS_EINVAL when the
 * value is neither a string nor an array. */
LS_API ls_rc ls_jwt_claim_strings(const ls_jwt_t *t, const char *path, ls_jwt_str_fn fn, void *ud,
                                  ls_err *err);

/* Same items into a caller array: fills up to cap of them and sets *count
 * to how many there are (more than cap means some were left out). */
LS_API ls_rc ls_jwt_claim_strings_into(const ls_jwt_t *t, const char *path, ls_jwt_str *items,
                                       size_t cap, size_t *count, ls_err *err);

/* ---- verified-token cache ---- */

typedef struct ls_jwt_cache ls_jwt_cache_t;

typedef struct {
    size_t capacity; /* entries, 1..16777216 */
    int64_t ttl_s;   /* longest time an entry is trusted without re-verifying; 0: 300 */
} ls_jwt_cache_opts;

typedef struct {
    uint64_t hits, misses;  /* lookups answered from the cache, and not */
    uint64_t inserts;       /* tokens verified and stored */
    uint64_t evictions;     /* entries dropped to make room (least recently used) */
    uint64_t invalidations; /* entries dropped as expired or whose key left the set */
    size_t count;           /* entries held now */
} ls_jwt_cache_stats;

/* Creates a cache for tokens verified with vopts (copied). It holds at most
 * capacity tokens (each a copy of the token text and its claims) in a
 * table allocated here, with least-recently-used eviction. Entries are found
 * by a keyed hash (SipHash-2-4, random per-cache key) of the token's length
 * and signature end, and a hit compares the whole token, so no crafted
 * token can obtain another token's claims. Caller frees with
 * ls_jwt_cache_free. */
LS_API ls_rc ls_jwt_cache_new(ls_jwt_cache_t **out, const ls_jwt_cache_opts *copts,
                              const ls_jwt_opts *vopts, ls_err *err);

/* Frees the cache. c may be NULL. Handles it returned stay valid. */
LS_API void ls_jwt_cache_free(ls_jwt_cache_t *c);

/* Returns the cached verified token when this exact token is held, is not
 * past min(exp + leeway, time inserted + ttl), and the key that verified it
 * is still in keys (same material, kid and alg): LS_OK with *out, no
 * cryptography done. Caller frees with ls_jwt_free. Otherwise LS_ENOTFOUND,
 * err untouched; an entry found stale is dropped. */
LS_API ls_rc ls_jwt_cache_lookup(ls_jwt_cache_t *c, const ls_jwks_t *keys, const char *token,
                                 size_t len, ls_jwt_t **out, ls_err *err);

/* Lookup, or on a miss ls_jwt_verify with the cache's options and, when it
 * succeeds, insert. Results as ls_jwt_verify; a failure is not cached.
 * Caller frees *out with ls_jwt_free. */
LS_API ls_rc ls_jwt_cache_verify(ls_jwt_cache_t *c, const ls_jwks_t *keys, const char *token,
                                 size_t len, ls_jwt_t **out, ls_jwt_reason *reason, ls_err *err);

/* Drops every entry. */
LS_API void ls_jwt_cache_clear(ls_jwt_cache_t *c);

/* Counters since creation. */
LS_API void ls_jwt_cache_get_stats(const ls_jwt_cache_t *c, ls_jwt_cache_stats *stats);

#ifdef __cplusplus
}
#endif
#endif

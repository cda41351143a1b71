/* SPDX-License-Identifier: MIT
 * HMAC-SHA256 and webhook signature verification: GitHub
 * (X-Hub-Signature-256), Stripe (Stripe-Signature, with a timestamp
 * tolerance) and a generic "HMAC of the body in a header" scheme, plus the
 * primitive behind Lua's lodestone.hmac.verify. Pure computation: no I/O, no
 * allocation, safe to call from any number of threads.
 *
 * Conventions: see ls_err.h. A signature that does not verify gives
 * LS_EAUTH, a reason (ls_hmac_reason) and a message in err that starts with
 * the reason's stable name ("bad_signature: ..."); a bad argument (NULL
 * pointer with a non-zero length, empty secret, bad option) gives LS_EINVAL.
 *
 * Decisions that hold for every function here:
 *  - MACs are compared in constant time (sodium_memcmp) over the full 32
 *    bytes; shorter (truncated) signatures are never accepted.
 *  - Hex signatures may use lower- or upper-case digits (the decoded bytes
 *    are what is compared, so this widens nothing); they must be exactly 64
 *    digits.
 *  - Header values may carry leading and trailing spaces or tabs (HTTP
 *    optional whitespace); they are ignored. A NULL header is
 *    "missing_header"; an empty one is "malformed_header".
 *  - Secrets are bytes, used as-is as the HMAC key (a Stripe "whsec_..."
 *    secret is passed whole, prefix included, as Stripe's libraries do). An
 *    empty secret is refused (LS_EINVAL): it is always a configuration
 *    mistake, and anyone could sign with it.
 */
#ifndef LODESTONE_HMAC_H
#define LODESTONE_HMAC_H

#include <stddef.h>
#include <stdint.h>

#include "ls_clock.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size of an HMAC-SHA256 output. */
#define LS_HMAC_SHA256_BYTES 32u
LS_API size_t ls_hmac_sha256_bytes(void);

/* Default Stripe timestamp tolerance in seconds (Stripe's own default). */
#define LS_HMAC_STRIPE_TOLERANCE_DEFAULT 300

/* Why a webhook signature was refused. Values are stable; new ones are only
 * appended. */
typedef enum {
    LS_HMAC_OK = 0,
    LS_HMAC_MISSING_HEADER,            /* no signature header */
    LS_HMAC_MALFORMED_HEADER,          /* header present but not parseable */
    LS_HMAC_BAD_SIGNATURE,             /* well-formed, but no signature matches */
    LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE /* signature matches, timestamp too old or too new */
} ls_hmac_reason;

/* Stable snake_case name of a reason for audit logs: "ok",
 * "missing_header", "malformed_header", "bad_signature",
 * "timestamp_out_of_tolerance"; "unknown" for other values. Static, never
 * NULL. */
LS_API const char *ls_hmac_reason_name(ls_hmac_reason reason);

/* How a signature is written in a header. */
typedef enum {
    LS_HMAC_HEX = 0,  /* 64 hex digits, either case */
    LS_HMAC_BASE64,   /* RFC 4648 section 4, padded: 44 characters */
    LS_HMAC_BASE64URL /* RFC 4648 section 5, unpadded: 43 characters */
} ls_hmac_encoding;

/* ---- primitive ---- */

/* HMAC-SHA256 (RFC 2104) of mlen bytes of msg under klen bytes of key (any
 * length, including 0) into out. key and msg may be NULL when their length
 * is 0. Cannot fail. */
LS_API void ls_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                           unsigned char out[LS_HMAC_SHA256_BYTES]);

/* Verifies that siglen bytes of sig, in encoding enc, are the HMAC-SHA256
 * of msg under key. Returns LS_OK, LS_EAUTH (wrong or malformed signature;
 * err says which) or LS_EINVAL (empty key, NULL pointer with a length,
 * unknown encoding). */
LS_API ls_rc ls_hmac_verify(const void *key, size_t klen, const void *msg, size_t mlen,
                            const char *sig, size_t siglen, ls_hmac_encoding enc, ls_err *err);

/* ls_hmac_verify with LS_HMAC_HEX and LS_HMAC_BASE64. */
LS_API ls_rc ls_hmac_verify_hex(const void *key, size_t klen, const void *msg, size_t mlen,
                                const char *sig, size_t siglen, ls_err *err);
LS_API ls_rc ls_hmac_verify_b64(const void *key, size_t klen, const void *msg, size_t mlen,
                                const char *sig, size_t siglen, ls_err *err);

/* ---- webhook signatures ----
 * Each takes the signature header's value (header, hlen; header NULL when
 * the request has no such header), the raw request body exactly as received
 * (body may be NULL when blen is 0) and the secret. Returns LS_OK, LS_EAUTH
 * with *reason set (reason may be NULL), or LS_EINVAL for bad arguments (then
 * *reason is left untouched). On LS_OK *reason is LS_HMAC_OK. */

/* Generic scheme: the header holds HMAC-SHA256(secret, msg_prefix || body),
 * optionally after a fixed sig_prefix such as "sha256=" (compared exactly,
 * case-sensitive). */
typedef struct {
    ls_hmac_encoding encoding; /* default (0): LS_HMAC_HEX */
    const char *sig_prefix;    /* NUL-terminated text before the signature; NULL: none */
    const void *msg_prefix;    /* bytes MAC'd before the body; NULL: none */
    size_t msg_prefix_len;
} ls_hmac_generic_opts;

/* opts may be NULL (hex, no prefixes). */
LS_API ls_rc ls_hmac_verify_generic(const void *secret, size_t slen,
                                    const ls_hmac_generic_opts *opts, const char *header,
                                    size_t hlen, const void *body, size_t blen,
                                    ls_hmac_reason *reason /* OUT, may be NULL */, ls_err *err);

/* GitHub: X-Hub-Signature-256 is "sha256=" followed by 64 hex digits of
 * HMAC-SHA256(secret, body). Same as ls_hmac_verify_generic with
 * sig_prefix "sha256=" and hex. */
LS_API ls_rc ls_hmac_verify_github(const void *secret, size_t slen, const char *header, size_t hlen,
                                   const void *body, size_t blen,
                                   ls_hmac_reason *reason /* OUT, may be NULL */, ls_err *err);

/* Stripe: Stripe-Signature is a comma-separated list of key=value items,
 * "t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]"; each v1 is
 * HMAC-SHA256(secret, "<t>.<body>") with t exactly as sent. Grammar applied
 * here: items are separated by ',' and may have spaces or tabs around them;
 * each item is key=value with a non-empty key; exactly one "t", 1 to 18
 * decimal digits; at least one and at most 16 "v1", each 64 hex digits;
 * other keys (v0, future schemes) are ignored; at most 4096 bytes.
 * Anything else is malformed_header. Accepted when any v1 matches and
 * |now - t| <= tolerance (both directions, inclusive). The signature is
 * checked before the timestamp, so timestamp_out_of_tolerance means a
 * genuine but stale or early request (a replay, or a skewed clock). */
typedef struct {
    int64_t tolerance_s;   /* 0: LS_HMAC_STRIPE_TOLERANCE_DEFAULT; negative: LS_EINVAL */
    const ls_clock *clock; /* NULL: system clock */
} ls_hmac_stripe_opts;

/* opts may be NULL (defaults). */
LS_API ls_rc ls_hmac_verify_stripe(const void *secret, size_t slen, const ls_hmac_stripe_opts *opts,
                                   const char *header, size_t hlen, const void *body, size_t blen,
                                   ls_hmac_reason *reason /* OUT, may be NULL */, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT
 * HMAC-SHA256 (libsodium) and webhook signature checks: GitHub, Stripe and a
 * generic header scheme. Every comparison is constant time over the full
 * 32-byte MAC, the expected MAC is wiped on every path, and nothing here
 * allocates or calls sodium_init (HMAC-SHA256 needs no CPU dispatch). */
#include "ls_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "lodestone/ls_hmac.h"

#define MACBYTES      LS_HMAC_SHA256_BYTES
#define HEX_LEN       ((size_t)2 * MACBYTES)
#define B64_LEN       44 /* padded */
#define B64URL_LEN    43 /* unpadded */
#define STRIPE_MAX    4096
#define STRIPE_MAX_V1 16
#define STRIPE_TS_MAX 18 /* digits: always fits int64 */
#define GITHUB_PREFIX "sha256="

size_t ls_hmac_sha256_bytes(void)
{
    return MACBYTES;
}

const char *ls_hmac_reason_name(ls_hmac_reason reason)
{
    switch (reason) {
    case LS_HMAC_OK: return "ok";
    case LS_HMAC_MISSING_HEADER: return "missing_header";
    case LS_HMAC_MALFORMED_HEADER: return "malformed_header";
    case LS_HMAC_BAD_SIGNATURE: return "bad_signature";
    case LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE: return "timestamp_out_of_tolerance";
    }
    return "unknown";
}

/* ---- MAC computation ---- */

/* HMAC-SHA256(key, a || b); the state is wiped before returning. */
static void mac2(const void *key, size_t klen, const void *a, size_t alen, const void *b,
                 size_t blen, unsigned char out[MACBYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    if (alen) crypto_auth_hmacsha256_update(&st, a, alen);
    if (blen) crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void ls_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[LS_HMAC_SHA256_BYTES])
{
    mac2(key, klen, NULL, 0, msg, mlen, out);
}

/* ---- helpers ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *len)
{
    while (*len && is_ows((*p)[0])) (*p)++, (*len)--;
    while (*len && is_ows((*p)[*len - 1])) (*len)--;
}

/* Sets *reason to r and err to a message starting with r's name. */
LS_PRINTF(4, 5)
static ls_rc refuse(ls_err *err, ls_hmac_reason *reason, ls_hmac_reason r, const char *fmt, ...)
{
    *reason = r;
    if (err) {
        char msg[LS_ERR_MSGMAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        ls_err_set(err, LS_EAUTH, "%s: %s", ls_hmac_reason_name(r), msg);
    }
    return LS_EAUTH;
}

static const char *enc_name(ls_hmac_encoding enc)
{
    switch (enc) {
    case LS_HMAC_HEX: return "hex";
    case LS_HMAC_BASE64: return "base64";
    case LS_HMAC_BASE64URL: return "base64url";
    }
    return "?";
}

/* Decodes exactly one 32-byte MAC written in enc. 0 on success. */
static int decode_mac(const char *s, size_t len, ls_hmac_encoding enc, unsigned char out[MACBYTES])
{
    size_t got = 0;
    int rc;
    switch (enc) {
    case LS_HMAC_HEX:
        if (len != HEX_LEN) return -1;
        rc = sodium_hex2bin(out, MACBYTES, s, len, NULL, &got, NULL);
        break;
    case LS_HMAC_BASE64:
        if (len != B64_LEN) return -1;
        rc = sodium_base642bin(out, MACBYTES, s, len, NULL, &got, NULL,
                               sodium_base64_VARIANT_ORIGINAL);
        break;
    case LS_HMAC_BASE64URL:
        if (len != B64URL_LEN) return -1;
        rc = sodium_base642bin(out, MACBYTES, s, len, NULL, &got, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        break;
    default: return -1;
    }
    return rc == 0 && got == MACBYTES ? 0 : -1;
}

static size_t enc_len(ls_hmac_encoding enc)
{
    return enc == LS_HMAC_HEX ? HEX_LEN : enc == LS_HMAC_BASE64 ? B64_LEN : B64URL_LEN;
}

static ls_rc check_args(const void *key, size_t klen, const void *msg, size_t mlen, const char *sig,
                        size_t siglen, ls_err *err)
{
    if (key == NULL || klen == 0)
        return ls_err_set(err, LS_EINVAL, "HMAC secret is empty: refusing to verify with it");
    if (msg == NULL && mlen != 0) return ls_err_set(err, LS_EINVAL, "HMAC message is NULL");
    if (sig == NULL && siglen != 0) return ls_err_set(err, LS_EINVAL, "HMAC signature is NULL");
    return LS_OK;
}

static int valid_encoding(ls_hmac_encoding enc)
{
    return enc == LS_HMAC_HEX || enc == LS_HMAC_BASE64 || enc == LS_HMAC_BASE64URL;
}

/* ---- primitive verification ---- */

ls_rc ls_hmac_verify(const void *key, size_t klen, const void *msg, size_t mlen, const char *sig,
                     size_t siglen, ls_hmac_encoding enc, ls_err *err)
{
    ls_rc rc = check_args(key, klen, msg, mlen, sig, siglen, err);
    if (rc != LS_OK) return rc;
    if (!valid_encoding(enc))
        return ls_err_set(err, LS_EINVAL, "unknown signature encoding %d", (int)enc);

    unsigned char want[MACBYTES], got[MACBYTES];
    if (decode_mac(sig, siglen, enc, got) != 0) {
        rc = ls_err_set(err, LS_EAUTH, "malformed signature: expected %zu %s characters, got %zu",
                        enc_len(enc), enc_name(enc), siglen);
    } else {
        mac2(key, klen, NULL, 0, msg, mlen, want);
        rc = sodium_memcmp(want, got, MACBYTES) == 0
                 ? LS_OK
                 : ls_err_set(err, LS_EAUTH, "signature does not match");
    }
    sodium_memzero(want, sizeof want);
    sodium_memzero(got, sizeof got);
    return rc;
}

ls_rc ls_hmac_verify_hex(const void *key, size_t klen, const void *msg, size_t mlen,
                         const char *sig, size_t siglen, ls_err *err)
{
    return ls_hmac_verify(key, klen, msg, mlen, sig, siglen, LS_HMAC_HEX, err);
}

ls_rc ls_hmac_verify_b64(const void *key, size_t klen, const void *msg, size_t mlen,
                         const char *sig, size_t siglen, ls_err *err)
{
    return ls_hmac_verify(key, klen, msg, mlen, sig, siglen, LS_HMAC_BASE64, err);
}

/* ---- generic and GitHub ---- */

ls_rc ls_hmac_verify_generic(const void *secret, size_t slen, const ls_hmac_generic_opts *opts,
                             const char *header, size_t hlen, const void *body, size_t blen,
                             ls_hmac_reason *reason, ls_err *err)
{
    static const ls_hmac_generic_opts defaults = {LS_HMAC_HEX, NULL, NULL, 0};
    ls_hmac_reason dummy;
    if (reason == NULL) reason = &dummy;
    if (opts == NULL) opts = &defaults;
    ls_rc rc = check_args(secret, slen, body, blen, header, header ? hlen : 0, err);
    if (rc != LS_OK) return rc;
    if (!valid_encoding(opts->encoding))
        return ls_err_set(err, LS_EINVAL, "unknown signature encoding %d", (int)opts->encoding);
    if (opts->msg_prefix == NULL && opts->msg_prefix_len != 0)
        return ls_err_set(err, LS_EINVAL, "message prefix is NULL");

    if (header == NULL) return refuse(err, reason, LS_HMAC_MISSING_HEADER, "no signature header");
    trim(&header, &hlen);
    if (opts->sig_prefix) {
        size_t plen = strlen(opts->sig_prefix);
        if (hlen < plen || memcmp(header, opts->sig_prefix, plen) != 0)
            return refuse(err, reason, LS_HMAC_MALFORMED_HEADER,
                          "signature does not start with \"%s\"", opts->sig_prefix);
        header += plen;
        hlen -= plen;
    }

    unsigned char want[MACBYTES], got[MACBYTES];
    if (decode_mac(header, hlen, opts->encoding, got) != 0) {
        if (hlen != enc_len(opts->encoding))
            rc = refuse(err, reason, LS_HMAC_MALFORMED_HEADER,
                        "expected %zu %s characters of signature, got %zu", enc_len(opts->encoding),
                        enc_name(opts->encoding), hlen);
        else
            rc = refuse(err, reason, LS_HMAC_MALFORMED_HEADER, "the signature is not %s",
                        enc_name(opts->encoding));
    } else {
        mac2(secret, slen, opts->msg_prefix, opts->msg_prefix_len, body, blen, want);
        if (sodium_memcmp(want, got, MACBYTES) == 0) {
            *reason = LS_HMAC_OK;
            rc = LS_OK;
        } else {
            rc = refuse(err, reason, LS_HMAC_BAD_SIGNATURE, "signature does not match the body");
        }
    }
    sodium_memzero(want, sizeof want);
    sodium_memzero(got, sizeof got);
    return rc;
}

ls_rc ls_hmac_verify_github(const void *secret, size_t slen, const char *header, size_t hlen,
                            const void *body, size_t blen, ls_hmac_reason *reason, ls_err *err)
{
    const ls_hmac_generic_opts opts = {LS_HMAC_HEX, GITHUB_PREFIX, NULL, 0};
    return ls_hmac_verify_generic(secret, slen, &opts, header, hlen, body, blen, reason, err);
}

/* ---- Stripe ---- */

struct stripe_sig {
    const char *t; /* timestamp text as sent: part of the signed payload */
    size_t tlen;
    int64_t ts;
    unsigned char v1[STRIPE_MAX_V1][MACBYTES];
    size_t nv1;
};

static int parse_ts(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > STRIPE_TS_MAX) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses one "key=value" item into sig. Returns NULL or a complaint. */
static const char *stripe_item(const char *item, size_t len, struct stripe_sig *sig)
{
    const char *eq = memchr(item, '=', len);
    if (eq == NULL || eq == item) return "an item is not key=value";
    size_t klen = (size_t)(eq - item), vlen = len - klen - 1;
    const char *val = eq + 1;
    if (klen == 1 && item[0] == 't') {
        if (sig->t) return "more than one t= item";
        if (parse_ts(val, vlen, &sig->ts) != 0) return "t= is not 1 to 18 decimal digits";
        sig->t = val;
        sig->tlen = vlen;
    } else if (klen == 2 && item[0] == 'v' && item[1] == '1') {
        if (sig->nv1 == STRIPE_MAX_V1) return "too many v1= signatures";
        if (decode_mac(val, vlen, LS_HMAC_HEX, sig->v1[sig->nv1]) != 0)
            return "a v1= signature is not 64 hex digits";
        sig->nv1++;
    }
    return NULL; /* v0 and unknown schemes are ignored */
}

static const char *stripe_parse(const char *h, size_t len, struct stripe_sig *sig)
{
    if (len > STRIPE_MAX) return "header too long";
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(h + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - h) : len;
        const char *item = h + i;
        size_t ilen = end - i;
        trim(&item, &ilen);
        if (ilen == 0) return "empty item";
        const char *why = stripe_item(item, ilen, sig);
        if (why) return why;
        if (comma == NULL) break;
        i = end + 1;
    }
    if (sig->t == NULL) return "no t= timestamp";
    if (sig->nv1 == 0) return "no v1= signature";
    return NULL;
}

ls_rc ls_hmac_verify_stripe(const void *secret, size_t slen, const ls_hmac_stripe_opts *opts,
                            const char *header, size_t hlen, const void *body, size_t blen,
                            ls_hmac_reason *reason, ls_err *err)
{
    ls_hmac_reason dummy;
    if (reason == NULL) reason = &dummy;
    ls_rc rc = check_args(secret, slen, body, blen, header, header ? hlen : 0, err);
    if (rc != LS_OK) return rc;
    int64_t tol = opts && opts->tolerance_s ? opts->tolerance_s : LS_HMAC_STRIPE_TOLERANCE_DEFAULT;
    if (tol < 0) return ls_err_set(err, LS_EINVAL, "negative Stripe timestamp tolerance");

    if (header == NULL)
        return refuse(err, reason, LS_HMAC_MISSING_HEADER, "no Stripe-Signature header");
    trim(&header, &hlen);
    struct stripe_sig sig;
    memset(&sig, 0, sizeof sig);
    const char *why = stripe_parse(header, hlen, &sig);
    if (why) {
        rc = refuse(err, reason, LS_HMAC_MALFORMED_HEADER, "Stripe-Signature: %s", why);
        goto done;
    }

    unsigned char want[MACBYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, slen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)sig.t, sig.tlen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    if (blen) crypto_auth_hmacsha256_update(&st, body, blen);
    crypto_auth_hmacsha256_final(&st, want);
    sodium_memzero(&st, sizeof st);
    int match = 0;
    for (size_t k = 0; k < sig.nv1; k++) match |= sodium_memcmp(want, sig.v1[k], MACBYTES) == 0;
    sodium_memzero(want, sizeof want);
    if (!match) {
        rc = refuse(err, reason, LS_HMAC_BAD_SIGNATURE, "none of %zu v1 signatures matches",
                    sig.nv1);
        goto done;
    }

    int64_t now = ls_clock_wall_ms(opts ? opts->clock : NULL) / 1000;
    int64_t age = now - sig.ts;
    if (age > tol || -age > tol) {
        rc = refuse(err, reason, LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE,
                    "timestamp is %lld s in the %s (tolerance %lld s)",
                    (long long)(age > 0 ? age : -age), age > 0 ? "past" : "future", (long long)tol);
        goto done;
    }
    *reason = LS_HMAC_OK;
    rc = LS_OK;

done:
    sodium_memzero(sig.v1, sizeof sig.v1);
    return rc;
}

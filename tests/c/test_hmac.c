/* SPDX-License-Identifier: MIT
 * HMAC-SHA256 and webhook signatures: RFC 4231 vectors, GitHub's documented
 * example, a Stripe case computed with python3's hmac module, and every
 * refusal reason (wrong secret, changed body, truncated or malformed
 * headers, stale and future timestamps). */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lodestone/ls_hmac.h"

#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY   "Hello, World!"
#define GH_SIG    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* HMAC-SHA256(ST_SECRET, ST_TS "." ST_BODY) by python3 hmac at authoring time. */
#define ST_SECRET "whsec_lodestone_test_0123456789abcdef"
#define ST_TS     1700000000
#define ST_BODY   "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\"}"
#define ST_V1     "2140ad3d302be7c9a3f48038778543bceb30165f60d919765f98a299174d85f3"
/* The same payload under the secret "whsec_other". */
#define ST_OTHER "0eb96667edfcf0691a302105d5e6f5d617ab92c44c6780457aae53765e7355a8"

/* HMAC-SHA256("generic-secret", ...) by python3 hmac. */
#define GEN_SECRET     "generic-secret"
#define GEN_BODY       "payload body"
#define GEN_MSG_PREFIX "v0:1700000000:"
#define GEN_PREFIXED   "9bd8530eb98da64906f85d7952dfd4ff16397325bc310f23c928d7d2fb8ea860"
#define GEN_B64        "5kz2UkS/PpZs6SApn0eaqqv+OMQzKpecTmigb6y7smE="
#define GEN_B64URL     "5kz2UkS_PpZs6SApn0eaqqv-OMQzKpecTmigb6y7smE"

static ls_rc github(const char *secret, const char *header, const char *body, ls_hmac_reason *r,
                    ls_err *err)
{
    return ls_hmac_verify_github(secret, strlen(secret), header, header ? strlen(header) : 0, body,
                                 strlen(body), r, err);
}

static ls_rc stripe_at(const char *secret, const char *header, const char *body, int64_t now_s,
                       int64_t tol, ls_hmac_reason *r, ls_err *err)
{
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, now_s * 1000 + 999); /* the fraction must not matter */
    ls_hmac_stripe_opts o = {tol, &mc.clock};
    return ls_hmac_verify_stripe(secret, strlen(secret), &o, header, header ? strlen(header) : 0,
                                 body, strlen(body), r, err);
}

static ls_rc stripe(const char *header, const char *body, ls_hmac_reason *r, ls_err *err)
{
    return stripe_at(ST_SECRET, header, body, ST_TS, 0, r, err);
}

static void expect_refused(ls_rc rc, const ls_hmac_reason *r, ls_hmac_reason want,
                           const ls_err *err)
{
    assert_int_equal(rc, LS_EAUTH);
    assert_int_equal(*r, want);
    assert_int_equal(err->code, LS_EAUTH);
    const char *name = ls_hmac_reason_name(want);
    if (strncmp(err->msg, name, strlen(name)) != 0)
        fail_msg("message \"%s\" does not start with %s", err->msg, name);
}

/* ---- RFC 4231 ---- */

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &n, NULL), 0);
    return n;
}

static void test_hmac_rfc4231_vectors(void **state)
{
    (void)state;
    FILE *f = fopen(LS_TEST_VECTORS "/hmac/rfc4231.txt", "r");
    assert_non_null(f);
    char line[1024], hexkey[1024] = "", hexdata[1024] = "";
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "key = ", 6) == 0) snprintf(hexkey, sizeof hexkey, "%s", line + 6);
        if (strncmp(line, "data = ", 7) == 0) snprintf(hexdata, sizeof hexdata, "%s", line + 7);
        if (strncmp(line, "mac = ", 6) != 0) continue;
        const char *hexmac = line + 6;
        unsigned char key[256], data[256], want[32], got[32];
        size_t kl = unhex(hexkey, key, sizeof key), dl = unhex(hexdata, data, sizeof data);
        unhex(hexmac, want, sizeof want);
        ls_hmac_sha256(key, kl, data, dl, got);
        assert_memory_equal(got, want, 32);
        ls_err err;
        th_ok(ls_hmac_verify_hex(key, kl, data, dl, hexmac, strlen(hexmac), &err), &err);
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, want, 32, sodium_base64_VARIANT_ORIGINAL);
        th_ok(ls_hmac_verify_b64(key, kl, data, dl, b64, strlen(b64), &err), &err);
        data[0] ^= 1; /* tamper */
        assert_int_equal(ls_hmac_verify_hex(key, kl, data, dl, hexmac, strlen(hexmac), &err),
                         LS_EAUTH);
        cases++;
    }
    fclose(f);
    assert_int_equal(cases, 6);
}

static void test_hmac_primitive_rejects(void **state)
{
    (void)state;
    ls_err err;
    const char *k = "key", *m = "message";
    unsigned char mac[32];
    char hex[65];
    ls_hmac_sha256(k, 3, m, 7, mac);
    sodium_bin2hex(hex, sizeof hex, mac, 32);
    th_ok(ls_hmac_verify(k, 3, m, 7, hex, 64, LS_HMAC_HEX, &err), &err);
    /* truncated: a 31-byte prefix is not a shorter valid MAC */
    assert_int_equal(ls_hmac_verify_hex(k, 3, m, 7, hex, 62, &err), LS_EAUTH);
    assert_non_null(strstr(err.msg, "malformed"));
    assert_int_equal(ls_hmac_verify_hex(k, 3, m, 7, "zz", 2, &err), LS_EAUTH);
    hex[5] = hex[5] == '0' ? '1' : '0';
    assert_int_equal(ls_hmac_verify_hex(k, 3, m, 7, hex, 64, &err), LS_EAUTH);
    assert_non_null(strstr(err.msg, "does not match"));
    /* empty secrets and bad arguments are configuration errors */
    assert_int_equal(ls_hmac_verify_hex("", 0, m, 7, hex, 64, &err), LS_EINVAL);
    assert_int_equal(ls_hmac_verify_hex(k, 3, NULL, 7, hex, 64, &err), LS_EINVAL);
    assert_int_equal(ls_hmac_verify(k, 3, m, 7, hex, 64, (ls_hmac_encoding)9, &err), LS_EINVAL);
    assert_int_equal(ls_hmac_sha256_bytes(), 32);
}

/* ---- GitHub ---- */

static void test_hmac_github_documented_example(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r = LS_HMAC_BAD_SIGNATURE;
    th_ok(github(GH_SECRET, GH_SIG, GH_BODY, &r, &err), &err);
    assert_int_equal(r, LS_HMAC_OK);
    th_ok(github(GH_SECRET, "  " GH_SIG "\t", GH_BODY, NULL, &err), &err); /* OWS */
}

static void test_hmac_github_wrong_secret(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    expect_refused(github("It's a Secret to Everybody!", GH_SIG, GH_BODY, &r, &err), &r,
                   LS_HMAC_BAD_SIGNATURE, &err);
}

static void test_hmac_github_modified_body(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    expect_refused(github(GH_SECRET, GH_SIG, "Hello, World?", &r, &err), &r, LS_HMAC_BAD_SIGNATURE,
                   &err);
    expect_refused(github(GH_SECRET, GH_SIG, "Hello, World!\n", &r, &err), &r,
                   LS_HMAC_BAD_SIGNATURE, &err);
}

static void test_hmac_github_every_flipped_digit(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    char sig[] = GH_SIG;
    for (size_t i = strlen("sha256="); i < strlen(sig); i++) {
        char c = sig[i];
        sig[i] = c == '0' ? '1' : '0';
        expect_refused(github(GH_SECRET, sig, GH_BODY, &r, &err), &r, LS_HMAC_BAD_SIGNATURE, &err);
        sig[i] = c;
    }
}

static void test_hmac_github_truncated_signature(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    char sig[] = GH_SIG;
    for (size_t cut = strlen("sha256="); cut < strlen(GH_SIG); cut += 7) {
        sig[cut] = '\0';
        expect_refused(github(GH_SECRET, sig, GH_BODY, &r, &err), &r, LS_HMAC_MALFORMED_HEADER,
                       &err);
        memcpy(sig, GH_SIG, sizeof sig);
    }
}

/* Decision: upper-case hex is accepted (the decoded bytes are compared). */
static void test_hmac_github_uppercase_hex_accepted(void **state)
{
    (void)state;
    ls_err err;
    char sig[] = GH_SIG;
    for (size_t i = strlen("sha256="); sig[i]; i++)
        if (sig[i] >= 'a' && sig[i] <= 'f') sig[i] = (char)(sig[i] - 'a' + 'A');
    th_ok(github(GH_SECRET, sig, GH_BODY, NULL, &err), &err);
}

static void test_hmac_github_missing_and_malformed(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    expect_refused(github(GH_SECRET, NULL, GH_BODY, &r, &err), &r, LS_HMAC_MISSING_HEADER, &err);
    static const char *const bad[] = {
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", /* no prefix */
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256= 757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1700",
        "sha256=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_refused(github(GH_SECRET, bad[i], GH_BODY, &r, &err), &r, LS_HMAC_MALFORMED_HEADER,
                       &err);
    }
    /* a NUL inside the header value is not skipped */
    char nul[] = GH_SIG;
    nul[20] = '\0';
    assert_int_equal(ls_hmac_verify_github(GH_SECRET, strlen(GH_SECRET), nul, sizeof nul - 1,
                                           GH_BODY, strlen(GH_BODY), &r, &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_MALFORMED_HEADER);
    /* bad arguments are not refusals */
    r = LS_HMAC_OK;
    assert_int_equal(github("", GH_SIG, GH_BODY, &r, &err), LS_EINVAL);
    assert_int_equal(r, LS_HMAC_OK);
}

static void test_hmac_github_empty_body(void **state)
{
    (void)state;
    ls_err err;
    unsigned char mac[32];
    char sig[80] = "sha256=";
    ls_hmac_sha256(GH_SECRET, strlen(GH_SECRET), NULL, 0, mac);
    sodium_bin2hex(sig + 7, sizeof sig - 7, mac, 32);
    th_ok(
        ls_hmac_verify_github(GH_SECRET, strlen(GH_SECRET), sig, strlen(sig), NULL, 0, NULL, &err),
        &err);
}

/* ---- Stripe ---- */

static void test_hmac_stripe_valid(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r = LS_HMAC_BAD_SIGNATURE;
    th_ok(stripe("t=1700000000,v1=" ST_V1, ST_BODY, &r, &err), &err);
    assert_int_equal(r, LS_HMAC_OK);
    /* order, blanks around items, v0 and unknown schemes do not matter */
    th_ok(stripe("v0=abc, v1=" ST_V1 " ,t=1700000000,scheme2=x", ST_BODY, NULL, &err), &err);
    /* default tolerance with the system clock: the timestamp is long past */
    assert_int_equal(
        ls_hmac_verify_stripe(ST_SECRET, strlen(ST_SECRET), NULL, "t=1700000000,v1=" ST_V1,
                              strlen("t=1700000000,v1=" ST_V1), ST_BODY, strlen(ST_BODY), &r, &err),
        LS_EAUTH);
    assert_int_equal(r, LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE);
}

static void test_hmac_stripe_multiple_v1(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    /* secret rotation: Stripe sends one v1 per active secret */
    th_ok(stripe("t=1700000000,v1=" ST_OTHER ",v1=" ST_V1, ST_BODY, NULL, &err), &err);
    th_ok(stripe("t=1700000000,v1=" ST_V1 ",v1=" ST_OTHER, ST_BODY, NULL, &err), &err);
    th_ok(stripe_at("whsec_other", "t=1700000000,v1=" ST_V1 ",v1=" ST_OTHER, ST_BODY, ST_TS, 0,
                    NULL, &err),
          &err);
    expect_refused(stripe("t=1700000000,v1=" ST_OTHER ",v1=" ST_OTHER, ST_BODY, &r, &err), &r,
                   LS_HMAC_BAD_SIGNATURE, &err);
    /* a matching v0 is not a v1 */
    expect_refused(stripe("t=1700000000,v1=" ST_OTHER ",v0=" ST_V1, ST_BODY, &r, &err), &r,
                   LS_HMAC_BAD_SIGNATURE, &err);
}

static void test_hmac_stripe_wrong_secret_and_body(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    expect_refused(stripe_at("whsec_lodestone_test_0123456789abcdeF", "t=1700000000,v1=" ST_V1,
                             ST_BODY, ST_TS, 0, &r, &err),
                   &r, LS_HMAC_BAD_SIGNATURE, &err);
    expect_refused(stripe("t=1700000000,v1=" ST_V1,
                          "{\"id\":\"evt_2\",\"type\":\"charge.succeeded\"}", &r, &err),
                   &r, LS_HMAC_BAD_SIGNATURE, &err);
    /* the timestamp is signed: moving it breaks the signature */
    expect_refused(stripe("t=1700000001,v1=" ST_V1, ST_BODY, &r, &err), &r, LS_HMAC_BAD_SIGNATURE,
                   &err);
    expect_refused(stripe("t=01700000000,v1=" ST_V1, ST_BODY, &r, &err), &r, LS_HMAC_BAD_SIGNATURE,
                   &err);
}

static void test_hmac_stripe_timestamp_tolerance(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    const char *h = "t=1700000000,v1=" ST_V1;
    th_ok(stripe_at(ST_SECRET, h, ST_BODY, ST_TS + 300, 0, NULL, &err), &err); /* edge, past */
    th_ok(stripe_at(ST_SECRET, h, ST_BODY, ST_TS - 300, 0, NULL, &err), &err); /* edge, future */
    expect_refused(stripe_at(ST_SECRET, h, ST_BODY, ST_TS + 301, 0, &r, &err), &r,
                   LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE, &err);
    assert_non_null(strstr(err.msg, "301 s in the past"));
    expect_refused(stripe_at(ST_SECRET, h, ST_BODY, ST_TS - 301, 0, &r, &err), &r,
                   LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE, &err);
    assert_non_null(strstr(err.msg, "301 s in the future"));
    /* configured tolerance */
    th_ok(stripe_at(ST_SECRET, h, ST_BODY, ST_TS + 3600, 3600, NULL, &err), &err);
    expect_refused(stripe_at(ST_SECRET, h, ST_BODY, ST_TS + 11, 10, &r, &err), &r,
                   LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE, &err);
    /* a stale forgery is a bad signature first */
    expect_refused(
        stripe_at(ST_SECRET, "t=1700000000,v1=" ST_OTHER, ST_BODY, ST_TS + 9999, 0, &r, &err), &r,
        LS_HMAC_BAD_SIGNATURE, &err);
    assert_int_equal(stripe_at(ST_SECRET, h, ST_BODY, ST_TS, -1, &r, &err), LS_EINVAL);
}

static void test_hmac_stripe_malformed_headers(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    expect_refused(stripe(NULL, ST_BODY, &r, &err), &r, LS_HMAC_MISSING_HEADER, &err);
    static const char *const bad[] = {
        "",
        "v1=" ST_V1,                            /* no t */
        "t=1700000000",                         /* no v1 */
        "t=1700000000,v0=" ST_V1,               /* only v0 */
        "t=1700000000,t=1700000000,v1=" ST_V1,  /* two t */
        "t=,v1=" ST_V1,                         /* empty t */
        "t=-1700000000,v1=" ST_V1,              /* signed t */
        "t=17000000x0,v1=" ST_V1,               /* not digits */
        "t=1700000000000000000,v1=" ST_V1,      /* 19 digits */
        "t=1700000000,v1=" ST_V1 ",",           /* empty item */
        "t=1700000000,,v1=" ST_V1,              /* empty item */
        "t=1700000000,v1",                      /* not key=value */
        "t=1700000000,=abc,v1=" ST_V1,          /* empty key */
        "t=1700000000,v1=2140ad3d302be7c9a3f4", /* truncated v1 */
        "t=1700000000,v1=" ST_V1 "00",          /* long v1 */
        "t=1700000000 v1=" ST_V1,               /* no comma */
        "t=1700000000,v1=" ST_V1 ";",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ls_rc rc = stripe(bad[i], ST_BODY, &r, &err);
        if (rc != LS_EAUTH || r != LS_HMAC_MALFORMED_HEADER)
            fail_msg("case %zu (%s): %s %s", i, bad[i], ls_rc_name(rc), err.msg);
    }
    /* at most 16 v1 items */
    char many[4096] = "t=1700000000";
    for (int i = 0; i < 17; i++) strcat(many, ",v1=" ST_OTHER);
    expect_refused(stripe(many, ST_BODY, &r, &err), &r, LS_HMAC_MALFORMED_HEADER, &err);
    char *p = strstr(many + 12, ",v1=");
    memcpy(p + 4, ST_V1, 64); /* 17 items, the first one good: still too many */
    expect_refused(stripe(many, ST_BODY, &r, &err), &r, LS_HMAC_MALFORMED_HEADER, &err);
    many[strlen(many) - 68] = '\0'; /* 16 items */
    th_ok(stripe(many, ST_BODY, &r, &err), &err);
}

/* ---- generic ---- */

static void test_hmac_generic_encodings(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    ls_hmac_generic_opts o = {LS_HMAC_BASE64, NULL, NULL, 0};
    th_ok(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64, strlen(GEN_B64),
                                 GEN_BODY, strlen(GEN_BODY), &r, &err),
          &err);
    o.encoding = LS_HMAC_BASE64URL;
    th_ok(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64URL, strlen(GEN_B64URL),
                                 GEN_BODY, strlen(GEN_BODY), &r, &err),
          &err);
    /* the other alphabet, missing or extra padding are malformed */
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64,
                                            strlen(GEN_B64), GEN_BODY, strlen(GEN_BODY), &r, &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_MALFORMED_HEADER);
    o.encoding = LS_HMAC_BASE64;
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64, 43,
                                            GEN_BODY, strlen(GEN_BODY), &r, &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_MALFORMED_HEADER);
    /* the message tells a wrong length from a wrong alphabet */
    assert_string_equal(err.msg, "malformed_header: expected 44 base64 characters of signature, "
                                 "got 43");
    static const char zz[] = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    ls_hmac_generic_opts hex = {LS_HMAC_HEX, NULL, NULL, 0};
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &hex, zz, 64, GEN_BODY,
                                            strlen(GEN_BODY), &r, &err),
                     LS_EAUTH);
    assert_string_equal(err.msg, "malformed_header: the signature is not hex");
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64URL,
                                            strlen(GEN_B64URL), GEN_BODY, strlen(GEN_BODY), &r,
                                            &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_MALFORMED_HEADER);
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_B64,
                                            strlen(GEN_B64), "payload bodY", 12, &r, &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_BAD_SIGNATURE);
    /* primitive, base64 */
    th_ok(ls_hmac_verify_b64(GEN_SECRET, strlen(GEN_SECRET), GEN_BODY, strlen(GEN_BODY), GEN_B64,
                             strlen(GEN_B64), &err),
          &err);
}

static void test_hmac_generic_prefixes(void **state)
{
    (void)state;
    ls_err err;
    ls_hmac_reason r;
    ls_hmac_generic_opts o = {LS_HMAC_HEX, "v0=", GEN_MSG_PREFIX, strlen(GEN_MSG_PREFIX)};
    const char *h = "v0=" GEN_PREFIXED;
    th_ok(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, h, strlen(h), GEN_BODY,
                                 strlen(GEN_BODY), &r, &err),
          &err);
    assert_int_equal(r, LS_HMAC_OK);
    /* without the message prefix the MAC is different */
    o.msg_prefix = NULL;
    o.msg_prefix_len = 0;
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, h, strlen(h),
                                            GEN_BODY, strlen(GEN_BODY), &r, &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_BAD_SIGNATURE);
    /* missing signature prefix */
    o.msg_prefix = GEN_MSG_PREFIX;
    o.msg_prefix_len = strlen(GEN_MSG_PREFIX);
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, GEN_PREFIXED,
                                            strlen(GEN_PREFIXED), GEN_BODY, strlen(GEN_BODY), &r,
                                            &err),
                     LS_EAUTH);
    assert_int_equal(r, LS_HMAC_MALFORMED_HEADER);
    /* opts NULL: plain hex, no prefixes */
    unsigned char mac[32];
    char hex[65];
    ls_hmac_sha256(GEN_SECRET, strlen(GEN_SECRET), GEN_BODY, strlen(GEN_BODY), mac);
    sodium_bin2hex(hex, sizeof hex, mac, 32);
    th_ok(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), NULL, hex, 64, GEN_BODY,
                                 strlen(GEN_BODY), NULL, &err),
          &err);
    o.msg_prefix = NULL; /* length without pointer */
    assert_int_equal(ls_hmac_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &o, h, strlen(h),
                                            GEN_BODY, strlen(GEN_BODY), &r, &err),
                     LS_EINVAL);
}

/* ---- common ---- */

static void test_hmac_reason_names(void **state)
{
    (void)state;
    assert_string_equal(ls_hmac_reason_name(LS_HMAC_OK), "ok");
    assert_string_equal(ls_hmac_reason_name(LS_HMAC_MISSING_HEADER), "missing_header");
    assert_string_equal(ls_hmac_reason_name(LS_HMAC_MALFORMED_HEADER), "malformed_header");
    assert_string_equal(ls_hmac_reason_name(LS_HMAC_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(ls_hmac_reason_name(LS_HMAC_TIMESTAMP_OUT_OF_TOLERANCE),
                        "timestamp_out_of_tolerance");
    assert_string_equal(ls_hmac_reason_name((ls_hmac_reason)42), "unknown");
}

static void test_hmac_no_allocations(void **state)
{
    (void)state;
    ls_err err;
    th_fail_install();
    th_fail_after(0); /* any allocation would fail */
    th_ok(github(GH_SECRET, GH_SIG, GH_BODY, NULL, &err), &err);
    th_ok(stripe("t=1700000000,v1=" ST_V1, ST_BODY, NULL, &err), &err);
    long n = th_alloc_count();
    th_fail_uninstall();
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231_vectors),
        cmocka_unit_test(test_hmac_primitive_rejects),
        cmocka_unit_test(test_hmac_github_documented_example),
        cmocka_unit_test(test_hmac_github_wrong_secret),
        cmocka_unit_test(test_hmac_github_modified_body),
        cmocka_unit_test(test_hmac_github_every_flipped_digit),
        cmocka_unit_test(test_hmac_github_truncated_signature),
        cmocka_unit_test(test_hmac_github_uppercase_hex_accepted),
        cmocka_unit_test(test_hmac_github_missing_and_malformed),
        cmocka_unit_test(test_hmac_github_empty_body),
        cmocka_unit_test(test_hmac_stripe_valid),
        cmocka_unit_test(test_hmac_stripe_multiple_v1),
        cmocka_unit_test(test_hmac_stripe_wrong_secret_and_body),
        cmocka_unit_test(test_hmac_stripe_timestamp_tolerance),
        cmocka_unit_test(test_hmac_stripe_malformed_headers),
        cmocka_unit_test(test_hmac_generic_encodings),
        cmocka_unit_test(test_hmac_generic_prefixes),
        cmocka_unit_test(test_hmac_reason_names),
        cmocka_unit_test(test_hmac_no_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

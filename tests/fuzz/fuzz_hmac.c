/* SPDX-License-Identifier: MIT
 * libFuzzer: webhook signature headers. Byte 0 picks GitHub (0), Stripe
 * (1) or the generic scheme (2: hex, 3: base64, 4: base64url, with prefix
 * "v1="); the rest is the header value, verified over a fixed body. The
 * result is checked against references written from ls_hmac.h (GitHub and
 * Stripe grammars as in test_fuzz.c). For Stripe, a header whose v1 is
 * "!" gets the right signature for its t substituted, so timestamps and
 * tolerance are reached. */
#include "fuzz_common.h"

#include <sodium.h>

#include "lodestone/ls_hmac.h"

#include "fuzz_refs.h" /* tests/c/ */

#define SECRET "It's a Secret to Everybody"
#define BODY   "Hello, World!"
#define NOW_S  1800000000LL

static ls_manual_clock mc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ls_manual_clock_init(&mc, NOW_S * 1000);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    unsigned mode = data[0] % 5;
    int64_t tol = data[0] & 0x80 ? 1 : 300;
    data++, size--;
    unsigned char mac[32];
    ls_hmac_sha256(SECRET, strlen(SECRET), BODY, strlen(BODY), mac);
    ls_hmac_reason why = (ls_hmac_reason)99;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc;
    char *c;
    size_t clen = size;
    if (mode == 1) {
        /* substitute "v1=!" with the right signature for the first t= */
        unsigned char *buf = malloc(size + 128);
        memcpy(buf, data, size);
        unsigned char *bang = size >= 4 ? memmem(buf, size, "v1=!", 4) : NULL;
        unsigned char *t = size >= 2 ? memmem(buf, size, "t=", 2) : NULL;
        if (bang && t) {
            size_t tl = 0;
            while (t + 2 + tl < buf + size && t[2 + tl] >= '0' && t[2 + tl] <= '9') tl++;
            unsigned char m[32];
            ref_stripe_mac(SECRET, BODY, t + 2, tl, m);
            char hx[65];
            for (size_t i = 0; i < 32; i++) sprintf(hx + 2 * i, "%02x", m[i]);
            size_t at = (size_t)(bang - buf) + 3;
            memmove(buf + at + 64, buf + at + 1, size - at - 1);
            memcpy(buf + at, hx, 64);
            clen = size + 63;
        }
        c = fuzz_exact(buf, clen);
        free(buf);
        ls_hmac_stripe_opts so = {.tolerance_s = tol, .clock = &mc.clock};
        rc = ls_hmac_verify_stripe(SECRET, strlen(SECRET), &so, c, clen, BODY, strlen(BODY), &why,
                                   &err);
        ls_hmac_reason rwhy;
        int right = ref_stripe((const unsigned char *)c, clen, NOW_S, tol, SECRET, BODY, &rwhy);
        if (rc != LS_OK && rc != LS_EAUTH) FUZZ_BUG("returned %s", ls_rc_name(rc));
        if ((rc == LS_OK) != right || why != rwhy)
            FUZZ_BUG("stripe says %s/%s (%s), reference %s", ls_rc_name(rc),
                     ls_hmac_reason_name(why), rc ? err.msg : "", ls_hmac_reason_name(rwhy));
    } else {
        c = fuzz_exact(data, size);
        if (mode == 0) {
            rc = ls_hmac_verify_github(SECRET, strlen(SECRET), c, size, BODY, strlen(BODY), &why,
                                       &err);
        } else {
            ls_hmac_generic_opts go = {.encoding = mode == 2   ? LS_HMAC_HEX
                                                   : mode == 3 ? LS_HMAC_BASE64
                                                               : LS_HMAC_BASE64URL,
                                       .sig_prefix = "v1="};
            rc = ls_hmac_verify_generic(SECRET, strlen(SECRET), &go, c, size, BODY, strlen(BODY),
                                        &why, &err);
        }
        if (rc != LS_OK && rc != LS_EAUTH) FUZZ_BUG("returned %s", ls_rc_name(rc));
        const unsigned char *p = data;
        size_t len = size;
        trim_ows(&p, &len);
        int right;
        if (mode == 0) {
            right = len == 71 && memcmp(p, "sha256=", 7) == 0 && hex_is(p + 7, 64, mac);
        } else if (mode == 2) {
            right = len == 67 && memcmp(p, "v1=", 3) == 0 && hex_is(p + 3, 64, mac);
        } else {
            unsigned char dec[64];
            size_t dl = 0;
            int var = mode == 3 ? sodium_base64_VARIANT_ORIGINAL
                                : sodium_base64_VARIANT_URLSAFE_NO_PADDING;
            right = len == (mode == 3 ? 47u : 46u) && memcmp(p, "v1=", 3) == 0 &&
                    sodium_base642bin(dec, sizeof dec, (const char *)p + 3, len - 3, NULL, &dl,
                                      NULL, var) == 0 &&
                    dl == 32 && memcmp(dec, mac, 32) == 0;
        }
        if ((rc == LS_OK) != right)
            FUZZ_BUG("mode %u: verify says %s (%s), reference %s", mode, ls_rc_name(rc),
                     rc ? err.msg : "", right ? "right" : "wrong");
    }
    fuzz_check_err(rc, &err);
    if ((rc == LS_OK) != (why == LS_HMAC_OK)) FUZZ_BUG("rc and reason disagree");
    if (rc != LS_OK &&
        strncmp(err.msg, ls_hmac_reason_name(why), strlen(ls_hmac_reason_name(why))) != 0)
        FUZZ_BUG("message \"%s\" does not start with the reason", err.msg);
    free(c);
    return 0;
}

/* SPDX-License-Identifier: MIT
 * libFuzzer: JWK Set JSON (ls_jwks_parse / ls_jwks_add_json). A set that
 * parses is described key by key, fingerprinted and used to verify the RFC
 * 7515/8037 tokens; a failed add must leave an existing set unchanged. */
#include "fuzz_common.h"

#include "lodestone/ls_jwt.h"

#define NOW_S 1300819000LL

static ls_manual_clock mc;
static ls_jwt_opts o;
static char *toks[6];
static ls_jwks_t *base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const vec[] = {
        "tests/c/vectors/jwt/rfc7515-a1.jws", "tests/c/vectors/jwt/rfc7515-a2.jws",
        "tests/c/vectors/jwt/rfc7515-a3.jws", "tests/c/vectors/jwt/rfc7515-a4.jws",
        "tests/c/vectors/jwt/rfc7515-a5.jws", "tests/c/vectors/jwt/rfc8037-a4.jws",
    };
    for (int i = 0; i < 6; i++) toks[i] = fuzz_slurp(vec[i], NULL);
    ls_manual_clock_init(&mc, NOW_S * 1000);
    for (int a = LS_JWT_HS256; a < LS_JWT_ALG_END; a++) o.algs |= LS_JWT_ALG_BIT(a);
    o.clock = &mc.clock;
    o.leeway_s = 30;
    ls_err err;
    if (ls_jwks_new(&base, &err) != LS_OK) abort();
    if (ls_jwks_add_secret(base, "0123456789abcdef0123456789abcdef", 32, "base", LS_JWT_ALG_ANY,
                           &err) != LS_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    char *c = fuzz_exact(data, size);
    ls_jwks_t *ks = NULL;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_jwks_parse(&ks, c, size, &err);
    if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("ls_jwks_parse returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if ((rc == LS_OK) != (ks != NULL)) FUZZ_BUG("rc and set disagree");

    /* the same text added to a set that has a key */
    unsigned char fp0[LS_JWKS_FPBYTES], fp1[LS_JWKS_FPBYTES];
    ls_jwks_fingerprint(base, fp0);
    size_t n0 = ls_jwks_count(base), s0 = ls_jwks_skipped(base);
    ls_rc rc2 = ls_jwks_add_json(base, c, size, &err);
    if (rc2 != rc) FUZZ_BUG("parse says %s, add_json %s", ls_rc_name(rc), ls_rc_name(rc2));
    if (rc2 != LS_OK) {
        ls_jwks_fingerprint(base, fp1);
        if (ls_jwks_count(base) != n0 || ls_jwks_skipped(base) != s0 ||
            memcmp(fp0, fp1, sizeof fp0) != 0)
            FUZZ_BUG("a failed add_json changed the set");
    } else {
        /* start again from one key */
        ls_jwks_free(base);
        if (ls_jwks_new(&base, &err) != LS_OK) abort();
        if (ls_jwks_add_secret(base, "0123456789abcdef0123456789abcdef", 32, "base", LS_JWT_ALG_ANY,
                               &err) != LS_OK)
            abort();
    }

    if (ks) {
        size_t n = ls_jwks_count(ks);
        for (size_t i = 0; i < n; i++) {
            ls_jwk_info info;
            if (ls_jwks_key_info(ks, i, &info, &err) != LS_OK) FUZZ_BUG("key_info %zu fails", i);
            if (info.type < LS_JWK_RSA || info.type > LS_JWK_OCT) FUZZ_BUG("bad key type");
            /* (a kid may hold a NUL, which info.kid and ls_jwks_has_kid cannot show:
             * checked only for ls_jwks_has_kid's sake, not as a bug) */
            if (info.kid) (void)ls_jwks_has_kid(ks, info.kid);
            if (info.alg >= LS_JWT_ALG_END) FUZZ_BUG("bad alg");
            (void)ls_jwt_alg_name(info.alg);
        }
        ls_jwk_info info;
        if (ls_jwks_key_info(ks, n, &info, &err) != LS_ENOTFOUND)
            FUZZ_BUG("key_info past the end does not say not found");
        ls_jwks_fingerprint(ks, fp1);
        for (int i = 0; i < 6; i++) {
            ls_jwt_t *t = NULL;
            ls_buf pl = LS_BUF_INIT;
            ls_jwt_reason why;
            ls_rc r = ls_jwt_verify(&t, ks, toks[i], strlen(toks[i]), &o, &why, &err);
            if (r != LS_OK && r != LS_EAUTH) FUZZ_BUG("verify returned %s", ls_rc_name(r));
            ls_jwt_free(t);
            r = ls_jws_verify(ks, toks[i], strlen(toks[i]), &o, &pl, &why, &err);
            if (r != LS_OK && r != LS_EAUTH) FUZZ_BUG("jws verify returned %s", ls_rc_name(r));
            if (i == 4 && r == LS_OK) FUZZ_BUG("alg none verified");
            ls_buf_free(&pl);
        }
        ls_jwks_free(ks);
    }
    free(c);
    return 0;
}

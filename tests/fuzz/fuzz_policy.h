/* SPDX-License-Identifier: MIT
 * Files and options shared by fuzz_policy_load.c and fuzz_policy_eval.c:
 * the key files of test_fuzz.c's policy_files() (fixed keys), written once
 * into the process's temp dir. */
#ifndef LS_FUZZ_POLICY_H
#define LS_FUZZ_POLICY_H
#include "fuzz_common.h"

#include "lodestone/ls_apikey.h"
#include "lodestone/ls_basic.h"
#include "lodestone/ls_buf.h"
#include "lodestone/ls_policy.h"

#define POL_SECRET    "0123456789abcdef0123456789abcdef" /* hs.key */
#define POL_GH_SECRET "It's a Secret to Everybody"       /* gh.secret */
#define POL_ISS       "https://id.example.com/"
#define POL_K1        "lsk_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"
#define POL_K2        "lsk_another-fixed-key-for-the-fuzz-suite"

static ls_manual_clock pol_clock;

static void policy_files(void)
{
    ls_err err;
    fuzz_write("hs.key", POL_SECRET, strlen(POL_SECRET), 0600);
    fuzz_write("gh.secret", POL_GH_SECRET, strlen(POL_GH_SECRET), 0600);
    size_t n;
    char *jwks = fuzz_slurp("tests/fuzz/keys.jwks.json", &n);
    fuzz_write("jwks.json", jwks, n, 0644);
    free(jwks);
    char *pem = fuzz_slurp("tests/c/vectors/jwt/rfc7515-a2-public.pem", &n);
    fuzz_write("rsa.pem", pem, n, 0644);
    free(pem);
    /* fixed hashing key and keys, as in test_fuzz.c's apikey target */
    ls_buf file = LS_BUF_INIT, line = LS_BUF_INIT;
    ls_buf_printf(&file, NULL, "lodestone-apikeys 1 %s\n",
                  "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
    ls_apikey_spec s1 = {.subject = "svc-billing", .roles = "billing,ops", .scopes = "a:b"};
    ls_apikey_spec s2 = {.subject = "svc-x", .roles = "", .scopes = "orders:read"};
    if (ls_apikey_hash_line((char *)file.ptr, file.len, POL_K1, strlen(POL_K1), &s1, &line, &err) !=
            LS_OK ||
        ls_apikey_hash_line((char *)file.ptr, file.len, POL_K2, strlen(POL_K2), &s2, &line, &err) !=
            LS_OK)
        FUZZ_BUG("apikey lines: %s", err.msg);
    ls_buf_append(&file, line.ptr, line.len, NULL);
    fuzz_write("api-keys", file.ptr, file.len, 0600);
    ls_buf_clear(&file);
    if (ls_basic_hash_line("alice", "pw", 2, 1, 8192, &file, &err) != LS_OK) abort();
    fuzz_write("htpasswd", file.ptr, file.len, 0600);
    ls_buf_free(&file);
    ls_buf_free(&line);
    /* a fixed assertion signing key */
    const char *ak =
        "lodestone-assertion-key 1\nseed MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\n";
    fuzz_write("as.key", ak, strlen(ak), 0600);
}

static ls_policy_opts policy_opts(void)
{
    ls_manual_clock_init(&pol_clock, FUZZ_NOW_S * 1000);
    ls_policy_opts o = {.base_dir = fuzz_dir(),
                        .rl_dir = fuzz_dir(),
                        .cache_dir = fuzz_dir(),
                        .clock = &pol_clock.clock,
                        .flags = LS_POLICY_NO_AUDIT | LS_POLICY_PRIVATE_RL};
    return o;
}
#endif

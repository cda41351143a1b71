/* SPDX-License-Identifier: MIT
 * libFuzzer: HTTP Basic. Byte 0 even: the rest is an Authorization value
 * checked with ls_basic_verify against two users, and compared with a
 * reference reading of ls_basic.h (libsodium's base64 decoder). Byte 0
 * odd: the rest is password-file text for ls_basic_parse. */
#include "fuzz_common.h"

#include <sodium.h>
#include <strings.h>

#include "lodestone/ls_basic.h"
#include "lodestone/ls_buf.h"

#include "fuzz_refs.h" /* tests/c/ */

static ls_basic_set_t *set;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    if (ls_basic_hash_line("alice", "correct horse", 13, 1, 8192, &text, &err) != LS_OK ||
        ls_basic_hash_line("bob", "p:w", 3, 1, 8192, &text, &err) != LS_OK ||
        ls_basic_parse(&set, (char *)text.ptr, text.len, NULL, &err) != LS_OK)
        FUZZ_BUG("setup: %s", err.msg);
    ls_buf_free(&text);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    int mode = data[0] & 1;
    data++, size--;
    char *c = fuzz_exact(data, size);
    ls_err err;
    fuzz_err_poison(&err);
    if (mode == 0) {
        const char *user = NULL;
        ls_rc rc = ls_basic_verify(set, c, size, &user, &err);
        if (rc != LS_OK && rc != LS_EAUTH && rc != LS_EINVAL)
            FUZZ_BUG("returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        static unsigned char cred[8192];
        size_t clen = 0;
        int rok = ref_basic(data, size, cred, sizeof cred, &clen);
        int right = rok && ((clen == 19 && memcmp(cred, "alice:correct horse", 19) == 0) ||
                            (clen == 7 && memcmp(cred, "bob:p:w", 7) == 0));
        if ((rc == LS_OK) != right)
            FUZZ_BUG("verify says %s (%s), reference says %s", ls_rc_name(rc), rc ? err.msg : "",
                     right ? "right" : "not right");
        if (rc == LS_OK &&
            (user == NULL || memcmp(user, cred, strlen(user)) != 0 || cred[strlen(user)] != ':'))
            FUZZ_BUG("verified as the wrong user");
        if (rc == LS_EINVAL && rok && memchr(cred, ':', clen))
            FUZZ_BUG("well-formed header refused as invalid: %s", err.msg);
    } else {
        ls_basic_set_t *s = NULL;
        ls_rc rc = ls_basic_parse(&s, c, size, NULL, &err);
        if (rc != LS_OK && rc != LS_EFORMAT && rc != LS_EINVAL)
            FUZZ_BUG("parse returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        if ((rc == LS_OK) != (s != NULL)) FUZZ_BUG("rc and set disagree");
        if (s) {
            size_t lines = fuzz_lines(data, size);
            if (ls_basic_count(s) > lines) FUZZ_BUG("more users than lines");
            ls_basic_free(s);
        }
    }
    free(c);
    return 0;
}

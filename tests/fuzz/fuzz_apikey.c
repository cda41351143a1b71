/* SPDX-License-Identifier: MIT
 * libFuzzer: API keys. Byte 0 even: the rest is a presented key, verified
 * against a fixed two-key file (only those two keys may match, and each
 * only its own entry). Byte 0 odd: the rest is key file text for
 * ls_apikey_parse; a file that parses is checked against its own lines,
 * and a line made by ls_apikey_hash_line for it must parse and verify. */
#include "fuzz_common.h"

#include "lodestone/ls_apikey.h"
#include "lodestone/ls_buf.h"

#define K1 "lsk_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"
#define K2 "lsk_another-fixed-key-for-the-fuzz-suite"

static ls_apikey_set_t *set;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ls_buf file = LS_BUF_INIT, line = LS_BUF_INIT;
    ls_err err;
    ls_buf_printf(&file, NULL, "lodestone-apikeys 1 %s\n",
                  "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
    ls_apikey_spec s1 = {.subject = "svc-billing", .roles = "billing,ops", .scopes = "a:b"};
    ls_apikey_spec s2 = {.subject = "svc-x", .roles = "", .scopes = "orders:read"};
    if (ls_apikey_hash_line((char *)file.ptr, file.len, K1, strlen(K1), &s1, &line, &err) ||
        ls_apikey_hash_line((char *)file.ptr, file.len, K2, strlen(K2), &s2, &line, &err))
        FUZZ_BUG("setup: %s", err.msg);
    ls_buf_append(&file, line.ptr, line.len, NULL);
    if (ls_apikey_parse(&set, (char *)file.ptr, file.len, &err) != LS_OK) FUZZ_BUG("%s", err.msg);
    if (getenv("FUZZ_PRINT_FILE")) fwrite(file.ptr, 1, file.len, stdout);
    ls_buf_free(&file);
    ls_buf_free(&line);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    int mode = data[0] & 1;
    data++, size--;
    char *c = fuzz_exact(data, size);
    ls_err err;
    fuzz_err_poison(&err);
    if (mode == 0) {
        const ls_apikey_entry *e = NULL;
        ls_rc rc = ls_apikey_verify(set, c, size, &e, &err);
        if (rc != LS_OK && rc != LS_EAUTH) FUZZ_BUG("verify returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        int is1 = size == strlen(K1) && !memcmp(data, K1, size);
        int is2 = size == strlen(K2) && !memcmp(data, K2, size);
        if ((rc == LS_OK) != (is1 || is2)) FUZZ_BUG("verification says %s", ls_rc_name(rc));
        if (rc == LS_OK && strcmp(e->subject, is1 ? "svc-billing" : "svc-x") != 0)
            FUZZ_BUG("key matched the wrong entry");
    } else {
        ls_apikey_set_t *s = NULL;
        ls_rc rc = ls_apikey_parse(&s, c, size, &err);
        if (rc != LS_OK && rc != LS_EFORMAT) FUZZ_BUG("parse returned %s", ls_rc_name(rc));
        fuzz_check_err(rc, &err);
        if ((rc == LS_OK) != (s != NULL)) FUZZ_BUG("rc and set disagree");
        if (s) {
            size_t lines = fuzz_lines(data, size);
            if (ls_apikey_count(s) > lines) FUZZ_BUG("more entries than lines");
            const ls_apikey_entry *e = NULL;
            (void)ls_apikey_verify(s, K1, strlen(K1), &e, NULL);
            if (e && (e->line < 2 || e->line > lines)) FUZZ_BUG("entry line %zu", e->line);
            /* a new key added to this file must verify */
            static const char nk[] = "lsk_a-new-key-made-by-the-fuzz-harness";
            ls_buf line = LS_BUF_INIT, all = LS_BUF_INIT;
            ls_apikey_spec sp = {.subject = "new", .roles = "r", .scopes = NULL};
            ls_rc r2 = ls_apikey_hash_line(c, size, nk, strlen(nk), &sp, &line, &err);
            if (r2 == LS_OK) {
                ls_buf_append(&all, data, size, NULL);
                if (size && data[size - 1] != '\n') ls_buf_putc(&all, '\n', NULL);
                ls_buf_append(&all, line.ptr, line.len, NULL);
                ls_apikey_set_t *s2 = NULL;
                char *a = fuzz_exact(all.ptr, all.len);
                if (ls_apikey_parse(&s2, a, all.len, &err) != LS_OK)
                    FUZZ_BUG("file plus a hash_line does not parse: %s", err.msg);
                if (ls_apikey_verify(s2, nk, strlen(nk), &e, NULL) != LS_OK ||
                    strcmp(e->subject, "new") != 0)
                    FUZZ_BUG("the new key does not verify");
                if (ls_apikey_count(s2) != ls_apikey_count(s) + 1) FUZZ_BUG("count");
                ls_apikey_free(s2);
                free(a);
            } else if (r2 != LS_EEXIST) {
                FUZZ_BUG("hash_line on a file that parses: %s %s", ls_rc_name(r2), err.msg);
            }
            ls_buf_free(&line);
            ls_buf_free(&all);
            ls_apikey_free(s);
        }
    }
    free(c);
    return 0;
}

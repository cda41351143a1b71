/* SPDX-License-Identifier: MIT
 * libFuzzer: request path normalisation (policy/path.h) against the
 * reference normaliser of test_fuzz.c (written from path.h), plus the
 * shape of the output and idempotence. */
#include "fuzz_common.h"

#include <ctype.h>

#include "policy/path.h"

#include "fuzz_refs.h" /* tests/c/ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > LS_PATH_MAX + 16) return 0;
    static char ref[LS_PATH_MAX + 2];
    char *c = fuzz_exact(data, size);
    ls_buf out = LS_BUF_INIT, again = LS_BUF_INIT, esc = LS_BUF_INIT;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_path_normalize(c, size, &out, &err);
    free(c);
    if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    size_t rlen = 0;
    int rok = ref_path(data, size, ref, &rlen);
    if (rok != (rc == LS_OK))
        FUZZ_BUG("normaliser says %s (%s), reference %s", ls_rc_name(rc), rc ? err.msg : "",
                 rok ? "OK" : "invalid");
    if (rc == LS_OK) {
        const char *o = (const char *)out.ptr;
        size_t ol = out.len;
        if (ol != rlen || memcmp(o, ref, ol) != 0)
            FUZZ_BUG("normalised to \"%.*s\", reference \"%.*s\"", (int)ol, o, (int)rlen, ref);
        if (ol == 0 || o[0] != '/' || o[ol] != '\0' || ol > size) FUZZ_BUG("bad output shape");
        for (size_t i = 0; i < ol; i++) {
            unsigned char ch = (unsigned char)o[i];
            if (ch == '%' || ch == '?' || ch == '#')
                ls_buf_printf(&esc, NULL, "%%%02X", ch);
            else
                ls_buf_putc(&esc, (char)ch, NULL);
        }
        char *e = fuzz_exact(esc.ptr, esc.len);
        rc = ls_path_normalize(e, esc.len, &again, &err);
        free(e);
        if (rc != LS_OK || again.len != ol || memcmp(again.ptr, o, ol) != 0)
            FUZZ_BUG("normalising the output again gives something else");
    } else if (out.len != 0) {
        FUZZ_BUG("output not left empty on failure");
    }
    /* one segment alone, as the rule compiler uses it */
    if (size && !memchr(data, '/', size)) {
        char *dst = malloc(size), *src = fuzz_exact(data, size);
        size_t dl = 0;
        ls_rc r2 = ls_path_decode_segment(src, size, dst, &dl, 0, &err);
        if (r2 == LS_OK && dl > size) FUZZ_BUG("decoded segment longer than its source");
        free(dst);
        free(src);
    }
    ls_buf_free(&out);
    ls_buf_free(&again);
    ls_buf_free(&esc);
    return 0;
}

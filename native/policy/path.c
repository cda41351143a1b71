/* SPDX-License-Identifier: MIT
 * Request path normalisation: one pass that decodes %-escapes segment by
 * segment, collapses slashes and resolves dot segments in place in the
 * output buffer. Refuses anything that could change the segment structure
 * after the fact (encoded slashes, backslashes, NULs). See path.h. */
#include "ls_config.h"

#include <string.h>

#include "path.h"

/* Bytes that end a run of plain bytes: '/', '%', NUL, '\', '?', '#'. */
static const unsigned char special[256] = {
    [0] = 1, ['/'] = 1, ['%'] = 1, ['\\'] = 1, ['?'] = 1, ['#'] = 1,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static ls_rc bad_byte(ls_err *err, unsigned char c, size_t at)
{
    switch (c) {
    case '\0': return ls_err_set(err, LS_EINVAL, "path: NUL byte at byte %zu", at);
    case '\\': return ls_err_set(err, LS_EINVAL, "path: backslash at byte %zu", at);
    default:
        return ls_err_set(err, LS_EINVAL, "path: '%c' at byte %zu (query or fragment in the path)",
                          c, at);
    }
}

/* Decodes s[i..] up to the next '/' or len into dst. *dlen receives the
 * decoded length and *end the position of the '/' (or len). Offsets in
 * errors are base + position. */
static ls_rc decode(const unsigned char *s, size_t i, size_t len, char *dst, size_t *dlen,
                    size_t *end, size_t base, ls_err *err)
{
    size_t n = 0;
    for (;;) {
        while (i < len && !special[s[i]]) dst[n++] = (char)s[i++];
        if (i == len || s[i] == '/') break;
        unsigned char c = s[i];
        if (c != '%') return bad_byte(err, c, base + i);
        if (len - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
            return ls_err_set(err, LS_EINVAL, "path: invalid %%-escape at byte %zu", base + i);
        unsigned char v = (unsigned char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
        if (v == '/')
            return ls_err_set(err, LS_EINVAL, "path: encoded slash at byte %zu", base + i);
        if (v == '\\')
            return ls_err_set(err, LS_EINVAL, "path: encoded backslash at byte %zu", base + i);
        if (v == '\0') return ls_err_set(err, LS_EINVAL, "path: encoded NUL at byte %zu", base + i);
        dst[n++] = (char)v;
        i += 3;
    }
    *dlen = n;
    *end = i;
    return LS_OK;
}

ls_rc ls_path_decode_segment(const char *src, size_t len, char *dst, size_t *dlen, size_t base,
                             ls_err *err)
{
    size_t end;
    ls_rc rc = decode((const unsigned char *)src, 0, len, dst, dlen, &end, base, err);
    if (rc == LS_OK && end != len)
        return ls_err_set(err, LS_EINVAL, "path: '/' inside a segment at byte %zu", base + end);
    return rc;
}

/* 1 for ".", 2 for "..", 0 otherwise; -1 for "." or ".." followed by ';'. */
static int dot_kind(const char *s, size_t n)
{
    size_t dots = 0;
    while (dots < n && dots < 2 && s[dots] == '.') dots++;
    if (dots == 0) return 0;
    if (dots == n) return (int)dots;
    return s[dots] == ';' ? -1 : 0;
}

ls_rc ls_path_normalize(const char *raw, size_t len, ls_buf *out, ls_err *err)
{
    ls_buf_clear(out);
    if (len == 0 || raw[0] != '/') return ls_err_set(err, LS_EINVAL, "path must start with '/'");
    if (len > LS_PATH_MAX)
        return ls_err_set(err, LS_EINVAL, "path longer than %d bytes", LS_PATH_MAX);
    ls_rc rc = ls_buf_reserve(out, len + 1, err);
    if (rc != LS_OK) return rc;

    /* The output never overtakes the input: each output segment is a '/'
     * plus at most as many bytes as its raw form, which was preceded by at
     * least one '/'. */
    char *o = (char *)out->ptr;
    size_t n = 0, i = 0;
    int trailing = 0;
    while (i < len) {
        while (i < len && raw[i] == '/') i++;
        if (i == len) {
            trailing = 1;
            break;
        }
        size_t dlen, end;
        rc = decode((const unsigned char *)raw, i, len, o + n + 1, &dlen, &end, 0, err);
        if (rc != LS_OK) goto fail;
        switch (dot_kind(o + n + 1, dlen)) {
        case 0:
            o[n] = '/';
            n += 1 + dlen;
            break;
        case 1: trailing = end == len; break;
        case 2:
            if (n == 0) {
                rc = ls_err_set(err, LS_EINVAL, "path: '..' above the root at byte %zu", i);
                goto fail;
            }
            while (o[--n] != '/') {}
            trailing = end == len;
            break;
        default:
            rc = ls_err_set(err, LS_EINVAL, "path: dot segment with parameters at byte %zu", i);
            goto fail;
        }
        i = end;
    }
    if (n == 0 || trailing) o[n++] = '/';
    out->len = n;
    o[n] = '\0';
    return LS_OK;

fail:
    ls_buf_clear(out);
    return rc;
}

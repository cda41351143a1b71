/* SPDX-License-Identifier: MIT
 * Typed key encoding: namespaces, integers, escaped strings and raw bytes
 * laid out so that memcmp order is the order of the typed parts, and the
 * readers that take them apart again. Writers either append a whole part
 * or leave the key untouched; readers never move past a part they reject.
 */
#include "ls_config.h"

#include <assert.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "store_int.h"

#define STR_ESC  0x00 /* escape byte inside an encoded string */
#define STR_ZERO 0xFF /* 0x00 0xFF: a 0x00 byte of the string */
#define STR_END  0x01 /* 0x00 0x01: the end of the string */

/* ---- writers ---- */

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

ls_rc ls_key_ns(ls_buf *k, ls_store_ns ns, ls_err *err)
{
    if (k == NULL) return ls_err_set(err, LS_EINVAL, "ls_key_ns: key buffer is required");
    if ((unsigned)ns > 0xFF)
        return ls_err_set(err, LS_EINVAL, "ls_key_ns: namespace %u is not a byte", (unsigned)ns);
    return ls_buf_putc(k, (unsigned char)ns, err);
}

ls_rc ls_key_u64(ls_buf *k, uint64_t v, ls_err *err)
{
    if (k == NULL) return ls_err_set(err, LS_EINVAL, "ls_key_u64: key buffer is required");
    unsigned char be[8];
    put_be64(be, v);
    return ls_buf_append(k, be, sizeof be, err);
}

ls_rc ls_key_i64(ls_buf *k, int64_t v, ls_err *err)
{
    /* Flipping the sign bit maps INT64_MIN..INT64_MAX onto 0..UINT64_MAX. */
    return ls_key_u64(k, (uint64_t)v ^ ((uint64_t)1 << 63), err);
}

ls_rc ls_key_str(ls_buf *k, const void *s, size_t len, ls_err *err)
{
    if (k == NULL || (s == NULL && len != 0))
        return ls_err_set(err, LS_EINVAL, "ls_key_str: key buffer and string are required");
    const unsigned char *p = s;
    size_t zeros = 0;
    for (size_t i = 0; i < len; i++) zeros += p[i] == 0;
    if (len > (SIZE_MAX - 2) / 2) return ls_err_set(err, LS_EINVAL, "ls_key_str: string too long");

    ls_rc rc = ls_buf_reserve(k, len + zeros + 2, err); /* all or nothing */
    if (rc != LS_OK) return rc;
    unsigned char *o = k->ptr + k->len;
    for (size_t i = 0; i < len; i++) {
        *o++ = p[i];
        if (p[i] == 0) *o++ = STR_ZERO;
    }
    *o++ = STR_ESC;
    *o++ = STR_END;
    k->len = (size_t)(o - k->ptr);
    k->ptr[k->len] = '\0';
    return LS_OK;
}

ls_rc ls_key_bytes(ls_buf *k, const void *raw, size_t len, ls_err *err)
{
    if (k == NULL || (raw == NULL && len != 0))
        return ls_err_set(err, LS_EINVAL, "ls_key_bytes: key buffer and bytes are required");
    return ls_buf_append(k, raw, len, err);
}

size_t ls_key_prefix_end_len(const void *prefix, size_t plen)
{
    const unsigned char *p = prefix;
    while (plen > 0 && p[plen - 1] == 0xFF) plen--;
    return plen;
}

ls_rc ls_key_prefix_end(const void *prefix, size_t plen, ls_buf *end, ls_err *err)
{
    if (end == NULL || (prefix == NULL && plen != 0))
        return ls_err_set(err, LS_EINVAL, "ls_key_prefix_end: prefix and end are required");
    size_t n = ls_key_prefix_end_len(prefix, plen);
    if (n == 0) return LS_ENOTFOUND;
    ls_rc rc = ls_buf_set(end, prefix, n, err);
    if (rc == LS_OK) end->ptr[n - 1]++;
    return rc;
}

/* ---- readers ---- */

void ls_key_reader_init(ls_key_reader *r, const void *key, size_t klen)
{
    assert(r != NULL && (key != NULL || klen == 0));
    r->p = key;
    r->left = klen;
}

/* LS_EINVAL when fewer than n bytes are left for the part named what. */
static ls_rc need(const ls_key_reader *r, size_t n, const char *what, ls_err *err)
{
    if (r == NULL) return ls_err_set(err, LS_EINVAL, "key reader is required");
    if (r->left < n)
        return ls_err_set(err, LS_EINVAL, "key too short: %s needs %zu bytes, %zu left", what, n,
                          r->left);
    return LS_OK;
}

ls_rc ls_key_read_ns(ls_key_reader *r, ls_store_ns *ns, ls_err *err)
{
    ls_rc rc = need(r, 1, "a namespace", err);
    if (rc != LS_OK) return rc;
    if (ns) *ns = (ls_store_ns)r->p[0];
    r->p++;
    r->left--;
    return LS_OK;
}

ls_rc ls_key_read_u64(ls_key_reader *r, uint64_t *v, ls_err *err)
{
    ls_rc rc = need(r, 8, "an integer", err);
    if (rc != LS_OK) return rc;
    if (v) *v = get_be64(r->p);
    r->p += 8;
    r->left -= 8;
    return LS_OK;
}

ls_rc ls_key_read_i64(ls_key_reader *r, int64_t *v, ls_err *err)
{
    uint64_t u = 0;
    ls_rc rc = ls_key_read_u64(r, &u, err);
    if (rc == LS_OK && v) *v = (int64_t)(u ^ ((uint64_t)1 << 63));
    return rc;
}

/* Finds the end of the encoded string at the reader: sets *enc to its
 * encoded length (terminator included) and *dec to its decoded length. */
static ls_rc scan_str(const ls_key_reader *r, size_t *enc, size_t *dec, ls_err *err)
{
    size_t i = 0, n = 0;
    while (i < r->left) {
        if (r->p[i] != STR_ESC) {
            i++;
            n++;
            continue;
        }
        if (i + 1 == r->left) break;
        unsigned char next = r->p[i + 1];
        if (next == STR_END) {
            *enc = i + 2;
            *dec = n;
            return LS_OK;
        }
        if (next != STR_ZERO)
            return ls_err_set(
                err, LS_ECORRUPT,
                "malformed key: byte 0x00 followed by 0x%02x inside a string (at %zu)", next, i);
        i += 2;
        n++;
    }
    return ls_err_set(err, LS_EINVAL, "key too short: a string has no terminator (%zu bytes left)",
                      r->left);
}

ls_rc ls_key_read_str(ls_key_reader *r, ls_buf *out, ls_err *err)
{
    if (r == NULL || out == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_key_read_str: reader and out are required");
    size_t enc = 0, dec = 0;
    ls_rc rc = scan_str(r, &enc, &dec, err);
    if (rc != LS_OK) return rc;
    ls_buf_clear(out);
    rc = ls_buf_reserve(out, dec, err);
    if (rc != LS_OK) return rc;
    unsigned char *o = out->ptr;
    for (size_t i = 0; i < enc - 2; i++) { /* enc - 2: without the terminator */
        *o++ = r->p[i];
        if (r->p[i] == STR_ESC) i++; /* skip the 0xFF after an escaped 0x00 */
    }
    out->len = dec;
    out->ptr[dec] = '\0';
    r->p += enc;
    r->left -= enc;
    return LS_OK;
}

ls_rc ls_key_read_bytes(ls_key_reader *r, void *raw, size_t len, ls_err *err)
{
    if (raw == NULL && len != 0)
        return ls_err_set(err, LS_EINVAL, "ls_key_read_bytes: raw is NULL with a length");
    ls_rc rc = need(r, len, "fixed bytes", err);
    if (rc != LS_OK) return rc;
    if (len) memcpy(raw, r->p, len);
    r->p += len;
    r->left -= len;
    return LS_OK;
}

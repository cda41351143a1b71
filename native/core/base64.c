/* SPDX-License-Identifier: MIT
 * Strict base64 and base64url codecs into ls_buf. Every byte string has
 * exactly one accepted encoding: no whitespace, no foreign characters, no
 * padding in base64url, required padding in base64, zero unused bits. */
#include "ls_config.h"

#include <stdint.h>

#include "lodestone/ls_base64.h"

static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Character to 6-bit value; 255 for anything outside the alphabet. */
/* clang-format off */
static const uint8_t url_tab[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255,  63,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

static const uint8_t std_tab[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};
/* clang-format on */

/* ---- encoding ---- */

size_t ls_base64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t ls_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t ls_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

static ls_rc encode(const unsigned char *in, size_t n, const char *alpha, int pad, ls_buf *out,
                    ls_err *err)
{
    if (n > (SIZE_MAX - 4) / 4 * 3) return ls_err_set(err, LS_ENOMEM, "base64 input too large");
    size_t need = pad ? ls_base64_encoded_len(n) : ls_base64url_encoded_len(n);
    ls_rc rc = ls_buf_reserve(out, need, err);
    if (rc != LS_OK) return rc;
    char *o = (char *)out->ptr + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        *o++ = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        if (pad) {
            *o++ = '=';
            *o++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        if (pad) *o++ = '=';
    }
    out->len += need;
    out->ptr[out->len] = '\0';
    return LS_OK;
}

ls_rc ls_base64url_encode(const void *data, size_t n, ls_buf *out, ls_err *err)
{
    return encode(data, n, url_alpha, 0, out, err);
}

ls_rc ls_base64_encode(const void *data, size_t n, ls_buf *out, ls_err *err)
{
    return encode(data, n, std_alpha, 1, out, err);
}

/* ---- decoding ---- */

static ls_rc bad_char(ls_err *err, int url, const char *text, size_t at)
{
    const char *name = url ? "base64url" : "base64";
    unsigned char c = (unsigned char)text[at];
    if (c == '=')
        return ls_err_set(err, LS_EINVAL, "invalid %s: padding '=' %s (offset %zu)", name,
                          url ? "is not allowed" : "before the end", at);
    if (c > 0x20 && c < 0x7f)
        return ls_err_set(err, LS_EINVAL, "invalid %s: character '%c' at offset %zu", name, c, at);
    return ls_err_set(err, LS_EINVAL, "invalid %s: byte 0x%02x at offset %zu", name, c, at);
}

/* Decodes n characters (padding already removed) into out, which has room
 * for ls_base64_decoded_max(n) bytes. */
static ls_rc decode(const char *text, size_t n, int url, unsigned char *out, size_t *outlen,
                    ls_err *err)
{
    const uint8_t *tab = url ? url_tab : std_tab;
    const char *name = url ? "base64url" : "base64";
    const unsigned char *in = (const unsigned char *)text;
    size_t i = 0, o = 0;
    for (; i + 4 <= n; i += 4) {
        unsigned a = tab[in[i]], b = tab[in[i + 1]], c = tab[in[i + 2]], d = tab[in[i + 3]];
        if ((a | b | c | d) & 0x80) {
            size_t at = i;
            while (tab[in[at]] != 255) at++;
            return bad_char(err, url, text, at);
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    size_t rest = n - i;
    if (rest) {
        uint32_t v = 0;
        for (size_t k = 0; k < rest; k++) {
            unsigned x = tab[in[i + k]];
            if (x == 255) return bad_char(err, url, text, i + k);
            v |= (uint32_t)x << (18 - 6 * k);
        }
        if (rest == 1)
            return ls_err_set(err, LS_EINVAL, "invalid %s: length %zu leaves a partial byte", name,
                              n);
        /* 2 characters carry 1 byte and 4 spare bits; 3 carry 2 and 2. */
        uint32_t spare = rest == 2 ? v & 0xffff : v & 0xff;
        if (spare != 0)
            return ls_err_set(err, LS_EINVAL,
                              "invalid %s: non-zero unused bits in the last character (offset %zu)",
                              name, n - 1);
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3) out[o++] = (unsigned char)(v >> 8);
    }
    *outlen = o;
    return LS_OK;
}

/* Length without the padding base64 requires, or an error. */
static ls_rc strip_padding(const char *text, size_t len, size_t *n, ls_err *err)
{
    if (len % 4 != 0)
        return ls_err_set(err, LS_EINVAL, "invalid base64: length %zu is not a multiple of 4", len);
    size_t k = len;
    if (k > 0 && text[k - 1] == '=') k--;
    if (k > 0 && text[k - 1] == '=') k--;
    *n = k;
    return LS_OK;
}

static ls_rc decode_append(const char *text, size_t n, int url, ls_buf *out, ls_err *err)
{
    size_t max = ls_base64_decoded_max(n), got;
    ls_rc rc = ls_buf_reserve(out, max, err);
    if (rc != LS_OK) return rc;
    rc = decode(text, n, url, out->ptr + out->len, &got, err);
    if (rc != LS_OK) {
        out->ptr[out->len] = '\0';
        return rc;
    }
    out->len += got;
    out->ptr[out->len] = '\0';
    return LS_OK;
}

ls_rc ls_base64url_decode(const char *text, size_t len, ls_buf *out, ls_err *err)
{
    return decode_append(text, len, 1, out, err);
}

ls_rc ls_base64_decode(const char *text, size_t len, ls_buf *out, ls_err *err)
{
    size_t n = 0;
    ls_rc rc = strip_padding(text, len, &n, err);
    if (rc != LS_OK) return rc;
    return decode_append(text, n, 0, out, err);
}

ls_rc ls_base64url_decode_into(const char *text, size_t len, unsigned char *out, size_t cap,
                               size_t *outlen, ls_err *err)
{
    if (ls_base64_decoded_max(len) > cap)
        return ls_err_set(err, LS_EINVAL,
                          "base64url value of %zu characters is too long (max %zu bytes)", len,
                          cap);
    return decode(text, len, 1, out, outlen, err);
}

/* SPDX-License-Identifier: MIT
 * JSON helpers over jansson: parsing with positioned errors, compact
 * dumping into ls_buf, dotted paths and typed field getters. */
#include "ls_config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ls_json.h"
#include "lodestone/ls_alloc.h"

/* JSON text never holds a raw NUL byte (inside strings it must be written
 * \u0000), but jansson skips one that directly follows a number or a
 * keyword: refuse them all first. */
static ls_rc reject_nul(const char *text, size_t len, ls_err *err)
{
    const char *nul = memchr(text, '\0', len);
    if (nul == NULL) return LS_OK;
    size_t pos = (size_t)(nul - text), line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return ls_err_set(err, LS_EINVAL, "line %zu column %zu (byte %zu): NUL byte in JSON text", line,
                      col, pos);
}

ls_rc ls_json_parse(const char *text, size_t len, json_t **out, ls_err *err)
{
    ls_rc rc = reject_nul(text, len, err);
    if (rc != LS_OK) return rc;
    json_error_t je;
    json_t *v =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (v == NULL) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return ls_err_set(err, LS_ENOMEM, "out of memory parsing JSON");
        return ls_err_set(err, LS_EINVAL, "line %d column %d (byte %d): %s", je.line, je.column,
                          je.position, je.text);
    }
    *out = v;
    return LS_OK;
}

struct dump_ctx {
    ls_buf *out;
    ls_err *err;
    ls_rc rc;
};

/* A failure is sticky: jansson ignores the callback's answer for the keys
 * of a sorted object and goes on with the next piece. */
static int dump_cb(const char *s, size_t n, void *ud)
{
    struct dump_ctx *c = ud;
    if (c->rc != LS_OK) return -1;
    c->rc = ls_buf_append(c->out, s, n, c->err);
    return c->rc == LS_OK ? 0 : -1;
}

ls_rc ls_json_dump(const json_t *v, ls_buf *out, ls_err *err)
{
    struct dump_ctx c = {out, err, LS_OK};
    size_t start = out->len;
    if (json_dump_callback(v, dump_cb, &c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) != 0 ||
        c.rc != LS_OK) {
        out->len = start;
        if (out->ptr) out->ptr[start] = '\0';
        if (c.rc != LS_OK) return c.rc;
        return ls_err_set(err, LS_EINVAL, "value cannot be encoded as JSON");
    }
    return LS_OK;
}

/* ---- direct writing ---- */

/* Length of the valid UTF-8 sequence at p (RFC 3629, as jansson checks it:
 * no overlongs, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c == 0xE0)
        n = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        n = 3;
    else if (c == 0xED)
        n = 3, hi = 0x9F;
    else if (c == 0xF0)
        n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        n = 4;
    else if (c == 0xF4)
        n = 4, hi = 0x8F;
    else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

size_t ls_json_utf8_seq(const char *s, size_t n)
{
    return n == 0 ? 0 : utf8_seq((const unsigned char *)s, (const unsigned char *)s + n);
}

size_t ls_utf8_cut(const char *s, size_t max)
{
    size_t keep = max;
    for (int i = 0; i < 3 && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80; i++) keep--;
    return keep;
}

int ls_json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(p + i, p + n);
        if (len == 0) return 0;
        i += len;
    }
    return 1;
}

json_t *ls_json_string_lossy(const char *s, size_t n)
{
    if (ls_json_utf8_valid(s, n)) return json_stringn_nocheck(s, n);
    /* At most 3 bytes (U+FFFD) for each byte. */
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    unsigned char *t = ls_malloc(n * 3 + 1), *o = t;
    if (t == NULL) return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t len = *p < 0x80 ? 1 : utf8_seq(p, end);
        if (len == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
            continue;
        }
        memcpy(o, p, len);
        o += len;
        p += len;
    }
    json_t *j = json_stringn_nocheck((const char *)t, (size_t)(o - t));
    ls_free(t);
    return j;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    if (end - p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

static unsigned char *put_utf8(unsigned char *w, unsigned cp)
{
    if (cp < 0x80) {
        *w++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *w++ = (unsigned char)(0xC0 | cp >> 6);
        *w++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (unsigned char)(0xE0 | cp >> 12);
        *w++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (unsigned char)(0xF0 | cp >> 18);
        *w++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return w;
}

const char *ls_json_string_decode(const unsigned char **at, const unsigned char *end,
                                  unsigned char *out, size_t *len)
{
    const unsigned char *p = *at;
    unsigned char *w = out;
    const char *why = NULL;
    while (why == NULL) {
        /* Runs of plain ASCII are the common case: find the end, then copy
         * (in place, only once an escape has put w behind). */
        const unsigned char *q = p;
        while (q < end && (unsigned)(*q - 0x20) < 0x60 && *q != '"' && *q != '\\') q++;
        if (w != p) memmove(w, p, (size_t)(q - p));
        w += q - p;
        p = q;
        if (p >= end) {
            why = "unterminated string";
            break;
        }
        unsigned c = *p, cp;
        if (c == '"') {
            *at = p + 1;
            *len = (size_t)(w - out);
            return NULL;
        }
        if (c < 0x20) {
            why = "control character in a string";
        } else if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (n == 0) {
                why = "invalid UTF-8 in a string";
            } else {
                memmove(w, p, n);
                w += n;
                p += n;
            }
        } else if (end - p < 2) { /* a backslash: the run stopped at nothing else */
            why = "unterminated string";
        } else if ((cp = p[1]) != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = memchr(from, (int)cp, sizeof from - 1);
            if (e == NULL) {
                why = "invalid escape in a string";
            } else {
                *w++ = (unsigned char)to[e - from];
                p += 2;
            }
        } else if (!hex4(p + 2, end, &cp)) {
            p += 2;
            why = "invalid \\u escape";
        } else {
            p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                why = "lone low surrogate in \\u escape";
            } else if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF) {
                    why = "lone high surrogate in \\u escape";
                } else {
                    p += 6;
                    w = put_utf8(w, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
                }
            } else {
                w = put_utf8(w, cp);
            }
        }
    }
    *at = p;
    return why;
}

ls_rc ls_json_put_string(ls_buf *out, const char *s, size_t n, ls_err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Worst case: every byte a control character, 6 bytes each. */
    if (n > (SIZE_MAX - 2) / 6) return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_rc rc = ls_buf_reserve(out, n * 6 + 2, err);
    if (rc != LS_OK) return rc;
    unsigned char *o = out->ptr + out->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = (unsigned char)hex[c >> 4];
            o[4] = (unsigned char)hex[c & 15];
            o += 5;
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - out->ptr);
    *o = '\0';
    return LS_OK;
}

ls_rc ls_json_put_int(ls_buf *out, long long v, ls_err *err)
{
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    return ls_buf_append(out, tmp + i, sizeof tmp - i, err);
}

ls_rc ls_json_put_real(ls_buf *out, double v, ls_err *err)
{
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp - 3, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof tmp - 3) return ls_err_set(err, LS_EINVAL, "real: %g", v);
    size_t len = (size_t)n;
    for (size_t i = 0; i < len; i++)
        if (tmp[i] == ',') tmp[i] = '.'; /* a locale's decimal comma */
    char *e = memchr(tmp, 'e', len);
    if (e == NULL && memchr(tmp, '.', len) == NULL) {
        memcpy(tmp + len, ".0", 3);
        len += 2;
    }
    if (e != NULL) { /* "1e+300" -> "1e300", "1e-05" -> "1e-5" */
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            *to++ = *from++;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1] != '\0') from++;
        size_t tail = len - (size_t)(from - tmp);
        memmove(to, from, tail + 1);
        len = (size_t)(to - tmp) + tail;
    }
    return ls_buf_append(out, tmp, len, err);
}

/* ---- peeking ---- */

static const char *peek_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* Past the string that starts at p (its opening quote); *plain says it has
 * no escapes. NULL when it does not end. */
static const char *peek_skip_string(const char *p, const char *end, int *plain)
{
    *plain = 1;
    for (p++; p < end; p++) {
        if (*p == '"') return p + 1;
        if (*p == '\\') {
            *plain = 0;
            p++;
        }
    }
    return NULL;
}

/* Past the value that starts at p. NULL when it does not end. */
static const char *peek_skip_value(const char *p, const char *end)
{
    int depth = 0, plain;
    do {
        p = peek_ws(p, end);
        if (p >= end) return NULL;
        if (*p == '"') {
            if ((p = peek_skip_string(p, end, &plain)) == NULL) return NULL;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0) return NULL;
            p++;
        } else if (*p == ',' || *p == ':') {
            if (depth == 0) return NULL;
            p++;
        } else { /* a number or a literal */
            const char *q = p;
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
                   *p != '\r' && *p != '\t')
                p++;
            if (p == q) return NULL;
        }
    } while (depth > 0);
    return p;
}

ls_rc ls_json_peek_string(const char *text, size_t len, const char *key, const char **s, size_t *n)
{
    const char *p = text, *end = text + len;
    size_t klen = strlen(key);
    int plain;
    p = peek_ws(p, end);
    if (p >= end || *p++ != '{') return LS_EINVAL;
    p = peek_ws(p, end);
    if (p < end && *p == '}') return LS_ENOTFOUND;
    for (;;) {
        p = peek_ws(p, end);
        if (p >= end || *p != '"') return LS_EINVAL;
        const char *k = p + 1, *after = peek_skip_string(p, end, &plain);
        if (after == NULL) return LS_EINVAL;
        int match = plain && (size_t)(after - 1 - k) == klen && memcmp(k, key, klen) == 0;
        p = peek_ws(after, end);
        if (p >= end || *p++ != ':') return LS_EINVAL;
        p = peek_ws(p, end);
        if (match) {
            if (p >= end || *p != '"') return LS_ENOTFOUND;
            const char *v = p + 1;
            if ((after = peek_skip_string(p, end, &plain)) == NULL) return LS_EINVAL;
            if (!plain) return LS_ENOTFOUND;
            *s = v;
            *n = (size_t)(after - 1 - v);
            return LS_OK;
        }
        if ((p = peek_skip_value(p, end)) == NULL) return LS_EINVAL;
        p = peek_ws(p, end);
        if (p >= end) return LS_EINVAL;
        if (*p == '}') return LS_ENOTFOUND;
        if (*p++ != ',') return LS_EINVAL;
    }
}

const char *ls_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

json_t *ls_json_path(const json_t *obj, const char *path)
{
    const json_t *cur = obj;
    while (cur != NULL) {
        if (!json_is_object(cur)) return NULL;
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        cur = json_object_getn(cur, path, n);
        if (dot == NULL) return (json_t *)cur;
        path = dot + 1;
    }
    return NULL;
}

/* Finds field; LS_ENOTFOUND when absent. */
static ls_rc field_of(const json_t *obj, const char *field, json_t **v)
{
    *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    return *v ? LS_OK : LS_ENOTFOUND;
}

static ls_rc wrong_type(ls_err *err, const char *field, const char *want, const json_t *got)
{
    return ls_err_set(err, LS_EINVAL, "field '%s': expected %s, got %s", field, want,
                      ls_json_type_name(got));
}

ls_rc ls_json_get_str(const json_t *obj, const char *field, const char **s, size_t *len,
                      ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_string(v)) return wrong_type(err, field, "a string", v);
    *s = json_string_value(v);
    if (len) *len = json_string_length(v);
    return LS_OK;
}

ls_rc ls_json_get_int(const json_t *obj, const char *field, int64_t *out, ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_integer(v)) return wrong_type(err, field, "an integer", v);
    *out = (int64_t)json_integer_value(v);
    return LS_OK;
}

ls_rc ls_json_get_num(const json_t *obj, const char *field, double *out, ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_number(v)) return wrong_type(err, field, "a number", v);
    *out = json_number_value(v);
    return LS_OK;
}

ls_rc ls_json_get_bool(const json_t *obj, const char *field, int *out, ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_boolean(v)) return wrong_type(err, field, "a boolean", v);
    *out = json_is_true(v);
    return LS_OK;
}

ls_rc ls_json_get_obj(const json_t *obj, const char *field, json_t **out, ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_object(v)) return wrong_type(err, field, "an object", v);
    *out = v;
    return LS_OK;
}

ls_rc ls_json_get_arr(const json_t *obj, const char *field, json_t **out, ls_err *err)
{
    json_t *v;
    if (field_of(obj, field, &v) != LS_OK) return LS_ENOTFOUND;
    if (!json_is_array(v)) return wrong_type(err, field, "an array", v);
    *out = v;
    return LS_OK;
}

/* SPDX-License-Identifier: MIT
 * The response side of HTTP/1.1 for the daemon client: the status line, the
 * few headers that decide framing and reuse (Content-Length,
 * Transfer-Encoding, Connection), and chunked bodies. Strict: anything that
 * is not a well-formed HTTP/1.x answer is an error naming what was wrong.
 */
#include "ls_config.h"

#include <string.h>
#include <strings.h>

#include "client_int.h"

#define CHUNK_LINE_MAX 1024 /* a chunk-size line with extensions */

static const char *find_crlf(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n') return p;
    return NULL;
}

static const char *find_blank_line(const char *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return p + i;
    return NULL;
}

/* value [v, e) trimmed of spaces and tabs on both sides */
static void trim(const char **v, const char **e)
{
    while (*v < *e && (**v == ' ' || **v == '\t')) (*v)++;
    while (*e > *v && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

static int has_token(const char *v, const char *e, const char *tok)
{
    size_t tl = strlen(tok);
    while (v < e) {
        const char *comma = memchr(v, ',', (size_t)(e - v));
        const char *te = comma ? comma : e;
        const char *tv = v;
        trim(&tv, &te);
        if ((size_t)(te - tv) == tl && strncasecmp(tv, tok, tl) == 0) return 1;
        v = comma ? comma + 1 : e;
    }
    return 0;
}

static int is_name(const char *k, const char *name, size_t len)
{
    return strlen(name) == len && strncasecmp(k, name, len) == 0;
}

static int bad_head(ls_err *err, const char *what)
{
    ls_err_set(err, LS_EFORMAT, "not an HTTP/1.x answer: %s", what);
    return -1;
}

static int parse_status_line(const char *p, const char *e, ls_client_head *h, int *http10,
                             ls_err *err)
{
    /* "HTTP/1.1 200 OK" (the reason phrase may be empty) */
    if (e - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return bad_head(err, "bad status line");
    *http10 = p[7] == '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') return bad_head(err, "bad status code");
        status = status * 10 + (p[i] - '0');
    }
    if (status < 100 || (e - p > 12 && p[12] != ' ')) return bad_head(err, "bad status code");
    h->status = status;
    return 0;
}

static int parse_length(const char *v, const char *e, uint64_t *out, ls_err *err)
{
    if (v == e) return bad_head(err, "empty Content-Length");
    uint64_t n = 0;
    for (; v < e; v++) {
        if (*v < '0' || *v > '9') return bad_head(err, "Content-Length is not a number");
        if (n > (UINT64_MAX - 9) / 10) return bad_head(err, "Content-Length too large");
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

int ls_client_head_parse(const char *p, size_t n, ls_client_head *h, ls_err *err)
{
    /* Garbage is told at once, not after the timeout. */
    size_t pre = n < 5 ? n : 5;
    if (memcmp(p, "HTTP/", pre) != 0) return bad_head(err, "does not start with \"HTTP/\"");
    size_t scan = n < LS_CLIENT_HEAD_MAX ? n : LS_CLIENT_HEAD_MAX;
    const char *blank = find_blank_line(p, scan);
    if (blank == NULL) {
        if (n < LS_CLIENT_HEAD_MAX) return 0;
        ls_err_set(err, LS_EFORMAT, "answer head longer than %zu bytes", LS_CLIENT_HEAD_MAX);
        return -1;
    }
    const char *end = blank + 2; /* the last header line's CRLF */
    memset(h, 0, sizeof *h);
    const char *line_end = find_crlf(p, end);
    int http10 = 0;
    if (parse_status_line(p, line_end, h, &http10, err) < 0) return -1;

    int have_length = 0, chunked = 0, conn_close = 0, conn_keep = 0;
    uint64_t length = 0;
    for (const char *l = line_end + 2; l < end; l = line_end + 2) {
        line_end = find_crlf(l, end);
        const char *colon = memchr(l, ':', (size_t)(line_end - l));
        if (colon == NULL || colon == l) return bad_head(err, "header line without a name");
        size_t klen = (size_t)(colon - l);
        const char *v = colon + 1, *ve = line_end;
        trim(&v, &ve);
        if (is_name(l, "Content-Length", klen)) {
            uint64_t len;
            if (parse_length(v, ve, &len, err) < 0) return -1;
            if (have_length && len != length)
                return bad_head(err, "two different Content-Length headers");
            have_length = 1;
            length = len;
        } else if (is_name(l, "Transfer-Encoding", klen)) {
            if (ve - v != 7 || strncasecmp(v, "chunked", 7) != 0)
                return bad_head(err, "a Transfer-Encoding other than chunked");
            chunked = 1;
        } else if (is_name(l, "Connection", klen)) {
            conn_close |= has_token(v, ve, "close");
            conn_keep |= has_token(v, ve, "keep-alive");
        }
    }
    h->head_len = (size_t)(blank + 4 - p);
    h->keep_alive = http10 ? (conn_keep && !conn_close) : !conn_close;
    if (h->status < 200 || h->status == 204 || h->status == 304) {
        h->framing = LS_CLIENT_BODY_NONE;
    } else if (chunked) {
        h->framing = LS_CLIENT_BODY_CHUNKED;
    } else if (have_length) {
        h->framing = LS_CLIENT_BODY_LENGTH;
        h->content_length = length;
    } else {
        h->framing = LS_CLIENT_BODY_CLOSE;
        h->keep_alive = 0;
    }
    return 1;
}

/* ---- chunked bodies ---- */

static int bad_chunk(ls_err *err, const char *what)
{
    ls_err_set(err, LS_EFORMAT, "bad chunked body: %s", what);
    return -1;
}

/* Parses a chunk-size line at p; 1 with *size and *next, 0 for more, -1. */
static int chunk_size(const char *p, const char *end, uint64_t *size, const char **next,
                      ls_err *err)
{
    const char *le = find_crlf(p, end);
    if (le == NULL)
        return end - p > CHUNK_LINE_MAX ? bad_chunk(err, "chunk-size line too long") : 0;
    uint64_t s = 0;
    const char *q = p;
    for (; q < le; q++) {
        int d;
        if (*q >= '0' && *q <= '9')
            d = *q - '0';
        else if (*q >= 'a' && *q <= 'f')
            d = *q - 'a' + 10;
        else if (*q >= 'A' && *q <= 'F')
            d = *q - 'A' + 10;
        else
            break;
        if (s > (UINT64_MAX >> 4)) return bad_chunk(err, "chunk size too large");
        s = (s << 4) | (uint64_t)d;
    }
    if (q == p) return bad_chunk(err, "chunk size is not hexadecimal");
    if (q < le && *q != ';' && *q != ' ' && *q != '\t')
        return bad_chunk(err, "chunk size is not hexadecimal");
    *size = s;
    *next = le + 2;
    return 1;
}

int ls_client_chunked_decode(const char *p, size_t n, size_t max, ls_buf *out, size_t *used,
                             ls_err *err)
{
    const char *q = p, *end = p + n;
    ls_buf_clear(out);
    for (;;) {
        uint64_t size;
        const char *data;
        int rc = chunk_size(q, end, &size, &data, err);
        if (rc <= 0) return rc;
        if (size == 0) {
            /* trailers, then a blank line */
            for (q = data;;) {
                const char *le = find_crlf(q, end);
                if (le == NULL) return 0;
                if (le == q) {
                    *used = (size_t)(le + 2 - p);
                    return 1;
                }
                q = le + 2;
            }
        }
        if (size > max || out->len > max - size) {
            ls_err_set(err, LS_EFORMAT, "answer body larger than %zu bytes", max);
            return -1;
        }
        if ((uint64_t)(end - data) < size + 2) return 0;
        if (data[size] != '\r' || data[size + 1] != '\n')
            return bad_chunk(err, "chunk data not followed by CRLF");
        if (ls_buf_append(out, data, (size_t)size, err) != LS_OK) return -1;
        q = data + size + 2;
    }
}

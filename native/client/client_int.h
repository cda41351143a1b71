/* SPDX-License-Identifier: MIT
 * Internal to native/client/: the HTTP/1.1 response parser that client.c
 * feeds with what it has read so far. Pure functions over a byte range, so
 * they are tested without sockets (tests/c/test_client.c).
 */
#ifndef LS_CLIENT_INT_H
#define LS_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_client.h"
#include "lodestone/ls_err.h"

/* How the body of a response is delimited. */
typedef enum {
    LS_CLIENT_BODY_NONE,    /* 1xx, 204, 304: no body */
    LS_CLIENT_BODY_LENGTH,  /* Content-Length bytes */
    LS_CLIENT_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    LS_CLIENT_BODY_CLOSE    /* until the server closes the connection */
} ls_client_framing;

typedef struct {
    int status;     /* 100..999 */
    int keep_alive; /* 1: the connection may be reused afterwards */
    ls_client_framing framing;
    uint64_t content_length; /* with LS_CLIENT_BODY_LENGTH */
    size_t head_len;         /* bytes of status line and headers, blank line included */
} ls_client_head;

/* Parses the status line and headers at the start of p[0..n).
 * Returns 1 with *h filled when the head is complete, 0 when more bytes are
 * needed, -1 with err set (LS_EFORMAT) when the bytes are not an HTTP/1.x
 * response head or the head is longer than LS_CLIENT_HEAD_MAX. */
int ls_client_head_parse(const char *p, size_t n, ls_client_head *h, ls_err *err);

/* Decodes a chunked body at the start of p[0..n) into out (cleared first).
 * Returns 1 when the last chunk and the trailers are complete (*used: bytes
 * consumed), 0 when more bytes are needed, -1 with err set (LS_EFORMAT when
 * malformed or when the body would exceed max, LS_ENOMEM). */
int ls_client_chunked_decode(const char *p, size_t n, size_t max, ls_buf *out, size_t *used,
                             ls_err *err);

#endif

/* SPDX-License-Identifier: MIT
 * Growable caller-owned byte buffers; contents always NUL-terminated. */
#include "ls_config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_buf.h"

ls_rc ls_buf_reserve(ls_buf *b, size_t extra, ls_err *err)
{
    if (extra > SIZE_MAX - 1 - b->len)
        return ls_err_set(err, LS_ENOMEM, "buffer size overflow (%zu + %zu bytes)", b->len, extra);
    size_t need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap) return LS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *p = ls_realloc(b->ptr, cap);
    if (p == NULL)
        return ls_err_set(err, LS_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->ptr = p;
    b->cap = cap;
    b->ptr[b->len] = '\0';
    return LS_OK;
}

ls_rc ls_buf_append(ls_buf *b, const void *data, size_t n, ls_err *err)
{
    ls_rc rc = ls_buf_reserve(b, n, err);
    if (rc != LS_OK) return rc;
    if (n) memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return LS_OK;
}

ls_rc ls_buf_putc(ls_buf *b, unsigned char c, ls_err *err)
{
    return ls_buf_append(b, &c, 1, err);
}

ls_rc ls_buf_printf(ls_buf *b, ls_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ls_err_set(err, LS_EINVAL, "bad format string \"%s\"", fmt);

    ls_rc rc = ls_buf_reserve(b, (size_t)n, err);
    if (rc != LS_OK) return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return LS_OK;
}

ls_rc ls_buf_set(ls_buf *b, const void *data, size_t n, ls_err *err)
{
    ls_buf_clear(b);
    return ls_buf_append(b, data, n, err);
}

void ls_buf_clear(ls_buf *b)
{
    b->len = 0;
    if (b->ptr) b->ptr[0] = '\0';
}

void ls_buf_free(ls_buf *b)
{
    if (b == NULL) return;
    ls_free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

unsigned char *ls_buf_steal(ls_buf *b, size_t *len)
{
    unsigned char *p = b->ptr;
    if (len) *len = b->len;
    b->ptr = NULL;
    b->len = b->cap = 0;
    return p;
}

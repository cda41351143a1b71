/* SPDX-License-Identifier: MIT
 * Growable byte buffer for variable-size results. The caller owns it,
 * reuses it across calls, and releases it once with ls_buf_free.
 * Contents are always followed by a NUL byte (not counted in len) once the
 * buffer holds anything, so text results can be used as C strings.
 */
#ifndef LODESTONE_BUF_H
#define LODESTONE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    unsigned char *ptr; /* NULL until first use */
    size_t len;         /* bytes in use */
    size_t cap;         /* bytes allocated */
} ls_buf;

#define LS_BUF_INIT \
    {               \
        NULL, 0, 0  \
    }

/* Makes room for `extra` more bytes (plus the trailing NUL) without
 * changing len. Returns LS_ENOMEM (err set) on failure, buffer untouched. */
LS_API ls_rc ls_buf_reserve(ls_buf *b, size_t extra, ls_err *err);

/* Appends n bytes of data (data may be NULL when n is 0). */
LS_API ls_rc ls_buf_append(ls_buf *b, const void *data, size_t n, ls_err *err);

/* Appends one byte. */
LS_API ls_rc ls_buf_putc(ls_buf *b, unsigned char c, ls_err *err);

/* Appends printf-formatted text. */
LS_API ls_rc ls_buf_printf(ls_buf *b, ls_err *err, const char *fmt, ...) LS_PRINTF(3, 4);

/* Replaces the contents with n bytes of data. */
LS_API ls_rc ls_buf_set(ls_buf *b, const void *data, size_t n, ls_err *err);

/* Sets len to 0, keeping the allocation for reuse. */
LS_API void ls_buf_clear(ls_buf *b);

/* Releases the allocation and resets b to LS_BUF_INIT. b may be NULL. */
LS_API void ls_buf_free(ls_buf *b);

/* Hands the allocation to the caller (caller frees with ls_free) and resets
 * b. Returns NULL when b holds nothing. */
LS_API unsigned char *ls_buf_steal(ls_buf *b, size_t *len /* OUT, may be NULL */);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT
 * Strict base64 (RFC 4648 section 4, padded) and base64url (section 5,
 * unpadded, as JOSE uses it). Decoders accept exactly one spelling of each
 * byte string: no whitespace, no characters outside the alphabet, no padding
 * in base64url, padding required in base64, and the unused bits of the last
 * character must be zero. Conventions: see ls_err.h.
 */
#ifndef LODESTONE_BASE64_H
#define LODESTONE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Characters needed to encode n bytes (no NUL counted). */
LS_API size_t ls_base64url_encoded_len(size_t n);
LS_API size_t ls_base64_encoded_len(size_t n);

/* Largest number of bytes that len characters can decode to; an upper bound
 * to size a caller array for ls_base64url_decode_into. */
LS_API size_t ls_base64_decoded_max(size_t len);

/* Appends the encoding of n bytes of data (data may be NULL when n is 0) to
 * out. On failure (LS_ENOMEM) out is unchanged. */
LS_API ls_rc ls_base64url_encode(const void *data, size_t n, ls_buf *out, ls_err *err);
LS_API ls_rc ls_base64_encode(const void *data, size_t n, ls_buf *out, ls_err *err);

/* Decodes len characters of text and appends the bytes to out. LS_EINVAL
 * with "invalid base64url: ..." naming the offset of the first bad
 * character, padding, an impossible length or non-zero unused bits. On
 * failure out is unchanged. */
LS_API ls_rc ls_base64url_decode(const char *text, size_t len, ls_buf *out, ls_err *err);
LS_API ls_rc ls_base64_decode(const char *text, size_t len, ls_buf *out, ls_err *err);

/* Like ls_base64url_decode, without allocating: writes into out (cap bytes)
 * and sets *outlen. LS_EINVAL when the text is invalid or the result does
 * not fit in cap bytes. */
LS_API ls_rc ls_base64url_decode_into(const char *text, size_t len, unsigned char *out, size_t cap,
                                      size_t *outlen, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

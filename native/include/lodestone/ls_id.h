/* SPDX-License-Identifier: MIT
 * 128-bit time-sortable ids: 48 bits of Unix time in milliseconds, then 80
 * random bits from libsodium. The text form is 26 characters of Crockford
 * base32 (0-9, A-Z without I, L, O, U); text and bytes both sort by time.
 * Ids made in the same millisecond by one process sort in creation order:
 * the random part is incremented instead of redrawn.
 */
#ifndef LODESTONE_ID_H
#define LODESTONE_ID_H

#include <stddef.h>
#include <stdint.h>

#include "ls_clock.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LS_ID_BYTES   16
#define LS_ID_TEXTLEN 26

typedef struct {
    uint8_t b[LS_ID_BYTES]; /* big-endian: time first */
} ls_id;

/* Makes a new id with the time from clock (NULL: system clock). Thread-safe.
 * Fails with LS_EIO if libsodium cannot be initialised, or LS_EINVAL when
 * the clock reads before 1970 or after the year 10889 (48-bit overflow). */
LS_API ls_rc ls_id_new(ls_id *out, const ls_clock *clock, ls_err *err);

/* Writes the 26-character text form and a NUL into out. Never fails. */
LS_API void ls_id_format(const ls_id *id, char out[LS_ID_TEXTLEN + 1]);

/* Parses the text form (case-insensitive; I and L read as 1, O as 0, as
 * Crockford base32 specifies). LS_EINVAL with the position of the first bad
 * character, or on a wrong length or overflowing value. */
LS_API ls_rc ls_id_parse(ls_id *out, const char *text, size_t len, ls_err *err);

/* Milliseconds since the epoch stored in id. */
LS_API int64_t ls_id_time_ms(const ls_id *id);

/* memcmp order, which is time order. */
LS_API int ls_id_cmp(const ls_id *a, const ls_id *b);

#ifdef __cplusplus
}
#endif
#endif

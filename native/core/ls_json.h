/* SPDX-License-Identifier: MIT
 * The project's JSON helpers over jansson. Internal to Lodestone (not part
 * of the public headers): the one place that includes <jansson.h>, so every
 * other file reaches jansson through here. Errors name the position in the
 * text or the field that was wrong.
 */
#ifndef LS_JSON_H
#define LS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_err.h"

/* Largest integer a double holds exactly: what Lua 5.1/LuaJIT can carry. */
#define LS_JSON_EXACT_INT ((int64_t)1 << 53)

/* Parses len bytes of JSON text (any value at the top, duplicate object keys
 * rejected, \u0000 allowed in strings). On success *out is a new reference:
 * caller frees with json_decref. On failure LS_EINVAL with "line L column C
 * (byte B): what". */
ls_rc ls_json_parse(const char *text, size_t len, json_t **out, ls_err *err);

/* Appends the compact encoding of v (object keys sorted) to out. */
ls_rc ls_json_dump(const json_t *v, ls_buf *out, ls_err *err);

/* ---- writing JSON text directly, byte for byte as ls_json_dump would ----
 * For encoders that walk their own values (the Lua binding) instead of
 * building a json_t first. Each appends to out; LS_ENOMEM is the only
 * failure. */

/* 1 when the n bytes at s are UTF-8 as jansson accepts it (no overlong
 * forms, no surrogates, nothing above U+10FFFF; NUL bytes allowed). */
int ls_json_utf8_valid(const char *s, size_t n);

/* The length of the one character of UTF-8 (as above) that starts the n
 * bytes at s: 1 for an ASCII byte, 2 to 4, or 0 when no valid sequence
 * starts there (or n is 0). */
size_t ls_json_utf8_seq(const char *s, size_t n);

/* Where to cut text s, longer than max bytes, so that the first part ends
 * at a character's start: max, or up to 3 bytes less when s[max] is a
 * continuation byte (10xxxxxx). s must hold more than max bytes. */
size_t ls_utf8_cut(const char *s, size_t max);

/* A new JSON string of the n bytes at s: as they are when they are UTF-8
 * (as above), else with each byte that starts no valid sequence replaced
 * by U+FFFD, so that text stored before it was checked can still be shown.
 * NULL when out of memory. */
json_t *ls_json_string_lossy(const char *s, size_t n);

/* Decodes the JSON string text at *at (just past its opening quote) up to
 * end, as jansson reads strings: escapes resolved (\u0000 included),
 * surrogate pairs joined, UTF-8 checked, control characters refused. The
 * bytes go to out, which has room for end - *at bytes and may be *at
 * itself (decoding in place never overtakes the reading). Returns NULL
 * with *len the bytes written and *at past the closing quote, or what was
 * wrong ("invalid escape in a string", ...) with *at at the fault. */
const char *ls_json_string_decode(const unsigned char **at, const unsigned char *end,
                                  unsigned char *out, size_t *len);

/* Appends s (valid UTF-8, see above) as a JSON string with its quotes. */
ls_rc ls_json_put_string(ls_buf *out, const char *s, size_t n, ls_err *err);

/* Appends an integer. */
ls_rc ls_json_put_int(ls_buf *out, long long v, ls_err *err);

/* Appends a finite double as jansson writes a real: 17 significant digits,
 * always with a '.' or an exponent, the exponent without '+' or leading
 * zeros ("0.10000000000000001", "1.0", "1e300"). */
ls_rc ls_json_put_real(ls_buf *out, double v, ls_err *err);

/* ---- reading one member without building a tree ---- */

/* Finds the member key (plain ASCII, no escapes) of the object that the
 * JSON text holds at its top and, when its value is a string without
 * escapes, points *s and *n at it inside text. LS_ENOTFOUND when there is
 * no such member or its value is something else; LS_EINVAL (err untouched)
 * when the text is not a well-formed object as far as the scan goes: the
 * caller then parses it in full. For texts this program wrote. */
ls_rc ls_json_peek_string(const char *text, size_t len, const char *key, const char **s, size_t *n);

/* "object", "array", "string", "integer", "number", "boolean" or "null". */
const char *ls_json_type_name(const json_t *v);

/* Follows a dotted path ("realm_access.roles") through nested objects.
 * Returns the value (borrowed from obj) or NULL when any part is absent or
 * not an object. */
json_t *ls_json_path(const json_t *obj, const char *path);

/* Typed field getters for configuration and API bodies. Absent fields give
 * LS_ENOTFOUND with err untouched (the caller decides whether that is an
 * error); a field of another type gives LS_EINVAL "field 'name': expected a
 * string, got integer". Results are borrowed from obj. */
ls_rc ls_json_get_str(const json_t *obj, const char *field, const char **s, size_t *len,
                      ls_err *err);
ls_rc ls_json_get_int(const json_t *obj, const char *field, int64_t *v, ls_err *err);
ls_rc ls_json_get_num(const json_t *obj, const char *field, double *v, ls_err *err);
ls_rc ls_json_get_bool(const json_t *obj, const char *field, int *v, ls_err *err);
ls_rc ls_json_get_obj(const json_t *obj, const char *field, json_t **v, ls_err *err);
ls_rc ls_json_get_arr(const json_t *obj, const char *field, json_t **v, ls_err *err);

#endif

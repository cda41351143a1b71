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

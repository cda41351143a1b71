/* SPDX-License-Identifier: MIT
 * Declarations shared by the files of the Lua binding lodestone.core
 * (native/lua/). Internal: nothing here is part of the public API except
 * luaopen_lodestone_core, the module's one exported symbol.
 */
#ifndef LLS_H
#define LLS_H

#include "lls_compat.h"
#include "lodestone/ls_err.h"

/* Entry point for require "lodestone.core"; LS_API gives it default
 * visibility (the build hides everything else). */
LS_API int luaopen_lodestone_core(lua_State *L);

/* Pushes the json sub-module table (json.encode, json.decode, json.null,
 * json.array, json.object, json.array_mt, json.object_mt). */
void lls_open_json(lua_State *L);

/* Adds client_open (the daemon client, "lodestone.client" handles) and
 * id_new to the module table on the top of the stack. */
void lls_open_client(lua_State *L);

/* Adds policy_load, file_stamp and monotonic_ms to the module table on
 * the top of the stack, and registers the policy metatable. */
void lls_open_policy(lua_State *L);

/* Adds hmac_sha256, hmac_verify, base64url_encode and base64url_decode to
 * the module table on the top of the stack. */
void lls_open_crypto(lua_State *L);

/* Adds jwt_keyset, jwt_keyset_file, jwt_verify and jwt_cache to the module
 * table on the top of the stack, and registers the keyset and cache
 * metatables. */
void lls_open_jwt(lua_State *L);

/* Adds ratelimit_open to the module table on the top of the stack, and
 * registers the table's metatable. */
void lls_open_ratelimit(lua_State *L);

/* Adds cidr_new and cidr_client_addr to the module table on the top of the
 * stack, and registers the set's metatable. */
void lls_open_cidr(lua_State *L);

/* Adds policy_metrics to the module table on the top of the stack, and
 * registers the metrics table's metatable (LLS_PMETRICS_MT). */
#define LLS_PMETRICS_MT "lodestone.pmetrics"
void lls_open_pmetrics(lua_State *L);

/* The metrics table (ls_pmetrics_t *) of the userdata at idx; raises when
 * it is not one or is closed. */
struct ls_pmetrics;
struct ls_pmetrics *lls_check_pmetrics(lua_State *L, int idx);

/* Pushes the Lua form of a jansson value, as json.decode makes it (arrays
 * marked with json.array_mt, null as json.null). Returns 0, or -1 with err
 * set and the stack as it was when the value cannot be represented (an
 * integer beyond +-2^53 on LuaJIT, nesting too deep). Raises only on out
 * of memory. The json_t type stays opaque here (jansson is included by
 * native/core/ls_json.h only). */
struct json_t;
int lls_push_json(lua_State *L, const struct json_t *v, ls_err *err);

/* Pushes the failure triple nil, "<what>: <message>", "<code name>" and
 * returns 3, ready for `return lls_push_fail(L, "json.decode", &err);`. */
int lls_push_fail(lua_State *L, const char *what, const ls_err *err);

/* Records the public names of the functions fns that the table at t holds:
 * prefix .. name ("cache:" .. "verify"), or with a NULL prefix the name
 * with its first '_' made a '.' ("jwt_verify" is "jwt.verify"). */
void lls_name_funcs(lua_State *L, int t, const luaL_Reg *fns, const char *prefix);

/* luaL_argerror naming the running function by its public name (as
 * lls_name_funcs recorded it), also when Lua knows no name for it (a call
 * through pcall or from C would say '?'). A method call counts arguments
 * after self, and an error in self says "calling 'cache:verify' on bad
 * self (...)", as Lua does. */
int lls_argerror(lua_State *L, int arg, const char *msg);

/* Raises an argument error for argument arg (an options table) when one of
 * its keys is not in names (NULL-terminated): "unknown option 'x'", so a
 * misspelt option never falls back to its default unnoticed. */
void lls_check_option_names(lua_State *L, int arg, const char *const *names);

#endif

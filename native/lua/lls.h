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

/* Adds policy_load, file_stamp and monotonic_ms to the module table on
 * the top of the stack, and registers the policy metatable. */
void lls_open_policy(lua_State *L);

/* Adds hmac_sha256, hmac_verify, base64url_encode and base64url_decode to
 * the module table on the top of the stack. */
void lls_open_crypto(lua_State *L);

/* Pushes the failure triple nil, "<what>: <message>", "<code name>" and
 * returns 3, ready for `return lls_push_fail(L, "json.decode", &err);`. */
int lls_push_fail(lua_State *L, const char *what, const ls_err *err);

#endif

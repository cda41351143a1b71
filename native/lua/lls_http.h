/* SPDX-License-Identifier: MIT
 * lodestone.httpc: a blocking HTTP client (libcurl) for LuaJIT, for the
 * daemon's workers and the CLI. A module of its own, never part of
 * lodestone.core: core runs inside lighttpd, where blocking I/O is forbidden.
 * lua/lodestone/http.lua is the façade users call.
 */
#ifndef LLS_HTTP_H
#define LLS_HTTP_H

#include "lls_compat.h"
#include "lodestone/ls_err.h"

/* Entry point for require "lodestone.httpc": a table with request(t).
 * LS_API gives it default visibility (the build hides everything else). */
LS_API int luaopen_lodestone_httpc(lua_State *L);

#endif

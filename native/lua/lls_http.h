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

/* For lodestoned's runner (lls_flow.c): the transfers (httpc.start) that
 * a worker's parked activations wait for, all on that worker's thread. */

/* This thread's multi handle, made if need be (NULL: out of memory); the
 * pointer is for lls_httpc_wakeup. */
void *lls_httpc_multi(void);
/* Marks the transfer of the handle at idx as waited for by owner; 0 when it
 * has already finished (nothing marked). */
int lls_httpc_watch(lua_State *L, int idx, void *owner);
/* Drives this thread's transfers, waiting up to ms for one to finish or
 * for a wakeup, then calls ready(ud, owner) once for each owner whose
 * marked transfer has finished since it was marked. */
void lls_httpc_poll(int ms, void (*ready)(void *ud, void *owner), void *ud);
/* Makes the poll of the thread that made multi return; any thread. */
void lls_httpc_wakeup(void *multi);
/* Frees this thread's multi handle and lists; its transfers must be gone. */
void lls_httpc_thread_end(void);

#endif

/* SPDX-License-Identifier: MIT
 * Lua version compat for the binding: the binding is written against the
 * Lua 5.4 API, and this header shims it down to Lua 5.1 / LuaJIT 2.1. Every
 * version difference lives here, so the binding files carry no #ifdefs.
 * The one place (with lls.h) that includes lua.h and lauxlib.h.
 */
#ifndef LLS_COMPAT_H
#define LLS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* ---- 5.2 API missing in Lua 5.1 and LuaJIT 2.0 (LuaJIT 2.1 has these) ---- */

#if !defined(luaL_newlibtable)
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name != NULL; l++) {
        for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

static inline void *luaL_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i)) return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

static inline void luaL_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#endif

#if LUA_VERSION_NUM < 502
#define luaL_checkversion(L) ((void)(L)) /* 5.1 cannot check its core */
#define lua_rawlen(L, i)     lua_objlen((L), (i))
#define lua_absindex(L, i)   ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* ---- userdata: 5.4 has user values, older versions one environment ---- */

#if LUA_VERSION_NUM >= 504
#define lls_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define lls_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/* ---- numbers: Lua 5.1 and LuaJIT have no integer subtype ---- */

/* 1 when lua_Integer is a separate 64-bit number subtype (5.3+); 0 when all
 * numbers are doubles, exact only up to 2^53 (LS_JSON_EXACT_INT). */
#if LUA_VERSION_NUM >= 503
#define LLS_HAS_INTEGERS 1
#else
#define LLS_HAS_INTEGERS 0
static inline int lua_isinteger(lua_State *L, int i)
{
    (void)L;
    (void)i;
    return 0; /* every number is a float */
}
#endif

/* Type of lua_rawgeti's index: lua_Integer on 5.3+, int before. */
#if LLS_HAS_INTEGERS
typedef lua_Integer lls_index;
#else
typedef int lls_index;
#endif

/* Pushes a 64-bit integer: exactly on 5.3+, as the nearest double elsewhere
 * (callers check the range first when exactness matters). */
static inline void lls_pushint64(lua_State *L, long long v)
{
#if LLS_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

#endif

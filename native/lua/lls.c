/* SPDX-License-Identifier: MIT
 * lodestone.core: the Lua binding's entry point. Builds the module table
 * (version, json) for Lua 5.4 and LuaJIT from one source; the binding keeps
 * no C globals, so a lua_State reused by mod_magnet can load it again.
 */
#include "ls_config.h"

#include "lls.h"
#include "lodestone/lodestone.h"

int lls_push_fail(lua_State *L, const char *what, const ls_err *err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, ls_err_text(err));
    lua_pushstring(L, ls_rc_name(err->code));
    return 3;
}

/* version() -> "MAJOR.MINOR.PATCH" */
static int l_version(lua_State *L)
{
    lua_pushstring(L, ls_version());
    return 1;
}

int luaopen_lodestone_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"version", l_version},
        {NULL, NULL},
    };
    luaL_checkversion(L); /* 5.4: the interpreter's core matches these headers */
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    lls_open_policy(L);
    lls_open_crypto(L);
    lls_open_jwt(L);
    lls_open_ratelimit(L);
    lls_open_cidr(L);
    lls_open_json(L);
    lua_setfield(L, -2, "json");
    return 1;
}

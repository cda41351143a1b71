/* SPDX-License-Identifier: MIT
 * Lua states of our own programs (see lls_state.h).
 */
#include "ls_config.h"

#include <stdlib.h>

#include "lls.h"
#include "lls_http.h"
#include "lls_state.h"

#ifndef LS_LUA_DIR
#define LS_LUA_DIR "/usr/share/lodestone/lua"
#endif

const char *lls_lua_dir(void)
{
    const char *dir = getenv("LODESTONE_LUA_DIR");
    return dir != NULL && *dir != '\0' ? dir : LS_LUA_DIR;
}

void lls_state_setup(lua_State *L, const char *lua_dir)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lua_dir, lua_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_lodestone_core);
    lua_setfield(L, -2, "lodestone.core");
    lua_pushcfunction(L, luaopen_lodestone_httpc);
    lua_setfield(L, -2, "lodestone.httpc");
    lua_pop(L, 2);
}

int lls_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* SPDX-License-Identifier: MIT
 * A LuaJIT state for our own programs: standard libraries, lodestone.core
 * preloaded (linked in, not loaded from a .so), and Lodestone's Lua files on
 * package.path. The `lodestone` CLI runs its Lua commands through here. */
#include "ls_config.h"

#include <stdio.h>
#include <stdlib.h>

#include "lls.h"
#include "lls_embed.h"

#include <lualib.h>

#ifndef LS_LUA_DIR
#define LS_LUA_DIR "/usr/share/lodestone/lua"
#endif

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

static void set_path(lua_State *L)
{
    const char *dir = getenv("LODESTONE_LUA_DIR");
    if (dir == NULL || *dir == '\0') dir = LS_LUA_DIR;
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_lodestone_core);
    lua_setfield(L, -2, "lodestone.core");
    lua_pop(L, 2);
}

/* Runs in protected mode: require(module).main(args). */
static int run(lua_State *L)
{
    const char *module = lua_touserdata(L, 1);
    int argc = (int)lua_tointeger(L, 2);
    char **argv = lua_touserdata(L, 3);
    set_path(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_call(L, 1, 1);
    return 1;
}

int lls_embed_run(const char *module, int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "lodestone: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);
    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, (void *)module);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int rc;
    if (lua_pcall(L, 3, 1, 1) != 0) {
        fprintf(stderr, "lodestone: %s\n", lua_tostring(L, -1));
        rc = 1;
    } else {
        rc = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    }
    lua_close(L);
    return rc;
}

/* SPDX-License-Identifier: MIT
 * A LuaJIT state for our own programs: standard libraries, lodestone.core
 * and lodestone.httpc preloaded (linked in, not loaded from a .so),
 * lodestone.cli.sys (a few system calls the CLI needs), and Lodestone's Lua
 * files on package.path. The `lodestone` CLI runs its Lua commands here. */
#include "ls_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lls.h"
#include "lls_embed.h"
#include "lls_state.h"

#include <lualib.h>

/* ---- lodestone.cli.sys: for the CLI only ---- */

/* isatty(fd) -> boolean */
static int l_sys_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
    return 1;
}

/* sleep_ms(n): sleeps n milliseconds (resumes after signals). */
static int l_sys_sleep_ms(lua_State *L)
{
    lua_Number n = luaL_checknumber(L, 1);
    if (!(n > 0)) return 0;
    long long ms = n > 86400000 ? 86400000 : (long long)n;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

/* now_ms() -> milliseconds on the monotonic clock (for elapsed times). */
static int l_sys_now_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    lua_pushnumber(L, (lua_Number)ms);
    return 1;
}

static int open_sys(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"isatty", l_sys_isatty},
        {"sleep_ms", l_sys_sleep_ms},
        {"now_ms", l_sys_now_ms},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}

static void set_path(lua_State *L)
{
    lls_state_setup(L, lls_lua_dir());
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_sys);
    lua_setfield(L, -2, "lodestone.cli.sys");
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
    lua_pushcfunction(L, lls_traceback);
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

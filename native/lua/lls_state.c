/* SPDX-License-Identifier: MIT
 * Lua states of our own programs (see lls_state.h).
 */
#include "ls_config.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lls.h"
#include "lls_http.h"
#include "lls_state.h"

/* ---- where the Lua files are ---- */

/* LS_LUA_DIR: the source tree's lua/, for binaries run from the build
 * tree; LS_BUILD_BIN_DIR (ls_config.h): where the build puts binaries;
 * LS_INSTALL_LUA_SUBDIR (ls_config.h): the Lua files of an installed copy,
 * relative to the prefix (the parent of the binary's directory). */
#ifndef LS_LUA_DIR
#define LS_LUA_DIR "/usr/local/" LS_INSTALL_LUA_SUBDIR
#endif

static char installed_dir[PATH_MAX];
static pthread_once_t installed_once = PTHREAD_ONCE_INIT;

/* The directory of the running binary (resolved), or "" when unknown. */
static void exe_dir(char *out, size_t size)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    out[0] = '\0';
    if (n <= 0) return;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf) return;
    *slash = '\0';
    snprintf(out, size, "%s", buf);
}

/* Run from the build tree: the source tree's lua/. Run from anywhere else
 * (an installed copy, a DESTDIR staging tree): PREFIX/share/lua/5.1, where
 * PREFIX is the parent of the binary's directory (bin/ or sbin/). */
static void find_installed(void)
{
    char dir[PATH_MAX], build[PATH_MAX];
    exe_dir(dir, sizeof dir);
    const char *bin = realpath(LS_BUILD_BIN_DIR, build) ? build : LS_BUILD_BIN_DIR;
    char *slash = strrchr(dir, '/');
    if (dir[0] == '\0' || strcmp(dir, bin) == 0 || slash == NULL) {
        snprintf(installed_dir, sizeof installed_dir, "%s", LS_LUA_DIR);
        return;
    }
    *slash = '\0';
    int n = snprintf(installed_dir, sizeof installed_dir, "%s/%s", slash == dir ? "" : dir,
                     LS_INSTALL_LUA_SUBDIR);
    if (n < 0 || (size_t)n >= sizeof installed_dir)
        snprintf(installed_dir, sizeof installed_dir, "%s", LS_LUA_DIR);
}

const char *lls_lua_dir(void)
{
    const char *dir = getenv("LODESTONE_LUA_DIR");
    if (dir != NULL && *dir != '\0') return dir;
    pthread_once(&installed_once, find_installed);
    return installed_dir;
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

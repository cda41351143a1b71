/* SPDX-License-Identifier: MIT
 * Lua states of our own programs (the `lodestone` CLI, lodestoned's
 * workers): where Lodestone's Lua files are, the native modules linked in,
 * and the message handler that adds a traceback. LuaJIT only; never part of
 * lodestone.core.
 */
#ifndef LLS_STATE_H
#define LLS_STATE_H

#include "lls_compat.h"

/* The directory of Lodestone's Lua files: $LODESTONE_LUA_DIR; else, for a
 * binary run from the build tree, the source tree's lua/; else (an
 * installed binary) PREFIX/share/lua/5.1, PREFIX being the parent of the
 * binary's directory. Static or from the environment; never NULL. */
const char *lls_lua_dir(void);

/* Puts lua_dir's ?.lua and ?/init.lua first on package.path and preloads
 * lodestone.core and lodestone.httpc (linked into the program). */
void lls_state_setup(lua_State *L, const char *lua_dir);

/* A lua_pcall message handler: the message with a traceback. */
int lls_traceback(lua_State *L);

#endif

/* SPDX-License-Identifier: MIT
 * Running Lodestone's Lua code inside our own programs (the `lodestone`
 * CLI): a LuaJIT state with lodestone.core and lodestone.httpc built in,
 * lodestone.cli.sys preloaded, and lua/ on the path.
 * No Lua types here, so callers need not include lua.h. */
#ifndef LLS_EMBED_H
#define LLS_EMBED_H

/* Requires Lua module `module` and calls its main(args), where args holds
 * argv[0..argc-1]; returns main's integer result (0 on success), or 1
 * after printing a Lua error to stderr. Lua files are found in
 * $LODESTONE_LUA_DIR, else in the directory the build configured. */
int lls_embed_run(const char *module, int argc, char **argv);

#endif

/* SPDX-License-Identifier: MIT
 * lodestone.core: the Lua binding's entry point. Builds the module table
 * (version, json) for Lua 5.4 and LuaJIT from one source; the binding keeps
 * no C globals, so a lua_State reused by mod_magnet can load it again.
 */
#include "ls_config.h"

#include <string.h>

#include "flow/cron.h"
#include "lls.h"
#include "lodestone/lodestone.h"

int lls_push_fail(lua_State *L, const char *what, const ls_err *err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, ls_err_text(err));
    lua_pushstring(L, ls_rc_name(err->code));
    return 3;
}

/* ---- public names, for argument errors ---- */

/* The registry key of the table function -> public name ("jwt.verify"). */
static const char names_key = 'n';

static void push_names(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&names_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (!lua_isnil(L, -1)) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L); /* weak keys: a module loaded again leaves no old closures */
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushlightuserdata(L, (void *)&names_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

void lls_name_funcs(lua_State *L, int t, const luaL_Reg *fns, const char *prefix)
{
    t = lua_absindex(L, t);
    push_names(L);
    for (; fns->name != NULL; fns++) {
        lua_getfield(L, t, fns->name);
        const char *us = prefix ? NULL : strchr(fns->name, '_');
        if (us) { /* "jwt_verify" -> "jwt.verify" */
            lua_pushlstring(L, fns->name, (size_t)(us - fns->name));
            lua_pushfstring(L, "%s.%s", lua_tostring(L, -1), us + 1);
            lua_remove(L, -2);
        } else {
            lua_pushfstring(L, "%s%s", prefix ? prefix : "", fns->name);
        }
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
}

int lls_argerror(lua_State *L, int arg, const char *msg)
{
    lua_Debug ar;
    if (!lua_getstack(L, 0, &ar)) return luaL_argerror(L, arg, msg);
    lua_getinfo(L, "nf", &ar); /* pushes the running function */
    push_names(L);
    lua_insert(L, -2);
    lua_rawget(L, -2);
    const char *name = lua_tostring(L, -1); /* kept alive by the names table */
    if (name == NULL) return luaL_argerror(L, arg, msg);
    /* A method ("tbl:take") counts its arguments after self, however it
     * was called (obj:m(), obj.m(obj), pcall(obj.m, obj), a tail call),
     * as its documented signature does. */
    if (strchr(name, ':') != NULL && --arg == 0)
        return luaL_error(L, "calling '%s' on bad self (%s)", name, msg);
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, name, msg);
}

void lls_check_option_names(lua_State *L, int arg, const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; names[i] != NULL && !known; i++) known = !strcmp(k, names[i]);
        }
        if (!known) {
            const char *k = lua_type(L, -1) == LUA_TSTRING
                                ? lua_tostring(L, -1)
                                : lua_pushfstring(L, "(a %s key)", luaL_typename(L, -1));
            lls_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
        }
    }
}

/* duration_ms(text) -> milliseconds | nil, message: the project's one
 * duration grammar (ls_duration_parse: "250ms", "10s", "1h30m", "30"). */
static int l_duration_ms(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int64_t ms;
    ls_err err;
    if (ls_duration_parse(text, len, &ms, &err) != LS_OK) {
        lua_pushnil(L);
        lua_pushstring(L, ls_err_text(&err));
        return 2;
    }
    lls_pushint64(L, ms);
    return 1;
}

/* cron_next(text [, after_ms]) -> the first fire time (ms since the epoch,
 * UTC) strictly after after_ms (default 0) | nil, message: the engine's
 * own cron parser (flow/cron.h), so that a schedule fails when its
 * workflow file loads with the message lodestoned would give. */
static int l_cron_next(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    double a = (double)luaL_optnumber(L, 2, 0);
    if (!(a >= -9007199254740992.0 && a <= 9007199254740992.0)) /* NaN, inf, beyond 2^53 */
        luaL_argerror(L, 2, "after_ms: milliseconds since the epoch, within +-2^53 expected");
    int64_t after = (int64_t)a, next;
    ls_cron c;
    ls_err err;
    if (ls_cron_parse(text, len, &c, &err) != LS_OK) {
        lua_pushnil(L);
        lua_pushstring(L, ls_err_text(&err));
        return 2;
    }
    if (ls_cron_next(&c, after, &next) != LS_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "cron \"%s\": never fires", text);
        return 2;
    }
    lls_pushint64(L, next);
    return 1;
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
        {"duration_ms", l_duration_ms},
        {"cron_next", l_cron_next},
        {NULL, NULL},
    };
    luaL_checkversion(L); /* 5.4: the interpreter's core matches these headers */
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    lls_open_policy(L);
    lls_open_crypto(L);
    lls_open_client(L);
    lls_open_jwt(L);
    lls_open_ratelimit(L);
    lls_open_cidr(L);
    lls_open_pmetrics(L);
    lls_open_json(L);
    lua_setfield(L, -2, "json");
    return 1;
}

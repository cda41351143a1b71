/* SPDX-License-Identifier: MIT
 * lodestone.core rate limiting for custom scripts: a GCRA table in a
 * shared memory file (every lighttpd worker process that opens the same
 * path shares one budget per key) and take() against it. Thin over
 * ls_ratelimit.h; the façade adds the lazily opened per-state table of
 * lodestone.ratelimit.take. */
#include "ls_config.h"

#include "lls.h"
#include "lodestone/ls_ratelimit.h"

#define RL_MT "lodestone.ratelimit"

typedef struct {
    ls_rl_t *rl;
} rl_box;

static rl_box *check_rl(lua_State *L, int idx)
{
    rl_box *b = luaL_checkudata(L, idx, RL_MT);
    if (b->rl == NULL) lls_argerror(L, idx, "rate-limit table is closed");
    return b;
}

static int l_rl_close(lua_State *L)
{
    rl_box *b = luaL_checkudata(L, 1, RL_MT);
    ls_rl_close(b->rl);
    b->rl = NULL;
    return 0;
}

/* Largest whole number every Lua runtime holds exactly (2^53). */
#define EXACT_MAX 9007199254740992.0

/* A whole number from lo to EXACT_MAX at idx (absent or nil: def), or an
 * argument error. Upper bounds are the C library's to check. */
static int64_t check_count(lua_State *L, int idx, const char *name, int64_t def, int lo)
{
    if (lua_isnoneornil(L, idx)) return def;
    double x = (double)luaL_checknumber(L, idx);
    if (!(x >= lo && x <= EXACT_MAX) || x != (double)(int64_t)x)
        lls_argerror(L, idx, lua_pushfstring(L, "%s must be a whole number >= %d", name, lo));
    return (int64_t)x;
}

/* opts[name] as a whole number >= 1, or 0 when absent. */
static int64_t field_count(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    double x = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (absent) return 0;
    if (!(x >= 1 && x <= EXACT_MAX) || x != (double)(int64_t)x)
        lls_argerror(L, t, lua_pushfstring(L, "%s must be a whole number >= 1", name));
    return (int64_t)x;
}

/* ratelimit_open(path, [{capacity=, mode=}]) -> table | nil, msg, code */
static int l_rl_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    ls_rl_opts opts = {0, 0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const names[] = {"capacity", "mode", NULL};
        lls_check_option_names(L, 2, names);
        opts.capacity = (size_t)field_count(L, 2, "capacity");
        int64_t mode = field_count(L, 2, "mode");
        if (mode > 0777) lls_argerror(L, 2, "mode must be permission bits such as 384 (0600)");
        opts.mode = (unsigned)mode;
    }
    lua_settop(L, 2);
    rl_box *b = lls_newuserdata(L, sizeof *b);
    b->rl = NULL;
    luaL_setmetatable(L, RL_MT);
    ls_err err;
    if (ls_rl_open(&b->rl, path, &opts, &err) != LS_OK)
        return lls_push_fail(L, "ratelimit.open", &err);
    return 1;
}

static void set_int(lua_State *L, const char *name, int64_t v)
{
    lls_pushint64(L, v);
    lua_setfield(L, -2, name);
}

/* rl:take(key, rate, per, [burst], [cost]) -> allowed, info
 * per: a duration ("1s", "250ms", "1m") or seconds; burst (default: rate)
 * is the bucket size; cost defaults to 1. info = { limit, remaining,
 * retry_after (seconds, fractional; 0 when allowed), reset (whole seconds,
 * rounded up) }. A bad limit or cost raises. */
static int l_rl_take(lua_State *L)
{
    rl_box *b = check_rl(L, 1);
    size_t klen, plen;
    const char *key = luaL_checklstring(L, 2, &klen);
    luaL_checknumber(L, 3); /* rate is required */
    int64_t rate = check_count(L, 3, "rate", 0, 1);
    if (lua_type(L, 4) != LUA_TSTRING && lua_type(L, 4) != LUA_TNUMBER)
        lls_argerror(L, 4,
                     lua_pushfstring(L,
                                     "duration expected (\"1s\", \"250ms\" or seconds), "
                                     "got %s",
                                     luaL_typename(L, 4)));
    const char *per = lua_tolstring(L, 4, &plen);
    int64_t burst = check_count(L, 5, "burst", 0, 1);
    int64_t cost = check_count(L, 6, "cost", 1, 0);
    ls_rl_limit lim;
    ls_rl_result res;
    ls_err err;
    if (ls_rl_limit_parse(&lim, rate, per, plen, burst, &err) != LS_OK ||
        ls_rl_take(b->rl, key, klen, &lim, cost, NULL, &res, &err) != LS_OK)
        return luaL_error(L, "ratelimit.take: %s", ls_err_text(&err));
    lua_pushboolean(L, res.allowed);
    lua_createtable(L, 0, 4);
    set_int(L, "limit", res.limit);
    set_int(L, "remaining", res.remaining);
    lua_pushnumber(L, (lua_Number)res.retry_after_ms / 1000);
    lua_setfield(L, -2, "retry_after");
    set_int(L, "reset", (res.reset_ms + 999) / 1000);
    return 2;
}

/* rl:stats() -> { capacity, used, evictions, recovered } */
static int l_rl_stats(lua_State *L)
{
    rl_box *b = check_rl(L, 1);
    ls_rl_stats st;
    ls_rl_stats_get(b->rl, &st);
    lua_createtable(L, 0, 4);
    set_int(L, "capacity", (int64_t)st.capacity);
    set_int(L, "used", (int64_t)st.used);
    set_int(L, "evictions", (int64_t)st.evictions);
    set_int(L, "recovered", (int64_t)st.recovered);
    return 1;
}

static int l_rl_tostring(lua_State *L)
{
    lua_pushfstring(L, RL_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

void lls_open_ratelimit(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"take", l_rl_take},
        {"stats", l_rl_stats},
        {"close", l_rl_close},
        {NULL, NULL},
    };
    luaL_newmetatable(L, RL_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lls_name_funcs(L, -1, methods, "tbl:");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_rl_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_rl_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_rl_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"ratelimit_open", l_rl_open},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    lls_name_funcs(L, -1, funcs, NULL);
}

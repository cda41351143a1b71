/* SPDX-License-Identifier: MIT
 * lodestone.core policy metrics: the shared table of decision counters and
 * times (ls_pmetrics.h) that the mod_magnet gate hands to its policies and
 * renders at its metrics endpoint. Thin over ls_pmetrics.h. */
#include "ls_config.h"

#include "lls.h"
#include "lodestone/ls_pmetrics.h"

typedef struct {
    ls_pmetrics_t *m;
} pm_box;

ls_pmetrics_t *lls_check_pmetrics(lua_State *L, int idx)
{
    pm_box *b = luaL_checkudata(L, idx, LLS_PMETRICS_MT);
    if (b->m == NULL) luaL_argerror(L, idx, "metrics table is closed");
    return b->m;
}

static int l_pm_close(lua_State *L)
{
    pm_box *b = luaL_checkudata(L, 1, LLS_PMETRICS_MT);
    ls_pmetrics_close(b->m);
    b->m = NULL;
    return 0;
}

/* policy_metrics(path) -> table | nil, msg, code */
static int l_pm_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    pm_box *b = lls_newuserdata(L, sizeof *b);
    b->m = NULL;
    luaL_setmetatable(L, LLS_PMETRICS_MT);
    ls_err err;
    if (ls_pmetrics_open(&b->m, path, &err) != LS_OK) return lls_push_fail(L, "metrics", &err);
    return 1;
}

/* m:render() -> Prometheus text | nil, msg, code */
static int l_pm_render(lua_State *L)
{
    ls_pmetrics_t *m = lls_check_pmetrics(L, 1);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_pmetrics_render(m, &out, &err);
    if (rc == LS_OK) lua_pushlstring(L, (const char *)out.ptr, out.len);
    ls_buf_free(&out);
    return rc == LS_OK ? 1 : lls_push_fail(L, "metrics", &err);
}

/* m:record(policy, allow, reason, seconds): counts one decision (tests and
 * custom scripts; policies given the table count their own). */
static int l_pm_record(lua_State *L)
{
    ls_pmetrics_t *m = lls_check_pmetrics(L, 1);
    const char *policy = luaL_checkstring(L, 2);
    int allow = lua_toboolean(L, 3);
    const char *reason = luaL_checkstring(L, 4);
    lua_Number s = luaL_checknumber(L, 5);
    ls_pmetrics_record(m, policy, allow, reason, (int64_t)(s * 1e9));
    return 0;
}

static int l_pm_tostring(lua_State *L)
{
    lua_pushfstring(L, LLS_PMETRICS_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

void lls_open_pmetrics(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"render", l_pm_render},
        {"record", l_pm_record},
        {"close", l_pm_close},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, LLS_PMETRICS_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_pm_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_pm_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_pm_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_pm_open);
    lua_setfield(L, -2, "policy_metrics");
}

/* SPDX-License-Identifier: MIT
 * lodestone.core's daemon client for mod_magnet scripts: client_open()
 * gives a handle over ls_client.h (one kept-alive connection to
 * lodestoned's unix socket, a total timeout per request); id_new() makes a
 * time-sortable id like the daemon's. Thin: the façade
 * lua/lodestone/client.lua speaks the workflow API on top. */
#include "ls_config.h"

#include <string.h>

#include "lls.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_client.h"
#include "lodestone/ls_id.h"

#define CLIENT_MT "lodestone.client"

typedef struct {
    ls_client_t *c;
    ls_buf resp; /* the last answer's body, reused; freed by close */
} client_box;

static client_box *check_client(lua_State *L, int idx)
{
    client_box *b = luaL_checkudata(L, idx, CLIENT_MT);
    if (b->c == NULL) luaL_argerror(L, idx, "client is closed");
    return b;
}

static int l_client_close(lua_State *L)
{
    client_box *b = luaL_checkudata(L, 1, CLIENT_MT);
    ls_client_close(b->c);
    b->c = NULL;
    ls_buf_free(&b->resp);
    return 0;
}

/* A whole number from 1 to max at opts[name], or 0 when absent. */
static long opt_count(lua_State *L, int t, const char *name, long max)
{
    lua_getfield(L, t, name);
    int absent = lua_isnil(L, -1);
    double x = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
    lua_pop(L, 1);
    if (absent) return 0;
    if (!(x >= 1 && x <= (double)max) || x != (double)(long)x)
        luaL_argerror(L, t,
                      lua_pushfstring(L, "%s must be a whole number from 1 to %d", name,
                                      (int)(max > 0x7fffffff ? 0x7fffffff : max)));
    return (long)x;
}

/* A string argument without NUL bytes (a C string would end at the first
 * one, so that "/v1/\0x" became "/v1/" unseen). */
static const char *check_text(lua_State *L, int arg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (memchr(s, '\0', len) != NULL) luaL_argerror(L, arg, "contains a NUL byte");
    return s;
}

/* client_open(socket, [{timeout_ms=, max_response=}]) -> client | nil, msg, code */
static int l_client_open(lua_State *L)
{
    const char *path = check_text(L, 1);
    ls_client_opts o = {0, 0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        o.timeout_ms = (int)opt_count(L, 2, "timeout_ms", 3600000L);
        o.max_response = (size_t)opt_count(L, 2, "max_response", 1L << 30);
    }
    lua_settop(L, 2);
    client_box *b = lls_newuserdata(L, sizeof *b);
    b->c = NULL;
    b->resp = (ls_buf)LS_BUF_INIT;
    luaL_setmetatable(L, CLIENT_MT);
    ls_err err;
    if (ls_client_open(&b->c, path, &o, &err) != LS_OK) return lls_push_fail(L, "client", &err);
    return 1;
}

/* client:request(method, path, [body]) -> status, body | nil, msg, code */
static int l_client_request(lua_State *L)
{
    client_box *b = check_client(L, 1);
    const char *method = check_text(L, 2);
    const char *path = check_text(L, 3);
    size_t len = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &len);
    int status = 0;
    ls_err err;
    if (ls_client_request(b->c, method, path, body, len, &status, &b->resp, &err) != LS_OK)
        return lls_push_fail(L, "lodestone.client", &err);
    lua_pushinteger(L, status);
    lua_pushlstring(L, b->resp.len ? (const char *)b->resp.ptr : "", b->resp.len);
    return 2;
}

/* client:set_timeout(ms) */
static int l_client_set_timeout(lua_State *L)
{
    client_box *b = check_client(L, 1);
    lua_Number ms = luaL_checknumber(L, 2);
    if (!(ms >= 1 && ms <= 3600 * 1000)) luaL_argerror(L, 2, "timeout must be 1 to 3600000 ms");
    ls_client_set_timeout(b->c, (int)ms);
    return 0;
}

/* client:disconnect(): drops the kept connection */
static int l_client_disconnect(lua_State *L)
{
    ls_client_disconnect(check_client(L, 1)->c);
    return 0;
}

/* client:stats() -> {requests=, connects=, reconnects=, connected=} */
static int l_client_stats(lua_State *L)
{
    ls_client_stats st;
    ls_client_stats_get(check_client(L, 1)->c, &st);
    lua_createtable(L, 0, 4);
    lls_pushint64(L, (long long)st.requests);
    lua_setfield(L, -2, "requests");
    lls_pushint64(L, (long long)st.connects);
    lua_setfield(L, -2, "connects");
    lls_pushint64(L, (long long)st.reconnects);
    lua_setfield(L, -2, "reconnects");
    lua_pushboolean(L, st.connected);
    lua_setfield(L, -2, "connected");
    return 1;
}

static int l_client_tostring(lua_State *L)
{
    client_box *b = luaL_checkudata(L, 1, CLIENT_MT);
    lua_pushfstring(L, CLIENT_MT ": %p", (void *)b->c);
    return 1;
}

/* id_new() -> 26-character time-sortable id | nil, msg, code */
static int l_id_new(lua_State *L)
{
    ls_id id;
    ls_err err;
    char text[LS_ID_TEXTLEN + 1];
    if (ls_id_new(&id, NULL, &err) != LS_OK) return lls_push_fail(L, "id_new", &err);
    ls_id_format(&id, text);
    lua_pushlstring(L, text, LS_ID_TEXTLEN);
    return 1;
}

void lls_open_client(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"request", l_client_request},       {"set_timeout", l_client_set_timeout},
        {"disconnect", l_client_disconnect}, {"stats", l_client_stats},
        {"close", l_client_close},           {NULL, NULL},
    };
    luaL_newmetatable(L, CLIENT_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_client_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_client_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_client_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"client_open", l_client_open},
        {"id_new", l_id_new},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}

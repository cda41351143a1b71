/* SPDX-License-Identifier: MIT
 * lodestone.core CIDR sets for custom scripts: build a set of IPv4/IPv6
 * ranges once, test addresses against it, and find a request's client
 * address behind trusted proxies. Thin over ls_cidr.h. A malformed address
 * is in no set: contains gives false (plus the reason), never true. */
#include "ls_config.h"

#include <string.h>

#include "lls.h"
#include "lodestone/ls_cidr.h"

#define CIDR_MT "lodestone.cidr"

typedef struct {
    ls_cidr_set_t *set;
} cidr_box;

static cidr_box *check_set(lua_State *L, int idx)
{
    cidr_box *b = luaL_checkudata(L, idx, CIDR_MT);
    if (b->set == NULL) lls_argerror(L, idx, "cidr set is closed");
    return b;
}

static int l_cidr_close(lua_State *L)
{
    cidr_box *b = luaL_checkudata(L, 1, CIDR_MT);
    ls_cidr_set_free(b->set);
    b->set = NULL;
    return 0;
}

/* cidr_new({ "10.0.0.0/8", "::1", ... }) -> set | nil, msg, code
 * Entries that are not strings raise; entries that do not parse give
 * nil, "cidr.new: <entry>: ...", "EINVAL". */
static int l_cidr_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t n = lua_rawlen(L, 1);
    /* Entry pointers live in a userdata, collected with the call. */
    const char **entries = lls_newuserdata(L, (n ? n : 1) * sizeof *entries); /* 2 */
    luaL_checkstack(L, 8, "cidr.new");
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lls_index)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            lls_argerror(L, 1,
                         lua_pushfstring(L, "entry %d: string expected, got %s", (int)(i + 1),
                                         luaL_typename(L, -1)));
        size_t len;
        entries[i] = lua_tolstring(L, -1, &len); /* referenced by the list */
        lua_pop(L, 1);
        if (strlen(entries[i]) != len) {
            ls_err err;
            ls_err_set(&err, LS_EINVAL, "entry %zu contains a NUL byte", i + 1);
            return lls_push_fail(L, "cidr.new", &err);
        }
    }
    cidr_box *b = lls_newuserdata(L, sizeof *b); /* 3 */
    b->set = NULL;
    luaL_setmetatable(L, CIDR_MT);
    ls_err err;
    ls_rc rc = ls_cidr_set_new(&b->set, &err);
    if (rc == LS_OK) rc = ls_cidr_set_add_list(b->set, entries, n, &err);
    if (rc == LS_OK) return 1;
    ls_cidr_set_free(b->set);
    b->set = NULL;
    return lls_push_fail(L, "cidr.new", &err);
}

/* set:contains(ip) -> true | false | false, msg, "EINVAL" (ip is not an
 * address) */
static int l_cidr_contains(lua_State *L)
{
    cidr_box *b = check_set(L, 1);
    size_t len;
    const char *ip = luaL_checklstring(L, 2, &len);
    int found = 0;
    ls_err err;
    ls_rc rc = ls_cidr_set_contains(b->set, ip, len, &found, &err);
    lua_pushboolean(L, found);
    if (rc == LS_OK) return 1;
    lua_pushfstring(L, "cidr.contains: %s", ls_err_text(&err));
    lua_pushstring(L, ls_rc_name(err.code));
    return 3;
}

/* set:ranges() -> number of disjoint ranges after merging */
static int l_cidr_ranges(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ls_cidr_set_ranges(check_set(L, 1)->set));
    return 1;
}

static int l_cidr_tostring(lua_State *L)
{
    lua_pushfstring(L, CIDR_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

/* cidr_client_addr(peer, [xff], [trusted_set]) -> address | nil, msg, code */
static int l_cidr_client_addr(lua_State *L)
{
    size_t plen, xlen = 0;
    const char *peer = luaL_checklstring(L, 1, &plen);
    const char *xff = luaL_optlstring(L, 2, NULL, &xlen);
    const ls_cidr_set_t *trusted = lua_isnoneornil(L, 3) ? NULL : check_set(L, 3)->set;
    char out[LS_CIDR_TEXTMAX];
    ls_err err;
    if (ls_cidr_client_addr(peer, plen, xff, xlen, trusted, out, NULL, &err) != LS_OK)
        return lls_push_fail(L, "cidr.client_addr", &err);
    lua_pushstring(L, out);
    return 1;
}

void lls_open_cidr(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"contains", l_cidr_contains},
        {"ranges", l_cidr_ranges},
        {"close", l_cidr_close},
        {NULL, NULL},
    };
    luaL_newmetatable(L, CIDR_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lls_name_funcs(L, -1, methods, "set:");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_cidr_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_cidr_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_cidr_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"cidr_new", l_cidr_new},
        {"cidr_client_addr", l_cidr_client_addr},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    lls_name_funcs(L, -1, funcs, NULL);
}

/* SPDX-License-Identifier: MIT
 * lodestone.core JWT primitives for custom scripts: keysets (JWKS text or
 * file, PEM public keys, HMAC secrets), verification of a token into its
 * claims as a Lua table, and a verified-token cache for hot paths. Thin
 * over ls_jwt.h; a rejected token gives nil, reason, message, where reason
 * is the stable ls_jwt_reason_name ("expired"). Bad options raise. */
#include "ls_config.h"

#include <string.h>

#include "../policy/jwt_int.h" /* ls_jwt_claims: the claims tree, no JSON round trip */
#include "lls.h"
#include "lodestone/ls_jwt.h"

#define KEYSET_MT  "lodestone.jwt.keyset"
#define CACHE_MT   "lodestone.jwt.cache"
#define SCRATCH_MT "lodestone.jwt.scratch"

/* Longest audience and required-claim lists an options table may hold. */
#define MAX_LIST 16

/* Upvalue of every function that verifies: the per-state scratch box. */
#define UV_SCRATCH lua_upvalueindex(1)

typedef struct {
    ls_jwks_t *ks;
} keyset_box;

typedef struct {
    ls_jwt_cache_t *c;
    ls_manual_clock clock; /* opts.now: must outlive the cache, so it lives here */
} cache_box;

/* Holds a verified token while its claims become Lua values, so that an
 * out-of-memory error (a longjmp) in the middle leaks nothing: the next
 * verification, or __gc, frees it. */
typedef struct {
    ls_jwt_t *t;
} scratch_box;

static int l_scratch_gc(lua_State *L)
{
    scratch_box *s = lua_touserdata(L, 1);
    ls_jwt_free(s->t);
    s->t = NULL;
    return 0;
}

/* ---- options ---- */

typedef struct {
    ls_jwt_opts o;
    const char *aud[MAX_LIST];
    const char *req[MAX_LIST];
} vopts;

static const char *const opt_names[] = {
    "algorithms", "issuer",        "audience",     "leeway", "required",
    "now",        "max_token_len", "allow_no_exp", "typ",    NULL,
};

static int opt_error(lua_State *L, int arg, const char *name, const char *what)
{
    return lls_argerror(L, arg, lua_pushfstring(L, "opts.%s: %s", name, what));
}

static int opt_type_error(lua_State *L, int arg, const char *name, const char *want, int idx)
{
    return opt_error(L, arg, name,
                     lua_pushfstring(L, "%s expected, got %s", want, luaL_typename(L, idx)));
}

/* Pushes opts[name] (left on the stack, so its strings stay referenced)
 * and returns its type. */
static int get_opt(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    return lua_type(L, -1);
}

/* A string, or a list of at most MAX_LIST strings, at the stack top. */
static size_t opt_strings(lua_State *L, int arg, const char *name, const char **out)
{
    int v = lua_gettop(L);
    if (lua_type(L, v) == LUA_TSTRING) {
        out[0] = lua_tostring(L, v);
        return 1;
    }
    if (lua_type(L, v) != LUA_TTABLE) opt_type_error(L, arg, name, "string or list of strings", v);
    size_t n = lua_rawlen(L, v);
    if (n > MAX_LIST) opt_error(L, arg, name, lua_pushfstring(L, "at most %d items", MAX_LIST));
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, (lls_index)i + 1); /* stays on the stack */
        if (lua_type(L, -1) != LUA_TSTRING)
            opt_error(L, arg, name,
                      lua_pushfstring(L, "item %d: string expected, got %s", (int)(i + 1),
                                      luaL_typename(L, -1)));
        out[i] = lua_tostring(L, -1);
    }
    return n;
}

static uint32_t opt_algorithms(lua_State *L, int arg)
{
    int v = lua_gettop(L);
    uint32_t mask = 0;
    ls_err err;
    if (lua_type(L, v) == LUA_TSTRING) {
        if (ls_jwt_algs_parse(lua_tostring(L, v), &mask, &err) != LS_OK)
            opt_error(L, arg, "algorithms", err.msg);
        return mask;
    }
    if (lua_type(L, v) != LUA_TTABLE)
        opt_error(L, arg, "algorithms", "required: a list of names such as { \"RS256\" }");
    size_t n = lua_rawlen(L, v);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, v, (lls_index)i);
        size_t len = 0;
        const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        ls_jwt_alg alg;
        if (name == NULL)
            opt_error(L, arg, "algorithms",
                      lua_pushfstring(L, "item %d: string expected, got %s", (int)i,
                                      luaL_typename(L, -1)));
        if (ls_jwt_alg_parse(name, len, &alg, &err) != LS_OK)
            opt_error(L, arg, "algorithms", err.msg);
        mask |= LS_JWT_ALG_BIT(alg);
        lua_pop(L, 1);
    }
    if (mask == 0) opt_error(L, arg, "algorithms", "the list is empty");
    return mask;
}

static double opt_number(lua_State *L, int arg, const char *name)
{
    if (lua_type(L, -1) != LUA_TNUMBER) opt_type_error(L, arg, name, "number", -1);
    return (double)lua_tonumber(L, -1);
}

/* Reads the options table at arg into *v. Values stay on the stack until
 * the caller resets it; opts.now sets *clock and points the options at it.
 * Raises on a wrong option. Numbers are range-checked here only as far as
 * converting them needs; ls_jwt_verify checks the rest. */
static void read_opts(lua_State *L, int arg, vopts *v, ls_manual_clock *clock)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    luaL_checkstack(L, 2 * MAX_LIST + 16, "jwt options");
    lls_check_option_names(L, arg, opt_names);
    memset(v, 0, sizeof *v);
    get_opt(L, arg, "algorithms");
    v->o.algs = opt_algorithms(L, arg);
    if (get_opt(L, arg, "issuer") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) opt_type_error(L, arg, "issuer", "string", -1);
        v->o.issuer = lua_tostring(L, -1);
    }
    if (get_opt(L, arg, "typ") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) opt_type_error(L, arg, "typ", "string", -1);
        v->o.typ = lua_tostring(L, -1);
    }
    if (get_opt(L, arg, "audience") != LUA_TNIL) {
        v->o.n_audiences = opt_strings(L, arg, "audience", v->aud);
        v->o.audiences = v->aud;
        if (v->o.n_audiences == 0) /* would silently check nothing */
            opt_error(L, arg, "audience", "the list is empty (leave it out to not check aud)");
    }
    if (get_opt(L, arg, "required") != LUA_TNIL) {
        v->o.n_required = opt_strings(L, arg, "required", v->req);
        v->o.required = v->req;
    }
    if (get_opt(L, arg, "leeway") != LUA_TNIL) {
        double s = opt_number(L, arg, "leeway");
        if (!(s >= 0 && s <= 86400)) opt_error(L, arg, "leeway", "must be 0 to 86400 seconds");
        v->o.leeway_s = (int64_t)s;
    }
    if (get_opt(L, arg, "max_token_len") != LUA_TNIL) {
        double n = opt_number(L, arg, "max_token_len");
        if (!(n >= 1 && n <= 1 << 30)) opt_error(L, arg, "max_token_len", "must be 1 to 2^30");
        v->o.max_token_len = (size_t)n;
    }
    if (get_opt(L, arg, "now") != LUA_TNIL) {
        double now = opt_number(L, arg, "now");
        if (!(now >= 0 && now < 1e13)) opt_error(L, arg, "now", "must be seconds since the epoch");
        ls_manual_clock_init(clock, (int64_t)(now * 1000));
        v->o.clock = &clock->clock;
    }
    /* A boolean only: "false" or 0 would be true, and relax the check. */
    int t = get_opt(L, arg, "allow_no_exp");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) opt_type_error(L, arg, "allow_no_exp", "boolean", -1);
    if (lua_toboolean(L, -1)) v->o.flags |= LS_JWT_ALLOW_NO_EXP;
}

/* ---- results ---- */

/* Pushes the outcome of a verification: the claims table, or nil, reason,
 * message. Takes ownership of t. Bad options (LS_JWT_ERROR with
 * LS_EINVAL) raise an argument error for argument arg. */
static int push_verdict(lua_State *L, int arg, ls_rc rc, ls_jwt_t *t, ls_jwt_reason why,
                        const ls_err *err)
{
    if (rc == LS_OK) {
        scratch_box *s = lua_touserdata(L, UV_SCRATCH);
        s->t = t; /* freed by the scratch box if pushing raises */
        ls_err perr;
        int pushed = lls_push_json(L, ls_jwt_claims(t), &perr);
        s->t = NULL;
        ls_jwt_free(t);
        if (pushed == 0) return 1;
        lua_pushnil(L);
        lua_pushstring(L, "error");
        lua_pushfstring(L, "claims: %s", perr.msg);
        return 3;
    }
    if (rc == LS_EINVAL && why == LS_JWT_ERROR) return lls_argerror(L, arg, ls_err_text(err));
    lua_pushnil(L);
    lua_pushstring(L, ls_jwt_reason_name(why));
    lua_pushstring(L, ls_err_text(err));
    return 3;
}

/* Frees a token left behind by a verification that raised. */
static void scratch_reset(lua_State *L)
{
    scratch_box *s = lua_touserdata(L, UV_SCRATCH);
    ls_jwt_free(s->t);
    s->t = NULL;
}

/* ---- keysets ---- */

static keyset_box *check_keyset(lua_State *L, int idx)
{
    keyset_box *b = luaL_checkudata(L, idx, KEYSET_MT);
    if (b->ks == NULL) lls_argerror(L, idx, "keyset is closed");
    return b;
}

static int l_keyset_close(lua_State *L)
{
    keyset_box *b = luaL_checkudata(L, 1, KEYSET_MT);
    ls_jwks_free(b->ks);
    b->ks = NULL;
    return 0;
}

static keyset_box *new_keyset_box(lua_State *L)
{
    keyset_box *b = lls_newuserdata(L, sizeof *b);
    b->ks = NULL;
    luaL_setmetatable(L, KEYSET_MT);
    return b;
}

/* jwt_keyset([jwks_text]) -> keyset | nil, msg, code */
static int l_keyset(lua_State *L)
{
    size_t len = 0;
    const char *text = luaL_optlstring(L, 1, NULL, &len);
    keyset_box *b = new_keyset_box(L);
    ls_err err;
    ls_rc rc = text ? ls_jwks_parse(&b->ks, text, len, &err) : ls_jwks_new(&b->ks, &err);
    if (rc != LS_OK) return lls_push_fail(L, "jwt.keyset", &err);
    return 1;
}

/* jwt_keyset_file(path) -> keyset | nil, msg, code */
static int l_keyset_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    keyset_box *b = new_keyset_box(L);
    ls_err err;
    ls_rc rc = ls_jwks_load_file(&b->ks, path, &err);
    if (rc != LS_OK) return lls_push_fail(L, "jwt.keyset_file", &err);
    return 1;
}

/* The optional kid (string) and alg (algorithm name) arguments of the
 * add_* methods. */
static void key_args(lua_State *L, int idx, const char **kid, ls_jwt_alg *alg)
{
    *kid = luaL_optstring(L, idx, NULL);
    *alg = LS_JWT_ALG_ANY;
    if (lua_isnoneornil(L, idx + 1)) return;
    size_t len;
    const char *name = luaL_checklstring(L, idx + 1, &len);
    ls_err err;
    if (ls_jwt_alg_parse(name, len, alg, &err) != LS_OK) lls_argerror(L, idx + 1, err.msg);
}

/* Returns the keyset itself on success, for chaining. */
static int push_added(lua_State *L, ls_rc rc, const char *what, const ls_err *err)
{
    if (rc != LS_OK) return lls_push_fail(L, what, err);
    lua_settop(L, 1);
    return 1;
}

/* ks:add_pem(pem, [kid], [alg]) -> ks | nil, msg, code */
static int l_keyset_add_pem(lua_State *L)
{
    keyset_box *b = check_keyset(L, 1);
    size_t len;
    const char *pem = luaL_checklstring(L, 2, &len);
    const char *kid;
    ls_jwt_alg alg;
    key_args(L, 3, &kid, &alg);
    ls_err err;
    return push_added(L, ls_jwks_add_pem(b->ks, pem, len, kid, alg, &err), "jwt.add_pem", &err);
}

/* ks:add_secret(secret, [kid], [alg]) -> ks | nil, msg, code */
static int l_keyset_add_secret(lua_State *L)
{
    keyset_box *b = check_keyset(L, 1);
    size_t len;
    const char *secret = luaL_checklstring(L, 2, &len);
    const char *kid;
    ls_jwt_alg alg;
    key_args(L, 3, &kid, &alg);
    ls_err err;
    return push_added(L, ls_jwks_add_secret(b->ks, secret, len, kid, alg, &err), "jwt.add_secret",
                      &err);
}

/* ks:add_jwks(text) -> ks | nil, msg, code */
static int l_keyset_add_jwks(lua_State *L)
{
    keyset_box *b = check_keyset(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    ls_err err;
    return push_added(L, ls_jwks_add_json(b->ks, text, len, &err), "jwt.add_jwks", &err);
}

/* ks:count() -> usable keys, skipped keys */
static int l_keyset_count(lua_State *L)
{
    keyset_box *b = check_keyset(L, 1);
    lua_pushinteger(L, (lua_Integer)ls_jwks_count(b->ks));
    lua_pushinteger(L, (lua_Integer)ls_jwks_skipped(b->ks));
    return 2;
}

static int l_keyset_tostring(lua_State *L)
{
    lua_pushfstring(L, KEYSET_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

/* ---- verification ---- */

/* jwt_verify(token, keyset, opts) -> claims | nil, reason, msg */
static int l_verify(lua_State *L)
{
    scratch_reset(L);
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    keyset_box *ks = check_keyset(L, 2);
    vopts v;
    ls_manual_clock clock;
    read_opts(L, 3, &v, &clock);
    ls_jwt_t *t = NULL;
    ls_jwt_reason why = LS_JWT_ERROR;
    ls_err err; /* (not zeroed whole: a verdict per request) */
    err.code = LS_OK;
    err.msg[0] = '\0';
    ls_rc rc = ls_jwt_verify(&t, ks->ks, token, len, &v.o, &why, &err);
    lua_settop(L, 3);
    return push_verdict(L, 3, rc, t, why, &err);
}

/* ---- cache ---- */

static cache_box *check_cache(lua_State *L, int idx)
{
    cache_box *b = luaL_checkudata(L, idx, CACHE_MT);
    if (b->c == NULL) lls_argerror(L, idx, "cache is closed");
    return b;
}

static int l_cache_close(lua_State *L)
{
    cache_box *b = luaL_checkudata(L, 1, CACHE_MT);
    ls_jwt_cache_free(b->c);
    b->c = NULL;
    return 0;
}

static int64_t cache_field(lua_State *L, const char *name, int64_t def, int64_t max)
{
    lua_getfield(L, 2, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        lls_argerror(L, 2,
                     lua_pushfstring(L, "%s: number expected, got %s", name, luaL_typename(L, -1)));
    double x = (double)lua_tonumber(L, -1);
    if (!(x >= 1 && x <= (double)max))
        lls_argerror(L, 2, lua_pushfstring(L, "%s: must be 1 to %d", name, (int)max));
    lua_pop(L, 1);
    return (int64_t)x;
}

/* jwt_cache(opts, [{size=, ttl=}]) -> cache | nil, msg, code */
static int l_cache(lua_State *L)
{
    ls_jwt_cache_opts copts = {1024, 0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const names[] = {"size", "ttl", NULL};
        lls_check_option_names(L, 2, names);
        copts.capacity = (size_t)cache_field(L, "size", 1024, 1 << 24);
        copts.ttl_s = cache_field(L, "ttl", 0, INT64_C(86400) * 365);
    }
    lua_settop(L, 2);
    cache_box *b = lls_newuserdata(L, sizeof *b); /* index 3 */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, CACHE_MT);
    vopts v;
    read_opts(L, 1, &v, &b->clock);
    ls_err err;
    ls_rc rc = ls_jwt_cache_new(&b->c, &copts, &v.o, &err);
    if (rc == LS_EINVAL) return lls_argerror(L, 1, ls_err_text(&err));
    if (rc != LS_OK) return lls_push_fail(L, "jwt.cache", &err);
    lua_settop(L, 3);
    return 1;
}

/* cache:verify(token, keyset) -> claims | nil, reason, msg */
static int l_cache_verify(lua_State *L)
{
    scratch_reset(L);
    cache_box *b = check_cache(L, 1);
    size_t len;
    const char *token = luaL_checklstring(L, 2, &len);
    keyset_box *ks = check_keyset(L, 3);
    ls_jwt_t *t = NULL;
    ls_jwt_reason why = LS_JWT_ERROR;
    ls_err err; /* (not zeroed whole: a verdict per request) */
    err.code = LS_OK;
    err.msg[0] = '\0';
    ls_rc rc = ls_jwt_cache_verify(b->c, ks->ks, token, len, &t, &why, &err);
    return push_verdict(L, 1, rc, t, why, &err);
}

/* A counter: an integer on 5.4 (1, not 1.0), a double on LuaJIT. */
static void set_count(lua_State *L, const char *name, uint64_t n)
{
    lls_pushint64(L, n > INT64_MAX ? INT64_MAX : (long long)n);
    lua_setfield(L, -2, name);
}

/* cache:stats() -> { hits, misses, inserts, evictions, invalidations, count } */
static int l_cache_stats(lua_State *L)
{
    cache_box *b = check_cache(L, 1);
    ls_jwt_cache_stats st;
    ls_jwt_cache_get_stats(b->c, &st);
    lua_createtable(L, 0, 6);
    set_count(L, "hits", st.hits);
    set_count(L, "misses", st.misses);
    set_count(L, "inserts", st.inserts);
    set_count(L, "evictions", st.evictions);
    set_count(L, "invalidations", st.invalidations);
    set_count(L, "count", st.count);
    return 1;
}

/* cache:clear() */
static int l_cache_clear(lua_State *L)
{
    ls_jwt_cache_clear(check_cache(L, 1)->c);
    return 0;
}

static int l_cache_tostring(lua_State *L)
{
    lua_pushfstring(L, CACHE_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

/* ---- registration ---- */

/* Registers metatable name with methods (sharing the nup values on the
 * stack top, which it pops), close as __gc and __close, and tostring. */
static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, int nup,
                      const char *prefix, lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_insert(L, -(nup + 1));
    lua_newtable(L);
    lua_insert(L, -(nup + 1));
    luaL_setfuncs(L, methods, nup);
    lls_name_funcs(L, -1, methods, prefix);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void lls_open_jwt(lua_State *L)
{
    static const luaL_Reg keyset_methods[] = {
        {"add_pem", l_keyset_add_pem},   {"add_secret", l_keyset_add_secret},
        {"add_jwks", l_keyset_add_jwks}, {"count", l_keyset_count},
        {"close", l_keyset_close},       {NULL, NULL},
    };
    static const luaL_Reg cache_methods[] = {
        {"verify", l_cache_verify},
        {"stats", l_cache_stats},
        {"clear", l_cache_clear},
        {"close", l_cache_close},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"jwt_keyset", l_keyset},
        {"jwt_keyset_file", l_keyset_file},
        {"jwt_verify", l_verify},
        {"jwt_cache", l_cache},
        {NULL, NULL},
    };
    /* The scratch box of this load of the module, shared by its functions. */
    scratch_box *s = lls_newuserdata(L, sizeof *s);
    s->t = NULL;
    luaL_newmetatable(L, SCRATCH_MT);
    lua_pushcfunction(L, l_scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);

    new_class(L, KEYSET_MT, keyset_methods, 0, "ks:", l_keyset_close, l_keyset_tostring);
    lua_pushvalue(L, -1);
    new_class(L, CACHE_MT, cache_methods, 1, "cache:", l_cache_close, l_cache_tostring);
    luaL_setfuncs(L, funcs, 1); /* into the module table below the scratch box */
    lls_name_funcs(L, -1, funcs, NULL);
}

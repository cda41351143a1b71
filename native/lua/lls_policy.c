/* SPDX-License-Identifier: MIT
 * lodestone.core policy binding: load a policy from its declaration JSON
 * and decide requests with it. Thin over ls_policy.h; the Lua side
 * (lua/lodestone/policy.lua) turns mod_magnet's request into arguments and
 * the decision into lighttpd actions. Also the two small system helpers it
 * needs: a file stamp for hot reload and a monotonic clock. */
#include "ls_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lls.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_apikey.h"
#include "lodestone/ls_basic.h"
#include "lodestone/ls_clock.h"
#include "lodestone/ls_policy.h"

#define POLICY_MT "lodestone.policy"
#define MAX_ARGS  (6 + 32) /* fixed arguments + request headers */

typedef struct {
    ls_policy_t *p;
    int set_ref;          /* reused table of request headers to set */
    int resp_ref;         /* reused table of response headers */
    int vals_ref;         /* reused array of identity header values (decide) */
    int keys_ref;         /* the names gate() looks up, as Lua strings (GATE_*) */
    int metrics_ref;      /* the metrics table (opts.metrics), kept alive */
    ls_manual_clock now;  /* the clock when opts.now was given */
    ls_policy_decision d; /* the last decision; borrows from p */
    int has_d;
} policy_box;

/* For methods, whose upvalue 1 is the metatable: comparing with it is much
 * cheaper than luaL_checkudata's registry lookup by name, on the hot path. */
static policy_box *check_policy(lua_State *L, int idx)
{
    policy_box *b = lua_touserdata(L, idx);
    int ok = b != NULL && lua_getmetatable(L, idx);
    if (ok) {
        ok = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
    }
    if (!ok) b = luaL_checkudata(L, idx, POLICY_MT); /* raises the usual error */
    if (b->p == NULL) luaL_argerror(L, idx, "policy is closed");
    return b;
}

static int l_policy_close(lua_State *L)
{
    policy_box *b = luaL_checkudata(L, 1, POLICY_MT);
    ls_policy_free(b->p);
    b->p = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->set_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->resp_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->vals_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->metrics_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->keys_ref);
    b->set_ref = b->resp_ref = b->vals_ref = b->metrics_ref = b->keys_ref = LUA_NOREF;
    b->has_d = 0;
    return 0;
}

static const char *opt_field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive: it is referenced by the opts table */
    return s;
}

static int opt_flag(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The names a gate looks up in mod_magnet's objects: lighty.r, its
 * req_attr and req_header, these attributes, then the policy's request
 * headers, then (to write) its identity headers. They are kept as Lua
 * strings, so that a request makes none. */
static const char *const gate_names[] = {"r",
                                         "req_attr",
                                         "req_header",
                                         "uri.path-raw",
                                         "request.method",
                                         "request.remote-addr",
                                         "uri.query",
                                         "uri.authority"};
enum {
    GATE_R = 1,
    GATE_REQ_ATTR,
    GATE_REQ_HEADER,
    GATE_PATH,
    GATE_METHOD,
    GATE_ADDR,
    GATE_QUERY,
    GATE_HOST,
    GATE_HEADERS
};

static void gate_keys(lua_State *L, policy_box *b)
{
    size_t nh = ls_policy_header_count(b->p), ns = ls_policy_strip_count(b->p);
    lua_createtable(L, (int)(GATE_HEADERS - 1 + nh + ns), 0);
    lls_index k = 1;
    for (size_t i = 0; i < sizeof gate_names / sizeof gate_names[0]; i++, k++) {
        lua_pushstring(L, gate_names[i]);
        lua_rawseti(L, -2, k);
    }
    for (size_t i = 0; i < nh; i++, k++) {
        lua_pushstring(L, ls_policy_header_name(b->p, i));
        lua_rawseti(L, -2, k);
    }
    for (size_t i = 0; i < ns; i++, k++) {
        lua_pushstring(L, ls_policy_strip_name(b->p, i));
        lua_rawseti(L, -2, k);
    }
    b->keys_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* policy_load(json, [opts]) -> policy | nil, msg, code
 * opts: base_dir, rl_dir, cache_dir (strings), no_audit, private_rl (booleans), now
 * (seconds since the epoch: a clock frozen there, for offline checks),
 * metrics (a policy_metrics table: decisions are counted there). */
static int l_policy_load(lua_State *L)
{
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    ls_policy_opts opts = {0};
    lua_Number now = -1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts.base_dir = opt_field(L, 2, "base_dir");
        opts.rl_dir = opt_field(L, 2, "rl_dir");
        opts.cache_dir = opt_field(L, 2, "cache_dir");
        if (opt_flag(L, 2, "no_audit")) opts.flags |= LS_POLICY_NO_AUDIT;
        if (opt_flag(L, 2, "private_rl")) opts.flags |= LS_POLICY_PRIVATE_RL;
        lua_getfield(L, 2, "now");
        if (!lua_isnil(L, -1)) now = luaL_checknumber(L, -1);
        lua_pop(L, 1);
    }
    /* The box exists before the policy, so a raising allocation below
     * cannot leak it. */
    policy_box *b = lls_newuserdata(L, sizeof *b);
    b->p = NULL;
    b->set_ref = b->resp_ref = b->vals_ref = b->metrics_ref = b->keys_ref = LUA_NOREF;
    b->has_d = 0;
    luaL_setmetatable(L, POLICY_MT);
    lua_newtable(L);
    b->set_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    b->resp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    b->vals_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "metrics");
        if (lua_toboolean(L, -1)) {
            opts.metrics = lls_check_pmetrics(L, lua_gettop(L));
            b->metrics_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* outlives the policy */
        } else {
            lua_pop(L, 1);
        }
    }
    if (now >= 0) {
        ls_manual_clock_init(&b->now, (int64_t)(now * 1000));
        opts.clock = &b->now.clock; /* lives in the box, as long as the policy */
    }

    ls_err err;
    ls_rc rc = ls_policy_load(&b->p, json, len, &opts, &err);
    if (rc != LS_OK) return lls_push_fail(L, "policy", &err);
    gate_keys(L, b);
    return 1;
}

static ls_str arg_str(lua_State *L, int idx)
{
    ls_str s = {NULL, 0};
    if (lua_type(L, idx) == LUA_TSTRING) s.ptr = lua_tolstring(L, idx, &s.len);
    return s;
}

/* Empties the table at idx (a reused output table). */
static void clear_table(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }
}

static void fill_headers(lua_State *L, int ref, const ls_policy_header *h, size_t n)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    int t = lua_gettop(L);
    clear_table(L, t);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, h[i].value);
        lua_setfield(L, t, h[i].name);
    }
}

static void push_opt_string(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

/* What identity header i of pol:strip() is set to by decision d: its value
 * on an allow that sets it, else NULL (the header is removed). */
static const char *strip_value(const ls_policy_t *p, const ls_policy_decision *d, size_t i)
{
    const char *name = ls_policy_strip_name(p, i);
    for (size_t j = 0; d->allow && j < d->n_set_headers; j++)
        if (d->set_headers[j].name == name) return d->set_headers[j].value;
    return NULL;
}

/* Decides the request whose parts are the arguments from index 2 on:
 * method, path, query, host, remote_addr, body, h1, ..., hn. */
static ls_rc decide_args(lua_State *L, policy_box *b, ls_err *err)
{
    size_t nh = ls_policy_header_count(b->p);
    ls_str headers[32];
    ls_policy_request req = {
        .method = arg_str(L, 2),
        .path = arg_str(L, 3),
        .query = arg_str(L, 4),
        .host = arg_str(L, 5),
        .remote_addr = arg_str(L, 6),
        .body = arg_str(L, 7),
        .headers = headers,
    };
    for (size_t i = 0; i < nh && i < 32; i++) headers[i] = arg_str(L, 8 + (int)i);
    b->has_d = 0;
    ls_rc rc = ls_policy_eval(b->p, &req, &b->d, err);
    b->has_d = rc == LS_OK;
    return rc;
}

/* pol:eval(method, path, query, host, remote_addr, body, h1, ..., hn)
 *   -> status, reason, set_headers, resp_headers, body, subject, notice, rule, detail
 * status 0 means allow; hi are the values of pol:headers() in order (nil
 * when absent). The two header tables are reused by the next call. The
 * whole decision, for tools and tests; the gate uses pol:decide. */
static int l_policy_eval(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    ls_err err;
    if (decide_args(L, b, &err) != LS_OK) return lls_push_fail(L, "policy", &err);
    const ls_policy_decision *d = &b->d;
    lua_settop(L, 1);
    lua_pushinteger(L, d->allow ? 0 : d->status);
    push_opt_string(L, d->reason);
    fill_headers(L, b->set_ref, d->set_headers, d->allow ? d->n_set_headers : 0);
    fill_headers(L, b->resp_ref, d->resp_headers, d->n_resp_headers);
    if (d->body)
        lua_pushlstring(L, d->body, d->body_len);
    else
        lua_pushnil(L);
    push_opt_string(L, d->subject);
    push_opt_string(L, d->notice);
    push_opt_string(L, d->rule);
    push_opt_string(L, d->detail);
    return 9;
}

/* pol:decide(method, path, query, host, remote_addr, body, h1, ..., hn)
 *   -> status, values, notice
 * The gate's lean form of eval. values is an array (reused by the next
 * call) aligned with pol:strip(): values[i] is what to set strip[i] to, or
 * nil. On a denial (status >= 200) pol:response() gives the headers and
 * body to send; pol:explain() tells why. */
static int l_policy_decide(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    ls_err err;
    if (decide_args(L, b, &err) != LS_OK) return lls_push_fail(L, "policy", &err);
    const ls_policy_decision *d = &b->d;
    lua_settop(L, 1);
    lua_pushinteger(L, d->allow ? 0 : d->status);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->vals_ref);
    size_t n = ls_policy_strip_count(b->p);
    for (size_t i = 0; i < n; i++) {
        push_opt_string(L, strip_value(b->p, d, i));
        lua_rawseti(L, -2, (lls_index)i + 1);
    }
    push_opt_string(L, d->notice);
    return 3;
}

/* Pushes obj[keys[k]] (obj at index obj, keys at index keys): through
 * mod_magnet's __index for its request objects. */
static void get_key(lua_State *L, int obj, int keys, int k)
{
    lua_rawgeti(L, keys, k);
    lua_gettable(L, obj);
}

/* Where a gate's engine asks for request headers (ls_policy_request.header):
 * mod_magnet's r.req_header, through its __index, or what walk_headers
 * found there. The values stay on the Lua stack, alive until the gate
 * returns. */
#define GATE_MAX_HEADERS 32 /* request headers a policy reads (POLICY_MAX_HEADERS) */
typedef struct {
    lua_State *L;
    int keys, rh;
    int walked;                  /* 1: value[] holds every header the policy reads */
    int value[GATE_MAX_HEADERS]; /* stack index of header i's value; 0: absent */
    int lookalike, nlookalike;   /* stack index of the first lookalike's name, count */
} gate_headers;

static ls_str gate_header(void *ctx, size_t i)
{
    gate_headers *g = ctx;
    if (g->walked)
        return i < GATE_MAX_HEADERS && g->value[i] ? arg_str(g->L, g->value[i]) : (ls_str){NULL, 0};
    get_key(g->L, g->rh, g->keys, GATE_HEADERS + (int)i);
    return arg_str(g->L, -1);
}

static int same_name_icase(const char *a, size_t alen, const char *b)
{
    size_t k = 0;
    for (; k < alen && b[k]; k++) {
        unsigned char x = (unsigned char)a[k], y = (unsigned char)b[k];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return k == alen && b[k] == '\0';
}

/* Walks the request headers at g->rh once (mod_magnet's r.req_header,
 * whose __pairs walks lighttpd's headers, or a plain table without a
 * metatable), for a policy that strips lookalikes: keeps on the stack the
 * values of the headers the policy reads (so that its engine asks
 * mod_magnet for none of them) and the names of the headers that would
 * pass for an identity header with a backend that maps names the CGI way
 * (ls_policy_strip_lookalike: X_User for X-User), which an allowed
 * request loses (drop_lookalikes). A header with an empty value is one
 * mod_magnet removed (1.4.69 empties it in place): absent, as its __index
 * says. Raises when the headers cannot be walked (a proxy without
 * __pairs): lookalikes would otherwise go on unseen. */
static void walk_headers(gate_headers *g, const ls_policy_t *p)
{
    lua_State *L = g->L;
    size_t nh = ls_policy_header_count(p);
    if (nh > GATE_MAX_HEADERS)
        luaL_error(L, "policy gate: more than %d request headers", GATE_MAX_HEADERS);
    memset(g->value, 0, sizeof g->value);
    /* Below the walk's three slots, what it keeps: the values from vbase,
     * then the lookalikes' names from names. */
    int vbase = lua_gettop(L) + 1, names = vbase, fn = vbase;
    if (luaL_getmetafield(L, g->rh, "__pairs") != LUA_TNIL) {
        lua_pushvalue(L, g->rh);
        lua_call(L, 1, 3); /* iterator, state, control at fn .. fn + 2 */
        if (lua_type(L, fn) != LUA_TFUNCTION)
            luaL_error(L, "policy gate: the request headers' __pairs gave no iterator");
    } else {
        if (lua_type(L, g->rh) != LUA_TTABLE || lua_getmetatable(L, g->rh))
            luaL_error(L, "policy gate: cannot walk the request headers (no __pairs) to remove "
                          "lookalikes of the identity headers");
        lua_pushnil(L); /* (lua_next walks it) */
        lua_pushnil(L);
        lua_pushnil(L);
    }
    for (;;) {
        luaL_checkstack(L, 4, "policy gate");
        if (lua_isnil(L, fn)) { /* a plain table */
            lua_pushvalue(L, fn + 2);
            if (!lua_next(L, g->rh)) break;
        } else {
            lua_pushvalue(L, fn);
            lua_pushvalue(L, fn + 1);
            lua_pushvalue(L, fn + 2);
            lua_call(L, 2, 2);
            if (lua_isnil(L, -2)) {
                lua_pop(L, 2);
                break;
            }
        }
        lua_copy(L, -2, fn + 2); /* the control: this name */
        size_t len, vlen = 0;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (lua_type(L, -1) == LUA_TSTRING) lua_tolstring(L, -1, &vlen);
        if (name == NULL || vlen == 0) {
            lua_pop(L, 2);
            continue;
        }
        size_t hit = nh;
        for (size_t i = 0; i < nh && hit == nh; i++)
            if (same_name_icase(name, len, ls_policy_header_name(p, i))) hit = i;
        if (hit < nh && g->value[hit] == 0) {
            lua_insert(L, names); /* the value, after the values before it */
            g->value[hit] = names++;
            fn++;
        } else {
            lua_pop(L, 1);
        }
        /* A header the policy reads may be a lookalike too (header:X_User) */
        if (ls_policy_strip_lookalike(p, name, len)) {
            lua_insert(L, fn); /* the name, after the names before it */
            fn++;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_settop(L, fn - 1); /* the walk's slots go; what it kept stays */
    g->lookalike = names;
    g->nlookalike = fn - names;
    g->walked = 1;
}

/* Removes from g->rh the lookalike headers walk_headers found. */
static void drop_lookalikes(const gate_headers *g)
{
    for (int i = 0; i < g->nlookalike; i++) {
        lua_pushvalue(g->L, g->lookalike + i);
        lua_pushnil(g->L);
        lua_settable(g->L, g->rh);
    }
}

/* Removes from the request headers at index rh every header that would
 * pass for an identity header (walk_headers): pol:strip_lookalikes. */
static void strip_lookalikes(lua_State *L, const ls_policy_t *p, int rh)
{
    if (!ls_policy_strips_lookalikes(p)) return;
    int base = lua_gettop(L);
    gate_headers g = {.L = L, .rh = rh};
    walk_headers(&g, p);
    drop_lookalikes(&g);
    lua_settop(L, base);
}

/* The decision of pol:gate and of the pol:gate_fn closures. The stack
 * holds the names (gate_keys) at index keys, mod_magnet's request object r
 * at index r and, at index mpath, the metrics path or nil. Returns what
 * pol:gate does. */
static int gate_run(lua_State *L, policy_box *b, int keys, int r, int mpath, int with_query,
                    int with_host)
{
    size_t nh = ls_policy_header_count(b->p), ns = ls_policy_strip_count(b->p);
    luaL_checkstack(L, (int)nh + 16, "policy gate");
    get_key(L, r, keys, GATE_REQ_ATTR);
    const int attr = lua_gettop(L);
    get_key(L, r, keys, GATE_REQ_HEADER);
    const int rh = lua_gettop(L);
    get_key(L, attr, keys, GATE_PATH);
    ls_str path = arg_str(L, -1);
    if (lua_type(L, mpath) == LUA_TSTRING && path.ptr) {
        size_t mlen;
        const char *mp = lua_tolstring(L, mpath, &mlen);
        if (mlen == path.len && memcmp(mp, path.ptr, mlen) == 0) {
            lua_pushboolean(L, 0);
            return 1;
        }
    }
    if (ls_policy_path_needs_body(b->p, path.ptr, path.len)) { /* 0 at once without a webhook */
        lua_pushboolean(L, 0); /* the caller collects the body first */
        lua_pushliteral(L, "body");
        return 2;
    }
    gate_headers g = {.L = L, .keys = keys, .rh = rh};
    /* With identity headers (unless strip_lookalikes = false), one walk of
     * the request headers both reads what the policy needs and finds their
     * lookalikes; else the engine asks for headers one by one. */
    if (ls_policy_strips_lookalikes(b->p)) {
        walk_headers(&g, b->p);
        luaL_checkstack(L, 16, "policy gate"); /* it keeps what it found on the stack */
    }
    ls_policy_request req = {.path = path, .header = gate_header, .header_ctx = &g};
    get_key(L, attr, keys, GATE_METHOD);
    req.method = arg_str(L, -1);
    get_key(L, attr, keys, GATE_ADDR);
    req.remote_addr = arg_str(L, -1);
    if (with_query) {
        get_key(L, attr, keys, GATE_QUERY);
        req.query = arg_str(L, -1);
    }
    if (with_host) {
        get_key(L, attr, keys, GATE_HOST);
        req.host = arg_str(L, -1);
    }
    ls_err err;
    b->has_d = 0;
    if (ls_policy_eval(b->p, &req, &b->d, &err) != LS_OK) return lls_push_fail(L, "policy", &err);
    b->has_d = 1;
    const ls_policy_decision *d = &b->d;
    if (d->allow) {
        drop_lookalikes(&g);
        for (size_t i = 0; i < ns; i++) {
            lua_rawgeti(L, keys, GATE_HEADERS + (lls_index)(nh + i));
            push_opt_string(L, strip_value(b->p, d, i));
            lua_settable(L, rh);
        }
    }
    lua_pushinteger(L, d->allow ? 0 : d->status);
    push_opt_string(L, d->notice);
    return 2;
}

/* pol:gate(r, [metrics_path], [with_query], [with_host]) -> status, notice
 *   | false | nil, msg, code
 * A whole decision in one call, for the mod_magnet gate of a request that
 * needs no body: reads what the policy looks at from mod_magnet's
 * request object r (r.req_attr, r.req_header: the query and the host only
 * when asked), decides, and on allow writes every identity header into
 * r.req_header: the caller's value replaces the client's copy, and a
 * header the caller has no value for is removed. status 0 allows; a
 * status >= 200 denies, with the answer in pol:response(). false (and
 * nothing decided) when the path is metrics_path, which the caller serves
 * or decides with pol:decide; false, "body" when an authenticator that
 * applies to the path reads the body (pol:needs_body(path)): the caller
 * collects it and decides with pol:decide. */
static int l_policy_gate(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int with_query = lua_toboolean(L, 4), with_host = lua_toboolean(L, 5);
    lua_settop(L, 3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->keys_ref); /* 4 */
    return gate_run(L, b, 4, 2, 3, with_query, with_host);
}

/* The clock of core.monotonic_ms(), in whole milliseconds. */
static lua_Number coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    long ms = ts.tv_nsec / 1000000;
    return (lua_Number)ts.tv_sec * 1000 + (lua_Number)ms;
}

/* Upvalues of a pol:gate_fn closure. */
enum { FAST_BOX = 1, FAST_KEYS, FAST_MPATH, FAST_FLAGS };
enum { FAST_QUERY = 1, FAST_HOST = 2 };

/* gate(lighty, due_ms) -> as pol:gate(lighty.r, ...) (false, "body" too)
 * | false: having decided nothing, also when lighty is not a table or
 * core.monotonic_ms() has reached due_ms (the caller's next look at the
 * policy file). */
static int l_gate_fast(lua_State *L)
{
    policy_box *b = lua_touserdata(L, lua_upvalueindex(FAST_BOX));
    if (b->p == NULL) return luaL_error(L, "policy gate: the policy is closed");
    if (lua_type(L, 1) != LUA_TTABLE || !(coarse_ms() < lua_tonumber(L, 2))) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(FAST_KEYS)); /* 2 */
    get_key(L, 1, 2, GATE_R);                      /* 3 */
    if (lua_type(L, 3) != LUA_TTABLE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(FAST_MPATH)); /* 4 */
    lua_Integer flags = lua_tointeger(L, lua_upvalueindex(FAST_FLAGS));
    return gate_run(L, b, 2, 3, 4, (flags & FAST_QUERY) != 0, (flags & FAST_HOST) != 0);
}

/* pol:gate_fn([metrics_path], [with_query], [with_host]) -> gate
 * pol:gate bound to its options, as a function of mod_magnet's lighty
 * table and of when to look at the policy file next: what enforce() calls
 * on each request, with nothing to look up first. */
static int l_policy_gate_fn(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TSTRING);
    lua_Integer flags =
        (lua_toboolean(L, 3) ? FAST_QUERY : 0) | (lua_toboolean(L, 4) ? FAST_HOST : 0);
    lua_settop(L, 2);
    lua_pushvalue(L, 1);                            /* FAST_BOX: keeps the policy alive */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->keys_ref); /* FAST_KEYS */
    lua_pushvalue(L, 2);                            /* FAST_MPATH */
    lua_pushinteger(L, flags);                      /* FAST_FLAGS */
    lua_pushcclosure(L, l_gate_fast, 4);
    return 1;
}

/* pol:response() -> headers, body of the last decision (a denial) */
static int l_policy_response(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    if (!b->has_d) return luaL_error(L, "policy:response(): no decision yet");
    fill_headers(L, b->resp_ref, b->d.resp_headers, b->d.n_resp_headers);
    if (b->d.body)
        lua_pushlstring(L, b->d.body, b->d.body_len);
    else
        lua_pushnil(L);
    return 2;
}

/* pol:explain() -> reason, subject, rule, detail of the last decision */
static int l_policy_explain(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    if (!b->has_d) return luaL_error(L, "policy:explain(): no decision yet");
    push_opt_string(L, b->d.reason);
    push_opt_string(L, b->d.subject);
    push_opt_string(L, b->d.rule);
    push_opt_string(L, b->d.detail);
    return 4;
}

static int push_names(lua_State *L, size_t n, const char *(*name)(const ls_policy_t *, size_t),
                      const ls_policy_t *p)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, name(p, i));
        lua_rawseti(L, -2, (lls_index)i + 1);
    }
    return 1;
}

/* pol:headers() -> { names of the request headers eval takes, in order } */
static int l_policy_headers(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    return push_names(L, ls_policy_header_count(b->p), ls_policy_header_name, b->p);
}

/* pol:strip() -> { identity headers to remove from every request } */
static int l_policy_strip(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    return push_names(L, ls_policy_strip_count(b->p), ls_policy_strip_name, b->p);
}

/* pol:strip_lookalikes(req_header): removes from mod_magnet's
 * r.req_header (or a table) the headers that would pass for identity
 * headers with a backend that maps names the CGI way (X_User for X-User).
 * pol:gate does this itself on allow. */
static int l_policy_strip_lookalikes(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    strip_lookalikes(L, b->p, 2);
    return 0;
}

/* pol:needs_body() -> whether some authenticator reads the request body,
 *   and whether one does on every path
 * pol:needs_body(raw_path) -> whether one that applies to this path does
 *   (false for nil: the engine refuses a request without a path) */
static int l_policy_needs_body(lua_State *L)
{
    policy_box *b = check_policy(L, 1);
    if (lua_gettop(L) < 2) {
        int n = ls_policy_needs_body(b->p);
        lua_pushboolean(L, n != 0);
        lua_pushboolean(L, n == LS_POLICY_BODY_EVERY_PATH);
        return 2;
    }
    size_t len = 0;
    const char *path = lua_isnil(L, 2) ? NULL : luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, path && ls_policy_path_needs_body(b->p, path, len));
    return 1;
}

/* pol:new_request_id() -> a new request id (32 hex digits) | nil, msg, code */
static int l_policy_new_request_id(lua_State *L)
{
    char id[LS_POLICY_REQUEST_ID_LEN + 1];
    ls_err err;
    if (ls_policy_new_request_id(check_policy(L, 1)->p, id, &err) != LS_OK)
        return lls_push_fail(L, "policy", &err);
    lua_pushstring(L, id);
    return 1;
}

/* pol:request_id_header() -> header, to_backend | nil (no ids sent) */
static int l_policy_request_id_header(lua_State *L)
{
    int to_backend = 0;
    const char *h = ls_policy_request_id_header(check_policy(L, 1)->p, &to_backend);
    if (h == NULL) return 0;
    lua_pushstring(L, h);
    lua_pushboolean(L, to_backend);
    return 2;
}

static int l_policy_name(lua_State *L)
{
    lua_pushstring(L, ls_policy_name(check_policy(L, 1)->p));
    return 1;
}

static int l_policy_flush(lua_State *L)
{
    ls_policy_flush(check_policy(L, 1)->p);
    return 0;
}

static int l_policy_tostring(lua_State *L)
{
    lua_pushfstring(L, POLICY_MT ": %p", lua_touserdata(L, 1));
    return 1;
}

/* apikey_generate(file_text, subject, roles, scopes) -> key, line | nil, msg, code
 * A new random API key and the line that lets it in, for the key file
 * whose current text is file_text ("" for a new file: a header is made). */
static int l_apikey_generate(lua_State *L)
{
    size_t tlen;
    const char *text = luaL_checklstring(L, 1, &tlen);
    ls_apikey_spec spec = {
        .subject = luaL_checkstring(L, 2),
        .roles = luaL_optstring(L, 3, NULL),
        .scopes = luaL_optstring(L, 4, NULL),
    };
    ls_buf file = LS_BUF_INIT, line = LS_BUF_INIT;
    ls_err err;
    char key[LS_APIKEY_KEY_SIZE];
    ls_rc rc = LS_OK;
    if (tlen == 0) {
        rc = ls_apikey_new_file_header(&file, &err);
        text = (const char *)file.ptr;
        tlen = file.len;
        if (rc == LS_OK) rc = ls_buf_append(&line, file.ptr, file.len, &err); /* header first */
    }
    if (rc == LS_OK) rc = ls_apikey_generate(text, tlen, &spec, key, &line, &err);
    ls_buf_free(&file);
    if (rc != LS_OK) {
        ls_buf_free(&line);
        return lls_push_fail(L, "apikey_generate", &err);
    }
    /* pushing can raise only on out of memory; the key is not secret to Lua */
    lua_pushstring(L, key);
    lua_pushlstring(L, (const char *)line.ptr, line.len);
    ls_buf_free(&line);
    return 2;
}

/* hash_password(password, [min]) -> argon2id hash string | nil, msg, code
 * min = true uses libsodium's minimum cost (tests only). */
static int l_hash_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    int min = lua_toboolean(L, 2);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_basic_hash_password(pw, len, min ? 1 : 0, min ? 8192 : 0, &out, &err);
    if (rc == LS_OK) lua_pushlstring(L, (const char *)out.ptr, out.len);
    ls_buf_free(&out);
    return rc == LS_OK ? 1 : lls_push_fail(L, "hash_password", &err);
}

/* file_stamp(path) -> "dev:ino:mtime_ns:size" | nil, msg, code */
static int l_file_stamp(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        ls_err err;
        ls_err_set(&err, errno == ENOENT ? LS_ENOTFOUND : LS_EIO, "%s: %s", path, strerror(errno));
        return lls_push_fail(L, "stat", &err);
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%llu:%llu:%lld.%09ld:%lld", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
             (long long)st.st_size);
    lua_pushstring(L, buf);
    return 1;
}

/* load_file(path) -> chunk | nil, msg, code
 * loadfile for policy and route files, named "@path": Lua source only
 * (Lua does not check bytecode), and a FIFO or device put in the file's
 * place is refused, not waited on (ls_policy_read_file). */
static int l_load_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *text;
    size_t len;
    ls_err err;
    ls_rc rrc = ls_policy_read_file(path, &text, &len, &err);
    if (rrc != LS_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        lua_pushstring(L, ls_rc_name(rrc));
        return 3;
    }
    /* As luaL_loadfile: a UTF-8 byte order mark and a first line that
     * starts with '#' (kept as an empty line, for the line numbers) are
     * skipped. */
    const char *src = text;
    size_t n = len;
    if (n >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0) {
        src += 3;
        n -= 3;
    }
    if (n > 0 && src[0] == '#') {
        const char *nl = memchr(src, '\n', n);
        n = nl ? n - (size_t)(nl - src) : 0;
        src = nl ? nl : src + n;
    }
    if (n > 0 && src[0] == '\033') { /* LUA_SIGNATURE: bytecode, unchecked by Lua */
        ls_free(text);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: compiled Lua: policy and route files are Lua source", path);
        lua_pushliteral(L, "EINVAL");
        return 3;
    }
    lua_pushfstring(L, "@%s", path);
    int rc = luaL_loadbufferx(L, src, n, lua_tostring(L, -1), "t");
    ls_free(text);
    if (rc != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        lua_pushstring(L, rc == LUA_ERRMEM ? "ENOMEM" : "EINVAL");
        return 3;
    }
    return 1;
}

/* monotonic_ms() -> milliseconds of CLOCK_MONOTONIC (only differences matter) */
static int l_monotonic_ms(lua_State *L)
{
    lua_pushnumber(L, coarse_ms());
    return 1;
}

void lls_open_policy(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"eval", l_policy_eval},
        {"decide", l_policy_decide},
        {"gate", l_policy_gate},
        {"gate_fn", l_policy_gate_fn},
        {"response", l_policy_response},
        {"explain", l_policy_explain},
        {"headers", l_policy_headers},
        {"strip", l_policy_strip},
        {"strip_lookalikes", l_policy_strip_lookalikes},
        {"needs_body", l_policy_needs_body},
        {"name", l_policy_name},
        {"flush", l_policy_flush},
        {"close", l_policy_close},
        {"new_request_id", l_policy_new_request_id},
        {"request_id_header", l_policy_request_id_header},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, POLICY_MT)) {
        lua_newtable(L);
        lua_pushvalue(L, -2);
        luaL_setfuncs(L, methods, 1); /* the metatable is each method's upvalue */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_policy_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_policy_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_policy_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"policy_load", l_policy_load},
        {"file_stamp", l_file_stamp},
        {"load_file", l_load_file},
        {"monotonic_ms", l_monotonic_ms},
        {"apikey_generate", l_apikey_generate},
        {"hash_password", l_hash_password},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0); /* into the module table on the stack top */
}

/* SPDX-License-Identifier: MIT
 * The LuaJIT workflow runner (see lls_flow.h). The C side only loads
 * files, enforces deadlines with a count hook, and exposes the engine's
 * activation calls as `lodestone.flowrt`; the coroutine driving and the
 * ctx/step objects are Lua (lua/lodestone/workflow.lua).
 */
#include "ls_config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "lls.h"
#include "lls_flow.h"
#include "lls_http.h"
#include "lls_state.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_clock.h"
#include "ls_json.h"

#include <luajit.h>
#include <lualib.h>

#define INSTR_PER_CHECK 10000

/* Hex characters of a workflow source's version (a BLAKE2b hash). */
#define VERSION_HEX 16

typedef struct {
    char *name;
    char *file;
    char version[VERSION_HEX + 1];
    char *source; /* the file's bytes when it was loaded */
    size_t source_len;
    char *schedule;       /* its define{schedule=...} as lodestoned's JSON definition, or NULL */
    char *limits;         /* its define{concurrency=...} as JSON, or NULL */
    int64_t retention_ms; /* define{retention}: ms, -1 forever, -2 none */
} wf_type;

/* The file's bytes (malloc'd) and their version; NULL when unreadable. */
static char *read_source(const char *path, size_t *len, char version[VERSION_HEX + 1])
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (n < cap) break;
        char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (buf == NULL || bad) {
        free(buf);
        return NULL;
    }
    unsigned char h[VERSION_HEX / 2];
    crypto_generichash(h, sizeof h, (const unsigned char *)buf, n, NULL, 0);
    sodium_bin2hex(version, VERSION_HEX + 1, h, sizeof h);
    *len = n;
    return buf;
}

typedef struct {
    char *file;
    char *error;
} wf_error;

struct lls_runner {
    char *dir;
    char *lua_dir;
    size_t mem_kb; /* each state's memory limit (tl_mem_kb) */
    pthread_mutex_t mu;
    unsigned gen;
    wf_type *types;
    size_t ntypes;
    wf_error *errors;
    size_t nerrors;
};

/* A parked activation and the state its coroutine lives in. */
typedef struct {
    ls_flow_act *act;
    lua_State *L;
} parked_act;

/* A worker's Lua states: L runs new activations; after a reload, old keeps
 * the previous generation alive until the runs parked in it have moved on
 * (a coroutine cannot change states). */
typedef struct {
    lua_State *L;
    unsigned gen;
    unsigned parked; /* activations parked in L */
    lua_State *old;
    unsigned old_parked;
    parked_act *pa;
    size_t npa, cap;
    /* Activations parked on their steps' HTTP transfers (rt.park_io), in
     * this thread's multi handle; ready: a transfer of theirs finished. */
    void *multi;
    struct io_wait {
        ls_flow_act *act;
        int ready;
    } * io;
    size_t nio, iocap;
} worker;

/* Per worker thread: the deadline the hook enforces (monotonic ns, 0 =
 * none), and the activation being run. */
static _Thread_local int64_t tl_deadline_ns;
static _Thread_local int64_t tl_deadline_ms; /* the span, for the message */
static _Thread_local ls_flow_act *tl_act;
static _Thread_local worker *tl_worker;

static int64_t mono_ns(void)
{
    return ls_clock_mono_ns(NULL);
}

/* Once the deadline has passed or the run is interrupted (expired), the
 * hook runs at every instruction and raises in every function but the
 * driver's (lodestone.workflow), until the driver sets a deadline again:
 * workflow code that catches the error with pcall, or in a coroutine of
 * its own, cannot go on (it would hold the worker for ever), and the
 * driver still records the outcome. */
enum { NOT_EXPIRED = 0, EXPIRED_TIMEOUT, EXPIRED_INTERRUPTED, EXPIRED_MEMORY };
static _Thread_local int tl_expired;
/* The most a state of this thread may hold (KiB, after a full collection;
 * 0: no limit), checked with the deadline: code that allocates without end
 * would otherwise grow lodestoned until the kernel kills it, and the
 * recovery would run the same step again after each restart. */
static _Thread_local size_t tl_mem_kb;
#define MEM_MAX_MB (1u << 20)
/* The chunk name of lodestone.workflow in this thread's states (its path
 * under the Lua directory, the same for all of them). */
static _Thread_local char tl_driver_src[1024];

/* A deadline longer than this is no deadline a run could reach (100
 * years, in ms); it keeps the ns arithmetic far from overflow. */
#define DEADLINE_MAX_MS 3153600000000LL

static void hook(lua_State *L, lua_Debug *ar);

static void unexpire(lua_State *L)
{
    if (tl_expired == NOT_EXPIRED) return;
    tl_expired = NOT_EXPIRED;
    lua_sethook(L, hook, LUA_MASKCOUNT, INSTR_PER_CHECK);
}

/* From now on, code running longer than ms (<= 0: no limit) raises. */
static void set_deadline(lua_State *L, int64_t ms)
{
    if (ms <= 0) {
        tl_deadline_ns = 0;
        tl_deadline_ms = 0;
    } else {
        tl_deadline_ms = ms > DEADLINE_MAX_MS ? DEADLINE_MAX_MS : ms;
        tl_deadline_ns = mono_ns() + tl_deadline_ms * 1000000;
    }
    unexpire(L);
}

static int in_driver(lua_State *L, lua_Debug *ar)
{
    return tl_driver_src[0] && lua_getinfo(L, "S", ar) && ar->source &&
           strcmp(ar->source, tl_driver_src) == 0;
}

/* Whether the state holds more than its limit, once what it no longer
 * uses is collected. The collection waits for a quarter more than the
 * limit: with live data near the limit, collecting each time the count
 * passed it would run a full collection every few thousand instructions. */
static int over_memory(lua_State *L)
{
    if (tl_mem_kb == 0 || (size_t)lua_gc(L, LUA_GCCOUNT, 0) <= tl_mem_kb + tl_mem_kb / 4) return 0;
    lua_gc(L, LUA_GCCOLLECT, 0);
    return (size_t)lua_gc(L, LUA_GCCOUNT, 0) > tl_mem_kb;
}

static void hook(lua_State *L, lua_Debug *ar)
{
    if (tl_expired == NOT_EXPIRED) {
        if (tl_act && ls_flow_act_interrupted(tl_act))
            tl_expired = EXPIRED_INTERRUPTED;
        else if (tl_deadline_ns && mono_ns() > tl_deadline_ns)
            tl_expired = EXPIRED_TIMEOUT;
        else if (over_memory(L))
            tl_expired = EXPIRED_MEMORY;
        else
            return;
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    }
    if (in_driver(L, ar)) return;
    if (tl_expired == EXPIRED_INTERRUPTED)
        luaL_error(L, "interrupted: lodestoned is shutting down");
    if (tl_expired == EXPIRED_MEMORY)
        luaL_error(L,
                   "out of memory: the workflow's Lua state holds over %d MiB "
                   "(LODESTONE_LUA_MEMORY_MB)",
                   (int)(tl_mem_kb / 1024));
    luaL_error(L, "timed out after %d ms", (int)tl_deadline_ms);
}

/* ---- lodestone.flowrt: the activation calls ---- */

static ls_flow_act *check_act(lua_State *L)
{
    ls_flow_act *a = lua_touserdata(L, 1);
    if (a == NULL || a != tl_act) luaL_error(L, "flowrt: no activation");
    return a;
}

/* Raises the engine's message as it is: it names what went wrong, and a
 * position inside lodestone.workflow would only mislead. */
static int raise(lua_State *L, const ls_err *err)
{
    lua_pushstring(L, ls_err_text(err));
    return lua_error(L);
}

static int push_buf(lua_State *L, const ls_buf *b)
{
    lua_pushlstring(L, b->len ? (const char *)b->ptr : "", b->len);
    return 1;
}

static int l_input(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_input(a, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    push_buf(L, &out);
    ls_buf_free(&out);
    return 1;
}

static const char *outcome_name(ls_flow_outcome o)
{
    switch (o) {
    case LS_FLOW_DONE: return "done";
    case LS_FLOW_FAILED: return "failed";
    case LS_FLOW_RUN: return "run";
    case LS_FLOW_WAIT: return "wait";
    case LS_FLOW_CANCELLED: return "cancelled";
    case LS_FLOW_TIMEOUT: return "timeout";
    }
    return "?";
}

/* rt.step(act, name) -> "done", json | "failed", msg | "run", attempt, key | "wait" */
static int l_step(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    ls_flow_step_info info;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_step(a, name, n, &info, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    lua_pushstring(L, outcome_name(info.outcome));
    int nret = 1;
    if (info.outcome == LS_FLOW_DONE || info.outcome == LS_FLOW_FAILED ||
        info.outcome == LS_FLOW_CANCELLED) {
        push_buf(L, &out);
        nret = 2;
    } else if (info.outcome == LS_FLOW_RUN) {
        lua_pushinteger(L, (lua_Integer)info.attempt);
        lua_pushstring(L, info.key);
        nret = 3;
    }
    ls_buf_free(&out);
    return nret;
}

/* rt.step_done(act, name, attempt, json) */
static int l_step_done(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n, rlen;
    const char *name = luaL_checklstring(L, 2, &n);
    uint32_t attempt = (uint32_t)luaL_checkinteger(L, 3);
    const char *result = luaL_checklstring(L, 4, &rlen);
    ls_err err;
    if (ls_flow_act_step_done(a, name, n, attempt, result, rlen, &err) != LS_OK)
        return raise(L, &err);
    return 0;
}

/* rt.step_failed(act, name, attempt, msg, code|nil, fatal, wf_retry|nil, step_retry|nil, pause)
 * -> "wait" | "failed", final message */
static int l_step_failed(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    ls_flow_failure fl = {0};
    fl.attempt = (uint32_t)luaL_checkinteger(L, 3);
    fl.error = luaL_checklstring(L, 4, &fl.error_len);
    fl.code = luaL_optstring(L, 5, NULL);
    fl.fatal = lua_toboolean(L, 6);
    fl.retry_workflow = luaL_optlstring(L, 7, NULL, &fl.retry_workflow_len);
    fl.retry_step = luaL_optlstring(L, 8, NULL, &fl.retry_step_len);
    fl.pause = lua_toboolean(L, 9);
    ls_flow_outcome o;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_step_failed(a, name, n, &fl, &o, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    lua_pushstring(L, outcome_name(o));
    push_buf(L, &out);
    ls_buf_free(&out);
    return 2;
}

/* Argument i as whole milliseconds from -1 to DEADLINE_MAX_MS (a NaN or
 * one beyond would be undefined as an int64_t): raises otherwise. */
static int64_t check_ms(lua_State *L, int i, lua_Number def)
{
    lua_Number ms = luaL_optnumber(L, i, def);
    if (!(ms >= -1 && ms <= (lua_Number)DEADLINE_MAX_MS))
        luaL_argerror(L, i, "a duration from 0 to 100 years");
    return (int64_t)ms;
}

/* rt.sleep(act, ms) -> "done" | "wait" | "cancelled" */
static int l_sleep(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    luaL_checknumber(L, 2);
    int64_t ms = check_ms(L, 2, 0);
    ls_flow_outcome o;
    ls_err err;
    if (ls_flow_act_sleep(a, ms, &o, &err) != LS_OK) return raise(L, &err);
    lua_pushstring(L, outcome_name(o));
    return 1;
}

/* rt.side_effect(act, kind, json) -> recorded json */
static int l_side_effect(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    const char *kind = luaL_checkstring(L, 2);
    size_t vlen;
    const char *value = luaL_checklstring(L, 3, &vlen);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_side_effect(a, kind, value, vlen, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    push_buf(L, &out);
    ls_buf_free(&out);
    return 1;
}

static int l_complete(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t olen;
    const char *out = luaL_checklstring(L, 2, &olen);
    ls_err err;
    if (ls_flow_act_complete(a, out, olen, &err) != LS_OK) return raise(L, &err);
    return 0;
}

static int l_fail(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t elen, tlen = 0;
    const char *msg = luaL_checklstring(L, 2, &elen);
    const char *trace = luaL_optlstring(L, 3, NULL, &tlen);
    ls_err err;
    if (ls_flow_act_fail(a, msg, elen, trace, tlen, &err) != LS_OK) return raise(L, &err);
    return 0;
}

static int l_abandon(lua_State *L)
{
    ls_flow_act_abandon(check_act(L));
    return 0;
}

static int l_secret(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    const char *name = luaL_checkstring(L, 2);
    ls_secret_t *s = NULL;
    ls_err err;
    if (ls_flow_act_secret(a, name, &s, &err) != LS_OK) return raise(L, &err);
    lua_pushlstring(L, (const char *)ls_secret_data(s), ls_secret_len(s));
    ls_secret_free(s);
    return 1;
}

/* rt.log(act, level, line): ctx:log's and s:log's lines (the engine cuts
 * a long one). */
static int l_log(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    int level = (int)luaL_checkinteger(L, 2);
    size_t len;
    const char *msg = luaL_checklstring(L, 3, &len);
    ls_flow_act_log(a, level, msg, len);
    return 0;
}

static int l_parked(lua_State *L)
{
    lua_pushboolean(L, ls_flow_act_parked(check_act(L)));
    return 1;
}

/* rt.check(act): raises the error of the write a parked activation waited
 * for. */
static int l_check(lua_State *L)
{
    ls_err err;
    if (ls_flow_act_check(check_act(L), &err) != LS_OK) return raise(L, &err);
    return 0;
}

static int l_replaying(lua_State *L)
{
    lua_pushboolean(L, ls_flow_act_replaying(check_act(L)));
    return 1;
}

static int l_interrupted(lua_State *L)
{
    lua_pushboolean(L, ls_flow_act_interrupted(check_act(L)));
    return 1;
}

static int l_name(lua_State *L)
{
    lua_pushstring(L, ls_flow_act_name(check_act(L)));
    return 1;
}

/* rt.deadline(ms|nil): from now on, code running longer than ms raises. */
static int l_deadline(lua_State *L)
{
    lua_Number ms = lua_isnoneornil(L, 1) ? 0 : lua_tonumber(L, 1);
    /* (NaN and anything past the cap: the cap) */
    set_deadline(L, ms > 0 && ms < (lua_Number)DEADLINE_MAX_MS ? (int64_t)ms
                    : ms > 0 || ms != ms                       ? DEADLINE_MAX_MS
                                                               : 0);
    return 0;
}

/* rt.deadline_left() -> ms left before the deadline (nil: none) */
static int l_deadline_left(lua_State *L)
{
    if (tl_deadline_ns == 0) return 0;
    int64_t left = (tl_deadline_ns - mono_ns()) / 1000000;
    lua_pushnumber(L, (lua_Number)(left > 0 ? left : 0));
    return 1;
}

static int l_wall_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)ls_clock_wall_ms(NULL));
    return 1;
}

static int l_random(lua_State *L)
{
    uint64_t bits;
    randombytes_buf(&bits, sizeof bits);
    lua_pushnumber(L, (lua_Number)(bits >> 11) / 9007199254740992.0);
    return 1;
}

static int l_uuid(lua_State *L)
{
    unsigned char u[16];
    char s[37];
    randombytes_buf(u, sizeof u);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
    lua_pushstring(L, s);
    return 1;
}

/* rt.wait_signal(act, name, timeout_ms|-1) -> "done", json | "wait" | "timeout" |
 * "cancelled", reason */
static int l_wait_signal(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    int64_t ms = check_ms(L, 3, -1);
    ls_flow_outcome o;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_wait_signal(a, name, n, ms, &o, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    lua_pushstring(L, outcome_name(o));
    int nret = 1;
    if (o == LS_FLOW_DONE || o == LS_FLOW_CANCELLED) {
        push_buf(L, &out);
        nret = 2;
    }
    ls_buf_free(&out);
    return nret;
}

/* rt.child_start(act, type, input_json, id|nil, detached) -> child id */
static int l_child_start(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t tlen, ilen, idlen = 0;
    const char *type = luaL_checklstring(L, 2, &tlen);
    const char *input = luaL_checklstring(L, 3, &ilen);
    const char *id = luaL_optlstring(L, 4, NULL, &idlen);
    int detached = lua_toboolean(L, 5);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_child_start(a, type, tlen, id, idlen, input, ilen, detached, &out, &err) !=
        LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    push_buf(L, &out);
    ls_buf_free(&out);
    return 1;
}

/* rt.child_wait(act, id) -> "done", json | "failed", msg | "wait" | "cancelled", reason */
static int l_child_wait(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    ls_flow_outcome o;
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_child_wait(a, id, n, &o, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    lua_pushstring(L, outcome_name(o));
    int nret = 1;
    if (o != LS_FLOW_WAIT) {
        push_buf(L, &out);
        nret = 2;
    }
    ls_buf_free(&out);
    return nret;
}

/* rt.branch(act, scope): the scope of the commands that follow */
/* rt.flush(act): writes what the activation has queued (then park). */
static int l_flush(lua_State *L)
{
    ls_err err;
    if (ls_flow_act_flush(check_act(L), &err) != LS_OK) return raise(L, &err);
    return 0;
}

/* rt.branch_start(act, scope) -> the branch run's id */
static int l_branch_start(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *scope = luaL_checklstring(L, 2, &n);
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    if (ls_flow_act_branch_start(a, scope, n, &out, &err) != LS_OK) {
        ls_buf_free(&out);
        return raise(L, &err);
    }
    push_buf(L, &out);
    ls_buf_free(&out);
    return 1;
}

/* rt.branch_of(act) -> the scope this branch run runs, or nil */
static int l_branch_of(lua_State *L)
{
    const char *scope = ls_flow_act_branch_of(check_act(L));
    if (scope)
        lua_pushstring(L, scope);
    else
        lua_pushnil(L);
    return 1;
}

static int l_branch(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *scope = luaL_checklstring(L, 2, &n);
    ls_err err;
    if (ls_flow_act_branch(a, scope, n, &err) != LS_OK) return raise(L, &err);
    return 0;
}

/* rt.set_status(act, json) */
static int l_set_status(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    size_t n;
    const char *json = luaL_checklstring(L, 2, &n);
    ls_err err;
    if (ls_flow_act_set_status(a, json, n, &err) != LS_OK) return raise(L, &err);
    return 0;
}

/* rt.cancelled(act): end the run cancelled */
static int l_cancelled(lua_State *L)
{
    ls_err err;
    if (ls_flow_act_cancelled(check_act(L), &err) != LS_OK) return raise(L, &err);
    return 0;
}

/* rt.deadline_save() -> the thread's step deadline (absolute ns, 0: none);
 * rt.deadline_restore(ns): puts one back (parallel branches switch). */
static int l_deadline_save(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)tl_deadline_ns);
    lua_pushnumber(L, (lua_Number)tl_deadline_ms);
    return 2;
}

static int l_deadline_restore(lua_State *L)
{
    tl_deadline_ns = (int64_t)luaL_checknumber(L, 1);
    tl_deadline_ms = (int64_t)luaL_optnumber(L, 2, (lua_Number)tl_deadline_ms);
    unexpire(L);
    return 0;
}

/* rt.park_io(act, {handles}) -> true: the activation waits for those
 * transfers (lodestone.httpc.start) without holding the worker; the code
 * yields up to the driver, which returns, and the runner's poll hands it
 * back once one of them has finished. false: one has already finished, or
 * it cannot park; the caller waits itself. */
static int l_park_io(lua_State *L)
{
    ls_flow_act *a = check_act(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    worker *w = tl_worker;
    int n = (int)lua_rawlen(L, 2), pending = w != NULL && w->multi != NULL && n > 0;
    for (int i = 1; i <= n && pending; i++) {
        lua_rawgeti(L, 2, i);
        pending = lls_httpc_watch(L, -1, a);
        lua_pop(L, 1);
    }
    /* (marks left on other transfers only cause a spurious look) */
    if (pending && w->nio == w->iocap) {
        size_t cap = w->iocap ? w->iocap * 2 : 16;
        struct io_wait *io = realloc(w->io, cap * sizeof *io);
        if (io == NULL)
            pending = 0;
        else {
            w->io = io;
            w->iocap = cap;
        }
    }
    if (pending && ls_flow_act_park_io(a)) {
        w->io[w->nio].act = a;
        w->io[w->nio].ready = 0;
        w->nio++;
        lua_pushboolean(L, 1);
    } else {
        lua_pushboolean(L, 0);
    }
    return 1;
}

static int luaopen_flowrt(lua_State *L)
{
    static const luaL_Reg fns[] = {{"input", l_input},
                                   {"step", l_step},
                                   {"step_done", l_step_done},
                                   {"step_failed", l_step_failed},
                                   {"sleep", l_sleep},
                                   {"wait_signal", l_wait_signal},
                                   {"set_status", l_set_status},
                                   {"child_start", l_child_start},
                                   {"child_wait", l_child_wait},
                                   {"branch", l_branch},
                                   {"flush", l_flush},
                                   {"branch_start", l_branch_start},
                                   {"branch_of", l_branch_of},
                                   {"deadline_save", l_deadline_save},
                                   {"deadline_restore", l_deadline_restore},
                                   {"cancelled", l_cancelled},
                                   {"side_effect", l_side_effect},
                                   {"complete", l_complete},
                                   {"fail", l_fail},
                                   {"abandon", l_abandon},
                                   {"secret", l_secret},
                                   {"log", l_log},
                                   {"replaying", l_replaying},
                                   {"parked", l_parked},
                                   {"park_io", l_park_io},
                                   {"check", l_check},
                                   {"interrupted", l_interrupted},
                                   {"name", l_name},
                                   {"deadline", l_deadline},
                                   {"deadline_left", l_deadline_left},
                                   {"wall_ms", l_wall_ms},
                                   {"random", l_random},
                                   {"uuid", l_uuid},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_pushinteger(L, LS_FLOW_LOG_DEBUG);
    lua_setfield(L, -2, "DEBUG");
    lua_pushinteger(L, LS_FLOW_LOG_INFO);
    lua_setfield(L, -2, "INFO");
    lua_pushinteger(L, LS_FLOW_LOG_WARN);
    lua_setfield(L, -2, "WARN");
    lua_pushinteger(L, LS_FLOW_LOG_ERROR);
    lua_setfield(L, -2, "ERROR");
    return 1;
}

/* ---- states ---- */

/* What workflow code may not call, as it would undo what keeps one
 * workflow from stopping the others: os.exit ends lodestoned (and, run
 * again by the recovery after each restart, again and again), a hook of its
 * own or the JIT back on would let runaway code outlive its deadline. Each
 * raises, naming why. */
static const char guards[] =
    "local function refuse(what, why)\n"
    "  return function() error(what .. ' is not allowed in workflow code: ' .. why, 2) end\n"
    "end\n"
    "os.exit = refuse('os.exit', 'it would stop lodestoned and every run in it; raise an error "
    "to fail the step or the run')\n"
    "debug.sethook = refuse('debug.sethook', 'lodestoned enforces step timeouts with its own "
    "hook')\n"
    "jit.on = refuse('jit.on', 'lodestoned runs workflow code interpreted, so that a step "
    "timeout always stops it')\n";

static lua_State *new_state(const char *lua_dir, ls_err *err)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        ls_err_set(err, LS_ENOMEM, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    /* Count hooks do not fire inside JIT-compiled traces: run
     * interpreted, so a deadline always ends runaway code. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lls_state_setup(L, lua_dir);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_flowrt);
    lua_setfield(L, -2, "lodestone.flowrt");
    lua_pop(L, 2);
    if (luaL_dostring(L, guards) != 0) {
        ls_err_set(err, LS_EINVAL, "cannot set up a Lua state: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    lua_sethook(L, hook, LUA_MASKCOUNT, INSTR_PER_CHECK);
    return L;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir, sorted. Caller frees each and the array. */
static ls_rc list_files(const char *dir, char ***out, size_t *n, ls_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return ls_err_set(err, LS_EIO, "workflows directory %s: %s", dir, strerror(errno));
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".lua")) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) break;
            v = nv;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        v[cnt] = malloc(len);
        if (v[cnt] == NULL) break;
        snprintf(v[cnt], len, "%s/%s", dir, e->d_name);
        cnt++;
    }
    closedir(d);
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_str);
    *out = v;
    *n = cnt;
    return LS_OK;
}

/* Gives the chunk on the top of the stack globals of its own: a global
 * that the file's code sets (type = "order", a `local` forgotten) stays
 * there, instead of breaking lodestone.workflow and the other workflows
 * of the state. Reads fall through to the state's globals. */
static void own_globals(lua_State *L)
{
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G"); /* _G["name"] finds the file's own globals */
    lua_newtable(L);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfenv(L, -2);
}

/* Message handler of a file's top level: its error with a traceback. An
 * error value that is not a string is named by its type (its own
 * __tostring is the file's code, which must not run here). */
static int load_traceback(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        lua_pushfstring(L, "the file raised %s%s, not a string", lua_isnil(L, 1) ? "" : "a ",
                        lua_isnil(L, 1) ? "nil" : luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    return lls_traceback(L);
}

/* Loads one file: leaves the definition on the stack and returns NULL,
 * or returns an error message (pushed on the stack). */
static const char *load_file(lua_State *L, const char *path)
{
    lua_pushcfunction(L, load_traceback);
    int tb = lua_gettop(L);
    if (luaL_loadfile(L, path) != 0) {
        lua_remove(L, tb);
        return lua_tostring(L, -1);
    }
    own_globals(L);
    set_deadline(L, 5000); /* a file's top level must not hang the daemon */
    int rc = lua_pcall(L, 0, 1, tb);
    set_deadline(L, 0);
    lua_remove(L, tb);
    if (rc != 0) return lua_tostring(L, -1);
    /* Must be a workflow.define{} result. */
    lua_getglobal(L, "require");
    lua_pushstring(L, "lodestone.workflow");
    if (lua_pcall(L, 1, 1, 0) != 0) return lua_tostring(L, -1);
    lua_getfield(L, -1, "is_workflow");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (!ok) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s: does not return workflow.define{...}", path);
        return lua_tostring(L, -1);
    }
    return NULL;
}

static void free_lists(lls_runner *r)
{
    for (size_t i = 0; i < r->ntypes; i++) {
        free(r->types[i].name);
        free(r->types[i].file);
        free(r->types[i].source);
        free(r->types[i].schedule);
        free(r->types[i].limits);
    }
    for (size_t i = 0; i < r->nerrors; i++) {
        free(r->errors[i].file);
        free(r->errors[i].error);
    }
    free(r->types);
    free(r->errors);
    r->types = NULL;
    r->errors = NULL;
    r->ntypes = r->nerrors = 0;
}

/* Adds a load error (file, msg) to *errors, when errors is not NULL. */
static void note_error(wf_error **errors, size_t *nerrors, const char *file, const char *msg)
{
    if (errors == NULL) return;
    wf_error *ne = realloc(*errors, (*nerrors + 1) * sizeof **errors);
    if (ne == NULL) return;
    *errors = ne;
    ne[*nerrors].file = strdup(file);
    ne[*nerrors].error = strdup(msg);
    (*nerrors)++;
}

/* Checks the definition's name, on the top of the stack, as a workflow
 * type's (ls_flow_check_type_name): workflow.define checked it, but the
 * file's code may have changed it since (def.name = ...). Returns NULL,
 * or the load error's message (pushed on the stack). */
static const char *check_def_name(lua_State *L, const char *path)
{
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushfstring(L,
                        "%s: workflow.define: name: must be a string of letters, digits and - _ . "
                        ":, got a %s",
                        path, luaL_typename(L, -1));
        return lua_tostring(L, -1);
    }
    size_t n;
    const char *name = lua_tolstring(L, -1, &n);
    ls_err err;
    if (ls_flow_check_type_name(name, n, "workflow.define: name", &err) == LS_OK) return NULL;
    lua_pushfstring(L, "%s: %s", path, ls_err_text(&err));
    return lua_tostring(L, -1);
}

/* Moves the files that first lists (nfirst paths) to the front of files,
 * each part keeping its order. */
static void owners_first(char **files, size_t n, char *const *first, size_t nfirst)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int owner = 0;
        for (size_t j = 0; j < nfirst && !owner; j++) owner = strcmp(files[i], first[j]) == 0;
        if (!owner) continue;
        char *f = files[i];
        memmove(files + k + 1, files + k, (i - k) * sizeof *files);
        files[k++] = f;
    }
}

/* Checks the schedule of the def at index def (a file's
 * define{schedule=...}) as lodestoned will put it, zone included (the
 * Lua side checks its shape only). NULL when it passes, or has none; else
 * the file's error message, pushed. */
static const char *check_schedule(lua_State *L, int def, const char *path)
{
    lua_getfield(L, def, "schedule_json");
    size_t len;
    const char *json = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    ls_err e;
    if (json == NULL || ls_flow_schedule_check(json, len, &e) == LS_OK) {
        lua_pop(L, 1);
        return NULL;
    }
    lua_pop(L, 1);
    return lua_pushfstring(L, "%s: workflow.define: schedule.%s", path, ls_err_text(&e));
}

/* Loads every file into L: defs go into the table on the top of the
 * stack, by name. When r is not NULL, records types and errors there.
 * The files first lists (the last generation's, nfirst of them) load
 * first, the others in name order: of two files that declare the same
 * workflow, the one that served it keeps it and the newcomer is charged,
 * whatever their names; and a worker's state, given this generation's,
 * keeps the same file as the load that recorded it. */
static ls_rc load_all(lua_State *L, const char *dir, char *const *first, size_t nfirst,
                      wf_type **types, size_t *ntypes, wf_error **errors, size_t *nerrors,
                      ls_err *err)
{
    char **files = NULL;
    size_t n = 0;
    ls_rc rc = list_files(dir, &files, &n, err);
    if (rc != LS_OK) return rc;
    owners_first(files, n, first, nfirst);
    int defs = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        const char *msg = load_file(L, files[i]);
        if (msg) {
            note_error(errors, nerrors, files[i], msg);
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, -1, "name");
        if ((msg = check_def_name(L, files[i])) != NULL) {
            note_error(errors, nerrors, files[i], msg);
            lua_pop(L, 3); /* def, name, message */
            continue;
        }
        const char *name = lua_tostring(L, -1);
        lua_getfield(L, defs, name);
        if (!lua_isnil(L, -1)) {
            lua_getfield(L, -1, "file");
            const char *other = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            note_error(errors, nerrors, files[i],
                       lua_pushfstring(L, "%s: workflow \"%s\" is already defined by %s", files[i],
                                       name, other));
            lua_pop(L, 5); /* message, file, the other def, name, def */
            continue;
        }
        lua_pop(L, 1);
        if ((msg = check_schedule(L, -2, files[i])) != NULL) {
            note_error(errors, nerrors, files[i], msg);
            lua_pop(L, 3); /* message, name, def */
            continue;
        }
        size_t slen = 0;
        char version[VERSION_HEX + 1] = "";
        char *src = read_source(files[i], &slen, version);
        if (types) {
            wf_type *nt = realloc(*types, (*ntypes + 1) * sizeof **types);
            if (nt) {
                *types = nt;
                nt[*ntypes].name = strdup(name);
                nt[*ntypes].file = strdup(files[i]);
                memcpy(nt[*ntypes].version, version, sizeof version);
                nt[*ntypes].source = src;
                nt[*ntypes].source_len = slen;
                src = NULL;
                lua_getfield(L, -2, "schedule_json");
                nt[*ntypes].schedule = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
                lua_pop(L, 1);
                lua_getfield(L, -2, "concurrency_json");
                nt[*ntypes].limits = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
                lua_pop(L, 1);
                lua_getfield(L, -2, "retention_ms");
                nt[*ntypes].retention_ms =
                    lua_isnumber(L, -1) ? (int64_t)lua_tonumber(L, -1) : LS_FLOW_RETENTION_DEFAULT;
                lua_pop(L, 1);
                (*ntypes)++;
            }
        }
        free(src);
        lua_pop(L, 1);               /* name */
        lua_pushstring(L, files[i]); /* def.file = path */
        lua_setfield(L, -2, "file");
        lua_pushstring(L, version); /* def._version: the source it was loaded from */
        lua_setfield(L, -2, "_version");
        lua_getfield(L, -1, "name");
        lua_insert(L, -2);
        lua_settable(L, defs);
    }
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
    return LS_OK;
}

static int cmp_type_file(const void *a, const void *b)
{
    return strcmp(((const wf_type *)a)->file, ((const wf_type *)b)->file);
}

static int cmp_error_file(const void *a, const void *b)
{
    return strcmp(((const wf_error *)a)->file, ((const wf_error *)b)->file);
}

static ls_rc probe(lls_runner *r, ls_err *err)
{
    tl_mem_kb = r->mem_kb;
    lua_State *L = new_state(r->lua_dir, err);
    if (L == NULL) return LS_ENOMEM;
    wf_type *types = NULL;
    wf_error *errors = NULL;
    size_t nt = 0, ne = 0;
    /* The files that serve now (only this thread changes the list: no copy) */
    pthread_mutex_lock(&r->mu);
    size_t nfirst = r->ntypes;
    char **first = nfirst ? malloc(nfirst * sizeof *first) : NULL;
    for (size_t i = 0; first && i < nfirst; i++) first[i] = r->types[i].file;
    pthread_mutex_unlock(&r->mu);
    lua_newtable(L);
    ls_rc rc = load_all(L, r->dir, first, first ? nfirst : 0, &types, &nt, &errors, &ne, err);
    free(first);
    lua_close(L);
    if (rc != LS_OK) {
        free(types);
        free(errors);
        return rc;
    }
    /* Listed in file order, whatever order they loaded in */
    if (nt > 1) qsort(types, nt, sizeof *types, cmp_type_file);
    if (ne > 1) qsort(errors, ne, sizeof *errors, cmp_error_file);
    pthread_mutex_lock(&r->mu);
    free_lists(r);
    r->types = types;
    r->ntypes = nt;
    r->errors = errors;
    r->nerrors = ne;
    r->gen++;
    pthread_mutex_unlock(&r->mu);
    return LS_OK;
}

ls_rc lls_runner_new(lls_runner **out, const char *dir, const char *lua_dir, ls_err *err)
{
    *out = NULL;
    lls_runner *r = calloc(1, sizeof *r);
    if (r == NULL) return ls_err_set(err, LS_ENOMEM, "runner: out of memory");
    r->dir = strdup(dir);
    r->lua_dir = strdup(lua_dir);
    pthread_mutex_init(&r->mu, NULL);
    /* No limit unless asked for: the limit counts everything the worker's
     * state holds (every workflow's module-level data, parked runs), and
     * fails whichever code the check catches over it. */
    r->mem_kb = 0;
    const char *mb = getenv("LODESTONE_LUA_MEMORY_MB");
    ls_rc rc = LS_OK;
    if (mb) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(mb, &end, 10);
        if (*mb < '0' || *mb > '9' || *end || errno || v > MEM_MAX_MB)
            rc = ls_err_set(err, LS_EINVAL,
                            "LODESTONE_LUA_MEMORY_MB: must be a whole number of MiB from 1 to %u, "
                            "or 0 for no limit, got \"%.40s\"",
                            MEM_MAX_MB, mb);
        else
            r->mem_kb = (size_t)v * 1024;
    }
    if (rc == LS_OK) rc = probe(r, err);
    if (rc != LS_OK) {
        lls_runner_free(r);
        return rc;
    }
    *out = r;
    return LS_OK;
}

void lls_runner_free(lls_runner *r)
{
    if (r == NULL) return;
    free_lists(r);
    free(r->dir);
    free(r->lua_dir);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

ls_rc lls_runner_reload(lls_runner *r, ls_err *err)
{
    return probe(r, err);
}

size_t lls_runner_error_count(lls_runner *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->nerrors;
    pthread_mutex_unlock(&r->mu);
    return n;
}

ls_rc lls_runner_describe(lls_runner *r, ls_buf *out, ls_err *err)
{
    json_t *o = json_object(), *types = json_array(), *errors = json_array();
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ntypes; i++)
        json_array_append_new(types, json_pack("{s:s,s:s,s:s}", "name", r->types[i].name, "file",
                                               r->types[i].file, "version", r->types[i].version));
    for (size_t i = 0; i < r->nerrors; i++)
        json_array_append_new(
            errors, json_pack("{s:s,s:s}", "file", r->errors[i].file, "error", r->errors[i].error));
    pthread_mutex_unlock(&r->mu);
    json_object_set_new(o, "types", types);
    json_object_set_new(o, "errors", errors);
    ls_buf_clear(out);
    ls_rc rc = ls_json_dump(o, out, err);
    json_decref(o);
    return rc;
}

ls_rc lls_runner_schedules(lls_runner *r, ls_buf *out, ls_err *err)
{
    ls_buf_clear(out);
    ls_rc rc = ls_buf_putc(out, '[', err);
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; rc == LS_OK && i < r->ntypes; i++) {
        const char *s = r->types[i].schedule;
        if (s == NULL) continue;
        if (n++) rc = ls_buf_putc(out, ',', err);
        if (rc == LS_OK) rc = ls_buf_append(out, s, strlen(s), err);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == LS_OK) rc = ls_buf_putc(out, ']', err);
    return rc;
}

/* ---- the runner interface ---- */

/* Registry key of the defs table in a worker state. */
static char driver_key; /* registry: {traceback, _activate, _resume} of the state */
static char defs_key;

static ls_rc open_worker_state(lls_runner *r, lua_State **out, unsigned *out_gen, ls_err *err)
{
    tl_mem_kb = r->mem_kb;
    lua_State *L = new_state(r->lua_dir, err);
    if (L == NULL) return LS_ENOMEM;
    /* The generation's files, copied: a reload frees them */
    pthread_mutex_lock(&r->mu);
    unsigned gen = r->gen;
    size_t nfirst = r->ntypes;
    char **first = nfirst ? calloc(nfirst, sizeof *first) : NULL;
    for (size_t i = 0; first && i < nfirst; i++) first[i] = strdup(r->types[i].file);
    pthread_mutex_unlock(&r->mu);
    int copied = first != NULL;
    for (size_t i = 0; first && i < nfirst; i++) copied = copied && first[i] != NULL;
    lua_pushlightuserdata(L, &defs_key);
    lua_newtable(L);
    ls_rc rc = copied || nfirst == 0
                   ? load_all(L, r->dir, first, nfirst, NULL, NULL, NULL, NULL, err)
                   : ls_err_set(err, LS_ENOMEM, "worker: out of memory");
    for (size_t i = 0; first && i < nfirst; i++) free(first[i]);
    free(first);
    lua_rawset(L, LUA_REGISTRYINDEX);
    if (rc != LS_OK) {
        lua_close(L);
        return rc;
    }
    *out = L;
    *out_gen = gen;
    return LS_OK;
}

static ls_rc worker_open(void *ud, unsigned index, void **out, ls_err *err)
{
    (void)index;
    worker *w = calloc(1, sizeof *w);
    if (w == NULL) return ls_err_set(err, LS_ENOMEM, "worker: out of memory");
    ls_rc rc = open_worker_state(ud, &w->L, &w->gen, err);
    if (rc != LS_OK) {
        free(w);
        return rc;
    }
    w->multi = lls_httpc_multi(); /* NULL: steps' HTTP calls hold the worker */
    *out = w;
    return LS_OK;
}

static void worker_close(void *ud, void *p)
{
    (void)ud;
    worker *w = p;
    if (w == NULL) return;
    if (w->L) lua_close(w->L);
    if (w->old) lua_close(w->old);
    lls_httpc_thread_end(); /* after the states: their transfers are gone */
    free(w->pa);
    free(w->io);
    free(w);
}

/* Registry key of the table of definitions loaded from older versions of
 * the workflow files (version -> def), per worker state. */
static char old_defs_key;

/* lua_cpcall's function for set_pinned_type: the type (or NULL) is its
 * light userdata. */
static int pin_type(lua_State *L)
{
    const char *type = lua_touserdata(L, 1);
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_pushliteral(L, "loaded");
        lua_rawget(L, -2);
    }
    if (lua_istable(L, -1)) {
        lua_pushliteral(L, "lodestone.workflow");
        lua_rawget(L, -2);
    }
    if (lua_istable(L, -1)) {
        lua_pushliteral(L, "_pinned_type");
        if (type)
            lua_pushstring(L, type);
        else
            lua_pushnil(L);
        lua_rawset(L, -3);
    }
    return 0;
}

/* Sets lodestone.workflow's _pinned_type (NULL: clears it): while it is
 * set, workflow.define takes that name even when the rule of type names
 * (ls_flow_check_type_name) refuses it, for the source a run started
 * with, under a name an older lodestoned took. In protected mode (a
 * string may not be had under the state's memory limit): 0, or an error
 * message on the stack. */
static int set_pinned_type(lua_State *L, const char *type)
{
    return lua_cpcall(L, pin_type, (void *)type);
}

/* Replaces the def on top of the stack with the one of the run's own
 * version when the file has changed since the run started: the source
 * kept in the store, loaded once per state. Returns NULL, or an error
 * message (the def is then popped). */
static const char *pin_version(lua_State *L, ls_flow_act *a)
{
    const char *want = ls_flow_act_version(a);
    if (*want == '\0') return NULL; /* a run from before versions */
    int same = 0;
    if (!lua_isnil(L, -1)) { /* nil: the file is gone; its runs still have their source */
        lua_getfield(L, -1, "_version");
        same = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), want) == 0;
        lua_pop(L, 1);
    }
    if (same) return NULL;
    lua_pop(L, 1); /* the current def */
    lua_pushlightuserdata(L, &old_defs_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, &old_defs_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_getfield(L, -1, want);
    if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return NULL;
    }
    lua_pop(L, 1);
    ls_buf src = LS_BUF_INIT;
    ls_err err;
    static _Thread_local char msg[LS_ERR_MSGMAX + 64];
    if (ls_flow_act_source(a, &src, &err) != LS_OK) {
        lua_pop(L, 1);
        snprintf(msg, sizeof msg, "%s", ls_err_text(&err));
        return msg;
    }
    char chunk[160];
    snprintf(chunk, sizeof chunk, "=%s@%s", ls_flow_act_type(a), want);
    int rc = luaL_loadbuffer(L, (const char *)src.ptr, src.len, chunk);
    ls_buf_free(&src);
    if (rc == 0) own_globals(L);
    if (rc == 0 && (rc = set_pinned_type(L, ls_flow_act_type(a))) != 0)
        lua_remove(L, -2); /* the chunk: its error message stands in for its result */
    if (rc == 0) {
        set_deadline(L, 5000);
        rc = lua_pcall(L, 0, 1, 0);
        set_deadline(L, 0);
        if (set_pinned_type(L, NULL) != 0) lua_pop(L, 1); /* (clearing allocates nothing) */
    }
    if (rc == 0) {
        lua_getfield(L, -1, "name");
        int ok = lua_istable(L, -2) && lua_isstring(L, -1) &&
                 strcmp(lua_tostring(L, -1), ls_flow_act_type(a)) == 0;
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            lua_pushfstring(L, "does not define workflow %s", ls_flow_act_type(a));
            rc = 1;
        }
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "version %s of workflow %s does not load: %s", want,
                 ls_flow_act_type(a), lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_pop(L, 2);
        return msg;
    }
    lua_pushstring(L, want);
    lua_setfield(L, -2, "_version");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, want); /* cache */
    lua_remove(L, -2);
    return NULL;
}

/* Calls lodestone.workflow's driver: _activate(def, act) for a new
 * activation, _resume(act) for a parked one. */
/* Pushes the message handler (top + 1) and the driver's entry point
 * (top + 2: lodestone.workflow's _resume or _activate), kept in the
 * state's registry once the module has loaded. Returns lua_pcall's status
 * of loading it (its message then at top + 2). */
static int push_entry(lua_State *L, int top, int resuming)
{
    lua_pushlightuserdata(L, &driver_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, resuming ? 3 : 2);
        lua_remove(L, -3);
        return 0;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lls_traceback);
    lua_getglobal(L, "require");
    lua_pushstring(L, "lodestone.workflow");
    int rc = lua_pcall(L, 1, 1, top + 1);
    if (rc != 0) return rc;
    lua_pushlightuserdata(L, &driver_key);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, top + 1);
    lua_rawseti(L, -2, 1);
    lua_getfield(L, top + 2, "_activate");
    if (tl_driver_src[0] == '\0' && lua_isfunction(L, -1)) {
        lua_Debug ar;
        lua_pushvalue(L, -1);
        if (lua_getinfo(L, ">S", &ar) && ar.source)
            snprintf(tl_driver_src, sizeof tl_driver_src, "%s", ar.source);
    }
    lua_rawseti(L, -2, 2);
    lua_getfield(L, top + 2, "_resume");
    lua_rawseti(L, -2, 3);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_getfield(L, top + 2, resuming ? "_resume" : "_activate");
    lua_replace(L, top + 2);
    return 0;
}

static void drive(worker *w, ls_flow_act *a, int resuming, lua_State *L)
{
    tl_act = a;
    tl_worker = w;
    int top = lua_gettop(L);
    int rc = push_entry(L, top, resuming);
    if (rc == 0 && resuming) {
        lua_pushlightuserdata(L, a);
        rc = lua_pcall(L, 1, 0, top + 1);
    } else if (rc == 0) {
        lua_pushlightuserdata(L, &defs_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_getfield(L, -1, ls_flow_act_type(a));
        lua_remove(L, -2);
        const char *why = pin_version(L, a);
        if (why) {
            /* The run's own version cannot run: fail it, naming why. */
            ls_err err;
            if (ls_flow_act_fail(a, why, strlen(why), NULL, 0, &err) != LS_OK)
                ls_flow_act_abandon(a);
            lua_settop(L, top);
            tl_act = NULL;
            return;
        }
        if (lua_isnil(L, -1)) {
            /* The type's file failed to load in this generation: keep the
             * run for a later reload rather than fail it. */
            char msg[300];
            snprintf(msg, sizeof msg,
                     "workflow type \"%s\" is not loaded (see lodestone types); the run waits "
                     "for a restart",
                     ls_flow_act_type(a));
            ls_flow_act_log(a, LS_FLOW_LOG_ERROR, msg, strlen(msg));
            ls_flow_act_abandon(a);
            lua_settop(L, top);
            tl_act = NULL;
            return;
        }
        lua_pushlightuserdata(L, a);
        rc = lua_pcall(L, 2, 0, top + 1);
    }
    if (rc != 0) {
        /* The driver itself failed (out of memory, a bug): fail the run
         * with the message rather than loop on it. */
        size_t len;
        const char *msg = lua_tolstring(L, -1, &len);
        ls_err err;
        if (ls_flow_act_parked(a) || ls_flow_act_interrupted(a) ||
            ls_flow_act_fail(a, msg ? msg : "runner error", msg ? len : 12, NULL, 0, &err) != LS_OK)
            ls_flow_act_abandon(a);
    }
    lua_settop(L, top);
    set_deadline(L, 0);
    tl_act = NULL;
    /* Keep track of the activations parked in each state. */
    if (resuming && !ls_flow_act_parked(a)) {
        for (size_t i = 0; i < w->npa; i++) {
            if (w->pa[i].act == a) {
                w->pa[i] = w->pa[--w->npa];
                break;
            }
        }
        if (L == w->L) {
            w->parked--;
        } else if (--w->old_parked == 0) {
            lua_close(w->old); /* its last parked run has moved on */
            w->old = NULL;
        }
    } else if (!resuming && ls_flow_act_parked(a)) {
        if (w->npa == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64;
            parked_act *pa = realloc(w->pa, cap * sizeof *pa);
            if (pa == NULL) {
                /* Cannot track it: its resume gives the run up to the next
                 * start of the daemon. */
                ls_flow_act_abandon(a);
                return;
            }
            w->pa = pa;
            w->cap = cap;
        }
        w->pa[w->npa].act = a;
        w->pa[w->npa].L = L;
        w->npa++;
        w->parked++;
    }
}

static void activate(void *ud, void *p, ls_flow_act *a)
{
    lls_runner *r = ud;
    worker *w = p;
    pthread_mutex_lock(&r->mu);
    unsigned gen = r->gen;
    pthread_mutex_unlock(&r->mu);
    if (gen != w->gen || w->L == NULL) {
        /* Reloaded files: new activations use a new state. Runs parked in
         * the current one finish their activation there (kept as old);
         * with an old state still busy, the switch waits. */
        if (w->L == NULL || w->parked == 0 || w->old == NULL) {
            ls_err err;
            lua_State *L = NULL;
            unsigned g = 0;
            if (open_worker_state(r, &L, &g, &err) != LS_OK) {
                ls_flow_act_log(a, LS_FLOW_LOG_ERROR, ls_err_text(&err), strlen(ls_err_text(&err)));
            } else {
                if (w->L && w->parked == 0) {
                    lua_close(w->L);
                } else if (w->L) {
                    w->old = w->L;
                    w->old_parked = w->parked;
                }
                w->L = L;
                w->gen = g;
                w->parked = 0;
            }
        }
    }
    if (w->L == NULL) {
        ls_flow_act_abandon(a);
        return;
    }
    /* No collection step here: the allocator's own pacing collects (an
     * explicit step per activation cost ~6% of the CPU of a 3-step run). */
    drive(w, a, 0, w->L);
}

static void resume(void *ud, void *p, ls_flow_act *a)
{
    (void)ud;
    worker *w = p;
    for (size_t i = 0; i < w->npa; i++) {
        if (w->pa[i].act == a) {
            drive(w, a, 1, w->pa[i].L);
            return;
        }
    }
    ls_flow_act_abandon(a); /* never parked here: cannot happen */
}

static void io_ready(void *ud, void *owner)
{
    worker *w = ud;
    for (size_t i = 0; i < w->nio; i++)
        if (w->io[i].act == owner) w->io[i].ready = 1;
}

/* The activations parked on HTTP transfers that can go on: one of their
 * transfers finished, or the engine wants them to give up. */
static size_t poll(void *ud, void *p, int ms, ls_flow_act **out, size_t cap)
{
    (void)ud;
    worker *w = p;
    for (size_t i = 0; i < w->nio && ms > 0; i++)
        if (w->io[i].ready || ls_flow_act_interrupted(w->io[i].act)) ms = 0;
    lls_httpc_poll(ms, io_ready, w);
    size_t n = 0;
    for (size_t i = 0; i < w->nio && n < cap;) {
        if (w->io[i].ready || ls_flow_act_interrupted(w->io[i].act)) {
            out[n++] = w->io[i].act;
            w->io[i] = w->io[--w->nio];
        } else {
            i++;
        }
    }
    return n;
}

static void wake(void *ud, void *p)
{
    (void)ud;
    lls_httpc_wakeup(((worker *)p)->multi);
}

/* The loaded type named type[0..len), or NULL; the caller holds r->mu. */
static const wf_type *type_named(const lls_runner *r, const char *type, size_t len)
{
    for (size_t i = 0; i < r->ntypes; i++)
        if (strlen(r->types[i].name) == len && memcmp(r->types[i].name, type, len) == 0)
            return &r->types[i];
    return NULL;
}

static int has_type(void *ud, const char *type, size_t len)
{
    lls_runner *r = ud;
    pthread_mutex_lock(&r->mu);
    int found = type_named(r, type, len) != NULL;
    pthread_mutex_unlock(&r->mu);
    return found;
}

static void list_types(void *ud, ls_buf *out)
{
    lls_runner *r = ud;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ntypes; i++)
        ls_buf_printf(out, NULL, "%s%s", i ? ", " : "", r->types[i].name);
    pthread_mutex_unlock(&r->mu);
}

static int type_version(void *ud, const char *type, size_t len, ls_buf *version, ls_buf *source)
{
    lls_runner *r = ud;
    pthread_mutex_lock(&r->mu);
    const wf_type *t = type_named(r, type, len);
    int found = t && t->version[0] &&
                ls_buf_set(version, t->version, strlen(t->version), NULL) == LS_OK &&
                (source == NULL || ls_buf_set(source, t->source, t->source_len, NULL) == LS_OK);
    pthread_mutex_unlock(&r->mu);
    return found;
}

static int type_limits(void *ud, const char *type, size_t len, ls_buf *json)
{
    lls_runner *r = ud;
    pthread_mutex_lock(&r->mu);
    const wf_type *t = type_named(r, type, len);
    int found = t && t->limits && ls_buf_set(json, t->limits, strlen(t->limits), NULL) == LS_OK;
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* workflow.define{retention}: the type's, or the engine's default. */
static int64_t retention_ms(void *ud, const char *type, size_t len)
{
    lls_runner *r = ud;
    pthread_mutex_lock(&r->mu);
    const wf_type *t = type_named(r, type, len);
    int64_t ms = t ? t->retention_ms : LS_FLOW_RETENTION_DEFAULT;
    pthread_mutex_unlock(&r->mu);
    return ms;
}

const ls_flow_runner *lls_runner_ops(void)
{
    static const ls_flow_runner ops = {worker_open,  worker_close, activate,     has_type,
                                       list_types,   resume,       type_version, type_limits,
                                       retention_ms, poll,         wake};
    return &ops;
}

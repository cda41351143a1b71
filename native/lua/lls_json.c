/* SPDX-License-Identifier: MIT
 * lodestone.core.json: JSON for Lua over the project's jansson helpers.
 * decode turns text into Lua values (null is json.null, arrays carry
 * json.array_mt); encode turns them back into compact JSON with sorted keys.
 * Failures return nil, message, code; messages name the position in the text
 * or the path of the offending value ("at $.items[3].name"). Integers stay
 * exact: the full int64 range on Lua 5.4, up to 2^53 on LuaJIT.
 */
#include "ls_config.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lls.h"
#include "lodestone/ls_alloc.h"
#include "ls_json.h"

/* Deepest nesting of arrays and objects, both ways. It is jansson's parser
 * limit, so whatever encode produces, decode accepts. */
#define MAX_DEPTH JSON_PARSER_MAX_DEPTH

/* Registry names of the metatables (stable across reloads in one state). */
#define ARRAY_MT   "lodestone.json.array"
#define OBJECT_MT  "lodestone.json.object"
#define BOX_MT     "lodestone.json.box"
#define SCRATCH_MT "lodestone.json.scratch"

/* Upvalues shared by every json function. */
#define UV_ARRAY_MT  lua_upvalueindex(1)
#define UV_OBJECT_MT lua_upvalueindex(2)
#define UV_BOX_MT    lua_upvalueindex(3)
#define UV_SCRATCH   lua_upvalueindex(4)

/* ---- per-call scratch ---- */

/* Owned by a userdata on the Lua stack, so that a Lua error (a longjmp, e.g.
 * out of memory in lua_pushlstring) in the middle of a call leaks nothing:
 * __gc frees whatever the normal path has not freed yet. */
typedef struct {
    json_t *doc;
    ls_buf buf;
} box;

static void box_clear(box *b)
{
    json_decref(b->doc);
    b->doc = NULL;
    ls_buf_free(&b->buf);
}

static int l_box_gc(lua_State *L)
{
    box_clear(lua_touserdata(L, 1));
    return 0;
}

static box *new_box(lua_State *L)
{
    box *b = lls_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    lua_pushvalue(L, UV_BOX_MT);
    lua_setmetatable(L, -2);
    return b;
}

/* ---- paths in error messages ---- */

/* One step from the root to the value being converted. Frames live on the C
 * stack of the recursion and link upwards; the root (up == NULL) is "$".
 * Array positions are 1-based, as in the Lua table. */
typedef struct frame {
    const struct frame *up;
    const char *key; /* object member name; NULL for an array item */
    size_t klen;
    long long index;   /* array item position */
    const void *table; /* encode: the Lua table converted here (cycles) */
    int depth;         /* containers enclosing this value */
} frame;

#define PATH_SHOWN 100 /* longer paths keep their end: "$...[7].name" */
#define KEY_SHOWN  32  /* longer keys are cut: ["aaaa..."] */
#define STEP_MAX   (KEY_SHOWN * 4 + 16)

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Writes one step (".name", ["odd key"], [3]) into out (STEP_MAX bytes). */
static size_t format_step(const frame *fr, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    if (fr->key == NULL) return (size_t)snprintf(out, STEP_MAX, "[%lld]", fr->index);
    size_t n = fr->klen < KEY_SHOWN ? fr->klen : KEY_SHOWN;
    if (n == fr->klen && is_ident(fr->key, n))
        return (size_t)snprintf(out, STEP_MAX, ".%.*s", (int)n, fr->key);
    size_t len = 0;
    out[len++] = '[';
    out[len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)fr->key[i];
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[len++] = (char)c;
        } else {
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    if (n < fr->klen) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    out[len++] = '"';
    out[len++] = ']';
    out[len] = '\0';
    return len;
}

/* Writes the path of fr ("$.items[3].name") into out, built from the leaf
 * up so that a very long path keeps its informative end. */
static void format_path(const frame *fr, char *out, size_t cap)
{
    char tmp[PATH_SHOWN];
    size_t pos = sizeof tmp;
    int cut = 0;
    for (; fr != NULL && fr->up != NULL; fr = fr->up) {
        char step[STEP_MAX];
        size_t n = format_step(fr, step);
        if (n > pos) {
            cut = 1;
            break;
        }
        pos -= n;
        memcpy(tmp + pos, step, n);
    }
    snprintf(out, cap, "$%s%.*s", cut ? "..." : "", (int)(sizeof tmp - pos), tmp + pos);
}

static int fail_at(ls_err *err, const frame *fr, ls_rc code, const char *fmt, ...) LS_PRINTF(4, 5);

/* Sets err to "at <path>: <what>" and returns -1 (the recursion's failure). */
static int fail_at(ls_err *err, const frame *fr, ls_rc code, const char *fmt, ...)
{
    char path[PATH_SHOWN + 8];
    char what[LS_ERR_MSGMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    format_path(fr, path, sizeof path);
    ls_err_set(err, code, "at %s: %s", path, what);
    return -1;
}

/* ---- per-state scratch ---- */

/* One written member of an object being written: its key and where its
 * "key":value text lies in the buffer. */
typedef struct {
    const char *key;
    size_t klen, start, end;
} member_rec;

/* The per-state scratch (upvalue UV_SCRATCH): reused by every call, freed
 * by __gc with the state. encode and decode call no Lua code, so calls
 * never nest; a raise (out of memory) leaves it to the next call. */
typedef struct {
    ls_buf out, tmp;
    member_rec *m;
    size_t mn, mcap;
} scratch;

#define SCRATCH_KEEP 65536 /* larger buffers are released after the call */

static void scratch_trim(scratch *s)
{
    if (s->out.cap > SCRATCH_KEEP) ls_buf_free(&s->out);
    if (s->tmp.cap > SCRATCH_KEEP) ls_buf_free(&s->tmp);
    if (s->mcap > SCRATCH_KEEP / sizeof *s->m) {
        ls_free(s->m);
        s->m = NULL;
        s->mcap = 0;
    }
    s->mn = 0;
}

static int l_scratch_gc(lua_State *L)
{
    scratch *s = lua_touserdata(L, 1);
    ls_buf_free(&s->out);
    ls_buf_free(&s->tmp);
    ls_free(s->m);
    s->m = NULL;
    s->mcap = s->mn = 0;
    return 0;
}

/* ---- decode: json_t -> Lua ---- */

typedef struct {
    lua_State *L;
    int array_mt; /* stack index (or upvalue) of the array marker metatable */
    ls_err err;
} dec;

static int push_value(dec *d, json_t *v, const frame *fr);

static int push_array(dec *d, json_t *v, const frame *fr)
{
    lua_State *L = d->L;
    size_t n = json_array_size(v);
    lua_createtable(L, n < INT_MAX ? (int)n : INT_MAX, 0);
    lua_pushvalue(L, d->array_mt);
    lua_setmetatable(L, -2);
    for (size_t i = 0; i < n; i++) {
        frame item = {fr, NULL, 0, (long long)i + 1, NULL, fr->depth + 1};
        if (push_value(d, json_array_get(v, i), &item) != 0) return -1;
        lua_rawseti(L, -2, (int)(i + 1));
    }
    return 0;
}

static int push_object(dec *d, json_t *v, const frame *fr)
{
    lua_State *L = d->L;
    size_t n = json_object_size(v);
    lua_createtable(L, 0, n < INT_MAX ? (int)n : INT_MAX);
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach(v, key, klen, val)
    {
        frame member = {fr, key, klen, 0, NULL, fr->depth + 1};
        lua_pushlstring(L, key, klen);
        if (push_value(d, val, &member) != 0) return -1;
        lua_rawset(L, -3);
    }
    return 0;
}

static int push_integer(dec *d, json_int_t n, const frame *fr)
{
    if (!LLS_HAS_INTEGERS && (n > LS_JSON_EXACT_INT || n < -LS_JSON_EXACT_INT))
        return fail_at(&d->err, fr, LS_EINVAL,
                       "integer %" JSON_INTEGER_FORMAT " cannot be represented exactly "
                       "(this Lua has no integers; the limit is +-2^53)",
                       n);
    lls_pushint64(d->L, n);
    return 0;
}

/* Pushes the Lua form of v. On failure returns -1 with d->err set, leaving
 * partial results on the stack for the caller to drop. */
static int push_value(dec *d, json_t *v, const frame *fr)
{
    lua_State *L = d->L;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (fr->depth >= MAX_DEPTH)
            return fail_at(&d->err, fr, LS_EINVAL, "nesting deeper than %d levels", MAX_DEPTH);
        if (!lua_checkstack(L, 4))
            return fail_at(&d->err, fr, LS_EINVAL, "nesting too deep for the Lua stack");
        return json_is_array(v) ? push_array(d, v, fr) : push_object(d, v, fr);
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); return 0;
    case JSON_INTEGER: return push_integer(d, json_integer_value(v), fr);
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); return 0;
    case JSON_TRUE: lua_pushboolean(L, 1); return 0;
    case JSON_FALSE: lua_pushboolean(L, 0); return 0;
    case JSON_NULL: lua_pushlightuserdata(L, NULL); return 0;
    }
    return fail_at(&d->err, fr, LS_EINVAL, "unknown JSON type %d", (int)json_typeof(v));
}

/* ---- decode, the direct way: text -> Lua ----
 *
 * A reader for the texts met in practice (the stored results replayed on
 * every activation): it builds the Lua values straight from the text, and
 * gives up (READ_OTHER) on anything it does not take on itself, where
 * jansson then decides, so that what is accepted, the values and every
 * error message stay jansson's. It never accepts what jansson refuses. */

#define READ_OTHER  (-1)
#define READ_DEPTH  64 /* deeper texts go to jansson */
#define READ_DIGITS 15 /* longer integers too: exact in a double */

typedef struct {
    lua_State *L;
    const unsigned char *p, *end;
    scratch *s;
    int array_mt;
} reader;

static void skip_ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* Reads a string (r->p after its opening quote) into *out and *n: borrowed
 * from the text when it has no escapes, else decoded into the scratch's
 * tmp. */
static int read_string(reader *r, const char **out, size_t *n)
{
    const unsigned char *p = r->p;
    while (p < r->end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) p++;
    if (p < r->end && *p == '"') { /* plain ASCII: the common case */
        *out = (const char *)r->p;
        *n = (size_t)(p - r->p);
        r->p = p + 1;
        return 0;
    }
    ls_buf *b = &r->s->tmp;
    ls_buf_clear(b);
    if (ls_buf_reserve(b, (size_t)(r->end - r->p), NULL) != LS_OK ||
        ls_json_string_decode(&r->p, r->end, b->ptr, &b->len) != NULL)
        return READ_OTHER; /* jansson's to report */
    b->ptr[b->len] = '\0';
    *out = (const char *)b->ptr;
    *n = b->len;
    return 0;
}

/* Reads a number as jansson's grammar has it: integers of up to
 * READ_DIGITS digits exactly, reals through strtod; others to jansson. */
static int read_number(reader *r)
{
    const unsigned char *p = r->p, *start = p;
    int neg = 0, real = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    const unsigned char *digits = p;
    if (p < r->end && *p == '0')
        p++;
    else
        while (p < r->end && *p >= '0' && *p <= '9') p++;
    size_t nd = (size_t)(p - digits);
    if (nd == 0) return READ_OTHER;
    if (p < r->end && *p == '.') {
        real = 1;
        const unsigned char *f = ++p;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
        if (p == f) return READ_OTHER;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < r->end && (*p == '+' || *p == '-')) p++;
        const unsigned char *x = p;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
        if (p == x) return READ_OTHER;
    }
    if (p < r->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E'))
        return READ_OTHER; /* "01", "1.2.3": jansson's to report */
    if (!real) {
        if (nd > READ_DIGITS) return READ_OTHER;
        long long v = 0;
        for (size_t i = 0; i < nd; i++) v = v * 10 + (digits[i] - '0');
        lls_pushint64(r->L, neg ? -v : v);
    } else {
        char tmp[64];
        size_t len = (size_t)(p - start);
        if (len >= sizeof tmp) return READ_OTHER;
        memcpy(tmp, start, len);
        tmp[len] = '\0';
        char *end;
        double v = strtod(tmp, &end);
        if (end != tmp + len || isinf(v)) return READ_OTHER; /* a locale's comma; overflow */
        lua_pushnumber(r->L, (lua_Number)v);
    }
    r->p = p;
    return 0;
}

static int read_value(reader *r, int depth);

static int read_array(reader *r, int depth)
{
    lua_State *L = r->L;
    lua_newtable(L);
    lua_pushvalue(L, r->array_mt);
    lua_setmetatable(L, -2);
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }
    for (int i = 1;; i++) {
        if (read_value(r, depth) != 0) return READ_OTHER;
        lua_rawseti(L, -2, i);
        skip_ws(r);
        if (r->p >= r->end) return READ_OTHER;
        if (*r->p == ']') {
            r->p++;
            return 0;
        }
        if (*r->p++ != ',') return READ_OTHER;
    }
}

static int read_object(reader *r, int depth)
{
    lua_State *L = r->L;
    lua_newtable(L);
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p++ != '"') return READ_OTHER;
        const char *k;
        size_t kn;
        if (read_string(r, &k, &kn) != 0 || memchr(k, '\0', kn) != NULL) return READ_OTHER;
        lua_pushlstring(L, k, kn);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        int dup = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (dup) return READ_OTHER; /* jansson: duplicate object key */
        skip_ws(r);
        if (r->p >= r->end || *r->p++ != ':') return READ_OTHER;
        if (read_value(r, depth) != 0) return READ_OTHER;
        lua_rawset(L, -3);
        skip_ws(r);
        if (r->p >= r->end) return READ_OTHER;
        if (*r->p == '}') {
            r->p++;
            return 0;
        }
        if (*r->p++ != ',') return READ_OTHER;
    }
}

static int literal(reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return READ_OTHER;
    r->p += n;
    return 0;
}

/* Pushes the value at r->p. On READ_OTHER the stack holds partial values
 * for the caller to drop. */
static int read_value(reader *r, int depth)
{
    lua_State *L = r->L;
    skip_ws(r);
    if (r->p >= r->end) return READ_OTHER;
    switch (*r->p) {
    case '{':
    case '[':
        if (depth >= READ_DEPTH || !lua_checkstack(L, 6)) return READ_OTHER;
        return *r->p++ == '{' ? read_object(r, depth + 1) : read_array(r, depth + 1);
    case '"': {
        const char *str;
        size_t n;
        r->p++;
        if (read_string(r, &str, &n) != 0) return READ_OTHER;
        lua_pushlstring(L, str, n);
        return 0;
    }
    case 't':
        if (literal(r, "true", 4) != 0) return READ_OTHER;
        lua_pushboolean(L, 1);
        return 0;
    case 'f':
        if (literal(r, "false", 5) != 0) return READ_OTHER;
        lua_pushboolean(L, 0);
        return 0;
    case 'n':
        if (literal(r, "null", 4) != 0) return READ_OTHER;
        lua_pushlightuserdata(L, NULL);
        return 0;
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) return read_number(r);
        return READ_OTHER;
    }
}

/* Pushes the value of the whole text, or returns READ_OTHER with the stack
 * as it was. */
static int read_text(lua_State *L, const char *text, size_t len, scratch *s, int array_mt)
{
    int top = lua_gettop(L);
    reader r = {L, (const unsigned char *)text, (const unsigned char *)text + len, s, array_mt};
    int rc = read_value(&r, 0);
    if (rc == 0) {
        skip_ws(&r);
        if (r.p != r.end) rc = READ_OTHER; /* trailing text, or a NUL byte */
    }
    if (rc != 0) lua_settop(L, top);
    scratch_trim(s);
    return rc;
}

/* Like luaL_checklstring, but numbers are not accepted as strings. */
static const char *check_string(lua_State *L, int arg, size_t *len)
{
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, arg)));
    return lua_tolstring(L, arg, len);
}

/* json.decode(text) -> value | nil, msg, code */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *text = check_string(L, 1, &len);
    lua_settop(L, 1);
    if (read_text(L, text, len, lua_touserdata(L, UV_SCRATCH), UV_ARRAY_MT) == 0) return 1;
    box *b = new_box(L);
    dec d = {L, UV_ARRAY_MT, {LS_OK, ""}};
    if (ls_json_parse(text, len, &b->doc, &d.err) != LS_OK)
        return lls_push_fail(L, "json.decode", &d.err);
    frame root = {NULL, NULL, 0, 0, NULL, 0};
    int rc = push_value(&d, b->doc, &root);
    json_decref(b->doc);
    b->doc = NULL;
    if (rc == 0) return 1;
    lua_settop(L, 2);
    return lls_push_fail(L, "json.decode", &d.err);
}

/* json_t -> Lua for other binding files (declared in lls.h). */
int lls_push_json(lua_State *L, const struct json_t *v, ls_err *err)
{
    int top = lua_gettop(L);
    luaL_getmetatable(L, ARRAY_MT);
    dec d = {L, lua_gettop(L), {LS_OK, ""}};
    frame root = {NULL, NULL, 0, 0, NULL, 0};
    if (push_value(&d, (json_t *)v, &root) != 0) {
        lua_settop(L, top);
        if (err != NULL) *err = d.err;
        return -1;
    }
    lua_remove(L, top + 1); /* the metatable */
    return 0;
}

/* ---- encode: Lua -> JSON text ----
 *
 * Written straight into a scratch buffer, byte for byte as ls_json_dump
 * would write the same value (compact, object keys sorted): the texts are
 * stored in run histories and compared on replay. The checks run in the
 * order of a walk of the value (a table's shape before its key, its key
 * before its members), so the first problem met is the one reported. */

typedef struct {
    lua_State *L;
    scratch *s;
    ls_err err;
} enc;

static int out_of_memory(enc *e, const frame *fr)
{
    return fail_at(&e->err, fr, LS_ENOMEM, "out of memory");
}

static int put(enc *e, const frame *fr, const char *p, size_t n)
{
    return ls_buf_append(&e->s->out, p, n, NULL) == LS_OK ? 0 : out_of_memory(e, fr);
}

/* The member key of fr, checked (after the value's own checks, as before
 * any of its members) and written with its colon. Array items: nothing. */
static int put_key(enc *e, const frame *fr)
{
    if (fr->key == NULL) return 0;
    if (memchr(fr->key, '\0', fr->klen) != NULL) /* json.decode could not read it back */
        return fail_at(&e->err, fr, LS_EINVAL, "object key contains a NUL byte");
    if (!ls_json_utf8_valid(fr->key, fr->klen))
        return fail_at(&e->err, fr, LS_EINVAL, "object key is not valid UTF-8");
    if (ls_json_put_string(&e->s->out, fr->key, fr->klen, NULL) != LS_OK)
        return out_of_memory(e, fr);
    return put(e, fr, ":", 1);
}

static int encode_value(enc *e, int idx, frame *fr);

static int encode_number(enc *e, int idx, const frame *fr)
{
    lua_State *L = e->L;
    ls_buf *out = &e->s->out;
    if (lua_isinteger(L, idx)) {
        if (put_key(e, fr) != 0) return -1;
        return ls_json_put_int(out, (long long)lua_tointeger(L, idx), NULL) == LS_OK
                   ? 0
                   : out_of_memory(e, fr);
    }
    lua_Number x = lua_tonumber(L, idx);
    if (isnan(x)) return fail_at(&e->err, fr, LS_EINVAL, "cannot encode NaN");
    if (isinf(x))
        return fail_at(&e->err, fr, LS_EINVAL, "cannot encode %s", x > 0 ? "inf" : "-inf");
    if (put_key(e, fr) != 0) return -1;
    /* Integral floats in the exact range are integers (LuaJIT has no other
     * kind); -0.0 stays a real so that its sign survives. */
    ls_rc rc;
    if (x >= -LS_JSON_EXACT_INT && x <= LS_JSON_EXACT_INT && x == (lua_Number)(long long)x &&
        !(x == 0 && signbit(x)))
        rc = ls_json_put_int(out, (long long)x, NULL);
    else
        rc = ls_json_put_real(out, (double)x, NULL);
    return rc == LS_OK ? 0 : out_of_memory(e, fr);
}

/* 1 when the key at idx is a positive integer (an array index), in *i. */
static int key_index(lua_State *L, int idx, long long *i)
{
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    if (lua_isinteger(L, idx)) {
        *i = (long long)lua_tointeger(L, idx);
        return *i >= 1;
    }
    lua_Number x = lua_tonumber(L, idx);
    if (!(x >= 1 && x <= LS_JSON_EXACT_INT) || x != (lua_Number)(long long)x) return 0;
    *i = (long long)x;
    return 1;
}

static int bad_key(enc *e, int idx, const frame *fr)
{
    lua_State *L = e->L;
    char desc[64];
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(desc, sizeof desc, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(desc, sizeof desc, "%.14g", (double)lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN:
        snprintf(desc, sizeof desc, "%s", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default: snprintf(desc, sizeof desc, "of type %s", luaL_typename(L, idx)); break;
    }
    return fail_at(&e->err, fr, LS_EINVAL, "table key %s is neither a string nor an array index",
                   desc);
}

enum shape { SHAPE_ANY, SHAPE_ARRAY, SHAPE_OBJECT };

/* The marker metatable of the table at idx, if any. */
static enum shape marked_shape(lua_State *L, int idx)
{
    enum shape s = SHAPE_ANY;
    if (!lua_getmetatable(L, idx)) return s;
    if (lua_rawequal(L, -1, UV_ARRAY_MT))
        s = SHAPE_ARRAY;
    else if (lua_rawequal(L, -1, UV_OBJECT_MT))
        s = SHAPE_OBJECT;
    lua_pop(L, 1);
    return s;
}

/* Decides whether the table at idx is an array (keys exactly 1..n, or
 * marked with json.array_mt) or an object (string keys, or empty). */
static int table_shape(enc *e, int idx, const frame *fr, enum shape *shape, long long *n)
{
    lua_State *L = e->L;
    long long nidx = 0, maxidx = 0, nstr = 0, i;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            nstr++;
        } else if (key_index(L, -1, &i)) {
            nidx++;
            if (i > maxidx) maxidx = i;
        } else {
            int rc = bad_key(e, lua_gettop(L), fr);
            lua_pop(L, 1);
            return rc;
        }
    }
    enum shape marked = marked_shape(L, idx);
    if (marked == SHAPE_ARRAY && nstr > 0)
        return fail_at(&e->err, fr, LS_EINVAL, "table marked as array has string keys");
    if (marked == SHAPE_OBJECT && nidx > 0)
        return fail_at(&e->err, fr, LS_EINVAL, "table marked as object has array index keys");
    if (nstr > 0 && nidx > 0)
        return fail_at(&e->err, fr, LS_EINVAL, "table mixes string keys and array indices");
    *shape = marked == SHAPE_ARRAY || nidx > 0 ? SHAPE_ARRAY : SHAPE_OBJECT;
    if (*shape == SHAPE_ARRAY && maxidx != nidx)
        return fail_at(&e->err, fr, LS_EINVAL,
                       "sparse array: %lld of indices 1..%lld missing (use json.null for holes)",
                       maxidx - nidx, maxidx);
    *n = nidx;
    return 0;
}

static int encode_items(enc *e, int idx, const frame *fr, long long n)
{
    lua_State *L = e->L;
    if (put(e, fr, "[", 1) != 0) return -1;
    for (long long i = 1; i <= n; i++) {
        if (i > 1 && put(e, fr, ",", 1) != 0) return -1;
        lua_rawgeti(L, idx, (lls_index)i); /* n fits: checked when counted */
        frame item = {fr, NULL, 0, i, NULL, fr->depth + 1};
        int rc = encode_value(e, lua_gettop(L), &item);
        lua_pop(L, 1);
        if (rc != 0) return rc;
    }
    return put(e, fr, "]", 1);
}

static int member_cmp(const void *pa, const void *pb)
{
    const member_rec *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);
    if (c != 0) return c;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

/* Members are written in table order, each recorded, then put in key order
 * (a copy through tmp) unless they already are. Keys stay valid: the table
 * holds them and nothing changes it meanwhile. */
static int encode_members(enc *e, int idx, const frame *fr)
{
    lua_State *L = e->L;
    scratch *s = e->s;
    if (put(e, fr, "{", 1) != 0) return -1;
    size_t open = s->out.len, base = s->mn;
    int sorted = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (s->mn == s->mcap) {
            size_t cap = s->mcap ? s->mcap * 2 : 16;
            member_rec *m = ls_realloc(s->m, cap * sizeof *m);
            if (m == NULL) {
                lua_pop(L, 2);
                return out_of_memory(e, fr);
            }
            s->m = m;
            s->mcap = cap;
        }
        size_t i = s->mn++; /* taken before the value: nested objects stack above */
        member_rec *m = &s->m[i];
        m->key = lua_tolstring(L, -2, &m->klen); /* a string: table_shape checked */
        if (i > base && put(e, fr, ",", 1) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        m->start = s->out.len;
        frame item = {fr, m->key, m->klen, 0, NULL, fr->depth + 1};
        int rc = encode_value(e, lua_gettop(L), &item);
        lua_pop(L, 1);
        if (rc != 0) {
            lua_pop(L, 1);
            return rc;
        }
        m = &s->m[i]; /* (nested objects may have moved the array) */
        m->end = s->out.len;
        if (i > base && member_cmp(&s->m[i - 1], m) > 0) sorted = 0;
    }
    size_t n = s->mn - base;
    s->mn = base;
    if (!sorted) {
        member_rec *m = s->m + base;
        qsort(m, n, sizeof *m, member_cmp);
        ls_buf_clear(&s->tmp);
        for (size_t i = 0; i < n; i++)
            if ((i > 0 && ls_buf_putc(&s->tmp, ',', NULL) != LS_OK) ||
                ls_buf_append(&s->tmp, s->out.ptr + m[i].start, m[i].end - m[i].start, NULL) !=
                    LS_OK)
                return out_of_memory(e, fr);
        s->out.len = open;
        if (put(e, fr, (const char *)s->tmp.ptr, s->tmp.len) != 0) return -1;
    }
    return put(e, fr, "}", 1);
}

static int encode_table(enc *e, int idx, frame *fr)
{
    lua_State *L = e->L;
    const void *t = lua_topointer(L, idx);
    for (const frame *f = fr->up; f != NULL; f = f->up)
        if (f->table == t) return fail_at(&e->err, fr, LS_EINVAL, "cycle: a table contains itself");
    if (fr->depth >= MAX_DEPTH)
        return fail_at(&e->err, fr, LS_EINVAL, "nesting deeper than %d levels", MAX_DEPTH);
    if (!lua_checkstack(L, 4))
        return fail_at(&e->err, fr, LS_EINVAL, "nesting too deep for the Lua stack");
    fr->table = t;

    enum shape shape = SHAPE_OBJECT;
    long long n = 0;
    if (table_shape(e, idx, fr, &shape, &n) != 0) return -1;
    if (put_key(e, fr) != 0) return -1;
    return shape == SHAPE_ARRAY ? encode_items(e, idx, fr, n) : encode_members(e, idx, fr);
}

/* Writes the Lua value at (absolute) idx, with its key when it is a
 * member. Never raises; on failure returns -1 with e->err set. */
static int encode_value(enc *e, int idx, frame *fr)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return put_key(e, fr) != 0 ? -1 : put(e, fr, "null", 4);
    case LUA_TBOOLEAN:
        if (put_key(e, fr) != 0) return -1;
        return lua_toboolean(L, idx) ? put(e, fr, "true", 4) : put(e, fr, "false", 5);
    case LUA_TNUMBER: return encode_number(e, idx, fr);
    case LUA_TSTRING: {
        size_t n;
        const char *str = lua_tolstring(L, idx, &n);
        if (!ls_json_utf8_valid(str, n))
            return fail_at(&e->err, fr, LS_EINVAL, "string is not valid UTF-8");
        if (put_key(e, fr) != 0) return -1;
        return ls_json_put_string(&e->s->out, str, n, NULL) == LS_OK ? 0 : out_of_memory(e, fr);
    }
    case LUA_TTABLE: return encode_table(e, idx, fr);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) return put_key(e, fr) != 0 ? -1 : put(e, fr, "null", 4);
        return fail_at(&e->err, fr, LS_EINVAL,
                       "cannot encode a light userdata other than json.null");
    default: return fail_at(&e->err, fr, LS_EINVAL, "cannot encode a %s", luaL_typename(L, idx));
    }
}

/* json.encode(value) -> text | nil, msg, code */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    scratch *s = lua_touserdata(L, UV_SCRATCH);
    enc e = {L, s, {LS_OK, ""}};
    ls_buf_clear(&s->out);
    s->mn = 0;
    frame root = {NULL, NULL, 0, 0, NULL, 0};
    if (encode_value(&e, 1, &root) != 0) {
        scratch_trim(s);
        return lls_push_fail(L, "json.encode", &e.err);
    }
    /* The scratch outlives a raise in lua_pushlstring: nothing leaks. */
    lua_pushlstring(L, (const char *)s->out.ptr, s->out.len);
    scratch_trim(s);
    return 1;
}

/* ---- markers ---- */

/* Sets the metatable at upvalue mt on table t (a new one when t is absent). */
static int set_marker(lua_State *L, int mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    lua_pushvalue(L, mt);
    lua_setmetatable(L, 1);
    return 1;
}

/* json.array([t]) -> t, marked to encode as an array (even when empty) */
static int l_array(lua_State *L)
{
    return set_marker(L, UV_ARRAY_MT);
}

/* json.object([t]) -> t, marked to encode as an object */
static int l_object(lua_State *L)
{
    return set_marker(L, UV_OBJECT_MT);
}

void lls_open_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"decode", l_decode}, {"encode", l_encode}, {"array", l_array},
        {"object", l_object}, {NULL, NULL},
    };
    lua_newtable(L);
    luaL_newmetatable(L, ARRAY_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "array_mt");
    luaL_newmetatable(L, OBJECT_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "object_mt");
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__gc");
    scratch *sc = lls_newuserdata(L, sizeof *sc);
    memset(sc, 0, sizeof *sc);
    luaL_newmetatable(L, SCRATCH_MT);
    lua_pushcfunction(L, l_scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    luaL_setfuncs(L, funcs, 4);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}

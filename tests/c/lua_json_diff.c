/* SPDX-License-Identifier: MIT
 * lodestone.core.json against jansson, differentially: json.decode reads
 * most texts itself and json.encode writes text itself, and both must do
 * exactly what the jansson path does (the values, which texts are refused
 * and with what message, the bytes written). Built once per Lua runtime
 * (test_lua_json_luajit, test_lua_json_lua54).
 */
#include "helpers.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <string.h>

#include "ls_json.h"
#include "lua/lls.h"

int luaopen_lodestone_core(lua_State *L);

static uint64_t seed = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* ---- random values ---- */

static json_t *random_string(int key)
{
    static const char *const pieces[] = {"a",
                                         "b",
                                         "key",
                                         " ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xe2\x80\xa8",
                                         "0",
                                         "_"};
    char s[48];
    size_t n = 0, count = rnd() % 6;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = rnd();
        if (!key && r % 11 == 0) {
            s[n++] = '\0'; /* \u0000 inside values, never in keys */
            continue;
        }
        const char *p = pieces[(r >> 8) % (sizeof pieces / sizeof pieces[0])];
        size_t len = strlen(p);
        memcpy(s + n, p, len);
        n += len;
    }
    return json_stringn(s, n);
}

static json_t *random_number(void)
{
    uint64_t r = rnd();
    switch (r % 6) {
    case 0: return json_integer((json_int_t)(rnd() % 2000) - 1000);
    case 1: {
        json_int_t v = (json_int_t)(rnd() >> (rnd() % 64));
#if LUA_VERSION_NUM < 503
        v %= LS_JSON_EXACT_INT; /* a double holds it exactly */
#endif
        return json_integer(r & 64 ? -v : v);
    }
    case 2: return json_real((double)(int64_t)(rnd() % 100000) / 64.0 - 700.0);
    case 3: return json_real(r & 64 ? -0.0 : 0.5);
    default: {
        uint64_t bits = rnd();
        double d;
        bits = (bits & 0x800FFFFFFFFFFFFFULL) | ((bits % 2000 + 24) << 52);
        memcpy(&d, &bits, sizeof d);
        return json_real(d);
    }
    }
}

static json_t *random_value(int depth)
{
    uint64_t r = rnd() % (depth < 4 ? 9 : 6);
    switch (r) {
    case 0: return json_null();
    case 1: return json_boolean(rnd() & 1);
    case 2:
    case 3: return random_number();
    case 4:
    case 5: return random_string(0);
    case 6:
    case 7: {
        json_t *o = json_object();
        for (size_t i = 0, n = rnd() % 5; i < n; i++) {
            json_t *k = random_string(1);
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (size_t i = 0, n = rnd() % 5; i < n; i++)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    }
}

/* What json.encode writes for v: jansson's text once integral reals in
 * the exact range are integers (Lua numbers carry no such distinction on
 * LuaJIT, and encode treats 5.4 floats alike); -0.0 stays a real. */
static json_t *as_encoded(json_t *v)
{
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x >= -LS_JSON_EXACT_INT && x <= LS_JSON_EXACT_INT && x == (double)(long long)x &&
            !(x == 0 && signbit(x))) {
            json_decref(v);
            return json_integer((json_int_t)x);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_set_new(v, i, as_encoded(json_incref(json_array_get(v, i))));
    } else if (json_is_object(v)) {
        const char *k;
        size_t kn;
        json_t *m;
        json_object_keylen_foreach(v, k, kn, m)
            json_object_setn_new(v, k, kn, as_encoded(json_incref(m)));
    }
    return v;
}

/* ---- Lua side ---- */

static lua_State *open_json(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_lodestone_core);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "json");
    lua_remove(L, -2);
    return L; /* the json table at index 1 */
}

/* 1 when the values at a and b are the same: type, number subtype and bits,
 * bytes, metatable, and the same for every member. */
static int same(lua_State *L, int a, int b)
{
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    luaL_checkstack(L, 8, "same");
    if (lua_type(L, a) != lua_type(L, b)) return 0;
    switch (lua_type(L, a)) {
    case LUA_TNUMBER: {
        if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        if (lua_isinteger(L, a)) return lua_rawequal(L, a, b);
        return x == y && signbit(x) == signbit(y); /* -0.0 is not 0.0 here */
    }
    case LUA_TTABLE: {
        int ma = lua_getmetatable(L, a), mb = lua_getmetatable(L, b);
        int ok = ma == mb && (!ma || lua_rawequal(L, -1, -2));
        lua_pop(L, ma + mb);
        if (!ok) return 0;
        size_t na = 0, nb = 0;
        lua_pushnil(L);
        while (lua_next(L, b)) {
            lua_pop(L, 1);
            nb++;
        }
        lua_pushnil(L);
        while (ok && lua_next(L, a)) {
            na++;
            lua_pushvalue(L, -2);
            lua_rawget(L, b);
            ok = same(L, -2, -1);
            lua_pop(L, 2);
        }
        if (!ok) lua_pop(L, 1); /* the key lua_next left */
        return ok && na == nb;
    }
    default: return lua_rawequal(L, a, b);
    }
}

/* Pushes what json.decode(text) returns, as one value or as the message;
 * returns 1 for a value. */
static int decode(lua_State *L, const char *text, size_t len)
{
    lua_getfield(L, 1, "decode");
    lua_pushlstring(L, text, len);
    lua_call(L, 1, 2);
    int ok = !lua_isnil(L, -2);
    lua_remove(L, ok ? -1 : -2);
    return ok;
}

/* Pushes jansson's answer for text: the value (ls_json_parse then
 * lls_push_json), or the message json.decode gives for it. */
static int reference(lua_State *L, const char *text, size_t len)
{
    json_t *v = NULL;
    ls_err err;
    int ok = ls_json_parse(text, len, &v, &err) == LS_OK && lls_push_json(L, v, &err) == 0;
    if (!ok) lua_pushfstring(L, "json.decode: %s", ls_err_text(&err));
    json_decref(v);
    return ok;
}

static void check_text(lua_State *L, const char *text, size_t len, int *accepted)
{
    int ok = decode(L, text, len);
    if (ok != reference(L, text, len) || !same(L, -2, -1)) {
        fprintf(stderr, "differs on %.*s\n  decode: %s %s\n  jansson: %s %s\n", (int)len, text,
                luaL_typename(L, -2), lua_isstring(L, -2) ? lua_tostring(L, -2) : "",
                luaL_typename(L, -1), lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        fail();
    }
    if (accepted && ok) ++*accepted;
    lua_pop(L, 2);
}

/* ---- tests ---- */

static void test_decode_reads_as_jansson(void **state)
{
    (void)state;
    lua_State *L = open_json();
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(0);
        ls_buf_clear(&text);
        th_ok(ls_json_dump(v, &text, &err), &err);
        json_decref(v);
        int accepted = 0;
        check_text(L, (const char *)text.ptr, text.len, &accepted);
        assert_int_equal(accepted, 1);
    }
    ls_buf_free(&text);
    lua_close(L);
}

static void test_decode_refuses_as_jansson(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "",
        " ",
        "{",
        "[",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "01",
        "1.",
        ".5",
        "-",
        "-a",
        "1e",
        "1e+",
        "+1",
        "1 2",
        "[1] x",
        "tru",
        "nul",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud83d\\ude00\"",
        "\"a\x01\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "{\"a\":1,\"a\":2}",
        "{\"a\\u0000b\":1}",
        "1e999",
        "-1e999",
        "1e-999",
        "123456789012345678901234567890",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "9007199254740993",
        "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]",
        "\"\\/\\b\\f\\n\\r\\t\"",
        "\xef\xbb\xbf{}",
        "[1\0]",
        "{\"a\":\0}",
        "  [ 1 , 2 ]  ",
        "-0",
        "-0.0",
        "0e0",
        "1E2",
    };
    lua_State *L = open_json();
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        check_text(L, fixed[i], strlen(fixed[i]), NULL);
    }
    check_text(L, "[1\0]", 4, NULL);
    check_text(L, "{\"a\":\0}", 7, NULL);

    /* Random damage to valid texts: a byte removed, replaced or inserted,
     * or the text cut short. */
    static const char damage[] = "{}[]\",:\\/-+.eE0129 \tnultrfasx\x01\x80\xc3\xed";
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    int accepted = 0;
    for (int i = 0; i < 40000; i++) {
        json_t *v = random_value(0);
        ls_buf_clear(&text);
        th_ok(ls_json_dump(v, &text, &err), &err);
        json_decref(v);
        char bad[4096];
        size_t n = text.len < sizeof bad - 1 ? text.len : sizeof bad - 2;
        memcpy(bad, text.ptr, n);
        size_t at = n ? rnd() % n : 0;
        char c = damage[rnd() % (sizeof damage - 1)];
        switch (rnd() % 4) {
        case 0:
            if (n) memmove(bad + at, bad + at + 1, n - at - 1), n--;
            break;
        case 1: bad[at] = c; break;
        case 2:
            memmove(bad + at + 1, bad + at, n - at);
            bad[at] = c;
            n++;
            break;
        default: n = at; break;
        }
        check_text(L, bad, n, &accepted);
    }
    assert_true(accepted > 1000 && accepted < 39000); /* both kinds were met */
    ls_buf_free(&text);
    lua_close(L);
}

static void test_encode_writes_as_jansson(void **state)
{
    (void)state;
    lua_State *L = open_json();
    ls_buf want = LS_BUF_INIT;
    ls_err err;
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(0), *w = as_encoded(json_deep_copy(v));
        ls_buf_clear(&want);
        th_ok(ls_json_dump(w, &want, &err), &err);
        json_decref(w);
        lua_getfield(L, 1, "encode");
        assert_int_equal(lls_push_json(L, v, &err), 0);
        json_decref(v);
        lua_call(L, 1, 2);
        size_t n = 0;
        const char *got = lua_tolstring(L, -2, &n);
        if (got == NULL || n != want.len || memcmp(got, want.ptr, n) != 0) {
            fprintf(stderr, "encode: %s\n   want: %s\n", got ? got : lua_tostring(L, -1),
                    (const char *)want.ptr);
            fail();
        }
        lua_pop(L, 2);
    }
    ls_buf_free(&want);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_reads_as_jansson),
        cmocka_unit_test(test_decode_refuses_as_jansson),
        cmocka_unit_test(test_encode_writes_as_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

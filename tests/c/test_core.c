/* SPDX-License-Identifier: MIT
 * Tests of native/core: errors, buffers, allocator, clocks, ids, JSON. */
#include "helpers.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ls_json.h"

/* ---- errors ---- */

static void test_err_names_and_texts(void **state)
{
    (void)state;
    assert_string_equal(ls_rc_name(LS_OK), "OK");
    assert_string_equal(ls_rc_name(LS_ENOTFOUND), "ENOTFOUND");
    assert_string_equal(ls_rc_name(LS_EAUTH), "EAUTH");
    assert_string_equal(ls_rc_name(LS_EEXIST), "EEXIST");
    assert_string_equal(ls_rc_name(LS_ENONDET), "ENONDET");
    assert_string_equal(ls_rc_name((ls_rc)999), "EUNKNOWN");
    assert_string_equal(ls_strerror(LS_ENOMEM), "out of memory");
    assert_string_equal(ls_strerror((ls_rc)-1), "unknown error");
}

static void test_err_set_and_prefix(void **state)
{
    (void)state;
    ls_err err = {0};
    assert_int_equal(ls_err_set(&err, LS_EINVAL, "field '%s' bad", "x"), LS_EINVAL);
    assert_int_equal(err.code, LS_EINVAL);
    assert_string_equal(err.msg, "field 'x' bad");
    assert_int_equal(ls_err_prefix(&err, "config %s", "a.json"), LS_EINVAL);
    assert_string_equal(err.msg, "config a.json: field 'x' bad");
    assert_string_equal(ls_err_text(&err), "config a.json: field 'x' bad");

    /* NULL err is allowed everywhere. */
    assert_int_equal(ls_err_set(NULL, LS_EIO, "ignored"), LS_EIO);
    assert_int_equal(ls_err_prefix(NULL, "ignored"), LS_OK);

    /* An empty message falls back to the fixed text. */
    ls_err e2 = {LS_EBUSY, ""};
    assert_string_equal(ls_err_text(&e2), "resource busy");
    ls_err_prefix(&e2, "store");
    assert_string_equal(e2.msg, "store: resource busy");
}

static void test_err_truncates_long_messages(void **state)
{
    (void)state;
    ls_err err;
    char big[LS_ERR_MSGMAX + 400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ls_err_set(&err, LS_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), LS_ERR_MSGMAX - 1);
    ls_err_prefix(&err, "%s", big);
    assert_int_equal(strlen(err.msg), LS_ERR_MSGMAX - 1);
    assert_int_equal(err.code, LS_EINVAL);
}

/* ---- buffers and the allocator ---- */

static void test_buf_append_printf_steal(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_append(&b, "abc", 3, &err), &err);
    th_ok(ls_buf_putc(&b, '-', &err), &err);
    th_ok(ls_buf_printf(&b, &err, "%d/%s", 42, "x"), &err);
    assert_int_equal(b.len, 8);
    assert_string_equal((char *)b.ptr, "abc-42/x"); /* NUL-terminated */
    th_ok(ls_buf_append(&b, NULL, 0, &err), &err);
    assert_int_equal(b.len, 8);

    th_ok(ls_buf_set(&b, "zz", 2, &err), &err);
    assert_string_equal((char *)b.ptr, "zz");
    ls_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal((char *)b.ptr, "");

    /* Growth past the first allocation keeps the contents. */
    for (int i = 0; i < 1000; i++)
        th_ok(ls_buf_putc(&b, (unsigned char)('a' + i % 26), &err), &err);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap > 1000);
    assert_int_equal(b.ptr[999], 'a' + 999 % 26);

    size_t len;
    unsigned char *p = ls_buf_steal(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 1000);
    assert_null(b.ptr);
    assert_int_equal(b.cap, 0);
    ls_free(p);
    ls_buf_free(&b);
    ls_buf_free(NULL);
}

static void test_buf_reports_enomem(void **state)
{
    (void)state;
    ls_buf b = LS_BUF_INIT;
    ls_err err;
    th_fail_install();
    th_fail_after(0);
    assert_int_equal(ls_buf_append(&b, "x", 1, &err), LS_ENOMEM);
    assert_int_equal(err.code, LS_ENOMEM);
    assert_null(b.ptr); /* untouched */
    th_fail_never();
    th_ok(ls_buf_append(&b, "x", 1, &err), &err);
    th_fail_after(0);
    char big[200] = {0};
    assert_int_equal(ls_buf_append(&b, big, sizeof big, &err), LS_ENOMEM);
    assert_int_equal(b.len, 1); /* old contents kept */
    assert_string_equal((char *)b.ptr, "x");
    th_fail_uninstall();
    /* Overflowing sizes are refused before allocating. */
    assert_int_equal(ls_buf_reserve(&b, SIZE_MAX, &err), LS_ENOMEM);
    assert_non_null(strstr(err.msg, "overflow"));
    ls_buf_free(&b);
}

static void test_alloc_calloc_overflow_and_strdup(void **state)
{
    (void)state;
    assert_null(ls_calloc(SIZE_MAX / 2, 4));
    int *z = ls_calloc(4, sizeof *z);
    assert_non_null(z);
    assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
    ls_free(z);
    char *s = ls_strdup("lodestone");
    assert_string_equal(s, "lodestone");
    ls_free(s);
    s = ls_strndup("lodestone", 4);
    assert_string_equal(s, "lode");
    ls_free(s);
    ls_free(NULL);

    th_fail_install();
    th_fail_after(0);
    assert_null(ls_strdup("x"));
    th_fail_after(0);
    assert_null(ls_malloc(10));
    th_fail_uninstall();
}

/* ---- clocks ---- */

static void test_clock_system_moves_forward(void **state)
{
    (void)state;
    int64_t w = ls_clock_wall_ms(NULL);
    assert_true(w > 1700000000000LL); /* after 2023 */
    assert_int_equal(ls_clock_wall_ms(ls_clock_system()) / 100000, w / 100000);
    int64_t m1 = ls_clock_mono_ns(NULL), m2 = ls_clock_mono_ns(ls_clock_system());
    assert_true(m2 >= m1);
}

static void test_clock_manual(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 1000);
    assert_int_equal(ls_clock_wall_ms(&mc.clock), 1000);
    assert_int_equal(ls_clock_mono_ns(&mc.clock), 0);
    ls_manual_clock_advance(&mc, 250);
    assert_int_equal(ls_clock_wall_ms(&mc.clock), 1250);
    assert_int_equal(ls_clock_mono_ns(&mc.clock), 250000000);
}

/* ---- ids ---- */

static void test_id_format_parse_round_trip(void **state)
{
    (void)state;
    ls_err err;
    for (int i = 0; i < 1000; i++) {
        ls_id id, back;
        th_ok(ls_id_new(&id, NULL, &err), &err);
        char text[LS_ID_TEXTLEN + 1];
        ls_id_format(&id, text);
        assert_int_equal(strlen(text), LS_ID_TEXTLEN);
        th_ok(ls_id_parse(&back, text, strlen(text), &err), &err);
        assert_memory_equal(id.b, back.b, LS_ID_BYTES);
    }
}

static void test_id_known_values(void **state)
{
    (void)state;
    ls_id id;
    memset(id.b, 0, sizeof id.b);
    char text[LS_ID_TEXTLEN + 1];
    ls_id_format(&id, text);
    assert_string_equal(text, "00000000000000000000000000");
    memset(id.b, 0xff, sizeof id.b);
    ls_id_format(&id, text);
    assert_string_equal(text, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    memset(id.b, 0, sizeof id.b);
    id.b[LS_ID_BYTES - 1] = 33; /* 1*32 + 1 */
    ls_id_format(&id, text);
    assert_string_equal(text, "00000000000000000000000011");
    /* Time 1 ms: bit 80 set, which is digit 10 from the right holding 1. */
    memset(id.b, 0, sizeof id.b);
    id.b[5] = 1;
    assert_int_equal(ls_id_time_ms(&id), 1);
    ls_id_format(&id, text);
    assert_string_equal(text, "00000000010000000000000000");
}

static void test_id_parse_errors_and_aliases(void **state)
{
    (void)state;
    ls_id a, b;
    ls_err err;
    th_ok(ls_id_parse(&a, "01ARZ3NDEKTSV4RRFFQ69G5FAV", 26, &err), &err);
    /* Lower case, and I/L/O read as 1/1/0. */
    th_ok(ls_id_parse(&b, "01arz3ndektsv4rrffq69g5fav", 26, &err), &err);
    assert_memory_equal(a.b, b.b, LS_ID_BYTES);
    ls_id c, d;
    th_ok(ls_id_parse(&c, "0I000000000000000000000000", 26, &err), &err);
    th_ok(ls_id_parse(&d, "01000000000000000000000000", 26, &err), &err);
    assert_memory_equal(c.b, d.b, LS_ID_BYTES);
    th_ok(ls_id_parse(&c, "0L00000000000000000000000O", 26, &err), &err);
    assert_memory_equal(c.b, d.b, LS_ID_BYTES);

    assert_int_equal(ls_id_parse(&a, "01ARZ", 5, &err), LS_EINVAL);
    assert_string_equal(err.msg, "id must be 26 characters, got 5");
    assert_int_equal(ls_id_parse(&a, "01ARZ3NDEKTSV4RRFFQ69G5FAU", 26, &err), LS_EINVAL);
    assert_string_equal(err.msg, "id has invalid character at position 26");
    assert_int_equal(ls_id_parse(&a, "01ARZ3-DEKTSV4RRFFQ69G5FAV", 26, &err), LS_EINVAL);
    assert_string_equal(err.msg, "id has invalid character at position 7");
    assert_int_equal(ls_id_parse(&a, "80000000000000000000000000", 26, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "out of range"));
}

static void test_id_sorts_by_time(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, 1700000000000LL);
    ls_err err;
    ls_id prev;
    char prev_text[LS_ID_TEXTLEN + 1];
    th_ok(ls_id_new(&prev, &mc.clock, &err), &err);
    ls_id_format(&prev, prev_text);
    assert_int_equal(ls_id_time_ms(&prev), 1700000000000LL);
    for (int i = 0; i < 2000; i++) {
        /* Same millisecond most of the time, then a step. */
        if (i % 100 == 99) ls_manual_clock_advance(&mc, 1 + i % 7);
        ls_id id;
        char text[LS_ID_TEXTLEN + 1];
        th_ok(ls_id_new(&id, &mc.clock, &err), &err);
        ls_id_format(&id, text);
        assert_true(ls_id_cmp(&prev, &id) < 0);
        assert_true(strcmp(prev_text, text) < 0);
        assert_int_equal(ls_id_time_ms(&id), ls_clock_wall_ms(&mc.clock));
        prev = id;
        memcpy(prev_text, text, sizeof text);
    }
}

static void test_id_rejects_out_of_range_clock(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_id id;
    ls_err err;
    ls_manual_clock_init(&mc, -1);
    assert_int_equal(ls_id_new(&id, &mc.clock, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "48-bit"));
    ls_manual_clock_init(&mc, (int64_t)1 << 48);
    assert_int_equal(ls_id_new(&id, &mc.clock, &err), LS_EINVAL);
}

/* ---- durations ---- */

static void test_duration_parses_units(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"30", 30000},    {"1.5", 1500},   {"250ms", 250},   {"10s", 10000},
        {"5m", 300000},   {"2h", 7200000}, {"1d", 86400000}, {"1h30m", 5400000},
        {"1.5s", 1500},   {"0.0005s", 1},  {"0", 0},         {"1d2h3m4s5ms", 93784005},
        {"0.25m", 15000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        ls_err err;
        th_ok(ls_duration_parse(ok[i].text, strlen(ok[i].text), &ms, &err), &err);
        if (ms != ok[i].ms) fail_msg("%s: got %lld ms", ok[i].text, (long long)ms);
    }
}

static void test_duration_rejects_bad_text(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "empty"},
        {"-5s", "negative"},
        {"5x", "unknown unit"},
        {"5 s", "expected a unit"},
        {"s", "expected a number"},
        {"1m1h", "largest to smallest"},
        {"1s1s", "largest to smallest"},
        {"1h30", "must stand alone"},
        {".s", "expected a number"},
        {"36600d", "100 years"},
        {"1.2.3s", "expected a unit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -1;
        ls_err err = {0};
        ls_rc rc = ls_duration_parse(bad[i].text, strlen(bad[i].text), &ms, &err);
        if (rc != LS_EINVAL) fail_msg("%s: accepted as %lld ms", bad[i].text, (long long)ms);
        if (strstr(err.msg, bad[i].why) == NULL)
            fail_msg("%s: message \"%s\"", bad[i].text, err.msg);
        assert_int_equal(ms, -1); /* untouched */
    }
}

/* ---- JSON helpers ---- */

static void lossy_is(const char *in, size_t n, const char *want)
{
    json_t *j = ls_json_string_lossy(in, n);
    assert_non_null(j);
    assert_int_equal(json_string_length(j), strlen(want));
    assert_memory_equal(json_string_value(j), want, strlen(want));
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_json_dump(j, &out, &err), &err); /* encodable, whatever came in */
    ls_buf_free(&out);
    json_decref(j);
}

static void test_json_string_lossy_replaces_what_is_not_utf8(void **state)
{
    (void)state;
    lossy_is("caf\xc3\xa9 \xf0\x9f\x8d\xb5", 10, "caf\xc3\xa9 \xf0\x9f\x8d\xb5"); /* UTF-8 as is */
    json_t *nul = ls_json_string_lossy("a\0b", 3);
    assert_int_equal(json_string_length(nul), 3); /* NUL bytes kept */
    json_decref(nul);
    lossy_is("a\xff"
             "b",
             3,
             "a\xef\xbf\xbd"
             "b");
    lossy_is("\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* cut short */
    lossy_is("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
    lossy_is("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    lossy_is("\xf4\x90\x80\x80", 4,
             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* above U+10FFFF */
    lossy_is("", 0, "");
}

static void test_json_parse_reports_position(void **state)
{
    (void)state;
    json_t *v = NULL;
    ls_err err;
    const char *bad = "{\"a\": 1,\n  \"b\": tru}";
    assert_int_equal(ls_json_parse(bad, strlen(bad), &v, &err), LS_EINVAL);
    assert_null(v);
    assert_non_null(strstr(err.msg, "line 2 column"));
    assert_non_null(strstr(err.msg, "(byte "));

    const char *dup = "{\"a\": 1, \"a\": 2}";
    assert_int_equal(ls_json_parse(dup, strlen(dup), &v, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "duplicate"));

    /* A raw NUL byte is never JSON (jansson alone would skip one after 1). */
    assert_int_equal(ls_json_parse("[1\0]", 4, &v, &err), LS_EINVAL);
    assert_string_equal(err.msg, "line 1 column 3 (byte 2): NUL byte in JSON text");
    assert_int_equal(ls_json_parse("{\n\"a\":\0}", 8, &v, &err), LS_EINVAL);
    assert_string_equal(err.msg, "line 2 column 5 (byte 6): NUL byte in JSON text");

    assert_int_equal(ls_json_parse("", 0, &v, &err), LS_EINVAL);
    assert_int_equal(ls_json_parse("[1] x", 5, &v, &err), LS_EINVAL);
}

/* ---- direct writing: byte for byte what jansson dumps ---- */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Dumps v (consumed) with ls_json_dump: the reference text. */
static void reference(json_t *v, ls_buf *out)
{
    ls_err err;
    assert_non_null(v);
    ls_buf_clear(out);
    th_ok(ls_json_dump(v, out, &err), &err);
    json_decref(v);
}

static void test_json_put_real_matches_jansson(void **state)
{
    (void)state;
    static const double fixed[] = {0.0,
                                   -0.0,
                                   0.1,
                                   -0.1,
                                   1.5,
                                   1.0,
                                   100.0,
                                   1e16,
                                   1e17,
                                   1e21,
                                   1e300,
                                   -1e300,
                                   1e-300,
                                   5e-324,
                                   2.2250738585072014e-308,
                                   1.7976931348623157e308,
                                   123456.789,
                                   3.141592653589793,
                                   9007199254740993.0,
                                   1e-5,
                                   0.0001,
                                   12345678901234567890.0};
    ls_buf want = LS_BUF_INIT, got = LS_BUF_INIT;
    ls_err err;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < 20000 + sizeof fixed / sizeof fixed[0]; i++) {
        double v;
        if (i < sizeof fixed / sizeof fixed[0]) {
            v = fixed[i];
        } else {
            uint64_t bits = xorshift(&seed);
            if (i % 3 == 0) bits = (bits & 0x800FFFFFFFFFFFFFULL) | ((bits % 120 + 960) << 52);
            memcpy(&v, &bits, sizeof v);
            if (isnan(v) || isinf(v)) continue;
        }
        reference(json_real(v), &want);
        ls_buf_clear(&got);
        th_ok(ls_json_put_real(&got, v, &err), &err);
        assert_string_equal((char *)got.ptr, (char *)want.ptr);
    }
    ls_buf_free(&want);
    ls_buf_free(&got);
}

static void test_json_put_int_matches_jansson(void **state)
{
    (void)state;
    ls_buf want = LS_BUF_INIT, got = LS_BUF_INIT;
    ls_err err;
    uint64_t seed = 42;
    for (int i = 0; i < 5000; i++) {
        long long v = i == 0 ? LLONG_MIN : i == 1 ? LLONG_MAX : i == 2 ? 0 : i == 3 ? -1 : 0;
        if (i > 3) v = (long long)(xorshift(&seed) >> (i % 64));
        if (i > 3 && i % 2) v = -v;
        reference(json_integer(v), &want);
        ls_buf_clear(&got);
        th_ok(ls_json_put_int(&got, v, &err), &err);
        assert_string_equal((char *)got.ptr, (char *)want.ptr);
    }
    ls_buf_free(&want);
    ls_buf_free(&got);
}

/* Random strings, mostly text: ASCII with every control character, quotes
 * and backslashes, 2-4 byte sequences, and now and then a byte that breaks
 * them (overlong forms, surrogates, stray continuations, > U+10FFFF). */
static size_t random_text(uint64_t *seed, char *s, size_t cap)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\x7f",
                                         "\x01",
                                         "\x1f",
                                         "\n",
                                         "\t",
                                         "\b",
                                         "\f",
                                         "\r",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xe2\x80\xa8",
                                         "\xef\xbf\xbf",
                                         "\xf4\x8f\xbf\xbf",
                                         "\xc2\x80",
                                         "\xe0\xa0\x80",
                                         "\xf0\x90\x80\x80"};
    static const char *const broken[] = {
        "\xc0\xaf",         "\xc1\xbf",         "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80",         "\xbf",         "\xc3",
        "\xe2\x82",         "\xf0\x9f\x98",     "\xff",         "\xfe"};
    size_t n = 0, count = xorshift(seed) % 12;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = xorshift(seed);
        const char *p;
        if (r % 40 == 0)
            p = broken[(r >> 8) % (sizeof broken / sizeof broken[0])];
        else if (r % 7 == 0)
            p = NULL; /* a NUL byte */
        else
            p = pieces[(r >> 8) % (sizeof pieces / sizeof pieces[0])];
        size_t len = p ? strlen(p) : 1;
        if (n + len > cap) break;
        if (p)
            memcpy(s + n, p, len);
        else
            s[n] = '\0';
        n += len;
    }
    return n;
}

static void test_json_put_string_matches_jansson(void **state)
{
    (void)state;
    ls_buf want = LS_BUF_INIT, got = LS_BUF_INIT;
    ls_err err;
    uint64_t seed = 7;
    int valid = 0, invalid = 0;
    for (int i = 0; i < 30000; i++) {
        char s[64];
        size_t n = random_text(&seed, s, sizeof s);
        json_t *v = json_stringn(s, n);
        assert_int_equal(ls_json_utf8_valid(s, n), v != NULL);
        if (v == NULL) {
            invalid++;
            continue;
        }
        valid++;
        reference(v, &want);
        ls_buf_clear(&got);
        th_ok(ls_json_put_string(&got, s, n, &err), &err);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.ptr, want.ptr, want.len);
    }
    assert_true(valid > 10000 && invalid > 1000); /* both kinds were tried */
    ls_buf_free(&want);
    ls_buf_free(&got);
}

/* ls_utf8_cut: text cut where a character starts, never inside one; and
 * never more than 3 bytes back, over bytes that are no character. */
static void test_utf8_cut_at_a_character(void **state)
{
    (void)state;
    assert_int_equal(ls_utf8_cut("abcdef", 3), 3);
    assert_int_equal(ls_utf8_cut("a\xC3\xA9z", 2), 1);         /* inside the 2-byte "é" */
    assert_int_equal(ls_utf8_cut("a\xC3\xA9z", 3), 3);         /* just after it */
    assert_int_equal(ls_utf8_cut("a\xF0\x9F\x98\x80z", 4), 1); /* inside a 4-byte one */
    assert_int_equal(ls_utf8_cut("a\xF0\x9F\x98\x80z", 5), 5);
    assert_int_equal(ls_utf8_cut("\x80\x80\x80\x80\x80\x80", 5), 2);
    assert_int_equal(ls_utf8_cut("\x80\x80", 1), 0);
}

/* Decodes text (after its opening quote) in place; returns the fault (or
 * NULL) and sets *at to where reading stopped. */
static const char *decode_in_place(const char *text, char *buf, size_t *len, size_t *at)
{
    size_t n = strlen(text);
    memset(buf, 0, 64);
    memcpy(buf, text, n);
    const unsigned char *p = (const unsigned char *)buf;
    const char *why = ls_json_string_decode(&p, p + n, (unsigned char *)buf, len);
    *at = (size_t)(p - (const unsigned char *)buf);
    return why;
}

static void test_json_string_decode(void **state)
{
    (void)state;
    char buf[64];
    size_t len, at;
    assert_null(
        decode_in_place("a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\u0000z\" tail", buf, &len, &at));
    assert_int_equal(len, 15);
    assert_memory_equal(buf, "a\"b\\c/\b\f\n\r\t\xc3\xa9\0z", 15);
    assert_int_equal(at, 33); /* past the closing quote */
    assert_null(decode_in_place("\\ud83d\\ude00\xe2\x82\xac\"", buf, &len, &at));
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "\xf0\x9f\x98\x80\xe2\x82\xac", 7);
    static const struct {
        const char *text, *why;
        size_t at;
    } bad[] = {
        {"abc", "unterminated string", 3},
        {"ab\\", "unterminated string", 2},
        {"a\x01\"", "control character in a string", 1},
        {"a\xc0\xaf\"", "invalid UTF-8 in a string", 1},
        {"a\xed\xa0\x80\"", "invalid UTF-8 in a string", 1},
        {"a\\x\"", "invalid escape in a string", 1},
        {"a\\u12\"", "invalid \\u escape", 3},
        {"\\udc00\"", "lone low surrogate in \\u escape", 6},
        {"\\ud800\\u0041\"", "lone high surrogate in \\u escape", 6},
        {"\\ud800\"", "lone high surrogate in \\u escape", 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = decode_in_place(bad[i].text, buf, &len, &at);
        assert_non_null(why);
        assert_string_equal(why, bad[i].why);
        assert_int_equal(at, bad[i].at);
    }
}

static void peek_is(const char *text, const char *key, ls_rc want, const char *value)
{
    const char *s = NULL;
    size_t n = 0;
    assert_int_equal(ls_json_peek_string(text, strlen(text), key, &s, &n), want);
    if (want == LS_OK) {
        assert_int_equal(n, strlen(value));
        assert_memory_equal(s, value, n);
    }
}

static json_t *peek_random(uint64_t *seed, int depth)
{
    static const char *const keys[] = {"id", "i", "idx", "x", "a\"id", "\\id"};
    uint64_t r = xorshift(seed);
    switch (r % (depth < 3 ? 7 : 4)) {
    case 0: return json_integer((json_int_t)(r >> 40));
    case 1: return json_real(-1.5e-7);
    case 2: return r & 64 ? json_true() : json_null();
    case 3: return json_string(r & 128 ? "a\"},{\"id\":\"x" : "plain");
    case 4:
    case 5: {
        json_t *o = json_object();
        for (uint64_t i = 0, n = xorshift(seed) % 4; i < n; i++)
            json_object_set_new(o, keys[xorshift(seed) % 6], peek_random(seed, depth + 1));
        return o;
    }
    default: {
        json_t *a = json_array();
        for (uint64_t i = 0, n = xorshift(seed) % 4; i < n; i++)
            json_array_append_new(a, peek_random(seed, depth + 1));
        return a;
    }
    }
}

static void test_json_peek_string(void **state)
{
    (void)state;
    peek_is("{\"id\":\"r-1\"}", "id", LS_OK, "r-1");
    peek_is(" { \"a\" : {\"id\":\"inner\"} , \"id\" : \"outer\" } ", "id", LS_OK, "outer");
    peek_is("{\"a\":\"x\\\"}\",\"b\":[1,{\"id\":2},\"]\"],\"id\":\"z\"}", "id", LS_OK, "z");
    peek_is("{\"a\":[],\"b\":{},\"c\":-1.5e3,\"d\":null}", "id", LS_ENOTFOUND, NULL);
    peek_is("{}", "id", LS_ENOTFOUND, NULL);
    peek_is("{\"id\":7}", "id", LS_ENOTFOUND, NULL);
    peek_is("{\"id\":\"a\\nb\"}", "id", LS_ENOTFOUND, NULL); /* escaped: parse it */
    peek_is("{\"i\\u0064\":\"x\"}", "id", LS_ENOTFOUND, NULL);
    peek_is("[\"id\",\"x\"]", "id", LS_EINVAL, NULL);
    peek_is("{\"a\":1", "id", LS_EINVAL, NULL);
    peek_is("{\"a\":[1,2}", "id", LS_EINVAL, NULL);
    peek_is("{\"id\":\"x", "id", LS_EINVAL, NULL);
    peek_is("", "id", LS_EINVAL, NULL);

    /* Against jansson on random objects: the same answer whenever the
     * value is a plain string or absent. */
    uint64_t seed = 99;
    ls_buf text = LS_BUF_INIT;
    ls_err err;
    int found = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *o = json_object();
        for (uint64_t k = 0, n = xorshift(&seed) % 4; k < n; k++)
            json_object_set_new(o, k == 1 ? "id" : k == 2 ? "a" : "b", peek_random(&seed, 1));
        if (xorshift(&seed) % 2) json_object_set_new(o, "id", json_string("run-1"));
        ls_buf_clear(&text);
        th_ok(ls_json_dump(o, &text, &err), &err);
        const char *s;
        size_t n;
        ls_rc rc = ls_json_peek_string((const char *)text.ptr, text.len, "id", &s, &n);
        json_t *v = json_object_get(o, "id");
        if (json_is_string(v) && strchr(json_string_value(v), '"') == NULL) {
            assert_int_equal(rc, LS_OK);
            assert_int_equal(n, json_string_length(v));
            assert_memory_equal(s, json_string_value(v), n);
            found++;
        } else {
            assert_int_equal(rc, LS_ENOTFOUND);
        }
        json_decref(o);
    }
    assert_true(found > 5000);
    ls_buf_free(&text);
}

static void test_json_parse_and_dump_round_trip(void **state)
{
    (void)state;
    const char *text = "{\"z\":[1,2.5,\"s\\u0000t\",null,true,false,{}],\"a\":9007199254740993}";
    json_t *v;
    ls_err err;
    th_ok(ls_json_parse(text, strlen(text), &v, &err), &err);
    json_t *z = json_object_get(v, "z");
    assert_int_equal(json_string_length(json_array_get(z, 2)), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 9007199254740993LL);

    ls_buf out = LS_BUF_INIT;
    th_ok(ls_buf_set(&out, "prefix:", 7, &err), &err);
    th_ok(ls_json_dump(v, &out, &err), &err);
    assert_string_equal(
        (char *)out.ptr,
        "prefix:{\"a\":9007199254740993,\"z\":[1,2.5,\"s\\u0000t\",null,true,false,{}]}");
    json_decref(v);

    json_t *scalar;
    th_ok(ls_json_parse("\"x\"", 3, &scalar, &err), &err);
    ls_buf_clear(&out);
    th_ok(ls_json_dump(scalar, &out, &err), &err);
    assert_string_equal((char *)out.ptr, "\"x\"");
    json_decref(scalar);
    ls_buf_free(&out);
}

static void test_json_dump_enomem_keeps_buffer(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:s}", "key",
                          "a value long enough that the buffer must grow past its first 64 bytes");
    ls_buf out = LS_BUF_INIT;
    ls_err err;
    th_ok(ls_buf_set(&out, "x", 1, &err), &err);
    th_fail_install();
    th_fail_after(0);
    assert_int_equal(ls_json_dump(v, &out, &err), LS_ENOMEM);
    th_fail_uninstall();
    assert_int_equal(out.len, 1);
    assert_string_equal((char *)out.ptr, "x");
    json_decref(v);
    ls_buf_free(&out);
}

/* Every append of a dump may fail, a key's too (jansson does not stop
 * when the callback fails on a key of a sorted object). */
static ls_rc dump_object(void *ud)
{
    ls_buf out = LS_BUF_INIT;
    ls_rc rc = ls_json_dump(ud, &out, NULL);
    if (rc == LS_OK) {
        json_t *back = json_loadb((const char *)out.ptr, out.len, 0, NULL); /* libc malloc */
        if (!json_equal(back, ud)) rc = LS_ECORRUPT;
        json_decref(back);
    }
    ls_buf_free(&out);
    return rc;
}

static void test_json_dump_enomem_at_every_append(void **state)
{
    (void)state;
    char key[71];
    memset(key, 'k', 70);
    key[70] = '\0';
    json_t *v = json_pack("{s:i,s:s}", key, 1, "z",
                          "a value long enough to grow the buffer again, "
                          "past 128 bytes, and then some more to be sure");
    assert_true(th_each_alloc_failure(dump_object, v) >= 2);
    json_decref(v);
}

static void test_json_path_and_getters(void **state)
{
    (void)state;
    const char *text = "{\"realm_access\":{\"roles\":[\"admin\"]},\"sub\":\"alice\",\"n\":3,"
                       "\"f\":1.5,\"ok\":true,\"o\":{},\"a\":[]}";
    json_t *v;
    ls_err err;
    th_ok(ls_json_parse(text, strlen(text), &v, &err), &err);
    json_t *roles = ls_json_path(v, "realm_access.roles");
    assert_true(json_is_array(roles));
    assert_string_equal(json_string_value(json_array_get(roles, 0)), "admin");
    assert_null(ls_json_path(v, "realm_access.missing"));
    assert_null(ls_json_path(v, "sub.deeper"));
    assert_ptr_equal(ls_json_path(v, "sub"), json_object_get(v, "sub"));

    const char *s;
    size_t len;
    int64_t n;
    double f;
    int b;
    json_t *o;
    th_ok(ls_json_get_str(v, "sub", &s, &len, &err), &err);
    assert_string_equal(s, "alice");
    assert_int_equal(len, 5);
    th_ok(ls_json_get_int(v, "n", &n, &err), &err);
    assert_int_equal(n, 3);
    th_ok(ls_json_get_num(v, "n", &f, &err), &err);
    assert_true(f == 3.0);
    th_ok(ls_json_get_num(v, "f", &f, &err), &err);
    assert_true(f == 1.5);
    th_ok(ls_json_get_bool(v, "ok", &b, &err), &err);
    assert_int_equal(b, 1);
    th_ok(ls_json_get_obj(v, "o", &o, &err), &err);
    th_ok(ls_json_get_arr(v, "a", &o, &err), &err);

    err.code = LS_OK;
    assert_int_equal(ls_json_get_str(v, "missing", &s, &len, &err), LS_ENOTFOUND);
    assert_int_equal(err.code, LS_OK); /* untouched */
    assert_int_equal(ls_json_get_str(v, "n", &s, &len, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'n': expected a string, got integer");
    assert_int_equal(ls_json_get_int(v, "f", &n, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'f': expected an integer, got number");
    assert_int_equal(ls_json_get_bool(v, "a", &b, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'a': expected a boolean, got array");
    assert_int_equal(ls_json_get_obj(v, "ok", &o, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'ok': expected an object, got boolean");
    assert_int_equal(ls_json_get_arr(v, "o", &o, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'o': expected an array, got object");
    assert_int_equal(ls_json_get_num(v, "sub", &f, &err), LS_EINVAL);
    assert_string_equal(err.msg, "field 'sub': expected a number, got string");
    /* Not an object at all: every field is absent. */
    assert_int_equal(ls_json_get_str(roles, "x", &s, &len, &err), LS_ENOTFOUND);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names_and_texts),
        cmocka_unit_test(test_err_set_and_prefix),
        cmocka_unit_test(test_err_truncates_long_messages),
        cmocka_unit_test(test_buf_append_printf_steal),
        cmocka_unit_test(test_buf_reports_enomem),
        cmocka_unit_test(test_alloc_calloc_overflow_and_strdup),
        cmocka_unit_test(test_clock_system_moves_forward),
        cmocka_unit_test(test_clock_manual),
        cmocka_unit_test(test_id_format_parse_round_trip),
        cmocka_unit_test(test_id_known_values),
        cmocka_unit_test(test_id_parse_errors_and_aliases),
        cmocka_unit_test(test_id_sorts_by_time),
        cmocka_unit_test(test_id_rejects_out_of_range_clock),
        cmocka_unit_test(test_duration_parses_units),
        cmocka_unit_test(test_duration_rejects_bad_text),
        cmocka_unit_test(test_json_parse_reports_position),
        cmocka_unit_test(test_json_string_lossy_replaces_what_is_not_utf8),
        cmocka_unit_test(test_json_parse_and_dump_round_trip),
        cmocka_unit_test(test_json_peek_string),
        cmocka_unit_test(test_json_string_decode),
        cmocka_unit_test(test_json_put_real_matches_jansson),
        cmocka_unit_test(test_json_put_int_matches_jansson),
        cmocka_unit_test(test_json_put_string_matches_jansson),
        cmocka_unit_test(test_utf8_cut_at_a_character),
        cmocka_unit_test(test_json_dump_enomem_keeps_buffer),
        cmocka_unit_test(test_json_dump_enomem_at_every_append),
        cmocka_unit_test(test_json_path_and_getters),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT
 * Tests of the audit log writer (native/policy/audit.c): line format and
 * escaping, buffering by interval and size on a manual clock, rotation by
 * rename or delete, reopen, write errors, concurrent writers, allocation
 * failures. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ls_json.h"
#include "policy/audit.h"

#define T0 INT64_C(1795685401123) /* 2026-11-26T09:30:01.123Z */

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = th_mkdtemp("audit");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_rmtree(dir);
    free(dir);
    return 0;
}

/* ---- helpers ---- */

/* Whole file as a malloc'd string ("" when absent). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) fail_msg("short read of %s", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

static size_t count_lines(const char *path)
{
    char *s = slurp(path);
    size_t n = 0;
    for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* Parses one line (without its '\n') as a JSON object. */
static json_t *parse_line(const char *line, size_t len)
{
    json_t *v = NULL;
    ls_err err = {0};
    if (ls_json_parse(line, len, &v, &err) != LS_OK)
        fail_msg("line is not JSON (%s): %.*s", err.msg, (int)len, line);
    assert_true(json_is_object(v));
    return v;
}

/* Formats r at T0 into a malloc'd string. */
static char *format(const ls_audit_record *r)
{
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_audit_format(r, T0, &b, &err), &err);
    return (char *)ls_buf_steal(&b, NULL);
}

static const char *str_of(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) fail_msg("no string field %s", key);
    return json_string_value(v);
}

static ls_audit_record sample(int i)
{
    static char id[32];
    snprintf(id, sizeof id, "req-%d", i);
    ls_audit_record r = {0};
    r.request_id = id;
    r.method = "GET";
    r.path = "/orders/7";
    r.client = "10.0.0.5";
    r.subject = "alice";
    r.policy = "orders-api";
    r.rule = "rules[4]";
    r.decision = LS_AUDIT_ALLOW;
    r.status = 200;
    r.reason = "allowed";
    r.decision_us = 0.4;
    return r;
}

static size_t sample_len(void)
{
    ls_audit_record r = sample(1);
    char *line = format(&r);
    size_t n = strlen(line);
    free(line);
    return n;
}

static ls_audit_t *open_log(const char *name, ls_manual_clock *mc, size_t buffer, char **path)
{
    *path = th_path(dir, name);
    unlink(*path);
    ls_audit_opts o = {.clock = mc ? &mc->clock : NULL, .buffer_size = buffer};
    ls_audit_t *a = NULL;
    ls_err err = {0};
    th_ok(ls_audit_open(&a, *path, &o, &err), &err);
    return a;
}

static void write_n(ls_audit_t *a, int from, int n)
{
    ls_err err = {0};
    for (int i = from; i < from + n; i++) {
        ls_audit_record r = sample(i);
        th_ok(ls_audit_write(a, &r, &err), &err);
    }
}

/* ---- format ---- */

static void test_audit_format_exact_line(void **state)
{
    (void)state;
    ls_audit_record r = {.time_ms = T0,
                         .request_id = "req-1",
                         .method = "GET",
                         .path = "/orders/7",
                         .client = "10.0.0.5",
                         .subject = "alice",
                         .policy = "orders-api",
                         .rule = "rules[4]",
                         .decision = LS_AUDIT_DENY,
                         .status = 403,
                         .reason = "missing_scope",
                         .decision_us = 12.5};
    char *line = format(&r);
    assert_string_equal(line, "{\"time\":\"2026-11-26T09:30:01.123Z\",\"request_id\":\"req-1\","
                              "\"method\":\"GET\",\"path\":\"/orders/7\",\"client\":\"10.0.0.5\","
                              "\"subject\":\"alice\",\"policy\":\"orders-api\","
                              "\"rule\":\"rules[4]\",\"decision\":\"deny\",\"status\":403,"
                              "\"reason\":\"missing_scope\",\"decision_us\":12.5}\n");
    json_t *v = parse_line(line, strlen(line) - 1);
    assert_string_equal(str_of(v, "time"), "2026-11-26T09:30:01.123Z");
    assert_string_equal(str_of(v, "decision"), "deny");
    assert_int_equal(json_integer_value(json_object_get(v, "status")), 403);
    assert_true(json_real_value(json_object_get(v, "decision_us")) == 12.5);
    assert_int_equal(json_object_size(v), 12);
    json_decref(v);
    free(line);

    /* The buffer is appended to, not replaced. */
    ls_buf b = LS_BUF_INIT;
    ls_err err = {0};
    th_ok(ls_buf_set(&b, "x", 1, &err), &err);
    th_ok(ls_audit_format(&r, 0, &b, &err), &err);
    assert_int_equal(b.ptr[0], 'x');
    assert_int_equal(b.ptr[1], '{');
    ls_buf_free(&b);
}

static void test_audit_format_omits_null_fields(void **state)
{
    (void)state;
    ls_audit_record r = {.decision = LS_AUDIT_ALLOW, .decision_us = -1};
    char *line = format(&r);
    assert_string_equal(line, "{\"time\":\"2026-11-26T09:30:01.123Z\",\"decision\":\"allow\"}\n");
    free(line);
    r.path = "/x";
    r.reason = "";
    r.decision_us = 0;
    line = format(&r);
    assert_string_equal(line, "{\"time\":\"2026-11-26T09:30:01.123Z\",\"path\":\"/x\","
                              "\"decision\":\"allow\",\"reason\":\"\",\"decision_us\":0}\n");
    free(line);
}

static void test_audit_format_numbers_and_time(void **state)
{
    (void)state;
    static const struct {
        double us;
        const char *text; /* NULL: left out */
    } us[] = {
        {12.5, "12.5"},           {0, "0"},          {0.001, "0.001"}, {3, "3"},
        {1.25, "1.25"},           {0.0004, "0"},     {0.0996, "0.1"},  {1234567.891, "1234567.891"},
        {1e13, "10000000000000"}, {-1, NULL},        {-0.0001, NULL},  {NAN, NULL},
        {INFINITY, NULL},         {-INFINITY, NULL},
    };
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        ls_audit_record r = {.time_ms = T0, .decision_us = us[i].us};
        char *line = format(&r);
        char want[64];
        if (us[i].text)
            snprintf(want, sizeof want, ",\"decision_us\":%s}\n", us[i].text);
        else
            snprintf(want, sizeof want, "\"deny\"}\n");
        size_t ll = strlen(line), wl = strlen(want);
        if (ll < wl || strcmp(line + ll - wl, want) != 0)
            fail_msg("decision_us %g: got %s", us[i].us, line);
        json_decref(parse_line(line, ll - 1));
        free(line);
    }
    static const struct {
        int64_t ms;
        const char *text;
    } t[] = {
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {T0 + 877, "2026-11-26T09:30:02.000Z"},
        {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ls_audit_record r = {.time_ms = t[i].ms, .status = 0};
        char *line = format(&r);
        json_t *v = parse_line(line, strlen(line) - 1);
        assert_string_equal(str_of(v, "time"), t[i].text);
        assert_null(json_object_get(v, "status"));
        json_decref(v);
        free(line);
    }
}

static void test_audit_escapes_hostile_values(void **state)
{
    (void)state;
    ls_audit_record r = {
        .time_ms = T0,
        .request_id = "\"},{\"decision\":\"allow",
        .method = "G\\E\"T",
        .path = "/a\nb\r\tc\b\f\x01\x1f\x7f",
        .client = "\xff\x80\xc0\xaf",
        .subject = "\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82",
        .policy = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        .rule = "a\xe2\x80\xa8z\xe2\x80\xa9",
        .reason = "\"\\\"",
        .decision_us = -1,
    };
    char *line = format(&r);
    size_t n = strlen(line);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    assert_null(memchr(line, '\r', n));
    assert_non_null(strstr(line, "\"method\":\"G\\\\E\\\"T\""));
    assert_non_null(strstr(line, "\"path\":\"/a\\nb\\r\\tc\\b\\f\\u0001\\u001f\\u007f\""));
    assert_non_null(strstr(line, "\"client\":\"\\ufffd\\ufffd\\ufffd\\ufffd\""));
    assert_non_null(strstr(line, "\"subject\":\"\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd|"
                                 "\\ufffd\\ufffd\""));
    assert_non_null(strstr(line, "\"policy\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""));
    assert_non_null(strstr(line, "\"rule\":\"a\\u2028z\\u2029\""));

    /* jansson checks UTF-8 strictly: the line parses and round-trips. */
    json_t *v = parse_line(line, n - 1);
    assert_int_equal(json_object_size(v), 10);
    assert_string_equal(str_of(v, "request_id"), r.request_id);
    assert_string_equal(str_of(v, "decision"), "deny");
    assert_string_equal(str_of(v, "method"), r.method);
    assert_string_equal(str_of(v, "path"), r.path);
    assert_string_equal(str_of(v, "policy"), r.policy);
    assert_string_equal(str_of(v, "rule"), r.rule);
    assert_string_equal(str_of(v, "reason"), r.reason);
    assert_string_equal(str_of(v, "client"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(v);
    free(line);

    /* Every byte value, alone and in pairs, gives valid JSON. */
    for (int a = 1; a < 256; a++)
        for (int b = 0; b < 256; b += 5) {
            char s[3] = {(char)a, (char)b, 0};
            ls_audit_record q = {.time_ms = T0, .path = s};
            line = format(&q);
            json_decref(parse_line(line, strlen(line) - 1));
            free(line);
        }
}

static void test_audit_cuts_long_fields(void **state)
{
    (void)state;
    size_t n = LS_AUDIT_FIELD_MAX + 100;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    /* A 3-byte character across the cut. */
    memcpy(big + LS_AUDIT_FIELD_MAX - 1, "\xe2\x82\xac", 3);
    ls_audit_record r = {.time_ms = T0, .path = big, .subject = "s"};
    char *line = format(&r);
    json_t *v = parse_line(line, strlen(line) - 1);
    const char *p = str_of(v, "path");
    size_t pl = strlen(p);
    assert_int_equal(pl, LS_AUDIT_FIELD_MAX - 1 + 3); /* the 'a's, then "…" */
    assert_memory_equal(p + pl - 3, "\xe2\x80\xa6", 3);
    assert_string_equal(str_of(v, "subject"), "s");
    json_decref(v);
    free(line);

    /* Exactly the limit is kept whole. */
    big[LS_AUDIT_FIELD_MAX] = '\0';
    memset(big, 'b', LS_AUDIT_FIELD_MAX);
    line = format(&r);
    v = parse_line(line, strlen(line) - 1);
    assert_int_equal(strlen(str_of(v, "path")), LS_AUDIT_FIELD_MAX);
    json_decref(v);
    free(line);
    free(big);
}

/* ---- buffering ---- */

static void test_audit_buffers_until_interval(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("interval.log", &mc, 0, &path);
    write_n(a, 0, 10);
    assert_int_equal(count_lines(path), 0);
    ls_manual_clock_advance(&mc, 999);
    write_n(a, 10, 1);
    assert_int_equal(count_lines(path), 0);
    ls_manual_clock_advance(&mc, 1);
    write_n(a, 11, 1); /* one second since the open */
    assert_int_equal(count_lines(path), 12);
    ls_manual_clock_advance(&mc, 500);
    write_n(a, 12, 1);
    assert_int_equal(count_lines(path), 12);

    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.records, 13);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.write_errors, 0);
    struct stat fst;
    assert_int_equal(stat(path, &fst), 0);
    assert_int_equal(st.bytes, (uint64_t)fst.st_size);

    /* The record time comes from the wall clock unless given. */
    char *text = slurp(path);
    json_t *v = parse_line(text, (size_t)(strchr(text, '\n') - text));
    assert_string_equal(str_of(v, "time"), "2026-11-26T09:30:01.123Z");
    assert_string_equal(str_of(v, "request_id"), "req-0");
    json_decref(v);
    free(text);
    ls_audit_close(a);
    assert_int_equal(count_lines(path), 13);
    free(path);
}

static void test_audit_buffers_until_size(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    size_t len = sample_len();
    char *path;
    /* Room for exactly 3 records: the third fills it and flushes. */
    ls_audit_t *a = open_log("size.log", &mc, 3 * len, &path);
    write_n(a, 0, 2);
    assert_int_equal(count_lines(path), 0);
    write_n(a, 2, 1);
    assert_int_equal(count_lines(path), 3);
    ls_audit_close(a);
    free(path);

    /* Room for 3 and a bit: the 4th flushes the first 3 and waits. */
    a = open_log("size2.log", &mc, 3 * len + 10, &path);
    write_n(a, 0, 3);
    assert_int_equal(count_lines(path), 0);
    write_n(a, 3, 1);
    assert_int_equal(count_lines(path), 3);
    write_n(a, 4, 2);
    assert_int_equal(count_lines(path), 3);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL);
    assert_int_equal(count_lines(path), 6);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL); /* nothing pending */
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.flushes, 2);
    ls_audit_close(a);
    free(path);
}

static void test_audit_large_record_written_alone(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("large.log", &mc, 1024, &path);
    write_n(a, 0, 2);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    ls_audit_record r = {.path = big, .decision = LS_AUDIT_DENY};
    ls_err err = {0};
    th_ok(ls_audit_write(a, &r, &err), &err);
    /* The two pending records first, then the big one on its own. */
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.flushes, 2);
    assert_int_equal(count_lines(path), 3);
    char *text = slurp(path);
    char *third = strchr(strchr(text, '\n') + 1, '\n') + 1;
    json_t *v = parse_line(third, strlen(third) - 1);
    assert_string_equal(str_of(v, "path"), big);
    json_decref(v);
    free(text);
    ls_audit_close(a);
    free(path);
}

static void test_audit_tick_flushes_when_due(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("tick.log", &mc, 0, &path);
    ls_audit_tick(a); /* nothing pending */
    write_n(a, 0, 3);
    ls_manual_clock_advance(&mc, 400);
    ls_audit_tick(a);
    assert_int_equal(count_lines(path), 0);
    ls_manual_clock_advance(&mc, 600);
    ls_audit_tick(a);
    assert_int_equal(count_lines(path), 3);
    ls_audit_close(a);
    free(path);
}

/* With a background flusher, records reach the file about one interval
 * after they are due, with no further call from the writer. */
static void test_audit_background_flusher_flushes_when_idle(void **state)
{
    (void)state;
    char *path = th_path(dir, "background.log");
    unlink(path);
    ls_audit_opts o = {.flush_interval_ms = 50, .background = 1};
    ls_audit_t *a = NULL;
    ls_err err = {0};
    th_ok(ls_audit_open(&a, path, &o, &err), &err);
    write_n(a, 0, 2);
    size_t n = 0;
    for (int i = 0; i < 200 && (n = count_lines(path)) < 2; i++) usleep(10000);
    assert_int_equal(n, 2); /* flushed within 2 s, though nothing else was called */
    write_n(a, 2, 1);
    ls_audit_close(a); /* joins the thread and flushes the rest */
    assert_int_equal(count_lines(path), 3);
    free(path);
}

static void test_audit_flush_on_close(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("close.log", &mc, 0, &path);
    write_n(a, 0, 5);
    assert_int_equal(count_lines(path), 0);
    ls_audit_close(a);
    assert_int_equal(count_lines(path), 5);
    ls_audit_close(NULL);
    free(path);
}

/* ---- rotation and reopen ---- */

static void test_audit_rotation_by_rename(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path, *old = th_path(dir, "rename.log.1");
    ls_audit_t *a = open_log("rename.log", &mc, 0, &path);
    write_n(a, 0, 2);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL);
    assert_int_equal(rename(path, old), 0);

    /* Within the second since the last check: still the old file. */
    ls_manual_clock_advance(&mc, 500);
    write_n(a, 2, 1);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL);
    assert_int_equal(count_lines(old), 3);
    assert_int_equal(access(path, F_OK), -1);

    /* A second after the last check the move is noticed: a new file at
     * the path. */
    ls_manual_clock_advance(&mc, 1000);
    write_n(a, 3, 2); /* the interval passed: the first of these flushes */
    assert_int_equal(count_lines(path), 1);
    ls_audit_close(a);
    assert_int_equal(count_lines(old), 3);
    assert_int_equal(count_lines(path), 2);
    char *text = slurp(path);
    assert_non_null(strstr(text, "\"req-3\""));
    assert_non_null(strstr(text, "\"req-4\""));
    free(text);
    text = slurp(old);
    assert_null(strstr(text, "\"req-3\""));
    free(text);
    free(path);
    free(old);
}

static void test_audit_rotation_by_delete(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("delete.log", &mc, 0, &path);
    write_n(a, 0, 1);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL);
    assert_int_equal(unlink(path), 0);
    ls_manual_clock_advance(&mc, 1000);
    write_n(a, 1, 1);
    assert_int_equal(count_lines(path), 1);
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.reopens, 1);
    ls_audit_close(a);
    free(path);
}

static void test_audit_reopen_on_demand(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path, *old = th_path(dir, "reopen.log.1");
    ls_audit_t *a = open_log("reopen.log", &mc, 0, &path);
    write_n(a, 0, 2);
    assert_int_equal(rename(path, old), 0);
    ls_err err = {0};
    th_ok(ls_audit_reopen(a, &err), &err);
    /* Pending records went to the file they were written for. */
    assert_int_equal(count_lines(old), 2);
    assert_int_equal(access(path, F_OK), 0);
    write_n(a, 2, 1);
    th_ok(ls_audit_flush(a, &err), &err);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(count_lines(old), 2);

    /* A failed reopen keeps the old file. */
    char *gone = th_path(dir, "gone");
    assert_int_equal(mkdir(gone, 0700), 0);
    char *inner = th_path(gone, "x.log");
    ls_audit_t *b = NULL;
    th_ok(ls_audit_open(&b, inner, NULL, &err), &err);
    th_rmtree(gone);
    assert_int_equal(ls_audit_reopen(b, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "No such file or directory"));
    ls_audit_stats st;
    ls_audit_get_stats(b, &st);
    assert_int_equal(st.write_errors, 1);
    assert_int_equal(st.reopens, 0);
    write_n(b, 0, 1);
    th_ok(ls_audit_flush(b, &err), &err); /* into the deleted inode */
    ls_audit_close(b);

    ls_audit_get_stats(a, &st);
    assert_int_equal(st.reopens, 1);
    ls_audit_close(a);
    free(inner);
    free(gone);
    free(path);
    free(old);
}

static void test_audit_request_reopen_flag(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path, *old = th_path(dir, "flag.log.1");
    ls_audit_t *a = open_log("flag.log", &mc, 0, &path);
    assert_int_equal(rename(path, old), 0);
    ls_audit_request_reopen(a); /* what a SIGHUP handler does */
    ls_audit_tick(a);           /* nothing pending: reopens anyway */
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(rename(path, old), 0);
    ls_audit_request_reopen(a);
    write_n(a, 0, 1);
    th_ok(ls_audit_flush(a, NULL), (ls_err *)NULL);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(count_lines(old), 0);
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.reopens, 2);
    ls_audit_close(a);
    free(path);
    free(old);
}

/* ---- errors ---- */

static void test_audit_unwritable_path(void **state)
{
    (void)state;
    ls_audit_t *a = (ls_audit_t *)1;
    ls_err err = {0};
    char *missing = th_path(dir, "no/such/dir.log");
    assert_int_equal(ls_audit_open(&a, missing, NULL, &err), LS_EIO);
    assert_null(a);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, "No such file or directory"));
    assert_int_equal(ls_audit_open(&a, dir, NULL, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "Is a directory"));
    assert_int_equal(ls_audit_open(&a, "", NULL, &err), LS_EINVAL);
    free(missing);

    if (geteuid() != 0) { /* root writes anywhere */
        char *ro = th_path(dir, "ro");
        assert_int_equal(mkdir(ro, 0500), 0);
        char *p = th_path(ro, "x.log");
        assert_int_equal(ls_audit_open(&a, p, NULL, &err), LS_EPERM);
        assert_non_null(strstr(err.msg, "Permission denied"));
        free(p);
        free(ro);
    }
}

static void test_audit_bad_options(void **state)
{
    (void)state;
    ls_audit_t *a;
    ls_err err = {0};
    char *p = th_path(dir, "opts.log");
    ls_audit_opts o = {.flush_interval_ms = -1};
    assert_int_equal(ls_audit_open(&a, p, &o, &err), LS_EINVAL);
    o = (ls_audit_opts){.mode = 010000};
    assert_int_equal(ls_audit_open(&a, p, &o, &err), LS_EINVAL);
    o = (ls_audit_opts){.buffer_size = (size_t)1 << 31};
    assert_int_equal(ls_audit_open(&a, p, &o, &err), LS_EINVAL);
    free(p);
}

static void test_audit_file_mode(void **state)
{
    (void)state;
    mode_t old = umask(022);
    char *p = th_path(dir, "mode.log");
    ls_audit_t *a;
    ls_err err = {0};
    th_ok(ls_audit_open(&a, p, NULL, &err), &err);
    ls_audit_close(a);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    free(p);
    p = th_path(dir, "mode2.log");
    ls_audit_opts o = {.mode = 0600};
    th_ok(ls_audit_open(&a, p, &o, &err), &err);
    ls_audit_close(a);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    free(p);
    umask(old);
}

static void test_audit_write_errors_counted(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    ls_audit_opts o = {.clock = &mc.clock};
    ls_audit_t *a;
    ls_err err = {0};
    th_ok(ls_audit_open(&a, "/dev/full", &o, &err), &err);
    write_n(a, 0, 3);
    assert_int_equal(ls_audit_flush(a, &err), LS_EIO);
    assert_non_null(strstr(err.msg, "No space left on device"));
    ls_manual_clock_advance(&mc, 1000);
    write_n(a, 3, 2); /* the first flushes (and fails) on the interval */
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.write_errors, 2);
    assert_int_equal(st.dropped, 4);
    assert_int_equal(st.flushes, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.reopens, 0); /* same device node: no reopen */
    ls_audit_close(a);
}

static void test_audit_short_write_keeps_lines_whole(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("short.log", &mc, 0, &path);
    size_t len = sample_len();
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = (rlim_t)(2 * len + len / 2); /* the third record is cut */
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    write_n(a, 0, 4);
    ls_err err = {0};
    assert_int_equal(ls_audit_flush(a, &err), LS_EIO);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.write_errors, 1);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.bytes, 2 * len + len / 2);

    /* The next flush ends the torn line first, so new lines parse. */
    write_n(a, 4, 2);
    th_ok(ls_audit_flush(a, &err), &err);
    ls_audit_close(a);
    char *text = slurp(path);
    size_t good = 0, bad = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *v = NULL;
        if (ls_json_parse(line, (size_t)(nl - line), &v, NULL) == LS_OK) {
            good++;
            json_decref(v);
        } else {
            bad++;
        }
        line = nl + 1;
    }
    assert_int_equal(good, 4);
    assert_int_equal(bad, 1);
    free(text);
    free(path);
}

/* Two processes, each with its own writer and a small buffer, append to
 * one file at once: every line is whole. */
static void test_audit_two_writers_append_whole_lines(void **state)
{
    (void)state;
    enum { PER_CHILD = 3000 };
    char *path = th_path(dir, "shared.log");
    unlink(path);
    pid_t pid[2];
    for (int c = 0; c < 2; c++) {
        pid[c] = fork();
        assert_true(pid[c] >= 0);
        if (pid[c] == 0) {
            ls_audit_opts o = {.buffer_size = 700 + 300 * (size_t)c};
            ls_audit_t *a;
            if (ls_audit_open(&a, path, &o, NULL) != LS_OK) _exit(2);
            char pad[200];
            memset(pad, c ? 'b' : 'a', sizeof pad - 1);
            pad[0] = '/';
            pad[sizeof pad - 1] = '\0';
            for (int i = 0; i < PER_CHILD; i++) {
                char id[32];
                snprintf(id, sizeof id, "%d-%d", c, i);
                ls_audit_record r = {.request_id = id, .subject = c ? "B" : "A", .path = pad};
                if (ls_audit_write(a, &r, NULL) != LS_OK) _exit(3);
            }
            ls_audit_stats st;
            ls_audit_get_stats(a, &st);
            ls_audit_close(a);
            _exit(st.write_errors || st.flushes < 100 ? 4 : 0);
        }
    }
    for (int c = 0; c < 2; c++) {
        int status;
        assert_int_equal(waitpid(pid[c], &status, 0), pid[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    char *text = slurp(path);
    int next[2] = {0, 0};
    size_t lines = 0;
    for (char *line = text; *line; lines++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *v = parse_line(line, (size_t)(nl - line));
        int c, i;
        assert_int_equal(sscanf(str_of(v, "request_id"), "%d-%d", &c, &i), 2);
        assert_string_equal(str_of(v, "subject"), c ? "B" : "A");
        assert_int_equal(strlen(str_of(v, "path")), 199);
        assert_int_equal(i, next[c]); /* each writer's records in order */
        next[c]++;
        json_decref(v);
        line = nl + 1;
    }
    assert_int_equal(lines, 2 * PER_CHILD);
    assert_int_equal(next[0], PER_CHILD);
    assert_int_equal(next[1], PER_CHILD);
    free(text);
    free(path);
}

/* ---- allocation ---- */

static ls_rc open_write_close(void *ud)
{
    const char *path = ud;
    ls_audit_t *a = NULL;
    ls_err err = {0};
    ls_rc rc = ls_audit_open(&a, path, NULL, &err);
    if (rc != LS_OK) {
        assert_null(a);
        assert_non_null(strstr(err.msg, "out of memory"));
        return rc;
    }
    ls_audit_record r = sample(1);
    rc = ls_audit_write(a, &r, &err);
    ls_audit_close(a);
    return rc;
}

static void test_audit_open_enomem(void **state)
{
    (void)state;
    char *p = th_path(dir, "enomem.log");
    assert_true(th_each_alloc_failure(open_write_close, p) >= 4);
    free(p);
}

static void test_audit_write_enomem(void **state)
{
    (void)state;
    ls_manual_clock mc;
    ls_manual_clock_init(&mc, T0);
    char *path;
    ls_audit_t *a = open_log("wenomem.log", &mc, 0, &path);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ls_audit_record r = {.path = big};
    ls_err err = {0};
    th_fail_install();
    write_n(a, 0, 1); /* small records need no allocation */
    assert_int_equal(th_alloc_count(), 0);
    th_fail_after(0);
    assert_int_equal(ls_audit_write(a, &r, &err), LS_ENOMEM);
    th_fail_never();
    th_ok(ls_audit_write(a, &r, &err), &err); /* grows now */
    th_fail_uninstall();
    ls_audit_stats st;
    ls_audit_get_stats(a, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.dropped, 1);
    ls_audit_close(a);
    assert_int_equal(count_lines(path), 2);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_format_exact_line),
        cmocka_unit_test(test_audit_format_omits_null_fields),
        cmocka_unit_test(test_audit_format_numbers_and_time),
        cmocka_unit_test(test_audit_escapes_hostile_values),
        cmocka_unit_test(test_audit_cuts_long_fields),
        cmocka_unit_test(test_audit_buffers_until_interval),
        cmocka_unit_test(test_audit_buffers_until_size),
        cmocka_unit_test(test_audit_large_record_written_alone),
        cmocka_unit_test(test_audit_tick_flushes_when_due),
        cmocka_unit_test(test_audit_background_flusher_flushes_when_idle),
        cmocka_unit_test(test_audit_flush_on_close),
        cmocka_unit_test(test_audit_rotation_by_rename),
        cmocka_unit_test(test_audit_rotation_by_delete),
        cmocka_unit_test(test_audit_reopen_on_demand),
        cmocka_unit_test(test_audit_request_reopen_flag),
        cmocka_unit_test(test_audit_unwritable_path),
        cmocka_unit_test(test_audit_bad_options),
        cmocka_unit_test(test_audit_file_mode),
        cmocka_unit_test(test_audit_write_errors_counted),
        cmocka_unit_test(test_audit_short_write_keeps_lines_whole),
        cmocka_unit_test(test_audit_two_writers_append_whole_lines),
        cmocka_unit_test(test_audit_open_enomem),
        cmocka_unit_test(test_audit_write_enomem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

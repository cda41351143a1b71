/* SPDX-License-Identifier: MIT
 * Tests of cron expressions (native/flow/cron.c): parse results and exact
 * error messages for every field, next fire times against a table of known
 * cases (month ends, leap days, the day-of-month/day-of-week OR rule,
 * macros, @every), and random expressions against a naive minute-by-minute
 * matcher built on gmtime_r (seed printed; LS_TEST_SEED repeats a run).
 */
#define _GNU_SOURCE 1
#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/cron.h"

/* ---- helpers ---- */

/* "YYYY-MM-DD HH:MM[:SS]" UTC to ms since the epoch, by libc. */
static int64_t at(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    if (n < 5) fail_msg("bad time %s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000;
}

static void show(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    struct tm tm;
    gmtime_r(&t, &tm);
    (void)strftime(buf, cap, "%Y-%m-%d %H:%M:%S %a", &tm);
}

static ls_cron parse_ok(const char *text)
{
    ls_cron c;
    ls_err err = {0};
    th_ok(ls_cron_parse(text, strlen(text), &c, &err), &err);
    return c;
}

static void parse_fails(const char *text, const char *want)
{
    ls_cron c;
    ls_err err = {0};
    ls_rc rc = ls_cron_parse(text, strlen(text), &c, &err);
    if (rc != LS_EINVAL) fail_msg("%s: got %s, want EINVAL", text, ls_rc_name(rc));
    if (strcmp(err.msg, want) != 0)
        fail_msg("%s:\n  got  \"%s\"\n  want \"%s\"", text, err.msg, want);
    assert_int_equal(c.minutes | c.hours | c.days | c.months | c.weekdays | c.flags, 0);
    assert_int_equal(c.every_ms, 0);
}

static int64_t next_of(const char *text, int64_t after)
{
    ls_cron c = parse_ok(text);
    int64_t next = -1;
    ls_rc rc = ls_cron_next(&c, after, &next);
    if (rc != LS_OK) fail_msg("%s: next: %s", text, ls_rc_name(rc));
    return next;
}

/* Checks the first fire time after `after` on zone's clock (NULL: UTC,
 * which is ls_cron_next itself). Times are UTC text for at(). */
static void expect_next_in(const char *text, const char *zone, const char *after, const char *want)
{
    ls_cron c = parse_ok(text);
    int64_t got = -1, w = at(want);
    ls_rc rc = ls_cron_next_in(&c, zone, at(after), &got);
    if (rc != LS_OK) fail_msg("%s in %s after %s: %s", text, zone, after, ls_rc_name(rc));
    if (got != w) {
        char g[64], e[64];
        show(got, g, sizeof g);
        show(w, e, sizeof e);
        fail_msg("%s in %s after %s:\n  got  %s\n  want %s", text, zone, after, g, e);
    }
}

static void expect_next(const char *text, const char *after, const char *want)
{
    expect_next_in(text, NULL, after, want);
}

static uint64_t bits(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int v = lo; v <= hi; v += step) b |= UINT64_C(1) << v;
    return b;
}

static int same_cron(const ls_cron *a, const ls_cron *b)
{
    return a->minutes == b->minutes && a->hours == b->hours && a->days == b->days &&
           a->months == b->months && a->weekdays == b->weekdays && a->flags == b->flags &&
           a->every_ms == b->every_ms;
}

/* ---- parse ---- */

static void test_cron_parse_fields(void **state)
{
    (void)state;
    ls_cron c = parse_ok("*/15 0-23/6 1,15,31 JAN-mar,Dec mon-FRI");
    assert_int_equal(c.minutes, bits(0, 59, 15));
    assert_int_equal(c.hours, bits(0, 23, 6));
    assert_int_equal(c.days, (1u << 1) | (1u << 15) | (1u << 31));
    assert_int_equal(c.months, bits(1, 3, 1) | (1u << 12));
    assert_int_equal(c.weekdays, bits(1, 5, 1));
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.every_ms, 0);

    c = parse_ok("  5\t4 * * *  ");
    assert_int_equal(c.minutes, UINT64_C(1) << 5);
    assert_int_equal(c.hours, 1u << 4);
    assert_int_equal(c.days, bits(1, 31, 1));
    assert_int_equal(c.months, bits(1, 12, 1));
    assert_int_equal(c.weekdays, 0x7f);
    assert_int_equal(c.flags, LS_CRON_DOM_STAR | LS_CRON_DOW_STAR);

    c = parse_ok("59 23 31 12 7"); /* 7 = Sunday */
    assert_int_equal(c.minutes, UINT64_C(1) << 59);
    assert_int_equal(c.weekdays, 1u);
    c = parse_ok("0 0 * * 5-7"); /* Fri, Sat, Sun */
    assert_int_equal(c.weekdays, (1u << 5) | (1u << 6) | 1u);
    c = parse_ok("0 0 * * FRI-SUN");
    assert_int_equal(c.weekdays, (1u << 5) | (1u << 6) | 1u);
    c = parse_ok("0 0 * * 0-7");
    assert_int_equal(c.weekdays, 0x7f);
    c = parse_ok("5/20 * */2 * */3"); /* N/S = N-max/S; '*' + step counts as '*' */
    assert_int_equal(c.minutes, bits(5, 59, 20));
    assert_int_equal(c.days, bits(1, 31, 2));
    assert_int_equal(c.weekdays, bits(0, 6, 3) | 1u); /* 0,3,6 (and 7 -> 0) */
    assert_int_equal(c.flags, LS_CRON_DOM_STAR | LS_CRON_DOW_STAR);
    c = parse_ok("0 0 1 * MON");
    assert_int_equal(c.flags, 0);
    c = parse_ok("0 0 * * mon");
    assert_int_equal(c.flags, LS_CRON_DOM_STAR);
    c = parse_ok("* * * * *");
    assert_int_equal(c.minutes, bits(0, 59, 1));
    c = parse_ok("*/60 */24 */31 */12 */8"); /* largest steps */
    assert_int_equal(c.minutes, 1u);
    assert_int_equal(c.hours, 1u);
    assert_int_equal(c.days, 1u << 1);
    assert_int_equal(c.months, 1u << 1);
    assert_int_equal(c.weekdays, 1u);
}

static void test_cron_parse_macros(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}, {" @HOURLY ", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ls_cron a = parse_ok(pairs[i][0]), b = parse_ok(pairs[i][1]);
        if (!same_cron(&a, &b)) fail_msg("%s != %s", pairs[i][0], pairs[i][1]);
    }
    ls_cron c = parse_ok("@every 30s");
    assert_int_equal(c.every_ms, 30000);
    assert_int_equal(c.minutes | c.hours | c.days | c.months | c.weekdays, 0);
    c = parse_ok("@EVERY\t1h30m");
    assert_int_equal(c.every_ms, 5400000);
    c = parse_ok("@every 1s");
    assert_int_equal(c.every_ms, 1000);
    c = parse_ok("@every 1.5s");
    assert_int_equal(c.every_ms, 1500);
}

static void test_cron_parse_errors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"", "cron \"\": empty expression"},
        {"  \t ", "cron \"  \t \": empty expression"},
        {"* * * *",
         "cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
        {"0 * * * * *", "cron \"0 * * * * *\": expected 5 fields (minute hour day-of-month month "
                        "day-of-week), got 6"},
        {"*/0 * * * *", "cron \"*/0 * * * *\": minute: step must be at least 1"},
        {"60 * * * *", "cron \"60 * * * *\": minute: 60 is out of range 0-59"},
        {"* 24 * * *", "cron \"* 24 * * *\": hour: 24 is out of range 0-23"},
        {"* * 0 * *", "cron \"* * 0 * *\": day-of-month: 0 is out of range 1-31"},
        {"* * 32 * *", "cron \"* * 32 * *\": day-of-month: 32 is out of range 1-31"},
        {"* * * 0 *", "cron \"* * * 0 *\": month: 0 is out of range 1-12"},
        {"* * * 13 *", "cron \"* * * 13 *\": month: 13 is out of range 1-12"},
        {"* * * * 8", "cron \"* * * * 8\": day-of-week: 8 is out of range 0-7"},
        {"99999999999999999999 * * * *",
         "cron \"99999999999999999999 * * * *\": minute: 99999999999999999999 is out of "
         "range 0-59"},
        {"5-1 * * * *", "cron \"5-1 * * * *\": minute: range \"5-1\" is backwards"},
        {"* * * DEC-JAN *", "cron \"* * * DEC-JAN *\": month: range \"DEC-JAN\" is backwards"},
        {"* * * * SAT-MON",
         "cron \"* * * * SAT-MON\": day-of-week: range \"SAT-MON\" is backwards"},
        {"* * * FOO *", "cron \"* * * FOO *\": month: unknown name \"FOO\""},
        {"* * * * MONDAY", "cron \"* * * * MONDAY\": day-of-week: unknown name \"MONDAY\""},
        {"* * * MON *", "cron \"* * * MON *\": month: unknown name \"MON\""},
        {"* JAN * * *", "cron \"* JAN * * *\": hour: \"JAN\" is not a number"},
        {"1a * * * *", "cron \"1a * * * *\": minute: \"1a\" is not a number"},
        {"*/x * * * *", "cron \"*/x * * * *\": minute: step in \"*/x\" is not a number"},
        {"*/ * * * *", "cron \"*/ * * * *\": minute: step in \"*/\" is not a number"},
        {"*/5/2 * * * *", "cron \"*/5/2 * * * *\": minute: step in \"*/5/2\" is not a number"},
        {"*/61 * * * *", "cron \"*/61 * * * *\": minute: step 61 is larger than the range 0-59"},
        {"* */25 * * *", "cron \"* */25 * * *\": hour: step 25 is larger than the range 0-23"},
        {"1- * * * *", "cron \"1- * * * *\": minute: expected a number in \"1-\""},
        {"-1 * * * *", "cron \"-1 * * * *\": minute: expected a number in \"-1\""},
        {"1-2-3 * * * *", "cron \"1-2-3 * * * *\": minute: unexpected \"-\" in \"1-2-3\""},
        {"** * * * *", "cron \"** * * * *\": minute: unexpected \"*\" in \"**\""},
        {"? * * * *", "cron \"? * * * *\": minute: expected a number in \"?\""},
        {"1,,2 * * * *", "cron \"1,,2 * * * *\": minute: empty item in list"},
        {"1, * * * *", "cron \"1, * * * *\": minute: empty item in list"},
        {"@often", "cron \"@often\": unknown macro \"@often\" (known: @yearly @annually "
                   "@monthly @weekly @daily @midnight @hourly @every)"},
        {"@hourly 5", "cron \"@hourly 5\": @hourly takes nothing after it"},
        {"@every", "cron \"@every\": @every needs a duration, such as \"@every 30s\""},
        {"@every 500ms", "cron \"@every 500ms\": @every: interval must be at least 1s"},
        {"@every 0s", "cron \"@every 0s\": @every: interval must be at least 1s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fails(cases[i][0], cases[i][1]);

    /* the duration parser's own message is kept */
    ls_cron c;
    ls_err err = {0};
    assert_int_equal(ls_cron_parse("@every 5x", 9, &c, &err), LS_EINVAL);
    assert_non_null(strstr(err.msg, "cron \"@every 5x\": @every: duration \"5x\""));

    /* long texts are cut in the message; over LS_CRON_MAX_TEXT is refused */
    char big[LS_CRON_MAX_TEXT + 2];
    memset(big, '1', sizeof big);
    assert_int_equal(ls_cron_parse(big, sizeof big, &c, &err), LS_EINVAL);
    assert_string_equal(err.msg,
                        "cron \"111111111111111111111111111111111111111111111111111111111...\": "
                        "longer than 256 bytes");
    /* NULL text with length 0; NULL err */
    assert_int_equal(ls_cron_parse(NULL, 0, &c, NULL), LS_EINVAL);
    /* not NUL-terminated: only len bytes count */
    c = parse_ok("0 0 * * *");
    ls_cron d;
    th_ok(ls_cron_parse("0 0 * * *X", 9, &d, &err), &err);
    assert_true(same_cron(&c, &d));
}

/* ---- next ---- */

static void test_cron_next_table(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        /* expression, after, first fire strictly after */
        {"*/15 * * * *", "2024-03-10 10:07:00", "2024-03-10 10:15:00"},
        {"*/15 * * * *", "2024-03-10 10:15:00", "2024-03-10 10:30:00"}, /* on a fire time */
        {"*/15 * * * *", "2024-03-10 10:14:59", "2024-03-10 10:15:00"},
        {"*/15 * * * *", "2024-03-10 23:59:00", "2024-03-11 00:00:00"},
        {"* * * * *", "2024-03-10 10:07:30", "2024-03-10 10:08:00"},
        {"0 0 * * MON", "2024-01-30 12:00:00", "2024-02-05 00:00:00"}, /* across a month end */
        {"0 0 * * MON", "2024-02-05 00:00:00", "2024-02-12 00:00:00"},
        {"0 12 1 * *", "2024-01-01 12:00:00", "2024-02-01 12:00:00"},
        {"0 12 1 * *", "2024-01-01 11:59:00", "2024-01-01 12:00:00"},
        {"0 12 1 * *", "2024-12-15 00:00:00", "2025-01-01 12:00:00"},
        {"0 0 29 2 *", "2023-03-01 00:00:00", "2024-02-29 00:00:00"}, /* leap years */
        {"0 0 29 2 *", "2024-02-29 00:00:00", "2028-02-29 00:00:00"},
        {"0 0 29 2 *", "2097-01-01 00:00:00", "2104-02-29 00:00:00"},    /* 2100 is not leap */
        {"0 0 29 2 *", "1999-01-01 00:00:00", "2000-02-29 00:00:00"},    /* 2000 is */
        {"0 0 31 * *", "2024-04-01 00:00:00", "2024-05-31 00:00:00"},    /* skips April */
        {"30 9 13 * FRI", "2024-09-01 00:00:00", "2024-09-06 09:30:00"}, /* OR: Friday first */
        {"30 9 13 * FRI", "2024-09-06 09:30:00", "2024-09-13 09:30:00"},
        {"30 9 13 * FRI", "2024-10-11 09:31:00", "2024-10-13 09:30:00"}, /* OR: the 13th */
        {"0 0 */2 * MON", "2024-01-01 00:00:00", "2024-01-15 00:00:00"}, /* AND (Vixie '*') */
        {"0 0 1-7 * */7", "2024-01-01 00:00:00", "2024-01-07 00:00:00"}, /* first Sunday */
        {"@hourly", "2024-03-10 10:00:00", "2024-03-10 11:00:00"},
        {"@hourly", "2024-12-31 23:30:00", "2025-01-01 00:00:00"},
        {"@daily", "2024-12-31 00:00:00", "2025-01-01 00:00:00"},
        {"@weekly", "2024-03-10 00:00:00", "2024-03-17 00:00:00"}, /* 10th is a Sunday */
        {"@monthly", "2024-01-31 23:59:59", "2024-02-01 00:00:00"},
        {"@yearly", "2024-01-01 00:00:00", "2025-01-01 00:00:00"},
        {"59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00"}, /* end of year */
        {"59 23 31 DEC *", "2024-06-01 00:00:00", "2024-12-31 23:59:00"},
        {"0 9-17/4 * * MON-FRI", "2024-03-08 17:00:00", "2024-03-11 09:00:00"},
        {"0 9-17/4 * * MON-FRI", "2024-03-11 09:00:00", "2024-03-11 13:00:00"},
        {"5 4 * * SUN", "1970-01-01 00:00:00", "1970-01-04 04:05:00"},
        {"0 0 1 1 *", "1969-12-31 23:59:59", "1970-01-01 00:00:00"},  /* negative after */
        {"30 * * * *", "1900-02-28 23:45:00", "1900-03-01 00:30:00"}, /* 1900 not leap */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_next(cases[i][0], cases[i][1], cases[i][2]);
}

static void test_cron_next_every_aligned(void **state)
{
    (void)state;
    assert_int_equal(next_of("@every 30s", at("2024-03-10 10:07:10")), at("2024-03-10 10:07:30"));
    assert_int_equal(next_of("@every 30s", at("2024-03-10 10:07:30")), at("2024-03-10 10:08:00"));
    assert_int_equal(next_of("@every 30s", at("2024-03-10 10:07:29") + 999),
                     at("2024-03-10 10:07:30"));
    assert_int_equal(next_of("@every 15m", at("2024-03-10 10:07:00")), at("2024-03-10 10:15:00"));
    assert_int_equal(next_of("@every 7s", 0), 7000);
    assert_int_equal(next_of("@every 7s", -1), 0);
    assert_int_equal(next_of("@every 7s", -7000), 0);
    assert_int_equal(next_of("@every 7s", -7001), -7000);
    ls_cron c = parse_ok("@every 1s");
    int64_t n = 42;
    assert_int_equal(ls_cron_next(&c, INT64_MAX - 10, &n), LS_ENOTFOUND);
    assert_int_equal(n, 42);
}

static void test_cron_next_never(void **state)
{
    (void)state;
    static const char *const never[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 FEB *",
                                        "0 0 30-31 2 */2"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        ls_cron c = parse_ok(never[i]);
        int64_t n = 42;
        /* (the search is bounded: 400 years, by month and day, not by minute) */
        assert_int_equal(ls_cron_next(&c, at("2024-01-01 00:00:00"), &n), LS_ENOTFOUND);
        assert_int_equal(n, 42);
    }
    /* rare but possible: 29 February on a Sunday (AND, as day-of-week starts with '*') */
    int64_t got = next_of("0 0 29 2 */7", at("2024-03-01 00:00:00"));
    assert_int_equal(got, at("2032-02-29 00:00:00"));
    /* a hand-filled value with bits outside the fields' ranges only */
    ls_cron odd = parse_ok("* * * * *");
    odd.months = 1u | (1u << 13);
    int64_t m = 42;
    assert_int_equal(ls_cron_next(&odd, 0, &m), LS_ENOTFOUND);
    assert_int_equal(m, 42);
    /* past the end of int64 ms */
    ls_cron c = parse_ok("* * * * *");
    int64_t n = 42;
    assert_int_equal(ls_cron_next(&c, INT64_MAX - 1000, &n), LS_ENOTFOUND);
    assert_int_equal(ls_cron_next(&c, INT64_MIN, &n), LS_OK);
    assert_true(n > INT64_MIN && n % 60000 == 0);
}

/* ---- random expressions against a naive matcher ---- */

/* Fire times on a zone's wall clock (times below in UTC): across the
 * clocks going forward (a time that does not exist fires at the first
 * instant after the jump) and back (a time that occurs twice fires once,
 * at its first occurrence), zones without DST, and @every, which ignores
 * the zone. Europe/Berlin: CET (+1) to CEST (+2) at 2026-03-29 01:00 UTC,
 * back at 2026-10-25 01:00 UTC; America/New_York: EST to EDT on 8 March
 * 2026. */
static void test_cron_next_in_zones(void **state)
{
    (void)state;
    static const struct {
        const char *cron, *zone, *after, *want;
    } cases[] = {
        /* daily 02:30 Berlin: the day without 02:30 fires at 03:00 CEST */
        {"30 2 * * *", "Europe/Berlin", "2026-03-28 01:30", "2026-03-29 01:00"},
        {"30 2 * * *", "Europe/Berlin", "2026-03-29 01:00", "2026-03-30 00:30"},
        /* the day with two 02:30s fires at the first (CEST), not the second */
        {"30 2 * * *", "Europe/Berlin", "2026-10-24 00:30", "2026-10-25 00:30"},
        {"30 2 * * *", "Europe/Berlin", "2026-10-25 00:30", "2026-10-26 01:30"},
        {"30 2 * * *", "Europe/Berlin", "2026-10-25 01:10", "2026-10-26 01:30"},
        /* every quarter hour: the missing hour is one fire at 03:00 CEST */
        {"*/15 * * * *", "Europe/Berlin", "2026-03-29 00:45", "2026-03-29 01:00"},
        {"*/15 * * * *", "Europe/Berlin", "2026-03-29 01:00", "2026-03-29 01:15"},
        /* the repeated hour is not walked twice */
        {"*/30 * * * *", "Europe/Berlin", "2026-10-25 00:30", "2026-10-25 02:00"},
        /* weekdays at 09:00 New York: EST on Friday, EDT on Monday */
        {"0 9 * * 1-5", "America/New_York", "2026-03-05 14:00", "2026-03-06 14:00"},
        {"0 9 * * 1-5", "America/New_York", "2026-03-06 14:00", "2026-03-09 13:00"},
        /* no DST, a half-hour offset */
        {"0 0 * * *", "Asia/Kolkata", "2026-01-01 00:00", "2026-01-01 18:30"},
        /* a leap day, at midnight CET */
        {"0 0 29 2 *", "Europe/Berlin", "2026-01-01 00:00", "2028-02-28 23:00"},
        /* UTC and NULL are ls_cron_next; @every ignores the zone */
        {"30 2 * * *", "UTC", "2026-03-28 01:30", "2026-03-28 02:30"},
        {"30 2 * * *", NULL, "2026-03-28 01:30", "2026-03-28 02:30"},
        {"@every 1h", "Asia/Kolkata", "2026-01-01 00:10", "2026-01-01 01:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_next_in(cases[i].cron, cases[i].zone, cases[i].after, cases[i].want);

    ls_cron c = parse_ok("0 0 30 2 *");
    int64_t next = 7;
    assert_int_equal(ls_cron_next_in(&c, "Europe/Berlin", 0, &next), LS_ENOTFOUND);
    assert_int_equal(next, 7);
    c = parse_ok("@hourly");
    assert_int_equal(ls_cron_next_in(&c, "Mars/Olympus_Mons", 0, &next), LS_EINVAL);
}

static void test_cron_zone_check(void **state)
{
    (void)state;
    ls_err err = {0};
    static const char *const good[] = {"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                                       "Etc/GMT+5"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        th_ok(ls_cron_zone_check(good[i], strlen(good[i]), &err), &err);
    static const char *const bad[] = {"",      "Mars/Olympus_Mons", "Europe/Berlin\n",
                                      "utc x", "GMT+05:00",         "Europe/Berlin/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ls_cron_zone_check(bad[i], strlen(bad[i]), &err), LS_EINVAL);
        assert_non_null(strstr(err.msg, "timezone: unknown zone"));
    }
    assert_int_equal(ls_cron_zone_check("Mars/Olympus_Mons", 17, &err), LS_EINVAL);
    assert_string_equal(err.msg, "timezone: unknown zone \"Mars/Olympus_Mons\" (an IANA name such "
                                 "as \"Europe/Berlin\", or \"UTC\")");
    char longname[100];
    memset(longname, 'a', sizeof longname);
    assert_int_equal(ls_cron_zone_check(longname, sizeof longname, &err), LS_EINVAL);
}

static uint64_t rng(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int pick(uint64_t *s, int lo, int hi)
{
    return lo + (int)(rng(s) % (uint64_t)(hi - lo + 1));
}

static uint64_t test_seed(void)
{
    const char *env = getenv("LS_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    print_message("cron seed: %" PRIu64 " (repeat with LS_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    return seed;
}

typedef struct {
    uint64_t set[5]; /* expected bits, day-of-week 7 folded onto 0 */
    int star[5];     /* field text begins with '*' */
} model;

static const int LO[5] = {0, 0, 1, 1, 0}, HI[5] = {59, 23, 31, 12, 7};
static const char *const MON[] = {"jan", "FEB", "Mar", "apr", "MAY", "jun",
                                  "JUL", "aug", "Sep", "OCT", "nov", "DEC"};
static const char *const DOW[] = {"sun", "MON", "Tue", "wed", "THU", "fri", "SAT"};

static void put_value(char *buf, size_t cap, int f, int v, uint64_t *s)
{
    size_t n = strlen(buf);
    if (f == 3 && pick(s, 0, 2) == 0)
        snprintf(buf + n, cap - n, "%s", MON[v - 1]);
    else if (f == 4 && v < 7 && pick(s, 0, 2) == 0)
        snprintf(buf + n, cap - n, "%s", DOW[v]);
    else
        snprintf(buf + n, cap - n, "%d", v);
}

/* Appends a random field f to buf and records its meaning in m. */
static void gen_field(char *buf, size_t cap, int f, uint64_t *s, model *m)
{
    int lo = LO[f], hi = HI[f];
    int items = (f >= 2 && pick(s, 0, 1) == 0) ? 0 : pick(s, 1, 3); /* 0: plain '*' */
    m->set[f] = 0;
    m->star[f] = 0;
    if (items == 0) {
        strcat(buf, "*");
        m->set[f] = bits(lo, hi, 1);
        m->star[f] = 1;
    }
    for (int i = 0; i < items; i++) {
        if (i > 0) strcat(buf, ",");
        size_t n = strlen(buf);
        int kind = pick(s, 0, 4), a = pick(s, lo, hi), b = pick(s, a, hi);
        int step = pick(s, 1, f == 0 ? 20 : 4);
        switch (kind) {
        case 0: /* star and step */
            snprintf(buf + n, cap - n, "*/%d", step);
            m->set[f] |= bits(lo, hi, step);
            if (i == 0) m->star[f] = 1;
            break;
        case 1: /* N */
            put_value(buf, cap, f, a, s);
            m->set[f] |= bits(a, a, 1);
            break;
        case 2: /* A-B */
            put_value(buf, cap, f, a, s);
            strcat(buf, "-");
            put_value(buf, cap, f, b, s);
            m->set[f] |= bits(a, b, 1);
            break;
        case 3: /* A-B/S */
            put_value(buf, cap, f, a, s);
            strcat(buf, "-");
            put_value(buf, cap, f, b, s);
            n = strlen(buf);
            snprintf(buf + n, cap - n, "/%d", step);
            m->set[f] |= bits(a, b, step);
            break;
        default: /* N/S */
            snprintf(buf + n, cap - n, "%d/%d", a, step);
            m->set[f] |= bits(a, hi, step);
            break;
        }
    }
    if (f == 4 && (m->set[f] >> 7)) m->set[f] = (m->set[f] | 1u) & 0x7f;
}

static int naive_matches(const model *m, int64_t minute)
{
    time_t t = (time_t)(minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!((m->set[0] >> tm.tm_min) & 1u) || !((m->set[1] >> tm.tm_hour) & 1u) ||
        !((m->set[3] >> (tm.tm_mon + 1)) & 1u))
        return 0;
    int dom = (int)((m->set[2] >> tm.tm_mday) & 1u), dow = (int)((m->set[4] >> tm.tm_wday) & 1u);
    return (m->star[2] || m->star[4]) ? dom && dow : dom || dow;
}

static void test_cron_next_random_against_naive(void **state)
{
    (void)state;
    uint64_t s = test_seed();
    const int64_t window = INT64_C(2) * 1440; /* minutes searched by the naive matcher */
    int found = 0;
    for (int iter = 0; iter < 200; iter++) {
        char text[LS_CRON_MAX_TEXT] = "";
        model m;
        for (int f = 0; f < 5; f++) {
            if (f > 0) strcat(text, " ");
            gen_field(text, sizeof text, f, &s, &m);
        }
        ls_cron c = parse_ok(text);
        uint64_t got[5] = {c.minutes, c.hours, c.days, c.months, c.weekdays};
        for (int f = 0; f < 5; f++)
            if (got[f] != m.set[f])
                fail_msg("%s: field %d bits %" PRIx64 ", want %" PRIx64, text, f, got[f], m.set[f]);
        assert_int_equal(!!(c.flags & LS_CRON_DOM_STAR), m.star[2]);
        assert_int_equal(!!(c.flags & LS_CRON_DOW_STAR), m.star[4]);

        /* 1950..2150, sometimes exactly on a minute */
        int64_t after = (int64_t)(rng(&s) % UINT64_C(6311390400000)) - INT64_C(631152000000);
        if (pick(&s, 0, 3) == 0) after -= ((after % 60000) + 60000) % 60000;
        int64_t first = (after - ((after % 60000) + 60000) % 60000) / 60000 + 1;
        int64_t want = 0;
        int hit = 0;
        for (int64_t k = first; k < first + window && !hit; k++) {
            hit = naive_matches(&m, k);
            want = k * 60000;
        }
        int64_t next = -1;
        ls_rc rc = ls_cron_next(&c, after, &next);
        char a[64], g[64];
        show(after, a, sizeof a);
        show(next, g, sizeof g);
        if (hit) {
            found++;
            if (rc != LS_OK || next != want) {
                char w[64];
                show(want, w, sizeof w);
                fail_msg("%s after %s: got %s (%s), want %s", text, a, g, ls_rc_name(rc), w);
            }
        } else if (rc == LS_OK && next < (first + window) * 60000) {
            fail_msg("%s after %s: got %s, naive found nothing", text, a, g);
        } else if (rc == LS_OK && !naive_matches(&m, next / 60000)) {
            fail_msg("%s after %s: got %s, which does not match", text, a, g);
        }
    }
    print_message("cron: %d of 200 fired within the naive window\n", found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_parse_fields),
        cmocka_unit_test(test_cron_parse_macros),
        cmocka_unit_test(test_cron_parse_errors),
        cmocka_unit_test(test_cron_next_table),
        cmocka_unit_test(test_cron_next_every_aligned),
        cmocka_unit_test(test_cron_next_in_zones),
        cmocka_unit_test(test_cron_zone_check),
        cmocka_unit_test(test_cron_next_never),
        cmocka_unit_test(test_cron_next_random_against_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

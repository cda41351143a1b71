/* SPDX-License-Identifier: MIT
 * Cron expressions: parsing into bit sets and the next fire time in UTC
 * (see cron.h). Promises: every message names the text, the field and the
 * problem; ls_cron_next skips whole months, days and hours, and returns
 * LS_ENOTFOUND exactly when nothing fires within a full 400-year cycle.
 */
#include "ls_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lodestone/ls_duration.h"
#include "cron.h"

#define MS_PER_MIN   INT64_C(60000)
#define MIN_EVERY_MS INT64_C(1000)

/* ---- errors ---- */

typedef struct {
    const char *text; /* the whole expression, for messages */
    size_t len;
    ls_err *err;
} parse_ctx;

static ls_rc fail(const parse_ctx *p, const char *fmt, ...) LS_PRINTF(2, 3);

static ls_rc fail(const parse_ctx *p, const char *fmt, ...)
{
    char why[LS_ERR_MSGMAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int shown = p->len > 60 ? 57 : (int)p->len;
    return ls_err_set(p->err, LS_EINVAL, "cron \"%.*s%s\": %s", shown, p->text,
                      p->len > 60 ? "..." : "", why);
}

/* ---- fields ---- */

typedef struct {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value min + i; NULL: numbers only */
    int nnames;
} field_def;

static const char *const MONTH_NAMES[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const DAY_NAMES[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, NFIELDS };

static const field_def FIELDS[NFIELDS] = {
    {"minute", 0, 59, NULL, 0},          {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},    {"month", 1, 12, MONTH_NAMES, 12},
    {"day-of-week", 0, 7, DAY_NAMES, 7},
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int same_word(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen) return 0;
    for (size_t i = 0; i < alen; i++) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        char d = b[i];
        if (d >= 'a' && d <= 'z') d = (char)(d - 'a' + 'A');
        if (c != d) return 0;
    }
    return 1;
}

/* One item of a list, s[0..n), as text for messages. */
typedef struct {
    const char *s;
    size_t n;
} item;

/* Reads a number or name at s[*pos]; on success *val and *by_name. */
static ls_rc read_value(const parse_ctx *p, const field_def *f, item it, size_t *pos, int *val,
                        int *by_name)
{
    size_t start = *pos, end = start;
    while (end < it.n && (is_digit(it.s[end]) || is_alpha(it.s[end]))) end++;
    const char *w = it.s + start;
    size_t wn = end - start;
    if (wn == 0) return fail(p, "%s: expected a number in \"%.*s\"", f->name, (int)it.n, it.s);
    *by_name = 0;
    if (is_digit(w[0])) {
        long v = 0;
        for (size_t i = 0; i < wn; i++) {
            if (!is_digit(w[i]))
                return fail(p, "%s: \"%.*s\" is not a number", f->name, (int)wn, w);
            if (v < 1000) v = v * 10 + (w[i] - '0');
        }
        if (v < f->min || v > f->max)
            return fail(p, "%s: %.*s is out of range %d-%d", f->name, (int)wn, w, f->min, f->max);
        *val = (int)v;
    } else if (!f->names) {
        return fail(p, "%s: \"%.*s\" is not a number", f->name, (int)wn, w);
    } else {
        int i = 0;
        while (i < f->nnames && !same_word(w, wn, f->names[i])) i++;
        if (i == f->nnames) return fail(p, "%s: unknown name \"%.*s\"", f->name, (int)wn, w);
        *val = f->min + i;
        *by_name = 1;
    }
    *pos = end;
    return LS_OK;
}

/* Reads "/S" at s[*pos] into *step. */
static ls_rc read_step(const parse_ctx *p, const field_def *f, item it, size_t *pos, int *step)
{
    size_t i = *pos + 1; /* past '/' */
    size_t start = i;
    long v = 0;
    while (i < it.n && is_digit(it.s[i])) {
        if (v < 1000) v = v * 10 + (it.s[i] - '0');
        i++;
    }
    if (i == start || i != it.n)
        return fail(p, "%s: step in \"%.*s\" is not a number", f->name, (int)it.n, it.s);
    if (v < 1) return fail(p, "%s: step must be at least 1", f->name);
    long span = f->max - f->min + 1;
    if (v > span)
        return fail(p, "%s: step %ld is larger than the range %d-%d", f->name, v, f->min, f->max);
    *step = (int)v;
    *pos = i;
    return LS_OK;
}

/* Adds one list item to *bits. */
static ls_rc parse_item(const parse_ctx *p, const field_def *f, item it, uint64_t *bits)
{
    if (it.n == 0) return fail(p, "%s: empty item in list", f->name);
    int lo = f->min, hi = f->max, step = 1, ranged = 0;
    size_t pos = 0;
    if (it.s[0] == '*') {
        pos = 1;
        ranged = 1;
    } else {
        int by_name = 0;
        ls_rc rc = read_value(p, f, it, &pos, &lo, &by_name);
        if (rc != LS_OK) return rc;
        hi = lo;
        if (pos < it.n && it.s[pos] == '-') {
            pos++;
            rc = read_value(p, f, it, &pos, &hi, &by_name);
            if (rc != LS_OK) return rc;
            if (f == &FIELDS[F_DOW] && by_name && hi == 0 && lo > 0) hi = 7; /* FRI-SUN */
            if (hi < lo)
                return fail(p, "%s: range \"%.*s\" is backwards", f->name, (int)it.n, it.s);
            ranged = 1;
        }
    }
    if (pos < it.n && it.s[pos] == '/') {
        ls_rc rc = read_step(p, f, it, &pos, &step);
        if (rc != LS_OK) return rc;
        if (!ranged) hi = f->max; /* N/S = N-max/S */
    }
    if (pos != it.n)
        return fail(p, "%s: unexpected \"%c\" in \"%.*s\"", f->name, it.s[pos], (int)it.n, it.s);
    for (int v = lo; v <= hi; v += step) *bits |= UINT64_C(1) << v;
    return LS_OK;
}

static ls_rc parse_field(const parse_ctx *p, const field_def *f, item text, uint64_t *bits)
{
    *bits = 0;
    size_t start = 0;
    for (size_t i = 0; i <= text.n; i++) {
        if (i < text.n && text.s[i] != ',') continue;
        item it = {text.s + start, i - start};
        ls_rc rc = parse_item(p, f, it, bits);
        if (rc != LS_OK) return rc;
        start = i + 1;
    }
    return LS_OK;
}

/* Splits s[0..n) into exactly five blank-separated fields. */
static ls_rc parse_fields(const parse_ctx *p, const char *s, size_t n, ls_cron *out)
{
    item fields[NFIELDS];
    size_t count = 0, i = 0;
    while (i < n) {
        while (i < n && is_blank(s[i])) i++;
        if (i == n) break;
        size_t start = i;
        while (i < n && !is_blank(s[i])) i++;
        if (count < NFIELDS) fields[count] = (item){s + start, i - start};
        count++;
    }
    if (count != NFIELDS)
        return fail(p,
                    "expected 5 fields (minute hour day-of-month month day-of-week), "
                    "got %zu",
                    count);
    uint64_t bits[NFIELDS];
    for (size_t f = 0; f < NFIELDS; f++) {
        ls_rc rc = parse_field(p, &FIELDS[f], fields[f], &bits[f]);
        if (rc != LS_OK) return rc;
    }
    if (bits[F_DOW] & (UINT64_C(1) << 7)) bits[F_DOW] = (bits[F_DOW] | 1u) & 0x7f;
    out->minutes = bits[F_MINUTE];
    out->hours = (uint32_t)bits[F_HOUR];
    out->days = (uint32_t)bits[F_DOM];
    out->months = (uint16_t)bits[F_MONTH];
    out->weekdays = (uint8_t)bits[F_DOW];
    out->flags = (uint8_t)((fields[F_DOM].s[0] == '*' ? LS_CRON_DOM_STAR : 0) |
                           (fields[F_DOW].s[0] == '*' ? LS_CRON_DOW_STAR : 0));
    out->every_ms = 0;
    return LS_OK;
}

/* ---- macros ---- */

static const struct {
    const char *name;
    const char *fields;
} MACROS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static ls_rc parse_every(const parse_ctx *p, const char *s, size_t n, ls_cron *out)
{
    if (n == 0) return fail(p, "@every needs a duration, such as \"@every 30s\"");
    ls_err derr = {0};
    int64_t ms = 0;
    if (ls_duration_parse(s, n, &ms, &derr) != LS_OK) return fail(p, "@every: %s", derr.msg);
    if (ms < MIN_EVERY_MS) return fail(p, "@every: interval must be at least 1s");
    out->every_ms = ms;
    return LS_OK;
}

static ls_rc parse_macro(const parse_ctx *p, const char *s, size_t n, ls_cron *out)
{
    size_t w = 0;
    while (w < n && !is_blank(s[w])) w++;
    size_t rest = w;
    while (rest < n && is_blank(s[rest])) rest++;
    if (same_word(s, w, "@every")) return parse_every(p, s + rest, n - rest, out);
    for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0]; i++) {
        if (!same_word(s, w, MACROS[i].name)) continue;
        if (rest < n) return fail(p, "%s takes nothing after it", MACROS[i].name);
        return parse_fields(p, MACROS[i].fields, strlen(MACROS[i].fields), out);
    }
    return fail(p,
                "unknown macro \"%.*s\" (known: @yearly @annually @monthly @weekly @daily "
                "@midnight @hourly @every)",
                (int)(w > 20 ? 20 : w), s);
}

ls_rc ls_cron_parse(const char *text, size_t len, ls_cron *out, ls_err *err)
{
    memset(out, 0, sizeof *out);
    if (len == 0) text = "";
    parse_ctx p = {text, len, err};
    if (len > LS_CRON_MAX_TEXT) return fail(&p, "longer than %d bytes", LS_CRON_MAX_TEXT);
    size_t a = 0, b = len;
    while (a < b && is_blank(text[a])) a++;
    while (b > a && is_blank(text[b - 1])) b--;
    if (a == b) return fail(&p, "empty expression");
    ls_rc rc = text[a] == '@' ? parse_macro(&p, text + a, b - a, out)
                              : parse_fields(&p, text + a, b - a, out);
    if (rc != LS_OK) memset(out, 0, sizeof *out);
    return rc;
}

/* ---- calendar (H. Hinnant's days_from_civil / civil_from_days) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : 30 + ((m + (m >> 3)) & 1); /* 31 in Jan, Mar, ... Jul, Aug, ... */
}

/* ---- next fire time ---- */

/* Lowest set bit of mask at or above from, or -1. */
static int next_bit(uint64_t mask, int from)
{
    uint64_t m = mask >> from;
    return m ? from + __builtin_ctzll(m) : -1;
}

typedef struct {
    int64_t y;
    int mon, day, hour, min;
} civil;

static void next_month(civil *t, const ls_cron *c)
{
    int m = next_bit(c->months, t->mon + 1);
    if (m < 0) {
        t->y++;
        m = next_bit(c->months, 1);
    }
    *t = (civil){t->y, m, 1, 0, 0};
}

static void next_day(civil *t, const ls_cron *c)
{
    if (t->day < days_in_month(t->y, t->mon)) {
        *t = (civil){t->y, t->mon, t->day + 1, 0, 0};
        return;
    }
    next_month(t, c);
}

static int day_matches(const ls_cron *c, const civil *t)
{
    int dom = (int)((c->days >> t->day) & 1u);
    int64_t n = days_from_civil(t->y, t->mon, t->day) + 4; /* 1970-01-01 was a Thursday */
    int64_t wd = n - floor_div(n, 7) * 7;
    int dow = (int)((c->weekdays >> wd) & 1u);
    if (c->flags & (LS_CRON_DOM_STAR | LS_CRON_DOW_STAR)) return dom && dow;
    return dom || dow;
}

static ls_rc next_every(const ls_cron *c, int64_t after_ms, int64_t *next_ms)
{
    int64_t q = floor_div(after_ms, c->every_ms) + 1, r = 0;
    if (__builtin_mul_overflow(q, c->every_ms, &r)) return LS_ENOTFOUND;
    *next_ms = r;
    return LS_OK;
}

ls_rc ls_cron_next(const ls_cron *c, int64_t after_ms, int64_t *next_ms)
{
    if (c->every_ms > 0) return next_every(c, after_ms, next_ms);
    ls_cron valid = *c; /* only the bits of real values, whoever filled *c */
    valid.minutes &= (UINT64_C(1) << 60) - 1;
    valid.hours &= (UINT32_C(1) << 24) - 1;
    valid.days &= UINT32_C(0xfffffffe);
    valid.months &= 0x1ffe;
    valid.weekdays &= 0x7f;
    c = &valid;
    if (!c->minutes || !c->hours || !c->days || !c->months || !c->weekdays) return LS_ENOTFOUND;
    int64_t minute = floor_div(after_ms, MS_PER_MIN) + 1; /* strictly after */
    int64_t day = floor_div(minute, 1440);
    int in_day = (int)(minute - day * 1440);
    civil t = {0, 0, 0, in_day / 60, in_day % 60};
    civil_from_days(day, &t.y, &t.mon, &t.day);
    int64_t last_year = t.y + LS_CRON_SEARCH_YEARS;
    for (;;) {
        if (t.y > last_year) return LS_ENOTFOUND;
        if (!((c->months >> t.mon) & 1u)) {
            t.mon--; /* next_month looks above t.mon */
            next_month(&t, c);
            continue;
        }
        if (!day_matches(c, &t)) {
            next_day(&t, c);
            continue;
        }
        int h = next_bit(c->hours, t.hour);
        if (h < 0) {
            next_day(&t, c);
            continue;
        }
        if (h != t.hour) t = (civil){t.y, t.mon, t.day, h, 0};
        int m = next_bit(c->minutes, t.min);
        if (m < 0) {
            if (t.hour == 23) {
                next_day(&t, c);
            } else {
                t = (civil){t.y, t.mon, t.day, t.hour + 1, 0};
            }
            continue;
        }
        t.min = m;
        break;
    }
    int64_t days = days_from_civil(t.y, t.mon, t.day), mins = 0, ms = 0;
    if (__builtin_mul_overflow(days, 1440, &mins) ||
        __builtin_add_overflow(mins, (int64_t)t.hour * 60 + t.min, &mins) ||
        __builtin_mul_overflow(mins, MS_PER_MIN, &ms))
        return LS_ENOTFOUND;
    *next_ms = ms;
    return LS_OK;
}

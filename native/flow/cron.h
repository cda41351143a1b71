/* SPDX-License-Identifier: MIT
 * Cron expressions of workflow schedules (internal to native/flow/). Pure
 * computation: no clock, no I/O, no allocation (ls_cron_next_in aside).
 *
 * Accepted text (leading and trailing spaces and tabs ignored):
 *   - five fields separated by spaces or tabs:
 *       minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
 *       day-of-week 0-7 or SUN-SAT (0 and 7 are both Sunday)
 *     each a comma-separated list of items: `*`, `N`, `A-B`, `*` + `/S`,
 *     `A-B/S`, and `N/S` (= `N-max/S`, as cronie and robfig/cron read it).
 *     Names are case-insensitive and may end ranges (`MON-FRI`); in
 *     day-of-week a range may end at SUN (`FRI-SUN`). Ranges never wrap
 *     (`5-1` is refused). A step is 1 to the number of values of its field.
 *   - macros (case-insensitive): @yearly = @annually = "0 0 1 1 *",
 *     @monthly = "0 0 1 * *", @weekly = "0 0 * * 0", @daily = @midnight =
 *     "0 0 * * *", @hourly = "0 * * * *".
 *   - `@every DURATION` (ls_duration_parse syntax, at least 1s): fires at
 *     every multiple of the interval since the Unix epoch, so `@every 15m`
 *     fires at :00, :15, :30 and :45 whenever it was defined.
 *
 * Day-of-month and day-of-week follow Vixie cron: when both fields are
 * restricted a day matches if EITHER matches ("0 0 1 * MON" = the 1st and
 * every Monday); when one of them begins with `*` (including `*` + `/2`,
 * Vixie's rule) a day must match both.
 *
 * ls_cron_next works in UTC; ls_cron_next_in (cron_zone.c, with ICU's
 * zones) matches the wall-clock time of a named timezone instead. There,
 * a wall-clock time that occurs twice (clocks going back) fires once, at
 * its first occurrence, and one that does not exist (clocks going forward)
 * fires at the first instant after the jump. `@every` is the same in
 * every zone: multiples of the interval since the epoch.
 */
#ifndef LS_FLOW_CRON_H
#define LS_FLOW_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_err.h"

/* ls_cron_next searches this many years ahead. The Gregorian calendar
 * repeats every 400 years (146097 days, a whole number of weeks), so a
 * 400-year search finds a fire time whenever the expression has one: a
 * sparse one (29 February on a Sunday, with day-of-week a step over `*`
 * so that both days must match) may wait decades. */
#define LS_CRON_SEARCH_YEARS 400

/* Longest text accepted, in bytes. */
#define LS_CRON_MAX_TEXT 256

/* Bits of ls_cron.flags. */
enum {
    LS_CRON_DOM_STAR = 1u << 0, /* day-of-month began with '*' */
    LS_CRON_DOW_STAR = 1u << 1, /* day-of-week began with '*' */
};

/* A parsed expression: a plain value, copy freely, nothing to free. */
typedef struct {
    uint64_t minutes; /* bit m set: minute m fires (0-59) */
    uint32_t hours;   /* bit h: hour h (0-23) */
    uint32_t days;    /* bit d: day-of-month d (1-31) */
    uint16_t months;  /* bit m: month m (1-12) */
    uint8_t weekdays; /* bit w: weekday w (0-6, 0 = Sunday; 7 is folded onto 0) */
    uint8_t flags;    /* LS_CRON_DOM_STAR, LS_CRON_DOW_STAR */
    int64_t every_ms; /* > 0 for `@every`: the interval; the bit sets are then 0 */
} ls_cron;

/* Parses len bytes of text (not NUL-terminated; NULL only when len is 0)
 * into *out. LS_EINVAL on bad input, with a message naming the text, the
 * field and the problem:
 *   cron "0/0 * * * *": minute: step must be at least 1
 * On failure *out is zeroed. */
ls_rc ls_cron_parse(const char *text, size_t len, ls_cron *out, ls_err *err);

/* The first fire time strictly after after_ms (ms since the Unix epoch,
 * UTC) into *next_ms; fire times are whole minutes (whole multiples of the
 * interval for @every). Returns LS_ENOTFOUND, *next_ms untouched, when the
 * expression never fires ("0 0 30 2 *") or the next fire time does not fit
 * in an int64_t. Cost: a few steps per month, hour and day skipped, at most
 * about 150,000 for an expression that never fires. */
ls_rc ls_cron_next(const ls_cron *c, int64_t after_ms, int64_t *next_ms);

/* Longest timezone name accepted, in bytes. */
#define LS_CRON_ZONE_MAX 64

/* LS_OK when name (len bytes) is "UTC" or a zone ICU knows by its IANA
 * name ("Europe/Berlin"); else LS_EINVAL naming it. */
ls_rc ls_cron_zone_check(const char *name, size_t len, ls_err *err);

/* A zone opened for ls_cron_next_tz (ICU's calendar of it). */
typedef struct ls_cron_tz ls_cron_tz;

/* Opens zone (NUL-terminated). NULL or "UTC" gives *out = NULL, which
 * ls_cron_next_tz reads as UTC. LS_EINVAL when the zone is unknown,
 * LS_ENOMEM. One thread at a time per handle; close with ls_cron_tz_close
 * (NULL is fine). */
ls_rc ls_cron_tz_open(const char *zone, ls_cron_tz **out);
void ls_cron_tz_close(ls_cron_tz *tz);

/* ls_cron_next on the wall clock of tz (NULL: UTC, exactly ls_cron_next).
 * LS_ENOTFOUND as ls_cron_next. */
ls_rc ls_cron_next_tz(const ls_cron *c, ls_cron_tz *tz, int64_t after_ms, int64_t *next_ms);

/* ls_cron_next_tz for one call: opens zone, searches, closes. */
ls_rc ls_cron_next_in(const ls_cron *c, const char *zone, int64_t after_ms, int64_t *next_ms);

#endif

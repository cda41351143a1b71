/* SPDX-License-Identifier: MIT
 * Cron fire times in a named timezone (see cron.h), on top of the UTC
 * search in cron.c: the expression is matched against the zone's wall
 * clock, and each matching wall-clock time is turned into an instant with
 * ICU's calendar, which holds the zones and their daylight-saving rules.
 *
 * The search runs on a "floating" clock: the zone's wall-clock time
 * written as if it were UTC. From the wall-clock time at after_ms, the UTC
 * search gives the next matching wall-clock time; ICU turns it into an
 * instant, taking the first occurrence of a time that occurs twice and the
 * first valid instant after a time that does not exist. The first instant
 * later than after_ms is the answer; an earlier one (a repeated hour, seen
 * from its second pass) moves the floating clock on.
 */
#include "ls_config.h"

#include <string.h>
#include <time.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "cron.h"
#include "lodestone/ls_alloc.h"

/* Wall-clock steps tried before giving up: a repeated hour of per-minute
 * fires is 60; far more than any zone's change of offset needs. */
#define MAX_STEPS 10000

static int is_utc(const char *zone)
{
    return zone == NULL || zone[0] == '\0' || strcmp(zone, "UTC") == 0;
}

/* The zone's ICU calendar, or NULL when ICU does not know the name. */
static UCalendar *open_zone(const char *name, size_t len)
{
    UChar id[LS_CRON_ZONE_MAX + 1];
    if (len == 0 || len > LS_CRON_ZONE_MAX) return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7f) return NULL;
        id[i] = (UChar)ch;
    }
    id[len] = 0;
    UErrorCode st = U_ZERO_ERROR;
    UChar canon[128];
    UBool system = 0;
    ucal_getCanonicalTimeZoneID(id, (int32_t)len, canon, 128, &system, &st);
    if (U_FAILURE(st) || !system) return NULL;
    st = U_ZERO_ERROR;
    UCalendar *cal = ucal_open(id, (int32_t)len, "", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) return NULL;
    ucal_setAttribute(cal, UCAL_LENIENT, 1);
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    ucal_setAttribute(cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    return cal;
}

ls_rc ls_cron_zone_check(const char *name, size_t len, ls_err *err)
{
    if (len == 3 && memcmp(name, "UTC", 3) == 0) return LS_OK;
    UCalendar *cal = open_zone(name, len);
    if (cal == NULL)
        return ls_err_set(
            err, LS_EINVAL,
            "timezone: unknown zone \"%.*s\" (an IANA name such as \"Europe/Berlin\", "
            "or \"UTC\")",
            (int)(len > 64 ? 64 : len), name);
    ucal_close(cal);
    return LS_OK;
}

/* The wall-clock time at instant ms, as floating ms; 0 and *ok = 0 on an
 * ICU failure. */
static int64_t wall_at(UCalendar *cal, int64_t ms, int *ok)
{
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(cal, (UDate)ms, &st);
    int32_t zone = ucal_get(cal, UCAL_ZONE_OFFSET, &st);
    int32_t dst = ucal_get(cal, UCAL_DST_OFFSET, &st);
    *ok = U_SUCCESS(st);
    return ms + zone + dst;
}

/* The instant of floating wall-clock time wall (a whole minute), under the
 * rules in open_zone; *ok = 0 on an ICU failure. */
static int64_t instant_of(UCalendar *cal, int64_t wall, int *ok)
{
    time_t s = (time_t)(wall / 1000);
    struct tm tm;
    *ok = gmtime_r(&s, &tm) != NULL;
    if (!*ok) return 0;
    UErrorCode st = U_ZERO_ERROR;
    ucal_clear(cal);
    ucal_setDateTime(cal, tm.tm_year + 1900, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, 0, &st);
    UDate u = ucal_getMillis(cal, &st);
    *ok = U_SUCCESS(st);
    return (int64_t)u;
}

struct ls_cron_tz {
    UCalendar *cal;
};

ls_rc ls_cron_tz_open(const char *zone, ls_cron_tz **out)
{
    *out = NULL;
    if (is_utc(zone)) return LS_OK;
    UCalendar *cal = open_zone(zone, strlen(zone));
    if (cal == NULL) return LS_EINVAL;
    ls_cron_tz *tz = ls_malloc(sizeof *tz);
    if (tz == NULL) {
        ucal_close(cal);
        return LS_ENOMEM;
    }
    tz->cal = cal;
    *out = tz;
    return LS_OK;
}

void ls_cron_tz_close(ls_cron_tz *tz)
{
    if (tz == NULL) return;
    ucal_close(tz->cal);
    ls_free(tz);
}

ls_rc ls_cron_next_tz(const ls_cron *c, ls_cron_tz *tz, int64_t after_ms, int64_t *next_ms)
{
    if (tz == NULL || c->every_ms > 0) return ls_cron_next(c, after_ms, next_ms);
    int ok;
    int64_t cursor = wall_at(tz->cal, after_ms, &ok);
    for (int i = 0; ok && i < MAX_STEPS; i++) {
        int64_t wall;
        if (ls_cron_next(c, cursor, &wall) != LS_OK) break;
        int64_t at = instant_of(tz->cal, wall, &ok);
        if (ok && at > after_ms) {
            *next_ms = at;
            return LS_OK;
        }
        cursor = wall;
    }
    return LS_ENOTFOUND;
}

ls_rc ls_cron_next_in(const ls_cron *c, const char *zone, int64_t after_ms, int64_t *next_ms)
{
    ls_cron_tz *tz;
    ls_rc rc = ls_cron_tz_open(zone, &tz);
    if (rc != LS_OK) return rc;
    rc = ls_cron_next_tz(c, tz, after_ms, next_ms);
    ls_cron_tz_close(tz);
    return rc;
}

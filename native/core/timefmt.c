/* SPDX-License-Identifier: MIT
 * RFC 3339 timestamps in UTC with milliseconds, without locale or locks. */
#include "ls_config.h"

#include "lodestone/ls_clock.h"

static char *put_2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

/* The date comes from
 * days since the epoch by H. Hinnant's civil_from_days, which takes no
 * lock (gmtime_r does); years outside 0..9999 print as 0000-01-01. */
char *ls_time_format(int64_t ms, char *o)
{
    const int64_t max_ms = INT64_C(253402300800000); /* 10000-01-01 */
    const int64_t min_ms = INT64_C(-62167219200000); /* 0000-01-01 */
    if (ms < min_ms || ms >= max_ms) ms = min_ms;
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    unsigned frac = (unsigned)(ms - sec * 1000);
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    unsigned sod = (unsigned)(sec - days * 86400);

    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    unsigned y = (unsigned)(yoe + era * 400 + (m <= 2));

    o = put_2(o, y / 100);
    o = put_2(o, y % 100);
    *o++ = '-';
    o = put_2(o, m);
    *o++ = '-';
    o = put_2(o, d);
    *o++ = 'T';
    o = put_2(o, sod / 3600);
    *o++ = ':';
    o = put_2(o, sod / 60 % 60);
    *o++ = ':';
    o = put_2(o, sod % 60);
    *o++ = '.';
    *o++ = (char)('0' + frac / 100);
    o = put_2(o, frac % 100);
    *o++ = 'Z';
    *o = '\0';
    return o - LS_TIME_TEXTLEN;
}

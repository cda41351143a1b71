/* SPDX-License-Identifier: MIT
 * Parses durations such as "250ms", "10s", "1h30m" or plain seconds. */
#include "ls_config.h"

#include <math.h>
#include <string.h>

#include "lodestone/ls_duration.h"

#define MAX_MS (100.0 * 365 * 24 * 3600 * 1000) /* a century */

static const struct {
    const char *name;
    double ms;
} units[] = {
    /* largest first: a combined duration must list them in this order */
    {"d", 86400000.0}, {"h", 3600000.0}, {"m", 60000.0}, {"s", 1000.0}, {"ms", 1.0},
};
#define NUNITS (sizeof units / sizeof units[0])

static ls_rc bad(ls_err *err, const char *text, size_t len, const char *why)
{
    return ls_err_set(err, LS_EINVAL, "duration \"%.*s\": %s", (int)(len > 40 ? 40 : len), text,
                      why);
}

ls_rc ls_duration_parse(const char *text, size_t len, int64_t *ms, ls_err *err)
{
    if (len == 0) return bad(err, text, len, "empty (write e.g. \"10s\", \"250ms\", \"5m\")");
    double total = 0;
    size_t i = 0;
    size_t last_unit = 0; /* index + 1 of the previous unit */
    while (i < len) {
        if (text[i] == '-') return bad(err, text, len, "must not be negative");
        /* number: digits with an optional fraction */
        size_t start = i;
        double v = 0, scale = 0;
        while (i < len && ((text[i] >= '0' && text[i] <= '9') || (text[i] == '.' && scale == 0))) {
            if (text[i] == '.') {
                scale = 1;
            } else if (scale == 0) {
                v = v * 10 + (text[i] - '0');
            } else {
                scale /= 10;
                v += (text[i] - '0') * scale;
            }
            i++;
        }
        if (i == start || (i == start + 1 && text[start] == '.'))
            return bad(err, text, len, "expected a number");
        /* unit: letters up to the next digit */
        size_t ustart = i;
        while (i < len &&
               ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
            i++;
        size_t ulen = i - ustart;
        if (ulen == 0) {
            if (i != len) return bad(err, text, len, "expected a unit (ms, s, m, h or d)");
            if (last_unit != 0)
                return bad(err, text, len, "a number without a unit must stand alone");
            total += v * 1000.0; /* plain seconds */
            break;
        }
        size_t u;
        for (u = 0; u < NUNITS; u++)
            if (strlen(units[u].name) == ulen && memcmp(units[u].name, text + ustart, ulen) == 0)
                break;
        if (u == NUNITS) return bad(err, text, len, "unknown unit (use ms, s, m, h or d)");
        if (last_unit != 0 && u + 1 <= last_unit)
            return bad(err, text, len, "units must go from largest to smallest, each once");
        last_unit = u + 1;
        total += v * units[u].ms;
    }
    if (total > MAX_MS) return bad(err, text, len, "longer than 100 years");
    *ms = (int64_t)llround(total);
    return LS_OK;
}

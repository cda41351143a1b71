/* SPDX-License-Identifier: MIT
 * libFuzzer: cron expressions (native/flow/cron.c). The input is the
 * expression (byte 0 picks the start time); a parsed expression's next
 * fire time must be after the start, on a whole minute (or interval), and
 * match the fields (Vixie's day rule); a naive minute-by-minute scan of
 * the next two days must find nothing earlier. */
#include "fuzz_common.h"

#include <time.h>

#include "flow/cron.h"

static const int64_t starts[] = {1800000000000LL,
                                 0LL,
                                 -1LL,
                                 951782400000LL /* 2000-02-29 */,
                                 4102444799999LL /* 2099-12-31 23:59:59.999 */,
                                 1700000000123LL,
                                 253402300740000LL /* 9999-12-31 23:59 */,
                                 -62135596800000LL /* year 1 */};

static int matches(const ls_cron *c, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) return 0;
    if (!((c->minutes >> tm.tm_min) & 1) || !((c->hours >> tm.tm_hour) & 1) ||
        !((c->months >> (tm.tm_mon + 1)) & 1))
        return 0;
    int dom = (int)((c->days >> tm.tm_mday) & 1), dow = (int)((c->weekdays >> tm.tm_wday) & 1);
    if ((c->flags & LS_CRON_DOM_STAR) || (c->flags & LS_CRON_DOW_STAR)) return dom && dow;
    return dom || dow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1024) return 0;
    int64_t after = starts[data[0] % 8] + (data[0] / 8) * INT64_C(997);
    data++, size--;
    char *c = fuzz_exact(data, size);
    ls_cron cr;
    ls_err err;
    fuzz_err_poison(&err);
    ls_rc rc = ls_cron_parse(size ? c : NULL, size, &cr, &err);
    free(c);
    if (rc != LS_OK && rc != LS_EINVAL) FUZZ_BUG("parse returned %s", ls_rc_name(rc));
    fuzz_check_err(rc, &err);
    if (rc != LS_OK) {
        if (cr.minutes | cr.hours | cr.days | cr.months | cr.weekdays | cr.flags || cr.every_ms)
            FUZZ_BUG("failed parse left *out non-zero");
        return 0;
    }
    if (size > LS_CRON_MAX_TEXT) FUZZ_BUG("accepted %zu bytes", size);
    if (cr.every_ms < 0) FUZZ_BUG("negative interval");
    if (cr.every_ms == 0 && ((cr.minutes >> 60) || (cr.hours >> 24) || (cr.days & 1) ||
                             (cr.months & 1) || (cr.months >> 13) || (cr.weekdays >> 7) ||
                             !cr.minutes || !cr.hours || !cr.days || !cr.months || !cr.weekdays))
        FUZZ_BUG("bit sets out of range or empty");
    int64_t next = 0;
    rc = ls_cron_next(&cr, after, &next);
    if (rc != LS_OK && rc != LS_ENOTFOUND) FUZZ_BUG("next returned %s", ls_rc_name(rc));
    if (rc == LS_OK) {
        if (next <= after) FUZZ_BUG("next %lld not after %lld", (long long)next, (long long)after);
        if (cr.every_ms) {
            if (next % cr.every_ms != 0) FUZZ_BUG("@every fire time not a multiple");
            if (next - after > cr.every_ms) FUZZ_BUG("@every skipped a fire time");
        } else {
            if (next % 60000 != 0) FUZZ_BUG("fire time not a whole minute");
            if (!matches(&cr, next)) FUZZ_BUG("fire time %lld does not match", (long long)next);
        }
    }
    if (cr.every_ms == 0 && after > -62135596800000LL && after < 253402300740000LL) {
        /* nothing earlier in the next two days */
        int64_t m = after - ((after % 60000) + 60000) % 60000 + 60000;
        if (m <= after) m += 60000;
        for (int i = 0; i < 2 * 1440; i++, m += 60000) {
            if (rc == LS_OK && m >= next) break;
            if (matches(&cr, m))
                FUZZ_BUG("%lld matches before next (%s %lld)", (long long)m, ls_rc_name(rc),
                         (long long)next);
        }
    }
    return 0;
}

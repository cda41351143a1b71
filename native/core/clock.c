/* SPDX-License-Identifier: MIT
 * The system clock and a manual clock for tests, behind ls_clock. */
#include "ls_config.h"

#include <time.h>

#include "lodestone/ls_clock.h"

static int64_t system_wall_ms(const ls_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t system_mono_ns(const ls_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const ls_clock system_clock = {system_wall_ms, system_mono_ns, NULL};

const ls_clock *ls_clock_system(void)
{
    return &system_clock;
}

int64_t ls_clock_wall_ms(const ls_clock *c)
{
    if (c == NULL) c = &system_clock;
    return c->wall_ms(c);
}

int64_t ls_clock_mono_ns(const ls_clock *c)
{
    if (c == NULL) c = &system_clock;
    return c->mono_ns(c);
}

/* ---- manual clock ---- */

static int64_t manual_wall_ms(const ls_clock *c)
{
    return ((const ls_manual_clock *)c)->wall_ms;
}

static int64_t manual_mono_ns(const ls_clock *c)
{
    return ((const ls_manual_clock *)c)->mono_ns;
}

void ls_manual_clock_init(ls_manual_clock *mc, int64_t wall_ms)
{
    mc->clock.wall_ms = manual_wall_ms;
    mc->clock.mono_ns = manual_mono_ns;
    mc->clock.ud = NULL;
    mc->wall_ms = wall_ms;
    mc->mono_ns = 0;
}

void ls_manual_clock_advance(ls_manual_clock *mc, int64_t ms)
{
    mc->wall_ms += ms;
    mc->mono_ns += ms * 1000000;
}

/* SPDX-License-Identifier: MIT
 * Clocks behind one small interface, so code that reads time can be given a
 * fake one in tests. A NULL clock pointer means the system clock everywhere.
 */
#ifndef LODESTONE_CLOCK_H
#define LODESTONE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ls_clock {
    int64_t (*wall_ms)(const struct ls_clock *c); /* ms since the Unix epoch */
    int64_t (*mono_ns)(const struct ls_clock *c); /* ns, only differences matter */
    void *ud;                                     /* for the implementation */
} ls_clock;

/* The process-wide system clock (CLOCK_REALTIME, CLOCK_MONOTONIC). Static,
 * never freed. */
LS_API const ls_clock *ls_clock_system(void);

/* Read a clock; c NULL reads the system clock. */
LS_API int64_t ls_clock_wall_ms(const ls_clock *c);
LS_API int64_t ls_clock_mono_ns(const ls_clock *c);

/* A clock that moves only when told to, for tests. Embed it by value; its
 * `clock` member is what other calls take. */
typedef struct {
    ls_clock clock;
    int64_t wall_ms;
    int64_t mono_ns;
} ls_manual_clock;

/* Starts the manual clock at wall_ms (mono starts at 0). */
LS_API void ls_manual_clock_init(ls_manual_clock *mc, int64_t wall_ms);

/* Moves both wall and monotonic time forward by ms (ms may be 0). */
LS_API void ls_manual_clock_advance(ls_manual_clock *mc, int64_t ms);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) for ms since the epoch, written to out
 * with a terminating NUL (LS_TIME_TEXTLEN + 1 bytes). Takes no lock.
 * Returns out. Years outside 0..9999 print as 0000-01-01. */
#define LS_TIME_TEXTLEN 24
LS_API char *ls_time_format(int64_t ms, char *out);

#ifdef __cplusplus
}
#endif
#endif

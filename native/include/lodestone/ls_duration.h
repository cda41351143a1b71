/* SPDX-License-Identifier: MIT
 * Durations as users write them in policies and workflows: a number of
 * seconds ("30", "1.5") or a number with a unit: "250ms", "10s", "5m", "2h",
 * "1d". Units may be combined largest first ("1h30m").
 */
#ifndef LODESTONE_DURATION_H
#define LODESTONE_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses len bytes of text into milliseconds. Fractions are allowed
 * ("1.5s" = 1500 ms) and rounded to the nearest millisecond. Errors
 * (LS_EINVAL) name the text and what was wrong: empty, negative, unknown
 * unit, units out of order, or over 100 years. */
LS_API ls_rc ls_duration_parse(const char *text, size_t len, int64_t *ms, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

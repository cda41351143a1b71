/* SPDX-License-Identifier: MIT
 * lodestoned's log: one JSON object per line on stderr, in UTF-8, each
 * written whole under a lock so that lines from threads never interleave
 * (also through a pipe, which keeps only 4 KiB writes together):
 *   {"ts":"2026-11-26T11:44:46.123Z","level":"info","msg":"...","run":"..."}
 */
#ifndef LSD_LOG_H
#define LSD_LOG_H

#include "lodestone/ls_flow.h"

/* Lines below level are dropped (LS_FLOW_LOG_*). */
void lsd_log_set_level(int level);

/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int lsd_log_level_parse(const char *s);

void lsd_log(int level, const char *run, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The engine's log sink (ls_flow_opts.log). */
void lsd_log_sink(void *ud, int level, const char *run, const char *msg);

#endif

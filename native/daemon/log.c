/* SPDX-License-Identifier: MIT
 * JSON-lines log on stderr (see log.h).
 */
#include "ls_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lodestone/ls_clock.h"
#include "log.h"

static int min_level = LS_FLOW_LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error"};

void lsd_log_set_level(int level)
{
    min_level = level;
}

int lsd_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Appends s as a JSON string body (no quotes) to out at *n, bounded. */
static void put_escaped(char *out, size_t cap, size_t *n, const char *s)
{
    for (; *s && *n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
        } else {
            out[(*n)++] = (char)c;
        }
    }
}

static void emit(int level, const char *run, const char *msg)
{
    char line[4096];
    char ts[LS_TIME_TEXTLEN + 1];
    size_t n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                                ls_time_format(ls_clock_wall_ms(NULL), ts),
                                names[level < 0   ? 0
                                      : level > 3 ? 3
                                                  : level]);
    put_escaped(line, sizeof line - 16, &n, msg);
    line[n++] = '"';
    if (run) {
        memcpy(line + n, ",\"run\":\"", 8);
        n += 8;
        put_escaped(line, sizeof line - 8, &n, run);
        line[n++] = '"';
    }
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void lsd_log(int level, const char *run, const char *fmt, ...)
{
    if (level < min_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, run, msg);
}

void lsd_log_sink(void *ud, int level, const char *run, const char *msg)
{
    (void)ud;
    if (level < min_level) return;
    emit(level, run, msg);
}

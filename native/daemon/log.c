/* SPDX-License-Identifier: MIT
 * JSON-lines log on stderr (see log.h).
 */
#include "ls_config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lodestone/ls_clock.h"
#include "ls_json.h"
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

/* Appends s as a JSON string body (no quotes) to out at *n, bounded: a
 * byte that starts no valid UTF-8 sequence (text a workflow or a file
 * gave) is written as U+FFFD, so that every line is JSON. */
static void put_escaped(char *out, size_t cap, size_t *n, const char *s)
{
    size_t left = strlen(s);
    while (left > 0 && *n + 7 < cap) {
        unsigned char c = (unsigned char)*s;
        size_t len = c < 0x80 ? 1 : ls_json_utf8_seq(s, left);
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
        } else if (len == 0) {
            memcpy(out + *n, "\\ufffd", 6);
            *n += 6;
            len = 1;
        } else {
            if (*n + len + 7 >= cap) break; /* (never half a character) */
            memcpy(out + *n, s, len);
            *n += len;
        }
        s += len;
        left -= len;
    }
}

/* How many bytes put_escaped writes for s, at most. */
static size_t escaped_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        n += c == '"' || c == '\\' ? 2 : c < 0x20 || c >= 0x80 ? 6 : 1;
    }
    return n;
}

/* Writes a line whole: a pipe (systemd's journal, a log shipper) keeps
 * one write together only up to PIPE_BUF (4 KiB), and lines reach 8 KiB
 * and more, so the threads take turns; a short write goes on where it
 * stopped. */
static void write_line(const char *line, size_t n)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* (nowhere else to say so) */
        line += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&mu);
}

static void emit(int level, const char *run, const char *msg)
{
    /* A run's own line (ls_flow_act_log) is up to LS_FLOW_LOG_LINEMAX
     * bytes and its mark, more once escaped: a line longer than the stack
     * buffer gets one of its size, and goes out whole in one write (lines
     * of several threads must not mix). Without memory, it is cut. */
    char small[4096];
    size_t cap = 128 + escaped_len(msg) + (run ? 16 + escaped_len(run) : 0);
    char *line = cap > sizeof small ? malloc(cap) : NULL;
    if (line == NULL) {
        line = small;
        cap = sizeof small;
    }
    char ts[LS_TIME_TEXTLEN + 1];
    size_t n = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                                ls_time_format(ls_clock_wall_ms(NULL), ts),
                                names[level < 0   ? 0
                                      : level > 3 ? 3
                                                  : level]);
    put_escaped(line, cap - 16, &n, msg);
    line[n++] = '"';
    if (run) {
        memcpy(line + n, ",\"run\":\"", 8);
        n += 8;
        put_escaped(line, cap - 8, &n, run);
        line[n++] = '"';
    }
    line[n++] = '}';
    line[n++] = '\n';
    write_line(line, n);
    if (line != small) free(line);
}

/* lodestoned's own messages: as long as they come (a list of loaded
 * workflow types and load errors grows with the files) up to LOG_MSGMAX
 * bytes, which are cut where a character starts, saying so. */
#define LOG_MSGMAX ((size_t)1 << 20)

void lsd_log(int level, const char *run, const char *fmt, ...)
{
    if (level < min_level) return;
    enum { MARK = 64 }; /* room for the cut's mark */
    char small[2048], *msg = small, *big = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    size_t kept = (size_t)len;
    if (kept >= sizeof small) {
        kept = kept < LOG_MSGMAX ? kept : LOG_MSGMAX;
        /* One byte past what is kept, to tell whether the cut falls
         * inside a character. */
        big = malloc(kept + 1 + MARK);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, kept + 2, fmt, ap);
            va_end(ap);
            msg = big;
        } else {
            kept = sizeof small - MARK;
        }
    }
    if ((size_t)len > kept) {
        kept = ls_utf8_cut(msg, kept);
        snprintf(msg + kept, MARK, " [cut: %zu bytes dropped]", (size_t)len - kept);
    }
    emit(level, run, msg);
    free(big);
}

void lsd_log_sink(void *ud, int level, const char *run, const char *msg)
{
    (void)ud;
    if (level < min_level) return;
    emit(level, run, msg);
}

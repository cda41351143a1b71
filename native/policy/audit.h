/* SPDX-License-Identifier: MIT
 * Audit log of policy decisions (internal to ls_policy): one JSON object per
 * line, buffered in memory and appended with one write() per flush, so a
 * record is never split and several processes (lighttpd workers) can share
 * one file. Survives logrotate by reopening when the file is moved or on
 * request. Errors on the request path are counted, never raised.
 *
 * A line looks like (keys always in this order):
 *   {"time":"2026-11-26T09:30:01.123Z","request_id":"r1","method":"GET",
 *    "path":"/orders/7","client":"10.0.0.5","subject":"alice",
 *    "policy":"orders-api","rule":"rules[4]","decision":"deny",
 *    "status":403,"reason":"missing_scope","decision_us":12.5}
 * String fields that are NULL are left out (a reader sees them as absent),
 * as are status 0 and a negative decision_us; time and decision are always
 * there. Strings are escaped by our own escaper: quote, backslash and
 * control characters (and DEL, U+2028, U+2029) become escapes, each byte of
 * invalid UTF-8 becomes \ufffd, and a field longer than
 * LS_AUDIT_FIELD_MAX bytes is cut at a character boundary and ends in
 * "\u2026": the line is always valid JSON on one line.
 *
 * Never a secret: the record has no field for a token, key, password or
 * header, and the caller must pass the path without its query string (where
 * API keys travel) and must not put credentials in request_id or subject.
 *
 * Pending records wait for the next write, tick, flush or close; a caller
 * that can go quiet for long should call ls_audit_tick from a timer. One
 * thread per writer (lighttpd workers are single-threaded processes), and
 * one process: open the writer after fork, or records pending at the fork
 * would be written twice. Give an absolute path: it is stat()ed again to
 * notice rotation.
 */
#ifndef LS_POLICY_AUDIT_H
#define LS_POLICY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_clock.h"
#include "lodestone/ls_err.h"

#define LS_AUDIT_BUFFER_DEFAULT   ((size_t)64 * 1024)
#define LS_AUDIT_INTERVAL_DEFAULT 1000 /* ms */
#define LS_AUDIT_FIELD_MAX        8192 /* input bytes per string field */

typedef struct ls_audit ls_audit_t;

/* Options; zero values mean the defaults. */
typedef struct {
    const ls_clock *clock;     /* NULL: the system clock; borrowed until close */
    size_t buffer_size;        /* flush when this many bytes are pending */
    int64_t flush_interval_ms; /* flush when this long passed since the last */
    unsigned mode;             /* file mode when created, before umask: 0640 */
    int background;            /* 1: a thread flushes every flush_interval_ms, so
                                  records reach the file even when idle */
} ls_audit_opts;

typedef enum { LS_AUDIT_DENY = 0, LS_AUDIT_ALLOW = 1 } ls_audit_decision;

/* One decision. Strings are NUL-terminated, may be NULL, and are borrowed
 * for the call only. */
typedef struct {
    int64_t time_ms; /* wall time of the request; 0: now, from the clock */
    const char *request_id;
    const char *method;
    const char *path; /* without the query string */
    const char *client;
    const char *subject;
    const char *policy;
    const char *rule;
    ls_audit_decision decision;
    int status;         /* HTTP status; 0: left out */
    const char *reason; /* "missing_scope", ... */
    double decision_us; /* negative: left out */
} ls_audit_record;

typedef struct {
    uint64_t records;      /* records accepted into the buffer */
    uint64_t bytes;        /* bytes written to the file */
    uint64_t flushes;      /* successful write() calls */
    uint64_t write_errors; /* failed or short write() calls, failed reopens */
    uint64_t dropped;      /* records lost to errors */
    uint64_t reopens;      /* successful reopens (on request or after a move) */
    int last_errno;        /* of the last failed write or reopen; -1: a short write */
} ls_audit_stats;

/* Opens (creating it if needed, O_APPEND) the log at path and allocates the
 * buffer. opts may be NULL. Errors: LS_EPERM when the file or its directory
 * may not be written, LS_EIO for other failures (message names the path),
 * LS_EINVAL, LS_ENOMEM. Caller frees with ls_audit_close. */
ls_rc ls_audit_open(ls_audit_t **out, const char *path, const ls_audit_opts *opts, ls_err *err);

/* Flushes what is pending and closes; NULL does nothing. */
void ls_audit_close(ls_audit_t *a);

/* Formats r and adds it to the buffer; flushes first when the record would
 * take the buffer past its size, and afterwards when flush_interval_ms has
 * passed since the last flush (a record larger than the buffer is written
 * on its own). Never fails on I/O: write errors are counted in the stats.
 * Returns LS_ENOMEM (record dropped, counted) only when the buffer had to
 * grow for a huge record and could not. */
ls_rc ls_audit_write(ls_audit_t *a, const ls_audit_record *r, ls_err *err);

/* Flushes when flush_interval_ms has passed since the last flush; for
 * callers with a timer or an idle hook. Cheap when nothing is due. */
void ls_audit_tick(ls_audit_t *a);

/* Writes what is pending now. Returns LS_EIO (err set, counted) when the
 * write failed; the pending records are then dropped. */
ls_rc ls_audit_flush(ls_audit_t *a, ls_err *err);

/* Flushes what is pending to the current file, then opens the path again
 * (for SIGHUP after logrotate). On failure the old file stays in use and
 * LS_EIO/LS_EPERM is returned. */
ls_rc ls_audit_reopen(ls_audit_t *a, ls_err *err);

/* Asks for a reopen at the next write, tick or flush. Only sets a flag, so
 * it is safe to call from a signal handler. */
void ls_audit_request_reopen(ls_audit_t *a);

/* Copies the counters. */
void ls_audit_get_stats(const ls_audit_t *a, ls_audit_stats *st);

/* The path the log was opened at: borrowed until ls_audit_close. */
const char *ls_audit_path(const ls_audit_t *a);

/* Appends r as one JSON line (with '\n') to out, stamped with time_ms
 * (used when r->time_ms is 0). The formatter behind ls_audit_write, for
 * tests and the offline CLI. Errors: LS_ENOMEM. */
ls_rc ls_audit_format(const ls_audit_record *r, int64_t time_ms, ls_buf *out, ls_err *err);

#endif

/* SPDX-License-Identifier: MIT
 * Lodestone error values: one code per failure, with optional detail text.
 *
 * Conventions for every Lodestone header:
 *  - Fallible calls return ls_rc and take `ls_err *err` as their last
 *    parameter. err may be NULL; on failure it receives the code and a
 *    message naming what was wrong. On success it is left untouched.
 *  - errno never crosses the API; system errors become LS_EIO with text.
 *  - "Caller frees with X" and "Borrowed until Y" describe ownership.
 */
#ifndef LODESTONE_ERR_H
#define LODESTONE_ERR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef LS_API
#define LS_API __attribute__((visibility("default")))
#endif

#if defined(__GNUC__)
#define LS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define LS_PRINTF(fmt, args)
#endif

/* Result codes. New codes are only ever appended. */
typedef enum {
    LS_OK = 0,
    LS_ENOTFOUND, /* key, file or name absent: not always an error */
    LS_EINVAL,    /* bad argument or malformed input */
    LS_ENOMEM,    /* allocation failed */
    LS_EIO,       /* operating system or storage I/O failure */
    LS_ECORRUPT,  /* stored data is damaged */
    LS_EAUTH,     /* authentication failed: MAC, signature, key mismatch */
    LS_EDENIED,   /* a policy denied the request */
    LS_EBUSY,     /* resource held by someone else (e.g. a locked store) */
    LS_EPERM,     /* unsafe or insufficient permissions (e.g. key file mode) */
    LS_EFORMAT,   /* data in a format or version this build does not know */
    LS_EEXIST,    /* already exists */
    LS_ENONDET,   /* a workflow's code diverged from its recorded history */
    LS_ESTATE     /* not allowed in the object's state (e.g. signalling a finished run) */
} ls_rc;

#define LS_ERR_MSGMAX 1024

/* Error detail on the caller's stack; never freed. */
typedef struct {
    ls_rc code;
    char msg[LS_ERR_MSGMAX];
} ls_err;

/* Fixed English text for a code ("not found"); never NULL. */
LS_API const char *ls_strerror(ls_rc rc);

/* Symbolic name of a code without the LS_ prefix ("ENOTFOUND"); never NULL.
 * Used by the Lua binding as the third return value of a failure. */
LS_API const char *ls_rc_name(ls_rc rc);

/* Fills err (if not NULL) with code and a formatted message, truncated to
 * fit. Returns code, so a failing path can `return ls_err_set(...)`. */
LS_API ls_rc ls_err_set(ls_err *err, ls_rc code, const char *fmt, ...) LS_PRINTF(3, 4);
#ifdef __clang_analyzer__
/* For clang's static analyser only, which cannot look into err.c: spells out
 * that the result is code, so `return ls_err_set(...)` is never read as LS_OK. */
#define ls_err_set(err, code, ...) ((ls_err_set)((err), (code), __VA_ARGS__), (ls_rc)(code))
#endif

/* Puts "prefix: " in front of err's message (if err is not NULL), keeping
 * the code. Returns err's code (LS_OK when err is NULL). Used to add context
 * ("store /var/x: ...") when passing an error up. */
LS_API ls_rc ls_err_prefix(ls_err *err, const char *fmt, ...) LS_PRINTF(2, 3);

/* Adds context to err (which may be NULL) and evaluates to rc, for
 * `return LS_ERR_PREFIXED(rc, err, "file %s", path);`. Use it rather than
 * returning ls_err_prefix's value, which is LS_OK when err is NULL. */
#define LS_ERR_PREFIXED(rc, err, ...) (ls_err_prefix((err), __VA_ARGS__), (rc))

/* Message of err, or the code's fixed text when the message is empty. */
LS_API const char *ls_err_text(const ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

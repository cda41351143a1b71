/* SPDX-License-Identifier: MIT
 * HTTP Basic authentication (RFC 7617) against a password file of argon2id
 * hashes, with a bounded cache of recent successes: argon2id is slow on
 * purpose (tens of milliseconds at the interactive limits), so a client
 * that sends the same credentials on every request pays for it once per
 * cache lifetime, and a cached check costs about a microsecond.
 *
 * Password file format (text, like htpasswd but argon2id only):
 *
 *   # comment
 *   <user>:$argon2id$v=19$m=<KiB>,t=<passes>,p=1$<salt>$<hash>
 *
 *  - Lines end with LF; a CR before the LF is ignored. Blank lines and
 *    lines whose first non-blank character is '#' are ignored. Leading and
 *    trailing spaces and tabs are ignored.
 *  - <user>: 1 to 255 printable ASCII characters (0x21 to 0x7e) other than
 *    ':'. Each user appears once.
 *  - The hash is a libsodium crypto_pwhash_str string (argon2id, version
 *    19, one lane), at most 1 GiB of memory (m <= 1048576) and 64 passes.
 *    Other formats (htpasswd MD5 "$apr1$", bcrypt "$2y$", "{SHA}", crypt,
 *    argon2i) are refused with the line and the format named: rehash with
 *    ls_basic_hash_password (`lodestone` CLI).
 *  - At most 16 MiB per file.
 *
 * Timing: verifying an unknown user runs argon2id against a dummy hash with
 * the parameters of the file's first user (the interactive limits when the
 * file is empty), so a failure takes the same time whether or not the user
 * exists. A cache hit is fast only for credentials that were right before.
 * Failures are never cached. Each argon2id run costs its memory limit in
 * RAM and its time in CPU: put a rate limit in front of Basic auth.
 *
 * Threads: verification updates the set's cache and uses its scratch
 * memory, so a set is for one thread at a time (mod_magnet: one set per Lua
 * state). Loading and freeing distinct sets from several threads is fine.
 *
 * Conventions: see ls_err.h. Format errors are LS_EFORMAT with "line N:"
 * (prefixed with the path when loading a file).
 */
#ifndef LODESTONE_BASIC_H
#define LODESTONE_BASIC_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LS_BASIC_CACHE_TTL_DEFAULT_MS  300000 /* 5 minutes */
#define LS_BASIC_CACHE_ENTRIES_DEFAULT 1024u
#define LS_BASIC_CACHE_ENTRIES_MAX     65536u
#define LS_BASIC_NO_CACHE              (-1)  /* cache_ttl_ms value that turns the cache off */
#define LS_BASIC_HEADER_MAX            4096u /* longest Authorization value accepted */

typedef struct ls_basic_set ls_basic_set_t;

typedef struct {
    int64_t cache_ttl_ms;  /* 0: LS_BASIC_CACHE_TTL_DEFAULT_MS; LS_BASIC_NO_CACHE: off.
                              An entry expires ttl after the argon2id check that
                              made it; hits do not extend it. */
    size_t cache_entries;  /* 0: LS_BASIC_CACHE_ENTRIES_DEFAULT; rounded up to a
                              power of two, at most LS_BASIC_CACHE_ENTRIES_MAX */
    const ls_clock *clock; /* NULL: system clock. Borrowed until the set is freed. */
} ls_basic_opts;

/* Counters since the set was made. */
typedef struct {
    uint64_t cache_hits;      /* verifications answered from the cache */
    uint64_t cache_misses;    /* verifications that had to run argon2id */
    uint64_t cache_evictions; /* live entries pushed out to make room */
    uint64_t pwhash_calls;    /* argon2id verifications run (dummy ones included) */
} ls_basic_stats;

/* Parses len bytes of password file text. opts may be NULL (defaults).
 * Caller frees with ls_basic_free; *out is NULL on failure. */
LS_API ls_rc ls_basic_parse(ls_basic_set_t **out, const char *text, size_t len,
                            const ls_basic_opts *opts, ls_err *err);

/* Reads and parses a password file. LS_ENOTFOUND when it does not exist,
 * LS_EPERM when it is not a regular file or group or others may write it,
 * LS_EIO when it cannot be read, LS_EFORMAT as for ls_basic_parse. Errors
 * start with the path. Caller frees with ls_basic_free. */
LS_API ls_rc ls_basic_load(ls_basic_set_t **out, const char *path, const ls_basic_opts *opts,
                           ls_err *err);

/* Frees a set and wipes its cache; set may be NULL. */
LS_API void ls_basic_free(ls_basic_set_t *set);

/* Number of users. */
LS_API size_t ls_basic_count(const ls_basic_set_t *set);

/* Checks an Authorization header value, "Basic <base64(user:password)>".
 * The scheme is case-insensitive and followed by one or more spaces; the
 * credentials are padded base64 (RFC 4648 section 4); the user ends at the
 * first ':' and the password is everything after it (any bytes).
 * Surrounding spaces and tabs are ignored. Returns LS_OK with *user set
 * (Borrowed until the set is freed), LS_EAUTH (unknown user or wrong
 * password; err says which, without echoing the presented user), or
 * LS_EINVAL when the header is NULL, longer than LS_BASIC_HEADER_MAX, not
 * Basic, not base64 or has no ':'. The decoded credentials live in
 * sodium_malloc memory and are wiped before returning. */
LS_API ls_rc ls_basic_verify(ls_basic_set_t *set, const char *header, size_t len, const char **user,
                             ls_err *err);

/* The check behind ls_basic_verify, for credentials from elsewhere:
 * ulen bytes of user and plen bytes of password. Same results, without
 * the header errors. */
LS_API ls_rc ls_basic_verify_password(ls_basic_set_t *set, const char *user, size_t ulen,
                                      const void *password, size_t plen, const char **user_out,
                                      ls_err *err);

/* Copies the set's counters into *out. */
LS_API void ls_basic_get_stats(const ls_basic_set_t *set, ls_basic_stats *out);

/* ---- writing password files ---- */

/* Appends the argon2id hash string of len bytes of password to out (no
 * newline). opslimit 0 and memlimit 0 mean libsodium's interactive limits
 * (crypto_pwhash_OPSLIMIT_INTERACTIVE, _MEMLIMIT_INTERACTIVE: 2 passes,
 * 64 MiB); values under libsodium's minimum (1 pass, 8 KiB) or over what
 * the loader accepts (64 passes, 1 GiB) give LS_EINVAL; LS_ENOMEM when
 * argon2id cannot get its memory. */
LS_API ls_rc ls_basic_hash_password(const void *password, size_t len, uint64_t opslimit,
                                    size_t memlimit, ls_buf *out, ls_err *err);

/* Appends a whole password file line, "<user>:<hash>\n". LS_EINVAL when
 * user (NUL-terminated) breaks the grammar above. */
LS_API ls_rc ls_basic_hash_line(const char *user, const void *password, size_t len,
                                uint64_t opslimit, size_t memlimit, ls_buf *out, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

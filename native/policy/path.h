/* SPDX-License-Identifier: MIT
 * Request path normalisation for the policy engine (internal to ls_policy).
 * Rules match the normalised path, so that no encoding or dot-segment trick
 * (/admin/../admin, /x/%2e%2e/admin, //admin, /./admin) reaches a route
 * other than the one the backend will serve. lighttpd already decodes and
 * simplifies uri.path; this is done again as defence in depth. */
#ifndef LS_POLICY_PATH_H
#define LS_POLICY_PATH_H

#include <stddef.h>

#include "lodestone/ls_buf.h"
#include "lodestone/ls_err.h"

/* Longest raw path accepted, in bytes. */
#define LS_PATH_MAX 8192

/* Normalises len bytes of a request path (without the query string) into
 * out, replacing its contents (out is caller-owned and reused; no
 * allocation once it has grown to the path's length). The result is
 * NUL-terminated, never longer than the input, and:
 *  - starts with '/' (an input that does not is LS_EINVAL);
 *  - has every %XX escape decoded once; a malformed escape ("%zz", "%2")
 *    is LS_EINVAL, and so is a decoded NUL, '/' ("encoded slash") or '\',
 *    so no encoding changes the segment structure;
 *  - rejects a literal NUL, '\' (a separator to some backends), '?' or '#'
 *    (the caller passed a query or fragment);
 *  - has repeated slashes collapsed and "." and ".." segments resolved
 *    (".." above the root is LS_EINVAL); a "." or ".." segment carrying
 *    parameters (";x", which some servers strip) is LS_EINVAL too;
 *  - keeps a trailing slash as given ("/a/" stays "/a/"); a final "." or
 *    ".." leaves one, as RFC 3986 does ("/a/b/.." is "/a/"). Rules do not
 *    distinguish "/a" from "/a/" (see rules.h).
 * Matching is case-sensitive, as lighttpd's is on Linux. Paths longer than
 * LS_PATH_MAX are LS_EINVAL. On failure out is left empty. raw must not
 * point into out. */
ls_rc ls_path_normalize(const char *raw, size_t len, ls_buf *out, ls_err *err);

/* Decodes one path segment (no '/' in src) into dst, which has room for
 * len bytes, with the escape and character rules of ls_path_normalize.
 * *dlen receives the decoded length. Errors name the byte offset as
 * base + position in src. Shared with the rule compiler, which decodes
 * patterns the same way. */
ls_rc ls_path_decode_segment(const char *src, size_t len, char *dst, size_t *dlen, size_t base,
                             ls_err *err);

#endif

/* SPDX-License-Identifier: MIT
 * API keys checked against a key file of keyed BLAKE2b-256 hashes: the file
 * never holds a usable key, and a verification costs one BLAKE2b, one hash
 * table probe and a constant-time comparison. A loaded set is immutable:
 * any number of threads may verify against it at once; to pick up a
 * changed file, load a new set and free the old one.
 *
 * Key file format (text; every field is printable ASCII):
 *
 *   # comment
 *   lodestone-apikeys 1 <hashing key>
 *   <hash> <subject> [roles=<list>] [scopes=<list>]
 *
 *  - Lines end with LF; a CR before the LF is ignored. Blank lines (spaces
 *    and tabs only) and lines whose first non-blank character is '#' are
 *    ignored anywhere; there are no comments at the end of a line.
 *  - Fields are separated by one or more spaces or tabs; leading and
 *    trailing blanks are ignored.
 *  - The first other line is the header: the word "lodestone-apikeys", the
 *    format version 1, and the hashing key: 32 bytes in padded base64 (44
 *    characters). Every further line is an entry.
 *  - <hash> is BLAKE2b-256 of the key exactly as presented (all its bytes,
 *    any "lsk_" prefix included) keyed with the hashing key, as 64
 *    lower-case hex digits. Two entries may not have the same hash.
 *  - <subject>: 1 to 256 printable ASCII characters other than blanks (0x21
 *    to 0x7e). Several entries may share a subject (key rotation).
 *  - roles= and scopes= may each appear once, in either order. <list> is
 *    one or more names separated by commas (no blanks); a name is 1 to 128
 *    printable ASCII characters other than blanks and ','. No other fields
 *    are allowed.
 *  - At most 64 MiB per file.
 *
 * About the hashing key: it sits in the same file as the hashes, so it is
 * not a secret pepper kept apart from them. It is a per-file salt: the same
 * API key hashes differently in every file, and the hashes cannot be
 * checked against a key list without this file. What protects the keys is
 * their own strength: generated keys carry 256 random bits, so a leaked
 * file does not give them away. The file may therefore be readable by the
 * web server, but must not be writable by group or others (anyone who can
 * write it can add a key): loading refuses such a file (LS_EPERM).
 *
 * Conventions: see ls_err.h. Format errors are LS_EFORMAT with "line N:"
 * (prefixed with the path when loading a file).
 */
#ifndef LODESTONE_APIKEY_H
#define LODESTONE_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A generated key: "lsk_" and 32 random bytes in unpadded base64url. */
#define LS_APIKEY_KEY_LEN  47u /* characters */
#define LS_APIKEY_KEY_SIZE 48u /* with the trailing NUL: size of key_out below */
LS_API size_t ls_apikey_key_size(void);

/* Presented keys longer than this are refused without hashing. */
#define LS_APIKEY_MAX_LEN 1024u

/* Keys added with ls_apikey_hash_line must be at least this long. */
#define LS_APIKEY_MIN_LEN 16u

typedef struct ls_apikey_set ls_apikey_set_t;

/* One entry of a set, as verification returns it. The entry and every
 * pointer in it: Borrowed until the set is freed. */
typedef struct {
    const char *subject;
    const char *const *roles; /* nroles names, each NUL-terminated */
    size_t nroles;
    const char *const *scopes; /* nscopes names */
    size_t nscopes;
    const char *key_id; /* first 16 hex digits of the stored hash: names the key
                           in audit logs without revealing it */
    size_t line;        /* line of the entry in the key file */
} ls_apikey_entry;

/* Parses len bytes of key file text (see above). Caller frees with
 * ls_apikey_free; *out is NULL on failure. */
LS_API ls_rc ls_apikey_parse(ls_apikey_set_t **out, const char *text, size_t len, ls_err *err);

/* Reads and parses a key file. LS_ENOTFOUND when it does not exist, LS_EPERM
 * when it is not a regular file or group or others may write it, LS_EIO when
 * it cannot be read, LS_EFORMAT as for ls_apikey_parse. Errors start with
 * the path. Caller frees with ls_apikey_free. */
LS_API ls_rc ls_apikey_load(ls_apikey_set_t **out, const char *path, ls_err *err);

/* Frees a set; set may be NULL. Entries it returned become invalid. */
LS_API void ls_apikey_free(ls_apikey_set_t *set);

/* Number of entries. */
LS_API size_t ls_apikey_count(const ls_apikey_set_t *set);

/* Looks up len bytes of a presented key. LS_OK with *match set (Borrowed
 * until the set is freed) when some entry's hash matches; LS_EAUTH when
 * none does, or when len is 0 or over LS_APIKEY_MAX_LEN; LS_EINVAL for a
 * NULL set or match. Never allocates. */
LS_API ls_rc ls_apikey_verify(const ls_apikey_set_t *set, const void *key, size_t len,
                              const ls_apikey_entry **match, ls_err *err);

/* ---- writing key files (for `lodestone policy hash-key`) ---- */

/* Appends a header line for a new key file, "lodestone-apikeys 1
 * <base64>\n", with a fresh random hashing key. */
LS_API ls_rc ls_apikey_new_file_header(ls_buf *out, ls_err *err);

/* What to put after the hash on a new entry line. */
typedef struct {
    const char *subject; /* required; the grammar above */
    const char *roles;   /* comma-separated list, or NULL/"" for none */
    const char *scopes;  /* comma-separated list, or NULL/"" for none */
} ls_apikey_spec;

/* Appends to line_out the entry line, ending in "\n", that lets keylen
 * bytes of key authenticate as spec, for the key file whose text is
 * file_text (the whole current file, or only a header made by
 * ls_apikey_new_file_header). The file text is parsed in full first, so a
 * broken file is reported (LS_EFORMAT) rather than appended to. LS_EINVAL
 * when spec breaks the grammar or the key is shorter than
 * LS_APIKEY_MIN_LEN or longer than LS_APIKEY_MAX_LEN; LS_EEXIST when the
 * file already holds this key. */
LS_API ls_rc ls_apikey_hash_line(const char *file_text, size_t text_len, const void *key,
                                 size_t keylen, const ls_apikey_spec *spec, ls_buf *line_out,
                                 ls_err *err);

/* Generates a new random key into key_out (NUL-terminated, LS_APIKEY_KEY_LEN
 * characters) and appends its entry line to line_out as ls_apikey_hash_line
 * does. key_out is a caller array so that it can live in memory the caller
 * wipes; the random bytes behind it are wiped here. On failure key_out is
 * zeroed. */
LS_API ls_rc ls_apikey_generate(const char *file_text, size_t text_len, const ls_apikey_spec *spec,
                                char key_out[LS_APIKEY_KEY_SIZE], ls_buf *line_out, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

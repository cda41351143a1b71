/* SPDX-License-Identifier: MIT
 * API key sets: a key file of keyed BLAKE2b-256 hashes (format in
 * ls_apikey.h), parsed once into an immutable set. The file text is kept as
 * one block with its fields NUL-terminated in place; entries are found by an
 * open-addressing table on the hash and confirmed with sodium_memcmp. The
 * hashing key lives in sodium_malloc memory. */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "conffile.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_apikey.h"

#define MAGIC       "lodestone-apikeys"
#define HKEYBYTES   32u
#define HASHBYTES   32u
#define HKEY_B64LEN 44u /* padded base64 of 32 bytes */
#define HASH_HEXLEN ((size_t)2 * HASHBYTES)
#define KEYID_HEX   16u
#define SUBJECT_MAX 256u
#define LNAME_MAX   128u
#define FILE_MAX    ((size_t)64 << 20)
#define KEY_PREFIX  "lsk_"
#define KEY_RANDOM  32u
#define EMPTY       UINT32_MAX
#define MAX_FIELDS  4u

struct entry {
    unsigned char hash[HASHBYTES];
    uint64_t h64;               /* first 8 bytes of hash: table probe */
    size_t roles_at, scopes_at; /* first name in set->names */
    ls_apikey_entry pub;        /* pointers set once parsing is done */
    char key_id[KEYID_HEX + 1];
};

struct ls_apikey_set {
    unsigned char *hkey; /* sodium_malloc'd hashing key */
    char *text;          /* the file text, fields NUL-terminated in place */
    struct entry *e;
    size_t n, cap;
    const char **names; /* all role and scope names, entry by entry */
    size_t nnames, names_cap;
    uint32_t *table; /* entry indexes, EMPTY for a free slot */
    size_t mask;
};

size_t ls_apikey_key_size(void)
{
    return LS_APIKEY_KEY_SIZE;
}

size_t ls_apikey_count(const ls_apikey_set_t *set)
{
    return set ? set->n : 0;
}

void ls_apikey_free(ls_apikey_set_t *set)
{
    if (set == NULL) return;
    sodium_free(set->hkey); /* wipes */
    ls_free(set->text);
    ls_free(set->e);
    ls_free((void *)set->names);
    ls_free(set->table);
    ls_free(set);
}

static ls_rc sodium_ready(ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    return LS_OK;
}

/* ---- grammar ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char has_space[] = "has a space";

/* NULL when len bytes of s are a valid name (1..max printable ASCII other
 * than blanks, and other than ',' when no_comma), else a complaint that
 * says which character is not allowed. */
static const char *check_name(const char *s, size_t len, size_t max, int no_comma)
{
    if (len == 0) return "is empty";
    if (len > max) return "is too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ') return has_space;
        if (c == '\t') return "has a tab";
        if (c < 0x20 || c == 0x7f) return "has a control character";
        if (c > 0x7f) return "has a character that is not ASCII";
        if (no_comma && c == ',') return "has a ','";
    }
    return NULL;
}

/* NULL when s is a valid comma-separated list of names. */
static const char *check_list(const char *s, size_t len)
{
    if (len == 0) return "is empty";
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',') continue;
        const char *why = check_name(s + start, i - start, LNAME_MAX, 1);
        if (why == has_space) return "has a space (names are separated by a comma alone: a,b)";
        if (why) return i == start ? "has an empty name" : why;
        start = i + 1;
    }
    return NULL;
}

static int is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* ---- parsing ---- */

struct field {
    char *p;
    size_t len;
};

struct cursor {
    char *p, *end;
    size_t line;
};

/* Next line without its LF (and a CR before it). 0 at the end of the text. */
static int next_line(struct cursor *c, char **s, size_t *len)
{
    if (c->p >= c->end) return 0;
    char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    char *stop = nl ? nl : c->end;
    *s = c->p;
    *len = (size_t)(stop - c->p);
    if (*len && (*s)[*len - 1] == '\r') (*len)--;
    c->p = nl ? nl + 1 : c->end;
    c->line++;
    return 1;
}

/* Splits a line at blanks. Returns the number of fields, or max + 1 when
 * there are more than max. */
static size_t split(char *s, size_t len, struct field *f, size_t max)
{
    size_t n = 0, i = 0;
    for (;;) {
        while (i < len && is_blank(s[i])) i++;
        if (i == len) return n;
        if (n == max) return max + 1;
        f[n].p = s + i;
        while (i < len && !is_blank(s[i])) i++;
        f[n].len = (size_t)(s + i - f[n].p);
        n++;
    }
}

static int skip_line(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_blank(s[i])) i++;
    return i == len || s[i] == '#';
}

static int field_is(const struct field *f, const char *word)
{
    size_t n = strlen(word);
    return f->len == n && memcmp(f->p, word, n) == 0;
}

static ls_rc parse_header(ls_apikey_set_t *set, char *s, size_t len, size_t line, ls_err *err)
{
    struct field f[3];
    size_t nf = split(s, len, f, 3);
    if (nf == 0 || !field_is(&f[0], MAGIC))
        return ls_err_set(err, LS_EFORMAT,
                          "line %zu: expected the header \"" MAGIC " 1 <hashing key>\"", line);
    if (nf < 2 || !field_is(&f[1], "1"))
        return ls_err_set(err, LS_EFORMAT, "line %zu: unsupported key file version \"%.*s\"", line,
                          nf < 2 ? 0 : (int)(f[1].len > 16 ? 16 : f[1].len), nf < 2 ? "" : f[1].p);
    if (nf != 3)
        return ls_err_set(err, LS_EFORMAT,
                          "line %zu: the header needs exactly one hashing key after the version",
                          line);
    size_t got = 0;
    if (f[2].len != HKEY_B64LEN ||
        sodium_base642bin(set->hkey, HKEYBYTES, f[2].p, f[2].len, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != HKEYBYTES)
        return ls_err_set(err, LS_EFORMAT,
                          "line %zu: the hashing key must be 32 bytes in padded base64", line);
    sodium_memzero(s, len); /* the text copy of the hashing key */
    return LS_OK;
}

static ls_rc grow(void **arr, size_t *cap, size_t need, size_t size, ls_err *err)
{
    if (need <= *cap) return LS_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = ls_realloc(*arr, ncap * size);
    if (p == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading API keys");
    *arr = p;
    *cap = ncap;
    return LS_OK;
}

/* Adds the names of a checked list to set->names, NUL-terminating each. */
static ls_rc add_names(ls_apikey_set_t *set, char *s, size_t len, size_t *at, size_t *count,
                       ls_err *err)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) n += s[i] == ',';
    ls_rc rc =
        grow((void **)&set->names, &set->names_cap, set->nnames + n, sizeof *set->names, err);
    if (rc != LS_OK) return rc;
    *at = set->nnames;
    *count = n;
    set->names[set->nnames++] = s;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',') {
            s[i] = '\0';
            set->names[set->nnames++] = s + i + 1;
        }
    s[len] = '\0';
    return LS_OK;
}

/* Applies "roles=..." or "scopes=..." to the entry. */
static ls_rc parse_option(ls_apikey_set_t *set, struct entry *e, struct field *f, size_t line,
                          int *seen, ls_err *err)
{
    static const char *const keys[] = {"roles=", "scopes="};
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        if (f->len < kl || memcmp(f->p, keys[k], kl) != 0) continue;
        if (seen[k])
            return ls_err_set(err, LS_EFORMAT, "line %zu: %.*s appears twice", line, (int)kl - 1,
                              keys[k]);
        seen[k] = 1;
        const char *why = check_list(f->p + kl, f->len - kl);
        if (why)
            return ls_err_set(err, LS_EFORMAT, "line %zu: the %.*s list %s", line, (int)kl - 1,
                              keys[k], why);
        return k == 0 ? add_names(set, f->p + kl, f->len - kl, &e->roles_at, &e->pub.nroles, err)
                      : add_names(set, f->p + kl, f->len - kl, &e->scopes_at, &e->pub.nscopes, err);
    }
    return ls_err_set(
        err, LS_EFORMAT,
        "line %zu: unknown field (expected roles=... or scopes=... after the subject)", line);
}

static ls_rc parse_entry(ls_apikey_set_t *set, char *s, size_t len, size_t line, ls_err *err)
{
    struct field f[MAX_FIELDS];
    size_t nf = split(s, len, f, MAX_FIELDS);
    if (nf < 2)
        return ls_err_set(err, LS_EFORMAT,
                          "line %zu: expected \"<hash> <subject> [roles=...] [scopes=...]\"", line);
    if (nf > MAX_FIELDS) return ls_err_set(err, LS_EFORMAT, "line %zu: too many fields", line);
    if (f[0].len != HASH_HEXLEN || !is_lower_hex(f[0].p, f[0].len))
        return ls_err_set(err, LS_EFORMAT, "line %zu: the hash must be 64 lower-case hex digits",
                          line);
    const char *why = check_name(f[1].p, f[1].len, SUBJECT_MAX, 0);
    if (why) return ls_err_set(err, LS_EFORMAT, "line %zu: the subject %s", line, why);

    ls_rc rc = grow((void **)&set->e, &set->cap, set->n + 1, sizeof *set->e, err);
    if (rc != LS_OK) return rc;
    struct entry *e = &set->e[set->n];
    memset(e, 0, sizeof *e);
    int seen[2] = {0, 0};
    for (size_t i = 2; i < nf; i++) {
        rc = parse_option(set, e, &f[i], line, seen, err);
        if (rc != LS_OK) return rc;
    }
    size_t got = 0;
    sodium_hex2bin(e->hash, HASHBYTES, f[0].p, f[0].len, NULL, &got, NULL);
    memcpy(&e->h64, e->hash, sizeof e->h64);
    sodium_bin2hex(e->key_id, sizeof e->key_id, e->hash, KEYID_HEX / 2);
    f[1].p[f[1].len] = '\0';
    e->pub.subject = f[1].p;
    e->pub.line = line;
    set->n++;
    return LS_OK;
}

/* Fills the table and checks that no two entries share a hash. */
static ls_rc build_table(ls_apikey_set_t *set, ls_err *err)
{
    size_t cap = 8;
    while (cap < set->n * 2) cap *= 2;
    set->table = ls_malloc(cap * sizeof *set->table);
    if (set->table == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading API keys");
    memset(set->table, 0xff, cap * sizeof *set->table);
    set->mask = cap - 1;
    for (size_t k = 0; k < set->n; k++) {
        struct entry *e = &set->e[k];
        size_t i = (size_t)e->h64 & set->mask;
        for (; set->table[i] != EMPTY; i = (i + 1) & set->mask) {
            const struct entry *o = &set->e[set->table[i]];
            if (memcmp(o->hash, e->hash, HASHBYTES) == 0)
                return ls_err_set(err, LS_EFORMAT, "line %zu: same key as line %zu", e->pub.line,
                                  o->pub.line);
        }
        set->table[i] = (uint32_t)k;
    }
    return LS_OK;
}

/* Parses text (len bytes plus a NUL), taking ownership of it. */
static ls_rc parse_owned(ls_apikey_set_t **out, char *text, size_t len, ls_err *err)
{
    *out = NULL;
    ls_apikey_set_t *set = ls_calloc(1, sizeof *set);
    if (set == NULL) {
        ls_free(text);
        return ls_err_set(err, LS_ENOMEM, "out of memory loading API keys");
    }
    set->text = text;
    ls_rc rc = LS_OK;
    set->hkey = sodium_malloc(HKEYBYTES);
    if (set->hkey == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory for the hashing key");
        goto fail;
    }
    struct cursor c = {text, text + len, 0};
    char *s;
    size_t slen;
    int have_header = 0;
    while (next_line(&c, &s, &slen)) {
        if (skip_line(s, slen)) continue;
        rc = have_header ? parse_entry(set, s, slen, c.line, err)
                         : parse_header(set, s, slen, c.line, err);
        if (rc != LS_OK) goto fail;
        have_header = 1;
    }
    if (!have_header) {
        rc = ls_err_set(err, LS_EFORMAT,
                        "line %zu: no header \"" MAGIC " 1 <hashing key>\" before the end",
                        c.line + 1);
        goto fail;
    }
    rc = build_table(set, err);
    if (rc != LS_OK) goto fail;
    for (size_t k = 0; k < set->n; k++) {
        struct entry *e = &set->e[k];
        e->pub.roles = e->pub.nroles ? set->names + e->roles_at : NULL;
        e->pub.scopes = e->pub.nscopes ? set->names + e->scopes_at : NULL;
        e->pub.key_id = e->key_id;
    }
    *out = set;
    return LS_OK;

fail:
    ls_apikey_free(set);
    return rc;
}

ls_rc ls_apikey_parse(ls_apikey_set_t **out, const char *text, size_t len, ls_err *err)
{
    if (out == NULL || (text == NULL && len != 0))
        return ls_err_set(err, LS_EINVAL, "ls_apikey_parse needs an out pointer and text");
    *out = NULL;
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    if (len > FILE_MAX)
        return ls_err_set(err, LS_EFORMAT, "key file larger than %zu bytes", FILE_MAX);
    char *copy = ls_malloc(len + 1);
    if (copy == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading API keys");
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    return parse_owned(out, copy, len, err);
}

/* ---- key files ---- */

ls_rc ls_apikey_load(ls_apikey_set_t **out, const char *path, ls_err *err)
{
    if (out == NULL || path == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_apikey_load needs an out pointer and a path");
    *out = NULL;
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    char *text = NULL;
    size_t len = 0;
    rc = ls_conffile_read(path, FILE_MAX, "a key", &text, &len, err);
    if (rc == LS_OK) rc = parse_owned(out, text, len, err);
    if (rc != LS_OK) ls_err_prefix(err, "API key file %s", path);
    return rc;
}

/* ---- verification ---- */

static void hash_key(const ls_apikey_set_t *set, const void *key, size_t len,
                     unsigned char out[HASHBYTES])
{
    crypto_generichash(out, HASHBYTES, key, len, set->hkey, HKEYBYTES);
}

static const struct entry *lookup(const ls_apikey_set_t *set, const unsigned char h[HASHBYTES])
{
    uint64_t h64;
    memcpy(&h64, h, sizeof h64);
    for (size_t i = (size_t)h64 & set->mask; set->table[i] != EMPTY; i = (i + 1) & set->mask) {
        const struct entry *e = &set->e[set->table[i]];
        if (e->h64 == h64 && sodium_memcmp(e->hash, h, HASHBYTES) == 0) return e;
    }
    return NULL;
}

ls_rc ls_apikey_verify(const ls_apikey_set_t *set, const void *key, size_t len,
                       const ls_apikey_entry **match, ls_err *err)
{
    if (set == NULL || match == NULL || (key == NULL && len != 0))
        return ls_err_set(err, LS_EINVAL,
                          "ls_apikey_verify needs a set, a key and a match pointer");
    *match = NULL;
    if (len == 0) return ls_err_set(err, LS_EAUTH, "empty API key");
    if (len > LS_APIKEY_MAX_LEN)
        return ls_err_set(err, LS_EAUTH, "API key longer than %u bytes", LS_APIKEY_MAX_LEN);
    unsigned char h[HASHBYTES];
    hash_key(set, key, len, h);
    const struct entry *e = lookup(set, h);
    sodium_memzero(h, sizeof h);
    if (e == NULL) return ls_err_set(err, LS_EAUTH, "unknown API key");
    *match = &e->pub;
    return LS_OK;
}

/* ---- writing key files ---- */

ls_rc ls_apikey_new_file_header(ls_buf *out, ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_apikey_new_file_header needs a buffer");
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    unsigned char *k = sodium_malloc(HKEYBYTES);
    if (k == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory for a hashing key");
    char b64[HKEY_B64LEN + 1];
    randombytes_buf(k, HKEYBYTES);
    sodium_bin2base64(b64, sizeof b64, k, HKEYBYTES, sodium_base64_VARIANT_ORIGINAL);
    sodium_free(k);
    rc = ls_buf_printf(out, err, MAGIC " 1 %s\n", b64);
    sodium_memzero(b64, sizeof b64);
    return rc;
}

static ls_rc check_spec(const ls_apikey_spec *spec, ls_err *err)
{
    if (spec == NULL || spec->subject == NULL)
        return ls_err_set(err, LS_EINVAL, "an API key entry needs a subject");
    const char *why = check_name(spec->subject, strlen(spec->subject), SUBJECT_MAX, 0);
    if (why) return ls_err_set(err, LS_EINVAL, "the subject %s", why);
    if (spec->roles && spec->roles[0] && (why = check_list(spec->roles, strlen(spec->roles))))
        return ls_err_set(err, LS_EINVAL, "the roles list %s", why);
    if (spec->scopes && spec->scopes[0] && (why = check_list(spec->scopes, strlen(spec->scopes))))
        return ls_err_set(err, LS_EINVAL, "the scopes list %s", why);
    return LS_OK;
}

/* Appends "<hex> <subject>[ roles=..][ scopes=..]\n" all at once, so that
 * out is unchanged on failure. */
static ls_rc append_line(const char *hex, const ls_apikey_spec *spec, ls_buf *out, ls_err *err)
{
    const char *roles = spec->roles && spec->roles[0] ? spec->roles : NULL;
    const char *scopes = spec->scopes && spec->scopes[0] ? spec->scopes : NULL;
    size_t need = HASH_HEXLEN + 1 + strlen(spec->subject) + 1;
    if (roles) need += strlen(" roles=") + strlen(roles);
    if (scopes) need += strlen(" scopes=") + strlen(scopes);
    ls_rc rc = ls_buf_reserve(out, need, err);
    if (rc != LS_OK) return rc;
    ls_buf_printf(out, NULL, "%s %s%s%s%s%s\n", hex, spec->subject, roles ? " roles=" : "",
                  roles ? roles : "", scopes ? " scopes=" : "", scopes ? scopes : "");
    return LS_OK;
}

ls_rc ls_apikey_hash_line(const char *file_text, size_t text_len, const void *key, size_t keylen,
                          const ls_apikey_spec *spec, ls_buf *line_out, ls_err *err)
{
    if (line_out == NULL || (key == NULL && keylen != 0))
        return ls_err_set(err, LS_EINVAL, "ls_apikey_hash_line needs a key and a line buffer");
    ls_rc rc = check_spec(spec, err);
    if (rc != LS_OK) return rc;
    if (keylen < LS_APIKEY_MIN_LEN || keylen > LS_APIKEY_MAX_LEN)
        return ls_err_set(err, LS_EINVAL, "an API key must be %u to %u bytes long",
                          LS_APIKEY_MIN_LEN, LS_APIKEY_MAX_LEN);
    ls_apikey_set_t *set;
    rc = ls_apikey_parse(&set, file_text, text_len, err);
    if (rc != LS_OK) return rc;
    unsigned char h[HASHBYTES];
    char hex[HASH_HEXLEN + 1];
    hash_key(set, key, keylen, h);
    const struct entry *dup = lookup(set, h);
    if (dup) {
        rc = ls_err_set(err, LS_EEXIST, "the key file already holds this key (line %zu)",
                        dup->pub.line);
    } else {
        sodium_bin2hex(hex, sizeof hex, h, HASHBYTES);
        rc = append_line(hex, spec, line_out, err);
    }
    sodium_memzero(h, sizeof h);
    ls_apikey_free(set);
    return rc;
}

ls_rc ls_apikey_generate(const char *file_text, size_t text_len, const ls_apikey_spec *spec,
                         char key_out[LS_APIKEY_KEY_SIZE], ls_buf *line_out, ls_err *err)
{
    if (key_out == NULL) return ls_err_set(err, LS_EINVAL, "ls_apikey_generate needs key_out");
    sodium_memzero(key_out, LS_APIKEY_KEY_SIZE);
    ls_rc rc = sodium_ready(err);
    if (rc != LS_OK) return rc;
    unsigned char *r = sodium_malloc(KEY_RANDOM);
    if (r == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory for a new key");
    randombytes_buf(r, KEY_RANDOM);
    memcpy(key_out, KEY_PREFIX, strlen(KEY_PREFIX));
    sodium_bin2base64(key_out + strlen(KEY_PREFIX), LS_APIKEY_KEY_SIZE - strlen(KEY_PREFIX), r,
                      KEY_RANDOM, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_free(r);
    rc = ls_apikey_hash_line(file_text, text_len, key_out, LS_APIKEY_KEY_LEN, spec, line_out, err);
    if (rc != LS_OK) sodium_memzero(key_out, LS_APIKEY_KEY_SIZE);
    return rc;
}

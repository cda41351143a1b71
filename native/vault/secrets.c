/* SPDX-License-Identifier: MIT
 * Named secrets: values sealed under the keyring's current key and kept in
 * the store under LS_NS_SECRET + the escaped name, with the time each was
 * last set. Each value is bound to its name and its record header (the
 * associated data is "lodestone.secret:" + name + header), so a record
 * copied or swapped to another name, or given another time, does not open.
 * Plaintext is only ever held in sodium_malloc'd memory here, and wiped
 * before it is freed.
 */
#include "ls_config.h"

#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

#include "lodestone/ls_alloc.h"
#include "lodestone/ls_clock.h"
#include "vault_int.h"

/* Secret record, version 0x81 (the value stored under a secret's key):
 *
 *     byte  0       record version (0x81)
 *     bytes 1..8    updated_ms, big-endian signed: ms since the epoch of
 *                   the put that set the value (reseal keeps it)
 *     bytes 9..     the sealed value (seal.c's format)
 *
 * The seal's associated data is AD_PREFIX + name + bytes 0..8.
 *
 * Records written before the header existed were the bare sealed value, so
 * their first byte is the seal's version (LS_VAULT_VERSION, 1). Record
 * versions have the high bit set and seal versions never do, so that byte
 * alone tells the two apart. No store holding old records was ever
 * released, so there is no migration: they are refused with LS_EFORMAT and
 * the advice to set the secret again. */
#define REC_VERSION   0x81u
#define REC_HEADBYTES 9u
#define REC_MIN       (REC_HEADBYTES + LS_VAULT_OVERHEAD)

_Static_assert(LS_VAULT_VERSION < 0x80u && REC_VERSION >= 0x80u,
               "a record version must never equal the first byte of a sealed value");

#define AD_PREFIX    "lodestone.secret:"
#define AD_MAX       (sizeof AD_PREFIX - 1 + LS_SECRET_NAMEMAX + REC_HEADBYTES)
#define RESEAL_BATCH 64u /* secrets per synced write in reseal_all */

/* A decrypted value: the struct is ordinary memory, data is guarded. */
struct ls_secret {
    unsigned char *data; /* sodium_malloc'd, cap bytes */
    size_t len;
    size_t cap;
};

/* ---- guarded buffers ---- */

static void guarded_free(unsigned char *p, size_t cap)
{
    if (p == NULL) return;
    sodium_memzero(p, cap);
    sodium_free(p);
}

/* Makes *p (guarded, *cap bytes) hold at least n bytes; contents are lost. */
static ls_rc guarded_reserve(unsigned char **p, size_t *cap, size_t n, ls_err *err)
{
    if (n == 0) n = 1;
    if (*p != NULL && *cap >= n) return LS_OK;
    guarded_free(*p, *cap);
    *cap = 0;
    *p = sodium_malloc(n);
    if (*p == NULL)
        return ls_err_set(err, LS_ENOMEM, "cannot allocate %zu bytes of guarded memory", n);
    *cap = n;
    return LS_OK;
}

/* ---- names and keys ---- */

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':';
}

/* Checks a secret name and sets *len to its length. */
static ls_rc check_name(const char *name, size_t *len, ls_err *err)
{
    if (name == NULL) return ls_err_set(err, LS_EINVAL, "secret name is missing");
    size_t n = strnlen(name, LS_SECRET_NAMEMAX + 1);
    if (n == 0) return ls_err_set(err, LS_EINVAL, "secret name is empty");
    if (n > LS_SECRET_NAMEMAX)
        return ls_err_set(err, LS_EINVAL, "secret name is longer than %d bytes", LS_SECRET_NAMEMAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (name_char_ok(c)) continue;
        if (c >= 0x20 && c < 0x7f)
            return ls_err_set(err, LS_EINVAL,
                              "secret name has a bad character '%c' (0x%02x) at byte %zu: "
                              "names use a-z A-Z 0-9 . _ - / :",
                              c, c, i + 1);
        return ls_err_set(err, LS_EINVAL,
                          "secret name has a bad character 0x%02x at byte %zu: "
                          "names use a-z A-Z 0-9 . _ - / :",
                          c, i + 1);
    }
    *len = n;
    return LS_OK;
}

/* A new secret's name also has /-separated parts that a URL path keeps
 * as they are: none empty, "." or "..", which clients and lighttpd fold
 * away before the API sees them. (Names stored before this check are still
 * read and deleted.) */
static ls_rc check_new_name(const char *name, size_t len, ls_err *err)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/') continue;
        size_t n = i - start;
        const char *what = n == 0                         ? "an empty part"
                           : n == 1 && name[start] == '.' ? "a part '.'"
                           : n == 2 && name[start] == '.' && name[start + 1] == '.' ? "a part '..'"
                                                                                    : NULL;
        if (what)
            return ls_err_set(err, LS_EINVAL,
                              "secret name has %s at byte %zu: its /-separated parts may not be "
                              "empty, '.' or '..'",
                              what, start + 1);
        start = i + 1;
    }
    return LS_OK;
}

static ls_rc secret_key(ls_buf *k, const char *name, size_t len, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_SECRET, err);
    if (rc == LS_OK) rc = ls_key_str(k, name, len, err);
    return rc;
}

/* "lodestone.secret:" + name + the record header head into ad (AD_MAX
 * bytes); returns its length. */
static size_t secret_ad(unsigned char *ad, const char *name, size_t len, const unsigned char *head)
{
    size_t n = sizeof AD_PREFIX - 1;
    memcpy(ad, AD_PREFIX, n);
    memcpy(ad + n, name, len);
    n += len;
    memcpy(ad + n, head, REC_HEADBYTES);
    return n + REC_HEADBYTES;
}

/* ---- records ---- */

static void put_head(unsigned char head[REC_HEADBYTES], int64_t updated_ms)
{
    uint64_t u = (uint64_t)updated_ms; /* two's complement */
    head[0] = REC_VERSION;
    for (int i = 8; i >= 1; i--, u >>= 8) head[i] = (unsigned char)u;
}

static int64_t head_updated_ms(const unsigned char *head)
{
    uint64_t u = 0;
    for (int i = 1; i <= 8; i++) u = u << 8 | head[i];
    if (u <= INT64_MAX) return (int64_t)u;
    return -(int64_t)(~u) - 1; /* without implementation-defined conversion */
}

static ls_rc old_format(ls_rc code, ls_err *err)
{
    return ls_err_set(err, code,
                      "the record is in the old format (a bare sealed value without version "
                      "and update time), which this build does not read; set the secret again");
}

/* LS_OK when rec has the version and the length of a record of this build,
 * else code (LS_EFORMAT or LS_ECORRUPT) saying what is wrong: an old-format
 * record is told by its first byte alone. Does not authenticate anything. */
static ls_rc check_record(const unsigned char *rec, size_t len, ls_rc code, ls_err *err)
{
    if (len > 0 && rec[0] == LS_VAULT_VERSION) return old_format(code, err);
    if (len > 0 && rec[0] != REC_VERSION)
        return ls_err_set(err, code,
                          "the record has format version 0x%02x; this build reads version 0x%02x",
                          (unsigned)rec[0], REC_VERSION);
    if (len < REC_MIN)
        return ls_err_set(err, code, "the record is %zu bytes, shorter than the %u-byte minimum",
                          len, REC_MIN);
    return LS_OK;
}

/* Key id the record's sealed value names; 0 when it is no record. */
static uint32_t record_key(const unsigned char *rec, size_t len)
{
    if (check_record(rec, len, LS_EFORMAT, NULL) != LS_OK) return 0;
    return ls_vault_sealed_key(rec + REC_HEADBYTES, len - REC_HEADBYTES);
}

/* Guarded bytes open_record needs for a record of len bytes. */
static size_t record_ptcap(size_t len)
{
    return len > REC_MIN ? len - REC_MIN : 0;
}

/* Checks and opens the record rec of secret name into dst, which is guarded
 * and has room for record_ptcap(len) bytes. *ptlen receives the value's
 * length. LS_EFORMAT for a record this build does not read (the old format
 * among them); otherwise as ls_vault_open. */
static ls_rc open_record(ls_vault_t *v, const char *name, size_t nlen, const unsigned char *rec,
                         size_t len, unsigned char *dst, size_t *ptlen, ls_err *err)
{
    ls_rc rc = check_record(rec, len, LS_EFORMAT, err);
    if (rc != LS_OK) return rc;
    unsigned char ad[AD_MAX];
    size_t adlen = secret_ad(ad, name, nlen, rec);
    return ls_vault_open_into(v, ad, adlen, rec + REC_HEADBYTES, len - REC_HEADBYTES, dst, ptlen,
                              err);
}

/* Seals pt for secret name behind the record header head, replacing *rec
 * with the whole record. sealed is scratch. */
static ls_rc seal_record(ls_vault_t *v, const char *name, size_t nlen,
                         const unsigned char head[REC_HEADBYTES], const void *pt, size_t ptlen,
                         ls_buf *sealed, ls_buf *rec, ls_err *err)
{
    unsigned char ad[AD_MAX];
    size_t adlen = secret_ad(ad, name, nlen, head);
    ls_rc rc = ls_vault_seal(v, ad, adlen, pt, ptlen, sealed, err);
    if (rc == LS_OK) rc = ls_buf_set(rec, head, REC_HEADBYTES, err);
    if (rc == LS_OK) rc = ls_buf_append(rec, sealed->ptr, sealed->len, err);
    return rc;
}

/* ---- the generation (masks reload when it moves) ---- */

static _Atomic uint64_t secrets_gen = 1;

uint64_t ls_vault_secrets_generation(void)
{
    return atomic_load(&secrets_gen);
}

/* After a write that may have changed a value (whatever its outcome): a
 * mask that loaded before it loads again. */
static void bump_generation(void)
{
    atomic_fetch_add(&secrets_gen, 1);
}

/* ---- put / get / delete ---- */

ls_rc ls_vault_secret_put(ls_vault_t *v, ls_store_t *st, const char *name, const void *value,
                          size_t vlen, ls_err *err)
{
    size_t nlen = 0;
    ls_rc rc = check_name(name, &nlen, err);
    if (rc == LS_OK) rc = check_new_name(name, nlen, err);
    if (rc != LS_OK) return rc;
    if (v == NULL || st == NULL || (value == NULL && vlen))
        return ls_err_set(err, LS_EINVAL, "secret put needs a vault, a store and a value");

    unsigned char head[REC_HEADBYTES];
    put_head(head, ls_clock_wall_ms(NULL));
    ls_buf key = LS_BUF_INIT, sealed = LS_BUF_INIT, rec = LS_BUF_INIT;
    rc = secret_key(&key, name, nlen, err);
    if (rc == LS_OK) rc = seal_record(v, name, nlen, head, value, vlen, &sealed, &rec, err);
    if (rc == LS_OK) {
        rc = ls_store_put(st, key.ptr, key.len, rec.ptr, rec.len, LS_STORE_SYNC, err);
        bump_generation();
    }
    if (rc != LS_OK) ls_err_prefix(err, "secret \"%s\"", name);
    ls_buf_free(&key);
    ls_buf_free(&sealed);
    ls_buf_free(&rec);
    return rc;
}

ls_rc ls_vault_secret_get(ls_vault_t *v, ls_store_t *st, const char *name, ls_secret_t **out,
                          ls_err *err)
{
    size_t nlen = 0;
    ls_rc rc = check_name(name, &nlen, err);
    if (rc != LS_OK) return rc;
    if (v == NULL || st == NULL || out == NULL)
        return ls_err_set(err, LS_EINVAL, "secret get needs a vault, a store and an out pointer");
    *out = NULL;

    ls_buf key = LS_BUF_INIT, sealed = LS_BUF_INIT;
    ls_secret_t *s = NULL;
    rc = secret_key(&key, name, nlen, err);
    if (rc != LS_OK) goto fail;
    rc = ls_store_get(st, key.ptr, key.len, &sealed, err);
    if (rc == LS_ENOTFOUND) {
        ls_buf_free(&key);
        return ls_err_set(err, LS_ENOTFOUND, "no secret named \"%s\"", name);
    }
    if (rc != LS_OK) goto fail;
    s = ls_calloc(1, sizeof *s);
    if (s == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory reading a secret");
        goto fail;
    }
    rc = guarded_reserve(&s->data, &s->cap, record_ptcap(sealed.len), err);
    if (rc != LS_OK) goto fail;
    rc = open_record(v, name, nlen, sealed.ptr, sealed.len, s->data, &s->len, err);
    if (rc == LS_ENOTFOUND) /* the secret exists: its key is what is missing */
        rc =
            ls_err_set(err, LS_EAUTH, "sealed value names key %u, which this keyring does not hold",
                       (unsigned)record_key(sealed.ptr, sealed.len));
    if (rc != LS_OK) goto fail;
    ls_buf_free(&key);
    ls_buf_free(&sealed);
    *out = s;
    return LS_OK;

fail:
    ls_err_prefix(err, "secret \"%s\"", name);
    ls_secret_free(s);
    ls_buf_free(&key);
    ls_buf_free(&sealed);
    return rc;
}

uint32_t ls_vault_secret_missing_key(ls_vault_t *v, ls_store_t *st, const char *name)
{
    size_t nlen = 0;
    if (v == NULL || st == NULL || check_name(name, &nlen, NULL) != LS_OK) return 0;
    ls_buf key = LS_BUF_INIT, rec = LS_BUF_INIT;
    uint32_t id = 0;
    if (secret_key(&key, name, nlen, NULL) == LS_OK &&
        ls_store_get(st, key.ptr, key.len, &rec, NULL) == LS_OK)
        id = record_key(rec.ptr, rec.len);
    if (id != 0 && ls_vault_holds_key(v, id)) id = 0;
    ls_buf_free(&key);
    ls_buf_free(&rec);
    return id;
}

ls_rc ls_vault_secret_delete(ls_store_t *st, const char *name, ls_err *err)
{
    size_t nlen = 0;
    ls_rc rc = check_name(name, &nlen, err);
    if (rc != LS_OK) return rc;
    if (st == NULL) return ls_err_set(err, LS_EINVAL, "secret delete needs a store");

    ls_buf key = LS_BUF_INIT, sealed = LS_BUF_INIT;
    rc = secret_key(&key, name, nlen, err);
    if (rc == LS_OK) rc = ls_store_get(st, key.ptr, key.len, &sealed, err);
    if (rc == LS_ENOTFOUND)
        ls_err_set(err, LS_ENOTFOUND, "no secret named \"%s\"", name);
    else if (rc == LS_OK) {
        rc = ls_store_delete(st, key.ptr, key.len, LS_STORE_SYNC, err);
        bump_generation();
    }
    if (rc != LS_OK && rc != LS_ENOTFOUND) ls_err_prefix(err, "secret \"%s\"", name);
    ls_buf_free(&key);
    ls_buf_free(&sealed);
    return rc;
}

const unsigned char *ls_secret_data(const ls_secret_t *s)
{
    return s->data;
}

size_t ls_secret_len(const ls_secret_t *s)
{
    return s->len;
}

void ls_secret_free(ls_secret_t *s)
{
    if (s == NULL) return;
    guarded_free(s->data, s->cap);
    ls_free(s);
}

/* ---- walking the namespace ---- */

/* Reads the name out of a secret's store key into name (NUL-terminated). */
static ls_rc key_name(const void *key, size_t klen, ls_buf *name, ls_err *err)
{
    ls_key_reader r;
    ls_store_ns ns;
    ls_key_reader_init(&r, key, klen);
    ls_rc rc = ls_key_read_ns(&r, &ns, err);
    if (rc == LS_OK) rc = ls_key_read_str(&r, name, err);
    if (rc == LS_ENOMEM) return rc;
    if (rc != LS_OK || ns != LS_NS_SECRET || r.left != 0 || name->len == 0 ||
        name->len > LS_SECRET_NAMEMAX)
        return ls_err_set(err, LS_ECORRUPT, "a key in the secret namespace is malformed");
    return LS_OK;
}

static ls_rc secret_iter(ls_store_iter_t **it, ls_store_t *st, ls_err *err)
{
    const unsigned char prefix[1] = {LS_NS_SECRET};
    return ls_store_iter_prefix(it, st, prefix, sizeof prefix, 0, err);
}

/* Calls name_fn with each name or, when it is NULL, info_fn with each name
 * and time (reading the records' headers). */
static ls_rc walk_secrets(ls_store_t *st, ls_secret_name_fn name_fn, ls_secret_info_fn info_fn,
                          void *ud, ls_err *err)
{
    ls_store_iter_t *it = NULL;
    ls_buf name = LS_BUF_INIT;
    ls_rc rc = secret_iter(&it, st, err);
    while (rc == LS_OK) {
        const void *key, *val = NULL;
        size_t klen, vlen = 0;
        rc =
            ls_store_iter_next(it, &key, &klen, name_fn ? NULL : &val, name_fn ? NULL : &vlen, err);
        if (rc == LS_ENOTFOUND) {
            rc = LS_OK;
            break;
        }
        if (rc == LS_OK) rc = key_name(key, klen, &name, err);
        if (rc != LS_OK) break;
        const char *n = (const char *)name.ptr;
        if (name_fn != NULL) {
            if (name_fn(ud, n, name.len) != 0) break;
            continue;
        }
        rc = check_record(val, vlen, LS_ECORRUPT, err);
        if (rc != LS_OK) {
            ls_err_prefix(err, "secret \"%s\"", n);
            break;
        }
        if (info_fn(ud, n, name.len, head_updated_ms(val)) != 0) break;
    }
    ls_store_iter_free(it);
    ls_buf_free(&name);
    return rc;
}

ls_rc ls_vault_secret_list(ls_store_t *st, ls_secret_name_fn fn, void *ud, ls_err *err)
{
    if (st == NULL || fn == NULL)
        return ls_err_set(err, LS_EINVAL, "secret list needs a store and a callback");
    return walk_secrets(st, fn, NULL, ud, err);
}

ls_rc ls_vault_secret_list_info(ls_store_t *st, ls_secret_info_fn fn, void *ud, ls_err *err)
{
    if (st == NULL || fn == NULL)
        return ls_err_set(err, LS_EINVAL, "secret list needs a store and a callback");
    return walk_secrets(st, NULL, fn, ud, err);
}

/* ---- re-encryption after rotation ---- */

/* State of one reseal_all walk. */
typedef struct {
    ls_vault_t *v;
    ls_store_t *st;
    ls_store_batch_t *batch;
    ls_buf name, sealed, rec;
    unsigned char *pt; /* guarded scratch for one plaintext */
    size_t ptcap;
    ls_secret_reseal_report *rep; /* resealed counts what was written */
} reseal_state;

static ls_rc reseal_flush(reseal_state *rs, ls_err *err)
{
    size_t n = ls_store_batch_count(rs->batch);
    if (n == 0) return LS_OK;
    ls_rc rc = ls_store_write(rs->st, rs->batch, LS_STORE_SYNC, err);
    if (rc != LS_OK) return rc;
    ls_store_batch_clear(rs->batch);
    rs->rep->resealed += n;
    return LS_OK;
}

/* Counts secret name, whose record did not open with rc (reason in why),
 * as skipped; the first one is named in the report. */
static void reseal_skip(reseal_state *rs, const char *name, size_t nlen, ls_rc rc,
                        const ls_err *why)
{
    ls_secret_reseal_report *rep = rs->rep;
    if (rep->skipped++ > 0) return;
    if (nlen > LS_SECRET_NAMEMAX) nlen = LS_SECRET_NAMEMAX;
    memcpy(rep->first_skipped, name, nlen);
    rep->first_skipped[nlen] = '\0';
    ls_err_set(&rep->first_reason, rc, "%s", why->msg);
}

/* Counts a record whose store key is malformed (no name can be read from
 * it, why says how) as skipped: it cannot be opened, since a secret is
 * bound to its name, and stopping there would stop every reseal after.
 * It is named by its key's bytes in hex. */
static void reseal_skip_key(reseal_state *rs, const void *key, size_t klen, const ls_err *why)
{
    static const char hex[] = "0123456789abcdef";
    char text[LS_SECRET_NAMEMAX + 1] = "0x";
    size_t n = 2;
    for (size_t i = 0; i < klen && n + 2 <= 2 + 2 * 64; i++) {
        unsigned char b = ((const unsigned char *)key)[i];
        text[n++] = hex[b >> 4];
        text[n++] = hex[b & 15];
    }
    if (n < 2 + 2 * klen) {
        memcpy(text + n, "...", 3);
        n += 3;
    }
    text[n] = '\0';
    ls_err w;
    ls_err_set(&w, LS_ECORRUPT, "a damaged secret record under key %s (%zu bytes): %s", text, klen,
               why->msg);
    reseal_skip(rs, text, n, LS_ECORRUPT, &w);
}

/* Opens one record and queues it sealed again under the current key, with
 * the same header (so the same update time). A record that does not open
 * (LS_EFORMAT, LS_EAUTH, or a key the keyring lacks), or whose store key
 * is malformed (LS_ECORRUPT), is skipped, left as it is; any other failure
 * is returned. */
static ls_rc reseal_one(reseal_state *rs, const void *key, size_t klen, const unsigned char *val,
                        size_t vlen, ls_err *err)
{
    ls_err why = {0};
    ls_rc rc = key_name(key, klen, &rs->name, &why);
    if (rc == LS_ECORRUPT) {
        reseal_skip_key(rs, key, klen, &why);
        return LS_OK;
    }
    if (rc != LS_OK) {
        if (err != NULL) *err = why;
        return rc;
    }
    const char *name = (const char *)rs->name.ptr;
    size_t ptlen = 0;
    rc = guarded_reserve(&rs->pt, &rs->ptcap, record_ptcap(vlen), err);
    if (rc != LS_OK) goto fail;
    rc = open_record(rs->v, name, rs->name.len, val, vlen, rs->pt, &ptlen, &why);
    if (rc == LS_ENOTFOUND) /* the secret exists: its key is what is missing */
        rc = ls_err_set(&why, LS_EAUTH,
                        "sealed value names key %u, which this keyring does not hold",
                        (unsigned)record_key(val, vlen));
    if (rc == LS_EAUTH || rc == LS_EFORMAT) {
        sodium_memzero(rs->pt, rs->ptcap);
        ls_err_prefix(&why, "secret \"%s\"", name);
        reseal_skip(rs, name, rs->name.len, rc, &why);
        return LS_OK;
    }
    if (rc != LS_OK) {
        if (err != NULL) *err = why;
        goto fail;
    }
    rc = seal_record(rs->v, name, rs->name.len, val, rs->pt, ptlen, &rs->sealed, &rs->rec, err);
    sodium_memzero(rs->pt, rs->ptcap);
    if (rc != LS_OK) goto fail;
    ls_store_batch_put(rs->batch, key, klen, rs->rec.ptr, rs->rec.len);
    if (ls_store_batch_count(rs->batch) >= RESEAL_BATCH) return reseal_flush(rs, err);
    return LS_OK;

fail:
    if (rs->pt != NULL) sodium_memzero(rs->pt, rs->ptcap);
    ls_err_prefix(err, "secret \"%s\"", name);
    return rc;
}

ls_rc ls_vault_secret_reseal_all_detailed(ls_vault_t *v, ls_store_t *st,
                                          ls_secret_reseal_report *rep, ls_err *err)
{
    if (rep == NULL) return ls_err_set(err, LS_EINVAL, "secret reseal needs a report");
    memset(rep, 0, sizeof *rep);
    if (v == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "secret reseal needs a vault and a store");
    reseal_state rs = {.v = v,
                       .st = st,
                       .name = LS_BUF_INIT,
                       .sealed = LS_BUF_INIT,
                       .rec = LS_BUF_INIT,
                       .rep = rep};
    ls_store_iter_t *it = NULL;
    uint32_t current = ls_vault_current_key(v);
    ls_rc rc = ls_store_batch_new(&rs.batch, err);
    if (rc == LS_OK) rc = secret_iter(&it, st, err);
    while (rc == LS_OK) {
        const void *key, *val;
        size_t klen, vlen;
        rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err);
        if (rc == LS_ENOTFOUND) {
            rc = reseal_flush(&rs, err);
            break;
        }
        if (rc == LS_OK && record_key(val, vlen) != current)
            rc = reseal_one(&rs, key, klen, val, vlen, err);
    }
    ls_store_iter_free(it);
    if (rep->resealed) bump_generation();
    ls_store_batch_free(rs.batch);
    ls_buf_free(&rs.name);
    ls_buf_free(&rs.sealed);
    ls_buf_free(&rs.rec);
    guarded_free(rs.pt, rs.ptcap);
    return rc;
}

ls_rc ls_vault_secret_reseal_all(ls_vault_t *v, ls_store_t *st, size_t *count, ls_err *err)
{
    ls_secret_reseal_report rep;
    ls_rc rc = ls_vault_secret_reseal_all_detailed(v, st, &rep, err);
    if (count) *count = rep.resealed;
    if (rc != LS_OK || rep.skipped == 0) return rc;
    return ls_err_set(err, rep.first_reason.code,
                      "%zu secret%s did not open and stay as they were; the first: %s", rep.skipped,
                      rep.skipped == 1 ? "" : "s", rep.first_reason.msg);
}

/* ---- which keys ---- */

ls_rc ls_vault_secret_count_other_keys(ls_store_t *st, uint32_t key_id, size_t *count, ls_err *err)
{
    if (count == NULL) return ls_err_set(err, LS_EINVAL, "secret count needs a count");
    *count = 0;
    if (st == NULL) return ls_err_set(err, LS_EINVAL, "secret count needs a store");
    ls_store_iter_t *it = NULL;
    size_t n = 0;
    ls_rc rc = secret_iter(&it, st, err);
    while (rc == LS_OK) {
        const void *key, *val;
        size_t klen, vlen;
        rc = ls_store_iter_next(it, &key, &klen, &val, &vlen, err);
        if (rc == LS_ENOTFOUND) {
            *count = n;
            rc = LS_OK;
            break;
        }
        if (rc == LS_OK && record_key(val, vlen) != key_id) n++;
    }
    ls_store_iter_free(it);
    return rc;
}

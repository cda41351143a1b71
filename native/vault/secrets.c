/* SPDX-License-Identifier: MIT
 * Named secrets: values sealed under the keyring's current key and kept in
 * the store under LS_NS_SECRET + the escaped name. Each value is bound to
 * its name (associated data "lodestone.secret:" + name), so a record copied
 * or swapped to another name does not open. Plaintext is only ever held in
 * sodium_malloc'd memory here, and wiped before it is freed.
 */
#include "ls_config.h"

#include <string.h>

#include <sodium.h>

#include "lodestone/ls_alloc.h"
#include "vault_int.h"

#define AD_PREFIX    "lodestone.secret:"
#define AD_MAX       (sizeof AD_PREFIX - 1 + LS_SECRET_NAMEMAX)
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

static ls_rc secret_key(ls_buf *k, const char *name, size_t len, ls_err *err)
{
    ls_buf_clear(k);
    ls_rc rc = ls_key_ns(k, LS_NS_SECRET, err);
    if (rc == LS_OK) rc = ls_key_str(k, name, len, err);
    return rc;
}

/* "lodestone.secret:" + name into ad (AD_MAX bytes); returns its length. */
static size_t secret_ad(unsigned char *ad, const char *name, size_t len)
{
    memcpy(ad, AD_PREFIX, sizeof AD_PREFIX - 1);
    memcpy(ad + sizeof AD_PREFIX - 1, name, len);
    return sizeof AD_PREFIX - 1 + len;
}

/* ---- put / get / delete ---- */

ls_rc ls_vault_secret_put(ls_vault_t *v, ls_store_t *st, const char *name, const void *value,
                          size_t vlen, ls_err *err)
{
    size_t nlen = 0;
    ls_rc rc = check_name(name, &nlen, err);
    if (rc != LS_OK) return rc;
    if (v == NULL || st == NULL || (value == NULL && vlen))
        return ls_err_set(err, LS_EINVAL, "secret put needs a vault, a store and a value");

    unsigned char ad[AD_MAX];
    size_t adlen = secret_ad(ad, name, nlen);
    ls_buf key = LS_BUF_INIT, sealed = LS_BUF_INIT;
    rc = secret_key(&key, name, nlen, err);
    if (rc == LS_OK) rc = ls_vault_seal(v, ad, adlen, value, vlen, &sealed, err);
    if (rc == LS_OK)
        rc = ls_store_put(st, key.ptr, key.len, sealed.ptr, sealed.len, LS_STORE_SYNC, err);
    if (rc != LS_OK) ls_err_prefix(err, "secret \"%s\"", name);
    ls_buf_free(&key);
    ls_buf_free(&sealed);
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

    unsigned char ad[AD_MAX];
    size_t adlen = secret_ad(ad, name, nlen);
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
    size_t need = sealed.len > LS_VAULT_OVERHEAD ? sealed.len - LS_VAULT_OVERHEAD : 0;
    rc = guarded_reserve(&s->data, &s->cap, need, err);
    if (rc != LS_OK) goto fail;
    rc = ls_vault_open_into(v, ad, adlen, sealed.ptr, sealed.len, s->data, &s->len, err);
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
    else if (rc == LS_OK)
        rc = ls_store_delete(st, key.ptr, key.len, LS_STORE_SYNC, err);
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

ls_rc ls_vault_secret_list(ls_store_t *st, ls_secret_name_fn fn, void *ud, ls_err *err)
{
    if (st == NULL || fn == NULL)
        return ls_err_set(err, LS_EINVAL, "secret list needs a store and a callback");
    ls_store_iter_t *it = NULL;
    ls_buf name = LS_BUF_INIT;
    ls_rc rc = secret_iter(&it, st, err);
    while (rc == LS_OK) {
        const void *key;
        size_t klen;
        rc = ls_store_iter_next(it, &key, &klen, NULL, NULL, err);
        if (rc == LS_ENOTFOUND) {
            rc = LS_OK;
            break;
        }
        if (rc == LS_OK) rc = key_name(key, klen, &name, err);
        if (rc == LS_OK && fn(ud, (const char *)name.ptr, name.len) != 0) break;
    }
    ls_store_iter_free(it);
    ls_buf_free(&name);
    return rc;
}

/* ---- re-encryption after rotation ---- */

/* State of one reseal_all walk. */
typedef struct {
    ls_vault_t *v;
    ls_store_t *st;
    ls_store_batch_t *batch;
    ls_buf name, sealed;
    unsigned char *pt; /* guarded scratch for one plaintext */
    size_t ptcap;
    size_t done; /* resealed and written */
} reseal_state;

static ls_rc reseal_flush(reseal_state *rs, ls_err *err)
{
    size_t n = ls_store_batch_count(rs->batch);
    if (n == 0) return LS_OK;
    ls_rc rc = ls_store_write(rs->st, rs->batch, LS_STORE_SYNC, err);
    if (rc != LS_OK) return rc;
    ls_store_batch_clear(rs->batch);
    rs->done += n;
    return LS_OK;
}

/* Opens one record and queues it sealed again under the current key. */
static ls_rc reseal_one(reseal_state *rs, const void *key, size_t klen, const void *val,
                        size_t vlen, ls_err *err)
{
    ls_rc rc = key_name(key, klen, &rs->name, err);
    if (rc != LS_OK) return rc;
    unsigned char ad[AD_MAX];
    size_t adlen = secret_ad(ad, (const char *)rs->name.ptr, rs->name.len);
    size_t ptlen = 0;
    rc = guarded_reserve(&rs->pt, &rs->ptcap,
                         vlen > LS_VAULT_OVERHEAD ? vlen - LS_VAULT_OVERHEAD : 0, err);
    if (rc == LS_OK) rc = ls_vault_open_into(rs->v, ad, adlen, val, vlen, rs->pt, &ptlen, err);
    if (rc == LS_OK) rc = ls_vault_seal(rs->v, ad, adlen, rs->pt, ptlen, &rs->sealed, err);
    if (rs->pt != NULL) sodium_memzero(rs->pt, rs->ptcap);
    if (rc != LS_OK) {
        ls_err_prefix(err, "secret \"%s\"", (const char *)rs->name.ptr);
        return rc;
    }
    ls_store_batch_put(rs->batch, key, klen, rs->sealed.ptr, rs->sealed.len);
    if (ls_store_batch_count(rs->batch) >= RESEAL_BATCH) return reseal_flush(rs, err);
    return LS_OK;
}

ls_rc ls_vault_secret_reseal_all(ls_vault_t *v, ls_store_t *st, size_t *count, ls_err *err)
{
    if (count) *count = 0;
    if (v == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "secret reseal needs a vault and a store");
    reseal_state rs = {.v = v, .st = st, .name = LS_BUF_INIT, .sealed = LS_BUF_INIT};
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
        if (rc == LS_OK && ls_vault_sealed_key(val, vlen) != current)
            rc = reseal_one(&rs, key, klen, val, vlen, err);
    }
    ls_store_iter_free(it);
    ls_store_batch_free(rs.batch);
    ls_buf_free(&rs.name);
    ls_buf_free(&rs.sealed);
    guarded_free(rs.pt, rs.ptcap);
    if (count) *count = rs.done;
    return rc;
}

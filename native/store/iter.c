/* SPDX-License-Identifier: MIT
 * Ordered range scans over a snapshot: keys in [lower, upper) forward or in
 * reverse, exactly as of ls_store_iter_new, whatever is written meanwhile.
 * Keys and values handed out are borrowed from LevelDB's iterator.
 */
#include "ls_config.h"

#include <stdint.h>
#include <string.h>

#include "lodestone/ls_alloc.h"
#include "store_int.h"

enum { ITER_FRESH, ITER_RUNNING, ITER_DONE };

struct ls_store_iter {
    ls_store_t *st;
    const leveldb_snapshot_t *snap;
    leveldb_readoptions_t *read;
    leveldb_iterator_t *it;
    unsigned char *lower; /* NULL: from the first key */
    size_t lower_len;
    unsigned char *upper; /* NULL: to the last key */
    size_t upper_len;
    int reverse;
    int state;
    unsigned char bounds[]; /* copies of lower, then upper */
};

/* Bytewise order, as LevelDB's default comparator. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) return c;
    return (alen > blen) - (alen < blen);
}

/* One allocation holds the handle and both bounds; LevelDB's snapshot,
 * read options and iterator come after it. With prefix_end, upper is a
 * prefix cut to ls_key_prefix_end_len and its copy gets its last byte
 * incremented. */
static ls_rc iter_create(ls_store_iter_t **out, ls_store_t *st, const void *lower, size_t llen,
                         const void *upper, size_t ulen, int prefix_end, int reverse, ls_err *err)
{
    if (out == NULL || st == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_store_iter_new: out and store are required");
    *out = NULL;
    if ((lower == NULL && llen != 0) || (upper == NULL && ulen != 0))
        return ls_err_set(err, LS_EINVAL, "ls_store_iter_new: a bound is NULL with a length");
    if (ulen > SIZE_MAX - sizeof(ls_store_iter_t) ||
        llen > SIZE_MAX - sizeof(ls_store_iter_t) - ulen)
        return ls_err_set(err, LS_EINVAL, "ls_store_iter_new: bounds too long");

    ls_store_iter_t *it = ls_malloc(sizeof *it + llen + ulen);
    if (it == NULL)
        return ls_err_set(err, LS_ENOMEM, "store %s: out of memory for an iterator", st->path);
    it->st = st;
    it->lower = NULL;
    it->lower_len = llen;
    it->upper = NULL;
    it->upper_len = ulen;
    it->reverse = reverse != 0;
    it->state = ITER_FRESH;
    if (lower != NULL) {
        it->lower = it->bounds;
        if (llen) memcpy(it->lower, lower, llen);
    }
    if (upper != NULL) {
        it->upper = it->bounds + llen;
        if (ulen) memcpy(it->upper, upper, ulen);
        if (ulen && prefix_end) it->upper[ulen - 1]++;
    }

    it->snap = leveldb_create_snapshot(st->db);
    it->read = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(it->read, 1);
    leveldb_readoptions_set_snapshot(it->read, it->snap);
    it->it = leveldb_create_iterator(st->db, it->read);
    *out = it;
    return LS_OK;
}

ls_rc ls_store_iter_new(ls_store_iter_t **out, ls_store_t *st, const ls_store_range *r, ls_err *err)
{
    static const ls_store_range all = {NULL, 0, NULL, 0, 0};
    if (r == NULL) r = &all;
    return iter_create(out, st, r->lower, r->lower_len, r->upper, r->upper_len, 0, r->reverse, err);
}

ls_rc ls_store_iter_prefix(ls_store_iter_t **out, ls_store_t *st, const void *prefix, size_t plen,
                           int reverse, ls_err *err)
{
    if (prefix == NULL && plen != 0)
        return ls_err_set(err, LS_EINVAL, "ls_store_iter_prefix: prefix is NULL with a length");
    size_t elen = ls_key_prefix_end_len(prefix, plen);
    return iter_create(out, st, prefix, plen, elen ? prefix : NULL, elen, 1, reverse, err);
}

/* Puts the LevelDB iterator on the first entry of the scan (maybe past it). */
static void position(ls_store_iter_t *it)
{
    leveldb_iterator_t *li = it->it;
    if (!it->reverse) {
        if (it->lower)
            leveldb_iter_seek(li, (const char *)it->lower, it->lower_len);
        else
            leveldb_iter_seek_to_first(li);
        return;
    }
    if (it->upper == NULL) {
        leveldb_iter_seek_to_last(li);
        return;
    }
    leveldb_iter_seek(li, (const char *)it->upper, it->upper_len);
    if (leveldb_iter_valid(li)) {
        leveldb_iter_prev(li); /* the last key before upper */
        return;
    }
    char *e = NULL;
    leveldb_iter_get_error(li, &e);
    if (e != NULL) {
        leveldb_free(e); /* stays on the iterator; ls_store_iter_next reports it */
        return;
    }
    leveldb_iter_seek_to_last(li); /* every key is below upper */
}

ls_rc ls_store_iter_next(ls_store_iter_t *it, const void **key, size_t *klen, const void **val,
                         size_t *vlen, ls_err *err)
{
    if (it == NULL || key == NULL || klen == NULL)
        return ls_err_set(err, LS_EINVAL,
                          "ls_store_iter_next: iterator, key and klen are required");
    if (it->state == ITER_DONE) return LS_ENOTFOUND;
    if (it->state == ITER_FRESH) {
        position(it);
        it->state = ITER_RUNNING;
    } else if (it->reverse) {
        leveldb_iter_prev(it->it);
    } else {
        leveldb_iter_next(it->it);
    }

    if (!leveldb_iter_valid(it->it)) {
        it->state = ITER_DONE;
        char *e = NULL;
        leveldb_iter_get_error(it->it, &e);
        if (e != NULL) return ls_store_leveldb_err(it->st->path, "scan", &e, err);
        return LS_ENOTFOUND;
    }

    size_t kl = 0;
    const char *k = leveldb_iter_key(it->it, &kl);
    if ((!it->reverse && it->upper && key_cmp(k, kl, it->upper, it->upper_len) >= 0) ||
        (it->reverse && it->lower && key_cmp(k, kl, it->lower, it->lower_len) < 0)) {
        it->state = ITER_DONE;
        return LS_ENOTFOUND;
    }
    *key = k;
    *klen = kl;
    size_t vl = 0;
    const char *v = leveldb_iter_value(it->it, &vl);
    if (val) *val = v;
    if (vlen) *vlen = vl;
    return LS_OK;
}

void ls_store_iter_free(ls_store_iter_t *it)
{
    if (it == NULL) return;
    leveldb_iter_destroy(it->it);
    leveldb_readoptions_destroy(it->read);
    leveldb_release_snapshot(it->st->db, it->snap);
    ls_free(it);
}

/* SPDX-License-Identifier: MIT
 * Atomic write batches: puts and deletes queued in memory and applied in one
 * LevelDB write, all or nothing, optionally fsynced before returning.
 */
#include "ls_config.h"

#include <assert.h>

#include "lodestone/ls_alloc.h"
#include "store_int.h"

ls_rc ls_store_batch_new(ls_store_batch_t **out, ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_store_batch_new: out is required");
    *out = NULL;
    ls_store_batch_t *b = ls_malloc(sizeof *b);
    if (b == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory for a write batch");
    b->wb = leveldb_writebatch_create();
    b->count = 0;
    *out = b;
    return LS_OK;
}

void ls_store_batch_free(ls_store_batch_t *b)
{
    if (b == NULL) return;
    leveldb_writebatch_destroy(b->wb);
    ls_free(b);
}

void ls_store_batch_put(ls_store_batch_t *b, const void *key, size_t klen, const void *val,
                        size_t vlen)
{
    assert(b != NULL && (key != NULL || klen == 0) && (val != NULL || vlen == 0));
    leveldb_writebatch_put(b->wb, key, klen, val, vlen);
    b->count++;
}

void ls_store_batch_append(ls_store_batch_t *dst, const ls_store_batch_t *src)
{
    assert(dst != NULL && src != NULL);
    leveldb_writebatch_append(dst->wb, src->wb);
    dst->count += src->count;
}

void ls_store_batch_delete(ls_store_batch_t *b, const void *key, size_t klen)
{
    assert(b != NULL && (key != NULL || klen == 0));
    leveldb_writebatch_delete(b->wb, key, klen);
    b->count++;
}

void ls_store_batch_clear(ls_store_batch_t *b)
{
    assert(b != NULL);
    leveldb_writebatch_clear(b->wb);
    b->count = 0;
}

size_t ls_store_batch_count(const ls_store_batch_t *b)
{
    assert(b != NULL);
    return b->count;
}

ls_rc ls_store_write(ls_store_t *st, ls_store_batch_t *b, unsigned flags, ls_err *err)
{
    if (st == NULL || b == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_store_write: store and batch are required");
    if (flags & ~LS_STORE_SYNC)
        return ls_err_set(err, LS_EINVAL, "ls_store_write: unknown flags 0x%x",
                          flags & ~LS_STORE_SYNC);
    char *e = NULL;
    leveldb_write(st->db, (flags & LS_STORE_SYNC) ? st->write_sync : st->write_nosync, b->wb, &e);
    if (e != NULL) return ls_store_leveldb_err(st->path, "write", &e, err);
    return LS_OK;
}

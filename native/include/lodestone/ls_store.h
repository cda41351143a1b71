/* SPDX-License-Identifier: MIT
 * The Lodestone store: a narrow ordered key-value interface (get, atomic
 * write batch, ordered range scan) over LevelDB, plus typed key encoding.
 * Nothing outside native/store/ sees LevelDB, so another ordered store can
 * replace it. One process owns a store directory at a time.
 *
 * Conventions: see ls_err.h. Keys and values are byte strings; the store
 * copies what it is given, and iterator results are borrowed.
 */
#ifndef LODESTONE_STORE_H
#define LODESTONE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* On-disk format version written by this build into the meta record. */
#define LS_STORE_FORMAT 1

typedef struct ls_store ls_store_t;
typedef struct ls_store_batch ls_store_batch_t;
typedef struct ls_store_iter ls_store_iter_t;

typedef struct {
    int create_if_missing; /* create the directory and store if absent */
    size_t cache_bytes;    /* block cache size; 0 = 8 MiB */
    size_t write_buffer;   /* memtable size; 0 = LevelDB's default */
} ls_store_opts;

/* Flags for ls_store_write. */
#define LS_STORE_SYNC 1u /* fsync before returning: the write survives a crash */

/* ---- open / close ---- */

/* Opens the store in directory path. opts may be NULL (defaults, no create).
 * Errors: LS_EBUSY when another process (or another handle in this one)
 * holds the directory; LS_ENOTFOUND when absent (or an empty directory) and
 * not create_if_missing; LS_EFORMAT when the directory is not a Lodestone
 * store (a non-empty directory that is no LevelDB, or a LevelDB with keys
 * but without Lodestone's format record) or has a newer format version;
 * LS_ECORRUPT, LS_EIO otherwise. An empty directory, or one holding only
 * LevelDB's LOCK and LOG files, counts as empty. A refused directory is
 * left as it was. On success *out is a handle; caller frees with
 * ls_store_close. */
LS_API ls_rc ls_store_open(ls_store_t **out, const char *path, const ls_store_opts *opts,
                           ls_err *err);

/* Closes the store and releases its lock. st may be NULL. Iterators and
 * batches of the store must be freed first. */
LS_API void ls_store_close(ls_store_t *st);

/* Sets *holds to 1 when the store holds any record besides its format
 * record and the vault's key check (runs, secrets, schedules, other
 * metadata), to 0 when it holds nothing sealed: a new store, as
 * ls_store_open created it, or with a key check alone. */
LS_API ls_rc ls_store_holds_data(ls_store_t *st, int *holds, ls_err *err);

/* Format version found in the store (LS_STORE_FORMAT for a store this build
 * created). */
LS_API uint32_t ls_store_format(const ls_store_t *st);

/* ---- point access ---- */

/* Looks up key. On LS_OK, replaces the contents of *val (caller-owned,
 * reused). Returns LS_ENOTFOUND when the key is absent (err untouched). */
LS_API ls_rc ls_store_get(ls_store_t *st, const void *key, size_t klen, ls_buf *val, ls_err *err);

/* One-key writes: a batch of one, flags as for ls_store_write. */
LS_API ls_rc ls_store_put(ls_store_t *st, const void *key, size_t klen, const void *val,
                          size_t vlen, unsigned flags, ls_err *err);
LS_API ls_rc ls_store_delete(ls_store_t *st, const void *key, size_t klen, unsigned flags,
                             ls_err *err);

/* ---- atomic write batches ---- */

/* New empty batch. Caller frees with ls_store_batch_free. */
LS_API ls_rc ls_store_batch_new(ls_store_batch_t **out, ls_err *err);
LS_API void ls_store_batch_free(ls_store_batch_t *b); /* b may be NULL */

/* Queue a put or delete; nothing is visible until ls_store_write. Later
 * operations on the same key in one batch win. */
LS_API void ls_store_batch_put(ls_store_batch_t *b, const void *key, size_t klen, const void *val,
                               size_t vlen);
LS_API void ls_store_batch_delete(ls_store_batch_t *b, const void *key, size_t klen);

/* Appends src's operations to dst, after dst's own (src is unchanged):
 * group commit merges the batches of concurrent transitions into one
 * write. */
LS_API void ls_store_batch_append(ls_store_batch_t *dst, const ls_store_batch_t *src);

/* Empties the batch for reuse. */
LS_API void ls_store_batch_clear(ls_store_batch_t *b);

/* Number of operations queued since creation or the last clear. */
LS_API size_t ls_store_batch_count(const ls_store_batch_t *b);

/* Applies every operation of b atomically: after a crash either all of them
 * are there or none. With LS_STORE_SYNC the call returns only once the
 * batch is on stable storage. The batch is left as it was (clear it to
 * reuse). */
LS_API ls_rc ls_store_write(ls_store_t *st, ls_store_batch_t *b, unsigned flags, ls_err *err);

/* ---- ordered range scans ---- */

typedef struct {
    const void *lower; /* first key included; NULL = from the start */
    size_t lower_len;
    const void *upper; /* first key excluded; NULL = to the end */
    size_t upper_len;
    int reverse; /* scan from upper down to lower */
} ls_store_range;

/* Iterates keys in [lower, upper) in byte order (or reverse), over a
 * consistent snapshot taken now. The range bounds are copied; r may be NULL
 * (every key, forward). Caller frees with ls_store_iter_free, before
 * closing the store. */
LS_API ls_rc ls_store_iter_new(ls_store_iter_t **out, ls_store_t *st, const ls_store_range *r,
                               ls_err *err);

/* Iterates the keys that start with prefix (plen may be 0: everything). */
LS_API ls_rc ls_store_iter_prefix(ls_store_iter_t **out, ls_store_t *st, const void *prefix,
                                  size_t plen, int reverse, ls_err *err);

/* Advances to the next entry and returns LS_OK with key and value borrowed
 * until the next call on this iterator; LS_ENOTFOUND at the end; another
 * code on a read error. val/vlen may be NULL when only keys are wanted. */
LS_API ls_rc ls_store_iter_next(ls_store_iter_t *it, const void **key, size_t *klen,
                                const void **val, size_t *vlen, ls_err *err);

LS_API void ls_store_iter_free(ls_store_iter_t *it); /* it may be NULL */

/* ---- keyspace ---- */

/* The first byte of every key names its namespace. Byte 0 is the store's
 * own metadata; other modules get a namespace here, never ad-hoc bytes. */
typedef enum {
    LS_NS_META = 0x00,     /* store format record and other store metadata */
    LS_NS_SECRET = 0x01,   /* vault: sealed secrets by name */
    LS_NS_RUN = 0x10,      /* flow: run records by id */
    LS_NS_HISTORY = 0x11,  /* flow: history events by run id and sequence */
    LS_NS_TIMER = 0x12,    /* flow: due timers by time */
    LS_NS_INDEX = 0x13,    /* flow: secondary indexes (status, type) */
    LS_NS_SIGNAL = 0x14,   /* flow: pending signals by run id and sequence */
    LS_NS_SCHEDULE = 0x15, /* flow: schedules by name */
    LS_NS_RUNINFO = 0x16,  /* flow: per-run extras (custom status) by run id */
    LS_NS_SOURCE = 0x17    /* flow: workflow sources by version, for runs pinned to them */
} ls_store_ns;

/* Typed key encoding into a caller-owned buffer. Encoded keys compare with
 * memcmp in the same order as their typed parts:
 *  - u64/i64 as 8 big-endian bytes (i64 with the sign bit flipped);
 *  - strings escaped so that no encoded string is a prefix of another and
 *    order is preserved: 0x00 becomes 0x00 0xFF, and 0x00 0x01 ends it.
 * Each call appends to k; start a key with ls_key_ns after ls_buf_clear.
 * A call that fails (LS_ENOMEM, LS_EINVAL) leaves k as it was. */
LS_API ls_rc ls_key_ns(ls_buf *k, ls_store_ns ns, ls_err *err);
LS_API ls_rc ls_key_u64(ls_buf *k, uint64_t v, ls_err *err);
LS_API ls_rc ls_key_i64(ls_buf *k, int64_t v, ls_err *err);
LS_API ls_rc ls_key_str(ls_buf *k, const void *s, size_t len, ls_err *err);
LS_API ls_rc ls_key_bytes(ls_buf *k, const void *raw, size_t len,
                          ls_err *err); /* fixed-size, unescaped */

/* Sets *end to the smallest key greater than every key with this prefix
 * (the prefix with its last non-0xFF byte incremented and the rest cut);
 * LS_ENOTFOUND when there is none (the prefix is all 0xFF or empty), with
 * end and err untouched. */
LS_API ls_rc ls_key_prefix_end(const void *prefix, size_t plen, ls_buf *end, ls_err *err);

/* Reads typed parts back, in the order they were written. The output
 * pointer of ns/u64/i64 may be NULL to skip a part. Errors: LS_EINVAL when
 * the key ends before the part does (truncated), LS_ECORRUPT when a
 * string's escaping is malformed; a rejected part is not consumed. */
typedef struct {
    const unsigned char *p;
    size_t left;
} ls_key_reader;

LS_API void ls_key_reader_init(ls_key_reader *r, const void *key, size_t klen);
LS_API ls_rc ls_key_read_ns(ls_key_reader *r, ls_store_ns *ns, ls_err *err);
LS_API ls_rc ls_key_read_u64(ls_key_reader *r, uint64_t *v, ls_err *err);
LS_API ls_rc ls_key_read_i64(ls_key_reader *r, int64_t *v, ls_err *err);
/* Unescapes the next string into *out (replaced, caller-owned). */
LS_API ls_rc ls_key_read_str(ls_key_reader *r, ls_buf *out, ls_err *err);
LS_API ls_rc ls_key_read_bytes(ls_key_reader *r, void *raw, size_t len, ls_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT
 * Internals shared by the files of native/store/: the handle layouts and
 * the one helper that turns a LevelDB error string into an ls_rc.
 * Never installed, never included outside native/store/.
 */
#ifndef LS_STORE_INT_H
#define LS_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <leveldb/c.h>

#include "lodestone/ls_store.h"

struct ls_store {
    leveldb_t *db;
    leveldb_options_t *options;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *read;          /* point reads: checksums verified */
    leveldb_writeoptions_t *write_sync;   /* LS_STORE_SYNC */
    leveldb_writeoptions_t *write_nosync; /* no flags */
    char *path;                           /* for error messages */
    uint32_t format;
};

struct ls_store_batch {
    leveldb_writebatch_t *wb;
    size_t count; /* operations since creation or the last clear */
};

/* Turns LevelDB's *errptr into a code: a leading "Corruption:" is
 * LS_ECORRUPT, a failure to take the directory's LOCK is LS_EBUSY,
 * anything else LS_EIO. Fills err with "store PATH: OP: TEXT" (or the
 * in-use message for a held lock), then frees the string with leveldb_free
 * and sets *errptr to NULL. *errptr must not be NULL. */
ls_rc ls_store_leveldb_err(const char *path, const char *op, char **errptr, ls_err *err);

/* Length of the smallest key greater than every key that starts with
 * prefix: the prefix up to and including its last byte that is not 0xFF
 * (that byte is then incremented by the caller). 0 when there is no such
 * key (prefix empty or all 0xFF). */
size_t ls_key_prefix_end_len(const void *prefix, size_t plen);

#endif

/* SPDX-License-Identifier: MIT
 * The store handle: opening a LevelDB directory as a Lodestone store (lock,
 * format record, options), point reads and one-key writes. Promises that
 * a directory is either refused with a clear code or opened as a store of a
 * format this build understands, and that no LevelDB string leaks out.
 */
#include "ls_config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lodestone/ls_alloc.h"
#include "store_int.h"

#define DEFAULT_CACHE_BYTES ((size_t)8 << 20)
#define BLOOM_BITS_PER_KEY  10

/* The format record: namespace byte 0 then "format"; value 4 bytes BE. */
static const char format_key[] = {(char)LS_NS_META, 'f', 'o', 'r', 'm', 'a', 't'};

/* ---- LevelDB errors ---- */

__attribute__((cold)) ls_rc ls_store_leveldb_err(const char *path, const char *op, char **errptr,
                                                 ls_err *err)
{
    const char *text = *errptr;
    ls_rc code = LS_EIO;
    if (strncmp(text, "Corruption:", 11) == 0) {
        code = LS_ECORRUPT;
    } else if (strncmp(text, "IO error: lock ", 15) == 0) {
        /* Only Env::LockFile reports "lock <dir>/LOCK: ..." */
        code = LS_EBUSY;
    }
    if (code == LS_EBUSY && strstr(text, "already held by process") != NULL)
        ls_err_set(err, code, "store %s is already open in this process (its LOCK is held)", path);
    else if (code == LS_EBUSY)
        ls_err_set(err, code, "store %s is in use by another process (its LOCK is held)", path);
    else
        ls_err_set(err, code, "store %s: %s: %s", path, op, text);
    leveldb_free(*errptr);
    *errptr = NULL;
    return code;
}

/* ---- open / close ---- */

/* Names LevelDB leaves behind even when an open fails before the store
 * exists (the lock and info log): they do not make a directory non-empty. */
static int is_leftover(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "LOCK") == 0 ||
           strcmp(name, "LOG") == 0 || strcmp(name, "LOG.old") == 0;
}

/* Decides whether path may be handed to leveldb_open: a LevelDB (it has a
 * CURRENT file), or, with create, an absent or empty directory. */
static ls_rc check_dir(const char *path, int create, ls_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (create) return LS_OK;
        return ls_err_set(err, LS_ENOTFOUND,
                          "store %s does not exist (and create_if_missing is off)", path);
    }
    if (fd < 0 && errno == ENOTDIR)
        return ls_err_set(err, LS_EFORMAT, "store %s is not a directory", path);
    if (fd < 0) return ls_err_set(err, LS_EIO, "store %s: cannot open: %s", path, strerror(errno));

    struct stat sb;
    if (fstatat(fd, "CURRENT", &sb, 0) == 0) {
        close(fd);
        return LS_OK;
    }
    if (errno != ENOENT) {
        int e = errno;
        close(fd);
        return ls_err_set(err, LS_EIO, "store %s: cannot stat CURRENT: %s", path, strerror(e));
    }

    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int e = errno;
        close(fd);
        return ls_err_set(err, LS_EIO, "store %s: cannot list: %s", path, strerror(e));
    }
    int empty = 1;
    const struct dirent *de;
    while (empty && (de = readdir(dir)) != NULL) empty = is_leftover(de->d_name);
    closedir(dir);

    if (!empty)
        return ls_err_set(err, LS_EFORMAT,
                          "store %s is not a Lodestone store (a non-empty directory that is not "
                          "a LevelDB: no CURRENT file)",
                          path);
    if (!create)
        return ls_err_set(err, LS_ENOTFOUND,
                          "store %s does not exist (empty directory, and create_if_missing is off)",
                          path);
    return LS_OK;
}

/* LS_OK when the LevelDB holds no key at all, LS_EFORMAT when it does. */
static ls_rc check_empty(ls_store_t *st, ls_err *err)
{
    leveldb_iterator_t *it = leveldb_create_iterator(st->db, st->read);
    leveldb_iter_seek_to_first(it);
    int empty = !leveldb_iter_valid(it);
    char *e = NULL;
    leveldb_iter_get_error(it, &e);
    leveldb_iter_destroy(it);
    if (e != NULL) return ls_store_leveldb_err(st->path, "checking for keys", &e, err);
    if (!empty)
        return ls_err_set(err, LS_EFORMAT,
                          "store %s is not a Lodestone store (a LevelDB without a format record)",
                          st->path);
    return LS_OK;
}

static ls_rc write_format(ls_store_t *st, ls_err *err)
{
    unsigned char v[4] = {(unsigned char)(LS_STORE_FORMAT >> 24),
                          (unsigned char)(LS_STORE_FORMAT >> 16),
                          (unsigned char)(LS_STORE_FORMAT >> 8), (unsigned char)LS_STORE_FORMAT};
    char *e = NULL;
    leveldb_put(st->db, st->write_sync, format_key, sizeof format_key, (const char *)v, sizeof v,
                &e);
    if (e != NULL) return ls_store_leveldb_err(st->path, "writing the format record", &e, err);
    st->format = LS_STORE_FORMAT;
    return LS_OK;
}

/* Reads the format record, or writes it into an empty LevelDB. */
static ls_rc load_format(ls_store_t *st, ls_err *err)
{
    char *e = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(st->db, st->read, format_key, sizeof format_key, &vlen, &e);
    if (e != NULL) return ls_store_leveldb_err(st->path, "reading the format record", &e, err);
    if (v == NULL) {
        ls_rc rc = check_empty(st, err);
        return rc != LS_OK ? rc : write_format(st, err);
    }

    const unsigned char *p = (const unsigned char *)v;
    uint32_t version = 0;
    if (vlen == 4)
        version = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    leveldb_free(v);
    if (vlen != 4)
        return ls_err_set(err, LS_ECORRUPT, "store %s: the format record has %zu bytes, not 4",
                          st->path, vlen);
    if (version == 0)
        return ls_err_set(err, LS_ECORRUPT, "store %s: the format record holds version 0",
                          st->path);
    if (version > LS_STORE_FORMAT)
        return ls_err_set(err, LS_EFORMAT,
                          "store %s: format version %u is newer than this build supports (%u)",
                          st->path, (unsigned)version, (unsigned)LS_STORE_FORMAT);
    st->format = version;
    return LS_OK;
}

ls_rc ls_store_open(ls_store_t **out, const char *path, const ls_store_opts *opts, ls_err *err)
{
    if (out == NULL || path == NULL || *path == '\0')
        return ls_err_set(err, LS_EINVAL, "ls_store_open: out and path are required");
    *out = NULL;
    const ls_store_opts defaults = {0, 0, 0};
    if (opts == NULL) opts = &defaults;

    ls_rc rc = check_dir(path, opts->create_if_missing, err);
    if (rc != LS_OK) return rc;

    ls_store_t *st = ls_calloc(1, sizeof *st);
    if (st == NULL) return ls_err_set(err, LS_ENOMEM, "store %s: out of memory", path);
    st->path = ls_strdup(path);
    if (st->path == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "store %s: out of memory", path);
        goto fail;
    }

    st->options = leveldb_options_create();
    st->cache =
        leveldb_cache_create_lru(opts->cache_bytes ? opts->cache_bytes : DEFAULT_CACHE_BYTES);
    st->filter = leveldb_filterpolicy_create_bloom(BLOOM_BITS_PER_KEY);
    leveldb_options_set_create_if_missing(st->options, opts->create_if_missing ? 1 : 0);
    leveldb_options_set_paranoid_checks(st->options, 1);
    leveldb_options_set_cache(st->options, st->cache);
    leveldb_options_set_filter_policy(st->options, st->filter);
    if (opts->write_buffer) leveldb_options_set_write_buffer_size(st->options, opts->write_buffer);

    st->read = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(st->read, 1);
    st->write_sync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(st->write_sync, 1);
    st->write_nosync = leveldb_writeoptions_create();

    char *e = NULL;
    st->db = leveldb_open(st->options, path, &e);
    if (e != NULL) {
        rc = ls_store_leveldb_err(path, "open", &e, err);
        goto fail;
    }
    rc = load_format(st, err);
    if (rc != LS_OK) goto fail;

    *out = st;
    return LS_OK;

fail:
    ls_store_close(st);
    return rc;
}

void ls_store_close(ls_store_t *st)
{
    if (st == NULL) return;
    /* The database first: the options, cache and filter outlive it. */
    if (st->db) leveldb_close(st->db);
    if (st->options) leveldb_options_destroy(st->options);
    if (st->filter) leveldb_filterpolicy_destroy(st->filter);
    if (st->cache) leveldb_cache_destroy(st->cache);
    if (st->read) leveldb_readoptions_destroy(st->read);
    if (st->write_sync) leveldb_writeoptions_destroy(st->write_sync);
    if (st->write_nosync) leveldb_writeoptions_destroy(st->write_nosync);
    ls_free(st->path);
    ls_free(st);
}

uint32_t ls_store_format(const ls_store_t *st)
{
    assert(st != NULL);
    return st->format;
}

ls_rc ls_store_holds_data(ls_store_t *st, int *holds, ls_err *err)
{
    if (st == NULL || holds == NULL)
        return ls_err_set(err, LS_EINVAL, "ls_store_holds_data: store and holds are required");
    leveldb_iterator_t *it = leveldb_create_iterator(st->db, st->read);
    leveldb_iter_seek_to_first(it);
    /* The key check (the vault's, under META "keycheck") seals nothing of
     * the store's: a store with it and its format record alone is new. */
    static const char keycheck_key[] = {(char)LS_NS_META, 'k', 'e', 'y', 'c', 'h', 'e', 'c', 'k'};
    int found = 0;
    for (int n = 0; n < 3 && !found && leveldb_iter_valid(it); n++) {
        size_t klen = 0;
        const char *k = leveldb_iter_key(it, &klen);
        found = !(klen == sizeof format_key && memcmp(k, format_key, klen) == 0) &&
                !(klen == sizeof keycheck_key && memcmp(k, keycheck_key, klen) == 0);
        leveldb_iter_next(it);
    }
    char *e = NULL;
    leveldb_iter_get_error(it, &e);
    leveldb_iter_destroy(it);
    if (e != NULL) return ls_store_leveldb_err(st->path, "checking for records", &e, err);
    *holds = found;
    return LS_OK;
}

/* ---- point access ---- */

ls_rc ls_store_get(ls_store_t *st, const void *key, size_t klen, ls_buf *val, ls_err *err)
{
    if (st == NULL || val == NULL || (key == NULL && klen != 0))
        return ls_err_set(err, LS_EINVAL, "ls_store_get: store, key and val are required");
    char *e = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(st->db, st->read, key, klen, &vlen, &e);
    if (e != NULL) return ls_store_leveldb_err(st->path, "get", &e, err);
    if (v == NULL) return LS_ENOTFOUND;
    ls_rc rc = ls_buf_set(val, v, vlen, err);
    leveldb_free(v);
    return rc;
}

/* One-key writes sit on ls_store_write with a batch on the stack, so they
 * allocate nothing of ours. */
ls_rc ls_store_put(ls_store_t *st, const void *key, size_t klen, const void *val, size_t vlen,
                   unsigned flags, ls_err *err)
{
    if ((key == NULL && klen != 0) || (val == NULL && vlen != 0))
        return ls_err_set(err, LS_EINVAL, "ls_store_put: key or value is NULL with a length");
    struct ls_store_batch b = {leveldb_writebatch_create(), 0};
    ls_store_batch_put(&b, key, klen, val, vlen);
    ls_rc rc = ls_store_write(st, &b, flags, err);
    leveldb_writebatch_destroy(b.wb);
    return rc;
}

ls_rc ls_store_delete(ls_store_t *st, const void *key, size_t klen, unsigned flags, ls_err *err)
{
    if (key == NULL && klen != 0)
        return ls_err_set(err, LS_EINVAL, "ls_store_delete: key is NULL with a length");
    struct ls_store_batch b = {leveldb_writebatch_create(), 0};
    ls_store_batch_delete(&b, key, klen);
    ls_rc rc = ls_store_write(st, &b, flags, err);
    leveldb_writebatch_destroy(b.wb);
    return rc;
}

/* SPDX-License-Identifier: MIT
 * The keyring: data keys read from, created in, and rotated into a key file
 * of mode 0600. Key bytes exist only in sodium_malloc'd memory: files are
 * read and formatted in guarded memory that is wiped, created with O_EXCL or
 * replaced through a temporary file and rename, with file and directory
 * fsynced. A file that group or others could use, or that another user
 * owns, is refused.
 */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "lodestone/ls_alloc.h"
#include "vault_int.h"

/* ---- key file format ----
 *
 * Version 1 is ASCII text, one item per line, each line ending in "\n" (the
 * last newline may be missing); no blank lines, comments, CRs, or spaces
 * other than the single separators shown:
 *
 *     lodestone-keyring 1
 *     current <id>
 *     key <id> <base64 of the 32 key bytes, standard alphabet, padded>
 *     key <id> <...>                    (one line per key, current or retired)
 *
 * Ids are decimal, 1..4294967295, without sign or leading zeros, each at
 * most once, in any order (this code writes them in the order it read them,
 * new keys last); the current id must be one of the keys. Rotation gives the
 * new key the largest id plus one, so ids only grow. Any departure is
 * LS_EFORMAT naming the line; messages never quote the file's content. The
 * path may be a symlink: the checks apply to the file it names, and a
 * rewrite (rotation, retirement) replaces that file in its own directory,
 * so the link stays a link.
 */

#define KEYFILE_HEADER "lodestone-keyring 1"
#define KEYFILE_MAX    (1u << 20) /* refuse key files larger than 1 MiB */
#define B64_KEYLEN     44u        /* padded base64 of 32 bytes */
#define SCRATCH_BYTES  64u        /* base64 decode area, so wrong lengths can be told */
#define LINE_MAX_BYTES (4u + 10u + 1u + B64_KEYLEN + 1u) /* "key <id> <b64>\n" */

/* ---- guarded memory ---- */

static void wipe_free(void *p, size_t n)
{
    if (p == NULL) return;
    sodium_memzero(p, n);
    sodium_free(p);
}

static void *guarded_alloc(size_t n, ls_err *err)
{
    void *p = sodium_malloc(n ? n : 1);
    if (p == NULL)
        ls_err_set(err, LS_ENOMEM, "cannot allocate %zu bytes of guarded memory for keys", n);
    return p;
}

ls_rc ls_vault_sodium_init(ls_err *err)
{
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    return LS_OK;
}

const ls_vault_key *ls_vault_find_key(const ls_vault_t *v, uint32_t id)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->keys[i].id == id) return &v->keys[i];
    return NULL;
}

/* ---- parsing ---- */

/* Decimal id, 1..UINT32_MAX, no sign, no leading zero. */
static int parse_id(const char *s, size_t n, uint32_t *out)
{
    if (n == 0 || n > 10 || s[0] == '0') return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "key <id> <base64>" at line lineno into *k; scratch holds SCRATCH_BYTES. */
static ls_rc parse_key_line(const char *line, size_t len, size_t lineno, ls_vault_key *k,
                            unsigned char *scratch, ls_err *err)
{
    if (len < 4 || memcmp(line, "key ", 4) != 0)
        return ls_err_set(err, LS_EFORMAT, "line %zu: expected \"key <id> <base64>\"", lineno);
    const char *id = line + 4;
    const char *sp = memchr(id, ' ', len - 4);
    if (sp == NULL)
        return ls_err_set(err, LS_EFORMAT, "line %zu: expected \"key <id> <base64>\"", lineno);
    if (parse_id(id, (size_t)(sp - id), &k->id) != 0)
        return ls_err_set(err, LS_EFORMAT, "line %zu: key id is not a number from 1 to 4294967295",
                          lineno);
    const char *b64 = sp + 1;
    size_t blen = len - (size_t)(b64 - line);
    if (blen > (size_t)SCRATCH_BYTES / 3 * 4)
        return ls_err_set(err, LS_EFORMAT, "line %zu: key %u is longer than %u bytes", lineno,
                          (unsigned)k->id, LS_VAULT_KEYBYTES);
    size_t bin_len = 0;
    if (sodium_base642bin(scratch, SCRATCH_BYTES, b64, blen, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        sodium_memzero(scratch, SCRATCH_BYTES); /* it may hold a decoded prefix */
        return ls_err_set(err, LS_EFORMAT, "line %zu: key %u is not valid padded base64", lineno,
                          (unsigned)k->id);
    }
    if (bin_len != LS_VAULT_KEYBYTES) {
        sodium_memzero(scratch, SCRATCH_BYTES);
        return ls_err_set(err, LS_EFORMAT, "line %zu: key %u is %zu bytes, expected %u", lineno,
                          (unsigned)k->id, bin_len, LS_VAULT_KEYBYTES);
    }
    memcpy(k->key, scratch, LS_VAULT_KEYBYTES);
    sodium_memzero(scratch, SCRATCH_BYTES);
    return LS_OK;
}

/* Parses text (len bytes, guarded memory) into a new guarded key array. */
static ls_rc parse_keyring(const char *text, size_t len, unsigned char *scratch,
                           ls_vault_key **keys_out, size_t *nkeys_out, uint32_t *current_out,
                           ls_err *err)
{
    size_t maxkeys = 1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') maxkeys++;
    size_t bytes = maxkeys * sizeof(ls_vault_key);
    ls_vault_key *keys = guarded_alloc(bytes, err);
    if (keys == NULL) return LS_ENOMEM;

    ls_rc rc = LS_OK;
    size_t nkeys = 0, lineno = 0, pos = 0;
    uint32_t current = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl != NULL);
        lineno++;
        if (lineno == 1) {
            if (llen != sizeof KEYFILE_HEADER - 1 || memcmp(line, KEYFILE_HEADER, llen) != 0) {
                rc = ls_err_set(err, LS_EFORMAT,
                                "line 1: not a Lodestone key file (expected \"%s\")",
                                KEYFILE_HEADER);
                goto fail;
            }
        } else if (lineno == 2) {
            if (llen < 8 || memcmp(line, "current ", 8) != 0 ||
                parse_id(line + 8, llen - 8, &current) != 0) {
                rc = ls_err_set(err, LS_EFORMAT, "line 2: expected \"current <id>\"");
                goto fail;
            }
        } else {
            ls_vault_key *k = &keys[nkeys];
            rc = parse_key_line(line, llen, lineno, k, scratch, err);
            if (rc != LS_OK) goto fail;
            for (size_t i = 0; i < nkeys; i++) {
                if (keys[i].id == k->id) {
                    rc = ls_err_set(err, LS_EFORMAT, "line %zu: duplicate key id %u", lineno,
                                    (unsigned)k->id);
                    goto fail;
                }
            }
            nkeys++;
        }
    }
    if (lineno == 0) {
        rc = ls_err_set(err, LS_EFORMAT, "line 1: not a Lodestone key file (the file is empty)");
        goto fail;
    }
    if (lineno == 1) {
        rc = ls_err_set(err, LS_EFORMAT, "line 2: expected \"current <id>\"");
        goto fail;
    }
    if (nkeys == 0) {
        rc = ls_err_set(err, LS_EFORMAT, "line %zu: the key file holds no keys", lineno + 1);
        goto fail;
    }
    int have_current = 0;
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].id == current) have_current = 1;
    if (!have_current) {
        rc = ls_err_set(err, LS_EFORMAT, "line 2: current key %u is not in the file",
                        (unsigned)current);
        goto fail;
    }
    *keys_out = keys;
    *nkeys_out = nkeys;
    *current_out = current;
    return LS_OK;

fail:
    wipe_free(keys, bytes);
    return rc;
}

/* ---- files ---- */

static ls_rc sys_error(ls_err *err, int e, const char *what, const char *path)
{
    ls_rc rc = (e == EACCES || e == EPERM) ? LS_EPERM : LS_EIO;
    return ls_err_set(err, rc, "%s %s: %s", what, path, strerror(e));
}

static ls_rc write_all(int fd, const char *p, size_t n, const char *path, ls_err *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sys_error(err, errno, "cannot write key file", path);
        }
        p += w;
        n -= (size_t)w;
    }
    return LS_OK;
}

static ls_rc fsync_dir(const char *dir, ls_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error(err, errno, "cannot open directory", dir);
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0) return sys_error(err, e, "cannot fsync directory", dir);
    return LS_OK;
}

/* Formats the key file in guarded memory, writes it to fd and fsyncs it. */
static ls_rc write_keyfile(int fd, const char *path, const ls_vault_key *keys, size_t nkeys,
                           uint32_t current, ls_err *err)
{
    size_t cap = sizeof KEYFILE_HEADER + 20 + nkeys * LINE_MAX_BYTES + 1;
    char *text = guarded_alloc(cap, err);
    if (text == NULL) return LS_ENOMEM;
    size_t len = (size_t)snprintf(text, cap, "%s\ncurrent %u\n", KEYFILE_HEADER, (unsigned)current);
    for (size_t i = 0; i < nkeys; i++) {
        len += (size_t)snprintf(text + len, cap - len, "key %u ", (unsigned)keys[i].id);
        sodium_bin2base64(text + len, cap - len, keys[i].key, LS_VAULT_KEYBYTES,
                          sodium_base64_VARIANT_ORIGINAL);
        len += B64_KEYLEN;
        text[len++] = '\n';
    }
    ls_rc rc = write_all(fd, text, len, path, err);
    wipe_free(text, cap);
    if (rc == LS_OK && fsync(fd) != 0) rc = sys_error(err, errno, "cannot fsync key file", path);
    return rc;
}

/* Creates the key file with one fresh key. LS_EEXIST (err untouched) when
 * another process created it first. */
static ls_rc create_keyfile(ls_vault_t *v, ls_err *err)
{
    ls_vault_key *keys = guarded_alloc(sizeof *keys, err);
    if (keys == NULL) return LS_ENOMEM;
    keys[0].id = 1;
    randombytes_buf(keys[0].key, LS_VAULT_KEYBYTES);

    ls_rc rc;
    int created = 0;
    int fd = open(v->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? LS_EEXIST : sys_error(err, errno, "cannot create key file", v->path);
        goto fail;
    }
    created = 1;
    /* 0600 exactly, whatever the umask (which can only have narrowed it). */
    if (fchmod(fd, 0600) != 0) {
        rc = sys_error(err, errno, "cannot chmod key file", v->path);
        goto fail;
    }
    rc = write_keyfile(fd, v->path, keys, 1, 1, err);
    if (rc != LS_OK) goto fail;
    int r = close(fd);
    fd = -1;
    if (r != 0) {
        rc = sys_error(err, errno, "cannot close key file", v->path);
        goto fail;
    }
    rc = fsync_dir(v->dir, err);
    if (rc != LS_OK) goto fail;
    v->keys = keys;
    v->nkeys = 1;
    v->current = 1;
    v->created = 1;
    return LS_OK;

fail:
    if (fd >= 0) close(fd);
    if (created) unlink(v->path); /* never leave a half-written key file behind */
    wipe_free(keys, sizeof *keys);
    return rc;
}

/* Refuses anything but a regular file of this process's effective user
 * that group and others cannot use. */
static ls_rc check_keyfile(int fd, const char *path, struct stat *st, ls_err *err)
{
    if (fstat(fd, st) != 0) return sys_error(err, errno, "cannot stat key file", path);
    if (!S_ISREG(st->st_mode))
        return ls_err_set(err, LS_EPERM, "key file %s is not a regular file", path);
    /* Another user's file could be replaced or read by that user. */
    if (st->st_uid != geteuid())
        return ls_err_set(err, LS_EPERM,
                          "key file %s is owned by uid %u, not by the user this process runs as "
                          "(uid %u): chown it, or run as its owner",
                          path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (st->st_mode & 077)
        return ls_err_set(err, LS_EPERM,
                          "key file %s has mode %04o: it must not be readable or writable by "
                          "group or others (chmod 600 %s)",
                          path, (unsigned)(st->st_mode & 07777), path);
    if (st->st_size > (off_t)KEYFILE_MAX)
        return ls_err_set(err, LS_EFORMAT, "key file %s is larger than %u bytes", path,
                          KEYFILE_MAX);
    return LS_OK;
}

/* Reads and parses an open key file into v. */
static ls_rc read_keyfile(ls_vault_t *v, int fd, ls_err *err)
{
    struct stat st;
    ls_rc rc = check_keyfile(fd, v->path, &st, err);
    if (rc != LS_OK) return rc;

    size_t size = (size_t)st.st_size;
    size_t bytes = size + SCRATCH_BYTES;
    char *text = guarded_alloc(bytes, err);
    if (text == NULL) return LS_ENOMEM;
    size_t len = 0;
    while (len < size) {
        ssize_t r = read(fd, text + len, size - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = sys_error(err, errno, "cannot read key file", v->path);
            goto done;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    rc = parse_keyring(text, len, (unsigned char *)text + size, &v->keys, &v->nkeys, &v->current,
                       err);
    if (rc != LS_OK) ls_err_prefix(err, "key file %s", v->path);

done:
    wipe_free(text, bytes);
    return rc;
}

static ls_rc load_keyfile(ls_vault_t *v, int create, ls_err *err)
{
    /* O_NONBLOCK: a FIFO must not hang the open; check_keyfile refuses it. */
    const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = open(v->path, flags);
    if (fd < 0 && errno == ENOENT && create) {
        ls_rc rc = create_keyfile(v, err);
        if (rc != LS_EEXIST) return rc;
        fd = open(v->path, flags); /* lost a race with another creator: read theirs */
    }
    if (fd < 0) {
        if (errno == ENOENT)
            return ls_err_set(err, LS_ENOTFOUND, "key file %s does not exist", v->path);
        return sys_error(err, errno, "cannot open key file", v->path);
    }
    ls_rc rc = read_keyfile(v, fd, err);
    close(fd);
    return rc;
}

/* ---- public ---- */

ls_rc ls_vault_load(ls_vault_t **out, const char *key_file, const ls_vault_opts *opts, ls_err *err)
{
    if (out == NULL || key_file == NULL || key_file[0] == '\0')
        return ls_err_set(err, LS_EINVAL, "ls_vault_load needs an out pointer and a key file path");
    *out = NULL;
    ls_rc rc = ls_vault_sodium_init(err);
    if (rc != LS_OK) return rc;

    ls_vault_t *v = ls_calloc(1, sizeof *v);
    if (v == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory loading a keyring");
    /* Writer-preferring, so a rotation is not starved by a stream of seals. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int lr = pthread_rwlock_init(&v->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (lr != 0) {
        rc = ls_err_set(err, LS_ENOMEM, "cannot create the keyring lock");
        goto fail;
    }
    v->lock_ready = 1;
    const char *slash = strrchr(key_file, '/');
    v->path = ls_strdup(key_file);
    v->dir = slash == NULL       ? ls_strdup(".")
             : slash == key_file ? ls_strdup("/")
                                 : ls_strndup(key_file, (size_t)(slash - key_file));
    if (v->path == NULL || v->dir == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory loading a keyring");
        goto fail;
    }
    rc = load_keyfile(v, opts != NULL && opts->create_if_missing, err);
    if (rc != LS_OK) goto fail;
    *out = v;
    return LS_OK;

fail:
    ls_vault_close(v);
    return rc;
}

void ls_vault_close(ls_vault_t *v)
{
    if (v == NULL) return;
    wipe_free(v->keys, v->nkeys * sizeof *v->keys);
    if (v->lock_ready) pthread_rwlock_destroy(&v->lock);
    ls_free(v->path);
    ls_free(v->dir);
    ls_free(v);
}

int ls_vault_created(const ls_vault_t *v)
{
    return v != NULL && v->created;
}

void ls_vault_discard(ls_vault_t *v)
{
    if (v != NULL && v->created && v->path != NULL && unlink(v->path) == 0 && v->dir != NULL)
        (void)fsync_dir(v->dir, NULL);
    ls_vault_close(v);
}

uint32_t ls_vault_current_key(const ls_vault_t *v)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&v->lock; /* the lock is not the value */
    pthread_rwlock_rdlock(lock);
    uint32_t id = v->current;
    pthread_rwlock_unlock(lock);
    return id;
}

int ls_vault_holds_key(const ls_vault_t *v, uint32_t id)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&v->lock;
    pthread_rwlock_rdlock(lock);
    int held = ls_vault_find_key(v, id) != NULL;
    pthread_rwlock_unlock(lock);
    return held;
}

size_t ls_vault_key_count(const ls_vault_t *v)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&v->lock;
    pthread_rwlock_rdlock(lock);
    size_t n = v->nkeys;
    pthread_rwlock_unlock(lock);
    return n;
}

/* The file v->path names, through any symlinks, in memory from
 * ls_malloc; *dir receives its directory (ls_malloc'd too). Resolved at
 * each rewrite: the link may have been pointed elsewhere since the load.
 * A path that no longer resolves (the file or its directory was removed)
 * is taken as it is: the write beside it then says what is wrong. A
 * symlink whose target is gone is refused: renaming over it would put the
 * keys beside the link, a regular file in the link's directory, where the
 * operator chose not to keep them. */
static ls_rc resolve_keyfile(const ls_vault_t *v, char **target, char **dir, ls_err *err)
{
    char *real = realpath(v->path, NULL);
    if (real == NULL && errno != ENOENT && errno != ENOTDIR)
        return sys_error(err, errno, "cannot resolve key file", v->path);
    struct stat lst;
    if (real == NULL && lstat(v->path, &lst) == 0 && S_ISLNK(lst.st_mode))
        return ls_err_set(err, LS_EIO,
                          "key file %s is a symlink to a file that no longer exists: nothing "
                          "was written (restore the file it points to, or point the link at "
                          "the key file)",
                          v->path);
    if (real == NULL) {
        *target = ls_strdup(v->path);
        *dir = ls_strdup(v->dir);
    } else {
        const char *slash = strrchr(real, '/'); /* realpath's answer is absolute */
        *target = ls_strdup(real);
        *dir = slash == real ? ls_strdup("/") : ls_strndup(real, (size_t)(slash - real));
        free(real);
    }
    if (*target == NULL || *dir == NULL) {
        ls_free(*target);
        ls_free(*dir);
        *target = *dir = NULL;
        return ls_err_set(err, LS_ENOMEM, "out of memory rewriting key file %s", v->path);
    }
    return LS_OK;
}

/* Writes keys to a temporary file beside the file v->path names (through
 * a symlink: beside its target, which it replaces) and renames it over.
 * *renamed is 1 once the rename is done: a failure after it (the sync of
 * the directory) leaves the new file in place. */
static ls_rc replace_keyfile(ls_vault_t *v, const ls_vault_key *keys, size_t nkeys,
                             uint32_t current, int *renamed, ls_err *err)
{
    *renamed = 0;
    static const char suffix[] = ".tmp-XXXXXX";
    char *target = NULL, *dir = NULL, *tmp = NULL;
    int fd = -1;
    ls_rc rc = resolve_keyfile(v, &target, &dir, err);
    if (rc != LS_OK) return rc;
    size_t plen = strlen(target);
    tmp = ls_malloc(plen + sizeof suffix);
    if (tmp == NULL) {
        rc = ls_err_set(err, LS_ENOMEM, "out of memory rewriting key file %s", v->path);
        goto out;
    }
    memcpy(tmp, target, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = sys_error(err, errno, "cannot create a temporary key file beside", target);
        goto out;
    }
    if (fchmod(fd, 0600) != 0) {
        rc = sys_error(err, errno, "cannot chmod key file", tmp);
        goto fail;
    }
    rc = write_keyfile(fd, tmp, keys, nkeys, current, err);
    if (rc != LS_OK) goto fail;
    int r = close(fd);
    fd = -1;
    if (r != 0) {
        rc = sys_error(err, errno, "cannot close key file", tmp);
        goto fail;
    }
    if (rename(tmp, target) != 0) {
        rc = sys_error(err, errno, "cannot rename the new key file to", target);
        goto fail;
    }
    *renamed = 1;
    rc = fsync_dir(dir, err);
    goto out;

fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
out:
    ls_free(tmp);
    ls_free(target);
    ls_free(dir);
    return rc;
}

ls_rc ls_vault_rotate(ls_vault_t *v, uint32_t *new_id, ls_err *err)
{
    if (v == NULL) return ls_err_set(err, LS_EINVAL, "ls_vault_rotate needs a vault");
    pthread_rwlock_wrlock(&v->lock);
    ls_rc rc;
    uint32_t max = 0;
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->keys[i].id > max) max = v->keys[i].id;
    if (max == UINT32_MAX) {
        rc = ls_err_set(err, LS_EINVAL, "key file %s: key ids are exhausted", v->path);
        goto done;
    }
    size_t n = v->nkeys + 1;
    ls_vault_key *keys = guarded_alloc(n * sizeof *keys, err);
    if (keys == NULL) {
        rc = LS_ENOMEM;
        goto done;
    }
    memcpy(keys, v->keys, v->nkeys * sizeof *keys);
    keys[n - 1].id = max + 1;
    randombytes_buf(keys[n - 1].key, LS_VAULT_KEYBYTES);
    int renamed;
    rc = replace_keyfile(v, keys, n, max + 1, &renamed, err);
    if (rc != LS_OK) {
        /* Kept out of v even when the file was replaced: were the rename
         * lost in a crash, what v sealed under the new key would not open. */
        if (renamed)
            ls_err_prefix(err, "key file %s holds key %u now, but it may not last a crash", v->path,
                          (unsigned)(max + 1));
        wipe_free(keys, n * sizeof *keys);
        goto done;
    }
    wipe_free(v->keys, v->nkeys * sizeof *v->keys);
    v->keys = keys;
    v->nkeys = n;
    v->current = max + 1;
    if (new_id) *new_id = max + 1;

done:
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

size_t ls_vault_key_ids(const ls_vault_t *v, uint32_t *ids, size_t cap)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&v->lock;
    pthread_rwlock_rdlock(lock);
    size_t n = v->nkeys;
    for (size_t i = 0; i < n && i < cap; i++) ids[i] = v->keys[i].id;
    pthread_rwlock_unlock(lock);
    return n;
}

ls_rc ls_vault_retire_old_keys(ls_vault_t *v, ls_err *err)
{
    if (v == NULL) return ls_err_set(err, LS_EINVAL, "ls_vault_retire_old_keys needs a vault");
    pthread_rwlock_wrlock(&v->lock);
    ls_rc rc = LS_OK;
    if (v->nkeys == 1) goto done;
    ls_vault_key *keys = guarded_alloc(sizeof *keys, err);
    if (keys == NULL) {
        rc = LS_ENOMEM;
        goto done;
    }
    *keys = *ls_vault_find_key(v, v->current);
    int renamed;
    rc = replace_keyfile(v, keys, 1, v->current, &renamed, err);
    if (rc != LS_OK && !renamed) {
        wipe_free(keys, sizeof *keys);
        goto done;
    }
    /* Renamed, even when its directory's sync failed: v holds what the
     * file holds. Either file opens the store, whose values are all under
     * the current key. */
    if (rc != LS_OK)
        ls_err_prefix(err, "key file %s holds key %u alone now, but it may not last a crash",
                      v->path, (unsigned)v->current);
    wipe_free(v->keys, v->nkeys * sizeof *v->keys);
    v->keys = keys;
    v->nkeys = 1;

done:
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

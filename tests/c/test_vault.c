/* SPDX-License-Identifier: MIT
 * Tests of native/vault/: known-answer vectors (tests/c/vectors/), key file
 * creation, permissions and parsing, sealing round trips and tampering,
 * rotation, named secrets in a real store, allocation failures, and a grep
 * of the data directory that must never find a plaintext.
 */
#define _GNU_SOURCE 1 /* memmem, nftw */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vault/vault_int.h" /* known-answer entry points */

static char *tdir; /* group temp directory */
static int seq;    /* for unique names below tdir */

/* ---- helpers ---- */

/* A fresh path below tdir: "<tdir>/<base>-<n>". Caller frees with free. */
static char *fresh(const char *base)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%d", base, ++seq);
    return th_path(tdir, name);
}

static char *fresh_dir(const char *base)
{
    char *d = fresh(base);
    if (mkdir(d, 0700) != 0) fail_msg("mkdir %s: %s", d, strerror(errno));
    return d;
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fail_msg("open %s: %s", path, strerror(errno));
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("fopen %s: %s", path, strerror(errno));
    unsigned char *p = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            p = realloc(p, cap + 1);
            assert_non_null(p);
        }
        size_t r = fread(p + len, 1, cap - len, f);
        if (r == 0) break;
        len += r;
    }
    fclose(f);
    if (p == NULL) p = malloc(1);
    *n = len;
    return p;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL) fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* Creates a key file with one fresh key and returns the loaded vault. */
static ls_vault_t *new_vault(char **path_out)
{
    char *dir = fresh_dir("keys");
    char *path = th_path(dir, "master.key");
    free(dir);
    ls_vault_opts o = {.create_if_missing = 1};
    ls_vault_t *v = NULL;
    ls_err err = {0};
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    if (path_out)
        *path_out = path;
    else
        free(path);
    return v;
}

static ls_store_t *new_store(char **path_out)
{
    char *path = fresh("store");
    ls_store_opts o = {.create_if_missing = 1};
    ls_store_t *st = NULL;
    ls_err err = {0};
    th_ok(ls_store_open(&st, path, &o, &err), &err);
    if (path_out)
        *path_out = path;
    else
        free(path);
    return st;
}

static void secret_key(ls_buf *k, const char *name)
{
    ls_err err;
    ls_buf_clear(k);
    th_ok(ls_key_ns(k, LS_NS_SECRET, &err), &err);
    th_ok(ls_key_str(k, name, strlen(name), &err), &err);
}

static void assert_secret(ls_vault_t *v, ls_store_t *st, const char *name, const void *val,
                          size_t len)
{
    ls_secret_t *s = NULL;
    ls_err err = {0};
    th_ok(ls_vault_secret_get(v, st, name, &s, &err), &err);
    assert_int_equal(ls_secret_len(s), len);
    assert_non_null(ls_secret_data(s));
    if (len) assert_memory_equal(ls_secret_data(s), val, len);
    ls_secret_free(s);
}

/* A secret record's header: version byte and big-endian updated_ms. */
#define REC_HEAD    9
#define REC_VERSION 0x81

static int64_t now_ms(void)
{
    return ls_clock_wall_ms(NULL);
}

/* The stored record of a secret, raw. */
static void get_record(ls_store_t *st, const char *name, ls_buf *raw)
{
    ls_buf k = LS_BUF_INIT;
    ls_err err;
    secret_key(&k, name);
    th_ok(ls_store_get(st, k.ptr, k.len, raw, &err), &err);
    ls_buf_free(&k);
}

static void put_record(ls_store_t *st, const char *name, const void *raw, size_t len)
{
    ls_buf k = LS_BUF_INIT;
    ls_err err;
    secret_key(&k, name);
    th_ok(ls_store_put(st, k.ptr, k.len, raw, len, LS_STORE_SYNC, &err), &err);
    ls_buf_free(&k);
}

static int64_t record_ms(const ls_buf *raw)
{
    assert_true(raw->len >= REC_HEAD);
    uint64_t u = 0;
    for (int i = 1; i < REC_HEAD; i++) u = u << 8 | raw->ptr[i];
    return (int64_t)u;
}

/* ---- vector files: "name = hex" lines, records end at a blank line ---- */

#define VMAX 8
typedef struct {
    int n;
    char name[VMAX][16];
    char *text[VMAX];
} vrec;

static int read_vectors(const char *file, vrec *recs, int max)
{
    char *path = th_path(LS_TEST_VECTORS, file);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("cannot open vector file %s", path);
    free(path);
    int nrec = 0;
    char line[1024];
    memset(recs, 0, sizeof *recs * (size_t)max);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#') continue;
        if (line[0] == '\0') {
            if (nrec < max && recs[nrec].n > 0) nrec++;
            continue;
        }
        assert_true(nrec < max);
        vrec *r = &recs[nrec];
        char *eq = strchr(line, '=');
        assert_non_null(eq);
        assert_true(r->n < VMAX);
        size_t nl = (size_t)(eq - line);
        while (nl > 0 && line[nl - 1] == ' ') nl--;
        assert_true(nl < sizeof r->name[0]);
        memcpy(r->name[r->n], line, nl);
        char *val = eq + 1;
        while (*val == ' ') val++;
        r->text[r->n] = strdup(val);
        r->n++;
    }
    if (nrec < max && recs[nrec].n > 0) nrec++;
    fclose(f);
    return nrec;
}

static void free_vectors(vrec *recs, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < recs[i].n; j++) free(recs[i].text[j]);
}

static const char *vtext(const vrec *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->name[i], name) == 0) return r->text[i];
    fail_msg("vector field %s is missing", name);
    return NULL;
}

/* Hex field decoded into a malloc'd buffer (never NULL). */
static unsigned char *vhex(const vrec *r, const char *name, size_t *len)
{
    const char *hex = vtext(r, name);
    size_t hl = strlen(hex);
    unsigned char *bin = malloc(hl / 2 + 1);
    assert_non_null(bin);
    assert_int_equal(sodium_hex2bin(bin, hl / 2 + 1, hex, hl, NULL, len, NULL), 0);
    assert_int_equal(*len * 2, hl);
    return bin;
}

/* ---- known answers ---- */

static void test_vault_constants(void **state)
{
    (void)state;
    assert_int_equal(ls_vault_keybytes(), 32);
    assert_int_equal(ls_vault_overhead(), 1 + 4 + 24 + 16);
    assert_int_equal(LS_VAULT_OVERHEAD, ls_vault_overhead());
}

/* draft-irtf-cfrg-xchacha-03 A.3.1 through the AEAD that seal uses. */
static void test_vault_kat_xchacha20poly1305(void **state)
{
    (void)state;
    ls_err err;
    th_ok(ls_vault_sodium_init(&err), &err);
    vrec r[1];
    assert_int_equal(read_vectors("xchacha20poly1305.txt", r, 1), 1);
    size_t kl, nl, al, pl, cl, tl;
    unsigned char *key = vhex(r, "key", &kl), *nonce = vhex(r, "nonce", &nl);
    unsigned char *ad = vhex(r, "ad", &al), *pt = vhex(r, "pt", &pl);
    unsigned char *ct = vhex(r, "ct", &cl), *tag = vhex(r, "tag", &tl);
    assert_int_equal(kl, LS_VAULT_KEYBYTES);
    assert_int_equal(nl, LS_VAULT_NONCEBYTES);
    assert_int_equal(tl, LS_VAULT_MACBYTES);
    assert_int_equal(cl, pl);

    unsigned char *out = malloc(pl + LS_VAULT_MACBYTES);
    ls_vault_aead_encrypt(key, nonce, ad, al, pt, pl, out);
    assert_memory_equal(out, ct, cl);
    assert_memory_equal(out + cl, tag, tl);

    free(out);
    free(key), free(nonce), free(ad), free(pt), free(ct), free(tag);
    free_vectors(r, 1);
}

/* The sealed format (sealed-v1.txt), both ways: our seal reproduces the
 * bytes, and a vault loaded from keyring-v1.txt opens them. */
static void test_vault_kat_sealed_format(void **state)
{
    (void)state;
    ls_err err = {0};
    th_ok(ls_vault_sodium_init(&err), &err);

    /* The key file vector, copied to a 0600 file (git keeps no modes). */
    char *src = th_path(LS_TEST_VECTORS, "keyring-v1.txt");
    size_t klen;
    unsigned char *ktext = read_file(src, &klen);
    char *kpath = fresh("keyring-v1");
    write_file(kpath, ktext, klen, 0600);
    ls_vault_t *v = NULL;
    th_ok(ls_vault_load(&v, kpath, NULL, &err), &err);
    assert_int_equal(ls_vault_current_key(v), 2);
    assert_int_equal(ls_vault_key_count(v), 2);

    vrec r[4];
    int n = read_vectors("sealed-v1.txt", r, 4);
    assert_int_equal(n, 3);
    ls_buf out = LS_BUF_INIT;
    for (int i = 0; i < n; i++) {
        size_t kl, nl, al, pl, sl;
        unsigned char *key = vhex(&r[i], "key", &kl), *nonce = vhex(&r[i], "nonce", &nl);
        unsigned char *ad = vhex(&r[i], "ad", &al), *pt = vhex(&r[i], "pt", &pl);
        unsigned char *sealed = vhex(&r[i], "sealed", &sl);
        uint32_t id = (uint32_t)strtoul(vtext(&r[i], "keyid"), NULL, 10);

        th_ok(
            ls_vault_seal_with(key, id, nonce, al ? ad : NULL, al, pl ? pt : NULL, pl, &out, &err),
            &err);
        assert_int_equal(out.len, sl);
        assert_memory_equal(out.ptr, sealed, sl);
        assert_int_equal(ls_vault_sealed_key(sealed, sl), id);

        th_ok(ls_vault_open(v, ad, al, sealed, sl, &out, &err), &err);
        assert_int_equal(out.len, pl);
        if (pl) assert_memory_equal(out.ptr, pt, pl);

        free(key), free(nonce), free(ad), free(pt), free(sealed);
    }
    ls_buf_free(&out);
    free_vectors(r, n);
    ls_vault_close(v);
    free(ktext), free(kpath), free(src);
}

/* ---- key files ---- */

static void test_vault_create_if_missing_mode_0600(void **state)
{
    (void)state;
    mode_t old = umask(0); /* the widest umask must not widen the file */
    char *path = NULL;
    ls_vault_t *v = new_vault(&path);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(ls_vault_current_key(v), 1);
    assert_int_equal(ls_vault_key_count(v), 1);

    size_t n;
    char *text = (char *)read_file(path, &n);
    text[n] = '\0';
    assert_int_equal(strncmp(text, "lodestone-keyring 1\ncurrent 1\nkey 1 ", 36), 0);
    assert_int_equal(n, 36 + 44 + 1);
    free(text);

    /* Loading again (without create) gives the same key. */
    ls_err err = {0};
    ls_vault_t *v2 = NULL;
    th_ok(ls_vault_load(&v2, path, NULL, &err), &err);
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, "ad", 2, "hello", 5, &sealed, &err), &err);
    th_ok(ls_vault_open(v2, "ad", 2, sealed.ptr, sealed.len, &out, &err), &err);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.ptr, "hello", 5);
    ls_buf_free(&sealed), ls_buf_free(&out);
    ls_vault_close(v2);
    ls_vault_close(v);

    /* create_if_missing on an existing file loads it, never replaces it. */
    ls_vault_opts o = {.create_if_missing = 1};
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(before.st_size, after.st_size);
    ls_vault_close(v);
    free(path);
}

static void test_vault_load_missing(void **state)
{
    (void)state;
    char *path = fresh("absent.key");
    ls_vault_t *v = (ls_vault_t *)&v; /* must be reset */
    ls_err err = {0};
    assert_int_equal(ls_vault_load(&v, path, NULL, &err), LS_ENOTFOUND);
    assert_null(v);
    assert_contains(err.msg, path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);

    /* Create in a directory that does not exist: an error, nothing made. */
    char *deep = th_path(path, "sub/master.key");
    ls_vault_opts o = {.create_if_missing = 1};
    assert_int_equal(ls_vault_load(&v, deep, &o, &err), LS_EIO);
    assert_contains(err.msg, "cannot create key file");

    assert_int_equal(ls_vault_load(&v, "", NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_load(&v, NULL, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_load(NULL, path, NULL, &err), LS_EINVAL);
    ls_vault_close(NULL);
    free(deep), free(path);
}

static void test_vault_bad_permissions(void **state)
{
    (void)state;
    char *path = NULL;
    ls_vault_t *v = new_vault(&path);
    ls_vault_close(v);
    static const struct {
        mode_t mode;
        const char *text;
    } bad[] = {{0640, "0640"}, {0604, "0604"}, {0660, "0660"}, {0644, "0644"},
               {0601, "0601"}, {0610, "0610"}, {0602, "0602"}, {0620, "0620"}};
    ls_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i].mode), 0);
        v = (ls_vault_t *)&v;
        memset(&err, 0, sizeof err);
        assert_int_equal(ls_vault_load(&v, path, NULL, &err), LS_EPERM);
        assert_null(v);
        assert_int_equal(err.code, LS_EPERM);
        assert_contains(err.msg, bad[i].text);
        assert_contains(err.msg, "must not be readable or writable by group or others");
        assert_contains(err.msg, "chmod 600");
        assert_contains(err.msg, path);
        /* create_if_missing does not bypass the check */
        ls_vault_opts o = {.create_if_missing = 1};
        assert_int_equal(ls_vault_load(&v, path, &o, &err), LS_EPERM);
    }
    /* Owner-only modes are fine. */
    static const mode_t good[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(chmod(path, good[i]), 0);
        th_ok(ls_vault_load(&v, path, NULL, &err), &err);
        ls_vault_close(v);
    }
    /* Not a regular file. */
    char *dir = fresh_dir("dir.key");
    assert_int_equal(ls_vault_load(&v, dir, NULL, &err), LS_EPERM);
    assert_contains(err.msg, "not a regular file");
    /* A FIFO is refused without hanging on the open. */
    char *fifo = fresh("fifo.key");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(ls_vault_load(&v, fifo, NULL, &err), LS_EPERM);
    assert_contains(err.msg, "not a regular file");
    free(fifo), free(dir), free(path);
}

/* A key file another user owns is refused (that user could replace it or,
 * changing its mode, read it); only root can make one here. */
static void test_vault_key_file_owner(void **state)
{
    (void)state;
    if (geteuid() != 0) skip();
    char *path = NULL;
    ls_vault_t *v = new_vault(&path);
    ls_vault_close(v);
    ls_err err = {0};
    assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
    v = (ls_vault_t *)&v;
    assert_int_equal(ls_vault_load(&v, path, NULL, &err), LS_EPERM);
    assert_null(v);
    assert_contains(err.msg, "is owned by uid 65534, not by the user this process runs as (uid 0)");
    assert_contains(err.msg, path);
    ls_vault_opts o = {.create_if_missing = 1};
    assert_int_equal(ls_vault_load(&v, path, &o, &err), LS_EPERM);
    /* Root's own is fine when running as root. */
    assert_int_equal(chown(path, 0, (gid_t)-1), 0);
    th_ok(ls_vault_load(&v, path, NULL, &err), &err);
    ls_vault_close(v);
    free(path);
}

/* ls_vault_discard removes a key file only when the load created it. */
static void test_vault_discard_created(void **state)
{
    (void)state;
    char *dir = fresh_dir("discard");
    char *path = th_path(dir, "master.key");
    ls_vault_opts o = {.create_if_missing = 1};
    ls_vault_t *v = NULL;
    ls_err err = {0};
    struct stat sb;
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    assert_int_equal(ls_vault_created(v), 1);
    assert_int_equal(stat(path, &sb), 0);
    ls_vault_discard(v);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(errno, ENOENT);

    /* Loaded, not created: the file stays, with or without create. */
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    ls_vault_close(v);
    th_ok(ls_vault_load(&v, path, &o, &err), &err);
    assert_int_equal(ls_vault_created(v), 0);
    ls_vault_discard(v);
    th_ok(ls_vault_load(&v, path, NULL, &err), &err);
    assert_int_equal(ls_vault_created(v), 0);
    ls_vault_discard(v);
    assert_int_equal(stat(path, &sb), 0);
    ls_vault_discard(NULL);
    assert_int_equal(ls_vault_created(NULL), 0);
    free(path), free(dir);
}

static const char K64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"
                          "MzQ1Njc4OTo7PD0+Pw=="; /* 64 bytes */

static void test_vault_malformed_key_files(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *want; /* substring of the message */
    } cases[] = {
        {"", "line 1: not a Lodestone key file"},
        {"bogus\n", "line 1: not a Lodestone key file"},
        {"lodestone-keyring 2\ncurrent 1\n", "line 1: not a Lodestone key file"},
        {"lodestone-keyring 1\r\ncurrent 1\r\n", "line 1: not a Lodestone key file"},
        {"lodestone-keyring 1", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent x\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent 01\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent 0\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent 4294967296\n", "line 2: expected \"current <id>\""},
        {"lodestone-keyring 1\ncurrent 1\n", "line 3: the key file holds no keys"},
        {"lodestone-keyring 1\ncurrent 1\n\n", "line 3: expected \"key <id> <base64>\""},
        {"lodestone-keyring 1\ncurrent 1\nkey\n", "line 3: expected \"key <id> <base64>\""},
        {"lodestone-keyring 1\ncurrent 1\nkey 1\n", "line 3: expected \"key <id> <base64>\""},
        {"lodestone-keyring 1\ncurrent 1\nkey 0 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
         "line 3: key id is not a number"},
        {"lodestone-keyring 1\ncurrent 1\nkey -1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
         "line 3: key id is not a number"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
         "line 3: key 1 is not valid padded base64"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \n",
         "line 3: key 1 is not valid padded base64"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n",
         "line 3: key 1 is not valid padded base64"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*h8=\n",
         "line 3: key 1 is not valid padded base64"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODw==\n",
         "line 3: key 1 is 16 bytes, expected 32"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 \n", "line 3: key 1 is 0 bytes, expected 32"},
        {NULL, "line 3: key 1 is longer than 32 bytes"}, /* K64, built below */
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
         "key 1 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n",
         "line 4: duplicate key id 1"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
         "key 2 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n",
         "line 4: key 2 is not valid padded base64"},
        {"lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
         "# comment\n",
         "line 4: expected \"key <id> <base64>\""},
        {"lodestone-keyring 1\ncurrent 5\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
         "line 2: current key 5 is not in the file"},
    };
    char k64[256];
    snprintf(k64, sizeof k64, "lodestone-keyring 1\ncurrent 1\nkey 1 %s\n", K64);
    ls_err err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text ? cases[i].text : k64;
        char *path = fresh("bad.key");
        write_file(path, text, strlen(text), 0600);
        ls_vault_t *v = (ls_vault_t *)&v;
        memset(&err, 0, sizeof err);
        ls_rc rc = ls_vault_load(&v, path, NULL, &err);
        if (rc != LS_EFORMAT) fail_msg("case %zu: %s (%s)", i, ls_rc_name(rc), err.msg);
        assert_null(v);
        assert_contains(err.msg, path);
        assert_contains(err.msg, cases[i].want);
        /* Messages never quote key material. */
        assert_null(strstr(err.msg, "AAECAwQF"));
        assert_null(strstr(err.msg, "ICEiIyQl"));
        free(path);
    }

    /* Accepted: a missing final newline; keys in any id order; big ids. */
    const char *ok[] = {
        "lodestone-keyring 1\ncurrent 1\nkey 1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "lodestone-keyring 1\ncurrent 4294967295\n"
        "key 4294967295 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
        "key 7 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *path = fresh("ok.key");
        write_file(path, ok[i], strlen(ok[i]), 0600);
        ls_vault_t *v = NULL;
        th_ok(ls_vault_load(&v, path, NULL, &err), &err);
        assert_true(ls_vault_key_count(v) == (i == 0 ? 1 : 2));
        if (i == 1) {
            assert_int_equal(ls_vault_current_key(v), 4294967295u);
            /* ids are exhausted: rotation refuses, the file is unchanged */
            assert_int_equal(ls_vault_rotate(v, NULL, &err), LS_EINVAL);
            assert_contains(err.msg, "exhausted");
        }
        ls_vault_close(v);
        free(path);
    }
}

/* ---- sealing ---- */

static void test_vault_round_trip(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_err err = {0};
    ls_buf s1 = LS_BUF_INIT, s2 = LS_BUF_INIT, out = LS_BUF_INIT;
    static const size_t lens[] = {0, 1, 15, 16, 17, 64, 1000, 70000};
    unsigned char *pt = malloc(70000);
    for (size_t i = 0; i < 70000; i++) pt[i] = (unsigned char)(i * 7 + 3);
    char bigad[1000]; /* longer than the stack buffer for associated data */
    memset(bigad, 'a', sizeof bigad);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int a = 0; a < 3; a++) {
            const void *ad = a == 0 ? NULL : a == 1 ? (const void *)"run:42" : (const void *)bigad;
            size_t adlen = a == 0 ? 0 : a == 1 ? 6 : sizeof bigad;
            th_ok(ls_vault_seal(v, ad, adlen, lens[i] ? pt : NULL, lens[i], &s1, &err), &err);
            th_ok(ls_vault_seal(v, ad, adlen, pt, lens[i], &s2, &err), &err);
            assert_int_equal(s1.len, lens[i] + LS_VAULT_OVERHEAD);
            assert_int_equal(s1.ptr[0], 1);
            assert_int_equal(ls_vault_sealed_key(s1.ptr, s1.len), 1);
            /* a fresh nonce each time */
            assert_memory_not_equal(s1.ptr + 5, s2.ptr + 5, LS_VAULT_NONCEBYTES);
            th_ok(ls_vault_open(v, ad, adlen, s1.ptr, s1.len, &out, &err), &err);
            assert_int_equal(out.len, lens[i]);
            if (lens[i]) assert_memory_equal(out.ptr, pt, lens[i]);
            th_ok(ls_vault_open(v, ad, adlen, s2.ptr, s2.len, &out, &err), &err);
            assert_int_equal(out.len, lens[i]);
        }
    }
    /* The plaintext does not appear in the sealed value. */
    th_ok(ls_vault_seal(v, NULL, 0, "PLAINTEXT-MARKER", 16, &s1, &err), &err);
    assert_null(memmem(s1.ptr, s1.len, "PLAINTEXT", 9));
    free(pt);
    ls_buf_free(&s1), ls_buf_free(&s2), ls_buf_free(&out);
    ls_vault_close(v);
}

static void test_vault_bad_arguments(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_err err;
    ls_buf out = LS_BUF_INIT;
    unsigned char junk[LS_VAULT_OVERHEAD + 4] = {1, 0, 0, 0, 1};
    assert_int_equal(ls_vault_seal(NULL, NULL, 0, "x", 1, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_seal(v, NULL, 3, "x", 1, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_seal(v, NULL, 0, NULL, 1, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_seal(v, NULL, 0, "x", 1, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_seal(v, NULL, 0, "x", SIZE_MAX - 10, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_open(NULL, NULL, 0, junk, sizeof junk, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_open(v, NULL, 0, junk, sizeof junk, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_open(v, NULL, 2, junk, sizeof junk, &out, &err), LS_EINVAL);
    assert_int_equal(ls_vault_open(v, NULL, 0, NULL, 0, &out, &err), LS_EFORMAT);
    for (size_t n = 0; n < LS_VAULT_OVERHEAD; n++) {
        assert_int_equal(ls_vault_open(v, NULL, 0, junk, n, &out, &err), LS_EFORMAT);
        assert_contains(err.msg, "shorter than the 45-byte minimum");
        assert_int_equal(ls_vault_sealed_key(junk, n), 0);
    }
    assert_int_equal(ls_vault_sealed_key(NULL, 100), 0);
    assert_int_equal(ls_vault_sealed_key(junk, sizeof junk), 1);
    junk[0] = 2;
    assert_int_equal(ls_vault_sealed_key(junk, sizeof junk), 0);
    assert_int_equal(ls_vault_open(v, NULL, 0, junk, sizeof junk, &out, &err), LS_EFORMAT);
    assert_contains(err.msg, "format version 2");
    assert_int_equal(ls_vault_rotate(NULL, NULL, &err), LS_EINVAL);
    ls_buf_free(&out);
    ls_vault_close(v);
}

static void test_vault_tamper(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_err err;
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, "ad", 2, "attack at dawn", 14, &sealed, &err), &err);
    unsigned char *t = malloc(sealed.len);
    /* Every byte, two different bits: header, key id, nonce, body, tag. */
    for (size_t i = 0; i < sealed.len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(t, sealed.ptr, sealed.len);
            t[i] ^= (unsigned char)(1u << bit);
            th_ok(ls_buf_set(&out, "junk", 4, &err), &err);
            memset(&err, 0, sizeof err);
            ls_rc rc = ls_vault_open(v, "ad", 2, t, sealed.len, &out, &err);
            if (i == 0) {
                assert_int_equal(rc, LS_EFORMAT);
            } else if (i < 5) {
                /* names a key this keyring does not hold */
                assert_int_equal(rc, LS_ENOTFOUND);
            } else {
                assert_int_equal(rc, LS_EAUTH);
                assert_string_equal(err.msg, "sealed value does not authenticate (tampered, wrong "
                                             "key, or wrong associated data)");
            }
            assert_int_equal(out.len, 0);
        }
    }
    /* Truncated and extended values. */
    for (size_t n = LS_VAULT_OVERHEAD; n < sealed.len; n++)
        assert_int_equal(ls_vault_open(v, "ad", 2, sealed.ptr, n, &out, &err), LS_EAUTH);
    unsigned char *longer = calloc(1, sealed.len + 1);
    memcpy(longer, sealed.ptr, sealed.len);
    assert_int_equal(ls_vault_open(v, "ad", 2, longer, sealed.len + 1, &out, &err), LS_EAUTH);
    free(longer);

    /* The key id is authenticated: relabel a key-1 value as key 2. */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_open(v, "ad", 2, sealed.ptr, sealed.len, &out, &err), &err);
    memcpy(t, sealed.ptr, sealed.len);
    t[4] = 2;
    assert_int_equal(ls_vault_open(v, "ad", 2, t, sealed.len, &out, &err), LS_EAUTH);
    free(t);
    ls_buf_free(&sealed), ls_buf_free(&out);
    ls_vault_close(v);
}

static void test_vault_wrong_associated_data(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_err err;
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, "run:42", 6, "payload", 7, &sealed, &err), &err);
    assert_int_equal(ls_vault_open(v, "run:43", 6, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    assert_int_equal(ls_vault_open(v, "run:4", 5, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    assert_int_equal(ls_vault_open(v, "run:420", 7, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    assert_int_equal(ls_vault_open(v, NULL, 0, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    th_ok(ls_vault_seal(v, NULL, 0, "payload", 7, &sealed, &err), &err);
    assert_int_equal(ls_vault_open(v, "x", 1, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    th_ok(ls_vault_open(v, "", 0, sealed.ptr, sealed.len, &out, &err), &err);
    ls_buf_free(&sealed), ls_buf_free(&out);
    ls_vault_close(v);
}

static void test_vault_wrong_key(void **state)
{
    (void)state;
    ls_vault_t *a = new_vault(NULL), *b = new_vault(NULL);
    ls_err err;
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_vault_seal(a, "ad", 2, "for a only", 10, &sealed, &err), &err);
    assert_int_equal(ls_vault_sealed_key(sealed.ptr, sealed.len), 1);
    assert_int_equal(ls_vault_current_key(b), 1); /* same id, different key */
    assert_int_equal(ls_vault_open(b, "ad", 2, sealed.ptr, sealed.len, &out, &err), LS_EAUTH);
    assert_int_equal(err.code, LS_EAUTH);
    th_ok(ls_vault_open(a, "ad", 2, sealed.ptr, sealed.len, &out, &err), &err);

    /* A key id the keyring does not hold. */
    th_ok(ls_vault_rotate(a, NULL, &err), &err);
    th_ok(ls_vault_seal(a, "ad", 2, "for a only", 10, &sealed, &err), &err);
    assert_int_equal(ls_vault_open(b, "ad", 2, sealed.ptr, sealed.len, &out, &err), LS_ENOTFOUND);
    assert_contains(err.msg, "names key 2");
    ls_buf_free(&sealed), ls_buf_free(&out);
    ls_vault_close(a), ls_vault_close(b);
}

/* ---- the store's key check ---- */

static const unsigned char check_key[] = {0x00, 'k', 'e', 'y', 'c', 'h', 'e', 'c', 'k'};

static void test_vault_check_round_trip(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err = {0};
    uint32_t id = 99;
    /* None yet: LS_ENOTFOUND, err untouched. */
    assert_int_equal(ls_vault_check_open(v, st, &id, &err), LS_ENOTFOUND);
    assert_int_equal(id, 0);
    assert_int_equal(ls_vault_check_key(st, &id, &err), LS_ENOTFOUND);
    assert_int_equal(err.code, LS_OK);
    th_ok(ls_vault_check_write(v, st, &err), &err);
    th_ok(ls_vault_check_open(v, st, &id, &err), &err);
    assert_int_equal(id, 1);
    th_ok(ls_vault_check_key(st, &id, &err), &err);
    assert_int_equal(id, 1);

    /* In the metadata namespace, sealed: no text of it is readable. */
    ls_buf raw = LS_BUF_INIT;
    th_ok(ls_store_get(st, check_key, sizeof check_key, &raw, &err), &err);
    assert_int_equal(ls_vault_sealed_key(raw.ptr, raw.len), 1);
    assert_null(memmem(raw.ptr, raw.len, "check", 5));

    /* After a rotation the old check still opens; a new one is under key 2. */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_check_open(v, st, &id, &err), &err);
    assert_int_equal(id, 1);
    th_ok(ls_vault_check_write(v, st, &err), &err);
    th_ok(ls_vault_check_open(v, st, &id, &err), &err);
    assert_int_equal(id, 2);

    assert_int_equal(ls_vault_check_open(NULL, st, &id, &err), LS_EINVAL);
    assert_int_equal(ls_vault_check_open(v, st, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_check_key(NULL, &id, &err), LS_EINVAL);
    assert_int_equal(ls_vault_check_write(v, NULL, &err), LS_EINVAL);
    ls_buf_free(&raw);
    ls_store_close(st);
    ls_vault_close(v);
}

static void test_vault_check_wrong_key(void **state)
{
    (void)state;
    char *path = NULL, *other = NULL;
    ls_vault_t *v = new_vault(&path), *w = new_vault(&other);
    ls_store_t *st = new_store(NULL);
    ls_err err = {0};
    uint32_t id = 0;
    th_ok(ls_vault_check_write(v, st, &err), &err);

    /* Another key file, its key also numbered 1. */
    assert_int_equal(ls_vault_check_open(w, st, &id, &err), LS_EAUTH);
    assert_int_equal(id, 1);
    char want[512];
    snprintf(want, sizeof want, "key file %s does not open this store's data (written under key 1)",
             other);
    assert_string_equal(err.msg, want);

    /* A check under a key the keyring does not hold. */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_check_write(v, st, &err), &err);
    assert_int_equal(ls_vault_check_open(w, st, &id, &err), LS_EAUTH);
    assert_int_equal(id, 2);
    snprintf(want, sizeof want,
             "key file %s does not open this store's data (written under key 2, which it does "
             "not hold)",
             other);
    assert_string_equal(err.msg, want);

    /* Tampered: one byte of the body flipped. */
    ls_buf raw = LS_BUF_INIT;
    th_ok(ls_store_get(st, check_key, sizeof check_key, &raw, &err), &err);
    raw.ptr[raw.len - 1] ^= 1;
    th_ok(ls_store_put(st, check_key, sizeof check_key, raw.ptr, raw.len, 0, &err), &err);
    assert_int_equal(ls_vault_check_open(v, st, &id, &err), LS_EAUTH);
    assert_contains(err.msg, "(written under key 2)");
    /* Not a sealed value at all. */
    th_ok(ls_store_put(st, check_key, sizeof check_key, "x", 1, 0, &err), &err);
    assert_int_equal(ls_vault_check_open(v, st, &id, &err), LS_EFORMAT);
    assert_contains(err.msg, "the store's key check");
    assert_int_equal(ls_vault_check_key(st, &id, &err), LS_ECORRUPT);

    /* Some other sealed value in its place does not pass for it: the
     * associated data names the check's purpose. */
    ls_buf sealed = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, NULL, 0, "lodestone store key check, version 1", 36, &sealed, &err),
          &err);
    th_ok(ls_store_put(st, check_key, sizeof check_key, sealed.ptr, sealed.len, 0, &err), &err);
    assert_int_equal(ls_vault_check_open(v, st, &id, &err), LS_EAUTH);
    ls_buf_free(&sealed);
    ls_buf_free(&raw);
    ls_store_close(st);
    ls_vault_close(v), ls_vault_close(w);
    free(path), free(other);
}

/* ---- rotation ---- */

static int count_entries(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void test_vault_rotate(void **state)
{
    (void)state;
    char *path = NULL;
    ls_vault_t *v = new_vault(&path);
    ls_err err;
    ls_buf s1 = LS_BUF_INIT, s2 = LS_BUF_INIT, out = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, "ad", 2, "one", 3, &s1, &err), &err);
    uint32_t id = 0;
    th_ok(ls_vault_rotate(v, &id, &err), &err);
    assert_int_equal(id, 2);
    assert_int_equal(ls_vault_current_key(v), 2);
    assert_int_equal(ls_vault_key_count(v), 2);
    assert_true(ls_vault_holds_key(v, 1) && ls_vault_holds_key(v, 2));
    assert_false(ls_vault_holds_key(v, 3) || ls_vault_holds_key(v, 0));
    th_ok(ls_vault_seal(v, "ad", 2, "two", 3, &s2, &err), &err);
    assert_int_equal(ls_vault_sealed_key(s1.ptr, s1.len), 1);
    assert_int_equal(ls_vault_sealed_key(s2.ptr, s2.len), 2);
    th_ok(ls_vault_open(v, "ad", 2, s1.ptr, s1.len, &out, &err), &err);
    assert_memory_equal(out.ptr, "one", 3);
    th_ok(ls_vault_open(v, "ad", 2, s2.ptr, s2.len, &out, &err), &err);
    assert_memory_equal(out.ptr, "two", 3);

    /* The rewritten file: mode 0600, and no temporary file left behind. */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    char *dir = strdup(path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(count_entries(dir), 1);
    ls_vault_close(v);

    /* Reloaded from disk, both still open. */
    v = NULL;
    th_ok(ls_vault_load(&v, path, NULL, &err), &err);
    assert_int_equal(ls_vault_current_key(v), 2);
    assert_int_equal(ls_vault_key_count(v), 2);
    th_ok(ls_vault_open(v, "ad", 2, s1.ptr, s1.len, &out, &err), &err);
    assert_memory_equal(out.ptr, "one", 3);
    th_ok(ls_vault_open(v, "ad", 2, s2.ptr, s2.len, &out, &err), &err);
    assert_memory_equal(out.ptr, "two", 3);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    assert_int_equal(ls_vault_current_key(v), 3);
    ls_vault_close(v);

    size_t n;
    char *text = (char *)read_file(path, &n);
    text[n] = '\0';
    assert_int_equal(strncmp(text, "lodestone-keyring 1\ncurrent 3\nkey 1 ", 36), 0);
    assert_non_null(strstr(text, "\nkey 2 "));
    assert_non_null(strstr(text, "\nkey 3 "));
    free(text);

    /* A rotation that cannot write keeps the keyring as it was. */
    th_ok(ls_vault_load(&v, path, NULL, &err), &err);
    th_rmtree(dir);
    assert_int_equal(ls_vault_rotate(v, &id, &err), LS_EIO);
    assert_contains(err.msg, "temporary key file");
    assert_int_equal(ls_vault_current_key(v), 3);
    assert_int_equal(ls_vault_key_count(v), 3);
    th_ok(ls_vault_open(v, "ad", 2, s1.ptr, s1.len, &out, &err), &err);
    th_ok(ls_vault_seal(v, "ad", 2, "three", 5, &s1, &err), &err);
    assert_int_equal(ls_vault_sealed_key(s1.ptr, s1.len), 3);
    ls_vault_close(v);

    ls_buf_free(&s1), ls_buf_free(&s2), ls_buf_free(&out);
    free(dir), free(path);
}

/* Seals and opens from two threads while the main thread rotates. */
typedef struct {
    ls_vault_t *v;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err;
    for (int i = 0; i < 200; i++) {
        if (ls_vault_seal(a->v, "w", 1, "concurrent", 10, &sealed, &err) != LS_OK ||
            ls_vault_open(a->v, "w", 1, sealed.ptr, sealed.len, &out, &err) != LS_OK ||
            out.len != 10 || memcmp(out.ptr, "concurrent", 10) != 0)
            a->failures++;
    }
    ls_buf_free(&sealed), ls_buf_free(&out);
    return NULL;
}

static void test_vault_rotate_concurrent(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    worker_arg args[2] = {{v, 0}, {v, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    ls_err err;
    for (int i = 0; i < 3; i++) th_ok(ls_vault_rotate(v, NULL, &err), &err);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_int_equal(args[0].failures + args[1].failures, 0);
    assert_int_equal(ls_vault_current_key(v), 4);
    ls_vault_close(v);
}

/* ---- secrets ---- */

static void test_vault_secret_round_trip(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    th_ok(ls_vault_secret_put(v, st, "db/password", "hunter2", 7, &err), &err);
    assert_secret(v, st, "db/password", "hunter2", 7);
    /* replaces */
    th_ok(ls_vault_secret_put(v, st, "db/password", "correct horse", 13, &err), &err);
    assert_secret(v, st, "db/password", "correct horse", 13);
    /* empty and large values */
    th_ok(ls_vault_secret_put(v, st, "empty", NULL, 0, &err), &err);
    assert_secret(v, st, "empty", "", 0);
    size_t big = 100000;
    unsigned char *val = malloc(big);
    randombytes_buf(val, big);
    th_ok(ls_vault_secret_put(v, st, "big", val, big, &err), &err);
    assert_secret(v, st, "big", val, big);
    free(val);

    /* The stored record: version, update time, then the value sealed under
     * the name and that header, not the value. */
    ls_buf k = LS_BUF_INIT, raw = LS_BUF_INIT;
    secret_key(&k, "db/password");
    th_ok(ls_store_get(st, k.ptr, k.len, &raw, &err), &err);
    assert_int_equal(raw.len, REC_HEAD + 13 + LS_VAULT_OVERHEAD);
    assert_int_equal(raw.ptr[0], REC_VERSION);
    assert_int_equal(raw.ptr[REC_HEAD], 1); /* the sealed value's own version */
    assert_null(memmem(raw.ptr, raw.len, "correct horse", 13));
    unsigned char ad[28 + REC_HEAD];
    memcpy(ad, "lodestone.secret:db/password", 28);
    memcpy(ad + 28, raw.ptr, REC_HEAD);
    ls_buf out = LS_BUF_INIT;
    th_ok(ls_vault_open(v, ad, sizeof ad, raw.ptr + REC_HEAD, raw.len - REC_HEAD, &out, &err),
          &err);
    assert_memory_equal(out.ptr, "correct horse", 13);
    /* the name alone is not the associated data any more */
    assert_int_equal(ls_vault_open(v, ad, 28, raw.ptr + REC_HEAD, raw.len - REC_HEAD, &out, &err),
                     LS_EAUTH);

    ls_secret_t *s = (ls_secret_t *)&s;
    assert_int_equal(ls_vault_secret_get(v, st, "absent", &s, &err), LS_ENOTFOUND);
    assert_null(s);
    assert_contains(err.msg, "absent");
    ls_secret_free(NULL);
    assert_int_equal(ls_vault_secret_put(NULL, st, "x", "v", 1, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_put(v, NULL, "x", "v", 1, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_put(v, st, "x", NULL, 1, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_get(v, st, "x", NULL, &err), LS_EINVAL);

    ls_buf_free(&k), ls_buf_free(&raw), ls_buf_free(&out);
    ls_store_close(st);
    ls_vault_close(v);
}

static void test_vault_secret_names(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    char longest[LS_SECRET_NAMEMAX + 2];
    memset(longest, 'n', sizeof longest);
    longest[LS_SECRET_NAMEMAX] = '\0';
    const char *good[] = {"a", "db/password", "stripe:live_key", "A-Z.a-z_0-9/:", longest};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        th_ok(ls_vault_secret_put(v, st, good[i], "v", 1, &err), &err);
        assert_secret(v, st, good[i], "v", 1);
    }
    longest[LS_SECRET_NAMEMAX] = 'n';
    longest[LS_SECRET_NAMEMAX + 1] = '\0';
    struct {
        const char *name;
        const char *want;
    } bad[] = {
        {"", "secret name is empty"},
        {longest, "secret name is longer than 256 bytes"},
        {"has space", "bad character ' ' (0x20) at byte 4"},
        {"tab\there", "bad character 0x09 at byte 4"},
        {"new\nline", "bad character 0x0a at byte 4"},
        {"star*", "bad character '*' (0x2a) at byte 5"},
        {"quote\"", "bad character '\"' (0x22) at byte 6"},
        {"caf\xc3\xa9", "bad character 0xc3 at byte 4"},
        {"del\x7f", "bad character 0x7f at byte 4"},
    };
    ls_secret_t *s = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(ls_vault_secret_put(v, st, bad[i].name, "v", 1, &err), LS_EINVAL);
        assert_contains(err.msg, bad[i].want);
        if (strstr(bad[i].want, "bad character"))
            assert_contains(err.msg, "names use a-z A-Z 0-9 . _ - / :");
        assert_int_equal(ls_vault_secret_get(v, st, bad[i].name, &s, &err), LS_EINVAL);
        assert_contains(err.msg, bad[i].want);
        assert_int_equal(ls_vault_secret_delete(st, bad[i].name, &err), LS_EINVAL);
        assert_contains(err.msg, bad[i].want);
    }
    /* A new name's /-separated parts survive a URL path; such names stored
     * before that check are still looked up and deleted. */
    struct {
        const char *name;
        const char *want;
    } parts[] = {
        {"..", "a part '..' at byte 1"},     {".", "a part '.' at byte 1"},
        {"a/../b", "a part '..' at byte 3"}, {"a/./b", "a part '.' at byte 3"},
        {"/a", "an empty part at byte 1"},   {"a/", "an empty part at byte 3"},
        {"a//b", "an empty part at byte 3"}, {"team/..", "a part '..' at byte 6"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(ls_vault_secret_put(v, st, parts[i].name, "v", 1, &err), LS_EINVAL);
        assert_contains(err.msg, parts[i].want);
        assert_contains(err.msg, "its /-separated parts may not be empty, '.' or '..'");
        assert_int_equal(ls_vault_secret_get(v, st, parts[i].name, &s, &err), LS_ENOTFOUND);
        assert_int_equal(ls_vault_secret_delete(st, parts[i].name, &err), LS_ENOTFOUND);
    }
    th_ok(ls_vault_secret_put(v, st, "a..b/.c/d.", "v", 1, &err), &err); /* dots inside parts */
    assert_secret(v, st, "a..b/.c/d.", "v", 1);
    assert_int_equal(ls_vault_secret_put(v, st, NULL, "v", 1, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_get(v, st, NULL, &s, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_delete(st, NULL, &err), LS_EINVAL);
    ls_store_close(st);
    ls_vault_close(v);
}

typedef struct {
    char names[16][64];
    int n;
    int stop_after; /* 0 = never */
} list_acc;

static int collect(void *ud, const char *name, size_t len)
{
    list_acc *a = ud;
    assert_true(len < sizeof a->names[0]);
    assert_int_equal(strlen(name), len); /* NUL-terminated */
    memcpy(a->names[a->n], name, len);
    a->names[a->n][len] = '\0';
    a->n++;
    return a->stop_after && a->n >= a->stop_after;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_vault_secret_list_and_delete(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    list_acc acc = {0};
    th_ok(ls_vault_secret_list(st, collect, &acc, &err), &err);
    assert_int_equal(acc.n, 0);

    const char *names[] = {"b", "a", "a/b", "a.b", "ab", "Z", "0", "a:", "a-", "a_"};
    const size_t nn = sizeof names / sizeof names[0];
    for (size_t i = 0; i < nn; i++)
        th_ok(ls_vault_secret_put(v, st, names[i], names[i], strlen(names[i]), &err), &err);
    /* Records of other namespaces are not secrets. */
    unsigned char other[] = {LS_NS_RUN, 'a'}, other2[] = {LS_NS_SECRET + 1, 'x'};
    th_ok(ls_store_put(st, other, sizeof other, "v", 1, 0, &err), &err);
    th_ok(ls_store_put(st, other2, sizeof other2, "v", 1, 0, &err), &err);

    const char *sorted[sizeof names / sizeof names[0]];
    memcpy(sorted, names, sizeof names);
    qsort(sorted, nn, sizeof sorted[0], cmp_str);
    th_ok(ls_vault_secret_list(st, collect, &acc, &err), &err);
    assert_int_equal(acc.n, nn);
    for (size_t i = 0; i < nn; i++) assert_string_equal(acc.names[i], sorted[i]);

    /* A non-zero return stops the walk. */
    list_acc first = {.stop_after = 3};
    th_ok(ls_vault_secret_list(st, collect, &first, &err), &err);
    assert_int_equal(first.n, 3);
    assert_string_equal(first.names[2], sorted[2]);

    th_ok(ls_vault_secret_delete(st, "a/b", &err), &err);
    ls_secret_t *s = NULL;
    assert_int_equal(ls_vault_secret_get(v, st, "a/b", &s, &err), LS_ENOTFOUND);
    assert_int_equal(ls_vault_secret_delete(st, "a/b", &err), LS_ENOTFOUND);
    assert_contains(err.msg, "a/b");
    assert_int_equal(ls_vault_secret_delete(st, "never", &err), LS_ENOTFOUND);
    assert_secret(v, st, "a.b", "a.b", 3);
    list_acc after = {0};
    th_ok(ls_vault_secret_list(st, collect, &after, &err), &err);
    assert_int_equal(after.n, nn - 1);
    assert_int_equal(ls_vault_secret_list(NULL, collect, &after, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_list(st, NULL, &after, &err), LS_EINVAL);
    ls_store_close(st);
    ls_vault_close(v);
}

static void test_vault_secret_swapped_records(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    th_ok(ls_vault_secret_put(v, st, "alice", "alice-token", 11, &err), &err);
    th_ok(ls_vault_secret_put(v, st, "bob", "bob-token!!", 11, &err), &err);
    ls_buf ka = LS_BUF_INIT, kb = LS_BUF_INIT, va = LS_BUF_INIT, vb = LS_BUF_INIT;
    secret_key(&ka, "alice");
    secret_key(&kb, "bob");
    th_ok(ls_store_get(st, ka.ptr, ka.len, &va, &err), &err);
    th_ok(ls_store_get(st, kb.ptr, kb.len, &vb, &err), &err);
    th_ok(ls_store_put(st, ka.ptr, ka.len, vb.ptr, vb.len, LS_STORE_SYNC, &err), &err);
    th_ok(ls_store_put(st, kb.ptr, kb.len, va.ptr, va.len, LS_STORE_SYNC, &err), &err);
    ls_secret_t *s = (ls_secret_t *)&s;
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_get(v, st, "alice", &s, &err), LS_EAUTH);
    assert_null(s);
    assert_contains(err.msg, "alice");
    assert_contains(err.msg, "does not authenticate");
    assert_null(strstr(err.msg, "token"));
    assert_int_equal(ls_vault_secret_get(v, st, "bob", &s, &err), LS_EAUTH);

    /* One flipped byte in a stored record. */
    th_ok(ls_vault_secret_put(v, st, "carol", "carol-token", 11, &err), &err);
    secret_key(&ka, "carol");
    th_ok(ls_store_get(st, ka.ptr, ka.len, &va, &err), &err);
    va.ptr[va.len / 2] ^= 0x10;
    th_ok(ls_store_put(st, ka.ptr, ka.len, va.ptr, va.len, LS_STORE_SYNC, &err), &err);
    assert_int_equal(ls_vault_secret_get(v, st, "carol", &s, &err), LS_EAUTH);
    /* A record too short to be sealed. */
    th_ok(ls_store_put(st, ka.ptr, ka.len, "x", 1, LS_STORE_SYNC, &err), &err);
    assert_int_equal(ls_vault_secret_get(v, st, "carol", &s, &err), LS_EFORMAT);
    th_ok(ls_store_put(st, ka.ptr, ka.len, "\x81", 1, LS_STORE_SYNC, &err), &err);
    assert_int_equal(ls_vault_secret_get(v, st, "carol", &s, &err), LS_EFORMAT);
    assert_contains(err.msg, "is 1 bytes, shorter than the");
    /* A record header in front of a sealed value of an unknown version. */
    th_ok(ls_vault_secret_put(v, st, "carol", "carol-token", 11, &err), &err);
    th_ok(ls_store_get(st, ka.ptr, ka.len, &va, &err), &err);
    va.ptr[REC_HEAD] = 2;
    th_ok(ls_store_put(st, ka.ptr, ka.len, va.ptr, va.len, LS_STORE_SYNC, &err), &err);
    assert_int_equal(ls_vault_secret_get(v, st, "carol", &s, &err), LS_EFORMAT);
    assert_contains(err.msg, "sealed value has format version 2");

    ls_buf_free(&ka), ls_buf_free(&kb), ls_buf_free(&va), ls_buf_free(&vb);
    ls_store_close(st);
    ls_vault_close(v);
}

/* A secret that exists but names a key the keyring lacks (a key file
 * from before a rotation) is LS_EAUTH, never LS_ENOTFOUND ("not set"). */
static void test_vault_secret_unknown_key(void **state)
{
    (void)state;
    char *path = NULL;
    ls_vault_t *v = new_vault(&path);
    ls_store_t *st = new_store(NULL);
    ls_err err = {0};
    ls_vault_t *old = NULL;
    th_ok(ls_vault_load(&old, path, NULL, &err), &err); /* key 1 only */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_secret_put(v, st, "dave", "dave-token!", 11, &err), &err);
    ls_secret_t *s = (ls_secret_t *)&s;
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_get(old, st, "dave", &s, &err), LS_EAUTH);
    assert_null(s);
    assert_string_equal(err.msg, "secret \"dave\": sealed value names key 2, which this keyring "
                                 "does not hold");
    th_ok(ls_vault_secret_get(v, st, "dave", &s, &err), &err);
    ls_secret_free(s);
    ls_store_close(st);
    ls_vault_close(v), ls_vault_close(old);
    free(path);
}

static void test_vault_secret_reseal_all(void **state)
{
    (void)state;
    char *kpath = NULL;
    ls_vault_t *v = new_vault(&kpath);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    enum { N = 150 }; /* more than two reseal batches */
    char name[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "s/%03d", i);
        snprintf(val, sizeof val, "value-%d", i);
        th_ok(ls_vault_secret_put(v, st, name, val, strlen(val), &err), &err);
    }
    size_t count = 99;
    th_ok(ls_vault_secret_reseal_all(v, st, &count, &err), &err);
    assert_int_equal(count, 0); /* all under the current key already */

    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_secret_put(v, st, "s/new", "fresh", 5, &err), &err);
    th_ok(ls_vault_secret_reseal_all(v, st, &count, &err), &err);
    assert_int_equal(count, N);

    ls_buf k = LS_BUF_INIT, raw = LS_BUF_INIT;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "s/%03d", i);
        snprintf(val, sizeof val, "value-%d", i);
        secret_key(&k, name);
        th_ok(ls_store_get(st, k.ptr, k.len, &raw, &err), &err);
        assert_int_equal(ls_vault_sealed_key(raw.ptr + REC_HEAD, raw.len - REC_HEAD), 2);
        assert_secret(v, st, name, val, strlen(val));
    }
    th_ok(ls_vault_secret_reseal_all(v, st, &count, &err), &err);
    assert_int_equal(count, 0);

    /* After a reload from disk, everything still reads. */
    ls_vault_close(v);
    th_ok(ls_vault_load(&v, kpath, NULL, &err), &err);
    assert_secret(v, st, "s/000", "value-0", 7);
    assert_secret(v, st, "s/new", "fresh", 5);

    /* A record that does not open is skipped and named; the others are
     * resealed. */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    secret_key(&k, "s/100");
    th_ok(ls_store_get(st, k.ptr, k.len, &raw, &err), &err);
    raw.ptr[raw.len - 1] ^= 1;
    th_ok(ls_store_put(st, k.ptr, k.len, raw.ptr, raw.len, LS_STORE_SYNC, &err), &err);
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_reseal_all(v, st, &count, &err), LS_EAUTH);
    assert_contains(err.msg, "1 secret did not open");
    assert_contains(err.msg, "s/100");
    assert_int_equal(count, N); /* all but s/100, s/new among them */
    assert_int_equal(ls_vault_secret_reseal_all(NULL, st, &count, &err), LS_EINVAL);

    ls_buf_free(&k), ls_buf_free(&raw);
    ls_store_close(st);
    ls_vault_close(v);
    free(kpath);
}

/* A damaged secret in the middle of a reseal: every other secret is
 * resealed (also those after it, in later batches), the damaged one is
 * counted, named and left as it was. */
static void test_vault_secret_reseal_skips_damaged(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    enum { N = 150 }; /* damaged ones in the second and third batches */
    char name[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "s/%03d", i);
        snprintf(val, sizeof val, "value-%d", i);
        th_ok(ls_vault_secret_put(v, st, name, val, strlen(val), &err), &err);
    }
    size_t older = 99;
    th_ok(ls_vault_secret_count_other_keys(st, 1, &older, &err), &err);
    assert_int_equal(older, 0);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    th_ok(ls_vault_secret_count_other_keys(st, 2, &older, &err), &err);
    assert_int_equal(older, N);

    ls_buf k = LS_BUF_INIT, raw = LS_BUF_INIT, bad1 = LS_BUF_INIT, bad2 = LS_BUF_INIT;
    secret_key(&k, "s/070");
    th_ok(ls_store_get(st, k.ptr, k.len, &bad1, &err), &err);
    bad1.ptr[bad1.len - 1] ^= 1; /* does not authenticate */
    th_ok(ls_store_put(st, k.ptr, k.len, bad1.ptr, bad1.len, LS_STORE_SYNC, &err), &err);
    static const unsigned char junk[] = {0x7f, 'j', 'u', 'n', 'k'}; /* no record */
    th_ok(ls_buf_set(&bad2, junk, sizeof junk, &err), &err);
    put_record(st, "s/140", bad2.ptr, bad2.len);

    ls_secret_reseal_report rep;
    memset(&rep, 0xa5, sizeof rep);
    th_ok(ls_vault_secret_reseal_all_detailed(v, st, &rep, &err), &err);
    assert_int_equal(rep.resealed, N - 2);
    assert_int_equal(rep.skipped, 2);
    assert_string_equal(rep.first_skipped, "s/070");
    assert_int_equal(rep.first_reason.code, LS_EAUTH);
    assert_contains(rep.first_reason.msg, "secret \"s/070\"");

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "s/%03d", i);
        snprintf(val, sizeof val, "value-%d", i);
        secret_key(&k, name);
        th_ok(ls_store_get(st, k.ptr, k.len, &raw, &err), &err);
        if (i == 70 || i == 140) { /* left as they were */
            const ls_buf *bad = i == 70 ? &bad1 : &bad2;
            assert_int_equal(raw.len, bad->len);
            assert_memory_equal(raw.ptr, bad->ptr, raw.len);
            continue;
        }
        assert_int_equal(ls_vault_sealed_key(raw.ptr + REC_HEAD, raw.len - REC_HEAD), 2);
        assert_secret(v, st, name, val, strlen(val));
    }
    th_ok(ls_vault_secret_count_other_keys(st, 2, &older, &err), &err);
    assert_int_equal(older, 2); /* the two skipped, the one with no key id too */

    /* again: nothing left to reseal, the same two skipped */
    th_ok(ls_vault_secret_reseal_all_detailed(v, st, &rep, &err), &err);
    assert_int_equal(rep.resealed, 0);
    assert_int_equal(rep.skipped, 2);
    assert_string_equal(rep.first_skipped, "s/070");
    /* the second's reason: not a record this build reads */
    th_ok(ls_vault_secret_delete(st, "s/070", &err), &err);
    th_ok(ls_vault_secret_reseal_all_detailed(v, st, &rep, &err), &err);
    assert_int_equal(rep.skipped, 1);
    assert_string_equal(rep.first_skipped, "s/140");
    assert_int_equal(rep.first_reason.code, LS_EFORMAT);
    assert_contains(rep.first_reason.msg, "secret \"s/140\"");
    th_ok(ls_vault_secret_delete(st, "s/140", &err), &err);
    th_ok(ls_vault_secret_reseal_all_detailed(v, st, &rep, &err), &err);
    assert_int_equal(rep.skipped, 0);
    assert_string_equal(rep.first_skipped, "");
    th_ok(ls_vault_secret_count_other_keys(st, 2, &older, &err), &err);
    assert_int_equal(older, 0);

    assert_int_equal(ls_vault_secret_reseal_all_detailed(v, st, NULL, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_reseal_all_detailed(NULL, st, &rep, &err), LS_EINVAL);
    assert_int_equal(rep.resealed + rep.skipped, 0);
    assert_int_equal(ls_vault_secret_count_other_keys(NULL, 2, &older, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_count_other_keys(st, 2, NULL, &err), LS_EINVAL);

    ls_buf_free(&k), ls_buf_free(&raw), ls_buf_free(&bad1), ls_buf_free(&bad2);
    ls_store_close(st);
    ls_vault_close(v);
}

/* ---- update times ---- */

typedef struct {
    char names[16][64];
    int64_t ms[16];
    int n;
    int stop_after; /* 0 = never */
} info_acc;

static int collect_info(void *ud, const char *name, size_t len, int64_t updated_ms)
{
    info_acc *a = ud;
    assert_true(a->n < 16);
    assert_true(len < sizeof a->names[0]);
    assert_int_equal(strlen(name), len); /* NUL-terminated */
    memcpy(a->names[a->n], name, len);
    a->names[a->n][len] = '\0';
    a->ms[a->n] = updated_ms;
    a->n++;
    return a->stop_after && a->n >= a->stop_after;
}

/* The time of one secret as list_info reports it. */
static int64_t listed_ms(ls_store_t *st, const char *name)
{
    info_acc acc = {0};
    ls_err err;
    th_ok(ls_vault_secret_list_info(st, collect_info, &acc, &err), &err);
    for (int i = 0; i < acc.n; i++)
        if (strcmp(acc.names[i], name) == 0) return acc.ms[i];
    fail_msg("secret %s is not listed", name);
    return 0;
}

static void test_vault_secret_list_info(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    info_acc acc = {0};
    th_ok(ls_vault_secret_list_info(st, collect_info, &acc, &err), &err);
    assert_int_equal(acc.n, 0);

    const char *names[] = {"b", "a/b", "a", "Z"}; /* listed as Z a a/b b */
    int64_t before[4], after[4];
    for (int i = 0; i < 4; i++) {
        before[i] = now_ms();
        th_ok(ls_vault_secret_put(v, st, names[i], "v", 1, &err), &err);
        after[i] = now_ms();
    }
    unsigned char other[] = {LS_NS_SECRET + 1, 'x'}; /* not a secret */
    th_ok(ls_store_put(st, other, sizeof other, "v", 1, 0, &err), &err);

    static const int order[] = {3, 2, 1, 0};
    th_ok(ls_vault_secret_list_info(st, collect_info, &acc, &err), &err);
    assert_int_equal(acc.n, 4);
    for (int i = 0; i < 4; i++) {
        int j = order[i];
        assert_string_equal(acc.names[i], names[j]);
        assert_in_range(acc.ms[i], before[j], after[j]);
    }
    /* the time is the one in the record's header */
    ls_buf raw = LS_BUF_INIT;
    get_record(st, "a", &raw);
    assert_int_equal(record_ms(&raw), acc.ms[1]);

    /* Setting a secret again moves its time; the others keep theirs. */
    int64_t first = acc.ms[1];
    usleep(3000);
    int64_t b2 = now_ms();
    th_ok(ls_vault_secret_put(v, st, "a", "v2", 2, &err), &err);
    int64_t a2 = now_ms();
    int64_t second = listed_ms(st, "a");
    assert_in_range(second, b2, a2);
    assert_true(second >= first);
    assert_true(second > first || b2 <= first); /* later unless the clock stepped back */
    assert_int_equal(listed_ms(st, "b"), acc.ms[3]);
    assert_secret(v, st, "a", "v2", 2);

    /* A non-zero return stops the walk. */
    info_acc two = {.stop_after = 2};
    th_ok(ls_vault_secret_list_info(st, collect_info, &two, &err), &err);
    assert_int_equal(two.n, 2);
    assert_string_equal(two.names[1], "a");

    /* A record without a readable header stops the walk, naming it. */
    put_record(st, "a/b", "x", 1);
    info_acc bad = {0};
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_list_info(st, collect_info, &bad, &err), LS_ECORRUPT);
    assert_contains(err.msg, "secret \"a/b\"");
    assert_int_equal(bad.n, 2); /* Z and a came before it */
    /* ls_vault_secret_list reads no records: it still lists every name */
    list_acc names_only = {0};
    th_ok(ls_vault_secret_list(st, collect, &names_only, &err), &err);
    assert_int_equal(names_only.n, 4);

    assert_int_equal(ls_vault_secret_list_info(NULL, collect_info, &acc, &err), LS_EINVAL);
    assert_int_equal(ls_vault_secret_list_info(st, NULL, &acc, &err), LS_EINVAL);
    ls_buf_free(&raw);
    ls_store_close(st);
    ls_vault_close(v);
}

/* A record in the secrets namespace whose key is malformed (no name can be
 * read from it: here a secret's key with a byte after the name) does not
 * stop the reseal, which every run would then meet again: it is skipped,
 * named as a damaged secret record, left as it was, and every secret
 * after it is resealed. */
static void test_vault_secret_reseal_skips_malformed_key(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err = {0};
    static const char *const names[] = {"a", "m", "z"};
    for (int i = 0; i < 3; i++) th_ok(ls_vault_secret_put(v, st, names[i], "v", 1, &err), &err);
    ls_buf k = LS_BUF_INIT, rec = LS_BUF_INIT, raw = LS_BUF_INIT;
    secret_key(&k, "m");
    th_ok(ls_store_get(st, k.ptr, k.len, &rec, &err), &err);
    th_ok(ls_buf_putc(&k, 'x', &err), &err); /* after the name: malformed */
    th_ok(ls_store_put(st, k.ptr, k.len, rec.ptr, rec.len, LS_STORE_SYNC, &err), &err);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);

    ls_secret_reseal_report rep;
    for (int pass = 0; pass < 2; pass++) { /* again: the same skip, nothing else */
        th_ok(ls_vault_secret_reseal_all_detailed(v, st, &rep, &err), &err);
        assert_int_equal(rep.resealed, pass == 0 ? 3 : 0);
        assert_int_equal(rep.skipped, 1);
        assert_true(strncmp(rep.first_skipped, "0x", 2) == 0);
        assert_int_equal(rep.first_reason.code, LS_ECORRUPT);
        assert_contains(rep.first_reason.msg, "a damaged secret record under key 0x");
        assert_contains(rep.first_reason.msg, rep.first_skipped);
        assert_contains(rep.first_reason.msg, "malformed");
    }
    for (int i = 0; i < 3; i++) assert_secret(v, st, names[i], "v", 1);
    th_ok(ls_store_get(st, k.ptr, k.len, &raw, &err), &err); /* left as it was */
    assert_int_equal(raw.len, rec.len);
    assert_memory_equal(raw.ptr, rec.ptr, rec.len);
    size_t count = 99;
    assert_int_equal(ls_vault_secret_reseal_all(v, st, &count, &err), LS_ECORRUPT);
    assert_int_equal(count, 0);
    assert_contains(err.msg, "1 secret did not open");
    assert_contains(err.msg, "a damaged secret record");

    ls_buf_free(&k), ls_buf_free(&rec), ls_buf_free(&raw);
    ls_store_close(st);
    ls_vault_close(v);
}

static void test_vault_secret_reseal_keeps_time(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    th_ok(ls_vault_secret_put(v, st, "old", "old-value", 9, &err), &err);
    ls_buf raw = LS_BUF_INIT, raw2 = LS_BUF_INIT;
    get_record(st, "old", &raw);
    int64_t t = listed_ms(st, "old");
    usleep(3000);
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    size_t count = 0;
    th_ok(ls_vault_secret_reseal_all(v, st, &count, &err), &err);
    assert_int_equal(count, 1);

    get_record(st, "old", &raw2);
    assert_int_equal(ls_vault_sealed_key(raw2.ptr + REC_HEAD, raw2.len - REC_HEAD), 2);
    assert_memory_equal(raw2.ptr, raw.ptr, REC_HEAD); /* the same header */
    assert_memory_not_equal(raw2.ptr + REC_HEAD, raw.ptr + REC_HEAD, raw.len - REC_HEAD);
    assert_int_equal(listed_ms(st, "old"), t);
    assert_secret(v, st, "old", "old-value", 9);
    ls_buf_free(&raw), ls_buf_free(&raw2);
    ls_store_close(st);
    ls_vault_close(v);
}

static void test_vault_secret_time_tamper(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    th_ok(ls_vault_secret_put(v, st, "api/token", "token-value", 11, &err), &err);
    ls_buf raw = LS_BUF_INIT, t = LS_BUF_INIT;
    get_record(st, "api/token", &raw);
    int64_t ms = record_ms(&raw);
    ls_secret_t *s = (ls_secret_t *)&s;

    /* Any change of the time, low byte or high byte, and it does not open. */
    for (int i = 1; i < REC_HEAD; i++) {
        th_ok(ls_buf_set(&t, raw.ptr, raw.len, &err), &err);
        t.ptr[i] ^= (unsigned char)(i == 1 ? 0x80 : 0x01);
        put_record(st, "api/token", t.ptr, t.len);
        memset(&err, 0, sizeof err);
        assert_int_equal(ls_vault_secret_get(v, st, "api/token", &s, &err), LS_EAUTH);
        assert_null(s);
        assert_contains(err.msg, "api/token");
        assert_contains(err.msg, "does not authenticate");
        /* list_info reads the header unchecked: it shows the changed time */
        assert_true(listed_ms(st, "api/token") != ms);
    }
    /* A time set back a day, the rest as written: still refused. */
    th_ok(ls_buf_set(&t, raw.ptr, raw.len, &err), &err);
    uint64_t u = (uint64_t)(ms - 86400000);
    for (int i = 8; i >= 1; i--, u >>= 8) t.ptr[i] = (unsigned char)u;
    put_record(st, "api/token", t.ptr, t.len);
    assert_int_equal(listed_ms(st, "api/token"), ms - 86400000);
    assert_int_equal(ls_vault_secret_get(v, st, "api/token", &s, &err), LS_EAUTH);
    /* Another secret's header (a later time) on this value: refused too. */
    usleep(3000);
    th_ok(ls_vault_secret_put(v, st, "other", "x", 1, &err), &err);
    get_record(st, "other", &t);
    ls_buf mixed = LS_BUF_INIT;
    th_ok(ls_buf_set(&mixed, t.ptr, REC_HEAD, &err), &err);
    th_ok(ls_buf_append(&mixed, raw.ptr + REC_HEAD, raw.len - REC_HEAD, &err), &err);
    put_record(st, "api/token", mixed.ptr, mixed.len);
    assert_int_equal(ls_vault_secret_get(v, st, "api/token", &s, &err), LS_EAUTH);
    /* An unknown record version is a format error, not a forgery. */
    th_ok(ls_buf_set(&t, raw.ptr, raw.len, &err), &err);
    t.ptr[0] = 0x82;
    put_record(st, "api/token", t.ptr, t.len);
    assert_int_equal(ls_vault_secret_get(v, st, "api/token", &s, &err), LS_EFORMAT);
    assert_contains(err.msg, "format version 0x82; this build reads version 0x81");
    /* The record as it was still opens. */
    put_record(st, "api/token", raw.ptr, raw.len);
    assert_secret(v, st, "api/token", "token-value", 11);
    assert_int_equal(listed_ms(st, "api/token"), ms);

    ls_buf_free(&raw), ls_buf_free(&t), ls_buf_free(&mixed);
    ls_store_close(st);
    ls_vault_close(v);
}

/* Records of the format before update times: the bare sealed value, under
 * associated data "lodestone.secret:" + name. Their first byte is the
 * seal's version, which no record version equals: that byte alone says
 * "old", whatever follows it. */
static void test_vault_secret_old_format(void **state)
{
    (void)state;
    ls_vault_t *v = new_vault(NULL);
    ls_store_t *st = new_store(NULL);
    ls_err err;
    const char ad[] = "lodestone.secret:legacy";
    const char value[] = "legacy-value-1234";
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_secret_t *s = (ls_secret_t *)&s;
    th_ok(ls_vault_seal(v, ad, sizeof ad - 1, value, sizeof value - 1, &sealed, &err), &err);
    assert_int_equal(sealed.ptr[0], 1);
    assert_true(sealed.ptr[0] != REC_VERSION);
    /* the old record itself is sound */
    th_ok(ls_vault_open(v, ad, sizeof ad - 1, sealed.ptr, sealed.len, &out, &err), &err);
    ls_buf_free(&out);

    put_record(st, "legacy", sealed.ptr, sealed.len);
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_get(v, st, "legacy", &s, &err), LS_EFORMAT);
    assert_null(s);
    assert_contains(err.msg, "secret \"legacy\"");
    assert_contains(err.msg, "old format");
    assert_contains(err.msg, "set the secret again");
    assert_null(strstr(err.msg, "legacy-value"));
    /* list_info cannot read its time */
    info_acc acc = {0};
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_list_info(st, collect_info, &acc, &err), LS_ECORRUPT);
    assert_contains(err.msg, "secret \"legacy\"");
    assert_contains(err.msg, "old format");
    /* reseal stops at it with the same advice */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_reseal_all(v, st, NULL, &err), LS_EFORMAT);
    assert_contains(err.msg, "secret \"legacy\"");
    assert_contains(err.msg, "old format");

    /* The first byte decides, nothing is opened: a record of any length
     * that starts with the seal's version is old. */
    static const unsigned char one[] = {1};
    put_record(st, "legacy", one, sizeof one);
    memset(&err, 0, sizeof err);
    assert_int_equal(ls_vault_secret_get(v, st, "legacy", &s, &err), LS_EFORMAT);
    assert_contains(err.msg, "old format");
    th_ok(ls_buf_set(&out, sealed.ptr, sealed.len, &err), &err);
    out.ptr[out.len - 1] ^= 0x01; /* does not open any more */
    put_record(st, "legacy", out.ptr, out.len);
    assert_int_equal(ls_vault_secret_get(v, st, "legacy", &s, &err), LS_EFORMAT);
    assert_contains(err.msg, "old format");

    /* and setting it again is the way out */
    th_ok(ls_vault_secret_put(v, st, "legacy", value, sizeof value - 1, &err), &err);
    assert_secret(v, st, "legacy", value, sizeof value - 1);
    th_ok(ls_vault_secret_reseal_all(v, st, NULL, &err), &err);
    acc.n = 0;
    th_ok(ls_vault_secret_list_info(st, collect_info, &acc, &err), &err);
    assert_int_equal(acc.n, 1);

    ls_buf_free(&sealed), ls_buf_free(&out);
    ls_store_close(st);
    ls_vault_close(v);
}

/* ---- the grep test ---- */

static const void *grep_needle;
static size_t grep_len;
static int grep_expect; /* a hit is expected (the control): do not report it */
static int grep_hits;
static int grep_files;

static int grep_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(sb->st_mode)) return 0;
    size_t n;
    unsigned char *data = read_file(path, &n);
    for (size_t i = 0; i + grep_len <= n; i++) { /* byte by byte */
        if (memcmp(data + i, grep_needle, grep_len) == 0) {
            if (!grep_expect) print_message("found the needle in %s at byte %zu\n", path, i);
            grep_hits++;
            break;
        }
    }
    grep_files++;
    free(data);
    return 0;
}

/* Files below dir that hold the len bytes of needle. */
static int grep_bytes(const char *dir, const void *needle, size_t len, int expect)
{
    grep_needle = needle;
    grep_len = len;
    grep_expect = expect;
    grep_hits = 0;
    grep_files = 0;
    assert_int_equal(nftw(dir, grep_entry, 16, FTW_PHYS), 0);
    assert_true(grep_files > 0);
    return grep_hits;
}

static int grep_tree(const char *dir, const char *needle, int expect)
{
    return grep_bytes(dir, needle, strlen(needle), expect);
}

static void test_vault_grep_finds_no_plaintext(void **state)
{
    (void)state;
    static const char secret[] = "LODESTONE-CANARY-SECRET-5d1f0a9e";
    static const char payload[] = "LODESTONE-CANARY-PAYLOAD-c47e22b3";
    char *kpath = NULL, *spath = NULL;
    ls_vault_t *v = new_vault(&kpath);
    ls_store_t *st = new_store(&spath);
    ls_err err;
    th_ok(ls_vault_secret_put(v, st, "canary", secret, strlen(secret), &err), &err);
    ls_buf sealed = LS_BUF_INIT;
    th_ok(ls_vault_seal(v, "run:1", 5, payload, strlen(payload), &sealed, &err), &err);
    unsigned char pkey[] = {LS_NS_RUN, 'r', '1'};
    th_ok(ls_store_put(st, pkey, sizeof pkey, sealed.ptr, sealed.len, LS_STORE_SYNC, &err), &err);
    /* and after a rotation and a reseal, neither the old nor the new copy */
    th_ok(ls_vault_rotate(v, NULL, &err), &err);
    size_t count = 0;
    th_ok(ls_vault_secret_reseal_all(v, st, &count, &err), &err);
    assert_int_equal(count, 1);
    assert_secret(v, st, "canary", secret, strlen(secret));
    ls_store_close(st);

    char *kdir = strdup(kpath);
    *strrchr(kdir, '/') = '\0';
    assert_int_equal(grep_tree(spath, secret, 0), 0);
    assert_int_equal(grep_tree(spath, payload, 0), 0);
    assert_int_equal(grep_tree(kdir, secret, 0), 0);
    assert_int_equal(grep_tree(kdir, payload, 0), 0);
    /* nor a tell-tale fragment */
    assert_int_equal(grep_tree(spath, "CANARY", 0), 0);
    /* nor any raw key, in the store or beside the key file (which holds base64) */
    for (size_t i = 0; i < v->nkeys; i++) {
        assert_int_equal(grep_bytes(spath, v->keys[i].key, LS_VAULT_KEYBYTES, 0), 0);
        assert_int_equal(grep_bytes(kdir, v->keys[i].key, LS_VAULT_KEYBYTES, 0), 0);
    }

    /* Control: the same grep does find a value stored without the vault. */
    char *cpath = NULL;
    ls_store_t *ctl = new_store(&cpath);
    th_ok(ls_store_put(ctl, pkey, sizeof pkey, payload, strlen(payload), LS_STORE_SYNC, &err),
          &err);
    ls_store_close(ctl);
    assert_int_equal(grep_tree(cpath, payload, 1), 1);

    ls_buf_free(&sealed);
    ls_vault_close(v);
    free(kdir), free(kpath), free(spath), free(cpath);
}

/* ---- allocation failures ---- */

typedef struct {
    char *path; /* key file */
    ls_vault_t *v;
    ls_store_t *st;
} alloc_ctx;

static ls_rc af_create(void *ud)
{
    alloc_ctx *c = ud;
    unlink(c->path);
    ls_vault_opts o = {.create_if_missing = 1};
    ls_vault_t *v = NULL;
    ls_err err;
    ls_rc rc = ls_vault_load(&v, c->path, &o, &err);
    if (rc != LS_OK) {
        assert_null(v);
        struct stat sb;
        assert_int_equal(stat(c->path, &sb), -1); /* nothing left behind */
    }
    ls_vault_close(v);
    return rc;
}

static ls_rc af_load(void *ud)
{
    alloc_ctx *c = ud;
    ls_vault_t *v = NULL;
    ls_err err;
    ls_rc rc = ls_vault_load(&v, c->path, NULL, &err);
    ls_vault_close(v);
    return rc;
}

static ls_rc af_seal_open(void *ud)
{
    alloc_ctx *c = ud;
    char ad[600]; /* longer than the stack buffer: the ad goes through ls_malloc */
    memset(ad, 'x', sizeof ad);
    ls_buf sealed = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_err err;
    ls_rc rc = ls_vault_seal(c->v, ad, sizeof ad, "payload", 7, &sealed, &err);
    if (rc == LS_OK) rc = ls_vault_open(c->v, ad, sizeof ad, sealed.ptr, sealed.len, &out, &err);
    if (rc == LS_OK) assert_memory_equal(out.ptr, "payload", 7);
    ls_buf_free(&sealed), ls_buf_free(&out);
    return rc;
}

static ls_rc af_rotate(void *ud)
{
    alloc_ctx *c = ud;
    ls_err err;
    uint32_t before = ls_vault_current_key(c->v);
    ls_rc rc = ls_vault_rotate(c->v, NULL, &err);
    if (rc != LS_OK) assert_int_equal(ls_vault_current_key(c->v), before);
    return rc;
}

static ls_rc af_secrets(void *ud)
{
    alloc_ctx *c = ud;
    ls_err err;
    ls_secret_t *s = NULL;
    list_acc acc = {0};
    ls_rc rc = ls_vault_secret_put(c->v, c->st, "af/one", "value-one", 9, &err);
    if (rc == LS_OK) rc = ls_vault_secret_put(c->v, c->st, "af/two", "value-two", 9, &err);
    if (rc == LS_OK) rc = ls_vault_secret_get(c->v, c->st, "af/one", &s, &err);
    if (rc == LS_OK) assert_memory_equal(ls_secret_data(s), "value-one", 9);
    ls_secret_free(s);
    if (rc == LS_OK) rc = ls_vault_secret_list(c->st, collect, &acc, &err);
    info_acc info = {0};
    if (rc == LS_OK) rc = ls_vault_secret_list_info(c->st, collect_info, &info, &err);
    if (rc == LS_OK) rc = ls_vault_secret_delete(c->st, "af/two", &err);
    if (rc == LS_OK) rc = ls_vault_rotate(c->v, NULL, &err);
    if (rc == LS_OK) rc = ls_vault_secret_reseal_all(c->v, c->st, NULL, &err);
    size_t older = 0;
    if (rc == LS_OK) rc = ls_vault_secret_count_other_keys(c->st, 1, &older, &err);
    uint32_t id = 0;
    if (rc == LS_OK) rc = ls_vault_check_write(c->v, c->st, &err);
    if (rc == LS_OK) rc = ls_vault_check_open(c->v, c->st, &id, &err);
    if (rc == LS_OK) rc = ls_vault_check_key(c->st, &id, &err);
    return rc;
}

static void test_vault_alloc_failures(void **state)
{
    (void)state;
    alloc_ctx c = {0};
    char *dir = fresh_dir("af");
    c.path = th_path(dir, "master.key");
    long points = th_each_alloc_failure(af_create, &c);
    assert_true(points >= 3); /* vault, path, directory */
    assert_true(th_each_alloc_failure(af_load, &c) >= 3);

    ls_err err;
    th_ok(ls_vault_load(&c.v, c.path, NULL, &err), &err);
    assert_true(th_each_alloc_failure(af_seal_open, &c) >= 4); /* two ads, two buffers */
    assert_true(th_each_alloc_failure(af_rotate, &c) >= 1);    /* temp file name */
    assert_int_equal(count_entries(dir), 1);                   /* no temp file left */

    c.st = new_store(NULL);
    assert_true(th_each_alloc_failure(af_secrets, &c) >= 10);
    ls_store_close(c.st);
    ls_vault_close(c.v);
    free(c.path), free(dir);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    (void)state;
    tdir = th_mkdtemp("vault");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_rmtree(tdir);
    free(tdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vault_constants),
        cmocka_unit_test(test_vault_kat_xchacha20poly1305),
        cmocka_unit_test(test_vault_kat_sealed_format),
        cmocka_unit_test(test_vault_create_if_missing_mode_0600),
        cmocka_unit_test(test_vault_load_missing),
        cmocka_unit_test(test_vault_bad_permissions),
        cmocka_unit_test(test_vault_key_file_owner),
        cmocka_unit_test(test_vault_discard_created),
        cmocka_unit_test(test_vault_malformed_key_files),
        cmocka_unit_test(test_vault_round_trip),
        cmocka_unit_test(test_vault_bad_arguments),
        cmocka_unit_test(test_vault_tamper),
        cmocka_unit_test(test_vault_wrong_associated_data),
        cmocka_unit_test(test_vault_wrong_key),
        cmocka_unit_test(test_vault_check_round_trip),
        cmocka_unit_test(test_vault_check_wrong_key),
        cmocka_unit_test(test_vault_rotate),
        cmocka_unit_test(test_vault_rotate_concurrent),
        cmocka_unit_test(test_vault_secret_round_trip),
        cmocka_unit_test(test_vault_secret_names),
        cmocka_unit_test(test_vault_secret_list_and_delete),
        cmocka_unit_test(test_vault_secret_swapped_records),
        cmocka_unit_test(test_vault_secret_unknown_key),
        cmocka_unit_test(test_vault_secret_reseal_all),
        cmocka_unit_test(test_vault_secret_reseal_skips_damaged),
        cmocka_unit_test(test_vault_secret_reseal_skips_malformed_key),
        cmocka_unit_test(test_vault_secret_list_info),
        cmocka_unit_test(test_vault_secret_reseal_keeps_time),
        cmocka_unit_test(test_vault_secret_time_tamper),
        cmocka_unit_test(test_vault_secret_old_format),
        cmocka_unit_test(test_vault_grep_finds_no_plaintext),
        cmocka_unit_test(test_vault_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* SPDX-License-Identifier: MIT
 * Ed25519-signed identity assertions for backends, with a small cache so
 * that a caller's token is signed about twice per lifetime, not per
 * request, and the JWKS that lets backends verify them. */
#include "ls_config.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assertion.h"
#include "ls_json.h"
#include "lodestone/ls_alloc.h"
#include "lodestone/ls_base64.h"
#include "lodestone/ls_buf.h"

#define CACHE_SLOTS 256 /* direct-mapped by caller */
#define KEY_HEADER  "lodestone-assertion-key 1\n"

typedef struct {
    char *who; /* the cache key: subject and roles, each after its length */
    size_t who_len;
    char *token;
    int64_t renew_ms; /* wall time after which a new token is signed */
} slot;

struct ls_assertion {
    unsigned char *sk; /* sodium_malloc: crypto_sign_SECRETKEYBYTES */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char kid[17];
    char *issuer, *audience;
    int64_t ttl_s;
    const ls_clock *clock;
    char *jwks;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    slot cache[CACHE_SLOTS];
    ls_buf who; /* scratch */
    ls_buf out; /* scratch for signing */
};

/* ---- the key file ---- */

/* Reads the seed from an existing key file. */
static ls_rc read_key(const char *path, unsigned char *seed, ls_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ls_err_set(err, errno == ENOENT ? LS_ENOTFOUND : LS_EIO, "%s: %s", path,
                          strerror(errno));
    struct stat st;
    char text[256];
    ssize_t n = -1;
    ls_rc rc = LS_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ls_err_set(err, LS_EPERM, "%s: not a regular file", path);
    } else if (st.st_mode & 077) {
        rc = ls_err_set(err, LS_EPERM,
                        "%s has mode %04o: a signing key must not be readable or writable by "
                        "group or others (chmod 600 %s)",
                        path, (unsigned)(st.st_mode & 07777), path);
    } else if ((n = read(fd, text, sizeof text - 1)) < 0) {
        rc = ls_err_set(err, LS_EIO, "%s: %s", path, strerror(errno));
    }
    close(fd);
    if (rc != LS_OK) return rc;
    text[n] = '\0';
    const char *b64 =
        strncmp(text, KEY_HEADER, strlen(KEY_HEADER)) == 0 ? text + strlen(KEY_HEADER) : NULL;
    size_t len = 0;
    if (b64) {
        if (strncmp(b64, "seed ", 5) != 0)
            b64 = NULL;
        else
            b64 += 5;
    }
    if (b64) len = strcspn(b64, "\n");
    ls_rc drc = b64 ? ls_base64url_decode_into(b64, len, seed, crypto_sign_SEEDBYTES, &len, NULL)
                    : LS_EFORMAT;
    sodium_memzero(text, sizeof text);
    if (drc != LS_OK || len != crypto_sign_SEEDBYTES)
        return ls_err_set(err, LS_EFORMAT, "%s: not a Lodestone assertion key file", path);
    return LS_OK;
}

/* Creates a key file with a new seed; LS_EEXIST when another process won. */
static ls_rc create_key(const char *path, unsigned char *seed, ls_err *err)
{
    randombytes_buf(seed, crypto_sign_SEEDBYTES);
    ls_buf text = LS_BUF_INIT;
    ls_rc rc = ls_buf_set(&text, KEY_HEADER "seed ", strlen(KEY_HEADER) + 5, err);
    if (rc == LS_OK) rc = ls_base64url_encode(seed, crypto_sign_SEEDBYTES, &text, err);
    if (rc == LS_OK) rc = ls_buf_putc(&text, '\n', err);
    if (rc != LS_OK) goto out;
    /* Written under a temporary name and linked into place, so a reader
     * never sees a half-written key. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = ls_err_set(err, LS_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    ssize_t w = write(fd, text.ptr, text.len);
    int ok = w == (ssize_t)text.len && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        unlink(tmp);
        rc = ls_err_set(err, LS_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    } else if (link(tmp, path) != 0) {
        rc = errno == EEXIST
                 ? LS_EEXIST
                 : ls_err_set(err, LS_EIO, "%s: cannot create: %s", path, strerror(errno));
        unlink(tmp);
    } else {
        unlink(tmp);
    }
out:
    if (text.ptr) sodium_memzero(text.ptr, text.cap);
    ls_buf_free(&text);
    return rc;
}

static ls_rc make_jwks(ls_assertion_t *a, ls_err *err)
{
    ls_buf x = LS_BUF_INIT, out = LS_BUF_INIT;
    ls_rc rc = ls_base64url_encode(a->pk, sizeof a->pk, &x, err);
    if (rc == LS_OK)
        rc = ls_buf_printf(&out, err,
                           "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\","
                           "\"alg\":\"EdDSA\",\"use\":\"sig\",\"x\":\"%s\"}]}",
                           a->kid, (const char *)x.ptr);
    ls_buf_free(&x);
    if (rc != LS_OK) {
        ls_buf_free(&out);
        return rc;
    }
    a->jwks = (char *)ls_buf_steal(&out, NULL);
    return LS_OK;
}

ls_rc ls_assertion_open(ls_assertion_t **out, const char *key_path, const char *issuer,
                        const char *audience, int64_t ttl_s, const ls_clock *clock, ls_err *err)
{
    if (ttl_s < 1 || ttl_s > 3600)
        return ls_err_set(err, LS_EINVAL, "assertion.ttl: between 1s and 1h");
    if (sodium_init() < 0) return ls_err_set(err, LS_EIO, "libsodium failed to initialise");
    ls_assertion_t *a = ls_calloc(1, sizeof *a);
    if (a == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    ls_rc rc = LS_ENOMEM;
    unsigned char *seed = sodium_malloc(crypto_sign_SEEDBYTES);
    a->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    a->issuer = ls_strdup(issuer);
    a->audience = audience ? ls_strdup(audience) : NULL;
    if (seed == NULL || a->sk == NULL || a->issuer == NULL || (audience && !a->audience)) {
        ls_err_set(err, LS_ENOMEM, "out of memory");
        goto fail;
    }
    a->ttl_s = ttl_s;
    a->clock = clock;
    rc = read_key(key_path, seed, err);
    if (rc == LS_ENOTFOUND) {
        rc = create_key(key_path, seed, err);
        if (rc == LS_EEXIST) rc = read_key(key_path, seed, err); /* another worker won */
    }
    if (rc != LS_OK) goto fail;
    crypto_sign_seed_keypair(a->pk, a->sk, seed);
    unsigned char h[8];
    crypto_generichash(h, sizeof h, a->pk, sizeof a->pk, NULL, 0);
    sodium_bin2hex(a->kid, sizeof a->kid, h, sizeof h);
    randombytes_buf(a->hash_key, sizeof a->hash_key);
    if ((rc = make_jwks(a, err)) != LS_OK) goto fail;
    sodium_free(seed);
    *out = a;
    return LS_OK;
fail:
    if (seed) sodium_free(seed);
    ls_assertion_free(a);
    return rc;
}

void ls_assertion_free(ls_assertion_t *a)
{
    if (a == NULL) return;
    if (a->sk) sodium_free(a->sk);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        ls_free(a->cache[i].who);
        ls_free(a->cache[i].token);
    }
    ls_free(a->issuer);
    ls_free(a->audience);
    ls_free(a->jwks);
    ls_buf_free(&a->who);
    ls_buf_free(&a->out);
    ls_free(a);
}

const char *ls_assertion_jwks(const ls_assertion_t *a)
{
    return a->jwks;
}

const char *ls_assertion_kid(const ls_assertion_t *a)
{
    return a->kid;
}

/* ---- signing ---- */

static ls_rc sign(ls_assertion_t *a, const char *subject, const char *const *roles, size_t nroles,
                  int64_t now_s, char **token, ls_err *err)
{
    json_t *claims = json_object(), *r = json_array();
    int bad = claims == NULL || r == NULL;
    for (size_t i = 0; !bad && i < nroles; i++)
        bad = json_array_append_new(r, json_string(roles[i]));
    bad = bad || json_object_set_new(claims, "iss", json_string(a->issuer)) ||
          json_object_set_new(claims, "sub", json_string(subject)) ||
          json_object_set(claims, "roles", r) ||
          json_object_set_new(claims, "iat", json_integer(now_s)) ||
          json_object_set_new(claims, "exp", json_integer(now_s + a->ttl_s)) ||
          (a->audience && json_object_set_new(claims, "aud", json_string(a->audience)));
    json_decref(r);
    ls_buf payload = LS_BUF_INIT;
    ls_rc rc = bad ? ls_err_set(err, LS_ENOMEM, "out of memory signing an assertion")
                   : ls_json_dump(claims, &payload, err);
    json_decref(claims);

    ls_buf *o = &a->out;
    ls_buf_clear(o);
    char header[96];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", a->kid);
    if (rc == LS_OK) rc = ls_base64url_encode(header, strlen(header), o, err);
    if (rc == LS_OK) rc = ls_buf_putc(o, '.', err);
    if (rc == LS_OK) rc = ls_base64url_encode(payload.ptr, payload.len, o, err);
    ls_buf_free(&payload);
    unsigned char sig[crypto_sign_BYTES];
    if (rc == LS_OK) crypto_sign_detached(sig, NULL, o->ptr, o->len, a->sk);
    if (rc == LS_OK) rc = ls_buf_putc(o, '.', err);
    if (rc == LS_OK) rc = ls_base64url_encode(sig, sizeof sig, o, err);
    if (rc != LS_OK) return rc;
    char *t = ls_strndup((const char *)o->ptr, o->len);
    if (t == NULL) return ls_err_set(err, LS_ENOMEM, "out of memory");
    *token = t;
    return LS_OK;
}

ls_rc ls_assertion_token(ls_assertion_t *a, const char *subject, const char *const *roles,
                         size_t nroles, const char **token, ls_err *err)
{
    /* The cache key: subject and roles, each after its length, so no two
     * callers share one (roles "a,b" and "a", "b" would, joined). */
    ls_buf *w = &a->who;
    ls_buf_clear(w);
    ls_rc rc = LS_OK;
    for (size_t i = 0; rc == LS_OK && i <= nroles; i++) {
        const char *s = i ? roles[i - 1] : subject;
        size_t n = strlen(s);
        rc = ls_buf_append(w, &n, sizeof n, err);
        if (rc == LS_OK) rc = ls_buf_append(w, s, n, err);
    }
    if (rc != LS_OK) return rc;
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, w->ptr, w->len, a->hash_key);
    slot *s = &a->cache[h[0] % CACHE_SLOTS];
    int64_t now_ms = ls_clock_wall_ms(a->clock);
    if (s->token && s->who_len == w->len && memcmp(s->who, w->ptr, w->len) == 0 &&
        now_ms < s->renew_ms) {
        *token = s->token;
        return LS_OK;
    }
    char *t = NULL;
    rc = sign(a, subject, roles, nroles, now_ms / 1000, &t, err);
    if (rc != LS_OK) return rc;
    char *who = ls_malloc(w->len);
    if (who == NULL) {
        ls_free(t);
        return ls_err_set(err, LS_ENOMEM, "out of memory");
    }
    memcpy(who, w->ptr, w->len);
    ls_free(s->who);
    ls_free(s->token);
    s->who = who;
    s->who_len = w->len;
    s->token = t;
    s->renew_ms = now_ms + a->ttl_s * 1000 / 2; /* half the lifetime left at worst */
    *token = t;
    return LS_OK;
}

/* SPDX-License-Identifier: MIT
 * Sealing: XChaCha20-Poly1305 (libsodium's IETF AEAD) under the keyring's
 * keys, with a small versioned header that names the key. The header is
 * authenticated along with the caller's associated data, so no byte of a
 * sealed value can change without LS_EAUTH (or LS_EFORMAT for the version).
 */
#include "ls_config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

#include "lodestone/ls_alloc.h"
#include "vault_int.h"

/* Sealed format, version 1:
 *
 *     byte  0       version (1)
 *     bytes 1..4    key id, big-endian
 *     bytes 5..28   nonce (24 random bytes)
 *     bytes 29..    ciphertext (as long as the plaintext), then 16-byte tag
 *
 * The AEAD's associated data is bytes 0..4 followed by the caller's ad.
 * The nonce needs no such binding: it is an input of the AEAD itself. */

/* Associated data up to this size is built on the stack; longer goes
 * through ls_malloc. Covers a secret's "lodestone.secret:" + 256-byte name. */
#define AD_STACK 320u

static const char auth_fail[] =
    "sealed value does not authenticate (tampered, wrong key, or wrong associated data)";

size_t ls_vault_keybytes(void)
{
    return LS_VAULT_KEYBYTES;
}

size_t ls_vault_overhead(void)
{
    return LS_VAULT_OVERHEAD;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* head || ad into stack (AD_STACK bytes) or a new ls_malloc'd block, which
 * the caller frees when *full != stack. */
static ls_rc full_ad(unsigned char *stack, const unsigned char head[LS_VAULT_ADHEADBYTES],
                     const void *ad, size_t adlen, unsigned char **full, size_t *fulllen,
                     ls_err *err)
{
    if (adlen > SIZE_MAX - LS_VAULT_ADHEADBYTES)
        return ls_err_set(err, LS_EINVAL, "associated data of %zu bytes is too large", adlen);
    size_t n = LS_VAULT_ADHEADBYTES + adlen;
    unsigned char *p = stack;
    if (n > AD_STACK) {
        p = ls_malloc(n);
        if (p == NULL)
            return ls_err_set(err, LS_ENOMEM, "out of memory for %zu bytes of associated data", n);
    }
    memcpy(p, head, LS_VAULT_ADHEADBYTES);
    if (adlen) memcpy(p + LS_VAULT_ADHEADBYTES, ad, adlen);
    *full = p;
    *fulllen = n;
    return LS_OK;
}

void ls_vault_aead_encrypt(const unsigned char key[LS_VAULT_KEYBYTES],
                           const unsigned char nonce[LS_VAULT_NONCEBYTES], const void *ad,
                           size_t adlen, const void *pt, size_t ptlen, unsigned char *ct)
{
    static const unsigned char empty[1];
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, pt ? pt : empty, ptlen, ad ? ad : empty,
                                               adlen, NULL, nonce, key);
}

/* ---- seal ---- */

ls_rc ls_vault_seal_with(const unsigned char key[LS_VAULT_KEYBYTES], uint32_t key_id,
                         const unsigned char nonce[LS_VAULT_NONCEBYTES], const void *ad,
                         size_t adlen, const void *pt, size_t ptlen, ls_buf *out, ls_err *err)
{
    if (out == NULL || (ad == NULL && adlen) || (pt == NULL && ptlen))
        return ls_err_set(err, LS_EINVAL, "seal needs an output buffer, ad and plaintext");
    if (ptlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        ptlen > SIZE_MAX - LS_VAULT_OVERHEAD - 1)
        return ls_err_set(err, LS_EINVAL, "value of %zu bytes is too large to seal", ptlen);

    unsigned char head[LS_VAULT_ADHEADBYTES];
    head[0] = LS_VAULT_VERSION;
    put_be32(head + 1, key_id);
    unsigned char stack[AD_STACK], *fad = NULL;
    size_t fadlen = 0;
    ls_rc rc = full_ad(stack, head, ad, adlen, &fad, &fadlen, err);
    if (rc != LS_OK) return rc;

    ls_buf_clear(out);
    rc = ls_buf_reserve(out, ptlen + LS_VAULT_OVERHEAD, err);
    if (rc == LS_OK) {
        memcpy(out->ptr, head, LS_VAULT_ADHEADBYTES);
        memcpy(out->ptr + LS_VAULT_ADHEADBYTES, nonce, LS_VAULT_NONCEBYTES);
        ls_vault_aead_encrypt(key, nonce, fad, fadlen, pt, ptlen, out->ptr + LS_VAULT_HEADERBYTES);
        out->len = ptlen + LS_VAULT_OVERHEAD;
        out->ptr[out->len] = '\0';
    }
    if (fad != stack) ls_free(fad);
    return rc;
}

/* Random nonces come from a per-thread pool refilled 64 nonces at a time:
 * one getrandom(2) per 64 seals instead of one each (the workflow engine
 * seals every payload it writes). Nonces are not secret; what matters is
 * that they never repeat, so a fork (whose child would inherit the pool)
 * empties every pool through the generation counter. */
#define NONCE_POOL (64 * LS_VAULT_NONCEBYTES)

static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Thread_local unsigned char nonce_pool[NONCE_POOL];
static _Thread_local size_t nonce_left;
static _Thread_local unsigned nonce_gen;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static void next_nonce(unsigned char nonce[LS_VAULT_NONCEBYTES])
{
    pthread_once(&atfork_once, register_atfork);
    unsigned gen = atomic_load(&fork_gen);
    if (nonce_left < LS_VAULT_NONCEBYTES || nonce_gen != gen) {
        randombytes_buf(nonce_pool, sizeof nonce_pool);
        nonce_left = sizeof nonce_pool;
        nonce_gen = gen;
    }
    nonce_left -= LS_VAULT_NONCEBYTES;
    memcpy(nonce, nonce_pool + nonce_left, LS_VAULT_NONCEBYTES);
    sodium_memzero(nonce_pool + nonce_left, LS_VAULT_NONCEBYTES); /* used once */
}

ls_rc ls_vault_seal(ls_vault_t *v, const void *ad, size_t adlen, const void *pt, size_t ptlen,
                    ls_buf *out, ls_err *err)
{
    if (v == NULL) return ls_err_set(err, LS_EINVAL, "ls_vault_seal needs a vault");
    unsigned char nonce[LS_VAULT_NONCEBYTES];
    next_nonce(nonce);
    pthread_rwlock_rdlock(&v->lock);
    const ls_vault_key *k = ls_vault_find_key(v, v->current);
    ls_rc rc = ls_vault_seal_with(k->key, k->id, nonce, ad, adlen, pt, ptlen, out, err);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* ---- open ---- */

static ls_rc too_short(size_t slen, ls_err *err)
{
    return ls_err_set(err, LS_EFORMAT,
                      "sealed value is %zu bytes, shorter than the %u-byte minimum", slen,
                      LS_VAULT_OVERHEAD);
}

ls_rc ls_vault_open_into(ls_vault_t *v, const void *ad, size_t adlen, const void *sealed,
                         size_t slen, unsigned char *dst, size_t *ptlen, ls_err *err)
{
    const unsigned char *s = sealed;
    if (v == NULL || dst == NULL || ptlen == NULL || (ad == NULL && adlen) || (s == NULL && slen))
        return ls_err_set(err, LS_EINVAL, "open needs a vault, ad and a sealed value");
    if (slen < LS_VAULT_OVERHEAD) return too_short(slen, err);
    if (s[0] != LS_VAULT_VERSION)
        return ls_err_set(err, LS_EFORMAT,
                          "sealed value has format version %u; this build reads version %u",
                          (unsigned)s[0], LS_VAULT_VERSION);

    unsigned char stack[AD_STACK], *fad = NULL;
    size_t fadlen = 0;
    ls_rc rc = full_ad(stack, s, ad, adlen, &fad, &fadlen, err);
    if (rc != LS_OK) return rc;

    uint32_t id = get_be32(s + 1);
    size_t clen = slen - LS_VAULT_HEADERBYTES;
    pthread_rwlock_rdlock(&v->lock);
    const ls_vault_key *k = ls_vault_find_key(v, id);
    int r = -1;
    if (k != NULL) {
        unsigned long long mlen = 0;
        r = crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, s + LS_VAULT_HEADERBYTES,
                                                       clen, fad, fadlen, s + LS_VAULT_ADHEADBYTES,
                                                       k->key);
        *ptlen = (size_t)mlen;
    }
    pthread_rwlock_unlock(&v->lock);
    if (fad != stack) ls_free(fad);

    if (k == NULL)
        return ls_err_set(err, LS_ENOTFOUND,
                          "sealed value names key %u, which this keyring does not hold",
                          (unsigned)id);
    if (r != 0) {
        sodium_memzero(dst, clen - LS_VAULT_MACBYTES);
        *ptlen = 0;
        return ls_err_set(err, LS_EAUTH, "%s", auth_fail);
    }
    return LS_OK;
}

ls_rc ls_vault_open(ls_vault_t *v, const void *ad, size_t adlen, const void *sealed, size_t slen,
                    ls_buf *out, ls_err *err)
{
    if (out == NULL) return ls_err_set(err, LS_EINVAL, "ls_vault_open needs an output buffer");
    ls_buf_clear(out);
    if (slen < LS_VAULT_OVERHEAD) return too_short(slen, err); /* before sizing out from slen */
    ls_rc rc = ls_buf_reserve(out, slen - LS_VAULT_OVERHEAD, err);
    if (rc != LS_OK) return rc;
    size_t n = 0;
    rc = ls_vault_open_into(v, ad, adlen, sealed, slen, out->ptr, &n, err);
    out->len = rc == LS_OK ? n : 0;
    out->ptr[out->len] = '\0';
    return rc;
}

uint32_t ls_vault_sealed_key(const void *sealed, size_t slen)
{
    const unsigned char *s = sealed;
    if (s == NULL || slen < LS_VAULT_OVERHEAD || s[0] != LS_VAULT_VERSION) return 0;
    return get_be32(s + 1);
}

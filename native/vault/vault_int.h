/* SPDX-License-Identifier: MIT
 * Internals shared by the files of native/vault/ (keyring.c, seal.c,
 * secrets.c). Never installed, never exported: the key array and the
 * entry points that take raw keys and nonces exist for the vault itself and
 * for the known-answer tests only.
 */
#ifndef LS_VAULT_INT_H
#define LS_VAULT_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lodestone/ls_vault.h"

/* Version byte of the sealed format written by this build. Stays below
 * 0x80: secrets.c's record versions have the high bit set, so that a
 * record's first byte tells it from a bare sealed value. */
#define LS_VAULT_VERSION 1u

/* Bytes of the sealed header that are authenticated as associated data in
 * front of the caller's ad: the version byte and the key id. */
#define LS_VAULT_ADHEADBYTES 5u

/* One data key. Lives only inside the sodium_malloc'd array below. */
typedef struct {
    uint32_t id;
    unsigned char key[LS_VAULT_KEYBYTES];
} ls_vault_key;

/* The vault. The struct itself holds no secret (ordinary memory); keys
 * points to one sodium_malloc'd array of nkeys entries.
 * lock guards keys/nkeys/current: seal and open take it shared, rotate
 * takes it exclusive, so a vault may be used by several threads at once. */
struct ls_vault {
    char *path;         /* key file, ls_malloc'd */
    char *dir;          /* its directory (fsynced after writes), ls_malloc'd */
    ls_vault_key *keys; /* sodium_malloc'd, nkeys entries, in file order */
    size_t nkeys;
    uint32_t current; /* id of the key used for new seals */
    pthread_rwlock_t lock;
    int lock_ready; /* lock initialised (for a failed ls_vault_load) */
    int created;    /* ls_vault_load created the key file */
};

/* ---- keyring.c ---- */

/* sodium_init(), mapped to LS_EIO on failure. Cheap after the first call. */
ls_rc ls_vault_sodium_init(ls_err *err);

/* Key with this id, or NULL. Call with v->lock held. */
const ls_vault_key *ls_vault_find_key(const ls_vault_t *v, uint32_t id);

/* ---- seal.c ---- */

/* Seals pt under key (whose id is key_id) with the given nonce, replacing
 * *out with the sealed value. The whole of seal: ls_vault_seal draws a
 * random nonce and calls this. Exposed for known-answer tests; never call
 * it with a nonce that is not fresh and random. pt must not point into out. */
ls_rc ls_vault_seal_with(const unsigned char key[LS_VAULT_KEYBYTES], uint32_t key_id,
                         const unsigned char nonce[LS_VAULT_NONCEBYTES], const void *ad,
                         size_t adlen, const void *pt, size_t ptlen, ls_buf *out, ls_err *err);

/* Opens a sealed value into dst, which has room for slen -
 * LS_VAULT_OVERHEAD bytes (check slen >= LS_VAULT_OVERHEAD first, or let
 * this return LS_EFORMAT). *ptlen receives the plaintext length. dst may be
 * guarded memory: secrets.c opens straight into sodium_malloc'd buffers.
 * On failure dst is wiped. Errors as for ls_vault_open. */
ls_rc ls_vault_open_into(ls_vault_t *v, const void *ad, size_t adlen, const void *sealed,
                         size_t slen, unsigned char *dst, size_t *ptlen, ls_err *err);

/* The raw AEAD under seal: XChaCha20-Poly1305 (IETF) encryption of pt with
 * ad into ct (ptlen + LS_VAULT_MACBYTES bytes: ciphertext, then tag). For
 * the draft-irtf-cfrg-xchacha known-answer test. */
void ls_vault_aead_encrypt(const unsigned char key[LS_VAULT_KEYBYTES],
                           const unsigned char nonce[LS_VAULT_NONCEBYTES], const void *ad,
                           size_t adlen, const void *pt, size_t ptlen, unsigned char *ct);

#endif
